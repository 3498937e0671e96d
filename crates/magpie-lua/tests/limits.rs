//! A script cannot take the server down: endless loops end with SCRIPT KILL (even when they
//! catch errors), memory is bounded, recursion fails cleanly, huge and cyclic replies are
//! refused, and the engine goes on serving scripts afterwards.

mod common;

use common::*;
use magpie_lua::{EvalEngine, FunctionEngine, LogLevel, Options, Repl, ReplyLimits};
use magpie_protocol::{Reply, Resp};

fn run(e: &mut EvalEngine, h: &mut TestHost, s: &str) -> String {
    show(&eval(e, h, s, &[], &[], Resp::V2))
}

#[test]
fn endless_loop_is_killed_through_the_host() {
    let mut e = engine();
    let mut h = TestHost { kill_after: Some(3), ..TestHost::default() };
    let r = run(&mut e, &mut h, "local i = 0 while true do i = i + 1 end");
    assert!(r.starts_with("-ERR Script killed by user with SCRIPT KILL... script: "), "{r}");
    assert!(r.ends_with(", on @user_script:1.\r\n"), "{r}");
    assert_eq!(h.checks, 4, "the host is asked every 100,000 instructions until it says Kill");
    // The engine works afterwards, and the hook is back to every 100,000 instructions.
    h.kill_after = None;
    h.checks = 0;
    assert_eq!(run(&mut e, &mut h, "local i = 0 while i < 250000 do i = i + 1 end return i"), ":250000\r\n");
    assert!(h.checks < 20, "checked every 100,000 instructions again: {}", h.checks);
}

#[test]
fn a_killed_script_cannot_catch_the_kill() {
    let mut e = engine();
    let mut h = TestHost { kill_after: Some(1), ..TestHost::default() };
    let r = run(&mut e, &mut h, "while true do pcall(function() while true do end end) end");
    assert!(r.starts_with("-ERR Script killed by user with SCRIPT KILL..."), "{r}");
    let r = run(&mut e, &mut h, "local ok, e = pcall(function() while true do end end) return e");
    assert!(r.starts_with("-ERR Script killed by user with SCRIPT KILL..."), "a killed script is killed again: {r}");
}

#[test]
fn endless_loops_in_coroutines_and_functions_are_killed() {
    let mut e = engine();
    let mut h = TestHost { kill_after: Some(1), ..TestHost::default() };
    let r = run(&mut e, &mut h, "local co = coroutine.wrap(function() while true do end end) co()");
    assert!(r.contains("Script killed by user with SCRIPT KILL..."), "{r}");
    let mut f = function_engine();
    let lib = f
        .load(&mut h, b"#!lua name=l\nredis.register_function('spin', function() while true do end end)", None)
        .expect("load");
    let mut out = Reply::new(Resp::V2);
    let outcome = f.call(&mut h, &lib.functions[0], &[], &[], &mut out);
    assert!(outcome.error);
    let r = show(out.as_bytes());
    assert!(r.starts_with("-ERR Script killed by user with SCRIPT KILL... script: spin, on @user_function:2."), "{r}");
}

#[test]
fn function_load_times_out() {
    let mut f = function_engine();
    let mut h = TestHost::default();
    let err = f
        .load(&mut h, b"#!lua name=l\nwhile true do end", Some(std::time::Duration::from_millis(50)))
        .expect_err("timeout");
    assert_eq!(show(&err.0), "ERR Error registering functions: ERR FUNCTION LOAD timeout");
    let lib = f.load(&mut h, b"#!lua name=l\nredis.register_function('ok', function() return 1 end)", None);
    assert!(lib.is_ok(), "the engine loads libraries after a timeout");
}

