//! The list commands: pushes and pops at both ends (LPUSH, RPOP, ...), ranges and indexes,
//! LMOVE and LMPOP, and the blocking forms (BLPOP, BLMOVE, BLMPOP, ...), which wait through
//! [`Ctx::block`] (see [`crate::blocking`]).

use magpie_protocol::{Args, Reply};
use magpie_store::{List, LiveSlot, Slot, Value, ValueRef};

use super::lock_to_take;
use crate::core::args::Cursor;
use crate::core::error::{self, CmdResult, Error, int_arg, is, wrongtype};
use crate::core::events as notify;
use crate::model::wait::{self as blocking, Timeout};
use crate::model::{Command, Ctx, KeySpec};
use crate::{flags, key_flags};

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("lpush", -3, flags![WRITE, DENYOOM, FAST], "list", "1.0.0", "Prepends one or more elements to a list. Creates the key if it doesn't exist.",
        "key element [element ...]", lpush)
        .keys(&[KeySpec::one(1, key_flags![RW, INSERT])]),
    Command::new("rpush", -3, flags![WRITE, DENYOOM, FAST], "list", "1.0.0", "Appends one or more elements to a list. Creates the key if it doesn't exist.",
        "key element [element ...]", rpush)
        .keys(&[KeySpec::one(1, key_flags![RW, INSERT])]),
    Command::new("lpushx", -3, flags![WRITE, DENYOOM, FAST], "list", "2.2.0", "Prepends one or more elements to a list only when the list exists.",
        "key element [element ...]", lpushx)
        .keys(&[KeySpec::one(1, key_flags![RW, INSERT])]),
    Command::new("rpushx", -3, flags![WRITE, DENYOOM, FAST], "list", "2.2.0", "Appends an element to a list only when the list exists.",
        "key element [element ...]", rpushx)
        .keys(&[KeySpec::one(1, key_flags![RW, INSERT])]),
    Command::new("lpop", -2, flags![WRITE, FAST], "list", "1.0.0", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.",
        "key [count:integer]", lpop)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE])]),
    Command::new("rpop", -2, flags![WRITE, FAST], "list", "1.0.0", "Returns and removes the last elements of a list. Deletes the list if the last element was popped.",
        "key [count:integer]", rpop)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE])]),
    Command::new("llen", 2, flags![READONLY, FAST], "list", "1.0.0", "Returns the length of a list.",
        "key", llen)
        .keys(&[KeySpec::one(1, key_flags![RO])]),
    Command::new("lrange", 4, flags![READONLY], "list", "1.0.0", "Returns a range of elements from a list.",
        "key start:integer stop:integer", lrange)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("lindex", 3, flags![READONLY], "list", "1.0.0", "Returns an element from a list by its index.",
        "key index:integer", lindex)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("lset", 4, flags![WRITE, DENYOOM], "list", "1.0.0", "Sets the value of an element in a list by its index.",
        "key index:integer element", lset)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    Command::new("linsert", 5, flags![WRITE, DENYOOM], "list", "2.2.0", "Inserts an element before or after another element in a list.",
        "key (BEFORE|AFTER) pivot element", linsert)
        .keys(&[KeySpec::one(1, key_flags![RW, INSERT])]),
    Command::new("lrem", 4, flags![WRITE], "list", "1.0.0", "Removes elements from a list. Deletes the list if the last element was removed.",
        "key count:integer element", lrem)
        .keys(&[KeySpec::one(1, key_flags![RW, DELETE])]),
    Command::new("ltrim", 4, flags![WRITE], "list", "1.0.0", "Removes elements from both ends a list. Deletes the list if all elements were trimmed.",
        "key start:integer stop:integer", ltrim)
        .keys(&[KeySpec::one(1, key_flags![RW, DELETE])]),
    Command::new("lpos", -3, flags![READONLY], "list", "6.0.6", "Returns the index of matching elements in a list.",
        "key element [RANK rank:integer] [COUNT num-matches:integer] [MAXLEN len:integer]", lpos)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("lmove", 5, flags![WRITE, DENYOOM], "list", "6.2.0", "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.",
        "source destination (LEFT|RIGHT) (LEFT|RIGHT)", lmove)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE]), KeySpec::one(2, key_flags![RW, INSERT])]),
    Command::new("rpoplpush", 3, flags![WRITE, DENYOOM], "list", "1.2.0", "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.",
        "source destination", rpoplpush)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE]), KeySpec::one(2, key_flags![RW, INSERT])]),
    Command::new("lmpop", -4, flags![WRITE], "list", "7.0.0", "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.",
        "numkeys:integer key [key ...] (LEFT|RIGHT) [COUNT count:integer]", lmpop)
        .keys(&[KeySpec::keynum(1, 0, 1, 1, key_flags![RW, ACCESS, DELETE])]),
    Command::new("blpop", -3, flags![WRITE, NOSCRIPT, BLOCKING], "list", "2.0.0", "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        "key [key ...] timeout:double", blpop)
        .keys(&[KeySpec::range(1, -2, 1, key_flags![RW, ACCESS, DELETE])]),
    Command::new("brpop", -3, flags![WRITE, NOSCRIPT, BLOCKING], "list", "2.0.0", "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        "key [key ...] timeout:double", brpop)
        .keys(&[KeySpec::range(1, -2, 1, key_flags![RW, ACCESS, DELETE])]),
    Command::new("blmove", 6, flags![WRITE, DENYOOM, NOSCRIPT, BLOCKING], "list", "6.2.0", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.",
        "source destination (LEFT|RIGHT) (LEFT|RIGHT) timeout:double", blmove)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE]), KeySpec::one(2, key_flags![RW, INSERT])]),
    Command::new("brpoplpush", 4, flags![WRITE, DENYOOM, NOSCRIPT, BLOCKING], "list", "2.2.0", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.",
        "source destination timeout:double", brpoplpush)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, DELETE]), KeySpec::one(2, key_flags![RW, INSERT])]),
    Command::new("blmpop", -5, flags![WRITE, BLOCKING], "list", "7.0.0", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.",
        "timeout:double numkeys:integer key [key ...] (LEFT|RIGHT) [COUNT count:integer]", blmpop)
        .keys(&[KeySpec::keynum(2, 0, 1, 1, key_flags![RW, ACCESS, DELETE])]),
];

