//! Lists: a deque of packed chunks, as Redis's quicklist of listpacks.
//!
//! A list is a `VecDeque` of chunks of at most [`CHUNK_BYTES`] bytes (16 KB: Redis's
//! `list-max-listpack-size -3`; Redis's default is 8 KB nodes, but with mimalloc 16 KB blocks
//! cost about 1 byte less per element). A chunk is one `Vec<u8>` holding its elements
//! back to back, each encoded as
//!
//! ```text
//! | len: LEB128 varint | data: len bytes | backlen: reverse varint of (varint + len) |
//! ```
//!
//! so it can be walked from either end, like a listpack (a 64-byte element takes 66 bytes,
//! where a listpack takes 67). Only a single element larger than a chunk gets a chunk of its
//! own. The chunk keeps a gap in front of its first element (`head`), so pushing and popping
//! at the head are O(1) amortised like at the tail, where a listpack moves its whole content.
//! Buffers grow a size class of the allocator at a time (a seventh to a quarter, never
//! doubling), so a full chunk wastes less than one element; a chunk that shrinks to a quarter
//! of its buffer gives the rest back.
//!
//! Chunks are [`Shared`]: a snapshot freezes them ([`List::freeze`]: O(chunks), no element
//! copied) and encodes them on its own thread, and a write copies only the chunk it changes
//! (16 KB at most) while the snapshot still holds it.
//!
//! Costs: push and pop at either end O(1) amortised; index O(n / 250) chunk hops plus a walk
//! within one chunk; iteration sequential. Elements are kept as bytes, so `size()` (the sum of
//! their lengths) is what STRLEN would say of each.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use crate::dense::Shared;
use crate::sizes::alloc_class;

/// Most bytes of encoded elements in one chunk (as Redis's listpack nodes, at 16 KB).
pub const CHUNK_BYTES: usize = 16384;

/// One run of encoded elements: `buf[head..]`, `count` of them.
#[derive(Clone, Default)]
struct Chunk {
    buf: Vec<u8>,
    head: usize,
    count: usize,
}

/// A list of byte strings.
#[derive(Clone, Default)]
pub struct List {
    chunks: VecDeque<Shared<Chunk>>,
    len: usize,
    bytes: usize,
}

// ---------------------------------------------------------------------------------------------
// Element encoding

/// Bytes taken by `n` as a varint (7 bits a byte).
#[inline]
fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - (n | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

/// Bytes taken by an element of `len` data bytes.
#[inline]
fn encoded_len(len: usize) -> usize {
    let front = varint_len(len) + len;
    front + varint_len(front)
}

/// Writes `data` encoded into `dst`, which is exactly `encoded_len(data.len())` long.
fn write_elem(dst: &mut [u8], data: &[u8]) {
    let mut n = data.len();
    let mut p = 0;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            dst[p] = b;
            p += 1;
            break;
        }
        dst[p] = b | 0x80;
        p += 1;
    }
    dst[p..p + data.len()].copy_from_slice(data);
    p += data.len();
    // Backlen, read from the end: the last byte holds the low 7 bits, 0x80 marks more before.
    let front = p;
    let k = varint_len(front);
    for i in 0..k {
        let b = ((front >> (7 * i)) & 0x7f) as u8;
        let more = if i + 1 < k { 0x80 } else { 0 };
        dst[p + k - 1 - i] = b | more;
    }
}

