//! One entry of the command table: name, arity, flags, key positions, documentation and the
//! function that runs it; and the table itself, with lookup by name and a number for each
//! command and subcommand. Dispatch, COMMAND INFO/DOCS (and with them redis-cli's hints), the
//! statistics and the transaction checks all read the same entry.

use std::cell::Cell;
use std::collections::HashMap;

use magpie_protocol::Args;

use super::flags::{Acl, Flags, KeyFlags};
use super::keyspec::{Begin, Find, KeySpec, key_positions_lenient, legacy_range};

pub(crate) mod ctx;

use crate::core::error::{CmdResult, Error};
use crate::services::stats::{KeyOp, MAX_COMMANDS};
use ctx::Ctx;

pub(crate) type Handler = fn(&mut Ctx<'_>, Args<'_>) -> CmdResult;

/// One entry of the command table. Built in a constant expression:
///
/// ```text
/// Command::new("set", -3, flags![WRITE, DENYOOM], "string", "1.0.0", "summary", "syntax", strings::set)
///     .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE])])
/// ```
pub(crate) struct Command {
    /// Lower-case name; a subcommand's is `container|sub` (e.g. `client|setname`), as Redis
    /// names it in errors, COMMAND INFO and CLIENT LIST.
    pub name: &'static str,
    /// Redis's arity: N means exactly N arguments (name included), -N at least N.
    pub arity: i32,
    pub flags: Flags,
    /// ACL categories: those of the command's group (or its entry's own, see
    /// [`Command::acl`]) and those its flags imply.
    pub acl: Acl,
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    /// Arguments after the name, in a compact notation turned into COMMAND DOCS arguments:
    /// `key`, `name:type`, `TOKEN`, `[optional]`, `(group)`, `a|b` alternatives, `...` repeats.
    pub syntax: &'static str,
    /// Where the keys are (see [`KeySpec`]).
    pub key_specs: &'static [KeySpec],
    /// Redis's legacy (first key, last key, step), derived from the key specs.
    pub keys: (i32, i32, i32),
    /// The command names exactly one key, at this argument (most commands): counted without
    /// reading the key specs.
    single_key: Option<usize>,
    /// Redis's command tips (COMMAND INFO's 8th field), e.g. `nondeterministic_output`.
    pub tips: &'static [&'static str],
    pub run: Handler,
    pub subcommands: &'static [Command],
    /// Follows from `flags` unless marked by [`Command::deletes`].
    pub op: KeyOp,
    /// Which arguments are Pub/Sub channels that ACL channel permissions govern.
    pub channels: Channels,
}

/// Where a command's channels are, for ACL channel permissions (Redis's
/// `getChannelsFromCommand`: the channels a client publishes to or subscribes to; leaving a
/// channel needs no permission).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Channels {
    None,
    /// The first argument (PUBLISH, SPUBLISH).
    First,
    /// Every argument (SUBSCRIBE, SSUBSCRIBE).
    All,
    /// Every argument, a pattern (PSUBSCRIBE): compared literally with the user's patterns.
    AllPatterns,
}

impl Command {
    #[allow(clippy::too_many_arguments)]
    pub(crate) const fn new(
        name: &'static str,
        arity: i32,
        flags: Flags,
        group: &'static str,
        since: &'static str,
        summary: &'static str,
        syntax: &'static str,
        run: Handler,
    ) -> Command {
        let op = if flags.contains(Flags::WRITE) {
            KeyOp::Set
        } else if flags.contains(Flags::READONLY) {
            KeyOp::Get
        } else {
            KeyOp::None
        };
        Command {
            name,
            arity,
            flags,
            acl: Acl::of_group(group).with_implicit(flags),
            group,
            since,
            summary,
            syntax,
            key_specs: &[],
            keys: (0, 0, 0),
            single_key: None,
            tips: &[],
            run,
            subcommands: &[],
            op,
            channels: Channels::None,
        }
    }

    /// Marks the arguments that are channels (see [`Channels`]).
    pub(crate) const fn channels(mut self, channels: Channels) -> Command {
        self.channels = channels;
        self
    }

    /// The command's own ACL categories, instead of its group's (the implied ones are added).
    pub(crate) const fn acl(mut self, categories: Acl) -> Command {
        self.acl = categories.with_implicit(self.flags);
        self
    }

