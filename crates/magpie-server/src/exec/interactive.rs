//! Interactive transactions that roll back (BEGIN/COMMIT/ROLLBACK), Magpie's own.
//!
//! Commands after BEGIN run at once, with real results, on a private copy of the keys they
//! touch: the first time the transaction touches a key, the key is watched and copied (or noted
//! absent). So reads see the transaction's own writes and other clients see none of them.
//! COMMIT runs alone (like EXEC): if any key the transaction touched, read or written, was
//! changed by anyone else since it was first touched, nothing is applied and the reply is
//! `-CONFLICT` naming the key; otherwise the keys the transaction changed are written back and
//! its commands are logged as one record. That is optimistic concurrency control, and
//! committed transactions are serializable: each behaves as if it ran alone at its COMMIT.
//! ROLLBACK, a disconnect, or going over the size and age limits throws the copy away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use magpie_protocol::Args;
use magpie_store::{Key, Keyspace, Slot};

use super::waiters;
use crate::core::error::{CmdResult, Error};
use crate::model::session::{Interactive, Touch, abort, release};
use crate::model::{Command, Ctx, Flags, Mode};
use crate::services::expired;

/// Whether a command may run inside BEGIN, and if not why. Commands that read or write the
/// whole keyspace (KEYS, SCAN, FLUSHALL, ...) have no keys to copy; blocking ones would wait on
/// the copy forever (a script's do not block: they run as their non-blocking form).
fn refused_inside_begin(cmd: &Command, script: bool) -> Option<Error> {
    if cmd.has(Flags::BLOCKING) && !script {
        return Some(Error::msg(format!(
            "ERR {} is a blocking command, not allowed inside BEGIN",
            cmd.name.to_uppercase()
        )));
    }
    let data = cmd.has(Flags::READONLY) || cmd.has(Flags::WRITE);
    if data && !cmd.has_keys() {
        return Some(Error::msg(format!(
            "ERR {} reads or writes the whole keyspace, not allowed inside BEGIN",
            cmd.name.to_uppercase()
        )));
    }
    None
}

/// The transaction commands, which run as themselves inside BEGIN (and refuse what makes no
/// sense there), not on the private copy.
pub(super) fn controls(cmd: &Command) -> bool {
    cmd.flags.intersects(Flags::NOT_QUEUED.union(Flags::BEGIN_CONTROL))
}

/// BEGIN (and its alias START).
pub(super) fn begin(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let dbs = ctx.server().keyspace().db_count();
    let txn = &mut ctx.session_mut().txn;
    if txn.multi.is_some() {
        return Err("ERR BEGIN is not allowed inside MULTI".into());
    }
    if txn.interactive.is_some() {
        return Err("ERR BEGIN calls can not be nested".into());
    }
    let ks = Keyspace::new(dbs, 1);
    // Changes in the copy are numbered, so that a command's changes there are seen (and its
    // effect kept for the log); the copy has its own sequence.
    ks.tap().set_ordering(true);
    txn.interactive = Some(Box::new(Interactive {
        ks: Arc::new(ks),
        touched: HashMap::new(),
        log: Vec::new(),
        deferred: Mutex::default(),
        started: Instant::now(),
        aborted: None,
    }));
    ctx.out().ok();
    Ok(())
}

fn rolled_back(why: &str) -> Error {
    Error::msg(format!("ERR the transaction was rolled back: {why}; send ROLLBACK"))
}

