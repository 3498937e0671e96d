//! The sorted-set commands. Redis's generic bodies are kept: one for ZADD and ZINCRBY
//! (`zadd_generic`), one for ZRANGE and its older forms and ZRANGESTORE (`zrange_generic`),
//! one for the ZREMRANGEBY* commands, one pop for ZPOPMIN/ZPOPMAX/ZMPOP (and the blocking
//! forms: see [`pop_first`]), and one for the set operations (`setops`).
//!
//! BZPOPMIN, BZPOPMAX and BZMPOP wait as the blocking list commands do (see
//! [`crate::blocking`]): every command that adds members signals the key while its shard is
//! locked, and every command that takes members locks its keys through [`lock_to_take`] (or
//! [`lock_all_to_take`]), letting clients blocked on them be served first.

mod parse;
mod setops;

use std::ops::Range;

use magpie_protocol::{Args, Reply, format_g17};
use magpie_store::zset::{LexRange, ScoreRange};
use magpie_store::{MultiWrite, Shard, Slot, Value, ValueRef, ZSet, glob_match};

use super::keys::{ScanOptions, parse_cursor, scan_options};
use super::lock_to_take;
use crate::core::args::Cursor;
use crate::core::error::{self, CmdResult, Error, int_arg, is, wrongtype};
use crate::core::events as notify;
use crate::model::{Command, Ctx, KeySpec, wait as blocking};
use crate::{flags, key_flags};
pub(super) use parse::{float_arg, strtod};
use parse::{lex_range, score_arg, score_range};
use setops::Op;

