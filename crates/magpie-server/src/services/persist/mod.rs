//! Persistence: loading at start, snapshots (SAVE, BGSAVE, the `save` schedule, shutdown), the
//! append-only log (its rewrite, turning it on and off) and the INFO persistence section.
//!
//! Snapshots never fork and never stop the world: the keyspace takes them shard by shard while
//! writes go on, keeping the old version of whatever changes before the walk reaches it (see
//! `Keyspace::begin_snapshot`). One snapshot runs at a time, on its own thread; a log rewrite
//! is a snapshot too (the new base), cut at the same moment as the log switches files.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tracing::info;

use magpie_persist::log::Manifest;
use magpie_protocol::Args;
use magpie_store::{Keyspace, now_ms};

use super::config::{Config, Settings};
use super::gate::Gate;
use super::journal::{Journal, LogPaths};
use super::scripting::Scripting;
use crate::core::error::Error;
use crate::core::units::human;

mod aof;
mod check;
mod import;
mod info;
mod load;
mod snapshot;

pub use check::check_tool;

/// What the log replayed at start holds, step by step: a record starts (in a database: its
/// commands start there, and a SELECT among them moves on), then its commands.
pub(crate) enum ReplayStep<'a> {
    Record {
        db: usize,
    },
    Command(Args<'a>),
    /// The file's records are all replayed.
    End,
}

/// Applies the log being replayed at start (the execution layer runs its commands: see
/// `crate::front::replay`).
pub(crate) type Replay<'a> = dyn FnMut(ReplayStep<'_>) -> Result<(), String> + 'a;

/// Entries the snapshot visits per shard lock.
const STEP: usize = 512;
/// A failed background save is not retried on schedule before this long (as Redis).
const RETRY_DELAY: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Job {
    Save,
    Rewrite,
}

#[derive(Default)]
struct Jobs {
    running: Option<(Job, Instant)>,
    save_scheduled: bool,
    rewrite_scheduled: bool,
}

struct Stats {
    last_save_unix: u64,
    last_save_ok: bool,
    last_save_attempt: Option<Instant>,
    last_save_secs: i64,
    saves: u64,
    last_rewrite_ok: bool,
    last_rewrite_secs: i64,
    rewrites: u64,
    rewrite_failures: u64,
    aof_base_size: u64,
    loaded_keys: u64,
    loaded_expired: u64,
}

pub(crate) struct Persistence {
    journal: Arc<Journal>,
    ks: Arc<Keyspace>,
    settings: Arc<Settings>,
    gate: Arc<Gate>,
    dir: PathBuf,
    paths: LogPaths,
    manifest: Mutex<Manifest>,
    jobs: Mutex<Jobs>,
    job_done: Condvar,
    /// Asks a running snapshot to give up (shutdown).
    abort: AtomicBool,
    stats: Mutex<Stats>,
    /// The tap's count of changes when the last successful snapshot was cut: changes since
    /// then are the difference with the current count.
    saved_at: AtomicU64,
    /// Entries the running snapshot has written.
    progress: AtomicU64,
    loading: AtomicBool,
    /// SHUTDOWN has already made the final snapshot.
    final_saved: AtomicBool,
    /// The last snapshot failed (a copy of `Stats::last_save_ok`, read by every write).
    save_failed: AtomicBool,
    /// The final save of a shutdown is taken or done: writes are refused.
    stopping: AtomicBool,
    /// The function libraries, which snapshots carry.
    scripting: std::sync::OnceLock<Arc<Scripting>>,
}

impl Persistence {
    pub(crate) fn new(config: &Config, ks: Arc<Keyspace>, settings: Arc<Settings>, gate: Arc<Gate>) -> Persistence {
        let tap = ks.tap_handle();
        let journal = Journal::new(move || tap.current_seq());
        Persistence {
            journal: Arc::new(journal),
            ks,
            settings,
            gate,
            dir: config.dir.clone(),
            paths: LogPaths { dir: config.dir.join(&config.appenddirname), prefix: config.appendfilename.clone() },
            manifest: Mutex::new(Manifest::default()),
            jobs: Mutex::new(Jobs::default()),
            job_done: Condvar::new(),
            abort: AtomicBool::new(false),
            stats: Mutex::new(Stats {
                last_save_unix: now_ms() / 1000,
                last_save_ok: true,
                last_save_attempt: None,
                last_save_secs: -1,
                saves: 0,
                last_rewrite_ok: true,
                last_rewrite_secs: -1,
                rewrites: 0,
                rewrite_failures: 0,
                aof_base_size: 0,
                loaded_keys: 0,
                loaded_expired: 0,
            }),
            saved_at: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            loading: AtomicBool::new(false),
            final_saved: AtomicBool::new(false),
            save_failed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            scripting: std::sync::OnceLock::new(),
        }
    }

