//! The command table's types, dispatch, and the COMMAND command that describes the table.
//!
//! A command is data: name, arity, flags, key positions, documentation and one function.
//! Dispatch, COMMAND INFO/DOCS (and with them redis-cli's hints) all read the same entry.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use magpie_protocol::{Args, Reply};

use crate::blocking::{Mode, Timeout, Wait};
use crate::client::Client;
use crate::cmd::COMMANDS;
use crate::error::{CmdResult, Error};
use crate::server::Shared;
use crate::stats;

/// Everything a command can reach: the server, its own connection, and where its reply goes.
pub struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    /// The keyspace the command works on: the server's, or the private copy of an interactive
    /// transaction (see `crate::txn`). Commands reach keys through this, never through
    /// `shared.keyspace`.
    pub ks: &'a magpie_store::Keyspace,
    pub client: &'a mut Client,
    pub out: &'a mut Reply,
    /// The time this command runs at (ms since the epoch), read once per batch of commands.
    pub now: u64,
    /// This thread's statistics.
    pub stats: &'static stats::Counters,
    /// Times the batch's commands.
    pub timer: &'a mut stats::Timer,
    /// What the running command declared for the log (see [`Ctx::propagate`]); reset by
    /// dispatch before each command.
    pub effects: &'a mut Effects,
    /// Whether the command may block, and what it asked for when it did (see
    /// [`Ctx::block`] and [`crate::blocking`]); reset by dispatch before each command.
    pub wait: &'a mut Wait,
}

/// What a command declares about its effect, beyond its reply.
#[derive(Default, Debug)]
pub struct Effects {
    /// Records to log instead of the command's own arguments (see [`Ctx::propagate`]).
    pub records: Vec<Vec<Vec<u8>>>,
    /// Set by the first [`Ctx::propagate`]: the command's arguments are not logged.
    pub replaced: bool,
}

impl Effects {
    pub fn clear(&mut self) {
        self.records.clear();
        self.replaced = false;
    }
}

impl<'a> Ctx<'a> {
    /// The connection's current database.
    pub fn db(&self) -> &'a magpie_store::Db {
        self.ks.db(self.client.db)
    }

    /// Counts a read of a key that found it or not (INFO's `keyspace_hits`/`keyspace_misses`).
    /// As in Redis, commands count the keys they read, not those they look up to write.
    pub fn hit(&self, found: bool) {
        self.stats.lookup(found);
    }

    /// Tells clients blocked on `key` (of the current database) that it may now hold what
    /// they wait for. Every command that adds elements to a list or sorted set calls it.
    pub fn signal(&self, key: &[u8]) {
        if let Some(i) = &self.client.txn.interactive {
            // Inside BEGIN the change is private until COMMIT, which signals then.
            i.deferred.lock().signals.push((self.client.db, key.into()));
            return;
        }
        self.shared.blocking.signal(self.client.db, key);
    }

    /// Whether clients blocked on `key` were given something (a push signalled them) and are
    /// not served yet. A command that takes elements (LPOP, LMOVE, LREM, ...) checks this with
    /// the key's shard locked; if so it unlocks, calls [`Ctx::serve_waiters`] and looks again,
    /// so that no command takes an element pushed for a waiting client. Always false for the
    /// serving itself (`Retry`) and inside a transaction (`NoBlock`), which must not unlock.
    pub fn waiters_first(&self, key: &[u8]) -> bool {
        self.wait.mode == Mode::MayBlock && self.shared.blocking.is_pending(self.client.db, key)
    }

    /// Serves the clients whose keys were signalled; see [`Ctx::waiters_first`]. Only for
    /// write commands (they run inside [`run_logged`]) that have changed nothing yet.
    pub fn serve_waiters(&self) {
        self.shared.blocking.serve(self.shared);
        // The commands just served ran on this thread, each logged on its own: this one starts
        // its log bracket afresh, or it would take their last change for its own.
        magpie_store::tap::reset_last_seq();
        self.shared.persistence.journal.refresh();
    }

    /// Asks to wait until one of `keys` (of the current database) is signalled, or `timeout`
    /// passes, and then run this command again; for a command that found nothing to serve.
    /// Where the client may not block (inside MULTI), writes `refused` as the reply instead,
    /// as if the timeout had passed at once. See [`crate::blocking`].
    pub fn block<'k>(
        &mut self,
        keys: impl IntoIterator<Item = &'k [u8]>,
        timeout: Timeout,
        refused: fn(&mut Reply),
    ) -> CmdResult {
        match self.wait.mode {
            Mode::NoBlock => refused(self.out),
            Mode::Retry => self.wait.requested = true,
            Mode::MayBlock => {
                self.wait.requested = true;
                self.wait.timeout = timeout;
                for key in keys {
                    // Redis waits once on a key named twice.
                    if !self.wait.keys.iter().any(|k| **k == *key) {
                        self.wait.keys.push(key.into());
                    }
                }
            }
        }
        Ok(())
    }

    /// Says what the append-only log (and, later, replicas) must record for this command,
    /// instead of its own arguments. By default a write command that changed the keyspace is
    /// logged as it was called; a command whose arguments do not determine its effect logs the
    /// effect instead: SPOP as SREM of the members it popped, INCRBYFLOAT as SET of the result,
    /// a relative expiry as an absolute one, a blocking pop as the plain pop it performed. Each
    /// call adds one record, in the current database; a command that calls it and then
    /// changes nothing logs nothing (call it only for effects that happened).
    pub fn propagate(&mut self, record: &[&[u8]]) {
        self.effects.replaced = true;
        self.effects.records.push(record.iter().map(|a| a.to_vec()).collect());
    }

    /// Raises the keyspace event `event` (Redis's name: "lpush", "hset", "del", "expired",
    /// ...) of class `class` (see [`crate::notify`]) for `key` in the current database, after
    /// the change it names. Commands raise the same events as Redis 7.0, in the same order.
    pub fn notify(&mut self, class: u32, event: &'static str, key: &[u8]) {
        self.notify_in(self.client.db, class, event, key);
    }

    /// [`Ctx::notify`] for a key of database `db` (COPY ... DB).
    pub fn notify_in(&mut self, db: usize, class: u32, event: &'static str, key: &[u8]) {
        let pubsub = &self.shared.pubsub;
        if !pubsub.wants(class) {
            return; // one relaxed load when nobody asked for events
        }
        if let Some(i) = &self.client.txn.interactive {
            // Inside BEGIN the change is private until COMMIT, which raises the event then.
            i.deferred.lock().events.push((class, event, db, key.into()));
            return;
        }
        crate::notify::announce_expired(pubsub);
        pubsub.keyspace_event(class, event, key, db);
        crate::pubsub::deliver_own(self);
    }
}

