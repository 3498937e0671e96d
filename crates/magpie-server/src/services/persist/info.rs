//! INFO's persistence section, with Redis's field names.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::{Job, Persistence};

impl Persistence {
    /// INFO's persistence section.
    pub(crate) fn info(&self, out: &mut String) {
        let p = self;
        let st = p.stats.lock();
        let jobs = p.jobs.lock();
        let running = |j| jobs.running.filter(|(r, _)| *r == j).map(|(_, t)| t.elapsed().as_secs() as i64);
        let ok = |b: bool| if b { "ok" } else { "err" };
        let mut f = |k: &str, v: &dyn std::fmt::Display| {
            let _ = write!(out, "{k}:{v}\r\n");
        };
        f("loading", &u8::from(p.loading.load(Ordering::Relaxed)));
        f("async_loading", &0);
        f("current_cow_peak", &0);
        f("current_cow_size", &0);
        f("current_cow_size_age", &0);
        f("current_fork_perc", &"0.00");
        let saving = jobs.running.is_some();
        f("current_save_keys_processed", &if saving { p.progress.load(Ordering::Relaxed) } else { 0 });
        f("current_save_keys_total", &if saving { self.ks.dbs().iter().map(|d| d.len() as u64).sum() } else { 0 });
        f("rdb_changes_since_last_save", &p.changes());
        f("rdb_bgsave_in_progress", &u8::from(running(Job::Save).is_some()));
        f("rdb_last_save_time", &st.last_save_unix);
        f("rdb_last_bgsave_status", &ok(st.last_save_ok));
        f("rdb_last_bgsave_time_sec", &st.last_save_secs);
        f("rdb_current_bgsave_time_sec", &running(Job::Save).unwrap_or(-1));
        f("rdb_saves", &st.saves);
        f("rdb_last_cow_size", &0);
        f("rdb_last_load_keys_expired", &st.loaded_expired);
        f("rdb_last_load_keys_loaded", &st.loaded_keys);
        let j = &p.journal;
        f("aof_enabled", &u8::from(j.is_on()));
        f("aof_rewrite_in_progress", &u8::from(running(Job::Rewrite).is_some()));
        f("aof_rewrite_scheduled", &u8::from(jobs.rewrite_scheduled));
        f("aof_last_rewrite_time_sec", &st.last_rewrite_secs);
        f("aof_current_rewrite_time_sec", &running(Job::Rewrite).unwrap_or(-1));
        f("aof_last_bgrewrite_status", &ok(st.last_rewrite_ok));
        f("aof_rewrites", &st.rewrites);
        f("aof_rewrites_consecutive_failures", &st.rewrite_failures);
        let status = j.status();
        f("aof_last_write_status", &ok(status.last_write_error.is_none()));
        f("aof_last_cow_size", &0);
        f("module_fork_in_progress", &0);
        f("module_fork_last_cow_size", &0);
        if j.is_on() {
            let incr = j.incr_bytes.load(Ordering::Relaxed);
            f("aof_current_size", &(st.aof_base_size + incr));
            f("aof_base_size", &st.aof_base_size);
            f("aof_pending_rewrite", &u8::from(jobs.rewrite_scheduled));
            f("aof_buffer_length", &j.unwritten());
            f("aof_pending_bio_fsync", &0);
            f("aof_delayed_fsync", &status.delayed_fsync);
            f("aof_fsync_policy", &j.policy().name());
            f("aof_fsyncs", &status.fsyncs);
            // Magpie's own (docs/durability.md): how long records waited to be written after
            // their commands (the last write, the longest since the start), and how long ago the
            // log was last fsynced.
            f("aof_write_lag_usec", &status.write_lag.as_micros());
            f("aof_write_lag_max_usec", &status.write_lag_max.as_micros());
            f("aof_last_fsync_age_msec", &status.last_fsync.map_or(-1, |t| t.elapsed().as_millis() as i64));
        }
    }
}
