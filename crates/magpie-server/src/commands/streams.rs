//! The stream commands: XADD and trimming (XTRIM, XDEL), reading (XRANGE, XREVRANGE, XLEN,
//! XREAD, which may block), consumer groups (XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM,
//! XAUTOCLAIM), XINFO and XSETID, with Redis 7.0's arguments, replies, errors, keyspace events
//! and log records (`t_stream.c`). The stream itself is `magpie_store::stream`.
//!
//! What the log records: XADD with the ID it chose (and an approximate trim as the exact one it
//! came to), XTRIM likewise; XREADGROUP, XCLAIM and XAUTOCLAIM as the XCLAIMs that set each
//! pending entry as it is now (`streamPropagateXCLAIM`), a group's new position as
//! `XGROUP SETID ... ENTRIESREAD` (`streamPropagateGroupID`) and a consumer XREADGROUP created
//! as `XGROUP CREATECONSUMER`. Beyond Redis, which leaves some of these out, the log also
//! records the read counter after every XREADGROUP that moves a group, every consumer that
//! XREADGROUP creates, and the deliveries of a history read, so that a restart restores groups
//! exactly.

use magpie_protocol::{ArgVec, Args, Reply, parse_i64};
use magpie_store::stream::{AddError, IdBuf, NewId, StreamEntry, Trim, TrimTo};
use magpie_store::{LiveSlot, Slot, Stream, StreamId, Value, ValueRef};

use super::lock_to_take;
use crate::core::args::Cursor;
use crate::core::error::{self, CmdResult, Error, c_str, int_arg, is, wrongtype};
use crate::core::events as notify;
use crate::model::{Begin, Command, Ctx, Find, KeySpec, Mode, Timeout};
use crate::{acl, flags, key_flags};

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("xadd", -5, flags![WRITE, DENYOOM, FAST], "stream", "5.0.0", "Appends a new message to a stream. Creates the key if it doesn't exist.",
        "key [NOMKSTREAM] [(MAXLEN|MINID) [=|~] threshold [LIMIT count:integer]] id (field value) ...", xadd)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE]).notes("UPDATE instead of INSERT because of the optional trimming feature")])
        .tips(&["nondeterministic_output"]),
    Command::new("xtrim", -4, flags![WRITE], "stream", "5.0.0", "Deletes messages from the beginning of a stream.",
        "key (MAXLEN|MINID) [=|~] threshold [LIMIT count:integer]", xtrim)
        .keys(&[KeySpec::one(1, key_flags![RW, DELETE])])
        .tips(&["nondeterministic_output"]),
    Command::new("xdel", -3, flags![WRITE, FAST], "stream", "5.0.0", "Returns the number of messages after removing them from a stream.",
        "key id [id ...]", xdel)
        .keys(&[KeySpec::one(1, key_flags![RW, DELETE])]),
    Command::new("xlen", 2, flags![READONLY, FAST], "stream", "5.0.0", "Return the number of messages in a stream.",
        "key", xlen)
        .keys(&[KeySpec::one(1, key_flags![RO])]),
    Command::new("xrange", -4, flags![READONLY], "stream", "5.0.0", "Returns the messages from a stream within a range of IDs.",
        "key start end [COUNT count:integer]", xrange)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("xrevrange", -4, flags![READONLY], "stream", "5.0.0", "Returns the messages from a stream within a range of IDs in reverse order.",
        "key end start [COUNT count:integer]", xrevrange)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("xread", -4, flags![READONLY, BLOCKING], "stream", "5.0.0", "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.",
        "[COUNT count:integer] [BLOCK milliseconds:integer] STREAMS key [key ...] id [id ...]", xread)
        .keys(&[KeySpec::new(key_flags![RO, ACCESS], Begin::Keyword { keyword: "STREAMS", start: 1 }, Find::Range { last: -1, step: 1, limit: 2 })]),
    Command::new("xreadgroup", -7, flags![WRITE, BLOCKING], "stream", "5.0.0", "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.",
        "GROUP group consumer [COUNT count:integer] [BLOCK milliseconds:integer] [NOACK] STREAMS key [key ...] id [id ...]", xreadgroup)
        .keys(&[KeySpec::new(key_flags![RO, ACCESS], Begin::Keyword { keyword: "STREAMS", start: 4 }, Find::Range { last: -1, step: 1, limit: 2 })]),
    Command::new("xack", -4, flags![WRITE, FAST], "stream", "5.0.0", "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.",
        "key group id [id ...]", xack)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    Command::new("xpending", -3, flags![READONLY], "stream", "5.0.0", "Returns the information and entries from a stream consumer group's pending entries list.",
        "key group [[IDLE min-idle-time:integer] start end count:integer [consumer]]", xpending)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output"]),
    Command::new("xclaim", -6, flags![WRITE, FAST], "stream", "5.0.0", "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.",
        "key group consumer min-idle-time:integer id [id ...] [IDLE ms:integer] [TIME unix-time-milliseconds:unix-time] [RETRYCOUNT count:integer] [FORCE] [JUSTID] [LASTID lastid]", xclaim)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])])
        .tips(&["nondeterministic_output"]),
    Command::new("xautoclaim", -6, flags![WRITE, FAST], "stream", "6.2.0", "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.",
        "key group consumer min-idle-time:integer start [COUNT count:integer] [JUSTID]", xautoclaim)
        .keys(&[KeySpec::one(1, key_flags![RW, DELETE])])
        .tips(&["nondeterministic_output"]),
    Command::new("xsetid", -3, flags![WRITE, DENYOOM, FAST], "stream", "5.0.0", "An internal command for replicating stream values.",
        "key last-id [ENTRIESADDED entries-added:integer] [MAXDELETEDID max-deleted-id]", xsetid)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    Command::new("xgroup", -2, flags![], "stream", "5.0.0", "A container for consumer groups commands.",
        "", crate::model::command::container)
        .acl(acl![])
        .with_subcommands(&[
            Command::new("xgroup|create", -5, flags![WRITE, DENYOOM], "stream", "5.0.0", "Creates a consumer group.",
                "key group (id|$) [MKSTREAM] [ENTRIESREAD entries-read:integer]", xgroup)
                .keys(&[KeySpec::one(2, key_flags![RW, INSERT])]),
            Command::new("xgroup|setid", -5, flags![WRITE], "stream", "5.0.0", "Sets the last-delivered ID of a consumer group.",
                "key group (id|$) [ENTRIESREAD entries-read:integer]", xgroup)
                .keys(&[KeySpec::one(2, key_flags![RW, UPDATE])]),
            Command::new("xgroup|destroy", 4, flags![WRITE], "stream", "5.0.0", "Destroys a consumer group.",
                "key group", xgroup)
                .keys(&[KeySpec::one(2, key_flags![RW, DELETE])]),
            Command::new("xgroup|createconsumer", 5, flags![WRITE, DENYOOM], "stream", "6.2.0", "Creates a consumer in a consumer group.",
                "key group consumer", xgroup)
                .keys(&[KeySpec::one(2, key_flags![RW, INSERT])]),
            Command::new("xgroup|delconsumer", 5, flags![WRITE], "stream", "5.0.0", "Deletes a consumer from a consumer group.",
                "key group consumer", xgroup)
                .keys(&[KeySpec::one(2, key_flags![RW, DELETE])]),
            Command::new("xgroup|help", 2, flags![LOADING, STALE], "stream", "5.0.0", "Returns helpful text about the different subcommands.",
                "", xgroup_help),
        ]),
    Command::new("xinfo", -2, flags![], "stream", "5.0.0", "A container for stream introspection commands.",
        "", crate::model::command::container)
        .acl(acl![])
        .with_subcommands(&[
            Command::new("xinfo|stream", -3, flags![READONLY], "stream", "5.0.0", "Returns information about a stream.",
                "key [FULL [COUNT count:integer]]", xinfo_stream)
                .keys(&[KeySpec::one(2, key_flags![RO, ACCESS])]),
            Command::new("xinfo|groups", 3, flags![READONLY], "stream", "5.0.0", "Returns a list of the consumer groups of a stream.",
                "key", xinfo_groups)
                .keys(&[KeySpec::one(2, key_flags![RO, ACCESS])]),
            Command::new("xinfo|consumers", 4, flags![READONLY], "stream", "5.0.0", "Returns a list of the consumers in a consumer group.",
                "key group", xinfo_consumers)
                .keys(&[KeySpec::one(2, key_flags![RO, ACCESS])])
                .tips(&["nondeterministic_output"]),
            Command::new("xinfo|help", 2, flags![LOADING, STALE], "stream", "5.0.0", "Returns helpful text about the different subcommands.",
                "", xinfo_help),
        ]),
];

// ---------------------------------------------------------------------------------------------
// IDs and replies

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

