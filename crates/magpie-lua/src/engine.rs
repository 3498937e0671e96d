//! The two script engines: [`EvalEngine`] (EVAL, EVALSHA, SCRIPT LOAD) and [`FunctionEngine`]
//! (FUNCTION LOAD, FCALL), each with its own Lua state as in Redis.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use magpie_protocol::{Reply, Resp};
use mlua::{Debug, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use crate::convert::{ReplyLimits, lua_to_resp, map_crlf, write_error_format};
use crate::errors::{LResult, Raise, find_raise, raise_table, to_bytes};
use crate::host::{Control, Host};
use crate::link::Link;
use crate::redis_api::{Flavour, redis_table, register_log, register_math, register_version};
use crate::sandbox::{self, internal_chunk, load_text, protect, protect_globals};
use crate::shebang::{ScriptFlags, c_str, eval_shebang, library_meta, valid_name};
pub use crate::state::{FunctionDef, SharedRng};
use crate::state::{Loading, RunState};

/// Redis's count hook runs every 100,000 instructions.
const HOOK_EVERY: u32 = 100_000;
/// How often (in runs) the heap is checked for a collector a script stopped (see
/// `Core::finish_run`).
const GC_PERIOD: u32 = 500;
/// The least heap at which that check steps the collector.
const GC_FLOOR: usize = 4 << 20;
/// `LOAD_TIMEOUT_MS`: how long FUNCTION LOAD may run a library's body.
pub const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// How an engine is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// Most bytes the Lua state may allocate (0: no limit). Past it, allocations fail with Lua's
    /// `not enough memory` error and the script stops (unless it catches the error).
    pub memory_limit: usize,
    pub reply_limits: ReplyLimits,
    pub rng: SharedRng,
}

impl Default for Options {
    fn default() -> Self {
        Options { memory_limit: 1 << 30, reply_limits: ReplyLimits::default(), rng: SharedRng::default() }
    }
}

/// An error reply, as the text after the `-` (`ERR Error compiling script ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply(pub Vec<u8>);

impl ErrorReply {
    fn new(s: impl AsRef<[u8]>) -> Self {
        ErrorReply(s.as_ref().to_vec())
    }

