//! Transactions over sockets, with several clients: MULTI/EXEC atomic to every observer, WATCH
//! invalidated by other clients, optimistic counters that lose no update, transactions logged
//! whole, and the interactive BEGIN/COMMIT/ROLLBACK.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Server;
use redis::Commands;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("magpie-txn-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// Readers never see the middle of an EXEC, across shards and databases.
#[test]
fn exec_is_atomic_to_every_observer() {
    let s = Server::magpie();
    let stop = Arc::new(AtomicBool::new(false));
    let mut con = s.client();
    let _: () = redis::cmd("MSET").arg("a").arg(0).arg("b").arg(0).arg("c").arg(0).query(&mut con).unwrap();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let mut con = s.client();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let v: Vec<i64> = redis::cmd("MGET").arg("a").arg("b").arg("c").query(&mut con).expect("MGET");
                    assert!(v[0] == v[1] && v[1] == v[2], "saw the middle of a transaction: {v:?}");
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let mut con = s.client();
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let (): () = redis::pipe()
                        .atomic()
                        .cmd("INCR")
                        .arg("a")
                        .cmd("INCR")
                        .arg("b")
                        .cmd("INCR")
                        .arg("c")
                        .query(&mut con)
                        .map(|_: Vec<i64>| ())
                        .expect("EXEC");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let v: Vec<i64> = redis::cmd("MGET").arg("a").arg("b").arg("c").query(&mut con).unwrap();
    assert_eq!(v, vec![1000, 1000, 1000]);
}

/// The classic optimistic loop: WATCH, read, MULTI, write, EXEC, retry on nil. No update is
/// lost, and conflicts do happen (so WATCH is doing something).
#[test]
fn watch_loses_no_update_and_reports_conflicts() {
    let s = Server::magpie();
    let conflicts = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let mut con = s.client();
            let conflicts = conflicts.clone();
            std::thread::spawn(move || {
                for _ in 0..200 {
                    loop {
                        let _: () = redis::cmd("WATCH").arg("counter").query(&mut con).unwrap();
                        let v: Option<i64> = con.get("counter").unwrap();
                        let result: Option<Vec<String>> = redis::pipe()
                            .atomic()
                            .cmd("SET")
                            .arg("counter")
                            .arg(v.unwrap_or(0) + 1)
                            .query(&mut con)
                            .unwrap();
                        if result.is_some() {
                            break;
                        }
                        conflicts.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let mut con = s.client();
    assert_eq!(con.get::<_, i64>("counter").unwrap(), 800);
    assert!(conflicts.load(Ordering::Relaxed) > 0, "four clients never conflicted: WATCH tested nothing");
}

#[test]
fn watch_sees_other_clients_and_expiry() {
    let s = Server::magpie();
    let (mut a, mut b) = (s.client(), s.client());
    let _: () = a.set("k", 1).unwrap();
    let _: () = redis::cmd("WATCH").arg("k").query(&mut a).unwrap();
    let _: () = b.set("k", 2).unwrap();
    let r: Option<Vec<i64>> = redis::pipe().atomic().cmd("INCR").arg("k").query(&mut a).unwrap();
    assert_eq!(r, None);
    // A key that expires between WATCH and EXEC (and is not yet reclaimed) aborts it too.
    let _: () = redis::cmd("SET").arg("e").arg("v").arg("PX").arg(50).query(&mut a).unwrap();
    let _: () = redis::cmd("WATCH").arg("e").query(&mut a).unwrap();
    std::thread::sleep(Duration::from_millis(80));
    let r: Option<Vec<i64>> = redis::pipe().atomic().cmd("INCR").arg("x").query(&mut a).unwrap();
    assert_eq!(r, None);
    // A disconnect lets go of the watches (nothing left behind to slow writes).
    let _: () = redis::cmd("WATCH").arg("k").arg("e").query(&mut b).unwrap();
    drop(b);
    let _: () = a.set("k", 3).unwrap();
}

/// Clients blocked on a key are served after the transaction that fills it, with its result.
#[test]
fn blocked_clients_are_served_after_the_whole_transaction() {
    let s = Server::magpie();
    let mut waiter = s.client();
    let t = std::thread::spawn(move || {
        let got: (String, String) = redis::cmd("BLPOP").arg("q").arg(5).query(&mut waiter).unwrap();
        got
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut con = s.client();
    let _: Vec<redis::Value> = redis::pipe()
        .atomic()
        .cmd("RPUSH")
        .arg("q")
        .arg("first")
        .cmd("LPUSH")
        .arg("q")
        .arg("zeroth")
        .query(&mut con)
        .unwrap();
    assert_eq!(t.join().unwrap(), ("q".to_owned(), "zeroth".to_owned()));
    let rest: Vec<String> = con.lrange("q", 0, -1).unwrap();
    assert_eq!(rest, vec!["first"]);
}

/// A transaction is one record in the log: after a crash it is there whole once acknowledged,
/// and a record cut short by the crash leaves none of it.
#[test]
fn a_transaction_is_logged_whole() {
    let dir = temp_dir("whole");
    let args = ["--dir", dir.to_str().unwrap(), "--appendonly", "yes", "--appendfsync", "always"];
    let s = Server::magpie_with(&args);
    let mut con = s.client();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for i in 0..1000 {
        pipe.cmd("SET").arg(format!("t{i}")).arg(i).ignore();
    }
    pipe.cmd("SELECT").arg(3).ignore().cmd("SET").arg("in-db-3").arg("x").ignore();
    let (): () = pipe.query(&mut con).unwrap();
    drop(s); // SIGKILL, right after the acknowledgement
    let s = Server::magpie_with(&args);
    let mut con = s.client();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 1000);
    assert_eq!(con.get::<_, i64>("t999").unwrap(), 999);
    let _: () = redis::cmd("SELECT").arg(3).query(&mut con).unwrap();
    assert_eq!(con.get::<_, String>("in-db-3").unwrap(), "x");
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
    // Another transaction, then its record cut as a crash mid-write would: none of it stays.
    let mut pipe = redis::pipe();
    pipe.atomic();
    for i in 0..100 {
        pipe.cmd("SET").arg(format!("u{i}")).arg(i).ignore();
    }
    let (): () = pipe.query(&mut con).unwrap();
    drop(s);
    let manifest = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    let incr = manifest.lines().rfind(|l| l.starts_with("incr ")).unwrap().trim_start_matches("incr ");
    let path = dir.join("appendonlydir").join(incr);
    let len = common::log_records_end(&path);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 10).unwrap();
    let s = Server::magpie_with(&args);
    let mut con = s.client();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut con).unwrap(), 1000, "half a transaction was replayed");
    assert_eq!(con.get::<_, Option<i64>>("u0").unwrap(), None);
}

/// EXEC waits for commands in flight and holds new ones back: a long transaction does not
/// interleave with a pipelined client on another connection.
#[test]
fn exec_runs_alone() {
    let s = Server::magpie();
    let mut con = s.client();
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let mut con = s.client();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _: i64 = con.incr("noise", 1).unwrap();
                n += 1;
            }
            n
        })
    };
    let started = Instant::now();
    for _ in 0..100 {
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("GET").arg("noise");
        for _ in 0..50 {
            pipe.cmd("PING").ignore();
        }
        pipe.cmd("GET").arg("noise");
        let (first, last): (Option<i64>, Option<i64>) = pipe.query(&mut con).unwrap();
        assert_eq!(first, last, "another client's INCR ran in the middle of EXEC");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(other.join().unwrap() > 0);
    assert!(started.elapsed() < Duration::from_secs(30));
}

