//! Command-level fuzzing: random commands built from the server's own command table (COMMAND
//! and COMMAND DOCS), with edge-case values (0, -1, i64::MIN/MAX, 2^63, inf, nan, "(1", "[a",
//! empty and binary strings, huge counts, repeated options), sent over several connections
//! (pipelines, RESP3, several databases, blocking commands, clients that vanish) to a
//! `magpie-server` running with `--appendonly yes --appendfsync everysec`.
//!
//! A run fails when the server crashes, hangs, closes a connection it should not, or sends a
//! reply that is not well-formed RESP. After the run:
//!
//! - every connection still answers PING, and INFO works;
//! - the keyspace is consistent: for every key (all databases, found by SCAN), TYPE agrees with
//!   what the type's read command returns, containers are not empty, their length commands
//!   agree with their contents, sorted sets are in order, encodings are possible for the
//!   contents; DBSIZE equals the keys SCAN finds, INFO's `keys` their total; and INFO's
//!   `value_bytes` equals a recount from the data read back (string lengths, list elements,
//!   hash fields and values, set members, sorted-set members plus 8 per score);
//! - the server restarted from its append-only log holds exactly the same keyspace (values and
//!   expiry times), which catches commands whose logged effect differs from what they did.
//!
//! `fuzz_commands` runs a few seeds briefly with every `cargo test`. The long mode is ignored by
//! default:
//!
//! ```text
//! MAGPIE_FUZZ_SECONDS=300 cargo test -p magpie-server --test fuzz_commands -- --ignored --nocapture
//! ```
//!
//! runs seed after seed (from `MAGPIE_FUZZ_SEED`, else from the clock; each is printed) for
//! that long, `MAGPIE_FUZZ_COMMANDS` commands each (default 20000). A failure names its seed:
//! `MAGPIE_FUZZ_SEED=<seed> MAGPIE_FUZZ_SECONDS=1` replays it (the command sequence is fixed
//! by the seed; which connection is blocked at a given moment may vary).

mod common;
mod fuzzer;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Server;
use fuzzer::{Conn, Generator, ReadError, Resp, Spec, show, show_command};

#[test]
fn fuzz_commands() {
    for seed in [1, 2, 3] {
        fuzz_one(seed, 1500);
    }
}

#[test]
#[ignore = "long fuzzing run; MAGPIE_FUZZ_SECONDS sets its length"]
fn fuzz_commands_long() {
    let seconds: u64 = env_number("MAGPIE_FUZZ_SECONDS").unwrap_or(120);
    let commands = env_number("MAGPIE_FUZZ_COMMANDS").unwrap_or(20_000) as usize;
    let mut seed = env_number("MAGPIE_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(7)
    });
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0;
    loop {
        eprintln!("fuzz_commands_long: seed {seed}, {commands} commands");
        fuzz_one(seed, commands);
        runs += 1;
        seed += 1;
        if Instant::now() >= deadline {
            break;
        }
    }
    eprintln!("fuzz_commands_long: {runs} runs passed");
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// One run

/// Commands the fuzzer never sends: they end the server or the connection by design.
/// Commands the fuzzer does not send: those that end the server or the connection, and the
/// subscribe family, whose replies (one per channel) and messages the fuzzer would take for
/// the replies of the commands after them (tests/pubsub.rs and the differential scripts cover
/// them).
/// MIGRATE connects to the host it is given: random hosts ("1.5" reads as 1.0.0.5) would send
/// traffic off this machine and wait up to the random timeout (tests/rdb_moves.rs covers it).
/// MONITOR turns the connection into a monitor, whose lines the fuzzer would take for replies
/// (tests/operator.rs covers it).
/// CLIENT KILL, PAUSE, REPLY and TRACKING would close the fuzzer's connections, hold them for
/// a random time, silence their replies or add pushes to them (tests/clients.rs covers them).
const EXCLUDED: &[&str] = &[
    "monitor",
    "shutdown",
    "client|kill",
    "client|pause",
    "client|reply",
    "client|tracking",
    "quit",
    "subscribe",
    "unsubscribe",
    "psubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
    "migrate",
];

/// How often a command is picked, relative to the default of 10.
fn weight(spec: &Spec) -> usize {
    match spec.name.as_str() {
        "flushall" | "flushdb" | "save" | "bgsave" | "bgrewriteaof" | "command" | "command|docs" | "command|info" => 1,
        // The containers alone (their subcommands are listed on their own).
        "client" | "config" | "object" => 1,
        "config|set" | "info" | "keys" | "hello" | "select" => 3,
        "client|list" | "client|info" | "config|get" | "command|list" | "command|count" | "config|resetstat" => 2,
        _ => 10,
    }
}

