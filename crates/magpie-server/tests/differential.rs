//! Differential tests: the command scripts in `tests/diff/*.redis` run against Magpie and
//! against Debian's `redis-server` (the Redis 7.0 reference), and every reply is compared byte
//! for byte as raw RESP.
//!
//! The tests are `#[ignore]`d so that a plain `cargo test --workspace` needs nothing but Rust.
//! Run them with
//!
//! ```text
//! MAGPIE_REQUIRE_REDIS=1 cargo test -p magpie-server --test differential -- --ignored
//! ```
//!
//! With `MAGPIE_DIFF_TARGET=redis` the scripts run against two redis-servers instead, which
//! must agree on every line: that checks a new script is deterministic before Magpie is blamed.
//! `MAGPIE_DIFF_DUMP=1` (with `--nocapture`) prints every command with Redis's reply, to read
//! what a new script really tests.
//!
//! # Script format
//!
//! One command per line, split like redis-cli does: arguments are separated by whitespace,
//! `"double quoted"` arguments know the escapes `\" \\ \n \r \t \a \b \xHH`, `'single quoted'`
//! ones only `\'`. `""` is an empty argument. Blank lines and lines starting with `#` are
//! ignored. Each script starts on a fresh connection to database 0 after `FLUSHALL`, so it must
//! set up everything it needs. A few directives cover what cannot be compared exactly (keep
//! them rare):
//!
//! - `!resp3` (before the first command): switch both connections to RESP3 with `HELLO 3`
//!   first. HELLO's own reply (server name, version, id) is not compared.
//! - `!sleep MS`: sleep that many milliseconds (once, for both servers); for expiry.
//! - `~ CMD`: compare only the first byte of the replies (the reply type), for TIME, PTTL...
//! - `~sort CMD`: sort the elements of an array (or set) reply before comparing, for replies
//!   whose order Redis leaves unspecified (KEYS).
//! - `~range LO HI CMD`: both replies must be integers in `LO..=HI`, e.g. a PTTL just after
//!   `PEXPIRE k 10000`.
//! - `~replies N CMD`: the command answers with N replies (SUBSCRIBE of N channels; a PUBLISH
//!   that a RESP3 subscriber also receives itself), read and compared together.
//! - `!events` (before the first command): also compare keyspace notifications. A second
//!   connection to each server subscribes to `__key*__:*` before the script runs; after each
//!   command, a third one publishes a marker that this subscriber also hears, and the
//!   notifications it received before the marker are compared (the script sets
//!   `notify-keyspace-events` itself). Expired events come from the servers' expiry cycles:
//!   a `!sleep` of a few hundred milliseconds lets them arrive before the next command.
//!
//! Both servers get each command in turn, so the sleeps count once. All mismatches of a script
//! are collected and reported together: file, line, command, Redis's reply and Magpie's.

mod common;

use common::Server;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, PartialEq)]
enum Proto {
    Resp2,
    Resp3,
}

macro_rules! diff_tests {
    ($($name:ident => $file:literal, $proto:ident;)*) => {
        $(
            #[test]
            #[ignore = "needs redis-server; run with --ignored"]
            fn $name() {
                run_script($file, Proto::$proto);
            }
        )*
        /// Every script file the tests above run.
        const SCRIPTS: &[&str] = &[$($file),*];
    };
}

