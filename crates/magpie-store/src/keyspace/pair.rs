//! A key and its value as a shard stores them: one word in the shard's table, pointing at one
//! block that holds both.
//!
//! A place in the table held the key inline (24 bytes) and the value (16 bytes), and a string's
//! bytes were a block of their own: 48 bytes of place and a block for a 64-byte string, 121
//! bytes a key in all. Here the place is 8 bytes (16 with the expiry position and the use
//! clock, see [`super::Stored`]) and there are two forms of block:
//!
//! - **Joined**: a string of at most [`JOINED_VALUE_MAX`] bytes under a key of at most
//!   [`JOINED_KEY_MAX`] bytes, as SET and a load make them: the block is the key's bytes and
//!   the value's, nothing else, and both lengths are in the word's spare bits. A 16-byte key
//!   and a 64-byte value are one 80-byte block, one of the allocator's size classes. A lookup
//!   reads the key and the value from one block (the key compared, the value copied into the
//!   reply), as many misses as when the key was in the place.
//! - **Boxed**: any other value (an integer, a collection, a longer string, or a string about
//!   to change in place): the block is the [`Value`] (16 bytes) followed by the key's bytes,
//!   the key's length in the word (or, for a key of 64 KiB or more, in 8 bytes before it).
//!   What a shard lends to be changed (`&mut Value`) lives here: a joined string becomes boxed
//!   when it is lent so ([`Pair::value_mut`]).
//!
//! The word: the block's address (8-aligned, below 2^48: what x86-64's and AArch64's 48-bit
//! user address spaces give; a block above is not joined, and a boxed one there is refused), its
//! bit 0 set for a joined block; bits 48-63 the key's length, and for a joined block bits 56-63
//! and 1-2 the value's (see [`Pair::lens`]).
//!
//! The unsafe code is the blocks' allocation and freeing, the reads of their bytes and of the
//! boxed value, and the view of a joined string as a [`Value`] ([`ValueRef`]).
#![allow(unsafe_code)]

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ops::Deref;

use crate::{Frozen, Key, StrBuf, Value};

/// Longest key a joined block holds.
pub(crate) const JOINED_KEY_MAX: usize = 255;
/// Longest string a joined block holds.
pub(crate) const JOINED_VALUE_MAX: usize = 1023;

const JOINED: u64 = 1;
const ADDR_BITS: u32 = 48;
const ADDR_MASK: u64 = ((1 << ADDR_BITS) - 1) & !7;
/// A boxed block's key length in the word: this value means the length is in the block.
const LONG_KEY: u64 = 0xFFFF;
/// Where a boxed block's key starts, after the value (and after its length, for a long key).
const BOXED_KEY_AT: usize = size_of::<Value>();

const _: () = assert!(size_of::<Value>() == 16 && align_of::<Value>() == 8);

/// Largest joined block [`Pair::recycle`] keeps.
const SPARE_MOST: usize = 512;

/// A joined block that eviction freed, kept for the next joined block of its size this thread
/// makes: its address and size (0: none).
struct Spare(Cell<(*mut u8, usize)>);

impl Drop for Spare {
    fn drop(&mut self) {
        let (p, size) = self.0.get();
        if size != 0 {
            // SAFETY: a spare block was allocated with this joined layout and is owned here.
            unsafe { dealloc(p, joined_layout(size)) };
        }
    }
}

thread_local! {
    static SPARE: Spare = const { Spare(Cell::new((std::ptr::null_mut(), 0))) };
}

/// The spare block if it has exactly `size` bytes (see [`Pair::recycle`]).
fn take_spare(size: usize) -> Option<*mut u8> {
    SPARE
        .try_with(|s| match s.0.get() {
            (p, n) if n == size && n != 0 => {
                s.0.set((std::ptr::null_mut(), 0));
                Some(p)
            }
            _ => None,
        })
        .ok()
        .flatten()
}

/// A key and its value in one block (see the module's notes). Owns the block.
pub(crate) struct Pair {
    /// The block's address with the bits above (see the module's notes): a pointer, so that
    /// the block's provenance stays with it (Miri checks it).
    tagged: *mut u8,
}

