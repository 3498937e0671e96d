//! The journal: records of write effects on their way to the append-only log, in the order
//! the keyspace applied them, and the writer thread that puts them on disk.
//!
//! Commands run on many threads at once, so records are produced out of order. Each change
//! takes a sequence number under its shard's lock (see `magpie_store::tap`); a command's
//! record carries the last number it took. Records are written in sequence order, which is
//! the order in which the changes to each key happened.
//!
//! The writer must not write record `s` while a record with a smaller number may still come.
//! Each thread that runs write commands has a [`Slot`]: before a command it publishes a lower
//! bound of the numbers it may take (the sequence's current value), and it withdraws it after
//! pushing its record. The writer reads the sequence (`g`) first and then every slot; no
//! record below `min(g + 1, bounds)` can still come (a thread that published after the writer
//! looked takes numbers above `g`), so everything below that watermark is written.
//!
//! A log rewrite switches files at its cut, a sequence number taken while every shard is
//! locked ([`Journal::switch_at`]): records up to the cut go to the old file, the rest to the
//! new one. The writer reads the watermark before it looks for a switch (see
//! `Journal::collect`), so a watermark that has passed a cut always comes with its switch.
//!
//! Fsync policy: `always` acknowledges a write only once its record is on disk. The writer
//! writes the records as they become writable, fdatasyncs them, and moves
//! [`Journal::durable`] to the last record its fsync covers (through [`Journal::relay`], a
//! task on the runtime that wakes the waiting connections on its own thread). While it waits
//! for the disk, the connections execute their next commands and queue their records, and the
//! clients whose records were queued meanwhile share the next write and fsync (group commit);
//! connections wait for [`Journal::durable`] to pass their last record before sending their
//! replies. `everysec` fsyncs on a second thread, the syncer, about once a second, and `no`
//! leaves it to the kernel; neither makes anyone wait. When a write or an fsync fails, the
//! records are kept and retried, and the watchers of [`Journal::durable`] are woken, so that
//! the connections waiting for them answer with the error at once (`front::resp`).
//!
//! The file is preallocated with zeros ahead of the records (`magpie_persist::log`), by the
//! writer after its writes, so that an fdatasync flushes data only; the zeros are
//! cut off when the file is closed (shutdown, the log turned off, a rewrite's switch).

use std::cell::{Cell, OnceCell, RefCell};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::{Notify, watch};
use tracing::{error, info, warn};

use magpie_persist::log::{LogFile, put_record};
use magpie_store::now_ms;

/// Bytes of records queued and not yet written past which, under `everysec` and `no`, a
/// connection that wrote waits for its records to be written before it replies (as under
/// `always`, without the fsync): a disk slower than the writes must slow the writers down,
/// not fill memory.
pub(crate) const MAX_BACKLOG: u64 = 64 << 20;

/// How long the writer waits after a write before it collects again, under `everysec` and
/// `no`: records reach the kernel about this much later than their replies leave.
const BATCH_NAP: Duration = Duration::from_millis(1);

/// Under `everysec` and `no`, once the oldest record not yet written is older than this (in
/// milliseconds; the writer did not get a CPU, or the disk is slow), a connection that wrote
/// waits for its records to be written before it replies. So a process crash loses only
/// writes acknowledged while the oldest unwritten record was at most about this old, however
/// loaded the machine (docs/durability.md); while the writer keeps up, nobody waits.
pub(crate) const MAX_WRITE_LAG_MS: u64 = 2;

/// `appendfsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    Always = 0,
    Everysec = 1,
    No = 2,
}

impl Fsync {
    pub fn parse(s: &str) -> Option<Fsync> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Some(Fsync::Always),
            "everysec" => Some(Fsync::Everysec),
            "no" => Some(Fsync::No),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
            Fsync::No => "no",
        }
    }

    fn from_u8(v: u8) -> Fsync {
        match v {
            0 => Fsync::Always,
            1 => Fsync::Everysec,
            _ => Fsync::No,
        }
    }
}

/// One thread's records, and the lower bound of the numbers it may still take.
pub(crate) struct Slot {
    /// `u64::MAX` when the thread runs no write command.
    bound: AtomicU64,
    buf: Mutex<SlotBuf>,
}

#[derive(Default)]
struct SlotBuf {
    /// Encoded records, back to back.
    bytes: Vec<u8>,
    /// Each record's sequence number and end offset in `bytes`, in sequence order.
    index: Vec<(u64, usize)>,
    /// When the oldest record here was queued (one clock reading per batch of records, when
    /// the buffer goes from empty to not empty): how long records wait to be written.
    since: Option<Instant>,
}

/// Commands of a transaction, gathered into one record: (database, arguments) each.
type Group = Vec<(usize, Vec<Vec<u8>>)>;

thread_local! {
    static SLOT: OnceCell<Arc<Slot>> = const { OnceCell::new() };
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// How many brackets ([`Journal::begin`]) this thread has open: a command run from inside
    /// another (EXEC's commands, a blocked client served by a push) nests.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
    /// While a transaction runs on this thread: its records, gathered (see
    /// [`Journal::start_group`]), and the highest sequence number among them.
    static GROUP: RefCell<Option<Group>> = const { RefCell::new(None) };
    static GROUP_SEQ: Cell<u64> = const { Cell::new(0) };
}

/// A file switch the writer makes at a sequence number (an AOF rewrite's cut).
struct Switch {
    /// Records numbered up to this go to the old file, the rest to `to`.
    at: u64,
    to: LogFile,
    /// Called by the writer after the old file is complete and fsynced, before any record is
    /// written to the new one (the manifest is updated there).
    then: Box<dyn FnOnce() -> std::io::Result<()> + Send>,
}

#[derive(Default)]
struct WriterState {
    file: Option<LogFile>,
}

/// What the writer tells the syncer, under [`Journal::sync`].
#[derive(Default)]
struct SyncState {
    /// A handle on the file the writer writes to (the syncer fsyncs through it).
    file: Option<Arc<File>>,
    /// Every record numbered below this is written to `file` (or to an earlier file, complete
    /// and fsynced).
    written: u64,
    /// Every record numbered below this is fsynced.
    synced: u64,
    /// Bytes were written to `file` since the syncer last started an fsync.
    dirty: bool,
    /// The writer is stopping: the syncer ends.
    stop: bool,
}

