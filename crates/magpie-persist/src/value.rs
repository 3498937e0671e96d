//! Values as stored in snapshots.
//!
//! ```text
//! value := 0x00 bytes                       string
//!        | 0x01 ivarint                     integer-encoded string
//!        | 0x02 count:uvarint bytes*        list, head to tail
//!        | 0x03 count:uvarint (bytes bytes)* hash, field then value
//!        | 0x04 count:uvarint bytes*        set
//!        | 0x05 count:uvarint (bytes f64le)* sorted set, member then score, in order
//! ```

use magpie_store::{Frozen, Hash, Key, List, Set, Value, ZSet};

use crate::codec::{Cursor, DecodeError, Decoded, put_bytes, put_ivarint, put_uvarint};

const STR: u8 = 0;
const INT: u8 = 1;
const LIST: u8 = 2;
const HASH: u8 = 3;
const SET: u8 = 4;
const ZSET: u8 = 5;

pub fn encode_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Str(s) => {
            out.push(STR);
            put_bytes(out, s);
        }
        Value::Int(n) => {
            out.push(INT);
            put_ivarint(out, *n);
        }
        Value::List(l) => {
            out.push(LIST);
            put_uvarint(out, l.len() as u64);
            for element in l.iter() {
                put_bytes(out, element);
            }
        }
        Value::Hash(h) => {
            out.push(HASH);
            put_uvarint(out, h.len() as u64);
            for (field, value) in h.iter() {
                put_bytes(out, field);
                put_bytes(out, value);
            }
        }
        Value::Set(s) => {
            out.push(SET);
            put_uvarint(out, s.len() as u64);
            s.for_each(|m| put_bytes(out, m));
        }
        Value::ZSet(z) => {
            out.push(ZSET);
            put_uvarint(out, z.len() as u64);
            for (member, score) in z.iter() {
                put_bytes(out, member);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
    }
}

/// Encodes a frozen big collection (see `Value::freeze`) exactly as [`encode_value`] encodes
/// the value it was. Runs on the snapshot's thread, without any lock.
pub fn encode_frozen(out: &mut Vec<u8>, value: &Frozen) {
    encode_frozen_pausing(out, value, || {});
}

/// Elements encoded between two calls of `pause` in [`encode_frozen_pausing`].
const PAUSE_EVERY: usize = 16 * 1024;

/// [`encode_frozen`], calling `pause` every [`PAUSE_EVERY`] elements: a collection of millions
/// of elements takes a second or more to encode, and the snapshot thread lets the server's
/// threads run in between (on a shared core they would otherwise wait for its time slices).
pub fn encode_frozen_pausing(out: &mut Vec<u8>, value: &Frozen, mut pause: impl FnMut()) {
    let mut n = 0usize;
    let mut tick = |n: &mut usize| {
        *n += 1;
        if n.is_multiple_of(PAUSE_EVERY) {
            pause();
        }
    };
    match value {
        Frozen::List(l) => {
            out.push(LIST);
            put_uvarint(out, l.len() as u64);
            for element in l.iter() {
                put_bytes(out, element);
                tick(&mut n);
            }
        }
        Frozen::Hash(h) => {
            out.push(HASH);
            put_uvarint(out, h.len() as u64);
            for (field, value) in h.iter() {
                put_bytes(out, field);
                put_bytes(out, value);
                tick(&mut n);
            }
        }
        Frozen::Set(s) => {
            out.push(SET);
            put_uvarint(out, s.len() as u64);
            s.for_each(|m| {
                put_bytes(out, m);
                tick(&mut n);
            });
        }
        Frozen::ZSet(z) => {
            out.push(ZSET);
            put_uvarint(out, z.len() as u64);
            // Sorting is one stretch of work; the pause follows it.
            let order = z.in_order();
            n = PAUSE_EVERY - 1;
            for (member, score) in order {
                put_bytes(out, member);
                out.extend_from_slice(&score.to_le_bytes());
                tick(&mut n);
            }
        }
    }
}

