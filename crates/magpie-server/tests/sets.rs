//! Sets over a socket, for what the differential scripts cannot show: SSCAN while the set
//! changes, the distribution of SPOP and SRANDMEMBER, atomicity of the multi-key commands
//! against concurrent clients, big sets crossing the encodings, and the generic key commands.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::Server;

fn sadd(c: &mut redis::Connection, key: &str, members: impl IntoIterator<Item = String>) -> i64 {
    let mut cmd = redis::cmd("SADD");
    cmd.arg(key);
    for m in members {
        cmd.arg(m);
    }
    cmd.query(c).expect("SADD")
}

fn encoding(c: &mut redis::Connection, key: &str) -> String {
    redis::cmd("OBJECT").arg("ENCODING").arg(key).query(c).expect("OBJECT ENCODING")
}

fn scard(c: &mut redis::Connection, key: &str) -> usize {
    redis::cmd("SCARD").arg(key).query(c).expect("SCARD")
}

/// Runs `f` on a second connection in a loop until the returned flag is set; the thread's
/// handle returns how many rounds it did.
fn background(
    server: &Server,
    mut f: impl FnMut(&mut redis::Connection, u64) + Send + 'static,
) -> (Arc<AtomicBool>, thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut c = server.client();
    let flag = stop.clone();
    let handle = thread::spawn(move || {
        let mut round = 0;
        while !flag.load(Ordering::Relaxed) {
            f(&mut c, round);
            round += 1;
        }
        round
    });
    (stop, handle)
}

#[test]
fn sscan_never_misses_a_member_present_throughout_while_others_come_and_go() {
    let server = Server::magpie();
    let mut c = server.client();
    let stable: Vec<String> = (0..3000).map(|i| format!("stable:{i}")).collect();
    sadd(&mut c, "s", stable.iter().cloned());
    sadd(&mut c, "s", (0..3000).map(|i| format!("churn:{i}")));
    // Another client removes members and adds new ones all along (never a stable one).
    let (stop, churner) = background(&server, |c, round| {
        let _: i64 = redis::cmd("SREM").arg("s").arg(format!("churn:{round}")).query(c).unwrap();
        let _: i64 =
            redis::cmd("SADD").arg("s").arg(format!("new:{round}")).arg(format!("new2:{round}")).query(c).unwrap();
    });
    let mut seen = HashSet::new();
    let mut cursor = 0u64;
    let mut calls = 0;
    loop {
        let (next, members): (u64, Vec<String>) =
            redis::cmd("SSCAN").arg("s").arg(cursor).arg("COUNT").arg(25).query(&mut c).unwrap();
        seen.extend(members);
        calls += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
        thread::sleep(Duration::from_micros(200));
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = churner.join().unwrap();
    assert!(rounds > 50, "the set hardly changed during the scan ({rounds} rounds)");
    assert!(calls > 100, "{calls} calls");
    let missed: Vec<&String> = stable.iter().filter(|m| !seen.contains(*m)).collect();
    assert!(
        missed.is_empty(),
        "SSCAN missed {} stable members, e.g. {:?}",
        missed.len(),
        &missed[..missed.len().min(5)]
    );
    // MATCH filters what a call returns, not what it visits.
    let mut matched = HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, members): (u64, Vec<String>) = redis::cmd("SSCAN")
            .arg("s")
            .arg(cursor)
            .arg("MATCH")
            .arg("stable:1*")
            .arg("COUNT")
            .arg(500)
            .query(&mut c)
            .unwrap();
        assert!(members.iter().all(|m| m.starts_with("stable:1")), "{members:?}");
        matched.extend(members);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(matched.len(), stable.iter().filter(|m| m.starts_with("stable:1")).count());
}

/// Counts how often each member comes out of `draw`, which is called `rounds` times.
fn tally(rounds: usize, mut draw: impl FnMut() -> Vec<String>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..rounds {
        for m in draw() {
            *counts.entry(m).or_insert(0) += 1;
        }
    }
    counts
}

/// Each member's count must be within five standard deviations of `expected` (a binomial
/// count's deviation is about its square root): a fair draw fails this about once in a
/// million runs, a skewed one by a few tens of percent fails it.
fn assert_uniform(what: &str, counts: &HashMap<String, usize>, members: usize, expected: f64) {
    assert_eq!(counts.len(), members, "{what}: not every member came out: {counts:?}");
    let tolerance = 5.0 * expected.sqrt();
    for (m, &n) in counts {
        let n = n as f64;
        assert!((n - expected).abs() < tolerance, "{what}: {m} came {n} times, expected {expected} +- {tolerance}");
    }
}

