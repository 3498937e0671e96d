//! A shard's table: its entries in dense positions, and an index from keys to positions.
//!
//! It replaces `IndexMap<Key, Entry>`, which cost 8 bytes per entry more than it needs here
//! and grew in stalls:
//! - indexmap stores each entry's 64-bit hash beside it (to rehash and to compare without
//!   touching the key). Keys are short: hashing one again when the index moves it costs
//!   little (a read of the entry's block, see `pair.rs`), and the index's 8-bit tag already
//!   rules out almost every wrong candidate before the key is compared. The hash is not
//!   stored: 8 bytes per entry.
//! - Its index holds `usize` positions; a shard never holds 2^32 entries, so `u32` positions
//!   do: 4 bytes per index slot, a line of 12 with their tags (the index runs 7/16 to 7/8
//!   full: 6 to 12 bytes per entry).
//! - The index is a [`SegTable`] of [`LineTable`]s: it grows one segment (at most 512 lines) at
//!   a time, never by rehashing the whole shard at once, and a lookup reads one line, which
//!   [`Table::prefetch_index`] asks for ahead.
//! - The entries live in chunks of [`CHUNK`] entries instead of one `Vec` that doubles: growth
//!   never copies the entries already there (a `Vec` of millions of entries copied tens of MB
//!   under the shard's write lock, and the old copy stayed resident until the allocator
//!   purged it), and the unused room is at most one chunk's. The first chunk grows as a `Vec`
//!   does, so that a small shard (most of them in a big keyspace of many databases) stays
//!   small.
//!
//! Positions are dense, 0..len, and removal moves the last entry into the hole (as indexmap's
//! `swap_remove_index`): SCAN's cursor, random sampling, S3-FIFO's hand, the volatile index
//! and snapshots' marks rely on that (see [`super::Shard`]).

use crate::lines::{LineTable, prefetch};
use crate::segtable::SegTable;

use super::Stored as Entry;
use std::hash::BuildHasher;

use super::Hasher;

/// Entries per chunk, a power of two: 1024 entries of 16 bytes is 16 KiB (one of mimalloc's
/// size classes, so a whole chunk wastes nothing); a shard of millions of entries has a few
/// thousand chunks and at most one chunk's room unused.
const CHUNK_SHIFT: u32 = 10;
const CHUNK: usize = 1 << CHUNK_SHIFT;

/// A shard's entries and their index (see the module's notes).
#[derive(Default)]
pub(super) struct Table {
    /// Positions of the entries, found by the key's hash.
    index: SegTable<u32, LineTable>,
    /// The entries: every chunk but the last holds exactly [`CHUNK`] entries.
    chunks: Vec<Vec<Entry>>,
    len: usize,
    hasher: Hasher,
}

impl Table {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hash the index files `key` under.
    #[inline]
    pub(super) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The position of the first entry whose tag matches `hash`, its key not compared: most
    /// likely the key's, and reading the entry is what a caller that asks for it wants to
    /// put off (see [`Table::prefetch`]).
    #[inline]
    pub(super) fn probable(&self, hash: u64) -> Option<usize> {
        self.index.find(hash, |_| true).map(|&i| i as usize)
    }

    /// Asks the CPU to bring the index's line where a lookup of `hash` starts into its cache,
    /// without waiting for it.
    #[inline]
    pub(super) fn prefetch_index(&self, hash: u64) {
        self.index.prefetch(hash);
    }

    /// Asks the CPU to bring the entry at `idx` into its cache, without waiting for it.
    #[inline]
    pub(super) fn prefetch(&self, idx: usize) {
        if let Some(entry) = self.at(idx) {
            prefetch(std::ptr::from_ref(entry).cast(), size_of::<Entry>());
        }
    }

    /// Asks for what removing the entry at `idx`, whose hash is `hash`, will read: the entry,
    /// its index line, and the index line of the last entry (which moves into its place).
    pub(super) fn prefetch_removal(&self, idx: usize, hash: u64) {
        self.prefetch(idx);
        self.index.prefetch(hash);
        if let Some(e) = self.len.checked_sub(1).and_then(|last| self.at(last)) {
            self.index.prefetch(self.hash(e.key()));
        }
    }

    #[inline]
    fn at(&self, idx: usize) -> Option<&Entry> {
        self.chunks.get(idx >> CHUNK_SHIFT)?.get(idx & (CHUNK - 1))
    }