/// C's `strtoull` on a whole string, as Redis's `string2ull` falls back to it: leading
/// spaces, a sign (a minus wraps around), decimal digits, nothing after; `None` on overflow.
fn strtoull(s: &[u8]) -> Option<u64> {
    let mut i = s.iter().take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')).count();
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits = &s[i..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if negative { v.wrapping_neg() } else { v })
}

/// Redis's `string2ull`: a canonical integer (refused when negative), else `strtoull`.
fn string2ull(s: &[u8]) -> Option<u64> {
    if let Some(n) = parse_i64(s) {
        return u64::try_from(n).ok();
    }
    strtoull(s)
}

/// `streamGenericParseIDOrReply`: `ms-seq`, `ms` (the sequence is `missing_seq`), `-` and `+`
/// unless `strict`, and `ms-*` when `auto_seq` (then the second value is false: no sequence
/// was given). The argument is read as a C string, up to a NUL byte.
fn parse_id_with(arg: &[u8], missing_seq: u64, strict: bool, auto_seq: bool) -> Option<(StreamId, bool)> {
    if arg.len() > 127 {
        return None;
    }
    let s = c_str(arg);
    match s {
        b"-" | b"+" if strict => return None,
        b"-" => return Some((StreamId::MIN, true)),
        b"+" => return Some((StreamId::MAX, true)),
        _ => {}
    }
    let (ms, seq) = match s.iter().position(|&c| c == b'-') {
        Some(dash) => (&s[..dash], Some(&s[dash + 1..])),
        None => (s, None),
    };
    let ms = string2ull(ms)?;
    match seq {
        Some(b"*") if auto_seq => Some((StreamId::new(ms, 0), false)),
        Some(seq) => Some((StreamId::new(ms, string2ull(seq)?), true)),
        None => Some((StreamId::new(ms, missing_seq), true)),
    }
}

/// An ID where `-` and `+` are allowed (`streamParseIDOrReply`).
fn parse_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, Error> {
    parse_id_with(arg, missing_seq, false, false).map(|(id, _)| id).ok_or_else(|| INVALID_ID.into())
}

/// An ID where `-` and `+` are not (`streamParseStrictIDOrReply`).
fn parse_strict_id(arg: &[u8]) -> Result<StreamId, Error> {
    parse_id_with(arg, 0, true, false).map(|(id, _)| id).ok_or_else(|| INVALID_ID.into())
}

/// The bound of a range (`streamParseIntervalIDOrReply`): `(id` excludes it; the ID after
/// (or before) the excluded one is returned.
fn parse_bound(arg: &[u8], missing_seq: u64, start: bool) -> Result<StreamId, Error> {
    if arg.len() > 1 && arg[0] == b'(' {
        let id = parse_id_with(&arg[1..], missing_seq, true, false).map(|(id, _)| id).ok_or(Error::from(INVALID_ID))?;
        if start {
            id.next().ok_or_else(|| "ERR invalid start ID for the interval".into())
        } else {
            id.prev().ok_or_else(|| "ERR invalid end ID for the interval".into())
        }
    } else {
        parse_id(arg, missing_seq)
    }
}

fn reply_id(out: &mut Reply, id: StreamId) {
    out.bulk(id.format(&mut IdBuf::default()));
}

fn id_text(id: StreamId) -> Vec<u8> {
    id.format(&mut IdBuf::default()).to_vec()
}

/// An entry as Redis sends one: `[id, [field, value, ...]]`.
fn reply_entry(out: &mut Reply, e: &StreamEntry<'_>) {
    out.array(2);
    reply_id(out, e.id);
    out.array(e.len() * 2);
    for (f, v) in e.fields() {
        f.with_bytes(|b| out.bulk(b));
        v.with_bytes(|b| out.bulk(b));
    }
}

/// Up to `count` (0: all) entries from `start` forwards, as an array.
fn reply_range(out: &mut Reply, s: &Stream, start: StreamId, end: StreamId, count: usize, rev: bool) {
    let limit = if count == 0 { usize::MAX } else { count };
    let n = s.range(start, end, rev).take(limit).count();
    out.array(n);
    for e in s.range(start, end, rev).take(limit) {
        reply_entry(out, &e);
    }
}

fn as_stream<'a>(value: impl Into<ValueRef<'a>>) -> Result<&'a Stream, Error> {
    match value.into().boxed() {
        Some(Value::Stream(s)) => Ok(s),
        _ => Err(wrongtype()),
    }
}

/// The stream of a live slot, to change (the type was checked: this counts as a change).
fn stream_mut<'s>(live: &'s mut LiveSlot<'_>) -> Result<&'s mut Stream, Error> {
    as_stream(live.entry().value)?;
    match live.value_mut() {
        Value::Stream(s) => Ok(s),
        _ => Err(wrongtype()),
    }
}

/// Arguments `from..to` of `args`.
fn sub<'a>(args: Args<'a>, from: usize, to: usize) -> Args<'a> {
    Args::new(args.buf(), &args.spans()[from..to])
}

/// The time stream entries are stamped with: the wall clock (log replay runs at time 0).
fn wall_ms() -> u64 {
    magpie_store::now_ms()
}

fn wall_ms_i64() -> i64 {
    i64::try_from(wall_ms()).unwrap_or(i64::MAX)
}

/// `NOGROUP No such key 'k' or consumer group 'g'...`, the names as C strings.
fn nogroup(key: &[u8], group: &[u8], tail: &str) -> Error {
    let mut msg = b"NOGROUP No such key '".to_vec();
    msg.extend_from_slice(c_str(key));
    msg.extend_from_slice(b"' or consumer group '");
    msg.extend_from_slice(c_str(group));
    msg.push(b'\'');
    msg.extend_from_slice(tail.as_bytes());
    Error::bytes(msg)
}

/// `addReplySubcommandSyntaxError`: the subcommand as given, the command in capitals.
fn subcommand_syntax(args: Args<'_>) -> Error {
    let sub = c_str(args.get(1));
    let mut msg = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    msg.extend_from_slice(&sub[..sub.len().min(128)]);
    msg.extend_from_slice(b"'. Try ");
    msg.extend_from_slice(&c_str(args.get(0)).to_ascii_uppercase());
    msg.extend_from_slice(b" HELP.");
    Error::bytes(msg)
}

fn help(ctx: &mut Ctx<'_>, args: Args<'_>, lines: &[&str]) -> CmdResult {
    super::reply_help(ctx, &String::from_utf8_lossy(c_str(args.get(0))).to_ascii_uppercase(), lines)
}

// ---------------------------------------------------------------------------------------------
// XADD XTRIM

/// What `streamParseAddOrTrimArgsOrReply` reads.
#[derive(Default)]
struct AddTrimArgs {
    /// The ID (XADD): `None` for `*`; with whether a sequence was given.
    id: Option<(StreamId, bool)>,
    nomkstream: bool,
    trim: Option<Trim>,
    /// Where the trim's threshold is (its `~` or `=`, if any, just before).
    threshold_at: usize,
    /// Where the ID is (XADD).
    id_at: usize,
}

