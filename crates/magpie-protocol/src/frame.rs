//! The client's side of the wire: a decoder of server replies (RESP2 and RESP3) and an encoder
//! of requests.
//!
//! The decoder is incremental. Replies arrive in arbitrary pieces; [`FrameDecoder::decode`]
//! takes whatever complete elements the buffer holds (strings, numbers, the headers of
//! aggregates), keeps the unfinished aggregates on its own stack, and tells the caller how many
//! bytes it took, so a reply of a million elements arriving a few bytes at a time is scanned
//! once. A declared length is only a promise: nothing is reserved according to it beyond a small
//! bound, and bulk strings are copied out only once all their bytes have arrived.

use std::fmt;

use crate::decode::parse_i64;

/// One reply from the server.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// `+OK`: a status line.
    Simple(Vec<u8>),
    /// `-ERR ...` (or a RESP3 blob error `!`): the message, starting with its code.
    Error(Vec<u8>),
    /// `:42`
    Integer(i64),
    /// `$5\r\nhello`: any bytes.
    Bulk(Vec<u8>),
    /// The absence of a value: `$-1` and `*-1` in RESP2, `_` in RESP3.
    Null,
    /// `*`
    Array(Vec<Frame>),
    /// `%` (RESP3): key-value pairs in the order the server sent them.
    Map(Vec<(Frame, Frame)>),
    /// `~` (RESP3)
    Set(Vec<Frame>),
    /// `,` (RESP3): the text as sent (`1.5`, `1e+300`, `inf`, `-inf`, `nan`), checked to be a
    /// number; [`Frame::as_f64`] gives its value.
    Double(String),
    /// `#t` / `#f` (RESP3)
    Boolean(bool),
    /// `=` (RESP3): text with a three-letter format such as `txt` or `mkd`.
    Verbatim { format: String, text: Vec<u8> },
    /// `(` (RESP3): an integer of any size, as decimal digits with an optional sign.
    BigNumber(String),
    /// `>` (RESP3): out-of-band data (pub/sub messages, invalidations).
    Push(Vec<Frame>),
    /// `|` (RESP3): attributes that the server attached to the value that follows them.
    Attribute { attributes: Vec<(Frame, Frame)>, value: Box<Frame> },
}

impl Frame {
    /// Decodes one complete reply at the front of `buf`: the frame and the bytes it took, or
    /// `None` if `buf` does not hold a whole reply yet. (A convenience over [`FrameDecoder`],
    /// which does not start over when more bytes arrive.)
    pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
        let mut decoder = FrameDecoder::default();
        Ok(match decoder.decode(buf)? {
            (used, Some(frame)) => Some((frame, used)),
            (_, None) => None,
        })
    }

    /// The bytes of a string reply: simple, bulk or verbatim (its text).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Frame::Simple(b) | Frame::Bulk(b) => Some(b),
            Frame::Verbatim { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The value of an integer reply, or of a string reply that holds an integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Frame::Integer(n) => Some(*n),
            Frame::Simple(b) | Frame::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// The value of a double reply, or of an integer or string reply that holds a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Frame::Double(s) => parse_double(s.as_bytes()),
            Frame::Integer(n) => Some(*n as f64),
            Frame::Simple(b) | Frame::Bulk(b) => parse_double(b),
            _ => None,
        }
    }

    /// The message of an error reply.
    pub fn as_error(&self) -> Option<&[u8]> {
        match self {
            Frame::Error(msg) => Some(msg),
            _ => None,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Frame::Null)
    }

    /// The elements of an array, set or push reply.
    pub fn as_slice(&self) -> Option<&[Frame]> {
        match self {
            Frame::Array(v) | Frame::Set(v) | Frame::Push(v) => Some(v),
            _ => None,
        }
    }

    /// The frame without the attributes the server attached to it.
    pub fn without_attributes(&self) -> &Frame {
        let mut f = self;
        while let Frame::Attribute { value, .. } = f {
            f = value;
        }
        f
    }
}

