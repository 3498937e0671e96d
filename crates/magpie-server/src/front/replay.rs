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
    let mut apply = |step: ReplayStep<'_>| -> Result<(), String> {
        let args = match step {
            ReplayStep::Record { db } => {
                session.select(db);
                return Ok(());
            }
            ReplayStep::Command(args) => args,
        };
        out.clear();
        // At time 0: replay does not expire keys (records of expired keys' deletions are in
        // the log where they happened).
        let mut batch = Batch::at(server, 0);
        let ran = batch.run(&mut session, &mut out, args);
        match ran {
            Some(_) if !out.as_bytes().starts_with(b"-") => Ok(()),
            _ => Err(String::from_utf8_lossy(out.as_bytes()).trim_end().trim_start_matches('-').to_owned()),
        }
    };
    let persistence = server.persistence().clone();
    persistence.load(&mut apply)?;
    Ok(())
}
