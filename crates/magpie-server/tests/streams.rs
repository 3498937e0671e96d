//! Streams over a socket: what the differential scripts cannot show. XREAD and XREADGROUP that
//! block and are woken by XADD from another client, `$` standing for the last ID when the
//! client blocked, timeouts, several readers of one key, consumers of one group sharing new
//! entries, the errors a group reader gets when its key or group goes away, and (against
//! redis-server) the bytes of stream nodes.

mod common;

use std::time::{Duration, Instant};

use common::{Raw, Server, blocked, reply, send, wait_blocked};

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// An entry `[id, [field, value, ...]]` as RESP2.
fn entry(id: &str, fields: &[&str]) -> String {
    let mut out = format!("*2\r\n{}*{}\r\n", bulk(id), fields.len());
    for f in fields {
        out.push_str(&bulk(f));
    }
    out
}

/// XREAD's reply for one key: `[[key, [entries...]]]` as RESP2.
fn read_reply(key: &str, entries: &[String]) -> String {
    format!("*1\r\n*2\r\n{}*{}\r\n{}", bulk(key), entries.len(), entries.concat())
}

/// Blocks a new connection with `line`, once `blocked_clients` says the ones before it wait.
fn block(server: &Server, admin: &mut Raw, line: &str, waiting: u64) -> Raw {
    let mut c = server.raw();
    send(&mut c, line);
    wait_blocked(admin, waiting + 1);
    c
}

#[test]
fn xread_waits_for_xadd_from_another_client() {
    let server = Server::magpie();
    let mut admin = server.raw();
    assert_eq!(admin.cmd_str("XADD s 1-0 f old"), bulk("1-0"));
    // `$` is the last ID when the client blocked: the old entry is not served.
    let mut reader = block(&server, &mut admin, "XREAD BLOCK 0 STREAMS s $", 0);
    assert_eq!(admin.cmd_str("XADD s 2-0 f new"), bulk("2-0"));
    assert_eq!(reply(&mut reader), read_reply("s", &[entry("2-0", &["f", "new"])]));
    wait_blocked(&mut admin, 0);
    // On a key that does not exist yet, `$` is 0-0: its first entry serves.
    let mut reader = block(&server, &mut admin, "XREAD COUNT 5 BLOCK 0 STREAMS nokey $", 0);
    assert_eq!(admin.cmd_str("XADD nokey 7-7 a b"), bulk("7-7"));
    assert_eq!(reply(&mut reader), read_reply("nokey", &[entry("7-7", &["a", "b"])]));
    // Every reader of a key is served by one XADD: reading takes nothing from the others.
    let mut readers: Vec<Raw> = (0..3).map(|i| block(&server, &mut admin, "XREAD BLOCK 0 STREAMS s 2-0", i)).collect();
    assert_eq!(admin.cmd_str("XADD s 3-0 f third"), bulk("3-0"));
    for r in &mut readers {
        assert_eq!(reply(r), read_reply("s", &[entry("3-0", &["f", "third"])]));
    }
    // A reader whose ID is behind is served at once, without waiting.
    assert_eq!(
        admin.cmd_str("XREAD BLOCK 0 STREAMS s 1-0"),
        read_reply("s", &[entry("2-0", &["f", "new"]), entry("3-0", &["f", "third"])])
    );
    wait_blocked(&mut admin, 0);
}

