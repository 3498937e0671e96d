//! The settings of SLOWLOG, LATENCY and INFO latencystats.

use super::*;

/// The settings of SLOWLOG and LATENCY (Redis's defaults: 10000 µs, 128 entries, the latency
/// monitor off, per-command percentiles on at 50, 99 and 99.9).
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorConfig {
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: u64,
    pub latency_monitor_threshold: u64,
    pub latency_tracking: bool,
    pub latency_tracking_info_percentiles: Vec<f64>,
}

impl Default for OperatorConfig {
    fn default() -> OperatorConfig {
        OperatorConfig {
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            latency_monitor_threshold: 0,
            latency_tracking: true,
            latency_tracking_info_percentiles: vec![50.0, 99.0, 99.9],
        }
    }
}

impl OperatorConfig {
    pub(super) fn pick(cli: &Options, file: &Options) -> Result<OperatorConfig, String> {
        let d = OperatorConfig::default();
        let slower = cli.slowlog_log_slower_than.or(file.slowlog_log_slower_than).unwrap_or(d.slowlog_log_slower_than);
        if slower < -1 {
            return Err(format!("slowlog-log-slower-than must be -1 or more, not {slower}"));
        }
        let tracking = match cli.latency_tracking.clone().or_else(|| file.latency_tracking.clone()) {
            Some(v) => parse_yes_no("latency-tracking", &v)?,
            None => true,
        };
        let percentiles = match cli
            .latency_tracking_info_percentiles
            .clone()
            .or_else(|| file.latency_tracking_info_percentiles.clone())
        {
            Some(v) => parse_percentiles(&v).map_err(|e| format!("latency-tracking-info-percentiles: {e}"))?,
            None => d.latency_tracking_info_percentiles,
        };
        Ok(OperatorConfig {
            slowlog_log_slower_than: slower,
            slowlog_max_len: cli.slowlog_max_len.or(file.slowlog_max_len).unwrap_or(d.slowlog_max_len),
            latency_monitor_threshold: cli
                .latency_monitor_threshold
                .or(file.latency_monitor_threshold)
                .unwrap_or(d.latency_monitor_threshold),
            latency_tracking: tracking,
            latency_tracking_info_percentiles: percentiles,
        })
    }
}

/// The live SLOWLOG and LATENCY settings (CONFIG SET changes them; dispatch reads them per
/// command, so each is one relaxed load).
pub(crate) struct OperatorSettings {
    pub(super) slowlog_log_slower_than: std::sync::atomic::AtomicI64,
    pub(super) slowlog_max_len: AtomicU64,
    pub(super) latency_monitor_threshold: AtomicU64,
    pub(super) latency_tracking: AtomicBool,
    pub(super) percentiles: Mutex<Vec<f64>>,
    /// DEBUG SET-ACTIVE-EXPIRE: whether the timer reclaims expired keys.
    pub(super) active_expire: AtomicBool,
}

impl OperatorSettings {
    pub(super) fn new(c: &OperatorConfig) -> OperatorSettings {
        OperatorSettings {
            slowlog_log_slower_than: std::sync::atomic::AtomicI64::new(c.slowlog_log_slower_than),
            slowlog_max_len: AtomicU64::new(c.slowlog_max_len),
            latency_monitor_threshold: AtomicU64::new(c.latency_monitor_threshold),
            latency_tracking: AtomicBool::new(c.latency_tracking),
            percentiles: Mutex::new(c.latency_tracking_info_percentiles.clone()),
            active_expire: AtomicBool::new(true),
        }
    }

    pub(crate) fn active_expire(&self) -> bool {
        self.active_expire.load(Ordering::Relaxed)
    }

    pub(crate) fn set_active_expire(&self, on: bool) {
        self.active_expire.store(on, Ordering::Relaxed);
    }

    /// Microseconds; negative: the slow log is off.
    #[inline]
    pub(crate) fn slowlog_log_slower_than(&self) -> i64 {
        self.slowlog_log_slower_than.load(Ordering::Relaxed)
    }

    pub(crate) fn slowlog_max_len(&self) -> usize {
        usize::try_from(self.slowlog_max_len.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// Milliseconds; 0: the latency monitor is off.
    #[inline]
    pub(crate) fn latency_monitor_threshold(&self) -> u64 {
        self.latency_monitor_threshold.load(Ordering::Relaxed)
    }

    pub(crate) fn latency_tracking(&self) -> bool {
        self.latency_tracking.load(Ordering::Relaxed)
    }

    pub(crate) fn percentiles(&self) -> Vec<f64> {
        self.percentiles.lock().clone()
    }
}

/// An integer setting from `min` up (Redis's long long configs, whose errors for a number out
/// of range and for text differ).
pub(super) fn parse_signed(v: &str, min: i64) -> Result<i64, String> {
    let n: i64 = v.parse().map_err(|_| "argument couldn't be parsed into an integer".to_owned())?;
    if n < min {
        return Err(format!("argument must be between {min} and {} inclusive", i64::MAX));
    }
    Ok(n)
}

/// `latency-tracking-info-percentiles`: numbers from 0 to 100, space separated ("" for none).
pub(super) fn parse_percentiles(v: &str) -> Result<Vec<f64>, String> {
    v.split_ascii_whitespace()
        .map(|p| {
            let n: f64 = p.parse().map_err(|_| "Invalid latency-tracking-info-percentiles parameters".to_owned())?;
            if !(0.0..=100.0).contains(&n) {
                return Err("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]".to_owned());
            }
            Ok(n)
        })
        .collect()
}

/// Percentiles as Redis prints them (`%f` with the trailing zeros trimmed: 50, 99.9).
pub(crate) fn format_percentile(p: f64) -> String {
    let s = format!("{p:.6}");
    let s = s.trim_end_matches('0');
    s.strip_suffix('.').unwrap_or(s).to_owned()
}

pub(super) fn format_percentiles(ps: &[f64]) -> String {
    ps.iter().map(|&p| format_percentile(p)).collect::<Vec<_>>().join(" ")
}
