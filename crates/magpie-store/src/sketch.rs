//! A count-min sketch of 4-bit counters: how often each key was seen lately, approximately
//! (never less than its true count, up to 15), in 8 to 16 bytes per key counted. It is
//! `allkeys-wtinylfu`'s memory of keys that are not held (see `evict.rs`).
//!
//! Four rows of `width` counters, 16 to a word. A key's counter in each row is found from its
//! 64-bit hash (the shard's own, computed anyway), mixed with a constant per row; its estimate
//! is the least of its four counters. Adding raises only the counters at that least value
//! ("conservative update"), which keeps the estimates of rare keys from being inflated by
//! the ones they share counters with.
//!
//! Aging: once the additions since the last halving reach `period`, every counter is halved,
//! and the sketch's epoch moves on (entries keep the epoch their own count was last aged to,
//! and halve it lazily when they meet a newer one: see `Use`).
//!
//! Resizing forgets: the sketch is made anew, zeroed, when the shard's keys have doubled (or
//! fallen to a quarter). A row twice as wide could be the old row twice over, which keeps
//! every count an upper bound, but it keeps the old row's share of non-zero counters too: a
//! sketch grown that way from a few keys to a thousand answered 1 for 17% of keys it had never
//! seen (0.2% when made at its final width), and a scan's keys passed for keys seen before.
//! Caffeine remakes its sketch the same way. A shard of stable size never resizes.

const ROWS: usize = 4;
/// Counters per word.
const PER_WORD: usize = 16;
const MAX: u8 = 15;
/// Row seeds (odd, from the golden ratio and splitmix64's constants).
const SEEDS: [u64; ROWS] = [0x9E37_79B9_7F4A_7C15, 0xBF58_476D_1CE4_E5B9, 0x94D0_49BB_1331_11EB, 0xD6E8_FEB8_6659_FD93];
/// Counters per row per key counted: the simulator's width 4 (rounded up to a power of two).
const WIDTH_PER_KEY: usize = 4;
/// The narrowest row.
const MIN_WIDTH: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct Sketch {
    /// `ROWS` rows of `width` counters; row `r` is words `r * width / 16 ..`.
    words: Vec<u64>,
    /// Counters per row: 0 (nothing allocated yet) or a power of two, at least [`MIN_WIDTH`].
    width: usize,
    /// Additions since the last halving (halved with the counters).
    adds: u64,
    /// Halvings so far, wrapping.
    epoch: u16,
}

impl Sketch {
    /// How many halvings the sketch has made (wrapping): the age entries' counts are kept at.
    #[inline]
    pub(crate) fn epoch(&self) -> u16 {
        self.epoch
    }

