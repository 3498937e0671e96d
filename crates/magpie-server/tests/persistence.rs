//! Persistence against a real server: snapshots and the append-only log survive restarts and
//! crashes (SIGKILL at random moments, during snapshots and rewrites) without losing an
//! acknowledged write; damaged files are cut (torn tail) or refused (corruption) as documented;
//! a disk that fails refuses writes (MISCONF) and recovers.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Raw, Server, free_port, info_field, reply, send, wait_blocked};
use redis::Commands;

/// A fresh directory for one test's files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("magpie-persist-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// Starts a server on `dir` with `args` (the test harness adds `--save ""` first; a later
/// `--save` here wins).
fn start(dir: &Path, args: &[&str]) -> Server {
    let mut all = vec!["--dir", dir.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    Server::magpie_with(&all)
}

const ALWAYS: &[&str] = &["--appendonly", "yes", "--appendfsync", "always"];

/// Runs the server binary to completion (for start failures and the check tools).
fn run_binary(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_magpie-server"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run magpie-server");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Starts a server expected to refuse to start; returns what it printed.
fn start_fails(dir: &Path, args: &[&str]) -> String {
    let port = free_port().to_string();
    let mut all = vec![
        "--port",
        &port,
        "--http-port",
        "0",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        dir.to_str().expect("utf-8"),
    ];
    all.extend_from_slice(args);
    let child = Command::new(env!("CARGO_BIN_EXE_magpie-server"))
        .args(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = wait_with_timeout(child, Duration::from_secs(10));
    assert!(!out.0, "the server started on a damaged file:\n{}", out.1);
    out.1
}

fn wait_with_timeout(mut child: std::process::Child, timeout: Duration) -> (bool, String) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().expect("output");
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            return (status.success(), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            return (true, format!("still running after {timeout:?}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn incr_file(dir: &Path) -> PathBuf {
    let manifest = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).expect("manifest");
    let name = manifest.lines().rfind(|l| l.starts_with("incr ")).expect("an incr line").trim_start_matches("incr ");
    dir.join("appendonlydir").join(name)
}

/// Graceful stop through SHUTDOWN (the connection closes without a reply).
fn shutdown(server: &mut Server, how: &str) {
    let mut raw = server.raw();
    let mut args: Vec<&[u8]> = vec![b"SHUTDOWN"];
    if !how.is_empty() {
        args.push(how.as_bytes());
    }
    let _ = raw.try_cmd(&args);
    assert!(server.wait_exit(Duration::from_secs(10)).is_some(), "server did not exit");
}

#[test]
fn strings_and_expiry_times_survive_a_snapshot() {
    let dir = temp_dir("snapshot");
    let mut s = start(&dir, &[]);
    let mut con = s.client();
    let _: () = con.set("plain", "hello").unwrap();
    let _: () = con.set("number", 42).unwrap();
    let _: () = con.set("binary", b"a\0b\r\nc".as_slice()).unwrap();
    let _: () = redis::cmd("SET").arg("long").arg("x".repeat(100_000)).arg("EX").arg(1000).query(&mut con).unwrap();
    // Long enough to outlive the SAVE and the INFO below on a loaded machine (its expiry is a
    // change since the save); it passes while the server is down.
    let _: () = redis::cmd("SET").arg("short").arg("v").arg("PX").arg(2000).query(&mut con).unwrap();
    let short_set = Instant::now();
    let _: () = redis::cmd("SELECT").arg(3).query(&mut con).unwrap();
    let _: () = con.set("in-db-3", "x").unwrap();
    let before: i64 = redis::cmd("LASTSAVE").query(&mut con).unwrap();
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    assert!(redis::cmd("LASTSAVE").query::<i64>(&mut con).unwrap() >= before);
    assert_eq!(info_field(&mut con, "persistence", "rdb_changes_since_last_save"), "0");
    assert_eq!(info_field(&mut con, "persistence", "rdb_last_bgsave_status"), "ok");
    shutdown(&mut s, "NOSAVE");

    // "short" expires while the server is down.
    std::thread::sleep(Duration::from_millis(2050).saturating_sub(short_set.elapsed()));
    let s = start(&dir, &[]);
    let mut con = s.client();
    assert_eq!(con.get::<_, String>("plain").unwrap(), "hello");
    assert_eq!(con.get::<_, i64>("number").unwrap(), 42);
    assert_eq!(redis::cmd("OBJECT").arg("ENCODING").arg("number").query::<String>(&mut con).unwrap(), "int");
    assert_eq!(con.get::<_, Vec<u8>>("binary").unwrap(), b"a\0b\r\nc");
    assert_eq!(con.get::<_, String>("long").unwrap().len(), 100_000);
    let ttl: i64 = con.ttl("long").unwrap();
    assert!((990..=1000).contains(&ttl), "ttl {ttl}");
    assert_eq!(con.get::<_, Option<String>>("short").unwrap(), None);
    let _: () = redis::cmd("SELECT").arg(3).query(&mut con).unwrap();
    assert_eq!(con.get::<_, String>("in-db-3").unwrap(), "x");
    assert_eq!(info_field(&mut con, "persistence", "rdb_last_load_keys_loaded"), "6");
}

/// A snapshot of many keys, in two databases, some with expiry times and under an eviction
/// policy that keeps queues, loads (in bulk: each shard's index built at the end) with every
/// key findable, changeable and removable, and the counts right.
#[test]
fn many_keys_load_findable_from_a_snapshot() {
    const N: usize = 30_000;
    let dir = temp_dir("many");
    let policy = ["--maxmemory-policy", "allkeys-wtinylfu"];
    let mut s = start(&dir, &policy);
    let mut con = s.client();
    for db in 0..2 {
        let _: () = redis::cmd("SELECT").arg(db).query(&mut con).unwrap();
        let mut p = redis::pipe();
        for i in 0..N {
            p.cmd("SET").arg(format!("key:{db}:{i}")).arg(format!("value {i}")).ignore();
            if i % 3 == 0 {
                p.cmd("PEXPIRE").arg(format!("key:{db}:{i}")).arg(1_000_000 + i).ignore();
            }
        }
        let _: () = p.query(&mut con).unwrap();
    }
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    shutdown(&mut s, "NOSAVE");

    let s = start(&dir, &policy);
    let mut con = s.client();
    assert_eq!(info_field(&mut con, "persistence", "rdb_last_load_keys_loaded"), (2 * N).to_string());
    for db in 0..2 {
        let _: () = redis::cmd("SELECT").arg(db).query(&mut con).unwrap();
        assert_eq!(redis::cmd("DBSIZE").query::<usize>(&mut con).unwrap(), N);
        let mut p = redis::pipe();
        for i in 0..N {
            p.cmd("GET").arg(format!("key:{db}:{i}"));
            p.cmd("PTTL").arg(format!("key:{db}:{i}"));
        }
        let got: Vec<(String, i64)> = p.query(&mut con).unwrap();
        for (i, (value, ttl)) in got.into_iter().enumerate() {
            assert_eq!(value, format!("value {i}"));
            assert_eq!(ttl > 0, i % 3 == 0, "key:{db}:{i}: PTTL {ttl}");
        }
        let info = info_field(&mut con, "keyspace", &format!("db{db}"));
        assert!(info.starts_with(&format!("keys={N},expires={},", N.div_ceil(3))), "{info}");
    }
    // Every key can be changed and removed: the index and the entries agree.
    let mut p = redis::pipe();
    for i in 0..N {
        p.cmd("APPEND").arg(format!("key:1:{i}")).arg("!").ignore();
    }
    for i in (0..N).step_by(2) {
        p.cmd("DEL").arg(format!("key:1:{i}")).ignore();
    }
    let _: () = p.query(&mut con).unwrap();
    assert_eq!(redis::cmd("DBSIZE").query::<usize>(&mut con).unwrap(), N / 2);
    assert_eq!(con.get::<_, String>(format!("key:1:{}", N - 1)).unwrap(), format!("value {}!", N - 1));
    let mut cursor = 0u64;
    let mut seen = std::collections::HashSet::new();
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(1000).query(&mut con).unwrap();
        seen.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), N / 2);
}

#[test]
fn bgsave_and_the_final_snapshot_of_a_graceful_shutdown() {
    let dir = temp_dir("bgsave");
    let mut s = start(&dir, &["--save", "3600 1"]);
    let mut con = s.client();
    for i in 0..1000 {
        let _: () = con.set(format!("k{i}"), i).unwrap();
    }
    let reply: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    assert_eq!(reply, "Background saving started");
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut con, "persistence", "rdb_bgsave_in_progress") == "1" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(info_field(&mut con, "persistence", "rdb_saves"), "1");
    assert!(dir.join("dump.magpie").exists());
    // Writes after the BGSAVE reach disk through the final snapshot of SHUTDOWN.
    let _: () = con.set("late", "yes").unwrap();
    shutdown(&mut s, "");
    let s = start(&dir, &[]);
    let mut con = s.client();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 1001);
    assert_eq!(con.get::<_, String>("late").unwrap(), "yes");
}

