//! The texts of LATENCY GRAPH and LATENCY DOCTOR (Redis's `sparkline.c` and
//! `createLatencyReport`), and the histograms of LATENCY HISTOGRAM and INFO latencystats.

use std::fmt::Write as _;

use magpie_protocol::Args;

use crate::model::Table;
use crate::services::Server;
use crate::services::latency::Series;
use crate::services::stats::{CmdTotals, Totals};

/// Redis's sparkline with `SPARKLINE_FILL`: `rows` rows of `_o#` (`|` below the top), then
/// each sample's label written downwards, `columns` samples per block.
pub(super) fn sparkline(samples: &[(u64, String)], columns: usize, rows: usize) -> String {
    const FILL: &[u8] = b"_o#";
    let mut out = String::new();
    if samples.is_empty() {
        return out;
    }
    let min = samples.iter().map(|s| s.0).min().unwrap_or(0) as f64;
    let max = samples.iter().map(|s| s.0).max().unwrap_or(0) as f64;
    let relmax = if max - min == 0.0 { 1.0 } else { max - min };
    let steps = (FILL.len() * rows) as i64;
    for (block, chunk) in samples.chunks(columns).enumerate() {
        if block != 0 {
            out.push('\n');
        }
        let mut row = 0;
        loop {
            let mut more = false;
            let mut chars = vec![b' '; chunk.len()];
            for (j, (value, label)) in chunk.iter().enumerate() {
                let relval = *value as f64 - min;
                // As C computes `(int)(relval*steps)/relmax`.
                let step = ((((relval * steps as f64) as i64) as f64 / relmax) as i64).clamp(0, steps - 1);
                if row < rows {
                    let idx = step - ((rows - row - 1) * FILL.len()) as i64;
                    more = true;
                    if (0..FILL.len() as i64).contains(&idx) {
                        chars[j] = FILL[idx as usize];
                    } else if idx >= FILL.len() as i64 {
                        chars[j] = b'|';
                    }
                } else {
                    // One blank row between the graph and the labels.
                    if row - rows < 1 {
                        more = true;
                        break;
                    }
                    let at = row - rows - 1;
                    if let Some(&c) = label.as_bytes().get(at) {
                        more = true;
                        chars[j] = c;
                    }
                }
            }
            if !more {
                break;
            }
            row += 1;
            out.push_str(&String::from_utf8_lossy(&chars));
            out.push('\n');
        }
    }
    out
}

