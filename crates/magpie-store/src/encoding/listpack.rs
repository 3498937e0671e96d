//! Redis's listpack (`listpack.c`, Redis 7.0): a list of strings and integers in one buffer.
//!
//! ```text
//! listpack := total-bytes:u32le count:u16le entry* 0xFF
//! entry    := encoding [length] data backlen
//! ```
//!
//! | first byte | entry | size of encoding + data |
//! |---|---|---|
//! | `0xxxxxxx` | integer 0..=127 | 1 |
//! | `10LLLLLL` | string of up to 63 bytes | 1 + len |
//! | `110xxxxx` + 1 byte | 13-bit signed integer (big-endian in the two bytes) | 2 |
//! | `1110LLLL` + 1 byte | string of up to 4095 bytes (12-bit length, big-endian) | 2 + len |
//! | `0xF0` + u32le | string, 32-bit length | 5 + len |
//! | `0xF1` / `0xF2` / `0xF3` / `0xF4` | 16 / 24 / 32 / 64-bit signed integer, little-endian | 3 / 4 / 5 / 9 |
//!
//! `backlen` is the size of encoding + data, written so that it can be read from its last byte
//! backwards: 7 bits a byte, the most significant group first, every byte but the first (the
//! one farthest from the next entry) with its high bit set; 1 to 5 bytes. `count` is the number
//! of entries, or 65535 when it is not known (65535 entries or more).
//!
//! Appending a string that is a canonical 64-bit integer stores the integer (Redis's
//! `lpStringToInt64` rule), in the smallest integer encoding that holds it.

use magpie_protocol::parse_i64;

use super::{Corrupt, Entry};

/// Header: total bytes (u32le) and number of entries (u16le).
pub const HDR_SIZE: usize = 6;
/// The terminator byte.
pub const EOF: u8 = 0xFF;
/// The count in the header when there are too many entries to count there.
pub const COUNT_UNKNOWN: u16 = u16::MAX;
/// Redis never lets a listpack grow past 1 GB (`lpSafeToAdd`).
pub const SAFETY_SIZE: usize = 1 << 30;
/// Bytes of an empty listpack.
pub const EMPTY_BYTES: usize = HDR_SIZE + 1;

/// A listpack whose bytes are always valid: built here, or checked by [`Listpack::from_bytes`].
#[derive(Clone, PartialEq, Eq)]
pub struct Listpack {
    buf: Vec<u8>,
}

impl Default for Listpack {
    fn default() -> Listpack {
        Listpack::new()
    }
}

impl std::fmt::Debug for Listpack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The listpack would pass 4 GB, the most its header can describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooBig;

impl Listpack {
    pub fn new() -> Listpack {
        let mut buf = Vec::with_capacity(EMPTY_BYTES);
        buf.extend_from_slice(&(EMPTY_BYTES as u32).to_le_bytes());
        buf.extend_from_slice(&0u16.to_le_bytes());
        buf.push(EOF);
        Listpack { buf }
    }

