//! Incremental command decoder.
//!
//! A client's bytes arrive in arbitrary pieces. The decoder keeps its place (which argument of
//! which multibulk it is reading, and where) across calls, so each byte is examined once even
//! when a 512 MB argument arrives 16 KB at a time, and it never allocates according to a length
//! the client declared: argument positions grow as arguments actually arrive.
//!
//! Arguments are not copied: [`Args`] points into the caller's buffer (or, for inline commands
//! whose quotes and escapes had to be undone, into the decoder's scratch buffer).

use std::fmt;

use crate::Args;

/// Limits on what a client may send, checked before anything of that size is allocated.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest bulk argument accepted (Redis's `proto-max-bulk-len`, 512 MB by default).
    pub max_bulk_len: usize,
    /// Largest multibulk argument count accepted (Redis accepts up to `INT_MAX`).
    pub max_multibulk_len: usize,
    /// Largest inline command line, and largest `*`/`$` header line (Redis: 64 KB).
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bulk_len: 512 * 1024 * 1024, max_multibulk_len: i32::MAX as usize, max_inline_len: 64 * 1024 }
    }
}

/// A malformed request. Its text is what Redis replies before it closes the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(String);

impl ProtocolError {
    fn new(what: impl fmt::Display) -> Self {
        ProtocolError(format!("Protocol error: {what}"))
    }

    /// The error text without the `-ERR ` prefix, e.g. `Protocol error: invalid bulk length`.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Resumable decoder of client requests. See the module documentation.
#[derive(Debug, Default)]
pub struct Decoder {
    limits: Limits,
    /// Next byte of the buffer to examine.
    pos: usize,
    /// Where the command being read began (bytes before it may be discarded).
    start: usize,
    /// Arguments still to read of the current multibulk; `None` between commands.
    remaining: Option<usize>,
    /// Length of the bulk argument whose `$` header was read, while waiting for its body.
    bulk_len: Option<usize>,
    spans: Vec<(usize, usize)>,
    /// Inline commands: arguments after undoing quotes and escapes.
    scratch: Vec<u8>,
}

/// How many argument slots to reserve up front at most, whatever count the client declared.
const PREALLOC_ARGS: usize = 1024;

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder { limits, ..Decoder::default() }
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Decodes the next complete command in `buf`, continuing where the previous call stopped.
    /// Returns `Ok(None)` when more bytes are needed. `buf` must hold the same bytes as on the
    /// previous call (plus any appended), less the prefix released through [`Decoder::discard`].
    pub fn next<'a>(&'a mut self, buf: &'a [u8]) -> Result<Option<Args<'a>>, ProtocolError> {
        loop {
            let remaining = match self.remaining {
                Some(n) => n,
                None => {
                    self.spans.clear();
                    self.start = self.pos;
                    let Some(&first) = buf.get(self.pos) else { return Ok(None) };
                    if first != b'*' {
                        return match self.inline(buf)? {
                            Inline::Incomplete => Ok(None),
                            Inline::Empty => continue,
                            Inline::Command => Ok(Some(Args::new(&self.scratch, &self.spans))),
                        };
                    }
                    let Some((n, next)) = self.header(buf, "too big mbulk count string")? else {
                        return Ok(None);
                    };
                    self.pos = next;
                    if n > i64::try_from(self.limits.max_multibulk_len).unwrap_or(i64::MAX) {
                        return Err(ProtocolError::new("invalid multibulk length"));
                    }
                    let Ok(n) = usize::try_from(n) else { continue };
                    if n == 0 {
                        continue; // `*0` and `*-1` are empty requests: nothing to run
                    }
                    self.spans.reserve(n.min(PREALLOC_ARGS));
                    n
                }
            };
            let mut remaining = remaining;
            while remaining > 0 {
                let len = match self.bulk_len {
                    Some(len) => len,
                    None => {
                        let Some(&first) = buf.get(self.pos) else { return self.pause(remaining) };
                        if first != b'$' {
                            return Err(ProtocolError::new(format_args!("expected '$', got '{}'", char::from(first))));
                        }
                        let Some((n, next)) = self.header(buf, "too big bulk count string")? else {
                            return self.pause(remaining);
                        };
                        let len = usize::try_from(n)
                            .ok()
                            .filter(|&len| len <= self.limits.max_bulk_len)
                            .ok_or_else(|| ProtocolError::new("invalid bulk length"))?;
                        self.pos = next;
                        self.bulk_len = Some(len);
                        len
                    }
                };
                let body_end = self.pos + len;
                if buf.len() < body_end + 2 {
                    return self.pause(remaining);
                }
                if &buf[body_end..body_end + 2] != b"\r\n" {
                    return Err(ProtocolError::new("expected CRLF after bulk argument"));
                }
                self.spans.push((self.pos, body_end));
                self.pos = body_end + 2;
                self.bulk_len = None;
                remaining -= 1;
            }
            self.remaining = None;
            return Ok(Some(Args::new(buf, &self.spans)));
        }
    }

