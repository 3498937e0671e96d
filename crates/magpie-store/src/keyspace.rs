//! Databases, shards and entries.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use indexmap::IndexMap;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::evict::{Candidate, Policy, Pool, Tracking, Use, is_random, score};
use crate::tap::Tap;
use crate::{Frozen, Key, Value};

type Hasher = foldhash::fast::RandomState;
type Map = IndexMap<Key, Entry, Hasher>;

/// A value, its expiry time, and what eviction knows of its use.
#[derive(Debug)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry in ms since the epoch; 0 when the key does not expire. Private so that
    /// every change goes through [`Shard`], which indexes the keys that can expire.
    expire_at: u64,
    /// For an entry with an expiry time: its position in [`Shard::volatile`].
    vpos: u32,
    /// When the key was last used, or how often (see [`Use`]), and a snapshot's mark: four
    /// bytes, so an entry stays 40 bytes.
    used: Use,
}

impl Clone for Entry {
    fn clone(&self) -> Entry {
        Entry { value: self.value.clone(), expire_at: self.expire_at, vpos: self.vpos, used: self.used.clone() }
    }
}

/// Entries are equal when their values, expiry times and places among the expiring keys are
/// (not counting a snapshot's mark or the use clock).
impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.value == other.value && self.expire_at == other.expire_at && self.vpos == other.vpos
    }
}

impl Entry {
    pub fn new(value: Value) -> Entry {
        Entry { value, expire_at: 0, vpos: 0, used: Use::default() }
    }

    /// When the key expires (ms since the epoch), if it does.
    pub fn expire_at(&self) -> Option<u64> {
        (self.expire_at != 0).then_some(self.expire_at)
    }

    fn is_expired(&self, now: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now
    }

    /// The use clock (LRU time or LFU counter) and the S3-FIFO bits: see [`Use`].
    pub fn usage(&self) -> &Use {
        &self.used
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
    /// here (`Entry::vpos`): both sides update in O(1).
    volatile: Vec<u32>,
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
    /// The database this shard belongs to (named in expiry events).
    db: usize,
    /// The keyspace's change tap: every change is reported through it (see `tap.rs`).
    tap: Arc<Tap>,
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
    Now(&'a Entry),
    /// A big collection, frozen ([`Value::freeze`]): encode it once the lock is let go. Taking
    /// it cost O(chunks) under the lock, not O(elements).
    Later(FrozenEntry),
}

/// A big entry as it was at a snapshot's moment, readable on any thread.
pub struct FrozenEntry {
    pub expire_at: Option<u64>,
    pub value: Frozen,
}

/// What the snapshot gets for `e`: the entry itself, or a frozen image of a big value.
fn snap_entry(e: &mut Entry) -> SnapEntry<'_> {
    let expire_at = e.expire_at();
    match e.value.freeze() {
        Some(value) => SnapEntry::Later(FrozenEntry { expire_at, value }),
        None => SnapEntry::Now(e),
    }
}

/// A snapshot's progress through one shard.
///
/// The snapshot walks the shard from its last index down to 0, a few hundred entries at a
/// time, while writers go on. Entries at indices below `cursor` are still to be visited; the
/// rest have been written out, and so have any entries added since the snapshot began (they
/// are appended at the end, beyond the cursor, and were not there at its moment). A writer
/// about to change or remove an entry the walk has not reached first hands the entry as it is
/// to the snapshot's sink and marks it written (a bit of `Entry::used`), so the walk skips it
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
    pub fn get(&self, key: &[u8], now: u64) -> Option<&Entry> {
        let e = self.map.get(key).filter(|e| !e.is_expired(now))?;
        e.used.touch(now);
        Some(e)
    }

    /// The live entry of `key`, not counted as an access (Redis's `LOOKUP_NOTOUCH`: TYPE,
    /// EXISTS, TTL, OBJECT, MEMORY USAGE).
    pub fn peek(&self, key: &[u8], now: u64) -> Option<&Entry> {
        self.map.get(key).filter(|e| !e.is_expired(now))
    }

