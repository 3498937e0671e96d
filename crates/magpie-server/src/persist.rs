//! Persistence: loading at start, snapshots (SAVE, BGSAVE, the `save` schedule, shutdown), the
//! append-only log (its rewrite, turning it on and off) and the INFO persistence section.
//!
//! Snapshots never fork and never stop the world: the keyspace takes them shard by shard while
//! writes go on, keeping the old version of whatever changes before the walk reaches it (see
//! `Keyspace::begin_snapshot`). One snapshot runs at a time, on its own thread; a log rewrite
//! is a snapshot too (the new base), cut at the same moment as the log switches files.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tracing::{info, warn};

use magpie_persist::log::{LogFile, LogReader, Manifest, Tail};
use magpie_persist::snapshot::Preserved;
use magpie_persist::{SnapshotReader, SnapshotWriter};
use magpie_protocol::{Args, Reply, Resp};
use magpie_store::{SnapEntry, SnapshotSink, now_ms};

use crate::client::Client;
use crate::command::{self, Ctx, Effects};
use crate::config::Config;
use crate::error::Error;
use crate::journal::{Journal, LogPaths};
use crate::server::Shared;
use crate::stats;

/// Entries the snapshot visits per shard lock.
const STEP: usize = 512;
/// A failed background save is not retried on schedule before this long (as Redis).
const RETRY_DELAY: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
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

pub struct Persistence {
    pub journal: Arc<Journal>,
    dir: PathBuf,
    paths: LogPaths,
    manifest: Mutex<Manifest>,
    jobs: Mutex<Jobs>,
    job_done: Condvar,
    /// Asks a running snapshot to give up (shutdown).
    abort: AtomicBool,
    stats: Mutex<Stats>,
    /// The tap's sequence when the last successful snapshot was cut: changes since then are
    /// the difference with the current sequence.
    saved_at_seq: AtomicU64,
    /// Entries the running snapshot has written.
    progress: AtomicU64,
    loading: AtomicBool,
    /// SHUTDOWN has already made the final snapshot.
    final_saved: AtomicBool,
    /// The last snapshot failed (a copy of `Stats::last_save_ok`, read by every write).
    save_failed: AtomicBool,
}

impl Persistence {
    pub fn new(config: &Config, journal: Journal) -> Persistence {
        Persistence {
            journal: Arc::new(journal),
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
            saved_at_seq: AtomicU64::new(0),
            progress: AtomicU64::new(0),
            loading: AtomicBool::new(false),
            final_saved: AtomicBool::new(false),
            save_failed: AtomicBool::new(false),
        }
    }

    fn snapshot_path(&self, shared: &Shared) -> PathBuf {
        self.dir.join(shared.settings.dbfilename())
    }

    pub fn last_save_unix(&self) -> u64 {
        self.stats.lock().last_save_unix
    }

