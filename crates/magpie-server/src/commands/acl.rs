//! ACL and its subcommands (Redis 7.0's `aclCommand`), and the description of the command
//! table the ACL service resolves rules through. Users, rules, the log and the ACL file live in
//! `crate::services::acl`; the checks are made by dispatch (`crate::exec`).

use magpie_protocol::Args;

use crate::core::error::{self, CmdResult, Error, int_arg};
use crate::model::flags::ACL_NAMES;
use crate::model::{Command, Ctx, Table, command};
use crate::services::Server;
use crate::services::acl::{CommandIndex, user::has_spaces, user::selector_fields};
use crate::{acl, flags};

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("acl", -2, flags![], "server", "6.0.0", "A container for Access List Control commands.",
        "", command::container)
        .with_subcommands(&[
            Command::new("acl|cat", -2, flags![NOSCRIPT, LOADING, STALE], "server", "6.0.0", "Lists the ACL categories, or the commands inside a category.",
                "[categoryname]", cat),
            Command::new("acl|deluser", -3, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "6.0.0", "Deletes ACL users, and terminates their connections.",
                "username [username ...]", deluser),
            Command::new("acl|dryrun", -4, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "7.0.0", "Simulates the execution of a command by a user, without executing the command.",
                "username command [arg [arg ...]]", dryrun),
            Command::new("acl|genpass", -2, flags![NOSCRIPT, LOADING, STALE], "server", "6.0.0", "Generates a pseudorandom, secure password that can be used to identify ACL users.",
                "[bits:integer]", genpass),
            Command::new("acl|getuser", 3, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "6.0.0", "Lists the ACL rules of a user.",
                "username", getuser),
            Command::new("acl|help", 2, flags![LOADING, STALE], "server", "6.0.0", "Returns helpful text about the different subcommands.",
                "", help),
            Command::new("acl|list", 2, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "6.0.0", "Dumps the effective rules in ACL file format.",
                "", list),
            Command::new("acl|load", 2, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "6.0.0", "Reloads the rules from the configured ACL file.",
                "", load),
            Command::new("acl|log", -2, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "6.0.0", "Lists recent security events generated due to ACL rules.",
                "[count:integer|RESET]", log),
            Command::new("acl|save", 2, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "6.0.0", "Saves the effective ACL rules in the configured ACL file.",
                "", save),
            Command::new("acl|setuser", -3, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "6.0.0", "Creates and modifies an ACL user and its rules.",
                "username [rule [rule ...]]", setuser),
            Command::new("acl|users", 2, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "6.0.0", "Lists all ACL users.",
                "", users),
            Command::new("acl|whoami", 2, flags![NOSCRIPT, LOADING, STALE], "server", "6.0.0", "Returns the authenticated username of the current connection.",
                "", whoami),
        ]),
];

/// The entry of AUTH (in the connection family's table).
pub(super) const AUTH: Command = Command::new(
    "auth",
    -2,
    flags![NOSCRIPT, LOADING, STALE, FAST, NO_AUTH, ALLOW_BUSY],
    "connection",
    "1.0.0",
    "Authenticates the connection.",
    "[username] password",
    super::connection::auth,
)
.acl(acl![CONNECTION]);

/// Describes the command table for the ACL service (ids, full names, categories, parents).
pub(crate) fn index(table: &Table) -> CommandIndex {
    let mut parents = vec![None; table.names().len()];
    for (id, cmd) in table.commands().iter().enumerate() {
        for sub in cmd.subcommands {
            if let Some(sub_id) = table.names().iter().position(|n| *n == sub.name) {
                parents[sub_id] = Some(id);
            }
        }
    }
    let entries = (0..table.names().len())
        .map(|id| {
            let cmd = table.by_id(id).map(|c| (c.name, c.acl.bits()));
            let (name, categories) = cmd.unwrap_or((table.names()[id], 0));
            (name, categories, parents[id])
        })
        .collect();
    CommandIndex::new(entries, ACL_NAMES.iter().map(|(bit, name)| (bit.bits(), *name)).collect())
}

/// The ACL service with the command table described (done once; rules need it).
pub(crate) fn acl_of<'a>(server: &'a Server, table: &Table) -> &'a crate::services::acl::Acl {
    let acl = server.acl();
    acl.set_index(|| index(table));
    acl
}

fn cat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 3 {
        return Err(wrong_args(args));
    }
    let acl = acl_of(ctx.server(), ctx.table());
    if args.len() == 2 {
        ctx.out().array(ACL_NAMES.len());
        for (_, name) in ACL_NAMES {
            ctx.out().bulk(name.as_bytes());
        }
        return Ok(());
    }
    let idx = acl.index();
    let Some(category) = idx.category(args.get(2)) else {
        let name = error::c_str(args.get(2));
        let mut msg = b"ERR Unknown category '".to_vec();
        msg.extend_from_slice(&name[..name.len().min(128)]);
        msg.push(b'\'');
        return Err(Error::bytes(msg));
    };
    let names: Vec<&str> =
        idx.order.iter().filter(|&&id| idx.categories[id] & category != 0).map(|&id| idx.names[id]).collect();
    ctx.out().array(names.len());
    for name in names {
        ctx.out().bulk(name.as_bytes());
    }
    Ok(())
}

