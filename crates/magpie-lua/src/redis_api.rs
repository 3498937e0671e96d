//! The `redis` table (`luaRegisterRedisAPI`, `scriptingInit`, `luaEngineInitEngine`) and
//! Redis's `math.random`.

use mlua::{Lua, MultiValue, Table, Value};

use crate::errors::{Args, LResult, error_table, error_text, format_g17, lua_error, raise_table, to_bytes};
use crate::host::{LogLevel, Repl};
use crate::link::Link;
use crate::rand48::LRAND48_MAX;
use crate::state::SharedRng;

pub(crate) const REDIS_VERSION: &str = "7.0.15";
pub(crate) const REDIS_VERSION_NUM: i64 = 0x0007_000f;

/// Which `redis` table to build.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// EVAL: everything, with the debugger's `breakpoint` and `debug` and the deprecated
    /// `replicate_commands`.
    Eval,
    /// FCALL: the same without those three.
    Function,
}

pub(crate) fn redis_table(lua: &Lua, flavour: Flavour) -> LResult<Table> {
    let t = lua.create_table()?;
    let Some(link) = Link::of(lua) else { return Err(raise_table(b"internal error: no link")) };
    crate::call::register(lua, &t, &link)?;
    register_log(lua, &t)?;
    register_version(&t)?;
    t.raw_set("setresp", lua.create_function(setresp)?)?;
    t.raw_set("sha1hex", lua.create_function(sha1hex)?)?;
    t.raw_set("error_reply", lua.create_function(error_reply)?)?;
    t.raw_set("status_reply", lua.create_function(status_reply)?)?;
    t.raw_set("set_repl", lua.create_function(set_repl)?)?;
    t.raw_set("REPL_NONE", 0)?;
    t.raw_set("REPL_AOF", 1)?;
    t.raw_set("REPL_SLAVE", 2)?;
    t.raw_set("REPL_REPLICA", 2)?;
    t.raw_set("REPL_ALL", 3)?;
    t.raw_set("acl_check_cmd", lua.create_function(acl_check_cmd)?)?;
    if flavour == Flavour::Eval {
        // The debugger (SCRIPT DEBUG) is not supported: breakpoint() says it is not active.
        t.raw_set("breakpoint", lua.create_function(|_, _: MultiValue| Ok(false))?)?;
        t.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
        t.raw_set("replicate_commands", lua.create_function(|_, _: MultiValue| Ok(true))?)?;
    }
    Ok(t)
}

pub(crate) fn register_version(t: &Table) -> LResult<()> {
    t.raw_set("REDIS_VERSION_NUM", REDIS_VERSION_NUM)?;
    t.raw_set("REDIS_VERSION", REDIS_VERSION)
}

pub(crate) fn register_log(lua: &Lua, t: &Table) -> LResult<()> {
    t.raw_set("log", lua.create_function(log)?)?;
    t.raw_set("LOG_DEBUG", 0)?;
    t.raw_set("LOG_VERBOSE", 1)?;
    t.raw_set("LOG_NOTICE", 2)?;
    t.raw_set("LOG_WARNING", 3)
}

/// Replaces `math.random` and `math.randomseed` with Redis's.
pub(crate) fn register_math(lua: &Lua, math: &Table) -> LResult<()> {
    math.raw_set("random", lua.create_function(math_random)?)?;
    math.raw_set("randomseed", lua.create_function(math_randomseed)?)
}

/// Whether a script is running (the functions that only work inside one check it).
fn active(lua: &Lua) -> bool {
    Link::of(lua).is_some_and(|l| l.active())
}

/// `luaArgsToRedisArgv`, for `redis.acl_check_cmd`: numbers as `%.17g`, strings as they are,
/// anything else refused (`redis.call` reads its arguments from the stack, see `call.rs`).
fn redis_argv(args: &[Value]) -> Result<Vec<Vec<u8>>, &'static [u8]> {
    if args.is_empty() {
        return Err(b"Please specify at least one argument for this redis lib call");
    }
    args.iter()
        .map(|v| match v {
            Value::Integer(i) => Ok(format_g17(*i as f64)),
            Value::Number(d) => Ok(format_g17(*d)),
            Value::String(s) => Ok(s.as_bytes().to_vec()),
            _ => Err(&b"Lua redis lib command arguments must be strings or integers"[..]),
        })
        .collect()
}

/// `luaLogCommand`.
fn log(lua: &Lua, args: MultiValue) -> LResult<()> {
    let a = crate::errors::Args::new(lua, args);
    if a.len() < 2 {
        return Err(raise_table(b"redis.log() requires two arguments or more."));
    }
    let Some(level) = a.to_number(1) else {
        return Err(raise_table(b"First argument must be a number (log level)."));
    };
    let level = match crate::errors::lua_int(level) {
        0 => LogLevel::Debug,
        1 => LogLevel::Verbose,
        2 => LogLevel::Notice,
        3 => LogLevel::Warning,
        _ => return Err(raise_table(b"Invalid debug level.")),
    };
    let mut msg = Vec::new();
    for j in 2..=a.len() {
        if let Some(s) = a.get(j).and_then(|v| to_bytes(lua, v)) {
            if j != 2 {
                msg.push(b' ');
            }
            msg.extend_from_slice(&s);
        }
    }
    if let Some(link) = Link::of(lua) {
        link.with_host(|host| host.log(level, &msg));
    }
    Ok(())
}