    /// `addReplyErrorFormat`'s text: `ERR ` in front, CR/LF made harmless.
    fn format(s: impl AsRef<[u8]>) -> Self {
        let mut r = Reply::new(Resp::V2);
        write_error_format(&mut r, s.as_ref());
        let b = r.as_bytes();
        ErrorReply(b[1..b.len() - 2].to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// What a run wrote into the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The reply is an error.
    pub error: bool,
    /// The error came from a command the script called, which already counted it in the error
    /// stats (`ERR_REPLY_FLAG_NO_STATS_UPDATE`).
    pub ignore_error_stats: bool,
}

fn kill_error() -> mlua::Error {
    mlua::Error::external(Raise::Table {
        err: b"ERR Script killed by user with SCRIPT KILL...".to_vec(),
        ignore_stats: false,
    })
}

/// After a kill (or a load timeout) the hook fires at every instruction, so that a script
/// catching the error with pcall is stopped right after (Redis switches to a line hook).
fn hook_fast(lua: &Lua, link: &Link) {
    let _ = lua.set_global_hook(HookTriggers::new().every_nth_instruction(1), hook);
    link.fast_hook.set(true);
}

/// The count hook (`luaMaskCountHook`, `luaEngineLoadHook`).
fn hook(lua: &Lua, _: &Debug) -> mlua::Result<VmState> {
    let Some(link) = Link::of(lua) else { return Ok(VmState::Continue) };
    let deadline = lua.app_data_ref::<RunState>().and_then(|r| r.loading.as_ref().and_then(|l| l.deadline));
    if let Some(deadline) = deadline {
        if Instant::now() > deadline {
            hook_fast(lua, &link);
            return Err(raise_table(b"FUNCTION LOAD timeout"));
        }
        return Ok(VmState::Continue);
    }
    if link.killed.get() {
        // Not in Magpie's own code around the script (the trampoline returning the error).
        let internal =
            lua.inspect_stack(0, |d| d.source().source.as_deref() == Some(sandbox::INTERNAL_CHUNK)).unwrap_or(false);
        if internal {
            return Ok(VmState::Continue);
        }
        return Err(kill_error());
    }
    let control = link.with_host(|host| host.check());
    if control == Some(Control::Kill) {
        link.killed.set(true);
        hook_fast(lua, &link);
        return Err(kill_error());
    }
    Ok(VmState::Continue)
}

/// The Lua state and what both engines share.
struct Core {
    lua: Lua,
    /// How the state's Rust functions reach the host of a run.
    link: std::rc::Rc<Link>,
    /// `__redis__err__handler`, the error function scripts run under.
    handler: Function,
    /// The real globals (where a run's KEYS and ARGV are set).
    globals: Table,
    /// The C functions that run a script's function for EVAL and FCALL (`call::runners`).
    run_eval: Function,
    run_fcall: Function,
    opts: Options,
    runs: u32,
    /// The heap above which the periodic check forces a step of the collector.
    gc_watermark: usize,
}

impl Core {
    /// A state whose globals `readonly` protects with Lua's readonly flag (EVAL), or with
    /// proxies (FUNCTION, whose libraries' environments read through to the globals).
    fn new(opts: Options, readonly: bool) -> LResult<(Core, Table)> {
        let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::new())?;
        lua.set_app_data(RunState::default());
        let link = Link::new(&lua);
        lua.set_app_data(opts.rng.clone());
        let g = sandbox::prepare(&lua, readonly)?;
        register_math(&lua, &g.raw_get::<Table>("math")?)?;
        g.raw_set("cjson", crate::cjson::open(&lua)?)?;
        g.raw_set("struct", crate::lstruct::open(&lua)?)?;
        g.raw_set("cmsgpack", crate::cmsgpack::open(&lua)?)?;
        g.raw_set("bit", crate::bit::open(&lua)?)?;
        let handler = lua.create_function(crate::handler::error_handler)?;
        g.raw_set("__redis__err__handler", &handler)?;
        lua.set_global_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), hook)?;
        let globals = g.clone();
        let (run_eval, run_fcall) = crate::call::runners(&lua, &link)?;
        link.set_memory_limit(opts.memory_limit);
        Ok((Core { lua, link, handler, globals, run_eval, run_fcall, opts, runs: 0, gc_watermark: GC_FLOOR }, g))
    }

    /// The memory limit applies while Lua code runs (a script, a library's body), not to
    /// Magpie's own calls around it: with a limit set, mlua protects every API call against an
    /// allocation failure (a `pcall` and a new C closure each), which made the tables and
    /// strings of KEYS, ARGV and the reply cost several times what they do unprotected. What
    /// Magpie allocates outside scripts is bounded by the request and the reply.
    fn limit(&self, on: bool) {
        self.link.limit(on);
    }

    /// Runs `f` with `keys` and `args` (an EVAL script's KEYS and ARGV, or a function's
    /// arguments), writing its reply into `out`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        host: &mut dyn Host,
        name: &str,
        f: &Function,
        eval: bool,
        (keys, args): (&[&[u8]], &[&[u8]]),
        out: &mut Reply,
    ) -> Outcome {
        self.link.killed.set(false);
        self.link.resp.set(Resp::V2);
        let result = {
            let _lent = self.link.lend(host, keys, args);
            if eval {
                self.run_eval.call::<(bool, Value)>((&self.handler, f, &self.globals))
            } else {
                self.run_fcall.call::<(bool, Value)>((&self.handler, f))
            }
        };
        if let Some(panic) = self.link.take_panic() {
            std::panic::resume_unwind(panic);
        }
        let script_resp = self.finish_run();
        match result {
            Ok((true, v)) => match lua_to_resp(&self.lua, v, script_resp, out, self.opts.reply_limits) {
                Ok(Ok(())) => Outcome { error: false, ignore_error_stats: false },
                Ok(Err(())) => {
                    let msg = format!(
                        "ERR the reply of script {name} has more than {} values",
                        self.opts.reply_limits.max_values
                    );
                    out.error(msg.as_bytes());
                    Outcome { error: true, ignore_error_stats: false }
                }
                Err(e) => self.run_error(name, &e.to_string(), out),
            },
            Ok((false, e)) => self.script_error(name, e, out),
            Err(e) => match find_raise(&e) {
                Some(_) => {
                    let v = crate::errors::error_value(&self.lua, &e).unwrap_or(Value::Nil);
                    self.script_error(name, v, out)
                }
                None => self.run_error(name, crate::errors::strip_traceback(&e.to_string()), out),
            },
        }
    }

    fn finish_run(&mut self) -> Resp {
        let fast = self.link.fast_hook.take();
        let resp = self.link.resp.get();
        if fast {
            let _ = self.lua.set_global_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), hook);
        }
        // Lua 5.1 has no emergency collection: garbage left by a script that hit the memory
        // limit would make the next ones fail. Collect when more than half the limit is used.
        if self.opts.memory_limit > 0 && self.lua.used_memory() > self.opts.memory_limit / 2 {
            let _ = self.lua.gc_collect();
        }
        self.runs += 1;
        if self.runs >= GC_PERIOD {
            // Redis forces a 50 KB step of the collector every 50 runs. Between such steps the
            // collector runs anyway, driven by allocations (the heap stays under twice what
            // is live); what the forced step really does is restart a collector a script
            // stopped (`collectgarbage('stop')`): Lua 5.1's step resets the collection
            // threshold. Forced every 500 runs, it was 600 instructions per run of a small
            // script (callgrind, EVALSHA of INCR + EXPIRE), nearly all of it work the
            // collector would have done anyway. So it is forced only when the heap has grown
            // past four times what it was after the last forced step (and 4 MB), which a
            // running collector never lets happen: a stopped one runs again within 500 runs
            // of that. (Restarting it after every run, with `lua_gc(LUA_GCRESTART)`, set the
            // threshold to the heap's size each time: the collector then never paused.)
            self.runs = 0;
            if self.lua.used_memory() > self.gc_watermark {
                let _ = self.lua.gc_step_kbytes(50);
                self.gc_watermark = self.lua.used_memory().saturating_mul(4).max(GC_FLOOR);
            }
        }
        resp
    }

    /// `Error running script ...`: an error that is not a table (out of memory, error in the
    /// error handler).
    fn run_error(&self, name: &str, msg: &str, out: &mut Reply) -> Outcome {
        let mut msg: String = msg.chars().take(100).collect();
        if msg == "not enough memory" && self.opts.memory_limit > 0 {
            msg = format!("not enough memory (the Lua memory limit is {} bytes)", self.opts.memory_limit);
        }
        let text = ErrorReply::format(format!("Error running script {name}, {msg}"));
        out.error(&text.0);
        Outcome { error: true, ignore_error_stats: false }
    }

    /// The error reply of a failed script (`luaCallFunction`).
    fn script_error(&self, name: &str, e: Value, out: &mut Reply) -> Outcome {
        let t = match e {
            Value::Table(t) => t,
            Value::String(s) => return self.run_error(name, &s.to_string_lossy(), out),
            _ => return self.run_error(name, "execution failure", out),
        };
        let info = crate::handler::ErrInfo::extract(&self.lua, &t);
        let mut line = b"-".to_vec();
        line.extend_from_slice(info.msg.as_deref().unwrap_or(b"ERR unknown error"));
        if let (Some(src), Some(l)) = (&info.source, &info.line) {
            line.extend_from_slice(b" script: ");
            line.extend_from_slice(name.as_bytes());
            line.extend_from_slice(b", on ");
            line.extend_from_slice(src);
            line.push(b':');
            line.extend_from_slice(l);
            line.push(b'.');
        }
        // Debian's 7.0.15 (CVE-2025-67733 fix) turns CR and LF in error replies into spaces.
        let line = map_crlf(&line);
        out.raw(&line);
        out.raw(b"\r\n");
        Outcome { error: true, ignore_error_stats: info.ignore_stats }
    }

    fn memory(&self) -> usize {
        self.lua.used_memory()
    }
}

