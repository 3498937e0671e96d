//! Test support: start real servers (Magpie, and redis-server for differential tests) on free
//! loopback ports, and talk to them over raw sockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "pid.rs"]
mod pid;
use pid::process_id_on_as;

#[path = "redis.rs"]
mod redis_check;
pub(crate) use redis_check::skip_without_redis;

/// Where the records of an append-only log file end: its length, less the zeros preallocated
/// after the last record (docs/formats.md, "Zero tail"), which a server killed with SIGKILL
/// leaves behind. A test that cuts the last record short, as a crash in the middle of its
/// write would, cuts from here.
pub(crate) fn log_records_end(path: &std::path::Path) -> u64 {
    match magpie_persist::log::check(path).expect("a readable log") {
        (_, magpie_persist::log::Tail::Zeros { offset, .. }) => offset,
        _ => std::fs::metadata(path).expect("stat the log").len(),
    }
}

/// Asks the kernel for a free port on the loopback interface.
pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A server process that is killed when dropped.
pub(crate) struct Server {
    pub port: u16,
    child: Child,
}

impl Server {
    /// Starts `magpie-server` on a free port with extra command-line arguments.
    pub(crate) fn magpie_with(args: &[&str]) -> Server {
        Server::magpie_as(args, None)
    }

    /// [`Server::magpie_with`] for a server whose default user needs `password` (its
    /// readiness check authenticates first).
    pub(crate) fn magpie_as(args: &[&str], password: Option<&str>) -> Server {
        // The port from `free_port` may be taken by someone else before the server binds it:
        // then the server exits at once, and a fresh port is tried.
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(env!("CARGO_BIN_EXE_magpie-server"))
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                // Servers start in parallel: no HTTP API unless a test asks for one (on a
                // free port; a later `--http-port` wins).
                .args(["--http-port", "0"])
                // No snapshots into the working directory unless a test asks for them (a
                // later `--save` or `--dir` wins).
                .args(["--save", ""])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start magpie-server");
            if let Some(server) = Server::try_ready(port, child, password) {
                return server;
            }
        }
        panic!("magpie-server did not start on any of 5 free ports");
    }

    /// Starts `magpie-server` with its HTTP API on a free port (returned too), with extra
    /// arguments; `password` as in [`Server::magpie_as`].
    pub(crate) fn magpie_http(args: &[&str], password: Option<&str>) -> (Server, u16) {
        // The HTTP port is bound first: if someone took it, the server exits at once and
        // both ports are picked again.
        for _ in 0..5 {
            let (port, http) = (free_port(), free_port());
            let child = Command::new(env!("CARGO_BIN_EXE_magpie-server"))
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
                .args(["--http-port", &http.to_string()])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start magpie-server");
            if let Some(server) = Server::try_ready(port, child, password) {
                return (server, http);
            }
        }
        panic!("magpie-server did not start on any of 5 pairs of free ports");
    }

    /// Wraps a server started some other way (under `prlimit`, say), once it answers PING.
    pub(crate) fn adopt(port: u16, child: Child) -> Server {
        Server::wait_ready(port, child)
    }

    pub(crate) fn magpie() -> Server {
        Server::magpie_with(&[])
    }

    /// Starts Debian's `redis-server` with persistence off, or returns None when it is not
    /// installed (saying so on the terminal: the test then checks nothing). Set
    /// `MAGPIE_REQUIRE_REDIS=1` (as .ci/run does) to turn a missing redis-server into a failure.
    pub(crate) fn redis() -> Option<Server> {
        let port = free_port();
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(child) => Some(Server::wait_ready(port, child)),
            Err(e) => {
                skip_without_redis(&e.to_string());
                None
            }
        }
    }

    fn wait_ready(port: u16, child: Child) -> Server {
        Server::try_ready(port, child, None)
            .unwrap_or_else(|| panic!("server on port {port} exited before it was ready"))
    }

    /// Waits until the server answers PING; `None` if it exited first (its port was taken).
    fn try_ready(port: u16, mut child: Child, password: Option<&str>) -> Option<Server> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let (probe, answer) = match password {
            Some(p) => (format!("AUTH {p}\r\nPING\r\n"), "+OK\r\n+PONG\r\n"),
            None => ("PING\r\n".to_owned(), "+PONG\r\n"),
        };
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(Duration::from_secs(2))).ok();
                if s.write_all(probe.as_bytes()).is_ok() {
                    let mut buf = vec![0u8; answer.len()];
                    if s.read_exact(&mut buf).is_ok() && buf == answer.as_bytes() {
                        // Make sure it was our process that answered, not another that holds
                        // the port (ours then failed to bind, and exits).
                        if process_id_on_as(port, password) == Some(child.id()) {
                            return Some(Server { port, child });
                        }
                        let _ = child.kill();
                        let _ = child.wait();
                        return None;
                    }
                }
            }
            if let Ok(Some(_)) = child.try_wait() {
                return None;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server on port {port} not ready after 10s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A `redis` crate connection.
    pub(crate) fn client(&self) -> redis::Connection {
        redis::Client::open(self.url()).expect("client").get_connection().expect("connect")
    }

    /// A raw socket connection.
    pub(crate) fn raw(&self) -> Raw {
        Raw::connect(self.port)
    }

    /// Waits for the process to exit by itself (e.g. after SHUTDOWN).
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw RESP connection: sends commands as multibulk frames and reads back one whole reply as
/// the exact bytes the server sent.
pub(crate) struct Raw {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl Raw {
    pub(crate) fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        stream.set_nodelay(true).ok();
        Raw { reader: BufReader::new(stream.try_clone().expect("clone")), stream }
    }

    /// Encodes `args` as a RESP multibulk command.
    pub(crate) fn encode(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Sends one command and returns its raw reply.
    pub(crate) fn cmd(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(&Raw::encode(args));
        self.read_reply()
    }

    /// Splits a string on spaces and sends it as one command; returns the reply as a string.
    pub(crate) fn cmd_str(&mut self, line: &str) -> String {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        String::from_utf8_lossy(&self.cmd(&args)).into_owned()
    }

    /// Reads exactly one RESP2/RESP3 reply, returning its raw bytes.
    pub(crate) fn read_reply(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.read_into(&mut out);
        out
    }

    fn read_line(&mut self, out: &mut Vec<u8>) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("read reply line");
        assert!(line.ends_with(b"\r\n"), "connection closed or bad line: {:?}", String::from_utf8_lossy(&line));
        out.extend_from_slice(&line);
        line.truncate(line.len() - 2);
        line
    }

    fn read_into(&mut self, out: &mut Vec<u8>) {
        let line = self.read_line(out);
        let (kind, rest) = (line[0], std::str::from_utf8(&line[1..]).expect("utf8 header"));
        match kind {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {}
            b'$' | b'=' | b'!' => {
                let n: i64 = rest.parse().expect("bulk len");
                if n >= 0 {
                    let mut body = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut body).expect("bulk body");
                    out.extend_from_slice(&body);
                }
            }
            b'*' | b'~' | b'>' => {
                let n: i64 = rest.parse().expect("array len");
                for _ in 0..n.max(0) {
                    self.read_into(out);
                }
            }
            b'%' | b'|' => {
                let n: i64 = rest.parse().expect("map len");
                for _ in 0..n.max(0) * 2 {
                    self.read_into(out);
                }
            }
            other => panic!("unexpected reply type byte {:?}", other as char),
        }
    }

    /// True when the server has closed the connection (reads EOF within the timeout).
    pub(crate) fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

/// Fallible variants of `Raw`'s calls, for harnesses that must report a server which closes
/// the connection, hangs or sends malformed RESP instead of panicking mid-run.
impl Raw {
    /// Sets how long a read may wait for the server before it fails.
    pub(crate) fn set_read_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).ok();
    }

    /// Like `cmd`, but returns an error when the server closes the connection, does not answer
    /// within the read timeout, or sends something that is not RESP.
    pub(crate) fn try_cmd(&mut self, args: &[&[u8]]) -> std::io::Result<Vec<u8>> {
        self.stream.write_all(&Raw::encode(args))?;
        let mut out = Vec::new();
        self.try_read_into(&mut out)?;
        Ok(out)
    }

    /// Like `try_cmd`, for a command that answers with `replies` replies (SUBSCRIBE of several
    /// channels): returns them all, concatenated.
    pub(crate) fn try_cmd_replies(&mut self, args: &[&[u8]], replies: usize) -> std::io::Result<Vec<u8>> {
        let mut out = self.try_cmd(args)?;
        for _ in 1..replies {
            self.try_read_into(&mut out)?;
        }
        Ok(out)
    }

    /// Reads one more reply (or pushed message), failing instead of panicking.
    pub(crate) fn try_read_reply(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.try_read_into(&mut out)?;
        Ok(out)
    }

    fn try_read_line(&mut self, out: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            let what = if line.is_empty() {
                "connection closed".to_string()
            } else {
                format!("connection closed inside a reply line: {:?}", String::from_utf8_lossy(&line))
            };
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what));
        }
        out.extend_from_slice(&line);
        line.truncate(line.len() - 2);
        Ok(line)
    }

    fn try_read_into(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let line = self.try_read_line(out)?;
        let Some((&kind, rest)) = line.split_first() else {
            return Err(bad("empty reply line".into()));
        };
        let count = || -> std::io::Result<i64> {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(format!("bad length in {:?}", String::from_utf8_lossy(&line))))
        };
        match kind {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {}
            b'$' | b'=' | b'!' => {
                let n = count()?;
                if n > 1 << 30 {
                    return Err(bad(format!("implausible bulk length {n}")));
                }
                if n >= 0 {
                    let mut body = vec![0u8; n as usize + 2];
                    self.reader.read_exact(&mut body)?;
                    if !body.ends_with(b"\r\n") {
                        return Err(bad("bulk string not followed by CRLF".into()));
                    }
                    out.extend_from_slice(&body);
                }
            }
            b'*' | b'~' | b'>' => {
                for _ in 0..count()?.max(0) {
                    self.try_read_into(out)?;
                }
            }
            b'%' | b'|' => {
                for _ in 0..count()?.max(0) * 2 {
                    self.try_read_into(out)?;
                }
            }
            other => {
                return Err(bad(format!("unexpected reply type byte {:?}", other as char)));
            }
        }
        Ok(())
    }
}