    /// Entries not in S3-FIFO's main queue.
    pub fn small(&self) -> usize {
        self.small
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
        match self.map.get_full(key) {
            Some((idx, _, e)) if !e.is_expired(now) => {
                e.used.touch(now);
                Slot::Live(LiveSlot { shard: self, idx, before: None })
            }
            Some((idx, _, _)) => Slot::Empty(EmptySlot { shard: Some(self), key, expired: Some(idx), now }),
            None => Slot::Empty(EmptySlot { shard: Some(self), key, expired: None, now }),
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
    pub fn get_index(&self, idx: usize) -> Option<(&[u8], &Entry)> {
        self.map.get_index(idx).map(|(k, e)| (&**k, e))
    }

    /// Live entries, in storage order.
    pub fn iter(&self, now: u64) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.map.iter().filter(move |(_, e)| !e.is_expired(now)).map(|(k, e)| (&**k, e))
    }

    /// Takes every entry out, leaving the shard empty; the caller can drop the returned map
    /// outside the lock. A snapshot in progress keeps the entries it has not written yet.
    fn take(&mut self) -> Map {
        self.tap.tick();
        if !self.watched.is_empty() {
            // As Redis: a flush touches the watched keys that existed, and signals those that
            // blocked clients wait on (a client reading a stream through a group then fails,
            // as after Redis's `scanDatabaseForDeletedStreams`).
            for (k, w) in self.watched.iter_mut() {
                if self.map.contains_key(&**k) {
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
        self.expire_cursor = 0;
        self.value_bytes = 0;
        self.small = 0;
        self.fifo = VecDeque::new();
        self.hand = 0;
        let mut map = std::mem::take(&mut self.map);
        if let Some(snap) = self.snap.as_deref_mut() {
            let cursor = std::mem::replace(snap.cursor.get_mut(), 0);
            for (i, (k, mut e)) in map.drain(..).enumerate() {
                if i < cursor && !e.marked() {
                    (snap.sink)(self.db, &k, snap_entry(&mut e));
                }
            }
        }
        map
    }

    /// Hands a snapshot in progress every entry it has not reached yet, so that the shard's
    /// contents may change wholesale (SWAPDB) while the snapshot still writes each database as
    /// it was at its moment.
    fn finish_snapshot_part(&mut self) {
        let Shard { snap, map, db, .. } = self;
        if let Some(snap) = snap.as_deref_mut() {
            let cursor = std::mem::replace(snap.cursor.get_mut(), 0);
            for i in 0..cursor.min(map.len()) {
                // The walk ends here: marks are cleared as it would have cleared them.
                if let Some((k, e)) = map.get_index_mut(i)
                    && !e.used.take_mark()
                {
                    (snap.sink)(*db, k, snap_entry(e));
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
            s.tap.tick();
        }
        std::mem::swap(&mut self.map, &mut other.map);
        std::mem::swap(&mut self.volatile, &mut other.volatile);
        std::mem::swap(&mut self.expire_cursor, &mut other.expire_cursor);
        std::mem::swap(&mut self.value_bytes, &mut other.value_bytes);
        std::mem::swap(&mut self.avg_ttl, &mut other.avg_ttl);
        std::mem::swap(&mut self.small, &mut other.small);
        std::mem::swap(&mut self.fifo, &mut other.fifo);
        std::mem::swap(&mut self.ghost, &mut other.ghost);
        let touch = |s: &mut Shard, o: &Shard| {
            for (k, w) in s.watched.iter_mut() {
                let here = s.map.contains_key(&**k);
                if here || o.map.contains_key(&**k) {
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
        let seq = self.tap.tick();
        if self.snap.is_some() {
            self.preserve(idx);
        }
        if !self.watched.is_empty() {
            self.touch_watched(idx);
        }
        if self.tap.track_all()
            && let Some((k, _)) = self.map.get_index(idx)
        {
            self.tap.tracked(crate::tap::Tracked::Key(k.as_ref().into()));
        }
        seq
    }

    /// [`Shard::changing`]'s rare part: a watched key's version moves, and a key blocked
    /// clients wait on is reported to the tap.
    #[cold]
    fn touch_watched(&mut self, idx: usize) {
        if let Some((k, _)) = self.map.get_index(idx)
            && let Some(w) = self.watched.get_mut(&**k)
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
                    self.watched.remove(&**k);
                }
            }
        }
    }

    /// Reports a key about to be created (not in the map).
    #[inline]
    fn creating(&mut self, key: &[u8]) -> u64 {
        let seq = self.tap.tick();
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
        self.map.get(key).is_some_and(|e| e.is_expired(now))
    }

    #[cold]
    fn preserve(&mut self, idx: usize) {
        let Some(snap) = self.snap.as_deref_mut() else { return };
        if idx >= *snap.cursor.get_mut() {
            return; // already written out
        }
        if let Some((k, e)) = self.map.get_index_mut(idx)
            && !e.marked()
        {
            e.used.set_mark();
            (snap.sink)(self.db, k, snap_entry(e));
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
            && let Some((_, e)) = self.map.get_index_mut(last)
        {
            e.used.set_mark();
        }
    }

    /// Sets the expiry of the entry at `idx`, keeping `volatile` in step.
    fn set_expire_index(&mut self, idx: usize, expire_at: Option<u64>) {
        let Some((_, e)) = self.map.get_index_mut(idx) else { return };
        let (was, will) = (e.expire_at != 0, expire_at.is_some());
        e.expire_at = expire_at.unwrap_or(0);
        if will && !was {
            e.vpos = self.volatile.len() as u32;
            self.volatile.push(idx as u32);
        } else if was && !will {
            let pos = e.vpos as usize;
            self.volatile.swap_remove(pos);
            if let Some(&moved) = self.volatile.get(pos)
                && let Some((_, m)) = self.map.get_index_mut(moved as usize)
            {
                m.vpos = pos as u32;
            }
        }
    }

    /// Removes the entry at `idx`; the last entry moves into its place. Returns the entry and
    /// the change's sequence number.
    fn remove_index(&mut self, idx: usize) -> Option<(Key, Entry, u64)> {
        let expire_at = self.map.get_index(idx)?.1.expire_at;
        let seq = self.changing(idx);
        if self.snap.is_some() {
            self.preserve_move(idx);
        }
        self.set_expire_index(idx, None);
        let (k, mut e) = self.map.swap_remove_index(idx)?;
        self.value_bytes -= e.value.size() as u64;
        if !e.used.fifo().0 {
            self.small -= 1;
        }
        e.expire_at = expire_at; // the caller gets the entry as it was (RENAME keeps the TTL)
        // The entry that was last now sits at `idx`: point its `volatile` slot there.
        if let Some((_, moved)) = self.map.get_index(idx)
            && moved.expire_at != 0
        {
            self.volatile[moved.vpos as usize] = idx as u32;
        }
        if let Some(snap) = self.snap.as_deref_mut() {
            let cursor = snap.cursor.get_mut();
            *cursor = (*cursor).min(self.map.len());
        }
        Some((k, e, seq))
    }

    /// Removes the expired entry at `idx`, counting it and reporting it to the tap.
    fn expire_index(&mut self, idx: usize) {
        if let Some((key, _, seq)) = self.remove_index(idx) {
            self.expired += 1;
            self.tap.expired(seq, self.db, &key);
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
            let expire_at = self.map.get_index(idx).map_or(0, |(_, e)| e.expire_at);
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
        let with_ttl = self.map.values().filter(|e| e.expire_at != 0).count();
        assert_eq!(with_ttl, self.volatile.len());
        let bytes: usize = self.map.values().map(|e| e.value.size()).sum();
        assert_eq!(bytes as u64, self.value_bytes);
        for (pos, &idx) in self.volatile.iter().enumerate() {
            let (_, e) = self.map.get_index(idx as usize).expect("volatile index in range");
            assert!(e.expire_at != 0);
            assert_eq!(e.vpos as usize, pos);
        }
    }
}

/// Where a key is in a shard: see [`Shard::slot`].
pub enum Slot<'a> {
    Live(LiveSlot<'a>),
    Empty(EmptySlot<'a>),
}

/// A live entry, found by [`Shard::slot`].
pub struct LiveSlot<'a> {
    shard: &'a mut Shard,
    idx: usize,
    /// The value's size when [`LiveSlot::value_mut`] first lent it out: the shard's byte count
    /// is brought up to date when the slot is done with (dropped or removed).
    before: Option<usize>,
}

impl LiveSlot<'_> {
    pub fn entry(&self) -> &Entry {
        &self.shard.map[self.idx]
    }

    /// The value, to change in place. Call it only to change the value: it counts as a change
    /// (numbered for the log, seen by WATCH and snapshots) even if nothing is changed.
    pub fn value_mut(&mut self) -> &mut Value {
        if self.before.is_none() {
            self.shard.changing(self.idx);
        }
        let value = &mut self.shard.map[self.idx].value;
        self.before.get_or_insert(value.size());
        value
    }

    /// Accounts for what was done through [`LiveSlot::value_mut`].
    #[inline]
    fn settle(&mut self) {
        if let Some(before) = self.before.take() {
            let now = self.shard.map[self.idx].value.size();
            self.shard.value_bytes = self.shard.value_bytes - before as u64 + now as u64;
        }
    }

    /// Replaces value and expiry, returning the old entry.
    pub fn replace(&mut self, value: Value, expire_at: Option<u64>) -> Entry {
        self.settle();
        self.shard.changing(self.idx);
        let size = value.size() as u64;
        let old_value = std::mem::replace(&mut self.shard.map[self.idx].value, value);
        self.shard.value_bytes = self.shard.value_bytes - old_value.size() as u64 + size;
        let old_expire = self.shard.map[self.idx].expire_at;
        self.shard.set_expire_index(self.idx, expire_at);
        Entry { value: old_value, expire_at: old_expire, vpos: 0, used: Use::default() }
    }

    pub fn set_expire(&mut self, expire_at: Option<u64>) {
        self.shard.changing(self.idx);
        self.shard.set_expire_index(self.idx, expire_at);
    }

    /// Overwrites the value with the string `bytes` and sets the expiry, reusing the old
    /// value's buffer where it fits (the common SET overwrite allocates nothing).
    pub fn assign_string(&mut self, bytes: &[u8], expire_at: Option<u64>) {
        self.settle();
        self.shard.changing(self.idx);
        let value = &mut self.shard.map[self.idx].value;
        let old = value.size() as u64;
        value.assign_string(bytes);
        self.shard.value_bytes = self.shard.value_bytes - old + bytes.len() as u64;
        self.shard.set_expire_index(self.idx, expire_at);
    }

    pub fn remove(mut self) -> Entry {
        self.settle();
        let (_, mut e, _) = self.shard.remove_index(self.idx).expect("a live slot's index is valid");
        e.vpos = 0;
        e
    }
}

impl Drop for LiveSlot<'_> {
    fn drop(&mut self) {
        self.settle();
    }
}

/// No live entry for a key, found by [`Shard::slot`]. If an expired entry is there, it is
/// overwritten by [`EmptySlot::insert`], or removed when the slot is dropped unused.
pub struct EmptySlot<'a> {
    /// `None` once used.
    shard: Option<&'a mut Shard>,
    key: &'a [u8],
    /// Index of an expired entry of this key.
    expired: Option<usize>,
    now: u64,
}

impl<'a> EmptySlot<'a> {
    /// Creates the key.
    pub fn insert(mut self, value: Value, expire_at: Option<u64>) {
        let shard = self.shard.take().expect("an EmptySlot is used once");
        shard.value_bytes += value.size() as u64;
        let idx = match self.expired {
            Some(idx) => {
                // The expired key is gone (and counted and reported as expired); a new one
                // takes its place.
                let seq = shard.changing(idx);
                shard.tap.expired(seq, shard.db, self.key);
                shard.creating(self.key);
                let old = std::mem::replace(&mut shard.map[idx].value, value);
                shard.value_bytes -= old.size() as u64;
                shard.expired += 1;
                if shard.map[idx].used.fifo().0 {
                    shard.small += 1;
                }
                shard.map[idx].used.init(self.now);
                idx
            }
            None => {
                shard.creating(self.key);
                let idx = shard.map.insert_full(Key::new(self.key), Entry::new(value)).0;
                shard.map[idx].used.init(self.now);
                shard.small += 1;
                idx
            }
        };
        if crate::evict::tracking() == Tracking::S3Fifo {
            shard.s3_admit(idx, self.key);
        }
        shard.set_expire_index(idx, expire_at);
    }
}

impl Drop for EmptySlot<'_> {
    fn drop(&mut self) {
        if let (Some(shard), Some(idx)) = (self.shard.take(), self.expired) {
            shard.expire_index(idx);
        }
    }
}

/// Keeps each shard's lock on its own cache line, so that two cores working on neighbouring
/// shards do not bounce one line between them.
#[repr(align(128))]
struct Padded<T>(T);

/// One database (what SELECT chooses): a fixed power-of-two number of shards.
pub struct Db {
    shards: Box<[Padded<RwLock<Shard>>]>,
    /// Seeded independently of the maps' own hashers, so that keys of one shard still spread
    /// over that shard's whole table; the same in every database (see [`Keyspace::swap_dbs`]).
    hasher: foldhash::fast::RandomState,
}

/// Counters of a database, from [`Db::stats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DbStats {
    /// Keys held, counting expired keys not yet reclaimed (as DBSIZE).
    pub keys: u64,
    /// Keys with an expiry time.
    pub expires: u64,
    /// Total size of the values (see [`Value::size`]).
    pub value_bytes: u64,
    /// Keys removed because they expired, since the server started.
    pub expired: u64,
    /// Estimated average time to live (ms) of the keys with an expiry time; 0 when unknown.
    pub avg_ttl: u64,
}

/// A SCAN position: which shard, and how many entries of it remain to be visited.
///
/// A shard is walked from its last index down to 0. Removing an entry moves the shard's last
/// entry into the hole, and inserting appends at the end, so an entry can only ever move from
/// the visited part (high indices) to the unvisited part (low indices), never the other way:
/// a key present for the whole scan is never missed (it may be returned twice, as Redis
/// allows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanCursor(pub u64);

impl Db {
    fn new(index: usize, shards: usize, tap: &Arc<Tap>, hasher: &foldhash::fast::RandomState) -> Db {
        let n = shards.next_power_of_two().max(1);
        let shard = || Shard { db: index, tap: tap.clone(), ..Shard::default() };
        Db { shards: (0..n).map(|_| Padded(RwLock::new(shard()))).collect(), hasher: hasher.clone() }
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard that holds `key`.
    pub fn shard_index(&self, key: &[u8]) -> usize {
        // High bits: the low ones of a foldhash are the weaker ones.
        let h = self.hasher.hash_one(key);
        (h >> 32) as usize & (self.shards.len() - 1)
    }

    pub fn read(&self, key: &[u8]) -> RwLockReadGuard<'_, Shard> {
        self.shards[self.shard_index(key)].0.read()
    }

    pub fn write(&self, key: &[u8]) -> RwLockWriteGuard<'_, Shard> {
        self.shards[self.shard_index(key)].0.write()
    }

    pub fn shard(&self, idx: usize) -> &RwLock<Shard> {
        &self.shards[idx].0
    }

    /// Number of keys (counting expired keys not yet reclaimed, as Redis does).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.0.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of keys with an expiry time.
    pub fn volatile(&self) -> usize {
        self.shards.iter().map(|s| s.0.read().volatile()).sum()
    }

    /// The database's counters, summed over its shards (each read-locked in turn, briefly).
    pub fn stats(&self) -> DbStats {
        let mut stats = DbStats::default();
        let mut ttl_weighted = 0u128;
        for shard in self.shards.iter() {
            let s = shard.0.read();
            stats.keys += s.len() as u64;
            stats.expires += s.volatile() as u64;
            stats.value_bytes += s.value_bytes;
            stats.expired += s.expired;
            if s.avg_ttl > 0 {
                ttl_weighted += u128::from(s.avg_ttl) * s.volatile() as u128;
            }
        }
        if stats.expires > 0 {
            stats.avg_ttl = u64::try_from(ttl_weighted / u128::from(stats.expires)).unwrap_or(u64::MAX);
        }
        stats
    }

    /// Empties the database atomically (every shard is locked before any is cleared) and
    /// returns the old contents, so the caller can free them off the hot path.
    pub fn flush(&self) -> Vec<impl Send + use<>> {
        let mut guards: Vec<_> = self.shards.iter().map(|s| s.0.write()).collect();
        guards.iter_mut().map(|g| g.take()).collect()
    }

    /// Visits up to about `count` entries from `cursor`, calling `f` for each live one; returns
    /// the cursor to continue from (0 when the scan is complete).
    pub fn scan(&self, cursor: ScanCursor, count: usize, now: u64, mut f: impl FnMut(&[u8], &Entry)) -> ScanCursor {
        let bits = self.shards.len().trailing_zeros();
        let mask = (self.shards.len() - 1) as u64;
        let (mut shard, mut remaining) = if cursor.0 == 0 {
            (0usize, None)
        } else {
            ((cursor.0 & mask) as usize, Some((cursor.0 >> bits).saturating_sub(1)))
        };
        if remaining.is_some_and(|r| r > u64::from(u32::MAX)) {
            // No shard holds that many entries: a cursor this server never gave out. Like
            // Redis with a cursor past its table, the scan is over.
            return ScanCursor(0);
        }
        let mut visited = 0;
        loop {
            let guard = self.shards[shard].0.read();
            let mut pos = remaining.map_or(guard.len(), |r| usize::try_from(r).unwrap_or(usize::MAX).min(guard.len()));
            while pos > 0 && visited < count {
                pos -= 1;
                visited += 1;
                if let Some((k, e)) = guard.get_index(pos)
                    && !e.is_expired(now)
                {
                    f(k, e);
                }
            }
            drop(guard);
            if pos > 0 {
                return ScanCursor(((pos as u64 + 1) << bits) | shard as u64);
            }
            shard += 1;
            remaining = None;
            if shard == self.shards.len() {
                return ScanCursor(0);
            }
            if visited >= count {
                // Start the next shard in the next call, from its length at that time.
                let len = self.shards[shard].0.read().len() as u64;
                return ScanCursor(((len + 1) << bits) | shard as u64);
            }
        }
    }

    /// A random live key, if there is one.
    pub fn random_key(&self, now: u64) -> Option<Box<[u8]>> {
        let n = self.shards.len();
        // Sample a few times: all shards may be empty, or hold only expired keys.
        for _ in 0..100 {
            let start = fastrand::usize(..n);
            for i in 0..n {
                let shard = self.shards[(start + i) % n].0.read();
                if shard.is_empty() {
                    continue;
                }
                if let Some((k, e)) = shard.get_index(fastrand::usize(..shard.len()))
                    && !e.is_expired(now)
                {
                    return Some(k.into());
                }
                break;
            }
        }
        None
    }
}

/// All databases.
pub struct Keyspace {
    dbs: Box<[Db]>,
    tap: Arc<Tap>,
    /// Where the active expiry cycle continues: (database, shard).
    expire_cursor: parking_lot::Mutex<(usize, usize)>,
}

/// What one active expiry cycle did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpireStats {
    pub checked: usize,
    pub expired: usize,
}

impl Keyspace {
    /// `databases` databases of `shards` shards each (rounded up to a power of two).
    pub fn new(databases: usize, shards: usize) -> Keyspace {
        let tap = Arc::new(Tap::default());
        // One shard hasher for every database: a key has the same shard in each, so SWAPDB
        // can exchange databases shard by shard.
        let hasher = foldhash::fast::RandomState::default();
        Keyspace {
            dbs: (0..databases.max(1)).map(|i| Db::new(i, shards, &tap, &hasher)).collect(),
            tap,
            expire_cursor: parking_lot::Mutex::new((0, 0)),
        }
    }

