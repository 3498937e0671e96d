//! Differential test of authentication and ACLs: the same users are created on Magpie and on
//! Debian's `redis-server` (the Redis 7.0 reference), then the same commands run on both over
//! several connections (each logged in as someone), and every reply is compared: AUTH, HELLO
//! AUTH, NOAUTH, WRONGPASS, the ACL subcommands, NOPERM errors for commands, keys and
//! channels, inside MULTI/EXEC too, and the ACL LOG they leave.
//!
//! `#[ignore]`d like the other differential tests:
//!
//! ```text
//! MAGPIE_REQUIRE_REDIS=1 cargo test -p magpie-server --test acl_differential -- --ignored
//! ```
//!
//! Script lines are `[connection>] [~check] command`: `connection` names a connection (opened
//! on first use, "main" when none is named); checks: `~words` sorts the words of each string
//! (ACL LIST prints single commands in table order, Redis in its hash table's order), `~log`
//! leaves out the ACL LOG's ages and client lines, `~len` compares string lengths only
//! (GENPASS), `~type` the reply's type only (HELLO's map holds the client id).

mod common;

use std::collections::HashMap;

use common::{Raw, Server};

/// A reply, parsed enough to normalize it.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Line(u8, Vec<u8>),
    Bulk(Option<Vec<u8>>),
    Many(u8, Vec<Value>),
}

fn parse(raw: &[u8]) -> Value {
    fn line(raw: &[u8], pos: &mut usize) -> Vec<u8> {
        let end = raw[*pos..].windows(2).position(|w| w == b"\r\n").expect("line") + *pos;
        let l = raw[*pos..end].to_vec();
        *pos = end + 2;
        l
    }
    fn value(raw: &[u8], pos: &mut usize) -> Value {
        let kind = raw[*pos];
        *pos += 1;
        let head = line(raw, pos);
        let n = || std::str::from_utf8(&head).ok().and_then(|h| h.parse::<i64>().ok()).expect("a length");
        match kind {
            b'$' | b'=' => {
                let len = n();
                if len < 0 {
                    return Value::Bulk(None);
                }
                let body = raw[*pos..*pos + len as usize].to_vec();
                *pos += len as usize + 2;
                Value::Bulk(Some(body))
            }
            b'*' | b'~' | b'>' => {
                let len = n();
                if len < 0 {
                    return Value::Bulk(None);
                }
                Value::Many(kind, (0..len).map(|_| value(raw, pos)).collect())
            }
            b'%' => Value::Many(kind, (0..n() * 2).map(|_| value(raw, pos)).collect()),
            _ => Value::Line(kind, head),
        }
    }
    value(raw, &mut 0)
}

fn normalize(v: Value, check: &str) -> Value {
    match v {
        Value::Bulk(Some(b)) if check == "~words" => {
            let text = String::from_utf8_lossy(&b).into_owned();
            let mut words: Vec<&str> = text.split(' ').collect();
            words.sort_unstable();
            Value::Bulk(Some(words.join(" ").into_bytes()))
        }
        Value::Bulk(Some(b)) if check == "~len" => Value::Bulk(Some(b.len().to_string().into_bytes())),
        Value::Many(kind, _) | Value::Line(kind, _) if check == "~type" => Value::Line(kind, Vec::new()),
        Value::Many(kind, items) if check == "~log" && is_log_entry(&items) => {
            let mut out = Vec::new();
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                let masked = matches!(&k, Value::Bulk(Some(n)) if n == b"age-seconds" || n == b"client-info");
                out.push(k);
                out.push(if masked { Value::Bulk(None) } else { normalize(v, check) });
            }
            Value::Many(kind, out)
        }
        Value::Many(kind, items) => Value::Many(kind, items.into_iter().map(|v| normalize(v, check)).collect()),
        other => other,
    }
}

fn is_log_entry(items: &[Value]) -> bool {
    matches!(items.first(), Some(Value::Bulk(Some(n))) if n == b"count")
}

struct Side {
    server: Server,
    conns: HashMap<String, Raw>,
}

