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
