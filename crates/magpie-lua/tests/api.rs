//! The crate's API as the server uses it, and the conversions of replies the test host of the
//! differential test cannot produce (RESP3 big numbers, verbatim strings, attributes, booleans).

mod common;

use common::*;
use magpie_lua::{Control, EvalEngine, Host, Options, ScriptFlags, sha1_hex};
use magpie_protocol::{Args, Reply, Resp};

/// Answers `raw <bytes>` with those bytes as the reply, for both protocols.
struct RawHost;

impl Host for RawHost {
    fn call(&mut self, args: Args<'_>, reply: &mut Reply) -> Result<(), Vec<u8>> {
        match args.iter().collect::<Vec<_>>()[..] {
            [b"raw", bytes] => {
                reply.raw(bytes);
                Ok(())
            }
            [b"refuse", msg] => Err(msg.to_vec()),
            _ => Err(b"Unknown Redis command called from script".to_vec()),
        }
    }

    fn check(&mut self) -> Control {
        Control::Continue
    }
}

fn run_raw(e: &mut EvalEngine, script: &str, proto: Resp) -> String {
    let s = e.load(script.as_bytes()).expect("compile");
    let mut out = Reply::new(proto);
    e.run(&mut RawHost, &s.sha, &[], &[], &mut out).expect("script exists");
    show(out.as_bytes())
}

#[test]
fn resp3_replies_become_lua_values_as_in_redis() {
    let mut e = engine();
    let cases = [
        // redisProtocolToLuaType: big numbers, verbatim strings, doubles, booleans, null.
        (r"return redis.call('raw', '(12345678901234567890\r\n').big_number", "$20\r\n12345678901234567890\r\n"),
        (
            r"local v = redis.call('raw', '=7\r\ntxt:abc\r\n').verbatim_string return {v.format, v.string}",
            "*2\r\n$3\r\ntxt\r\n$3\r\nabc\r\n",
        ),
        (r"return tostring(redis.call('raw', ',1.5\r\n').double)", "$3\r\n1.5\r\n"),
        (r"return tostring(redis.call('raw', ',inf\r\n').double)", "$3\r\ninf\r\n"),
        (r"return tostring(redis.call('raw', ',-inf\r\n').double)", "$4\r\n-inf\r\n"),
        (
            r"return {type(redis.call('raw', '#t\r\n')), redis.call('raw', '#f\r\n') == false}",
            "*2\r\n$7\r\nboolean\r\n:1\r\n",
        ),
        (r"return type(redis.call('raw', '_\r\n'))", "$3\r\nnil\r\n"),
        (r"return redis.call('raw', '$-1\r\n') == false", ":1\r\n"),
        (r"return redis.call('raw', '*-1\r\n') == false", ":1\r\n"),
        // Attributes are skipped, the value after them is the reply.
        (r"return redis.call('raw', '|1\r\n+a\r\n:1\r\n$3\r\nval\r\n')", "$3\r\nval\r\n"),
        // Nulls inside an array leave holes: the reply stops at the first one.
        (r"return redis.call('raw', '*3\r\n:1\r\n_\r\n:3\r\n')", "*1\r\n:1\r\n"),
        (
            r"local m = redis.call('raw', '%1\r\n+k\r\n:7\r\n').map local k, v = next(m) return {k.ok, v}",
            "*2\r\n$1\r\nk\r\n:7\r\n",
        ),
        (r"return redis.call('raw', '~2\r\n:1\r\n:2\r\n').set[2]", ":1\r\n"),
        // Errors: raised by call with the command's code, returned by pcall, the code split
        // out as luaPushErrorBuff does.
        (r"return redis.pcall('raw', '-WRONGTYPE Operation\r\n').err", "$19\r\nWRONGTYPE Operation\r\n"),
        (r"return redis.pcall('raw', '-NOSPACE\r\n').err", "$11\r\nERR NOSPACE\r\n"),
        (r"return redis.pcall('raw', '!9\r\nBLOB code\r\n').err", "$9\r\nBLOB code\r\n"),
        (
            r"return redis.pcall('refuse', '-NOPERM this user has no permissions').err",
            "$35\r\nNOPERM this user has no permissions\r\n",
        ),
        (r"return redis.pcall('refuse', 'plain message').err", "$17\r\nERR plain message\r\n"),
        // A malformed reply from the host is an error, never a crash.
        (r"return redis.pcall('raw', '*2\r\n:1\r\n').err", "$30\r\nERR invalid reply from command\r\n"),
        (r"return redis.pcall('raw', '').err", "$30\r\nERR invalid reply from command\r\n"),
    ];
    for (script, want) in cases {
        assert_eq!(run_raw(&mut e, script, Resp::V2), want, "{script}");
    }
    let r = run_raw(&mut e, r"return redis.call('raw', '-WRONGTYPE Operation\r\n')", Resp::V2);
    assert!(r.starts_with("-WRONGTYPE Operation script: "), "{r}");
}