/// A SHA1 in lowercase, copied only when it is not already.
fn lowercase(sha: &str) -> std::borrow::Cow<'_, str> {
    // A fold rather than `any`: no early exit, so the 40 bytes are checked a vector at a time.
    if sha.bytes().fold(false, |upper, b| upper | b.is_ascii_uppercase()) {
        sha.to_ascii_lowercase().into()
    } else {
        sha.into()
    }
}

/// A script compiled by [`EvalEngine::load`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// SHA1 of the body, 40 lowercase hex digits.
    pub sha: String,
    pub flags: ScriptFlags,
}

/// EVAL's Lua state and its compiled scripts (Redis's `lctx`).
pub struct EvalEngine {
    core: Core,
    /// By SHA1: foldhash, as the keyspace's tables (SipHash was 3% of a small EVALSHA).
    scripts: HashMap<String, (Function, ScriptFlags), foldhash::fast::RandomState>,
}

impl EvalEngine {
    pub fn new(opts: Options) -> Result<Self, ErrorReply> {
        Self::build(opts).map_err(|e| ErrorReply::new(format!("ERR cannot create the Lua state: {e}")))
    }

    fn build(opts: Options) -> LResult<Self> {
        let (core, g) = Core::new(opts, true)?;
        let redis = redis_table(&core.lua, Flavour::Eval)?;
        // KEYS and ARGV exist from the start (each run replaces them: `call::run_script`).
        g.raw_set("KEYS", core.lua.create_table()?)?;
        g.raw_set("ARGV", core.lua.create_table()?)?;
        g.raw_set("redis", redis)?;
        sandbox::protect_globals_readonly(&core.lua, &g)?;
        Ok(EvalEngine { core, scripts: HashMap::default() })
    }

