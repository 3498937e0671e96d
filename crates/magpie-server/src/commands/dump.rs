//! Values in Redis's serialized form: DUMP, RESTORE (and RESTORE-ASKING), MIGRATE. Payloads
//! are Redis 7.0's (RDB version 10, CRC-64), made and read by `magpie_persist::rdb`, so a value
//! moves between Redis and Magpie either way.

use magpie_persist::rdb::{self, Object, ReadOptions, RestoreError, WriteOptions};
use magpie_protocol::Args;

use crate::core::args::Cursor;
use crate::core::error::{self, CmdResult, Error, int_arg, is};
use crate::core::events as notify;
use crate::model::{Begin, Command, Ctx, Find, KeySpec};
use crate::{acl, flags, key_flags};

const GROUP: &str = "generic";

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("dump", 2, flags![READONLY], GROUP, "2.6.0", "Return a serialized version of the value stored at the specified key.",
        "key", dump)
        .acl(acl![KEYSPACE])
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output"]),
    Command::new("restore", -4, flags![WRITE, DENYOOM], GROUP, "2.6.0", "Create a key using the provided serialized value, previously obtained using DUMP.",
        "key ttl:integer serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds:integer] [FREQ frequency:integer]", restore)
        .acl(acl![KEYSPACE, DANGEROUS])
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE])]),
    Command::new("restore-asking", -4, flags![WRITE, DENYOOM, ASKING], "server", "3.0.0", "An internal command for migrating keys in a cluster",
        "key ttl:integer serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds:integer] [FREQ frequency:integer]", restore)
        .acl(acl![KEYSPACE, DANGEROUS])
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE])]),
    Command::new("migrate", -6, flags![WRITE, NETWORK], GROUP, "2.6.0", "Atomically transfer a key from a Redis instance to another one.",
        "host port:integer (key|\"\") destination-db:integer timeout:integer [COPY] [REPLACE] [AUTH password|AUTH2 username password] [KEYS key [key ...]]", migrate)
        .acl(acl![KEYSPACE, DANGEROUS])
        .keys(&[
            KeySpec::one(3, key_flags![RW, ACCESS, DELETE]),
            KeySpec::new(key_flags![RW, ACCESS, DELETE, INCOMPLETE], Begin::Keyword { keyword: "KEYS", start: -2 }, Find::Range { last: -1, step: 1, limit: 0 }),
        ])
        .tips(&["nondeterministic_output"]),
];

/// How values are written for DUMP and MIGRATE: Redis's defaults (LZF on, default encoding
/// thresholds), so the payload is the one Redis would produce for the same value.
pub(crate) fn write_options() -> WriteOptions {
    WriteOptions::default()
}

/// DUMP key
fn dump(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    match found {
        None => ctx.out().null(),
        Some(e) => {
            let payload = rdb::dump_value(&e.value, &write_options());
            drop(shard);
            ctx.out().bulk(&payload);
        }
    }
    Ok(())
}

/// RESTORE's options after the payload.
struct RestoreOptions {
    replace: bool,
    absttl: bool,
    /// IDLETIME (seconds) and FREQ: set on the new key as the policy allows (Redis's
    /// `objectSetLRUOrLFU`: idle time under LRU policies, frequency under LFU ones).
    idle: Option<u64>,
    freq: Option<u8>,
}

