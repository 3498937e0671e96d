//! Robustness: a real server fed malformed frames, oversized declarations, slow, vanishing and
//! pipelining clients, binary data, client limits, idle timeouts and shutdown. After every
//! abuse a second, well-behaved connection must still get correct answers: one bad client
//! never takes the server from the others.
//!
//! Error texts are Redis 7.0's, and every expectation here was checked by running this file
//! against Debian's redis-server 7.0.15.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Raw, Server};

/// Generous bound for "promptly": far above what a loaded 2-core CI machine needs.
const PROMPT: Duration = Duration::from_secs(3);

/// A fresh connection gets correct answers: the server goes on serving others.
fn assert_serving(server: &Server) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let key = format!("probe:{}", N.fetch_add(1, Ordering::Relaxed));
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"PING"]), b"+PONG\r\n");
    assert_eq!(c.cmd(&[b"SET", key.as_bytes(), b"still here"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"GET", key.as_bytes()]), b"$10\r\nstill here\r\n");
    assert_eq!(c.cmd(&[b"DEL", key.as_bytes()]), b":1\r\n");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The next reply is `-ERR Protocol error: <what>` and then the server closes the connection,
/// sending nothing more.
fn assert_protocol_error(c: &mut Raw, what: &str) {
    assert_eq!(text(&c.read_reply()), format!("-ERR Protocol error: {what}\r\n"));
    let after = c.watch(Duration::from_secs(5));
    assert!(after.closed && after.sent.is_empty(), "after a protocol error ({what}), expected a close: {after:?}");
}

/// A fake server for one connection: sends `reply`, then closes it (`close`) or holds it open
/// for a second.
fn fake_server(reply: &'static [u8], close: bool) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.write_all(reply).expect("write");
        if !close {
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    port
}

/// The helpers these tests use tell apart what they mean: a request still pending (nothing
/// sent, open), a refusal (an error, then a close) and a silent close.
#[test]
fn the_close_helpers_tell_a_refusal_from_a_pending_request_and_a_silent_close() {
    let refusal = b"-ERR max number of clients reached\r\n";
    let mut c = Raw::connect(fake_server(refusal, true));
    assert_eq!(c.watch(Duration::from_secs(2)), common::Watched { sent: refusal.to_vec(), closed: true });
    let mut c = Raw::connect(fake_server(refusal, true));
    assert!(!c.open_and_silent_for(Duration::from_millis(500)), "a refusal passed for a pending request");
    let mut c = Raw::connect(fake_server(refusal, true));
    assert!(!c.closed_within(Duration::from_secs(2)), "a refusal passed for a silent close");
    let mut c = Raw::connect(fake_server(b"", true));
    assert!(c.closed_within(Duration::from_secs(2)));
    let mut c = Raw::connect(fake_server(b"", false));
    assert!(c.open_and_silent_for(Duration::from_millis(200)));
    let mut c = Raw::connect(fake_server(b"", false));
    assert!(!c.closed_within(Duration::from_millis(200)), "a pending request passed for a close");
    let mut c = Raw::connect(fake_server(b"+OK\r\n", false));
    assert!(!c.open_and_silent_for(Duration::from_millis(200)), "an answer passed for a pending request");
}

fn bulk(value: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", value.len()).into_bytes();
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    out
}

#[test]
fn malformed_frames_get_redis_errors_after_earlier_commands_then_close() {
    let server = Server::magpie();
    let long_inline = vec![b'a'; 65 * 1024 + 10];
    let mut long_count = b"*1".to_vec();
    long_count.extend(vec![b'1'; 65 * 1024 + 10]);
    let mut long_bulk_count = b"*1\r\n$1".to_vec();
    long_bulk_count.extend(vec![b'1'; 65 * 1024 + 10]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"*x\r\n".to_vec(), "invalid multibulk length"),
        (b"*+1\r\n".to_vec(), "invalid multibulk length"),
        (b"*1 \r\n".to_vec(), "invalid multibulk length"),
        (b"*1\r\n$x\r\n".to_vec(), "invalid bulk length"),
        (b"*1\r\n$-1\r\n".to_vec(), "invalid bulk length"),
        (b"*1\r\n$01\r\n".to_vec(), "invalid bulk length"),
        (b"*2\r\n$3\r\nGET\r\nx\r\n".to_vec(), "expected '$', got 'x'"),
        (b"*1\r\n:1\r\n".to_vec(), "expected '$', got ':'"),
        (b"SET a \"b c\r\n".to_vec(), "unbalanced quotes in request"),
        (b"SET a 'b'c\r\n".to_vec(), "unbalanced quotes in request"),
        (long_inline, "too big inline request"),
        (long_count, "too big mbulk count string"),
        (long_bulk_count, "too big bulk count string"),
    ];
    for (bad, what) in cases {
        let mut c = server.raw();
        // Good commands (inline and multibulk) in the same write as the bad frame.
        let mut bytes = b"PING\r\n".to_vec();
        bytes.extend(Raw::encode(&[b"ECHO", b"before"]));
        bytes.extend(&bad);
        // The server may close before it has read everything of the larger frames.
        let _ = c.try_send(&bytes);
        assert_eq!(c.read_reply(), b"+PONG\r\n", "{what}");
        assert_eq!(c.read_reply(), b"$6\r\nbefore\r\n", "{what}");
        assert_protocol_error(&mut c, what);
        assert_serving(&server);
    }
}

