//! A session: one client's state, owned by its front end (a RESP connection, an HTTP request's
//! session, a script's caller), and given to every command it runs through `Ctx`: its
//! database, its transaction, what it wrote last, and the scratch the dispatcher reuses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use magpie_protocol::ArgVec;
use magpie_store::{Key, Keyspace};

use super::wait::Wait;
use crate::services::acl::Login;
use crate::services::clients::ClientInfo;
use crate::services::config::Settings;

/// What a command declares about its effect, beyond its reply.
#[derive(Default, Debug)]
pub(crate) struct Effects {
    /// Records to log instead of the command's own arguments (see [`Ctx::propagate`]).
    pub records: Vec<ArgVec>,
    /// Set by the first [`Ctx::propagate`]: the command's arguments are not logged.
    pub replaced: bool,
    /// Arguments (bit i: argument i, the first 64) that MONITOR and the slow log show as
    /// `(redacted)`: passwords (Redis's `redactClientCommandArgument`).
    pub redacted: u64,
}

impl Effects {
    pub(crate) fn clear(&mut self) {
        self.records.clear();
        self.replaced = false;
        self.redacted = 0;
    }

    /// Argument `i` is a secret: MONITOR and the slow log do not show it.
    pub(crate) fn redact(&mut self, i: usize) {
        if i < 64 {
            self.redacted |= 1 << i;
        }
    }
}

/// One client's state.
pub(crate) struct Session {
    info: Arc<ClientInfo>,
    db: usize,
    /// Set by QUIT (and a successful SHUTDOWN): close after the reply is written.
    close: bool,
    /// The server's own session (log replay).
    internal: bool,
    /// Sequence number of the last record this session's writes added to the log: under
    /// `appendfsync always` its replies wait until the log is durable that far.
    wrote: u64,
    /// MULTI, WATCH and BEGIN state (see `crate::exec`).
    pub(crate) txn: TxnState,
    /// What the running command declared for the log; reset by dispatch before each command.
    pub(crate) effects: Effects,
    /// Whether the running command may block, and what it asked for when it did; reset by
    /// dispatch before each command.
    pub(crate) wait: Wait,
    /// Who the client is (AUTH, HELLO AUTH; RESET goes back to the default user) and whether
    /// it authenticated: dispatch checks every command against it.
    pub(crate) login: Login,
    /// A script is running for this session: the commands dispatched now come from its
    /// `redis.call` (they are not refused in subscribe mode; blocking ones do not block).
    pub(crate) script: bool,
}

impl Session {
    /// A session for the client `info` (registered by its front end), in database 0, logged in
    /// as `login` (`Acl::login` for a new connection).
    pub(crate) fn new(info: Arc<ClientInfo>, login: Login) -> Session {
        Session {
            login,
            info,
            db: 0,
            close: false,
            internal: false,
            wrote: 0,
            txn: TxnState::default(),
            effects: Effects::default(),
            wait: Wait::default(),
            script: false,
        }
    }

    /// A session of the server itself (replaying the log), in no registry: its commands are
    /// not counted in the statistics.
    pub(crate) fn internal() -> Session {
        let mut s = Session::new(ClientInfo::internal(), Login::internal());
        s.internal = true;
        s
    }

    /// Whether this is the server's own session (see [`Session::internal`]).
    #[inline]
    pub(crate) fn is_internal(&self) -> bool {
        self.internal
    }

    /// Whether the last command asked to wait for a key (a blocking command that found
    /// nothing): the front end then makes a waiter of it (`crate::exec::waiters`).
    pub(crate) fn is_blocked(&self) -> bool {
        self.wait.requested
    }

    /// How long the blocked command waits (see [`Session::is_blocked`]).
    pub(crate) fn block_timeout(&self) -> super::wait::Timeout {
        self.wait.timeout
    }

    /// The client's id (CLIENT ID).
    pub(crate) fn id(&self) -> u64 {
        self.info.id
    }

    /// What others may see of this client (CLIENT LIST), and its subscriptions.
    pub(crate) fn info(&self) -> &Arc<ClientInfo> {
        &self.info
    }

    /// Whether the client connected over the loopback interface (what Redis's protected mode
    /// and `local` settings call a local client).
    pub(crate) fn is_local(&self) -> bool {
        // Redis's `islocalClient`: exactly 127.0.0.1 or ::1 (127.0.0.2 is not local).
        match self.info.addr.ip().to_canonical() {
            std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
            std::net::IpAddr::V6(ip) => ip == std::net::Ipv6Addr::LOCALHOST,
        }
    }

    /// The current database.
    pub(crate) fn db(&self) -> usize {
        self.db
    }

    /// Selects a database (SELECT; the caller checked the index).
    pub(crate) fn select(&mut self, db: usize) {
        self.db = db;
    }

    /// Whether the front end should close the connection once the replies are written.
    pub(crate) fn wants_close(&self) -> bool {
        self.close || self.info().control.is_killed()
    }

    /// Asks the front end to close the connection after the reply (QUIT).
    pub(crate) fn close(&mut self) {
        self.close = true;
    }

