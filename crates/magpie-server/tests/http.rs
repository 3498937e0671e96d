//! The HTTP API against a real magpie-server, with a real HTTP client (reqwest over rustls for
//! HTTPS), a real SSE parser (eventsource-stream) and a real Prometheus parser
//! (prometheus-parse); RESP clients on the same server check that both front ends share one
//! keyspace, one log, one set of statistics and events.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;
use futures_util::StreamExt;
use redis::Commands;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn base(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client")
}

async fn post_json(c: &reqwest::Client, url: &str, body: &Value) -> (StatusCode, Value) {
    let resp = c.post(url).json(body).send().await.expect("request");
    let status = resp.status();
    let bytes = resp.bytes().await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn command(c: &reqwest::Client, port: u16, body: Value) -> Value {
    let (status, v) = post_json(c, &format!("{}/v1/command", base(port)), &body).await;
    assert_eq!(status, StatusCode::OK, "{body} -> {v}");
    v
}

#[tokio::test]
async fn keys_are_written_read_and_deleted_with_any_bytes() {
    let (server, port) = Server::magpie_http(&[], None);
    let (c, url) = (client(), base(port));
    let mut resp_client = server.client();
    // Any byte string as a key, percent-encoded; any bytes as a value.
    let key: &[u8] = b"a/b c\xff%";
    let path = format!("{url}/v1/keys/a%2Fb%20c%FF%25");
    let value: Vec<u8> = (0..=255u8).collect();
    let r = c.put(&path).body(value.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let got: Vec<u8> = resp_client.get(key).unwrap();
    assert_eq!(got, value, "the RESP side sees the same key and bytes");
    let r = c.get(&path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert_eq!(r.bytes().await.unwrap().to_vec(), value);
    // Options.
    let r = c.put(format!("{url}/v1/keys/t?ex=100")).body("v").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let ttl: i64 = resp_client.ttl("t").unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");
    let r = c.put(format!("{url}/v1/keys/t?px=5000")).body("v").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let pttl: i64 = resp_client.pttl("t").unwrap();
    assert!((4000..=5000).contains(&pttl), "{pttl}");
    let r = c.put(format!("{url}/v1/keys/t?nx=1")).body("other").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(resp_client.get::<_, String>("t").unwrap(), "v", "nx wrote nothing");
    let r = c.put(format!("{url}/v1/keys/none?xx=1")).body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(!resp_client.exists::<_, bool>("none").unwrap());
    let r = c.put(format!("{url}/v1/keys/t?xx=1")).body("w").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = c.put(format!("{url}/v1/keys/t?ex=abc")).body("w").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c.put(format!("{url}/v1/keys/t?bogus=1")).body("w").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Flags take the values openapi.json lists (1, true or empty for yes; 0, false), no other.
    for (query, status) in [
        ("nx", StatusCode::CONFLICT),
        ("nx=", StatusCode::CONFLICT),
        ("nx=true", StatusCode::CONFLICT),
        ("nx=0", StatusCode::NO_CONTENT),
        ("nx=false", StatusCode::NO_CONTENT),
        ("nx=yes", StatusCode::BAD_REQUEST),
        ("nx=TRUE", StatusCode::BAD_REQUEST),
        ("xx=2", StatusCode::BAD_REQUEST),
    ] {
        let r = c.put(format!("{url}/v1/keys/t?{query}")).body("w").send().await.unwrap();
        assert_eq!(r.status(), status, "?{query}");
    }
    // A missing key: 404 with a JSON error.
    let r = c.get(format!("{url}/v1/keys/missing")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v: Value = r.json_value().await;
    assert_eq!(v["status"], "Error");
    // Wrong type: 409 with Redis's error.
    let _: () = resp_client.hset("h", "f", "v").unwrap();
    let r = c.get(format!("{url}/v1/keys/h")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.json_value().await["message"].as_str().unwrap().starts_with("WRONGTYPE"));
    // Delete.
    let r = c.delete(&path).send().await.unwrap();
    assert_eq!(r.json_value().await, json!({"deleted": 1}));
    let r = c.delete(&path).send().await.unwrap();
    assert_eq!(r.json_value().await, json!({"deleted": 0}));
    // Another database.
    let r = c.put(format!("{url}/v1/keys/d?db=3")).body("three").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let v: String =
        redis::cmd("SELECT").arg(3).query::<()>(&mut resp_client).map(|_| resp_client.get("d").unwrap()).unwrap();
    assert_eq!(v, "three");
    let r = c.get(format!("{url}/v1/keys/d?db=99")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// `resp.json()` without reqwest's json feature.
trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        let bytes = self.bytes().await.expect("body");
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&bytes)))
    }
}

#[tokio::test]
async fn mset_is_atomic_and_mget_del_count() {
    let (server, port) = Server::magpie_http(&[], None);
    let (c, url) = (client(), base(port));
    let mut r = server.client();
    let (s, v) = post_json(&c, &format!("{url}/v1/mset"), &json!({"k1": "v1", "k2": "v2", "n": 3})).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": "OK"})));
    assert_eq!(r.get::<_, String>("n").unwrap(), "3");
    let (s, _) = post_json(&c, &format!("{url}/v1/mset?nx=1"), &json!({"new": "x", "k1": "changed"})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(!r.exists::<_, bool>("new").unwrap(), "MSETNX wrote nothing");
    assert_eq!(r.get::<_, String>("k1").unwrap(), "v1");
    let (s, _) = post_json(&c, &format!("{url}/v1/mset?nx=1"), &json!({"new": "x", "new2": "y"})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = post_json(&c, &format!("{url}/v1/mget"), &json!({"keys": ["k1", "nope", "k2"]})).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"values": ["v1", null, "v2"]})));
    let (s, v) = post_json(&c, &format!("{url}/v1/del"), &json!({"keys": ["k1", "nope", "k2"]})).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"deleted": 2})));
    for bad in
        [json!({}), json!([]), json!({"keys": []}), json!({"keys": [["nested"]]}), json!({"keys": ["a"], "x": 1})]
    {
        let (s, v) = post_json(&c, &format!("{url}/v1/mget"), &bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(v["status"], "Error");
    }
    let (s, _) = post_json(&c, &format!("{url}/v1/mset"), &json!({"k": {"not": "a string"}})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_command_endpoint_speaks_json_and_messagepack() {
    let (server, port) = Server::magpie_http(&[], None);
    let c = client();
    let mut r = server.client();
    // The request shape.
    assert_eq!(
        command(&c, port, json!({"command": "SET", "key": "story", "value": "once"})).await,
        json!({"status": "OK"})
    );
    assert_eq!(
        command(&c, port, json!({"command": "GET", "key": "story"})).await,
        json!({"status": "OK", "value": "once"})
    );
    assert_eq!(
        command(&c, port, json!({"command": "GET", "key": "nope"})).await,
        json!({"status": "OK", "value": null})
    );
    assert_eq!(
        command(&c, port, json!({"command": "ECHO", "message": "hello"})).await,
        json!({"status": "OK", "message": "hello"})
    );
    assert_eq!(
        command(&c, port, json!({"command": "INCR", "key": "n", "offset": 5})).await,
        json!({"status": "OK", "value": 5})
    );
    assert_eq!(command(&c, port, json!({"command": "INCR", "key": "n"})).await, json!({"status": "OK", "value": 6}));
    // Any command as args; RESP3 shapes.
    command(&c, port, json!({"args": ["HSET", "h", "f", "v", "g", "w"]})).await;
    assert_eq!(command(&c, port, json!({"args": ["HGETALL", "h"]})).await["value"], json!({"f": "v", "g": "w"}));
    command(&c, port, json!({"args": ["ZADD", "z", "1.5", "a"]})).await;
    assert_eq!(command(&c, port, json!({"args": ["ZSCORE", "z", "a"]})).await["value"], json!(1.5));
    command(&c, port, json!({"args": ["SADD", "s", "x"]})).await;
    assert_eq!(command(&c, port, json!({"args": ["SMEMBERS", "s"]})).await["value"], json!(["x"]));
    assert_eq!(command(&c, port, json!({"args": ["EXISTS", "s", "h", "nope"]})).await["value"], json!(2));
    // Error replies are 200 with Redis's text.
    let v = command(&c, port, json!({"args": ["GET", "h"]})).await;
    assert_eq!(v["status"], "Error");
    assert!(v["message"].as_str().unwrap().starts_with("WRONGTYPE Operation against a key holding the wrong kind"));
    let v = command(&c, port, json!({"args": ["NOSUCH"]})).await;
    assert!(v["message"].as_str().unwrap().starts_with("ERR unknown command 'NOSUCH'"), "{v}");
    // Bytes that are not UTF-8: base64 form in JSON, both ways.
    let _: () = r.set("bin", &b"\xff\x00a"[..]).unwrap();
    assert_eq!(command(&c, port, json!({"args": ["GET", "bin"]})).await["value"], json!({"$base64": "/wBh"}));
    command(&c, port, json!({"args": ["SET", "bin2", {"$base64": "/wBh"}]})).await;
    assert_eq!(r.get::<_, Vec<u8>>("bin2").unwrap(), b"\xff\x00a");
    // MessagePack in, MessagePack out; JSON out when Accept asks.
    #[derive(serde::Serialize)]
    struct Req<'a> {
        command: &'a str,
        key: &'a str,
        value: &'a str,
    }
    let body = rmp_serde::to_vec_named(&Req { command: "SET", key: "story", value: "twice" }).unwrap();
    let url = format!("{}/v1/command", base(port));
    let resp = c.post(&url).header("content-type", "application/msgpack").body(body).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/msgpack");
    let v: HashMap<String, String> = rmp_serde::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(v, HashMap::from([("status".to_owned(), "OK".to_owned())]));
    let get = rmp_serde::to_vec_named(&HashMap::from([("args", vec!["GET", "bin"])])).unwrap();
    let resp = c.post(&url).header("content-type", "application/msgpack").body(get.clone()).send().await.unwrap();
    let v: rmpv_like::Answer = rmp_serde::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(v.value.into_vec(), b"\xff\x00a", "bytes come back as MessagePack bin");
    let resp = c
        .post(&url)
        .header("content-type", "application/msgpack")
        .header("accept", "application/json")
        .body(get)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json_value().await["value"], json!({"$base64": "/wBh"}));
    // Bad requests are 4xx with a JSON error, and cost nothing else.
    for (body, ct) in [
        (&b"{not json"[..], "application/json"),
        (b"\xc1", "application/msgpack"),
        (b"\x92\x01", "application/msgpack"),
        (b"[\"GET\",\"x\"]", "application/json"),
        (b"{\"args\":[]}", "application/json"),
        (b"{\"command\":\"GET\",\"bogus\":1}", "application/json"),
        (b"{}", "text/plain"),
    ] {
        let resp = c.post(&url).header("content-type", ct).body(body.to_vec()).send().await.unwrap();
        assert!(resp.status().is_client_error(), "{body:?}: {}", resp.status());
        let text = resp.bytes().await.unwrap();
        let v: Value = serde_json::from_slice(&text).unwrap_or_else(|_| {
            rmp_serde::from_slice::<HashMap<String, String>>(&text).map(|m| json!(m)).unwrap_or(Value::Null)
        });
        assert_eq!(v["status"], "Error", "{body:?}");
    }
    assert_eq!(r.get::<_, String>("story").unwrap(), "twice");
}