    /// SCRIPT LOAD, and EVAL's first step (`luaCreateFunction`): compiles `body` unless a script
    /// with its SHA1 is already there.
    pub fn load(&mut self, body: &[u8]) -> Result<Script, ErrorReply> {
        let sha = crate::sha1_hex(body);
        if let Some((_, flags)) = self.scripts.get(&sha) {
            return Ok(Script { sha, flags: *flags });
        }
        let (flags, shebang_len) = eval_shebang(body).map_err(ErrorReply::sds)?;
        let f = load_text(&self.core.lua, &body[shebang_len..], b"@user_script").map_err(|msg| {
            let mut m = b"Error compiling script (new function): ".to_vec();
            m.extend_from_slice(&msg);
            ErrorReply::format(m)
        })?;
        self.scripts.insert(sha.clone(), (f, flags));
        Ok(Script { sha, flags })
    }

    /// The flags of a compiled script (case-insensitive SHA1), if there is one.
    pub fn script(&self, sha: &str) -> Option<ScriptFlags> {
        self.scripts.get(lowercase(sha).as_ref()).map(|(_, f)| *f)
    }

    pub fn len(&self) -> usize {
        self.scripts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty()
    }

    /// Runs a compiled script with KEYS and ARGV, writing its reply (or error) into `out`,
    /// encoded for `out.proto`. `None` when there is no script with that SHA1 (NOSCRIPT).
    pub fn run(
        &mut self,
        host: &mut dyn Host,
        sha: &str,
        keys: &[&[u8]],
        args: &[&[u8]],
        out: &mut Reply,
    ) -> Option<Outcome> {
        let sha = lowercase(sha);
        let (f, _) = self.scripts.get(sha.as_ref())?;
        Some(self.core.run(host, &sha, f, true, (keys, args), out))
    }

    /// Bytes used by the Lua state (`used_memory_lua`).
    pub fn memory(&self) -> usize {
        self.core.memory()
    }
}

/// A library loaded by [`FunctionEngine::load`].
#[derive(Clone, Debug)]
pub struct Library {
    pub name: Vec<u8>,
    /// In registration order.
    pub functions: Vec<FunctionDef>,
}

/// The Lua state of FUNCTION libraries (Redis's Lua engine).
pub struct FunctionEngine {
    core: Core,
    /// The globals of every library: empty, reading through to `load_api` while a library loads
    /// and to the real globals when its functions run.
    env_meta: Table,
    real_globals: Table,
    load_api: Table,
}

impl FunctionEngine {
    pub fn new(opts: Options) -> Result<Self, ErrorReply> {
        Self::build(opts).map_err(|e| ErrorReply::new(format!("ERR cannot create the Lua state: {e}")))
    }

    fn build(opts: Options) -> LResult<Self> {
        let (core, g) = Core::new(opts, false)?;
        let lua = &core.lua;
        g.raw_set("__redis__err__handler", Value::Nil)?;
        g.raw_set("redis", redis_table(lua, Flavour::Function)?)?;
        // What a library's body sees while it loads: `redis` with register_function, log and
        // the version, nothing else.
        let load_redis = lua.create_table()?;
        load_redis.raw_set("register_function", lua.create_function(register_function)?)?;
        register_log(lua, &load_redis)?;
        register_version(&load_redis)?;
        let err_mt = |t: &Table| -> LResult<()> {
            let g_mt = g.metatable();
            let mt = lua.create_table()?;
            if let Some(gm) = g_mt {
                mt.raw_set("__index", gm.raw_get::<Value>("__index")?)?;
            }
            t.set_metatable(Some(mt))
        };
        let real_globals = g.clone();
        let proxy_g = protect_globals(lua, &g)?;
        err_mt(&load_redis)?;
        let load_api = lua.create_table()?;
        load_api.raw_set("redis", load_redis)?;
        err_mt(&load_api)?;
        let _ = protect(lua, &load_api)?;
        let _ = proxy_g;
        let env = lua.create_table()?;
        let env_meta = lua.create_table()?;
        env_meta.raw_set("__index", &real_globals)?;
        env_meta.raw_set("__newindex", sandbox::env(lua)?.readonly)?;
        env.set_metatable(Some(env_meta.clone()))?;
        lua.set_globals(env)?;
        Ok(FunctionEngine { core, env_meta, real_globals, load_api })
    }

