//! The sandbox Redis 7.0 builds around scripts (`luaRegisterRedisAPI`, `scriptingInit`,
//! `luaEngineInitEngine`), on stock Lua 5.1.
//!
//! Redis patches its Lua with a `readonly` flag on tables and sets it on every table reachable
//! from the globals. Magpie's Lua carries the same patch (`vendor/lua-src`), and the EVAL
//! engine protects its globals with it ([`protect_globals_readonly`]): scripts read the real
//! tables, and Lua itself refuses writes with Redis's error.
//!
//! The FUNCTION engine still protects with *proxies*: each protected table is replaced by an
//! empty table whose metatable reads through to the real one (`__index`) and refuses writes
//! (`__newindex`); table-valued fields of protected tables are themselves proxies, and the real
//! tables are reachable from nowhere a script can see. The functions that bypass metamethods
//! (`rawset`, `rawget`, `next`, `pairs`, `setmetatable`, `getmetatable`, `table.insert`) are
//! replaced there by versions that know about proxies, with the stock functions' error texts.

use mlua::{ChunkMode, Function, Lua, MultiValue, Table, Value};

use crate::errors::{Args, LResult, arg_error, lua_error, raise_str, reraise, to_bytes, type_error};

/// Name of the chunks Magpie loads for itself (the error handler skips their frames).
pub(crate) const INTERNAL_CHUNK: &str = "=magpie";

/// Globals a script sees (Debian's 7.0.15 with the CVE-2025-46818 fix: no `getfenv`,
/// `setfenv` nor `newproxy`), besides the Redis libraries added later.
const BUILTINS: &[&str] = &[
    "_G",
    "_VERSION",
    "assert",
    "collectgarbage",
    "coroutine",
    "error",
    "gcinfo",
    "getmetatable",
    "ipairs",
    "load",
    "loadstring",
    "math",
    "next",
    "pairs",
    "pcall",
    "rawequal",
    "rawget",
    "rawset",
    "select",
    "setmetatable",
    "string",
    "table",
    "tonumber",
    "tostring",
    "type",
    "unpack",
    "xpcall",
];

/// Tables and stock functions the replacements need, kept in the state's app data.
#[derive(Clone)]
pub(crate) struct Env {
    /// proxy -> real table.
    pub real_of: Table,
    /// real table -> proxy.
    pub proxy_of: Table,
    /// proxy -> what `getmetatable` shows for it (the proxy of the real table's metatable).
    pub visible_mt: Table,
    /// What `getmetatable("")` shows: the proxy of the string metatable.
    pub string_mt_view: Option<Table>,
    pub stock_next: Function,
    pub stock_getmetatable: Function,
    pub stock_tostring: Function,
    /// Lua's own pcall (the global is a wrapper).
    pub stock_pcall: Function,
    /// Lua's own loadstring: it gives a syntax error as the bytes Lua made (mlua's errors
    /// are UTF-8, which replaced the bytes of a script that is not).
    pub stock_loadstring: Function,
    /// `__newindex` of every proxy.
    pub readonly: Function,
    /// The `next` that `pairs` returns for proxies.
    pub proxy_next: Function,
}

pub(crate) fn env(lua: &Lua) -> LResult<Env> {
    match lua.app_data_ref::<Env>() {
        Some(e) => Ok(e.clone()),
        None => Err(raise_str("internal error: no sandbox")),
    }
}

/// Loads Lua code of Magpie's own (never user code) as a function.
pub(crate) fn internal_chunk(lua: &Lua, code: &str) -> LResult<Function> {
    lua.load(code).set_name(INTERNAL_CHUNK).set_mode(ChunkMode::Text).into_function()
}