// SAFETY: a `Pair` owns its block and the value in it as a `Box` would.
unsafe impl Send for Pair {}
// SAFETY: as above; `&Pair` gives only shared access to the block.
unsafe impl Sync for Pair {}

/// The layout of a joined block of `n` bytes.
fn joined_layout(n: usize) -> Layout {
    // (Never 0 bytes: an empty key with an empty string still gets a block of its own.)
    Layout::from_size_align(n.max(1), 8).expect("a joined block's size is small")
}

/// The layout of a boxed block for a key of `klen` bytes.
fn boxed_layout(klen: usize) -> Layout {
    let long = if klen as u64 >= LONG_KEY { 8 } else { 0 };
    Layout::from_size_align(BOXED_KEY_AT + long + klen, 8).expect("a key's length fits in memory")
}

fn allocate(layout: Layout) -> *mut u8 {
    // SAFETY: `layout` has a non-zero size.
    let p = unsafe { alloc(layout) };
    if p.is_null() {
        handle_alloc_error(layout);
    }
    p
}

/// Whether `value` under `key` is stored joined.
#[inline]
fn joinable(key: &[u8], value: &[u8]) -> bool {
    key.len() <= JOINED_KEY_MAX && value.len() <= JOINED_VALUE_MAX
}

impl Pair {
    /// `value` under `key`: joined if it is a short string, boxed otherwise.
    pub(crate) fn new(key: &[u8], value: Value) -> Pair {
        if let Value::Str(s) = &value
            && let Some(p) = Pair::joined(key, s)
        {
            return p;
        }
        Pair::boxed(key, value)
    }

    /// The string `value` under `key`, joined (`None` if it does not fit a joined block).
    fn joined(key: &[u8], value: &[u8]) -> Option<Pair> {
        if !joinable(key, value) {
            return None;
        }
        let layout = joined_layout(key.len() + value.len());
        let p = take_spare(layout.size()).unwrap_or_else(|| allocate(layout));
        if p.addr() as u64 & !ADDR_MASK != 0 {
            // SAFETY: `p` was allocated just now with `layout`.
            unsafe { dealloc(p, layout) };
            return None;
        }
        // SAFETY: the block holds `key.len() + value.len()` bytes; neither source overlaps it.
        unsafe {
            std::ptr::copy_nonoverlapping(key.as_ptr(), p, key.len());
            std::ptr::copy_nonoverlapping(value.as_ptr(), p.add(key.len()), value.len());
        }
        let (k, v) = (key.len() as u64, value.len() as u64);
        let bits = JOINED | k << ADDR_BITS | (v & 0xFF) << 56 | (v >> 8) << 1;
        Some(Pair { tagged: p.map_addr(|a| a | bits as usize) })
    }

    /// The string `bytes` under `key`, as [`Value::string`] stores it (an integer boxed), but
    /// with no buffer of its own made on the way.
    pub(crate) fn string(key: &[u8], bytes: &[u8]) -> Pair {
        if !Value::is_int_string(bytes)
            && let Some(p) = Pair::joined(key, bytes)
        {
            return p;
        }
        Pair::boxed(key, Value::string(bytes))
    }

    /// Frees the block, or keeps a joined one of up to [`SPARE_MOST`] bytes for the next joined
    /// block of its size this thread makes. Eviction removes a key for each key a full cache's
    /// writes create, most often of the same size: the new key then takes the evicted one's
    /// block, and the allocator neither frees nor allocates (each of which touches the cold
    /// block: the free list runs through the blocks).
    pub(crate) fn recycle(self) {
        let (size, joined) = self.block();
        if !joined || size > SPARE_MOST {
            return;
        }
        let this = ManuallyDrop::new(self);
        let addr = this.addr();
        let kept = SPARE.try_with(|s| {
            let (old, n) = s.0.replace((addr, size));
            if n != 0 {
                // SAFETY: the old spare was allocated with this joined layout and is owned here.
                unsafe { dealloc(old, joined_layout(n)) };
            }
        });
        if kept.is_err() {
            // The thread is exiting: free the block.
            drop(ManuallyDrop::into_inner(this));
        }
    }