    /// The last log record this session's writes added (0: none yet).
    pub(crate) fn wrote(&self) -> u64 {
        self.wrote
    }

    /// Notes that this session's write added log record `seq`.
    pub(crate) fn note_write(&mut self, seq: u64) {
        self.wrote = self.wrote.max(seq);
    }

    /// The transaction state (MULTI, WATCH, BEGIN).
    pub(crate) fn txn(&self) -> &TxnState {
        &self.txn
    }

    /// Lets go of everything the session holds in the server (its transaction's watches, its
    /// subscriptions): called when the client disconnects.
    pub(crate) fn end(&mut self, ks: &Keyspace, pubsub: &crate::services::pubsub::PubSub) {
        self.txn.clear(ks);
        if self.info.pubsub.active() {
            pubsub.unsubscribe_all(&self.info.pubsub, self.info.id);
        }
    }
}

/// A connection's transaction state.
#[derive(Default)]
pub(crate) struct TxnState {
    /// Between MULTI and EXEC/DISCARD.
    pub multi: Option<Multi>,
    /// Keys watched (WATCH), until EXEC, DISCARD, UNWATCH or RESET.
    pub watched: Vec<Watched>,
    /// Between BEGIN and COMMIT/ROLLBACK.
    pub interactive: Option<Box<Interactive>>,
    /// EXEC is running the queued commands (their ACL check then says so, as Redis's).
    pub executing: bool,
}

/// An interactive transaction in progress.
pub(crate) struct Interactive {
    /// The private copy: every database, one shard each.
    pub ks: Arc<Keyspace>,
    /// Each key touched: its version in the server's keyspace when first touched, whether it
    /// was held but expired then, and its version in the copy right after copying (a later
    /// version there means the transaction changed it).
    pub touched: HashMap<(usize, Key), Touch>,
    /// What the transaction's writes did, to log at COMMIT: (database, command).
    pub log: Vec<(usize, ArgVec)>,
    /// Keyspace events to raise at COMMIT (they name changes nobody else may see before).
    pub deferred: Mutex<Deferred>,
    pub started: Instant,
    /// Set when the transaction was rolled back by the server (too big, too old): commands
    /// get this error until the client ends it with ROLLBACK or COMMIT.
    pub aborted: Option<String>,
}

#[derive(Default)]
pub(crate) struct Deferred {
    pub events: Vec<(u32, &'static str, usize, Box<[u8]>)>,
}

pub(crate) struct Touch {
    pub version: u64,
    pub expired: bool,
    pub private_version: u64,
}

/// The commands queued after MULTI.
#[derive(Default)]
pub(crate) struct Multi {
    pub queued: Vec<ArgVec>,
    /// A command was refused while queueing: EXEC will fail with EXECABORT.
    pub failed: bool,
    /// Every command queued names every key it touches, in the session's database (see
    /// `exec::multi`): EXEC holds only those keys' shards instead of running alone.
    pub declared: bool,
}

/// A watched key and its version when it was watched.
pub(crate) struct Watched {
    pub db: usize,
    pub key: Box<[u8]>,
    pub version: u64,
    /// It was held but already expired when watched.
    pub expired: bool,
}

impl TxnState {
    /// Lets go of everything (disconnect, RESET).
    pub(crate) fn clear(&mut self, ks: &Keyspace) {
        self.multi = None;
        unwatch_all(ks, &mut self.watched);
        if let Some(i) = self.interactive.take() {
            release(ks, &i);
        }
    }

    /// When the server will roll the interactive transaction back if it is still open.
    pub(crate) fn deadline(&self, settings: &Settings) -> Option<Instant> {
        let i = self.interactive.as_ref()?;
        if i.aborted.is_some() {
            return None;
        }
        Some(i.started + Duration::from_secs(settings.txn_timeout()))
    }

    /// Rolls an interactive transaction back for being older than its limit (called by the
    /// connection when the deadline passes while the client is idle).
    pub(crate) fn expire(&mut self, ks: &Keyspace, settings: &Settings) {
        if let Some(i) = self.interactive.as_mut()
            && i.aborted.is_none()
        {
            abort(ks, i, format!("older than {} seconds (txn-timeout)", settings.txn_timeout()));
        }
    }
}

pub(crate) fn unwatch_all(ks: &Keyspace, watched: &mut Vec<Watched>) {
    for w in watched.drain(..) {
        ks.db(w.db).write(&w.key).unwatch(&w.key);
    }
}

/// Stops watching what the transaction touched.
pub(crate) fn release(ks: &Keyspace, i: &Interactive) {
    for (db, key) in i.touched.keys() {
        ks.db(*db).write(key).unwatch(key);
    }
}

/// Rolls the transaction back on the server's initiative: its copy and watches go now; the
/// client learns it from the next command, until it ends the transaction.
pub(crate) fn abort(ks: &Keyspace, i: &mut Interactive, why: String) {
    release(ks, i);
    i.touched.clear();
    i.log.clear();
    i.ks = Arc::new(Keyspace::new(1, 1));
    i.aborted = Some(why);
}