// tests/diff/pending/ holds scripts that need what is not built yet; move each here when its
// commands exist.
diff_tests! {
    connection => "connection.redis", Resp2;
    strings => "strings.redis", Resp2;
    set_options => "set_options.redis", Resp2;
    counters => "counters.redis", Resp2;
    floats => "floats.redis", Resp2;
    keys => "keys.redis", Resp2;
    expiry => "expiry.redis", Resp2;
    errors => "errors.redis", Resp2;
    resp3 => "resp3.redis", Resp2;
    strings_resp3 => "strings.redis", Resp3;
    set_options_resp3 => "set_options.redis", Resp3;
    counters_resp3 => "counters.redis", Resp3;
    keys_resp3 => "keys.redis", Resp3;
    wrongtype => "wrongtype.redis", Resp2;
    wrongtype_resp3 => "wrongtype.redis", Resp3;
    lists => "lists.redis", Resp2;
    lists_resp3 => "lists.redis", Resp3;
    lists_blocking => "lists_blocking.redis", Resp2;
    lists_blocking_resp3 => "lists_blocking.redis", Resp3;
    sets => "sets.redis", Resp2;
    sets_resp3 => "sets.redis", Resp3;
    sets_ops => "sets_ops.redis", Resp2;
    sets_ops_resp3 => "sets_ops.redis", Resp3;
    sets_random => "sets_random.redis", Resp2;
    sets_random_resp3 => "sets_random.redis", Resp3;
    hashes => "hashes.redis", Resp2;
    hashes_resp3 => "hashes.redis", Resp3;
    hash_counters => "hash_counters.redis", Resp2;
    hash_counters_resp3 => "hash_counters.redis", Resp3;
    hash_encoding => "hash_encoding.redis", Resp2;
    hash_random => "hash_random.redis", Resp2;
    hash_random_resp3 => "hash_random.redis", Resp3;
    hash_big => "hash_big.redis", Resp2;
    hash_shapes_resp3 => "hashes_resp3.redis", Resp2;
    zsets => "zsets.redis", Resp2;
    zsets_resp3 => "zsets.redis", Resp3;
    zsets_ranges => "zsets_ranges.redis", Resp2;
    zsets_ranges_resp3 => "zsets_ranges.redis", Resp3;
    zsets_setops => "zsets_setops.redis", Resp2;
    zsets_setops_resp3 => "zsets_setops.redis", Resp3;
    zsets_encoding => "zsets_encoding.redis", Resp2;
    zsets_encoding_resp3 => "zsets_encoding.redis", Resp3;
    zsets_random => "zsets_random.redis", Resp2;
    zsets_random_resp3 => "zsets_random.redis", Resp3;
    zsets_with_sets => "zsets_with_sets.redis", Resp2;
    zsets_with_sets_resp3 => "zsets_with_sets.redis", Resp3;
    transactions => "transactions.redis", Resp2;
    transactions_resp3 => "transactions.redis", Resp3;
    zsets_blocking => "zsets_blocking.redis", Resp2;
    zsets_blocking_resp3 => "zsets_blocking.redis", Resp3;
    pubsub => "pubsub.redis", Resp2;
    pubsub_on_resp3 => "pubsub.redis", Resp3;
    pubsub_resp3 => "pubsub_resp3.redis", Resp2;
    events_strings => "events_strings.redis", Resp2;
    events_keys => "events_keys.redis", Resp2;
    events_types => "events_types.redis", Resp2;
}