#[test]
fn script_returns_in_resp3() {
    let mut e = engine();
    let cases = [
        ("return {double = 0.1}", ",0.10000000000000001\r\n"),
        ("return {double = 0/0}", ",-nan\r\n"),
        ("return {big_number = '123'}", "(123\r\n"),
        ("return {verbatim_string = {format = 'md', string = 'x'}}", "=5\r\nmd :x\r\n"),
        ("redis.setresp(3) return {true, false}", "*2\r\n#t\r\n#f\r\n"),
        ("return {true, false}", "*2\r\n:1\r\n_\r\n"),
        ("return {map = {k = {set = {a = true}}}}", "%1\r\n$1\r\nk\r\n~1\r\n$1\r\na\r\n"),
    ];
    for (script, want) in cases {
        assert_eq!(run_raw(&mut e, script, Resp::V3), want, "{script}");
    }
}

#[test]
fn load_and_run() {
    let mut e = engine();
    let s = e.load(b"return 1").expect("compile");
    assert_eq!(s.sha, sha1_hex(b"return 1"));
    assert_eq!(s.sha, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    assert!(s.flags.contains(ScriptFlags::EVAL_COMPAT_MODE));
    assert_eq!(e.script(&s.sha.to_uppercase()), Some(s.flags), "SHA1s are case-insensitive");
    assert_eq!(e.len(), 1);
    let again = e.load(b"return 1").expect("cached");
    assert_eq!(again, s);
    assert_eq!(e.len(), 1);
    let s = e.load(b"#!lua flags=no-writes,allow-stale\nreturn 2").expect("compile");
    assert!(s.flags.contains(ScriptFlags::NO_WRITES) && s.flags.contains(ScriptFlags::ALLOW_STALE));
    assert_eq!(s.flags.names().collect::<Vec<_>>(), ["no-writes", "allow-stale"]);
    let err = e.load(b"return +").expect_err("syntax error");
    assert_eq!(
        show(err.as_bytes()),
        "ERR Error compiling script (new function): user_script:1: unexpected symbol near '+'"
    );
    assert_eq!(
        show(e.load(b"#!lua flags=x\n").expect_err("flag").as_bytes()),
        "ERR Unexpected flag in script shebang: x"
    );
    let mut out = Reply::new(Resp::V2);
    assert!(e.run(&mut RawHost, "0000000000000000000000000000000000000000", &[], &[], &mut out).is_none());
    assert!(out.is_empty());
}

#[test]
fn outcome_tells_errors_and_their_stats() {
    let mut e = engine();
    let mut run = |script: &str| {
        let s = e.load(script.as_bytes()).expect("compile");
        let mut out = Reply::new(Resp::V2);
        e.run(&mut RawHost, &s.sha, &[], &[], &mut out).expect("exists")
    };
    let o = run("return 1");
    assert!(!o.error);
    let o = run("error('x')");
    assert!(o.error && !o.ignore_error_stats);
    // The command's own error was already counted by the command.
    let o = run(r"return redis.call('raw', '-ERR from command\r\n')");
    assert!(o.error && o.ignore_error_stats);
    let o = run("return {err = 'returned error'}");
    assert!(!o.error, "an error table returned is a reply, not a failed script");
}

#[test]
fn keys_and_args_are_fresh_each_run() {
    let mut e = engine();
    let mut h = TestHost::default();
    let s = "local n = #KEYS table.insert(KEYS, 'extra') return {n, #ARGV, KEYS[1]}";
    assert_eq!(show(&eval(&mut e, &mut h, s, &["a"], &["x", "y"], Resp::V2)), "*3\r\n:1\r\n:2\r\n$1\r\na\r\n");
    assert_eq!(show(&eval(&mut e, &mut h, s, &[], &[], Resp::V2)), "*3\r\n:0\r\n:0\r\n$5\r\nextra\r\n");
}

#[test]
fn separate_engines_with_a_memory_limit() {
    let opts = Options { memory_limit: 64 << 20, ..Options::default() };
    let mut a = EvalEngine::new(opts.clone()).expect("engine");
    let mut b = EvalEngine::new(opts).expect("engine");
    let mut h = TestHost::default();
    assert_eq!(show(&eval(&mut a, &mut h, "return math.random(1000)", &[], &[], Resp::V2)), ":397\r\n");
    // The same generator: the next draw, not the first again.
    assert_eq!(show(&eval(&mut b, &mut h, "return math.random(1000)", &[], &[], Resp::V2)), ":841\r\n");
    assert!(a.memory() > 0 && a.memory() < 64 << 20);
}
