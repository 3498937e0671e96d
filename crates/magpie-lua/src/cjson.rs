//! The `cjson` library (Lua CJSON 2.1.0 as Redis ships it, deps/lua/src/lua_cjson.c): the same
//! output byte for byte (numbers with `%.14g`, `/` escaped, sparse-array rules), the same
//! errors, and its configuration functions. Each module table (`cjson`, `cjson.new()`) has its
//! own configuration, which persists across scripts as in Redis.

use std::cell::RefCell;
use std::ffi::c_void;
use std::rc::Rc;

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use crate::errors::{Args, LResult, arg_error, c_i64, lua_error, type_error};
use crate::lstack::LStack;
use crate::numfmt::{format_g, strtod};

/// `LUAI_MAXCSTACK`.
const MAX_C_STACK: i64 = 8000;

#[derive(Clone, Debug)]
struct Config {
    sparse_convert: i32,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0 off, 1 on, 2 null.
    encode_invalid_numbers: i32,
    decode_invalid_numbers: i32,
    keep_buffer: i32,
    precision: i32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sparse_convert: 0,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: 1,
            keep_buffer: 1,
            precision: 14,
        }
    }
}

type Cfg = Rc<RefCell<Config>>;

fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut::<c_void>()))
}

pub(crate) fn open(lua: &Lua) -> mlua::Result<Table> {
    new_module(lua)
}