    pub fn db_count(&self) -> usize {
        self.dbs.len()
    }

    /// The change tap of this keyspace (see `tap.rs`).
    pub fn tap(&self) -> &Tap {
        &self.tap
    }

    /// A handle on the tap that outlives a borrow of the keyspace (for other threads).
    pub fn tap_handle(&self) -> Arc<Tap> {
        self.tap.clone()
    }

    /// Runs `f` while every shard of every database is write-locked: to every other thread,
    /// `f` happens between two commands. For switching what the tap reports, atomically.
    pub fn with_all_locked<R>(&self, f: impl FnOnce() -> R) -> R {
        let guards: Vec<_> = self.dbs.iter().flat_map(|d| d.shards.iter()).map(|s| s.0.write()).collect();
        let r = f();
        drop(guards);
        r
    }

    /// Starts a snapshot: from this moment until each shard is finished, [`snapshot_step`]
    /// returns the keyspace as it is now, however it changes meanwhile. `at_cut` runs at that
    /// moment, with every shard locked (the log switches files there); its result is returned.
    /// At most one snapshot may run at a time (the caller sees to it).
    ///
    /// [`snapshot_step`]: Keyspace::snapshot_step
    pub fn begin_snapshot<R>(&self, sink: SnapshotSink, at_cut: impl FnOnce() -> R) -> R {
        let mut guards: Vec<_> = self.dbs.iter().flat_map(|d| d.shards.iter()).map(|s| s.0.write()).collect();
        for g in &mut guards {
            let len = g.len();
            g.snap = Some(Box::new(SnapState { cursor: AtomicUsize::new(len), sink: sink.clone() }));
        }
        let r = at_cut();
        drop(guards);
        r
    }

