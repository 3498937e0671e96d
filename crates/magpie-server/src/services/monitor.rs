//! MONITOR: the clients that watch every command the server runs. Each gets a line per
//! command, in Redis's format (`replicationFeedMonitors`), through its mailbox (the output
//! buffer pub/sub messages use).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::RwLock;

use super::pubsub::{Limits, Mailbox};

/// The monitoring clients.
pub(crate) struct Monitors {
    count: AtomicUsize,
    list: RwLock<Vec<(u64, Arc<Mailbox>)>>,
    /// Monitors are normal clients to `client-output-buffer-limit` (Redis's default for
    /// them: no limit).
    limits: Limits,
}

impl Default for Monitors {
    fn default() -> Monitors {
        Monitors { count: AtomicUsize::new(0), list: RwLock::new(Vec::new()), limits: Limits::new(0, 0, 0) }
    }
}

/// Who ran a command, as the line shows it.
pub(crate) enum Source {
    Client(SocketAddr),
    /// A script's `redis.call`.
    Lua,
}

impl Monitors {
    /// Whether anyone monitors: one relaxed load, on every command.
    #[inline]
    pub(crate) fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) != 0
    }

    /// Client `id` monitors from now on, its lines queued in `mailbox`.
    pub(crate) fn add(&self, id: u64, mailbox: Arc<Mailbox>) {
        let mut list = self.list.write();
        if !list.iter().any(|(i, _)| *i == id) {
            list.push((id, mailbox));
            self.count.store(list.len(), Ordering::Relaxed);
        }
    }

    /// Client `id` stops monitoring (RESET, or it disconnected).
    pub(crate) fn remove(&self, id: u64) {
        let mut list = self.list.write();
        list.retain(|(i, _)| *i != id);
        self.count.store(list.len(), Ordering::Relaxed);
    }

    /// Sends every monitor the line of a command run in database `db`.
    pub(crate) fn feed<'a>(&self, db: usize, source: &Source, args: impl Iterator<Item = &'a [u8]>) {
        let line = format_line(now_us(), db, source, args);
        for (_, mailbox) in self.list.read().iter() {
            mailbox.deliver_raw(&line, &self.limits);
        }
    }
}

/// Microseconds since the Unix epoch.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// `+<secs>.<usecs> [<db> <addr>] "arg" "arg"...\r\n`, each argument quoted as Redis's
/// `sdscatrepr` quotes it.
pub(crate) fn format_line<'a>(
    now_us: u64,
    db: usize,
    source: &Source,
    args: impl Iterator<Item = &'a [u8]>,
) -> Vec<u8> {
    let mut line = format!("+{}.{:06} ", now_us / 1_000_000, now_us % 1_000_000).into_bytes();
    match source {
        Source::Client(addr) => line.extend_from_slice(format!("[{db} {addr}]").as_bytes()),
        Source::Lua => line.extend_from_slice(format!("[{db} lua]").as_bytes()),
    }
    for arg in args {
        line.push(b' ');
        repr(&mut line, arg);
    }
    line.extend_from_slice(b"\r\n");
    line
}

/// Redis's `sdscatrepr`: a double-quoted string with C escapes, other unprintable bytes as
/// `\xNN`.
pub(crate) fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', c]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_quote_as_redis() {
        let addr: SocketAddr = "127.0.0.1:60866".parse().expect("addr");
        let args: [&[u8]; 3] = [b"set", b"k\"\\", b"\x00\n\xff a"];
        let line = format_line(1_339_518_083_107_412, 0, &Source::Client(addr), args.into_iter());
        assert_eq!(
            String::from_utf8_lossy(&line),
            "+1339518083.107412 [0 127.0.0.1:60866] \"set\" \"k\\\"\\\\\" \"\\x00\\n\\xff a\"\r\n"
        );
        let line = format_line(5, 3, &Source::Lua, [&b"get"[..]].into_iter());
        assert_eq!(line, b"+0.000005 [3 lua] \"get\"\r\n");
    }
}