#[test]
fn memory_is_bounded() {
    let opts = Options { memory_limit: 32 << 20, ..Options::default() };
    let mut e = EvalEngine::new(opts).expect("engine");
    let mut h = TestHost::default();
    let r = run(&mut e, &mut h, "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 1000) .. i end");
    assert!(r.starts_with("-ERR Error running script ") && r.contains("not enough memory"), "{r}");
    let r = run(&mut e, &mut h, "return string.rep('x', 1e9)");
    assert!(r.contains("not enough memory"), "{r}");
    // Caught by pcall, the error is Lua's message; the script goes on.
    assert_eq!(
        run(&mut e, &mut h, "return {pcall(string.rep, 'x', 1e9)}"),
        "*2\r\n$-1\r\n$17\r\nnot enough memory\r\n"
    );
    assert_eq!(run(&mut e, &mut h, "return #string.rep('x', 1000)"), ":1000\r\n");
    assert!(e.memory() < 32 << 20);
}

#[test]
fn recursion_fails_cleanly() {
    let mut e = engine();
    let mut h = TestHost::default();
    let r = run(&mut e, &mut h, "local function f() return 1 + f() end return f()");
    assert!(r.starts_with("-ERR user_script:1: stack overflow script: "), "{r}");
    // Through C functions: pcall nesting, metamethods, string.gsub callbacks.
    let r = run(&mut e, &mut h, "local function f() return pcall(f) end return {f()}");
    assert!(r.starts_with("*"), "{r}");
    let r = run(&mut e, &mut h, "local t = setmetatable({}, {__index = function(t, k) return t[k] end}) return t.x");
    assert!(r.contains("stack overflow"), "{r}");
    let r = run(&mut e, &mut h, "local function f(s) return (string.gsub(s, '.', f)) end return f('x')");
    assert!(r.contains("overflow"), "{r}");
    let r = run(&mut e, &mut h, "local n = 0 local function f() n = n + 1 return load(f) end return {pcall(f)}");
    assert!(r.starts_with("*2\r\n"), "{r}");
    assert_eq!(run(&mut e, &mut h, "return 'still alive'"), "$11\r\nstill alive\r\n");
}

#[test]
fn cyclic_and_huge_replies() {
    let opts = Options { reply_limits: ReplyLimits { max_values: 100_000 }, ..Options::default() };
    let mut e = EvalEngine::new(opts).expect("engine");
    let mut h = TestHost::default();
    // Two references to itself: an endless reply in Redis; refused here.
    let r = run(&mut e, &mut h, "local t = {} t[1] = t t[2] = t return t");
    assert!(r.starts_with("-ERR the reply of script ") && r.contains("more than 100000 values"), "{r}");
    let r = run(&mut e, &mut h, "local t = {} for i = 1, 200000 do t[i] = i end return t");
    assert!(r.starts_with("-ERR the reply of script "), "{r}");
    let r = run(&mut e, &mut h, "local t = {} for i = 1, 50000 do t[i] = i end return t");
    assert!(r.starts_with("*50000\r\n:1\r\n"));
    // A cycle through one reference: Redis's depth limit, reproduced.
    let r = run(&mut e, &mut h, "local t = {} t[1] = t return t");
    assert_eq!(r.matches("*1\r\n").count(), 7995);
    assert!(r.ends_with("-ERR reached lua stack limit\r\n"));
}

#[test]
fn host_callbacks() {
    let mut e = engine();
    let mut h = TestHost::default();
    run(&mut e, &mut h, "redis.log(redis.LOG_WARNING, 'a', 1, nil, 'b') redis.log(redis.LOG_DEBUG, 'dbg')");
    assert_eq!(h.logs, vec![(LogLevel::Warning, b"a 1 b".to_vec()), (LogLevel::Debug, b"dbg".to_vec())]);
    run(&mut e, &mut h, "redis.set_repl(redis.REPL_AOF)");
    assert_eq!(h.repl, Some(Repl::AOF));
    assert_eq!(run(&mut e, &mut h, "return redis.acl_check_cmd('get', 'x')"), ":1\r\n");
    run(&mut e, &mut h, "redis.call('set', 'k', 1.5, 'x')");
    assert_eq!(h.calls.last().map(std::vec::Vec::len), Some(4));
    assert_eq!(h.calls.last().map(|c| c[2].clone()), Some(b"1.5".to_vec()));
}