fn new_module(lua: &Lua) -> mlua::Result<Table> {
    let cfg: Cfg = Rc::new(RefCell::new(Config::default()));
    let t = lua.create_table()?;
    macro_rules! func {
        ($name:expr, $f:expr) => {{
            let cfg = cfg.clone();
            t.raw_set($name, lua.create_function(move |lua, args: MultiValue| $f(lua, &cfg, Args::new(lua, args)))?)?;
        }};
    }
    func!("encode", encode);
    func!("decode", decode);
    func!("encode_sparse_array", cfg_sparse);
    func!("encode_max_depth", |lua, cfg: &Cfg, a| int_option(lua, cfg, a, 1, i32::MAX, |c| &mut c.encode_max_depth));
    func!("decode_max_depth", |lua, cfg: &Cfg, a| int_option(lua, cfg, a, 1, i32::MAX, |c| &mut c.decode_max_depth));
    func!("encode_number_precision", |lua, cfg: &Cfg, a| int_option(lua, cfg, a, 1, 14, |c| &mut c.precision));
    func!("encode_keep_buffer", |lua, cfg: &Cfg, a| bool_option(lua, cfg, a, |c| &mut c.keep_buffer));
    func!("encode_invalid_numbers", cfg_encode_invalid);
    func!("decode_invalid_numbers", |lua, cfg: &Cfg, a| bool_option(lua, cfg, a, |c| &mut c.decode_invalid_numbers));
    t.raw_set("new", lua.create_function(|lua, _: MultiValue| new_module(lua))?)?;
    t.raw_set("null", null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

// ===== Configuration =====

/// `json_arg_init`.
fn arg_init(lua: &Lua, a: &Args<'_>, n: usize) -> LResult<()> {
    if a.len() > n {
        return Err(arg_error(lua, n + 1, "found too many arguments"));
    }
    Ok(())
}

fn set_int(lua: &Lua, a: &Args<'_>, n: usize, setting: &mut i32, min: i32, max: i32) -> LResult<Value> {
    if !a.is_none_or_nil(n) {
        let v = c_i64(a.check_number(n)?) as i32;
        if !(min <= v && v <= max) {
            return Err(arg_error(lua, 1, &format!("expected integer between {min} and {max}")));
        }
        *setting = v;
    }
    Ok(Value::Number(f64::from(*setting)))
}

/// `json_enum_option` with `options` and `bool_true` = 1.
fn set_enum(lua: &Lua, a: &Args<'_>, n: usize, setting: &mut i32, options: &[&str]) -> LResult<Value> {
    match a.get(n) {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(b)) => *setting = i32::from(*b),
        Some(_) => {
            let s = a.check_bytes(n)?;
            match options.iter().position(|o| o.as_bytes() == crate::shebang::c_str(&s)) {
                Some(i) => *setting = i as i32,
                None => {
                    let s = String::from_utf8_lossy(crate::shebang::c_str(&s)).into_owned();
                    return Err(arg_error(lua, n, &format!("invalid option '{s}'")));
                }
            }
        }
    }
    Ok(if *setting == 0 || *setting == 1 {
        Value::Boolean(*setting == 1)
    } else {
        Value::String(lua.create_string(options[*setting as usize])?)
    })
}

fn int_option(lua: &Lua, cfg: &Cfg, a: Args<'_>, min: i32, max: i32, f: fn(&mut Config) -> &mut i32) -> LResult<Value> {
    arg_init(lua, &a, 1)?;
    let mut c = cfg.borrow_mut();
    set_int(lua, &a, 1, f(&mut c), min, max)
}

fn bool_option(lua: &Lua, cfg: &Cfg, a: Args<'_>, f: fn(&mut Config) -> &mut i32) -> LResult<Value> {
    arg_init(lua, &a, 1)?;
    let mut c = cfg.borrow_mut();
    set_enum(lua, &a, 1, f(&mut c), &["off", "on"])
}

fn cfg_sparse(lua: &Lua, cfg: &Cfg, a: Args<'_>) -> LResult<MultiValue> {
    arg_init(lua, &a, 3)?;
    let mut c = cfg.borrow_mut();
    let convert = set_enum(lua, &a, 1, &mut c.sparse_convert, &["off", "on"])?;
    let ratio = set_int(lua, &a, 2, &mut c.sparse_ratio, 0, i32::MAX)?;
    let safe = set_int(lua, &a, 3, &mut c.sparse_safe, 0, i32::MAX)?;
    Ok(MultiValue::from_vec(vec![convert, ratio, safe]))
}

fn cfg_encode_invalid(lua: &Lua, cfg: &Cfg, a: Args<'_>) -> LResult<Value> {
    arg_init(lua, &a, 1)?;
    let mut c = cfg.borrow_mut();
    set_enum(lua, &a, 1, &mut c.encode_invalid_numbers, &["off", "on", "null"])
}

// ===== Encoding =====

fn escape(c: u8) -> Option<&'static [u8]> {
    Some(match c {
        0x08 => b"\\b",
        b'\t' => b"\\t",
        b'\n' => b"\\n",
        0x0c => b"\\f",
        b'\r' => b"\\r",
        b'"' => b"\\\"",
        b'/' => b"\\/",
        b'\\' => b"\\\\",
        _ => return None,
    })
}

fn append_string(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    for &c in s {
        if let Some(e) = escape(c) {
            out.extend_from_slice(e);
        } else if c < 0x20 || c == 0x7f {
            out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
        } else {
            out.push(c);
        }
    }
    out.push(b'"');
}

fn type_name(v: &Value) -> &'static str {
    crate::errors::type_name(Some(v))
}

struct Encoder<'a> {
    lua: &'a Lua,
    cfg: Config,
    out: Vec<u8>,
}

