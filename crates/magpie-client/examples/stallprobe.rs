//! Stall probe, for bench/stalls.sh: how long other clients wait while one client does
//! something heavy. One thread sends `PING` on its own connection about every millisecond and
//! records how long each reply takes; another thread runs a scenario on a second connection.
//! Plain threads and blocking sockets, so the probe never waits behind the load's work on the
//! client side.
//!
//! ```text
//! stallprobe HOST PORT set-grow MEMBERS [PIPELINE]   SADD one set to MEMBERS members
//! stallprobe HOST PORT list-bgsave ELEMENTS          fill a list, then LPUSH/RPOP during BGSAVE
//! stallprobe HOST PORT rewrite KEYS                  fill KEYS strings, then SET traffic during
//!                                                    BGREWRITEAOF and then BGSAVE
//! ```
//!
//! Prints one line per measured window:
//! `window=<name> probes=<n> max_ms=<worst> p99_ms=<..> p999_ms=<..> seconds=<window length>
//! ops=<load commands in the window> worst_at=<seconds into the window of the 3 worst>`.
//! Only replies received inside the window count. Exits 2 on bad arguments, 1 on a server
//! error.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: stallprobe HOST PORT set-grow MEMBERS [PIPELINE] | list-bgsave ELEMENTS | rewrite KEYS");
        std::process::exit(2)
    };
    if args.len() < 5 {
        usage();
    }
    let number = |i: usize| -> u64 { args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| usage()) };
    let addr = format!("{}:{}", args[1], number(2));
    let probe = Probe::start(&addr);
    let mut load = Conn::open(&addr);
    match args[3].as_str() {
        "set-grow" => {
            let pipeline = args.get(5).map_or(100, |_| number(5)) as usize;
            set_grow(&mut load, &probe, number(4), pipeline);
        }
        "list-bgsave" => list_bgsave(&mut load, &probe, number(4)),
        "rewrite" => rewrite(&mut load, &probe, number(4)),
        _ => usage(),
    }
    probe.stop();
}

// ---------------------------------------------------------------------------------------------
// The probe

struct Probe {
    /// (when the reply came, how long it took)
    samples: Arc<Mutex<Vec<(Instant, Duration)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Probe {
    fn start(addr: &str) -> Probe {
        let samples: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut conn = Conn::open(addr);
        let (into, stopped) = (samples.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let sent = Instant::now();
                conn.send(&[b"PING"]);
                conn.replies(1);
                let got = Instant::now();
                into.lock().expect("samples").push((got, got - sent));
                if let Some(rest) = Duration::from_millis(1).checked_sub(got - sent) {
                    thread::sleep(rest);
                }
            }
        });
        Probe { samples, stop, thread: Some(thread) }
    }

    /// Reports the replies received between `from` and now.
    fn report(&self, window: &str, from: Instant, ops: u64) {
        let now = Instant::now();
        let mut got: Vec<(Instant, Duration)> =
            self.samples.lock().expect("samples").iter().copied().filter(|(t, _)| *t >= from && *t <= now).collect();
        if got.is_empty() {
            println!("window={window} probes=0");
            return;
        }
        got.sort_by_key(|s| std::cmp::Reverse(s.1));
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let pct = |p: f64| ms(got[((got.len() as f64) * (1.0 - p)) as usize].1);
        let worst: Vec<String> =
            got.iter().take(3).map(|(t, d)| format!("{:.2}", (*t - *d).duration_since(from).as_secs_f64())).collect();
        println!(
            "window={window} probes={} max_ms={:.1} p99_ms={:.2} p999_ms={:.2} seconds={:.1} ops={ops} worst_at={}",
            got.len(),
            ms(got[0].1),
            pct(0.99),
            pct(0.999),
            (now - from).as_secs_f64(),
            worst.join(",")
        );
        std::io::stdout().flush().ok();
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().ok();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/// SADD one set to `members` members, `pipeline` commands per write, one batch always in
/// flight ahead of the replies being read.
fn set_grow(c: &mut Conn, probe: &Probe, members: u64, pipeline: usize) {
    c.call(&[b"DEL", b"stall:set"]);
    let from = Instant::now();
    let (mut sent, mut in_flight) = (0u64, 0);
    while sent < members {
        let k = (pipeline as u64).min(members - sent);
        for n in sent..sent + k {
            c.queue(&[b"SADD", b"stall:set", format!("member:{n:012}").as_bytes()]);
        }
        c.flush();
        c.replies(in_flight);
        in_flight = k as usize;
        sent += k;
    }
    c.replies(in_flight);
    probe.report("set-grow", from, sent);
    let card = c.call(&[b"SCARD", b"stall:set"]);
    eprintln!("stallprobe: SCARD stall:set = {}", String::from_utf8_lossy(&card).trim());
}

/// Fills a list with `elements` 64-byte elements, then runs LPUSH/RPOP pairs on it (pipelined
/// by 50) from BGSAVE until the snapshot is finished.
fn list_bgsave(c: &mut Conn, probe: &Probe, elements: u64) {
    c.call(&[b"DEL", b"stall:list"]);
    let element = [b'e'; 64];
    let per_push = 1000;
    let mut pushed = 0;
    while pushed < elements {
        let n = per_push.min(elements - pushed);
        let mut cmd: Vec<&[u8]> = vec![b"RPUSH", b"stall:list"];
        cmd.extend((0..n).map(|_| &element[..]));
        c.queue(&cmd);
        pushed += n;
        if pushed % 100_000 == 0 || pushed == elements {
            c.flush();
            c.replies(c.pending);
        }
    }
    wait_idle(c);
    let from = Instant::now();
    expect_ok(&c.call(&[b"BGSAVE"]));
    let mut ops = 0;
    while persisting(c) {
        for _ in 0..25 {
            c.queue(&[b"LPUSH", b"stall:list", &element]);
            c.queue(&[b"RPOP", b"stall:list"]);
        }
        c.flush();
        c.replies(50);
        ops += 50;
    }
    probe.report("list-bgsave", from, ops);
}

/// Fills `keys` string keys, then writes random keys (SET, pipelined by 50) through a
/// BGREWRITEAOF and then a BGSAVE, each measured from its start to its end.
fn rewrite(c: &mut Conn, probe: &Probe, keys: u64) {
    c.call(&[b"FLUSHALL"]);
    let value = [b'v'; 64];
    for i in 0..keys {
        c.queue(&[b"SET", format!("key:{i:012}").as_bytes(), &value]);
        if i % 1000 == 999 || i + 1 == keys {
            c.flush();
            c.replies(c.pending);
        }
    }
    c.call(&[b"CONFIG", b"SET", b"appendonly", b"yes"]);
    wait_idle(c);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for (window, cmd) in [("rewrite", &b"BGREWRITEAOF"[..]), ("bgsave", b"BGSAVE")] {
        let from = Instant::now();
        let reply = c.call(&[cmd]);
        if reply.first() != Some(&b'+') {
            eprintln!("stallprobe: {} answered {}", String::from_utf8_lossy(cmd), String::from_utf8_lossy(&reply));
            std::process::exit(1);
        }
        let mut ops = 0;
        while persisting(c) {
            for _ in 0..50 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                c.queue(&[b"SET", format!("key:{:012}", rng % keys).as_bytes(), &value]);
            }
            c.flush();
            c.replies(50);
            ops += 50;
        }
        probe.report(window, from, ops);
    }
}