/// Publishes a keyspace event (see [`Ctx::notify`]).
pub fn raise(shared: &Shared, class: u32, event: &'static str, db: usize, key: &[u8]) {
    shared.pubsub.keyspace_event(class, event, key, db);
}

pub type Handler = fn(&mut Ctx<'_>, Args<'_>) -> CmdResult;

/// Command flags (Redis's names, as COMMAND INFO lists them).
pub mod flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const FAST: u32 = 1 << 9;
    pub const NO_AUTH: u32 = 1 << 10;
    pub const NO_ASYNC_LOADING: u32 = 1 << 11;
    pub const NO_MULTI: u32 = 1 << 12;
    /// The keys are found by parsing the arguments (see [`super::Command::numkeys_at`]).
    pub const MOVABLEKEYS: u32 = 1 << 13;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (MOVABLEKEYS, "movablekeys"),
    ];
}

/// Which key-operation counter (INFO's `key_ops_*`) a command adds its keys to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOp {
    None,
    /// Reads of keys (read-only commands).
    Get,
    /// Writes of keys (write commands, except deletes).
    Set,
    /// Deletes (DEL, UNLINK, GETDEL).
    Del,
}

/// One entry of the command table.
pub struct Command {
    /// Lower-case name; a subcommand's is `container|sub` (e.g. `client|setname`), as Redis
    /// names it in errors, COMMAND INFO and CLIENT LIST.
    pub name: &'static str,
    /// Redis's arity: N means exactly N arguments (name included), -N at least N.
    pub arity: i32,
    pub flags: u32,
    /// First key, last key (negative: counted from the end), step. (0, 0, 0): no keys.
    pub keys: (i32, i32, i32),
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    /// Arguments after the name, in a compact notation turned into COMMAND DOCS arguments:
    /// `key`, `name:type`, `TOKEN`, `[optional]`, `(group)`, `a|b` alternatives, `...` repeats.
    pub syntax: &'static str,
    pub run: Handler,
    pub subcommands: &'static [Command],
    /// Follows from `flags` unless marked by [`Command::deletes`].
    pub op: KeyOp,
    /// For commands with `numkeys` (LMPOP, BLMPOP, ZMPOP, ...): the argument that says how
    /// many keys follow it; 0 for the others.
    pub numkeys: usize,
    /// Runs with no other command running (EXEC, COMMIT): see `crate::gate`.
    pub exclusive: bool,
}

