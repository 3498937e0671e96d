//! Values in RDB: reading every object type Redis 7.0 reads (`rdbLoadObject`), writing the
//! type and encoding Redis 7.0 would write (`rdbSaveObjectType`, `rdbSaveObject`).

use magpie_store::encoding::{Entry, intset, listpack, listpack::Listpack, ziplist, zipmap};
use magpie_store::set::MemberRef;
use magpie_store::{Hash, Key, List, Set, Value, ZSet, parse_i64};

use super::io::{
    Input, parse_double, put_int_string, put_len, put_string, read_binary_double, read_len, read_string,
    read_text_double,
};
use super::{Object, RdbError, ReadOptions, Thresholds, WriteOptions, module_type_name, stream, types};

/// Quicklist node containers (`QUICKLIST_NODE_CONTAINER_*`).
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;
/// Elements at least this long get a node of their own (`packed_threshold`, 1 GB).
const PACKED_THRESHOLD: usize = 1 << 30;
/// Size limits per node for `list-max-listpack-size` -1 to -5 (`optimization_level`).
const NODE_SIZE_LEVELS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// A node of a count-limited list never passes this many bytes (`SIZE_SAFETY_LIMIT`).
const NODE_SAFETY_LIMIT: usize = 8192;
/// What `_quicklistNodeAllowInsert` adds to an element's length for its listpack overhead.
const NODE_ENTRY_OVERHEAD: usize = 8;

/// Reads the value of type `rdbtype` (the byte already read). `Ok(None)` for an empty
/// collection, which Redis skips when loading a file and refuses in RESTORE.
pub fn read_object(inp: &mut impl Input, rdbtype: u8, opts: &ReadOptions) -> Result<Option<Object>, RdbError> {
    let value = match rdbtype {
        types::STRING => Value::string_from_vec(read_string(inp)?),
        types::LIST => {
            let n = read_len(inp)?;
            let mut list = List::new();
            for _ in 0..n {
                list.push_back(&read_string(inp)?);
            }
            Value::List(list)
        }
        types::SET => {
            let n = read_len(inp)?;
            let mut set = Set::new();
            for _ in 0..n {
                if !set.insert(&read_string(inp)?) {
                    return Err(RdbError::corrupt("Duplicate set members detected"));
                }
            }
            Value::Set(Box::new(set))
        }
        types::ZSET | types::ZSET_2 => {
            let n = read_len(inp)?;
            let mut entries = Vec::with_capacity(n.min(4096) as usize);
            for _ in 0..n {
                let member = read_string(inp)?;
                let score = if rdbtype == types::ZSET_2 { read_binary_double(inp)? } else { read_text_double(inp)? };
                entries.push((Key::new(&member), score));
            }
            zset_from(entries)?
        }
        types::HASH => {
            let n = read_len(inp)?;
            let mut hash = Hash::new();
            for _ in 0..n {
                let (field, value) = (read_string(inp)?, read_string(inp)?);
                if !hash.insert(&field, &value) {
                    return Err(RdbError::corrupt("Duplicate hash fields detected"));
                }
            }
            Value::Hash(Box::new(hash))
        }
        types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => {
            let n = read_len(inp)?;
            let mut list = List::new();
            for _ in 0..n {
                let container = if rdbtype == types::LIST_QUICKLIST_2 { read_len(inp)? } else { CONTAINER_PACKED };
                if container != CONTAINER_PACKED && container != CONTAINER_PLAIN {
                    return Err(RdbError::corrupt("Quicklist integrity check failed."));
                }
                let data = read_string(inp)?;
                if data.is_empty() {
                    return Err(RdbError::corrupt("Quicklist node of no bytes"));
                }
                if container == CONTAINER_PLAIN {
                    list.push_back(&data);
                } else if rdbtype == types::LIST_QUICKLIST_2 {
                    listpack::validate(&data).map_err(|_| RdbError::corrupt("Listpack integrity check failed."))?;
                    for e in listpack::iter(&data) {
                        e.with_bytes(|b| list.push_back(b));
                    }
                } else {
                    let entries =
                        ziplist::entries(&data).map_err(|_| RdbError::corrupt("Ziplist integrity check failed."))?;
                    for e in entries {
                        e.with_bytes(|b| list.push_back(b));
                    }
                }
            }
            Value::List(list)
        }
        types::HASH_ZIPMAP => {
            let blob = read_string(inp)?;
            let pairs = zipmap::pairs(&blob).map_err(|_| RdbError::corrupt("Zipmap integrity check failed."))?;
            let mut hash = Hash::new();
            for (f, v) in pairs {
                if !hash.insert(f, v) {
                    return Err(RdbError::corrupt("Hash zipmap with dup elements"));
                }
            }
            Value::Hash(Box::new(hash))
        }
        types::LIST_ZIPLIST => {
            let blob = read_string(inp)?;
            let entries =
                ziplist::entries(&blob).map_err(|_| RdbError::corrupt("List ziplist integrity check failed."))?;
            let mut list = List::new();
            for e in entries {
                e.with_bytes(|b| list.push_back(b));
            }
            Value::List(list)
        }
        types::SET_INTSET => {
            let blob = read_string(inp)?;
            let ints =
                intset::Intset::parse(&blob, true).map_err(|_| RdbError::corrupt("Intset integrity check failed."))?;
            let mut set = Set::new();
            for n in ints.iter() {
                set.insert_ref(MemberRef::Int(n));
            }
            Value::Set(Box::new(set))
        }
        types::ZSET_ZIPLIST | types::HASH_ZIPLIST => {
            let blob = read_string(inp)?;
            let what = if rdbtype == types::HASH_ZIPLIST { "Hash" } else { "Zset" };
            let entries = ziplist::entries(&blob)
                .map_err(|_| RdbError::corrupt(format!("{what} ziplist integrity check failed.")))?;
            pairs_value(rdbtype == types::HASH_ZIPLIST, &entries, what, "ziplist")?
        }
        types::HASH_LISTPACK | types::ZSET_LISTPACK => {
            let blob = read_string(inp)?;
            let what = if rdbtype == types::HASH_LISTPACK { "Hash" } else { "Zset" };
            let fail = || RdbError::corrupt(format!("{what} listpack integrity check failed."));
            listpack::validate(&blob).map_err(|_| fail())?;
            let entries: Vec<Entry<'_>> = listpack::iter(&blob).collect();
            pairs_value(rdbtype == types::HASH_LISTPACK, &entries, what, "listpack")?
        }
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 => {
            return Ok(Some(Object::Stream(Box::new(stream::read(inp, rdbtype, opts)?))));
        }
        types::MODULE | types::MODULE_2 => {
            let id = read_len(inp)?;
            return Err(RdbError::Module(format!(
                "The RDB file contains module data I can't load: no matching module type '{}'",
                module_type_name(id)
            )));
        }
        t => return Err(RdbError::corrupt(format!("Unknown RDB encoding type {t}"))),
    };
    Ok((!value.is_empty_collection()).then_some(Object::Value(value)))
}

