//! Client control over real sockets: output buffer limits (a client that does not read its
//! replies), the query buffer limit, CLIENT KILL, PAUSE, REPLY, UNBLOCK, NO-EVICT and the
//! settings that go with them. Deterministic replies and errors are also compared with
//! redis-server by the `clients_*` differential scripts.

mod common;

use std::time::{Duration, Instant};

use common::{Raw, Server};

fn s(v: Vec<u8>) -> String {
    String::from_utf8_lossy(&v).into_owned()
}

/// The ids of the connected clients, from CLIENT LIST.
fn client_ids(c: &mut Raw) -> Vec<u64> {
    let list = s(c.cmd(&[b"CLIENT", b"LIST"]));
    list.lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .filter_map(|id| id.parse().ok())
        .collect()
}

fn client_id(c: &mut Raw) -> u64 {
    let r = s(c.cmd(&[b"CLIENT", b"ID"]));
    r.trim().trim_start_matches(':').parse().expect("client id")
}

/// Waits up to `within` for client `id` to be gone from CLIENT LIST (as seen by `c`).
fn gone_within(c: &mut Raw, id: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !client_ids(c).contains(&id) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Pipelines `n` GETs of `key` on `c` without reading any reply.
fn pipeline_gets(c: &mut Raw, key: &[u8], n: usize) {
    let one = Raw::encode(&[b"GET", key]);
    let mut all = Vec::with_capacity(one.len() * n);
    for _ in 0..n {
        all.extend_from_slice(&one);
    }
    c.send(&all);
}

/// A client that pipelines GETs of a 1 MB value and never reads passes `normal 4mb 0 0`: it is
/// closed, while another client is served all along.
#[test]
fn slow_reader_over_the_normal_hard_limit_is_closed() {
    let server = Server::magpie_with(&["--client-output-buffer-limit", "normal 4mb 0 0"]);
    let mut admin = server.raw();
    let big = vec![b'x'; 1 << 20];
    assert_eq!(admin.cmd(&[b"SET", b"big", &big]), b"+OK\r\n");
    let mut slow = server.raw();
    let slow_id = client_id(&mut slow);
    pipeline_gets(&mut slow, b"big", 100);
    assert!(gone_within(&mut admin, slow_id, Duration::from_secs(10)), "the slow reader is still connected");
    assert_eq!(admin.cmd(&[b"PING"]), b"+PONG\r\n");
    // What it got before it was closed is less than everything it asked for, and then EOF.
    let w = slow.watch(Duration::from_secs(10));
    assert!(w.closed);
    assert!(w.sent.len() < 100 << 20, "it was sent all its replies: {}", w.sent.len());
}

/// Without a limit for its class (the default), the same client is not closed: the server stops
/// reading its commands until it reads its replies, and then serves them all.
#[test]
fn slow_reader_without_a_limit_is_held_not_closed() {
    let server = Server::magpie();
    let mut admin = server.raw();
    let big = vec![b'x'; 1 << 20];
    assert_eq!(admin.cmd(&[b"SET", b"big", &big]), b"+OK\r\n");
    let mut slow = server.raw();
    let slow_id = client_id(&mut slow);
    pipeline_gets(&mut slow, b"big", 50);
    std::thread::sleep(Duration::from_millis(500));
    assert!(client_ids(&mut admin).contains(&slow_id));
    // CLIENT LIST shows the replies waiting for it.
    let line = info_line(&mut admin, &slow_id.to_string());
    let omem: u64 = line.split(' ').find_map(|f| f.strip_prefix("omem=")).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(omem > 0, "{line}");
    for _ in 0..50 {
        assert_eq!(slow.read_reply().len(), (1 << 20) + 12);
    }
    assert_eq!(slow.cmd(&[b"PING"]), b"+PONG\r\n");
}

/// Over the soft limit for longer than its seconds: closed.
#[test]
fn slow_reader_over_the_soft_limit_too_long_is_closed() {
    let server = Server::magpie();
    let mut admin = server.raw();
    assert_eq!(admin.cmd(&[b"CONFIG", b"SET", b"client-output-buffer-limit", b"normal 0 2mb 1"]), b"+OK\r\n");
    let big = vec![b'x'; 1 << 20];
    assert_eq!(admin.cmd(&[b"SET", b"big", &big]), b"+OK\r\n");
    let mut slow = server.raw();
    let slow_id = client_id(&mut slow);
    pipeline_gets(&mut slow, b"big", 100);
    std::thread::sleep(Duration::from_millis(300));
    assert!(client_ids(&mut admin).contains(&slow_id), "closed before the soft limit's seconds");
    assert!(gone_within(&mut admin, slow_id, Duration::from_secs(10)), "the slow reader is still connected");
}

/// A client that reads, whose pending replies pass the soft limit only for a moment and never
/// the hard one, is served. (As in Redis, a pipeline whose replies together pass the hard limit
/// faster than the client reads them gets the client closed.)
#[test]
fn a_reading_client_under_a_limit_is_served() {
    let server = Server::magpie_with(&["--client-output-buffer-limit", "normal 64mb 4mb 2"]);
    let mut c = server.raw();
    let big = vec![b'x'; 1 << 20];
    assert_eq!(c.cmd(&[b"SET", b"big", &big]), b"+OK\r\n");
    pipeline_gets(&mut c, b"big", 30);
    for _ in 0..30 {
        assert_eq!(c.read_reply().len(), (1 << 20) + 12);
    }
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
}

/// A command still incomplete past `client-query-buffer-limit` closes its client.
#[test]
fn query_buffer_limit_closes() {
    let server = Server::magpie();
    let mut admin = server.raw();
    assert_eq!(admin.cmd(&[b"CONFIG", b"SET", b"client-query-buffer-limit", b"1mb"]), b"+OK\r\n");
    let mut c = server.raw();
    let id = client_id(&mut c);
    c.send(b"*2\r\n$3\r\nSET\r\n$4000000\r\n");
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..40 {
        if c.try_send(&chunk).is_err() {
            break;
        }
    }
    assert!(gone_within(&mut admin, id, Duration::from_secs(10)));
    // Under the limit, the same command is fine.
    assert_eq!(admin.cmd(&[b"CONFIG", b"SET", b"client-query-buffer-limit", b"1gb"]), b"+OK\r\n");
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"SET", b"k", &vec![b'a'; 4_000_000]]), b"+OK\r\n");
}

