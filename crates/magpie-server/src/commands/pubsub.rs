//! Pub/Sub commands: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH and PUBSUB. The
//! registry, mailboxes and delivery are in `crate::services::pubsub`.

use magpie_protocol::{Args, Reply};

use crate::core::error::{CmdResult, Error};
use crate::model::command::Channels;
use crate::model::{Command, Ctx, KeySpec, command};
use crate::services::pubsub::Kind;

use crate::{acl, flags, key_flags};

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("subscribe", -2, flags![PUBSUB, NOSCRIPT, LOADING, STALE, SUBSCRIBED_OK], "pubsub", "2.0.0", "Listens for messages published to channels.",
        "channel [channel ...]", subscribe)
        .channels(Channels::All)
        .acl(acl![]),
    Command::new("unsubscribe", -1, flags![PUBSUB, NOSCRIPT, LOADING, STALE, SUBSCRIBED_OK], "pubsub", "2.0.0", "Stops listening to messages posted to channels.",
        "[channel [channel ...]]", unsubscribe)
        .acl(acl![]),
    Command::new("psubscribe", -2, flags![PUBSUB, NOSCRIPT, LOADING, STALE, SUBSCRIBED_OK], "pubsub", "2.0.0", "Listens for messages published to channels that match one or more patterns.",
        "pattern:pattern [pattern:pattern ...]", psubscribe)
        .channels(Channels::AllPatterns)
        .acl(acl![]),
    Command::new("punsubscribe", -1, flags![PUBSUB, NOSCRIPT, LOADING, STALE, SUBSCRIBED_OK], "pubsub", "2.0.0", "Stops listening to messages published to channels that match one or more patterns.",
        "[pattern:pattern [pattern:pattern ...]]", punsubscribe)
        .acl(acl![]),
    Command::new("ssubscribe", -2, flags![PUBSUB, NOSCRIPT, LOADING, STALE, SUBSCRIBED_OK], "pubsub", "7.0.0", "Listens for messages published to shard channels.",
        "shardchannel [shardchannel ...]", ssubscribe)
        .channels(Channels::All)
        .acl(acl![])
        .keys(&[KeySpec::range(1, -1, 1, key_flags![NOT_KEY])]),
    Command::new("sunsubscribe", -1, flags![PUBSUB, NOSCRIPT, LOADING, STALE, SUBSCRIBED_OK], "pubsub", "7.0.0", "Stops listening to messages posted to shard channels.",
        "[shardchannel [shardchannel ...]]", sunsubscribe)
        .acl(acl![])
        .keys(&[KeySpec::range(1, -1, 1, key_flags![NOT_KEY])]),
    Command::new("publish", 3, flags![PUBSUB, LOADING, STALE, FAST, MAY_REPLICATE], "pubsub", "2.0.0", "Posts a message to a channel.",
        "channel message", publish)
        .channels(Channels::First)
        .acl(acl![]),
    Command::new("spublish", 3, flags![PUBSUB, LOADING, STALE, FAST, MAY_REPLICATE], "pubsub", "7.0.0", "Post a message to a shard channel",
        "shardchannel message", spublish)
        .channels(Channels::First)
        .acl(acl![])
        .keys(&[KeySpec::one(1, key_flags![NOT_KEY])]),
    Command::new("pubsub", -2, flags![], "pubsub", "2.8.0", "A container for Pub/Sub commands.",
        "", command::container)
        .acl(acl![])
        .with_subcommands(&[
            Command::new("pubsub|channels", -2, flags![PUBSUB, LOADING, STALE], "pubsub", "2.8.0", "Returns the active channels.",
                "[pattern:pattern]", channels)
                .acl(acl![]),
            Command::new("pubsub|numpat", 2, flags![PUBSUB, LOADING, STALE], "pubsub", "2.8.0", "Returns a count of unique pattern subscriptions.",
                "", numpat)
                .acl(acl![]),
            Command::new("pubsub|numsub", -2, flags![PUBSUB, LOADING, STALE], "pubsub", "2.8.0", "Returns a count of subscribers to channels.",
                "[channel [channel ...]]", numsub)
                .acl(acl![]),
            Command::new("pubsub|shardchannels", -2, flags![PUBSUB, LOADING, STALE], "pubsub", "7.0.0", "Returns the active shard channels.",
                "[pattern:pattern]", shardchannels)
                .acl(acl![]),
            Command::new("pubsub|shardnumsub", -2, flags![PUBSUB, LOADING, STALE], "pubsub", "7.0.0", "Returns the count of subscribers of shard channels.",
                "[shardchannel [shardchannel ...]]", shardnumsub)
                .acl(acl![]),
            Command::new("pubsub|help", 2, flags![LOADING, STALE], "pubsub", "6.2.0", "Returns helpful text about the different subcommands.",
                "", help)
                .acl(acl![]),
        ]),
];

/// A subscription's confirmation, as Redis sends it: `[kind, name or null, count]`, a push in
/// RESP3.
fn confirm(out: &mut Reply, word: &[u8], name: Option<&[u8]>, count: usize) {
    out.push(3);
    out.bulk(word);
    match name {
        Some(name) => out.bulk(name),
        None => out.null(),
    }
    out.int(count as i64);
}

/// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE: one confirmation per name, named twice or not.
fn subscribe_generic(ctx: &mut Ctx<'_>, args: Args<'_>, kind: Kind) -> CmdResult {
    // Messages that arrived before this command go out before its confirmations.
    ctx.deliver_own();
    let info = ctx.session().info().clone();
    info.pubsub.mailbox.set_protocol(ctx.protocol());
    for name in args.iter().skip(1) {
        let count = ctx.server().pubsub().subscribe(&info.pubsub, info.id, kind, name);
        confirm(ctx.out(), kind.subscribe_word(), Some(name), count);
    }
    Ok(())
}

/// UNSUBSCRIBE, PUNSUBSCRIBE, SUNSUBSCRIBE: the names given, or every subscription of the
/// kind (one confirmation with a null name if there are none).
fn unsubscribe_generic(ctx: &mut Ctx<'_>, args: Args<'_>, kind: Kind) -> CmdResult {
    ctx.deliver_own();
    let info = ctx.session().info().clone();
    let pubsub = ctx.server().pubsub();
    let word = kind.unsubscribe_word();
    if args.len() > 1 {
        for name in args.iter().skip(1) {
            let count = pubsub.unsubscribe(&info.pubsub, info.id, kind, name);
            confirm(ctx.out(), word, Some(name), count);
        }
        return Ok(());
    }
    let names = pubsub.subscribed(&info.pubsub, kind);
    if names.is_empty() {
        confirm(ctx.out(), word, None, info.pubsub.count(kind));
    }
    for name in &names {
        let count = pubsub.unsubscribe(&info.pubsub, info.id, kind, name);
        confirm(ctx.out(), word, Some(name), count);
    }
    Ok(())
}

pub(super) fn subscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    subscribe_generic(ctx, args, Kind::Channel)
}

pub(super) fn psubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    subscribe_generic(ctx, args, Kind::Pattern)
}

pub(super) fn ssubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    subscribe_generic(ctx, args, Kind::Shard)
}

pub(super) fn unsubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    unsubscribe_generic(ctx, args, Kind::Channel)
}

pub(super) fn punsubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    unsubscribe_generic(ctx, args, Kind::Pattern)
}

pub(super) fn sunsubscribe(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    unsubscribe_generic(ctx, args, Kind::Shard)
}

/// PUBLISH channel message: how many subscribers received it. A RESP3 client subscribed to
/// the channel gets its own message before the reply, as in Redis.
pub(super) fn publish(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = ctx.server().pubsub().publish(args.get(1), args.get(2));
    ctx.deliver_own();
    ctx.out().int(n as i64);
    Ok(())
}

/// SPUBLISH shardchannel message
pub(super) fn spublish(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let n = ctx.server().pubsub().spublish(args.get(1), args.get(2));
    ctx.deliver_own();
    ctx.out().int(n as i64);
    Ok(())
}

/// PUBSUB CHANNELS / SHARDCHANNELS [pattern]
fn channels_generic(ctx: &mut Ctx<'_>, args: Args<'_>, kind: Kind) -> CmdResult {
    if args.len() > 3 {
        let mut msg = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
        msg.extend_from_slice(args.get(1));
        msg.extend_from_slice(b"'. Try PUBSUB HELP.");
        return Err(Error::bytes(msg));
    }
    let pattern = (args.len() == 3).then(|| args.get(2));
    let found = ctx.server().pubsub().channels(kind, pattern);
    ctx.out().array(found.len());
    for c in &found {
        ctx.out().bulk(c);
    }
    Ok(())
}

pub(super) fn channels(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    channels_generic(ctx, args, Kind::Channel)
}

pub(super) fn shardchannels(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    channels_generic(ctx, args, Kind::Shard)
}

/// PUBSUB NUMSUB / SHARDNUMSUB [channel ...]: a flat array of channel, count (in both
/// protocols, as Redis 7.0).
fn numsub_generic(ctx: &mut Ctx<'_>, args: Args<'_>, kind: Kind) -> CmdResult {
    let names = args.skip(2);
    ctx.out().array(names.len() * 2);
    for name in names.iter() {
        ctx.out().bulk(name);
        let n = ctx.server().pubsub().numsub(kind, name);
        ctx.out().int(n as i64);
    }
    Ok(())
}

pub(super) fn numsub(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    numsub_generic(ctx, args, Kind::Channel)
}

pub(super) fn shardnumsub(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    numsub_generic(ctx, args, Kind::Shard)
}

/// PUBSUB NUMPAT: distinct patterns subscribed to.
pub(super) fn numpat(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let n = ctx.server().pubsub().active(Kind::Pattern);
    ctx.out().int(n as i64);
    Ok(())
}

pub(super) fn help(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    const LINES: &[&str] = &[
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]",
        "    Return the currently active channels matching a <pattern> (default: '*').",
        "NUMPAT",
        "    Return number of subscriptions to patterns.",
        "NUMSUB [<channel> ...]",
        "    Return the number of subscribers for the specified channels, excluding",
        "    pattern subscriptions(default: no channels).",
        "SHARDCHANNELS [<pattern>]",
        "    Return the currently active shard level channels matching a <pattern> (default: '*').",
        "SHARDNUMSUB [<shardchannel> ...]",
        "    Return the number of subscribers for the specified shard level channel(s)",
        "HELP",
        "    Prints this help.",
    ];
    ctx.out().array(LINES.len());
    for line in LINES {
        ctx.out().simple(line);
    }
    Ok(())
}
