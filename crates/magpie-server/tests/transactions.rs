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
    let len = std::fs::metadata(&path).unwrap().len();
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