/// LATENCY DOCTOR's report.
pub(super) fn doctor(events: &[(&'static str, Series)], threshold: u64, slowlog_us: i64, hz: u64) -> String {
    if events.is_empty() && threshold == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \
                \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a \
                deep space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n"
            .to_owned();
    }
    let now = magpie_store::now_ms() / 1000;
    let mut report = String::new();
    let (mut slowlog_enable, mut slowlog_tuning, mut slowlog_inspect, mut scheduler) = (false, false, false, false);
    let (mut hz_advice, mut large_objects, mut relax_fsync) = (false, false, false);
    let mut advices = 0;
    for (n, (event, series)) in events.iter().enumerate() {
        if n == 0 {
            report.push_str(
                "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do \
                 you Dave?\n\n",
            );
        }
        let samples: Vec<_> = series.samples().collect();
        let count = samples.len() as u64;
        let avg = samples.iter().map(|s| s.latency).sum::<u64>().checked_div(count).unwrap_or(0);
        let mad = samples.iter().map(|s| avg.abs_diff(s.latency)).sum::<u64>().checked_div(count).unwrap_or(0);
        let oldest = samples.iter().map(|s| s.time).min().unwrap_or(now);
        let period = now.saturating_sub(oldest).max(1);
        let _ = write!(
            report,
            "{}. {event}: {count} latency spikes (average {avg}ms, mean deviation {mad}ms, period {:.2} sec). Worst \
             all time event {}ms.",
            n + 1,
            period as f64 / count.max(1) as f64,
            series.max
        );
        match *event {
            "command" => {
                if slowlog_us < 0 {
                    slowlog_enable = true;
                    advices += 1;
                } else if (slowlog_us / 1000) as u64 > threshold {
                    slowlog_tuning = true;
                    advices += 1;
                }
                slowlog_inspect = true;
                large_objects = true;
                advices += 2;
            }
            "fast-command" => {
                scheduler = true;
                advices += 1;
            }
            "expire-cycle" => {
                hz_advice = true;
                large_objects = true;
                advices += 2;
            }
            "aof-fsync-always" => {
                relax_fsync = true;
                advices += 1;
            }
            _ => {}
        }
        report.push('\n');
    }
    if events.is_empty() && advices == 0 {
        report.push_str(
            "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest \
             bit. I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n",
        );
        return report;
    }
    if advices == 0 {
        report.push_str(
            "\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis \
             community to get some help, providing this report in your help request.\n",
        );
        return report;
    }
    report.push_str("\nI have a few advices for you:\n\n");
    let suggested = threshold.saturating_mul(1000);
    if slowlog_enable {
        let _ = writeln!(
            report,
            "- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log \
             Redis feature using the command 'CONFIG SET slowlog-log-slower-than {suggested}'. If the Slow log is \
             disabled Redis is not able to log slow commands execution for you."
        );
    }
    if slowlog_tuning {
        let _ = writeln!(
            report,
            "- Your current Slow Log configuration only logs events that are slower than your configured latency \
             monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {suggested}'."
        );
    }
    if slowlog_inspect {
        report.push_str(
            "- Check your Slow Log to understand what are the commands you are running which are too slow to \
             execute. Please check https://redis.io/commands/slowlog for more information.\n",
        );
    }
    if scheduler {
        report.push_str(
            "- The system is slow to execute Redis code paths not containing system calls. This usually means the \
             system does not provide Redis CPU time to run for long periods. You should try to:\n  1) Lower the \
             system load.\n  2) Use a computer / VM just for Redis if you are running other software in the same \
             system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli \
             --intrinsic-latency 100' what is the intrinsic latency in your system.\n  5) Check if the problem is \
             allocator-related by recompiling Redis with MALLOC=libc, if you are using Jemalloc. However this may \
             create fragmentation problems.\n",
        );
    }
    if relax_fsync {
        report.push_str(
            "- Your fsync policy is set to 'always'. It is very hard to get good performances with such a setup, if \
             possible try to relax the fsync policy to 'onesec'.\n",
        );
    }
    if hz_advice && hz < 100 {
        report.push_str(
            "- In order to make the Redis keys expiring process more incremental, try to set the 'hz' configuration \
             parameter to 100 using 'CONFIG SET hz 100'.\n",
        );
    }
    if large_objects {
        report.push_str(
            "- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. \
             If you have very large objects that are often deleted, expired, or evicted, try to fragment those \
             objects into multiple smaller objects.\n",
        );
    }
    report
}

/// A command's calls by time taken: `(at most this many µs, calls)`, shortest first, from
/// the statistics' histograms (powers of two of microseconds; the last bucket, everything over
/// 2^20 µs, is shown at 2^21).
pub(crate) fn buckets(c: &CmdTotals) -> Vec<(u64, u64)> {
    c.latency.iter().enumerate().map(|(i, &n)| (1u64 << i, n)).collect()
}

/// The histogram of LATENCY HISTOGRAM: `(µs, calls that took at most that)` for the buckets
/// that have calls, the total calls.
fn cumulative(c: &CmdTotals) -> (u64, Vec<(u64, u64)>) {
    let mut sum = 0;
    let mut out = Vec::new();
    for (us, n) in buckets(c) {
        if n > 0 {
            sum += n;
            out.push((us, sum));
        }
    }
    (sum, out)
}

/// A command's name, calls, and `(µs, calls that took at most that)`.
pub(super) type Histogram = (&'static str, u64, Vec<(u64, u64)>);

/// LATENCY HISTOGRAM's commands: every command with calls (no arguments, in table order), or
/// those named, in the order named (a container with its subcommands; unknown names left out),
/// as Redis's `latencySpecificCommandsFillCDF`.
pub(super) fn histograms(server: &Server, table: &Table, args: Args<'_>) -> Vec<Histogram> {
    // Since the last CONFIG RESETSTAT, as INFO's figures.
    let (base, _) = server.metrics().baseline();
    let totals = Totals::read().since(&base);
    let names = table.names();
    let entry = |id: usize| -> Option<Histogram> {
        let (calls, h) = cumulative(totals.cmds.get(id)?);
        (calls > 0).then(|| (names[id], calls, h))
    };
    if args.len() == 2 {
        return (0..names.len()).filter_map(entry).collect();
    }
    let mut out = Vec::new();
    for arg in args.iter().skip(2) {
        let Some(cmd) = table.find_full(arg) else { continue };
        let Some(id) = names.iter().position(|n| *n == cmd.name) else { continue };
        out.extend(entry(id));
        for sub in cmd.subcommands {
            if let Some(id) = names.iter().position(|n| *n == sub.name) {
                out.extend(entry(id));
            }
        }
    }
    out
}

/// The `p`th percentile of a command's calls in µs: the bound of the bucket it falls in.
pub(crate) fn percentile(c: &CmdTotals, p: f64) -> Option<f64> {
    let b = buckets(c);
    let total: u64 = b.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut sum = 0;
    for (us, n) in &b {
        sum += n;
        if sum >= rank {
            return Some(*us as f64);
        }
    }
    b.last().map(|(us, _)| *us as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_fills_as_redis() {
        let samples: Vec<(u64, String)> =
            [(10, "3s"), (20, "2s"), (30, "1s")].iter().map(|(v, l)| (*v, l.to_string())).collect();
        let g = sparkline(&samples, 80, 4);
        // As Redis 7.0's sparkline.c draws them (worked by hand from its integer steps): rows of
        // `_o#` and `|`, a blank row, the labels downwards.
        assert_eq!(g, "  #\n _|\n ||\n_||\n   \n321\nsss\n");
    }
}