impl Command {
    #[allow(clippy::too_many_arguments)]
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u32,
        keys: (i32, i32, i32),
        group: &'static str,
        since: &'static str,
        summary: &'static str,
        syntax: &'static str,
        run: Handler,
    ) -> Command {
        let op = if flags & flags::WRITE != 0 {
            KeyOp::Set
        } else if flags & flags::READONLY != 0 {
            KeyOp::Get
        } else {
            KeyOp::None
        };
        Command {
            name,
            arity,
            flags,
            keys,
            group,
            since,
            summary,
            syntax,
            run,
            subcommands: &[],
            op,
            numkeys: 0,
            exclusive: false,
        }
    }

    /// Marks a command whose keys follow a count at argument `at` (`LMPOP numkeys key ...`):
    /// Redis's `movablekeys`.
    pub const fn numkeys_at(mut self, at: usize) -> Command {
        self.numkeys = at;
        self.flags |= flags::MOVABLEKEYS;
        self
    }

    /// How many keys this call names: from the key positions, and from the `numkeys`
    /// argument for commands that have one.
    pub fn key_count_in(&self, args: Args<'_>) -> usize {
        if self.numkeys == 0 {
            return self.key_count(args.len());
        }
        self.keys_in(args).len()
    }

    /// The keys this call names, in argument order: those at the key positions, then for a
    /// command with `numkeys`, the keys that argument counts (as many as are there).
    pub fn keys_in<'a>(&self, args: Args<'a>) -> Vec<&'a [u8]> {
        let (first, _, step) = self.keys;
        let fixed = self.key_count(args.len());
        let mut keys: Vec<&'a [u8]> = match (usize::try_from(first), usize::try_from(step)) {
            (Ok(first), Ok(step)) if first > 0 && step > 0 => {
                (0..fixed).map(|i| first + i * step).filter(|&i| i < args.len()).map(|i| args.get(i)).collect()
            }
            _ => Vec::new(),
        };
        if self.numkeys > 0 && self.numkeys < args.len() {
            let declared =
                magpie_protocol::parse_i64(args.get(self.numkeys)).and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
            let start = self.numkeys + 1;
            keys.extend(args.iter().skip(start).take(declared.min(args.len() - start)));
        }
        keys
    }

    /// Marks a command that runs alone, with every other command held back (a transaction).
    pub const fn exclusive(mut self) -> Command {
        self.exclusive = true;
        self
    }

    /// Marks a command whose keys count as deleted (INFO's `key_ops_del`).
    pub const fn deletes(mut self) -> Command {
        self.op = KeyOp::Del;
        self
    }

    /// A container command (CLIENT, CONFIG, ...) whose first argument picks a subcommand.
    pub const fn with_subcommands(mut self, subcommands: &'static [Command]) -> Command {
        self.subcommands = subcommands;
        self
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn subcommand(&self, name: &[u8]) -> Option<&'static Command> {
        self.subcommand_position(name).map(|i| &self.subcommands[i])
    }

    fn subcommand_position(&self, name: &[u8]) -> Option<usize> {
        self.subcommands.iter().position(|c| {
            let sub = c.name.rsplit('|').next().unwrap_or(c.name);
            sub.as_bytes().eq_ignore_ascii_case(name)
        })
    }

    /// How many keys a call with `argc` arguments (name included) names, from the key
    /// positions: MGET of three keys names three, MSET of two pairs two.
    pub fn key_count(&self, argc: usize) -> usize {
        let (first, last, step) = self.keys;
        if first == last && first > 0 {
            return 1; // the common single-key command
        }
        if first <= 0 || step <= 0 {
            return 0;
        }
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let last = if last < 0 { argc + i64::from(last) } else { i64::from(last).min(argc - 1) };
        let first = i64::from(first);
        if last < first { 0 } else { usize::try_from((last - first) / i64::from(step) + 1).unwrap_or(0) }
    }

    fn arity_ok(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 { argc == arity } else { argc >= -arity }
    }
}

/// Top-level commands by name, with their positions in [`COMMANDS`].
static TABLE: LazyLock<HashMap<&'static [u8], (usize, &'static Command), foldhash::fast::RandomState>> =
    LazyLock::new(|| COMMANDS.iter().enumerate().map(|(i, &c)| (c.name.as_bytes(), (i, c))).collect());

/// Every command and subcommand numbered 0..N, for per-command statistics: top-level commands
/// first, in table order, then each container's subcommands.
pub struct CommandIds {
    /// The full name (`client|list`) of each id.
    pub names: Vec<&'static str>,
    /// For each top-level command, the id of its first subcommand.
    sub_base: Vec<usize>,
}

pub static IDS: LazyLock<CommandIds> = LazyLock::new(|| {
    let mut names: Vec<&'static str> = COMMANDS.iter().map(|c| c.name).collect();
    let mut sub_base = Vec::with_capacity(COMMANDS.len());
    for &cmd in COMMANDS.iter() {
        sub_base.push(names.len());
        names.extend(cmd.subcommands.iter().map(|s| s.name));
    }
    CommandIds { names, sub_base }
});

#[inline]
fn lookup_index(name: &[u8]) -> Option<(usize, &'static Command)> {
    let mut lower = [0u8; 32];
    let lower = lower.get_mut(..name.len())?;
    for (l, c) in lower.iter_mut().zip(name) {
        *l = c.to_ascii_lowercase();
    }
    TABLE.get(&*lower).copied()
}

/// Whether the command named `name` runs alone (EXEC, COMMIT: marked [`Command::exclusive`]
/// in the table), told from its name's bytes without a lookup: the connection must not hold
/// the gate when it dispatches one.
#[inline]
pub fn runs_alone(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"exec") || name.eq_ignore_ascii_case(b"commit")
}

/// Looks a command up by name, ignoring case, without allocating.
pub fn lookup(name: &[u8]) -> Option<&'static Command> {
    lookup_index(name).map(|(_, c)| c)
}