    /// Where the command's keys are; sets the legacy range and `movablekeys` from them.
    pub(crate) const fn keys(mut self, specs: &'static [KeySpec]) -> Command {
        let (range, movable) = legacy_range(specs);
        self.key_specs = specs;
        self.keys = range;
        self.single_key = match specs {
            [KeySpec { begin: Begin::Index(pos), find: Find::Range { last: 0, .. }, flags, .. }]
                if *pos > 0 && !flags.contains(KeyFlags::NOT_KEY) =>
            {
                Some(*pos as usize)
            }
            _ => None,
        };
        if movable {
            self.flags = self.flags.union(Flags::MOVABLEKEYS);
        }
        self
    }

    /// Redis's command tips.
    pub(crate) const fn tips(mut self, tips: &'static [&'static str]) -> Command {
        self.tips = tips;
        self
    }

    /// Marks a command whose keys count as deleted (INFO's `key_ops_del`).
    pub(crate) const fn deletes(mut self) -> Command {
        self.op = KeyOp::Del;
        self
    }

    /// A container command (CLIENT, CONFIG, ...) whose first argument picks a subcommand.
    pub(crate) const fn with_subcommands(mut self, subcommands: &'static [Command]) -> Command {
        self.subcommands = subcommands;
        self
    }

    #[inline]
    pub(crate) fn has(&self, flag: Flags) -> bool {
        self.flags.contains(flag)
    }

    /// Whether the command names keys at all (it has key specs other than non-keys).
    pub(crate) fn has_keys(&self) -> bool {
        self.key_specs.iter().any(|s| !s.flags.contains(KeyFlags::NOT_KEY))
    }

    /// How many keys this call names, leniently (see `keyspec::key_positions_lenient`; 0
    /// when its arguments contradict the key specs).
    #[inline]
    pub(crate) fn key_count_in(&self, args: Args<'_>) -> usize {
        if let Some(pos) = self.single_key {
            return usize::from(pos < args.len()); // the common single-key command
        }
        let mut n = 0;
        if key_positions_lenient(self.key_specs, args, |_, _| n += 1).is_err() {
            return 0;
        }
        n
    }

    /// The keys this call names, leniently, in key-spec order (those before a contradiction,
    /// if any).
    pub(crate) fn keys_in<'a>(&self, args: Args<'a>) -> Vec<&'a [u8]> {
        let mut keys = Vec::new();
        let _ = key_positions_lenient(self.key_specs, args, |i, _| keys.push(args.get(i)));
        keys
    }

    pub(crate) fn subcommand(&self, name: &[u8]) -> Option<&'static Command> {
        self.subcommand_position(name).map(|i| &self.subcommands[i])
    }

    fn subcommand_position(&self, name: &[u8]) -> Option<usize> {
        self.subcommands.iter().position(|c| {
            let sub = c.name.rsplit('|').next().unwrap_or(c.name);
            sub.as_bytes().eq_ignore_ascii_case(name)
        })
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
pub(crate) struct Table {
    commands: Vec<&'static Command>,
    by_name: HashMap<&'static [u8], (usize, &'static Command), foldhash::fast::RandomState>,
    /// This table among all made in the process (never 0): the key of its entries in the
    /// threads' memory of names ([`RECENT`]), which outlives any table but the server's.
    serial: usize,
    /// The full name (`client|list`) of each id.
    names: Vec<&'static str>,
    /// For each top-level command, the id of its first subcommand.
    sub_base: Vec<usize>,
}

impl Table {
    /// A table of `commands` (each family's list, in order).
    pub(crate) fn new(commands: Vec<&'static Command>) -> Table {
        let by_name = commands.iter().enumerate().map(|(i, &c)| (c.name.as_bytes(), (i, c))).collect();
        let mut names: Vec<&'static str> = commands.iter().map(|c| c.name).collect();
        let mut sub_base = Vec::with_capacity(commands.len());
        for &cmd in &commands {
            sub_base.push(names.len());
            names.extend(cmd.subcommands.iter().map(|s| s.name));
        }
        assert!(names.len() <= MAX_COMMANDS, "raise stats::MAX_COMMANDS to {}", names.len());
        static SERIALS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
        let serial = SERIALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Table { commands, by_name, names, sub_base, serial }
    }

    /// Every top-level command, in table order.
    pub(crate) fn commands(&self) -> &[&'static Command] {
        &self.commands
    }

