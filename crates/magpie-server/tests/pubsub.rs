//! Pub/Sub across connections, what the one-connection differential scripts cannot show:
//! ordering per publisher under concurrent publishers, pattern matching, a RESP3 subscriber
//! running commands while messages arrive, the output buffer limit closing a subscriber that
//! does not read (while the publisher stays fast), no residue after a subscriber leaves, and
//! keyspace events for keys that expire. Event sequences are compared with redis-server by the
//! `events_*` differential scripts.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::time::{Duration, Instant};

use common::{Raw, Server};

/// The elements of a flat reply (an array or push of bulk strings and integers), as bytes.
fn parts(reply: &[u8]) -> Vec<Vec<u8>> {
    let line = |pos: usize| -> (u8, &[u8], usize) {
        let end = pos + reply[pos..].windows(2).position(|w| w == b"\r\n").expect("CRLF");
        (reply[pos], &reply[pos + 1..end], end + 2)
    };
    let (kind, count, mut pos) = line(0);
    assert!(matches!(kind, b'*' | b'>'), "not an array: {:?}", String::from_utf8_lossy(reply));
    let count: usize = text(count).parse().expect("count");
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (kind, body, next) = line(pos);
        pos = next;
        if kind == b'$' {
            let n: usize = text(body).parse().expect("bulk length");
            out.push(reply[pos..pos + n].to_vec());
            pos += n + 2;
        } else {
            out.push(body.to_vec());
        }
    }
    out
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// Sends a command without reading its reply.
fn send(c: &mut Raw, args: &[&str]) {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.send(&Raw::encode(&args));
}

/// Reads a message and returns its parts as text.
fn message(c: &mut Raw) -> Vec<String> {
    parts(&c.read_reply()).iter().map(|p| text(p)).collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(std::string::ToString::to_string).collect()
}

/// A field of INFO.
fn info_field(c: &mut Raw, field: &str) -> String {
    let info = text(&c.cmd(&[b"INFO", b"stats"]));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} in INFO"))
        .trim()
        .to_owned()
}

/// Waits until `f` holds, or fails with `what`.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn numsub(c: &mut Raw, channel: &str) -> i64 {
    let reply = parts(&c.cmd(&[b"PUBSUB", b"NUMSUB", channel.as_bytes()]));
    text(&reply[1]).parse().expect("count")
}

#[test]
fn every_subscriber_gets_each_publishers_messages_in_order() {
    const PUBLISHERS: usize = 4;
    const MESSAGES: usize = 2000;
    let server = Server::magpie();
    let mut subscribers = Vec::new();
    for i in 0..3 {
        let mut s = server.raw();
        match i {
            0 => s.cmd(&[b"SUBSCRIBE", b"feed"]),
            1 => s.cmd(&[b"PSUBSCRIBE", b"fe?d"]),
            _ => {
                s.cmd(&[b"HELLO", b"3"]);
                s.cmd(&[b"SUBSCRIBE", b"feed"])
            }
        };
        subscribers.push(s);
    }
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let port = server.port;
            std::thread::spawn(move || {
                let mut c = Raw::connect(port);
                for m in 0..MESSAGES {
                    // Pipelined in bursts, so that publishers really overlap.
                    send(&mut c, &["PUBLISH", "feed", &format!("{p}:{m}")]);
                    if m % 50 == 49 {
                        for _ in 0..50 {
                            assert_eq!(c.read_reply(), b":3\r\n");
                        }
                    }
                }
            })
        })
        .collect();
    for (i, s) in subscribers.iter_mut().enumerate() {
        let mut next = [0usize; PUBLISHERS];
        for _ in 0..PUBLISHERS * MESSAGES {
            let msg = message(s);
            let payload = msg.last().expect("payload");
            let (p, m) = payload.split_once(':').expect("p:m");
            let (p, m): (usize, usize) = (p.parse().expect("p"), m.parse().expect("m"));
            assert_eq!(m, next[p], "subscriber {i}: publisher {p}'s message {m} out of order");
            next[p] += 1;
        }
        assert_eq!(next, [MESSAGES; PUBLISHERS]);
    }
    for p in publishers {
        p.join().expect("publisher");
    }
}

