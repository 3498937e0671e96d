//! Loading at start: the snapshot, or the log's base and its incremental files, replayed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use magpie_persist::SnapshotReader;
use magpie_persist::log::{LogFile, LogReader, Manifest, RawRecord, Tail, create_dir_durably};
use magpie_protocol::ArgVec;
use magpie_store::{Keyspace, now_ms};

use super::{Persistence, Replay, ReplayStep, human};

impl Persistence {
    /// Loads what is on disk and sets up the log, before the server accepts clients.
    pub(crate) fn load(self: &Arc<Self>, replay: &mut Replay<'_>) -> Result<(), String> {
        let p = self;
        p.loading.store(true, Ordering::SeqCst);
        let result = self.load_and_open(replay);
        p.loading.store(false, Ordering::SeqCst);
        result?;
        // The log, if on, has switched the tap's ordering on; the save schedule needs only the
        // count of changes, which the tap always keeps.
        p.saved_at.store(self.ks.tap().changes(), Ordering::SeqCst);
        Ok(())
    }

    fn load_and_open(self: &Arc<Self>, replay: &mut Replay<'_>) -> Result<(), String> {
        let p = self;
        remove_stale_temp_files(&p.dir);
        remove_stale_temp_files(&p.paths.dir);
        let snapshot = p.snapshot_path();
        if !self.settings.appendonly() {
            if snapshot.exists() {
                p.load_snapshot(&snapshot)?;
            }
            return Ok(());
        }
        create_dir_durably(&p.paths.dir)
            .map_err(|e| format!("cannot create the log directory {}: {e}", p.paths.dir.display()))?;
        let manifest =
            Manifest::read(&p.paths.manifest()).map_err(|e| format!("cannot read the log's manifest: {e}"))?;
        p.tidy_log_dir(manifest.as_ref());
        let Some(manifest) = manifest else {
            // No log yet: start it from the snapshot, if there is one, with a base of everything.
            if snapshot.exists() {
                info!("no append-only log yet: loading the snapshot {} first", snapshot.display());
                p.load_snapshot(&snapshot)?;
            }
            return p.rewrite().map_err(|e| format!("cannot create the append-only log: {e}"));
        };
        let started = Instant::now();
        if let Some(base) = &manifest.base {
            p.load_snapshot(&p.paths.file(base))?;
            p.stats.lock().aof_base_size = std::fs::metadata(p.paths.file(base)).map_or(0, |m| m.len());
        }
        let mut last_len = None;
        for (i, name) in manifest.incrs.iter().enumerate() {
            let last = i + 1 == manifest.incrs.len();
            last_len = Some(p.replay_log(&p.paths.file(name), last && self.settings.aof_load_truncated(), replay)?);
        }
        info!(
            "append-only log loaded in {:.3} s: {} keys",
            started.elapsed().as_secs_f64(),
            self.ks.dbs().iter().map(magpie_store::Db::len).sum::<usize>()
        );
        let (file, manifest) = match (manifest.incrs.last(), last_len) {
            (Some(name), Some(len)) => {
                let path = p.paths.file(name);
                let f = LogFile::open_append(&path, len).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
                (f, manifest)
            }
            _ => {
                // A manifest with a base only: start a new incremental file after it.
                let n = p.next_log_number(&manifest);
                let name = p.paths.incr_name(n);
                let f = LogFile::create(&p.paths.file(&name)).map_err(|e| format!("cannot create {name}: {e}"))?;
                let m = Manifest { base: manifest.base.clone(), incrs: vec![name] };
                m.write(&p.paths.manifest()).map_err(|e| format!("cannot write the manifest: {e}"))?;
                (f, m)
            }
        };
        *p.manifest.lock() = manifest;
        let tap = self.ks.tap();
        self.ks
            .with_all_locked(|| {
                tap.set_ordering(true);
                tap.set_expired_tap(true);
                p.journal.start(file, self.settings.appendfsync())
            })
            .map_err(|e| format!("cannot start the log writer: {e}"))
    }