/// Prepares a fresh state: keeps the allowed builtins, installs the replacements, and stores the
/// [`Env`]. Protection itself comes last ([`protect_globals`] with proxies, or
/// [`protect_globals_readonly`] with `readonly_flag`), after the libraries are in.
pub(crate) fn prepare(lua: &Lua, readonly_flag: bool) -> LResult<Table> {
    let g = lua.globals();
    let mut remove = Vec::new();
    for pair in g.pairs::<Value, Value>() {
        let (k, _) = pair?;
        let keep = match &k {
            Value::String(s) => BUILTINS.iter().any(|b| s.as_bytes().as_ref() == b.as_bytes()),
            _ => false,
        };
        if !keep {
            remove.push(k);
        }
    }
    for k in remove {
        g.raw_set(k, Value::Nil)?;
    }
    let stock_next: Function = g.raw_get("next")?;
    let stock_getmetatable: Function = g.raw_get("getmetatable")?;
    let stock_tostring: Function = g.raw_get("tostring")?;
    let stock_pcall: Function = g.raw_get("pcall")?;
    let stock_loadstring: Function = g.raw_get("loadstring")?;
    let readonly = lua.create_function(|lua, _: MultiValue| -> LResult<()> {
        Err(lua_error(lua, "Attempt to modify a readonly table"))
    })?;
    let proxy_next = lua.create_function(|lua, args: MultiValue| {
        let a = Args::new(lua, args);
        let t = a.check_table(1)?;
        let env = env(lua)?;
        let real = env.real_of.raw_get::<Option<Table>>(&t)?.unwrap_or(t);
        let key = a.get(2).cloned().unwrap_or(Value::Nil);
        env.stock_next.call::<MultiValue>((real, key)).map_err(reraise)
    })?;
    let env = Env {
        real_of: lua.create_table()?,
        proxy_of: lua.create_table()?,
        visible_mt: lua.create_table()?,
        string_mt_view: None,
        stock_next,
        stock_getmetatable,
        stock_tostring,
        stock_pcall,
        stock_loadstring,
        readonly,
        proxy_next,
    };
    lua.set_app_data(env);
    install_overrides(lua, &g, readonly_flag)?;
    Ok(g)
}

/// Replaces `t` (a real table) by its read-only proxy, creating it on first use. Table-valued
/// fields of `t` are replaced by their proxies, and its metatable is protected too.
pub(crate) fn protect(lua: &Lua, t: &Table) -> LResult<Table> {
    let env = env(lua)?;
    if env.real_of.raw_get::<Option<Table>>(t)?.is_some() {
        return Ok(t.clone()); // already a proxy
    }
    if let Some(p) = env.proxy_of.raw_get::<Option<Table>>(t)? {
        return Ok(p);
    }
    let proxy = lua.create_table()?;
    let pm = lua.create_table()?;
    pm.raw_set("__index", t)?;
    pm.raw_set("__newindex", &env.readonly)?;
    proxy.set_metatable(Some(pm))?;
    env.real_of.raw_set(&proxy, t)?;
    env.proxy_of.raw_set(t, &proxy)?;
    let mut nested = Vec::new();
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        if let Value::Table(inner) = v {
            nested.push((k, inner));
        }
    }
    for (k, inner) in nested {
        let p = protect(lua, &inner)?;
        t.raw_set(k, p)?;
    }
    if let Some(mt) = t.metatable() {
        let p = protect(lua, &mt)?;
        env.visible_mt.raw_set(&proxy, p)?;
    }
    Ok(proxy)
}

/// Locks the globals as Redis does last: an error on reading a missing global, every table
/// reachable from the globals read-only, `_G` the proxy. Returns the proxy of the globals.
pub(crate) fn protect_globals(lua: &Lua, g: &Table) -> LResult<Table> {
    let mt = lua.create_table()?;
    mt.raw_set("__index", lua.create_function(missing_global)?)?;
    g.set_metatable(Some(mt))?;
    // The string metatable (readonly in Redis since the CVE-2025-46818 fix).
    if let Some(smt) = lua.type_metatable::<mlua::String>() {
        let view = protect(lua, &smt)?;
        if let Some(mut e) = lua.app_data_mut::<Env>() {
            e.string_mt_view = Some(view);
        }
    }
    protect(lua, g)
}

/// Locks the globals as Redis 7.0 does, with Lua's readonly flag (`luaSetErrorMetatable`,
/// `luaSetTableProtectionRecursively`): an error on reading a missing global, and the globals,
/// every table reachable from them, their metatables and the string metatable refuse writes.
/// Scripts then read globals and library fields directly, with no proxy in between.
pub(crate) fn protect_globals_readonly(lua: &Lua, g: &Table) -> LResult<()> {
    let mt = lua.create_table()?;
    mt.raw_set("__index", lua.create_function(missing_global)?)?;
    g.set_metatable(Some(mt))?;
    crate::call::protect_readonly(lua, g)?;
    if let Some(smt) = lua.type_metatable::<mlua::String>() {
        crate::call::protect_readonly(lua, &smt)?;
    }
    Ok(())
}