const GROUP: &str = "sorted-set";

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("zadd", -4, flags![WRITE, DENYOOM, FAST], GROUP, "1.2.0", "Add one or more members to a sorted set, or update its score if it already exists",
        "key [NX|XX] [GT|LT] [CH] [INCR] (score:double member) ...", zadd)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    Command::new("zincrby", 4, flags![WRITE, DENYOOM, FAST], GROUP, "1.2.0", "Increment the score of a member in a sorted set",
        "key increment:integer member", zincrby)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE])]),
    Command::new("zrem", -3, flags![WRITE, FAST], GROUP, "1.2.0", "Remove one or more members from a sorted set",
        "key member [member ...]", zrem)
        .keys(&[KeySpec::one(1, key_flags![RW, DELETE])]),
    Command::new("zscore", 3, flags![READONLY, FAST], GROUP, "1.2.0", "Get the score associated with the given member in a sorted set",
        "key member", zscore)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("zmscore", -3, flags![READONLY, FAST], GROUP, "6.2.0", "Get the score associated with the given members in a sorted set",
        "key member [member ...]", zmscore)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("zcard", 2, flags![READONLY, FAST], GROUP, "1.2.0", "Get the number of members in a sorted set",
        "key", zcard)
        .keys(&[KeySpec::one(1, key_flags![RO])]),
    Command::new("zcount", 4, flags![READONLY, FAST], GROUP, "2.0.0", "Count the members in a sorted set with scores within the given values",
        "key min:double max:double", zcount)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("zlexcount", 4, flags![READONLY, FAST], GROUP, "2.8.9", "Count the number of members in a sorted set between a given lexicographical range",
        "key min max", zlexcount)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("zrange", -4, flags![READONLY], GROUP, "1.2.0", "Return a range of members in a sorted set",
        "key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset:integer count:integer] [WITHSCORES]", zrange)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("zrangestore", -5, flags![WRITE, DENYOOM], GROUP, "6.2.0", "Store a range of members from sorted set into another key",
        "dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset:integer count:integer]", zrangestore)
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE]), KeySpec::one(2, key_flags![RO, ACCESS])]),
    Command::new("zrevrange", -4, flags![READONLY], GROUP, "1.2.0", "Return a range of members in a sorted set, by index, with scores ordered from high to low",
        "key start:integer stop:integer [WITHSCORES]", zrevrange)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("zrangebyscore", -4, flags![READONLY], GROUP, "1.0.5", "Return a range of members in a sorted set, by score",
        "key min:double max:double [WITHSCORES] [LIMIT offset:integer count:integer]", zrangebyscore)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("zrevrangebyscore", -4, flags![READONLY], GROUP, "2.2.0", "Return a range of members in a sorted set, by score, with scores ordered from high to low",
        "key max:double min:double [WITHSCORES] [LIMIT offset:integer count:integer]", zrevrangebyscore)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("zrangebylex", -4, flags![READONLY], GROUP, "2.8.9", "Return a range of members in a sorted set, by lexicographical range",
        "key min max [LIMIT offset:integer count:integer]", zrangebylex)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("zrevrangebylex", -4, flags![READONLY], GROUP, "2.8.9", "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings.",
        "key max min [LIMIT offset:integer count:integer]", zrevrangebylex)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("zrank", 3, flags![READONLY, FAST], GROUP, "2.0.0", "Determine the index of a member in a sorted set",
        "key member", zrank)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("zrevrank", 3, flags![READONLY, FAST], GROUP, "2.0.0", "Determine the index of a member in a sorted set, with scores ordered from high to low",
        "key member", zrevrank)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("zpopmin", -2, flags![WRITE, FAST], GROUP, "5.0.0", "Remove and return members with the lowest scores in a sorted set",
        "key [count:integer]", zpopmin)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE])]),
    Command::new("zpopmax", -2, flags![WRITE, FAST], GROUP, "5.0.0", "Remove and return members with the highest scores in a sorted set",
        "key [count:integer]", zpopmax)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE])]),
    Command::new("zmpop", -4, flags![WRITE], GROUP, "7.0.0", "Remove and return members with scores in a sorted set",
        "numkeys:integer key [key ...] (MIN|MAX) [COUNT count:integer]", zmpop)
        .keys(&[KeySpec::keynum(1, 0, 1, 1, key_flags![RW, ACCESS, DELETE])]),
    Command::new("bzpopmin", -3, flags![WRITE, NOSCRIPT, FAST, BLOCKING], GROUP, "5.0.0", "Remove and return the member with the lowest score from one or more sorted sets, or block until one is available",
        "key [key ...] timeout:double", bzpopmin)
        .keys(&[KeySpec::range(1, -2, 1, key_flags![RW, ACCESS, DELETE])]),
    Command::new("bzpopmax", -3, flags![WRITE, NOSCRIPT, FAST, BLOCKING], GROUP, "5.0.0", "Remove and return the member with the highest score from one or more sorted sets, or block until one is available",
        "key [key ...] timeout:double", bzpopmax)
        .keys(&[KeySpec::range(1, -2, 1, key_flags![RW, ACCESS, DELETE])]),
    Command::new("bzmpop", -5, flags![WRITE, BLOCKING], GROUP, "7.0.0", "Remove and return members with scores in a sorted set or block until one is available",
        "timeout:double numkeys:integer key [key ...] (MIN|MAX) [COUNT count:integer]", bzmpop)
        .keys(&[KeySpec::keynum(2, 0, 1, 1, key_flags![RW, ACCESS, DELETE])]),
    Command::new("zrandmember", -2, flags![READONLY], GROUP, "6.2.0", "Get one or multiple random elements from a sorted set",
        "key [count:integer [WITHSCORES]]", zrandmember)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output"]),
    Command::new("zremrangebyrank", 4, flags![WRITE], GROUP, "2.0.0", "Remove all members in a sorted set within the given indexes",
        "key start:integer stop:integer", zremrangebyrank)
        .keys(&[KeySpec::one(1, key_flags![RW, DELETE])]),
    Command::new("zremrangebyscore", 4, flags![WRITE], GROUP, "1.2.0", "Remove all members in a sorted set within the given scores",
        "key min:double max:double", zremrangebyscore)
        .keys(&[KeySpec::one(1, key_flags![RW, DELETE])]),
    Command::new("zremrangebylex", 4, flags![WRITE], GROUP, "2.8.9", "Remove all members in a sorted set between the given lexicographical range",
        "key min max", zremrangebylex)
        .keys(&[KeySpec::one(1, key_flags![RW, DELETE])]),
    Command::new("zunionstore", -4, flags![WRITE, DENYOOM], GROUP, "2.0.0", "Add multiple sorted sets and store the resulting sorted set in a new key",
        "destination numkeys:integer key [key ...] [WEIGHTS weight:integer ...] [AGGREGATE SUM|MIN|MAX]", zunionstore)
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE]), KeySpec::keynum(2, 0, 1, 1, key_flags![RO, ACCESS])]),
    Command::new("zinterstore", -4, flags![WRITE, DENYOOM], GROUP, "2.0.0", "Intersect multiple sorted sets and store the resulting sorted set in a new key",
        "destination numkeys:integer key [key ...] [WEIGHTS weight:integer ...] [AGGREGATE SUM|MIN|MAX]", zinterstore)
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE]), KeySpec::keynum(2, 0, 1, 1, key_flags![RO, ACCESS])]),
    Command::new("zdiffstore", -4, flags![WRITE, DENYOOM], GROUP, "6.2.0", "Subtract multiple sorted sets and store the resulting sorted set in a new key",
        "destination numkeys:integer key [key ...]", zdiffstore)
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE]), KeySpec::keynum(2, 0, 1, 1, key_flags![RO, ACCESS])]),
    Command::new("zunion", -3, flags![READONLY], GROUP, "6.2.0", "Add multiple sorted sets",
        "numkeys:integer key [key ...] [WEIGHTS weight:integer ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]", zunion)
        .keys(&[KeySpec::keynum(1, 0, 1, 1, key_flags![RO, ACCESS])]),
    Command::new("zinter", -3, flags![READONLY], GROUP, "6.2.0", "Intersect multiple sorted sets",
        "numkeys:integer key [key ...] [WEIGHTS weight:integer ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]", zinter)
        .keys(&[KeySpec::keynum(1, 0, 1, 1, key_flags![RO, ACCESS])]),
    Command::new("zintercard", -3, flags![READONLY], GROUP, "7.0.0", "Intersect multiple sorted sets and return the cardinality of the result",
        "numkeys:integer key [key ...] [LIMIT limit:integer]", zintercard)
        .keys(&[KeySpec::keynum(1, 0, 1, 1, key_flags![RO, ACCESS])]),
    Command::new("zdiff", -3, flags![READONLY], GROUP, "6.2.0", "Subtract multiple sorted sets",
        "numkeys:integer key [key ...] [WITHSCORES]", zdiff)
        .keys(&[KeySpec::keynum(1, 0, 1, 1, key_flags![RO, ACCESS])]),
    Command::new("zscan", -3, flags![READONLY], GROUP, "2.8.0", "Incrementally iterate sorted sets elements and associated scores",
        "key cursor:integer [MATCH pattern:pattern] [COUNT count:integer]", zscan)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output"]),
];

/// The sorted set in a value, or WRONGTYPE.
fn zset_of<'a>(value: impl Into<ValueRef<'a>>) -> Result<&'a ZSet, Error> {
    match value.into().boxed() {
        Some(Value::ZSet(z)) => Ok(z),
        _ => Err(wrongtype()),
    }
}

