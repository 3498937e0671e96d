//! Server-wide figures that are not counters of the hot path (those are `super::stats`): the
//! start time, the CONFIG RESETSTAT baseline, and the samples behind INFO's instantaneous rates.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::Instant;

use parking_lot::Mutex;

use super::stats::Totals;

/// Rate samples kept for the `instantaneous_*` fields (Redis keeps 16, 100 ms apart).
const SAMPLES: usize = 16;

/// Server-wide figures that are not counters of the hot path: start time, the RESETSTAT
/// baseline, and the samples behind the instantaneous rates.
pub(crate) struct Metrics {
    started: Instant,
    run_id: String,
    baseline: Mutex<Baseline>,
    samples: Mutex<VecDeque<Sample>>,
}

/// What CONFIG RESETSTAT recorded: later reports show counts since then.
#[derive(Default)]
struct Baseline {
    totals: Totals,
    expired: u64,
}

#[derive(Clone, Copy)]
struct Sample {
    at: Instant,
    commands: u64,
    net_in: u64,
    net_out: u64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let random = std::collections::hash_map::RandomState::new();
        let run_id: String = (0..3).map(|i| format!("{:016x}", random.hash_one(i))).collect();
        Metrics {
            started: Instant::now(),
            run_id: run_id[..40].to_owned(),
            baseline: Mutex::new(Baseline::default()),
            samples: Mutex::new(VecDeque::with_capacity(SAMPLES)),
        }
    }

    /// Records a rate sample, at most one per 100 ms; the server calls this from its timer.
    pub(crate) fn sample(&self) {
        let mut samples = self.samples.lock();
        if samples.back().is_some_and(|s| s.at.elapsed().as_millis() < 100) {
            return;
        }
        let t = Totals::read();
        if samples.len() == SAMPLES {
            samples.pop_front();
        }
        samples.push_back(Sample { at: Instant::now(), commands: t.commands, net_in: t.net_in, net_out: t.net_out });
    }

    /// Per-second rates over the recent samples: (commands, input bytes, output bytes).
    pub(crate) fn rates(&self) -> (f64, f64, f64) {
        let samples = self.samples.lock();
        let (Some(first), Some(last)) = (samples.front(), samples.back()) else { return (0.0, 0.0, 0.0) };
        let secs = last.at.duration_since(first.at).as_secs_f64();
        if secs <= 0.0 {
            return (0.0, 0.0, 0.0);
        }
        let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
        (rate(first.commands, last.commands), rate(first.net_in, last.net_in), rate(first.net_out, last.net_out))
    }

    /// CONFIG RESETSTAT: counts start again from zero. `expired` is the keyspace's count of
    /// expired keys now (it lives in the shards, which are not reset).
    pub(crate) fn reset(&self, expired: u64) {
        *self.baseline.lock() = Baseline { totals: Totals::read(), expired };
    }

    /// What RESETSTAT recorded: the totals and the expired count then.
    pub(crate) fn baseline(&self) -> (Totals, u64) {
        let b = self.baseline.lock();
        (b.totals.clone(), b.expired)
    }

    /// When the server started.
    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    /// Redis's `run_id`: random, 40 hex digits, fixed for the process's life.
    pub(crate) fn run_id(&self) -> &str {
        &self.run_id
    }
}
