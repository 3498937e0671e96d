//! Security over real sockets: passwords and ACL users (the ACL file, changes that reach
//! connected clients, EXEC's second check, deleted users), protected mode, protected configs,
//! the refusal of HTTP requests on the RESP port, failed AUTH counted, and TLS (the `redis`
//! crate's TLS, redis-cli --tls, bad certificates, a plaintext client on the TLS port, a TLS
//! client on the plain port, half-done handshakes, certificates reloaded by CONFIG SET).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Raw, Server};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("magpie-security-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A raw connection that logs in first.
fn raw_as(server: &Server, user: &str, password: &str) -> Raw {
    let mut raw = server.raw();
    assert_eq!(raw.cmd_str(&format!("AUTH {user} {password}")), "+OK\r\n");
    raw
}

#[test]
fn requirepass_gates_everything_but_auth() {
    let server = Server::magpie_as(&["--requirepass", "s3cret"], Some("s3cret"));
    let mut raw = server.raw();
    assert_eq!(raw.cmd_str("GET k"), "-NOAUTH Authentication required.\r\n");
    assert_eq!(raw.cmd_str("AUTH wrong"), "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    assert_eq!(raw.cmd_str("AUTH s3cret"), "+OK\r\n");
    assert_eq!(raw.cmd_str("SET k v"), "+OK\r\n");
    // Client libraries' URLs with a password work unchanged.
    let url = format!("redis://:s3cret@127.0.0.1:{}/", server.port);
    let mut c = redis::Client::open(url).expect("test setup").get_connection().expect("test setup");
    let v: String = redis::cmd("GET").arg("k").query(&mut c).expect("test setup");
    assert_eq!(v, "v");
    let url = format!("redis://default:s3cret@127.0.0.1:{}/", server.port);
    let mut c = redis::Client::open(url).expect("test setup").get_connection().expect("test setup");
    let v: String = redis::cmd("GET").arg("k").query(&mut c).expect("test setup");
    assert_eq!(v, "v");
    let bad = format!("redis://:nope@127.0.0.1:{}/", server.port);
    assert!(redis::Client::open(bad).expect("test setup").get_connection().is_err());
    // CONFIG SET requirepass changes the default user's password for new logins.
    assert_eq!(raw.cmd_str("CONFIG SET requirepass other"), "+OK\r\n");
    let mut fresh = server.raw();
    assert_eq!(fresh.cmd_str("AUTH s3cret"), "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    assert_eq!(fresh.cmd_str("AUTH other"), "+OK\r\n");
    // redis-cli -a works too (when redis-cli is installed).
    if let Ok(out) = Command::new("redis-cli")
        .args(["-p", &server.port.to_string(), "-a", "other", "--no-auth-warning", "GET", "k"])
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
    }
}

#[test]
fn failed_logins_are_counted_and_logged() {
    let server = Server::magpie_as(&["--requirepass", "pw"], Some("pw"));
    let mut admin = server.raw();
    assert_eq!(admin.cmd_str("AUTH pw"), "+OK\r\n");
    admin.cmd_str("ACL LOG RESET");
    let mut attacker = server.raw();
    for i in 0..200 {
        let reply = attacker.cmd_str(&format!("AUTH guess{i}"));
        assert!(reply.starts_with("-WRONGPASS"), "{reply}");
    }
    let info = admin.cmd_str("INFO stats");
    assert!(info.contains("acl_access_denied_auth:200\r\n"), "{info}");
    // Similar failures within a minute are one entry with a count, as in Redis.
    let log = admin.cmd_str("ACL LOG");
    assert!(log.starts_with("*1\r\n*14\r\n$5\r\ncount\r\n:200\r\n$6\r\nreason\r\n$4\r\nauth\r\n"), "{log}");
}

#[test]
fn acl_file_loads_at_start_saves_and_reloads() {
    let dir = temp_dir("aclfile");
    let file = dir.join("users.acl");
    std::fs::write(&file, "user default on nopass ~* &* +@all\nuser alice on >apass ~app:* +@all\n")
        .expect("test setup");
    let server = Server::magpie_with(&["--aclfile", file.to_str().expect("test setup")]);
    let mut alice = raw_as(&server, "alice", "apass");
    assert_eq!(alice.cmd_str("SET app:1 v"), "+OK\r\n");
    assert_eq!(
        alice.cmd_str("SET other v"),
        "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
    );
    let mut admin = server.raw();
    assert_eq!(admin.cmd_str("ACL SETUSER bob on >bpass +get ~*"), "+OK\r\n");
    assert_eq!(admin.cmd_str("ACL SAVE"), "+OK\r\n");
    let saved = std::fs::read_to_string(&file).expect("test setup");
    assert!(saved.contains("user bob on #") && saved.contains(" ~* resetchannels -@all +get\n"), "{saved}");
    // A bad file changes nothing and says why.
    std::fs::write(&file, "user default on nopass ~* &* +@all\nuser carol on +nosuch\n").expect("test setup");
    let err = admin.cmd_str("ACL LOAD");
    assert!(err.contains("users.acl:2: Error in applying operation '+nosuch'"), "{err}");
    assert_eq!(admin.cmd_str("ACL USERS"), "*3\r\n$5\r\nalice\r\n$3\r\nbob\r\n$7\r\ndefault\r\n");
    // A good one replaces every user; connections of users replaced are closed.
    std::fs::write(&file, "user default on nopass ~* &* +@all\nuser carol on >cpass +@all ~*\n").expect("test setup");
    assert_eq!(admin.cmd_str("ACL LOAD"), "+OK\r\n");
    assert_eq!(admin.cmd_str("ACL USERS"), "*2\r\n$5\r\ncarol\r\n$7\r\ndefault\r\n");
    alice.send(b"PING\r\n");
    assert!(alice.is_closed(), "alice's connection outlived her user");
    drop(server);
    // A file with errors stops the start.
    std::fs::write(&file, "user alice on bogus\n").expect("test setup");
    let status = Command::new(env!("CARGO_BIN_EXE_magpie-server"))
        .args([
            "--port",
            &common::free_port().to_string(),
            "--http-port",
            "0",
            "--save",
            "",
            "--aclfile",
            file.to_str().expect("test setup"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("test setup");
    assert!(!status.success());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn rules_changed_before_exec_are_checked_again() {
    let server = Server::magpie();
    let mut admin = server.raw();
    assert_eq!(admin.cmd_str("ACL SETUSER alice on >a ~app:* +@all"), "+OK\r\n");
    let mut alice = raw_as(&server, "alice", "a");
    assert_eq!(alice.cmd_str("MULTI"), "+OK\r\n");
    assert_eq!(alice.cmd_str("SET app:1 v"), "+QUEUED\r\n");
    assert_eq!(alice.cmd_str("GET app:1"), "+QUEUED\r\n");
    assert_eq!(admin.cmd_str("ACL SETUSER alice resetkeys %R~app:*"), "+OK\r\n");
    assert_eq!(
        alice.cmd_str("EXEC"),
        "*2\r\n-NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. \
         This command is no longer allowed for the following reason: no permission to touch the specified keys\r\n\
         $-1\r\n"
    );
    // Interactive transactions are checked command by command.
    assert_eq!(alice.cmd_str("BEGIN"), "+OK\r\n");
    assert_eq!(
        alice.cmd_str("SET app:2 v"),
        "-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"
    );
    assert_eq!(alice.cmd_str("ROLLBACK"), "+OK\r\n");
    // A user deleted while connected loses its connections.
    assert_eq!(admin.cmd_str("ACL DELUSER alice"), ":1\r\n");
    alice.send(b"PING\r\n");
    assert!(alice.is_closed());
    assert_eq!(admin.cmd_str("PING"), "+PONG\r\n");
    // CLIENT LIST shows who a client is.
    assert_eq!(admin.cmd_str("ACL SETUSER bob on nopass +@all"), "+OK\r\n");
    let mut bob = raw_as(&server, "bob", "x");
    let me = bob.cmd_str("CLIENT INFO");
    assert!(me.contains(" user=bob "), "{me}");
    assert_eq!(bob.cmd_str("RESET"), "+RESET\r\n");
    assert!(bob.cmd_str("CLIENT INFO").contains(" user=default "));
}

/// A connection from 127.0.0.2: on the loopback interface, but not "local" for Redis.
fn connect_from_127_0_0_2(port: u16) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind("127.0.0.2:0".parse::<SocketAddr>().expect("addr"))?;
        socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(stream)
}

fn read_all(mut s: TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn protected_mode_serves_only_local_clients_without_a_password() {
    let server = Server::magpie();
    let mut outside = connect_from_127_0_0_2(server.port).expect("test setup");
    let _ = outside.write_all(b"PING\r\n");
    let refused = read_all(outside);
    assert!(
        refused.starts_with("-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user."),
        "{refused}"
    );
    let mut local = server.raw();
    assert!(local.cmd_str("INFO stats").contains("rejected_connections:1\r\n"));
    // With a password for the default user, outside clients are served (and must AUTH).
    assert_eq!(local.cmd_str("CONFIG SET requirepass pw"), "+OK\r\n");
    let mut outside = connect_from_127_0_0_2(server.port).expect("test setup");
    outside.write_all(b"PING\r\n").expect("test setup");
    let mut buf = [0u8; 64];
    let n = outside.read(&mut buf).expect("test setup");
    assert_eq!(&buf[..n], b"-NOAUTH Authentication required.\r\n");
    // Or with protected mode off.
    assert_eq!(local.cmd(&[b"CONFIG", b"SET", b"requirepass", b""]), b"+OK\r\n");
    assert_eq!(local.cmd_str("CONFIG SET protected-mode no"), "+OK\r\n");
    let mut outside = connect_from_127_0_0_2(server.port).expect("test setup");
    outside.write_all(b"PING\r\n").expect("test setup");
    let n = outside.read(&mut buf).expect("test setup");
    assert_eq!(&buf[..n], b"+PONG\r\n");
}

#[test]
fn file_locations_are_protected_configs() {
    let server = Server::magpie();
    let mut raw = server.raw();
    assert_eq!(
        raw.cmd_str("CONFIG SET dbfilename magpie.toml"),
        "-ERR CONFIG SET failed (possibly related to argument 'dbfilename') - can't set protected config\r\n"
    );
    assert_eq!(raw.cmd_str("CONFIG GET dbfilename"), "*2\r\n$10\r\ndbfilename\r\n$11\r\ndump.magpie\r\n");
    assert_eq!(
        raw.cmd_str("CONFIG GET enable-protected-configs"),
        "*2\r\n$24\r\nenable-protected-configs\r\n$2\r\nno\r\n"
    );
    let local = Server::magpie_with(&["--enable-protected-configs", "local", "--protected-mode", "no"]);
    assert_eq!(local.raw().cmd_str("CONFIG SET dbfilename other.magpie"), "+OK\r\n");
    let mut outside = connect_from_127_0_0_2(local.port).expect("test setup");
    outside.write_all(&Raw::encode(&[b"CONFIG", b"SET", b"dbfilename", b"x.magpie"])).expect("test setup");
    let mut buf = [0u8; 128];
    let n = outside.read(&mut buf).expect("test setup");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("can't set protected config"));
}

#[test]
fn http_requests_on_the_resp_port_close_the_connection() {
    let server = Server::magpie();
    for request in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nSET k v\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\nSET k v\r\n",
        b"*1\r\n$5\r\nhost:\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).expect("test setup");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("test setup");
        s.write_all(request).expect("test setup");
        let reply = read_all(s);
        assert!(!reply.contains("+OK"), "{reply}");
    }
    let mut raw = server.raw();
    assert_eq!(raw.cmd_str("EXISTS k"), ":0\r\n", "the SET after the HTTP request ran");
}

// ---------------------------------------------------------------------------------------------
// TLS

struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate; and
    /// another CA with its own client certificate (not trusted by the server).
    fn new(name: &str) -> Pki {
        let dir = temp_dir(name);
        for (ca, prefix) in [("Magpie test CA", ""), ("Other CA", "other-")] {
            let (issuer, pem) = make_ca(ca);
            std::fs::write(dir.join(format!("{prefix}ca.crt")), pem).expect("test setup");
            for (leaf, server_auth) in [("server", true), ("client", false)] {
                let (cert, key) = make_leaf(&issuer, server_auth);
                std::fs::write(dir.join(format!("{prefix}{leaf}.crt")), cert).expect("test setup");
                std::fs::write(dir.join(format!("{prefix}{leaf}.key")), key).expect("test setup");
            }
        }
        Pki { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).expect("test setup")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn make_ca(name: &str) -> (rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, String) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("test setup");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let issuer = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().expect("test setup"))
        .expect("test setup");
    let pem = issuer.pem();
    (issuer, pem)
}

fn make_leaf(issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, server: bool) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("test setup");
    params.distinguished_name.push(rcgen::DnType::CommonName, if server { "magpie" } else { "client" });
    params.extended_key_usages = vec![if server {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = rcgen::KeyPair::generate().expect("test setup");
    let cert = params.signed_by(&key, issuer).expect("test setup");
    (cert.pem(), key.serialize_pem())
}

/// A server with TLS on its own port (returned too), with `extra` flags.
fn tls_server(pki: &Pki, extra: &[&str]) -> (Server, u16) {
    let tls_port = common::free_port();
    let port = tls_port.to_string();
    let (cert, key, ca) = (pki.path("server.crt"), pki.path("server.key"), pki.path("ca.crt"));
    let mut args =
        vec!["--tls-port", &port, "--tls-cert-file", &cert, "--tls-key-file", &key, "--tls-ca-cert-file", &ca];
    args.extend_from_slice(extra);
    (Server::magpie_with(&args), tls_port)
}

/// A TLS connection with rustls: trusting `ca`, presenting `client` (cert, key) if given.
/// Returns the reply to PING, or the error.
fn tls_ping(port: u16, ca: &[u8], client: Option<(&[u8], &[u8])>) -> std::io::Result<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca) {
        roots.add(c.expect("test setup")).expect("test setup");
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("test setup")
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert).map(|c| c.expect("pem")).collect(),
                PrivateKeyDer::from_pem_slice(key).expect("test setup"),
            )
            .expect("test setup"),
        None => builder.with_no_client_auth(),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from("localhost").expect("test setup");
        let mut tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp)).await??;
        tls.write_all(b"PING\r\n").await?;
        let mut buf = vec![0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await??;
        buf.truncate(n);
        Ok(buf)
    })
}