#[test]
fn settings_read_as_redis() {
    let server = Server::magpie();
    let mut c = server.raw();
    let get = |c: &mut Raw, name: &str| s(c.cmd(&[b"CONFIG", b"GET", name.as_bytes()]));
    assert_eq!(get(&mut c, "tcp-keepalive"), "*2\r\n$13\r\ntcp-keepalive\r\n$3\r\n300\r\n");
    assert_eq!(
        get(&mut c, "client-query-buffer-limit"),
        "*2\r\n$25\r\nclient-query-buffer-limit\r\n$10\r\n1073741824\r\n"
    );
    assert_eq!(c.cmd(&[b"CONFIG", b"SET", b"tcp-keepalive", b"60"]), b"+OK\r\n");
    assert_eq!(get(&mut c, "tcp-keepalive"), "*2\r\n$13\r\ntcp-keepalive\r\n$2\r\n60\r\n");
    let err = s(c.cmd(&[b"CONFIG", b"SET", b"client-query-buffer-limit", b"1000"]));
    assert!(err.starts_with("-ERR CONFIG SET failed"), "{err}");
}

fn str_cmd(c: &mut Raw, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    s(c.cmd(&args))
}

/// The `field=` value of the caller's CLIENT INFO.
fn info_field(c: &mut Raw, field: &str) -> String {
    let info = s(c.cmd(&[b"CLIENT", b"INFO"]));
    info.split([' ', '\n', '\r']).find_map(|f| f.strip_prefix(&format!("{field}="))).unwrap_or_default().to_owned()
}

