//! Behaviour of a real magpie-server over real sockets: the `redis` crate as a client, and raw
//! RESP where the exact bytes matter. Exact reply-for-reply agreement with redis-server lives
//! in `differential.rs`.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Raw, Server};
use redis::Commands;

#[test]
fn strings_counters_and_expiry_through_a_client_library() {
    let server = Server::magpie();
    let mut c = server.client();
    let _: () = c.set("greeting", "hello").unwrap();
    assert_eq!(c.get::<_, String>("greeting").unwrap(), "hello");
    assert_eq!(c.append::<_, _, i64>("greeting", " world").unwrap(), 11);
    assert_eq!(c.incr::<_, _, i64>("n", 5).unwrap(), 5);
    assert_eq!(c.decr::<_, _, i64>("n", 7).unwrap(), -2);
    let v: String = redis::cmd("INCRBYFLOAT").arg("f").arg("10.5").query(&mut c).unwrap();
    assert_eq!(v, "10.5");
    let v: String = redis::cmd("INCRBYFLOAT").arg("f").arg("0.1").query(&mut c).unwrap();
    assert_eq!(v, "10.6");
    let _: () = c.set_ex("temp", "x", 100).unwrap();
    let ttl: i64 = c.ttl("temp").unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");
    assert_eq!(c.persist::<_, i64>("temp").unwrap(), 1);
    assert_eq!(c.ttl::<_, i64>("temp").unwrap(), -1);
    let got: Vec<Option<String>> = c.mget(&["greeting", "missing", "n"]).unwrap();
    assert_eq!(got, vec![Some("hello world".into()), None, Some("-2".into())]);
    assert_eq!(c.del::<_, i64>(&["greeting", "n", "missing"]).unwrap(), 2);
}

#[test]
fn binary_keys_and_values_round_trip() {
    let server = Server::magpie();
    let mut c = server.client();
    let key: Vec<u8> = (0..=255u8).rev().collect();
    let value: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let _: () = c.set(&key, &value).unwrap();
    assert_eq!(c.get::<_, Vec<u8>>(&key).unwrap(), value);
    let _: () = c.set(b"", b"").unwrap();
    assert_eq!(c.get::<_, Vec<u8>>(b"").unwrap(), b"");
    assert_eq!(c.exists::<_, i64>(b"").unwrap(), 1);
}

#[test]
fn a_key_expires_on_time_and_is_never_returned_after() {
    let server = Server::magpie();
    let mut r = server.raw();
    assert_eq!(r.cmd_str("SET k v PX 150"), "+OK\r\n");
    assert_eq!(r.cmd_str("GET k"), "$1\r\nv\r\n");
    thread::sleep(Duration::from_millis(200));
    assert_eq!(r.cmd_str("GET k"), "$-1\r\n");
    assert_eq!(r.cmd_str("EXISTS k"), ":0\r\n");
    assert_eq!(r.cmd_str("TTL k"), ":-2\r\n");
}

#[test]
fn active_expiry_reclaims_keys_nobody_touches() {
    let server = Server::magpie();
    let mut c = server.client();
    let n = 200_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET").arg(format!("key:{i}")).arg("v").arg("PX").arg(500).ignore();
        }
        let _: () = pipe.query(&mut c).unwrap();
    }
    let _: () = c.set("survivor", "stays").unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let size: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        if size == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "DBSIZE still {size} after 15 s");
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.get::<_, String>("survivor").unwrap(), "stays");
}

#[test]
fn mset_is_atomic_to_concurrent_readers_across_shards() {
    let server = Server::magpie();
    let keys: Vec<String> = (0..16).map(|i| format!("atomic:{i}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (mut c, keys, stop) = (server.client(), keys.clone(), stop.clone());
        thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let pairs: Vec<(String, u64)> = keys.iter().map(|k| (k.clone(), round)).collect();
                let _: () = c.mset(&pairs).unwrap();
                round += 1;
            }
        })
    };
    let mut c = server.client();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut checks = 0;
    while Instant::now() < deadline {
        let values: Vec<Option<u64>> = c.mget(&keys).unwrap();
        let distinct: HashSet<_> = values.iter().collect();
        assert_eq!(distinct.len(), 1, "MGET saw a half-applied MSET: {values:?}");
        checks += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(checks > 10);
}