    /// `value` under `key` in a boxed block.
    fn boxed(key: &[u8], value: Value) -> Pair {
        let layout = boxed_layout(key.len());
        let p = allocate(layout);
        assert!(p.addr() as u64 & !ADDR_MASK == 0, "the allocator gave an address beyond 48 bits");
        let klen = key.len() as u64;
        // SAFETY: the block is `layout` bytes, 8-aligned: the value, then (for a long key) its
        // length, then the key's bytes.
        unsafe {
            p.cast::<Value>().write(value);
            let at = if klen >= LONG_KEY {
                p.add(BOXED_KEY_AT).cast::<u64>().write(klen);
                BOXED_KEY_AT + 8
            } else {
                BOXED_KEY_AT
            };
            std::ptr::copy_nonoverlapping(key.as_ptr(), p.add(at), key.len());
        }
        Pair { tagged: p.map_addr(|a| a | (klen.min(LONG_KEY) << ADDR_BITS) as usize) }
    }

    #[inline]
    fn addr(&self) -> *mut u8 {
        self.tagged.map_addr(|a| a & ADDR_MASK as usize)
    }

    /// The tagged address as a number, to read the bits above.
    #[inline]
    fn word(&self) -> u64 {
        self.tagged.addr() as u64
    }

    #[inline]
    pub(crate) fn is_joined(&self) -> bool {
        self.word() & JOINED != 0
    }

    /// A joined block's key and value lengths.
    #[inline]
    fn lens(&self) -> (usize, usize) {
        let w = self.word();
        ((w >> ADDR_BITS & 0xFF) as usize, (w >> 56 | (w >> 1 & 3) << 8) as usize)
    }

    /// A boxed block's key length and where its bytes start.
    #[inline]
    fn boxed_key(&self) -> (usize, usize) {
        let k = self.word() >> ADDR_BITS;
        if k == LONG_KEY {
            // SAFETY: a boxed block with a long key keeps its length after the value.
            let k = unsafe { self.addr().add(BOXED_KEY_AT).cast::<u64>().read() };
            (k as usize, BOXED_KEY_AT + 8)
        } else {
            (k as usize, BOXED_KEY_AT)
        }
    }

    /// The block's size, and whether it is joined (the value all in it).
    pub(crate) fn block(&self) -> (usize, bool) {
        if self.is_joined() {
            let (k, v) = self.lens();
            (joined_layout(k + v).size(), true)
        } else {
            (boxed_layout(self.boxed_key().0).size(), false)
        }
    }

    /// Asks the CPU for the block's lines (a joined block's key and value; a boxed block's
    /// value and the start of its key), without waiting for them.
    #[inline]
    pub(crate) fn prefetch(&self) {
        let len = if self.is_joined() {
            let (k, v) = self.lens();
            k + v
        } else {
            BOXED_KEY_AT + (self.word() >> ADDR_BITS) as usize
        };
        crate::lines::prefetch(self.addr().cast_const(), len);
    }

    #[inline]
    pub(crate) fn key(&self) -> &[u8] {
        let (p, (len, at)) = (self.addr(), if self.is_joined() { (self.lens().0, 0) } else { self.boxed_key() });
        // SAFETY: the block holds the key's `len` bytes from `at`, initialised and owned by
        // `self`, which this borrow keeps alive and unchanged.
        unsafe { std::slice::from_raw_parts(p.add(at), len) }
    }

    /// A joined block's string.
    #[inline]
    fn joined_bytes(&self) -> &[u8] {
        let (k, v) = self.lens();
        // SAFETY: a joined block holds the value's `v` bytes after the key's `k`.
        unsafe { std::slice::from_raw_parts(self.addr().add(k), v) }
    }

