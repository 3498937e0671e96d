//! Strings and counters: GET/SET and their family, ranges, INCR and friends.

use magpie_protocol::{Args, Reply, parse_i64};
use magpie_store::{Slot, Value};

use crate::core::args::Cursor;
use crate::core::error::{self, CmdResult, Error, int_arg, invalid_expire, is, wrongtype};
use crate::core::events as notify;
use crate::core::float;
use crate::model::Ctx;

/// Writes a string value as a bulk reply.
pub(super) fn bulk_value(out: &mut Reply, value: &Value) -> CmdResult {
    match value {
        Value::Str(s) => out.bulk(s),
        Value::Int(n) => out.bulk_int(*n),
        _ => return Err(wrongtype()),
    }
    Ok(())
}

/// Checks that a value is a string (WRONGTYPE otherwise).
fn check_string(value: &Value) -> CmdResult {
    match value {
        Value::Str(_) | Value::Int(_) => Ok(()),
        _ => Err(wrongtype()),
    }
}

/// Length of a string value in bytes (0 for other types, which callers have ruled out).
fn str_len(value: &Value) -> usize {
    match value {
        Value::Str(s) => s.len(),
        Value::Int(n) => itoa::Buffer::new().format(*n).len(),
        _ => 0,
    }
}

pub(super) fn get(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    match found {
        Some(e) => bulk_value(ctx.out(), &e.value),
        None => {
            ctx.out().null();
            Ok(())
        }
    }
}

/// How an expiry argument is to be read.
#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// Options of SET and GETEX, parsed with Redis's rules for which may go together.
#[derive(Default)]
struct StrOptions<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<(Unit, &'a [u8])>,
}

fn parse_options<'a>(args: Args<'a>, from: usize, for_set: bool) -> Result<StrOptions<'a>, Error> {
    let mut o = StrOptions::default();
    let mut c = Cursor::new(args, from);
    while let Some(opt) = c.next() {
        let unit = |o: &StrOptions<'_>| o.expire.map(|(u, _)| u);
        let other_expire = |o: &StrOptions<'_>, me: Unit| unit(o).is_some_and(|u| u != me);
        let expire_unit = [("ex", Unit::Ex), ("px", Unit::Px), ("exat", Unit::ExAt), ("pxat", Unit::PxAt)]
            .into_iter()
            .find(|(name, _)| is(opt, name))
            .map(|(_, u)| u);
        if for_set && is(opt, "nx") && !o.xx {
            o.nx = true;
        } else if for_set && is(opt, "xx") && !o.nx {
            o.xx = true;
        } else if for_set && is(opt, "get") {
            o.get = true;
        } else if for_set && is(opt, "keepttl") && !o.persist && o.expire.is_none() {
            o.keepttl = true;
        } else if !for_set && is(opt, "persist") && o.expire.is_none() && !o.keepttl {
            o.persist = true;
        } else if let (Some(u), Some(n)) = (expire_unit, c.peek()) {
            if o.keepttl || o.persist || other_expire(&o, u) {
                return Err(error::syntax());
            }
            o.expire = Some((u, n));
            c.next();
        } else {
            return Err(error::syntax());
        }
    }
    Ok(o)
}

