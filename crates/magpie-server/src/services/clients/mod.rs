//! Connected clients: what others may see of each (CLIENT LIST), and the registry of them all.
//! A connection's own state is its session (`crate::model::Session`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

pub(crate) mod tracking;

/// What other connections may see of a client (CLIENT LIST). Written by its own connection
/// only, once per batch of commands, so readers cost the hot path nothing.
pub(crate) struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    /// Milliseconds since `created` at the last command.
    pub last_active_ms: AtomicU64,
    pub db: AtomicUsize,
    pub resp: AtomicUsize,
    pub name: Mutex<Option<Vec<u8>>>,
    pub last_cmd: Mutex<&'static str>,
    /// The user it authenticated as (CLIENT LIST's `user`).
    pub user: Mutex<Box<[u8]>>,
    /// Waiting in a blocking command (CLIENT LIST's `b` flag).
    pub blocked: AtomicBool,
    /// Subscriptions and the mailbox of messages for them (see `super::pubsub`).
    pub pubsub: super::pubsub::ClientPubSub,
    /// What others ask of this client's connection (CLIENT KILL, CLIENT UNBLOCK), and what its
    /// own CLIENT commands set that the front end acts on (REPLY, NO-EVICT).
    pub control: Control,
}

/// A client's controls: set by CLIENT commands (its own or another client's), read by its
/// connection.
#[derive(Default)]
pub(crate) struct Control {
    /// CLIENT KILL chose it: the connection closes.
    killed: AtomicBool,
    /// CLIENT UNBLOCK: 0 none, [`UNBLOCK_TIMEOUT`] or [`UNBLOCK_ERROR`].
    unblock: AtomicU8,
    /// Wakes the connection for either.
    wake: Notify,
    /// CLIENT REPLY: [`REPLY_ON`], [`REPLY_OFF`], [`REPLY_SKIP_NEXT`] or [`REPLY_SKIP`].
    reply: AtomicU8,
    /// CLIENT NO-EVICT on (`maxmemory-clients` spares it; CLIENT LIST's `e` flag).
    pub no_evict: AtomicBool,
    /// Bytes of replies waiting to be written (CLIENT LIST's `omem`, with the pub/sub mailbox).
    pub omem: AtomicU64,
    /// Bytes of input not parsed yet (CLIENT LIST's `qbuf`).
    pub qbuf: AtomicU64,
    /// CLIENT TRACKING: the client's mode (see [`tracking`]).
    pub tracking: Mutex<ClientTracking>,
    /// Tracking is on (a quick look at `tracking.on`).
    tracking_on: AtomicBool,
    /// Invalidation messages may come to this client (it tracks keys, or others redirect
    /// theirs to it): its connection listens to its mailbox even without subscriptions.
    pub pushes: AtomicBool,
}

/// A client's CLIENT TRACKING mode, as Redis's client flags and fields.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientTracking {
    pub on: bool,
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// CLIENT CACHING yes (OPTIN) or no (OPTOUT) given for the next command.
    pub caching: bool,
    /// Invalidations go to this client id instead (0: to the client itself).
    pub redirect: u64,
    /// The client redirected to is gone.
    pub broken_redirect: bool,
    /// BCAST prefixes, sorted.
    pub prefixes: Vec<Box<[u8]>>,
}

pub(crate) const UNBLOCK_TIMEOUT: u8 = 1;
pub(crate) const UNBLOCK_ERROR: u8 = 2;
pub(crate) const REPLY_ON: u8 = 0;
pub(crate) const REPLY_OFF: u8 = 1;
pub(crate) const REPLY_SKIP_NEXT: u8 = 2;
pub(crate) const REPLY_SKIP: u8 = 3;

