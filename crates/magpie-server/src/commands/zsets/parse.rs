//! Scores and ranges as Redis reads them: C's `strtod` (decimal and hexadecimal numbers,
//! `inf`, `infinity`, `nan`, leading whitespace), with each caller's own checks on top.

use magpie_store::zset::{LexBound, LexRange, ScoreBound, ScoreRange};

use crate::core::error::{Error, NOT_FLOAT};

/// What C's `strtod` makes of the start of `s`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(in crate::commands) struct Strtod {
    pub value: f64,
    /// Bytes consumed; 0 when nothing could be read (then `value` is 0).
    pub end: usize,
    /// `errno == ERANGE` with a result of ±HUGE_VAL or 0: the number overflowed, or was not
    /// zero yet rounded to zero (what Redis rejects; subnormal results are accepted).
    pub out_of_range: bool,
}

/// C's `isspace` in the C locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Reads a number from the start of `s` as glibc's `strtod` does.
pub(in crate::commands) fn strtod(s: &[u8]) -> Strtod {
    let none = Strtod { value: 0.0, end: 0, out_of_range: false };
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let neg = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let sign = |v: f64| if neg { -v } else { v };
    let rest = &s[i..];
    let word = |w: &str| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w.as_bytes());
    if word("infinity") {
        return Strtod { value: sign(f64::INFINITY), end: i + 8, out_of_range: false };
    }
    if word("inf") {
        return Strtod { value: sign(f64::INFINITY), end: i + 3, out_of_range: false };
    }
    if word("nan") {
        let mut end = i + 3;
        // nan(n-char-sequence) is consumed only when the parenthesis closes.
        if s.get(end) == Some(&b'(') {
            let mut j = end + 1;
            while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == b'_') {
                j += 1;
            }
            if s.get(j) == Some(&b')') {
                end = j + 1;
            }
        }
        return Strtod { value: f64::NAN, end, out_of_range: false };
    }
    if rest.len() >= 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        if let Some(mut hex) = hex_float(&rest[2..]) {
            hex.value = sign(hex.value);
            hex.end += i + 2;
            return hex;
        }
        // "0x" without hex digits: the "0" alone is the number.
        return Strtod { value: sign(0.0), end: i + 1, out_of_range: false };
    }
    // Decimal: digits, an optional point and digits (at least one digit in all), then an
    // exponent only if it has digits.
    let digits = |from: usize| s[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let int_end = i + digits(i);
    let mut end = int_end;
    let mut frac = 0;
    if s.get(end) == Some(&b'.') {
        frac = digits(end + 1);
        end += 1 + frac;
    }
    if int_end == i && frac == 0 {
        return none;
    }
    let mantissa_end = end;
    if matches!(s.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp = digits(j);
        if exp > 0 {
            end = j + exp;
        }
    }
    // The consumed text is plain ASCII in a form Rust's parser reads, correctly rounded.
    let text = std::str::from_utf8(&s[i..end]).unwrap_or("0");
    let value: f64 = text.parse().unwrap_or(0.0);
    let nonzero = s[i..mantissa_end].iter().any(|&c| (b'1'..=b'9').contains(&c));
    let out_of_range = value.is_infinite() || (value == 0.0 && nonzero);
    Strtod { value: sign(value), end, out_of_range }
}

/// A hexadecimal mantissa and optional binary exponent (after "0x"), rounded to nearest even.
fn hex_float(s: &[u8]) -> Option<Strtod> {
    let hexval = |c: u8| (c as char).to_digit(16);
    let mut i = 0;
    let mut m: u64 = 0;
    // Binary exponent to apply to `m`, and whether nonzero digits were dropped.
    let (mut exp, mut sticky, mut any, mut seen_point, mut nonzero) = (0i64, false, false, false, false);
    while i < s.len() {
        let c = s[i];
        if c == b'.' && !seen_point {
            seen_point = true;
            i += 1;
            continue;
        }
        let Some(d) = hexval(c) else { break };
        any = true;
        nonzero |= d != 0;
        if m >> 60 == 0 {
            m = m << 4 | u64::from(d);
            if seen_point {
                exp -= 4;
            }
        } else {
            sticky |= d != 0;
            if !seen_point {
                exp += 4;
            }
        }
        i += 1;
    }
    if !any {
        return None;
    }
    if matches!(s.get(i), Some(b'p' | b'P')) {
        let mut j = i + 1;
        let neg = s.get(j) == Some(&b'-');
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let start = j;
        let mut e: i64 = 0;
        while j < s.len() && s[j].is_ascii_digit() {
            e = (e * 10 + i64::from(s[j] - b'0')).min(1 << 40);
            j += 1;
        }
        if j > start {
            exp += if neg { -e } else { e };
            i = j;
        }
    }
    if m == 0 {
        return Some(Strtod { value: 0.0, end: i, out_of_range: false });
    }
    // m * 2^exp, with m's top bit at bit 63: the value's binary exponent is exp + 63.
    let lz = m.leading_zeros();
    m <<= lz;
    let e2 = exp + 63 - i64::from(lz);
    let value = if e2 > 1023 {
        f64::INFINITY
    } else {
        // Bits of m below the 53 kept (more for subnormal results), rounded to nearest even;
        // `sticky` says whether digits beyond m's 64 bits were nonzero.
        let shift = if e2 >= -1022 { 11 } else { 11 + (-1022 - e2) } as u64;
        let mut q = if shift >= 64 { 0 } else { m >> shift };
        let round_up = if shift >= 64 {
            shift == 64 && (m > 1 << 63 || (m == 1 << 63 && sticky))
        } else {
            let (rem, half) = (m & ((1u64 << shift) - 1), 1u64 << (shift - 1));
            rem > half || (rem == half && (sticky || q & 1 == 1))
        };
        q += u64::from(round_up);
        if e2 >= -1022 {
            // Normal: q is in [2^52, 2^53]; a carry to 2^53 moves to the next binade.
            let (q, e2) = if q == 1 << 53 { (q >> 1, e2 + 1) } else { (q, e2) };
            if e2 > 1023 { f64::INFINITY } else { f64::from_bits(((e2 + 1023) as u64) << 52 | (q & ((1 << 52) - 1))) }
        } else {
            // Subnormal (q up to 2^52, which is the smallest normal's bit pattern).
            f64::from_bits(q)
        }
    };
    let out_of_range = value.is_infinite() || (value == 0.0 && nonzero);
    Some(Strtod { value, end: i, out_of_range })
}

