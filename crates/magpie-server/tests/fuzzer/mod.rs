//! Command-level fuzzing support, shared by `tests/fuzz_commands.rs` (Magpie against itself:
//! crashes, hangs, malformed replies, broken invariants, a log that replays differently) and
//! `tests/differential.rs` (Magpie against redis-server, reply for reply).
//!
//! - [`Rng`]: a seeded generator (SplitMix64), so a run is repeatable from its seed.
//! - [`Conn`]: a raw connection with a strict RESP2/RESP3 reader ([`Resp`]) that turns a
//!   malformed reply, a closed connection or a timeout into an error instead of a panic.
//! - [`Spec`] and [`Generator`]: commands built from the server's own command table
//!   (`COMMAND` for names, arities and flags; `COMMAND DOCS` for argument shapes), with values
//!   drawn from pools of edge cases, and some noise on top (arguments dropped, repeated,
//!   swapped or replaced).
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Random numbers

/// SplitMix64: tiny, seedable, good enough to pick commands.
#[derive(Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub(crate) fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A count that is usually small and sometimes large (up to `max`).
    pub(crate) fn count(&mut self, max: usize) -> usize {
        match self.below(100) {
            0..=69 => 1 + self.below(3),
            70..=94 => 1 + self.below(12.min(max)),
            _ => 1 + self.below(max),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

/// One reply, as parsed by [`Conn::read`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Resp {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or RESP3's `_`.
    Null,
    Array(Vec<Resp>),
    Map(Vec<(Resp, Resp)>),
    Set(Vec<Resp>),
    Double(Vec<u8>),
    Bool(bool),
    BigNum(Vec<u8>),
    /// The text after the `xxx:` format prefix.
    Verbatim(Vec<u8>),
    Push(Vec<Resp>),
}

impl Resp {
    pub(crate) fn is_error(&self) -> bool {
        matches!(self, Resp::Error(_))
    }

    /// The error text, if this is an error.
    pub(crate) fn error(&self) -> Option<&[u8]> {
        match self {
            Resp::Error(e) => Some(e),
            _ => None,
        }
    }

    /// The elements of an array, set or push; a map's keys and values in turn.
    pub(crate) fn items(&self) -> Option<Vec<&Resp>> {
        match self {
            Resp::Array(v) | Resp::Set(v) | Resp::Push(v) => Some(v.iter().collect()),
            Resp::Map(m) => Some(m.iter().flat_map(|(k, v)| [k, v]).collect()),
            _ => None,
        }
    }

    /// The bytes of a bulk, simple or verbatim string.
    pub(crate) fn bytes(&self) -> Option<&[u8]> {
        match self {
            Resp::Bulk(b) | Resp::Simple(b) | Resp::Verbatim(b) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn int(&self) -> Option<i64> {
        match self {
            Resp::Int(n) => Some(*n),
            _ => None,
        }
    }
}

/// Why a reply could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Nothing (or not all of it) arrived within the read timeout.
    Timeout,
    /// The server closed the connection.
    Closed(String),
    /// Bytes that are not RESP.
    Garbage(String),
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Timeout => write!(f, "no reply within the timeout"),
            ReadError::Closed(what) => write!(f, "connection closed ({what})"),
            ReadError::Garbage(what) => write!(f, "malformed reply: {what}"),
            ReadError::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ReadError::Timeout,
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => ReadError::Closed(e.to_string()),
            _ => ReadError::Io(e),
        }
    }
}

/// A raw connection: commands out as RESP multibulks (or inline), replies in, checked.
pub(crate) struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

/// Replies larger than this are taken for garbage (no command of a fuzz run returns more).
const MAX_BULK: i64 = 1 << 30;
/// Aggregates nested deeper than this are taken for garbage.
const MAX_DEPTH: usize = 64;