/// Every `.redis` file in tests/diff is run by some test, and every script parses.
#[test]
#[ignore = "part of the differential suite; run with --ignored"]
fn every_script_is_listed_and_parses() {
    let mut unlisted = Vec::new();
    for entry in std::fs::read_dir(script_dir()).expect("read tests/diff") {
        let name = entry.expect("dir entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".redis") && !SCRIPTS.contains(&name.as_str()) {
            unlisted.push(name);
        }
    }
    assert!(unlisted.is_empty(), "scripts not run by any test in differential.rs: {unlisted:?}");
    for file in SCRIPTS {
        load_script(file);
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts

/// How two replies are compared.
enum Check {
    Exact,
    /// Only the first byte (the reply type).
    TypeOnly,
    /// Array elements sorted first.
    Sorted,
    /// Both are integers in the range.
    Range(i64, i64),
}

enum Step {
    Command { line: usize, text: String, args: Vec<Vec<u8>>, check: Check, replies: usize },
    Sleep(u64),
}

struct Script {
    file: String,
    resp3: bool,
    /// Keyspace notifications are compared too (`!events`).
    events: bool,
    steps: Vec<Step>,
}

fn script_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("diff")
}

fn load_script(file: &str) -> Script {
    let path = script_dir().join(file);
    let src = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse_script(file, &src).unwrap_or_else(|e| panic!("{e}"))
}

fn parse_script(file: &str, src: &[u8]) -> Result<Script, String> {
    let mut script = Script { file: file.to_string(), resp3: false, events: false, steps: Vec::new() };
    for (i, raw_line) in src.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let err = |what: String| format!("{file}:{line}: {what}");
        let text = std::str::from_utf8(raw_line).map_err(|_| err("not UTF-8 (use \\xHH)".into()))?.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if let Some(directive) = text.strip_prefix('!') {
            let words: Vec<&str> = directive.split_whitespace().collect();
            match words.as_slice() {
                ["resp3"] if script.steps.is_empty() => script.resp3 = true,
                ["resp3"] => return Err(err("!resp3 must come before the first command".into())),
                ["events"] if script.steps.is_empty() => script.events = true,
                ["events"] => return Err(err("!events must come before the first command".into())),
                ["sleep", ms] => {
                    let ms = ms.parse().map_err(|_| err(format!("bad !sleep duration {ms:?}")))?;
                    script.steps.push(Step::Sleep(ms));
                }
                _ => return Err(err(format!("unknown directive {text:?}"))),
            }
            continue;
        }
        let mut replies = 1;
        let (check, command) = if let Some(rest) = text.strip_prefix("~replies ") {
            let (n, rest) = rest.trim_start().split_once(char::is_whitespace).unwrap_or((rest, ""));
            replies = n.parse().ok().filter(|&n| n >= 1).ok_or_else(|| err(format!("bad ~replies count {n:?}")))?;
            (Check::Exact, rest)
        } else if let Some(rest) = text.strip_prefix("~sort ") {
            (Check::Sorted, rest)
        } else if let Some(rest) = text.strip_prefix("~range ") {
            let mut parts = rest.trim_start().splitn(3, char::is_whitespace);
            let mut bound = || -> Result<i64, String> {
                let word = parts.next().unwrap_or("");
                word.parse().map_err(|_| err(format!("bad ~range bound {word:?}")))
            };
            let (lo, hi) = (bound()?, bound()?);
            (Check::Range(lo, hi), parts.next().unwrap_or(""))
        } else if let Some(rest) = text.strip_prefix("~ ") {
            (Check::TypeOnly, rest)
        } else if text.starts_with('~') {
            return Err(err(format!("unknown comparison directive in {text:?}")));
        } else {
            (Check::Exact, text)
        };
        let command = command.trim();
        let args = split_args(command.as_bytes()).map_err(err)?;
        if args.is_empty() {
            return Err(err("directive without a command".into()));
        }
        script.steps.push(Step::Command { line, text: command.to_string(), args, check, replies });
    }
    Ok(script)
}

/// Splits a line into arguments the way redis-cli does (`sdssplitargs`).
fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while p < line.len() && line[p].is_ascii_whitespace() {
            p += 1;
        }
        if p == line.len() {
            return Ok(args);
        }
        let (mut in_dq, mut in_sq) = (false, false);
        let mut cur = Vec::new();
        loop {
            let c = line.get(p).copied();
            let next = line.get(p + 1).copied();
            if in_dq {
                match (c, next) {
                    (None, _) => return Err("unbalanced double quotes".into()),
                    (Some(b'\\'), Some(b'x')) => {
                        let hi = line.get(p + 2).copied().and_then(hex);
                        let lo = line.get(p + 3).copied().and_then(hex);
                        match (hi, lo) {
                            (Some(hi), Some(lo)) => {
                                cur.push(hi << 4 | lo);
                                p += 3;
                            }
                            _ => {
                                cur.push(b'x');
                                p += 1;
                            }
                        }
                    }
                    (Some(b'\\'), Some(e)) => {
                        cur.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                        p += 1;
                    }
                    (Some(b'"'), n) => {
                        if n.is_some_and(|n| !n.is_ascii_whitespace()) {
                            return Err("closing double quote must be followed by a space".into());
                        }
                        p += 1;
                        break;
                    }
                    (Some(c), _) => cur.push(c),
                }
            } else if in_sq {
                match (c, next) {
                    (None, _) => return Err("unbalanced single quotes".into()),
                    (Some(b'\\'), Some(b'\'')) => {
                        cur.push(b'\'');
                        p += 1;
                    }
                    (Some(b'\''), n) => {
                        if n.is_some_and(|n| !n.is_ascii_whitespace()) {
                            return Err("closing single quote must be followed by a space".into());
                        }
                        p += 1;
                        break;
                    }
                    (Some(c), _) => cur.push(c),
                }
            } else {
                match c {
                    None => break,
                    Some(c) if c.is_ascii_whitespace() => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(c) => cur.push(c),
                }
            }
            p += 1;
        }
        args.push(cur);
    }
}

