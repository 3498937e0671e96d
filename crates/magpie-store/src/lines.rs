//! The index of a shard's keys: `u32` positions in buckets of one cache line each.
//!
//! hashbrown keeps its tags (control bytes) and its slots in two arrays: a lookup loads a line
//! of each, two cache misses in a row at a random place, and `HashTable` does not say where
//! they are, so they cannot be asked for ahead. A pipelined GET's warm-up spent half its time
//! waiting on them (docs/benchmarks.md). Here a bucket is one 64-byte line: 12 tags, a count,
//! an overflow count and 12 positions. A lookup reads one line, whose address comes from the
//! hash alone, so the batch's warm-up asks for it a pass ahead ([`LineTable::prefetch`]).
//!
//! - A value's tag is the top 8 bits of its hash, its home bucket the low bits. A bucket's
//!   slots fill from the front, and a removal moves the bucket's last slot into the hole: no
//!   tombstones.
//! - A full bucket sends an insert on to the next one (linear probing, a bucket at a time) and
//!   counts it in its overflow count, as folly's F14 does: a lookup goes past a bucket only
//!   while that count is not zero, and a removal counts down the buckets its value passed
//!   over. A count that reaches 255 stays there until the table is rebuilt.
//! - Tags are compared 16 bytes at a time in a `u128` (the exact form of the zero-byte test):
//!   safe code, no SIMD intrinsics.
//! - A table is full at 7/8 of its slots (10.5 values per 64 bytes, 6.1 bytes each) and then
//!   doubles; [`crate::segtable::SegTable`] keeps each one to [`LineTable::MOST`] values and
//!   splits beyond.

use crate::segtable::Part;

/// Slots per bucket: 12 tags and 12 positions, with the count and the overflow count, fill
/// 64 bytes.
const SLOTS: usize = 12;
/// Where a bucket's count and overflow count sit among its head's 16 bytes (after the tags).
const LEN: usize = SLOTS;
const OVER: usize = SLOTS + 1;
/// Buckets in the largest table: 512 lines (32 KiB) take 5376 values.
const MOST_BUCKETS: usize = 512;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    /// Tags of slots `0..len`, then `len`, then the overflow count; two bytes unused.
    head: [u8; 16],
    pos: [u32; SLOTS],
}

const EMPTY: Bucket = Bucket { head: [0; 16], pos: [0; SLOTS] };

impl Bucket {
    #[inline]
    fn len(&self) -> usize {
        usize::from(self.head[LEN])
    }

    /// The slots holding `tag`: bit 7 of byte `i` set for slot `i`.
    #[inline]
    fn matches(&self, tag: u8) -> u128 {
        const LOW7: u128 = u128::from_le_bytes([0x7f; 16]);
        const ONES: u128 = u128::from_le_bytes([1; 16]);
        let x = u128::from_le_bytes(self.head) ^ (ONES * u128::from(tag));
        // Bit 7 of each byte of `x` that is zero, and of no other (no carry crosses a byte).
        let zero = !(((x & LOW7) + LOW7) | x | LOW7);
        zero & ((1u128 << (8 * self.len())) - 1)
    }
}

#[inline]
fn tag(hash: u64) -> u8 {
    (hash >> 56) as u8
}

/// Buckets a table of `n` values needs: a power of two, 7/8 full at most.
fn buckets_for(n: usize) -> usize {
    if n == 0 { 0 } else { (n * 8).div_ceil(SLOTS * 7).next_power_of_two() }
}

/// Puts `value` in the first bucket with room from `hash`'s home bucket on, counting it in
/// the overflow count of each bucket it passes. Returns its bucket and slot.
fn place(buckets: &mut [Bucket], hash: u64, value: u32) -> (usize, usize) {
    let mask = buckets.len() - 1;
    let mut b = hash as usize & mask;
    for _ in 0..buckets.len() {
        let bucket = &mut buckets[b];
        let n = bucket.len();
        if n < SLOTS {
            bucket.head[n] = tag(hash);
            bucket.pos[n] = value;
            bucket.head[LEN] += 1;
            return (b, n);
        }
        bucket.head[OVER] = bucket.head[OVER].saturating_add(1);
        b = (b + 1) & mask;
    }
    unreachable!("a line table grows before it is full")
}

/// A hash table of `u32` values in cache-line buckets (see the module's notes).
#[derive(Clone, Default)]
pub(crate) struct LineTable {
    buckets: Vec<Bucket>,
    len: usize,
}

impl LineTable {
    /// The bucket and slot of the value `eq` accepts among those filed under `hash`.
    #[inline]
    fn locate(&self, hash: u64, mut eq: impl FnMut(&u32) -> bool) -> Option<(usize, usize)> {
        let n = self.buckets.len();
        let mask = n.checked_sub(1)?;
        let (tag, mut b) = (tag(hash), hash as usize & mask);
        for _ in 0..n {
            let bucket = &self.buckets[b];
            let mut m = bucket.matches(tag);
            while m != 0 {
                let s = (m.trailing_zeros() / 8) as usize;
                if eq(&bucket.pos[s]) {
                    return Some((b, s));
                }
                m &= m - 1;
            }
            if bucket.head[OVER] == 0 {
                return None;
            }
            b = (b + 1) & mask;
        }
        None
    }