/// Turns an expiry argument into an absolute time in ms, with Redis's checks and errors.
fn expire_at(unit: Unit, arg: &[u8], now: u64, command: &str) -> Result<u64, Error> {
    let n = int_arg(arg)?;
    let seconds = matches!(unit, Unit::Ex | Unit::ExAt);
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        return Err(invalid_expire(command));
    }
    let mut ms = if seconds { n * 1000 } else { n };
    if matches!(unit, Unit::Ex | Unit::Px) {
        ms = ms.checked_add(now as i64).ok_or_else(|| invalid_expire(command))?;
    }
    Ok(ms as u64)
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ts-ms | KEEPTTL]
pub(super) fn set(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let o = parse_options(args, 3, true)?;
    let expire = o.expire.map(|(u, a)| expire_at(u, a, ctx.now(), "set")).transpose()?;
    let (key, value) = (args.get(1), args.get(2));
    let mut shard = ctx.db().write(key);
    let slot = shard.slot(key, ctx.now());
    if o.get {
        ctx.hit(matches!(slot, Slot::Live(_)));
    }
    match slot {
        Slot::Live(mut live) => {
            if o.get {
                check_string(&live.entry().value)?;
            }
            if o.nx {
                if o.get {
                    bulk_value(ctx.out(), &live.entry().value)?;
                } else {
                    ctx.out().null();
                }
                return Ok(());
            }
            let expire = if o.keepttl { live.entry().expire_at() } else { expire };
            if o.get {
                let old = live.replace_string(value, expire);
                bulk_value(ctx.out(), &old.value)?;
            } else {
                live.assign_string(value, expire);
            }
        }
        Slot::Empty(empty) => {
            if o.xx {
                ctx.out().null();
                return Ok(());
            }
            empty.insert_string(value, expire);
            if o.get {
                ctx.out().null();
            }
        }
    }
    // As in Redis: the events, then the OK (GET's old value came first).
    ctx.notify(notify::STRING, "set", key);
    if expire.is_some() {
        ctx.notify(notify::GENERIC, "expire", key);
    }
    if !o.get {
        ctx.out().ok();
    }
    if let Some(at) = expire {
        // The log records the absolute time, so a replay expires the key when it did.
        log_set_pxat(ctx, key, value, at);
    }
    Ok(())
}

/// Logs `SET key value PXAT at`.
fn log_set_pxat(ctx: &mut Ctx<'_>, key: &[u8], value: &[u8], at: u64) {
    ctx.propagate(&[b"SET", key, value, b"PXAT", itoa::Buffer::new().format(at).as_bytes()]);
}

pub(super) fn setnx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let created = match shard.slot(key, ctx.now()) {
        Slot::Live(_) => false,
        Slot::Empty(empty) => {
            empty.insert_string(args.get(2), None);
            true
        }
    };
    if created {
        ctx.notify(notify::STRING, "set", key);
    }
    ctx.out().int(i64::from(created));
    Ok(())
}

fn set_with_expiry(ctx: &mut Ctx<'_>, args: Args<'_>, unit: Unit, command: &str) -> CmdResult {
    let at = expire_at(unit, args.get(2), ctx.now(), command)?;
    let key = args.get(1);
    ctx.db().write(key).insert_string(key, args.get(3), Some(at), ctx.now());
    ctx.notify(notify::STRING, "set", key);
    ctx.notify(notify::GENERIC, "expire", key);
    log_set_pxat(ctx, key, args.get(3), at);
    ctx.out().ok();
    Ok(())
}

pub(super) fn setex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    set_with_expiry(ctx, args, Unit::Ex, "setex")
}

pub(super) fn psetex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    set_with_expiry(ctx, args, Unit::Px, "psetex")
}

pub(super) fn getset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    if let Some(e) = found {
        check_string(&e.value)?;
    }
    match shard.insert_string(key, args.get(2), None, ctx.now()) {
        Some(old) => bulk_value(ctx.out(), &old.value)?,
        None => ctx.out().null(),
    }
    ctx.notify(notify::STRING, "set", key);
    Ok(())
}

pub(super) fn getdel(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    match found {
        None => ctx.out().null(),
        Some(e) => {
            check_string(&e.value)?;
            if let Some(old) = shard.remove(key, ctx.now()) {
                bulk_value(ctx.out(), &old.value)?;
                ctx.notify(notify::GENERIC, "del", key);
            }
        }
    }
    Ok(())
}