impl Encoder<'_> {
    fn exception(&self, v: &Value, reason: &str) -> mlua::Error {
        lua_error(self.lua, format!("Cannot serialise {}: {reason}", type_name(v)))
    }

    fn number(&mut self, v: &Value, d: f64) -> LResult<()> {
        match self.cfg.encode_invalid_numbers {
            0 => {
                if d.is_infinite() || d.is_nan() {
                    return Err(self.exception(v, "must not be NaN or Inf"));
                }
            }
            1 => {
                if d.is_nan() {
                    self.out.extend_from_slice(b"nan");
                    return Ok(());
                }
            }
            _ => {
                if d.is_infinite() || d.is_nan() {
                    self.out.extend_from_slice(b"null");
                    return Ok(());
                }
            }
        }
        self.out.extend_from_slice(format_g(d, self.cfg.precision as usize).as_bytes());
        Ok(())
    }

    /// `lua_array_length`: the array's length, or `None` for an object.
    fn array_length(&self, t: &Table) -> LResult<Option<i32>> {
        let (mut max, mut items) = (0i32, 0i32);
        for pair in t.pairs::<Value, Value>() {
            let (k, _) = pair?;
            let k = match k {
                Value::Integer(i) => i as f64,
                Value::Number(d) => d,
                _ => return Ok(None),
            };
            if k == 0.0 || !(k.floor() == k && k >= 1.0) {
                return Ok(None);
            }
            // `max = k` with C's double to int conversion.
            let ki = if k < 2_147_483_648.0 { k as i32 } else { i32::MIN };
            if k > f64::from(max) {
                max = ki;
            }
            items += 1;
        }
        let c = &self.cfg;
        if c.sparse_ratio > 0 && max > items.wrapping_mul(c.sparse_ratio) && max > c.sparse_safe {
            if c.sparse_convert == 0 {
                return Err(self.exception(&Value::Table(t.clone()), "excessively sparse array"));
            }
            return Ok(None);
        }
        Ok(Some(max))
    }

    /// `json_append_data`, with an explicit stack (nesting can go thousands deep). `h` is the
    /// height of Redis's Lua stack with the value on top.
    fn value(&mut self, v: &Value, depth: i32, h: i64) -> LResult<()> {
        enum Frame {
            Array { slot: usize, next: i32, n: i32, depth: i32, h: i64 },
            Object { slot: usize, key: usize, first: bool, depth: i32, h: i64 },
        }
        let mut ls = LStack::new(self.lua)?;
        let mut frames: Vec<Frame> = Vec::new();
        let mut next = Some((v.clone(), depth, h));
        loop {
            if let Some((v, depth, h)) = next.take() {
                if let Value::Table(t) = &v {
                    let depth = depth + 1;
                    if !(depth <= self.cfg.encode_max_depth && h + 3 <= MAX_C_STACK) {
                        return Err(lua_error(self.lua, format!("Cannot serialise, excessive nesting ({depth})")));
                    }
                    match self.array_length(t)? {
                        Some(n) if n > 0 => {
                            self.out.push(b'[');
                            let slot = ls.push(t.clone())?;
                            frames.push(Frame::Array { slot, next: 1, n, depth, h });
                        }
                        _ => {
                            self.out.push(b'{');
                            let slot = ls.push(t.clone())?;
                            let key = ls.push(Value::Nil)?;
                            frames.push(Frame::Object { slot, key, first: true, depth, h });
                        }
                    }
                } else {
                    self.scalar(&v)?;
                }
            }
            let Some(frame) = frames.last_mut() else { return Ok(()) };
            match frame {
                Frame::Array { slot, next: i, n, depth, h } => {
                    if *i > *n {
                        self.out.push(b']');
                        let slot = *slot;
                        frames.pop();
                        ls.truncate(slot - 1)?;
                        continue;
                    }
                    if *i > 1 {
                        self.out.push(b',');
                    }
                    let t: Table = ls.get(*slot)?;
                    next = Some((t.raw_get::<Value>(*i)?, *depth, *h + 1));
                    *i += 1;
                }
                Frame::Object { slot, key, first, depth, h } => {
                    let t: Table = ls.get(*slot)?;
                    let k: Value = ls.get(*key)?;
                    match crate::lstack::next(self.lua, &t, k)? {
                        None => {
                            self.out.push(b'}');
                            let slot = *slot;
                            frames.pop();
                            ls.truncate(slot - 1)?;
                        }
                        Some((k, item)) => {
                            if !*first {
                                self.out.push(b',');
                            }
                            *first = false;
                            ls.set(*key, k.clone())?;
                            self.key(&k)?;
                            next = Some((item, *depth, *h + 2));
                        }
                    }
                }
            }
        }
    }

    fn key(&mut self, k: &Value) -> LResult<()> {
        match k {
            Value::Integer(i) => {
                self.out.push(b'"');
                self.number(k, *i as f64)?;
                self.out.extend_from_slice(b"\":");
            }
            Value::Number(d) => {
                self.out.push(b'"');
                self.number(k, *d)?;
                self.out.extend_from_slice(b"\":");
            }
            Value::String(s) => {
                append_string(&mut self.out, &s.as_bytes());
                self.out.push(b':');
            }
            _ => return Err(self.exception(k, "table key must be a number or string")),
        }
        Ok(())
    }

    fn scalar(&mut self, v: &Value) -> LResult<()> {
        match v {
            Value::String(s) => append_string(&mut self.out, &s.as_bytes()),
            Value::Integer(i) => self.number(v, *i as f64)?,
            Value::Number(d) => self.number(v, *d)?,
            Value::Boolean(b) => self.out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            _ => return Err(self.exception(v, "type not supported")),
        }
        Ok(())
    }
}