#[test]
fn the_log_replays_effects_with_the_times_they_had() {
    let dir = temp_dir("replay");
    let mut s = start(&dir, &["--appendonly", "yes"]);
    let mut con = s.client();
    let _: () = redis::cmd("SET").arg("k").arg("v").arg("PX").arg(400).query(&mut con).unwrap();
    let _: i64 = con.append("k", "x").unwrap(); // "vx", still expiring
    let _: f64 = redis::cmd("INCRBYFLOAT").arg("f").arg("10.5").query(&mut con).unwrap();
    let _: f64 = redis::cmd("INCRBYFLOAT").arg("f").arg("0.1").query(&mut con).unwrap();
    let _: () = con.set("gone", "soon").unwrap();
    let _: bool = con.expire("gone", 1).unwrap(); // relative: logged as an absolute time
    let _: () = con.set("kept", "1").unwrap();
    let _: bool = con.expire("kept", 1000).unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    // "k" has expired by now; APPEND creates a new key without a TTL.
    let _: i64 = con.append("k", "y").unwrap();
    shutdown(&mut s, "NOSAVE");

    let s = start(&dir, &["--appendonly", "yes"]);
    let mut con = s.client();
    assert_eq!(con.get::<_, String>("k").unwrap(), "y");
    assert_eq!(con.ttl::<_, i64>("k").unwrap(), -1);
    assert_eq!(con.get::<_, String>("f").unwrap(), "10.6");
    assert_eq!(con.get::<_, Option<String>>("gone").unwrap(), None);
    let ttl: i64 = con.ttl("kept").unwrap();
    assert!((990..=1000).contains(&ttl), "ttl {ttl}");
}

/// The log's replay reads records 16 at a time (fewer past 1 MB) and warms their keys (each
/// command's second argument) first: records of two databases in turn, commands with several
/// keys (MSET) or none (FLUSHDB), values of 1.5 MB that end a window early, and a count of
/// records that does not fill the last window, all replay to the state they made.
#[test]
fn a_log_of_two_databases_and_mixed_commands_replays_whole() {
    const N: usize = 1_003;
    let dir = temp_dir("replay-mixed");
    let mut s = start(&dir, &["--appendonly", "yes"]);
    let mut con = s.client();
    for i in 0..N {
        let db = i % 2;
        let _: () = redis::cmd("SELECT").arg(db).query(&mut con).unwrap();
        let _: () = con.set(format!("k{i}"), i).unwrap();
        match i % 5 {
            0 => {
                let _: () = redis::cmd("MSET")
                    .arg(format!("m{i}"))
                    .arg("a")
                    .arg(format!("n{i}"))
                    .arg("b")
                    .query(&mut con)
                    .unwrap();
            }
            1 => {
                let _: i64 = con.incr(format!("k{}", i - 1), 10).unwrap_or(0);
            }
            2 => {
                let _: i64 = con.del(format!("k{i}")).unwrap();
            }
            _ if i % 97 == 3 => {
                let _: () = con.set(format!("big{i}"), format!("{i}").repeat(1_500_000 / 3)).unwrap();
            }
            _ => {}
        }
    }
    let _: () = redis::cmd("SELECT").arg(1).query(&mut con).unwrap();
    let _: () = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    let _: () = con.set("after", "flush").unwrap();
    let want = |con: &mut redis::Connection| {
        let mut got = Vec::new();
        for db in 0..2 {
            let _: () = redis::cmd("SELECT").arg(db).query(con).unwrap();
            let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).unwrap();
            keys.sort();
            for k in keys {
                let v: String = con.get(&k).unwrap();
                got.push((db, k, v));
            }
        }
        got
    };
    let before = want(&mut con);
    assert!(before.len() > N / 2, "{} keys", before.len());
    shutdown(&mut s, "NOSAVE");

    let s = start(&dir, &["--appendonly", "yes"]);
    let mut con = s.client();
    assert_eq!(want(&mut con), before);
}

