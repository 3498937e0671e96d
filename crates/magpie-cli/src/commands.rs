//! The subcommands other than the shell and `stats`: each reads its arguments, runs as few
//! server calls as it can (one MGET, one MSET, one DEL), and prints for the output mode.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Read;
use std::path::Path;

use magpie_client::Frame;
use serde_json::{Value, json};

use crate::cli::Command;
use crate::format::{self, bytes_json, frame_json, quoted};
use crate::items::{self, SetItems, arg_bytes};
use crate::{Exit, Failure, Mode, Out, Session, note};

type Result<T> = std::result::Result<T, Failure>;

pub(crate) async fn run(command: Command, mut session: Session, out: &mut Out) -> Result<Exit> {
    let args = |v: &[OsString]| v.iter().map(|a| arg_bytes(a)).collect::<Vec<_>>();
    match command {
        Command::Get { keys, literal } => get(&mut session, out, items::keys(&args(&keys), literal)?).await,
        Command::Set { items: list, ex, nx, value_file, literal } => {
            let items = items::set_items(&args(&list), literal, value_file.is_some())?;
            let pairs = match (items, value_file) {
                (SetItems::KeyOnly(key), Some(path)) => vec![(key, read_value(&path)?)],
                (SetItems::Pairs(pairs), _) => pairs,
                (SetItems::KeyOnly(_), None) => unreachable!("a key alone comes only with --value-file"),
            };
            set(&mut session, out, pairs, ex, nx).await
        }
        Command::Del { keys, literal } => del(&mut session, out, items::keys(&args(&keys), literal)?).await,
        Command::Incr { key, by } => incr(&mut session, out, arg_bytes(&key), by).await,
        Command::Ttl { key } => ttl(&mut session, out, arg_bytes(&key)).await,
        Command::Expire { key, seconds } => expire(&mut session, out, arg_bytes(&key), seconds).await,
        Command::Keys { pattern, count } => keys(&mut session, out, arg_bytes(&pattern), count).await,
        Command::Cmd { args: words } => cmd(&mut session, out, args(&words)).await,
        Command::Stats { watch, count } => crate::stats::run(&mut session, out, watch, count).await,
        Command::Subscribe { channels, count } => {
            crate::pubsub::subscribe(&mut session, out, "SUBSCRIBE", args(&channels), count).await
        }
        Command::Psubscribe { patterns, count } => {
            crate::pubsub::subscribe(&mut session, out, "PSUBSCRIBE", args(&patterns), count).await
        }
        Command::Monitor { count } => crate::pubsub::monitor(&mut session, out, count).await,
        Command::Publish { channel, message } => {
            crate::pubsub::publish(&mut session, out, arg_bytes(&channel), arg_bytes(&message)).await
        }
        Command::Export { file, format, output } => {
            let file = output.or(file);
            if format.eq_ignore_ascii_case("ndjson") {
                crate::transfer::export(&mut session, out, file.as_deref()).await
            } else {
                let file = file.unwrap_or_else(|| "dump.rdb".into());
                crate::export::run(&mut session, out, &format, &file).await
            }
        }
        Command::Import { file } => crate::transfer::import(&mut session, out, file.as_deref()).await,
        Command::Completions { .. } => unreachable!("handled before connecting"),
    }
}

/// The exact bytes of a file, or of stdin for `-`.
fn read_value(path: &Path) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().lock().read_to_end(&mut buf).map_err(|e| Failure::Input(format!("cannot read stdin: {e}")))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| Failure::Input(format!("cannot read {}: {e}", path.display())))
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

