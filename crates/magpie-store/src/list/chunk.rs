//! One chunk of a list: its elements back to back in one allocation that starts with the
//! chunk's header, so a chunk is one pointer, and a list of one chunk is that pointer alone
//! (see the list's notes).
//!
//! ```text
//! | cap | len | head | count | bytes | gap (head bytes) | elements ... | room (cap - len) |
//! <------ HDR: five words, 40 bytes ---><------------------ cap bytes ------------------->
//! ```
//!
//! Each element is encoded as
//!
//! ```text
//! | len: LEB128 varint | data: len bytes | backlen: reverse varint of (varint + len) |
//! ```
//!
//! so a chunk can be walked from either end, like a listpack (a 64-byte element takes 66 bytes,
//! where a listpack takes 67). The gap in front of the first element (`head`) makes pushing and
//! popping at the head O(1) amortised like at the tail, where a listpack moves its whole
//! content. Buffers grow a size class of the allocator at a time (a seventh to a quarter, never
//! doubling), the header counted, so a full chunk wastes less than one element; a chunk that
//! shrinks to a quarter of its buffer gives the rest back.
//!
//! An empty chunk allocates nothing: it points at a shared, never written, all-zero header.
//! The unsafe code is the allocation, the views of the bytes and the moves within them; every
//! byte below `len` is initialised (zeroed before an element is written over it).
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::ptr::{self, NonNull};

use crate::sizes::alloc_class;

/// Most bytes of encoded elements in one chunk: with its header, a full chunk is a 16 KB block
/// (Redis's `list-max-listpack-size -3`; its default is 8 KB nodes, but with mimalloc 16 KB
/// blocks cost about 1 byte less per element).
pub const CHUNK_BYTES: usize = 16384 - HDR;

/// The header in front of a chunk's bytes.
#[repr(C)]
struct Hdr {
    /// Bytes after the header.
    cap: usize,
    /// Bytes in use after the header: the gap, then the elements.
    len: usize,
    /// Where the first element starts.
    head: usize,
    /// Elements held.
    count: usize,
    /// The sum of the elements' data lengths.
    bytes: usize,
}

/// Bytes of [`Hdr`]: the elements start this far into the allocation.
const HDR: usize = size_of::<Hdr>();

/// The header of every empty chunk (`cap` 0): read, never written, never freed.
static EMPTY: Hdr = Hdr { cap: 0, len: 0, head: 0, count: 0, bytes: 0 };

/// One run of encoded elements (see the module's notes). `repr(transparent)`: a list of one
/// chunk is the chunk's pointer (see [`super::List`]).
#[repr(transparent)]
pub(super) struct Chunk {
    hdr: NonNull<Hdr>,
}

// SAFETY: a `Chunk` owns its allocation as a `Box` does (the shared empty header is never
// written), and shares nothing.
unsafe impl Send for Chunk {}
// SAFETY: as above; `&Chunk` only reads.
unsafe impl Sync for Chunk {}

fn layout(cap: usize) -> Layout {
    let size = HDR.checked_add(cap).expect("list chunk size overflows");
    Layout::from_size_align(size, align_of::<Hdr>()).expect("list chunk size overflows")
}

impl Default for Chunk {
    fn default() -> Chunk {
        Chunk::new()
    }
}

impl Chunk {
    /// An empty chunk: no allocation.
    pub(super) fn new() -> Chunk {
        Chunk { hdr: NonNull::from(&EMPTY) }
    }

    /// An empty chunk with room for `cap` bytes (exactly: callers pick the size class).
    pub(super) fn with_capacity(cap: usize) -> Chunk {
        let mut c = Chunk::new();
        if cap > 0 {
            c.set_capacity(cap);
        }
        c
    }

    /// The chunk as its pointer, for a list of one chunk to hold; [`Chunk::from_raw`] takes it
    /// back.
    pub(super) fn into_raw(self) -> NonNull<()> {
        std::mem::ManuallyDrop::new(self).hdr.cast()
    }

