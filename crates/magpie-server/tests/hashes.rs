//! Hashes over real sockets, for what the differential scripts cannot show: HSCAN while the
//! hash changes, the distribution of HRANDFIELD, big hashes, atomicity under concurrent
//! clients, and the generic key commands on hashes.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::Server;
use redis::Commands;

/// Fills `key` with `n` fields `f<i>` = `v<i>`, pipelined.
fn fill(c: &mut redis::Connection, key: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for i in chunk {
            cmd.arg(format!("f{i}")).arg(format!("v{i}"));
        }
        let _: i64 = cmd.query(c).expect("HSET");
    }
}

/// A full HSCAN: every (field, value) returned, and the number of calls it took.
fn hscan_all(
    c: &mut redis::Connection,
    key: &str,
    count: usize,
    mut between: impl FnMut(),
) -> (Vec<(String, String)>, usize) {
    let mut cursor = 0u64;
    let mut seen = Vec::new();
    let mut calls = 0;
    loop {
        let (next, items): (u64, Vec<(String, String)>) =
            redis::cmd("HSCAN").arg(key).arg(cursor).arg("COUNT").arg(count).query(c).expect("HSCAN");
        calls += 1;
        seen.extend(items);
        if next == 0 {
            return (seen, calls);
        }
        cursor = next;
        between();
    }
}

#[test]
fn hscan_never_misses_a_field_present_throughout_while_others_churn() {
    let server = Server::magpie();
    let mut c = server.client();
    fill(&mut c, "h", 3000);
    let stop = Arc::new(AtomicBool::new(false));
    // Another client adds and removes fields the whole time, as fast as it can.
    let churn = {
        let stop = stop.clone();
        let mut c = server.client();
        thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _: () = redis::pipe()
                    .cmd("HSET")
                    .arg("h")
                    .arg(format!("new{i}"))
                    .arg("x")
                    .ignore()
                    .cmd("HDEL")
                    .arg("h")
                    .arg(format!("f{}", 1000 + i % 2000))
                    .arg(format!("new{}", i.saturating_sub(50)))
                    .ignore()
                    .query(&mut c)
                    .unwrap();
                i += 1;
            }
            i
        })
    };
    let mut rounds = 0;
    while rounds < 5 {
        let (seen, calls) = hscan_all(&mut c, "h", 20, || thread::sleep(Duration::from_micros(200)));
        assert!(calls > 10, "the scan took several calls: {calls}");
        let fields: HashSet<&str> = seen.iter().map(|(f, _)| f.as_str()).collect();
        // f0..f999 are never touched by the churn.
        for i in 0..1000 {
            assert!(fields.contains(format!("f{i}").as_str()), "round {rounds}: missed f{i}");
        }
        for (f, v) in &seen {
            if let Some(i) = f.strip_prefix('f') {
                assert_eq!(v, &format!("v{i}"), "a field comes with its own value");
            }
        }
        rounds += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let churned = churn.join().unwrap();
    assert!(churned > 100, "the churn ran during the scans ({churned} rounds)");
}