    /// A listpack of these entries, appended in order (strings that are integers become
    /// integers). `TooBig` past 4 GB.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = Entry<'a>>) -> Result<Listpack, TooBig> {
        let mut lp = Listpack::new();
        for e in entries {
            lp.push(e)?;
        }
        Ok(lp)
    }

    /// Takes bytes from outside after checking them entry by entry, as Redis's
    /// `lpValidateIntegrity` with `deep` does.
    pub fn from_bytes(buf: Vec<u8>) -> Result<Listpack, Corrupt> {
        validate(&buf)?;
        Ok(Listpack { buf })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Total bytes, as the header says and Redis's `lpBytes` returns.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Number of entries (counted when the header cannot say, as `lpLength`).
    pub fn len(&self) -> usize {
        let n = header_count(&self.buf);
        if n != COUNT_UNKNOWN { usize::from(n) } else { self.iter().count() }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.get(HDR_SIZE) == Some(&EOF)
    }

    /// The entries from first to last (also backwards: `iter().rev()`).
    pub fn iter(&self) -> Iter<'_> {
        iter(&self.buf)
    }

    /// Appends a string, stored as an integer when it is a canonical one (`lpAppend`).
    pub fn push_str(&mut self, s: &[u8]) -> Result<(), TooBig> {
        self.push(Entry::Str(s))
    }

    /// Appends an integer (`lpAppendInteger`).
    pub fn push_int(&mut self, n: i64) -> Result<(), TooBig> {
        self.push(Entry::Int(n))
    }

    /// Appends an entry.
    pub fn push(&mut self, e: Entry<'_>) -> Result<(), TooBig> {
        // Encoded in place of the terminator, which goes back after it (no temporary buffer).
        let eof = self.buf.len() - 1;
        self.buf.truncate(eof);
        encode_entry(&mut self.buf, e);
        self.buf.push(EOF);
        let Ok(total) = u32::try_from(self.buf.len()) else {
            self.buf.truncate(eof);
            self.buf.push(EOF);
            return Err(TooBig);
        };
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = header_count(&self.buf);
        if count != COUNT_UNKNOWN {
            self.buf[4..6].copy_from_slice(&(count + 1).to_le_bytes());
        }
        Ok(())
    }

    /// Offset of the first entry, `None` when empty. Offsets stay valid until the next change
    /// before or at them.
    pub fn first(&self) -> Option<usize> {
        (!self.is_empty()).then_some(HDR_SIZE)
    }

    /// Offset of the last entry.
    pub fn last(&self) -> Option<usize> {
        let eof = self.buf.len() - 1;
        if eof == HDR_SIZE { None } else { prev_offset(&self.buf, eof) }
    }

    /// Offset of the entry after the one at `at`.
    pub fn next(&self, at: usize) -> Option<usize> {
        let next = at + entry_size_at(&self.buf, at)?;
        (next < self.buf.len() - 1).then_some(next)
    }

    /// Offset of the entry before the one at `at`.
    pub fn prev(&self, at: usize) -> Option<usize> {
        if at <= HDR_SIZE { None } else { prev_offset(&self.buf, at) }
    }

    /// The entry at offset `at`.
    pub fn get(&self, at: usize) -> Option<Entry<'_>> {
        decode(&self.buf, at).map(|(e, _)| e)
    }

    /// Inserts `e` before the entry at `at` (or at the end when `at` is the terminator's
    /// offset, `bytes() - 1`). `at` must be such an offset (from `first`, `next`, ...); any
    /// other corrupts the listpack, and one past the end panics.
    pub fn insert(&mut self, at: usize, e: Entry<'_>) -> Result<(), TooBig> {
        self.splice(at, 0, Some(e))
    }

    /// Replaces the entry at `at` (`lpReplace`). An integer whose encoding takes as many bytes
    /// as the entry it replaces is written in place, without moving or allocating anything
    /// (a stream's counters and flags change this way on every XADD and XDEL).
    pub fn replace(&mut self, at: usize, e: Entry<'_>) -> Result<(), TooBig> {
        let old = entry_size_at(&self.buf, at).unwrap_or(0);
        if let Entry::Int(n) = e {
            let (bytes, len) = int_entry(n);
            if len == old {
                self.buf[at..at + len].copy_from_slice(&bytes[..len]);
                return Ok(());
            }
        }
        self.splice(at, old, Some(e))
    }

    /// The entry at `at` and the offset just past it (the next entry's, or the terminator's
    /// after the last): one decoding for a forward walk.
    pub fn read(&self, at: usize) -> Option<(Entry<'_>, usize)> {
        decode(&self.buf, at).map(|(e, size)| (e, at + size))
    }

    /// The offset just past the entry at `at`, without decoding its data.
    pub fn skip(&self, at: usize) -> Option<usize> {
        entry_size_at(&self.buf, at).map(|size| at + size)
    }

    /// The terminator's offset: where a forward walk ends.
    pub fn end(&self) -> usize {
        self.buf.len() - 1
    }

    /// Gives back the memory reserved beyond the listpack's bytes (Redis's `lpShrinkToFit`).
    /// The bytes move to a block of their own size: `Vec::shrink_to_fit` reallocates, and an
    /// allocator may keep a block that shrinks by less than half where it is (mimalloc does),
    /// which would leave a listpack grown to 3.5 KB for 1.9 KB of entries holding 3.5 KB.
    pub fn shrink_to_fit(&mut self) {
        if self.buf.capacity() > self.buf.len() {
            self.buf = self.buf.as_slice().to_vec();
        }
    }

    /// Reserves room for exactly `additional` more bytes (no more: see `Vec::reserve_exact`).
    pub fn reserve_exact(&mut self, additional: usize) {
        self.buf.reserve_exact(additional);
    }

    /// Bytes reserved for the listpack, its own and those it may grow into without moving.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Removes the entry at `at`; the entry that followed is now at `at`.
    pub fn remove(&mut self, at: usize) {
        if let Some(old) = entry_size_at(&self.buf, at) {
            // Removing never grows the listpack.
            let _ = self.splice(at, old, None);
        }
    }

    /// Replaces `old_len` bytes at `at` (whole entries) with the encoding of `e`, keeping the
    /// header's total and count right as `lpInsert` does.
    fn splice(&mut self, at: usize, old_len: usize, e: Option<Entry<'_>>) -> Result<(), TooBig> {
        let mut enc = Vec::new();
        if let Some(e) = e {
            encode_entry(&mut enc, e);
        }
        let total = self.buf.len() - old_len + enc.len();
        let total32 = u32::try_from(total).map_err(|_| TooBig)?;
        self.buf.splice(at..at + old_len, enc);
        self.buf[0..4].copy_from_slice(&total32.to_le_bytes());
        let count = header_count(&self.buf);
        if count != COUNT_UNKNOWN {
            let removed = usize::from(old_len > 0);
            let added = usize::from(e.is_some());
            let count = (usize::from(count) + added - removed) as u16;
            self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        }
        Ok(())
    }
}