fn zset_mut(value: &mut Value) -> Result<&mut ZSet, Error> {
    match value {
        Value::ZSet(z) => Ok(z),
        _ => Err(wrongtype()),
    }
}

/// Writes `count` entries of `z` from rank `begin` (backward with `rev`), members only or
/// with their scores.
fn write_entries(out: &mut Reply, z: &ZSet, begin: usize, count: usize, rev: bool, withscores: bool) {
    if withscores {
        out.pairs(count);
    } else {
        out.array(count);
    }
    for (member, score) in z.iter_from(begin, rev).take(count) {
        if withscores {
            out.pair();
            out.bulk(member);
            out.double(score);
        } else {
            out.bulk(member);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ZADD, ZINCRBY

#[derive(Clone, Copy, Default)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    incr: bool,
}

/// What one score-member pair of ZADD does (Redis's `zsetAdd`).
enum Step {
    /// Nothing (NX on an existing member, XX on a new one, GT/LT refusing).
    Nop,
    /// INCR made the score NaN.
    Nan,
    /// The member gets `score`: `added`, or updated when the score `changed`.
    Set { score: f64, added: bool, changed: bool },
}

fn step(current: Option<f64>, score: f64, f: AddFlags) -> Step {
    match current {
        None if f.xx => Step::Nop,
        None => Step::Set { score, added: true, changed: true },
        Some(_) if f.nx => Step::Nop,
        Some(cur) => {
            let score = if f.incr { score + cur } else { score };
            if score.is_nan() {
                return Step::Nan;
            }
            if (f.lt && score >= cur) || (f.gt && score <= cur) {
                return Step::Nop;
            }
            Step::Set { score, added: false, changed: score != cur }
        }
    }
}

#[derive(Default)]
struct Tally {
    added: usize,
    updated: usize,
    processed: usize,
    /// The score of the last pair processed (INCR's reply).
    score: f64,
    nan: bool,
}

/// Applies pairs `range` (score at `first + 2j`, member after it) to `z`. `known` is the
/// current score of the first pair's member when the caller has looked it up already.
fn apply(
    z: &mut ZSet,
    args: Args<'_>,
    first: usize,
    range: Range<usize>,
    known: Option<Option<f64>>,
    f: AddFlags,
    t: &mut Tally,
) {
    let start = range.start;
    for j in range {
        let (score, member) = (float_arg(args.get(first + 2 * j)).unwrap_or(0.0), args.get(first + 2 * j + 1));
        let current = match known {
            Some(current) if j == start => current,
            _ => z.score(member),
        };
        match step(current, score, f) {
            Step::Nop => {}
            Step::Nan => {
                t.nan = true;
                return;
            }
            Step::Set { score, added, changed } => {
                t.processed += 1;
                t.score = score;
                if added {
                    z.insert_new(member, score);
                    t.added += 1;
                } else if changed {
                    z.insert(member, score);
                    t.updated += 1;
                }
            }
        }
    }
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...], and ZINCRBY (`incr`).
fn zadd_generic(ctx: &mut Ctx<'_>, args: Args<'_>, incr: bool) -> CmdResult {
    let mut f = AddFlags { incr, ..AddFlags::default() };
    let mut ch = false;
    let mut first = 2;
    while first < args.len() {
        let opt = args.get(first);
        if is(opt, "nx") {
            f.nx = true;
        } else if is(opt, "xx") {
            f.xx = true;
        } else if is(opt, "ch") {
            ch = true;
        } else if is(opt, "incr") {
            f.incr = true;
        } else if is(opt, "gt") {
            f.gt = true;
        } else if is(opt, "lt") {
            f.lt = true;
        } else {
            break;
        }
        first += 1;
    }
    let rest = args.len() - first;
    if rest == 0 || rest % 2 == 1 {
        return Err(error::syntax());
    }
    if f.nx && f.xx {
        return Err("ERR XX and NX options at the same time are not compatible".into());
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return Err("ERR GT, LT, and/or NX options at the same time are not compatible".into());
    }
    let pairs = rest / 2;
    if f.incr && pairs > 1 {
        return Err("ERR INCR option supports a single increment-element pair".into());
    }
    // Every score is checked before anything changes.
    for j in 0..pairs {
        score_arg(args.get(first + 2 * j))?;
    }
    let key = args.get(1);
    let mut t = Tally::default();
    let mut shard = ctx.db().write(key);
    match shard.slot(key, ctx.now()) {
        Slot::Live(mut live) => {
            // Read only, up to the first pair that changes something: a ZADD that changes
            // nothing does not touch the value.
            let z = zset_of(live.entry().value)?;
            let (mut change, mut known) = (pairs, None);
            for j in 0..pairs {
                let (score, member) = (float_arg(args.get(first + 2 * j)).unwrap_or(0.0), args.get(first + 2 * j + 1));
                let current = z.score(member);
                match step(current, score, f) {
                    Step::Nop => {}
                    Step::Nan => {
                        t.nan = true;
                        break;
                    }
                    Step::Set { score, changed: false, .. } => {
                        t.processed += 1;
                        t.score = score;
                    }
                    Step::Set { .. } => {
                        (change, known) = (j, Some(current));
                        break;
                    }
                }
            }
            if change < pairs {
                apply(zset_mut(live.value_mut())?, args, first, change..pairs, known, f, &mut t);
            }
        }
        Slot::Empty(empty) => {
            if !f.xx {
                let mut z = ZSet::new();
                apply(&mut z, args, first, 0..pairs, None, f, &mut t);
                if !z.is_empty() {
                    empty.insert(Value::ZSet(Box::new(z)), None);
                }
            }
        }
    }
    let changed = t.added + t.updated > 0;
    drop(shard);
    if changed {
        ctx.notify(notify::ZSET, if f.incr { "zincr" } else { "zadd" }, key);
    }
    if t.nan {
        return Err("ERR resulting score is not a number (NaN)".into());
    }
    if f.incr {
        if t.processed > 0 {
            ctx.out().double(t.score);
        } else {
            ctx.out().null();
        }
    } else {
        ctx.out().int((if ch { t.added + t.updated } else { t.added }) as i64);
    }
    Ok(())
}

pub(super) fn zadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zadd_generic(ctx, args, false)
}

pub(super) fn zincrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zadd_generic(ctx, args, true)
}