/// The element starting at `pos`: (data start, data end, start of the next element).
#[inline]
fn read_fwd(buf: &[u8], pos: usize) -> (usize, usize, usize) {
    let (mut n, mut shift, mut p) = (0usize, 0, pos);
    loop {
        let b = buf[p];
        n |= usize::from(b & 0x7f) << shift;
        p += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let end = p + n;
    (p, end, end + varint_len(end - pos))
}

/// The element ending at `end`: (its start, data start, data end).
#[inline]
fn read_back(buf: &[u8], end: usize) -> (usize, usize, usize) {
    let (mut front, mut shift, mut p) = (0usize, 0, end);
    loop {
        p -= 1;
        let b = buf[p];
        front |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let start = p - front;
    let (ds, de, _) = read_fwd(buf, start);
    (start, ds, de)
}

// ---------------------------------------------------------------------------------------------
// Chunks

impl Chunk {
    fn used(&self) -> usize {
        self.buf.len() - self.head
    }

    fn elems(&self) -> ChunkIter<'_> {
        ChunkIter { buf: &self.buf, pos: self.head, end: self.buf.len() }
    }

    /// Makes room for `need` more bytes at the tail, growing a size class at a time.
    fn reserve_back(&mut self, need: usize) {
        if self.buf.capacity() - self.buf.len() >= need {
            return;
        }
        if self.head >= need.max(self.used() / 2) {
            // Plenty of room at the front: slide the content there instead.
            self.buf.copy_within(self.head.., 0);
            self.buf.truncate(self.used());
            self.head = 0;
            return;
        }
        // To the allocator's next size class: classes are a seventh to a quarter apart, so the
        // buffer still grows geometrically, and its capacity is its whole block (a capacity a
        // quarter up from any length could pass a class by a little and take a block a
        // quarter bigger: 100 elements of 64 bytes, 6.6 KB, sat in 10 KB blocks).
        let len = self.buf.len();
        let target = alloc_class(len + need).min(CHUNK_BYTES + self.head).max(len + need);
        self.buf.reserve_exact(target - len);
    }

    /// Makes room for `need` more bytes in front of the first element.
    fn reserve_front(&mut self, need: usize) {
        if self.head >= need {
            return;
        }
        let used = self.used();
        let gap = need.max(used / 4).min(CHUNK_BYTES.saturating_sub(used).max(need));
        let mut buf = Vec::with_capacity(alloc_class(gap + used));
        buf.resize(gap, 0);
        buf.extend_from_slice(&self.buf[self.head..]);
        self.buf = buf;
        self.head = gap;
    }

    fn push_back(&mut self, data: &[u8]) {
        let n = encoded_len(data.len());
        self.reserve_back(n);
        let at = self.buf.len();
        self.buf.resize(at + n, 0);
        write_elem(&mut self.buf[at..], data);
        self.count += 1;
    }

    fn push_front(&mut self, data: &[u8]) {
        let n = encoded_len(data.len());
        self.reserve_front(n);
        self.head -= n;
        let at = self.head;
        write_elem(&mut self.buf[at..at + n], data);
        self.count += 1;
    }

    fn front(&self) -> &[u8] {
        let (s, e, _) = read_fwd(&self.buf, self.head);
        &self.buf[s..e]
    }

    fn back(&self) -> &[u8] {
        let (_, s, e) = read_back(&self.buf, self.buf.len());
        &self.buf[s..e]
    }

    /// Removes the first element, returning its data length.
    fn pop_front(&mut self) -> usize {
        let (s, e, next) = read_fwd(&self.buf, self.head);
        self.head = next;
        self.count -= 1;
        self.after_shrink();
        e - s
    }

    /// Removes the last element, returning its data length.
    fn pop_back(&mut self) -> usize {
        let (start, s, e) = read_back(&self.buf, self.buf.len());
        self.buf.truncate(start);
        self.count -= 1;
        self.after_shrink();
        e - s
    }

    /// Gives memory back when the content is down to a quarter of the buffer.
    fn after_shrink(&mut self) {
        if self.count == 0 {
            self.buf = Vec::new();
            self.head = 0;
            return;
        }
        let used = self.used();
        if self.buf.capacity() > 256 && used * 4 < self.buf.capacity() {
            self.buf.copy_within(self.head.., 0);
            self.buf.truncate(used);
            self.head = 0;
            self.buf.shrink_to(used + used / 4);
        }
    }

    /// Byte offset of element `i` (< count), walking from the nearer end.
    fn offset(&self, i: usize) -> usize {
        if i <= self.count / 2 {
            let mut pos = self.head;
            for _ in 0..i {
                pos = read_fwd(&self.buf, pos).2;
            }
            pos
        } else {
            let mut end = self.buf.len();
            let mut start = end;
            for _ in i..self.count {
                start = read_back(&self.buf, end).0;
                end = start;
            }
            start
        }
    }

    /// Replaces the bytes `range` of the buffer with `with` (encoded elements).
    fn splice(&mut self, range: std::ops::Range<usize>, with: &[u8]) {
        // Offsets from the first element: `reserve_back` may slide the content to the front.
        let (from, to) = (range.start - self.head, range.end - self.head);
        let grow = with.len().saturating_sub(to - from);
        if grow > 0 {
            self.reserve_back(grow);
        }
        let h = self.head;
        self.buf.splice(h + from..h + to, with.iter().copied());
    }
}

/// Elements of one chunk, front to back.
struct ChunkIter<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Iterator for ChunkIter<'a> {
    /// (element start, data)
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        let (s, e, next) = read_fwd(self.buf, self.pos);
        let at = self.pos;
        self.pos = next;
        Some((at, &self.buf[s..e]))
    }
}