    fn pause<'a>(&mut self, remaining: usize) -> Result<Option<Args<'a>>, ProtocolError> {
        self.remaining = Some(remaining);
        Ok(None)
    }

    /// Bytes at the front of the buffer that belong to commands already returned: the caller
    /// may drop them, then must call [`Decoder::discard`] with the same count.
    pub fn consumed(&self) -> usize {
        if self.remaining.is_some() { self.start } else { self.pos }
    }

    /// Tells the decoder that the first `n` bytes (at most [`Decoder::consumed`]) were removed
    /// from the front of the buffer.
    pub fn discard(&mut self, n: usize) {
        debug_assert!(n <= self.consumed());
        self.pos -= n;
        self.start = self.start.saturating_sub(n);
        if self.remaining.is_some() {
            for span in &mut self.spans {
                span.0 -= n;
                span.1 -= n;
            }
        }
    }

    /// Bytes of the command currently being read that are already buffered (0 between
    /// commands); lets the connection enforce a query buffer limit.
    pub fn pending_len(&self, buf: &[u8]) -> usize {
        buf.len().saturating_sub(self.consumed())
    }

    /// Parses a `*<n>\r\n` or `$<n>\r\n` header at `pos`. Returns the number and the position
    /// after the line, or `None` if the line is not complete yet.
    #[inline(always)]
    fn header(&self, buf: &[u8], too_big: &str) -> Result<Option<(i64, usize)>, ProtocolError> {
        // Fast path: a short well-formed number ("$64\r\n"), parsed while scanned. Anything
        // else (a partial line, an error, a number of 19 digits or more) takes the general
        // path, which has the exact rules.
        let from = self.pos + 1;
        let (mut i, mut n) = (from, 0i64);
        let end = buf.len().min(from + 18);
        while i < end {
            let d = buf[i].wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            n = n * 10 + i64::from(d);
            i += 1;
        }
        if i > from && buf.get(i..i + 2) == Some(b"\r\n") && (buf[from] != b'0' || i == from + 1) {
            return Ok(Some((n, i + 2)));
        }
        self.header_general(buf, too_big)
    }

    #[cold]
    #[inline(never)]
    fn header_general(&self, buf: &[u8], too_big: &str) -> Result<Option<(i64, usize)>, ProtocolError> {
        let from = self.pos + 1;
        let Some(cr) = memchr::memchr(b'\r', &buf[from..]).map(|i| from + i) else {
            if buf.len() - self.pos > self.limits.max_inline_len {
                return Err(ProtocolError::new(too_big));
            }
            return Ok(None);
        };
        if cr + 1 >= buf.len() {
            return Ok(None); // the '\n' has not arrived yet
        }
        let invalid = || {
            if buf[self.pos] == b'*' {
                ProtocolError::new("invalid multibulk length")
            } else {
                ProtocolError::new("invalid bulk length")
            }
        };
        if buf[cr + 1] != b'\n' {
            return Err(invalid());
        }
        let n = parse_i64(&buf[from..cr]).ok_or_else(invalid)?;
        Ok(Some((n, cr + 2)))
    }

    /// Reads an inline command (a line of space-separated words, as typed into telnet).
    fn inline(&mut self, buf: &[u8]) -> Result<Inline, ProtocolError> {
        let rest = &buf[self.pos..];
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            if rest.len() > self.limits.max_inline_len {
                return Err(ProtocolError::new("too big inline request"));
            }
            return Ok(Inline::Incomplete);
        };
        if nl > self.limits.max_inline_len {
            return Err(ProtocolError::new("too big inline request"));
        }
        let line = rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]);
        self.scratch.clear();
        split_args(line, &mut self.scratch, &mut self.spans)
            .ok_or_else(|| ProtocolError::new("unbalanced quotes in request"))?;
        self.pos += nl + 1;
        Ok(if self.spans.is_empty() { Inline::Empty } else { Inline::Command })
    }
}

enum Inline {
    Incomplete,
    Empty,
    Command,
}

/// Parses an integer as Redis's `string2ll` does: optional '-', decimal digits, no '+', no
/// spaces, no leading zeros (so every accepted string is the canonical form of its number).
/// Used for protocol headers and for every integer argument and value.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] if !neg => return Some(0),
        [b'0', ..] => return None,
        _ => {}
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if neg { v.checked_sub(d)? } else { v.checked_add(d)? };
    }
    Some(v)
}