// ---------------------------------------------------------------------------------------------
// ZREM, ZREMRANGEBY*

pub(super) fn zrem(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let members = args.skip(2);
    let (removed, emptied) = {
        let mut shard = lock_to_take(ctx, key);
        let Slot::Live(mut live) = shard.slot(key, ctx.now()) else {
            ctx.out().int(0);
            return Ok(());
        };
        let z = zset_of(live.entry().value)?;
        if !members.iter().any(|m| z.contains(m)) {
            ctx.out().int(0);
            return Ok(());
        }
        let z = zset_mut(live.value_mut())?;
        let removed = members.iter().filter(|m| z.remove(m).is_some()).count();
        let emptied = z.is_empty();
        if emptied {
            live.remove();
        }
        (removed, emptied)
    };
    ctx.notify(notify::ZSET, "zrem", key);
    if emptied {
        ctx.notify(notify::GENERIC, "del", key);
    }
    ctx.out().int(removed as i64);
    Ok(())
}

/// The ranks ZRANGE and ZREMRANGEBYRANK select: `start..=stop`, negative from the end.
fn rank_span(len: usize, start: i64, stop: i64) -> Range<usize> {
    let llen = len as i64;
    let mut start = if start < 0 { start + llen } else { start };
    let mut stop = if stop < 0 { stop + llen } else { stop };
    start = start.max(0);
    if start > stop || start >= llen {
        return 0..0;
    }
    stop = stop.min(llen - 1);
    start as usize..stop as usize + 1
}

/// Which ranges a range command reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    /// Not said yet (ZRANGE before its options are read).
    Auto,
    Rank,
    Score,
    Lex,
}

/// A parsed range.
enum Spec<'a> {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange<'a>),
}

impl<'a> Spec<'a> {
    fn parse(by: By, min: &'a [u8], max: &'a [u8]) -> Result<Spec<'a>, Error> {
        Ok(match by {
            By::Score => Spec::Score(score_range(min, max)?),
            By::Lex => Spec::Lex(lex_range(min, max)?),
            By::Auto | By::Rank => Spec::Rank(int_arg(min)?, int_arg(max)?),
        })
    }

    /// The ranks the range covers, for a walk forward (or backward with `rev`).
    fn span(&self, z: &ZSet, rev: bool) -> Range<usize> {
        match self {
            Spec::Rank(start, stop) => rank_span(z.len(), *start, *stop),
            Spec::Score(r) => z.score_span(r),
            Spec::Lex(r) => z.lex_span(r, rev),
        }
    }
}

fn zremrange_generic(ctx: &mut Ctx<'_>, args: Args<'_>, by: By) -> CmdResult {
    let spec = Spec::parse(by, args.get(2), args.get(3))?;
    let key = args.get(1);
    let (removed, emptied) = {
        let mut shard = lock_to_take(ctx, key);
        let Slot::Live(mut live) = shard.slot(key, ctx.now()) else {
            ctx.out().int(0);
            return Ok(());
        };
        let span = spec.span(zset_of(live.entry().value)?, false);
        if span.is_empty() {
            ctx.out().int(0);
            return Ok(());
        }
        let z = zset_mut(live.value_mut())?;
        let removed = z.remove_ranks(span);
        let emptied = z.is_empty();
        if emptied {
            live.remove();
        }
        (removed, emptied)
    };
    let event = match by {
        By::Score => "zremrangebyscore",
        By::Lex => "zremrangebylex",
        By::Auto | By::Rank => "zremrangebyrank",
    };
    ctx.notify(notify::ZSET, event, key);
    if emptied {
        ctx.notify(notify::GENERIC, "del", key);
    }
    ctx.out().int(removed as i64);
    Ok(())
}

pub(super) fn zremrangebyrank(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zremrange_generic(ctx, args, By::Rank)
}

pub(super) fn zremrangebyscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zremrange_generic(ctx, args, By::Score)
}

pub(super) fn zremrangebylex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zremrange_generic(ctx, args, By::Lex)
}

// ---------------------------------------------------------------------------------------------
// Reads of one key

/// Looks `key` up for reading (counting the hit or miss) and calls `f` with its sorted set,
/// or answers `missing` itself when there is no such key.
fn read_zset(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    missing: impl FnOnce(&mut Reply),
    f: impl FnOnce(&mut Reply, &ZSet) -> CmdResult,
) -> CmdResult {
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    match found {
        None => {
            missing(ctx.out());
            Ok(())
        }
        Some(e) => f(ctx.out(), zset_of(e.value)?),
    }
}

pub(super) fn zscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let member = args.get(2);
    read_zset(ctx, args.get(1), Reply::null, |out, z| {
        match z.score(member) {
            Some(s) => out.double(s),
            None => out.null(),
        }
        Ok(())
    })
}

