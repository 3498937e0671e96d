//! The execution layer: the dispatcher every front end calls, MULTI/EXEC, interactive
//! transactions, and the serving of blocked clients. It assembles the command table from the
//! families (and its own transaction commands) and makes every check the table drives.
//!
//! A front end owns its sessions and runs commands through a [`Batch`]: one per batch of
//! commands it has decoded, which reads the clock once, keeps this thread's counters and holds
//! the gate across the batch (never across an `.await`: call [`Batch::pause`] first).
//!
//! Dispatch ([`dispatch`]) is the one way a command runs, whatever front end asked. It
//! resolves the command from the table, makes every table-driven check (arity, MULTI queueing,
//! subscribe mode, refused writes), runs it in the right place (the keyspace, or an
//! interactive transaction's copy), queues its log record, counts it, and serves the clients
//! it unblocked.

mod batch;
mod interactive;
mod multi;
mod observe;
pub(crate) mod pause;
mod scripts;
mod table;
mod tracking;
pub(crate) mod waiters;

pub(crate) use batch::Batch;
#[cfg(test)]
pub(crate) use batch::test_support;
pub(crate) use table::TABLE;

use magpie_protocol::Args;

use crate::core::error::{CmdResult, Error};
use crate::model::{Command, Ctx, Executor, Flags, Mode, ScriptBody, ScriptRun, Table};
use crate::services::Server;
use crate::services::expired;
use crate::services::stats::KeyOp;

/// Resolves, checks and runs one command, writing its reply (or error) to the context's
/// output, and counts it (calls, time, failures, keys) in this thread's statistics. Returns
/// the command that ran, if any.
pub(crate) fn dispatch(ctx: &mut Ctx<'_>, args: Args<'_>) -> Option<&'static Command> {
    match ctx.table().resolve(args) {
        Ok(found) => dispatch_resolved(ctx, found, args),
        Err((e, id)) => {
            refuse(ctx, args, e, id);
            None
        }
    }
}

/// [`dispatch`] of a command already resolved (with its id): the front end looked it up to
/// know how to hold the gate.
pub(crate) fn dispatch_resolved(
    ctx: &mut Ctx<'_>,
    (id, cmd): (usize, &'static Command),
    args: Args<'_>,
) -> Option<&'static Command> {
    let stats = ctx.stats();
    // Held while the command runs: a transaction or a script runs with nothing else running.
    let gate = ctx.server().gate();
    let _pass = if cmd.has(Flags::NETWORK) {
        None // it takes the gate itself, around its steps on the keyspace
    } else {
        // EXEC of a transaction that declared its keys holds their shards instead (see
        // `multi`): the read side is enough.
        let alone = cmd.has(Flags::RUNS_ALONE) && !multi::holds_keys_only(ctx.session(), cmd);
        let entered = if alone { gate.try_exclusive() } else { gate.try_shared() };
        match entered {
            Some(pass) => Some(pass),
            None => {
                // The holder is busy (a script past busy-reply-threshold): as Redis, a client
                // that may not run the command hears so before it hears -BUSY.
                if let Err(refusal) = admit(ctx, id, cmd, args) {
                    if let Some(e) = refusal {
                        refuse(ctx, args, e, Some(id));
                    }
                    return None;
                }
                match busy(ctx, cmd) {
                    Ok(pass) => Some(pass),
                    Err(e) => {
                        refuse(ctx, args, e, Some(id));
                        return None;
                    }
                }
            }
        }
    };
    // Authentication and ACL permissions, before anything else looks at the command. A
    // script's call was checked by the script's host (`script_acl`, with the script's error
    // texts) for the user that was admitted to run the script, and a client that runs
    // MONITOR cannot run a script: only what the table protects is checked again.
    if !ctx.session().script || cmd.has(Flags::PROTECTED) {
        if let Err(refusal) = admit(ctx, id, cmd, args) {
            if let Some(e) = refusal {
                refuse(ctx, args, e, Some(id));
            }
            return None;
        }
        if let Some(e) = observe::monitor_refuses(ctx, cmd) {
            refuse(ctx, args, e, Some(id));
            return None;
        }
    }
    // Eviction first, while a memory limit is set; refusal of what adds memory if it fails.
    if ctx.server().settings().memory.maxmemory() != 0
        && let Err(e) = evict_first(ctx, cmd)
    {
        refuse(ctx, args, e, Some(id));
        return None;
    }
    if ctx.session().txn.multi.is_some() {
        match multi::queue(ctx, cmd, args) {
            Ok(true) => return Some(cmd),
            Ok(false) => {}
            Err(e) => {
                refuse(ctx, args, e, Some(id));
                return None;
            }
        }
    }
    ctx.timer().enter(id, stats);
    {
        let session = ctx.session_mut();
        session.effects.clear();
        session.wait.clear();
    }
    // A RESP2 client with subscriptions may only (un)subscribe, PING, QUIT and RESET.
    if let Err(e) = allowed_in_subscribe_mode(ctx, cmd) {
        refuse(ctx, args, e, Some(id));
        return None;
    }
    let started = observe::start(ctx, cmd, args);
    let result = if ctx.in_interactive() && !interactive::controls(cmd) {
        match interactive::run_inside(ctx, cmd, args) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    } else if cmd.has(Flags::WRITE) {
        match ctx.server().persistence().deny_writes() {
            Some(e) => Err(e),
            None => run_logged(ctx, cmd, args),
        }
    } else if cmd.has(Flags::MAY_REPLICATE) && !cmd.has(Flags::LOGS_EFFECTS) {
        // A read that may change a value (PFCOUNT caches the cardinality in its HyperLogLog):
        // logged as itself when it did, as Redis propagates it. PUBLISH changes nothing.
        run_logged(ctx, cmd, args)
    } else {
        (cmd.run)(ctx, args)
    };
    if let Some(at) = observe::finish(ctx, cmd, args, started, ctx.session().wait.requested && result.is_ok()) {
        ctx.timer().ended(at);
    }
    if ctx.session().wait.requested && result.is_ok() {
        // The client waits: the command is counted when it is served or gives up.
        ctx.session_mut().wait.id = id;
        return Some(cmd);
    }
    if !ctx.session().is_internal() {
        let keys = if cmd.op == KeyOp::None { 0 } else { cmd.key_count_in(args) };
        stats.call(id, result.is_err(), cmd.op, keys);
    }
    if ctx.session().wait.mode != Mode::NoBlock && ctx.server().blocking().has_ready() {
        // Clients blocked on keys this command filled are served before anything else runs
        // on this connection (after a whole transaction, for the commands inside one).
        waiters::serve(ctx.server());
    }
    let ran = match result {
        Ok(()) => Some(cmd),
        Err(e) => {
            stats.error(&e.0);
            ctx.out().error(&e.0);
            None
        }
    };
    tracking::after_command(ctx, cmd, args);
    ran
}

