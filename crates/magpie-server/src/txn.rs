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
//! - **BEGIN/COMMIT/ROLLBACK.** Commands after BEGIN run at once, with real results, on a
//!   private copy of the keys they touch: the first time the transaction touches a key, the key
//!   is watched and copied (or noted absent). So reads see the transaction's own writes and
//!   other clients see none of them. COMMIT runs alone (like EXEC): if any key the transaction
//!   touched, read or written, was changed by anyone else since it was first touched, nothing
//!   is applied and the reply is `-CONFLICT` naming the key; otherwise the keys the transaction
//!   changed are written back and its commands are logged as one record. That is optimistic
//!   concurrency control, and committed transactions are serializable: each behaves as if it
//!   ran alone at its COMMIT. ROLLBACK, a disconnect, or going over the size and age limits
//!   throws the copy away.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use magpie_protocol::Args;
use magpie_store::{Key, Keyspace, Slot};
use parking_lot::Mutex;

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
    /// Between BEGIN and COMMIT/ROLLBACK.
    pub interactive: Option<Box<Interactive>>,
}

/// An interactive transaction in progress.
pub struct Interactive {
    /// The private copy: every database, one shard each.
    pub ks: Arc<Keyspace>,
    /// Each key touched: its version in the server's keyspace when first touched, whether it
    /// was held but expired then, and its version in the copy right after copying (a later
    /// version there means the transaction changed it).
    touched: HashMap<(usize, Key), Touch>,
    /// What the transaction's writes did, to log at COMMIT: (database, command).
    pub log: Vec<(usize, Vec<Vec<u8>>)>,
    /// Keys to signal and keyspace events to raise at COMMIT (they name changes nobody else
    /// may see before).
    pub deferred: Mutex<Deferred>,
    started: Instant,
    /// Set when the transaction was rolled back by the server (too big, too old): commands
    /// get this error until the client ends it with ROLLBACK or COMMIT.
    aborted: Option<String>,
}

#[derive(Default)]
pub struct Deferred {
    pub signals: Vec<(usize, Box<[u8]>)>,
    pub events: Vec<(u32, &'static str, usize, Box<[u8]>)>,
}

struct Touch {
    version: u64,
    expired: bool,
    private_version: u64,
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
        if let Some(i) = self.interactive.take() {
            release(shared, &i);
        }
    }

    /// When the server will roll the interactive transaction back if it is still open.
    pub fn deadline(&self, shared: &Shared) -> Option<Instant> {
        let i = self.interactive.as_ref()?;
        if i.aborted.is_some() {
            return None;
        }
        Some(i.started + Duration::from_secs(shared.settings.txn_timeout()))
    }

    /// Rolls an interactive transaction back for being older than its limit (called by the
    /// connection when the deadline passes while the client is idle).
    pub fn expire(&mut self, shared: &Shared) {
        if let Some(i) = self.interactive.as_mut()
            && i.aborted.is_none()
        {
            abort(shared, i, format!("older than {} seconds (txn-timeout)", shared.settings.txn_timeout()));
        }
    }
}

