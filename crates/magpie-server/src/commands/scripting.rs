//! Scripting commands: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, FCALL, FCALL_RO and
//! FUNCTION, with Redis 7.0's checks and texts (eval.c, functions.c). The script cache, the
//! libraries and the running script are `crate::services::scripting`'s; running a script
//! (its `redis.call` through the dispatcher, atomically, logged as its effects) is the
//! execution layer's, reached through [`Ctx::run_script`].
//!
//! Every command that runs a script, and every command that changes the libraries, runs
//! alone (`RUNS_ALONE`), as Redis's single thread runs them: a script sees no other client's
//! changes and no other client sees half of its own.

use std::time::Instant;

use magpie_lua::{LOAD_TIMEOUT, ScriptFlags};
use magpie_persist::rdb::{WriteOptions, function_dump, function_restore};
use magpie_protocol::Args;

use crate::core::error::{CmdResult, Error, int_arg, is};
use crate::model::{Command, Ctx, KeySpec, ScriptRun, command};
use crate::services::scripting::{NOSCRIPT, RestorePolicy, err_parts};
use crate::{acl, flags, key_flags};

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("eval", -3, flags![NOSCRIPT, SKIP_MONITOR, MAY_REPLICATE, NO_MANDATORY_KEYS, STALE, RUNS_ALONE, LOGS_EFFECTS], "scripting", "2.6.0", "Execute a Lua script server side",
        "script numkeys:integer [key ...] [arg ...]", eval)
        .keys(&[KeySpec::keynum(2, 0, 1, 1, key_flags![RW, ACCESS, UPDATE]).notes("We cannot tell how the keys will be used so we assume the worst, RW and UPDATE")]),
    Command::new("evalsha", -3, flags![NOSCRIPT, SKIP_MONITOR, MAY_REPLICATE, NO_MANDATORY_KEYS, STALE, RUNS_ALONE, LOGS_EFFECTS], "scripting", "2.6.0", "Execute a Lua script server side",
        "sha1 numkeys:integer [key ...] [arg ...]", evalsha)
        .keys(&[KeySpec::keynum(2, 0, 1, 1, key_flags![RW, ACCESS, UPDATE])]),
    Command::new("eval_ro", -3, flags![NOSCRIPT, SKIP_MONITOR, NO_MANDATORY_KEYS, STALE, READONLY, RUNS_ALONE], "scripting", "7.0.0", "Execute a read-only Lua script server side",
        "script numkeys:integer [key ...] [arg ...]", eval_ro)
        .keys(&[KeySpec::keynum(2, 0, 1, 1, key_flags![RO, ACCESS]).notes("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS")]),
    Command::new("evalsha_ro", -3, flags![NOSCRIPT, SKIP_MONITOR, NO_MANDATORY_KEYS, STALE, READONLY, RUNS_ALONE], "scripting", "7.0.0", "Execute a read-only Lua script server side",
        "sha1 numkeys:integer [key ...] [arg ...]", evalsha_ro)
        .keys(&[KeySpec::keynum(2, 0, 1, 1, key_flags![RO, ACCESS])]),
    Command::new("fcall", -3, flags![NOSCRIPT, SKIP_MONITOR, MAY_REPLICATE, NO_MANDATORY_KEYS, STALE, RUNS_ALONE, LOGS_EFFECTS], "scripting", "7.0.0", "Invoke a function",
        "function numkeys:integer [key ...] [arg ...]", fcall)
        .keys(&[KeySpec::keynum(2, 0, 1, 1, key_flags![RW, ACCESS, UPDATE]).notes("We cannot tell how the keys will be used so we assume the worst, RW and UPDATE")]),
    Command::new("fcall_ro", -3, flags![NOSCRIPT, SKIP_MONITOR, NO_MANDATORY_KEYS, STALE, READONLY, RUNS_ALONE], "scripting", "7.0.0", "Invoke a read-only function",
        "function numkeys:integer [key ...] [arg ...]", fcall_ro)
        .keys(&[KeySpec::keynum(2, 0, 1, 1, key_flags![RO, ACCESS]).notes("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS")]),
    Command::new("script", -2, flags![], "scripting", "2.6.0", "A container for Lua scripts management commands",
        "", command::container)
        .acl(acl![])
        .with_subcommands(&[
            Command::new("script|debug", 3, flags![NOSCRIPT], "scripting", "3.2.0", "Set the debug mode for executed scripts.",
                "YES|SYNC|NO", script_debug),
            Command::new("script|exists", -3, flags![NOSCRIPT], "scripting", "2.6.0", "Check existence of scripts in the script cache.",
                "sha1 [sha1 ...]", script_exists)
                .tips(&["request_policy:all_shards", "response_policy:agg_logical_and"]),
            Command::new("script|flush", -2, flags![NOSCRIPT], "scripting", "2.6.0", "Remove all the scripts from the script cache.",
                "[ASYNC|SYNC]", script_flush)
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
            Command::new("script|help", 2, flags![LOADING, STALE], "scripting", "5.0.0", "Show helpful text about the different subcommands",
                "", script_help),
            Command::new("script|kill", 2, flags![NOSCRIPT, ALLOW_BUSY], "scripting", "2.6.0", "Kill the script currently in execution.",
                "", script_kill)
                .tips(&["request_policy:all_shards", "response_policy:one_succeeded"]),
            Command::new("script|load", 3, flags![NOSCRIPT, STALE], "scripting", "2.6.0", "Load the specified Lua script into the script cache.",
                "script", script_load)
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
        ]),
    Command::new("function", -2, flags![], "scripting", "7.0.0", "A container for function commands",
        "", command::container)
        .acl(acl![])
        .with_subcommands(&[
            Command::new("function|delete", 3, flags![NOSCRIPT, WRITE, RUNS_ALONE], "scripting", "7.0.0", "Delete a function by name",
                "library-name", function_delete)
                .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
            Command::new("function|dump", 2, flags![NOSCRIPT], "scripting", "7.0.0", "Dump all functions into a serialized binary payload",
                "", function_dump_cmd),
            Command::new("function|flush", -2, flags![NOSCRIPT, WRITE, RUNS_ALONE], "scripting", "7.0.0", "Deleting all functions",
                "[ASYNC|SYNC]", function_flush)
                .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
            Command::new("function|help", 2, flags![LOADING, STALE], "scripting", "7.0.0", "Show helpful text about the different subcommands",
                "", function_help),
            Command::new("function|kill", 2, flags![NOSCRIPT, ALLOW_BUSY], "scripting", "7.0.0", "Kill the function currently in execution.",
                "", function_kill)
                .tips(&["request_policy:all_shards", "response_policy:one_succeeded"]),
            Command::new("function|list", -2, flags![NOSCRIPT], "scripting", "7.0.0", "List information about all the functions",
                "[LIBRARYNAME library-name-pattern] [WITHCODE]", function_list)
                .tips(&["nondeterministic_output_order"]),
            Command::new("function|load", -3, flags![NOSCRIPT, WRITE, DENYOOM, RUNS_ALONE], "scripting", "7.0.0", "Create a function with the given arguments (name, code, description)",
                "[REPLACE] function-code", function_load)
                .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
            Command::new("function|restore", -3, flags![NOSCRIPT, WRITE, DENYOOM, RUNS_ALONE], "scripting", "7.0.0", "Restore all the functions on the given payload",
                "serialized-value [FLUSH|APPEND|REPLACE]", function_restore_cmd)
                .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
            Command::new("function|stats", 2, flags![NOSCRIPT, ALLOW_BUSY], "scripting", "7.0.0", "Return information about the function currently running (name, description, duration)",
                "", function_stats)
                .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"]),
        ]),
];

