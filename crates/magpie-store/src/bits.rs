//! Bitmaps on string values, as Redis's `bitops.c` sees them: bit 0 is the most significant
//! bit of the first byte; integers of 1 to 64 bits at any bit offset are big-endian in that
//! order (BITFIELD).

/// Number of set bits.
pub fn popcount(bytes: &[u8]) -> u64 {
    let mut chunks = bytes.chunks_exact(8);
    let mut n: u64 = 0;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        n += u64::from(u64::from_ne_bytes(w).count_ones());
    }
    n + chunks.remainder().iter().map(|b| u64::from(b.count_ones())).sum::<u64>()
}

/// The position of the first bit equal to `bit` (`redisBitpos`): for a set bit, -1 when there
/// is none; for a clear bit, `8 * len` when there is none (the string is taken as padded with
/// zeros on the right).
pub fn first_bit(bytes: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0u8 } else { 0xff };
    match bytes.iter().position(|&b| b != skip) {
        Some(i) => {
            let b = if bit { bytes[i] } else { !bytes[i] };
            (i as i64) * 8 + i64::from(b.leading_zeros() as u8)
        }
        None if bit => -1,
        None => bytes.len() as i64 * 8,
    }
}

/// Reads the unsigned integer of `bits` bits at bit `offset`; bytes past the end read as 0.
pub fn get_unsigned(p: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for j in 0..u64::from(bits) {
        let at = offset + j;
        let byte = usize::try_from(at >> 3).ok().and_then(|i| p.get(i)).copied().unwrap_or(0);
        v = (v << 1) | u64::from((byte >> (7 - (at & 7))) & 1);
    }
    v
}

/// Reads the two's-complement integer of `bits` bits at bit `offset`.
pub fn get_signed(p: &[u8], offset: u64, bits: u32) -> i64 {
    let u = get_unsigned(p, offset, bits);
    if bits < 64 && u & (1 << (bits - 1)) != 0 { (u | (u64::MAX << bits)) as i64 } else { u as i64 }
}

/// Writes the low `bits` bits of `value` at bit `offset`; `p` must reach that far.
pub fn set_unsigned(p: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..u64::from(bits) {
        let on = value & (1 << (u64::from(bits) - 1 - j)) != 0;
        let at = offset + j;
        if let Some(b) = usize::try_from(at >> 3).ok().and_then(|i| p.get_mut(i)) {
            let mask = 1u8 << (7 - (at & 7));
            if on {
                *b |= mask;
            } else {
                *b &= !mask;
            }
        }
    }
}

/// What BITFIELD does when a SET or INCRBY leaves the type's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// `value + incr` for an unsigned field of `bits` bits (1..=63): `(overflowed, result)`, the
/// result wrapped or saturated as `ow` says (`checkUnsignedBitfieldOverflow`).
pub fn add_unsigned(value: u64, incr: i64, bits: u32, ow: Overflow) -> (bool, u64) {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let wrapped = || value.wrapping_add(incr as u64) & max;
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = (value as i64).wrapping_neg();
    if value > max || (incr > 0 && incr > max_incr) {
        (true, if ow == Overflow::Sat { max } else { wrapped() })
    } else if incr < 0 && incr < min_incr {
        (true, if ow == Overflow::Sat { 0 } else { wrapped() })
    } else {
        (false, value.wrapping_add(incr as u64))
    }
}

/// `value + incr` for a signed field of `bits` bits (1..=64), as [`add_unsigned`]
/// (`checkSignedBitfieldOverflow`).
pub fn add_signed(value: i64, incr: i64, bits: u32, ow: Overflow) -> (bool, i64) {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrapped = || {
        let c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1 << (bits - 1)) != 0 { (c | mask) as i64 } else { (c & !mask) as i64 }
        } else {
            c as i64
        }
    };
    if value > max || (bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr) {
        (true, if ow == Overflow::Sat { max } else { wrapped() })
    } else if value < min || (bits != 64 && incr < min_incr) || (value < 0 && incr < 0 && incr < min_incr) {
        (true, if ow == Overflow::Sat { min } else { wrapped() })
    } else {
        (false, value.wrapping_add(incr))
    }
}