async fn get(session: &mut Session, out: &mut Out, keys: Vec<Vec<u8>>) -> Result<Exit> {
    let client = session.client().await?;
    if let [key] = keys.as_slice() {
        let value = match client.cmd(&[b"GET".as_slice(), key]).await? {
            Frame::Bulk(v) => Some(v),
            Frame::Null => None,
            other => return Err(Failure::unexpected(other, "GET")),
        };
        match out.mode {
            Mode::Json => out.json(&json!({ "key": bytes_json(key), "value": value.as_deref().map(bytes_json) }))?,
            Mode::Raw => {
                if let Some(v) = &value {
                    out.write(v)?;
                }
            }
            Mode::Human => {
                if let Some(v) = &value {
                    if format::is_printable(v) {
                        out.write(v)?;
                        out.write(b"\n")?;
                    } else {
                        out.line(&quoted(v))?;
                        note(&format!(
                            "(a binary value of {} bytes, shown escaped: --raw prints the exact bytes)",
                            v.len()
                        ));
                    }
                }
            }
        }
        if value.is_none() {
            if out.mode != Mode::Json {
                note(&format!("not found: {}", format::key(key)));
            }
            return Ok(Exit::NotFound);
        }
        return Ok(Exit::Ok);
    }
    let mut cmd = vec![b("MGET")];
    cmd.extend(keys.iter().cloned());
    let values = match client.cmd(&cmd).await? {
        Frame::Array(values) if values.len() == keys.len() => values,
        other => return Err(Failure::unexpected(other, "MGET")),
    };
    match out.mode {
        Mode::Json => {
            let list: Vec<Value> = keys
                .iter()
                .zip(&values)
                .map(|(k, v)| json!({ "key": bytes_json(k), "value": v.as_bytes().map(bytes_json) }))
                .collect();
            out.json(&Value::Array(list))?;
        }
        Mode::Raw => {
            for v in &values {
                out.write(v.as_bytes().unwrap_or_default())?;
                out.write(b"\n")?;
            }
        }
        Mode::Human => {
            let shown: Vec<String> = keys.iter().map(|k| format::key(k)).collect();
            let width = shown.iter().map(|k| k.chars().count()).max().unwrap_or(0).min(40);
            for (k, v) in shown.iter().zip(&values) {
                let value = match v.as_bytes() {
                    Some(bytes) => quoted(bytes),
                    None => "(missing)".to_owned(),
                };
                out.line(&format!("{k:<width$}  {value}"))?;
            }
        }
    }
    Ok(Exit::Ok)
}

async fn set(
    session: &mut Session,
    out: &mut Out,
    pairs: Vec<(Vec<u8>, Vec<u8>)>,
    ex: Option<u64>,
    nx: bool,
) -> Result<Exit> {
    if pairs.len() > 1 && ex.is_some() {
        return Err(Failure::Usage(
            "--ex works with one key only (MSET sets no expiry); set the keys one by one, or use `magpie expire`"
                .into(),
        ));
    }
    let client = session.client().await?;
    let written = if let [(key, value)] = pairs.as_slice() {
        let mut cmd = vec![b("SET"), key.clone(), value.clone()];
        if let Some(secs) = ex {
            cmd.extend([b("EX"), b(&secs.to_string())]);
        }
        if nx {
            cmd.push(b("NX"));
        }
        match client.cmd(&cmd).await? {
            Frame::Simple(_) => true,
            Frame::Null if nx => false,
            other => return Err(Failure::unexpected(other, "SET")),
        }
    } else {
        let mut cmd = vec![b(if nx { "MSETNX" } else { "MSET" })];
        for (k, v) in &pairs {
            cmd.extend([k.clone(), v.clone()]);
        }
        match client.cmd(&cmd).await? {
            Frame::Simple(_) | Frame::Integer(1) => true,
            Frame::Integer(0) if nx => false,
            other => return Err(Failure::unexpected(other, if nx { "MSETNX" } else { "MSET" })),
        }
    };
    let distinct: BTreeSet<&[u8]> = pairs.iter().map(|(k, _)| k.as_slice()).collect();
    if written {
        match out.mode {
            Mode::Json => out.json(&json!({ "ok": true, "keys": distinct.len() }))?,
            _ if distinct.len() == 1 => out.line("OK")?,
            _ => out.line(&format!("OK ({} keys set)", distinct.len()))?,
        }
        return Ok(Exit::Ok);
    }
    // Nothing was written because some key exists: find out which, to say so.
    let checks: Vec<Vec<Vec<u8>>> = distinct.iter().map(|k| vec![b("EXISTS"), k.to_vec()]).collect();
    let replies = client.pipeline(&checks).await?;
    let existing: Vec<&[u8]> =
        distinct.iter().zip(&replies).filter(|(_, r)| r.as_int().unwrap_or(0) > 0).map(|(k, _)| *k).collect();
    let names: Vec<String> = existing.iter().map(|k| format::key(k)).collect();
    if out.mode == Mode::Json {
        let list: Vec<Value> = existing.iter().map(|k| bytes_json(k)).collect();
        out.json(&json!({ "ok": false, "existing": list }))?;
    }
    let message = match (distinct.len(), names.len()) {
        (1, _) => {
            format!("not set: {} already exists (--nx)", format::key(distinct.first().copied().unwrap_or_default()))
        }
        (n, 0) => format!("nothing written: one of the {n} keys existed when MSETNX ran (it has gone since)"),
        (n, 1) => format!("nothing written (--nx): {} already exists (of {n} keys)", names.join(", ")),
        (n, e) => format!("nothing written (--nx): {e} of the {n} keys already exist: {}", names.join(", ")),
    };
    note(&message);
    Ok(Exit::NotFound)
}

