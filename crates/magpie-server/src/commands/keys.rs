//! Generic key commands (DEL, EXISTS, TYPE, KEYS, SCAN, RENAME, COPY, ...) and expiry.

use magpie_protocol::Args;
use magpie_store::evict::{Policy, Tracking};
use magpie_store::{ScanCursor, glob_match};

use crate::core::args::Cursor;
use crate::core::error::{self, CmdResult, Error, int_arg, int_arg_in, invalid_expire, is};
use crate::core::events as notify;
use crate::model::Ctx;

/// DEL and UNLINK: removes the keys atomically, replies how many existed.
pub(super) fn del(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let db = ctx.db_index();
    let keys = args.skip(1);
    let removed = if keys.len() == 1 {
        let key = keys.get(0);
        // The entry outlives the shard's guard: a big value is freed with no lock held.
        let old = ctx.db().write(key).delete(key, ctx.now());
        let found = old.is_some();
        if let Some(e) = old {
            ctx.notify(notify::GENERIC, "del", key);
            free(e);
        }
        usize::from(found)
    } else {
        let mut locked = ctx.keyspace().lock_write(keys.iter().map(|k| (db, k)));
        let mut old = Vec::new();
        for k in keys.iter() {
            if let Some(e) = locked.shard(db, k).delete(k, ctx.now()) {
                ctx.notify(notify::GENERIC, "del", k);
                old.push(e);
            }
        }
        drop(locked);
        let n = old.len();
        for e in old {
            free(e);
        }
        n
    };
    ctx.out().int(removed as i64);
    Ok(())
}

/// Frees a removed value: a collection of many elements on another thread, so that a DEL of
/// millions of elements does not hold up this connection (Redis's lazyfree for UNLINK).
fn free(removed: magpie_store::Removed) {
    use magpie_store::Value;
    const BIG: usize = 1 << 16;
    let big = match &*removed.value() {
        Value::List(l) => l.len() > BIG,
        Value::Hash(h) => h.len() > BIG,
        Value::Set(s) => s.len() > BIG,
        Value::ZSet(z) => z.len() > BIG,
        Value::Stream(s) => s.len() > BIG as u64,
        Value::Str(_) | Value::Int(_) => false,
    };
    if big {
        crate::services::drop_in_background(removed.into_value());
    }
}

/// EXISTS: how many of the keys exist (a key named twice counts twice).
pub(super) fn exists(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    exists_or_touch(ctx, args, false)
}

/// TOUCH: as EXISTS, and each key counts as accessed (its idle time restarts).
pub(super) fn touch(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    exists_or_touch(ctx, args, true)
}

fn exists_or_touch(ctx: &mut Ctx<'_>, args: Args<'_>, touch: bool) -> CmdResult {
    let db = ctx.db_index();
    let keys = args.skip(1);
    let locked = ctx.keyspace().lock_read(keys.iter().map(|k| (db, k)));
    let n = keys
        .iter()
        .filter(|k| {
            let shard = locked.shard(db, k);
            let found = if touch { shard.get(k, ctx.now()).is_some() } else { shard.contains(k, ctx.now()) };
            ctx.hit(found);
            found
        })
        .count();
    ctx.out().int(n as i64);
    Ok(())
}

/// OBJECT ENCODING key
pub(super) fn object_encoding(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(2);
    let shard = ctx.db().read(key);
    let found = shard.peek(key, ctx.now());
    ctx.hit(found.is_some());
    match found {
        Some(e) => ctx.out().bulk(e.value.encoding().as_bytes()),
        None => ctx.out().null(),
    }
    Ok(())
}

pub(super) fn type_(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.peek(key, ctx.now());
    ctx.hit(found.is_some());
    ctx.out().simple(found.map_or("none", |e| e.value.type_name()));
    Ok(())
}

