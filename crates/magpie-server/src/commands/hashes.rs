//! The hash commands: HSET and its family, reads, counters, HRANDFIELD and HSCAN.

use magpie_protocol::{Args, Reply, parse_i64};
use magpie_store::{Hash, Slot, Value, ValueRef, glob_match};

use super::keys::{ScanOptions, parse_cursor, scan_options};
use crate::core::error::{self, CmdResult, Error, int_arg, int_arg_in, is, wrongtype};
use crate::core::events as notify;
use crate::core::float::{self, AddError};
use crate::model::command::arity_error;
use crate::model::{Command, Ctx, KeySpec};
use crate::{flags, key_flags};

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("hset", -4, flags![WRITE, DENYOOM, FAST], "hash", "2.0.0", "Set the string value of a hash field",
        "key (field value) ...", hset)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    Command::new("hsetnx", 4, flags![WRITE, DENYOOM, FAST], "hash", "2.0.0", "Set the value of a hash field, only if the field does not exist",
        "key field value", hsetnx)
        .keys(&[KeySpec::one(1, key_flags![RW, INSERT])]),
    Command::new("hmset", -4, flags![WRITE, DENYOOM, FAST], "hash", "2.0.0", "Set multiple hash fields to multiple values",
        "key (field value) ...", hmset)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE])]),
    Command::new("hget", 3, flags![READONLY, FAST], "hash", "2.0.0", "Get the value of a hash field",
        "key field", hget)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("hmget", -3, flags![READONLY, FAST], "hash", "2.0.0", "Get the values of all the given hash fields",
        "key field [field ...]", hmget)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("hgetall", 2, flags![READONLY], "hash", "2.0.0", "Get all the fields and values in a hash",
        "key", hgetall)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output_order"]),
    Command::new("hkeys", 2, flags![READONLY], "hash", "2.0.0", "Get all the fields in a hash",
        "key", hkeys)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output_order"]),
    Command::new("hvals", 2, flags![READONLY], "hash", "2.0.0", "Get all the values in a hash",
        "key", hvals)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output_order"]),
    Command::new("hdel", -3, flags![WRITE, FAST], "hash", "2.0.0", "Delete one or more hash fields",
        "key field [field ...]", hdel)
        .keys(&[KeySpec::one(1, key_flags![RW, DELETE])]),
    Command::new("hexists", 3, flags![READONLY, FAST], "hash", "2.0.0", "Determine if a hash field exists",
        "key field", hexists)
        .keys(&[KeySpec::one(1, key_flags![RO])]),
    Command::new("hlen", 2, flags![READONLY, FAST], "hash", "2.0.0", "Get the number of fields in a hash",
        "key", hlen)
        .keys(&[KeySpec::one(1, key_flags![RO])]),
    Command::new("hstrlen", 3, flags![READONLY, FAST], "hash", "3.2.0", "Get the length of the value of a hash field",
        "key field", hstrlen)
        .keys(&[KeySpec::one(1, key_flags![RO])]),
    Command::new("hincrby", 4, flags![WRITE, DENYOOM, FAST], "hash", "2.0.0", "Increment the integer value of a hash field by the given number",
        "key field increment:integer", hincrby)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE])]),
    Command::new("hincrbyfloat", 4, flags![WRITE, DENYOOM, FAST], "hash", "2.6.0", "Increment the float value of a hash field by the given amount",
        "key field increment:double", hincrbyfloat)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE])]),
    Command::new("hrandfield", -2, flags![READONLY], "hash", "6.2.0", "Get one or multiple random fields from a hash",
        "key [count:integer [WITHVALUES]]", hrandfield)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output"]),
    Command::new("hscan", -3, flags![READONLY], "hash", "2.8.0", "Incrementally iterate hash fields and associated values",
        "key cursor:integer [MATCH pattern:pattern] [COUNT count:integer]", hscan)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output"]),
];

const NOT_INTEGER_VALUE: &str = "ERR hash value is not an integer";
const NOT_FLOAT_VALUE: &str = "ERR hash value is not a float";
/// HRANDFIELD with a negative count can ask for any number of fields, whatever the hash
/// holds; Redis would write them until memory runs out. Magpie bounds the reply.
const REPLY_TOO_LARGE: &str = "ERR HRANDFIELD reply would exceed proto-max-bulk-len: ask for fewer fields";