/// Resolves, checks and runs one command, writing its reply (or error) to `ctx.out`, and
/// counts it (calls, time, failures, keys) in this thread's statistics. Returns the command
/// that ran, if any.
pub fn dispatch(ctx: &mut Ctx<'_>, args: Args<'_>) -> Option<&'static Command> {
    let stats = ctx.stats;
    let (id, cmd) = match resolve(args) {
        Ok(found) => found,
        Err((e, id)) => {
            let e = crate::txn::refused(ctx.shared, ctx.client, args.get(0), e);
            stats.rejected(id);
            stats.error(&e.0);
            ctx.out.error(&e.0);
            return None;
        }
    };
    // Held while the command runs: a transaction runs with nothing else running.
    let gate = &ctx.shared.gate;
    let _pass = if cmd.exclusive { gate.exclusive() } else { gate.shared() };
    if ctx.client.txn.multi.is_some() {
        match crate::txn::queue(ctx, cmd, args) {
            Ok(true) => return Some(cmd),
            Ok(false) => {}
            Err(e) => {
                stats.rejected(Some(id));
                stats.error(&e.0);
                ctx.out.error(&e.0);
                return None;
            }
        }
    }
    ctx.timer.enter(id, stats);
    ctx.effects.clear();
    ctx.wait.clear();
    // A RESP2 client with subscriptions may only (un)subscribe, PING, QUIT and RESET.
    if let Err(e) = crate::pubsub::allowed(ctx, cmd) {
        stats.rejected(Some(id));
        stats.error(&e.0);
        ctx.out.error(&e.0);
        return None;
    }
    let result = if ctx.client.txn.interactive.is_some() && !crate::txn::controls(cmd) {
        match crate::txn::run_inside(ctx, cmd, args) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    } else if cmd.has(flags::WRITE) {
        if let Some(e) = ctx.shared.persistence.deny_writes(ctx.shared) { Err(e) } else { run_logged(ctx, cmd, args) }
    } else {
        (cmd.run)(ctx, args)
    };
    if ctx.wait.requested && result.is_ok() {
        // The client waits: the command is counted when it is served or gives up.
        ctx.wait.id = id;
        return Some(cmd);
    }
    let keys = if cmd.op == KeyOp::None { 0 } else { cmd.key_count_in(args) };
    stats.call(id, result.is_err(), cmd.op, keys);
    if ctx.wait.mode != Mode::NoBlock && ctx.shared.blocking.has_ready() {
        // Clients blocked on keys this command filled are served before anything else runs
        // on this connection (after a whole transaction, for the commands inside one).
        ctx.shared.blocking.serve(ctx.shared);
    }
    match result {
        Ok(()) => Some(cmd),
        Err(e) => {
            stats.error(&e.0);
            ctx.out.error(&e.0);
            None
        }
    }
}

/// Runs a write command and queues the record of what it did for the append-only log: its
/// own arguments, or the effects it declared (see [`Ctx::propagate`]); before it, deletions of
/// keys it found expired. Nothing is queued if the command changed nothing. Also serves
/// blocked clients, whose commands run again (see [`crate::blocking`]).
pub fn run_logged(ctx: &mut Ctx<'_>, cmd: &'static Command, args: Args<'_>) -> CmdResult {
    if ctx.client.txn.interactive.is_some() {
        // Inside BEGIN: the write went to the private copy; keep its effect for COMMIT.
        magpie_store::tap::reset_last_seq();
        let result = (cmd.run)(ctx, args);
        let changed = magpie_store::tap::last_seq() != 0;
        let db = ctx.client.db;
        if let (true, Some(i)) = (changed, ctx.client.txn.interactive.as_mut()) {
            if ctx.effects.replaced {
                i.log.extend(ctx.effects.records.iter().map(|r| (db, r.clone())));
            } else {
                i.log.push((db, args.iter().map(<[u8]>::to_vec).collect()));
            }
        }
        return result;
    }
    let journal = &ctx.shared.persistence.journal;
    if !journal.is_on() {
        // Nothing to log. (The log is turned on only while no command runs: see
        // `persist::rewrite`, so a command that saw it off here cannot owe it a record.)
        let result = (cmd.run)(ctx, args);
        log_expired(ctx.shared);
        return result;
    }
    journal.begin();
    magpie_store::tap::reset_last_seq();
    let result = (cmd.run)(ctx, args);
    let seq = magpie_store::tap::last_seq();
    log_expired(ctx.shared);
    if seq != 0 {
        let db = ctx.client.db;
        if ctx.effects.replaced {
            if !ctx.effects.records.is_empty() {
                let records = &ctx.effects.records;
                journal.push(seq, db, records.iter().map(|r| r.iter().map(Vec::as_slice)));
            }
        } else {
            journal.push(seq, db, std::iter::once(args.iter()));
        }
        ctx.client.wrote = seq;
    }
    journal.end();
    result
}

/// Queues a DEL for each key this thread found expired (the log replays without expiring),
/// and publishes their keyspace events.
pub fn log_expired(shared: &Shared) {
    if !shared.keyspace.tap().expired_tap() || !crate::notify::has_expired() {
        return;
    }
    // Their `expired` events go out too (if not already out): see `notify::take_expired`.
    for e in crate::notify::take_expired(&shared.pubsub) {
        if e.seq != 0 {
            let del: [&[u8]; 2] = [b"DEL", &e.key];
            shared.persistence.journal.push(e.seq, e.db, std::iter::once(del.into_iter()));
        }
    }
}