impl Control {
    /// CLIENT KILL: the connection closes as soon as it notices (at once if it waits).
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        self.wake.notify_waiters();
    }

    pub(crate) fn tracking_on(&self) -> bool {
        self.tracking_on.load(Ordering::Relaxed)
    }

    pub(crate) fn set_tracking_on(&self, on: bool) {
        self.tracking_on.store(on, Ordering::Relaxed);
        if on {
            self.pushes.store(true, Ordering::Relaxed);
        }
    }

    pub(crate) fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Relaxed)
    }

    /// Resolves once the client is killed.
    pub(crate) async fn killed(&self) {
        loop {
            let woken = self.wake.notified();
            if self.is_killed() {
                return;
            }
            woken.await;
        }
    }

    /// CLIENT UNBLOCK: ends the client's wait in a blocking command, as a timeout or an error.
    pub(crate) fn unblock(&self, how: u8) {
        self.unblock.store(how, Ordering::Relaxed);
        self.wake.notify_waiters();
    }

    /// Resolves when the client is asked to stop waiting (or is killed): how (0 if killed),
    /// clearing the request.
    pub(crate) async fn unblocked(&self) -> u8 {
        loop {
            let woken = self.wake.notified();
            let how = self.unblock.swap(0, Ordering::Relaxed);
            if how != 0 || self.is_killed() {
                return how;
            }
            woken.await;
        }
    }

    /// Forgets a request to stop waiting that came too late (the wait had ended).
    pub(crate) fn clear_unblock(&self) {
        self.unblock.store(0, Ordering::Relaxed);
    }

    /// CLIENT REPLY ON|OFF|SKIP; SKIP while OFF changes nothing, as in Redis.
    pub(crate) fn set_reply(&self, mode: u8) {
        if mode == REPLY_SKIP_NEXT && self.reply.load(Ordering::Relaxed) == REPLY_OFF {
            return;
        }
        self.reply.store(mode, Ordering::Relaxed);
    }

    /// After each command: whether its reply is dropped (CLIENT REPLY OFF, or the command
    /// after CLIENT REPLY SKIP). The SKIP itself arms the skip for the next command.
    pub(crate) fn drop_reply(&self) -> bool {
        match self.reply.load(Ordering::Relaxed) {
            REPLY_ON => false,
            REPLY_SKIP_NEXT => {
                self.reply.store(REPLY_SKIP, Ordering::Relaxed);
                true
            }
            REPLY_SKIP => {
                self.reply.store(REPLY_ON, Ordering::Relaxed);
                true
            }
            _ => true,
        }
    }
}

impl ClientInfo {
    /// One line of CLIENT LIST / CLIENT INFO, with Redis 7.0's fields.
    pub(crate) fn line(&self) -> Vec<u8> {
        let age = self.created.elapsed();
        let idle_ms = u64::try_from(age.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_sub(self.last_active_ms.load(Ordering::Relaxed));
        let mut line = format!("id={} addr={} laddr={} fd=0 name=", self.id, self.addr, self.laddr).into_bytes();
        // Redis's order of the flags we have; N when there are none.
        let mut flags = String::new();
        if self.pubsub.monitor.load(Ordering::Relaxed) {
            flags.push('O');
        }
        if self.pubsub.active() {
            flags.push('P');
        }
        if self.blocked.load(Ordering::Relaxed) {
            flags.push('b');
        }
        let (redir, tracking_flags) = {
            let t = self.control.tracking.lock();
            let redir = if t.on { t.redirect as i64 } else { -1 };
            (redir, [(t.on, 't'), (t.broken_redirect, 'R'), (t.bcast, 'B')])
        };
        flags.extend(tracking_flags.iter().filter(|f| f.0).map(|f| f.1));
        if self.control.no_evict.load(Ordering::Relaxed) {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let [sub, psub, ssub] = self.pubsub.counts();
        let omem = self.pubsub.mailbox.pending() as u64 + self.control.omem.load(Ordering::Relaxed);
        let qbuf = self.control.qbuf.load(Ordering::Relaxed);
        if let Some(name) = &*self.name.lock() {
            line.extend_from_slice(name);
        }
        line.extend_from_slice(
            format!(
                " age={} idle={} flags={flags} db={} sub={sub} psub={psub} ssub={ssub} multi=-1 qbuf={qbuf} qbuf-free=0 \
                 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={omem} tot-mem={} events=r cmd={} user=",
                age.as_secs(),
                idle_ms / 1000,
                self.db.load(Ordering::Relaxed),
                self.memory(),
                self.last_cmd.lock(),
            )
            .as_bytes(),
        );
        line.extend_from_slice(&self.user.lock());
        line.extend_from_slice(format!(" redir={redir} resp={}", self.resp.load(Ordering::Relaxed)).as_bytes());
        line
    }
}

impl ClientInfo {
    /// What the client's buffers hold: its unparsed input and its replies not yet written
    /// (CLIENT LIST's `tot-mem`, what `maxmemory-clients` counts).
    pub(crate) fn memory(&self) -> u64 {
        self.control.qbuf.load(Ordering::Relaxed)
            + self.control.omem.load(Ordering::Relaxed)
            + self.pubsub.mailbox.pending() as u64
    }

    /// A client of the server itself (replaying the log, a script's calls), in no registry.
    pub(crate) fn internal() -> Arc<ClientInfo> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Arc::new(ClientInfo::new(0, addr, addr))
    }

    fn new(id: u64, addr: SocketAddr, laddr: SocketAddr) -> ClientInfo {
        ClientInfo {
            id,
            addr,
            laddr,
            created: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            db: AtomicUsize::new(0),
            resp: AtomicUsize::new(2),
            name: Mutex::new(None),
            last_cmd: Mutex::new("NULL"),
            user: Mutex::new(b"default".to_vec().into_boxed_slice()),
            blocked: AtomicBool::new(false),
            pubsub: Default::default(),
            control: Default::default(),
        }
    }
}

/// All connected clients.
#[derive(Default)]
pub(crate) struct Registry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    /// Connections accepted and served (INFO's `total_connections_received`).
    pub accepted: AtomicU64,
    /// Connections refused for `maxclients` (INFO's `rejected_connections`).
    pub rejected: AtomicU64,
    /// CLIENT PAUSE: what is paused and until when.
    pause: Mutex<Pause>,
    /// [`Pause::kind`] of the current pause, read without the lock on every command.
    paused: AtomicU8,
    /// Wakes the paused clients when the pause ends early (CLIENT UNPAUSE).
    unpaused: Notify,
    /// CLIENT TRACKING's tables.
    pub tracking: tracking::Tracking,
    /// Clients closed by `maxmemory-clients` (INFO's `evicted_clients`).
    pub evicted: AtomicU64,
}