/// The hash a value holds; WRONGTYPE for any other type.
fn hash_of<'a>(value: impl Into<ValueRef<'a>>) -> Result<&'a Hash, Error> {
    match value.into().boxed() {
        Some(Value::Hash(h)) => Ok(h),
        _ => Err(wrongtype()),
    }
}

fn hash_mut(value: &mut Value) -> Result<&mut Hash, Error> {
    match value {
        Value::Hash(h) => Ok(h),
        _ => Err(wrongtype()),
    }
}

/// Looks `key` up for reading, counting a hit or a miss as Redis's `lookupKeyRead` does, and
/// hands its hash (`None` when there is no such key) to `f`, with the reply to write.
fn read(ctx: &mut Ctx<'_>, key: &[u8], f: impl FnOnce(&mut Reply, Option<&Hash>) -> CmdResult) -> CmdResult {
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let hash = found.map(|e| hash_of(e.value)).transpose()?;
    f(ctx.out(), hash)
}

// ---------------------------------------------------------------------------------------------
// Writes

/// HSET and HMSET: set every (field, value) pair; `replies_count` picks HSET's reply (fields
/// created) over HMSET's (OK).
fn hset_generic(ctx: &mut Ctx<'_>, args: Args<'_>, name: &str, replies_count: bool) -> CmdResult {
    if !args.len().is_multiple_of(2) {
        return Err(arity_error(name));
    }
    let key = args.get(1);
    let pairs = args.skip(2);
    let set_all = |hash: &mut Hash| {
        let mut it = pairs.iter();
        let mut created = 0;
        while let (Some(field), Some(value)) = (it.next(), it.next()) {
            created += usize::from(hash.insert(field, value));
        }
        created
    };
    let mut shard = ctx.db().write(key);
    let created = match shard.slot(key, ctx.now()) {
        Slot::Live(mut live) => {
            hash_of(live.entry().value)?;
            set_all(hash_mut(live.value_mut())?)
        }
        Slot::Empty(empty) => {
            let mut hash = Hash::new();
            let created = set_all(&mut hash);
            empty.insert(Value::Hash(Box::new(hash)), None);
            created
        }
    };
    drop(shard);
    ctx.notify(notify::HASH, "hset", key);
    if replies_count {
        ctx.out().int(created as i64);
    } else {
        ctx.out().ok();
    }
    Ok(())
}

/// HSET key field value [field value ...]
pub(super) fn hset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    hset_generic(ctx, args, "hset", true)
}

/// HMSET key field value [field value ...]
pub(super) fn hmset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    hset_generic(ctx, args, "hmset", false)
}

/// HSETNX key field value
pub(super) fn hsetnx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (key, field, value) = (args.get(1), args.get(2), args.get(3));
    let mut shard = ctx.db().write(key);
    let set = match shard.slot(key, ctx.now()) {
        Slot::Live(mut live) => {
            if hash_of(live.entry().value)?.contains(field) {
                false
            } else {
                hash_mut(live.value_mut())?.insert(field, value)
            }
        }
        Slot::Empty(empty) => {
            let mut hash = Hash::new();
            hash.insert(field, value);
            empty.insert(Value::Hash(Box::new(hash)), None);
            true
        }
    };
    drop(shard);
    if set {
        ctx.notify(notify::HASH, "hset", key);
    }
    ctx.out().int(i64::from(set));
    Ok(())
}

/// HDEL key field [field ...]: removes the fields, and the key with its last field.
pub(super) fn hdel(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let fields = args.skip(2);
    let mut shard = ctx.db().write(key);
    let (deleted, key_removed) = match shard.slot(key, ctx.now()) {
        Slot::Empty(_) => (0, false),
        Slot::Live(mut live) => {
            // Only a hash that really loses a field is changed (and, later, its WATCHers told).
            let hash = hash_of(live.entry().value)?;
            match fields.iter().position(|f| hash.contains(f)) {
                None => (0, false),
                Some(first) => {
                    let hash = hash_mut(live.value_mut())?;
                    let deleted = fields.iter().skip(first).filter(|f| hash.remove(f)).count();
                    let emptied = hash.is_empty();
                    if emptied {
                        live.remove();
                    }
                    (deleted, emptied)
                }
            }
        }
    };
    drop(shard);
    if deleted > 0 {
        ctx.notify(notify::HASH, "hdel", key);
        if key_removed {
            ctx.notify(notify::GENERIC, "del", key);
        }
    }
    ctx.out().int(deleted as i64);
    Ok(())
}

