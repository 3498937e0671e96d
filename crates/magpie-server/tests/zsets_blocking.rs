//! BZPOPMIN, BZPOPMAX and BZMPOP over a socket: what the differential script cannot show. The
//! order clients wake in, wake-ups by every command that adds members (ZADD, ZINCRBY, the STORE
//! forms, RENAME, COPY), timeouts, disconnects, counts, keys that become another type, and
//! concurrent pops that must let waiting clients go first.

mod common;

use std::time::{Duration, Instant};

use common::{Raw, Server, Takers, blocked, reply, send, wait_blocked};

fn bulk(s: &str) -> String {
    format!("${}\r\n{s}\r\n", s.len())
}

/// BZPOPMIN's `[key, member, score]` as RESP2.
fn triple(key: &str, member: &str, score: &str) -> String {
    format!("*3\r\n{}{}{}", bulk(key), bulk(member), bulk(score))
}

/// BZMPOP's `[key, [[member, score], ...]]` as RESP2.
fn nested(key: &str, entries: &[(&str, &str)]) -> String {
    let mut out = format!("*2\r\n{}*{}\r\n", bulk(key), entries.len());
    for (member, score) in entries {
        out.push_str(&format!("*2\r\n{}{}", bulk(member), bulk(score)));
    }
    out
}

/// Blocks a new connection with `line`, once `blocked_clients` says the ones before it wait.
fn block(server: &Server, admin: &mut Raw, line: &str, waiting: u64) -> Raw {
    let mut c = server.raw();
    send(&mut c, line);
    wait_blocked(admin, waiting + 1);
    c
}

#[test]
fn blocked_clients_wake_in_the_order_they_blocked() {
    let server = Server::magpie();
    let mut admin = server.raw();
    // The order is per key, whatever the command and whatever other keys a client waits on.
    let lines = [
        "BZPOPMIN z 0",
        "BZPOPMAX other z 0",
        "BZMPOP 0 1 z MIN COUNT 2",
        "BZMPOP 0 2 other z MAX COUNT 2",
        "BZPOPMIN z 0",
    ];
    let mut clients: Vec<Raw> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        clients.push(block(&server, &mut admin, line, i as u64));
    }
    assert_eq!(admin.cmd_str("CLIENT LIST").matches("flags=b").count(), 5);
    // One ZADD of seven members serves all five, oldest first, each from its end.
    assert_eq!(admin.cmd_str("ZADD z 1 a 2 b 3 c 4 d 5 e 6 f 7 g"), ":7\r\n");
    let expected = [
        triple("z", "a", "1"),
        triple("z", "g", "7"),
        nested("z", &[("b", "2"), ("c", "3")]),
        nested("z", &[("f", "6"), ("e", "5")]),
        triple("z", "d", "4"),
    ];
    for (c, want) in clients.iter_mut().zip(expected) {
        assert_eq!(reply(c), want);
    }
    assert_eq!(admin.cmd_str("EXISTS z"), ":0\r\n");
    wait_blocked(&mut admin, 0);

    // Fewer members than clients: the oldest are served, the others keep waiting.
    let mut waiting: Vec<Raw> = (0..3).map(|i| block(&server, &mut admin, "BZPOPMIN q 0", i)).collect();
    assert_eq!(admin.cmd_str("ZADD q 1 x"), ":1\r\n");
    assert_eq!(reply(&mut waiting[0]), triple("q", "x", "1"));
    wait_blocked(&mut admin, 2);
    // The adder's own next command comes after the serving: the member is gone.
    assert_eq!(admin.cmd_str("ZINCRBY q 2.5 y"), "$3\r\n2.5\r\n");
    assert_eq!(admin.cmd_str("ZCARD q"), ":0\r\n");
    assert_eq!(reply(&mut waiting[1]), triple("q", "y", "2.5"));
    // In a pipeline too: the ZPOPMIN after the ZADD finds nothing.
    admin.send(&[Raw::encode(&[b"ZADD", b"q", b"3", b"w"]), Raw::encode(&[b"ZPOPMIN", b"q"])].concat());
    assert_eq!(reply(&mut admin), ":1\r\n");
    assert_eq!(reply(&mut admin), "*0\r\n");
    assert_eq!(reply(&mut waiting[2]), triple("q", "w", "3"));
    wait_blocked(&mut admin, 0);
}

