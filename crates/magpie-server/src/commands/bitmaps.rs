//! Bitmaps on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD and
//! BITFIELD_RO, with Redis 7.0's ranges (BYTE | BIT), limits and errors (`bitops.c`). The bit
//! arithmetic is `magpie_store::bits`.

use magpie_protocol::{Args, parse_i64};
use magpie_store::bits::{self, BitOp, Overflow};
use magpie_store::{Slot, Value, ValueRef};

use crate::core::error::{self, CmdResult, Error, int_arg, is, wrongtype};
use crate::core::events as notify;
use crate::model::{Command, Ctx, KeySpec};
use crate::{flags, key_flags};

const GROUP: &str = "bitmap";

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("setbit", 4, flags![WRITE, DENYOOM], GROUP, "2.2.0", "Sets or clears the bit at offset in the string value stored at key",
        "key offset:integer value:integer", setbit)
        .keys(&[KeySpec::one(1, key_flags![RW, ACCESS, UPDATE])]),
    Command::new("getbit", 3, flags![READONLY, FAST], GROUP, "2.2.0", "Returns the bit value at offset in the string value stored at key",
        "key offset:integer", getbit)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("bitcount", -2, flags![READONLY], GROUP, "2.6.0", "Count set bits in a string",
        "key [start:integer end:integer [BYTE|BIT]]", bitcount)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("bitpos", -3, flags![READONLY], GROUP, "2.8.7", "Find first bit set or clear in a string",
        "key bit:integer [start:integer [end:integer [BYTE|BIT]]]", bitpos)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
    Command::new("bitop", -4, flags![WRITE, DENYOOM], GROUP, "2.6.0", "Perform bitwise operations between strings",
        "operation destkey key [key ...]", bitop)
        .keys(&[KeySpec::one(2, key_flags![OW, UPDATE]), KeySpec::range(3, -1, 1, key_flags![RO, ACCESS])]),
    Command::new("bitfield", -2, flags![WRITE, DENYOOM], GROUP, "3.2.0", "Perform arbitrary bitfield integer operations on strings",
        "key [GET encoding offset:integer|[OVERFLOW WRAP|SAT|FAIL] (SET encoding offset:integer value:integer|INCRBY encoding offset:integer increment:integer)] ...", bitfield)
        .keys(&[KeySpec::one(1, key_flags![RW, UPDATE, ACCESS, VARIABLE_FLAGS]).notes("This command allows both access and modification of the key")]),
    Command::new("bitfield_ro", -2, flags![READONLY, FAST], GROUP, "6.0.0", "Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD",
        "key [GET encoding offset:integer] ...", bitfield_ro)
        .keys(&[KeySpec::one(1, key_flags![RO, ACCESS])]),
];

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";

/// A bit offset argument (`getBitOffsetFromArgument`): with `hash_bits`, `#n` means `n` fields
/// of that many bits. At most `proto-max-bulk-len` bytes can be addressed.
fn bit_offset(ctx: &Ctx<'_>, arg: &[u8], hash_bits: u32) -> Result<u64, Error> {
    let (digits, mul) = match arg.split_first() {
        Some((b'#', rest)) if hash_bits > 0 => (rest, i64::from(hash_bits)),
        _ => (arg, 1),
    };
    let n = parse_i64(digits).ok_or_else(|| Error::from(BAD_OFFSET))?.wrapping_mul(mul);
    let max = ctx.server().settings().proto_max_bulk_len() as u64;
    if n < 0 || (n as u64 >> 3) >= max {
        return Err(BAD_OFFSET.into());
    }
    Ok(n as u64)
}

/// The bytes of a string value (an `Int`'s decimal digits in `buf`), WRONGTYPE for others.
fn string_bytes<'a>(value: impl Into<ValueRef<'a>>, buf: &'a mut itoa::Buffer) -> Result<&'a [u8], Error> {
    value.into().str_bytes(buf).ok_or_else(wrongtype)
}

