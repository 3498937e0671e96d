//! Sorted sets: members with scores, ordered by (score, member).
//!
//! Two encodings, as in Redis 7.0, chosen by the same thresholds and converted one way:
//!
//! - **small** (OBJECT ENCODING `listpack`): up to 128 members of at most 64 bytes, every entry
//!   in one buffer (see `pack`). Everything is a scan of a few KB.
//! - **big** (`skiplist`): a dense vector of (member, score), a hash index of positions and an
//!   order-statistic B+tree of (score, position), each member stored once (see `big` and
//!   `tree`). Lookups are O(1); inserts, removals, ranks and the start of a range O(log n);
//!   random sampling O(1).
//!
//! A set that is small takes the big encoding when an insert would pass a threshold, and stays
//! big when it shrinks again (as in Redis). Scores are never NaN (callers reject it). Scores
//! compare as numbers (so -0 and 0 are equal and their order is the members'), ties by member
//! bytes (memcmp order).

mod big;
mod pack;
mod tree;

use std::fmt;
use std::ops::Range;

pub use pack::{MAX_ENTRIES, MAX_MEMBER};

use crate::Key;
use big::Big;
use pack::Pack;

/// Whether (sa, ma) sorts before (sb, mb): by score, then by member bytes.
#[inline]
pub fn less(sa: f64, ma: &[u8], sb: f64, mb: &[u8]) -> bool {
    sa < sb || (sa == sb && ma < mb)
}

/// The order of entries: by score, then by member bytes (scores are never NaN).
pub fn cmp(sa: f64, ma: &[u8], sb: f64, mb: &[u8]) -> std::cmp::Ordering {
    sa.partial_cmp(&sb).unwrap_or(std::cmp::Ordering::Equal).then_with(|| ma.cmp(mb))
}

/// One end of a score range: `1.5` (inclusive) or `(1.5` (exclusive), infinities allowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

/// Scores between two bounds (ZRANGEBYSCORE, ZCOUNT, ZREMRANGEBYSCORE).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRange {
    pub min: ScoreBound,
    pub max: ScoreBound,
}

impl ScoreRange {
    pub fn above_min(&self, score: f64) -> bool {
        if self.min.exclusive { score > self.min.value } else { score >= self.min.value }
    }

    pub fn below_max(&self, score: f64) -> bool {
        if self.max.exclusive { score < self.max.value } else { score <= self.max.value }
    }

    /// Whether no score can be in the range.
    pub fn is_empty(&self) -> bool {
        self.min.value > self.max.value
            || (self.min.value == self.max.value && (self.min.exclusive || self.max.exclusive))
    }
}

/// One end of a lexicographical range: `-`, `+`, `[member` or `(member`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LexBound<'a> {
    /// `-`: below every member.
    Min,
    /// `+`: above every member.
    Max,
    Inclusive(&'a [u8]),
    Exclusive(&'a [u8]),
}

impl LexBound<'_> {
    /// Compares `member` with the bound's value (Redis's `sdscmplex`); `-` and `+` compare
    /// below and above everything.
    fn cmp_member(&self, member: &[u8]) -> std::cmp::Ordering {
        use std::cmp::Ordering::{Greater, Less};
        match self {
            LexBound::Min => Greater,
            LexBound::Max => Less,
            LexBound::Inclusive(v) | LexBound::Exclusive(v) => member.cmp(v),
        }
    }

    fn exclusive(&self) -> bool {
        !matches!(self, LexBound::Inclusive(_))
    }
}

/// Members between two bounds (ZRANGEBYLEX, ZLEXCOUNT, ZREMRANGEBYLEX), meaningful when all
/// scores are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LexRange<'a> {
    pub min: LexBound<'a>,
    pub max: LexBound<'a>,
}

impl LexRange<'_> {
    pub fn gte_min(&self, member: &[u8]) -> bool {
        let c = self.min.cmp_member(member);
        if self.min.exclusive() { c.is_gt() } else { c.is_ge() }
    }

    pub fn lte_max(&self, member: &[u8]) -> bool {
        let c = self.max.cmp_member(member);
        if self.max.exclusive() { c.is_lt() } else { c.is_le() }
    }

    /// Whether no member can be in the range (min above max, or equal with one exclusive).
    pub fn is_empty(&self) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let c = match (self.min, self.max) {
            (LexBound::Min, LexBound::Min) | (LexBound::Max, LexBound::Max) => Equal,
            (LexBound::Min, _) | (_, LexBound::Max) => Less,
            (LexBound::Max, _) | (_, LexBound::Min) => Greater,
            (LexBound::Inclusive(a) | LexBound::Exclusive(a), LexBound::Inclusive(b) | LexBound::Exclusive(b)) => {
                a.cmp(b)
            }
        };
        c == Greater || (c == Equal && (self.min.exclusive() || self.max.exclusive()))
    }
}

