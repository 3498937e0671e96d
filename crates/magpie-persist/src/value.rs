//! Values as stored in snapshots.
//!
//! ```text
//! value := 0x00 bytes                       string
//!        | 0x01 ivarint                     integer-encoded string
//!        | 0x02 count:uvarint bytes*        list, head to tail
//!        | 0x03 count:uvarint (bytes bytes)* hash, field then value
//!        | 0x04 count:uvarint bytes*        set
//!        | 0x05 count:uvarint (bytes f64le)* sorted set, member then score, in order
//!        | 0x06 stream                       stream (below)
//!
//! stream := nodes:uvarint (master:id listpack:bytes)*
//!           length:uvarint last:id first:id max-deleted:id entries-added:uvarint
//!           groups:uvarint group*
//! group  := name:bytes last:id entries-read:ivarint
//!           consumers:uvarint (name:bytes seen-time:ivarint)*
//!           pending:uvarint (id delivery-time:ivarint delivery-count:uvarint consumer:uvarint)*
//! id     := ms:uvarint seq:uvarint
//! ```
//!
//! A stream's nodes are Redis's listpacks as they are (see `magpie_store::stream`), checked
//! entry by entry when loaded; a pending entry names its owner by its index among the group's
//! consumers, which come first.

use magpie_store::stream::StreamMeta;
use magpie_store::{Frozen, Hash, Key, List, Set, Stream, StreamId, Value, ZSet};

use crate::codec::{Cursor, DecodeError, Decoded, put_bytes, put_ivarint, put_uvarint};

const STR: u8 = 0;
const INT: u8 = 1;
const LIST: u8 = 2;
const HASH: u8 = 3;
const SET: u8 = 4;
const ZSET: u8 = 5;
const STREAM: u8 = 6;

pub(crate) fn encode_value(out: &mut Vec<u8>, value: &Value) {
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
            for element in l {
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
        Value::Stream(s) => {
            out.push(STREAM);
            encode_stream(out, s);
        }
    }
}

/// Encodes a frozen big collection (see `Value::freeze`) exactly as [`encode_value`] encodes
/// the value it was. Runs on the snapshot's thread, without any lock.
pub(crate) fn encode_frozen(out: &mut Vec<u8>, value: &Frozen) {
    encode_frozen_pausing(out, value, || {});
}

/// Elements encoded between two calls of `pause` in [`encode_frozen_pausing`].
const PAUSE_EVERY: usize = 16 * 1024;

/// [`encode_frozen`], calling `pause` every [`PAUSE_EVERY`] elements: a collection of millions
/// of elements takes a second or more to encode, and the snapshot thread lets the server's
/// threads run in between (on a shared core they would otherwise wait for its time slices).
pub(crate) fn encode_frozen_pausing(out: &mut Vec<u8>, value: &Frozen, mut pause: impl FnMut()) {
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

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    put_uvarint(out, id.ms);
    put_uvarint(out, id.seq);
}

fn encode_stream(out: &mut Vec<u8>, s: &Stream) {
    put_uvarint(out, s.node_count() as u64);
    for (master, lp) in s.nodes() {
        put_id(out, master);
        put_bytes(out, lp.as_bytes());
    }
    let m = s.meta();
    put_uvarint(out, m.length);
    put_id(out, m.last_id);
    put_id(out, m.first_id);
    put_id(out, m.max_deleted_id);
    put_uvarint(out, m.entries_added);
    put_uvarint(out, s.group_count() as u64);
    for (name, g) in s.groups() {
        put_bytes(out, name);
        put_id(out, g.last_id());
        put_ivarint(out, g.entries_read());
        put_uvarint(out, g.consumers().len() as u64);
        for (name, c) in g.consumers() {
            put_bytes(out, name);
            put_ivarint(out, c.seen_time);
        }
        put_uvarint(out, g.pending().len() as u64);
        // Consumers are in name order, and the pending entries name theirs by position.
        let names: Vec<&[u8]> = g.consumers().map(|(n, _)| n).collect();
        for (id, nack) in g.pending() {
            put_id(out, *id);
            put_ivarint(out, nack.delivery_time);
            put_uvarint(out, nack.delivery_count);
            let owner = names.binary_search(&nack.owner()).unwrap_or(0);
            put_uvarint(out, owner as u64);
        }
    }
}

fn get_id(c: &mut Cursor<'_>) -> Decoded<StreamId> {
    Ok(StreamId::new(c.uvarint()?, c.uvarint()?))
}