    /// The value, to read.
    #[inline]
    pub(crate) fn value(&self) -> ValueRef<'_> {
        if self.is_joined() {
            let bytes = self.joined_bytes();
            // SAFETY: the bytes stay in the block, unchanged, while `self` is borrowed, which
            // the `ValueRef` keeps; the view is only read (see `ValueRef`).
            let view = unsafe { StrBuf::view(bytes.as_ptr(), bytes.len()) };
            ValueRef::joined(ManuallyDrop::new(Value::Str(ManuallyDrop::into_inner(view))))
        } else {
            // SAFETY: a boxed block starts with its value.
            ValueRef::of(unsafe { &*self.addr().cast::<Value>() })
        }
    }

    /// The value, to change in place: a joined string is boxed first (its bytes copied into a
    /// buffer of their own).
    #[inline]
    pub(crate) fn value_mut(&mut self) -> &mut Value {
        if self.is_joined() {
            let boxed = Pair::boxed(self.key(), Value::Str(StrBuf::from(self.joined_bytes())));
            *self = boxed;
        }
        // SAFETY: a boxed block starts with its value; `&mut self` makes the access unique.
        unsafe { &mut *self.addr().cast::<Value>() }
    }

    /// Puts `value` in place of the value, returning the old one.
    pub(crate) fn replace(&mut self, value: Value) -> Value {
        if !self.is_joined() && !matches!(&value, Value::Str(s) if joinable(self.key(), s)) {
            return std::mem::replace(self.value_mut(), value);
        }
        let new = Pair::new(self.key(), value);
        std::mem::replace(self, new).into_value()
    }

    /// Puts the string `bytes` (as [`Value::string`] stores them) in place of the value,
    /// returning the old one: [`Pair::replace`] with no buffer made for the bytes on the way.
    pub(crate) fn replace_string(&mut self, bytes: &[u8]) -> Value {
        let new = Pair::string(self.key(), bytes);
        std::mem::replace(self, new).into_value()
    }

    /// Makes the value the string `bytes` (stored as an integer if it is one): in the same
    /// block when it holds them.
    pub(crate) fn assign_string(&mut self, bytes: &[u8]) {
        let int = Value::is_int_string(bytes);
        if self.is_joined() {
            let (k, v) = self.lens();
            if v == bytes.len() && !int {
                // SAFETY: the block holds `v` value bytes after the key's `k`; `&mut self`
                // makes the access unique.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.addr().add(k), v) };
                return;
            }
        } else if int || !joinable(self.key(), bytes) {
            // An integer, or a string too long to join: the boxed value takes it (reusing its
            // buffer where it can).
            self.value_mut().assign_string(bytes);
            return;
        }
        let new = Pair::string(self.key(), bytes);
        *self = new;
    }

    /// A frozen image of a big collection for a snapshot (see [`Value::freeze`]); `None` for
    /// anything else.
    pub(crate) fn freeze(&mut self) -> Option<Frozen> {
        if self.is_joined() { None } else { self.value_mut().freeze() }
    }

    /// The value, taken out; the block is freed.
    pub(crate) fn into_value(self) -> Value {
        self.into_parts().1
    }

    /// The key and the value, taken out; the block is freed.
    pub(crate) fn into_parts(self) -> (Key, Value) {
        let this = ManuallyDrop::new(self);
        let key = Key::new(this.key());
        let value = if this.is_joined() {
            let value = Value::Str(StrBuf::from(this.joined_bytes()));
            // SAFETY: the block was allocated with this layout and is not used again.
            unsafe { dealloc(this.addr(), joined_layout(this.lens().0 + this.lens().1)) };
            value
        } else {
            let layout = boxed_layout(this.boxed_key().0);
            // SAFETY: a boxed block starts with its value, read out once here; the block was
            // allocated with `layout` and is not used again.
            unsafe {
                let value = this.addr().cast::<Value>().read();
                dealloc(this.addr(), layout);
                value
            }
        };
        (key, value)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let p = self.addr();
        if self.is_joined() {
            let (k, v) = self.lens();
            // SAFETY: the block was allocated with this layout.
            unsafe { dealloc(p, joined_layout(k + v)) };
        } else {
            let layout = boxed_layout(self.boxed_key().0);
            // SAFETY: the block starts with its value, dropped once here; the block was
            // allocated with `layout`.
            unsafe {
                p.cast::<Value>().drop_in_place();
                dealloc(p, layout);
            }
        }
    }
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair").field("key", &Key::new(self.key())).field("value", &*self.value()).finish()
    }
}

