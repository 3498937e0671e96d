//! The small encoding (Redis's `listpack`): every entry in one buffer, sorted by (score,
//! member). An entry is
//!
//! ```text
//! [head: u8] [member: 0..=64 bytes] [score: 1, 4 or 8 bytes, little-endian]
//! ```
//!
//! with `head = kind * 65 + member length`. A score that is an integer is stored as an `i8`
//! (kind 0) or an `i32` (kind 1), any other as an `f64` (kind 2), so a member with a small
//! integer score costs 2 bytes besides its own. The encoding is canonical (one byte string per
//! content), so buffers compare as contents do.
//!
//! Like Redis's listpack, which keeps an integer score as an integer, a score of -0 is stored
//! as 0.
//!
//! Every operation is a linear scan: a pack holds at most [`MAX_ENTRIES`] entries of at most
//! [`MAX_MEMBER`] bytes (about 9 KB), which the scan covers faster than a tree is descended.

use super::{LexRange, ScoreRange, less};

/// Entries a pack may hold (Redis's `zset-max-listpack-entries`).
pub const MAX_ENTRIES: usize = crate::limits::ZSET_MAX_ENTRIES;
/// Longest member a pack may hold (Redis's `zset-max-listpack-value`).
pub const MAX_MEMBER: usize = crate::limits::ZSET_MAX_MEMBER;

/// Member lengths 0..=64: the number of heads of one kind.
const SPAN: u8 = MAX_MEMBER as u8 + 1;
const I8: u8 = 0;
const I32: u8 = 1;
const F64: u8 = 2;

/// The entries, then (unless there are none) a trailer of two little-endian `u16`s: the count
/// of entries and the set's size (members' lengths plus 8 a score: at most 128 x 72 bytes).
/// Exactly as long as that, as a listpack, so a `ZSet` is this boxed slice alone, 16 bytes (a
/// `Vec`'s capacity and a count and size beside it had made it 40, a 48-byte box).
#[derive(Clone, Default, PartialEq, Eq)]
pub(super) struct Pack {
    buf: Box<[u8]>,
}

/// Bytes of a pack's trailer.
const TRAILER: usize = 4;

/// One decoded entry and where the next one starts.
#[derive(Clone, Copy)]
pub(super) struct Entry<'a> {
    pub member: &'a [u8],
    pub score: f64,
    pub start: usize,
    pub end: usize,
}

/// The positions of a pack's entries, for access by rank and backward walks.
pub(super) struct Offsets {
    starts: [u16; MAX_ENTRIES + 1],
    len: usize,
}

impl Offsets {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn start(&self, rank: usize) -> usize {
        usize::from(self.starts[rank])
    }
}

/// Decodes the entry at `start` (which must be an entry's start).
#[inline]
fn decode(buf: &[u8], start: usize) -> Entry<'_> {
    let head = buf[start];
    let (kind, len) = (head / SPAN, usize::from(head % SPAN));
    let m = start + 1;
    let s = m + len;
    let (score, width) = match kind {
        I8 => (f64::from(buf[s] as i8), 1),
        I32 => {
            let mut b = [0u8; 4];
            b.copy_from_slice(&buf[s..s + 4]);
            (f64::from(i32::from_le_bytes(b)), 4)
        }
        _ => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[s..s + 8]);
            (f64::from_le_bytes(b), 8)
        }
    };
    Entry { member: &buf[m..s], score, start, end: s + width }
}

/// Appends the encoding of an entry to `out`.
fn encode(member: &[u8], score: f64, out: &mut Vec<u8>) {
    debug_assert!(member.len() <= MAX_MEMBER && !score.is_nan());
    let len = member.len() as u8;
    // An integer score is stored as one (so -0 becomes 0, as in Redis's listpack).
    let int = score as i32;
    if f64::from(int) == score {
        if let Ok(small) = i8::try_from(int) {
            out.push(I8 * SPAN + len);
            out.extend_from_slice(member);
            out.push(small as u8);
        } else {
            out.push(I32 * SPAN + len);
            out.extend_from_slice(member);
            out.extend_from_slice(&int.to_le_bytes());
        }
    } else {
        out.push(F64 * SPAN + len);
        out.extend_from_slice(member);
        out.extend_from_slice(&score.to_le_bytes());
    }
}

/// Forward and backward walks over a pack's entries.
#[allow(clippy::large_enum_variant)] // short-lived, on the stack: no allocation per walk
pub(super) enum Iter<'a> {
    Forward { buf: &'a [u8], pos: usize },
    Backward { buf: &'a [u8], offsets: Offsets, next: usize },
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        match self {
            Iter::Forward { buf, pos } => {
                if *pos >= buf.len() {
                    return None;
                }
                let e = decode(buf, *pos);
                *pos = e.end;
                Some((e.member, e.score))
            }
            Iter::Backward { buf, offsets, next } => {
                let rank = next.checked_sub(1)?;
                *next = rank;
                let e = decode(buf, offsets.start(rank));
                Some((e.member, e.score))
            }
        }
    }
}

