//! `magpie export` and `magpie import`: every key of a database as newline-delimited JSON, one
//! object per key (the format is in docs/formats.md):
//!
//! ```text
//! {"key":"user:1","type":"hash","value":[["name","Ada"]],"ttl_ms":59000}
//! ```
//!
//! Export walks the keyspace with SCAN and reads each batch of keys with two pipelines (TYPE
//! and PTTL, then the values). Import writes each batch of lines in one MULTI/EXEC, so a batch
//! is applied whole or not at all. Types without a JSON form here (streams, and whatever comes
//! later) travel as DUMP payloads and are written back with RESTORE.

use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use magpie_client::Frame;
use serde_json::{Map, Value, json};

use crate::{Exit, Failure, Out, Session, note};

type Result<T> = std::result::Result<T, Failure>;

/// Keys read (or lines written) per round trip.
const BATCH: usize = 500;

/// Bytes as JSON: a string when they are UTF-8, else `{"$base64": ...}` (as the HTTP API).
fn bytes_value(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => json!({ "$base64": STANDARD.encode(b) }),
    }
}

/// The bytes of a JSON string (or `{"$base64": ...}`, or a number as its text).
fn value_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Number(n) => Some(n.to_string().into_bytes()),
        Value::Object(m) if m.len() == 1 => STANDARD.decode(m.get("$base64")?.as_str()?).ok(),
        _ => None,
    }
}

fn frame_bytes(f: &Frame) -> Option<&[u8]> {
    match f {
        Frame::Bulk(b) | Frame::Simple(b) => Some(b),
        _ => None,
    }
}

fn strings(f: &Frame) -> Vec<Value> {
    f.as_slice().unwrap_or(&[]).iter().filter_map(frame_bytes).map(bytes_value).collect()
}

fn reply_error(f: Frame) -> Failure {
    Failure::unexpected(f, "export")
}

/// A progress bar on stderr when it is a terminal (none otherwise).
fn progress(total: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    let style =
        indicatif::ProgressStyle::with_template(&format!("{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {what}"))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar
}

/// `magpie export [FILE]`: every key of the current database, one JSON object a line.
pub(crate) async fn export(session: &mut Session, out: &mut Out, file: Option<&Path>) -> Result<Exit> {
    let client = session.client().await?;
    let total = client.cmd(&["DBSIZE"]).await?.as_int().unwrap_or(0);
    let bar = progress(u64::try_from(total).unwrap_or(0), "keys");
    let mut sink: Box<dyn Write> = match file {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| Failure::Input(format!("cannot create {}: {e}", p.display())))?,
        )),
        _ => Box::new(OutWriter(out)),
    };
    let (mut cursor, mut skipped) = (b"0".to_vec(), 0u64);
    loop {
        let reply = client.cmd(&[&b"SCAN"[..], &cursor, b"COUNT", b"500"]).await?;
        let Some([next, keys]) = reply.as_slice().and_then(|s| <&[Frame; 2]>::try_from(s).ok()) else {
            return Err(reply_error(reply));
        };
        cursor = frame_bytes(next).unwrap_or(b"0").to_vec();
        let keys: Vec<Vec<u8>> =
            keys.as_slice().unwrap_or(&[]).iter().filter_map(frame_bytes).map(<[u8]>::to_vec).collect();
        for chunk in keys.chunks(BATCH) {
            skipped += export_batch(client, chunk, &mut sink).await?;
            bar.inc(chunk.len() as u64);
        }
        if cursor == b"0" {
            break;
        }
    }
    sink.flush()?;
    bar.finish_and_clear();
    if skipped > 0 {
        note(&format!("warning: {skipped} key(s) of types that cannot be exported were left out"));
    }
    Ok(Exit::Ok)
}

