//! The `cmsgpack` library (lua-cmsgpack 0.4.0 as Redis ships it, deps/lua/src/lua_cmsgpack.c).

use mlua::{Lua, MultiValue, Table, Value};

use crate::errors::{Args, LResult, arg_error, c_i64, lua_error, raise_str};
use crate::lstack::LStack;

/// Tables nested deeper than this are packed as nil (so cycles end).
const MAX_NESTING: usize = 16;
/// `LUAI_MAXCSTACK`: how many values a C function may have on its stack.
const MAX_C_STACK: usize = 8000;

fn encode_bytes(buf: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        buf.push(0xa0 | len as u8);
    } else if len <= 0xff {
        buf.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        buf.push(0xda);
        buf.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        buf.push(0xdb);
        buf.extend_from_slice(&(len as u32).to_be_bytes());
    }
    buf.extend_from_slice(s);
}

fn encode_double(buf: &mut Vec<u8>, d: f64) {
    let f = d as f32;
    if d == f64::from(f) {
        buf.push(0xca);
        buf.extend_from_slice(&f.to_be_bytes());
    } else {
        buf.push(0xcb);
        buf.extend_from_slice(&d.to_be_bytes());
    }
}

fn encode_int(buf: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            buf.push(n as u8);
        } else if n <= 0xff {
            buf.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            buf.push(0xcd);
            buf.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            buf.push(0xce);
            buf.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            buf.push(0xcf);
            buf.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        buf.push(n as i8 as u8);
    } else if n >= -128 {
        buf.extend_from_slice(&[0xd0, n as u8]);
    } else if n >= -32768 {
        buf.push(0xd1);
        buf.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        buf.push(0xd2);
        buf.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        buf.push(0xd3);
        buf.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_len(buf: &mut Vec<u8>, n: usize, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        buf.push(fix | n as u8);
    } else if n <= 65535 {
        buf.push(b16);
        buf.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        buf.push(b32);
        buf.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn encode_number(buf: &mut Vec<u8>, n: f64) {
    // IS_INT64_EQUIVALENT: (int64_t)n == n, with C's cast.
    if !n.is_infinite() && c_i64(n) as f64 == n {
        encode_int(buf, c_i64(n));
    } else {
        encode_double(buf, n);
    }
}

/// `table_is_an_array`: keys exactly 1..n, all numbers that fit an int.
fn is_array(t: &Table) -> LResult<bool> {
    let (mut count, mut max) = (0i64, 0i64);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let n = match k {
            Value::Integer(i) => i as f64,
            Value::Number(d) => d,
            _ => return Ok(false),
        };
        if n <= 0.0 || n != n.trunc() || n > f64::from(i32::MAX) {
            return Ok(false);
        }
        max = max.max(n as i64);
        count += 1;
    }
    Ok(max == count)
}

fn encode(buf: &mut Vec<u8>, v: &Value, level: usize) -> LResult<()> {
    match v {
        Value::String(s) => encode_bytes(buf, &s.as_bytes()),
        Value::Boolean(b) => buf.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_number(buf, *i as f64),
        Value::Number(d) => encode_number(buf, *d),
        Value::Table(t) if level < MAX_NESTING => {
            if is_array(t)? {
                let len = t.raw_len();
                encode_len(buf, len, 0x90, 0xdc, 0xdd);
                for j in 1..=len {
                    let item: Value = t.get(j)?;
                    encode(buf, &item, level + 1)?;
                }
            } else {
                // Walked with the iterator (one key held at a time): wide tables would
                // otherwise hold a handle per element.
                encode_len(buf, crate::lstack::count_pairs(t)?, 0x80, 0xde, 0xdf);
                for pair in t.pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    encode(buf, &k, level + 1)?;
                    encode(buf, &v, level + 1)?;
                }
            }
        }
        _ => buf.push(0xc0),
    }
    Ok(())
}

fn pack(lua: &Lua, args: MultiValue) -> LResult<mlua::String> {
    if args.is_empty() {
        return Err(arg_error(lua, 0, "MessagePack pack needs input."));
    }
    let mut buf = Vec::new();
    for v in &args {
        encode(&mut buf, v, 0)?;
    }
    lua.create_string(buf)
}

enum Fail {
    Eof,
    BadFormat,
    Stack,
    /// `luaL_checkstack` of `mp_decode_to_lua_array`, before reading the elements.
    StackArray,
    Lua(mlua::Error),
}

impl From<mlua::Error> for Fail {
    fn from(e: mlua::Error) -> Self {
        Fail::Lua(e)
    }
}

/// An aggregate being filled by the decoder.
struct Open {
    /// Slot of the table in the decoder's [`LStack`]; a map's pending key is in `slot + 1`.
    slot: usize,
    /// Elements (arrays) or pairs (maps) still to read.
    left: usize,
    map: bool,
    /// For arrays the next index; for maps whether a key was read and waits for its value.
    index: i64,
    has_key: bool,
    /// Lua stack height Redis would have when decoding this aggregate's next element.
    h: usize,
}