// ---------------------------------------------------------------------------------------------
// BEGIN / COMMIT / ROLLBACK

fn cmd<T: redis::FromRedisValue>(con: &mut redis::Connection, line: &str) -> redis::RedisResult<T> {
    let mut c = redis::cmd(line.split(' ').next().expect("a command"));
    for arg in line.split(' ').skip(1) {
        c.arg(arg);
    }
    c.query(con)
}

#[test]
fn interactive_writes_are_private_until_commit() {
    let s = Server::magpie();
    let (mut a, mut b) = (s.client(), s.client());
    let _: () = cmd(&mut a, "SET k old").unwrap();
    let _: () = cmd(&mut a, "BEGIN").unwrap();
    let _: () = cmd(&mut a, "SET k new").unwrap();
    let _: i64 = cmd(&mut a, "RPUSH l x y").unwrap();
    // The transaction reads its own writes; others see none of them.
    assert_eq!(cmd::<String>(&mut a, "GET k").unwrap(), "new");
    assert_eq!(cmd::<Vec<String>>(&mut a, "LRANGE l 0 -1").unwrap(), vec!["x", "y"]);
    assert_eq!(cmd::<String>(&mut b, "GET k").unwrap(), "old");
    assert_eq!(cmd::<i64>(&mut b, "EXISTS l").unwrap(), 0);
    let _: () = cmd(&mut a, "COMMIT").unwrap();
    assert_eq!(cmd::<String>(&mut b, "GET k").unwrap(), "new");
    assert_eq!(cmd::<Vec<String>>(&mut b, "LRANGE l 0 -1").unwrap(), vec!["x", "y"]);
    // ROLLBACK discards, and so does a disconnect.
    let _: () = cmd(&mut a, "BEGIN").unwrap();
    let _: () = cmd(&mut a, "DEL k").unwrap();
    let _: () = cmd(&mut a, "ROLLBACK").unwrap();
    let _: () = cmd(&mut a, "START").unwrap();
    let _: () = cmd(&mut a, "DEL k").unwrap();
    drop(a);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(cmd::<String>(&mut b, "GET k").unwrap(), "new");
    // Nothing is left watching: a write after the disconnect is fine, and a new
    // transaction on the key commits.
    let _: () = cmd(&mut b, "SET k newer").unwrap();
    let _: () = cmd(&mut b, "BEGIN").unwrap();
    let _: i64 = cmd(&mut b, "APPEND k !").unwrap();
    let _: () = cmd(&mut b, "COMMIT").unwrap();
    assert_eq!(cmd::<String>(&mut b, "GET k").unwrap(), "newer!");
}

