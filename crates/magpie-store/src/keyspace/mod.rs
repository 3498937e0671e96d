//! Databases, shards and entries: an [`Entry`] and the [`Shard`] that holds entries (here),
//! a key's place in a shard (`slot`), a database of shards (`db`), all databases (`space`),
//! eviction's steps over them (`eviction`).

mod db;
mod eviction;
mod held;
mod load;
mod pair;
mod slot;
mod space;
mod table;
#[cfg(test)]
mod tests;

pub use db::{Db, DbStats, ScanCursor};
pub use eviction::{EvictStep, Evicted};
pub use held::{Held, ShardRead, ShardWrite};
pub use load::Loader;
use pair::Pair;
pub use pair::ValueRef;
pub use slot::{EmptySlot, LiveSlot, Slot};
pub use space::{Keyspace, MultiRead, MultiWrite, WARM_MAX};

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::evict::{Candidate, Policy, Pool, Tracking, Use, is_random, score};
use crate::tap::Tap;
use crate::{Frozen, Key, Value};

type Hasher = foldhash::fast::RandomState;
type Map = table::Table;

/// A value, its expiry time, and what eviction knows of its use: an entry taken out of a shard
/// (removed, replaced, evicted) or about to go in.
#[derive(Debug)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry in ms since the epoch; 0 when the key does not expire.
    expire_at: u64,
    used: Use,
}

impl Clone for Entry {
    fn clone(&self) -> Entry {
        Entry { value: self.value.clone(), expire_at: self.expire_at, used: self.used.clone() }
    }
}

/// Entries are equal when their values and expiry times are (not counting the use clock).
impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.value == other.value && self.expire_at == other.expire_at
    }
}

impl Entry {
    pub fn new(value: Value) -> Entry {
        Entry { value, expire_at: 0, used: Use::default() }
    }

    /// The same entry with an expiry time (`None`: none).
    pub fn with_expire(mut self, expire_at: Option<u64>) -> Entry {
        self.expire_at = expire_at.unwrap_or(0);
        self
    }

    /// When the key expires (ms since the epoch), if it does.
    pub fn expire_at(&self) -> Option<u64> {
        (self.expire_at != 0).then_some(self.expire_at)
    }

    /// The use clock (LRU time or LFU counter) and the S3-FIFO bits: see [`Use`].
    pub fn usage(&self) -> &Use {
        &self.used
    }

    /// A view of this entry, as a shard lends its own (for code that reads both).
    pub fn view(&self) -> EntryRef<'_> {
        EntryRef { value: ValueRef::of(&self.value), expire_at: self.expire_at, used: &self.used, pair: None }
    }
}

/// An entry taken out of a shard as it was stored ([`Shard::delete`]): dropping it frees its
/// block and its value.
pub struct Removed {
    stored: Stored,
}

impl Removed {
    /// The value, to read.
    pub fn value(&self) -> ValueRef<'_> {
        self.stored.value()
    }

    /// The value, taken out (a short string copied out of its block).
    pub fn into_value(self) -> Value {
        self.stored.pair.into_value()
    }
}

/// A stored entry, as a shard lends it out: its value, its expiry time and its use.
#[derive(Clone, Copy, Debug)]
pub struct EntryRef<'a> {
    pub value: ValueRef<'a>,
    expire_at: u64,
    used: &'a Use,
    /// The block the key shares with its value; `None` for an entry not in a shard.
    pair: Option<&'a Pair>,
}

impl<'a> EntryRef<'a> {
    /// When the key expires (ms since the epoch), if it does.
    pub fn expire_at(&self) -> Option<u64> {
        (self.expire_at != 0).then_some(self.expire_at)
    }

    /// The use clock (LRU time or LFU counter) and the S3-FIFO bits: see [`Use`].
    pub fn usage(&self) -> &'a Use {
        self.used
    }

    /// The size of the block the key shares with its value, and whether the value is all in
    /// it (a short string) rather than holding allocations of its own (see `pair.rs`); `(0,
    /// false)` for an entry not in a shard.
    pub fn block(&self) -> (usize, bool) {
        self.pair.map_or((0, false), Pair::block)
    }

    fn is_expired(&self, now: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now
    }

    /// An owned copy (the use clock's copy keeps no snapshot mark).
    pub fn to_entry(&self) -> Entry {
        Entry { value: (*self.value).clone(), expire_at: self.expire_at, used: self.used.clone() }
    }
}

impl<'a> From<&'a Entry> for EntryRef<'a> {
    fn from(e: &'a Entry) -> EntryRef<'a> {
        e.view()
    }
}

