//! All databases, and the locks over several keys' shards.

use super::*;

/// Keys [`Keyspace::warm`] takes at most (a connection's batch of pipelined commands is 32).
pub const WARM_MAX: usize = 64;

/// All databases.
pub struct Keyspace {
    pub(super) dbs: Box<[Db]>,
    pub(super) tap: Arc<Tap>,
    /// Where the active expiry cycle continues: (database, shard).
    pub(super) expire_cursor: parking_lot::Mutex<(usize, usize)>,
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
        let databases = databases.max(1);
        let tap = Arc::new(Tap::new(databases * shards.next_power_of_two().max(1)));
        // One shard hasher for every database: a key has the same shard in each, so SWAPDB
        // can exchange databases shard by shard.
        let hasher = foldhash::fast::RandomState::default();
        Keyspace {
            dbs: (0..databases).map(|i| Db::new(i, shards, &tap, &hasher)).collect(),
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
    /// moment, with every shard locked (the log switches files there); its result is returned,
    /// with the number of keys of each database at that moment: the entries the snapshot
    /// will hold. At most one snapshot may run at a time (the caller sees to it).
    ///
    /// [`snapshot_step`]: Keyspace::snapshot_step
    pub fn begin_snapshot<R>(&self, sink: SnapshotSink, at_cut: impl FnOnce() -> R) -> (R, Vec<u64>) {
        let mut keys = vec![0u64; self.dbs.len()];
        let mut guards: Vec<_> = self.dbs.iter().flat_map(|d| d.shards.iter()).map(|s| s.0.write()).collect();
        for g in &mut guards {
            let len = g.len();
            keys[g.db] += len as u64;
            g.snap = Some(Box::new(SnapState { cursor: AtomicUsize::new(len), sink: sink.clone() }));
        }
        let r = at_cut();
        drop(guards);
        (r, keys)
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
                let Some(e) = g.map.get_index(cursor - 1) else { break };
                let k = e.key();
                if !e.used.take_mark() {
                    if e.value().wants_freezing() {
                        // Freezing changes the value's cells: it takes the write lock, below.
                        break;
                    }
                    emit(k, SnapEntry::Now(g.view(e)));
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
            if let Some(e) = shard.map.get_index_mut(cursor - 1)
                && !e.used.take_mark()
            {
                snap_entry(&shard.expires, e, &mut emit);
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
                    if let Some(e) = g.map.get_index(i) {
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

    /// Write-locks the shards of all `keys` ((database, key) pairs) at once, in a fixed order
    /// (those a transaction on this thread holds are borrowed from it: see [`Keyspace::hold`]).
    pub fn lock_write<'a, 'k>(&'a self, keys: impl IntoIterator<Item = (usize, &'k [u8])>) -> MultiWrite<'a> {
        let ids = self.shard_ids(keys);
        let guards = ids.iter().map(|&(db, s)| held::write(&self.dbs[db].shards[s].0)).collect();
        MultiWrite { ks: self, ids, guards }
    }

    /// Read-locks the shards of all `keys` at once, in a fixed order: a consistent view (those
    /// a transaction on this thread holds are borrowed from it).
    pub fn lock_read<'a, 'k>(&'a self, keys: impl IntoIterator<Item = (usize, &'k [u8])>) -> MultiRead<'a> {
        let ids = self.shard_ids(keys);
        let guards = ids.iter().map(|&(db, s)| held::read(&self.dbs[db].shards[s].0)).collect();
        MultiRead { ks: self, ids, guards }
    }

    /// Brings the entries and values of `keys` (in database `db`) into the CPU cache ahead of
    /// the commands that will use them. Every shard involved is read-locked first, in one
    /// sorted pass, and then the keys are looked up back to back: with no locked instruction
    /// between them, the lookups overlap their cache misses, which commands run one at a time
    /// cannot do. Missing keys cost a lookup and nothing else.
    ///
    /// It goes in three passes over the keys, each reading only what the last one asked the
    /// CPU to fetch: first each key's line of its shard's index is asked for (its address
    /// comes from the hash alone); then each key's place is read there, and the entry at it
    /// asked for; then each entry's key is compared and its value and expiry time asked
    /// for. Read one key at a time, index, entry and value were misses in a row per key (a
    /// third of a pipelined GET's time). Keys past the first [`WARM_MAX`] are left to their
    /// commands.
    ///
    /// The shards are locked in ascending order, as [`Keyspace::lock_read`] does; with at most
    /// 64 shards a database, their set is a bit mask, which gives that order and each key's
    /// guard (the bits below its shard's) without the sort and the binary searches of the
    /// general case (sorting a batch's shards was 1.5% of a pipelined GET's time).
    pub fn warm<'k>(&self, db: usize, keys: impl Iterator<Item = &'k [u8]> + Clone) {
        let Some(d) = self.dbs.get(db) else { return };
        if d.shards.len() > 64 {
            let locked = self.lock_read(keys.clone().take(WARM_MAX).map(|k| (db, k)));
            warm_in(keys, |_, key| locked.shard(db, key));
            return;
        }
        let mut mask = 0u64;
        let mut shard_of = [0u8; WARM_MAX];
        for (key, s) in keys.clone().zip(shard_of.iter_mut()) {
            let i = d.shard_index(key);
            *s = i as u8;
            mask |= 1 << i;
        }
        let locked = MaskRead::lock(d, mask);
        warm_in(keys, |i, _| locked.shard(usize::from(shard_of[i])));
    }