#[test]
fn srandmember_and_spop_are_roughly_uniform_in_every_encoding() {
    let server = Server::magpie();
    let mut c = server.client();
    // An intset, a small set of strings, and a big one.
    for (key, members) in [
        ("ints", (0..40).map(|i| (i * 1000).to_string()).collect::<Vec<_>>()),
        ("small", (0..40).map(|i| format!("m{i}")).collect()),
        ("big", (0..200).map(|i| format!("member:{i}")).collect()),
    ] {
        sadd(&mut c, key, members.iter().cloned());
        let n = members.len();
        // Negative count: independent draws.
        let counts = tally(1, || redis::cmd("SRANDMEMBER").arg(key).arg(-(n as i64) * 1000).query(&mut c).unwrap());
        assert_uniform(&format!("SRANDMEMBER {key} -{}", n * 1000), &counts, n, 1000.0);
        // Positive count: distinct members, each about as likely (pipelined).
        let mut pipe = redis::pipe();
        for _ in 0..n * 100 / 5 {
            pipe.cmd("SRANDMEMBER").arg(key).arg(5);
        }
        let draws: Vec<Vec<String>> = pipe.query(&mut c).unwrap();
        assert!(draws.iter().all(|d| d.iter().collect::<HashSet<_>>().len() == 5), "repeats with a positive count");
        let counts = tally(1, || draws.concat());
        assert_uniform(&format!("SRANDMEMBER {key} 5"), &counts, n, 100.0);
        let mut pipe = redis::pipe();
        for _ in 0..n * 100 {
            pipe.cmd("SRANDMEMBER").arg(key);
        }
        let draws: Vec<String> = pipe.query(&mut c).unwrap();
        let counts = tally(1, || draws.clone());
        assert_uniform(&format!("SRANDMEMBER {key}"), &counts, n, 100.0);
        // SPOP: a quarter of a fresh copy, many times (pipelined): each member should be
        // popped in a quarter of the rounds.
        let mut pipe = redis::pipe();
        for _ in 0..600 {
            pipe.cmd("COPY").arg(key).arg("tmp").arg("REPLACE").ignore();
            pipe.cmd("SPOP").arg("tmp").arg(n / 4);
        }
        let popped: Vec<Vec<String>> = pipe.query(&mut c).unwrap();
        assert!(popped.iter().all(|p| p.iter().collect::<HashSet<_>>().len() == n / 4));
        let counts = tally(1, || popped.concat());
        assert_uniform(&format!("SPOP {key} {}", n / 4), &counts, n, 150.0);
        assert_eq!(scard(&mut c, key), n, "SRANDMEMBER changed {key}");
    }
}