#[test]
fn a_conflict_rolls_back_and_names_the_key() {
    let s = Server::magpie();
    let (mut a, mut b) = (s.client(), s.client());
    let _: () = cmd(&mut a, "MSET x 1 y 1").unwrap();
    let _: () = cmd(&mut a, "BEGIN").unwrap();
    let _: i64 = cmd(&mut a, "INCR x").unwrap();
    let _: () = cmd(&mut b, "SET x 100").unwrap();
    let _: i64 = cmd(&mut a, "INCR y").unwrap();
    let err = cmd::<()>(&mut a, "COMMIT").unwrap_err();
    assert_eq!(err.code(), Some("CONFLICT"));
    assert!(err.to_string().contains("'x'"), "{err}");
    assert_eq!(cmd::<Vec<i64>>(&mut b, "MGET x y").unwrap(), vec![100, 1], "nothing applied");
    // A key only read counts too: write skew is refused (serializable).
    let _: () = cmd(&mut a, "BEGIN").unwrap();
    let _: i64 = cmd(&mut a, "GET x").unwrap();
    let _: () = cmd(&mut a, "SET y 2").unwrap();
    let _: () = cmd(&mut b, "SET x 0").unwrap();
    assert_eq!(cmd::<()>(&mut a, "COMMIT").unwrap_err().code(), Some("CONFLICT"));
    assert_eq!(cmd::<i64>(&mut b, "GET y").unwrap(), 1);
    // A key that was missing, and that someone else creates, conflicts.
    let _: () = cmd(&mut a, "BEGIN").unwrap();
    let _: i64 = cmd(&mut a, "EXISTS fresh").unwrap();
    let _: () = cmd(&mut b, "SET fresh 1").unwrap();
    assert_eq!(cmd::<()>(&mut a, "COMMIT").unwrap_err().code(), Some("CONFLICT"));
    // After a conflict the connection is out of the transaction.
    assert!(cmd::<()>(&mut a, "COMMIT").unwrap_err().to_string().contains("COMMIT without BEGIN"));
}