/// A score or weight argument, as Redis's `getDoubleFromObject` reads it: the whole argument
/// must be a number, without leading space, not NaN, neither overflowing nor rounding a
/// nonzero number to zero.
pub(in crate::commands) fn float_arg(arg: &[u8]) -> Option<f64> {
    if arg.is_empty() || is_space(arg[0]) {
        return None;
    }
    let r = strtod(arg);
    (r.end == arg.len() && !r.out_of_range && !r.value.is_nan()).then_some(r.value)
}

/// A score (ZADD, ZINCRBY): `ERR value is not a valid float` when it is not one.
pub(super) fn score_arg(arg: &[u8]) -> Result<f64, Error> {
    float_arg(arg).ok_or_else(|| NOT_FLOAT.into())
}

/// Reads `s` as Redis reads a range bound: `strtod` must stop at the end of the argument or at
/// a NUL byte (it reads a C string); leading space, overflow and "" (0) are accepted.
fn bound_value(s: &[u8]) -> Option<f64> {
    let r = strtod(s);
    let stop = s.get(r.end).copied().unwrap_or(0);
    (stop == 0 && !r.value.is_nan()).then_some(r.value)
}

fn score_bound(arg: &[u8]) -> Option<ScoreBound> {
    match arg.first() {
        Some(b'(') => Some(ScoreBound { value: bound_value(&arg[1..])?, exclusive: true }),
        _ => Some(ScoreBound { value: bound_value(arg)?, exclusive: false }),
    }
}

/// A score range (ZRANGEBYSCORE, ZCOUNT, ...): `1.5`, `(1.5`, `-inf`, `+inf`.
pub(super) fn score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, Error> {
    match (score_bound(min), score_bound(max)) {
        (Some(min), Some(max)) => Ok(ScoreRange { min, max }),
        _ => Err("ERR min or max is not a float".into()),
    }
}

fn lex_bound(arg: &[u8]) -> Option<LexBound<'_>> {
    // `+` and `-` stand alone (a NUL ends the C string Redis reads).
    let alone = arg.get(1).is_none_or(|&c| c == 0);
    match arg.first()? {
        b'+' if alone => Some(LexBound::Max),
        b'-' if alone => Some(LexBound::Min),
        b'(' => Some(LexBound::Exclusive(&arg[1..])),
        b'[' => Some(LexBound::Inclusive(&arg[1..])),
        _ => None,
    }
}