#[test]
fn concurrent_increments_are_never_lost() {
    let server = Server::magpie();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let mut c = server.client();
            thread::spawn(move || {
                for _ in 0..500 {
                    let _: i64 = c.incr("counter", 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.client().get::<_, i64>("counter").unwrap(), 4000);
}

#[test]
fn rename_moves_value_and_ttl_atomically() {
    let server = Server::magpie();
    let mut r = server.raw();
    r.cmd_str("SET a 1 EX 100");
    assert_eq!(r.cmd_str("RENAME a b"), "+OK\r\n");
    assert_eq!(r.cmd_str("EXISTS a"), ":0\r\n");
    assert_eq!(r.cmd_str("GET b"), "$1\r\n1\r\n");
    assert!(r.cmd_str("TTL b").starts_with(":10"));
    assert_eq!(r.cmd_str("RENAME nosuch x"), "-ERR no such key\r\n");
    assert_eq!(r.cmd_str("COPY b c DB 3"), ":1\r\n");
    assert_eq!(r.cmd_str("SELECT 3"), "+OK\r\n");
    assert_eq!(r.cmd_str("GET c"), "$1\r\n1\r\n");
    assert!(r.cmd_str("TTL c").starts_with(":10"));
}

#[test]
fn scan_returns_every_key_present_throughout_while_others_churn() {
    let server = Server::magpie();
    let mut c = server.client();
    let stable: HashSet<String> = (0..3000).map(|i| format!("stable:{i}")).collect();
    for chunk in stable.iter().collect::<Vec<_>>().chunks(500) {
        let pairs: Vec<(&String, &str)> = chunk.iter().map(|k| (*k, "x")).collect();
        let _: () = c.mset(&pairs).unwrap();
    }
    let mut churn = server.client();
    let mut seen = HashSet::new();
    let mut cursor = 0u64;
    let mut round = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(50).query(&mut c).unwrap();
        seen.extend(keys);
        // Between calls other clients add and delete keys (which moves entries in storage).
        for j in 0..20 {
            let _: () = churn.set(format!("churn:{round}:{j}"), "y").unwrap();
            let _: i64 = churn.del(format!("churn:{}:{j}", round.max(1) - 1)).unwrap();
        }
        round += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    let missing: Vec<_> = stable.iter().filter(|k| !seen.contains(*k)).collect();
    assert!(missing.is_empty(), "SCAN missed {} keys, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
}

#[test]
fn scan_match_type_and_count() {
    let server = Server::magpie();
    let mut c = server.client();
    for i in 0..100 {
        let _: () = c.set(format!("user:{i}"), i).unwrap();
        let _: () = c.set(format!("order:{i}"), i).unwrap();
    }
    let mut found = HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg("user:*").arg("TYPE").arg("string").query(&mut c).unwrap();
        found.extend(keys);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(found.len(), 100);
    assert!(found.iter().all(|k| k.starts_with("user:")));
    let (_, none): (u64, Vec<String>) =
        redis::cmd("SCAN").arg(0).arg("TYPE").arg("list").arg("COUNT").arg(1000).query(&mut c).unwrap();
    assert!(none.is_empty());
    let mut r = server.raw();
    assert_eq!(r.cmd_str("SCAN 0 COUNT 0"), "-ERR syntax error\r\n");
    assert_eq!(r.cmd_str("SCAN abc"), "-ERR invalid cursor\r\n");
}

#[test]
fn databases_are_separate() {
    let server = Server::magpie();
    let mut r = server.raw();
    r.cmd_str("SET k zero");
    assert_eq!(r.cmd_str("SELECT 15"), "+OK\r\n");
    assert_eq!(r.cmd_str("GET k"), "$-1\r\n");
    r.cmd_str("SET k fifteen");
    assert_eq!(r.cmd_str("DBSIZE"), ":1\r\n");
    assert_eq!(r.cmd_str("SELECT 16"), "-ERR DB index is out of range\r\n");
    assert_eq!(r.cmd_str("FLUSHDB"), "+OK\r\n");
    assert_eq!(r.cmd_str("SELECT 0"), "+OK\r\n");
    assert_eq!(r.cmd_str("GET k"), "$4\r\nzero\r\n");
    assert_eq!(r.cmd_str("FLUSHALL"), "+OK\r\n");
    assert_eq!(r.cmd_str("DBSIZE"), ":0\r\n");
}

#[test]
fn resp3_after_hello_3() {
    let server = Server::magpie();
    let mut r = server.raw();
    let hello = String::from_utf8(r.cmd(&[b"HELLO", b"3"])).unwrap();
    assert!(hello.starts_with("%7\r\n$6\r\nserver\r\n"), "{hello}");
    assert!(hello.contains("$5\r\nproto\r\n:3\r\n"));
    assert_eq!(r.cmd_str("GET missing"), "_\r\n");
    r.cmd_str("SET k v");
    assert_eq!(r.cmd_str("CONFIG GET maxclients"), "%1\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n");
    assert!(r.cmd_str("CLIENT INFO").starts_with("="));
    let back = String::from_utf8(r.cmd(&[b"HELLO", b"2"])).unwrap();
    assert!(back.starts_with("*14\r\n"));
    assert_eq!(r.cmd_str("GET missing"), "$-1\r\n");
    assert_eq!(r.cmd_str("HELLO 4"), "-NOPROTO unsupported protocol version\r\n");
}

#[test]
fn pipelined_and_inline_commands_answer_in_order() {
    let server = Server::magpie();
    let mut r = server.raw();
    let mut batch = Vec::new();
    for i in 0..500 {
        batch.extend(Raw::encode(&[b"SET", format!("p{i}").as_bytes(), i.to_string().as_bytes()]));
        batch.extend(Raw::encode(&[b"GET", format!("p{i}").as_bytes()]));
    }
    batch.extend_from_slice(b"ECHO \"two words\"\r\nPING\n");
    r.send(&batch);
    for i in 0..500 {
        assert_eq!(r.read_reply(), b"+OK\r\n");
        let v = i.to_string();
        assert_eq!(r.read_reply(), format!("${}\r\n{v}\r\n", v.len()).into_bytes());
    }
    assert_eq!(r.read_reply(), b"$9\r\ntwo words\r\n");
    assert_eq!(r.read_reply(), b"+PONG\r\n");
}

#[test]
fn command_table_describes_itself() {
    let server = Server::magpie();
    let mut c = server.client();
    let count: i64 = redis::cmd("COMMAND").arg("COUNT").query(&mut c).unwrap();
    assert!(count >= 50, "{count}");
    let mut r = server.raw();
    let info = String::from_utf8(r.cmd(&[b"COMMAND", b"INFO", b"get", b"nosuch"])).unwrap();
    assert!(
        info.starts_with("*2\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n"),
        "{info}"
    );
    // An unknown name is a null (`$-1` in RESP2, as Redis's addReplyNull).
    assert!(info.ends_with("$-1\r\n"));
    let docs = String::from_utf8(r.cmd(&[b"COMMAND", b"DOCS", b"set"])).unwrap();
    for needle in ["summary", "arguments", "$5\r\ntoken\r\n$2\r\nNX\r\n", "oneof", "KEEPTTL"] {
        assert!(docs.contains(needle), "COMMAND DOCS set lacks {needle}: {docs}");
    }
    assert_eq!(r.cmd_str("CLIENT NOPE"), "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n");
    assert_eq!(r.cmd_str("CLIENT SETNAME"), "-ERR wrong number of arguments for 'client|setname' command\r\n");
}

#[test]
fn client_names_and_list() {
    let server = Server::magpie();
    let mut r = server.raw();
    assert_eq!(r.cmd_str("CLIENT GETNAME"), "$-1\r\n");
    assert_eq!(r.cmd_str("CLIENT SETNAME worker-1"), "+OK\r\n");
    assert_eq!(r.cmd_str("CLIENT GETNAME"), "$8\r\nworker-1\r\n");
    let id = r.cmd_str("CLIENT ID");
    let id = id.trim_start_matches(':').trim();
    let mut other = server.raw();
    assert_eq!(other.cmd_str("CLIENT SETNAME other"), "+OK\r\n");
    let list = r.cmd_str("CLIENT LIST");
    assert!(list.contains("name=other ") && list.contains("cmd=client|setname "), "{list}");
    assert!(list.contains(&format!("id={id} ")), "{list}");
    assert!(list.contains("name=worker-1 "));
    assert!(list.contains("cmd=client|list"));
    let mine = r.cmd_str(&format!("CLIENT LIST ID {id}"));
    assert_eq!(mine.matches("id=").count(), 1, "{mine}");
    assert!(r.cmd_str("CLIENT SETNAME has\nnewline").starts_with("-ERR Client names cannot contain"));
}

#[test]
fn config_set_changes_live_settings() {
    let server = Server::magpie();
    let mut r = server.raw();
    assert_eq!(r.cmd_str("CONFIG SET proto-max-bulk-len 1mb timeout 30"), "+OK\r\n");
    assert_eq!(r.cmd_str("CONFIG GET proto-max-bulk-len"), "*2\r\n$18\r\nproto-max-bulk-len\r\n$7\r\n1048576\r\n");
    // The new limit applies to the next request.
    assert_eq!(r.cmd_str("SETRANGE k 1048576 x"), "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n");
    assert_eq!(
        r.cmd_str("CONFIG SET port 1"),
        "-ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config\r\n"
    );
    assert_eq!(r.cmd_str("CONFIG GET timeout"), "*2\r\n$7\r\ntimeout\r\n$2\r\n30\r\n");
}

/// `disable-thp` (yes by default, as Redis's): the server turns transparent huge pages off for
/// its own process (the kernel's `THP_enabled` flag, shown from Linux 5.0), or leaves them as
/// its parent had them with `no`; it cannot change at run time.
#[test]
fn disable_thp_turns_huge_pages_off_for_the_process() {
    let thp_flag = |pid: &str| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix("THP_enabled:")).map(|v| v.trim().to_owned())
    };
    let ours = thp_flag("self");
    for (args, setting) in [(&[][..], "yes"), (&["--disable-thp", "no"][..], "no")] {
        let server = Server::magpie_with(args);
        let mut r = server.raw();
        assert_eq!(
            r.cmd_str("CONFIG GET disable-thp"),
            format!("*2\r\n$11\r\ndisable-thp\r\n${}\r\n{setting}\r\n", setting.len())
        );
        let want = if setting == "yes" { Some("0".to_owned()) } else { ours.clone() };
        if ours.is_some() {
            assert_eq!(thp_flag(&server.pid().to_string()), want, "{args:?}");
        }
        assert_eq!(
            r.cmd_str("CONFIG SET disable-thp no"),
            "-ERR CONFIG SET failed (possibly related to argument 'disable-thp') - can't set immutable config\r\n"
        );
    }
}

#[test]
fn config_file_and_flags() {
    let dir = std::env::temp_dir().join(format!("magpie-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("magpie.toml");
    std::fs::write(&file, "databases = 4\nmaxclients = 77\n").unwrap();
    let server = Server::magpie_with(&["--config", file.to_str().unwrap(), "--maxclients", "88"]);
    let mut r = server.raw();
    assert_eq!(r.cmd_str("CONFIG GET databases"), "*2\r\n$9\r\ndatabases\r\n$1\r\n4\r\n");
    assert_eq!(r.cmd_str("CONFIG GET maxclients"), "*2\r\n$10\r\nmaxclients\r\n$2\r\n88\r\n");
    assert_eq!(r.cmd_str("SELECT 4"), "-ERR DB index is out of range\r\n");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn long_pipelines_with_large_replies_arrive_whole_and_in_order() {
    let server = Server::magpie();
    let mut r = server.raw();
    let value = vec![b'v'; 10_000];
    assert_eq!(r.cmd(&[b"SET", b"big", &value]), b"+OK\r\n");
    let mut batch = Vec::new();
    for i in 0..300 {
        batch.extend(Raw::encode(&[b"GET", b"big"]));
        batch.extend(Raw::encode(&[b"ECHO", i.to_string().as_bytes()]));
    }
    r.send(&batch);
    let mut expected_big = format!("${}\r\n", value.len()).into_bytes();
    expected_big.extend_from_slice(&value);
    expected_big.extend_from_slice(b"\r\n");
    for i in 0..300 {
        assert_eq!(r.read_reply(), expected_big);
        let n = i.to_string();
        assert_eq!(r.read_reply(), format!("${}\r\n{n}\r\n", n.len()).into_bytes());
    }
}

#[test]
fn select_and_quit_inside_a_pipeline_take_effect_in_order() {
    let server = Server::magpie();
    let mut r = server.raw();
    let mut batch = Vec::new();
    for i in 0..40 {
        batch.extend(Raw::encode(&[b"SET", format!("k{i}").as_bytes(), b"db0"]));
    }
    batch.extend(Raw::encode(&[b"SELECT", b"2"]));
    batch.extend(Raw::encode(&[b"SET", b"k1", b"db2"]));
    batch.extend_from_slice(b"GET k1\r\n");
    batch.extend(Raw::encode(&[b"QUIT"]));
    batch.extend(Raw::encode(&[b"SET", b"after-quit", b"x"]));
    r.send(&batch);
    for _ in 0..42 {
        assert_eq!(r.read_reply(), b"+OK\r\n");
    }
    assert_eq!(r.read_reply(), b"$3\r\ndb2\r\n");
    assert_eq!(r.read_reply(), b"+OK\r\n");
    assert!(r.is_closed());
    let mut check = server.raw();
    assert_eq!(check.cmd_str("GET k1"), "$3\r\ndb0\r\n");
    assert_eq!(check.cmd_str("EXISTS after-quit"), ":0\r\n");
}
