//! Blocking commands (BLPOP, BLMOVE, BZPOPMIN, ...): clients waiting on keys, and how they
//! are served.
//!
//! # Writing a blocking command
//!
//! A blocking command is an ordinary handler. It parses its arguments (the timeout with
//! [`timeout_arg`]), tries to serve at once, and when there is nothing to serve it calls
//! [`Ctx::block`](crate::command::Ctx::block) with the keys to wait on, the timeout and the
//! reply to give when it may not block:
//!
//! ```text
//! let timeout = blocking::timeout_arg(args.get(args.len() - 1))?;
//! if try_pop(ctx, keys)? { return Ok(()) }        // served: the reply is written
//! ctx.block(keys, timeout, Reply::null_array)      // nothing yet
//! ```
//!
//! What `block` does depends on [`Mode`]:
//! - `MayBlock` (a plain call): the connection registers the client on the keys and waits. It
//!   keeps reading (buffering) what the client sends but runs nothing else. When one of the
//!   keys is signalled ([`Ctx::signal`](crate::command::Ctx::signal), called by every command
//!   that adds elements), the handler runs again, as the same client, in `Retry` mode.
//! - `Retry`: `block` writes nothing and the client goes on waiting, in its place.
//! - `NoBlock` (inside MULTI, a later issue): `block` writes the refusal reply (the command
//!   behaves as if it had timed out at once).
//!
//! When the deadline passes the client gets a null array (Redis's timeout reply for lists and
//! sorted sets). A client that disconnects while waiting leaves its queues at once.
//!
//! # Order and atomicity
//!
//! Clients waiting on a key are served in the order they blocked. Serving happens right after
//! the command that signalled, on that command's thread and before its connection runs its
//! next command: one thread at a time serves (the `serving` lock), key by key in the order
//! they were signalled, each key's waiters front to back until one of them finds nothing. A
//! command run to serve a waiter may signal more keys (BLMOVE pushes to its destination);
//! they are served in the same pass.
//!
//! No wake-up is lost: a client registers on its keys first and then runs its handler once
//! more (`Retry`); a push that its first attempt missed is seen by that second attempt, and a
//! push after the second attempt sees the registered client. No element is served twice: a
//! waiter is served under its own lock, at most once, and a timeout or disconnect takes the
//! same lock to leave.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use magpie_protocol::{Args, Reply, Resp};

use crate::client::{Client, ClientInfo};
use crate::command::{Command, Ctx, Effects};
use crate::error::Error;
use crate::server::Shared;
use crate::stats;

/// Whether a blocking command may make its client wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// A plain call: wait when there is nothing to serve.
    #[default]
    MayBlock,
    /// Inside MULTI (or a script): never wait; reply as if the timeout had passed.
    NoBlock,
    /// Run again for a waiting client: serve it, or leave it waiting without a reply.
    Retry,
}

/// How long a blocked client waits: `None` forever, else milliseconds.
pub type Timeout = Option<u64>;

/// What a blocking command asked of its connection through [`Ctx::block`].
#[derive(Debug, Default)]
pub struct Wait {
    pub mode: Mode,
    /// Set by `Ctx::block` when the command did not serve.
    pub requested: bool,
    /// The keys to wait on (in the client's database), without duplicates, in order.
    pub keys: Vec<Box<[u8]>>,
    pub timeout: Timeout,
    /// The command's id in the statistics (set by dispatch when it waits).
    pub id: usize,
}

impl Wait {
    pub fn clear(&mut self) {
        self.requested = false;
        self.keys.clear();
        self.timeout = None;
    }
}

/// Parses a timeout in seconds as Redis 7.0 does: a long double (`strtold`: decimals,
/// exponents, hex), times 1000, rounded up to whole milliseconds; 0 means forever.
pub fn timeout_arg(arg: &[u8]) -> Result<Timeout, Error> {
    let ms = crate::float::timeout_ms(arg).ok_or_else(|| Error::from("ERR timeout is not a float or out of range"))?;
    if ms < 0 {
        return Err("ERR timeout is negative".into());
    }
    Ok(u64::try_from(ms).ok().filter(|&ms| ms > 0))
}