#[test]
fn bzmpop_takes_up_to_its_count_from_either_end() {
    let server = Server::magpie();
    let mut admin = server.raw();
    // More asked for than there is: all of it, and the key is gone.
    let mut c = block(&server, &mut admin, "BZMPOP 0 1 k MAX COUNT 3", 0);
    admin.cmd_str("ZADD k 1 a 2 b");
    assert_eq!(reply(&mut c), nested("k", &[("b", "2"), ("a", "1")]));
    assert_eq!(admin.cmd_str("EXISTS k"), ":0\r\n");
    // Less than there is: the lowest, the rest stays.
    send(&mut c, "BZMPOP 0 1 k MIN COUNT 2");
    wait_blocked(&mut admin, 1);
    admin.cmd_str("ZADD k 5 e 4 d 3 c -1.5 m inf top");
    assert_eq!(reply(&mut c), nested("k", &[("m", "-1.5"), ("c", "3")]));
    assert_eq!(admin.cmd_str("ZRANGE k 0 -1"), "*3\r\n$1\r\nd\r\n$1\r\ne\r\n$3\r\ntop\r\n");
    // Without COUNT: one, nested all the same.
    assert_eq!(c.cmd_str("BZMPOP 0 1 k MAX"), nested("k", &[("top", "inf")]));
    // RESP3: scores are doubles, the nesting is the same, a timeout is a null.
    c.cmd_str("HELLO 3");
    assert_eq!(
        c.cmd_str("BZMPOP 0 1 k MIN COUNT 5"),
        "*2\r\n$1\r\nk\r\n*2\r\n*2\r\n$1\r\nd\r\n,4\r\n*2\r\n$1\r\ne\r\n,5\r\n"
    );
    assert_eq!(c.cmd_str("BZMPOP 0.01 1 k MIN COUNT 5"), "_\r\n");
    send(&mut c, "BZPOPMAX k 0");
    wait_blocked(&mut admin, 1);
    admin.cmd_str("ZADD k 0.1 tenth");
    assert_eq!(reply(&mut c), "*3\r\n$1\r\nk\r\n$5\r\ntenth\r\n,0.10000000000000001\r\n");
}

#[test]
fn every_command_that_adds_members_wakes_clients_blocked_on_its_key() {
    let server = Server::magpie();
    let mut admin = server.raw();
    admin.cmd_str("ZADD s1 1 a 2 b");
    admin.cmd_str("ZADD s2 3 c");

    let mut c = block(&server, &mut admin, "BZPOPMIN dst 0", 0);
    assert_eq!(admin.cmd_str("ZUNIONSTORE dst 2 s1 s2"), ":3\r\n");
    assert_eq!(reply(&mut c), triple("dst", "a", "1"));
    assert_eq!(admin.cmd_str("ZCARD dst"), ":2\r\n");

    admin.cmd_str("DEL dst");
    send(&mut c, "BZPOPMAX dst 0");
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd_str("ZINTERSTORE dst 2 s1 s1"), ":2\r\n");
    assert_eq!(reply(&mut c), triple("dst", "b", "4"));

    admin.cmd_str("DEL dst");
    send(&mut c, "BZMPOP 0 1 dst MIN COUNT 10");
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd_str("ZDIFFSTORE dst 2 s1 s2"), ":2\r\n");
    assert_eq!(reply(&mut c), nested("dst", &[("a", "1"), ("b", "2")]));

    send(&mut c, "BZPOPMIN dst 0");
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd_str("ZRANGESTORE dst s1 1 1"), ":1\r\n");
    assert_eq!(reply(&mut c), triple("dst", "b", "2"));

    send(&mut c, "BZPOPMIN dst 0");
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd_str("ZADD dst INCR 2.5 m"), "$3\r\n2.5\r\n");
    assert_eq!(reply(&mut c), triple("dst", "m", "2.5"));

    send(&mut c, "BZPOPMIN dst 0");
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd_str("RENAME s2 dst"), "+OK\r\n");
    assert_eq!(reply(&mut c), triple("dst", "c", "3"));
    assert_eq!(admin.cmd_str("EXISTS s2 dst"), ":0\r\n");

    send(&mut c, "BZPOPMAX dst 0");
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd_str("COPY s1 dst"), ":1\r\n");
    assert_eq!(reply(&mut c), triple("dst", "b", "2"));
    assert_eq!(admin.cmd_str("ZRANGE dst 0 -1"), "*1\r\n$1\r\na\r\n");

    // A STORE whose result is empty, or a ZADD that adds nothing, wakes nobody.
    send(&mut c, "BZPOPMIN e 0");
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd_str("ZINTERSTORE e 2 s1 missing"), ":0\r\n");
    assert_eq!(admin.cmd_str("ZADD e XX 1 x"), ":0\r\n");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(blocked(&mut admin), 1);
    // Nor does a ZADD in another database.
    admin.cmd_str("SELECT 1");
    admin.cmd_str("ZADD e 1 elsewhere");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(blocked(&mut admin), 1);
    admin.cmd_str("SELECT 0");
    admin.cmd_str("ZADD e 7 here");
    assert_eq!(reply(&mut c), triple("e", "here", "7"));
}

