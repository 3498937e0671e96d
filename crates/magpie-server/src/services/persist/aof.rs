//! The append-only log's files: the rewrite (a new base, which is a snapshot, and a new
//! incremental file, switched through the manifest at one moment), turning the log on and off,
//! and its last fsync at shutdown.

use std::io;
use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use magpie_persist::log::{LogFile, Manifest, create_dir_durably};

use super::{Job, Persistence};
use crate::core::error::Error;

impl Persistence {
    /// BGREWRITEAOF
    pub(crate) fn bgrewriteaof(self: &Arc<Self>) -> Result<&'static str, Error> {
        let p = self;
        match p.claim(Job::Rewrite) {
            Ok(()) => {}
            Err(Job::Rewrite) => return Err("ERR Background append only file rewriting already in progress".into()),
            Err(Job::Save) => {
                p.jobs.lock().rewrite_scheduled = true;
                return Ok("Background append only file rewriting scheduled");
            }
        }
        p.spawn_job(Job::Rewrite)?;
        Ok("Background append only file rewriting started")
    }

    /// Rewrites the log: a new base (a snapshot) and a new incremental file, switched at one
    /// moment; or starts the log, if it is off. The caller holds the job slot (or runs at start).
    pub(super) fn rewrite(&self) -> io::Result<()> {
        let p = self;
        let started = Instant::now();
        let result = p.rewrite_inner();
        let mut st = p.stats.lock();
        st.last_rewrite_secs = started.elapsed().as_secs() as i64;
        st.last_rewrite_ok = result.is_ok();
        match &result {
            Ok(base_size) => {
                st.rewrites += 1;
                st.rewrite_failures = 0;
                st.aof_base_size = *base_size;
                info!("append-only log rewritten in {:.3} s", started.elapsed().as_secs_f64());
            }
            Err(_) => st.rewrite_failures += 1,
        }
        result.map(|_| ())
    }

    fn rewrite_inner(&self) -> io::Result<u64> {
        let p = self;
        let journal = &p.journal;
        create_dir_durably(&p.paths.dir)?;
        let old = p.manifest.lock().clone();
        // Past any file on disk, not only those the manifest names: a crash (or a failed
        // rewrite) can leave a file with the next number, which must not block this one.
        let n = p.next_log_number(&old);
        let (base_name, incr_name) = (p.paths.base_name(n), p.paths.incr_name(n));
        let incr = LogFile::create(&p.paths.file(&incr_name))?;
        let was_on = journal.is_on();
        let tap = self.ks.tap();
        let mut start_error = None;
        let manifest_path = p.paths.manifest();
        // Until the new base is written, the log is the old files plus the new one.
        let history =
            Manifest { base: old.base.clone(), incrs: old.incrs.iter().cloned().chain([incr_name.clone()]).collect() };
        let written = history.clone();
        let mut cut_made = false;
        let result = p.write_snapshot_cut(&p.paths.file(&base_name), !was_on, || {
            cut_made = true;
            let cut = tap.current_seq();
            if was_on {
                journal.switch_at(cut, incr, move || written.write(&manifest_path));
            } else {
                tap.set_ordering(true);
                tap.set_expired_tap(true);
                if let Err(e) = journal.start(incr, self.settings.appendfsync()) {
                    start_error = Some(e);
                }
            }
        });
        let result = match (result, start_error) {
            (Ok(r), None) => Ok(r),
            (Err(e), _) | (_, Some(e)) => Err(e),
        };
        // The switch, asked for at the cut, is made by the writer whether or not the base
        // could be written: wait for it, so that the manifest in memory names what the writer
        // writes to (the next rewrite starts from it) and no later switch replaces this one.
        let switched = was_on && cut_made && journal.wait_switched();
        if was_on && switched {
            *p.manifest.lock() = history;
        }
        if let Err(e) = result {
            let _ = std::fs::remove_file(p.paths.file(&base_name));
            if !was_on {
                journal.stop();
                let _ = std::fs::remove_file(p.paths.file(&incr_name));
            }
            if was_on && !switched {
                let _ = std::fs::remove_file(p.paths.file(&incr_name));
            }
            // With the switch made, the manifest names the new file among the old ones: whole.
            return Err(e);
        }
        if was_on && !switched {
            // The writer goes on with the old file: a base cut for the new one would lose
            // what the writer puts in the old one, which this rewrite would delete.
            let _ = std::fs::remove_file(p.paths.file(&base_name));
            let _ = std::fs::remove_file(p.paths.file(&incr_name));
            return Err(io::Error::other("the log writer could not switch to the new incremental file"));
        }
        let new = Manifest { base: Some(base_name.clone()), incrs: vec![incr_name] };
        new.write(&p.paths.manifest())?;
        *p.manifest.lock() = new.clone();
        for name in old.base.iter().chain(&old.incrs) {
            if !new.incrs.contains(name) && new.base.as_ref() != Some(name) {
                let _ = std::fs::remove_file(p.paths.file(name));
            }
        }
        Ok(std::fs::metadata(p.paths.file(&base_name)).map_or(0, |m| m.len()))
    }

    /// CONFIG SET appendonly: starts or stops the log to match the setting.
    pub(crate) fn follow_appendonly(self: &Arc<Self>) -> Result<(), Error> {
        let p = self;
        p.journal.set_policy(self.settings.appendfsync());
        let want = self.settings.appendonly();
        let on = p.journal.is_on();
        if want && !on {
            // Turning on is a rewrite: a base of everything, and the log from that moment.
            return match p.bgrewriteaof() {
                Ok(_) => Ok(()),
                Err(e) => {
                    self.settings.set_appendonly(false);
                    Err(e)
                }
            };
        }
        if !want && on {
            // Wait for a rewrite in progress, then stop.
            let mut jobs = p.jobs.lock();
            while matches!(jobs.running, Some((Job::Rewrite, _))) {
                p.job_done.wait(&mut jobs);
            }
            drop(jobs);
            p.journal.stop();
            // Nothing reads the changes' order now: stop numbering them (the save schedule
            // counts them all the same, see `Tap::changes`).
            let tap = self.ks.tap();
            self.ks.with_all_locked(|| tap.set_ordering(false));
            info!("append-only log turned off");
        }
        Ok(())
    }

    /// The last step of a shutdown: the log's pending records written and fsynced.
    pub(crate) fn shutdown_log(&self) {
        let j = &self.journal;
        if j.is_on() {
            j.stop();
            info!("append-only log flushed and fsynced");
        }
    }
}