#[test]
fn xread_times_out_and_answers_for_the_key_that_changed() {
    let server = Server::magpie();
    let mut admin = server.raw();
    let start = Instant::now();
    assert_eq!(admin.cmd_str("XREAD BLOCK 100 STREAMS s $"), "*-1\r\n");
    assert!(start.elapsed() >= Duration::from_millis(100));
    let forever = block(&server, &mut admin, "XREAD BLOCK 0 STREAMS quiet $", 0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(blocked(&mut admin), 1, "BLOCK 0 waits for good");
    // Two keys changed in one transaction: the client is served for the first alone.
    let mut reader = block(&server, &mut admin, "XREAD BLOCK 0 STREAMS a b $ $", 1);
    assert_eq!(admin.cmd_str("MULTI"), "+OK\r\n");
    admin.cmd_str("XADD b 1 x y");
    admin.cmd_str("XADD a 1 z w");
    assert!(admin.cmd_str("EXEC").starts_with("*2"));
    assert_eq!(reply(&mut reader), read_reply("b", &[entry("1-0", &["x", "y"])]));
    // An entry added and deleted before the client is served: Redis's reply, the key with no
    // entries (it compares the stream's last ID with the one it waits after).
    let mut reader = block(&server, &mut admin, "XREAD BLOCK 0 STREAMS a $", 1);
    admin.cmd_str("MULTI");
    admin.cmd_str("XADD a 2 f v");
    admin.cmd_str("XDEL a 2");
    admin.cmd_str("EXEC");
    assert_eq!(reply(&mut reader), read_reply("a", &[]));
    // Without COUNT, a client served after waiting gets at most 1000 entries.
    let mut reader = block(&server, &mut admin, "XREAD BLOCK 0 STREAMS big 0", 1);
    let mut batch = Raw::encode(&[b"MULTI"]);
    for i in 1..=1500 {
        batch.extend_from_slice(&Raw::encode(&[b"XADD", b"big", i.to_string().as_bytes(), b"f", b"v"]));
    }
    batch.extend_from_slice(&Raw::encode(&[b"EXEC"]));
    admin.send(&batch);
    for _ in 0..1502 {
        admin.read_reply();
    }
    let served = reply(&mut reader);
    assert!(served.starts_with("*1\r\n*2\r\n$3\r\nbig\r\n*1000\r\n"), "{}", &served[..40]);
    forever.stream().shutdown(std::net::Shutdown::Both).expect("disconnect");
    wait_blocked(&mut admin, 0);
}

#[test]
fn consumers_of_a_group_share_what_is_added() {
    let server = Server::magpie();
    let mut admin = server.raw();
    assert_eq!(admin.cmd_str("XGROUP CREATE s g $ MKSTREAM"), "+OK\r\n");
    let mut alice = block(&server, &mut admin, "XREADGROUP GROUP g alice BLOCK 0 STREAMS s >", 0);
    let mut bob = block(&server, &mut admin, "XREADGROUP GROUP g bob BLOCK 0 STREAMS s >", 1);
    let mut watcher = block(&server, &mut admin, "XREAD BLOCK 0 STREAMS s $", 2);
    // One entry: the first consumer takes it, the other waits on; a plain reader sees it too.
    assert_eq!(admin.cmd_str("XADD s 1 f one"), bulk("1-0"));
    assert_eq!(reply(&mut alice), read_reply("s", &[entry("1-0", &["f", "one"])]));
    assert_eq!(reply(&mut watcher), read_reply("s", &[entry("1-0", &["f", "one"])]));
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd_str("XADD s 2 f two"), bulk("2-0"));
    assert_eq!(reply(&mut bob), read_reply("s", &[entry("2-0", &["f", "two"])]));
    // Both are pending, each for its consumer.
    let pending = admin.cmd_str("XPENDING s g");
    assert_eq!(
        pending,
        "*4\r\n:2\r\n$3\r\n1-0\r\n$3\r\n2-0\r\n*2\r\n*2\r\n$5\r\nalice\r\n$1\r\n1\r\n*2\r\n$3\r\nbob\r\n$1\r\n1\r\n"
    );
    // NOACK: delivered without entering the PEL.
    let mut carol = block(&server, &mut admin, "XREADGROUP GROUP g carol NOACK BLOCK 0 STREAMS s >", 0);
    admin.cmd_str("XADD s 3 f three");
    assert_eq!(reply(&mut carol), read_reply("s", &[entry("3-0", &["f", "three"])]));
    assert!(admin.cmd_str("XPENDING s g").starts_with("*4\r\n:2\r\n"));
    // A consumer created while served counts as one.
    assert!(admin.cmd_str("XINFO CONSUMERS s g").starts_with("*3\r\n"));
}

