//! The execution layer: the dispatcher every front end calls, MULTI/EXEC, interactive
//! transactions, and the serving of blocked clients. It assembles the command table from the
//! families (and its own transaction commands) and makes every check the table drives.
//!
//! A front end owns its sessions and runs commands through a [`Batch`]: one per batch of
//! commands it has decoded, which reads the clock once, keeps this thread's counters and holds
//! the gate across the batch (never across an `.await`: call [`Batch::pause`] first).

pub mod dispatch;
mod interactive;
mod multi;
pub mod waiters;

use std::sync::LazyLock;

use magpie_protocol::{Args, Reply};

use crate::commands::{KEYS, NONE};
use crate::model::flags::{FAST, LOADING, NOSCRIPT, STALE};
use crate::model::{Command, Ctx, Executor, Session, Table};
use crate::services::Server;
use crate::services::gate::Pass;
use crate::services::stats::{self, Counters, Timer};

/// The transaction commands, which the execution layer runs itself.
#[rustfmt::skip]
static TRANSACTIONS: &[Command] = &[
    // transactions
    Command::new("multi", 1, NOSCRIPT | LOADING | STALE | FAST, NONE, "transactions", "1.2.0", "Starts a transaction.", "", multi::multi),
    Command::new("exec", 1, NOSCRIPT | LOADING | STALE, NONE, "transactions", "1.2.0", "Executes all commands in a transaction.", "", multi::exec).exclusive(),
    Command::new("discard", 1, NOSCRIPT | LOADING | STALE | FAST, NONE, "transactions", "2.0.0", "Discards a transaction.", "", multi::discard),
    Command::new("watch", -2, NOSCRIPT | LOADING | STALE | FAST, KEYS, "transactions", "2.2.0",
        "Monitors changes to keys to determine the execution of a transaction.", "key [key ...]", multi::watch),
    Command::new("unwatch", 1, NOSCRIPT | LOADING | STALE | FAST, NONE, "transactions", "2.2.0", "Forgets about watched keys of a transaction.", "", multi::unwatch),
    // interactive transactions (Magpie's own)
    Command::new("begin", 1, NOSCRIPT | LOADING | STALE | FAST, NONE, "transactions", "0.1.0",
        "Starts an interactive transaction: commands run at once on a private copy; COMMIT applies them all or none.", "", interactive::begin),
    Command::new("start", 1, NOSCRIPT | LOADING | STALE | FAST, NONE, "transactions", "0.1.0", "An alias of BEGIN.", "", interactive::begin),
    Command::new("commit", 1, NOSCRIPT | LOADING | STALE, NONE, "transactions", "0.1.0",
        "Applies an interactive transaction if nothing it touched was changed meanwhile; otherwise fails with CONFLICT.", "", interactive::commit).exclusive(),
    Command::new("rollback", 1, NOSCRIPT | LOADING | STALE | FAST, NONE, "transactions", "0.1.0", "Discards an interactive transaction.", "", interactive::rollback),
];

/// The command table: connection, transactions, the core groups, then each data type.
pub static TABLE: LazyLock<Table> = LazyLock::new(|| {
    let mut all: Vec<&'static Command> = Vec::new();
    for family in
        [crate::commands::CONNECTION, TRANSACTIONS, crate::commands::CORE].into_iter().chain(crate::commands::FAMILIES)
    {
        all.extend(family.iter());
    }
    Table::new(all)
});

/// The execution layer as commands see it (see [`Executor`]).
pub struct Exec;

pub static EXEC: Exec = Exec;

impl Executor for Exec {
    fn table(&self) -> &'static Table {
        &TABLE
    }

    fn serve_waiters(&self, server: &Server) {
        waiters::serve(server);
    }
}

