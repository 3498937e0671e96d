//! `magpie-server --import-rdb FILE`: a Redis RDB file (version 1 to 10, Redis 7.0's) loaded
//! into the empty keyspace at start, so users move their data from Redis to Magpie.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use magpie_persist::rdb::{Item, Object, RdbReader, ReadOptions};
use magpie_store::now_ms;

use super::Persistence;

impl Persistence {
    /// Loads the RDB file at `path` into the keyspace, which must be empty (nothing was loaded
    /// from Magpie's own files). Keys already expired are skipped, as Redis skips them. Function
    /// libraries are loaded as FUNCTION RESTORE loads them (a library that does not load stops
    /// the start with its error). With snapshots or the log configured, the imported keys are saved at once (a snapshot, or a log rewrite),
    /// so a restart finds them without the RDB file.
    pub(crate) fn import_rdb(&self, path: &Path) -> Result<u64, String> {
        let held: usize = self.ks.dbs().iter().map(magpie_store::Db::len).sum();
        if held > 0 {
            return Err(format!(
                "--import-rdb {}: the keyspace is not empty ({held} keys were loaded from {}); import into a server \
                 started without data (an empty or new `dir`)",
                path.display(),
                self.dir.display()
            ));
        }
        let file = std::fs::File::open(path).map_err(|e| format!("--import-rdb {}: {e}", path.display()))?;
        let total = file.metadata().map_or(0, |m| m.len());
        let fail = |e: &dyn std::fmt::Display, offset: u64| {
            format!("--import-rdb {}: cannot load the file at byte {offset}: {e}", path.display())
        };
        let opts = ReadOptions { deep_sanitize: true, verify_checksum: true };
        let mut reader = RdbReader::new(file, opts).map_err(|e| fail(&e, 0))?;
        info!("importing the Redis RDB file {} (RDB version {}, {total} bytes)", path.display(), reader.version());
        let started = Instant::now();
        let mut next_report = started + Duration::from_secs(1);
        let now = now_ms();
        let (mut keys, mut expired) = (0u64, 0u64);
        let mut libraries = Vec::new();
        self.loading.store(true, Ordering::SeqCst);
        // Every shard is held until the entries are indexed, all at once (see `Loader`).
        let mut loader = self.ks.loader();
        let mut selected = 0;
        let result = loop {
            let item = match reader.next_item() {
                Ok(Some(item)) => item,
                Ok(None) => break Ok(()),
                Err(e) => break Err(fail(&e, reader.offset())),
            };
            let entry = match item {
                Item::Key(k) => k,
                Item::Function(code) => {
                    libraries.push(code);
                    continue;
                }
                Item::SelectDb(db) => {
                    selected = usize::try_from(db).unwrap_or(usize::MAX);
                    continue;
                }
                Item::ResizeDb { db_size, .. } => {
                    // Sized at once for the keys the file announces, if it could hold them
                    // (every key takes at least 3 bytes).
                    if selected < self.ks.db_count() {
                        loader.reserve(selected, usize::try_from(db_size.min(total / 3)).unwrap_or(0));
                    }
                    continue;
                }
                Item::Aux(_) => continue,
            };
            let db = usize::try_from(entry.db).unwrap_or(usize::MAX);
            if db >= self.ks.db_count() {
                break Err(format!(
                    "--import-rdb {}: a key is in database {} but this server has {} databases (the `databases` \
                     setting)",
                    path.display(),
                    entry.db,
                    self.ks.db_count()
                ));
            }
            let expire = entry.expire_ms.map(|t| u64::try_from(t).unwrap_or(0));
            if expire.is_some_and(|t| t <= now) {
                expired += 1;
                continue;
            }
            let value = match entry.object {
                Object::Value(v) => v,
                Object::Stream(s) => match magpie_store::Stream::try_from(&*s) {
                    Ok(stream) => magpie_store::Value::Stream(Box::new(stream)),
                    Err(e) => {
                        break Err(format!(
                            "--import-rdb {}: key '{}' is a stream that does not load: {e}",
                            path.display(),
                            String::from_utf8_lossy(&entry.key)
                        ));
                    }
                },
            };
            loader.add(db, &entry.key, value, expire, 0);
            keys += 1;
            if keys.is_multiple_of(4096) && Instant::now() >= next_report {
                next_report = Instant::now() + Duration::from_secs(1);
                info!(
                    "importing: {keys} keys, {:.0}% of the file",
                    reader.offset() as f64 * 100.0 / total.max(1) as f64
                );
            }
        };
        let twice = loader.finish();
        if twice > 0 {
            warn!("--import-rdb {}: {twice} keys appear more than once; each keeps its last value", path.display());
        }
        let result = result.and_then(|()| {
            if libraries.is_empty() {
                return Ok(());
            }
            let scripting = self.scripting.get().ok_or_else(|| {
                format!("--import-rdb {}: holds function libraries but scripting is not set up", path.display())
            })?;
            scripting.restore_libraries(&libraries, crate::services::scripting::RestorePolicy::Append).map_err(
                |e| {
                    format!(
                        "--import-rdb {}: a function library does not load: {}",
                        path.display(),
                        String::from_utf8_lossy(&e.0)
                    )
                },
            )?;
            info!("--import-rdb: {} function libraries loaded", libraries.len());
            Ok(())
        });
        self.loading.store(false, Ordering::SeqCst);
        result?;
        if reader.empty_keys_skipped() > 0 {
            warn!("--import-rdb: skipped {} empty keys", reader.empty_keys_skipped());
        }
        info!(
            "imported {keys} keys ({expired} already expired, skipped) from {} in {:.3} s",
            path.display(),
            started.elapsed().as_secs_f64()
        );
        if self.settings.appendonly() {
            self.rewrite().map_err(|e| format!("--import-rdb: cannot rewrite the append-only log: {e}"))?;
        } else if !self.settings.save().is_empty() {
            self.save_now(false).map_err(|e| format!("--import-rdb: cannot save a snapshot: {e}"))?;
        }
        Ok(keys)
    }
}
