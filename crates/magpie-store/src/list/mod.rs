//! Lists: a deque of packed chunks, as Redis's quicklist of listpacks.
//!
//! A chunk ([`chunk`]) is one allocation: a header, then elements back to back, encoded so
//! they can be walked from either end, at most [`CHUNK_BYTES`] of them (a 16 KB block). Only
//! a single element larger than a chunk gets a chunk of its own.
//!
//! A [`List`] is one pointer. Most lists fit in one chunk, and such a list (a *small* one:
//! at most [`dense::CHUNK`] elements in [`CHUNK_BYTES`]) is that chunk's pointer and nothing
//! else: 100 elements of 64 bytes take one 7 KB block, where a box for the list and a table of
//! its chunks would add 96 bytes (more than the whole difference to Redis's memory for such
//! lists). A bigger list points at a box holding a `VecDeque` of chunks and the totals; the
//! pointer's low bit tells the two apart. A big list that shrinks back to half a chunk becomes
//! small again (half, so that a list at the limit does not change form on every push and pop).
//!
//! Chunks of a big list are [`Shared`]: a snapshot freezes them ([`List::freeze`]: O(chunks),
//! no element copied) and encodes them on its own thread, and a write copies only the chunk it
//! changes (16 KB at most) while the snapshot still holds it. A small list is encoded at once,
//! as any collection of that size is.
//!
//! Costs: push and pop at either end O(1) amortised; index O(n / 250) chunk hops plus a walk
//! within one chunk; iteration sequential. Elements are kept as bytes, so `size()` (the sum of
//! their lengths) is what STRLEN would say of each.
#![allow(unsafe_code)]

mod chunk;

use std::collections::VecDeque;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;

pub use chunk::CHUNK_BYTES;
use chunk::{Chunk, Delta, encode, encoded_len, read_back, read_fwd};

use crate::dense::{self, Shared};

/// The low bit of [`List`]'s pointer when it points at a [`Big`] (chunks' headers and boxes
/// are 8-byte aligned, so the bit is otherwise 0).
const BIG_TAG: usize = 1;

/// A list of byte strings: a small list's one chunk, or a tagged pointer to a [`Big`] (see the
/// module's notes). `repr(transparent)`: a small list is a [`Chunk`], bit for bit.
#[repr(transparent)]
pub struct List {
    p: NonNull<()>,
}

// SAFETY: a `List` owns its chunk or its box, both `Send` and `Sync`, and shares nothing.
unsafe impl Send for List {}
// SAFETY: as above; `&List` only reads.
unsafe impl Sync for List {}

/// A list of more than one chunk, or of a chunk too big for a small list.
#[derive(Clone, Default)]
struct Big {
    chunks: VecDeque<Shared<Chunk>>,
    len: usize,
    bytes: usize,
}

/// Whether a small list's chunk takes one more element of `n` encoded bytes and stays small.
#[inline]
fn small_takes(c: &Chunk, n: usize) -> bool {
    c.count() < dense::CHUNK && c.used() + n <= CHUNK_BYTES
}

/// Whether a chunk may be a small list: at most [`dense::CHUNK`] elements in [`CHUNK_BYTES`],
/// so that a snapshot always encodes it at once ([`dense::worth_freezing`] is false).
#[inline]
fn small_ok(c: &Chunk) -> bool {
    c.count() <= dense::CHUNK && c.used() <= CHUNK_BYTES
}

// ---------------------------------------------------------------------------------------------
// The two forms

impl List {
    pub fn new() -> List {
        List::small(Chunk::new())
    }

    fn small(c: Chunk) -> List {
        List { p: c.into_raw() }
    }

    fn big(b: Box<Big>) -> List {
        let p = NonNull::from(Box::leak(b)).cast::<()>();
        List { p: p.map_addr(|a| a | BIG_TAG) }
    }

    #[inline]
    fn is_big(&self) -> bool {
        self.p.addr().get() & BIG_TAG != 0
    }

    #[inline]
    fn big_ptr(&self) -> *mut Big {
        self.p.as_ptr().map_addr(|a| a & !BIG_TAG).cast::<Big>()
    }

