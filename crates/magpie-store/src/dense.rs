//! Storage for big collections that never stalls: a dense vector kept in fixed-size chunks, and
//! the copy-on-write cell those chunks live in.
//!
//! - [`Dense`] holds a collection's elements at positions `0..len` (sets, hashes and sorted
//!   sets keep their members there; positions give O(1) random sampling and the SCAN cursors).
//!   A `Vec` would copy everything when it grows (128 MB for 4M sorted-set items, under the
//!   shard's lock); chunks of [`CHUNK`] elements never move once full, so a push costs at most
//!   the growth of the first chunk (up to [`CHUNK`] elements), and removal at the end frees
//!   whole chunks.
//! - [`Shared`] is either owned (written in place, no atomic operation) or frozen into an
//!   `Arc` by a snapshot, which then reads it on its own thread without any lock. The first
//!   write to a frozen part takes it back: for free if the snapshot is done with it, by
//!   copying that one part (one chunk) otherwise. So a snapshot of a collection of millions of
//!   elements costs the writer O(chunks) under the lock, not O(elements).

use std::ops::Deref;
use std::sync::Arc;

/// Whether a snapshot should freeze a collection of `len` elements holding `bytes` bytes
/// rather than encode it at once under the shard's lock: above one chunk of elements or 256 KB
/// (tens of microseconds of encoding). Smaller ones are encoded at once, which is as quick as
/// freezing and spares the writer the copy of a chunk.
pub(crate) fn worth_freezing(len: usize, bytes: usize) -> bool {
    len > CHUNK || bytes > 256 * 1024
}
/// Elements per chunk: 4032 rather than 4096, so that a chunk of 16- or 32-byte elements is a
/// little under 64 or 128 KB. Through mimalloc's own Rust allocator interface (its aligned
/// allocation, since replaced by the server's `Counting`) an allocation of exactly 64 KB took
/// an 80 KB block (measured: 25% more memory for the vector). Dividing by a constant costs a
/// multiplication.
pub(crate) const CHUNK: usize = 4032;

/// A part of a collection: owned, or frozen and shared with a snapshot (see the module's
/// notes). Reading goes through `Deref`; writing through [`Shared::make_mut`].
#[derive(Clone)]
pub(crate) enum Shared<T> {
    Own(T),
    Frozen(Arc<T>),
}

impl<T> Deref for Shared<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        match self {
            Shared::Own(t) => t,
            Shared::Frozen(a) => a,
        }
    }
}

impl<T: Clone + Default> Shared<T> {
    /// The part, for writing: a frozen part is taken back first (copied if a snapshot still
    /// holds it).
    #[inline]
    pub(crate) fn make_mut(&mut self) -> &mut T {
        if let Shared::Frozen(_) = self {
            self.thaw();
        }
        match self {
            Shared::Own(t) => t,
            Shared::Frozen(_) => unreachable!("thawed above"),
        }
    }

    #[cold]
    fn thaw(&mut self) {
        *self = Shared::Own(std::mem::take(self).into_owned());
    }

    /// Shares the part with a snapshot: O(1), no copy.
    pub(crate) fn freeze(&mut self) -> Arc<T> {
        if let Shared::Own(t) = self {
            *self = Shared::Frozen(Arc::new(std::mem::take(t)));
        }
        match self {
            Shared::Frozen(a) => a.clone(),
            Shared::Own(_) => unreachable!("frozen above"),
        }
    }

    /// Whether a snapshot may still hold this part.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self, Shared::Frozen(a) if Arc::strong_count(a) > 1)
    }

    /// The part itself: for free unless a snapshot still holds it (then a copy).
    pub(crate) fn into_owned(self) -> T {
        match self {
            Shared::Own(t) => t,
            Shared::Frozen(a) => Arc::unwrap_or_clone(a),
        }
    }
}

impl<T: Default> Default for Shared<T> {
    fn default() -> Shared<T> {
        Shared::Own(T::default())
    }
}

