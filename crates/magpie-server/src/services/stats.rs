//! Server statistics (INFO's counters), kept per worker thread.
//!
//! Every thread that runs commands owns one [`Counters`] and is its only writer, so a count is
//! a plain load and store on a cache line no other core writes: no locked instruction and no
//! line bouncing between cores on the hot path. A reader (INFO) sums the threads' counters.
//! CONFIG RESETSTAT does not write them either: it records the current sums as a baseline that
//! later readings subtract, so a reset cannot race with a thread counting.
//!
//! Keyspace figures (keys, value bytes, expired keys) live in the store's shards instead,
//! under the locks that change them; see [`magpie_store::DbStats`].

use quanta::Instant;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;

/// Which key-operation counter (INFO's `key_ops_*`) a command adds its keys to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyOp {
    None,
    /// Reads of keys (read-only commands).
    Get,
    /// Writes of keys (write commands, except deletes).
    Set,
    /// Deletes (DEL, UNLINK, GETDEL).
    Del,
}

/// Commands and subcommands counted per id: the command table has fewer (a test of the table
/// checks), and each thread keeps this many counters.
pub(crate) const MAX_COMMANDS: usize = 512;

/// At most this many distinct error codes are counted (as Redis's errorstats).
const MAX_ERROR_CODES: usize = 128;

/// Buckets of the latency histograms: calls that took at most 1, 2, 4, ... 2^20 µs (about a
/// second), and the rest.
pub(crate) const LATENCY_BUCKETS: usize = 22;

/// The bucket of a call that took `nanos`: the smallest power of two of microseconds that
/// holds it (the last bucket holds everything over 2^20 µs).
#[inline]
fn latency_bucket(nanos: u64) -> usize {
    let us = nanos.div_ceil(1000);
    if us <= 1 {
        return 0;
    }
    ((u64::BITS - (us - 1).leading_zeros()) as usize).min(LATENCY_BUCKETS - 1)
}

/// One command's counters.
#[derive(Default)]
struct CmdCounters {
    calls: AtomicU64,
    nanos: AtomicU64,
    /// Errors before the command ran (wrong arity).
    rejected: AtomicU64,
    /// Calls that ran and replied with an error.
    failed: AtomicU64,
    /// Calls by time taken (see [`latency_bucket`]).
    latency: [AtomicU64; LATENCY_BUCKETS],
}

/// One thread's counters. Only the owning thread writes them.
pub(crate) struct Counters {
    commands: AtomicU64,
    error_replies: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    key_ops: [AtomicU64; 3],
    net_in: AtomicU64,
    net_out: AtomicU64,
    reads: AtomicU64,
    writes: AtomicU64,
    cmds: Box<[CmdCounters]>,
    /// Error replies by code (the error's first word), only touched when there is an error.
    errors: Mutex<Vec<(Box<[u8]>, u64)>>,
}

/// Adds to a counter that only this thread writes: a plain load and store, no locked
/// read-modify-write.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

impl Counters {
    fn new() -> Counters {
        Counters {
            commands: AtomicU64::new(0),
            error_replies: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            key_ops: Default::default(),
            net_in: AtomicU64::new(0),
            net_out: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            cmds: (0..MAX_COMMANDS).map(|_| CmdCounters::default()).collect(),
            errors: Mutex::new(Vec::new()),
        }
    }

    /// A command ran: whether it replied with an error, and the keys it named. Its time is
    /// counted by a [`Timer`].
    #[inline]
    pub(crate) fn call(&self, id: usize, failed: bool, op: KeyOp, keys: usize) {
        bump(&self.commands, 1);
        if let Some(c) = self.cmds.get(id) {
            bump(&c.calls, 1);
            if failed {
                bump(&c.failed, 1);
            }
        }
        let slot = match op {
            KeyOp::None => return,
            KeyOp::Get => 0,
            KeyOp::Set => 1,
            KeyOp::Del => 2,
        };
        bump(&self.key_ops[slot], keys as u64);
    }

    /// Charges `elapsed` to command `id`, which ran `calls` times in it: each call goes in the
    /// latency bucket of their average.
    fn add_time(&self, id: usize, elapsed: Duration, calls: u64) {
        if let Some(c) = self.cmds.get(id) {
            let nanos =
                elapsed.as_secs().saturating_mul(1_000_000_000).saturating_add(u64::from(elapsed.subsec_nanos()));
            bump(&c.nanos, nanos);
            if let Some(each) = nanos.checked_div(calls) {
                bump(&c.latency[latency_bucket(each)], calls);
            }
        }
    }

    /// A command was refused before it ran (`id` when it was a known command).
    pub(crate) fn rejected(&self, id: Option<usize>) {
        if let Some(c) = id.and_then(|id| self.cmds.get(id)) {
            bump(&c.rejected, 1);
        }
    }