    /// Gives snapshots the function libraries to save and load (once, at start).
    pub(crate) fn set_scripting(&self, scripting: Arc<Scripting>) {
        let _ = self.scripting.set(scripting);
    }

    /// Every function library's code, to save in a snapshot.
    fn library_codes(&self) -> Vec<Vec<u8>> {
        self.scripting.get().map(|s| s.library_codes()).unwrap_or_default()
    }

    fn snapshot_path(&self) -> PathBuf {
        self.dir.join(self.settings.dbfilename())
    }

    /// The journal that takes the log's records.
    pub(crate) fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    pub(crate) fn last_save_unix(&self) -> u64 {
        self.stats.lock().last_save_unix
    }

    /// Why write commands are refused right now, if they are (Redis's MISCONF errors).
    pub(crate) fn deny_writes(&self) -> Option<Error> {
        if self.stopping.load(Ordering::Relaxed) {
            // The final snapshot is taken (or being taken, while nothing runs): a write now
            // would be lost when the server exits.
            return Some(Error::from("ERR the server is shutting down: writes are refused"));
        }
        if self.journal.is_failing() {
            let why = self.journal.status().last_write_error.unwrap_or_else(|| "unknown error".to_owned());
            return Some(Error::msg(format!("MISCONF Errors writing to the AOF file: {why}")));
        }
        if self.save_failed.load(Ordering::Relaxed)
            && self.settings.stop_writes_on_bgsave_error()
            && !self.settings.save().is_empty()
        {
            return Some(Error::from(
                "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. \
                 Commands that may modify the data set are disabled, because this instance is configured to report \
                 errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check \
                 the Redis logs for details about the RDB error.",
            ));
        }
        None
    }

    fn changes(&self) -> u64 {
        self.ks.tap().changes().saturating_sub(self.saved_at.load(Ordering::Relaxed))
    }
}

impl Persistence {
    /// Claims the one snapshot slot for `job`, or says who has it.
    pub(super) fn claim(&self, job: Job) -> Result<(), Job> {
        let mut jobs = self.jobs.lock();
        match jobs.running {
            Some((running, _)) => Err(running),
            None => {
                jobs.running = Some((job, Instant::now()));
                Ok(())
            }
        }
    }

    pub(super) fn release(&self) {
        self.jobs.lock().running = None;
        self.job_done.notify_all();
    }

    /// Called by the server's timer: the `save` schedule, automatic log rewrites, scheduled jobs.
    pub(crate) fn cron(self: &Arc<Self>, shutting_down: bool) {
        let p = self;
        if p.loading.load(Ordering::Relaxed) || shutting_down {
            return;
        }
        let (idle, save_scheduled, rewrite_scheduled) = {
            let jobs = p.jobs.lock();
            (jobs.running.is_none(), jobs.save_scheduled, jobs.rewrite_scheduled)
        };
        if !idle {
            return;
        }
        if rewrite_scheduled {
            p.jobs.lock().rewrite_scheduled = false;
            let _ = p.bgrewriteaof();
            return;
        }
        if save_scheduled {
            p.jobs.lock().save_scheduled = false;
            let _ = p.bgsave(false);
            return;
        }
        let changes = p.changes();
        let (since_save, retry_ok) = {
            let st = p.stats.lock();
            let since = (now_ms() / 1000).saturating_sub(st.last_save_unix);
            (since, st.last_save_ok || st.last_save_attempt.is_none_or(|t| t.elapsed() >= RETRY_DELAY))
        };
        if changes > 0 && retry_ok && self.settings.save().iter().any(|&(secs, n)| changes >= n && since_save >= secs) {
            info!("{changes} changes in {since_save} seconds. Saving...");
            let _ = p.bgsave(false);
            return;
        }
        let (pct, min) = self.settings.auto_aof_rewrite();
        if p.journal.is_on() && pct > 0 {
            let base = p.stats.lock().aof_base_size;
            let size = p.journal.incr_bytes.load(Ordering::Relaxed) + base;
            if size >= min && size > base.max(1) * (100 + pct) / 100 {
                info!("starting an automatic append-only log rewrite ({} on disk)", human(size));
                let _ = p.bgrewriteaof();
            }
        }
    }
}
