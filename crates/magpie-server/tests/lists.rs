//! Lists over a socket: what the differential scripts cannot show. Blocking commands (the
//! order clients wake in, wake-ups by LMOVE, RENAME and COPY, timeouts, disconnects, idle
//! cost, databases, shutdown), no element lost or served twice under concurrent clients, and
//! big lists.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Raw, Server, Takers, blocked, reply, send, wait_blocked};

/// `[key, element]` as RESP2.
fn pair(key: &str, element: &str) -> String {
    format!("*2\r\n${}\r\n{key}\r\n${}\r\n{element}\r\n", key.len(), element.len())
}

/// Server CPU time (user + system) in clock ticks, from /proc/PID/stat.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[test]
fn blocked_clients_wake_in_the_order_they_blocked() {
    let server = Server::magpie();
    let mut admin = server.raw();
    let mut clients: Vec<Raw> = Vec::new();
    for i in 0..5 {
        let mut c = server.raw();
        // Alternate the commands: the order is per key, whatever the command.
        send(&mut c, if i % 2 == 0 { "BLPOP q 0" } else { "BRPOP other q 0" });
        wait_blocked(&mut admin, i + 1);
        clients.push(c);
    }
    assert_eq!(admin.cmd_str("CLIENT LIST").matches("flags=b").count(), 5);
    // One push of five elements serves all five, oldest first, each from the head or tail.
    assert_eq!(admin.cmd_str("RPUSH q 1 2 3 4 5"), ":5\r\n");
    // Client 0 (BLPOP) takes 1 from the head; 1 (BRPOP) takes 5 from the tail; then 2, 4, 3.
    let expected = ["1", "5", "2", "4", "3"];
    for (c, want) in clients.iter_mut().zip(expected) {
        assert_eq!(reply(c), pair("q", want));
    }
    assert_eq!(admin.cmd_str("EXISTS q"), ":0\r\n");
    wait_blocked(&mut admin, 0);

    // Fewer elements than clients: the oldest are served, the others keep waiting.
    let mut waiting: Vec<Raw> = Vec::new();
    for i in 0..3 {
        let mut c = server.raw();
        send(&mut c, "BLPOP q 0");
        wait_blocked(&mut admin, i + 1);
        waiting.push(c);
    }
    assert_eq!(admin.cmd_str("LPUSH q a"), ":1\r\n");
    assert_eq!(reply(&mut waiting[0]), pair("q", "a"));
    wait_blocked(&mut admin, 2);
    // The pusher's own next command comes after the serving: the element is gone.
    assert_eq!(admin.cmd_str("LPUSH q b"), ":1\r\n");
    assert_eq!(admin.cmd_str("LLEN q"), ":0\r\n");
    assert_eq!(reply(&mut waiting[1]), pair("q", "b"));
    // In a pipeline too: the LPOP after the push finds nothing.
    admin.send(&[Raw::encode(&[b"RPUSH", b"q", b"c"]), Raw::encode(&[b"LPOP", b"q"])].concat());
    assert_eq!(reply(&mut admin), ":1\r\n");
    assert_eq!(reply(&mut admin), "$-1\r\n");
    assert_eq!(reply(&mut waiting[2]), pair("q", "c"));
    wait_blocked(&mut admin, 0);
}