    /// An error reply was sent; `message` starts with its code (`ERR`, `WRONGTYPE`, ...).
    pub(crate) fn error(&self, message: &[u8]) {
        bump(&self.error_replies, 1);
        let code = message.split(|&c| c == b' ').next().unwrap_or(message);
        let code = &code[..code.len().min(64)];
        let mut errors = self.errors.lock();
        if let Some(e) = errors.iter_mut().find(|(c, _)| &**c == code) {
            e.1 += 1;
        } else if errors.len() < MAX_ERROR_CODES {
            errors.push((code.into(), 1));
        }
    }

    /// A read-only lookup of a key found it (`true`) or not (Redis's keyspace hits/misses).
    #[inline]
    pub(crate) fn lookup(&self, hit: bool) {
        bump(if hit { &self.hits } else { &self.misses }, 1);
    }

    /// Bytes read from a client.
    pub(crate) fn read(&self, bytes: usize) {
        bump(&self.reads, 1);
        bump(&self.net_in, bytes as u64);
    }

    /// Bytes written to a client.
    pub(crate) fn wrote(&self, bytes: usize) {
        bump(&self.writes, 1);
        bump(&self.net_out, bytes as u64);
    }
}

/// Times the commands of a batch by runs: the clock is read when the command changes and when
/// the batch ends, not around every command. INFO reports only sums per command (`usec`, and
/// `usec_per_call` as usec / calls), so timing a run of 32 GETs at once gives the same figures
/// as timing each, for one clock read instead of 32. The latency histograms (/metrics) count
/// each call of a run at the run's average: exact for a run of one (a client that does not
/// pipeline, an HTTP request), an average for a pipelined run of the same command. The clock is
/// quanta's, as the slow log's (`exec::observe`): a script that alternates two commands changes
/// run at every call, and std's clock (the vDSO's `clock_gettime` and `Duration` arithmetic)
/// was about 1.3k instructions of a 20-call script's 74k under callgrind (which cannot show
/// quanta's gain: under valgrind quanta falls back to `clock_gettime` too).
///
/// The slow log reads the clock when each command ends (`exec::observe`); the run that
/// changes next takes that reading as its boundary rather than reading the clock again
/// ([`Timer::ended`]). In a script that alternates INCR and EXPIRE that was two readings of
/// seven a run.
pub(crate) struct Timer {
    /// The command of the current run (`usize::MAX`: none yet).
    id: usize,
    /// Calls in the current run.
    calls: u64,
    start: Instant,
    /// When the last command ended, if the slow log read the clock then and nothing has
    /// used the reading since.
    ended: Option<Instant>,
}

impl Timer {
    /// Starts timing a batch.
    pub(crate) fn start() -> Timer {
        Timer { id: usize::MAX, calls: 0, start: Instant::now(), ended: None }
    }

    /// When the batch started (one reading of the clock for this timer and the slow log's
    /// mark).
    #[inline]
    pub(crate) fn started(&self) -> Instant {
        self.start
    }

    /// The command that just ran ended at `at` (a reading of the clock made for the slow
    /// log): the next boundary between runs is there.
    #[inline]
    pub(crate) fn ended(&mut self, at: Instant) {
        self.ended = Some(at);
    }

    /// Command `id` is about to run.
    #[inline]
    pub(crate) fn enter(&mut self, id: usize, counters: &Counters) {
        if id != self.id {
            if self.id != usize::MAX {
                self.stop(counters);
            }
            self.id = id;
        }
        self.calls += 1;
    }

    /// Charges the time since the run began to its command. Call it when the batch ends and
    /// before any `.await`, with this thread's counters.
    pub(crate) fn stop(&mut self, counters: &Counters) {
        let now = self.ended.take().unwrap_or_else(Instant::now);
        if self.id != usize::MAX {
            counters.add_time(self.id, now.saturating_duration_since(self.start), self.calls);
        }
        self.calls = 0;
        self.start = now;
    }
}

/// Every thread's counters, for readers. A thread's entry lives as long as the process (the
/// worker threads do too).
static THREADS: Mutex<Vec<&'static Counters>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: Cell<Option<&'static Counters>> = const { Cell::new(None) };
}

/// This thread's counters. Fetch them again after an `.await`: the task may have moved to
/// another thread, and two threads must never write one `Counters`.
#[inline]
pub(crate) fn local() -> &'static Counters {
    LOCAL.with(|l| match l.get() {
        Some(c) => c,
        None => {
            let c: &'static Counters = Box::leak(Box::new(Counters::new()));
            THREADS.lock().push(c);
            l.set(Some(c));
            c
        }
    })
}

/// One command's totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CmdTotals {
    pub calls: u64,
    pub nanos: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Calls by time taken: at most 2^i µs for bucket i, the last for anything longer.
    pub latency: [u64; LATENCY_BUCKETS],
}

/// The counters summed over all threads (and, after [`Totals::since`], less a baseline).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub commands: u64,
    pub error_replies: u64,
    pub hits: u64,
    pub misses: u64,
    /// Keys read, written and deleted by commands.
    pub key_ops: [u64; 3],
    pub net_in: u64,
    pub net_out: u64,
    pub reads: u64,
    pub writes: u64,
    /// By command id (the command table numbers commands and subcommands).
    pub cmds: Vec<CmdTotals>,
    /// Error replies by code, in first-seen order.
    pub errors: Vec<(Vec<u8>, u64)>,
}

