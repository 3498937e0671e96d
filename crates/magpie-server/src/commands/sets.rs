//! The set commands: SADD, SREM, SMEMBERS, SISMEMBER, SMISMEMBER, SCARD, SPOP, SRANDMEMBER,
//! SMOVE, SINTER, SINTERCARD, SUNION, SDIFF and their STORE forms, SSCAN.
//!
//! As in Redis 7.0 (`t_set.c`): SMEMBERS is SINTER of one key; SINTER, SUNION, SDIFF, their
//! STORE forms and SINTERCARD share one body ([`combine`]), which locks every shard involved
//! at once, so the result is one consistent view even while other clients write.

use magpie_protocol::{Args, Reply};
use magpie_store::set::{Member, MemberRef};
use magpie_store::{EntryRef, Set, Slot, Value, ValueRef, glob_match};

use super::keys::{ScanOptions, parse_cursor, scan_options};
use crate::core::args::Cursor;
use crate::core::error::{self, CmdResult, Error, int_arg, int_arg_in, wrongtype};
use crate::core::events as notify;
use crate::model::{Command, Ctx, KeySpec};
use crate::{flags, key_flags};

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("sadd", -3, flags![WRITE, DENYOOM, FAST], "set", "1.0.0", "Adds one or more members to a set. Creates the key if it doesn't exist.",
        "key member [member ...]", sadd)
        .keys(&[KeySpec::one(1, key_flags![RW, INSERT])]),
    Command::new("srem", -3, flags![WRITE, FAST], "set", "1.0.0", "Removes one or more members from a set. Deletes the set if the last member was removed.",
        "key member [member ...]", srem)
        .keys(&[KeySpec::one(1, key_flags![RW, DELETE])]),
    Command::new("smembers", 2, flags![READONLY], "set", "1.0.0", "Returns all members of a set.",
        "key", smembers)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output_order"]),
    Command::new("sismember", 3, flags![READONLY, FAST], "set", "1.0.0", "Determines whether a member belongs to a set.",
        "key member", sismember)
        .keys(&[KeySpec::one(1, key_flags![RO])]),
    Command::new("smismember", -3, flags![READONLY, FAST], "set", "6.2.0", "Determines whether multiple members belong to a set.",
        "key member [member ...]", smismember)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("scard", 2, flags![READONLY, FAST], "set", "1.0.0", "Returns the number of members in a set.",
        "key", scard)
        .keys(&[KeySpec::one(1, key_flags![RO])]),
    Command::new("spop", -2, flags![WRITE, FAST], "set", "1.0.0", "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.",
        "key [count:integer]", spop)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE])])
        .tips(&["nondeterministic_output"]),
    Command::new("srandmember", -2, flags![READONLY], "set", "1.0.0", "Get one or multiple random members from a set.",
        "key [count:integer]", srandmember)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output"]),
    Command::new("smove", 4, flags![WRITE, FAST], "set", "1.0.0", "Moves a member from one set to another.",
        "source destination member", smove)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE]), KeySpec::one(2, key_flags![RW, INSERT])]),
    Command::new("sinter", -2, flags![READONLY], "set", "1.0.0", "Returns the intersect of multiple sets.",
        "key [key ...]", sinter)
        .keys(&[KeySpec::range(1, -1, 1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output_order"]),
    // Keys follow a count: no fixed key positions (Redis lists it as movablekeys).
    Command::new("sintercard", -3, flags![READONLY], "set", "7.0.0", "Returns the number of members of the intersect of multiple sets.",
        "numkeys:integer key [key ...] [LIMIT limit:integer]", sintercard)
        .keys(&[KeySpec::keynum(1, 0, 1, 1, key_flags![RO, ACCESS])]),
    Command::new("sunion", -2, flags![READONLY], "set", "1.0.0", "Returns the union of multiple sets.",
        "key [key ...]", sunion)
        .keys(&[KeySpec::range(1, -1, 1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output_order"]),
    Command::new("sdiff", -2, flags![READONLY], "set", "1.0.0", "Returns the difference of multiple sets.",
        "key [key ...]", sdiff)
        .keys(&[KeySpec::range(1, -1, 1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output_order"]),
    Command::new("sinterstore", -3, flags![WRITE, DENYOOM], "set", "1.0.0", "Stores the intersect of multiple sets in a key.",
        "destination key [key ...]", sinterstore)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE]), KeySpec::range(2, -1, 1, key_flags![RO, ACCESS])]),
    Command::new("sunionstore", -3, flags![WRITE, DENYOOM], "set", "1.0.0", "Stores the union of multiple sets in a key.",
        "destination key [key ...]", sunionstore)
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE]), KeySpec::range(2, -1, 1, key_flags![RO, ACCESS])]),
    Command::new("sdiffstore", -3, flags![WRITE, DENYOOM], "set", "1.0.0", "Stores the difference of multiple sets in a key.",
        "destination key [key ...]", sdiffstore)
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE]), KeySpec::range(2, -1, 1, key_flags![RO, ACCESS])]),
    Command::new("sscan", -3, flags![READONLY], "set", "2.8.0", "Iterates over members of a set.",
        "key cursor:integer [MATCH pattern:pattern] [COUNT count:integer]", sscan)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output"]),
];