#[test]
fn lmove_rename_and_copy_wake_clients_blocked_on_their_destination() {
    let server = Server::magpie();
    let mut admin = server.raw();

    // LMOVE into a key a client waits on.
    let mut waiter = server.raw();
    send(&mut waiter, "BLPOP dst 0");
    wait_blocked(&mut admin, 1);
    admin.cmd_str("RPUSH src x y");
    assert_eq!(admin.cmd_str("LMOVE src dst LEFT RIGHT"), "$1\r\nx\r\n");
    assert_eq!(reply(&mut waiter), pair("dst", "x"));
    assert_eq!(admin.cmd_str("EXISTS dst"), ":0\r\n");

    // A chain: BLMOVE waits on src, BLPOP on dst; one push to src reaches the BLPOP.
    let mut mover = server.raw();
    send(&mut mover, "BLMOVE chain dst RIGHT LEFT 0");
    wait_blocked(&mut admin, 1);
    send(&mut waiter, "BLPOP dst 0");
    wait_blocked(&mut admin, 2);
    admin.cmd_str("DEL src");
    assert_eq!(admin.cmd_str("RPUSH chain z"), ":1\r\n");
    assert_eq!(reply(&mut mover), "$1\r\nz\r\n");
    assert_eq!(reply(&mut waiter), pair("dst", "z"));
    assert_eq!(admin.cmd_str("EXISTS chain dst"), ":0\r\n");

    // BRPOPLPUSH served with the destination's type wrong by then: an error, as in Redis.
    send(&mut mover, "BRPOPLPUSH from str 0");
    wait_blocked(&mut admin, 1);
    admin.cmd_str("SET str text");
    admin.cmd_str("RPUSH from e");
    assert!(reply(&mut mover).starts_with("-WRONGTYPE"));
    assert_eq!(admin.cmd_str("LLEN from"), ":1\r\n");
    admin.cmd_str("DEL from");

    // RENAME a list onto the key. (A string, or a sorted set, renamed onto it serves nobody:
    // the client keeps waiting, as in Redis.)
    send(&mut waiter, "BRPOP renamed 0");
    wait_blocked(&mut admin, 1);
    admin.cmd_str("SET tmp text");
    assert_eq!(admin.cmd_str("RENAME tmp renamed"), "+OK\r\n");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(blocked(&mut admin), 1);
    admin.cmd_str("DEL renamed");
    admin.cmd_str("RPUSH tmp 1 2");
    assert_eq!(admin.cmd_str("RENAME tmp renamed"), "+OK\r\n");
    assert_eq!(reply(&mut waiter), pair("renamed", "2"));
    assert_eq!(admin.cmd_str("LRANGE renamed 0 -1"), "*1\r\n$1\r\n1\r\n");

    // COPY a list onto the key, also into another database.
    send(&mut waiter, "BLPOP copied 0");
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd_str("COPY renamed copied"), ":1\r\n");
    assert_eq!(reply(&mut waiter), pair("copied", "1"));
    let mut other_db = server.raw();
    other_db.cmd_str("SELECT 2");
    send(&mut other_db, "BLPOP copied 0");
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd_str("COPY renamed copied DB 2"), ":1\r\n");
    assert_eq!(reply(&mut other_db), pair("copied", "1"));
    wait_blocked(&mut admin, 0);
}

#[test]
fn a_push_in_another_database_does_not_wake() {
    let server = Server::magpie();
    let mut admin = server.raw();
    let mut waiter = server.raw();
    waiter.cmd_str("SELECT 1");
    send(&mut waiter, "BLPOP k 0");
    wait_blocked(&mut admin, 1);
    admin.cmd_str("RPUSH k in-db-0");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(blocked(&mut admin), 1);
    assert_eq!(admin.cmd_str("LLEN k"), ":1\r\n");
    admin.cmd_str("SELECT 1");
    admin.cmd_str("RPUSH k in-db-1");
    assert_eq!(reply(&mut waiter), pair("k", "in-db-1"));
    admin.cmd_str("SELECT 0");
    assert_eq!(admin.cmd_str("LLEN k"), ":1\r\n");
}