/// Finds the command (or subcommand) that `args` names, with its id (see [`IDS`]), and checks
/// its arity. A failure carries the id of the command found, if one was (an arity error is a
/// rejected call of that command).
#[inline]
pub fn resolve(args: Args<'_>) -> Result<(usize, &'static Command), (Error, Option<usize>)> {
    let name = args.get(0);
    let Some((idx, cmd)) = lookup_index(name) else { return Err((unknown_command(args), None)) };
    if !cmd.subcommands.is_empty() && args.len() >= 2 {
        let sub = args.get(1);
        let Some(pos) = cmd.subcommand_position(sub) else {
            // Redis prints it with `%.128s`: at most 128 bytes, up to a NUL byte.
            let sub = crate::error::c_str(sub);
            let mut msg = b"ERR unknown subcommand '".to_vec();
            msg.extend_from_slice(&sub[..sub.len().min(128)]);
            msg.extend_from_slice(format!("'. Try {} HELP.", cmd.name.to_uppercase()).as_bytes());
            return Err((Error::bytes(msg), None));
        };
        let (id, subcmd) = (IDS.sub_base[idx] + pos, &cmd.subcommands[pos]);
        if !subcmd.arity_ok(args.len()) {
            return Err((arity_error(subcmd.name), Some(id)));
        }
        return Ok((id, subcmd));
    }
    if !cmd.arity_ok(args.len()) {
        return Err((arity_error(cmd.name), Some(idx)));
    }
    Ok((idx, cmd))
}

pub fn arity_error(full_name: &str) -> Error {
    Error::msg(format!("ERR wrong number of arguments for '{full_name}' command"))
}

/// Redis's text: the name and the first arguments, each quoted, cut at about 128 bytes. Redis
/// formats them as C strings, so each also ends at its first NUL byte.
fn unknown_command(args: Args<'_>) -> Error {
    let c_str = |s: &'_ [u8]| -> usize { s.iter().position(|&c| c == 0).unwrap_or(s.len()) };
    let name = args.get(0);
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend_from_slice(&name[..c_str(name).min(128)]);
    msg.extend_from_slice(b"', with args beginning with: ");
    let mut listed = 0;
    for arg in args.iter().skip(1) {
        if listed >= 128 {
            break;
        }
        let take = c_str(arg).min(128 - listed);
        msg.push(b'\'');
        msg.extend_from_slice(&arg[..take]);
        msg.extend_from_slice(b"' ");
        listed += take + 3;
    }
    Error::bytes(msg)
}

/// The body of a container command called without a subcommand; dispatch never gets here
/// for CLIENT or CONFIG (their arity requires a subcommand), so this is a plain error.
pub fn container(_ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    Err(arity_error(&String::from_utf8_lossy(args.get(0)).to_lowercase()))
}

// ---------------------------------------------------------------------------------------------
// COMMAND [COUNT | INFO | DOCS | LIST]

pub fn command(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.out.array(COMMANDS.len());
    for &cmd in COMMANDS.iter() {
        write_info(ctx.out, cmd);
    }
    Ok(())
}

pub fn command_count(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.out.int(COMMANDS.len() as i64);
    Ok(())
}

pub fn command_list(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 2 {
        // FILTERBY is not supported yet: say so rather than ignore it.
        return Err(crate::error::syntax());
    }
    ctx.out.array(COMMANDS.len());
    for &cmd in COMMANDS.iter() {
        ctx.out.bulk(cmd.name.as_bytes());
    }
    Ok(())
}

pub fn command_info(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() == 2 {
        return command(ctx, args);
    }
    ctx.out.array(args.len() - 2);
    for name in args.iter().skip(2) {
        match find_full(name) {
            Some(cmd) => write_info(ctx.out, cmd),
            None => ctx.out.null_array(),
        }
    }
    Ok(())
}

pub fn command_docs(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() == 2 {
        ctx.out.map(COMMANDS.len());
        for &cmd in COMMANDS.iter() {
            ctx.out.bulk(cmd.name.as_bytes());
            write_docs(ctx.out, cmd);
        }
        return Ok(());
    }
    let found: Vec<_> = args.iter().skip(2).filter_map(find_full).collect();
    ctx.out.map(found.len());
    for cmd in found {
        ctx.out.bulk(cmd.name.as_bytes());
        write_docs(ctx.out, cmd);
    }
    Ok(())
}