pub(super) fn keys(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let pattern = args.get(1);
    let all = pattern == b"*";
    let db = ctx.db();
    let mut found: Vec<Box<[u8]>> = Vec::new();
    for i in 0..db.shard_count() {
        let shard = db.shard(i).read();
        found
            .extend(shard.iter(ctx.now()).filter(|(k, _)| all || glob_match(pattern, k, false)).map(|(k, _)| k.into()));
    }
    ctx.out().array(found.len());
    for k in &found {
        ctx.out().bulk(k);
    }
    Ok(())
}

/// Options of SCAN and of the collection scans (SSCAN, HSCAN, ZSCAN): `[MATCH pattern]
/// [COUNT count]`, and `[TYPE type]` for SCAN only, in any order, the last of each winning.
pub(super) struct ScanOptions<'a> {
    /// `None` when every name matches (no MATCH, or MATCH *).
    pub pattern: Option<&'a [u8]>,
    pub count: usize,
    pub type_name: Option<&'a [u8]>,
}

/// Parses the scan options in `args` from position `from`, with Redis's errors (a COUNT below
/// 1 or an unknown option: syntax error).
pub(super) fn scan_options<'a>(args: Args<'a>, from: usize, with_type: bool) -> Result<ScanOptions<'a>, Error> {
    let mut o = ScanOptions { pattern: None, count: 10, type_name: None };
    let mut options = Cursor::new(args, from);
    while let Some(opt) = options.next() {
        if options.is_done() {
            return Err(error::syntax()); // every option takes a value
        }
        if is(opt, "count") {
            let n = options.next_int()?;
            if n < 1 {
                return Err(error::syntax());
            }
            o.count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if is(opt, "match") {
            let p = options.next_bytes()?;
            o.pattern = (p != b"*").then_some(p);
        } else if with_type && is(opt, "type") {
            o.type_name = Some(options.next_bytes()?);
        } else {
            return Err(error::syntax());
        }
    }
    Ok(o)
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
pub(super) fn scan(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let cursor = parse_cursor(args.get(1)).ok_or_else(|| Error::from("ERR invalid cursor"))?;
    let ScanOptions { pattern, count, type_name } = scan_options(args, 2, true)?;
    let mut found: Vec<Box<[u8]>> = Vec::new();
    let next = ctx.db().scan(ScanCursor(cursor), count, ctx.now(), |k, e| {
        let type_ok = type_name.is_none_or(|t| is(t, e.value.type_name()));
        let name_ok = pattern.is_none_or(|p| glob_match(p, k, false));
        if type_ok && name_ok {
            found.push(k.into());
        }
    });
    ctx.out().array(2);
    ctx.out().bulk(itoa::Buffer::new().format(next.0).as_bytes());
    ctx.out().array(found.len());
    for k in &found {
        ctx.out().bulk(k);
    }
    Ok(())
}

/// Reads a cursor as Redis does (C's `strtoul`): an optional sign, decimal digits, the empty
/// string meaning 0, a negative number wrapping around; no spaces, no overflow.
pub(super) fn parse_cursor(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

pub(super) fn randomkey(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    match ctx.db().random_key(ctx.now()) {
        Some(k) => ctx.out().bulk(&k),
        None => ctx.out().null(),
    }
    Ok(())
}

fn rename_generic(ctx: &mut Ctx<'_>, args: Args<'_>, nx: bool) -> CmdResult {
    let (src, dst) = (args.get(1), args.get(2));
    let db = ctx.db_index();
    let mut locked = ctx.keyspace().lock_write([(db, src), (db, dst)]);
    if !locked.shard(db, src).contains(src, ctx.now()) {
        return Err(error::NO_SUCH_KEY.into());
    }
    if src == dst {
        if nx {
            ctx.out().int(0);
        } else {
            ctx.out().ok();
        }
        return Ok(());
    }
    if nx && locked.shard(db, dst).contains(dst, ctx.now()) {
        ctx.out().int(0);
        return Ok(());
    }
    let entry = locked.shard(db, src).remove(src, ctx.now()).ok_or_else(|| Error::from(error::NO_SUCH_KEY))?;
    let expire = entry.expire_at();
    locked.shard(db, dst).insert(dst, entry.value, expire, ctx.now());
    ctx.notify(notify::GENERIC, "rename_from", src);
    ctx.notify(notify::GENERIC, "rename_to", dst);
    drop(locked);
    if nx {
        ctx.out().int(1);
    } else {
        ctx.out().ok();
    }
    Ok(())
}

pub(super) fn rename(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    rename_generic(ctx, args, false)
}

pub(super) fn renamenx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    rename_generic(ctx, args, true)
}

/// COPY source destination [DB destination-db] [REPLACE]
pub(super) fn copy(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (src, dst) = (args.get(1), args.get(2));
    let src_db = ctx.db_index();
    let (mut dst_db, mut replace) = (src_db, false);
    let mut options = Cursor::new(args, 3);
    while let Some(opt) = options.next() {
        if is(opt, "replace") {
            replace = true;
        } else if is(opt, "db") && ctx.in_interactive() {
            // The private copy of an interactive transaction holds the keys of the databases it
            // touched, one key at a time; a whole other database is out of its reach.
            return Err("ERR COPY to another database is not allowed inside BEGIN".into());
        } else if is(opt, "db") && options.remaining() >= 1 {
            let n = int_arg_in(options.next_bytes()?, i64::from(i32::MIN)..=i64::from(i32::MAX))?;
            dst_db = usize::try_from(n)
                .ok()
                .filter(|&n| n < ctx.server().keyspace().db_count())
                .ok_or_else(|| Error::from(error::DB_RANGE))?;
        } else {
            return Err(error::syntax());
        }
    }
    if src_db == dst_db && src == dst {
        return Err("ERR source and destination objects are the same".into());
    }
    let mut locked = ctx.keyspace().lock_write([(src_db, src), (dst_db, dst)]);
    let found = locked.shard(src_db, src).get(src, ctx.now()).map(|e| e.to_entry());
    ctx.hit(found.is_some());
    let Some(entry) = found else {
        ctx.out().int(0);
        return Ok(());
    };
    let target = locked.shard(dst_db, dst);
    if target.contains(dst, ctx.now()) && !replace {
        ctx.out().int(0);
        return Ok(());
    }
    let expire = entry.expire_at();
    target.insert(dst, entry.value, expire, ctx.now());
    ctx.notify_in(dst_db, notify::GENERIC, "copy_to", dst);
    drop(locked);
    ctx.out().int(1);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Expiry

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT with NX | XX | GT | LT: `seconds` says the unit,
/// `absolute` whether the time is relative to now.
fn expire_generic(ctx: &mut Ctx<'_>, args: Args<'_>, seconds: bool, absolute: bool) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in args.iter().skip(3) {
        if is(opt, "nx") {
            nx = true;
        } else if is(opt, "xx") {
            xx = true;
        } else if is(opt, "gt") {
            gt = true;
        } else if is(opt, "lt") {
            lt = true;
        } else {
            let mut msg = b"ERR Unsupported option ".to_vec();
            msg.extend_from_slice(error::c_str(opt));
            return Err(Error::bytes(msg));
        }
    }
    if nx && (xx || gt || lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if gt && lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    let name = match (seconds, absolute) {
        (true, false) => "expire",
        (false, false) => "pexpire",
        (true, true) => "expireat",
        (false, true) => "pexpireat",
    };
    let mut when = int_arg(args.get(2))?;
    if seconds {
        when = when.checked_mul(1000).ok_or_else(|| invalid_expire(name))?;
    }
    if !absolute {
        when = when.checked_add(ctx.now() as i64).ok_or_else(|| invalid_expire(name))?;
    }
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let Some(entry) = shard.get(key, ctx.now()) else {
        ctx.out().int(0);
        return Ok(());
    };
    let current = entry.expire_at().map(|t| t as i64);
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        // No expiry counts as an infinite one: GT never beats it, LT always does.
        || (gt && current.is_none_or(|c| when <= c))
        || (lt && current.is_some_and(|c| when >= c));
    if refused {
        ctx.out().int(0);
        return Ok(());
    }
    // Redis's order: `del` before the reply, the reply before `expire`.
    if when <= ctx.now() as i64 {
        shard.remove(key, ctx.now());
        ctx.propagate(&[b"DEL", key]);
        ctx.notify(notify::GENERIC, "del", key);
        ctx.out().int(1);
    } else {
        shard.set_expire(key, Some(when as u64), ctx.now());
        // Relative times are logged as absolute ones.
        ctx.propagate(&[b"PEXPIREAT", key, itoa::Buffer::new().format(when).as_bytes()]);
        ctx.out().int(1);
        ctx.notify(notify::GENERIC, "expire", key);
    }
    Ok(())
}

pub(super) fn expire(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    expire_generic(ctx, args, true, false)
}

pub(super) fn pexpire(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    expire_generic(ctx, args, false, false)
}

pub(super) fn expireat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    expire_generic(ctx, args, true, true)
}

pub(super) fn pexpireat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    expire_generic(ctx, args, false, true)
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 without key, -1 without expiry.
fn ttl_generic(ctx: &mut Ctx<'_>, args: Args<'_>, ms: bool, absolute: bool) -> CmdResult {
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.peek(key, ctx.now());
    ctx.hit(found.is_some());
    let reply = match found {
        None => -2,
        Some(e) => match e.expire_at() {
            None => -1,
            Some(at) => {
                let t = if absolute { at as i64 } else { (at as i64 - ctx.now() as i64).max(0) };
                // Rounded in unsigned arithmetic: `t + 500` overflows an i64 for a time near
                // i64::MAX (PEXPIREAT k 9223372036854775807), where Redis's build answers
                // 9223372036854776.
                if ms { t } else { ((t as u64 + 500) / 1000) as i64 }
            }
        },
    };
    ctx.out().int(reply);
    Ok(())
}

pub(super) fn ttl(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ttl_generic(ctx, args, false, false)
}

pub(super) fn pttl(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ttl_generic(ctx, args, true, false)
}

pub(super) fn expiretime(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ttl_generic(ctx, args, false, true)
}

pub(super) fn pexpiretime(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    ttl_generic(ctx, args, true, true)
}

pub(super) fn persist(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let had_ttl = shard.get(key, ctx.now()).is_some_and(|e| e.expire_at().is_some());
    if had_ttl {
        shard.set_expire(key, None, ctx.now());
        ctx.notify(notify::GENERIC, "persist", key);
    }
    ctx.out().int(i64::from(had_ttl));
    Ok(())
}

/// OBJECT REFCOUNT key: 1, or `i32::MAX` for the integers 0..9999 that Redis shares (a string
/// Redis would hold as a shared integer object).
pub(super) fn object_refcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(2);
    let shard = ctx.db().read(key);
    let found = shard.peek(key, ctx.now());
    ctx.hit(found.is_some());
    match found {
        Some(e) => {
            // Redis stops sharing integers while a limit is set under a policy that tracks
            // each key's use (MAXMEMORY_FLAG_NO_SHARED_INTEGERS).
            let memory = &ctx.server().settings().memory;
            let tracked = memory.maxmemory() != 0
                && matches!(
                    memory.policy(),
                    Policy::AllKeysLru
                        | Policy::VolatileLru
                        | Policy::AllKeysLfu
                        | Policy::VolatileLfu
                        | Policy::AllKeysS3Fifo
                        | Policy::AllKeysWTinyLfu
                );
            let shared = !tracked && matches!(&*e.value, magpie_store::Value::Int(n) if (0..10_000).contains(n));
            ctx.out().int(if shared { i64::from(i32::MAX) } else { 1 });
        }
        None => ctx.out().null(),
    }
    Ok(())
}