    /// Makes room for one more value, doubling the table when it is full.
    fn room_for_one(&mut self, hasher: impl Fn(&u32) -> u64) {
        if self.len >= Part::<u32>::capacity(self) {
            self.rebuild((self.buckets.len() * 2).max(1), hasher);
        }
    }

    /// Files every value again in a table of `buckets` buckets (overflow counts start over).
    fn rebuild(&mut self, buckets: usize, hasher: impl Fn(&u32) -> u64) {
        let mut new = vec![EMPTY; buckets];
        for &v in Part::iter(self) {
            place(&mut new, hasher(&v), v);
        }
        self.buckets = new;
    }

    /// Checks the tags, counts and overflow counts against the values (for tests).
    #[cfg(test)]
    pub(crate) fn check(&self, hasher: impl Fn(&u32) -> u64) {
        let n = self.buckets.len();
        let mut over = vec![0usize; n];
        let mut total = 0;
        for (b, bucket) in self.buckets.iter().enumerate() {
            assert!(bucket.len() <= SLOTS);
            for s in 0..bucket.len() {
                let h = hasher(&bucket.pos[s]);
                assert_eq!(bucket.head[s], tag(h));
                let mut i = h as usize & (n - 1);
                while i != b {
                    over[i] += 1;
                    i = (i + 1) & (n - 1);
                }
                total += 1;
            }
        }
        assert_eq!(total, self.len);
        for (bucket, want) in self.buckets.iter().zip(over) {
            // A count that reached 255 stays there; any other is exact.
            let over = bucket.head[OVER];
            assert!(over == u8::MAX || usize::from(over) == want, "overflow count {over}, {want} passed");
        }
    }
}

impl Part<u32> for LineTable {
    const MOST: usize = MOST_BUCKETS * SLOTS * 7 / 8;

    fn with_capacity(n: usize) -> LineTable {
        LineTable { buckets: vec![EMPTY; buckets_for(n)], len: 0 }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn capacity(&self) -> usize {
        self.buckets.len() * SLOTS * 7 / 8
    }

    fn buckets(&self) -> usize {
        self.buckets.len().max(1)
    }

    #[inline]
    fn find(&self, hash: u64, eq: impl FnMut(&u32) -> bool) -> Option<&u32> {
        let (b, s) = self.locate(hash, eq)?;
        Some(&self.buckets[b].pos[s])
    }

    #[inline]
    fn find_mut(&mut self, hash: u64, eq: impl FnMut(&u32) -> bool) -> Option<&mut u32> {
        let (b, s) = self.locate(hash, eq)?;
        Some(&mut self.buckets[b].pos[s])
    }

    fn find_or_insert(
        &mut self,
        hash: u64,
        eq: impl FnMut(&u32) -> bool,
        make: impl FnOnce() -> u32,
        hasher: impl Fn(&u32) -> u64,
    ) -> (&mut u32, bool) {
        if let Some((b, s)) = self.locate(hash, eq) {
            return (&mut self.buckets[b].pos[s], false);
        }
        self.room_for_one(hasher);
        let (b, s) = place(&mut self.buckets, hash, make());
        self.len += 1;
        (&mut self.buckets[b].pos[s], true)
    }

    fn insert_unique(&mut self, hash: u64, value: u32, hasher: impl Fn(&u32) -> u64) {
        self.room_for_one(hasher);
        place(&mut self.buckets, hash, value);
        self.len += 1;
    }

    fn remove(&mut self, hash: u64, eq: impl FnMut(&u32) -> bool) -> Option<u32> {
        let (b, s) = self.locate(hash, eq)?;
        let bucket = &mut self.buckets[b];
        let last = bucket.len() - 1;
        let value = bucket.pos[s];
        (bucket.pos[s], bucket.head[s]) = (bucket.pos[last], bucket.head[last]);
        bucket.head[last] = 0;
        bucket.head[LEN] -= 1;
        // The buckets it passed over when it was put here count it no longer.
        let mask = self.buckets.len() - 1;
        let mut i = hash as usize & mask;
        while i != b {
            let over = &mut self.buckets[i].head[OVER];
            debug_assert!(*over > 0, "a value past a bucket is in its overflow count");
            if *over != u8::MAX {
                *over = over.wrapping_sub(1);
            }
            i = (i + 1) & mask;
        }
        self.len -= 1;
        Some(value)
    }

    fn shrink_to(&mut self, n: usize, hasher: impl Fn(&u32) -> u64) {
        let want = buckets_for(n.max(self.len));
        if want < self.buckets.len() {
            self.rebuild(want, hasher);
        }
    }

    fn iter<'a>(&'a self) -> impl Iterator<Item = &'a u32>
    where
        u32: 'a,
    {
        self.buckets.iter().flat_map(|b| &b.pos[..b.len()])
    }