/// Writers on several connections record every acknowledged SET; the server is killed with
/// SIGKILL at a random moment (optionally just after starting a snapshot or a rewrite); after
/// a restart every acknowledged write must be there.
/// Returns whether the job named by `during` was still running just before the kill.
fn crash_round(name: &str, seed: u64, during: Option<&str>, preload: usize) -> bool {
    let dir = temp_dir(&format!("{name}-{seed}"));
    let s = start(&dir, ALWAYS);
    let port = s.port;
    if preload > 0 {
        let mut raw = s.raw();
        let mut batch = Vec::new();
        for i in 0..preload {
            batch.extend_from_slice(&common::Raw::encode(&[b"SET", format!("pre{i}").as_bytes(), &[b'p'; 100]]));
        }
        raw.send(&batch);
        for _ in 0..preload {
            raw.read_reply();
        }
    }
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (acked, stop) = (acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else { return };
                let Ok(mut con) = client.get_connection() else { return };
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (k, v) = (format!("w{t}:{}", i % 500), format!("{t}-{i}"));
                    match con.set::<_, _, ()>(&k, &v) {
                        Ok(()) => acked.lock().expect("lock").push((k, v)),
                        Err(_) => return, // the server is gone
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let mut rng = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    rng ^= rng >> 33;
    std::thread::sleep(Duration::from_millis(100 + rng % 400));
    let mut in_progress = false;
    if let Some(cmd) = during {
        let mut con = s.client();
        let _: String = redis::cmd(cmd).query(&mut con).expect(cmd);
        std::thread::sleep(Duration::from_millis(rng % 20));
        let field = if cmd == "BGSAVE" { "rdb_bgsave_in_progress" } else { "aof_rewrite_in_progress" };
        in_progress = info_field(&mut con, "persistence", field) == "1";
    }
    drop(s); // SIGKILL
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let acked = std::mem::take(&mut *acked.lock().expect("lock"));
    assert!(acked.len() > 10, "too few writes acknowledged ({}) to test anything", acked.len());

    let s = start(&dir, ALWAYS);
    let mut con = s.client();
    // The last acknowledged value of each key (keys are rewritten, so later wins).
    let mut last = std::collections::HashMap::new();
    for (k, v) in acked {
        last.insert(k, v);
    }
    for (k, v) in &last {
        let got: Option<String> = con.get(k).expect("GET");
        // A write sent but not acknowledged may have landed after the last acknowledged one.
        let ok = match &got {
            Some(g) => {
                let (gt, gi) = g.split_once('-').expect("t-i");
                let (vt, vi) = v.split_once('-').expect("t-i");
                gt == vt && gi.parse::<u64>().ok() >= vi.parse::<u64>().ok()
            }
            None => false,
        };
        assert!(ok, "round {name}/{seed}: {k} was acknowledged as {v}, after the crash it is {got:?}");
    }
    if preload > 0 {
        assert_eq!(con.get::<_, Vec<u8>>(format!("pre{}", preload - 1)).expect("GET"), vec![b'p'; 100]);
    }
    let _ = std::fs::remove_dir_all(&dir);
    in_progress
}

#[test]
fn no_acknowledged_write_is_lost_to_a_crash() {
    for seed in 0..4 {
        crash_round("crash", seed, None, 0);
    }
}

#[test]
fn no_acknowledged_write_is_lost_to_a_crash_during_a_snapshot() {
    let mid_job = (0..3).filter(|&seed| crash_round("crash-save", seed, Some("BGSAVE"), 100_000)).count();
    assert!(mid_job > 0, "no round killed the server while its snapshot was running");
}

#[test]
fn no_acknowledged_write_is_lost_to_a_crash_during_a_rewrite() {
    let mid_job = (0..3).filter(|&seed| crash_round("crash-rewrite", seed, Some("BGREWRITEAOF"), 100_000)).count();
    assert!(mid_job > 0, "no round killed the server while its rewrite was running");
}

/// The IDs of the entries in an XREAD or XREADGROUP reply (RESP2).
fn read_ids(v: &redis::Value) -> Vec<String> {
    let mut ids = Vec::new();
    if let redis::Value::Array(streams) = v {
        for st in streams {
            let redis::Value::Array(pair) = st else { continue };
            let Some(redis::Value::Array(entries)) = pair.get(1) else { continue };
            for e in entries {
                if let redis::Value::Array(e) = e
                    && let Some(redis::Value::BulkString(id)) = e.first()
                {
                    ids.push(String::from_utf8_lossy(id).into_owned());
                }
            }
        }
    }
    ids
}

/// Producers add to a stream with automatic IDs while a consumer reads it through a group and
/// acknowledges every other entry it gets; SIGKILL at a random moment. After a restart every
/// acknowledged XADD is there, every entry delivered and not acknowledged is pending for the
/// consumer, and every acknowledged one is not.
fn stream_crash_round(seed: u64) {
    let dir = temp_dir(&format!("crash-stream-{seed}"));
    let s = start(&dir, ALWAYS);
    let port = s.port;
    lines(&mut s.raw(), &["XGROUP CREATE xs g $ MKSTREAM"]);
    type Shared = Arc<Mutex<Vec<String>>>;
    // `unsure`: the entry whose XACK was sent when the server went (it may have landed).
    let (added, delivered, acked, unsure): (Shared, Shared, Shared, Shared) = Default::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads: Vec<_> = (0..2)
        .map(|t| {
            let (added, stop) = (added.clone(), stop.clone());
            std::thread::spawn(move || {
                let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else { return };
                let Ok(mut con) = client.get_connection() else { return };
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r: redis::RedisResult<String> =
                        redis::cmd("XADD").arg("xs").arg("*").arg("t").arg(t).arg("i").arg(i).query(&mut con);
                    match r {
                        Ok(id) => added.lock().expect("lock").push(id),
                        Err(_) => return,
                    }
                    i += 1;
                }
            })
        })
        .collect();
    {
        let (delivered, acked, unsure, stop) = (delivered.clone(), acked.clone(), unsure.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else { return };
            let Ok(mut con) = client.get_connection() else { return };
            while !stop.load(Ordering::Relaxed) {
                let r: redis::RedisResult<redis::Value> = redis::cmd("XREADGROUP")
                    .arg("GROUP g c COUNT 10 STREAMS xs >".split(' ').collect::<Vec<_>>())
                    .query(&mut con);
                let Ok(v) = r else { return };
                let ids = read_ids(&v);
                delivered.lock().expect("lock").extend(ids.iter().cloned());
                for id in ids.iter().step_by(2) {
                    let r: redis::RedisResult<i64> = redis::cmd("XACK").arg("xs").arg("g").arg(id).query(&mut con);
                    match r {
                        Ok(1) => acked.lock().expect("lock").push(id.clone()),
                        Ok(n) => panic!("XACK of a delivered entry answered {n}"),
                        Err(_) => {
                            unsure.lock().expect("lock").push(id.clone());
                            return;
                        }
                    }
                }
            }
        }));
    }
    // Until enough has happened (fsyncs are slow on a busy machine), then a random moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (added.lock().expect("lock").len() < 40 || delivered.lock().expect("lock").len() < 10)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis((seed * 7919) % 300));
    drop(s); // SIGKILL
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    let (added, delivered, acked) = (
        added.lock().expect("lock").clone(),
        delivered.lock().expect("lock").clone(),
        acked.lock().expect("lock").clone(),
    );
    assert!(
        added.len() > 10 && delivered.len() > 5,
        "too little happened: {} added, {} delivered",
        added.len(),
        delivered.len()
    );

    let s = start(&dir, ALWAYS);
    let mut con = s.client();
    let all: redis::Value = redis::cmd("XRANGE").arg("xs").arg("-").arg("+").query(&mut con).expect("XRANGE");
    let present: std::collections::HashSet<String> =
        read_ids(&redis::Value::Array(vec![redis::Value::Array(vec![redis::Value::Nil, all])])).into_iter().collect();
    for id in &added {
        assert!(present.contains(id), "seed {seed}: XADD acknowledged {id}, gone after the crash");
    }
    let pending: Vec<(String, String, i64, i64)> =
        redis::cmd("XPENDING").arg("xs").arg("g").arg("-").arg("+").arg(1_000_000).query(&mut con).expect("XPENDING");
    let pending: std::collections::HashMap<String, String> = pending.into_iter().map(|(id, c, _, _)| (id, c)).collect();
    let acked: std::collections::HashSet<String> = acked.into_iter().collect();
    let unsure = unsure.lock().expect("lock").clone();
    for id in delivered.iter().filter(|id| !unsure.contains(id)) {
        if acked.contains(id) {
            assert!(!pending.contains_key(id), "seed {seed}: {id} was acknowledged, pending after the crash");
        } else {
            assert_eq!(pending.get(id).map(String::as_str), Some("c"), "seed {seed}: {id} was delivered to c");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_acknowledged_stream_write_is_lost_to_a_crash() {
    for seed in 0..3 {
        stream_crash_round(seed);
    }
}

/// Fills a log with `n` keys and stops the server cleanly.
fn log_with_keys(dir: &Path, n: usize) {
    let mut s = start(dir, ALWAYS);
    let mut con = s.client();
    for i in 0..n {
        let _: () = con.set(format!("key{i}"), format!("value{i}")).expect("SET");
    }
    shutdown(&mut s, "NOSAVE");
}

#[test]
fn a_log_cut_mid_record_loads_without_its_last_record() {
    let dir = temp_dir("torn");
    log_with_keys(&dir, 100);
    let incr = incr_file(&dir);
    let len = std::fs::metadata(&incr).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&incr).unwrap();
    f.set_len(len - 5).unwrap();
    drop(f);
    // With aof-load-truncated no, the server refuses and says what to do.
    let out = start_fails(&dir, &["--appendonly", "yes", "--aof-load-truncated", "no"]);
    assert!(out.contains("incomplete") && out.contains("--check-aof"), "{out}");
    // By default it drops the torn record (the last SET) and says how many bytes.
    let s = start(&dir, ALWAYS);
    let mut con = s.client();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 99);
    assert_eq!(con.get::<_, String>("key98").unwrap(), "value98");
    assert_eq!(con.get::<_, Option<String>>("key99").unwrap(), None);
    // New writes go after the good part.
    let _: () = con.set("after", "1").unwrap();
    drop(s);
    let s = start(&dir, ALWAYS);
    assert_eq!(s.client().get::<_, String>("after").unwrap(), "1");
}