    /// The full name of every command and subcommand, by id.
    pub(crate) fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// The command or subcommand with this id.
    pub(crate) fn by_id(&self, id: usize) -> Option<&'static Command> {
        let top = self.sub_base.partition_point(|&base| base <= id);
        if id < self.commands.len() {
            return Some(self.commands[id]);
        }
        let parent = top.checked_sub(1)?;
        self.commands[parent].subcommands.get(id - self.sub_base[parent])
    }

    /// A top-level command and its id, by name, ignoring case, without allocating. The
    /// commands a thread looked up last are remembered by their exact bytes (names of up to 8
    /// bytes, see [`RECENT`]): a hit costs a few instructions, where lowercasing, hashing and
    /// comparing the name cost 140 (callgrind, `redis.call` from a script).
    #[inline]
    pub(crate) fn lookup_index(&self, name: &[u8]) -> Option<(usize, &'static Command)> {
        let Some(packed) = pack_name(name) else { return self.lookup_by_name(name) };
        let table = self.serial;
        let slot = recent_slot(packed);
        let hit = RECENT.with(|r| {
            let e = r[slot].get();
            (e.table == table && e.name == packed).then_some(usize::from(e.idx))
        });
        if let Some(idx) = hit
            && let Some(&cmd) = self.commands.get(idx)
        {
            return Some((idx, cmd));
        }
        let (idx, cmd) = self.lookup_by_name(name)?;
        if let Ok(idx16) = u16::try_from(idx) {
            RECENT.with(|r| r[slot].set(Recent { table, name: packed, idx: idx16 }));
        }
        Some((idx, cmd))
    }

    /// [`Table::lookup_index`] without the thread's memory of recent names.
    fn lookup_by_name(&self, name: &[u8]) -> Option<(usize, &'static Command)> {
        let mut lower = [0u8; 32];
        let lower = lower.get_mut(..name.len())?;
        for (l, c) in lower.iter_mut().zip(name) {
            *l = c.to_ascii_lowercase();
        }
        self.by_name.get(&*lower).copied()
    }

    /// A top-level command by name, ignoring case.
    pub(crate) fn lookup(&self, name: &[u8]) -> Option<&'static Command> {
        self.lookup_index(name).map(|(_, c)| c)
    }

    /// `name` or `container|sub`.
    pub(crate) fn find_full(&self, name: &[u8]) -> Option<&'static Command> {
        match name.iter().position(|&c| c == b'|') {
            Some(bar) => self.lookup(&name[..bar])?.subcommand(&name[bar + 1..]),
            None => self.lookup(name),
        }
    }

    /// Finds the command (or subcommand) that `args` names, with its id, and checks its
    /// arity. A failure carries the id of the command found, if one was (an arity error is a
    /// rejected call of that command).
    #[inline]
    pub(crate) fn resolve(&self, args: Args<'_>) -> Result<(usize, &'static Command), (Error, Option<usize>)> {
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

thread_local! {
    /// The top-level commands this thread looked up last (see [`Table::lookup_index`]), in
    /// slots chosen by a hash of the name (a direct-mapped cache: a name replaces the one in
    /// its slot).
    static RECENT: [Cell<Recent>; RECENT_SLOTS] = const { [const { Cell::new(Recent::EMPTY) }; RECENT_SLOTS] };
}

const RECENT_SLOTS: usize = 64;

/// The slot of a packed name in [`RECENT`].
#[inline]
fn recent_slot(packed: u128) -> usize {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut x = (packed as u64) ^ (((packed >> 64) as u64) << 59);
    x = x.wrapping_mul(K);
    x ^= x >> 32;
    x = x.wrapping_mul(K);
    (x >> (64 - RECENT_SLOTS.trailing_zeros())) as usize
}

/// A name [`Table::lookup_index`] found: which table (its serial), the name's bytes as packed
/// by [`pack_name`], and the command's index.
#[derive(Clone, Copy)]
struct Recent {
    table: usize,
    name: u128,
    idx: u16,
}

impl Recent {
    const EMPTY: Recent = Recent { table: 0, name: 0, idx: 0 };
}

/// A name of 1 to 8 bytes, exactly as sent, with its length: one number that no other name
/// packs to (the length tells `get` from `get\0`).
#[inline]
fn pack_name(name: &[u8]) -> Option<u128> {
    if name.is_empty() || name.len() > 8 {
        return None;
    }
    let mut w = 0u64;
    for (i, &b) in name.iter().enumerate() {
        w |= u64::from(b) << (8 * i);
    }
    Some((u128::from(name.len() as u8) << 64) | u128::from(w))
}

/// Redis's arity error.
pub(crate) fn arity_error(full_name: &str) -> Error {
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
pub(crate) fn container(_ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    Err(arity_error(&String::from_utf8_lossy(args.get(0)).to_lowercase()))
}
