//! What running a script costs in the engine alone (no server, no network): time per run of a
//! few typical scripts. `cargo run --release -p magpie-lua --example script_cost`.

use std::time::Instant;

use magpie_lua::{EvalEngine, Host, Options};
use magpie_protocol::{Args, Reply, Resp};

/// Answers every command with a short bulk string, as GET would.
struct Echo;

impl Host for Echo {
    fn call(&mut self, _args: Args<'_>, reply: &mut Reply) -> Result<(), Vec<u8>> {
        reply.bulk(b"value");
        Ok(())
    }
}

fn main() {
    let mut engine = EvalEngine::new(Options::default()).expect("engine");
    let cases = [
        ("return 1", 200_000),
        ("return redis.call('get', KEYS[1])", 200_000),
        ("local n = 0 for i = 1, 10 do n = n + #redis.call('get', KEYS[1]) end return n", 50_000),
        ("return cjson.encode({a = ARGV[1], b = {1, 2, 3}, c = true})", 100_000),
        ("return cjson.decode('{\"a\":1,\"b\":[1,2,3],\"c\":\"x\"}').b[2]", 100_000),
        ("local t = {} for i = 1, 100 do t[i] = i end return t", 50_000),
    ];
    let mut out = Reply::new(Resp::V2);
    for (script, n) in cases {
        let s = engine.load(script.as_bytes()).expect("compile");
        let start = Instant::now();
        for _ in 0..n {
            out.clear();
            engine.run(&mut Echo, &s.sha, &[b"key"], &[b"arg"], &mut out);
        }
        let per = start.elapsed().as_secs_f64() / f64::from(n) * 1e6;
        println!("{per:8.2} us/run  {script}");
    }
}