#[test]
fn patterns_match_as_redis_globs() {
    let server = Server::magpie();
    let mut sub = server.raw();
    let patterns = ["h?llo", "h*llo", "h[ae]llo", "h[^e]llo", "h[a-b]llo", "h\\*llo", "*"];
    for p in patterns {
        sub.cmd(&[b"PSUBSCRIBE", p.as_bytes()]);
    }
    let mut publisher = server.raw();
    let expect: &[(&str, &[&str])] = &[
        ("hello", &["h?llo", "h*llo", "h[ae]llo", "*"]),
        ("hallo", &["h?llo", "h*llo", "h[ae]llo", "h[^e]llo", "h[a-b]llo", "*"]),
        ("hxxllo", &["h*llo", "*"]),
        ("h*llo", &["h?llo", "h*llo", "h[^e]llo", "h\\*llo", "*"]),
        ("other", &["*"]),
    ];
    for (channel, matched) in expect {
        let n = publisher.cmd(&[b"PUBLISH", channel.as_bytes(), b"m"]);
        assert_eq!(n, format!(":{}\r\n", matched.len()).into_bytes(), "{channel}");
        let mut got: Vec<String> = (0..matched.len()).map(|_| message(&mut sub)[1].clone()).collect();
        got.sort();
        let mut want = strs(matched);
        want.sort();
        assert_eq!(got, want, "patterns matching {channel}");
    }
    assert_eq!(text(&publisher.cmd(&[b"PUBSUB", b"NUMPAT"])), ":7\r\n");
}

