//! Blocking commands (BLPOP, BLMOVE, BZPOPMIN, ...): clients waiting on keys, and the order
//! they are served in. Running a waiter's command again is the execution layer's (it passes a
//! [`Rerun`]); this service only keeps the queues.
//!
//! # Writing a blocking command
//!
//! A blocking command is an ordinary handler. It parses its arguments (the timeout with
//! `crate::model::wait::timeout_arg`), tries to serve at once, and when there is nothing to serve it calls
//! `Ctx::block` with the keys to wait on, the timeout and the
//! reply to give when it may not block:
//!
//! ```text
//! let timeout = blocking::timeout_arg(args.get(args.len() - 1))?;
//! if try_pop(ctx, keys)? { return Ok(()) }        // served: the reply is written
//! ctx.block(keys, timeout, Reply::null_array)      // nothing yet
//! ```
//!
//! What `block` does depends on its `Mode`:
//! - `MayBlock` (a plain call): the connection registers the client on the keys and waits. It
//!   keeps reading (buffering) what the client sends but runs nothing else. When one of the
//!   keys is signalled (`Ctx::signal`, called by every command
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

use magpie_protocol::{ArgVec, Args, Resp};
use magpie_store::Keyspace;

use super::clients::ClientInfo;

/// A client waiting on keys: its command, kept to run again, and how it ends.
pub(crate) struct Waiter {
    pub db: usize,
    pub info: Arc<ClientInfo>,
    pub proto: Resp,
    /// The command's id in the command table (and its statistics).
    pub cmd: usize,
    /// The type of value it waits for (`"list"`, `"zset"`, `"stream"`; `"stream-group"` for
    /// XREADGROUP, which also ends when its key is gone): a key holding another type serves
    /// nobody here, as in Redis.
    pub wants: &'static str,
    args: ArgVec,
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

/// Runs a waiter's command again (see [`Blocking::serve`]), for the key being served (`None`:
/// any of its keys, as on its first run): the reply and the log record its write added if it
/// was served, `None` if it waits on.
pub(crate) type Rerun<'a> = dyn FnMut(&Waiter, Option<&[u8]>) -> Option<(Vec<u8>, u64)> + 'a;

impl Waiter {
    /// A waiter for the client `info`, in database `db`, that ran command `cmd` with `args`
    /// and waits on `keys` for a value of type `wants`.
    pub(crate) fn new(
        info: Arc<ClientInfo>,
        db: usize,
        proto: Resp,
        cmd: usize,
        args: Args<'_>,
        keys: Vec<Box<[u8]>>,
        wants: &'static str,
    ) -> Waiter {
        Waiter {
            db,
            info,
            proto,
            cmd,
            wants,
            args: ArgVec::from_args(args),
            keys,
            state: Mutex::new(State::Waiting),
            notify: Notify::new(),
        }
    }

    /// Resolves when the waiter has been served (check with [`Blocking::leave`]).
    pub(crate) async fn served(&self) {
        self.notify.notified().await;
    }