/// Reading an answer whose value is MessagePack bin.
mod rmpv_like {
    #[derive(serde::Deserialize)]
    pub(crate) struct Answer {
        pub value: serde_bytes_like::Bytes,
    }
    pub(crate) mod serde_bytes_like {
        pub(crate) struct Bytes(Vec<u8>);
        impl Bytes {
            pub(crate) fn into_vec(self) -> Vec<u8> {
                self.0
            }
        }
        impl<'de> serde::Deserialize<'de> for Bytes {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, b: &[u8]) -> Result<Bytes, E> {
                        Ok(Bytes(b.to_vec()))
                    }
                }
                d.deserialize_bytes(V)
            }
        }
    }
}

#[tokio::test]
async fn transactions_are_isolated_and_commit_or_conflict() {
    let (server, port) = Server::magpie_http(&["--txn-timeout", "2"], None);
    let (c, url) = (client(), base(port));
    let mut r = server.client();
    let _: () = r.set("balance", 100).unwrap();
    let (s, v) = post_json(&c, &format!("{url}/v1/txn"), &json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let id = v["id"].as_str().unwrap().to_owned();
    let run = |body: Value| {
        let (c, url) = (c.clone(), format!("{url}/v1/txn/{id}/command"));
        async move { post_json(&c, &url, &body).await }
    };
    assert_eq!(run(json!({"command": "DECR", "key": "balance", "offset": 30})).await.1["value"], 70);
    assert_eq!(run(json!({"args": ["SET", "new", "x"]})).await.1, json!({"status": "OK"}));
    // Reads inside see the transaction's writes; others see nothing yet.
    assert_eq!(run(json!({"args": ["GET", "balance"]})).await.1["value"], "70");
    assert_eq!(r.get::<_, i64>("balance").unwrap(), 100);
    assert!(!r.exists::<_, bool>("new").unwrap());
    let (s, _) = post_json(&c, &format!("{url}/v1/txn/{id}/commit"), &json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r.get::<_, i64>("balance").unwrap(), 70);
    assert_eq!(r.get::<_, String>("new").unwrap(), "x");
    // Ended: 404.
    let (s, _) = post_json(&c, &format!("{url}/v1/txn/{id}/commit"), &json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = post_json(&c, &format!("{url}/v1/txn/{id}/command"), &json!({"args": ["PING"]})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // A conflict: 409, nothing applied.
    let (_, v) = post_json(&c, &format!("{url}/v1/txn"), &json!({})).await;
    let id = v["id"].as_str().unwrap().to_owned();
    post_json(&c, &format!("{url}/v1/txn/{id}/command"), &json!({"args": ["INCRBY", "balance", "5"]})).await;
    post_json(&c, &format!("{url}/v1/txn/{id}/command"), &json!({"args": ["SET", "other", "y"]})).await;
    let _: () = r.set("balance", 0).unwrap();
    let (s, v) = post_json(&c, &format!("{url}/v1/txn/{id}/commit"), &json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["message"].as_str().unwrap().starts_with("CONFLICT"), "{v}");
    assert_eq!(r.get::<_, i64>("balance").unwrap(), 0);
    assert!(!r.exists::<_, bool>("other").unwrap());
    // Rollback.
    let (_, v) = post_json(&c, &format!("{url}/v1/txn"), &json!({})).await;
    let id = v["id"].as_str().unwrap().to_owned();
    post_json(&c, &format!("{url}/v1/txn/{id}/command"), &json!({"args": ["SET", "gone", "1"]})).await;
    let (s, _) = post_json(&c, &format!("{url}/v1/txn/{id}/rollback"), &json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert!(!r.exists::<_, bool>("gone").unwrap());
    // Unknown ids and idle transactions (txn-timeout 2 s): 404.
    let (s, _) = post_json(&c, &format!("{url}/v1/txn/0123456789abcdef/commit"), &json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = post_json(&c, &format!("{url}/v1/txn"), &json!({})).await;
    let id = v["id"].as_str().unwrap().to_owned();
    post_json(&c, &format!("{url}/v1/txn/{id}/command"), &json!({"args": ["SET", "idle", "1"]})).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let (s, _) = post_json(&c, &format!("{url}/v1/txn/{id}/commit"), &json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!r.exists::<_, bool>("idle").unwrap());
    // Nothing left behind: the idle transaction's session is gone from the clients.
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut r).unwrap();
    assert_eq!(list.lines().count(), 1, "{list}");
}

#[tokio::test]
async fn a_transaction_answers_only_to_its_user() {
    let (server, port) = Server::magpie_http(&["--requirepass", "pw"], Some("pw"));
    let mut r = server.client();
    let _: () = redis::cmd("AUTH").arg("pw").query(&mut r).unwrap();
    let _: () = redis::cmd("ACL").arg(&["SETUSER", "bob", "on", ">b", "+@all", "~*"][..]).query(&mut r).unwrap();
    let (c, url) = (client(), base(port));
    let resp = c.post(format!("{url}/v1/txn")).bearer_auth("pw").send().await.unwrap();
    let id = resp.json_value().await["id"].as_str().unwrap().to_owned();
    let as_bob = c.post(format!("{url}/v1/txn/{id}/commit")).basic_auth("bob", Some("b")).send().await.unwrap();
    assert_eq!(as_bob.status(), StatusCode::NOT_FOUND);
    let owner = c.post(format!("{url}/v1/txn/{id}/commit")).bearer_auth("pw").send().await.unwrap();
    assert_eq!(owner.status(), StatusCode::OK);
}

/// A transaction id whose bytes are not UTF-8 names no transaction: 404 with the API's JSON
/// error, as any unknown id (axum's path extractor answered 400 in text/plain, which the
/// OpenAPI document does not describe).
#[tokio::test]
async fn a_transaction_id_that_is_not_utf8_is_unknown() {
    let (_server, port) = Server::magpie_http(&[], None);
    let (c, url) = (client(), base(port));
    for action in ["command", "commit", "rollback"] {
        let resp =
            c.post(format!("{url}/v1/txn/%FF%FE/{action}")).json(&json!({"args": ["PING"]})).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{action}");
        assert_eq!(resp.headers()["content-type"], "application/json", "{action}");
        let v = resp.json_value().await;
        assert_eq!(v["status"], "Error", "{action}: {v}");
        assert!(v["message"].as_str().unwrap().starts_with("no such transaction"), "{action}: {v}");
    }
}

#[tokio::test]
async fn subscribers_get_server_sent_events() {
    let (server, port) = Server::magpie_http(&[], None);
    let c = client();
    let mut r = server.client();
    let mut events = eventsource_stream::Eventsource::eventsource(
        c.get(format!("{}/v1/subscribe/news", base(port))).send().await.unwrap().bytes_stream(),
    );
    let mut pevents = eventsource_stream::Eventsource::eventsource(
        c.get(format!("{}/v1/psubscribe/n*", base(port))).send().await.unwrap().bytes_stream(),
    );
    let e = next_event(&mut events).await;
    assert_eq!((e.event.as_str(), json_of(&e.data)), ("subscribe", json!({"channel": "news", "count": 1})));
    let e = next_event(&mut pevents).await;
    assert_eq!(e.event, "psubscribe");
    let n: i64 = r.publish("news", "hello").unwrap();
    assert_eq!(n, 2, "both HTTP subscribers count as receivers");
    let _: i64 = r.publish("news", &b"\xffbin"[..]).unwrap();
    let e = next_event(&mut events).await;
    assert_eq!((e.event.as_str(), json_of(&e.data)), ("message", json!({"channel": "news", "message": "hello"})));
    let e = next_event(&mut events).await;
    assert_eq!(json_of(&e.data)["message"], json!({"$base64": "/2Jpbg=="}));
    let e = next_event(&mut pevents).await;
    assert_eq!(
        (e.event.as_str(), json_of(&e.data)),
        ("pmessage", json!({"pattern": "n*", "channel": "news", "message": "hello"}))
    );
    // The client goes away: the session unsubscribes.
    drop(events);
    drop(pevents);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, n): (String, i64) = redis::cmd("PUBSUB").arg(&["NUMSUB", "news"][..]).query(&mut r).unwrap();
        let np: i64 = redis::cmd("PUBSUB").arg("NUMPAT").query(&mut r).unwrap();
        if n == 0 && np == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "still subscribed after the client left");
        let _: i64 = r.publish("news", "ping").unwrap(); // a write notices the closed socket
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn next_event<S, E>(s: &mut S) -> eventsource_stream::Event
where
    S: futures_util::Stream<Item = Result<eventsource_stream::Event, E>> + Unpin,
    E: std::fmt::Debug,
{
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("an event within 10 s")
        .expect("stream open")
        .expect("a well-formed event")
}

fn json_of(s: &str) -> Value {
    serde_json::from_str(s).expect("JSON data")
}

#[tokio::test]
async fn metrics_are_prometheus_text_from_the_same_counters() {
    let (server, port) = Server::magpie_http(&[], None);
    let c = client();
    let mut r = server.client();
    let _: () = r.set("a", "1").unwrap();
    let _: () = r.set_ex("b", "2", 100).unwrap();
    let _: Option<String> = r.get("a").unwrap();
    let _: Option<String> = r.get("missing").unwrap();
    c.get(format!("{}/v1/keys/a", base(port))).send().await.unwrap();
    c.get(format!("{}/v1/keys/nope", base(port))).send().await.unwrap();
    let _: () = redis::cmd("SELECT").arg(2).query(&mut r).unwrap();
    let _: () = r.set("c", "3").unwrap();
    let resp = c.get(format!("{}/metrics", base(port))).send().await.unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = resp.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("parses as Prometheus text");
    let find = |name: &str, label: Option<(&str, &str)>| -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no {name} {label:?} in:\n{text}"));
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{name} is not a number"),
        }
    };
    assert_eq!(find("magpie_keys", Some(("db", "0"))), 2.0);
    assert_eq!(find("magpie_keys", Some(("db", "2"))), 1.0);
    assert_eq!(find("magpie_keys_with_expiry", Some(("db", "0"))), 1.0);
    assert!(find("magpie_value_bytes", None) >= 3.0);
    assert_eq!(find("magpie_key_operations_total", Some(("op", "get"))), 4.0);
    assert_eq!(find("magpie_key_operations_total", Some(("op", "set"))), 3.0);
    assert_eq!(find("magpie_key_operations_total", Some(("op", "del"))), 0.0);
    assert_eq!(find("magpie_keyspace_hits_total", None), 2.0);
    assert_eq!(find("magpie_keyspace_misses_total", None), 2.0);
    assert_eq!(find("magpie_command_calls_total", Some(("command", "get"))), 4.0);
    assert_eq!(find("magpie_http_requests_total", Some(("status", "404"))), 1.0);
    assert_eq!(find("magpie_persistence", Some(("field", "loading"))), 0.0);
    assert!(find("magpie_memory_used_bytes", None) > 0.0);
    assert!(find("magpie_connected_clients", None) >= 1.0);
    // The latency histogram of GET: four calls, cumulative buckets ending at +Inf.
    let hist = scrape
        .samples
        .iter()
        .find(|s| s.metric == "magpie_command_duration_seconds" && s.labels.get("command") == Some("get"))
        .expect("GET's histogram");
    let prometheus_parse::Value::Histogram(buckets) = &hist.value else { panic!("not a histogram: {:?}", hist.value) };
    let last = buckets.last().expect("buckets");
    assert!(last.less_than.is_infinite() && last.count == 4.0, "{buckets:?}");
    assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
    assert_eq!(find("magpie_command_duration_seconds_count", Some(("command", "get"))), 4.0);
}

#[tokio::test]
async fn commands_over_http_share_the_log_events_and_statistics() {
    let dir = std::env::temp_dir().join(format!("magpie-http-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let args = ["--appendonly", "yes", "--dir", d, "--notify-keyspace-events", "KEA"];
    let (server, port) = Server::magpie_http(&args, None);
    let c = client();
    let mut r = server.client();
    let mut sub = server.client();
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe("__keyspace@0__:logged").unwrap();
    pubsub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.put(format!("{}/v1/keys/logged", base(port))).body("yes").send().await.unwrap();
    let msg = pubsub.get_message().unwrap();
    assert_eq!(msg.get_payload::<String>().unwrap(), "set");
    let info: String = redis::cmd("INFO").arg("commandstats").query(&mut r).unwrap();
    assert!(info.contains("cmdstat_set:calls=1,"), "{info}");
    drop(pubsub);
    drop(r);
    drop(server);
    // The log has the write made over HTTP.
    let s = Server::magpie_with(&args);
    assert_eq!(s.client().get::<_, String>("logged").unwrap(), "yes");
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn blocking_commands_wait_over_http() {
    let (server, port) = Server::magpie_http(&[], None);
    let c = client();
    let url = format!("{}/v1/command", base(port));
    let waiting = tokio::spawn({
        let (c, url) = (c.clone(), url.clone());
        async move { post_json(&c, &url, &json!({"args": ["BLPOP", "jobs", "10"]})).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut r = server.client();
    let _: i64 = r.rpush("jobs", "job1").unwrap();
    let (s, v) = waiting.await.unwrap();
    assert_eq!((s, v), (StatusCode::OK, json!({"status": "OK", "value": ["jobs", "job1"]})));
    let (_, v) = post_json(&c, &url, &json!({"args": ["BLPOP", "jobs", "0.1"]})).await;
    assert_eq!(v, json!({"status": "OK", "value": null}));
}

fn raw_http(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s.write_all(request).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn browsers_are_not_a_way_in() {
    let args = ["--http-allowed-hosts", "magpie.internal", "--http-cors-origins", "https://app.example"];
    let (server, port) = Server::magpie_http(&args, None);
    let c = client();
    let url = format!("{}/v1/keys/k", base(port));
    // DNS rebinding: a foreign Host is refused.
    let r = c.get(&url).header("host", "evil.example").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST);
    for ok in
        ["localhost", &format!("localhost:{port}"), "127.0.0.1", "[::1]:1", "magpie.internal", "MAGPIE.internal:80"]
    {
        let r = c.get(&url).header("host", ok).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{ok}"); // served: the key is missing
    }
    // Cross-origin requests: refused unless the origin is allowed.
    let r = c.put(&url).header("origin", "https://evil.example").body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c.put(&url).header("sec-fetch-site", "cross-site").body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c.put(&url).header("origin", "null").body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!server.client().exists::<_, bool>("k").unwrap(), "nothing was written");
    let r = c.put(&url).header("origin", "https://app.example").body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example");
    let r = c
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.headers()["access-control-allow-methods"].to_str().unwrap().contains("PUT"));
    // The settings are in CONFIG GET, and CONFIG SET changes the allowed hosts.
    let mut r = server.client();
    let got: Vec<String> = redis::cmd("CONFIG").arg(&["GET", "http-*"][..]).query(&mut r).unwrap();
    assert!(got.windows(2).any(|w| w[0] == "http-port" && w[1] == port.to_string()), "{got:?}");
    assert!(got.windows(2).any(|w| w[0] == "http-allowed-hosts" && w[1] == "magpie.internal"), "{got:?}");
    let _: () = redis::cmd("CONFIG").arg(&["SET", "http-allowed-hosts", "other.internal"][..]).query(&mut r).unwrap();
    let resp = c.get(&url).header("host", "other.internal").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = c.get(&url).header("host", "magpie.internal").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test]
async fn credentials_and_acl_apply_to_http() {
    let (server, port) = Server::magpie_http(&["--requirepass", "s3cret"], Some("s3cret"));
    let mut r = server.client();
    let _: () = redis::cmd("AUTH").arg("s3cret").query(&mut r).unwrap();
    let _: () =
        redis::cmd("ACL").arg(&["SETUSER", "reader", "on", ">rpw", "+@read", "~pub:*"][..]).query(&mut r).unwrap();
    let _: () = r.set("pub:a", "1").unwrap();
    let _: () = r.set("secret", "2").unwrap();
    let c = client();
    let url = base(port);
    // No credentials, wrong ones: 401.
    let resp = c.get(format!("{url}/v1/keys/pub:a")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key("www-authenticate"));
    let resp = c.get(format!("{url}/v1/keys/pub:a")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let log: Vec<redis::Value> = redis::cmd("ACL").arg(&["LOG", "1"][..]).query(&mut r).unwrap();
    assert!(format!("{log:?}").contains("auth"), "a failed login is in the ACL LOG: {log:?}");
    // The probes need none.
    assert_eq!(c.get(format!("{url}/healthz")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(c.get(format!("{url}/readyz")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(c.get(format!("{url}/metrics")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    // Bearer for the default user, Basic for any user; requests run under that user's ACL.
    let resp = c.get(format!("{url}/v1/keys/secret")).bearer_auth("s3cret").send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "2");
    let resp = c.get(format!("{url}/v1/keys/pub:a")).basic_auth("reader", Some("rpw")).send().await.unwrap();
    assert_eq!(resp.text().await.unwrap(), "1");
    let resp = c.get(format!("{url}/v1/keys/secret")).basic_auth("reader", Some("rpw")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.json_value().await["message"].as_str().unwrap().starts_with("NOPERM"));
    let resp = c.put(format!("{url}/v1/keys/pub:b")).basic_auth("reader", Some("rpw")).body("x").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = c
        .post(format!("{url}/v1/command"))
        .basic_auth("reader", Some("rpw"))
        .json(&json!({"args": ["SET", "pub:b", "x"]}))
        .send()
        .await
        .unwrap();
    let v = resp.json_value().await;
    assert_eq!(v["status"], "Error");
    assert!(v["message"].as_str().unwrap().starts_with("NOPERM"), "{v}");
    assert!(!r.exists::<_, bool>("pub:b").unwrap());
    let resp = c.get(format!("{url}/v1/keys/pub:a")).basic_auth("reader", Some("nope")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn protected_mode_applies_to_http() {
    // Listening on 127.0.0.1 and 127.0.0.2; a client from 127.0.0.2 is not local.
    let (server, port) = Server::magpie_http(&["--bind", "127.0.0.1 127.0.0.2"], None);
    let far =
        reqwest::Client::builder().local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let resp = far.get(format!("{}/v1/keys/k", base(port))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.json_value().await["message"].as_str().unwrap().starts_with("DENIED"));
    let resp = client().get(format!("{}/v1/keys/k", base(port))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "a local client is served");
    let _: () = redis::cmd("CONFIG").arg(&["SET", "protected-mode", "no"][..]).query(&mut server.client()).unwrap();
    let resp = far.get(format!("{}/v1/keys/k", base(port))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_requests_cost_nothing_else() {
    let (server, port) = Server::magpie_http(&["--proto-max-bulk-len", "1mb"], None);
    let c = client();
    // A body over proto-max-bulk-len is refused from its declared length, before it is sent.
    let started = Instant::now();
    let answer = raw_http(port, b"PUT /v1/keys/big HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000000\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Chunked, with no declared length: refused once past the limit.
    let big = vec![b'x'; 1_100_000];
    let stream = futures_util::stream::iter(
        big.chunks(100_000).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let resp = c.put(format!("{}/v1/keys/big", base(port))).body(reqwest::Body::wrap_stream(stream)).send().await;
    if let Ok(resp) = resp {
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    assert!(!server.client().exists::<_, bool>("big").unwrap());
    // The server closed that connection mid-request; a client that kept it in its pool could
    // send the next request on it before noticing (`IncompleteMessage`): a fresh client.
    let c = client();
    // Garbage, oversized headers, unknown paths and methods.
    assert!(raw_http(port, b"\x16\x03\x01\x00garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
    // Headers that never end: refused once past the limit on what a request head may take.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ =
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: {}", "a".repeat(200_000)).as_bytes());
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 431");
    assert_eq!(c.get(format!("{}/v2/nothing", base(port))).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let resp = c.patch(format!("{}/v1/keys/k", base(port))).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.json_value().await["status"], "Error");
    // A half-sent request is dropped after the header timeout; others are served meanwhile.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: local").unwrap();
    assert_eq!(c.get(format!("{}/healthz", base(port))).send().await.unwrap().status(), StatusCode::OK);
    slow.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = slow.read_to_end(&mut out);
    assert!(started.elapsed() < Duration::from_secs(20), "the slow request was not dropped");
    // RESP clients never noticed.
    let mut r = server.client();
    assert_eq!(redis::cmd("PING").query::<String>(&mut r).unwrap(), "PONG");
}

#[tokio::test]
async fn https_serves_the_same_api() {
    let dir = std::env::temp_dir().join(format!("magpie-http-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "magpie");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (crt, keyf) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::write(&crt, cert.pem()).unwrap();
    std::fs::write(&keyf, key.serialize_pem()).unwrap();
    let tls_port = common::free_port();
    let (tls, crt_s, key_s) =
        (tls_port.to_string(), crt.to_str().unwrap().to_owned(), keyf.to_str().unwrap().to_owned());
    let args =
        ["--http-tls-port", &tls, "--tls-cert-file", &crt_s, "--tls-key-file", &key_s, "--tls-auth-clients", "no"];
    let (_server, _port) = Server::magpie_http(&args, None);
    let root = reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap();
    let c = reqwest::Client::builder().add_root_certificate(root).build().unwrap();
    let url = format!("https://localhost:{tls_port}");
    let resp = c.put(format!("{url}/v1/keys/secure")).body("yes").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(c.get(format!("{url}/v1/keys/secure")).send().await.unwrap().text().await.unwrap(), "yes");
    // Plain HTTP on the TLS port gets nothing.
    let plain = raw_http(tls_port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(!plain.contains("200 OK"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_openapi_document_names_every_endpoint() {
    let (_server, port) = Server::magpie_http(&[], None);
    let resp = client().get(format!("{}/v1/openapi.json", base(port))).send().await.unwrap();
    let doc = resp.json_value().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/keys/{key}",
        "/v1/mset",
        "/v1/mget",
        "/v1/del",
        "/v1/command",
        "/v1/txn",
        "/v1/txn/{id}/command",
        "/v1/txn/{id}/commit",
        "/v1/txn/{id}/rollback",
        "/v1/subscribe/{channel}",
        "/v1/psubscribe/{pattern}",
        "/metrics",
        "/healthz",
        "/readyz",
        "/v1/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }
}

/// Under `appendfsync always` an HTTP write is answered only once its record is on disk:
/// clients writing at once share fsyncs (the watermark reaches them through the journal's
/// relay), and after a SIGKILL and a restart every acknowledged write is there.
#[tokio::test]
async fn acknowledged_writes_survive_a_kill_under_appendfsync_always() {
    let dir = std::env::temp_dir().join(format!("magpie-http-always-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let args = ["--dir", dir.to_str().unwrap(), "--appendonly", "yes", "--appendfsync", "always"];
    let (server, port) = Server::magpie_http(&args, None);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let c = client();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..40 {
                    let r = c.put(format!("{}/v1/keys/h{t}:{i}", base(port))).body(format!("{t}-{i}")).send().await;
                    if r.is_ok_and(|r| r.status() == StatusCode::NO_CONTENT) {
                        acked.push((format!("h{t}:{i}"), format!("{t}-{i}")));
                    }
                }
                acked
            })
        })
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), 320, "every write is acknowledged while the server runs");
    let fsyncs: u64 = common::info_field(&mut server.client(), "persistence", "aof_fsyncs").parse().unwrap();
    assert!(fsyncs > 0, "the writes were fsynced");
    drop(server); // SIGKILL
    let server = Server::magpie_with(&args);
    let mut con = server.client();
    for (k, v) in &acked {
        let got: Option<String> = con.get(k).unwrap();
        assert_eq!(got.as_deref(), Some(v.as_str()), "{k} was acknowledged");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