    fn into_values(self) -> impl Iterator<Item = u32> {
        self.buckets.into_iter().flat_map(|b| {
            let n = b.len();
            b.pos.into_iter().take(n)
        })
    }

    #[inline]
    fn prefetch(&self, hash: u64) {
        if let Some(b) = self.buckets.get(hash as usize & self.buckets.len().wrapping_sub(1)) {
            prefetch(std::ptr::from_ref(b).cast(), size_of::<Bucket>());
        }
    }
}

/// Asks the CPU to bring the `len` bytes at `p` into its cache (the lines of the first and
/// the last byte), without waiting for them: a hint that reads nothing the program sees.
#[inline]
pub(crate) fn prefetch(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let last = p.wrapping_add(len.saturating_sub(1));
        // SAFETY: a prefetch cannot fault, whatever the address, and changes nothing the
        // program can observe; SSE, its target feature, is part of every x86-64 CPU.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
            if (last as usize) >> 6 != (p as usize) >> 6 {
                _mm_prefetch::<_MM_HINT_T0>(last.cast::<i8>());
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segtable::SegTable;
    use std::collections::HashSet;

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(size_of::<Bucket>(), 64);
        assert_eq!(align_of::<Bucket>(), 64);
    }

    #[test]
    fn tags_match_exactly() {
        let mut b = EMPTY;
        for (s, t) in [0u8, 1, 0x80, 0xff, 0x7f, 0x01, 0, 0xfe, 0x81, 0x80, 0x00, 0xff].into_iter().enumerate() {
            b.head[s] = t;
        }
        for len in 0..=SLOTS {
            b.head[LEN] = len as u8;
            b.head[OVER] = 0xff;
            for t in 0..=255u8 {
                let m = b.matches(t);
                let want: u128 = (0..len).filter(|&s| b.head[s] == t).map(|s| 0x80u128 << (8 * s)).sum();
                assert_eq!(m, want, "tag {t:#x}, {len} slots");
            }
        }
    }

    /// Hashes that crowd a few home buckets, so that values overflow into the next ones.
    fn crowded(x: u32) -> u64 {
        let h = hash(x);
        (h & !0xffff) | (h & 0x3)
    }

    fn hash(x: u32) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(5).hash_one(x)
    }

    #[test]
    fn agrees_with_a_model_when_buckets_overflow() {
        for h in [hash as fn(u32) -> u64, crowded] {
            let mut rng = fastrand::Rng::with_seed(11);
            let mut t = LineTable::default();
            let mut model = HashSet::new();
            for target in [3000usize, 100, 2000, 0] {
                while model.len() != target {
                    let x = rng.u32(..5000);
                    if model.len() < target && rng.u8(..4) != 0 {
                        let (v, new) = t.find_or_insert(h(x), |&v| v == x, || x, |&v| h(v));
                        assert_eq!((*v, new), (x, model.insert(x)));
                    } else {
                        assert_eq!(t.remove(h(x), |&v| v == x).is_some(), model.remove(&x));
                    }
                }
                t.check(|&v| h(v));
                for x in 0..5000 {
                    assert_eq!(t.find(h(x), |&v| v == x).is_some(), model.contains(&x), "{x}");
                }
                t.shrink_to(0, |&v| h(v));
                t.check(|&v| h(v));
                assert_eq!(t.iter().count(), model.len());
            }
            assert!(t.buckets.is_empty(), "an emptied table shrinks to nothing");
        }
    }

    /// As the keyspace's index: a segmented table grows and shrinks in bounded steps and
    /// holds its values at hashbrown's load factors or better.
    #[test]
    fn in_segments_growth_is_bounded_and_values_stay_findable() {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut t: SegTable<u32, LineTable> = SegTable::default();
        let mut model = HashSet::new();
        for target in [60_000usize, 2_000, 90_000, 0] {
            let mut worst = 0;
            while model.len() != target {
                let x = rng.u32(..200_000);
                let before = t.moved();
                if model.len() < target && rng.u8(..4) != 0 {
                    let (_, new) = t.find_or_insert(hash(x), |&v| v == x, || x, |&v| hash(v));
                    assert_eq!(new, model.insert(x));
                } else {
                    assert_eq!(t.remove(hash(x), |&v| v == x, |&v| hash(v)).is_some(), model.remove(&x));
                }
                worst = worst.max(t.moved() - before);
            }
            assert!(worst <= LineTable::MOST.max(2_000), "one operation moved {worst}");
            t.check(|&v| hash(v));
            assert!(model.iter().all(|&x| t.find(hash(x), |&v| v == x) == Some(&x)));
            if target >= 60_000 {
                let bytes = t.buckets() * size_of::<Bucket>();
                let per = bytes as f64 / t.len() as f64;
                assert!(per < 12.5, "{per} bytes per value");
            }
        }
        assert_eq!(t.segment_count(), 1);
    }
}