/// SPOP's count must be positive (Redis's `getPositiveLongFromObjectOrReply`, which says so
/// for anything that is not a non-negative integer).
const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
const NUMKEYS: &str = "ERR numkeys should be greater than 0";
const TOO_MANY_KEYS: &str = "ERR Number of keys can't be greater than number of args";
const NEGATIVE_LIMIT: &str = "ERR LIMIT can't be negative";

/// The largest reply SRANDMEMBER with a negative count may build. Redis builds any reply it
/// is asked for, and a count of -2^63 makes it run out of memory; Magpie refuses instead.
const MAX_RANDOM_REPLY: u64 = 1 << 30;

/// The set a value holds, or WRONGTYPE.
fn as_set<'a>(value: impl Into<ValueRef<'a>>) -> Result<&'a Set, Error> {
    match value.into().boxed() {
        Some(Value::Set(s)) => Ok(s),
        _ => Err(wrongtype()),
    }
}

fn as_set_mut(value: &mut Value) -> Result<&mut Set, Error> {
    match value {
        Value::Set(s) => Ok(s),
        _ => Err(wrongtype()),
    }
}

fn bulk_member(out: &mut Reply, m: MemberRef<'_>) {
    match m {
        MemberRef::Int(n) => out.bulk_int(n),
        MemberRef::Bytes(b) => out.bulk(b),
    }
}

/// Replies with every member of `set` as a set.
fn reply_members(out: &mut Reply, set: &Set) {
    out.set(set.len());
    for m in set.iter() {
        bulk_member(out, m);
    }
}

/// Parses a count that must be 0 or more (SPOP).
fn positive_count(arg: &[u8]) -> Result<usize, Error> {
    match int_arg(arg) {
        Ok(n) if n >= 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => Err(NOT_POSITIVE.into()),
    }
}

/// Looks `key` up for reading, counting the hit or miss as Redis's `lookupKeyRead` does, and
/// runs `f` on its set (`None` when the key does not exist). WRONGTYPE for another type.
fn read_set(ctx: &mut Ctx<'_>, key: &[u8], f: impl FnOnce(&mut Reply, Option<&Set>)) -> CmdResult {
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let set = found.map(|e| as_set(e.value)).transpose()?;
    f(ctx.out(), set);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// One key

/// SADD key member [member ...]
pub(super) fn sadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let members = args.skip(2);
    let mut shard = ctx.db().write(key);
    let added = match shard.slot(key, ctx.now()) {
        Slot::Live(mut live) => {
            let set = as_set(live.entry().value)?;
            // Lend the value out for change only when a member is new.
            match members.iter().position(|m| !set.contains(m)) {
                None => 0,
                Some(first) => {
                    let set = as_set_mut(live.value_mut())?;
                    members.iter().skip(first).filter(|m| set.insert(m)).count()
                }
            }
        }
        Slot::Empty(empty) => {
            let set: Set = members.iter().collect();
            let added = set.len();
            empty.insert(Value::Set(Box::new(set)), None);
            added
        }
    };
    if added > 0 {
        ctx.notify(notify::SET, "sadd", key);
    }
    ctx.out().int(added as i64);
    Ok(())
}