/// Limits on what a server may declare, checked before anything of that size is allocated.
#[derive(Clone, Copy, Debug)]
pub struct FrameLimits {
    /// Largest bulk string (and blob error, and verbatim string) accepted.
    pub max_bulk_len: usize,
    /// Largest element count of an aggregate (a map of n pairs counts 2n).
    pub max_aggregate_len: usize,
    /// Deepest nesting of aggregates.
    pub max_depth: usize,
    /// Longest line: a simple string, an error, a number, a header.
    pub max_line_len: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_bulk_len: 1 << 30,
            max_aggregate_len: i32::MAX as usize,
            max_depth: 128,
            max_line_len: 1 << 20,
        }
    }
}

/// A reply that is not valid RESP. The connection it came from cannot be trusted afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameError(String);

impl FrameError {
    fn new(what: impl fmt::Display) -> Self {
        FrameError(what.to_string())
    }

    /// What was wrong, e.g. `invalid bulk length "-2"`.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid reply from the server: {}", self.0)
    }
}

impl std::error::Error for FrameError {}

/// How many elements of an aggregate to reserve room for up front at most, whatever count the
/// server declared.
const PREALLOC_ELEMENTS: usize = 1024;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Array,
    Set,
    Push,
    Map,
    Attribute,
}

/// An aggregate whose header was read and some of whose elements are still to come.
#[derive(Debug)]
struct Pending {
    kind: Kind,
    remaining: usize,
    items: Vec<Frame>,
}

impl Pending {
    fn finish(self) -> Frame {
        match self.kind {
            Kind::Array => Frame::Array(self.items),
            Kind::Set => Frame::Set(self.items),
            Kind::Push => Frame::Push(self.items),
            Kind::Map => Frame::Map(pairs(self.items)),
            Kind::Attribute => {
                let mut items = self.items;
                // An attribute aggregate is read with one more element than its pairs: the value
                // the attributes belong to.
                let value = items.pop().unwrap_or(Frame::Null);
                Frame::Attribute { attributes: pairs(items), value: Box::new(value) }
            }
        }
    }
}

fn pairs(items: Vec<Frame>) -> Vec<(Frame, Frame)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

/// What one step of decoding found.
enum Element {
    Frame(Frame),
    Open(Kind, usize),
}

/// Resumable decoder of server replies. See the module documentation.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    limits: FrameLimits,
    stack: Vec<Pending>,
}

impl FrameDecoder {
    pub fn new(limits: FrameLimits) -> Self {
        FrameDecoder { limits, stack: Vec::new() }
    }

    /// Decodes from `buf`, continuing the reply that earlier calls started. Returns how many
    /// bytes at the front of `buf` were taken, and the reply once it is complete.
    ///
    /// The taken bytes now live in the decoder: the caller must drop them from its buffer
    /// before the next call, whether or not a reply came out. Bytes after a complete reply are
    /// left alone (the next reply of a pipeline). After an error the decoder starts afresh, but
    /// the stream it was reading is out of step and should be abandoned.
    pub fn decode(&mut self, buf: &[u8]) -> Result<(usize, Option<Frame>), FrameError> {
        let result = self.decode_inner(buf);
        if result.is_err() {
            self.stack.clear();
        }
        result
    }

    /// True when the decoder holds part of a reply.
    pub fn in_progress(&self) -> bool {
        !self.stack.is_empty()
    }