    /// The list as its chunk or its box.
    #[inline]
    fn form(&self) -> Form<'_> {
        if self.is_big() {
            // SAFETY: a tagged pointer is a leaked `Box<Big>` (`List::big`), owned by this list.
            Form::Big(unsafe { &*self.big_ptr() })
        } else {
            // SAFETY: an untagged pointer is a chunk's (`List::small`), and `List` is a
            // transparent wrapper of it, as `Chunk` is: the same bits, read as a `Chunk`.
            Form::Small(unsafe { &*std::ptr::from_ref(self).cast::<Chunk>() })
        }
    }

    #[inline]
    fn form_mut(&mut self) -> FormMut<'_> {
        if self.is_big() {
            // SAFETY: as in `form`; `&mut self` makes the access unique.
            FormMut::Big(unsafe { &mut *self.big_ptr() })
        } else {
            // SAFETY: as in `form`; a chunk's pointer written through this reference (when it
            // reallocates) is again an untagged chunk pointer, so the list stays small and valid.
            FormMut::Small(unsafe { &mut *std::ptr::from_mut(self).cast::<Chunk>() })
        }
    }

    #[inline]
    fn as_small_mut(&mut self) -> Option<&mut Chunk> {
        match self.form_mut() {
            FormMut::Small(c) => Some(c),
            FormMut::Big(_) => None,
        }
    }

    #[inline]
    fn as_big(&self) -> Option<&Big> {
        match self.form() {
            Form::Big(b) => Some(b),
            Form::Small(_) => None,
        }
    }

    #[inline]
    fn as_big_mut(&mut self) -> Option<&mut Big> {
        match self.form_mut() {
            FormMut::Big(b) => Some(b),
            FormMut::Small(_) => None,
        }
    }

    /// Takes the list apart into its chunk or its box.
    fn into_form(self) -> Result<Chunk, Box<Big>> {
        let this = ManuallyDrop::new(self);
        if this.is_big() {
            // SAFETY: the box `List::big` leaked, taken back once (`this` is not dropped).
            Err(unsafe { Box::from_raw(this.big_ptr()) })
        } else {
            // SAFETY: the chunk `List::small` took apart, taken back once.
            Ok(unsafe { Chunk::from_raw(this.p) })
        }
    }

    /// The chunks, for reading.
    #[inline]
    fn chunks(&self) -> Chunks<'_> {
        match self.form() {
            Form::Small(c) => Chunks::One(c),
            Form::Big(b) => Chunks::Many(&b.chunks),
        }
    }

    /// The list as a big one, for a change a small one does not make in place: its chunk moves
    /// into a new box (no element copied).
    fn make_big(&mut self) -> &mut Big {
        if !self.is_big() {
            let mut big = Big::default();
            if let Ok(c) = std::mem::take(self).into_form()
                && c.count() > 0
            {
                big.len = c.count();
                big.bytes = c.bytes();
                // Most big lists have a few chunks: do not reserve room for four at once.
                big.chunks.reserve_exact(2);
                big.chunks.push_back(Shared::Own(c));
            }
            *self = List::big(Box::new(big));
        }
        self.as_big_mut().expect("made big above")
    }

    /// After a change to a big list: back to its chunk's pointer when it is down to one chunk
    /// of half what a small list holds, unshared.
    fn settle(&mut self) {
        let Some(b) = self.as_big() else { return };
        let fits = match b.chunks.len() {
            0 => true,
            1 => {
                let c = &b.chunks[0];
                !c.is_shared() && c.count() <= dense::CHUNK / 2 && c.used() <= CHUNK_BYTES / 2
            }
            _ => false,
        };
        if !fits {
            return;
        }
        if let Err(mut big) = std::mem::take(self).into_form() {
            let c = big.chunks.pop_front().map(Shared::into_owned).unwrap_or_default();
            *self = List::small(c);
        }
    }
}

impl Default for List {
    fn default() -> List {
        List::new()
    }
}

impl Drop for List {
    fn drop(&mut self) {
        if self.is_big() {
            // SAFETY: the box `List::big` leaked, freed once.
            drop(unsafe { Box::from_raw(self.big_ptr()) });
        } else {
            // SAFETY: the chunk `List::small` took apart, freed once.
            drop(unsafe { Chunk::from_raw(self.p) });
        }
    }
}

impl Clone for List {
    fn clone(&self) -> List {
        match self.form() {
            Form::Big(b) => List::big(Box::new(b.clone())),
            Form::Small(c) => List::small(c.clone()),
        }
    }
}

