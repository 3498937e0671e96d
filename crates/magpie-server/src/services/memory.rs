//! `maxmemory`: the memory settings, and eviction before a command runs (Redis's
//! `performEvictions`). The store samples and removes keys (`magpie_store::evict`); this
//! module decides how many, logs each eviction as a DEL, publishes its `evicted` event and
//! counts it.

use quanta::Instant;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};

use magpie_store::evict::{self, Policy, Pool};
use magpie_store::{EvictStep, Keyspace};
use parking_lot::Mutex;

use super::journal::Journal;
use super::pubsub::PubSub;
use crate::core::alloc;
use crate::core::events::EVICTED;

/// The memory settings at start (`maxmemory` and friends, Redis's names and defaults).
#[derive(Debug, Clone, Copy)]
pub struct MemoryConfig {
    pub maxmemory: u64,
    pub policy: Policy,
    pub samples: u32,
    pub tenacity: u32,
    pub lfu_log_factor: u32,
    pub lfu_decay_time: u32,
}

impl Default for MemoryConfig {
    fn default() -> MemoryConfig {
        MemoryConfig {
            maxmemory: 0,
            policy: Policy::NoEviction,
            samples: 5,
            tenacity: 10,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
        }
    }
}

/// The live memory settings and eviction's state.
pub(crate) struct Memory {
    maxmemory: AtomicU64,
    policy: AtomicU8,
    samples: AtomicU32,
    tenacity: AtomicU32,
    lfu_log_factor: AtomicU32,
    lfu_decay_time: AtomicU32,
    /// Keys evicted since the start (INFO's `evicted_keys`).
    evicted: AtomicU64,
    /// Highest `used_memory` seen (INFO's `used_memory_peak`).
    peak: AtomicU64,
    /// `used_memory` when the server was made (INFO's `used_memory_startup`).
    startup: u64,
    pool: Mutex<Pool>,
}

/// What eviction before a command found (Redis's `EVICT_OK`, `EVICT_RUNNING`, `EVICT_FAIL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Under the limit (now).
    Ok,
    /// Still over, but the time allowed ran out: the next command (or the timer) goes on.
    Running,
    /// Over the limit and nothing can be evicted: commands that add memory are refused.
    Fail,
}

impl Memory {
    pub(crate) fn new(c: MemoryConfig) -> Memory {
        let m = Memory {
            maxmemory: AtomicU64::new(c.maxmemory),
            policy: AtomicU8::new(0),
            samples: AtomicU32::new(c.samples),
            tenacity: AtomicU32::new(c.tenacity),
            lfu_log_factor: AtomicU32::new(c.lfu_log_factor),
            lfu_decay_time: AtomicU32::new(c.lfu_decay_time),
            evicted: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            startup: alloc::used(),
            pool: Mutex::new(Pool::default()),
        };
        m.set_policy(c.policy);
        m
    }