pub fn decode_value(c: &mut Cursor<'_>) -> Decoded<Value> {
    match c.u8()? {
        STR => Ok(Value::Str(c.bytes()?.to_vec())),
        INT => Ok(Value::Int(c.ivarint()?)),
        SET => {
            let n = c.count(1)?;
            if n == 0 {
                return Err(DecodeError("an empty set".into()));
            }
            let mut set = Set::new();
            for _ in 0..n {
                let member = c.bytes()?;
                if !set.insert(member) {
                    return Err(DecodeError("a set member written twice".into()));
                }
            }
            Ok(Value::Set(Box::new(set)))
        }
        HASH => {
            let n = c.count(2)?;
            if n == 0 {
                return Err(DecodeError("an empty hash".into()));
            }
            let mut hash = Hash::new();
            for _ in 0..n {
                let (field, value) = (c.bytes()?, c.bytes()?);
                if !hash.insert(field, value) {
                    return Err(DecodeError("a hash field written twice".into()));
                }
            }
            Ok(Value::Hash(Box::new(hash)))
        }
        ZSET => {
            let n = c.count(9)?;
            if n == 0 {
                return Err(DecodeError("an empty sorted set".into()));
            }
            let mut entries: Vec<(Key, f64)> = Vec::with_capacity(n);
            for _ in 0..n {
                let member = c.bytes()?;
                let score = c.f64()?;
                if score.is_nan() {
                    return Err(DecodeError("a NaN score".into()));
                }
                // Written in order, each member once: anything else is damage.
                if let Some((m, s)) = entries.last()
                    && !(*s < score || (*s == score && &**m < member))
                {
                    return Err(DecodeError("sorted set entries out of order".into()));
                }
                entries.push((Key::new(member), score));
            }
            Ok(Value::ZSet(Box::new(ZSet::from_sorted(entries))))
        }
        LIST => {
            let n = c.count(1)?;
            if n == 0 {
                return Err(DecodeError("an empty list".into()));
            }
            let mut list = List::new();
            for _ in 0..n {
                list.push_back(c.bytes()?);
            }
            Ok(Value::List(Box::new(list)))
        }
        t => Err(DecodeError(format!("unknown value type {t}"))),
    }
}

#[cfg(test)]
mod zset_tests {
    use super::*;

    #[test]
    fn sorted_sets_round_trip_in_both_encodings() {
        let small =
            ZSet::from_entries(vec![(Key::new(b"a"), 1.5), (Key::new(b""), -0.0), (Key::new(b"b"), f64::INFINITY)]);
        let big =
            ZSet::from_entries((0..1000).map(|i| (Key::new(format!("m{i}").as_bytes()), f64::from(i % 7))).collect());
        for z in [small, big] {
            let mut buf = Vec::new();
            encode_value(&mut buf, &Value::ZSet(Box::new(z.clone())));
            let mut c = Cursor::new(&buf);
            let Ok(Value::ZSet(back)) = decode_value(&mut c) else { panic!("not a sorted set") };
            assert!(c.is_empty());
            assert_eq!((*back == z, back.encoding(), back.size()), (true, z.encoding(), z.size()));
        }
    }