    #[inline]
    fn at_mut(&mut self, idx: usize) -> Option<&mut Entry> {
        self.chunks.get_mut(idx >> CHUNK_SHIFT)?.get_mut(idx & (CHUNK - 1))
    }

    /// The position of the entry whose hash is `hash` and whose key `eq` accepts.
    #[inline]
    pub(super) fn find_from_hash(&self, hash: u64, mut eq: impl FnMut(&[u8]) -> bool) -> Option<usize> {
        let chunks = &self.chunks;
        let i = self.index.find(hash, |&i| {
            let i = i as usize;
            chunks.get(i >> CHUNK_SHIFT).and_then(|c| c.get(i & (CHUNK - 1))).is_some_and(|e| eq(e.key()))
        })?;
        Some(*i as usize)
    }

    /// The position of `key`'s entry.
    #[inline]
    pub(super) fn get_index_of(&self, key: &[u8]) -> Option<usize> {
        self.find_from_hash(self.hash(key), |k| k == key)
    }

    #[inline]
    pub(super) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.get_index_of(key).and_then(|i| self.at(i))
    }

    pub(super) fn contains_key(&self, key: &[u8]) -> bool {
        self.get_index_of(key).is_some()
    }

    #[inline]
    pub(super) fn get_index(&self, idx: usize) -> Option<&Entry> {
        self.at(idx)
    }

    #[inline]
    pub(super) fn get_index_mut(&mut self, idx: usize) -> Option<&mut Entry> {
        self.at_mut(idx)
    }

    /// Makes an empty table ready for `n` entries (see [`SegTable::reserve_empty`]).
    pub(super) fn reserve(&mut self, n: usize) {
        if self.len == 0 {
            self.index.reserve_empty(n);
            self.chunks.reserve(n.div_ceil(CHUNK));
        }
    }

    /// Adds an entry for a key the table does not hold; returns its position (the last).
    #[cfg(test)]
    pub(super) fn push(&mut self, entry: Entry) -> usize {
        let hash = self.hash(entry.key());
        self.push_hashed(hash, entry)
    }

    /// [`Table::push`] of a key whose hash (from [`Table::hash`]) is known.
    pub(super) fn push_hashed(&mut self, hash: u64, entry: Entry) -> usize {
        let idx = self.append(entry);
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index.insert_unique(hash, idx as u32, |&i| rehash(chunks, hasher, i));
        idx
    }

    /// Puts an entry after the last without indexing it, for [`Table::index_tail`] to index
    /// with the others put so; until then it cannot be found. Returns its position.
    pub(super) fn push_unindexed(&mut self, entry: Entry) -> usize {
        self.append(entry)
    }

    /// Indexes the entries at positions `from..`, put there by [`Table::push_unindexed`], in
    /// the order of the index's buckets rather than their own: the index is written front to
    /// back instead of at a random place per entry (two cache misses each: half the time of
    /// loading a snapshot went there). A key already indexed, or met twice among them, is
    /// left out of the index: for each, returns the position indexed and the one left out,
    /// by the latter's position.
    pub(super) fn index_tail(&mut self, from: usize) -> Vec<(usize, usize)> {
        let mut order: Vec<(u64, u32)> = Vec::with_capacity(self.len.saturating_sub(from));
        let mut hashes: Vec<u64> = Vec::with_capacity(order.capacity());
        for pos in from..self.len {
            let Some(e) = self.at(pos) else { break };
            let hash = self.hasher.hash_one(e.key());
            order.push((self.index.bucket_order(hash), pos as u32));
            hashes.push(hash);
        }
        radix_sort(&mut order);
        let mut twice = Vec::new();
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        let key_at = |i: u32| {
            let i = i as usize;
            chunks.get(i >> CHUNK_SHIFT).and_then(|c| c.get(i & (CHUNK - 1))).map(Entry::key)
        };
        for &(_, pos) in &order {
            let (hash, key) = (hashes[pos as usize - from], key_at(pos));
            let (&mut at, new) =
                self.index.find_or_insert(hash, |&i| key_at(i) == key, || pos, |&i| rehash(chunks, hasher, i));
            if !new {
                twice.push((at as usize, pos as usize));
            }
        }
        twice.sort_unstable_by_key(|&(_, pos)| pos);
        twice
    }

    /// Puts an entry after the last (the index is the caller's); returns its position.
    fn append(&mut self, entry: Entry) -> usize {
        let idx = self.len;
        assert!(u32::try_from(idx).is_ok(), "a shard holds fewer than 2^32 entries");
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            // The first chunk starts small and grows as a Vec does; later ones are made whole.
            let room = if self.chunks.is_empty() { 0 } else { CHUNK };
            self.chunks.push(Vec::with_capacity(room));
        }
        let first = self.chunks.len() == 1;
        if let Some(c) = self.chunks.last_mut() {
            if c.len() == c.capacity() && first {
                // Growing the first chunk: never past a whole chunk.
                let want = (c.capacity() * 2).clamp(4, CHUNK);
                c.reserve_exact(want - c.len());
            }
            c.push(entry);
        }
        self.len += 1;
        idx
    }

    /// Removes the entry at `idx`; the last entry moves into its place (as `Vec::swap_remove`).
    pub(super) fn swap_remove_index(&mut self, idx: usize) -> Option<Entry> {
        let hash = self.hash(self.at(idx)?.key());
        let last = self.len - 1;
        // Both index lines are asked for before either is read: two misses at once rather
        // than in a row (eviction removes a random entry, and the last one moves into its
        // place, from another random line).
        let moved = if idx != last { Some(self.hash(self.at(last)?.key())) } else { None };
        self.index.prefetch(hash);
        if let Some(m) = moved {
            self.index.prefetch(m);
        }
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index.remove(hash, |&i| i as usize == idx, |&i| rehash(chunks, hasher, i));
        if let Some(m) = moved
            && let Some(i) = self.index.find_mut(m, |&i| i as usize == last)
        {
            *i = idx as u32;
        }
        let tail = self.chunks.last_mut()?;
        let mut item = tail.pop()?;
        if tail.is_empty() && self.chunks.len() > 1 {
            self.chunks.pop();
        }
        if idx != last
            && let Some(slot) = self.at_mut(idx)
        {
            std::mem::swap(slot, &mut item);
        }
        self.len -= 1;
        if self.len == 0 {
            // An emptied shard gives its memory back.
            self.chunks = Vec::new();
        }
        Some(item)
    }

    /// Every entry, in position order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.chunks.iter().flatten().map(|e| (e.key(), e))
    }

    /// Every entry, in position order, taken out.
    pub(super) fn into_entries(self) -> impl Iterator<Item = Entry> {
        self.chunks.into_iter().flatten()
    }
}