/// The peer address of a client as the server sees it (CLIENT INFO's `addr`).
fn addr_of(c: &mut Raw) -> String {
    info_field(c, "addr")
}

#[test]
fn client_kill_by_each_filter() {
    let server = Server::magpie();
    let mut admin = server.raw();
    let admin_id = client_id(&mut admin);

    // The old form: by address, +OK; an unknown address is an error.
    let mut a = server.raw();
    let (a_id, a_addr) = (client_id(&mut a), addr_of(&mut a));
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", &a_addr]), "+OK\r\n");
    assert!(a.closed_within(Duration::from_secs(5)));
    assert!(gone_within(&mut admin, a_id, Duration::from_secs(5)));
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "1.2.3.4:5"]), "-ERR No such client\r\n");

    // ID.
    let mut b = server.raw();
    let b_id = client_id(&mut b);
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "ID", &b_id.to_string()]), ":1\r\n");
    assert!(b.closed_within(Duration::from_secs(5)));
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "ID", &b_id.to_string()]), ":0\r\n");

    // ADDR, and LADDR (every client shares the server's address: all but the caller go).
    let mut c = server.raw();
    let c_addr = addr_of(&mut c);
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "ADDR", &c_addr]), ":1\r\n");
    assert!(c.closed_within(Duration::from_secs(5)));
    let mut d = server.raw();
    let mut e = server.raw();
    assert_eq!(e.cmd(&[b"PING"]), b"+PONG\r\n"); // connected and registered
    let laddr = info_field(&mut d, "laddr");
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "LADDR", &laddr]), ":2\r\n");
    assert!(d.closed_within(Duration::from_secs(5)));
    assert!(e.closed_within(Duration::from_secs(5)));

    // TYPE: a subscriber is pubsub, the others normal; master and replica match nothing.
    let mut sub = server.raw();
    sub.cmd(&[b"SUBSCRIBE", b"ch"]);
    let mut plain = server.raw();
    assert_eq!(plain.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "TYPE", "master"]), ":0\r\n");
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "TYPE", "pubsub"]), ":1\r\n");
    assert!(sub.closed_within(Duration::from_secs(5)));
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "TYPE", "normal"]), ":1\r\n");
    assert!(plain.closed_within(Duration::from_secs(5)));

    // USER: only the clients logged in as that user.
    assert_eq!(str_cmd(&mut admin, &["ACL", "SETUSER", "bob", "on", ">pw", "+@all", "~*"]), "+OK\r\n");
    let mut bob = server.raw();
    assert_eq!(str_cmd(&mut bob, &["AUTH", "bob", "pw"]), "+OK\r\n");
    let mut other = server.raw();
    assert_eq!(other.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "USER", "bob"]), ":1\r\n");
    assert!(bob.closed_within(Duration::from_secs(5)));
    assert_eq!(other.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "USER", "nobody"]), "-ERR No such user 'nobody'\r\n");

    // SKIPME: the caller is spared by default; SKIPME no kills it after its reply.
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "ID", &admin_id.to_string()]), ":0\r\n");
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "ID", &admin_id.to_string(), "SKIPME", "no"]), ":1\r\n");
    assert!(admin.closed_within(Duration::from_secs(5)));
}

/// A client that never reads its replies, stuck in a write, is reached by CLIENT KILL.
#[test]
fn client_kill_reaches_a_client_stuck_writing() {
    let server = Server::magpie();
    let mut admin = server.raw();
    assert_eq!(admin.cmd(&[b"SET", b"big", &vec![b'x'; 1 << 20]]), b"+OK\r\n");
    let mut slow = server.raw();
    let id = client_id(&mut slow);
    pipeline_gets(&mut slow, b"big", 50);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "KILL", "ID", &id.to_string()]), ":1\r\n");
    assert!(gone_within(&mut admin, id, Duration::from_secs(5)));
}

