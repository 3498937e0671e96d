//! Differential test: every case of `tests/corpus/*.txt` runs through EVAL (or FUNCTION LOAD /
//! FCALL) on a redis-server 7.0.15 started for the test and through magpie-lua with the test
//! host, and the reply bytes must be the same.
//!
//! Run with `cargo test -p magpie-lua --test differential -- --ignored`. Without redis-server
//! on the PATH the test passes with a notice, unless `MAGPIE_REQUIRE_REDIS=1`, where it fails.
//!
//! Corpus format: a case starts with a line `=== <kind> [options]`, the lines after it up to
//! the next `===` are its body.
//! - `=== eval [resp3] [keys=a,b] [args=x,y]`: EVAL of the body. `resp3` runs it on a RESP3
//!   connection (HELLO 3).
//! - `=== load`: FUNCTION LOAD REPLACE of the body.
//! - `=== fcall <name> [resp3] [keys=..] [args=..]`: FCALL of a loaded function.
//!
//! Lines starting with `#` before the first case are comments.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use magpie_lua::{FunctionDef, library_meta};
use magpie_protocol::{Reply, Resp};

struct Case {
    line: usize,
    kind: String,
    name: String,
    resp3: bool,
    keys: Vec<String>,
    args: Vec<String>,
    body: String,
}

fn parse_corpus(text: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        if let Some(header) = line.strip_prefix("=== ") {
            let mut words = header.split_whitespace();
            let kind = words.next().unwrap_or("eval").to_string();
            let mut case = Case {
                line: i + 1,
                kind,
                name: String::new(),
                resp3: false,
                keys: vec![],
                args: vec![],
                body: String::new(),
            };
            for w in words {
                if w == "resp3" {
                    case.resp3 = true;
                } else if let Some(k) = w.strip_prefix("keys=") {
                    case.keys = k.split(',').map(str::to_string).collect();
                } else if let Some(a) = w.strip_prefix("args=") {
                    case.args = a.split(',').map(str::to_string).collect();
                } else {
                    case.name = w.to_string();
                }
            }
            cases.push(case);
        } else if let Some(case) = cases.last_mut() {
            if !case.body.is_empty() {
                case.body.push('\n');
            }
            case.body.push_str(line);
        }
    }
    for c in &mut cases {
        while c.body.ends_with('\n') {
            c.body.pop();
        }
    }
    cases
}

fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one whole reply, returning its bytes (iteratively: replies may nest 8000 deep).
fn read_reply(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line).expect("read");
        assert!(line.ends_with(b"\r\n"), "bad reply line {:?}", String::from_utf8_lossy(&line));
        let kind = line[0];
        let n: i64 = std::str::from_utf8(&line[1..line.len() - 2]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        out.extend_from_slice(&line);
        match kind {
            b'$' | b'=' | b'!' if n >= 0 => {
                let mut data = vec![0; n as usize + 2];
                r.read_exact(&mut data).expect("read");
                out.extend_from_slice(&data);
            }
            b'*' | b'~' | b'>' if n > 0 => pending += n as u64,
            b'%' | b'|' if n > 0 => pending += 2 * n as u64 + u64::from(kind == b'|'),
            _ => {}
        }
    }
    out
}

