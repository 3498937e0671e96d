//! Raising errors the way Redis's C code does, from Rust functions on mlua.
//!
//! Lua errors raised by C functions carry a value: a string (`luaL_error`, with the caller's
//! position in front) or, for Redis's API, a table `{err = "CODE message"}`. An mlua callback can
//! only raise an mlua `Error`, which reaches Lua as a userdata. So every Rust function raises a
//! [`Raise`] describing the value Redis would raise, and the few places where scripts can see an
//! error value (`pcall`, the error handler that formats the reply) turn it back into that value
//! with [`translate`]. Positions (`user_script:1: `) and function names in argument errors are
//! computed as `luaL_where` and `luaL_argerror` do, from the Lua call stack.

use std::fmt;

use mlua::{Error, Lua, MultiValue, Table, Value};

use crate::shebang::c_str;

/// The value a Rust function raises, as Redis's C code would raise it.
#[derive(Clone, Debug)]
pub(crate) enum Raise {
    /// A string error (`luaL_error`, `luaG_runerror`), position included when there is one.
    Str(Vec<u8>),
    /// `luaPushError` + `luaError`: a table `{err = msg}`, with `ignore_error_stats_update`
    /// when the command already counted the error.
    Table { err: Vec<u8>, ignore_stats: bool },
}

impl fmt::Display for Raise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raise::Str(s) | Raise::Table { err: s, .. } => f.write_str(&String::from_utf8_lossy(s)),
        }
    }
}

impl std::error::Error for Raise {}

pub(crate) type LResult<T> = Result<T, Error>;

pub(crate) fn raise_str(msg: impl Into<Vec<u8>>) -> Error {
    Error::external(Raise::Str(msg.into()))
}

/// `luaPushError(msg)` then `luaError`: raises `{err = "ERR msg"}` (or the code the message
/// starts with, as `luaPushErrorBuff` splits it).
pub(crate) fn raise_table(msg: &[u8]) -> Error {
    Error::external(Raise::Table { err: error_text(msg), ignore_stats: false })
}

/// The `err` text `luaPushErrorBuff` builds: `-CODE msg` keeps its code, anything else gets
/// `ERR`; the message is cut at a NUL (C strings) and trimmed of CR/LF at both ends.
pub(crate) fn error_text(buf: &[u8]) -> Vec<u8> {
    let buf = c_str(buf);
    let (code, msg): (&[u8], &[u8]) = match buf.strip_prefix(b"-") {
        Some(rest) => match rest.iter().position(|&c| c == b' ') {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", buf),
    };
    let crlf = |c: &u8| *c == b'\r' || *c == b'\n';
    let start = msg.iter().position(|c| !crlf(c)).unwrap_or(msg.len());
    let end = msg.iter().rposition(|c| !crlf(c)).map_or(start, |i| i + 1);
    let mut out = Vec::with_capacity(code.len() + 1 + end - start);
    out.extend_from_slice(code);
    out.push(b' ');
    out.extend_from_slice(&msg[start..end]);
    out
}

/// Builds the table `luaPushErrorBuff` pushes.
pub(crate) fn error_table(lua: &Lua, err: &[u8], ignore_stats: bool) -> LResult<Table> {
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(err)?)?;
    if ignore_stats {
        t.raw_set("ignore_error_stats_update", true)?;
    }
    Ok(t)
}

/// The Redis error an mlua error stands for, if it is one of ours.
pub(crate) fn find_raise(e: &Error) -> Option<&Raise> {
    let mut cur = e;
    loop {
        match cur {
            Error::CallbackError { cause, .. } => cur = cause,
            Error::WithContext { cause, .. } => cur = cause,
            Error::ExternalError(inner) => return inner.downcast_ref::<Raise>(),
            _ => return None,
        }
    }
}

fn is_memory_error(e: &Error) -> bool {
    let mut cur = e;
    loop {
        match cur {
            Error::CallbackError { cause, .. } | Error::WithContext { cause, .. } => cur = cause,
            Error::MemoryError(_) => return true,
            _ => return false,
        }
    }
}

/// The Lua value an error raised from Rust stands for: our [`Raise`] as Redis's value, a memory
/// error as Lua's own message, anything else (a bug) as its text.
pub(crate) fn error_value(lua: &Lua, e: &Error) -> LResult<Value> {
    Ok(match find_raise(e) {
        Some(Raise::Str(s)) => Value::String(lua.create_string(s)?),
        Some(Raise::Table { err, ignore_stats }) => Value::Table(error_table(lua, err, *ignore_stats)?),
        None if is_memory_error(e) => Value::String(lua.create_string("not enough memory")?),
        None => Value::String(lua.create_string(strip_traceback(&e.to_string()))?),
    })
}

