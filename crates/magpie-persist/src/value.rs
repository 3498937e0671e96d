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

use magpie_store::Value;

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
        // The collection types are being written (issue 4); until they hold elements there is
        // nothing but their (zero) count to write.
        Value::List(l) => {
            out.push(LIST);
            put_uvarint(out, l.len() as u64);
        }
        Value::Hash(h) => {
            out.push(HASH);
            put_uvarint(out, h.len() as u64);
        }
        Value::Set(s) => {
            out.push(SET);
            put_uvarint(out, s.len() as u64);
        }
        Value::ZSet(z) => {
            out.push(ZSET);
            put_uvarint(out, z.len() as u64);
        }
    }
}

pub fn decode_value(c: &mut Cursor<'_>) -> Decoded<Value> {
    match c.u8()? {
        STR => Ok(Value::Str(c.bytes()?.to_vec())),
        INT => Ok(Value::Int(c.ivarint()?)),
        t @ (LIST | HASH | SET | ZSET) => Err(DecodeError(format!("value type {t} is not supported yet"))),
        t => Err(DecodeError(format!("unknown value type {t}"))),
    }
}