impl Conn {
    pub(crate) fn connect(port: u16) -> io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(Conn { reader: BufReader::new(stream.try_clone()?), stream })
    }

    pub(crate) fn set_read_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).ok();
    }

    pub(crate) fn encode(out: &mut Vec<u8>, args: &[Vec<u8>]) {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
    }

    pub(crate) fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    pub(crate) fn send(&mut self, commands: &[Vec<Vec<u8>>]) -> io::Result<()> {
        let mut out = Vec::new();
        for c in commands {
            Conn::encode(&mut out, c);
        }
        self.send_raw(&out)
    }

    /// Sends one command and reads its reply.
    pub(crate) fn call(&mut self, args: &[&[u8]]) -> Result<Resp, ReadError> {
        let owned: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
        self.send(&[owned])?;
        Ok(self.read()?.0)
    }

    /// [`Conn::call`] with the arguments split on spaces.
    pub(crate) fn call_str(&mut self, line: &str) -> Result<Resp, ReadError> {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.call(&args)
    }

    /// Whether bytes (or the end of the stream) can be read without waiting past the read
    /// timeout: reading a reply then will not stop halfway.
    pub(crate) fn peek_ready(&mut self) -> bool {
        match self.reader.fill_buf() {
            Ok(_) => true,
            Err(e) => !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
        }
    }

    /// Reads one reply: the value and its exact bytes.
    pub(crate) fn read(&mut self) -> Result<(Resp, Vec<u8>), ReadError> {
        let mut raw = Vec::new();
        let value = self.read_value(&mut raw, 0)?;
        Ok((value, raw))
    }

    /// True when the server has closed the connection within `timeout` (EOF or reset).
    pub(crate) fn closed_within(&mut self, timeout: Duration) -> bool {
        self.set_read_timeout(timeout);
        let mut b = [0u8; 1];
        let closed = match self.reader.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
        };
        self.set_read_timeout(Duration::from_secs(10));
        closed
    }

    fn line(&mut self, raw: &mut Vec<u8>) -> Result<Vec<u8>, ReadError> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(ReadError::Closed("EOF before a reply".into()));
        }
        raw.extend_from_slice(&line);
        if !line.ends_with(b"\r\n") {
            return Err(ReadError::Closed(format!("EOF inside a reply line: {}", show(&line))));
        }
        line.truncate(line.len() - 2);
        if line.contains(&b'\r') {
            return Err(ReadError::Garbage(format!("CR inside a reply line: {}", show(&line))));
        }
        Ok(line)
    }

    fn read_value(&mut self, raw: &mut Vec<u8>, depth: usize) -> Result<Resp, ReadError> {
        if depth > MAX_DEPTH {
            return Err(ReadError::Garbage("replies nested too deep".into()));
        }
        let line = self.line(raw)?;
        let Some((&kind, rest)) = line.split_first() else {
            return Err(ReadError::Garbage("empty reply line".into()));
        };
        let garbage = |what: &str| ReadError::Garbage(format!("{what}: {}", show(&line)));
        let int = || -> Result<i64, ReadError> {
            let text = std::str::from_utf8(rest).map_err(|_| garbage("not a number"))?;
            let canonical = text == "0" || (!text.starts_with('0') && !text.starts_with("-0") && !text.is_empty());
            let n: i64 = text.parse().map_err(|_| garbage("not a number"))?;
            if !canonical || text.starts_with('+') {
                return Err(garbage("number not in canonical form"));
            }
            Ok(n)
        };
        let count = |n: i64| -> Result<usize, ReadError> {
            if !(0..=MAX_BULK).contains(&n) {
                return Err(garbage("implausible length"));
            }
            Ok(n as usize)
        };
        Ok(match kind {
            b'+' => Resp::Simple(rest.to_vec()),
            b'-' => {
                // An error starts with its code: ERR, WRONGTYPE, ...
                let code = rest.split(|&c| c == b' ').next().unwrap_or_default();
                if code.is_empty() || !code.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_') {
                    return Err(garbage("error without an upper-case code"));
                }
                Resp::Error(rest.to_vec())
            }
            b':' => Resp::Int(int()?),
            b'$' | b'=' => {
                let n = int()?;
                if n == -1 && kind == b'$' {
                    return Ok(Resp::Null);
                }
                let n = count(n)?;
                let mut body = vec![0u8; n + 2];
                self.reader.read_exact(&mut body)?;
                raw.extend_from_slice(&body);
                if !body.ends_with(b"\r\n") {
                    return Err(garbage("bulk string not followed by CRLF"));
                }
                body.truncate(n);
                if kind == b'=' {
                    if body.len() < 4 || body[3] != b':' {
                        return Err(garbage("verbatim string without its format"));
                    }
                    Resp::Verbatim(body[4..].to_vec())
                } else {
                    Resp::Bulk(body)
                }
            }
            b'*' | b'~' | b'>' => {
                let n = int()?;
                if n == -1 && kind == b'*' {
                    return Ok(Resp::Null);
                }
                let n = count(n)?;
                let mut items = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    items.push(self.read_value(raw, depth + 1)?);
                }
                match kind {
                    b'*' => Resp::Array(items),
                    b'~' => Resp::Set(items),
                    _ => Resp::Push(items),
                }
            }
            b'%' | b'|' => {
                let n = count(int()?)?;
                let mut pairs = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let k = self.read_value(raw, depth + 1)?;
                    let v = self.read_value(raw, depth + 1)?;
                    pairs.push((k, v));
                }
                if kind == b'|' {
                    // Attributes come before the reply they describe.
                    return self.read_value(raw, depth);
                }
                Resp::Map(pairs)
            }
            b'_' if rest.is_empty() => Resp::Null,
            b'#' => match rest {
                b"t" => Resp::Bool(true),
                b"f" => Resp::Bool(false),
                _ => return Err(garbage("bad boolean")),
            },
            b',' => {
                let text = std::str::from_utf8(rest).map_err(|_| garbage("bad double"))?;
                let ok = matches!(text, "inf" | "-inf" | "nan") || text.parse::<f64>().is_ok_and(f64::is_finite);
                if !ok {
                    return Err(garbage("bad double"));
                }
                Resp::Double(rest.to_vec())
            }
            b'(' => {
                let digits = rest.strip_prefix(b"-").unwrap_or(rest);
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(garbage("bad big number"));
                }
                Resp::BigNum(rest.to_vec())
            }
            _ => return Err(garbage("unknown reply type")),
        })
    }
}

/// Bytes for a message: printable ASCII as is, the rest escaped, long ones cut.
pub(crate) fn show(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes.iter().take(200) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > 200 {
        out.push_str(&format!("...({} bytes)", bytes.len()));
    }
    out
}

/// A command line for a message, quoted as redis-cli would accept it.
pub(crate) fn show_command(args: &[Vec<u8>]) -> String {
    args.iter().map(|a| format!("\"{}\"", show(a))).collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// The command table, as the server describes it

/// What COMMAND DOCS says an argument is.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Key,
    Str,
    Int,
    Double,
    Pattern,
    UnixTime,
    PureToken,
    OneOf(Vec<ArgSpec>),
    Block(Vec<ArgSpec>),
}

#[derive(Clone, Debug)]
pub(crate) struct ArgSpec {
    pub name: String,
    pub kind: Kind,
    pub token: Option<String>,
    pub optional: bool,
    pub multiple: bool,
}

/// One command or subcommand: the words that name it (`["CLIENT", "SETNAME"]`), its arity,
/// flags and arguments.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub words: Vec<String>,
    /// The full name in lower case (`client|setname`).
    pub name: String,
    pub arity: i64,
    pub flags: Vec<String>,
    /// COMMAND DOCS's group: `string`, `list`, `sorted-set`, `generic`, ...
    pub group: String,
    pub args: Vec<ArgSpec>,
}