#[test]
fn timeouts_are_honoured_in_fractions_of_a_second() {
    let server = Server::magpie();
    let mut c = server.raw();
    for (timeout, ms) in [("0.2", 200u128), ("0.05", 50), ("1e-1", 100)] {
        let start = Instant::now();
        assert_eq!(c.cmd_str(&format!("BLPOP k {timeout}")), "*-1\r\n");
        let took = start.elapsed().as_millis();
        assert!(took >= ms && took < ms + 500, "BLPOP with timeout {timeout} took {took} ms");
    }
    let start = Instant::now();
    assert_eq!(c.cmd_str("BLMOVE a b LEFT LEFT 0.1"), "*-1\r\n");
    assert_eq!(c.cmd_str("BLMPOP 0.1 2 a b LEFT"), "*-1\r\n");
    assert!(start.elapsed() >= Duration::from_millis(200));
    // RESP3: a null.
    c.cmd_str("HELLO 3");
    assert_eq!(c.cmd_str("BRPOPLPUSH a b 0.01"), "_\r\n");
    // Timed out, the command is counted once.
    let stats = String::from_utf8(c.cmd(&[b"INFO", b"commandstats"])).unwrap();
    assert!(stats.contains("cmdstat_blpop:calls=3,"), "{stats}");
    // A client waiting forever is still waiting after a while, and comes out when served.
    let mut waiter = server.raw();
    send(&mut waiter, "BLPOP forever 0");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(blocked(&mut c), 1);
    c.cmd_str("RPUSH forever x");
    assert_eq!(reply(&mut waiter), pair("forever", "x"));
}

#[test]
fn a_client_that_disconnects_while_blocked_leaves_nothing_behind() {
    let server = Server::magpie();
    let mut admin = server.raw();
    for _ in 0..3 {
        let mut c = server.raw();
        send(&mut c, "BLPOP q other 0");
        wait_blocked(&mut admin, 1);
        drop(c);
        wait_blocked(&mut admin, 0);
    }
    // A later push stays in the list: no dead client takes it.
    assert_eq!(admin.cmd_str("RPUSH q x"), ":1\r\n");
    assert_eq!(admin.cmd_str("LLEN q"), ":1\r\n");
    // A client waiting behind a dead one gets the element.
    let mut dead = server.raw();
    send(&mut dead, "BLPOP w 0");
    wait_blocked(&mut admin, 1);
    let mut alive = server.raw();
    send(&mut alive, "BLPOP w 0");
    wait_blocked(&mut admin, 2);
    drop(dead);
    wait_blocked(&mut admin, 1);
    admin.cmd_str("RPUSH w y");
    assert_eq!(reply(&mut alive), pair("w", "y"));
    assert!(!admin.cmd_str("CLIENT LIST").contains("flags=b"));
}

#[test]
fn a_blocked_client_reads_on_but_runs_nothing_until_served() {
    let server = Server::magpie();
    let mut admin = server.raw();
    let mut c = server.raw();
    // The SET before the BLPOP is answered at once; the PING and GET after it wait.
    c.send(
        &[
            Raw::encode(&[b"SET", b"before", b"1"]),
            Raw::encode(&[b"BLPOP", b"q", b"0"]),
            Raw::encode(&[b"PING"]),
            Raw::encode(&[b"SET", b"after", b"1"]),
        ]
        .concat(),
    );
    assert_eq!(reply(&mut c), "+OK\r\n");
    wait_blocked(&mut admin, 1);
    // More arrives while it waits, in several writes.
    send(&mut c, "GET after");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(admin.cmd_str("EXISTS after"), ":0\r\n");
    admin.cmd_str("RPUSH q v");
    assert_eq!(reply(&mut c), pair("q", "v"));
    assert_eq!(reply(&mut c), "+PONG\r\n");
    assert_eq!(reply(&mut c), "+OK\r\n");
    assert_eq!(reply(&mut c), "$1\r\n1\r\n");
}

#[test]
fn shutdown_ends_the_wait() {
    let mut server = Server::magpie();
    let mut admin = server.raw();
    let mut c = server.raw();
    send(&mut c, "BLPOP q 0");
    wait_blocked(&mut admin, 1);
    admin.send(&Raw::encode(&[b"SHUTDOWN", b"NOSAVE"]));
    assert!(c.closed_within(Duration::from_secs(5)), "the blocked client was not closed");
    assert!(server.wait_exit(Duration::from_secs(10)).is_some(), "the server did not exit");
}