/// COMMAND GETKEYS command arg...: the keys that call would name (cluster-aware clients ask
/// this for commands whose keys move, such as ZUNION's).
pub fn command_getkeys(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let call = args.skip(2);
    let cmd = match resolve(call) {
        Ok((_, cmd)) => cmd,
        Err((_, None)) => return Err("ERR Invalid command specified".into()),
        Err((_, Some(_))) => return Err("ERR Invalid number of arguments specified for command".into()),
    };
    if cmd.numkeys > 0 {
        // As Redis: a count that is not a number, below 1, or beyond the arguments there are.
        let first = cmd.numkeys + 1;
        let declared = (cmd.numkeys < call.len())
            .then(|| magpie_protocol::parse_i64(call.get(cmd.numkeys)))
            .flatten()
            .and_then(|n| usize::try_from(n).ok());
        if !declared.is_some_and(|n| n >= 1 && n <= call.len().saturating_sub(first)) {
            return Err("ERR Invalid arguments specified for command".into());
        }
    }
    let keys = cmd.keys_in(call);
    if keys.is_empty() {
        return Err("ERR The command has no key arguments".into());
    }
    ctx.out.array(keys.len());
    for key in keys {
        ctx.out.bulk(key);
    }
    Ok(())
}

/// Finds `name` or `container|sub`.
fn find_full(name: &[u8]) -> Option<&'static Command> {
    match name.iter().position(|&c| c == b'|') {
        Some(bar) => lookup(&name[..bar])?.subcommand(&name[bar + 1..]),
        None => lookup(name),
    }
}

fn acl_categories(cmd: &Command) -> Vec<String> {
    let mut cats = Vec::new();
    if cmd.has(flags::WRITE) {
        cats.push("@write".to_owned());
    }
    if cmd.has(flags::READONLY) {
        cats.push("@read".to_owned());
    }
    match cmd.group {
        "generic" => cats.push("@keyspace".to_owned()),
        "server" => {}
        "transactions" => cats.push("@transaction".to_owned()),
        // The group `sorted-set` is the ACL category `@sortedset`.
        g => cats.push(format!("@{}", g.replace('-', ""))),
    }
    if cmd.has(flags::ADMIN) {
        cats.push("@admin".to_owned());
        cats.push("@dangerous".to_owned());
    }
    cats.push(if cmd.has(flags::FAST) { "@fast" } else { "@slow" }.to_owned());
    if cmd.has(flags::BLOCKING) {
        cats.push("@blocking".to_owned());
    }
    cats
}

fn write_info(out: &mut Reply, cmd: &Command) {
    out.array(10);
    out.bulk(cmd.name.as_bytes());
    out.int(i64::from(cmd.arity));
    let names: Vec<&str> = flags::NAMES.iter().filter(|(f, _)| cmd.has(*f)).map(|(_, n)| *n).collect();
    out.set(names.len());
    for n in names {
        out.simple(n);
    }
    let (first, last, step) = cmd.keys;
    out.int(i64::from(first));
    out.int(i64::from(last));
    out.int(i64::from(step));
    let cats = acl_categories(cmd);
    out.set(cats.len());
    for c in cats {
        out.simple(&c);
    }
    out.array(0); // tips
    if first > 0 {
        // One key spec: keys from `first` to `last` every `step`.
        out.array(1);
        out.map(3);
        out.bulk(b"flags");
        let spec_flags: &[&str] = if cmd.has(flags::WRITE) { &["RW", "update"] } else { &["RO", "access"] };
        out.set(spec_flags.len());
        for f in spec_flags {
            out.simple(f);
        }
        out.bulk(b"begin_search");
        out.map(2);
        out.bulk(b"type");
        out.bulk(b"index");
        out.bulk(b"spec");
        out.map(1);
        out.bulk(b"index");
        out.int(i64::from(first));
        out.bulk(b"find_keys");
        out.map(2);
        out.bulk(b"type");
        out.bulk(b"range");
        out.bulk(b"spec");
        out.map(3);
        out.bulk(b"lastkey");
        out.int(i64::from(if last < 0 { last } else { last - first }));
        out.bulk(b"keystep");
        out.int(i64::from(step));
        out.bulk(b"limit");
        out.int(0);
    } else {
        out.array(0);
    }
    out.array(cmd.subcommands.len());
    for sub in cmd.subcommands {
        write_info(out, sub);
    }
}