/// SREM key member [member ...]
pub(super) fn srem(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let members = args.skip(2);
    let mut shard = ctx.db().write(key);
    let Slot::Live(mut live) = shard.slot(key, ctx.now()) else {
        ctx.out().int(0);
        return Ok(());
    };
    let set = as_set(live.entry().value)?;
    let Some(first) = members.iter().position(|m| set.contains(m)) else {
        ctx.out().int(0);
        return Ok(());
    };
    let set = as_set_mut(live.value_mut())?;
    let mut removed = 0;
    for m in members.iter().skip(first) {
        if set.remove(m) {
            removed += 1;
            if set.is_empty() {
                break;
            }
        }
    }
    let emptied = set.is_empty();
    if emptied {
        live.remove();
    }
    ctx.notify(notify::SET, "srem", key);
    if emptied {
        ctx.notify(notify::GENERIC, "del", key);
    }
    ctx.out().int(removed);
    Ok(())
}

/// SMEMBERS key: as in Redis 7.0, SINTER of one key.
pub(super) fn smembers(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    read_set(ctx, args.get(1), |out, set| match set {
        Some(set) => reply_members(out, set),
        None => out.set(0),
    })
}

/// SISMEMBER key member
pub(super) fn sismember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let member = args.get(2);
    read_set(ctx, args.get(1), |out, set| out.int(i64::from(set.is_some_and(|s| s.contains(member)))))
}

/// SMISMEMBER key member [member ...]: a missing key is an empty set.
pub(super) fn smismember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let members = args.skip(2);
    read_set(ctx, args.get(1), |out, set| {
        out.array(members.len());
        for m in members.iter() {
            out.int(i64::from(set.is_some_and(|s| s.contains(m))));
        }
    })
}

/// SCARD key
pub(super) fn scard(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    read_set(ctx, args.get(1), |out, set| out.int(set.map_or(0, Set::len) as i64))
}

/// SPOP key [count]
///
/// Logged as what it did: one SREM per member popped, or DEL when it took the whole set.
pub(super) fn spop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 3 {
        return Err(error::syntax());
    }
    let count = if args.len() == 3 { Some(positive_count(args.get(2))?) } else { None };
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let Slot::Live(mut live) = shard.slot(key, ctx.now()) else {
        match count {
            None => ctx.out().null(),
            Some(_) => ctx.out().set(0),
        }
        return Ok(());
    };
    let size = as_set(live.entry().value)?.len();

    let Some(count) = count else {
        let set = as_set_mut(live.value_mut())?;
        let Some(member) = set.pop_random() else {
            ctx.out().null(); // a live set is never empty
            return Ok(());
        };
        let emptied = set.is_empty();
        if emptied {
            live.remove();
        }
        ctx.notify(notify::SET, "spop", key);
        member.as_ref().with_bytes(|m| ctx.propagate(&[b"SREM", key, m]));
        bulk_member(ctx.out(), member.as_ref());
        if emptied {
            ctx.notify(notify::GENERIC, "del", key);
        }
        return Ok(());
    };
    if count == 0 {
        ctx.out().set(0);
        return Ok(());
    }
    ctx.notify(notify::SET, "spop", key);

    if count >= size {
        // The whole set. Redis replies through SUNION's body, which reads the key again
        // (counted as a hit).
        let entry = live.remove();
        ctx.hit(true);
        let set = as_set(&entry.value)?;
        if set.len() <= magpie_store::limits::SET_INTSET_ENTRIES.get() {
            // SUNION's result is a new set: an intset (in ascending order) when it can be.
            reply_members(ctx.out(), &set.iter().collect());
        } else {
            reply_members(ctx.out(), set);
        }
        ctx.notify(notify::GENERIC, "del", key);
        ctx.propagate(&[b"DEL", key]);
        return Ok(());
    }

    let set = as_set_mut(live.value_mut())?;
    let remaining = size - count;
    if remaining.saturating_mul(5) > count {
        // A small part of the set: pop members one by one.
        let popped: Vec<Member> = std::iter::from_fn(|| set.pop_random()).take(count).collect();
        reply_popped(ctx, key, popped.len(), popped.iter().map(Member::as_ref));
    } else {
        // Most of it: draw the members that stay into a new set, which takes the old one's
        // place (as Redis does, so that the new set gets the encoding its contents call for:
        // what stays of a big set of integers is an intset again).
        let mut keep = Set::new();
        for member in std::iter::from_fn(|| set.pop_random()).take(remaining) {
            keep.insert_ref(member.as_ref());
        }
        let popped = std::mem::replace(set, keep);
        reply_popped(ctx, key, popped.len(), popped.iter());
    }
    Ok(())
}