#[test]
fn a_flipped_byte_in_the_middle_stops_the_start_and_the_check_tool_repairs_it() {
    let dir = temp_dir("flip");
    log_with_keys(&dir, 200);
    let incr = incr_file(&dir);
    let mut bytes = std::fs::read(&incr).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&incr, &bytes).unwrap();

    let out = start_fails(&dir, &["--appendonly", "yes"]);
    assert!(out.contains(incr.to_str().unwrap()) && out.contains("offset") && out.contains("corruption"), "{out}");

    let (ok, report) = run_binary(&["--check-aof", incr.to_str().unwrap()]);
    assert!(!ok && report.contains("--fix"), "{report}");
    let (ok, report) = run_binary(&["--check-aof", incr.to_str().unwrap(), "--fix"]);
    assert!(ok, "{report}");
    let backups: Vec<_> = std::fs::read_dir(incr.parent().unwrap())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".bak-"))
        .collect();
    assert_eq!(backups.len(), 1, "a backup of the damaged file is kept");
    let (ok, report) =
        run_binary(&["--check-aof", dir.join("appendonlydir/appendonly.aof.manifest").to_str().unwrap()]);
    assert!(ok, "{report}");

    let s = start(&dir, &["--appendonly", "yes"]);
    let mut con = s.client();
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert!(n > 50 && n < 200, "the keys before the damage are back ({n})");
    for i in 0..n {
        assert_eq!(con.get::<_, String>(format!("key{i}")).unwrap(), format!("value{i}"));
    }
}

#[test]
fn a_damaged_snapshot_is_refused_with_its_offset() {
    let dir = temp_dir("badsnap");
    let mut s = start(&dir, &[]);
    let mut con = s.client();
    for i in 0..2000 {
        let _: () = con.set(format!("k{i}"), "v".repeat(50)).unwrap();
    }
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    shutdown(&mut s, "NOSAVE");
    let path = dir.join("dump.magpie");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let out = start_fails(&dir, &[]);
    assert!(out.contains("dump.magpie at offset") && out.contains("--check-snapshot"), "{out}");
    let (ok, report) = run_binary(&["--check-snapshot", path.to_str().unwrap()]);
    assert!(!ok && report.contains("checksum"), "{report}");
}

#[test]
fn appendonly_can_be_turned_on_at_runtime() {
    let dir = temp_dir("runtime");
    let s = start(&dir, &[]);
    let mut con = s.client();
    for i in 0..100 {
        let _: () = con.set(format!("before{i}"), i).unwrap();
    }
    appendonly_on(&mut con);
    let _: () = con.set("after", "yes").unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("appendfsync").arg("always").query(&mut con).unwrap();
    let _: () = con.set("after-always", "yes").unwrap();
    drop(s); // crash
    let s = start(&dir, &["--appendonly", "yes"]);
    let mut con = s.client();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 102);
    assert_eq!(con.get::<_, String>("after-always").unwrap(), "yes");
}