    /// Loads a snapshot into the (empty) keyspace. Expired entries are loaded too: the log that
    /// may follow was written when they were alive, and active expiry removes them afterwards.
    /// DEBUG RELOAD: a snapshot now (unless `save` is false), then the keyspace emptied and
    /// loaded back from the snapshot file. The caller runs with nothing else running. Errors
    /// are Redis's replies.
    pub(crate) fn reload(&self, save: bool) -> Result<(), &'static str> {
        if save && self.save().is_err() {
            return Err("ERR");
        }
        let path = self.snapshot_path();
        if !path.exists() {
            return Err("ERR Error trying to load the RDB dump");
        }
        let old: Vec<_> = self.ks.dbs().iter().map(magpie_store::Db::flush).collect();
        crate::services::drop_in_background(old);
        self.load_snapshot(&path).map_err(|e| {
            warn!("DEBUG RELOAD: {e}");
            "ERR Error trying to load the RDB dump"
        })?;
        warn!("DB reloaded by DEBUG RELOAD");
        Ok(())
    }

    fn load_snapshot(&self, path: &Path) -> Result<(), String> {
        let started = Instant::now();
        let mut reader = SnapshotReader::open(path).map_err(|e| damaged(&e, "--check-snapshot"))?;
        let total = reader.file_len();
        info!("loading the snapshot {} ({})", path.display(), human(total));
        // Every shard is held until the entries are indexed, all at once (see `Loader`).
        let mut loader = self.ks.loader();
        if let Some(counts) = reader.keys_per_db() {
            // Tables made at their final size take the keys without growing.
            for (db, &n) in counts.iter().enumerate().take(self.ks.db_count()) {
                loader.reserve(db, usize::try_from(n).unwrap_or(0));
            }
        }
        let (mut keys, mut expired) = (0u64, 0u64);
        let now = now_ms();
        let mut next_report = Instant::now() + Duration::from_secs(1);
        while let Some(e) = reader.next_entry().map_err(|e| damaged(&e, "--check-snapshot"))? {
            if e.db >= self.ks.db_count() {
                return Err(format!(
                    "{}: has a key in database {} but this server has {} databases (the `databases` setting)",
                    path.display(),
                    e.db,
                    self.ks.db_count()
                ));
            }
            expired += u64::from(e.expire_at.is_some_and(|t| t <= now));
            loader.add(e.db, e.key, e.value, e.expire_at, 0);
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
        let twice = loader.finish();
        if twice > 0 {
            warn!("{}: {twice} keys appear more than once; each keeps its last value", path.display());
        }
        let libraries = reader.take_functions();
        if !libraries.is_empty() {
            let Some(scripting) = self.scripting.get() else {
                return Err(format!("{}: holds function libraries but scripting is not set up", path.display()));
            };
            scripting.restore_libraries(&libraries, crate::services::scripting::RestorePolicy::Replace).map_err(
                |e| format!("{}: a function library does not load: {}", path.display(), String::from_utf8_lossy(&e.0)),
            )?;
            info!("{} function libraries loaded", libraries.len());
        }
        let secs = started.elapsed().as_secs_f64();
        info!("snapshot loaded: {keys} keys ({expired} already expired) in {secs:.3} s");
        let mut st = self.stats.lock();
        st.loaded_keys = keys;
        st.loaded_expired = expired;
        Ok(())
    }

    /// Replays an incremental log; returns the length of its valid part.
    fn replay_log(&self, path: &Path, allow_torn: bool, replay: &mut Replay<'_>) -> Result<u64, String> {
        let started = Instant::now();
        let mut reader = LogReader::open(path).map_err(|e| damaged(&e, "--check-aof"))?;
        let (mut records, mut errors) = (0u64, 0u64);
        let mut args = ArgVec::new();
        // Records are read up to `AHEAD` (and `AHEAD_BYTES`) at a time into buffers reused from
        // window to window (replay allocates nothing per record), and each window's keys are
        // warmed before it runs: a new key's lookup and insert were two cache misses in a row,
        // and half a replay's time.
        let mut window: Vec<RawRecord> = (0..AHEAD).map(|_| RawRecord::default()).collect();
        let mut end = false;
        while !end {
            let (mut n, mut bytes) = (0, 0);
            while n < AHEAD && bytes < AHEAD_BYTES {
                if !reader.next_raw(&mut window[n]).map_err(|e| damaged(&e, "--check-aof"))? {
                    end = true;
                    break;
                }
                let db = window[n].db;
                if db >= self.ks.db_count() {
                    return Err(format!(
                        "{}: a record for database {db} (only {} configured)",
                        path.display(),
                        self.ks.db_count()
                    ));
                }
                bytes += window[n].size();
                n += 1;
            }
            warm_records(&self.ks, &window[..n]);
            for rec in &window[..n] {
                records += 1;
                replay(ReplayStep::Record { db: rec.db })?;
                for cmd in rec.commands() {
                    args.clear();
                    args.extend(cmd);
                    let result = replay(ReplayStep::Command(args.args()));
                    if let Err(e) = result {
                        errors += 1;
                        if errors <= 10 {
                            let name = args.args().iter().next().map(<[u8]>::to_vec).unwrap_or_default();
                            warn!("{}: replaying {:?}: {e}", path.display(), String::from_utf8_lossy(&name));
                        }
                    }
                }
            }
            // A big record's buffer is not kept for the rest of the replay (16 of them would
            // be 16 times the biggest record).
            for rec in &mut window[..n] {
                if rec.retained() > AHEAD_BYTES {
                    *rec = RawRecord::default();
                }
            }
        }
        replay(ReplayStep::End)?;
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
}

impl Persistence {
    /// The log's files in its directory, by name: `<prefix>.<n>.base` and `<prefix>.<n>.incr`,
    /// each with its number.
    fn log_files_on_disk(&self) -> Vec<(String, u64)> {
        let Ok(entries) = std::fs::read_dir(&self.paths.dir) else { return Vec::new() };
        let prefix = format!("{}.", self.paths.prefix);
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let rest = name.strip_prefix(&prefix)?;
                let number = rest.strip_suffix(".base").or_else(|| rest.strip_suffix(".incr"))?;
                if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let n = number.parse().ok()?;
                Some((name, n))
            })
            .collect()
    }

    /// The number for a new base or incremental file: past every number the manifest names
    /// and every log file on disk, so that a file an interrupted rewrite left behind (named
    /// by no manifest) never blocks the creation of a new one.
    pub(super) fn next_log_number(&self, manifest: &Manifest) -> u64 {
        let on_disk = self.log_files_on_disk().into_iter().map(|(_, n)| n).max().unwrap_or(0);
        manifest.max_number().max(on_disk).saturating_add(1)
    }

    /// At start: removes the log files that the manifest does not name. A rewrite creates its
    /// files before a manifest names them and deletes the old ones after, so a crash in
    /// between leaves files that are part of no log. With no manifest at all they are left
    /// alone (new files are numbered after them), since nothing says what they are.
    fn tidy_log_dir(&self, manifest: Option<&Manifest>) {
        let _ = std::fs::remove_file(self.paths.dir.join(format!("{}.manifest.tmp", self.paths.prefix)));
        for (name, _) in self.log_files_on_disk() {
            match manifest {
                Some(m) if m.base.as_ref() == Some(&name) || m.incrs.contains(&name) => {}
                Some(_) => {
                    let path = self.paths.file(&name);
                    info!(
                        "removing {}: the manifest does not name it (left by an interrupted rewrite)",
                        path.display()
                    );
                    if let Err(e) = std::fs::remove_file(&path) {
                        warn!("could not remove {}: {e}", path.display());
                    }
                }
                None => warn!(
                    "{} is named by no manifest (there is none); leaving it, and numbering new files after it",
                    self.paths.file(&name).display()
                ),
            }
        }
    }
}

