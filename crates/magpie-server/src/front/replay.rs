//! The append-only log replayed at start: a front end with one internal session, whose
//! commands run through the dispatcher like any client's (they were logged as effects, so
//! nothing replayed blocks or depends on the time).

use magpie_protocol::{Reply, Resp};

use crate::exec::Batch;
use crate::model::{Mode, Session};
use crate::services::Server;
use crate::services::persist::ReplayStep;

/// Replays the log into `server`'s keyspace (see `Persistence::load`).
pub(crate) fn load(server: &Server) -> Result<(), String> {
    let mut session = Session::internal();
    // The log holds what blocking commands did (BLPOP as LPOP); nothing replayed may wait.
    session.wait.mode = Mode::NoBlock;
    let mut out = Reply::new(Resp::V2);
    // One batch runs many commands, as a connection's does: a batch reads the clock when it
    // starts and ends (for the CPU time it charges), which cost 8% of a replay of SETs when
    // each command had its own. It lets the gate go every `BATCH` commands, and at the end.
    const BATCH: u32 = 1024;
    let (mut batch, mut ran_in_batch) = (None, 0);
    let mut apply = |step: ReplayStep<'_>| -> Result<(), String> {
        let args = match step {
            ReplayStep::Record { db } => {
                session.select(db);
                return Ok(());
            }
            ReplayStep::End => {
                (batch, ran_in_batch) = (None, 0);
                return Ok(());
            }
            ReplayStep::Command(args) => args,
        };
        out.clear();
        if ran_in_batch == BATCH {
            (batch, ran_in_batch) = (None, 0);
        }
        ran_in_batch += 1;
        // At time 0: replay does not expire keys (records of expired keys' deletions are in
        // the log where they happened).
        let ran = batch.get_or_insert_with(|| Batch::at(server, 0)).run(&mut session, &mut out, args);
        match ran {
            Some(_) if !out.as_bytes().starts_with(b"-") => Ok(()),
            _ => Err(String::from_utf8_lossy(out.as_bytes()).trim_end().trim_start_matches('-').to_owned()),
        }
    };
    let persistence = server.persistence().clone();
    persistence.load(&mut apply)?;
    Ok(())
}
