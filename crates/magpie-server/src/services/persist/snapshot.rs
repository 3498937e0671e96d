//! Snapshots: SAVE, BGSAVE, the `save` schedule's saves and the final one at shutdown.
//!
//! A snapshot never forks and never stops the world: the keyspace takes it shard by shard while
//! writes go on, keeping the old version of whatever changes before the walk reaches it (see
//! `Keyspace::begin_snapshot`). One snapshot runs at a time, on its own thread.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::{info, warn};

use magpie_persist::SnapshotWriter;
use magpie_persist::snapshot::Preserved;
use magpie_store::{SnapEntry, SnapshotSink, now_ms};

use super::{Job, Persistence, STEP, human};
use crate::core::error::Error;

impl Persistence {
    /// Writes a snapshot of the keyspace as it is when `at_cut` runs (with every shard locked).
    /// Entries that writers change before the walk reaches them arrive through the sink, already
    /// encoded; they are written out between steps, so they never pile up in memory. Big
    /// collections, from the walk or the sink, arrive frozen and are encoded here between steps,
    /// with no lock held.
    fn write_snapshot(&self, target: &Path, at_cut: impl FnOnce()) -> io::Result<(u64, u64)> {
        self.write_snapshot_cut(target, false, at_cut)
    }

    /// [`write_snapshot`]; with `exclusive`, the moment of the cut waits for every command in
    /// flight to finish (turning the log on: no command may have seen it off and change a key
    /// after it).
    pub(super) fn write_snapshot_cut(
        &self,
        target: &Path,
        exclusive: bool,
        at_cut: impl FnOnce(),
    ) -> io::Result<(u64, u64)> {
        let p = self;
        let ks = &self.ks;
        p.progress.store(0, Ordering::Relaxed);
        let side: Arc<Mutex<Preserved>> = Arc::default();
        let into = side.clone();
        let sink: SnapshotSink = Arc::new(move |db, key: &[u8], entry: SnapEntry<'_>| into.lock().add(db, key, entry));
        let (libraries, keys) = {
            // Not in the middle of a transaction (nor of a FUNCTION command, which runs alone:
            // the libraries are those of the moment of the cut). A background job gives up
            // waiting for the gate when asked to stop: a SHUTDOWN holds the gate and waits for
            // the job.
            let Some(_pass) = self.gate.enter_unless(exclusive, &p.abort) else {
                return Err(io::Error::other("snapshot aborted (shutdown)"));
            };
            let ((), keys) = ks.begin_snapshot(sink, at_cut);
            (self.library_codes(), keys)
        };
        // The file starts with the number of keys of each database at the cut (see
        // docs/formats.md): a loader sizes its tables by them.
        let mut w = match SnapshotWriter::create(target, now_ms(), &keys) {
            Ok(w) => w,
            Err(e) => {
                ks.abort_snapshot();
                return Err(e);
            }
        };
        w.functions(&libraries);
        drop(libraries);
        let mut spare = Preserved::default();
        let mut drain = |w: &mut SnapshotWriter| {
            std::mem::swap(&mut *side.lock(), &mut spare);
            w.preserved(&mut spare);
        };
        let mut walk = || -> io::Result<()> {
            for db in 0..ks.db_count() {
                for shard in 0..ks.db(db).shard_count() {
                    loop {
                        if p.abort.load(Ordering::Relaxed) {
                            return Err(io::Error::other("snapshot aborted (shutdown)"));
                        }
                        let done = ks.snapshot_step(db, shard, STEP, |k, e| w.add(db, k, e));
                        // A writer the step held up is runnable now: on a shared core, let it run
                        // rather than take the lock again before it could.
                        thread::yield_now();
                        w.encode_later();
                        drain(&mut w);
                        if w.pending() >= 1 << 20 {
                            w.flush()?;
                        }
                        p.progress.store(w.entries(), Ordering::Relaxed);
                        if done {
                            break;
                        }
                    }
                }
            }
            // Every shard is finished: nothing reaches the sink any more.
            drain(&mut w);
            Ok(())
        };
        match walk() {
            Ok(()) => w.finish(),
            Err(e) => {
                ks.abort_snapshot();
                w.abandon();
                Err(e)
            }
        }
    }

    /// A snapshot to the `dbfilename`, now, on this thread (SAVE, shutdown, background saves).
    /// As in Redis, only a background save that fails counts as failed for INFO's
    /// `rdb_last_bgsave_status` and `stop-writes-on-bgsave-error`; SAVE and a shutdown report
    /// their failure to whoever asked. Any save that succeeds clears the failure.
    pub(super) fn save_now(&self, background: bool) -> io::Result<()> {
        let p = self;
        let started = Instant::now();
        let target = p.snapshot_path();
        let mut cut = 0;
        let result = p.write_snapshot(&target, || cut = self.ks.tap().changes());
        let mut st = p.stats.lock();
        if background || result.is_ok() {
            st.last_save_attempt = Some(Instant::now());
            st.last_save_secs = started.elapsed().as_secs() as i64;
            p.save_failed.store(result.is_err(), Ordering::Relaxed);
        }
        match result {
            Ok((keys, bytes)) => {
                st.last_save_ok = true;
                st.last_save_unix = now_ms() / 1000;
                st.saves += 1;
                p.saved_at.store(cut, Ordering::SeqCst);
                info!(
                    "snapshot saved to {}: {keys} keys, {} in {:.3} s",
                    target.display(),
                    human(bytes),
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Err(e) => {
                if background {
                    st.last_save_ok = false;
                }
                warn!("snapshot to {} failed: {e}", target.display());
                Err(e)
            }
        }
    }

    /// SAVE: a snapshot before the reply.
    pub(crate) fn save(&self) -> Result<(), Error> {
        let p = self;
        if p.claim(Job::Save).is_err() {
            return Err("ERR Background save already in progress".into());
        }
        let r = p.save_now(false);
        p.release();
        r.map_err(|_| Error::from("ERR"))
    }

    /// BGSAVE [SCHEDULE]
    pub(crate) fn bgsave(self: &Arc<Self>, schedule: bool) -> Result<&'static str, Error> {
        let p = self;
        match p.claim(Job::Save) {
            Ok(()) => {}
            Err(Job::Save) => return Err("ERR Background save already in progress".into()),
            Err(Job::Rewrite) if schedule => {
                p.jobs.lock().save_scheduled = true;
                return Ok("Background saving scheduled");
            }
            Err(Job::Rewrite) => {
                return Err(
                    "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."
                        .into(),
                );
            }
        }
        p.spawn_job(Job::Save)?;
        Ok("Background saving started")
    }

    /// Runs a claimed job on its own thread.
    pub(super) fn spawn_job(self: &Arc<Self>, job: Job) -> Result<(), Error> {
        let s = self.clone();
        let spawned = thread::Builder::new().name("magpie-snapshot".into()).spawn(move || {
            match job {
                Job::Save => {
                    let _ = s.save_now(true);
                }
                Job::Rewrite => {
                    if let Err(e) = s.rewrite() {
                        warn!("append-only log rewrite failed: {e}");
                    }
                }
            }
            s.release();
        });
        if let Err(e) = spawned {
            self.release();
            return Err(Error::msg(format!("ERR cannot start a thread: {e}")));
        }
        Ok(())
    }

    /// The final save of a shutdown (SHUTDOWN, SIGTERM, SIGINT), with the gate held
    /// exclusively by the caller, so that no command runs meanwhile and every write
    /// acknowledged before is in it. From here on write commands are refused (see
    /// [`Persistence::deny_writes`]): the server is about to exit, and a write acknowledged
    /// after the snapshot would be lost. Stops a background job, then saves if asked
    /// (`Some(true)`), or if snapshots are configured and not declined (`None`).
    ///
    /// If the save fails, as Redis's `finishShutdown`: without `force`, writes are accepted
    /// again and the error is returned (the server must not exit: the writes since the last
    /// good snapshot would be lost); with `force`, the server exits anyway.
    pub(crate) fn final_save(&self, save: Option<bool>, force: bool) -> io::Result<()> {
        let p = self;
        p.stopping.store(true, Ordering::SeqCst);
        let wanted = save.unwrap_or(!self.settings.save().is_empty());
        if !wanted || p.final_saved.load(Ordering::SeqCst) {
            return Ok(());
        }
        // A background snapshot would race the final one: ask it to stop and wait.
        p.abort.store(true, Ordering::SeqCst);
        {
            let mut jobs = p.jobs.lock();
            while jobs.running.is_some() {
                p.job_done.wait_for(&mut jobs, Duration::from_millis(100));
            }
            jobs.running = Some((Job::Save, Instant::now()));
        }
        p.abort.store(false, Ordering::SeqCst);
        info!("saving the final snapshot before exiting");
        let r = p.save_now(false);
        p.release();
        match r {
            Ok(()) => {
                p.final_saved.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(e) if force => {
                warn!("error trying to save the final snapshot ({e}); exiting anyway (FORCE)");
                Ok(())
            }
            Err(e) => {
                warn!(
                    "error trying to save the final snapshot, can't exit: {e}. The writes since the last \
                     snapshot would be lost. Free space on {} (or use SHUTDOWN NOSAVE, or SHUTDOWN FORCE, to exit \
                     without it)",
                    p.dir.display()
                );
                p.stopping.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// SHUTDOWN NOSAVE: the final snapshot is declined.
    pub(crate) fn decline_final_save(&self) {
        self.final_saved.store(true, Ordering::SeqCst);
    }
}