    /// Writes out up to about `budget` entries of shard `shard` of database `db` for the
    /// snapshot in progress: calls `emit` with each key and its entry as they were when the
    /// snapshot began (expired entries included; the loader sorts them out), except those a
    /// writer already gave to the sink. Returns true when the shard is finished, after which
    /// changes to it cost the snapshot nothing. The shard is read-locked while it is visited; a
    /// big collection ends the step and is frozen under a brief write lock, and emitted as
    /// [`SnapEntry::Later`], for the caller to encode after this returns. (A plain read lock,
    /// not an upgradable one: a writer waiting for it sets its intent, so the walk's next step
    /// waits behind the writer instead of taking the lock again before it could run.)
    pub fn snapshot_step(
        &self,
        db: usize,
        shard: usize,
        budget: usize,
        mut emit: impl FnMut(&[u8], SnapEntry<'_>),
    ) -> bool {
        let lock = &self.dbs[db].shards[shard].0;
        {
            let g = lock.read();
            let Some(snap) = g.snap.as_deref() else { return true };
            let mut cursor = snap.cursor.load(Ordering::Relaxed).min(g.map.len());
            let mut visited = 0;
            while cursor > 0 && visited < budget {
                let Some((k, e)) = g.map.get_index(cursor - 1) else { break };
                if !e.used.take_mark() {
                    if e.value.wants_freezing() {
                        // Freezing changes the value's cells: it takes the write lock, below.
                        break;
                    }
                    emit(k, SnapEntry::Now(e));
                }
                cursor -= 1;
                visited += 1;
            }
            snap.cursor.store(cursor, Ordering::Relaxed);
            if cursor > 0 && visited == budget {
                return false;
            }
        }
        // Writers may have run in between: the cursor they left says where the walk is.
        let mut g = lock.write();
        let shard = &mut *g;
        let Some(snap) = shard.snap.as_deref_mut() else { return true };
        let cursor = (*snap.cursor.get_mut()).min(shard.map.len());
        if cursor > 0 {
            if let Some((k, e)) = shard.map.get_index_mut(cursor - 1)
                && !e.used.take_mark()
            {
                emit(k, snap_entry(e));
            }
            *snap.cursor.get_mut() = cursor - 1;
            return false;
        }
        let taken = shard.snap.take();
        drop(g);
        drop(taken);
        true
    }

    /// Abandons the snapshot in progress (after an error): every shard drops its state.
    pub fn abort_snapshot(&self) {
        for shard in self.dbs.iter().flat_map(|d| d.shards.iter()) {
            let mut g = shard.0.write();
            let taken = g.snap.take();
            // Marks live only below the cursor; clear them, as the walk would have, so the
            // next snapshot starts with none.
            if let Some(snap) = taken.as_deref() {
                let cursor = snap.cursor.load(Ordering::Relaxed).min(g.map.len());
                for i in 0..cursor {
                    if let Some((_, e)) = g.map.get_index(i) {
                        e.used.take_mark();
                    }
                }
            }
            drop(g);
            drop(taken);
        }
    }

    pub fn db(&self, i: usize) -> &Db {
        &self.dbs[i]
    }

    pub fn dbs(&self) -> &[Db] {
        &self.dbs
    }

    /// Write-locks the shards of all `keys` ((database, key) pairs) at once, in a fixed order.
    /// SWAPDB: exchanges the contents of databases `a` and `b`, atomically (every shard of
    /// both is locked, in order, before any is changed). Clients see each database's keys
    /// under the other's number; a snapshot in progress still writes both as they were.
    pub fn swap_dbs(&self, a: usize, b: usize) {
        if a == b || a >= self.dbs.len() || b >= self.dbs.len() {
            return;
        }
        let (lo, hi) = (a.min(b), a.max(b));
        let mut first: Vec<_> = self.dbs[lo].shards.iter().map(|s| s.0.write()).collect();
        let mut second: Vec<_> = self.dbs[hi].shards.iter().map(|s| s.0.write()).collect();
        for (x, y) in first.iter_mut().zip(second.iter_mut()) {
            x.swap_contents(y);
        }
    }

    pub fn lock_write<'a, 'k>(&'a self, keys: impl IntoIterator<Item = (usize, &'k [u8])>) -> MultiWrite<'a> {
        let ids = self.shard_ids(keys);
        let guards = ids.iter().map(|&(db, s)| self.dbs[db].shards[s].0.write()).collect();
        MultiWrite { ks: self, ids, guards }
    }

    /// Read-locks the shards of all `keys` at once, in a fixed order: a consistent view.
    pub fn lock_read<'a, 'k>(&'a self, keys: impl IntoIterator<Item = (usize, &'k [u8])>) -> MultiRead<'a> {
        let ids = self.shard_ids(keys);
        let guards = ids.iter().map(|&(db, s)| self.dbs[db].shards[s].0.read()).collect();
        MultiRead { ks: self, ids, guards }
    }

    /// Brings the entries and values of `keys` (in database `db`) into the CPU cache ahead of
    /// the commands that will use them. Every shard involved is read-locked first, in one
    /// sorted pass, and then the keys are looked up back to back: with no locked instruction
    /// between them, the lookups overlap their cache misses, which commands run one at a time
    /// cannot do. Missing keys cost a lookup and nothing else.
    pub fn warm<'k>(&self, db: usize, keys: impl Iterator<Item = &'k [u8]> + Clone) {
        if db >= self.dbs.len() {
            return;
        }
        let locked = self.lock_read(keys.clone().map(|k| (db, k)));
        let mut sink = 0u8;
        for key in keys {
            if let Some(e) = locked.shard(db, key).map.get(key)
                && let Value::Str(s) = &e.value
            {
                sink ^= s.first().copied().unwrap_or(0);
            }
        }
        std::hint::black_box(sink);
    }

    fn shard_ids<'k>(&self, keys: impl IntoIterator<Item = (usize, &'k [u8])>) -> Vec<(usize, usize)> {
        let mut ids: Vec<(usize, usize)> = keys.into_iter().map(|(db, k)| (db, self.dbs[db].shard_index(k))).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// One cycle of active expiry: walks shards that hold keys with a TTL, removing expired
    /// keys, until `deadline`. `between` runs after each shard step that looked at keys, with
    /// no lock held (the server logs the deletions there). Each shard is locked for at most a few hundred entries at a
    /// time, so no client waits long. Stops early when a full round finds little to do.
    pub fn active_expire(&self, now: u64, deadline: Instant, mut between: impl FnMut()) -> ExpireStats {
        const PER_LOCK: usize = 256;
        let mut stats = ExpireStats::default();
        let mut cursor = self.expire_cursor.lock();
        let total: usize = self.dbs.iter().map(|d| d.shards.len()).sum();
        let (mut round_checked, mut round_expired, mut visited) = (0, 0, 0);
        loop {
            let (db, shard) = *cursor;
            if let Some(lock) = self.dbs.get(db).and_then(|d| d.shards.get(shard)) {
                // Cheap look first, so idle shards cost no write lock.
                if lock.0.read().volatile() > 0 {
                    let (c, e) = lock.0.write().expire_step(now, PER_LOCK);
                    round_checked += c;
                    round_expired += e;
                    between();
                }
            }
            *cursor = if shard + 1 < self.dbs.get(db).map_or(0, |d| d.shards.len()) {
                (db, shard + 1)
            } else {
                ((db + 1) % self.dbs.len(), 0)
            };
            visited += 1;
            if visited % total == 0 {
                stats.checked += round_checked;
                stats.expired += round_expired;
                // Go round again only while at least a tenth of what we look at has expired.
                if round_expired * 10 < round_checked || round_checked == 0 {
                    return stats;
                }
                round_checked = 0;
                round_expired = 0;
            }
            if visited % 64 == 0 && Instant::now() >= deadline {
                stats.checked += round_checked;
                stats.expired += round_expired;
                return stats;
            }
        }
    }
}

/// Write locks over the shards of several keys; see [`Keyspace::lock_write`].
pub struct MultiWrite<'a> {
    ks: &'a Keyspace,
    ids: Vec<(usize, usize)>,
    guards: Vec<RwLockWriteGuard<'a, Shard>>,
}

impl MultiWrite<'_> {
    /// The shard of `key` in database `db`.
    ///
    /// # Panics
    /// If that key was not among those locked (a bug in the caller).
    pub fn shard(&mut self, db: usize, key: &[u8]) -> &mut Shard {
        let id = (db, self.ks.dbs[db].shard_index(key));
        let i = self.ids.binary_search(&id).expect("key's shard was not locked");
        &mut self.guards[i]
    }

    /// The shard of `key` in database `db`, read-only: several can be borrowed at once (a
    /// command that reads some keys and then writes another, as SINTERSTORE).
    ///
    /// # Panics
    /// If that key was not among those locked (a bug in the caller).
    pub fn shard_ref(&self, db: usize, key: &[u8]) -> &Shard {
        let id = (db, self.ks.dbs[db].shard_index(key));
        let i = self.ids.binary_search(&id).expect("key's shard was not locked");
        &self.guards[i]
    }
}

/// Read locks over the shards of several keys; see [`Keyspace::lock_read`].
pub struct MultiRead<'a> {
    ks: &'a Keyspace,
    ids: Vec<(usize, usize)>,
    guards: Vec<RwLockReadGuard<'a, Shard>>,
}

impl MultiRead<'_> {
    /// The shard of `key` in database `db`.
    ///
    /// # Panics
    /// If that key was not among those locked (a bug in the caller).
    pub fn shard(&self, db: usize, key: &[u8]) -> &Shard {
        let id = (db, self.ks.dbs[db].shard_index(key));
        let i = self.ids.binary_search(&id).expect("key's shard was not locked");
        &self.guards[i]
    }
}

/// What one step of [`Keyspace::evict_one`] did.
#[derive(Debug)]
pub enum EvictStep {
    /// A key was evicted.
    Evicted(Evicted),
    /// Keys that had expired were removed instead (reported as expired), or S3-FIFO moved
    /// keys between its queues: memory may not have changed; step again.
    Progress,
    /// Nothing can be evicted: no key, or (volatile policies) no key with an expiry time.
    Nothing,
}

/// A key evicted: drop `entry` outside any lock; `seq` numbers the change for the log.
#[derive(Debug)]
pub struct Evicted {
    pub db: usize,
    pub key: Key,
    pub seq: u64,
    pub entry: Entry,
}

/// S3-FIFO's small queue's share of the keys, in percent (the simulator's best: 2).
const S3_SMALL_PERCENT: usize = 2;

impl Shard {
    /// S3-FIFO: a key just created at `idx` goes into the main queue if the ghost remembers
    /// it, else into the small one.
    fn s3_admit(&mut self, idx: usize, key: &[u8]) {
        if self.ghost_hit(key) {
            self.map[idx].used.requeue(true, 0);
            self.small -= 1;
            return;
        }
        if self.fifo.len() > 2 * self.small + 64 {
            // Copies of keys since removed or moved pile up when nothing is evicted.
            let map = &self.map;
            self.fifo.retain(|k| map.get(&**k).is_some_and(|e| !e.used.fifo().0));
            if self.fifo.capacity() > 4 * self.fifo.len() + 64 {
                self.fifo.shrink_to_fit();
            }
        }
        self.fifo.push_back(Key::new(key));
        // While memory is under the limit nothing is evicted, and the small queue would take
        // every new key (and its copy here). Past twice its share, its oldest keys overflow
        // into the main queue as they are. Under eviction it stays near its share, and this
        // never runs (a scan cannot push keys into the main queue through it).
        let limit = 2 * (self.map.len() * S3_SMALL_PERCENT / 100).max(1) + 16;
        while self.small > limit {
            let Some(k) = self.fifo.pop_front() else { break };
            if let Some(e) = self.map.get(&*k)
                && !e.used.fifo().0
            {
                let freq = e.used.fifo().1;
                e.used.requeue(true, freq);
                self.small -= 1;
            }
        }
    }

