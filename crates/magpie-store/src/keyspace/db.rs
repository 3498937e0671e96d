//! One database: a fixed number of shards, each behind its own lock.

use super::*;

/// Keeps each shard's lock on its own cache line, so that two cores working on neighbouring
/// shards do not bounce one line between them.
#[repr(align(128))]
pub(super) struct Padded<T>(pub(super) T);

/// One database (what SELECT chooses): a fixed power-of-two number of shards.
pub struct Db {
    pub(super) shards: Box<[Padded<RwLock<Shard>>]>,
    /// Seeded independently of the maps' own hashers, so that keys of one shard still spread
    /// over that shard's whole table; the same in every database (see [`Keyspace::swap_dbs`]).
    pub(super) hasher: foldhash::fast::RandomState,
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
    pub(super) fn new(index: usize, shards: usize, tap: &Arc<Tap>, hasher: &foldhash::fast::RandomState) -> Db {
        let n = shards.next_power_of_two().max(1);
        let shard = |i| Shard { db: index, tap: tap.clone(), counter: index * n + i, ..Shard::default() };
        Db { shards: (0..n).map(|i| Padded(RwLock::new(shard(i)))).collect(), hasher: hasher.clone() }
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

    /// Read-locks the shard of `key` (or borrows it from a transaction that holds it on this
    /// thread: see [`Keyspace::hold`]).
    #[inline]
    pub fn read(&self, key: &[u8]) -> ShardRead<'_> {
        held::read(&self.shards[self.shard_index(key)].0)
    }

    /// Write-locks the shard of `key` (or borrows it from a transaction that holds it on this
    /// thread: see [`Keyspace::hold`]).
    #[inline]
    pub fn write(&self, key: &[u8]) -> ShardWrite<'_> {
        held::write(&self.shards[self.shard_index(key)].0)
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
        for shard in &self.shards {
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
    pub fn scan(
        &self,
        cursor: ScanCursor,
        count: usize,
        now: u64,
        mut f: impl FnMut(&[u8], EntryRef<'_>),
    ) -> ScanCursor {
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
