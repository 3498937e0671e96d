//! HyperLogLog: PFADD, PFCOUNT, PFMERGE on string values in Redis's representation
//! (`magpie_store::hll`), so values move between Redis and Magpie and estimates agree.
//!
//! PFCOUNT of one key stores the cardinality it computed in the value's header, as Redis
//! does, although it is a read-only command: flagged MAY_REPLICATE, it is logged as itself when
//! it changed the value (as Redis propagates it), so a replayed value has the same bytes.

use magpie_protocol::Args;
use magpie_store::hll::{self, Corrupt};
use magpie_store::{Slot, Value, ValueRef};

use crate::core::error::{CmdResult, Error, wrongtype};
use crate::core::events as notify;
use crate::model::{Command, Ctx, KeySpec};
use crate::{flags, key_flags};

const GROUP: &str = "hyperloglog";

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("pfadd", -2, flags![WRITE, DENYOOM, FAST], GROUP, "2.8.9", "Adds the specified elements to the specified HyperLogLog.",
        "key [element ...]", pfadd)
        .keys(&[KeySpec::one(1, key_flags![RW, INSERT])]),
    Command::new("pfcount", -2, flags![READONLY, MAY_REPLICATE], GROUP, "2.8.9", "Return the approximated cardinality of the set(s) observed by the HyperLogLog at key(s).",
        "key [key ...]", pfcount)
        .keys(&[KeySpec::range(1, -1, 1, key_flags![RW, ACCESS]).notes("RW because it may change the internal representation of the key, and propagate to replicas")]),
    Command::new("pfmerge", -2, flags![WRITE, DENYOOM], GROUP, "2.8.9", "Merge N different HyperLogLogs into a single one.",
        "destkey [sourcekey ...]", pfmerge)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, INSERT]), KeySpec::range(2, -1, 1, key_flags![RO, ACCESS])]),
];

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

fn corrupt(_: Corrupt) -> Error {
    CORRUPT.into()
}

/// The HyperLogLog bytes of a value (`isHLLObjectOrReply`): WRONGTYPE for other types, and
/// Redis's own WRONGTYPE text for strings that are not HyperLogLogs.
fn hll_bytes<'a>(value: impl Into<ValueRef<'a>>) -> Result<&'a [u8], Error> {
    let value = value.into();
    if let Some(s) = value.string_slice() {
        return if hll::is_hll(s) { Ok(s) } else { Err(NOT_HLL.into()) };
    }
    match &*value {
        Value::Int(_) => Err(NOT_HLL.into()),
        _ => Err(wrongtype()),
    }
}

/// PFADD key [element ...]
fn pfadd(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let max_sparse = ctx.server().settings().hll_sparse_max_bytes();
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let updated = match shard.slot(key, ctx.now()) {
        Slot::Live(mut live) => {
            hll_bytes(live.entry().value)?;
            let Value::Str(v) = live.value_mut() else { return Err(wrongtype()) };
            let mut updated = false;
            v.edit(|v| {
                for ele in args.iter().skip(2) {
                    updated |= hll::add(v, ele, max_sparse).map_err(corrupt)?;
                }
                Ok::<_, Error>(updated)
            })?
        }
        Slot::Empty(empty) => {
            let mut v = hll::new_sparse();
            for ele in args.iter().skip(2) {
                hll::add(&mut v, ele, max_sparse).map_err(corrupt)?;
            }
            // Created counts as updated: the (empty) cache is marked stale, as in Redis.
            hll::invalidate(&mut v);
            empty.insert(Value::Str(v.into()), None);
            true
        }
    };
    drop(shard);
    if updated {
        ctx.notify(notify::STRING, "pfadd", key);
    }
    ctx.out().int(i64::from(updated));
    Ok(())
}

/// PFCOUNT key [key ...]
fn pfcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 2 {
        let db = ctx.db_index();
        let keys = args.skip(1);
        let locked = ctx.keyspace().lock_read(keys.iter().map(|k| (db, k)));
        let mut max = vec![0u8; hll::REGISTERS];
        for key in keys.iter() {
            let found = locked.shard(db, key).get(key, ctx.now());
            ctx.hit(found.is_some());
            if let Some(e) = found {
                hll::merge_into(&mut max, hll_bytes(e.value)?).map_err(corrupt)?;
            }
        }
        drop(locked);
        ctx.out().int(hll::count_registers(&max) as i64);
        return Ok(());
    }
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let card = match shard.slot(key, ctx.now()) {
        Slot::Empty(_) => {
            ctx.hit(false);
            0
        }
        Slot::Live(mut live) => {
            ctx.hit(true);
            let v = hll_bytes(live.entry().value)?;
            let (card, fresh) = match hll::cached(v) {
                Some(card) => (card, false),
                None => (hll::count(v).map_err(corrupt)?, true),
            };
            if fresh && let Value::Str(v) = live.value_mut() {
                hll::set_cache(v, card);
            }
            card
        }
    };
    drop(shard);
    ctx.out().int(card as i64);
    Ok(())
}

/// PFMERGE destkey [sourcekey ...]
fn pfmerge(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let max_sparse = ctx.server().settings().hll_sparse_max_bytes();
    let db = ctx.db_index();
    let keys = args.skip(1);
    let dest = args.get(1);
    let mut locked = ctx.keyspace().lock_write(keys.iter().map(|k| (db, k)));
    let mut max = vec![0u8; hll::REGISTERS];
    let mut dense = false;
    // The destination counts among the sources, as in Redis.
    for key in keys.iter() {
        let found = locked.shard_ref(db, key).get(key, ctx.now());
        ctx.hit(found.is_some());
        if let Some(e) = found {
            let v = hll_bytes(e.value)?;
            dense |= v[4] == 0;
            hll::merge_into(&mut max, v).map_err(corrupt)?;
        }
    }
    let fill = |v: &mut Vec<u8>| -> Result<(), Error> {
        if dense {
            hll::to_dense(v).map_err(corrupt)?;
        }
        for (i, &m) in max.iter().enumerate() {
            if m != 0 {
                hll::set_register(v, i, m, max_sparse).map_err(corrupt)?;
            }
        }
        hll::invalidate(v);
        Ok(())
    };
    match locked.shard(db, dest).slot(dest, ctx.now()) {
        Slot::Live(mut live) => match live.value_mut() {
            Value::Str(v) => v.edit(fill)?,
            _ => return Err(wrongtype()),
        },
        Slot::Empty(empty) => {
            let mut v = hll::new_sparse();
            fill(&mut v)?;
            empty.insert(Value::Str(v.into()), None);
        }
    }
    drop(locked);
    ctx.notify(notify::STRING, "pfadd", dest);
    ctx.out().ok();
    Ok(())
}
