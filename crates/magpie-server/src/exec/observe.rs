//! What dispatch tells the operator's tools about each command: its time to the slow log and
//! the latency monitor, and its line to the clients that run MONITOR (Redis's `call()`).
//!
//! Timing costs one read of the clock per command, and only while the slow log or the latency
//! monitor is on (the slow log is, by default). The clock is quanta's: the CPU's time-stamp
//! counter scaled to nanoseconds where it is invariant (a few instructions, against about 150
//! for the vDSO's `clock_gettime` and the `Duration` arithmetic of `std::time::Instant`:
//! `bench/callgrind.sh` measured 148 instructions a command for timing with std's), the
//! monotonic clock otherwise. A
//! command ends at the clock read after it, and starts where the command before it on this
//! thread ended (the mark), or where its batch started (the batch sets the mark when it
//! starts and after every pause). A nested command (inside EXEC or a script) moves the mark,
//! but the outer one kept its own start. With neither on and nobody monitoring, a command
//! pays three relaxed loads.

use quanta::Instant;
use std::cell::Cell;
use std::sync::atomic::Ordering;

use magpie_protocol::Args;

use crate::core::error::Error;
use crate::model::{Command, Ctx, Flags};
use crate::services::monitor::Source;

thread_local! {
    /// When the last command on this thread ended, or its batch started.
    static MARK: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// A batch starts (or resumes after an `.await`) on this thread at `now`.
#[inline]
pub(super) fn mark(now: Instant) {
    MARK.with(|m| m.set(Some(now)));
}

/// Before a command runs: the time it starts, if anything wants it. A command flagged
/// `skip_monitor` (EVAL, FCALL) is shown to monitors now, before the commands it runs, as
/// Redis feeds them explicitly (an admin command never).
#[inline]
pub(super) fn start(ctx: &Ctx<'_>, cmd: &'static Command, args: Args<'_>) -> Option<Instant> {
    let server = ctx.server();
    if server.monitors().active()
        && cmd.has(Flags::SKIP_MONITOR)
        && !cmd.has(Flags::ADMIN)
        && !ctx.session().is_internal()
    {
        feed(ctx, args);
    }
    let s = &server.settings().operator;
    if s.slowlog_log_slower_than() < 0 && s.latency_monitor_threshold() == 0 {
        return None;
    }
    Some(MARK.with(Cell::get).unwrap_or_else(Instant::now))
}

/// After a command ran (`blocked`: it waits, and is not logged as slow, as in Redis). Returns
/// the time it ended, if the clock was read for it (for commandstats' timer).
#[inline]
pub(super) fn finish(
    ctx: &Ctx<'_>,
    cmd: &'static Command,
    args: Args<'_>,
    started: Option<Instant>,
    blocked: bool,
) -> Option<Instant> {
    if ctx.session().is_internal() {
        return None; // replaying the log at start: Redis's `server.loading`
    }
    let mut ended = None;
    if let Some(t0) = started {
        let now = Instant::now();
        mark(now);
        let micros = u64::try_from(now.saturating_duration_since(t0).as_micros()).unwrap_or(u64::MAX);
        timed(ctx, cmd, args, micros, blocked);
        ended = Some(now);
    }
    let server = ctx.server();
    if server.monitors().active() && !cmd.flags.intersects(Flags::SKIP_MONITOR.union(Flags::ADMIN)) {
        feed(ctx, args);
    }
    ended
}

#[inline]
fn timed(ctx: &Ctx<'_>, cmd: &'static Command, args: Args<'_>, micros: u64, blocked: bool) {
    let server = ctx.server();
    let s = &server.settings().operator;
    let event = if cmd.has(Flags::FAST) { "fast-command" } else { "command" };
    server.latency().sample_if_needed(event, micros / 1000, s.latency_monitor_threshold());
    let threshold = s.slowlog_log_slower_than();
    if threshold >= 0 && micros >= threshold as u64 && !blocked && !cmd.has(Flags::SKIP_SLOWLOG) {
        slow(ctx, args, micros);
    }
}

#[cold]
fn slow(ctx: &Ctx<'_>, args: Args<'_>, micros: u64) {
    let session = ctx.session();
    let info = session.info();
    let redacted = session.effects.redacted;
    let args = args.iter().enumerate().map(|(i, a)| shown(redacted, i, a));
    let max_len = ctx.server().settings().operator.slowlog_max_len();
    let name = info.name.lock().clone().unwrap_or_default();
    ctx.server().slowlog().push(args, micros, info.addr.to_string(), name, max_len);
}

#[cold]
fn feed(ctx: &Ctx<'_>, args: Args<'_>) {
    let session = ctx.session();
    let redacted = session.effects.redacted;
    let source = if session.script { Source::Lua } else { Source::Client(session.info().addr) };
    let args = args.iter().enumerate().map(|(i, a)| shown(redacted, i, a));
    ctx.server().monitors().feed(session.db(), &source, args);
}

/// A client that runs MONITOR may not touch the keyspace (Redis: it is a replica). The lines
/// queued for it so far go out before the reply of what it runs now, in Redis's order.
#[inline]
pub(super) fn monitor_refuses(ctx: &mut Ctx<'_>, cmd: &Command) -> Option<Error> {
    if !ctx.session().info().pubsub.monitor.load(Ordering::Relaxed) {
        return None;
    }
    ctx.deliver_own();
    cmd.flags
        .intersects(Flags::READONLY.union(Flags::WRITE).union(Flags::MAY_REPLICATE))
        .then(|| Error::from("ERR Replica can't interact with the keyspace"))
}

/// An argument as MONITOR and the slow log show it.
fn shown(redacted: u64, i: usize, arg: &[u8]) -> &[u8] {
    if i < 64 && redacted & (1 << i) != 0 { b"(redacted)" } else { arg }
}