/// `luaProtectedTableError`, the `__index` of the globals.
fn missing_global(lua: &Lua, args: MultiValue) -> LResult<()> {
    let a = Args::new(lua, args);
    if a.len() != 2 {
        return Err(lua_error(lua, "Wrong number of arguments to luaProtectedTableError"));
    }
    let name = match a.get(2) {
        Some(v @ (Value::String(_) | Value::Integer(_) | Value::Number(_))) => to_bytes(lua, v).unwrap_or_default(),
        _ => return Err(lua_error(lua, "Second argument to luaProtectedTableError must be a string or number")),
    };
    let name = crate::shebang::c_str(&name);
    let mut msg = b"Script attempted to access nonexistent global variable '".to_vec();
    msg.extend_from_slice(name);
    msg.push(b'\'');
    Err(lua_error(lua, msg))
}

fn real_of(env: &Env, t: &Table) -> LResult<Option<Table>> {
    env.real_of.raw_get::<Option<Table>>(t)
}

fn readonly_error() -> mlua::Error {
    // `luaG_runerror` from a C function: no position.
    raise_str("Attempt to modify a readonly table")
}

/// The replacements of the functions that bypass metamethods. With `readonly` (the tables are
/// protected by Lua's own readonly flag, [`protect_readonly`]), the stock `rawset`, `rawget`,
/// `next`, `pairs`, `setmetatable`, `getmetatable` and `table.insert` stay: Lua refuses their
/// writes itself, exactly as Redis's does. Without it (proxies), they are replaced.
fn install_overrides(lua: &Lua, g: &Table, readonly: bool) -> LResult<()> {
    if !readonly {
        install_proxy_overrides(lua, g)?;
    }
    g.raw_set("unpack", lua.create_function(unpack)?)?;
    g.raw_set("loadstring", lua.create_function(loadstring)?)?;
    g.raw_set("load", lua.create_function(load)?)?;
    install_pcall(lua, g)?;
    install_coroutine(lua, g)?;
    Ok(())
}

/// `rawset`, `rawget`, `next`, `pairs`, `setmetatable`, `getmetatable` and `table.insert`, as
/// the stock ones, knowing about proxies.
fn install_proxy_overrides(lua: &Lua, g: &Table) -> LResult<()> {
    // rawset: luaB_rawset, with the read-only check of the patched lua_rawset.
    g.raw_set(
        "rawset",
        lua.create_function(|lua, args: MultiValue| {
            let a = Args::new(lua, args);
            let t = a.check_table(1)?;
            let k = a.check_any(2)?;
            let v = a.check_any(3)?;
            if real_of(&env(lua)?, &t)?.is_some() {
                return Err(readonly_error());
            }
            t.raw_set(k, v).map_err(reraise)?;
            Ok(t)
        })?,
    )?;
    g.raw_set(
        "rawget",
        lua.create_function(|lua, args: MultiValue| {
            let a = Args::new(lua, args);
            let t = a.check_table(1)?;
            let k = a.check_any(2)?;
            let t = real_of(&env(lua)?, &t)?.unwrap_or(t);
            t.raw_get::<Value>(k)
        })?,
    )?;
    g.raw_set(
        "next",
        lua.create_function(|lua, args: MultiValue| {
            let a = Args::new(lua, args);
            let t = a.check_table(1)?;
            let env = env(lua)?;
            let t = real_of(&env, &t)?.unwrap_or(t);
            let k = a.get(2).cloned().unwrap_or(Value::Nil);
            env.stock_next.call::<MultiValue>((t, k)).map_err(reraise)
        })?,
    )?;
    g.raw_set(
        "pairs",
        lua.create_function(|lua, args: MultiValue| {
            let a = Args::new(lua, args);
            let t = a.check_table(1)?;
            let env = env(lua)?;
            let next = if real_of(&env, &t)?.is_some() { env.proxy_next } else { env.stock_next };
            Ok((next, t, Value::Nil))
        })?,
    )?;
    g.raw_set(
        "setmetatable",
        lua.create_function(|lua, args: MultiValue| {
            let a = Args::new(lua, args);
            let t = a.check_table(1)?;
            let mt = match a.get(2) {
                Some(Value::Nil) => None,
                Some(Value::Table(mt)) => Some(mt.clone()),
                _ => return Err(arg_error(lua, 2, "nil or table expected")),
            };
            if real_of(&env(lua)?, &t)?.is_some() {
                return Err(readonly_error());
            }
            if let Some(cur) = t.metatable()
                && !matches!(cur.raw_get::<Value>("__metatable")?, Value::Nil)
            {
                return Err(lua_error(lua, "cannot change a protected metatable"));
            }
            t.set_metatable(mt)?;
            Ok(t)
        })?,
    )?;
    g.raw_set(
        "getmetatable",
        lua.create_function(|lua, args: MultiValue| {
            let a = Args::new(lua, args);
            let v = a.check_any(1)?;
            let env = env(lua)?;
            match &v {
                Value::Table(t) if real_of(&env, t)?.is_some() => env.visible_mt.raw_get::<Value>(t),
                Value::String(_) => Ok(env.string_mt_view.map_or(Value::Nil, Value::Table)),
                _ => env.stock_getmetatable.call::<Value>(v).map_err(reraise),
            }
        })?,
    )?;
    let table: Table = g.raw_get("table")?;
    table.raw_set("insert", lua.create_function(table_insert)?)?;
    Ok(())
}

