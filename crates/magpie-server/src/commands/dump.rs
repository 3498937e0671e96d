//! Values in Redis's serialized form: DUMP, RESTORE (and RESTORE-ASKING). Payloads
//! are Redis 7.0's (RDB version 10, CRC-64), made and read by `magpie_persist::rdb`, so a value
//! moves between Redis and Magpie either way.

use magpie_persist::rdb::{self, Object, ReadOptions, RestoreError, WriteOptions};
use magpie_protocol::Args;

use crate::core::args::Cursor;
use crate::core::error::{self, CmdResult, Error, int_arg, is};
use crate::core::events as notify;
use crate::model::{Command, Ctx, KeySpec};
use crate::{acl, flags, key_flags};

const GROUP: &str = "generic";

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("dump", 2, flags![READONLY], GROUP, "2.6.0", "Return a serialized version of the value stored at the specified key.",
        "key", dump)
        .acl(acl![KEYSPACE])
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])])
        .tips(&["nondeterministic_output"]),
    Command::new("restore", -4, flags![WRITE, DENYOOM], GROUP, "2.6.0", "Create a key using the provided serialized value, previously obtained using DUMP.",
        "key ttl:integer serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds:integer] [FREQ frequency:integer]", restore)
        .acl(acl![KEYSPACE, DANGEROUS])
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE])]),
    Command::new("restore-asking", -4, flags![WRITE, DENYOOM, ASKING], "server", "3.0.0", "An internal command for migrating keys in a cluster",
        "key ttl:integer serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds:integer] [FREQ frequency:integer]", restore)
        .acl(acl![KEYSPACE, DANGEROUS])
        .keys(&[KeySpec::one(1, key_flags![OW, UPDATE])]),
];

/// How values are written for DUMP and MIGRATE: Redis's defaults (LZF on, default encoding
/// thresholds), so the payload is the one Redis would produce for the same value.
pub(crate) fn write_options() -> WriteOptions {
    WriteOptions::default()
}

/// DUMP key
fn dump(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    match found {
        None => ctx.out().null(),
        Some(e) => {
            let payload = rdb::dump_value(&e.value, &write_options());
            drop(shard);
            ctx.out().bulk(&payload);
        }
    }
    Ok(())
}

/// RESTORE's options after the payload.
struct RestoreOptions {
    replace: bool,
    absttl: bool,
}

fn restore_options(args: Args<'_>) -> Result<RestoreOptions, Error> {
    let mut o = RestoreOptions { replace: false, absttl: false };
    let (mut idle, mut freq) = (None::<i64>, None::<i64>);
    let mut c = Cursor::new(args, 4);
    while let Some(opt) = c.next() {
        if is(opt, "replace") {
            o.replace = true;
        } else if is(opt, "absttl") {
            o.absttl = true;
        } else if is(opt, "idletime") && c.remaining() >= 1 && freq.is_none() {
            let n = int_arg(c.next_bytes()?)?;
            if n < 0 {
                return Err("ERR Invalid IDLETIME value, must be >= 0".into());
            }
            idle = Some(n);
        } else if is(opt, "freq") && c.remaining() >= 1 && idle.is_none() {
            let n = int_arg(c.next_bytes()?)?;
            if !(0..=255).contains(&n) {
                return Err("ERR Invalid FREQ value, must be >= 0 and <= 255".into());
            }
            freq = Some(n);
        } else {
            return Err(error::syntax());
        }
    }
    // IDLETIME and FREQ are checked as Redis checks them; Magpie keeps no access clock or
    // frequency per key yet, so they have nothing to set.
    Ok(o)
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
/// (and RESTORE-ASKING, the same for Magpie, which has no cluster).
fn restore(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let o = restore_options(args)?;
    let key = args.get(1);
    let now = ctx.now();
    let mut shard = ctx.db().write(key);
    if !o.replace && shard.contains(key, now) {
        return Err("BUSYKEY Target key name already exists.".into());
    }
    let mut ttl = int_arg(args.get(2))?;
    if ttl < 0 {
        return Err("ERR Invalid TTL value, must be >= 0".into());
    }
    let opts = ReadOptions { deep_sanitize: true, verify_checksum: true };
    let value = match rdb::restore(args.get(3), &opts) {
        Ok(Object::Value(v)) => v,
        Ok(Object::Stream(_)) => return Err("ERR Bad data format: streams are not supported by this server yet".into()),
        Err(e @ RestoreError::VersionOrChecksum) => return Err(Error::msg(e.to_string())),
        Err(RestoreError::BadData(e)) => {
            tracing::debug!("RESTORE refused a payload: {e}");
            return Err("ERR Bad data format".into());
        }
    };
    let deleted = o.replace && shard.remove(key, now).is_some();
    if ttl != 0 && !o.absttl {
        ttl = ttl.saturating_add(now as i64);
    }
    if ttl != 0 && ttl <= now as i64 {
        // Already expired: nothing is created (the old key, if replaced, is gone).
        drop(shard);
        if deleted {
            ctx.propagate(&[b"DEL", key]);
            ctx.notify(notify::GENERIC, "del", key);
        }
        ctx.out().ok();
        return Ok(());
    }
    let expire = (ttl != 0).then_some(ttl as u64);
    shard.insert(key, value, expire, now);
    drop(shard);
    if expire.is_some() && !o.absttl {
        // Logged with the absolute time, as Redis propagates it.
        let mut record: Vec<&[u8]> = args.iter().collect();
        let at = itoa::Buffer::new().format(ttl).as_bytes().to_vec();
        record[2] = &at;
        record.push(b"ABSTTL");
        ctx.propagate(&record);
    }
    ctx.notify(notify::GENERIC, "restore", key);
    ctx.out().ok();
    Ok(())
}
