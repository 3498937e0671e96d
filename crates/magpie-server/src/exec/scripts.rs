//! Scripts as the execution layer runs them: Lua's `redis.call` is a front end on the
//! dispatcher (the [`Host`] of a run), and a script is atomic and logged as its effects.
//!
//! - **Atomic.** EVAL, FCALL and their forms run alone (`RUNS_ALONE`: the gate is held
//!   exclusively), so no other command runs between a script's commands.
//! - **`redis.call`** makes Redis's scripting checks (`scriptCall` in script.c: unknown
//!   command, arity, `noscript` commands, writes from a read-only script, MISCONF before the
//!   first write) and then runs the command through [`super::dispatch_resolved`] as the
//!   calling session: its user, its database (a SELECT inside the script does not outlive
//!   it), its transaction (inside BEGIN the script reads and writes the transaction's copy,
//!   and its writes commit or roll back with it), in the protocol the script chose with
//!   `redis.setresp`, and never blocking (`Mode::NoBlock`: a blocking command answers as its
//!   timeout would). Every check dispatch makes (ACL included) therefore applies to each call.
//! - **Logged as effects.** Each write command a script runs is logged by dispatch as what
//!   it did (its own effects: INCRBYFLOAT as SET, ...); the script's records are gathered
//!   into one (`Journal::start_group`, as EXEC does), so the log never holds half a script
//!   and replaying it needs no script. Inside MULTI the script's commands join EXEC's record.
//! - **Busy.** The host's `check` (every 100,000 Lua instructions) notices when the script
//!   passes `busy-reply-threshold`: the gate is marked busy (other clients get `-BUSY`, and
//!   SCRIPT KILL / FUNCTION KILL / SHUTDOWN NOSAVE get through, see `dispatch_resolved`), and
//!   the thread hands its tokio worker duties to another thread, so that the other
//!   connections are served even when the server has a single worker.

use std::time::Duration;

use quanta::Instant;

use magpie_lua::{Control, Host, LogLevel, Repl};
use magpie_protocol::{ArgVec, Args, Reply};

use crate::core::error::{CmdResult, Error};
use crate::model::{Ctx, Flags, Mode, ScriptBody, ScriptRun};
use crate::services::scripting::RunInfo;

/// How often a timed-out script hands its worker duties over again, in case the first hand-off
/// lost the race with the thread taking them back.
const HAND_OFF_EVERY: Duration = Duration::from_secs(1);

/// Runs a script for `ctx`'s session (see the module's documentation).
pub(super) fn run_script(ctx: &mut Ctx<'_>, script: &ScriptRun<'_>, body: &mut ScriptBody<'_>) -> CmdResult {
    let server = ctx.server();
    let journal = server.journal();
    let running = server.scripting().running();
    // Inside BEGIN the writes are kept for COMMIT; inside MULTI they join EXEC's record.
    let own_group = !ctx.in_interactive() && !journal.grouping();
    journal.begin();
    if own_group {
        journal.start_group();
    }
    let session = ctx.session_mut();
    let db = session.db();
    let mode = std::mem::replace(&mut session.wait.mode, Mode::NoBlock);
    let nested = std::mem::replace(&mut session.script, true);
    running.begin(script.eval);
    let start = ctx.out().len();
    let (outcome, ended) = ctx.split_out(|inner, out| {
        let mut host = ScriptHost {
            ctx: inner,
            script,
            started: Instant::now(),
            read_only: script.read_only,
            oom_at_start: !script.allow_oom && server.settings().memory.over_limit(),
            dirty: false,
            repl: Repl::ALL,
            timed_out: None,
            shutting_down: false,
        };
        let outcome = body(&mut host, out);
        (outcome, (host.dirty, host.shutting_down))
    });
    running.end();
    let session = ctx.session_mut();
    session.select(db);
    session.wait.mode = mode;
    session.script = nested;
    if own_group {
        let (dirty, shutting_down) = ended;
        if dirty && shutting_down {
            // Cut short by SHUTDOWN NOSAVE: Redis exits without propagating what it did.
            journal.abandon_group();
        } else {
            let seq = journal.finish_group();
            if seq != 0 {
                ctx.session_mut().note_write(seq);
            }
        }
    }
    journal.end();
    match outcome {
        Err(e) => {
            ctx.out().truncate(start);
            Err(e)
        }
        // An error of the script's own is this command's error (counted as EVAL's failure);
        // one raised by a command it called was counted by that command already.
        Ok(o) if o.error && !o.ignore_error_stats => {
            let text = ctx.out().as_bytes()[start..].to_vec();
            match text.strip_prefix(b"-").and_then(|t| t.strip_suffix(b"\r\n")) {
                Some(msg) => {
                    ctx.out().truncate(start);
                    Err(Error::bytes(msg.to_vec()))
                }
                None => Ok(()),
            }
        }
        Ok(_) => Ok(()),
    }
}

/// The server as one run of a script sees it.
struct ScriptHost<'h, 'c> {
    /// The calling command's context (its reply is a scratch one: each call gets its own).
    ctx: &'h mut Ctx<'c>,
    script: &'h ScriptRun<'h>,
    /// quanta's clock, as the slow log's (`observe`): std's `Instant::now` was 1% of the
    /// time of an EVALSHA at pipeline 16 (the vDSO's `clock_gettime`).
    started: Instant,
    read_only: bool,
    /// Memory was over `maxmemory` when the script started (Redis's `pre_command_oom_state`),
    /// and the script did not declare `allow-oom`: its first `denyoom` call is refused.
    oom_at_start: bool,
    /// A write command was called (Redis's `SCRIPT_WRITE_DIRTY`).
    dirty: bool,
    /// `redis.set_repl`: whether the script's writes are logged.
    repl: Repl,
    /// When the script passed `busy-reply-threshold`, and when it last handed its worker over.
    timed_out: Option<Instant>,
    /// The server is shutting down: the script was stopped.
    shutting_down: bool,
}