fn install_pcall(lua: &Lua, g: &Table) -> LResult<()> {
    // pcall as Redis 7.0 wraps it (luaRedisPcall): an error table with a string `err` field
    // becomes that string. Written in Lua so that any error value passes through untouched.
    let make_pcall = internal_chunk(
        lua,
        r#"
local rawpcall, select, type, translate = ...
local function fix(ok, ...)
  if ok then return ok, ... end
  local e = ...
  if type(e) == 'userdata' then e = translate(e) end
  if type(e) == 'table' then
    local m = e.err
    local t = type(m)
    if t == 'string' or t == 'number' then return false, m end
    return false, e, m
  end
  return false, e
end
return function(...)
  if select('#', ...) == 0 then return false, 'attempt to call a boolean value' end
  return fix(rawpcall(...))
end
"#,
    )?;
    let translate = lua.create_function(|lua, v: Value| crate::errors::translate(lua, v))?;
    let pcall: Function = make_pcall.call((
        g.raw_get::<Function>("pcall")?,
        g.raw_get::<Function>("select")?,
        g.raw_get::<Function>("type")?,
        translate,
    ))?;
    g.raw_set("pcall", pcall)?;
    Ok(())
}

/// coroutine.resume and coroutine.wrap hand errors back to Lua code: they must see the value
/// Redis's C functions would have raised, not an mlua error object.
fn install_coroutine(lua: &Lua, g: &Table) -> LResult<()> {
    let co: Table = g.raw_get("coroutine")?;
    // `luaL_argerror` for the Lua wrapper below, as its caller called it.
    let argerr = lua.create_function(|lua, (narg, msg): (usize, String)| -> LResult<()> {
        let names = lua.inspect_stack(1, |d| {
            let n = d.names();
            n.name.map(std::borrow::Cow::into_owned)
        });
        let name = names.flatten().unwrap_or_else(|| "?".into());
        let mut out = crate::errors::where_prefix(lua, 2);
        out.extend_from_slice(format!("bad argument #{narg} to '{name}' ({msg})").as_bytes());
        Err(raise_str(out))
    })?;
    // `luaL_where(level)` as seen from the calling Lua function.
    let where_at = lua.create_function(|lua, level: usize| {
        Ok(String::from_utf8_lossy(&crate::errors::where_prefix(lua, level)).into_owned())
    })?;
    let is_lua_function =
        lua.create_function(|_, f: Value| Ok(matches!(f, Value::Function(f) if f.info().what != "C")))?;
    let translate = lua.create_function(|lua, v: Value| crate::errors::translate(lua, v))?;
    let make = internal_chunk(
        lua,
        r#"
local rawresume, rawcreate, type, error, argerr, where_at, is_lua, translate, rawxpcall, select = ...
local function fixres(ok, ...)
  if ok then return ok, ... end
  local e = ...
  if type(e) == 'userdata' then e = translate(e) end
  return false, e
end
local resume = function(co, ...)
  if type(co) ~= 'thread' then argerr(1, 'coroutine expected') end
  return fixres(rawresume(co, ...))
end
local function wrapres(ok, ...)
  if ok then return ... end
  local e = ...
  if type(e) == 'userdata' then e = translate(e) end
  local t = type(e)
  if t == 'string' or t == 'number' then e = where_at(3) .. e end
  error(e, 0)
end
local wrap = function(f)
  if not is_lua(f) then argerr(1, 'Lua function expected') end
  local co = rawcreate(f)
  return function(...) return wrapres(rawresume(co, ...)) end
end
-- xpcall: the handler sees the error value Redis's C functions raise.
local xpcall = function(...)
  if select('#', ...) < 2 then argerr(2, 'value expected') end
  local f, h = ...
  if type(h) ~= 'function' then return rawxpcall(f, h) end
  return rawxpcall(f, function(e)
    if type(e) == 'userdata' then e = translate(e) end
    return h(e)
  end)
end
return resume, wrap, xpcall
"#,
    )?;
    let (resume, wrap, xpcall): (Function, Function, Function) = make.call((
        co.raw_get::<Function>("resume")?,
        co.raw_get::<Function>("create")?,
        g.raw_get::<Function>("type")?,
        g.raw_get::<Function>("error")?,
        argerr,
        where_at,
        is_lua_function,
        translate,
        g.raw_get::<Function>("xpcall")?,
        g.raw_get::<Function>("select")?,
    ))?;
    co.raw_set("resume", resume)?;
    co.raw_set("wrap", wrap)?;
    g.raw_set("xpcall", xpcall)?;
    Ok(())
}