/// The hash of the entry at position `i`, for the index to move it.
#[inline]
fn rehash(chunks: &[Vec<Entry>], hasher: &Hasher, i: u32) -> u64 {
    let i = i as usize;
    chunks.get(i >> CHUNK_SHIFT).and_then(|c| c.get(i & (CHUNK - 1))).map_or(0, |e| hasher.hash_one(e.key()))
}

/// Sorts by the first field, stably (least significant digit first, 11 bits at a time):
/// a few passes over the entries for the 15 to 20 bits a shard's bucket order has, where a
/// comparison sort would make about 14 comparisons per entry of a 16k-entry shard.
fn radix_sort(items: &mut Vec<(u64, u32)>) {
    const BITS: u32 = 11;
    let top = items.iter().map(|&(k, _)| k).max().unwrap_or(0);
    let mut other = vec![(0u64, 0u32); items.len()];
    let mut shift = 0;
    while shift < 64 && top >> shift != 0 {
        let mut counts = [0usize; 1 << BITS];
        for &(k, _) in items.iter() {
            counts[((k >> shift) & ((1 << BITS) - 1)) as usize] += 1;
        }
        let mut sum = 0;
        for c in &mut counts {
            (*c, sum) = (sum, sum + *c);
        }
        for &item in items.iter() {
            let d = ((item.0 >> shift) & ((1 << BITS) - 1)) as usize;
            other[counts[d]] = item;
            counts[d] += 1;
        }
        std::mem::swap(items, &mut other);
        shift += BITS;
    }
}

impl std::ops::Index<usize> for Table {
    type Output = Entry;
    fn index(&self, idx: usize) -> &Entry {
        &self.chunks[idx >> CHUNK_SHIFT][idx & (CHUNK - 1)]
    }
}

