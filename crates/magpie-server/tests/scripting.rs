//! Scripts against a real server: EVAL and the script cache, FUNCTION libraries on every
//! thread, atomicity against concurrent clients, -BUSY / SCRIPT KILL / FUNCTION KILL /
//! UNKILLABLE / SHUTDOWN NOSAVE with looping scripts (also with a single worker thread),
//! scripts inside MULTI and BEGIN, blocking commands inside scripts, the effects in the log
//! (replay needs no script), functions surviving restarts from a snapshot and from the log,
//! and bad scripts that must get an error while the server goes on. Replies and errors are
//! compared with redis-server by the differential scripts (tests/diff/scripting_*.redis).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Raw, Server};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("magpie-scripting-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

fn start(dir: &Path, args: &[&str]) -> Server {
    let mut all = vec!["--dir", dir.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    Server::magpie_with(&all)
}

/// One command (arguments as given) and its reply as text.
fn cmd(c: &mut Raw, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    String::from_utf8_lossy(&c.cmd(&args)).into_owned()
}

fn shutdown(server: &mut Server, how: &str) {
    let mut raw = server.raw();
    let _ = raw.try_cmd(&[b"SHUTDOWN", how.as_bytes()]);
    assert!(server.wait_exit(Duration::from_secs(10)).is_some(), "server did not exit");
}

const LIB: &str = "#!lua name=counters\n\
    redis.register_function('bump', function(keys, args) return redis.call('incrby', keys[1], args[1]) end)\n\
    redis.register_function{function_name='peek', callback=function(keys) return redis.call('get', keys[1]) end, \
    flags={'no-writes'}, description='reads a counter'}";

#[test]
fn the_script_cache_serves_every_connection() {
    let s = Server::magpie();
    let mut a = s.raw();
    let sha = "573cd020e2fc941d149285df8b681959190edd09";
    assert_eq!(cmd(&mut a, &["SCRIPT", "LOAD", "return 'x'"]), format!("$40\r\n{sha}\r\n"));
    // Connections land on different worker threads: each compiles the script from the cache.
    let mut others: Vec<Raw> = (0..6).map(|_| s.raw()).collect();
    for c in &mut others {
        assert_eq!(cmd(c, &["EVALSHA", sha, "0"]), "$1\r\nx\r\n");
        assert_eq!(cmd(c, &["EVALSHA", &sha.to_uppercase(), "0"]), "$1\r\nx\r\n");
    }
    // EVAL caches too.
    assert_eq!(cmd(&mut a, &["EVAL", "return KEYS[1] .. ARGV[1]", "1", "k", "v"]), "$2\r\nkv\r\n");
    let eval_sha = "dc8235f4444d746adf3374579406c129fb1f0f0a";
    let exists = cmd(&mut others[0], &["SCRIPT", "EXISTS", sha, eval_sha, "nosuch"]);
    assert!(exists.starts_with("*3\r\n:1\r\n"), "{exists}");
    assert!(cmd(&mut a, &["INFO", "memory"]).contains("number_of_cached_scripts:2"));
    assert_eq!(cmd(&mut others[1], &["SCRIPT", "FLUSH"]), "+OK\r\n");
    for c in &mut others {
        assert_eq!(cmd(c, &["EVALSHA", sha, "0"]), "-NOSCRIPT No matching script. Please use EVAL.\r\n");
    }
    assert_eq!(cmd(&mut a, &["SCRIPT", "EXISTS", sha]), "*1\r\n:0\r\n");
    // Loaded again after the flush, every thread picks it up again.
    cmd(&mut a, &["SCRIPT", "LOAD", "return 'x'"]);
    for c in &mut others {
        assert_eq!(cmd(c, &["EVALSHA", sha, "0"]), "$1\r\nx\r\n");
    }
}

#[test]
fn function_libraries_reach_every_connection_and_follow_changes() {
    let s = Server::magpie();
    let mut a = s.raw();
    assert_eq!(cmd(&mut a, &["FUNCTION", "LOAD", LIB]), "$8\r\ncounters\r\n");
    let mut others: Vec<Raw> = (0..6).map(|_| s.raw()).collect();
    for (i, c) in others.iter_mut().enumerate() {
        assert_eq!(cmd(c, &["FCALL", "bump", "1", "n", "2"]), format!(":{}\r\n", 2 * (i + 1)));
        assert_eq!(
            cmd(c, &["FCALL_RO", "PEEK", "1", "n"]),
            format!("${}\r\n{}\r\n", 1 + usize::from(i >= 4), 2 * (i + 1))
        );
    }
    // Replaced on one connection: every other one runs the new code.
    let v2 = LIB.replace("return redis.call('incrby', keys[1], args[1])", "return 'v2'");
    assert_eq!(cmd(&mut a, &["FUNCTION", "LOAD", "REPLACE", &v2]), "$8\r\ncounters\r\n");
    for c in &mut others {
        assert_eq!(cmd(c, &["FCALL", "bump", "1", "n", "2"]), "$2\r\nv2\r\n");
    }
    let stats = cmd(&mut others[0], &["FUNCTION", "STATS"]);
    assert!(stats.contains("libraries_count\r\n:1\r\n$15\r\nfunctions_count\r\n:2"), "{stats}");
    // DUMP, FLUSH, RESTORE.
    let dump = others[1].cmd(&[b"FUNCTION", b"DUMP"]);
    let payload = &dump[dump.iter().position(|&b| b == b'\n').expect("bulk header") + 1..dump.len() - 2];
    assert_eq!(cmd(&mut others[2], &["FUNCTION", "FLUSH"]), "+OK\r\n");
    for c in &mut others {
        assert_eq!(cmd(c, &["FCALL", "bump", "1", "n", "2"]), "-ERR Function not found\r\n");
    }
    assert_eq!(others[3].cmd(&[b"FUNCTION", b"RESTORE", payload]), b"+OK\r\n");
    for c in &mut others {
        assert_eq!(cmd(c, &["FCALL", "bump", "1", "n", "2"]), "$2\r\nv2\r\n");
    }
    assert_eq!(cmd(&mut others[4], &["FUNCTION", "DELETE", "counters"]), "+OK\r\n");
    for c in &mut others {
        assert_eq!(cmd(c, &["FCALL", "peek", "1", "n"]), "-ERR Function not found\r\n");
    }
    assert_eq!(cmd(&mut a, &["FUNCTION", "LIST"]), "*0\r\n");
}

#[test]
fn a_script_is_atomic_to_concurrent_clients() {
    let s = Server::magpie();
    let mut setup = s.raw();
    cmd(&mut setup, &["MSET", "a", "500", "b", "500"]);
    // Moves one unit from one key to the other, in two writes with work between them.
    let transfer = "local a = tonumber(redis.call('get', KEYS[1])) \
        redis.call('set', KEYS[1], a - 1) \
        local x = 0 for i = 1, 2000 do x = x + i end \
        local b = tonumber(redis.call('get', KEYS[2])) \
        redis.call('set', KEYS[2], b + 1) return x";
    let sha = cmd(&mut setup, &["SCRIPT", "LOAD", transfer]);
    let sha = sha.lines().nth(1).expect("sha").to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let port = s.port;
    let mut writers = Vec::new();
    for t in 0..3 {
        let sha = sha.clone();
        writers.push(std::thread::spawn(move || {
            let mut c = Raw::connect(port);
            for i in 0..300 {
                let (from, to) = if (i + t) % 2 == 0 { ("a", "b") } else { ("b", "a") };
                let r = cmd(&mut c, &["EVALSHA", &sha, "2", from, to]);
                assert!(r.starts_with(':'), "{r}");
                // Plain commands interleave with the scripts.
                assert!(cmd(&mut c, &["INCR", "plain"]).starts_with(':'));
            }
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..2 {
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let mut c = Raw::connect(port);
            let mut checks = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = cmd(&mut c, &["MGET", "a", "b"]);
                let nums: Vec<i64> = r.lines().filter_map(|l| l.parse().ok()).collect();
                assert_eq!(nums.len(), 2, "{r}");
                assert_eq!(nums[0] + nums[1], 1000, "a script was seen half done: {r}");
                checks += 1;
            }
            checks
        }));
    }
    for w in writers {
        w.join().expect("writer");
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
    assert_eq!(cmd(&mut setup, &["GET", "plain"]), "$3\r\n900\r\n");
    let r = cmd(&mut setup, &["MGET", "a", "b"]);
    let nums: Vec<i64> = r.lines().filter_map(|l| l.parse().ok()).collect();
    assert_eq!(nums.iter().sum::<i64>(), 1000, "{r}");
}

/// Sends a command without waiting for its reply.
fn send(c: &mut Raw, args: &[&str]) {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.send(&Raw::encode(&args));
}

/// Sends `args` until the reply is not `-BUSY...`'s opposite: returns the first reply that
/// starts with `prefix` (within a few seconds).
fn until(c: &mut Raw, args: &[&str], prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = cmd(c, args);
        if r.starts_with(prefix) {
            return r;
        }
        assert!(Instant::now() < deadline, "{args:?} never answered {prefix:?}; last: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

const BUSY_EVAL: &str = "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";
const BUSY_FUNCTION: &str =
    "-BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.\r\n";
const UNKILLABLE: &str = "-UNKILLABLE Sorry the script already executed write commands against the dataset. You \
                          can either wait the script termination or kill the server in a hard way using the \
                          SHUTDOWN NOSAVE command.\r\n";

fn busy_and_kill(threads: &str) {
    let mut s = Server::magpie_with(&["--busy-reply-threshold", "200", "--threads", threads]);
    let mut looping = s.raw();
    let mut other = s.raw();
    assert_eq!(cmd(&mut other, &["SCRIPT", "KILL"]), "-NOTBUSY No scripts in execution right now.\r\n");
    assert_eq!(cmd(&mut other, &["FUNCTION", "KILL"]), "-NOTBUSY No scripts in execution right now.\r\n");
    assert_eq!(cmd(&mut other, &["CONFIG", "GET", "lua-time-limit"]), "*2\r\n$14\r\nlua-time-limit\r\n$3\r\n200\r\n");

    // A script that does not write: others get -BUSY, SCRIPT KILL stops it.
    cmd(&mut other, &["SET", "kept", "1"]);
    send(&mut looping, &["EVAL", "local i = 0 while true do i = i + 1 end", "0"]);
    assert_eq!(until(&mut other, &["GET", "kept"], "-BUSY"), BUSY_EVAL);
    assert_eq!(cmd(&mut other, &["FUNCTION", "STATS"]), BUSY_EVAL);
    assert_eq!(cmd(&mut other, &["FUNCTION", "KILL"]), BUSY_EVAL);
    assert_eq!(cmd(&mut other, &["SHUTDOWN"]), BUSY_EVAL);
    // Commands allowed while busy run; queued ones fail the transaction.
    assert_eq!(cmd(&mut other, &["MULTI"]), "+OK\r\n");
    assert_eq!(cmd(&mut other, &["INCR", "kept"]), BUSY_EVAL);
    assert_eq!(cmd(&mut other, &["DISCARD"]), "+OK\r\n");
    assert_eq!(cmd(&mut other, &["SCRIPT", "KILL"]), "+OK\r\n");
    let killed = String::from_utf8_lossy(&looping.read_reply()).into_owned();
    assert!(killed.starts_with("-ERR Script killed by user with SCRIPT KILL..."), "{killed}");
    assert_eq!(until(&mut other, &["GET", "kept"], "$"), "$1\r\n1\r\n");
    assert_eq!(cmd(&mut looping, &["PING"]), "+PONG\r\n");

    // A function: FUNCTION STATS shows it, SCRIPT KILL refuses, FUNCTION KILL stops it.
    let lib = "#!lua name=loops\nredis.register_function('spin', function() while true do end end)";
    cmd(&mut other, &["FUNCTION", "LOAD", lib]);
    send(&mut looping, &["FCALL", "spin", "1", "somekey", "arg"]);
    assert_eq!(until(&mut other, &["PING"], "-BUSY"), BUSY_FUNCTION);
    let stats = cmd(&mut other, &["FUNCTION", "STATS"]);
    assert!(
        stats.starts_with(
            "*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$4\r\nspin\r\n$7\r\ncommand\r\n*5\r\n$5\r\nFCALL\r\n$4\r\nspin\r\n"
        ),
        "{stats}"
    );
    assert_eq!(cmd(&mut other, &["SCRIPT", "KILL"]), BUSY_FUNCTION);
    assert_eq!(cmd(&mut other, &["FUNCTION", "KILL"]), "+OK\r\n");
    let killed = String::from_utf8_lossy(&looping.read_reply()).into_owned();
    assert!(killed.starts_with("-ERR Script killed by user with SCRIPT KILL..."), "{killed}");
    assert_eq!(until(&mut other, &["PING"], "+"), "+PONG\r\n");

    // A script that wrote cannot be killed: only SHUTDOWN NOSAVE ends it, and what it wrote
    // is not kept.
    send(&mut looping, &["EVAL", "redis.call('set', 'written', 'yes') while true do end", "0"]);
    assert_eq!(until(&mut other, &["PING"], "-BUSY"), BUSY_EVAL);
    assert_eq!(cmd(&mut other, &["SCRIPT", "KILL"]), UNKILLABLE);
    let _ = other.try_cmd(&[b"SHUTDOWN", b"NOSAVE"]);
    assert!(s.wait_exit(Duration::from_secs(10)).is_some(), "SHUTDOWN NOSAVE did not stop the server");
}

#[test]
fn busy_scripts_answer_busy_and_can_be_killed() {
    busy_and_kill("2");
}

#[test]
fn a_busy_script_on_the_only_worker_thread_can_be_killed() {
    // The script holds the only worker thread: it hands the thread's other work over.
    busy_and_kill("1");
}

#[test]
fn scripts_inside_multi_and_inside_begin() {
    let s = Server::magpie();
    let mut c = s.raw();
    let mut other = s.raw();
    assert_eq!(cmd(&mut c, &["MULTI"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["EVAL", "return redis.call('incr', KEYS[1])", "1", "m"]), "+QUEUED\r\n");
    assert_eq!(cmd(&mut c, &["EVAL", "return redis.call('incr', KEYS[1])", "1", "m"]), "+QUEUED\r\n");
    assert_eq!(cmd(&mut c, &["EXEC"]), "*2\r\n:1\r\n:2\r\n");

    // Inside BEGIN a script sees the transaction's writes, and its writes are the
    // transaction's: nobody sees them before COMMIT, ROLLBACK drops them.
    cmd(&mut c, &["SET", "t", "before"]);
    assert_eq!(cmd(&mut c, &["BEGIN"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["SET", "t", "inside"]), "+OK\r\n");
    let script = "local v = redis.call('get', KEYS[1]) redis.call('set', KEYS[1], v .. '+script') \
                  redis.call('set', 'undeclared', 'x') return redis.call('get', KEYS[1])";
    assert_eq!(cmd(&mut c, &["EVAL", script, "1", "t"]), "$13\r\ninside+script\r\n");
    // (A null array becomes Lua's false, which EVAL answers as a null bulk.)
    assert_eq!(cmd(&mut c, &["EVAL", "return redis.call('blmpop', 0, 1, 'nolist', 'LEFT')", "0"]), "$-1\r\n");
    assert_eq!(cmd(&mut other, &["GET", "t"]), "$6\r\nbefore\r\n");
    assert_eq!(cmd(&mut other, &["EXISTS", "undeclared"]), ":0\r\n");
    assert_eq!(cmd(&mut c, &["ROLLBACK"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["GET", "t"]), "$6\r\nbefore\r\n");

    assert_eq!(cmd(&mut c, &["BEGIN"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["EVAL", script, "1", "t"]), "$13\r\nbefore+script\r\n");
    assert_eq!(cmd(&mut c, &["COMMIT"]), "+OK\r\n");
    assert_eq!(cmd(&mut other, &["GET", "t"]), "$13\r\nbefore+script\r\n");
    assert_eq!(cmd(&mut other, &["GET", "undeclared"]), "$1\r\nx\r\n");
}

#[test]
fn blocking_commands_in_scripts_do_not_block_and_scripts_serve_waiters() {
    let s = Server::magpie();
    let mut c = s.raw();
    let start = Instant::now();
    assert_eq!(cmd(&mut c, &["EVAL", "return redis.call('blmpop', 0, 1, 'q', 'LEFT')", "0"]), "$-1\r\n");
    assert!(start.elapsed() < Duration::from_secs(2));
    let mut waiter = s.raw();
    send(&mut waiter, &["BLPOP", "q", "0"]);
    common::wait_blocked(&mut c, 1);
    assert_eq!(cmd(&mut c, &["EVAL", "return redis.call('rpush', 'q', 'from-script')", "0"]), ":1\r\n");
    assert_eq!(String::from_utf8_lossy(&waiter.read_reply()), "*2\r\n$1\r\nq\r\n$11\r\nfrom-script\r\n");
    // A RESP3 client with subscriptions may run scripts: their commands are not refused.
    let mut sub = s.raw();
    assert!(cmd(&mut sub, &["HELLO", "3"]).starts_with('%'));
    assert!(cmd(&mut sub, &["SUBSCRIBE", "ch"]).starts_with('>'));
    assert_eq!(cmd(&mut sub, &["EVAL", "return redis.call('ping')", "0"]), "+PONG\r\n");
}

#[test]
fn commands_a_script_runs_are_counted_and_select_stays_inside() {
    let s = Server::magpie();
    let mut c = s.raw();
    cmd(&mut c, &["CONFIG", "RESETSTAT"]);
    cmd(&mut c, &["EVAL", "redis.call('incr', 'x') redis.call('incr', 'x') return redis.pcall('nosuch')", "0"]);
    let info = cmd(&mut c, &["INFO", "commandstats"]);
    assert!(info.contains("cmdstat_incr:calls=2,"), "{info}");
    assert!(info.contains("cmdstat_eval:calls=1,"), "{info}");
    assert_eq!(cmd(&mut c, &["EVAL", "redis.call('select', 5) return redis.call('set', 'in5', 1)", "0"]), "+OK\r\n");
    assert_eq!(cmd(&mut c, &["EXISTS", "in5"]), ":0\r\n");
    cmd(&mut c, &["SELECT", "5"]);
    assert_eq!(cmd(&mut c, &["EXISTS", "in5"]), ":1\r\n");
    assert_eq!(cmd(&mut c, &["EVAL", "return redis.acl_check_cmd('get', 'k')", "0"]), ":1\r\n");
    assert_eq!(cmd(&mut c, &["EVAL", "return redis.acl_check_cmd('config', 'get', 'x')", "0"]), ":1\r\n");
    let r = cmd(&mut c, &["EVAL", "return redis.acl_check_cmd('nosuch')", "0"]);
    assert!(r.starts_with("-ERR Invalid command passed to redis.acl_check_cmd()"), "{r}");
}

/// What `scripts_reach_the_log_as_their_effects` wrote, read back (the set's members sorted).
fn read_back(c: &mut Raw) -> Vec<String> {
    let mut out: Vec<String> = ["random", "time", "float", "counter", "logged", "before_error", "unlogged"]
        .iter()
        .map(|k| cmd(c, &["GET", k]))
        .collect();
    let members = cmd(c, &["SMEMBERS", "set"]);
    let mut members: Vec<&str> = members.lines().skip(1).collect();
    members.sort();
    out.insert(6, members.join(","));
    out
}

/// The log file's bytes (the incremental files of the log directory).
fn log_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("appendonlydir")).expect("log dir").flatten() {
        if e.file_name().to_string_lossy().ends_with(".incr") {
            out.extend(std::fs::read(e.path()).expect("read log"));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[test]
fn scripts_reach_the_log_as_their_effects() {
    let dir = temp_dir("effects");
    let mut s = start(&dir, &["--appendonly", "yes"]);
    let mut c = s.raw();
    let nondeterministic = "local t = redis.call('time') \
        redis.call('set', 'random', tostring(math.random())) \
        redis.call('set', 'time', t[1] .. '.' .. t[2]) \
        redis.call('incrbyfloat', 'float', '0.1') \
        redis.call('sadd', 'set', 'a', 'b', 'c') redis.call('spop', 'set') \
        redis.call('expire', 'random', 1000) \
        redis.call('select', 2) redis.call('lpush', 'list', 'in', 'db2') \
        return 'done'";
    assert_eq!(cmd(&mut c, &["EVAL", nondeterministic, "0"]), "$4\r\ndone\r\n");
    assert_eq!(cmd(&mut c, &["FUNCTION", "LOAD", LIB]), "$8\r\ncounters\r\n");
    assert_eq!(cmd(&mut c, &["FCALL", "bump", "1", "counter", "5"]), ":5\r\n");
    // redis.set_repl keeps writes out of the log.
    let unlogged = "redis.set_repl(redis.REPL_NONE) redis.call('set', 'unlogged', 1) \
                    redis.set_repl(redis.REPL_ALL) redis.call('set', 'logged', 1)";
    cmd(&mut c, &["EVAL", unlogged, "0"]);
    // A script killed before it wrote leaves nothing; one that failed half way keeps what it
    // did before the error (as in Redis).
    cmd(&mut c, &["SET", "str", "x"]);
    let r = cmd(&mut c, &["EVAL", "redis.call('set', 'before_error', 1) redis.call('incr', 'str')", "0"]);
    assert!(r.starts_with("-ERR value is not an integer"), "{r}");
    let before = read_back(&mut c);
    let ttl = cmd(&mut c, &["PEXPIRETIME", "random"]);
    shutdown(&mut s, "NOSAVE");

    let log = log_bytes(&dir);
    assert!(!contains(&log, b"math.random"), "a script body reached the log");
    assert!(!contains(&log, b"EVAL"), "EVAL reached the log");
    assert!(!contains(&log, b"FCALL"), "FCALL reached the log");
    assert!(contains(&log, b"FUNCTION"), "FUNCTION LOAD is logged");

    let s = start(&dir, &["--appendonly", "yes"]);
    let mut c = s.raw();
    let after = read_back(&mut c);
    assert_eq!(&before[..7], &after[..7], "replay gave other values");
    assert_eq!(after[7], "$-1\r\n", "a write under REPL_NONE was logged");
    assert_eq!(cmd(&mut c, &["PEXPIRETIME", "random"]), ttl);
    cmd(&mut c, &["SELECT", "2"]);
    assert_eq!(cmd(&mut c, &["LRANGE", "list", "0", "-1"]), "*2\r\n$3\r\ndb2\r\n$2\r\nin\r\n");
    cmd(&mut c, &["SELECT", "0"]);
    assert_eq!(cmd(&mut c, &["FCALL", "bump", "1", "counter", "1"]), ":6\r\n");
}

fn library_names(c: &mut Raw) -> String {
    cmd(c, &["FUNCTION", "LIST", "WITHCODE"])
}

#[test]
fn functions_survive_restarts_from_a_snapshot_and_from_the_log() {
    // From a snapshot.
    let dir = temp_dir("functions-snapshot");
    let mut s = start(&dir, &[]);
    let mut c = s.raw();
    cmd(&mut c, &["FUNCTION", "LOAD", LIB]);
    cmd(&mut c, &["FUNCTION", "LOAD", "#!lua name=second\nredis.register_function('two', function() return 2 end)"]);
    cmd(&mut c, &["SET", "data", "kept"]);
    let listed = library_names(&mut c);
    assert_eq!(cmd(&mut c, &["SAVE"]), "+OK\r\n");
    shutdown(&mut s, "NOSAVE");
    let mut s = start(&dir, &[]);
    let mut c = s.raw();
    assert_eq!(library_names(&mut c), listed);
    assert_eq!(cmd(&mut c, &["FCALL", "two", "0"]), ":2\r\n");
    assert_eq!(cmd(&mut c, &["GET", "data"]), "$4\r\nkept\r\n");
    // A snapshot with no libraries leaves none.
    cmd(&mut c, &["FUNCTION", "FLUSH"]);
    cmd(&mut c, &["SAVE"]);
    shutdown(&mut s, "NOSAVE");
    let s = start(&dir, &[]);
    let mut c = s.raw();
    assert_eq!(cmd(&mut c, &["FUNCTION", "LIST"]), "*0\r\n");
    drop(s);

    // From the log: loads, a replacement and a deletion replay in order; a rewrite keeps them
    // in its base (a snapshot).
    let dir = temp_dir("functions-log");
    let mut s = start(&dir, &["--appendonly", "yes"]);
    let mut c = s.raw();
    cmd(&mut c, &["FUNCTION", "LOAD", LIB]);
    cmd(&mut c, &["FUNCTION", "LOAD", "#!lua name=second\nredis.register_function('two', function() return 2 end)"]);
    cmd(
        &mut c,
        &["FUNCTION", "LOAD", "REPLACE", "#!lua name=second\nredis.register_function('two', function() return 22 end)"],
    );
    cmd(&mut c, &["FUNCTION", "LOAD", "#!lua name=third\nredis.register_function('three', function() return 3 end)"]);
    cmd(&mut c, &["FUNCTION", "DELETE", "third"]);
    let listed = library_names(&mut c);
    shutdown(&mut s, "NOSAVE");
    let mut s = start(&dir, &["--appendonly", "yes"]);
    let mut c = s.raw();
    assert_eq!(library_names(&mut c), listed);
    assert_eq!(cmd(&mut c, &["FCALL", "two", "0"]), ":22\r\n");
    assert_eq!(cmd(&mut c, &["FCALL", "three", "0"]), "-ERR Function not found\r\n");
    assert!(cmd(&mut c, &["BGREWRITEAOF"]).starts_with('+'));
    let deadline = Instant::now() + Duration::from_secs(20);
    while cmd(&mut c, &["INFO", "persistence"]).contains("aof_rewrite_in_progress:1") {
        assert!(Instant::now() < deadline, "the rewrite did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    cmd(&mut c, &["FUNCTION", "LOAD", "#!lua name=fourth\nredis.register_function('four', function() return 4 end)"]);
    let listed = library_names(&mut c);
    shutdown(&mut s, "NOSAVE");
    let s = start(&dir, &["--appendonly", "yes"]);
    let mut c = s.raw();
    assert_eq!(library_names(&mut c), listed);
    assert_eq!(cmd(&mut c, &["FCALL", "four", "0"]), ":4\r\n");
}

/// A connection whose replies are read without recursion (replies nested thousands deep).
struct Flat {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Flat {
    fn connect(port: u16) -> Flat {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        Flat { reader: BufReader::new(stream.try_clone().expect("clone")), stream }
    }

    /// Sends a command and reads its reply: (bytes, deepest nesting, error lines seen).
    fn cmd(&mut self, args: &[&str]) -> (usize, usize, Vec<String>) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.stream.write_all(&Raw::encode(&args)).expect("write");
        let (mut bytes, mut depth, mut deepest, mut errors) = (0, 0usize, 0usize, Vec::new());
        // Elements still to read at each open level.
        let mut pending: Vec<i64> = Vec::new();
        loop {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line).expect("read");
            assert!(line.ends_with(b"\r\n"), "connection closed");
            bytes += line.len();
            let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
            let mut children = 0;
            match line[0] {
                b'$' | b'=' | b'!' => {
                    let n: i64 = text.parse().expect("len");
                    if n >= 0 {
                        let mut body = vec![0u8; n as usize + 2];
                        self.reader.read_exact(&mut body).expect("body");
                        bytes += body.len();
                    }
                }
                b'*' | b'~' | b'>' => children = text.parse::<i64>().expect("len").max(0),
                b'%' | b'|' => children = 2 * text.parse::<i64>().expect("len").max(0),
                b'-' => errors.push(text),
                _ => {}
            }
            if children > 0 {
                pending.push(children);
                depth += 1;
                deepest = deepest.max(depth);
                continue;
            }
            // One element done: close the levels it completes.
            loop {
                match pending.last_mut() {
                    None => return (bytes, deepest, errors),
                    Some(left) => {
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                        pending.pop();
                        depth -= 1;
                    }
                }
            }
        }
    }
}

#[test]
fn bad_scripts_get_an_error_and_the_server_goes_on() {
    let s = Server::magpie();
    let mut c = s.raw();
    cmd(&mut c, &["SET", "k", "v"]);
    let error = |c: &mut Raw, script: &str| -> String {
        let r = cmd(c, &["EVAL", script, "0"]);
        assert!(r.starts_with('-'), "{script}: {r}");
        r
    };
    // An error table without `err` (redis-server 7.0.15 crashes on this one).
    let r = error(&mut c, "error({})");
    assert!(r.starts_with("-ERR "), "{r}");
    assert!(error(&mut c, "return 1 +").starts_with("-ERR Error compiling script"));
    // Recursion, memory, endless string growth.
    let r = error(&mut c, "local function f(n) return f(n + 1) + 1 end return f(1)");
    assert!(r.contains("stack overflow"), "{r}");
    let r = error(&mut c, "local s = 'x' while true do s = s .. s end");
    assert!(r.contains("not enough memory") || r.contains("string length overflow"), "{r}");
    // After a memory error the next script runs normally.
    assert_eq!(cmd(&mut c, &["EVAL", "return #string.rep('y', 1000)", "0"]), ":1000\r\n");

    let mut flat = Flat::connect(s.port);
    // A cyclic table and one nested deeper than Lua's stack: an error inside a deep reply.
    let (_, depth, errors) = flat.cmd(&["EVAL", "local t = {} t[1] = t return t", "0"]);
    assert!(depth > 1000 && errors.iter().any(|e| e.contains("reached lua stack limit")), "{depth} {errors:?}");
    let deep = "local t = {} local c = t for i = 1, 100000 do c[1] = {} c = c[1] end return t";
    let (_, depth, errors) = flat.cmd(&["EVAL", deep, "0"]);
    assert!(depth > 1000 && !errors.is_empty(), "{depth} {errors:?}");
    let (_, _, errors) = flat.cmd(&["EVAL", "redis.setresp(3) local t = {} t.map = {k = t} return t", "0"]);
    assert!(!errors.is_empty());
    // A huge reply.
    let (bytes, depth, errors) = flat.cmd(&["EVAL", "local t = {} for i = 1, 1000000 do t[i] = i end return t", "0"]);
    assert!(bytes > 7_000_000 && depth == 1 && errors.is_empty(), "{bytes} {depth} {errors:?}");
    // pcall cannot keep a killed script alive; the server and the data are fine.
    assert_eq!(cmd(&mut c, &["GET", "k"]), "$1\r\nv\r\n");
    assert_eq!(cmd(&mut c, &["PING"]), "+PONG\r\n");
}

#[test]
fn a_killed_script_that_catches_errors_still_stops() {
    let s = Server::magpie_with(&["--busy-reply-threshold", "100"]);
    let mut looping = s.raw();
    let mut other = s.raw();
    send(&mut looping, &["EVAL", "while true do pcall(function() while true do end end) end", "0"]);
    assert_eq!(until(&mut other, &["PING"], "-BUSY"), BUSY_EVAL);
    assert_eq!(cmd(&mut other, &["SCRIPT", "KILL"]), "+OK\r\n");
    let killed = String::from_utf8_lossy(&looping.read_reply()).into_owned();
    assert!(killed.starts_with("-ERR Script killed by user with SCRIPT KILL..."), "{killed}");
    assert_eq!(until(&mut other, &["PING"], "+"), "+PONG\r\n");
}