/// Turns the log on at runtime and waits until it runs.
fn appendonly_on(con: &mut redis::Connection) {
    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("appendonly").arg("yes").query(con).expect("CONFIG SET appendonly yes");
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(con, "persistence", "aof_rewrite_in_progress") == "1"
        || info_field(con, "persistence", "aof_enabled") == "0"
    {
        assert!(Instant::now() < deadline, "the log did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Changes are counted for the save schedule (INFO's `rdb_changes_since_last_save`, Redis's
/// `dirty`) whether or not a schedule or the log is on, and the log, turned off and on again,
/// still records every write.
#[test]
fn changes_are_counted_with_or_without_a_schedule_and_the_log_survives_toggling() {
    let dir = temp_dir("dirty");
    let s = start(&dir, &[]);
    let mut con = s.client();
    let changes = |con: &mut redis::Connection| info_field(con, "persistence", "rdb_changes_since_last_save");
    let _: () = con.set("a", "1").unwrap();
    let _: () = redis::cmd("MSET").arg("b").arg("2").arg("c").arg("3").query(&mut con).unwrap();
    let _: Option<String> = con.get("a").unwrap();
    let _: i64 = con.del("nothing").unwrap();
    assert_eq!(changes(&mut con), "3");
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();
    assert_eq!(changes(&mut con), "0");
    let _: () = redis::cmd("CONFIG").arg("SET").arg("save").arg("3600 1").query(&mut con).unwrap();
    let _: () = con.set("d", "4").unwrap();
    assert_eq!(changes(&mut con), "1");
    appendonly_on(&mut con);
    let _: () = con.set("e", "5").unwrap();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("appendonly").arg("no").query(&mut con).unwrap();
    let _: () = con.set("f", "6").unwrap();
    assert_eq!(changes(&mut con), "3");
    appendonly_on(&mut con);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("appendfsync").arg("always").query(&mut con).unwrap();
    let _: () = con.set("g", "7").unwrap();
    let _: i64 = con.incr("a", 10).unwrap();
    drop(s); // crash
    let s = start(&dir, &["--appendonly", "yes"]);
    let mut con = s.client();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 7);
    assert_eq!(con.get::<_, i64>("a").unwrap(), 11);
    assert_eq!(con.get::<_, i64>("g").unwrap(), 7);
}

#[test]
fn a_failing_disk_refuses_writes_keeps_reads_and_recovers() {
    let dir = temp_dir("full");
    let port = free_port();
    let child = Command::new("prlimit")
        .arg("--fsize=300000:unlimited") // soft limit: raising it back needs no privilege
        .arg(env!("CARGO_BIN_EXE_magpie-server"))
        .args(["--port", &port.to_string(), "--http-port", "0", "--bind", "127.0.0.1", "--save", ""])
        .args(["--dir", dir.to_str().unwrap()])
        .args(ALWAYS)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prlimit (util-linux) runs the server with a file size limit");
    let pid = child.id();
    let s = Server::adopt(port, child);
    let mut con = s.client();
    // Under `always`, the write whose record could not be written is not acknowledged: it gets
    // the error at once (tests/edges.rs has the details). Later writes are refused at once.
    con.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let value = "v".repeat(1000);
    let mut acked = Vec::new();
    for i in 0..1000 {
        match con.set::<_, _, ()>(format!("k{i}"), &value) {
            Ok(()) => acked.push(i),
            Err(_) => break,
        }
    }
    assert!(acked.len() < 1000, "the file limit was never reached");
    let mut con = s.client();
    con.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let refused = con.set::<_, _, ()>("refused", "x").expect_err("writes are refused while the log cannot be written");
    assert!(refused.to_string().contains("MISCONF"), "{refused}");
    assert_eq!(info_field(&mut con, "persistence", "aof_last_write_status"), "err");
    // Reads go on.
    assert_eq!(con.get::<_, String>("k0").unwrap(), value);
    // The disk recovers: writes are accepted again.
    let status = Command::new("prlimit").args(["--pid", &pid.to_string(), "--fsize=unlimited"]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if con.set::<_, _, ()>("after", "recovery").is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(info_field(&mut con, "persistence", "aof_last_write_status"), "ok");
    drop(s);
    let s = start(&dir, ALWAYS);
    let mut con = s.client();
    for i in acked {
        assert_eq!(con.get::<_, String>(format!("k{i}")).unwrap(), value);
    }
    assert_eq!(con.get::<_, String>("after").unwrap(), "recovery");
}

#[test]
fn a_snapshot_that_cannot_be_written_refuses_writes_until_one_can() {
    let dir = temp_dir("snapfull");
    let port = free_port();
    let child = Command::new("prlimit")
        .arg("--fsize=200000:unlimited")
        .arg(env!("CARGO_BIN_EXE_magpie-server"))
        .args(["--port", &port.to_string(), "--http-port", "0", "--bind", "127.0.0.1", "--dir", dir.to_str().unwrap()])
        .args(["--save", "3600 1"]) // snapshots configured (so a failed one stops writes), none due
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prlimit (util-linux) runs the server with a file size limit");
    let pid = child.id();
    let mut s = Server::adopt(port, child);
    let mut con = s.client();
    let value = "v".repeat(1000);
    for i in 0..500 {
        let _: () = con.set(format!("k{i}"), &value).unwrap();
    }
    let wait_bgsave = |con: &mut redis::Connection| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while info_field(con, "persistence", "rdb_bgsave_in_progress") != "0" {
            assert!(Instant::now() < deadline, "BGSAVE did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
        info_field(con, "persistence", "rdb_last_bgsave_status")
    };
    let _: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    assert_eq!(wait_bgsave(&mut con), "err");
    // Writes are refused, reads go on, and nothing half written is left behind.
    let refused = con.set::<_, _, ()>("refused", "x").expect_err("writes are refused after a failed snapshot");
    assert!(refused.to_string().contains("MISCONF"), "{refused}");
    assert_eq!(con.get::<_, String>("k0").unwrap(), value);
    let files: Vec<_> =
        std::fs::read_dir(&dir).unwrap().filter_map(std::result::Result::ok).map(|e| e.file_name()).collect();
    assert!(files.is_empty(), "files left by the failed snapshot: {files:?}");
    // The disk has room again: the next snapshot succeeds and writes resume.
    let status = Command::new("prlimit").args(["--pid", &pid.to_string(), "--fsize=unlimited"]).status().unwrap();
    assert!(status.success());
    let _: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    assert_eq!(wait_bgsave(&mut con), "ok");
    let _: () = con.set("after", "recovery").unwrap();
    shutdown(&mut s, "SAVE");
    let s = start(&dir, &["--save", "3600 1"]);
    let mut con = s.client();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 501);
    assert_eq!(con.get::<_, String>("after").unwrap(), "recovery");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Every data type through every way of persisting it.

/// Sends one command, whose arguments may be empty or binary, and returns its raw reply.
fn raw_cmd(c: &mut Raw, args: &[&[u8]]) -> String {
    String::from_utf8_lossy(&c.cmd(args)).into_owned()
}

/// Sends `head` followed by `items` as one command; checks the reply is not an error.
fn cmd_with(c: &mut Raw, head: &[&str], items: impl IntoIterator<Item = String>) {
    let items: Vec<String> = items.into_iter().collect();
    let mut args: Vec<&[u8]> = head.iter().map(|a| a.as_bytes()).collect();
    args.extend(items.iter().map(std::string::String::as_bytes));
    let r = raw_cmd(c, &args);
    assert!(!r.starts_with('-'), "{head:?}: {r}");
}

/// Runs each line (split on spaces), checking none fails.
fn lines(c: &mut Raw, lines: &[&str]) {
    for line in lines {
        let r = c.cmd_str(line);
        assert!(!r.starts_with('-'), "{line}: {r}");
    }
}

/// Encodes each line (split on spaces) as a command, for one pipelined write: the bytes, and
/// how many commands they hold.
fn pipeline(lines: impl IntoIterator<Item = String>) -> (Vec<u8>, usize) {
    let (mut bytes, mut n) = (Vec::new(), 0);
    for line in lines {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        bytes.extend_from_slice(&Raw::encode(&args));
        n += 1;
    }
    (bytes, n)
}

/// Reads `n` replies, checking none is an error.
fn replies_ok(c: &mut Raw, n: usize) {
    for _ in 0..n {
        let r = reply(c);
        assert!(!r.starts_with('-'), "{r}");
    }
}

/// Strings, integers, lists, hashes, sets and sorted sets in their small and big encodings,
/// binary and empty elements, awkward scores, expiry times, in several databases.
fn write_every_type(c: &mut Raw) {
    let far = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_secs()
        + 86_400)
        .to_string();
    for db in ["0", "1", "5", "15"] {
        lines(c, &[&format!("SELECT {db}")]);
        // Strings and integers.
        raw_cmd(c, &[b"SET", b"bin", b"a\0b\r\nc\xff"]);
        raw_cmd(c, &[b"SET", b"empty", b""]);
        raw_cmd(c, &[b"SET", b"long", "x".repeat(100_000).as_bytes()]);
        lines(
            c,
            &[
                "SET plain hello",
                "SET int 42",
                "SET min -9223372036854775808",
                "SET padded 007",
                "SET float 3.14",
                "INCR counter",
                "INCRBY counter 41",
                "APPEND plain !",
                "SETRANGE padded 5 x",
                "SET ttl-str v EX 100000",
                "SETEX ttl-str2 5000 w",
                "SET persisted v EX 100",
                "PERSIST persisted",
            ],
        );
        // Lists: small, and big (many chunks), changed inside.
        raw_cmd(c, &[b"RPUSH", b"lsmall", b"a", b"", b"\x00\r\n", b"1", b"-2"]);
        for batch in 0..4 {
            cmd_with(c, &["RPUSH", "lbig"], (0..500).map(|i| format!("{batch}:{i}:{}", "e".repeat(100))));
        }
        lines(
            c,
            &["LSET lbig 700 changed", "LINSERT lbig BEFORE changed inserted", "LPUSH lbig head", "EXPIRE lbig 100000"],
        );
        // Hashes: small, big, and small with a long value (the general encoding).
        raw_cmd(c, &[b"HSET", b"hsmall", b"f1", b"v1", b"f2", b"", b"n", b"5", b"", b"empty-field"]);
        cmd_with(c, &["HSET", "hbig"], (0..600).flat_map(|i| [format!("field{i}"), format!("value{i}")]));
        cmd_with(c, &["HSET", "hmid"], (0..200).flat_map(|i| [format!("field{i}"), format!("value{i}")]));
        cmd_with(c, &["HSET", "hlong", "f"], ["v".repeat(100)]);
        lines(c, &["HDEL hbig field7", "HINCRBY hsmall n 10", &format!("EXPIREAT hbig {far}")]);
        // Sets: integers (intset), small, big, big integers.
        lines(c, &["SADD sint 1 2 3 -5 9223372036854775807 -9223372036854775808", "PEXPIRE sint 90000000"]);
        raw_cmd(c, &[b"SADD", b"ssmall", b"a", b"b", b"", b"\x00"]);
        cmd_with(c, &["SADD", "sbig"], (0..1000).map(|i| format!("member{i}")));
        cmd_with(c, &["SADD", "sbigint"], (0..600).map(|i| (i * 7 - 2000).to_string()));
        lines(c, &["SREM sbig member3 member500"]);
        // Sorted sets: small and big, with scores that are hard to write and read back.
        lines(c, &["ZADD zsmall 0.1 a -0 b inf c 1e300 d -inf e 1.5 f 3 g 5e-324 h -2.5e-10 i"]);
        cmd_with(c, &["ZADD", "zbig"], (0..300).flat_map(|i| [format!("{}", f64::from(i) * 0.1), format!("m{i}")]));
        lines(c, &["ZADD zbig -0 negzero inf top 1e300 huge -inf bottom 0.1 tenth 5e-324 tiny 9007199254740993 big"]);
        cmd_with(c, &["ZADD", "zlong", "1"], ["m".repeat(100)]);
        raw_cmd(c, &[b"ZADD", b"zsmall", b"7", b"", b"8", b"\x00\r\n"]);
        lines(c, &["ZREM zbig m5", "ZINCRBY zbig 0.25 m6", "PEXPIRE zbig 5000000"]);
        write_streams(c);
    }
    lines(c, &["SELECT 0"]);
}

/// Streams: small and of many nodes, with tombstones, trimmed, with consumer groups whose
/// pending entries belong to several consumers, an empty stream with a group, and counters
/// set by XSETID.
fn write_streams(c: &mut Raw) {
    raw_cmd(c, &[b"XADD", b"xsmall", b"1-1", b"f", b"v", b"", b"\x00\r\n"]);
    lines(c, &["XADD xsmall 1-2 f 42", "XADD xsmall 2-* g -7", "XSETID xsmall 5-0 ENTRIESADDED 10 MAXDELETEDID 1-5"]);
    for batch in 0..3u64 {
        let (bytes, n) = pipeline((0..150u64).map(|i| {
            let id = batch * 1000 + i + 1;
            match i % 3 {
                0 => format!("XADD xbig {id}-0 field {id} other {}", "o".repeat((i % 70) as usize)),
                1 => format!("XADD xbig {id}-0 field {id}"),
                _ => format!("XADD xbig {id}-{} n {} m {}", i % 5, i * 7, "v".repeat(100)),
            }
        }));
        c.send(&bytes);
        replies_ok(c, n);
    }
    lines(
        c,
        &[
            "XDEL xbig 1-0 2-0 50-0 1001-0",
            "XTRIM xbig MINID 3-0",
            "XGROUP CREATE xbig g1 0",
            "XGROUP CREATE xbig g2 $ ENTRIESREAD 5",
            "XGROUP CREATE xbig g3 1000-0",
            "XREADGROUP GROUP g1 alice COUNT 10 STREAMS xbig >",
            "XREADGROUP GROUP g1 bob COUNT 5 STREAMS xbig >",
            "XREADGROUP GROUP g1 carol NOACK COUNT 5 STREAMS xbig >",
            "XREADGROUP GROUP g3 alice COUNT 3 STREAMS xbig >",
            "XACK xbig g1 4-0 5-0",
            "XCLAIM xbig g1 dave 0 6-0 7-0 RETRYCOUNT 5",
            "XGROUP CREATECONSUMER xbig g1 idle",
            "XDEL xbig 8-0",
            "EXPIRE xbig 100000",
            "XGROUP CREATE xempty g 0 MKSTREAM",
            "XGROUP CREATECONSUMER xempty g c",
        ],
    );
}

/// Commands whose arguments do not determine their effect: each is logged as what it did, so
/// that a replay gives back the same keyspace. Blocking commands are served both at once and
/// by a later write (from another connection, in other databases too).
fn write_nondeterministic(server: &Server, c: &mut Raw) {
    for db in ["0", "3"] {
        lines(c, &[&format!("SELECT {db}")]);
        let mut waiter = server.raw();
        lines(&mut waiter, &[&format!("SELECT {db}")]);
        cmd_with(c, &["SADD", "sp"], (1..=40).map(|i| i.to_string()));
        cmd_with(c, &["SADD", "spbig"], (0..700).map(|i| format!("x{i}")));
        cmd_with(c, &["SADD", "spsmall"], (0..20).map(|i| format!("s{i}")));
        lines(
            c,
            &[
                "SPOP sp",
                "SPOP sp 5",
                "SPOP spbig 20",
                "SPOP spbig",
                "SPOP spsmall 3",
                "SADD spall a b c",
                "SPOP spall 10",
                "SPOP none 2",
                "SRANDMEMBER sp 3",
                "SRANDMEMBER spbig -10",
                "HSET hf f 1",
                "EXPIRE hf 100000",
                "HINCRBYFLOAT hf f 10.5",
                "HINCRBYFLOAT hf f 0.1",
                "HINCRBYFLOAT hf g 1e-3",
                "INCRBYFLOAT fl 0.1",
                "INCRBYFLOAT fl 0.2",
                "ZADD zi INCR 0.1 m",
                "ZADD zi INCR 0.2 m",
                "ZADD zi INCR 1e300 n",
                "ZINCRBY zi 0.1 n",
                "ZADD zi GT CH INCR 1 m",
                "RPUSH lm 1 2 3 4 5",
                "LMPOP 2 none lm LEFT COUNT 2",
                "LMPOP 1 lm RIGHT",
                "ZADD zm 1 a 2 b 3 c 4 d 5 e",
                "ZMPOP 1 zm MAX COUNT 2",
                "ZMPOP 2 none zm MIN",
                "BZPOPMIN zm 0",
                "BZPOPMAX zm none 0",
                "BLPOP lm 0",
                "BRPOPLPUSH lm moved 0",
                "BZPOPMIN none 0.01",
            ],
        );
        // Streams: automatic IDs, approximate trims, and group reads, claims and deletions
        // whose effect depends on what was there.
        let (bytes, n) = pipeline((0..300).map(|i| format!("XADD xauto MAXLEN ~ 120 * n {i}")));
        c.send(&bytes);
        replies_ok(c, n);
        lines(
            c,
            &[
                "XADD xauto MINID ~ 0 * last entry",
                "XTRIM xauto MAXLEN ~ 50",
                "XGROUP CREATE xauto g 0",
                "XREADGROUP GROUP g a COUNT 20 STREAMS xauto >",
                "XREADGROUP GROUP g b COUNT 10 NOACK STREAMS xauto >",
                "XREADGROUP GROUP g a COUNT 3 STREAMS xauto 0",
                "XAUTOCLAIM xauto g c 0 0 COUNT 5",
                "XGROUP CREATE xauto h 0",
                "XREADGROUP GROUP h z COUNT 4 STREAMS xauto >",
                "XTRIM xauto MAXLEN 30",
                "XAUTOCLAIM xauto h y 0 0",
                "XCLAIM xauto g d 0 0-1 FORCE",
            ],
        );
        // Served by a later write from another connection.
        lines(c, &["XGROUP CREATE bx bg $ MKSTREAM"]);
        let later: [(&str, &str); 7] = [
            ("BLPOP bq 0", "LPUSH bq a b c"),
            ("BZPOPMIN bz 0", "ZADD bz 3 c 1 a 2 b"),
            ("BZMPOP 0 2 none bz2 MAX COUNT 2", "ZUNIONSTORE bz2 2 zsmall bz"),
            ("BLMOVE bm bmdst RIGHT LEFT 0", "RPUSH bm x y z"),
            ("BLMPOP 0 1 bl RIGHT COUNT 2", "RPUSH bl 1 2 3"),
            ("XREADGROUP GROUP bg reader BLOCK 0 STREAMS bx >", "XADD bx 5-5 f v"),
            ("XREAD BLOCK 0 STREAMS bx $", "XADD bx 6-6 f v"),
        ];
        for (wait, feed) in later {
            send(&mut waiter, wait);
            wait_blocked(c, 1);
            lines(c, &[feed]);
            let r = reply(&mut waiter);
            assert!(r.starts_with('*') || r.starts_with('$'), "{wait}: {r}");
            wait_blocked(c, 0);
        }
    }
    lines(c, &["SELECT 0"]);
}

/// Every key of every database that holds any: type, expiry time, encoding and full content
/// (hash pairs and set members sorted), one line each.
fn dump(server: &Server) -> Vec<String> {
    let mut con = server.client();
    let mut out = Vec::new();
    for db in 0..16 {
        let _: () = redis::cmd("SELECT").arg(db).query(&mut con).expect("SELECT");
        let mut keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut con).expect("KEYS");
        if keys.is_empty() {
            continue;
        }
        keys.sort();
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("TYPE").arg(key).cmd("PEXPIRETIME").arg(key).cmd("OBJECT").arg("ENCODING").arg(key);
        }
        let meta: Vec<(String, i64, String)> = pipe.query(&mut con).expect("TYPE, PEXPIRETIME, OBJECT ENCODING");
        let mut pipe = redis::pipe();
        for (key, (kind, _, _)) in keys.iter().zip(&meta) {
            match kind.as_str() {
                "string" => pipe.cmd("MGET").arg(key),
                "list" => pipe.cmd("LRANGE").arg(key).arg(0).arg(-1),
                "hash" => pipe.cmd("HGETALL").arg(key),
                "set" => pipe.cmd("SMEMBERS").arg(key),
                "zset" => pipe.cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES"),
                // Read below, on its own: nested replies.
                "stream" => pipe.cmd("ECHO").arg("stream"),
                other => panic!("unexpected type {other}"),
            };
        }
        let contents: Vec<Vec<Vec<u8>>> = pipe.query(&mut con).expect("contents");
        for ((key, (kind, expires, encoding)), mut content) in keys.iter().zip(meta).zip(contents) {
            if kind == "stream" {
                content = vec![stream_dump(&mut con, key).into_bytes()];
            }
            match kind.as_str() {
                "hash" => {
                    content = content.chunks(2).map(|p| [p[0].as_slice(), b" => ", p[1].as_slice()].concat()).collect();
                    content.sort();
                }
                "set" => content.sort(),
                _ => {}
            }
            let content: Vec<String> = content.iter().map(|c| format!("{:?}", String::from_utf8_lossy(c))).collect();
            out.push(format!(
                "db{db} {:?} {kind} expires={expires} {encoding} [{}]",
                String::from_utf8_lossy(key),
                content.join(", ")
            ));
        }
    }
    out
}

/// A reply as text, for comparing; the integers at `drop` positions of each innermost array
/// (times that a replay does not restore: idle times) left out.
fn show_value(v: &redis::Value, drop: &[usize]) -> String {
    match v {
        redis::Value::Array(items) if items.iter().all(|i| !matches!(i, redis::Value::Array(_))) => {
            let kept: Vec<String> =
                items.iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, x)| show_value(x, drop)).collect();
            format!("[{}]", kept.join(" "))
        }
        redis::Value::Array(items) => {
            format!("[{}]", items.iter().map(|x| show_value(x, drop)).collect::<Vec<_>>().join(" "))
        }
        redis::Value::BulkString(b) => format!("{:?}", String::from_utf8_lossy(b)),
        other => format!("{other:?}"),
    }
}