/// Bits of [`Journal::failing`]: a write (or a record that could not be encoded) failed, or an
/// fsync did. Each is cleared by the next success of its kind.
const WRITE_FAULT: u8 = 1;
const SYNC_FAULT: u8 = 2;

/// Health of the log, as INFO and MISCONF report it.
#[derive(Default, Clone)]
pub(crate) struct Status {
    pub last_write_error: Option<String>,
    pub fsyncs: u64,
    pub delayed_fsync: u64,
    /// How long the oldest record of the last write had waited to be written since its command
    /// ended, and the longest such wait since the start: under `everysec` and `no`, a process
    /// crash loses the writes acknowledged within that window (their replies left before).
    pub write_lag: Duration,
    pub write_lag_max: Duration,
    /// The last fsync of the log: under `everysec`, a power loss loses what was written since.
    pub last_fsync: Option<Instant>,
}

pub(crate) struct Journal {
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Records pushed and not yet taken by the writer (a hint to wake it).
    pending: AtomicU64,
    /// Set by the writer while it waits for a command in progress on another thread (records
    /// are pending, none is below the watermark): that command's [`Journal::end`] wakes it.
    stalled: AtomicBool,
    /// Bytes of records queued in the slots or the writer's buffer, not yet written.
    backlog: AtomicU64,
    /// When the oldest record not yet written was queued, as a [`Journal::stamp`] (ms since the
    /// epoch, and a counter so that two stamps of one millisecond differ); `u64::MAX` when
    /// every record is written.
    unwritten_since: AtomicU64,
    stamps: AtomicU64,
    /// Connections waiting for their records to be written: the writer does not nap then.
    waiters: AtomicUsize,
    /// Set while the writer naps after a write: records pushed then do not wake it.
    napping: AtomicBool,
    /// Is the log on? Records are kept only then.
    on: AtomicBool,
    policy: AtomicU8,
    /// Every record numbered up to this is written (and fsynced under `always`).
    durable: watch::Sender<u64>,
    /// Set while [`Journal::relay`] runs: while connections wait, the writer and the syncer
    /// then leave moving `durable` to it, with the watermark in `relay_to`.
    relaying: AtomicBool,
    relay_to: AtomicU64,
    relay_wanted: Notify,
    /// Not zero while writes or fsyncs of the log fail ([`WRITE_FAULT`], [`SYNC_FAULT`]):
    /// write commands are refused (MISCONF).
    failing: AtomicU8,
    status: Mutex<Status>,
    /// Held by the writer while it writes and fsyncs.
    state: Mutex<WriterState>,
    /// Shared by the writer and the syncer; never held during I/O.
    sync: Mutex<SyncState>,
    /// Wakes the syncer: records written, or the writer stopping.
    sync_wanted: Condvar,
    /// The switch asked for, if any. Its own lock, never held during I/O: a rewrite's cut asks
    /// for the switch while every shard is locked, and must not wait for an fsync there.
    switch: Mutex<Option<Switch>>,
    /// How the last switch ended (waited for by the rewrite): `Some(true)` once the writer
    /// writes to the new file, `Some(false)` if it could not switch and kept the old one,
    /// `None` while a switch is pending. Its own lock too, for the same reason.
    switch_done: Mutex<Option<bool>>,
    switched: Condvar,
    writer: Mutex<Option<(Thread, JoinHandle<()>)>>,
    stop: AtomicBool,
    tap: Arc<TapRef>,
    /// Bytes in the current incremental file, and in the base when the log was last rewritten
    /// (for automatic rewrites).
    pub incr_bytes: AtomicU64,
    /// Tests: runs on the writer thread at each turn, just before it collects records.
    #[cfg(test)]
    turn_hook: Mutex<Option<TurnHook>>,
}

#[cfg(test)]
type TurnHook = Box<dyn FnMut(&Journal) + Send>;

/// The keyspace's tap, reached from the writer thread.
pub(crate) struct TapRef(pub Box<dyn Fn() -> u64 + Send + Sync>);

impl Journal {
    /// A journal that keeps nothing until [`Journal::start`]. `current_seq` reads the
    /// keyspace's sequence.
    pub(crate) fn new(current_seq: impl Fn() -> u64 + Send + Sync + 'static) -> Journal {
        Journal {
            slots: Mutex::new(Vec::new()),
            pending: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            backlog: AtomicU64::new(0),
            unwritten_since: AtomicU64::new(u64::MAX),
            stamps: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            napping: AtomicBool::new(false),
            on: AtomicBool::new(false),
            policy: AtomicU8::new(Fsync::Everysec as u8),
            durable: watch::Sender::new(0),
            relaying: AtomicBool::new(false),
            relay_to: AtomicU64::new(0),
            relay_wanted: Notify::new(),
            failing: AtomicU8::new(0),
            status: Mutex::new(Status::default()),
            state: Mutex::new(WriterState::default()),
            sync: Mutex::new(SyncState::default()),
            sync_wanted: Condvar::new(),
            switch: Mutex::new(None),
            switch_done: Mutex::new(None),
            switched: Condvar::new(),
            writer: Mutex::new(None),
            stop: AtomicBool::new(false),
            tap: Arc::new(TapRef(Box::new(current_seq))),
            incr_bytes: AtomicU64::new(0),
            #[cfg(test)]
            turn_hook: Mutex::new(None),
        }
    }

    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    pub(crate) fn policy(&self) -> Fsync {
        Fsync::from_u8(self.policy.load(Ordering::Relaxed))
    }

    pub(crate) fn set_policy(&self, p: Fsync) {
        self.policy.store(p as u8, Ordering::Relaxed);
    }

