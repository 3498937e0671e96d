//! What eviction knows of each key ([`Use`], four bytes in every entry), and how keys are
//! picked for eviction when memory passes `maxmemory` ([`Policy`], [`Pool`],
//! [`Keyspace::evict_one`]).
//!
//! As in Redis, a key's use is kept as a 24-bit field: under the LRU policies (and
//! noeviction, and the random ones) the time of its last access in seconds; under the LFU
//! ones a 16-bit time in minutes and an 8-bit logarithmic counter (Redis's `LFULogIncr` and
//! decay). Reads touch it under the shard's read lock, so it is made of atomics (relaxed
//! loads and stores: plain moves on x86). Which of the two it holds is process-wide (one
//! keyspace per server), switched by [`set_tracking`]; as in Redis, switching lets old
//! values be read the new way until keys are touched again.
//!
//! Eviction samples, as Redis does: each step reads a few random entries of one shard (chosen
//! with a probability proportional to its size, from sizes read every few hundred steps), adds
//! the best candidates to a pool of 16 kept across steps, and removes the best of the pool
//! under that key's shard lock only. No step holds two shards' locks.
//!
//! `allkeys-s3fifo` is S3-FIFO (Yang et al., SOSP '23) per shard, as the cache simulator in
//! `bench/cachesim` models it: a key is in the small queue (a FIFO of key copies, about 2% of
//! the shard's keys) or the main one (a CLOCK hand over the shard's dense table); reads raise
//! its 2-bit frequency. A small-queue key read at least once by the time it leaves the queue
//! moves to the main one; one never read is evicted and leaves a fingerprint in the shard's
//! ghost table, so that written again soon it goes straight to the main queue. The hand
//! lowers the frequency of the main-queue keys it passes and evicts the first at zero.
//!
//! `allkeys-wtinylfu` is W-TinyLFU (Einziger et al., 2017; Caffeine's policy) per shard, with a
//! sampled main queue, as the simulator models it (`Wts`): a new key waits in the window (a
//! FIFO of key copies, about 1% of the shard's keys; the same queue and bit S3-FIFO's small
//! queue uses). A key's use holds a frequency: a byte, seeded when the key is created from the
//! shard's count-min sketch (`sketch.rs`, 4-bit counters, which counts the keys created and,
//! when a key is evicted, the reads it had that the sketch had not counted), raised by one on
//! each read. Every `WT_AGING` x the shard's keys additions the sketch halves its counters and
//! starts a new epoch; a key's frequency carries the epoch it was last aged to and is halved
//! once per epoch passed when next read or compared (lazy aging, no pass over the entries).
//! Eviction takes the window's oldest key: while the window is over its share it moves to
//! the main queue; otherwise it competes with main's victim (the least frequent of
//! 2 x `maxmemory-samples` sampled keys of the main queue) and the less frequent of the two
//! is evicted (a tie evicts the newcomer). With nothing in the window, main's victim goes.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32};

/// How keys' use is tracked, for the whole process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tracking {
    /// Last access time (the LRU, random, TTL and no-eviction policies).
    Lru,
    /// Access frequency (the LFU policies).
    Lfu,
    /// Last access time, and S3-FIFO's frequency and queue.
    S3Fifo,
    /// W-TinyLFU's frequency, its epoch, and whether the key is in the window.
    WTinyLfu,
}

static TRACKING: AtomicU8 = AtomicU8::new(0);
static LFU_LOG_FACTOR: AtomicU32 = AtomicU32::new(10);
static LFU_DECAY_TIME: AtomicU32 = AtomicU32::new(1);

/// Sets what [`Use`] tracks, and Redis's `lfu-log-factor` and `lfu-decay-time`.
pub fn set_tracking(t: Tracking, lfu_log_factor: u32, lfu_decay_time: u32) {
    TRACKING.store(t as u8, Relaxed);
    LFU_LOG_FACTOR.store(lfu_log_factor, Relaxed);
    LFU_DECAY_TIME.store(lfu_decay_time, Relaxed);
}

pub fn tracking() -> Tracking {
    match TRACKING.load(Relaxed) {
        1 => Tracking::Lfu,
        2 => Tracking::S3Fifo,
        3 => Tracking::WTinyLfu,
        _ => Tracking::Lru,
    }
}

/// Redis's `LFU_INIT_VAL`: a new key's counter, so it is not evicted before it had a chance.
pub const LFU_INIT_VAL: u8 = 5;
const LRU_CLOCK_MAX: u32 = (1 << 24) - 1;

