//! Loading many keys at once: a snapshot at start, DEBUG RELOAD ([`Keyspace::loader`]).

use super::*;

/// Puts entries into the keyspace in bulk, holding every shard of every database write-locked
/// until it is finished or dropped.
///
/// Each entry goes after its shard's last without a lookup, and each shard's index takes
/// its new entries all at once at the end, in the order of the index's own buckets (see
/// `Table::index_tail`): an insert one key at a time costs two cache misses in the index,
/// about half the time a snapshot of small keys takes to load. No other thread can see a
/// shard meanwhile (its new entries cannot be found until indexed), and dropping the loader
/// indexes what it holds, so the keyspace is whole again however loading ends.
pub struct Loader<'a> {
    ks: &'a Keyspace,
    /// Every shard, database by database.
    shards: Vec<RwLockWriteGuard<'a, Shard>>,
    /// For each shard, the position of its first entry not indexed yet.
    from: Vec<usize>,
    /// Shards per database (a power of two, the same in each).
    per_db: usize,
    /// Keys put twice, over the indexing done so far.
    twice: u64,
}

impl Keyspace {
    /// Starts loading entries in bulk (see [`Loader`]). Waits for every shard's lock, and
    /// holds them all: call it only when no command runs, and take no shard's lock on this
    /// thread until the loader is finished.
    pub fn loader(&self) -> Loader<'_> {
        let shards: Vec<_> = self.dbs.iter().flat_map(|d| d.shards.iter()).map(|s| s.0.write()).collect();
        let from = shards.iter().map(|s| s.len()).collect();
        let per_db = self.dbs.first().map_or(1, Db::shard_count);
        Loader { ks: self, shards, from, per_db, twice: 0 }
    }
}

impl Loader<'_> {
    /// Makes the shards of database `db`, if they are empty, ready for `n` keys in all (see
    /// [`Shard::reserve`]).
    pub fn reserve(&mut self, db: usize, n: usize) {
        let share = n.div_ceil(self.per_db);
        for shard in self.shards.iter_mut().skip(db * self.per_db).take(self.per_db) {
            shard.reserve(share);
        }
    }

    /// Adds an entry to database `db` (which must exist). A key already there, or added
    /// before, takes this value and expiry, as [`Shard::insert`] would give it.
    pub fn add(&mut self, db: usize, key: &[u8], value: Value, expire_at: Option<u64>, now: u64) {
        let shard = db * self.per_db + self.ks.dbs[db].shard_index(key);
        self.shards[shard].load(key, value, expire_at, now);
    }

    /// Indexes every entry added and lets the shards go. Returns the number of keys added more
    /// than once (or added while already there): a snapshot holds each key once.
    pub fn finish(mut self) -> u64 {
        self.index();
        self.twice
    }

    fn index(&mut self) {
        for (shard, from) in self.shards.iter_mut().zip(self.from.iter_mut()) {
            if shard.len() > *from {
                self.twice += shard.index_loaded(*from) as u64;
            }
            *from = shard.len();
        }
    }
}

impl Drop for Loader<'_> {
    fn drop(&mut self) {
        self.index();
    }
}