fn blocking_timeout(args: &[Vec<u8>]) -> Option<&[u8]> {
    let name = args.first()?.to_ascii_lowercase();
    match name.as_slice() {
        b"blpop" | b"brpop" | b"blmove" | b"brpoplpush" | b"bzpopmin" | b"bzpopmax" => args.last().map(Vec::as_slice),
        b"blmpop" | b"bzmpop" => args.get(1).map(Vec::as_slice),
        _ => None,
    }
}

/// XREAD's and XREADGROUP's BLOCK milliseconds, wherever noise left them.
fn stream_block(args: &[Vec<u8>]) -> Option<&[u8]> {
    let name = args.first()?.to_ascii_lowercase();
    if !matches!(name.as_slice(), b"xread" | b"xreadgroup") {
        return None;
    }
    let at = args.iter().position(|a| a.eq_ignore_ascii_case(b"block"))?;
    args.get(at + 1).map(Vec::as_slice)
}

/// Whether a blocking command may wait long enough that the fuzzer should not wait for it.
fn may_block_long(args: &[Vec<u8>]) -> bool {
    if let Some(ms) = stream_block(args) {
        let ms: Option<i64> = std::str::from_utf8(ms).ok().and_then(|t| t.parse().ok());
        return ms.is_some_and(|ms| ms == 0 || ms > 20);
    }
    blocking_timeout(args).is_some_and(|t| !matches!(t, b"0.001" | b"0.002" | b"0.01" | b"1e-3" | b"0.005"))
}

/// A connection that sent commands it may be waiting on for a long time (blocking commands):
/// it is set aside, polled now and then, and dropped (a client that vanishes) at random.
struct Parked {
    conn: Conn,
    pending: usize,
}

struct Run {
    port: u16,
    seed: u64,
    specs: Vec<Spec>,
    /// Cumulative weights of `specs`.
    cumulative: Vec<usize>,
    gens: Generator,
    conns: Vec<Conn>,
    parked: Vec<Parked>,
    /// The last commands sent, for the failure message.
    recent: VecDeque<String>,
    sent: usize,
    errors: usize,
    /// Per command name: calls and errors (printed with `MAGPIE_FUZZ_STATS=1`).
    stats: BTreeMap<String, (usize, usize, BTreeMap<String, usize>)>,
}

impl Run {
    fn fail(&self, what: String) -> ! {
        let recent: Vec<&str> = self.recent.iter().map(String::as_str).collect();
        panic!(
            "fuzz seed {} failed after {} commands (of this thread): {what}\nlast commands of this thread (newest last):\n  {}",
            self.seed,
            self.sent,
            recent.join("\n  ")
        );
    }

    fn connect(&self) -> Conn {
        Conn::connect(self.port).unwrap_or_else(|e| self.fail(format!("cannot connect: {e}")))
    }

    fn pick_spec(&mut self) -> Spec {
        let total = *self.cumulative.last().expect("some commands");
        let r = self.gens.rng.below(total);
        let i = self.cumulative.partition_point(|&c| c <= r);
        self.specs[i].clone()
    }

    fn note(&mut self, conn: usize, args: &[Vec<u8>]) {
        if self.recent.len() == 40 {
            self.recent.pop_front();
        }
        let mut line = show_command(args);
        line.truncate(300);
        self.recent.push_back(format!("[conn {conn}] {line}"));
    }

    fn step(&mut self) {
        let rng = &mut self.gens.rng;
        let c = rng.below(self.conns.len());
        let batch_len = if rng.percent(15) { 2 + rng.below(30) } else { 1 };
        let mut batch = Vec::with_capacity(batch_len);
        for _ in 0..batch_len {
            let spec = self.pick_spec();
            let mut cmd = self.gens.command(&spec);
            if self.gens.rng.percent(5) {
                cmd = self.gens.in_script(cmd);
            }
            self.note(c, &cmd);
            batch.push(cmd);
        }
        self.sent += batch.len();
        let vanish = self.gens.rng.percent(1);
        let inline = batch.len() == 1 && self.gens.rng.percent(3) && inline_safe(&batch[0]);
        let sent = if inline {
            let mut line = batch[0].join(&b' ');
            line.extend_from_slice(b"\r\n");
            self.conns[c].send_raw(&line)
        } else {
            self.conns[c].send(&batch)
        };
        if let Err(e) = sent {
            self.fail(format!("cannot send to connection {c}: {e}"));
        }
        if vanish {
            // A client that sends and goes away without reading.
            self.conns[c] = self.connect();
            return;
        }
        for (i, cmd) in batch.iter().enumerate() {
            let long = may_block_long(cmd);
            self.conns[c].set_read_timeout(if long { Duration::from_millis(50) } else { Duration::from_secs(20) });
            match self.conns[c].read() {
                Ok((reply, _)) => self.saw(cmd, &reply),
                Err(ReadError::Timeout) if long => {
                    // Blocked: set the connection aside with what it still owes.
                    let fresh = self.connect();
                    let conn = std::mem::replace(&mut self.conns[c], fresh);
                    self.parked.push(Parked { conn, pending: batch.len() - i });
                    break;
                }
                Err(e) => self.fail(format!("connection {c}, reply to {}: {e}", show_command(cmd))),
            }
        }
        self.conns[c].set_read_timeout(Duration::from_secs(20));
        if !self.parked.is_empty() && self.gens.rng.percent(10) {
            self.poll_parked();
        }
    }

