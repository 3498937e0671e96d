//! COMMAND and its subcommands: the table describing itself (COMMAND INFO's flags, key specs
//! and ACL categories; COMMAND DOCS's arguments, which redis-cli shows as hints).

use magpie_protocol::{Args, Reply};

use crate::core::error::CmdResult;
use crate::model::docs::{DocArg, parse_syntax};
use crate::model::{Command, Ctx, flags};

pub fn command(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let commands = ctx.table().commands();
    let out = ctx.out();
    out.array(commands.len());
    for &cmd in commands {
        write_info(out, cmd);
    }
    Ok(())
}

pub fn command_count(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let n = ctx.table().commands().len();
    ctx.out().int(n as i64);
    Ok(())
}

pub fn command_list(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
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

pub fn command_info(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() == 2 {
        return command(ctx, args);
    }
    let table = ctx.table();
    let out = ctx.out();
    out.array(args.len() - 2);
    for name in args.iter().skip(2) {
        match table.find_full(name) {
            Some(cmd) => write_info(out, cmd),
            None => out.null_array(),
        }
    }
    Ok(())
}

pub fn command_docs(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
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
/// this for commands whose keys move, such as ZUNION's).
pub fn command_getkeys(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let call = args.skip(2);
    let cmd = match ctx.table().resolve(call) {
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
    ctx.out().array(keys.len());
    for key in keys {
        ctx.out().bulk(key);
    }
    Ok(())
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