impl Spec {
    pub(crate) fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Every token (`NX`, `WITHSCORES`, ...) its arguments know, for noise.
    fn tokens(&self) -> Vec<String> {
        fn walk(args: &[ArgSpec], out: &mut Vec<String>) {
            for a in args {
                if let Some(t) = &a.token {
                    out.push(t.clone());
                }
                if let Kind::OneOf(c) | Kind::Block(c) = &a.kind {
                    walk(c, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.args, &mut out);
        out
    }
}

/// Pairs of a map reply, or of a RESP2 flat array read as one.
fn pairs(r: &Resp) -> Vec<(&Resp, &Resp)> {
    match r {
        Resp::Map(m) => m.iter().map(|(k, v)| (k, v)).collect(),
        Resp::Array(v) => v.chunks(2).filter(|c| c.len() == 2).map(|c| (&c[0], &c[1])).collect(),
        _ => Vec::new(),
    }
}

fn text(r: &Resp) -> String {
    String::from_utf8_lossy(r.bytes().unwrap_or_default()).into_owned()
}

fn parse_doc_args(r: &Resp) -> Vec<ArgSpec> {
    let Some(items) = r.items() else { return Vec::new() };
    items
        .into_iter()
        .map(|a| {
            let (mut name, mut kind, mut token, mut optional, mut multiple) =
                (String::new(), "string".to_string(), None, false, false);
            let mut children = Vec::new();
            for (k, v) in pairs(a) {
                match text(k).as_str() {
                    "name" => name = text(v),
                    "type" => kind = text(v),
                    "token" => token = Some(text(v)),
                    "flags" => {
                        for f in v.items().unwrap_or_default() {
                            optional |= text(f) == "optional";
                            multiple |= text(f) == "multiple";
                        }
                    }
                    "arguments" => children = parse_doc_args(v),
                    _ => {}
                }
            }
            let kind = match kind.as_str() {
                "key" => Kind::Key,
                "integer" => Kind::Int,
                "double" => Kind::Double,
                "pattern" => Kind::Pattern,
                "unix-time" => Kind::UnixTime,
                "pure-token" => Kind::PureToken,
                "oneof" => Kind::OneOf(children),
                "block" => Kind::Block(children),
                _ => Kind::Str,
            };
            ArgSpec { name, kind, token, optional, multiple }
        })
        .collect()
}

/// Reads the command table of the server behind `conn` (RESP2 or RESP3) through `COMMAND`
/// and `COMMAND DOCS`: every command and subcommand.
pub(crate) fn load_specs(conn: &mut Conn) -> Vec<Spec> {
    let info = conn.call(&[b"COMMAND"]).expect("COMMAND");
    let docs = conn.call(&[b"COMMAND", b"DOCS"]).expect("COMMAND DOCS");
    type Docs = std::collections::HashMap<String, (Vec<ArgSpec>, String)>;
    let mut doc_args = Docs::new();
    fn collect_docs(docs: &Resp, out: &mut Docs) {
        for (name, doc) in pairs(docs) {
            let mut entry = (Vec::new(), String::new());
            for (k, v) in pairs(doc) {
                match text(k).as_str() {
                    "arguments" => entry.0 = parse_doc_args(v),
                    "group" => entry.1 = text(v),
                    "subcommands" => collect_docs(v, out),
                    _ => {}
                }
            }
            out.insert(text(name).to_lowercase(), entry);
        }
    }
    collect_docs(&docs, &mut doc_args);
    let mut specs = Vec::new();
    fn collect_info(entry: &Resp, docs: &Docs, out: &mut Vec<Spec>) {
        let Some(fields) = entry.items() else { return };
        let name = text(fields[0]).to_lowercase();
        let arity = fields[1].int().unwrap_or(-1);
        let flags = fields[2].items().unwrap_or_default().into_iter().map(text).collect();
        let subcommands = fields.get(9).and_then(|s| s.items()).unwrap_or_default();
        // Containers (CLIENT, CONFIG, ...) too: alone, or with noise for a subcommand.
        let words = name.split('|').map(str::to_uppercase).collect();
        let (args, group) = docs.get(&name).cloned().unwrap_or_default();
        out.push(Spec { words, name: name.clone(), arity, flags, group, args });
        for sub in subcommands {
            collect_info(sub, docs, out);
        }
    }
    for entry in info.items().expect("COMMAND replies an array") {
        collect_info(entry, &doc_args, &mut specs);
    }
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    specs
}

// ---------------------------------------------------------------------------------------------
// Values

/// Integers at the edges of every range a command checks.
pub(crate) const EDGE_INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "-2",
    "3",
    "5",
    "10",
    "-10",
    "100",
    "-100",
    "128",
    "129",
    "512",
    "513",
    "1000",
    "65535",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "-9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "4611686018427387903",
    "4611686018427387904",
    "-4611686018427387904",
    "-4611686018427387905",
    "99999999999999999999999",
    "9223372036854775",
    "9223372036854776",
    "",
    " 1",
    "1 ",
    "+1",
    "-0",
    "007",
    "0x10",
    "1.5",
    "1e3",
    "abc",
    "\u{0}",
    "1\u{0}",
    "1\u{0}abc",
];

/// Floats, and the range syntax of sorted sets.
pub(crate) const EDGE_FLOATS: &[&str] = &[
    "0",
    "-0",
    "0.0",
    "1",
    "-1",
    "1.5",
    "-1.5",
    "0.1",
    "0.2",
    "3.0e2",
    "1e-5",
    ".5",
    "5.",
    "1e308",
    "-1e308",
    "1.7976931348623157e308",
    "1e309",
    "-1e309",
    "4.9e-324",
    "2.2250738585072014e-308",
    "inf",
    "-inf",
    "+inf",
    "Infinity",
    "-Infinity",
    "nan",
    "NaN",
    "-nan",
    "(1",
    "(-1",
    "(inf",
    "(-inf",
    "(nan",
    "(",
    "((1",
    "9007199254740993",
    "1.1e4932",
    "0x1p3",
    "1e",
    "",
    " 1",
    "1 ",
    "abc",
    "12345678901234567890",
    "1\u{0}",
    "1.5\u{0}x",
    "(1\u{0}",
];

/// Lexicographic range bounds.
pub(crate) const EDGE_LEX: &[&str] =
    &["-", "+", "[a", "(a", "[b", "(c", "[", "(", "[m1", "(m5", "a", "", "[\u{0}", "(\u{ff}"];

pub(crate) const PATTERNS: &[&str] = &[
    "*",
    "a*",
    "*a",
    "?",
    "??",
    "[a-c]*",
    "[^a]*",
    "[z-a]*",
    "[",
    "[a",
    "\\",
    "\\*",
    "*\\",
    "a\\",
    "k*",
    "{x}*",
    "*[",
    "[]",
    "[^]",
    "*?*?*",
    "h[ae-]llo",
    "[\\]]",
    "***a",
    "",
];

/// Element, member, field and value strings.
pub(crate) const STRINGS: &[&str] = &[
    "a",
    "b",
    "c",
    "x",
    "y",
    "z",
    "m1",
    "m2",
    "m3",
    "m5",
    "0",
    "1",
    "2",
    "10",
    "-1",
    "-5",
    "100",
    "1.5",
    "-0",
    "007",
    "3.0e2",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "nan",
    "inf",
    "",
    " ",
    "a b",
    "\u{0}",
    "\r\n",
    "\u{0}x\u{0}",
    "caf\u{e9}",
];

/// Keys shared by every connection: few, so commands meet each other's values (and types).
pub(crate) const KEYS: &[&str] = &["a", "b", "c", "d", "k1", "k2", "{t}1", "{t}2", "", "\u{0}bin\u{ff}", "\r\n", "*?["];

/// Another value, of the kind the argument name or type asks for; `self_fuzz` allows short
/// expiries and long blocking timeouts (the differential run must be deterministic).
pub(crate) struct Generator {
    pub rng: Rng,
    /// Allow values whose effect depends on timing (short TTLs, blocking without a short
    /// timeout). False for differential runs.
    pub timing: bool,
    /// Unix time now, in seconds, for EXPIREAT-style arguments near the present.
    pub now_s: i64,
    /// The number of keys of the command being generated, for its WEIGHTS.
    numkeys: usize,
}

impl Generator {
    pub(crate) fn new(seed: u64, timing: bool) -> Generator {
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(1_700_000_000);
        Generator { rng: Rng::new(seed), timing, now_s, numkeys: 1 }
    }

    fn binary(&mut self) -> Vec<u8> {
        let n = self.rng.below(8);
        (0..n).map(|_| self.rng.next_u64() as u8).collect()
    }

    fn long_string(&mut self) -> Vec<u8> {
        let c = b"abcxyz0"[self.rng.below(7)];
        // Around the 64-byte limit of small encodings, or well past it.
        let n = *self.rng.pick(&[63, 64, 65, 100, 300, 5000]);
        vec![c; n]
    }

    /// A key: usually one of those the command's type works on (so that commands build on
    /// each other's values), else one shared by every type (for WRONGTYPE and conversions).
    pub(crate) fn key_for(&mut self, group: &str) -> Vec<u8> {
        if self.rng.percent(3) {
            return self.long_string();
        }
        let own: &[&str] = match group {
            "string" => &["s1", "s2", "s3"],
            "list" => &["l1", "l2", "l3"],
            "hash" => &["h1", "h2", "h3"],
            "set" => &["S1", "S2", "S3"],
            "sorted-set" => &["z1", "z2", "z3"],
            "stream" => &["x1", "x2", "x3"],
            _ => &[],
        };
        if !own.is_empty() && self.rng.percent(70) {
            return self.rng.pick(own).as_bytes().to_vec();
        }
        self.rng.pick(KEYS).as_bytes().to_vec()
    }

    pub(crate) fn key(&mut self) -> Vec<u8> {
        self.key_for("")
    }

    pub(crate) fn string(&mut self) -> Vec<u8> {
        match self.rng.below(100) {
            0..=54 => self.rng.pick(STRINGS).as_bytes().to_vec(),
            // Many distinct members, so that sets outgrow their small encodings.
            55..=79 => format!("m{}", self.rng.below(300)).into_bytes(),
            80..=86 => self.rng.below(1000).to_string().into_bytes(),
            87..=91 => self.binary(),
            92..=95 => self.long_string(),
            _ => self.int_text(),
        }
    }

    fn int_text(&mut self) -> Vec<u8> {
        if self.rng.percent(60) {
            let n = self.rng.below(21) as i64 - 10;
            return n.to_string().into_bytes();
        }
        self.rng.pick(EDGE_INTS).as_bytes().to_vec()
    }

    fn float_text(&mut self) -> Vec<u8> {
        match self.rng.below(100) {
            0..=39 => (self.rng.below(21) as i64 - 10).to_string().into_bytes(),
            40..=54 => format!("{}.{}", self.rng.below(100) as i64 - 50, self.rng.below(100)).into_bytes(),
            55..=64 => self.rng.pick(EDGE_LEX).as_bytes().to_vec(),
            _ => self.rng.pick(EDGE_FLOATS).as_bytes().to_vec(),
        }
    }

    /// Any value at all, for noise.
    pub(crate) fn anything(&mut self) -> Vec<u8> {
        match self.rng.below(6) {
            0 => self.key(),
            1 => self.string(),
            2 => self.int_text(),
            3 => self.float_text(),
            4 => self.rng.pick(PATTERNS).as_bytes().to_vec(),
            _ => self.binary(),
        }
    }

    /// A stream ID as the stream commands take them: explicit ones (mostly small, so that
    /// commands meet each other's entries), partial ones, the special `-`, `+`, `$`, `>`, `*`,
    /// `ms-*` and `(id`, and bad ones.
    fn stream_id(&mut self) -> Vec<u8> {
        const SPECIAL: &[&str] = &[
            "-",
            "+",
            "$",
            ">",
            "*",
            "0",
            "0-0",
            "0-1",
            "1-*",
            "18446744073709551615-18446744073709551615",
            "18446744073709551615",
            "18446744073709551616",
            "x",
            "",
            "1-x",
            "-1",
            " 1",
            "5--01",
        ];
        match self.rng.below(100) {
            0..=49 => format!("{}-{}", self.rng.below(60), self.rng.below(3)).into_bytes(),
            50..=64 => self.rng.below(60).to_string().into_bytes(),
            65..=72 => format!("({}-{}", self.rng.below(60), self.rng.below(3)).into_bytes(),
            73..=80 => format!("{}-*", 1 + self.rng.below(60)).into_bytes(),
            _ => self.rng.pick(SPECIAL).as_bytes().to_vec(),
        }
    }

    /// A value for the argument `name` of kind `kind`.
    fn value(&mut self, spec: &Spec, name: &str, kind: &Kind, token: Option<&str>) -> Vec<u8> {
        if self.rng.percent(4) {
            return self.anything();
        }
        let name = name.to_ascii_lowercase();
        if spec.group == "stream" {
            match name.as_str() {
                "=" | "~" => return name.into_bytes(),
                "id" | "start" | "end" | "threshold" | "last-id" | "lastid" | "max-deleted-id" | "$" => {
                    return self.stream_id();
                }
                "group" => return self.rng.pick(&["g1", "g2", "g3"]).as_bytes().to_vec(),
                "consumer" => return self.rng.pick(&["c1", "c2", "c3", ""]).as_bytes().to_vec(),
                "min-idle-time" | "ms" => {
                    return self.rng.pick(&["0", "0", "1", "100", "3600000", "-5", "x"]).as_bytes().to_vec();
                }
                "milliseconds" => return self.rng.pick(&["0", "1", "10", "100", "-1", "x"]).as_bytes().to_vec(),
                _ => {}
            }
        }
        match name.as_str() {
            "timeout" => return self.timeout(),
            "dst" | "src" => return self.key_for(&spec.group),
            "seconds" | "milliseconds" => return self.relative_expiry(name == "seconds"),
            "unix-time-seconds" => return self.absolute_expiry(true),
            "unix-time-milliseconds" => return self.absolute_expiry(false),
            "cursor" => {
                return if self.rng.percent(70) { b"0".to_vec() } else { self.int_text() };
            }
            "index" | "destination-db" if spec.name == "select" || token == Some("DB") => {
                return if self.rng.percent(85) { self.rng.below(4).to_string().into_bytes() } else { self.int_text() };
            }
            "protover" => {
                return if self.rng.percent(85) {
                    self.rng.pick(&["2", "3"]).as_bytes().to_vec()
                } else {
                    self.int_text()
                };
            }
            "min" | "max" if spec.name.contains("lex") => {
                return if self.rng.percent(80) {
                    self.rng.pick(EDGE_LEX).as_bytes().to_vec()
                } else {
                    self.anything()
                };
            }
            "start" | "stop" | "min" | "max" if spec.name == "zrange" || spec.name == "zrangestore" => {
                return match self.rng.below(3) {
                    0 => self.int_text(),
                    1 => self.float_text(),
                    _ => self.rng.pick(EDGE_LEX).as_bytes().to_vec(),
                };
            }
            "numkeys" => {
                return if self.rng.percent(20) { self.int_text() } else { b"1".to_vec() };
            }
            _ => {}
        }
        match kind {
            Kind::Key => self.key_for(&spec.group),
            Kind::Int => self.int_text(),
            Kind::Double => self.float_text(),
            Kind::Pattern => self.rng.pick(PATTERNS).as_bytes().to_vec(),
            Kind::UnixTime => {
                let seconds = self.rng.percent(50);
                self.absolute_expiry(seconds)
            }
            _ if spec.name == "config|set" || spec.name == "config|get" => self.config_word(&name),
            _ if spec.name.ends_with("|setname") || name == "clientname" => {
                self.rng.pick(&["fuzz", "", "a b", "x\n", "name-1"]).as_bytes().to_vec()
            }
            _ => {
                // Keys where a string is documented (ZRANGESTORE's dst and src) sometimes.
                if self.rng.percent(10) { self.key() } else { self.string() }
            }
        }
    }

    fn config_word(&mut self, name: &str) -> Vec<u8> {
        const PARAMS: &[&str] = &[
            "hz",
            "save",
            "appendonly",
            "appendfsync",
            "auto-aof-rewrite-percentage",
            "auto-aof-rewrite-min-size",
            "stop-writes-on-bgsave-error",
            "aof-load-truncated",
            "dir",
            "port",
            "nosuch",
            "*",
            "*a*",
        ];
        if name == "parameter" {
            return self.rng.pick(PARAMS).as_bytes().to_vec();
        }
        const VALUES: &[&str] =
            &["yes", "no", "1", "0", "100", "-1", "1 1", "", "everysec", "no", "1kb", "abc", "1000000"];
        self.rng.pick(VALUES).as_bytes().to_vec()
    }

    /// A blocking command's timeout: short ones in differential runs (and mostly in others),
    /// invalid ones, and in self-fuzzing now and then one that blocks for good.
    fn timeout(&mut self) -> Vec<u8> {
        const SHORT: &[&str] = &["0.001", "0.002", "0.01", "1e-3"];
        const BAD: &[&str] = &["-1", "-0.5", "abc", "", "nan", "inf", "-inf", "1e400", "9223372036854775808", "0x1"];
        match self.rng.below(100) {
            0..=84 => self.rng.pick(SHORT).as_bytes().to_vec(),
            85..=94 => self.rng.pick(BAD).as_bytes().to_vec(),
            _ if self.timing => self.rng.pick(&["0", "0.3", "2", "9223372036854775"]).as_bytes().to_vec(),
            _ => b"0.005".to_vec(),
        }
    }

    /// EX/PX/EXPIRE/SETEX amounts: in self-fuzzing short ones expire during the run; in
    /// differential runs only amounts whose outcome does not depend on when a command runs.
    fn relative_expiry(&mut self, seconds: bool) -> Vec<u8> {
        if self.timing && self.rng.percent(40) {
            let n = if seconds { 1 + self.rng.below(2) } else { 1 + self.rng.below(1500) };
            return n.to_string().into_bytes();
        }
        const STABLE: &[&str] = &[
            "100000",
            "3600",
            "0",
            "-1",
            "-100",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775",
            "9223372036854776",
            "9223372036854775808",
            "abc",
            "",
            "1.5",
        ];
        let v = self.rng.pick(STABLE);
        if *v == "100000" && !seconds {
            return b"100000000".to_vec();
        }
        v.as_bytes().to_vec()
    }

    fn absolute_expiry(&mut self, seconds: bool) -> Vec<u8> {
        let scale = if seconds { 1 } else { 1000 };
        match self.rng.below(10) {
            0..=3 => ((self.now_s + 100_000) * scale).to_string().into_bytes(),
            4 | 5 => (1 + self.rng.below(1000)).to_string().into_bytes(), // long past
            6 if self.timing => ((self.now_s + 1) * scale).to_string().into_bytes(),
            _ => self.int_text(),
        }
    }

    fn push_arg(&mut self, spec: &Spec, a: &ArgSpec, out: &mut Vec<Vec<u8>>) {
        let token = |g: &mut Generator, t: &str| -> Vec<u8> {
            // Tokens in any case, as Redis reads them.
            if g.rng.percent(20) { t.to_lowercase().into_bytes() } else { t.as_bytes().to_vec() }
        };
        match &a.kind {
            Kind::PureToken => {
                if let Some(t) = &a.token {
                    out.push(token(self, t));
                }
            }
            Kind::OneOf(children) => {
                if let Some(t) = &a.token {
                    out.push(token(self, t));
                }
                if !children.is_empty() {
                    let child = self.rng.pick(children).clone();
                    self.push_arg(spec, &child, out);
                }
            }
            Kind::Block(children) => {
                if let Some(t) = &a.token {
                    out.push(token(self, t));
                }
                for c in children.clone() {
                    self.push_one(spec, &c, out);
                }
            }
            kind => {
                if let Some(t) = &a.token {
                    out.push(token(self, t));
                }
                out.push(self.value(spec, &a.name, kind, a.token.as_deref()));
            }
        }
    }

    /// An argument with its optional and multiple flags applied.
    fn push_one(&mut self, spec: &Spec, a: &ArgSpec, out: &mut Vec<Vec<u8>>) {
        if a.optional && self.rng.percent(50) {
            return;
        }
        let times = if !a.multiple {
            1
        } else if a.name == "weight" && self.rng.percent(70) {
            self.numkeys
        } else {
            self.rng.count(200)
        };
        // A multiple token-led argument (`WEIGHTS weight ...`) repeats its value, not its token.
        if a.multiple && a.token.is_some() && !matches!(a.kind, Kind::Block(_) | Kind::OneOf(_) | Kind::PureToken) {
            out.push(a.token.clone().unwrap_or_default().into_bytes());
            for _ in 0..times {
                out.push(self.value(spec, &a.name, &a.kind, a.token.as_deref()));
            }
            return;
        }
        for _ in 0..times {
            self.push_arg(spec, a, out);
        }
    }

    /// A command for `spec`: its name words and arguments, mostly well formed.
    pub(crate) fn command(&mut self, spec: &Spec) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = spec.words.iter().map(|w| w.as_bytes().to_vec()).collect();
        if self.rng.percent(10) {
            // Command names are case-insensitive.
            out[0] = out[0].to_ascii_lowercase();
        }
        let fixed = out.len();
        // Where the `numkeys` argument is, while the keys it counts are being generated.
        let mut numkeys_at = None;
        self.numkeys = 1;
        for a in &spec.args {
            let before = out.len();
            self.push_one(spec, a, &mut out);
            if a.name == "numkeys" {
                // Usually the count of the keys that follow, not a random number.
                numkeys_at = (out.len() == before + 1 && self.rng.percent(80)).then_some(before);
                continue;
            }
            match (numkeys_at, &a.kind) {
                (Some(at), Kind::Key) => {
                    let current: usize = if at + 1 == before {
                        0
                    } else {
                        std::str::from_utf8(&out[at]).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
                    };
                    self.numkeys = current + out.len() - before;
                    out[at] = self.numkeys.to_string().into_bytes();
                }
                _ => numkeys_at = None,
            }
        }
        if matches!(spec.name.as_str(), "xread" | "xreadgroup") && self.rng.percent(80) {
            balance_streams(&mut out);
        }
        if self.rng.percent(12) {
            self.noise(spec, &mut out, fixed);
        }
        if self.rng.percent(1) {
            // A command that does not exist: its error quotes the name and arguments. (Not a
            // real name followed by NUL: Redis finds "GET\0" as GET in about one process of 60,
            // when its random hash seed puts it in GET's bucket, whose name `strcasecmp` then
            // matches up to the NUL; see docs/compatibility.md.)
            const UNKNOWN: &[&[u8]] =
                &[b"FOO", b"", b"\0GET", b"G\r\nET", b"getx", b"\xff\xfe", b"set ", b"-", b"*1", b"CLIENTS"];
            out[0] = if self.rng.percent(10) { self.long_string() } else { self.rng.pick(UNKNOWN).to_vec() };
        }
        if !self.timing {
            tame_timeout(&mut out);
            tame_expiry(&mut out);
            tame_stream(&mut out);
        }
        out
    }

    /// `cmd` run by a script instead (`EVAL "return redis.pcall(unpack(ARGV))" 0 cmd...`), so
    /// that every command also goes through `redis.call`: the scripting layer's checks, the
    /// reply's trip through Lua and back (in RESP2 or RESP3), the non-blocking forms of
    /// blocking commands, and the script's effects in the log.
    pub(crate) fn in_script(&mut self, cmd: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        const SCRIPTS: &[&str] = &[
            "return redis.pcall(unpack(ARGV))",
            "return redis.call(unpack(ARGV))",
            "redis.setresp(3) return redis.pcall(unpack(ARGV))",
        ];
        let mut out = vec![b"EVAL".to_vec(), self.rng.pick(SCRIPTS).as_bytes().to_vec(), b"0".to_vec()];
        out.extend(cmd);
        out
    }

    /// Commands that fill the typed keys with values of every shape: small and big encodings,
    /// integers and not, long elements. A run starts with them (and a differential run again
    /// after each flush), so that commands meet more than the few elements they add themselves.
    pub(crate) fn setup(&mut self) -> Vec<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let cmd = |words: &[&[u8]]| words.iter().map(|w| w.to_vec()).collect::<Vec<Vec<u8>>>();
        out.push(cmd(&[b"SET", b"s1", b"123"]));
        out.push(cmd(&[b"SET", b"s2", b"hello"]));
        out.push(cmd(&[b"SET", b"s3", &[b'v'; 100]]));
        for (key, n) in [(b"l1", 5usize), (b"l2", 1 + self.rng.below(400)), (b"l3", 1 + self.rng.below(20))] {
            let mut c = cmd(&[b"RPUSH", key]);
            for i in 0..n {
                c.push(match self.rng.below(4) {
                    0 => i.to_string().into_bytes(),
                    1 => self.string(),
                    2 => format!("m{}", i % 50).into_bytes(),
                    _ => self.rng.pick(STRINGS).as_bytes().to_vec(),
                });
            }
            out.push(c);
        }
        for (key, n) in [(b"h1", 5usize), (b"h2", 100 + self.rng.below(100)), (b"h3", 1 + self.rng.below(20))] {
            let mut c = cmd(&[b"HSET", key]);
            for i in 0..n {
                c.push(format!("m{i}").into_bytes());
                let v = self.string();
                c.push(v);
            }
            out.push(c);
        }
        for (key, n, ints) in
            [(b"S1", 10usize, true), (b"S2", 400 + self.rng.below(300), true), (b"S3", 1 + self.rng.below(200), false)]
        {
            let mut c = cmd(&[b"SADD", key]);
            for i in 0..n {
                c.push(if ints { (i as i64 - 5).to_string().into_bytes() } else { self.string() });
            }
            out.push(c);
        }
        for (key, n) in [(b"z1", 10usize), (b"z2", 100 + self.rng.below(100)), (b"z3", 1 + self.rng.below(30))] {
            let mut c = cmd(&[b"ZADD", key]);
            for i in 0..n {
                c.push(match self.rng.below(4) {
                    0 => (i % 7).to_string().into_bytes(),
                    1 => format!("{}.5", i as i64 - 20).into_bytes(),
                    _ => i.to_string().into_bytes(),
                });
                c.push(if self.rng.percent(80) { format!("m{i}").into_bytes() } else { self.string() });
            }
            out.push(c);
        }
        // Streams: one small, one of several nodes (with tombstones), one with fields that
        // vary; a group with pending entries of two consumers.
        for (key, n) in
            [(b"x1", 5u64), (b"x2", 150 + self.rng.below(100) as u64), (b"x3", 1 + self.rng.below(20) as u64)]
        {
            for i in 1..=n {
                let v = self.string();
                let mut c = cmd(&[b"XADD", key, format!("{}-{}", i / 3, i % 3).as_bytes(), b"f", &v]);
                if i % 4 == 0 {
                    c.push(format!("m{}", i % 7).into_bytes());
                    c.push(i.to_string().into_bytes());
                }
                out.push(c);
            }
        }
        out.push(cmd(&[b"XDEL", b"x2", b"3-0", b"10-1", b"30-2"]));
        out.push(cmd(&[b"XGROUP", b"CREATE", b"x1", b"g1", b"0"]));
        out.push(cmd(&[b"XGROUP", b"CREATE", b"x2", b"g1", b"0"]));
        out.push(cmd(&[b"XGROUP", b"CREATE", b"x2", b"g2", b"$"]));
        out.push(cmd(&[b"XREADGROUP", b"GROUP", b"g1", b"c1", b"COUNT", b"3", b"STREAMS", b"x1", b"x2", b">", b">"]));
        out.push(cmd(&[b"XREADGROUP", b"GROUP", b"g1", b"c2", b"COUNT", b"2", b"STREAMS", b"x2", b">"]));
        out
    }