#[test]
fn pause_write_holds_writes_and_lets_reads_through() {
    let server = Server::magpie();
    let mut admin = server.raw();
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "PAUSE", "100000", "WRITE"]), "+OK\r\n");
    assert_eq!(c.cmd(&[b"GET", b"k"]), b"$1\r\nv\r\n");
    // A write waits; so does PUBLISH (it may replicate).
    common::send(&mut c, "SET k w");
    assert!(c.open_and_silent_for(Duration::from_millis(300)));
    let mut p = server.raw();
    common::send(&mut p, "PUBLISH ch m");
    assert!(p.open_and_silent_for(Duration::from_millis(200)));
    // Other clients' reads are served meanwhile.
    assert_eq!(admin.cmd(&[b"GET", b"k"]), b"$1\r\nv\r\n");
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "UNPAUSE"]), "+OK\r\n");
    assert_eq!(c.read_reply(), b"+OK\r\n");
    assert_eq!(p.read_reply(), b":0\r\n");
    assert_eq!(admin.cmd(&[b"GET", b"k"]), b"$1\r\nw\r\n");
}

#[test]
fn pause_all_holds_everything_until_its_time() {
    let server = Server::magpie();
    let mut admin = server.raw();
    let mut c = server.raw();
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "PAUSE", "500"]), "+OK\r\n");
    let start = Instant::now();
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
    assert!(start.elapsed() >= Duration::from_millis(400), "{:?}", start.elapsed());
    // Errors of the table come at once, even paused.
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "PAUSE", "500", "ALL"]), "+OK\r\n");
    let start = Instant::now();
    assert!(str_cmd(&mut c, &["GET"]).starts_with("-ERR wrong number of arguments"));
    assert!(start.elapsed() < Duration::from_millis(300));
}

/// Keys do not expire while writes are paused: they read as missing, and the expiry happens
/// (and is logged) after the pause.
#[test]
fn pause_write_pauses_expiry() {
    let server = Server::magpie();
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"SET", b"k", b"v", b"PX", b"100"]), b"+OK\r\n");
    assert_eq!(str_cmd(&mut c, &["CLIENT", "PAUSE", "100000", "WRITE"]), "+OK\r\n");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(c.cmd(&[b"GET", b"k"]), b"$-1\r\n");
    let keys = |c: &mut Raw| {
        let info = s(c.cmd(&[b"INFO", b"keyspace"]));
        info.lines().find_map(|l| l.strip_prefix("db0:keys=")).map(|v| v.split(',').next().unwrap_or("").to_owned())
    };
    assert_eq!(keys(&mut c).as_deref(), Some("1"), "expired while paused");
    assert_eq!(str_cmd(&mut c, &["CLIENT", "UNPAUSE"]), "+OK\r\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while keys(&mut c).is_some() {
        assert!(Instant::now() < deadline, "never expired after the pause");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn client_reply_off_and_skip() {
    let server = Server::magpie();
    let mut c = server.raw();
    // OFF: nothing until ON, whose +OK is the next thing read.
    common::send(&mut c, "CLIENT REPLY OFF");
    common::send(&mut c, "SET a 1");
    common::send(&mut c, "GET a");
    common::send(&mut c, "NOSUCHCOMMAND");
    assert_eq!(c.cmd(&[b"CLIENT", b"REPLY", b"ON"]), b"+OK\r\n");
    // SKIP: the next command's reply only.
    common::send(&mut c, "CLIENT REPLY SKIP");
    common::send(&mut c, "INCR a");
    assert_eq!(c.cmd(&[b"INCR", b"a"]), b":3\r\n");
    // SKIP while OFF leaves it OFF.
    common::send(&mut c, "CLIENT REPLY OFF");
    common::send(&mut c, "CLIENT REPLY SKIP");
    common::send(&mut c, "INCR a");
    common::send(&mut c, "INCR a");
    assert_eq!(c.cmd(&[b"CLIENT", b"REPLY", b"ON"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"GET", b"a"]), b"$1\r\n5\r\n");
    assert_eq!(str_cmd(&mut c, &["CLIENT", "REPLY", "MAYBE"]), "-ERR syntax error\r\n");
}

#[test]
fn client_unblock_timeout_and_error() {
    let server = Server::magpie();
    let mut admin = server.raw();
    let mut b = server.raw();
    let id = client_id(&mut b).to_string();
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "UNBLOCK", &id]), ":0\r\n");
    common::send(&mut b, "BLPOP q 0");
    common::wait_blocked(&mut admin, 1);
    assert!(info_line(&mut admin, &id).contains("flags=b"));
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "UNBLOCK", &id]), ":1\r\n");
    assert_eq!(b.read_reply(), b"*-1\r\n");
    common::send(&mut b, "BLPOP q 0");
    common::wait_blocked(&mut admin, 1);
    assert_eq!(str_cmd(&mut admin, &["CLIENT", "UNBLOCK", &id, "ERROR"]), ":1\r\n");
    assert_eq!(s(b.read_reply()), "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n");
    // Not blocked any more: the queue does not hold it.
    common::wait_blocked(&mut admin, 0);
    assert_eq!(admin.cmd(&[b"RPUSH", b"q", b"x"]), b":1\r\n");
    assert_eq!(b.cmd(&[b"LPOP", b"q"]), b"$1\r\nx\r\n");
    assert_eq!(
        str_cmd(&mut admin, &["CLIENT", "UNBLOCK", &id, "LATER"]),
        "-ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR\r\n"
    );
}

