//! INFO's counters after known sequences of commands: exact values on Magpie, and the fields
//! Redis also has compared with a real redis-server running the same commands.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Raw, Server};

/// `INFO <section>` parsed into `field -> value`.
fn info(c: &mut Raw, section: &str) -> HashMap<String, String> {
    let reply = c.cmd(&[b"INFO", section.as_bytes()]);
    let text = String::from_utf8(reply).expect("utf8 INFO");
    // Skip the bulk header line.
    let body = text.split_once("\r\n").map_or("", |(_, b)| b);
    body.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn num(info: &HashMap<String, String>, field: &str) -> u64 {
    info.get(field).unwrap_or_else(|| panic!("INFO has no {field}: {info:?}")).parse().expect("a number")
}

/// Runs each line (arguments split on spaces) and checks nothing but that a reply came.
fn run(c: &mut Raw, lines: &[&str]) {
    for line in lines {
        c.cmd_str(line);
    }
}

/// The `keys` and `value_bytes` fields of `INFO magpie`.
fn keys_and_value_bytes(c: &mut Raw) -> (u64, u64) {
    let m = info(c, "magpie");
    (num(&m, "keys"), num(&m, "value_bytes"))
}

/// Waits until DBSIZE is `n` (keys reclaimed by active expiry).
fn wait_dbsize(c: &mut Raw, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let want = format!(":{n}\r\n");
    while c.cmd_str("DBSIZE") != want {
        assert!(Instant::now() < deadline, "DBSIZE never reached {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn value_bytes_and_key_counts_are_exact_through_every_kind_of_write() {
    let server = Server::magpie();
    let mut c = server.raw();
    assert_eq!(keys_and_value_bytes(&mut c), (0, 0));
    run(&mut c, &["SET a hello", "SET n 12345"]);
    assert_eq!(keys_and_value_bytes(&mut c), (2, 10));
    run(&mut c, &["APPEND a _world", "INCRBY n 100000"]); // 11 bytes; 112345 has 6 digits
    assert_eq!(keys_and_value_bytes(&mut c), (2, 17));
    run(&mut c, &["SET a xy", "SETRANGE n 8 z"]); // "112345\0\0z": 9 bytes
    assert_eq!(keys_and_value_bytes(&mut c), (2, 11));
    run(&mut c, &["MSET b 1 c 22 d 333", "GETSET b 4444", "INCRBYFLOAT f 1.5"]);
    assert_eq!(keys_and_value_bytes(&mut c), (6, 11 + 4 + 2 + 3 + 3));
    run(&mut c, &["DEL b c missing", "GETDEL d", "RENAME f g", "COPY g h"]);
    assert_eq!(keys_and_value_bytes(&mut c), (4, 11 + 3 + 3));
    run(&mut c, &["SELECT 3", "SET other 1234567890"]);
    assert_eq!(keys_and_value_bytes(&mut c), (5, 17 + 10));
    let ks = info(&mut c, "keyspace");
    assert_eq!(ks.get("db0").map(String::as_str), Some("keys=4,expires=0,avg_ttl=0"));
    assert!(ks.get("db3").is_some_and(|v| v.starts_with("keys=1,")));
    run(&mut c, &["FLUSHDB"]);
    assert_eq!(keys_and_value_bytes(&mut c), (4, 17));

    // Expiry: keys reclaimed by the active cycle leave the totals, and are counted.
    run(&mut c, &["SELECT 0", "SET t1 abc PX 30", "SET t2 defg PX 30", "SETEX keep 100 vv"]);
    let m = info(&mut c, "magpie");
    assert_eq!((num(&m, "keys"), num(&m, "expires"), num(&m, "value_bytes")), (7, 3, 17 + 9));
    wait_dbsize(&mut c, 5);
    assert_eq!(keys_and_value_bytes(&mut c), (5, 19));
    assert_eq!(num(&info(&mut c, "stats"), "expired_keys"), 2);
    // An expired key overwritten before the cycle reclaims it is counted as expired too.
    run(&mut c, &["CONFIG SET hz 1", "SET t3 abcdef PX 1"]);
    std::thread::sleep(Duration::from_millis(20));
    run(&mut c, &["SET t3 z"]);
    assert_eq!(keys_and_value_bytes(&mut c), (6, 20));
    assert_eq!(num(&info(&mut c, "stats"), "expired_keys"), 3);

    run(&mut c, &["FLUSHALL"]);
    assert_eq!(keys_and_value_bytes(&mut c), (0, 0));
    assert!(info(&mut c, "keyspace").is_empty());
}

#[test]
fn value_bytes_follow_hash_writes() {
    let server = Server::magpie();
    let mut c = server.raw();
    run(&mut c, &["HSET h a 1 bb 22", "HSETNX h a xxxx", "HSETNX h c 333"]);
    assert_eq!(keys_and_value_bytes(&mut c), (1, 2 + 4 + 4));
    run(&mut c, &["HSET h a 12345", "HINCRBY h bb 78", "HINCRBYFLOAT h n 1.5"]); // a=12345, bb=100, n=1.5
    assert_eq!(keys_and_value_bytes(&mut c), (1, 6 + 5 + 4 + 4));
    run(&mut c, &["HDEL h c missing", "HMSET h2 f v"]);
    assert_eq!(keys_and_value_bytes(&mut c), (2, 6 + 5 + 4 + 2));
    // Through the conversion to a table (513 fields) and back down to nothing.
    let mut big = b"HSET big".to_vec();
    for i in 0..513 {
        big.extend_from_slice(format!(" f{i:03} v").as_bytes());
    }
    let args: Vec<&[u8]> = big.split(|&b| b == b' ').collect();
    c.cmd(&args);
    assert_eq!(keys_and_value_bytes(&mut c), (3, 17 + 513 * 5));
    run(&mut c, &["HSET big f000 a-longer-value f001 1", "HINCRBYFLOAT big f001 0.25"]);
    assert_eq!(keys_and_value_bytes(&mut c), (3, 17 + 513 * 5 + 13 + 3));
    let mut del = b"HDEL big".to_vec();
    for i in 0..513 {
        del.extend_from_slice(format!(" f{i:03}").as_bytes());
    }
    let args: Vec<&[u8]> = del.split(|&b| b == b' ').collect();
    assert_eq!(c.cmd(&args), b":513\r\n");
    assert_eq!(keys_and_value_bytes(&mut c), (2, 17));
    // RENAME, COPY, DEL, expiry and FLUSHALL.
    run(&mut c, &["RENAME h h3", "COPY h3 h4"]);
    assert_eq!(keys_and_value_bytes(&mut c), (3, 17 + 15));
    run(&mut c, &["DEL h3", "PEXPIRE h4 20"]);
    assert_eq!(keys_and_value_bytes(&mut c), (2, 2 + 15));
    wait_dbsize(&mut c, 1);
    assert_eq!(keys_and_value_bytes(&mut c), (1, 2));
    run(&mut c, &["FLUSHALL"]);
    assert_eq!(keys_and_value_bytes(&mut c), (0, 0));
}

#[test]
fn value_bytes_are_exact_for_sorted_sets() {
    let server = Server::magpie();
    let mut c = server.raw();
    let bytes = |c: &mut Raw| num(&info(c, "magpie"), "value_bytes");
    // Each member counts its length plus 8 bytes for its score.
    run(&mut c, &["ZADD z 1 a 2 bb 3 ccc"]);
    assert_eq!(bytes(&mut c), 6 + 3 * 8);
    run(&mut c, &["ZADD z 5 a", "ZINCRBY z 1 dddd", "ZADD z XX 1 nope", "ZADD z NX 9 a"]);
    assert_eq!(bytes(&mut c), 10 + 4 * 8);
    run(&mut c, &["ZREM z a nope", "ZPOPMAX z"]); // ccc has the highest score
    assert_eq!(bytes(&mut c), 6 + 2 * 8);
    // Across the conversion to the big encoding and back down.
    let mut add = String::from("ZADD big");
    for i in 0..200 {
        add.push_str(&format!(" {i} m{i:03}"));
    }
    run(&mut c, &[add.as_str()]);
    assert_eq!(bytes(&mut c), 6 + 2 * 8 + 200 * (4 + 8));
    run(&mut c, &["ZREMRANGEBYRANK big 0 99", "ZREMRANGEBYSCORE big 150 +inf", "ZREMRANGEBYLEX big [m100 [m109"]);
    assert_eq!(bytes(&mut c), 6 + 2 * 8 + 40 * 12);
    run(&mut c, &["ZPOPMIN big 40"]);
    assert_eq!(bytes(&mut c), 6 + 2 * 8);
    // Results stored, destinations replaced.
    run(&mut c, &["ZUNIONSTORE u 1 z", "ZRANGESTORE r z 0 0", "ZINTERSTORE r 2 z u", "COPY u u2"]);
    assert_eq!(bytes(&mut c), 4 * (6 + 2 * 8));
    run(&mut c, &["ZDIFFSTORE u 2 z u", "DEL u2", "ZMPOP 2 nokey r MAX COUNT 5"]);
    assert_eq!(bytes(&mut c), 6 + 2 * 8);
    // Blocking pops served at once.
    run(&mut c, &["ZADD bz 1 abc 2 de", "BZPOPMIN bz 0"]);
    assert_eq!(bytes(&mut c), 6 + 2 * 8 + 2 + 8);
    run(&mut c, &["BZMPOP 0 1 bz MAX COUNT 3"]);
    assert_eq!(bytes(&mut c), 6 + 2 * 8);
    // Expiry and FLUSHALL.
    run(&mut c, &["ZADD t 1 xyz", "PEXPIRE t 20"]);
    assert_eq!(bytes(&mut c), 6 + 2 * 8 + 11);
    wait_dbsize(&mut c, 1);
    assert_eq!(bytes(&mut c), 6 + 2 * 8);
    run(&mut c, &["FLUSHALL"]);
    assert_eq!(bytes(&mut c), 0);
}

#[test]
fn value_bytes_follow_list_writes() {
    let server = Server::magpie();
    let mut c = server.raw();
    let bytes = |c: &mut Raw| num(&info(c, "magpie"), "value_bytes");
    run(&mut c, &["RPUSH l abc de 12345", "LPUSH l x"]);
    assert_eq!(bytes(&mut c), 11);
    run(&mut c, &["LSET l 0 xyz", "LINSERT l AFTER de inserted", "LPUSHX l q", "RPUSHX nol q"]);
    assert_eq!(bytes(&mut c), 3 + 3 + 2 + 8 + 5 + 1);
    run(&mut c, &["LPOP l", "RPOP l 2", "LREM l 0 abc"]);
    assert_eq!(bytes(&mut c), 3 + 2);
    run(&mut c, &["LMOVE l m LEFT LEFT", "RPOPLPUSH m m"]);
    assert_eq!(bytes(&mut c), 5);
    run(&mut c, &["LTRIM l 5 10", "BLMPOP 0 2 l m LEFT COUNT 5"]);
    assert_eq!((bytes(&mut c), num(&info(&mut c, "magpie"), "keys")), (0, 0));
    // Over the 8 KB chunk size, and back.
    let big = "e".repeat(100);
    for _ in 0..200 {
        run(&mut c, &[&format!("RPUSH big {big} {big}")]);
    }
    assert_eq!(bytes(&mut c), 200 * 2 * 100);
    run(&mut c, &["LTRIM big 10 -11", "LSET big 5 short", &format!("LREM big 3 {big}")]);
    assert_eq!(bytes(&mut c), (400 - 20 - 1 - 3) * 100 + 5);
    run(&mut c, &["COPY big big2", "RPUSH ttl a b", "PEXPIRE ttl 20"]);
    assert_eq!(bytes(&mut c), 2 * ((400 - 24) * 100 + 5) + 2);
    wait_dbsize(&mut c, 2);
    run(&mut c, &["DEL big"]);
    assert_eq!(bytes(&mut c), (400 - 24) * 100 + 5);
    run(&mut c, &["FLUSHALL"]);
    assert_eq!(bytes(&mut c), 0);
}

#[test]
fn operation_counters_commandstats_and_resetstat() {
    let server = Server::magpie();
    let mut c = server.raw();
    // The harness's readiness probe has closed its connection, but the server may not have
    // seen it go yet: wait until this client is the only one (checked again below).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while num(&info(&mut c, "clients"), "connected_clients") != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    run(
        &mut c,
        &[
            "CONFIG RESETSTAT", // forget the harness's readiness probe
            "SET a 1",
            "MSET b 2 c 3 d 4",
            "GET a",
            "GET nope",
            "MGET a b nope1 nope2",
            "EXISTS a nope",
            "DEL a b nope",
            "UNLINK c",
            "INCR a",
            "GET",           // wrong arity: rejected
            "INCR d x",      // wrong arity: rejected
            "NOSUCHCMD d x", // unknown command
            "SET d notanumber",
            "INCR d", // WRONG: failed
        ],
    );
    let all = info(&mut c, "all");
    let m = |f: &str| num(&all, f);
    // Keys read: GET a, GET nope, MGET 4, EXISTS 2; written: SET a, MSET 3, INCR a, SET d,
    // INCR d; deleted: DEL 3, UNLINK 1.
    assert_eq!((m("key_ops_get"), m("key_ops_set"), m("key_ops_del")), (8, 7, 4));
    assert_eq!((m("keyspace_hits"), m("keyspace_misses")), (4, 4));
    // Commands that ran (rejected ones do not count; RESETSTAT counts after its reset), and
    // every error reply.
    assert_eq!(m("total_commands_processed"), 12);
    assert_eq!(m("total_error_replies"), 4);
    let cmdstat = |name: &str| all.get(&format!("cmdstat_{name}")).cloned().unwrap_or_default();
    let calls = |name: &str| {
        let stat = cmdstat(name);
        let field = |f: &str| {
            stat.split(',').find_map(|kv| kv.strip_prefix(&format!("{f}="))).map(|v| v.parse::<u64>().unwrap())
        };
        (field("calls"), field("rejected_calls"), field("failed_calls"))
    };
    assert_eq!(calls("get"), (Some(2), Some(1), Some(0)));
    assert_eq!(calls("incr"), (Some(2), Some(1), Some(1)));
    assert_eq!(calls("mset"), (Some(1), Some(0), Some(0)));
    assert!(cmdstat("get").contains(",usec_per_call="), "{}", cmdstat("get"));
    assert!(cmdstat("nosuchcmd").is_empty());
    assert_eq!(all.get("errorstat_ERR").map(String::as_str), Some("count=4"));
    assert_eq!(all.get("errorstat_WRONGTYPE"), None);
    assert!(m("total_net_input_bytes") > 100 && m("total_net_output_bytes") > 50);
    assert_eq!((m("connected_clients"), m("total_connections_received")), (1, 0));

    // A second client shows up in the client counts.
    let mut other = server.raw();
    assert_eq!(num(&info(&mut other, "clients"), "connected_clients"), 2);
    assert_eq!(num(&info(&mut other, "stats"), "total_connections_received"), 1);

    assert_eq!(c.cmd_str("CONFIG RESETSTAT"), "+OK\r\n");
    let all = info(&mut c, "all");
    assert_eq!(num(&all, "total_commands_processed"), 1); // RESETSTAT itself
    for field in [
        "keyspace_hits",
        "keyspace_misses",
        "key_ops_get",
        "key_ops_set",
        "key_ops_del",
        "total_error_replies",
        "expired_keys",
        "total_connections_received",
    ] {
        assert_eq!(num(&all, field), 0, "{field} after RESETSTAT");
    }
    let stats: Vec<&String> = all.keys().filter(|k| k.starts_with("cmdstat_") || k.starts_with("errorstat_")).collect();
    assert_eq!(stats, ["cmdstat_config|resetstat"]);
    // Keyspace figures are not counters: they stay.
    assert_eq!(num(&all, "keys"), 2);
    run(&mut c, &["GET a"]);
    let all = info(&mut c, "all");
    assert_eq!((num(&all, "keyspace_hits"), num(&all, "total_commands_processed")), (1, 3));
}

#[test]
fn info_sections_and_instantaneous_rate() {
    let server = Server::magpie();
    let mut c = server.raw();
    let text = |c: &mut Raw, args: &[&str]| {
        let mut cmd: Vec<&[u8]> = vec![b"INFO"];
        cmd.extend(args.iter().map(|a| a.as_bytes()));
        String::from_utf8(c.cmd(&cmd)).unwrap()
    };
    c.cmd_str("CONFIG RESETSTAT");
    let default = text(&mut c, &[]);
    for header in ["# Server", "# Clients", "# Memory", "# Stats", "# Keyspace", "# Magpie"] {
        assert!(default.contains(&format!("{header}\r\n")), "{header} missing");
    }
    assert!(!default.contains("# Commandstats"));
    let all = text(&mut c, &["all"]);
    assert!(all.contains("# Commandstats\r\n") && all.contains("\r\ncmdstat_info:calls=1,"), "{all}");
    let two = text(&mut c, &["keyspace", "SERVER"]);
    assert!(two.contains("# Server\r\n") && two.contains("\r\n\r\n# Keyspace\r\n") && !two.contains("# Memory"));
    assert_eq!(text(&mut c, &["nosuchsection"]), "$0\r\n\r\n");
    let memory = info(&mut c, "memory");
    assert!(num(&memory, "used_memory") > 0 && num(&memory, "used_memory_rss") > 0);
    assert!(memory["mem_allocator"].starts_with("mimalloc-"));
    let server_info = info(&mut c, "server");
    assert_eq!(num(&server_info, "tcp_port"), u64::from(server.port));
    assert_eq!(num(&server_info, "process_id"), u64::from(server.pid()));

    // instantaneous_ops_per_sec follows a steady load within the sampling window.
    let deadline = Instant::now() + Duration::from_millis(1500);
    let ping = Raw::encode(&[b"PING"]);
    let mut sent = 0u64;
    while Instant::now() < deadline {
        c.send(&ping.repeat(50));
        for _ in 0..50 {
            c.read_reply();
        }
        sent += 50;
    }
    let rate = num(&info(&mut c, "stats"), "instantaneous_ops_per_sec");
    let average = sent as f64 / 1.5;
    assert!(rate as f64 > average * 0.3, "rate {rate} vs average {average}");
}

/// The counters Redis also keeps, after the same commands on both servers.
#[test]
fn counters_agree_with_redis() {
    let Some(redis) = Server::redis() else { return };
    let magpie = Server::magpie();
    let script = [
        "SET a hello",
        "SET n 10",
        "GET a",
        "GET missing",
        "MGET a n x y",
        "EXISTS a x",
        "TYPE a",
        "TTL x",
        "STRLEN a",
        "GETRANGE x 0 1",
        "SET a world GET",
        "GETSET n 5",
        "GETDEL nope",
        "GETEX a",
        "INCR a",
        "GET",
        "INCR a b",
        "SET a b NX XX",
        "TOUCH a x",
        "COPY a a2",
        "APPEND a !",
        "SET e v PX 20",
        "SET e2 v PX 20",
        // Sets: reads count (every source of the STORE forms too, and SPOP taking a whole
        // set); SADD, SREM, SMOVE and SPOP do not.
        "SADD sa 1 2 3",
        "SADD sb 2 x",
        "SADD a x",
        "SISMEMBER sa 1",
        "SISMEMBER nosuch 1",
        "SMISMEMBER sa 1 9",
        "SCARD sb",
        "SMEMBERS nosuch",
        "SRANDMEMBER sa",
        "SRANDMEMBER sa -2",
        "SSCAN sa 0",
        "SINTER sa sb nosuch",
        "SINTER sa a",
        "SUNIONSTORE su sa sb",
        "SDIFFSTORE sd sa nosuch",
        "SINTERCARD 2 sa sb",
        "SMOVE sa sb 1",
        "SPOP su 10",
        "SPOP sb",
        "SREM sa 2 3 nosuch",
        "DEL sa sb sd",
        // Hashes: reads count their key, writes do not; errors before the lookup count nothing.
        "HSET h a 1 b 2",
        "HGET h a",
        "HGET h x",
        "HGET nohash a",
        "HMGET nohash a b",
        "HGETALL h",
        "HLEN nohash",
        "HEXISTS h a",
        "HSTRLEN h a",
        "HKEYS h",
        "HVALS nohash",
        "HRANDFIELD h",
        "HRANDFIELD nohash 2",
        "HRANDFIELD h x",
        "HSCAN h 0",
        "HSCAN nohash 0",
        "HSCAN h x",
        "HINCRBY h a 1",
        "HINCRBYFLOAT h a 1.5",
        "HINCRBY h a x",
        "HSETNX h c 3",
        "HSET h odd",
        "HGET a x",
        "HDEL h a b c",
        "ZADD z 1 m 2 n",
        "ZSCORE z m",
        "ZSCORE nz m",
        "ZRANGE z 0 -1",
        "ZRANGEBYSCORE nz 0 1",
        "ZRANK z x",
        "ZCARD n",
        "ZUNIONSTORE zd 2 z nz",
        "ZINTER 2 z nz",
        "ZRANGESTORE zd2 z 0 0",
        "ZRANGESTORE zd3 nz 0 0",
        "ZPOPMIN z",
        "ZINCRBY z 1 m",
        "ZADD z x m",
        "ZMPOP 2 nz z MIN",
        "ZADD zb 1 a 2 b 3 c 4 d",
        "BZPOPMIN nz zb 0",
        "BZPOPMAX nz 0.01",
        "BZPOPMAX zb nz 0",
        "BZMPOP 0.01 2 nz zb MAX COUNT 5",
        "BZMPOP 0.01 1 nz MIN",
        "BZPOPMIN a 0",
        "ZRANDMEMBER nz",
        "ZSCAN zd 0",
        "DEL zd zd2 z",
        "DEL a n x",
        // Lists: reads count hits and misses, writes and blocking pops do not; a blocking
        // command counts once whether it serves at once or times out.
        "RPUSH l a b c d",
        "LPUSH l z",
        "LLEN l",
        "LLEN nol",
        "LRANGE l 0 -1",
        "LRANGE nol 0 -1",
        "LINDEX l 1",
        "LINDEX nol 1",
        "LPOS l c",
        "LPOS nol c",
        "LPOP l",
        "RPOP l 1",
        "LPOP nol",
        "BLPOP l 0",
        "BRPOP nol 0.01",
        "BLMPOP 0.01 2 nol l LEFT",
        "LMPOP 1 l RIGHT",
        "LMPOP 1 nol RIGHT",
        "RPUSH l2 x",
        "LMOVE l2 l3 LEFT LEFT",
        "BLMOVE nol l3 LEFT LEFT 0.01",
        "LPOP l2 x",
        "LPUSH a x",
        "DEL l3 a",
    ];
    let mut results = Vec::new();
    for server in [&redis, &magpie] {
        let mut c = server.raw();
        run(&mut c, &script);
        std::thread::sleep(Duration::from_millis(40));
        run(&mut c, &["GET e"]); // a miss (Redis reclaims it here, Magpie's cycle soon after)
        wait_dbsize(&mut c, 1);
        let all = info(&mut c, "all");
        let mut picked: Vec<(String, String)> = all
            .into_iter()
            .filter(|(k, _)| {
                k.starts_with("cmdstat_") && k != "cmdstat_info" && k != "cmdstat_dbsize"
                    || k.starts_with("errorstat_")
                    || ["keyspace_hits", "keyspace_misses", "expired_keys", "total_error_replies", "db0"]
                        .contains(&k.as_str())
            })
            .map(|(k, v)| {
                // usec figures differ by nature: keep the counts.
                let v = v.split(',').filter(|f| !f.starts_with("usec")).collect::<Vec<_>>().join(",");
                (k, v)
            })
            .collect();
        picked.sort();
        results.push(picked);
    }
    assert!(results[0].len() > 20, "{:?}", results[0]);
    assert_eq!(results[1], results[0], "magpie (right) vs redis (left)");
}

/// value_bytes after set writes equals a recount of every member's length (integers in
/// decimal), through encoding changes, pops, moves, STORE forms, expiry and FLUSHALL.
#[test]
fn value_bytes_follow_set_writes() {
    let server = Server::magpie();
    let mut c = server.raw();
    let mut client = server.client();
    let mut check = |c: &mut Raw, step: &str| {
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut client).expect("KEYS");
        let mut total = 0;
        for key in &keys {
            let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(key).query(&mut client).expect("SMEMBERS");
            total += members.iter().map(Vec::len).sum::<usize>() as u64;
        }
        let m = info(c, "magpie");
        assert_eq!((num(&m, "keys"), num(&m, "value_bytes")), (keys.len() as u64, total), "after {step}");
    };
    run(&mut c, &["SADD s 1 22 333 -4444"]);
    check(&mut c, "SADD of integers");
    assert_eq!(num(&info(&mut c, "magpie"), "value_bytes"), 1 + 2 + 3 + 5);
    run(&mut c, &["SADD s 22 abc", "SADD t x"]);
    check(&mut c, "a string member");
    let many: Vec<String> = (0..600).map(|i| (i * 7).to_string()).collect();
    let mut sadd: Vec<&[u8]> = vec![b"SADD", b"big"];
    sadd.extend(many.iter().map(std::string::String::as_bytes));
    c.cmd(&sadd[..514]); // 512 members: an intset
    check(&mut c, "512 integers");
    c.cmd(&sadd);
    check(&mut c, "600 integers (hashtable)");
    let strings: Vec<String> = (0..300).map(|i| format!("member:{i}")).collect();
    let mut sadd: Vec<&[u8]> = vec![b"SADD", b"strs"];
    sadd.extend(strings.iter().map(std::string::String::as_bytes));
    c.cmd(&sadd);
    check(&mut c, "300 strings");
    run(&mut c, &["SREM s 1 abc nosuch", "SREM t x", "SPOP big", "SPOP big 5", "SPOP big 590"]);
    check(&mut c, "SREM and SPOP");
    run(&mut c, &["SPOP strs 10", "SMOVE strs s member:200", "SMOVE s fresh 22", "SMOVE strs s member:201"]);
    check(&mut c, "SMOVE");
    run(&mut c, &["SET str hello", "SUNIONSTORE str s fresh", "SINTERSTORE inter s strs", "SDIFFSTORE diff strs s"]);
    check(&mut c, "STORE forms over a string");
    run(&mut c, &["SINTERSTORE diff s nosuch", "SDIFFSTORE str s s", "SPOP fresh 100", "DEL inter"]);
    check(&mut c, "empty results and whole pops");
    run(&mut c, &["SADD ttl a b c", "PEXPIRE ttl 20", "SADD ttl2 1 2", "PEXPIRE ttl2 20"]);
    check(&mut c, "before expiry");
    std::thread::sleep(Duration::from_millis(30));
    run(&mut c, &["SADD ttl2 3"]); // written over once expired: a new set
    wait_dbsize(&mut c, 4); // s, big, strs, ttl2
    check(&mut c, "after expiry");
    run(&mut c, &["FLUSHALL"]);
    check(&mut c, "FLUSHALL");
}

/// A blocking command counts once: when served after waiting, and when its client disconnects
/// while it waits (Redis counts that too), on both servers.
#[test]
fn blocked_commands_count_once_like_redis() {
    let Some(redis) = Server::redis() else { return };
    let magpie = Server::magpie();
    let blocked = |c: &mut Raw, n: u64| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while num(&info(c, "clients"), "blocked_clients") != n {
            assert!(Instant::now() < deadline, "blocked_clients never reached {n}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let mut results = Vec::new();
    for server in [&redis, &magpie] {
        let mut admin = server.raw();
        admin.cmd_str("CONFIG RESETSTAT");
        let mut waiter = server.raw();
        waiter.send(&Raw::encode(&[b"BLPOP", b"q", b"0"]));
        blocked(&mut admin, 1);
        admin.cmd_str("RPUSH q x");
        assert_eq!(waiter.read_reply(), b"*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
        waiter.send(&Raw::encode(&[b"BRPOPLPUSH", b"q", b"d", b"0"]));
        blocked(&mut admin, 1);
        drop(waiter);
        blocked(&mut admin, 0);
        let all = info(&mut admin, "commandstats");
        let mut picked: Vec<(String, String)> = all
            .into_iter()
            .filter(|(k, _)| ["cmdstat_blpop", "cmdstat_brpoplpush", "cmdstat_rpush"].contains(&k.as_str()))
            .map(|(k, v)| (k, v.split(',').filter(|f| !f.starts_with("usec")).collect::<Vec<_>>().join(",")))
            .collect();
        picked.sort();
        results.push(picked);
    }
    assert_eq!(results[0].len(), 3, "{:?}", results[0]);
    assert_eq!(results[1], results[0], "magpie (right) vs redis (left)");
}