/// `translate(v)`: error userdata from Rust become the value Redis raises; other values pass.
pub(crate) fn translate(lua: &Lua, v: Value) -> LResult<Value> {
    match v {
        Value::Error(e) => error_value(lua, &e),
        other => Ok(other),
    }
}

/// mlua adds a traceback to string errors caught when Rust calls Lua; the message alone.
pub(crate) fn strip_traceback(s: &str) -> &str {
    match s.find("\nstack traceback:") {
        Some(i) => &s[..i],
        None => s,
    }
}

/// An mlua error from calling a Lua function from Rust, re-raised unchanged (our own raises, or
/// the plain message of a Lua error).
pub(crate) fn reraise(e: Error) -> Error {
    if find_raise(&e).is_some() || is_memory_error(&e) {
        return e;
    }
    match &e {
        Error::RuntimeError(msg) => raise_str(strip_traceback(msg).as_bytes()),
        _ => e,
    }
}

/// `luaL_where(L, level)`: `"chunk:line: "` for a Lua function at that level, else nothing.
/// Level 0 is the running Rust function, 1 its caller.
pub(crate) fn where_prefix(lua: &Lua, level: usize) -> Vec<u8> {
    lua.inspect_stack(level, |d| {
        let line = d.current_line();
        let src = d.source();
        match (line, src.short_src) {
            (Some(line), Some(src)) if line > 0 => format!("{src}:{line}: ").into_bytes(),
            _ => Vec::new(),
        }
    })
    .unwrap_or_default()
}

/// `luaL_error` from a Rust function: the message after the caller's position.
pub(crate) fn lua_error(lua: &Lua, msg: impl AsRef<[u8]>) -> Error {
    let mut out = where_prefix(lua, 1);
    out.extend_from_slice(msg.as_ref());
    raise_str(out)
}

/// `luaL_argerror`: `bad argument #n to 'name' (msg)`, naming the function as its caller
/// called it.
pub(crate) fn arg_error(lua: &Lua, narg: usize, extramsg: &str) -> Error {
    let names = lua.inspect_stack(0, |d| {
        let n = d.names();
        (n.name.map(std::borrow::Cow::into_owned), n.name_what)
    });
    let msg = match names {
        None => format!("bad argument #{narg} ({extramsg})"),
        Some((name, what)) => {
            let mut narg = narg as i64;
            if what == Some("method") {
                narg -= 1;
                if narg == 0 {
                    let name = name.unwrap_or_else(|| "?".into());
                    return lua_error(lua, format!("calling '{name}' on bad self ({extramsg})"));
                }
            }
            format!("bad argument #{narg} to '{}' ({extramsg})", name.unwrap_or_else(|| "?".into()))
        }
    };
    lua_error(lua, msg)
}

/// `luaL_typename` of an argument (`no value` past the last one).
pub(crate) fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::LightUserData(_)) | Some(Value::UserData(_)) | Some(Value::Error(_)) => "userdata",
        Some(Value::Integer(_)) | Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// `luaL_typerror`.
pub(crate) fn type_error(lua: &Lua, args: &[Value], narg: usize, expected: &str) -> Error {
    arg_error(lua, narg, &format!("{expected} expected, got {}", type_name(args.get(narg - 1))))
}

/// Argument access with the C API's rules (1-based like Lua).
pub(crate) struct Args<'a> {
    pub lua: &'a Lua,
    pub v: Vec<Value>,
}

impl<'a> Args<'a> {
    pub(crate) fn new(lua: &'a Lua, args: MultiValue) -> Self {
        Args { lua, v: args.into_vec() }
    }

    pub(crate) fn len(&self) -> usize {
        self.v.len()
    }

    pub(crate) fn get(&self, n: usize) -> Option<&Value> {
        self.v.get(n - 1)
    }

    /// `lua_isnoneornil`.
    pub(crate) fn is_none_or_nil(&self, n: usize) -> bool {
        matches!(self.get(n), None | Some(Value::Nil))
    }

    /// `lua_tonumber` (0 when not convertible) and whether it converted (`lua_isnumber`).
    pub(crate) fn to_number(&self, n: usize) -> Option<f64> {
        to_number(self.lua, self.get(n)?)
    }