#[test]
fn a_bad_frame_split_over_writes_is_refused_too() {
    let server = Server::magpie();
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    c.send(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"\n*2\r\n$3\r\nGET");
    assert_eq!(c.read_reply(), b"$1\r\nv\r\n");
    c.send(b"\r\n$");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"-5\r\n");
    assert_protocol_error(&mut c, "invalid bulk length");
    assert_serving(&server);
}

#[test]
fn oversized_declarations_are_refused_at_once_without_allocating() {
    let server = Server::magpie_with(&["--proto-max-bulk-len", "1mb"]);
    let before = server.rss_kib();

    // Above proto-max-bulk-len (1 MB = 1048576 bytes): refused as soon as the header is read,
    // with the body never sent.
    for header in [&b"*1\r\n$2000000\r\n"[..], b"*2\r\n$3\r\nSET\r\n$1048577\r\n"] {
        let mut c = server.raw();
        c.send(header);
        assert_protocol_error(&mut c, "invalid bulk length");
    }
    // Above INT_MAX arguments.
    let mut c = server.raw();
    c.send(b"*3000000000\r\n");
    assert_protocol_error(&mut c, "invalid multibulk length");

    // At the limits, declared but never sent: accepted, waiting, and nothing reserved for them.
    let mut waiting = Vec::new();
    for header in
        [&b"*2147483647\r\n$1048576\r\nab"[..], b"*1000000\r\n", b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048576\r\n"]
    {
        let mut c = server.raw();
        c.send(header);
        waiting.push(c);
    }
    assert_serving(&server);
    for c in &mut waiting {
        let w = c.watch(Duration::from_millis(100));
        assert!(!w.closed && w.sent.is_empty(), "a valid pending request was answered or refused: {w:?}");
    }
    let grown = server.rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "server RSS grew by {grown} KiB for requests declared but never sent");

    // A value of exactly proto-max-bulk-len is accepted.
    let big = vec![b'x'; 1024 * 1024];
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"SET", b"big", &big]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"STRLEN", b"big"]), b":1048576\r\n");
    assert_serving(&server);
}

#[test]
fn a_huge_declared_multibulk_does_not_stall_other_clients() {
    let server = Server::magpie();
    let mut hog = server.raw();
    hog.send(b"*1000000\r\n");
    let mut hog2 = server.raw();
    hog2.send(b"*1000000\r\n$4\r\nECHO\r\n$536870912\r\nxyz");

    let mut c = server.raw();
    let start = Instant::now();
    for i in 0..200 {
        let v = i.to_string();
        assert_eq!(c.cmd(&[b"ECHO", v.as_bytes()]), bulk(v.as_bytes()));
    }
    assert!(start.elapsed() < PROMPT * 2, "200 round trips took {:?}", start.elapsed());
    assert_serving(&server);
    // The hogs are still waiting for the rest of their requests, not refused.
    assert!(hog.open_and_silent_for(Duration::from_millis(100)), "a pending request was answered or refused");
    assert!(hog2.open_and_silent_for(Duration::from_millis(100)), "a pending request was answered or refused");
}