#[test]
fn a_resp3_subscriber_runs_commands_while_messages_arrive() {
    let server = Server::magpie();
    let mut sub = server.raw();
    sub.cmd(&[b"HELLO", b"3"]);
    assert!(sub.cmd(&[b"SUBSCRIBE", b"news"]).starts_with(b">3\r\n$9\r\nsubscribe"));
    let mut publisher = server.raw();
    // Idle: delivered at once.
    assert_eq!(publisher.cmd(&[b"PUBLISH", b"news", b"one"]), b":1\r\n");
    assert_eq!(message(&mut sub), strs(&["message", "news", "one"]));
    // Commands work as usual, and messages published between them come as pushes.
    assert_eq!(sub.cmd(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    publisher.cmd(&[b"PUBLISH", b"news", b"two"]);
    // The push may come before or after GET's reply: it arrives on its own.
    send(&mut sub, &["GET", "k"]);
    let mut replies = [sub.read_reply(), sub.read_reply()];
    replies.sort(); // `$` sorts before `>`
    assert_eq!(replies[0], b"$1\r\nv\r\n");
    assert_eq!(parts(&replies[1]), vec![b"message".to_vec(), b"news".to_vec(), b"two".to_vec()]);
    // A client in RESP3 is no "subscribe mode" client: CLIENT LIST shows it as a subscriber.
    let list = text(&sub.cmd(&[b"CLIENT", b"LIST", b"TYPE", b"pubsub"]));
    assert!(list.contains("flags=P") && list.contains("sub=1 psub=0 ssub=0"), "{list}");
}

#[test]
fn subscribe_mode_is_shown_in_client_list_and_info() {
    let server = Server::magpie();
    let mut sub = server.raw();
    let mut c = server.raw();
    sub.send(&Raw::encode(&[b"SUBSCRIBE", b"a", b"b"]));
    sub.read_reply();
    sub.read_reply();
    sub.cmd(&[b"PSUBSCRIBE", b"p*"]);
    sub.cmd(&[b"SSUBSCRIBE", b"s"]);
    let list = text(&c.cmd(&[b"CLIENT", b"LIST"]));
    let line = list.lines().find(|l| l.contains("flags=P")).unwrap_or_else(|| panic!("a subscriber in {list}"));
    assert!(line.contains("sub=2 psub=1 ssub=1"), "{line}");
    let normal = text(&c.cmd(&[b"CLIENT", b"LIST", b"TYPE", b"normal"]));
    assert!(!normal.contains("flags=P") && normal.contains("cmd=client|list"), "{normal}");
    let pubsub = text(&c.cmd(&[b"CLIENT", b"LIST", b"TYPE", b"pubsub"]));
    assert_eq!(pubsub.lines().filter(|l| l.contains("id=")).count(), 1, "{pubsub}");
    assert_eq!(info_field(&mut c, "pubsub_channels"), "2");
    assert_eq!(info_field(&mut c, "pubsub_patterns"), "1");
    assert_eq!(info_field(&mut c, "pubsubshard_channels"), "1");
}

/// Everything a subscriber leaves behind in the tables, as seen by another client.
fn residue(c: &mut Raw) -> Vec<String> {
    let mut left = Vec::new();
    for (what, cmd) in
        [("channels", &[&b"PUBSUB"[..], b"CHANNELS"][..]), ("shard channels", &[b"PUBSUB", b"SHARDCHANNELS"])]
    {
        let reply = c.cmd(cmd);
        if reply != b"*0\r\n" {
            left.push(format!("{what}: {}", text(&reply)));
        }
    }
    for field in ["pubsub_channels", "pubsub_patterns", "pubsubshard_channels"] {
        let v = info_field(c, field);
        if v != "0" {
            left.push(format!("{field}:{v}"));
        }
    }
    left
}

#[test]
fn a_subscriber_that_leaves_leaves_nothing_behind() {
    let server = Server::magpie();
    let mut c = server.raw();
    // Disconnects with subscriptions of every kind, some with messages still pending; one
    // that RESETs; one that unsubscribes by hand.
    for round in 0..3 {
        let mut sub = server.raw();
        let channels: Vec<String> = (0..100).map(|i| format!("ch{i}")).collect();
        let mut cmd: Vec<&[u8]> = vec![b"SUBSCRIBE"];
        cmd.extend(channels.iter().map(std::string::String::as_bytes));
        sub.send(&Raw::encode(&cmd));
        for _ in 0..channels.len() {
            sub.read_reply();
        }
        sub.cmd(&[b"PSUBSCRIBE", b"ch*"]);
        sub.cmd(&[b"SSUBSCRIBE", b"shard"]);
        assert_eq!(numsub(&mut c, "ch7"), 1);
        for i in 0..50 {
            c.cmd(&[b"PUBLISH", b"ch7", format!("pending {i}").as_bytes()]);
        }
        match round {
            0 => drop(sub),
            1 => {
                // The messages already sent come first.
                sub.send(&Raw::encode(&[b"RESET"]));
                while sub.read_reply() != b"+RESET\r\n" {}
            }
            _ => {
                sub.send(&Raw::encode(&[b"UNSUBSCRIBE"]));
                sub.send(&Raw::encode(&[b"PUNSUBSCRIBE"]));
                sub.send(&Raw::encode(&[b"SUNSUBSCRIBE"]));
                loop {
                    let m = message(&mut sub);
                    if m[0] == "sunsubscribe" {
                        assert_eq!(m[2], "0");
                        break;
                    }
                }
            }
        }
        wait_until("the subscriber is gone from the tables", || residue(&mut c).is_empty());
        assert_eq!(text(&c.cmd(&[b"PUBSUB", b"NUMPAT"])), ":0\r\n");
        assert_eq!(c.cmd(&[b"PUBLISH", b"ch7", b"x"]), b":0\r\n");
    }
    assert_eq!(residue(&mut c), Vec::<String>::new());
}

#[test]
fn a_subscriber_that_does_not_read_is_closed_and_the_publisher_stays_fast() {
    let server = Server::magpie();
    let mut c = server.raw();
    c.cmd(&[b"CONFIG", b"SET", b"client-output-buffer-limit", b"pubsub 1mb 256kb 60"]);
    let mut slow = server.raw();
    slow.cmd(&[b"SUBSCRIBE", b"firehose"]);
    let mut fast = server.raw();
    fast.cmd(&[b"SUBSCRIBE", b"firehose"]);
    let fast = fast.stream().try_clone().expect("clone the socket");
    // The fast subscriber reads everything on its own thread, in big reads (every message has
    // the same length: no parsing, so that a debug build keeps up).
    let message_len = b"*3\r\n$7\r\nmessage\r\n$8\r\nfirehose\r\n$10000\r\n".len() + 10_002;
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = received.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        let mut bytes = 0;
        while bytes < 3000 * message_len {
            match (&fast).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes += n,
            }
            counter.store(bytes / message_len, std::sync::atomic::Ordering::Relaxed);
        }
        bytes / message_len
    });
    let rss_before = server.rss_kib();
    // 3000 messages of 10 KB: 30 MB for a subscriber that reads none of it.
    let payload = vec![b'x'; 10_000];
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..3000 {
        // The reading subscriber may be descheduled for a while on a busy machine: let it stay
        // well within its 1 MB (the slow one goes far past it all the same).
        while i - received.load(std::sync::atomic::Ordering::Relaxed) > 50 {
            std::thread::sleep(Duration::from_micros(200));
        }
        let t = Instant::now();
        let reply = c.cmd(&[b"PUBLISH", b"firehose", &payload]);
        slowest = slowest.max(t.elapsed());
        assert!(reply == b":2\r\n" || reply == b":1\r\n", "{}", text(&reply));
    }
    let took = started.elapsed();
    assert_eq!(reader.join().expect("fast reader"), 3000, "the reading subscriber got every message");
    // The slow one is gone; the one that reads is still there.
    wait_until("the slow subscriber is closed", || numsub(&mut c, "firehose") == 1);
    // Its socket ends after what the kernel already held.
    slow.stream().set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut sink = Vec::new();
    let read = slow.stream().read_to_end(&mut sink);
    assert!(read.is_ok(), "the slow subscriber's connection did not end: {read:?}");
    assert!(sink.len() < 10_000_000, "the slow subscriber was sent {} bytes", sink.len());
    let grown = server.rss_kib().saturating_sub(rss_before);
    assert!(grown < 20 * 1024, "the server grew by {grown} KiB for a subscriber limited to 1 MB");
    // No publish waited for the slow subscriber (generous bounds: a 2-core machine, debug build).
    assert!(slowest < Duration::from_millis(500), "slowest PUBLISH took {slowest:?}");
    assert!(took < Duration::from_secs(20), "3000 PUBLISH took {took:?}");
}