#[test]
fn thousands_of_blocked_clients_cost_no_cpu_while_idle() {
    let server = Server::magpie();
    let mut admin = server.raw();
    const N: usize = 2000;
    let mut clients: Vec<Raw> = Vec::with_capacity(N);
    for i in 0..N {
        let mut c = Raw::connect(server.port);
        // Half on one key, half on keys of their own.
        let key = if i % 2 == 0 { "shared".to_string() } else { format!("own{i}") };
        send(&mut c, &format!("BLPOP {key} 0"));
        clients.push(c);
    }
    wait_blocked(&mut admin, N as u64);
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(server.pid()) - before;
    eprintln!("{N} idle blocked clients: {used} clock ticks of server CPU in one second");
    // Clock ticks are 10 ms: allow the timer thread its few passes and some noise.
    assert!(used <= 10, "{N} idle blocked clients used {used} ticks of CPU in a second");

    // Every client of the shared key is served, each with an element of its own. (They were
    // not waited for one by one, so the order they blocked in is not known here.)
    let elements: Vec<String> = (0..N / 2).map(|i| i.to_string()).collect();
    let mut push: Vec<&[u8]> = vec![b"RPUSH", b"shared"];
    push.extend(elements.iter().map(std::string::String::as_bytes));
    admin.cmd(&push);
    let mut got = HashSet::new();
    for c in clients.iter_mut().step_by(2) {
        let r = reply(c);
        assert!(r.starts_with("*2\r\n$6\r\nshared\r\n"), "{r}");
        assert!(got.insert(r));
    }
    assert_eq!(got.len(), N / 2);
    wait_blocked(&mut admin, (N / 2) as u64);
    drop(clients);
    wait_blocked(&mut admin, 0);
}

/// Pushers and blocked poppers race; every element comes out exactly once.
#[test]
fn no_element_is_lost_or_served_twice_under_concurrent_clients() {
    let server = Server::magpie();
    const POPPERS: usize = 8;
    const PER_POPPER: usize = 300;
    let port = server.port;
    let poppers: Vec<_> = (0..POPPERS)
        .map(|p| {
            std::thread::spawn(move || {
                let mut c = Raw::connect(port);
                let mut got = Vec::new();
                for i in 0..PER_POPPER {
                    // Mixed commands on two keys; a short timeout now and then, retried.
                    let line = match (p + i) % 4 {
                        0 => "BLPOP k1 k2 5",
                        1 => "BRPOP k2 k1 5",
                        2 => "BLMPOP 5 2 k1 k2 LEFT",
                        _ => "BLMPOP 5 2 k2 k1 RIGHT COUNT 1",
                    };
                    send(&mut c, line);
                    let r = c.read_reply();
                    assert_ne!(r, b"*-1\r\n", "timed out: an element was lost");
                    let text = String::from_utf8_lossy(&r).into_owned();
                    got.push(text.lines().last().expect("element").to_string());
                }
                got
            })
        })
        .collect();
    let pushers: Vec<_> = (0..4)
        .map(|p| {
            std::thread::spawn(move || {
                let mut c = Raw::connect(port);
                let total = POPPERS * PER_POPPER / 4;
                let mut i = 0;
                while i < total {
                    let n = (1 + i % 3).min(total - i);
                    let key = if (p + i) % 2 == 0 { "k1" } else { "k2" };
                    let mut cmd: Vec<Vec<u8>> = vec![b"RPUSH".to_vec(), key.as_bytes().to_vec()];
                    cmd.extend((i..i + n).map(|j| format!("p{p}-{j}").into_bytes()));
                    let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
                    c.cmd(&args);
                    i += n;
                }
            })
        })
        .collect();
    for p in pushers {
        p.join().expect("pusher");
    }
    let mut seen = HashSet::new();
    for p in poppers {
        for e in p.join().expect("popper") {
            assert!(seen.insert(e.clone()), "{e} served twice");
        }
    }
    let mut admin = server.raw();
    assert_eq!(seen.len(), POPPERS * PER_POPPER);
    assert_eq!(admin.cmd_str("EXISTS k1 k2"), ":0\r\n");
    assert_eq!(blocked(&mut admin), 0);
}

