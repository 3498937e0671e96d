//! The latency monitor (LATENCY): per event ("command", "fast-command", ...), the worst
//! latency of each of the last 160 seconds that had one at least `latency-monitor-threshold`
//! ms long, and the worst ever, as Redis's `latency.c` keeps them.

use parking_lot::Mutex;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
const TS_LEN: usize = 160;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Unix time in seconds; 0 for an unused slot.
    pub time: u64,
    /// Milliseconds.
    pub latency: u64,
}

/// One event's samples: a ring, one sample per second at most.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    samples: [Sample; TS_LEN],
    /// Where the next sample goes.
    idx: usize,
    pub max: u64,
}

impl Series {
    fn new() -> Series {
        Series { samples: [Sample::default(); TS_LEN], idx: 0, max: 0 }
    }

    /// The samples, oldest first.
    pub(crate) fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        (0..TS_LEN).map(|j| self.samples[(self.idx + j) % TS_LEN]).filter(|s| s.time != 0)
    }

    /// The most recent sample.
    pub(crate) fn last(&self) -> Sample {
        self.samples[(self.idx + TS_LEN - 1) % TS_LEN]
    }

    fn add(&mut self, now: u64, latency: u64) {
        self.max = self.max.max(latency);
        let prev = &mut self.samples[(self.idx + TS_LEN - 1) % TS_LEN];
        if prev.time == now {
            prev.latency = prev.latency.max(latency);
            return;
        }
        self.samples[self.idx] = Sample { time: now, latency };
        self.idx = (self.idx + 1) % TS_LEN;
    }
}

/// The events recorded so far, in the order they first happened.
#[derive(Default)]
pub(crate) struct Latency {
    events: Mutex<Vec<(&'static str, Series)>>,
}

impl Latency {
    /// Records `ms` for `event` if the monitor is on (`threshold` > 0) and `ms` reaches it
    /// (Redis's `latencyAddSampleIfNeeded`).
    #[inline]
    pub(crate) fn sample_if_needed(&self, event: &'static str, ms: u64, threshold: u64) {
        if threshold != 0 && ms >= threshold {
            self.add(event, ms, magpie_store::now_ms() / 1000);
        }
    }

    #[cold]
    fn add(&self, event: &'static str, ms: u64, now: u64) {
        let mut events = self.events.lock();
        match events.iter_mut().find(|(e, _)| *e == event) {
            Some((_, s)) => s.add(now, ms),
            None => {
                let mut s = Series::new();
                s.add(now, ms);
                events.push((event, s));
            }
        }
    }

    /// Every event's series.
    pub(crate) fn events(&self) -> Vec<(&'static str, Series)> {
        self.events.lock().clone()
    }

    pub(crate) fn event(&self, name: &[u8]) -> Option<(&'static str, Series)> {
        self.events.lock().iter().find(|(e, _)| e.as_bytes() == name).cloned()
    }

    /// Forgets `name` (every event with `None`); returns how many were forgotten.
    pub(crate) fn reset(&self, name: Option<&[u8]>) -> usize {
        let mut events = self.events.lock();
        let before = events.len();
        match name {
            None => events.clear(),
            Some(n) => events.retain(|(e, _)| e.as_bytes() != n),
        }
        before - events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_a_second_the_worst_kept() {
        let l = Latency::default();
        l.sample_if_needed("command", 500, 0); // monitor off
        l.sample_if_needed("command", 5, 10); // under the threshold
        assert!(l.events().is_empty());
        l.add("command", 20, 100);
        l.add("command", 30, 100);
        l.add("command", 25, 100);
        l.add("command", 15, 101);
        let (_, s) = l.event(b"command").expect("event");
        let samples: Vec<(u64, u64)> = s.samples().map(|s| (s.time, s.latency)).collect();
        assert_eq!(samples, [(100, 30), (101, 15)]);
        assert_eq!((s.last().latency, s.max), (15, 30));
        for t in 0..200 {
            l.add("fast-command", 1, 1000 + t);
        }
        let (_, f) = l.event(b"fast-command").expect("event");
        assert_eq!(f.samples().count(), TS_LEN);
        assert_eq!(f.samples().next().map(|s| s.time), Some(1040));
        assert_eq!(l.reset(Some(b"nothing")), 0);
        assert_eq!(l.reset(Some(b"command")), 1);
        assert_eq!(l.reset(None), 1);
    }
}
