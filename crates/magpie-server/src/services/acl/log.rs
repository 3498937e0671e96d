//! The ACL LOG: recent refusals (commands, keys, channels, failed authentications), newest
//! first, similar ones within a minute folded into one entry with a count, as Redis's
//! `addACLLogEntry`.

use std::collections::VecDeque;

/// Why access was refused. The order is Redis's (`ACL_DENIED_*`): when no selector allows a
/// command, the refusal reported is the greatest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Reason {
    Command,
    Key,
    Auth,
    Channel,
}

impl Reason {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Reason::Command => "command",
            Reason::Key => "key",
            Reason::Auth => "auth",
            Reason::Channel => "channel",
        }
    }
}

/// Where the refused command ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Context {
    Toplevel,
    Multi,
    /// A script's `redis.call`.
    Lua,
}

impl Context {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Context::Toplevel => "toplevel",
            Context::Multi => "multi",
            Context::Lua => "lua",
        }
    }
}

/// One entry of the ACL LOG.
#[derive(Clone, Debug)]
pub(crate) struct LogEntry {
    pub count: u64,
    pub reason: Reason,
    pub context: Context,
    /// The command's full name, the key or channel, or AUTH's name (`auth`, `hello`).
    pub object: Vec<u8>,
    pub username: Vec<u8>,
    /// When it last happened (ms since the epoch).
    pub ctime: u64,
    /// The client's CLIENT LIST line when it last happened.
    pub client_info: Vec<u8>,
}

/// Entries within this many ms of each other are one entry.
const GROUPING_MS: u64 = 60_000;

#[derive(Default)]
pub(crate) struct Log {
    pub entries: VecDeque<LogEntry>,
}

impl Log {
    /// Adds `entry`, or counts it in a similar entry among the newest ten (moved to the front).
    pub(crate) fn add(&mut self, entry: LogEntry, max: usize) {
        let similar = self.entries.iter().take(10).position(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.ctime.abs_diff(entry.ctime) <= GROUPING_MS
                && e.object == entry.object
                && e.username == entry.username
        });
        match similar.and_then(|i| self.entries.remove(i)) {
            Some(mut e) => {
                e.count += 1;
                e.ctime = entry.ctime;
                e.client_info = entry.client_info;
                self.entries.push_front(e);
            }
            None => {
                self.entries.push_front(entry);
                self.entries.truncate(max);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(object: &str, ctime: u64) -> LogEntry {
        LogEntry {
            count: 1,
            reason: Reason::Command,
            context: Context::Toplevel,
            object: object.into(),
            username: b"u".to_vec(),
            ctime,
            client_info: Vec::new(),
        }
    }

    #[test]
    fn similar_entries_fold_and_the_log_is_bounded() {
        let mut log = Log::default();
        log.add(entry("get", 1000), 3);
        log.add(entry("set", 2000), 3);
        log.add(entry("get", 3000), 3);
        assert_eq!(log.entries.len(), 2);
        assert_eq!((log.entries[0].object.as_slice(), log.entries[0].count), (b"get".as_slice(), 2));
        log.add(entry("get", 3000 + GROUPING_MS + 1), 3);
        assert_eq!(log.entries.len(), 3);
        log.add(entry("del", 100_000), 3);
        assert_eq!(log.entries.len(), 3);
        assert_eq!(log.entries[0].object, b"del");
    }
}