#[test]
fn big_lists_cross_chunks_and_keep_their_order() {
    let server = Server::magpie();
    let mut c = server.client();
    let n = 50_000usize;
    let mut pipe = redis::pipe();
    for i in 0..n {
        if i % 2 == 0 {
            pipe.cmd("RPUSH").arg("big").arg(format!("r{i:06}")).ignore();
        } else {
            pipe.cmd("LPUSH").arg("big").arg(format!("l{i:06}")).ignore();
        }
    }
    let () = pipe.query(&mut c).expect("pushes");
    let len: usize = redis::cmd("LLEN").arg("big").query(&mut c).unwrap();
    assert_eq!(len, n);
    let all: Vec<String> = redis::cmd("LRANGE").arg("big").arg(0).arg(-1).query(&mut c).unwrap();
    let mut want: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    for i in 0..n {
        if i % 2 == 0 {
            want.push_back(format!("r{i:06}"));
        } else {
            want.push_front(format!("l{i:06}"));
        }
    }
    assert!(all.iter().eq(want.iter()));
    let mid: String = redis::cmd("LINDEX").arg("big").arg(n / 2 + 7).query(&mut c).unwrap();
    assert_eq!(mid, want[n / 2 + 7]);
    let pos: usize = redis::cmd("LPOS").arg("big").arg(&want[n - 3]).query(&mut c).unwrap();
    assert_eq!(pos, n - 3);
    let encoding: String = redis::cmd("OBJECT").arg("ENCODING").arg("big").query(&mut c).unwrap();
    assert_eq!(encoding, "quicklist");
    let () = redis::cmd("LTRIM").arg("big").arg(100).arg(-101).query(&mut c).unwrap();
    let len: usize = redis::cmd("LLEN").arg("big").query(&mut c).unwrap();
    assert_eq!(len, n - 200);
    let popped: Vec<String> = redis::cmd("RPOP").arg("big").arg(3).query(&mut c).unwrap();
    assert_eq!(popped, [want[n - 101].clone(), want[n - 102].clone(), want[n - 103].clone()]);
    let () = redis::cmd("EXPIRE").arg("big").arg(100).query(&mut c).unwrap();
    let ttl: i64 = redis::cmd("TTL").arg("big").query(&mut c).unwrap();
    assert!(ttl > 90);
    let kind: String = redis::cmd("TYPE").arg("big").query(&mut c).unwrap();
    assert_eq!(kind, "list");
    let deleted: usize = redis::cmd("DEL").arg("big").query(&mut c).unwrap();
    assert_eq!(deleted, 1);
}