struct Decoder<'a> {
    b: &'a [u8],
    at: usize,
}

impl Decoder<'_> {
    fn need(&self, n: usize) -> Result<(), Fail> {
        if self.b.len() - self.at < n { Err(Fail::Eof) } else { Ok(()) }
    }

    fn be(&self, from: usize, n: usize) -> u64 {
        self.b[self.at + from..self.at + from + n].iter().fold(0u64, |acc, &c| (acc << 8) | u64::from(c))
    }

    /// Decodes one top-level value, entered with the Lua stack `h` high.
    fn value(&mut self, lua: &Lua, h: usize) -> Result<Value, Fail> {
        let mut stack: Vec<Open> = Vec::new();
        let mut ls = LStack::new(lua)?;
        let mut h = h;
        loop {
            self.need(1)?;
            if h + 1 > MAX_C_STACK {
                return Err(Fail::Stack);
            }
            let c = self.b[self.at];
            let mut opened: Option<(usize, bool)> = None;
            let v = match c {
                0xcc => {
                    self.need(2)?;
                    self.at += 2;
                    Value::Number(f64::from(self.b[self.at - 1]))
                }
                0xd0 => {
                    self.need(2)?;
                    self.at += 2;
                    Value::Number(f64::from(self.b[self.at - 1] as i8))
                }
                0xcd | 0xd1 => {
                    self.need(3)?;
                    let u = self.be(1, 2) as u16;
                    self.at += 3;
                    Value::Number(if c == 0xcd { f64::from(u) } else { f64::from(u as i16) })
                }
                0xce | 0xd2 => {
                    self.need(5)?;
                    let u = self.be(1, 4) as u32;
                    self.at += 5;
                    Value::Number(if c == 0xce { f64::from(u) } else { f64::from(u as i32) })
                }
                0xcf | 0xd3 => {
                    self.need(9)?;
                    let u = self.be(1, 8);
                    self.at += 9;
                    Value::Number(u as i64 as f64)
                }
                0xc0 => {
                    self.at += 1;
                    Value::Nil
                }
                0xc3 | 0xc2 => {
                    self.at += 1;
                    Value::Boolean(c == 0xc3)
                }
                0xca => {
                    self.need(5)?;
                    let f = f32::from_bits(self.be(1, 4) as u32);
                    self.at += 5;
                    Value::Number(f64::from(f))
                }
                0xcb => {
                    self.need(9)?;
                    let d = f64::from_bits(self.be(1, 8));
                    self.at += 9;
                    Value::Number(d)
                }
                0xd9..=0xdb => {
                    let hl = match c {
                        0xd9 => 1,
                        0xda => 2,
                        _ => 4,
                    };
                    self.need(1 + hl)?;
                    let l = self.be(1, hl) as usize;
                    self.need(1 + hl + l)?;
                    let s = lua.create_string(&self.b[self.at + 1 + hl..self.at + 1 + hl + l])?;
                    self.at += 1 + hl + l;
                    Value::String(s)
                }
                0xdc..=0xdf => {
                    let hl = if c == 0xdc || c == 0xde { 2 } else { 4 };
                    self.need(1 + hl)?;
                    let l = self.be(1, hl) as usize;
                    self.at += 1 + hl;
                    opened = Some((l, c >= 0xde));
                    Value::Nil
                }
                _ if c & 0x80 == 0 => {
                    self.at += 1;
                    Value::Number(f64::from(c))
                }
                _ if c & 0xe0 == 0xe0 => {
                    self.at += 1;
                    Value::Number(f64::from(c as i8))
                }
                _ if c & 0xe0 == 0xa0 => {
                    let l = usize::from(c & 0x1f);
                    self.need(1 + l)?;
                    let s = lua.create_string(&self.b[self.at + 1..self.at + 1 + l])?;
                    self.at += 1 + l;
                    Value::String(s)
                }
                _ if c & 0xf0 == 0x90 || c & 0xf0 == 0x80 => {
                    self.at += 1;
                    opened = Some((usize::from(c & 0xf), c & 0xf0 == 0x80));
                    Value::Nil
                }
                _ => return Err(Fail::BadFormat),
            };
            let mut v = v;
            if let Some((len, map)) = opened {
                // Redis creates the table before reading a single element (no preallocation
                // from the declared length here either).
                let table = lua.create_table()?;
                if !map && h + 2 > MAX_C_STACK {
                    return Err(Fail::StackArray);
                }
                if len > 0 {
                    // Array elements are read with the table and the index on the stack, map
                    // keys with the table only.
                    let child_h = if map { h + 1 } else { h + 2 };
                    let slot = ls.push(table)?;
                    ls.push(Value::Nil)?;
                    stack.push(Open { slot, left: len, map, index: 1, has_key: false, h: child_h });
                    h = child_h;
                    continue;
                }
                v = Value::Table(table);
            }
            // Store `v` into the enclosing aggregates, closing those that are complete.
            loop {
                let Some(top) = stack.last_mut() else { return Ok(v) };
                let table: Table = ls.get(top.slot)?;
                if top.map {
                    if !top.has_key {
                        ls.set(top.slot + 1, v)?;
                        top.has_key = true;
                        h = top.h + 1;
                        break;
                    }
                    top.has_key = false;
                    let k: Value = ls.get(top.slot + 1)?;
                    set(&table, k, v)?;
                    top.left -= 1;
                } else {
                    table.raw_set(top.index, v)?;
                    top.index += 1;
                    top.left -= 1;
                }
                if top.left > 0 {
                    h = top.h;
                    break;
                }
                v = match stack.pop() {
                    Some(o) => {
                        let t: Value = ls.get(o.slot)?;
                        ls.truncate(o.slot - 1)?;
                        t
                    }
                    None => Value::Nil,
                };
            }
        }
    }
}