fn encode(lua: &Lua, cfg: &Cfg, a: Args<'_>) -> LResult<mlua::String> {
    if a.len() != 1 {
        return Err(arg_error(lua, 1, "expected 1 argument"));
    }
    let mut e = Encoder { lua, cfg: cfg.borrow().clone(), out: Vec::new() };
    e.value(&a.v[0], 0, 1)?;
    lua.create_string(e.out)
}

/// Encodes a Lua value as Redis's `cjson.encode` does, with the default configuration.
pub(crate) fn encode_value(lua: &Lua, v: &Value) -> LResult<Vec<u8>> {
    let mut e = Encoder { lua, cfg: Config::default(), out: Vec::new() };
    e.value(v, 0, 1)?;
    Ok(e.out)
}

// ===== Decoding =====

#[derive(Clone, Copy, PartialEq, Debug)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Num,
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Tok {
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Num => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(e) => e,
        }
    }
}

struct Parser<'a> {
    /// The input up to its end (bytes past it read as NUL, as the C string's terminator).
    data: &'a [u8],
    ptr: usize,
    decode_invalid_numbers: bool,
    /// The last string or number token.
    string: Vec<u8>,
    number: f64,
    /// Where the last token starts.
    index: usize,
}

impl Parser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn is_invalid_number(&self) -> bool {
        let mut p = self.ptr;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        } else if c <= b'9' {
            return false;
        }
        let prefix = |w: &[u8]| (0..3).all(|i| self.at(p + i).eq_ignore_ascii_case(&w[i]));
        prefix(b"inf") || prefix(b"nan")
    }

    fn number_token(&mut self) -> Tok {
        let end = self.data[self.ptr..].iter().position(|&c| c == 0).map_or(self.data.len(), |e| self.ptr + e);
        let (v, n) = strtod(&self.data[self.ptr..end]);
        if n == 0 {
            return Tok::Error("invalid number");
        }
        self.number = v;
        self.ptr += n;
        Tok::Num
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0;
        for i in 0..4 {
            v = (v << 4) | (self.at(at + i) as char).to_digit(16)?;
        }
        Some(v)
    }

    fn unicode_escape(&mut self) -> bool {
        let Some(mut cp) = self.hex4(self.ptr + 2) else { return false };
        let mut escape_len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return false;
            }
            if self.at(self.ptr + 6) != b'\\' || self.at(self.ptr + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.ptr + 8) else { return false };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            escape_len = 12;
        }
        let s = &mut self.string;
        if cp <= 0x7F {
            s.push(cp as u8);
        } else if cp <= 0x7FF {
            s.extend_from_slice(&[(cp >> 6) as u8 | 0xC0, (cp & 0x3F) as u8 | 0x80]);
        } else if cp <= 0xFFFF {
            s.extend_from_slice(&[(cp >> 12) as u8 | 0xE0, ((cp >> 6) & 0x3F) as u8 | 0x80, (cp & 0x3F) as u8 | 0x80]);
        } else {
            s.extend_from_slice(&[
                (cp >> 18) as u8 | 0xF0,
                ((cp >> 12) & 0x3F) as u8 | 0x80,
                ((cp >> 6) & 0x3F) as u8 | 0x80,
                (cp & 0x3F) as u8 | 0x80,
            ]);
        }
        self.ptr += escape_len;
        true
    }

    fn string_token(&mut self) -> Tok {
        self.ptr += 1;
        self.string.clear();
        loop {
            let mut ch = self.at(self.ptr);
            if ch == b'"' {
                break;
            }
            if ch == 0 {
                self.index = self.ptr;
                return Tok::Error("unexpected end of string");
            }
            if ch == b'\\' {
                let e = self.at(self.ptr + 1);
                ch = match e {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 0x08,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 0x0c,
                    b'r' => b'\r',
                    b'u' => {
                        if self.unicode_escape() {
                            continue;
                        }
                        self.index = self.ptr;
                        return Tok::Error("invalid unicode escape code");
                    }
                    _ => {
                        self.index = self.ptr;
                        return Tok::Error("invalid escape code");
                    }
                };
                self.ptr += 1;
            }
            self.string.push(ch);
            self.ptr += 1;
        }
        self.ptr += 1;
        Tok::Str
    }

    fn next(&mut self) -> Tok {
        while matches!(self.at(self.ptr), b' ' | b'\t' | b'\n' | b'\r') {
            self.ptr += 1;
        }
        self.index = self.ptr;
        let ch = self.at(self.ptr);
        let single = match ch {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            _ => None,
        };
        if let Some(t) = single {
            self.ptr += 1;
            return t;
        }
        if ch == 0 {
            return Tok::End;
        }
        let unknown = matches!(ch, b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'"' | b'+' | b'-') || ch.is_ascii_digit();
        if !unknown {
            return Tok::Error("invalid token");
        }
        let starts = |w: &[u8]| (0..w.len()).all(|i| self.at(self.ptr + i) == w[i]);
        if ch == b'"' {
            return self.string_token();
        } else if ch == b'-' || ch.is_ascii_digit() {
            if !self.decode_invalid_numbers && self.is_invalid_number() {
                return Tok::Error("invalid number");
            }
            return self.number_token();
        } else if starts(b"true") {
            self.ptr += 4;
            return Tok::Bool(true);
        } else if starts(b"false") {
            self.ptr += 5;
            return Tok::Bool(false);
        } else if starts(b"null") {
            self.ptr += 4;
            return Tok::Null;
        } else if self.decode_invalid_numbers && self.is_invalid_number() {
            return self.number_token();
        }
        Tok::Error("invalid token")
    }
}