/// Which end of a list.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

impl End {
    /// LEFT or RIGHT (any case), else a syntax error.
    fn parse(arg: &[u8]) -> Result<End, Error> {
        if is(arg, "left") {
            Ok(End::Left)
        } else if is(arg, "right") {
            Ok(End::Right)
        } else {
            Err(error::syntax())
        }
    }

    fn word(self) -> &'static [u8] {
        match self {
            End::Left => b"LEFT",
            End::Right => b"RIGHT",
        }
    }

    fn pop_event(self) -> &'static str {
        match self {
            End::Left => "lpop",
            End::Right => "rpop",
        }
    }

    fn push_event(self) -> &'static str {
        match self {
            End::Left => "lpush",
            End::Right => "rpush",
        }
    }

    fn pop_command(self) -> &'static [u8] {
        match self {
            End::Left => b"LPOP",
            End::Right => b"RPOP",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// The list a value holds, or WRONGTYPE.
fn as_list<'a>(value: impl Into<ValueRef<'a>>) -> Result<&'a List, Error> {
    match value.into().boxed() {
        Some(Value::List(l)) => Ok(l),
        _ => Err(wrongtype()),
    }
}

/// The list of a live slot, to change, or WRONGTYPE (checked before the slot measures it).
fn list_mut<'s>(live: &'s mut LiveSlot<'_>) -> Result<&'s mut List, Error> {
    as_list(live.entry().value)?;
    match live.value_mut() {
        Value::List(l) => Ok(l),
        _ => Err(wrongtype()),
    }
}

/// Arguments `from..to` of `args`.
fn sub<'a>(args: Args<'a>, from: usize, to: usize) -> Args<'a> {
    Args::new(args.buf(), &args.spans()[from..to])
}

/// Removes and returns the element at `end` (the list is not empty).
fn take(list: &mut List, end: End) -> Vec<u8> {
    match end {
        End::Left => list.pop_front(),
        End::Right => list.pop_back(),
    }
    .unwrap_or_default()
}

fn push(list: &mut List, end: End, element: &[u8]) {
    match end {
        End::Left => list.push_front(element),
        End::Right => list.push_back(element),
    }
}