/// Runs a command inside BEGIN, on the private copy; called by dispatch for every command
/// but the transaction commands themselves. Returns None when the command ran (its reply is
/// written), or the error to reply with.
pub(super) fn run_inside(ctx: &mut Ctx<'_>, cmd: &'static Command, args: Args<'_>) -> Option<Error> {
    let (server, now) = (ctx.server(), ctx.now());
    let (real_ks, settings) = (server.keyspace(), server.settings());
    let session = ctx.session_mut();
    let db = session.db();
    let i = session.txn.interactive.as_mut()?;
    if let Some(why) = &i.aborted {
        return Some(rolled_back(why));
    }
    if i.started.elapsed() > Duration::from_secs(settings.txn_timeout()) {
        let why = format!("older than {} seconds (txn-timeout)", settings.txn_timeout());
        abort(real_ks, i, why.clone());
        return Some(rolled_back(&why));
    }
    if let Some(e) = refused_inside_begin(cmd, session.script) {
        return Some(e);
    }
    // Copy every key the command names that the transaction has not touched yet.
    for key in cmd.keys_in(args) {
        if i.touched.contains_key(&(db, Key::new(key))) {
            continue;
        }
        let mut real = real_ks.db(db).write(key);
        let version = real.watch(key);
        let expired = real.is_expired(key, now);
        let entry = real.get(key, now).map(|e| e.to_entry());
        drop(real);
        let mut copy = i.ks.db(db).write(key);
        if let Some(e) = entry {
            let expire_at = e.expire_at();
            copy.insert(key, e.value, expire_at, now);
        }
        let private_version = copy.watch(key);
        drop(copy);
        i.touched.insert((db, Key::new(key)), Touch { version, expired, private_version });
    }
    let max_keys = settings.txn_max_keys();
    if i.touched.len() > max_keys {
        let why = format!("it touched more than {max_keys} keys (txn-max-keys)");
        abort(real_ks, i, why.clone());
        return Some(rolled_back(&why));
    }
    // Run it on the copy.
    let ks = i.ks.clone();
    let mode = std::mem::replace(&mut session.wait.mode, Mode::NoBlock);
    let result = ctx.on_keyspace(&ks, |inner| {
        if cmd.has(Flags::WRITE) { super::run_logged(inner, cmd, args) } else { (cmd.run)(inner, args) }
    });
    let session = ctx.session_mut();
    session.wait.mode = mode;
    let max_bytes = settings.txn_max_bytes();
    if let Some(i) = session.txn.interactive.as_mut() {
        let bytes: u64 = i.ks.dbs().iter().map(|d| d.stats().value_bytes).sum();
        if bytes > max_bytes {
            let why = format!("it holds more than {max_bytes} bytes of values (txn-max-bytes)");
            abort(real_ks, i, why.clone());
            return Some(rolled_back(&why));
        }
    }
    result.err()
}

pub(super) fn rollback(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let ks = ctx.server().keyspace();
    let Some(i) = ctx.session_mut().txn.interactive.take() else { return Err("ERR ROLLBACK without BEGIN".into()) };
    release(ks, &i);
    ctx.out().ok();
    Ok(())
}

/// COMMIT. Dispatch holds the gate exclusively for it.
pub(super) fn commit(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let (server, now) = (ctx.server(), ctx.now());
    let ks = server.keyspace();
    let Some(i) = ctx.session_mut().txn.interactive.take() else { return Err("ERR COMMIT without BEGIN".into()) };
    if let Some(why) = &i.aborted {
        return Err(Error::msg(format!("ERR the transaction was rolled back: {why}")));
    }
    // Validate: nothing the transaction touched has changed since.
    let conflict = i.touched.iter().find(|((db, key), t)| {
        let shard = ks.db(*db).read(key);
        shard.watch_version(key) != Some(t.version) || (!t.expired && shard.is_expired(key, now))
    });
    if let Some(((db, key), _)) = conflict {
        let mut msg = b"CONFLICT the transaction was rolled back: key '".to_vec();
        msg.extend_from_slice(&key[..key.len().min(128)]);
        msg.extend_from_slice(format!("' (db {db}) was changed by another client; try again").as_bytes());
        release(ks, &i);
        return Err(Error::bytes(msg));
    }
    // Apply what changed, log it whole, then let go.
    let journal = server.journal().clone();
    journal.begin();
    magpie_store::tap::reset_last_seq();
    for ((db, key), t) in &i.touched {
        let copied = i.ks.db(*db).read(key);
        if copied.watch_version(key) == Some(t.private_version) {
            continue; // only read
        }
        let entry = copied.get(key, now).map(|e| e.to_entry());
        drop(copied);
        let mut real = ks.db(*db).write(key);
        let expire_at = entry.as_ref().and_then(magpie_store::Entry::expire_at);
        match (entry, real.slot(key, now)) {
            (Some(e), Slot::Live(mut live)) => {
                live.replace(e.value, expire_at);
            }
            (Some(e), Slot::Empty(empty)) => empty.insert(e.value, expire_at),
            (None, Slot::Live(live)) => {
                live.remove();
            }
            (None, Slot::Empty(_)) => {}
        }
    }
    let seq = magpie_store::tap::last_seq();
    expired::log(ks, server.pubsub(), &journal);
    if seq != 0 && !i.log.is_empty() {
        journal.start_group();
        for (db, args) in &i.log {
            journal.push(seq, *db, std::iter::once(args.args().iter()));
        }
        journal.finish_group();
        ctx.session_mut().note_write(seq);
    }
    journal.end();
    release(ks, &i);
    let deferred = std::mem::take(&mut *i.deferred.lock());
    for (class, event, db, key) in deferred.events {
        server.pubsub().keyspace_event(class, event, &key, db);
    }
    if server.blocking().has_ready() {
        waiters::serve(server);
    }
    ctx.out().ok();
    Ok(())
}
