//! The client's error: each reads as one line that says what failed and what to try.

use std::fmt;
use std::io;
use std::time::Duration;

use magpie_protocol::FrameError;

/// Something went wrong below the level of commands: the URL, the connection, the protocol.
/// (A server's error reply to a command is not an `Error`: it comes back as
/// [`magpie_protocol::Frame::Error`].)
#[derive(Debug)]
pub enum Error {
    /// The `redis://` URL could not be parsed (its password is hidden in `url`).
    InvalidUrl { url: String, reason: String },
    /// The TCP connection could not be established.
    Connect { addr: String, source: io::Error },
    /// The TCP connection was not established in time.
    ConnectTimeout { addr: String, after: Duration },
    /// TLS could not be set up (certificates) or its handshake failed.
    Tls { addr: String, message: String },
    /// The server refused the password sent with `AUTH`.
    Auth { addr: String, message: String },
    /// The server refused to `SELECT` the configured database.
    Select { db: u32, message: String },
    /// Reading or writing failed on an established connection.
    Io { addr: String, source: io::Error },
    /// The server closed the connection.
    Closed { addr: String, mid_reply: bool },
    /// The server sent something that is not RESP.
    Protocol { addr: String, source: FrameError },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidUrl { url, reason } => {
                write!(f, "invalid URL {url:?}: {reason} (expected redis[s]://[[user]:password@]host[:port][/db])")
            }
            Error::Connect { addr, source } => {
                let hint = match source.kind() {
                    io::ErrorKind::ConnectionRefused => " — is magpie-server running?",
                    io::ErrorKind::AddrNotAvailable
                    | io::ErrorKind::NetworkUnreachable
                    | io::ErrorKind::HostUnreachable => " — check the host and the network",
                    _ if source.to_string().contains("lookup") => " — check the host name",
                    _ => "",
                };
                write!(f, "could not connect to {addr} ({}){hint}", describe(source))
            }
            Error::ConnectTimeout { addr, after } => {
                write!(
                    f,
                    "could not connect to {addr} (no answer within {} s) — is the host reachable and the port right?",
                    after.as_secs_f64()
                )
            }
            Error::Tls { addr, message } => write!(f, "TLS with {addr} failed: {message}"),
            Error::Auth { addr, message } => {
                write!(f, "authentication failed at {addr}: {message} — check the user name and password")
            }
            Error::Select { db, message } => write!(f, "could not select database {db}: {message}"),
            Error::Io { addr, source } => write!(f, "connection to {addr} failed ({})", describe(source)),
            Error::Closed { addr, mid_reply: false } => write!(f, "the server at {addr} closed the connection"),
            Error::Closed { addr, mid_reply: true } => {
                write!(f, "the server at {addr} closed the connection in the middle of a reply")
            }
            Error::Protocol { addr, source } => write!(f, "{source} (from {addr})"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Connect { source, .. } | Error::Io { source, .. } => Some(source),
            Error::Protocol { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// An I/O error in a few lowercase words: "connection refused", "broken pipe".
fn describe(e: &io::Error) -> String {
    // The kind's own words when it has any ("connection refused"); else the message, which
    // for lookups and the like says more, less its "(os error N)".
    let kind = e.kind().to_string();
    if e.get_ref().is_none() && !matches!(kind.as_str(), "other error" | "uncategorized error") {
        return kind;
    }
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_with_a_hint() {
        let e = Error::Connect { addr: "127.0.0.1:6379".into(), source: io::ErrorKind::ConnectionRefused.into() };
        assert_eq!(
            e.to_string(),
            "could not connect to 127.0.0.1:6379 (connection refused) — is magpie-server running?"
        );
        let e = Error::Io { addr: "h:1".into(), source: io::Error::from_raw_os_error(32) };
        assert_eq!(e.to_string(), "connection to h:1 failed (broken pipe)");
        let e = Error::Connect {
            addr: "nohost:1".into(),
            source: io::Error::other("failed to lookup address information: Name or service not known"),
        };
        assert_eq!(
            e.to_string(),
            "could not connect to nohost:1 (failed to lookup address information: Name or service not known) — check the host name"
        );
        let e = Error::ConnectTimeout { addr: "h:1".into(), after: Duration::from_millis(1500) };
        assert!(e.to_string().contains("no answer within 1.5 s"));
    }
}
