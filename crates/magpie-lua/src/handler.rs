//! The error handler scripts run under (`__redis__err__handler`), and the reading of its result
//! (`luaExtractErrorInformation`).

use mlua::{Lua, Table, Value};

use crate::errors::{LResult, to_bytes, translate};
use crate::sandbox::{INTERNAL_CHUNK, env};
use crate::shebang::c_str;

struct Frame {
    what: &'static str,
    source: Option<String>,
    line: i64,
    internal: bool,
}

fn frame(lua: &Lua, level: usize) -> Option<Frame> {
    lua.inspect_stack(level, |d| {
        let s = d.source();
        let source = s.source.map(std::borrow::Cow::into_owned);
        let internal = source.as_deref() == Some(INTERNAL_CHUNK);
        Frame { what: s.what, source, line: d.current_line().map_or(-1, |l| l as i64), internal }
    })
}

/// The frames above the handler as a script would see them: Magpie's own Lua helpers, and the
/// functions they call, count as one C function (the library function they implement).
fn script_frames(lua: &Lua, want: usize) -> Vec<Frame> {
    let mut raw = Vec::new();
    let mut level = 1;
    while let Some(f) = frame(lua, level) {
        raw.push(f);
        level += 1;
        if raw.len() > want + 16 {
            break;
        }
    }
    let mut out: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < raw.len() && out.len() < want {
        let callee_of_internal = |j: usize| raw.get(j + 1).is_some_and(|f| f.internal);
        if raw[i].internal || (raw[i].what == "C" && callee_of_internal(i)) {
            while i < raw.len()
                && (raw[i].internal || raw[i].what == "tail" || (raw[i].what == "C" && callee_of_internal(i)))
            {
                i += 1;
            }
            out.push(Frame { what: "C", source: Some("=[C]".into()), line: -1, internal: false });
            continue;
        }
        out.push(Frame { what: raw[i].what, source: raw[i].source.take(), line: raw[i].line, internal: false });
        i += 1;
    }
    out
}

/// Redis's handler: `{err='ERR ' .. tostring(err)}` for a non-table error, and the source and
/// line of the function that raised it (its caller when that is a C function).
pub(crate) fn error_handler(lua: &Lua, err: Value) -> LResult<Value> {
    let err = translate(lua, err)?;
    let frames = script_frames(lua, 2);

    let info = match frames.first() {
        Some(f) if f.what == "C" => frames.get(1),
        f => f,
    };
    let t = match err {
        // Redis's handler (Lua code) sets `source` and `line` in the table: on a readonly one
        // (`error(redis)`) that write fails, and the handler runs again on that error, raised
        // at line 10 of its chunk.
        Value::Table(t) if crate::call::is_readonly(lua, &t) => {
            let t = lua.create_table()?;
            t.raw_set("err", "ERR err_handler_def:10: Attempt to modify a readonly table")?;
            t.raw_set("source", "@err_handler_def")?;
            t.raw_set("line", 10)?;
            return Ok(Value::Table(t));
        }
        Value::Table(t) => t,
        other => {
            let s: mlua::String = env(lua)?.stock_tostring.call(other)?;
            let mut msg = b"ERR ".to_vec();
            msg.extend_from_slice(&s.as_bytes());
            let t = lua.create_table()?;
            t.raw_set("err", lua.create_string(msg)?)?;
            t
        }
    };
    if let Some(f) = info {
        t.set("source", f.source.clone().unwrap_or_default())?;
        t.set("line", f.line)?;
    }
    Ok(Value::Table(t))
}

/// What the reply of a failed script is made of.
#[derive(Default, Debug)]
pub(crate) struct ErrInfo {
    pub msg: Option<Vec<u8>>,
    pub source: Option<Vec<u8>>,
    pub line: Option<Vec<u8>>,
    pub ignore_stats: bool,
}

impl ErrInfo {
    fn field(lua: &Lua, t: &Table, name: &str) -> Option<Vec<u8>> {
        match t.get::<Value>(name).ok()? {
            v @ (Value::String(_) | Value::Integer(_) | Value::Number(_)) => {
                to_bytes(lua, &v).map(|b| c_str(&b).to_vec())
            }
            _ => None,
        }
    }

    pub(crate) fn extract(lua: &Lua, t: &Table) -> ErrInfo {
        ErrInfo {
            msg: Self::field(lua, t, "err"),
            source: Self::field(lua, t, "source"),
            line: Self::field(lua, t, "line"),
            ignore_stats: matches!(t.get::<Value>("ignore_error_stats_update"), Ok(Value::Boolean(true))),
        }
    }

    /// For an error value that may not be a table (FUNCTION LOAD runs without the handler).
    pub(crate) fn of_value(lua: &Lua, v: &Value) -> ErrInfo {
        match v {
            Value::Table(t) => Self::extract(lua, t),
            v => match to_bytes(lua, v) {
                Some(s) => {
                    let mut msg = b"ERR ".to_vec();
                    msg.extend_from_slice(c_str(&s));
                    ErrInfo { msg: Some(msg), ..ErrInfo::default() }
                }
                None => ErrInfo::default(),
            },
        }
    }
}