fn redis_tls_client(pki: &Pki, port: u16, prefix: &str) -> redis::RedisResult<redis::Connection> {
    let certs = redis::TlsCertificates {
        client_tls: Some(redis::ClientTlsConfig {
            client_cert: pki.read(&format!("{prefix}client.crt")),
            client_key: pki.read(&format!("{prefix}client.key")),
        }),
        root_cert: Some(pki.read("ca.crt")),
    };
    redis::Client::build_with_tls(format!("rediss://localhost:{port}/"), certs)?.get_connection()
}

#[test]
fn tls_serves_clients_with_certificates() {
    let pki = Pki::new("tls");
    let (server, tls_port) = tls_server(&pki, &[]);
    let mut c = redis_tls_client(&pki, tls_port, "").expect("TLS connection");
    let _: () = redis::cmd("SET").arg("k").arg("over tls").query(&mut c).expect("test setup");
    let v: String = redis::cmd("GET").arg("k").query(&mut server.client()).expect("test setup");
    assert_eq!(v, "over tls");
    // tls-auth-clients yes: a certificate from another CA, or none, is refused.
    assert!(
        redis_tls_client(&pki, tls_port, "other-")
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
    );
    assert!(tls_ping(tls_port, &pki.read("ca.crt"), None).is_err());
    let client = (pki.read("client.crt"), pki.read("client.key"));
    assert_eq!(
        tls_ping(tls_port, &pki.read("ca.crt"), Some((&client.0, &client.1))).expect("test setup"),
        b"+PONG\r\n"
    );
    // optional: no certificate is fine, a bad one is not.
    let mut raw = server.raw();
    assert_eq!(raw.cmd_str("CONFIG SET tls-auth-clients optional"), "+OK\r\n");
    assert_eq!(tls_ping(tls_port, &pki.read("ca.crt"), None).expect("test setup"), b"+PONG\r\n");
    let other = (pki.read("other-client.crt"), pki.read("other-client.key"));
    assert!(tls_ping(tls_port, &pki.read("ca.crt"), Some((&other.0, &other.1))).is_err());
    // redis-cli --tls, when installed.
    if let Ok(out) = Command::new("redis-cli")
        .args(["--tls", "--cacert", &pki.path("ca.crt"), "--cert", &pki.path("client.crt")])
        .args(["--key", &pki.path("client.key"), "-p", &tls_port.to_string(), "GET", "k"])
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "over tls", "{out:?}");
    }
}

