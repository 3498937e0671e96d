//! DEBUG DIGEST and DIGEST-VALUE: a 20-byte signature of the data, printed as 40 hex digits
//! as Redis prints its SHA-1 digests, built the way Redis's `debug.c` builds them: ordered
//! parts (a list's elements, a sorted set's members and scores) are chained, unordered ones
//! (a set's members, a hash's fields) are XORed, so the signature depends on the data only,
//! not on its encoding or the order a table holds it in; it is the same after a reload. The
//! hash is SHA-256 cut to 20 bytes, so the digits differ from Redis's for the same data. A
//! stream mixes its entries in order, its last ID, and each group's position and pending IDs.

use magpie_store::{StreamId, Value};
use sha2::{Digest as _, Sha256};

pub(super) type Digest = [u8; 20];

fn sha(parts: &[&[u8]]) -> Digest {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let full = h.finalize();
    let mut d = [0u8; 20];
    d.copy_from_slice(&full[..20]);
    d
}

/// Redis's `mixDigest`: the digest of the digest so far and `data` (order matters).
pub(super) fn mix(d: &mut Digest, data: &[u8]) {
    *d = sha(&[&d[..], data]);
}

/// Redis's `xorDigest`: XORs in the digest of `data` (order does not matter).
pub(super) fn xor(d: &mut Digest, data: &[&[u8]]) {
    for (a, b) in d.iter_mut().zip(sha(data)) {
        *a ^= b;
    }
}

/// The digest of a value (Redis's `xorObjectDigest`), with its expiry time if it has one.
pub(super) fn value(v: &Value, expire_at: Option<u64>) -> Digest {
    let mut d = [0u8; 20];
    let mut buf = itoa::Buffer::new();
    match v {
        Value::Str(_) | Value::Int(_) => {
            mix(&mut d, b"string");
            mix(&mut d, v.str_bytes(&mut buf).unwrap_or_default());
        }
        Value::List(l) => {
            mix(&mut d, b"list");
            for e in l {
                mix(&mut d, e);
            }
        }
        Value::Set(s) => {
            mix(&mut d, b"set");
            let mut members = [0u8; 20];
            s.for_each(|m| xor(&mut members, &[m]));
            mix(&mut d, &members);
        }
        Value::Hash(h) => {
            mix(&mut d, b"hash");
            let mut fields = [0u8; 20];
            for (f, val) in h.iter() {
                xor(&mut fields, &[f, val]);
            }
            mix(&mut d, &fields);
        }
        Value::ZSet(z) => {
            mix(&mut d, b"zset");
            for (m, score) in z.iter() {
                mix(&mut d, m);
                // -0 and 0 are one score.
                let score = if score == 0.0 { 0.0f64 } else { score };
                mix(&mut d, &score.to_le_bytes());
            }
        }
        Value::Stream(st) => {
            mix(&mut d, b"stream");
            for e in st.range(StreamId::MIN, StreamId::MAX, false) {
                mix(&mut d, &e.id.to_bytes());
                for (f, v) in e.fields() {
                    f.with_bytes(|f| mix(&mut d, f));
                    v.with_bytes(|v| mix(&mut d, v));
                }
            }
            mix(&mut d, &st.last_id().to_bytes());
            for (name, g) in st.groups() {
                mix(&mut d, name);
                mix(&mut d, &g.last_id().to_bytes());
                for id in g.pending().keys() {
                    mix(&mut d, &id.to_bytes());
                }
                for (consumer, c) in g.consumers() {
                    mix(&mut d, consumer);
                    for id in c.pending() {
                        mix(&mut d, &id.to_bytes());
                    }
                }
            }
        }
    }
    if let Some(at) = expire_at {
        mix(&mut d, b"!!expire!!");
        mix(&mut d, &at.to_le_bytes());
    }
    d
}

pub(super) fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unordered_parts_do_not_depend_on_order() {
        let (mut a, mut b) = ([0u8; 20], [0u8; 20]);
        xor(&mut a, &[b"x"]);
        xor(&mut a, &[b"y"]);
        xor(&mut b, &[b"y"]);
        xor(&mut b, &[b"x"]);
        assert_eq!(a, b);
        let (mut c, mut e) = ([0u8; 20], [0u8; 20]);
        mix(&mut c, b"x");
        mix(&mut c, b"y");
        mix(&mut e, b"y");
        mix(&mut e, b"x");
        assert_ne!(c, e);
        // Field boundaries count: ("ab", "c") is not ("a", "bc").
        let (mut f, mut g) = ([0u8; 20], [0u8; 20]);
        xor(&mut f, &[b"ab", b"c"]);
        xor(&mut g, &[b"a", b"bc"]);
        assert_ne!(f, g);
        assert_eq!(value(&Value::Int(12), None), value(&Value::Str(b"12".to_vec().into()), None));
        assert_ne!(value(&Value::Int(12), None), value(&Value::Int(12), Some(5)));
    }
}