/// A vector in chunks of [`CHUNK`] elements (see the module's notes). Element `i` is in chunk
/// `i / CHUNK`; every chunk but the last is full. The first chunk grows like a `Vec` (so small
/// collections stay small); later chunks are allocated whole.
#[derive(Clone)]
pub(crate) struct Dense<T> {
    chunks: Vec<Shared<Vec<T>>>,
    len: usize,
}

impl<T> Default for Dense<T> {
    fn default() -> Dense<T> {
        Dense { chunks: Vec::new(), len: 0 }
    }
}

impl<T: Clone> Dense<T> {
    pub(crate) fn with_capacity(n: usize) -> Dense<T> {
        let mut d = Dense::default();
        if n > 0 {
            d.chunks.push(Shared::Own(Vec::with_capacity(n.min(CHUNK))));
        }
        d
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn get(&self, i: usize) -> &T {
        &self.chunks[i / CHUNK][i % CHUNK]
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / CHUNK].make_mut()[i % CHUNK]
    }

    pub(crate) fn push(&mut self, x: T) {
        let c = self.len / CHUNK;
        if c == self.chunks.len() {
            // Full chunks (or none): a new one, allocated whole unless it is the first.
            let cap = if c == 0 { 4 } else { CHUNK };
            self.chunks.push(Shared::Own(Vec::with_capacity(cap)));
        }
        let chunk = self.chunks[c].make_mut();
        if chunk.len() == chunk.capacity() {
            // Only the first chunk grows: by doubling, up to a whole chunk.
            chunk.reserve_exact(chunk.len().max(4).min(CHUNK - chunk.len()));
        }
        chunk.push(x);
        self.len += 1;
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let c = self.len / CHUNK;
        let x = self.chunks[c].make_mut().pop();
        self.after_pop();
        x
    }

    /// Removes element `i`; the last element takes its place.
    pub(crate) fn swap_remove(&mut self, i: usize) -> T {
        let last = self.pop().expect("swap_remove within the vector");
        if i == self.len {
            return last;
        }
        std::mem::replace(self.get_mut(i), last)
    }

    /// Frees chunks left empty, keeping one spare so that pushes and pops at a chunk boundary
    /// do not allocate and free a chunk each time; shrinks a lone first chunk that is mostly
    /// unused.
    fn after_pop(&mut self) {
        let used = self.len.div_ceil(CHUNK);
        if self.chunks.len() > used + 1 {
            self.chunks.truncate(used + 1);
        }
        if self.len <= CHUNK / 4 && self.chunks.len() <= 2 {
            self.chunks.truncate(used.max(1));
            if let Some(first) = self.chunks.first_mut() {
                let cap = first.capacity();
                if cap > 16 && self.len * 4 < cap {
                    first.make_mut().shrink_to(self.len * 2);
                }
            }
        }
        if self.len == 0 {
            self.chunks = Vec::new();
        }
    }

    pub(crate) fn iter(&self) -> Iter<'_, T> {
        Iter { chunks: self.chunks.iter(), front: [].iter(), back: [].iter(), left: self.len }
    }

    /// Shares every chunk with a snapshot (see [`Shared::freeze`]): O(chunks).
    pub(crate) fn freeze(&mut self) -> Frozen<T> {
        Frozen { chunks: self.chunks.iter_mut().map(Shared::freeze).collect(), len: self.len }
    }

    /// Elements allocated room for (for memory accounting in tests).
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity()).sum()
    }

    /// Whether any chunk is still shared with a snapshot (for tests).
    #[cfg(test)]
    pub(crate) fn shares_any(&self) -> bool {
        self.chunks.iter().any(Shared::is_shared)
    }

    /// Chunks that are not shared with a snapshot (for tests: after a freeze, the ones writes
    /// copied).
    #[cfg(test)]
    pub(crate) fn unshared_chunks(&self) -> usize {
        self.chunks.iter().filter(|c| !c.is_shared()).count()
    }

    #[cfg(test)]
    pub(crate) fn chunk_count(&self) -> usize {
        self.chunks.len()
    }
}

impl<T: Clone> std::ops::Index<usize> for Dense<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        self.get(i)
    }
}