    /// Sends the generator's setup commands (see [`Generator::setup`]) on the first connection.
    fn setup(&mut self) {
        let setup = self.gens.setup();
        if let Err(e) = self.conns[0].send(&setup) {
            self.fail(format!("setup: {e}"));
        }
        for cmd in &setup {
            if let Err(e) = self.conns[0].read() {
                self.fail(format!("setup: {}: {e}", show_command(cmd)));
            }
        }
    }

    fn saw(&mut self, cmd: &[Vec<u8>], reply: &Resp) {
        let name = String::from_utf8_lossy(&cmd[0]).to_lowercase();
        let entry = self.stats.entry(name).or_default();
        entry.0 += 1;
        if let Some(e) = reply.error() {
            self.errors += 1;
            entry.1 += 1;
            let e: String = String::from_utf8_lossy(e).chars().take(60).collect();
            *entry.2.entry(e).or_default() += 1;
        }
    }

    /// Reads what parked connections were sent meanwhile; drops one now and then.
    fn poll_parked(&mut self) {
        let mut i = 0;
        while i < self.parked.len() {
            if self.gens.rng.percent(5) {
                self.parked.swap_remove(i); // the client vanishes while blocked
                continue;
            }
            let p = &mut self.parked[i];
            while p.pending > 0 && has_data(&mut p.conn) {
                match p.conn.read() {
                    Ok(_) => p.pending -= 1,
                    Err(e) => {
                        let what = format!("parked connection: {e}");
                        self.fail(what);
                    }
                }
            }
            if p.pending == 0 {
                let p = self.parked.swap_remove(i);
                if self.conns.len() < 8 {
                    self.conns.push(p.conn);
                }
                continue;
            }
            i += 1;
        }
    }
}

/// Whether a reply has started to arrive (so reading it will not stop halfway on a timeout).
fn has_data(conn: &mut Conn) -> bool {
    conn.set_read_timeout(Duration::from_millis(1));
    let ready = conn.peek_ready();
    conn.set_read_timeout(Duration::from_secs(20));
    ready
}

/// Whether a command can be sent as an inline command and read back the same (a line that
/// starts with `*` is a multibulk header).
fn inline_safe(args: &[Vec<u8>]) -> bool {
    !args.first().is_some_and(|a| a.starts_with(b"*"))
        && args
            .iter()
            .all(|a| !a.is_empty() && a.iter().all(|&c| c.is_ascii_graphic() && !matches!(c, b'"' | b'\'' | b'\\')))
}

fn temp_dir(seed: u64) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("magpie-fuzz-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create fuzz dir");
    dir
}

fn start(dir: &std::path::Path) -> Server {
    Server::magpie_with(&[
        "--dir",
        dir.to_str().expect("utf-8 temp dir"),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        // SETBIT and BITFIELD at the edge offsets (4294967295) would otherwise make 512 MB
        // strings, which a debug build then copies into every snapshot and replay: a limit
        // of 1 MB keeps the fuzzer fast and still exercises the refusal.
        "--proto-max-bulk-len",
        "1mb",
    ])
}

/// Client threads per run: commands from different connections really run at once.
const THREADS: u64 = 2;

impl Run {
    fn new(port: u16, seed: u64, thread: u64, specs: &[Spec]) -> Run {
        let mut cumulative = Vec::with_capacity(specs.len());
        let mut total = 0;
        for s in specs {
            total += weight(s);
            cumulative.push(total);
        }
        let mut run = Run {
            port,
            seed,
            specs: specs.to_vec(),
            cumulative,
            gens: Generator::new(seed.wrapping_mul(1000).wrapping_add(thread), true),
            conns: Vec::new(),
            parked: Vec::new(),
            recent: VecDeque::new(),
            sent: 0,
            errors: 0,
            stats: BTreeMap::new(),
        };
        for i in 0..4 {
            let mut conn = run.connect();
            if i % 2 == 1 {
                // Half the connections speak RESP3 from the start.
                let hello = conn.call(&[b"HELLO", b"3"]).expect("HELLO 3");
                assert!(matches!(hello, Resp::Map(_)), "HELLO 3: {hello:?}");
            }
            run.conns.push(conn);
        }
        run
    }

