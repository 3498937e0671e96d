//! Values between the HTTP API and the dispatcher: request bodies (JSON or MessagePack) read
//! into [`Val`], replies (RESP3, as the dispatcher writes them) turned into [`Val`], and
//! [`Val`] written back as JSON or MessagePack.
//!
//! Strings are bytes. JSON cannot hold bytes that are not UTF-8, so such a string is written
//! as `{"$base64": "<standard base64>"}`, and the same object is accepted wherever a request
//! takes a string; MessagePack carries them natively (`bin`).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use magpie_protocol::Frame;

/// A value of a request or an answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A string: any bytes.
    Bytes(Vec<u8>),
    Array(Vec<Val>),
    /// Pairs in order (a JSON object, a MessagePack map, a RESP3 map).
    Map(Vec<(Val, Val)>),
}

/// The key of JSON's form of a string that is not UTF-8.
pub(crate) const BASE64_KEY: &str = "$base64";

impl Val {
    pub(crate) fn str(s: &str) -> Val {
        Val::Bytes(s.as_bytes().to_vec())
    }

    pub(crate) fn map<const N: usize>(pairs: [(&str, Val); N]) -> Val {
        Val::Map(pairs.into_iter().map(|(k, v)| (Val::str(k), v)).collect())
    }

    /// The bytes of a string argument: a string, `{"$base64": ...}`, or a number (as its
    /// decimal text, so `{"offset": 5}` and `{"offset": "5"}` are the same). `None` for
    /// anything else.
    pub(crate) fn to_arg(&self) -> Option<Vec<u8>> {
        match self {
            Val::Bytes(b) => Some(b.clone()),
            Val::Int(n) => Some(n.to_string().into_bytes()),
            Val::Float(f) if f.is_finite() => Some(format_float(*f).into_bytes()),
            Val::Map(pairs) => match &pairs[..] {
                [(Val::Bytes(k), Val::Bytes(v))] if k == BASE64_KEY.as_bytes() => STANDARD.decode(v).ok(),
                _ => None,
            },
            _ => None,
        }
    }

    /// The value of `key` in a map.
    pub(crate) fn get(&self, key: &str) -> Option<&Val> {
        match self {
            Val::Map(pairs) => {
                pairs.iter().find(|(k, _)| matches!(k, Val::Bytes(b) if b == key.as_bytes())).map(|p| &p.1)
            }
            _ => None,
        }
    }

    /// A reply frame as a value. Nested errors (in an EXEC reply, say) become
    /// `{"error": "<message>"}`; top-level ones are the caller's business.
    pub(crate) fn from_frame(frame: Frame) -> Val {
        match frame {
            Frame::Simple(s) | Frame::Bulk(s) => Val::Bytes(s),
            Frame::Verbatim { text, .. } => Val::Bytes(text),
            Frame::Error(e) => Val::Map(vec![(Val::str("error"), Val::Bytes(e))]),
            Frame::Integer(n) => Val::Int(n),
            Frame::Null => Val::Null,
            Frame::Boolean(b) => Val::Bool(b),
            Frame::Double(text) => match text.parse::<f64>() {
                // JSON has no infinities or NaN: those stay text ("inf", "-inf", "nan").
                Ok(d) if d.is_finite() => Val::Float(d),
                _ => Val::Bytes(text.into_bytes()),
            },
            Frame::BigNumber(text) => Val::Bytes(text.into_bytes()),
            Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
                Val::Array(items.into_iter().map(Val::from_frame).collect())
            }
            Frame::Map(pairs) => {
                Val::Map(pairs.into_iter().map(|(k, v)| (Val::from_frame(k), Val::from_frame(v))).collect())
            }
            Frame::Attribute { value, .. } => Val::from_frame(*value),
        }
    }
}

/// A double as text that reads back as the same number.
fn format_float(f: f64) -> String {
    let mut buf = [0u8; 32];
    String::from_utf8_lossy(magpie_protocol::format_g17(f, &mut buf)).into_owned()
}

/// The encodings of bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Msgpack,
}

