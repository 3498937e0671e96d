//! A hash table that grows in bounded steps: the index of a shard's keys and of a big set,
//! hash or sorted set.
//!
//! A single hash table doubles all at once: for 4M members that is millions of entries moved
//! under the shard's write lock (120-500 ms measured, during which every client of the shard,
//! and on one core every client, waits). Redis keeps two tables and moves a few buckets per
//! operation. This table is split instead (extendible hashing): segments of at most
//! [`SEGMENT_BUCKETS`] buckets, each a [`Part`] (a `hashbrown::HashTable`, or for the keyspace
//! a [`crate::lines::LineTable`]), and a directory indexed by `DEPTH` bits of the hash (bits 32
//! and up: the parts take the bucket from the low bits and the tag from the top ones) that
//! names the segment for each pattern. A segment that is full
//! splits in two by one more bit of the hash, moving at most its own entries; when it holds as
//! many bits as the directory, the directory doubles (one `u32` per segment pattern, about one
//! per 3,000 entries). So no insert moves more than one segment's entries, and lookups cost one
//! more load (the directory, small enough to stay in cache) and no second probe.
//!
//! Memory is the same as one table's: segments fill and split at the same load factors as a
//! table doubles (7/8 down to 7/16), plus about 40 bytes per segment.
//!
//! A segment also shrinks on its own when it is mostly empty, and a table that falls to a
//! few hundred entries is gathered back into one segment (bounded by that size and the number
//! of segments).

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

/// Buckets of the largest segment: 8192 buckets hold up to 7168 entries.
pub(crate) const SEGMENT_BUCKETS: usize = 8192;
/// Most directory bits: 2^19 segments of up to 7168 entries hold more than 2^32 entries, the
/// most a collection's u32 positions allow.
const MAX_DEPTH: u32 = 19;
/// Where the directory's bits start in the 64-bit hash.
const DIR_SHIFT: u32 = 32;

/// The table each segment is: `hashbrown::HashTable` for collections, or the keyspace's
/// [`crate::lines::LineTable`]. The caller gives each operation the hash and an equality
/// test, and `hasher` recomputes the hash of a stored value when entries move.
pub(crate) trait Part<V>: Default {
    /// Entries in the largest part: one that would grow past it splits instead.
    const MOST: usize;
    fn with_capacity(n: usize) -> Self;
    fn len(&self) -> usize;
    /// Entries it takes before it grows.
    fn capacity(&self) -> usize;
    /// Its buckets, a power of two: `hash` starts its probe at `hash & (buckets - 1)`.
    fn buckets(&self) -> usize;
    fn find(&self, hash: u64, eq: impl FnMut(&V) -> bool) -> Option<&V>;
    fn find_mut(&mut self, hash: u64, eq: impl FnMut(&V) -> bool) -> Option<&mut V>;
    /// The stored value `eq` accepts, or a new one from `make`, inserted; and whether it is new.
    fn find_or_insert(
        &mut self,
        hash: u64,
        eq: impl FnMut(&V) -> bool,
        make: impl FnOnce() -> V,
        hasher: impl Fn(&V) -> u64,
    ) -> (&mut V, bool);
    fn insert_unique(&mut self, hash: u64, value: V, hasher: impl Fn(&V) -> u64);
    fn remove(&mut self, hash: u64, eq: impl FnMut(&V) -> bool) -> Option<V>;
    /// Rebuilds it with room for `n` entries (at least its own).
    fn shrink_to(&mut self, n: usize, hasher: impl Fn(&V) -> u64);
    fn iter<'a>(&'a self) -> impl Iterator<Item = &'a V>
    where
        V: 'a;
    fn into_values(self) -> impl Iterator<Item = V>;
    /// Asks the CPU for the memory `hash`'s probe starts at, without waiting for it.
    fn prefetch(&self, _hash: u64) {}
}

