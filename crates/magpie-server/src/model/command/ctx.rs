//! The context a command runs in: where its keys are, who called, where its reply goes, and the
//! effect sink through which it declares what the log, the keyspace events and blocked clients
//! must learn. Commands reach everything through its methods; only the execution layer makes
//! one ([`Ctx::new`]).

use magpie_lua::{Host, Outcome};
use magpie_protocol::{ArgVec, Args, Reply, Resp};
use magpie_store::{Db, Keyspace};

use super::Table;
use crate::core::error::{CmdResult, Error};
use crate::model::session::Session;
use crate::model::wait::{Mode, Timeout};
use crate::services::Server;
use crate::services::stats::{Counters, Timer};

/// What commands may ask of the execution layer, which sits above them: the table, the
/// serving of blocked clients in the middle of a command (see [`Ctx::serve_waiters`]), and
/// running a script whose `redis.call` goes through the dispatcher (see [`Ctx::run_script`]).
pub(crate) trait Executor: Sync {
    /// The command table.
    fn table(&self) -> &'static Table;
    /// Serves the clients blocked on keys signalled so far.
    fn serve_waiters(&self, server: &Server);
    /// Runs a script for the session: see [`Ctx::run_script`].
    fn run_script(&self, ctx: &mut Ctx<'_>, script: &ScriptRun<'_>, body: &mut ScriptBody<'_>) -> CmdResult;
}

/// A script about to run (EVAL, FCALL and their variants), as the execution layer needs to
/// know it: Redis's `scriptPrepareForRun` flags.
pub(crate) struct ScriptRun<'a> {
    /// An EVAL script (SCRIPT KILL stops it), not a function (FUNCTION KILL).
    pub eval: bool,
    /// Write commands are refused (EVAL_RO, FCALL_RO, or the `no-writes` flag).
    pub read_only: bool,
    /// The script declared `allow-oom`: its calls are not refused for memory (Redis's
    /// `SCRIPT_ALLOW_OOM`).
    pub allow_oom: bool,
    /// The script's SHA1 or the function's name (logs, FUNCTION STATS).
    pub name: &'a [u8],
    /// The command that runs it, as the client sent it (FUNCTION STATS).
    pub command: Args<'a>,
}

/// What runs the script: given the host its `redis.call` reaches and the reply to write into.
pub(crate) type ScriptBody<'b> = dyn FnMut(&mut dyn Host, &mut Reply) -> Result<Outcome, Error> + 'b;

/// Everything a command can reach: the server's services, the keys, its own session, and
/// where its reply goes.
pub(crate) struct Ctx<'a> {
    server: &'a Server,
    exec: &'a dyn Executor,
    /// The keyspace the command works on: the server's, or the private copy of an interactive
    /// transaction (see `crate::exec::interactive`).
    ks: &'a Keyspace,
    session: &'a mut Session,
    out: &'a mut Reply,
    /// The time this command runs at (ms since the epoch), read once per batch of commands.
    now: u64,
    /// This thread's statistics.
    stats: &'static Counters,
    /// Times the batch's commands.
    timer: &'a mut Timer,
}