    /// Breaks a well-formed command a little.
    fn noise(&mut self, spec: &Spec, out: &mut Vec<Vec<u8>>, fixed: usize) {
        let tokens = spec.tokens();
        for _ in 0..1 + self.rng.below(2) {
            let len = out.len();
            match self.rng.below(7) {
                0 if len > fixed => {
                    out.remove(fixed + self.rng.below(len - fixed));
                }
                1 if len > fixed => {
                    let i = fixed + self.rng.below(len - fixed);
                    let dup = out[i].clone();
                    out.insert(i, dup);
                }
                2 if len > fixed => {
                    let i = fixed + self.rng.below(len - fixed);
                    out[i] = self.anything();
                }
                3 if len > fixed + 1 => {
                    let i = fixed + self.rng.below(len - fixed);
                    let j = fixed + self.rng.below(len - fixed);
                    out.swap(i, j);
                }
                4 if !tokens.is_empty() => {
                    // A repeated or misplaced option.
                    let t = self.rng.pick(&tokens).clone().into_bytes();
                    let at = fixed + self.rng.below(len - fixed + 1);
                    out.insert(at, t);
                    if self.rng.percent(50) {
                        let v = self.anything();
                        out.insert(at + 1, v);
                    }
                }
                5 => out.truncate(fixed + self.rng.below(len - fixed + 1)),
                _ => {
                    let v = self.anything();
                    out.push(v);
                }
            }
        }
    }
}