    fn decode_inner(&mut self, buf: &[u8]) -> Result<(usize, Option<Frame>), FrameError> {
        let mut pos = 0;
        loop {
            let Some((element, len)) = self.element(&buf[pos..])? else {
                return Ok((pos, None));
            };
            pos += len;
            let mut frame = match element {
                Element::Frame(frame) => frame,
                Element::Open(kind, n) => {
                    if self.stack.len() >= self.limits.max_depth {
                        return Err(FrameError::new(format_args!(
                            "aggregates nested deeper than {} levels",
                            self.limits.max_depth
                        )));
                    }
                    let pending = Pending { kind, remaining: n, items: Vec::with_capacity(n.min(PREALLOC_ELEMENTS)) };
                    if n > 0 {
                        self.stack.push(pending);
                        continue;
                    }
                    pending.finish()
                }
            };
            // A complete element: add it to the aggregate it belongs to, closing every aggregate
            // it completes, until one still needs elements or the reply is whole.
            loop {
                let Some(top) = self.stack.last_mut() else {
                    return Ok((pos, Some(frame)));
                };
                top.items.push(frame);
                top.remaining -= 1;
                if top.remaining > 0 {
                    break;
                }
                match self.stack.pop() {
                    Some(done) => frame = done.finish(),
                    None => unreachable!("the stack had a top element"),
                }
            }
        }
    }

    /// Reads one element at the front of `b`: a whole scalar or an aggregate's header. `None`
    /// when it has not fully arrived.
    fn element(&self, b: &[u8]) -> Result<Option<(Element, usize)>, FrameError> {
        let Some(&kind) = b.first() else { return Ok(None) };
        let Some(nl) = memchr::memchr(b'\n', b) else {
            if b.len() > self.limits.max_line_len + 2 {
                return Err(FrameError::new(format_args!("a line longer than {} bytes", self.limits.max_line_len)));
            }
            return Ok(None);
        };
        if nl < 2 || b[nl - 1] != b'\r' {
            return Err(FrameError::new(format_args!("line not ended by CRLF: {}", show(&b[..=nl]))));
        }
        let line = &b[1..nl - 1];
        let after = nl + 1;
        let scalar = |f: Frame| Ok(Some((Element::Frame(f), after)));
        match kind {
            b'+' => scalar(Frame::Simple(line.to_vec())),
            b'-' => scalar(Frame::Error(line.to_vec())),
            b':' => match parse_i64(line).or_else(|| std::str::from_utf8(line).ok()?.parse().ok()) {
                Some(n) => scalar(Frame::Integer(n)),
                None => Err(FrameError::new(format_args!("invalid integer {}", show(line)))),
            },
            b'_' if line.is_empty() => scalar(Frame::Null),
            b'#' => match line {
                b"t" => scalar(Frame::Boolean(true)),
                b"f" => scalar(Frame::Boolean(false)),
                _ => Err(FrameError::new(format_args!("invalid boolean {}", show(line)))),
            },
            b',' => match std::str::from_utf8(line) {
                Ok(s) if parse_double(line).is_some() => scalar(Frame::Double(s.to_owned())),
                _ => Err(FrameError::new(format_args!("invalid double {}", show(line)))),
            },
            b'(' => match std::str::from_utf8(line) {
                Ok(s) if is_big_number(line) => scalar(Frame::BigNumber(s.to_owned())),
                _ => Err(FrameError::new(format_args!("invalid big number {}", show(line)))),
            },
            b'$' | b'!' | b'=' => {
                let Some(len) = self.length(kind, line, self.limits.max_bulk_len)? else {
                    return scalar(Frame::Null);
                };
                let end = after + len;
                if b.len() < end + 2 {
                    return Ok(None);
                }
                if &b[end..end + 2] != b"\r\n" {
                    return Err(FrameError::new("string not followed by CRLF"));
                }
                let body = &b[after..end];
                let frame = match kind {
                    b'$' => Frame::Bulk(body.to_vec()),
                    b'!' => Frame::Error(body.to_vec()),
                    _ => match body {
                        [a, b, c, b':', text @ ..] if [a, b, c].iter().all(|c| c.is_ascii_alphanumeric()) => {
                            Frame::Verbatim {
                                format: String::from_utf8_lossy(&[*a, *b, *c]).into_owned(),
                                text: text.to_vec(),
                            }
                        }
                        _ => return Err(FrameError::new("verbatim string without a three-letter format")),
                    },
                };
                Ok(Some((Element::Frame(frame), end + 2)))
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let pairs = matches!(kind, b'%' | b'|');
                let max = if pairs { self.limits.max_aggregate_len / 2 } else { self.limits.max_aggregate_len };
                let Some(n) = self.length(kind, line, max)? else {
                    return scalar(Frame::Null);
                };
                let agg = match kind {
                    b'*' => Element::Open(Kind::Array, n),
                    b'~' => Element::Open(Kind::Set, n),
                    b'>' => Element::Open(Kind::Push, n),
                    b'%' => Element::Open(Kind::Map, n * 2),
                    _ => Element::Open(Kind::Attribute, n * 2 + 1),
                };
                Ok(Some((agg, after)))
            }
            _ => Err(FrameError::new(format_args!("unexpected reply type {}", show(&b[..1])))),
        }
    }

