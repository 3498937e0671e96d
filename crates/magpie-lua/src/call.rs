//! `redis.call` and `redis.pcall` (`luaRedisGenericCommand`), written on Lua's C API as
//! Redis writes them.
//!
//! They are the hot path of scripts, so they do without mlua's conversions: the arguments are
//! read from the Lua stack as slices of the Lua strings themselves (numbers are written as
//! text into a buffer the state keeps), the host is called directly through the state's
//! [`Link`], and the reply is pushed onto the stack as it is parsed from the RESP bytes
//! (`redisProtocolToLuaType`). Their errors are raised as Redis raises them, as the error table
//! itself (`{err = "CODE message"}`), which is the value scripts see for the errors of mlua
//! functions too (see `errors.rs`).
//!
//! Raising a Lua error unwinds the C stack with `longjmp`, which skips Rust frames without
//! running their destructors: the functions here raise only from their outermost frame
//! ([`generic_command`]), where nothing is left to drop, and do all their work in
//! [`command`], which returns before the error is raised. While [`command`] runs, the
//! state's memory limit is lifted (as for every Rust function inside a script), so that the
//! allocations of the Lua API calls it makes cannot fail (which would raise a memory error
//! through its frames); the Lua stack they need is checked (`lua_checkstack`) before use.
//! A panic (a bug in the host) is caught before it reaches Lua's frames, raised as a Lua
//! error, and resumed by the engine when the run returns.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use mlua::ffi::{self, lua_State};
use mlua::{Function, Lua, Table};

use crate::errors::{LResult, error_text};
use crate::link::{Buffers, Link};
use magpie_protocol::ArgVec;

/// Deepest nesting of aggregates accepted in a command's reply (the server's own replies never
/// come close; this only bounds the recursion).
const MAX_REPLY_DEPTH: usize = 1000;
/// Stack slots one level of a reply's conversion uses at most (an aggregate's wrapper table,
/// its field name, the aggregate, a key and a value).
const SLOTS_PER_LEVEL: c_int = 5;

// Redis's readonly tables, from the vendored Lua (vendor/lua-src): a table with the flag set
// refuses every write with `Attempt to modify a readonly table`.
unsafe extern "C-unwind" {
    fn lua_enablereadonlytable(state: *mut lua_State, idx: c_int, enabled: c_int);
    fn lua_isreadonlytable(state: *mut lua_State, idx: c_int) -> c_int;
}

/// Sets the readonly flag on `t`, every table reachable from it and their metatables
/// (`luaSetTableProtectionRecursively`).
pub(crate) fn protect_readonly(lua: &Lua, t: &Table) -> LResult<()> {
    // SAFETY: `exec_raw` runs the closure in a protected call with `t` on the stack.
    let done: bool = unsafe {
        lua.exec_raw((t,), |state| {
            let done = protect_top(state);
            ffi::lua_settop(state, 0);
            ffi::lua_pushboolean(state, c_int::from(done));
        })
    }?;
    // A table left writable would be a hole in the sandbox: no engine rather than that.
    if done { Ok(()) } else { Err(crate::errors::raise_str("cannot protect the globals: tables nested too deep")) }
}

/// Whether `t` has the readonly flag.
pub(crate) fn is_readonly(lua: &Lua, t: &Table) -> bool {
    // SAFETY: `exec_raw` runs the closure in a protected call with `t` on the stack.
    let flag: LResult<bool> = unsafe {
        lua.exec_raw((t,), |state| {
            let ro = lua_isreadonlytable(state, -1) != 0;
            ffi::lua_settop(state, 0);
            ffi::lua_pushboolean(state, c_int::from(ro));
        })
    };
    flag.unwrap_or(false)
}

/// [`protect_readonly`] of the table on the top of the stack (left there). `false` when the
/// stack could not grow for a level (every table visited before that is protected).
///
/// # Safety
/// A table on the top of the stack, in a protected call.
unsafe fn protect_top(state: *mut lua_State) -> bool {
    // SAFETY: as the caller guarantees; `lua_checkstack` makes room for the key and value
    // (or the metatable) of each level.
    unsafe {
        if lua_isreadonlytable(state, -1) != 0 {
            return true; // visited already (`_G` holds the globals)
        }
        if ffi::lua_checkstack(state, 2) == 0 {
            return false;
        }
        lua_enablereadonlytable(state, -1, 1);
        let mut done = true;
        ffi::lua_pushnil(state);
        while ffi::lua_next(state, -2) != 0 {
            if ffi::lua_type(state, -1) == ffi::LUA_TTABLE {
                done &= protect_top(state);
            }
            ffi::lua_settop(state, -2);
        }
        if ffi::lua_getmetatable(state, -1) != 0 {
            done &= protect_top(state);
            ffi::lua_settop(state, -2);
        }
        done
    }
}