/// Splits an inline command line into arguments as Redis's `sdssplitargs` does: whitespace
/// separates words, "double quotes" understand `\n \r \t \b \a \\ \" \xHH`, 'single quotes'
/// understand `\'`, and a closing quote must be followed by whitespace or the end of the line.
/// Writes the arguments into `out`, their spans into `spans`; `None` if quotes are unbalanced.
pub(crate) fn split_args(line: &[u8], out: &mut Vec<u8>, spans: &mut Vec<(usize, usize)>) -> Option<()> {
    // C's isspace: skipped between words, and required after a closing quote.
    let is_space = |c: u8| matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c);
    // What ends an unquoted word: fewer bytes (a vertical tab or form feed stays in the word).
    // Redis also stops at NUL, because it reads the line as a C string and never sees past
    // it; here NUL is an ordinary byte of the word.
    let ends_word = |c: u8| matches!(c, b' ' | b'\n' | b'\r' | b'\t');
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(());
        }
        let start = out.len();
        let (mut in_dq, mut in_sq) = (false, false);
        loop {
            if in_dq {
                let &c = line.get(i)?;
                if c == b'\\'
                    && i + 3 < line.len()
                    && line[i + 1] == b'x'
                    && let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3]))
                {
                    out.push(h * 16 + l);
                    i += 4;
                    continue;
                }
                if c == b'\\' && i + 1 < line.len() {
                    out.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    // The closing quote must be followed by a space or nothing at all.
                    if i + 1 < line.len() && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                    i += 1;
                }
            } else if in_sq {
                let &c = line.get(i)?;
                if c == b'\\' && line.get(i + 1) == Some(&b'\'') {
                    out.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if i + 1 < line.len() && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    out.push(c);
                    i += 1;
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(&c) if ends_word(c) => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(&c) => out.push(c),
                }
                i += 1;
            }
        }
        spans.push((start, out.len()));
    }
}