pub(super) fn zmscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let members = args.skip(2);
    let reply = |out: &mut Reply, z: Option<&ZSet>| {
        out.array(members.len());
        for m in members.iter() {
            match z.and_then(|z| z.score(m)) {
                Some(s) => out.double(s),
                None => out.null(),
            }
        }
        Ok(())
    };
    read_zset(ctx, args.get(1), |out| reply(out, None).unwrap_or(()), |out, z| reply(out, Some(z)))
}

pub(super) fn zcard(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    read_zset(
        ctx,
        args.get(1),
        |out| out.int(0),
        |out, z| {
            out.int(z.len() as i64);
            Ok(())
        },
    )
}

fn zrank_generic(ctx: &mut Ctx<'_>, args: Args<'_>, rev: bool) -> CmdResult {
    let member = args.get(2);
    read_zset(ctx, args.get(1), Reply::null, |out, z| {
        match z.rank(member) {
            Some(r) if rev => out.int((z.len() - 1 - r) as i64),
            Some(r) => out.int(r as i64),
            None => out.null(),
        }
        Ok(())
    })
}

pub(super) fn zrank(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zrank_generic(ctx, args, false)
}

pub(super) fn zrevrank(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zrank_generic(ctx, args, true)
}

pub(super) fn zcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let range = score_range(args.get(2), args.get(3))?;
    read_zset(
        ctx,
        args.get(1),
        |out| out.int(0),
        |out, z| {
            out.int(z.score_span(&range).len() as i64);
            Ok(())
        },
    )
}

pub(super) fn zlexcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let range = lex_range(args.get(2), args.get(3))?;
    read_zset(
        ctx,
        args.get(1),
        |out| out.int(0),
        |out, z| {
            out.int(z.lex_span(&range, false).len() as i64);
            Ok(())
        },
    )
}

// ---------------------------------------------------------------------------------------------
// ZRANGE and its forms

/// The part of `span` after skipping `offset` entries (from its end with `rev`), at most
/// `limit` of them (a negative limit: all), as (first rank, count). A negative offset selects
/// nothing, as in Redis, whose walk skips entries until there are none.
fn window(span: Range<usize>, rev: bool, offset: i64, limit: i64) -> (usize, usize) {
    let Ok(offset) = usize::try_from(offset) else { return (0, 0) };
    let available = span.len().saturating_sub(offset);
    if available == 0 {
        return (0, 0);
    }
    let count = usize::try_from(limit).map_or(available, |l| l.min(available));
    let begin = if rev { span.end - 1 - offset } else { span.start + offset };
    (begin, count)
}

/// ZRANGE, ZRANGESTORE, ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX,
/// ZREVRANGEBYLEX (Redis's `zrangeGenericCommand`): the source key is argument `src`, then
/// min and max, then options; `dst` for ZRANGESTORE. `by` and `rev` are fixed by the older
/// forms and read from the options by ZRANGE.
fn zrange_generic(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    src: usize,
    dst: Option<&[u8]>,
    mut by: By,
    mut rev: Option<bool>,
) -> CmdResult {
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut options = Cursor::new(args, src + 3);
    while let Some(opt) = options.next() {
        if dst.is_none() && is(opt, "withscores") {
            withscores = true;
        } else if is(opt, "limit") && options.remaining() >= 2 {
            offset = options.next_int()?;
            limit = options.next_int()?;
        } else if rev.is_none() && is(opt, "rev") {
            rev = Some(true);
        } else if by == By::Auto && is(opt, "bylex") {
            by = By::Lex;
        } else if by == By::Auto && is(opt, "byscore") {
            by = By::Score;
        } else {
            return Err(error::syntax());
        }
    }
    let rev = rev.unwrap_or(false);
    if by == By::Auto {
        by = By::Rank;
    }
    if limit != -1 && by == By::Rank {
        return Err("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX".into());
    }
    if withscores && by == By::Lex {
        return Err("ERR syntax error, WITHSCORES not supported in combination with BYLEX".into());
    }
    // Reversed score and lex ranges name max before min.
    let (min, max) = if rev && by != By::Rank { (src + 2, src + 1) } else { (src + 1, src + 2) };
    let spec = Spec::parse(by, args.get(min), args.get(max))?;
    // The first rank to emit and how many, walking forward (or backward with `rev`).
    let window_of = |z: &ZSet| {
        let span = spec.span(z, rev);
        match by {
            // ZREVRANGE's positions count from the highest entry.
            By::Rank if span.is_empty() => (0, 0),
            By::Rank if rev => (z.len() - 1 - span.start, span.len()),
            By::Rank => (span.start, span.len()),
            _ => window(span, rev, offset, limit),
        }
    };
    let key = args.get(src);
    let Some(dst) = dst else {
        return read_zset(
            ctx,
            key,
            |out| out.array(0),
            |out, z| {
                let (begin, count) = window_of(z);
                write_entries(out, z, begin, count, rev, withscores);
                Ok(())
            },
        );
    };
    // ZRANGESTORE: read the source and write the destination under one lock.
    let db = ctx.db_index();
    let ks = ctx.keyspace();
    let locked = ks.lock_write([(db, key), (db, dst)]);
    let found = locked.shard_ref(db, key).get(key, ctx.now());
    ctx.hit(found.is_some());
    let result = match found {
        None => ZSet::new(),
        Some(e) => {
            let z = zset_of(e.value)?;
            let (begin, count) = window_of(z);
            // Redis creates the destination big when it knows it will be (a range of ranks).
            let mut out = if by == By::Rank { ZSet::with_capacity(count) } else { ZSet::new() };
            for (member, score) in z.iter_from(begin, rev).take(count) {
                out.insert(member, score);
            }
            out
        }
    };
    store(ctx, locked, dst, result, "zrangestore");
    Ok(())
}