/// Redis's `getPositiveLongFromObjectOrReply`: a non-negative integer, else `msg` (for a
/// malformed number too).
fn non_negative(arg: &[u8], msg: &'static str) -> Result<i64, Error> {
    error::int_arg(arg).ok().filter(|n| *n >= 0).ok_or_else(|| msg.into())
}

/// Redis's `getRangeLongFromObjectOrReply(1, LONG_MAX)` with its own message.
fn positive(arg: &[u8], msg: &'static str) -> Result<i64, Error> {
    error::int_arg(arg).ok().filter(|n| *n >= 1).ok_or_else(|| msg.into())
}

/// Replies with `n` elements popped from `end` (in the order they come off), then removes
/// them; deletes the key when the list is left empty, with the events Redis raises.
fn pop_range(ctx: &mut Ctx<'_>, mut live: LiveSlot<'_>, key: &[u8], end: End, n: usize) -> CmdResult {
    let list = list_mut(&mut live)?;
    let n = n.min(list.len());
    ctx.out().array(n);
    match end {
        End::Left => {
            for e in list.range(0, n) {
                ctx.out().bulk(e);
            }
            list.drop_front(n);
        }
        End::Right => {
            let len = list.len();
            for e in list.range(len - n, len).rev() {
                ctx.out().bulk(e);
            }
            list.drop_back(n);
        }
    }
    removed(ctx, live, key, end);
    Ok(())
}

/// After elements were popped from `end` of the list in `live`: the pop event, and the key's
/// removal (with a `del` event) if the list is empty.
fn removed(ctx: &mut Ctx<'_>, live: LiveSlot<'_>, key: &[u8], end: End) {
    ctx.notify(notify::LIST, end.pop_event(), key);
    if matches!(&*live.entry().value, Value::List(l) if l.is_empty()) {
        live.remove();
        ctx.notify(notify::GENERIC, "del", key);
    }
}

/// Pops one element from `end` of the list in `live`, replying with it as a bulk string.
fn pop_one(ctx: &mut Ctx<'_>, mut live: LiveSlot<'_>, key: &[u8], end: End) -> CmdResult {
    let list = list_mut(&mut live)?;
    match end {
        End::Left => {
            ctx.out().bulk(list.front().unwrap_or_default());
            list.drop_front_one();
        }
        End::Right => {
            ctx.out().bulk(list.back().unwrap_or_default());
            list.drop_back_one();
        }
    }
    removed(ctx, live, key, end);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// LPUSH RPUSH LPUSHX RPUSHX

fn push_generic(ctx: &mut Ctx<'_>, args: Args<'_>, end: End, only_existing: bool) -> CmdResult {
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let len = match shard.slot(key, ctx.now()) {
        Slot::Live(mut live) => {
            let list = list_mut(&mut live)?;
            for e in args.iter().skip(2) {
                push(list, end, e);
            }
            list.len()
        }
        Slot::Empty(empty) => {
            if only_existing {
                ctx.out().int(0);
                return Ok(());
            }
            let mut list = List::new();
            for e in args.iter().skip(2) {
                push(&mut list, end, e);
            }
            let len = list.len();
            empty.insert(Value::List(list), None);
            len
        }
    };
    drop(shard);
    ctx.out().int(len as i64);
    ctx.notify(notify::LIST, end.push_event(), key);
    Ok(())
}

pub(super) fn lpush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    push_generic(ctx, args, End::Left, false)
}

pub(super) fn rpush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    push_generic(ctx, args, End::Right, false)
}

pub(super) fn lpushx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    push_generic(ctx, args, End::Left, true)
}

pub(super) fn rpushx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    push_generic(ctx, args, End::Right, true)
}

// ---------------------------------------------------------------------------------------------
// LPOP RPOP