/// Runs a front end's batch of commands (see the module's documentation).
pub struct Batch<'s> {
    server: &'s Server,
    /// The time the batch's commands run at (ms since the epoch).
    now: u64,
    counters: &'static Counters,
    timer: Timer,
    /// The gate's read side, held across the batch's commands; a command that runs alone
    /// (EXEC, COMMIT) lets it go and takes the write side itself.
    pass: Option<Pass<'s>>,
}

impl<'s> Batch<'s> {
    pub fn new(server: &'s Server) -> Batch<'s> {
        Batch::at(server, magpie_store::now_ms())
    }

    /// A batch whose commands run at time `now` (ms since the epoch).
    pub fn at(server: &'s Server, now: u64) -> Batch<'s> {
        Batch { server, now, counters: stats::local(), timer: Timer::start(), pass: None }
    }

    /// Runs one command for `session`, its reply written to `out`. Returns the command that
    /// ran, if one did. When the session then waits (`Session::is_blocked`), the front end
    /// makes a waiter of it (`waiters::waiter`) after [`Batch::pause`].
    pub fn run(&mut self, session: &mut Session, out: &mut Reply, args: Args<'_>) -> Option<&'static Command> {
        let resolved = TABLE.resolve(args);
        let alone = matches!(&resolved, Ok((_, cmd)) if cmd.exclusive);
        if alone {
            self.pass = None;
        } else if self.pass.is_none() {
            self.pass = Some(self.server.gate().shared());
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
            Ok(found) => dispatch::dispatch_resolved(&mut ctx, found, args),
            Err((e, id)) => {
                dispatch::refuse(&mut ctx, args, e, id);
                None
            }
        }
    }

    /// Before an `.await`: lets the gate go and charges the time so far.
    pub fn pause(&mut self) {
        self.pass = None;
        self.timer.stop(self.counters);
    }

    /// After an `.await`: the task may be on another thread now, with other counters.
    pub fn resume(&mut self) {
        self.counters = stats::local();
        self.timer = Timer::start();
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.pass = None;
        self.timer.stop(self.counters);
    }
}

#[cfg(test)]
mod tests {
    use magpie_protocol::ArgVec;

    use super::*;
    use crate::model::docs::{DocArg, parse_syntax};
    use crate::services::stats::KeyOp;

    #[test]
    fn every_command_is_well_formed() {
        for &cmd in TABLE.commands().iter() {
            assert_eq!(cmd.name, cmd.name.to_lowercase());
            assert!(TABLE.lookup(cmd.name.as_bytes()).is_some(), "{}", cmd.name);
            assert!(cmd.arity != 0, "{}", cmd.name);
            assert!(!cmd.summary.is_empty(), "{}", cmd.name);
            parse_syntax(cmd.syntax);
            for sub in cmd.subcommands {
                assert!(sub.arity.unsigned_abs() >= 2, "{}", sub.name);
                assert!(sub.name.starts_with(&format!("{}|", cmd.name)), "{}", sub.name);
                parse_syntax(sub.syntax);
            }
        }
        assert!(TABLE.lookup(b"GeT").is_some());
        assert!(TABLE.lookup(&[b'a'; 40]).is_none());
    }

    /// The fewest arguments a documented argument takes.
    fn min_words(arg: &DocArg) -> i32 {
        if arg.optional {
            return 0;
        }
        let own = match arg.kind {
            "oneof" => arg.children.iter().map(min_words).min().unwrap_or(0),
            "block" => arg.children.iter().map(min_words).sum(),
            "pure-token" => 0,
            _ => 1,
        };
        own + i32::from(arg.token.is_some())
    }

    #[test]
    fn docs_take_as_many_arguments_as_the_arity_asks() {
        // `LEFT|RIGHT` outside a group would make the whole syntax the alternatives: LMOVE's
        // docs ended at `LEFT`. The arity and the documented arguments must agree.
        for cmd in TABLE.commands().iter().flat_map(|c| std::iter::once(*c).chain(c.subcommands)) {
            if cmd.syntax.is_empty() {
                continue;
            }
            let words = if cmd.name.contains('|') { 2 } else { 1 };
            let documented: i32 = parse_syntax(cmd.syntax).iter().map(min_words).sum();
            assert_eq!(documented + words, cmd.arity.abs(), "{}: {:?}", cmd.name, cmd.syntax);
        }
    }

    #[test]
    fn ids_number_every_command_and_subcommand_once() {
        let total: usize = TABLE.commands().iter().map(|c| 1 + c.subcommands.len()).sum();
        assert_eq!(TABLE.names().len(), total);
        for (i, cmd) in TABLE.commands().iter().enumerate() {
            assert_eq!(TABLE.names()[i], cmd.name);
            assert_eq!(TABLE.by_id(i).map(|c| c.name), Some(cmd.name));
            for sub in cmd.subcommands {
                let id = TABLE.names().iter().position(|n| *n == sub.name).expect("numbered");
                assert_eq!(TABLE.by_id(id).map(|c| c.name), Some(sub.name));
            }
        }
    }

    #[test]
    fn key_counts_follow_key_positions() {
        let count = |name: &str, argc| TABLE.lookup(name.as_bytes()).unwrap().key_count(argc);
        assert_eq!(count("get", 2), 1);
        assert_eq!(count("mget", 4), 3);
        assert_eq!(count("mset", 7), 3);
        assert_eq!(count("del", 2), 1);
        assert_eq!(count("rename", 3), 2);
        assert_eq!(count("ping", 1), 0);
        assert_eq!(TABLE.lookup(b"del").unwrap().op, KeyOp::Del);
        assert_eq!(TABLE.lookup(b"getdel").unwrap().op, KeyOp::Del);
        assert_eq!(TABLE.lookup(b"exists").unwrap().op, KeyOp::Get);
        assert_eq!(TABLE.lookup(b"incr").unwrap().op, KeyOp::Set);
        // Commands with numkeys count the keys they name.
        let keys_of = |line: &str| {
            let words: Vec<&str> = line.split(' ').collect();
            let args = ArgVec::from_slices(&words);
            TABLE.lookup(words[0].as_bytes()).unwrap().key_count_in(args.args())
        };
        assert_eq!(keys_of("lmpop 2 a b LEFT"), 2);
        assert_eq!(keys_of("blmpop 0 3 a b c RIGHT COUNT 2"), 3);
        assert_eq!(keys_of("lmpop 5 a LEFT"), 2);
        assert_eq!(keys_of("lmpop x a LEFT"), 0);
        assert_eq!(keys_of("blpop a b 0"), 2);
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use magpie_protocol::{ArgVec, Reply, Resp};

    use super::{Batch, dispatch};
    use crate::model::{Ctx, Mode, Session};
    use crate::services::Server;
    use crate::services::config::{Config, Options};

    /// A server's state (default configuration, no listener) and one client of it.
    pub struct TestSession {
        pub server: Arc<Server>,
        session: Session,
    }

    impl TestSession {
        pub fn new() -> TestSession {
            let server = Arc::new(Server::new(Config::load(Options::default()).expect("default config")));
            let addr = "127.0.0.1:1".parse().expect("addr");
            let session = Session::new(server.clients().connect(addr, addr));
            TestSession { server, session }
        }

        /// Runs `line` (split on spaces) in `mode`: the reply (RESP2), and whether the
        /// command asked to wait.
        pub fn run(&mut self, mode: Mode, line: &str) -> (String, bool) {
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
            dispatch::dispatch(&mut ctx, args.args());
            let blocked = self.session.wait.requested;
            self.session.wait = Default::default();
            (String::from_utf8_lossy(out.as_bytes()).into_owned(), blocked)
        }

        /// Runs each line in `mode`, checking its reply and that it did not ask to wait.
        pub fn expect(&mut self, mode: Mode, cases: &[(&str, &str)]) {
            for (line, reply) in cases {
                assert_eq!(self.run(mode, line), (reply.to_string(), false), "{line}");
            }
        }
    }
}