struct Redis {
    child: Child,
    conn: BufReader<TcpStream>,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Redis {
    fn start() -> Option<Redis> {
        let port = TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let dir = std::env::temp_dir().join(format!("magpie-lua-diff-{port}"));
        std::fs::create_dir_all(&dir).ok()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", dir.to_str()?, "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let start = Instant::now();
        loop {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
                return Some(Redis { child, conn: BufReader::new(s) });
            }
            if start.elapsed() > Duration::from_secs(10) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn call(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.conn.get_mut().write_all(&command(args)).expect("write");
        read_reply(&mut self.conn)
    }
}

/// What `expected.tsv` keeps of a reply: the reply itself, or for long ones its SHA1 and
/// length (the file stays small; the comparison stays exact).
fn record(b: &[u8]) -> String {
    if b.len() > 2048 { format!("sha1:{}:{}", magpie_lua::sha1_hex(b), b.len()) } else { escape(b) }
}

/// Reply bytes as one line of text: printable ASCII as is, `\\` and `\xNN` for the rest.
fn escape(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(c)),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap_or("00");
            out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn redis_available() -> bool {
    Command::new("redis-server").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Magpie's side of the corpus: both engines, the library registry, the host.
struct Magpie {
    engine: magpie_lua::EvalEngine,
    functions: magpie_lua::FunctionEngine,
    registry: HashMap<Vec<u8>, Vec<FunctionDef>>,
    host: TestHost,
}

impl Magpie {
    fn new() -> Self {
        let (engine, functions) = engines();
        Magpie { engine, functions, registry: HashMap::new(), host: TestHost::default() }
    }

    fn run(&mut self, case: &Case) -> Vec<u8> {
        let proto = if case.resp3 { Resp::V3 } else { Resp::V2 };
        let keys: Vec<&[u8]> = case.keys.iter().map(std::string::String::as_bytes).collect();
        let args: Vec<&[u8]> = case.args.iter().map(std::string::String::as_bytes).collect();
        match case.kind.as_str() {
            "eval" => {
                let ks: Vec<&str> = case.keys.iter().map(String::as_str).collect();
                let a: Vec<&str> = case.args.iter().map(String::as_str).collect();
                eval(&mut self.engine, &mut self.host, &case.body, &ks, &a, proto)
            }
            "load" => {
                let mut out = Reply::new(proto);
                match library_meta(case.body.as_bytes()) {
                    Err(e) => out.error(&[&b"ERR "[..], &e].concat()),
                    Ok(meta) => match self.functions.load(&mut self.host, case.body.as_bytes(), None) {
                        Ok(lib) => {
                            self.registry.insert(lib.name.clone(), lib.functions);
                            out.bulk(&meta.name);
                        }
                        Err(e) => out.error(&e.0),
                    },
                }
                out.as_bytes().to_vec()
            }
            "fcall" => {
                let mut out = Reply::new(proto);
                let f = self.registry.values().flatten().find(|f| f.name == case.name.as_bytes()).cloned();
                match f {
                    Some(f) => {
                        self.functions.call(&mut self.host, &f, &keys, &args, &mut out);
                    }
                    None => out.error(b"ERR Function not found"),
                }
                out.as_bytes().to_vec()
            }
            other => panic!("unknown case kind {other}"),
        }
    }
}

fn corpus() -> Vec<(String, Vec<Case>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus dir")
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (name, parse_corpus(&std::fs::read_to_string(&f).expect("corpus file")))
        })
        .collect()
}

fn clip(b: &[u8]) -> String {
    let s = format!("{:?}", String::from_utf8_lossy(b));
    if s.len() > 600 { format!("{}...({} bytes)", &s[..600], b.len()) } else { s }
}

#[test]
#[ignore = "needs redis-server 7.0.15 (run with --ignored)"]
fn differential_against_redis() {
    if !redis_available() {
        assert!(
            std::env::var("MAGPIE_REQUIRE_REDIS").as_deref() != Ok("1"),
            "redis-server is not installed and MAGPIE_REQUIRE_REDIS=1"
        );
        eprintln!("redis-server not found: differential test skipped");
        return;
    }
    let mut redis = Redis::start().expect("start redis-server");
    let mut magpie = Magpie::new();
    let mut failures = Vec::new();
    let mut count = 0;
    let mut recorded = String::new();
    for (fname, cases) in corpus() {
        for case in cases {
            count += 1;
            if std::env::var("MAGPIE_DIFF_TRACE").is_ok() {
                eprintln!("{fname}:{}", case.line);
            }
            redis.call(&[b"HELLO", if case.resp3 { b"3" } else { b"2" }]);
            let nkeys = case.keys.len().to_string();
            let mut cmd: Vec<&[u8]> = match case.kind.as_str() {
                "eval" => vec![b"EVAL", case.body.as_bytes(), nkeys.as_bytes()],
                "load" => vec![b"FUNCTION", b"LOAD", b"REPLACE", case.body.as_bytes()],
                _ => vec![b"FCALL", case.name.as_bytes(), nkeys.as_bytes()],
            };
            if case.kind != "load" {
                cmd.extend(case.keys.iter().map(std::string::String::as_bytes));
                cmd.extend(case.args.iter().map(std::string::String::as_bytes));
            }
            let want = redis.call(&cmd);
            let got = magpie.run(&case);
            recorded.push_str(&format!("{fname}:{}\t{}\n", case.line, record(&want)));
            if want != got {
                failures.push(format!(
                    "{fname}:{} {}\n  script: {}\n  redis:  {}\n  magpie: {}",
                    case.line,
                    case.kind,
                    clip(case.body.as_bytes()),
                    clip(&want),
                    clip(&got)
                ));
            }
        }
    }
    for f in &failures {
        eprintln!("{f}\n");
    }
    if std::env::var("MAGPIE_LUA_RECORD").as_deref() == Ok("1") {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        std::fs::write(dir.join("expected.tsv"), recorded).expect("write expected.tsv");
    }
    eprintln!("{} cases, {} differences", count, failures.len());
    assert!(failures.is_empty(), "{} of {count} cases differ from redis-server", failures.len());
}

/// The same corpus against the replies redis-server gave when `expected.tsv` was recorded
/// (`MAGPIE_LUA_RECORD=1` with the differential test): runs without redis-server.
#[test]
fn recorded_replies() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let text = std::fs::read_to_string(dir.join("expected.tsv")).expect("expected.tsv");
    let expected: HashMap<&str, Vec<u8>> =
        text.lines().filter_map(|l| l.split_once('\t')).map(|(k, v)| (k, unescape(v))).collect();
    let mut magpie = Magpie::new();
    let mut failures = Vec::new();
    let mut count = 0;
    for (fname, cases) in corpus() {
        for case in cases {
            let id = format!("{fname}:{}", case.line);
            let Some(want) = expected.get(id.as_str()) else {
                panic!("{id} has no recorded reply: record again with MAGPIE_LUA_RECORD=1");
            };
            count += 1;
            let got = magpie.run(&case);
            let got = if want.starts_with(b"sha1:") { record(&got).into_bytes() } else { got };
            if *want != got {
                failures.push(format!(
                    "{id}\n  script: {}\n  redis:  {}\n  magpie: {}",
                    clip(case.body.as_bytes()),
                    clip(want),
                    clip(&got)
                ));
            }
        }
    }
    for f in &failures {
        eprintln!("{f}\n");
    }
    assert!(count > 600, "the corpus shrank to {count} cases");
    assert!(failures.is_empty(), "{} of {count} cases differ from redis-server's recorded replies", failures.len());
}