    /// Parses the length in a `$`, `*`, ... header. `None` for the RESP2 nulls `$-1` and `*-1`.
    fn length(&self, kind: u8, line: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
        if line == b"?" {
            return Err(FrameError::new("streamed strings and aggregates are not supported"));
        }
        match parse_i64(line) {
            Some(-1) if kind == b'$' || kind == b'*' => Ok(None),
            Some(n) if n >= 0 => match usize::try_from(n) {
                Ok(n) if n <= max => Ok(Some(n)),
                _ => Err(FrameError::new(format_args!("declared length {n} exceeds the limit of {max}"))),
            },
            _ => Err(FrameError::new(format_args!("invalid length {}", show(line)))),
        }
    }
}

fn parse_double(s: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(s).ok()?;
    // Rust also accepts "infinity" and "+inf"; RESP3 says inf, -inf and nan, but a client may
    // be lenient in what it accepts.
    s.parse().ok()
}

fn is_big_number(s: &[u8]) -> bool {
    let digits = s.strip_prefix(b"-").or_else(|| s.strip_prefix(b"+")).unwrap_or(s);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// A short, printable rendering of bytes for error messages.
fn show(b: &[u8]) -> String {
    let cut = &b[..b.len().min(40)];
    let mut s = format!("\"{}\"", cut.escape_ascii());
    if b.len() > cut.len() {
        s.push_str("...");
    }
    s
}

/// Appends a command to `out` as a RESP multibulk request (the form every server accepts, and
/// the only one that carries any bytes).
pub fn encode_request<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        let arg = arg.as_ref();
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
// Test generators draw numbers of every width on purpose.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]
mod tests {
    use super::*;
    use crate::{Reply, Resp};

    /// Decodes every reply in `buf`, all at once.
    fn whole(buf: &[u8]) -> Result<Vec<Frame>, FrameError> {
        let mut dec = FrameDecoder::default();
        let mut pos = 0;
        let mut out = Vec::new();
        loop {
            let (used, frame) = dec.decode(&buf[pos..])?;
            pos += used;
            match frame {
                Some(f) => out.push(f),
                None => {
                    assert_eq!(pos, buf.len(), "bytes left over");
                    assert!(!dec.in_progress(), "reply left unfinished");
                    return Ok(out);
                }
            }
        }
    }

    /// Decodes every reply in `buf`, fed `chunk` bytes at a time into a buffer that drops the
    /// bytes the decoder took, as a connection would.
    fn chunked(buf: &[u8], chunk: usize) -> Result<Vec<Frame>, FrameError> {
        let mut dec = FrameDecoder::default();
        let mut pending = Vec::new();
        let mut out = Vec::new();
        for piece in buf.chunks(chunk) {
            pending.extend_from_slice(piece);
            loop {
                let (used, frame) = dec.decode(&pending)?;
                pending.drain(..used);
                match frame {
                    Some(f) => out.push(f),
                    None => break,
                }
            }
        }
        assert!(pending.len() < 64 * 1024, "unread bytes piled up");
        Ok(out)
    }

    fn one(buf: &[u8]) -> Frame {
        let frames = whole(buf).unwrap();
        assert_eq!(frames.len(), 1, "{frames:?}");
        frames.into_iter().next().unwrap()
    }

    fn err(buf: &[u8]) -> String {
        whole(buf).unwrap_err().message().to_owned()
    }

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(s.as_bytes().to_vec())
    }

    /// A reply of every kind, written with the server's encoder for `proto`.
    fn sample(proto: Resp) -> Vec<u8> {
        let mut r = Reply::new(proto);
        r.ok();
        r.simple("PONG");
        r.error(b"ERR unknown command 'FOO'");
        r.int(-42);
        r.bulk(b"hello\r\nworld");
        r.bulk(b"");
        r.bulk_int(7);
        r.null();
        r.null_array();
        r.array(3);
        r.int(1);
        r.array(0);
        r.array(2);
        r.bulk(&[0, 255, b'\n']);
        r.null();
        r.map(2);
        r.bulk(b"server");
        r.simple("magpie");
        r.bulk(b"proto");
        r.int(3);
        r.set(2);
        r.bulk(b"a");
        r.bulk(b"b");
        r.bool(true);
        r.bool(false);
        r.verbatim("txt", b"# Server\r\nuptime:1\r\n");
        r.raw(b"*-1\r\n");
        r.as_bytes().to_vec()
    }

    #[test]
    fn decodes_what_the_server_writes_in_resp2() {
        let frames = whole(&sample(Resp::V2)).unwrap();
        let expected = vec![
            Frame::Simple(b"OK".to_vec()),
            Frame::Simple(b"PONG".to_vec()),
            Frame::Error(b"ERR unknown command 'FOO'".to_vec()),
            Frame::Integer(-42),
            bulk("hello\r\nworld"),
            bulk(""),
            bulk("7"),
            Frame::Null,
            Frame::Null,
            Frame::Array(vec![
                Frame::Integer(1),
                Frame::Array(vec![]),
                Frame::Array(vec![Frame::Bulk(vec![0, 255, b'\n']), Frame::Null]),
            ]),
            Frame::Array(vec![bulk("server"), Frame::Simple(b"magpie".to_vec()), bulk("proto"), Frame::Integer(3)]),
            Frame::Array(vec![bulk("a"), bulk("b")]),
            Frame::Integer(1),
            Frame::Integer(0),
            bulk("# Server\r\nuptime:1\r\n"),
            Frame::Null,
        ];
        assert_eq!(frames, expected);
    }

    #[test]
    fn decodes_what_the_server_writes_in_resp3() {
        let frames = whole(&sample(Resp::V3)).unwrap();
        assert_eq!(frames.len(), 16);
        assert_eq!(frames[7], Frame::Null);
        assert_eq!(frames[8], Frame::Null);
        assert_eq!(
            frames[10],
            Frame::Map(vec![(bulk("server"), Frame::Simple(b"magpie".to_vec())), (bulk("proto"), Frame::Integer(3))])
        );
        assert_eq!(frames[11], Frame::Set(vec![bulk("a"), bulk("b")]));
        assert_eq!(frames[12], Frame::Boolean(true));
        assert_eq!(frames[13], Frame::Boolean(false));
        assert_eq!(frames[14], Frame::Verbatim { format: "txt".into(), text: b"# Server\r\nuptime:1\r\n".to_vec() });
    }

    #[test]
    fn chunked_feeding_equals_whole_feeding() {
        for proto in [Resp::V2, Resp::V3] {
            let buf = sample(proto);
            let expected = whole(&buf).unwrap();
            for chunk in [1, 2, 3, 5, 7, 16, 1000] {
                assert_eq!(chunked(&buf, chunk).unwrap(), expected, "{proto:?} in chunks of {chunk}");
            }
        }
    }

    #[test]
    fn chunked_feeding_takes_each_element_once() {
        // A long array fed a byte at a time: the decoder takes each element as soon as it is
        // whole, so the caller's buffer never holds more than one element.
        let mut r = Reply::new(Resp::V2);
        r.array(10_000);
        for i in 0..10_000 {
            r.bulk_int(i);
        }
        let mut dec = FrameDecoder::default();
        let mut pending = Vec::new();
        let mut got = None;
        for &b in r.as_bytes() {
            pending.push(b);
            let (used, frame) = dec.decode(&pending).unwrap();
            pending.drain(..used);
            assert!(pending.len() <= 12);
            if frame.is_some() {
                got = frame;
            }
        }
        assert_eq!(got.unwrap().as_slice().unwrap().len(), 10_000);
    }

    #[test]
    fn resp3_scalars() {
        assert_eq!(one(b"_\r\n"), Frame::Null);
        assert_eq!(one(b",1.5\r\n").as_f64(), Some(1.5));
        assert_eq!(one(b",-inf\r\n").as_f64(), Some(f64::NEG_INFINITY));
        assert!(one(b",nan\r\n").as_f64().unwrap().is_nan());
        assert_eq!(one(b",1e+300\r\n"), Frame::Double("1e+300".into()));
        assert_eq!(
            one(b"(3492890328409238509324850943850943825024385\r\n"),
            Frame::BigNumber("3492890328409238509324850943850943825024385".into())
        );
        assert_eq!(one(b"!21\r\nSYNTAX invalid syntax\r\n"), Frame::Error(b"SYNTAX invalid syntax".to_vec()));
        assert_eq!(
            one(b">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n"),
            Frame::Push(vec![Frame::Simple(b"invalidate".to_vec()), Frame::Array(vec![bulk("k")])])
        );
        assert_eq!(one(b"%0\r\n"), Frame::Map(vec![]));
    }

    #[test]
    fn attributes_wrap_the_value_they_precede() {
        let f = one(b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2\r\n|1\r\n+ttl\r\n:3\r\n:4\r\n");
        let Frame::Attribute { attributes, value } = &f else { panic!("{f:?}") };
        assert_eq!(attributes.len(), 1);
        assert_eq!(attributes[0].0, Frame::Simple(b"key-popularity".to_vec()));
        let items = value.as_slice().unwrap();
        assert_eq!(items[0], Frame::Integer(2));
        assert_eq!(items[1].without_attributes(), &Frame::Integer(4));
        assert_eq!(f.without_attributes().as_slice().unwrap().len(), 2);
    }

    #[test]
    fn incomplete_input_asks_for_more() {
        for partial in [
            &b""[..],
            b"+OK",
            b"+OK\r",
            b"$5\r\nhel",
            b"$5\r\nhello\r",
            b"*2\r\n:1\r\n",
            b"%1\r\n+a\r\n",
            b"|1\r\n+a\r\n+b\r\n",
        ] {
            assert_eq!(Frame::parse(partial).unwrap(), None, "{:?}", partial.escape_ascii().to_string());
        }
        assert_eq!(Frame::parse(b":1\r\n:2\r\n").unwrap(), Some((Frame::Integer(1), 4)));
    }

    #[test]
    fn malformed_replies_are_clear_errors() {
        assert_eq!(err(b"?\r\n"), "unexpected reply type \"?\"");
        assert_eq!(err(b"+OK\n"), "line not ended by CRLF: \"+OK\\n\"");
        assert_eq!(err(b":12a\r\n"), "invalid integer \"12a\"");
        assert_eq!(err(b"$-2\r\n"), "invalid length \"-2\"");
        assert_eq!(err(b"~-1\r\n"), "invalid length \"-1\"");
        assert_eq!(err(b"$x\r\n"), "invalid length \"x\"");
        assert_eq!(err(b"$3\r\nabcde\r\n"), "string not followed by CRLF");
        assert_eq!(err(b"#x\r\n"), "invalid boolean \"x\"");
        assert_eq!(err(b",1.2.3\r\n"), "invalid double \"1.2.3\"");
        assert_eq!(err(b"(12x\r\n"), "invalid big number \"12x\"");
        assert_eq!(err(b"=3\r\nabc\r\n"), "verbatim string without a three-letter format");
        assert_eq!(err(b"_x\r\n"), "unexpected reply type \"_\"");
        assert_eq!(err(b"$?\r\n"), "streamed strings and aggregates are not supported");
        assert!(err(b"$2000000000\r\n").contains("exceeds the limit"));
        let long = [b"+".as_slice(), &vec![b'a'; (1 << 20) + 10]].concat();
        assert_eq!(err(&long), "a line longer than 1048576 bytes");
        assert_eq!(FrameError::new("x").to_string(), "invalid reply from the server: x", "the error reads as one line");
    }

    #[test]
    fn declared_lengths_are_not_preallocated() {
        let mut dec = FrameDecoder::default();
        let (used, frame) = dec.decode(b"*2000000000\r\n*2000000000\r\n$1000000000\r\nab").unwrap();
        assert_eq!((used, frame), (26, None));
        assert!(dec.stack.iter().all(|p| p.items.capacity() <= PREALLOC_ELEMENTS));
    }

    #[test]
    fn nesting_is_limited() {
        let deep = b"*1\r\n".repeat(200);
        assert_eq!(err(&deep), "aggregates nested deeper than 128 levels");
        let mut ok = b"*1\r\n".repeat(128);
        ok.extend_from_slice(b":1\r\n");
        assert!(whole(&ok).is_ok());
        let small = FrameLimits { max_depth: 2, ..FrameLimits::default() };
        let mut dec = FrameDecoder::new(small);
        assert!(dec.decode(b"*1\r\n*1\r\n*1\r\n:1\r\n").is_err());
        // After an error the decoder starts afresh.
        assert_eq!(dec.decode(b":5\r\n").unwrap(), (4, Some(Frame::Integer(5))));
    }

    #[test]
    fn requests_encode_as_multibulk() {
        let mut out = Vec::new();
        encode_request(&mut out, &["SET", "k", ""]);
        encode_request(&mut out, &[b"GET".as_slice(), b"\r\n"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*2\r\n$3\r\nGET\r\n$2\r\n\r\n\r\n");
        // And the server's request decoder reads them back.
        let mut dec = crate::Decoder::default();
        let args = dec.next(&out).unwrap().unwrap();
        assert_eq!(args.iter().collect::<Vec<_>>(), [&b"SET"[..], b"k", b""]);
    }

    /// xorshift64: a cheap deterministic generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Appends a random well-formed reply (nested up to three levels).
    fn random_reply(rng: &mut Rng, depth: u32, out: &mut Vec<u8>) {
        let word = |rng: &mut Rng| -> Vec<u8> { (0..rng.below(6)).map(|_| b"abcxyz 1-"[rng.below(9)]).collect() };
        let kinds = if depth >= 3 { 9 } else { 14 };
        match rng.below(kinds) {
            0 => out.extend([b"+".as_slice(), &word(rng), b"\r\n"].concat()),
            1 => out.extend([b"-ERR ".as_slice(), &word(rng), b"\r\n"].concat()),
            2 => out.extend(format!(":{}\r\n", rng.next() as i64 >> rng.below(64)).bytes()),
            3 => {
                let body: Vec<u8> = (0..rng.below(12)).map(|_| b"ab\r\n\0$*"[rng.below(7)]).collect();
                out.extend(format!("{}{}\r\n", ["$", "!"][rng.below(2)], body.len()).bytes());
                out.extend(body);
                out.extend(b"\r\n");
            }
            4 => out.extend(["$-1\r\n", "*-1\r\n", "_\r\n"][rng.below(3)].bytes()),
            5 => out.extend(
                format!(",{}\r\n", ["1.5", "inf", "-inf", "nan", "1e+300", "0", "-0.25"][rng.below(7)]).bytes(),
            ),
            6 => out.extend(["#t\r\n", "#f\r\n"][rng.below(2)].bytes()),
            7 => out.extend(["(12345678901234567890123\r\n", "(-1\r\n"][rng.below(2)].bytes()),
            8 => {
                let text = word(rng);
                out.extend(format!("={}\r\ntxt:", text.len() + 4).bytes());
                out.extend(text);
                out.extend(b"\r\n");
            }
            9 => {
                // An attribute, then the value it belongs to.
                let n = rng.below(3);
                out.extend(format!("|{n}\r\n").bytes());
                for _ in 0..n * 2 {
                    random_reply(rng, depth + 1, out);
                }
                random_reply(rng, depth + 1, out);
            }
            k => {
                let n = rng.below(4);
                let (head, items) = [("*", n), ("~", n), (">", n), ("%", n * 2)][k - 10];
                out.extend(format!("{head}{n}\r\n").bytes());
                for _ in 0..items {
                    random_reply(rng, depth + 1, out);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_chunking_agrees() {
        // Whatever the bytes, whole and chunked decoding agree on the replies (or both fail).
        // Half the inputs are random bytes, half are well-formed replies, some of them with a
        // byte changed or cut short: random bytes alone almost never make a whole reply.
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let alphabet = b"*$%~>|_#,(!=+-:\r\n0123456789-tf.?ab";
        let mut lengths = [0usize; 48];
        let mut distinct = std::collections::HashSet::new();
        let mut decoded = 0;
        for case in 0..20_000 {
            let buf: Vec<u8> = if case % 2 == 0 {
                // The length is drawn on every case, so an empty input cannot stop the generator.
                let len = rng.below(48);
                lengths[len] += 1;
                (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect()
            } else {
                let mut buf = Vec::new();
                for _ in 0..1 + rng.below(3) {
                    random_reply(&mut rng, 0, &mut buf);
                }
                match rng.below(4) {
                    0 => {
                        let at = rng.below(buf.len());
                        buf[at] = alphabet[rng.below(alphabet.len())];
                    }
                    1 => buf.truncate(rng.below(buf.len())),
                    _ => {}
                }
                buf
            };
            distinct.insert(buf.clone());
            let w = all_frames(&buf, buf.len().max(1));
            decoded += w.as_ref().map_or(0, Vec::len);
            let c = all_frames(&buf, 1);
            match (&w, &c) {
                (Ok(w), Ok(c)) => assert_eq!(w, c, "{:?}", buf.escape_ascii().to_string()),
                (Err(_), Err(_)) => {}
                _ => panic!("whole {w:?} but chunked {c:?} for {:?}", buf.escape_ascii().to_string()),
            }
        }
        // Every length of random bytes is drawn, about equally often; the inputs are fresh;
        // and many of them are whole replies (not only two errors compared).
        assert!(lengths.iter().all(|&n| (120..=300).contains(&n)), "lengths drawn: {lengths:?}");
        assert!(distinct.len() > 16_000, "only {} distinct inputs of 20000", distinct.len());
        assert!(decoded > 10_000, "only {decoded} replies decoded");
    }

    /// Like `chunked`, without its checks: the complete replies in `buf`.
    fn all_frames(buf: &[u8], chunk: usize) -> Result<Vec<Frame>, FrameError> {
        let mut dec = FrameDecoder::default();
        let mut pending = Vec::new();
        let mut out = Vec::new();
        for piece in buf.chunks(chunk) {
            pending.extend_from_slice(piece);
            loop {
                let (used, frame) = dec.decode(&pending)?;
                pending.drain(..used);
                match frame {
                    Some(f) => out.push(f),
                    None => break,
                }
            }
        }
        Ok(out)
    }
}
