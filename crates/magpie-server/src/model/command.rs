//! One entry of the command table: name, arity, flags, key positions, documentation and the
//! function that runs it; and the table itself, with lookup by name and a number for each
//! command and subcommand. Dispatch, COMMAND INFO/DOCS (and with them redis-cli's hints), the
//! statistics and the transaction checks all read the same entry.

use std::collections::HashMap;

use magpie_protocol::Args;

use super::ctx::Ctx;
use crate::core::error::{CmdResult, Error};
use crate::services::stats::{KeyOp, MAX_COMMANDS};

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

/// The command table: every top-level command, numbered with its subcommands (0..N, for
/// per-command statistics: top-level commands first, in table order, then each container's
/// subcommands), and found by name without allocating.
pub struct Table {
    commands: Vec<&'static Command>,
    by_name: HashMap<&'static [u8], (usize, &'static Command), foldhash::fast::RandomState>,
    /// The full name (`client|list`) of each id.
    names: Vec<&'static str>,
    /// For each top-level command, the id of its first subcommand.
    sub_base: Vec<usize>,
}

impl Table {
    /// A table of `commands` (each family's list, in order).
    pub fn new(commands: Vec<&'static Command>) -> Table {
        let by_name = commands.iter().enumerate().map(|(i, &c)| (c.name.as_bytes(), (i, c))).collect();
        let mut names: Vec<&'static str> = commands.iter().map(|c| c.name).collect();
        let mut sub_base = Vec::with_capacity(commands.len());
        for &cmd in &commands {
            sub_base.push(names.len());
            names.extend(cmd.subcommands.iter().map(|s| s.name));
        }
        assert!(names.len() <= MAX_COMMANDS, "raise stats::MAX_COMMANDS to {}", names.len());
        Table { commands, by_name, names, sub_base }
    }

    /// Every top-level command, in table order.
    pub fn commands(&self) -> &[&'static Command] {
        &self.commands
    }

    /// The full name of every command and subcommand, by id.
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// The command or subcommand with this id.
    pub fn by_id(&self, id: usize) -> Option<&'static Command> {
        let top = self.sub_base.partition_point(|&base| base <= id);
        if id < self.commands.len() {
            return Some(self.commands[id]);
        }
        let parent = top.checked_sub(1)?;
        self.commands[parent].subcommands.get(id - self.sub_base[parent])
    }

    /// A top-level command and its id, by name, ignoring case, without allocating.
    #[inline]
    pub fn lookup_index(&self, name: &[u8]) -> Option<(usize, &'static Command)> {
        let mut lower = [0u8; 32];
        let lower = lower.get_mut(..name.len())?;
        for (l, c) in lower.iter_mut().zip(name) {
            *l = c.to_ascii_lowercase();
        }
        self.by_name.get(&*lower).copied()
    }

    /// A top-level command by name, ignoring case.
    pub fn lookup(&self, name: &[u8]) -> Option<&'static Command> {
        self.lookup_index(name).map(|(_, c)| c)
    }

    /// `name` or `container|sub`.
    pub fn find_full(&self, name: &[u8]) -> Option<&'static Command> {
        match name.iter().position(|&c| c == b'|') {
            Some(bar) => self.lookup(&name[..bar])?.subcommand(&name[bar + 1..]),
            None => self.lookup(name),
        }
    }

    /// Finds the command (or subcommand) that `args` names, with its id, and checks its
    /// arity. A failure carries the id of the command found, if one was (an arity error is a
    /// rejected call of that command).
    #[inline]
    pub fn resolve(&self, args: Args<'_>) -> Result<(usize, &'static Command), (Error, Option<usize>)> {
        let name = args.get(0);
        let Some((idx, cmd)) = self.lookup_index(name) else { return Err((unknown_command(args), None)) };
        if !cmd.subcommands.is_empty() && args.len() >= 2 {
            let sub = args.get(1);
            let Some(pos) = cmd.subcommand_position(sub) else {
                // Redis prints it with `%.128s`: at most 128 bytes, up to a NUL byte.
                let sub = crate::core::error::c_str(sub);
                let mut msg = b"ERR unknown subcommand '".to_vec();
                msg.extend_from_slice(&sub[..sub.len().min(128)]);
                msg.extend_from_slice(format!("'. Try {} HELP.", cmd.name.to_uppercase()).as_bytes());
                return Err((Error::bytes(msg), None));
            };
            let (id, subcmd) = (self.sub_base[idx] + pos, &cmd.subcommands[pos]);
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
}

/// Redis's arity error.
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