/// `lua_settable` on a fresh table: a nil or NaN key is an error.
fn set(t: &Table, k: Value, v: Value) -> Result<(), Fail> {
    match &k {
        Value::Nil => Err(Fail::Lua(raise_str("table index is nil"))),
        Value::Number(d) if d.is_nan() => Err(Fail::Lua(raise_str("table index is NaN"))),
        _ => Ok(t.raw_set(k, v)?),
    }
}

fn unpack_full(lua: &Lua, data: &[u8], nargs: usize, limit: i64, offset: i64) -> LResult<MultiValue> {
    let decode_all = limit == 0 && offset == 0;
    let len = data.len();
    if offset < 0 || limit < 0 {
        return Err(lua_error(
            lua,
            format!("Invalid request to unpack with offset of {} and limit of {}.", offset as i32, len as i32),
        ));
    } else if offset as u64 > len as u64 {
        return Err(lua_error(
            lua,
            format!("Start offset {} greater than input length {}.", offset as i32, len as i32),
        ));
    }
    let limit = if decode_all { i64::from(i32::MAX) } else { limit };
    let mut d = Decoder { b: &data[offset as usize..], at: 0 };
    let mut out = Vec::new();
    let mut cnt = 0i64;
    while d.at < d.b.len() && cnt < limit {
        match d.value(lua, nargs + out.len()) {
            Ok(v) => out.push(v),
            Err(Fail::Eof) => return Err(lua_error(lua, "Missing bytes in input.")),
            Err(Fail::BadFormat) => return Err(lua_error(lua, "Bad data format in input.")),
            Err(Fail::Stack) => {
                return Err(lua_error(
                    lua,
                    "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)",
                ));
            }
            Err(Fail::StackArray) => {
                return Err(lua_error(lua, "stack overflow (in function mp_decode_to_lua_array)"));
            }
            Err(Fail::Lua(e)) => return Err(e),
        }
        cnt += 1;
    }
    if !decode_all {
        let left = d.b.len() - d.at;
        let next = if left == 0 { -1 } else { (len - left) as i64 };
        out.insert(0, Value::Number(next as f64));
    }
    Ok(MultiValue::from_vec(out))
}

fn unpack(lua: &Lua, args: MultiValue) -> LResult<MultiValue> {
    let a = Args::new(lua, args);
    let data = a.check_bytes(1)?;
    unpack_full(lua, &data, a.len(), 0, 0)
}

fn unpack_one(lua: &Lua, args: MultiValue) -> LResult<MultiValue> {
    let a = Args::new(lua, args);
    let offset = if a.is_none_or_nil(2) { 0 } else { c_i64(a.check_number(2)?) };
    let data = a.check_bytes(1)?;
    unpack_full(lua, &data, 1, 1, offset)
}

fn unpack_limit(lua: &Lua, args: MultiValue) -> LResult<MultiValue> {
    let a = Args::new(lua, args);
    let limit = c_i64(a.check_number(2)?);
    let offset = if a.is_none_or_nil(3) { 0 } else { c_i64(a.check_number(3)?) };
    let data = a.check_bytes(1)?;
    unpack_full(lua, &data, 1, limit, offset)
}

pub(crate) fn open(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", lua.create_function(pack)?)?;
    t.raw_set("unpack", lua.create_function(unpack)?)?;
    t.raw_set("unpack_one", lua.create_function(unpack_one)?)?;
    t.raw_set("unpack_limit", lua.create_function(unpack_limit)?)?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

/// Packs values as `cmsgpack.pack` does (for the fuzz target).
pub(crate) fn pack_values(values: &[Value]) -> LResult<Vec<u8>> {
    let mut buf = Vec::new();
    for v in values {
        encode(&mut buf, v, 0)?;
    }
    Ok(buf)
}

/// Decodes a whole buffer into Lua values (for the fuzz target and tests).
pub(crate) fn unpack_bytes(lua: &Lua, data: &[u8]) -> mlua::Result<MultiValue> {
    unpack_full(lua, data, 1, 0, 0)
}