#[test]
fn hscan_of_a_big_hash_visits_every_field_and_match_filters() {
    let server = Server::magpie();
    let mut c = server.client();
    fill(&mut c, "h", 5000);
    let (seen, calls) = hscan_all(&mut c, "h", 100, || {});
    assert!((50..=51).contains(&calls), "COUNT bounds each call: {calls}");
    assert_eq!(seen.len(), 5000, "no field twice when nothing changes");
    assert_eq!(seen.iter().map(|(f, _)| f).collect::<HashSet<_>>().len(), 5000);
    let mut cursor = 0u64;
    let mut matched = HashSet::new();
    loop {
        let (next, items): (u64, Vec<(String, String)>) =
            redis::cmd("HSCAN").arg("h").arg(cursor).arg("MATCH").arg("f1?").query(&mut c).unwrap();
        matched.extend(items.into_iter().map(|(f, _)| f));
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let want: HashSet<String> = (10..20).map(|i| format!("f{i}")).collect();
    assert_eq!(matched, want);
}

#[test]
fn hrandfield_draws_are_roughly_uniform() {
    let server = Server::magpie();
    let mut c = server.client();
    for (key, n) in [("small", 10), ("big", 1000)] {
        fill(&mut c, key, n);
        // With repeats: one call of many draws.
        let draws = n * 200;
        let got: Vec<String> = redis::cmd("HRANDFIELD").arg(key).arg(-(draws as i64)).query(&mut c).unwrap();
        assert_eq!(got.len(), draws);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for f in got {
            *counts.entry(f).or_default() += 1;
        }
        assert_eq!(counts.len(), n, "{key}: every field drawn");
        for (f, c) in &counts {
            assert!((120..=280).contains(c), "{key}: {f} drawn {c} times of {draws}");
        }
        // Without repeats: distinct fields, each as likely.
        let mut counts: HashMap<String, usize> = HashMap::new();
        let calls = 2000;
        let k = n / 10;
        for _ in 0..calls {
            let got: Vec<String> = redis::cmd("HRANDFIELD").arg(key).arg(k).query(&mut c).unwrap();
            assert_eq!(got.len(), k);
            assert_eq!(got.iter().collect::<HashSet<_>>().len(), k, "distinct");
            for f in got {
                *counts.entry(f).or_default() += 1;
            }
        }
        let expected = calls * k / n;
        for (f, c) in &counts {
            assert!(c * 10 > expected * 6 && c * 10 < expected * 14, "{key}: {f} drawn {c} times, {expected} expected");
        }
        // A single field, many times.
        let mut counts: HashMap<String, usize> = HashMap::new();
        for _ in 0..(n * 100).min(20_000) {
            let f: String = redis::cmd("HRANDFIELD").arg(key).query(&mut c).unwrap();
            *counts.entry(f).or_default() += 1;
        }
        assert_eq!(counts.len(), n.min(20_000 / 20), "{key}");
    }
    // WITHVALUES pairs each field with its own value.
    let pairs: Vec<(String, String)> =
        redis::cmd("HRANDFIELD").arg("big").arg(-500).arg("WITHVALUES").query(&mut c).unwrap();
    assert_eq!(pairs.len(), 500);
    assert!(pairs.iter().all(|(f, v)| f[1..] == v[1..]));
}

#[test]
fn hrandfield_with_a_huge_negative_count_is_refused_not_fatal() {
    let server = Server::magpie_with(&["--proto-max-bulk-len", "1mb"]);
    let mut r = server.raw();
    assert_eq!(r.cmd_str("HSET h a 1 b 2"), ":2\r\n");
    let reply = r.cmd_str("HRANDFIELD h -9223372036854775807");
    assert!(reply.starts_with("-ERR HRANDFIELD reply would exceed proto-max-bulk-len"), "{reply}");
    let reply = r.cmd_str("HRANDFIELD h -4611686018427387903 WITHVALUES");
    assert!(reply.starts_with("-ERR"), "{reply}");
    // 160000 fields of 7 bytes each (`$1\r\na\r\n`) pass the first check (6 bytes each)
    // and outgrow 1 MB while written: what was written is taken back.
    let reply = r.cmd_str("HRANDFIELD h -160000");
    assert!(reply.starts_with("-ERR HRANDFIELD reply would exceed"), "{}", &reply[..reply.len().min(100)]);
    // Below the limit it answers, and the connection is as good as before.
    let reply = r.cmd(&[b"HRANDFIELD", b"h", b"-1000"]);
    assert!(reply.starts_with(b"*1000\r\n"));
    assert_eq!(r.cmd_str("HLEN h"), ":2\r\n");
}

#[test]
fn big_hashes_cross_the_threshold_and_shrink_to_nothing() {
    let server = Server::magpie();
    let mut c = server.client();
    fill(&mut c, "h", 512);
    let enc = |c: &mut redis::Connection| -> String { redis::cmd("OBJECT").arg("ENCODING").arg("h").query(c).unwrap() };
    assert_eq!(enc(&mut c), "listpack");
    let _: i64 = c.hset("h", "f512", "v512").unwrap();
    assert_eq!(enc(&mut c), "hashtable");
    fill(&mut c, "h", 100_000);
    assert_eq!(c.hlen::<_, i64>("h").unwrap(), 100_000);
    for i in (0..100_000).step_by(9973) {
        assert_eq!(c.hget::<_, _, String>("h", format!("f{i}")).unwrap(), format!("v{i}"));
    }
    let all: HashMap<String, String> = c.hgetall("h").unwrap();
    assert_eq!(all.len(), 100_000);
    assert!(all.iter().all(|(f, v)| f[1..] == v[1..]));
    for chunk in (0..100_000).collect::<Vec<_>>().chunks(1000) {
        let fields: Vec<String> = chunk.iter().map(|i| format!("f{i}")).collect();
        let n: i64 = c.hdel("h", fields).unwrap();
        assert_eq!(n, 1000);
    }
    assert_eq!(c.exists::<_, i64>("h").unwrap(), 0, "the last HDEL removes the key");
}

#[test]
fn generic_key_commands_work_on_hashes() {
    let server = Server::magpie();
    let mut c = server.client();
    let _: i64 = c.hset_multiple("h", &[("a", "1"), ("b", "2")]).map(|()| 2).unwrap();
    assert_eq!(redis::cmd("TYPE").arg("h").query::<String>(&mut c).unwrap(), "hash");
    // COPY is deep: changing the copy leaves the original alone.
    assert_eq!(redis::cmd("COPY").arg("h").arg("h2").query::<i64>(&mut c).unwrap(), 1);
    let _: i64 = c.hset("h2", "a", "changed").unwrap();
    assert_eq!(c.hget::<_, _, String>("h", "a").unwrap(), "1");
    assert_eq!(c.hget::<_, _, String>("h2", "a").unwrap(), "changed");
    // RENAME moves the hash and its TTL.
    let _: i64 = c.expire("h2", 100).unwrap();
    let _: () = c.rename("h2", "h3").unwrap();
    assert_eq!(c.exists::<_, i64>("h2").unwrap(), 0);
    assert_eq!(c.hget::<_, _, String>("h3", "a").unwrap(), "changed");
    assert!((99..=100).contains(&c.ttl::<_, i64>("h3").unwrap()));
    // SCAN TYPE hash finds hashes only.
    let _: () = c.set("s", "x").unwrap();
    let (_, keys): (u64, Vec<String>) =
        redis::cmd("SCAN").arg(0).arg("TYPE").arg("hash").arg("COUNT").arg(1000).query(&mut c).unwrap();
    assert_eq!(keys.into_iter().collect::<HashSet<_>>(), HashSet::from(["h".to_string(), "h3".to_string()]));
    // EXPIRE: the hash goes away on time, whole.
    let _: i64 = redis::cmd("PEXPIRE").arg("h").arg(100).query(&mut c).unwrap();
    thread::sleep(Duration::from_millis(150));
    assert_eq!(c.hlen::<_, i64>("h").unwrap(), 0);
    assert_eq!(c.hget::<_, _, Option<String>>("h", "a").unwrap(), None);
    assert_eq!(c.exists::<_, i64>("h").unwrap(), 0);
    // HSET over an expired hash starts a new one.
    let _: i64 = c.hset("h", "z", "1").unwrap();
    assert_eq!(c.hgetall::<_, HashMap<String, String>>("h").unwrap(), HashMap::from([("z".into(), "1".into())]));
    assert_eq!(c.del::<_, i64>(&["h", "h3", "s"]).unwrap(), 3);
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap(), 0);
}

