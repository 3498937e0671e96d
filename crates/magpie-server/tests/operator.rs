//! The operator's tools over a socket: SLOWLOG entries (shape, cuts, redaction, what is not
//! logged), LATENCY events from slow commands, MONITOR across connections (format, order,
//! redaction, what a monitor may run, RESET, admin commands not shown), and DEBUG (refused
//! unless enabled, OBJECT, DIGEST across RELOAD, SET-ACTIVE-EXPIRE). Replies that are the same
//! every time are compared with redis-server in the differential scripts (`operator_*`).

mod common;

use std::time::{Duration, Instant};

use common::{Raw, Server};

fn s(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

#[test]
fn slowlog_keeps_redis_entries() {
    let server = Server::magpie();
    let mut c = server.raw();
    assert_eq!(c.cmd_str("CONFIG SET slowlog-log-slower-than 0"), "+OK\r\n");
    assert_eq!(c.cmd_str("CLIENT SETNAME ops"), "+OK\r\n");
    assert_eq!(c.cmd_str("SLOWLOG RESET"), "+OK\r\n");
    let big = vec![b'v'; 200];
    let mut args: Vec<&[u8]> = vec![b"RPUSH", b"list", &big];
    args.extend(std::iter::repeat_n(&b"x"[..], 40));
    c.cmd(&args);
    c.cmd(&[b"AUTH", b"nobody", b"secret"]);
    c.cmd_str("MULTI");
    c.cmd_str("INCR n");
    c.cmd_str("EXEC");
    let reply = s(&c.cmd_str("SLOWLOG GET -1").into_bytes());
    // Newest first: EXEC is never logged (skip_slowlog), the INCR inside it is.
    let incr = reply.find("$4\r\nINCR\r\n").expect("INCR logged");
    let multi = reply.find("$5\r\nMULTI\r\n").expect("MULTI logged");
    assert!(!reply.contains("EXEC"), "{reply}");
    assert!(incr < multi, "newest first: {reply}");
    // The password is never shown; the user name is not shown either (Redis redacts both).
    assert!(reply.contains("$4\r\nAUTH\r\n$10\r\n(redacted)\r\n$10\r\n(redacted)\r\n"), "{reply}");
    assert!(!reply.contains("secret"));
    // 43 arguments: 31 kept, the 32nd says how many more; long arguments are cut at 128 bytes.
    assert!(reply.contains("*32\r\n$5\r\nRPUSH\r\n$4\r\nlist\r\n"), "{reply}");
    let cut = format!("{}... (72 more bytes)", "v".repeat(128));
    assert!(reply.contains(&format!("${}\r\n{cut}\r\n", cut.len())), "{reply}");
    assert!(reply.contains("$23\r\n... (12 more arguments)\r\n"), "{reply}");
    // Client address and name close each entry.
    assert!(reply.contains("\r\n$3\r\nops\r\n"), "{reply}");
    assert!(reply.contains("127.0.0.1:"), "{reply}");
    // Length and trimming.
    assert_eq!(c.cmd_str("CONFIG SET slowlog-max-len 2"), "+OK\r\n");
    c.cmd_str("PING");
    assert_eq!(c.cmd_str("SLOWLOG LEN"), ":2\r\n");
    assert_eq!(c.cmd_str("SLOWLOG GET 1").matches("*6\r\n").count(), 1);
    // -1 turns it off.
    assert_eq!(c.cmd_str("CONFIG SET slowlog-log-slower-than -1"), "+OK\r\n");
    assert_eq!(c.cmd_str("SLOWLOG RESET"), "+OK\r\n");
    c.cmd_str("PING");
    assert_eq!(c.cmd_str("SLOWLOG LEN"), ":0\r\n");
}

#[test]
fn slowlog_ids_and_threshold() {
    let server = Server::magpie_with(&["--slowlog-log-slower-than", "20000", "--enable-debug-command", "yes"]);
    let mut c = server.raw();
    c.cmd_str("PING");
    assert_eq!(c.cmd_str("SLOWLOG LEN"), ":0\r\n", "fast commands stay out");
    c.cmd_str("DEBUG SLEEP 0.03");
    let reply = c.cmd_str("SLOWLOG GET");
    assert!(reply.starts_with("*1\r\n*6\r\n:0\r\n:"), "{reply}");
    assert!(reply.contains("*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$4\r\n0.03\r\n"), "{reply}");
    // The duration is in microseconds: at least the 30 ms slept.
    let micros: u64 =
        reply.split("\r\n").nth(4).and_then(|l| l.strip_prefix(':')).and_then(|n| n.parse().ok()).expect("duration");
    assert!((30_000..10_000_000).contains(&micros), "{micros}");
    assert_eq!(c.cmd_str("SLOWLOG RESET"), "+OK\r\n");
    c.cmd_str("DEBUG SLEEP 0.03");
    assert!(c.cmd_str("SLOWLOG GET").starts_with("*1\r\n*6\r\n:1\r\n"), "ids go on after a reset");
}

#[test]
fn latency_monitor_records_slow_commands() {
    let server = Server::magpie_with(&["--enable-debug-command", "yes"]);
    let mut c = server.raw();
    c.cmd_str("DEBUG SLEEP 0.02");
    assert_eq!(c.cmd_str("LATENCY LATEST"), "*0\r\n", "off by default");
    assert!(c.cmd_str("LATENCY DOCTOR").contains("Latency monitoring is disabled"));
    assert_eq!(c.cmd_str("CONFIG SET latency-monitor-threshold 10"), "+OK\r\n");
    c.cmd_str("DEBUG SLEEP 0.02");
    c.cmd_str("PING");
    let latest = c.cmd_str("LATENCY LATEST");
    assert!(latest.starts_with("*1\r\n*4\r\n$7\r\ncommand\r\n:"), "{latest}");
    let history = c.cmd_str("LATENCY HISTORY command");
    assert!(history.starts_with("*1\r\n*2\r\n:"), "{history}");
    let graph = c.cmd_str("LATENCY GRAPH command");
    assert!(graph.contains("command - high ") && graph.contains(&"-".repeat(80)), "{graph}");
    let doctor = c.cmd_str("LATENCY DOCTOR");
    assert!(doctor.contains("1. command: 1 latency spikes"), "{doctor}");
    assert_eq!(c.cmd_str("LATENCY RESET nothing"), ":0\r\n");
    assert_eq!(c.cmd_str("LATENCY RESET"), ":1\r\n");
    assert_eq!(c.cmd_str("LATENCY HISTORY command"), "*0\r\n");
    assert_eq!(c.cmd_str("LATENCY GRAPH command"), "-ERR No samples available for event 'command'\r\n");
}

/// Reads monitor lines until one contains `needle`; returns them all.
fn lines_until(m: &mut Raw, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut lines = Vec::new();
    while Instant::now() < deadline {
        let line = s(&m.read_reply());
        let done = line.contains(needle);
        lines.push(line);
        if done {
            return lines;
        }
    }
    panic!("no line with {needle}: {lines:?}");
}

#[test]
fn monitor_shows_other_clients_commands() {
    let server = Server::magpie();
    let mut m = server.raw();
    assert_eq!(m.cmd_str("MONITOR"), "+OK\r\n");
    let mut c = server.raw();
    let list = c.cmd_str("CLIENT LIST");
    assert!(list.contains(" flags=O ") && list.contains(" flags=N "), "the monitor is flagged O: {list}");
    c.cmd(&[b"SET", b"a b", b"x\"\n\xff"]);
    c.cmd_str("CONFIG GET port");
    c.cmd(&[b"AUTH", b"pw"]);
    c.cmd(&[b"HELLO", b"2", b"AUTH", b"default", b"pw"]);
    c.cmd_str("SELECT 3");
    c.cmd_str("MULTI");
    c.cmd_str("INCR n");
    c.cmd_str("EXEC");
    let lines = lines_until(&mut m, "\"EXEC\"");
    let shown: Vec<&str> = lines.iter().map(|l| l.split_once(' ').map_or("", |(_, rest)| rest)).collect();
    let addr =
        lines[0].split(['[', ']']).nth(1).and_then(|x| x.split_once(' ')).map(|(_, a)| a.to_owned()).expect("addr");
    assert!(addr.starts_with("127.0.0.1:"), "{lines:?}");
    assert_eq!(
        shown,
        [
            format!("[0 {addr}] \"SET\" \"a b\" \"x\\\"\\n\\xff\"\r\n"),
            // CONFIG (an admin command) is not shown; passwords are redacted.
            format!("[0 {addr}] \"AUTH\" \"(redacted)\"\r\n"),
            format!("[0 {addr}] \"HELLO\" \"2\" \"AUTH\" \"(redacted)\" \"(redacted)\"\r\n"),
            // The database after the command ran, as Redis shows it.
            format!("[3 {addr}] \"SELECT\" \"3\"\r\n"),
            format!("[3 {addr}] \"MULTI\"\r\n"),
            format!("[3 {addr}] \"INCR\" \"n\"\r\n"),
            format!("[3 {addr}] \"EXEC\"\r\n"),
        ]
    );
    // `+<seconds>.<6 digits> `
    let stamp = lines[0].split(' ').next().expect("stamp");
    let (secs, micros) = stamp.trim_start_matches('+').split_once('.').expect("dot");
    assert!(secs.parse::<u64>().is_ok() && micros.len() == 6, "{stamp}");
}

#[test]
fn a_monitor_may_not_touch_keys_and_reset_ends_it() {
    let server = Server::magpie();
    let mut m = server.raw();
    assert_eq!(m.cmd_str("MONITOR"), "+OK\r\n");
    let mut c = server.raw();
    c.cmd_str("SET k v");
    // The line of SET, queued before GET's refusal, comes first (Redis's order).
    m.send(b"GET k\r\n");
    assert!(s(&m.read_reply()).contains("\"SET\" \"k\" \"v\""));
    assert_eq!(s(&m.read_reply()), "-ERR Replica can't interact with the keyspace\r\n");
    assert_eq!(m.cmd_str("PING"), "+PONG\r\n");
    // Its own PING is shown to it, after the reply.
    assert!(s(&m.read_reply()).contains("\"PING\""));
    m.send(b"MONITOR\r\nRESET\r\n");
    assert_eq!(s(&m.read_reply()), "+RESET\r\n", "a second MONITOR has no reply");
    assert_eq!(m.cmd_str("GET k"), "$1\r\nv\r\n");
    c.cmd_str("SET k w");
    m.set_read_timeout(Duration::from_millis(200));
    assert!(m.try_read_reply().is_err(), "no lines after RESET");
}

#[test]
fn a_monitor_that_leaves_is_forgotten() {
    let server = Server::magpie();
    let mut m = server.raw();
    assert_eq!(m.cmd_str("MONITOR"), "+OK\r\n");
    drop(m);
    let mut c = server.raw();
    for _ in 0..100 {
        assert_eq!(c.cmd_str("SET k v"), "+OK\r\n");
    }
    let mut m2 = server.raw();
    assert_eq!(m2.cmd_str("MONITOR"), "+OK\r\n");
    c.cmd_str("GET k");
    assert!(s(&m2.read_reply()).contains("\"GET\" \"k\""));
}

#[test]
fn debug_is_refused_unless_enabled() {
    let server = Server::magpie();
    let mut c = server.raw();
    assert_eq!(
        c.cmd_str("DEBUG OBJECT k"),
        "-ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it \
         from a local connection, otherwise you need to set this option in the configuration file, and then \
         restart the server.\r\n"
    );
    let local = Server::magpie_with(&["--enable-debug-command", "local"]);
    assert_eq!(local.raw().cmd_str("DEBUG SLEEP 0"), "+OK\r\n");
}

#[test]
fn debug_object_digest_and_reload() {
    let dir = std::env::temp_dir().join(format!("magpie-operator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let server = Server::magpie_with(&["--enable-debug-command", "yes", "--dir", dir.to_str().expect("dir")]);
    let mut c = server.raw();
    assert_eq!(c.cmd_str("DEBUG DIGEST"), format!("+{}\r\n", "0".repeat(40)));
    c.cmd_str("RPUSH l a b c");
    c.cmd_str("SADD s x y z");
    c.cmd_str("HSET h f v g w");
    c.cmd_str("ZADD z 1 a 2 b");
    c.cmd_str("SET i 12");
    c.cmd_str("SET t hello");
    c.cmd_str("PEXPIRE t 100000");
    c.cmd_str("SELECT 2");
    c.cmd_str("SET other 1");
    c.cmd_str("SELECT 0");
    let object = c.cmd_str("DEBUG OBJECT l");
    assert!(object.starts_with("+Value at:0x"), "{object}");
    assert!(object.contains(" refcount:1 encoding:quicklist serializedlength:19 lru:"), "{object}");
    assert!(object.contains(" ql_nodes:1 "), "{object}");
    assert!(c.cmd_str("DEBUG OBJECT i").contains("refcount:2147483647 encoding:int serializedlength:2"));
    assert_eq!(c.cmd_str("DEBUG OBJECT nokey"), "-ERR no such key\r\n");
    let digest = c.cmd_str("DEBUG DIGEST");
    let values = c.cmd_str("DEBUG DIGEST-VALUE s h nokey");
    assert!(values.ends_with(&format!("+{}\r\n", "0".repeat(40))), "{values}");
    // The same after a reload, and after the same data is written in another order.
    assert_eq!(c.cmd_str("DEBUG RELOAD"), "+OK\r\n");
    assert_eq!(c.cmd_str("DBSIZE"), ":6\r\n");
    assert_eq!(c.cmd_str("DEBUG DIGEST"), digest);
    assert_eq!(c.cmd_str("DEBUG DIGEST-VALUE s h nokey"), values);
    c.cmd_str("DEL s");
    c.cmd_str("SADD s z y x");
    assert_eq!(c.cmd_str("DEBUG DIGEST"), digest);
    c.cmd_str("SADD s w");
    assert_ne!(c.cmd_str("DEBUG DIGEST"), digest);
    // A TTL is part of the data.
    c.cmd_str("SREM s w");
    c.cmd_str("PERSIST t");
    assert_ne!(c.cmd_str("DEBUG DIGEST"), digest);
    assert_eq!(
        c.cmd_str("DEBUG RELOAD SOMETHING"),
        "-ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.\r\n"
    );
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn debug_set_active_expire_stops_the_cycle() {
    let server = Server::magpie_with(&["--enable-debug-command", "yes", "--hz", "100"]);
    let mut c = server.raw();
    assert_eq!(c.cmd_str("DEBUG SET-ACTIVE-EXPIRE 0"), "+OK\r\n");
    c.cmd_str("SET k v PX 10");
    std::thread::sleep(Duration::from_millis(200));
    // Still counted: nothing reclaimed it (DBSIZE counts keys not yet reclaimed, as Redis's).
    assert_eq!(c.cmd_str("DBSIZE"), ":1\r\n");
    assert_eq!(c.cmd_str("DEBUG SET-ACTIVE-EXPIRE 1"), "+OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.cmd_str("DBSIZE") != ":0\r\n" {
        assert!(Instant::now() < deadline, "the cycle did not reclaim the key");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn latency_histogram_and_info_latencystats() {
    let server = Server::magpie();
    let mut c = server.raw();
    for _ in 0..10 {
        c.cmd_str("SET k v");
    }
    c.cmd_str("GET k");
    c.cmd_str("CONFIG GET port");
    // In the order named; a container stands for its subcommands; unknown names are left out.
    let reply = c.cmd_str("LATENCY HISTOGRAM get nosuch set config");
    assert!(reply.starts_with("*6\r\n$3\r\nget\r\n*4\r\n$5\r\ncalls\r\n:1\r\n$14\r\nhistogram_usec\r\n*"), "{reply}");
    let set_at = reply.find("$3\r\nset\r\n*4\r\n$5\r\ncalls\r\n:10\r\n").expect("set");
    assert!(set_at < reply.find("$10\r\nconfig|get\r\n").expect("config|get"), "{reply}");
    // RESP3: maps, the buckets' counts cumulative up to all calls.
    c.cmd_str("HELLO 3");
    let reply = c.cmd_str("LATENCY HISTOGRAM set");
    assert!(reply.starts_with("%1\r\n$3\r\nset\r\n%2\r\n$5\r\ncalls\r\n:10\r\n$14\r\nhistogram_usec\r\n%"), "{reply}");
    assert!(reply.ends_with(":10\r\n"), "the last bucket counts every call: {reply}");
    let info = c.cmd_str("INFO latencystats");
    assert!(info.contains("# Latencystats\r\n"), "{info}");
    let line = info.split("\r\n").find(|l| l.starts_with("latency_percentiles_usec_set:")).expect("set line");
    let fields: Vec<&str> = line.split(':').nth(1).expect("fields").split(',').collect();
    assert_eq!(fields.len(), 3, "{line}");
    assert!(
        fields[0].starts_with("p50=") && fields[1].starts_with("p99=") && fields[2].starts_with("p99.9="),
        "{line}"
    );
    assert_eq!(s(&c.cmd(&[b"CONFIG", b"SET", b"latency-tracking-info-percentiles", b""])), "+OK\r\n");
    assert!(!c.cmd_str("INFO latencystats").contains("p50="), "no percentiles asked");
    assert_eq!(c.cmd_str("CONFIG SET latency-tracking-info-percentiles 90"), "+OK\r\n");
    assert!(c.cmd_str("INFO latencystats").contains("latency_percentiles_usec_set:p90="));
    assert_eq!(c.cmd_str("CONFIG SET latency-tracking no"), "+OK\r\n");
    assert!(!c.cmd_str("INFO latencystats").contains("latency_percentiles_usec_"));
    // Not in the default sections; in `all`, after errorstats.
    assert!(!c.cmd_str("INFO").contains("# Latencystats"));
    let all = c.cmd_str("INFO all");
    assert!(all.find("# Errorstats").expect("errorstats") < all.find("# Latencystats").expect("latencystats"));
    assert_eq!(c.cmd_str("CONFIG RESETSTAT"), "+OK\r\n");
    assert_eq!(c.cmd_str("LATENCY HISTOGRAM set"), "%0\r\n");
}

#[test]
fn monitor_shows_scripts_and_their_commands() {
    let server = Server::magpie();
    let mut m = server.raw();
    assert_eq!(m.cmd_str("MONITOR"), "+OK\r\n");
    let mut c = server.raw();
    c.cmd(&[b"EVAL", b"return redis.call('set', KEYS[1], 'v')", b"1", b"k"]);
    let lines = lines_until(&mut m, "\"set\" \"k\" \"v\"");
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains(" \"EVAL\" \"return redis.call('set', KEYS[1], 'v')\" \"1\" \"k\""), "{lines:?}");
    assert!(lines[1].contains(" [0 lua] \"set\" \"k\" \"v\""), "EVAL first, then what it ran: {lines:?}");
}