/// Writes the result of a STORE command (as Redis's `setKey`: it replaces any value and its
/// TTL) and answers its size, raising `event`; an empty result deletes the destination.
fn store(ctx: &mut Ctx<'_>, mut locked: MultiWrite<'_>, dst: &[u8], result: ZSet, event: &'static str) {
    let shard = locked.shard(ctx.db_index(), dst);
    let stored = result.len();
    if stored > 0 {
        shard.insert(dst, Value::ZSet(Box::new(result)), None, ctx.now());
        drop(locked);
        ctx.notify(notify::ZSET, event, dst);
    } else if shard.remove(dst, ctx.now()).is_some() {
        drop(locked);
        ctx.notify(notify::GENERIC, "del", dst);
    }
    ctx.out().int(stored as i64);
}

pub(super) fn zrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 1, None, By::Auto, None)
}

pub(super) fn zrangestore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 2, Some(args.get(1)), By::Auto, None)
}

pub(super) fn zrevrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 1, None, By::Rank, Some(true))
}

pub(super) fn zrangebyscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 1, None, By::Score, Some(false))
}

pub(super) fn zrevrangebyscore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 1, None, By::Score, Some(true))
}

pub(super) fn zrangebylex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 1, None, By::Lex, Some(false))
}

pub(super) fn zrevrangebylex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zrange_generic(ctx, args, 1, None, By::Lex, Some(true))
}

// ---------------------------------------------------------------------------------------------
// Pops

/// How a pop's reply is laid out (Redis's `emitkey` and `use_nested_array`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PopReply {
    /// ZPOPMIN key: `[member, score]`.
    Flat,
    /// ZPOPMIN key count: a list of (member, score) pairs (flat in RESP2).
    Pairs,
    /// BZPOPMIN, BZPOPMAX: `[key, member, score]`.
    KeyFlat,
    /// ZMPOP, BZMPOP: `[key, [[member, score], ...]]`.
    KeyNested,
}

/// The pop shared by ZPOPMIN, ZPOPMAX, ZMPOP and the blocking forms (Redis's
/// `genericZpopCommand`): pops up to `count` entries, the lowest (or with `max` the highest),
/// from the sorted set at `key` in `shard`, which the caller has write-locked; writes the reply
/// in `shape`; raises `zpopmin`/`zpopmax` (and `del` when the set is emptied).
///
/// Returns how many were popped, or `None` when there is no such key: the caller then answers
/// (an empty array, a null, or blocks). A key of another type is WRONGTYPE. A `count` of 0
/// answers an empty array. The caller propagates what the command becomes for the log when
/// that is not the command itself (ZMPOP and the blocking forms: `ZPOPMIN key count`).
pub(crate) fn pop_locked(
    ctx: &mut Ctx<'_>,
    shard: &mut Shard,
    key: &[u8],
    max: bool,
    count: usize,
    shape: PopReply,
) -> Result<Option<usize>, Error> {
    let Slot::Live(mut live) = shard.slot(key, ctx.now()) else { return Ok(None) };
    let len = zset_of(live.entry().value)?.len();
    if count == 0 {
        ctx.out().array(0);
        return Ok(Some(0));
    }
    let n = count.min(len);
    let out = &mut *ctx.out();
    match shape {
        PopReply::Flat => out.array(2 * n),
        PopReply::Pairs => out.pairs(n),
        PopReply::KeyFlat => {
            out.array(2 * n + 1);
            out.bulk(key);
        }
        PopReply::KeyNested => {
            out.array(2);
            out.bulk(key);
            out.array(n);
        }
    }
    let z = zset_mut(live.value_mut())?;
    for _ in 0..n {
        z.pop_with(max, |member, score| {
            match shape {
                PopReply::Pairs => out.pair(),
                // Nested in both protocols.
                PopReply::KeyNested => out.array(2),
                PopReply::Flat | PopReply::KeyFlat => {}
            }
            out.bulk(member);
            out.double(score);
        });
    }
    let emptied = z.is_empty();
    if emptied {
        live.remove();
    }
    ctx.notify(notify::ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
    if emptied {
        ctx.notify(notify::GENERIC, "del", key);
    }
    Ok(Some(n))
}

fn zpop_generic(ctx: &mut Ctx<'_>, args: Args<'_>, max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(error::syntax());
    }
    let count = match args.len() {
        3 => Some(ranged_arg(args.get(2), 0, "ERR value is out of range, must be positive")?),
        _ => None,
    };
    let key = args.get(1);
    let shape = if count.is_some() { PopReply::Pairs } else { PopReply::Flat };
    let mut shard = lock_to_take(ctx, key);
    if pop_locked(ctx, &mut shard, key, max, count.unwrap_or(1), shape)?.is_none() {
        ctx.out().array(0);
    }
    Ok(())
}

pub(super) fn zpopmin(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zpop_generic(ctx, args, false)
}

pub(super) fn zpopmax(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    zpop_generic(ctx, args, true)
}

/// An integer argument of at least `min`, or the error `msg` (Redis's
/// `getRangeLongFromObjectOrReply` with a message, which serves for a non-integer too).
pub(super) fn ranged_arg(arg: &[u8], min: usize, msg: &'static str) -> Result<usize, Error> {
    magpie_protocol::parse_i64(arg)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n >= min)
        .ok_or_else(|| Error::from(msg))
}