enum Form<'a> {
    Small(&'a Chunk),
    Big(&'a Big),
}

enum FormMut<'a> {
    Small(&'a mut Chunk),
    Big(&'a mut Big),
}

/// A list's chunks, for reading: a small list's one (none when empty), or a big list's.
#[derive(Clone, Copy)]
enum Chunks<'a> {
    One(&'a Chunk),
    Many(&'a VecDeque<Shared<Chunk>>),
}

impl<'a> Chunks<'a> {
    #[inline]
    fn len(self) -> usize {
        match self {
            Chunks::One(c) => usize::from(c.count() > 0),
            Chunks::Many(d) => d.len(),
        }
    }

    #[inline]
    fn get(self, i: usize) -> &'a Chunk {
        match self {
            Chunks::One(c) => c,
            Chunks::Many(d) => &d[i],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Edits within one chunk, for both forms

/// Replaces element `k` of `c` with `data`; returns the old element's data length.
fn set_in(c: &mut Chunk, k: usize, data: &[u8]) -> usize {
    let at = c.offset(k);
    let (s, e, next) = read_fwd(c.buf(), at);
    let delta = Delta { added: 1, removed: 1, added_bytes: data.len(), removed_bytes: e - s };
    c.splice(at..next, &encode(data), delta);
    e - s
}

/// Inserts `data` so that it becomes element `k` (< count) of `c`.
fn insert_in(c: &mut Chunk, k: usize, data: &[u8]) {
    let at = c.offset(k);
    c.splice(at..at, &encode(data), Delta { added: 1, added_bytes: data.len(), ..Delta::default() });
}

/// Byte ranges of the elements of `c` equal to `data`: all of them (`room` 0), or the first or
/// last `room`.
fn hits(c: &Chunk, data: &[u8], room: usize, from_tail: bool) -> Vec<(usize, usize)> {
    let mut hits: Vec<(usize, usize)> =
        c.elems().filter(|(_, d)| *d == data).map(|(at, d)| (at, at + encoded_len(d.len()))).collect();
    if room != 0 && hits.len() > room {
        if from_tail {
            hits.drain(..hits.len() - room);
        } else {
            hits.truncate(room);
        }
    }
    hits
}

/// Removes the elements at `hits` (each of `len` data bytes) from `c`, back to front.
fn cut(c: &mut Chunk, hits: &[(usize, usize)], len: usize) {
    for &(s, e) in hits.iter().rev() {
        c.splice(s..e, &[], Delta { removed: 1, removed_bytes: len, ..Delta::default() });
    }
}

// ---------------------------------------------------------------------------------------------
// The list

impl List {
    pub fn len(&self) -> usize {
        match self.form() {
            Form::Small(c) => c.count(),
            Form::Big(b) => b.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of user data held (sum of the elements' lengths), O(1).
    pub fn size(&self) -> usize {
        match self.form() {
            Form::Small(c) => c.bytes(),
            Form::Big(b) => b.bytes,
        }
    }

    /// Redis 7.0's OBJECT ENCODING for lists: always `quicklist` (7.0 keeps even a one-element
    /// list in a quicklist of one listpack node; the `listpack` encoding came in 7.2).
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Chunks in use (for tests and memory reports).
    pub fn chunk_count(&self) -> usize {
        self.chunks().len()
    }

    /// Bytes of heap the list holds: its chunks, and a big list's box and chunk table.
    pub fn allocated(&self) -> usize {
        match self.form() {
            Form::Small(c) => c.allocated(),
            Form::Big(b) => {
                size_of::<Big>()
                    + b.chunks.capacity() * size_of::<Shared<Chunk>>()
                    + b.chunks.iter().map(|c| c.allocated()).sum::<usize>()
            }
        }
    }

    pub fn push_back(&mut self, data: &[u8]) {
        self.push(data, false);
    }

    pub fn push_front(&mut self, data: &[u8]) {
        self.push(data, true);
    }

    fn push(&mut self, data: &[u8], front: bool) {
        if let Some(c) = self.as_small_mut()
            && small_takes(c, encoded_len(data.len()))
        {
            return c.push(data, front);
        }
        self.make_big().push(data, front);
    }

    pub fn front(&self) -> Option<&[u8]> {
        let chunks = self.chunks();
        (chunks.len() > 0).then(|| chunks.get(0).front())
    }

    pub fn back(&self) -> Option<&[u8]> {
        let chunks = self.chunks();
        chunks.len().checked_sub(1).map(|last| chunks.get(last).back())
    }

    /// Removes the first element; false if the list is empty.
    pub fn drop_front_one(&mut self) -> bool {
        self.drop_one(true)
    }

    /// Removes the last element; false if the list is empty.
    pub fn drop_back_one(&mut self) -> bool {
        self.drop_one(false)
    }

    fn drop_one(&mut self, front: bool) -> bool {
        match self.form_mut() {
            FormMut::Small(c) => {
                if c.count() == 0 {
                    return false;
                }
                if front {
                    c.pop_front()
                } else {
                    c.pop_back()
                };
                true
            }
            FormMut::Big(b) => {
                let done = b.drop_one(front);
                self.settle();
                done
            }
        }
    }

    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        let v = self.front()?.to_vec();
        self.drop_front_one();
        Some(v)
    }

    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        let v = self.back()?.to_vec();
        self.drop_back_one();
        Some(v)
    }

    /// Removes the first `n` elements (all if there are fewer), whole chunks at a time.
    pub fn drop_front(&mut self, n: usize) {
        self.drop_end(n, true);
    }

    /// Removes the last `n` elements (all if there are fewer).
    pub fn drop_back(&mut self, n: usize) {
        self.drop_end(n, false);
    }

    fn drop_end(&mut self, n: usize, front: bool) {
        match self.form_mut() {
            FormMut::Small(c) => {
                for _ in 0..n.min(c.count()) {
                    if front {
                        c.pop_front()
                    } else {
                        c.pop_back()
                    };
                }
            }
            FormMut::Big(b) => {
                b.drop_end(n, front);
                self.settle();
            }
        }
    }

    /// (chunk, index within it) of element `i` < len.
    fn locate(&self, i: usize) -> (usize, usize) {
        match self.form() {
            Form::Small(_) => (0, i),
            Form::Big(b) => b.locate(i),
        }
    }

    /// Element `i` (0-based from the head).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len() {
            return None;
        }
        let (ci, k) = self.locate(i);
        let c = self.chunks().get(ci);
        let (s, e, _) = read_fwd(c.buf(), c.offset(k));
        Some(&c.buf()[s..e])
    }

    /// Element `i` counted as Redis does: negative from the tail (-1 is the last).
    pub fn index(&self, i: i64) -> Option<usize> {
        let len = i64::try_from(self.len()).ok()?;
        let i = if i < 0 { i.checked_add(len)? } else { i };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// Replaces element `i`; false if out of range.
    pub fn set(&mut self, i: usize, data: &[u8]) -> bool {
        if i >= self.len() {
            return false;
        }
        match self.form_mut() {
            FormMut::Small(c) => {
                set_in(c, i, data);
                self.after_small_edit();
            }
            FormMut::Big(b) => {
                b.set(i, data);
                self.settle();
            }
        }
        true
    }

    /// Inserts `data` so that it becomes element `i` (0..=len).
    pub fn insert(&mut self, i: usize, data: &[u8]) {
        if i == 0 {
            return self.push_front(data);
        }
        if i >= self.len() {
            return self.push_back(data);
        }
        match self.form_mut() {
            FormMut::Small(c) => {
                insert_in(c, i, data);
                self.after_small_edit();
            }
            FormMut::Big(b) => b.insert(i, data),
        }
    }

    /// After an edit in the middle of a small list: a chunk past what a small list holds is
    /// split into a big list's chunks; one that shrank gives memory back.
    fn after_small_edit(&mut self) {
        match self.form_mut() {
            FormMut::Small(c) if small_ok(c) => c.after_shrink(),
            FormMut::Small(_) => self.make_big().rebalance(0),
            FormMut::Big(_) => {}
        }
    }

    /// Position of the first element equal to `data`, from the head.
    pub fn position(&self, data: &[u8]) -> Option<usize> {
        self.iter().position(|e| e == data)
    }

    /// Removes up to `limit` elements equal to `data` (0: all), from the head or from the
    /// tail, as LREM does. Returns how many were removed.
    pub fn remove(&mut self, data: &[u8], limit: usize, from_tail: bool) -> usize {
        match self.form_mut() {
            FormMut::Small(c) => {
                let hits = hits(c, data, limit, from_tail);
                cut(c, &hits, data.len());
                c.after_shrink();
                hits.len()
            }
            FormMut::Big(b) => {
                let removed = b.remove(data, limit, from_tail);
                self.settle();
                removed
            }
        }
    }

    /// All elements, head to tail (reversible with `.rev()`).
    pub fn iter(&self) -> Iter<'_> {
        self.range(0, self.len())
    }

    /// Elements `start..end` (clamped to the list), head to tail; `.rev()` walks them from
    /// `end - 1` back to `start`.
    pub fn range(&self, start: usize, end: usize) -> Iter<'_> {
        let len = self.len();
        let end = end.min(len);
        let chunks = self.chunks();
        if start >= end {
            return Iter { chunks, fc: 0, f: &[], fpos: 0, bc: 0, b: &[], bhead: 0, bpos: 0, left: 0 };
        }
        let (fc, fk) = self.locate(start);
        let front = chunks.get(fc);
        let fpos = front.offset(fk);
        let (bc, bpos) = if end == len {
            let last = chunks.len() - 1;
            (last, chunks.get(last).len())
        } else {
            let (bc, bk) = self.locate(end);
            (bc, chunks.get(bc).offset(bk))
        };
        let back = chunks.get(bc);
        Iter { chunks, fc, f: front.buf(), fpos, bc, b: back.buf(), bhead: back.head(), bpos, left: end - start }
    }

    /// Checks the internal invariants (for tests).
    #[cfg(test)]
    fn check(&self) {
        let chunks = self.chunks();
        match self.form() {
            Form::Small(c) => assert!(small_ok(c), "small list of {} elements, {} bytes", c.count(), c.used()),
            Form::Big(b) => assert!(!b.chunks.is_empty(), "empty big list kept"),
        }
        let mut n = 0;
        let mut bytes = 0;
        for ci in 0..chunks.len() {
            let c = chunks.get(ci);
            assert!(c.count() > 0, "empty chunk kept");
            assert_eq!(c.elems().count(), c.count());
            assert!(c.used() <= CHUNK_BYTES || c.count() == 1, "chunk of {} bytes", c.used());
            assert!(c.len() <= c.capacity());
            let in_chunk = c.elems().map(|(_, d)| d.len()).sum::<usize>();
            assert_eq!(in_chunk, c.bytes());
            n += c.count();
            bytes += in_chunk;
            // Walking back gives the same elements.
            let mut end = c.len();
            let mut back = Vec::new();
            while end > c.head() {
                let (start, s, e) = read_back(c.buf(), end);
                back.push(&c.buf()[s..e]);
                end = start;
            }
            back.reverse();
            assert!(back.iter().copied().eq(c.elems().map(|(_, d)| d)));
        }
        assert_eq!(n, self.len());
        assert_eq!(bytes, self.size());
    }

    /// The image of this list a snapshot writes, when the list is too big to encode under the
    /// shard's lock: its chunks, shared (O(chunks), no element copied). A write that follows
    /// copies only the chunk it changes, while the image is alive. `None` for a list small
    /// enough to encode at once (every small list is).
    pub fn freeze(&mut self) -> Option<Frozen> {
        if !self.wants_freezing() {
            return None;
        }
        let b = self.as_big_mut()?;
        Some(Frozen { chunks: b.chunks.iter_mut().map(Shared::freeze).collect(), len: b.len })
    }

    /// Whether [`List::freeze`] gives an image.
    pub fn wants_freezing(&self) -> bool {
        self.is_big() && dense::worth_freezing(self.len(), self.size())
    }
}

// ---------------------------------------------------------------------------------------------
// A big list

impl Big {
    fn push(&mut self, data: &[u8], front: bool) {
        let n = encoded_len(data.len());
        let end = if front { self.chunks.front_mut() } else { self.chunks.back_mut() };
        match end {
            Some(c) if c.used() + n <= CHUNK_BYTES => c.make_mut().push(data, front),
            _ => {
                // A new chunk starts at its first element and grows a size class at a time, as
                // Redis's listpacks grow (at the head with the room in front). A whole chunk at
                // once spared the growing copies, but left up to 16 KB unused at the end of
                // every list that had just filled one: 1,000 lists of 1,000 64-byte elements
                // took 83.2 MB of used_memory, Redis 68.9.
                let mut c = Chunk::with_capacity(n);
                c.push_back(data);
                if front {
                    self.chunks.push_front(Shared::Own(c));
                } else {
                    self.chunks.push_back(Shared::Own(c));
                }
            }
        }
        self.len += 1;
        self.bytes += data.len();
    }

    fn drop_one(&mut self, front: bool) -> bool {
        let c = if front { self.chunks.front_mut() } else { self.chunks.back_mut() };
        let Some(c) = c.map(Shared::make_mut) else { return false };
        self.bytes -= if front { c.pop_front() } else { c.pop_back() };
        self.len -= 1;
        if c.count() == 0 {
            if front {
                self.chunks.pop_front();
            } else {
                self.chunks.pop_back();
            }
            self.shrink_table();
        }
        true
    }

    /// Gives back the chunk table's memory when it is down to a quarter of its capacity.
    fn shrink_table(&mut self) {
        let (len, cap) = (self.chunks.len(), self.chunks.capacity());
        if cap > 8 && len * 4 < cap {
            self.chunks.shrink_to(len * 2);
        }
    }

    fn drop_end(&mut self, mut n: usize, front: bool) {
        while n > 0 {
            let c = if front { self.chunks.front() } else { self.chunks.back() };
            let Some(c) = c else { return };
            if c.count() > n {
                for _ in 0..n {
                    self.drop_one(front);
                }
                return;
            }
            n -= c.count();
            self.len -= c.count();
            self.bytes -= c.bytes();
            if front {
                self.chunks.pop_front();
            } else {
                self.chunks.pop_back();
            }
            self.shrink_table();
        }
    }

    /// (chunk, index within it) of element `i` < len, counting chunks from the nearer end.
    fn locate(&self, i: usize) -> (usize, usize) {
        if i < self.len / 2 {
            let mut left = i;
            for (ci, c) in self.chunks.iter().enumerate() {
                if left < c.count() {
                    return (ci, left);
                }
                left -= c.count();
            }
        } else {
            let mut after = self.len - i; // elements from i to the end
            for (ci, c) in self.chunks.iter().enumerate().rev() {
                if after <= c.count() {
                    return (ci, c.count() - after);
                }
                after -= c.count();
            }
        }
        unreachable!("index {i} within a list of {}", self.len)
    }

    fn set(&mut self, i: usize, data: &[u8]) {
        let (ci, k) = self.locate(i);
        let old = set_in(self.chunks[ci].make_mut(), k, data);
        self.bytes = self.bytes - old + data.len();
        self.rebalance(ci);
    }

    fn insert(&mut self, i: usize, data: &[u8]) {
        let (ci, k) = self.locate(i);
        insert_in(self.chunks[ci].make_mut(), k, data);
        self.len += 1;
        self.bytes += data.len();
        self.rebalance(ci);
    }

    fn remove(&mut self, data: &[u8], limit: usize, from_tail: bool) -> usize {
        let mut removed = 0;
        let order: Vec<usize> =
            if from_tail { (0..self.chunks.len()).rev().collect() } else { (0..self.chunks.len()).collect() };
        let mut touched = Vec::new();
        for ci in order {
            if limit != 0 && removed == limit {
                break;
            }
            let room = if limit == 0 { 0 } else { limit - removed };
            let hits = hits(&self.chunks[ci], data, room, from_tail);
            if hits.is_empty() {
                continue;
            }
            cut(self.chunks[ci].make_mut(), &hits, data.len());
            removed += hits.len();
            touched.push(ci);
        }
        self.len -= removed;
        self.bytes -= removed * data.len();
        // Drop emptied chunks and merge small neighbours, from the back so indices hold.
        touched.sort_unstable();
        for &ci in touched.iter().rev() {
            self.rebalance(ci);
        }
        removed
    }

    /// After chunk `ci` changed in the middle: splits it if it grew past the limit, drops it
    /// if empty, merges it with a neighbour if both fit in one chunk, gives memory back.
    fn rebalance(&mut self, ci: usize) {
        if self.chunks[ci].count() == 0 {
            self.chunks.remove(ci);
            return;
        }
        let c = self.chunks[ci].make_mut();
        if c.used() > CHUNK_BYTES && c.count() > 1 {
            // Split at the first element boundary past the middle; with none there, the last
            // element is big, and it goes alone.
            let half = c.used() / 2;
            let split = c.elems().map(|(at, _)| at).find(|&at| at - c.head() >= half);
            let at = split.unwrap_or_else(|| c.offset(c.count() - 1));
            let right = c.split_off(at);
            self.chunks.insert(ci + 1, Shared::Own(right));
            // A big element can leave either half over the limit: split again.
            self.rebalance(ci + 1);
            self.rebalance(ci);
            return;
        }
        let used = c.used();
        c.after_shrink();
        if used < CHUNK_BYTES / 4 {
            if ci + 1 < self.chunks.len() && used + self.chunks[ci + 1].used() <= CHUNK_BYTES {
                self.merge(ci);
            } else if ci > 0 && used + self.chunks[ci - 1].used() <= CHUNK_BYTES {
                self.merge(ci - 1);
            }
        }
    }

    /// Appends chunk `ci + 1` to chunk `ci`.
    fn merge(&mut self, ci: usize) {
        let Some(right) = self.chunks.remove(ci + 1) else { return };
        self.chunks[ci].make_mut().merge(&right);
    }
}

/// A frozen image of a big list (see [`List::freeze`]), readable on any thread without a lock.
pub struct Frozen {
    chunks: Vec<Arc<Chunk>>,
    len: usize,
}

impl Frozen {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements, head to tail.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.chunks.iter().flat_map(|c| c.elems().map(|(_, d)| d))
    }
}

/// Elements of a list in order; see [`List::range`].
pub struct Iter<'a> {
    chunks: Chunks<'a>,
    /// Front cursor: chunk, its bytes, and the offset of the next element.
    fc: usize,
    f: &'a [u8],
    fpos: usize,
    /// Back cursor: chunk, its bytes and first element, and the offset just past the next
    /// element from the back.
    bc: usize,
    b: &'a [u8],
    bhead: usize,
    bpos: usize,
    left: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        if self.fpos >= self.f.len() {
            self.fc += 1;
            let c = self.chunks.get(self.fc);
            self.f = c.buf();
            self.fpos = c.head();
        }
        let (s, e, next) = read_fwd(self.f, self.fpos);
        self.fpos = next;
        self.left -= 1;
        Some(&self.f[s..e])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        if self.bpos <= self.bhead {
            self.bc -= 1;
            let c = self.chunks.get(self.bc);
            self.b = c.buf();
            self.bhead = c.head();
            self.bpos = c.len();
        }
        let (start, s, e) = read_back(self.b, self.bpos);
        self.bpos = start;
        self.left -= 1;
        Some(&self.b[s..e])
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a List {
    type Item = &'a [u8];
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<T: AsRef<[u8]>> FromIterator<T> for List {
    /// Builds a list from its elements in order (snapshot loading).
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> List {
        let mut list = List::new();
        for e in iter {
            list.push_back(e.as_ref());
        }
        list
    }
}

/// Lists are equal when they hold the same elements in the same order, however chunked.
impl PartialEq for List {
    fn eq(&self, other: &List) -> bool {
        self.len() == other.len() && self.size() == other.size() && self.iter().eq(other.iter())
    }
}

impl Eq for List {}

impl fmt::Debug for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|e| String::from_utf8_lossy(e))).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::chunk::write_elem;
    use super::*;

    fn elem(rng: &mut fastrand::Rng) -> Vec<u8> {
        let len = match rng.u8(..20) {
            0 => rng.usize(100..3000),
            1 => rng.usize(8000..9000),
            2 => 0,
            _ => rng.usize(1..70),
        };
        (0..len).map(|_| rng.u8(b'a'..=b'd')).collect()
    }

    #[test]
    fn encoding_round_trips_at_varint_boundaries() {
        for len in [0, 1, 125, 126, 127, 128, 129, 16381, 16382, 16383, 16384, 16385, 70000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut buf = vec![0; encoded_len(len)];
            write_elem(&mut buf, &data);
            let (s, e, next) = read_fwd(&buf, 0);
            assert_eq!((&buf[s..e], next), (&data[..], buf.len()), "{len}");
            let (start, s, e) = read_back(&buf, buf.len());
            assert_eq!((start, &buf[s..e]), (0, &data[..]), "{len}");
        }
        assert_eq!(encoded_len(64), 66);
    }

    #[test]
    fn pushes_and_pops_at_both_ends() {
        let mut l = List::new();
        for i in 0..1000 {
            l.push_back(format!("r{i}{}", "-".repeat(20)).as_bytes());
            l.push_front(format!("l{i}").as_bytes());
        }
        l.check();
        assert_eq!(l.len(), 2000);
        assert_eq!(l.front(), Some(&b"l999"[..]));
        assert_eq!(l.back(), Some(format!("r999{}", "-".repeat(20)).as_bytes()));
        assert_eq!(l.get(999), Some(&b"l0"[..]));
        assert_eq!(l.get(1000), Some(format!("r0{}", "-".repeat(20)).as_bytes()));
        assert_eq!(l.pop_front().as_deref(), Some(&b"l999"[..]));
        assert_eq!(l.pop_back(), Some(format!("r999{}", "-".repeat(20)).into_bytes()));
        assert_eq!(l.iter().next_back(), Some(format!("r998{}", "-".repeat(20)).as_bytes()));
        l.check();
        assert!(l.chunk_count() > 1);
    }

    #[test]
    #[cfg_attr(miri, ignore = "200,000 pushes: too slow under Miri")]
    fn a_big_list_costs_about_its_encoded_bytes() {
        let mut l = List::new();
        let v = [b'x'; 64];
        for _ in 0..100_000 {
            l.push_back(&v);
        }
        let per = l.allocated() as f64 / 100_000.0;
        assert!(per < 67.0, "{per} bytes per 64-byte element");
        let mut l = List::new();
        for _ in 0..100_000 {
            l.push_front(&v);
        }
        let per = l.allocated() as f64 / 100_000.0;
        assert!(per < 67.0, "{per} bytes per 64-byte element (pushed at the head)");
        for _ in 0..99_990 {
            l.drop_back_one();
        }
        // A chunk gives memory back each time it is down to a quarter.
        assert!(l.allocated() < 4 * 10 * 66 + 400, "{} bytes kept for 10 elements", l.allocated());
    }

    /// A snapshot's image of a big list keeps its elements exactly, and writes after the
    /// freeze (at both ends, in the middle) copy only the chunks they change.
    #[test]
    #[cfg_attr(miri, ignore = "100,000 elements: too slow under Miri")]
    fn a_frozen_list_keeps_its_elements_and_writes_copy_only_their_chunks() {
        let mut l: List = (0..100_000).map(|i| format!("element:{i}")).collect();
        let before: Vec<Vec<u8>> = l.iter().map(<[u8]>::to_vec).collect();
        assert!(["a", "b"].into_iter().collect::<List>().freeze().is_none(), "a small list is encoded at once");
        let frozen = l.freeze().expect("a big list freezes");
        let chunks = l.chunk_count();
        l.push_front(b"new");
        l.drop_back_one();
        l.set(50_000, b"changed");
        l.insert(70_000, b"inserted");
        l.remove(b"element:30000", 0, false);
        let copied = l.as_big().expect("a big list").chunks.iter().filter(|c| !c.is_shared()).count();
        assert!(copied <= 8, "{copied} of {chunks} chunks copied");
        let image: Vec<Vec<u8>> = frozen.iter().map(<[u8]>::to_vec).collect();
        assert_eq!(image, before);
        assert_eq!(frozen.len(), before.len());
        drop(frozen);
        assert_eq!(l.get(49_999), Some(&b"changed"[..]), "set at 50000, then one removed before it");
        assert_eq!(l.len(), before.len());
        l.check();
    }

    #[test]
    fn a_list_is_one_pointer_and_a_small_one_one_block() {
        assert_eq!(size_of::<List>(), 8);
        assert_eq!(size_of::<Option<List>>(), 8);
        assert_eq!(size_of::<crate::Value>(), 16);
        assert_eq!(List::new().allocated(), 0, "an empty list allocates nothing");
        // 100 elements of 64 bytes: 6,600 encoded bytes and the header in one 7 KB block.
        let l: List = (0..100).map(|_| [b'x'; 64]).collect();
        assert!(!l.is_big());
        assert_eq!(l.allocated(), 7168);
        // Pushed at the head, the same block: the room a push in front needs goes in front.
        let mut l = List::new();
        for _ in 0..100 {
            l.push_front(&[b'x'; 64]);
        }
        assert_eq!(l.allocated(), 7168);
        // One element: a 66-byte element and the header.
        let l: List = [[b'x'; 64]].into_iter().collect();
        assert_eq!(l.allocated(), 112);
    }

    /// A chunk past the first grows with its elements, at either end: a list that has just
    /// filled a chunk does not hold a second one, nearly empty, of 16 KB.
    #[test]
    fn a_new_chunk_grows_with_its_elements() {
        let per_chunk = CHUNK_BYTES / 66;
        for front in [false, true] {
            let mut l = List::new();
            for _ in 0..per_chunk + 3 {
                if front {
                    l.push_front(&[b'x'; 64]);
                } else {
                    l.push_back(&[b'x'; 64]);
                }
            }
            assert_eq!(l.chunk_count(), 2);
            let full = 16384;
            assert!(l.allocated() < full + 512, "{} bytes for a chunk and 3 elements (front: {front})", l.allocated());
            l.check();
        }
    }

    /// A queue (pushes at one end, pops at the other) keeps the block its content was built in:
    /// the chunk slides its elements to one end rather than grow (and never past a chunk).
    #[test]
    fn a_queue_stays_in_the_block_of_its_content() {
        let per_chunk = CHUNK_BYTES / 66;
        for (held, block) in [(100, 7168), (per_chunk - 20, 16384), (per_chunk - 2, 16384)] {
            for at_head in [false, true] {
                let mut l = List::new();
                for _ in 0..held {
                    l.push_back(&[b'x'; 64]);
                }
                let mut most = 0;
                for _ in 0..10 * per_chunk {
                    if at_head {
                        l.drop_back_one();
                        l.push_front(&[b'x'; 64]);
                    } else {
                        l.drop_front_one();
                        l.push_back(&[b'x'; 64]);
                    }
                    most = most.max(l.allocated());
                }
                assert_eq!(l.len(), held);
                assert!(most <= block, "{most} bytes for a queue of {held} elements (at the head: {at_head})");
                l.check();
            }
        }
    }

    /// A list grows into a big one past a chunk's bytes or elements, and shrinks back to a
    /// small one at half of either; its elements stay as they were throughout.
    #[test]
    fn a_list_changes_form_at_a_chunk_and_back_at_half() {
        // By bytes: 64-byte elements, 247 to a chunk.
        let mut l = List::new();
        let per_chunk = CHUNK_BYTES / 66;
        for i in 0..per_chunk {
            l.push_back(format!("{i:064}").as_bytes());
        }
        assert!(!l.is_big(), "a full chunk is still small");
        l.push_front(&[b'f'; 64]);
        assert!(l.is_big());
        assert_eq!(l.chunk_count(), 2);
        l.check();
        l.drop_front_one();
        assert!(l.is_big(), "a whole chunk is more than half of one");
        l.drop_back(per_chunk / 2 + 1);
        assert!(!l.is_big(), "down to half a chunk");
        assert_eq!(l.front(), Some(format!("{:064}", 0).as_bytes()));
        assert_eq!(l.len(), per_chunk - per_chunk / 2 - 1);
        l.check();

        // By elements: empty strings, two bytes each.
        let mut l = List::new();
        for _ in 0..dense::CHUNK {
            l.push_back(b"");
        }
        assert!(!l.is_big());
        assert!(!l.wants_freezing(), "a small list is encoded at once");
        l.push_back(b"");
        assert!(l.is_big());
        assert!(l.wants_freezing(), "past a chunk of elements, a snapshot freezes it");
        assert!(l.freeze().is_some());
        l.drop_front(dense::CHUNK / 2);
        assert!(l.is_big(), "a chunk a snapshot may still hold stays in the big list");
        l.drop_front_one();
        assert!(!l.is_big());
        l.check();

        // An element bigger than a chunk makes a big list of its own; LSET past a chunk splits.
        let mut l: List = ["a", "b"].into_iter().collect();
        l.set(1, &[b'y'; CHUNK_BYTES]);
        assert!(l.is_big());
        assert_eq!(l.chunk_count(), 2);
        l.check();
        l.set(1, b"c");
        assert!(!l.is_big());
        assert_eq!(l.iter().collect::<Vec<_>>(), [&b"a"[..], b"c"]);
        l.check();
        let mut l: List = ["a"].into_iter().collect();
        l.insert(1, &[b'z'; CHUNK_BYTES + 100]);
        l.check();
        assert_eq!(l.remove(&[b'z'; CHUNK_BYTES + 100], 0, false), 1);
        assert!(!l.is_big());
        assert_eq!(l.len(), 1);
        l.check();
        assert_eq!(l.remove(b"a", 1, true), 1);
        assert!(l.is_empty());
        assert_eq!(l.allocated(), 0, "an emptied list keeps no block");
    }

    #[test]
    fn random_operations_agree_with_a_model() {
        let mut rng = fastrand::Rng::with_seed(11);
        for round in 0..if cfg!(miri) { 4 } else { 20 } {
            let mut list = List::new();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            // Under Miri (`cargo +nightly miri test -p magpie-store list::tests`), a shorter run.
            let ops = if cfg!(miri) {
                120
            } else if round < 3 {
                20_000
            } else {
                2_000
            };
            for step in 0..ops {
                let op = rng.u8(..14);
                match op {
                    0 | 1 => {
                        let e = elem(&mut rng);
                        list.push_back(&e);
                        model.push_back(e);
                    }
                    2 | 3 => {
                        let e = elem(&mut rng);
                        list.push_front(&e);
                        model.push_front(e);
                    }
                    4 => assert_eq!(list.pop_front(), model.pop_front()),
                    5 => assert_eq!(list.pop_back(), model.pop_back()),
                    6 if !model.is_empty() => {
                        let i = rng.usize(..model.len());
                        let e = elem(&mut rng);
                        assert!(list.set(i, &e));
                        model[i] = e;
                    }
                    7 => {
                        let i = rng.usize(..=model.len());
                        let e = elem(&mut rng);
                        list.insert(i, &e);
                        model.insert(i, e);
                    }
                    8 if !model.is_empty() => {
                        let target = model[rng.usize(..model.len())].clone();
                        let limit = rng.usize(..3);
                        let from_tail = rng.bool();
                        let got = list.remove(&target, limit, from_tail);
                        let mut want = 0;
                        let mut kept: Vec<Vec<u8>> = Vec::new();
                        let items: Vec<Vec<u8>> = if from_tail {
                            model.iter().rev().cloned().collect()
                        } else {
                            model.iter().cloned().collect()
                        };
                        for e in items {
                            if e == target && (limit == 0 || want < limit) {
                                want += 1;
                            } else {
                                kept.push(e);
                            }
                        }
                        if from_tail {
                            kept.reverse();
                        }
                        model = kept.into();
                        assert_eq!(got, want);
                    }
                    9 => {
                        let n = rng.usize(..5);
                        list.drop_front(n);
                        for _ in 0..n {
                            model.pop_front();
                        }
                        let n = rng.usize(..5);
                        list.drop_back(n);
                        for _ in 0..n {
                            model.pop_back();
                        }
                    }
                    10 if !model.is_empty() => {
                        let i = rng.usize(..model.len());
                        assert_eq!(list.get(i), Some(&model[i][..]));
                    }
                    11 => {
                        let a = rng.usize(..=model.len() + 2);
                        let b = rng.usize(..=model.len() + 2);
                        let got: Vec<&[u8]> = list.range(a, b).collect();
                        let want: Vec<&[u8]> =
                            model.iter().skip(a).take(b.saturating_sub(a)).map(Vec::as_slice).collect();
                        assert_eq!(got, want);
                        let got: Vec<&[u8]> = list.range(a, b).rev().collect();
                        let want: Vec<&[u8]> = want.into_iter().rev().collect();
                        assert_eq!(got, want);
                    }
                    _ => {
                        let e = [b'z'; 30];
                        list.push_back(&e);
                        model.push_back(e.to_vec());
                    }
                }
                if step % 97 == 0 || round >= 3 {
                    list.check();
                    assert!(list.iter().eq(model.iter().map(Vec::as_slice)), "round {round} step {step}");
                    assert_eq!(list.size(), model.iter().map(Vec::len).sum::<usize>());
                }
            }
            list.check();
            let copy: List = model.iter().collect();
            assert_eq!(copy, list);
            assert_eq!(list.clone(), list);
        }
    }
}