    /// Why write commands are refused right now, if they are (Redis's MISCONF errors).
    pub fn deny_writes(&self, shared: &Shared) -> Option<Error> {
        if self.journal.is_failing() {
            let why = self.journal.status().last_write_error.unwrap_or_else(|| "unknown error".to_owned());
            return Some(Error::msg(format!("MISCONF Errors writing to the AOF file: {why}")));
        }
        if self.save_failed.load(Ordering::Relaxed)
            && shared.settings.stop_writes_on_bgsave_error()
            && !shared.settings.save().is_empty()
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

    fn changes(&self, shared: &Shared) -> u64 {
        shared.keyspace.tap().current_seq().saturating_sub(self.saved_at_seq.load(Ordering::Relaxed))
    }
}

// ---------------------------------------------------------------------------------------------
// Start

/// Loads what is on disk and sets up the log, before the server accepts clients.
pub fn start(shared: &Arc<Shared>) -> Result<(), String> {
    let p = &shared.persistence;
    p.loading.store(true, Ordering::SeqCst);
    let result = load_and_open(shared);
    p.loading.store(false, Ordering::SeqCst);
    result?;
    let tap = shared.keyspace.tap();
    if !shared.settings.save().is_empty() || shared.settings.appendonly() {
        tap.set_ordering(true);
    }
    p.saved_at_seq.store(tap.current_seq(), Ordering::SeqCst);
    Ok(())
}

fn load_and_open(shared: &Arc<Shared>) -> Result<(), String> {
    let p = &shared.persistence;
    remove_stale_temp_files(&p.dir);
    let snapshot = p.snapshot_path(shared);
    if !shared.settings.appendonly() {
        if snapshot.exists() {
            load_snapshot(shared, &snapshot)?;
        }
        return Ok(());
    }
    std::fs::create_dir_all(&p.paths.dir)
        .map_err(|e| format!("cannot create the log directory {}: {e}", p.paths.dir.display()))?;
    let Some(manifest) =
        Manifest::read(&p.paths.manifest()).map_err(|e| format!("cannot read the log's manifest: {e}"))?
    else {
        // No log yet: start it from the snapshot, if there is one, with a base of everything.
        if snapshot.exists() {
            info!("no append-only log yet: loading the snapshot {} first", snapshot.display());
            load_snapshot(shared, &snapshot)?;
        }
        return rewrite(shared).map_err(|e| format!("cannot create the append-only log: {e}"));
    };
    let started = Instant::now();
    if let Some(base) = &manifest.base {
        load_snapshot(shared, &p.paths.file(base))?;
        p.stats.lock().aof_base_size = std::fs::metadata(p.paths.file(base)).map_or(0, |m| m.len());
    }
    let mut last_len = None;
    for (i, name) in manifest.incrs.iter().enumerate() {
        let last = i + 1 == manifest.incrs.len();
        last_len = Some(replay_log(shared, &p.paths.file(name), last && shared.settings.aof_load_truncated())?);
    }
    info!(
        "append-only log loaded in {:.3} s: {} keys",
        started.elapsed().as_secs_f64(),
        shared.keyspace.dbs().iter().map(|d| d.len()).sum::<usize>()
    );
    let (file, manifest) = match (manifest.incrs.last(), last_len) {
        (Some(name), Some(len)) => {
            let path = p.paths.file(name);
            let f = LogFile::open_append(&path, len).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            (f, manifest)
        }
        _ => {
            // A manifest with a base only: start a new incremental file after it.
            let n = manifest.max_number() + 1;
            let name = p.paths.incr_name(n);
            let f = LogFile::create(&p.paths.file(&name)).map_err(|e| format!("cannot create {name}: {e}"))?;
            let m = Manifest { base: manifest.base.clone(), incrs: vec![name] };
            m.write(&p.paths.manifest()).map_err(|e| format!("cannot write the manifest: {e}"))?;
            (f, m)
        }
    };
    *p.manifest.lock() = manifest;
    let tap = shared.keyspace.tap();
    shared
        .keyspace
        .with_all_locked(|| {
            tap.set_ordering(true);
            tap.set_expired_tap(true);
            p.journal.start(file, shared.settings.appendfsync())
        })
        .map_err(|e| format!("cannot start the log writer: {e}"))
}

/// Removes the temporary files of snapshots that a crash interrupted.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("temp-") && name.ends_with(".snapshot") {
            info!("removing {}, left by an interrupted snapshot", e.path().display());
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Loads a snapshot into the (empty) keyspace. Expired entries are loaded too: the log that
/// may follow was written when they were alive, and active expiry removes them afterwards.
fn load_snapshot(shared: &Shared, path: &Path) -> Result<(), String> {
    let started = Instant::now();
    let mut reader = SnapshotReader::open(path).map_err(|e| damaged(&e, "--check-snapshot"))?;
    let total = reader.file_len();
    info!("loading the snapshot {} ({})", path.display(), crate::info::human(total));
    let (mut keys, mut expired) = (0u64, 0u64);
    let now = now_ms();
    let mut next_report = Instant::now() + Duration::from_secs(1);
    while let Some(e) = reader.next_entry().map_err(|e| damaged(&e, "--check-snapshot"))? {
        if e.db >= shared.keyspace.db_count() {
            return Err(format!(
                "{}: has a key in database {} but this server has {} databases (the `databases` setting)",
                path.display(),
                e.db,
                shared.keyspace.db_count()
            ));
        }
        expired += u64::from(e.expire_at.is_some_and(|t| t <= now));
        shared.keyspace.db(e.db).write(&e.key).insert(&e.key, e.value, e.expire_at, 0);
        keys += 1;
        if keys % 4096 == 0 && Instant::now() >= next_report {
            next_report = Instant::now() + Duration::from_secs(1);
            let secs = started.elapsed().as_secs_f64();
            info!(
                "loading: {keys} keys, {:.0}% of the file, {:.0} keys/s",
                reader.pos() as f64 * 100.0 / total.max(1) as f64,
                keys as f64 / secs
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    info!("snapshot loaded: {keys} keys ({expired} already expired) in {secs:.3} s");
    let mut st = shared.persistence.stats.lock();
    st.loaded_keys = keys;
    st.loaded_expired = expired;
    Ok(())
}

fn damaged(e: &magpie_persist::FileError, tool: &str) -> String {
    format!(
        "{e}. The file is damaged: Magpie will not start with part of the data. Check it with \
         `magpie-server {tool} {}`",
        e.path.display()
    )
}

/// Replays an incremental log; returns the length of its valid part.
fn replay_log(shared: &Arc<Shared>, path: &Path, allow_torn: bool) -> Result<u64, String> {
    let started = Instant::now();
    let mut reader = LogReader::open(path).map_err(|e| damaged(&e, "--check-aof"))?;
    let mut client = Client::internal();
    let mut out = Reply::new(Resp::V2);
    let mut effects = Effects::default();
    let mut timer = stats::Timer::start();
    // The log holds what blocking commands did (BLPOP as LPOP); nothing replayed may wait.
    let mut wait = crate::blocking::Wait { mode: crate::blocking::Mode::NoBlock, ..Default::default() };
    let (mut records, mut errors) = (0u64, 0u64);
    let (mut buf, mut spans) = (Vec::new(), Vec::new());
    while let Some(rec) = reader.next_record().map_err(|e| damaged(&e, "--check-aof"))? {
        if rec.db >= shared.keyspace.db_count() {
            return Err(format!(
                "{}: a record for database {} (only {} configured)",
                path.display(),
                rec.db,
                shared.keyspace.db_count()
            ));
        }
        records += 1;
        client.db = rec.db;
        for cmd in &rec.commands {
            buf.clear();
            spans.clear();
            for a in cmd {
                spans.push((buf.len(), buf.len() + a.len()));
                buf.extend_from_slice(a);
            }
            let args = Args::new(&buf, &spans);
            out.clear();
            let result = match command::resolve(args) {
                Ok((_, c)) => {
                    let mut ctx = Ctx {
                        shared,
                        ks: &shared.keyspace,
                        client: &mut client,
                        out: &mut out,
                        now: 0,
                        stats: stats::local(),
                        timer: &mut timer,
                        effects: &mut effects,
                        wait: &mut wait,
                    };
                    (c.run)(&mut ctx, args).map_err(|e| String::from_utf8_lossy(&e.0).into_owned())
                }
                Err((e, _)) => Err(String::from_utf8_lossy(&e.0).into_owned()),
            };
            if let Err(e) = result {
                errors += 1;
                if errors <= 10 {
                    warn!("{}: replaying {:?}: {e}", path.display(), String::from_utf8_lossy(&cmd[0]));
                }
            }
        }
    }
    if errors > 0 {
        warn!("{}: {errors} commands failed while replaying", path.display());
    }
    let valid = match reader.tail() {
        Some(Tail::Torn { offset, dropped, reason }) => {
            if !allow_torn {
                return Err(format!(
                    "{}: the last record, at offset {offset}, is incomplete ({reason}). Start with \
                     `aof-load-truncated yes` to drop its {dropped} bytes, or repair the file with \
                     `magpie-server --check-aof {} --fix`",
                    path.display(),
                    path.display()
                ));
            }
            warn!(
                "{}: the last record was cut short by a crash ({reason}): dropping its {dropped} bytes at offset {offset}",
                path.display()
            );
            *offset
        }
        _ => reader.pos(),
    };
    info!("{}: {records} records replayed in {:.3} s", path.display(), started.elapsed().as_secs_f64());
    Ok(valid)
}

// ---------------------------------------------------------------------------------------------
// Snapshots

/// Writes a snapshot of the keyspace as it is when `at_cut` runs (with every shard locked).
/// Entries that writers change before the walk reaches them arrive through the sink, already
/// encoded; they are written out between steps, so they never pile up in memory. Big
/// collections, from the walk or the sink, arrive frozen and are encoded here between steps,
/// with no lock held.
fn write_snapshot(shared: &Shared, target: &Path, at_cut: impl FnOnce()) -> io::Result<(u64, u64)> {
    write_snapshot_cut(shared, target, false, at_cut)
}

/// [`write_snapshot`]; with `exclusive`, the moment of the cut waits for every command in
/// flight to finish (turning the log on: no command may have seen it off and change a key
/// after it).
fn write_snapshot_cut(
    shared: &Shared,
    target: &Path,
    exclusive: bool,
    at_cut: impl FnOnce(),
) -> io::Result<(u64, u64)> {
    let p = &shared.persistence;
    let ks = &shared.keyspace;
    let mut w = SnapshotWriter::create(target, now_ms(), ks.db_count())?;
    p.progress.store(0, Ordering::Relaxed);
    let side: Arc<Mutex<Preserved>> = Arc::default();
    let into = side.clone();
    let sink: SnapshotSink = Arc::new(move |db, key: &[u8], entry: SnapEntry<'_>| into.lock().add(db, key, entry));
    {
        // Not in the middle of a transaction.
        let _pass = if exclusive { shared.gate.exclusive() } else { shared.gate.shared() };
        ks.begin_snapshot(sink, at_cut);
    }
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
fn save_now(shared: &Shared) -> io::Result<()> {
    let p = &shared.persistence;
    let started = Instant::now();
    let target = p.snapshot_path(shared);
    let mut cut = 0;
    let result = write_snapshot(shared, &target, || cut = shared.keyspace.tap().current_seq());
    let mut st = p.stats.lock();
    st.last_save_attempt = Some(Instant::now());
    st.last_save_secs = started.elapsed().as_secs() as i64;
    p.save_failed.store(result.is_err(), Ordering::Relaxed);
    match result {
        Ok((keys, bytes)) => {
            st.last_save_ok = true;
            st.last_save_unix = now_ms() / 1000;
            st.saves += 1;
            p.saved_at_seq.store(cut, Ordering::SeqCst);
            info!(
                "snapshot saved to {}: {keys} keys, {} in {:.3} s",
                target.display(),
                crate::info::human(bytes),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(e) => {
            st.last_save_ok = false;
            warn!("snapshot to {} failed: {e}", target.display());
            Err(e)
        }
    }
}

/// Claims the one snapshot slot for `job`, or says who has it.
fn claim(p: &Persistence, job: Job) -> Result<(), Job> {
    let mut jobs = p.jobs.lock();
    match jobs.running {
        Some((running, _)) => Err(running),
        None => {
            jobs.running = Some((job, Instant::now()));
            Ok(())
        }
    }
}

fn release(p: &Persistence) {
    p.jobs.lock().running = None;
    p.job_done.notify_all();
}

/// SAVE: a snapshot before the reply.
pub fn save(shared: &Shared) -> Result<(), Error> {
    let p = &shared.persistence;
    if claim(p, Job::Save).is_err() {
        return Err("ERR Background save already in progress".into());
    }
    let r = save_now(shared);
    release(p);
    r.map_err(|_| Error::from("ERR"))
}

/// BGSAVE [SCHEDULE]
pub fn bgsave(shared: &Arc<Shared>, schedule: bool) -> Result<&'static str, Error> {
    let p = &shared.persistence;
    match claim(p, Job::Save) {
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
    spawn_job(shared, Job::Save)?;
    Ok("Background saving started")
}

/// BGREWRITEAOF
pub fn bgrewriteaof(shared: &Arc<Shared>) -> Result<&'static str, Error> {
    let p = &shared.persistence;
    match claim(p, Job::Rewrite) {
        Ok(()) => {}
        Err(Job::Rewrite) => return Err("ERR Background append only file rewriting already in progress".into()),
        Err(Job::Save) => {
            p.jobs.lock().rewrite_scheduled = true;
            return Ok("Background append only file rewriting scheduled");
        }
    }
    spawn_job(shared, Job::Rewrite)?;
    Ok("Background append only file rewriting started")
}

/// Runs a claimed job on its own thread.
fn spawn_job(shared: &Arc<Shared>, job: Job) -> Result<(), Error> {
    let s = shared.clone();
    let spawned = thread::Builder::new().name("magpie-snapshot".into()).spawn(move || {
        match job {
            Job::Save => {
                let _ = save_now(&s);
            }
            Job::Rewrite => {
                if let Err(e) = rewrite(&s) {
                    warn!("append-only log rewrite failed: {e}");
                }
            }
        }
        release(&s.persistence);
    });
    if let Err(e) = spawned {
        release(&shared.persistence);
        return Err(Error::msg(format!("ERR cannot start a thread: {e}")));
    }
    Ok(())
}

/// Rewrites the log: a new base (a snapshot) and a new incremental file, switched at one
/// moment; or starts the log, if it is off. The caller holds the job slot (or runs at start).
fn rewrite(shared: &Shared) -> io::Result<()> {
    let p = &shared.persistence;
    let started = Instant::now();
    let result = rewrite_inner(shared);
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

fn rewrite_inner(shared: &Shared) -> io::Result<u64> {
    let p = &shared.persistence;
    let journal = &p.journal;
    std::fs::create_dir_all(&p.paths.dir)?;
    let old = p.manifest.lock().clone();
    let n = old.max_number() + 1;
    let (base_name, incr_name) = (p.paths.base_name(n), p.paths.incr_name(n));
    let incr = LogFile::create(&p.paths.file(&incr_name))?;
    let was_on = journal.is_on();
    let tap = shared.keyspace.tap();
    let mut start_error = None;
    let manifest_path = p.paths.manifest();
    let result = write_snapshot_cut(shared, &p.paths.file(&base_name), !was_on, || {
        let cut = tap.current_seq();
        if was_on {
            // Until the new base is written, the log is the old files plus the new one.
            let history = Manifest {
                base: old.base.clone(),
                incrs: old.incrs.iter().cloned().chain([incr_name.clone()]).collect(),
            };
            journal.switch_at(cut, incr, move || history.write(&manifest_path));
        } else {
            tap.set_ordering(true);
            tap.set_expired_tap(true);
            if let Err(e) = journal.start(incr, shared.settings.appendfsync()) {
                start_error = Some(e);
            }
        }
    });
    let result = match (result, start_error) {
        (Ok(r), None) => Ok(r),
        (Err(e), _) | (_, Some(e)) => Err(e),
    };
    if let Err(e) = result {
        let _ = std::fs::remove_file(p.paths.file(&base_name));
        if !was_on {
            journal.stop();
            let _ = std::fs::remove_file(p.paths.file(&incr_name));
        }
        // With a switch made, the manifest names the new file among the old ones: still whole.
        return Err(e);
    }
    if was_on && !journal.wait_switched() {
        return Err(io::Error::other("the log writer stopped before switching files"));
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
pub fn follow_appendonly(shared: &Arc<Shared>) -> Result<(), Error> {
    let p = &shared.persistence;
    p.journal.set_policy(shared.settings.appendfsync());
    let want = shared.settings.appendonly();
    let on = p.journal.is_on();
    if want && !on {
        // Turning on is a rewrite: a base of everything, and the log from that moment.
        return match bgrewriteaof(shared) {
            Ok(_) => Ok(()),
            Err(e) => {
                shared.settings.set_appendonly(false);
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
        info!("append-only log turned off");
    }
    if !shared.settings.save().is_empty() {
        let tap = shared.keyspace.tap();
        if !tap.ordering() {
            shared.keyspace.with_all_locked(|| tap.set_ordering(true));
            p.saved_at_seq.store(tap.current_seq(), Ordering::SeqCst);
        }
    }
    Ok(())
}

/// Called by the server's timer: the `save` schedule, automatic log rewrites, scheduled jobs.
pub fn cron(shared: &Arc<Shared>) {
    let p = &shared.persistence;
    if p.loading.load(Ordering::Relaxed) || shared.is_shutting_down() {
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
        let _ = bgrewriteaof(shared);
        return;
    }
    if save_scheduled {
        p.jobs.lock().save_scheduled = false;
        let _ = bgsave(shared, false);
        return;
    }
    let changes = p.changes(shared);
    let (since_save, retry_ok) = {
        let st = p.stats.lock();
        let since = (now_ms() / 1000).saturating_sub(st.last_save_unix);
        (since, st.last_save_ok || st.last_save_attempt.is_none_or(|t| t.elapsed() >= RETRY_DELAY))
    };
    if changes > 0 && retry_ok && shared.settings.save().iter().any(|&(secs, n)| changes >= n && since_save >= secs) {
        info!("{changes} changes in {since_save} seconds. Saving...");
        let _ = bgsave(shared, false);
        return;
    }
    let (pct, min) = shared.settings.auto_aof_rewrite();
    if p.journal.is_on() && pct > 0 {
        let base = p.stats.lock().aof_base_size;
        let size = p.journal.incr_bytes.load(Ordering::Relaxed) + base;
        if size >= min && size > base.max(1) * (100 + pct) / 100 {
            info!("starting an automatic append-only log rewrite ({} on disk)", crate::info::human(size));
            let _ = bgrewriteaof(shared);
        }
    }
}

/// The final save of a shutdown: waits for (or stops) a background job, then saves if asked
/// (`Some(true)`), or if snapshots are configured and not declined (`None`). Errors if the
/// save was wanted and failed.
pub fn shutdown_save(shared: &Shared, save: Option<bool>) -> io::Result<()> {
    let p = &shared.persistence;
    let wanted = save.unwrap_or(!shared.settings.save().is_empty());
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
    let r = save_now(shared);
    release(p);
    if r.is_ok() {
        p.final_saved.store(true, Ordering::SeqCst);
    }
    r
}

/// SHUTDOWN NOSAVE: the final snapshot is declined.
pub fn decline_final_save(shared: &Shared) {
    shared.persistence.final_saved.store(true, Ordering::SeqCst);
}

/// The last step of a shutdown: the log's pending records written and fsynced.
pub fn shutdown_log(shared: &Shared) {
    let j = &shared.persistence.journal;
    if j.is_on() {
        j.stop();
        info!("append-only log flushed and fsynced");
    }
}

/// INFO's persistence section.
pub fn info(shared: &Shared, out: &mut String) {
    let p = &shared.persistence;
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
    f("current_save_keys_total", &if saving { shared.keyspace.dbs().iter().map(|d| d.len() as u64).sum() } else { 0 });
    f("rdb_changes_since_last_save", &p.changes(shared));
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
        f("aof_buffer_length", &0);
        f("aof_pending_bio_fsync", &0);
        f("aof_delayed_fsync", &status.delayed_fsync);
        f("aof_fsync_policy", &j.policy().name());
        f("aof_fsyncs", &status.fsyncs);
    }
}

// ---------------------------------------------------------------------------------------------
// The check tools

/// `--check-aof PATH [--fix]` and `--check-snapshot PATH`: prints what it finds; the exit code
/// is 0 for a sound file (or one repaired), 1 otherwise.
pub fn check_tool(aof: Option<&Path>, snapshot: Option<&Path>, fix: bool) -> std::process::ExitCode {
    use std::process::ExitCode;
    if let Some(path) = snapshot {
        return match magpie_persist::snapshot::check(path) {
            Ok((n, len)) => {
                println!("{}: OK, {n} keys, {len} bytes", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("{e}");
                println!("a damaged snapshot cannot be repaired; restore an older copy or start from the log");
                ExitCode::from(1)
            }
        };
    }
    let Some(path) = aof else { return ExitCode::SUCCESS };
    // A manifest: check every file it names.
    if path.extension().is_some_and(|e| e == "manifest") {
        let m = match Manifest::read(path) {
            Ok(Some(m)) => m,
            Ok(None) => {
                println!("{}: no such file", path.display());
                return ExitCode::from(1);
            }
            Err(e) => {
                println!("{e}");
                return ExitCode::from(1);
            }
        };
        let dir = magpie_persist::snapshot::parent_dir(path);
        let mut code = ExitCode::SUCCESS;
        if let Some(b) = &m.base
            && check_tool(None, Some(&dir.join(b)), false) != ExitCode::SUCCESS
        {
            code = ExitCode::from(1);
        }
        for i in &m.incrs {
            if check_tool(Some(&dir.join(i)), None, fix) != ExitCode::SUCCESS {
                code = ExitCode::from(1);
            }
        }
        return code;
    }
    match magpie_persist::log::check(path) {
        Ok((n, Tail::Clean)) => {
            println!("{}: OK, {n} records", path.display());
            ExitCode::SUCCESS
        }
        Ok((n, Tail::Torn { offset, dropped, reason })) => {
            println!(
                "{}: {n} good records, then a torn tail at offset {offset} ({reason}): {dropped} bytes",
                path.display()
            );
            repair(path, offset, fix)
        }
        Err(e) => {
            println!("{e}");
            match magpie_persist::log::last_good_offset(path) {
                Ok(offset) => repair(path, offset, fix),
                Err(e) => {
                    println!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn repair(path: &Path, offset: u64, fix: bool) -> std::process::ExitCode {
    use std::process::ExitCode;
    let len = std::fs::metadata(path).map_or(0, |m| m.len());
    if !fix {
        println!(
            "run with --fix to cut the file at offset {offset}, dropping {} bytes (a backup is kept)",
            len - offset
        );
        return ExitCode::from(1);
    }
    let mut backup = path.as_os_str().to_owned();
    backup.push(format!(".bak-{}", now_ms() / 1000));
    let backup = PathBuf::from(backup);
    let result = std::fs::copy(path, &backup).and_then(|_| {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(offset)?;
        f.sync_all()
    });
    match result {
        Ok(()) => {
            println!(
                "repaired: cut at offset {offset} ({} bytes dropped); the original is kept as {}",
                len - offset,
                backup.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("repair failed: {e}");
            ExitCode::from(1)
        }
    }
}
