//! Inline commands (`SET foo "bar baz"` typed over telnet) against a port of Redis 7.0's
//! `sdssplitargs`, the function that splits them there. The input is read as lines; a line that
//! starts with `*` gets a leading space so that every line is an inline command. Each complete
//! line must decode to the arguments Redis would see, or to the error Redis gives
//! (`unbalanced quotes in request`), and the decoder must never panic or hang.
//!
//! A line holding a NUL byte has no meaningful Redis result (Redis looks for the line's end with
//! `strchr`, which stops at the NUL, so it waits for more bytes until the 64 KB inline limit;
//! Magpie treats NUL as an ordinary byte): for those only termination is checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_protocol::Decoder;

/// Redis 7.0's `sdssplitargs` (sds.c), over a line without NUL bytes. `None` for unbalanced
/// quotes.
fn sdssplitargs(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    // C's isspace in the "C" locale.
    let isspace = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while at(p) != 0 && isspace(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Some(args);
        }
        let (mut inq, mut insq, mut done) = (false, false, false);
        let mut current = Vec::new();
        while !done {
            let c = at(p);
            if inq {
                if c == b'\\' && at(p + 1) == b'x' && hex(at(p + 2)).is_some() && hex(at(p + 3)).is_some() {
                    current.push(hex(at(p + 2))? * 16 + hex(at(p + 3))?);
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    current.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !isspace(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else if insq {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !isspace(at(p + 1)) {
                        return None;
                    }
                    done = true;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    _ => current.push(c),
                }
            }
            if at(p) != 0 {
                p += 1;
            }
        }
        args.push(current);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Vec::with_capacity(data.len() + 16);
    for line in data.split_inclusive(|&c| c == b'\n') {
        if line.first() == Some(&b'*') {
            input.push(b' ');
        }
        input.extend_from_slice(line);
    }

    // What Redis would do with each complete line, up to the first one it cannot judge.
    let mut expected = Vec::new();
    let mut expected_error = false;
    let mut judged = true;
    for line in input.split_inclusive(|&c| c == b'\n') {
        let Some(line) = line.strip_suffix(b"\n") else { break }; // incomplete: never decoded
        if line.contains(&0) {
            judged = false;
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match sdssplitargs(line) {
            Some(args) if args.is_empty() => {}
            Some(args) => expected.push(args),
            None => {
                expected_error = true;
                break;
            }
        }
    }

    let mut dec = Decoder::default();
    let mut got = Vec::new();
    let mut error = None;
    loop {
        match dec.next(&input) {
            Ok(Some(args)) => got.push(args.iter().map(<[u8]>::to_vec).collect::<Vec<_>>()),
            Ok(None) => break,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }

    if !judged {
        return;
    }
    assert_eq!(got, expected, "arguments differ from Redis's sdssplitargs");
    if expected_error {
        let e = error.expect("Redis refuses a line that Magpie accepts");
        assert_eq!(e.message(), "Protocol error: unbalanced quotes in request");
    } else {
        assert!(error.is_none(), "Magpie refuses what Redis accepts: {error:?}");
    }
});