    /// FUNCTION LOAD's work once the server has checked the metadata and that the library may
    /// be (re)placed (`functionsCreateWithLibraryCtx` from `engine->create` on): runs the
    /// library's body, which registers its functions. `host` receives `redis.log` calls.
    pub fn load(&mut self, host: &mut dyn Host, code: &[u8], timeout: Option<Duration>) -> Result<Library, ErrorReply> {
        let meta = library_meta(code).map_err(ErrorReply::sds)?;
        if !valid_name(&meta.name) {
            return Err(ErrorReply::new_err(
                "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
            ));
        }
        if !meta.engine.eq_ignore_ascii_case(b"lua") {
            return Err(ErrorReply::new_err([&b"Engine '"[..], &meta.engine, b"' not found"].concat()));
        }
        let core = &self.core;
        let lua = &core.lua;
        let f = load_text(lua, &code[meta.code_start..], b"@user_function").map_err(|msg| {
            let mut m = b"Error compiling function: ".to_vec();
            m.extend_from_slice(&msg);
            ErrorReply::format(m)
        })?;
        let pcall: Function = internal_chunk(lua, "local pcall = ... return function(f) return pcall(f) end")
            .and_then(|mk| mk.call(sandbox::env(lua)?.stock_pcall))
            .map_err(|e| ErrorReply::new_err(e.to_string()))?;
        let _ = self.env_meta.raw_set("__index", &self.load_api);
        if let Some(mut r) = lua.app_data_mut::<RunState>() {
            r.loading = Some(Loading { deadline: timeout.map(|t| Instant::now() + t), functions: Vec::new() });
        }
        let result = {
            let _lent = core.link.lend(host, &[], &[]);
            core.limit(true);
            let r = pcall.call::<(bool, Value)>(f);
            core.limit(false);
            r
        };
        let _ = self.env_meta.raw_set("__index", &self.real_globals);
        let loading = lua.app_data_mut::<RunState>().and_then(|mut r| r.loading.take());
        let lua = lua.clone();
        self.core.finish_run();
        let lua = &lua;
        let functions = loading.map(|l| l.functions).unwrap_or_default();
        match result {
            Ok((true, _)) => {}
            Ok((false, e)) => {
                let e = crate::errors::translate(lua, e).unwrap_or(Value::Nil);
                let msg = crate::handler::ErrInfo::of_value(lua, &e).msg.unwrap_or_default();
                let mut m = b"Error registering functions: ".to_vec();
                m.extend_from_slice(&msg);
                return Err(ErrorReply::format(m));
            }
            Err(e) => return Err(ErrorReply::format(format!("Error registering functions: {e}"))),
        }
        if functions.is_empty() {
            return Err(ErrorReply::new_err("No functions registered"));
        }
        Ok(Library { name: meta.name, functions })
    }

    /// FCALL / FCALL_RO: runs a registered function, writing its reply into `out`.
    pub fn call(
        &mut self,
        host: &mut dyn Host,
        function: &FunctionDef,
        keys: &[&[u8]],
        args: &[&[u8]],
        out: &mut Reply,
    ) -> Outcome {
        let name = String::from_utf8_lossy(&function.name).into_owned();
        self.core.run(host, &name, &function.callback, false, (keys, args), out)
    }

    pub fn memory(&self) -> usize {
        self.core.memory()
    }
}

impl ErrorReply {
    /// An error text without a code: `ERR` is put in front.
    fn new_err(s: impl AsRef<[u8]>) -> Self {
        let mut v = b"ERR ".to_vec();
        v.extend_from_slice(s.as_ref());
        ErrorReply(v)
    }

