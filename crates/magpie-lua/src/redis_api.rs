//! The `redis` table (`luaRegisterRedisAPI`, `scriptingInit`, `luaEngineInitEngine`) and
//! Redis's `math.random`.

use mlua::{Function, Lua, MultiValue, Table, Value};

use crate::errors::{
    Args, LResult, Raise, error_table, error_text, format_g17, lua_error, raise_table, reraise, to_bytes,
};
use crate::host::{LogLevel, Repl};
use crate::rand48::LRAND48_MAX;
use crate::state::{Mailbox, Op, RunState, SharedRng};

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
    t.raw_set("call", lua.create_function(|lua, args: MultiValue| redis_call(lua, args, true))?)?;
    t.raw_set("pcall", lua.create_function(|lua, args: MultiValue| redis_call(lua, args, false))?)?;
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

fn bridge(lua: &Lua) -> Option<Function> {
    lua.app_data_ref::<RunState>().and_then(|r| r.bridge.clone())
}

/// Runs `op` on the host through the run's bridge.
fn ask_host(lua: &Lua, bridge: &Function, op: Op) -> LResult<()> {
    if let Some(mut mb) = lua.app_data_mut::<Mailbox>() {
        mb.op = op;
    }
    bridge.call::<()>(()).map_err(reraise)
}

/// `luaArgsToRedisArgv`: numbers as `%.17g`, strings as they are, anything else refused.
/// Fills the mailbox's arguments.
fn args_to_mailbox(lua: &Lua, args: &[Value]) -> Result<(), &'static [u8]> {
    if args.is_empty() {
        return Err(b"Please specify at least one argument for this redis lib call");
    }
    let Some(mut mb) = lua.app_data_mut::<Mailbox>() else {
        return Err(b"Lua redis lib command arguments must be strings or integers");
    };
    let mb = &mut *mb;
    while mb.args.len() < args.len() {
        mb.args.push(Vec::new());
    }
    for (slot, v) in mb.args.iter_mut().zip(args) {
        slot.clear();
        match v {
            Value::Integer(i) => slot.extend_from_slice(&format_g17(*i as f64)),
            Value::Number(d) => slot.extend_from_slice(&format_g17(*d)),
            Value::String(s) => slot.extend_from_slice(&s.as_bytes()),
            _ => return Err(b"Lua redis lib command arguments must be strings or integers"),
        }
    }
    mb.nargs = args.len();
    Ok(())
}

/// Lifts the Lua state's memory limit while Magpie's own code runs inside a script (see
/// `Core::limit`), and puts it back when dropped.
struct Unlimited<'l> {
    lua: &'l Lua,
    limit: usize,
}

impl<'l> Unlimited<'l> {
    fn new(lua: &'l Lua) -> Unlimited<'l> {
        Unlimited { lua, limit: lua.set_memory_limit(0).unwrap_or(0) }
    }
}

impl Drop for Unlimited<'_> {
    fn drop(&mut self) {
        if self.limit > 0 {
            let _ = self.lua.set_memory_limit(self.limit);
        }
    }
}

/// `luaRedisGenericCommand`: redis.call (raise) and redis.pcall.
fn redis_call(lua: &Lua, args: MultiValue, raise: bool) -> LResult<Value> {
    // The command's arguments and reply are bounded by the request and the keyspace, as in
    // Redis (whose Lua has no limit at all); the script's own allocations stay limited.
    let _unlimited = Unlimited::new(lua);
    let Some(bridge) = bridge(lua) else {
        return Err(raise_table(b"redis.call/pcall can only be called inside a script invocation"));
    };
    let args = args.into_vec();
    if let Err(msg) = args_to_mailbox(lua, &args) {
        if raise {
            return Err(raise_table(msg));
        }
        return Ok(Value::Table(error_table(lua, &error_text(msg), false)?));
    }
    drop(args);
    let resp = lua.app_data_ref::<RunState>().map(|r| r.resp).unwrap_or_default();
    if let Some(mut mb) = lua.app_data_mut::<Mailbox>() {
        mb.reply.proto = resp;
    }
    ask_host(lua, &bridge, Op::Call)?;
    let Some(mb) = lua.app_data_ref::<Mailbox>() else {
        return Err(raise_table(b"internal error"));
    };
    if let Err(msg) = &mb.result {
        let err = error_text(msg);
        drop(mb);
        if raise {
            return Err(mlua::Error::external(Raise::Table { err, ignore_stats: true }));
        }
        return Ok(Value::Table(error_table(lua, &err, true)?));
    }
    let reply = mb.reply.as_bytes();
    if raise && matches!(reply.first(), Some(b'-') | Some(b'!')) {
        let v = crate::convert::resp_to_lua(lua, reply)?;
        drop(mb);
        let err = match &v {
            Value::Table(t) => t.raw_get::<mlua::String>("err").map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
            _ => Vec::new(),
        };
        return Err(mlua::Error::external(Raise::Table { err, ignore_stats: true }));
    }
    crate::convert::resp_to_lua(lua, reply)
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
    let Some(bridge) = bridge(lua) else { return Ok(()) };
    if let Some(mut mb) = lua.app_data_mut::<Mailbox>() {
        if mb.args.is_empty() {
            mb.args.push(Vec::new());
        }
        mb.args[0] = msg;
        mb.nargs = 1;
    }
    ask_host(lua, &bridge, Op::Log(level))
}

/// `luaSetResp`.
fn setresp(lua: &Lua, args: MultiValue) -> LResult<()> {
    if bridge(lua).is_none() {
        return Err(raise_table(b"redis.setresp can only be called inside a script invocation"));
    }
    let a = Args::new(lua, args);
    if a.len() != 1 {
        return Err(raise_table(b"redis.setresp() requires one argument."));
    }
    let resp = match a.to_number(1).map(crate::errors::lua_int) {
        Some(2) => magpie_protocol::Resp::V2,
        Some(3) => magpie_protocol::Resp::V3,
        _ => return Err(raise_table(b"RESP version must be 2 or 3.")),
    };
    if let Some(mut r) = lua.app_data_mut::<RunState>() {
        r.resp = resp;
    }
    Ok(())
}

/// `luaRedisSetReplCommand`.
fn set_repl(lua: &Lua, args: MultiValue) -> LResult<()> {
    let Some(bridge) = bridge(lua) else {
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
    ask_host(lua, &bridge, Op::SetRepl(Repl(flags as u8)))
}

/// `luaRedisAclCheckCmdPermissionsCommand`.
fn acl_check_cmd(lua: &Lua, args: MultiValue) -> LResult<bool> {
    let Some(bridge) = bridge(lua) else {
        return Err(raise_table(b"redis.acl_check_cmd can only be called inside a script invocation"));
    };
    let args = args.into_vec();
    if let Err(msg) = args_to_mailbox(lua, &args) {
        return Err(raise_table(msg));
    }
    ask_host(lua, &bridge, Op::Acl)?;
    match lua.app_data_ref::<Mailbox>().and_then(|m| m.acl) {
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
    let active = lua.app_data_ref::<RunState>().is_some_and(|r| r.bridge.is_some());
    let Some(rng) = rng(lua).filter(|_| active) else {
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
    let active = lua.app_data_ref::<RunState>().is_some_and(|r| r.bridge.is_some());
    let Some(rng) = rng(lua).filter(|_| active) else {
        return Err(lua_error(lua, "math.randomseed can only be called inside a script invocation"));
    };
    let a = Args::new(lua, args);
    rng.seed(a.check_int(1)?);
    Ok(())
}