// ---- running scripts --------------------------------------------------------------------

/// A script's KEYS and ARGV.
type KeysAndArgs<'a> = (Vec<&'a [u8]>, Vec<&'a [u8]>);

/// KEYS and ARGV of `EVAL script numkeys key... arg...` (and FCALL), with Redis's checks of
/// `numkeys`; `bad_number` is the error for a number that is not one.
fn keys_and_args<'a>(args: Args<'a>, bad_number: Error) -> Result<KeysAndArgs<'a>, Error> {
    let numkeys = int_arg(args.get(2)).map_err(|_| bad_number)?;
    let given = (args.len() - 3) as i64;
    if numkeys > given {
        return Err("ERR Number of keys can't be greater than number of args".into());
    }
    if numkeys < 0 {
        return Err("ERR Number of keys can't be negative".into());
    }
    let split = 3 + numkeys as usize;
    let keys = (3..split).map(|i| args.get(i)).collect();
    let argv = (split..args.len()).map(|i| args.get(i)).collect();
    Ok((keys, argv))
}

/// `scriptPrepareForRun`'s refusals, and whether the script may not write (Redis's
/// `SCRIPT_READ_ONLY`) and may run past `maxmemory` (`SCRIPT_ALLOW_OOM`).
fn prepare(ctx: &Ctx<'_>, flags: ScriptFlags, ro: bool) -> Result<(bool, bool), Error> {
    let compat = flags.contains(ScriptFlags::EVAL_COMPAT_MODE);
    let no_writes = !compat && flags.contains(ScriptFlags::NO_WRITES);
    let allow_oom = !compat && flags.contains(ScriptFlags::ALLOW_OOM);
    if !compat && !no_writes {
        // A script that declared it may write is a write command (`scriptFlagsToCmdFlags`):
        // refused as one while writes are (MISCONF), and by the *_RO commands.
        if let Some(e) = ctx.server().persistence().deny_writes() {
            return Err(e);
        }
        if ro {
            return Err("ERR Can not execute a script with write flag using *_ro command.".into());
        }
        // ... and, without `allow-oom`, a `denyoom` one: refused over `maxmemory`. Redis's
        // processCommand refuses it with the plain OOM error before the script starts; inside
        // EXEC (not checked there) the script itself says why.
        if !allow_oom && ctx.server().settings().memory.over_limit() {
            return Err(if ctx.session().txn.executing {
                "OOM allow-oom flag is not set on the script, can not run it when used memory > 'maxmemory'".into()
            } else {
                crate::core::error::OOM.into()
            });
        }
    }
    Ok((ro || no_writes, allow_oom))
}

