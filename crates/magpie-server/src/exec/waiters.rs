//! Blocked clients, from the execution side: making a waiter of a command that found nothing,
//! running its command again when one of its keys is signalled, counting it when it ends.
//! The queues and their order are the blocking service's (`services::blocking`).

use std::sync::Arc;

use magpie_protocol::{Args, Reply, Resp};

use super::EXEC;
use crate::model::{Command, Ctx, Executor as _, Flags, Mode, Session};
use crate::services::Server;
use crate::services::acl::Login;
use crate::services::blocking::Waiter;
use crate::services::stats;

/// A waiter for `session`, whose command `cmd` (id `id`) ran with `args` and asked to wait.
/// It runs again as the command rewrote itself to wait, if it did (XREAD's `$` becomes the
/// ID it stood for).
pub(crate) fn waiter(session: &Session, proto: Resp, args: Args<'_>) -> Arc<Waiter> {
    let wait = &session.wait;
    let args = wait.rerun.as_ref().map_or(args, |a| a.args());
    Arc::new(Waiter::new(session.info().clone(), session.db(), proto, wait.id, args, wait.keys.clone(), wait.wants))
}

/// Queues `waiter` on its keys, then gives it one more try: an element that arrived between
/// the command's first look and the registration is seen now; anything later finds it
/// registered.
pub(crate) fn register(server: &Server, waiter: &Arc<Waiter>) {
    let (blocking, ks) = (server.blocking(), server.keyspace());
    blocking.register(ks, waiter);
    let _pass = server.gate().shared();
    if blocking.try_serve(ks, waiter, None, &mut |w, key| run_again(server, w, key)) && blocking.has_ready() {
        // Served at once, and what it did may feed others (BLMOVE's destination).
        serve(server);
    }
}

/// Serves the clients waiting on the keys signalled so far (see `Blocking::serve`).
pub(crate) fn serve(server: &Server) {
    server.blocking().serve(server.keyspace(), &mut |w, key| run_again(server, w, key));
}

/// Counts a waiter's command once, when it ends without being served (timeout, disconnect), as
/// Redis counts a blocking command when it unblocks.
pub(crate) fn count_unserved(waiter: &Waiter) {
    if let Some(cmd) = EXEC.table().by_id(waiter.cmd) {
        stats::local().call(waiter.cmd, false, cmd.op, cmd.key_count_in(waiter.args()));
    }
}

/// Runs a waiter's command again as its client, in `Retry` mode, for the key being served
/// (`None`: any). Returns the reply when it was served (the command is then counted, once),
/// `None` when it would wait on.
fn run_again(server: &Server, waiter: &Waiter, key: Option<&[u8]>) -> Option<(Vec<u8>, u64)> {
    let cmd: &'static Command = EXEC.table().by_id(waiter.cmd)?;
    // Checked when it was first called; served as the server itself.
    let mut session = Session::new(waiter.info.clone(), Login::internal());
    session.select(waiter.db);
    session.wait.mode = Mode::Retry;
    session.wait.ready = key.map(Into::into);
    let mut out = Reply::new(waiter.proto);
    let counters = stats::local();
    let mut timer = stats::Timer::start();
    timer.enter(waiter.cmd, counters);
    let args = waiter.args();
    let now = magpie_store::now_ms();
    let result = {
        let mut ctx = Ctx::new(server, &EXEC, server.keyspace(), &mut session, &mut out, now, counters, &mut timer);
        // Logged as what it did (BLPOP as LPOP), like any write command.
        if cmd.has(Flags::WRITE) { super::run_logged(&mut ctx, cmd, args) } else { (cmd.run)(&mut ctx, args) }
    };
    if session.wait.requested && result.is_ok() {
        return None;
    }
    if let Err(e) = &result {
        counters.error(&e.0);
        out.error(&e.0);
    }
    counters.call(waiter.cmd, result.is_err(), cmd.op, cmd.key_count_in(args));
    timer.stop(counters);
    Some((out.as_bytes().to_vec(), session.wrote()))
}