async fn del(session: &mut Session, out: &mut Out, keys: Vec<Vec<u8>>) -> Result<Exit> {
    let client = session.client().await?;
    let mut cmd = vec![b("DEL")];
    cmd.extend(keys.iter().cloned());
    let deleted = match client.cmd(&cmd).await? {
        Frame::Integer(n) => n,
        other => return Err(Failure::unexpected(other, "DEL")),
    };
    let named = keys.iter().collect::<BTreeSet<_>>().len();
    match out.mode {
        Mode::Json => out.json(&json!({ "deleted": deleted, "named": named }))?,
        Mode::Raw => out.line(&deleted.to_string())?,
        Mode::Human => match (named, deleted) {
            (1, 1) => out.line(&format!("deleted {}", format::key(&keys[0])))?,
            (1, _) => out.line(&format!("{} did not exist", format::key(&keys[0])))?,
            (n, d) if d as usize == n => out.line(&format!("deleted {d} of {n} keys"))?,
            (n, d) => out.line(&format!("deleted {d} of {n} keys (the others did not exist)"))?,
        },
    }
    Ok(Exit::Ok)
}

async fn incr(session: &mut Session, out: &mut Out, key: Vec<u8>, by: Option<String>) -> Result<Exit> {
    let by = by.unwrap_or_else(|| "1".to_owned());
    let name = if by.parse::<i64>().is_ok() {
        "INCRBY"
    } else if by.parse::<f64>().is_ok_and(f64::is_finite) {
        "INCRBYFLOAT"
    } else {
        return Err(Failure::Usage(format!("BY must be a number (like 5, -2 or 0.5), got {by:?}")));
    };
    let reply = session.client().await?.cmd(&[b(name), key.clone(), b(&by)]).await?;
    let text = match &reply {
        Frame::Integer(n) => n.to_string(),
        Frame::Bulk(v) | Frame::Simple(v) => String::from_utf8_lossy(v).into_owned(),
        Frame::Double(d) => d.clone(),
        _ => return Err(Failure::unexpected(reply, name)),
    };
    match out.mode {
        Mode::Json => {
            let value = reply.as_int().map(Value::from).or_else(|| reply.as_f64().map(Value::from));
            out.json(&json!({ "key": bytes_json(&key), "value": value }))?;
        }
        _ => out.line(&text)?,
    }
    Ok(Exit::Ok)
}