#[test]
fn a_waiter_is_served_only_by_the_type_it_waits_for() {
    let server = Server::magpie();
    let mut admin = server.raw();
    // A sorted-set waiter first, a list waiter behind it, on the same key.
    let mut zset_waiter = block(&server, &mut admin, "BZPOPMIN k 0", 0);
    let mut list_waiter = block(&server, &mut admin, "BLPOP k 0", 1);
    // The key becomes a list: the list waiter is served, the other keeps waiting.
    assert_eq!(admin.cmd_str("RPUSH k x"), ":1\r\n");
    assert_eq!(reply(&mut list_waiter), "*2\r\n$1\r\nk\r\n$1\r\nx\r\n");
    wait_blocked(&mut admin, 1);
    assert_eq!(admin.cmd_str("RPUSH k y"), ":1\r\n");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(admin.cmd_str("LRANGE k 0 -1"), "*1\r\n$1\r\ny\r\n");
    assert_eq!(blocked(&mut admin), 1);
    // Other types arriving under the name serve nobody either.
    for (make, kind) in [("SET tmp v", "string"), ("HSET tmp f v", "hash"), ("SADD tmp m", "set")] {
        admin.cmd_str("DEL k tmp");
        admin.cmd_str(make);
        assert_eq!(admin.cmd_str("RENAME tmp k"), "+OK\r\n");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(blocked(&mut admin), 1, "served by a {kind}");
    }
    // A sorted set does.
    admin.cmd_str("DEL k");
    admin.cmd_str("ZADD k 1 m");
    assert_eq!(reply(&mut zset_waiter), triple("k", "m", "1"));
    // And the other way round: a list waiter is not served by a sorted set.
    send(&mut list_waiter, "BRPOP k 0");
    wait_blocked(&mut admin, 1);
    admin.cmd_str("ZADD k 2 n");
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(blocked(&mut admin), 1);
    assert_eq!(admin.cmd_str("ZCARD k"), ":1\r\n");
}

#[test]
fn timeouts_are_honoured_in_fractions_of_a_second() {
    let server = Server::magpie();
    let mut c = server.raw();
    for (line, ms) in [("BZPOPMIN k 0.2", 200u128), ("BZPOPMAX k other 0.05", 50), ("BZMPOP 1e-1 2 k other MIN", 100)] {
        let start = Instant::now();
        assert_eq!(c.cmd_str(line), "*-1\r\n");
        let took = start.elapsed().as_millis();
        assert!(took >= ms && took < ms + 500, "{line} took {took} ms");
    }
    // RESP3: a null.
    c.cmd_str("HELLO 3");
    assert_eq!(c.cmd_str("BZPOPMIN k 0.01"), "_\r\n");
    assert_eq!(c.cmd_str("BZMPOP 0.01 1 k MAX COUNT 2"), "_\r\n");
    // Timed out, each command is counted once.
    let stats = String::from_utf8(c.cmd(&[b"INFO", b"commandstats"])).unwrap();
    assert!(stats.contains("cmdstat_bzpopmin:calls=2,"), "{stats}");
    assert!(stats.contains("cmdstat_bzpopmax:calls=1,"), "{stats}");
    assert!(stats.contains("cmdstat_bzmpop:calls=2,"), "{stats}");
    // A client waiting forever is still waiting after a while, and comes out when served.
    let mut waiter = server.raw();
    send(&mut waiter, "BZPOPMAX forever 0");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(blocked(&mut c), 1);
    c.cmd_str("ZADD forever 1 x");
    assert_eq!(reply(&mut waiter), triple("forever", "x", "1"));
}