impl Side {
    fn run(&mut self, conn: &str, args: &[&[u8]]) -> Vec<u8> {
        let port = self.server.port;
        let raw = self.conns.entry(conn.to_string()).or_insert_with(|| Raw::connect(port));
        raw.cmd(args)
    }
}

fn run(script: &str) {
    let Some(redis) = Server::redis() else { return };
    let magpie = Server::magpie();
    let mut sides = [Side { server: redis, conns: HashMap::new() }, Side { server: magpie, conns: HashMap::new() }];
    let mut mismatches = String::new();
    for (n, line) in script.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (conn, rest) = match line.split_once("> ") {
            Some((c, r)) if !c.contains(' ') => (c, r),
            _ => ("main", line),
        };
        let (check, command) = match rest.strip_prefix('~') {
            Some(r) => {
                let (c, cmd) = r.split_once(' ').expect("check and command");
                (format!("~{c}"), cmd)
            }
            None => (String::new(), rest),
        };
        let args: Vec<&[u8]> = command.split(' ').map(|a| if a == "\"\"" { &b""[..] } else { a.as_bytes() }).collect();
        let replies: Vec<Vec<u8>> = sides.iter_mut().map(|s| s.run(conn, &args)).collect();
        let [redis, magpie] = [&replies[0], &replies[1]].map(|r| normalize(parse(r), &check));
        if redis != magpie {
            mismatches.push_str(&format!(
                "line {}: {conn}> {command}\n  redis:  {}\n  magpie: {}\n",
                n + 1,
                String::from_utf8_lossy(&replies[0]).escape_debug(),
                String::from_utf8_lossy(&replies[1]).escape_debug()
            ));
        }
    }
    assert!(mismatches.is_empty(), "replies differ:\n{mismatches}");
}