// ---------------------------------------------------------------------------------------------
// Running

fn run_script(file: &str, proto: Proto) {
    let script = load_script(file);
    let resp3 = script.resp3 || proto == Proto::Resp3;
    let Some(reference) = Server::redis() else {
        return;
    };
    let against_redis = std::env::var("MAGPIE_DIFF_TARGET").is_ok_and(|v| v == "redis");
    let (target, target_name) = if against_redis {
        (Server::redis().expect("a second redis-server for MAGPIE_DIFF_TARGET=redis"), "redis2")
    } else {
        (Server::magpie(), "magpie")
    };
    let label = format!("{}{}", script.file, if resp3 { " (RESP3)" } else { "" });
    let mut report = Report::new(label.clone(), target_name);

    // Both servers are new, but start from a known state all the same.
    let flushall: &[&[u8]] = &[b"FLUSHALL"];
    let expected = reference.raw().try_cmd(flushall).expect("FLUSHALL on redis-server");
    assert_eq!(expected, b"+OK\r\n", "FLUSHALL on redis-server");
    let mut setup = target.raw();
    setup.set_read_timeout(Duration::from_secs(5));
    report.compared += 1;
    match setup.try_cmd(flushall) {
        Ok(actual) if actual == expected => {}
        Ok(actual) => report.fail(0, "FLUSHALL", &expected, Ok(&actual), ""),
        Err(e) => report.fail(0, "FLUSHALL", &expected, Err(e.to_string()), ""),
    }
    let mut expected_conn = reference.raw();
    let mut actual_conn = target.raw();
    actual_conn.set_read_timeout(Duration::from_secs(5));

    if resp3 {
        let hello: &[&[u8]] = &[b"HELLO", b"3"];
        let expected = expected_conn.try_cmd(hello).expect("HELLO 3 on redis-server");
        assert!(expected.starts_with(b"%"), "redis-server refused HELLO 3: {}", escape(&expected));
        report.compared += 1;
        match actual_conn.try_cmd(hello) {
            Ok(actual) if actual.starts_with(b"%") => {}
            Ok(actual) => {
                report.fail(0, "HELLO 3 (must answer with a map; not compared)", &expected, Ok(&actual), "");
                report.note("the script was not run: the target did not switch to RESP3");
                return report.finish();
            }
            Err(e) => {
                report.fail(0, "HELLO 3", &expected, Err(e.to_string()), "");
                return report.finish();
            }
        }
    }

    let mut listeners = if script.events {
        let expected = Listener::new(&reference).expect("a keyspace event listener on redis-server");
        match Listener::new(&target) {
            Ok(actual) => Some((expected, actual)),
            Err(e) => {
                report.fail(0, "PSUBSCRIBE __key*__:* (the keyspace event listener)", b"", Err(e.to_string()), "");
                return report.finish();
            }
        }
    } else {
        None
    };

    let dump = std::env::var_os("MAGPIE_DIFF_DUMP").is_some();
    let total = script.steps.iter().filter(|s| matches!(s, Step::Command { .. })).count();
    for (index, step) in script.steps.iter().enumerate() {
        let (line, text, args, check, replies) = match step {
            Step::Sleep(ms) => {
                std::thread::sleep(Duration::from_millis(*ms));
                continue;
            }
            Step::Command { line, text, args, check, replies } => (*line, text, args, check, *replies),
        };
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let expected = expected_conn
            .try_cmd_replies(&args, replies)
            .unwrap_or_else(|e| panic!("{}:{line}: redis-server failed on `{text}`: {e}", script.file));
        report.compared += 1;
        if dump {
            eprintln!("{}:{line}: {text}\n    {}", script.file, escape(&expected));
        }
        let actual = match actual_conn.try_cmd_replies(&args, replies) {
            Ok(actual) => actual,
            Err(e) => {
                report.fail(line, text, &expected, Err(e.to_string()), "");
                let left = script.steps[index + 1..].iter().filter(|s| matches!(s, Step::Command { .. })).count();
                report.note(&format!(
                    "the connection to {target_name} broke: the last {left} of {total} \
                     commands were not run"
                ));
                break;
            }
        };
        let (same, how) = match check {
            Check::Exact => (expected == actual, ""),
            Check::TypeOnly => (expected.first() == actual.first(), " (reply type only)"),
            Check::Sorted => {
                (sorted_array(&expected) == sorted_array(&actual), " (array elements sorted before comparing)")
            }
            Check::Range(lo, hi) => {
                let in_range = |r: &[u8]| integer_reply(r).is_some_and(|n| (*lo..=*hi).contains(&n));
                match (in_range(&expected), in_range(&actual)) {
                    (true, true) => (true, ""),
                    (true, false) => (false, " (must be an integer in the range)"),
                    (false, _) => (false, " (must be an integer in the range; REDIS is not: fix the script)"),
                }
            }
        };
        if !same {
            if let Check::Sorted = check {
                // Show the sorted replies: the difference is then easy to see.
                let (expected, actual) = (sorted_array(&expected), sorted_array(&actual));
                report.fail(line, text, &expected, Ok(&actual), how);
            } else {
                report.fail(line, text, &expected, Ok(&actual), how);
            }
        }
        if let Some((expected_events, actual_events)) = &mut listeners {
            let marker = line.to_string();
            let expected = expected_events
                .events_before(marker.as_bytes())
                .unwrap_or_else(|e| panic!("{}:{line}: redis-server's keyspace events: {e}", script.file));
            report.compared += 1;
            match actual_events.events_before(marker.as_bytes()) {
                Ok(actual) if actual == expected => {}
                Ok(actual) => report.fail(line, text, &expected.concat(), Ok(&actual.concat()), " (keyspace events)"),
                Err(e) => {
                    report.fail(line, text, &expected.concat(), Err(e.to_string()), " (keyspace events)");
                    report.note("keyspace events were not compared after this line: the listener broke");
                    listeners = None;
                }
            }
        }
    }
    report.finish();
}