    /// Sends `commands` commands, then checks that every connection still answers.
    fn drive(&mut self, commands: usize) {
        let mut next_setup = 0;
        while self.sent < commands {
            if self.sent >= next_setup {
                // Fill the typed keys again now and then (FLUSHALL, DEL and pops empty them).
                self.setup();
                next_setup = self.sent + 1000;
            }
            self.step();
        }
        self.poll_parked();
        // Every connection still answers (blocked ones are dropped: they may wait for good).
        self.parked.clear();
        // A connection may be subscribed (with messages and extra subscribe replies still to
        // read) or inside a transaction: RESET it, then PING, and read until the PONG.
        for i in 0..self.conns.len() {
            let sent = self.conns[i].send(&[vec![b"RESET".to_vec()], vec![b"PING".to_vec()]]);
            if let Err(e) = sent {
                self.fail(format!("connection {i} is closed: {e}"));
            }
            let mut reset = false;
            loop {
                match self.conns[i].read() {
                    Ok((Resp::Simple(r), _)) if r == b"RESET" => reset = true,
                    Ok((Resp::Simple(p), _)) if p == b"PONG" && reset => break,
                    Ok(_) if !reset => {}
                    other => self.fail(format!("connection {i} does not answer PING after RESET: {other:?}")),
                }
            }
        }
    }
}