/// Redis's `LRU_CLOCK`: seconds, in 24 bits.
pub fn lru_clock(now_ms: u64) -> u32 {
    (now_ms / 1000) as u32 & LRU_CLOCK_MAX
}

/// Redis's `LFUGetTimeInMinutes`.
fn lfu_minutes(now_ms: u64) -> u16 {
    (now_ms / 60_000) as u16
}

/// Redis's `LFULogIncr`: the counter grows with a probability that falls as it grows.
fn lfu_log_incr(counter: u8) -> u8 {
    if counter == 255 {
        return 255;
    }
    let base = f64::from(counter.saturating_sub(LFU_INIT_VAL));
    let p = 1.0 / (base * f64::from(LFU_LOG_FACTOR.load(Relaxed)) + 1.0);
    if fastrand::f64() < p { counter + 1 } else { counter }
}

const MARK: u8 = 1;
const FREQ_SHIFT: u8 = 1;
const FREQ: u8 = 0b110;
const MAIN: u8 = 0b1000;

/// A key's use, and a snapshot's mark: four bytes (see the module's notes).
#[derive(Debug, Default)]
pub struct Use {
    /// Bit 0: written by the snapshot in progress (see `SnapState`); bits 1-2: S3-FIFO's
    /// frequency; bit 3: in S3-FIFO's (or W-TinyLFU's) main queue.
    flags: AtomicU8,
    /// LRU: the top 8 bits of the 24-bit time. LFU: the counter. W-TinyLFU: the frequency.
    hi: AtomicU8,
    /// LRU: the low 16 bits of the time. LFU: the minutes of the last decrement. W-TinyLFU:
    /// the sketch's epoch the frequency was last aged to.
    lo: AtomicU16,
}

impl Clone for Use {
    fn clone(&self) -> Use {
        Use {
            flags: AtomicU8::new(self.flags.load(Relaxed) & !MARK),
            hi: AtomicU8::new(self.hi.load(Relaxed)),
            lo: AtomicU16::new(self.lo.load(Relaxed)),
        }
    }
}

impl Use {
    fn raw24(&self) -> u32 {
        (u32::from(self.hi.load(Relaxed)) << 16) | u32::from(self.lo.load(Relaxed))
    }

    fn set_raw24(&self, v: u32) {
        self.hi.store((v >> 16) as u8, Relaxed);
        self.lo.store(v as u16, Relaxed);
    }

    /// A new key's use: accessed now, with LFU's initial counter.
    pub(crate) fn init(&self, now_ms: u64) {
        if self.flags.load(Relaxed) & !MARK != 0 {
            self.update_flags(|f| f & MARK); // a new key starts in the small queue
        }
        match tracking() {
            Tracking::Lfu => {
                self.lo.store(lfu_minutes(now_ms), Relaxed);
                self.hi.store(LFU_INIT_VAL, Relaxed);
            }
            Tracking::Lru | Tracking::S3Fifo => self.set_raw24(lru_clock(now_ms)),
            Tracking::WTinyLfu => self.wt_set(0, 0), // the shard seeds it (`wt_admit`)
        }
    }

    /// An access (Redis's `lookupKey` without `LOOKUP_NOTOUCH`); `epoch` is the shard's
    /// sketch's (W-TinyLFU's aging).
    #[inline]
    pub fn touch(&self, now_ms: u64, epoch: u16) {
        match tracking() {
            Tracking::Lru => self.touch_clock(now_ms),
            Tracking::Lfu => {
                let counter = lfu_log_incr(self.lfu_counter(now_ms));
                self.lo.store(lfu_minutes(now_ms), Relaxed);
                self.hi.store(counter, Relaxed);
            }
            Tracking::S3Fifo => {
                self.touch_clock(now_ms);
                let f = self.flags.load(Relaxed);
                if f & FREQ != FREQ {
                    self.update_flags(|f| if f & FREQ == FREQ { f } else { f + (1 << FREQ_SHIFT) });
                }
            }
            Tracking::WTinyLfu => {
                let old = self.hi.load(Relaxed);
                let freq = self.wt_freq(epoch).saturating_add(1);
                if freq != old || self.lo.load(Relaxed) != epoch {
                    self.wt_set(freq, epoch);
                }
            }
        }
    }

    /// W-TinyLFU: the key's frequency, aged to `epoch` (halved once per epoch since it was
    /// last aged). OBJECT FREQ under `allkeys-wtinylfu`.
    #[inline]
    pub fn wt_freq(&self, epoch: u16) -> u8 {
        let behind = epoch.wrapping_sub(self.lo.load(Relaxed));
        self.hi.load(Relaxed).checked_shr(u32::from(behind)).unwrap_or(0)
    }