fn restore_options(args: Args<'_>) -> Result<RestoreOptions, Error> {
    let mut o = RestoreOptions { replace: false, absttl: false, idle: None, freq: None };
    let (mut idle, mut freq) = (None::<i64>, None::<i64>);
    let mut c = Cursor::new(args, 4);
    while let Some(opt) = c.next() {
        if is(opt, "replace") {
            o.replace = true;
        } else if is(opt, "absttl") {
            o.absttl = true;
        } else if is(opt, "idletime") && c.remaining() >= 1 && freq.is_none() {
            let n = int_arg(c.next_bytes()?)?;
            if n < 0 {
                return Err("ERR Invalid IDLETIME value, must be >= 0".into());
            }
            idle = Some(n);
        } else if is(opt, "freq") && c.remaining() >= 1 && idle.is_none() {
            let n = int_arg(c.next_bytes()?)?;
            if !(0..=255).contains(&n) {
                return Err("ERR Invalid FREQ value, must be >= 0 and <= 255".into());
            }
            freq = Some(n);
        } else {
            return Err(error::syntax());
        }
    }
    o.idle = idle.map(|n| n as u64);
    o.freq = freq.map(|n| n as u8);
    Ok(o)
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
/// (and RESTORE-ASKING, the same for Magpie, which has no cluster).
fn restore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let o = restore_options(args)?;
    let key = args.get(1);
    let now = ctx.now();
    let mut shard = ctx.db().write(key);
    if !o.replace && shard.contains(key, now) {
        return Err("BUSYKEY Target key name already exists.".into());
    }
    let mut ttl = int_arg(args.get(2))?;
    if ttl < 0 {
        return Err("ERR Invalid TTL value, must be >= 0".into());
    }
    // Every payload is checked entry by entry; `sanitize-dump-payload` adds the deep checks
    // of streams (the codec's `deep_sanitize`).
    let deep = ctx.server().settings().sanitize_client_payloads();
    let opts = ReadOptions { deep_sanitize: deep, verify_checksum: true };
    let value = match rdb::restore(args.get(3), &opts) {
        Ok(Object::Value(v)) => v,
        Ok(Object::Stream(s)) => match magpie_store::Stream::try_from(&*s) {
            Ok(stream) => magpie_store::Value::Stream(Box::new(stream)),
            Err(e) => {
                tracing::debug!("RESTORE refused a stream payload: {e}");
                return Err("ERR Bad data format".into());
            }
        },
        Err(e @ RestoreError::VersionOrChecksum) => return Err(Error::msg(e.to_string())),
        Err(RestoreError::BadData(e)) => {
            tracing::debug!("RESTORE refused a payload: {e}");
            return Err("ERR Bad data format".into());
        }
    };
    let deleted = o.replace && shard.remove(key, now).is_some();
    if ttl != 0 && !o.absttl {
        ttl = ttl.saturating_add(now as i64);
    }
    if ttl != 0 && ttl <= now as i64 {
        // Already expired: nothing is created (the old key, if replaced, is gone).
        drop(shard);
        if deleted {
            ctx.propagate(&[b"DEL", key]);
            ctx.notify(notify::GENERIC, "del", key);
        }
        ctx.out().ok();
        return Ok(());
    }
    let expire = (ttl != 0).then_some(ttl as u64);
    shard.insert(key, value, expire, now);
    if let Some(e) = shard.peek(key, now) {
        if let Some(secs) = o.idle {
            e.usage().set_idle(secs, now);
        }
        if let Some(f) = o.freq {
            e.usage().set_freq(f, now);
        }
    }
    drop(shard);
    if expire.is_some() && !o.absttl {
        // Logged with the absolute time, as Redis propagates it.
        let mut record: Vec<&[u8]> = args.iter().collect();
        let at = itoa::Buffer::new().format(ttl).as_bytes().to_vec();
        record[2] = &at;
        record.push(b"ABSTTL");
        ctx.propagate(&record);
    }
    ctx.notify(notify::GENERIC, "restore", key);
    ctx.out().ok();
    Ok(())
}

/// MIGRATE's options.
struct Migrate<'a> {
    copy: bool,
    replace: bool,
    auth: Option<(Option<&'a [u8]>, &'a [u8])>,
    keys: Vec<&'a [u8]>,
    db: i64,
    timeout_ms: u64,
}

