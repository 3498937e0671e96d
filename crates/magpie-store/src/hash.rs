//! Hashes: maps from field to value, both byte strings.
//!
//! Two encodings, as Redis 7.0 has (and named as OBJECT ENCODING names them):
//!
//! - **listpack**, for up to [`MAX_PACK_ENTRIES`] fields whose fields and values are all at most
//!   [`MAX_PACK_VALUE`] bytes: every pair in one `Vec<u8>`, in insertion order, each as
//!   `[field length: u8][value length: u8][field][value]`. Lookups scan it, which at this size
//!   costs less than hashing and chasing pointers, and the whole hash is one allocation kept at
//!   its exact size (reallocated on every change, as Redis reallocates a listpack). The count
//!   of pairs is the buffer's last two bytes, so a small hash is 16 bytes (a boxed slice) plus
//!   that buffer.
//! - **hashtable**, above either threshold (for good: a big hash that shrinks stays a table, as
//!   in Redis). Pairs live in a dense vector of single allocations, each holding the field's
//!   length (a varint), the field and the value; a `hashbrown::HashTable<u32>` maps a field to
//!   its position in the vector. Removal moves the last pair into the hole, so the vector stays
//!   dense: random sampling is one index (HRANDFIELD), and HSCAN's cursor is a position that
//!   walks the vector from the end, which never misses a field present for the whole scan
//!   (see [`Hash::scan`]). The vector is kept in chunks and the index in segments (see
//!   `dense.rs` and `segtable.rs`), so both grow in bounded steps however big the hash, and a
//!   snapshot freezes the chunks instead of copying the pairs ([`Hash::freeze`]).
//!
//! Measured for 1M fields of 18 bytes with 64-byte values (mimalloc, as the server runs):
//! 127 bytes per field for this layout, against 134 for a `HashTable<Box<[u8]>>` of the same
//! pair allocations (no dense vector) and 158 for an `IndexMap<Box<[u8]>, Box<[u8]>>`; Redis 7.0
//! measures in docs/benchmarks.md ("Hashes").

use std::fmt;
use std::hash::BuildHasher;

use crate::dense::{self, Dense};
use crate::segtable::SegTable;

/// Most fields a listpack hash holds: Redis 7.0's `hash-max-listpack-entries`, whose default is
/// 512 (compiled in, and in the redis.conf it ships; 128 is the sorted sets' threshold).
pub const MAX_PACK_ENTRIES: usize = crate::limits::HASH_MAX_ENTRIES;
/// Longest field or value a listpack hash holds (Redis's `hash-max-listpack-value`).
pub const MAX_PACK_VALUE: usize = crate::limits::HASH_MAX_VALUE;

/// A hash. Fields are unique; iteration gives each (field, value) pair once.
#[derive(Clone, Default)]
pub struct Hash {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Pack(Pack),
    Table(Box<Table>),
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Pack(Pack::default())
    }
}