    /// Whether writes to the log are failing (write commands get MISCONF).
    pub(crate) fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed) != 0
    }

    /// Sets a fault bit; true if it was not set (the first failure of a run: say it once).
    fn fault(&self, bit: u8) -> bool {
        self.failing.fetch_or(bit, Ordering::SeqCst) & bit == 0
    }

    /// Clears a fault bit; true if it was set.
    fn clear_fault(&self, bit: u8) -> bool {
        self.failing.fetch_and(!bit, Ordering::SeqCst) & bit != 0
    }

    /// Moves the durable watermark up to `d` (never down: the writer and the syncer both
    /// move it), through the relay while it runs and connections wait for it (with none
    /// waiting, as under `everysec` most of the time, the watch wakes nobody, and waking the
    /// relay after every write would cost a context switch each).
    fn publish_durable(&self, d: u64) {
        if self.relaying.load(Ordering::SeqCst) && self.waiters.load(Ordering::SeqCst) > 0 {
            self.relay_to.fetch_max(d, Ordering::SeqCst);
            if self.relaying.load(Ordering::SeqCst) {
                self.relay_wanted.notify_one();
                return;
            }
            // The relay stopped meanwhile: it may not have seen `d`.
        }
        self.publish_now(d.max(self.relay_to.load(Ordering::SeqCst)));
    }

    /// Moves the durable watermark on the tasks that wait for it, from a task of the runtime
    /// (run it with `tokio::spawn` once; it returns never). The thread that fsynced then wakes
    /// one task per fsync, this one, and this one wakes the connections waiting for their
    /// replies on the worker thread it runs on. Woken from the fsyncing thread one by one,
    /// each connection's task made its own wake-up of a worker thread, and on a busy core each
    /// wake-up made the woken worker preempt the waker (the kernel's wake-up preemption), run
    /// that one task and park again: under `appendfsync always` about 17 context switches per
    /// fsync for 30 clients.
    pub(crate) async fn relay(self: Arc<Self>) {
        /// Publishes what the relay had not when it stops (the runtime shutting down).
        struct Off<'a>(&'a Journal);
        impl Drop for Off<'_> {
            fn drop(&mut self) {
                self.0.relaying.store(false, Ordering::SeqCst);
                self.0.publish_now(self.0.relay_to.load(Ordering::SeqCst));
            }
        }
        self.relaying.store(true, Ordering::SeqCst);
        let _off = Off(&self);
        loop {
            self.relay_wanted.notified().await;
            self.publish_now(self.relay_to.load(Ordering::SeqCst));
        }
    }

    fn publish_now(&self, d: u64) {
        self.durable.send_if_modified(|v| {
            let up = d > *v;
            if up {
                *v = d;
            }
            up
        });
    }

    pub(crate) fn status(&self) -> Status {
        self.status.lock().clone()
    }

    /// A receiver of the durable watermark.
    pub(crate) fn durable(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    pub(crate) fn durable_now(&self) -> u64 {
        *self.durable.borrow()
    }

    /// Runs `f` with this thread's slot (registered on first use).
    fn with_slot<R>(&self, f: impl FnOnce(&Slot) -> R) -> R {
        SLOT.with(|cell| {
            let slot = cell.get_or_init(|| {
                let slot = Arc::new(Slot { bound: AtomicU64::new(u64::MAX), buf: Mutex::new(SlotBuf::default()) });
                self.slots.lock().push(slot.clone());
                slot
            });
            f(slot)
        })
    }

    /// Before a write command: publishes this thread's lower bound.
    pub(crate) fn begin(&self) {
        let depth = DEPTH.with(Cell::get);
        if depth == 0 {
            let bound = (self.tap.0)();
            self.with_slot(|slot| slot.bound.store(bound, Ordering::SeqCst));
        }
        DEPTH.with(|d| d.set(depth + 1));
    }

    /// After a write command: withdraws the bound (when the outermost bracket closes).
    pub(crate) fn end(&self) {
        let depth = DEPTH.with(Cell::get).saturating_sub(1);
        DEPTH.with(|d| d.set(depth));
        if depth == 0 {
            // Ordered with the writer's `stalled` (store, then load bounds): either it sees the
            // bound gone, or this sees it stalled and wakes it.
            self.with_slot(|slot| slot.bound.store(u64::MAX, Ordering::SeqCst));
            if self.stalled.load(Ordering::SeqCst) {
                self.wake();
            }
        }
    }

    /// Raises this thread's bound to the present, in the outermost bracket only: for a command
    /// that let other commands run first (blocked clients it served), whose records are queued
    /// already, and that has changed nothing itself yet.
    pub(crate) fn refresh(&self) {
        if DEPTH.with(Cell::get) == 1 {
            let bound = (self.tap.0)();
            self.with_slot(|slot| slot.bound.store(bound, Ordering::SeqCst));
        }
    }

    /// Starts gathering this thread's records into one (a transaction: it is replayed whole
    /// or not at all). Call inside a bracket; end with [`Journal::finish_group`].
    pub(crate) fn start_group(&self) {
        GROUP.with(|g| *g.borrow_mut() = Some(Vec::new()));
        GROUP_SEQ.with(|s| s.set(0));
    }

    /// Whether this thread is gathering its records into one (a transaction runs: a script
    /// inside it adds to its record rather than making its own).
    pub(crate) fn grouping(&self) -> bool {
        GROUP.with(|g| g.borrow().is_some())
    }

    /// How many commands the current group holds (0 without one).
    pub(crate) fn group_len(&self) -> usize {
        GROUP.with(|g| g.borrow().as_ref().map_or(0, Vec::len))
    }

    /// Drops the commands gathered after the first `len` (a script's `redis.set_repl` kept a
    /// command out of the log).
    pub(crate) fn truncate_group(&self, len: usize) {
        GROUP.with(|g| {
            if let Some(group) = g.borrow_mut().as_mut() {
                group.truncate(len);
            }
        });
    }

    /// Ends the group without queueing anything (a script cut short by SHUTDOWN NOSAVE: what
    /// it did is not logged, as Redis exits without propagating it).
    pub(crate) fn abandon_group(&self) {
        GROUP.with(|g| g.borrow_mut().take());
    }

    /// Queues what was gathered as one record, before the bracket closes; returns its
    /// sequence number (0 if the transaction changed nothing).
    pub(crate) fn finish_group(&self) -> u64 {
        let Some(group) = GROUP.with(|g| g.borrow_mut().take()) else { return 0 };
        let seq = GROUP_SEQ.with(Cell::get);
        if group.is_empty() || seq == 0 {
            return 0;
        }
        // One record in the first command's database, with a SELECT wherever that changes.
        let first_db = group[0].0;
        let mut commands: Vec<Vec<Vec<u8>>> = Vec::with_capacity(group.len());
        let mut db = first_db;
        for (d, args) in group {
            if d != db {
                commands.push(vec![b"SELECT".to_vec(), d.to_string().into_bytes()]);
                db = d;
            }
            commands.push(args);
        }
        self.push(seq, first_db, commands.iter().map(|c| c.iter().map(Vec::as_slice)));
        seq
    }

    /// Queues one record numbered `seq`: `commands` in database `db`. Call between
    /// [`Journal::begin`] and [`Journal::end`], in the order of the numbers.
    pub(crate) fn push<'a, C, A>(&self, seq: u64, db: usize, commands: C)
    where
        C: ExactSizeIterator<Item = A>,
        A: ExactSizeIterator<Item = &'a [u8]>,
    {
        if !self.is_on() {
            return;
        }
        self.with_slot(|slot| self.push_to(slot, seq, db, commands));
    }

    fn push_to<'a, C, A>(&self, slot: &Slot, seq: u64, db: usize, commands: C)
    where
        C: ExactSizeIterator<Item = A>,
        A: ExactSizeIterator<Item = &'a [u8]>,
    {
        if GROUP.with(|g| g.borrow().is_some()) {
            let gathered: Vec<(usize, Vec<Vec<u8>>)> =
                commands.map(|args| (db, args.map(<[u8]>::to_vec).collect())).collect();
            GROUP.with(|g| g.borrow_mut().as_mut().map(|group| group.extend(gathered)));
            GROUP_SEQ.with(|s| s.set(s.get().max(seq)));
            return;
        }
        {
            let mut buf = slot.buf.lock();
            let buf = &mut *buf;
            let before = buf.bytes.len();
            if buf.index.is_empty() {
                buf.since = Some(Instant::now());
            }
            let put = SCRATCH.with(|scratch| put_record(&mut buf.bytes, &mut scratch.borrow_mut(), db, commands));
            if let Err(e) = put {
                // Only a record over 16 GiB (a transaction or a script's effects that big):
                // it stays out of the log, said loudly, and writes are refused until the log
                // is written to again.
                error!("a write could not be logged: {e}");
                self.fault(WRITE_FAULT);
            }
            buf.index.push((seq, buf.bytes.len()));
            if self.backlog.fetch_add((buf.bytes.len() - before) as u64, Ordering::SeqCst) == 0 {
                self.unwritten_since.store(self.stamp(), Ordering::SeqCst);
            }
        }
        // Ordered with the writer's `napping` (stored false, then `pending` loaded): either it
        // sees this record when its nap ends, or this sees it awake and wakes it.
        if self.pending.fetch_add(1, Ordering::SeqCst) == 0
            && !self.napping.load(Ordering::SeqCst)
            && let Some((t, _)) = &*self.writer.lock()
        {
            t.unpark();
        }
    }

    /// Bytes of records queued and not yet written (INFO's `aof_buffer_length`, as Redis's
    /// `aof_buf`).
    pub(crate) fn unwritten(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Whether more than [`MAX_BACKLOG`] bytes of records wait to be written.
    pub(crate) fn backlogged(&self) -> bool {
        self.unwritten() > MAX_BACKLOG
    }

    /// Whether the oldest record not yet written waits for more than [`MAX_WRITE_LAG_MS`].
    pub(crate) fn lagging(&self) -> bool {
        let since = self.unwritten_since.load(Ordering::Relaxed);
        since != u64::MAX && now_ms().saturating_sub(since >> 10) > MAX_WRITE_LAG_MS
    }

    /// The time now for `unwritten_since`: milliseconds since the epoch, shifted left by 10
    /// bits, with a counter in those bits, so that the writer's compare-and-swap never takes a
    /// newer stamp of the same millisecond for the one it read.
    fn stamp(&self) -> u64 {
        (now_ms() << 10) | (self.stamps.fetch_add(1, Ordering::Relaxed) & 1023)
    }

    /// Says that a connection waits for its records (see [`Journal::waiters`]); the guard says
    /// it no longer does.
    pub(crate) fn wait_guard(&self) -> impl Drop + '_ {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // The first waiter cuts the writer's nap short (`everysec` and `no`: it naps after a
        // write). Under `always` it never naps, and its records' push woke it already: waking
        // it for each of the clients that wait for one fsync cost a context switch each (50
        // per fsync at 50 clients, pipeline 1), on the core those clients' commands need.
        if self.waiters.fetch_add(1, Ordering::SeqCst) == 0 && self.policy() != Fsync::Always {
            self.wake();
        }
        Waiting(&self.waiters)
    }

    /// The writer's nap after a write made at `at`, until [`BATCH_NAP`] after it. Records
    /// pushed meanwhile do not wake it (they set the thread's wake-up token only if they came
    /// before the nap began): each such wake-up was a context switch, on the core the
    /// commands need, and a write(2) of a record or two (`appendfsync everysec` at pipeline 1
    /// ran at 0.7x Redis, with a context switch per command). A connection that starts
    /// waiting for its records, a switch of files or a stop end the nap.
    fn nap(&self, at: Instant) {
        self.napping.store(true, Ordering::SeqCst);
        loop {
            let left = BATCH_NAP.saturating_sub(at.elapsed());
            if left.is_zero()
                || self.waiters.load(Ordering::SeqCst) > 0
                || self.stop.load(Ordering::SeqCst)
                || self.switch.lock().is_some()
            {
                break;
            }
            thread::park_timeout(left);
        }
        self.napping.store(false, Ordering::SeqCst);
    }

    /// Wakes the writer (after pushes, if the caller wants the records written soon).
    fn wake(&self) {
        if let Some((t, _)) = &*self.writer.lock() {
            t.unpark();
        }
    }

    /// Starts logging into `file` with the writer thread. Call while every shard is locked
    /// (so no change is half logged), with the tap's ordering on.
    pub(crate) fn start(self: &Arc<Self>, file: LogFile, policy: Fsync) -> std::io::Result<()> {
        self.set_policy(policy);
        self.incr_bytes.store(file.len(), Ordering::Relaxed);
        self.backlog.store(0, Ordering::Relaxed);
        *self.sync.lock() = SyncState { file: Some(Arc::new(file.try_clone_file()?)), ..SyncState::default() };
        self.state.lock().file = Some(file);
        self.durable.send_replace((self.tap.0)());
        self.stop.store(false, Ordering::SeqCst);
        self.on.store(true, Ordering::Release);
        let me = self.clone();
        let handle = thread::Builder::new().name("magpie-aof".into()).spawn(move || me.run())?;
        *self.writer.lock() = Some((handle.thread().clone(), handle));
        Ok(())
    }

    /// Stops logging: writes and fsyncs what is pending, then stops the writer thread.
    pub(crate) fn stop(&self) {
        self.on.store(false, Ordering::Release);
        self.stop.store(true, Ordering::SeqCst);
        let writer = self.writer.lock().take();
        if let Some((t, handle)) = writer {
            t.unpark();
            let _ = handle.join();
        }
        self.state.lock().file = None;
    }

    /// Switches to `to` at sequence number `at` (see [`Switch`]); `then` runs once the old
    /// file is complete. Call while every shard is locked.
    pub(crate) fn switch_at(&self, at: u64, to: LogFile, then: impl FnOnce() -> std::io::Result<()> + Send + 'static) {
        *self.switch_done.lock() = None;
        *self.switch.lock() = Some(Switch { at, to, then: Box::new(then) });
        self.wake();
    }

    /// Waits until the switch asked for by [`Journal::switch_at`] is made: true once the
    /// writer writes to the new file; false if it could not switch (the manifest naming the
    /// new file could not be written: it goes on with the old file) or stopped first.
    pub(crate) fn wait_switched(&self) -> bool {
        let mut st = self.switch_done.lock();
        loop {
            if let Some(done) = *st {
                return done;
            }
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            self.wake();
            self.switched.wait_for(&mut st, Duration::from_millis(50));
        }
    }

    /// Everything numbered below the returned watermark can be written.
    fn watermark(&self, slots: &[Arc<Slot>]) -> u64 {
        let g = (self.tap.0)();
        let mut w = g.saturating_add(1);
        for s in slots {
            w = w.min(s.bound.load(Ordering::SeqCst));
        }
        w
    }

    /// Moves the records numbered below the watermark out of the slots into `out`, merged in
    /// sequence order; with a switch pending, only those up to its cut. Returns the watermark
    /// used and the cut of the pending switch.
    ///
    /// The switch is read after the watermark, never before: a rewrite sets it while every
    /// shard is locked, before any change numbered after its cut exists, so a watermark past
    /// the cut (one that saw such a number) is always read with the switch in view. Read the
    /// other way round, a cut made between the two readings let records numbered after it into
    /// the old file, which the rewrite then deleted: acknowledged writes lost (the
    /// `every_type_survives_a_rewrite_more_writes_and_a_crash` flake).
    fn collect(&self, out: &mut Vec<u8>) -> (u64, Option<u64>, Option<Instant>) {
        let slots = self.slots.lock().clone();
        let w = self.watermark(&slots);
        let switch_at = self.switch.lock().as_ref().map(|s| s.at);
        let w = w.min(switch_at.map_or(u64::MAX, |at| at.saturating_add(1)));
        let mut guards: Vec<_> = slots.iter().map(|s| s.buf.lock()).collect();
        // How far each slot's eligible prefix reaches, and where each is in it.
        let ends: Vec<usize> = guards.iter().map(|g| g.index.partition_point(|&(seq, _)| seq < w)).collect();
        let mut at = vec![0usize; guards.len()];
        let mut taken = 0u64;
        // When the oldest record taken was queued.
        let oldest = guards.iter().zip(&ends).filter(|(_, end)| **end > 0).filter_map(|(g, _)| g.since).min();
        loop {
            let mut best: Option<(usize, u64)> = None;
            for (i, g) in guards.iter().enumerate() {
                if at[i] < ends[i] {
                    let seq = g.index[at[i]].0;
                    if best.is_none_or(|(_, b)| seq < b) {
                        best = Some((i, seq));
                    }
                }
            }
            let Some((i, _)) = best else { break };
            let g = &guards[i];
            let start = if at[i] == 0 { 0 } else { g.index[at[i] - 1].1 };
            out.extend_from_slice(&g.bytes[start..g.index[at[i]].1]);
            at[i] += 1;
            taken += 1;
        }
        for (i, g) in guards.iter_mut().enumerate() {
            if ends[i] > 0 {
                let cut = g.index[ends[i] - 1].1;
                g.bytes.drain(..cut);
                g.index.drain(..ends[i]);
                for e in &mut g.index {
                    e.1 -= cut;
                }
                if g.bytes.is_empty() && g.bytes.capacity() > 1 << 20 {
                    g.bytes = Vec::new();
                }
                if g.index.is_empty() {
                    g.since = None;
                }
            }
        }
        drop(guards);
        self.pending.fetch_sub(taken.min(self.pending.load(Ordering::SeqCst)), Ordering::SeqCst);
        (w, switch_at, oldest)
    }

    /// Tells the syncer that every record below `to` is written (`wrote`: and that bytes were).
    fn note_written(&self, to: u64, wrote: bool) {
        let mut st = self.sync.lock();
        if to <= st.written && !wrote {
            return;
        }
        let was_idle = st.written <= st.synced && !st.dirty;
        st.written = st.written.max(to);
        st.dirty |= wrote;
        drop(st);
        // Under `always` the writer fsyncs itself (`sync_written`); under `everysec` a syncer
        // that is behind already waits for its second to pass.
        if self.policy() != Fsync::Always && was_idle {
            self.sync_wanted.notify_one();
        }
    }

    /// Fdatasyncs what is written, if anything was since the last fsync, and (under `always`)
    /// moves the durable watermark: on the writer's thread right after its write under
    /// `always`, on the syncer's once a second under `everysec`. Returns whether there were
    /// bytes to flush; on failure they are flushed by the next call.
    fn sync_written(&self) -> std::io::Result<bool> {
        let (file, target, dirty) = {
            let mut st = self.sync.lock();
            (st.file.clone(), st.written, std::mem::take(&mut st.dirty))
        };
        let synced = match (&file, dirty) {
            (Some(f), true) => f.sync_data(),
            _ => Ok(()),
        };
        match synced {
            Ok(()) => {
                self.synced(target, dirty);
                Ok(dirty)
            }
            Err(e) => {
                self.sync.lock().dirty = true;
                Err(e)
            }
        }
    }

    /// An fsync that began when everything below `target` was written succeeded (`dirty`:
    /// there were bytes to flush): counted, the fault cleared, and under `always` the durable
    /// watermark moved.
    fn synced(&self, target: u64, dirty: bool) {
        if dirty {
            let mut status = self.status.lock();
            status.fsyncs += 1;
            status.last_fsync = Some(Instant::now());
        }
        let mut st = self.sync.lock();
        st.synced = st.synced.max(target);
        drop(st);
        if self.clear_fault(SYNC_FAULT) {
            info!("fsyncs of the append-only log succeed again; accepting writes");
            if !self.is_failing() {
                self.status.lock().last_write_error = None;
            }
        }
        if self.policy() == Fsync::Always {
            self.publish_durable(target.saturating_sub(1));
        }
    }

    /// Closes the current file for good (see [`LogFile::finish`]: its zeros cut off, fsynced)
    /// once everything below `written` is in it; on success, that is durable.
    fn finish_file(&self, written: u64) -> std::io::Result<()> {
        if let Some(f) = self.state.lock().file.as_mut() {
            f.finish()?;
        }
        let mut st = self.sync.lock();
        st.synced = st.synced.max(written);
        st.written = st.written.max(written);
        st.dirty = false;
        drop(st);
        self.publish_durable(written.saturating_sub(1));
        Ok(())
    }

    /// An fsync of the log failed: writes are refused (logged once, until one succeeds again),
    /// INFO says why, and connections waiting for their records answer with the error now.
    fn sync_failed(&self, e: &std::io::Error) {
        if self.fault(SYNC_FAULT) {
            warn!("fsync of the append-only log failed: {e}; refusing writes until it works again");
        }
        self.status.lock().last_write_error = Some(format!("fsync: {e}"));
        self.durable.send_modify(|_| {});
    }

    /// The syncer thread: fdatasyncs what the writer has written about once a second under
    /// `everysec` (under `always` the writer fsyncs itself, and under `no` nobody does).
    fn run_syncer(&self) {
        let mut last_fsync = Instant::now();
        loop {
            {
                let mut st = self.sync.lock();
                loop {
                    if st.stop {
                        return;
                    }
                    let since = last_fsync.elapsed();
                    let wait = match self.policy() {
                        Fsync::Everysec if st.dirty && since >= Duration::from_secs(1) => break,
                        Fsync::Everysec if st.dirty => Duration::from_secs(1) - since,
                        _ => Duration::from_millis(100),
                    };
                    self.sync_wanted.wait_for(&mut st, wait);
                }
            }
            match self.sync_written() {
                Ok(flushed) => {
                    if flushed {
                        last_fsync = Instant::now();
                    }
                }
                Err(e) => {
                    self.sync_failed(&e);
                    let mut st = self.sync.lock();
                    if !st.stop {
                        self.sync_wanted.wait_for(&mut st, Duration::from_millis(200));
                    }
                }
            }
        }
    }

    /// The writer thread (it starts the syncer, and stops it before it ends).
    fn run(self: Arc<Self>) {
        let me = self.clone();
        let syncer = thread::Builder::new().name("magpie-aof-sync".into()).spawn(move || me.run_syncer());
        let syncer = match syncer {
            Ok(handle) => Some(handle),
            Err(e) => {
                // Without a syncer nothing would be fsynced: the writer does it itself.
                warn!("cannot start the append-only log's fsync thread ({e}); the writer fsyncs");
                None
            }
        };
        self.write_loop(syncer.is_some());
        self.sync.lock().stop = true;
        self.sync_wanted.notify_all();
        if let Some(handle) = syncer {
            let _ = handle.join();
        }
        // The syncer's handle on the file goes too (the log turned off: its file may be
        // deleted by the next rewrite, and must not stay open).
        self.sync.lock().file = None;
    }

    /// The writer's loop, until it stops. Under `always` it fsyncs after each write itself;
    /// without a syncer (`has_syncer` false) it fsyncs under `everysec` only when it stops.
    fn write_loop(&self, has_syncer: bool) {
        let mut out: Vec<u8> = Vec::new();
        // Everything below this is in `out` or written.
        let mut collected_to = 0u64;
        let mut wrote_at: Option<Instant> = None; // the last write(2), if this turn made one
        let mut oldest: Option<Instant> = None; // when the oldest record in `out` was queued
        let mut collected_at = self.stamp(); // when the records in `out` were last collected
        if let Some(f) = self.state.lock().file.as_mut() {
            f.preallocate();
        }
        loop {
            let stopping = self.stop.load(Ordering::SeqCst);
            let policy = self.policy();
            if policy == Fsync::Always && !stopping {
                // Let the connection threads that are ready run first (on a busy core, they
                // are the writer's own): each write then carries more clients' records.
                thread::yield_now();
            }
            #[cfg(test)]
            if let Some(hook) = self.turn_hook.lock().as_mut() {
                hook(self);
            }
            let before = out.len();
            let unwritten_seen = self.unwritten_since.load(Ordering::SeqCst);
            let (w, switch_at, queued) = self.collect(&mut out);
            if out.len() > before {
                collected_at = self.stamp();
            }
            oldest = match (oldest, queued) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            collected_to = collected_to.max(w);
            let collected = out.len() > before;

            let mut wrote = false;
            if !out.is_empty() {
                let result = {
                    let mut st = self.state.lock();
                    match st.file.as_mut() {
                        Some(f) => f.append(&out).map(|()| f.len()),
                        None => Ok(0),
                    }
                };
                match result {
                    Ok(len) => {
                        let left = self
                            .backlog
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                                Some(b.saturating_sub(out.len() as u64))
                            })
                            .map_or(0, |b| b.saturating_sub(out.len() as u64));
                        // Everything collected is written: what is left was queued after the
                        // collection (or held back by a command then running). A push that
                        // found nothing unwritten meanwhile set its own time: keep it.
                        let next = if left == 0 { u64::MAX } else { collected_at };
                        let _ = self.unwritten_since.compare_exchange(
                            unwritten_seen,
                            next,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        );
                        out.clear();
                        if out.capacity() > 8 << 20 {
                            out = Vec::new();
                        }
                        wrote = true;
                        let now = Instant::now();
                        wrote_at = Some(now);
                        if let Some(queued) = oldest.take() {
                            let lag = now.saturating_duration_since(queued);
                            let mut status = self.status.lock();
                            status.write_lag = lag;
                            status.write_lag_max = status.write_lag_max.max(lag);
                        }
                        self.incr_bytes.store(len, Ordering::Relaxed);
                        if self.clear_fault(WRITE_FAULT) {
                            info!("writes to the append-only log succeed again; accepting writes");
                            if !self.is_failing() {
                                self.status.lock().last_write_error = None;
                            }
                        }
                    }
                    Err(e) => {
                        if self.fault(WRITE_FAULT) {
                            warn!("error writing to the append-only log: {e}; refusing writes until it works again");
                        }
                        self.status.lock().last_write_error = Some(e.to_string());
                        // Connections waiting for these records answer with the error now.
                        self.durable.send_modify(|_| {});
                        // Keep `out`, try again in a moment.
                        thread::park_timeout(Duration::from_millis(200));
                        if stopping {
                            warn!("stopping with {} bytes of the log unwritten", out.len());
                            return;
                        }
                        continue;
                    }
                }
            }

            // Everything collected is written. Under `always` this thread fsyncs it now, and
            // moves the durable watermark: meanwhile the connections run their next commands
            // and queue their records, which the next turn writes and fsyncs together (group
            // commit). A syncer thread that fsynced while this one wrote the next batch cost
            // two more threads' hand-offs per fsync, which on a shared core cost more than
            // the overlap of a write(2) with the fsync saved. Under `everysec` the syncer takes
            // it from here.
            self.note_written(collected_to, wrote);
            if (policy == Fsync::Always || (!has_syncer && stopping && wrote))
                && let Err(e) = self.sync_written()
            {
                self.sync_failed(&e);
                thread::park_timeout(Duration::from_millis(200));
                continue;
            }
            if policy != Fsync::Always {
                // Under `always` only what is fsynced is durable; otherwise, what is written.
                self.publish_durable(collected_to.saturating_sub(1));
            }
            if wrote {
                // Zeros ahead of the records, before the next batch (records that go over
                // zeros need no metadata flushed with them); under `everysec` while the syncer
                // may be fsyncing what was just written.
                if let Some(f) = self.state.lock().file.as_mut() {
                    f.preallocate();
                }
            }

            // A rewrite's switch, once everything up to its cut is written: the old file is
            // closed (its zeros cut, fsynced) before the manifest names the new one.
            if let Some(at) = switch_at
                && collected_to > at
                && out.is_empty()
            {
                if let Err(e) = self.finish_file(collected_to) {
                    self.sync_failed(&e);
                    thread::park_timeout(Duration::from_millis(200));
                    continue;
                }
                let mut st = self.state.lock();
                let taken = self.switch.lock().take();
                if let Some(sw) = taken {
                    let done = match (sw.then)() {
                        Ok(()) => match sw.to.try_clone_file() {
                            Ok(handle) => {
                                self.incr_bytes.store(sw.to.len(), Ordering::Relaxed);
                                self.sync.lock().file = Some(Arc::new(handle));
                                st.file = Some(sw.to);
                                if let Some(f) = st.file.as_mut() {
                                    f.preallocate();
                                }
                                true
                            }
                            Err(e) => {
                                warn!("could not switch the append-only log to a new file: {e}; keeping the old one");
                                false
                            }
                        },
                        Err(e) => {
                            warn!("could not switch the append-only log to a new file: {e}; keeping the old one");
                            false
                        }
                    };
                    drop(st);
                    *self.switch_done.lock() = Some(done);
                    self.switched.notify_all();
                }
                continue;
            }

            if stopping && out.is_empty() && self.pending.load(Ordering::SeqCst) == 0 {
                let slots = self.slots.lock().clone();
                if self.watermark(&slots) > (self.tap.0)() {
                    // The last records are in: close the file (zeros cut, fsynced).
                    match self.finish_file(collected_to) {
                        Ok(()) => return,
                        Err(e) => {
                            if self.fault(SYNC_FAULT) {
                                warn!("fsync of the append-only log failed: {e}; trying again before stopping");
                            }
                            self.status.lock().last_write_error = Some(format!("fsync: {e}"));
                            thread::park_timeout(Duration::from_millis(200));
                            continue;
                        }
                    }
                }
            }
            // Unless clients wait for the disk (`always`), the records of a busy server are
            // written in batches: after a write the writer naps a moment, so it is not woken
            // (a context switch and a write(2)) for every command. An idle server's first
            // write is still written at once.
            if policy != Fsync::Always
                && !stopping
                && switch_at.is_none()
                && self.waiters.load(Ordering::SeqCst) == 0
                && let Some(at) = wrote_at.take()
            {
                self.nap(at);
                continue;
            }
            let pending = self.pending.load(Ordering::SeqCst) > 0;
            if pending && !collected && !stopping {
                // The records waiting are numbered above a command still running on another
                // thread: sleep until it ends rather than spin (which, on a busy core, takes
                // the time that command needs to end).
                self.stalled.store(true, Ordering::SeqCst);
                let slots = self.slots.lock().clone();
                if self.watermark(&slots) <= w {
                    thread::park_timeout(Duration::from_millis(10));
                }
                self.stalled.store(false, Ordering::SeqCst);
            }
            if !pending && !stopping {
                thread::park_timeout(Duration::from_millis(100));
            }
        }
    }
}

