//! The `magpie` binary against a real `magpie-server`: every subcommand, the piped shell, the
//! output modes and the exit codes. Each test starts its own server, so they run in parallel.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../../magpie-server/tests/common/pid.rs"]
mod pid;
use pid::process_id_on;

#[path = "../../magpie-server/tests/common/redis.rs"]
mod redis_check;

/// `magpie-server` from the same target directory as `magpie`, built once if it is missing
/// (`cargo test -p magpie-cli` alone does not build other packages' binaries).
fn server_binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let magpie = PathBuf::from(env!("CARGO_BIN_EXE_magpie"));
        let dir = magpie.parent().expect("the directory of the magpie binary");
        let bin = dir.join("magpie-server");
        if !bin.exists() {
            let profile = match dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => "dev".to_owned(),
                Some(other) => other.to_owned(),
            };
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "-p", "magpie-server", "--profile", &profile])
                .status()
                .expect("run cargo build -p magpie-server");
            assert!(status.success() && bin.exists(), "could not build magpie-server into {}", bin.display());
        }
        bin
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// A server process on a free port, killed when dropped.
struct Server {
    port: u16,
    child: Child,
}

impl Server {
    fn start() -> Server {
        Server::spawn(server_binary().as_os_str(), &[]).expect("magpie-server did not start")
    }

    /// redis-server with persistence off, if it is installed (a test without it says so, or
    /// fails under `MAGPIE_REQUIRE_REDIS=1`).
    fn redis() -> Option<Server> {
        if let Err(e) = Command::new("redis-server").arg("--version").output() {
            redis_check::skip_without_redis(&e.to_string());
            return None;
        }
        let server = Server::spawn("redis-server".as_ref(), &["--save", "", "--appendonly", "no"]);
        Some(server.expect("redis-server is installed but did not start"))
    }