fn decode_stream(c: &mut Cursor<'_>) -> Decoded<Stream> {
    let corrupt = |e: magpie_store::encoding::Corrupt| DecodeError(format!("a stream: {e}"));
    // A node takes at least its two ID numbers and a listpack's length.
    let n = c.count(3)?;
    let mut nodes = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let master = get_id(c)?;
        nodes.push((master, c.bytes()?.to_vec()));
    }
    let meta = StreamMeta {
        length: c.uvarint()?,
        last_id: get_id(c)?,
        first_id: get_id(c)?,
        max_deleted_id: get_id(c)?,
        entries_added: c.uvarint()?,
    };
    let mut s = Stream::from_parts(nodes, meta).map_err(corrupt)?;
    let groups = c.count(4)?;
    for _ in 0..groups {
        let name = c.bytes()?;
        let last_id = get_id(c)?;
        let entries_read = c.ivarint()?;
        let g = s.load_group(name, last_id, entries_read).map_err(corrupt)?;
        let consumers = c.count(2)?;
        let mut names = Vec::with_capacity(consumers.min(1024));
        for _ in 0..consumers {
            let name = c.bytes()?;
            let seen = c.ivarint()?;
            g.load_consumer(name, seen).map_err(corrupt)?;
            names.push(name);
        }
        let pending = c.count(5)?;
        for _ in 0..pending {
            let id = get_id(c)?;
            let time = c.ivarint()?;
            let count = c.uvarint()?;
            let owner = c.uvarint()?;
            let owner = usize::try_from(owner)
                .ok()
                .and_then(|i| names.get(i))
                .ok_or_else(|| DecodeError("a pending stream entry without its consumer".into()))?;
            g.load_nack(id, owner, time, count).map_err(corrupt)?;
        }
    }
    Ok(s)
}

pub(crate) fn decode_value(c: &mut Cursor<'_>) -> Decoded<Value> {
    match c.u8()? {
        STR => Ok(Value::Str(c.bytes()?.into())),
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
            Ok(Value::List(list))
        }
        STREAM => Ok(Value::Stream(Box::new(decode_stream(c)?))),
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
            let mut v = vec![ZSET, u8::try_from(entries.len()).unwrap()];
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
        let big = Set::from_members(big.iter().map(std::string::String::as_bytes));
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
            encode_value(&mut buf, &Value::List(list.clone()));
            let mut c = Cursor::new(&buf);
            let Ok(Value::List(back)) = decode_value(&mut c) else { panic!("not a list") };
            assert!(c.is_empty());
            assert_eq!((back == list, back.size()), (true, list.size()));
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
            Value::List((0..n).map(m).collect()),
            Value::Set(Box::new(Set::from_members((0..n).map(m).collect::<Vec<_>>().iter().map(|v| &v[..])))),
            Value::Set(Box::new(Set::from_members(
                (0..n).map(|i| i.to_string()).collect::<Vec<_>>().iter().map(std::string::String::as_bytes),
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

#[cfg(test)]
mod stream_tests {
    use super::*;
    use magpie_store::stream::{NewId, NodeLimits};

    fn sample() -> Stream {
        let mut s = Stream::new();
        for i in 1..=230u64 {
            let v = i.to_string();
            let args: [&[u8]; 4] = [b"f", v.as_bytes(), b"", b"\0\r\n"];
            let pairs = 1 + (i % 2) as usize;
            s.add(
                NewId::Exact(StreamId::new(i, i % 3)),
                args[..pairs * 2].iter().copied(),
                pairs,
                NodeLimits::default(),
                0,
            )
            .expect("adds");
        }
        s.delete_ids(&[StreamId::new(1, 1), StreamId::new(150, 0)]);
        s.create_group(b"g", StreamId::new(20, 2), 20);
        s.create_group(b"empty", StreamId::MIN, -1);
        let g = s.group_mut(b"g").expect("group");
        g.create_consumer(b"bob", 11);
        g.create_consumer(b"alice", 12);
        g.give(StreamId::new(3, 0), b"bob", 100, 3);
        g.give(StreamId::new(4, 1), b"alice", 101, 1);
        s
    }

    #[test]
    fn streams_round_trip_with_their_groups() {
        for s in [sample(), Stream::new()] {
            let mut buf = Vec::new();
            encode_value(&mut buf, &Value::Stream(Box::new(s.clone())));
            let mut c = Cursor::new(&buf);
            let Ok(Value::Stream(back)) = decode_value(&mut c) else { panic!("not a stream") };
            assert!(c.is_empty());
            assert_eq!(*back, s);
            assert_eq!(back.size(), s.size());
        }
    }

    #[test]
    fn corrupt_streams_are_refused_without_panicking() {
        let mut good = Vec::new();
        encode_value(&mut good, &Value::Stream(Box::new(sample())));
        // Every truncation, and every byte flipped, either fails cleanly or decodes to a
        // stream that can be walked.
        for cut in 0..good.len() {
            assert!(decode_value(&mut Cursor::new(&good[..cut])).is_err(), "cut at {cut}");
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x55;
            if let Ok(Value::Stream(s)) = decode_value(&mut Cursor::new(&bad)) {
                let _ = s.range(StreamId::MIN, StreamId::MAX, false).count();
                let _ = s.range(StreamId::MIN, StreamId::MAX, true).count();
            }
        }
    }
}