    /// `luaL_checknumber`.
    pub(crate) fn check_number(&self, n: usize) -> LResult<f64> {
        match self.to_number(n) {
            Some(d) => Ok(d),
            None => Err(type_error(self.lua, &self.v, n, "number")),
        }
    }

    /// `luaL_checkint`: the number truncated as C's casts do.
    pub(crate) fn check_int(&self, n: usize) -> LResult<i32> {
        Ok(lua_int(self.check_number(n)?))
    }

    pub(crate) fn opt_int(&self, n: usize, def: i32) -> LResult<i32> {
        if self.is_none_or_nil(n) { Ok(def) } else { self.check_int(n) }
    }

    /// `luaL_checklstring`: strings, and numbers converted as Lua does.
    pub(crate) fn check_bytes(&self, n: usize) -> LResult<Vec<u8>> {
        match self.get(n).and_then(|v| to_bytes(self.lua, v)) {
            Some(b) => Ok(b),
            None => Err(type_error(self.lua, &self.v, n, "string")),
        }
    }

    pub(crate) fn check_table(&self, n: usize) -> LResult<Table> {
        match self.get(n) {
            Some(Value::Table(t)) => Ok(t.clone()),
            _ => Err(type_error(self.lua, &self.v, n, "table")),
        }
    }

    /// `luaL_checkany`.
    pub(crate) fn check_any(&self, n: usize) -> LResult<Value> {
        match self.get(n) {
            Some(v) => Ok(v.clone()),
            None => Err(arg_error(self.lua, n, "value expected")),
        }
    }
}

/// `lua_tonumber`: numbers, and strings Lua can read as numbers.
pub(crate) fn to_number(lua: &Lua, v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(d) => Some(*d),
        Value::String(_) => lua.coerce_number(v.clone()).ok().flatten(),
        _ => None,
    }
}

/// `lua_tolstring`: strings, and numbers formatted as Lua does (`%.14g`).
pub(crate) fn to_bytes(lua: &Lua, v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Integer(_) | Value::Number(_) => {
            lua.coerce_string(v.clone()).ok().flatten().map(|s| s.as_bytes().to_vec())
        }
        _ => None,
    }
}

/// C's `(long long)d` on x86-64: truncation, and `LLONG_MIN` for NaN and out-of-range values.
pub(crate) fn c_i64(d: f64) -> i64 {
    if d.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&d) {
        i64::MIN
    } else {
        d as i64
    }
}

/// `luaL_checkint`'s conversion: `(int)(ptrdiff_t)d`, keeping the low 32 bits.
pub(crate) fn lua_int(d: f64) -> i32 {
    c_i64(d) as i32
}

/// A number as C's `printf("%.17g")` writes it on glibc, NaN's sign included.
pub(crate) fn format_g17(d: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    write_g17(d, &mut out);
    out
}

/// [`format_g17`], appended to `out`.
pub(crate) fn write_g17(d: f64, out: &mut Vec<u8>) {
    if d.is_nan() {
        out.extend_from_slice(if d.is_sign_negative() { b"-nan" } else { b"nan" });
        return;
    }
    let mut buf = [0u8; 32];
    out.extend_from_slice(magpie_protocol::format_g17(d, &mut buf));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_splits_codes_like_redis() {
        assert_eq!(error_text(b"-WRONGTYPE Operation against"), b"WRONGTYPE Operation against");
        assert_eq!(error_text(b"-ERR"), b"ERR ERR");
        assert_eq!(
            error_text(b"Unknown Redis command called from script"),
            b"ERR Unknown Redis command called from script"
        );
        assert_eq!(error_text(b"-OOM command not allowed\r\n"), b"OOM command not allowed");
        assert_eq!(error_text(b"a\0b"), b"ERR a");
    }

    #[test]
    fn c_casts() {
        assert_eq!(c_i64(1.9), 1);
        assert_eq!(c_i64(-1.9), -1);
        assert_eq!(c_i64(f64::NAN), i64::MIN);
        assert_eq!(c_i64(1e30), i64::MIN);
        assert_eq!(lua_int(2147483648.0), i32::MIN);
        assert_eq!(lua_int(f64::NAN), 0);
        assert_eq!(format_g17(-f64::NAN), b"-nan");
        assert_eq!(format_g17(0.1), b"0.10000000000000001");
    }
}
