//! Moving data between Redis and Magpie, against a real redis-server 7.0: RESTORE of
//! redis-server's DUMP payloads into Magpie and the reverse, for every type and encoding;
//! `magpie-server --import-rdb` of a redis-server SAVE; `magpie export --format rdb` loaded by
//! redis-server. Each compares what both servers then hold, key by key, through the type's own
//! read commands (TYPE, GET, LRANGE, SMEMBERS, HGETALL, ZRANGE WITHSCORES, PFCOUNT, TTL).
//!
//! `#[ignore]`d like the other tests that need redis-server:
//! `MAGPIE_REQUIRE_REDIS=1 cargo test -p magpie-server --test rdb_moves -- --ignored`

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Server;
use redis::{Connection, Value as RV};

/// Commands that make one key of every type and encoding (in database 0, and a few in 3).
fn dataset() -> Vec<Vec<String>> {
    let mut c: Vec<Vec<String>> = Vec::new();
    let mut cmd = |s: &str| c.push(s.split(' ').map(str::to_owned).collect());
    cmd("SET str:small hello");
    cmd("SET str:int 12345");
    cmd("SET str:neg -9223372036854775808");
    cmd("SET str:long aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    cmd("SET str:ttl expiring");
    cmd("PEXPIRE str:ttl 5000000");
    cmd("SETBIT bits 1000 1");
    cmd("SETBIT bits 7 1");
    cmd("PFADD hll:sparse a b c d e f g");
    cmd("RPUSH list:small a b c 1 2 3 -100 99999999999");
    cmd("SADD set:int 1 2 3 -5 100000 9999999999");
    cmd("SADD set:str apple banana cherry");
    cmd("HSET hash:small f1 v1 f2 2 f3 three");
    cmd("ZADD zset:small 1 a 2.5 b -3 c 1e10 d");
    cmd("GEOADD geo 13.361389 38.115556 Palermo 15.087269 37.502669 Catania");
    cmd("EXPIRE geo 900000");
    cmd("XADD stream:small 1-1 f1 v1");
    cmd("XADD stream:small 2-0 f2 v2 f3 3");
    cmd("XADD stream:small 5-7 f1 again");
    cmd("XDEL stream:small 2-0");
    cmd("XGROUP CREATE stream:small g1 0");
    cmd("XGROUP CREATE stream:small g2 $");
    cmd("XREADGROUP GROUP g1 alice COUNT 1 STREAMS stream:small >");
    cmd("XGROUP CREATECONSUMER stream:small g1 bob");
    let mut big = |prefix: &str, n: usize, f: &dyn Fn(usize) -> String| {
        for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
            let mut v = vec![prefix.to_owned()];
            for &i in chunk {
                v.push(f(i));
            }
            c.push(v);
        }
    };
    big("RPUSH list:big", 3000, &|i| format!("element-{i}-{}", "x".repeat(i % 50)));
    big("SADD set:big", 700, &|i| format!("member{i}"));
    big("SADD set:bigint", 600, &|i| (i * 7).to_string());
    big("HSET hash:big", 300, &|i| format!("field{i} value{i}"));
    big("ZADD zset:big", 300, &|i| format!("{} m{i}", i as f64 / 3.0));
    big("PFADD hll:dense", 4000, &|i| format!("e{i}"));
    for i in 0..700 {
        c.push(vec![format!("XADD stream:big {}-{} field{i} {}", 1000 + i / 3, i % 3, "v".repeat(i % 40 + 1))]);
    }
    c.push(vec!["XGROUP CREATE stream:big readers 0".into()]);
    c.push(vec!["XREADGROUP GROUP readers r1 COUNT 250 STREAMS stream:big >".into()]);
    c.push(vec!["XACK stream:big readers 1000-0 1001-1 1002-2".into()]);
    let mut c = c.into_iter().map(|v| v.join(" ")).collect::<Vec<_>>();
    c.extend(["SELECT 3", "SET other:db here", "RPUSH other:list z", "SELECT 0"].map(str::to_owned));
    c.into_iter().map(|s| s.split(' ').map(str::to_owned).collect()).collect()
}

fn run(conn: &mut Connection, args: &[String]) -> RV {
    let mut c = redis::cmd(&args[0]);
    for a in &args[1..] {
        c.arg(a);
    }
    c.query::<RV>(conn).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn populate(conn: &mut Connection) {
    for args in dataset() {
        run(conn, &args);
    }
}

fn text(v: &RV) -> String {
    match v {
        RV::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        RV::SimpleString(s) => s.clone(),
        RV::Int(n) => n.to_string(),
        RV::Nil => "(nil)".into(),
        RV::Okay => "OK".into(),
        RV::Array(items) | RV::Set(items) => format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(",")),
        other => format!("{other:?}"),
    }
}