/// A stored value, lent to be read: a reference to a boxed value, or a joined string seen as a
/// [`Value::Str`]. Dereferences to the [`Value`].
#[derive(Clone, Copy)]
pub struct ValueRef<'a> {
    inner: Inner<'a>,
}

#[derive(Clone, Copy)]
enum Inner<'a> {
    Ref(&'a Value),
    /// The bytes of a `Value::Str` whose `StrBuf` is a view of a joined block
    /// ([`StrBuf::view`]): never dropped, only read, for as long as the block is borrowed.
    Joined([MaybeUninit<u64>; 2], PhantomData<&'a [u8]>),
}

impl<'a> ValueRef<'a> {
    #[inline]
    pub fn of(v: &'a Value) -> ValueRef<'a> {
        ValueRef { inner: Inner::Ref(v) }
    }

    /// The value as stored, for as long as the shard is borrowed: `None` for a string stored
    /// joined with its key (see [`ValueRef::string_slice`] and the `Deref` for those). Every
    /// collection and integer is `Some`: code that wants a collection matches on this and
    /// treats `None` as the wrong type.
    #[inline]
    pub fn boxed(self) -> Option<&'a Value> {
        match self.inner {
            Inner::Ref(v) => Some(v),
            Inner::Joined(..) => None,
        }
    }

    /// A string value's bytes, for as long as the shard is borrowed; `None` for anything else
    /// (an integer included).
    #[inline]
    pub fn string_slice(self) -> Option<&'a [u8]> {
        match self.inner {
            Inner::Ref(Value::Str(s)) => Some(s.as_slice()),
            Inner::Ref(_) => None,
            Inner::Joined(..) => {
                let s = match &*self {
                    Value::Str(s) => s.as_slice(),
                    _ => return None,
                };
                // SAFETY: a joined string's view points into the block, which the shard's
                // borrow (`'a`) keeps alive and unchanged, not into `self`.
                Some(unsafe { std::slice::from_raw_parts(s.as_ptr(), s.len()) })
            }
        }
    }

    /// An owned copy of the value.
    pub fn cloned(self) -> Value {
        (*self).clone()
    }

    /// [`Value::str_bytes`] for as long as the shard is borrowed: a string's bytes, an
    /// integer's digits (written in `buf`), `None` for a collection.
    #[inline]
    pub fn str_bytes(self, buf: &'a mut itoa::Buffer) -> Option<&'a [u8]> {
        match self.string_slice() {
            Some(bytes) => Some(bytes),
            None => match self.boxed() {
                Some(Value::Int(n)) => Some(buf.format(*n).as_bytes()),
                _ => None,
            },
        }
    }

    #[inline]
    fn joined(v: ManuallyDrop<Value>) -> ValueRef<'a> {
        // SAFETY: `ManuallyDrop<Value>` and the array have the same size and alignment, and
        // the copy is only ever read back as the `Value` it is.
        let image = unsafe { std::mem::transmute::<ManuallyDrop<Value>, [MaybeUninit<u64>; 2]>(v) };
        ValueRef { inner: Inner::Joined(image, PhantomData) }
    }
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(v: &'a Value) -> ValueRef<'a> {
        ValueRef::of(v)
    }
}

impl Deref for ValueRef<'_> {
    type Target = Value;
    #[inline]
    fn deref(&self) -> &Value {
        match &self.inner {
            Inner::Ref(v) => v,
            // SAFETY: the image is a valid `Value` (see `Inner::Joined`), aligned as one; a
            // shared reference to it allows no drop and no change.
            Inner::Joined(image, _) => unsafe { &*image.as_ptr().cast::<Value>() },
        }
    }
}

