//! Transactions: Redis's MULTI/EXEC/DISCARD/WATCH/UNWATCH, exactly; and interactive
//! transactions that roll back (BEGIN/COMMIT/ROLLBACK), Magpie's own.
//!
//! - **MULTI/EXEC.** Commands after MULTI are checked (name, arity) and queued; EXEC runs them
//!   all with the gate held exclusively (see `gate.rs`), so no other client sees a state in the
//!   middle, and logs them as one record, so a crash never replays half of them. Blocking
//!   commands inside do not block. Clients blocked on keys the transaction filled are served
//!   after it.
//! - **WATCH.** A watched key holds a version in its shard that every change moves (see
//!   `Shard::watch`); EXEC compares the versions, and also fails if a watched key that was
//!   alive at WATCH has expired since, as Redis 7.0 does.

use magpie_protocol::Args;

use crate::blocking::Mode;
use crate::command::{self, Command, Ctx, flags};
use crate::error::{CmdResult, Error};
use crate::server::Shared;

/// A connection's transaction state.
#[derive(Default)]
pub struct TxnState {
    /// Between MULTI and EXEC/DISCARD.
    pub multi: Option<Multi>,
    /// Keys watched (WATCH), until EXEC, DISCARD, UNWATCH or RESET.
    pub watched: Vec<Watched>,
}

/// The commands queued after MULTI.
#[derive(Default)]
pub struct Multi {
    queued: Vec<Queued>,
    /// A command was refused while queueing: EXEC will fail with EXECABORT.
    failed: bool,
}

/// A queued command's arguments.
struct Queued {
    buf: Vec<u8>,
    spans: Vec<(usize, usize)>,
}

/// A watched key and its version when it was watched.
pub struct Watched {
    db: usize,
    key: Box<[u8]>,
    version: u64,
    /// It was held but already expired when watched.
    expired: bool,
}

impl TxnState {
    /// Lets go of everything (disconnect, RESET).
    pub fn clear(&mut self, shared: &Shared) {
        self.multi = None;
        unwatch_all(shared, &mut self.watched);
    }
}

/// The commands that run at once inside MULTI rather than being queued (as in Redis).
fn runs_in_multi(cmd: &Command) -> bool {
    matches!(cmd.name, "exec" | "discard" | "multi" | "watch" | "quit" | "reset")
}

/// Called by dispatch for every command while the client is in MULTI: queues it (replying
/// QUEUED), or refuses it and marks the transaction failed. Returns false for the commands
/// that run at once.
pub fn queue(ctx: &mut Ctx<'_>, cmd: &'static Command, args: Args<'_>) -> Result<bool, Error> {
    if runs_in_multi(cmd) {
        return Ok(false);
    }
    let Some(multi) = ctx.client.txn.multi.as_mut() else { return Ok(false) };
    let refusal = if cmd.has(flags::NO_MULTI) {
        Some(Error::from("ERR Command not allowed inside a transaction"))
    } else if cmd.has(flags::WRITE) {
        ctx.shared.persistence.deny_writes(ctx.shared)
    } else {
        None
    };
    if let Some(e) = refusal {
        multi.failed = true;
        return Err(e);
    }
    let mut buf = Vec::with_capacity(args.iter().map(<[u8]>::len).sum());
    let mut spans = Vec::with_capacity(args.len());
    for a in args.iter() {
        spans.push((buf.len(), buf.len() + a.len()));
        buf.extend_from_slice(a);
    }
    multi.queued.push(Queued { buf, spans });
    ctx.out.simple("QUEUED");
    Ok(true)
}

/// A command refused before it ran (unknown, wrong arity) fails the transaction it was meant
/// for, as in Redis; a refused EXEC discards the transaction at once and says why.
pub fn refused(shared: &Shared, client: &mut crate::client::Client, name: &[u8], e: Error) -> Error {
    if name.eq_ignore_ascii_case(b"exec") {
        client.txn.multi = None;
        unwatch_all(shared, &mut client.txn.watched);
        let why = e.0.strip_prefix(b"ERR ").unwrap_or(&e.0);
        let mut msg = b"EXECABORT Transaction discarded because of: ".to_vec();
        msg.extend_from_slice(why);
        return Error::bytes(msg);
    }
    if let Some(multi) = client.txn.multi.as_mut() {
        multi.failed = true;
    }
    e
}

pub fn multi(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if ctx.client.txn.multi.is_some() {
        return Err("ERR MULTI calls can not be nested".into());
    }
    ctx.client.txn.multi = Some(Multi::default());
    ctx.out.ok();
    Ok(())
}

pub fn discard(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if ctx.client.txn.multi.take().is_none() {
        return Err("ERR DISCARD without MULTI".into());
    }
    unwatch_all(ctx.shared, &mut ctx.client.txn.watched);
    ctx.out.ok();
    Ok(())
}

pub fn watch(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if ctx.client.txn.multi.is_some() {
        return Err("ERR WATCH inside MULTI is not allowed".into());
    }
    let db = ctx.client.db;
    for key in args.iter().skip(1) {
        if ctx.client.txn.watched.iter().any(|w| w.db == db && *w.key == *key) {
            continue;
        }
        let mut shard = ctx.shared.keyspace.db(db).write(key);
        let version = shard.watch(key);
        let expired = shard.is_expired(key, ctx.now);
        drop(shard);
        ctx.client.txn.watched.push(Watched { db, key: key.into(), version, expired });
    }
    ctx.out.ok();
    Ok(())
}

pub fn unwatch(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    unwatch_all(ctx.shared, &mut ctx.client.txn.watched);
    ctx.out.ok();
    Ok(())
}

fn unwatch_all(shared: &Shared, watched: &mut Vec<Watched>) {
    for w in watched.drain(..) {
        shared.keyspace.db(w.db).write(&w.key).unwatch(&w.key);
    }
}

/// Whether a watched key was changed since it was watched (or expired since, if it was alive).
fn any_changed(shared: &Shared, watched: &[Watched], now: u64) -> bool {
    watched.iter().any(|w| {
        let shard = shared.keyspace.db(w.db).read(&w.key);
        shard.watch_version(&w.key) != Some(w.version) || (!w.expired && shard.is_expired(&w.key, now))
    })
}

/// EXEC. Dispatch holds the gate exclusively for it (the command is marked so).
pub fn exec(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let Some(multi) = ctx.client.txn.multi.take() else { return Err("ERR EXEC without MULTI".into()) };
    let changed = any_changed(ctx.shared, &ctx.client.txn.watched, ctx.now);
    unwatch_all(ctx.shared, &mut ctx.client.txn.watched);
    if multi.failed {
        return Err("EXECABORT Transaction discarded because of previous errors.".into());
    }
    if changed {
        ctx.out.null_array();
        return Ok(());
    }
    let journal = ctx.shared.persistence.journal.clone();
    let slot = journal.begin();
    journal.start_group();
    let mode = std::mem::replace(&mut ctx.wait.mode, Mode::NoBlock);
    ctx.out.array(multi.queued.len());
    for q in &multi.queued {
        command::dispatch(ctx, Args::new(&q.buf, &q.spans));
    }
    ctx.wait.mode = mode;
    let seq = journal.finish_group(&slot);
    if seq != 0 {
        ctx.client.wrote = ctx.client.wrote.max(seq);
    }
    journal.end(&slot);
    // Clients blocked on keys the transaction filled are served now that it is whole.
    if ctx.shared.blocking.has_ready() {
        ctx.shared.blocking.serve(ctx.shared);
    }
    Ok(())
}
