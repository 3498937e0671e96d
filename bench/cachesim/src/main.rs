//! Offline simulation of eviction policies on the cache benchmark's workloads (bench/cache.sh):
//! 1M keys, a cache of 100k, cache-aside (GET, then SET on a miss). Used to choose and tune
//! Magpie's own policy before building it; the numbers it prints are the hit rates of the Zipf
//! requests after a warm-up (scan requests miss whatever the policy does).
//!
//! cargo run --release --manifest-path bench/cachesim/Cargo.toml -- [filter]

use std::collections::VecDeque;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 32) * n as u64 >> 32) as usize
    }
}

struct Zipf {
    cdf: Vec<f64>,
}
impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for i in 1..=n {
            acc += 1.0 / (i as f64).powf(s);
            cdf.push(acc);
        }
        for c in cdf.iter_mut() {
            *c /= acc;
        }
        Zipf { cdf }
    }
    fn sample(&self, r: &mut Rng) -> usize {
        let u = r.f();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// Requests per simulated second (for the clocks of Redis's LRU and LFU).
const RATE: u64 = 150_000;

trait Policy {
    /// A GET at request number `t`: hit or not.
    fn get(&mut self, k: u32, t: u64) -> bool;
    /// A SET of a key not held.
    fn set(&mut self, k: u32, t: u64);
    fn name(&self) -> String;
}

fn mix(k: u32) -> u64 {
    (k as u64 ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9).rotate_left(29).wrapping_mul(0x94D0_49BB_1331_11EB)
}

// ---------------------------------------------------------------------------------------
// Redis: sampled LRU / LFU with the eviction pool of 16, 5 samples, 24-bit clock in seconds,
// LFU's logarithmic counter (init 5, factor 10) decaying 1 per minute.
struct RedisSampled {
    cap: usize,
    keys: Vec<u32>,
    pos: Vec<u32>,
    meta: Vec<u32>,
    rng: Rng,
    pool: Vec<(u64, u32)>,
    lfu: bool,
    samples: usize,
}
const NONE: u32 = u32::MAX;
impl RedisSampled {
    fn new(nkeys: usize, cap: usize, lfu: bool, samples: usize) -> Self {
        RedisSampled {
            cap,
            keys: vec![],
            pos: vec![NONE; nkeys],
            meta: vec![0; nkeys],
            rng: Rng(12345),
            pool: vec![],
            lfu,
            samples,
        }
    }
    fn minutes(t: u64) -> u32 {
        ((t / RATE / 60) & 0xFFFF) as u32
    }
    fn lfu_decr(&self, m: u32, t: u64) -> u32 {
        let ldt = m >> 8;
        let c = m & 255;
        let now = Self::minutes(t);
        let elapsed = if now >= ldt { now - ldt } else { 65535 - ldt + now };
        c.saturating_sub(elapsed)
    }
    fn touch(&mut self, k: u32, t: u64) {
        if self.lfu {
            let mut c = self.lfu_decr(self.meta[k as usize], t);
            if c < 255 {
                let base = c.saturating_sub(5) as f64;
                if self.rng.f() < 1.0 / (base * 10.0 + 1.0) {
                    c += 1;
                }
            }
            self.meta[k as usize] = (Self::minutes(t) << 8) | c;
        } else {
            self.meta[k as usize] = ((t / RATE) & 0xFF_FFFF) as u32;
        }
    }
    fn idle(&self, k: u32, t: u64) -> u64 {
        if self.lfu {
            255 - self.lfu_decr(self.meta[k as usize], t) as u64
        } else {
            let now = ((t / RATE) & 0xFF_FFFF) as u32;
            let m = self.meta[k as usize];
            (if now >= m { now - m } else { 0xFF_FFFF - m + now }) as u64 * 1000
        }
    }
    fn evict(&mut self, t: u64) {
        loop {
            for _ in 0..self.samples {
                let k = self.keys[self.rng.below(self.keys.len())];
                let idle = self.idle(k, t);
                if self.pool.iter().any(|p| p.1 == k) {
                    continue;
                }
                // Redis: insert sorted ascending by idle; drop the smallest when full.
                if self.pool.len() < 16 || idle > self.pool[0].0 {
                    let at = self.pool.partition_point(|p| p.0 < idle);
                    if self.pool.len() >= 16 {
                        self.pool.remove(0);
                        self.pool.insert(at.saturating_sub(1), (idle, k));
                    } else {
                        self.pool.insert(at, (idle, k));
                    }
                }
            }
            while let Some((_, k)) = self.pool.pop() {
                if self.pos[k as usize] != NONE {
                    self.remove(k);
                    return;
                }
            }
        }
    }
    fn remove(&mut self, k: u32) {
        let i = self.pos[k as usize] as usize;
        self.pos[k as usize] = NONE;
        self.keys.swap_remove(i);
        if i < self.keys.len() {
            self.pos[self.keys[i] as usize] = i as u32;
        }
    }
}
impl Policy for RedisSampled {
    fn get(&mut self, k: u32, t: u64) -> bool {
        if self.pos[k as usize] != NONE {
            self.touch(k, t);
            true
        } else {
            false
        }
    }
    fn set(&mut self, k: u32, t: u64) {
        while self.keys.len() >= self.cap {
            self.evict(t);
        }
        self.pos[k as usize] = self.keys.len() as u32;
        self.keys.push(k);
        self.meta[k as usize] = if self.lfu { (Self::minutes(t) << 8) | 5 } else { ((t / RATE) & 0xFF_FFFF) as u32 };
        if self.lfu {
            self.touch(k, t); // Redis's SET looks the key up for writing after creating it? no: new object.
            self.meta[k as usize] = (Self::minutes(t) << 8) | 5;
        }
    }
    fn name(&self) -> String {
        format!("redis-{}(samples {})", if self.lfu { "lfu" } else { "lru" }, self.samples)
    }
}

// ---------------------------------------------------------------------------------------
// S3-FIFO as built for Magpie's shards: entries live in a dense table (removal moves the last
// entry into the hole); the small queue is a FIFO of keys checked lazily; the main queue is a
// CLOCK hand over the dense table (entries in the small queue are skipped); the ghost is an
// exact FIFO set or a pair of rotating Bloom filters.
#[derive(Clone, Copy)]
struct S3Params {
    small: f64,
    ghost: f64,
    cap_freq: u8,
    /// Frequency a key gets when promoted from the small queue to main.
    promote_freq: u8,
    /// Frequency a key gets when admitted to main from the ghost.
    ghost_freq: u8,
    /// Accesses in the small queue needed to be promoted.
    threshold: u8,
    bloom: bool,
    shards: usize,
    /// After an eviction at the hand, look at the entry moved there (true) or step on.
    stay: bool,
}

struct Bloom {
    bits: Vec<u64>,
    mask: u64,
    count: usize,
}
impl Bloom {
    fn new(n: usize) -> Bloom {
        // ~10 bits per key, 3 probes: ~1.7% false positives at capacity.
        let words = (n * 10 / 64).next_power_of_two().max(1);
        Bloom { bits: vec![0; words], mask: (words * 64 - 1) as u64, count: 0 }
    }
    fn probes(&self, k: u32) -> [u64; 3] {
        let h = mix(k);
        let h2 = h.rotate_left(21) | 1;
        [h & self.mask, h.wrapping_add(h2) & self.mask, h.wrapping_add(h2.wrapping_mul(2)) & self.mask]
    }
    fn add(&mut self, k: u32) {
        for p in self.probes(k) {
            self.bits[(p / 64) as usize] |= 1 << (p % 64);
        }
        self.count += 1;
    }
    fn has(&self, k: u32) -> bool {
        self.probes(k).iter().all(|&p| self.bits[(p / 64) as usize] & (1 << (p % 64)) != 0)
    }
    fn clear(&mut self) {
        self.bits.iter_mut().for_each(|w| *w = 0);
        self.count = 0;
    }
}

enum Ghost {
    Exact { fifo: VecDeque<u32>, set: Vec<u8>, cap: usize },
    Bloom { cur: Bloom, old: Bloom, per: usize },
}
impl Ghost {
    fn new(nkeys: usize, cap: usize, bloom: bool) -> Ghost {
        if bloom {
            // Two filters of cap/2 each: a key is remembered for between cap/2 and cap evictions.
            let per = (cap / 2).max(1);
            Ghost::Bloom { cur: Bloom::new(per), old: Bloom::new(per), per }
        } else {
            Ghost::Exact { fifo: VecDeque::new(), set: vec![0; nkeys], cap }
        }
    }
    fn add(&mut self, k: u32) {
        match self {
            Ghost::Exact { fifo, set, cap } => {
                if *cap == 0 {
                    return;
                }
                fifo.push_back(k);
                set[k as usize] += 1;
                if fifo.len() > *cap
                    && let Some(g) = fifo.pop_front()
                {
                    set[g as usize] -= 1;
                }
            }
            Ghost::Bloom { cur, old, per } => {
                if cur.count >= *per {
                    std::mem::swap(cur, old);
                    cur.clear();
                }
                cur.add(k);
            }
        }
    }
    fn take(&mut self, k: u32) -> bool {
        match self {
            Ghost::Exact { set, .. } => set[k as usize] > 0,
            Ghost::Bloom { cur, old, .. } => cur.has(k) || old.has(k),
        }
    }
}

struct S3Shard {
    cap: usize,
    dense: Vec<u32>,
    small: VecDeque<u32>,
    small_len: usize,
    hand: usize,
    ghost: Ghost,
}

struct S3 {
    p: S3Params,
    pos: Vec<u32>,
    freq: Vec<u8>,
    in_small: Vec<bool>,
    shards: Vec<S3Shard>,
    total: usize,
    cap: usize,
    rr: usize,
}

impl S3 {
    fn new(nkeys: usize, cap: usize, p: S3Params) -> S3 {
        let per = cap / p.shards;
        S3 {
            p,
            pos: vec![NONE; nkeys],
            freq: vec![0; nkeys],
            in_small: vec![false; nkeys],
            shards: (0..p.shards)
                .map(|_| S3Shard {
                    cap: per,
                    dense: vec![],
                    small: VecDeque::new(),
                    small_len: 0,
                    hand: 0,
                    ghost: Ghost::new(nkeys, ((per as f64) * p.ghost) as usize, p.bloom),
                })
                .collect(),
            total: 0,
            cap,
            rr: 0,
        }
    }
    fn shard_of(&self, k: u32) -> usize {
        (mix(k) >> 40) as usize % self.p.shards
    }
    fn remove(&mut self, s: usize, i: usize) {
        let sh = &mut self.shards[s];
        let k = sh.dense.swap_remove(i);
        self.pos[k as usize] = NONE;
        if i < sh.dense.len() {
            self.pos[sh.dense[i] as usize] = i as u32;
        }
        self.total -= 1;
    }
    /// Evicts one key from shard `s`.
    fn evict(&mut self, s: usize) {
        let small_target = ((self.shards[s].cap as f64) * self.p.small).max(1.0) as usize;
        loop {
            let sh = &mut self.shards[s];
            if sh.small_len > small_target || sh.small_len == sh.dense.len() {
                // From the small queue: the oldest still there.
                let Some(k) = sh.small.pop_front() else {
                    sh.small_len = 0;
                    continue;
                };
                if self.pos[k as usize] == NONE || !self.in_small[k as usize] {
                    continue; // gone (deleted) already
                }
                sh.small_len -= 1;
                self.in_small[k as usize] = false;
                if self.freq[k as usize] >= self.p.threshold {
                    self.freq[k as usize] = self.p.promote_freq;
                    continue;
                }
                sh.ghost.add(k);
                let i = self.pos[k as usize] as usize;
                self.remove(s, i);
                return;
            }
            // From main: the CLOCK hand.
            if sh.hand >= sh.dense.len() {
                sh.hand = 0;
            }
            let k = sh.dense[sh.hand];
            if self.in_small[k as usize] {
                sh.hand += 1;
                continue;
            }
            let f = &mut self.freq[k as usize];
            if *f > 0 {
                *f -= 1;
                sh.hand += 1;
                continue;
            }
            let i = sh.hand;
            if !self.p.stay {
                sh.hand += 1;
            }
            self.remove(s, i);
            return;
        }
    }
}

impl Policy for S3 {
    fn get(&mut self, k: u32, _t: u64) -> bool {
        if self.pos[k as usize] != NONE {
            let f = &mut self.freq[k as usize];
            if *f < self.p.cap_freq {
                *f += 1;
            }
            true
        } else {
            false
        }
    }
    fn set(&mut self, k: u32, _t: u64) {
        while self.total >= self.cap {
            let s = self.rr % self.p.shards;
            self.rr += 1;
            if !self.shards[s].dense.is_empty() {
                self.evict(s);
            }
        }
        let s = self.shard_of(k);
        let sh = &mut self.shards[s];
        self.pos[k as usize] = sh.dense.len() as u32;
        sh.dense.push(k);
        self.total += 1;
        if sh.ghost.take(k) {
            self.in_small[k as usize] = false;
            self.freq[k as usize] = self.p.ghost_freq;
        } else {
            self.in_small[k as usize] = true;
            self.freq[k as usize] = 0;
            sh.small.push_back(k);
            sh.small_len += 1;
        }
    }
    fn name(&self) -> String {
        let p = &self.p;
        format!(
            "s3(small={},ghost={}{},cap={},pf={},gf={},th={},shards={}{})",
            p.small,
            p.ghost,
            if p.bloom { "b" } else { "" },
            p.cap_freq,
            p.promote_freq,
            p.ghost_freq,
            p.threshold,
            p.shards,
            if p.stay { ",stay" } else { "" }
        )
    }
}


// ---------------------------------------------------------------------------------------
// Perfect LFU (an upper bound for frequency-based policies): exact counts of every key ever
// requested, the cache keeps the keys with the highest counts (a newcomer is admitted only if
// it beats the least frequent resident; ties keep the resident).
struct Plfu {
    cap: usize,
    count: Vec<u32>,
    resident: std::collections::BTreeSet<(u32, u32)>,
    held: Vec<bool>,
    history: bool,
}
impl Plfu {
    fn new(nkeys: usize, cap: usize, history: bool) -> Self {
        Plfu { cap, count: vec![0; nkeys], resident: Default::default(), held: vec![false; nkeys], history }
    }
}
impl Policy for Plfu {
    fn get(&mut self, k: u32, _t: u64) -> bool {
        let ku = k as usize;
        if self.held[ku] {
            self.resident.remove(&(self.count[ku], k));
            self.count[ku] += 1;
            self.resident.insert((self.count[ku], k));
            true
        } else {
            if self.history {
                self.count[ku] += 1;
            }
            false
        }
    }
    fn set(&mut self, k: u32, _t: u64) {
        let ku = k as usize;
        if !self.history {
            self.count[ku] = 1;
        }
        if self.resident.len() >= self.cap {
            let &(c, v) = self.resident.iter().next().unwrap();
            if self.history && c >= self.count[ku] {
                return; // not admitted
            }
            self.resident.remove(&(c, v));
            self.held[v as usize] = false;
        }
        self.held[ku] = true;
        self.resident.insert((self.count[ku], k));
    }
    fn name(&self) -> String {
        if self.history { "perfect-lfu".into() } else { "in-cache-lfu(exact)".into() }
    }
}


// ---------------------------------------------------------------------------------------
// S3-FIFO whose ghost is a frequency record: a count-min sketch of the misses (and, with
// `deposit`, of the hits a key had while it was held, added when it is evicted), halved every
// `window` x cap additions. A newcomer seen `admit` times or more goes straight to main, with
// credit from its history; others start in the small queue.
struct Sketch {
    t: Vec<u8>,
    mask: usize,
    adds: usize,
    window: usize,
    max: u8,
    halvings: u32,
}
impl Sketch {
    fn new(width: usize, window: usize, max: u8) -> Sketch {
        let w = width.next_power_of_two();
        Sketch { t: vec![0; w * 4], mask: w - 1, adds: 0, window, max, halvings: 0 }
    }
    fn idx(&self, k: u32, i: usize) -> usize {
        let h = mix(k).wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        i * (self.mask + 1) + ((h >> 32) as usize & self.mask)
    }
    fn est(&self, k: u32) -> u8 {
        (0..4).map(|i| self.t[self.idx(k, i)]).min().unwrap_or(0)
    }
    fn add(&mut self, k: u32, n: u8) {
        // Conservative update: raise only the counters at the minimum.
        let e = self.est(k);
        let target = e.saturating_add(n).min(self.max);
        for i in 0..4 {
            let j = self.idx(k, i);
            if self.t[j] < target {
                self.t[j] = target;
            }
        }
        self.adds += n as usize;
        if self.adds >= self.window {
            for c in self.t.iter_mut() {
                *c >>= 1;
            }
            self.adds /= 2;
            self.halvings += 1;
        }
    }
}

#[derive(Clone, Copy)]
struct S3hParams {
    small: f64,
    cap_freq: u8,
    admit: u8,
    /// Sketch width per cached key, and its window in cached keys.
    width: f64,
    window: usize,
    deposit: bool,
    max: u8,
    shards: usize,
}

struct S3hShard {
    cap: usize,
    dense: Vec<u32>,
    small: VecDeque<u32>,
    small_len: usize,
    hand: usize,
    sk: Sketch,
}

struct S3h {
    p: S3hParams,
    pos: Vec<u32>,
    freq: Vec<u8>,
    hits: Vec<u8>,
    in_small: Vec<bool>,
    shards: Vec<S3hShard>,
    total: usize,
    cap: usize,
    rr: usize,
}

impl S3h {
    fn new(nkeys: usize, cap: usize, p: S3hParams) -> S3h {
        let per = cap / p.shards;
        S3h {
            p,
            pos: vec![NONE; nkeys],
            freq: vec![0; nkeys],
            hits: vec![0; nkeys],
            in_small: vec![false; nkeys],
            shards: (0..p.shards)
                .map(|_| S3hShard {
                    cap: per,
                    dense: vec![],
                    small: VecDeque::new(),
                    small_len: 0,
                    hand: 0,
                    sk: Sketch::new(((per as f64) * p.width) as usize, per * p.window, p.max),
                })
                .collect(),
            total: 0,
            cap,
            rr: 0,
        }
    }
    fn shard_of(&self, k: u32) -> usize {
        (mix(k) >> 40) as usize % self.p.shards
    }
    fn remove(&mut self, s: usize, i: usize) {
        let sh = &mut self.shards[s];
        let k = sh.dense.swap_remove(i);
        self.pos[k as usize] = NONE;
        if i < sh.dense.len() {
            self.pos[sh.dense[i] as usize] = i as u32;
        }
        if self.p.deposit && self.hits[k as usize] > 0 {
            sh.sk.add(k, self.hits[k as usize]);
        }
        self.total -= 1;
    }
    fn evict(&mut self, s: usize) {
        let small_target = ((self.shards[s].cap as f64) * self.p.small).max(1.0) as usize;
        loop {
            let sh = &mut self.shards[s];
            if sh.small_len > small_target || sh.small_len == sh.dense.len() {
                let Some(k) = sh.small.pop_front() else {
                    sh.small_len = 0;
                    continue;
                };
                if self.pos[k as usize] == NONE || !self.in_small[k as usize] {
                    continue;
                }
                sh.small_len -= 1;
                self.in_small[k as usize] = false;
                if self.freq[k as usize] >= 1 {
                    self.freq[k as usize] = 0;
                    continue;
                }
                let i = self.pos[k as usize] as usize;
                self.remove(s, i);
                return;
            }
            if sh.hand >= sh.dense.len() {
                sh.hand = 0;
            }
            let k = sh.dense[sh.hand];
            if self.in_small[k as usize] {
                sh.hand += 1;
                continue;
            }
            let f = &mut self.freq[k as usize];
            if *f > 0 {
                *f -= 1;
                sh.hand += 1;
                continue;
            }
            let i = sh.hand;
            sh.hand += 1;
            self.remove(s, i);
            return;
        }
    }
}

impl Policy for S3h {
    fn get(&mut self, k: u32, _t: u64) -> bool {
        if self.pos[k as usize] != NONE {
            let f = &mut self.freq[k as usize];
            if *f < self.p.cap_freq {
                *f += 1;
            }
            let h = &mut self.hits[k as usize];
            *h = h.saturating_add(1);
            true
        } else {
            false
        }
    }
    fn set(&mut self, k: u32, _t: u64) {
        while self.total >= self.cap {
            let s = self.rr % self.p.shards;
            self.rr += 1;
            if !self.shards[s].dense.is_empty() {
                self.evict(s);
            }
        }
        let s = self.shard_of(k);
        let sh = &mut self.shards[s];
        let seen = sh.sk.est(k);
        sh.sk.add(k, 1);
        self.pos[k as usize] = sh.dense.len() as u32;
        sh.dense.push(k);
        self.total += 1;
        self.hits[k as usize] = 0;
        if seen >= self.p.admit {
            self.in_small[k as usize] = false;
            self.freq[k as usize] = (seen - self.p.admit).min(self.p.cap_freq);
        } else {
            self.in_small[k as usize] = true;
            self.freq[k as usize] = 0;
            sh.small.push_back(k);
            sh.small_len += 1;
        }
    }
    fn name(&self) -> String {
        let p = &self.p;
        format!(
            "s3h(small={},cap={},admit={},width={},window={},max={}{},shards={})",
            p.small, p.cap_freq, p.admit, p.width, p.window, p.max, if p.deposit { ",deposit" } else { "" }, p.shards
        )
    }
}


// ---------------------------------------------------------------------------------------
// Sampled W-TinyLFU: newcomers wait in a small FIFO (the window); main evicts by sampling
// (Redis's pool of 16) the key of lowest frequency. A key's frequency is its count in the
// entry (seeded at insertion from a sketch of its history, bumped by hits, deposited back into
// the sketch when it is evicted); the sketch counts misses and is halved every `window` x cap
// additions. The window's oldest key moves to main if it was hit while in the window or if
// it is more frequent than main's victim; otherwise it is the one evicted.
#[derive(Clone, Copy)]
struct WtsParams {
    small: f64,
    samples: usize,
    pool: bool,
    width: f64,
    window: usize,
    hit_promotes: bool,
    shards: usize,
    /// The sketch's largest count (15: 4-bit counters) and the entries' (255: a byte).
    max: u8,
    cmax: u16,
}

struct WtsShard {
    cap: usize,
    dense: Vec<u32>,
    small: VecDeque<u32>,
    small_len: usize,
    sk: Sketch,
    pool: Vec<(u32, u32)>,
    epoch: u32,
}

struct Wts {
    p: WtsParams,
    pos: Vec<u32>,
    /// Frequency and the epoch it was last aged to.
    count: Vec<(u16, u32)>,
    hit_in_small: Vec<bool>,
    in_small: Vec<bool>,
    shards: Vec<WtsShard>,
    total: usize,
    cap: usize,
    rr: usize,
    rng: Rng,
}

impl Wts {
    fn new(nkeys: usize, cap: usize, p: WtsParams) -> Wts {
        let per = cap / p.shards;
        Wts {
            p,
            pos: vec![NONE; nkeys],
            count: vec![(0, 0); nkeys],
            hit_in_small: vec![false; nkeys],
            in_small: vec![false; nkeys],
            shards: (0..p.shards)
                .map(|_| WtsShard {
                    cap: per,
                    dense: vec![],
                    small: VecDeque::new(),
                    small_len: 0,
                    sk: Sketch::new(((per as f64) * p.width) as usize, per * p.window, p.max),
                    pool: vec![],
                    epoch: 0,
                })
                .collect(),
            total: 0,
            cap,
            rng: Rng(4242),
            rr: 0,
        }
    }
    fn shard_of(&self, k: u32) -> usize {
        (mix(k) >> 40) as usize % self.p.shards
    }
    fn freq(&mut self, s: usize, k: u32) -> u32 {
        let e = self.shards[s].sk.halvings;
        let c = &mut self.count[k as usize];
        if c.1 != e {
            c.0 >>= (e - c.1).min(16);
            c.1 = e;
        }
        c.0 as u32
    }
    fn remove(&mut self, s: usize, k: u32) {
        let i = self.pos[k as usize] as usize;
        let f = self.freq(s, k);
        let sh = &mut self.shards[s];
        sh.dense.swap_remove(i);
        self.pos[k as usize] = NONE;
        if i < sh.dense.len() {
            self.pos[sh.dense[i] as usize] = i as u32;
        }
        let e = sh.sk.est(k) as u32;
        if f > e {
            sh.sk.add(k, (f - e).min(255) as u8);
        }
        self.total -= 1;
    }
    /// Main's victim: the least frequent of the samples (and the pool), not in the window.
    fn victim(&mut self, s: usize) -> Option<u32> {
        for _ in 0..4 {
            for _ in 0..self.p.samples {
                let n = self.shards[s].dense.len();
                let k = self.shards[s].dense[self.rng.below(n)];
                if self.in_small[k as usize] {
                    continue;
                }
                let f = self.freq(s, k);
                let pool = &mut self.shards[s].pool;
                if pool.iter().any(|p| p.1 == k) {
                    continue;
                }
                pool.push((f, k));
            }
            let pool = &mut self.shards[s].pool;
            pool.sort_unstable();
            if !self.p.pool {
                let v = pool.first().copied();
                pool.clear();
                if let Some((_, k)) = v {
                    return Some(k);
                }
                continue;
            }
            pool.truncate(16);
            while !self.shards[s].pool.is_empty() {
                let (_, k) = self.shards[s].pool.remove(0);
                if self.pos[k as usize] != NONE && !self.in_small[k as usize] {
                    return Some(k);
                }
            }
        }
        None
    }
    fn evict(&mut self, s: usize) {
        let small_target = ((self.shards[s].cap as f64) * self.p.small).max(1.0) as usize;
        loop {
            let sh = &mut self.shards[s];
            if sh.small_len > small_target || sh.small_len == sh.dense.len() {
                let Some(c) = sh.small.pop_front() else {
                    sh.small_len = 0;
                    continue;
                };
                if self.pos[c as usize] == NONE || !self.in_small[c as usize] {
                    continue;
                }
                sh.small_len -= 1;
                self.in_small[c as usize] = false;
                let main_len = sh.dense.len() - sh.small_len;
                if main_len < sh.cap - small_target || (self.p.hit_promotes && self.hit_in_small[c as usize]) {
                    continue; // to main
                }
                let fc = self.freq(s, c);
                match self.victim(s) {
                    Some(v) => {
                        let fv = self.freq(s, v);
                        if fc > fv {
                            self.remove(s, v);
                        } else {
                            self.remove(s, c);
                        }
                    }
                    None => continue, // main is empty: c moves there
                }
                return;
            }
            match self.victim(s) {
                Some(v) => {
                    self.remove(s, v);
                    return;
                }
                None => {
                    // Everything is in the window.
                    let sh = &mut self.shards[s];
                    sh.small_len = sh.dense.len();
                }
            }
        }
    }
}

impl Policy for Wts {
    fn get(&mut self, k: u32, _t: u64) -> bool {
        if self.pos[k as usize] != NONE {
            let s = self.shard_of(k);
            self.freq(s, k);
            let cmax = self.p.cmax;
            let c = &mut self.count[k as usize];
            c.0 = c.0.saturating_add(1).min(cmax);
            if self.in_small[k as usize] {
                self.hit_in_small[k as usize] = true;
            }
            true
        } else {
            false
        }
    }
    fn set(&mut self, k: u32, _t: u64) {
        while self.total >= self.cap {
            let s = self.rr % self.p.shards;
            self.rr += 1;
            if !self.shards[s].dense.is_empty() {
                self.evict(s);
            }
        }
        let s = self.shard_of(k);
        let sh = &mut self.shards[s];
        sh.sk.add(k, 1);
        let seen = sh.sk.est(k) as u16;
        // Aging: the sketch halves every window; so do entries, lazily, by epoch.
        self.pos[k as usize] = sh.dense.len() as u32;
        sh.dense.push(k);
        self.total += 1;
        self.count[k as usize] = (seen, sh.sk.halvings);
        self.in_small[k as usize] = true;
        self.hit_in_small[k as usize] = false;
        sh.small.push_back(k);
        sh.small_len += 1;
    }
    fn name(&self) -> String {
        let p = &self.p;
        format!(
            "wts(small={},samples={}{},width={},window={}{},shards={},max={},cmax={})",
            p.small,
            p.samples,
            if p.pool { "+pool" } else { "" },
            p.width,
            p.window,
            if p.hit_promotes { ",hitpromotes" } else { "" },
            p.shards,
            p.max,
            p.cmax
        )
    }
}

// ---------------------------------------------------------------------------------------

fn run(p: &mut dyn Policy, reqs: &[u32], scan_flags: &[bool]) -> f64 {
    let warm = std::env::var("SIM_WARM").ok().and_then(|v| v.parse().ok()).unwrap_or(reqs.len() / 5);
    let (mut zh, mut zn) = (0u64, 0u64);
    for (i, &k) in reqs.iter().enumerate() {
        let h = p.get(k, i as u64);
        if !h {
            p.set(k, i as u64);
        }
        if i >= warm && !scan_flags[i] {
            zn += 1;
            zh += u64::from(h);
        }
    }
    zh as f64 / zn.max(1) as f64
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).collect();
    let nkeys = 1_000_000usize;
    let cap = nkeys / 10;
    let nreq: usize = std::env::var("SIM_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000_000);
    let mut perm: Vec<u32> = (0..nkeys as u32).collect();
    let mut r = Rng(99);
    for i in (1..nkeys).rev() {
        let j = r.below(i + 1);
        perm.swap(i, j);
    }
    let base = S3Params {
        small: 0.1,
        ghost: 0.9,
        cap_freq: 3,
        promote_freq: 0,
        ghost_freq: 0,
        threshold: 1,
        bloom: false,
        shards: 1,
        stay: false,
    };
    let only = std::env::var("SIM_WORKLOADS").unwrap_or_else(|_| "abc".into());
    for (name, s, scan) in [("a zipf0.8", 0.8, false), ("b zipf0.99", 0.99, false), ("c zipf0.8+scan", 0.8, true)] {
        if !name.starts_with(|c: char| only.contains(c)) {
            continue;
        }
        let z = Zipf::new(nkeys, s);
        let mut r = Rng(7);
        let mut reqs = Vec::with_capacity(nreq * 3);
        let mut flags = Vec::with_capacity(nreq * 3);
        let mut scan_next = 0usize;
        for i in 0..nreq {
            reqs.push(perm[z.sample(&mut r)]);
            flags.push(false);
            if scan && i % 100_000 == 99_999 {
                for _ in 0..2 * cap {
                    reqs.push((scan_next % nkeys) as u32);
                    flags.push(true);
                    scan_next += 1;
                }
            }
        }
        let topk = z.cdf[cap - 1];
        println!("{name}: best possible (top-k mass) {:.1}%", topk * 100.0);
        let mut ps: Vec<Box<dyn Policy>> = vec![
            Box::new(RedisSampled::new(nkeys, cap, false, 5)),
            Box::new(RedisSampled::new(nkeys, cap, true, 5)),
            Box::new(RedisSampled::new(nkeys, cap, true, 10)),
            Box::new(Plfu::new(nkeys, cap, true)),
            Box::new(Plfu::new(nkeys, cap, false)),
        ];
        let variants = [
            base,
            S3Params { small: 0.02, ..base },
            S3Params { small: 0.05, ..base },
            S3Params { cap_freq: 7, ..base },
            S3Params { cap_freq: 15, ..base },
            S3Params { small: 0.05, cap_freq: 7, ..base },
            S3Params { promote_freq: 1, ..base },
            S3Params { ghost_freq: 1, ..base },
            S3Params { ghost: 2.0, ..base },
            S3Params { ghost: 0.5, ..base },
            S3Params { bloom: true, ..base },
            S3Params { shards: 64, ..base },
            S3Params { stay: true, ..base },
        ];
        for v in variants {
            ps.push(Box::new(S3::new(nkeys, cap, v)));
        }
        let wb = WtsParams {
            small: 0.01,
            samples: 5,
            pool: true,
            width: 4.0,
            window: 1000,
            hit_promotes: false,
            shards: 1,
            max: 255,
            cmax: u16::MAX,
        };
        // Close to the server's allkeys-wtinylfu: 64 shards, 4-bit sketch counters, a byte of
        // count per entry, halved every 10 x the shard's keys (the server halves every 30 x,
        // the `window: 30` variant, and samples 10 keys without a pool).
        let ws = WtsParams { shards: 64, max: 15, cmax: 255, window: 10, ..wb };
        for v in [
            wb,
            ws,
            WtsParams { width: 1.0, ..ws },
            WtsParams { width: 2.0, ..ws },
            WtsParams { window: 30, ..ws },
            WtsParams { window: 100, ..ws },
            WtsParams { pool: false, ..ws },
            WtsParams { pool: false, samples: 10, ..ws },
            WtsParams { max: 255, ..ws },
            WtsParams { hit_promotes: true, ..ws },
            WtsParams { width: 64.0, ..wb },
            WtsParams { window: 10, ..wb },
            WtsParams { window: 30, ..wb },
            WtsParams { small: 0.002, ..wb },
            WtsParams { shards: 64, ..wb },
        ] {
            ps.push(Box::new(Wts::new(nkeys, cap, v)));
        }
        let hb = S3hParams { small: 0.05, cap_freq: 3, admit: 1, width: 2.0, window: 10, deposit: false, max: 255, shards: 1 };
        for v in [
            hb,
            S3hParams { admit: 2, ..hb },
            S3hParams { window: 30, ..hb },
            S3hParams { window: 100, ..hb },
            S3hParams { deposit: true, ..hb },
            S3hParams { deposit: true, window: 30, ..hb },
            S3hParams { cap_freq: 7, ..hb },
            S3hParams { cap_freq: 7, deposit: true, window: 30, ..hb },
            S3hParams { width: 8.0, window: 30, ..hb },
            S3hParams { max: 15, ..hb },
        ] {
            ps.push(Box::new(S3h::new(nkeys, cap, v)));
        }
        for p in ps.iter_mut() {
            let n = p.name();
            if !filter.is_empty() && !filter.iter().any(|f| n.contains(f.as_str())) {
                continue;
            }
            let h = run(p.as_mut(), &reqs, &flags);
            println!("  {:60} {:.1}%", n, h * 100.0);
        }
    }
}
