//! INCRBYFLOAT arithmetic, and blocking timeouts, in C's `long double` as Redis does.
//!
//! Redis adds in C's `long double` (80-bit on x86-64) and prints with `%.17Lf`, trimming
//! zeros. That is why `INCRBYFLOAT x 0.1` on "10.5" gives "10.6" and 0.1 + 0.2 gives "0.3",
//! where 64-bit floats would print 10.59999999999999964 and 0.30000000000000004. Rust has no
//! 80-bit float, so a few lines of C do exactly what Redis does.

#![allow(unsafe_code)]

use std::ffi::c_char;

use crate::core::error::{Error, NOT_FLOAT};

unsafe extern "C" {
    fn magpie_ld_add(
        value: *const c_char,
        vlen: usize,
        incr: *const c_char,
        ilen: usize,
        out: *mut c_char,
        outlen: usize,
    ) -> i32;
    fn magpie_ld_timeout_ms(s: *const c_char, len: usize, ms: *mut i64) -> i32;
}

const MAX_CHARS: usize = 5 * 1024;

/// Why [`add_ld`] failed: the commands word each case their own way (HINCRBYFLOAT says
/// `hash value is not a float` for the stored value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AddError {
    /// The stored value is not a float.
    Value,
    /// The increment is not a float.
    Incr,
    /// The sum is NaN or infinite.
    NotFinite,
}

/// `value + incr` as Redis's INCRBYFLOAT computes and prints it; `value` None counts as 0.
pub(crate) fn add(value: Option<&[u8]>, incr: &[u8]) -> Result<Vec<u8>, Error> {
    add_ld(value, incr).map_err(|e| match e {
        AddError::NotFinite => "ERR increment would produce NaN or Infinity".into(),
        AddError::Value | AddError::Incr => NOT_FLOAT.into(),
    })
}

/// [`add`], telling which operand was bad.
pub(crate) fn add_ld(value: Option<&[u8]>, incr: &[u8]) -> Result<Vec<u8>, AddError> {
    let mut out = [0u8; MAX_CHARS];
    let (vptr, vlen) = value.map_or((std::ptr::null(), 0), |v| (v.as_ptr().cast::<c_char>(), v.len()));
    // SAFETY: every pointer is valid for the length passed with it; the C side reads at most
    // those lengths (copying into its own NUL-terminated buffer) and writes at most `outlen`
    // bytes into `out`.
    let n = unsafe { magpie_ld_add(vptr, vlen, incr.as_ptr().cast(), incr.len(), out.as_mut_ptr().cast(), out.len()) };
    match n {
        -1 => Err(AddError::Value),
        -2 => Err(AddError::Incr),
        _ => usize::try_from(n).map(|len| out[..len.min(MAX_CHARS)].to_vec()).map_err(|_| AddError::NotFinite),
    }
}

/// A timeout in seconds as Redis 7.0 turns it into milliseconds (rounded up; out of range
/// gives `i64::MIN`); `None` when it is not a float.
pub(crate) fn timeout_ms(arg: &[u8]) -> Option<i64> {
    let mut ms: i64 = 0;
    // SAFETY: `arg` is valid for `arg.len()` bytes, which the C side copies into its own
    // buffer; `ms` is a valid, aligned i64 it writes once.
    let ok = unsafe { magpie_ld_timeout_ms(arg.as_ptr().cast(), arg.len(), &raw mut ms) };
    (ok == 1).then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::{AddError, add, add_ld};

    fn s(v: Option<&str>, i: &str) -> String {
        String::from_utf8(add(v.map(str::as_bytes), i.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn matches_redis_long_double_output() {
        assert_eq!(s(Some("10.5"), "0.1"), "10.6");
        assert_eq!(s(Some("0.1"), "0.2"), "0.3");
        assert_eq!(s(None, "5.0e3"), "5000");
        assert_eq!(s(Some("3"), "-3"), "0");
        assert_eq!(s(Some("-0.0"), "0"), "0");
        assert!(add(Some(b" 1"), b"1").is_err());
        assert!(add(Some(b"1"), b"nan").is_err());
        assert!(add(Some(b"1"), b"").is_err());
        assert_eq!(add_ld(Some(b"x"), b"1"), Err(AddError::Value));
        assert_eq!(add_ld(Some(b"1"), b"x"), Err(AddError::Incr));
        assert_eq!(add_ld(None, b"inf"), Err(AddError::NotFinite));
        assert_eq!(
            add(Some(b"1.1e4932"), b"1.1e4932").unwrap_err().0.as_ref(),
            b"ERR increment would produce NaN or Infinity"
        );
    }
}
