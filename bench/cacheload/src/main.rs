//! The client of `bench/cache.sh`.
//!
//! `cacheload run --port P --zipf S [--scan] ...`: cache-aside over `--keys` keys (GET; on a
//! miss, SET a `--value`-byte value), keys drawn from a Zipf distribution (ranks shuffled over
//! the key names), with `--scan`, a one-pass scan of twice the cache's size every 100k
//! requests. Several connections, each pipelining a batch of GETs then the SETs of its misses.
//! Prints one line: hit rates (all requests, Zipf requests only), throughput, keys held, the
//! top-k mass (the hit rate of a cache holding exactly the most popular keys) and maxmemory.
//! With `--hold N`, the warm-up moves the server's maxmemory until it holds N keys under this
//! load (`CACHELOAD_TRACE=1` prints each step), so that servers whose keys cost different
//! amounts are compared holding the same number of keys.
//!
//! `cacheload fill --port P --count N`: writes N keys of the same shape (for sizing).
//!
//! `cacheload probe --port P --bytes N`: writes N bytes of 1 KB values while another
//! connection PINGs every millisecond; prints the PING latency's percentiles and worst.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn f64(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for i in 1..=n {
            sum += 1.0 / (i as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }
    fn sample(&self, r: &mut Rng) -> usize {
        let u = r.f64();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn new(port: u16) -> Conn {
        let w = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        w.set_nodelay(true).ok();
        let r = BufReader::with_capacity(1 << 16, w.try_clone().expect("clone"));
        Conn { w, r }
    }
    fn push(buf: &mut Vec<u8>, args: &[&[u8]]) {
        buf.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
    }
    /// Reads one reply; returns whether it was a non-null bulk (a hit for GET).
    fn read(&mut self) -> bool {
        let mut line = Vec::new();
        self.r.read_until(b'\n', &mut line).expect("read");
        match line.first() {
            Some(b'$') => {
                let n: i64 = std::str::from_utf8(&line[1..line.len() - 2]).unwrap().parse().unwrap();
                if n < 0 {
                    return false;
                }
                let mut body = vec![0; n as usize + 2];
                self.r.read_exact(&mut body).expect("body");
                true
            }
            Some(b'-') => panic!("error reply: {}", String::from_utf8_lossy(&line)),
            _ => false,
        }
    }
    fn cmd(&mut self, args: &[&[u8]]) -> String {
        let mut buf = Vec::new();
        Conn::push(&mut buf, args);
        self.w.write_all(&buf).unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        if let Some(n) = line.strip_prefix('$') {
            let n: i64 = n.trim().parse().unwrap();
            if n >= 0 {
                let mut body = vec![0; n as usize + 2];
                self.r.read_exact(&mut body).unwrap();
                return String::from_utf8_lossy(&body[..n as usize]).into_owned();
            }
        }
        line
    }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn info_field(c: &mut Conn, section: &str, field: &str) -> u64 {
    let text = c.cmd(&[b"INFO", section.as_bytes()]);
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn run(args: &[String]) {
    let port: u16 = arg(args, "--port", 6379);
    let keys: usize = arg(args, "--keys", 1_000_000);
    let s: f64 = arg(args, "--zipf", 0.8);
    let scan = args.iter().any(|a| a == "--scan");
    let warmup: usize = arg(args, "--warmup", 1_000_000);
    let requests: usize = arg(args, "--requests", 2_000_000);
    let threads: usize = arg(args, "--threads", 4);
    let batch: usize = arg(args, "--batch", 32);
    let value = vec![b'v'; arg(args, "--value", 100)];
    let cache: usize = arg(args, "--cache", keys / 10);
    let label: String = arg(args, "--label", String::from("?"));
    let hold: usize = arg(args, "--hold", 0);

    let zipf = Arc::new(Zipf::new(keys, s));
    let mut perm: Vec<u32> = (0..keys as u32).collect();
    let mut r = Rng(99);
    for i in (1..keys).rev() {
        let j = r.below(i + 1);
        perm.swap(i, j);
    }
    let perm = Arc::new(perm);
    let names: Arc<Vec<Vec<u8>>> = Arc::new((0..keys).map(|i| format!("key:{i:07}").into_bytes()).collect());

    // Each thread: its own share of the requests, and of each scan.
    let phase = |n: usize, seed: u64, count: bool| {
        let started = Instant::now();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (zipf, perm, names, value) = (zipf.clone(), perm.clone(), names.clone(), value.clone());
                std::thread::spawn(move || {
                    let mut c = Conn::new(port);
                    let mut r = Rng(seed * 1000 + t as u64);
                    let per = n / threads;
                    let scan_every = 100_000 / threads;
                    let scan_len = 2 * cache / threads;
                    let mut scan_next = t * keys / threads;
                    // (key, is a scan request)
                    let mut reqs: Vec<(usize, bool)> = Vec::with_capacity(batch);
                    let (mut hits, mut total, mut zhits, mut ztotal, mut ops) = (0u64, 0u64, 0u64, 0u64, 0u64);
                    let mut pending_scan = 0usize;
                    let mut i = 0;
                    let mut buf = Vec::new();
                    while i < per || pending_scan > 0 {
                        reqs.clear();
                        while reqs.len() < batch && (i < per || pending_scan > 0) {
                            if pending_scan > 0 {
                                reqs.push((scan_next % keys, true));
                                scan_next += 1;
                                pending_scan -= 1;
                            } else {
                                reqs.push((perm[zipf.sample(&mut r)] as usize, false));
                                i += 1;
                                if scan && i % scan_every == 0 {
                                    pending_scan = scan_len;
                                }
                            }
                        }
                        buf.clear();
                        for &(k, _) in &reqs {
                            Conn::push(&mut buf, &[b"GET", &names[k]]);
                        }
                        c.w.write_all(&buf).unwrap();
                        let mut misses = Vec::new();
                        for &(k, is_scan) in &reqs {
                            let hit = c.read();
                            total += 1;
                            hits += u64::from(hit);
                            if !is_scan {
                                ztotal += 1;
                                zhits += u64::from(hit);
                            }
                            if !hit {
                                misses.push(k);
                            }
                        }
                        buf.clear();
                        for &k in &misses {
                            Conn::push(&mut buf, &[b"SET", &names[k], &value]);
                        }
                        c.w.write_all(&buf).unwrap();
                        for _ in &misses {
                            c.read();
                        }
                        ops += (reqs.len() + misses.len()) as u64;
                    }
                    (hits, total, zhits, ztotal, ops)
                })
            })
            .collect();
        let mut sum = (0u64, 0u64, 0u64, 0u64, 0u64);
        for h in handles {
            let (a, b, c, d, e) = h.join().unwrap();
            sum = (sum.0 + a, sum.1 + b, sum.2 + c, sum.3 + d, sum.4 + e);
        }
        let _ = count;
        (sum, started.elapsed())
    };
    if hold == 0 {
        phase(warmup, 1, false);
    } else {
        // The warm-up in ten rounds (and up to ten more while the count is off by more than
        // 1%); after each, maxmemory is moved so that the server holds `hold` keys under this
        // very churn (what a key costs while keys are evicted and written is what matters, not
        // what it cost when written in one go). Evicting a key frees its value, not its slot
        // in the table, so a key's marginal cost is below the average: half the average is
        // the step, which converges without overshooting.
        let mut c = Conn::new(port);
        let rounds = 10;
        for round in 0..2 * rounds {
            phase(warmup / rounds, 1 + round as u64 * 7919, false);
            let held = dbsize(&mut c);
            let used = info_field(&mut c, "memory", "used_memory");
            let max = info_field(&mut c, "memory", "maxmemory");
            if std::env::var_os("CACHELOAD_TRACE").is_some() {
                eprintln!("round {round}: held {held} used {used} maxmemory {max}");
            }
            if held == 0 || max == 0 {
                break;
            }
            let off = hold as f64 / held as f64 - 1.0;
            if round >= rounds - 1 && off.abs() <= 0.01 {
                break;
            }
            // Not full yet: the keys seen so far fit; nothing to learn.
            if (used as f64) < 0.97 * max as f64 || off.abs() <= 0.002 {
                continue;
            }
            let per_key = 0.5 * used as f64 / held as f64;
            let next = (max as f64 + (hold as f64 - held as f64) * per_key).max(1.0) as u64;
            c.cmd(&[b"CONFIG", b"SET", b"maxmemory", next.to_string().as_bytes()]);
        }
    }
    let ((hits, total, zhits, ztotal, ops), took) = phase(requests, 2, true);
    let mut c = Conn::new(port);
    let held = dbsize(&mut c);
    let maxmemory = info_field(&mut c, "memory", "maxmemory");
    let evicted = info_field(&mut c, "stats", "evicted_keys");
    let topk = if held > 0 { zipf.cdf[held.min(keys) - 1] } else { 0.0 };
    println!(
        "{label:<28} hit {:>5.1}%  zipf-only {:>5.1}%  {:>8.0} ops/s  held {held:>7} keys  top-k mass {:>5.1}%  evicted {evicted}  maxmemory {:.2} MB",
        hits as f64 * 100.0 / total.max(1) as f64,
        zhits as f64 * 100.0 / ztotal.max(1) as f64,
        ops as f64 / took.as_secs_f64(),
        topk * 100.0,
        maxmemory as f64 / 1e6,
    );
}