#[test]
fn tls_failures_fail_their_connection_only() {
    let pki = Pki::new("tls-failures");
    let (server, tls_port) = tls_server(&pki, &["--tls-auth-clients", "no"]);
    let ca = pki.read("ca.crt");
    // A half-done handshake (a client that connects and says nothing) blocks nobody.
    let silent = TcpStream::connect(("127.0.0.1", tls_port)).expect("test setup");
    assert_eq!(tls_ping(tls_port, &ca, None).expect("test setup"), b"+PONG\r\n");
    // A plaintext client on the TLS port: closed, without a RESP reply.
    let mut plain = TcpStream::connect(("127.0.0.1", tls_port)).expect("test setup");
    plain.set_read_timeout(Some(Duration::from_secs(5))).expect("test setup");
    plain.write_all(b"PING\r\n").expect("test setup");
    let reply = read_all(plain);
    assert!(!reply.contains("PONG"), "{reply}");
    // A TLS client on the plain port: closed at once.
    assert!(tls_ping(server.port, &ca, None).is_err());
    // Both ports still serve.
    assert_eq!(tls_ping(tls_port, &ca, None).expect("test setup"), b"+PONG\r\n");
    assert_eq!(server.raw().cmd_str("PING"), "+PONG\r\n");
    drop(silent);
}