/// Timeouts that end a blocking command at once: short ones, and invalid ones.
const QUICK_TIMEOUTS: &[&str] = &[
    "0.001",
    "0.002",
    "0.01",
    "1e-3",
    "0.005",
    "-1",
    "-0.5",
    "abc",
    "",
    "nan",
    "inf",
    "-inf",
    "1e400",
    "9223372036854775808",
];

/// Makes a blocking command's timeout (wherever noise left it) one that cannot block for
/// long: differential runs must not wait, and must not depend on timing.
fn tame_timeout(args: &mut [Vec<u8>]) {
    let name = args.first().map(|n| n.to_ascii_lowercase()).unwrap_or_default();
    let at = match name.as_slice() {
        b"blpop" | b"brpop" | b"blmove" | b"brpoplpush" | b"bzpopmin" | b"bzpopmax" => args.len().checked_sub(1),
        b"blmpop" | b"bzmpop" => Some(1),
        _ => None,
    };
    if let Some(t) = at.and_then(|at| args.get_mut(at))
        && at != Some(0)
        && !QUICK_TIMEOUTS.iter().any(|q| q.as_bytes() == t.as_slice())
    {
        *t = b"0.01".to_vec();
    }
}

/// Gives XREAD and XREADGROUP as many IDs as keys after STREAMS (the documentation's
/// `key [key ...] id [id ...]` draws the two counts apart).
fn balance_streams(args: &mut Vec<Vec<u8>>) {
    let Some(at) = args.iter().position(|a| a.eq_ignore_ascii_case(b"streams")) else { return };
    let rest = args.split_off(at + 1);
    let half = rest.len().div_ceil(2);
    let (keys, ids) = rest.split_at(half);
    let mut ids = ids.to_vec();
    ids.resize(keys.len(), b">".to_vec());
    args.extend_from_slice(keys);
    args.extend(ids);
}