/// Where the log's files are.
#[derive(Clone, Debug)]
pub(crate) struct LogPaths {
    pub dir: PathBuf,
    pub prefix: String,
}

impl LogPaths {
    pub(crate) fn manifest(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest", self.prefix))
    }

    pub(crate) fn base_name(&self, n: u64) -> String {
        format!("{}.{n}.base", self.prefix)
    }

    pub(crate) fn incr_name(&self, n: u64) -> String {
        format!("{}.{n}.incr", self.prefix)
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magpie_persist::log::LogReader;

    /// The commands of every record in the log at `path`, each as its first argument.
    fn names_in(path: &std::path::Path) -> Vec<String> {
        let mut r = LogReader::open(path).unwrap();
        let mut names = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            names.extend(rec.commands.iter().map(|c| String::from_utf8_lossy(&c[0]).into_owned()));
        }
        names
    }

    /// While the relay runs, the syncer's watermark reaches the waiting tasks through it; a
    /// relay that stops (its runtime shut down) publishes what it was handed, and later
    /// watermarks are published directly again.
    #[test]
    fn the_relay_moves_the_watermark_and_hands_back_when_it_stops() {
        let j = Arc::new(Journal::new(|| 0));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.spawn(j.clone().relay());
        while !j.relaying.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Nobody waits: published directly.
        j.publish_durable(4);
        assert_eq!(j.durable_now(), 4);
        assert_eq!(j.relay_to.load(Ordering::SeqCst), 0);
        let mut durable = j.durable();
        let j1 = j.clone();
        let waiter = rt.spawn(async move {
            let _waiting = j1.wait_guard();
            let _ = durable.wait_for(|&d| d >= 5).await;
            *durable.borrow()
        });
        while j.waiters.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let j2 = j.clone();
        std::thread::spawn(move || j2.publish_durable(5)).join().unwrap();
        assert_eq!(rt.block_on(waiter).unwrap(), 5);
        assert_eq!(j.relay_to.load(Ordering::SeqCst), 5, "through the relay");
        assert_eq!(j.durable_now(), 5);
        // Handed over while the relay is stopping: the stop publishes it.
        j.relay_to.fetch_max(6, Ordering::SeqCst);
        drop(rt);
        assert!(!j.relaying.load(Ordering::SeqCst));
        assert_eq!(j.durable_now(), 6);
        j.publish_durable(7);
        assert_eq!(j.durable_now(), 7);
        j.publish_durable(3);
        assert_eq!(j.durable_now(), 7, "never down");
    }