/// Replies with the members SPOP took out of `key`, and logs each as an SREM.
fn reply_popped<'m>(ctx: &mut Ctx<'_>, key: &[u8], n: usize, members: impl Iterator<Item = MemberRef<'m>>) {
    ctx.out().set(n);
    for m in members {
        bulk_member(ctx.out(), m);
        m.with_bytes(|m| ctx.propagate(&[b"SREM", key, m]));
    }
}

/// SRANDMEMBER key [count]
///
/// A positive count returns distinct members (the whole set when the count is at least its
/// size); a negative one returns that many members drawn independently, so repeats happen.
pub(super) fn srandmember(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 3 {
        return Err(error::syntax());
    }
    let count = if args.len() == 3 { Some(int_arg_in(args.get(2), -i64::MAX..=i64::MAX)?) } else { None };
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let set = found.map(|e| as_set(e.value)).transpose()?;
    let out = &mut *ctx.out();
    let Some(count) = count else {
        match set.and_then(Set::random) {
            Some(m) => bulk_member(out, m),
            None => out.null(),
        }
        return Ok(());
    };
    let Some(set) = set.filter(|_| count != 0) else {
        out.array(0);
        return Ok(());
    };
    let n = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
    if count < 0 || n == 1 {
        // Each member costs at least its length plus a few bytes of header.
        let per_member = (set.size() / set.len().max(1)) as u64 + 5;
        if (n as u64).saturating_mul(per_member) > MAX_RANDOM_REPLY {
            return Err(Error::msg(format!(
                "ERR count is too large: the reply would exceed {} MB",
                MAX_RANDOM_REPLY >> 20
            )));
        }
        out.array(n);
        set.random_with_repeats(n, |m| bulk_member(out, m));
    } else {
        out.array(n.min(set.len()));
        set.random_distinct(n, |m| bulk_member(out, m));
    }
    Ok(())
}

/// SMOVE source destination member: atomic across the two keys' shards.
pub(super) fn smove(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (src, dst, member) = (args.get(1), args.get(2), args.get(3));
    let db = ctx.db_index();
    let now = ctx.now();
    let mut locked = ctx.keyspace().lock_write([(db, src), (db, dst)]);
    // Redis's order: a missing source answers 0 before the destination's type is looked at.
    let Some(src_entry) = locked.shard_ref(db, src).get(src, now) else {
        ctx.out().int(0);
        return Ok(());
    };
    let src_set = as_set(src_entry.value)?;
    if let Some(e) = locked.shard_ref(db, dst).get(dst, now) {
        as_set(e.value)?;
    }
    if src == dst {
        ctx.out().int(i64::from(src_set.contains(member)));
        return Ok(());
    }
    if !src_set.contains(member) {
        ctx.out().int(0);
        return Ok(());
    }

    let mut emptied = false;
    if let Slot::Live(mut live) = locked.shard(db, src).slot(src, now) {
        let set = as_set_mut(live.value_mut())?;
        set.remove(member);
        emptied = set.is_empty();
        if emptied {
            live.remove();
        }
    }
    let added = match locked.shard(db, dst).slot(dst, now) {
        Slot::Live(mut live) => {
            if as_set(live.entry().value)?.contains(member) {
                false
            } else {
                as_set_mut(live.value_mut())?.insert(member)
            }
        }
        Slot::Empty(empty) => {
            empty.insert(Value::Set(Box::new(Set::from_members([member]))), None);
            true
        }
    };
    drop(locked);
    ctx.notify(notify::SET, "srem", src);
    if emptied {
        ctx.notify(notify::GENERIC, "del", src);
    }
    if added {
        ctx.notify(notify::SET, "sadd", dst);
    }
    ctx.out().int(1);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Several keys: SINTER, SUNION, SDIFF, their STORE forms, SINTERCARD

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// What to do with the result.
#[derive(Clone, Copy)]
enum Output<'a> {
    /// Reply with the members, as a set.
    Reply,
    /// Store in this key (replacing whatever it held), reply with the size.
    Store(&'a [u8]),
    /// Reply with the size only, counting up to the limit (0: no limit). SINTERCARD.
    Count(usize),
}

/// Looks up every key for reading (each counted as a hit or miss, as Redis's `lookupKeyRead`
/// does for every source key, in the STORE forms too); WRONGTYPE if any holds another type.
/// A missing key is `None`, an empty set.
fn gather<'s>(
    ctx: &Ctx<'_>,
    keys: Args<'_>,
    get: impl Fn(&[u8]) -> Option<EntryRef<'s>>,
) -> Result<Vec<Option<&'s Set>>, Error> {
    keys.iter()
        .map(|k| {
            let found = get(k);
            ctx.hit(found.is_some());
            found.map(|e| as_set(e.value)).transpose()
        })
        .collect()
}