#[test]
fn smove_is_atomic_to_concurrent_readers_across_shards() {
    let server = Server::magpie();
    let mut c = server.client();
    let keys: Vec<String> = (0..4).map(|i| format!("bucket:{i}")).collect();
    let total = 200;
    sadd(&mut c, &keys[0], (0..total).map(|i| format!("m{i}")));
    let (stop, mover) = {
        let keys = keys.clone();
        background(&server, move |c, round| {
            // Move a member from one bucket to the next (many rounds move nothing: fine).
            let m = format!("m{}", round % total);
            let from = &keys[(round / total % 4) as usize];
            let to = &keys[((round / total + 1) % 4) as usize];
            let _: i64 = redis::cmd("SMOVE").arg(from).arg(to).arg(&m).query(c).unwrap();
        })
    };
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut checks = 0;
    while Instant::now() < deadline {
        let union: Vec<String> = redis::cmd("SUNION").arg(&keys).query(&mut c).unwrap();
        assert_eq!(union.len(), total as usize, "SUNION saw a member in flight, or in two places");
        let both: i64 = redis::cmd("SINTERCARD").arg(4).arg(&keys).query(&mut c).unwrap();
        assert_eq!(both, 0);
        // The STORE form takes the same consistent view, and its result is one write.
        let stored: usize = redis::cmd("SUNIONSTORE").arg("union").arg(&keys).query(&mut c).unwrap();
        assert_eq!((stored, scard(&mut c, "union")), (total as usize, total as usize));
        let pairwise: usize = redis::cmd("SINTERSTORE").arg("inter").arg(&keys[0]).arg(&keys[1]).query(&mut c).unwrap();
        assert_eq!(pairwise, 0);
        checks += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = mover.join().unwrap();
    assert!(checks > 10 && rounds > 100, "{checks} checks, {rounds} moves");
}

#[test]
fn store_forms_replace_the_destination_atomically_for_readers() {
    let server = Server::magpie();
    let mut c = server.client();
    sadd(&mut c, "odd", (0..500).map(|i| (2 * i + 1).to_string()));
    sadd(&mut c, "even", (0..500).map(|i| (2 * i).to_string()));
    sadd(&mut c, "all", (0..1000).map(|i| i.to_string()));
    // The writer alternates the destination between two results of different sizes.
    let (stop, writer) = background(&server, |c, round| {
        let source = if round % 2 == 0 { "odd" } else { "even" };
        let n: usize = redis::cmd("SINTERSTORE").arg("dst").arg("all").arg(source).query(c).unwrap();
        assert_eq!(n, 500);
        let n: usize = redis::cmd("SDIFFSTORE").arg("dst2").arg("all").arg(source).query(c).unwrap();
        assert_eq!(n, 500);
    });
    let deadline = Instant::now() + Duration::from_millis(1000);
    let mut checks = 0;
    while Instant::now() < deadline {
        let members: Vec<i64> = redis::cmd("SMEMBERS").arg("dst").query(&mut c).unwrap();
        if members.is_empty() {
            continue; // not written yet
        }
        assert_eq!(members.len(), 500, "a half-written destination");
        let parity = members[0] % 2;
        assert!(members.iter().all(|m| m % 2 == parity), "a mix of two results");
        checks += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(checks > 10);
}

#[test]
fn big_sets_cross_the_encodings_and_shrink_back() {
    let server = Server::magpie();
    let mut c = server.client();
    // Integers: an intset up to 512, a hashtable after, for good.
    sadd(&mut c, "ints", (0..512).map(|i| (i * 3).to_string()));
    assert_eq!(encoding(&mut c, "ints"), "intset");
    sadd(&mut c, "ints", (512..100_000).map(|i| (i * 3).to_string()));
    assert_eq!((encoding(&mut c, "ints"), scard(&mut c, "ints")), ("hashtable".into(), 100_000));
    let yes: i64 = redis::cmd("SISMEMBER").arg("ints").arg(299_997).query(&mut c).unwrap();
    let no: i64 = redis::cmd("SISMEMBER").arg("ints").arg(299_998).query(&mut c).unwrap();
    assert_eq!((yes, no), (1, 0));
    let popped: Vec<i64> = redis::cmd("SPOP").arg("ints").arg(99_000).query(&mut c).unwrap();
    assert_eq!(popped.len(), 99_000);
    assert!(popped.iter().all(|m| m % 3 == 0) && popped.iter().collect::<HashSet<_>>().len() == 99_000);
    // What stays of a set popped nearly whole is built anew: 1000 integers are too many for
    // an intset, and the members are the ones not popped.
    assert_eq!((encoding(&mut c, "ints"), scard(&mut c, "ints")), ("hashtable".into(), 1000));
    let rest: Vec<i64> = redis::cmd("SMEMBERS").arg("ints").query(&mut c).unwrap();
    let popped: HashSet<i64> = popped.into_iter().collect();
    assert!(rest.iter().all(|m| !popped.contains(m)));
    // Popping 900 of 1000 rebuilds the 100 that stay: an intset now.
    let popped: Vec<i64> = redis::cmd("SPOP").arg("ints").arg(900).query(&mut c).unwrap();
    assert_eq!(popped.len(), 900);
    assert_eq!((encoding(&mut c, "ints"), scard(&mut c, "ints")), ("intset".into(), 100));

    // Strings: 200k members, then SREM most of them.
    let members: Vec<String> = (0..200_000).map(|i| format!("user:{i:08}")).collect();
    for chunk in members.chunks(10_000) {
        sadd(&mut c, "users", chunk.iter().cloned());
    }
    assert_eq!(scard(&mut c, "users"), 200_000);
    for chunk in members[..199_990].chunks(10_000) {
        let mut cmd = redis::cmd("SREM");
        cmd.arg("users").arg(chunk);
        let removed: usize = cmd.query(&mut c).unwrap();
        assert_eq!(removed, chunk.len());
    }
    let mut rest: Vec<String> = redis::cmd("SMEMBERS").arg("users").query(&mut c).unwrap();
    rest.sort();
    assert_eq!(rest, members[199_990..]);
    assert_eq!(encoding(&mut c, "users"), "hashtable");
    let all: usize = redis::cmd("SREM").arg("users").arg(&rest).query(&mut c).unwrap();
    assert_eq!(all, 10);
    let exists: i64 = redis::cmd("EXISTS").arg("users").query(&mut c).unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn generic_key_commands_work_on_sets() {
    let server = Server::magpie();
    let mut c = server.client();
    sadd(&mut c, "s", ["a", "b", "c"].map(String::from));
    sadd(&mut c, "nums", ["1", "2"].map(String::from));
    let _: () = redis::cmd("SET").arg("str").arg("x").query(&mut c).unwrap();
    let t: String = redis::cmd("TYPE").arg("s").query(&mut c).unwrap();
    assert_eq!(t, "set");

    // SCAN TYPE set finds the sets and nothing else.
    let (_, mut found): (u64, Vec<String>) =
        redis::cmd("SCAN").arg(0).arg("TYPE").arg("set").arg("COUNT").arg(1000).query(&mut c).unwrap();
    found.sort();
    assert_eq!(found, ["nums", "s"]);

    // COPY makes an independent set with the same encoding.
    let copied: i64 = redis::cmd("COPY").arg("nums").arg("nums2").query(&mut c).unwrap();
    assert_eq!((copied, encoding(&mut c, "nums2")), (1, "intset".to_string()));
    sadd(&mut c, "nums2", ["3".to_string()]);
    assert_eq!((scard(&mut c, "nums"), scard(&mut c, "nums2")), (2, 3));

    // RENAME over another type, keeping the expiry.
    let _: i64 = redis::cmd("EXPIRE").arg("s").arg(100).query(&mut c).unwrap();
    let _: () = redis::cmd("RENAME").arg("s").arg("str").query(&mut c).unwrap();
    let t: String = redis::cmd("TYPE").arg("str").query(&mut c).unwrap();
    let ttl: i64 = redis::cmd("TTL").arg("str").query(&mut c).unwrap();
    assert_eq!((t.as_str(), scard(&mut c, "str")), ("set", 3));
    assert!((99..=100).contains(&ttl));

    // A set that expires is gone, and a write to the name starts a new one.
    let _: i64 = redis::cmd("PEXPIRE").arg("str").arg(30).query(&mut c).unwrap();
    thread::sleep(Duration::from_millis(50));
    assert_eq!(scard(&mut c, "str"), 0);
    sadd(&mut c, "str", ["z".to_string()]);
    let members: Vec<String> = redis::cmd("SMEMBERS").arg("str").query(&mut c).unwrap();
    assert_eq!(members, ["z"]);

    // DEL and the wrong type.
    let deleted: i64 = redis::cmd("DEL").arg("nums").arg("nums2").arg("str").query(&mut c).unwrap();
    assert_eq!(deleted, 3);
    let _: () = redis::cmd("SET").arg("plain").arg("x").query(&mut c).unwrap();
    let err = redis::cmd("SADD").arg("plain").arg("m").query::<i64>(&mut c).unwrap_err();
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
}

/// Every set, its members sorted, for comparing two servers' contents.
fn all_sets(c: &mut redis::Connection) -> Vec<(String, String, Vec<String>)> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(c).expect("KEYS");
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let mut members: Vec<String> = redis::cmd("SMEMBERS").arg(&k).query(c).expect("SMEMBERS");
            members.sort();
            (encoding(c, &k), k, members)
        })
        .collect()
}

