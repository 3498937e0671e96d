//! A string value's bytes in 16 bytes (a `Vec<u8>` takes 24), so that a [`crate::Value`] is 16
//! bytes and every key's place in its shard 8 bytes smaller; and a string of up to 13 bytes
//! inside those 16, with no allocation at all.
//!
//! A `Vec` keeps its capacity in a word of its own. Here the capacity is a one-byte code: 0
//! for a buffer exactly as long as its bytes (every string a command sets or a load reads), or
//! one of the classes, four per doubling, for a buffer that an edit grew (APPEND, SETRANGE,
//! SETBIT and the like): growth keeps its amortised O(1) copies, and an overwrite of the same
//! size reuses the block. The length takes 48 bits (more than any allocation). One byte holds a
//! single valid value, so that `Value` keeps its variants' tags there.
//!
//! A string of [`INLINE`] bytes or fewer lives in the first 13 bytes of the `StrBuf` itself
//! (where a longer one's pointer and length are), its length in the last byte: Redis keeps
//! such strings in its object's own allocation (`embstr`), here they need none.
//!
//! A longer string's buffer is always one a `Vec<u8>` allocated, and every change but an append
//! into room the buffer has goes through a `Vec` made from it ([`StrBuf::edit`]). The unsafe
//! code is the conversions to and from a `Vec`'s parts, the view of an inline string's bytes,
//! and that append's copy.
#![allow(unsafe_code)]

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

/// Longest string a [`StrBuf`] holds: 48 bits of length, past the 47 bits of address space a
/// process has, so any buffer the allocator gives fits.
const MAX_LEN: usize = (1 << 48) - 1;

/// Longest string kept inline: the bytes of `ptr`, `len_lo` and `len_hi`.
const INLINE: usize = 13;

/// [`StrBuf::cap`] of an inline string (no class comes near it: see [`class_size`]).
const INLINE_TAG: u8 = u8::MAX;

/// Gives the byte it sits in a single valid value, so the compiler keeps an enclosing enum's tag
/// in the other 255.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Niche {
    Zero = 0,
}

/// A growable byte string of at most [`MAX_LEN`] bytes, owning its buffer as a `Vec<u8>` does.
/// `repr(C)`: an inline string's bytes are the first [`INLINE`] bytes of the struct.
#[repr(C)]
pub struct StrBuf {
    /// The buffer of a string longer than [`INLINE`].
    ptr: *mut u8,
    len_lo: u32,
    len_hi: u8,
    /// [`INLINE_TAG`] for an inline string; 0 for a buffer exactly `len` bytes long; otherwise
    /// the buffer's capacity is `class_size(cap)`.
    cap: u8,
    _niche: Niche,
    /// An inline string's length; for a longer one, bits 40 to 47 of its length.
    top: u8,
}

// SAFETY: a `StrBuf` owns its buffer as a `Vec<u8>` does, and shares nothing.
unsafe impl Send for StrBuf {}
// SAFETY: as above; `&StrBuf` gives only shared access to the bytes.
unsafe impl Sync for StrBuf {}

/// The capacity of class `c`: four classes per doubling, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, ...
/// Lengths and their growth stay below class 189 (1 << 49), far from [`INLINE_TAG`].
const fn class_size(c: u8) -> usize {
    let c = c as usize - 1;
    (4 + (c & 3)) << (c >> 2)
}

/// The smallest class whose capacity is at least `n` (at most 1 << 49), and that capacity.
fn class_for(n: usize) -> (u8, usize) {
    let n = n.max(4);
    // The doubling `n` falls in: 4 << e <= n < 8 << e.
    let e = usize::BITS - 1 - n.leading_zeros() - 2;
    let unit = 1usize << e;
    let m = n.div_ceil(unit) - 4; // 1..=4 past the doubling's start, or 0 at it
    let c = (e as usize) * 4 + m + 1;
    let c = u8::try_from(c).unwrap_or(INLINE_TAG - 1);
    (c, class_size(c))
}

impl StrBuf {
    pub const fn new() -> StrBuf {
        StrBuf { ptr: std::ptr::null_mut(), len_lo: 0, len_hi: 0, cap: INLINE_TAG, _niche: Niche::Zero, top: 0 }
    }

    /// An inline string of `bytes` (at most [`INLINE`] of them).
    fn inline(bytes: &[u8]) -> StrBuf {
        debug_assert!(bytes.len() <= INLINE);
        let mut s = StrBuf { top: bytes.len() as u8, ..StrBuf::new() };
        s.as_mut_slice().copy_from_slice(bytes);
        s
    }

    #[inline]
    fn is_inline(&self) -> bool {
        self.cap == INLINE_TAG
    }