/// Sets `t.call` and `t.pcall`: C closures whose upvalue is a pointer to the state's link.
pub(crate) fn register(lua: &Lua, t: &Table, link: &Rc<Link>) -> LResult<()> {
    let ptr = Rc::as_ptr(link).cast_mut().cast::<c_void>();
    let functions: [(&str, ffi::lua_CFunction); 2] = [("call", redis_call), ("pcall", redis_pcall)];
    for (name, f) in functions {
        // SAFETY: pushes one value (the closure), which `exec_raw` returns as a `Function`;
        // there is room on the stack for two (`exec_raw` checks for three).
        let function: Function = unsafe {
            lua.exec_raw((), |state| {
                ffi::lua_pushlightuserdata(state, ptr);
                ffi::lua_pushcclosure(state, f, 1);
            })
        }?;
        t.raw_set(name, function)?;
    }
    Ok(())
}

/// The C closures that run a script's function, with the state's link as their first upvalue
/// (see [`register`]) and the strings `KEYS` and `ARGV` as the next two (pushed from there
/// without hashing them again): `run_eval(handler, f, globals)` for EVAL and
/// `run_fcall(handler, f)` for FCALL (see [`run_script`]).
pub(crate) fn runners(lua: &Lua, link: &Rc<Link>) -> LResult<(Function, Function)> {
    let ptr = Rc::as_ptr(link).cast_mut().cast::<c_void>();
    let make = |f: ffi::lua_CFunction| -> LResult<Function> {
        // SAFETY: as in `register`, with three values pushed (`exec_raw` checks for room for
        // three).
        unsafe {
            lua.exec_raw((), |state| {
                ffi::lua_pushlightuserdata(state, ptr);
                push_bytes(state, b"KEYS");
                push_bytes(state, b"ARGV");
                ffi::lua_pushcclosure(state, f, 3);
            })
        }
    };
    Ok((make(run_eval)?, make(run_fcall)?))
}

unsafe extern "C-unwind" fn run_eval(state: *mut lua_State) -> c_int {
    // SAFETY: called through mlua's `Function::call` with its three arguments.
    unsafe { run_script(state, true) }
}

unsafe extern "C-unwind" fn run_fcall(state: *mut lua_State) -> c_int {
    // SAFETY: called through mlua's `Function::call` with its two arguments.
    unsafe { run_script(state, false) }
}

/// Runs a script's function as Redis's `luaCallFunction` does: sets KEYS and ARGV in the
/// globals (`eval`) or passes the run's keys and arguments to `f` as two tables (FCALL), turns
/// the state's memory limit on for the call of `f` alone, and calls `f` under `handler`
/// (`lua_pcall` with an error function, as `xpcall`). Returns `ok, value`: whether `f`
/// returned, and its first result or the error. Called by mlua's `Function::call` (a
/// protected call, so that an error here is an error of the call), never by scripts.
///
/// # Safety
/// `state` is the state of the link in the closure's upvalue, with `handler, f, globals` (EVAL)
/// or `handler, f` (FCALL) on its stack, and its memory limit off (no allocation can fail
/// before the limit is turned on).
unsafe fn run_script(state: *mut lua_State, eval: bool) -> c_int {
    // SAFETY: the upvalue is the link's pointer (`runners`); the link outlives the state's
    // functions.
    let link = unsafe { &*ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)).cast::<Link>() };
    // A panic (a bug) is caught before it reaches Lua's frames, raised as a Lua error, and
    // resumed by the engine when the call returns (as in `generic_command`).
    let done = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: as the caller guarantees. A C function has `LUA_MINSTACK` free slots: this
        // uses at most five more than its arguments (a name, a table and its element; FCALL's
        // two tables and an element).
        unsafe {
            ffi::lua_settop(state, if eval { 3 } else { 2 });
            ffi::lua_pushvalue(state, 2);
            if link.with_inputs(|keys, args| push_inputs(state, eval, keys, args)).is_none() {
                push_inputs(state, eval, &[], &[]);
            }
        }
        link.limit(true);
        // SAFETY: `f` and its arguments are on the stack, the handler at index 1.
        let status = unsafe { ffi::lua_pcall(state, if eval { 0 } else { 2 }, 1, 1) };
        link.limit(false);
        status
    }));
    match done {
        // SAFETY: one free slot at least (the call left its one result).
        Ok(status) => unsafe {
            ffi::lua_pushboolean(state, c_int::from(status == 0));
            ffi::lua_insert(state, -2);
            2
        },
        // SAFETY: `state` is the running thread, in a C function.
        Err(payload) => unsafe { raise_panic(state, link, payload, b"internal error running a script (panic)") },
    }
}