#[test]
fn group_readers_fail_when_their_key_or_group_goes() {
    let server = Server::magpie();
    let mut admin = server.raw();
    let setup = |admin: &mut Raw| {
        assert_eq!(admin.cmd_str("XGROUP CREATE s g $ MKSTREAM"), "+OK\r\n");
    };
    setup(&mut admin);
    let mut group_reader = block(&server, &mut admin, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >", 0);
    let mut plain_reader = block(&server, &mut admin, "XREAD BLOCK 0 STREAMS s $", 1);
    assert_eq!(admin.cmd_str("DEL s"), ":1\r\n");
    assert_eq!(reply(&mut group_reader), "-UNBLOCKED the stream key no longer exists\r\n");
    // A plain reader waits for the key to come back.
    wait_blocked(&mut admin, 1);
    admin.cmd_str("XADD s 5 f v");
    assert_eq!(reply(&mut plain_reader), read_reply("s", &[entry("5-0", &["f", "v"])]));

    // The key becomes another type.
    admin.cmd_str("DEL s");
    setup(&mut admin);
    let mut group_reader = block(&server, &mut admin, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >", 0);
    assert_eq!(admin.cmd_str("SET s x"), "+OK\r\n");
    assert_eq!(reply(&mut group_reader), "-UNBLOCKED the stream key no longer exists\r\n");

    // The group is destroyed.
    admin.cmd_str("DEL s");
    setup(&mut admin);
    let mut group_reader = block(&server, &mut admin, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >", 0);
    assert_eq!(admin.cmd_str("XGROUP DESTROY s g"), ":1\r\n");
    assert_eq!(reply(&mut group_reader), "-NOGROUP the consumer group this client was blocked on no longer exists\r\n");

    // The database is flushed.
    setup(&mut admin);
    let mut group_reader = block(&server, &mut admin, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >", 0);
    assert_eq!(admin.cmd_str("FLUSHALL"), "+OK\r\n");
    assert_eq!(reply(&mut group_reader), "-UNBLOCKED the stream key no longer exists\r\n");
    wait_blocked(&mut admin, 0);

    // A change that adds nothing (a new consumer) leaves the reader waiting.
    setup(&mut admin);
    let mut group_reader = block(&server, &mut admin, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >", 0);
    assert_eq!(admin.cmd_str("XGROUP CREATECONSUMER s g other"), ":1\r\n");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(blocked(&mut admin), 1);
    admin.cmd_str("XADD s 1 f v");
    assert_eq!(reply(&mut group_reader), read_reply("s", &[entry("1-0", &["f", "v"])]));
}

#[test]
fn blocked_readers_in_resp3_get_a_map() {
    let server = Server::magpie();
    let mut admin = server.raw();
    let mut reader = server.raw();
    assert!(reader.cmd_str("HELLO 3").starts_with('%'));
    send(&mut reader, "XREAD BLOCK 0 STREAMS s $");
    wait_blocked(&mut admin, 1);
    admin.cmd_str("XADD s 1 f v");
    assert_eq!(reply(&mut reader), format!("%1\r\n{}*1\r\n{}", bulk("s"), entry("1-0", &["f", "v"])));
    // A timeout is a null.
    assert_eq!(reader.cmd_str("XREAD BLOCK 10 STREAMS s $"), "_\r\n");
}

/// The bytes of stream nodes after the same commands, compared with the nodes redis-server
/// puts in its DUMP payload (read back with Magpie's RDB codec): the layout is Redis's.
#[test]
#[ignore = "needs redis-server; run with --ignored"]
fn stream_nodes_are_byte_for_byte_redis_nodes() {
    use magpie_persist::rdb::{Object, ReadOptions, restore};
    use magpie_store::stream::{NewId, NodeLimits, Trim, TrimTo};
    use magpie_store::{Stream, StreamId};

    let Some(redis) = Server::redis() else { return };
    let mut r = redis.raw();
    let mut ours = Stream::new();
    let add = |r: &mut Raw, ours: &mut Stream, id: (u64, u64), fields: &[&str]| {
        let id_text = format!("{}-{}", id.0, id.1);
        let mut args: Vec<&[u8]> = vec![b"XADD", b"s", id_text.as_bytes()];
        args.extend(fields.iter().map(|f| f.as_bytes()));
        assert_eq!(r.cmd(&args), bulk(&id_text).into_bytes());
        let pairs = fields.len() / 2;
        ours.add(
            NewId::Exact(StreamId::new(id.0, id.1)),
            fields.iter().map(|f| f.as_bytes()),
            pairs,
            NodeLimits::default(),
            0,
        )
        .expect("adds");
    };
    let long = "v".repeat(300);
    let huge = "w".repeat(5000);
    for i in 0..260u64 {
        let n = i.to_string();
        match i % 7 {
            0 => add(&mut r, &mut ours, (1_700_000_000_000 + i, i % 3), &["field", &n, "other", "x"]),
            1 => add(&mut r, &mut ours, (1_700_000_000_000 + i, 0), &["field", &n]),
            2 => add(&mut r, &mut ours, (1_700_000_000_000 + i, 5), &["123", "-9", "", &long]),
            3 => add(&mut r, &mut ours, (1_700_000_000_000 + i, 1), &["field", &n, "other", "y"]),
            4 if i % 2 == 0 => add(&mut r, &mut ours, (1_700_000_000_000 + i, 2), &["big", &huge]),
            _ => add(&mut r, &mut ours, (1_700_000_000_000 + i, 9), &["a", "1", "b", "2", "c", "3"]),
        }
    }
    let dels: Vec<StreamId> = (0..260).step_by(9).map(|i| StreamId::new(1_700_000_000_000 + i, 0)).collect();
    for id in &dels {
        r.cmd(&[b"XDEL", b"s", id.to_string().as_bytes()]);
    }
    ours.delete_ids(&dels);
    r.cmd_str("XTRIM s MAXLEN 230");
    ours.trim(&Trim { to: TrimTo::MaxLen(230), approx: false, limit: 0 });
    r.cmd_str("XTRIM s MINID ~ 1700000000040");
    ours.trim(&Trim { to: TrimTo::MinId(StreamId::new(1_700_000_000_040, 0)), approx: true, limit: 10_000 });

    let payload = r.cmd(&[b"DUMP", b"s"]);
    // `$<len>\r\n<payload>\r\n`
    let start = payload.iter().position(|&b| b == b'\n').expect("a bulk reply") + 1;
    let payload = &payload[start..payload.len() - 2];
    let Ok(Object::Stream(theirs)) = restore(payload, &ReadOptions::default()) else { panic!("a stream payload") };
    let ours = magpie_persist::rdb::Stream::from(&ours);
    assert_eq!(ours.nodes.len(), theirs.nodes.len(), "nodes");
    for (a, b) in ours.nodes.iter().zip(&theirs.nodes) {
        assert_eq!(a.master_id, b.master_id);
        assert_eq!(a.listpack.as_bytes(), b.listpack.as_bytes(), "node {}", a.master_id);
    }
    assert_eq!(
        (ours.length, ours.last_id, ours.first_id, ours.max_deleted_id, ours.entries_added),
        (theirs.length, theirs.last_id, theirs.first_id, theirs.max_deleted_id, theirs.entries_added)
    );
}