/// Write-locks the shards of all `keys` at once (atomic across shards) to take members from
/// them, after clients blocked on any of them have been served: [`lock_to_take`] for several
/// keys.
fn lock_all_to_take<'a>(ctx: &Ctx<'a>, keys: Args<'_>) -> MultiWrite<'a> {
    let db = ctx.db_index();
    let keyspace = ctx.keyspace();
    loop {
        let locked = keyspace.lock_write(keys.iter().map(|k| (db, k)));
        if !keys.iter().any(|k| ctx.waiters_first(k)) {
            return locked;
        }
        drop(locked);
        ctx.serve_waiters();
    }
}

/// Pops from the first of `keys` that exists (Redis's `genericZpopCommand` over several keys),
/// with every key locked at once: up to `count` members (one when `None`), replied in
/// `shape`. Logged as the pop it performed: `ZPOPMIN key` without a count (BZPOPMIN), else
/// `ZPOPMIN key n` (ZMPOP, BZMPOP). Returns false, replying nothing, when no key exists; a
/// key of another type before the first sorted set is WRONGTYPE.
fn pop_first(
    ctx: &mut Ctx<'_>,
    keys: Args<'_>,
    max: bool,
    count: Option<usize>,
    shape: PopReply,
) -> Result<bool, Error> {
    let db = ctx.db_index();
    let mut locked = lock_all_to_take(ctx, keys);
    for key in keys.iter() {
        let Some(n) = pop_locked(ctx, locked.shard(db, key), key, max, count.unwrap_or(1), shape)? else { continue };
        drop(locked);
        let pop: &[u8] = if max { b"ZPOPMAX" } else { b"ZPOPMIN" };
        match count {
            None => ctx.propagate(&[pop, key]),
            Some(_) => ctx.propagate(&[pop, key, itoa::Buffer::new().format(n).as_bytes()]),
        }
        return Ok(true);
    }
    Ok(false)
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
pub(super) fn zmpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (keys, max, count) = parse_mpop(args, 1)?;
    if !pop_first(ctx, keys, max, Some(count), PopReply::KeyNested)? {
        ctx.out().null_array();
    }
    Ok(())
}

/// BZPOPMIN/BZPOPMAX key [key ...] timeout: `[key, member, score]` from the first key that
/// exists, else wait on all of them (a null array when the timeout passes).
fn bzpop_generic(ctx: &mut Ctx<'_>, args: Args<'_>, max: bool) -> CmdResult {
    let timeout = blocking::timeout_arg(args.get(args.len() - 1))?;
    let keys = Args::new(args.buf(), &args.spans()[1..args.len() - 1]);
    if pop_first(ctx, keys, max, None, PopReply::KeyFlat)? {
        return Ok(());
    }
    ctx.block("zset", keys.iter(), timeout, Reply::null_array)
}

pub(super) fn bzpopmin(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bzpop_generic(ctx, args, false)
}

pub(super) fn bzpopmax(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bzpop_generic(ctx, args, true)
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]: ZMPOP, or wait. The timeout is
/// read after the other arguments, as Redis does.
pub(super) fn bzmpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (keys, max, count) = parse_mpop(args, 2)?;
    let timeout = blocking::timeout_arg(args.get(1))?;
    if pop_first(ctx, keys, max, Some(count), PopReply::KeyNested)? {
        return Ok(());
    }
    ctx.block("zset", keys.iter(), timeout, Reply::null_array)
}

/// The arguments of ZMPOP and BZMPOP from `numkeys` on (argument `at`): the keys, whether to
/// pop the highest (MAX), and the count (1 by default), with Redis's checks in its order.
pub(crate) fn parse_mpop(args: Args<'_>, at: usize) -> Result<(Args<'_>, bool, usize), Error> {
    let numkeys = ranged_arg(args.get(at), 1, "ERR numkeys should be greater than 0")?;
    let where_at = at.saturating_add(numkeys).saturating_add(1);
    if where_at >= args.len() {
        return Err(error::syntax());
    }
    let max = match args.get(where_at) {
        w if is(w, "min") => false,
        w if is(w, "max") => true,
        _ => return Err(error::syntax()),
    };
    let mut count = None;
    let mut options = Cursor::new(args, where_at + 1);
    while !options.is_done() {
        if count.is_none() && options.remaining() >= 2 && options.eat("count") {
            count = Some(ranged_arg(options.next_bytes()?, 1, "ERR count should be greater than 0")?);
        } else {
            return Err(error::syntax());
        }
    }
    let keys = args.skip(at + 1);
    let keys = Args::new(keys.buf(), &keys.spans()[..numkeys]);
    Ok((keys, max, count.unwrap_or(1)))
}

// ---------------------------------------------------------------------------------------------
// ZRANDMEMBER, ZSCAN

