//! Turning replies and numbers into text: redis-cli's typed form, its raw form, JSON, and
//! human units.

use magpie_client::Frame;
use serde_json::{Map, Value, json};

/// `bytes` as a double-quoted string that can be pasted back into the shell: `\"`, `\\`,
/// `\n`, `\r`, `\t`, `\a`, `\b`, and `\xHH` for other bytes that are not printable text.
/// Printable UTF-8 beyond ASCII is kept as it is.
pub(crate) fn quoted(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

/// True for text that reads well unquoted: valid UTF-8 with no control characters but
/// newlines and tabs.
pub(crate) fn is_printable(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'))
}

/// A key as it is shown in listings: as is when it is plain (printable, no spaces or quotes),
/// quoted otherwise, so every key reads unambiguously.
pub(crate) fn key(bytes: &[u8]) -> String {
    let plain = !bytes.is_empty()
        && std::str::from_utf8(bytes)
            .is_ok_and(|s| s.chars().all(|c| !c.is_control() && !c.is_whitespace() && c != '"' && c != '\''));
    if plain { String::from_utf8_lossy(bytes).into_owned() } else { quoted(bytes) }
}

/// A reply as redis-cli prints it on a terminal: `(integer) 3`, `(nil)`, `"text"`,
/// `1) ...` for arrays, `1# key => value` for maps, `1~ ...` for sets.
pub(crate) fn typed(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    typed_into(frame, "", &mut out);
    out
}

fn typed_into(frame: &Frame, prefix: &str, out: &mut Vec<u8>) {
    let line = |out: &mut Vec<u8>, parts: &[&[u8]]| {
        for p in parts {
            out.extend_from_slice(p);
        }
        out.push(b'\n');
    };
    match frame {
        Frame::Simple(s) => line(out, &[s]),
        Frame::Error(e) => line(out, &[b"(error) ", e]),
        Frame::Integer(n) => line(out, &[b"(integer) ", n.to_string().as_bytes()]),
        Frame::Double(d) => line(out, &[b"(double) ", d.as_bytes()]),
        Frame::BigNumber(n) => line(out, &[b"(big number) ", n.as_bytes()]),
        Frame::Boolean(b) => line(out, &[if *b { b"(true)" } else { b"(false)" }]),
        Frame::Null => line(out, &[b"(nil)"]),
        Frame::Bulk(b) => line(out, &[quoted(b).as_bytes()]),
        // Verbatim text (INFO, CLIENT LIST in RESP3) is meant to be read as it is.
        Frame::Verbatim { text, .. } => line(out, &[text]),
        Frame::Attribute { value, .. } => typed_into(value, prefix, out),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            if items.is_empty() {
                let what: &[u8] = match frame {
                    Frame::Set(_) => b"(empty set)",
                    Frame::Push(_) => b"(empty push)",
                    _ => b"(empty array)",
                };
                return line(out, &[what]);
            }
            let sep = if matches!(frame, Frame::Set(_)) { '~' } else { ')' };
            let width = items.len().to_string().len();
            let inner = format!("{prefix}{}", " ".repeat(width + 2));
            for (i, item) in items.iter().enumerate() {
                // The first element follows its parent's index on the same line.
                let pre = if i == 0 { "" } else { prefix };
                out.extend_from_slice(format!("{pre}{:>width$}{sep} ", i + 1).as_bytes());
                typed_into(item, &inner, out);
            }
        }
        Frame::Map(pairs) => {
            if pairs.is_empty() {
                return line(out, &[b"(empty hash)"]);
            }
            let width = pairs.len().to_string().len();
            let inner = format!("{prefix}{}", " ".repeat(width + 2));
            for (i, (k, v)) in pairs.iter().enumerate() {
                let pre = if i == 0 { "" } else { prefix };
                out.extend_from_slice(format!("{pre}{:>width$}# ", i + 1).as_bytes());
                typed_into(k, &inner, out);
                out.pop();
                out.extend_from_slice(b" => ");
                typed_into(v, &inner, out);
            }
        }
    }
}