/// A client waiting on keys: its command, kept to run again, and how it ends.
pub struct Waiter {
    db: usize,
    client_id: u64,
    info: Arc<ClientInfo>,
    proto: Resp,
    cmd: &'static Command,
    /// The command's id in the statistics.
    id: usize,
    /// The command's arguments: `buf` sliced by `spans`.
    buf: Vec<u8>,
    spans: Vec<(usize, usize)>,
    keys: Vec<Box<[u8]>>,
    state: Mutex<State>,
    notify: Notify,
}

enum State {
    Waiting,
    /// Served: the reply to send, and the log record its write added (0: none), which under
    /// `appendfsync always` must be on disk before the reply goes out.
    Served(Vec<u8>, u64),
    /// Timed out, disconnected or shut down.
    Left,
}

impl Waiter {
    /// A waiter for `client`, which ran `cmd` with `args` and asked to wait as `wait` says.
    pub fn new(client: &Client, proto: Resp, cmd: &'static Command, args: Args<'_>, wait: &Wait) -> Waiter {
        let mut buf = Vec::new();
        let mut spans = Vec::with_capacity(args.len());
        for a in args.iter() {
            spans.push((buf.len(), buf.len() + a.len()));
            buf.extend_from_slice(a);
        }
        Waiter {
            db: client.db,
            client_id: client.id,
            info: client.info.clone(),
            proto,
            cmd,
            id: wait.id,
            buf,
            spans,
            keys: wait.keys.clone(),
            state: Mutex::new(State::Waiting),
            notify: Notify::new(),
        }
    }

    /// Resolves when the waiter has been served (check with [`Blocking::leave`]).
    pub async fn served(&self) {
        self.notify.notified().await;
    }

    /// Counts the command once, when it ends without being served (timeout, disconnect), as
    /// Redis counts a blocking command when it unblocks.
    pub fn count_unserved(&self) {
        let keys = self.cmd.key_count_in(self.args());
        stats::local().call(self.id, false, self.cmd.op, keys);
    }

    /// The type its command waits for, from its group: "list" or "zset".
    fn wants(&self) -> &'static str {
        if self.cmd.group == "list" { "list" } else { "zset" }
    }

    fn args(&self) -> Args<'_> {
        Args::new(&self.buf, &self.spans)
    }
}

/// Queues of waiters on one database's keys, oldest first.
type Queues = HashMap<Box<[u8]>, VecDeque<Arc<Waiter>>, foldhash::fast::RandomState>;

#[derive(Default)]
struct Inner {
    /// By database.
    queues: HashMap<usize, Queues>,
    /// Keys signalled while someone waits on them, in order, not yet taken by a serving pass.
    ready: Vec<(usize, Box<[u8]>)>,
    /// Keys signalled and not yet served (in `ready`, or being served), by database; the flag
    /// says a key was signalled again while being served, so it is served once more.
    pending: HashMap<usize, HashMap<Box<[u8]>, bool, foldhash::fast::RandomState>>,
}

/// The clients blocked on keys, by (database, key), oldest first.
#[derive(Default)]
pub struct Blocking {
    /// Clients waiting right now; zero makes `signal` free.
    count: AtomicUsize,
    /// Some key is in `ready`: the command that signalled it serves it when it finishes.
    unserved: AtomicBool,
    /// Some key is pending (signalled, not yet served): commands that take elements check.
    pending: AtomicBool,
    inner: Mutex<Inner>,
    /// Held while serving, so waiters of a key are served in order.
    serving: Mutex<()>,
}