#[test]
fn a_slow_client_sending_byte_by_byte_is_answered_and_others_are_served_meanwhile() {
    let server = Server::magpie();
    let frame = Raw::encode(&[b"SET", b"slow", b"a value\r\nwith CRLF"]);
    std::thread::scope(|s| {
        let slow = s.spawn(|| {
            let mut c = server.raw();
            for &b in &frame {
                c.send(&[b]);
                std::thread::sleep(Duration::from_millis(3));
            }
            // Then an inline command, byte by byte too.
            for &b in b"GET slow\r\n" {
                c.send(&[b]);
                std::thread::sleep(Duration::from_millis(3));
            }
            (c.read_reply(), c.read_reply())
        });
        let mut other = server.raw();
        let mut worst = Duration::ZERO;
        while !slow.is_finished() {
            let t = Instant::now();
            assert_eq!(other.cmd(&[b"PING"]), b"+PONG\r\n");
            worst = worst.max(t.elapsed());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(worst < PROMPT, "a PING took {worst:?} while a slow client was sending");
        let (set, get) = slow.join().unwrap();
        assert_eq!(set, b"+OK\r\n");
        assert_eq!(get, bulk(b"a value\r\nwith CRLF"));
    });
    assert_serving(&server);
}

#[test]
fn clients_that_vanish_mid_frame_or_without_reading_do_not_hurt_the_server() {
    let server = Server::magpie();

    // Gone in the middle of a bulk argument.
    let mut c = server.raw();
    let mut partial = b"*3\r\n$3\r\nSET\r\n$7\r\nhalfway\r\n$100000\r\n".to_vec();
    partial.extend(vec![b'z'; 50_000]);
    c.send(&partial);
    drop(c);
    // Gone in the middle of a header line and of an inline command.
    for bytes in [&b"*3\r\n$3\r\nSET\r\n$1"[..], b"SET halfway \"never"] {
        let mut c = server.raw();
        c.send(bytes);
        drop(c);
    }

    // 10k commands in one write, then gone without reading a reply.
    let mut pipeline = Vec::new();
    for i in 0..10_000 {
        pipeline.extend(Raw::encode(&[b"SET", format!("p:{i}").as_bytes(), b"v"]));
    }
    let mut c = server.raw();
    c.send(&pipeline);
    drop(c);

    // Replies far larger than the socket buffers, never read: the server's write fails.
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"SET", b"big", &vec![b'b'; 100_000]]), b"+OK\r\n");
    let gets: Vec<u8> = (0..200).flat_map(|_| Raw::encode(&[b"GET", b"big"])).collect();
    c.send(&gets);
    let _ = c.stream().shutdown(std::net::Shutdown::Both);
    drop(c);

    assert_serving(&server);
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"GET", b"halfway"]), b"$-1\r\n", "a half-sent SET was executed");
    assert_eq!(c.cmd(&[b"STRLEN", b"big"]), b":100000\r\n");
    // (How many of the 10k pipelined SETs ran is not specified: as in Redis, the server stops
    // reading a client once a write to it fails.)
    assert_serving(&server);
}

#[test]
fn a_thousand_pipelined_commands_get_a_thousand_replies_in_order() {
    let server = Server::magpie();
    let mut c = server.raw();
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for i in 0..1000 {
        if i % 2 == 0 {
            bytes.extend(Raw::encode(&[b"INCR", b"counter"]));
            expected.push(format!(":{}\r\n", i / 2 + 1).into_bytes());
        } else {
            let msg = format!("message {i}");
            bytes.extend(Raw::encode(&[b"ECHO", msg.as_bytes()]));
            expected.push(bulk(msg.as_bytes()));
        }
    }
    c.send(&bytes);
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(text(&c.read_reply()), text(want), "reply {i}");
    }
    // Nothing more than the 1000 replies.
    assert_eq!(c.cmd(&[b"GET", b"counter"]), b"$3\r\n500\r\n");
    assert_serving(&server);
}