/// A reply as `redis-cli --raw` prints it: strings as their bytes, numbers bare, nothing for
/// nil, one line per element of an aggregate (a map's key, then its value).
pub(crate) fn raw(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    raw_into(frame, &mut out);
    out.push(b'\n');
    out
}

fn raw_into(frame: &Frame, out: &mut Vec<u8>) {
    match frame {
        Frame::Simple(b) | Frame::Error(b) | Frame::Bulk(b) | Frame::Verbatim { text: b, .. } => {
            out.extend_from_slice(b)
        }
        Frame::Integer(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Frame::Double(s) | Frame::BigNumber(s) => out.extend_from_slice(s.as_bytes()),
        Frame::Boolean(b) => out.extend_from_slice(if *b { b"(true)" } else { b"(false)" }),
        Frame::Null => {}
        Frame::Attribute { value, .. } => raw_into(value, out),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                raw_into(item, out);
            }
        }
        Frame::Map(pairs) => {
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b'\n');
                }
                raw_into(k, out);
                out.push(b'\n');
                raw_into(v, out);
            }
        }
    }
}

/// Bytes as JSON: a string when they are UTF-8, else `{"base64": "..."}`.
pub(crate) fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => json!({ "base64": base64(bytes) }),
    }
}

/// A reply as JSON: strings (see [`bytes_json`]), numbers, null, arrays; a map becomes an
/// object when its keys are strings, else an array of `[key, value]` pairs; an error reply
/// becomes `{"error": "..."}`.
pub(crate) fn frame_json(frame: &Frame) -> Value {
    match frame {
        Frame::Simple(b) | Frame::Bulk(b) | Frame::Verbatim { text: b, .. } => bytes_json(b),
        Frame::Error(e) => json!({ "error": String::from_utf8_lossy(e) }),
        Frame::Integer(n) => json!(n),
        Frame::Double(s) => match s.parse::<f64>() {
            Ok(d) if d.is_finite() => json!(d),
            _ => Value::String(s.clone()),
        },
        Frame::BigNumber(s) => Value::String(s.clone()),
        Frame::Boolean(b) => json!(b),
        Frame::Null => Value::Null,
        Frame::Attribute { value, .. } => frame_json(value),
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            Value::Array(items.iter().map(frame_json).collect())
        }
        Frame::Map(pairs) => {
            let string_keys: Option<Vec<&str>> =
                pairs.iter().map(|(k, _)| k.as_bytes().and_then(|b| std::str::from_utf8(b).ok())).collect();
            match string_keys {
                Some(keys) => {
                    let mut obj = Map::new();
                    for (k, (_, v)) in keys.into_iter().zip(pairs) {
                        obj.insert(k.to_owned(), frame_json(v));
                    }
                    Value::Object(obj)
                }
                None => Value::Array(pairs.iter().map(|(k, v)| json!([frame_json(k), frame_json(v)])).collect()),
            }
        }
    }
}

