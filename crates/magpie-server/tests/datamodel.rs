//! Bitmaps, HyperLogLogs, geo sets and the other commands of the data model with the rest of
//! the server: the snapshot and the append-only log keep what they wrote (byte for byte);
//! MULTI/EXEC, WATCH and BEGIN/COMMIT work with them; their writes wake blocked clients.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::Server;
use redis::{Connection, Value as RV};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("magpie-datamodel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

fn cmd(c: &mut Connection, line: &str) -> RV {
    let parts: Vec<&str> = line.split(' ').collect();
    let mut q = redis::cmd(parts[0]);
    for p in &parts[1..] {
        q.arg(*p);
    }
    q.query(c).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Writes of every new kind.
fn write_all(c: &mut Connection) {
    for line in [
        "SETBIT bits 100 1",
        "SETBIT bits 3 1",
        "BITFIELD bits SET i16 #2 -1234 INCRBY u8 0 200",
        "BITOP NOT notbits bits",
        "PFADD hll a b c d e f",
        "PFADD big 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25",
        "PFCOUNT hll",
        "PFMERGE merged hll big",
        "GEOADD geo 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
        "GEOSEARCHSTORE near geo FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST",
        "RPUSH list 3 1 2",
        "SORT list DESC STORE sorted",
        "SET tomove x",
        "MOVE tomove 1",
        "SET ttl v",
        "PEXPIRE ttl 100000000",
    ] {
        cmd(c, line);
    }
    let payload: Vec<u8> = redis::cmd("DUMP").arg("sorted").query(c).expect("DUMP");
    let _: RV = redis::cmd("RESTORE").arg("restored").arg(0).arg(payload).query(c).expect("RESTORE");
}

/// What the keys hold, as bytes.
fn read_all(c: &mut Connection) -> Vec<String> {
    let mut out = Vec::new();
    for line in [
        "GET bits",
        "GET notbits",
        "GET hll",
        "PFCOUNT merged",
        "GET merged",
        "ZRANGE geo 0 -1 WITHSCORES",
        "ZRANGE near 0 -1 WITHSCORES",
        "GEOPOS geo Palermo",
        "LRANGE sorted 0 -1",
        "LRANGE restored 0 -1",
        "EXISTS tomove",
    ] {
        out.push(format!("{line} -> {:?}", cmd(c, line)));
    }
    cmd(c, "SELECT 1");
    out.push(format!("db1 tomove -> {:?}", cmd(c, "GET tomove")));
    cmd(c, "SELECT 0");
    let ttl = matches!(cmd(c, "PTTL ttl"), RV::Int(n) if n > 0);
    out.push(format!("ttl kept: {ttl}"));
    out
}

#[test]
fn the_log_and_the_snapshot_keep_them() {
    let dir = temp_dir("persist");
    let d = dir.to_str().expect("utf-8");
    let expected = {
        let server = Server::magpie_with(&["--dir", d, "--appendonly", "yes", "--appendfsync", "always"]);
        let mut c = server.client();
        write_all(&mut c);
        read_all(&mut c)
        // Killed when dropped: only the log has the writes.
    };
    let server = Server::magpie_with(&["--dir", d, "--appendonly", "yes"]);
    let mut c = server.client();
    assert_eq!(read_all(&mut c), expected, "replayed from the log");
    assert_eq!(cmd(&mut c, "SAVE"), RV::Okay);
    drop(c);
    drop(server);
    let server = Server::magpie_with(&["--dir", d]);
    assert_eq!(read_all(&mut server.client()), expected, "loaded from the snapshot");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn transactions_watch_and_begin() {
    let server = Server::magpie();
    let (mut a, mut b) = (server.client(), server.client());
    // MULTI/EXEC.
    cmd(&mut a, "MULTI");
    for line in ["SETBIT m 1 1", "PFADD mh x", "GEOADD mg 1 1 p", "BITCOUNT m", "PFCOUNT mh", "GEOPOS mg p"] {
        assert_eq!(cmd(&mut a, line), RV::SimpleString("QUEUED".into()));
    }
    let RV::Array(replies) = cmd(&mut a, "EXEC") else { panic!("EXEC") };
    assert_eq!(replies[..5], [RV::Int(0), RV::Int(1), RV::Int(1), RV::Int(1), RV::Int(1)]);
    // WATCH is broken by another client's SETBIT, PFADD, GEOADD.
    for (key, write) in [("m", "SETBIT m 2 1"), ("mh", "PFADD mh y"), ("mg", "GEOADD mg 2 2 q")] {
        cmd(&mut a, &format!("WATCH {key}"));
        cmd(&mut b, write);
        cmd(&mut a, "MULTI");
        cmd(&mut a, "PING");
        assert_eq!(cmd(&mut a, "EXEC"), RV::Nil, "{write} breaks the WATCH of {key}");
    }
    // A SETBIT that changes nothing does not.
    cmd(&mut a, "WATCH m");
    cmd(&mut b, "SETBIT m 2 1");
    cmd(&mut a, "MULTI");
    cmd(&mut a, "PING");
    assert!(matches!(cmd(&mut a, "EXEC"), RV::Array(_)), "a SETBIT that changes nothing");
    // BEGIN/COMMIT: private until COMMIT.
    cmd(&mut a, "BEGIN");
    cmd(&mut a, "SETBIT tb 0 1");
    cmd(&mut a, "PFADD th a b c");
    cmd(&mut a, "GEOADD tg 1 1 p");
    assert_eq!(cmd(&mut a, "PFCOUNT th"), RV::Int(3));
    assert_eq!(cmd(&mut b, "EXISTS tb th tg"), RV::Int(0));
    cmd(&mut a, "COMMIT");
    assert_eq!(cmd(&mut b, "EXISTS tb th tg"), RV::Int(3));
    assert_eq!(cmd(&mut b, "PFCOUNT th"), RV::Int(3));
    // SORT with patterns is refused inside BEGIN rather than reading keys it cannot see.
    cmd(&mut a, "BEGIN");
    let refused: redis::RedisResult<RV> = redis::cmd("SORT").arg("x").arg("BY").arg("w_*").query(&mut a);
    assert!(refused.is_err());
    cmd(&mut a, "ROLLBACK");
}

#[test]
fn their_writes_wake_blocked_clients() {
    let server = Server::magpie();
    let mut c = server.client();
    let port = server.port;
    let waiter = std::thread::spawn(move || {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
        let mut w = client.get_connection().expect("connect");
        let list: RV = redis::cmd("BLPOP").arg("sorted").arg(10).query(&mut w).expect("BLPOP");
        let zset: RV = redis::cmd("BZPOPMIN").arg("near").arg(10).query(&mut w).expect("BZPOPMIN");
        (list, zset)
    });
    std::thread::sleep(Duration::from_millis(200));
    cmd(&mut c, "RPUSH src 2 1");
    cmd(&mut c, "SORT src STORE sorted");
    std::thread::sleep(Duration::from_millis(100));
    cmd(&mut c, "GEOADD geo 1 1 p");
    cmd(&mut c, "GEOSEARCHSTORE near geo FROMLONLAT 1 1 BYRADIUS 1 km");
    let (list, zset) = waiter.join().expect("waiter");
    assert_eq!(list, RV::Array(vec![RV::BulkString(b"sorted".to_vec()), RV::BulkString(b"1".to_vec())]));
    assert!(matches!(zset, RV::Array(ref v) if v.len() == 3), "{zset:?}");
}

#[test]
fn swapdb_serves_clients_blocked_on_keys_it_brings() {
    let server = Server::magpie();
    let mut c = server.client();
    let port = server.port;
    let waiter = std::thread::spawn(move || {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
        let mut w = client.get_connection().expect("connect");
        let got: RV = redis::cmd("BLPOP").arg("q").arg(10).query(&mut w).expect("BLPOP");
        got
    });
    std::thread::sleep(Duration::from_millis(200));
    cmd(&mut c, "SELECT 1");
    cmd(&mut c, "RPUSH q from-db1");
    cmd(&mut c, "SWAPDB 0 1");
    let got = waiter.join().expect("waiter");
    assert_eq!(got, RV::Array(vec![RV::BulkString(b"q".to_vec()), RV::BulkString(b"from-db1".to_vec())]));
    assert_eq!(cmd(&mut c, "DBSIZE"), RV::Int(0), "db 1 now holds what db 0 had");
}