/// One client's line of CLIENT LIST.
fn info_line(c: &mut Raw, id: &str) -> String {
    let list = s(c.cmd(&[b"CLIENT", b"LIST"]));
    list.lines().find(|l| l.contains(&format!("id={id} "))).unwrap_or_default().to_owned()
}

#[test]
fn client_no_evict_shows_in_flags() {
    let server = Server::magpie();
    let mut c = server.raw();
    assert_eq!(str_cmd(&mut c, &["CLIENT", "NO-EVICT", "on"]), "+OK\r\n");
    assert_eq!(info_field(&mut c, "flags"), "e");
    assert_eq!(str_cmd(&mut c, &["CLIENT", "NO-EVICT", "off"]), "+OK\r\n");
    assert_eq!(info_field(&mut c, "flags"), "N");
    assert_eq!(str_cmd(&mut c, &["CLIENT", "NO-EVICT", "x"]), "-ERR syntax error\r\n");
}

// Client-side caching (CLIENT TRACKING).

/// A RESP3 connection.
fn resp3(server: &Server) -> Raw {
    let mut c = server.raw();
    assert!(c.cmd(&[b"HELLO", b"3"]).starts_with(b"%"));
    c
}

/// Redis's invalidation push for `keys`.
fn invalidation(keys: &[&str]) -> String {
    let mut m = format!(">2\r\n$10\r\ninvalidate\r\n*{}\r\n", keys.len());
    for k in keys {
        m.push_str(&format!("${}\r\n{k}\r\n", k.len()));
    }
    m
}

/// Nothing more arrives on `c` for a while.
fn silent(c: &mut Raw) -> bool {
    c.open_and_silent_for(Duration::from_millis(300))
}

