//! Redis's zipmap (`zipmap.c`), read only: small hashes in RDB files written by Redis 2.x
//! (RDB type HASH_ZIPMAP).
//!
//! ```text
//! zipmap := count:u8 (len field len free:u8 value pad[free])* 0xFF
//! len    := u8 (< 254) | 0xFE u32le
//! ```
//!
//! `count` is 254 or more when the pairs are too many to count there.

use super::Corrupt;

const END: u8 = 0xFF;

/// A field and its value.
pub type Pair<'a> = (&'a [u8], &'a [u8]);
const BIGLEN: u8 = 254;

/// Checks a zipmap from outside as `zipmapValidateIntegrity` with `deep` does (it must hold at
/// least one pair), and returns its (field, value) pairs.
pub fn pairs(zm: &[u8]) -> Result<Vec<Pair<'_>>, Corrupt> {
    const BAD: Corrupt = Corrupt("zipmap entry reaches outside");
    let size = zm.len();
    if size < 2 {
        return Err(Corrupt("zipmap shorter than its header"));
    }
    if zm[size - 1] != END {
        return Err(Corrupt("zipmap without its terminator"));
    }
    let out_of_range = |p: u64| p < 2 || p > (size - 1) as u64;
    let mut out = Vec::new();
    let mut p = 1usize;
    while zm[p] != END {
        let (flen, s) = length(zm, p).ok_or(BAD)?;
        if out_of_range((p + s) as u64) {
            return Err(BAD);
        }
        let fstart = p + s;
        let after_field = fstart as u64 + u64::from(flen);
        if out_of_range(after_field) {
            return Err(BAD);
        }
        p = after_field as usize;
        let (vlen, s) = length(zm, p).ok_or(BAD)?;
        if out_of_range((p + s) as u64) {
            return Err(BAD);
        }
        let free = zm[p + s];
        let vstart = p + s + 1;
        let after_value = vstart as u64 + u64::from(vlen) + u64::from(free);
        if out_of_range(after_value) {
            return Err(BAD);
        }
        let field = &zm[fstart..fstart + flen as usize];
        let value = zm.get(vstart..vstart + vlen as usize).ok_or(BAD)?;
        out.push((field, value));
        p = after_value as usize;
    }
    if out.is_empty() {
        return Err(Corrupt("empty zipmap"));
    }
    if zm[0] != BIGLEN && usize::from(zm[0]) != out.len() {
        return Err(Corrupt("zipmap count does not match its pairs"));
    }
    Ok(out)
}

/// A length at `p` and the bytes it takes.
fn length(zm: &[u8], p: usize) -> Option<(u32, usize)> {
    let b = *zm.get(p)?;
    if b < BIGLEN {
        Some((u32::from(b), 1))
    } else {
        let bytes: [u8; 4] = zm.get(p + 1..p + 5)?.try_into().ok()?;
        Some((u32::from_le_bytes(bytes), 5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_with_free_space_read_back() {
        // Two pairs, the second value with 2 bytes of free space after it.
        let zm = [2, 2, b'f', b'1', 2, 0, b'v', b'1', 2, b'f', b'2', 1, 2, b'x', 0, 0, END];
        assert_eq!(pairs(&zm), Ok(vec![(&b"f1"[..], &b"v1"[..]), (&b"f2"[..], &b"x"[..])]));
        for cut in 0..zm.len() {
            assert!(pairs(&zm[..cut]).is_err());
        }
        for i in 0..zm.len() {
            for v in [0u8, 1, 0xFD, 0xFE, 0xFF] {
                let mut bad = zm;
                bad[i] = v;
                let _ = pairs(&bad);
            }
        }
        assert!(pairs(&[0, END]).is_err(), "empty");
        assert!(pairs(&[3, 1, b'a', 1, 0, b'b', END]).is_err(), "wrong count");
    }
}