// ---------------------------------------------------------------------------------------------
// The list

impl List {
    pub fn new() -> List {
        List::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of user data held (sum of the elements' lengths), O(1).
    pub fn size(&self) -> usize {
        self.bytes
    }

    /// Redis 7.0's OBJECT ENCODING for lists: always `quicklist` (7.0 keeps even a one-element
    /// list in a quicklist of one listpack node; the `listpack` encoding came in 7.2).
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Chunks in use (for tests and memory reports).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Bytes of heap the list holds: chunk buffers and the chunk table.
    pub fn allocated(&self) -> usize {
        self.chunks.iter().map(|c| c.buf.capacity()).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Shared<Chunk>>()
    }

    pub fn push_back(&mut self, data: &[u8]) {
        let n = encoded_len(data.len());
        match self.chunks.back_mut() {
            Some(c) if c.used() + n <= CHUNK_BYTES => c.make_mut().push_back(data),
            _ => {
                // A list that fills a chunk is likely to fill the next: give it a whole one
                // at once (no growing copies); a first chunk starts at its first element.
                let mut c = Chunk::default();
                c.buf.reserve_exact(if self.chunks.is_empty() { n } else { n.max(CHUNK_BYTES) });
                c.push_back(data);
                self.push_chunk_back(c);
            }
        }
        self.len += 1;
        self.bytes += data.len();
    }

    pub fn push_front(&mut self, data: &[u8]) {
        let n = encoded_len(data.len());
        match self.chunks.front_mut() {
            Some(c) if c.used() + n <= CHUNK_BYTES => c.make_mut().push_front(data),
            _ => {
                let mut c = Chunk::default();
                if self.chunks.is_empty() {
                    c.buf.reserve_exact(n);
                    self.chunks.reserve_exact(1);
                } else {
                    // A whole chunk, filled from its end (see `push_back`).
                    let size = n.max(CHUNK_BYTES);
                    c.buf = Vec::with_capacity(size);
                    c.buf.resize(size - n, 0);
                    c.head = size - n;
                }
                c.push_back(data);
                self.chunks.push_front(Shared::Own(c));
            }
        }
        self.len += 1;
        self.bytes += data.len();
    }

    fn push_chunk_back(&mut self, c: Chunk) {
        if self.chunks.is_empty() {
            // Most lists have one chunk: do not reserve room for four.
            self.chunks.reserve_exact(1);
        }
        self.chunks.push_back(Shared::Own(c));
    }

    pub fn front(&self) -> Option<&[u8]> {
        self.chunks.front().map(|c| c.front())
    }

    pub fn back(&self) -> Option<&[u8]> {
        self.chunks.back().map(|c| c.back())
    }

    /// Removes the first element; false if the list is empty.
    pub fn drop_front_one(&mut self) -> bool {
        let Some(c) = self.chunks.front_mut().map(Shared::make_mut) else { return false };
        self.bytes -= c.pop_front();
        self.len -= 1;
        if c.count == 0 {
            self.chunks.pop_front();
            self.shrink_table();
        }
        true
    }

    /// Removes the last element; false if the list is empty.
    pub fn drop_back_one(&mut self) -> bool {
        let Some(c) = self.chunks.back_mut().map(Shared::make_mut) else { return false };
        self.bytes -= c.pop_back();
        self.len -= 1;
        if c.count == 0 {
            self.chunks.pop_back();
            self.shrink_table();
        }
        true
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

    /// Gives back the chunk table's memory when it is down to a quarter of its capacity.
    fn shrink_table(&mut self) {
        let (len, cap) = (self.chunks.len(), self.chunks.capacity());
        if cap > 8 && len * 4 < cap {
            self.chunks.shrink_to(len * 2);
        }
    }

    /// Removes the first `n` elements (all if there are fewer), whole chunks at a time.
    pub fn drop_front(&mut self, n: usize) {
        self.drop_end(n, true);
    }

    /// Removes the last `n` elements (all if there are fewer).
    pub fn drop_back(&mut self, n: usize) {
        self.drop_end(n, false);
    }

    fn drop_end(&mut self, mut n: usize, front: bool) {
        while n > 0 {
            let c = if front { self.chunks.front() } else { self.chunks.back() };
            let Some(c) = c else { return };
            if c.count > n {
                for _ in 0..n {
                    if front {
                        self.drop_front_one()
                    } else {
                        self.drop_back_one()
                    };
                }
                return;
            }
            let bytes: usize = c.elems().map(|(_, d)| d.len()).sum();
            n -= c.count;
            self.len -= c.count;
            self.bytes -= bytes;
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
                if left < c.count {
                    return (ci, left);
                }
                left -= c.count;
            }
        } else {
            let mut after = self.len - i; // elements from i to the end
            for (ci, c) in self.chunks.iter().enumerate().rev() {
                if after <= c.count {
                    return (ci, c.count - after);
                }
                after -= c.count;
            }
        }
        unreachable!("index {i} within a list of {}", self.len)
    }

    /// Element `i` (0-based from the head).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len {
            return None;
        }
        let (ci, k) = self.locate(i);
        let c = &self.chunks[ci];
        let (s, e, _) = read_fwd(&c.buf, c.offset(k));
        Some(&c.buf[s..e])
    }