fn q(conn: &mut Connection, args: &[&str]) -> RV {
    run(conn, &args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

/// What a server holds in databases 0 and 3, key by key, read through each type's commands.
fn describe(conn: &mut Connection) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for db in [0, 3] {
        q(conn, &["SELECT", &db.to_string()]);
        let RV::Array(keys) = q(conn, &["KEYS", "*"]) else { panic!("KEYS") };
        for k in keys.iter().map(text) {
            let t = text(&q(conn, &["TYPE", &k]));
            let mut content = match t.as_str() {
                "string" if k.starts_with("hll") => text(&q(conn, &["PFCOUNT", &k])),
                "string" => text(&q(conn, &["GET", &k])),
                "list" => text(&q(conn, &["LRANGE", &k, "0", "-1"])),
                "set" => {
                    let RV::Array(mut m) = q(conn, &["SMEMBERS", &k]) else { panic!() };
                    m.sort_by_key(text);
                    text(&RV::Array(m))
                }
                "hash" => {
                    let RV::Array(m) = q(conn, &["HGETALL", &k]) else { panic!() };
                    let mut pairs: Vec<String> =
                        m.chunks(2).map(|p| format!("{}={}", text(&p[0]), text(&p[1]))).collect();
                    pairs.sort();
                    pairs.join(",")
                }
                "zset" => text(&q(conn, &["ZRANGE", &k, "0", "-1", "WITHSCORES"])),
                // Entries, and each group's read position, counter, lag and pending count.
                "stream" => format!(
                    "{} {} {}",
                    text(&q(conn, &["XRANGE", &k, "-", "+"])),
                    text(&q(conn, &["XINFO", "GROUPS", &k])),
                    text(&q(conn, &["XLEN", &k])),
                ),
                other => panic!("unexpected type {other} for {k}"),
            };
            // Whether it expires, not the exact time left.
            let ttl = match q(conn, &["PTTL", &k]) {
                RV::Int(n) if n > 0 => "ttl",
                _ => "",
            };
            content.push_str(&format!(" ({t}{ttl})"));
            all.insert(format!("{db}/{k}"), content);
        }
    }
    q(conn, &["SELECT", "0"]);
    all
}

/// Copies every key of `from` into `to` with DUMP, PTTL and RESTORE.
fn copy_with_dump(from: &mut Connection, to: &mut Connection) -> usize {
    let mut n = 0;
    for db in [0, 3] {
        q(from, &["SELECT", &db.to_string()]);
        q(to, &["SELECT", &db.to_string()]);
        let RV::Array(keys) = q(from, &["KEYS", "*"]) else { panic!() };
        for k in keys.iter().map(text) {
            let RV::BulkString(payload) = q(from, &["DUMP", &k]) else { panic!("DUMP {k}") };
            let ttl = match q(from, &["PTTL", &k]) {
                RV::Int(n) if n > 0 => n,
                _ => 0,
            };
            let reply: RV = redis::cmd("RESTORE")
                .arg(&k)
                .arg(ttl)
                .arg(payload)
                .query(to)
                .unwrap_or_else(|e| panic!("RESTORE {k}: {e}"));
            assert_eq!(text(&reply), "OK");
            n += 1;
        }
    }
    q(from, &["SELECT", "0"]);
    q(to, &["SELECT", "0"]);
    n
}

#[test]
#[ignore = "needs redis-server; run with --ignored"]
fn restore_of_redis_payloads_and_the_reverse() {
    let Some(redis) = Server::redis() else { return };
    let magpie = Server::magpie();
    let (mut r, mut m) = (redis.client(), magpie.client());
    populate(&mut r);
    let expected = describe(&mut r);
    assert!(expected.len() > 20, "the dataset is there: {expected:?}");
    assert!(copy_with_dump(&mut r, &mut m) == expected.len());
    assert_eq!(describe(&mut m), expected, "Redis's payloads restored into Magpie");
    q(&mut r, &["FLUSHALL"]);
    copy_with_dump(&mut m, &mut r);
    assert_eq!(describe(&mut r), expected, "Magpie's payloads restored into Redis");
    // The encodings Redis picks for what Magpie sent are the ones it had picked itself.
    for k in ["set:int", "set:big", "hash:small", "hash:big", "zset:small", "zset:big", "list:big"] {
        let enc = text(&q(&mut r, &["OBJECT", "ENCODING", k]));
        let mine = text(&q(&mut m, &["OBJECT", "ENCODING", k]));
        assert_eq!(enc, mine, "encoding of {k}");
    }
}

/// A function library, carried by RDB files (and by `magpie export`) beside the keys.
const LIBRARY: &str =
    "#!lua name=movelib\nredis.register_function('moved', function(keys, args) return 'moved:' .. args[1] end)";

/// The library in [`LIBRARY`] is loaded and runs.
fn assert_function(conn: &mut Connection) {
    assert_eq!(text(&q(conn, &["FCALL", "moved", "0", "x"])), "moved:x");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("magpie-rdb-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// redis-server with its data in `dir`, loading `dir/dump.rdb` if it is there.
fn redis_in(dir: &Path) -> Option<Server> {
    let port = common::free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--appendonly", "no", "--save", ""])
        .args(["--dir", &dir.display().to_string(), "--dbfilename", "dump.rdb"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(child) => Some(Server::adopt(port, child)),
        Err(e) => {
            common::skip_without_redis(&e.to_string());
            None
        }
    }
}

#[test]
#[ignore = "needs redis-server; run with --ignored"]
fn import_rdb_loads_a_redis_save() {
    let dir = temp_dir("import");
    let Some(redis) = redis_in(&dir) else { return };
    let mut r = redis.client();
    populate(&mut r);
    q(&mut r, &["FUNCTION", "LOAD", LIBRARY]);
    let expected = describe(&mut r);
    assert_eq!(text(&q(&mut r, &["SAVE"])), "OK");
    let rdb = dir.join("dump.rdb");
    let magpie = Server::magpie_with(&["--import-rdb", &rdb.display().to_string()]);
    assert_eq!(describe(&mut magpie.client()), expected);
    assert_function(&mut magpie.client());

    // With snapshots on, the imported keys are saved at once: a restart without the flag
    // finds them.
    let data = temp_dir("import-data");
    let d = data.display().to_string();
    let mut saved = Server::magpie_with(&["--dir", &d, "--save", "3600 1", "--import-rdb", &rdb.display().to_string()]);
    drop(saved.client());
    let _ = Command::new("kill").arg(saved.pid().to_string()).status();
    saved.wait_exit(Duration::from_secs(10));
    let again = Server::magpie_with(&["--dir", &d, "--save", "3600 1"]);
    assert_eq!(describe(&mut again.client()), expected);
    assert_function(&mut again.client());

    // A keyspace that is not empty is refused, and so is a damaged file.
    let mut busy = Command::new(env!("CARGO_BIN_EXE_magpie-server"))
        .args(["--port", &common::free_port().to_string(), "--http-port", "0", "--dir", &d, "--save", "3600 1"])
        .args(["--import-rdb", &rdb.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = busy.wait().expect("exit");
    assert!(!out.success(), "importing over loaded data must fail");
    let mut bytes = std::fs::read(&rdb).expect("rdb");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    let bad = dir.join("bad.rdb");
    std::fs::write(&bad, &bytes).expect("write");
    let status = Command::new(env!("CARGO_BIN_EXE_magpie-server"))
        .args(["--port", &common::free_port().to_string(), "--http-port", "0", "--save", ""])
        .args(["--import-rdb", &bad.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run");
    assert!(!status.success(), "a damaged RDB file is refused");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&data);
}

/// The `magpie` CLI next to `magpie-server` (built if it is missing).
fn cli_binary() -> PathBuf {
    let server = PathBuf::from(env!("CARGO_BIN_EXE_magpie-server"));
    let bin = server.parent().expect("target dir").join("magpie");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo).args(["build", "-p", "magpie-cli"]).status().expect("cargo build");
        assert!(status.success() && bin.exists(), "could not build the magpie CLI");
    }
    bin
}

#[test]
#[ignore = "needs redis-server; run with --ignored"]
fn export_rdb_is_loaded_by_redis() {
    let magpie = Server::magpie();
    let mut m = magpie.client();
    populate(&mut m);
    q(&mut m, &["FUNCTION", "LOAD", LIBRARY]);
    let expected = describe(&mut m);
    let dir = temp_dir("export");
    let file = dir.join("dump.rdb");
    let out = Command::new(cli_binary())
        .args(["-p", &magpie.port.to_string(), "export", "--format", "rdb", "--output", &file.display().to_string()])
        .output()
        .expect("run magpie export");
    assert!(out.status.success(), "export failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("exported {} keys", expected.len())));
    let Some(redis) = redis_in(&dir) else { return };
    assert_eq!(describe(&mut redis.client()), expected, "redis-server loaded Magpie's export");
    assert_function(&mut redis.client());
    // And the same file imports back into Magpie.
    let back = Server::magpie_with(&["--import-rdb", &file.display().to_string()]);
    assert_eq!(describe(&mut back.client()), expected);
    assert_function(&mut back.client());
    let _ = std::fs::remove_dir_all(&dir);
}

fn reply(conn: &mut Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<RV>(conn) {
        Ok(v) => text(&v),
        Err(e) => format!("error: {:?} {}", e.code(), e.detail().unwrap_or("")),
    }
}

#[test]
#[ignore = "needs redis-server; run with --ignored"]
fn migrate_to_redis_and_to_magpie() {
    let Some(redis) = Server::redis() else { return };
    let (source, other) = (Server::magpie(), Server::magpie());
    let (mut m, mut r, mut o) = (source.client(), redis.client(), other.client());
    populate(&mut m);
    let all = describe(&mut m);
    let db0: BTreeMap<String, String> =
        all.iter().filter(|(k, _)| k.starts_with("0/")).map(|(k, v)| (k.clone(), v.clone())).collect();
    let RV::Array(keys) = q(&mut m, &["KEYS", "*"]) else { panic!() };
    let keys: Vec<String> = keys.iter().map(text).collect();
    let rport = redis.port.to_string();
    let mut args = vec!["MIGRATE", "127.0.0.1", &rport, "", "0", "5000", "KEYS"];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(reply(&mut m, &args), "OK");
    assert_eq!(text(&q(&mut m, &["DBSIZE"])), "0", "migrated keys leave the source");
    assert_eq!(describe(&mut r), db0, "redis-server holds what Magpie migrated");

    // Back from Redis into another Magpie, with COPY: both keep them.
    let oport = other.port.to_string();
    let mut args = vec!["MIGRATE", "127.0.0.1", &oport, "", "0", "5000", "COPY", "KEYS"];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(reply(&mut r, &args), "OK");
    assert_eq!(describe(&mut o), db0, "Magpie holds what redis-server migrated");
    assert_eq!(describe(&mut r), db0);

    // The single-key form, to another database, with a TTL kept.
    q(&mut m, &["SET", "one", "1", "PX", "100000"]);
    assert_eq!(reply(&mut m, &["MIGRATE", "127.0.0.1", &oport, "one", "5", "1000"]), "OK");
    q(&mut o, &["SELECT", "5"]);
    assert_eq!(text(&q(&mut o, &["GET", "one"])), "1");
    assert!(matches!(q(&mut o, &["PTTL", "one"]), RV::Int(n) if n > 90_000 && n <= 100_000));
    q(&mut o, &["SELECT", "0"]);

    // Errors, from Magpie and from Redis as the source, to the same targets.
    let dead = common::free_port().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["MIGRATE", "127.0.0.1", &oport, "nosuchkey", "0", "1000"],
        vec!["MIGRATE", "127.0.0.1", &oport, "k", "0", "1000"],
        vec!["MIGRATE", "127.0.0.1", &oport, "k", "0", "1000", "REPLACE"],
        vec!["MIGRATE", "127.0.0.1", &oport, "k", "99", "1000", "COPY"],
        vec!["MIGRATE", "127.0.0.1", &oport, "k", "0", "1000", "COPY", "AUTH", "secret"],
        vec!["MIGRATE", "127.0.0.1", &oport, "k", "0", "1000", "COPY", "AUTH2", "user", "secret"],
        vec!["MIGRATE", "127.0.0.1", &oport, "k", "0", "1000", "KEYS", "k"],
        vec!["MIGRATE", "127.0.0.1", &oport, "k", "0", "1000", "FOO"],
        vec!["MIGRATE", "127.0.0.1", &oport, "k", "0", "1000", "AUTH"],
        vec!["MIGRATE", "127.0.0.1", &oport, "k", "x", "1000"],
        vec!["MIGRATE", "127.0.0.1", &oport, "k", "0", "x"],
        vec!["MIGRATE", "127.0.0.1", &dead, "k", "0", "300", "COPY"],
    ];
    let Some(redis2) = Server::redis() else { return };
    let mut r2 = redis2.client();
    for case in &cases {
        for c in [&mut m, &mut r2] {
            q(c, &["SET", "k", "v"]);
        }
        q(&mut o, &["SET", "k", "there"]);
        let mine = reply(&mut m, case);
        q(&mut o, &["SET", "k", "there"]);
        let theirs = reply(&mut r2, case);
        assert_eq!(mine, theirs, "{case:?}");
        assert_eq!(text(&q(&mut m, &["EXISTS", "k"])), text(&q(&mut r2, &["EXISTS", "k"])), "{case:?}");
    }
}