fn parse_add_trim(ctx: &Ctx<'_>, args: Args<'_>, xadd: bool) -> Result<AddTrimArgs, Error> {
    let mut a = AddTrimArgs::default();
    let (mut approx, mut limit, mut limit_given) = (false, 0i64, false);
    let argc = args.len();
    let mut i = 2;
    while i < argc {
        let more = argc - 1 - i;
        let opt = args.get(i);
        if xadd && c_str(opt) == b"*" {
            break;
        } else if (is(opt, "maxlen") || is(opt, "minid")) && more > 0 {
            if a.trim.is_some() {
                return Err("ERR syntax error, MAXLEN and MINID options at the same time are not compatible".into());
            }
            let next = c_str(args.get(i + 1));
            approx = false;
            if more >= 2 && next == b"~" {
                approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            let to = if is(opt, "maxlen") {
                let n = int_arg(args.get(i + 1))?;
                if n < 0 {
                    return Err("ERR The MAXLEN argument must be >= 0.".into());
                }
                TrimTo::MaxLen(n as u64)
            } else {
                TrimTo::MinId(parse_strict_id(args.get(i + 1))?)
            };
            i += 1;
            a.trim = Some(Trim { to, approx, limit: 0 });
            a.threshold_at = i;
        } else if is(opt, "limit") && more > 0 {
            limit = int_arg(args.get(i + 1))?;
            if limit < 0 {
                return Err("ERR The LIMIT argument must be >= 0.".into());
            }
            limit_given = true;
            i += 1;
        } else if xadd && is(opt, "nomkstream") {
            a.nomkstream = true;
        } else if xadd {
            let (id, seq) = parse_id_with(opt, 0, true, true).ok_or(Error::from(INVALID_ID))?;
            a.id = Some((id, seq));
            break;
        } else {
            return Err(error::syntax());
        }
        i += 1;
    }
    a.id_at = i;
    if limit != 0 && a.trim.is_none() {
        return Err("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy".into());
    }
    if !xadd && a.trim.is_none() {
        return Err("ERR syntax error, XTRIM must be called with a trimming strategy".into());
    }
    let effective = if ctx.session().is_internal() {
        // Replaying the log (Redis's `mustObeyClient`): the trim was logged as it happened.
        0
    } else if limit_given {
        if !approx {
            return Err("ERR syntax error, LIMIT cannot be used without the special ~ option".into());
        }
        limit as u64
    } else if approx {
        // At most 100 nodes' worth of entries, as Redis caps the work of an approximate trim.
        let per_node = ctx.server().settings().stream_node_limits().max_entries as u64;
        match per_node.saturating_mul(100) {
            0 => 10_000,
            n => n.min(1_000_000),
        }
    } else {
        0
    };
    if let Some(t) = &mut a.trim {
        t.limit = effective;
    }
    Ok(a)
}

/// The trim's threshold as the log records an approximate trim: the exact length or first ID
/// it came to (`streamRewriteTrimArgument`).
fn exact_threshold(s: &Stream, to: TrimTo) -> Vec<u8> {
    match to {
        TrimTo::MaxLen(_) => s.len().to_string().into_bytes(),
        TrimTo::MinId(_) => id_text(s.first_edge_id(true)),
    }
}

pub(super) fn xadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let a = parse_add_trim(ctx, args, true)?;
    let fields_at = a.id_at + 1;
    let argc = args.len();
    if argc < fields_at + 2 || !(argc - fields_at).is_multiple_of(2) {
        return Err(crate::model::command::arity_error("xadd"));
    }
    if let Some((id, true)) = a.id
        && id.is_zero()
    {
        return Err("ERR The ID specified in XADD must be greater than 0-0".into());
    }
    let new_id = match a.id {
        None => NewId::Auto,
        Some((id, true)) => NewId::Exact(id),
        Some((id, false)) => NewId::Ms(id.ms),
    };
    let key = args.get(1);
    let fields = sub(args, fields_at, argc);
    let pairs = fields.len() / 2;
    let limits = ctx.server().settings().stream_node_limits();
    let mut shard = ctx.db().write(key);
    let added = match shard.slot(key, ctx.now()) {
        Slot::Live(mut live) => {
            let s = as_stream(live.entry().value)?;
            if s.last_id() == StreamId::MAX {
                return Err("ERR The stream has exhausted the last possible ID, unable to add more items".into());
            }
            // Checked before the value is taken for writing: a refused XADD changes nothing.
            s.new_id(new_id, wall_ms()).map_err(add_error)?;
            let s = stream_mut(&mut live)?;
            let id = s.add(new_id, fields.iter(), pairs, limits, wall_ms()).map_err(add_error)?;
            let trimmed = a.trim.map_or(0, |t| s.trim(&t));
            let threshold = a.trim.filter(|t| t.approx).map(|t| exact_threshold(s, t.to));
            Some((id, trimmed, threshold))
        }
        Slot::Empty(_) if a.nomkstream => None,
        Slot::Empty(empty) => {
            let mut s = Stream::new();
            let id = s.add(new_id, fields.iter(), pairs, limits, wall_ms()).map_err(add_error)?;
            let trimmed = a.trim.map_or(0, |t| s.trim(&t));
            let threshold = a.trim.filter(|t| t.approx).map(|t| exact_threshold(&s, t.to));
            empty.insert(Value::Stream(Box::new(s)), None);
            Some((id, trimmed, threshold))
        }
    };
    drop(shard);
    let Some((id, trimmed, threshold)) = added else {
        ctx.out().null();
        return Ok(());
    };
    let mut buf = IdBuf::default();
    let id_bytes = id.format(&mut buf);
    ctx.out().bulk(id_bytes);
    ctx.notify(notify::STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    // Logged with the ID it chose, and an approximate trim as the exact one it came to.
    let chosen = !matches!(a.id, Some((_, true)));
    if (chosen || threshold.is_some()) && ctx.logged() {
        let mut record: Vec<&[u8]> = args.iter().collect();
        if chosen {
            record[a.id_at] = id_bytes;
        }
        if let Some(t) = &threshold {
            record[a.threshold_at - 1] = b"=";
            record[a.threshold_at] = t;
        }
        ctx.propagate(&record);
    }
    Ok(())
}

fn add_error(e: AddError) -> Error {
    match e {
        AddError::IdTooSmall => {
            "ERR The ID specified in XADD is equal or smaller than the target stream top item".into()
        }
        AddError::TooLarge => "ERR Elements are too large to be stored".into(),
    }
}

pub(super) fn xtrim(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let a = parse_add_trim(ctx, args, false)?;
    let Some(trim) = a.trim else { return Err(error::syntax()) };
    let key = args.get(1);
    let mut shard = lock_to_take(ctx, key);
    let Slot::Live(mut live) = shard.slot(key, ctx.now()) else {
        drop(shard);
        ctx.out().int(0);
        return Ok(());
    };
    if !as_stream(live.entry().value)?.trim_would_change(&trim) {
        drop(live);
        drop(shard);
        ctx.out().int(0);
        return Ok(());
    }
    let s = stream_mut(&mut live)?;
    let removed = s.trim(&trim);
    let threshold = trim.approx.then(|| exact_threshold(s, trim.to));
    drop(live);
    drop(shard);
    if removed > 0 {
        ctx.notify(notify::STREAM, "xtrim", key);
    }
    ctx.out().int(removed as i64);
    if let Some(t) = &threshold {
        let mut record: Vec<&[u8]> = args.iter().collect();
        record[a.threshold_at - 1] = b"=";
        record[a.threshold_at] = t;
        ctx.propagate(&record);
    }
    Ok(())
}

pub(super) fn xdel(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let mut shard = lock_to_take(ctx, key);
    let Slot::Live(mut live) = shard.slot(key, ctx.now()) else {
        drop(shard);
        ctx.out().int(0);
        return Ok(());
    };
    let s = as_stream(live.entry().value)?;
    let ids = args.iter().skip(2).map(parse_strict_id).collect::<Result<Vec<StreamId>, Error>>()?;
    let deleted = if ids.iter().any(|id| s.contains(*id)) { stream_mut(&mut live)?.delete_ids(&ids) } else { 0 };
    drop(live);
    drop(shard);
    if deleted > 0 {
        ctx.notify(notify::STREAM, "xdel", key);
    }
    ctx.out().int(deleted as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// XLEN XRANGE XREVRANGE

pub(super) fn xlen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let len = match found {
        Some(e) => as_stream(e.value)?.len(),
        None => 0,
    };
    drop(shard);
    ctx.out().int(len as i64);
    Ok(())
}

fn range_generic(ctx: &mut Ctx<'_>, args: Args<'_>, rev: bool) -> CmdResult {
    let (start_arg, end_arg) = if rev { (args.get(3), args.get(2)) } else { (args.get(2), args.get(3)) };
    let start = parse_bound(start_arg, 0, true)?;
    let end = parse_bound(end_arg, u64::MAX, false)?;
    let mut count: Option<i64> = None;
    let mut options = Cursor::new(args, 4);
    while let Some(opt) = options.next() {
        if is(opt, "count") && !options.is_done() {
            count = Some(options.next_int()?.max(0));
        } else {
            return Err(error::syntax());
        }
    }
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let Some(e) = found else {
        drop(shard);
        ctx.out().array(0);
        return Ok(());
    };
    let s = as_stream(e.value)?;
    match count {
        Some(0) => ctx.out().null_array(),
        n => reply_range(ctx.out(), s, start, end, n.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)), rev),
    }
    Ok(())
}

pub(super) fn xrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_generic(ctx, args, false)
}

pub(super) fn xrevrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    range_generic(ctx, args, true)
}

// ---------------------------------------------------------------------------------------------
// XREAD XREADGROUP

/// When no COUNT is given, a reader served after blocking gets at most this many entries
/// (`XREAD_BLOCKED_DEFAULT_COUNT`).
const BLOCKED_DEFAULT_COUNT: usize = 1000;

/// The options of XREAD and XREADGROUP.
struct ReadArgs<'a> {
    /// `None` without BLOCK.
    block: Option<Timeout>,
    /// 0: no limit.
    count: usize,
    group: Option<(&'a [u8], &'a [u8])>,
    noack: bool,
    keys: Args<'a>,
    ids: Args<'a>,
}