#[test]
fn the_soft_limit_closes_a_subscriber_that_stays_over_it() {
    let server = Server::magpie();
    let mut c = server.raw();
    c.cmd(&[b"CONFIG", b"SET", b"client-output-buffer-limit", b"pubsub 0 512kb 1"]);
    let mut slow = server.raw();
    slow.cmd(&[b"SUBSCRIBE", b"c"]);
    let payload = vec![b'x'; 100_000];
    // Well over the soft limit (kernel buffers hold some), then more for over a second.
    let started = Instant::now();
    while numsub(&mut c, "c") == 1 {
        c.cmd(&[b"PUBLISH", b"c", &payload]);
        std::thread::sleep(Duration::from_millis(20));
        assert!(started.elapsed() < Duration::from_secs(10), "still subscribed after 10 s");
    }
    assert!(started.elapsed() >= Duration::from_secs(1), "closed before the soft limit's second");
}

#[test]
fn subscribers_are_not_closed_as_idle() {
    let server = Server::magpie_with(&["--timeout", "1"]);
    let mut sub = server.raw();
    sub.cmd(&[b"SUBSCRIBE", b"quiet"]);
    let mut idle = server.raw();
    idle.cmd(&[b"PING"]);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(idle.closed_within(Duration::from_millis(100)));
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"PUBLISH", b"quiet", b"still here"]), b":1\r\n");
    assert_eq!(message(&mut sub), strs(&["message", "quiet", "still here"]));
}