/// Standard base64 with padding.
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A byte count in binary units: `512 B`, `1.5 KiB`, `3.42 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let digits = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{v:.digits$} {}", UNITS[unit])
}

/// A duration in seconds as `3d 4h`, `2h 5m`, `4m 10s`, `9s`.
pub(crate) fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// An integer with thousands separators: `1,234,567`.
pub(crate) fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed_str(f: &Frame) -> String {
        String::from_utf8(typed(f)).unwrap()
    }

    fn bulk(s: &str) -> Frame {
        Frame::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn quoting_escapes_what_is_not_printable() {
        assert_eq!(quoted(b"hello"), r#""hello""#);
        assert_eq!(quoted(b"a \"b\" \\ \n\r\t\x07\x08"), r#""a \"b\" \\ \n\r\t\a\b""#);
        assert_eq!(quoted(&[0, 0x7f, 0xff, b'x']), r#""\x00\x7f\xffx""#);
        assert_eq!(quoted("café".as_bytes()), "\"café\"");
        // What is printed reads back as the same bytes in the shell.
        let all: Vec<u8> = (0..=255).collect();
        let line = format!("set k {}", quoted(&all));
        let words = magpie_protocol::split_line(line.as_bytes()).unwrap();
        assert_eq!(words[2], all);
    }

    #[test]
    fn keys_are_quoted_only_when_needed() {
        assert_eq!(key(b"user:1"), "user:1");
        assert_eq!(key(b"two words"), r#""two words""#);
        assert_eq!(key(b""), r#""""#);
        assert_eq!(key(b"\x01"), r#""\x01""#);
    }

    #[test]
    fn typed_output_matches_redis_cli() {
        assert_eq!(typed_str(&Frame::Integer(3)), "(integer) 3\n");
        assert_eq!(typed_str(&Frame::Null), "(nil)\n");
        assert_eq!(typed_str(&Frame::Simple(b"OK".to_vec())), "OK\n");
        assert_eq!(typed_str(&Frame::Error(b"ERR bad".to_vec())), "(error) ERR bad\n");
        assert_eq!(typed_str(&Frame::Array(vec![])), "(empty array)\n");
        assert_eq!(typed_str(&Frame::Double("1.5".into())), "(double) 1.5\n");
        assert_eq!(typed_str(&Frame::Boolean(true)), "(true)\n");
        let nested = Frame::Array(vec![
            bulk("a"),
            Frame::Array(vec![Frame::Integer(1), Frame::Array(vec![bulk("x"), Frame::Null])]),
            Frame::Null,
        ]);
        assert_eq!(typed_str(&nested), "1) \"a\"\n2) 1) (integer) 1\n   2) 1) \"x\"\n      2) (nil)\n3) (nil)\n");
        let ten = Frame::Array((0..10).map(Frame::Integer).collect());
        assert!(typed_str(&ten).starts_with(" 1) (integer) 0\n 2) (integer) 1\n"));
        assert!(typed_str(&ten).ends_with("10) (integer) 9\n"));
        let map = Frame::Map(vec![
            (bulk("server"), bulk("magpie")),
            (bulk("modules"), Frame::Array(vec![bulk("a"), bulk("b")])),
        ]);
        assert_eq!(typed_str(&map), "1# \"server\" => \"magpie\"\n2# \"modules\" => 1) \"a\"\n   2) \"b\"\n");
        assert_eq!(typed_str(&Frame::Set(vec![bulk("a"), bulk("b")])), "1~ \"a\"\n2~ \"b\"\n");
    }

    #[test]
    fn raw_output_is_the_bytes() {
        assert_eq!(raw(&Frame::Bulk(vec![0, 1, 2])), vec![0, 1, 2, b'\n']);
        assert_eq!(raw(&Frame::Null), b"\n");
        assert_eq!(raw(&Frame::Array(vec![bulk("a"), Frame::Integer(2)])), b"a\n2\n");
        assert_eq!(raw(&Frame::Map(vec![(bulk("k"), bulk("v"))])), b"k\nv\n");
    }

    #[test]
    fn json_of_replies() {
        let f = Frame::Array(vec![bulk("a"), Frame::Bulk(vec![0xff, 0]), Frame::Null, Frame::Integer(-1)]);
        assert_eq!(frame_json(&f), json!(["a", {"base64": "/wA="}, null, -1]));
        let m = Frame::Map(vec![(bulk("b"), Frame::Double("inf".into())), (bulk("a"), Frame::Double("1.5".into()))]);
        assert_eq!(serde_json::to_string(&frame_json(&m)).unwrap(), r#"{"b":"inf","a":1.5}"#, "order kept");
        assert_eq!(frame_json(&Frame::Error(b"ERR x".to_vec())), json!({"error": "ERR x"}));
        assert_eq!(frame_json(&Frame::Map(vec![(Frame::Integer(1), Frame::Null)])), json!([[1, null]]));
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
        assert_eq!(human_bytes(3_565_123), "3.40 MiB");
        assert_eq!(human_bytes(200 * 1024 * 1024), "200 MiB");
        assert_eq!(human_duration(9), "9s");
        assert_eq!(human_duration(250), "4m 10s");
        assert_eq!(human_duration(7500), "2h 5m");
        assert_eq!(human_duration(3 * 86_400 + 4 * 3600 + 59), "3d 4h");
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(grouped(-1000), "-1,000");
        assert_eq!(grouped(999), "999");
    }
}