/// The error of a call refused by the scripting layer, counted as Redis counts it (a rejected
/// call of the command, an error reply of its code).
fn refuse_call(ctx: &Ctx<'_>, id: Option<usize>, msg: &str) -> Vec<u8> {
    let stats = ctx.stats();
    stats.rejected(id);
    match msg.strip_prefix('-') {
        Some(coded) => stats.error(coded.as_bytes()),
        None => stats.error(format!("ERR {msg}").as_bytes()),
    }
    msg.as_bytes().to_vec()
}

impl Host for ScriptHost<'_, '_> {
    fn call(&mut self, args: Args<'_>, reply: &mut Reply) -> Result<(), Vec<u8>> {
        let found = match self.ctx.table().resolve(args) {
            Ok(found) => found,
            Err((_, Some(id))) => {
                return Err(refuse_call(self.ctx, Some(id), "Wrong number of args calling Redis command from script"));
            }
            Err((_, None)) => return Err(refuse_call(self.ctx, None, "Unknown Redis command called from script")),
        };
        let (id, cmd) = found;
        if cmd.has(Flags::NOSCRIPT) {
            return Err(refuse_call(self.ctx, Some(id), "This Redis command is not allowed from script"));
        }
        if let Err(msg) = super::script_acl(self.ctx, id, cmd, args) {
            return Err(refuse_call(self.ctx, Some(id), &msg));
        }
        if self.read_only && cmd.flags.intersects(Flags::WRITE.union(Flags::MAY_REPLICATE)) {
            return Err(refuse_call(self.ctx, Some(id), "Write commands are not allowed from read-only scripts."));
        }
        if cmd.has(Flags::WRITE)
            && !self.dirty
            && let Some(e) = self.ctx.server().persistence().deny_writes()
        {
            // A script that changed nothing yet may still fail as a whole.
            let mut msg = b"-".to_vec();
            msg.extend_from_slice(&e.0);
            let stats = self.ctx.stats();
            stats.rejected(Some(id));
            stats.error(&e.0);
            return Err(msg);
        }
        // `scriptVerifyOOM`: a script that has written nothing yet may still fail as a whole;
        // once it has, it runs to its end (eviction does not run inside a script either).
        if cmd.has(Flags::DENYOOM) && self.oom_at_start && !self.dirty {
            return Err(refuse_call(self.ctx, Some(id), &format!("-{}", crate::core::error::OOM)));
        }
        if cmd.has(Flags::WRITE) {
            self.dirty = true;
            self.ctx.server().scripting().running().wrote();
        }
        let journal = self.ctx.server().journal();
        let logged_before = (self.repl.0 & Repl::AOF.0 == 0).then(|| journal.group_len());
        self.ctx.with_out(reply, |c| {
            super::dispatch_resolved(c, (id, cmd), args);
        });
        if let Some(len) = logged_before {
            journal.truncate_group(len);
        }
        Ok(())
    }

    fn log(&mut self, level: LogLevel, message: &[u8]) {
        crate::services::scripting::log_script(level, message);
    }

    fn check(&mut self) -> Control {
        let server = self.ctx.server();
        if server.is_shutting_down() {
            // SHUTDOWN NOSAVE (or a signal): the script stops, written or not.
            self.shutting_down = true;
            return Control::Kill;
        }
        let running = server.scripting().running();
        match self.timed_out {
            None => {
                let threshold = Duration::from_millis(server.settings().busy_reply_threshold());
                let elapsed = self.started.elapsed();
                if elapsed < threshold {
                    return Control::Continue;
                }
                tracing::warn!(
                    "Slow script detected: still in execution after {} milliseconds. You can try killing the script \
                     using the {} command. Script name is: {}.",
                    elapsed.as_millis(),
                    if self.script.eval { "SCRIPT KILL" } else { "FUNCTION KILL" },
                    String::from_utf8_lossy(self.script.name)
                );
                let started = std::time::Instant::now().checked_sub(elapsed).unwrap_or_else(std::time::Instant::now);
                running.time_out(RunInfo {
                    name: self.script.name.to_vec(),
                    command: self.script.command.iter().map(<[u8]>::to_vec).collect(),
                    started,
                });
                self.timed_out = Some(Instant::now());
                hand_off_worker();
            }
            Some(at) if at.elapsed() >= HAND_OFF_EVERY => {
                self.timed_out = Some(Instant::now());
                hand_off_worker();
            }
            Some(_) => {}
        }
        if running.killed() { Control::Kill } else { Control::Continue }
    }

    fn set_repl(&mut self, flags: Repl) {
        self.repl = flags;
    }

    fn acl_check_cmd(&mut self, argv: &[&[u8]]) -> Option<bool> {
        // Redis looks the command up without checking its arity; an unknown one is an error.
        let args = ArgVec::copy_of(argv);
        let table = self.ctx.table();
        let (id, cmd) = match table.resolve(args.args()) {
            Ok(found) => found,
            Err((_, Some(id))) => (id, table.by_id(id)?),
            Err((_, None)) => return None,
        };
        Some(super::permits(self.ctx, id, cmd, args.args()))
    }
}

/// A timed-out script keeps its thread for as long as it runs. The thread gives its tokio
/// worker duties (the other connections it was serving) to another thread, so that SCRIPT
/// KILL and the `-BUSY` replies get through even with a single worker thread
/// (`block_in_place` hands the worker over; the short wait lets the new thread take it
/// before this one would take it back).
fn hand_off_worker() {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread) {
        tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(10)));
    }
}