/// Sets `field` of the hash at `key` to what `compute` makes of its current value (`None`
/// when the field or the key is missing), creating the key if needed. Returns the new value.
fn update_field(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    field: &[u8],
    compute: impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, Error>,
) -> Result<Vec<u8>, Error> {
    let mut shard = ctx.db().write(key);
    match shard.slot(key, ctx.now()) {
        Slot::Live(mut live) => {
            let new = compute(hash_of(live.entry().value)?.get(field))?;
            hash_mut(live.value_mut())?.insert(field, &new);
            Ok(new)
        }
        Slot::Empty(empty) => {
            let new = compute(None)?;
            let mut hash = Hash::new();
            hash.insert(field, &new);
            empty.insert(Value::Hash(Box::new(hash)), None);
            Ok(new)
        }
    }
}

/// HINCRBY key field increment
pub(super) fn hincrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let incr = int_arg(args.get(3))?;
    let (key, field) = (args.get(1), args.get(2));
    let mut result = 0;
    update_field(ctx, key, field, |current| {
        let current = match current {
            Some(v) => parse_i64(v).ok_or_else(|| Error::from(NOT_INTEGER_VALUE))?,
            None => 0,
        };
        result = current.checked_add(incr).ok_or_else(|| Error::from(error::OVERFLOW))?;
        Ok(itoa::Buffer::new().format(result).as_bytes().to_vec())
    })?;
    ctx.notify(notify::HASH, "hincrby", key);
    ctx.out().int(result);
    Ok(())
}

/// HINCRBYFLOAT key field increment: long-double arithmetic, as INCRBYFLOAT; logged as HSET
/// of the result, so that replaying the log cannot round differently.
pub(super) fn hincrbyfloat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (key, field, incr) = (args.get(1), args.get(2), args.get(3));
    // The increment is checked before the key is looked up.
    match float::add_ld(None, incr) {
        Ok(_) => {}
        Err(AddError::NotFinite) => return Err("ERR value is NaN or Infinity".into()),
        Err(_) => return Err(error::NOT_FLOAT.into()),
    }
    let new = update_field(ctx, key, field, |current| {
        float::add_ld(current, incr).map_err(|e| match e {
            AddError::Value => NOT_FLOAT_VALUE.into(),
            AddError::NotFinite => "ERR increment would produce NaN or Infinity".into(),
            AddError::Incr => error::NOT_FLOAT.into(),
        })
    })?;
    ctx.notify(notify::HASH, "hincrbyfloat", key);
    ctx.propagate(&[b"HSET", key, field, &new]);
    ctx.out().bulk(&new);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reads

/// HGET key field
pub(super) fn hget(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let field = args.get(2);
    read(ctx, args.get(1), |out, hash| {
        match hash.and_then(|h| h.get(field)) {
            Some(v) => out.bulk(v),
            None => out.null(),
        }
        Ok(())
    })
}

/// HMGET key field [field ...]: a missing key is an empty hash (nils).
pub(super) fn hmget(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let fields = args.skip(2);
    read(ctx, args.get(1), |out, hash| {
        out.array(fields.len());
        for field in fields.iter() {
            match hash.and_then(|h| h.get(field)) {
                Some(v) => out.bulk(v),
                None => out.null(),
            }
        }
        Ok(())
    })
}

/// HGETALL key: a map of fields to values.
pub(super) fn hgetall(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    read(ctx, args.get(1), |out, hash| {
        let Some(hash) = hash else {
            out.map(0);
            return Ok(());
        };
        out.map(hash.len());
        for (field, value) in hash {
            out.bulk(field);
            out.bulk(value);
        }
        Ok(())
    })
}