#[test]
fn functions_share_nothing_with_eval() {
    let (mut e, mut f) = engines();
    let mut h = TestHost::default();
    let lib: FunctionEngine = f;
    let _ = lib;
    assert_eq!(run(&mut e, &mut h, "return type(KEYS)"), "$5\r\ntable\r\n");
    f = function_engine();
    let l = f.load(
        &mut h,
        b"#!lua name=x\nredis.register_function('k', function() return type(rawget(_G, 'KEYS')) end)",
        None,
    );
    let l = l.expect("load");
    let mut out = Reply::new(Resp::V2);
    f.call(&mut h, &l.functions[0], &[], &[], &mut out);
    assert_eq!(show(out.as_bytes()), "$3\r\nnil\r\n");
}

/// mlua holds at most about 8,000 handles at once: walkers keep their tables in Lua, not in
/// Rust, whatever the width or depth.
#[test]
fn wide_and_deep_tables() {
    let mut e = engine();
    let mut h = TestHost::default();
    let wide = "local t = {} for i = 1, 100000 do t[i] = 'v' .. i end";
    let r = run(&mut e, &mut h, &format!("{wide} return t"));
    assert!(r.starts_with("*100000\r\n$2\r\nv1\r\n") && r.ends_with("$7\r\nv100000\r\n"));
    let r = run(&mut e, &mut h, &format!("{wide} return #cjson.encode(t)"));
    assert_eq!(r, ":888896\r\n"); // as redis-server gives
    let r = run(&mut e, &mut h, "local t = {} for i = 1, 50000 do t['k' .. i] = {i} end return #cjson.encode(t)");
    assert!(r.starts_with(':'), "{r}");
    let r = run(&mut e, &mut h, "local t = {} for i = 1, 50000 do t['k' .. i] = i end return #cmsgpack.pack(t)");
    assert!(r.starts_with(':'), "{r}");
    let r = run(&mut e, &mut h, &format!("{wide} return #cjson.decode(cjson.encode(t))"));
    assert_eq!(r, ":100000\r\n");
    let r = run(&mut e, &mut h, &format!("{wide} return #cmsgpack.unpack(cmsgpack.pack(t))"));
    assert_eq!(r, ":100000\r\n");
    let r = run(&mut e, &mut h, "local m = {} for i = 1, 50000 do m['k' .. i] = i end return {map = m}");
    assert!(r.starts_with("*100000\r\n"), "{}", &r[..40.min(r.len())]);
    // Deep: past Redis's default depth limits, up to Lua's stack limit.
    let r = run(
        &mut e,
        &mut h,
        "cjson.decode_max_depth(100000) local ok, e = pcall(cjson.decode, string.rep('[', 9000) .. string.rep(']', 9000)) cjson.decode_max_depth(1000) return e",
    );
    assert!(r.contains("Found too many nested data structures"), "{r}");
    let r = run(
        &mut e,
        &mut h,
        "cjson.encode_max_depth(100000) local t = {} local c = t for i = 1, 9000 do c[1] = {} c = c[1] end local ok, e = pcall(cjson.encode, t) cjson.encode_max_depth(1000) return e",
    );
    assert!(r.contains("Cannot serialise, excessive nesting"), "{r}");
    let r = run(&mut e, &mut h, "return {pcall(cmsgpack.unpack, string.rep('\\129\\1', 9000) .. '\\1')}");
    assert!(r.contains("stack overflow"), "{r}");
    assert_eq!(run(&mut e, &mut h, "return 'ok'"), "$2\r\nok\r\n");
}

#[test]
fn a_collector_stopped_by_a_script_runs_again() {
    let mut e = engine();
    let mut h = TestHost::default();
    assert_eq!(run(&mut e, &mut h, "collectgarbage('stop') return 1"), ":1\r\n");
    // Each run leaves about 60 KB of garbage: 120 MB in all were nothing ever collected.
    for _ in 0..2000 {
        assert_eq!(run(&mut e, &mut h, "local t = {} for i = 1, 1000 do t[i] = {} end return #t"), ":1000\r\n");
    }
    let used = e.memory();
    assert!(used < 16 << 20, "the collector runs again: {used} bytes in use");
}