/// An entry as a shard stores it: 16 bytes, and the block its key and value share (see
/// `pair.rs`). Its expiry time is not here: most keys have none, and those that do keep it in
/// the shard's table of expiring keys ([`Shard::volatile`]), which the entry points into.
#[derive(Debug)]
pub(crate) struct Stored {
    pair: Pair,
    /// For an entry with an expiry time: its position in [`Shard::volatile`] and
    /// [`Shard::expires`]; [`NO_TTL`] for one without.
    vpos: u32,
    /// When the key was last used, or how often (see [`Use`]), and a snapshot's mark.
    pub(crate) used: Use,
}

/// [`Stored::vpos`] of an entry without an expiry time.
const NO_TTL: u32 = u32::MAX;

impl Stored {
    fn new(key: &[u8], value: Value) -> Stored {
        Stored::with(Pair::new(key, value))
    }

    fn with(pair: Pair) -> Stored {
        Stored { pair, vpos: NO_TTL, used: Use::default() }
    }

    #[inline]
    pub(crate) fn key(&self) -> &[u8] {
        self.pair.key()
    }

    #[inline]
    pub(crate) fn value(&self) -> ValueRef<'_> {
        self.pair.value()
    }

    /// The value, to change in place (see [`Pair::value_mut`]).
    #[inline]
    pub(crate) fn value_mut(&mut self) -> &mut Value {
        self.pair.value_mut()
    }

    /// Whether the snapshot in progress has written this entry out of turn.
    fn marked(&self) -> bool {
        self.used.marked()
    }
}

/// One shard of a database: an insertion-ordered hash map. Removal swaps the last entry into
/// the hole, so entries stay dense: that makes random sampling O(1) (RANDOMKEY) and gives SCAN
/// a cursor that is a plain index (see [`Db::scan`]).
///
/// Expired entries may linger until touched or reclaimed by the active cycle; every accessor
/// that takes `now` hides them.
#[derive(Default)]
pub struct Shard {
    map: Map,
    /// Map indices of the entries that have an expiry time (as Redis's `expires` dict), so the
    /// active cycle looks only at keys that can expire. Each such entry stores its position
    /// here (`Stored::vpos`): both sides update in O(1).
    volatile: Vec<u32>,
    /// The expiry times of those entries (ms since the epoch), at the same positions: kept
    /// here rather than in every entry, so that keys without one pay nothing for it.
    expires: Vec<u64>,
    /// Where the active expiry cycle continues in `volatile`.
    expire_cursor: usize,
    /// Sum of [`Value::size`] over the entries, kept exact by every change (including expired
    /// entries not yet reclaimed, which [`Shard::len`] counts too).
    value_bytes: u64,
    /// Keys removed because they expired, ever (Redis's `expired_keys`).
    expired: u64,
    /// Running estimate of the time to live (ms) of the keys that expire, from what the active
    /// cycle sees (as Redis's `avg_ttl`).
    avg_ttl: u64,
    /// Entries not in S3-FIFO's main queue (every entry, under the other policies).
    small: usize,
    /// S3-FIFO's small queue: the keys in it, oldest first (and keys since removed or moved,
    /// skipped when met).
    fifo: VecDeque<Key>,
    /// S3-FIFO's CLOCK hand over the map: the main queue.
    hand: usize,
    /// S3-FIFO's ghost queue, approximated: fingerprints of keys evicted from the small queue,
    /// in a table indexed by their hash (a newer one overwrites an older one).
    ghost: Vec<u32>,
    /// W-TinyLFU's count of keys created and evicted (empty under the other policies); its
    /// epoch is the age the entries' frequencies are kept at. The window is `fifo`.
    sketch: crate::sketch::Sketch,
    /// The database this shard belongs to (named in expiry events).
    db: usize,
    /// The keyspace's change tap: every change is reported through it (see `tap.rs`).
    tap: Arc<Tap>,
    /// This shard's number among the tap's change counters (see [`Tap::tick`]).
    counter: usize,
    /// The state of a snapshot in progress (see [`Keyspace::begin_snapshot`]).
    snap: Option<Box<SnapState>>,
    /// Keys that transactions watch (WATCH, or touched inside BEGIN), with a version that
    /// every change to the key increments, and keys that blocked clients wait on, whose
    /// changes are reported to the tap (see [`Tap::set_ready_hook`]). Empty almost always, so
    /// a change pays one check.
    watched: HashMap<Key, Watched, Hasher>,
}