/// LPOP/RPOP key [count]: without a count a bulk string (null when there is no key); with
/// one an array (a null array when there is no key, empty for a count of 0).
fn pop_generic(ctx: &mut Ctx<'_>, args: Args<'_>, end: End) -> CmdResult {
    if args.len() > 3 {
        return Err(crate::model::command::arity_error(if end == End::Left { "lpop" } else { "rpop" }));
    }
    let count = if args.len() == 3 {
        Some(non_negative(args.get(2), "ERR value is out of range, must be positive")?)
    } else {
        None
    };
    let key = args.get(1);
    let mut shard = lock_to_take(ctx, key);
    let Slot::Live(live) = shard.slot(key, ctx.now()) else {
        if count.is_some() {
            ctx.out().null_array();
        } else {
            ctx.out().null();
        }
        return Ok(());
    };
    as_list(live.entry().value)?;
    match count {
        None => pop_one(ctx, live, key, end),
        Some(0) => {
            ctx.out().array(0);
            Ok(())
        }
        Some(n) => pop_range(ctx, live, key, end, usize::try_from(n).unwrap_or(usize::MAX)),
    }
}

pub(super) fn lpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    pop_generic(ctx, args, End::Left)
}

pub(super) fn rpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    pop_generic(ctx, args, End::Right)
}

// ---------------------------------------------------------------------------------------------
// LLEN LRANGE LINDEX LPOS

pub(super) fn llen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let len = match found {
        Some(e) => as_list(e.value)?.len(),
        None => 0,
    };
    ctx.out().int(len as i64);
    Ok(())
}

/// Redis's range rule for LRANGE and LTRIM: negative indexes count from the end; the result
/// is the inclusive range `start..=end` within the list, or `None` when it is empty.
fn clamp_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let mut start = if start < 0 { start.saturating_add(len) } else { start };
    let mut end = if end < 0 { end.saturating_add(len) } else { end };
    start = start.max(0);
    if start > end || start >= len {
        return None;
    }
    end = end.min(len - 1);
    Some((start as usize, end as usize))
}

pub(super) fn lrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (start, end) = (int_arg(args.get(2))?, int_arg(args.get(3))?);
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let Some(entry) = found else {
        ctx.out().array(0);
        return Ok(());
    };
    let list = as_list(entry.value)?;
    match clamp_range(start, end, list.len()) {
        None => ctx.out().array(0),
        Some((s, e)) => {
            ctx.out().array(e - s + 1);
            for item in list.range(s, e + 1) {
                ctx.out().bulk(item);
            }
        }
    }
    Ok(())
}