fn is_string(value: &Value) -> bool {
    matches!(value, Value::Str(_) | Value::Int(_))
}

/// SETBIT key offset value
fn setbit(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    const BAD_BIT: &str = "ERR bit is not an integer or out of range";
    let offset = bit_offset(ctx, args.get(2), 0)?;
    let on = parse_i64(args.get(3)).ok_or_else(|| Error::from(BAD_BIT))?;
    if on & !1 != 0 {
        return Err(BAD_BIT.into());
    }
    let key = args.get(1);
    let byte = (offset >> 3) as usize;
    let mask = 1u8 << (7 - (offset & 7));
    let mut shard = ctx.db().write(key);
    let (old, changed) = match shard.slot(key, ctx.now()) {
        Slot::Live(mut live) => {
            let mut buf = itoa::Buffer::new();
            let current = string_bytes(live.entry().value, &mut buf)?;
            let old = current.get(byte).is_some_and(|b| b & mask != 0);
            let grows = current.len() <= byte;
            // Redis changes (and logs) nothing when the bit already has that value.
            if grows || old != (on == 1) {
                let s = live.value_mut().str_mut().ok_or_else(wrongtype)?;
                if grows {
                    s.resize(byte + 1, 0);
                }
                if on == 1 {
                    s[byte] |= mask;
                } else {
                    s[byte] &= !mask;
                }
            }
            (old, grows || old != (on == 1))
        }
        Slot::Empty(empty) => {
            let mut s = vec![0u8; byte + 1];
            if on == 1 {
                s[byte] |= mask;
            }
            empty.insert(Value::Str(s.into()), None);
            (false, true)
        }
    };
    drop(shard);
    if changed {
        ctx.notify(notify::STRING, "setbit", key);
    }
    ctx.out().int(i64::from(old));
    Ok(())
}

/// GETBIT key offset
fn getbit(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let offset = bit_offset(ctx, args.get(2), 0)?;
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let bit = match found {
        None => false,
        Some(e) => {
            let mut buf = itoa::Buffer::new();
            let s = string_bytes(e.value, &mut buf)?;
            usize::try_from(offset >> 3).ok().and_then(|i| s.get(i)).is_some_and(|b| b & (1 << (7 - (offset & 7))) != 0)
        }
    };
    ctx.out().int(i64::from(bit));
    Ok(())
}

/// A range of BITCOUNT or BITPOS turned into bytes `start..=end` (inclusive, possibly empty
/// when start > end) and, for a BIT range, masks of the bits outside it in its first and last
/// byte (Redis's `first_byte_neg_mask` / `last_byte_neg_mask`).
struct Range {
    start: i64,
    end: i64,
    first_mask: u8,
    last_mask: u8,
}