/// Many clients read-modify-write shared counters in interactive transactions, retrying on
/// CONFLICT: every increment lands exactly once, and conflicts were reported.
#[test]
fn interactive_counters_lose_no_update() {
    let s = Server::magpie();
    let conflicts = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|t| {
            let mut con = s.client();
            let conflicts = conflicts.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let key = format!("c{}", (t + i) % 3);
                    loop {
                        let _: () = cmd(&mut con, "BEGIN").unwrap();
                        let v: Option<i64> = con.get(&key).unwrap();
                        let _: () = con.set(&key, v.unwrap_or(0) + 1).unwrap();
                        let _: i64 = con.incr("total", 1).unwrap();
                        match cmd::<()>(&mut con, "COMMIT") {
                            Ok(()) => break,
                            Err(e) if e.code() == Some("CONFLICT") => {
                                conflicts.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let mut con = s.client();
    let counts: Vec<i64> = cmd(&mut con, "MGET c0 c1 c2 total").unwrap();
    assert_eq!(counts[..3].iter().sum::<i64>(), 400);
    assert_eq!(counts[3], 400);
    assert!(conflicts.load(Ordering::Relaxed) > 0, "no conflict at all: the test tested nothing");
}

#[test]
fn what_is_refused_inside_begin() {
    let s = Server::magpie();
    let mut a = s.client();
    let _: () = cmd(&mut a, "BEGIN").unwrap();
    for (line, text) in [
        ("BEGIN", "BEGIN calls can not be nested"),
        ("MULTI", "MULTI is not allowed inside BEGIN"),
        ("WATCH k", "WATCH is not allowed inside BEGIN"),
        ("BLPOP k 0", "BLPOP is a blocking command"),
        ("KEYS *", "KEYS reads or writes the whole keyspace"),
        ("FLUSHALL", "FLUSHALL reads or writes the whole keyspace"),
        ("COPY a b DB 1", "COPY to another database"),
    ] {
        let e = cmd::<()>(&mut a, line).unwrap_err();
        assert!(e.to_string().contains(text), "{line}: {e}");
    }
    // Still in the transaction, which still works.
    let _: () = cmd(&mut a, "SET k v").unwrap();
    let _: () = cmd(&mut a, "COMMIT").unwrap();
    // BEGIN inside MULTI.
    let _: () = cmd(&mut a, "MULTI").unwrap();
    assert!(cmd::<()>(&mut a, "BEGIN").unwrap_err().to_string().contains("BEGIN is not allowed inside MULTI"));
    let _: () = cmd(&mut a, "DISCARD").unwrap();
}

#[test]
fn transactions_over_their_limits_are_rolled_back() {
    let s = Server::magpie_with(&["--txn-max-keys", "10", "--txn-timeout", "1"]);
    let (mut a, mut b) = (s.client(), s.client());
    let _: () = cmd(&mut a, "BEGIN").unwrap();
    let _: () = cmd(&mut a, "MSET k1 1 k2 2 k3 3 k4 4 k5 5 k6 6 k7 7 k8 8 k9 9").unwrap();
    let e = cmd::<()>(&mut a, "MSET k10 1 k11 1").unwrap_err();
    assert!(e.to_string().contains("txn-max-keys"), "{e}");
    // Rolled back: every command says so until the client ends the transaction.
    assert!(cmd::<()>(&mut a, "GET k1").unwrap_err().to_string().contains("send ROLLBACK"));
    let _: () = cmd(&mut a, "ROLLBACK").unwrap();
    assert_eq!(cmd::<i64>(&mut b, "EXISTS k1").unwrap(), 0);
    // Too old, even while the client says nothing.
    let _: () = cmd(&mut a, "BEGIN").unwrap();
    let _: () = cmd(&mut a, "SET held v").unwrap();
    std::thread::sleep(Duration::from_millis(1300));
    let _: () = cmd(&mut b, "SET held other").unwrap();
    let e = cmd::<()>(&mut a, "COMMIT").unwrap_err();
    assert!(e.to_string().contains("txn-timeout"), "{e}");
    assert_eq!(cmd::<String>(&mut b, "GET held").unwrap(), "other");
}

/// A committed transaction is logged whole: acknowledged, it survives a crash; and clients
/// blocked on a key it filled are served at COMMIT.
#[test]
fn commit_is_durable_and_wakes_blocked_clients() {
    let dir = temp_dir("commit");
    let args = ["--dir", dir.to_str().unwrap(), "--appendonly", "yes", "--appendfsync", "always"];
    let s = Server::magpie_with(&args);
    let mut waiter = s.client();
    let t = std::thread::spawn(move || {
        let got: (String, String) = redis::cmd("BLPOP").arg("q").arg(5).query(&mut waiter).unwrap();
        got
    });
    std::thread::sleep(Duration::from_millis(100));
    let mut a = s.client();
    let _: () = cmd(&mut a, "BEGIN").unwrap();
    let _: i64 = cmd(&mut a, "RPUSH q job1 job2").unwrap();
    let _: f64 = cmd(&mut a, "INCRBYFLOAT f 1.5").unwrap();
    let _: i64 = cmd(&mut a, "SADD s a b c").unwrap();
    let _: () = cmd(&mut a, "SELECT 2").unwrap();
    let _: () = cmd(&mut a, "SET in2 yes").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!t.is_finished(), "a blocked client saw an uncommitted push");
    let _: () = cmd(&mut a, "COMMIT").unwrap();
    assert_eq!(t.join().unwrap(), ("q".to_owned(), "job1".to_owned()));
    drop(s); // SIGKILL right after the acknowledgement
    let s = Server::magpie_with(&args);
    let mut con = s.client();
    assert_eq!(cmd::<Vec<String>>(&mut con, "LRANGE q 0 -1").unwrap(), vec!["job2"]);
    assert_eq!(cmd::<String>(&mut con, "GET f").unwrap(), "1.5");
    assert_eq!(cmd::<i64>(&mut con, "SCARD s").unwrap(), 3);
    let _: () = cmd(&mut con, "SELECT 2").unwrap();
    assert_eq!(cmd::<String>(&mut con, "GET in2").unwrap(), "yes");
    let _: () = cmd(&mut con, "SELECT 0").unwrap();
    // A transaction whose record a crash cut short leaves none of its writes.
    let _: () = cmd(&mut con, "BEGIN").unwrap();
    for i in 0..50 {
        let _: () = cmd(&mut con, &format!("SET cut{i} {i}")).unwrap();
    }
    let _: i64 = cmd(&mut con, "DEL f").unwrap();
    let _: () = cmd(&mut con, "COMMIT").unwrap();
    drop(s);
    let manifest = std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    let incr = manifest.lines().rfind(|l| l.starts_with("incr ")).unwrap().trim_start_matches("incr ");
    let path = dir.join("appendonlydir").join(incr);
    let len = common::log_records_end(&path);
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 7).unwrap();
    let s = Server::magpie_with(&args);
    let mut con = s.client();
    assert_eq!(cmd::<i64>(&mut con, "EXISTS cut0 cut49").unwrap(), 0, "half a transaction was replayed");
    assert_eq!(cmd::<String>(&mut con, "GET f").unwrap(), "1.5");
}

/// Keyspace events of an interactive transaction go out at COMMIT (never for a rollback), and
/// RESET ends any kind of transaction.
#[test]
fn events_wait_for_commit_and_reset_ends_transactions() {
    let s = Server::magpie_with(&["--notify-keyspace-events", "KEA"]);
    let mut sub = s.client();
    sub.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut ps = sub.as_pubsub();
    ps.psubscribe("__keyevent@0__:*").unwrap();
    let mut a = s.client();
    let _: () = cmd(&mut a, "BEGIN").unwrap();
    let _: () = cmd(&mut a, "SET k v").unwrap();
    assert!(ps.get_message().is_err(), "an event of an uncommitted write was published");
    let _: () = cmd(&mut a, "ROLLBACK").unwrap();
    let _: () = cmd(&mut a, "BEGIN").unwrap();
    let _: () = cmd(&mut a, "SET k v").unwrap();
    let _: () = cmd(&mut a, "COMMIT").unwrap();
    let msg = ps.get_message().expect("the event, at COMMIT");
    assert_eq!((msg.get_channel_name(), msg.get_payload::<String>().unwrap()), ("__keyevent@0__:set", "k".to_owned()));
    // RESET rolls back BEGIN and discards MULTI.
    let _: () = cmd(&mut a, "BEGIN").unwrap();
    let _: () = cmd(&mut a, "SET k other").unwrap();
    let _: String = cmd(&mut a, "RESET").unwrap();
    assert_eq!(cmd::<String>(&mut a, "GET k").unwrap(), "v");
    let _: () = cmd(&mut a, "MULTI").unwrap();
    let _: String = cmd(&mut a, "RESET").unwrap();
    assert!(cmd::<()>(&mut a, "EXEC").unwrap_err().to_string().contains("EXEC without MULTI"));
}

// ---------------------------------------------------------------------------------------------
// EXEC holding only the shards of the keys it declares

/// Two keys always equal to readers of both, while transactions of declared keys (which hold
/// only those keys' shards, not the whole server) change them, with and without WATCH.
#[test]
fn a_declared_transaction_is_atomic_to_readers_of_its_keys() {
    let s = Server::magpie();
    let stop = Arc::new(AtomicBool::new(false));
    let mut con = s.client();
    let _: () = redis::cmd("MSET").arg("x").arg(0).arg("y").arg(0).query(&mut con).unwrap();
    let readers: Vec<_> = (0..3)
        .map(|i| {
            let mut con = s.client();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // MGET, and a GET of each key inside a read-only declared transaction.
                    let v: Vec<i64> = if i == 0 {
                        redis::cmd("MGET").arg("x").arg("y").query(&mut con).expect("MGET")
                    } else {
                        redis::pipe().atomic().get("x").get("y").query(&mut con).expect("EXEC")
                    };
                    assert_eq!(v[0], v[1], "saw half a transaction");
                    seen += 1;
                }
                seen
            })
        })
        .collect();
    let writers: Vec<_> = (0..3)
        .map(|i| {
            let mut con = s.client();
            std::thread::spawn(move || {
                let mut done = 0;
                while done < 300 {
                    if i == 2 {
                        // The optimistic form: the WATCH check is one step with the writes.
                        let _: () = redis::cmd("WATCH").arg("x").query(&mut con).expect("WATCH");
                        let x: i64 = con.get("x").expect("GET");
                        let r: Option<(i64, i64)> = redis::pipe()
                            .atomic()
                            .set("x", x + 1)
                            .ignore()
                            .incr("x", 0)
                            .incr("y", 1)
                            .query(&mut con)
                            .expect("EXEC");
                        if r.is_none() {
                            continue;
                        }
                    } else {
                        let _: (i64, i64) =
                            redis::pipe().atomic().incr("x", 1).incr("y", 1).query(&mut con).expect("EXEC");
                    }
                    done += 1;
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    let v: Vec<i64> = redis::cmd("MGET").arg("x").arg("y").query(&mut con).unwrap();
    assert_eq!(v, vec![900, 900]);
}

/// Keys for another client to read: with 64 shards, most of them are in other shards than a
/// given key's.
fn other_keys() -> Vec<String> {
    (0..8).map(|i| format!("elsewhere:{i}")).collect()
}

/// A long declared transaction on one key does not stop commands on other shards: while it
/// runs, another client's GETs of other keys are answered (they were held back for the whole
/// EXEC when it ran alone), and none of them sees a value of its own key half-written.
#[test]
fn other_shards_are_served_during_a_long_declared_transaction() {
    let s = Server::magpie();
    let mut con = s.client();
    for k in other_keys() {
        let _: () = con.set(&k, "v").unwrap();
    }
    let running = Arc::new(AtomicBool::new(false));
    let served_during = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let mut con = s.client();
        let (running, served_during, stop) = (running.clone(), served_during.clone(), stop.clone());
        std::thread::spawn(move || {
            let keys = other_keys();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let before = running.load(Ordering::SeqCst);
                let v: String = con.get(&keys[i % keys.len()]).expect("GET");
                assert_eq!(v, "v");
                if before && running.load(Ordering::SeqCst) {
                    served_during.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        })
    };
    // Each transaction: many commands on one key, taking far longer than a GET.
    let mut pipe = redis::pipe();
    pipe.atomic();
    for _ in 0..20_000 {
        pipe.cmd("APPEND").arg("long").arg("x").ignore();
    }
    pipe.cmd("STRLEN").arg("long");
    for round in 1..=5u64 {
        running.store(true, Ordering::SeqCst);
        let (len,): (u64,) = pipe.query(&mut con).unwrap();
        running.store(false, Ordering::SeqCst);
        assert_eq!(len, round * 20_000);
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert!(served_during.load(Ordering::Relaxed) > 0, "no GET of another key was served while the transactions ran");
}

/// Transactions that reach beyond their declared keys still run alone: a script, a keyless
/// command, SELECT, MOVE, SORT with a GET pattern. Each sees a key another client increments
/// the same before and after its middle, as `exec_runs_alone` checks for PING.
#[test]
fn undeclared_transactions_still_run_alone() {
    let s = Server::magpie();
    let mut con = s.client();
    let _: () = redis::cmd("RPUSH").arg("list").arg(1).arg(2).query(&mut con).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let mut con = s.client();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _: i64 = con.incr("noise", 1).unwrap();
                n += 1;
            }
            n
        })
    };
    type Middle = fn(&mut redis::Pipeline);
    let middles: [(&str, Middle); 5] = [
        ("EVAL", |p| {
            p.cmd("EVAL").arg("return redis.call('GET', KEYS[1])").arg(1).arg("some").ignore();
        }),
        ("DBSIZE", |p| {
            p.cmd("DBSIZE").ignore();
        }),
        ("SELECT", |p| {
            p.cmd("SELECT").arg(0).ignore();
        }),
        ("MOVE", |p| {
            p.cmd("MOVE").arg("absent").arg(1).ignore();
        }),
        ("SORT", |p| {
            p.cmd("SORT").arg("list").arg("BY").arg("nosort").arg("GET").arg("#").ignore();
        }),
    ];
    for (name, middle) in middles {
        for _ in 0..20 {
            let mut pipe = redis::pipe();
            pipe.atomic().cmd("GET").arg("noise");
            for _ in 0..200 {
                middle(&mut pipe);
            }
            pipe.cmd("GET").arg("noise");
            let (first, last): (Option<i64>, Option<i64>) = pipe.query(&mut con).unwrap();
            assert_eq!(first, last, "another client's INCR ran in the middle of an EXEC with {name}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(other.join().unwrap() > 0);
}

/// WATCH of keys in another database and in other shards than the transaction's own keys:
/// the check and the writes are one step, so a write by another client in between is caught.
#[test]
fn watch_in_a_declared_transaction() {
    let s = Server::magpie();
    let (mut a, mut b) = (s.client(), s.client());
    let _: () = redis::cmd("SELECT").arg(2).query(&mut a).unwrap();
    let _: () = redis::cmd("WATCH").arg("w").query(&mut a).unwrap();
    let _: () = redis::cmd("SELECT").arg(0).query(&mut a).unwrap();
    let _: () = redis::cmd("SELECT").arg(2).query(&mut b).unwrap();
    let _: () = b.set("w", 1).unwrap();
    let r: Option<(i64,)> = redis::pipe().atomic().incr("mine", 1).query(&mut a).unwrap();
    assert_eq!(r, None, "a watched key changed in another database did not abort EXEC");
    assert_eq!(a.get::<_, Option<i64>>("mine").unwrap(), None);
    // Unchanged: the transaction runs, and the watch is gone afterwards.
    let _: () = redis::cmd("WATCH").arg("v1").arg("v2").query(&mut a).unwrap();
    let r: Option<(i64, i64)> = redis::pipe().atomic().incr("v1", 1).incr("mine", 1).query(&mut a).unwrap();
    assert_eq!(r, Some((1, 1)));
    let _: () = redis::cmd("SELECT").arg(0).query(&mut b).unwrap();
    let _: () = b.set("v1", 5).unwrap();
    let r: Option<(i64,)> = redis::pipe().atomic().incr("v1", 1).query(&mut a).unwrap();
    assert_eq!(r, Some((6,)));
}

/// Declared transactions from many clients at once, logged as they ran: the log replays to
/// the same state (counters, a list built by the transactions, expired keys deleted inside).
#[test]
fn declared_transactions_replay_to_the_same_state() {
    let dir = temp_dir("declared");
    let args = ["--dir", dir.to_str().unwrap(), "--appendonly", "yes", "--appendfsync", "everysec"];
    let mut s = Server::magpie_with(&args);
    let writers: Vec<_> = (0..4)
        .map(|c| {
            let mut con = s.client();
            std::thread::spawn(move || {
                for i in 0..300 {
                    let (k1, k2) = (format!("c{}", i % 7), format!("c{}", (i + c) % 11));
                    let _: () = redis::pipe()
                        .atomic()
                        .incr(&k1, 1)
                        .ignore()
                        .incr(&k2, 2)
                        .ignore()
                        .rpush("log", format!("{c}:{i}"))
                        .ignore()
                        .cmd("SET")
                        .arg(format!("short{c}"))
                        .arg(i)
                        .arg("PX")
                        .arg(1)
                        .ignore()
                        .cmd("GET")
                        .arg(format!("short{c}"))
                        .ignore()
                        .query(&mut con)
                        .expect("EXEC");
                    // Noise outside transactions, on other keys.
                    let _: i64 = con.incr(format!("plain{c}"), 1).expect("INCR");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut con = s.client();
    let dump = |con: &mut redis::Connection| -> Vec<(String, String)> {
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).unwrap();
        keys.sort();
        keys.into_iter()
            .map(|k| {
                let t: String = redis::cmd("TYPE").arg(&k).query(con).unwrap();
                let v = if t == "list" {
                    con.lrange::<_, Vec<String>>(&k, 0, -1).unwrap().join(",")
                } else {
                    con.get::<_, Option<String>>(&k).unwrap().unwrap_or_default()
                };
                (k, v)
            })
            .collect()
    };
    std::thread::sleep(Duration::from_millis(20));
    let before = dump(&mut con);
    let total: i64 = before.iter().filter(|(k, _)| k.starts_with('c')).map(|(_, v)| v.parse::<i64>().unwrap()).sum();
    assert_eq!(total, 4 * 300 * 3);
    // A clean stop (the log written out), then the log alone rebuilds the keyspace.
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut con);
    assert!(s.wait_exit(Duration::from_secs(20)).is_some());
    drop(s);
    let s = Server::magpie_with(&args);
    let mut con = s.client();
    assert_eq!(dump(&mut con), before, "the log replayed to another state");
}