/// The elements of a [`Dense`], in order.
pub(crate) struct Iter<'a, T> {
    chunks: std::slice::Iter<'a, Shared<Vec<T>>>,
    front: std::slice::Iter<'a, T>,
    back: std::slice::Iter<'a, T>,
    left: usize,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(x) = self.front.next() {
                self.left -= 1;
                return Some(x);
            }
            match self.chunks.next() {
                Some(c) => self.front = c.iter(),
                None => {
                    let x = self.back.next()?;
                    self.left -= 1;
                    return Some(x);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> DoubleEndedIterator for Iter<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(x) = self.back.next_back() {
                self.left -= 1;
                return Some(x);
            }
            match self.chunks.next_back() {
                Some(c) => self.back = c.iter(),
                None => {
                    let x = self.front.next_back()?;
                    self.left -= 1;
                    return Some(x);
                }
            }
        }
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

/// A frozen image of a [`Dense`]: its chunks as they were, readable on any thread.
pub(crate) struct Frozen<T> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T> Frozen<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_vec() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut d: Dense<u64> = Dense::default();
        let mut v: Vec<u64> = Vec::new();
        for step in 0..200_000u64 {
            match rng.u8(..10) {
                0..=5 => {
                    d.push(step);
                    v.push(step);
                }
                6 | 7 => assert_eq!(d.pop(), v.pop()),
                8 if !v.is_empty() => {
                    let i = rng.usize(..v.len());
                    assert_eq!(d.swap_remove(i), v.swap_remove(i));
                }
                _ if !v.is_empty() => {
                    let i = rng.usize(..v.len());
                    *d.get_mut(i) += 1;
                    v[i] += 1;
                }
                _ => {}
            }
            assert_eq!(d.len(), v.len());
            if step % 10_000 == 0 {
                assert!(d.iter().eq(v.iter()));
                assert!(d.iter().rev().eq(v.iter().rev()));
                assert!(d.chunks.len() <= d.len().div_ceil(CHUNK) + 1);
            }
        }
        assert!(d.iter().eq(v.iter()));
        while d.pop().is_some() {}
        assert!(d.chunks.is_empty());
    }

    #[test]
    fn only_the_first_chunk_grows_and_full_chunks_never_move() {
        let mut d: Dense<u32> = Dense::default();
        for i in 0..CHUNK as u32 {
            d.push(i);
        }
        assert_eq!(d.chunks.len(), 1);
        let first = d.chunks[0].as_ptr();
        for i in 0..(3 * CHUNK) as u32 {
            d.push(i);
        }
        assert_eq!(d.chunks[0].as_ptr(), first, "a full chunk is never reallocated");
        assert!(d.chunks[1..].iter().all(|c| c.capacity() == CHUNK));
        // A small vector takes little room.
        let mut small: Dense<u32> = Dense::default();
        for i in 0..10 {
            small.push(i);
        }
        assert!(small.capacity() <= 16);
        for _ in 0..8 {
            small.pop();
        }
        assert_eq!(small.len(), 2);
    }

    #[test]
    fn a_frozen_image_keeps_the_old_contents_and_writes_copy_one_chunk() {
        let mut d: Dense<u64> = Dense::default();
        for i in 0..(3 * CHUNK + 5) as u64 {
            d.push(i);
        }
        let before: Vec<u64> = d.iter().copied().collect();
        let frozen = d.freeze();
        assert!(d.shares_any());
        // Writes after the freeze: one element in the middle, pushes, pops, a swap removal.
        *d.get_mut(CHUNK + 1) = 999;
        assert!(!d.chunks[1].is_shared() && d.chunks[0].is_shared() && d.chunks[2].is_shared());
        d.push(1);
        d.swap_remove(0);
        assert!(!d.chunks[0].is_shared());
        assert!(frozen.iter().copied().eq(before.iter().copied()), "the image is what it was");
        assert_eq!(frozen.len(), before.len());
        drop(frozen);
        // Once the snapshot lets go, taking a part back copies nothing.
        let ptr = d.chunks[2].as_ptr();
        *d.get_mut(2 * CHUNK) = 5;
        assert_eq!(d.chunks[2].as_ptr(), ptr);
        assert!(!d.shares_any());
    }
}