impl Blocking {
    /// Clients blocked right now (INFO's `blocked_clients`).
    pub fn blocked(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Says that `key` in `db` may now hold what a blocked client waits for. Costs one atomic
    /// load while nobody is blocked; otherwise the key is served after the current command.
    /// Call it while the key's shard is still locked: then a command that takes elements
    /// checks [`Blocking::is_pending`] under the same lock and lets the waiters go first.
    pub fn signal(&self, db: usize, key: &[u8]) {
        // SeqCst, paired with the increment in `register`: a client that registers after this
        // load saw zero runs its handler again after this command's change, and sees it.
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        let waited = inner.queues.get(&db).is_some_and(|q| q.contains_key(key));
        if !waited {
            return;
        }
        let pending = inner.pending.entry(db).or_default();
        if let Some(again) = pending.get_mut(key) {
            *again = true;
            return;
        }
        pending.insert(key.into(), false);
        inner.ready.push((db, key.into()));
        self.pending.store(true, Ordering::SeqCst);
        self.unserved.store(true, Ordering::SeqCst);
    }

    /// Whether clients blocked on `key` have been signalled and not served yet: a command
    /// about to take elements from it must let them go first (call [`Blocking::serve`] with
    /// no lock held, then look again). Check it with the key's shard locked.
    pub fn is_pending(&self, db: usize, key: &[u8]) -> bool {
        self.pending.load(Ordering::SeqCst) && self.inner.lock().pending.get(&db).is_some_and(|p| p.contains_key(key))
    }

    /// Whether signalled keys wait to be served (cheap; checked after every command).
    #[inline]
    pub fn has_ready(&self) -> bool {
        self.unserved.load(Ordering::Acquire)
    }

    /// Queues `waiter` on its keys.
    pub fn register(&self, waiter: &Arc<Waiter>) {
        waiter.info.blocked.store(true, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::SeqCst);
        let mut inner = self.inner.lock();
        let queues = inner.queues.entry(waiter.db).or_default();
        for key in &waiter.keys {
            queues.entry(key.clone()).or_default().push_back(waiter.clone());
        }
    }

    /// Takes `waiter` out of its queues. Called once, by whoever ends its wait, under its
    /// state lock.
    fn unqueue(&self, waiter: &Arc<Waiter>) {
        waiter.info.blocked.store(false, Ordering::Relaxed);
        let mut inner = self.inner.lock();
        if let Some(queues) = inner.queues.get_mut(&waiter.db) {
            for key in &waiter.keys {
                if let Some(q) = queues.get_mut(key) {
                    if let Some(pos) = q.iter().position(|w| Arc::ptr_eq(w, waiter)) {
                        q.remove(pos);
                    }
                    if q.is_empty() {
                        queues.remove(key);
                    }
                }
            }
            if queues.is_empty() {
                inner.queues.remove(&waiter.db);
            }
        }
        drop(inner);
        self.count.fetch_sub(1, Ordering::SeqCst);
    }

    /// Ends the wait of `waiter` for its own connection: returns the reply if it was served
    /// (perhaps just now), else takes it out of its queues and returns `None`.
    pub fn leave(&self, waiter: &Arc<Waiter>) -> Option<(Vec<u8>, u64)> {
        let mut state = waiter.state.lock();
        match std::mem::replace(&mut *state, State::Left) {
            State::Served(reply, wrote) => Some((reply, wrote)),
            State::Waiting => {
                self.unqueue(waiter);
                None
            }
            State::Left => None,
        }
    }

    /// Runs the command of `waiter` again if it is still waiting; if that serves it, records
    /// the reply, takes it out of its queues and wakes its connection. Returns whether it was
    /// served.
    pub fn try_serve(&self, shared: &Arc<Shared>, waiter: &Arc<Waiter>) -> bool {
        let mut state = waiter.state.lock();
        if !matches!(*state, State::Waiting) {
            return false;
        }
        let Some((reply, wrote)) = run_again(shared, waiter) else { return false };
        *state = State::Served(reply, wrote);
        self.unqueue(waiter);
        drop(state);
        waiter.notify.notify_one();
        true
    }

    /// Serves the clients waiting on the keys signalled so far: each key's waiters in the
    /// order they blocked, until one finds nothing. Called after every command that left keys
    /// ready, before that command's connection runs anything else.
    pub fn serve(&self, shared: &Arc<Shared>) {
        let _serving = self.serving.lock();
        loop {
            let ready = {
                let mut inner = self.inner.lock();
                self.unserved.store(false, Ordering::SeqCst);
                if inner.ready.is_empty() {
                    return;
                }
                std::mem::take(&mut inner.ready)
            };
            for (db, key) in ready {
                self.serve_key(shared, db, &key);
            }
        }
    }

    /// Serves the waiters of one key, front to back, until one finds nothing; again if the
    /// key was signalled meanwhile. The key stays pending until then.
    fn serve_key(&self, shared: &Arc<Shared>, db: usize, key: &[u8]) {
        loop {
            self.serve_queue(shared, db, key);
            let mut inner = self.inner.lock();
            let Some(pending) = inner.pending.get_mut(&db) else { return };
            match pending.get_mut(key) {
                Some(again) if *again => *again = false,
                _ => {
                    pending.remove(key);
                    if pending.is_empty() {
                        inner.pending.remove(&db);
                        if inner.pending.is_empty() {
                            self.pending.store(false, Ordering::SeqCst);
                        }
                    }
                    return;
                }
            }
        }
    }

    fn serve_queue(&self, shared: &Arc<Shared>, db: usize, key: &[u8]) {
        let Some(held) = waited_type(shared, db, key) else { return };
        loop {
            // The oldest waiter that waits for what the key holds.
            let front = {
                let inner = self.inner.lock();
                let queue = inner.queues.get(&db).and_then(|q| q.get(key));
                queue.and_then(|q| q.iter().find(|w| w.wants() == held).cloned())
            };
            let Some(front) = front else { return };
            if !self.try_serve(shared, &front) && matches!(*front.state.lock(), State::Waiting) {
                // It found nothing: neither will the ones behind it. (A waiter that was
                // served or left meanwhile is out of the queue: go on with the next.)
                return;
            }
        }
    }
}

/// The type of `key` if it is one that blocking commands wait for: "list" or "zset". Like
/// Redis, a key that received a value of another type (RENAME of a string onto it) serves
/// nobody, and a list serves only clients waiting for lists: they keep waiting.
fn waited_type(shared: &Shared, db: usize, key: &[u8]) -> Option<&'static str> {
    let shard = shared.keyspace.db(db).read(key);
    shard.get(key, magpie_store::now_ms()).map(|e| e.value.type_name()).filter(|t| matches!(*t, "list" | "zset"))
}