/// Writes one batch of keys; returns how many were left out.
async fn export_batch(client: &mut magpie_client::Client, keys: &[Vec<u8>], sink: &mut dyn Write) -> Result<u64> {
    let mut meta = Vec::with_capacity(keys.len() * 2);
    for k in keys {
        meta.push(vec![b"TYPE".to_vec(), k.clone()]);
        meta.push(vec![b"PTTL".to_vec(), k.clone()]);
    }
    let meta = client.pipeline(&meta).await?;
    let mut reads = Vec::with_capacity(keys.len());
    let mut kinds = Vec::with_capacity(keys.len());
    for (k, m) in keys.iter().zip(meta.chunks(2)) {
        let kind = String::from_utf8_lossy(frame_bytes(&m[0]).unwrap_or(b"none")).into_owned();
        let read: Vec<&[u8]> = match kind.as_str() {
            "string" => vec![b"GET", k],
            "list" => vec![b"LRANGE", k, b"0", b"-1"],
            "hash" => vec![b"HGETALL", k],
            "set" => vec![b"SMEMBERS", k],
            "zset" => vec![b"ZRANGE", k, b"0", b"-1", b"WITHSCORES"],
            _ => vec![b"DUMP", k],
        };
        reads.push(read.into_iter().map(<[u8]>::to_vec).collect::<Vec<_>>());
        kinds.push(kind);
    }
    let values = client.pipeline(&reads).await?;
    let mut skipped = 0;
    for (((k, m), kind), v) in keys.iter().zip(meta.chunks(2)).zip(&kinds).zip(values) {
        if kind == "none" || v.is_null() {
            continue; // gone (expired or deleted) since SCAN saw it
        }
        if let Frame::Error(e) = &v {
            note(&format!(
                "warning: {kind} key {} left out: {}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(e)
            ));
            skipped += 1;
            continue;
        }
        let value = match kind.as_str() {
            "string" => frame_bytes(&v).map(bytes_value).unwrap_or(Value::Null),
            "list" | "set" => Value::Array(strings(&v)),
            "hash" => Value::Array(strings(&v).chunks(2).map(|p| Value::Array(p.to_vec())).collect()),
            "zset" => Value::Array(
                strings(&v)
                    .chunks(2)
                    .map(|p| {
                        let score = p.get(1).and_then(Value::as_str).unwrap_or("0");
                        let score = match score.parse::<f64>() {
                            Ok(f) if f.is_finite() => json!(f),
                            _ => json!(score),
                        };
                        json!([p[0], score])
                    })
                    .collect(),
            ),
            _ => Value::Null,
        };
        let mut record = Map::new();
        record.insert("key".into(), bytes_value(k));
        record.insert("type".into(), json!(kind));
        if value.is_null() {
            // A type without a JSON form here: its DUMP payload.
            record.insert("dump".into(), json!(STANDARD.encode(frame_bytes(&v).unwrap_or_default())));
        } else {
            record.insert("value".into(), value);
        }
        if let Some(ttl) = m[1].as_int().filter(|&t| t >= 0) {
            record.insert("ttl_ms".into(), json!(ttl));
        }
        serde_json::to_writer(&mut *sink, &Value::Object(record)).map_err(std::io::Error::from)?;
        sink.write_all(b"\n")?;
    }
    Ok(skipped)
}

/// Standard output as a `Write` (the run's buffered output).
struct OutWriter<'a>(&'a mut Out);