/// Keeps a caught panic for the engine to resume once the call returns, and raises `message`
/// as a Lua error in its place: a panic must not unwind through Lua's frames.
///
/// # Safety
/// `state` is the running thread, in a C function (which has `LUA_MINSTACK` free slots).
unsafe fn raise_panic(
    state: *mut lua_State,
    link: &Link,
    payload: Box<dyn std::any::Any + Send>,
    message: &[u8],
) -> c_int {
    link.keep_panic(payload);
    // SAFETY: as the caller guarantees; the stack is emptied and the message raised.
    unsafe {
        ffi::lua_settop(state, 0);
        push_bytes(state, message);
        ffi::lua_error(state)
    }
}

/// KEYS and ARGV set in the globals (at stack index 3) for EVAL, or the keys and arguments
/// pushed as two tables for FCALL.
///
/// # Safety
/// As [`run_script`]'s, with four free stack slots.
unsafe fn push_inputs(state: *mut lua_State, eval: bool, keys: &[&[u8]], args: &[&[u8]]) {
    // SAFETY: as the caller guarantees.
    unsafe {
        if eval {
            // The globals are readonly (as Redis, which opens them for these two stores).
            lua_enablereadonlytable(state, 3, 0);
            for (name, items) in [(2, keys), (3, args)] {
                ffi::lua_pushvalue(state, ffi::lua_upvalueindex(name));
                push_array(state, items);
                ffi::lua_rawset(state, 3);
            }
            lua_enablereadonlytable(state, 3, 1);
        } else {
            push_array(state, keys);
            push_array(state, args);
        }
    }
}

/// Pushes a new table of `items` (`luaCreateArray`), made with room for them: Redis grows it
/// from empty, which no script can tell apart (the same array, without the reallocations).
///
/// # Safety
/// Two free stack slots; no memory limit in force.
unsafe fn push_array(state: *mut lua_State, items: &[&[u8]]) {
    // SAFETY: as the caller guarantees.
    unsafe {
        ffi::lua_createtable(state, c_int::try_from(items.len()).unwrap_or(0), 0);
        for (i, item) in items.iter().enumerate() {
            let Ok(index) = i32::try_from(i + 1) else { break };
            push_bytes(state, item);
            ffi::lua_rawseti(state, -2, index.into());
        }
    }
}

/// `redis.call`: an error raises.
unsafe extern "C-unwind" fn redis_call(state: *mut lua_State) -> c_int {
    // SAFETY: called by Lua as the closure `register` made.
    unsafe { generic_command(state, true) }
}

/// `redis.pcall`: an error is returned as an error table.
unsafe extern "C-unwind" fn redis_pcall(state: *mut lua_State) -> c_int {
    // SAFETY: called by Lua as the closure `register` made.
    unsafe { generic_command(state, false) }
}

/// What [`command`] left on top of the stack.
enum Done {
    /// A value to return.
    Return,
    /// An error value to raise.
    Raise,
}

/// # Safety
/// Only as the body of a C closure made by [`register`].
unsafe fn generic_command(state: *mut lua_State, raise: bool) -> c_int {
    // SAFETY: the upvalue is the pointer `register` took from the state's `Rc<Link>`, which
    // the state's app data keeps alive for as long as the state (see `link.rs`).
    let link = unsafe { &*ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)).cast::<Link>() };
    // SAFETY: `state` is the running thread, in the C function `register` made.
    let done = catch_unwind(AssertUnwindSafe(|| unsafe { command(state, link, raise) }));
    // Nothing below has a destructor left to run: raising the error here is safe.
    match done {
        Ok(Done::Return) => 1,
        // SAFETY: the error value is on top of the stack.
        Ok(Done::Raise) => unsafe { ffi::lua_error(state) },
        // SAFETY: `state` is the running thread, in the C function `register` made.
        Err(payload) => unsafe {
            raise_panic(state, link, payload, b"internal error in redis.call (the server panicked)")
        },
    }
}

