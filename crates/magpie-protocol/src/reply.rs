//! Semantic replies, encoded for the connection's protocol version.

/// Protocol version of a connection: RESP2 by default, RESP3 after `HELLO 3`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resp {
    #[default]
    V2,
    V3,
}

/// An output buffer that command code writes replies into. Each method writes one semantic
/// value; aggregates are a header (`array(n)`, `map(n)`, ...) followed by their elements.
#[derive(Debug, Default)]
pub struct Reply {
    buf: Vec<u8>,
    pub proto: Resp,
}

impl Reply {
    pub fn new(proto: Resp) -> Self {
        Reply { buf: Vec::with_capacity(16 * 1024), proto }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Empties the buffer, giving back memory that one huge reply made it hold.
    pub fn clear(&mut self) {
        const KEEP: usize = 64 * 1024;
        if self.buf.capacity() > KEEP * 16 {
            self.buf = Vec::with_capacity(KEEP);
        } else {
            self.buf.clear();
        }
    }

    /// Drops everything written after `len` (to take back a partly written reply).
    pub fn truncate(&mut self, len: usize) {
        self.buf.truncate(len);
    }

    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// A simple string; `s` must not contain CR or LF.
    pub fn simple(&mut self, s: &str) {
        self.line(b'+', s.as_bytes());
    }

    /// An error reply. `msg` starts with the error code (`ERR ...`, `WRONGTYPE ...`); as Redis
    /// does (`sdstrim` then `sdsmapchars`), CR and LF at its ends are cut and those inside it
    /// become spaces, so a reply can never be split in two.
    pub fn error(&mut self, msg: &[u8]) {
        let crlf = |c: &u8| *c == b'\r' || *c == b'\n';
        let start = msg.iter().position(|c| !crlf(c)).unwrap_or(msg.len());
        let end = msg.iter().rposition(|c| !crlf(c)).map_or(start, |i| i + 1);
        self.buf.push(b'-');
        self.buf.extend(msg[start..end].iter().map(|&c| if crlf(&c) { b' ' } else { c }));
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.line(b':', itoa::Buffer::new().format(n).as_bytes());
    }

    pub fn bulk(&mut self, data: &[u8]) {
        self.header(b'$', data.len());
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An integer sent as a bulk string (how Redis replies with a string holding a number).
    pub fn bulk_int(&mut self, n: i64) {
        self.bulk(itoa::Buffer::new().format(n).as_bytes());
    }

    /// The absence of a value: `$-1` in RESP2, `_` in RESP3.
    pub fn null(&mut self) {
        match self.proto {
            Resp::V2 => self.buf.extend_from_slice(b"$-1\r\n"),
            Resp::V3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    /// The absence of an aggregate: `*-1` in RESP2, `_` in RESP3.
    pub fn null_array(&mut self) {
        match self.proto {
            Resp::V2 => self.buf.extend_from_slice(b"*-1\r\n"),
            Resp::V3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    pub fn array(&mut self, len: usize) {
        self.header(b'*', len);
    }

    /// A map of `len` pairs: `%` in RESP3, a flat array of `2 * len` elements in RESP2.
    pub fn map(&mut self, len: usize) {
        match self.proto {
            Resp::V2 => self.header(b'*', len * 2),
            Resp::V3 => self.header(b'%', len),
        }
    }

    /// A map whose pairs RESP2 shows as two-element arrays (XREAD's streams, as Redis sends
    /// them), where [`Reply::map`] would flatten them: `%len` in RESP3, `*len` in RESP2; open
    /// each pair with [`Reply::nested_pair`].
    pub fn nested_map(&mut self, len: usize) {
        match self.proto {
            Resp::V2 => self.header(b'*', len),
            Resp::V3 => self.header(b'%', len),
        }
    }

    /// Opens one pair of [`Reply::nested_map`]: `*2` in RESP2, nothing in RESP3.
    pub fn nested_pair(&mut self) {
        if self.proto == Resp::V2 {
            self.buf.extend_from_slice(b"*2\r\n");
        }
    }

    /// A set: `~` in RESP3, an array in RESP2.
    pub fn set(&mut self, len: usize) {
        match self.proto {
            Resp::V2 => self.header(b'*', len),
            Resp::V3 => self.header(b'~', len),
        }
    }

    /// An array of `len` pairs (HRANDFIELD WITHVALUES, ZRANGE WITHSCORES): in RESP3 an array
    /// of two-element arrays, each opened with [`Reply::pair`]; in RESP2 one flat array of
    /// `2 * len` elements.
    pub fn pairs(&mut self, len: usize) {
        match self.proto {
            Resp::V2 => self.header(b'*', len * 2),
            Resp::V3 => self.header(b'*', len),
        }
    }

    /// Opens one element of [`Reply::pairs`]: `*2` in RESP3, nothing in RESP2.
    pub fn pair(&mut self) {
        if self.proto == Resp::V3 {
            self.buf.extend_from_slice(b"*2\r\n");
        }
    }

    /// A floating-point number as Redis 7.0 sends one (`addReplyDouble`): C's `%.17g` (and
    /// `inf`/`-inf`), as a bulk string in RESP2 and a double (`,`) in RESP3.
    pub fn double(&mut self, d: f64) {
        let mut buf = [0u8; 32];
        let text = format_g17(d, &mut buf);
        match self.proto {
            Resp::V2 => self.bulk(text),
            Resp::V3 => self.line(b',', text),
        }
    }

    /// Out-of-band data (pub/sub messages): a push (`>`) in RESP3, an array in RESP2.
    pub fn push(&mut self, len: usize) {
        match self.proto {
            Resp::V2 => self.header(b'*', len),
            Resp::V3 => self.header(b'>', len),
        }
    }

    /// A boolean: `#t`/`#f` in RESP3, the integers 1 and 0 in RESP2.
    pub fn bool(&mut self, b: bool) {
        match self.proto {
            Resp::V2 => self.int(i64::from(b)),
            Resp::V3 => self.buf.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" }),
        }
    }

    /// Verbatim text (`=` in RESP3 with a three-letter format such as `txt`), a bulk string in
    /// RESP2.
    pub fn verbatim(&mut self, format: &str, text: &[u8]) {
        match self.proto {
            Resp::V2 => self.bulk(text),
            Resp::V3 => {
                self.header(b'=', text.len() + 4);
                self.buf.extend_from_slice(format.as_bytes());
                self.buf.push(b':');
                self.buf.extend_from_slice(text);
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Bytes already encoded (used for canned replies).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    fn header(&mut self, kind: u8, len: usize) {
        self.line(kind, itoa::Buffer::new().format(len).as_bytes());
    }

    fn line(&mut self, kind: u8, body: &[u8]) {
        self.buf.push(kind);
        self.buf.extend_from_slice(body);
        self.buf.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
// Test generators draw numbers of every width on purpose.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    fn both(f: impl Fn(&mut Reply)) -> (String, String) {
        let mut r2 = Reply::new(Resp::V2);
        let mut r3 = Reply::new(Resp::V3);
        f(&mut r2);
        f(&mut r3);
        let s = |r: &Reply| String::from_utf8_lossy(r.as_bytes()).into_owned();
        (s(&r2), s(&r3))
    }

    #[test]
    fn encodes_per_protocol() {
        assert_eq!(both(Reply::null), ("$-1\r\n".into(), "_\r\n".into()));
        assert_eq!(both(Reply::null_array), ("*-1\r\n".into(), "_\r\n".into()));
        assert_eq!(both(|r| r.map(2)), ("*4\r\n".into(), "%2\r\n".into()));
        assert_eq!(both(|r| r.set(3)), ("*3\r\n".into(), "~3\r\n".into()));
        assert_eq!(both(|r| r.bool(true)), (":1\r\n".into(), "#t\r\n".into()));
        assert_eq!(both(|r| r.verbatim("txt", b"hi")), ("$2\r\nhi\r\n".into(), "=6\r\ntxt:hi\r\n".into()));
        let pairs = |r: &mut Reply| {
            r.pairs(1);
            r.pair();
            r.bulk(b"f");
            r.int(1);
        };
        assert_eq!(both(pairs), ("*2\r\n$1\r\nf\r\n:1\r\n".into(), "*1\r\n*2\r\n$1\r\nf\r\n:1\r\n".into()));
        assert_eq!(both(|r| r.bulk_int(-42)).0, "$3\r\n-42\r\n");
        assert_eq!(both(|r| r.int(7)).1, ":7\r\n");
        let pairs = |r: &mut Reply| {
            r.pairs(1);
            r.pair();
            r.bulk(b"m");
            r.double(1.5);
        };
        assert_eq!(both(pairs), ("*2\r\n$1\r\nm\r\n$3\r\n1.5\r\n".into(), "*1\r\n*2\r\n$1\r\nm\r\n,1.5\r\n".into()));
    }

    #[test]
    fn errors_cannot_break_framing() {
        let (r2, _) = both(|r| r.error(b"ERR bad\r\ninput"));
        assert_eq!(r2, "-ERR bad  input\r\n");
        // At the end they are cut, as Redis's sdstrim does (`EXPIRE k 1 "\r\n"`).
        let (r2, _) = both(|r| r.error(b"ERR Unsupported option \r\n\n"));
        assert_eq!(r2, "-ERR Unsupported option \r\n");
    }
}

/// Formats `d` as C's `printf("%.17g")` does (what Redis 7.0 replies for scores), with
/// infinities as `inf`/`-inf` and NaN as `nan`. Allocates nothing: integers below 10^17 (all
/// their digits fit in 17) are written directly; anything else takes its 17 significant digits
/// from Rust's `{:.16e}`, which rounds exactly as glibc does, and lays them out as `%g` would.
pub fn format_g17(d: f64, buf: &mut [u8; 32]) -> &[u8] {
    const P: i32 = 17;
    if d.is_nan() {
        return put(buf, 0, b"nan");
    }
    if d.is_infinite() {
        return put(buf, 0, if d > 0.0 { b"inf" } else { b"-inf" });
    }
    if d == d.trunc() && d.abs() < 1e17 {
        if d == 0.0 {
            return put(buf, 0, if d.is_sign_negative() { b"-0" } else { b"0" });
        }
        // Exact: `d` is integral and below 1e17 in magnitude, well inside i64.
        #[allow(clippy::cast_possible_truncation)]
        let n = d as i64;
        return put(buf, 0, itoa::Buffer::new().format(n).as_bytes());
    }
    // [-]d.dddddddddddddddde[-]X, in a stack buffer.
    let mut sci = [0u8; 40];
    let len = {
        use std::io::Write as _;
        let mut w = &mut sci[..];
        let _ = write!(w, "{d:.16e}");
        40 - w.len()
    };
    let sci = &sci[..len];
    let neg = sci[0] == b'-';
    let body = if neg { &sci[1..] } else { sci };
    let e = body.iter().position(|&c| c == b'e').unwrap_or(body.len());
    let mut x: i32 = 0;
    let (exp_neg, exp_digits) = match &body[(e + 1).min(body.len())..] {
        [b'-', rest @ ..] => (true, rest),
        rest => (false, rest),
    };
    for &c in exp_digits {
        x = x * 10 + i32::from(c - b'0');
    }
    if exp_neg {
        x = -x;
    }
    // The 17 digits without the point, trailing zeros dropped (%g does not print them).
    let mut digits = [0u8; 17];
    let mut n = 0;
    for &c in &body[..e] {
        if c != b'.' && n < 17 {
            digits[n] = c;
            n += 1;
        }
    }
    while n > 1 && digits[n - 1] == b'0' {
        n -= 1;
    }
    let digits = &digits[..n];
    let mut at = 0;
    if neg {
        at = put_at(buf, at, b"-");
    }
    if !(-4..P).contains(&x) {
        at = put_at(buf, at, &digits[..1]);
        if n > 1 {
            at = put_at(buf, at, b".");
            at = put_at(buf, at, &digits[1..]);
        }
        at = put_at(buf, at, if x < 0 { b"e-" } else { b"e+" });
        let ax = x.unsigned_abs();
        if ax < 10 {
            at = put_at(buf, at, b"0");
        }
        at = put_at(buf, at, itoa::Buffer::new().format(ax).as_bytes());
    } else if x < 0 {
        at = put_at(buf, at, b"0.");
        for _ in 0..(-x - 1) {
            at = put_at(buf, at, b"0");
        }
        at = put_at(buf, at, digits);
    } else {
        let int_len = usize::try_from(x + 1).unwrap_or(0);
        if n <= int_len {
            at = put_at(buf, at, digits);
            for _ in n..int_len {
                at = put_at(buf, at, b"0");
            }
        } else {
            at = put_at(buf, at, &digits[..int_len]);
            at = put_at(buf, at, b".");
            at = put_at(buf, at, &digits[int_len..]);
        }
    }
    &buf[..at]
}

/// Writes `bytes` at the start of `buf` and returns them.
fn put<'a>(buf: &'a mut [u8; 32], at: usize, bytes: &[u8]) -> &'a [u8] {
    let end = put_at(buf, at, bytes);
    &buf[..end]
}

/// Writes `bytes` at `at`, returning where the text now ends.
fn put_at(buf: &mut [u8; 32], at: usize, bytes: &[u8]) -> usize {
    let end = (at + bytes.len()).min(buf.len());
    buf[at..end].copy_from_slice(&bytes[..end - at]);
    end
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]
mod g17_tests {
    use super::format_g17;

    #[test]
    fn formats_like_printf_g17() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (3.0, "3"),
            (-2.25, "-2.25"),
            (1e17, "1e+17"),
            (1e16, "10000000000000000"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (1e-300, "1e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (5e-324, "4.9406564584124654e-324"),
        ];
        for &(d, want) in cases {
            let mut buf = [0u8; 32];
            assert_eq!(std::str::from_utf8(format_g17(d, &mut buf)).unwrap(), want, "{d:e}");
        }
    }

    /// `%.17g` spelled out with `format!`: the straightforward version, as an oracle.
    fn reference(d: f64) -> String {
        let sci = format!("{d:.16e}");
        let (mantissa, exp) = sci.split_once('e').unwrap();
        let x: i32 = exp.parse().unwrap();
        let (neg, digits) = match mantissa.strip_prefix('-') {
            Some(m) => (true, m.replace('.', "")),
            None => (false, mantissa.replace('.', "")),
        };
        let digits = digits.trim_end_matches('0');
        let digits = if digits.is_empty() { "0" } else { digits };
        let sign = if neg { "-" } else { "" };
        if !(-4..17).contains(&x) {
            let (first, rest) = digits.split_at(1);
            let rest = if rest.is_empty() { String::new() } else { format!(".{rest}") };
            format!("{sign}{first}{rest}e{}{:02}", if x < 0 { '-' } else { '+' }, x.unsigned_abs())
        } else if x < 0 {
            format!("{sign}0.{}{digits}", "0".repeat((-x - 1) as usize))
        } else {
            let int_len = (x + 1) as usize;
            if digits.len() <= int_len {
                format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
            } else {
                format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
            }
        }
    }

    #[test]
    fn agrees_with_the_reference_on_many_values() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut buf = [0u8; 32];
        for i in 0..200_000 {
            let d = match i % 4 {
                0 => f64::from_bits(next()),
                1 => (next() % 2_000_000) as f64 / 8.0 - 100_000.0,
                2 => ((next() % 1_000_000) as f64) * 10f64.powi((next() % 40) as i32 - 20),
                _ => (next() as i64 >> (next() % 60)) as f64,
            };
            if !d.is_finite() {
                continue;
            }
            assert_eq!(std::str::from_utf8(format_g17(d, &mut buf)).unwrap(), reference(d), "{d:e}");
        }
    }
}