impl<'a> Ctx<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        server: &'a Server,
        exec: &'a dyn Executor,
        ks: &'a Keyspace,
        session: &'a mut Session,
        out: &'a mut Reply,
        now: u64,
        stats: &'static Counters,
        timer: &'a mut Timer,
    ) -> Ctx<'a> {
        Ctx { server, exec, ks, session, out, now, stats, timer }
    }

    /// Runs a script (see [`ScriptRun`]): `body` gets the host through which the script's
    /// `redis.call` runs commands (through the dispatcher, as this session, with its
    /// database and transaction) and the reply to write the script's result into. The script
    /// runs alone, its writes are logged as one record, and an error it returns is this
    /// command's error.
    pub(crate) fn run_script(&mut self, script: &ScriptRun<'_>, body: &mut ScriptBody<'_>) -> CmdResult {
        let exec = self.exec;
        exec.run_script(self, script, body)
    }

    /// Runs `f` with a context like this one whose reply goes to `out` (a command a script
    /// runs: its reply goes to the script).
    pub(crate) fn with_out<R>(&mut self, out: &mut Reply, f: impl FnOnce(&mut Ctx<'_>) -> R) -> R {
        let mut inner = Ctx::new(self.server, self.exec, self.ks, self.session, out, self.now, self.stats, self.timer);
        f(&mut inner)
    }

    /// Runs `f` with this context's reply taken out: `f` gets a context whose reply is a
    /// scratch one (for what the script runs), and the real reply (for the script's result).
    pub(crate) fn split_out<R>(&mut self, f: impl FnOnce(&mut Ctx<'_>, &mut Reply) -> R) -> R {
        let mut scratch = Reply::new(self.out.proto);
        let mut inner =
            Ctx::new(self.server, self.exec, self.ks, self.session, &mut scratch, self.now, self.stats, self.timer);
        f(&mut inner, self.out)
    }

    /// Runs `f` with a context like this one but on the keyspace `ks` (an interactive
    /// transaction's private copy).
    pub(crate) fn on_keyspace<R>(&mut self, ks: &Keyspace, f: impl FnOnce(&mut Ctx<'_>) -> R) -> R {
        let mut inner = Ctx::new(self.server, self.exec, ks, self.session, self.out, self.now, self.stats, self.timer);
        f(&mut inner)
    }

    /// The server's services.
    pub(crate) fn server(&self) -> &'a Server {
        self.server
    }

    /// The command table.
    pub(crate) fn table(&self) -> &'static Table {
        self.exec.table()
    }

    /// The keyspace this command works on (the server's, or a transaction's private copy).
    pub(crate) fn keyspace(&self) -> &'a Keyspace {
        self.ks
    }

    /// The session's current database.
    pub(crate) fn db(&self) -> &'a Db {
        self.ks.db(self.session.db())
    }

    /// The index of the session's current database.
    pub(crate) fn db_index(&self) -> usize {
        self.session.db()
    }

    /// Where the reply goes.
    pub(crate) fn out(&mut self) -> &mut Reply {
        self.out
    }

    /// The time this command runs at, in ms since the epoch.
    pub(crate) fn now(&self) -> u64 {
        self.now
    }

    pub(crate) fn session(&self) -> &Session {
        self.session
    }

    pub(crate) fn session_mut(&mut self) -> &mut Session {
        self.session
    }

    /// This thread's statistics.
    pub(crate) fn stats(&self) -> &'static Counters {
        self.stats
    }

    /// The batch's timer (for the layers that run commands in the middle of others).
    pub(crate) fn timer(&mut self) -> &mut Timer {
        self.timer
    }

    /// The protocol the session speaks.
    pub(crate) fn protocol(&self) -> Resp {
        self.out.proto
    }

    /// Switches the session's protocol (HELLO, RESET): replies from now on are encoded for it,
    /// and so are pub/sub messages published from now on.
    pub(crate) fn set_protocol(&mut self, proto: Resp) {
        self.out.proto = proto;
        self.session.info().pubsub.mailbox.set_protocol(proto);
    }

    /// Whether the session is inside BEGIN (its commands work on a private copy).
    pub(crate) fn in_interactive(&self) -> bool {
        self.session.txn.interactive.is_some()
    }

    /// Whether what a command declares for the log is kept: the log is on, or the command runs
    /// inside BEGIN (whose COMMIT logs it). Otherwise its records are not worth building. (The
    /// log is turned on only while no command runs: see `Persistence::rewrite`.)
    pub(crate) fn logged(&self) -> bool {
        self.in_interactive() || self.server.journal().is_on()
    }

    /// Counts a read of a key that found it or not (INFO's `keyspace_hits`/`keyspace_misses`).
    /// As in Redis, commands count the keys they read, not those they look up to write.
    pub(crate) fn hit(&self, found: bool) {
        self.stats.lookup(found);
    }

    /// Whether clients blocked on `key` were given something (a push signalled them) and are
    /// not served yet. A command that takes elements (LPOP, LMOVE, LREM, ...) checks this with
    /// the key's shard locked (the keyspace signals a waited key under that lock when it changes);
    /// if so it unlocks, calls [`Ctx::serve_waiters`] and looks again,
    /// so that no command takes an element pushed for a waiting client. Always false for the
    /// serving itself (`Retry`) and inside a transaction (`NoBlock`), which must not unlock.
    pub(crate) fn waiters_first(&self, key: &[u8]) -> bool {
        self.session.wait.mode == Mode::MayBlock && self.server.blocking().is_pending(self.session.db(), key)
    }

    /// Serves the clients whose keys were signalled; see [`Ctx::waiters_first`]. Only for
    /// write commands that have changed nothing yet.
    pub(crate) fn serve_waiters(&self) {
        self.exec.serve_waiters(self.server);
        // The commands just served ran on this thread, each logged on its own: this one starts
        // its log bracket afresh, or it would take their last change for its own.
        magpie_store::tap::reset_last_seq();
        self.server.journal().refresh();
    }

    /// Asks to wait until one of `keys` (of the current database) holds a value of type
    /// `wants` (`"list"`, `"zset"`), or `timeout` passes, and then run this command again; for
    /// a command that found nothing to serve. Where the client may not block (inside MULTI),
    /// writes `refused` as the reply instead, as if the timeout had passed at once. See
    /// `crate::services::blocking`.
    pub(crate) fn block<'k>(
        &mut self,
        wants: &'static str,
        keys: impl IntoIterator<Item = &'k [u8]>,
        timeout: Timeout,
        refused: fn(&mut Reply),
    ) -> CmdResult {
        let wait = &mut self.session.wait;
        match wait.mode {
            Mode::NoBlock => refused(self.out),
            Mode::Retry => wait.requested = true,
            Mode::MayBlock => {
                wait.requested = true;
                wait.timeout = timeout;
                wait.wants = wants;
                for key in keys {
                    // Redis waits once on a key named twice.
                    if !wait.keys.iter().any(|k| **k == *key) {
                        wait.keys.push(key.into());
                    }
                }
            }
        }
        Ok(())
    }

    /// [`Ctx::block`] for a command that must run again as `rerun` rather than as it was
    /// called (XREAD's `$` stands for the last ID when it blocked, not when it runs again).
    pub(crate) fn block_as<'k>(
        &mut self,
        wants: &'static str,
        keys: impl IntoIterator<Item = &'k [u8]>,
        timeout: Timeout,
        refused: fn(&mut Reply),
        rerun: ArgVec,
    ) -> CmdResult {
        if self.session.wait.mode == Mode::MayBlock {
            self.session.wait.rerun = Some(rerun);
        }
        self.block(wants, keys, timeout, refused)
    }

    /// When run again for a waiting client: the key whose change is being served, if one is
    /// (see [`crate::model::wait::Wait::ready`]).
    pub(crate) fn ready_key(&self) -> Option<&[u8]> {
        self.session.wait.ready.as_deref()
    }

    /// Declares that this command's changes need no log record: what it changed is not kept
    /// across a restart (a consumer's seen time), or was recorded by other means.
    pub(crate) fn propagate_none(&mut self) {
        self.session.effects.replaced = true;
    }

    /// Says what the append-only log (and, later, replicas) must record for this command,
    /// instead of its own arguments. By default a write command that changed the keyspace is
    /// logged as it was called; a command whose arguments do not determine its effect logs the
    /// effect instead: SPOP as SREM of the members it popped, INCRBYFLOAT as SET of the result,
    /// a relative expiry as an absolute one, a blocking pop as the plain pop it performed. Each
    /// call adds one record, in the current database; a command that calls it and then
    /// changes nothing logs nothing (call it only for effects that happened).
    pub(crate) fn propagate(&mut self, record: &[&[u8]]) {
        let keep = self.logged();
        let effects = &mut self.session.effects;
        effects.replaced = true;
        if keep {
            // Not copied when nothing will read it: an EXPIRE in a script paid 540
            // instructions for a record no log wrote.
            effects.records.push(ArgVec::copy_of(record));
        }
    }

    /// Raises the keyspace event `event` (Redis's name: "lpush", "hset", "del", "expired",
    /// ...) of class `class` (see `crate::core::events`) for `key` in the current database,
    /// after the change it names. Commands raise the same events as Redis 7.0, in the same order.
    pub(crate) fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        self.notify_in(self.session.db(), class, event, key);
    }

    /// [`Ctx::notify`] for a key of database `db` (COPY ... DB).
    pub(crate) fn notify_in(&mut self, db: usize, class: u32, event: &'static str, key: &[u8]) {
        let pubsub = self.server.pubsub();
        if !pubsub.wants(class) {
            return; // one relaxed load when nobody asked for events
        }
        if let Some(i) = &self.session.txn.interactive {
            // Inside BEGIN the change is private until COMMIT, which raises the event then.
            i.deferred.lock().events.push((class, event, db, key.into()));
            return;
        }
        crate::services::expired::announce(pubsub);
        pubsub.keyspace_event(class, event, key, db);
        self.deliver_own();
    }

    /// Writes the messages already in the session's own mailbox into its reply, where Redis
    /// would have put them: a RESP3 client that publishes to (or changes a key it watches
    /// through keyspace events on) a channel it listens to gets the message before the
    /// command's reply; a subscription's confirmation comes after the messages that arrived
    /// before it.
    pub(crate) fn deliver_own(&mut self) {
        let mailbox = &self.session.info().pubsub.mailbox;
        if mailbox.pending() == 0 {
            return;
        }
        let size = mailbox.take_into(self.out);
        mailbox.release(size, &self.server.pubsub().limits);
    }
}