/// Evicts keys until memory is under `maxmemory` (or the time allowed is spent), as Redis's
/// `processCommand` does before every command; if nothing could be evicted, refuses what
/// may add memory: a DENYOOM command, anything queued in MULTI, an EXEC that queued one.
/// Commands inside EXEC, a script's calls and the server's own (replaying the log) are not
/// checked here, as Redis.
#[cold]
fn evict_first(ctx: &Ctx<'_>, cmd: &Command) -> Result<(), Error> {
    use crate::services::memory::Outcome;
    let session = ctx.session();
    // A script's calls are checked by the script's own rule (`exec::scripts`): nothing is
    // evicted under a running script, whose keys must stay as it saw them.
    if session.is_internal() || session.txn.executing || session.script {
        return Ok(());
    }
    let server = ctx.server();
    let memory = &server.settings().memory;
    if memory.perform_evictions(server.keyspace(), server.pubsub(), server.journal(), ctx.now()) != Outcome::Fail {
        return Ok(());
    }
    let refuse = match &session.txn.multi {
        _ if cmd.has(Flags::DENYOOM) => true,
        None => false,
        Some(multi) if cmd.name == "exec" => {
            multi.queued.iter().any(|q| ctx.table().resolve(q.args()).is_ok_and(|(_, c)| c.has(Flags::DENYOOM)))
        }
        Some(_) => !cmd.has(Flags::NOT_QUEUED) || matches!(cmd.name, "multi" | "watch"),
    };
    if refuse { Err(Error::from(crate::core::error::OOM)) } else { Ok(()) }
}