/// MOVE key db
pub(super) fn move_(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let n = int_arg_in(args.get(2), i64::from(i32::MIN)..=i64::from(i32::MAX))?;
    let dst = usize::try_from(n)
        .ok()
        .filter(|&n| n < ctx.server().keyspace().db_count())
        .ok_or_else(|| Error::from(error::DB_RANGE))?;
    let src = ctx.db_index();
    if src == dst {
        return Err("ERR source and destination objects are the same".into());
    }
    if ctx.in_interactive() {
        // As COPY ... DB: another whole database is out of a private copy's reach.
        return Err("ERR MOVE is not allowed inside BEGIN".into());
    }
    let mut locked = ctx.keyspace().lock_write([(src, key), (dst, key)]);
    let now = ctx.now();
    if !locked.shard(src, key).contains(key, now) || locked.shard(dst, key).contains(key, now) {
        drop(locked);
        ctx.out().int(0);
        return Ok(());
    }
    let Some(entry) = locked.shard(src, key).remove(key, now) else {
        return Err(error::NO_SUCH_KEY.into());
    };
    let expire = entry.expire_at();
    locked.shard(dst, key).insert(key, entry.value, expire, now);
    drop(locked);
    ctx.notify_in(src, notify::GENERIC, "move_from", key);
    ctx.notify_in(dst, notify::GENERIC, "move_to", key);
    ctx.out().int(1);
    Ok(())
}