    /// Whether `key` was evicted from S3-FIFO's small queue lately (and forgets it).
    fn ghost_hit(&mut self, key: &[u8]) -> bool {
        if self.ghost.is_empty() {
            return false;
        }
        let (i, fp) = self.ghost_slot(key);
        if self.ghost[i] == fp {
            self.ghost[i] = 0;
            return true;
        }
        false
    }

    fn ghost_slot(&self, key: &[u8]) -> (usize, u32) {
        let h = self.map.hasher().hash_one(key);
        ((h as usize) & (self.ghost.len() - 1), (h >> 32) as u32 | 1)
    }

    /// Remembers a key evicted from S3-FIFO's small queue. The table has about half as many
    /// slots as the main queue has keys (the simulator's best ghost size; 4 bytes a slot); it
    /// is remade when the shard has grown or shrunk a lot (which forgets).
    fn ghost_add(&mut self, key: &[u8]) {
        let want = ((self.map.len() - self.small) / 2).next_power_of_two().max(64);
        if self.ghost.len() < want / 2 || self.ghost.len() > want * 2 {
            self.ghost = vec![0; want];
        }
        let (i, fp) = self.ghost_slot(key);
        self.ghost[i] = fp;
    }

    /// Up to `n` random live entries (of those with an expiry time, for `volatile`), and
    /// their indices.
    fn sample(&self, n: usize, volatile: bool, mut f: impl FnMut(usize, &[u8], &Entry)) {
        let len = if volatile { self.volatile.len() } else { self.map.len() };
        if len == 0 {
            return;
        }
        // Consecutive entries from a random start, as Redis's dictGetSomeKeys walks buckets:
        // one random jump, then neighbours.
        let start = fastrand::usize(..len);
        for i in 0..n.min(len) {
            let pos = (start + i) % len;
            let idx = if volatile { self.volatile[pos] as usize } else { pos };
            if let Some((k, e)) = self.map.get_index(idx) {
                f(idx, k, e);
            }
        }
    }
}

impl Keyspace {
    /// Reads the shards' sizes for sampling (each read-locked in turn).
    fn refresh_sizes(&self, policy: Policy, pool: &mut Pool) {
        pool.sizes.clear();
        pool.total = 0;
        for (d, db) in self.dbs.iter().enumerate() {
            for (i, shard) in db.shards.iter().enumerate() {
                let g = shard.0.read();
                let n = if policy.volatile() { g.volatile.len() } else { g.map.len() };
                if n > 0 {
                    pool.sizes.push((d, i, n));
                    pool.total += n;
                }
            }
        }
        pool.stale_in = 64;
    }

    /// One step of eviction under `policy` (see `evict.rs`): samples `samples` keys of one
    /// shard and evicts the best candidate seen. Locks one shard at a time.
    pub fn evict_one(&self, policy: Policy, samples: usize, now: u64, pool: &mut Pool) -> EvictStep {
        if policy == Policy::NoEviction {
            return EvictStep::Nothing;
        }
        let samples = samples.max(1);
        if pool.stale_in == 0 || pool.total == 0 {
            self.refresh_sizes(policy, pool);
        } else {
            pool.stale_in -= 1;
        }
        for attempt in 0..4 {
            if attempt > 0 {
                self.refresh_sizes(policy, pool);
            }
            let Some((db, shard)) = pool.pick_shard() else { return EvictStep::Nothing };
            let lock = &self.dbs[db].shards[shard].0;
            if is_random(policy) {
                let mut g = lock.write();
                let len = if policy.volatile() { g.volatile.len() } else { g.map.len() };
                if len == 0 {
                    continue;
                }
                let pos = fastrand::usize(..len);
                let idx = if policy.volatile() { g.volatile[pos] as usize } else { pos };
                return self.finish(db, &mut g, idx, now);
            }
            if policy == Policy::AllKeysS3Fifo {
                return self.evict_s3fifo(db, shard, now);
            }
            {
                let g = lock.read();
                g.sample(samples, policy.volatile(), |_, k, e| {
                    let score = if e.is_expired(now) { u64::MAX } else { score(policy, e, now) };
                    pool.offer(Candidate { score, db, shard, key: Key::new(k) });
                });
            }
            while let Some(c) = pool.take_best() {
                let mut g = self.dbs[c.db].shards[c.shard].0.write();
                let Some(idx) = g.map.get_index_of(&*c.key) else { continue };
                return self.finish(c.db, &mut g, idx, now);
            }
        }
        EvictStep::Nothing
    }

    /// Evicts the entry at `idx` of a write-locked shard (or reclaims it, if it expired).
    fn finish(&self, db: usize, g: &mut Shard, idx: usize, now: u64) -> EvictStep {
        let Some((k, e)) = g.map.get_index(idx) else { return EvictStep::Progress };
        if e.is_expired(now) {
            let k = k.clone();
            drop(g.slot(&k, now)); // reclaimed and reported as expired
            return EvictStep::Progress;
        }
        match g.remove_index(idx) {
            Some((key, entry, seq)) => EvictStep::Evicted(Evicted { db, key, seq, entry }),
            None => EvictStep::Progress,
        }
    }