    /// The chunk [`Chunk::into_raw`] gave.
    ///
    /// # Safety
    /// `p` came from `into_raw`, and is taken back once.
    pub(super) unsafe fn from_raw(p: NonNull<()>) -> Chunk {
        Chunk { hdr: p.cast() }
    }

    /// A chunk holding a copy of `elems` (whole encoded elements): `count` of them, of `bytes`
    /// data bytes in all.
    pub(super) fn from_encoded(elems: &[u8], count: usize, bytes: usize) -> Chunk {
        let mut c = Chunk::with_capacity(elems.len());
        c.append_encoded(elems, count, bytes);
        c
    }

    #[inline]
    fn hdr(&self) -> &Hdr {
        // SAFETY: `hdr` points at the static empty header or at the start of this chunk's live
        // allocation, which begins with an initialised header.
        unsafe { self.hdr.as_ref() }
    }

    /// The header, for writing: only for a chunk with an allocation.
    #[inline]
    fn hdr_mut(&mut self) -> &mut Hdr {
        assert!(self.hdr().cap > 0, "the empty chunk's header is never written");
        // SAFETY: an allocated header (checked), owned by this chunk; `&mut self` is unique.
        unsafe { self.hdr.as_mut() }
    }

    /// The first byte after the header.
    #[inline]
    fn data(&self) -> *mut u8 {
        // SAFETY: at most one past the end of the header, within (or just past) one object.
        unsafe { self.hdr.as_ptr().cast::<u8>().add(HDR) }
    }

    #[inline]
    pub(super) fn capacity(&self) -> usize {
        self.hdr().cap
    }