impl Format {
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Msgpack => "application/msgpack",
        }
    }

    /// The format a media type names (parameters ignored); `None` for any other.
    pub(crate) fn of_media_type(media: &str) -> Option<Format> {
        let essence = media.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" | "text/json" => Some(Format::Json),
            "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack" => Some(Format::Msgpack),
            _ => None,
        }
    }

    /// The format an `Accept` header asks for, in its order of listing (q-values are not
    /// weighed); `None` when it names neither (or accepts anything).
    pub(crate) fn of_accept(accept: &str) -> Option<Format> {
        accept.split(',').find_map(Format::of_media_type)
    }
}

/// Decodes a body: JSON or MessagePack, nested at most [`MAX_DEPTH`] deep.
pub(crate) fn decode(format: Format, body: &[u8]) -> Result<Val, String> {
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_slice(body);
            let v = de::Deserialize::deserialize(&mut de).map_err(|e| format!("invalid JSON: {e}"))?;
            de.end().map_err(|e| format!("invalid JSON: {e}"))?;
            Ok(v)
        }
        Format::Msgpack => {
            let mut de = rmp_serde::Deserializer::new(body);
            de.set_max_depth(MAX_DEPTH);
            let v: Val = de::Deserialize::deserialize(&mut de).map_err(|e| format!("invalid MessagePack: {e}"))?;
            if !de.get_ref().is_empty() {
                return Err("invalid MessagePack: bytes after the value".to_owned());
            }
            Ok(v)
        }
    }
}

/// Encodes an answer.
pub(crate) fn encode(format: Format, v: &Val) -> Vec<u8> {
    let enc = Enc { v, format };
    let out = match format {
        Format::Json => serde_json::to_vec(&enc).map_err(|e| e.to_string()),
        Format::Msgpack => rmp_serde::to_vec(&enc).map_err(|e| e.to_string()),
    };
    // Neither encoder fails on these values (keys are strings in JSON, floats finite): should
    // one, say so in the answer rather than panic.
    out.unwrap_or_else(|e| format!("{{\"status\":\"Error\",\"message\":\"encoding failed: {e}\"}}").into_bytes())
}

/// Nesting accepted in request bodies (serde_json's own limit is 128 too).
const MAX_DEPTH: usize = 128;

/// A value with the encoding it is written for.
struct Enc<'a> {
    v: &'a Val,
    format: Format,
}

impl serde::Serialize for Enc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sub = |v| Enc { v, format: self.format };
        match self.v {
            Val::Null => s.serialize_unit(),
            Val::Bool(b) => s.serialize_bool(*b),
            Val::Int(n) => s.serialize_i64(*n),
            Val::Float(f) => s.serialize_f64(*f),
            Val::Bytes(b) => match (std::str::from_utf8(b), self.format) {
                (Ok(text), _) => s.serialize_str(text),
                (Err(_), Format::Msgpack) => s.serialize_bytes(b),
                (Err(_), Format::Json) => {
                    let mut m = s.serialize_map(Some(1))?;
                    m.serialize_entry(BASE64_KEY, &STANDARD.encode(b))?;
                    m.end()
                }
            },
            Val::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&sub(item))?;
                }
                seq.end()
            }
            Val::Map(pairs) if self.format == Format::Json && !pairs.iter().all(|(k, _)| json_key(k).is_some()) => {
                // Keys JSON cannot name (aggregates, bytes that are not UTF-8): pairs instead.
                let mut seq = s.serialize_seq(Some(pairs.len()))?;
                for (k, v) in pairs {
                    seq.serialize_element(&[sub(k), sub(v)])?;
                }
                seq.end()
            }
            Val::Map(pairs) => {
                let mut m = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    match (self.format, json_key(k)) {
                        (Format::Json, Some(key)) => m.serialize_entry(&key, &sub(v))?,
                        _ => m.serialize_entry(&sub(k), &sub(v))?,
                    }
                }
                m.end()
            }
        }
    }
}

/// A map key as JSON's object key: strings, and numbers, booleans and null as their text.
fn json_key(k: &Val) -> Option<String> {
    match k {
        Val::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        Val::Int(n) => Some(n.to_string()),
        Val::Float(f) => Some(format_float(*f)),
        Val::Bool(b) => Some(b.to_string()),
        Val::Null => Some("null".to_owned()),
        Val::Array(_) | Val::Map(_) => None,
    }
}