/// What `!events` compares: a connection subscribed to every keyspace notification (and to
/// the marker channel), and one that publishes the markers.
struct Listener {
    subscriber: common::Raw,
    control: common::Raw,
}

impl Listener {
    const MARKER: &[u8] = b"__marker__";

    fn new(server: &Server) -> std::io::Result<Listener> {
        let mut subscriber = server.raw();
        subscriber.set_read_timeout(Duration::from_secs(5));
        subscriber.try_cmd(&[b"PSUBSCRIBE", b"__key*__:*"])?;
        subscriber.try_cmd(&[b"SUBSCRIBE", Listener::MARKER])?;
        let control = server.raw();
        control.set_read_timeout(Duration::from_secs(5));
        Ok(Listener { subscriber, control })
    }

    /// Publishes `marker` and returns every message the subscriber received before it, each
    /// as raw RESP.
    fn events_before(&mut self, marker: &[u8]) -> std::io::Result<Vec<Vec<u8>>> {
        self.control.try_cmd(&[b"PUBLISH", Listener::MARKER, marker])?;
        // A message is written like a command: an array of bulk strings.
        let expect = common::Raw::encode(&[b"message", Listener::MARKER, marker]);
        let mut events = Vec::new();
        loop {
            let msg = self.subscriber.try_read_reply()?;
            if msg == expect {
                return Ok(events);
            }
            events.push(msg);
        }
    }
}

