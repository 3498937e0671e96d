//! The client against a real `magpie-server` started on a free port.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use magpie_client::{Client, Config, Error, Frame};

/// The `magpie-server` binary of this target directory, built once if it is missing. Test
/// executables live in `<target>/<profile>/deps/`, the binaries one level up.
fn server_binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile> directory");
        let bin = profile_dir.join("magpie-server");
        if !bin.exists() {
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
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

/// A server process, killed when dropped.
struct Server {
    port: u16,
    child: Child,
}

impl Server {
    fn start() -> Server {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
            let mut child = Command::new(server_binary())
                .args(["--port", &port.to_string(), "--http-port", "0", "--bind", "127.0.0.1", "--save", ""])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start magpie-server");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken: try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Server { port, child };
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("magpie-server did not start");
    }

    fn config(&self) -> Config {
        Config { port: self.port, ..Config::default() }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bulk(s: &[u8]) -> Frame {
    Frame::Bulk(s.to_vec())
}

#[tokio::test]
async fn commands_replies_and_error_replies() {
    let server = Server::start();
    let mut c = Client::connect(&server.config()).await.unwrap();
    assert_eq!(c.cmd(&["SET", "k", "v"]).await.unwrap(), Frame::Simple(b"OK".to_vec()));
    assert_eq!(c.cmd(&["GET", "k"]).await.unwrap(), bulk(b"v"));
    assert_eq!(c.cmd(&["GET", "missing"]).await.unwrap(), Frame::Null);
    // A server error is a reply, not an Err: the connection goes on.
    let reply = c.cmd(&["INCR", "k"]).await.unwrap();
    assert_eq!(reply.as_error(), Some(&b"ERR value is not an integer or out of range"[..]));
    let binary: Vec<u8> = (0..=255).collect();
    c.cmd(&[&b"SET"[..], b"bin", &binary]).await.unwrap();
    assert_eq!(c.cmd(&["GET", "bin"]).await.unwrap(), bulk(&binary));
}

#[tokio::test]
async fn pipelines_return_replies_in_order() {
    let server = Server::start();
    let mut c = Client::connect(&server.config()).await.unwrap();
    let cmds: Vec<Vec<Vec<u8>>> = (0..500)
        .map(|i| vec![b"INCRBY".to_vec(), b"counter".to_vec(), i.to_string().into_bytes()])
        .chain([vec![b"GET".to_vec(), b"counter".to_vec()]])
        .collect();
    let replies = c.pipeline(&cmds).await.unwrap();
    assert_eq!(replies.len(), 501);
    assert_eq!(replies[499], Frame::Integer((0..500).sum()));
    assert_eq!(replies[500], bulk(b"124750"));
}

#[tokio::test]
async fn large_values_arrive_whole() {
    let server = Server::start();
    let mut c = Client::connect(&server.config()).await.unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    c.cmd(&[&b"SET"[..], b"big", &big]).await.unwrap();
    assert_eq!(c.cmd(&["GET", "big"]).await.unwrap(), bulk(&big));
}

#[tokio::test]
async fn hello_3_switches_to_resp3() {
    let server = Server::start();
    let mut c = Client::connect(&server.config()).await.unwrap();
    assert_eq!(c.protocol(), 2);
    let hello = c.hello(3).await.unwrap();
    let Frame::Map(pairs) = &hello else { panic!("HELLO 3 should answer a map: {hello:?}") };
    assert!(pairs.iter().any(|(k, v)| k.as_bytes() == Some(b"proto") && *v == Frame::Integer(3)));
    assert_eq!(c.protocol(), 3);
    assert_eq!(c.cmd(&["GET", "nothing"]).await.unwrap(), Frame::Null);
    // RESP3 answers a map where RESP2 answers a flat array.
    assert!(matches!(c.cmd(&["CONFIG", "GET", "port"]).await.unwrap(), Frame::Map(_)));
    let unknown = c.hello(4).await.unwrap();
    assert!(unknown.is_error());
    assert_eq!(c.protocol(), 3);
}

#[tokio::test]
async fn select_from_the_config_and_later() {
    let server = Server::start();
    let mut c = Client::connect(&Config { db: 3, ..server.config() }).await.unwrap();
    assert_eq!(c.db(), 3);
    c.cmd(&["SET", "in3", "x"]).await.unwrap();
    c.cmd(&["SELECT", "0"]).await.unwrap();
    assert_eq!(c.db(), 0);
    assert_eq!(c.cmd(&["EXISTS", "in3"]).await.unwrap(), Frame::Integer(0));
    c.cmd(&["SELECT", "99"]).await.unwrap();
    assert_eq!(c.db(), 0, "a refused SELECT leaves the database as it was");

    let err = Client::connect(&Config { db: 99, ..server.config() }).await.unwrap_err();
    assert!(matches!(err, Error::Select { db: 99, .. }), "{err}");
    assert!(err.to_string().starts_with("could not select database 99: ERR"), "{err}");
}

#[tokio::test]
async fn connecting_to_a_closed_port_is_a_clear_error() {
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
    let err = Client::connect(&Config { port, ..Config::default() }).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("could not connect to 127.0.0.1:{port} (connection refused) — is magpie-server running?")
    );
}

#[tokio::test]
async fn a_server_that_goes_away_is_an_error_not_a_hang() {
    let server = Server::start();
    let mut c = Client::connect(&server.config()).await.unwrap();
    drop(server);
    let err = c.cmd(&["PING"]).await.unwrap_err();
    assert!(matches!(err, Error::Closed { .. } | Error::Io { .. }), "{err}");
}

#[tokio::test]
async fn garbage_from_the_server_is_a_protocol_error() {
    // A fake server that answers anything with bytes that are not RESP.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n").await;
    });
    let mut c = Client::connect(&Config { port, ..Config::default() }).await.unwrap();
    let err = c.cmd(&["PING"]).await.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
    assert!(err.to_string().starts_with("invalid reply from the server: unexpected reply type \"H\""), "{err}");
}

#[tokio::test]
async fn auth_is_sent_when_a_password_is_configured() {
    // Magpie has no passwords yet, so AUTH is refused: connect must say so.
    let server = Server::start();
    let err = Client::connect(&Config { password: Some("secret".into()), ..server.config() }).await.unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert!(err.to_string().starts_with("authentication failed at 127.0.0.1:"), "{err}");
}