/// Whether the session may run `cmd` now, in Redis's order (`processCommand`): a protected
/// command (DEBUG) only as `enable-debug-command` allows, then NOAUTH before the client has
/// authenticated (unless the command needs none), then the user's ACL permissions (after
/// MULTI's own refusal of commands that may not be queued). `Err(None)`: the session's user
/// was deleted, and the connection closes without a reply.
#[inline]
fn admit(ctx: &mut Ctx<'_>, id: usize, cmd: &'static Command, args: Args<'_>) -> Result<(), Option<Error>> {
    if cmd.has(Flags::PROTECTED) {
        protected(ctx, cmd)?;
    }
    let acl = ctx.server().acl();
    let session = ctx.session_mut();
    if acl.auth_required(&session.login) && !cmd.has(Flags::NO_AUTH) {
        return Err(Some(Error::from("NOAUTH Authentication required.")));
    }
    if session.txn.multi.is_some() && cmd.has(Flags::NO_MULTI) {
        return Ok(()); // refused by MULTI first, as Redis checks no-multi before the ACL
    }
    let Ok(user) = acl.current(&mut session.login) else {
        session.close();
        return Err(None);
    };
    if user.unrestricted() {
        return Ok(());
    }
    check_acl(ctx, id, cmd, args)
}

#[cold]
fn protected(ctx: &Ctx<'_>, cmd: &Command) -> Result<(), Option<Error>> {
    if ctx.server().settings().config.enable_debug_command.allows(ctx.session().is_local()) {
        return Ok(());
    }
    let name = cmd.name.to_uppercase();
    Err(Some(Error::msg(format!(
        "ERR {name} command not allowed. If the enable-debug-command option is set to \"local\", you can run it \
         from a local connection, otherwise you need to set this option in the configuration file, and then \
         restart the server."
    ))))
}

/// The ACL check of a restricted user: refusals are logged (ACL LOG) and counted.
fn check_acl(ctx: &mut Ctx<'_>, id: usize, cmd: &'static Command, args: Args<'_>) -> Result<(), Option<Error>> {
    let session = ctx.session();
    let Err(d) = crate::model::access::check(session.login.user(), id, cmd, args) else { return Ok(()) };
    Err(Some(refusal(ctx, cmd, args, d)))
}

/// Logs and counts a refusal, and makes its error (Redis's texts).
#[cold]
fn refusal(ctx: &Ctx<'_>, cmd: &Command, args: Args<'_>, d: crate::model::access::Denied) -> Error {
    use crate::services::acl::{Context, LogEntry, Reason};
    let session = ctx.session();
    let executing = session.txn.executing;
    let object = match d.reason {
        Reason::Key | Reason::Channel => args.get(d.arg).to_vec(),
        _ => cmd.name.as_bytes().to_vec(),
    };
    ctx.server().acl().log_denial(LogEntry {
        count: 1,
        reason: d.reason,
        context: if session.script {
            Context::Lua
        } else if executing || session.txn.multi.is_some() {
            Context::Multi
        } else {
            Context::Toplevel
        },
        object,
        username: session.login.user().name().to_vec(),
        ctime: magpie_store::now_ms(),
        client_info: session.info().line(),
    });
    let text = if executing {
        let why = match d.reason {
            Reason::Key => "no permission to touch the specified keys",
            Reason::Channel => "no permission to access one of the channels used as arguments",
            _ => "no permission to execute the command or subcommand",
        };
        format!(
            "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. This \
             command is no longer allowed for the following reason: {why}"
        )
    } else {
        match d.reason {
            Reason::Key => "NOPERM this user has no permissions to access one of the keys used as arguments".into(),
            Reason::Channel => {
                "NOPERM this user has no permissions to access one of the channels used as arguments".into()
            }
            _ => format!("NOPERM this user has no permissions to run the '{}' command", cmd.name),
        }
    };
    Error::msg(text)
}

/// The gate's holder (a script past `busy-reply-threshold`) is busy: a command allowed then
/// (`ALLOW_BUSY`: SCRIPT KILL, FUNCTION KILL, FUNCTION STATS, SHUTDOWN, MULTI, ...) runs
/// without the gate; any other is refused with Redis's `-BUSY` (`processCommand`).
#[cold]
fn busy<'s>(ctx: &Ctx<'s>, cmd: &Command) -> Result<crate::services::gate::Pass<'s>, Error> {
    let server = ctx.server();
    if cmd.has(Flags::ALLOW_BUSY) {
        return Ok(server.gate().bypass());
    }
    Err(server.scripting().running().busy_error())
}

/// `redis.call`'s ACL check (Redis's `scriptVerifyACL`): a refusal goes to the ACL LOG with
/// the `lua` context, and the script hears it in Redis's words.
pub(crate) fn script_acl(ctx: &Ctx<'_>, id: usize, cmd: &Command, args: Args<'_>) -> Result<(), String> {
    use crate::services::acl::Reason;
    let Err(d) = crate::model::access::check(ctx.session().login.user(), id, cmd, args) else { return Ok(()) };
    let reason = d.reason;
    let _ = refusal(ctx, cmd, args, d);
    let why = match reason {
        Reason::Command => "can't run this command or subcommand",
        Reason::Key => "can't access at least one of the keys mentioned in the command arguments",
        Reason::Channel => "can't publish to the channel mentioned in the command",
        Reason::Auth => "lacking the permissions for the command",
    };
    Err(format!("The user executing the script {why}"))
}