/// luaB_unpack, with the overflow check of the CVE-2025-46817 fix.
fn unpack(lua: &Lua, args: MultiValue) -> LResult<MultiValue> {
    let a = Args::new(lua, args);
    let t = a.check_table(1)?;
    let i = a.opt_int(2, 1)?;
    let e = if a.is_none_or_nil(3) { t.raw_len() as i32 } else { a.check_int(3)? };
    if i > e {
        return Ok(MultiValue::new());
    }
    let n = i64::from(e) - i64::from(i) + 1;
    // lua_checkstack: the C function's stack holds its arguments too (LUAI_MAXCSTACK = 8000).
    if n >= i64::from(i32::MAX) || n + a.len() as i64 > 8000 - 8 {
        return Err(lua_error(lua, "too many results to unpack"));
    }
    let t = real_of(&env(lua)?, &t)?.unwrap_or(t);
    let mut out = Vec::with_capacity(n as usize);
    for k in i64::from(i)..=i64::from(e) {
        out.push(t.raw_get::<Value>(k)?);
    }
    Ok(MultiValue::from_vec(out))
}

/// tinsert (ltablib.c), refusing proxies as the patched lua_rawseti does.
fn table_insert(lua: &Lua, args: MultiValue) -> LResult<()> {
    let a = Args::new(lua, args);
    let t = a.check_table(1)?;
    let mut e = t.raw_len() as i64 + 1;
    let (pos, v) = match a.len() {
        2 => (e, a.v[1].clone()),
        3 => {
            let pos = i64::from(a.check_int(2)?);
            if pos > e {
                e = pos;
            }
            if real_of(&env(lua)?, &t)?.is_some() && e > pos {
                return Err(readonly_error());
            }
            let mut i = e;
            while i > pos {
                let prev: Value = t.raw_get(i - 1)?;
                t.raw_set(i, prev).map_err(reraise)?;
                i -= 1;
            }
            (pos, a.v[2].clone())
        }
        _ => return Err(lua_error(lua, "wrong number of arguments to 'insert'")),
    };
    if real_of(&env(lua)?, &t)?.is_some() {
        return Err(readonly_error());
    }
    t.raw_set(pos, v).map_err(reraise)
}