impl<'de> de::Deserialize<'de> for Val {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Val, D::Error> {
        d.deserialize_any(ValVisitor)
    }
}

struct ValVisitor;

/// Elements reserved up front at most, whatever length a body declares.
const PREALLOC: usize = 1024;

impl<'de> Visitor<'de> for ValVisitor {
    type Value = Val;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON or MessagePack value")
    }

    fn visit_unit<E>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }

    fn visit_none<E>(self) -> Result<Val, E> {
        Ok(Val::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Val, E> {
        Ok(Val::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Val, E> {
        Ok(Val::Int(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Val, E> {
        // Beyond i64: kept as its text (no command takes such a number, but a value may be one).
        Ok(i64::try_from(n).map_or_else(|_| Val::Bytes(n.to_string().into_bytes()), Val::Int))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Val, E> {
        Ok(Val::Float(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<Val, E> {
        Ok(Val::Bytes(s.as_bytes().to_vec()))
    }

    fn visit_bytes<E>(self, b: &[u8]) -> Result<Val, E> {
        Ok(Val::Bytes(b.to_vec()))
    }

    fn visit_byte_buf<E>(self, b: Vec<u8>) -> Result<Val, E> {
        Ok(Val::Bytes(b))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(PREALLOC));
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Val::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(PREALLOC));
        while let Some((k, v)) = map.next_entry()? {
            pairs.push((k, v));
        }
        Ok(Val::Map(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_bytes_losslessly() {
        let v = Val::Array(vec![Val::str("plain"), Val::Bytes(vec![0xff, 0, b'a']), Val::Null, Val::Int(-3)]);
        let json = encode(Format::Json, &v);
        assert_eq!(String::from_utf8(json.clone()).unwrap(), r#"["plain",{"$base64":"/wBh"},null,-3]"#);
        let back = decode(Format::Json, &json).unwrap();
        let Val::Array(items) = back else { panic!() };
        assert_eq!(items[1].to_arg(), Some(vec![0xff, 0, b'a']));
        let mp = encode(Format::Msgpack, &v);
        assert_eq!(decode(Format::Msgpack, &mp).unwrap(), v);
    }

    #[test]
    fn maps_with_keys_json_cannot_name_become_pairs() {
        let v = Val::Map(vec![(Val::Int(1), Val::str("a")), (Val::str("b"), Val::Float(1.5))]);
        assert_eq!(String::from_utf8(encode(Format::Json, &v)).unwrap(), r#"{"1":"a","b":1.5}"#);
        let v = Val::Map(vec![(Val::Array(vec![]), Val::Null)]);
        assert_eq!(String::from_utf8(encode(Format::Json, &v)).unwrap(), r#"[[[],null]]"#);
    }

    #[test]
    fn frames_become_values() {
        let f = Frame::Map(vec![
            (Frame::Bulk(b"f".to_vec()), Frame::Double("inf".into())),
            (Frame::Bulk(b"g".to_vec()), Frame::Set(vec![Frame::Integer(1), Frame::Boolean(true)])),
        ]);
        assert_eq!(
            String::from_utf8(encode(Format::Json, &Val::from_frame(f))).unwrap(),
            r#"{"f":"inf","g":[1,true]}"#
        );
    }

    #[test]
    fn bad_bodies_are_errors() {
        for bad in [&b"{"[..], b"[1,]", b"\xff", b"{} {}", b""] {
            assert!(decode(Format::Json, bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(10_000);
        assert!(decode(Format::Json, deep.as_bytes()).is_err());
        let mut deep = vec![0x91u8; 10_000]; // fixarray of one, nested
        deep.push(0xc0);
        assert!(decode(Format::Msgpack, &deep).is_err());
        // A declared length of 4 billion elements with nothing behind it.
        assert!(decode(Format::Msgpack, &[0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode(Format::Msgpack, &[0xc0, 0xc0]).is_err());
    }
}
