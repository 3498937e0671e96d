//! Client-side caching after each command (Redis's `call`): the keys a tracking client read
//! are remembered, CLIENT CACHING's one-command scope ends, and the invalidations for the keys
//! the command changed are sent (see `services::clients::tracking`).

use magpie_protocol::Args;

use crate::model::{Command, Ctx, Flags};

/// Called by dispatch once a command has run (and written its reply).
pub(super) fn after_command(ctx: &mut Ctx<'_>, cmd: &'static Command, args: Args<'_>) {
    if ctx.session().info().control.tracking_on() {
        let info = ctx.session().info().clone();
        let remember = {
            let mut t = info.control.tracking.lock();
            // OPTIN reads are tracked after CACHING YES, OPTOUT ones unless after CACHING NO.
            let wanted = !(t.bcast || (t.optin && !t.caching) || (t.optout && t.caching));
            // CACHING applies to the command after it (or to a whole transaction); CLIENT
            // subcommands (CACHING itself among them) leave it armed, as Redis's `resetClient`.
            let txn = &ctx.session().txn;
            if txn.multi.is_none() && !txn.executing && !cmd.has(Flags::KEEPS_CACHING) {
                t.caching = false;
            }
            wanted && cmd.has(Flags::READONLY) && !cmd.has(Flags::PUBSUB)
        };
        if remember {
            let keys = cmd.keys_in(args);
            if !keys.is_empty() {
                let server = ctx.server();
                server.clients().tracking.remember(
                    server.keyspace(),
                    server.clients(),
                    &server.pubsub().limits,
                    (ctx.session().db(), info.id),
                    &keys,
                    server.settings().tracking_table_max_keys(),
                );
            }
        }
    }
    // Invalidations wait for the end of a transaction (they follow EXEC's reply).
    if magpie_store::tap::has_tracked() && !ctx.session().txn.executing {
        let server = ctx.server();
        let me = (!ctx.session().is_internal()).then(|| ctx.session().id());
        if server.clients().tracking.deliver(server.clients(), &server.pubsub().limits, me) {
            ctx.deliver_own(); // this client's own invalidations follow its reply
        }
    }
}
