//! The CLIENT subcommands that control connections (Redis's `clientCommand` in
//! networking.c): KILL, PAUSE, UNPAUSE, UNBLOCK, REPLY, NO-EVICT. What they set lives in each
//! client's `services::clients::Control` and the registry's pause; the front end acts on it.

use magpie_protocol::Args;

use crate::core::error::{self, CmdResult, Error, int_arg, is};
use crate::model::Ctx;
use crate::services::clients::{
    ClientInfo, PauseKind, REPLY_OFF, REPLY_ON, REPLY_SKIP_NEXT, UNBLOCK_ERROR, UNBLOCK_TIMEOUT,
};

/// The client types of CLIENT KILL/LIST TYPE: normal or pubsub (Magpie has no replicas or
/// masters); `None` for an unknown name, answered with Redis's error.
fn client_type(name: &[u8]) -> Result<Option<bool>, Error> {
    if is(name, "normal") {
        Ok(Some(false))
    } else if is(name, "pubsub") {
        Ok(Some(true))
    } else if is(name, "master") || is(name, "replica") || is(name, "slave") {
        Ok(None)
    } else {
        let mut msg = b"ERR Unknown client type '".to_vec();
        msg.extend_from_slice(error::c_str(name));
        msg.push(b'\'');
        Err(Error::bytes(msg))
    }
}

/// CLIENT KILL addr:port (the old form: `+OK`, or an error when no client has that address)
/// or CLIENT KILL [ID id] [TYPE type] [USER name] [ADDR addr] [LADDR addr] [SKIPME yes|no]
/// (the number killed). A client that kills itself is closed after the reply.
pub(super) fn client_kill(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut addr: Option<&[u8]> = None;
    let mut laddr: Option<&[u8]> = None;
    let mut user: Option<&[u8]> = None;
    // Some(pubsub?) for TYPE normal|pubsub; Some(None) for a type no client has.
    let mut kind: Option<Option<bool>> = None;
    let mut id = 0u64;
    let mut skipme = true;
    let old_form = args.len() == 3;
    if old_form {
        addr = Some(args.get(2));
        skipme = false; // with the old form a client may kill itself
    } else {
        let mut i = 2;
        while i < args.len() {
            let (opt, more) = (args.get(i), i + 1 < args.len());
            if !more {
                return Err(error::syntax());
            }
            let value = args.get(i + 1);
            if is(opt, "id") {
                id = int_arg(value)
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| Error::from("ERR client-id should be greater than 0"))? as u64;
            } else if is(opt, "type") {
                kind = Some(client_type(value)?);
            } else if is(opt, "addr") {
                addr = Some(value);
            } else if is(opt, "laddr") {
                laddr = Some(value);
            } else if is(opt, "user") {
                if ctx.server().acl().user(value).is_none() {
                    let mut msg = b"ERR No such user '".to_vec();
                    msg.extend_from_slice(error::c_str(value));
                    msg.push(b'\'');
                    return Err(Error::bytes(msg));
                }
                user = Some(value);
            } else if is(opt, "skipme") {
                skipme = if is(value, "yes") {
                    true
                } else if is(value, "no") {
                    false
                } else {
                    return Err(error::syntax());
                };
            } else {
                return Err(error::syntax());
            }
            i += 2;
        }
    }
    let me = ctx.session().id();
    let matches = |c: &ClientInfo| {
        addr.is_none_or(|a| c.addr.to_string().as_bytes() == a)
            && laddr.is_none_or(|a| c.laddr.to_string().as_bytes() == a)
            && kind.is_none_or(|k| k == Some(c.pubsub.active()))
            && (id == 0 || c.id == id)
            && user.is_none_or(|u| &**c.user.lock() == u)
            && !(skipme && c.id == me)
    };
    let mut killed = 0;
    for c in ctx.server().clients().list() {
        if !matches(&c) {
            continue;
        }
        if c.id == me {
            ctx.session_mut().close(); // after this reply
        } else {
            c.control.kill();
        }
        killed += 1;
    }
    if old_form {
        if killed == 0 {
            return Err("ERR No such client".into());
        }
        ctx.out().ok();
    } else {
        ctx.out().int(killed);
    }
    Ok(())
}

/// CLIENT PAUSE timeout [WRITE|ALL]: the timeout in milliseconds, as Redis parses it.
pub(super) fn client_pause(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 4 {
        return Err(wrong_args(args));
    }
    let mut kind = PauseKind::All;
    if args.len() == 4 {
        kind = if is(args.get(3), "write") {
            PauseKind::Write
        } else if is(args.get(3), "all") {
            PauseKind::All
        } else {
            return Err("ERR CLIENT PAUSE mode must be WRITE or ALL".into());
        };
    }
    let ms = int_arg(args.get(2)).map_err(|_| Error::from("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err("ERR timeout is negative".into());
    }
    // A zero timeout ends at once (Redis stores 0 as the end time).
    let end = if ms == 0 { 0 } else { ctx.now().saturating_add(ms as u64) };
    ctx.server().clients().pause(kind, end);
    ctx.out().ok();
    Ok(())
}

pub(super) fn client_unpause(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.server().clients().unpause();
    ctx.out().ok();
    Ok(())
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: 1 when the client was blocked (it then gets its
/// timeout's reply, or `-UNBLOCKED ...`), 0 otherwise.
pub(super) fn client_unblock(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 4 {
        return Err(wrong_args(args));
    }
    let mut how = UNBLOCK_TIMEOUT;
    if args.len() == 4 {
        how = if is(args.get(3), "timeout") {
            UNBLOCK_TIMEOUT
        } else if is(args.get(3), "error") {
            UNBLOCK_ERROR
        } else {
            return Err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR".into());
        };
    }
    let id = int_arg(args.get(2))?;
    let target = u64::try_from(id).ok().and_then(|id| ctx.server().clients().get(id));
    match target {
        Some(c) if c.blocked.load(std::sync::atomic::Ordering::Relaxed) => {
            c.control.unblock(how);
            ctx.out().int(1);
        }
        _ => ctx.out().int(0),
    }
    Ok(())
}

/// CLIENT REPLY ON|OFF|SKIP: OFF and SKIP have no reply of their own (the front end drops
/// the replies, see `Control::drop_reply`).
pub(super) fn client_reply(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mode = args.get(2);
    let control = &ctx.session().info().control;
    if is(mode, "on") {
        control.set_reply(REPLY_ON);
        ctx.out().ok();
    } else if is(mode, "off") {
        control.set_reply(REPLY_OFF);
    } else if is(mode, "skip") {
        control.set_reply(REPLY_SKIP_NEXT);
    } else {
        return Err(error::syntax());
    }
    Ok(())
}

/// CLIENT NO-EVICT ON|OFF: whether `maxmemory-clients` may close this client.
pub(super) fn client_no_evict(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let on = if is(args.get(2), "on") {
        true
    } else if is(args.get(2), "off") {
        false
    } else {
        return Err(error::syntax());
    };
    ctx.session().info().control.no_evict.store(on, std::sync::atomic::Ordering::Relaxed);
    ctx.out().ok();
    Ok(())
}

/// Redis's `addReplySubcommandSyntaxError`, for the subcommands whose arity allows more
/// arguments than they take.
fn wrong_args(args: Args<'_>) -> Error {
    let sub = error::c_str(args.get(1));
    let mut msg = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    msg.extend_from_slice(&sub[..sub.len().min(128)]);
    msg.extend_from_slice(b"'. Try CLIENT HELP.");
    Error::bytes(msg)
}