/// A lexicographical range (ZRANGEBYLEX, ZLEXCOUNT, ...): `-`, `+`, `[a`, `(a`.
pub(super) fn lex_range<'a>(min: &'a [u8], max: &'a [u8]) -> Result<LexRange<'a>, Error> {
    match (lex_bound(min), lex_bound(max)) {
        (Some(min), Some(max)) => Ok(LexRange { min, max }),
        _ => Err("ERR min or max not valid string range item".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> (f64, usize, bool) {
        let r = strtod(s.as_bytes());
        (r.value, r.end, r.out_of_range)
    }

    #[test]
    fn reads_what_strtod_reads() {
        assert_eq!(read("1.5"), (1.5, 3, false));
        assert_eq!(read("  -2e3x"), (-2000.0, 6, false));
        assert_eq!(read("+.5"), (0.5, 3, false));
        assert_eq!(read("5."), (5.0, 2, false));
        assert_eq!(read("1e"), (1.0, 1, false));
        assert_eq!(read("1e+"), (1.0, 1, false));
        assert_eq!(read("1E-2"), (0.01, 4, false));
        assert_eq!(read("."), (0.0, 0, false));
        assert_eq!(read(""), (0.0, 0, false));
        assert_eq!(read("  "), (0.0, 0, false));
        assert_eq!(read("-"), (0.0, 0, false));
        assert_eq!(read("inf"), (f64::INFINITY, 3, false));
        assert_eq!(read("-Infinity"), (f64::NEG_INFINITY, 9, false));
        assert_eq!(read("infinit"), (f64::INFINITY, 3, false));
        assert_eq!(read("+INF"), (f64::INFINITY, 4, false));
        assert!(read("nan").0.is_nan() && read("nan").1 == 3);
        assert_eq!(read("nan(123)").1, 8);
        assert_eq!(read("nan(12").1, 3);
        assert_eq!(read("1e400"), (f64::INFINITY, 5, true));
        assert_eq!(read("-1e400"), (f64::NEG_INFINITY, 6, true));
        assert_eq!(read("1e-400"), (0.0, 6, true));
        assert_eq!(read("0e-400"), (0.0, 6, false));
        assert_eq!(read("4.9e-324"), (5e-324, 8, false));
        assert_eq!(read("0.1"), (0.1, 3, false));
        assert_eq!(read("123456789012345678901234567890"), (1.2345678901234568e29, 30, false));
    }

    #[test]
    fn reads_hexadecimal_numbers() {
        assert_eq!(read("0x10"), (16.0, 4, false));
        assert_eq!(read("0X1p3"), (8.0, 5, false));
        assert_eq!(read("-0x1.8p1"), (-3.0, 8, false));
        assert_eq!(read("0x.8"), (0.5, 4, false));
        assert_eq!(read("0xp1"), (0.0, 1, false));
        assert_eq!(read("0x"), (0.0, 1, false));
        assert_eq!(read("0x1p"), (1.0, 3, false));
        assert_eq!(read("0x1p-1074"), (5e-324, 9, false));
        assert_eq!(read("0x1p-1075"), (0.0, 9, true));
        assert_eq!(read("0x1.8p-1075"), (5e-324, 11, false));
        assert_eq!(read("0x1p1024"), (f64::INFINITY, 8, true));
        assert_eq!(read("0x1.fffffffffffffp1023"), (f64::MAX, 22, false));
        assert_eq!(read("0x1.fffffffffffff8p1023"), (f64::INFINITY, 23, true));
        assert_eq!(read("0x123456789abcdef123"), (3.358127276707303e20, 20, false));
        // Halfway cases round to even.
        assert_eq!(read("0x1.00000000000008p0").0, 1.0);
        assert_eq!(read("0x1.00000000000018p0").0, 1.0 + 2.0 * f64::EPSILON);
        assert_eq!(read("0x1.000000000000080000001p0").0, 1.0 + f64::EPSILON);
    }

    #[test]
    fn score_arguments_follow_get_double_from_object() {
        for ok in ["1", "-1.5", "inf", "-inf", "+inf", "1e308", "0x10", "5e-324", "1e-320"] {
            assert!(float_arg(ok.as_bytes()).is_some(), "{ok}");
        }
        for bad in ["", " 1", "1 ", "nan", "1e400", "1e-400", "x", "1\x001", "1e", "0x"] {
            assert!(float_arg(bad.as_bytes()).is_none(), "{bad:?}");
        }
        assert_eq!(float_arg(b"-0").map(f64::to_bits), Some((-0.0f64).to_bits()));
    }

    #[test]
    fn range_bounds_follow_zsl_parse_range() {
        let r = |min: &str, max: &str| score_range(min.as_bytes(), max.as_bytes()).ok();
        let b = |value, exclusive| ScoreBound { value, exclusive };
        assert_eq!(r("(1", "+inf"), Some(ScoreRange { min: b(1.0, true), max: b(f64::INFINITY, false) }));
        assert_eq!(r("", "("), Some(ScoreRange { min: b(0.0, false), max: b(0.0, true) }));
        assert_eq!(r(" 1", "1e400"), Some(ScoreRange { min: b(1.0, false), max: b(f64::INFINITY, false) }));
        assert_eq!(r("1\0junk", "2"), Some(ScoreRange { min: b(1.0, false), max: b(2.0, false) }));
        assert_eq!(r("nan", "1"), None);
        assert_eq!(r("((1", "1"), None);
        assert_eq!(r("1 ", "1"), None);
        assert_eq!(r("  ", "1"), None);
        let l = |min: &'static str, max: &'static str| lex_range(min.as_bytes(), max.as_bytes()).ok();
        assert_eq!(l("-", "+"), Some(LexRange { min: LexBound::Min, max: LexBound::Max }));
        assert_eq!(l("[", "(b"), Some(LexRange { min: LexBound::Inclusive(b""), max: LexBound::Exclusive(b"b") }));
        assert_eq!(l("+\0x", "-"), Some(LexRange { min: LexBound::Max, max: LexBound::Min }));
        for (min, max) in [("a", "+"), ("", "+"), ("-a", "+"), ("-", "++")] {
            assert_eq!(l(min, max), None, "{min} {max}");
        }
    }
}
