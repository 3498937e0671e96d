//! The batch: how a front end runs the commands it decoded, a batch at a time (see the
//! `exec` module's documentation).

use magpie_protocol::{Args, Reply};

use super::table::TABLE;
use super::{EXEC, dispatch_resolved, refuse};
use crate::model::{Command, Ctx, Flags, Session, Table};
use crate::services::Server;
use crate::services::gate::Pass;
use crate::services::stats::{self, Counters, Timer};

/// Runs a front end's batch of commands (see the module's documentation).
pub(crate) struct Batch<'s> {
    server: &'s Server,
    table: &'static Table,
    /// The time the batch's commands run at (ms since the epoch).
    now: u64,
    counters: &'static Counters,
    timer: Timer,
    /// The gate's read side, held across the batch's commands; a command that runs alone
    /// (EXEC, COMMIT) lets it go and takes the write side itself.
    pass: Option<Pass<'s>>,
}

impl<'s> Batch<'s> {
    pub(crate) fn new(server: &'s Server) -> Batch<'s> {
        Batch::at(server, magpie_store::now_ms())
    }

    /// A batch whose commands run at time `now` (ms since the epoch).
    pub(crate) fn at(server: &'s Server, now: u64) -> Batch<'s> {
        let timer = Timer::start();
        super::observe::mark(timer.started());
        Batch { server, table: &TABLE, now, counters: stats::local(), timer, pass: None }
    }

    /// Runs one command for `session`, its reply written to `out`. Returns the command that
    /// ran, if one did. When the session then waits (`Session::is_blocked`), the front end
    /// makes a waiter of it (`waiters::waiter`) after [`Batch::pause`].
    #[inline]
    pub(crate) fn run(&mut self, session: &mut Session, out: &mut Reply, args: Args<'_>) -> Option<&'static Command> {
        let resolved = self.table.resolve(args);
        let alone = matches!(&resolved, Ok((_, cmd)) if cmd.flags.intersects(Flags::RUNS_ALONE.union(Flags::NETWORK)));
        if alone {
            self.pass = None;
        } else if self.pass.is_none() {
            // `None` while a script is busy: dispatch then answers -BUSY command by command.
            self.pass = self.server.gate().try_shared();
        }
        let mut ctx = Ctx::new(
            self.server,
            &EXEC,
            self.server.keyspace(),
            session,
            out,
            self.now,
            self.counters,
            &mut self.timer,
        );
        match resolved {
            Ok(found) => dispatch_resolved(&mut ctx, found, args),
            Err((e, id)) => {
                refuse(&mut ctx, args, e, id);
                None
            }
        }
    }

    /// Before an `.await`: lets the gate go and charges the time so far.
    pub(crate) fn pause(&mut self) {
        self.pass = None;
        self.timer.stop(self.counters);
    }

    /// After an `.await`: the task may be on another thread now, with other counters.
    pub(crate) fn resume(&mut self) {
        self.counters = stats::local();
        self.timer = Timer::start();
        super::observe::mark(self.timer.started());
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.pass = None;
        self.timer.stop(self.counters);
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use magpie_protocol::{ArgVec, Reply, Resp};

    use super::Batch;
    use crate::model::{Ctx, Mode, Session};
    use crate::services::Server;
    use crate::services::config::{Config, Options};

    /// A server's state (default configuration, no listener) and one client of it.
    pub(crate) struct TestSession {
        pub server: Arc<Server>,
        session: Session,
    }

    impl TestSession {
        pub(crate) fn new() -> TestSession {
            let server = Arc::new(Server::new(Config::load(Options::default()).expect("default config")));
            let addr = "127.0.0.1:1".parse().expect("addr");
            let session = Session::new(server.clients().connect(addr, addr), server.acl().login());
            TestSession { server, session }
        }

        /// Runs `line` (split on spaces) in `mode`: the reply (RESP2), and whether the
        /// command asked to wait.
        pub(crate) fn run(&mut self, mode: Mode, line: &str) -> (String, bool) {
            let args = ArgVec::from_slices(line.split(' '));
            let mut out = Reply::new(Resp::V2);
            self.session.wait.mode = mode;
            let mut batch = Batch::new(&self.server);
            let mut ctx = Ctx::new(
                &self.server,
                &super::EXEC,
                self.server.keyspace(),
                &mut self.session,
                &mut out,
                batch.now,
                batch.counters,
                &mut batch.timer,
            );
            super::super::dispatch(&mut ctx, args.args());
            let blocked = self.session.wait.requested;
            self.session.wait = Default::default();
            (String::from_utf8_lossy(out.as_bytes()).into_owned(), blocked)
        }

        /// Runs each line in `mode`, checking its reply and that it did not ask to wait.
        pub(crate) fn expect(&mut self, mode: Mode, cases: &[(&str, &str)]) {
            for (line, reply) in cases {
                assert_eq!(self.run(mode, line), (reply.to_string(), false), "{line}");
            }
        }
    }
}