/// The work of `redis.call` / `redis.pcall`: leaves the result, or the error to raise, on top
/// of the stack.
///
/// # Safety
/// `state` is the running thread, in the C function [`register`] made.
unsafe fn command(state: *mut lua_State, link: &Link, raise: bool) -> Done {
    let _unlimited = link.unlimited();
    if !link.active() {
        return raise_error(state, b"redis.call/pcall can only be called inside a script invocation");
    }
    let Ok(mut buffers) = link.buffers.try_borrow_mut() else {
        return raise_error(state, b"redis.call/pcall can only be called inside a script invocation");
    };
    let Buffers { numbers, args, reply } = &mut *buffers;
    // SAFETY: reads the arguments on the stack, which stay there until `lua_settop` below.
    if let Err(msg) = unsafe { read_args(state, numbers, args) } {
        // SAFETY: pushes one table (a C function has `LUA_MINSTACK` free slots).
        unsafe { push_error(state, &error_text(msg), false) };
        return if raise { Done::Raise } else { Done::Return };
    }
    let result = link.with_host(|host| {
        reply.clear();
        reply.proto = link.resp.get();
        host.call(args.args(), reply)
    });
    // SAFETY: the arguments are no longer needed (as Redis, pop them to make room).
    unsafe { ffi::lua_settop(state, 0) };
    let Some(result) = result else {
        return raise_error(state, b"redis.call/pcall can only be called inside a script invocation");
    };
    if let Err(msg) = result {
        // SAFETY: pushes one table on an empty frame.
        unsafe { push_error(state, &error_text(&msg), true) };
        return if raise { Done::Raise } else { Done::Return };
    }
    let bytes = reply.as_bytes();
    if raise && matches!(bytes.first(), Some(b'-' | b'!')) {
        let err = Reader { b: bytes, at: 1 }.error_text(bytes[0]);
        // SAFETY: pushes one table on an empty frame.
        unsafe { push_error(state, &err.unwrap_or_else(|| INVALID_REPLY.to_vec()), true) };
        return Done::Raise;
    }
    // SAFETY: the frame is empty; `push_value` checks the stack it needs.
    if !unsafe { push_value(state, &mut Reader { b: bytes, at: 0 }, 0) } {
        // SAFETY: as above.
        unsafe {
            ffi::lua_settop(state, 0);
            push_error(state, INVALID_REPLY, true);
        }
    }
    Done::Return
}

/// The error of a reply that is not valid RESP (a bug in the host).
const INVALID_REPLY: &[u8] = b"ERR invalid reply from command";

/// `luaPushError` + `luaError` of a message without a code.
fn raise_error(state: *mut lua_State, msg: &[u8]) -> Done {
    // SAFETY: pushes one table (a C function has `LUA_MINSTACK` free slots).
    unsafe { push_error(state, &error_text(msg), false) };
    Done::Raise
}

/// `luaArgsToRedisArgv`: strings as they are, numbers as `%.17g`, anything else refused. The
/// arguments are copied into `args` (one buffer, grown as needed and kept from call to call,
/// up to what `ArgVec::clear` keeps).
///
/// # Safety
/// `state` is a running thread.
unsafe fn read_args(state: *mut lua_State, numbers: &mut Vec<u8>, args: &mut ArgVec) -> Result<(), &'static [u8]> {
    args.clear();
    // SAFETY: plain reads of the stack (`lua_tolstring` of a string neither allocates nor
    // changes the value; its bytes are copied before anything else runs).
    unsafe {
        let argc = ffi::lua_gettop(state);
        if argc == 0 {
            return Err(b"Please specify at least one argument for this redis lib call");
        }
        for i in 1..=argc {
            match ffi::lua_type(state, i) {
                ffi::LUA_TNUMBER => {
                    numbers.clear();
                    crate::errors::write_g17(ffi::lua_tonumber(state, i), numbers);
                    args.push(numbers);
                }
                ffi::LUA_TSTRING => {
                    let mut len = 0usize;
                    let ptr = ffi::lua_tolstring(state, i, &raw mut len);
                    args.push(std::slice::from_raw_parts(ptr.cast::<u8>(), len));
                }
                _ => return Err(b"Lua redis lib command arguments must be strings or integers"),
            }
        }
    }
    Ok(())
}

/// Pushes `bytes` as a Lua string.
///
/// # Safety
/// One free stack slot; no memory limit in force.
unsafe fn push_bytes(state: *mut lua_State, bytes: &[u8]) {
    // SAFETY: as the caller guarantees.
    unsafe { ffi::lua_pushlstring(state, bytes.as_ptr().cast(), bytes.len()) };
}