/// The members of the intersection, in the order of the smallest set (whose order Redis's
/// reply follows too: an intset's is ascending), up to `limit` of them (0: all).
fn intersect<'s>(sets: &[Option<&'s Set>], limit: usize) -> Vec<MemberRef<'s>> {
    let Some(mut sets) = sets.iter().copied().collect::<Option<Vec<&Set>>>() else {
        return Vec::new(); // a missing key is an empty set
    };
    sets.sort_by_key(|s| s.len()); // stable, as glibc's qsort (a merge sort) is
    let (first, rest) = (sets[0], &sets[1..]);
    let mut found = Vec::new();
    for m in first.iter() {
        if rest.iter().all(|s| std::ptr::eq(*s, first) || s.contains_ref(m)) {
            found.push(m);
            if found.len() == limit {
                break;
            }
        }
    }
    found
}

/// The union or difference as a new set, built as Redis builds it (an intset while it can
/// be one), with Redis's choice of algorithm for the difference.
fn union_or_diff(op: Op, sets: &[Option<&Set>]) -> Set {
    let mut result = Set::new();
    if op == Op::Union {
        for set in sets.iter().flatten() {
            for m in set.iter() {
                result.insert_ref(m);
            }
        }
        return result;
    }
    let Some(Some(first)) = sets.first().copied() else { return result };
    let others: Vec<&Set> = sets[1..].iter().flatten().copied().collect();
    // Redis's estimate: checking each member of the first set against every other set,
    // against adding the first set and removing every other (favouring the former).
    let one = first.len() * (others.len() + 1) / 2;
    let two = first.len() + others.iter().map(|s| s.len()).sum::<usize>();
    if one <= two {
        let mut others = others;
        others.sort_by_key(|s| std::cmp::Reverse(s.len())); // likeliest to contain first
        for m in first.iter() {
            if !others.iter().any(|s| std::ptr::eq(*s, first) || s.contains_ref(m)) {
                result.insert_ref(m);
            }
        }
    } else {
        // A new set, not a clone: it gets the encoding its contents call for, as in Redis.
        result = first.iter().collect();
        for set in others {
            if result.is_empty() {
                break;
            }
            for m in set.iter() {
                result.remove_ref(m);
            }
        }
    }
    result
}