    /// S3-FIFO's eviction in one shard (see `evict.rs`).
    fn evict_s3fifo(&self, db: usize, shard: usize, now: u64) -> EvictStep {
        let mut g = self.dbs[db].shards[shard].0.write();
        let g = &mut *g;
        // Each key is passed at most a few times (its frequency is at most 3): bounded.
        for _ in 0..4 * g.map.len() + 16 {
            let len = g.map.len();
            if len == 0 {
                return EvictStep::Nothing;
            }
            let target = (len * S3_SMALL_PERCENT / 100).max(1);
            if (g.small > target || g.small == len)
                && let Some(k) = g.fifo.pop_front()
            {
                let Some(idx) = g.map.get_index_of(&*k) else { continue };
                let (main, freq) = g.map[idx].used.fifo();
                if main {
                    continue; // moved already (a copy left in the queue)
                }
                if freq >= 1 {
                    g.map[idx].used.requeue(true, 0);
                    g.small -= 1;
                    continue;
                }
                g.ghost_add(&k);
                return self.finish(db, g, idx, now);
            }
            // The CLOCK hand over the main queue (every key, when the small queue has none).
            if g.hand >= len {
                g.hand = 0;
            }
            let idx = g.hand;
            let e = &g.map[idx];
            let (main, freq) = e.used.fifo();
            if !main && !g.fifo.is_empty() {
                g.hand += 1;
                continue;
            }
            if freq > 0 {
                e.used.requeue(main, freq - 1);
                g.hand += 1;
                continue;
            }
            g.hand += 1;
            return self.finish(db, g, idx, now);
        }
        EvictStep::Progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    fn v(s: &str) -> Value {
        Value::string(s.as_bytes())
    }

    #[test]
    fn expired_entries_are_invisible_and_reclaimed_on_write_access() {
        let mut s = Shard::default();
        s.insert(b"a", v("1"), Some(100), 0);
        assert!(s.get(b"a", 99).is_some());
        assert!(s.get(b"a", 100).is_none());
        assert_eq!(s.volatile(), 1);
        assert!(matches!(s.slot(b"a", 100), Slot::Empty(_)));
        assert_eq!((s.len(), s.volatile(), s.value_bytes(), s.expired()), (0, 0, 0, 1));
    }

    #[test]
    fn volatile_count_follows_every_change() {
        let mut s = Shard::default();
        s.insert(b"a", v("1"), Some(100), 0);
        s.insert(b"a", v("2"), None, 0);
        assert_eq!(s.volatile(), 0);
        assert!(s.set_expire(b"a", Some(50), 0));
        assert_eq!(s.volatile(), 1);
        s.insert_keep_ttl(b"a", v("3"), 0);
        assert_eq!(s.get(b"a", 0).unwrap().expire_at(), Some(50));
        assert!(s.set_expire(b"a", None, 0));
        assert_eq!(s.volatile(), 0);
        s.set_expire(b"a", Some(10), 0);
        assert!(s.remove(b"a", 0).is_some());
        assert_eq!(s.volatile(), 0);
        assert!(!s.set_expire(b"missing", Some(1), 0));
    }

    #[test]
    fn random_operations_agree_with_a_model() {
        use std::collections::BTreeMap;
        let mut rng = fastrand::Rng::with_seed(7);
        let mut shard = Shard::default();
        // key -> (value, expire_at or 0)
        let mut model: BTreeMap<Vec<u8>, (i64, u64)> = BTreeMap::new();
        let mut now = 1000;
        // Every key created is still held, was deleted, or expired.
        let (mut created, mut deleted) = (0, 0);
        for step in 0..20_000 {
            let key = format!("k{}", rng.u8(..64)).into_bytes();
            let ttl = if rng.bool() { Some(now + rng.u64(1..50)) } else { None };
            let live = |m: &BTreeMap<Vec<u8>, (i64, u64)>, k: &[u8], now: u64| {
                m.get(k).filter(|(_, at)| *at == 0 || *at > now).copied()
            };
            match rng.u8(..7) {
                0 | 1 => {
                    let v = i64::from(step);
                    let got = shard.insert(&key, Value::Int(v), ttl, now).map(|e| (e.value, e.expire_at));
                    created += u64::from(got.is_none());
                    assert_eq!(got, live(&model, &key, now).map(|(v, at)| (Value::Int(v), at)));
                    model.insert(key, (v, ttl.unwrap_or(0)));
                }
                2 => {
                    let got = shard.remove(&key, now).map(|e| (e.value, e.expire_at));
                    deleted += u64::from(got.is_some());
                    assert_eq!(got, live(&model, &key, now).map(|(v, at)| (Value::Int(v), at)));
                    model.remove(&key);
                }
                3 => {
                    let exists = live(&model, &key, now).is_some();
                    assert_eq!(shard.set_expire(&key, ttl, now), exists);
                    if exists {
                        model.get_mut(&key).unwrap().1 = ttl.unwrap_or(0);
                    } else {
                        model.remove(&key);
                    }
                }
                4 => {
                    // Change a value in place: the byte count must follow.
                    let exists = live(&model, &key, now).is_some();
                    match shard.slot(&key, now) {
                        Slot::Live(mut live) => {
                            let v = live.value_mut();
                            *v = Value::Int(-i64::from(step) * 1000);
                            let m = model.get_mut(&key).unwrap();
                            m.0 = -i64::from(step) * 1000;
                            assert!(exists);
                        }
                        Slot::Empty(_) => {
                            assert!(!exists);
                            model.remove(&key);
                        }
                    }
                }
                5 => {
                    shard.expire_step(now, rng.usize(1..20));
                    model.retain(|_, (_, at)| *at == 0 || *at > now);
                }
                _ => now += rng.u64(0..10),
            }
            shard.check();
            assert_eq!(shard.len() as u64 + deleted + shard.expired(), created, "step {step}");
            for (k, _) in model.iter().filter(|(k, _)| live(&model, k, now).is_some()) {
                assert!(shard.contains(k, now), "step {step}: lost {k:?}");
            }
            let live_count = shard.iter(now).count();
            assert_eq!(live_count, model.keys().filter(|k| live(&model, k, now).is_some()).count());
        }
    }

    #[test]
    fn value_bytes_follow_every_write() {
        let mut s = Shard::default();
        s.insert(b"a", v("hello"), None, 0);
        s.insert(b"b", v("12345"), Some(10), 0);
        assert_eq!(s.value_bytes(), 10);
        if let Slot::Live(mut live) = s.slot(b"a", 0) {
            live.value_mut().str_mut().unwrap().extend_from_slice(b" world");
        }
        assert_eq!(s.value_bytes(), 16);
        if let Slot::Live(mut live) = s.slot(b"a", 0) {
            live.assign_string(b"xy", None);
        }
        assert_eq!(s.value_bytes(), 7);
        if let Slot::Live(mut live) = s.slot(b"a", 0) {
            live.value_mut().str_mut().unwrap().push(b'z');
            assert_eq!(live.remove().value, v("xyz"));
        }
        assert_eq!(s.value_bytes(), 5);
        s.insert(b"b", v("-1"), None, 20); // over an expired entry
        assert_eq!((s.value_bytes(), s.expired()), (2, 1));
        s.insert(b"c", v("abc"), Some(30), 0);
        assert_eq!(s.expire_step(40, 10), (1, 1));
        assert_eq!((s.value_bytes(), s.expired(), s.len()), (2, 2, 1));
        s.take();
        assert_eq!((s.value_bytes(), s.expired()), (0, 2));
    }

    #[test]
    fn insert_returns_only_live_previous_entries() {
        let mut s = Shard::default();
        s.insert(b"a", v("old"), Some(10), 0);
        assert!(s.insert(b"a", v("new"), None, 20).is_none());
        assert_eq!(s.insert(b"a", v("newer"), None, 20).unwrap().value, v("new"));
    }

    fn scan_all(db: &Db, count: usize, mut between: impl FnMut(usize)) -> Vec<Vec<u8>> {
        let mut seen = Vec::new();
        let mut cursor = ScanCursor(0);
        let mut calls = 0;
        loop {
            cursor = db.scan(cursor, count, 0, |k, _| seen.push(k.to_vec()));
            calls += 1;
            if cursor.0 == 0 {
                return seen;
            }
            between(calls);
        }
    }

    #[test]
    fn scan_visits_every_key_once_without_changes() {
        let db = Db::new(0, 8, &Arc::default(), &Default::default());
        for i in 0..1000 {
            db.write(format!("k{i}").as_bytes()).insert(format!("k{i}").as_bytes(), v("x"), None, 0);
        }
        let seen = scan_all(&db, 7, |_| {});
        assert_eq!(seen.len(), 1000);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 1000);
    }

    #[test]
    fn scan_never_misses_a_key_present_throughout_despite_churn() {
        let db = Db::new(0, 4, &Arc::default(), &Default::default());
        let stable: Vec<String> = (0..500).map(|i| format!("stable{i}")).collect();
        for k in &stable {
            db.write(k.as_bytes()).insert(k.as_bytes(), v("x"), None, 0);
        }
        for i in 0..500 {
            let k = format!("churn{i}");
            db.write(k.as_bytes()).insert(k.as_bytes(), v("x"), None, 0);
        }
        let seen = scan_all(&db, 10, |call| {
            // Between calls: delete some churn keys and add new ones.
            for j in 0..5 {
                let old = format!("churn{}", call * 5 + j);
                db.write(old.as_bytes()).remove(old.as_bytes(), 0);
                let new = format!("new{call}_{j}");
                db.write(new.as_bytes()).insert(new.as_bytes(), v("x"), None, 0);
            }
        });
        let seen: HashSet<Vec<u8>> = seen.into_iter().collect();
        for k in &stable {
            assert!(seen.contains(k.as_bytes()), "missed {k}");
        }
    }

    #[test]
    fn multi_locks_cover_keys_in_several_databases() {
        let ks = Keyspace::new(2, 4);
        let mut locked = ks.lock_write([(1, &b"a"[..]), (0, b"b"), (1, b"a")]);
        locked.shard(1, b"a").insert(b"a", v("1"), None, 0);
        locked.shard(0, b"b").insert(b"b", v("2"), None, 0);
        drop(locked);
        let read = ks.lock_read([(0, &b"b"[..]), (1, b"a")]);
        assert_eq!(read.shard(1, b"a").get(b"a", 0).unwrap().value, v("1"));
        assert!(read.shard(0, b"b").get(b"b", 0).is_some());
    }

    #[test]
    fn active_expiry_reclaims_untouched_keys() {
        let ks = Keyspace::new(2, 8);
        for i in 0..10_000 {
            let k = format!("k{i}");
            ks.db(1).write(k.as_bytes()).insert(k.as_bytes(), v("x"), Some(5), 0);
        }
        ks.db(1).write(b"keep").insert(b"keep", v("x"), Some(1_000_000), 0);
        let mut expired = 0;
        for _ in 0..100 {
            expired += ks.active_expire(10, Instant::now() + Duration::from_millis(50), || {}).expired;
        }
        assert_eq!(expired, 10_000);
        assert_eq!(ks.db(1).len(), 1);
        assert_eq!(ks.db(1).volatile(), 1);
    }

    #[test]
    fn flush_empties_and_hands_back_contents() {
        let ks = Keyspace::new(1, 4);
        for i in 0..100 {
            let k = format!("k{i}");
            ks.db(0).write(k.as_bytes()).insert(k.as_bytes(), v("x"), Some(5), 0);
        }
        let old = ks.db(0).flush();
        assert_eq!(ks.db(0).len(), 0);
        assert_eq!(ks.db(0).volatile(), 0);
        drop(old);
    }

    /// What a snapshot got for one entry, as a value and an expiry.
    fn image(e: SnapEntry<'_>) -> (Value, Option<u64>) {
        match e {
            SnapEntry::Now(e) => (e.value.clone(), e.expire_at()),
            SnapEntry::Later(f) => (f.value.to_value(), f.expire_at),
        }
    }

    /// A big collection of each type (frozen by snapshots rather than encoded under the lock).
    fn big_value(kind: usize, rng: &mut fastrand::Rng) -> Value {
        let n = crate::dense::CHUNK + rng.usize(..3000);
        let m = |i: usize| format!("m{i}").into_bytes();
        match kind % 4 {
            0 => Value::List(Box::new((0..n).map(m).collect())),
            1 => {
                Value::Set(Box::new(crate::Set::from_members((0..n).map(m).collect::<Vec<_>>().iter().map(|v| &v[..]))))
            }
            2 => Value::Hash(Box::new((0..n).map(|i| (m(i), m(i * 7))).collect())),
            _ => Value::ZSet(Box::new(crate::ZSet::from_entries(
                (0..n).map(|i| (Key::new(&m(i)), (i % 97) as f64)).collect(),
            ))),
        }
    }

