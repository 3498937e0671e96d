//! Connection commands: PING, ECHO, SELECT, QUIT, RESET, AUTH, HELLO, CLIENT.

use magpie_protocol::{Args, Resp};

use crate::core::args::Cursor;
use crate::core::error::{self, CmdResult, Error, int_arg, is};
use crate::model::Ctx;
use crate::model::command::arity_error;
use crate::services::clients::ClientInfo;

/// The Redis version whose behaviour Magpie reproduces (HELLO reports it to clients).
pub(crate) const REDIS_VERSION: &str = "7.0.15";

pub(super) fn ping(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if ctx.protocol() == Resp::V2 && ctx.session().info().pubsub.active() && args.len() <= 2 && !ctx.session().script {
        // A RESP2 subscriber reads everything as messages: the reply looks like one. (Not a
        // script's PING: its reply goes to the script.)
        ctx.out().array(2);
        ctx.out().bulk(b"pong");
        ctx.out().bulk(if args.len() == 2 { args.get(1) } else { b"" });
        return Ok(());
    }
    match args.len() {
        1 => ctx.out().simple("PONG"),
        2 => ctx.out().bulk(args.get(1)),
        _ => return Err(arity_error("ping")),
    }
    Ok(())
}

pub(super) fn echo(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ctx.out().bulk(args.get(1));
    Ok(())
}

pub(super) fn quit(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.out().ok();
    ctx.session_mut().close();
    Ok(())
}

pub(super) fn select(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = error::int_arg_in(args.get(1), i64::from(i32::MIN)..=i64::from(i32::MAX))?;
    let db = usize::try_from(n)
        .ok()
        .filter(|&n| n < ctx.server().keyspace().db_count())
        .ok_or_else(|| Error::from(error::DB_RANGE))?;
    ctx.session_mut().select(db);
    ctx.out().ok();
    Ok(())
}

/// AUTH [username] password: as Redis's `authCommand`.
pub(super) fn auth(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 3 {
        return Err(error::syntax());
    }
    ctx.session_mut().effects.redact(1);
    ctx.session_mut().effects.redact(2);
    let (user, password) = if args.len() == 2 {
        if ctx.server().acl().default_nopass() {
            return Err("ERR AUTH <password> called without any password configured for the default user. Are you \
                        sure your configuration is correct?"
                .into());
        }
        (&b"default"[..], args.get(1))
    } else {
        (args.get(1), args.get(2))
    };
    if !authenticate(ctx, args.get(0), user, password) {
        return Err(WRONGPASS.into());
    }
    ctx.out().ok();
    Ok(())
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Logs the session in as `user` if `password` opens it; a failure goes to the ACL LOG (its
/// object the command's name as sent), as Redis's `ACLAuthenticateUser`.
fn authenticate(ctx: &mut Ctx<'_>, command: &[u8], user: &[u8], password: &[u8]) -> bool {
    use crate::services::acl::{Context, LogEntry, Reason};
    let acl = ctx.server().acl();
    match acl.check_credentials(user, password) {
        Some(account) => {
            let session = ctx.session_mut();
            acl.log_in(&mut session.login, account);
            *session.info().user.lock() = user.into();
            true
        }
        None => {
            let session = ctx.session();
            let in_multi = session.txn.multi.is_some() || session.txn.executing;
            acl.log_denial(LogEntry {
                count: 1,
                reason: Reason::Auth,
                context: if in_multi { Context::Multi } else { Context::Toplevel },
                object: command.to_vec(),
                username: user.to_vec(),
                ctime: magpie_store::now_ms(),
                client_info: session.info().line(),
            });
            false
        }
    }
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]], as Redis's `helloCommand`:
/// options are applied in order (a failed SETNAME after AUTH leaves the client logged in).
pub(super) fn hello(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut version = None;
    if args.len() >= 2 {
        let v =
            int_arg(args.get(1)).map_err(|_| Error::from("ERR Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err("NOPROTO unsupported protocol version".into());
        }
        version = Some(v);
    }
    let mut options = Cursor::new(args, 2);
    while let Some(opt) = options.next() {
        if is(opt, "auth") && options.remaining() >= 2 {
            let at = args.len() - options.remaining();
            ctx.session_mut().effects.redact(at);
            ctx.session_mut().effects.redact(at + 1);
            let (user, password) = (options.next().unwrap_or_default(), options.next().unwrap_or_default());
            if !authenticate(ctx, args.get(0), user, password) {
                return Err(WRONGPASS.into());
            }
        } else if is(opt, "setname") && options.remaining() >= 1 {
            set_name(ctx, options.next().unwrap_or_default())?;
        } else {
            let mut msg = b"ERR Syntax error in HELLO option '".to_vec();
            msg.extend_from_slice(crate::core::error::c_str(opt));
            msg.push(b'\'');
            return Err(Error::bytes(msg));
        }
    }
    if !ctx.session().login.authenticated() {
        return Err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH \
                    <user> <pass> option can be used to authenticate the client and select the RESP protocol \
                    version at the same time"
            .into());
    }
    if let Some(v) = version {
        // A subscriber's messages so far go out as they were encoded; later ones in `v`.
        ctx.deliver_own();
        ctx.set_protocol(if v == 3 { Resp::V3 } else { Resp::V2 });
    }
    let id = ctx.session().id();
    let out = ctx.out();
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(if out.proto == Resp::V3 { 3 } else { 2 });
    out.bulk(b"id");
    out.int(id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}

fn set_name(ctx: &mut Ctx<'_>, name: &[u8]) -> CmdResult {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err("ERR Client names cannot contain spaces, newlines or special characters.".into());
    }
    *ctx.session().info().name.lock() = (!name.is_empty()).then(|| name.to_vec());
    Ok(())
}

pub(super) fn client_id(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let id = ctx.session().id();
    ctx.out().int(id as i64);
    Ok(())
}

pub(super) fn client_setname(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    set_name(ctx, args.get(2))?;
    ctx.out().ok();
    Ok(())
}

pub(super) fn client_getname(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let name = ctx.session().info().name.lock().clone();
    match name {
        Some(name) => ctx.out().bulk(&name),
        None => ctx.out().null(),
    }
    Ok(())
}

/// CLIENT SETINFO LIB-NAME|LIB-VER value: recent client libraries send it on connect.
pub(super) fn client_setinfo(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let attr = args.get(2);
    if !(is(attr, "lib-name") || is(attr, "lib-ver")) {
        let mut msg = b"ERR Unrecognized option '".to_vec();
        msg.extend_from_slice(attr);
        msg.push(b'\'');
        return Err(Error::bytes(msg));
    }
    ctx.out().ok();
    Ok(())
}

/// CLIENT LIST [TYPE NORMAL|MASTER|REPLICA|PUBSUB] [ID client-id ...]
pub(super) fn client_list(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut ids: Option<Vec<u64>> = None;
    // Which clients the TYPE wants: subscribers are of type pubsub, as in Redis.
    let mut only_type: Option<fn(&ClientInfo) -> bool> = None;
    let mut options = Cursor::new(args, 2);
    while let Some(opt) = options.next() {
        if is(opt, "type") && !options.is_done() {
            let t = options.next_bytes()?;
            let known = ["normal", "master", "replica", "slave", "pubsub"];
            if !known.iter().any(|k| is(t, k)) {
                let mut msg = b"ERR Unknown client type '".to_vec();
                msg.extend_from_slice(t);
                msg.push(b'\'');
                return Err(Error::bytes(msg));
            }
            only_type = Some(if is(t, "normal") {
                |c| !c.pubsub.active()
            } else if is(t, "pubsub") {
                |c| c.pubsub.active()
            } else {
                |_| false // no masters or replicas
            });
        } else if is(opt, "id") && !options.is_done() {
            let mut list = Vec::new();
            for a in options.by_ref() {
                let id = int_arg(a).ok().filter(|&n| n > 0).ok_or_else(|| Error::from("ERR Invalid client ID"))?;
                list.push(id as u64);
            }
            ids = Some(list);
        } else {
            return Err(error::syntax());
        }
    }
    // The caller's own line shows the command it is running, as in Redis.
    *ctx.session().info().last_cmd.lock() = "client|list";
    let mut text = Vec::new();
    for c in ctx.server().clients().list() {
        if only_type.is_some_and(|wanted| !wanted(&c)) || ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) {
            continue;
        }
        text.extend_from_slice(&c.line());
        text.push(b'\n');
    }
    ctx.out().verbatim("txt", &text);
    Ok(())
}