    pub(crate) fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Relaxed)
    }

    /// Whether memory is over a `maxmemory` that is set (after eviction had its turn: Redis's
    /// `pre_command_oom_state`).
    pub(crate) fn over_limit(&self) -> bool {
        let max = self.maxmemory();
        max != 0 && self.used() > max
    }

    pub(crate) fn set_maxmemory(&self, v: u64) {
        self.maxmemory.store(v, Relaxed);
    }

    pub(crate) fn policy(&self) -> Policy {
        Policy::ALL[usize::from(self.policy.load(Relaxed)) % Policy::ALL.len()]
    }

    pub(crate) fn set_policy(&self, p: Policy) {
        let i = Policy::ALL.iter().position(|&q| q == p).unwrap_or(0);
        self.policy.store(i as u8, Relaxed);
        *self.pool.lock() = Pool::default();
        self.apply_tracking();
    }

    pub(crate) fn samples(&self) -> u32 {
        self.samples.load(Relaxed)
    }

    pub(crate) fn set_samples(&self, v: u32) {
        self.samples.store(v, Relaxed);
    }

    pub(crate) fn tenacity(&self) -> u32 {
        self.tenacity.load(Relaxed)
    }

    pub(crate) fn set_tenacity(&self, v: u32) {
        self.tenacity.store(v, Relaxed);
    }

    pub(crate) fn lfu_log_factor(&self) -> u32 {
        self.lfu_log_factor.load(Relaxed)
    }

    pub(crate) fn set_lfu_log_factor(&self, v: u32) {
        self.lfu_log_factor.store(v, Relaxed);
        self.apply_tracking();
    }

    pub(crate) fn lfu_decay_time(&self) -> u32 {
        self.lfu_decay_time.load(Relaxed)
    }

    pub(crate) fn set_lfu_decay_time(&self, v: u32) {
        self.lfu_decay_time.store(v, Relaxed);
        self.apply_tracking();
    }

    fn apply_tracking(&self) {
        evict::set_tracking(self.policy().tracking(), self.lfu_log_factor(), self.lfu_decay_time());
    }

    pub(crate) fn evicted(&self) -> u64 {
        self.evicted.load(Relaxed)
    }

    /// `used_memory`: the bytes allocated (see `core::alloc`).
    pub(crate) fn used(&self) -> u64 {
        let used = alloc::used();
        if used > self.peak.load(Relaxed) {
            self.peak.fetch_max(used, Relaxed);
        }
        used
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak.load(Relaxed).max(self.used())
    }

    pub(crate) fn startup(&self) -> u64 {
        self.startup
    }

    /// Redis's `evictionTimeLimitUs`: how long one call may evict, from the tenacity.
    fn time_limit_us(&self) -> u64 {
        let t = self.tenacity();
        if t <= 10 {
            50 * u64::from(t)
        } else if t < 100 {
            (500.0 * 1.15f64.powi(t as i32 - 10)) as u64
        } else {
            u64::MAX
        }
    }

    /// Evicts keys until memory is under `maxmemory` or the time allowed runs out (Redis's
    /// `performEvictions`). Each eviction is logged as a DEL, published as `evicted`, and
    /// counted. Called before every command while a limit is set, and by the timer; `now` is
    /// the time in ms since the epoch (a command's own), which idle times are counted to.
    pub(crate) fn perform_evictions(&self, ks: &Keyspace, pubsub: &PubSub, journal: &Journal, now: u64) -> Outcome {
        let max = self.maxmemory();
        if max == 0 || self.used() <= max {
            return Outcome::Ok;
        }
        let policy = self.policy();
        if policy == Policy::NoEviction {
            return Outcome::Fail;
        }
        let limit = self.time_limit_us();
        // The time allowed counts from the second step: most calls take one, and need no
        // reading of the clock.
        let mut start = None;
        let samples = self.samples() as usize;
        let mut pool = self.pool.lock();
        let mut steps = 0u64;
        journal.begin();
        let outcome = loop {
            let step = ks.evict_one(policy, samples, now, &mut pool);
            match step {
                EvictStep::Evicted(e) => {
                    journal.push(e.seq, e.db, std::iter::once([&b"DEL"[..], &e.key].into_iter()));
                    self.evicted.fetch_add(1, Relaxed);
                    if pubsub.wants(EVICTED) {
                        pubsub.keyspace_event(EVICTED, "evicted", &e.key, e.db);
                    }
                    e.recycle();
                }
                EvictStep::Progress => {}
                EvictStep::Nothing => break Outcome::Fail,
            }
            super::expired::log(ks, pubsub, journal);
            if self.used() <= max {
                break Outcome::Ok;
            }
            steps += 1;
            let start = *start.get_or_insert_with(Instant::now);
            if steps.is_multiple_of(16) && start.elapsed().as_micros() as u64 > limit {
                break Outcome::Running;
            }
        };
        journal.end();
        alloc::flush();
        outcome
    }
}