/// Makes a stream command's outcome independent of the clock, for differential runs: no ID
/// from the time (`*` becomes `ms-*`), BLOCK only briefly, and idle times (XCLAIM's and
/// XAUTOCLAIM's minimum, XCLAIM's IDLE, XPENDING's IDLE) either 0 or far from any real one.
fn tame_stream(args: &mut [Vec<u8>]) {
    let name = args.first().map(|n| n.to_ascii_lowercase()).unwrap_or_default();
    if !name.starts_with(b"x") {
        return;
    }
    let idle = |a: &mut Vec<u8>| {
        let n: Option<i64> = std::str::from_utf8(a).ok().and_then(|t| t.parse().ok());
        if n.is_some_and(|n| n > 0) {
            *a = b"3600000".to_vec();
        }
    };
    match name.as_slice() {
        b"xadd" => {
            for a in args.iter_mut().skip(2) {
                if a.first() == Some(&b'*') {
                    *a = b"9-*".to_vec();
                }
            }
        }
        b"xclaim" | b"xautoclaim" => {
            if let Some(a) = args.get_mut(4) {
                idle(a);
            }
        }
        _ => {}
    }
    for i in 1..args.len() {
        let (before, after) = args.split_at_mut(i);
        let Some(next) = after.first_mut() else { continue };
        let prev = before[i - 1].to_ascii_lowercase();
        if prev == b"block" && matches!(name.as_slice(), b"xread" | b"xreadgroup") {
            let n: Option<i64> = std::str::from_utf8(next).ok().and_then(|t| t.parse().ok());
            if n.is_some_and(|n| n >= 0) {
                *next = b"10".to_vec();
            }
        } else if prev == b"idle" && matches!(name.as_slice(), b"xclaim" | b"xpending") {
            idle(next);
        }
    }
}

/// Makes a relative expiry (wherever noise put the number) one that cannot pass during a
/// differential run: when a key expires must not depend on how fast the servers answer.
fn tame_expiry(args: &mut [Vec<u8>]) {
    let name = args.first().map(|n| n.to_ascii_lowercase()).unwrap_or_default();
    let mut at: Vec<usize> = match name.as_slice() {
        b"setex" | b"psetex" | b"expire" | b"pexpire" => vec![2],
        _ => Vec::new(),
    };
    if matches!(name.as_slice(), b"set" | b"getex") {
        let tokens =
            args.iter().enumerate().filter(|(_, a)| a.eq_ignore_ascii_case(b"ex") || a.eq_ignore_ascii_case(b"px"));
        at.extend(tokens.map(|(i, _)| i + 1).collect::<Vec<_>>());
    }
    for i in at {
        let Some(arg) = args.get_mut(i) else { continue };
        let n: Option<i64> = std::str::from_utf8(arg).ok().and_then(|t| t.parse().ok());
        if n.is_some_and(|n| n > 0 && n < 100_000) {
            *arg = b"100000".to_vec();
        }
    }
}