/// SWAPDB index1 index2: the two databases exchange their keys (atomically; clients blocked on
/// keys that now exist are served, and WATCHes of keys on either side are broken, as in Redis).
pub(super) fn swapdb(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let db_arg = |arg: &[u8], msg: &'static str| {
        crate::core::error::int_arg(arg).ok().filter(|n| i32::try_from(*n).is_ok()).ok_or_else(|| Error::from(msg))
    };
    let a = db_arg(args.get(1), "ERR invalid first DB index")?;
    let b = db_arg(args.get(2), "ERR invalid second DB index")?;
    let count = ctx.keyspace().db_count();
    let index = |n: i64| usize::try_from(n).ok().filter(|&n| n < count);
    let (Some(a), Some(b)) = (index(a), index(b)) else {
        return Err(error::DB_RANGE.into());
    };
    ctx.keyspace().swap_dbs(a, b);
    ctx.out().ok();
    Ok(())
}

/// OBJECT FREQ key: the key's LFU counter (after decay), under an LFU policy; under
/// allkeys-wtinylfu its W-TinyLFU frequency (0-255: its count in the shard's sketch when it
/// was created, plus one per read, halved each time the sketch ages).
pub(super) fn object_freq(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    object_use(ctx, args, |ctx, shard, e| match ctx.server().settings().memory.policy().tracking() {
        Tracking::Lfu => Ok(i64::from(e.usage().lfu_counter(ctx.now()))),
        Tracking::WTinyLfu => Ok(i64::from(shard.wt_freq(&e))),
        Tracking::Lru | Tracking::S3Fifo => Err(Error::from(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when \
             switching between policies at runtime LRU and LFU data will take some time to adjust.",
        )),
    })
}