#[test]
fn a_client_that_disconnects_while_blocked_leaves_nothing_behind() {
    let server = Server::magpie();
    let mut admin = server.raw();
    for line in ["BZPOPMIN q other 0", "BZPOPMAX q 0", "BZMPOP 0 2 q other MIN COUNT 3"] {
        let c = block(&server, &mut admin, line, 0);
        drop(c);
        wait_blocked(&mut admin, 0);
    }
    // A later ZADD stays in the set: no dead client takes it.
    assert_eq!(admin.cmd_str("ZADD q 1 x"), ":1\r\n");
    assert_eq!(admin.cmd_str("ZCARD q"), ":1\r\n");
    // A client waiting behind a dead one gets the member.
    let dead = block(&server, &mut admin, "BZPOPMIN w 0", 0);
    let mut alive = block(&server, &mut admin, "BZPOPMIN w 0", 1);
    drop(dead);
    wait_blocked(&mut admin, 1);
    admin.cmd_str("ZADD w 2 y");
    assert_eq!(reply(&mut alive), triple("w", "y", "2"));
    assert!(!admin.cmd_str("CLIENT LIST").contains("flags=b"));
    wait_blocked(&mut admin, 0);
}

/// Members added while a client waits go to that client, even when other connections take
/// members from the same key as fast as they can: every command that takes lets it go first.
#[test]
fn a_concurrent_pop_never_takes_what_was_added_for_a_waiting_client() {
    let server = Server::magpie();
    let takers = [
        "ZPOPMIN q",
        "ZPOPMAX q 5",
        "ZMPOP 2 other q MIN",
        "ZREMRANGEBYRANK q 0 -1",
        "ZREMRANGEBYSCORE q -inf +inf",
        "ZREMRANGEBYLEX q - +",
        // Every member the loop below adds.
        String::leak((0..150).fold(String::from("ZREM q"), |line, i| format!("{line} v{i}"))),
    ];
    let stealers = Takers::start(server.port, &takers, &["*0\r\n", "*-1\r\n", ":0\r\n"]);
    let mut admin = server.raw();
    let mut waiter = server.raw();
    for i in 0..150 {
        let (line, member) = match i % 3 {
            0 => ("BZPOPMIN q 0", format!("v{i}")),
            1 => ("BZPOPMAX q 0", format!("v{i}")),
            _ => ("BZMPOP 0 1 q MIN", format!("v{i}")),
        };
        send(&mut waiter, line);
        wait_blocked(&mut admin, 1);
        admin.cmd(&[b"ZADD", b"q", i.to_string().as_bytes(), member.as_bytes()]);
        let want =
            if i % 3 == 2 { nested("q", &[(&member, &i.to_string())]) } else { triple("q", &member, &i.to_string()) };
        assert_eq!(reply(&mut waiter), want);
    }
    let stolen = stealers.stop();
    assert!(stolen.is_empty(), "taken from under a waiting client: {stolen:?}");
}

#[test]
fn command_info_says_what_redis_says() {
    let server = Server::magpie();
    let mut c = server.raw();
    // Name, arity, flags, first key, last key, step, ACL categories: Redis 7.0's.
    let head = |name: &str, arity: i32, flags: &[&str], keys: (i32, i32, i32), cats: &[&str]| {
        let set = |items: &[&str]| {
            format!("*{}\r\n{}", items.len(), items.iter().map(|f| format!("+{f}\r\n")).collect::<String>())
        };
        format!(
            "*1\r\n*10\r\n{}:{arity}\r\n{}:{}\r\n:{}\r\n:{}\r\n{}",
            bulk(name),
            set(flags),
            keys.0,
            keys.1,
            keys.2,
            set(cats)
        )
    };
    let cases = [
        head(
            "bzpopmin",
            -3,
            &["write", "noscript", "blocking", "fast"],
            (1, -2, 1),
            &["@write", "@sortedset", "@fast", "@blocking"],
        ),
        head(
            "bzpopmax",
            -3,
            &["write", "noscript", "blocking", "fast"],
            (1, -2, 1),
            &["@write", "@sortedset", "@fast", "@blocking"],
        ),
        head(
            "bzmpop",
            -5,
            &["write", "blocking", "movablekeys"],
            (0, 0, 0),
            &["@write", "@sortedset", "@slow", "@blocking"],
        ),
        head("zmpop", -4, &["write", "movablekeys"], (0, 0, 0), &["@write", "@sortedset", "@slow"]),
    ];
    for want in cases {
        let name = want.split("\r\n").nth(3).expect("name").to_string();
        let got = c.cmd_str(&format!("COMMAND INFO {name}"));
        assert!(got.starts_with(&want), "COMMAND INFO {name}:\n{got:?}\nshould start with\n{want:?}");
    }
}