impl Pack {
    /// The count and the size from the trailer.
    fn trailer(&self) -> (usize, usize) {
        match *self.buf {
            [.., c0, c1, s0, s1] => {
                (usize::from(u16::from_le_bytes([c0, c1])), usize::from(u16::from_le_bytes([s0, s1])))
            }
            _ => (0, 0),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.trailer().0
    }

    /// Bytes of user data: the members' lengths plus 8 a score (see `ZSet::size`).
    pub(super) fn size(&self) -> usize {
        self.trailer().1
    }

    /// The entries, without the trailer.
    fn body(&self) -> &[u8] {
        &self.buf[..self.buf.len().saturating_sub(TRAILER)]
    }

    /// Whether a pack may hold `len` entries, the longest of `longest` bytes.
    pub(super) fn fits(len: usize, longest: usize) -> bool {
        len <= crate::limits::ZSET_ENTRIES.get() && longest <= crate::limits::ZSET_VALUE.get()
    }

    /// The entries in order, starting at the first.
    pub(super) fn entries(&self) -> impl Iterator<Item = Entry<'_>> + '_ {
        let buf = self.body();
        let mut pos = 0;
        std::iter::from_fn(move || {
            if pos >= buf.len() {
                return None;
            }
            let e = decode(buf, pos);
            pos = e.end;
            Some(e)
        })
    }

    pub(super) fn offsets(&self) -> Offsets {
        let mut o = Offsets { starts: [0; MAX_ENTRIES + 1], len: 0 };
        let mut pos = 0;
        let buf = self.body();
        while pos < buf.len() {
            o.starts[o.len] = pos as u16;
            o.len += 1;
            pos = decode(buf, pos).end;
        }
        o.starts[o.len] = pos as u16;
        o
    }

    /// The entry at `rank` (0 = the lowest).
    pub(super) fn at(&self, offsets: &Offsets, rank: usize) -> (&[u8], f64) {
        let e = decode(self.body(), offsets.start(rank));
        (e.member, e.score)
    }

    pub(super) fn find(&self, member: &[u8]) -> Option<(usize, Entry<'_>)> {
        self.entries().enumerate().find(|(_, e)| e.member == member)
    }

    /// Walks from `rank` towards the highest entry, or with `rev` towards the lowest.
    pub(super) fn iter_from(&self, rank: usize, rev: bool) -> Iter<'_> {
        if rev {
            let offsets = self.offsets();
            let next = if rank < offsets.len() { rank + 1 } else { 0 };
            Iter::Backward { buf: self.body(), offsets, next }
        } else {
            let pos = self.entries().nth(rank).map_or(self.body().len(), |e| e.start);
            Iter::Forward { buf: self.body(), pos }
        }
    }

    /// Adds an entry for a member that is not in the pack (the caller checks the limits).
    pub(super) fn insert(&mut self, member: &[u8], score: f64) {
        debug_assert!(self.len() < MAX_ENTRIES);
        let at =
            self.entries().find(|e| !less(e.score, e.member, score, member)).map_or(self.body().len(), |e| e.start);
        let mut encoded = Vec::with_capacity(1 + member.len() + 8);
        encode(member, score, &mut encoded);
        // Grow to the size needed, not double it (as a listpack does): the allocator rounds up
        // to its own size class, and growing within that class is done in place.
        self.edit(encoded.len(), (1, member.len() + 8), (0, 0), |buf| {
            buf.splice(at..at, encoded);
        });
    }

