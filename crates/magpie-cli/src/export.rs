//! `magpie export --format rdb`: every key of every database, read with SCAN, DUMP and PTTL,
//! written as a Redis 7.0 RDB file (each DUMP payload is the value as RDB stores it, so it is
//! copied into the file without being decoded, whatever its type).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use magpie_client::{Client, Frame};
use magpie_persist::rdb::{RdbWriter, WriteOptions, function_restore};
use serde_json::json;

use crate::{Exit, Failure, Mode, Out};

type Result<T> = std::result::Result<T, Failure>;

/// Keys asked for in one pipeline of DUMP and PTTL.
const BATCH: usize = 256;

pub(crate) async fn run(session: &mut crate::Session, out: &mut Out, format: &str, output: &Path) -> Result<Exit> {
    if !format.eq_ignore_ascii_case("rdb") {
        return Err(Failure::Usage(format!("unknown export format '{format}' (known: ndjson, rdb)")));
    }
    let to_stdout = output.as_os_str() == "-";
    // Written to a temporary file and renamed, so a failed export leaves no half file behind.
    let tmp = output.with_extension(format!("tmp-{}", std::process::id()));
    let sink: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(&tmp).map_err(|e| Failure::Input(format!("cannot create {}: {e}", tmp.display())))?,
        )
    };
    let result = export(session, sink).await;
    let (keys, dbs) = match result {
        Ok(counts) => counts,
        Err(e) => {
            if !to_stdout {
                let _ = std::fs::remove_file(&tmp);
            }
            return Err(e);
        }
    };
    if !to_stdout {
        std::fs::rename(&tmp, output)
            .map_err(|e| Failure::Input(format!("cannot rename {} to {}: {e}", tmp.display(), output.display())))?;
        match out.mode {
            Mode::Json => out.json(&json!({"keys": keys, "databases": dbs, "file": output.display().to_string()}))?,
            _ => out.line(&format!("exported {keys} keys from {dbs} databases to {}", output.display()))?,
        }
    }
    Ok(Exit::Ok)
}

fn io_err(e: std::io::Error) -> Failure {
    Failure::Input(format!("cannot write the RDB file: {e}"))
}

async fn export(session: &mut crate::Session, sink: Box<dyn Write>) -> Result<(u64, u64)> {
    let client = session.client().await?;
    let databases = match client.cmd(&[&b"CONFIG"[..], b"GET", b"databases"]).await? {
        Frame::Array(parts) if parts.len() == 2 => match &parts[1] {
            Frame::Bulk(n) => std::str::from_utf8(n).ok().and_then(|s| s.parse::<u32>().ok()).unwrap_or(16),
            _ => 16,
        },
        _ => 16,
    };
    let now_secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut w = RdbWriter::new(sink, WriteOptions::default(), true).map_err(io_err)?;
    // Redis logs these when it loads the file; it reads any version string.
    w.default_aux("7.0.15", i64::try_from(now_secs).unwrap_or(0), 0).map_err(io_err)?;
    // Function libraries (FUNCTION DUMP), when the server has them: Redis 7.0 and Magpie do.
    if let Ok(Frame::Bulk(payload)) = client.cmd(&[&b"FUNCTION"[..], b"DUMP"]).await
        && let Ok(libraries) = function_restore(&payload)
    {
        for code in libraries {
            w.function(&code).map_err(io_err)?;
        }
    }
    let (mut total, mut used_dbs) = (0u64, 0u64);
    for db in 0..databases {
        match client.cmd(&[b"SELECT".to_vec(), db.to_string().into_bytes()]).await? {
            Frame::Simple(_) => {}
            // A server with fewer databases than it said: stop there.
            _ => break,
        }
        let keys = scan_all(client).await?;
        if keys.is_empty() {
            continue;
        }
        used_dbs += 1;
        w.select_db(u64::from(db), keys.len() as u64, 0).map_err(io_err)?;
        let keys: Vec<Vec<u8>> = keys.into_iter().collect();
        for chunk in keys.chunks(BATCH) {
            let mut cmds: Vec<Vec<Vec<u8>>> = Vec::with_capacity(chunk.len() * 2);
            for k in chunk {
                cmds.push(vec![b"DUMP".to_vec(), k.clone()]);
                cmds.push(vec![b"PTTL".to_vec(), k.clone()]);
            }
            let replies = client.pipeline(&cmds).await?;
            let now_ms = now_ms();
            for (k, pair) in chunk.iter().zip(replies.chunks(2)) {
                let [dump, pttl] = pair else { continue };
                let payload = match dump {
                    Frame::Bulk(p) => p,
                    // Deleted since SCAN saw it.
                    Frame::Null => continue,
                    other => return Err(Failure::unexpected(other.clone(), "DUMP")),
                };
                let expire = match pttl {
                    Frame::Integer(ms) if *ms >= 0 => Some(now_ms + ms),
                    Frame::Integer(-2) => continue,
                    _ => None,
                };
                w.key_from_dump(k, payload, expire).map_err(|e| {
                    Failure::Input(format!(
                        "key '{}': the server's DUMP payload is not usable: {e}",
                        String::from_utf8_lossy(k)
                    ))
                })?;
                total += 1;
            }
        }
    }
    let mut sink = w.finish().map_err(io_err)?;
    sink.flush().map_err(io_err)?;
    Ok((total, used_dbs))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Every key of the selected database (SCAN may return one twice: the set keeps one).
async fn scan_all(client: &mut Client) -> Result<BTreeSet<Vec<u8>>> {
    let mut found = BTreeSet::new();
    let mut cursor = b"0".to_vec();
    loop {
        let reply = client.cmd(&[b"SCAN".to_vec(), cursor, b"COUNT".to_vec(), b"1000".to_vec()]).await?;
        let Frame::Array(mut parts) = reply else { return Err(Failure::unexpected(reply, "SCAN")) };
        let (Some(Frame::Array(batch)), Some(Frame::Bulk(next))) = (parts.pop(), parts.pop()) else {
            return Err(Failure::Usage("unexpected reply to SCAN".into()));
        };
        found.extend(batch.into_iter().filter_map(|k| match k {
            Frame::Bulk(k) => Some(k),
            _ => None,
        }));
        if next == b"0" {
            return Ok(found);
        }
        cursor = next;
    }
}