/// HKEYS and HVALS: one side of every pair.
fn one_side(ctx: &mut Ctx<'_>, args: Args<'_>, fields: bool) -> CmdResult {
    read(ctx, args.get(1), |out, hash| {
        let Some(hash) = hash else {
            out.array(0);
            return Ok(());
        };
        out.array(hash.len());
        for (field, value) in hash {
            out.bulk(if fields { field } else { value });
        }
        Ok(())
    })
}

/// HKEYS key
pub(super) fn hkeys(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    one_side(ctx, args, true)
}

/// HVALS key
pub(super) fn hvals(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    one_side(ctx, args, false)
}

/// HEXISTS key field
pub(super) fn hexists(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let field = args.get(2);
    read(ctx, args.get(1), |out, hash| {
        out.int(i64::from(hash.is_some_and(|h| h.contains(field))));
        Ok(())
    })
}

/// HLEN key
pub(super) fn hlen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    read(ctx, args.get(1), |out, hash| {
        out.int(hash.map_or(0, Hash::len) as i64);
        Ok(())
    })
}

/// HSTRLEN key field
pub(super) fn hstrlen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let field = args.get(2);
    read(ctx, args.get(1), |out, hash| {
        out.int(hash.and_then(|h| h.get(field)).map_or(0, <[u8]>::len) as i64);
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// HRANDFIELD and HSCAN

/// HRANDFIELD key [count [WITHVALUES]]
pub(super) fn hrandfield(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    if args.len() == 2 {
        return read(ctx, key, |out, hash| {
            match hash.and_then(Hash::random_pair) {
                Some((field, _)) => out.bulk(field),
                None => out.null(),
            }
            Ok(())
        });
    }
    let count = int_arg_in(args.get(2), -i64::MAX..=i64::MAX)?;
    let with_values = match args.len() {
        3 => false,
        4 if is(args.get(3), "withvalues") => true,
        _ => return Err(error::syntax()),
    };
    // Redis's bound, so that twice the count cannot overflow.
    if with_values && !(-i64::MAX / 2..=i64::MAX / 2).contains(&count) {
        return Err("ERR value is out of range".into());
    }
    let max_reply = ctx.server().settings().proto_max_bulk_len();
    read(ctx, key, |out, hash| {
        let Some(hash) = hash.filter(|_| count != 0) else {
            out.array(0);
            return Ok(());
        };
        let write = |out: &mut Reply, (field, value): (&[u8], &[u8])| {
            if with_values {
                out.pair();
                out.bulk(field);
                out.bulk(value);
            } else {
                out.bulk(field);
            }
        };
        let header = |out: &mut Reply, n: usize| if with_values { out.pairs(n) } else { out.array(n) };
        if count < 0 || count == 1 {
            // Independent draws, repeats allowed; every element takes at least 6 bytes
            // (`$0\r\n\r\n`).
            let n = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
            let mut pairs = hash.random_pairs();
            return super::random_draws(
                out,
                n,
                if with_values { 12 } else { 6 },
                max_reply,
                REPLY_TOO_LARGE,
                |out| header(out, n),
                |out, k| pairs.by_ref().take(k).for_each(|pair| write(out, pair)),
            );
        }
        let pairs = hash.random_distinct(usize::try_from(count).unwrap_or(usize::MAX));
        header(out, pairs.len());
        for pair in pairs {
            write(out, pair);
        }
        Ok(())
    })
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
pub(super) fn hscan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let cursor = parse_cursor(args.get(2)).ok_or_else(|| Error::from("ERR invalid cursor"))?;
    read(ctx, args.get(1), |out, hash| {
        let Some(hash) = hash else {
            // As Redis: a missing key is an empty scan, before the options are even read.
            out.array(2);
            out.bulk(b"0");
            out.array(0);
            return Ok(());
        };
        let ScanOptions { pattern, count, .. } = scan_options(args, 3, false)?;
        let mut found: Vec<(&[u8], &[u8])> = Vec::new();
        let next = hash.scan(cursor, count, |field, value| {
            if pattern.is_none_or(|p| glob_match(p, field, false)) {
                found.push((field, value));
            }
        });
        out.array(2);
        out.bulk(itoa::Buffer::new().format(next).as_bytes());
        out.array(found.len() * 2);
        for (field, value) in found {
            out.bulk(field);
            out.bulk(value);
        }
        Ok(())
    })
}