/// A stream's entries, counters and node shape, its groups and each group's pending entries
/// and consumers: everything but the times a log replay sets anew (seen and delivery times).
fn stream_dump(con: &mut redis::Connection, key: &[u8]) -> String {
    let query = |con: &mut redis::Connection, cmd: &mut redis::Cmd| -> redis::Value { cmd.query(con).expect("stream") };
    let entries = query(con, redis::cmd("XRANGE").arg(key).arg("-").arg("+"));
    let info = query(con, redis::cmd("XINFO").arg("STREAM").arg(key));
    let groups = query(con, redis::cmd("XINFO").arg("GROUPS").arg(key));
    let mut out = format!("{} {} {}", show_value(&entries, &[]), show_value(&info, &[]), show_value(&groups, &[]));
    let redis::Value::Array(list) = &groups else { return out };
    for g in list {
        let redis::Value::Array(fields) = g else { continue };
        let Some(redis::Value::BulkString(name)) = fields.get(1) else { continue };
        let pending = query(con, redis::cmd("XPENDING").arg(key).arg(name).arg("-").arg("+").arg(1_000_000));
        let consumers = query(con, redis::cmd("XINFO").arg("CONSUMERS").arg(key).arg(name));
        // XPENDING's idle time is third; XINFO CONSUMERS' is the last pair.
        out.push_str(&format!(" {} {}", show_value(&pending, &[2]), show_value(&consumers, &[4, 5])));
    }
    out
}