/// A watched key: its version, how many watchers hold it, and how many blocked clients wait
/// on it.
#[derive(Debug, Default)]
struct Watched {
    version: u64,
    refs: u32,
    waiters: u32,
    /// A client caches the key (see [`Shard::track`]): its next change is queued to the tap.
    tracked: bool,
}

/// Where a snapshot's entries go: called with the database, the key and the entry as it was
/// at the snapshot's moment. It runs under a shard's lock, so it only encodes small entries
/// into memory and keeps frozen ones for later.
pub type SnapshotSink = Arc<dyn Fn(usize, &[u8], SnapEntry<'_>) + Send + Sync>;

/// An entry as a snapshot receives it.
pub enum SnapEntry<'a> {
    /// A small entry: encode it now, under the shard's lock.
    Now(EntryRef<'a>),
    /// A big collection, frozen ([`Value::freeze`]): encode it once the lock is let go. Taking
    /// it cost O(chunks) under the lock, not O(elements).
    Later(FrozenEntry),
}

/// A big entry as it was at a snapshot's moment, readable on any thread.
pub struct FrozenEntry {
    pub expire_at: Option<u64>,
    pub value: Frozen,
}

/// Hands `e` and its key to `emit` as a snapshot gets it: the entry itself, or a frozen image of
/// a big value.
fn snap_entry(expires: &[u64], e: &mut Stored, emit: impl FnOnce(&[u8], SnapEntry<'_>)) {
    let frozen = e.pair.freeze();
    let entry = match frozen {
        Some(value) => SnapEntry::Later(FrozenEntry { expire_at: view(expires, e).expire_at(), value }),
        None => SnapEntry::Now(view(expires, e)),
    };
    emit(e.key(), entry);
}

/// A stored entry with its expiry time, read from the shard's `expires` (see [`Stored`]).
#[inline]
fn view<'a>(expires: &[u64], e: &'a Stored) -> EntryRef<'a> {
    let expire_at = if e.vpos == NO_TTL { 0 } else { expires.get(e.vpos as usize).copied().unwrap_or(0) };
    EntryRef { value: e.value(), expire_at, used: &e.used, pair: Some(&e.pair) }
}

/// A snapshot's progress through one shard.
///
/// The snapshot walks the shard from its last index down to 0, a few hundred entries at a
/// time, while writers go on. Entries at indices below `cursor` are still to be visited; the
/// rest have been written out, and so have any entries added since the snapshot began (they
/// are appended at the end, beyond the cursor, and were not there at its moment). A writer
/// about to change or remove an entry the walk has not reached first hands the entry as it is
/// to the snapshot's sink and marks it written (a bit of `Stored::used`), so the walk skips it
/// (and clears the mark as it passes: marks only ever sit below the cursor, so when the walk
/// ends no entry carries one, and one bit serves every snapshot). Removal moves the shard's last entry into the hole; when that carries
/// an entry already written (or created since) into the unvisited part, it is marked too. So
/// every key present at the snapshot's moment is written exactly once, with its value of that
/// moment, and no key created after it is written. Nothing is kept in memory: the marks live in
/// the entries themselves (a set of the keys written, as before, grew with the writes and
/// rehashed under the lock), and the old values go straight to the sink, which encodes small
/// ones for the file at once and keeps big collections frozen (their chunks shared, see
/// [`Value::freeze`]) to encode outside the lock; only the chunks written while the snapshot
/// holds them are ever copied.
struct SnapState {
    /// Entries at indices below this have not been visited yet. Written by the walk under the
    /// read lock (hence atomic), read by writers under the write lock.
    cursor: AtomicUsize,
    sink: SnapshotSink,
}

impl Shard {
    /// Entries held, including expired ones not yet reclaimed (as Redis's DBSIZE).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries that have an expiry time.
    pub fn volatile(&self) -> usize {
        self.volatile.len()
    }

    /// Total size of the values held (see [`Value::size`]).
    pub fn value_bytes(&self) -> u64 {
        self.value_bytes
    }