/// Fuzzes a fresh server with `commands` commands from `seed` (spread over [`THREADS`]
/// client threads), then checks it.
fn fuzz_one(seed: u64, commands: usize) {
    let started = Instant::now();
    let dir = temp_dir(seed);
    let mut server = start(&dir);
    let mut setup = Conn::connect(server.port).expect("connect");
    if seed % 2 == 1 {
        // Snapshots and log rewrites all the time, while the clients write.
        let reply = setup.call(&[
            b"CONFIG",
            b"SET",
            b"save",
            b"1 1",
            b"auto-aof-rewrite-percentage",
            b"1",
            b"auto-aof-rewrite-min-size",
            b"1",
        ]);
        assert!(matches!(&reply, Ok(Resp::Simple(ok)) if ok == b"OK"), "CONFIG SET: {reply:?}");
    }
    let specs: Vec<Spec> =
        fuzzer::load_specs(&mut setup).into_iter().filter(|s| !EXCLUDED.contains(&s.name.as_str())).collect();
    let port = server.port;
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let specs = &specs;
                scope.spawn(move || {
                    let mut run = Run::new(port, seed, t, specs);
                    run.drive(commands / THREADS as usize);
                    run
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    });
    let run = &runs[0];
    let mut check = run.connect();
    match check.call(&[b"INFO"]) {
        Ok(Resp::Bulk(text) | Resp::Verbatim(text)) if text.starts_with(b"# Server") => {}
        other => run.fail(format!("INFO: {other:?}")),
    }
    let before = keyspace(&mut check).unwrap_or_else(|e| run.fail(format!("after fuzzing: {e}")));

    // Restart from the log: the same keyspace must come back.
    let ok = |r: Result<Resp, ReadError>| matches!(r, Ok(Resp::Simple(s)) if s == b"OK");
    if !ok(check.call_str("CONFIG SET appendonly yes")) {
        run.fail("CONFIG SET appendonly yes failed".into());
    }
    wait_for_persistence(&mut check);
    let _ = check.call(&[b"SHUTDOWN"]);
    if server.wait_exit(Duration::from_secs(20)).is_none() {
        run.fail("the server did not exit after SHUTDOWN".into());
    }
    drop(server);
    let restarted = start(&dir);
    let mut check = Conn::connect(restarted.port).expect("connect after restart");
    let after = keyspace(&mut check).unwrap_or_else(|e| run.fail(format!("after the restart: {e}")));
    if let Err(e) = same_keyspace(&before, &after) {
        run.fail(format!("the keyspace replayed from the log differs from the one before the restart: {e}"));
    }
    drop(restarted);
    let _ = std::fs::remove_dir_all(&dir);
    if std::env::var_os("MAGPIE_FUZZ_STATS").is_some() {
        let mut stats: BTreeMap<&String, (usize, usize, BTreeMap<&String, usize>)> = BTreeMap::new();
        for (name, (calls, errors, why)) in runs.iter().flat_map(|r| &r.stats) {
            let entry = stats.entry(name).or_default();
            entry.0 += calls;
            entry.1 += errors;
            for (w, n) in why {
                *entry.2.entry(w).or_default() += n;
            }
        }
        for (name, (calls, errors, why)) in &stats {
            let mut why: Vec<_> = why.iter().collect();
            why.sort_by(|a, b| b.1.cmp(a.1));
            why.truncate(3);
            eprintln!("  {name:<18} {calls:>5} calls {errors:>5} errors {why:?}");
        }
    }
    eprintln!(
        "fuzz seed {seed}: {} commands ({} errors) from {THREADS} threads, {} keys, {:.1}s",
        runs.iter().map(|r| r.sent).sum::<usize>(),
        runs.iter().map(|r| r.errors).sum::<usize>(),
        before.keys.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Waits until no snapshot or log rewrite is running or scheduled.
fn wait_for_persistence(conn: &mut Conn) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let info = info_fields(conn, "persistence");
        let busy = ["rdb_bgsave_in_progress", "aof_rewrite_in_progress", "aof_rewrite_scheduled"]
            .iter()
            .any(|f| info.get(*f).is_some_and(|v| v != "0"));
        if !busy {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("a snapshot or rewrite still runs after 30 s");
}

fn info_fields(conn: &mut Conn, section: &str) -> BTreeMap<String, String> {
    let reply = conn.call(&[b"INFO", section.as_bytes()]).expect("INFO");
    let text = String::from_utf8_lossy(reply.bytes().unwrap_or_default()).into_owned();
    text.lines().filter_map(|l| l.split_once(':')).map(|(k, v)| (k.to_string(), v.trim().to_string())).collect()
}

// ---------------------------------------------------------------------------------------------
// The keyspace, read back and checked

/// One key as read back: its type, contents (in a canonical order) and expiry time.
#[derive(Clone, Debug, PartialEq)]
struct KeyDump {
    kind: String,
    /// A string's bytes; a list's elements in order; a hash's fields and values, a set's
    /// members, sorted; a sorted set's members and scores in order.
    items: Vec<Vec<u8>>,
    /// PEXPIRETIME: -1 without an expiry.
    expire_at: i64,
}

struct Keyspace {
    /// (database, key) -> contents.
    keys: BTreeMap<(usize, Vec<u8>), KeyDump>,
}

const DATABASES: usize = 16;

/// Reads the whole keyspace and checks it, retrying while keys expire under it (the answer
/// is only taken when INFO reports the same before and after the read, and agrees with it).
fn keyspace(conn: &mut Conn) -> Result<Keyspace, String> {
    let mut last = String::new();
    for _ in 0..40 {
        match read_keyspace(conn) {
            Ok(Some(ks)) => return Ok(ks),
            Ok(None) => {}
            Err(Check::Changed(why)) => last = why,
            Err(Check::Broken(why)) => return Err(why),
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    Err(format!("the keyspace never held still for a check: {last}"))
}

enum Check {
    /// Something changed during the read (a key expired): read again.
    Changed(String),
    /// An invariant does not hold.
    Broken(String),
}

fn broken<T>(what: String) -> Result<T, Check> {
    Err(Check::Broken(what))
}

fn call(conn: &mut Conn, args: &[&[u8]]) -> Result<Resp, Check> {
    conn.call(args).map_err(|e| Check::Broken(format!("{}: {e}", show_command(&to_vec(args)))))
}

fn to_vec(args: &[&[u8]]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.to_vec()).collect()
}

fn magpie_figures(conn: &mut Conn) -> Result<(u64, u64, u64), Check> {
    let info = info_fields(conn, "magpie");
    let get = |name: &str| -> Result<u64, Check> {
        info.get(name).and_then(|v| v.parse().ok()).ok_or_else(|| Check::Broken(format!("INFO magpie lacks {name}")))
    };
    Ok((get("keys")?, get("expires")?, get("value_bytes")?))
}

fn read_keyspace(conn: &mut Conn) -> Result<Option<Keyspace>, Check> {
    let figures = magpie_figures(conn)?;
    let mut keys = BTreeMap::new();
    let mut value_bytes: u64 = 0;
    let mut dbsizes = 0;
    for db in 0..DATABASES {
        call(conn, &[b"SELECT", db.to_string().as_bytes()])?;
        let mut found = std::collections::BTreeSet::new();
        let mut cursor = b"0".to_vec();
        loop {
            let reply = call(conn, &[b"SCAN", &cursor, b"COUNT", b"100"])?;
            let Some([next, batch]) = reply.items().as_deref().map(|v| [v[0], v[1]]) else {
                return broken(format!("SCAN reply {reply:?}"));
            };
            for k in batch.items().unwrap_or_default() {
                found.insert(k.bytes().unwrap_or_default().to_vec());
            }
            cursor = next.bytes().unwrap_or_default().to_vec();
            if cursor == b"0" {
                break;
            }
        }
        let dbsize = call(conn, &[b"DBSIZE"])?.int().unwrap_or(-1);
        if dbsize != found.len() as i64 {
            return Err(Check::Changed(format!("db {db}: DBSIZE {dbsize}, SCAN found {} keys", found.len())));
        }
        dbsizes += found.len() as u64;
        for key in found {
            let Some((dump, bytes)) = read_key(conn, &key)? else {
                return Err(Check::Changed(format!("db {db}: key {} vanished", show(&key))));
            };
            value_bytes += bytes;
            keys.insert((db, key), dump);
        }
    }
    call(conn, &[b"SELECT", b"0"])?;
    if magpie_figures(conn)? != figures {
        return Err(Check::Changed("INFO changed while reading".into()));
    }
    let (info_keys, info_expires, info_bytes) = figures;
    if info_keys != dbsizes {
        return Err(Check::Changed(format!("INFO magpie keys:{info_keys}, DBSIZE of every database {dbsizes}")));
    }
    let with_ttl = keys.values().filter(|k| k.expire_at >= 0).count() as u64;
    if info_expires != with_ttl {
        return broken(format!("INFO magpie expires:{info_expires}, but {with_ttl} keys have a PEXPIRETIME"));
    }
    if info_bytes != value_bytes {
        return broken(format!(
            "INFO magpie value_bytes:{info_bytes}, but the values read back add up to {value_bytes}"
        ));
    }
    Ok(Some(Keyspace { keys }))
}

/// Reads one key back with its type's commands and checks them against each other. None when
/// the key is gone (it expired meanwhile). Also returns its size as `value_bytes` counts it.
fn read_key(conn: &mut Conn, key: &[u8]) -> Result<Option<(KeyDump, u64)>, Check> {
    let kind = call(conn, &[b"TYPE", key])?;
    let kind = String::from_utf8_lossy(kind.bytes().unwrap_or_default()).into_owned();
    let k = show(key);
    let len_of = |r: Resp, cmd: &str| -> Result<i64, Check> {
        r.int().ok_or_else(|| Check::Broken(format!("{cmd} {k} of a {kind}: {r:?}")))
    };
    let list_of = |r: Resp, cmd: &str| -> Result<Vec<Vec<u8>>, Check> {
        match r.items() {
            Some(items) => Ok(items.iter().map(|i| i.bytes().unwrap_or_default().to_vec()).collect()),
            None => Err(Check::Broken(format!("{cmd} {k} of a {kind}: {r:?}"))),
        }
    };
    let (items, len, bytes, wrong) = match kind.as_str() {
        "none" => return Ok(None),
        "string" => {
            let value = match call(conn, &[b"GET", key])? {
                Resp::Bulk(v) => v,
                Resp::Null => return Ok(None),
                other => return broken(format!("GET {k} of a string: {other:?}")),
            };
            let len = len_of(call(conn, &[b"STRLEN", key])?, "STRLEN")?;
            let bytes = value.len() as u64;
            (vec![value], len.max(1), bytes, b"LLEN".as_slice())
        }
        "list" => {
            let items = list_of(call(conn, &[b"LRANGE", key, b"0", b"-1"])?, "LRANGE")?;
            let len = len_of(call(conn, &[b"LLEN", key])?, "LLEN")?;
            let bytes = items.iter().map(|i| i.len() as u64).sum();
            (items, len, bytes, b"SCARD".as_slice())
        }
        "hash" => {
            let flat = list_of(call(conn, &[b"HGETALL", key])?, "HGETALL")?;
            let len = len_of(call(conn, &[b"HLEN", key])?, "HLEN")?;
            let bytes = flat.iter().map(|i| i.len() as u64).sum();
            let mut pairs: Vec<&[Vec<u8>]> = flat.chunks(2).collect();
            pairs.sort();
            if pairs.windows(2).any(|w| w[0][0] == w[1][0]) {
                return broken(format!("HGETALL {k} repeats a field"));
            }
            let items = pairs.concat();
            (items, len * 2, bytes, b"GET".as_slice())
        }
        "set" => {
            let mut members = list_of(call(conn, &[b"SMEMBERS", key])?, "SMEMBERS")?;
            let len = len_of(call(conn, &[b"SCARD", key])?, "SCARD")?;
            let bytes = members.iter().map(|i| i.len() as u64).sum();
            members.sort();
            if members.windows(2).any(|w| w[0] == w[1]) {
                return broken(format!("SMEMBERS {k} repeats a member"));
            }
            (members, len, bytes, b"HLEN".as_slice())
        }
        "zset" => {
            let flat = list_of(call(conn, &[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"])?, "ZRANGE")?;
            let len = len_of(call(conn, &[b"ZCARD", key])?, "ZCARD")?;
            let n = flat.len() as u64 / 2;
            let bytes = flat.chunks(2).map(|p| p[0].len() as u64).sum::<u64>() + 8 * n;
            check_zset_order(&k, &flat)?;
            let mut members: Vec<&[u8]> = flat.chunks(2).map(|p| p[0].as_slice()).collect();
            members.sort();
            if members.windows(2).any(|w| w[0] == w[1]) {
                return broken(format!("ZRANGE {k} repeats a member"));
            }
            (flat, len * 2, bytes, b"LLEN".as_slice())
        }
        "stream" => {
            let (items, bytes) = read_stream(conn, key, &k)?;
            let n = items.len() as i64;
            (items, n, bytes, b"LLEN".as_slice())
        }
        other => return broken(format!("TYPE {k}: {other:?}")),
    };
    if items.is_empty() {
        // Gone meanwhile (expired), or an empty container, which must never exist.
        return if len == 0 { Ok(None) } else { broken(format!("{kind} {k} reads as empty but its length is {len}")) };
    }
    if kind != "string" && len != items.len() as i64 {
        return broken(format!("{kind} {k}: its length command says {len} items, {} read", items.len()));
    }
    // Another type's command refuses it.
    match call(conn, &[wrong, key])? {
        Resp::Error(e) if e.starts_with(b"WRONGTYPE") => {}
        other => return broken(format!("{} {k} of a {kind}: {other:?}", show(wrong))),
    }
    check_encoding(conn, key, &kind, &items)?;
    let expire_at = call(conn, &[b"PEXPIRETIME", key])?.int().unwrap_or(-3);
    if expire_at == -2 {
        return Ok(None);
    }
    Ok(Some((KeyDump { kind, items, expire_at }, bytes)))
}

/// A reply flattened into lines (aggregates bracketed), leaving out the elements at `drop`
/// of each innermost array.
fn flatten(r: &Resp, drop: &[usize], out: &mut Vec<Vec<u8>>) {
    match r {
        Resp::Array(items) | Resp::Set(items) => {
            let innermost = items.iter().all(|i| !matches!(i, Resp::Array(_) | Resp::Map(_)));
            out.push(b"[".to_vec());
            for (i, item) in items.iter().enumerate() {
                if !(innermost && drop.contains(&i)) {
                    flatten(item, drop, out);
                }
            }
            out.push(b"]".to_vec());
        }
        Resp::Map(pairs) => {
            out.push(b"{".to_vec());
            for (k, v) in pairs {
                flatten(k, drop, out);
                flatten(v, drop, out);
            }
            out.push(b"}".to_vec());
        }
        Resp::Int(n) => out.push(n.to_string().into_bytes()),
        Resp::Null => out.push(b"(nil)".to_vec()),
        other => out.push(other.bytes().unwrap_or_default().to_vec()),
    }
}

/// A stream read back: its entries (checked against XLEN, and adding up to its size), its
/// counters and node shape, and its groups with their pending entries and consumers, without
/// the times a log replay sets anew (idle times).
fn read_stream(conn: &mut Conn, key: &[u8], k: &str) -> Result<(Vec<Vec<u8>>, u64), Check> {
    let entries = call(conn, &[b"XRANGE", key, b"-", b"+"])?;
    let Some(list) = entries.items() else { return broken(format!("XRANGE {k}: {entries:?}")) };
    let len = call(conn, &[b"XLEN", key])?.int().unwrap_or(-1);
    if len != list.len() as i64 {
        return broken(format!("stream {k}: XLEN says {len}, XRANGE returns {} entries", list.len()));
    }
    let mut bytes = 0u64;
    let mut last: Option<Vec<u8>> = None;
    for e in &list {
        let parts = e.items().unwrap_or_default();
        let (Some(id), Some(fields)) = (parts.first().and_then(|i| i.bytes()), parts.get(1).and_then(|f| f.items()))
        else {
            return broken(format!("XRANGE {k}: an entry {e:?}"));
        };
        let parse = |id: &[u8]| -> Option<(u64, u64)> {
            let (ms, seq) = std::str::from_utf8(id).ok()?.split_once('-')?;
            Some((ms.parse().ok()?, seq.parse().ok()?))
        };
        if last.as_deref().and_then(parse) >= parse(id) {
            return broken(format!("stream {k}: entry {} after {:?}, out of order", show(id), last.map(|l| show(&l))));
        }
        last = Some(id.to_vec());
        bytes += fields.iter().map(|f| f.bytes().map_or(0, <[u8]>::len) as u64).sum::<u64>();
    }
    let mut items = Vec::new();
    flatten(&entries, &[], &mut items);
    flatten(&call(conn, &[b"XINFO", b"STREAM", key])?, &[], &mut items);
    let groups = call(conn, &[b"XINFO", b"GROUPS", key])?;
    flatten(&groups, &[], &mut items);
    for g in groups.items().unwrap_or_default() {
        let fields = g.items().unwrap_or_default();
        let Some(name) = fields.get(1).and_then(|n| n.bytes()) else { continue };
        // XPENDING's idle time is third; XINFO CONSUMERS' is the last pair.
        flatten(&call(conn, &[b"XPENDING", key, name, b"-", b"+", b"1000000"])?, &[2], &mut items);
        flatten(&call(conn, &[b"XINFO", b"CONSUMERS", key, name])?, &[4, 5], &mut items);
    }
    Ok((items, bytes))
}

fn check_zset_order(k: &str, flat: &[Vec<u8>]) -> Result<(), Check> {
    let mut prev: Option<(f64, &[u8])> = None;
    for p in flat.chunks(2) {
        let score: f64 = match std::str::from_utf8(&p[1]).ok().and_then(|s| s.parse().ok()) {
            Some(s) => s,
            None => return broken(format!("zset {k}: score {} is not a number", show(&p[1]))),
        };
        if score.is_nan() {
            return broken(format!("zset {k}: NaN score for {}", show(&p[0])));
        }
        if let Some((ps, pm)) = prev
            && (score < ps || (score == ps && p[0].as_slice() <= pm))
        {
            return broken(format!("zset {k}: {} after {} is out of order", show(&p[0]), show(pm)));
        }
        prev = Some((score, &p[0]));
    }
    Ok(())
}

/// OBJECT ENCODING names an encoding the type has, and a small encoding holds only what it
/// may (Redis 7.0's default limits; conversions are one way, so a big one may hold little).
fn check_encoding(conn: &mut Conn, key: &[u8], kind: &str, items: &[Vec<u8>]) -> Result<(), Check> {
    let reply = call(conn, &[b"OBJECT", b"ENCODING", key])?;
    let enc = String::from_utf8_lossy(reply.bytes().unwrap_or_default()).into_owned();
    let k = show(key);
    let allowed: &[&str] = match kind {
        "string" => &["int", "embstr", "raw"],
        "list" => &["quicklist", "listpack"],
        "hash" => &["listpack", "hashtable"],
        "set" => &["intset", "listpack", "hashtable"],
        "stream" => &["stream"],
        _ => &["listpack", "skiplist"],
    };
    if !allowed.contains(&enc.as_str()) {
        return broken(format!("OBJECT ENCODING {k} of a {kind}: {reply:?}"));
    }
    let is_int = |m: &[u8]| {
        std::str::from_utf8(m).ok().and_then(|s| s.parse::<i64>().ok()).is_some_and(|n| n.to_string().as_bytes() == m)
    };
    let small_ok = match (kind, enc.as_str()) {
        ("string", "int") => is_int(&items[0]),
        ("hash", "listpack") => items.len() / 2 <= 512 && items.iter().all(|p| p.len() <= 64),
        ("set", "intset") => items.len() <= 512 && items.iter().all(|m| is_int(m)),
        ("set", "listpack") => items.len() <= 128 && items.iter().all(|m| m.len() <= 64),
        ("zset", "listpack") => items.len() / 2 <= 128 && items.chunks(2).all(|p| p[0].len() <= 64),
        _ => true,
    };
    if !small_ok {
        return broken(format!(
            "{kind} {k} is encoded as {enc} but holds {} items too big or too many for it",
            items.len()
        ));
    }
    Ok(())
}

/// Whether the keyspace read after a restart is the one read before it. Keys that were due to
/// expire around the restart may be gone.
fn same_keyspace(before: &Keyspace, after: &Keyspace) -> Result<(), String> {
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
    let mut diffs = Vec::new();
    for ((db, key), b) in &before.keys {
        match after.keys.get(&(*db, key.clone())) {
            Some(a) if a == b => {}
            Some(a) => {
                diffs.push(format!("db {db} key {}:\n    before {}\n    after  {}", show(key), dump(b), dump(a)))
            }
            None if b.expire_at >= 0 && b.expire_at < now_ms + 1000 => {}
            None => diffs.push(format!("db {db} key {} is gone: was {}", show(key), dump(b))),
        }
    }
    for (db, key) in after.keys.keys() {
        if !before.keys.contains_key(&(*db, key.clone())) {
            diffs.push(format!("db {db} key {} appeared: {}", show(key), dump(&after.keys[&(*db, key.clone())])));
        }
    }
    if diffs.is_empty() {
        return Ok(());
    }
    diffs.truncate(10);
    Err(diffs.join("\n"))
}

fn dump(d: &KeyDump) -> String {
    let items: Vec<String> = d.items.iter().take(20).map(|i| show(i)).collect();
    format!(
        "{} expire_at={} [{}]{}",
        d.kind,
        d.expire_at,
        items.join(", "),
        if d.items.len() > 20 { " ..." } else { "" }
    )
}