#[test]
fn expired_events_arrive_when_the_key_expires() {
    let server = Server::magpie();
    let mut c = server.raw();
    c.cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"Ex"]);
    let mut sub = server.raw();
    sub.cmd(&[b"SUBSCRIBE", b"__keyevent@0__:expired"]);
    for ttl in [300u64, 600] {
        let key = format!("k{ttl}");
        let set = Instant::now();
        c.cmd(&[b"SET", key.as_bytes(), b"v", b"PX", ttl.to_string().as_bytes()]);
        assert_eq!(message(&mut sub), strs(&["message", "__keyevent@0__:expired", &key]));
        let after = set.elapsed();
        // Not before its time, and within a few expiry cycles (hz 10) of it, with room for a busy
        // machine.
        assert!(after >= Duration::from_millis(ttl), "{key} announced after {after:?}");
        assert!(after < Duration::from_millis(ttl + 700), "{key} announced after {after:?}");
    }
    // Many keys: each announced once.
    for i in 0..200 {
        c.cmd(&[b"SET", format!("many{i}").as_bytes(), b"v", b"PX", b"100"]);
    }
    let mut seen = HashMap::new();
    for _ in 0..200 {
        *seen.entry(message(&mut sub)[2].clone()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 200);
    assert!(seen.values().all(|&n| n == 1));
}

#[test]
fn a_write_that_finds_its_key_expired_announces_the_expiry_first() {
    // Active expiry once a second: the write usually finds the key expired itself.
    let server = Server::magpie_with(&["--hz", "1"]);
    let mut c = server.raw();
    c.cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"KEA"]);
    let mut sub = server.raw();
    sub.cmd(&[b"PSUBSCRIBE", b"__keyspace@0__:*"]);
    for i in 0..3 {
        let key = format!("k{i}");
        c.cmd(&[b"SET", key.as_bytes(), b"v", b"PX", b"20"]);
        assert_eq!(message(&mut sub)[3], "set");
        assert_eq!(message(&mut sub)[3], "expire");
        std::thread::sleep(Duration::from_millis(40));
        c.cmd(&[b"APPEND", key.as_bytes(), b"w"]);
        assert_eq!(message(&mut sub)[3], "expired");
        assert_eq!(message(&mut sub)[3], "append");
    }
}

#[test]
fn keyspace_events_follow_the_configured_classes() {
    let server = Server::magpie_with(&["--notify-keyspace-events", "K$"]);
    let mut c = server.raw();
    assert_eq!(
        text(&c.cmd(&[b"CONFIG", b"GET", b"notify-keyspace-events"])),
        "*2\r\n$22\r\nnotify-keyspace-events\r\n$2\r\n$K\r\n"
    );
    let mut sub = server.raw();
    sub.cmd(&[b"PSUBSCRIBE", b"__key*__:*"]);
    c.cmd(&[b"SET", b"k", b"v", b"EX", b"100"]); // set ($) is published, expire (g) is not
    c.cmd(&[b"DEL", b"k"]);
    c.cmd(&[b"LPUSH", b"l", b"x"]);
    c.cmd(&[b"SELECT", b"2"]);
    c.cmd(&[b"INCR", b"n"]);
    assert_eq!(message(&mut sub), strs(&["pmessage", "__key*__:*", "__keyspace@0__:k", "set"]));
    assert_eq!(message(&mut sub), strs(&["pmessage", "__key*__:*", "__keyspace@2__:n", "incrby"]));
}