fn resolve(mut start: i64, mut end: i64, len: usize, bit_unit: bool) -> Range {
    let mut total = len as i64;
    if bit_unit {
        total <<= 3;
    }
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= total {
        end = total - 1;
    }
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    if bit_unit && start <= end {
        first_mask = !((1u16 << (8 - (start & 7))) - 1) as u8;
        last_mask = ((1u16 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    Range { start, end, first_mask, last_mask }
}

/// BYTE or BIT (a syntax error otherwise).
fn unit_arg(arg: &[u8]) -> Result<bool, Error> {
    if is(arg, "bit") {
        Ok(true)
    } else if is(arg, "byte") {
        Ok(false)
    } else {
        Err(error::syntax())
    }
}

/// BITCOUNT key [start end [BYTE | BIT]]
fn bitcount(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let Some(e) = found else {
        ctx.out().int(0);
        return Ok(());
    };
    let mut buf = itoa::Buffer::new();
    let p = string_bytes(e.value, &mut buf)?;
    let range = match args.len() {
        4 | 5 => {
            let start = int_arg(args.get(2))?;
            let end = int_arg(args.get(3))?;
            if start < 0 && end < 0 && start > end {
                ctx.out().int(0);
                return Ok(());
            }
            let bit_unit = if args.len() == 5 { unit_arg(args.get(4))? } else { false };
            resolve(start, end, p.len(), bit_unit)
        }
        2 => Range { start: 0, end: p.len() as i64 - 1, first_mask: 0, last_mask: 0 },
        _ => return Err(error::syntax()),
    };
    let count = if range.start > range.end {
        0
    } else {
        let (s, e) = (range.start as usize, range.end as usize);
        bits::popcount(&p[s..=e])
            - u64::from((p[s] & range.first_mask).count_ones())
            - u64::from((p[e] & range.last_mask).count_ones())
    };
    ctx.out().int(count as i64);
    Ok(())
}

/// BITPOS key bit [start [end [BYTE | BIT]]]
fn bitpos(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let bit = int_arg(args.get(2))?;
    if bit != 0 && bit != 1 {
        return Err("ERR The bit argument must be 1 or 0.".into());
    }
    let bit = bit == 1;
    let key = args.get(1);
    let shard = ctx.db().read(key);
    let found = shard.get(key, ctx.now());
    ctx.hit(found.is_some());
    let Some(e) = found else {
        ctx.out().int(if bit { -1 } else { 0 });
        return Ok(());
    };
    let mut buf = itoa::Buffer::new();
    let p = string_bytes(e.value, &mut buf)?;
    let mut end_given = false;
    let range = match args.len() {
        4..=6 => {
            let start = int_arg(args.get(3))?;
            let bit_unit = if args.len() == 6 { unit_arg(args.get(5))? } else { false };
            let end = if args.len() >= 5 {
                end_given = true;
                int_arg(args.get(4))?
            } else if bit_unit {
                ((p.len() as i64) << 3) + 7
            } else {
                p.len() as i64 - 1
            };
            resolve(start, end, p.len(), bit_unit)
        }
        3 => Range { start: 0, end: p.len() as i64 - 1, first_mask: 0, last_mask: 0 },
        _ => return Err(error::syntax()),
    };
    let pos = if range.start > range.end { -1 } else { bitpos_in(p, &range, bit, end_given) };
    ctx.out().int(pos);
    Ok(())
}

/// The body of BITPOS over a non-empty range, edge bytes masked as Redis masks them.
fn bitpos_in(p: &[u8], r: &Range, bit: bool, end_given: bool) -> i64 {
    let masked = |b: u8, m: u8| if bit { b & !m } else { b | m };
    let (mut start, end) = (r.start as usize, r.end as usize);
    let mut bytes = end - start + 1;
    let mut pos;
    'found: {
        if r.first_mask != 0 {
            let mut c = masked(p[start], r.first_mask);
            if r.last_mask != 0 && bytes == 1 {
                c = masked(c, r.last_mask);
            }
            pos = bits::first_bit(&[c], bit);
            if bytes == 1 || (pos != -1 && pos != 8) {
                break 'found;
            }
            start += 1;
            bytes -= 1;
        }
        let cur = bytes - usize::from(r.last_mask != 0);
        if cur > 0 {
            pos = bits::first_bit(&p[start..start + cur], bit);
            if bytes == cur || (pos != -1 && pos != (cur as i64) << 3) {
                break 'found;
            }
            start += cur;
            bytes -= cur;
        }
        pos = bits::first_bit(&[masked(p[end], r.last_mask)], bit);
    }
    if end_given && !bit && pos == (bytes as i64) << 3 {
        return -1;
    }
    if pos != -1 { pos + ((start as i64) << 3) } else { pos }
}

/// BITOP AND | OR | XOR | NOT destkey key [key ...]
fn bitop(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let name = args.get(1);
    let op = if is(name, "and") {
        BitOp::And
    } else if is(name, "or") {
        BitOp::Or
    } else if is(name, "xor") {
        BitOp::Xor
    } else if is(name, "not") {
        BitOp::Not
    } else {
        return Err(error::syntax());
    };
    if op == BitOp::Not && args.len() != 4 {
        return Err("ERR BITOP NOT must be called with a single source key.".into());
    }
    let db = ctx.db_index();
    let dest = args.get(2);
    let sources = args.skip(3);
    let mut locked = ctx.keyspace().lock_write(std::iter::once((db, dest)).chain(sources.iter().map(|k| (db, k))));
    let mut values: Vec<Vec<u8>> = Vec::with_capacity(sources.len());
    for key in sources.iter() {
        let found = locked.shard_ref(db, key).get(key, ctx.now());
        ctx.hit(found.is_some());
        match found {
            None => values.push(Vec::new()),
            Some(e) => {
                let mut buf = itoa::Buffer::new();
                values.push(string_bytes(e.value, &mut buf)?.to_vec());
            }
        }
    }
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let result = bits::bitop(op, &refs);
    let len = result.len();
    let target = locked.shard(db, dest);
    if len > 0 {
        target.insert(dest, Value::Str(result.into()), None, ctx.now());
        drop(locked);
        ctx.notify(notify::STRING, "set", dest);
    } else if target.remove(dest, ctx.now()).is_some() {
        drop(locked);
        ctx.notify(notify::GENERIC, "del", dest);
    }
    ctx.out().int(len as i64);
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum FieldOp {
    Get,
    Set,
    IncrBy,
}

struct Field {
    op: FieldOp,
    offset: u64,
    value: i64,
    overflow: Overflow,
    bits: u32,
    signed: bool,
}

/// A BITFIELD type: `i1`..`i64` or `u1`..`u63`.
fn field_type(arg: &[u8]) -> Result<(bool, u32), Error> {
    const BAD: &str =
        "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(BAD.into()),
    };
    // Redis reads the digits as a C string (up to a NUL byte).
    let bits = parse_i64(error::c_str(&arg[1..])).ok_or_else(|| Error::from(BAD))?;
    if bits < 1 || (signed && bits > 64) || (!signed && bits > 63) {
        return Err(BAD.into());
    }
    Ok((signed, bits as u32))
}

fn bitfield(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bitfield_generic(ctx, args, false)
}

fn bitfield_ro(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    bitfield_generic(ctx, args, true)
}

/// BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset increment]
/// [OVERFLOW WRAP | SAT | FAIL] ... and BITFIELD_RO (GET only).
fn bitfield_generic(ctx: &mut Ctx<'_>, args: Args<'_>, read_only: bool) -> CmdResult {
    let mut ops: Vec<Field> = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut highest: u64 = 0;
    let mut writes = false;
    let mut j = 2;
    while j < args.len() {
        let rest = args.len() - j - 1;
        let sub = args.get(j);
        let op = if is(sub, "get") && rest >= 2 {
            FieldOp::Get
        } else if is(sub, "set") && rest >= 3 {
            FieldOp::Set
        } else if is(sub, "incrby") && rest >= 3 {
            FieldOp::IncrBy
        } else if is(sub, "overflow") && rest >= 1 {
            let kind = args.get(j + 1);
            overflow = if is(kind, "wrap") {
                Overflow::Wrap
            } else if is(kind, "sat") {
                Overflow::Sat
            } else if is(kind, "fail") {
                Overflow::Fail
            } else {
                return Err("ERR Invalid OVERFLOW type specified".into());
            };
            j += 2;
            continue;
        } else {
            return Err(error::syntax());
        };
        let (signed, bits) = field_type(args.get(j + 1))?;
        let offset = bit_offset(ctx, args.get(j + 2), bits)?;
        let mut value = 0;
        if op != FieldOp::Get {
            writes = true;
            highest = highest.max(offset + u64::from(bits) - 1);
            value = int_arg(args.get(j + 3))?;
        }
        ops.push(Field { op, offset, value, overflow, bits, signed });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    let key = args.get(1);
    if !writes {
        let shard = ctx.db().read(key);
        let found = shard.get(key, ctx.now());
        ctx.hit(found.is_some());
        let mut buf = itoa::Buffer::new();
        let p = match found {
            Some(e) if !is_string(&e.value) => return Err(wrongtype()),
            Some(e) => string_bytes(e.value, &mut buf)?,
            None => &[],
        };
        ctx.out().array(ops.len());
        for f in &ops {
            let v = if f.signed {
                bits::get_signed(p, f.offset, f.bits)
            } else {
                bits::get_unsigned(p, f.offset, f.bits) as i64
            };
            ctx.out().int(v);
        }
        return Ok(());
    }
    if read_only {
        return Err("ERR BITFIELD_RO only supports the GET subcommand".into());
    }
    let need = (highest >> 3) as usize + 1;
    let mut shard = ctx.db().write(key);
    // Like Redis, the key is created (or grown) before the operations run, even when all of
    // them then fail.
    let mut changes = 0usize;
    let mut replies: Vec<Option<i64>> = Vec::with_capacity(ops.len());
    match shard.slot(key, ctx.now()) {
        Slot::Live(live) if !is_string(&live.entry().value) => return Err(wrongtype()),
        Slot::Live(mut live) => {
            // A write taken even if nothing changes (Redis unshares the string too): copying
            // a big bitmap to find out would cost more than logging a no-op.
            let p = live.value_mut().str_mut().ok_or_else(wrongtype)?;
            let grown = p.len() < need;
            if grown {
                p.resize(need, 0);
            }
            run_field_ops(&ops, p, grown, &mut changes, &mut replies);
        }
        Slot::Empty(empty) => {
            let mut p = vec![0u8; need];
            run_field_ops(&ops, &mut p, true, &mut changes, &mut replies);
            empty.insert(Value::Str(p.into()), None);
        }
    }
    drop(shard);
    ctx.out().array(replies.len());
    for r in replies {
        match r {
            Some(v) => ctx.out().int(v),
            None => ctx.out().null(),
        }
    }
    if changes > 0 {
        ctx.notify(notify::STRING, "setbit", key);
    }
    Ok(())
}

/// Runs BITFIELD's operations on `p` (long enough for every write), collecting replies (None
/// for a FAIL overflow) and counting changes as Redis does.
fn run_field_ops(ops: &[Field], p: &mut [u8], grown: bool, changes: &mut usize, replies: &mut Vec<Option<i64>>) {
    for f in ops {
        if f.op == FieldOp::Get {
            let v = if f.signed {
                bits::get_signed(p, f.offset, f.bits)
            } else {
                bits::get_unsigned(p, f.offset, f.bits) as i64
            };
            replies.push(Some(v));
            continue;
        }
        let (overflowed, old, new, reply) = if f.signed {
            let old = bits::get_signed(p, f.offset, f.bits);
            if f.op == FieldOp::IncrBy {
                let (o, n) = bits::add_signed(old, f.value, f.bits, f.overflow);
                (o, old as u64, n as u64, n)
            } else {
                let (o, n) = bits::add_signed(f.value, 0, f.bits, f.overflow);
                (o, old as u64, (if o { n } else { f.value }) as u64, old)
            }
        } else {
            let old = bits::get_unsigned(p, f.offset, f.bits);
            if f.op == FieldOp::IncrBy {
                let (o, n) = bits::add_unsigned(old, f.value, f.bits, f.overflow);
                (o, old, n, n as i64)
            } else {
                let (o, n) = bits::add_unsigned(f.value as u64, 0, f.bits, f.overflow);
                (o, old, if o { n } else { f.value as u64 }, old as i64)
            }
        };
        if overflowed && f.overflow == Overflow::Fail {
            replies.push(None);
            continue;
        }
        replies.push(Some(reply));
        bits::set_unsigned(p, f.offset, f.bits, new);
        if grown || old != new {
            *changes += 1;
        }
    }
}
