//! A small host for tests: answers a few commands against an in-memory map, with the replies
//! and errors redis-server 7.0.15 gives for them.

#![allow(dead_code)]

use std::collections::HashMap;

use magpie_lua::{Control, EvalEngine, FunctionEngine, Host, LogLevel, Options, Outcome, Repl};
use magpie_protocol::{Args, Reply, Resp};

#[derive(Clone, Debug)]
pub(crate) enum Val {
    Str(Vec<u8>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    List(Vec<Vec<u8>>),
    /// Small sets of integers (Redis's intset: sorted).
    IntSet(Vec<i64>),
    ZSet(Vec<(f64, Vec<u8>)>),
}

#[derive(Default)]
pub(crate) struct TestHost {
    pub data: HashMap<Vec<u8>, Val>,
    pub logs: Vec<(LogLevel, Vec<u8>)>,
    pub checks: usize,
    /// Answer Kill from `check` after this many checks.
    pub kill_after: Option<usize>,
    pub repl: Option<Repl>,
    pub calls: Vec<Vec<Vec<u8>>>,
}

const WRONGTYPE: &[u8] = b"WRONGTYPE Operation against a key holding the wrong kind of value";

fn int_arg(b: &[u8]) -> Option<i64> {
    magpie_protocol::parse_i64(b)
}

impl TestHost {
    /// Redis's arity table for the commands this host knows.
    fn arity(name: &str) -> Option<i64> {
        Some(match name {
            "ping" => -1,
            "echo" | "get" | "incr" | "hgetall" | "smembers" | "llen" | "type" | "strlen" => 2,
            "set" | "hset" | "rpush" | "sadd" | "zadd" | "append" | "incrby" | "hget" | "zscore" => match name {
                "set" | "hset" | "rpush" | "sadd" | "zadd" => -3,
                _ => 3,
            },
            "del" | "mget" | "exists" => -2,
            "lrange" => 4,
            "zrange" => -4,
            "flushall" => -1,
            "eval" | "multi" | "hello" | "debug" | "subscribe" => return Some(-100),
            _ => return None,
        })
    }
}

impl Host for TestHost {
    fn call(&mut self, args: Args<'_>, reply: &mut Reply) -> Result<(), Vec<u8>> {
        let args: Vec<&[u8]> = args.iter().collect();
        self.calls.push(args.iter().map(|a| a.to_vec()).collect());
        let name = String::from_utf8_lossy(args[0]).to_ascii_lowercase();
        let Some(arity) = Self::arity(&name) else {
            return Err(b"Unknown Redis command called from script".to_vec());
        };
        if arity == -100 {
            return Err(b"This Redis command is not allowed from script".to_vec());
        }
        let n = args.len() as i64;
        if (arity > 0 && n != arity) || n < -arity {
            return Err(b"Wrong number of args calling Redis command from script".to_vec());
        }
        let key = args.get(1).map(|k| k.to_vec()).unwrap_or_default();
        match name.as_str() {
            "ping" => match args.len() {
                1 => reply.simple("PONG"),
                2 => reply.bulk(args[1]),
                _ => reply.error(b"ERR wrong number of arguments for 'ping' command"),
            },
            "echo" => reply.bulk(args[1]),
            "get" => match self.data.get(&key) {
                Some(Val::Str(v)) => reply.bulk(v),
                Some(_) => reply.error(WRONGTYPE),
                None => reply.null(),
            },
            "strlen" => match self.data.get(&key) {
                Some(Val::Str(v)) => reply.int(v.len() as i64),
                Some(_) => reply.error(WRONGTYPE),
                None => reply.int(0),
            },
            "type" => reply.simple(match self.data.get(&key) {
                Some(Val::Str(_)) => "string",
                Some(Val::Hash(_)) => "hash",
                Some(Val::List(_)) => "list",
                Some(Val::IntSet(_)) => "set",
                Some(Val::ZSet(_)) => "zset",
                None => "none",
            }),
            "set" => {
                if args.len() != 3 {
                    reply.error(b"ERR syntax error");
                } else {
                    self.data.insert(key, Val::Str(args[2].to_vec()));
                    reply.ok();
                }
            }
            "append" => match self.data.entry(key).or_insert_with(|| Val::Str(Vec::new())) {
                Val::Str(v) => {
                    v.extend_from_slice(args[2]);
                    reply.int(v.len() as i64);
                }
                _ => reply.error(WRONGTYPE),
            },
            "del" => {
                let mut n = 0;
                for k in &args[1..] {
                    n += i64::from(self.data.remove(*k).is_some());
                }
                reply.int(n);
            }
            "exists" => {
                let n = args[1..].iter().filter(|k| self.data.contains_key(**k)).count();
                reply.int(n as i64);
            }
            "incr" | "incrby" => {
                let by = if name == "incr" { Some(1) } else { int_arg(args[2]) };
                let Some(by) = by else {
                    reply.error(b"ERR value is not an integer or out of range");
                    return Ok(());
                };
                let cur = match self.data.get(&key) {
                    None => Some(0),
                    Some(Val::Str(v)) => int_arg(v),
                    Some(_) => {
                        reply.error(WRONGTYPE);
                        return Ok(());
                    }
                };
                match cur.and_then(|c| c.checked_add(by)) {
                    Some(v) => {
                        self.data.insert(key, Val::Str(v.to_string().into_bytes()));
                        reply.int(v);
                    }
                    None if cur.is_none() => reply.error(b"ERR value is not an integer or out of range"),
                    None => reply.error(b"ERR increment or decrement would overflow"),
                }
            }
            "mget" => {
                reply.array(args.len() - 1);
                for k in &args[1..] {
                    match self.data.get(*k) {
                        Some(Val::Str(v)) => reply.bulk(v),
                        _ => reply.null(),
                    }
                }
            }
            "hset" => {
                if !args.len().is_multiple_of(2) {
                    reply.error(b"ERR wrong number of arguments for 'hset' command");
                    return Ok(());
                }
                match self.data.entry(key).or_insert_with(|| Val::Hash(Vec::new())) {
                    Val::Hash(h) => {
                        let mut added = 0;
                        for fv in args[2..].chunks(2) {
                            match h.iter_mut().find(|(f, _)| f == fv[0]) {
                                Some(e) => e.1 = fv[1].to_vec(),
                                None => {
                                    h.push((fv[0].to_vec(), fv[1].to_vec()));
                                    added += 1;
                                }
                            }
                        }
                        reply.int(added);
                    }
                    _ => reply.error(WRONGTYPE),
                }
            }
            "hget" => match self.data.get(&key) {
                Some(Val::Hash(h)) => match h.iter().find(|(f, _)| f == args[2]) {
                    Some((_, v)) => reply.bulk(v),
                    None => reply.null(),
                },
                Some(_) => reply.error(WRONGTYPE),
                None => reply.null(),
            },
            "hgetall" => match self.data.get(&key) {
                Some(Val::Hash(h)) => {
                    reply.map(h.len());
                    for (f, v) in h {
                        reply.bulk(f);
                        reply.bulk(v);
                    }
                }
                Some(_) => reply.error(WRONGTYPE),
                None => reply.map(0),
            },
            "rpush" => match self.data.entry(key).or_insert_with(|| Val::List(Vec::new())) {
                Val::List(l) => {
                    l.extend(args[2..].iter().map(|a| a.to_vec()));
                    reply.int(l.len() as i64);
                }
                _ => reply.error(WRONGTYPE),
            },
            "llen" => match self.data.get(&key) {
                Some(Val::List(l)) => reply.int(l.len() as i64),
                Some(_) => reply.error(WRONGTYPE),
                None => reply.int(0),
            },
            "lrange" => match (int_arg(args[2]), int_arg(args[3])) {
                (Some(s), Some(e)) => match self.data.get(&key) {
                    Some(Val::List(l)) => {
                        let len = l.len() as i64;
                        let s = if s < 0 { (len + s).max(0) } else { s };
                        let e = if e < 0 { len + e } else { e.min(len - 1) };
                        if s > e || s >= len {
                            reply.array(0);
                        } else {
                            reply.array((e - s + 1) as usize);
                            for v in &l[s as usize..=e as usize] {
                                reply.bulk(v);
                            }
                        }
                    }
                    Some(_) => reply.error(WRONGTYPE),
                    None => reply.array(0),
                },
                _ => reply.error(b"ERR value is not an integer or out of range"),
            },
            "sadd" => match self.data.entry(key).or_insert_with(|| Val::IntSet(Vec::new())) {
                Val::IntSet(s) => {
                    let mut added = 0;
                    for a in &args[2..] {
                        let v = int_arg(a).unwrap_or(0);
                        if let Err(at) = s.binary_search(&v) {
                            s.insert(at, v);
                            added += 1;
                        }
                    }
                    reply.int(added);
                }
                _ => reply.error(WRONGTYPE),
            },
            "smembers" => match self.data.get(&key) {
                Some(Val::IntSet(s)) => {
                    reply.set(s.len());
                    for v in s {
                        reply.bulk(v.to_string().as_bytes());
                    }
                }
                Some(_) => reply.error(WRONGTYPE),
                None => reply.set(0),
            },
            "zadd" => {
                if !args.len().is_multiple_of(2) {
                    reply.error(b"ERR syntax error");
                    return Ok(());
                }
                match self.data.entry(key).or_insert_with(|| Val::ZSet(Vec::new())) {
                    Val::ZSet(z) => {
                        let mut added = 0;
                        for sm in args[2..].chunks(2) {
                            let score: f64 =
                                std::str::from_utf8(sm[0]).ok().and_then(|s| s.parse().ok()).unwrap_or(0.0);
                            match z.iter_mut().find(|(_, m)| m == sm[1]) {
                                Some(e) => e.0 = score,
                                None => {
                                    z.push((score, sm[1].to_vec()));
                                    added += 1;
                                }
                            }
                        }
                        z.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
                        reply.int(added);
                    }
                    _ => reply.error(WRONGTYPE),
                }
            }
            "zscore" => match self.data.get(&key) {
                Some(Val::ZSet(z)) => match z.iter().find(|(_, m)| m == args[2]) {
                    Some((s, _)) => reply.double(*s),
                    None => reply.null(),
                },
                Some(_) => reply.error(WRONGTYPE),
                None => reply.null(),
            },
            "zrange" => {
                let with = args.len() == 5 && args[4].eq_ignore_ascii_case(b"withscores");
                match self.data.get(&key) {
                    Some(Val::ZSet(z)) => {
                        if with {
                            reply.pairs(z.len());
                            for (s, m) in z {
                                reply.pair();
                                reply.bulk(m);
                                reply.double(*s);
                            }
                        } else {
                            reply.array(z.len());
                            for (_, m) in z {
                                reply.bulk(m);
                            }
                        }
                    }
                    Some(_) => reply.error(WRONGTYPE),
                    None => reply.array(0),
                }
            }
            "flushall" => {
                self.data.clear();
                reply.ok();
            }
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
pub(crate) fn eval(
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

pub(crate) fn engine() -> EvalEngine {
    EvalEngine::new(Options::default()).expect("engine")
}

pub(crate) fn function_engine() -> FunctionEngine {
    FunctionEngine::new(Options::default()).expect("engine")
}

/// Both engines sharing one `math.random` generator, as Redis has one per process.
pub(crate) fn engines() -> (EvalEngine, FunctionEngine) {
    let opts = Options::default();
    (EvalEngine::new(opts.clone()).expect("engine"), FunctionEngine::new(opts).expect("engine"))
}

pub(crate) fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