    /// Bytes in use: the gap, then the elements (where the last element ends).
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.hdr().len
    }

    /// Where the first element starts.
    #[inline]
    pub(super) fn head(&self) -> usize {
        self.hdr().head
    }

    #[inline]
    pub(super) fn count(&self) -> usize {
        self.hdr().count
    }

    /// The sum of the elements' data lengths.
    #[inline]
    pub(super) fn bytes(&self) -> usize {
        self.hdr().bytes
    }

    /// Bytes of the allocation (0 for an empty chunk).
    pub(super) fn allocated(&self) -> usize {
        if self.capacity() == 0 { 0 } else { HDR + self.capacity() }
    }

    /// The bytes in use: gap and elements.
    #[inline]
    pub(super) fn buf(&self) -> &[u8] {
        // SAFETY: `len` bytes after the header are initialised (for the empty chunk, none: a
        // zero-length slice at an aligned, non-null address).
        unsafe { std::slice::from_raw_parts(self.data(), self.len()) }
    }

    #[inline]
    fn buf_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        // SAFETY: as in `buf`; `&mut self` makes the access unique, and a chunk with bytes in
        // use has its own allocation.
        unsafe { std::slice::from_raw_parts_mut(self.data(), len) }
    }

    /// Moves the bytes in use to an allocation of `cap` (>= len) bytes after the header.
    fn set_capacity(&mut self, cap: usize) {
        let old = self.capacity();
        assert!(cap > 0 && cap >= self.len(), "chunk capacity {cap} below its length {}", self.len());
        let new = layout(cap);
        let p = if old == 0 {
            // SAFETY: `new` has a non-zero size (the header).
            let p = unsafe { alloc::alloc(new) };
            if !p.is_null() {
                // SAFETY: `p` is a fresh block of at least `HDR` bytes, aligned for `Hdr`.
                unsafe { p.cast::<Hdr>().write(Hdr { cap, len: 0, head: 0, count: 0, bytes: 0 }) };
            }
            p
        } else {
            // SAFETY: the block was allocated with `layout(old)`; the new size is non-zero and
            // valid for the alignment (checked by `layout`). Its bytes up to `len` are kept.
            unsafe { alloc::realloc(self.hdr.as_ptr().cast::<u8>(), layout(old), new.size()) }
        };
        let Some(p) = NonNull::new(p.cast::<Hdr>()) else { alloc::handle_alloc_error(new) };
        self.hdr = p;
        self.hdr_mut().cap = cap;
    }

    /// Grows the bytes in use by `n` zeroes at the end (room must be there).
    fn extend_zeroed(&mut self, n: usize) {
        let len = self.len();
        assert!(self.capacity() - len >= n, "no room for {n} bytes");
        if n == 0 {
            return;
        }
        // SAFETY: `len..len + n` is within the allocation (checked just above).
        unsafe { ptr::write_bytes(self.data().add(len), 0, n) };
        self.hdr_mut().len = len + n;
    }

    /// Shortens the bytes in use to `len`.
    fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.hdr_mut().len = len;
        }
    }

    pub(super) fn used(&self) -> usize {
        self.len() - self.head()
    }

    pub(super) fn elems(&self) -> ChunkIter<'_> {
        ChunkIter { buf: self.buf(), pos: self.head(), end: self.len() }
    }

    /// Moves the elements to the start of the buffer (no gap).
    fn slide_to_front(&mut self) {
        let (head, used) = (self.head(), self.used());
        if head > 0 {
            self.buf_mut().copy_within(head.., 0);
            let h = self.hdr_mut();
            h.len = used;
            h.head = 0;
        }
    }

    /// Whether the block has room enough for `need` more bytes that moving the elements to one
    /// end is worth it, rather than a bigger block: room for a sixteenth of the content more,
    /// so that a move copies at most sixteen bytes a byte pushed since the last (or any room
    /// at all once the block is a whole chunk, which does not grow).
    fn slide_pays(&self, need: usize) -> bool {
        let (used, room) = (self.used(), self.capacity() - self.used());
        room >= need + used / 16 || (room >= need && self.capacity() >= CHUNK_BYTES)
    }

    /// The capacity to grow to for `need` more bytes: the allocator's next size class past both
    /// the content and the present block (classes are a seventh to a quarter apart, so a buffer
    /// grows geometrically, and its capacity is its whole block), at most a chunk (more only
    /// for a single big element).
    fn grown(&self, need: usize) -> usize {
        let want = HDR + self.used() + need;
        alloc_class(want.max(HDR + self.capacity() + 1)).min(HDR + CHUNK_BYTES).max(want) - HDR
    }

    /// Makes room for `need` more bytes at the tail: by sliding the elements to the front of the
    /// block when that pays ([`Chunk::slide_pays`]), else in a bigger block. A queue (pushes at
    /// one end, pops at the other) so keeps about the block its content needs. (Sliding only once
    /// the gap in front reached half the content let a queue of 227 64-byte elements, 15 KB,
    /// take a 23 KB block; Redis's listpack moves its whole content on every pop at the head.)
    fn reserve_back(&mut self, need: usize) {
        if self.capacity() - self.len() >= need {
            return;
        }
        if self.slide_pays(need) {
            self.slide_to_front();
        } else if self.head() == 0 {
            self.set_capacity(self.grown(need));
        } else {
            let mut c = Chunk::with_capacity(self.grown(need));
            c.append_encoded(&self.buf()[self.head()..], self.count(), self.bytes());
            *self = c;
        }
    }

    /// Makes room for `need` more bytes in front of the first element, as at the tail: by
    /// sliding the elements to the back of the block, else in a bigger block with all the room
    /// in front. (With a gap of a quarter of the content in front and the class's rounding at
    /// the back, where pushes at the head never reach, 100 elements of 64 bytes built by LPUSH
    /// took 8,328 bytes a list, 1.12x Redis's 7,414.)
    fn reserve_front(&mut self, need: usize) {
        if self.head() >= need {
            return;
        }
        let used = self.used();
        if self.slide_pays(need) {
            let (head, len, total) = (self.head(), self.len(), self.capacity());
            self.extend_zeroed(total - len);
            self.buf_mut().copy_within(head..len, total - used);
            self.hdr_mut().head = total - used;
            return;
        }
        let cap = self.grown(need);
        let mut c = Chunk::with_capacity(cap);
        c.extend_zeroed(cap - used);
        c.hdr_mut().head = cap - used;
        c.append_encoded(&self.buf()[self.head()..], self.count(), self.bytes());
        *self = c;
    }

    /// Appends whole encoded elements: `count` of them, of `bytes` data bytes.
    pub(super) fn append_encoded(&mut self, elems: &[u8], count: usize, bytes: usize) {
        if elems.is_empty() {
            return;
        }
        self.reserve_back(elems.len());
        let at = self.len();
        // SAFETY: `reserve_back` made room for `elems.len()` bytes after `len`; `elems` is
        // not in this chunk (`&mut self`).
        unsafe { ptr::copy_nonoverlapping(elems.as_ptr(), self.data().add(at), elems.len()) };
        let h = self.hdr_mut();
        h.len = at + elems.len();
        h.count += count;
        h.bytes += bytes;
    }

    /// Adds `data` at the head (`front`) or the tail.
    pub(super) fn push(&mut self, data: &[u8], front: bool) {
        if front { self.push_front(data) } else { self.push_back(data) }
    }

    pub(super) fn push_back(&mut self, data: &[u8]) {
        let n = encoded_len(data.len());
        self.reserve_back(n);
        let at = self.len();
        self.extend_zeroed(n);
        write_elem(&mut self.buf_mut()[at..], data);
        let h = self.hdr_mut();
        h.count += 1;
        h.bytes += data.len();
    }

    fn push_front(&mut self, data: &[u8]) {
        let n = encoded_len(data.len());
        self.reserve_front(n);
        let at = self.head() - n;
        write_elem(&mut self.buf_mut()[at..at + n], data);
        let h = self.hdr_mut();
        h.head = at;
        h.count += 1;
        h.bytes += data.len();
    }

    pub(super) fn front(&self) -> &[u8] {
        let (s, e, _) = read_fwd(self.buf(), self.head());
        &self.buf()[s..e]
    }

    pub(super) fn back(&self) -> &[u8] {
        let (_, s, e) = read_back(self.buf(), self.len());
        &self.buf()[s..e]
    }

    /// Removes the first element, returning its data length.
    pub(super) fn pop_front(&mut self) -> usize {
        let (s, e, next) = read_fwd(self.buf(), self.head());
        let h = self.hdr_mut();
        h.head = next;
        h.count -= 1;
        h.bytes -= e - s;
        self.after_shrink();
        e - s
    }

    /// Removes the last element, returning its data length.
    pub(super) fn pop_back(&mut self) -> usize {
        let (start, s, e) = read_back(self.buf(), self.len());
        let h = self.hdr_mut();
        h.len = start;
        h.count -= 1;
        h.bytes -= e - s;
        self.after_shrink();
        e - s
    }

    /// Gives memory back when the content is down to a quarter of the buffer; an empty chunk
    /// keeps no allocation.
    pub(super) fn after_shrink(&mut self) {
        if self.count() == 0 {
            *self = Chunk::new();
            return;
        }
        let used = self.used();
        if self.capacity() > 256 && used * 4 < self.capacity() {
            self.slide_to_front();
            self.set_capacity(alloc_class(HDR + used + used / 4) - HDR);
        }
    }

    /// Byte offset of element `i` (< count), walking from the nearer end.
    pub(super) fn offset(&self, i: usize) -> usize {
        let buf = self.buf();
        if i <= self.count() / 2 {
            let mut pos = self.head();
            for _ in 0..i {
                pos = read_fwd(buf, pos).2;
            }
            pos
        } else {
            let mut end = buf.len();
            let mut start = end;
            for _ in i..self.count() {
                start = read_back(buf, end).0;
                end = start;
            }
            start
        }
    }

    /// Replaces the encoded elements at byte offsets `range` with `with` (encoded elements):
    /// `count` goes up by `added` and down by `removed`, `bytes` likewise by the data lengths.
    pub(super) fn splice(&mut self, range: std::ops::Range<usize>, with: &[u8], counts: Delta) {
        let (from, to) = (range.start, range.end);
        assert!(self.head() <= from && from <= to && to <= self.len(), "splice {range:?} out of the chunk");
        // Offsets from the first element: `reserve_back` may slide the content to the front.
        let (from, to) = (from - self.head(), to - self.head());
        let grow = with.len().saturating_sub(to - from);
        if grow > 0 {
            self.reserve_back(grow);
        }
        let h = self.head();
        let (from, to, len) = (h + from, h + to, self.len());
        let new_len = len - (to - from) + with.len();
        // SAFETY: the tail `to..len` moves to `from + with.len()`, which ends at `new_len`,
        // within the capacity (`reserve_back` above when growing); `with` is not in this chunk.
        // Every byte below `new_len` is then initialised: the moved tail and `with` cover
        // `from..new_len`.
        unsafe {
            ptr::copy(self.data().add(to), self.data().add(from + with.len()), len - to);
            ptr::copy_nonoverlapping(with.as_ptr(), self.data().add(from), with.len());
        }
        let hd = self.hdr_mut();
        hd.len = new_len;
        hd.count = hd.count + counts.added - counts.removed;
        hd.bytes = hd.bytes + counts.added_bytes - counts.removed_bytes;
    }

    /// Cuts the elements from byte offset `at` to the end off into a new chunk.
    pub(super) fn split_off(&mut self, at: usize) -> Chunk {
        let (mut count, mut bytes) = (0, 0);
        for (p, d) in self.elems() {
            if p >= at {
                count += 1;
                bytes += d.len();
            }
        }
        let right = Chunk::from_encoded(&self.buf()[at..], count, bytes);
        self.truncate(at);
        let h = self.hdr_mut();
        h.count -= count;
        h.bytes -= bytes;
        self.after_shrink();
        right
    }

    /// Appends `right`'s elements.
    pub(super) fn merge(&mut self, right: &Chunk) {
        self.append_encoded(&right.buf()[right.head()..], right.count(), right.bytes());
    }
}