impl Hash {
    pub fn new() -> Hash {
        Hash::default()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.len(),
            Repr::Table(t) => t.entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of user data held (every field's and value's length), O(1).
    pub fn size(&self) -> usize {
        match &self.repr {
            Repr::Pack(p) => p.size(),
            Repr::Table(t) => t.size,
        }
    }

    /// OBJECT ENCODING, as Redis 7.0 names it.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Pack(_) => "listpack",
            Repr::Table(_) => "hashtable",
        }
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            Repr::Pack(p) => p.find(field).map(|at| &p.pairs()[at.value]),
            Repr::Table(t) => t.get(field),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Sets `field` to `value`. Returns true if the field is new, false if its value was
    /// replaced.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let Repr::Pack(p) = &mut self.repr {
            let max_value = crate::limits::HASH_VALUE.get();
            let fits = field.len() <= max_value && value.len() <= max_value;
            if fits {
                if let Some(at) = p.find(field) {
                    p.replace(at, value);
                    return false;
                }
                if p.len() < crate::limits::HASH_ENTRIES.get() {
                    p.push(field, value);
                    return true;
                }
            }
            self.convert();
        }
        let Repr::Table(t) = &mut self.repr else { unreachable!("converted above") };
        t.insert(field, value)
    }

    /// Removes `field`. Returns whether it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Pack(p) => {
                let Some(at) = p.find(field) else { return false };
                p.remove(at);
                true
            }
            Repr::Table(t) => t.remove(field),
        }
    }

    /// The (field, value) pairs: a listpack in insertion order, a table in no particular order.
    pub fn iter(&self) -> Iter<'_> {
        match &self.repr {
            Repr::Pack(p) => Iter(IterRepr::Pack { buf: p.pairs(), pos: 0, left: p.len() }),
            Repr::Table(t) => Iter(IterRepr::Table(t.entries.iter())),
        }
    }

    /// A random pair, each equally likely; `None` for an empty hash.
    pub fn random_pair(&self) -> Option<(&[u8], &[u8])> {
        if self.is_empty() {
            return None;
        }
        Some(self.pair_at(fastrand::usize(..self.len())))
    }

    /// Endless random pairs, drawn independently (with repeats), each O(1) (HRANDFIELD with a
    /// negative count). Empty for an empty hash.
    pub fn random_pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let positions = Positions::of(self);
        let n = self.len();
        std::iter::repeat_with(move || positions.pair(self, fastrand::usize(..n))).take(if n == 0 {
            0
        } else {
            usize::MAX
        })
    }

    /// `count` distinct pairs chosen at random, in random order; every pair, in iteration
    /// order, when `count` is at least the length (HRANDFIELD with a positive count).
    pub fn random_distinct(&self, count: usize) -> Vec<(&[u8], &[u8])> {
        let n = self.len();
        if count >= n {
            return self.iter().collect();
        }
        let positions = Positions::of(self);
        let picked: Vec<usize> = if count.saturating_mul(3) > n {
            // A large share: shuffle the first `count` of all positions into place.
            let mut all: Vec<usize> = (0..n).collect();
            for i in 0..count {
                let j = fastrand::usize(i..n);
                all.swap(i, j);
            }
            all.truncate(count);
            all
        } else {
            // A small share: Floyd's algorithm draws `count` distinct positions in O(count).
            let mut set: std::collections::HashSet<usize, foldhash::fast::RandomState> =
                std::collections::HashSet::with_capacity_and_hasher(count, Default::default());
            let mut order = Vec::with_capacity(count);
            for j in n - count..n {
                let t = fastrand::usize(..=j);
                // Positions above `j - 1` were never drawn, so `j` is always new here.
                let pick = if set.insert(t) {
                    t
                } else {
                    set.insert(j);
                    j
                };
                order.push(pick);
            }
            fastrand::shuffle(&mut order);
            order
        };
        picked.into_iter().map(|i| positions.pair(self, i)).collect()
    }

    /// Visits pairs from `cursor` (0 to start), calling `f` for each; returns the cursor to
    /// continue from, 0 when the scan is complete (HSCAN).
    ///
    /// A listpack is visited whole in one call whatever the cursor, as Redis does. A table is
    /// walked from its last position down, `count` pairs per call; the cursor is the number of
    /// positions still to visit. Inserting appends at the end (already visited) and removing
    /// moves the last pair (visited, or the last unvisited one) into the hole, so a pair can
    /// only move from the visited part to the unvisited part, never back: a field present for
    /// the whole scan is never missed (it may be visited twice, which Redis allows).
    pub fn scan<'a>(&'a self, cursor: u64, count: usize, mut f: impl FnMut(&'a [u8], &'a [u8])) -> u64 {
        match &self.repr {
            Repr::Pack(_) => {
                for (field, value) in self {
                    f(field, value);
                }
                0
            }
            Repr::Table(t) => {
                let len = t.entries.len();
                let mut pos = if cursor == 0 { len } else { usize::try_from(cursor).map_or(len, |c| c.min(len)) };
                let mut visited = 0;
                while pos > 0 && visited < count {
                    pos -= 1;
                    visited += 1;
                    let (field, value) = split_entry(&t.entries[pos]);
                    f(field, value);
                }
                pos as u64
            }
        }
    }

    /// The pair at position `i` (0..len) of the iteration order: O(1) for a table, a walk for
    /// a listpack.
    fn pair_at(&self, i: usize) -> (&[u8], &[u8]) {
        match &self.repr {
            Repr::Pack(_) => self.iter().nth(i).expect("position within the hash"),
            Repr::Table(t) => split_entry(&t.entries[i]),
        }
    }

    /// Turns a listpack into a table, keeping the order of the pairs.
    fn convert(&mut self) {
        let table = Table::from_pairs(self.iter(), self.len());
        self.repr = Repr::Table(Box::new(table));
    }

    /// Checks the invariants (for tests): the size, the encoding's limits, the index.
    #[cfg(test)]
    fn check(&self) {
        let size: usize = self.iter().map(|(f, v)| f.len() + v.len()).sum();
        assert_eq!(size, self.size());
        assert_eq!(self.iter().count(), self.len());
        match &self.repr {
            Repr::Pack(p) => {
                assert!(p.len() <= MAX_PACK_ENTRIES);
                assert!(self.iter().all(|(f, v)| f.len() <= MAX_PACK_VALUE && v.len() <= MAX_PACK_VALUE));
                assert_eq!(p.pairs().len(), self.iter().map(|(f, v)| 2 + f.len() + v.len()).sum::<usize>());
                assert_eq!(p.0.len(), if p.len() == 0 { 0 } else { p.pairs().len() + 2 }, "count trailer");
            }
            Repr::Table(t) => {
                assert_eq!(t.index.len(), t.entries.len());
                for (i, e) in t.entries.iter().enumerate() {
                    let (field, _) = split_entry(e);
                    let found = t.index.find(t.hasher.hash_one(field), |&j| j as usize == i);
                    assert!(found.is_some(), "entry {i} is indexed under its hash");
                }
                t.index.check(|&j| t.hasher.hash_one(split_entry(&t.entries[j as usize]).0));
            }
        }
    }
}