impl std::ops::IndexMut<usize> for Table {
    fn index_mut(&mut self, idx: usize) -> &mut Entry {
        &mut self.chunks[idx >> CHUNK_SHIFT][idx & (CHUNK - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Value;

    #[test]
    fn agrees_with_a_model_through_growth_and_removal() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut t = Table::default();
        let mut model: Vec<Vec<u8>> = Vec::new();
        for round in 0..3 {
            let target = [5000, 100, 3000][round];
            while model.len() != target {
                if model.len() < target && rng.u8(..4) != 0 {
                    let k = format!("key:{}", rng.u64(..1_000_000)).into_bytes();
                    if t.contains_key(&k) {
                        continue;
                    }
                    let i = t.push(Entry::new(&k, Value::Int(0)));
                    assert_eq!(i, model.len());
                    model.push(k);
                } else if !model.is_empty() {
                    let i = rng.usize(..model.len());
                    let e = t.swap_remove_index(i).expect("in range");
                    assert_eq!(e.key(), &model.swap_remove(i)[..]);
                }
            }
            assert_eq!(t.len(), model.len());
            for (i, k) in model.iter().enumerate() {
                assert_eq!(t.get_index_of(k), Some(i));
                assert_eq!(t.get_index(i).map(|e| e.key().to_vec()), Some(k.clone()));
            }
            assert!(t.iter().map(|(k, _)| k.to_vec()).eq(model.iter().cloned()));
            assert!(t.chunks.iter().rev().skip(1).all(|c| c.len() == CHUNK), "full chunks but the last");
        }
        assert_eq!(t.get_index_of(b"nope"), None);
        while !model.is_empty() {
            t.swap_remove_index(0);
            model.swap_remove(0);
        }
        assert!(t.is_empty() && t.chunks.is_empty());
    }

    /// Entries put without the index are found once indexed, whatever the order the index
    /// takes them in; a key put again (or already indexed) is named with the position of the
    /// one indexed, in position order.
    #[test]
    fn entries_indexed_at_the_end_are_found() {
        let mut t = Table::default();
        t.push(Entry::new(b"before", Value::Int(-1)));
        t.reserve(50_000);
        assert_eq!(t.index.segment_count(), 1, "a table that holds entries is not rebuilt");
        let mut expect = Vec::new();
        for i in 0..40_000u32 {
            let k = if i % 1000 == 999 { format!("again:{}", i % 3) } else { format!("key:{i}") };
            let pos = t.push_unindexed(Entry::new(k.as_bytes(), Value::Int(i64::from(i))));
            assert_eq!(t.get_index_of(k.as_bytes()), None, "not findable before it is indexed");
            expect.push((k, pos));
        }
        let before = t.push_unindexed(Entry::new(b"before", Value::Int(0)));
        let twice = t.index_tail(1);
        let mut first = std::collections::HashMap::new();
        first.insert("before".to_string(), 0);
        let mut want = Vec::new();
        for (k, pos) in expect.iter().chain([("before".to_string(), before)].iter()) {
            match first.get(k) {
                Some(&at) => want.push((at, *pos)),
                None => {
                    first.insert(k.clone(), *pos);
                }
            }
        }
        assert_eq!(twice, want);
        for (k, &at) in &first {
            assert_eq!(t.get_index_of(k.as_bytes()), Some(at), "{k}");
        }
        assert_eq!(t.index.len(), first.len());
    }

    /// No insert moves more than one index segment's entries, and none copies an entry: a
    /// shard of millions of keys grows without a stall.
    #[test]
    fn growth_is_bounded_per_insert() {
        let mut t = Table::default();
        let mut worst = 0;
        for i in 0..200_000u32 {
            let before = t.index.moved();
            t.push(Entry::new(format!("key:{i}").as_bytes(), Value::Int(0)));
            worst = worst.max(t.index.moved() - before);
        }
        assert!(worst <= <LineTable as crate::segtable::Part<u32>>::MOST, "one insert moved {worst} index entries");
        t.index.check(|&i| rehash(&t.chunks, &t.hasher, i));
        assert!(t.index.segment_count() > 16, "{} segments", t.index.segment_count());
        assert!(t.chunks.iter().all(|c| c.capacity() == CHUNK), "every chunk made whole, none regrown");
        assert!(
            (0..200_000u32).step_by(997).all(|i| t.get_index_of(format!("key:{i}").as_bytes()) == Some(i as usize))
        );
    }
}