#[test]
fn concurrent_field_updates_are_never_lost() {
    let server = Server::magpie();
    let threads = 4;
    let per_thread = 500;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let mut c = server.client();
            thread::spawn(move || {
                for i in 0..per_thread {
                    let _: i64 = c.hincr("counters", "shared", 1).unwrap();
                    let _: f64 =
                        redis::cmd("HINCRBYFLOAT").arg("counters").arg("float").arg("0.5").query(&mut c).unwrap();
                    // Every thread races to create the same fields; HSETNX lets one win.
                    let _: i64 = c.hset_nx("first", format!("f{i}"), t).unwrap();
                    let _: i64 = c.hset("own", format!("t{t}_{i}"), i).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut c = server.client();
    let total = (threads * per_thread) as i64;
    assert_eq!(c.hget::<_, _, i64>("counters", "shared").unwrap(), total);
    assert_eq!(c.hget::<_, _, String>("counters", "float").unwrap(), (total / 2).to_string());
    assert_eq!(c.hlen::<_, i64>("first").unwrap(), per_thread as i64);
    assert_eq!(c.hlen::<_, i64>("own").unwrap(), total);
}

#[test]
fn hgetall_while_another_client_writes_sees_whole_commands() {
    // An HSET of several fields is atomic: a reader sees all of them or none.
    let server = Server::magpie();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let mut c = server.client();
        thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let v = i.to_string();
                let _: () = c.hset_multiple("h", &[("a", &v), ("b", &v), ("c", &v)]).unwrap();
                i += 1;
            }
        })
    };
    let mut c = server.client();
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut reads = 0;
    while Instant::now() < deadline {
        let all: HashMap<String, String> = c.hgetall("h").unwrap();
        if !all.is_empty() {
            assert_eq!(all.len(), 3);
            assert!(all["a"] == all["b"] && all["b"] == all["c"], "{all:?}");
        }
        reads += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(reads > 10);
}
