//! The big encoding (what Redis calls `skiplist`): three parts that each store a member once.
//!
//! - `items`: a dense vector of (member, score); an item's position is its id. Removal moves
//!   the last item into the hole, so ids stay dense: that gives O(1) random sampling
//!   (ZRANDMEMBER) and a ZSCAN cursor that is a plain position (see [`Big::scan`]).
//! - `index`: a hash table of ids, hashed and compared by their members: member -> id with 4
//!   bytes per slot, without a second copy of the member.
//! - `tree`: an order-statistic B+tree of (score, id), for ranks and ranges in O(log n).
//!
//! Moving an item (removal) rewrites its id in the index and in the tree, one O(log n) descent.
//!
//! The vector is kept in chunks and the index in segments (see `dense.rs` and `segtable.rs`),
//! and the tree is made of fixed-size nodes, so nothing grows by copying everything at once;
//! a snapshot freezes the vector's chunks ([`Big::freeze`]) and sorts them on its own thread.

use std::hash::BuildHasher;
use std::ops::Range;

use super::tree::{self, Members, Tree};
use super::{LexRange, ScoreRange};
use crate::Key;
use crate::dense::{self, Dense};
use crate::segtable::SegTable;

#[derive(Clone)]
pub(super) struct Item {
    pub member: Key,
    pub score: f64,
}

impl Members for Dense<Item> {
    #[inline]
    fn member(&self, id: u32) -> &[u8] {
        &self[id as usize].member
    }
}

/// A walk over the entries in order (see [`Tree::iter_from`]).
pub(super) struct Iter<'a> {
    items: &'a Dense<Item>,
    inner: tree::Iter<'a>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        self.inner.next().map(|(score, id)| (&*self.items[id as usize].member, score))
    }
}

#[derive(Clone, Default)]
pub(super) struct Big {
    /// Bytes of user data: the members' lengths plus 8 a score (`ZSet::size`).
    pub(super) bytes: usize,
    items: Dense<Item>,
    index: SegTable<u32>,
    tree: Tree,
    hasher: foldhash::fast::RandomState,
}

impl Big {
    /// A set of entries sorted by (score, member), with distinct members.
    pub(super) fn from_sorted(entries: impl ExactSizeIterator<Item = (Key, f64)>) -> Big {
        let mut b = Big { items: Dense::with_capacity(entries.len()), ..Big::default() };
        for (member, score) in entries {
            b.items.push(Item { member, score });
        }
        b.index = SegTable::with_capacity(b.items.len());
        let (items, hasher) = (&b.items, &b.hasher);
        for (id, item) in items.iter().enumerate() {
            b.index.insert_unique(hasher.hash_one(&*item.member), id as u32, |&i| {
                hasher.hash_one(&*items[i as usize].member)
            });
        }
        b.tree = Tree::from_sorted(b.items.iter().enumerate().map(|(id, it)| (it.score, id as u32)));
        b
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    fn find(&self, member: &[u8]) -> Option<u32> {
        let items = &self.items;
        self.index.find(self.hasher.hash_one(member), |&i| &*items[i as usize].member == member).copied()
    }

    pub(super) fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(|id| self.items[id as usize].score)
    }