pub(super) fn client_info(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    *ctx.session().info().last_cmd.lock() = "client|info";
    let mut line = ctx.session().info().line();
    line.push(b'\n');
    ctx.out().verbatim("txt", &line);
    Ok(())
}

/// RESET: the connection as it was when it connected (Redis 6.2+), replying `+RESET`.
pub(super) fn reset(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    reset_connection(ctx);
    ctx.out().simple("RESET");
    Ok(())
}

/// What RESET clears, as Redis's `clearClientConnectionState`: database 0, RESP2, the
/// transaction (MULTI is discarded, WATCHed keys unwatched), every subscription (without
/// confirmations), the name, the user (the default user again, authenticated only if it needs
/// no password), client-side caching, CLIENT REPLY. State a connection gains later must be
/// cleared here too.
pub(crate) fn reset_connection(ctx: &mut Ctx<'_>) {
    // Messages already delivered go out first, in the protocol they were sent for.
    ctx.deliver_own();
    ctx.session_mut().select(0);
    ctx.set_protocol(Resp::V2);
    // MULTI, WATCH and BEGIN: the transaction is discarded (rolled back), every key unwatched.
    let server = ctx.server();
    ctx.session_mut().txn.clear(server.keyspace());
    let info = ctx.session().info();
    // CLIENT TRACKING off and CLIENT REPLY ON (NO-EVICT stays, as in Redis 7.0).
    server.clients().tracking.disable(server.keyspace(), info);
    info.control.set_reply(crate::services::clients::REPLY_ON);
    server.pubsub().unsubscribe_all(&info.pubsub, info.id);
    if info.pubsub.monitor.swap(false, std::sync::atomic::Ordering::Relaxed) {
        server.monitors().remove(info.id);
    }
    *info.name.lock() = None;
    *info.user.lock() = b"default".to_vec().into_boxed_slice();
    server.acl().reset_login(&mut ctx.session_mut().login);
}