impl Totals {
    /// Sums every thread's counters now.
    pub(crate) fn read() -> Totals {
        let mut t = Totals { cmds: vec![CmdTotals::default(); MAX_COMMANDS], ..Totals::default() };
        for c in THREADS.lock().iter() {
            t.commands += c.commands.load(Relaxed);
            t.error_replies += c.error_replies.load(Relaxed);
            t.hits += c.hits.load(Relaxed);
            t.misses += c.misses.load(Relaxed);
            for (sum, k) in t.key_ops.iter_mut().zip(&c.key_ops) {
                *sum += k.load(Relaxed);
            }
            t.net_in += c.net_in.load(Relaxed);
            t.net_out += c.net_out.load(Relaxed);
            t.reads += c.reads.load(Relaxed);
            t.writes += c.writes.load(Relaxed);
            for (sum, cmd) in t.cmds.iter_mut().zip(c.cmds.iter()) {
                sum.calls += cmd.calls.load(Relaxed);
                sum.nanos += cmd.nanos.load(Relaxed);
                sum.rejected += cmd.rejected.load(Relaxed);
                sum.failed += cmd.failed.load(Relaxed);
                for (b, l) in sum.latency.iter_mut().zip(&cmd.latency) {
                    *b += l.load(Relaxed);
                }
            }
            for (code, n) in c.errors.lock().iter() {
                match t.errors.iter_mut().find(|(c, _)| c[..] == code[..]) {
                    Some(e) => e.1 += n,
                    None => t.errors.push((code.to_vec(), *n)),
                }
            }
        }
        t
    }

    /// These totals less an earlier reading (what has happened since `base` was read).
    pub(crate) fn since(mut self, base: &Totals) -> Totals {
        let sub = |a: &mut u64, b: u64| *a = a.saturating_sub(b);
        sub(&mut self.commands, base.commands);
        sub(&mut self.error_replies, base.error_replies);
        sub(&mut self.hits, base.hits);
        sub(&mut self.misses, base.misses);
        for (a, b) in self.key_ops.iter_mut().zip(base.key_ops) {
            sub(a, b);
        }
        sub(&mut self.net_in, base.net_in);
        sub(&mut self.net_out, base.net_out);
        sub(&mut self.reads, base.reads);
        sub(&mut self.writes, base.writes);
        for (a, b) in self.cmds.iter_mut().zip(&base.cmds) {
            sub(&mut a.calls, b.calls);
            sub(&mut a.nanos, b.nanos);
            sub(&mut a.rejected, b.rejected);
            sub(&mut a.failed, b.failed);
            for (x, y) in a.latency.iter_mut().zip(b.latency) {
                sub(x, y);
            }
        }
        for (code, n) in &mut self.errors {
            if let Some((_, b)) = base.errors.iter().find(|(c, _)| c == code) {
                sub(n, *b);
            }
        }
        self.errors.retain(|(_, n)| *n > 0);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_powers_of_two_of_microseconds() {
        let cases = [(0, 0), (1, 0), (1000, 0), (1001, 1), (2000, 1), (2001, 2), (4000, 2), (1 << 40, 21)];
        for (nanos, bucket) in cases {
            assert_eq!(latency_bucket(nanos), bucket, "{nanos} ns");
        }
    }

    #[test]
    fn totals_sum_threads_and_subtract_a_baseline() {
        let get = 7;
        let before = Totals::read();
        let worker = std::thread::spawn(move || {
            let c = local();
            let mut timer = Timer::start();
            timer.enter(get, c);
            c.call(get, false, KeyOp::Get, 1);
            timer.enter(get, c);
            c.call(get, true, KeyOp::Get, 1);
            std::thread::sleep(Duration::from_micros(10));
            timer.stop(c);
            c.error(b"WRONGTYPE Operation against a key");
            c.lookup(true);
            c.rejected(Some(get));
        });
        worker.join().unwrap();
        let since = Totals::read().since(&before);
        // Other tests may count in parallel: look only at what this one did, at least.
        assert!(since.cmds[get].calls >= 2 && since.cmds[get].nanos >= 10_000);
        assert!(since.cmds[get].failed >= 1 && since.cmds[get].rejected >= 1);
        assert!(since.errors.iter().any(|(c, n)| c == b"WRONGTYPE" && *n >= 1));
        assert!(since.key_ops[0] >= 2 && since.hits >= 1);
        // Two calls in one run of at least 10 µs: both at the run's average, 5 µs or more.
        assert!(since.cmds[get].latency[3..].iter().sum::<u64>() >= 2, "{:?}", since.cmds[get].latency);
        let now = Totals::read();
        assert_eq!(
            now.clone().since(&now),
            Totals { cmds: now.cmds.iter().map(|_| CmdTotals::default()).collect(), ..Totals::default() }
        );
    }
}