#[test]
fn sets_survive_a_restart_from_the_log_and_from_a_snapshot() {
    let dir = std::env::temp_dir().join(format!("magpie-sets-{}-{}", std::process::id(), common::free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.to_str().unwrap();
    let args = ["--dir", dir_arg, "--appendonly", "yes", "--appendfsync", "always"];
    let before = {
        let server = Server::magpie_with(&args);
        let mut c = server.client();
        sadd(&mut c, "ints", (0..100).map(|i| (i * 7).to_string()));
        sadd(&mut c, "small", ["a", "b", "", "1"].map(String::from));
        sadd(&mut c, "big", (0..1000).map(|i| format!("m{i}")));
        sadd(&mut c, "gone", ["x".to_string()]);
        // Commands whose effect the log must record as it happened: random pops, moves, and
        // the STORE forms.
        let _: Vec<String> = redis::cmd("SPOP").arg("big").arg(10).query(&mut c).unwrap();
        let _: Option<String> = redis::cmd("SPOP").arg("ints").query(&mut c).unwrap();
        let _: Vec<String> = redis::cmd("SPOP").arg("gone").arg(5).query(&mut c).unwrap();
        let _: Vec<String> = redis::cmd("SPOP").arg("big").arg(900).query(&mut c).unwrap();
        let _: i64 = redis::cmd("SMOVE").arg("small").arg("moved").arg("a").query(&mut c).unwrap();
        let _: i64 = redis::cmd("SINTERSTORE").arg("inter").arg("ints").arg("small").query(&mut c).unwrap();
        let _: i64 = redis::cmd("SUNIONSTORE").arg("union").arg("small").arg("moved").query(&mut c).unwrap();
        all_sets(&mut c)
    };
    assert_eq!(
        before.iter().map(|(_, k, _)| k.as_str()).collect::<Vec<_>>(),
        ["big", "ints", "moved", "small", "union"]
    );
    {
        let server = Server::magpie_with(&args);
        let mut c = server.client();
        assert_eq!(all_sets(&mut c), before, "after replaying the log");
        let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    }
    {
        let server = Server::magpie_with(&["--dir", dir_arg]);
        let mut c = server.client();
        assert_eq!(all_sets(&mut c), before, "after loading the snapshot");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