#[test]
#[ignore = "needs redis-server; run with --ignored"]
fn acl_users_permissions_and_errors() {
    run(r#"
        ACL SETUSER alice on >apass ~app:* %R~ro:* &news.* +@all -@dangerous
        ACL SETUSER bob on >bpass nopass
        ACL SETUSER carol on #5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8 +get ~*
        ACL SETUSER dave on >dpass -@all +get|x +select|0 ~d*
        ACL SETUSER sel on >spass -@all +get ~a* (+set ~b*) (~c* +@hash)
        ACL SETUSER off1 off >opass +@all ~*
        ACL SETUSER bad on bogus
        ACL SETUSER bad +nosuchcommand
        ACL SETUSER bad +@nosuchcategory
        ACL SETUSER bad ~* ~x
        ACL SETUSER bad &* &x
        ACL SETUSER bad #abc
        ACL SETUSER bad <nopass
        ACL SETUSER bad +config|get|x
        ACL SETUSER bad (~x +get
        ACL SETUSER bad +get|
        ACL GETUSER bad
        ACL USERS
        ~words ACL LIST
        ACL GETUSER alice
        ACL GETUSER bob
        ACL GETUSER carol
        ~words ACL GETUSER dave
        ACL GETUSER sel
        ACL GETUSER default
        ACL GETUSER nobody
        ACL WHOAMI
        ACL CAT
        ACL CAT nosuch
        ACL CAT a b
        ~len ACL GENPASS
        ~len ACL GENPASS 5
        ACL GENPASS 0
        ACL GENPASS 4097
        ACL GENPASS x
        ACL DRYRUN alice get app:1
        ACL DRYRUN alice get other
        ACL DRYRUN alice set ro:1 v
        ACL DRYRUN alice flushall
        ACL DRYRUN alice publish news.1 m
        ACL DRYRUN alice publish sports m
        ACL DRYRUN alice nosuch
        ACL DRYRUN alice get
        ACL DRYRUN nobody get k
        ACL DRYRUN sel set b1 v
        ACL DRYRUN sel set a1 v
        ACL DRYRUN sel hset c1 f v
        ACL DRYRUN sel hset a1 f v
        ACL DRYRUN dave get x
        ACL DRYRUN dave get y
        ACL DRYRUN dave select 0
        ACL DRYRUN dave select 1
        ACL LOAD
        ACL SAVE
        ACL NOSUCH
        ACL LOG RESET

        a> AUTH alice wrong
        a> AUTH alice apass
        a> ACL WHOAMI
        a> SET app:1 v
        a> GET app:1
        a> GET ro:1
        a> SET ro:1 v
        a> GET other
        a> MGET app:1 other app:2
        a> FLUSHALL
        a> CONFIG GET maxclients
        a> PING
        a> PUBLISH news.today hello
        a> PUBLISH sports hello
        a> MULTI
        a> SET app:2 v
        a> SET other v
        a> EXEC
        a> MULTI
        a> SET app:3 v
        a> EXEC
        a> AUTH nobody x
        a> AUTH default x
        a> AUTH too many args here
        a> ACL WHOAMI
        ~log ACL LOG
        ~log ACL LOG 2
        ACL LOG -1
        ACL LOG x

        b> AUTH bob anything
        b> ACL WHOAMI
        b> GET k
        c> AUTH carol password
        c> GET anykey
        c> SET anykey v
        o> AUTH off1 opass
        s> AUTH sel spass
        s> GET a1
        s> SET b1 v
        s> SET a1 v
        s> HSET c1 f v
        s> HGET c1 f
        s> GET c1
        d> AUTH dave dpass
        d> SELECT 0
        d> SELECT 1
        d> GET x

        a> RESET
        a> ACL WHOAMI
        h> HELLO 2 AUTH alice wrong
        h> ~type HELLO 2 AUTH alice apass SETNAME ok
        h> ACL WHOAMI
        h> ~type HELLO 2 AUTH bob x SETNAME named
        h> CLIENT GETNAME
        h> HELLO 2 SETNAME x AUTH
        ~log ACL LOG 3
        ACL DELUSER default
        ACL DELUSER nobody
        ACL DELUSER carol dave nobody
        ACL USERS
    "#);
}

/// Scripts run their `redis.call`s as the calling user: a refusal is the script's error, in
/// Redis's words, and goes to the ACL LOG with the `lua` context; `redis.acl_check_cmd`
/// answers for that user.
#[test]
#[ignore = "needs redis-server; run with --ignored"]
fn scripts_run_as_their_user() {
    run(r#"
        ACL SETUSER lua on >lpass -@all +eval +evalsha +get +script|load ~app:* &chan
        ACL LOG RESET
        l> AUTH lua lpass
        l> EVAL "return redis.call('get', KEYS[1])" 1 app:1
        l> EVAL "return redis.call('set', KEYS[1], 'v')" 1 app:1
        l> EVAL "return redis.call('get', KEYS[1])" 1 other
        l> EVAL "return redis.call('get', 'other')" 0
        l> EVAL "return redis.pcall('set', 'app:1', 'v')" 0
        l> EVAL "return redis.call('publish', 'news', 'm')" 0
        l> EVAL "return redis.acl_check_cmd('get', 'app:1')" 0
        l> EVAL "return redis.acl_check_cmd('set', 'app:1', 'v')" 0
        l> EVAL "return redis.acl_check_cmd('get', 'other')" 0
        l> EVAL "return redis.acl_check_cmd('nosuch')" 0
        ~log ACL LOG
    "#);
}

#[test]
#[ignore = "needs redis-server; run with --ignored"]
fn requirepass_auth_and_hello() {
    run(r#"
        AUTH anything
        ~type HELLO 2 AUTH default anything
        CONFIG SET requirepass s3cret
        CONFIG GET requirepass
        ACL GETUSER default
        n> GET k
        n> SET k v
        n> PING
        n> ECHO x
        n> NOSUCHCOMMAND
        n> GET
        n> HELLO 2
        n> HELLO 2 AUTH default wrong
        n> ~type HELLO 2 AUTH default s3cret
        n> GET k
        m> AUTH wrong
        m> AUTH s3cret
        m> GET k
        m> AUTH default s3cret
        m> RESET
        m> GET k
        m> MULTI
        m> AUTH s3cret
        m> EXEC
        q> MULTI
        q> GET k
        q> EXEC
        q> QUIT
        GET k
        ~log ACL LOG
        CONFIG SET requirepass ""
        ACL GETUSER default
        r> GET k
        r> AUTH x
    "#);
}