    fn spawn(program: &std::ffi::OsStr, extra: &[&str]) -> Option<Server> {
        // A port found free may be taken before the server binds it: then try another.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(program)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", ""])
                // Servers start in parallel: magpie-server's HTTP API stays off.
                .args(if program == "redis-server" { &[][..] } else { &["--http-port", "0"][..] })
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .ok()?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    // Ours, or another process that holds the port (ours then exits)?
                    if process_id_on(port) == Some(child.id()) {
                        return Some(Server { port, child });
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        None
    }

    /// `magpie -p <port>`, with nothing from the environment that could change its behaviour.
    fn magpie(&self) -> assert_cmd::Command {
        let mut cmd = magpie_bin();
        cmd.args(["-p", &self.port.to_string()]);
        cmd
    }

    /// Runs magpie with `args`; returns stdout, after checking the exit code.
    fn run(&self, args: &[&str], code: i32) -> String {
        let out = self.magpie().args(args).output().expect("run magpie");
        assert_eq!(
            out.status.code(),
            Some(code),
            "magpie {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    fn json(&self, args: &[&str], code: i32) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all, code);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn magpie_bin() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(env!("CARGO_BIN_EXE_magpie"));
    cmd.env_remove("MAGPIE_URL").env("MAGPIE_HISTFILE", "").env("NO_COLOR", "1").timeout(Duration::from_secs(30));
    cmd
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn set_and_get_one_key() {
    let s = Server::start();
    assert_eq!(s.run(&["set", "greeting", "hello, world"], 0), "OK\n");
    assert_eq!(s.run(&["get", "greeting"], 0), "hello, world\n");
    assert_eq!(s.json(&["get", "greeting"], 0), serde_json::json!({"key": "greeting", "value": "hello, world"}));
    // --raw adds nothing, not even a newline.
    assert_eq!(s.run(&["get", "greeting", "--raw"], 0), "hello, world");
}

#[test]
fn a_missing_key_exits_1() {
    let s = Server::start();
    let out = s.magpie().args(["get", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(stderr_of(&out), "not found: nope\n");
    assert_eq!(s.json(&["get", "nope"], 1), serde_json::json!({"key": "nope", "value": null}));
    assert_eq!(s.run(&["get", "nope", "--raw"], 1), "");
}

#[test]
fn many_keys_in_one_get_show_the_missing_ones() {
    let s = Server::start();
    s.run(&["set", "a=1,b=two words"], 0);
    let out = s.run(&["get", "a", "missing,b"], 0);
    assert_eq!(out, "a        \"1\"\nmissing  (missing)\nb        \"two words\"\n");
    let json = s.json(&["get", "a,missing,b"], 0);
    assert_eq!(
        json,
        serde_json::json!([
            {"key": "a", "value": "1"},
            {"key": "missing", "value": null},
            {"key": "b", "value": "two words"},
        ])
    );
    // One MGET, not three GETs.
    let stats = s.run(&["cmd", "INFO", "commandstats"], 0);
    assert!(stats.contains("cmdstat_mget:calls=2"), "{stats}");
    assert!(!stats.contains("cmdstat_get:"), "{stats}");
}

#[test]
fn multi_set_forms_and_escapes() {
    let s = Server::start();
    assert_eq!(s.run(&["set", "k1=v1,k2=v2", "k3=v3"], 0), "OK (3 keys set)\n");
    assert_eq!(s.run(&["set", "x=1", "y=2"], 0), "OK (2 keys set)\n");
    // KEY VALUE takes the value exactly; k=v splits, with \, and \= for literal ones.
    s.run(&["set", "note", "x=1,y=2"], 0);
    s.run(&["set", r"list=a\,b\,c,eq=p=q", r"we\=ird=ok"], 0);
    let json = s.json(&["get", "k1,k2,k3,x,y,note,list,eq,we=ird"], 0);
    let values: Vec<&str> = json.as_array().unwrap().iter().map(|e| e["value"].as_str().unwrap()).collect();
    assert_eq!(values, ["v1", "v2", "v3", "1", "2", "x=1,y=2", "a,b,c", "p=q", "ok"]);
    assert_eq!(s.run(&["get", r"we\=ird"], 0), "ok\n", "escapes are optional where nothing splits");
    assert_eq!(s.run(&["get", "--literal", "we=ird"], 0), "ok\n");
    // --literal: KEY VALUE pairs taken exactly.
    s.run(&["set", "--literal", "a,b", "c=d", "e", "f,g"], 0);
    assert_eq!(s.run(&["get", "--literal", "a,b"], 0), "c=d\n");
    assert_eq!(s.run(&["get", "e"], 0), "f,g\n");
    assert_eq!(s.json(&["set", "j1=1,j2=2"], 0), serde_json::json!({"ok": true, "keys": 2}));
}

#[test]
fn set_mistakes_are_usage_errors() {
    let s = Server::start();
    for (args, says) in [
        (&["set", "lonely"][..], "to set one key: magpie set KEY VALUE"),
        (&["set", "a=1,b"], r#"expected KEY=VALUE, got "b""#),
        (&["set", "a=1,b=2", "--ex", "10"], "--ex works with one key only"),
        (&["set", "k", "v", "--value-file", "/dev/null"], "--value-file sets one key"),
        (&["set", "k", "--value-file", "/no/such/file"], "cannot read /no/such/file"),
        (&["get", "a,,b"], "empty key"),
    ] {
        let out = s.magpie().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr_of(&out);
        assert!(err.starts_with("error: ") && err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    assert_eq!(s.run(&["keys"], 0), "", "nothing was written");
}

#[test]
fn set_with_expiry_and_nx_for_one_key() {
    let s = Server::start();
    s.run(&["set", "session", "abc", "--ex", "100"], 0);
    let ttl = s.run(&["ttl", "session"], 0);
    assert!(ttl == "100 s (1m 40s)\n" || ttl == "99 s (1m 39s)\n", "{ttl}");
    let out = s.magpie().args(["set", "session", "other", "--nx"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr_of(&out), "not set: session already exists (--nx)\n");
    assert_eq!(s.run(&["get", "session"], 0), "abc\n");
    assert_eq!(s.run(&["set", "fresh", "x", "--nx"], 0), "OK\n");
}

#[test]
fn atomic_multi_set_with_nx_writes_nothing_and_names_the_existing_key() {
    let s = Server::start();
    s.run(&["set", "taken", "old"], 0);
    let out = s.magpie().args(["set", "--nx", "new1=a,taken=b", "new2=c"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr_of(&out), "nothing written (--nx): taken already exists (of 3 keys)\n");
    assert_eq!(s.json(&["get", "new1,taken,new2"], 0)[1]["value"], "old");
    s.run(&["get", "new1"], 1);
    s.run(&["get", "new2"], 1);
    s.run(&["set", "also=x"], 0);
    let json = s.json(&["set", "--nx", "also=1,taken=2,new3=3"], 1);
    assert_eq!(json, serde_json::json!({"ok": false, "existing": ["also", "taken"]}));
    assert_eq!(s.run(&["set", "--nx", "new1=a,new2=b"], 0), "OK (2 keys set)\n");
}

#[test]
fn binary_values_round_trip_through_a_file_and_raw_output() {
    let s = Server::start();
    let dir = std::env::temp_dir().join(format!("magpie-cli-test-{}-{}", std::process::id(), s.port));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("all-bytes.bin");
    let bytes: Vec<u8> = (0..=255u8).cycle().take(256 * 40 + 7).collect();
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(s.run(&["set", "img", "--value-file", path.to_str().unwrap()], 0), "OK\n");
    let out = s.magpie().args(["get", "img", "--raw"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == bytes, "raw output differs from the file ({} bytes vs {})", out.stdout.len(), bytes.len());
    // Without --raw, an escaped, quoted form and a note on stderr.
    let out = s.magpie().args(["get", "img"]).output().unwrap();
    assert!(out.stdout.starts_with(br#""\x00\x01\x02"#));
    assert!(stderr_of(&out).contains("--raw prints the exact bytes"));
    // JSON carries bytes that are not UTF-8 as base64.
    s.run(&["set", "small", "--value-file", path.to_str().unwrap()], 0);
    let json = s.json(&["get", "small"], 0);
    assert!(json["value"]["base64"].as_str().unwrap().starts_with("AAECAwQF"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn values_from_stdin() {
    let s = Server::start();
    let bytes: Vec<u8> = (0..=255u8).rev().collect();
    s.magpie().args(["set", "piped", "--value-file", "-"]).write_stdin(bytes.clone()).assert().code(0).stdout("OK\n");
    let out = s.magpie().args(["get", "piped", "--raw"]).output().unwrap();
    assert_eq!(out.stdout, bytes);
    s.magpie().args(["set", "empty", "--value-file", "-"]).write_stdin(Vec::new()).assert().code(0);
    assert_eq!(s.run(&["get", "empty", "--raw"], 0), "");
}

#[test]
fn del_reports_how_many_existed() {
    let s = Server::start();
    s.run(&["set", "a=1,b=2"], 0);
    assert_eq!(s.run(&["del", "a,b", "c"], 0), "deleted 2 of 3 keys (the others did not exist)\n");
    s.run(&["set", "a=1,b=2"], 0);
    assert_eq!(s.json(&["del", "a", "b,c", "a"], 0), serde_json::json!({"deleted": 2, "named": 3}));
    assert_eq!(s.run(&["del", "a"], 0), "a did not exist\n");
    s.run(&["set", "a", "1"], 0);
    assert_eq!(s.run(&["del", "a"], 0), "deleted a\n");
}

#[test]
fn incr_by_integers_and_decimals() {
    let s = Server::start();
    assert_eq!(s.run(&["incr", "n"], 0), "1\n");
    assert_eq!(s.run(&["incr", "n", "5"], 0), "6\n");
    assert_eq!(s.run(&["incr", "n", "-10"], 0), "-4\n");
    assert_eq!(s.run(&["incr", "price", "10.5"], 0), "10.5\n");
    assert_eq!(s.json(&["incr", "price", "0.25"], 0), serde_json::json!({"key": "price", "value": 10.75}));
    assert_eq!(s.json(&["incr", "n"], 0), serde_json::json!({"key": "n", "value": -3}));
    let out = s.magpie().args(["incr", "n", "lots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("BY must be a number"));
    s.run(&["set", "word", "abc"], 0);
    let out = s.magpie().args(["incr", "word"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr_of(&out), "(error) ERR value is not an integer or out of range\n");
}

#[test]
fn ttl_and_expire() {
    let s = Server::start();
    s.run(&["ttl", "nope"], 1);
    assert_eq!(s.json(&["ttl", "nope"], 1), serde_json::json!({"key": "nope", "exists": false, "ttl": null}));
    s.run(&["set", "k", "v"], 0);
    assert_eq!(s.run(&["ttl", "k"], 0), "no expiry\n");
    assert_eq!(s.run(&["expire", "k", "30"], 0), "OK\n");
    let ttl = s.run(&["ttl", "k"], 0);
    assert!(ttl == "30 s\n" || ttl == "29 s\n", "{ttl}");
    assert_eq!(s.json(&["ttl", "k"], 0)["exists"], true);
    assert_eq!(s.json(&["expire", "nope", "5"], 1), serde_json::json!({"key": "nope", "set": false}));
    let out = s.magpie().args(["expire", "nope", "5"]).output().unwrap();
    assert_eq!((out.status.code(), stderr_of(&out).as_str()), (Some(1), "not found: nope\n"));
}

#[test]
fn keys_walks_the_keyspace_with_scan() {
    let s = Server::start();
    s.run(&["set", "user:2=b,user:1=a,user:10=c,other=x", "with space=y"], 0);
    assert_eq!(s.run(&["keys", "user:*"], 0), "user:1\nuser:10\nuser:2\n");
    assert_eq!(s.run(&["keys", "user:?"], 0), "user:1\nuser:2\n");
    assert_eq!(s.run(&["keys"], 0), "other\nuser:1\nuser:10\nuser:2\n\"with space\"\n");
    assert_eq!(s.json(&["keys", "w*"], 0), serde_json::json!(["with space"]));
    // Many keys, few per SCAN call: the cursor is followed to the end.
    let pairs: Vec<String> = (0..1500).map(|i| format!("many:{i}=v")).collect();
    s.run(&["set", &pairs.join(",")], 0);
    assert_eq!(s.run(&["keys", "many:*", "--count", "50"], 0).lines().count(), 1500);
    let stats = s.run(&["cmd", "INFO", "commandstats"], 0);
    assert!(stats.contains("cmdstat_scan:"), "{stats}");
    assert!(!stats.contains("cmdstat_keys:"), "KEYS must never be used: {stats}");
}

#[test]
fn passthrough_commands_print_typed_replies() {
    let s = Server::start();
    assert_eq!(s.run(&["cmd", "PING"], 0), "PONG\n");
    assert_eq!(s.run(&["cmd", "SET", "k", "v", "EX", "10", "NX"], 0), "OK\n");
    assert_eq!(s.run(&["cmd", "EXISTS", "k", "x"], 0), "(integer) 1\n");
    assert_eq!(s.run(&["cmd", "MGET", "k", "x"], 0), "1) \"v\"\n2) (nil)\n");
    assert_eq!(s.run(&["cmd", "CONFIG", "GET", "maxclients"], 0), "1# \"maxclients\" => \"10000\"\n");
    assert_eq!(s.json(&["cmd", "CONFIG", "GET", "maxclients"], 0), serde_json::json!({"maxclients": "10000"}));
    assert_eq!(s.run(&["--raw", "cmd", "MGET", "k", "x"], 0), "v\n\n");
    let out = s.magpie().args(["cmd", "NOSUCH", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).starts_with("(error) ERR unknown command 'NOSUCH'"), "{}", stderr_of(&out));
    // Arguments that look like options belong to the command.
    assert_eq!(s.run(&["cmd", "INCRBY", "n", "-5"], 0), "(integer) -5\n");
}

#[test]
fn stats_summarizes_info() {
    let s = Server::start();
    s.run(&["set", "a=1,b=22,c=333"], 0);
    s.run(&["get", "a,b,nope"], 0);
    let text = s.run(&["stats"], 0);
    assert!(text.starts_with(&format!("Magpie {} at 127.0.0.1:{}, up ", env!("CARGO_PKG_VERSION"), s.port)), "{text}");
    for line in ["keys        3 (0 with an expiry)\n", "values      6 B\n", "key ops     get 3, set 3, del 0\n"] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    for label in ["ops/s       ", "hit rate    66.7% (2 hits, 1 misses)", "memory      ", "clients     1 connected"] {
        assert!(text.contains(label), "{label:?} in\n{text}");
    }
    let json = s.json(&["stats"], 0);
    let summary = &json["summary"];
    assert_eq!(summary["server"], "magpie");
    assert_eq!(summary["keys"], 3);
    assert_eq!(summary["value_bytes"], 6);
    assert_eq!(summary["key_ops"], serde_json::json!({"get": 3, "set": 3, "del": 0}));
    assert!(summary["ops_per_sec"].is_number());
    assert!(summary["memory"]["used"].as_i64().unwrap() > 0);
    assert_eq!(json["info"]["keyspace"]["db0"].as_str().map(|s| s.starts_with("keys=3,")), Some(true));
    assert_eq!(json["address"], format!("127.0.0.1:{}", s.port));
}

#[test]
fn stats_watch_refreshes() {
    let s = Server::start();
    let out = s.run(&["--json", "stats", "--watch", "--count", "2"], 0);
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["summary"]["clients"]["connected"] == 1));
}

#[test]
fn stats_against_redis_server_shows_what_it_has() {
    let Some(redis) = Server::redis() else { return };
    redis.run(&["set", "a=1,b=2"], 0);
    let text = redis.run(&["stats"], 0);
    assert!(text.contains("keys        2 (0 with an expiry)\n"), "{text}");
    assert!(text.contains("values      n/a\n"), "{text}");
    assert!(text.contains("key ops     get n/a, set n/a, del n/a\n"), "{text}");
    let json = redis.json(&["stats"], 0);
    assert_eq!(json["summary"]["server"], "redis");
    assert_eq!(json["summary"]["value_bytes"], Value::Null);
    assert_eq!(json["summary"]["keys"], 2);
}

#[test]
fn the_shell_runs_piped_commands() {
    let s = Server::start();
    let script = "set greeting \"hello\\x00world\"\n\
                  get greeting\n\
                  SET k v xx yy\n\
                  mget greeting nothing\n\
                  incr greeting\n\
                  \n\
                  select 2\n\
                  set in2 yes\n\
                  config get maxclients\n\
                  exists in2\n\
                  quit\n\
                  set after quit\n";
    let out = s.magpie().write_stdin(script).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let expected = "OK\n\
                    \"hello\\x00world\"\n\
                    (error) ERR syntax error\n\
                    1) \"hello\\x00world\"\n2) (nil)\n\
                    (error) ERR value is not an integer or out of range\n\
                    OK\n\
                    OK\n\
                    1# \"maxclients\" => \"10000\"\n\
                    (integer) 1\n";
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    assert_eq!(s.run(&["-n", "2", "get", "in2"], 0), "yes\n");
    s.run(&["get", "after"], 1);
    // Unbalanced quotes are reported, and the next line still runs.
    let out = s.magpie().write_stdin("get \"open\nping\n").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PONG\n");
    assert!(stderr_of(&out).contains("unbalanced quotes"));
    // --json and --raw apply to the shell too.
    let out = s.magpie().arg("--json").write_stdin("mget greeting nothing\n").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[\"hello\\u0000world\",null]\n");
}

#[test]
fn the_url_and_its_overrides() {
    let s = Server::start();
    let url = format!("redis://127.0.0.1:{}/3", s.port);
    magpie_bin().env("MAGPIE_URL", &url).args(["set", "k", "in3"]).assert().code(0);
    magpie_bin().args(["-u", &url, "get", "k"]).assert().code(0).stdout("in3\n");
    magpie_bin().args(["-u", &url, "-n", "0", "get", "k"]).assert().code(1);
    magpie_bin().args(["-h", "127.0.0.1", "-p", &s.port.to_string(), "-n", "3", "get", "k"]).assert().code(0);
    let out = magpie_bin().args(["-u", "http://x", "get", "k"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).starts_with("error: invalid URL \"http://x\": the scheme must be redis://"));
}

#[test]
fn a_server_that_is_not_running_is_exit_2_with_a_hint() {
    let port = free_port().to_string();
    for args in [&["get", "k"][..], &["stats"], &["cmd", "PING"]] {
        let out = magpie_bin().args(["-p", &port]).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            stderr_of(&out),
            format!("error: could not connect to 127.0.0.1:{port} (connection refused) — is magpie-server running?\n")
        );
        assert!(out.stdout.is_empty());
    }
    // The piped shell too.
    let out = magpie_bin().args(["-p", &port]).write_stdin("ping\n").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("could not connect"));
}

#[test]
fn help_and_completions() {
    let out = magpie_bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for part in ["-h, --host <HOST>", "--json", "MAGPIE_URL", "Examples:", "Exit codes:", r"\,"] {
        assert!(help.contains(part), "{part:?} in --help");
    }
    for sub in [
        "get",
        "set",
        "del",
        "incr",
        "ttl",
        "expire",
        "keys",
        "cmd",
        "stats",
        "subscribe",
        "psubscribe",
        "publish",
        "completions",
    ] {
        let out = magpie_bin().args([sub, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{sub} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Example"), "{sub} --help has examples");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = magpie_bin().args(["completions", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("magpie") && script.contains("value-file"), "{shell}");
    }
}

/// `magpie ARGS` started in the background with its output piped, for the subcommands that
/// run until stopped.
fn spawn_magpie(s: &Server, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_magpie"))
        .env_remove("MAGPIE_URL")
        .args(["-p", &s.port.to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start magpie")
}

/// Waits until `channel` has `n` subscribers (PUBSUB NUMSUB), or `pattern` subscriptions exist.
fn wait_subscribed(s: &Server, what: &[&str], n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut args = vec!["--json", "cmd", "PUBSUB"];
        args.extend_from_slice(what);
        let out = magpie_bin().args(["-p", &s.port.to_string()]).args(&args).output().expect("run magpie");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let count = v.as_array().and_then(|a| a.last()).and_then(Value::as_i64).or_else(|| v.as_i64());
        if count == Some(n) {
            return;
        }
        assert!(Instant::now() < deadline, "PUBSUB {what:?} did not reach {n}: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the child to exit by itself, and returns its output.
fn finish(child: Child) -> std::process::Output {
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().expect("wait for magpie"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !waiter.is_finished() {
        if Instant::now() > deadline {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("magpie (pid {pid}) did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    waiter.join().expect("waiter")
}

#[test]
fn subscribe_prints_messages_as_they_arrive() {
    let s = Server::start();
    let child = spawn_magpie(&s, &["subscribe", "news", "alerts", "--count", "3"]);
    wait_subscribed(&s, &["NUMSUB", "alerts"], 1);
    assert_eq!(s.run(&["publish", "news", "hello, world"], 0), "delivered to 1 subscriber\n");
    assert_eq!(s.run(&["--raw", "publish", "alerts", "two\nlines"], 0), "1\n");
    assert_eq!(s.json(&["publish", "news", "\u{1}"], 0), serde_json::json!({"channel": "news", "receivers": 1}));
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "news: hello, world\nalerts: \"two\\nlines\"\nnews: \"\\x01\"\n");
    assert_eq!(stderr_of(&out), "listening on news, alerts (Ctrl-C to stop)\n");
    assert_eq!(s.run(&["publish", "news", "x"], 0), "delivered to 0 subscribers (nobody listens on news)\n");
}

#[test]
fn psubscribe_json_and_raw() {
    let s = Server::start();
    let json = spawn_magpie(&s, &["--json", "psubscribe", "user:*", "--count", "2"]);
    let raw = spawn_magpie(&s, &["--raw", "psubscribe", "user:*", "--count", "2"]);
    // Both listen on one pattern (NUMPAT counts patterns): wait for two pattern subscribers.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = magpie_bin()
            .args(["-p", &s.port.to_string(), "--raw", "cmd", "CLIENT", "LIST", "TYPE", "pubsub"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).matches("psub=1").count() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "two pattern subscribers");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(s.run(&["--raw", "publish", "user:1", "alice"], 0), "2\n");
    s.run(&["cmd", "SET", "k", "v"], 0);
    assert_eq!(s.run(&["--raw", "publish", "user:2", "b\u{e9}b"], 0), "2\n");
    let out = finish(json);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(
        lines,
        vec![
            serde_json::json!({"channel": "user:1", "pattern": "user:*", "message": "alice"}),
            serde_json::json!({"channel": "user:2", "pattern": "user:*", "message": "b\u{e9}b"}),
        ]
    );
    let out = finish(raw);
    assert_eq!(out.stdout, "alice\nb\u{e9}b\n".as_bytes());
}

#[test]
fn subscribe_ends_cleanly_on_ctrl_c_and_on_a_closed_pipe() {
    let s = Server::start();
    // SIGINT, as Ctrl-C sends it.
    let child = spawn_magpie(&s, &["subscribe", "news"]);
    wait_subscribed(&s, &["NUMSUB", "news"], 1);
    s.run(&["publish", "news", "one"], 0);
    std::thread::sleep(Duration::from_millis(100));
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "news: one\n");
    wait_subscribed(&s, &["NUMSUB", "news"], 0);
    // A reader that goes away (`magpie subscribe news | head -1`).
    let mut child = spawn_magpie(&s, &["subscribe", "news"]);
    wait_subscribed(&s, &["NUMSUB", "news"], 1);
    drop(child.stdout.take());
    for i in 0..3 {
        s.run(&["publish", "news", &format!("m{i}")], 0);
    }
    let out = finish(child);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "listening on news (Ctrl-C to stop)\n");
}

/// -a, --user, the URL's user and password, and --tls with its certificate options.
#[test]
fn auth_and_tls_options() {
    let dir = std::env::temp_dir().join(format!("magpie-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "magpie-cli test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().expect("key")).expect("CA");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca).expect("certificate");
    let path = |f: &str| dir.join(f).display().to_string();
    std::fs::write(path("ca.crt"), ca.pem()).expect("write");
    std::fs::write(path("server.crt"), cert.pem()).expect("write");
    std::fs::write(path("server.key"), key.serialize_pem()).expect("write");
    let tls_port = free_port().to_string();
    let (crt, key, ca_file) = (path("server.crt"), path("server.key"), path("ca.crt"));
    let server = Server::spawn(
        server_binary().as_os_str(),
        &["--tls-port", &tls_port, "--tls-cert-file", &crt, "--tls-key-file", &key, "--tls-auth-clients", "no"],
    )
    .expect("magpie-server with TLS");
    server.run(&["cmd", "ACL", "SETUSER", "alice", "on", ">pw", "+@all", "~*"], 0);
    server.run(&["set", "k", "v"], 0);
    assert_eq!(server.run(&["--raw", "--user", "alice", "-a", "pw", "get", "k"], 0), "v");
    let url = format!("redis://alice:pw@127.0.0.1:{}", server.port);
    assert_eq!(magpie_bin().args(["--raw", "-u", &url, "get", "k"]).output().expect("run").stdout, b"v");
    let out = server.magpie().args(["--user", "alice", "-a", "nope", "get", "k"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WRONGPASS"), "{out:?}");
    // TLS: with the CA, through the flags or a rediss:// URL; without it, a clear failure.
    let tls = ["--raw", "--tls", "--cacert", &ca_file, "--sni", "localhost", "-p", &tls_port];
    assert_eq!(magpie_bin().args(tls).args(["get", "k"]).output().expect("run").stdout, b"v");
    let url = format!("rediss://alice:pw@127.0.0.1:{tls_port}");
    let out = magpie_bin().args(["--raw", "-u", &url, "--cacert", &ca_file, "--sni", "localhost", "get", "k"]).output();
    assert_eq!(out.expect("run").stdout, b"v");
    let out = magpie_bin().args(["--tls", "-p", &tls_port, "get", "k"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS"), "{out:?}");
    let out = magpie_bin().args(["--raw", "--tls", "--insecure", "-p", &tls_port, "get", "k"]).output().expect("run");
    assert_eq!(out.stdout, b"v");
    std::fs::remove_dir_all(&dir).ok();
}

/// Sends one inline command on a plain socket (no HELLO, which a monitor would show) and
/// returns the reply's first line and, for a bulk string, its body.
fn inline(s: &Server, line: &str) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    conn.write_all(format!("{line}\r\n").as_bytes()).expect("send");
    let mut reader = BufReader::new(conn);
    let mut head = String::new();
    reader.read_line(&mut head).expect("reply");
    if let Some(len) = head.strip_prefix('$').and_then(|n| n.trim().parse::<usize>().ok()) {
        let mut body = vec![0u8; len + 2];
        reader.read_exact(&mut body).expect("body");
        return String::from_utf8_lossy(&body).into_owned();
    }
    head
}

/// Waits until `n` clients have run MONITOR (CLIENT LIST shows it as their last command).
fn wait_monitors(s: &Server, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while inline(s, "CLIENT LIST").matches("cmd=monitor").count() != n {
        assert!(Instant::now() < deadline, "{n} monitors");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn monitor_prints_commands_as_they_run() {
    let s = Server::start();
    let human = spawn_magpie(&s, &["monitor", "--count", "2"]);
    let json = spawn_magpie(&s, &["--json", "monitor", "--count", "2"]);
    wait_monitors(&s, 2);
    // CLIENT LIST is an admin command: monitors do not see it.
    assert_eq!(inline(&s, "SET k \"two words\""), "+OK\r\n");
    assert_eq!(inline(&s, "GET k"), "two words\r\n");
    let out = finish(human);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].ends_with("\"SET\" \"k\" \"two words\"") && lines[0].contains(" [0 127.0.0.1:"), "{text}");
    assert!(lines[1].ends_with("\"GET\" \"k\""), "{text}");
    assert_eq!(stderr_of(&out), "watching every command (Ctrl-C to stop)\n");
    let out = finish(json);
    let first: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().expect("a line")).expect("json");
    assert_eq!(first["args"], serde_json::json!(["SET", "k", "two words"]));
    assert_eq!(first["db"], 0);
    assert!(first["time"].as_f64().is_some_and(|t| t > 1.0e9), "{first}");
}

/// Every key's type, value (as `magpie cmd` prints it) and TTL, through the CLI.
fn dump_all(server: &Server) -> Vec<(String, String, String, i64)> {
    let mut keys: Vec<String> = server.run(&["--raw", "keys"], 0).lines().map(str::to_owned).collect();
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let kind = server.run(&["--raw", "cmd", "TYPE", &k], 0).trim().to_owned();
            let read: Vec<&str> = match kind.as_str() {
                "string" => vec!["GET", &k],
                "list" => vec!["LRANGE", &k, "0", "-1"],
                "hash" => vec!["HGETALL", &k],
                "set" => vec!["SMEMBERS", &k],
                _ => vec!["ZRANGE", &k, "0", "-1", "WITHSCORES"],
            };
            let mut args = vec!["--json", "cmd"];
            args.extend(read);
            let mut value = server.run(&args, 0);
            if kind == "set" {
                let mut members: Vec<Value> = serde_json::from_str(&value).expect("JSON");
                members.sort_by_key(|m| m.to_string());
                value = Value::Array(members).to_string();
            }
            let ttl: i64 = server.run(&["--raw", "cmd", "TTL", &k], 0).trim().parse().expect("a TTL");
            (k, kind, value, ttl)
        })
        .collect()
}

#[test]
fn export_flush_import_finds_every_key_type_and_ttl_again() {
    let server = Server::start();
    let setup: &[&[&str]] = &[
        &["SET", "s", "plain"],
        &["SET", "n", "42"],
        &["SET", "t", "expiring", "EX", "1000"],
        &["RPUSH", "l", "a", "b", "a", ""],
        &["HSET", "h", "f", "v", "g", "w"],
        &["SADD", "set", "x", "y", "z"],
        &["ZADD", "z", "1.5", "a", "-2", "b", "inf", "c"],
        &["EXPIRE", "h", "500"],
    ];
    for cmd in setup {
        let mut args = vec!["cmd"];
        args.extend_from_slice(cmd);
        server.run(&args, 0);
    }
    // A value and a key that are not UTF-8, through a file.
    let dir = std::env::temp_dir().join(format!("magpie-cli-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = dir.join("bin");
    std::fs::write(&bin, b"\xff\x00\xfe").expect("write");
    server.run(&["set", "binary", "--value-file", bin.to_str().expect("utf-8")], 0);
    let before = dump_all(&server);
    let file = dir.join("export.ndjson");
    let path = file.to_str().expect("utf-8");
    server.run(&["export", path], 0);
    let text = std::fs::read_to_string(&file).expect("read export");
    assert_eq!(text.lines().count(), 8, "{text}");
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("each line is JSON");
        assert!(v["key"].is_string() && v["type"].is_string(), "{line}");
    }
    assert!(text.contains(r#"{"key":"binary","type":"string","value":{"$base64":"/wD+"}}"#), "{text}");
    server.run(&["cmd", "FLUSHALL"], 0);
    assert_eq!(server.run(&["--raw", "cmd", "DBSIZE"], 0).trim(), "0");
    assert_eq!(server.run(&["import", path], 0).trim(), "imported 8 keys");
    let after = dump_all(&server);
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!((&b.0, &b.1, &b.2), (&a.0, &a.1, &a.2), "key, type and value");
        assert!((b.3 - a.3).abs() <= 2, "TTL of {}: {} then {}", b.0, b.3, a.3);
    }
    let raw = server.magpie().args(["--raw", "get", "binary"]).output().expect("get");
    assert_eq!(raw.stdout, b"\xff\x00\xfe");
    // Through a pipe too, and a bad line names itself and writes nothing of its batch.
    let out = server.magpie().args(["export"]).output().expect("export");
    server.run(&["cmd", "FLUSHALL"], 0);
    server.magpie().arg("import").write_stdin(out.stdout).assert().success();
    assert_eq!(server.run(&["--raw", "cmd", "DBSIZE"], 0).trim(), "8");
    server.run(&["cmd", "FLUSHALL"], 0);
    let bad = "{\"key\":\"ok\",\"type\":\"string\",\"value\":\"1\"}\n{\"key\":\"l\",\"type\":\"list\",\"value\":7}\n";
    let out = server.magpie().arg("import").write_stdin(bad).output().expect("import");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("line 2"), "{}", stderr_of(&out));
    assert_eq!(server.run(&["--raw", "cmd", "DBSIZE"], 0).trim(), "0");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn completions_end_quietly_on_a_closed_pipe() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_magpie"))
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The reader is gone before anything is written (as `| head -1` once it has its line).
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