/// GETEX key [EX s | PX ms | EXAT ts | PXAT ts-ms | PERSIST]
pub(super) fn getex(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let o = parse_options(args, 2, false)?;
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let Some(e) = found else {
        ctx.out().null();
        return Ok(());
    };
    // As Redis: a missing key or a wrong type is reported before a bad expire time.
    check_string(&e.value)?;
    let expire = o.expire.map(|(u, a)| expire_at(u, a, ctx.now(), "getex")).transpose()?;
    bulk_value(ctx.out(), &e.value)?;
    let had_ttl = e.expire_at().is_some();
    match expire {
        // An absolute time already past deletes the key.
        Some(at) if at <= ctx.now() => {
            shard.remove(key, ctx.now());
            ctx.propagate(&[b"DEL", key]);
            ctx.notify(notify::GENERIC, "del", key);
        }
        Some(at) => {
            shard.set_expire(key, Some(at), ctx.now());
            ctx.propagate(&[b"PEXPIREAT", key, itoa::Buffer::new().format(at).as_bytes()]);
            ctx.notify(notify::GENERIC, "expire", key);
        }
        None if o.persist => {
            shard.set_expire(key, None, ctx.now());
            ctx.propagate(&[b"PERSIST", key]);
            if had_ttl {
                ctx.notify(notify::GENERIC, "persist", key);
            }
        }
        None => {}
    }
    Ok(())
}

pub(super) fn mget(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let db = ctx.db_index();
    let keys = args.skip(1);
    // One consistent view of every key, even across shards (an MSET is all or nothing).
    let locked = ctx.keyspace().lock_read(keys.iter().map(|k| (db, k)));
    ctx.out().array(keys.len());
    for key in keys.iter() {
        let found = locked.shard(db, key).get(key, ctx.now());
        ctx.hit(found.is_some());
        match found {
            Some(e) => bulk_value(ctx.out(), &e.value).unwrap_or_else(|_| ctx.out().null()),
            None => ctx.out().null(),
        }
    }
    Ok(())
}

fn mset_generic(ctx: &mut Ctx<'_>, args: Args<'_>, nx: bool) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(crate::model::command::arity_error(if nx { "msetnx" } else { "mset" }));
    }
    let db = ctx.db_index();
    let pairs = args.skip(1);
    let keys = || pairs.iter().step_by(2);
    let mut locked = ctx.keyspace().lock_write(keys().map(|k| (db, k)));
    if nx && keys().any(|k| locked.shard(db, k).contains(k, ctx.now())) {
        ctx.out().int(0);
        return Ok(());
    }
    let mut it = pairs.iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        locked.shard(db, k).insert_string(k, v, None, ctx.now());
        ctx.notify(notify::STRING, "set", k);
    }
    if nx {
        ctx.out().int(1);
    } else {
        ctx.out().ok();
    }
    Ok(())
}

pub(super) fn mset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    mset_generic(ctx, args, false)
}

pub(super) fn msetnx(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    mset_generic(ctx, args, true)
}

/// A string may not grow past `proto-max-bulk-len` (`max`).
fn check_length(len: usize, max: usize) -> CmdResult {
    if len > max {
        return Err(error::STRING_TOO_LONG.into());
    }
    Ok(())
}

pub(super) fn append(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let (key, tail) = (args.get(1), args.get(2));
    let max = ctx.server().settings().proto_max_bulk_len();
    let mut shard = ctx.db().write(key);
    let len = match shard.slot(key, ctx.now()) {
        Slot::Live(mut live) => {
            let value = live.value_mut();
            check_string(value)?;
            check_length(str_len(value) + tail.len(), max)?;
            let s = value.str_mut().ok_or_else(wrongtype)?;
            s.extend_from_slice(tail);
            s.len()
        }
        Slot::Empty(empty) => {
            empty.insert_string(tail, None);
            tail.len()
        }
    };
    ctx.notify(notify::STRING, "append", key);
    ctx.out().int(len as i64);
    Ok(())
}

pub(super) fn strlen(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let len = match found {
        Some(e) => {
            check_string(&e.value)?;
            str_len(&e.value)
        }
        None => 0,
    };
    ctx.out().int(len as i64);
    Ok(())
}