/// What CLIENT PAUSE pauses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PauseKind {
    /// Commands that write or may replicate (Redis's CLIENT_PAUSE_WRITE), and expiry.
    Write = 1,
    All = 2,
}

#[derive(Default)]
struct Pause {
    kind: Option<PauseKind>,
    /// Milliseconds since the epoch when it ends.
    end_ms: u64,
}

impl Registry {
    /// Registers a new connection and returns what others may see of it.
    pub(crate) fn connect(&self, addr: SocketAddr, laddr: SocketAddr) -> Arc<ClientInfo> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let info = Arc::new(ClientInfo::new(id, addr, laddr));
        self.clients.lock().insert(id, info.clone());
        info
    }

    pub(crate) fn disconnect(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    pub(crate) fn len(&self) -> usize {
        self.clients.lock().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The client with this id, if connected.
    pub(crate) fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.clients.lock().get(&id).cloned()
    }

    /// CLIENT PAUSE: pauses what `kind` says until `end_ms`; a pause in force is widened (the
    /// stronger kind, the later end), as Redis's `pauseClients`.
    pub(crate) fn pause(&self, kind: PauseKind, end_ms: u64) {
        let mut p = self.pause.lock();
        p.kind = p.kind.max(Some(kind));
        p.end_ms = p.end_ms.max(end_ms);
        self.paused.store(p.kind.map_or(0, |k| k as u8), Ordering::Relaxed);
    }

    /// CLIENT UNPAUSE.
    pub(crate) fn unpause(&self) {
        *self.pause.lock() = Pause::default();
        self.paused.store(0, Ordering::Relaxed);
        self.unpaused.notify_waiters();
    }

    /// Whether a pause may be in force (no lock, no clock: see [`Registry::paused`]).
    #[inline]
    pub(crate) fn maybe_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed) != 0
    }

    /// The pause in force at `now_ms`, and when it ends; a pause whose time has passed ends.
    pub(crate) fn paused(&self, now_ms: u64) -> Option<(PauseKind, u64)> {
        if self.paused.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut p = self.pause.lock();
        match p.kind {
            Some(kind) if p.end_ms >= now_ms => Some((kind, p.end_ms)),
            _ => {
                *p = Pause::default();
                self.paused.store(0, Ordering::Relaxed);
                None
            }
        }
    }

    /// Resolves when CLIENT UNPAUSE ends the pause (a paused client also watches the time).
    pub(crate) async fn unpaused(&self) {
        let woken = self.unpaused.notified();
        if self.paused.load(Ordering::Relaxed) == 0 {
            return;
        }
        woken.await;
    }

    /// Client eviction (`maxmemory-clients`, Redis's `evictClients`): while the clients'
    /// buffers together pass `limit` bytes, the largest client that may be evicted (not
    /// CLIENT NO-EVICT) is closed, and logged. Returns how many were.
    pub(crate) fn evict_over(&self, limit: u64) -> u64 {
        if limit == 0 {
            return 0;
        }
        let mut clients: Vec<(u64, Arc<ClientInfo>)> =
            self.list().into_iter().filter(|c| !c.control.is_killed()).map(|c| (c.memory(), c)).collect();
        let mut total: u64 = clients.iter().map(|c| c.0).sum();
        if total < limit {
            return 0;
        }
        clients.retain(|(_, c)| !c.control.no_evict.load(Ordering::Relaxed));
        clients.sort_by_key(|(mem, _)| std::cmp::Reverse(*mem));
        let mut evicted = 0;
        for (mem, c) in clients {
            if total < limit {
                break;
            }
            tracing::info!("Evicting client: {}", String::from_utf8_lossy(&c.line()));
            c.control.kill();
            total -= mem;
            evicted += 1;
        }
        if total >= limit {
            tracing::warn!("Over client maxmemory after evicting all evictable clients");
        }
        self.evicted.fetch_add(evicted, Ordering::Relaxed);
        evicted
    }

    /// A snapshot of the connected clients, in id order.
    pub(crate) fn list(&self) -> Vec<Arc<ClientInfo>> {
        self.clients.lock().values().cloned().collect()
    }
}