/// Pushes `luaPushErrorBuff`'s table: `{err = err}`, with `ignore_error_stats_update = true`
/// when the command already counted the error.
///
/// # Safety
/// Three free stack slots; no memory limit in force.
unsafe fn push_error(state: *mut lua_State, err: &[u8], ignore_stats: bool) {
    // SAFETY: as the caller guarantees.
    unsafe {
        ffi::lua_createtable(state, 0, 2);
        push_bytes(state, b"err");
        push_bytes(state, err);
        ffi::lua_rawset(state, -3);
        if ignore_stats {
            push_bytes(state, b"ignore_error_stats_update");
            ffi::lua_pushboolean(state, 1);
            ffi::lua_rawset(state, -3);
        }
    }
}

/// Pushes `{field = value}`, `value` being on top of the stack (it is replaced by the table).
///
/// # Safety
/// Two free stack slots; no memory limit in force.
unsafe fn wrap(state: *mut lua_State, field: &[u8]) {
    // SAFETY: as the caller guarantees.
    unsafe {
        ffi::lua_createtable(state, 0, 1);
        ffi::lua_insert(state, -2);
        push_bytes(state, field);
        ffi::lua_insert(state, -2);
        ffi::lua_rawset(state, -3);
    }
}

/// A RESP reply being read.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    /// The bytes up to the next CRLF, which is passed.
    fn line(&mut self) -> Option<&[u8]> {
        let rest = self.b.get(self.at..)?;
        let mut from = 0;
        let end = loop {
            let cr = from + rest.get(from..)?.iter().position(|&c| c == b'\r')?;
            if rest.get(cr + 1) == Some(&b'\n') {
                break cr;
            }
            from = cr + 1;
        };
        self.at += end + 2;
        Some(&rest[..end])
    }

    /// A line holding an integer, as `str::parse::<i64>` reads it.
    fn len(&mut self) -> Option<i64> {
        parse_i64(self.line()?)
    }

    fn bulk(&mut self, n: i64) -> Option<&[u8]> {
        let n = usize::try_from(n).ok()?;
        let data = self.b.get(self.at..self.at.checked_add(n)?)?;
        if self.b.get(self.at + n..self.at + n + 2)? != b"\r\n" {
            return None;
        }
        self.at += n + 2;
        Some(data)
    }

    /// The `err` text of an error reply (`-` or `!`, already read): its message with `-` in
    /// front, through `luaPushErrorBuff`'s rules.
    fn error_text(&mut self, kind: u8) -> Option<Vec<u8>> {
        let msg = if kind == b'-' {
            self.line()?
        } else {
            let n = self.len()?;
            self.bulk(n)?
        };
        let mut buf = Vec::with_capacity(msg.len() + 1);
        buf.push(b'-');
        buf.extend_from_slice(msg);
        Some(error_text(&buf))
    }
}

