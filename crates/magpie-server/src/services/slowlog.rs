//! The slow log (SLOWLOG): the most recent commands that took at least
//! `slowlog-log-slower-than` microseconds, newest first, as Redis's `slowlog.c` keeps them.
//!
//! Dispatch times each command (see `exec::observe`) and offers the slow ones here; the cost
//! of a fast command is the clock reads and one comparison.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// At most this many arguments are kept; the last one kept says how many more there were.
const MAX_ARGC: usize = 32;
/// Longer arguments are cut here, followed by how many bytes were left out.
const MAX_STRING: usize = 128;

/// One logged command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: u64,
    /// Unix time (seconds) when it was logged.
    pub time: u64,
    pub micros: u64,
    pub args: Vec<Vec<u8>>,
    /// The client's `ip:port`.
    pub peer: String,
    pub name: Vec<u8>,
}

/// The slow log.
#[derive(Default)]
pub(crate) struct SlowLog {
    entries: Mutex<VecDeque<Entry>>,
    next_id: AtomicU64,
}

impl SlowLog {
    /// Logs a command that took `micros` (the caller checked it against the threshold), then
    /// trims the log to `max_len` entries.
    pub(crate) fn push<'a>(
        &self,
        args: impl ExactSizeIterator<Item = &'a [u8]>,
        micros: u64,
        peer: String,
        name: Vec<u8>,
        max_len: usize,
    ) {
        let argc = args.len();
        let kept = argc.min(MAX_ARGC);
        let mut logged = Vec::with_capacity(kept);
        for (i, arg) in args.take(kept).enumerate() {
            if kept != argc && i == kept - 1 {
                logged.push(format!("... ({} more arguments)", argc - kept + 1).into_bytes());
            } else if arg.len() > MAX_STRING {
                let mut a = arg[..MAX_STRING].to_vec();
                a.extend_from_slice(format!("... ({} more bytes)", arg.len() - MAX_STRING).as_bytes());
                logged.push(a);
            } else {
                logged.push(arg.to_vec());
            }
        }
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time: magpie_store::now_ms() / 1000,
            micros,
            args: logged,
            peer,
            name,
        };
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(max_len);
    }

    /// The newest `count` entries (all with `None`).
    pub(crate) fn newest(&self, count: Option<usize>) -> Vec<Entry> {
        let entries = self.entries.lock();
        entries.iter().take(count.unwrap_or(usize::MAX)).cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// SLOWLOG RESET (ids go on from where they were, as in Redis).
    pub(crate) fn reset(&self) {
        self.entries.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_commands_are_cut_as_redis_cuts_them() {
        let log = SlowLog::default();
        let big = vec![b'x'; 130];
        let args: Vec<Vec<u8>> = (0..40).map(|i| if i == 1 { big.clone() } else { vec![b'a'] }).collect();
        log.push(args.iter().map(Vec::as_slice), 5, "1.2.3.4:5".into(), b"n".to_vec(), 128);
        let e = &log.newest(None)[0];
        assert_eq!(e.args.len(), 32);
        assert_eq!(e.args[1], [&big[..128], b"... (2 more bytes)"].concat());
        assert_eq!(e.args[31], b"... (9 more arguments)");
        assert_eq!((e.id, e.micros, &e.peer[..], &e.name[..]), (0, 5, "1.2.3.4:5", &b"n"[..]));
    }

    #[test]
    fn newest_first_trimmed_and_reset() {
        let log = SlowLog::default();
        for i in 0..5u8 {
            log.push([&[b'0' + i][..]].into_iter(), 1, String::new(), Vec::new(), 3);
        }
        let ids: Vec<u64> = log.newest(None).iter().map(|e| e.id).collect();
        assert_eq!(ids, [4, 3, 2]);
        assert_eq!(log.newest(Some(1)).len(), 1);
        log.reset();
        assert_eq!(log.len(), 0);
        log.push([&b"x"[..]].into_iter(), 1, String::new(), Vec::new(), 3);
        assert_eq!(log.newest(None)[0].id, 5);
    }
}