/// Removes the temporary files of snapshots that a crash interrupted, in the data directory
/// and in the log's (where a rewrite writes its base).
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

fn damaged(e: &magpie_persist::FileError, tool: &str) -> String {
    format!(
        "{e}. The file is damaged: Magpie will not start with part of the data. Check it with \
         `magpie-server {tool} {}`",
        e.path.display()
    )
}

/// Records a log's replay reads before running them (see [`Persistence::replay_log`]).
const AHEAD: usize = 16;

/// Bytes of records past which a replay's window is not filled further: a window holds at
/// most this much and one record more.
const AHEAD_BYTES: usize = 1 << 20;

/// Asks for the keyspace's lines that `records` will read: each command's second argument,
/// the key of almost every command a log holds (warming an argument that is not a key costs
/// a lookup, nothing else), by runs of records of one database.
fn warm_records(ks: &Keyspace, records: &[RawRecord]) {
    let mut keys: [&[u8]; AHEAD] = [&[]; AHEAD];
    let mut rest = records;
    while let Some(first) = rest.first() {
        let run = rest.iter().take_while(|r| r.db == first.db).count();
        let mut n = 0;
        for mut cmd in rest[..run].iter().flat_map(RawRecord::commands) {
            if let Some(key) = cmd.nth(1)
                && n < AHEAD
            {
                keys[n] = key;
                n += 1;
            }
        }
        ks.warm(first.db, keys[..n].iter().copied());
        rest = &rest[run..];
    }
}