pub(super) fn lindex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let Some(entry) = found else {
        ctx.out().null();
        return Ok(());
    };
    let list = as_list(entry.value)?;
    let index = int_arg(args.get(2))?;
    match list.index(index).and_then(|i| list.get(i)) {
        Some(e) => ctx.out().bulk(e),
        None => ctx.out().null(),
    }
    Ok(())
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len], with Redis 7.0's
/// arithmetic (a RANK of i64::MIN wraps as in C: it matches from the tail, and with COUNT
/// returns every match).
pub(super) fn lpos(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let element = args.get(2);
    let (mut rank, mut count, mut maxlen) = (1i64, -1i64, 0i64);
    let mut options = Cursor::new(args, 3);
    while let Some(opt) = options.next() {
        if options.is_done() {
            return Err(error::syntax()); // every option takes a value
        }
        if is(opt, "rank") {
            rank = options.next_int()?;
            if rank == 0 {
                return Err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list".into());
            }
        } else if is(opt, "count") {
            count = non_negative(options.next_bytes()?, "ERR COUNT can't be negative")?;
        } else if is(opt, "maxlen") {
            maxlen = non_negative(options.next_bytes()?, "ERR MAXLEN can't be negative")?;
        } else {
            return Err(error::syntax());
        }
    }
    let from_tail = rank < 0;
    if from_tail {
        rank = rank.wrapping_neg();
    }
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let Some(entry) = found else {
        if count != -1 {
            ctx.out().array(0);
        } else {
            ctx.out().null();
        }
        return Ok(());
    };
    let list = as_list(entry.value)?;
    let llen = list.len() as i64;
    let mut found_at: Vec<i64> = Vec::new();
    let mut matches = 0i64;
    let mut single = None;
    let items: &mut dyn Iterator<Item = &[u8]> = if from_tail { &mut list.iter().rev() } else { &mut list.iter() };
    for (index, item) in (0i64..).zip(items) {
        if maxlen != 0 && index >= maxlen {
            break;
        }
        if item == element {
            matches += 1;
            let at = if from_tail { llen - index - 1 } else { index };
            if matches >= rank {
                if count != -1 {
                    found_at.push(at);
                    if count != 0 && matches.wrapping_sub(rank).wrapping_add(1) >= count {
                        break;
                    }
                } else {
                    single = Some(at);
                    break;
                }
            }
        }
    }
    if count != -1 {
        ctx.out().array(found_at.len());
        for at in found_at {
            ctx.out().int(at);
        }
    } else {
        match single {
            Some(at) => ctx.out().int(at),
            None => ctx.out().null(),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// LSET LINSERT LREM LTRIM

pub(super) fn lset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let Slot::Live(mut live) = shard.slot(key, ctx.now()) else { return Err(error::NO_SUCH_KEY.into()) };
    as_list(live.entry().value)?;
    let index = int_arg(args.get(2))?;
    let Some(i) = as_list(live.entry().value)?.index(index) else {
        return Err("ERR index out of range".into());
    };
    list_mut(&mut live)?.set(i, args.get(3));
    drop(live);
    ctx.out().ok();
    ctx.notify(notify::LIST, "lset", key);
    Ok(())
}

pub(super) fn linsert(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let after = if is(args.get(2), "after") {
        true
    } else if is(args.get(2), "before") {
        false
    } else {
        return Err(error::syntax());
    };
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let Slot::Live(mut live) = shard.slot(key, ctx.now()) else {
        ctx.out().int(0);
        return Ok(());
    };
    let Some(at) = as_list(live.entry().value)?.position(args.get(3)) else {
        ctx.out().int(-1);
        return Ok(());
    };
    let list = list_mut(&mut live)?;
    list.insert(at + usize::from(after), args.get(4));
    let len = list.len();
    drop(live);
    ctx.out().int(len as i64);
    ctx.notify(notify::LIST, "linsert", key);
    Ok(())
}

pub(super) fn lrem(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let count = int_arg(args.get(2))?;
    let key = args.get(1);
    let mut shard = lock_to_take(ctx, key);
    let Slot::Live(mut live) = shard.slot(key, ctx.now()) else {
        ctx.out().int(0);
        return Ok(());
    };
    as_list(live.entry().value)?;
    // As in C, negating i64::MIN leaves it negative: from the tail, and no limit is reached.
    let (from_tail, limit) = match count {
        i64::MIN => (true, 0),
        n => (n < 0, usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX)),
    };
    let element = args.get(3);
    let found = as_list(live.entry().value)?.iter().any(|e| e == element);
    let removed = if found { list_mut(&mut live)?.remove(element, limit, from_tail) } else { 0 };
    if removed > 0 {
        ctx.notify(notify::LIST, "lrem", key);
        if as_list(live.entry().value)?.is_empty() {
            live.remove();
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
    ctx.out().int(removed as i64);
    Ok(())
}

pub(super) fn ltrim(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (start, end) = (int_arg(args.get(2))?, int_arg(args.get(3))?);
    let key = args.get(1);
    let mut shard = lock_to_take(ctx, key);
    let Slot::Live(mut live) = shard.slot(key, ctx.now()) else {
        ctx.out().ok();
        return Ok(());
    };
    let len = as_list(live.entry().value)?.len();
    let (left, right) = match clamp_range(start, end, len) {
        None => (len, 0),
        Some((s, e)) => (s, len - e - 1),
    };
    if left + right > 0 {
        let list = list_mut(&mut live)?;
        list.drop_front(left);
        list.drop_back(right);
    }
    ctx.notify(notify::LIST, "ltrim", key);
    if left == len {
        live.remove();
        ctx.notify(notify::GENERIC, "del", key);
    }
    ctx.out().ok();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// LMOVE RPOPLPUSH BLMOVE BRPOPLPUSH

/// Moves one element from `from` of `src` to `to` of `dst`, replying with it. Replies null
/// (and changes nothing) when `src` does not exist; returns `false` then, so that the blocking
/// forms can wait instead.
fn move_generic(ctx: &mut Ctx<'_>, src: &[u8], dst: &[u8], from: End, to: End) -> Result<bool, Error> {
    let db = ctx.db_index();
    let now = ctx.now();
    let mut locked = loop {
        let locked = ctx.keyspace().lock_write([(db, src), (db, dst)]);
        if !ctx.waiters_first(src) {
            break locked;
        }
        drop(locked);
        ctx.serve_waiters();
    };
    match locked.shard(db, src).get(src, now) {
        None => return Ok(false),
        Some(e) => as_list(e.value)?,
    };
    if let Some(e) = locked.shard(db, dst).get(dst, now) {
        as_list(e.value)?;
    }
    if src == dst {
        // A rotation: the list never becomes empty.
        let Slot::Live(mut live) = locked.shard(db, src).slot(src, now) else { return Ok(false) };
        let list = list_mut(&mut live)?;
        let element = take(list, from);
        push(list, to, &element);
        ctx.out().bulk(&element);
        drop(live);
        drop(locked);
        ctx.notify(notify::LIST, to.push_event(), dst);
        ctx.notify(notify::LIST, from.pop_event(), src);
        return Ok(true);
    }
    let Slot::Live(mut live) = locked.shard(db, src).slot(src, now) else { return Ok(false) };
    let list = list_mut(&mut live)?;
    let element = take(list, from);
    let emptied = list.is_empty();
    if emptied {
        live.remove();
    } else {
        drop(live);
    }
    match locked.shard(db, dst).slot(dst, now) {
        Slot::Live(mut target) => push(list_mut(&mut target)?, to, &element),
        Slot::Empty(empty) => {
            let mut list = List::new();
            push(&mut list, to, &element);
            empty.insert(Value::List(list), None);
        }
    }
    drop(locked);
    ctx.out().bulk(&element);
    ctx.notify(notify::LIST, to.push_event(), dst);
    ctx.notify(notify::LIST, from.pop_event(), src);
    if emptied {
        ctx.notify(notify::GENERIC, "del", src);
    }
    Ok(true)
}

pub(super) fn lmove(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (from, to) = (End::parse(args.get(3))?, End::parse(args.get(4))?);
    if !move_generic(ctx, args.get(1), args.get(2), from, to)? {
        ctx.out().null();
    }
    Ok(())
}

pub(super) fn rpoplpush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if !move_generic(ctx, args.get(1), args.get(2), End::Right, End::Left)? {
        ctx.out().null();
    }
    Ok(())
}

/// BLMOVE and BRPOPLPUSH once their arguments are read: move, or wait on the source. Logged as
/// the LMOVE or RPOPLPUSH they performed.
fn blocking_move(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    from: End,
    to: End,
    timeout: Timeout,
    brpoplpush: bool,
) -> CmdResult {
    let (src, dst) = (args.get(1), args.get(2));
    if move_generic(ctx, src, dst, from, to)? {
        if brpoplpush {
            ctx.propagate(&[b"RPOPLPUSH", src, dst]);
        } else {
            ctx.propagate(&[b"LMOVE", src, dst, from.word(), to.word()]);
        }
        return Ok(());
    }
    ctx.block("list", [src], timeout, Reply::null)
}

pub(super) fn blmove(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (from, to) = (End::parse(args.get(3))?, End::parse(args.get(4))?);
    let timeout = blocking::timeout_arg(args.get(5))?;
    blocking_move(ctx, args, from, to, timeout, false)
}

pub(super) fn brpoplpush(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let timeout = blocking::timeout_arg(args.get(3))?;
    blocking_move(ctx, args, End::Right, End::Left, timeout, true)
}

// ---------------------------------------------------------------------------------------------
// BLPOP BRPOP LMPOP BLMPOP

/// Pops from the first of `keys` that holds a non-empty list: one element replied as
/// `[key, element]` (`count` None), or up to `count` as `[key, [elements...]]`. Logged as the
/// LPOP/RPOP it performed. Returns false, replying nothing, when every key is missing.
fn pop_first(ctx: &mut Ctx<'_>, keys: Args<'_>, end: End, count: Option<usize>) -> Result<bool, Error> {
    for key in keys.iter() {
        let mut shard = lock_to_take(ctx, key);
        let Slot::Live(live) = shard.slot(key, ctx.now()) else { continue };
        let len = as_list(live.entry().value)?.len();
        ctx.out().array(2);
        ctx.out().bulk(key);
        match count {
            None => {
                pop_one(ctx, live, key, end)?;
                drop(shard);
                ctx.propagate(&[end.pop_command(), key]);
            }
            Some(n) => {
                pop_range(ctx, live, key, end, n)?;
                drop(shard);
                let popped = itoa::Buffer::new().format(n.min(len)).as_bytes().to_vec();
                ctx.propagate(&[end.pop_command(), key, &popped]);
            }
        }
        return Ok(true);
    }
    Ok(false)
}

fn blocking_pop(ctx: &mut Ctx<'_>, args: Args<'_>, end: End) -> CmdResult {
    let timeout = blocking::timeout_arg(args.get(args.len() - 1))?;
    let keys = sub(args, 1, args.len() - 1);
    if pop_first(ctx, keys, end, None)? {
        return Ok(());
    }
    ctx.block("list", keys.iter(), timeout, Reply::null_array)
}

pub(super) fn blpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    blocking_pop(ctx, args, End::Left)
}

pub(super) fn brpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    blocking_pop(ctx, args, End::Right)
}

/// LMPOP/BLMPOP's `numkeys key... LEFT|RIGHT [COUNT count]` from argument `at`.
fn mpop_args(args: Args<'_>, at: usize) -> Result<(Args<'_>, End, usize), Error> {
    let numkeys = positive(args.get(at), "ERR numkeys should be greater than 0")?;
    let where_at = usize::try_from(numkeys).ok().and_then(|n| n.checked_add(at + 1)).filter(|&w| w < args.len());
    let Some(where_at) = where_at else { return Err(error::syntax()) };
    let end = End::parse(args.get(where_at))?;
    let mut count = None;
    let mut options = Cursor::new(args, where_at + 1);
    while !options.is_done() {
        if count.is_none() && options.remaining() >= 2 && options.eat("count") {
            count = Some(positive(options.next_bytes()?, "ERR count should be greater than 0")?);
        } else {
            return Err(error::syntax());
        }
    }
    let count = usize::try_from(count.unwrap_or(1)).unwrap_or(usize::MAX);
    Ok((sub(args, at + 1, where_at), end, count))
}

pub(super) fn lmpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (keys, end, count) = mpop_args(args, 1)?;
    if !pop_first(ctx, keys, end, Some(count))? {
        ctx.out().null_array();
    }
    Ok(())
}