/// `in_script`: the command comes from a script's `redis.call`, where BLOCK is refused as it
/// is parsed (as Redis's `xreadCommand`, for backward compatibility).
fn parse_read<'a>(args: Args<'a>, xreadgroup: bool, in_script: bool) -> Result<ReadArgs<'a>, Error> {
    let mut r =
        ReadArgs { block: None, count: 0, group: None, noack: false, keys: sub(args, 0, 0), ids: sub(args, 0, 0) };
    let argc = args.len();
    let mut streams_at = None;
    let mut i = 1;
    while i < argc {
        let more = argc - i - 1;
        let o = args.get(i);
        if is(o, "block") && more > 0 {
            if in_script {
                let name = if xreadgroup { "XREADGROUP" } else { "XREAD" };
                return Err(Error::msg(format!("ERR {name} command is not allowed with BLOCK option from scripts")));
            }
            i += 1;
            let ms = parse_i64(args.get(i)).ok_or(Error::from("ERR timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err("ERR timeout is negative".into());
            }
            r.block = Some(u64::try_from(ms).ok().filter(|&ms| ms > 0));
        } else if is(o, "count") && more > 0 {
            i += 1;
            r.count = usize::try_from(int_arg(args.get(i))?.max(0)).unwrap_or(usize::MAX);
        } else if is(o, "streams") && more > 0 {
            let n = argc - (i + 1);
            if !n.is_multiple_of(2) {
                return Err(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.".into(),
                );
            }
            streams_at = Some((i + 1, n / 2));
            break;
        } else if is(o, "group") && more >= 2 {
            if !xreadgroup {
                return Err("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.".into());
            }
            r.group = Some((args.get(i + 1), args.get(i + 2)));
            i += 2;
        } else if is(o, "noack") {
            if !xreadgroup {
                return Err("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.".into());
            }
            r.noack = true;
        } else {
            return Err(error::syntax());
        }
        i += 1;
    }
    let Some((at, n)) = streams_at else { return Err(error::syntax()) };
    if xreadgroup && r.group.is_none() {
        return Err("ERR Missing GROUP option for XREADGROUP".into());
    }
    r.keys = sub(args, at, at + n);
    r.ids = sub(args, at + n, argc);
    Ok(r)
}

/// The command with each `$` replaced by the ID it stood for, to run again when it waits.
fn rewrite_ids(args: Args<'_>, ids: &Args<'_>, resolved: &[StreamId]) -> Option<ArgVec> {
    let first_id = args.len() - ids.len();
    if !ids.iter().any(|a| c_str(a) == b"$") {
        return None;
    }
    let texts: Vec<Vec<u8>> = resolved.iter().map(|id| id_text(*id)).collect();
    let record: Vec<&[u8]> = args
        .iter()
        .enumerate()
        .map(|(i, a)| if i >= first_id && c_str(a) == b"$" { &texts[i - first_id][..] } else { a })
        .collect();
    Some(ArgVec::from_slices(record))
}

pub(super) fn xread(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let r = parse_read(args, false, ctx.session().script)?;
    if let Some(key) = ctx.ready_key().map(<[u8]>::to_vec) {
        return xread_ready(ctx, &r, &key);
    }
    let retry = ctx.session().wait.mode == Mode::Retry;
    let db = ctx.db_index();
    let now = ctx.now();
    let locked = ctx.keyspace().lock_read(r.keys.iter().map(|k| (db, k)));
    let mut resolved = Vec::with_capacity(r.keys.len());
    for (key, arg) in r.keys.iter().zip(r.ids.iter()) {
        let found = locked.shard(db, key).get(key, now);
        if !retry {
            ctx.hit(found.is_some());
        }
        let s = found.map(|e| as_stream(e.value)).transpose()?;
        let id = match c_str(arg) {
            b"$" => s.map_or(StreamId::MIN, Stream::last_id),
            b">" => {
                return Err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.".into());
            }
            _ => parse_strict_id(arg)?,
        };
        resolved.push(id);
    }
    let mut serving = Vec::new();
    for (i, key) in r.keys.iter().enumerate() {
        let found = locked.shard(db, key).get(key, now);
        if !retry {
            ctx.hit(found.is_some());
        }
        if let Some(Value::Stream(s)) = found.and_then(|e| e.value.boxed())
            && !s.is_empty()
            && s.last_valid_id().is_some_and(|last| last > resolved[i])
        {
            serving.push(i);
        }
    }
    if !serving.is_empty() {
        let count = if r.count == 0 && retry { BLOCKED_DEFAULT_COUNT } else { r.count };
        let out = ctx.out();
        out.nested_map(serving.len());
        for i in serving {
            let key = r.keys.get(i);
            let Some(Value::Stream(s)) = locked.shard(db, key).get(key, now).and_then(|e| e.value.boxed()) else {
                continue;
            };
            out.nested_pair();
            out.bulk(key);
            reply_range(out, s, resolved[i].next().unwrap_or(StreamId::MIN), StreamId::MAX, count, false);
        }
        return Ok(());
    }
    drop(locked);
    match r.block {
        None => {
            ctx.out().null_array();
            Ok(())
        }
        Some(timeout) => match rewrite_ids(args, &r.ids, &resolved) {
            Some(rerun) => ctx.block_as("stream", r.keys.iter(), timeout, Reply::null_array, rerun),
            None => ctx.block("stream", r.keys.iter(), timeout, Reply::null_array),
        },
    }
}

/// XREAD run again for a waiting client because `key` changed: served with that key alone
/// when the stream's last ID passed the one it waits after (`serveClientsBlockedOnStreamKey`).
fn xread_ready(ctx: &mut Ctx<'_>, r: &ReadArgs<'_>, key: &[u8]) -> CmdResult {
    let timeout = r.block.unwrap_or(None);
    let Some(i) = r.keys.iter().position(|k| k == key) else {
        return ctx.block("stream", r.keys.iter(), timeout, Reply::null_array);
    };
    let Ok(after) = parse_strict_id(r.ids.get(i)) else {
        return ctx.block("stream", r.keys.iter(), timeout, Reply::null_array);
    };
    let shard = ctx.db().read(key);
    match shard.get(key, ctx.now()).and_then(|e| e.value.boxed()) {
        Some(Value::Stream(s)) if s.last_id() > after => {
            let count = if r.count == 0 { BLOCKED_DEFAULT_COUNT } else { r.count };
            let out = ctx.out();
            out.nested_map(1);
            out.nested_pair();
            out.bulk(key);
            reply_range(out, s, after.next().unwrap_or(StreamId::MIN), StreamId::MAX, count, false);
            Ok(())
        }
        _ => {
            drop(shard);
            ctx.block("stream", r.keys.iter(), timeout, Reply::null_array)
        }
    }
}

/// What XREADGROUP does for one of its keys.
#[derive(Clone, Copy)]
enum GroupRead {
    /// The consumer's own pending entries after this ID.
    History(StreamId),
    /// New entries after this ID (the group's last).
    New(StreamId),
}

/// Log records and events gathered while the keys are locked, to declare after.
#[derive(Default)]
struct Effects {
    /// Whether records are kept (see [`logged`]).
    log: bool,
    records: Vec<Vec<Vec<u8>>>,
    /// Keys whose group got a new consumer (`xgroup-createconsumer`).
    created: Vec<Vec<u8>>,
}

impl Effects {
    fn declare(self, ctx: &mut Ctx<'_>) {
        for key in &self.created {
            ctx.notify(notify::STREAM, "xgroup-createconsumer", key);
        }
        if self.records.is_empty() {
            ctx.propagate_none();
        }
        for r in &self.records {
            let args: Vec<&[u8]> = r.iter().map(Vec::as_slice).collect();
            ctx.propagate(&args);
        }
    }

    /// `streamPropagateXCLAIM`: the pending entry as it is now, with the group's last ID.
    #[allow(clippy::too_many_arguments)]
    fn xclaim(&mut self, key: &[u8], group: &[u8], consumer: &[u8], id: &[u8], time: i64, count: u64, last: StreamId) {
        if !self.log {
            return;
        }
        let mut r: Vec<Vec<u8>> =
            vec![b"XCLAIM".to_vec(), key.to_vec(), group.to_vec(), consumer.to_vec(), b"0".to_vec()];
        r.push(id.to_vec());
        r.push(b"TIME".to_vec());
        r.push(time.to_string().into_bytes());
        r.push(b"RETRYCOUNT".to_vec());
        r.push(count.to_string().into_bytes());
        r.push(b"FORCE".to_vec());
        r.push(b"JUSTID".to_vec());
        r.push(b"LASTID".to_vec());
        r.push(id_text(last));
        self.records.push(r);
    }

    /// `streamPropagateGroupID`.
    fn setid(&mut self, key: &[u8], group: &[u8], last: StreamId, entries_read: i64) {
        if !self.log {
            return;
        }
        self.records.push(vec![
            b"XGROUP".to_vec(),
            b"SETID".to_vec(),
            key.to_vec(),
            group.to_vec(),
            id_text(last),
            b"ENTRIESREAD".to_vec(),
            entries_read.to_string().into_bytes(),
        ]);
    }