fn setuser(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let name = args.get(2);
    if has_spaces(name) {
        return Err("ERR Usernames can't contain spaces or null characters".into());
    }
    let acl = acl_of(ctx.server(), ctx.table());
    acl.set_user(name, args.iter().skip(3)).map_err(|msg| {
        // Redis's `addReplyErrorSdsSafe`: newlines would break the reply.
        let mut text = b"ERR ".to_vec();
        text.extend(msg.into_iter().map(|c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
        Error::bytes(text)
    })?;
    ctx.out().ok();
    Ok(())
}

fn deluser(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let acl = ctx.server().acl();
    let (deleted, own) = acl.del_users(args.iter().skip(2), &ctx.session().login).map_err(Error::from)?;
    if own {
        // As in Redis, the client that deleted its own user gets its reply, then is closed.
        ctx.session_mut().close();
    }
    ctx.out().int(deleted as i64);
    Ok(())
}

fn getuser(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let acl = acl_of(ctx.server(), ctx.table());
    let Some(user) = acl.user(args.get(2)) else {
        ctx.out().null();
        return Ok(());
    };
    let idx = acl.index();
    let out = ctx.out();
    out.map(6);
    out.bulk(b"flags");
    let flags = user.flags();
    out.set(flags.len());
    for f in flags {
        out.bulk(f.as_bytes());
    }
    out.bulk(b"passwords");
    let hashes = user.password_hashes();
    out.array(hashes.len());
    for h in hashes {
        out.bulk(h.as_bytes());
    }
    let selectors = user.selectors();
    for (name, value) in selector_fields(&selectors[0], idx) {
        out.bulk(name.as_bytes());
        out.bulk(&value);
    }
    out.bulk(b"selectors");
    out.array(selectors.len() - 1);
    for s in &selectors[1..] {
        out.map(3);
        for (name, value) in selector_fields(s, idx) {
            out.bulk(name.as_bytes());
            out.bulk(&value);
        }
    }
    Ok(())
}

fn list(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let acl = acl_of(ctx.server(), ctx.table());
    let users = acl.users();
    ctx.out().array(users.len());
    for user in users {
        let mut line = b"user ".to_vec();
        line.extend_from_slice(user.name());
        line.push(b' ');
        line.extend_from_slice(&user.describe(acl.index()));
        ctx.out().bulk(&line);
    }
    Ok(())
}

fn users(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let users = ctx.server().acl().users();
    ctx.out().array(users.len());
    for user in users {
        ctx.out().bulk(user.name());
    }
    Ok(())
}

fn whoami(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let name = ctx.session().login.user().name().to_vec();
    ctx.out().bulk(&name);
    Ok(())
}

const NO_ACLFILE: &str = "ERR This Redis instance is not configured to use an ACL file. You may want to specify users \
                          via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis \
                          configuration file set) in order to store users in the Redis configuration.";

fn load(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let acl = acl_of(ctx.server(), ctx.table());
    if acl.file().is_none() {
        return Err(NO_ACLFILE.into());
    }
    acl.load_file().map_err(|e| Error::msg(format!("ERR {e}")))?;
    ctx.out().ok();
    Ok(())
}

fn save(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let acl = acl_of(ctx.server(), ctx.table());
    if acl.file().is_none() {
        return Err(NO_ACLFILE.into());
    }
    acl.save_file().map_err(|_| {
        Error::from("ERR There was an error trying to save the ACLs. Please check the server logs for more information")
    })?;
    ctx.out().ok();
    Ok(())
}

fn genpass(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    const MAX_BITS: i64 = 4096;
    if args.len() > 3 {
        return Err(wrong_args(args));
    }
    let bits = if args.len() == 3 { int_arg(args.get(2))? } else { 256 };
    if bits <= 0 || bits > MAX_BITS {
        return Err(Error::msg(format!(
            "ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to \
             {MAX_BITS}"
        )));
    }
    let chars = usize::try_from((bits + 3) / 4).unwrap_or(64);
    let pass = crate::services::acl::random_hex(chars).map_err(|e| Error::msg(format!("ERR {e}")))?;
    ctx.out().bulk(pass.as_bytes());
    Ok(())
}

fn log(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 3 {
        return Err(wrong_args(args));
    }
    let acl = ctx.server().acl();
    let mut count = 10;
    if args.len() == 3 {
        if error::is(args.get(2), "reset") {
            acl.log_reset();
            ctx.out().ok();
            return Ok(());
        }
        count = usize::try_from(int_arg(args.get(2))?.max(0)).unwrap_or(usize::MAX);
    }
    let entries = acl.log_entries(count);
    let now = magpie_store::now_ms();
    let out = ctx.out();
    out.array(entries.len());
    for e in entries {
        out.map(7);
        out.bulk(b"count");
        out.int(i64::try_from(e.count).unwrap_or(i64::MAX));
        out.bulk(b"reason");
        out.bulk(e.reason.name().as_bytes());
        out.bulk(b"context");
        out.bulk(e.context.name().as_bytes());
        out.bulk(b"object");
        out.bulk(&e.object);
        out.bulk(b"username");
        out.bulk(&e.username);
        out.bulk(b"age-seconds");
        out.double(now.saturating_sub(e.ctime) as f64 / 1000.0);
        out.bulk(b"client-info");
        out.bulk(&e.client_info);
    }
    Ok(())
}

fn dryrun(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let acl = acl_of(ctx.server(), ctx.table());
    let Some(user) = acl.user(args.get(2)) else {
        // Redis prints the name as a C string: up to a NUL byte.
        let mut msg = b"ERR User '".to_vec();
        msg.extend_from_slice(error::c_str(args.get(2)));
        msg.extend_from_slice(b"' not found");
        return Err(Error::bytes(msg));
    };
    let call = args.skip(3);
    let table = ctx.table();
    let Some((id, cmd)) = lookup(table, call) else {
        let mut msg = b"ERR Command '".to_vec();
        msg.extend_from_slice(error::c_str(call.get(0)));
        msg.extend_from_slice(b"' not found");
        return Err(Error::bytes(msg));
    };
    let argc = i64::try_from(call.len()).unwrap_or(i64::MAX);
    if (cmd.arity > 0 && i64::from(cmd.arity) != argc) || argc < -i64::from(cmd.arity) {
        return Err(Error::msg(format!("ERR wrong number of arguments for '{}' command", cmd.name)));
    }
    match crate::model::access::check(&user, id, cmd, call) {
        Ok(()) => ctx.out().ok(),
        Err(d) => {
            use crate::services::acl::Reason;
            let text = match d.reason {
                Reason::Key | Reason::Channel => {
                    let what = if d.reason == Reason::Key { "key" } else { "channel" };
                    let mut t = b"This user has no permissions to access the '".to_vec();
                    t.extend_from_slice(error::c_str(call.get(d.arg)));
                    t.extend_from_slice(format!("' {what}").as_bytes());
                    t
                }
                _ => format!("This user has no permissions to run the '{}' command", cmd.name).into_bytes(),
            };
            ctx.out().bulk(&text);
        }
    }
    Ok(())
}

/// Redis's `lookupCommand`: a container's subcommand when there is a second argument (none
/// if it is unknown), the command itself otherwise.
fn lookup(table: &Table, call: Args<'_>) -> Option<(usize, &'static Command)> {
    let (id, cmd) = table.lookup_index(call.get(0))?;
    if cmd.subcommands.is_empty() || call.len() < 2 {
        return Some((id, cmd));
    }
    let sub = cmd.subcommand(call.get(1))?;
    let sub_id = table.names().iter().position(|n| *n == sub.name)?;
    Some((sub_id, sub))
}

/// Redis's `addReplySubcommandSyntaxError`, for the subcommands whose arity allows more
/// arguments than they take.
fn wrong_args(args: Args<'_>) -> Error {
    let sub = error::c_str(args.get(1));
    let mut msg = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    msg.extend_from_slice(&sub[..sub.len().min(128)]);
    msg.extend_from_slice(format!("'. Try {} HELP.", String::from_utf8_lossy(args.get(0)).to_uppercase()).as_bytes());
    Error::bytes(msg)
}

fn help(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    const LINES: &[&str] = &[
        "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CAT [<category>]",
        "    List all commands that belong to <category>, or all command categories",
        "    when no category is specified.",
        "DELUSER <username> [<username> ...]",
        "    Delete a list of users.",
        "DRYRUN <username> <command> [<arg> ...]",
        "    Returns whether the user can execute the given command without executing the command.",
        "GETUSER <username>",
        "    Get the user's details.",
        "GENPASS [<bits>]",
        "    Generate a secure 256-bit user password. The optional `bits` argument can",
        "    be used to specify a different size.",
        "LIST",
        "    Show users details in config file format.",
        "LOAD",
        "    Reload users from the ACL file.",
        "LOG [<count> | RESET]",
        "    Show the ACL log entries.",
        "SAVE",
        "    Save the current config to the ACL file.",
        "SETUSER <username> <attribute> [<attribute> ...]",
        "    Create or modify a user with the specified attributes.",
        "USERS",
        "    List all the registered usernames.",
        "WHOAMI",
        "    Return the current connection username.",
        "HELP",
        "    Prints this help.",
    ];
    ctx.out().array(LINES.len());
    for line in LINES {
        ctx.out().simple(line);
    }
    Ok(())
}