#[test]
fn tls_certificates_reload_with_config_set() {
    let pki = Pki::new("tls-reload");
    let (server, tls_port) = tls_server(&pki, &["--tls-auth-clients", "no"]);
    let mut raw = server.raw();
    // A file that does not load is refused and the old certificate stays.
    let err = raw.cmd_str("CONFIG SET tls-cert-file /nonexistent.crt");
    assert_eq!(
        err,
        "-ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS \
         configuration. Check server logs.\r\n"
    );
    assert_eq!(
        raw.cmd_str("CONFIG GET tls-cert-file"),
        format!("*2\r\n$13\r\ntls-cert-file\r\n${}\r\n{}\r\n", pki.path("server.crt").len(), pki.path("server.crt"))
    );
    assert_eq!(tls_ping(tls_port, &pki.read("ca.crt"), None).expect("test setup"), b"+PONG\r\n");
    // The other CA's certificate: clients trusting only the first CA now fail.
    let (cert, key) = (pki.path("other-server.crt"), pki.path("other-server.key"));
    assert_eq!(raw.cmd_str(&format!("CONFIG SET tls-cert-file {cert} tls-key-file {key}")), "+OK\r\n");
    assert!(tls_ping(tls_port, &pki.read("ca.crt"), None).is_err());
    assert_eq!(tls_ping(tls_port, &pki.read("other-ca.crt"), None).expect("test setup"), b"+PONG\r\n");
    // tls-protocols: TLSv1.2 only is still spoken by a default client.
    assert_eq!(raw.cmd_str("CONFIG SET tls-protocols TLSv1.2"), "+OK\r\n");
    assert_eq!(tls_ping(tls_port, &pki.read("other-ca.crt"), None).expect("test setup"), b"+PONG\r\n");
    assert!(raw.cmd_str("CONFIG SET tls-protocols TLSv1").starts_with("-ERR"));
}