/// `redisProtocolToLuaType`: pushes the value of the reply at `r` (RESP2 or RESP3) as Redis
/// 7.0 converts it. `false` when the bytes are not a valid reply (the stack then holds what
/// was pushed so far).
///
/// # Safety
/// `state` is a running thread; no memory limit in force.
unsafe fn push_value(state: *mut lua_State, r: &mut Reader<'_>, depth: usize) -> bool {
    // SAFETY: each arm pushes one value, with the stack checked first; the tables are new
    // (no metatables: `lua_rawset` is what `lua_settable` would do), and their keys are never
    // nil nor NaN (nil keys are skipped, doubles are wrapped in tables).
    unsafe {
        if depth > MAX_REPLY_DEPTH || ffi::lua_checkstack(state, SLOTS_PER_LEVEL) == 0 {
            return false;
        }
        let Some(&kind) = r.b.get(r.at) else { return false };
        r.at += 1;
        match kind {
            b'+' => {
                let Some(s) = r.line() else { return false };
                push_bytes(state, s);
                wrap(state, b"ok");
            }
            b'-' | b'!' => {
                let Some(err) = r.error_text(kind) else { return false };
                push_error(state, &err, true);
            }
            b':' => {
                let Some(n) = r.len() else { return false };
                ffi::lua_pushnumber(state, n as f64);
            }
            b'$' => {
                let Some(n) = r.len() else { return false };
                if n < 0 {
                    ffi::lua_pushboolean(state, 0);
                } else {
                    let Some(s) = r.bulk(n) else { return false };
                    push_bytes(state, s);
                }
            }
            b'*' | b'>' => {
                let Some(n) = r.len() else { return false };
                if n < 0 {
                    ffi::lua_pushboolean(state, 0);
                    return true;
                }
                // Grown as elements come, as Redis's `lua_newtable`: where a RESP3 null leaves a
                // hole, the length operator depends on the table's layout.
                ffi::lua_createtable(state, 0, 0);
                for j in 1..=n {
                    let Ok(index) = i32::try_from(j) else { return false };
                    if !push_value(state, r, depth + 1) {
                        return false;
                    }
                    ffi::lua_rawseti(state, -2, index.into());
                }
            }
            b'%' | b'~' => {
                let Some(n) = r.len() else { return false };
                // As Redis's `lua_newtable` (`pairs` follows the table's layout).
                ffi::lua_createtable(state, 0, 0);
                for _ in 0..n.max(0) {
                    if !push_value(state, r, depth + 1) {
                        return false;
                    }
                    if kind == b'~' {
                        ffi::lua_pushboolean(state, 1);
                    } else if !push_value(state, r, depth + 1) {
                        return false;
                    }
                    if ffi::lua_isnil(state, -2) != 0 {
                        ffi::lua_settop(state, -3);
                    } else {
                        ffi::lua_rawset(state, -3);
                    }
                }
                wrap(state, if kind == b'%' { b"map" } else { b"set" });
            }
            b'_' => {
                if r.line().is_none() {
                    return false;
                }
                ffi::lua_pushnil(state);
            }
            b'#' => match r.line() {
                Some(b"t") => ffi::lua_pushboolean(state, 1),
                Some(b"f") => ffi::lua_pushboolean(state, 0),
                _ => return false,
            },
            b',' => {
                let Some(s) = r.line() else { return false };
                // strtod of the text (Redis writes `%.17g`, `inf`, `-inf`, `nan`).
                ffi::lua_pushnumber(state, parse_double(s));
                wrap(state, b"double");
            }
            b'(' => {
                let Some(s) = r.line() else { return false };
                push_bytes(state, s);
                wrap(state, b"big_number");
            }
            b'=' => {
                let Some(n) = r.len() else { return false };
                let Some(s) = r.bulk(n) else { return false };
                if s.len() < 4 {
                    return false;
                }
                ffi::lua_createtable(state, 0, 2);
                push_bytes(state, b"string");
                push_bytes(state, &s[4..]);
                ffi::lua_rawset(state, -3);
                push_bytes(state, b"format");
                push_bytes(state, &s[..3]);
                ffi::lua_rawset(state, -3);
                wrap(state, b"verbatim_string");
            }
            b'|' => {
                // Attributes are read and dropped; the value they describe follows.
                let Some(n) = r.len() else { return false };
                for _ in 0..n.max(0).saturating_mul(2) {
                    if !push_value(state, r, depth + 1) {
                        return false;
                    }
                    ffi::lua_settop(state, -2);
                }
                return push_value(state, r, depth);
            }
            _ => return false,
        }
    }
    true
}

/// `str::parse::<i64>` on bytes: an optional sign, then at least one digit and nothing else;
/// `None` past `i64`'s range.
fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &c in digits {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n = n.checked_mul(10)?;
        n = if negative { n.checked_sub(i64::from(d))? } else { n.checked_add(i64::from(d))? };
    }
    Some(n)
}

fn parse_double(s: &[u8]) -> f64 {
    let s = std::str::from_utf8(s).unwrap_or("0");
    match s {
        "inf" | "+inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        "nan" | "-nan" => f64::NAN,
        _ => s.parse().unwrap_or(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_as_str_parse_does() {
        for s in [
            "0",
            "-0",
            "+7",
            "-12",
            "007",
            "",
            "+",
            "-",
            "1 ",
            " 1",
            "1a",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "++1",
            "-+1",
            "\u{660}",
        ] {
            assert_eq!(parse_i64(s.as_bytes()), s.parse::<i64>().ok(), "{s:?}");
        }
    }

    #[test]
    fn lines_end_at_crlf() {
        let mut r = Reader { b: b"a\rb\r\nc\r\n\r", at: 0 };
        assert_eq!(r.line(), Some(&b"a\rb"[..]));
        assert_eq!(r.line(), Some(&b"c"[..]));
        assert_eq!(r.line(), None);
    }
}