    /// Keys this shard has removed because they expired.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// The live entry of `key`, counted as an access for eviction (Redis's `lookupKey`).
    #[inline]
    pub fn get(&self, key: &[u8], now: u64) -> Option<EntryRef<'_>> {
        let e = self.peek(key, now)?;
        e.used.touch(now, self.sketch.epoch());
        Some(e)
    }

    /// The live entry of `key`, not counted as an access (Redis's `LOOKUP_NOTOUCH`: TYPE,
    /// EXISTS, TTL, OBJECT, MEMORY USAGE).
    pub fn peek(&self, key: &[u8], now: u64) -> Option<EntryRef<'_>> {
        self.map.get(key).map(|e| self.view(e)).filter(|e| !e.is_expired(now))
    }

    /// A stored entry with its expiry time.
    #[inline]
    fn view<'a>(&'a self, e: &'a Stored) -> EntryRef<'a> {
        view(&self.expires, e)
    }

    /// Whether the entry at `idx` has expired by `now`.
    #[inline]
    fn is_expired_index(&self, idx: usize, now: u64) -> bool {
        self.map.get_index(idx).is_some_and(|e| self.view(e).is_expired(now))
    }

    /// Entries not in S3-FIFO's main queue (or W-TinyLFU's).
    pub fn small(&self) -> usize {
        self.small
    }

    /// W-TinyLFU's frequency of a key of this shard (see `evict.rs`): OBJECT FREQ under
    /// `allkeys-wtinylfu`.
    pub fn wt_freq(&self, e: &EntryRef<'_>) -> u8 {
        e.used.wt_freq(self.sketch.epoch())
    }

    /// Whether `key` is live; not an access (as EXISTS).
    pub fn contains(&self, key: &[u8], now: u64) -> bool {
        self.peek(key, now).is_some()
    }

    /// The slot of `key`, found with one lookup: either its live entry, which can be read,
    /// changed, replaced or removed, or an empty place to insert into. An expired entry counts
    /// as empty: inserting overwrites it, and otherwise dropping the slot removes it (write
    /// access reclaims expired keys, as in Redis).
    pub fn slot<'a>(&'a mut self, key: &'a [u8], now: u64) -> Slot<'a> {
        let hash = self.map.hash(key);
        match self.map.find_from_hash(hash, |k| k == key) {
            Some(idx) if !self.is_expired_index(idx, now) => {
                let epoch = self.sketch.epoch();
                self.map[idx].used.touch(now, epoch);
                Slot::Live(LiveSlot { shard: self, idx, before: None })
            }
            Some(idx) => Slot::Empty(EmptySlot { shard: Some(self), key, hash, expired: Some(idx), now }),
            None => Slot::Empty(EmptySlot { shard: Some(self), key, hash, expired: None, now }),
        }
    }

    /// Makes an empty shard ready for `n` keys at once (before loading a snapshot): its table
    /// neither rehashes nor splits while they go in.
    pub fn reserve(&mut self, n: usize) {
        self.map.reserve(n);
    }

    /// Puts an entry read from a snapshot after the others, not findable until
    /// [`Shard::index_loaded`] (see [`Keyspace::loader`], which holds the shard meanwhile).
    fn load(&mut self, key: &[u8], value: Value, expire_at: Option<u64>, now: u64) {
        self.creating(key);
        self.value_bytes += value.size() as u64;
        let idx = self.map.push_unindexed(Stored::new(key, value));
        self.map[idx].used.init(now);
        self.small += 1;
        self.set_expire_index(idx, expire_at);
    }

    /// Indexes the entries [`Shard::load`] put at positions `from..`, and admits them to the
    /// eviction policy's queues in that order. A key put twice keeps its last value, as
    /// inserting one after the other would leave it. Returns how many were put twice.
    fn index_loaded(&mut self, from: usize) -> usize {
        let twice = self.map.index_tail(from);
        // Each key's last value goes to the entry indexed (in position order: the last swap
        // leaves it there), then the other entries go, from the last position down, so that
        // the entry moved into each hole is an indexed one.
        for &(kept, dup) in &twice {
            let expire_at = self.map.get_index(dup).map(|e| self.view(e).expire_at());
            if let (Some(a), Some(expire_at)) = (self.map.get_index_mut(kept), expire_at) {
                let mut value = a.pair.replace(Value::Int(0));
                if let Some(b) = self.map.get_index_mut(dup) {
                    value = b.pair.replace(value);
                }
                if let Some(a) = self.map.get_index_mut(kept) {
                    a.pair.replace(value);
                }
                self.set_expire_index(kept, expire_at);
            }
        }
        for &(_, dup) in twice.iter().rev() {
            self.take_index(dup);
        }
        for idx in from..self.map.len() {
            let key = match crate::evict::tracking() {
                Tracking::Lru | Tracking::Lfu => break,
                _ => self.map.get_index(idx).map(|e| Key::new(e.key())),
            };
            if let Some(key) = key {
                self.admit(idx, &key);
            }
        }
        twice.len()
    }

    /// The eviction policy's and the expiry index's part of creating the entry at `idx`.
    #[inline]
    fn created(&mut self, idx: usize, key: &[u8], expire_at: Option<u64>) {
        self.admit(idx, key);
        self.set_expire_index(idx, expire_at);
    }

    /// The eviction policy's queues take the entry just created at `idx`.
    #[inline]
    fn admit(&mut self, idx: usize, key: &[u8]) {
        match crate::evict::tracking() {
            Tracking::S3Fifo => self.s3_admit(idx, key),
            Tracking::WTinyLfu => self.wt_admit(idx, key),
            Tracking::Lru | Tracking::Lfu => {}
        }
    }

    /// Stores `value` under `key` with the given expiry (`None`: the key does not expire),
    /// returning the previous live entry.
    pub fn insert(&mut self, key: &[u8], value: Value, expire_at: Option<u64>, now: u64) -> Option<Entry> {
        match self.slot(key, now) {
            Slot::Live(mut live) => Some(live.replace(value, expire_at)),
            Slot::Empty(empty) => {
                empty.insert(value, expire_at);
                None
            }
        }
    }

    /// [`Shard::insert`] of the string `bytes` (as [`Value::string`] stores them), which makes
    /// no buffer for them on the way to the key's block.
    pub fn insert_string(&mut self, key: &[u8], bytes: &[u8], expire_at: Option<u64>, now: u64) -> Option<Entry> {
        match self.slot(key, now) {
            Slot::Live(mut live) => Some(live.replace_string(bytes, expire_at)),
            Slot::Empty(empty) => {
                empty.insert_string(bytes, expire_at);
                None
            }
        }
    }

    /// Replaces the value of `key` and keeps its expiry (SET KEEPTTL); inserts a key without
    /// expiry if there is none. Returns the previous live entry.
    pub fn insert_keep_ttl(&mut self, key: &[u8], value: Value, now: u64) -> Option<Entry> {
        match self.slot(key, now) {
            Slot::Live(mut live) => {
                let expire = live.entry().expire_at();
                Some(live.replace(value, expire))
            }
            Slot::Empty(empty) => {
                empty.insert(value, None);
                None
            }
        }
    }

    /// Removes `key`, returning its entry if it was live.
    pub fn remove(&mut self, key: &[u8], now: u64) -> Option<Entry> {
        match self.slot(key, now) {
            Slot::Live(live) => Some(live.remove()),
            Slot::Empty(_) => None,
        }
    }

    /// Removes `key` as [`Shard::remove`] does, handing back its entry as stored (see
    /// [`LiveSlot::delete`]).
    pub fn delete(&mut self, key: &[u8], now: u64) -> Option<Removed> {
        match self.slot(key, now) {
            Slot::Live(live) => Some(live.delete()),
            Slot::Empty(_) => None,
        }
    }

    /// Sets (`Some`) or clears (`None`) the expiry of a live key. Returns false if there is no
    /// such key.
    pub fn set_expire(&mut self, key: &[u8], expire_at: Option<u64>, now: u64) -> bool {
        match self.slot(key, now) {
            Slot::Live(mut live) => {
                live.set_expire(expire_at);
                true
            }
            Slot::Empty(_) => false,
        }
    }

    /// Entry at position `idx` (0..len), expired or not.
    pub fn get_index(&self, idx: usize) -> Option<(&[u8], EntryRef<'_>)> {
        self.map.get_index(idx).map(|e| (e.key(), self.view(e)))
    }

    /// Live entries, in storage order.
    pub fn iter(&self, now: u64) -> impl Iterator<Item = (&[u8], EntryRef<'_>)> {
        self.map.iter().map(|(k, e)| (k, self.view(e))).filter(move |(_, e)| !e.is_expired(now))
    }

    /// Takes every entry out, leaving the shard empty; the caller can drop the returned map
    /// outside the lock. A snapshot in progress keeps the entries it has not written yet.
    fn take(&mut self) -> Map {
        self.tap.tick(self.counter);
        if !self.watched.is_empty() {
            // As Redis: a flush touches the watched keys that existed, and signals those that
            // blocked clients wait on (a client reading a stream through a group then fails,
            // as after Redis's `scanDatabaseForDeletedStreams`).
            for (k, w) in &mut self.watched {
                if self.map.contains_key(k) {
                    w.version += 1;
                    if w.waiters > 0 {
                        self.tap.ready(self.db, k);
                    }
                }
                w.tracked = false;
            }
            self.watched.retain(|_, w| w.refs > 0 || w.waiters > 0);
        }
        if self.tap.tracking() {
            self.tap.tracked(crate::tap::Tracked::Flush);
        }
        self.volatile = Vec::new();
        // The expiry times go with the entries (a snapshot in progress reads them below).
        let expires = std::mem::take(&mut self.expires);
        self.expire_cursor = 0;
        self.value_bytes = 0;
        self.small = 0;
        self.fifo = VecDeque::new();
        self.hand = 0;
        self.sketch = crate::sketch::Sketch::default();
        let map = std::mem::take(&mut self.map);
        if let Some(snap) = self.snap.as_deref_mut() {
            let cursor = std::mem::replace(snap.cursor.get_mut(), 0);
            for (i, mut e) in map.into_entries().enumerate() {
                if i < cursor && !e.marked() {
                    snap_entry(&expires, &mut e, |k, entry| (snap.sink)(self.db, k, entry));
                }
            }
            return Map::default();
        }
        map
    }

    /// Hands a snapshot in progress every entry it has not reached yet, so that the shard's
    /// contents may change wholesale (SWAPDB) while the snapshot still writes each database as
    /// it was at its moment.
    fn finish_snapshot_part(&mut self) {
        let Shard { snap, map, db, expires, .. } = self;
        if let Some(snap) = snap.as_deref_mut() {
            let cursor = std::mem::replace(snap.cursor.get_mut(), 0);
            for i in 0..cursor.min(map.len()) {
                // The walk ends here: marks are cleared as it would have cleared them.
                if let Some(e) = map.get_index_mut(i)
                    && !e.used.take_mark()
                {
                    snap_entry(expires, e, |k, entry| (snap.sink)(*db, k, entry));
                }
            }
        }
    }

    /// SWAPDB, for one shard: exchanges the entries of this shard and `other` (the same shard
    /// of another database). As Redis's `dbSwapDatabases`: watched keys that exist on either
    /// side are touched, and keys that blocked clients wait on and now exist are signalled.
    fn swap_contents(&mut self, other: &mut Shard) {
        self.finish_snapshot_part();
        other.finish_snapshot_part();
        for s in [&mut *self, &mut *other] {
            s.tap.tick(s.counter);
        }
        std::mem::swap(&mut self.map, &mut other.map);
        std::mem::swap(&mut self.volatile, &mut other.volatile);
        std::mem::swap(&mut self.expires, &mut other.expires);
        std::mem::swap(&mut self.expire_cursor, &mut other.expire_cursor);
        std::mem::swap(&mut self.value_bytes, &mut other.value_bytes);
        std::mem::swap(&mut self.avg_ttl, &mut other.avg_ttl);
        std::mem::swap(&mut self.small, &mut other.small);
        std::mem::swap(&mut self.fifo, &mut other.fifo);
        std::mem::swap(&mut self.ghost, &mut other.ghost);
        std::mem::swap(&mut self.sketch, &mut other.sketch);
        let touch = |s: &mut Shard, o: &Shard| {
            for (k, w) in &mut s.watched {
                let here = s.map.contains_key(k);
                if here || o.map.contains_key(k) {
                    w.version += 1;
                }
                if here && w.waiters > 0 {
                    s.tap.ready(s.db, k);
                }
            }
        };
        touch(self, other);
        touch(other, self);
    }

    /// Reports a change about to be made to the entry at `idx` (in place, or its removal): the
    /// change takes its sequence number, a snapshot in progress keeps the entry as it was, and
    /// watchers of the key see its version move.
    #[inline]
    fn changing(&mut self, idx: usize) -> u64 {
        let seq = self.tap.tick(self.counter);
        if self.snap.is_some() {
            self.preserve(idx);
        }
        if !self.watched.is_empty() {
            self.touch_watched(idx);
        }
        if self.tap.track_all()
            && let Some(e) = self.map.get_index(idx)
        {
            self.tap.tracked(crate::tap::Tracked::Key(e.key().into()));
        }
        seq
    }

    /// [`Shard::changing`]'s rare part: a watched key's version moves, and a key blocked
    /// clients wait on is reported to the tap.
    #[cold]
    fn touch_watched(&mut self, idx: usize) {
        if let Some(k) = self.map.get_index(idx).map(Stored::key)
            && let Some(w) = self.watched.get_mut(k)
        {
            w.version += 1;
            if w.waiters > 0 {
                self.tap.ready(self.db, k);
            }
            if std::mem::take(&mut w.tracked) {
                if !self.tap.track_all() {
                    self.tap.tracked(crate::tap::Tracked::Key(k.as_ref().into()));
                }
                if w.refs == 0 && w.waiters == 0 {
                    self.watched.remove(k);
                }
            }
        }
    }

    /// Reports a key about to be created (not in the map).
    #[inline]
    fn creating(&mut self, key: &[u8]) -> u64 {
        let seq = self.tap.tick(self.counter);
        if !self.watched.is_empty()
            && let Some(w) = self.watched.get_mut(key)
        {
            w.version += 1;
            if w.waiters > 0 {
                self.tap.ready(self.db, key);
            }
            if std::mem::take(&mut w.tracked) {
                if !self.tap.track_all() {
                    self.tap.tracked(crate::tap::Tracked::Key(key.into()));
                }
                if w.refs == 0 && w.waiters == 0 {
                    self.watched.remove(key);
                }
            }
        }
        if self.tap.track_all() {
            self.tap.tracked(crate::tap::Tracked::Key(key.into()));
        }
        seq
    }

    /// A client caches `key` (it read it with tracking on): its next change, creation or
    /// removal (expiry included) is queued to the tap as a [`crate::tap::Tracked::Key`], once.
    pub fn track(&mut self, key: &[u8]) {
        self.watched.entry(Key::new(key)).or_default().tracked = true;
    }

    /// No client caches `key` any more (the server dropped it from its table).
    pub fn untrack(&mut self, key: &[u8]) {
        if let Some(w) = self.watched.get_mut(key) {
            w.tracked = false;
            if w.refs == 0 && w.waiters == 0 {
                self.watched.remove(key);
            }
        }
    }

    /// Starts watching `key` (WATCH, or a transaction's first touch); returns its version.
    /// Every [`Shard::watch`] needs one [`Shard::unwatch`].
    pub fn watch(&mut self, key: &[u8]) -> u64 {
        let w = self.watched.entry(Key::new(key)).or_default();
        w.refs += 1;
        w.version
    }

    /// Stops one watch of `key`.
    pub fn unwatch(&mut self, key: &[u8]) {
        if let Some(w) = self.watched.get_mut(key) {
            w.refs = w.refs.saturating_sub(1);
            if w.refs == 0 && w.waiters == 0 && !w.tracked {
                self.watched.remove(key);
            }
        }
    }

    /// A blocked client starts waiting on `key`: from now on every change to the key (its
    /// creation above all) is reported to the tap's ready hook, as Redis's `signalKeyAsReady`,
    /// under this shard's lock. Every [`Shard::block_on`] needs one [`Shard::unblock`].
    pub fn block_on(&mut self, key: &[u8]) {
        self.watched.entry(Key::new(key)).or_default().waiters += 1;
    }

    /// A blocked client stops waiting on `key`.
    pub fn unblock(&mut self, key: &[u8]) {
        if let Some(w) = self.watched.get_mut(key) {
            w.waiters = w.waiters.saturating_sub(1);
            if w.refs == 0 && w.waiters == 0 && !w.tracked {
                self.watched.remove(key);
            }
        }
    }

    /// The version of a watched key (None if nobody watches it).
    pub fn watch_version(&self, key: &[u8]) -> Option<u64> {
        self.watched.get(key).map(|w| w.version)
    }

    /// Whether `key` is held but its time has passed (it is not reclaimed yet).
    pub fn is_expired(&self, key: &[u8], now: u64) -> bool {
        self.map.get(key).is_some_and(|e| self.view(e).is_expired(now))
    }

    #[cold]
    fn preserve(&mut self, idx: usize) {
        let Some(snap) = self.snap.as_deref_mut() else { return };
        if idx >= *snap.cursor.get_mut() {
            return; // already written out
        }
        if let Some(e) = self.map.get_index_mut(idx)
            && !e.marked()
        {
            e.used.set_mark();
            snap_entry(&self.expires, e, |k, entry| (snap.sink)(self.db, k, entry));
        }
    }

    /// Before `swap_remove_index(idx)`: the last entry is about to move into `idx`. If the
    /// snapshot has written it and has not reached `idx`, it must not write it again.
    #[cold]
    fn preserve_move(&mut self, idx: usize) {
        let Some(snap) = self.snap.as_deref_mut() else { return };
        let cursor = *snap.cursor.get_mut();
        let last = self.map.len().saturating_sub(1);
        if last != idx
            && last >= cursor
            && idx < cursor
            && let Some(e) = self.map.get_index_mut(last)
        {
            e.used.set_mark();
        }
    }

    /// Sets the expiry of the entry at `idx`, keeping `volatile` and `expires` in step.
    fn set_expire_index(&mut self, idx: usize, expire_at: Option<u64>) {
        let Some(e) = self.map.get_index_mut(idx) else { return };
        match (e.vpos, expire_at) {
            (NO_TTL, None) => {}
            (NO_TTL, Some(at)) => {
                e.vpos = u32::try_from(self.volatile.len()).expect("fewer than 2^32 keys in a shard");
                self.volatile.push(idx as u32);
                self.expires.push(at);
            }
            (pos, Some(at)) => {
                if let Some(t) = self.expires.get_mut(pos as usize) {
                    *t = at;
                }
            }
            (pos, None) => {
                e.vpos = NO_TTL;
                let pos = pos as usize;
                self.volatile.swap_remove(pos);
                self.expires.swap_remove(pos);
                if let Some(&moved) = self.volatile.get(pos)
                    && let Some(m) = self.map.get_index_mut(moved as usize)
                {
                    m.vpos = pos as u32;
                }
            }
        }
    }

    /// Removes the entry at `idx`; the last entry moves into its place. Returns the entry (with
    /// its expiry time, as it was: RENAME keeps the TTL) and the change's sequence number.
    fn remove_index(&mut self, idx: usize) -> Option<(Key, Entry, u64)> {
        let (e, expire_at, seq) = self.take_index(idx)?;
        let (k, value) = e.pair.into_parts();
        Some((k, Entry { value, expire_at: expire_at.unwrap_or(0), used: e.used }, seq))
    }

    /// [`Shard::remove_index`], the entry as stored (its key and value not read).
    fn take_index(&mut self, idx: usize) -> Option<(Stored, Option<u64>, u64)> {
        let expire_at = self.view(self.map.get_index(idx)?).expire_at();
        let seq = self.changing(idx);
        if self.snap.is_some() {
            self.preserve_move(idx);
        }
        self.set_expire_index(idx, None);
        let e = self.map.swap_remove_index(idx)?;
        self.value_bytes -= e.value().size() as u64;
        if !e.used.fifo().0 {
            self.small -= 1;
        }
        // The entry that was last now sits at `idx`: point its `volatile` slot there.
        if let Some(moved) = self.map.get_index(idx)
            && moved.vpos != NO_TTL
        {
            self.volatile[moved.vpos as usize] = idx as u32;
        }
        if let Some(snap) = self.snap.as_deref_mut() {
            let cursor = snap.cursor.get_mut();
            *cursor = (*cursor).min(self.map.len());
        }
        Some((e, expire_at, seq))
    }

    /// Removes the expired entry at `idx`, counting it and reporting it to the tap.
    fn expire_index(&mut self, idx: usize) {
        if let Some((e, _, seq)) = self.take_index(idx) {
            self.expired += 1;
            self.tap.expired(seq, self.db, e.key());
        }
    }

    /// Checks up to `budget` keys with an expiry time, continuing from where the last call
    /// stopped, and removes the expired ones. Returns (checked, removed).
    fn expire_step(&mut self, now: u64, budget: usize) -> (usize, usize) {
        let (mut checked, mut removed) = (0, 0);
        let (mut ttl_sum, mut ttl_samples) = (0u64, 0u64);
        while checked < budget && !self.volatile.is_empty() {
            if self.expire_cursor >= self.volatile.len() {
                self.expire_cursor = 0;
            }
            checked += 1;
            let idx = self.volatile[self.expire_cursor] as usize;
            let expire_at = self.expires[self.expire_cursor];
            if expire_at <= now {
                // The last volatile key moves into this position: look at it next.
                self.expire_index(idx);
                removed += 1;
            } else {
                ttl_sum = ttl_sum.saturating_add(expire_at - now);
                ttl_samples += 1;
                self.expire_cursor += 1;
            }
        }
        if let Some(avg) = ttl_sum.checked_div(ttl_samples) {
            // Redis's estimate: a slow-moving average of what each cycle samples.
            self.avg_ttl = if self.avg_ttl == 0 { avg } else { self.avg_ttl / 50 * 49 + avg / 50 };
        }
        (checked, removed)
    }

    /// Checks the invariants tying `volatile` to the map (for tests).
    #[cfg(test)]
    fn check(&self) {
        let with_ttl = self.map.iter().map(|(_, e)| e).filter(|e| e.vpos != NO_TTL).count();
        assert_eq!(with_ttl, self.volatile.len());
        assert_eq!(with_ttl, self.expires.len());
        let bytes: usize = self.map.iter().map(|(_, e)| e).map(|e| e.value().size()).sum();
        assert_eq!(bytes as u64, self.value_bytes);
        for (pos, &idx) in self.volatile.iter().enumerate() {
            let e = self.map.get_index(idx as usize).expect("volatile index in range");
            assert!(self.expires[pos] != 0);
            assert_eq!(e.vpos as usize, pos);
        }
    }
}