impl fmt::Debug for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq<Value> for ValueRef<'_> {
    fn eq(&self, other: &Value) -> bool {
        **self == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(p: &Pair, key: &[u8], value: &Value) {
        assert_eq!(p.key(), key);
        assert_eq!(&*p.value(), value);
    }

    #[test]
    fn keys_and_values_of_every_form_read_back() {
        let long_key = vec![b'k'; 70_000];
        for key in [&b""[..], b"k", b"key:000000000001", &[b'x'; 255][..], &[b'x'; 256][..], &long_key[..]] {
            for value in [
                Value::Str(StrBuf::from(&b""[..])),
                Value::Str(StrBuf::from(&[b'v'; 64][..])),
                Value::Str(StrBuf::from(&[b'v'; 1023][..])),
                Value::Str(StrBuf::from(&[b'v'; 1024][..])),
                Value::Int(-5),
            ] {
                let mut p = Pair::new(key, value.clone());
                let short = matches!(&value, Value::Str(s) if s.len() <= JOINED_VALUE_MAX);
                assert_eq!(p.is_joined(), short && key.len() <= JOINED_KEY_MAX);
                check(&p, key, &value);
                assert_eq!(p.value().clone(), value);
                // Lent to be changed: boxed, and changes stay.
                if let Value::Str(s) = p.value_mut() {
                    s.extend_from_slice(b"!");
                }
                assert!(!p.is_joined());
                let mut changed = value.clone();
                if let Value::Str(s) = &mut changed {
                    s.extend_from_slice(b"!");
                }
                check(&p, key, &changed);
                // Replaced by a short string: joined again where it fits.
                let old = p.replace(Value::Str(StrBuf::from(&b"again"[..])));
                assert_eq!(old, changed);
                assert_eq!(p.is_joined(), key.len() <= JOINED_KEY_MAX);
                check(&p, key, &Value::Str(StrBuf::from(&b"again"[..])));
                for bytes in [&b"AGAIN"[..], b"12", b"longer than before", &[b'z'; 2000][..], b"x"] {
                    p.assign_string(bytes);
                    check(&p, key, &Value::string(bytes));
                }
                let (k, v) = p.into_parts();
                assert_eq!(&*k, key);
                assert_eq!(v, Value::string(b"x"));
            }
        }
    }

    #[test]
    fn an_evicted_block_goes_to_the_next_joined_block_of_its_size() {
        let old = Pair::string(b"key:1", b"0123456789");
        let at = old.addr();
        old.recycle();
        // Another size: a block of its own; the spare stays.
        let other = Pair::string(b"key:22", b"0123456789");
        assert_ne!(other.addr(), at);
        let next = Pair::string(b"key:3", b"abcdefghij");
        assert_eq!(next.addr(), at, "the spare block is taken");
        check(&next, b"key:3", &Value::string(b"abcdefghij"));
        // Boxed blocks and big joined ones are freed, not kept.
        Pair::string(b"k", b"12").recycle();
        Pair::string(b"k", &[b'x'; 600]).recycle();
        let again = Pair::string(b"k", b"x");
        assert!(again.is_joined());
        drop((other, next, again));
    }

    #[test]
    fn a_joined_strings_bytes_outlive_its_view() {
        let p = Pair::string(b"key", b"value");
        let bytes = p.value().string_slice();
        let mut buf = itoa::Buffer::new();
        let via = p.value().str_bytes(&mut buf);
        assert_eq!((bytes, via), (Some(&b"value"[..]), Some(&b"value"[..])));
        assert!(p.value().boxed().is_none());
        let n = Pair::string(b"key", b"-42");
        assert_eq!(n.value().boxed(), Some(&Value::Int(-42)));
        assert_eq!(n.value().str_bytes(&mut buf), Some(&b"-42"[..]));
        assert_eq!(n.value().string_slice(), None);
    }

    #[test]
    fn a_place_is_one_word() {
        assert_eq!(size_of::<Pair>(), 8);
    }
}
