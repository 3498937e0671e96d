//! Server commands: DBSIZE, FLUSHDB, FLUSHALL, TIME, SHUTDOWN, CONFIG, INFO.

use std::time::{SystemTime, UNIX_EPOCH};

use magpie_protocol::Args;

use crate::core::args::Cursor;
use crate::core::error::{self, CmdResult, Error, is};
use crate::model::Ctx;
use crate::model::command::arity_error;

pub(super) fn dbsize(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let n = ctx.db().len();
    ctx.out().int(n as i64);
    Ok(())
}

/// The optional ASYNC | SYNC of FLUSHDB and FLUSHALL. Either way the data is gone when the
/// reply is sent; the memory is freed on another thread.
fn flush_mode(args: Args<'_>) -> CmdResult {
    let mut options = Cursor::new(args, 1);
    options.eat_any(&["async", "sync"]);
    options.finish()
}

pub(super) fn flushdb(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    flush_mode(args)?;
    let old = ctx.db().flush();
    crate::services::drop_in_background(old);
    ctx.out().ok();
    Ok(())
}

pub(super) fn flushall(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    flush_mode(args)?;
    let old: Vec<_> = ctx.keyspace().dbs().iter().map(magpie_store::Db::flush).collect();
    crate::services::drop_in_background(old);
    ctx.out().ok();
    Ok(())
}

pub(super) fn time(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    ctx.out().array(2);
    ctx.out().bulk(itoa::Buffer::new().format(now.as_secs()).as_bytes());
    ctx.out().bulk(itoa::Buffer::new().format(now.subsec_micros()).as_bytes());
    Ok(())
}

/// SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]. It runs alone (no other command runs
/// meanwhile, as in Redis): with snapshots configured (or SAVE), a final snapshot is taken
/// before the server stops; if it fails, the server goes on (unless FORCE) and says so, and
/// the log says why. Once it succeeds, writes are refused until the server exits. The log is
/// flushed and fsynced on the way out. On success the connection closes without a reply, as
/// in Redis.
pub(super) fn shutdown(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (mut save, mut nosave, mut abort, mut force) = (false, false, false, false);
    for opt in args.iter().skip(1) {
        if is(opt, "nosave") {
            nosave = true;
        } else if is(opt, "save") {
            save = true;
        } else if is(opt, "abort") {
            abort = true;
        } else if is(opt, "force") {
            force = true;
        } else if !is(opt, "now") {
            return Err(error::syntax());
        }
    }
    if (save && nosave) || (abort && args.len() > 2) {
        return Err(error::syntax());
    }
    if abort {
        // A shutdown runs alone from start to end (there are no replicas to wait for), so
        // none is ever in progress when ABORT can run.
        return Err("ERR No shutdown in progress.".into());
    }
    let running = ctx.server().scripting().running();
    if !nosave && running.timed_out() {
        // A script past busy-reply-threshold: only SHUTDOWN NOSAVE may stop the server.
        return Err(running.busy_error());
    }
    let wanted = if save {
        Some(true)
    } else if nosave {
        Some(false)
    } else {
        None
    };
    let server = ctx.server();
    if nosave {
        // Declined: the shutdown path must not save either.
        server.persistence().decline_final_save();
    }
    if server.persistence().final_save(wanted, force).is_err() {
        tracing::warn!("Errors trying to shut down the server. Check the logs for more information.");
        return Err("ERR Errors trying to SHUTDOWN. Check logs.".into());
    }
    server.shutdown();
    ctx.session_mut().close();
    Ok(())
}

pub(super) fn config_get(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let found = ctx.server().settings().get(args.skip(2).iter());
    ctx.out().map(found.len());
    for (name, value) in found {
        ctx.out().bulk(name.as_bytes());
        ctx.out().bulk(value.as_bytes());
    }
    Ok(())
}

pub(super) fn config_set(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let rest = args.skip(2);
    if !rest.len().is_multiple_of(2) {
        return Err(arity_error("config|set"));
    }
    let mut it = rest.iter();
    let mut pairs = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        pairs.push((k, v));
    }
    let server = ctx.server();
    let local = ctx.session().is_local();
    server.config_set(&pairs, local).map_err(|e| Error::msg(format!("ERR {e}")))?;
    server.persistence().follow_appendonly()?;
    ctx.out().ok();
    Ok(())
}

pub(super) fn config_resetstat(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.server().reset_stats();
    ctx.out().ok();
    Ok(())
}

/// SAVE
pub(super) fn save(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.server().persistence().save()?;
    ctx.out().ok();
    Ok(())
}

/// BGSAVE [SCHEDULE]
pub(super) fn bgsave(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut options = Cursor::new(args, 1);
    let schedule = options.eat("schedule");
    options.finish()?;
    let msg = ctx.server().persistence().bgsave(schedule)?;
    ctx.out().simple(msg);
    Ok(())
}

/// BGREWRITEAOF
pub(super) fn bgrewriteaof(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let msg = ctx.server().persistence().bgrewriteaof()?;
    ctx.out().simple(msg);
    Ok(())
}

/// LASTSAVE
pub(super) fn lastsave(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let t = ctx.server().persistence().last_save_unix();
    ctx.out().int(t as i64);
    Ok(())
}

/// INFO [section ...]
pub(super) fn info(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sections = super::info::sections(args.iter().skip(1));
    let text = super::info::report(ctx.server(), ctx.table(), &sections);
    ctx.out().verbatim("txt", text.as_bytes());
    Ok(())
}