/// Whether the session's user may run `cmd` (the table's entry `id`) with `args`
/// (`redis.acl_check_cmd`).
pub(crate) fn permits(ctx: &Ctx<'_>, id: usize, cmd: &Command, args: Args<'_>) -> bool {
    crate::model::access::check(ctx.session().login.user(), id, cmd, args).is_ok()
}

/// In RESP2, a subscribed client may only (un)subscribe, PING, QUIT and RESET; in RESP3 it
/// may run anything. A script's commands are not the client's: they always may.
#[inline]
fn allowed_in_subscribe_mode(ctx: &Ctx<'_>, cmd: &Command) -> CmdResult {
    if ctx.protocol() == magpie_protocol::Resp::V3 || !ctx.session().info().pubsub.active() || ctx.session().script {
        return Ok(());
    }
    refuse_in_subscribe_mode(cmd)
}

#[cold]
fn refuse_in_subscribe_mode(cmd: &Command) -> CmdResult {
    if cmd.has(Flags::SUBSCRIBED_OK) {
        return Ok(());
    }
    Err(Error::msg(format!(
        "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in \
         this context",
        cmd.name
    )))
}

/// Runs a write command and queues the record of what it did for the append-only log: its
/// own arguments, or the effects it declared (see [`Ctx::propagate`]); before it, deletions of
/// keys it found expired. Nothing is queued if the command changed nothing.
pub(crate) fn run_logged(ctx: &mut Ctx<'_>, cmd: &'static Command, args: Args<'_>) -> CmdResult {
    if ctx.in_interactive() {
        // Inside BEGIN: the write went to the private copy; keep its effect for COMMIT.
        magpie_store::tap::reset_last_seq();
        let result = (cmd.run)(ctx, args);
        let changed = magpie_store::tap::last_seq() != 0;
        let session = ctx.session_mut();
        let db = session.db();
        if let (true, Some(i)) = (changed, session.txn.interactive.as_mut()) {
            if session.effects.replaced {
                i.log.extend(session.effects.records.iter().map(|r| (db, r.clone())));
            } else {
                i.log.push((db, args.into()));
            }
        }
        return result;
    }
    let server = ctx.server();
    let journal = server.journal();
    if !journal.is_on() {
        // Nothing to log. (The log is turned on only while no command runs: see
        // `Persistence::rewrite`, so a command that saw it off here cannot owe it a record.)
        let result = (cmd.run)(ctx, args);
        expired::log(server.keyspace(), server.pubsub(), journal);
        return result;
    }
    journal.begin();
    magpie_store::tap::reset_last_seq();
    let result = (cmd.run)(ctx, args);
    let seq = magpie_store::tap::last_seq();
    expired::log(server.keyspace(), server.pubsub(), journal);
    if seq != 0 {
        let session = ctx.session_mut();
        let db = session.db();
        let effects = &session.effects;
        if effects.replaced {
            if !effects.records.is_empty() {
                journal.push(seq, db, effects.records.iter().map(|r| r.args().iter()));
            }
        } else {
            journal.push(seq, db, std::iter::once(args.iter()));
        }
        session.note_write(seq);
    }
    journal.end();
    result
}

/// A command refused before it ran (unknown, wrong arity, not allowed now), as Redis's
/// `rejectCommand`: counted, its error is the reply, and it fails the MULTI it was meant for
/// (a refused EXEC aborts the transaction at once).
pub(crate) fn refuse(ctx: &mut Ctx<'_>, args: Args<'_>, e: Error, id: Option<usize>) {
    let e = multi::refused(ctx, args.get(0), e);
    let stats = ctx.stats();
    stats.rejected(id);
    stats.error(&e.0);
    ctx.out().error(&e.0);
}

/// The execution layer as commands see it (see [`Executor`]).
pub(crate) struct Exec;

pub(crate) static EXEC: Exec = Exec;

impl Executor for Exec {
    fn table(&self) -> &'static Table {
        &TABLE
    }

    fn serve_waiters(&self, server: &Server) {
        waiters::serve(server);
    }

    fn run_script(&self, ctx: &mut Ctx<'_>, script: &ScriptRun<'_>, body: &mut ScriptBody<'_>) -> CmdResult {
        scripts::run_script(ctx, script, body)
    }
}