impl<V> Part<V> for HashTable<V> {
    const MOST: usize = SEGMENT_BUCKETS * 7 / 8;
    fn with_capacity(n: usize) -> Self {
        HashTable::with_capacity(n)
    }
    fn len(&self) -> usize {
        HashTable::len(self)
    }
    fn capacity(&self) -> usize {
        HashTable::capacity(self)
    }
    fn buckets(&self) -> usize {
        (HashTable::capacity(self) + 1).next_power_of_two()
    }
    #[inline]
    fn find(&self, hash: u64, eq: impl FnMut(&V) -> bool) -> Option<&V> {
        HashTable::find(self, hash, eq)
    }
    #[inline]
    fn find_mut(&mut self, hash: u64, eq: impl FnMut(&V) -> bool) -> Option<&mut V> {
        HashTable::find_mut(self, hash, eq)
    }
    fn find_or_insert(
        &mut self,
        hash: u64,
        eq: impl FnMut(&V) -> bool,
        make: impl FnOnce() -> V,
        hasher: impl Fn(&V) -> u64,
    ) -> (&mut V, bool) {
        match self.entry(hash, eq, hasher) {
            Entry::Occupied(o) => (o.into_mut(), false),
            Entry::Vacant(v) => (v.insert(make()).into_mut(), true),
        }
    }
    fn insert_unique(&mut self, hash: u64, value: V, hasher: impl Fn(&V) -> u64) {
        HashTable::insert_unique(self, hash, value, hasher);
    }
    fn remove(&mut self, hash: u64, eq: impl FnMut(&V) -> bool) -> Option<V> {
        Some(self.find_entry(hash, eq).ok()?.remove().0)
    }
    fn shrink_to(&mut self, n: usize, hasher: impl Fn(&V) -> u64) {
        HashTable::shrink_to(self, n, hasher);
    }
    fn iter<'a>(&'a self) -> impl Iterator<Item = &'a V>
    where
        V: 'a,
    {
        HashTable::iter(self)
    }
    fn into_values(self) -> impl Iterator<Item = V> {
        self.into_iter()
    }
}

/// A part that would have to grow past this many entries splits instead (it would grow
/// to more than [`Part::MOST`]).
const fn split_above<V, T: Part<V>>() -> usize {
    T::MOST / 2
}

/// A table of several segments that falls to this many entries becomes one segment again.
const fn gather_at<V, T: Part<V>>() -> usize {
    split_above::<V, T>() / 4
}

#[derive(Clone)]
struct Segment<T> {
    table: T,
    /// Bits of the directory pattern this segment's entries share.
    depth: u32,
}

impl<T: Default> Default for Segment<T> {
    fn default() -> Segment<T> {
        Segment { table: T::default(), depth: 0 }
    }
}

/// A hash table in segments (see the module's notes), each a `T`. The API follows
/// `hashbrown::HashTable`'s (see [`Part`]).
#[derive(Clone)]
pub(crate) struct SegTable<V, T = HashTable<V>> {
    /// Segment of each directory pattern; empty while there is one segment (depth 0).
    dir: Vec<u32>,
    segments: Vec<Segment<T>>,
    /// The directory's bits: `dir.len() == 1 << depth` (when depth > 0).
    depth: u32,
    len: usize,
    moved: Moved,
    _values: std::marker::PhantomData<fn() -> V>,
}

