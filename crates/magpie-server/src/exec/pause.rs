//! CLIENT PAUSE as dispatch sees it: which commands a pause holds back (Redis 7.0's
//! `processCommand`). A front end asks before it runs a command and waits while it is held.

use magpie_protocol::Args;

use super::table::TABLE;
use crate::model::{Flags, Session};
use crate::services::Server;
use crate::services::clients::PauseKind;

/// When the pause in force holds `args` back for `session`: the time it ends (ms since the
/// epoch), or `None` when the command may run now. PAUSE ALL holds every command; PAUSE WRITE
/// those that write or may replicate (PUBLISH, EVAL, PFCOUNT), and EXEC of a transaction with
/// one of those queued. A command the table refuses (unknown, wrong arity) is not held: its
/// error comes at once.
#[inline]
pub(crate) fn held(server: &Server, session: &Session, args: Args<'_>) -> Option<u64> {
    if !server.clients().maybe_paused() {
        return None; // one load per command, the clock only read during a pause
    }
    held_now(server, session, args)
}

#[cold]
fn held_now(server: &Server, session: &Session, args: Args<'_>) -> Option<u64> {
    let (kind, end) = server.clients().paused(magpie_store::now_ms())?;
    if session.is_internal() {
        return None;
    }
    let Ok((_, cmd)) = TABLE.resolve(args) else { return None };
    if kind == PauseKind::All {
        return Some(end);
    }
    let writes = Flags::WRITE.union(Flags::MAY_REPLICATE);
    if cmd.flags.intersects(writes) {
        return Some(end);
    }
    // EXEC (it runs alone) of a transaction with a write queued.
    let multi = session.txn.multi.as_ref().filter(|_| cmd.has(Flags::RUNS_ALONE))?;
    let queued_write =
        multi.queued.iter().any(|q| TABLE.resolve(q.args()).is_ok_and(|(_, c)| c.flags.intersects(writes)));
    queued_write.then_some(end)
}
