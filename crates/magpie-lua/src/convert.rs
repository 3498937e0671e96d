//! A script's return value to the reply (`luaReplyToRedisReply`), as Redis 7.0 converts it
//! ([`lua_to_resp`]). The other way, a command's reply to the value `redis.call` returns
//! (`redisProtocolToLuaType`), is in `call.rs`.

use magpie_protocol::{Reply, Resp};
use mlua::{Lua, Table, Value};

use crate::errors::{LResult, c_i64, format_g17};
use crate::lstack::{LStack, count_pairs};
use crate::shebang::c_str;

/// Lua's stack limit for a C function (`LUAI_MAXCSTACK`): converting a reply deeper than this
/// gives `reached lua stack limit` at the depth Redis gives it.
const MAX_C_STACK: u32 = 8000;

/// Limits on a script's reply.
#[derive(Clone, Copy, Debug)]
pub struct ReplyLimits {
    /// Most values (elements, keys, strings...) written before giving up: a table that holds
    /// itself twice would otherwise describe an endless reply.
    pub max_values: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits { max_values: 16 << 20 }
    }
}

/// A table being written, its elements still to come. Tables and keys live in an [`LStack`].
enum Frame {
    Array {
        slot: usize,
        next: i64,
        h: u32,
    },
    /// `key`: the slot of the last key written (its value comes next when `value_next`).
    Map {
        slot: usize,
        key: usize,
        value_next: bool,
        h: u32,
    },
    Set {
        slot: usize,
        key: usize,
        h: u32,
    },
}

/// Writes a script's return value as Redis's `luaReplyToRedisReply` does. `script_resp` is what
/// the script chose with `redis.setresp` (booleans follow it); `out.proto` is the caller's.
/// `Err(())` when the reply is larger than the limits allow (nothing is left in `out`).
pub(crate) fn lua_to_resp(
    lua: &Lua,
    v: Value,
    script_resp: Resp,
    out: &mut Reply,
    limits: ReplyLimits,
) -> LResult<Result<(), ()>> {
    let start = out.len();
    let mut ls = LStack::new(lua)?;
    let mut frames: Vec<Frame> = Vec::new();
    let mut written = 0usize;
    // Stack at the top: the error handler and the result.
    let mut next: Option<(Value, u32)> = Some((v, 2));
    // The innermost open table, kept while its elements are written one after the other.
    let mut cached: Option<(usize, Table)> = None;
    loop {
        if let Some((v, h)) = next.take() {
            written += 1;
            if written > limits.max_values {
                out.truncate(start);
                return Ok(Err(()));
            }
            emit(lua, v, h, script_resp, out, &mut ls, &mut frames)?;
        }
        // The next element of the innermost open table.
        let Some(frame) = frames.last_mut() else { break };
        let frame_slot = match frame {
            Frame::Array { slot, .. } | Frame::Map { slot, .. } | Frame::Set { slot, .. } => *slot,
        };
        let t: Table = match &cached {
            Some((s, t)) if *s == frame_slot => t.clone(),
            _ => {
                let t: Table = ls.get(frame_slot)?;
                cached = Some((frame_slot, t.clone()));
                t
            }
        };
        match frame {
            Frame::Array { slot, next: j, h } => {
                let v: Value = t.raw_get(*j)?;
                if matches!(v, Value::Nil) {
                    let slot = *slot;
                    frames.pop();
                    ls.truncate(slot - 1)?;
                    continue;
                }
                *j += 1;
                next = Some((v, *h + 1));
            }
            Frame::Map { slot, key, value_next, h } => {
                let k: Value = ls.get(*key)?;
                if *value_next {
                    *value_next = false;
                    next = Some((t.raw_get(k)?, *h + 3));
                    continue;
                }
                match crate::lstack::next(lua, &t, k)? {
                    None => {
                        let slot = *slot;
                        frames.pop();
                        ls.truncate(slot - 1)?;
                    }
                    Some((k, _)) => {
                        ls.set(*key, k.clone())?;
                        *value_next = true;
                        next = Some((k, *h + 4));
                    }
                }
            }
            Frame::Set { slot, key, h } => {
                let k: Value = ls.get(*key)?;
                match crate::lstack::next(lua, &t, k)? {
                    None => {
                        let slot = *slot;
                        frames.pop();
                        ls.truncate(slot - 1)?;
                    }
                    Some((k, _)) => {
                        ls.set(*key, k.clone())?;
                        next = Some((k, *h + 3));
                    }
                }
            }
        }
    }
    Ok(Ok(()))
}