pub(super) fn getrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut start = int_arg(args.get(2))?;
    let mut end = int_arg(args.get(3))?;
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let Some(e) = found else {
        ctx.out().bulk(b"");
        return Ok(());
    };
    let mut buf = itoa::Buffer::new();
    let s = e.value.str_bytes(&mut buf).ok_or_else(wrongtype)?;
    let len = s.len() as i64;
    if start < 0 && end < 0 && start > end {
        ctx.out().bulk(b"");
        return Ok(());
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0).min(len - 1);
    if start > end || len == 0 {
        ctx.out().bulk(b"");
    } else {
        ctx.out().bulk(&s[start as usize..=end as usize]);
    }
    Ok(())
}

pub(super) fn setrange(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let offset = int_arg(args.get(2))?;
    if offset < 0 {
        return Err("ERR offset is out of range".into());
    }
    let offset = usize::try_from(offset).map_err(|_| Error::from(error::STRING_TOO_LONG))?;
    let (key, value) = (args.get(1), args.get(3));
    let end = offset.checked_add(value.len()).ok_or_else(|| Error::from(error::STRING_TOO_LONG))?;
    let max = ctx.server().settings().proto_max_bulk_len();
    let mut shard = ctx.db().write(key);
    let len = match shard.slot(key, ctx.now()) {
        Slot::Live(mut live) => {
            check_string(&live.entry().value)?;
            if value.is_empty() {
                str_len(&live.entry().value)
            } else {
                check_length(end, max)?;
                let s = live.value_mut().str_mut().ok_or_else(wrongtype)?;
                if s.len() < end {
                    s.resize(end, 0);
                }
                s[offset..end].copy_from_slice(value);
                s.len()
            }
        }
        Slot::Empty(_) if value.is_empty() => 0,
        Slot::Empty(empty) => {
            check_length(end, max)?;
            let mut s = vec![0u8; end];
            s[offset..].copy_from_slice(value);
            empty.insert(Value::Str(s.into()), None);
            end
        }
    };
    if !value.is_empty() {
        ctx.notify(notify::STRING, "setrange", key);
    }
    ctx.out().int(len as i64);
    Ok(())
}

/// The INCR family: adds `delta` to the integer in `key` (0 if missing).
fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], delta: i64) -> CmdResult {
    let mut shard = ctx.db().write(key);
    let new = match shard.slot(key, ctx.now()) {
        Slot::Live(mut live) => {
            let value = live.value_mut();
            let current = match value {
                Value::Int(n) => *n,
                Value::Str(s) => parse_i64(s).ok_or_else(|| Error::from(error::NOT_INTEGER))?,
                _ => return Err(wrongtype()),
            };
            let new = current.checked_add(delta).ok_or_else(|| Error::from(error::OVERFLOW))?;
            *value = Value::Int(new);
            new
        }
        Slot::Empty(empty) => {
            empty.insert(Value::Int(delta), None);
            delta
        }
    };
    ctx.notify(notify::STRING, "incrby", key);
    ctx.out().int(new);
    Ok(())
}

pub(super) fn incr(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    incr_by(ctx, args.get(1), 1)
}

pub(super) fn decr(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    incr_by(ctx, args.get(1), -1)
}

pub(super) fn incrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let delta = int_arg(args.get(2))?;
    incr_by(ctx, args.get(1), delta)
}

pub(super) fn decrby(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let delta = int_arg(args.get(2))?;
    if delta == i64::MIN {
        return Err("ERR decrement would overflow".into());
    }
    incr_by(ctx, args.get(1), -delta)
}