    /// W-TinyLFU: sets the frequency, as of `epoch`.
    pub(crate) fn wt_set(&self, freq: u8, epoch: u16) {
        self.hi.store(freq, Relaxed);
        self.lo.store(epoch, Relaxed);
    }

    #[inline]
    fn touch_clock(&self, now_ms: u64) {
        let c = lru_clock(now_ms);
        if self.lo.load(Relaxed) != c as u16 || self.hi.load(Relaxed) != (c >> 16) as u8 {
            self.set_raw24(c);
        }
    }

    /// The access counter after decay (Redis's `LFUDecrAndReturn`): OBJECT FREQ.
    pub fn lfu_counter(&self, now_ms: u64) -> u8 {
        let ldt = self.lo.load(Relaxed);
        let counter = self.hi.load(Relaxed);
        let now = lfu_minutes(now_ms);
        let elapsed = if now >= ldt { u32::from(now - ldt) } else { 65535 - u32::from(ldt) + u32::from(now) };
        let decay = LFU_DECAY_TIME.load(Relaxed);
        let periods = elapsed.checked_div(decay).unwrap_or(0);
        u8::try_from(u32::from(counter).saturating_sub(periods)).unwrap_or(0)
    }

    /// Milliseconds since the last access (Redis's `estimateObjectIdleTime`): OBJECT IDLETIME.
    pub fn idle_ms(&self, now_ms: u64) -> u64 {
        let clock = lru_clock(now_ms);
        let lru = self.raw24();
        let secs = if clock >= lru { clock - lru } else { clock + (LRU_CLOCK_MAX - lru) };
        u64::from(secs) * 1000
    }

    /// RESTORE's IDLETIME (seconds), as Redis's `objectSetLRUOrLFU`: unless under LFU (or
    /// W-TinyLFU, whose frequency takes the same bits).
    pub fn set_idle(&self, secs: u64, now_ms: u64) {
        if matches!(tracking(), Tracking::Lfu | Tracking::WTinyLfu) {
            return;
        }
        let clock = i64::from(lru_clock(now_ms));
        let mut abs = clock - i64::try_from(secs).unwrap_or(i64::MAX).min(i64::from(LRU_CLOCK_MAX) * 2);
        if abs < 0 {
            abs = (clock + i64::from(LRU_CLOCK_MAX / 2)) % i64::from(LRU_CLOCK_MAX);
        }
        self.set_raw24(abs as u32);
    }

    /// RESTORE's FREQ, as Redis's `objectSetLRUOrLFU`: only under LFU tracking.
    pub fn set_freq(&self, freq: u8, now_ms: u64) {
        if tracking() != Tracking::Lfu {
            return;
        }
        self.lo.store(lfu_minutes(now_ms), Relaxed);
        self.hi.store(freq, Relaxed);
    }

    fn update_flags(&self, f: impl Fn(u8) -> u8) {
        let _ = self.flags.fetch_update(Relaxed, Relaxed, |x| Some(f(x)));
    }

    pub(crate) fn marked(&self) -> bool {
        self.flags.load(Relaxed) & MARK != 0
    }

    pub(crate) fn set_mark(&self) {
        self.flags.fetch_or(MARK, Relaxed);
    }

    /// Clears the mark; returns whether it was set.
    pub(crate) fn take_mark(&self) -> bool {
        self.marked() && self.flags.fetch_and(!MARK, Relaxed) & MARK != 0
    }

    /// S3-FIFO: (in the main queue, frequency).
    pub(crate) fn fifo(&self) -> (bool, u8) {
        let f = self.flags.load(Relaxed);
        (f & MAIN != 0, (f & FREQ) >> FREQ_SHIFT)
    }

    /// S3-FIFO: sets the queue and the frequency.
    pub(crate) fn requeue(&self, main: bool, freq: u8) {
        self.update_flags(|f| (f & MARK) | if main { MAIN } else { 0 } | ((freq << FREQ_SHIFT) & FREQ));
    }
}

/// Serializes the tests that change the process-wide tracking.
#[cfg(test)]
pub(crate) static TEST_LOCK: parking_lot::Mutex<()> = parking_lot::Mutex::new(());

/// Redis's `maxmemory-policy`, plus `allkeys-s3fifo` and `allkeys-wtinylfu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    NoEviction,
    AllKeysLru,
    AllKeysLfu,
    AllKeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
    AllKeysS3Fifo,
    AllKeysWTinyLfu,
}