/// Splits a line into arguments by the rules of inline commands (and of `redis-cli`'s prompt):
/// see [`split_args`]. `None` when quotes are unbalanced.
pub fn split_line(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let (mut out, mut spans) = (Vec::new(), Vec::new());
    split_args(line, &mut out, &mut spans)?;
    Some(spans.into_iter().map(|(s, e)| out[s..e].to_vec()).collect())
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
// Test generators draw numbers of every width on purpose.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn all(dec: &mut Decoder, buf: &[u8]) -> Result<Vec<Vec<String>>, ProtocolError> {
        let mut cmds = Vec::new();
        while let Some(args) = dec.next(buf)? {
            cmds.push(args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect());
        }
        Ok(cmds)
    }

    fn decode(buf: &[u8]) -> Result<Vec<Vec<String>>, ProtocolError> {
        all(&mut Decoder::default(), buf)
    }

    #[test]
    fn multibulk_and_pipelining() {
        let buf = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n";
        assert_eq!(decode(buf).unwrap(), vec![vec!["GET", "k"], vec!["SET", "k", ""]]);
    }

    #[test]
    fn resumes_byte_by_byte() {
        let buf = b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$5\r\nhello\r\nPING\r\n";
        let mut dec = Decoder::default();
        let mut got = Vec::new();
        for end in 0..=buf.len() {
            got.extend(all(&mut dec, &buf[..end]).unwrap());
        }
        assert_eq!(got, vec![vec!["SET", "k\r\n", "hello"], vec!["PING"]]);
    }

    #[test]
    fn discard_rebases_a_partial_command() {
        let mut dec = Decoder::default();
        let mut buf = b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$3\r\nfo".to_vec();
        assert_eq!(all(&mut dec, &buf).unwrap(), vec![vec!["PING"]]);
        let n = dec.consumed();
        assert_eq!(n, 14);
        buf.drain(..n);
        dec.discard(n);
        buf.extend_from_slice(b"o\r\n");
        assert_eq!(all(&mut dec, &buf).unwrap(), vec![vec!["GET", "foo"]]);
        assert_eq!(dec.consumed(), buf.len());
    }

    #[test]
    fn empty_multibulks_are_skipped() {
        assert_eq!(decode(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap(), vec![vec!["PING"]]);
    }

    #[test]
    fn inline_commands() {
        assert_eq!(decode(b"SET foo bar\r\n").unwrap(), vec![vec!["SET", "foo", "bar"]]);
        assert_eq!(decode(b"  ping  \n\r\n\n").unwrap(), vec![vec!["ping"]]);
        assert_eq!(decode(b"set \"a b\\x41\\n\" 'it\\'s'\r\n").unwrap(), vec![vec!["set", "a bA\n", "it's"]]);
        assert_eq!(decode(b"set \"\" x\n").unwrap(), vec![vec!["set", "", "x"]]);
        assert_eq!(decode(b"PING").unwrap(), Vec::<Vec<String>>::new());
        // Vertical tab and form feed separate words only where blanks are skipped.
        assert_eq!(decode(b"SET k a\x0bb\n").unwrap(), vec![vec!["SET", "k", "a\x0bb"]]);
        assert_eq!(decode(b"\x0cPING\n").unwrap(), vec![vec!["PING"]]);
    }

    #[test]
    fn split_line_follows_inline_rules() {
        let words = split_line(b"set \"a b\\x41\" 'it\\'s' plain").unwrap();
        assert_eq!(words, [&b"set"[..], b"a bA", b"it's", b"plain"]);
        assert_eq!(split_line(b"  "), Some(vec![]));
        assert_eq!(split_line(b"get \"open"), None);
    }

    #[test]
    fn nul_bytes_in_inline_commands_are_ordinary_bytes() {
        assert_eq!(decode(b"\x00\n").unwrap(), vec![vec!["\0"]]);
        assert_eq!(decode(b"PING\x00x\r\nPING\n").unwrap(), vec![vec!["PING\0x"], vec!["PING"]]);
    }

    #[test]
    fn protocol_errors_match_redis() {
        let err = |b: &[u8]| decode(b).unwrap_err().message().to_owned();
        assert_eq!(err(b"*x\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*3000000000\r\n"), "Protocol error: invalid multibulk length");
        assert_eq!(err(b"*1\r\n:1\r\n"), "Protocol error: expected '$', got ':'");
        assert_eq!(err(b"*1\r\n$-1\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$01\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(err(b"*1\r\n$536870913\r\n"), "Protocol error: invalid bulk length");
        assert_eq!(err(b"set \"a\n"), "Protocol error: unbalanced quotes in request");
        assert_eq!(err(b"set \"a\"b\n"), "Protocol error: unbalanced quotes in request");
        assert_eq!(err(&vec![b'a'; 70_000]), "Protocol error: too big inline request");
        let mut long = b"*1".to_vec();
        long.extend(vec![b'1'; 70_000]);
        assert_eq!(err(&long), "Protocol error: too big mbulk count string");
        assert_eq!(err(b"*1\r\n$3\r\nabcde\r\n"), "Protocol error: expected CRLF after bulk argument");
    }

    #[test]
    fn declared_lengths_are_not_preallocated() {
        let mut dec = Decoder::default();
        assert!(all(&mut dec, b"*2000000000\r\n$536870912\r\nab").unwrap().is_empty());
        assert!(dec.spans.capacity() <= PREALLOC_ARGS);
    }

    #[test]
    fn headers_parse_the_same_on_both_paths() {
        // The fast path must agree with string2ll (the general path) on every input.
        for body in ["0", "7", "123456789012345678", "1234567890123456789", "01", "-0", "-1", "+1", " 1", "", "1x"] {
            let frame = format!("${body}\r\n");
            let dec = Decoder::default();
            let got = dec.header(frame.as_bytes(), "too big").ok().flatten();
            let expected = parse_i64(body.as_bytes()).map(|n| (n, frame.len()));
            assert_eq!(got, expected, "{body:?}");
        }
    }

    #[test]
    fn string2ll_rules() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        for bad in [&b""[..], b"-", b"-0", b"01", b"+1", b" 1", b"1 "] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    /// xorshift64: a cheap deterministic generator; the cargo-fuzz target explores far more.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let alphabet = b"*$\r\n0123456789-\"' \\xabAZ";
        let mut lengths = [0usize; 40];
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..20_000 {
            // The length is drawn on every case, so an empty input cannot stop the generator.
            let len = (rng.next() % 40) as usize;
            let buf: Vec<u8> = (0..len).map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize]).collect();
            lengths[len] += 1;
            distinct.insert(buf.clone());
            let mut dec = Decoder::default();
            for end in 0..=buf.len() {
                if all(&mut dec, &buf[..end]).is_err() {
                    break;
                }
            }
        }
        // Every length is generated, about equally often, and the inputs are fresh (the short
        // ones repeat: there are only so many of them).
        assert!(lengths.iter().all(|&n| (300..=700).contains(&n)), "lengths drawn: {lengths:?}");
        assert!(distinct.len() > 18_000, "only {} distinct inputs of 20000", distinct.len());
    }
}