    /// Sets the score of `member`, adding it if needed; returns the previous score.
    pub(super) fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        if let Some(id) = self.find(member) {
            let old = self.items[id as usize].score;
            if old.to_bits() != score.to_bits() {
                self.tree.remove(&self.items, old, member);
                self.items.get_mut(id as usize).score = score;
                self.tree.insert(&self.items, score, member, id);
            }
            return Some(old);
        }
        self.insert_new(member, score);
        None
    }

    /// Adds `member`, which is not in the set.
    pub(super) fn insert_new(&mut self, member: &[u8], score: f64) {
        debug_assert!(self.find(member).is_none());
        let id = u32::try_from(self.items.len()).expect("a sorted set holds fewer than 2^32 members");
        self.items.push(Item { member: Key::new(member), score });
        let (items, hasher) = (&self.items, &self.hasher);
        self.index.insert_unique(hasher.hash_one(member), id, |&i| hasher.hash_one(&*items[i as usize].member));
        self.tree.insert(&self.items, score, member, id);
    }

    pub(super) fn remove(&mut self, member: &[u8]) -> Option<Item> {
        let id = self.find(member)?;
        Some(self.remove_id(id))
    }

    /// Removes the item `id` from the three parts; the last item takes its place.
    fn remove_id(&mut self, id: u32) -> Item {
        let item = &self.items[id as usize];
        self.tree.remove(&self.items, item.score, &item.member);
        self.unlink(id)
    }

    /// Removes the item `id`, already out of the tree, from the vector and the index.
    fn unlink(&mut self, id: u32) -> Item {
        let hash = self.hasher.hash_one(&*self.items[id as usize].member);
        let (items, hasher) = (&self.items, &self.hasher);
        self.index.remove(hash, |&i| i == id, |&i| hasher.hash_one(&*items[i as usize].member));
        let last = (self.items.len() - 1) as u32;
        if id != last {
            let moved = &self.items[last as usize];
            self.tree.relocate(&self.items, moved.score, &moved.member, last, id);
            if let Some(slot) = self.index.find_mut(self.hasher.hash_one(&*moved.member), |&i| i == last) {
                *slot = id;
            }
        }
        // Memory goes back as the set shrinks: the index segment by segment, the vector chunk
        // by chunk.
        self.items.swap_remove(id as usize)
    }

    /// Removes the entry at `rank`.
    fn remove_rank(&mut self, rank: usize) -> Option<Item> {
        let (_, id) = self.tree.remove_rank(&self.items, rank)?;
        Some(self.unlink(id))
    }

    pub(super) fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        let items = &self.items;
        Some(self.tree.count_while(|s, id| s < score || (s == score && &*items[id as usize].member < member)))
    }

    pub(super) fn iter_from(&self, rank: usize, rev: bool) -> Iter<'_> {
        Iter { items: &self.items, inner: self.tree.iter_from(rank, rev) }
    }

    /// The item at storage position `pos` (not rank), for sampling.
    pub(super) fn at(&self, pos: usize) -> (&[u8], f64) {
        let it = &self.items[pos];
        (&it.member, it.score)
    }

    pub(super) fn score_span(&self, range: &ScoreRange) -> Range<usize> {
        if range.is_empty() {
            return 0..0;
        }
        tree::span(&self.tree, |s, _| !range.above_min(s), |s, _| range.below_max(s))
    }

    /// The ranks of the members within `range`, assuming (as Redis does) that all scores are
    /// equal, so that members are in order.
    pub(super) fn lex_span(&self, range: &LexRange<'_>) -> Range<usize> {
        if range.is_empty() {
            return 0..0;
        }
        let items = &self.items;
        tree::span(
            &self.tree,
            |_, id| !range.gte_min(&items[id as usize].member),
            |_, id| range.lte_max(&items[id as usize].member),
        )
    }

    /// Removes the entries of ranks `from..to`.
    pub(super) fn remove_ranks(&mut self, from: usize, to: usize) {
        let k = to.saturating_sub(from);
        if k == 0 {
            return;
        }
        if k == self.len() {
            *self = Big::default();
        } else if k > self.len() / 4 {
            // Rebuilding from the survivors is cheaper than removing a large part one by one.
            let order: Vec<u32> = self
                .tree
                .iter_from(0, false)
                .enumerate()
                .filter(|(r, _)| !(from..to).contains(r))
                .map(|(_, e)| e.1)
                .collect();
            let mut items = std::mem::take(&mut self.items);
            let kept = order.into_iter().map(|id| {
                let it = items.get_mut(id as usize);
                (std::mem::replace(&mut it.member, Key::new(b"")), it.score)
            });
            *self = Big::from_sorted(kept.collect::<Vec<_>>().into_iter());
        } else {
            for _ in 0..k {
                self.remove_rank(from);
            }
        }
    }

    /// Calls `f` with the lowest (or, with `max`, the highest) entry, then removes it.
    pub(super) fn pop_with<R>(&mut self, max: bool, f: impl FnOnce(&[u8], f64) -> R) -> Option<R> {
        let rank = if max { self.len().checked_sub(1)? } else { 0 };
        let (score, id) = self.tree.remove_rank(&self.items, rank)?;
        let r = f(&self.items[id as usize].member, score);
        self.unlink(id);
        Some(r)
    }

    /// Visits up to `count` items from `cursor` (0: the start), calling `f` with each; returns
    /// the cursor to continue from, 0 when done. Items are walked from the last position down
    /// to 0: an addition lands behind the walk and a removal moves the last item (already
    /// visited, or still to come) into the hole, so an item present throughout is never missed.
    pub(super) fn scan<'a>(&'a self, cursor: u64, count: usize, mut f: impl FnMut(&'a [u8], f64)) -> u64 {
        let n = self.items.len();
        let mut pos = if cursor == 0 { n } else { usize::try_from(cursor).map_or(n, |c| c.min(n)) };
        let mut visited = 0;
        while pos > 0 && visited < count {
            pos -= 1;
            visited += 1;
            let it = &self.items[pos];
            f(&it.member, it.score);
        }
        pos as u64
    }

    /// The vector's chunks, shared with a snapshot, if the set is too big to encode under the
    /// shard's lock (see [`super::ZSet::freeze`]).
    pub(super) fn freeze(&mut self, bytes: usize) -> Option<dense::Frozen<Item>> {
        dense::worth_freezing(self.len(), bytes).then(|| self.items.freeze())
    }

    /// Checks the three parts against each other (for tests).
    #[cfg(test)]
    pub(super) fn check(&self) {
        assert_eq!(self.index.len(), self.items.len());
        assert_eq!(self.tree.len(), self.items.len());
        for (id, it) in self.items.iter().enumerate() {
            assert_eq!(self.find(&it.member), Some(id as u32));
        }
        self.tree.check(&self.items);
        let (items, hasher) = (&self.items, &self.hasher);
        self.index.check(|&i| hasher.hash_one(&*items[i as usize].member));
    }

    /// Index entries moved by growth, ever; index segments; vector chunks not shared with a
    /// snapshot (for tests).
    #[cfg(test)]
    pub(super) fn growth_stats(&self) -> (usize, usize, usize) {
        (self.index.moved(), self.index.segment_count(), self.items.unshared_chunks())
    }

    /// Bytes this set has allocated (for memory tests): the vector, the table, the nodes and
    /// the members that do not fit in a `Key`.
    #[cfg(test)]
    pub(super) fn allocated(&self) -> usize {
        let heap: usize = self
            .items
            .iter()
            .map(|it| if it.member.len() > 22 { it.member.len().next_multiple_of(16) } else { 0 })
            .sum();
        self.items.capacity() * std::mem::size_of::<Item>()
            + self.index.buckets() * (4 + 1)
            + self.tree.node_bytes()
            + heap
    }
}