impl Policy {
    pub const ALL: [Policy; 10] = [
        Policy::VolatileLru,
        Policy::VolatileLfu,
        Policy::VolatileRandom,
        Policy::VolatileTtl,
        Policy::AllKeysLru,
        Policy::AllKeysLfu,
        Policy::AllKeysRandom,
        Policy::NoEviction,
        Policy::AllKeysS3Fifo,
        Policy::AllKeysWTinyLfu,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Policy::NoEviction => "noeviction",
            Policy::AllKeysLru => "allkeys-lru",
            Policy::AllKeysLfu => "allkeys-lfu",
            Policy::AllKeysRandom => "allkeys-random",
            Policy::VolatileLru => "volatile-lru",
            Policy::VolatileLfu => "volatile-lfu",
            Policy::VolatileRandom => "volatile-random",
            Policy::VolatileTtl => "volatile-ttl",
            Policy::AllKeysS3Fifo => "allkeys-s3fifo",
            Policy::AllKeysWTinyLfu => "allkeys-wtinylfu",
        }
    }

    pub fn parse(s: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name().eq_ignore_ascii_case(s))
    }

    /// Only keys with an expiry time may go.
    pub fn volatile(self) -> bool {
        matches!(self, Policy::VolatileLru | Policy::VolatileLfu | Policy::VolatileRandom | Policy::VolatileTtl)
    }

    pub fn tracking(self) -> Tracking {
        match self {
            Policy::AllKeysLfu | Policy::VolatileLfu => Tracking::Lfu,
            Policy::AllKeysS3Fifo => Tracking::S3Fifo,
            Policy::AllKeysWTinyLfu => Tracking::WTinyLfu,
            _ => Tracking::Lru,
        }
    }

    fn random(self) -> bool {
        matches!(self, Policy::AllKeysRandom | Policy::VolatileRandom)
    }
}

/// A key that may be evicted, with its score (higher goes first).
#[derive(Debug)]
pub(crate) struct Candidate {
    pub(crate) score: u64,
    pub(crate) db: usize,
    pub(crate) shard: usize,
    /// The key's hash in its shard's map: compared before the key's bytes, and the way back
    /// to the entry without hashing again.
    pub(crate) hash: u64,
    /// Where the entry was when sampled: still there unless an entry before it was removed.
    pub(crate) idx: usize,
    pub(crate) key: crate::Key,
}

/// Redis's eviction pool: the best candidates seen, kept across steps; and the shard sizes
/// sampling is weighted by. One per keyspace, behind a mutex (only writers over the limit
/// take it).
#[derive(Debug, Default)]
pub struct Pool {
    pub(crate) best: Vec<Candidate>,
    /// (db, shard, keys that may be evicted) of the non-empty shards, and their total.
    pub(crate) sizes: Vec<(usize, usize, usize)>,
    pub(crate) total: usize,
    /// Steps until `sizes` is read again.
    pub(crate) stale_in: u32,
    /// The next step's sample, chosen at the end of the last one, whose entries were asked
    /// for then: (db, shard, a random number that picks the start).
    pub(crate) plan: Option<(usize, usize, u64)>,
}

pub(crate) const POOL_SIZE: usize = 16;

impl Pool {
    /// Adds the candidate `make` gives, whose score is `score`, keeping the [`POOL_SIZE`] best
    /// and each key once. `make` (which hashes and copies the key) runs only for a candidate
    /// that gets in: most samples do not.
    pub(crate) fn offer(&mut self, score: u64, make: impl FnOnce() -> Candidate) {
        let full = self.best.len() >= POOL_SIZE;
        let worst = if full { self.best.iter().enumerate().min_by_key(|(_, b)| b.score) } else { None };
        if let Some((_, w)) = worst
            && w.score >= score
        {
            // Not better than the worst kept: whether or not it is in the pool already, the
            // pool stays as it is (Redis's evictionPoolPopulate skips it the same way).
            return;
        }
        let c = make();
        debug_assert_eq!(c.score, score);
        let worst = worst.map(|(i, _)| i);
        if let Some(i) = self.best.iter().position(|b| b.hash == c.hash && b.db == c.db && b.key == c.key) {
            self.best[i].score = c.score;
        } else if let Some(i) = worst {
            self.best[i] = c;
        } else {
            self.best.push(c);
        }
    }

    /// Takes the best candidate.
    pub(crate) fn take_best(&mut self) -> Option<Candidate> {
        let i = self.best.iter().enumerate().max_by_key(|(_, b)| b.score)?.0;
        Some(self.best.swap_remove(i))
    }

