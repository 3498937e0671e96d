//! COMMAND and its subcommands: the table describing itself (COMMAND INFO's flags, key specs
//! and ACL categories; COMMAND DOCS's arguments, which redis-cli shows as hints).

use magpie_protocol::{Args, Reply};

use crate::core::error::CmdResult;
use crate::model::docs::{DocArg, parse_syntax};
use crate::model::flags::{ACL_NAMES, FLAG_NAMES, KEY_FLAG_NAMES};
use crate::model::keyspec::key_positions;
use crate::model::{Begin, Command, Ctx, Find, Flags, KeySpec, Table};

pub(super) fn command(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let commands = ctx.table().commands();
    let out = ctx.out();
    out.array(commands.len());
    for &cmd in commands {
        write_info(out, cmd);
    }
    Ok(())
}

pub(super) fn command_count(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let n = ctx.table().commands().len();
    ctx.out().int(n as i64);
    Ok(())
}

pub(super) fn command_list(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 2 {
        // FILTERBY is not supported yet: say so rather than ignore it.
        return Err(crate::core::error::syntax());
    }
    let commands = ctx.table().commands();
    let out = ctx.out();
    out.array(commands.len());
    for &cmd in commands {
        out.bulk(cmd.name.as_bytes());
    }
    Ok(())
}

pub(super) fn command_info(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() == 2 {
        return command(ctx, args);
    }
    let table = ctx.table();
    let out = ctx.out();
    out.array(args.len() - 2);
    for name in args.iter().skip(2) {
        match table.find_full(name) {
            Some(cmd) => write_info(out, cmd),
            None => out.null(),
        }
    }
    Ok(())
}

pub(super) fn command_docs(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let table = ctx.table();
    let out = ctx.out();
    if args.len() == 2 {
        out.map(table.commands().len());
        for &cmd in table.commands() {
            out.bulk(cmd.name.as_bytes());
            write_docs(out, cmd);
        }
        return Ok(());
    }
    let found: Vec<_> = args.iter().skip(2).filter_map(|n| table.find_full(n)).collect();
    out.map(found.len());
    for cmd in found {
        out.bulk(cmd.name.as_bytes());
        write_docs(out, cmd);
    }
    Ok(())
}

/// COMMAND GETKEYS command arg...: the keys that call would name (cluster-aware clients ask
/// this for commands whose keys move, such as ZUNION's), found as Redis's
/// `getKeysSubcommandImpl` finds them, with its errors in its order.
pub(super) fn command_getkeys(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let call = args.skip(2);
    let table = ctx.table();
    let Some(cmd) = find_call(table, call) else { return Err("ERR Invalid command specified".into()) };
    if !cmd.has_keys() {
        return Err("ERR The command has no key arguments".into());
    }
    let argc = i64::try_from(call.len()).unwrap_or(i64::MAX);
    let arity = i64::from(cmd.arity);
    if (arity > 0 && arity != argc) || argc < -arity {
        return Err("ERR Invalid number of arguments specified for command".into());
    }
    let mut keys = Vec::new();
    let found = key_positions(cmd.key_specs, call, |i, _| keys.push(i));
    if found.is_err() {
        keys.clear();
        // Where the key specs give up on a count, Redis asks the command's own key finder,
        // which reads the count as `atoi` does and gives no keys when it is out of range.
        if let Some(fallback) = count_fallback(cmd, call) {
            keys = fallback;
        } else {
            ctx.out().array(0);
            return Ok(());
        }
    }
    if keys.is_empty() {
        if cmd.has(Flags::NO_MANDATORY_KEYS) {
            ctx.out().array(0);
            return Ok(());
        }
        return Err("ERR Invalid arguments specified for command".into());
    }
    let out = ctx.out();
    out.array(keys.len());
    for i in keys {
        out.bulk(call.get(i));
    }
    Ok(())
}