    /// Bytes allocated (counted in `used_memory` as every allocation is).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.words.capacity() * 8
    }

    #[inline]
    fn slot(&self, hash: u64, row: usize) -> (usize, u32) {
        let pos = ((hash.wrapping_mul(SEEDS[row]) >> 32) as usize) & (self.width - 1);
        let word = row * (self.width / PER_WORD) + pos / PER_WORD;
        (word, (pos % PER_WORD) as u32 * 4)
    }

    #[inline]
    fn get(&self, word: usize, shift: u32) -> u8 {
        ((self.words[word] >> shift) & 0xF) as u8
    }

    /// The estimated count of the key whose hash is `hash` (0 to 15).
    pub(crate) fn estimate(&self, hash: u64) -> u8 {
        if self.width == 0 {
            return 0;
        }
        (0..ROWS).map(|r| self.slot(hash, r)).map(|(w, s)| self.get(w, s)).min().unwrap_or(0)
    }

    /// Counts `n` more of the key (up to the counters' 15); halves every counter once
    /// `period` additions have been made since the last halving.
    pub(crate) fn add(&mut self, hash: u64, n: u8, period: u64) {
        if self.width == 0 || n == 0 {
            return;
        }
        let target = self.estimate(hash).saturating_add(n).min(MAX);
        for r in 0..ROWS {
            let (w, s) = self.slot(hash, r);
            if self.get(w, s) < target {
                self.words[w] = (self.words[w] & !(0xF << s)) | (u64::from(target) << s);
            }
        }
        self.adds += u64::from(n);
        if self.adds >= period.max(1) {
            self.halve();
        }
    }

    /// Halves every counter (aging), and moves the epoch on.
    fn halve(&mut self) {
        for w in &mut self.words {
            *w = (*w >> 1) & 0x7777_7777_7777_7777;
        }
        self.adds /= 2;
        self.epoch = self.epoch.wrapping_add(1);
    }

    /// Sizes the rows for `keys` keys: [`WIDTH_PER_KEY`] counters each, rounded up to a power
    /// of two; remade (zeroed) as soon as that is wider, or once it is a quarter as wide or
    /// less. A remake happens only when the number of keys has doubled or fallen to a
    /// quarter, so it costs a few bytes zeroed per key added.
    pub(crate) fn fit(&mut self, keys: usize) {
        let want = keys.saturating_mul(WIDTH_PER_KEY).checked_next_power_of_two().unwrap_or(1 << 40).max(MIN_WIDTH);
        if self.width < want || self.width >= 4 * want {
            self.width = want;
            self.words = Vec::new(); // the old one goes first: the two are never held at once
            self.words = vec![0; ROWS * want / PER_WORD];
            self.adds = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u64) -> u64 {
        i.wrapping_mul(0x2545_F491_4F6C_DD1D).rotate_left(17) ^ 0x1234_5678
    }

    #[test]
    fn counts_never_fall_short_and_saturate_at_15() {
        let mut s = Sketch::default();
        assert_eq!(s.estimate(h(1)), 0);
        s.fit(1000);
        assert_eq!(s.bytes(), 4 * 4096 / 2);
        for i in 0..1000u64 {
            for _ in 0..(i % 7) {
                s.add(h(i), 1, u64::MAX);
            }
        }
        let mut exact = 0;
        for i in 0..1000u64 {
            let e = s.estimate(h(i));
            assert!(u64::from(e) >= i % 7, "key {i}: {e}");
            exact += usize::from(u64::from(e) == i % 7);
        }
        // 4 counters per key in each row: collisions are rare.
        assert!(exact > 950, "{exact} exact of 1000");
        for _ in 0..40 {
            s.add(h(5000), 1, u64::MAX);
        }
        assert_eq!(s.estimate(h(5000)), 15);
        s.add(h(5001), 200, u64::MAX);
        assert_eq!(s.estimate(h(5001)), 15);
    }

    #[test]
    fn halving_ages_every_counter_and_moves_the_epoch() {
        let mut s = Sketch::default();
        s.fit(100);
        for _ in 0..12 {
            s.add(h(1), 1, 1000);
        }
        s.add(h(2), 3, 1000);
        assert_eq!((s.estimate(h(1)), s.estimate(h(2)), s.epoch()), (12, 3, 0));
        // 15 additions so far: the 1000th halves.
        for i in 0..985u64 {
            s.add(h(100 + i), 1, 1000);
        }
        assert_eq!((s.estimate(h(1)), s.estimate(h(2)), s.epoch()), (6, 1, 1));
    }

    #[test]
    fn resizing_starts_afresh_at_the_new_width() {
        let mut s = Sketch::default();
        s.fit(100);
        assert_eq!(s.width, 512);
        s.add(h(1), 3, u64::MAX);
        // Within a factor of two up and four down, the sketch stays as it is.
        for keys in [128, 33, 100] {
            s.fit(keys);
            assert_eq!((s.width, s.estimate(h(1))), (512, 3), "{keys} keys");
        }
        s.fit(129);
        assert_eq!((s.width, s.estimate(h(1)), s.bytes()), (1024, 0, 4 * 1024 / 2));
        s.fit(32);
        assert_eq!(s.width, 128);
    }
}