/// An aggregate being decoded; its table is in the decoder's [`LStack`] at `slot`.
enum Frame {
    Array { slot: usize, i: i64 },
    Object { slot: usize, key: Vec<u8> },
}

fn decode(lua: &Lua, cfg: &Cfg, a: Args<'_>) -> LResult<Value> {
    if a.len() != 1 {
        return Err(arg_error(lua, 1, "expected 1 argument"));
    }
    let data = match a.get(1) {
        Some(v @ (Value::String(_) | Value::Integer(_) | Value::Number(_))) => {
            crate::errors::to_bytes(lua, v).unwrap_or_default()
        }
        _ => return Err(type_error(lua, &a.v, 1, "string")),
    };
    let c = cfg.borrow().clone();
    decode_bytes(lua, &data, &c)
}

/// Decodes JSON text as Redis's `cjson.decode` does with the default configuration.
pub(crate) fn decode_default(lua: &Lua, data: &[u8]) -> LResult<Value> {
    decode_bytes(lua, data, &Config::default())
}

fn decode_bytes(lua: &Lua, data: &[u8], cfg: &Config) -> LResult<Value> {
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(lua_error(lua, "JSON parser does not support UTF-16 or UTF-32"));
    }
    let mut p = Parser {
        data,
        ptr: 0,
        decode_invalid_numbers: cfg.decode_invalid_numbers != 0,
        string: Vec::new(),
        number: 0.0,
        index: 0,
    };
    let parse_error = |p: &Parser<'_>, exp: &str, tok: Tok| {
        lua_error(lua, format!("Expected {exp} but found {} at character {}", tok.name(), p.index + 1))
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut ls = LStack::new(lua)?;
    // Height of Redis's Lua stack: the argument, then per level the table (and an object's key).
    let mut h: i64 = 1;
    let mut tok = p.next();
    loop {
        // Process one value (json_process_value), opening aggregates as needed.
        let mut value = match tok {
            Tok::Str => Value::String(lua.create_string(&p.string)?),
            Tok::Num => Value::Number(p.number),
            Tok::Bool(b) => Value::Boolean(b),
            Tok::Null => null(),
            Tok::ObjBegin | Tok::ArrBegin => {
                let obj = tok == Tok::ObjBegin;
                let depth = stack.len() as i64 + 1;
                let slots = if obj { 3 } else { 2 };
                if depth > i64::from(cfg.decode_max_depth) || h + slots > MAX_C_STACK {
                    return Err(lua_error(
                        lua,
                        format!("Found too many nested data structures ({depth}) at character {}", p.ptr),
                    ));
                }
                let table = lua.create_table()?;
                tok = p.next();
                if (obj && tok == Tok::ObjEnd) || (!obj && tok == Tok::ArrEnd) {
                    Value::Table(table)
                } else if obj {
                    if tok != Tok::Str {
                        return Err(parse_error(&p, "object key string", tok));
                    }
                    let key = std::mem::take(&mut p.string);
                    tok = p.next();
                    if tok != Tok::Colon {
                        return Err(parse_error(&p, "colon", tok));
                    }
                    let slot = ls.push(table)?;
                    stack.push(Frame::Object { slot, key });
                    h += 2;
                    tok = p.next();
                    continue;
                } else {
                    let slot = ls.push(table)?;
                    stack.push(Frame::Array { slot, i: 1 });
                    h += 1;
                    continue;
                }
            }
            other => return Err(parse_error(&p, "value", other)),
        };
        // Store the value into the open aggregates, closing the complete ones.
        loop {
            let Some(frame) = stack.last_mut() else {
                tok = p.next();
                if tok != Tok::End {
                    return Err(parse_error(&p, "the end", tok));
                }
                return Ok(value);
            };
            match frame {
                Frame::Array { slot, i } => {
                    ls.get::<Table>(*slot)?.raw_set(*i, value)?;
                    *i += 1;
                    tok = p.next();
                    if tok == Tok::ArrEnd {
                        value = close(&mut stack, &mut ls, &mut h)?;
                        continue;
                    }
                    if tok != Tok::Comma {
                        return Err(parse_error(&p, "comma or array end", tok));
                    }
                    tok = p.next();
                    break;
                }
                Frame::Object { slot, key } => {
                    ls.get::<Table>(*slot)?.raw_set(lua.create_string(&*key)?, value)?;
                    tok = p.next();
                    if tok == Tok::ObjEnd {
                        value = close(&mut stack, &mut ls, &mut h)?;
                        continue;
                    }
                    if tok != Tok::Comma {
                        return Err(parse_error(&p, "comma or object end", tok));
                    }
                    tok = p.next();
                    if tok != Tok::Str {
                        return Err(parse_error(&p, "object key string", tok));
                    }
                    *key = std::mem::take(&mut p.string);
                    tok = p.next();
                    if tok != Tok::Colon {
                        return Err(parse_error(&p, "colon", tok));
                    }
                    tok = p.next();
                    break;
                }
            }
        }
    }
}

fn close(stack: &mut Vec<Frame>, ls: &mut LStack, h: &mut i64) -> LResult<Value> {
    let (slot, levels) = match stack.pop() {
        Some(Frame::Array { slot, .. }) => (slot, 1),
        Some(Frame::Object { slot, .. }) => (slot, 2),
        None => return Ok(Value::Nil),
    };
    *h -= levels;
    let t: Value = ls.get(slot)?;
    ls.truncate(slot - 1)?;
    Ok(t)
}