fn dbsize(c: &mut Conn) -> usize {
    c.cmd(&[b"DBSIZE"]).trim_start_matches(':').trim().parse().unwrap_or(0)
}

fn probe(args: &[String]) {
    let port: u16 = arg(args, "--port", 6379);
    let bytes: usize = arg(args, "--bytes", 300 << 20);
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut c = Conn::new(port);
            let mut waits = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                c.cmd(&[b"PING"]);
                waits.push(t.elapsed());
                std::thread::sleep(Duration::from_millis(1));
            }
            waits
        })
    };
    let mut c = Conn::new(port);
    let value = vec![b'x'; 1024];
    let count = bytes / 1024;
    let started = Instant::now();
    let mut buf = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(64) {
        buf.clear();
        for &i in chunk {
            Conn::push(&mut buf, &[b"SET", format!("probe:{i}").as_bytes(), &value]);
        }
        c.w.write_all(&buf).unwrap();
        for _ in chunk {
            c.read();
        }
    }
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut waits = pinger.join().unwrap();
    waits.sort();
    let ms = |q: f64| {
        let i = ((waits.len() as f64 * q) as usize).min(waits.len().saturating_sub(1));
        waits.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "wrote {count} x 1 KB in {:.1} s; {} PINGs, ms: p50 {:.2} p99 {:.2} p99.9 {:.2} worst {:.2}",
        took.as_secs_f64(),
        waits.len(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
        ms(1.0)
    );
}

/// `cacheload fill --port P --count N`: SETs key:0..N with `--value`-byte values (to measure
/// what N keys take, for sizing maxmemory).
fn fill(args: &[String]) {
    let port: u16 = arg(args, "--port", 6379);
    let count: usize = arg(args, "--count", 100_000);
    let value = vec![b'v'; arg(args, "--value", 100)];
    let mut c = Conn::new(port);
    let mut buf = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(256) {
        buf.clear();
        for &i in chunk {
            Conn::push(&mut buf, &[b"SET", format!("key:{i:07}").as_bytes(), &value]);
        }
        c.w.write_all(&buf).unwrap();
        for _ in chunk {
            c.read();
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("run") => run(&args),
        Some("probe") => probe(&args),
        Some("fill") => fill(&args),
        _ => eprintln!("usage: cacheload run|probe [--port P] ... (see bench/cache.sh)"),
    }
}