/// ZRANDMEMBER key [count [WITHSCORES]]
pub(super) fn zrandmember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    if args.len() < 3 {
        return read_zset(ctx, key, Reply::null, |out, z| {
            match z.random() {
                Some((m, _)) => out.bulk(m),
                None => out.null(),
            }
            Ok(())
        });
    }
    let l = error::int_arg_in(args.get(2), -i64::MAX..=i64::MAX)?;
    if args.len() > 4 || (args.len() == 4 && !is(args.get(3), "withscores")) {
        return Err(error::syntax());
    }
    let withscores = args.len() == 4;
    // Twice the count must fit (a member and a score each).
    if withscores && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&l) {
        return Err("ERR value is out of range".into());
    }
    // A negative count may repeat members; a positive one returns distinct members.
    let (count, unique) = (usize::try_from(l.unsigned_abs()).unwrap_or(usize::MAX), l >= 0);
    let max_reply = ctx.server().settings().proto_max_bulk_len();
    read_zset(
        ctx,
        key,
        |out| out.array(0),
        |out, z| {
            let n = if unique && count > 1 { count.min(z.len()) } else { count };
            let write = |out: &mut Reply, member: &[u8], score: f64| {
                if withscores {
                    out.pair();
                    out.bulk(member);
                    out.double(score);
                } else {
                    out.bulk(member);
                }
            };
            let header = |out: &mut Reply| if withscores { out.pairs(n) } else { out.array(n) };
            if unique || z.is_empty() {
                header(out);
                z.sample(count, unique, |member, score| write(out, member, score));
                return Ok(());
            }
            // Independent draws: every element takes at least 6 bytes (`$0\r\n\r\n`).
            super::random_draws(
                out,
                count,
                if withscores { 12 } else { 6 },
                max_reply,
                RANDOM_REPLY_TOO_LARGE,
                header,
                |out, k| z.sample(k, false, |member, score| write(out, member, score)),
            )
        },
    )
}

/// ZRANDMEMBER with a negative count can ask for any number of members, whatever the set
/// holds; Redis would write them until memory runs out. Magpie bounds the reply.
const RANDOM_REPLY_TOO_LARGE: &str = "ERR ZRANDMEMBER reply would exceed proto-max-bulk-len: ask for fewer members";

/// A score as ZSCAN shows it: as Redis's listpack stores it for a small set (an integer when
/// it is one, below 2^62), else as `%.17g`.
fn scan_score<'b>(score: f64, small: bool, buf: &'b mut [u8; 32], ibuf: &'b mut itoa::Buffer) -> &'b [u8] {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if small && score == score.trunc() && (-LIMIT..=LIMIT).contains(&score) {
        return ibuf.format(score as i64).as_bytes();
    }
    format_g17(score, buf)
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
pub(super) fn zscan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let cursor = parse_cursor(args.get(2)).ok_or_else(|| Error::from("ERR invalid cursor"))?;
    let empty = |out: &mut Reply| {
        out.array(2);
        out.bulk(b"0");
        out.array(0);
    };
    read_zset(ctx, args.get(1), empty, |out, z| {
        // Options are read after the key, as Redis does.
        let ScanOptions { pattern, count, .. } = scan_options(args, 3, false)?;
        let mut found: Vec<(&[u8], f64)> = Vec::new();
        let next = z.scan(cursor, count, |m, s| {
            if pattern.is_none_or(|p| glob_match(p, m, false)) {
                found.push((m, s));
            }
        });
        let small = z.encoding() == "listpack";
        out.array(2);
        out.bulk(itoa::Buffer::new().format(next).as_bytes());
        out.array(found.len() * 2);
        let (mut buf, mut ibuf) = ([0u8; 32], itoa::Buffer::new());
        for (m, s) in found {
            out.bulk(m);
            out.bulk(scan_score(s, small, &mut buf, &mut ibuf));
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Set operations (see `setops`)

pub(super) fn zunionstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setops::run(ctx, args, "zunionstore", Some(args.get(1)), Op::Union, false)
}

pub(super) fn zinterstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setops::run(ctx, args, "zinterstore", Some(args.get(1)), Op::Inter, false)
}

pub(super) fn zdiffstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setops::run(ctx, args, "zdiffstore", Some(args.get(1)), Op::Diff, false)
}

pub(super) fn zunion(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setops::run(ctx, args, "zunion", None, Op::Union, false)
}

pub(super) fn zinter(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setops::run(ctx, args, "zinter", None, Op::Inter, false)
}

pub(super) fn zintercard(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setops::run(ctx, args, "zintercard", None, Op::Inter, true)
}

pub(super) fn zdiff(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    setops::run(ctx, args, "zdiff", None, Op::Diff, false)
}

#[cfg(test)]
mod tests {
    use crate::exec::test_support::TestSession as Session;
    use crate::model::wait::Mode;

    #[test]
    fn blocking_pops_that_may_not_block_reply_as_timed_out() {
        let mut s = Session::new();
        // As inside MULTI: Redis answers a null array.
        s.expect(
            Mode::NoBlock,
            &[
                ("BZPOPMIN z 0", "*-1\r\n"),
                ("BZPOPMAX z other 5", "*-1\r\n"),
                ("BZMPOP 0 1 z MIN", "*-1\r\n"),
                ("BZMPOP 0 2 z other MAX COUNT 3", "*-1\r\n"),
                ("BZPOPMIN z -1", "-ERR timeout is negative\r\n"),
            ],
        );
        assert_eq!(s.server.blocking().blocked(), 0);
        // With members they serve as usual.
        s.run(Mode::NoBlock, "ZADD z 1 a 2 b 3 c");
        let served = s.run(Mode::NoBlock, "BZPOPMAX z 0");
        assert_eq!(served, ("*3\r\n$1\r\nz\r\n$1\r\nc\r\n$1\r\n3\r\n".to_string(), false));
        let served = s.run(Mode::NoBlock, "BZMPOP 0 1 z MIN COUNT 5");
        let both = "*2\r\n$1\r\nz\r\n*2\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n";
        assert_eq!(served, (both.to_string(), false));
        // Run again for a waiting client (Retry): nothing to serve means no reply and a wait.
        assert_eq!(s.run(Mode::Retry, "BZPOPMIN z 0"), (String::new(), true));
        // A plain call asks the connection to wait.
        assert_eq!(s.run(Mode::MayBlock, "BZMPOP 0 1 z MAX"), (String::new(), true));
    }
}