/// A sorted set.
#[derive(Clone, Default)]
pub struct ZSet {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    Small(Pack),
    Big(Box<Big>),
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Small(Pack::default())
    }
}

/// Bytes a member counts for in [`ZSet::size`].
fn weight(member: &[u8]) -> usize {
    member.len() + 8
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet::default()
    }

    /// An empty set about to receive `n` members in order: big from the start when `n` is over
    /// the small limit, as Redis's ZRANGESTORE creates its destination.
    pub fn with_capacity(n: usize) -> ZSet {
        if n > crate::limits::ZSET_ENTRIES.get() { ZSet { repr: Repr::Big(Box::default()) } } else { ZSet::default() }
    }

    /// A set of `entries` sorted by (score, member) with distinct members and no NaN (as a
    /// snapshot holds them or a computation produced them), in the encoding Redis would choose.
    pub fn from_sorted(entries: Vec<(Key, f64)>) -> ZSet {
        debug_assert!(entries.windows(2).all(|w| less(w[0].1, &w[0].0, w[1].1, &w[1].0)));
        let bytes = entries.iter().map(|(m, _)| weight(m)).sum();
        let longest = entries.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        let repr = if Pack::fits(entries.len(), longest) {
            Repr::Small(Pack::from_sorted(entries.iter().map(|(m, s)| (&m[..], *s))))
        } else {
            let mut big = Big::from_sorted(entries.into_iter());
            big.bytes = bytes;
            Repr::Big(Box::new(big))
        };
        ZSet { repr }
    }

    /// A set of `entries` in any order; of a member given twice, the first score is kept.
    pub fn from_entries(mut entries: Vec<(Key, f64)>) -> ZSet {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|b, a| a.0 == b.0);
        entries.sort_unstable_by(|a, b| cmp(a.1, &a.0, b.1, &b.0));
        ZSet::from_sorted(entries)
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Small(p) => p.len(),
            Repr::Big(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of user data held: the members' lengths plus 8 bytes per score. O(1).
    pub fn size(&self) -> usize {
        match &self.repr {
            Repr::Small(p) => p.size(),
            Repr::Big(b) => b.bytes,
        }
    }

    /// OBJECT ENCODING, as Redis 7.0 names it.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Small(_) => "listpack",
            Repr::Big(_) => "skiplist",
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.repr {
            Repr::Small(p) => p.find(member).map(|(_, e)| e.score),
            Repr::Big(b) => b.score(member),
        }
    }

    pub fn contains(&self, member: &[u8]) -> bool {
        self.score(member).is_some()
    }

    /// Sets the score of `member` (never NaN), adding the member if needed. Returns its
    /// previous score.
    pub fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        debug_assert!(!score.is_nan());
        if let Repr::Small(p) = &mut self.repr {
            if let Some((_, e)) = p.find(member) {
                let (old, start, end) = (e.score, e.start, e.end);
                p.remove_bytes(start, end, 1);
                p.insert(member, score);
                return Some(old);
            }
            if Pack::fits(p.len() + 1, member.len()) {
                p.insert(member, score);
                return None;
            }
            self.convert();
        }
        let Repr::Big(b) = &mut self.repr else { unreachable!("converted above") };
        let old = b.insert(member, score);
        if old.is_none() {
            b.bytes += weight(member);
        }
        old
    }

    /// Adds `member`, which the caller knows is not in the set (it saves a lookup).
    pub fn insert_new(&mut self, member: &[u8], score: f64) {
        debug_assert!(!score.is_nan() && !self.contains(member));
        if let Repr::Small(p) = &mut self.repr {
            if Pack::fits(p.len() + 1, member.len()) {
                p.insert(member, score);
                return;
            }
            self.convert();
        }
        if let Repr::Big(b) = &mut self.repr {
            b.insert_new(member, score);
            b.bytes += weight(member);
        }
    }

    /// Switches to the big encoding.
    fn convert(&mut self) {
        if let Repr::Small(p) = &self.repr {
            let mut big =
                Big::from_sorted(p.entries().map(|e| (Key::new(e.member), e.score)).collect::<Vec<_>>().into_iter());
            big.bytes = p.size();
            self.repr = Repr::Big(Box::new(big));
        }
    }

    /// Removes `member`, returning its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = match &mut self.repr {
            Repr::Small(p) => {
                let (_, e) = p.find(member)?;
                let (score, start, end) = (e.score, e.start, e.end);
                p.remove_bytes(start, end, 1);
                score
            }
            Repr::Big(b) => {
                let score = b.remove(member)?.score;
                b.bytes -= weight(member);
                score
            }
        };
        Some(score)
    }

    /// The rank of `member` (0 for the lowest).
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.repr {
            Repr::Small(p) => p.find(member).map(|(rank, _)| rank),
            Repr::Big(b) => b.rank(member),
        }
    }

    /// The entry of rank `rank`.
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        self.iter_from(rank, false).next()
    }

    /// The entries in order, lowest first.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0, false)
    }

    /// The entries from rank `rank` towards the highest, or with `rev` towards the lowest
    /// (nothing when `rank` is out of range).
    pub fn iter_from(&self, rank: usize, rev: bool) -> Iter<'_> {
        match &self.repr {
            Repr::Small(p) => Iter(Inner::Small(p.iter_from(rank, rev))),
            Repr::Big(b) => Iter(Inner::Big(b.iter_from(rank, rev))),
        }
    }

    /// The ranks of the entries whose scores are within `range`.
    pub fn score_span(&self, range: &ScoreRange) -> Range<usize> {
        match &self.repr {
            Repr::Small(p) => p.score_span(range),
            Repr::Big(b) => b.score_span(range),
        }
    }

    /// The ranks of the entries whose members are within `range`, for a walk forward (or
    /// backward, `rev`). When all scores are equal, as lexicographical ranges assume, the
    /// direction makes no difference; otherwise the small encoding answers as Redis's listpack
    /// does (see `pack`), and the answer of either is unspecified, as in Redis.
    pub fn lex_span(&self, range: &LexRange<'_>, rev: bool) -> Range<usize> {
        match &self.repr {
            Repr::Small(p) => p.lex_span(range, rev),
            Repr::Big(b) => b.lex_span(range),
        }
    }

    /// Removes the entries of ranks `ranks`, returning how many there were.
    pub fn remove_ranks(&mut self, ranks: Range<usize>) -> usize {
        let (from, to) = (ranks.start, ranks.end.min(self.len()));
        if from >= to {
            return 0;
        }
        match &mut self.repr {
            Repr::Small(p) => p.remove_ranks(from, to),
            Repr::Big(b) => {
                let removed: usize = b.iter_from(from, false).take(to - from).map(|(m, _)| weight(m)).sum();
                let left = b.bytes - removed;
                // (`Big::remove_ranks` may rebuild the set, counting nothing.)
                b.remove_ranks(from, to);
                b.bytes = left;
            }
        }
        to - from
    }

    /// Calls `f` with the lowest entry (with `max`, the highest), then removes that entry.
    pub fn pop_with<R>(&mut self, max: bool, f: impl FnOnce(&[u8], f64) -> R) -> Option<R> {
        let r = match &mut self.repr {
            Repr::Small(p) => {
                let last = p.len().checked_sub(1)?;
                let rank = if max { last } else { 0 };
                let o = p.offsets();
                let (member, score) = p.at(&o, rank);
                let r = f(member, score);
                p.remove_ranks(rank, rank + 1);
                r
            }
            Repr::Big(b) => {
                let mut removed = 0;
                let r = b.pop_with(max, |m, s| {
                    removed = weight(m);
                    f(m, s)
                })?;
                b.bytes -= removed;
                r
            }
        };
        Some(r)
    }

    /// A member chosen uniformly at random, with its score.
    pub fn random(&self) -> Option<(&[u8], f64)> {
        let n = self.len();
        (n > 0).then(|| self.positions().at(fastrand::usize(..n)))
    }

    /// ZRANDMEMBER's sampling: calls `f` with `count` entries chosen at random. With `unique`,
    /// distinct ones: all of them, highest first (the order Redis answers in) when `count`
    /// covers the set, else a random selection in random order. Without, with repetitions.
    /// Each sample is O(1).
    pub fn sample(&self, count: usize, unique: bool, mut f: impl FnMut(&[u8], f64)) {
        let n = self.len();
        if n == 0 || count == 0 {
            return;
        }
        if unique && count >= n {
            self.iter_from(n - 1, true).for_each(|(m, s)| f(m, s));
            return;
        }
        let at = self.positions();
        if !unique || count == 1 {
            for _ in 0..count {
                let (m, s) = at.at(fastrand::usize(..n));
                f(m, s);
            }
        } else if count * 3 > n {
            // A partial shuffle of all positions.
            let mut order: Vec<u32> = (0..n as u32).collect();
            for i in 0..count {
                order.swap(i, fastrand::usize(i..n));
                let (m, s) = at.at(order[i] as usize);
                f(m, s);
            }
        } else {
            // Few out of many: draw until `count` distinct positions came up.
            let mut seen = std::collections::HashSet::with_capacity(count);
            while seen.len() < count {
                let i = fastrand::usize(..n);
                if seen.insert(i) {
                    let (m, s) = at.at(i);
                    f(m, s);
                }
            }
        }
    }

    /// Storage positions 0..len, for sampling.
    fn positions(&self) -> Positions<'_> {
        match &self.repr {
            Repr::Small(p) => Positions::Small(p, p.offsets()),
            Repr::Big(b) => Positions::Big(b),
        }
    }

    /// ZSCAN: visits up to about `count` entries from `cursor` (0 to start), calling `f` with
    /// each, and returns the cursor to continue from (0 when the scan is complete). The small
    /// encoding is visited whole in one call, as Redis does. A member present for the whole
    /// scan is visited at least once, whatever changes in between.
    pub fn scan<'a>(&'a self, cursor: u64, count: usize, mut f: impl FnMut(&'a [u8], f64)) -> u64 {
        match &self.repr {
            Repr::Small(p) => {
                p.entries().for_each(|e| f(e.member, e.score));
                0
            }
            Repr::Big(b) => b.scan(cursor, count, f),
        }
    }

    /// The image of this set a snapshot writes, when the set is too big to encode under the
    /// shard's lock: its vector's chunks, shared (O(chunks), no member copied). A write that
    /// follows copies only the chunk it touches, while the image is alive. `None` for a set
    /// small enough to encode at once.
    pub fn freeze(&mut self) -> Option<Frozen> {
        match &mut self.repr {
            Repr::Big(b) => {
                let bytes = b.bytes;
                b.freeze(bytes).map(Frozen)
            }
            Repr::Small(_) => None,
        }
    }

    /// Whether [`ZSet::freeze`] gives an image.
    pub fn wants_freezing(&self) -> bool {
        matches!(&self.repr, Repr::Big(b) if crate::dense::worth_freezing(b.len(), b.bytes))
    }
}