    /// Changes a collection in place a little (one element), or replaces a string.
    fn touch(v: &mut Value, rng: &mut fastrand::Rng) {
        let x = format!("x{}", rng.u32(..)).into_bytes();
        match v {
            Value::List(l) => {
                if rng.bool() {
                    l.push_front(&x);
                } else {
                    l.drop_back_one();
                }
                let i = rng.usize(..l.len());
                l.set(i, &x);
            }
            Value::Set(s) => {
                s.insert(&x);
                s.pop_random();
                s.pop_random();
            }
            Value::Hash(h) => {
                h.insert(&x, b"v");
                let f = h.random_pair().map(|(f, _)| f.to_vec()).unwrap_or_default();
                h.remove(&f);
                let f = h.random_pair().map(|(f, _)| f.to_vec()).unwrap_or_default();
                h.insert(&f, &x);
            }
            Value::ZSet(z) => {
                z.insert(&x, f64::from(rng.u8(..)));
                z.pop_with(rng.bool(), |_, _| ());
                let m = z.random().map(|(m, _)| m.to_vec()).unwrap_or_default();
                z.insert(&m, -1.0);
            }
            other => *other = Value::Str(x),
        }
    }

    /// The snapshot's mark and the eviction clock live in the four bytes after `vpos`.
    #[test]
    fn an_entry_is_40_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 40);
    }

    fn fill(ks: &Keyspace, n: usize, now: u64, ttl: impl Fn(usize) -> Option<u64>) {
        for i in 0..n {
            let k = format!("k{i}");
            ks.db(0).write(k.as_bytes()).insert(k.as_bytes(), Value::Int(i as i64), ttl(i), now);
        }
    }

    fn evict(ks: &Keyspace, policy: Policy, n: usize, now: u64) -> Vec<String> {
        let mut pool = Pool::default();
        let mut out = Vec::new();
        while out.len() < n {
            match ks.evict_one(policy, 5, now, &mut pool) {
                EvictStep::Evicted(e) => out.push(String::from_utf8_lossy(&e.key).into_owned()),
                EvictStep::Progress => {}
                EvictStep::Nothing => break,
            }
        }
        out
    }

    /// Sampled LRU evicts mostly keys not read lately; volatile policies touch only keys
    /// with an expiry time; with none, there is nothing to evict.
    #[test]
    fn eviction_follows_the_policy() {
        let _lock = crate::evict::TEST_LOCK.lock();
        let ks = Keyspace::new(2, 8);
        fill(&ks, 1000, 1_000_000, |_| None);
        // Keys 0..500 are read an hour later.
        let later = 1_000_000 + 3_600_000;
        for i in 0..500 {
            let k = format!("k{i}");
            assert!(ks.db(0).read(k.as_bytes()).get(k.as_bytes(), later).is_some());
        }
        let gone = evict(&ks, Policy::AllKeysLru, 200, later);
        assert_eq!(gone.len(), 200);
        let recent = gone.iter().filter(|k| k[1..].parse::<usize>().unwrap() < 500).count();
        assert!(recent < 20, "{recent} recently read keys evicted");
        assert_eq!(ks.db(0).len(), 800);

        let ks = Keyspace::new(1, 4);
        fill(&ks, 100, 0, |i| (i % 10 == 0).then_some(1_000_000));
        let gone = evict(&ks, Policy::VolatileRandom, 50, 0);
        assert_eq!(gone.len(), 10);
        assert!(gone.iter().all(|k| k[1..].parse::<usize>().unwrap() % 10 == 0));
        assert_eq!(evict(&ks, Policy::VolatileTtl, 1, 0).len(), 0);
        assert_eq!(evict(&ks, Policy::AllKeysRandom, 100, 0).len(), 90);
        assert_eq!(evict(&ks, Policy::NoEviction, 1, 0).len(), 0);
    }

    /// volatile-ttl takes the keys that expire soonest first.
    #[test]
    fn volatile_ttl_evicts_the_nearest_expiry() {
        let ks = Keyspace::new(1, 1);
        fill(&ks, 50, 0, |i| Some(1_000 + i as u64));
        let gone = evict(&ks, Policy::VolatileTtl, 10, 0);
        let avg = gone.iter().map(|k| k[1..].parse::<usize>().unwrap()).sum::<usize>() / 10;
        assert!(avg < 20, "{gone:?}");
    }

    /// S3-FIFO (sampled) keeps keys read more than once and drops one-hit keys; the small
    /// queue's count follows every change.
    #[test]
    fn s3fifo_keeps_keys_read_twice() {
        let _lock = crate::evict::TEST_LOCK.lock();
        crate::evict::set_tracking(Tracking::S3Fifo, 10, 1);
        let ks = Keyspace::new(1, 2);
        fill(&ks, 400, 0, |_| None);
        for i in 0..100 {
            let k = format!("k{i}");
            for _ in 0..3 {
                ks.db(0).read(k.as_bytes()).get(k.as_bytes(), 0);
            }
        }
        let gone = evict(&ks, Policy::AllKeysS3Fifo, 250, 0);
        crate::evict::set_tracking(Tracking::Lru, 10, 1);
        let hot = gone.iter().filter(|k| k[1..].parse::<usize>().unwrap() < 100).count();
        assert!(hot < 25, "{hot} hot keys of {} evicted", gone.len());
        for s in 0..2 {
            let g = ks.db(0).shard(s).read();
            let small = g.map.values().filter(|e| !e.used.fifo().0).count();
            assert_eq!(small, g.small());
        }
    }

    /// Big collections reach a snapshot frozen (O(chunks) under the lock), never encoded
    /// under it: from a writer that changes one before the walk reaches it, from the walk, and
    /// from a flush.
    #[test]
    fn big_collections_reach_a_snapshot_frozen() {
        let mut rng = fastrand::Rng::with_seed(1);
        let ks = Keyspace::new(1, 1);
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            ks.db(0).write(k.as_bytes()).insert(k.as_bytes(), big_value(i, &mut rng), None, 0);
        }
        ks.db(0).write(b"small").insert(b"small", Value::List(Box::new(["x"].into_iter().collect())), None, 0);
        let sunk = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let into = sunk.clone();
        ks.begin_snapshot(
            Arc::new(move |_, k: &[u8], e: SnapEntry<'_>| {
                into.lock().push((k.to_vec(), matches!(e, SnapEntry::Later(_))))
            }),
            || (),
        );
        if let Slot::Live(mut live) = ks.db(0).write(b"a").slot(b"a", 0) {
            touch(live.value_mut(), &mut rng);
        }
        let mut walked = Vec::new();
        while !ks.snapshot_step(0, 0, 1, |k, e| walked.push((k.to_vec(), matches!(e, SnapEntry::Later(_))))) {
            if walked.len() == 1 {
                drop(ks.db(0).flush());
            }
        }
        let mut sunk = sunk.lock().clone();
        sunk.sort();
        assert_eq!(walked, [(b"small".to_vec(), false)]);
        assert_eq!(sunk, [(b"a".to_vec(), true), (b"b".to_vec(), true), (b"c".to_vec(), true)]);
        // The other order: the walk meets the big values.
        ks.db(0).write(b"d").insert(b"d", big_value(3, &mut rng), None, 0);
        ks.begin_snapshot(Arc::new(|_, _: &[u8], _: SnapEntry<'_>| panic!("nothing changes")), || ());
        let mut walked = Vec::new();
        while !ks.snapshot_step(0, 0, 10, |k, e| walked.push((k.to_vec(), matches!(e, SnapEntry::Later(_))))) {}
        assert_eq!(walked, [(b"d".to_vec(), true)]);
    }

    /// A snapshot taken while keys are written, removed, expired and flushed returns exactly
    /// the keyspace of its moment: every key once, with its value of then. Some keys hold big
    /// collections, which the snapshot freezes and writers change in place.
    #[test]
    fn snapshots_are_a_point_in_time_under_concurrent_changes() {
        use std::collections::BTreeMap;
        for seed in 0..40 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let ks = Keyspace::new(2, 4);
            for b in 0..4 {
                let v = big_value(b + seed as usize, &mut rng);
                ks.db(b % 2).write(format!("big{b}").as_bytes()).insert(format!("big{b}").as_bytes(), v, None, 0);
            }
            let key = |rng: &mut fastrand::Rng| {
                if rng.u8(..20) == 0 {
                    format!("big{}", rng.u8(..4)).into_bytes()
                } else {
                    format!("k{}", rng.u16(..300)).into_bytes()
                }
            };
            let mut now = 1000;
            let apply = |rng: &mut fastrand::Rng, now: &mut u64| {
                let db = rng.usize(..2);
                let k = key(rng);
                let mut shard = ks.db(db).write(&k);
                match rng.u8(..10) {
                    0..=3 => {
                        let ttl = rng.bool().then(|| *now + rng.u64(1..40));
                        shard.insert(&k, Value::Int(rng.i64(..)), ttl, *now);
                    }
                    4 | 5 => {
                        shard.remove(&k, *now);
                    }
                    6 => {
                        if let Slot::Live(mut live) = shard.slot(&k, *now) {
                            touch(live.value_mut(), rng);
                        }
                    }
                    7 => {
                        shard.set_expire(&k, Some(*now + rng.u64(1..40)), *now);
                    }
                    8 => {
                        shard.expire_step(*now, 5);
                        *now += rng.u64(..5);
                    }
                    _ => {
                        drop(shard);
                        match rng.u8(..30) {
                            0 => drop(ks.db(db).flush()),
                            1 => ks.swap_dbs(0, 1),
                            _ => {}
                        }
                    }
                }
            };
            for _ in 0..600 {
                apply(&mut rng, &mut now);
            }
            // The state at the snapshot's moment, expired entries included (as stored).
            let mut expected = BTreeMap::new();
            for db in 0..2 {
                for s in 0..ks.db(db).shard_count() {
                    let shard = ks.db(db).shard(s).read();
                    for i in 0..shard.len() {
                        let (k, e) = shard.get_index(i).unwrap();
                        expected.insert((db, k.to_vec()), (e.value.clone(), e.expire_at()));
                    }
                }
            }
            let sunk = Arc::new(parking_lot::Mutex::new(Vec::new()));
            let into = sunk.clone();
            ks.begin_snapshot(
                Arc::new(move |db, k: &[u8], e: SnapEntry<'_>| {
                    let (value, expire) = image(e);
                    into.lock().push((db, k.to_vec(), value, expire))
                }),
                || (),
            );
            let mut got = BTreeMap::new();
            let mut pending: Vec<(usize, usize)> = (0..2).flat_map(|d| (0..4).map(move |s| (d, s))).collect();
            while !pending.is_empty() {
                let i = rng.usize(..pending.len());
                let (db, s) = pending[i];
                let done = ks.snapshot_step(db, s, rng.usize(1..8), |k, e| {
                    let old = got.insert((db, k.to_vec()), image(e));
                    assert!(old.is_none(), "seed {seed}: {k:?} written twice");
                });
                if done {
                    pending.swap_remove(i);
                }
                for _ in 0..rng.usize(..6) {
                    apply(&mut rng, &mut now);
                }
            }
            for (db, k, value, expire) in sunk.lock().drain(..) {
                let old = got.insert((db, k.clone()), (value, expire));
                assert!(old.is_none(), "seed {seed}: {k:?} written twice");
            }
            assert_eq!(got, expected, "seed {seed}");
            for db in 0..2 {
                for s in 0..4 {
                    let shard = ks.db(db).shard(s).read();
                    assert!(shard.snap.is_none());
                    shard.check();
                }
            }
        }
    }

    #[test]
    fn swapdb_exchanges_databases_and_touches_watched_keys() {
        let ks = Keyspace::new(3, 4);
        for i in 0..50 {
            let k = format!("a{i}");
            ks.db(0).write(k.as_bytes()).insert(k.as_bytes(), v("zero"), (i % 2 == 0).then_some(10_000), 0);
        }
        ks.db(2).write(b"only2").insert(b"only2", v("two"), None, 0);
        let w0 = ks.db(0).write(b"a1").watch(b"a1");
        let w2 = ks.db(2).write(b"a1").watch(b"a1");
        let untouched = ks.db(1).write(b"nowhere").watch(b"nowhere");
        let before = (ks.db(0).stats(), ks.db(2).stats());
        ks.swap_dbs(0, 2);
        assert_eq!((ks.db(2).stats(), ks.db(0).stats()), before);
        assert_eq!(ks.db(2).read(b"a7").get(b"a7", 0).map(|e| e.value.clone()), Some(v("zero")));
        assert_eq!(ks.db(0).read(b"only2").get(b"only2", 0).map(|e| e.value.clone()), Some(v("two")));
        assert!(ks.db(0).read(b"a7").get(b"a7", 0).is_none());
        // A watched key that existed on either side moved; one that exists nowhere did not.
        assert_ne!(ks.db(0).read(b"a1").watch_version(b"a1"), Some(w0));
        assert_ne!(ks.db(2).read(b"a1").watch_version(b"a1"), Some(w2));
        assert_eq!(ks.db(1).read(b"nowhere").watch_version(b"nowhere"), Some(untouched));
        for db in [0, 2] {
            for s in 0..4 {
                ks.db(db).shard(s).read().check();
            }
        }
    }

    #[test]
    fn tracked_keys_queue_their_next_change_once() {
        use crate::tap::{Tracked, take_tracked};
        let ks = Keyspace::new(1, 4);
        let key = |k: &str| Tracked::Key(k.as_bytes().into());
        take_tracked();
        ks.db(0).write(b"a").track(b"a");
        ks.db(0).write(b"b").track(b"b");
        // Creation of a tracked key, then nothing more until it is tracked again.
        ks.db(0).write(b"a").insert(b"a", v("1"), None, 0);
        ks.db(0).write(b"a").insert(b"a", v("2"), None, 0);
        ks.db(0).write(b"c").insert(b"c", v("3"), None, 0);
        assert_eq!(take_tracked(), vec![key("a")]);
        ks.db(0).write(b"a").track(b"a");
        assert!(ks.db(0).write(b"a").remove(b"a", 0).is_some());
        ks.db(0).write(b"b").untrack(b"b");
        ks.db(0).write(b"b").insert(b"b", v("1"), None, 0);
        assert_eq!(take_tracked(), vec![key("a")]);
        // Every change while tracking all; a flush once per shard while tracking is on.
        ks.tap().set_track_all(true);
        ks.db(0).write(b"d").insert(b"d", v("1"), None, 0);
        assert_eq!(take_tracked(), vec![key("d")]);
        ks.tap().set_track_all(false);
        ks.tap().set_tracking(true);
        drop(ks.db(0).flush());
        assert_eq!(take_tracked().len(), 4);
        assert!(!crate::tap::has_tracked());
    }

    #[test]
    fn watched_versions_move_with_every_change_and_only_then() {
        let mut s = Shard::default();
        s.insert(b"a", v("1"), None, 0);
        let v0 = s.watch(b"a");
        let m0 = s.watch(b"missing");
        assert!(s.get(b"a", 0).is_some());
        s.insert(b"other", v("x"), None, 0);
        assert_eq!((s.watch_version(b"a"), s.watch_version(b"missing")), (Some(v0), Some(m0)));
        if let Slot::Live(mut live) = s.slot(b"a", 0) {
            live.value_mut();
        }
        assert_eq!(s.watch_version(b"a"), Some(v0 + 1));
        s.insert(b"missing", v("now"), None, 0);
        assert_eq!(s.watch_version(b"missing"), Some(m0 + 1));
        s.set_expire(b"a", Some(10), 0);
        s.remove(b"missing", 0);
        assert_eq!((s.watch_version(b"a"), s.watch_version(b"missing")), (Some(v0 + 2), Some(m0 + 2)));
        assert!(s.is_expired(b"a", 10) && !s.is_expired(b"a", 9));
        // Reclaiming the expired key is a change too.
        s.expire_step(20, 10);
        assert_eq!(s.watch_version(b"a"), Some(v0 + 3));
        // Two watchers of one key: it stays watched until both let go.
        s.watch(b"a");
        s.unwatch(b"a");
        assert!(s.watch_version(b"a").is_some());
        s.unwatch(b"a");
        assert!(s.watch_version(b"a").is_none());
        // A flush touches the watched keys that existed, not the others.
        s.insert(b"b", v("1"), None, 0);
        let b0 = s.watch(b"b");
        let c0 = s.watch(b"c");
        drop(s.take());
        assert_eq!((s.watch_version(b"b"), s.watch_version(b"c")), (Some(b0 + 1), Some(c0)));
    }

    #[test]
    fn the_tap_numbers_changes_and_reports_expired_keys() {
        let ks = Keyspace::new(2, 4);
        ks.tap().set_ordering(true);
        ks.tap().set_expired_tap(true);
        crate::tap::reset_last_seq();
        ks.db(1).write(b"a").insert(b"a", v("1"), Some(50), 0);
        let first = crate::tap::last_seq();
        assert!(first > 0);
        ks.db(1).write(b"b").insert(b"b", v("1"), None, 0);
        assert!(crate::tap::last_seq() > first);
        // A read changes nothing.
        let before = crate::tap::last_seq();
        assert!(ks.db(1).read(b"a").get(b"a", 0).is_some());
        assert_eq!(crate::tap::last_seq(), before);
        // A write that finds "a" expired reports it, numbered before the write itself.
        ks.db(1).write(b"a").insert(b"a", v("2"), None, 100);
        let expired = crate::tap::take_expired();
        assert_eq!(expired.len(), 1);
        assert_eq!((expired[0].db, &*expired[0].key), (1, &b"a"[..]));
        assert!(expired[0].seq > before && expired[0].seq < crate::tap::last_seq());
        assert!(!crate::tap::has_expired());
        ks.tap().set_ordering(false);
        ks.tap().set_expired_tap(false);
    }

    #[test]
    fn random_key_finds_live_keys_only() {
        let db = Db::new(0, 16, &Arc::default(), &Default::default());
        assert!(db.random_key(0).is_none());
        db.write(b"dead").insert(b"dead", v("x"), Some(1), 0);
        assert!(db.random_key(5).is_none());
        db.write(b"live").insert(b"live", v("x"), None, 0);
        assert_eq!(&*db.random_key(5).unwrap(), b"live");
    }
}