/// The command a call names, as Redis's `lookupCommand`: a container named alone is itself.
fn find_call(table: &Table, call: Args<'_>) -> Option<&'static Command> {
    if call.is_empty() {
        return None;
    }
    let cmd = table.lookup(call.get(0))?;
    if cmd.subcommands.is_empty() || call.len() == 1 {
        return Some(cmd);
    }
    cmd.subcommand(call.get(1))
}

/// Redis's `genericGetKeys` for commands whose keys follow a count (ZUNION, LMPOP, ...): the
/// count read as `atoi` reads it; no keys when it is below 1 or more than the arguments after
/// it. `None` for commands without a count.
fn count_fallback(cmd: &Command, call: Args<'_>) -> Option<Vec<usize>> {
    let mut keys = Vec::new();
    for spec in cmd.key_specs {
        let (Begin::Index(pos), find) = (spec.begin, spec.find) else { return None };
        let pos = usize::try_from(pos).ok()?;
        match find {
            Find::Range { last: 0, .. } => keys.push(pos),
            Find::Keynum { index, first, step } => {
                let at = pos + usize::try_from(index).ok()?;
                let first = pos + usize::try_from(first).ok()?;
                let step = usize::try_from(step).ok().filter(|&s| s > 0)?;
                let count = if at < call.len() { atoi(call.get(at)) } else { 0 };
                let available = i64::try_from(call.len().saturating_sub(first) / step).unwrap_or(i64::MAX);
                if count < 1 || count > available {
                    return Some(Vec::new());
                }
                let count = usize::try_from(count).ok()?;
                keys.extend((0..count).map(|k| first + k * step));
            }
            _ => return None,
        }
    }
    cmd.key_specs.iter().any(|s| matches!(s.find, Find::Keynum { .. })).then_some(keys)
}

/// C's `atoi`: optional spaces and sign, then digits; 0 when there are none.
fn atoi(s: &[u8]) -> i64 {
    let s = crate::core::error::c_str(s);
    let mut i = s.iter().take_while(|c| c.is_ascii_whitespace()).count();
    let negative = matches!(s.get(i), Some(b'-'));
    if matches!(s.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let mut n: i64 = 0;
    for &c in s[i..].iter().take_while(|c| c.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(c - b'0'));
    }
    if negative { -n } else { n }
}

/// Writes a set of names: those of `names` whose flag `has` holds.
fn write_names<F: Copy>(out: &mut Reply, names: &[(F, &str)], has: impl Fn(F) -> bool) {
    let chosen: Vec<&str> = names.iter().filter(|(f, _)| has(*f)).map(|(_, n)| *n).collect();
    out.set(chosen.len());
    for n in chosen {
        out.simple(n);
    }
}

/// One command as COMMAND INFO describes it (Redis's `addReplyCommandInfo`).
fn write_info(out: &mut Reply, cmd: &Command) {
    out.array(10);
    out.bulk(cmd.name.as_bytes());
    out.int(i64::from(cmd.arity));
    write_names(out, FLAG_NAMES, |f| cmd.flags.contains(f));
    let (first, last, step) = cmd.keys;
    out.int(i64::from(first));
    out.int(i64::from(last));
    out.int(i64::from(step));
    let categories: Vec<String> =
        ACL_NAMES.iter().filter(|(c, _)| cmd.acl.contains(*c)).map(|(_, n)| format!("@{n}")).collect();
    out.set(categories.len());
    for c in &categories {
        out.simple(c);
    }
    out.set(cmd.tips.len());
    for tip in cmd.tips {
        out.bulk(tip.as_bytes());
    }
    out.set(cmd.key_specs.len());
    for spec in cmd.key_specs {
        write_key_spec(out, spec);
    }
    if cmd.subcommands.is_empty() {
        out.set(0);
    } else {
        out.array(cmd.subcommands.len());
        for sub in cmd.subcommands {
            write_info(out, sub);
        }
    }
}

/// One key spec (Redis's `addReplyCommandKeySpecs`).
fn write_key_spec(out: &mut Reply, spec: &KeySpec) {
    out.map(3 + usize::from(spec.notes.is_some()));
    if let Some(notes) = spec.notes {
        out.bulk(b"notes");
        out.bulk(notes.as_bytes());
    }
    out.bulk(b"flags");
    write_names(out, KEY_FLAG_NAMES, |f| spec.flags.contains(f));
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    match spec.begin {
        Begin::Index(pos) => {
            out.bulk(b"index");
            out.bulk(b"spec");
            out.map(1);
            out.bulk(b"index");
            out.int(i64::from(pos));
        }
        Begin::Keyword { keyword, start } => {
            out.bulk(b"keyword");
            out.bulk(b"spec");
            out.map(2);
            out.bulk(b"keyword");
            out.bulk(keyword.as_bytes());
            out.bulk(b"startfrom");
            out.int(i64::from(start));
        }
        Begin::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
        }
    }
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    match spec.find {
        Find::Range { last, step, limit } => {
            out.bulk(b"range");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"lastkey");
            out.int(i64::from(last));
            out.bulk(b"keystep");
            out.int(i64::from(step));
            out.bulk(b"limit");
            out.int(i64::from(limit));
        }
        Find::Keynum { index, first, step } => {
            out.bulk(b"keynum");
            out.bulk(b"spec");
            out.map(3);
            out.bulk(b"keynumidx");
            out.int(i64::from(index));
            out.bulk(b"firstkey");
            out.int(i64::from(first));
            out.bulk(b"keystep");
            out.int(i64::from(step));
        }
        Find::Unknown => {
            out.bulk(b"unknown");
            out.bulk(b"spec");
            out.map(0);
        }
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
