//! The CLIENT subcommands that control connections (Redis's `clientCommand` in
//! networking.c): KILL, PAUSE, UNPAUSE, UNBLOCK, REPLY, NO-EVICT. What they set lives in each
//! client's `services::clients::Control` and the registry's pause; the front end acts on it.

use magpie_protocol::Args;

use crate::core::error::{self, CmdResult, Error, int_arg, is};
use crate::model::Ctx;
use crate::services::clients::{
    ClientInfo, ClientTracking, PauseKind, REPLY_OFF, REPLY_ON, REPLY_SKIP_NEXT, UNBLOCK_ERROR, UNBLOCK_TIMEOUT,
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
        // One killed already is as good as gone (Redis frees it at once).
        if c.control.is_killed() || !matches(&c) {
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

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX prefix ...] [BCAST] [OPTIN] [OPTOUT]
/// [NOLOOP], with Redis's checks in Redis's order.
pub(super) fn client_tracking(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (mut redirect, mut prefixes) = (0i64, Vec::<Box<[u8]>>::new());
    let (mut bcast, mut optin, mut optout, mut noloop) = (false, false, false, false);
    let mut j = 3;
    while j < args.len() {
        let (opt, more) = (args.get(j), j + 1 < args.len());
        if is(opt, "redirect") && more {
            j += 1;
            if redirect != 0 {
                return Err("ERR A client can only redirect to a single other client".into());
            }
            redirect = int_arg(args.get(j))?;
            let exists = u64::try_from(redirect).ok().and_then(|id| ctx.server().clients().get(id)).is_some();
            if !exists {
                return Err("ERR The client ID you want redirect to does not exist".into());
            }
        } else if is(opt, "bcast") {
            bcast = true;
        } else if is(opt, "optin") {
            optin = true;
        } else if is(opt, "optout") {
            optout = true;
        } else if is(opt, "noloop") {
            noloop = true;
        } else if is(opt, "prefix") && more {
            j += 1;
            prefixes.push(args.get(j).into());
        } else {
            return Err(error::syntax());
        }
        j += 1;
    }
    let server = ctx.server();
    let info = ctx.session().info().clone();
    if is(args.get(2), "off") {
        server.clients().tracking.disable(server.keyspace(), &info);
        ctx.out().ok();
        return Ok(());
    }
    if !is(args.get(2), "on") {
        return Err(error::syntax());
    }
    let mut state = info.control.tracking.lock();
    if !bcast && !prefixes.is_empty() {
        return Err("ERR PREFIX option requires BCAST mode to be enabled".into());
    }
    if state.on && state.bcast != bcast {
        return Err("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then \
                    re-enabling it with a different mode."
            .into());
    }
    if bcast && (optin || optout) {
        return Err("ERR OPTIN and OPTOUT are not compatible with BCAST".into());
    }
    if optin && optout {
        return Err("ERR You can't specify both OPTIN mode and OPTOUT mode".into());
    }
    if (optin && state.optout) || (optout && state.optin) {
        return Err("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then \
                    re-enabling it with a different mode."
            .into());
    }
    if bcast {
        check_prefixes(&state.prefixes, &prefixes)?;
        if prefixes.is_empty() {
            prefixes.push(Box::default()); // every key
        }
        prefixes.retain(|p| !state.prefixes.contains(p));
    }
    let was_on = state.on;
    let caching = state.caching;
    let mut all = std::mem::take(&mut state.prefixes);
    all.extend(prefixes.iter().cloned());
    all.sort();
    *state = ClientTracking {
        on: true,
        bcast,
        optin,
        optout,
        noloop,
        caching,
        redirect: redirect as u64,
        broken_redirect: false,
        prefixes: all,
    };
    drop(state);
    if let Some(target) = server.clients().get(redirect as u64) {
        target.control.pushes.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    server.clients().tracking.enable(server.keyspace(), &info, was_on, &prefixes);
    ctx.out().ok();
    Ok(())
}

/// Redis's `checkPrefixCollisionsOrReply`: no new prefix may be a prefix of, or start with,
/// one the client has, or another new one.
fn check_prefixes(existing: &[Box<[u8]>], new: &[Box<[u8]>]) -> CmdResult {
    let overlap = |a: &[u8], b: &[u8]| a.starts_with(b) || b.starts_with(a);
    for (i, p) in new.iter().enumerate() {
        if let Some(old) = existing.iter().find(|old| overlap(old, p)) {
            return Err(prefix_error(p, "an existing prefix", old));
        }
        if let Some(other) = new[i + 1..].iter().find(|o| overlap(p, o)) {
            return Err(prefix_error(p, "another provided prefix", other));
        }
    }
    Ok(())
}

fn prefix_error(p: &[u8], what: &str, other: &[u8]) -> Error {
    let mut msg = b"ERR Prefix '".to_vec();
    msg.extend_from_slice(error::c_str(p));
    msg.extend_from_slice(format!("' overlaps with {what} '").as_bytes());
    msg.extend_from_slice(error::c_str(other));
    msg.extend_from_slice(b"'. Prefixes for a single client must not overlap.");
    Error::bytes(msg)
}

/// CLIENT CACHING YES|NO: in OPTIN (YES) or OPTOUT (NO) mode, whether the next command's
/// keys are tracked.
pub(super) fn client_caching(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let info = ctx.session().info().clone();
    let mut state = info.control.tracking.lock();
    if !state.on {
        return Err("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT \
                    mode enabled"
            .into());
    }
    let opt = args.get(2);
    if is(opt, "yes") {
        if !state.optin {
            return Err("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.".into());
        }
    } else if is(opt, "no") {
        if !state.optout {
            return Err("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.".into());
        }
    } else {
        return Err(error::syntax());
    }
    state.caching = true;
    drop(state);
    ctx.out().ok();
    Ok(())
}

pub(super) fn client_getredir(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let state = ctx.session().info().control.tracking.lock().clone();
    ctx.out().int(if state.on { state.redirect as i64 } else { -1 });
    Ok(())
}

pub(super) fn client_trackinginfo(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let t = ctx.session().info().control.tracking.lock().clone();
    let mut flags = vec![if t.on { "on" } else { "off" }];
    let named = [
        (t.bcast, "bcast"),
        (t.optin, "optin"),
        (t.optin && t.caching, "caching-yes"),
        (t.optout, "optout"),
        (t.optout && t.caching, "caching-no"),
        (t.noloop, "noloop"),
        (t.broken_redirect, "broken_redirect"),
    ];
    flags.extend(named.iter().filter(|f| f.0).map(|f| f.1));
    let out = ctx.out();
    out.map(3);
    out.bulk(b"flags");
    out.set(flags.len());
    for f in flags {
        out.bulk(f.as_bytes());
    }
    out.bulk(b"redirect");
    out.int(if t.on { t.redirect as i64 } else { -1 });
    out.bulk(b"prefixes");
    out.array(t.prefixes.len());
    for p in &t.prefixes {
        out.bulk(p);
    }
    Ok(())
}