/// A hash or sorted set from alternating entries (field, value or member, score), refusing an
/// odd count, a repeated field or member, and a score that is not a number.
fn pairs_value(is_hash: bool, entries: &[Entry<'_>], what: &str, enc: &str) -> Result<Value, RdbError> {
    let fail = || RdbError::corrupt(format!("{what} {enc} integrity check failed."));
    if !entries.len().is_multiple_of(2) {
        return Err(fail());
    }
    if is_hash {
        let mut hash = Hash::new();
        for pair in entries.chunks_exact(2) {
            let (f, v) = (pair[0].to_vec(), pair[1].to_vec());
            if !hash.insert(&f, &v) {
                return Err(fail());
            }
        }
        Ok(Value::Hash(Box::new(hash)))
    } else {
        let mut members = Vec::with_capacity(entries.len() / 2);
        for pair in entries.chunks_exact(2) {
            let score = match pair[1] {
                Entry::Int(n) => n as f64,
                Entry::Str(s) => parse_double(s).ok_or_else(fail)?,
            };
            members.push((Key::new(&pair[0].to_vec()), score));
        }
        zset_from(members)
    }
}

/// A sorted set from (member, score) pairs in any order, refusing NaN and repeated members.
fn zset_from(mut entries: Vec<(Key, f64)>) -> Result<Value, RdbError> {
    if entries.iter().any(|(_, s)| s.is_nan()) {
        return Err(RdbError::corrupt("Zset with NAN score detected"));
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if entries.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(RdbError::corrupt("Duplicate zset fields detected"));
    }
    Ok(Value::ZSet(Box::new(ZSet::from_entries(entries))))
}

/// Writes an object as Redis saves it: its type byte, then `key` if given (an RDB file's
/// entry; a DUMP payload has none), then its value.
pub fn write_object(out: &mut Vec<u8>, key: Option<&[u8]>, obj: &Object, opts: &WriteOptions) {
    match obj {
        Object::Stream(s) => {
            out.push(types::STREAM_LISTPACKS_2);
            if let Some(k) = key {
                put_string(out, k, opts.compression);
            }
            stream::write(out, s, opts.compression);
        }
        Object::Value(v) => write_value(out, key, v, opts),
    }
}

/// [`write_object`] for one of Magpie's values (no copy into an [`Object`] needed).
pub fn write_value(out: &mut Vec<u8>, key: Option<&[u8]>, value: &Value, opts: &WriteOptions) {
    let compress = opts.compression;
    let t = &opts.thresholds;
    let put_key = |out: &mut Vec<u8>, rdbtype: u8| {
        out.push(rdbtype);
        if let Some(k) = key {
            put_string(out, k, compress);
        }
    };
    match value {
        Value::Str(s) => {
            put_key(out, types::STRING);
            put_string(out, s, compress);
        }
        Value::Int(n) => {
            put_key(out, types::STRING);
            put_int_string(out, *n);
        }
        Value::List(list) => {
            put_key(out, types::LIST_QUICKLIST_2);
            let nodes = quicklist_nodes(list, t.list_max_listpack_size);
            put_len(out, nodes.len() as u64);
            for node in &nodes {
                match node {
                    Node::Plain(bytes) => {
                        put_len(out, CONTAINER_PLAIN);
                        put_string(out, bytes, compress);
                    }
                    Node::Packed(lp) => {
                        put_len(out, CONTAINER_PACKED);
                        put_string(out, lp.as_bytes(), compress);
                    }
                }
            }
        }
        Value::Set(set) => match set_as_intset(set, t) {
            Some(blob) => {
                put_key(out, types::SET_INTSET);
                put_string(out, &blob, compress);
            }
            None => {
                put_key(out, types::SET);
                put_len(out, set.len() as u64);
                set.for_each(|m| put_string(out, m, compress));
            }
        },
        Value::Hash(hash) => match hash_as_listpack(hash, t) {
            Some(lp) => {
                put_key(out, types::HASH_LISTPACK);
                put_string(out, lp.as_bytes(), compress);
            }
            None => {
                put_key(out, types::HASH);
                put_len(out, hash.len() as u64);
                for (f, v) in hash.iter() {
                    put_string(out, f, compress);
                    put_string(out, v, compress);
                }
            }
        },
        Value::Stream(s) => {
            put_key(out, types::STREAM_LISTPACKS_2);
            stream::write(out, &super::Stream::from(&**s), compress);
        }
        Value::ZSet(z) => match zset_as_listpack(z, t) {
            Some(lp) => {
                put_key(out, types::ZSET_LISTPACK);
                put_string(out, lp.as_bytes(), compress);
            }
            None => {
                put_key(out, types::ZSET_2);
                put_len(out, z.len() as u64);
                // Highest first, as Redis walks its skiplist from the tail.
                for (m, s) in z.iter_from(z.len().saturating_sub(1), true) {
                    put_string(out, m, compress);
                    out.extend_from_slice(&s.to_le_bytes());
                }
            }
        },
    }
}

enum Node {
    Packed(Listpack),
    Plain(Vec<u8>),
}

/// Splits a list into quicklist nodes as Redis does when the list is built by RPUSH
/// (`quicklistPushTail` and `_quicklistNodeAllowInsert`).
fn quicklist_nodes(list: &List, fill: i64) -> Vec<Node> {
    let fill = fill.clamp(-5, (1 << 15) - 1);
    let mut nodes: Vec<Node> = Vec::new();
    for e in list {
        let sz = e.len();
        if sz >= PACKED_THRESHOLD {
            nodes.push(Node::Plain(e.to_vec()));
            continue;
        }
        if let Some(Node::Packed(tail)) = nodes.last_mut()
            && node_allows_insert(tail.bytes(), tail.len(), fill, sz)
            && tail.push_str(e).is_ok()
        {
            continue;
        }
        let mut lp = Listpack::new();
        // An element under 1 GB always fits a new listpack.
        let _ = lp.push_str(e);
        nodes.push(Node::Packed(lp));
    }
    nodes
}

fn node_allows_insert(node_bytes: usize, count: usize, fill: i64, sz: usize) -> bool {
    let new_sz = node_bytes + sz + NODE_ENTRY_OVERHEAD;
    // A negative fill (-1..=-5 after the clamp) picks a size limit, -1 the first.
    if fill < 0
        && let Ok(level) = usize::try_from(-1 - fill)
        && NODE_SIZE_LEVELS.get(level).is_some_and(|&limit| new_sz <= limit)
    {
        return true;
    }
    if new_sz > NODE_SAFETY_LIMIT {
        return false;
    }
    i64::try_from(count).is_ok_and(|count| count < fill)
}

/// The intset Redis would hold `set` in: every member an integer, and few enough of them.
fn set_as_intset(set: &Set, t: &Thresholds) -> Option<Vec<u8>> {
    if set.len() > t.set_max_intset_entries {
        return None;
    }
    let mut ints = Vec::with_capacity(set.len());
    for m in set.iter() {
        ints.push(match m {
            MemberRef::Int(n) => n,
            MemberRef::Bytes(b) => parse_i64(b)?,
        });
    }
    ints.sort_unstable();
    Some(intset::encode(&ints))
}

/// The listpack Redis would hold `hash` in (fields and values in the hash's order).
fn hash_as_listpack(hash: &Hash, t: &Thresholds) -> Option<Listpack> {
    if hash.len() > t.hash_max_listpack_entries
        || hash.iter().any(|(f, v)| f.len() > t.hash_max_listpack_value || v.len() > t.hash_max_listpack_value)
    {
        return None;
    }
    let mut lp = Listpack::new();
    for (f, v) in hash {
        lp.push_str(f).ok()?;
        lp.push_str(v).ok()?;
        if lp.bytes() > listpack::SAFETY_SIZE {
            return None;
        }
    }
    Some(lp)
}

/// The listpack Redis would hold `z` in: member then score, lowest first, a score that is an
/// integer stored as one and any other as `%.17g` text (`zzlInsertAt`).
fn zset_as_listpack(z: &ZSet, t: &Thresholds) -> Option<Listpack> {
    if z.len() > t.zset_max_listpack_entries || z.iter().any(|(m, _)| m.len() > t.zset_max_listpack_value) {
        return None;
    }
    let mut lp = Listpack::new();
    for (m, s) in z.iter() {
        lp.push_str(m).ok()?;
        match double_as_int(s) {
            Some(n) => lp.push_int(n).ok()?,
            None => lp.push_str(format_double(s).as_bytes()).ok()?,
        }
        if lp.bytes() > listpack::SAFETY_SIZE {
            return None;
        }
    }
    Some(lp)
}

/// Redis's `double2ll`: the integer a double holds exactly, within +-2^62.
pub(crate) fn double_as_int(d: f64) -> Option<i64> {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if !(-LIMIT..=LIMIT).contains(&d) {
        return None;
    }
    // Within +-2^62 (checked above), so the cast only drops the fraction, which the next line
    // finds: a float-to-int conversion has no `try_from`.
    #[allow(clippy::cast_possible_truncation)]
    let n = d as i64;
    (n as f64 == d).then_some(n)
}

/// A double as Redis's `d2string` writes a non-integer one: `inf`, `-inf`, `nan`, or C's
/// `%.17g` (17 significant digits, trailing zeros dropped, an exponent below 1e-4 or from 1e17).
pub(crate) fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    if let Some(n) = double_as_int(d) {
        return n.to_string();
    }
    // 17 significant digits, correctly rounded, as glibc's printf.
    let sci = format!("{d:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    // A finite double's decimal exponent is within +-324.
    let exp: i16 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    if (-4..17).contains(&exp) {
        let places = usize::from(exp.unsigned_abs());
        let (int_part, frac) = if exp >= 0 {
            let split = (places + 1).min(digits.len());
            (digits[..split].to_string(), digits[split..].to_string())
        } else {
            ("0".to_string(), format!("{}{}", "0".repeat(places - 1), digits))
        };
        out.push_str(&int_part);
        let frac = frac.trim_end_matches('0');
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
    } else {
        out.push_str(&digits[..1]);
        let frac = digits[1..].trim_end_matches('0');
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    }
    out
}

#[cfg(test)]
mod tests;