    /// The command's arguments.
    pub(crate) fn args(&self) -> Args<'_> {
        self.args.args()
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
pub(crate) struct Blocking {
    /// Clients waiting right now; zero makes `signal` free. Counted from the start of
    /// [`Blocking::register`], before the client is queued.
    count: AtomicUsize,
    /// Clients queued on their keys (INFO's `blocked_clients`): counted only once queued, so
    /// that a push made after INFO shows a client blocked is signalled to it, and a pop made
    /// meanwhile lets it go first. (`count` can show a client that is not queued yet: a push
    /// then does not signal it, and a concurrent pop may take the element before it looks.)
    queued: AtomicUsize,
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
    pub(crate) fn blocked(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Says that `key` in `db` may now hold what a blocked client waits for; the key is served
    /// after the current command. The keyspace calls it (through its ready hook, installed by
    /// `Server::new`) for every change to a waited key, with the key's shard still locked:
    /// then a command that takes elements checks [`Blocking::is_pending`] under the same lock
    /// and lets the waiters go first.
    pub(crate) fn signal(&self, db: usize, key: &[u8]) {
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
    pub(crate) fn is_pending(&self, db: usize, key: &[u8]) -> bool {
        self.pending.load(Ordering::SeqCst) && self.inner.lock().pending.get(&db).is_some_and(|p| p.contains_key(key))
    }

    /// Whether signalled keys wait to be served (cheap; checked after every command).
    #[inline]
    pub(crate) fn has_ready(&self) -> bool {
        self.unserved.load(Ordering::Acquire)
    }

    /// Queues `waiter` on its keys, and tells the keyspace that they are waited on: from now
    /// on it signals their changes (see `Shard::block_on`).
    pub(crate) fn register(&self, ks: &Keyspace, waiter: &Arc<Waiter>) {
        waiter.info.blocked.store(true, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::SeqCst);
        // Marked before queueing, each under its shard's lock (never with `inner` held: the
        // keyspace signals with a shard locked, and `signal` then takes `inner`).
        let db = ks.db(waiter.db);
        for key in &waiter.keys {
            db.write(key).block_on(key);
        }
        let mut inner = self.inner.lock();
        let queues = inner.queues.entry(waiter.db).or_default();
        for key in &waiter.keys {
            queues.entry(key.clone()).or_default().push_back(waiter.clone());
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
    }

    /// Takes `waiter` out of its queues, and its keys out of the keyspace's waited keys.
    /// Called once, by whoever ends its wait, under its state lock.
    fn unqueue(&self, ks: &Keyspace, waiter: &Arc<Waiter>) {
        waiter.info.blocked.store(false, Ordering::Relaxed);
        let mut inner = self.inner.lock();
        self.queued.fetch_sub(1, Ordering::SeqCst);
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
        let db = ks.db(waiter.db);
        for key in &waiter.keys {
            db.write(key).unblock(key);
        }
        self.count.fetch_sub(1, Ordering::SeqCst);
    }

    /// Ends the wait of `waiter` for its own connection: returns the reply if it was served
    /// (perhaps just now), else takes it out of its queues and returns `None`.
    pub(crate) fn leave(&self, ks: &Keyspace, waiter: &Arc<Waiter>) -> Option<(Vec<u8>, u64)> {
        let mut state = waiter.state.lock();
        match std::mem::replace(&mut *state, State::Left) {
            State::Served(reply, wrote) => Some((reply, wrote)),
            State::Waiting => {
                self.unqueue(ks, waiter);
                None
            }
            State::Left => None,
        }
    }

    /// Runs the command of `waiter` again (for `key`, or any of its keys) if it is still
    /// waiting; if that serves it, records the reply, takes it out of its queues and wakes its
    /// connection. Returns whether it was served.
    pub(crate) fn try_serve(
        &self,
        ks: &Keyspace,
        waiter: &Arc<Waiter>,
        key: Option<&[u8]>,
        rerun: &mut Rerun<'_>,
    ) -> bool {
        let mut state = waiter.state.lock();
        if !matches!(*state, State::Waiting) {
            return false;
        }
        let Some((reply, wrote)) = rerun(waiter, key) else { return false };
        *state = State::Served(reply, wrote);
        self.unqueue(ks, waiter);
        drop(state);
        waiter.notify.notify_one();
        true
    }

    /// Serves the clients waiting on the keys signalled so far: each key's waiters in the
    /// order they blocked, until one finds nothing. Called after every command that left keys
    /// ready, before that command's connection runs anything else.
    pub(crate) fn serve(&self, ks: &Keyspace, rerun: &mut Rerun<'_>) {
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
                self.serve_key(ks, db, &key, rerun);
            }
        }
    }

    /// Serves the waiters of one key, front to back, until one finds nothing; again if the
    /// key was signalled meanwhile. The key stays pending until then.
    fn serve_key(&self, ks: &Keyspace, db: usize, key: &[u8], rerun: &mut Rerun<'_>) {
        loop {
            self.serve_queue(ks, db, key, rerun);
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

    fn serve_queue(&self, ks: &Keyspace, db: usize, key: &[u8], rerun: &mut Rerun<'_>) {
        let held = key_type(ks, db, key);
        self.serve_stream_readers(ks, db, key, held, rerun);
        let Some(held) = held.filter(|t| matches!(*t, "list" | "zset")) else { return };
        loop {
            // The oldest waiter that waits for what the key holds.
            let front = {
                let inner = self.inner.lock();
                let queue = inner.queues.get(&db).and_then(|q| q.get(key));
                queue.and_then(|q| q.iter().find(|w| w.wants == held).cloned())
            };
            let Some(front) = front else { return };
            if !self.try_serve(ks, &front, Some(key), rerun) && matches!(*front.state.lock(), State::Waiting) {
                // It found nothing: neither will the ones behind it. (A waiter that was
                // served or left meanwhile is out of the queue: go on with the next.)
                return;
            }
        }
    }

    /// Stream readers of a key, each tried once in the order they blocked, as Redis's
    /// `serveClientsBlockedOnStreamKey`: reading takes nothing from the others, and a reader
    /// that finds nothing says nothing about the next (each waits past its own ID, or its own
    /// group's). XREAD waits for a stream; XREADGROUP is also run when the key is gone or
    /// holds another type, and fails then (`unblockDeletedStreamReadgroupClients`).
    fn serve_stream_readers(
        &self,
        ks: &Keyspace,
        db: usize,
        key: &[u8],
        held: Option<&'static str>,
        rerun: &mut Rerun<'_>,
    ) {
        let readers: Vec<Arc<Waiter>> = {
            let inner = self.inner.lock();
            let Some(queue) = inner.queues.get(&db).and_then(|q| q.get(key)) else { return };
            queue
                .iter()
                .filter(|w| w.wants == "stream-group" || (w.wants == "stream" && held == Some("stream")))
                .cloned()
                .collect()
        };
        for w in readers {
            self.try_serve(ks, &w, Some(key), rerun);
        }
    }
}

/// The type of `key`, if it exists. Like Redis, a key that received a value of another type
/// (RENAME of a string onto it) serves nobody, and a list serves only clients waiting for
/// lists: they keep waiting.
fn key_type(ks: &Keyspace, db: usize, key: &[u8]) -> Option<&'static str> {
    let shard = ks.db(db).read(key);
    shard.get(key, magpie_store::now_ms()).map(|e| e.value.type_name())
}