    #[test]
    fn corrupt_sorted_sets_are_refused() {
        let entry = |m: u8, s: f64| {
            let mut v = vec![1, m];
            v.extend_from_slice(&s.to_le_bytes());
            v
        };
        let set = |entries: &[Vec<u8>]| {
            let mut v = vec![ZSET, entries.len() as u8];
            for e in entries {
                v.extend_from_slice(e);
            }
            v
        };
        for bad in [
            vec![ZSET, 0],
            set(&[entry(b'a', f64::NAN)]),
            set(&[entry(b'b', 1.0), entry(b'a', 1.0)]),
            set(&[entry(b'a', 2.0), entry(b'b', 1.0)]),
            set(&[entry(b'a', 1.0), entry(b'a', 1.0)]),
        ] {
            assert!(decode_value(&mut Cursor::new(&bad)).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    #[test]
    fn hashes_round_trip_in_both_encodings() {
        let small: Hash = [(&b"f"[..], &b"v"[..]), (b"", b"\0\r\n"), (b"n", b"42")].into_iter().collect();
        let big: Hash = (0..1000).map(|i| (format!("field:{i}"), "x".repeat(i % 100))).collect();
        for hash in [small, big] {
            let mut buf = Vec::new();
            encode_value(&mut buf, &Value::Hash(Box::new(hash.clone())));
            let mut c = Cursor::new(&buf);
            let Ok(Value::Hash(back)) = decode_value(&mut c) else { panic!("not a hash") };
            assert!(c.is_empty());
            assert_eq!((*back == hash, back.encoding(), back.size()), (true, hash.encoding(), hash.size()));
        }
    }

    #[test]
    fn corrupt_hashes_are_refused() {
        for bad in [&[HASH, 0][..], &[HASH, 2, 1, b'a', 0, 1, b'a', 0], &[HASH, 1, 1, b'a']] {
            assert!(decode_value(&mut Cursor::new(bad)).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod set_tests {
    use super::*;

    fn round_trip(value: &Value) -> Value {
        let mut buf = Vec::new();
        encode_value(&mut buf, value);
        let mut c = Cursor::new(&buf);
        let back = decode_value(&mut c).expect("decodes");
        assert!(c.is_empty(), "bytes left over");
        back
    }

    #[test]
    fn sets_round_trip_in_every_representation() {
        let intset = Set::from_members([&b"1"[..], b"-7", b"300000"]);
        let small = Set::from_members([&b"a"[..], b"", b"\0\r\n", b"42"]);
        let big: Vec<String> = (0..1000).map(|i| format!("member:{i}")).collect();
        let big = Set::from_members(big.iter().map(|m| m.as_bytes()));
        for set in [intset, small, big] {
            let encoding = set.encoding();
            let back = round_trip(&Value::Set(Box::new(set.clone())));
            let Value::Set(back) = back else { panic!("not a set") };
            assert_eq!((*back == set, back.encoding(), back.size()), (true, encoding, set.size()));
        }
    }

    #[test]
    fn corrupt_sets_are_refused() {
        for bad in [&[SET, 0][..], &[SET, 2, 1, b'a', 1, b'a'], &[SET, 3, 1, b'a'], &[SET, 1, 5, b'a']] {
            assert!(decode_value(&mut Cursor::new(bad)).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod list_tests {
    use super::*;

    #[test]
    fn lists_round_trip_in_order() {
        let small: List = [&b"a"[..], b"", b"\0\r\n", b"42"].into_iter().collect();
        let big: List = (0..10_000).map(|i| format!("element:{i}:{}", "x".repeat(i % 300))).collect();
        for list in [small, big] {
            let mut buf = Vec::new();
            encode_value(&mut buf, &Value::List(Box::new(list.clone())));
            let mut c = Cursor::new(&buf);
            let Ok(Value::List(back)) = decode_value(&mut c) else { panic!("not a list") };
            assert!(c.is_empty());
            assert_eq!((*back == list, back.size()), (true, list.size()));
        }
    }

    #[test]
    fn corrupt_lists_are_refused() {
        for bad in [&[LIST, 0][..], &[LIST, 2, 1, b'a'], &[LIST, 1, 5, b'a']] {
            assert!(decode_value(&mut Cursor::new(bad)).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod frozen_tests {
    use super::*;

    fn bigs() -> Vec<Value> {
        let m = |i: usize| format!("member:{i}:{}", "x".repeat(i % 40)).into_bytes();
        let n = 20_000;
        vec![
            Value::List(Box::new((0..n).map(m).collect())),
            Value::Set(Box::new(Set::from_members((0..n).map(m).collect::<Vec<_>>().iter().map(|v| &v[..])))),
            Value::Set(Box::new(Set::from_members(
                (0..n).map(|i| i.to_string()).collect::<Vec<_>>().iter().map(|v| v.as_bytes()),
            ))),
            Value::Hash(Box::new((0..n).map(|i| (m(i), m(i * 3))).collect())),
            Value::ZSet(Box::new(ZSet::from_entries(
                (0..n).map(|i| (Key::new(&m(i)), (i % 13) as f64 - 6.0)).collect(),
            ))),
        ]
    }

    /// Encoding a big image lets the server's threads run every few thousand elements, and
    /// pausing changes nothing in the bytes.
    #[test]
    fn encoding_a_big_image_pauses_regularly() {
        for mut value in bigs() {
            let frozen = value.freeze().expect("a big collection freezes");
            let (mut a, mut b, mut pauses) = (Vec::new(), Vec::new(), 0);
            encode_frozen(&mut a, &frozen);
            encode_frozen_pausing(&mut b, &frozen, || pauses += 1);
            assert_eq!(a, b);
            assert_eq!(
                pauses,
                frozen.len() / PAUSE_EVERY + usize::from(matches!(frozen, Frozen::ZSet(_))),
                "{}",
                value.type_name()
            );
        }
    }

    /// A frozen collection encodes to the very bytes of the value it was, even after the value
    /// changed, and decodes back to that value.
    #[test]
    fn frozen_values_encode_as_the_value_they_were() {
        for mut value in bigs() {
            let mut expected = Vec::new();
            encode_value(&mut expected, &value);
            let before = value.clone();
            let frozen = value.freeze().expect("a big collection freezes");
            // Changes after the freeze do not reach the image.
            match &mut value {
                Value::List(l) => {
                    l.push_front(b"new");
                    l.set(10_000, b"changed");
                    l.drop_back_one();
                }
                Value::Set(s) => {
                    s.insert(b"new");
                    s.pop_random();
                    s.remove(b"1");
                }
                Value::Hash(h) => {
                    h.insert(b"new", b"v");
                    h.insert(b"member:5:xxxxx", b"changed");
                }
                Value::ZSet(z) => {
                    z.insert(b"new", 100.0);
                    z.pop_with(false, |_, _| ());
                }
                _ => unreachable!(),
            }
            let mut got = Vec::new();
            encode_frozen(&mut got, &frozen);
            assert_eq!(got, expected, "{}", value.type_name());
            let back = decode_value(&mut Cursor::new(&got)).expect("decodes");
            assert_eq!(back, before);
            assert_ne!(value, before);
        }
    }
}