#[test]
fn tracking_default_mode_resp3() {
    let server = Server::magpie();
    let mut c = resp3(&server);
    let mut w = server.raw();
    assert_eq!(str_cmd(&mut c, &["CLIENT", "TRACKING", "on"]), "+OK\r\n");
    assert_eq!(str_cmd(&mut c, &["GET", "k"]), "_\r\n");
    assert_eq!(str_cmd(&mut c, &["MGET", "a", "b"]), "*2\r\n_\r\n_\r\n");
    // A key nobody read: nothing.
    assert_eq!(str_cmd(&mut w, &["SET", "other", "1"]), "+OK\r\n");
    assert!(silent(&mut c));
    // A key it read: one invalidation, then it is forgotten.
    assert_eq!(str_cmd(&mut w, &["SET", "k", "1"]), "+OK\r\n");
    assert_eq!(s(c.read_reply()), invalidation(&["k"]));
    assert_eq!(str_cmd(&mut w, &["SET", "k", "2"]), "+OK\r\n");
    assert!(silent(&mut c));
    assert_eq!(str_cmd(&mut w, &["DEL", "a", "b"]), ":0\r\n");
    assert!(silent(&mut c), "a DEL that removes nothing changes nothing");
    assert_eq!(str_cmd(&mut w, &["MSET", "a", "1", "b", "2"]), "+OK\r\n");
    assert_eq!(s(c.read_reply()), invalidation(&["a"]));
    assert_eq!(s(c.read_reply()), invalidation(&["b"]));
    // Its own writes too (no NOLOOP): after the reply.
    assert_eq!(str_cmd(&mut c, &["GET", "k"]), "$1\r\n2\r\n");
    assert_eq!(str_cmd(&mut c, &["SET", "k", "3"]), "+OK\r\n");
    assert_eq!(s(c.read_reply()), invalidation(&["k"]));
    // Expiry and FLUSHALL (a null invalidation).
    assert_eq!(str_cmd(&mut w, &["SET", "e", "1", "PX", "100"]), "+OK\r\n");
    assert_eq!(str_cmd(&mut c, &["GET", "e"]), "$1\r\n1\r\n");
    assert_eq!(s(c.read_reply()), invalidation(&["e"]));
    assert_eq!(str_cmd(&mut w, &["FLUSHALL"]), "+OK\r\n");
    assert_eq!(s(c.read_reply()), ">2\r\n$10\r\ninvalidate\r\n_\r\n");
    assert!(info_field(&mut c, "flags").contains('t'));
    assert_eq!(str_cmd(&mut c, &["CLIENT", "GETREDIR"]), ":0\r\n");
    assert_eq!(str_cmd(&mut c, &["CLIENT", "TRACKING", "off"]), "+OK\r\n");
    assert_eq!(str_cmd(&mut c, &["CLIENT", "GETREDIR"]), ":-1\r\n");
}

#[test]
fn tracking_noloop_skips_own_writes() {
    let server = Server::magpie();
    let mut c = resp3(&server);
    let mut w = server.raw();
    assert_eq!(str_cmd(&mut c, &["CLIENT", "TRACKING", "on", "NOLOOP"]), "+OK\r\n");
    assert_eq!(str_cmd(&mut c, &["GET", "k"]), "_\r\n");
    assert_eq!(str_cmd(&mut c, &["SET", "k", "1"]), "+OK\r\n");
    assert!(silent(&mut c));
    assert_eq!(str_cmd(&mut c, &["GET", "k"]), "$1\r\n1\r\n");
    assert_eq!(str_cmd(&mut w, &["SET", "k", "2"]), "+OK\r\n");
    assert_eq!(s(c.read_reply()), invalidation(&["k"]));
}

#[test]
fn tracking_bcast_by_prefix() {
    let server = Server::magpie();
    let mut c = resp3(&server);
    let mut w = server.raw();
    assert_eq!(str_cmd(&mut c, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "user:", "PREFIX", "job:"]), "+OK\r\n");
    assert_eq!(str_cmd(&mut w, &["SET", "other", "1"]), "+OK\r\n");
    assert!(silent(&mut c));
    assert_eq!(str_cmd(&mut w, &["MSET", "user:1", "a", "user:2", "b", "x", "c"]), "+OK\r\n");
    assert_eq!(s(c.read_reply()), invalidation(&["user:1", "user:2"]));
    assert_eq!(str_cmd(&mut w, &["SET", "job:1", "a"]), "+OK\r\n");
    assert_eq!(s(c.read_reply()), invalidation(&["job:1"]));
    // Again and again: BCAST needs no read.
    assert_eq!(str_cmd(&mut w, &["SET", "job:1", "b"]), "+OK\r\n");
    assert_eq!(s(c.read_reply()), invalidation(&["job:1"]));
    let info = s(c.cmd(&[b"CLIENT", b"TRACKINGINFO"]));
    assert_eq!(
        info,
        "%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$5\r\nbcast\r\n$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*2\r\n$4\r\n\
         job:\r\n$5\r\nuser:\r\n"
    );
    assert!(info_field(&mut c, "flags").contains("tB"));
}

