//! Redis's transactions, exactly: MULTI/EXEC/DISCARD/WATCH/UNWATCH.
//!
//! - **MULTI/EXEC.** Commands after MULTI are checked (name, arity, what may not be queued) and
//!   queued; EXEC runs them all so that no other client sees a state in the middle, and logs
//!   them as one record, so a crash never replays half of them. Blocking commands inside do
//!   not block. Clients blocked on keys the transaction filled are served after it.
//! - **Holding only the declared keys.** When every queued command names every key it touches
//!   (see [`declares_keys`]) and the client does not track keys, EXEC holds the shards of
//!   those keys and of the watched keys (`Keyspace::hold`, in the keyspace's lock order) and
//!   only the read side of the gate: commands on other shards go on meanwhile, commands on
//!   its shards wait for the end. Otherwise (a script, SELECT, a keyless command, SORT's
//!   patterns, ...) it holds the gate exclusively (see `services::gate`), as before: nothing
//!   else runs. The choice is made as commands are queued, so dispatch knows it before EXEC
//!   takes the gate ([`holds_keys_only`]).
//! - **WATCH.** A watched key holds a version in its shard that every change moves (see
//!   `Shard::watch`); EXEC compares the versions, and also fails if a watched key that was
//!   alive at WATCH has expired since, as Redis 7.0 does.

use magpie_protocol::{ArgVec, Args};
use magpie_store::Keyspace;

use super::waiters;
use crate::core::error::{CmdResult, Error};
use crate::model::flags::Acl;
use crate::model::keyspec::key_positions;
use crate::model::session::{Multi, Session, Watched, unwatch_all};
use crate::model::{Command, Ctx, Flags, Mode};

/// Whether `cmd`, called with `args`, touches only the keys its key specs name, in the
/// session's database, and nothing else of the keyspace: a command that reads or writes keys,
/// whose specs find every key of this call (none incomplete or unknown), and that is none of
/// those that reach further: scripts (they may touch any key), administration, `@dangerous`
/// commands (SORT's BY and GET patterns, RESTORE, ...), MOVE and COPY (another database),
/// commands that run alone or wait on the network. Keyless commands (SELECT, FLUSHALL, KEYS,
/// SWAPDB, PING, ...) never do.
pub(super) fn declares_keys(cmd: &Command, args: Args<'_>) -> bool {
    let beyond = Flags::ADMIN
        .union(Flags::NOSCRIPT)
        .union(Flags::PUBSUB)
        .union(Flags::RUNS_ALONE)
        .union(Flags::NETWORK)
        .union(Flags::LOGS_EFFECTS)
        .union(Flags::UNDECLARED_KEYS);
    cmd.flags.intersects(Flags::READONLY.union(Flags::WRITE))
        && !cmd.flags.intersects(beyond)
        && !cmd.acl.intersects(Acl::DANGEROUS.union(Acl::SCRIPTING))
        && cmd.has_keys()
        && key_positions(cmd.key_specs, args, |_, _| {}).is_ok()
}

/// Whether the EXEC `cmd` of `session` holds only its keys' shards (and the read side of the
/// gate) rather than the whole gate: its transaction declared every key (see
/// [`declares_keys`]), was not refused, and the client does not track keys (tracking may
/// forget keys of any shard when its table is full). Dispatch and EXEC ask the same question.
#[inline]
pub(super) fn holds_keys_only(session: &Session, cmd: &Command) -> bool {
    cmd.has(Flags::MAY_HOLD_KEYS)
        && session.txn.multi.as_ref().is_some_and(|m| m.declared && !m.failed)
        && !session.info().control.tracking_on()
}

/// Called by dispatch for every command while the client is in MULTI: queues it (replying
/// QUEUED), or says why it is refused (dispatch then fails the transaction). Returns false for the commands
/// that run at once (flagged `NOT_QUEUED`: Redis's EXEC, DISCARD, MULTI, WATCH, QUIT, RESET,
/// and the interactive transaction commands, which refuse to run inside MULTI). A command
/// flagged `no_multi` is refused here, at queue time, as Redis refuses it.
pub(super) fn queue(ctx: &mut Ctx<'_>, cmd: &'static Command, args: Args<'_>) -> Result<bool, Error> {
    if cmd.has(Flags::NOT_QUEUED) {
        return Ok(false);
    }
    let refusal = if cmd.has(Flags::NO_MULTI) {
        Some(Error::from("ERR Command not allowed inside a transaction"))
    } else if cmd.has(Flags::WRITE) {
        ctx.server().persistence().deny_writes()
    } else {
        None
    };
    if let Some(e) = refusal {
        return Err(e); // dispatch refuses it, which fails the transaction
    }
    let declared = declares_keys(cmd, args);
    let Some(multi) = ctx.session_mut().txn.multi.as_mut() else { return Ok(false) };
    multi.declared &= declared;
    multi.queued.push(ArgVec::from_args(args));
    ctx.out().simple("QUEUED");
    Ok(true)
}