/// The commands that run at once inside MULTI rather than being queued (as in Redis), and the
/// transaction commands that refuse to run inside it.
fn runs_in_multi(cmd: &Command) -> bool {
    matches!(
        cmd.name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset" | "begin" | "start" | "commit" | "rollback"
    )
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
    if ctx.client.txn.interactive.is_some() {
        return Err("ERR MULTI is not allowed inside BEGIN".into());
    }
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
    if ctx.client.txn.interactive.is_some() {
        return Err("ERR WATCH is not allowed inside BEGIN (every key a transaction touches is watched)".into());
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
    journal.begin();
    journal.start_group();
    let mode = std::mem::replace(&mut ctx.wait.mode, Mode::NoBlock);
    ctx.out.array(multi.queued.len());
    for q in &multi.queued {
        command::dispatch(ctx, Args::new(&q.buf, &q.spans));
    }
    ctx.wait.mode = mode;
    let seq = journal.finish_group();
    if seq != 0 {
        ctx.client.wrote = ctx.client.wrote.max(seq);
    }
    journal.end();
    // Clients blocked on keys the transaction filled are served now that it is whole.
    if ctx.shared.blocking.has_ready() {
        ctx.shared.blocking.serve(ctx.shared);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Interactive transactions

/// Whether a command may run inside BEGIN, and if not why. Commands that read or write the
/// whole keyspace (KEYS, SCAN, FLUSHALL, ...) have no keys to copy; blocking ones would wait on
/// the copy forever.
fn refused_inside_begin(cmd: &Command, args: Args<'_>) -> Option<Error> {
    if cmd.has(flags::BLOCKING) {
        return Some(Error::msg(format!(
            "ERR {} is a blocking command, not allowed inside BEGIN",
            cmd.name.to_uppercase()
        )));
    }
    let data = cmd.has(flags::READONLY) || cmd.has(flags::WRITE);
    let keyed = cmd.keys.0 > 0 || cmd.numkeys > 0;
    if data && !keyed {
        return Some(Error::msg(format!(
            "ERR {} reads or writes the whole keyspace, not allowed inside BEGIN",
            cmd.name.to_uppercase()
        )));
    }
    if cmd.name == "copy" && args.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"db")) {
        return Some("ERR COPY to another database is not allowed inside BEGIN".into());
    }
    None
}

/// The transaction commands, which run as themselves inside BEGIN (and refuse what makes no
/// sense there), not on the private copy.
pub fn controls(cmd: &Command) -> bool {
    runs_in_multi(cmd) || cmd.name == "unwatch"
}

/// BEGIN (and its alias START).
pub fn begin(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if ctx.client.txn.multi.is_some() {
        return Err("ERR BEGIN is not allowed inside MULTI".into());
    }
    if ctx.client.txn.interactive.is_some() {
        return Err("ERR BEGIN calls can not be nested".into());
    }
    let ks = Keyspace::new(ctx.shared.keyspace.db_count(), 1);
    // Changes in the copy are numbered, so that a command's changes there are seen (and its
    // effect kept for the log); the copy has its own sequence.
    ks.tap().set_ordering(true);
    ctx.client.txn.interactive = Some(Box::new(Interactive {
        ks: Arc::new(ks),
        touched: HashMap::new(),
        log: Vec::new(),
        deferred: Mutex::default(),
        started: Instant::now(),
        aborted: None,
    }));
    ctx.out.ok();
    Ok(())
}

/// Runs a command inside BEGIN, on the private copy; called by dispatch for every command
/// but the transaction commands themselves. Returns None when the command ran (its reply is
/// written), or the error to reply with.
pub fn run_inside(ctx: &mut Ctx<'_>, cmd: &'static Command, args: Args<'_>) -> Option<Error> {
    let shared = ctx.shared;
    let i = ctx.client.txn.interactive.as_mut()?;
    if let Some(why) = &i.aborted {
        return Some(Error::msg(format!("ERR the transaction was rolled back: {why}; send ROLLBACK")));
    }
    let settings = &shared.settings;
    if i.started.elapsed() > Duration::from_secs(settings.txn_timeout()) {
        let why = format!("older than {} seconds (txn-timeout)", settings.txn_timeout());
        abort(shared, i, why.clone());
        return Some(Error::msg(format!("ERR the transaction was rolled back: {why}; send ROLLBACK")));
    }
    if let Some(e) = refused_inside_begin(cmd, args) {
        return Some(e);
    }
    // Copy every key the command names that the transaction has not touched yet.
    let db = ctx.client.db;
    for key in cmd.keys_in(args) {
        if i.touched.contains_key(&(db, Key::new(key))) {
            continue;
        }
        let mut real = shared.keyspace.db(db).write(key);
        let version = real.watch(key);
        let expired = real.is_expired(key, ctx.now);
        let entry = real.get(key, ctx.now).cloned();
        drop(real);
        let mut copy = i.ks.db(db).write(key);
        if let Some(e) = entry {
            let expire_at = e.expire_at();
            copy.insert(key, e.value, expire_at, ctx.now);
        }
        let private_version = copy.watch(key);
        drop(copy);
        i.touched.insert((db, Key::new(key)), Touch { version, expired, private_version });
    }
    let max_keys = settings.txn_max_keys();
    if i.touched.len() > max_keys {
        let why = format!("it touched more than {max_keys} keys (txn-max-keys)");
        abort(shared, i, why.clone());
        return Some(Error::msg(format!("ERR the transaction was rolled back: {why}; send ROLLBACK")));
    }
    // Run it on the copy.
    let ks = i.ks.clone();
    let mut inner = Ctx {
        shared,
        ks: &ks,
        client: &mut *ctx.client,
        out: &mut *ctx.out,
        now: ctx.now,
        stats: ctx.stats,
        timer: &mut *ctx.timer,
        effects: &mut *ctx.effects,
        wait: &mut *ctx.wait,
    };
    let mode = std::mem::replace(&mut inner.wait.mode, Mode::NoBlock);
    let result =
        if cmd.has(flags::WRITE) { command::run_logged(&mut inner, cmd, args) } else { (cmd.run)(&mut inner, args) };
    inner.wait.mode = mode;
    let max_bytes = settings.txn_max_bytes();
    if let Some(i) = ctx.client.txn.interactive.as_mut() {
        let bytes: u64 = i.ks.dbs().iter().map(|d| d.stats().value_bytes).sum();
        if bytes > max_bytes {
            let why = format!("it holds more than {max_bytes} bytes of values (txn-max-bytes)");
            abort(shared, i, why.clone());
            return Some(Error::msg(format!("ERR the transaction was rolled back: {why}; send ROLLBACK")));
        }
    }
    result.err()
}

/// Stops watching what the transaction touched.
fn release(shared: &Shared, i: &Interactive) {
    for (db, key) in i.touched.keys() {
        shared.keyspace.db(*db).write(key).unwatch(key);
    }
}

/// Rolls the transaction back on the server's initiative: its copy and watches go now; the
/// client learns it from the next command, until it ends the transaction.
fn abort(shared: &Shared, i: &mut Interactive, why: String) {
    release(shared, i);
    i.touched.clear();
    i.log.clear();
    i.ks = Arc::new(Keyspace::new(1, 1));
    i.aborted = Some(why);
}

pub fn rollback(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let Some(i) = ctx.client.txn.interactive.take() else { return Err("ERR ROLLBACK without BEGIN".into()) };
    release(ctx.shared, &i);
    ctx.out.ok();
    Ok(())
}

/// COMMIT. Dispatch holds the gate exclusively for it.
pub fn commit(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let Some(i) = ctx.client.txn.interactive.take() else { return Err("ERR COMMIT without BEGIN".into()) };
    let shared = ctx.shared;
    if let Some(why) = &i.aborted {
        return Err(Error::msg(format!("ERR the transaction was rolled back: {why}")));
    }
    // Validate: nothing the transaction touched has changed since.
    let conflict = i.touched.iter().find(|((db, key), t)| {
        let shard = shared.keyspace.db(*db).read(key);
        shard.watch_version(key) != Some(t.version) || (!t.expired && shard.is_expired(key, ctx.now))
    });
    if let Some(((db, key), _)) = conflict {
        let mut msg = b"CONFLICT the transaction was rolled back: key '".to_vec();
        msg.extend_from_slice(&key[..key.len().min(128)]);
        msg.extend_from_slice(format!("' (db {db}) was changed by another client; try again").as_bytes());
        release(shared, &i);
        return Err(Error::bytes(msg));
    }
    // Apply what changed, log it whole, then let go.
    let journal = shared.persistence.journal.clone();
    journal.begin();
    magpie_store::tap::reset_last_seq();
    for ((db, key), t) in &i.touched {
        let copied = i.ks.db(*db).read(key);
        if copied.watch_version(key) == Some(t.private_version) {
            continue; // only read
        }
        let entry = copied.get(key, ctx.now).cloned();
        drop(copied);
        let mut real = shared.keyspace.db(*db).write(key);
        let expire_at = entry.as_ref().and_then(|e| e.expire_at());
        match (entry, real.slot(key, ctx.now)) {
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
    command::log_expired(shared);
    if seq != 0 && !i.log.is_empty() {
        journal.start_group();
        for (db, args) in &i.log {
            journal.push(seq, *db, std::iter::once(args.iter().map(Vec::as_slice)));
        }
        journal.finish_group();
        ctx.client.wrote = ctx.client.wrote.max(seq);
    }
    journal.end();
    release(shared, &i);
    let deferred = std::mem::take(&mut *i.deferred.lock());
    for (db, key) in deferred.signals {
        shared.blocking.signal(db, &key);
    }
    for (class, event, db, key) in deferred.events {
        command::raise(shared, class, event, db, &key);
    }
    if shared.blocking.has_ready() {
        shared.blocking.serve(shared);
    }
    ctx.out.ok();
    Ok(())
}