    fn create_consumer(&mut self, key: &[u8], group: &[u8], consumer: &[u8]) {
        self.created.push(key.to_vec());
        if !self.log {
            return;
        }
        self.records.push(vec![
            b"XGROUP".to_vec(),
            b"CREATECONSUMER".to_vec(),
            key.to_vec(),
            group.to_vec(),
            consumer.to_vec(),
        ]);
    }
}

/// Serves one key of XREADGROUP: its entries array (the caller wrote the key), the group's
/// and consumer's changes, and their log records.
#[allow(clippy::too_many_arguments)]
fn serve_group(
    out: &mut Reply,
    s: &mut Stream,
    key: &[u8],
    group: &[u8],
    consumer: &[u8],
    read: GroupRead,
    count: usize,
    noack: bool,
    fx: &mut Effects,
) {
    let now = wall_ms_i64();
    let Some(g) = s.group_mut(group) else {
        out.array(0);
        return;
    };
    if !g.touch_consumer(consumer, now) {
        g.create_consumer(consumer, now);
        fx.create_consumer(key, group, consumer);
    }
    let limit = if count == 0 { usize::MAX } else { count };
    match read {
        GroupRead::History(after) => {
            let start = after.next().unwrap_or(StreamId::MIN);
            let n = g.consumer(consumer).map_or(0, |c| c.pending().range(start..).take(limit).count());
            out.array(n);
            let last = g.last_id();
            s.deliver_history(group, consumer, start, count, now, |id, e, nack| match (e, nack) {
                (Some(e), Some(nack)) => {
                    reply_entry(out, e);
                    fx.xclaim(key, group, consumer, &id_text(id), nack.delivery_time, nack.delivery_count, last);
                }
                _ => {
                    out.array(2);
                    reply_id(out, id);
                    out.null_array();
                }
            });
        }
        GroupRead::New(after) => {
            let before = g.last_id();
            let start = after.next().unwrap_or(StreamId::MIN);
            let n = s.range(start, StreamId::MAX, false).take(limit).count();
            out.array(n);
            let mut claims = Vec::new();
            let log = fx.log;
            s.deliver_new(group, consumer, after, count, noack, now, |e, last| {
                reply_entry(out, e);
                if !noack && log {
                    claims.push((e.id, last));
                }
            });
            for (id, last) in claims {
                fx.xclaim(key, group, consumer, &id_text(id), now, 1, last);
            }
            if let Some(g) = s.group(group)
                && g.last_id() != before
            {
                fx.setid(key, group, g.last_id(), g.entries_read());
            }
        }
    }
}

pub(super) fn xreadgroup(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let r = parse_read(args, true, ctx.session().script)?;
    let Some((group, consumer)) = r.group else { return Err(error::syntax()) };
    if let Some(key) = ctx.ready_key().map(<[u8]>::to_vec) {
        return xreadgroup_ready(ctx, &r, &key);
    }
    let retry = ctx.session().wait.mode == Mode::Retry;
    let db = ctx.db_index();
    let now = ctx.now();
    let mut locked = loop {
        let locked = ctx.keyspace().lock_write(r.keys.iter().map(|k| (db, k)));
        if !r.keys.iter().any(|k| ctx.waiters_first(k)) {
            break locked;
        }
        drop(locked);
        ctx.serve_waiters();
    };
    let mut wanted = Vec::with_capacity(r.keys.len());
    for (key, arg) in r.keys.iter().zip(r.ids.iter()) {
        let found = locked.shard_ref(db, key).get(key, now);
        if !retry {
            ctx.hit(found.is_some());
        }
        let s = found.map(|e| as_stream(e.value)).transpose()?;
        if s.and_then(|s| s.group(group)).is_none() {
            return Err(nogroup(key, group, " in XREADGROUP with GROUP option"));
        }
        let id = match c_str(arg) {
            b"$" => {
                return Err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.".into());
            }
            b">" => StreamId::MAX,
            _ => parse_strict_id(arg)?,
        };
        wanted.push(id);
    }
    // Which keys serve. A key named twice reads on from where its first read leaves the group
    // (Redis decides each as it serves it), so the group's position is followed here.
    let count = if r.count == 0 && retry { BLOCKED_DEFAULT_COUNT } else { r.count };
    let limit = if count == 0 { usize::MAX } else { count };
    let mut serving = Vec::new();
    let mut moved: Vec<(&[u8], StreamId)> = Vec::new();
    for (i, key) in r.keys.iter().enumerate() {
        let found = locked.shard_ref(db, key).get(key, now);
        if !retry {
            ctx.hit(found.is_some());
        }
        let Some(Value::Stream(s)) = found.and_then(|e| e.value.boxed()) else { continue };
        if wanted[i] != StreamId::MAX {
            serving.push((i, GroupRead::History(wanted[i])));
            continue;
        }
        let Some(g) = s.group(group) else { continue };
        let last = moved.iter().rev().find(|(k, _)| *k == key).map_or(g.last_id(), |(_, id)| *id);
        if !s.is_empty() && s.last_valid_id().is_some_and(|top| top > last) {
            serving.push((i, GroupRead::New(last)));
            let start = last.next().unwrap_or(StreamId::MIN);
            if let Some(e) = s.range(start, StreamId::MAX, false).take(limit).last() {
                moved.push((key, e.id));
            }
        }
    }
    if serving.is_empty() {
        drop(locked);
        return match r.block {
            None => {
                ctx.out().null_array();
                Ok(())
            }
            Some(timeout) => ctx.block("stream-group", r.keys.iter(), timeout, Reply::null_array),
        };
    }
    let mut fx = Effects { log: ctx.logged(), ..Effects::default() };
    let out = ctx.out();
    out.nested_map(serving.len());
    for (i, read) in serving {
        let key = r.keys.get(i);
        out.nested_pair();
        out.bulk(key);
        let Slot::Live(mut live) = locked.shard(db, key).slot(key, now) else {
            out.array(0);
            continue;
        };
        let Ok(s) = stream_mut(&mut live) else {
            out.array(0);
            continue;
        };
        let read = match read {
            GroupRead::New(_) => {
                GroupRead::New(s.group(group).map_or(StreamId::MAX, magpie_store::stream::Group::last_id))
            }
            history => history,
        };
        serve_group(out, s, key, group, consumer, read, count, r.noack, &mut fx);
    }
    drop(locked);
    fx.declare(ctx);
    Ok(())
}