#[test]
fn inline_commands_mixed_with_resp_frames_in_one_write() {
    let server = Server::magpie();
    let mut c = server.raw();
    let mut bytes = b"SET foo \"bar baz\"\r\n".to_vec();
    bytes.extend(Raw::encode(&[b"GET", b"foo"]));
    bytes.extend(b"PING\n");
    bytes.extend(b"\r\n\n   \r\n"); // empty lines are skipped, as in Redis
    bytes.extend(Raw::encode(&[b"PING"]));
    bytes.extend(b"  echo   \"a\\x41\\n\\\"q\\\"\"  \r\n");
    bytes.extend(b"SET 'it\\'s' ''\n");
    bytes.extend(Raw::encode(&[b"STRLEN", b"it's"]));
    bytes.extend(b"get foo\r\n");
    c.send(&bytes);
    assert_eq!(c.read_reply(), b"+OK\r\n");
    assert_eq!(c.read_reply(), b"$7\r\nbar baz\r\n");
    assert_eq!(c.read_reply(), b"+PONG\r\n");
    assert_eq!(c.read_reply(), b"+PONG\r\n");
    assert_eq!(c.read_reply(), b"$6\r\naA\n\"q\"\r\n");
    assert_eq!(c.read_reply(), b"+OK\r\n");
    assert_eq!(c.read_reply(), b":0\r\n");
    assert_eq!(c.read_reply(), b"$7\r\nbar baz\r\n");
    // An inline command is only run once its line is complete.
    c.send(b"ECHO 'partial");
    assert!(c.open_and_silent_for(Duration::from_millis(100)), "an incomplete line was answered or refused");
    c.send(b" line'\r\n");
    assert_eq!(c.read_reply(), b"$12\r\npartial line\r\n");
    assert_serving(&server);
}

/// Connects until the server accepts the connection (answers PING), within `PROMPT`.
fn connect_accepted(server: &Server) -> Raw {
    let deadline = Instant::now() + PROMPT;
    loop {
        let mut c = server.raw();
        c.set_read_timeout(PROMPT);
        match c.try_cmd(&[b"PING"]) {
            Ok(r) if r == b"+PONG\r\n" => return c,
            other => assert!(Instant::now() < deadline, "not accepted: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn maxclients_refuses_the_extra_client_and_accepts_again_after_one_leaves() {
    let server = Server::magpie_with(&["--maxclients", "2"]);
    let a = connect_accepted(&server);
    let mut b = connect_accepted(&server);

    // Refused: the error, then a close.
    let mut c = server.raw();
    assert_eq!(
        c.watch(Duration::from_secs(5)),
        common::Watched { sent: b"-ERR max number of clients reached\r\n".to_vec(), closed: true }
    );
    // The accepted ones are unaffected.
    assert_eq!(b.cmd(&[b"PING"]), b"+PONG\r\n");

    drop(a);
    let mut d = connect_accepted(&server);
    assert_eq!(d.cmd(&[b"SET", b"k", b"v"]), b"+OK\r\n");
    assert_eq!(b.cmd(&[b"GET", b"k"]), b"$1\r\nv\r\n");
}

#[test]
fn timeout_closes_idle_clients_but_not_active_ones() {
    let server = Server::magpie_with(&["--timeout", "1"]);
    let mut idle = server.raw();
    let mut active = server.raw();
    assert_eq!(idle.cmd(&[b"PING"]), b"+PONG\r\n");
    let since = Instant::now();
    std::thread::scope(|s| {
        let pinger = s.spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(2500) {
                assert_eq!(active.cmd(&[b"PING"]), b"+PONG\r\n");
                std::thread::sleep(Duration::from_millis(100));
            }
            active
        });
        assert!(idle.closed_within(Duration::from_secs(8)), "idle client not closed");
        let after = since.elapsed();
        assert!(after >= Duration::from_millis(800), "idle client closed after only {after:?}");
        let mut active = pinger.join().unwrap();
        assert_eq!(active.cmd(&[b"ECHO", b"alive"]), b"$5\r\nalive\r\n");
    });
    assert_serving(&server);
}

/// Known gap (see the robustness report): Redis counts a client that stops reading its replies
/// as idle too (`lastinteraction` moves only when a write makes progress) and closes it after
/// `timeout`; Magpie's connection waits in its write forever, holding the connection slot and
/// the pending replies.
#[test]
fn timeout_also_closes_a_client_that_stops_reading() {
    let server = Server::magpie_with(&["--timeout", "1"]);
    let value = vec![b'v'; 1_000_000];
    let mut c = server.raw();
    assert_eq!(c.cmd(&[b"SET", b"big", &value]), b"+OK\r\n");
    let gets: Vec<u8> = (0..200).flat_map(|_| Raw::encode(&[b"GET", b"big"])).collect();
    c.send(&gets); // 200 MB of replies, never read while the server could still send them
    std::thread::sleep(Duration::from_secs(3));
    // Drain: a closed connection ends (EOF) before all the replies have come.
    let mut stream = c.stream().try_clone().unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0usize;
    loop {
        match std::io::Read::read(&mut stream, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total < 200 * value.len(), "all {total} bytes of replies were sent: the client was never closed");
    assert_serving(&server);
}

#[test]
fn keys_and_values_are_binary_safe() {
    let server = Server::magpie();
    let mut c = server.raw();
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let mut reversed = every_byte.clone();
    reversed.reverse();
    assert_eq!(c.cmd(&[b"SET", &every_byte, &reversed]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"GET", &every_byte]), bulk(&reversed));
    assert_eq!(c.cmd(&[b"GET", &reversed]), b"$-1\r\n");

    // 1 MB of pseudo-random bytes, CRLFs and NULs included.
    let mut x: u32 = 0x1234_5678;
    let big: Vec<u8> = (0..1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    assert_eq!(c.cmd(&[b"SET", b"big\r\n\0", &big]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"GET", b"big\r\n\0"]), bulk(&big));
    assert_eq!(c.cmd(&[b"STRLEN", b"big\r\n\0"]), b":1048576\r\n");

    assert_eq!(c.cmd(&[b"SET", b"", b""]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"GET", b""]), b"$0\r\n\r\n");
    assert_eq!(c.cmd(&[b"EXISTS", b""]), b":1\r\n");
    assert_eq!(c.cmd(&[b"SET", b"\0", b"\0\0"]), b"+OK\r\n");
    assert_eq!(c.cmd(&[b"GET", b"\0"]), b"$2\r\n\0\0\r\n");
    assert_eq!(c.cmd(&[b"DBSIZE"]), b":4\r\n");
    assert_serving(&server);
}