fn integer_reply(reply: &[u8]) -> Option<i64> {
    std::str::from_utf8(reply.strip_prefix(b":")?.strip_suffix(b"\r\n")?).ok()?.parse().ok()
}

/// The reply with the elements of a top-level array or set sorted; other replies unchanged.
fn sorted_array(reply: &[u8]) -> Vec<u8> {
    if !matches!(reply.first(), Some(b'*' | b'~')) {
        return reply.to_vec();
    }
    let Some(header_end) = reply.windows(2).position(|w| w == b"\r\n").map(|p| p + 2) else {
        return reply.to_vec();
    };
    let mut elements = Vec::new();
    let mut pos = header_end;
    while pos < reply.len() {
        match reply_end(reply, pos) {
            Some(end) => {
                elements.push(&reply[pos..end]);
                pos = end;
            }
            None => return reply.to_vec(),
        }
    }
    elements.sort();
    let mut out = reply[..header_end].to_vec();
    elements.iter().for_each(|e| out.extend_from_slice(e));
    out
}

/// The end of the RESP value that starts at `pos`, or None if it is malformed.
fn reply_end(buf: &[u8], pos: usize) -> Option<usize> {
    let line_end = pos + buf.get(pos..)?.windows(2).position(|w| w == b"\r\n")?;
    let after = line_end + 2;
    let n = || -> Option<i64> { std::str::from_utf8(&buf[pos + 1..line_end]).ok()?.parse().ok() };
    match buf[pos] {
        b'$' | b'=' | b'!' => match n()? {
            n if n < 0 => Some(after),
            n => Some(after + n as usize + 2).filter(|&end| end <= buf.len()),
        },
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let count = n()?.max(0) * if matches!(buf[pos], b'%' | b'|') { 2 } else { 1 };
            let mut end = after;
            for _ in 0..count {
                end = reply_end(buf, end)?;
            }
            Some(end)
        }
        _ => Some(after),
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting

struct Report {
    label: String,
    target: &'static str,
    compared: usize,
    failures: usize,
    text: String,
}

impl Report {
    fn new(label: String, target: &'static str) -> Report {
        Report { label, target, compared: 0, failures: 0, text: String::new() }
    }

    fn fail(&mut self, line: usize, command: &str, expected: &[u8], actual: Result<&[u8], String>, how: &str) {
        self.failures += 1;
        let file = self.label.split(' ').next().unwrap_or("");
        if line == 0 {
            let _ = writeln!(self.text, "\n{file} (setup): {command}{how}");
        } else {
            let _ = writeln!(self.text, "\n{file}:{line}: {command}{how}");
        }
        let _ = writeln!(self.text, "    redis:  {}", escape(expected));
        match actual {
            Ok(actual) => {
                let _ = writeln!(self.text, "    {:<7} {}", format!("{}:", self.target), escape(actual));
                if expected.len().max(actual.len()) > SHOWN {
                    let at = expected.iter().zip(actual).position(|(a, b)| a != b);
                    let at = at.unwrap_or(expected.len().min(actual.len()));
                    let _ = writeln!(self.text, "    first difference at byte {at}");
                }
            }
            Err(e) => {
                let _ = writeln!(self.text, "    {:<7} no reply: {e}", format!("{}:", self.target));
            }
        }
    }

    fn note(&mut self, note: &str) {
        let _ = writeln!(self.text, "\n{note}");
    }

    /// Passes quietly, or fails the test with every mismatch found.
    fn finish(&self) {
        if self.failures == 0 {
            eprintln!("{}: {} replies compared, all identical", self.label, self.compared);
            return;
        }
        panic!(
            "{}: {} of {} replies differ between redis-server and {}:\n{}",
            self.label, self.failures, self.compared, self.target, self.text
        );
    }
}

const SHOWN: usize = 300;

/// The bytes as a quoted string: printable ASCII as is, the rest escaped; long replies cut.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes.iter().take(SHOWN) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
    if bytes.len() > SHOWN {
        let _ = write!(out, "... ({} bytes in all)", bytes.len());
    }
    out
}