    #[inline]
    pub fn len(&self) -> usize {
        if self.is_inline() {
            usize::from(self.top)
        } else {
            self.len_lo as usize | (self.len_hi as usize) << 32 | (self.top as usize) << 40
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the buffer holds without growing.
    #[inline]
    pub fn capacity(&self) -> usize {
        match self.cap {
            INLINE_TAG => INLINE,
            0 => self.len(),
            c => class_size(c),
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        let ptr = if self.is_inline() { std::ptr::from_ref(self).cast::<u8>() } else { self.ptr.cast_const() };
        // SAFETY: an inline string's `len` bytes (at most 13) are the struct's first bytes, all
        // initialised; otherwise `ptr` holds `len` initialised bytes of a `Vec`'s buffer.
        unsafe { std::slice::from_raw_parts(ptr, self.len()) }
    }

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len();
        let ptr = if self.is_inline() { std::ptr::from_mut(self).cast::<u8>() } else { self.ptr };
        // SAFETY: as in `as_slice`, and `&mut self` makes the access unique. Any bytes written
        // over an inline string's `ptr` are a valid raw pointer, never used as one.
        unsafe { std::slice::from_raw_parts_mut(ptr, len) }
    }

    /// The bytes as a `Vec<u8>`: a longer string's buffer, without copying.
    pub fn into_vec(self) -> Vec<u8> {
        if self.is_inline() {
            return self.as_slice().to_vec();
        }
        let this = ManuallyDrop::new(self);
        // SAFETY: the buffer was allocated by a `Vec<u8>` (or a boxed slice, the same layout)
        // of exactly this capacity, and holds `len` initialised bytes; `this` is not dropped.
        unsafe { Vec::from_raw_parts(this.ptr, this.len(), this.capacity()) }
    }

    /// A view of `len` bytes at `ptr` that some other owner keeps (a shard's block that holds a
    /// key and its string together): a `StrBuf` that must never be dropped, changed or moved
    /// out of its `ManuallyDrop`, only read. A copy (`clone`) owns its own buffer.
    ///
    /// # Safety
    /// `ptr` is non-null and `len` bytes from it are initialised and stay so, unchanged, for
    /// as long as the view is read.
    pub(crate) unsafe fn view(ptr: *const u8, len: usize) -> ManuallyDrop<StrBuf> {
        let mut s = StrBuf { ptr: ptr.cast_mut(), cap: 0, ..StrBuf::new() };
        s.set_heap_len(len);
        ManuallyDrop::new(s)
    }

    /// Takes `v`'s buffer, or copies a short `v` inline. Only a capacity that is the length or
    /// a class is representable; any other is given back to the allocator down to the length.
    fn from_vec(v: Vec<u8>) -> StrBuf {
        if v.len() <= INLINE {
            return StrBuf::inline(&v);
        }
        assert!(v.len() <= MAX_LEN, "a buffer longer than the address space");
        let cap = if v.capacity() == v.len() {
            0
        } else {
            match class_for(v.capacity()) {
                (c, size) if size == v.capacity() => c,
                _ => return StrBuf::from_vec(v.into_boxed_slice().into_vec()),
            }
        };
        let mut v = ManuallyDrop::new(v);
        let mut s = StrBuf { ptr: v.as_mut_ptr(), cap, ..StrBuf::new() };
        s.set_heap_len(v.len());
        s
    }

    /// Sets a longer string's length.
    fn set_heap_len(&mut self, len: usize) {
        self.len_lo = len as u32;
        self.len_hi = (len >> 32) as u8;
        self.top = (len >> 40) as u8;
    }

    /// Runs `f` on the bytes as a `Vec<u8>` (for code written for one), keeping its changes.
    pub fn edit<R>(&mut self, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
        let mut v = std::mem::take(self).into_vec();
        let r = f(&mut v);
        *self = StrBuf::from_vec(v);
        r
    }

    /// Extra room an edit reserves so that the string holds `extra` more bytes: none if it
    /// does already, or up to a class at least half as big again, so that a run of appends
    /// copies each byte a bounded number of times.
    fn room_for(&self, extra: usize) -> usize {
        let len = self.len();
        let need = len.checked_add(extra).expect("a string value's length overflows");
        if need <= self.capacity() {
            return self.capacity() - len;
        }
        class_for(need.max(len + len / 2)).1 - len
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let len = self.len();
        if self.is_inline() {
            if len + bytes.len() <= INLINE {
                self.top += bytes.len() as u8;
                self.as_mut_slice()[len..].copy_from_slice(bytes);
                return;
            }
        } else if bytes.len() <= self.capacity() - len {
            // The common APPEND to a buffer an earlier one grew: no round trip through a `Vec`.
            // SAFETY: the buffer has `capacity` bytes, `len + bytes.len()` of which fit, and
            // `bytes` cannot be inside it (`&mut self` is unique). The new length's bytes are
            // then all initialised.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(len), bytes.len()) };
            self.set_heap_len(len + bytes.len());
            return;
        }
        let room = self.room_for(bytes.len());
        self.edit(|v| {
            v.reserve_exact(room);
            v.extend_from_slice(bytes);
        });
    }

    pub fn push(&mut self, byte: u8) {
        self.extend_from_slice(&[byte]);
    }

    /// Grows with `fill` bytes, or shortens, to `len` bytes.
    pub fn resize(&mut self, len: usize, fill: u8) {
        let room = self.room_for(len.saturating_sub(self.len()));
        self.edit(|v| {
            v.reserve_exact(room);
            v.resize(len, fill);
        });
    }

    /// Makes the bytes `bytes`, keeping the buffer if it holds them and is no more than twice
    /// their size (or 32 bytes): an overwrite of about the same size allocates nothing.
    pub fn assign(&mut self, bytes: &[u8]) {
        if bytes.len() == self.len() {
            self.as_mut_slice().copy_from_slice(bytes);
            return;
        }
        let cap = self.capacity();
        if !self.is_inline()
            && bytes.len() > INLINE
            && cap >= bytes.len()
            && cap <= bytes.len().saturating_mul(2).max(32)
        {
            self.edit(|v| {
                v.clear();
                v.extend_from_slice(bytes);
            });
        } else {
            *self = StrBuf::from(bytes);
        }
    }
}

impl Default for StrBuf {
    fn default() -> StrBuf {
        StrBuf::new()
    }
}

impl Drop for StrBuf {
    fn drop(&mut self) {
        if !self.is_inline() {
            drop(std::mem::take(self).into_vec());
        }
    }
}

impl Clone for StrBuf {
    fn clone(&self) -> StrBuf {
        if self.is_inline() { StrBuf::inline(self.as_slice()) } else { StrBuf::from_vec(self.as_slice().to_vec()) }
    }
}

impl From<Vec<u8>> for StrBuf {
    fn from(v: Vec<u8>) -> StrBuf {
        StrBuf::from_vec(v)
    }
}

impl From<&[u8]> for StrBuf {
    fn from(bytes: &[u8]) -> StrBuf {
        if bytes.len() <= INLINE { StrBuf::inline(bytes) } else { StrBuf::from_vec(bytes.to_vec()) }
    }
}

impl From<StrBuf> for Vec<u8> {
    fn from(s: StrBuf) -> Vec<u8> {
        s.into_vec()
    }
}

impl Deref for StrBuf {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl DerefMut for StrBuf {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl AsRef<[u8]> for StrBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for StrBuf {
    fn eq(&self, other: &StrBuf) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for StrBuf {}

impl PartialEq<[u8]> for StrBuf {
    fn eq(&self, other: &[u8]) -> bool {
        self.as_slice() == other
    }
}

impl fmt::Debug for StrBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bytes_with_room_for_an_enums_tag() {
        assert_eq!(size_of::<StrBuf>(), 16);
        assert_eq!(size_of::<Option<StrBuf>>(), 16);
    }

    #[test]
    fn classes_are_four_per_doubling_and_the_smallest_that_fits() {
        let sizes: Vec<usize> = (1..=12).map(class_size).collect();
        assert_eq!(sizes, [4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28]);
        assert_eq!(class_size(189), 1 << 49);
        for n in (1..5000).chain([1 << 20, (1 << 20) + 1, MAX_LEN, MAX_LEN + MAX_LEN / 2]) {
            let (c, size) = class_for(n);
            assert_eq!(size, class_size(c), "{n}");
            assert!(size >= n, "{n}: {size}");
            assert!(c == 1 || class_size(c - 1) < n, "{n}: class {c} is not the smallest");
        }
    }

    #[test]
    fn a_buffer_is_exact_until_an_edit_grows_it() {
        let mut s = StrBuf::from(&b"hello, world"[..]);
        s.extend_from_slice(b" and all");
        assert_eq!(&*s, b"hello, world and all");
        assert_eq!((s.len(), s.capacity()), (20, 20));
        s.extend_from_slice(b"!");
        assert_eq!(s.capacity(), 32, "grown by half, to a class");
        let ptr = s.as_ptr();
        s.push(b'!');
        assert_eq!((&*s, s.as_ptr()), (&b"hello, world and all!!"[..], ptr), "room was kept for it");
        s.resize(16, 0);
        assert_eq!(&*s, b"hello, world and");
        s.resize(18, b'x');
        assert_eq!(&*s, b"hello, world andxx");
        s.resize(3, 0);
        assert_eq!((&*s, s.capacity()), (&b"hel"[..], INLINE), "short again: inline");
    }

    #[test]
    fn short_strings_are_inline_and_survive_moves_and_edits() {
        let strings: Vec<StrBuf> = (0..=INLINE).map(|n| StrBuf::from(&b"abcdefghijklmnop"[..n])).collect();
        let moved: Vec<StrBuf> = strings.into_iter().rev().collect();
        for (i, s) in moved.iter().rev().enumerate() {
            assert_eq!((&**s, s.capacity()), (&b"abcdefghijklmnop"[..i], INLINE));
            let at = std::ptr::from_ref(s).cast::<u8>();
            assert_eq!(s.as_ptr(), at, "the bytes are the struct's own");
        }
        let mut s = StrBuf::from(&b"0123456789abc"[..]);
        s.as_mut_slice()[0] = b'x';
        s.push(b'd');
        assert_eq!((&*s, s.len()), (&b"x123456789abcd"[..], 14));
        assert!(s.capacity() > INLINE);
        assert_eq!(StrBuf::from(b"hey".to_vec()).into_vec(), b"hey");
        assert_eq!(format!("{:?}", StrBuf::from(&b"ab"[..])), format!("{:?}", b"ab"));
        let mut v = crate::Value::Str(StrBuf::from(&b"short"[..]));
        let crate::Value::Str(s) = &mut v else { panic!() };
        s.assign(b"other");
        assert_eq!(v, crate::Value::Str(StrBuf::from(&b"other"[..])));
    }

    #[test]
    fn appends_copy_each_byte_a_bounded_number_of_times() {
        let mut s = StrBuf::new();
        let (mut moves, mut ptr) = (0, s.as_ptr());
        let n = if cfg!(miri) { 10_000 } else { 100_000 };
        for i in 0..n {
            s.push(i as u8);
            if s.as_ptr() != ptr {
                moves += 1;
                ptr = s.as_ptr();
            }
        }
        assert_eq!(s.len(), n as usize);
        assert!(s.iter().enumerate().all(|(i, &b)| b == i as u8));
        assert!(moves < 40, "{moves} reallocations");
    }

    #[test]
    fn odd_capacities_are_trimmed_and_vecs_round_trip() {
        let bytes = b"a string of 24 bytes....";
        let mut v = Vec::with_capacity(100);
        v.extend_from_slice(bytes);
        let s = StrBuf::from(v);
        assert_eq!((&*s, s.capacity()), (&bytes[..], 24));
        let mut v = Vec::with_capacity(40);
        v.extend_from_slice(bytes);
        let s = StrBuf::from(v);
        assert_eq!(s.capacity(), 40, "a class is kept");
        let v = s.into_vec();
        assert_eq!((&v[..], v.capacity()), (&bytes[..], 40));
        assert_eq!(StrBuf::from(Vec::new()), StrBuf::new());
        assert!(StrBuf::new().is_empty());
    }

    #[test]
    fn assign_reuses_a_fitting_buffer() {
        let mut s = StrBuf::from(&[b'a'; 64][..]);
        let ptr = s.as_ptr();
        s.assign(&[b'b'; 60]);
        assert_eq!((&*s, s.as_ptr()), (&[b'b'; 60][..], ptr));
        s.assign(&[b'c'; 1000]);
        assert_eq!(&*s, &[b'c'; 1000][..]);
        s.assign(b"x");
        assert!(s.capacity() < 1000, "a big buffer is not kept for a small value");
        assert_eq!(s.clone(), StrBuf::from(&b"x"[..]));
    }

    /// Random edits, each checked against a `Vec` doing the same (under Miri too: `cargo +nightly
    /// miri test -p magpie-store strbuf`).
    #[test]
    fn random_edits_agree_with_a_vec() {
        let mut rng = fastrand::Rng::with_seed(7);
        let rounds = if cfg!(miri) { 300 } else { 20_000 };
        let (mut s, mut v) = (StrBuf::new(), Vec::new());
        for _ in 0..rounds {
            let most = if rng.bool() { 16 } else { 80 };
            let bytes: Vec<u8> = (0..rng.usize(..=most)).map(|_| rng.u8(..)).collect();
            match rng.u8(..7) {
                0 => {
                    s.extend_from_slice(&bytes);
                    v.extend_from_slice(&bytes);
                }
                1 => {
                    s.push(bytes.len() as u8);
                    v.push(bytes.len() as u8);
                }
                2 => {
                    let len = rng.usize(..=v.len() + 40);
                    s.resize(len, 9);
                    v.resize(len, 9);
                }
                3 => {
                    s.assign(&bytes);
                    v = bytes.clone();
                }
                4 => s = StrBuf::from(s.clone().into_vec()),
                5 if !v.is_empty() => {
                    let i = rng.usize(..v.len());
                    s.as_mut_slice()[i] ^= 1;
                    v[i] ^= 1;
                }
                _ => {
                    s.edit(|e| e.truncate(e.len() / 2));
                    v.truncate(v.len() / 2);
                }
            }
            assert_eq!(&*s, &v[..]);
            assert!(s.capacity() >= s.len());
            assert_eq!(s.clone(), s);
        }
    }
}
