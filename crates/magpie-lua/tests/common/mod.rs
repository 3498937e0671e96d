//! A small host for tests: answers a few commands against an in-memory map, with the replies
//! and errors redis-server 7.0.15 gives for them.

#![allow(dead_code)]

use std::collections::HashMap;

use magpie_lua::{Control, EvalEngine, FunctionEngine, Host, LogLevel, Options, Outcome, Repl};
use magpie_protocol::{Reply, Resp};

#[derive(Default)]
pub struct TestHost {
    pub data: HashMap<Vec<u8>, Vec<u8>>,
    pub logs: Vec<(LogLevel, Vec<u8>)>,
    pub checks: usize,
    /// Answer Kill from `check` after this many checks.
    pub kill_after: Option<usize>,
    pub repl: Option<Repl>,
    pub calls: Vec<Vec<Vec<u8>>>,
}

fn arity_error(reply: &mut Reply, cmd: &str) {
    reply.error(format!("ERR wrong number of arguments for '{cmd}' command").as_bytes());
}

impl Host for TestHost {
    fn call(&mut self, args: &[&[u8]], reply: &mut Reply) -> Result<(), Vec<u8>> {
        self.calls.push(args.iter().map(|a| a.to_vec()).collect());
        let name = String::from_utf8_lossy(args[0]).to_ascii_lowercase();
        // Arity as Redis's command table has it (checked before anything else).
        let arity: i64 = match name.as_str() {
            "ping" => -1,
            "echo" => 2,
            "get" => 2,
            "set" => -3,
            "del" => -2,
            "incr" => 2,
            "hello" => -1,
            "mget" => -2,
            "lrange" => 4,
            "hgetall" => 2,
            "zscore" => 3,
            "smembers" => 2,
            "debug" => -2,
            _ => return Err(b"Unknown Redis command called from script".to_vec()),
        };
        let n = args.len() as i64;
        if (arity > 0 && n != arity) || n < -arity {
            return Err(b"Wrong number of args calling Redis command from script".to_vec());
        }
        match name.as_str() {
            "ping" => match args.len() {
                1 => reply.simple("PONG"),
                2 => reply.bulk(args[1]),
                _ => arity_error(reply, "ping"),
            },
            "echo" => reply.bulk(args[1]),
            "get" => match self.data.get(args[1]) {
                Some(v) => reply.bulk(v),
                None => reply.null(),
            },
            "set" => {
                if args.len() != 3 {
                    reply.error(b"ERR syntax error");
                } else {
                    self.data.insert(args[1].to_vec(), args[2].to_vec());
                    reply.ok();
                }
            }
            "del" => {
                let mut n = 0;
                for k in &args[1..] {
                    n += i64::from(self.data.remove(*k).is_some());
                }
                reply.int(n);
            }
            "incr" => {
                let cur = self.data.get(args[1]).cloned().unwrap_or_else(|| b"0".to_vec());
                match std::str::from_utf8(&cur).ok().and_then(|s| s.parse::<i64>().ok()) {
                    Some(v) => {
                        self.data.insert(args[1].to_vec(), (v + 1).to_string().into_bytes());
                        reply.int(v + 1);
                    }
                    None => reply.error(b"ERR value is not an integer or out of range"),
                }
            }
            "mget" => {
                reply.array(args.len() - 1);
                for k in &args[1..] {
                    match self.data.get(*k) {
                        Some(v) => reply.bulk(v),
                        None => reply.null(),
                    }
                }
            }
            // Fixed replies exercising every RESP3 type.
            "hgetall" => {
                reply.map(2);
                reply.bulk(b"f1");
                reply.bulk(b"v1");
                reply.bulk(b"f2");
                reply.bulk(b"v2");
            }
            "smembers" => {
                reply.set(2);
                reply.bulk(b"a");
                reply.bulk(b"b");
            }
            "zscore" => reply.double(1.5),
            "lrange" => reply.null_array(),
            "debug" => match String::from_utf8_lossy(args[1]).to_ascii_lowercase().as_str() {
                "protocol" => match String::from_utf8_lossy(args[2]).as_ref() {
                    "bignum" => match reply.proto {
                        Resp::V2 => reply.bulk(b"1234567999999999999999999999999999999"),
                        Resp::V3 => reply.raw(b"(1234567999999999999999999999999999999\r\n"),
                    },
                    "true" => reply.bool(true),
                    "false" => reply.bool(false),
                    "verbatim" => reply.verbatim("txt", b"This is a verbatim\nstring"),
                    "null" => reply.null(),
                    "double" => reply.double(3.141),
                    "attrib" => {
                        if reply.proto == Resp::V3 {
                            reply.raw(b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n");
                        }
                        reply.bulk(b"Some real reply following the attribute");
                    }
                    _ => reply.error(b"ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false"),
                },
                _ => reply.error(b"ERR unknown subcommand"),
            },
            "hello" => reply.error(b"ERR unsupported"),
            _ => unreachable!(),
        }
        Ok(())
    }

    fn log(&mut self, level: LogLevel, message: &[u8]) {
        self.logs.push((level, message.to_vec()));
    }

    fn check(&mut self) -> Control {
        self.checks += 1;
        match self.kill_after {
            Some(n) if self.checks > n => Control::Kill,
            _ => Control::Continue,
        }
    }

    fn set_repl(&mut self, flags: Repl) {
        self.repl = Some(flags);
    }
}

/// Runs `script` the way EVAL does (compile, then run), returning the reply bytes.
pub fn eval(
    engine: &mut EvalEngine,
    host: &mut TestHost,
    script: &str,
    keys: &[&str],
    args: &[&str],
    proto: Resp,
) -> Vec<u8> {
    let mut out = Reply::new(proto);
    match engine.load(script.as_bytes()) {
        Ok(s) => {
            let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            let args: Vec<&[u8]> = args.iter().map(|k| k.as_bytes()).collect();
            let _: Option<Outcome> = engine.run(host, &s.sha, &keys, &args, &mut out);
        }
        Err(e) => out.error(&e.0),
    }
    out.as_bytes().to_vec()
}

pub fn engine() -> EvalEngine {
    EvalEngine::new(Options::default()).expect("engine")
}

pub fn function_engine() -> FunctionEngine {
    FunctionEngine::new(Options::default()).expect("engine")
}

pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