/// OBJECT IDLETIME key: seconds since the key was last accessed, except under an LFU policy
/// (allkeys-wtinylfu counts as one: its frequency takes the bits of the access time).
pub(super) fn object_idletime(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    object_use(ctx, args, |ctx, _, e| match ctx.server().settings().memory.policy().tracking() {
        Tracking::Lfu | Tracking::WTinyLfu => Err(Error::from(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching \
             between policies at runtime LRU and LFU data will take some time to adjust.",
        )),
        Tracking::Lru | Tracking::S3Fifo => Ok((e.usage().idle_ms(ctx.now()) / 1000) as i64),
    })
}

/// OBJECT FREQ/IDLETIME: the key is looked up without counting as an access; a missing key is
/// a null reply before any policy error, as in Redis.
fn object_use(
    ctx: &mut Ctx<'_>,
    args: Args<'_>,
    f: impl FnOnce(&Ctx<'_>, &magpie_store::Shard, magpie_store::EntryRef<'_>) -> Result<i64, Error>,
) -> CmdResult {
    let key = args.get(2);
    let shard = ctx.db().read(key);
    let found = shard.peek(key, ctx.now());
    ctx.hit(found.is_some());
    let reply = match found {
        Some(e) => f(ctx, &shard, e)?,
        None => {
            drop(shard);
            ctx.out().null();
            return Ok(());
        }
    };
    drop(shard);
    ctx.out().int(reply);
    Ok(())
}