impl Write for OutWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map(|()| buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Arguments per command when a collection is written in pieces.
const PIECE: usize = 1000;

/// The commands that recreate one record (after a DEL of its key).
fn commands_of(record: &Value) -> std::result::Result<Vec<Vec<Vec<u8>>>, String> {
    let key = record.get("key").and_then(value_bytes).ok_or("no \"key\" string")?;
    let kind = record.get("type").and_then(Value::as_str).ok_or("no \"type\" string")?;
    let mut cmds = vec![vec![b"DEL".to_vec(), key.clone()]];
    let items = |v: Option<&Value>| -> std::result::Result<Vec<Value>, String> {
        v.and_then(Value::as_array).cloned().ok_or_else(|| format!("a {kind} needs a \"value\" array"))
    };
    let str_of = |v: &Value| value_bytes(v).ok_or_else(|| format!("{v} is not a string"));
    let mut pieces = |name: &[u8], args: Vec<Vec<u8>>, per: usize| {
        for chunk in args.chunks(PIECE * per) {
            let mut cmd = vec![name.to_vec(), key.clone()];
            cmd.extend(chunk.iter().cloned());
            cmds.push(cmd);
        }
    };
    match kind {
        "string" => {
            let v = record.get("value").ok_or("a string needs a \"value\"")?;
            pieces(b"SET", vec![str_of(v)?], 1);
        }
        "list" => {
            pieces(b"RPUSH", items(record.get("value"))?.iter().map(str_of).collect::<std::result::Result<_, _>>()?, 1)
        }
        "set" => {
            pieces(b"SADD", items(record.get("value"))?.iter().map(str_of).collect::<std::result::Result<_, _>>()?, 1)
        }
        "hash" | "zset" => {
            let mut args = Vec::new();
            for pair in items(record.get("value"))? {
                let Some([a, b]) = pair.as_array().and_then(|p| <&[Value; 2]>::try_from(p.as_slice()).ok()) else {
                    return Err(format!("{pair} is not a pair"));
                };
                if kind == "hash" {
                    args.extend([str_of(a)?, str_of(b)?]);
                } else {
                    args.extend([str_of(b)?, str_of(a)?]); // ZADD takes the score first
                }
            }
            pieces(if kind == "hash" { b"HSET" } else { b"ZADD" }, args, 2);
        }
        _ => {
            let dump =
                record.get("dump").and_then(Value::as_str).ok_or_else(|| format!("type {kind} needs a \"dump\""))?;
            let payload = STANDARD.decode(dump).map_err(|e| format!("\"dump\" is not base64: {e}"))?;
            cmds.push(vec![b"RESTORE".to_vec(), key.clone(), b"0".to_vec(), payload]);
        }
    }
    match record.get("ttl_ms") {
        None | Some(Value::Null) => {}
        Some(t) => {
            let ms = t.as_u64().ok_or("\"ttl_ms\" must be a whole number")?;
            cmds.push(vec![b"PEXPIRE".to_vec(), key, ms.max(1).to_string().into_bytes()]);
        }
    }
    Ok(cmds)
}

/// `magpie import [FILE]`: the lines of an export, a batch per MULTI/EXEC.
pub(crate) async fn import(session: &mut Session, out: &mut Out, file: Option<&Path>) -> Result<Exit> {
    let (reader, size): (Box<dyn Read>, u64) = match file {
        Some(p) if p.as_os_str() != "-" => {
            let f = std::fs::File::open(p).map_err(|e| Failure::Input(format!("cannot open {}: {e}", p.display())))?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            (Box::new(f), size)
        }
        _ => (Box::new(std::io::stdin()), 0),
    };
    let bar = progress(size, "bytes");
    let client = session.client().await?;
    let mut lines = BufReader::new(reader);
    let (mut batch, mut first_line, mut line_no, mut keys) = (Vec::new(), 1u64, 0u64, 0u64);
    let mut line = String::new();
    loop {
        line.clear();
        let n = lines.read_line(&mut line).map_err(|e| Failure::Input(format!("cannot read the input: {e}")))?;
        bar.inc(n as u64);
        if n > 0 {
            line_no += 1;
            if !line.trim().is_empty() {
                let record: Value = serde_json::from_str(&line)
                    .map_err(|e| Failure::Input(format!("line {line_no}: not JSON: {e}")))?;
                let cmds = commands_of(&record).map_err(|e| Failure::Input(format!("line {line_no}: {e}")))?;
                batch.push(cmds);
            }
        }
        if batch.len() >= BATCH || (n == 0 && !batch.is_empty()) {
            keys += write_batch(client, &batch, first_line).await? as u64;
            batch.clear();
            first_line = line_no + 1;
        }
        if n == 0 {
            break;
        }
    }
    bar.finish_and_clear();
    if out.mode == crate::Mode::Json {
        out.json(&json!({ "imported": keys }))?;
    } else {
        out.line(&format!("imported {keys} keys"))?;
    }
    Ok(Exit::Ok)
}

/// One MULTI/EXEC with every command of the batch; the number of keys written.
async fn write_batch(
    client: &mut magpie_client::Client,
    batch: &[Vec<Vec<Vec<u8>>>],
    first_line: u64,
) -> Result<usize> {
    let mut cmds = vec![vec![b"MULTI".to_vec()]];
    for record in batch {
        cmds.extend(record.iter().cloned());
    }
    cmds.push(vec![b"EXEC".to_vec()]);
    let replies = client.pipeline(&cmds).await?;
    let lines = format!("lines {first_line}-{}", first_line + batch.len() as u64 - 1);
    for r in &replies[..replies.len() - 1] {
        if let Frame::Error(e) = r {
            return Err(Failure::Input(format!(
                "{lines}: refused, nothing of them written: {}",
                String::from_utf8_lossy(e)
            )));
        }
    }
    match replies.last() {
        Some(Frame::Array(results)) => {
            if let Some(Frame::Error(e)) = results.iter().find(|r| r.is_error()) {
                return Err(Failure::Input(format!("{lines}: {}", String::from_utf8_lossy(e))));
            }
            Ok(batch.len())
        }
        Some(Frame::Error(e)) => {
            Err(Failure::Input(format!("{lines}: nothing of them written: {}", String::from_utf8_lossy(e))))
        }
        _ => Err(Failure::Input(format!("{lines}: unexpected reply to EXEC"))),
    }
}