pub(super) fn blmpop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (keys, end, count) = mpop_args(args, 2)?;
    let timeout = blocking::timeout_arg(args.get(1))?;
    if pop_first(ctx, keys, end, Some(count))? {
        return Ok(());
    }
    ctx.block("list", keys.iter(), timeout, Reply::null_array)
}

#[cfg(test)]
mod tests {
    use crate::exec::test_support::TestSession as Session;
    use crate::model::wait::Mode;

    #[test]
    fn blocking_commands_that_may_not_block_reply_as_timed_out() {
        let mut s = Session::new();
        // As inside MULTI: Redis answers a null array, or a null for the moves.
        s.expect(
            Mode::NoBlock,
            &[
                ("BLPOP q 0", "*-1\r\n"),
                ("BRPOP q other 5", "*-1\r\n"),
                ("BLMPOP 0 1 q LEFT", "*-1\r\n"),
                ("BLMOVE q d LEFT LEFT 0", "$-1\r\n"),
                ("BRPOPLPUSH q d 0", "$-1\r\n"),
                ("BLPOP q -1", "-ERR timeout is negative\r\n"),
            ],
        );
        assert_eq!(s.server.blocking().blocked(), 0);
        // With data they serve as usual.
        s.run(Mode::NoBlock, "RPUSH q a b c");
        let served = s.run(Mode::NoBlock, "BLPOP q 0");
        assert_eq!(served, ("*2\r\n$1\r\nq\r\n$1\r\na\r\n".to_string(), false));
        let moved = s.run(Mode::NoBlock, "BLMOVE q d RIGHT LEFT 0");
        assert_eq!(moved, ("$1\r\nc\r\n".to_string(), false));
        // Run again for a waiting client (Retry): nothing to serve means no reply and a wait.
        assert_eq!(s.run(Mode::Retry, "BLPOP empty 0"), (String::new(), true));
        // A plain call asks the connection to wait.
        assert_eq!(s.run(Mode::MayBlock, "BLPOP empty 0"), (String::new(), true));
    }
}
