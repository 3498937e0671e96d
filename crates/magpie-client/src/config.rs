//! Where to connect and as whom: [`Config`], and its `redis://` URL form.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::Error;

/// What a [`crate::Client`] connects to.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// Database selected after connecting (`SELECT`), when not 0.
    pub db: u32,
    /// User for `AUTH`; only sent with a password.
    pub username: Option<String>,
    /// Password for `AUTH`, sent right after connecting when set.
    pub password: Option<String>,
    /// How long to wait for the TCP connection to be established.
    pub connect_timeout: Duration,
    /// Connect with TLS (`rediss://`, the CLI's `--tls`).
    pub tls: Option<Tls>,
}

/// How a TLS connection is made: whom to trust, what to present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    /// CA certificates (PEM) the server's certificate must chain to. Required unless
    /// `insecure`.
    pub ca_cert: Option<PathBuf>,
    /// A client certificate (PEM) and its key, for servers that ask for one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The name the server's certificate must carry [default: the host].
    pub sni: Option<String>,
    /// Accept any server certificate (no verification at all).
    pub insecure: bool,
}

pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 6379;

impl Default for Config {
    fn default() -> Self {
        Config {
            host: DEFAULT_HOST.to_owned(),
            port: DEFAULT_PORT,
            db: 0,
            username: None,
            password: None,
            connect_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls)
            .finish()
    }
}

impl Config {
    /// Parses `redis://[[user]:password@]host[:port][/db]`, or `rediss://...` for TLS.
    ///
    /// - Everything but the scheme is optional: `redis://` alone means 127.0.0.1:6379, db 0.
    /// - Without a colon, the user info is the password (`redis://secret@host`), as in
    ///   `redis-cli`. User and password may be percent-encoded (`%40` for `@`).
    /// - An IPv6 host is written in brackets: `redis://[::1]:7000`.
    /// - `rediss://` connects with TLS (the CA and any client certificate are set in
    ///   [`Config::tls`]); `unix://` is refused with a clear error: not supported.
    pub fn from_url(url: &str) -> Result<Config, Error> {
        let invalid = |reason: &str| Error::InvalidUrl { url: redact(url), reason: reason.to_owned() };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| invalid("expected redis://..."))?;
        let mut tls = None;
        match scheme.to_ascii_lowercase().as_str() {
            "redis" => {}
            "rediss" => tls = Some(Tls::default()),
            "unix" => return Err(invalid("Unix sockets (unix://) are not supported")),
            _ => return Err(invalid("the scheme must be redis:// or rediss://")),
        }
        if rest.contains(['?', '#']) {
            return Err(invalid("query parameters are not supported; put the database in the path: redis://host/2"));
        }
        let mut config = Config { tls, ..Config::default() };
        // The last '@' ends the user info, so an unencoded '@' in a password still works.
        let (userinfo, hostpath) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        if let Some(userinfo) = userinfo {
            let (user, pass) = match userinfo.split_once(':') {
                Some((user, pass)) => (user, pass),
                None => ("", userinfo),
            };
            let decode = |s: &str, what: &str| {
                percent_decode(s).ok_or_else(|| invalid(&format!("the {what} is not valid percent-encoded UTF-8")))
            };
            if !user.is_empty() {
                config.username = Some(decode(user, "user name")?);
            }
            if !pass.is_empty() {
                config.password = Some(decode(pass, "password")?);
            }
        }
        let (hostport, path) = match hostpath.find('/') {
            Some(i) => (&hostpath[..i], &hostpath[i + 1..]),
            None => (hostpath, ""),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed '[' in the host"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(invalid("expected ':port' after the IPv6 address")),
                },
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if !host.is_empty() {
            config.host = host.to_owned();
        }
        if let Some(port) = port {
            config.port = match port.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(invalid("the port must be a number from 1 to 65535")),
            };
        }
        if !path.is_empty() {
            config.db = path.parse().map_err(|_| invalid("the path must be a database number: redis://host/2"))?;
        }
        Ok(config)
    }

    /// `host:port`, with an IPv6 host in brackets.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl FromStr for Config {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Config::from_url(s)
    }
}

/// The URL with its user info hidden, fit for an error message.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Config {
        Config::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn invalid(url: &str) -> String {
        Config::from_url(url).unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_what_the_url_leaves_out() {
        assert_eq!(parse("redis://"), Config::default());
        assert_eq!(parse("redis://localhost"), Config { host: "localhost".into(), ..Config::default() });
        assert_eq!(parse("REDIS://h:7000/"), Config { host: "h".into(), port: 7000, ..Config::default() });
        assert_eq!(parse("redis://:7000").addr(), "127.0.0.1:7000");
    }

    #[test]
    fn user_password_and_db() {
        let c = parse("redis://alice:s3cret@db.example:6380/2");
        assert_eq!((c.username.as_deref(), c.password.as_deref()), (Some("alice"), Some("s3cret")));
        assert_eq!((c.host.as_str(), c.port, c.db), ("db.example", 6380, 2));
        let c = parse("redis://:pw@h");
        assert_eq!((c.username, c.password.as_deref()), (None, Some("pw")));
        // Without a colon the user info is a password, as redis-cli reads it.
        assert_eq!(parse("redis://pw@h").password.as_deref(), Some("pw"));
        // Percent-encoding, and an unencoded '@' or ':' inside the password.
        assert_eq!(parse("redis://u:p%40ss%2Fw@h").password.as_deref(), Some("p@ss/w"));
        assert_eq!(parse("redis://u:a:b@c@h/1").password.as_deref(), Some("a:b@c"));
    }

    #[test]
    fn ipv6_hosts() {
        let c = parse("redis://[::1]:7000/3");
        assert_eq!((c.host.as_str(), c.port, c.db), ("::1", 7000, 3));
        assert_eq!(c.addr(), "[::1]:7000");
        assert_eq!(parse("redis://[::1]").port, 6379);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        assert!(invalid("localhost:6379").contains("expected redis://"));
        assert!(invalid("http://h").contains("scheme must be redis://"));
        assert_eq!(parse("rediss://u:p@h:6380/1").tls, Some(Tls::default()));
        assert_eq!(parse("redis://h").tls, None);
        assert!(invalid("redis://h:99999").contains("port must be a number"));
        assert!(invalid("redis://h:0").contains("port must be a number"));
        assert!(invalid("redis://h/x").contains("database number"));
        assert!(invalid("redis://h/1?db=2").contains("query parameters"));
        assert!(invalid("redis://[::1").contains("unclosed"));
        assert!(invalid("redis://u:%zz@h").contains("percent-encoded"));
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        let msg = invalid("redis://u:hunter2@h:notaport");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("redis://***@h:notaport"), "{msg}");
        assert!(!format!("{:?}", parse("redis://u:hunter2@h")).contains("hunter2"));
    }
}