/// Entries moved by splits, shrinks and hashbrown's own growth, ever: counted in tests (each
/// operation's share is bounded), nothing otherwise.
#[derive(Default)]
struct Moved(#[cfg(test)] std::sync::atomic::AtomicUsize);

impl Clone for Moved {
    fn clone(&self) -> Moved {
        Moved::default()
    }
}

impl Moved {
    #[inline(always)]
    fn add(&self, _n: usize) {
        #[cfg(test)]
        self.0.fetch_add(_n, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `hasher`, counting its calls in tests: hashbrown calls it for each entry it moves.
#[inline(always)]
fn counting<'a, V>(moved: &'a Moved, hasher: impl Fn(&V) -> u64 + 'a) -> impl Fn(&V) -> u64 + 'a {
    move |v| {
        moved.add(1);
        hasher(v)
    }
}

impl<V, T> Default for SegTable<V, T> {
    fn default() -> SegTable<V, T> {
        SegTable {
            dir: Vec::new(),
            segments: Vec::new(),
            depth: 0,
            len: 0,
            moved: Moved::default(),
            _values: std::marker::PhantomData,
        }
    }
}

#[inline]
fn dir_bits(hash: u64) -> usize {
    (hash >> DIR_SHIFT) as usize
}

impl<V, T: Part<V>> SegTable<V, T> {
    /// A table with room for `n` entries in its first segment (more come by splitting).
    pub(crate) fn with_capacity(n: usize) -> SegTable<V, T> {
        let mut t = SegTable::default();
        t.segments.push(Segment { table: T::with_capacity(n.min(T::MOST)), depth: 0 });
        t
    }

    /// Makes an empty table ready for `n` entries at once: the segments that growing to `n`
    /// would have split into, each sized for its share, so that filling it (loading a
    /// snapshot) neither rehashes nor splits. A table that holds entries is left as it is.
    pub(crate) fn reserve_empty(&mut self, n: usize) {
        if self.len > 0 || n == 0 {
            return;
        }
        // Segments of 3/4 of the largest size at most, so that an uneven spread of hashes
        // rarely fills one (a full one splits, as it would in use).
        let most = T::MOST * 3 / 4;
        let mut depth = 0;
        while (n >> depth) > most && depth < MAX_DEPTH {
            depth += 1;
        }
        let share = (n >> depth) + (n >> depth) / 8 + 1;
        let segment = || Segment { table: T::with_capacity(share.min(T::MOST)), depth };
        self.segments = (0..1usize << depth).map(|_| segment()).collect();
        self.dir = if depth == 0 { Vec::new() } else { (0..1u32 << depth).collect() };
        self.depth = depth;
    }

    /// Where `hash` starts its probe, as a number that orders the whole table's buckets
    /// (segment, then bucket): inserting in this order writes the table front to back. Equal
    /// hashes have equal orders. (Only a segment that can no longer split has more than
    /// [`SEGMENT_BUCKETS`] buckets, and its order is then rougher.)
    #[inline]
    pub(crate) fn bucket_order(&self, hash: u64) -> u64 {
        let s = self.segment_of(hash);
        let buckets = self.segments.get(s).map_or(1, |seg| seg.table.buckets());
        ((s as u64) << SEGMENT_BUCKETS.trailing_zeros()) | (hash & (buckets as u64 - 1))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn segment_of(&self, hash: u64) -> usize {
        if self.depth == 0 { 0 } else { self.dir[dir_bits(hash) & ((1 << self.depth) - 1)] as usize }
    }

    #[inline]
    pub(crate) fn find(&self, hash: u64, eq: impl FnMut(&V) -> bool) -> Option<&V> {
        self.segments.get(self.segment_of(hash))?.table.find(hash, eq)
    }

    /// Asks the CPU for the memory a lookup of `hash` starts at, without waiting for it.
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        if let Some(seg) = self.segments.get(self.segment_of(hash)) {
            seg.table.prefetch(hash);
        }
    }

    #[inline]
    pub(crate) fn find_mut(&mut self, hash: u64, eq: impl FnMut(&V) -> bool) -> Option<&mut V> {
        let s = self.segment_of(hash);
        self.segments.get_mut(s)?.table.find_mut(hash, eq)
    }

    /// The stored value `eq` accepts, or a new one from `make`, inserted. Returns the value and
    /// whether it is new.
    pub(crate) fn find_or_insert(
        &mut self,
        hash: u64,
        eq: impl FnMut(&V) -> bool,
        make: impl FnOnce() -> V,
        hasher: impl Fn(&V) -> u64,
    ) -> (&mut V, bool) {
        let s = self.room_for(hash, &hasher);
        let hasher = counting(&self.moved, hasher);
        let (v, new) = self.segments[s].table.find_or_insert(hash, eq, make, hasher);
        self.len += usize::from(new);
        (v, new)
    }

    /// Inserts a value that is not in the table.
    pub(crate) fn insert_unique(&mut self, hash: u64, value: V, hasher: impl Fn(&V) -> u64) {
        let s = self.room_for(hash, &hasher);
        let hasher = counting(&self.moved, hasher);
        self.segments[s].table.insert_unique(hash, value, hasher);
        self.len += 1;
    }

    /// Removes the value `eq` accepts.
    pub(crate) fn remove(&mut self, hash: u64, eq: impl FnMut(&V) -> bool, hasher: impl Fn(&V) -> u64) -> Option<V> {
        let s = self.segment_of(hash);
        let seg = self.segments.get_mut(s)?;
        let value = seg.table.remove(hash, eq)?;
        self.len -= 1;
        let t = &mut seg.table;
        if t.capacity() > 64 && t.len() * 4 < t.capacity() {
            // Give memory back, as Redis resizes a dict under 10% full (one segment at most).
            self.moved.add(t.len());
            t.shrink_to(t.len() * 2, &hasher);
        }
        if self.segments.len() > 1 && self.len <= gather_at::<V, T>() {
            self.gather(&hasher);
        }
        Some(value)
    }

    /// Every value, in no particular order.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &V> + '_ {
        self.segments.iter().flat_map(|s| s.table.iter())
    }

    /// Buckets allocated, over all segments (for memory accounting in tests).
    #[cfg(test)]
    pub(crate) fn buckets(&self) -> usize {
        self.segments.iter().map(|s| s.table.buckets()).sum()
    }

    /// Entries moved by growth and shrinking, ever (see `moved`).
    #[cfg(test)]
    pub(crate) fn moved(&self) -> usize {
        self.moved.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The largest segment's capacity, in entries (for tests).
    #[cfg(test)]
    pub(crate) fn largest_segment(&self) -> usize {
        self.segments.iter().map(|s| s.table.capacity()).max().unwrap_or(0)
    }

    #[cfg(test)]
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The segment `hash` goes to, split first if it is full and big (see the module's notes).
    fn room_for(&mut self, hash: u64, hasher: &impl Fn(&V) -> u64) -> usize {
        if self.segments.is_empty() {
            self.segments.push(Segment::default());
        }
        loop {
            let s = self.segment_of(hash);
            let seg = &self.segments[s];
            let n = seg.table.len();
            if n < seg.table.capacity() || n <= split_above::<V, T>() || seg.depth >= MAX_DEPTH {
                // Room left, or a growth of hashbrown's own that stays within a segment's size.
                return s;
            }
            self.split(s, hash, hasher);
        }
    }

    /// Splits segment `s` (which holds `hash`'s pattern) by its next bit.
    fn split(&mut self, s: usize, hash: u64, hasher: &impl Fn(&V) -> u64) {
        let depth = self.segments[s].depth;
        if depth == self.depth {
            // The directory doubles: each pattern's segment serves both of its extensions.
            if self.depth == 0 {
                self.dir = vec![0];
            }
            self.dir.extend_from_within(..);
            self.depth += 1;
        }
        let old = std::mem::take(&mut self.segments[s].table);
        self.moved.add(old.len());
        // Each half gets the room the whole had: the same load factor as a doubling.
        let (mut low, mut high) = (T::with_capacity(old.len()), T::with_capacity(old.len()));
        for v in old.into_values() {
            let h = hasher(&v);
            let half = if (dir_bits(h) >> depth) & 1 == 0 { &mut low } else { &mut high };
            half.insert_unique(h, v, hasher);
        }
        self.segments[s] = Segment { table: low, depth: depth + 1 };
        let new = u32::try_from(self.segments.len()).expect("fewer than 2^32 segments");
        self.segments.push(Segment { table: high, depth: depth + 1 });
        // The patterns of `s` with the new bit set now name the new segment.
        let step = 1usize << (depth + 1);
        let mut i = (dir_bits(hash) & ((1 << depth) - 1)) | (1 << depth);
        while i < self.dir.len() {
            self.dir[i] = new;
            i += step;
        }
    }

    /// Gathers every entry back into one segment (the table has become small).
    fn gather(&mut self, hasher: &impl Fn(&V) -> u64) {
        let mut one = T::with_capacity(self.len * 2);
        for seg in std::mem::take(&mut self.segments) {
            for v in seg.table.into_values() {
                one.insert_unique(hasher(&v), v, hasher);
            }
        }
        self.moved.add(self.len);
        self.segments.push(Segment { table: one, depth: 0 });
        self.dir = Vec::new();
        self.depth = 0;
    }

    /// Checks the directory against the segments (for tests).
    #[cfg(test)]
    pub(crate) fn check(&self, hasher: impl Fn(&V) -> u64) {
        assert_eq!(self.iter().count(), self.len);
        if self.depth == 0 {
            assert!(self.dir.is_empty() && self.segments.len() <= 1);
        }
        for (i, seg) in self.segments.iter().enumerate() {
            assert!(seg.depth <= self.depth);
            assert!(seg.table.buckets() <= SEGMENT_BUCKETS || seg.depth == MAX_DEPTH);
            for v in seg.table.iter() {
                assert_eq!(self.segment_of(hasher(v)), i, "an entry sits in the segment of its pattern");
            }
        }
        // Each segment is named by exactly the 2^(depth - its depth) patterns it covers.
        let mut named = vec![0usize; self.segments.len()];
        for &s in &self.dir {
            named[s as usize] += 1;
        }
        for (seg, n) in self.segments.iter().zip(named) {
            if self.depth > 0 {
                assert_eq!(n, 1 << (self.depth - seg.depth));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn hash(x: u64) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(1).hash_one(x)
    }

    #[test]
    fn no_insert_moves_more_than_a_segment_and_everything_stays_findable() {
        let mut t: SegTable<u64> = SegTable::default();
        let mut worst = 0;
        for x in 0..300_000u64 {
            let before = t.moved();
            let (_, new) = t.find_or_insert(hash(x), |&v| v == x, || x, |&v| hash(v));
            assert!(new);
            worst = worst.max(t.moved() - before);
        }
        assert!(worst <= SEGMENT_BUCKETS, "one insert moved {worst} entries");
        assert!(t.segment_count() > 40, "{} segments", t.segment_count());
        assert!(t.largest_segment() < SEGMENT_BUCKETS);
        t.check(|&v| hash(v));
        for x in 0..300_000u64 {
            assert_eq!(t.find(hash(x), |&v| v == x), Some(&x));
        }
        assert_eq!(t.find(hash(300_001), |&v| v == 300_001), None);
        // Memory: about what one table would take (7/8 to 7/16 full).
        let load = t.len() as f64 / t.buckets() as f64;
        assert!((0.4..=0.875).contains(&load), "load {load}");
    }

    /// A table made ready for its entries takes them without moving one, holds the memory
    /// growth would have given it, and goes on growing and shrinking as any other.
    #[test]
    fn a_reserved_table_fills_without_moving_entries() {
        for n in [1usize, 100, 5_000, 20_000, 300_000] {
            let mut t: SegTable<u64> = SegTable::default();
            t.reserve_empty(n);
            t.check(|&v| hash(v));
            for x in 0..n as u64 {
                let (_, new) = t.find_or_insert(hash(x), |&v| v == x, || x, |&v| hash(v));
                assert!(new);
            }
            assert_eq!(t.moved(), 0, "{n} entries: nothing moved");
            t.check(|&v| hash(v));
            let load = t.len() as f64 / t.buckets() as f64;
            assert!(n < 1000 || (0.35..=0.875).contains(&load), "{n} entries: load {load}");
            // Growing past the reservation, then emptying, work as usual.
            for x in n as u64..2 * n as u64 + 10 {
                t.find_or_insert(hash(x), |&v| v == x, || x, |&v| hash(v));
            }
            t.check(|&v| hash(v));
            for x in 0..2 * n as u64 + 10 {
                assert_eq!(t.remove(hash(x), |&v| v == x, |&v| hash(v)), Some(x));
            }
            t.check(|&v| hash(v));
            assert_eq!(t.segment_count(), 1);
        }
        // A table that holds entries is not rebuilt.
        let mut t: SegTable<u64> = SegTable::default();
        t.find_or_insert(hash(1), |&v| v == 1, || 1, |&v| hash(v));
        t.reserve_empty(100_000);
        assert_eq!(t.segment_count(), 1);
        assert_eq!(t.find(hash(1), |&v| v == 1), Some(&1));
    }

    #[test]
    fn agrees_with_a_model_through_growth_and_shrinking() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut t: SegTable<u64> = SegTable::with_capacity(4);
        let mut model = HashSet::new();
        for round in 0..4 {
            let target = [50_000, 2_000, 80_000, 0][round];
            let mut worst = 0;
            while model.len() != target {
                let grow = model.len() < target;
                let x = rng.u64(..200_000);
                let before = t.moved();
                if grow && rng.u8(..4) != 0 {
                    let (_, new) = t.find_or_insert(hash(x), |&v| v == x, || x, |&v| hash(v));
                    assert_eq!(new, model.insert(x));
                } else {
                    assert_eq!(t.remove(hash(x), |&v| v == x, |&v| hash(v)).is_some(), model.remove(&x));
                }
                worst = worst.max(t.moved() - before);
                assert_eq!(t.len(), model.len());
            }
            let gather = gather_at::<u64, HashTable<u64>>();
            assert!(worst <= SEGMENT_BUCKETS.max(gather + t.segment_count()), "round {round}: moved {worst}");
            t.check(|&v| hash(v));
            assert!(model.iter().all(|&x| t.find(hash(x), |&v| v == x) == Some(&x)));
            if target == 0 {
                assert_eq!(t.segment_count(), 1, "an emptied table is one segment again");
            }
        }
    }
}