    /// `addReplyErrorSds`'s text (as Debian's 7.0.15 sends it): `ERR ` in front, CR and LF
    /// become spaces, none cut at the ends (unlike [`ErrorReply::format`]).
    fn sds(s: impl AsRef<[u8]>) -> Self {
        let mut v = b"ERR ".to_vec();
        v.extend(s.as_ref().iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
        ErrorReply(v)
    }
}

/// `luaRegisterFunction`.
fn register_function(lua: &Lua, args: MultiValue) -> LResult<()> {
    let loading = lua.app_data_ref::<RunState>().is_some_and(|r| r.loading.is_some());
    if !loading {
        return Err(raise_table(b"redis.register_function can only be called on FUNCTION LOAD command"));
    }
    let args = args.into_vec();
    let def = match args.len() {
        1 => named_args(lua, &args[0])?,
        2 => {
            let name = match &args[0] {
                v @ (Value::String(_) | Value::Integer(_) | Value::Number(_)) => to_bytes(lua, v).unwrap_or_default(),
                _ => return Err(raise_table(b"first argument to redis.register_function must be a string")),
            };
            let Value::Function(f) = &args[1] else {
                return Err(raise_table(b"second argument to redis.register_function must be a function"));
            };
            FunctionDef { name, description: None, flags: ScriptFlags::empty(), callback: f.clone() }
        }
        _ => return Err(raise_table(b"wrong number of arguments to redis.register_function")),
    };
    let name = c_str(&def.name).to_vec();
    if !valid_name(&name) {
        return Err(raise_table(
            b"Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
        ));
    }
    let Some(mut r) = lua.app_data_mut::<RunState>() else { return Ok(()) };
    let Some(l) = r.loading.as_mut() else { return Ok(()) };
    if l.functions.iter().any(|f| f.name == name) {
        return Err(raise_table(b"Function already exists in the library"));
    }
    l.functions.push(FunctionDef { name, ..def });
    Ok(())
}

fn named_args(lua: &Lua, arg: &Value) -> LResult<FunctionDef> {
    let Value::Table(t) = arg else {
        return Err(raise_table(
            b"calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
        ));
    };
    let (mut name, mut desc, mut callback, mut flags) = (None, None, None, ScriptFlags::empty());
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let key = match &k {
            Value::String(_) | Value::Integer(_) | Value::Number(_) => to_bytes(lua, &k).unwrap_or_default(),
            _ => return Err(raise_table(b"named argument key given to redis.register_function is not a string")),
        };
        let key = c_str(&key).to_ascii_lowercase();
        let as_string = |v: &Value| match v {
            Value::String(_) | Value::Integer(_) | Value::Number(_) => to_bytes(lua, v),
            _ => None,
        };
        match key.as_slice() {
            b"function_name" => match as_string(&v) {
                Some(s) => name = Some(s),
                None => {
                    return Err(raise_table(
                        b"function_name argument given to redis.register_function must be a string",
                    ));
                }
            },
            b"description" => match as_string(&v) {
                Some(s) => desc = Some(s),
                None => {
                    return Err(raise_table(b"description argument given to redis.register_function must be a string"));
                }
            },
            b"callback" => match v {
                Value::Function(f) => callback = Some(f),
                _ => return Err(raise_table(b"callback argument given to redis.register_function must be a function")),
            },
            b"flags" => {
                let Value::Table(ft) = v else {
                    return Err(raise_table(
                        b"flags argument to redis.register_function must be a table representing function flags",
                    ));
                };
                let mut j = 1i64;
                loop {
                    let f: Value = ft.get(j)?;
                    if matches!(f, Value::Nil) {
                        break;
                    }
                    let found = match &f {
                        Value::String(_) | Value::Integer(_) | Value::Number(_) => {
                            to_bytes(lua, &f).and_then(|s| ScriptFlags::from_name_nocase(c_str(&s)))
                        }
                        _ => None,
                    };
                    match found {
                        Some(flag) => flags.insert(flag),
                        None => return Err(raise_table(b"unknown flag given")),
                    }
                    j += 1;
                }
            }
            _ => return Err(raise_table(b"unknown argument given to redis.register_function")),
        }
    }
    let Some(name) = name else {
        return Err(raise_table(b"redis.register_function must get a function name argument"));
    };
    let Some(callback) = callback else {
        return Err(raise_table(b"redis.register_function must get a callback argument"));
    };
    Ok(FunctionDef { name, description: desc, flags, callback })
}