    /// The best candidate, left in the pool.
    pub(crate) fn peek_best(&self) -> Option<&Candidate> {
        self.best.iter().max_by_key(|b| b.score)
    }

    /// A shard to sample, with a probability proportional to its size.
    pub(crate) fn pick_shard(&self) -> Option<(usize, usize)> {
        if self.total == 0 {
            return None;
        }
        let mut r = fastrand::usize(..self.total);
        for &(db, shard, n) in &self.sizes {
            if r < n {
                return Some((db, shard));
            }
            r -= n;
        }
        None
    }
}

/// What [`Policy`] makes of an entry: its score as a candidate (higher goes first).
pub(crate) fn score(policy: Policy, e: &crate::EntryRef<'_>, now_ms: u64) -> u64 {
    match policy {
        Policy::AllKeysLfu | Policy::VolatileLfu => 255 - u64::from(e.usage().lfu_counter(now_ms)),
        Policy::VolatileTtl => u64::MAX - e.expire_at().unwrap_or(u64::MAX),
        _ => e.usage().idle_ms(now_ms),
    }
}

pub(crate) fn is_random(policy: Policy) -> bool {
    policy.random()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lfu_counter_grows_logarithmically_and_decays() {
        let _lock = TEST_LOCK.lock();
        let u = Use::default();
        set_tracking(Tracking::Lfu, 10, 1);
        u.init(0);
        assert_eq!(u.lfu_counter(0), LFU_INIT_VAL);
        for _ in 0..1000 {
            u.touch(0, 0);
        }
        let c = u.lfu_counter(0);
        assert!(c > 10 && c < 40, "{c}");
        // One period of decay per minute.
        assert_eq!(u.lfu_counter(3 * 60_000), c - 3);
        u.set_freq(200, 0);
        assert_eq!(u.lfu_counter(0), 200);
        set_tracking(Tracking::Lru, 10, 1);
    }

    #[test]
    fn wtinylfu_frequency_counts_reads_and_halves_per_epoch() {
        let _lock = TEST_LOCK.lock();
        let u = Use::default();
        set_tracking(Tracking::WTinyLfu, 10, 1);
        u.init(0);
        u.wt_set(6, 3);
        for _ in 0..300 {
            u.touch(0, 3);
        }
        assert_eq!(u.wt_freq(3), 255);
        assert_eq!(u.wt_freq(4), 127);
        assert_eq!(u.wt_freq(10), 1);
        assert_eq!(u.wt_freq(11), 0);
        // Read in a later epoch: aged first, then counted.
        u.touch(0, 5);
        assert_eq!(u.wt_freq(5), 64);
        // The epoch wraps.
        u.wt_set(40, u16::MAX);
        assert_eq!(u.wt_freq(1), 10);
        set_tracking(Tracking::Lru, 10, 1);
    }

    #[test]
    fn idle_time_follows_the_clock_and_wraps() {
        let u = Use::default();
        u.set_raw24(lru_clock(10_000));
        assert_eq!(u.idle_ms(15_500), 5000);
        u.set_raw24(LRU_CLOCK_MAX - 1);
        assert_eq!(u.idle_ms(2000), 3000);
    }

    #[test]
    fn marks_and_fifo_bits_share_a_byte_without_clobbering() {
        let u = Use::default();
        u.set_mark();
        u.requeue(true, 2);
        assert_eq!(u.fifo(), (true, 2));
        assert!(u.take_mark());
        assert!(!u.take_mark());
        assert_eq!(u.fifo(), (true, 2));
    }

    #[test]
    fn the_pool_keeps_the_best_once_each() {
        let mut p = Pool::default();
        for i in 0..40u64 {
            p.offer(i % 20, || Candidate {
                score: i % 20,
                db: 0,
                shard: 0,
                hash: i % 20,
                idx: 0,
                key: crate::Key::new(format!("k{}", i % 20).as_bytes()),
            });
        }
        assert_eq!(p.best.len(), POOL_SIZE);
        // A candidate no better than the worst kept is not even made (its key not hashed).
        p.offer(4, || panic!("a candidate that does not get in was made"));
        assert_eq!(p.take_best().map(|c| c.score), Some(19));
        assert_eq!(p.take_best().map(|c| c.score), Some(18));
    }

    #[test]
    fn policies_parse_by_name() {
        for p in Policy::ALL {
            assert_eq!(Policy::parse(&p.name().to_uppercase()), Some(p));
        }
        assert_eq!(Policy::parse("lru"), None);
    }
}