    /// Under `everysec`, records still unwritten after MAX_WRITE_LAG_MS make `lagging` true
    /// (connections that wrote then wait for the writer), and writing them ends it.
    #[test]
    fn records_left_unwritten_too_long_are_lagging() {
        let dir = std::env::temp_dir().join(format!("magpie-journal-lag-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let seq = Arc::new(AtomicU64::new(0));
        let s2 = seq.clone();
        let j = Arc::new(Journal::new(move || s2.load(Ordering::SeqCst)));
        let slot = Arc::new(Slot { bound: AtomicU64::new(u64::MAX), buf: Mutex::new(SlotBuf::default()) });
        j.slots.lock().push(slot.clone());
        // A writer that gets no CPU until told.
        let stalled = Arc::new(AtomicBool::new(true));
        let s3 = stalled.clone();
        *j.turn_hook.lock() = Some(Box::new(move |_: &Journal| {
            while s3.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
        j.start(LogFile::create(&dir.join("log")).unwrap(), Fsync::Everysec).unwrap();
        assert!(!j.lagging());
        seq.store(1, Ordering::SeqCst);
        j.push_to(&slot, 1, 0, std::iter::once(std::iter::once(&b"INCR"[..])));
        assert!(!j.lagging(), "a record just queued is not late");
        std::thread::sleep(Duration::from_millis(MAX_WRITE_LAG_MS + 5));
        assert!(j.lagging());
        stalled.store(false, Ordering::SeqCst);
        let mut durable = j.durable();
        {
            let _waiting = j.wait_guard();
            while *durable.borrow_and_update() < 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert!(!j.lagging(), "everything is written");
        j.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A rewrite's cut can fall between two turns of the writer, right before it collects:
    /// a command numbered after the cut, pushed at once, must go to the new file, which the
    /// new manifest keeps, and not to the old one, which the rewrite deletes.
    #[test]
    fn a_cut_made_just_before_the_writer_collects_sends_later_records_to_the_new_file() {
        let dir = std::env::temp_dir().join(format!("magpie-journal-switch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (old_path, new_path) = (dir.join("old.incr"), dir.join("new.incr"));
        let seq = Arc::new(AtomicU64::new(0));
        let s2 = seq.clone();
        let j = Arc::new(Journal::new(move || s2.load(Ordering::SeqCst)));
        let slot = Arc::new(Slot { bound: AtomicU64::new(u64::MAX), buf: Mutex::new(SlotBuf::default()) });
        j.slots.lock().push(slot.clone());
        j.start(LogFile::create(&old_path).unwrap(), Fsync::Always).unwrap();
        let cmd = |name: &'static str| std::iter::once(std::iter::once(name.as_bytes()));
        seq.store(1, Ordering::SeqCst);
        j.push_to(&slot, 1, 0, cmd("before-the-cut"));
        let mut durable = j.durable();
        while *durable.borrow_and_update() < 1 {
            j.wake();
            std::thread::sleep(Duration::from_millis(1));
        }
        // On the writer's next turn, just before it collects: the rewrite cuts at 1 (every
        // shard locked), then a command takes number 2 and queues its record.
        let new_file = Some(LogFile::create(&new_path).unwrap());
        let new_file = Mutex::new(new_file);
        let s3 = seq.clone();
        let slot2 = slot.clone();
        *j.turn_hook.lock() = Some(Box::new(move |j: &Journal| {
            if let Some(to) = new_file.lock().take() {
                j.switch_at(1, to, || Ok(()));
                s3.store(2, Ordering::SeqCst);
                j.push_to(&slot2, 2, 0, cmd("after-the-cut"));
            }
        }));
        j.wake();
        assert!(j.wait_switched());
        while *durable.borrow_and_update() < 2 {
            j.wake();
            std::thread::sleep(Duration::from_millis(1));
        }
        j.stop();
        assert_eq!(names_in(&old_path), ["before-the-cut"]);
        assert_eq!(names_in(&new_path), ["after-the-cut"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_are_merged_in_sequence_order_below_the_watermark() {
        let seq = Arc::new(AtomicU64::new(0));
        let s2 = seq.clone();
        let j = Arc::new(Journal::new(move || s2.load(Ordering::SeqCst)));
        j.on.store(true, Ordering::SeqCst);
        let cmd = |name: &'static str| std::iter::once(std::iter::once(name.as_bytes()));
        // Two threads' slots, records pushed out of order.
        let a = Arc::new(Slot { bound: AtomicU64::new(u64::MAX), buf: Mutex::new(SlotBuf::default()) });
        let b = Arc::new(Slot { bound: AtomicU64::new(u64::MAX), buf: Mutex::new(SlotBuf::default()) });
        j.slots.lock().extend([a.clone(), b.clone()]);
        seq.store(5, Ordering::SeqCst);
        b.bound.store(3, Ordering::SeqCst); // b is running a command that may take 4..
        j.push_to(&a, 2, 0, cmd("two"));
        j.push_to(&a, 5, 0, cmd("five"));
        j.push_to(&b, 1, 0, cmd("one"));
        assert!(j.backlog.load(Ordering::Relaxed) > 0 && !j.backlogged());
        let mut out = Vec::new();
        let (w, _, queued) = j.collect(&mut out);
        assert_eq!(w, 3);
        assert!(queued.is_some());
        let text = String::from_utf8_lossy(&out);
        assert!(text.find("one").unwrap() < text.find("two").unwrap() && !text.contains("five"));
        j.push_to(&b, 4, 0, cmd("four"));
        b.bound.store(u64::MAX, Ordering::SeqCst);
        out.clear();
        assert_eq!(j.collect(&mut out).0, 6);
        let text = String::from_utf8_lossy(&out);
        assert!(text.find("four").unwrap() < text.find("five").unwrap());
        out.clear();
        assert_eq!(j.collect(&mut out).0, 6);
        assert!(out.is_empty());
    }
}