/// Equal when they hold the same pairs, whatever their encodings and orders.
impl PartialEq for Hash {
    fn eq(&self, other: &Hash) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl Eq for Hash {}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        write!(f, "Hash({}) ", self.encoding())?;
        f.debug_map().entries(self.iter().map(|(k, v)| (text(k), text(v)))).finish()
    }
}

/// Builds a hash from pairs (a later pair for the same field replaces the earlier one), with
/// the encoding Redis would choose for that content (snapshot loading).
impl<F: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(F, V)> for Hash {
    fn from_iter<I: IntoIterator<Item = (F, V)>>(iter: I) -> Hash {
        let mut hash = Hash::new();
        for (field, value) in iter {
            hash.insert(field.as_ref(), value.as_ref());
        }
        hash
    }
}

impl<'a> IntoIterator for &'a Hash {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over a hash's (field, value) pairs; see [`Hash::iter`].
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Pack { buf: &'a [u8], pos: usize, left: usize },
    Table(dense::Iter<'a, Box<[u8]>>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            IterRepr::Pack { buf, pos, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let (field, value, next) = pack_pair(buf, *pos);
                *pos = next;
                Some((field, value))
            }
            IterRepr::Table(it) => it.next().map(|e| split_entry(e)),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            IterRepr::Pack { left, .. } => *left,
            IterRepr::Table(it) => it.len(),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl Hash {
    /// The image of this hash a snapshot writes, when the hash is too big to encode under the
    /// shard's lock: its vector's chunks, shared (O(chunks), no pair copied). A write that
    /// follows copies only the chunk it touches, while the image is alive. `None` for a hash
    /// small enough to encode at once.
    pub fn freeze(&mut self) -> Option<Frozen> {
        match &mut self.repr {
            Repr::Table(t) if dense::worth_freezing(t.entries.len(), t.size) => Some(Frozen(t.entries.freeze())),
            _ => None,
        }
    }

    /// Whether [`Hash::freeze`] gives an image.
    pub fn wants_freezing(&self) -> bool {
        matches!(&self.repr, Repr::Table(t) if dense::worth_freezing(t.entries.len(), t.size))
    }
}

/// A frozen image of a big hash (see [`Hash::freeze`]), readable on any thread without a lock.
pub struct Frozen(dense::Frozen<Box<[u8]>>);

impl Frozen {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// The (field, value) pairs, in the order [`Hash::iter`] gave.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.0.iter().map(|e| split_entry(e))
    }
}

/// Where each pair of a listpack starts, so that random access is O(1) for the many samples
/// of one HRANDFIELD (a table needs nothing: its positions are indices).
struct Positions(Vec<usize>);

impl Positions {
    fn of(hash: &Hash) -> Positions {
        let Repr::Pack(p) = &hash.repr else { return Positions(Vec::new()) };
        let mut starts = Vec::with_capacity(p.len());
        let mut pos = 0;
        for _ in 0..p.len() {
            starts.push(pos);
            pos = pack_pair(p.pairs(), pos).2;
        }
        Positions(starts)
    }