/// What the server did on a connection while a test watched it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Watched {
    /// The bytes it sent.
    pub sent: Vec<u8>,
    /// Whether it closed the connection after them.
    pub closed: bool,
}

/// Helpers for robustness tests: waiting for the server to close a connection, sending when
/// the server may already have closed, reading the server's memory use.
impl Raw {
    /// Sends bytes, returning the error instead of panicking (the server may have closed).
    pub(crate) fn try_send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Everything the server sends within `timeout`, and whether it closed the connection
    /// (EOF or reset) by then. Returns as soon as it closes.
    pub(crate) fn watch(&mut self, timeout: Duration) -> Watched {
        let deadline = Instant::now() + timeout;
        let mut sent = Vec::new();
        let mut buf = [0u8; 4096];
        let closed = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            self.stream.set_read_timeout(Some(left)).ok();
            match self.reader.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => sent.extend_from_slice(&buf[..n]),
                Err(e) => match e.kind() {
                    std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe => break true,
                    std::io::ErrorKind::Interrupted => {}
                    _ => break false, // timed out
                },
            }
        };
        self.stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
        Watched { sent, closed }
    }

    /// True when the server closes the connection within `timeout` without sending anything
    /// more (a silent close). An error reply followed by a close is not one: read the reply
    /// first, or use [`Raw::watch`] to see both.
    pub(crate) fn closed_within(&mut self, timeout: Duration) -> bool {
        let w = self.watch(timeout);
        w.sent.is_empty() && w.closed
    }

    /// True when the server neither sends anything nor closes the connection for `timeout`:
    /// it is still waiting for the rest of a request. A refusal (an error, then a close) and
    /// an answer are both false.
    pub(crate) fn open_and_silent_for(&mut self, timeout: Duration) -> bool {
        self.watch(timeout) == Watched { sent: Vec::new(), closed: false }
    }

    /// The underlying socket, for tests that need to shut it down or read it directly.
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl Server {
    /// The server process's resident memory in KiB (`VmRSS` in /proc/<pid>/status).
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status")
    }
}