/// A command refused before it ran (unknown, wrong arity) fails the transaction it was meant
/// for, as in Redis; a refused EXEC discards the transaction at once and says why.
pub(super) fn refused(ctx: &mut Ctx<'_>, name: &[u8], e: Error) -> Error {
    let ks = ctx.server().keyspace();
    let txn = &mut ctx.session_mut().txn;
    if name.eq_ignore_ascii_case(b"exec") {
        txn.multi = None;
        unwatch_all(ks, &mut txn.watched);
        let why = e.0.strip_prefix(b"ERR ").unwrap_or(&e.0);
        let mut msg = b"EXECABORT Transaction discarded because of: ".to_vec();
        msg.extend_from_slice(why);
        return Error::bytes(msg);
    }
    if let Some(multi) = txn.multi.as_mut() {
        multi.failed = true;
    }
    e
}

pub(super) fn multi(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let txn = &mut ctx.session_mut().txn;
    if txn.interactive.is_some() {
        return Err("ERR MULTI is not allowed inside BEGIN".into());
    }
    if txn.multi.is_some() {
        return Err("ERR MULTI calls can not be nested".into());
    }
    txn.multi = Some(Multi { declared: true, ..Multi::default() });
    ctx.out().ok();
    Ok(())
}

pub(super) fn discard(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let ks = ctx.server().keyspace();
    let txn = &mut ctx.session_mut().txn;
    if txn.multi.take().is_none() {
        return Err("ERR DISCARD without MULTI".into());
    }
    unwatch_all(ks, &mut txn.watched);
    ctx.out().ok();
    Ok(())
}

pub(super) fn watch(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (ks, now) = (ctx.server().keyspace(), ctx.now());
    let session = ctx.session_mut();
    if session.txn.multi.is_some() {
        return Err("ERR WATCH inside MULTI is not allowed".into());
    }
    if session.txn.interactive.is_some() {
        return Err("ERR WATCH is not allowed inside BEGIN (every key a transaction touches is watched)".into());
    }
    let db = session.db();
    for key in args.iter().skip(1) {
        if session.txn.watched.iter().any(|w| w.db == db && *w.key == *key) {
            continue;
        }
        let mut shard = ks.db(db).write(key);
        let version = shard.watch(key);
        let expired = shard.is_expired(key, now);
        drop(shard);
        session.txn.watched.push(Watched { db, key: key.into(), version, expired });
    }
    ctx.out().ok();
    Ok(())
}

pub(super) fn unwatch(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let ks = ctx.server().keyspace();
    unwatch_all(ks, &mut ctx.session_mut().txn.watched);
    ctx.out().ok();
    Ok(())
}

/// Whether a watched key was changed since it was watched (or expired since, if it was alive).
fn any_changed(ks: &Keyspace, watched: &[Watched], now: u64) -> bool {
    watched.iter().any(|w| {
        let shard = ks.db(w.db).read(&w.key);
        shard.watch_version(&w.key) != Some(w.version) || (!w.expired && shard.is_expired(&w.key, now))
    })
}

/// The keys a transaction holds (see [`holds_keys_only`]): each queued command's, in the
/// session's database `db`, and the watched ones, so that the WATCH check and the commands are
/// one atomic step.
fn held_keys_of<'a>(queued: &'a [ArgVec], watched: &'a [Watched], db: usize) -> Vec<(usize, &'a [u8])> {
    let mut keys: Vec<(usize, &[u8])> = watched.iter().map(|w| (w.db, &*w.key)).collect();
    for q in queued {
        let args = q.args();
        if let Ok((_, cmd)) = super::TABLE.resolve(args) {
            // Checked when it was queued (`declares_keys`): the positions are there.
            let _ = key_positions(cmd.key_specs, args, |i, _| keys.push((db, args.get(i))));
        }
    }
    keys
}

/// EXEC. Dispatch holds the gate exclusively for it (the command is marked so), or, when the
/// transaction declared its keys, only the read side: then EXEC holds their shards (see the
/// module's doc).
pub(super) fn exec(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (server, now) = (ctx.server(), ctx.now());
    let ks = server.keyspace();
    let cmd = ctx.table().resolve(args).map(|(_, c)| c).ok();
    let hold = cmd.is_some_and(|c| holds_keys_only(ctx.session(), c));
    let db = ctx.session().db();
    let txn = &mut ctx.session_mut().txn;
    let Some(multi) = txn.multi.take() else { return Err("ERR EXEC without MULTI".into()) };
    // Until the transaction's last record is queued: every other thread's access to these
    // shards waits, and this thread's commands borrow them (`Keyspace::hold`).
    let held = hold.then(|| ks.hold(held_keys_of(&multi.queued, &txn.watched, db)));
    let changed = any_changed(ks, &txn.watched, now);
    unwatch_all(ks, &mut txn.watched);
    if multi.failed {
        return Err("EXECABORT Transaction discarded because of previous errors.".into());
    }
    if changed {
        ctx.out().null_array();
        return Ok(());
    }
    let journal = server.journal().clone();
    journal.begin();
    journal.start_group();
    let mode = std::mem::replace(&mut ctx.session_mut().wait.mode, Mode::NoBlock);
    ctx.out().array(multi.queued.len());
    // Each queued command is checked again (its user's rules may have changed since).
    ctx.session_mut().txn.executing = true;
    for q in &multi.queued {
        super::dispatch(ctx, q.args());
    }
    ctx.session_mut().txn.executing = false;
    ctx.session_mut().wait.mode = mode;
    let seq = journal.finish_group();
    if seq != 0 {
        ctx.session_mut().note_write(seq);
    }
    journal.end();
    drop(held);
    // Clients blocked on keys the transaction filled are served now that it is whole.
    if server.blocking().has_ready() {
        waiters::serve(server);
    }
    Ok(())
}