    fn pair<'a>(&self, hash: &'a Hash, i: usize) -> (&'a [u8], &'a [u8]) {
        match &hash.repr {
            Repr::Pack(p) => {
                let (field, value, _) = pack_pair(p.pairs(), self.0[i]);
                (field, value)
            }
            Repr::Table(t) => split_entry(&t.entries[i]),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The listpack encoding: `[flen: u8][vlen: u8][field][value]` per pair. Both lengths come first,
// so that a scan finds the next pair with one load per pair.

/// Where a pair lies in a pack: the pair starts at `start`; its value occupies `value`.
struct PackPos {
    start: usize,
    value: std::ops::Range<usize>,
}

/// The pair starting at `pos`, and where the next one starts.
fn pack_pair(buf: &[u8], pos: usize) -> (&[u8], &[u8], usize) {
    let (flen, vlen) = (usize::from(buf[pos]), usize::from(buf[pos + 1]));
    let vpos = pos + 2 + flen;
    (&buf[pos + 2..vpos], &buf[vpos..vpos + vlen], vpos + vlen)
}

/// A listpack hash's buffer: its pairs, then their count as two little-endian bytes (none at
/// all when there are no pairs), exactly as long as that.
#[derive(Clone, Default)]
struct Pack(Box<[u8]>);

/// Bytes of the count at a pack's end.
const COUNT: usize = 2;

impl Pack {
    fn len(&self) -> usize {
        match *self.0 {
            [.., lo, hi] => usize::from(u16::from_le_bytes([lo, hi])),
            _ => 0,
        }
    }

    /// The pairs, without the count.
    fn pairs(&self) -> &[u8] {
        &self.0[..self.0.len().saturating_sub(COUNT)]
    }

    /// Bytes of user data: the pairs less two length bytes each.
    fn size(&self) -> usize {
        self.pairs().len() - 2 * self.len()
    }

    fn find(&self, field: &[u8]) -> Option<PackPos> {
        let buf = self.pairs();
        let mut pos = 0;
        while let Some(&[flen, vlen]) = buf.get(pos..pos + 2) {
            let (flen, vlen) = (usize::from(flen), usize::from(vlen));
            let vpos = pos + 2 + flen;
            // Fields often differ only at the end (numbered names): the last byte rules most
            // out before the full comparison.
            if flen == field.len() && field.last().is_none_or(|&l| buf[vpos - 1] == l) && &buf[pos + 2..vpos] == field {
                return Some(PackPos { start: pos, value: vpos..vpos + vlen });
            }
            pos = vpos + vlen;
        }
        None
    }

    /// Changes the pairs through a `Vec` (`room`: bytes it will grow by), and the count by
    /// `delta`, leaving the buffer at its exact new size: one reallocation (in place when the
    /// allocator's size class still fits), as a listpack's.
    fn edit(&mut self, room: usize, delta: isize, f: impl FnOnce(&mut Vec<u8>)) {
        let count = self.len().checked_add_signed(delta).expect("a pack's count stays in range");
        let mut v = std::mem::take(&mut self.0).into_vec();
        v.truncate(v.len().saturating_sub(COUNT));
        v.reserve_exact(room + COUNT);
        f(&mut v);
        if count > 0 {
            let count = u16::try_from(count).expect("a pack holds at most 65535 pairs");
            v.extend_from_slice(&count.to_le_bytes());
        } else {
            v.clear();
        }
        self.0 = v.into_boxed_slice();
    }

    /// Appends a pair.
    fn push(&mut self, field: &[u8], value: &[u8]) {
        self.edit(2 + field.len() + value.len(), 1, |v| {
            v.push(field.len() as u8);
            v.push(value.len() as u8);
            v.extend_from_slice(field);
            v.extend_from_slice(value);
        });
    }

    /// Replaces the value of the pair at `at`.
    fn replace(&mut self, at: PackPos, value: &[u8]) {
        self.0[at.start + 1] = value.len() as u8;
        let at = at.value;
        if value.len() == at.len() {
            self.0[at].copy_from_slice(value);
            return;
        }
        self.edit(value.len().saturating_sub(at.len()), 0, |v| {
            v.splice(at, value.iter().copied());
        });
    }

    /// Removes the pair at `at`.
    fn remove(&mut self, at: PackPos) {
        self.edit(0, -1, |v| {
            v.drain(at.start..at.value.end);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The hashtable encoding.

#[derive(Clone)]
struct Table {
    /// One allocation per pair: `[field length: varint][field][value]`. Dense: removal moves
    /// the last pair into the hole.
    entries: Dense<Box<[u8]>>,
    /// Positions in `entries`, found by the hash of their field.
    index: SegTable<u32>,
    /// Seeded per table, so that nobody can choose fields that collide.
    hasher: foldhash::fast::RandomState,
    /// Bytes of user data: the lengths of every field and value.
    size: usize,
}

impl Table {
    fn from_pairs<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>, len: usize) -> Table {
        let mut t = Table {
            entries: Dense::with_capacity(len + 1),
            index: SegTable::with_capacity(len + 1),
            hasher: foldhash::fast::RandomState::default(),
            size: 0,
        };
        for (field, value) in pairs {
            t.insert(field, value);
        }
        t
    }

    fn find(&self, field: &[u8]) -> Option<usize> {
        let hash = self.hasher.hash_one(field);
        let entries = &self.entries;
        self.index.find(hash, |&i| split_entry(&entries[i as usize]).0 == field).map(|&i| i as usize)
    }

    fn get(&self, field: &[u8]) -> Option<&[u8]> {
        self.find(field).map(|i| split_entry(&self.entries[i]).1)
    }

    /// Sets `field`; returns true if it is new.
    fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        let hash = self.hasher.hash_one(field);
        let Table { entries, index, hasher, size } = self;
        if let Some(&i) = index.find(hash, |&i| split_entry(&entries[i as usize]).0 == field) {
            let entry = entries.get_mut(i as usize);
            let value_at = entry.len() - split_entry(entry).1.len();
            let old_len = entry.len() - value_at;
            if old_len == value.len() {
                entry[value_at..].copy_from_slice(value);
            } else {
                *entry = make_entry(field, value);
            }
            *size = *size - old_len + value.len();
            return false;
        }
        // Positions are u32 to keep the index small: 2^32 fields would take 400 GB and more.
        let i = u32::try_from(entries.len()).expect("a hash holds fewer than 2^32 fields");
        entries.push(make_entry(field, value));
        *size += field.len() + value.len();
        index.insert_unique(hash, i, |&j| hasher.hash_one(split_entry(&entries[j as usize]).0));
        true
    }

    /// Removes `field`; returns whether it was there.
    fn remove(&mut self, field: &[u8]) -> bool {
        let hash = self.hasher.hash_one(field);
        let Table { entries, index, hasher, size } = self;
        let Some(i) = index.remove(
            hash,
            |&i| split_entry(&entries[i as usize]).0 == field,
            |&j| hasher.hash_one(split_entry(&entries[j as usize]).0),
        ) else {
            return false;
        };
        let i = i as usize;
        let removed = entries.swap_remove(i);
        *size -= removed.len() - varint_len(field.len());
        if i < entries.len() {
            // The last pair moved into position `i`: point its index slot there.
            let last = entries.len() as u32;
            let moved = hasher.hash_one(split_entry(&entries[i]).0);
            if let Some(slot) = index.find_mut(moved, |&j| j == last) {
                *slot = i as u32;
            }
        }
        // Memory goes back as the hash shrinks: the index segment by segment, the vector chunk
        // by chunk.
        true
    }
}

/// One pair as stored in a table: `[field length: varint][field][value]`, allocated exactly.
fn make_entry(field: &[u8], value: &[u8]) -> Box<[u8]> {
    let mut e = Vec::with_capacity(varint_len(field.len()) + field.len() + value.len());
    let mut n = field.len();
    while n >= 0x80 {
        e.push((n as u8) | 0x80);
        n >>= 7;
    }
    e.push(n as u8);
    e.extend_from_slice(field);
    e.extend_from_slice(value);
    e.into_boxed_slice()
}

/// The field and value of a table entry.
fn split_entry(e: &[u8]) -> (&[u8], &[u8]) {
    let (mut n, mut shift, mut p) = (0usize, 0, 0);
    loop {
        let b = e[p];
        n |= usize::from(b & 0x7f) << shift;
        p += 1;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    e[p..].split_at(n)
}

fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap, HashSet};

    fn h(pairs: &[(&str, &str)]) -> Hash {
        pairs.iter().map(|(f, v)| (f.as_bytes(), v.as_bytes())).collect()
    }

    #[test]
    fn small_hashes_are_listpacks_in_insertion_order() {
        let mut hash = h(&[("b", "1"), ("a", "2"), ("c", "3")]);
        assert_eq!(hash.encoding(), "listpack");
        assert!(!hash.insert(b"a", b"twenty"));
        assert!(hash.remove(b"b"));
        assert!(!hash.remove(b"b"));
        let pairs: Vec<(&[u8], &[u8])> = hash.iter().collect();
        assert_eq!(pairs, [(&b"a"[..], &b"twenty"[..]), (b"c", b"3")]);
        assert_eq!((hash.len(), hash.size()), (2, 9));
        assert_eq!(hash.get(b"c"), Some(&b"3"[..]));
        assert_eq!(hash.get(b"x"), None);
        hash.check();
    }

    #[test]
    fn converts_above_512_fields_or_64_bytes_and_never_back() {
        let mut hash = Hash::new();
        for i in 0..MAX_PACK_ENTRIES {
            assert!(hash.insert(format!("f{i}").as_bytes(), b"v"));
        }
        assert_eq!(hash.encoding(), "listpack");
        assert!(!hash.insert(b"f0", b"w")); // replacing does not grow it
        assert_eq!(hash.encoding(), "listpack");
        assert!(hash.insert(b"f512", b"v"));
        assert_eq!(hash.encoding(), "hashtable");
        // Order is kept through the conversion.
        assert_eq!(hash.iter().next(), Some((&b"f0"[..], &b"w"[..])));
        for i in 0..=MAX_PACK_ENTRIES {
            hash.remove(format!("f{i}").as_bytes());
        }
        assert!(hash.is_empty());
        assert_eq!(hash.encoding(), "hashtable");
        hash.check();

        let mut long = h(&[("a", "1")]);
        long.insert(b"a", &[b'x'; 64]);
        assert_eq!(long.encoding(), "listpack");
        long.insert(b"a", &[b'x'; 65]);
        assert_eq!(long.encoding(), "hashtable");
        let mut long_field = h(&[("a", "1")]);
        long_field.insert(&[b'f'; 65], b"");
        assert_eq!(long_field.encoding(), "hashtable");
        assert_eq!(long_field.size(), 2 + 65);
        long_field.check();
    }

    #[test]
    fn binary_and_empty_fields_and_values() {
        let odd: &[&[u8]] = &[b"", b"\0", b"\r\n", &[0xff; 64], &[7; 200], &[0x80; 300]];
        for big in [false, true] {
            let mut hash = Hash::new();
            if big {
                for i in 0..600 {
                    hash.insert(format!("pad{i}").as_bytes(), b"");
                }
            }
            for (i, f) in odd.iter().enumerate() {
                hash.insert(f, odd[odd.len() - 1 - i]);
            }
            for (i, f) in odd.iter().enumerate() {
                assert_eq!(hash.get(f), Some(odd[odd.len() - 1 - i]));
            }
            hash.check();
        }
    }

    #[test]
    fn equality_ignores_encoding_and_order() {
        let a = h(&[("x", "1"), ("y", "2")]);
        let b = h(&[("y", "2"), ("x", "1")]);
        assert_eq!(a, b);
        let mut big = Hash::new();
        for i in 0..600 {
            big.insert(format!("f{i}").as_bytes(), b"v");
        }
        for i in 2..600 {
            big.remove(format!("f{i}").as_bytes());
        }
        assert_eq!(big, h(&[("f1", "v"), ("f0", "v")]));
        assert_ne!(big, h(&[("f1", "v"), ("f0", "w")]));
        assert_eq!(big.clone(), big);
        assert!(format!("{big:?}").starts_with("Hash(hashtable) {"));
    }

    /// Random operations, checked against a `BTreeMap` after every step: contents, length,
    /// size, the encoding Redis would have, and the table's index.
    #[test]
    fn random_operations_agree_with_a_model() {
        let mut rng = fastrand::Rng::with_seed(11);
        for round in 0..20 {
            let mut hash = Hash::new();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut converted = false;
            // Some rounds stay small, some grow past the thresholds.
            let fields = [10, 100, 600, 1000][round % 4];
            for step in 0..3000 {
                let field = format!("f{}", rng.usize(..fields)).into_bytes();
                match rng.u8(..10) {
                    0..=4 => {
                        let long = rng.u8(..200) == 0;
                        let len = if long { 65 } else { rng.usize(..20) };
                        let value: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
                        let new = hash.insert(&field, &value);
                        assert_eq!(new, model.insert(field, value).is_none(), "step {step}");
                    }
                    5..=7 => assert_eq!(hash.remove(&field), model.remove(&field).is_some()),
                    8 => assert_eq!(hash.get(&field), model.get(&field).map(Vec::as_slice)),
                    _ => {
                        let got: BTreeMap<Vec<u8>, Vec<u8>> =
                            hash.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
                        assert_eq!(got, model);
                    }
                }
                converted |= model.len() > MAX_PACK_ENTRIES || model.values().any(|v| v.len() > MAX_PACK_VALUE);
                assert_eq!(hash.encoding(), if converted { "hashtable" } else { "listpack" }, "step {step}");
                assert_eq!(hash.len(), model.len());
                let size: usize = model.iter().map(|(f, v)| f.len() + v.len()).sum();
                assert_eq!(hash.size(), size);
                if step % 50 == 0 {
                    hash.check();
                }
            }
            hash.check();
        }
    }

    fn scan_all(hash: &mut Hash, count: usize, mut between: impl FnMut(&mut Hash, usize)) -> Vec<Vec<u8>> {
        let mut seen = Vec::new();
        let (mut cursor, mut calls) = (0, 0);
        loop {
            cursor = hash.scan(cursor, count, |f, _| seen.push(f.to_vec()));
            calls += 1;
            if cursor == 0 {
                return seen;
            }
            between(hash, calls);
        }
    }

    #[test]
    fn scan_visits_everything_once_when_nothing_changes() {
        let mut small = h(&[("a", "1"), ("b", "2")]);
        assert_eq!(small.scan(12345, 1, |_, _| {}), 0, "a listpack is returned whole");
        assert_eq!(scan_all(&mut small, 1, |_, _| {}).len(), 2);
        let mut big: Hash = (0..1000).map(|i| (format!("f{i}"), "v")).collect();
        let seen = scan_all(&mut big, 7, |_, _| {});
        assert_eq!(seen.len(), 1000);
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 1000);
        assert_eq!(big.scan(0, 5000, |_, _| {}), 0);
        assert_eq!(big.scan(u64::MAX, 10, |_, _| {}), 990, "a cursor past the end starts at the end");
    }

    #[test]
    fn scan_never_misses_a_field_present_throughout_despite_churn() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut hash = Hash::new();
        for i in 0..500 {
            hash.insert(format!("stable{i}").as_bytes(), b"v");
            hash.insert(format!("churn{i}").as_bytes(), b"v");
        }
        let mut next = 0;
        let seen = scan_all(&mut hash, 10, |hash, _| {
            for _ in 0..8 {
                let victim = format!("churn{}", rng.usize(..500));
                hash.remove(victim.as_bytes());
                hash.insert(format!("new{next}").as_bytes(), b"v");
                next += 1;
            }
        });
        let seen: HashSet<Vec<u8>> = seen.into_iter().collect();
        for i in 0..500 {
            assert!(seen.contains(format!("stable{i}").as_bytes()), "missed stable{i}");
        }
        hash.check();
    }

    #[test]
    fn random_sampling_is_roughly_uniform() {
        fastrand::seed(5);
        for n in [10, 1000] {
            let hash: Hash = (0..n).map(|i| (format!("f{i}"), "v")).collect();
            let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
            let draws = n * 1000;
            for (f, _) in hash.random_pairs().take(draws) {
                *counts.entry(f.to_vec()).or_default() += 1;
            }
            assert_eq!(counts.len(), n);
            for (f, c) in &counts {
                assert!((700..1300).contains(c), "{}: {c} of {draws}", String::from_utf8_lossy(f));
            }
            let mut single: HashMap<Vec<u8>, usize> = HashMap::new();
            for _ in 0..draws {
                *single.entry(hash.random_pair().unwrap().0.to_vec()).or_default() += 1;
            }
            assert!(single.values().all(|c| (700..1300).contains(c)), "{single:?}");
        }
        assert_eq!(Hash::new().random_pairs().count(), 0);
        assert_eq!(Hash::new().random_pair(), None);
    }

    #[test]
    fn distinct_samples_are_distinct_and_fair() {
        fastrand::seed(9);
        for n in [5, 100, 1000] {
            let hash: Hash = (0..n).map(|i| (format!("f{i}"), format!("v{i}"))).collect();
            let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
            for count in [1, 2, n / 3, n / 2, n - 1] {
                for _ in 0..200 {
                    let got = hash.random_distinct(count);
                    assert_eq!(got.len(), count);
                    let fields: HashSet<&[u8]> = got.iter().map(|p| p.0).collect();
                    assert_eq!(fields.len(), count, "distinct");
                    for (f, v) in &got {
                        assert_eq!(hash.get(f), Some(*v));
                        if count == 1 {
                            *counts.entry(f.to_vec()).or_default() += 1;
                        }
                    }
                }
            }
            assert_eq!(hash.random_distinct(n).len(), n);
            assert_eq!(hash.random_distinct(usize::MAX).len(), n);
            if n == 5 {
                // 400 single draws (count 1 comes up twice above): 80 each expected.
                assert!(counts.values().all(|&c| (50..110).contains(&c)), "{counts:?}");
            }
        }
    }

    #[test]
    fn big_tables_shrink_when_mostly_empty() {
        let mut hash: Hash = (0..10_000).map(|i| (format!("f{i}"), "v")).collect();
        for i in 0..9_990 {
            hash.remove(format!("f{i}").as_bytes());
        }
        let Repr::Table(t) = &hash.repr else { panic!() };
        assert!(t.entries.capacity() < 100, "{}", t.entries.capacity());
        assert_eq!(hash.len(), 10);
        hash.check();
    }

    #[test]
    fn a_small_hash_is_16_bytes_and_its_buffer() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Hash>();
        assert_eq!(std::mem::size_of::<Hash>(), 16);
        let mut hash = h(&[("a", "1"), ("bc", "")]);
        let Repr::Pack(p) = &hash.repr else { panic!() };
        assert_eq!(p.0.len(), 2 + 2 + 2 + 2 + 2, "two pairs and the count");
        assert_eq!((p.len(), hash.size()), (2, 4));
        hash.insert(b"a", b"longer");
        hash.remove(b"bc");
        let Repr::Pack(p) = &hash.repr else { panic!() };
        assert_eq!((p.len(), p.0.len(), hash.size()), (1, 2 + 1 + 6 + 2, 7));
        hash.remove(b"a");
        let Repr::Pack(p) = &hash.repr else { panic!() };
        assert!(p.0.is_empty(), "an empty pack keeps no count");
        assert_eq!(hash.len(), 0);
    }

    /// Big hashes grow in bounded steps: no insert moves more than one index segment's
    /// entries (a single table would move all of them, reading every field, at each doubling).
    #[test]
    fn a_growing_hash_moves_a_bounded_number_of_fields_per_insert() {
        let mut hash = Hash::new();
        let mut worst = 0;
        for i in 0..200_000 {
            let before = match &hash.repr {
                Repr::Table(t) => t.index.moved(),
                Repr::Pack(_) => 0,
            };
            hash.insert(format!("field:{i}").as_bytes(), b"v");
            if let Repr::Table(t) = &hash.repr {
                worst = worst.max(t.index.moved() - before);
            }
        }
        assert!(worst <= crate::segtable::SEGMENT_BUCKETS, "one insert moved {worst} index entries");
        let Repr::Table(t) = &hash.repr else { panic!() };
        assert!(t.index.segment_count() > 30, "{}", t.index.segment_count());
        hash.check();
        // HSCAN's guarantee while the hash keeps growing and losing fields.
        let mut seen = HashSet::new();
        let (mut cursor, mut next) = (0, 0);
        loop {
            cursor = hash.scan(cursor, 100, |f, _| {
                seen.insert(f.to_vec());
            });
            if cursor == 0 {
                break;
            }
            for _ in 0..150 {
                hash.insert(format!("new{next}").as_bytes(), b"v");
                next += 1;
            }
            for _ in 0..50 {
                hash.remove(format!("new{}", fastrand::usize(..next)).as_bytes());
            }
        }
        assert!((0..200_000).all(|i| seen.contains(format!("field:{i}").as_bytes())));
        hash.check();
    }

    /// A snapshot's image of a big hash keeps its pairs exactly, and writes after the freeze
    /// copy only the chunks they touch.
    #[test]
    fn a_frozen_hash_keeps_its_pairs_and_writes_copy_only_their_chunks() {
        let mut hash: Hash = (0..50_000).map(|i| (format!("f{i}"), format!("v{i}"))).collect();
        let before: BTreeMap<Vec<u8>, Vec<u8>> = hash.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        assert!(h(&[("a", "1")]).freeze().is_none(), "a small hash is encoded at once");
        let frozen = hash.freeze().expect("a big hash freezes");
        hash.insert(b"f10", b"changed");
        hash.insert(b"new", b"v");
        hash.remove(b"f20000");
        let Repr::Table(t) = &hash.repr else { panic!() };
        assert!(t.entries.unshared_chunks() <= 4, "{} chunks copied", t.entries.unshared_chunks());
        let image: BTreeMap<Vec<u8>, Vec<u8>> = frozen.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
        assert_eq!(image, before);
        assert_eq!(frozen.len(), before.len());
        assert_eq!(hash.get(b"f10"), Some(&b"changed"[..]));
        hash.check();
    }

    #[test]
    fn varints_round_trip() {
        for n in [0usize, 1, 127, 128, 300, 16_383, 16_384, 1 << 21, 512 << 20] {
            let field = vec![b'a'; n];
            let e = make_entry(&field, b"value");
            assert_eq!(e.len(), varint_len(n) + n + 5);
            assert_eq!(split_entry(&e), (&field[..], &b"value"[..]));
        }
    }
}
