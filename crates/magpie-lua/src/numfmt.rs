//! C's number conversions as glibc does them: `printf("%.*g")` and `strtod`.

/// `snprintf("%.{precision}g", d)`: `precision` significant digits (1..=17), trailing zeros
/// dropped, exponent form below 1e-4 or from 10^precision up; `inf`, `-inf`, `nan`, `-nan`.
pub(crate) fn format_g(d: f64, precision: usize) -> String {
    let p = precision.clamp(1, 17);
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan".into() } else { "nan".into() };
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's `{:.*e}` rounds exactly as glibc does (round-half-even on the exact value).
    let sci = format!("{:.*e}", p - 1, d);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let x: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if x < -4 || x >= p as i32 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push(if x < 0 { '-' } else { '+' });
        out.insert(out.len() - 1, 'e');
        let ax = x.unsigned_abs();
        if ax < 10 {
            out.push('0');
        }
        out.push_str(&ax.to_string());
    } else if x < 0 {
        out.push_str("0.");
        for _ in 0..(-x - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let int_len = (x + 1) as usize;
        if digits.len() <= int_len {
            out.push_str(digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// glibc's `strtod` on the bytes at the start of `s` (no leading spaces expected): the value
/// and how many bytes it took (0: no number).
pub(crate) fn strtod(s: &[u8]) -> (f64, usize) {
    let mut i = 0;
    let neg = match s.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let sign = |v: f64| if neg { -v } else { v };
    let rest = &s[i..];
    let lower = |n: usize| -> Vec<u8> { rest.iter().take(n).map(u8::to_ascii_lowercase).collect() };
    if lower(3) == b"inf" {
        let n = if lower(8) == b"infinity" { 8 } else { 3 };
        return (sign(f64::INFINITY), i + n);
    }
    if lower(3) == b"nan" {
        let mut n = 3;
        if rest.get(3) == Some(&b'(') {
            let close = rest[4..].iter().position(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
            if let Some(c) = close
                && rest[4 + c] == b')'
            {
                n = 4 + c + 1;
            }
        }
        // glibc's NAN is positive; "-nan" gives a negative one.
        return (sign(f64::NAN), i + n);
    }
    if rest.len() >= 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        if let Some((v, n)) = hex_float(&rest[2..]) {
            return (sign(v), i + 2 + n);
        }
        return (sign(0.0), i + 1);
    }
    // Decimal: digits [. digits] [e [sign] digits]
    let mut j = 0;
    let mut mant_digits = 0;
    while rest.get(j).is_some_and(u8::is_ascii_digit) {
        j += 1;
        mant_digits += 1;
    }
    if rest.get(j) == Some(&b'.') {
        j += 1;
        while rest.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
            mant_digits += 1;
        }
    }
    if mant_digits == 0 {
        return (0.0, 0);
    }
    let mant_end = j;
    if rest.get(j).is_some_and(|c| *c == b'e' || *c == b'E') {
        let mut k = j + 1;
        if rest.get(k).is_some_and(|c| *c == b'+' || *c == b'-') {
            k += 1;
        }
        if rest.get(k).is_some_and(u8::is_ascii_digit) {
            while rest.get(k).is_some_and(u8::is_ascii_digit) {
                k += 1;
            }
            j = k;
        }
    }
    let text = String::from_utf8_lossy(&rest[..j]);
    let text = if rest.get(mant_end.wrapping_sub(1)) == Some(&b'.') && mant_end == j {
        format!("{text}0")
    } else {
        text.into_owned()
    };
    let text = text.replace(".e", ".0e").replace(".E", ".0E");
    let text = if text.starts_with('.') { format!("0{text}") } else { text };
    let v: f64 = parse_decimal(&text);
    (sign(v), i + j)
}

/// Parses a decimal the way Rust reads floats (correctly rounded, like glibc), with huge
/// exponents saturating instead of failing.
fn parse_decimal(text: &str) -> f64 {
    if let Ok(v) = text.parse::<f64>() {
        return v;
    }
    // Exponents too long for Rust's parser: the value is 0 or infinite (unless the mantissa is
    // zero).
    let (mant, exp) = text.split_once(['e', 'E']).unwrap_or((text, "0"));
    let m: f64 = mant.parse().unwrap_or(0.0);
    if m == 0.0 {
        return 0.0;
    }
    if exp.starts_with('-') { 0.0 } else { f64::INFINITY }
}

/// The part of a hexadecimal float after `0x`: hex digits, optional `.` and digits, optional
/// `p` exponent. `None` when no hex digit follows.
fn hex_float(s: &[u8]) -> Option<(f64, usize)> {
    let mut j = 0;
    let mut mant: u128 = 0;
    let mut exp: i64 = 0;
    let mut any = false;
    let mut sticky = false;
    let hex = |c: u8| (c as char).to_digit(16);
    while let Some(d) = s.get(j).and_then(|&c| hex(c)) {
        any = true;
        if mant >> 120 == 0 {
            mant = (mant << 4) | u128::from(d);
        } else {
            exp += 4;
            sticky |= d != 0;
        }
        j += 1;
    }
    if s.get(j) == Some(&b'.') {
        let mut k = j + 1;
        while let Some(d) = s.get(k).and_then(|&c| hex(c)) {
            any = true;
            if mant >> 120 == 0 {
                mant = (mant << 4) | u128::from(d);
                exp -= 4;
            } else {
                sticky |= d != 0;
            }
            k += 1;
        }
        if any {
            j = k;
        }
    }
    if !any {
        return None;
    }
    if s.get(j).is_some_and(|c| *c == b'p' || *c == b'P') {
        let mut k = j + 1;
        let eneg = match s.get(k) {
            Some(b'-') => {
                k += 1;
                true
            }
            Some(b'+') => {
                k += 1;
                false
            }
            _ => false,
        };
        if s.get(k).is_some_and(u8::is_ascii_digit) {
            let mut e: i64 = 0;
            while let Some(c) = s.get(k).filter(|c| c.is_ascii_digit()) {
                e = (e * 10 + i64::from(c - b'0')).min(1 << 40);
                k += 1;
            }
            exp += if eneg { -e } else { e };
            j = k;
        }
    }
    if sticky {
        mant |= 1;
    }
    let v = (mant as f64) * 2f64.powi(exp.clamp(-2000, 2000) as i32);
    let v = if v.is_nan() { 0.0 } else { v };
    Some((v, j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_format() {
        assert_eq!(format_g(0.1, 14), "0.1");
        assert_eq!(format_g(1.0 / 3.0, 14), "0.33333333333333");
        assert_eq!(format_g(100.0, 14), "100");
        assert_eq!(format_g(1e14, 14), "1e+14");
        assert_eq!(format_g(123456789012345.0, 14), "1.2345678901234e+14");
        assert_eq!(format_g(1e-5, 14), "1e-05");
        assert_eq!(format_g(0.0001, 14), "0.0001");
        assert_eq!(format_g(-0.0, 14), "-0");
        assert_eq!(format_g(f64::MAX, 14), "1.7976931348623e+308");
        assert_eq!(format_g(1.23456, 3), "1.23");
        assert_eq!(format_g(2.5, 1), "2");
    }

    #[test]
    fn strtod_like_glibc() {
        assert_eq!(strtod(b"12abc"), (12.0, 2));
        assert_eq!(strtod(b"-1.5e3,"), (-1500.0, 6));
        assert_eq!(strtod(b"1e"), (1.0, 1));
        assert_eq!(strtod(b"1.e5"), (100000.0, 4));
        assert_eq!(strtod(b".5"), (0.5, 2));
        assert_eq!(strtod(b"0x10"), (16.0, 4));
        assert_eq!(strtod(b"0x"), (0.0, 1));
        assert_eq!(strtod(b"0x1p3"), (8.0, 5));
        assert_eq!(strtod(b"Infinity"), (f64::INFINITY, 8));
        assert_eq!(strtod(b"-inf"), (f64::NEG_INFINITY, 4));
        assert!(strtod(b"nan").0.is_nan());
        assert_eq!(strtod(b"-"), (0.0, 0));
        assert_eq!(strtod(b"1e400").0, f64::INFINITY);
        assert_eq!(strtod(b"1e-400").0, 0.0);
    }
}