    pub(super) fn shard_ids<'k>(&self, keys: impl IntoIterator<Item = (usize, &'k [u8])>) -> Vec<(usize, usize)> {
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

/// [`Keyspace::warm`]'s three passes over `keys` (at most [`WARM_MAX`] of them), with `shard`
/// giving the locked shard of the key at each place.
fn warm_in<'s, 'k>(keys: impl Iterator<Item = &'k [u8]> + Clone, shard: impl Fn(usize, &[u8]) -> &'s Shard) {
    let mut at: [Option<(&Shard, u64)>; WARM_MAX] = [None; WARM_MAX];
    for (i, (key, place)) in keys.clone().zip(at.iter_mut()).enumerate() {
        let shard = shard(i, key);
        let hash = shard.map.hash(key);
        shard.map.prefetch_index(hash);
        *place = Some((shard, hash));
    }
    let mut found: [Option<(&Shard, usize)>; WARM_MAX] = [None; WARM_MAX];
    for (place, found) in at.iter().zip(found.iter_mut()) {
        let Some((shard, hash)) = *place else { break };
        if let Some(idx) = shard.map.probable(hash) {
            shard.map.prefetch(idx);
            *found = Some((shard, idx));
        }
    }
    for found in &found {
        // The key is not compared here: it is in the block asked for (most likely the key's:
        // its tag matched).
        if let Some((shard, idx)) = *found
            && let Some(e) = shard.map.get_index(idx)
        {
            // A key with a TTL keeps its expiry time in the shard's `expires`, which every
            // lookup reads (to see whether the key expired): a miss of its own.
            if let Some(at) = shard.expires.get(e.vpos as usize) {
                crate::lines::prefetch(std::ptr::from_ref(at).cast(), size_of::<u64>());
            }
            e.pair.prefetch();
        }
    }
}

/// Read locks over a set of one database's shards given as a bit mask (at most 64 shards),
/// taken in ascending order as [`Keyspace::lock_read`] takes them; a shard's guard is found by
/// counting the set bits below its own.
struct MaskRead<'a> {
    mask: u64,
    guards: Vec<ShardRead<'a>>,
}

impl<'a> MaskRead<'a> {
    fn lock(d: &'a Db, mask: u64) -> MaskRead<'a> {
        let mut guards = Vec::with_capacity(mask.count_ones() as usize);
        let mut left = mask;
        while left != 0 {
            guards.push(held::read(&d.shards[left.trailing_zeros() as usize].0));
            left &= left - 1;
        }
        MaskRead { mask, guards }
    }

    /// The guard of shard `s`, which must be in the mask.
    fn shard(&self, s: usize) -> &Shard {
        debug_assert!(self.mask & (1 << s) != 0);
        &self.guards[(self.mask & ((1u64 << s) - 1)).count_ones() as usize]
    }
}

/// Write locks over the shards of several keys; see [`Keyspace::lock_write`].
pub struct MultiWrite<'a> {
    pub(super) ks: &'a Keyspace,
    pub(super) ids: Vec<(usize, usize)>,
    pub(super) guards: Vec<ShardWrite<'a>>,
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
    pub(super) ks: &'a Keyspace,
    pub(super) ids: Vec<(usize, usize)>,
    pub(super) guards: Vec<ShardRead<'a>>,
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

#[cfg(test)]
mod mask_tests {
    use super::*;

    /// Every shard in the mask gets its own guard, in ascending order, whichever bits are set.
    #[test]
    fn a_mask_finds_each_shards_own_guard() {
        let ks = Keyspace::new(2, 64);
        let d = &ks.dbs[1];
        let keys: Vec<Vec<u8>> = (0..40).map(|i| format!("key:{i}").into_bytes()).collect();
        let mask = keys.iter().fold(0u64, |m, k| m | 1 << d.shard_index(k));
        let locked = MaskRead::lock(d, mask);
        assert_eq!(locked.guards.len(), mask.count_ones() as usize);
        for k in &keys {
            let s = d.shard_index(k);
            assert_eq!(locked.shard(s).counter, 64 + s, "key {k:?}");
        }
        let all = MaskRead::lock(&ks.dbs[0], u64::MAX);
        for s in 0..64 {
            assert_eq!(all.shard(s).counter, s);
        }
        let ends = MaskRead::lock(&ks.dbs[0], 1 | 1 << 63);
        assert_eq!((ends.shard(0).counter, ends.shard(63).counter), (0, 63));
    }

    /// The warm-up takes both ways (a mask up to 64 shards, sorted ids beyond) and leaves the
    /// keys as they were.
    #[test]
    fn the_warm_up_works_with_few_and_many_shards() {
        for shards in [1, 64, 128] {
            let ks = Keyspace::new(1, shards);
            let keys: Vec<Vec<u8>> = (0..100).map(|i| format!("k{i}").into_bytes()).collect();
            for k in keys.iter().step_by(2) {
                ks.dbs[0].write(k).insert(k, Value::string(b"v"), None, 0);
            }
            ks.warm(0, keys.iter().map(Vec::as_slice));
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(ks.dbs[0].read(k).get(k, 0).is_some(), i % 2 == 0, "{shards} shards, key {i}");
            }
        }
    }
}
