//! The change tap: what the keyspace tells the rest of the server about its changes, without
//! knowing who listens.
//!
//! - **Order.** When the log is on ([`Tap::set_ordering`]), every change to a shard takes a number
//!   from one global sequence while that shard is locked. Two changes to the same key are
//!   therefore numbered in the order they happened, and a command that changes several keys
//!   (under all their locks at once) gets numbers that no other change to those keys can fall
//!   between. The server logs each command with the last number it took ([`last_seq`]) and
//!   writes the log in that order: replaying it gives back the same keyspace.
//! - **Expiry.** A key removed because it expired is not removed by any command, yet the log
//!   must record the deletion (replay does not expire keys, as in Redis: it cannot know what
//!   time it is in the log) and keyspace notifications must announce it. When
//!   [`Tap::set_expired_tap`] is on, each such removal is queued for the thread that made it, with
//!   its sequence number; the server drains the queue with [`take_expired`].
//!
//! - **Readiness.** A change to a key that blocked clients wait on (see `Shard::block_on`) is
//!   reported to the hook the server installed ([`Tap::set_ready_hook`]), under the key's shard
//!   lock, so that a client waiting for an element is served before any other command can take
//!   it (Redis's `signalKeyAsReady`). A private keyspace (an interactive transaction's copy)
//!   has no hook: its changes reach waiters when they are applied to the real one.
//!
//! - **Count.** Every change is also counted, always, in its shard's own counter ([`Tap::changes`]
//!   sums them): the snapshot schedule (`save 60 10000`) and INFO's
//!   `rdb_changes_since_last_save` need only how many changes there were, not their order, so a
//!   server that snapshots but keeps no log pays a plain increment of a counter on a cache line
//!   of its own (the shard's lock is held, so no other thread writes it), not the global
//!   sequence's contended read-modify-write.
//!
//! Ordering and the expiry queue cost one relaxed load per change while off. They are switched
//! while every shard is locked (see `Keyspace::with_all_locked`), so no change is half counted.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

thread_local! {
    static LAST: Cell<u64> = const { Cell::new(0) };
    static EXPIRED: RefCell<Vec<Expired>> = const { RefCell::new(Vec::new()) };
    static TRACKED: RefCell<Vec<Tracked>> = const { RefCell::new(Vec::new()) };
}

/// A change that clients caching keys must hear of (Redis's client-side caching): queued on
/// the changing thread, taken by the server after the command with [`take_tracked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tracked {
    /// A key that a client tracks (see `Shard::track`) or, with [`Tap::set_track_all`], any
    /// key changed.
    Key(Box<[u8]>),
    /// A database was emptied (once per shard; while [`Tap::set_tracking`] is on).
    Flush,
}

/// Takes the tracked changes this thread made since the last call.
pub fn take_tracked() -> Vec<Tracked> {
    TRACKED.with(|t| std::mem::take(&mut *t.borrow_mut()))
}

/// Whether this thread made tracked changes not taken yet.
pub fn has_tracked() -> bool {
    TRACKED.with(|t| !t.borrow().is_empty())
}

/// A key the keyspace removed because its time had passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The change's sequence number (0 when ordering is off).
    pub seq: u64,
    pub db: usize,
    pub key: Box<[u8]>,
}

/// Called with (database, key) when a key that blocked clients wait on changes.
pub type ReadyHook = Box<dyn Fn(usize, &[u8]) + Send + Sync>;

/// One shard's count of changes, on a cache line of its own.
#[derive(Default)]
#[repr(align(64))]
struct Count(AtomicU64);

/// The switches and the sequence of one keyspace (every shard holds a reference).
pub struct Tap {
    ordering: AtomicBool,
    expired_tap: AtomicBool,
    seq: AtomicU64,
    /// Changes made in each shard (indexed by the shard's counter number, see [`Tap::new`]),
    /// and, last, changes made outside the shards ([`Tap::tick_outside`]).
    counts: Box<[Count]>,
    ready: OnceLock<ReadyHook>,
    /// Some client tracks keys: flushes are queued as [`Tracked::Flush`].
    tracking: AtomicBool,
    /// Some client tracks by prefix: every change is queued as [`Tracked::Key`].
    track_all: AtomicBool,
}

impl fmt::Debug for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tap")
            .field("ordering", &self.ordering)
            .field("expired_tap", &self.expired_tap)
            .field("seq", &self.seq)
            .field("changes", &self.changes())
            .field("ready", &self.ready.get().is_some())
            .finish()
    }
}

/// A tap for one shard (a shard made on its own, in tests).
impl Default for Tap {
    fn default() -> Tap {
        Tap::new(1)
    }
}