/// Loads source text only: Redis removed bytecode loading from its Lua (`f_parser` always
/// parses). Text starting with ESC fails to parse in Redis with `unexpected symbol near
/// 'char(27)'`; the same text with another control character in its place gives that message
/// here, with the character's code put back.
pub(crate) fn load_text(lua: &Lua, code: &[u8], chunkname: &[u8]) -> Result<Function, Vec<u8>> {
    // Keep the chunk name alive as a Lua string while parsing (Lua 5.1's parser does not
    // anchor it: the use-after-free Redis fixed as CVE-2025-49844).
    let name = String::from_utf8_lossy(crate::shebang::c_str(chunkname)).into_owned();
    let _anchor = lua.create_string(&name);
    let escaped;
    let src = if code.first() == Some(&0x1b) {
        let mut c = code.to_vec();
        c[0] = 0x01;
        escaped = c;
        &escaped[..]
    } else {
        code
    };
    // Through Lua's own loadstring: a syntax error comes back as the bytes Lua made (mlua's
    // errors are UTF-8 strings, which replaced the bytes of a script that is not UTF-8).
    let loaded = env(lua).and_then(|env| {
        let r: MultiValue = env.stock_loadstring.call((lua.create_string(src)?, lua.create_string(&name)?))?;
        Ok(r.into_vec())
    });
    match loaded.as_deref() {
        Ok([Value::Function(f), ..]) => Ok(f.clone()),
        Ok([Value::Nil, Value::String(message), ..]) => {
            let mut m = message.as_bytes().to_vec();
            if src.as_ptr() != code.as_ptr()
                && let Some(at) = find(&m, b"near 'char(1)'")
            {
                m.splice(at..at + 14, b"near 'char(27)'".iter().copied());
            }
            Err(m)
        }
        Ok(_) => Err(b"internal error: loadstring returned nothing".to_vec()),
        Err(mlua::Error::MemoryError(_)) => Err(b"not enough memory".to_vec()),
        Err(e) => Err(crate::errors::strip_traceback(&e.to_string()).as_bytes().to_vec()),
    }
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// luaB_loadstring.
fn loadstring(lua: &Lua, args: MultiValue) -> LResult<MultiValue> {
    let a = Args::new(lua, args);
    let code = a.check_bytes(1)?;
    let name = if a.is_none_or_nil(2) { code.clone() } else { a.check_bytes(2)? };
    load_result(lua, load_text(lua, &code, &name))
}

fn load_result(lua: &Lua, r: Result<Function, Vec<u8>>) -> LResult<MultiValue> {
    Ok(match r {
        Ok(f) => MultiValue::from_vec(vec![Value::Function(f)]),
        Err(msg) => MultiValue::from_vec(vec![Value::Nil, Value::String(lua.create_string(msg)?)]),
    })
}

/// luaB_load: reads the pieces from the function, then parses them as text.
fn load(lua: &Lua, args: MultiValue) -> LResult<MultiValue> {
    /// Each level of `load` called from a reader function costs Rust stack: bounded.
    const MAX_NESTED: u32 = 16;
    struct Depth(u32);
    let a = Args::new(lua, args);
    let f = match a.get(1) {
        Some(Value::Function(f)) => f.clone(),
        _ => return Err(type_error(lua, &a.v, 1, "function")),
    };
    let name = if a.is_none_or_nil(2) { b"=(load)".to_vec() } else { a.check_bytes(2)? };
    let depth = lua.app_data_ref::<Depth>().map_or(0, |d| d.0);
    if depth >= MAX_NESTED {
        return Err(lua_error(lua, "too many nested calls to 'load'"));
    }
    lua.set_app_data(Depth(depth + 1));
    let mut code = Vec::new();
    let mut failure = None;
    loop {
        match f.call::<Value>(()) {
            Ok(Value::Nil) => break,
            Ok(v @ (Value::String(_) | Value::Integer(_) | Value::Number(_))) => {
                let piece = to_bytes(lua, &v).unwrap_or_default();
                if piece.is_empty() {
                    break;
                }
                code.extend_from_slice(&piece);
            }
            Ok(_) => {
                failure = Some(b"reader function must return a string".to_vec());
                break;
            }
            Err(e) => {
                failure = Some(match crate::errors::error_value(lua, &e)? {
                    Value::String(s) => s.as_bytes().to_vec(),
                    _ => b"error in reader function".to_vec(),
                });
                break;
            }
        }
    }
    lua.set_app_data(Depth(depth));
    match failure {
        Some(msg) => load_result(lua, Err(msg)),
        None => load_result(lua, load_text(lua, &code, &name)),
    }
}