/// How a [`Chunk::splice`] changes the count and the data bytes.
#[derive(Clone, Copy, Default)]
pub(super) struct Delta {
    pub added: usize,
    pub removed: usize,
    pub added_bytes: usize,
    pub removed_bytes: usize,
}

impl Clone for Chunk {
    /// A copy of the bytes in use, in a block just big enough for them.
    fn clone(&self) -> Chunk {
        let len = self.len();
        let mut c = Chunk::with_capacity(len);
        if len > 0 {
            // SAFETY: `c` has room for `len` bytes; the two chunks are distinct allocations.
            unsafe { ptr::copy_nonoverlapping(self.data(), c.data(), len) };
            let h = c.hdr_mut();
            h.len = len;
            h.head = self.head();
            h.count = self.count();
            h.bytes = self.bytes();
        }
        c
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let cap = self.capacity();
        if cap > 0 {
            // SAFETY: this chunk's own block, allocated with `layout(cap)`, freed once.
            unsafe { alloc::dealloc(self.hdr.as_ptr().cast::<u8>(), layout(cap)) };
        }
    }
}

/// Elements of one chunk, front to back.
pub(super) struct ChunkIter<'a> {
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
// Element encoding

/// Bytes taken by `n` as a varint (7 bits a byte).
#[inline]
fn varint_len(n: usize) -> usize {
    let bits = usize::BITS - (n | 1).leading_zeros();
    bits.div_ceil(7) as usize
}

/// Bytes taken by an element of `len` data bytes.
#[inline]
pub(super) fn encoded_len(len: usize) -> usize {
    let front = varint_len(len) + len;
    front + varint_len(front)
}

/// Writes `data` encoded into `dst`, which is exactly `encoded_len(data.len())` long.
pub(super) fn write_elem(dst: &mut [u8], data: &[u8]) {
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

/// `data` encoded, in a buffer of its own.
pub(super) fn encode(data: &[u8]) -> Vec<u8> {
    let mut enc = vec![0; encoded_len(data.len())];
    write_elem(&mut enc, data);
    enc
}

/// The element starting at `pos`: (data start, data end, start of the next element).
#[inline]
pub(super) fn read_fwd(buf: &[u8], pos: usize) -> (usize, usize, usize) {
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
pub(super) fn read_back(buf: &[u8], end: usize) -> (usize, usize, usize) {
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