    /// Element `i` counted as Redis does: negative from the tail (-1 is the last).
    pub fn index(&self, i: i64) -> Option<usize> {
        let len = i64::try_from(self.len).ok()?;
        let i = if i < 0 { i.checked_add(len)? } else { i };
        (0..len).contains(&i).then_some(i as usize)
    }

    /// Replaces element `i`; false if out of range.
    pub fn set(&mut self, i: usize, data: &[u8]) -> bool {
        if i >= self.len {
            return false;
        }
        let (ci, k) = self.locate(i);
        let c = self.chunks[ci].make_mut();
        let at = c.offset(k);
        let (s, e, next) = read_fwd(&c.buf, at);
        self.bytes = self.bytes - (e - s) + data.len();
        let mut enc = vec![0; encoded_len(data.len())];
        write_elem(&mut enc, data);
        c.splice(at..next, &enc);
        self.rebalance(ci);
        true
    }

    /// Inserts `data` so that it becomes element `i` (0..=len).
    pub fn insert(&mut self, i: usize, data: &[u8]) {
        if i == 0 {
            return self.push_front(data);
        }
        if i >= self.len {
            return self.push_back(data);
        }
        let (ci, k) = self.locate(i);
        let c = self.chunks[ci].make_mut();
        let at = c.offset(k);
        let mut enc = vec![0; encoded_len(data.len())];
        write_elem(&mut enc, data);
        c.splice(at..at, &enc);
        c.count += 1;
        self.len += 1;
        self.bytes += data.len();
        self.rebalance(ci);
    }

    /// Position of the first element equal to `data`, from the head.
    pub fn position(&self, data: &[u8]) -> Option<usize> {
        self.iter().position(|e| e == data)
    }

    /// Removes up to `limit` elements equal to `data` (0: all), from the head or from the
    /// tail, as LREM does. Returns how many were removed.
    pub fn remove(&mut self, data: &[u8], limit: usize, from_tail: bool) -> usize {
        let mut removed = 0;
        let order: Vec<usize> =
            if from_tail { (0..self.chunks.len()).rev().collect() } else { (0..self.chunks.len()).collect() };
        let mut touched = Vec::new();
        for ci in order {
            if limit != 0 && removed == limit {
                break;
            }
            let mut hits: Vec<(usize, usize)> = self.chunks[ci]
                .elems()
                .filter(|(_, d)| *d == data)
                .map(|(at, d)| (at, at + encoded_len(d.len())))
                .collect();
            if hits.is_empty() {
                continue;
            }
            let c = self.chunks[ci].make_mut();
            if limit != 0 {
                let room = limit - removed;
                if hits.len() > room {
                    if from_tail {
                        hits.drain(..hits.len() - room);
                    } else {
                        hits.truncate(room);
                    }
                }
            }
            // Compact the chunk over the removed elements, back to front.
            for &(s, e) in hits.iter().rev() {
                c.buf.copy_within(e.., s);
                let new_len = c.buf.len() - (e - s);
                c.buf.truncate(new_len);
            }
            c.count -= hits.len();
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
        if self.chunks[ci].count == 0 {
            self.chunks.remove(ci);
            return;
        }
        let c = self.chunks[ci].make_mut();
        if c.used() > CHUNK_BYTES && c.count > 1 {
            // Split at the first element boundary past the middle.
            let half = c.used() / 2;
            let mut split = None;
            for (at, _) in c.elems() {
                if at - c.head >= half {
                    split = Some(at);
                    break;
                }
            }
            // No boundary past the middle: the last element is big; it goes alone.
            let at = split.unwrap_or_else(|| c.offset(c.count - 1));
            let moved = c.elems().filter(|(p, _)| *p >= at).count();
            let mut right = Chunk::default();
            right.buf.reserve_exact(c.buf.len() - at);
            right.buf.extend_from_slice(&c.buf[at..]);
            right.count = moved;
            c.buf.truncate(at);
            c.count -= moved;
            c.after_shrink();
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
        let left = self.chunks[ci].make_mut();
        left.reserve_back(right.used());
        left.buf.extend_from_slice(&right.buf[right.head..]);
        left.count += right.count;
    }

    /// All elements, head to tail (reversible with `.rev()`).
    pub fn iter(&self) -> Iter<'_> {
        self.range(0, self.len)
    }

    /// Elements `start..end` (clamped to the list), head to tail; `.rev()` walks them from
    /// `end - 1` back to `start`.
    pub fn range(&self, start: usize, end: usize) -> Iter<'_> {
        let end = end.min(self.len);
        if start >= end {
            return Iter { list: self, fc: 0, fpos: 0, bc: 0, bpos: 0, left: 0 };
        }
        let (fc, fk) = self.locate(start);
        let fpos = self.chunks[fc].offset(fk);
        let (bc, bpos) = if end == self.len {
            let last = self.chunks.len() - 1;
            (last, self.chunks[last].buf.len())
        } else {
            let (bc, bk) = self.locate(end);
            (bc, self.chunks[bc].offset(bk))
        };
        Iter { list: self, fc, fpos, bc, bpos, left: end - start }
    }