/// A frozen image of a big sorted set (see [`ZSet::freeze`]), readable on any thread without
/// a lock. It holds the members in storage order; [`Frozen::in_order`] sorts them.
pub struct Frozen(crate::dense::Frozen<big::Item>);

impl Frozen {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// The entries sorted by (score, member), as [`ZSet::iter`] gave them: O(n log n), on the
    /// snapshot's thread.
    pub fn in_order(&self) -> Vec<(&[u8], f64)> {
        let mut v: Vec<(&[u8], f64)> = self.0.iter().map(|it| (&*it.member, it.score)).collect();
        v.sort_unstable_by(|a, b| cmp(a.1, a.0, b.1, b.0));
        v
    }
}

/// Access to a set's entries by storage position.
#[allow(clippy::large_enum_variant)] // short-lived, on the stack: no allocation per call
enum Positions<'a> {
    Small(&'a Pack, pack::Offsets),
    Big(&'a Big),
}

impl<'a> Positions<'a> {
    fn at(&self, pos: usize) -> (&'a [u8], f64) {
        match self {
            Positions::Small(p, o) => p.at(o, pos),
            Positions::Big(b) => b.at(pos),
        }
    }
}

/// A walk over a set's entries (see [`ZSet::iter_from`]): (member, score).
pub struct Iter<'a>(Inner<'a>);

enum Inner<'a> {
    Small(pack::Iter<'a>),
    Big(big::Iter<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    #[inline]
    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        match &mut self.0 {
            Inner::Small(it) => it.next(),
            Inner::Big(it) => it.next(),
        }
    }
}

/// Equal when the same members have the same scores (bit for bit), whatever the encodings.
impl PartialEq for ZSet {
    fn eq(&self, other: &ZSet) -> bool {
        self.len() == other.len()
            && self.iter().zip(other.iter()).all(|(a, b)| a.0 == b.0 && a.1.to_bits() == b.1.to_bits())
    }
}

impl fmt::Debug for ZSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ZSet({}) ", self.encoding())?;
        f.debug_map().entries(self.iter().map(|(m, s)| (String::from_utf8_lossy(m), s))).finish()
    }
}

#[cfg(test)]
mod tests;