fn header_count(lp: &[u8]) -> u16 {
    u16::from_le_bytes([lp[4], lp[5]])
}

/// Bytes one more entry `e` adds to a listpack (encoding, data and backlen).
pub fn entry_bytes(e: Entry<'_>) -> usize {
    let n = encoded_len(e);
    n + backlen_size(n as u64)
}

/// Size of an entry's encoding and data (without backlen): what `lpEncodeGetType` computes.
fn encoded_len(e: Entry<'_>) -> usize {
    match e {
        Entry::Int(n) => int_len(n),
        Entry::Str(s) => match parse_i64(s) {
            Some(n) => int_len(n),
            None => str_len(s.len()),
        },
    }
}

fn int_len(v: i64) -> usize {
    match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8388608..=8388607 => 4,
        -2147483648..=2147483647 => 5,
        _ => 9,
    }
}

fn str_len(len: usize) -> usize {
    if len < 64 {
        1 + len
    } else if len < 4096 {
        2 + len
    } else {
        5 + len
    }
}

/// Appends the full encoding of `e` (encoding, data, backlen) to `out`.
pub fn encode_entry(out: &mut Vec<u8>, e: Entry<'_>) {
    let start = out.len();
    match e {
        Entry::Int(n) => encode_int(out, n),
        Entry::Str(s) => match parse_i64(s) {
            Some(n) => encode_int(out, n),
            None => encode_str(out, s),
        },
    }
    let len = (out.len() - start) as u64;
    encode_backlen(out, len);
}