/// The body of SINTER, SUNION, SDIFF, their STORE forms and SINTERCARD.
fn combine(ctx: &mut Ctx<'_>, op: Op, keys: Args<'_>, output: Output<'_>) -> CmdResult {
    let db = ctx.db_index();
    let now = ctx.now();
    let Output::Store(dst) = output else {
        let locked = ctx.keyspace().lock_read(keys.iter().map(|k| (db, k)));
        let sets = gather(ctx, keys, |k| locked.shard(db, k).get(k, now))?;
        match (op, output) {
            (Op::Inter, Output::Count(limit)) => ctx.out().int(intersect(&sets, limit).len() as i64),
            (Op::Inter, _) => {
                let members = intersect(&sets, 0);
                ctx.out().set(members.len());
                for m in members {
                    bulk_member(ctx.out(), m);
                }
            }
            _ => reply_members(ctx.out(), &union_or_diff(op, &sets)),
        }
        return Ok(());
    };

    let mut locked = ctx.keyspace().lock_write(keys.iter().chain([dst]).map(|k| (db, k)));
    let sets = gather(ctx, keys, |k| locked.shard_ref(db, k).get(k, now))?;
    let result = match op {
        Op::Inter => intersect(&sets, 0).into_iter().collect(),
        _ => union_or_diff(op, &sets),
    };
    let size = result.len();
    let shard = locked.shard(db, dst);
    let deleted = if size > 0 {
        shard.insert(dst, Value::Set(Box::new(result)), None, now);
        false
    } else {
        shard.remove(dst, now).is_some()
    };
    drop(locked);
    if size > 0 {
        let event = match op {
            Op::Inter => "sinterstore",
            Op::Union => "sunionstore",
            Op::Diff => "sdiffstore",
        };
        ctx.notify(notify::SET, event, dst);
    } else if deleted {
        ctx.notify(notify::GENERIC, "del", dst);
    }
    ctx.out().int(size as i64);
    Ok(())
}

/// SINTER key [key ...]
pub(super) fn sinter(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    combine(ctx, Op::Inter, args.skip(1), Output::Reply)
}

/// SUNION key [key ...]
pub(super) fn sunion(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    combine(ctx, Op::Union, args.skip(1), Output::Reply)
}

/// SDIFF key [key ...]
pub(super) fn sdiff(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    combine(ctx, Op::Diff, args.skip(1), Output::Reply)
}

/// SINTERSTORE destination key [key ...]
pub(super) fn sinterstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    combine(ctx, Op::Inter, args.skip(2), Output::Store(args.get(1)))
}

/// SUNIONSTORE destination key [key ...]
pub(super) fn sunionstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    combine(ctx, Op::Union, args.skip(2), Output::Store(args.get(1)))
}

/// SDIFFSTORE destination key [key ...]
pub(super) fn sdiffstore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    combine(ctx, Op::Diff, args.skip(2), Output::Store(args.get(1)))
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
pub(super) fn sintercard(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let numkeys = int_arg(args.get(1)).ok().filter(|&n| n >= 1).ok_or_else(|| Error::from(NUMKEYS))?;
    let numkeys = usize::try_from(numkeys).unwrap_or(usize::MAX);
    if numkeys > args.len() - 2 {
        return Err(TOO_MANY_KEYS.into());
    }
    let mut limit = 0;
    let mut options = Cursor::new(args, 2 + numkeys);
    while !options.is_done() {
        if options.remaining() >= 2 && options.eat("limit") {
            let n =
                int_arg(options.next_bytes()?).ok().filter(|&n| n >= 0).ok_or_else(|| Error::from(NEGATIVE_LIMIT))?;
            limit = usize::try_from(n).unwrap_or(usize::MAX);
        } else {
            return Err(error::syntax());
        }
    }
    let keys = Args::new(args.buf(), &args.spans()[2..2 + numkeys]);
    combine(ctx, Op::Inter, keys, Output::Count(limit))
}

// ---------------------------------------------------------------------------------------------
// SSCAN

/// SSCAN key cursor [MATCH pattern] [COUNT count]
///
/// Redis's order of checks: the cursor, then the key (missing: an empty scan, whatever the
/// options), then its type, then the options.
pub(super) fn sscan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let cursor = parse_cursor(args.get(2)).ok_or_else(|| Error::from("ERR invalid cursor"))?;
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let Some(entry) = found else {
        ctx.out().array(2);
        ctx.out().bulk(b"0");
        ctx.out().array(0);
        return Ok(());
    };
    let set = as_set(entry.value)?;
    let ScanOptions { pattern, count, .. } = scan_options(args, 3, false)?;
    let mut found = Vec::new();
    let next = set.scan(cursor, count, |m| {
        if pattern.is_none_or(|p| m.with_bytes(|b| glob_match(p, b, false))) {
            found.push(m);
        }
    });
    ctx.out().array(2);
    ctx.out().bulk(itoa::Buffer::new().format(next).as_bytes());
    ctx.out().array(found.len());
    for m in found {
        bulk_member(ctx.out(), m);
    }
    Ok(())
}