    /// A pack of `entries`, sorted by (score, member) with distinct members, within the limits.
    pub(super) fn from_sorted<'a>(entries: impl Iterator<Item = (&'a [u8], f64)>) -> Pack {
        let mut buf = Vec::new();
        let (mut len, mut size) = (0, 0);
        for (member, score) in entries {
            encode(member, score, &mut buf);
            len += 1;
            size += member.len() + 8;
        }
        debug_assert!(len <= MAX_ENTRIES);
        let mut p = Pack { buf: Box::default() };
        p.edit(buf.len(), (len, size), (0, 0), |v| *v = buf);
        p
    }

    /// Changes the entries through a `Vec` (`room`: bytes they will grow by), the count and the
    /// size by `add` less `sub`, then keeps the buffer exactly as long as it is: one
    /// reallocation, in place while the allocator's size class still fits.
    fn edit(&mut self, room: usize, add: (usize, usize), sub: (usize, usize), f: impl FnOnce(&mut Vec<u8>)) {
        let (len, size) = self.trailer();
        let (len, size) = (len + add.0 - sub.0, size + add.1 - sub.1);
        let mut buf = std::mem::take(&mut self.buf).into_vec();
        buf.truncate(buf.len().saturating_sub(TRAILER));
        buf.reserve_exact(room + TRAILER);
        f(&mut buf);
        if len > 0 {
            let (len, size) = (u16::try_from(len), u16::try_from(size));
            let (Ok(len), Ok(size)) = (len, size) else { unreachable!("a pack holds at most 128 x 72 bytes") };
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&size.to_le_bytes());
        } else {
            buf.clear();
        }
        self.buf = buf.into_boxed_slice();
    }

    /// Removes the `entries` entries in the bytes `start..end`.
    pub(super) fn remove_bytes(&mut self, start: usize, end: usize, entries: usize) {
        let mut size = 0;
        let mut pos = start;
        while pos < end {
            let e = decode(self.body(), pos);
            size += e.member.len() + 8;
            pos = e.end;
        }
        self.edit(0, (0, 0), (entries, size), |buf| {
            buf.drain(start..end);
        });
    }

    /// Removes the entries of ranks `from..to`.
    pub(super) fn remove_ranks(&mut self, from: usize, to: usize) {
        if from >= to {
            return;
        }
        let o = self.offsets();
        self.remove_bytes(o.start(from), o.start(to), to - from);
    }

    /// The ranks of the entries within `range`.
    pub(super) fn score_span(&self, range: &ScoreRange) -> std::ops::Range<usize> {
        if range.is_empty() {
            return 0..0;
        }
        let mut lo = None;
        let mut rank = 0;
        for e in self.entries() {
            if lo.is_none() && range.above_min(e.score) {
                lo = Some(rank);
            }
            if lo.is_some() && !range.below_max(e.score) {
                break;
            }
            rank += 1;
        }
        lo.map_or(0..0, |lo| lo..rank)
    }

    /// The ranks of the entries within a lexicographical range, found as Redis finds them in a
    /// listpack (the same as a binary search when all scores are equal, and as Redis's answer
    /// otherwise): forward, from the first entry at or above `min` while entries stay at or
    /// below `max`; backward (`rev`), from the last entry at or below `max` while entries stay
    /// at or above `min`.
    pub(super) fn lex_span(&self, range: &LexRange<'_>, rev: bool) -> std::ops::Range<usize> {
        let n = self.len();
        if range.is_empty() || n == 0 {
            return 0..0;
        }
        let o = self.offsets();
        let member = |rank: usize| self.at(&o, rank).0;
        // Redis first checks the ends: the last member must reach `min`, the first `max`.
        if !range.gte_min(member(n - 1)) || !range.lte_max(member(0)) {
            return 0..0;
        }
        if rev {
            let Some(last) = (0..n).rev().find(|&r| range.lte_max(member(r))) else { return 0..0 };
            let first = (0..=last).rev().take_while(|&r| range.gte_min(member(r))).last().unwrap_or(last + 1);
            first..last + 1
        } else {
            let Some(first) = (0..n).find(|&r| range.gte_min(member(r))) else { return 0..0 };
            let end = (first..n).find(|&r| !range.lte_max(member(r))).unwrap_or(n);
            first..end
        }
    }

    /// Bytes of the entries, without the trailer (for tests of the memory layout).
    #[cfg(test)]
    pub(super) fn bytes(&self) -> usize {
        self.body().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_take_the_smallest_exact_width() {
        let mut p = Pack::default();
        p.insert(b"a", 1.0);
        assert_eq!(p.bytes(), 3);
        p.insert(b"b", 1000.0);
        assert_eq!(p.bytes(), 3 + 6);
        p.insert(b"c", 1.5);
        assert_eq!(p.bytes(), 3 + 6 + 10);
        p.insert(b"d", 1e10);
        assert_eq!(p.bytes(), 3 + 6 + 10 + 10);
        let got: Vec<(Vec<u8>, f64)> = p.entries().map(|e| (e.member.to_vec(), e.score)).collect();
        assert_eq!(got, [(b"a".to_vec(), 1.0), (b"c".to_vec(), 1.5), (b"b".to_vec(), 1000.0), (b"d".to_vec(), 1e10)]);
    }

    #[test]
    fn negative_zero_is_stored_as_zero_and_extremes_survive() {
        let mut p = Pack::default();
        for (m, s) in [(&b"z"[..], -0.0), (b"min", f64::MIN), (b"ninf", f64::NEG_INFINITY), (b"tiny", 5e-324)] {
            p.insert(m, s);
        }
        let got: Vec<(&[u8], u64)> = p.entries().map(|e| (e.member, e.score.to_bits())).collect();
        let want: Vec<(&[u8], u64)> = vec![
            (b"ninf", f64::NEG_INFINITY.to_bits()),
            (b"min", f64::MIN.to_bits()),
            (b"z", 0.0f64.to_bits()),
            (b"tiny", 5e-324f64.to_bits()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn long_members_and_backward_walks() {
        let mut p = Pack::default();
        let long = [b'x'; MAX_MEMBER];
        p.insert(&long, 2.0);
        p.insert(b"", 1.0);
        p.insert(b"m", 1.0);
        let back: Vec<&[u8]> = p.iter_from(2, true).map(|(m, _)| m).collect();
        assert_eq!(back, [&long[..], b"m", b""]);
        let fwd: Vec<&[u8]> = p.iter_from(1, false).map(|(m, _)| m).collect();
        assert_eq!(fwd, [&b"m"[..], &long[..]]);
        assert_eq!(p.iter_from(3, true).count(), 0);
        assert_eq!(p.iter_from(3, false).count(), 0);
    }
}