/// Whether a snapshot or a log rewrite is running (or scheduled).
fn persisting(c: &mut Conn) -> bool {
    let info = c.call(&[b"INFO", b"persistence"]);
    let text = String::from_utf8_lossy(&info);
    ["rdb_bgsave_in_progress:1", "aof_rewrite_in_progress:1", "aof_rewrite_scheduled:1"]
        .iter()
        .any(|f| text.contains(f))
}

fn wait_idle(c: &mut Conn) {
    while persisting(c) {
        thread::sleep(Duration::from_millis(50));
    }
}

fn expect_ok(reply: &[u8]) {
    if reply.first() != Some(&b'+') {
        eprintln!("stallprobe: unexpected reply {}", String::from_utf8_lossy(reply));
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal blocking RESP connection

struct Conn {
    stream: TcpStream,
    out: Vec<u8>,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed.
    at: usize,
    /// Commands queued or sent whose replies are not read yet.
    pending: usize,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| {
            eprintln!("stallprobe: cannot connect to {addr}: {e}");
            std::process::exit(1)
        });
        stream.set_nodelay(true).ok();
        Conn { stream, out: Vec::new(), buf: Vec::with_capacity(1 << 16), at: 0, pending: 0 }
    }

    fn queue(&mut self, args: &[&[u8]]) {
        self.out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            self.out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            self.out.extend_from_slice(a);
            self.out.extend_from_slice(b"\r\n");
        }
        self.pending += 1;
    }

    fn flush(&mut self) {
        if let Err(e) = self.stream.write_all(&self.out) {
            eprintln!("stallprobe: write failed: {e}");
            std::process::exit(1);
        }
        self.out.clear();
    }

    fn send(&mut self, args: &[&[u8]]) {
        self.queue(args);
        self.flush();
    }

    /// One command and its reply (raw).
    fn call(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(args);
        self.reply()
    }

    /// Reads `n` replies, failing on an error reply.
    fn replies(&mut self, n: usize) {
        for _ in 0..n {
            let r = self.reply();
            if r.first() == Some(&b'-') {
                eprintln!("stallprobe: error reply {}", String::from_utf8_lossy(&r));
                std::process::exit(1);
            }
        }
    }

    /// The next reply, raw.
    fn reply(&mut self) -> Vec<u8> {
        loop {
            if let Some(end) = reply_end(&self.buf[self.at..]) {
                let r = self.buf[self.at..self.at + end].to_vec();
                self.at += end;
                if self.at == self.buf.len() {
                    self.buf.clear();
                    self.at = 0;
                }
                self.pending = self.pending.saturating_sub(1);
                return r;
            }
            if self.at > 0 {
                self.buf.drain(..self.at);
                self.at = 0;
            }
            let mut chunk = [0u8; 1 << 16];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => {
                    eprintln!("stallprobe: the server closed the connection");
                    std::process::exit(1);
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Length of the complete reply at the start of `b`, if it is all there.
fn reply_end(b: &[u8]) -> Option<usize> {
    let line = b.windows(2).position(|w| w == b"\r\n")?;
    let head = std::str::from_utf8(&b[1..line]).ok()?;
    match b.first()? {
        b'+' | b'-' | b':' => Some(line + 2),
        b'$' => {
            let n: i64 = head.parse().ok()?;
            if n < 0 {
                return Some(line + 2);
            }
            let end = line + 2 + n as usize + 2;
            (b.len() >= end).then_some(end)
        }
        b'*' => {
            let n: i64 = head.parse().ok()?;
            let mut at = line + 2;
            for _ in 0..n.max(0) {
                at += reply_end(&b[at..])?;
            }
            Some(at)
        }
        _ => None,
    }
}