fn migrate_options(args: Args<'_>) -> Result<Migrate<'_>, Error> {
    let mut o = Migrate { copy: false, replace: false, auth: None, keys: vec![args.get(3)], db: 0, timeout_ms: 0 };
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let a = args.get(j);
        if is(a, "copy") {
            o.copy = true;
        } else if is(a, "replace") {
            o.replace = true;
        } else if is(a, "auth") {
            if more < 1 {
                return Err(error::syntax());
            }
            j += 1;
            o.auth = Some((None, args.get(j)));
        } else if is(a, "auth2") {
            if more < 2 {
                return Err(error::syntax());
            }
            o.auth = Some((Some(args.get(j + 1)), args.get(j + 2)));
            j += 2;
        } else if is(a, "keys") {
            if !args.get(3).is_empty() {
                return Err(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string".into()
                );
            }
            o.keys = args.iter().skip(j + 1).collect();
            break;
        } else {
            return Err(error::syntax());
        }
        j += 1;
    }
    let timeout = int_arg(args.get(5))?;
    o.db = int_arg(args.get(4))?;
    o.timeout_ms = if timeout <= 0 { 1000 } else { timeout as u64 };
    Ok(o)
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password |
/// AUTH2 username password] [KEYS key ...]
///
/// Redis blocks the whole server for the round trip. Magpie serializes the keys (under their
/// shards' locks), lets everything go while it talks to the target, then deletes each key the
/// target acknowledged, unless it changed meanwhile (then the newer value stays here, and the
/// target holds the value of the moment of serialization). See docs/compatibility.md.
fn migrate(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    // The passwords of AUTH and AUTH2 are not shown by MONITOR or the slow log.
    let mut j = 6;
    while j + 1 < args.len() && !is(args.get(j), "keys") {
        if is(args.get(j), "auth") {
            ctx.session_mut().effects.redact(j + 1);
            j += 1;
        } else if is(args.get(j), "auth2") {
            ctx.session_mut().effects.redact(j + 1);
            ctx.session_mut().effects.redact(j + 2);
            j += 2;
        }
        j += 1;
    }
    let o = migrate_options(args)?;
    let db = ctx.db_index();
    let now = ctx.now();
    // Step 1, on the keyspace: the payloads of the keys that exist.
    let mut found: Vec<(&[u8], Vec<u8>, i64)> = Vec::new();
    {
        let _pass = ctx.server().gate().shared();
        let locked = ctx.keyspace().lock_read(o.keys.iter().map(|k| (db, *k)));
        for &k in &o.keys {
            let entry = locked.shard(db, k).get(k, now);
            ctx.hit(entry.is_some());
            if let Some(e) = entry {
                let ttl = e.expire_at().map_or(0, |at| (at as i64 - now as i64).max(1));
                found.push((k, rdb::dump_value(&e.value, &write_options()), ttl));
            }
        }
    }
    if found.is_empty() {
        ctx.out().simple("NOKEY");
        return Ok(());
    }
    // Step 2, on the network, holding nothing: the log's bracket is closed too, so no other
    // client's record waits for this round trip.
    let journal = ctx.server().journal().clone();
    journal.end();
    let outcome = in_blocking_section(|| talk_to_target(args.get(1), args.get(2), &o, &found));
    journal.begin();
    magpie_store::tap::reset_last_seq();
    let acked = outcome?;
    // Step 3, on the keyspace: delete what the target took, if it is still what was sent.
    let mut deleted: Vec<&[u8]> = Vec::new();
    if !o.copy && acked.ok.iter().any(|&ok| ok) {
        let _pass = ctx.server().gate().shared();
        let mut locked = ctx.keyspace().lock_write(found.iter().map(|(k, _, _)| (db, *k)));
        for ((k, payload, _), _) in found.iter().zip(&acked.ok).filter(|(_, ok)| **ok) {
            let shard = locked.shard(db, k);
            let same = shard.get(k, ctx.now()).is_some_and(|e| rdb::dump_value(&e.value, &write_options()) == *payload);
            if same {
                shard.remove(k, ctx.now());
                deleted.push(k);
            }
        }
    }
    if !deleted.is_empty() {
        let mut record: Vec<&[u8]> = vec![b"DEL"];
        record.extend(deleted.iter().copied());
        ctx.propagate(&record);
        for k in &deleted {
            ctx.notify(notify::GENERIC, "del", k);
        }
    }
    match acked.error {
        Some(e) => Err(e),
        None => {
            ctx.out().ok();
            Ok(())
        }
    }
}

/// What the target said: which keys it restored (`+OK`), and the first error it replied.
struct Acked {
    ok: Vec<bool>,
    error: Option<Error>,
}

/// Runs blocking network I/O from a command: on a multi-threaded runtime, the worker's other
/// tasks move to other threads meanwhile.
fn in_blocking_section<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn io_error(writing: bool) -> Error {
    Error::msg(format!("IOERR error or timeout {} to target instance", if writing { "writing" } else { "reading" }))
}

/// Connects, sends AUTH, SELECT and one RESTORE per key in one write, and reads the replies.
fn talk_to_target(host: &[u8], port: &[u8], o: &Migrate<'_>, found: &[(&[u8], Vec<u8>, i64)]) -> Result<Acked, Error> {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;

    let timeout = Duration::from_millis(o.timeout_ms);
    let connect_error = || Error::from("IOERR error or timeout connecting to the client");
    let host = std::str::from_utf8(host).map_err(|_| connect_error())?;
    let port: u16 = std::str::from_utf8(port).ok().and_then(|p| p.parse().ok()).ok_or_else(connect_error)?;
    let addr = (host, port).to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(connect_error)?;
    let stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| {
        // Redis connects without blocking and learns of a refusal only when it writes.
        if e.kind() == std::io::ErrorKind::ConnectionRefused { io_error(true) } else { connect_error() }
    })?;
    let _ = stream.set_nodelay(true);
    stream.set_read_timeout(Some(timeout)).map_err(|_| connect_error())?;
    stream.set_write_timeout(Some(timeout)).map_err(|_| connect_error())?;
    let mut out: Vec<u8> = Vec::new();
    let mut put = |parts: &[&[u8]]| {
        out.extend_from_slice(format!("*{}\r\n", parts.len()).as_bytes());
        for p in parts {
            out.extend_from_slice(format!("${}\r\n", p.len()).as_bytes());
            out.extend_from_slice(p);
            out.extend_from_slice(b"\r\n");
        }
    };
    match o.auth {
        Some((Some(user), pass)) => put(&[b"AUTH", user, pass]),
        Some((None, pass)) => put(&[b"AUTH", pass]),
        None => {}
    }
    let db = itoa::Buffer::new().format(o.db).as_bytes().to_vec();
    put(&[b"SELECT", &db]);
    for (k, payload, ttl) in found {
        let ttl = itoa::Buffer::new().format(*ttl).as_bytes().to_vec();
        if o.replace {
            put(&[b"RESTORE", k, &ttl, payload, b"REPLACE"]);
        } else {
            put(&[b"RESTORE", k, &ttl, payload]);
        }
    }
    (&stream).write_all(&out).map_err(|_| io_error(true))?;
    let mut reader = BufReader::new(&stream);
    let mut line = Vec::new();
    let mut read_line = |line: &mut Vec<u8>| -> Result<(), Error> {
        line.clear();
        match reader.read_until(b'\n', line) {
            Ok(n) if n > 0 => {
                while line.last().is_some_and(|&c| c == b'\n' || c == b'\r') {
                    line.pop();
                }
                Ok(())
            }
            _ => Err(io_error(false)),
        }
    };
    let target_error = |line: &[u8]| {
        let mut msg = b"ERR Target instance replied with error: ".to_vec();
        msg.extend_from_slice(&line[1..]);
        Error::bytes(msg)
    };
    let mut first_error: Option<Error> = None;
    if o.auth.is_some() {
        read_line(&mut line)?;
        if line.first() == Some(&b'-') {
            first_error = Some(target_error(&line));
        }
    }
    read_line(&mut line)?;
    if first_error.is_none() && line.first() == Some(&b'-') {
        first_error = Some(target_error(&line));
    }
    // As Redis: after a failed AUTH or SELECT nothing counts as restored; otherwise each key
    // whose RESTORE answered +OK was.
    let setup_failed = first_error.is_some();
    let mut ok = Vec::with_capacity(found.len());
    for _ in found {
        if let Err(e) = read_line(&mut line) {
            // Keys acknowledged so far were restored; the rest are unknown.
            ok.resize(found.len(), false);
            return Ok(Acked { ok, error: Some(first_error.unwrap_or(e)) });
        }
        if line.first() == Some(&b'-') {
            first_error.get_or_insert_with(|| target_error(&line));
            ok.push(false);
        } else {
            ok.push(!setup_failed);
        }
    }
    Ok(Acked { ok, error: first_error })
}