/// EVAL, EVALSHA and their read-only forms (`evalGenericCommand`).
fn eval_generic(ctx: &mut Ctx<'_>, args: Args<'_>, by_sha: bool, ro: bool) -> CmdResult {
    if by_sha && args.get(1).len() != 40 {
        // No SHA1 has another length: refused before anything else, as Redis does.
        return Err(NOSCRIPT.into());
    }
    let (keys, argv) = keys_and_args(args, crate::core::error::NOT_INTEGER.into())?;
    let scripting = ctx.server().scripting();
    let found;
    let loaded;
    let (sha, flags): (&str, _) = if by_sha {
        found = scripting.find_script(args.get(1))?.ok_or_else(|| Error::from(NOSCRIPT))?;
        (found.0.as_str(), found.1)
    } else {
        loaded = scripting.load_script(args.get(1))?;
        (&loaded.0, loaded.1)
    };
    let (read_only, allow_oom) = prepare(ctx, flags, ro)?;
    let run = ScriptRun { eval: true, read_only, allow_oom, name: sha.as_bytes(), command: args };
    ctx.run_script(&run, &mut |host, out| scripting.run_script(host, sha, &keys, &argv, out))
}

pub(super) fn eval(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    eval_generic(ctx, args, false, false)
}

pub(super) fn evalsha(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    eval_generic(ctx, args, true, false)
}

pub(super) fn eval_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    eval_generic(ctx, args, false, true)
}

pub(super) fn evalsha_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    eval_generic(ctx, args, true, true)
}