/// The operations of BITOP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP over `sources` (missing bytes read as 0): a string as long as the longest source.
pub fn bitop(op: BitOp, sources: &[&[u8]]) -> Vec<u8> {
    let len = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let byte = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let Some((first, rest)) = sources.split_first() else { return Vec::new() };
    let mut out: Vec<u8> = (0..len).map(|i| byte(first, i)).collect();
    match op {
        BitOp::Not => out.iter_mut().for_each(|b| *b = !*b),
        _ => {
            for s in rest {
                for (i, o) in out.iter_mut().enumerate() {
                    let b = byte(s, i);
                    match op {
                        BitOp::And => *o &= b,
                        BitOp::Or => *o |= b,
                        _ => *o ^= b,
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_big_endian_from_bit_zero() {
        // Redis's example: u5 = 23 at offset 7 into zeros gives 00000001 01110000.
        let mut p = [0u8; 2];
        set_unsigned(&mut p, 7, 5, 23);
        assert_eq!(p, [0b0000_0001, 0b0111_0000]);
        assert_eq!(get_unsigned(&p, 7, 5), 23);
        assert_eq!(get_signed(&p, 7, 5), 23 - 32);
        assert_eq!(get_unsigned(&p, 0, 64), 0x0170_0000_0000_0000);
        set_unsigned(&mut p, 0, 8, 0xff);
        assert_eq!(get_signed(&p, 0, 8), -1);
    }

    #[test]
    fn first_bit_pads_with_zeros() {
        assert_eq!(first_bit(&[0xff, 0xf0], false), 12);
        assert_eq!(first_bit(&[0xff, 0xff], false), 16);
        assert_eq!(first_bit(&[0, 0], true), -1);
        assert_eq!(first_bit(&[0, 0x10], true), 11);
        assert_eq!(first_bit(&[], false), 0);
        assert_eq!(popcount(b"foobar"), 26);
        assert_eq!(popcount(&[0xff; 17]), 136);
    }

    #[test]
    fn overflow_rules_match_redis() {
        assert_eq!(add_unsigned(250, 10, 8, Overflow::Wrap), (true, 4));
        assert_eq!(add_unsigned(250, 10, 8, Overflow::Sat), (true, 255));
        assert_eq!(add_unsigned(5, -10, 8, Overflow::Sat), (true, 0));
        assert_eq!(add_unsigned(5, -10, 8, Overflow::Wrap), (true, 251));
        assert_eq!(add_signed(127, 1, 8, Overflow::Wrap), (true, -128));
        assert_eq!(add_signed(-128, -1, 8, Overflow::Sat), (true, -128));
        assert_eq!(add_signed(100, 1, 8, Overflow::Wrap), (false, 101));
        assert_eq!(add_signed(i64::MAX, 1, 64, Overflow::Wrap), (true, i64::MIN));
        assert_eq!(add_signed(i64::MIN, -1, 64, Overflow::Sat), (true, i64::MIN));
        assert_eq!(add_signed(300, 0, 8, Overflow::Wrap), (true, 44));
    }

    #[test]
    fn bitop_pads_short_sources() {
        assert_eq!(bitop(BitOp::And, &[b"\xff\xff", b"\x0f"]), vec![0x0f, 0]);
        assert_eq!(bitop(BitOp::Or, &[b"\x01", b"\x02\x04"]), vec![3, 4]);
        assert_eq!(bitop(BitOp::Xor, &[b"\xff", b"\x0f", b"\x01"]), vec![0xf1]);
        assert_eq!(bitop(BitOp::Not, &[b"\x0f"]), vec![0xf0]);
    }
}