// Blocking commands: send one without waiting for its reply, and watch INFO's
// `blocked_clients`.

/// Sends a command (split on spaces) without reading its reply.
pub(crate) fn send(c: &mut Raw, line: &str) {
    let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
    c.send(&Raw::encode(&args));
}

/// Reads one reply, as a string.
pub(crate) fn reply(c: &mut Raw) -> String {
    String::from_utf8_lossy(&c.read_reply()).into_owned()
}

/// INFO's `blocked_clients`.
pub(crate) fn blocked(c: &mut Raw) -> u64 {
    let info = String::from_utf8(c.cmd(&[b"INFO", b"clients"])).expect("utf8");
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("blocked_clients in INFO")
}

/// Waits until `blocked_clients` is `n`.
pub(crate) fn wait_blocked(c: &mut Raw, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = blocked(c);
        if now == n {
            return;
        }
        assert!(Instant::now() < deadline, "blocked_clients stayed {now}, expected {n}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Connections that each send one command in a loop, as fast as the server answers, until
/// stopped: they try to take what is pushed for blocked clients.
pub(crate) struct Takers {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
}

impl Takers {
    /// One connection per line of `lines`; a reply that is not one of `empty` counts as taken.
    pub(crate) fn start(port: u16, lines: &[&'static str], empty: &'static [&'static str]) -> Takers {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = lines
            .iter()
            .map(|&line| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut c = Raw::connect(port);
                    let mut taken = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        send(&mut c, line);
                        let r = reply(&mut c);
                        if !empty.contains(&r.as_str()) {
                            taken.push(r);
                        }
                    }
                    taken
                })
            })
            .collect();
        Takers { stop, threads }
    }

    /// Stops them, and returns every reply that took something.
    pub(crate) fn stop(self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.threads.into_iter().flat_map(|t| t.join().expect("taker thread")).collect()
    }
}

/// One field of an INFO section, read with a `redis` connection (panics if it is missing).
pub(crate) fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
        .trim()
        .to_owned()
}