/// `luaSetResp`.
fn setresp(lua: &Lua, args: MultiValue) -> LResult<()> {
    let Some(link) = Link::of(lua).filter(|l| l.active()) else {
        return Err(raise_table(b"redis.setresp can only be called inside a script invocation"));
    };
    let a = Args::new(lua, args);
    if a.len() != 1 {
        return Err(raise_table(b"redis.setresp() requires one argument."));
    }
    let resp = match a.to_number(1).map(crate::errors::lua_int) {
        Some(2) => magpie_protocol::Resp::V2,
        Some(3) => magpie_protocol::Resp::V3,
        _ => return Err(raise_table(b"RESP version must be 2 or 3.")),
    };
    link.resp.set(resp);
    Ok(())
}

/// `luaRedisSetReplCommand`.
fn set_repl(lua: &Lua, args: MultiValue) -> LResult<()> {
    let Some(link) = Link::of(lua).filter(|l| l.active()) else {
        return Err(raise_table(b"redis.set_repl can only be called inside a script invocation"));
    };
    let a = Args::new(lua, args);
    if a.len() != 1 {
        return Err(raise_table(b"redis.set_repl() requires two arguments."));
    }
    let flags = a.to_number(1).map_or(0, crate::errors::lua_int);
    if flags & !3 != 0 {
        return Err(raise_table(b"Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE."));
    }
    link.with_host(|host| host.set_repl(Repl(flags as u8)));
    Ok(())
}

/// `luaRedisAclCheckCmdPermissionsCommand`.
fn acl_check_cmd(lua: &Lua, args: MultiValue) -> LResult<bool> {
    let Some(link) = Link::of(lua).filter(|l| l.active()) else {
        return Err(raise_table(b"redis.acl_check_cmd can only be called inside a script invocation"));
    };
    let argv = redis_argv(&args.into_vec()).map_err(raise_table)?;
    let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    match link.with_host(|host| host.acl_check_cmd(&argv)).flatten() {
        Some(b) => Ok(b),
        None => Err(raise_table(b"Invalid command passed to redis.acl_check_cmd()")),
    }
}

/// `luaRedisSha1hexCommand`.
fn sha1hex(lua: &Lua, args: MultiValue) -> LResult<String> {
    let a = Args::new(lua, args);
    if a.len() != 1 {
        return Err(raise_table(b"wrong number of arguments"));
    }
    let s = a.get(1).and_then(|v| to_bytes(lua, v)).unwrap_or_default();
    Ok(crate::sha1_hex(&s))
}

/// `luaRedisErrorReplyCommand`: returns (does not raise) an error table.
fn error_reply(lua: &Lua, args: MultiValue) -> LResult<Table> {
    let a = Args::new(lua, args);
    match (a.len(), a.get(1)) {
        (1, Some(Value::String(s))) => {
            let s = s.as_bytes();
            let s = crate::shebang::c_str(&s);
            let mut buf = Vec::with_capacity(s.len() + 1);
            if s.first() != Some(&b'-') {
                buf.push(b'-');
            }
            buf.extend_from_slice(s);
            error_table(lua, &error_text(&buf), false)
        }
        _ => error_table(lua, &error_text(b"wrong number or type of arguments"), false),
    }
}

/// `luaRedisStatusReplyCommand`.
fn status_reply(lua: &Lua, args: MultiValue) -> LResult<Table> {
    let a = Args::new(lua, args);
    match (a.len(), a.get(1)) {
        (1, Some(v @ Value::String(_))) => {
            let t = lua.create_table()?;
            t.raw_set("ok", v.clone())?;
            Ok(t)
        }
        _ => error_table(lua, &error_text(b"wrong number or type of arguments"), false),
    }
}

fn rng(lua: &Lua) -> Option<SharedRng> {
    lua.app_data_ref::<SharedRng>().map(|r| r.clone())
}

/// `redis_math_random`: Lua 5.1's math.random on redisLrand48.
fn math_random(lua: &Lua, args: MultiValue) -> LResult<f64> {
    let Some(rng) = rng(lua).filter(|_| active(lua)) else {
        return Err(lua_error(lua, "math.random can only be called inside a script invocation"));
    };
    let r = f64::from(rng.next() % LRAND48_MAX) / f64::from(LRAND48_MAX);
    let a = Args::new(lua, args);
    match a.len() {
        0 => Ok(r),
        1 => {
            let u = a.check_int(1)?;
            if u < 1 {
                return Err(crate::errors::arg_error(lua, 1, "interval is empty"));
            }
            Ok((r * f64::from(u)).floor() + 1.0)
        }
        2 => {
            let l = a.check_int(1)?;
            let u = a.check_int(2)?;
            if l > u {
                return Err(crate::errors::arg_error(lua, 2, "interval is empty"));
            }
            Ok((r * (f64::from(u) - f64::from(l) + 1.0)).floor() + f64::from(l))
        }
        _ => Err(lua_error(lua, "wrong number of arguments")),
    }
}

fn math_randomseed(lua: &Lua, args: MultiValue) -> LResult<()> {
    let Some(rng) = rng(lua).filter(|_| active(lua)) else {
        return Err(lua_error(lua, "math.randomseed can only be called inside a script invocation"));
    };
    let a = Args::new(lua, args);
    rng.seed(a.check_int(1)?);
    Ok(())
}