/// An element pushed while a client waits goes to that client, even when another connection
/// pops the same key as fast as it can: the pop lets the waiter go first.
#[test]
fn a_concurrent_pop_never_takes_what_was_pushed_for_a_waiting_client() {
    let server = Server::magpie();
    let takers = ["LPOP q", "RPOP q 5", "LMOVE q elsewhere LEFT LEFT", "LMPOP 1 q LEFT"];
    let stealers = Takers::start(server.port, &takers, &["$-1\r\n", "*-1\r\n"]);
    let mut admin = server.raw();
    let mut waiter = server.raw();
    for i in 0..200 {
        send(&mut waiter, "BLPOP q 0");
        wait_blocked(&mut admin, 1);
        let element = format!("v{i}");
        admin.cmd(&[b"RPUSH", b"q", element.as_bytes()]);
        assert_eq!(reply(&mut waiter), pair("q", &element));
    }
    let stolen = stealers.stop();
    assert!(stolen.is_empty(), "taken from under a waiting client: {stolen:?}");
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("magpie-lists-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

fn stop(server: &mut Server) {
    let _ = server.raw().try_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(server.wait_exit(Duration::from_secs(10)).is_some(), "server did not exit");
}

/// Lists survive a restart from the append-only log, where a served blocking pop was logged
/// as the plain pop it performed, and from a snapshot.
#[test]
fn lists_survive_a_restart_from_the_log_and_from_a_snapshot() {
    let dir = temp_dir("persist");
    let path = dir.to_str().expect("utf-8 path");
    let mut server = Server::magpie_with(&["--dir", path, "--appendonly", "yes"]);
    let mut admin = server.raw();
    let mut waiter = server.raw();
    send(&mut waiter, "BLPOP q 0");
    wait_blocked(&mut admin, 1);
    admin.cmd_str("RPUSH q a b c");
    assert_eq!(reply(&mut waiter), pair("q", "a"));
    send(&mut waiter, "BLMOVE src dst RIGHT LEFT 0");
    wait_blocked(&mut admin, 1);
    admin.cmd_str("RPUSH src 1 2");
    assert_eq!(reply(&mut waiter), "$1\r\n2\r\n");
    admin.cmd_str("BLMPOP 0 1 q RIGHT COUNT 1");
    admin.cmd_str("LPUSH big x");
    for i in 0..300 {
        admin.cmd(&[b"RPUSH", b"big", format!("e{i}:{}", "y".repeat(100)).as_bytes()]);
    }
    admin.cmd_str("LSET big 10 changed");
    admin.cmd_str("LREM big 0 x");
    let want = |c: &mut Raw| {
        [
            c.cmd_str("LRANGE q 0 -1"),
            c.cmd_str("LRANGE src 0 -1"),
            c.cmd_str("LRANGE dst 0 -1"),
            c.cmd_str("LLEN big"),
            c.cmd_str("LINDEX big 10"),
            c.cmd_str("LINDEX big -1"),
        ]
    };
    let before = want(&mut admin);
    assert_eq!(before[0], "*1\r\n$1\r\nb\r\n");
    drop((admin, waiter));
    stop(&mut server);

    let mut server = Server::magpie_with(&["--dir", path, "--appendonly", "yes"]);
    let mut c = server.raw();
    assert_eq!(want(&mut c), before, "after replaying the log");
    assert_eq!(c.cmd_str("SAVE"), "+OK\r\n");
    drop(c);
    stop(&mut server);

    // The snapshot alone (the log switched off).
    std::fs::read_dir(&dir).expect("dir").flatten().filter(|e| !e.path().ends_with("dump.magpie")).for_each(|e| {
        let _ = if e.path().is_dir() { std::fs::remove_dir_all(e.path()) } else { std::fs::remove_file(e.path()) };
    });
    let server = Server::magpie_with(&["--dir", path]);
    let mut c = server.raw();
    assert_eq!(want(&mut c), before, "after loading the snapshot");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pop that lets waiters go first and then finds nothing logs nothing: after a restart
/// from the log the list is what it was.
#[test]
fn pops_that_yield_to_waiters_log_only_what_they_did() {
    let dir = temp_dir("yield-log");
    let path = dir.to_str().expect("utf-8 path");
    let mut server = Server::magpie_with(&["--dir", path, "--appendonly", "yes"]);
    let port = server.port;
    let stop_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop_flag.clone();
    let stealer = std::thread::spawn(move || {
        let mut c = Raw::connect(port);
        let mut took = 0;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            send(&mut c, "LPOP q");
            if reply(&mut c) != "$-1\r\n" {
                took += 1;
            }
        }
        took
    });
    let mut admin = server.raw();
    let mut waiter = server.raw();
    for i in 0..100 {
        send(&mut waiter, "BLPOP q 0");
        wait_blocked(&mut admin, 1);
        admin.cmd(&[b"RPUSH", b"q", format!("v{i}").as_bytes()]);
        assert_eq!(reply(&mut waiter), pair("q", &format!("v{i}")));
        admin.cmd(&[b"RPUSH", b"kept", format!("k{i}").as_bytes()]);
    }
    stop_flag.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(stealer.join().expect("stealer"), 0);
    let before = admin.cmd_str("LRANGE kept 0 -1");
    drop((admin, waiter));
    stop(&mut server);
    let server = Server::magpie_with(&["--dir", path, "--appendonly", "yes"]);
    let mut c = server.raw();
    assert_eq!(c.cmd_str("LRANGE kept 0 -1"), before);
    assert_eq!(c.cmd_str("EXISTS q"), ":0\r\n");
    let _ = std::fs::remove_dir_all(&dir);
}