/// FCALL and FCALL_RO (`fcallCommandGeneric`).
fn fcall_generic(ctx: &mut Ctx<'_>, args: Args<'_>, ro: bool) -> CmdResult {
    let scripting = ctx.server().scripting();
    let Some((name, flags)) = scripting.function(args.get(1)) else {
        return Err("ERR Function not found".into());
    };
    let (keys, argv) = keys_and_args(args, "ERR Bad number of keys provided".into())?;
    let (read_only, allow_oom) = prepare(ctx, flags, ro)?;
    let run = ScriptRun { eval: false, read_only, allow_oom, name: &name, command: args };
    ctx.run_script(&run, &mut |host, out| scripting.call_function(host, &name, &keys, &argv, out))
}

pub(super) fn fcall(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    fcall_generic(ctx, args, false)
}

pub(super) fn fcall_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    fcall_generic(ctx, args, true)
}

// ---- SCRIPT -----------------------------------------------------------------------------

fn script_debug(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mode = args.get(2);
    if is(mode, "no") {
        ctx.out().ok();
        return Ok(());
    }
    if is(mode, "yes") || is(mode, "sync") {
        return Err("ERR SCRIPT DEBUG is not supported: Magpie has no Lua debugger".into());
    }
    Err("ERR Use SCRIPT DEBUG YES/SYNC/NO".into())
}

fn script_exists(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let scripting = ctx.server().scripting();
    ctx.out().array(args.len() - 2);
    for sha in args.iter().skip(2) {
        ctx.out().int(i64::from(scripting.script_exists(sha)));
    }
    Ok(())
}

/// SCRIPT FLUSH [ASYNC|SYNC]. The cache is emptied at once either way (a thread's Lua state is
/// freed when that thread next runs a script).
fn script_flush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mode_ok = args.len() == 2 || (args.len() == 3 && (is(args.get(2), "sync") || is(args.get(2), "async")));
    if !mode_ok {
        return Err("ERR SCRIPT FLUSH only support SYNC|ASYNC option".into());
    }
    ctx.server().scripting().flush_scripts();
    ctx.out().ok();
    Ok(())
}

fn script_load(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (sha, _) = ctx.server().scripting().load_script(args.get(2))?;
    ctx.out().bulk(sha.as_bytes());
    Ok(())
}

fn script_kill(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.server().scripting().running().kill(true)?;
    ctx.out().ok();
    Ok(())
}

fn help(ctx: &mut Ctx<'_>, container: &str, lines: &[&str]) -> CmdResult {
    super::reply_help(ctx, container, lines)
}

fn script_help(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    help(
        ctx,
        "SCRIPT",
        &[
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
        ],
    )
}

// ---- FUNCTION ---------------------------------------------------------------------------

/// Redis's `addReplySubcommandSyntaxError`.
fn subcommand_syntax(args: Args<'_>, container: &str) -> Error {
    let sub = crate::core::error::c_str(args.get(1));
    let mut msg = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    msg.extend_from_slice(&sub[..sub.len().min(128)]);
    msg.extend_from_slice(format!("'. Try {container} HELP.").as_bytes());
    Error::bytes(msg)
}

/// A change to the libraries takes a number in the keyspace's sequence of changes, so that
/// dispatch logs the command (as Redis propagates FUNCTION LOAD, DELETE, FLUSH and RESTORE
/// to its AOF) and the snapshot schedule counts it.
fn libraries_changed(ctx: &Ctx<'_>) {
    ctx.server().keyspace().tap().tick_outside();
}

/// FUNCTION LOAD [REPLACE] code
fn function_load(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut replace = false;
    for opt in args.iter().take(args.len() - 1).skip(2) {
        if !is(opt, "replace") {
            let opt = crate::core::error::c_str(opt);
            return Err(Error::bytes([b"ERR Unknown option given: ", opt].concat()));
        }
        replace = true;
    }
    let code = args.get(args.len() - 1);
    // The log's replay loads without a time limit, as Redis loads from its AOF.
    let timeout = (!ctx.session().is_internal()).then_some(LOAD_TIMEOUT);
    let name = ctx.server().scripting().load_library(code, replace, timeout)?;
    libraries_changed(ctx);
    ctx.out().bulk(&name);
    Ok(())
}