/// Runs a waiter's command again as its client, in `Retry` mode. Returns the reply when it
/// was served (the command is then counted, once), `None` when it would wait on.
fn run_again(shared: &Arc<Shared>, waiter: &Waiter) -> Option<(Vec<u8>, u64)> {
    let mut client = Client::with_info(waiter.client_id, waiter.db, waiter.info.clone());
    let mut out = Reply::default();
    out.proto = waiter.proto;
    let mut effects = Effects::default();
    let mut wait = Wait { mode: Mode::Retry, ..Wait::default() };
    let counters = stats::local();
    let mut timer = stats::Timer::start();
    timer.enter(waiter.id, counters);
    let args = waiter.args();
    let mut ctx = Ctx {
        shared,
        ks: &shared.keyspace,
        client: &mut client,
        out: &mut out,
        now: magpie_store::now_ms(),
        stats: counters,
        timer: &mut timer,
        effects: &mut effects,
        wait: &mut wait,
    };
    // Logged as what it did (BLPOP as LPOP), like any write command.
    let result = if waiter.cmd.has(crate::command::flags::WRITE) {
        crate::command::run_logged(&mut ctx, waiter.cmd, args)
    } else {
        (waiter.cmd.run)(&mut ctx, args)
    };
    if wait.requested && result.is_ok() {
        return None;
    }
    if let Err(e) = &result {
        counters.error(&e.0);
        out.error(&e.0);
    }
    counters.call(waiter.id, result.is_err(), waiter.cmd.op, waiter.cmd.key_count_in(args));
    timer.stop(counters);
    Some((out.as_bytes().to_vec(), client.wrote))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_redis_does() {
        assert_eq!(timeout_arg(b"0"), Ok(None));
        assert_eq!(timeout_arg(b"-0"), Ok(None));
        assert_eq!(timeout_arg(b"1"), Ok(Some(1000)));
        assert_eq!(timeout_arg(b"0.0001"), Ok(Some(1))); // rounded up
        assert_eq!(timeout_arg(b"1.5"), Ok(Some(1500)));
        assert_eq!(timeout_arg(b"0x10"), Ok(Some(16_000)));
        assert_eq!(timeout_arg(b"1e3"), Ok(Some(1_000_000)));
        let negative = Err(Error::from("ERR timeout is negative"));
        for s in ["-1", "-0.5", "inf", "1e30", "9.3e15"] {
            assert_eq!(timeout_arg(s.as_bytes()), negative, "{s}");
        }
        let bad = Err(Error::from("ERR timeout is not a float or out of range"));
        for s in ["", "abc", "nan", " 1", "1 ", "1s"] {
            assert_eq!(timeout_arg(s.as_bytes()), bad, "{s:?}");
        }
    }
}