/// Writes one value; a table that has elements opens a frame for them.
fn emit(
    lua: &Lua,
    v: Value,
    h: u32,
    script_resp: Resp,
    out: &mut Reply,
    ls: &mut LStack,
    frames: &mut Vec<Frame>,
) -> LResult<()> {
    if h + 4 > MAX_C_STACK {
        out.raw(b"-ERR reached lua stack limit\r\n");
        return Ok(());
    }
    match v {
        Value::String(s) => out.bulk(&s.as_bytes()),
        Value::Boolean(b) => match script_resp {
            Resp::V2 => {
                if b {
                    out.raw(b":1\r\n");
                } else {
                    out.null();
                }
            }
            Resp::V3 => out.bool(b),
        },
        Value::Integer(i) => out.int(i),
        Value::Number(d) => out.int(c_i64(d)),
        Value::Table(t) => table_reply(lua, &t, h, out, ls, frames)?,
        _ => out.null(),
    }
    Ok(())
}

fn table_reply(lua: &Lua, t: &Table, h: u32, out: &mut Reply, ls: &mut LStack, frames: &mut Vec<Frame>) -> LResult<()> {
    if let Value::String(_) = t.raw_get::<Value>("err")? {
        let msg = match t.get::<Value>("err")? {
            Value::String(s) => s.as_bytes().to_vec(),
            v @ (Value::Integer(_) | Value::Number(_)) => crate::errors::to_bytes(lua, &v).unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut line = vec![b'-'];
        line.extend_from_slice(c_str(&msg));
        write_error_format(out, &line);
        return Ok(());
    }
    if let Value::String(s) = t.raw_get::<Value>("ok")? {
        let b = s.as_bytes();
        out.raw(b"+");
        out.raw(&map_crlf(c_str(&b)));
        out.raw(b"\r\n");
        return Ok(());
    }
    if let Some(d) = number(&t.raw_get::<Value>("double")?) {
        write_double(out, d);
        return Ok(());
    }
    if let Value::String(s) = t.raw_get::<Value>("big_number")? {
        let num = map_crlf(&s.as_bytes());
        match out.proto {
            Resp::V2 => out.bulk(&num),
            Resp::V3 => {
                out.raw(b"(");
                out.raw(&num);
                out.raw(b"\r\n");
            }
        }
        return Ok(());
    }
    if let Value::Table(vt) = t.raw_get::<Value>("verbatim_string")?
        && let Value::String(format) = vt.raw_get::<Value>("format")?
        && let Value::String(s) = vt.raw_get::<Value>("string")?
    {
        let text = s.as_bytes();
        match out.proto {
            Resp::V2 => out.bulk(&text),
            Resp::V3 => {
                let f = format.as_bytes();
                let f = c_str(&f);
                let mut ext = [b' '; 3];
                for (i, c) in f.iter().take(3).enumerate() {
                    ext[i] = *c;
                }
                out.raw(format!("={}\r\n", text.len() + 4).as_bytes());
                out.raw(&ext);
                out.raw(b":");
                out.raw(&text);
                out.raw(b"\r\n");
            }
        }
        return Ok(());
    }
    if let Value::Table(m) = t.raw_get::<Value>("map")? {
        out.map(count_pairs(&m)?);
        let slot = ls.push(m)?;
        let key = ls.push(Value::Nil)?;
        frames.push(Frame::Map { slot, key, value_next: false, h });
        return Ok(());
    }
    if let Value::Table(s) = t.raw_get::<Value>("set")? {
        out.set(count_pairs(&s)?);
        let slot = ls.push(s)?;
        let key = ls.push(Value::Nil)?;
        frames.push(Frame::Set { slot, key, h });
        return Ok(());
    }
    let mut n = 0usize;
    while !matches!(t.raw_get::<Value>(n as i64 + 1)?, Value::Nil) {
        n += 1;
    }
    out.array(n);
    if n > 0 {
        let slot = ls.push(t.clone())?;
        frames.push(Frame::Array { slot, next: 1, h });
    }
    Ok(())
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(d) => Some(*d),
        _ => None,
    }
}

/// `addReplyDouble`.
pub(crate) fn write_double(out: &mut Reply, d: f64) {
    let text: Vec<u8> =
        if d.is_infinite() { if d > 0.0 { b"inf".to_vec() } else { b"-inf".to_vec() } } else { format_g17(d) };
    match out.proto {
        Resp::V2 => out.bulk(&text),
        Resp::V3 => {
            out.raw(b",");
            out.raw(&text);
            out.raw(b"\r\n");
        }
    }
}

/// CR and LF become spaces (`sdsmapchars(s, "\r\n", "  ")`).
pub(crate) fn map_crlf(s: &[u8]) -> Vec<u8> {
    s.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }).collect()
}

/// `addReplyErrorFormat`: CR/LF trimmed at both ends, the rest mapped to spaces, `-ERR ` added
/// unless the text starts with `-`.
pub(crate) fn write_error_format(out: &mut Reply, s: &[u8]) {
    let crlf = |c: &u8| *c == b'\r' || *c == b'\n';
    let start = s.iter().position(|c| !crlf(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !crlf(c)).map_or(start, |i| i + 1);
    let s = map_crlf(&s[start..end]);
    if s.first() != Some(&b'-') {
        out.raw(b"-ERR ");
    }
    out.raw(&s);
    out.raw(b"\r\n");
}
