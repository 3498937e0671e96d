//! Value types.

use magpie_protocol::parse_i64;

use crate::{Hash, List, Set, StrBuf, Stream, ZSet, decimal_len};

/// A stored value. Strings that are canonical 64-bit integers are kept as `Int` (Redis's
/// `int` encoding): smaller, and INCR needs no parsing. Collections are boxed, and a string's
/// buffer keeps its capacity in a byte (see [`StrBuf`]), so a `Value` is 16 bytes whatever it
/// holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(StrBuf),
    Int(i64),
    List(List),
    Hash(Box<Hash>),
    Set(Box<Set>),
    ZSet(Box<ZSet>),
    Stream(Box<Stream>),
}

/// A shard lends its values by reference ([`crate::EntryRef::value`]): compare them with
/// owned ones directly.
impl PartialEq<Value> for &Value {
    fn eq(&self, other: &Value) -> bool {
        **self == *other
    }
}

/// The integer a string is stored as ([`Value::string`]): a canonical decimal `i64`.
fn int_string(bytes: &[u8]) -> Option<i64> {
    if bytes.len() <= 20 { parse_i64(bytes) } else { None }
}

impl Value {
    /// A string value, stored as `Int` when the bytes are a canonical integer.
    pub fn string(bytes: &[u8]) -> Value {
        match int_string(bytes) {
            Some(n) => Value::Int(n),
            None => Value::Str(StrBuf::from(bytes)),
        }
    }

    /// [`Value::string`] of bytes already in a `Vec`: a string takes its buffer (no copy where
    /// the `Vec` is exactly as long as its bytes, as a decoder's are).
    pub fn string_from_vec(bytes: Vec<u8>) -> Value {
        match int_string(&bytes) {
            Some(n) => Value::Int(n),
            None => Value::Str(StrBuf::from(bytes)),
        }
    }

    /// Whether [`Value::string`] stores `bytes` as an integer.
    pub fn is_int_string(bytes: &[u8]) -> bool {
        int_string(bytes).is_some()
    }

    /// Makes this value the string `bytes`, reusing this value's buffer when it is a string
    /// buffer of about the right size (an overwrite then allocates nothing).
    pub fn assign_string(&mut self, bytes: &[u8]) {
        if let Value::Str(buf) = self
            && !Value::is_int_string(bytes)
        {
            buf.assign(bytes);
            return;
        }
        *self = Value::string(bytes);
    }