impl Tap {
    /// A tap for `shards` shards, which count their changes as numbers `0..shards` (see
    /// [`Tap::tick`]).
    pub fn new(shards: usize) -> Tap {
        Tap {
            ordering: AtomicBool::new(false),
            expired_tap: AtomicBool::new(false),
            seq: AtomicU64::new(0),
            counts: (0..=shards).map(|_| Count::default()).collect(),
            ready: OnceLock::new(),
            tracking: AtomicBool::new(false),
            track_all: AtomicBool::new(false),
        }
    }

    /// Turns sequence numbering of changes on or off.
    pub fn set_ordering(&self, on: bool) {
        self.ordering.store(on, Ordering::SeqCst);
    }

    pub fn ordering(&self) -> bool {
        self.ordering.load(Ordering::Relaxed)
    }

    /// Turns the queueing of expired keys on or off.
    pub fn set_expired_tap(&self, on: bool) {
        self.expired_tap.store(on, Ordering::SeqCst);
    }

    /// Whether expired keys are queued (see [`Tap::set_expired_tap`]).
    #[inline]
    pub fn expired_tap(&self) -> bool {
        self.expired_tap.load(Ordering::Relaxed)
    }

    /// The last sequence number given out (0 before any).
    pub fn current_seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// How many changes were made since the tap was made, ordering on or off: exact when
    /// every shard is locked (a snapshot's cut), otherwise a count that may miss changes being
    /// made meanwhile.
    pub fn changes(&self) -> u64 {
        self.counts.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }

    /// Counts a change to shard number `shard` and numbers it while ordering is on (0 while
    /// off). The caller holds that shard's write lock, so no other thread writes its count:
    /// a load and a store, not an atomic read-modify-write.
    #[inline]
    pub(crate) fn tick(&self, shard: usize) -> u64 {
        let count = &self.counts[shard].0;
        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if !self.ordering.load(Ordering::Relaxed) {
            return 0;
        }
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        LAST.with(|l| l.set(seq));
        seq
    }

    /// Numbers a change made outside the shards (a function library loaded or deleted), so that
    /// the log orders its record among the keyspace's changes and the snapshot schedule counts
    /// it; 0 while ordering is off. The caller runs with no other command running (nothing
    /// may cut a snapshot between the change and its number, and nothing else counts in the
    /// outside slot at the same time).
    pub fn tick_outside(&self) -> u64 {
        self.tick(self.counts.len() - 1)
    }

    /// Whether flushes are queued for clients tracking keys (see [`Tracked`]).
    pub fn set_tracking(&self, on: bool) {
        self.tracking.store(on, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn tracking(&self) -> bool {
        self.tracking.load(Ordering::Relaxed)
    }

    /// Whether every change is queued (clients tracking by prefix), not only tracked keys'.
    pub fn set_track_all(&self, on: bool) {
        self.track_all.store(on, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn track_all(&self) -> bool {
        self.track_all.load(Ordering::Relaxed)
    }

    /// Queues a tracked change (the caller holds the shard's lock).
    #[cold]
    pub(crate) fn tracked(&self, change: Tracked) {
        TRACKED.with(|t| t.borrow_mut().push(change));
    }

    /// Installs the hook told of changes to keys that blocked clients wait on (once; later
    /// calls are ignored).
    pub fn set_ready_hook(&self, hook: ReadyHook) {
        let _ = self.ready.set(hook);
    }

    /// Reports a change to a key that blocked clients wait on (under its shard's lock).
    #[cold]
    pub(crate) fn ready(&self, db: usize, key: &[u8]) {
        if let Some(hook) = self.ready.get() {
            hook(db, key);
        }
    }

    /// Queues an expired key (the caller has just removed it, under its shard's lock).
    #[inline]
    pub(crate) fn expired(&self, seq: u64, db: usize, key: &[u8]) {
        if self.expired_tap.load(Ordering::Relaxed) {
            EXPIRED.with(|e| e.borrow_mut().push(Expired { seq, db, key: key.into() }));
        }
    }
}

/// The number of the last change this thread made since [`reset_last_seq`], 0 if none.
pub fn last_seq() -> u64 {
    LAST.with(Cell::get)
}

pub fn reset_last_seq() {
    LAST.with(|l| l.set(0));
}

/// Takes the expired keys this thread has queued, oldest first.
pub fn take_expired() -> Vec<Expired> {
    EXPIRED.with(|e| std::mem::take(&mut *e.borrow_mut()))
}

/// Whether this thread has expired keys queued.
pub fn has_expired() -> bool {
    EXPIRED.with(|e| !e.borrow().is_empty())
}