    /// Checks the internal invariants (for tests).
    #[cfg(test)]
    fn check(&self) {
        let mut n = 0;
        let mut bytes = 0;
        for c in &self.chunks {
            assert!(c.count > 0, "empty chunk kept");
            assert_eq!(c.elems().count(), c.count);
            assert!(c.used() <= CHUNK_BYTES || c.count == 1, "chunk of {} bytes", c.used());
            n += c.count;
            bytes += c.elems().map(|(_, d)| d.len()).sum::<usize>();
            // Walking back gives the same elements.
            let mut end = c.buf.len();
            let mut back = Vec::new();
            while end > c.head {
                let (start, s, e) = read_back(&c.buf, end);
                back.push(&c.buf[s..e]);
                end = start;
            }
            back.reverse();
            assert!(back.iter().copied().eq(c.elems().map(|(_, d)| d)));
        }
        assert_eq!(n, self.len);
        assert_eq!(bytes, self.bytes);
    }
}

impl List {
    /// The image of this list a snapshot writes, when the list is too big to encode under the
    /// shard's lock: its chunks, shared (O(chunks), no element copied). A write that follows
    /// copies only the chunk it changes, while the image is alive. `None` for a list small
    /// enough to encode at once.
    pub fn freeze(&mut self) -> Option<Frozen> {
        self.wants_freezing()
            .then(|| Frozen { chunks: self.chunks.iter_mut().map(Shared::freeze).collect(), len: self.len })
    }

    /// Whether [`List::freeze`] gives an image.
    pub fn wants_freezing(&self) -> bool {
        crate::dense::worth_freezing(self.len, self.bytes)
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
    list: &'a List,
    /// Front cursor: chunk and byte offset of the next element.
    fc: usize,
    fpos: usize,
    /// Back cursor: chunk and byte offset just past the next element from the back.
    bc: usize,
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
        let mut c = &self.list.chunks[self.fc];
        if self.fpos >= c.buf.len() {
            self.fc += 1;
            c = &self.list.chunks[self.fc];
            self.fpos = c.head;
        }
        let (s, e, next) = read_fwd(&c.buf, self.fpos);
        self.fpos = next;
        self.left -= 1;
        Some(&c.buf[s..e])
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
        let mut c = &self.list.chunks[self.bc];
        if self.bpos <= c.head {
            self.bc -= 1;
            c = &self.list.chunks[self.bc];
            self.bpos = c.buf.len();
        }
        let (start, s, e) = read_back(&c.buf, self.bpos);
        self.bpos = start;
        self.left -= 1;
        Some(&c.buf[s..e])
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
        self.len == other.len && self.bytes == other.bytes && self.iter().eq(other.iter())
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
        let copied = l.chunks.iter().filter(|c| !c.is_shared()).count();
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
    fn random_operations_agree_with_a_model() {
        let mut rng = fastrand::Rng::with_seed(11);
        for round in 0..20 {
            let mut list = List::new();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let ops = if round < 3 { 20_000 } else { 2_000 };
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