fn write_docs(out: &mut Reply, cmd: &Command) {
    let args = parse_syntax(cmd.syntax);
    let fields = 3 + usize::from(!args.is_empty()) + usize::from(!cmd.subcommands.is_empty());
    out.map(fields);
    out.bulk(b"summary");
    out.bulk(cmd.summary.as_bytes());
    out.bulk(b"since");
    out.bulk(cmd.since.as_bytes());
    out.bulk(b"group");
    out.bulk(cmd.group.as_bytes());
    if !args.is_empty() {
        out.bulk(b"arguments");
        write_doc_args(out, &args);
    }
    if !cmd.subcommands.is_empty() {
        out.bulk(b"subcommands");
        out.map(cmd.subcommands.len());
        for sub in cmd.subcommands {
            out.bulk(sub.name.as_bytes());
            write_docs(out, sub);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The syntax notation, turned into COMMAND DOCS arguments.

#[derive(Debug, Default, PartialEq)]
pub struct DocArg {
    pub name: String,
    pub kind: &'static str,
    pub token: Option<String>,
    pub key_spec_index: Option<usize>,
    pub optional: bool,
    pub multiple: bool,
    pub children: Vec<DocArg>,
}

fn write_doc_args(out: &mut Reply, args: &[DocArg]) {
    out.array(args.len());
    for a in args {
        let flag_names: Vec<&str> =
            [(a.optional, "optional"), (a.multiple, "multiple")].iter().filter(|f| f.0).map(|f| f.1).collect();
        let fields = 2
            + usize::from(a.key_spec_index.is_some())
            + usize::from(a.token.is_some())
            + usize::from(!flag_names.is_empty())
            + usize::from(!a.children.is_empty());
        out.map(fields);
        out.bulk(b"name");
        out.bulk(a.name.as_bytes());
        out.bulk(b"type");
        out.bulk(a.kind.as_bytes());
        if let Some(i) = a.key_spec_index {
            out.bulk(b"key_spec_index");
            out.int(i as i64);
        }
        if let Some(t) = &a.token {
            out.bulk(b"token");
            out.bulk(t.as_bytes());
        }
        if !flag_names.is_empty() {
            out.bulk(b"flags");
            out.set(flag_names.len());
            for f in flag_names {
                out.simple(f);
            }
        }
        if !a.children.is_empty() {
            out.bulk(b"arguments");
            write_doc_args(out, &a.children);
        }
    }
}

#[derive(Debug)]
enum Item {
    Word(String),
    Group { optional: bool, alts: Vec<Vec<(Item, bool)>> },
}

/// Parses the `syntax` notation of a [`Command`] into documentation arguments.
pub fn parse_syntax(syntax: &str) -> Vec<DocArg> {
    let mut tokens = Vec::new();
    let mut word = String::new();
    for c in syntax.chars() {
        if c.is_whitespace() || "[]()|".contains(c) {
            if !word.is_empty() {
                tokens.push(std::mem::take(&mut word));
            }
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        tokens.push(word);
    }
    let mut pos = 0;
    let alts = parse_alts(&tokens, &mut pos);
    let mut keys = 0;
    let seq = alts.into_iter().next().unwrap_or_default();
    convert_seq(seq, &mut keys)
}

fn parse_alts(tokens: &[String], pos: &mut usize) -> Vec<Vec<(Item, bool)>> {
    let mut alts: Vec<Vec<(Item, bool)>> = vec![Vec::new()];
    while let Some(t) = tokens.get(*pos) {
        *pos += 1;
        let current = alts.last_mut().expect("alternatives are never empty");
        match t.as_str() {
            "]" | ")" => break,
            "|" => alts.push(Vec::new()),
            "..." => {
                if let Some(last) = current.last_mut() {
                    last.1 = true;
                }
            }
            "[" | "(" => {
                let inner = parse_alts(tokens, pos);
                current.push((Item::Group { optional: t == "[", alts: inner }, false));
            }
            w => current.push((Item::Word(w.to_owned()), false)),
        }
    }
    alts
}

fn is_token(w: &str) -> bool {
    w.chars().any(|c| c.is_ascii_uppercase()) && !w.chars().any(|c| c.is_ascii_lowercase() || c == ':')
}

fn convert_seq(seq: Vec<(Item, bool)>, keys: &mut usize) -> Vec<DocArg> {
    let mut out = Vec::new();
    let mut iter = seq.into_iter().peekable();
    while let Some((item, multiple)) = iter.next() {
        if let Item::Word(w) = &item
            && is_token(w)
        {
            let next_is_value = matches!(iter.peek(), Some((Item::Word(n), _)) if !is_token(n));
            if next_is_value {
                let (value, m) = iter.next().expect("peeked");
                let mut arg = convert(value, m, keys);
                arg.token = Some(w.clone());
                out.push(arg);
            } else {
                out.push(DocArg {
                    name: w.to_lowercase(),
                    kind: "pure-token",
                    token: Some(w.clone()),
                    multiple,
                    ..DocArg::default()
                });
            }
            continue;
        }
        out.push(convert(item, multiple, keys));
    }
    out
}

fn convert(item: Item, multiple: bool, keys: &mut usize) -> DocArg {
    match item {
        Item::Word(w) => {
            let (name, kind) = match w.split_once(':') {
                Some((n, "integer")) => (n, "integer"),
                Some((n, "double")) => (n, "double"),
                Some((n, "pattern")) => (n, "pattern"),
                Some((n, "unix-time")) => (n, "unix-time"),
                Some((n, "key")) => (n, "key"),
                Some((n, _)) => (n, "string"),
                None if w == "key" || w.ends_with("key") || w == "source" || w == "destination" => (w.as_str(), "key"),
                None => (w.as_str(), "string"),
            };
            let key_spec_index = (kind == "key").then(|| {
                *keys += 1;
                *keys - 1
            });
            DocArg { name: name.to_owned(), kind, key_spec_index, multiple, ..DocArg::default() }
        }
        Item::Group { optional, alts } => {
            let mut arg = if alts.len() > 1 {
                let children: Vec<DocArg> = alts.into_iter().map(|alt| single_or_block(alt, keys)).collect();
                let name = children.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join("-");
                DocArg { name, kind: "oneof", children, ..DocArg::default() }
            } else {
                single_or_block(alts.into_iter().next().unwrap_or_default(), keys)
            };
            arg.optional |= optional;
            arg.multiple |= multiple;
            arg
        }
    }
}

fn single_or_block(seq: Vec<(Item, bool)>, keys: &mut usize) -> DocArg {
    let mut args = convert_seq(seq, keys);
    if args.len() == 1 {
        return args.pop().expect("one element");
    }
    let name = args.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join("-");
    DocArg { name, kind: "block", children: args, ..DocArg::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_becomes_doc_arguments() {
        let args = parse_syntax("key value [NX|XX] [GET] [EX seconds:integer|KEEPTTL]");
        assert_eq!(args.len(), 5);
        assert_eq!((args[0].name.as_str(), args[0].kind, args[0].key_spec_index), ("key", "key", Some(0)));
        assert_eq!((args[1].name.as_str(), args[1].kind), ("value", "string"));
        assert_eq!((args[2].kind, args[2].optional, args[2].children.len()), ("oneof", true, 2));
        assert_eq!(args[2].children[0].token.as_deref(), Some("NX"));
        assert_eq!((args[3].kind, args[3].optional), ("pure-token", true));
        let ex = &args[4].children[0];
        assert_eq!((ex.name.as_str(), ex.kind, ex.token.as_deref()), ("seconds", "integer", Some("EX")));
        let multi = parse_syntax("key [key ...]");
        assert!(multi[1].optional && multi[1].multiple);
        assert_eq!(multi[1].key_spec_index, Some(1));
        let block = parse_syntax("(key value) ...");
        assert_eq!((block[0].kind, block[0].multiple, block[0].children.len()), ("block", true, 2));
    }

    #[test]
    fn runs_alone_names_exactly_the_exclusive_commands() {
        for &cmd in COMMANDS.iter() {
            assert_eq!(runs_alone(cmd.name.as_bytes()), cmd.exclusive, "{}", cmd.name);
        }
        assert!(runs_alone(b"ExEc") && !runs_alone(b"exe"));
    }

    #[test]
    fn every_command_is_well_formed() {
        for &cmd in COMMANDS.iter() {
            assert_eq!(cmd.name, cmd.name.to_lowercase());
            assert!(lookup(cmd.name.as_bytes()).is_some(), "{}", cmd.name);
            assert!(cmd.arity != 0, "{}", cmd.name);
            assert!(!cmd.summary.is_empty(), "{}", cmd.name);
            parse_syntax(cmd.syntax);
            for sub in cmd.subcommands {
                assert!(sub.arity.unsigned_abs() >= 2, "{}", sub.name);
                assert!(sub.name.starts_with(&format!("{}|", cmd.name)), "{}", sub.name);
                parse_syntax(sub.syntax);
            }
        }
        assert!(lookup(b"GeT").is_some());
        assert!(lookup(&[b'a'; 40]).is_none());
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
        for cmd in COMMANDS.iter().flat_map(|c| std::iter::once(*c).chain(c.subcommands)) {
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
        let total: usize = COMMANDS.iter().map(|c| 1 + c.subcommands.len()).sum();
        assert_eq!(IDS.names.len(), total);
        for (i, cmd) in COMMANDS.iter().enumerate() {
            assert_eq!(IDS.names[i], cmd.name);
            for (j, sub) in cmd.subcommands.iter().enumerate() {
                assert_eq!(IDS.names[IDS.sub_base[i] + j], sub.name);
            }
        }
    }

    #[test]
    fn key_counts_follow_key_positions() {
        let count = |name: &str, argc| lookup(name.as_bytes()).unwrap().key_count(argc);
        assert_eq!(count("get", 2), 1);
        assert_eq!(count("mget", 4), 3);
        assert_eq!(count("mset", 7), 3);
        assert_eq!(count("del", 2), 1);
        assert_eq!(count("rename", 3), 2);
        assert_eq!(count("ping", 1), 0);
        assert_eq!(lookup(b"del").unwrap().op, KeyOp::Del);
        assert_eq!(lookup(b"getdel").unwrap().op, KeyOp::Del);
        assert_eq!(lookup(b"exists").unwrap().op, KeyOp::Get);
        assert_eq!(lookup(b"incr").unwrap().op, KeyOp::Set);
        // Commands with numkeys count the keys they name.
        let keys_of = |line: &str| {
            let words: Vec<&str> = line.split(' ').collect();
            let mut buf = Vec::new();
            let mut spans = Vec::new();
            for w in &words {
                spans.push((buf.len(), buf.len() + w.len()));
                buf.extend_from_slice(w.as_bytes());
            }
            lookup(words[0].as_bytes()).unwrap().key_count_in(Args::new(&buf, &spans))
        };
        assert_eq!(keys_of("lmpop 2 a b LEFT"), 2);
        assert_eq!(keys_of("blmpop 0 3 a b c RIGHT COUNT 2"), 3);
        assert_eq!(keys_of("lmpop 5 a LEFT"), 2);
        assert_eq!(keys_of("lmpop x a LEFT"), 0);
        assert_eq!(keys_of("blpop a b 0"), 2);
    }
}