#[test]
fn shutdown_exits_with_status_zero() {
    let mut server = Server::magpie();
    let mut bystander = server.raw();
    assert_eq!(bystander.cmd(&[b"PING"]), b"+PONG\r\n");
    let mut c = server.raw();
    c.send(&Raw::encode(&[b"SHUTDOWN"]));
    assert!(c.closed_within(Duration::from_secs(10)), "SHUTDOWN answered instead of closing");
    let status = server.wait_exit(Duration::from_secs(10)).expect("server still running after SHUTDOWN");
    assert!(status.success(), "exit status {status}");
    assert!(bystander.closed_within(Duration::from_secs(5)));
}

#[test]
fn sigterm_exits_with_status_zero() {
    let mut server = Server::magpie();
    let mut bystander = server.raw();
    assert_eq!(bystander.cmd(&[b"PING"]), b"+PONG\r\n");
    bystander.send(b"*2\r\n$4\r\nECHO\r\n"); // mid-request
    let kill = std::process::Command::new("kill").arg(server.pid().to_string()).status().expect("run kill");
    assert!(kill.success());
    let status = server.wait_exit(Duration::from_secs(10)).expect("server still running after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(bystander.closed_within(Duration::from_secs(5)));
}

/// Known bug (see the robustness report): an inline line holding a NUL byte makes the decoder
/// loop forever, pushing empty arguments, so the connection's task never yields and memory
/// grows by hundreds of MB a second. Redis 7.0 never runs such a line (its `strchr` stops at the
/// NUL, so it waits for a newline it cannot see); here the server must at least stay bounded.
#[test]
fn an_inline_nul_byte_neither_hangs_nor_grows_memory() {
    let server = Server::magpie();
    let before = server.rss_kib();
    let mut stream = TcpStream::connect(server.addr()).unwrap();
    stream.write_all(b"PING\0x\r\n").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let grown = server.rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "server RSS grew by {grown} KiB after one inline NUL");
    assert_serving(&server);
}