/// XREADGROUP run again for a waiting client because `key` changed: an error when the key or
/// the group is gone, the new entries when there are some (`serveClientsBlockedOnStreamKey`,
/// `unblockDeletedStreamReadgroupClients`).
fn xreadgroup_ready(ctx: &mut Ctx<'_>, r: &ReadArgs<'_>, key: &[u8]) -> CmdResult {
    let Some((group, consumer)) = r.group else { return Err(error::syntax()) };
    let timeout = r.block.unwrap_or(None);
    let now = ctx.now();
    let mut shard = lock_to_take(ctx, key);
    let Slot::Live(mut live) = shard.slot(key, now) else {
        return Err("UNBLOCKED the stream key no longer exists".into());
    };
    let Some(Value::Stream(s)) = live.entry().value.boxed() else {
        return Err("UNBLOCKED the stream key no longer exists".into());
    };
    let Some(g) = s.group(group) else {
        return Err("NOGROUP the consumer group this client was blocked on no longer exists".into());
    };
    let after = g.last_id();
    if s.last_id() <= after {
        drop(live);
        drop(shard);
        return ctx.block("stream-group", r.keys.iter(), timeout, Reply::null_array);
    }
    let count = if r.count == 0 { BLOCKED_DEFAULT_COUNT } else { r.count };
    let mut fx = Effects { log: ctx.logged(), ..Effects::default() };
    let out = ctx.out();
    out.nested_map(1);
    out.nested_pair();
    out.bulk(key);
    let s = stream_mut(&mut live)?;
    serve_group(out, s, key, group, consumer, GroupRead::New(after), count, r.noack, &mut fx);
    drop(live);
    drop(shard);
    fx.declare(ctx);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// XACK XPENDING

pub(super) fn xack(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (key, group) = (args.get(1), args.get(2));
    let mut shard = lock_to_take(ctx, key);
    let now = ctx.now();
    let Slot::Live(mut live) = shard.slot(key, now) else {
        ctx.hit(false);
        drop(shard);
        ctx.out().int(0);
        return Ok(());
    };
    ctx.hit(true);
    let s = as_stream(live.entry().value)?;
    let Some(g) = s.group(group) else {
        drop(live);
        drop(shard);
        ctx.out().int(0);
        return Ok(());
    };
    let ids = args.iter().skip(3).map(parse_strict_id).collect::<Result<Vec<StreamId>, Error>>()?;
    let mut acked = 0;
    if ids.iter().any(|id| g.nack(*id).is_some())
        && let Some(g) = stream_mut(&mut live)?.group_mut(group)
    {
        acked = ids.iter().filter(|id| g.ack(**id)).count();
    }
    drop(live);
    drop(shard);
    ctx.out().int(acked as i64);
    Ok(())
}

pub(super) fn xpending(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let argc = args.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return Err(error::syntax());
    }
    let (key, group) = (args.get(1), args.get(2));
    let mut extended = None;
    if argc >= 6 {
        let mut at = 3;
        let mut min_idle = 0;
        if is(args.get(3), "idle") {
            min_idle = int_arg(args.get(4))?;
            if argc < 8 {
                return Err(error::syntax());
            }
            at += 2;
        }
        let count = int_arg(args.get(at + 2))?.max(0);
        let start = parse_bound(args.get(at), 0, true)?;
        let end = parse_bound(args.get(at + 1), u64::MAX, false)?;
        let consumer = (at + 3 < argc).then(|| args.get(at + 3));
        extended = Some((min_idle, start, end, count, consumer));
    }
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let s = found.map(|e| as_stream(e.value)).transpose()?;
    let Some(g) = s.and_then(|s| s.group(group)) else {
        return Err(nogroup(key, group, ""));
    };
    let out = ctx.out();
    let Some((min_idle, start, end, count, consumer)) = extended else {
        out.array(4);
        out.int(g.pending().len() as i64);
        let (Some((first, _)), Some((last, _))) = (g.pending().first_key_value(), g.pending().last_key_value()) else {
            out.null();
            out.null();
            out.null_array();
            return Ok(());
        };
        reply_id(out, *first);
        reply_id(out, *last);
        let owners = g.consumers().filter(|(_, c)| !c.pending().is_empty()).count();
        out.array(owners);
        for (name, c) in g.consumers().filter(|(_, c)| !c.pending().is_empty()) {
            out.array(2);
            out.bulk(name);
            out.bulk_int(c.pending().len() as i64);
        }
        return Ok(());
    };
    let owner = match consumer {
        Some(name) => match g.consumer(name) {
            Some(c) => Some(c),
            None => {
                out.array(0);
                return Ok(());
            }
        },
        None => None,
    };
    let now = wall_ms_i64();
    let ids: Box<dyn Iterator<Item = &StreamId>> = match owner {
        Some(c) if start <= end => Box::new(c.pending().range(start..=end)),
        None if start <= end => Box::new(g.pending().range(start..=end).map(|(id, _)| id)),
        _ => Box::new(std::iter::empty()),
    };
    let rows: Vec<(StreamId, &magpie_store::stream::Nack)> = ids
        .filter_map(|id| g.nack(*id).map(|n| (*id, n)))
        .filter(|(_, n)| min_idle == 0 || now.wrapping_sub(n.delivery_time) >= min_idle)
        .take(usize::try_from(count).unwrap_or(usize::MAX))
        .collect();
    out.array(rows.len());
    for (id, nack) in rows {
        out.array(4);
        reply_id(out, id);
        out.bulk(nack.owner());
        out.int(now.wrapping_sub(nack.delivery_time).max(0));
        out.int(nack.delivery_count as i64);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// XCLAIM XAUTOCLAIM

pub(super) fn xclaim(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (key, group, consumer) = (args.get(1), args.get(2), args.get(3));
    let now_key = ctx.now();
    let mut shard = lock_to_take(ctx, key);
    let Slot::Live(mut live) = shard.slot(key, now_key) else {
        ctx.hit(false);
        return Err(nogroup(key, group, ""));
    };
    ctx.hit(true);
    let s = as_stream(live.entry().value)?;
    let Some(g) = s.group(group) else { return Err(nogroup(key, group, "")) };
    let min_idle =
        error::int_arg(args.get(4)).map_err(|_| Error::from("ERR Invalid min-idle-time argument for XCLAIM"))?.max(0);
    let mut ids = Vec::new();
    let mut at = 5;
    while at < args.len() {
        let Some((id, _)) = parse_id_with(args.get(at), 0, true, false) else { break };
        ids.push((id, at));
        at += 1;
    }
    let now = wall_ms_i64();
    let (mut force, mut justid) = (false, false);
    let (mut delivery, mut retry, mut lastid) = (None::<i64>, None::<i64>, StreamId::MIN);
    let mut options = Cursor::new(args, at);
    while let Some(opt) = options.next() {
        let more = !options.is_done();
        if is(opt, "force") {
            force = true;
        } else if is(opt, "justid") {
            justid = true;
        } else if is(opt, "idle") && more {
            let n = error::int_arg(options.next_bytes()?)
                .map_err(|_| Error::from("ERR Invalid IDLE option argument for XCLAIM"))?;
            delivery = Some(now.wrapping_sub(n));
        } else if is(opt, "time") && more {
            let n = error::int_arg(options.next_bytes()?)
                .map_err(|_| Error::from("ERR Invalid TIME option argument for XCLAIM"))?;
            delivery = Some(n);
        } else if is(opt, "retrycount") && more {
            let n = error::int_arg(options.next_bytes()?)
                .map_err(|_| Error::from("ERR Invalid RETRYCOUNT option argument for XCLAIM"))?;
            retry = Some(n);
        } else if is(opt, "lastid") && more {
            lastid = parse_strict_id(options.next_bytes()?)?;
        } else {
            let mut msg = b"ERR Unrecognized XCLAIM option '".to_vec();
            msg.extend_from_slice(c_str(opt));
            msg.push(b'\'');
            return Err(Error::bytes(msg));
        }
    }
    let delivery = match delivery {
        Some(t) if (0..=now).contains(&t) => t,
        _ => now,
    };
    // Whether anything can change: the group moves on, or a pending (or forced) entry is
    // named. Otherwise the value is not taken for writing.
    let changes = lastid > g.last_id() || ids.iter().any(|(id, _)| g.nack(*id).is_some() || (force && s.contains(*id)));
    if !changes {
        drop(live);
        drop(shard);
        ctx.out().array(0);
        return Ok(());
    }
    let s = stream_mut(&mut live)?;
    let mut fx = Effects { log: ctx.logged(), ..Effects::default() };
    let mut propagate_last_id = s.group_mut(group).is_some_and(|g| g.advance_last_id(lastid));
    let mut scratch = Reply::default();
    scratch.proto = ctx.protocol();
    let mut claimed = 0;
    let mut consumer_ready = false;
    for (id, at) in ids {
        let exists = s.contains(id);
        let Some(g) = s.group_mut(group) else { break };
        if !exists {
            if let Some(nack) = g.nack(id) {
                // Logged as an XCLAIM of the entry as it was, which drops it when replayed.
                let (owner, time, count) = (nack.owner().to_vec(), nack.delivery_time, nack.delivery_count);
                fx.xclaim(key, group, &owner, args.get(at), time, count, g.last_id());
                propagate_last_id = false;
                g.remove_nack(id);
            }
            continue;
        }
        let pending = g.nack(id).map(|n| n.delivery_time);
        if pending.is_none() && !force {
            continue;
        }
        if let Some(time) = pending
            && min_idle != 0
            && now.wrapping_sub(time) < min_idle
        {
            continue;
        }
        if !consumer_ready {
            if !g.touch_consumer(consumer, now) {
                g.create_consumer(consumer, now);
                fx.created.push(key.to_vec());
            }
            consumer_ready = true;
        }
        let nack = g.give(id, consumer, now, 1);
        nack.delivery_time = delivery;
        if let Some(n) = retry.filter(|n| *n >= 0) {
            nack.delivery_count = n as u64;
        } else if !justid && pending.is_some() {
            nack.delivery_count = nack.delivery_count.wrapping_add(1);
        } else if !justid {
            // A NACK created by FORCE starts at one delivery, and this one counts too.
            nack.delivery_count = 2;
        }
        let (time, count) = (nack.delivery_time, nack.delivery_count);
        let last = g.last_id();
        if justid {
            reply_id(&mut scratch, id);
        } else if let Some(e) = s.get(id) {
            reply_entry(&mut scratch, &e);
        }
        claimed += 1;
        fx.xclaim(key, group, consumer, args.get(at), time, count, last);
        propagate_last_id = false;
    }
    if propagate_last_id && let Some(g) = s.group(group) {
        fx.setid(key, group, g.last_id(), g.entries_read());
    }
    drop(live);
    drop(shard);
    ctx.out().array(claimed);
    ctx.out().raw(scratch.as_bytes());
    fx.declare(ctx);
    Ok(())
}

/// What XAUTOCLAIM does to one pending entry.
enum AutoClaim {
    /// The entry is no longer in the stream: the NACK goes.
    Drop,
    Claim,
}

pub(super) fn xautoclaim(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (key, group, consumer) = (args.get(1), args.get(2), args.get(3));
    let min_idle = error::int_arg(args.get(4))
        .map_err(|_| Error::from("ERR Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0);
    let start = parse_bound(args.get(5), 0, true)?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut options = Cursor::new(args, 6);
    while let Some(opt) = options.next() {
        if is(opt, "count") && !options.is_done() {
            const MAX: i64 = i64::MAX / 16;
            count = error::int_arg(options.next_bytes()?)
                .ok()
                .filter(|n| (1..=MAX).contains(n))
                .ok_or_else(|| Error::from("ERR COUNT must be > 0"))?;
        } else if is(opt, "justid") {
            justid = true;
        } else {
            return Err(error::syntax());
        }
    }
    let now_key = ctx.now();
    let mut shard = lock_to_take(ctx, key);
    let Slot::Live(mut live) = shard.slot(key, now_key) else {
        ctx.hit(false);
        return Err(nogroup(key, group, ""));
    };
    ctx.hit(true);
    let s = as_stream(live.entry().value)?;
    let Some(g) = s.group(group) else { return Err(nogroup(key, group, "")) };
    // Redis allocates 16 bytes per COUNT up front, which fails past about 80 TB of address
    // space (Linux on x86-64, jemalloc); Magpie allocates nothing up front but refuses the same
    // counts.
    if count > 5 << 40 {
        return Err("ERR Insufficient memory, failed allocating transient memory, COUNT too high.".into());
    }
    // The walk of the PEL, decided on the value as it is (each entry is met once).
    let now = wall_ms_i64();
    let mut plan = Vec::new();
    let mut left = count;
    let mut attempts = count.saturating_mul(10);
    let mut pel = g.pending().range(start..).peekable();
    while attempts > 0 && left > 0 {
        attempts -= 1;
        let Some((id, nack)) = pel.next() else { break };
        if !s.contains(*id) {
            plan.push((*id, AutoClaim::Drop));
            left -= 1;
        } else if min_idle == 0 || now.wrapping_sub(nack.delivery_time) >= min_idle {
            plan.push((*id, AutoClaim::Claim));
            left -= 1;
        }
    }
    let cursor = pel.next().map_or(StreamId::MIN, |(id, _)| *id);
    let mut fx = Effects { log: ctx.logged(), ..Effects::default() };
    let mut claimed = 0;
    let mut deleted = Vec::new();
    let mut scratch = Reply::default();
    scratch.proto = ctx.protocol();
    if !plan.is_empty() {
        let s = stream_mut(&mut live)?;
        let mut consumer_ready = false;
        for (id, what) in plan {
            let Some(g) = s.group_mut(group) else { break };
            let text = id_text(id);
            match what {
                AutoClaim::Drop => {
                    if let Some(nack) = g.remove_nack(id) {
                        fx.xclaim(
                            key,
                            group,
                            nack.owner(),
                            &text,
                            nack.delivery_time,
                            nack.delivery_count,
                            g.last_id(),
                        );
                    }
                    deleted.push(id);
                }
                AutoClaim::Claim => {
                    if !consumer_ready {
                        if !g.touch_consumer(consumer, now) {
                            g.create_consumer(consumer, now);
                            fx.created.push(key.to_vec());
                        }
                        consumer_ready = true;
                    }
                    let nack = g.give(id, consumer, now, 1);
                    nack.delivery_time = now;
                    if !justid {
                        nack.delivery_count = nack.delivery_count.wrapping_add(1);
                    }
                    let (time, n) = (nack.delivery_time, nack.delivery_count);
                    let last = g.last_id();
                    if justid {
                        reply_id(&mut scratch, id);
                    } else if let Some(e) = s.get(id) {
                        reply_entry(&mut scratch, &e);
                    }
                    claimed += 1;
                    fx.xclaim(key, group, consumer, &text, time, n, last);
                }
            }
        }
    }
    drop(live);
    drop(shard);
    let out = ctx.out();
    out.array(3);
    reply_id(out, cursor);
    out.array(claimed);
    out.raw(scratch.as_bytes());
    out.array(deleted.len());
    for id in deleted {
        reply_id(out, id);
    }
    if !fx.records.is_empty() || !fx.created.is_empty() {
        fx.declare(ctx);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// XGROUP XSETID

pub(super) fn xgroup(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub_name = args.get(1);
    let (create, setid) = (is(sub_name, "create"), is(sub_name, "setid"));
    let (key, group) = (args.get(2), args.get(3));
    let mut mkstream = false;
    let mut entries_read = -1;
    let mut i = 5;
    while i < args.len() {
        let opt = args.get(i);
        if create && is(opt, "mkstream") {
            mkstream = true;
            i += 1;
        } else if (create || setid) && is(opt, "entriesread") && i + 1 < args.len() {
            entries_read = int_arg(args.get(i + 1))?;
            if entries_read < 0 && entries_read != -1 {
                return Err("ERR value for ENTRIESREAD must be positive or -1".into());
            }
            i += 2;
        } else {
            return Err(subcommand_syntax(args));
        }
    }
    let now = ctx.now();
    // The reply (`None`: OK) and the event, decided with the key locked.
    let (reply, event) = {
        let mut shard = lock_to_take(ctx, key);
        let mut slot = shard.slot(key, now);
        let s = match &slot {
            Slot::Live(live) => Some(as_stream(live.entry().value)?),
            Slot::Empty(_) => None,
        };
        if !mkstream {
            let Some(s) = s else {
                return Err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.".into());
            };
            if s.group(group).is_none() && !create && !is(sub_name, "destroy") {
                let mut msg = b"NOGROUP No such consumer group '".to_vec();
                msg.extend_from_slice(c_str(group));
                msg.extend_from_slice(b"' for key name '");
                msg.extend_from_slice(c_str(key));
                msg.push(b'\'');
                return Err(Error::bytes(msg));
            }
        }
        if create && (5..=8).contains(&args.len()) {
            let id_arg = args.get(4);
            let id =
                if c_str(id_arg) == b"$" { s.map_or(StreamId::MIN, Stream::last_id) } else { parse_strict_id(id_arg)? };
            if s.is_some_and(|s| s.group(group).is_some()) {
                return Err("BUSYGROUP Consumer Group name already exists".into());
            }
            match &mut slot {
                Slot::Live(live) => {
                    stream_mut(live)?.create_group(group, id, entries_read);
                }
                Slot::Empty(_) => {
                    let mut s = Stream::new();
                    s.create_group(group, id, entries_read);
                    if let Slot::Empty(empty) = slot {
                        empty.insert(Value::Stream(Box::new(s)), None);
                    }
                }
            }
            (None, Some("xgroup-create"))
        } else if setid && (args.len() == 5 || args.len() == 7) {
            let id_arg = args.get(4);
            let id =
                if c_str(id_arg) == b"$" { s.map_or(StreamId::MIN, Stream::last_id) } else { parse_id(id_arg, 0)? };
            let Slot::Live(live) = &mut slot else { return Err(error::syntax()) };
            if let Some(g) = stream_mut(live)?.group_mut(group) {
                g.set_position(id, entries_read);
            }
            (None, Some("xgroup-setid"))
        } else if is(sub_name, "destroy") && args.len() == 4 {
            if s.is_some_and(|s| s.group(group).is_some())
                && let Slot::Live(live) = &mut slot
            {
                stream_mut(live)?.destroy_group(group);
                (Some(1), Some("xgroup-destroy"))
            } else {
                (Some(0), None)
            }
        } else if is(sub_name, "createconsumer") && args.len() == 5 {
            let name = args.get(4);
            if s.and_then(|s| s.group(group)).is_some_and(|g| g.consumer(name).is_some()) {
                (Some(0), None)
            } else {
                let Slot::Live(live) = &mut slot else { return Err(error::syntax()) };
                if let Some(g) = stream_mut(live)?.group_mut(group) {
                    g.create_consumer(name, wall_ms_i64());
                }
                (Some(1), Some("xgroup-createconsumer"))
            }
        } else if is(sub_name, "delconsumer") && args.len() == 5 {
            let name = args.get(4);
            if s.and_then(|s| s.group(group)).is_some_and(|g| g.consumer(name).is_some())
                && let Slot::Live(live) = &mut slot
            {
                let pending = stream_mut(live)?.group_mut(group).and_then(|g| g.delete_consumer(name)).unwrap_or(0);
                (Some(pending as i64), Some("xgroup-delconsumer"))
            } else {
                (Some(0), None)
            }
        } else {
            return Err(subcommand_syntax(args));
        }
    };
    match reply {
        None => ctx.out().ok(),
        Some(n) => ctx.out().int(n),
    }
    if let Some(event) = event {
        ctx.notify(notify::STREAM, event, key);
    }
    Ok(())
}

pub(super) fn xgroup_help(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    help(
        ctx,
        args,
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
        ],
    )
}

pub(super) fn xsetid(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let id = parse_strict_id(args.get(2))?;
    let (mut added, mut max_deleted) = (None::<u64>, StreamId::MIN);
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = args.get(i);
        if is(opt, "entriesadded") && more > 0 {
            let n = int_arg(args.get(i + 1))?;
            if n < 0 {
                return Err("ERR entries_added must be positive".into());
            }
            added = Some(n as u64);
            i += 2;
        } else if is(opt, "maxdeletedid") && more > 0 {
            max_deleted = parse_strict_id(args.get(i + 1))?;
            if id < max_deleted {
                return Err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id".into());
            }
            i += 2;
        } else {
            return Err(error::syntax());
        }
    }
    let key = args.get(1);
    let now = ctx.now();
    let mut shard = lock_to_take(ctx, key);
    let Slot::Live(mut live) = shard.slot(key, now) else { return Err(error::NO_SUCH_KEY.into()) };
    let s = as_stream(live.entry().value)?;
    if !s.is_empty() {
        if s.last_valid_id().is_some_and(|top| id < top) {
            return Err("ERR The ID specified in XSETID is smaller than the target stream top item".into());
        }
        if added.is_some_and(|n| s.len() > n) {
            return Err("ERR The entries_added specified in XSETID is smaller than the target stream length".into());
        }
    }
    stream_mut(&mut live)?.set_ids(id, added, (!max_deleted.is_zero()).then_some(max_deleted));
    drop(live);
    drop(shard);
    ctx.out().ok();
    ctx.notify(notify::STREAM, "xsetid", key);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// XINFO

/// The stream at `key`, read-locked, or Redis's `no such key` / WRONGTYPE.
fn info_lookup<'s>(ctx: &Ctx<'_>, shard: &'s magpie_store::ShardRead<'_>, key: &[u8]) -> Result<&'s Stream, Error> {
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let Some(e) = found else { return Err(error::NO_SUCH_KEY.into()) };
    as_stream(e.value)
}

fn reply_lag(out: &mut Reply, s: &Stream, g: &magpie_store::stream::Group) {
    match s.meta().lag(g) {
        Some(lag) => out.int(lag),
        None => out.null(),
    }
}

fn reply_entries_read(out: &mut Reply, n: i64) {
    if n != -1 { out.int(n) } else { out.null() }
}

pub(super) fn xinfo_stream(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    // The key is looked up first (`xinfoCommand`), then the options are read.
    let key = args.get(2);
    let shard = ctx.db().read(key);
    let s = info_lookup(ctx, &shard, key)?;
    let mut full = false;
    let mut count: i64 = 10;
    match args.len() {
        3 => {}
        4 | 6 => {
            if !is(args.get(3), "full") {
                return Err(subcommand_syntax(args));
            }
            full = true;
            if args.len() == 6 {
                if !is(args.get(4), "count") {
                    return Err(subcommand_syntax(args));
                }
                count = int_arg(args.get(5))?;
                if count < 0 {
                    count = 10;
                }
            }
        }
        _ => return Err(subcommand_syntax(args)),
    }
    let m = s.meta();
    let out = ctx.out();
    out.map(if full { 9 } else { 10 });
    out.bulk(b"length");
    out.int(m.length as i64);
    out.bulk(b"radix-tree-keys");
    out.int(s.node_count() as i64);
    out.bulk(b"radix-tree-nodes");
    out.int(s.rax_node_count() as i64);
    out.bulk(b"last-generated-id");
    reply_id(out, m.last_id);
    out.bulk(b"max-deleted-entry-id");
    reply_id(out, m.max_deleted_id);
    out.bulk(b"entries-added");
    out.int(m.entries_added as i64);
    out.bulk(b"recorded-first-entry-id");
    reply_id(out, m.first_id);
    if !full {
        out.bulk(b"groups");
        out.int(s.group_count() as i64);
        out.bulk(b"first-entry");
        match s.range(StreamId::MIN, StreamId::MAX, false).next() {
            Some(e) => reply_entry(out, &e),
            None => out.null(),
        }
        out.bulk(b"last-entry");
        match s.range(StreamId::MIN, StreamId::MAX, true).next() {
            Some(e) => reply_entry(out, &e),
            None => out.null(),
        }
        return Ok(());
    }
    let limit = if count == 0 { usize::MAX } else { usize::try_from(count).unwrap_or(usize::MAX) };
    out.bulk(b"entries");
    reply_range(out, s, StreamId::MIN, StreamId::MAX, if count == 0 { 0 } else { limit }, false);
    out.bulk(b"groups");
    out.array(s.group_count());
    for (name, g) in s.groups() {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"last-delivered-id");
        reply_id(out, g.last_id());
        out.bulk(b"entries-read");
        reply_entries_read(out, g.entries_read());
        out.bulk(b"lag");
        reply_lag(out, s, g);
        out.bulk(b"pel-count");
        out.int(g.pending().len() as i64);
        out.bulk(b"pending");
        let n = g.pending().len().min(limit);
        out.array(n);
        for (id, nack) in g.pending().iter().take(n) {
            out.array(4);
            reply_id(out, *id);
            out.bulk(nack.owner());
            out.int(nack.delivery_time);
            out.int(nack.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(g.consumers().len());
        for (cname, c) in g.consumers() {
            out.map(4);
            out.bulk(b"name");
            out.bulk(cname);
            out.bulk(b"seen-time");
            out.int(c.seen_time);
            out.bulk(b"pel-count");
            out.int(c.pending().len() as i64);
            out.bulk(b"pending");
            let n = c.pending().len().min(limit);
            out.array(n);
            for id in c.pending().iter().take(n) {
                let nack = g.nack(*id);
                out.array(3);
                reply_id(out, *id);
                out.int(nack.map_or(0, |n| n.delivery_time));
                out.int(nack.map_or(0, |n| n.delivery_count as i64));
            }
        }
    }
    Ok(())
}

pub(super) fn xinfo_groups(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(2);
    let shard = ctx.db().read(key);
    let s = info_lookup(ctx, &shard, key)?;
    let out = ctx.out();
    out.array(s.group_count());
    for (name, g) in s.groups() {
        out.map(6);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"consumers");
        out.int(g.consumers().len() as i64);
        out.bulk(b"pending");
        out.int(g.pending().len() as i64);
        out.bulk(b"last-delivered-id");
        reply_id(out, g.last_id());
        out.bulk(b"entries-read");
        reply_entries_read(out, g.entries_read());
        out.bulk(b"lag");
        reply_lag(out, s, g);
    }
    Ok(())
}

pub(super) fn xinfo_consumers(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (key, group) = (args.get(2), args.get(3));
    let shard = ctx.db().read(key);
    let s = info_lookup(ctx, &shard, key)?;
    let Some(g) = s.group(group) else {
        let mut msg = b"NOGROUP No such consumer group '".to_vec();
        msg.extend_from_slice(c_str(group));
        msg.extend_from_slice(b"' for key name '");
        msg.extend_from_slice(c_str(key));
        msg.push(b'\'');
        return Err(Error::bytes(msg));
    };
    let now = wall_ms_i64();
    let out = ctx.out();
    out.array(g.consumers().len());
    for (name, c) in g.consumers() {
        out.map(3);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"pending");
        out.int(c.pending().len() as i64);
        out.bulk(b"idle");
        out.int(now.wrapping_sub(c.seen_time).max(0));
    }
    Ok(())
}

pub(super) fn xinfo_help(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    help(
        ctx,
        args,
        &[
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_as_redis_reads_them() {
        let p = |s: &str| parse_id_with(s.as_bytes(), 7, true, true).map(|(id, seq)| (id.ms, id.seq, seq));
        assert_eq!(p("1-2"), Some((1, 2, true)));
        assert_eq!(p("5"), Some((5, 7, true)));
        assert_eq!(p("5-*"), Some((5, 0, false)));
        assert_eq!(p(" 6-0"), Some((6, 0, true)));
        assert_eq!(p("+7-0"), Some((7, 0, true)));
        assert_eq!(p("007-1"), Some((7, 1, true)));
        assert_eq!(p("5--01"), Some((5, u64::MAX, true)));
        assert_eq!(p("5--1"), None);
        assert_eq!(p("-"), None);
        assert_eq!(p("18446744073709551616"), None);
        assert_eq!(p("1-2\0junk"), Some((1, 2, true)));
        assert_eq!(p(""), None);
        assert_eq!(p("1-"), None);
        assert_eq!(p(&"1".repeat(128)), None);
        assert_eq!(parse_id(b"+", 0), Ok(StreamId::MAX));
        assert_eq!(parse_bound(b"(5", 0, true), Ok(StreamId::new(5, 1)));
        assert_eq!(parse_bound(b"(5", u64::MAX, false), Ok(StreamId::new(5, u64::MAX - 1)));
        assert!(parse_bound(b"(-", 0, true).is_err());
        assert!(parse_bound(b"(0-0", 0, false).is_err());
    }
}