fn encode_int(out: &mut Vec<u8>, v: i64) {
    match v {
        0..=127 => out.push(v as u8),
        -4096..=4095 => {
            let u = (v as u64) & 0x1FFF;
            out.extend_from_slice(&[0xC0 | (u >> 8) as u8, u as u8]);
        }
        -32768..=32767 => {
            out.push(0xF1);
            out.extend_from_slice(&(v as i16).to_le_bytes());
        }
        -8388608..=8388607 => {
            out.push(0xF2);
            out.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        }
        -2147483648..=2147483647 => {
            out.push(0xF3);
            out.extend_from_slice(&(v as i32).to_le_bytes());
        }
        _ => {
            out.push(0xF4);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// The whole entry (encoding, data, backlen) of the integer `v`, on the stack: at most 9
/// bytes of encoding and data, whose backlen is one byte.
fn int_entry(v: i64) -> ([u8; 10], usize) {
    let mut out = [0u8; 10];
    let len = int_len(v);
    match len {
        1 => out[0] = v as u8,
        2 => {
            let u = (v as u64) & 0x1FFF;
            out[..2].copy_from_slice(&[0xC0 | (u >> 8) as u8, u as u8]);
        }
        3 => {
            out[0] = 0xF1;
            out[1..3].copy_from_slice(&(v as i16).to_le_bytes());
        }
        4 => {
            out[0] = 0xF2;
            out[1..4].copy_from_slice(&(v as i32).to_le_bytes()[..3]);
        }
        5 => {
            out[0] = 0xF3;
            out[1..5].copy_from_slice(&(v as i32).to_le_bytes());
        }
        _ => {
            out[0] = 0xF4;
            out[1..9].copy_from_slice(&v.to_le_bytes());
        }
    }
    out[len] = len as u8; // a backlen below 128 is the length itself, in one byte
    (out, len + 1)
}

fn encode_str(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 64 {
        out.push(0x80 | len as u8);
    } else if len < 4096 {
        out.extend_from_slice(&[0xE0 | (len >> 8) as u8, len as u8]);
    } else {
        out.push(0xF0);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    }
    out.extend_from_slice(s);
}

/// Bytes of the backlen of an entry whose encoding and data take `l` bytes
/// (`lpEncodeBacklen`; note Redis's bounds are `< 16383`, not `<= 16383`, and so on).
pub fn backlen_size(l: u64) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2097151 {
        3
    } else if l < 268435455 {
        4
    } else {
        5
    }
}

fn encode_backlen(out: &mut Vec<u8>, l: u64) {
    let n = backlen_size(l);
    for i in (0..n).rev() {
        let group = ((l >> (7 * i)) & 127) as u8;
        // The byte written first (farthest from the next entry) has no continuation bit.
        out.push(if i == n - 1 { group } else { group | 128 });
    }
}

/// Reads a backlen whose last byte is at `end` (`lpDecodeBacklen`); `None` past 5 bytes or
/// the start of the buffer.
fn decode_backlen(lp: &[u8], end: usize) -> Option<u64> {
    let mut val = 0u64;
    let mut shift = 0;
    let mut p = end;
    loop {
        let b = *lp.get(p)?;
        val |= u64::from(b & 127) << shift;
        if b & 128 == 0 {
            return Some(val);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
        p = p.checked_sub(1)?;
    }
}

/// Bytes of the encoding (the first byte and the length bytes) of the entry starting with
/// byte `b`; 0 for a byte no entry starts with (`lpCurrentEncodedSizeBytes`).
fn header_bytes(b: u8) -> usize {
    match b {
        // 7-bit integers, 6-bit strings, 13-bit integers.
        0x00..=0xDF => 1,
        0xE0..=0xEF => 2,
        0xF0 => 5,
        0xF1..=0xF4 => 1,
        0xFF => 1,
        _ => 0,
    }
}

/// Size of encoding + data of the entry at `p` (`lpCurrentEncodedSizeUnsafe`), reading its
/// length bytes; `None` if they are not there.
fn encoded_size_at(lp: &[u8], p: usize) -> Option<u64> {
    let b = *lp.get(p)?;
    Some(match b {
        0x00..=0x7F => 1,
        0x80..=0xBF => 1 + u64::from(b & 0x3F),
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 2 + ((u64::from(b & 0xF) << 8) | u64::from(*lp.get(p + 1)?)),
        0xF0 => 5 + u64::from(u32::from_le_bytes(lp.get(p + 1..p + 5)?.try_into().ok()?)),
        0xF1 => 3,
        0xF2 => 4,
        0xF3 => 5,
        0xF4 => 9,
        _ => return None,
    })
}

/// Full size (with backlen) of the entry at `p`.
fn entry_size_at(lp: &[u8], p: usize) -> Option<usize> {
    let n = encoded_size_at(lp, p)?;
    usize::try_from(n + backlen_size(n) as u64).ok()
}

/// Offset of the entry before the one (or the terminator) at `p`.
fn prev_offset(lp: &[u8], p: usize) -> Option<usize> {
    let prevlen = decode_backlen(lp, p.checked_sub(1)?)?;
    let total = usize::try_from(prevlen + backlen_size(prevlen) as u64).ok()?;
    let start = p.checked_sub(total)?;
    (start >= HDR_SIZE).then_some(start)
}

/// Decodes the entry at `p`: the entry and its full size. `None` if the bytes are not there
/// or the first byte starts no entry.
fn decode(lp: &[u8], p: usize) -> Option<(Entry<'_>, usize)> {
    let b = *lp.get(p)?;
    let le = |n: usize| -> Option<u64> {
        let bytes = lp.get(p + 1..p + 1 + n)?;
        Some(bytes.iter().rev().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    };
    let (e, enc) = match b {
        0x00..=0x7F => (Entry::Int(i64::from(b)), 1),
        0x80..=0xBF => {
            let len = usize::from(b & 0x3F);
            (Entry::Str(lp.get(p + 1..p + 1 + len)?), 1 + len)
        }
        0xC0..=0xDF => {
            let u = (i64::from(b & 0x1F) << 8) | i64::from(*lp.get(p + 1)?);
            (Entry::Int(if u >= 1 << 12 { u - (1 << 13) } else { u }), 2)
        }
        0xE0..=0xEF => {
            let len = (usize::from(b & 0xF) << 8) | usize::from(*lp.get(p + 1)?);
            (Entry::Str(lp.get(p + 2..p + 2 + len)?), 2 + len)
        }
        0xF0 => {
            let len = usize::try_from(le(4)?).ok()?;
            (Entry::Str(lp.get(p + 5..p.checked_add(5 + len)?)?), 5 + len)
        }
        0xF1 => (Entry::Int(i64::from(le(2)? as u16 as i16)), 3),
        0xF2 => (Entry::Int((((le(3)? as u32) << 8) as i32 >> 8).into()), 4),
        0xF3 => (Entry::Int(i64::from(le(4)? as u32 as i32)), 5),
        0xF4 => (Entry::Int(le(8)? as i64), 9),
        _ => return None,
    };
    Some((e, enc + backlen_size(enc as u64)))
}

/// Checks a listpack from outside entry by entry, exactly as Redis's `lpValidateIntegrity`
/// with `deep` set: the header's total equals the size, the last byte is the terminator, every
/// entry lies inside with a backlen that matches it, the walk ends on the terminator, and the
/// header's count (unless 65535) is the number of entries. Returns that number.
pub fn validate(lp: &[u8]) -> Result<usize, Corrupt> {
    validate_header(lp)?;
    let size = lp.len();
    let last = size - 1;
    let mut p = HDR_SIZE;
    let mut count = 0usize;
    while lp[p] != EOF {
        // lpValidateNext: the length bytes, then the whole entry, must lie before the end.
        let lenbytes = header_bytes(lp[p]);
        if lenbytes == 0 || p + lenbytes > last {
            return Err(Corrupt("listpack entry with a bad encoding"));
        }
        let enc = encoded_size_at(lp, p).ok_or(Corrupt("listpack entry with a bad encoding"))?;
        let backlen = backlen_size(enc) as u64;
        let entrylen = enc + backlen;
        if (p as u64) + entrylen > last as u64 {
            return Err(Corrupt("listpack entry reaches past the end"));
        }
        p += entrylen as usize;
        match decode_backlen(lp, p - 1) {
            Some(prev) if prev + backlen == entrylen => {}
            _ => return Err(Corrupt("listpack backlen does not match its entry")),
        }
        count += 1;
    }
    if p != last {
        return Err(Corrupt("listpack terminator before its end"));
    }
    let n = header_count(lp);
    if n != COUNT_UNKNOWN && usize::from(n) != count {
        return Err(Corrupt("listpack count does not match its entries"));
    }
    Ok(count)
}

/// The checks Redis makes without `deep`: the header can be read, its total is the size, and
/// the last byte is the terminator.
pub fn validate_header(lp: &[u8]) -> Result<(), Corrupt> {
    if lp.len() < EMPTY_BYTES {
        return Err(Corrupt("listpack shorter than its header"));
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]);
    if total as usize != lp.len() {
        return Err(Corrupt("listpack size does not match its header"));
    }
    if lp[lp.len() - 1] != EOF {
        return Err(Corrupt("listpack without its terminator"));
    }
    Ok(())
}

/// The entries of a listpack's bytes. Meant for bytes that passed [`validate`]; on others it
/// stops at the first entry it cannot read (it never panics).
pub fn iter(lp: &[u8]) -> Iter<'_> {
    let back = lp.len().saturating_sub(1).max(HDR_SIZE.min(lp.len()));
    Iter { lp, front: HDR_SIZE.min(lp.len()), back }
}

/// Iterator over a listpack's entries, from either end.
#[derive(Clone)]
pub struct Iter<'a> {
    lp: &'a [u8],
    /// Offset of the next entry from the front.
    front: usize,
    /// Offset just past the next entry from the back.
    back: usize,
}

impl<'a> Iter<'a> {
    /// Offset of the entry the next call to `next` returns.
    pub fn offset(&self) -> usize {
        self.front
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        if self.front >= self.back {
            return None;
        }
        match decode(self.lp, self.front) {
            Some((e, size)) if self.front + size <= self.back => {
                self.front += size;
                Some(e)
            }
            _ => {
                self.front = self.back;
                None
            }
        }
    }
}

impl<'a> DoubleEndedIterator for Iter<'a> {
    fn next_back(&mut self) -> Option<Entry<'a>> {
        if self.front >= self.back {
            return None;
        }
        let start = prev_offset(self.lp, self.back).filter(|&s| s >= self.front);
        match start.and_then(|s| decode(self.lp, s).map(|(e, size)| (s, e, size))) {
            Some((s, e, size)) if s + size == self.back => {
                self.back = s;
                Some(e)
            }
            _ => {
                self.back = self.front;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