async fn ttl(session: &mut Session, out: &mut Out, key: Vec<u8>) -> Result<Exit> {
    let ttl = match session.client().await?.cmd(&[b("TTL"), key.clone()]).await? {
        Frame::Integer(n) => n,
        other => return Err(Failure::unexpected(other, "TTL")),
    };
    let exists = ttl != -2;
    match out.mode {
        Mode::Json => {
            let secs = if ttl >= 0 { Value::from(ttl) } else { Value::Null };
            out.json(&json!({ "key": bytes_json(&key), "exists": exists, "ttl": secs }))?;
        }
        Mode::Raw => out.line(&ttl.to_string())?,
        Mode::Human => match ttl {
            -2 => {}
            -1 => out.line("no expiry")?,
            n if n >= 60 => out.line(&format!("{n} s ({})", format::human_duration(n as u64)))?,
            n => out.line(&format!("{n} s"))?,
        },
    }
    if !exists {
        if out.mode != Mode::Json {
            note(&format!("not found: {}", format::key(&key)));
        }
        return Ok(Exit::NotFound);
    }
    Ok(Exit::Ok)
}

async fn expire(session: &mut Session, out: &mut Out, key: Vec<u8>, seconds: u64) -> Result<Exit> {
    let reply = session.client().await?.cmd(&[b("EXPIRE"), key.clone(), b(&seconds.to_string())]).await?;
    let set = match reply {
        Frame::Integer(n) => n == 1,
        other => return Err(Failure::unexpected(other, "EXPIRE")),
    };
    match out.mode {
        Mode::Json => out.json(&json!({ "key": bytes_json(&key), "set": set }))?,
        _ if set => out.line("OK")?,
        _ => note(&format!("not found: {}", format::key(&key))),
    }
    Ok(if set { Exit::Ok } else { Exit::NotFound })
}

async fn keys(session: &mut Session, out: &mut Out, pattern: Vec<u8>, count: u64) -> Result<Exit> {
    let client = session.client().await?;
    let mut found = BTreeSet::new();
    let mut cursor = b("0");
    loop {
        let reply =
            client.cmd(&[b("SCAN"), cursor, b("MATCH"), pattern.clone(), b("COUNT"), b(&count.to_string())]).await?;
        let (next, batch) = match reply {
            Frame::Array(mut parts) if parts.len() == 2 => {
                let batch = parts.pop();
                let next = parts.pop();
                match (next, batch) {
                    (Some(Frame::Bulk(next)), Some(Frame::Array(batch))) => (next, batch),
                    _ => return Err(Failure::Usage("unexpected reply to SCAN".into())),
                }
            }
            other => return Err(Failure::unexpected(other, "SCAN")),
        };
        // SCAN may return a key more than once: the set keeps one of each.
        found.extend(batch.into_iter().filter_map(|k| match k {
            Frame::Bulk(k) => Some(k),
            _ => None,
        }));
        if next == b"0" {
            break;
        }
        cursor = next;
    }
    match out.mode {
        Mode::Json => out.json(&Value::Array(found.iter().map(|k| bytes_json(k)).collect()))?,
        Mode::Raw => {
            for k in &found {
                out.write(k)?;
                out.write(b"\n")?;
            }
        }
        Mode::Human => {
            for k in &found {
                out.line(&format::key(k))?;
            }
        }
    }
    Ok(Exit::Ok)
}

async fn cmd(session: &mut Session, out: &mut Out, args: Vec<Vec<u8>>) -> Result<Exit> {
    let client = session.client().await?;
    // RESP3 where the server has it, as in the shell: replies carry their types (maps, sets,
    // doubles), and maps become JSON objects. A server without HELLO stays on RESP2.
    client.hello(3).await?;
    let reply = client.cmd(&args).await?;
    if let Frame::Error(msg) = reply {
        return Err(Failure::Reply(msg));
    }
    print_reply(out, &reply)?;
    Ok(Exit::Ok)
}

/// Prints a reply in the output mode: typed like redis-cli, raw, or JSON.
pub(crate) fn print_reply(out: &mut Out, reply: &Frame) -> std::io::Result<()> {
    match out.mode {
        Mode::Human => out.write(&format::typed(reply)),
        Mode::Raw => out.write(&format::raw(reply)),
        Mode::Json => out.json(&frame_json(reply)),
    }
}
