//! Feeds arbitrary bytes to the [`Decoder`] twice: all at once, and in chunks chosen by the
//! first bytes of the input, releasing the consumed prefix between chunks exactly as the
//! connection does (`consumed()`, drop that many bytes, `discard()`). Checks that it never
//! panics, that `consumed()` never exceeds the buffer, that `Ok(None)` is stable, and that both
//! ways yield the same commands and the same error (or none).
//!
//! Input layout:
//! - byte 0: bits 0-3 = number of chunk-size bytes that follow (0 = feed in one piece),
//!   bit 7 = use small limits (taken from bytes 1-3) instead of the defaults;
//! - bytes 1-3 (only with bit 7): `max_inline_len = 24 + b1`, `max_bulk_len = b2`,
//!   `max_multibulk_len = b3`;
//! - then the chunk sizes (one byte each, cycled over the data; 0 = call `next` again with no
//!   new bytes, as after a spurious wake-up);
//! - the rest is what the client sent.

#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_protocol::{Decoder, Limits, ProtocolError};

type Command = Vec<Vec<u8>>;

#[derive(Debug, Default)]
struct Outcome {
    commands: Vec<Command>,
    error: Option<ProtocolError>,
    /// Bytes released as consumed over the whole run (absolute offset in the input).
    consumed: usize,
}

struct Setup<'a> {
    limits: Limits,
    sizes: Vec<usize>,
    data: &'a [u8],
}

fn setup(input: &[u8]) -> Option<Setup<'_>> {
    let (&mode, mut rest) = input.split_first()?;
    let mut limits = Limits::default();
    if mode & 0x80 != 0 {
        let (l, r) = rest.split_first_chunk::<3>()?;
        limits = Limits {
            // At least 24: a valid `*`/`$` header line is at most 21 bytes, so a smaller limit
            // would refuse valid headers depending on how they were split.
            max_inline_len: 24 + usize::from(l[0]),
            max_bulk_len: usize::from(l[1]),
            max_multibulk_len: usize::from(l[2]),
        };
        rest = r;
    }
    let n = usize::from(mode & 0x0f).min(rest.len());
    let (sizes, data) = rest.split_at(n);
    let mut sizes: Vec<usize> = sizes.iter().map(|&b| usize::from(b)).collect();
    if sizes.iter().all(|&s| s == 0) {
        sizes = vec![usize::MAX];
    }
    Some(Setup { limits, sizes, data })
}

/// Decodes every complete command in `buf`, checking the decoder's bookkeeping after each call.
fn drain(dec: &mut Decoder, buf: &[u8], out: &mut Outcome) {
    loop {
        let next = dec.next(buf).map(|o| o.map(|args| args.iter().map(<[u8]>::to_vec).collect::<Command>()));
        assert!(dec.consumed() <= buf.len(), "consumed {} > buffer {}", dec.consumed(), buf.len());
        match next {
            Ok(Some(cmd)) => {
                assert!(!cmd.is_empty(), "a command with no arguments was returned");
                out.commands.push(cmd);
            }
            Ok(None) => {
                // Asking again without new bytes must change nothing.
                let before = dec.consumed();
                assert!(matches!(dec.next(buf), Ok(None)), "Ok(None) was not stable");
                assert_eq!(dec.consumed(), before, "a repeated Ok(None) moved consumed()");
                return;
            }
            Err(e) => {
                out.error = Some(e);
                return;
            }
        }
    }
}

fn whole(limits: Limits, data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let mut dec = Decoder::new(limits);
    drain(&mut dec, data, &mut out);
    out.consumed = dec.consumed();
    out
}

/// As the connection does: append what arrived, decode, release the consumed prefix.
fn chunked(limits: Limits, sizes: &[usize], data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let mut dec = Decoder::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut released = 0;
    let mut at = 0;
    for &size in sizes.iter().cycle() {
        let end = at + size.min(data.len() - at);
        buf.extend_from_slice(&data[at..end]);
        at = end;
        drain(&mut dec, &buf, &mut out);
        let n = dec.consumed();
        assert!(n <= buf.len());
        assert_eq!(dec.pending_len(&buf), buf.len() - n);
        buf.drain(..n);
        dec.discard(n);
        released += n;
        assert_eq!(dec.consumed(), 0, "consumed() after discard(consumed())");
        if out.error.is_some() || at == data.len() {
            break;
        }
    }
    out.consumed = released + dec.consumed();
    out
}

/// Whether two errors for the same bytes are equivalent. A `*`/`$` header line longer than the
/// inline limit is refused as "too big ... count string" while its CR has not arrived, and as an
/// "invalid ... length" once it has (a valid header is never that long, so it is an error either
/// way). Redis 7.0 behaves the same; the message depends on how the bytes were split.
fn same_error(a: &ProtocolError, b: &ProtocolError) -> bool {
    let class = |e: &ProtocolError| match e.message() {
        "Protocol error: too big mbulk count string" | "Protocol error: invalid multibulk length" => {
            "multibulk header".to_owned()
        }
        "Protocol error: too big bulk count string" | "Protocol error: invalid bulk length" => "bulk header".to_owned(),
        other => other.to_owned(),
    };
    a == b || class(a) == class(b)
}

fn is_too_big_header(e: &ProtocolError) -> bool {
    matches!(e.message(), "Protocol error: too big mbulk count string" | "Protocol error: too big bulk count string")
}

fn encode(cmds: &[Command]) -> Vec<u8> {
    let mut out = Vec::new();
    for cmd in cmds {
        out.extend_from_slice(format!("*{}\r\n", cmd.len()).as_bytes());
        for arg in cmd {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some(Setup { limits, sizes, data }) = setup(input) else { return };
    let all = whole(limits, data);
    let parts = chunked(limits, &sizes, data);

    assert_eq!(all.commands, parts.commands, "commands differ between whole and chunked input");
    match (&all.error, &parts.error) {
        (None, None) => assert_eq!(all.consumed, parts.consumed, "consumed differs"),
        (Some(a), Some(b)) => assert!(same_error(a, b), "errors differ: whole {a:?}, chunked {b:?}"),
        // A `*`/`$` header line whose CR is the last byte received is waited on (for its LF)
        // whatever its length, as in Redis; split so that the CR came later, the same line
        // was refused as too long. With more bytes the whole input is refused too.
        (None, Some(b)) if data.ends_with(b"\r") && is_too_big_header(b) => {}
        (a, b) => panic!("error in one decoding only: whole {a:?}, chunked {b:?}"),
    }

    // What was decoded, re-encoded as multibulk frames, decodes to the same commands.
    let roundtrip_limits = Limits { max_bulk_len: usize::MAX, ..Limits::default() };
    let again = whole(roundtrip_limits, &encode(&all.commands));
    assert!(again.error.is_none(), "re-encoded commands refused: {:?}", again.error);
    assert_eq!(again.commands, all.commands, "re-encoded commands decode differently");
});