fn function_delete(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ctx.server().scripting().delete_library(args.get(2))?;
    libraries_changed(ctx);
    ctx.out().ok();
    Ok(())
}

/// FUNCTION FLUSH [ASYNC|SYNC]
fn function_flush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 3 {
        return Err(subcommand_syntax(args, "FUNCTION"));
    }
    let mode_ok = args.len() == 2 || is(args.get(2), "sync") || is(args.get(2), "async");
    if !mode_ok {
        return Err("ERR FUNCTION FLUSH only supports SYNC|ASYNC option".into());
    }
    ctx.server().scripting().flush_functions();
    libraries_changed(ctx);
    ctx.out().ok();
    Ok(())
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]
fn function_list(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (mut with_code, mut pattern) = (false, None);
    let mut i = 2;
    while i < args.len() {
        let arg = args.get(i);
        if !with_code && is(arg, "withcode") {
            with_code = true;
        } else if pattern.is_none() && is(arg, "libraryname") {
            if i >= args.len() - 1 {
                return Err("ERR library name argument was not given".into());
            }
            i += 1;
            pattern = Some(args.get(i));
        } else {
            return Err(err_parts(&[b"Unknown argument ", crate::core::error::c_str(arg)]));
        }
        i += 1;
    }
    let libraries = ctx.server().scripting().libraries(pattern);
    let out = ctx.out();
    out.array(libraries.len());
    for lib in &libraries {
        out.map(if with_code { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(&lib.name);
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(lib.functions.len());
        for f in &lib.functions {
            out.map(3);
            out.bulk(b"name");
            out.bulk(&f.name);
            out.bulk(b"description");
            match &f.description {
                Some(d) => out.bulk(d),
                None => out.null(),
            }
            out.bulk(b"flags");
            let names: Vec<&str> = f.flags.names().collect();
            out.set(names.len());
            for name in names {
                out.simple(name);
            }
        }
        if with_code {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
    Ok(())
}

/// FUNCTION DUMP: Redis's payload (RDB function records, version, CRC64).
fn function_dump_cmd(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let codes = ctx.server().scripting().library_codes();
    let payload = function_dump(codes.iter().map(Vec::as_slice), &WriteOptions::default());
    ctx.out().bulk(&payload);
    Ok(())
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]
fn function_restore_cmd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 4 {
        return Err(subcommand_syntax(args, "FUNCTION"));
    }
    let policy = if args.len() == 4 {
        let p = args.get(3);
        if is(p, "append") {
            RestorePolicy::Append
        } else if is(p, "replace") {
            RestorePolicy::Replace
        } else if is(p, "flush") {
            RestorePolicy::Flush
        } else {
            return Err("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.".into());
        }
    } else {
        RestorePolicy::Append
    };
    let codes = function_restore(args.get(2)).map_err(|e| Error::msg(e.to_string()))?;
    ctx.server().scripting().restore_libraries(&codes, policy)?;
    libraries_changed(ctx);
    ctx.out().ok();
    Ok(())
}

fn function_kill(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.server().scripting().running().kill(false)?;
    ctx.out().ok();
    Ok(())
}

/// FUNCTION STATS: the running function (only seen once it is past `busy-reply-threshold`:
/// before that this command waits for it), and the engine's counts.
fn function_stats(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let scripting = ctx.server().scripting();
    let running = scripting.running().stats()?;
    let (libraries, functions) = scripting.function_counts();
    let out = ctx.out();
    out.map(2);
    out.bulk(b"running_script");
    match running {
        None => out.null(),
        Some(r) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(&r.name);
            out.bulk(b"command");
            out.array(r.command.len());
            for arg in &r.command {
                out.bulk(arg);
            }
            out.bulk(b"duration_ms");
            out.int(i64::try_from(Instant::now().duration_since(r.started).as_millis()).unwrap_or(i64::MAX));
        }
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(libraries as i64);
    out.bulk(b"functions_count");
    out.int(functions as i64);
    Ok(())
}

fn function_help(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    help(
        ctx,
        "FUNCTION",
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION \
             RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
        ],
    )
}