pub(super) fn incrbyfloat(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let mut shard = ctx.db().write(key);
    let mut buf = itoa::Buffer::new();
    let current = match shard.get(key, ctx.now()) {
        Some(e) => Some(e.value.str_bytes(&mut buf).ok_or_else(wrongtype)?),
        None => None,
    };
    let exists = current.is_some();
    let new = float::add(current, args.get(2))?;
    // Kept as a string even when it reads as an integer: Redis stores the result as text, so
    // OBJECT ENCODING says embstr (as for "2"), not int.
    if exists {
        shard.insert_keep_ttl(key, Value::Str(new.as_slice().into()), ctx.now());
    } else {
        shard.insert(key, Value::Str(new.as_slice().into()), None, ctx.now());
    }
    ctx.notify(notify::STRING, "incrbyfloat", key);
    ctx.out().bulk(&new);
    // The log records the result, not the arithmetic (as Redis).
    ctx.propagate(&[b"SET", key, &new, b"KEEPTTL"]);
    Ok(())
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the longest common
/// subsequence, by Redis's dynamic programming table (and its limit on the table's size).
pub(super) fn lcs(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let db = ctx.db_index();
    let (ka, kb) = (args.get(1), args.get(2));
    let (a, b) = {
        let locked = ctx.keyspace().lock_read([(db, ka), (db, kb)]);
        let read = |key: &[u8]| -> Result<Vec<u8>, Error> {
            let found = locked.shard(db, key).get(key, ctx.now());
            ctx.hit(found.is_some());
            let mut buf = itoa::Buffer::new();
            match found {
                None => Ok(Vec::new()),
                Some(e) => e
                    .value
                    .str_bytes(&mut buf)
                    .map(<[u8]>::to_vec)
                    .ok_or_else(|| "ERR The specified keys must contain string values".into()),
            }
        };
        let a = read(ka);
        let b = read(kb);
        (a?, b?)
    };
    let (mut len_only, mut idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut c = Cursor::new(args, 3);
    while let Some(opt) = c.next() {
        if is(opt, "idx") {
            idx = true;
        } else if is(opt, "len") {
            len_only = true;
        } else if is(opt, "withmatchlen") {
            with_len = true;
        } else if is(opt, "minmatchlen") && c.remaining() >= 1 {
            min_len = int_arg(c.next_bytes()?)?.max(0);
        } else {
            return Err(error::syntax());
        }
    }
    if len_only && idx {
        return Err("ERR If you want both the length and indexes, please just use IDX.".into());
    }
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    if cells.saturating_mul(4) > ctx.server().settings().proto_max_bulk_len() as u64 {
        return Err("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len".into());
    }
    let w = b.len() + 1;
    let mut t = vec![0u32; cells as usize];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i * w + j] = if a[i - 1] == b[j - 1] {
                t[(i - 1) * w + j - 1] + 1
            } else {
                t[(i - 1) * w + j].max(t[i * w + j - 1])
            };
        }
    }
    let total = t[a.len() * w + b.len()];
    if len_only {
        ctx.out().int(i64::from(total));
        return Ok(());
    }
    // Walk back from the end, collecting the subsequence and (for IDX) its ranges.
    let mut result = vec![0u8; total as usize];
    let mut ranges: Vec<[usize; 4]> = Vec::new();
    let (mut i, mut j, mut k) = (a.len(), b.len(), total as usize);
    let mut range: Option<[usize; 4]> = None; // a_start, a_end, b_start, b_end
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[k - 1] = a[i - 1];
            match &mut range {
                None => range = Some([i - 1, i - 1, j - 1, j - 1]),
                Some(r) if r[0] == i && r[2] == j => {
                    r[0] -= 1;
                    r[2] -= 1;
                }
                Some(_) => emit = true,
            }
            if range.is_some_and(|r| r[0] == 0 || r[2] == 0) {
                emit = true;
            }
            k -= 1;
            i -= 1;
            j -= 1;
        } else {
            if t[(i - 1) * w + j] > t[i * w + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if range.is_some() {
                emit = true;
            }
        }
        if emit && let Some(r) = range.take() {
            let len = r[1] - r[0] + 1;
            if min_len == 0 || len as i64 >= min_len {
                ranges.push(r);
            }
        }
    }
    if !idx {
        ctx.out().bulk(&result);
        return Ok(());
    }
    let out = ctx.out();
    out.map(2);
    out.bulk(b"matches");
    out.array(ranges.len());
    for r in &ranges {
        out.array(2 + usize::from(with_len));
        out.array(2);
        out.int(r[0] as i64);
        out.int(r[1] as i64);
        out.array(2);
        out.int(r[2] as i64);
        out.int(r[3] as i64);
        if with_len {
            out.int((r[1] - r[0] + 1) as i64);
        }
    }
    out.bulk(b"len");
    out.int(i64::from(total));
    Ok(())
}