    /// Bytes of user data the value holds, as the server's `value_bytes` metric counts them: a
    /// string's length (an `Int`'s in decimal, as STRLEN reports it); for a collection, the
    /// lengths of its elements (fields and values; members; a sorted set's members plus 8
    /// bytes per score). O(1), so every write can keep the shard's total exact.
    pub fn size(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::Int(n) => decimal_len(*n),
            Value::List(l) => l.size(),
            Value::Hash(h) => h.size(),
            Value::Set(s) => s.size(),
            Value::ZSet(z) => z.size(),
            // A stream's size is the bytes of its nodes: kept exact as cheaply as the others.
            Value::Stream(s) => s.size(),
        }
    }

    /// A collection with no elements, which must not stay in the keyspace (Redis deletes a key
    /// whose list, hash, set or sorted set becomes empty; an empty stream stays).
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) | Value::Int(_) | Value::Stream(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }

    /// Redis's name for the type, as TYPE replies.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) | Value::Int(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }

    /// Redis's name for the internal encoding, as OBJECT ENCODING replies.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Int(_) => "int",
            Value::Str(s) if s.len() <= 44 => "embstr",
            Value::Str(_) => "raw",
            Value::List(l) => l.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
        }
    }

    /// The bytes of a string value, formatting an `Int` into `buf`. `None` for other types.
    pub fn str_bytes<'a>(&'a self, buf: &'a mut itoa::Buffer) -> Option<&'a [u8]> {
        match self {
            Value::Str(s) => Some(s),
            Value::Int(n) => Some(buf.format(*n).as_bytes()),
            _ => None,
        }
    }

    /// Turns an `Int` into `Str` so the bytes can be edited in place; `None` for other types.
    pub fn str_mut(&mut self) -> Option<&mut StrBuf> {
        if let Value::Int(n) = *self {
            *self = Value::Str(StrBuf::from(itoa::Buffer::new().format(n).as_bytes()));
        }
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A big collection frozen for a snapshot (see [`Value::freeze`]): the value as it was, which
/// the snapshot's thread reads without a lock while writers go on.
pub enum Frozen {
    List(crate::list::Frozen),
    Hash(crate::hash::Frozen),
    Set(crate::set::Frozen),
    ZSet(crate::zset::Frozen),
}

impl Frozen {
    /// Elements held.
    pub fn len(&self) -> usize {
        match self {
            Frozen::List(l) => l.len(),
            Frozen::Hash(h) => h.len(),
            Frozen::Set(s) => s.len(),
            Frozen::ZSet(z) => z.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of the value as it was frozen (for tests and tools; a snapshot encodes the image
    /// directly).
    pub fn to_value(&self) -> Value {
        match self {
            Frozen::List(l) => Value::List(l.iter().collect()),
            Frozen::Hash(h) => Value::Hash(Box::new(h.iter().collect())),
            Frozen::Set(s) => {
                let mut set = Set::new();
                s.for_each(|m| {
                    set.insert(m);
                });
                Value::Set(Box::new(set))
            }
            Frozen::ZSet(z) => {
                let entries = z.in_order().into_iter().map(|(m, s)| (crate::Key::new(m), s)).collect();
                Value::ZSet(Box::new(ZSet::from_sorted(entries)))
            }
        }
    }
}

impl Value {
    /// An image of this value for a snapshot, taken in O(chunks) without copying elements,
    /// when the value is a collection too big to encode under the shard's lock (more than a
    /// few thousand elements or a few hundred KB). The collection goes on being written; each
    /// chunk it changes while the image is alive is copied first (16 KB or 4096 elements at
    /// most), so the image keeps the value of this moment. `None` for anything smaller, which
    /// the snapshot encodes at once.
    pub fn freeze(&mut self) -> Option<Frozen> {
        match self {
            // A stream's nodes are listpacks that the snapshot copies as they are (memcpy
            // speed), so even a big one is encoded at once.
            Value::Str(_) | Value::Int(_) | Value::Stream(_) => None,
            Value::List(l) => l.freeze().map(Frozen::List),
            Value::Hash(h) => h.freeze().map(Frozen::Hash),
            Value::Set(s) => s.freeze().map(Frozen::Set),
            Value::ZSet(z) => z.freeze().map(Frozen::ZSet),
        }
    }

    /// Whether [`Value::freeze`] gives an image (checked without changing anything).
    pub fn wants_freezing(&self) -> bool {
        match self {
            Value::Str(_) | Value::Int(_) | Value::Stream(_) => false,
            Value::List(l) => l.wants_freezing(),
            Value::Hash(h) => h.wants_freezing(),
            Value::Set(s) => s.wants_freezing(),
            Value::ZSet(z) => z.wants_freezing(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_integers_are_encoded_as_int() {
        assert_eq!(Value::string(b"123"), Value::Int(123));
        assert_eq!(Value::string(b"-9223372036854775808"), Value::Int(i64::MIN));
        for s in [&b"0123"[..], b"+1", b" 1", b"-0", b"1.0", b"", b"99999999999999999999"] {
            assert_eq!(Value::string(s), Value::Str(s.into()));
        }
    }

    #[test]
    fn assign_string_reuses_a_fitting_buffer_and_keeps_int_encoding() {
        let mut v = Value::string(&[b'a'; 64]);
        let Value::Str(before) = &v else { panic!() };
        let ptr = before.as_ptr();
        v.assign_string(&[b'b'; 60]);
        let Value::Str(after) = &v else { panic!() };
        assert_eq!((after.as_ptr(), after.as_slice()), (ptr, &[b'b'; 60][..]));
        v.assign_string(b"42");
        assert_eq!(v, Value::Int(42));
        v.assign_string(&[b'c'; 1000]);
        assert_eq!(v, Value::Str(vec![b'c'; 1000].into()));
        v.assign_string(b"x");
        let Value::Str(small) = &v else { panic!() };
        assert!(small.capacity() < 1000, "a big buffer is not kept for a small value");
    }

    #[test]
    fn size_is_the_length_in_bytes_of_the_string() {
        for n in [0, 7, -7, 9, 10, -10, 99, 100, 12345, i64::MAX, i64::MIN, -1] {
            assert_eq!(Value::Int(n).size(), n.to_string().len(), "{n}");
        }
        assert_eq!(Value::string(b"hello").size(), 5);
        assert_eq!(Value::string(b"").size(), 0);
    }

    #[test]
    fn str_mut_turns_ints_into_bytes() {
        let mut v = Value::Int(-5);
        v.str_mut().unwrap().push(b'0');
        assert_eq!(v, Value::Str(b"-50".to_vec().into()));
    }

    #[test]
    fn a_value_is_sixteen_bytes() {
        assert_eq!(size_of::<Value>(), 16);
    }
}