/// Asserts two dumps are equal, naming the first keys that differ.
fn assert_same(before: &[String], after: &[String], what: &str) {
    if before == after {
        return;
    }
    let short = |s: &str| s.chars().take(300).collect::<String>();
    let missing: Vec<String> = before.iter().filter(|l| !after.contains(l)).take(5).map(|l| short(l)).collect();
    let extra: Vec<String> = after.iter().filter(|l| !before.contains(l)).take(5).map(|l| short(l)).collect();
    panic!(
        "{what}: {} keys before, {} after\nbefore, not after:\n  {}\nafter, not before:\n  {}",
        before.len(),
        after.len(),
        missing.join("\n  "),
        extra.join("\n  ")
    );
}

fn wait_rewrite(server: &Server) {
    let mut con = server.client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while info_field(&mut con, "persistence", "aof_rewrite_in_progress") == "1" {
        assert!(Instant::now() < deadline, "the rewrite did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn every_type_survives_a_snapshot() {
    let dir = temp_dir("types-snapshot");
    let s = start(&dir, &[]);
    let mut c = s.raw();
    write_every_type(&mut c);
    write_nondeterministic(&s, &mut c);
    let before = dump(&s);
    // The fixture holds what it says it holds.
    let encodings = [
        ("string", "int"),
        ("string", "embstr"),
        ("string", "raw"),
        ("list", "quicklist"),
        ("hash", "listpack"),
        ("hash", "hashtable"),
        ("set", "intset"),
        ("set", "hashtable"),
        ("zset", "listpack"),
        ("zset", "skiplist"),
        ("stream", "stream"),
    ];
    for (kind, encoding) in encodings {
        let found =
            before.iter().any(|l| l.contains(&format!(" {kind} expires=")) && l.contains(&format!(" {encoding} [")));
        assert!(found, "no {kind} encoded as {encoding}");
    }
    assert!(before.iter().filter(|l| !l.contains("expires=-1")).count() >= 4 * 6);
    for db in ["db0 ", "db1 ", "db3 ", "db5 ", "db15 "] {
        assert!(before.iter().any(|l| l.starts_with(db)), "nothing in {db}");
    }
    assert_eq!(c.cmd_str("SAVE"), "+OK\r\n");
    drop((c, s)); // SIGKILL
    let s = start(&dir, &[]);
    assert_same(&before, &dump(&s), "after SAVE and a restart");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_type_survives_a_crash_with_the_log() {
    let dir = temp_dir("types-log");
    let s = start(&dir, ALWAYS);
    let mut c = s.raw();
    write_every_type(&mut c);
    write_nondeterministic(&s, &mut c);
    let before = dump(&s);
    drop((c, s)); // SIGKILL
    let s = start(&dir, ALWAYS);
    assert_same(&before, &dump(&s), "after SIGKILL and replaying the log");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_type_survives_a_rewrite_more_writes_and_a_crash() {
    let dir = temp_dir("types-rewrite");
    let s = start(&dir, ALWAYS);
    let mut c = s.raw();
    write_every_type(&mut c);
    // Enough keys that the rewrite's walk takes a while: the changes below land on keys it
    // has written and on keys it has not reached yet.
    const PRELOAD: usize = 10_000;
    let (batch, sent) = pipeline((0..PRELOAD).flat_map(|i| {
        [
            format!("RPUSH pre:l:{i} a b c"),
            format!("HSET pre:h:{i} f0 a f1 b"),
            format!("ZADD pre:z:{i} 0 m0 1 m1 2 m2"),
            format!("SADD pre:s:{i} a b {i}"),
        ]
    }));
    c.send(&batch);
    replies_ok(&mut c, sent);
    // Writes while the rewrite runs (sent with it, so that they start while it walks the
    // keys), and after it.
    let (changes, sent) = pipeline((0..PRELOAD).rev().step_by(3).flat_map(|i| {
        [
            format!("RPUSH pre:l:{i} d"),
            format!("LPOP pre:l:{}", i / 2),
            format!("HDEL pre:h:{i} f0"),
            format!("ZADD pre:z:{i} INCR 0.5 m0"),
            format!("ZPOPMAX pre:z:{}", i / 2),
            format!("SPOP pre:s:{i}"),
            format!("DEL pre:s:{}", i / 3),
        ]
    }));
    c.send(&[Raw::encode(&[b"BGREWRITEAOF"]), Raw::encode(&[b"INFO", b"persistence"]), changes].concat());
    assert!(reply(&mut c).starts_with('+'));
    assert!(reply(&mut c).contains("aof_rewrite_in_progress:1"), "the rewrite was over before the writes");
    replies_ok(&mut c, sent);
    write_nondeterministic(&s, &mut c);
    wait_rewrite(&s);
    lines(&mut c, &["SELECT 5", "ZADD zsmall 42 after", "RPUSH lbig tail", "SPOP sbig 5", "DEL hlong", "SELECT 0"]);
    let before = dump(&s);
    drop((c, s)); // SIGKILL
    let s = start(&dir, ALWAYS);
    assert_same(&before, &dump(&s), "after BGREWRITEAOF, more writes, SIGKILL and a restart");
    // Once more from the rewritten base alone.
    let mut c = s.raw();
    assert!(c.cmd_str("BGREWRITEAOF").starts_with('+'));
    wait_rewrite(&s);
    drop((c, s));
    let s = start(&dir, ALWAYS);
    assert_same(&before, &dump(&s), "after a second rewrite and a crash");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Keys that expire (reclaimed by the active cycle, or found expired by a write) and come back
/// as another type: the log says they were deleted, so the replay (whose clock stands still)
/// does not trip over the old values.
#[test]
fn keys_that_expire_and_return_as_another_type_replay() {
    let dir = temp_dir("types-expired");
    let s = start(&dir, ALWAYS);
    let mut c = s.raw();
    let make = ["SET s v", "RPUSH l a", "ZADD z 1 m", "SADD st a", "HSET h f v"];
    let remake = ["RPUSH s x", "ZADD l 1 x", "HSET z f v", "SET st now-a-string", "SADD h m"];
    // Reclaimed by the active cycle (DBSIZE counts expired keys until they are reclaimed).
    lines(&mut c, &make);
    lines(&mut c, &["PEXPIRE s 30", "PEXPIRE l 30", "PEXPIRE z 30", "PEXPIRE st 30", "PEXPIRE h 30"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.cmd_str("DBSIZE") != ":0\r\n" {
        assert!(Instant::now() < deadline, "the keys were not reclaimed");
        std::thread::sleep(Duration::from_millis(20));
    }
    lines(&mut c, &remake);
    // Found expired by the writes themselves (mostly: the cycle may get to some first).
    lines(&mut c, &["SELECT 2"]);
    lines(&mut c, &make);
    lines(&mut c, &["PEXPIRE s 20", "PEXPIRE l 20", "PEXPIRE z 20", "PEXPIRE st 20", "PEXPIRE h 20"]);
    std::thread::sleep(Duration::from_millis(30));
    lines(&mut c, &remake);
    // Times already past: the key goes at once.
    lines(&mut c, &["SELECT 4"]);
    lines(
        &mut c,
        &[
            "SET a v EXAT 1",
            "RPUSH a x",
            "SET b v",
            "EXPIRE b -5",
            "ZADD b 1 m",
            "SET c v",
            "GETEX c PXAT 1",
            "SADD c m",
            "RPUSH d x",
            "PEXPIREAT d 0",
            "HSET d f v",
            "SET e v",
            "SET e w EXAT 1 GET",
            "LPUSH e y",
        ],
    );
    lines(&mut c, &["SET kept v PX 30000"]);
    let before = dump(&s);
    assert_eq!(before.len(), 16, "{before:?}");
    drop((c, s));
    let s = start(&dir, ALWAYS);
    assert_same(&before, &dump(&s), "after replaying expired keys that came back");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_log_is_rewritten_automatically_when_it_grows() {
    let dir = temp_dir("autorewrite");
    let args = ["--appendonly", "yes", "--auto-aof-rewrite-min-size", "64kb", "--auto-aof-rewrite-percentage", "100"];
    let mut s = start(&dir, &args);
    let mut con = s.client();
    let first: u64 = info_field(&mut con, "persistence", "aof_rewrites").parse().unwrap();
    // Overwrite the same keys: the log grows, the data does not.
    for round in 0..20 {
        for i in 0..100 {
            let _: () = con.set(format!("k{i}"), format!("{round}-{}", "x".repeat(100))).unwrap();
        }
    }
    // A rewrite may have started while the writes went on, and the writes after it grown the
    // log again: wait until the server is idle with a log that was rewritten and is small.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rewrites: u64 = info_field(&mut con, "persistence", "aof_rewrites").parse().unwrap();
        let running = info_field(&mut con, "persistence", "aof_rewrite_in_progress");
        let size: u64 = info_field(&mut con, "persistence", "aof_current_size").parse().unwrap();
        if rewrites > first && running == "0" && size < 100_000 {
            break;
        }
        assert!(Instant::now() < deadline, "{rewrites} rewrites (from {first}), the log is {size} bytes");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _: () = con.set("after", "rewrite").unwrap();
    shutdown(&mut s, "NOSAVE");
    let s = start(&dir, &args);
    let mut con = s.client();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 101);
    assert_eq!(con.get::<_, String>("k99").unwrap(), format!("19-{}", "x".repeat(100)));
    assert_eq!(con.get::<_, String>("after").unwrap(), "rewrite");
}