#[test]
fn tracking_optin_and_optout() {
    let server = Server::magpie();
    let mut c = resp3(&server);
    let mut w = server.raw();
    assert_eq!(str_cmd(&mut c, &["CLIENT", "TRACKING", "on", "OPTIN"]), "+OK\r\n");
    assert_eq!(str_cmd(&mut c, &["GET", "a"]), "_\r\n");
    assert_eq!(str_cmd(&mut c, &["CLIENT", "CACHING", "yes"]), "+OK\r\n");
    assert_eq!(str_cmd(&mut c, &["GET", "b"]), "_\r\n");
    assert_eq!(str_cmd(&mut c, &["GET", "c"]), "_\r\n"); // CACHING covered one command
    assert_eq!(str_cmd(&mut w, &["MSET", "a", "1", "b", "1", "c", "1"]), "+OK\r\n");
    assert_eq!(s(c.read_reply()), invalidation(&["b"]));
    assert!(silent(&mut c));
    assert_eq!(str_cmd(&mut c, &["CLIENT", "TRACKING", "off"]), "+OK\r\n");

    assert_eq!(str_cmd(&mut c, &["CLIENT", "TRACKING", "on", "OPTOUT"]), "+OK\r\n");
    assert_eq!(str_cmd(&mut c, &["GET", "a"]), "$1\r\n1\r\n");
    assert_eq!(str_cmd(&mut c, &["CLIENT", "CACHING", "no"]), "+OK\r\n");
    assert_eq!(str_cmd(&mut c, &["GET", "b"]), "$1\r\n1\r\n");
    assert_eq!(str_cmd(&mut w, &["MSET", "a", "2", "b", "2"]), "+OK\r\n");
    assert_eq!(s(c.read_reply()), invalidation(&["a"]));
    assert!(silent(&mut c));
}

#[test]
fn tracking_redirect_to_a_resp2_subscriber() {
    let server = Server::magpie();
    let mut r = server.raw();
    let r_id = client_id(&mut r).to_string();
    assert_eq!(
        s(r.cmd(&[b"SUBSCRIBE", b"__redis__:invalidate"])),
        "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n"
    );
    let mut c = server.raw();
    let mut w = server.raw();
    assert_eq!(str_cmd(&mut c, &["CLIENT", "TRACKING", "on", "REDIRECT", &r_id]), "+OK\r\n");
    assert_eq!(str_cmd(&mut c, &["CLIENT", "GETREDIR"]), format!(":{r_id}\r\n"));
    assert_eq!(str_cmd(&mut c, &["GET", "k"]), "$-1\r\n");
    assert_eq!(str_cmd(&mut w, &["SET", "k", "1"]), "+OK\r\n");
    assert_eq!(s(r.read_reply()), "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n");
    assert!(silent(&mut c));
    // A flush: null, in the tracking client's protocol.
    assert_eq!(str_cmd(&mut w, &["FLUSHDB"]), "+OK\r\n");
    assert_eq!(s(r.read_reply()), "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n");
    // RESP2 without a redirection: tracking works, but nothing can be sent.
    let mut d = server.raw();
    assert_eq!(str_cmd(&mut d, &["CLIENT", "TRACKING", "on"]), "+OK\r\n");
    assert_eq!(str_cmd(&mut d, &["GET", "k"]), "$-1\r\n");
    assert_eq!(str_cmd(&mut w, &["SET", "k", "2"]), "+OK\r\n");
    assert!(silent(&mut d));
}

#[test]
fn tracking_redirect_broken() {
    let server = Server::magpie();
    let mut r = server.raw();
    let r_id = client_id(&mut r).to_string();
    let mut c = resp3(&server);
    let mut w = server.raw();
    assert_eq!(str_cmd(&mut c, &["CLIENT", "TRACKING", "on", "REDIRECT", &r_id]), "+OK\r\n");
    assert_eq!(str_cmd(&mut c, &["GET", "k"]), "_\r\n");
    drop(r);
    assert!(gone_within(&mut w, r_id.parse().expect("id"), Duration::from_secs(5)));
    assert_eq!(str_cmd(&mut w, &["SET", "k", "1"]), "+OK\r\n");
    assert_eq!(s(c.read_reply()), format!(">2\r\n$21\r\ntracking-redir-broken\r\n:{r_id}\r\n"));
    assert!(info_field(&mut c, "flags").contains("tR"));
}

#[test]
fn tracking_table_is_bounded() {
    let server = Server::magpie_with(&["--tracking-table-max-keys", "2"]);
    let mut c = resp3(&server);
    assert_eq!(str_cmd(&mut c, &["CLIENT", "TRACKING", "on"]), "+OK\r\n");
    assert_eq!(str_cmd(&mut c, &["MGET", "a", "b"]), "*2\r\n_\r\n_\r\n");
    // A third key pushes one of the others out, and the client hears it must forget it.
    assert_eq!(str_cmd(&mut c, &["GET", "c"]), "_\r\n");
    let evicted = s(c.read_reply());
    assert!(evicted == invalidation(&["a"]) || evicted == invalidation(&["b"]), "{evicted}");
    let info = s(c.cmd(&[b"INFO", b"stats"]));
    assert!(info.contains("tracking_total_keys:2\r\n"), "{info}");
}

/// `maxmemory-clients`: past it, the client with the largest buffers goes, not one with
/// CLIENT NO-EVICT on; the others stay.
#[test]
fn maxmemory_clients_evicts_the_largest() {
    let server = Server::magpie();
    let mut admin = server.raw();
    assert_eq!(str_cmd(&mut admin, &["CONFIG", "SET", "maxmemory-clients", "3mb"]), "+OK\r\n");
    assert_eq!(
        str_cmd(&mut admin, &["CONFIG", "GET", "maxmemory-clients"]),
        "*2\r\n$17\r\nmaxmemory-clients\r\n$7\r\n3145728\r\n"
    );
    // Each sends most of a 4 MB command: 2 MB of input held apiece.
    let partial = |c: &mut Raw| {
        c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4000000\r\n");
        c.send(&vec![b'a'; 2 << 20]);
    };
    let mut keep = server.raw();
    let keep_id = client_id(&mut keep);
    assert_eq!(str_cmd(&mut keep, &["CLIENT", "NO-EVICT", "on"]), "+OK\r\n");
    partial(&mut keep);
    let mut big = server.raw();
    let big_id = client_id(&mut big);
    partial(&mut big);
    assert!(gone_within(&mut admin, big_id, Duration::from_secs(10)), "the largest evictable client stayed");
    assert!(client_ids(&mut admin).contains(&keep_id));
    let info = s(admin.cmd(&[b"INFO", b"stats"]));
    assert!(info.contains("evicted_clients:1\r\n"), "{info}");
    // Percent of maxmemory, and Redis's errors.
    assert_eq!(str_cmd(&mut admin, &["CONFIG", "SET", "maxmemory-clients", "10%"]), "+OK\r\n");
    assert_eq!(
        str_cmd(&mut admin, &["CONFIG", "GET", "maxmemory-clients"]),
        "*2\r\n$17\r\nmaxmemory-clients\r\n$3\r\n10%\r\n"
    );
    assert!(str_cmd(&mut admin, &["CONFIG", "SET", "maxmemory-clients", "200%"]).contains("less or equal to 100"));
    assert!(str_cmd(&mut admin, &["CONFIG", "SET", "maxmemory-clients", "lots"]).contains("memory or percent"));
}
