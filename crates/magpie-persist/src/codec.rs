//! The byte encodings shared by every file: variable-length integers, length-prefixed byte
//! strings, and a cursor that reads them back with bounds checks (a file is never trusted).

// The crate denies lossy `as` casts. Where a format wants the bits themselves (a low byte, a
// two's-complement reinterpretation, as Redis's C does implicitly), these name that intent;
// they compile to nothing. (`i64::cast_unsigned` and friends need Rust 1.87; our MSRV is 1.85.)

/// The low 8 bits of `n`: the format keeps the rest elsewhere, or `n` is known to be small.
pub(crate) const fn low_byte(n: u64) -> u8 {
    n.to_le_bytes()[0]
}

/// The two's-complement bits of `n`, read as unsigned (`(uint64_t)n` in C).
pub(crate) const fn bits_as_u64(n: i64) -> u64 {
    u64::from_ne_bytes(n.to_ne_bytes())
}

/// The bits of `n`, read as two's complement (`(int64_t)n` in C).
pub(crate) const fn bits_as_i64(n: u64) -> i64 {
    i64::from_ne_bytes(n.to_ne_bytes())
}

/// Appends `n` as an unsigned LEB128 varint (7 bits a byte, low bits first).
pub fn put_uvarint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(low_byte(n) | 0x80);
        n >>= 7;
    }
    out.push(low_byte(n));
}

/// Appends a signed integer, zigzag-encoded (small magnitudes take few bytes either sign).
pub fn put_ivarint(out: &mut Vec<u8>, n: i64) {
    put_uvarint(out, bits_as_u64((n << 1) ^ (n >> 63)));
}

/// Appends a byte string: its length as a varint, then the bytes.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_uvarint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Decoded<T> = Result<T, DecodeError>;

/// Reads the encodings above from a byte slice.
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn u8(&mut self) -> Decoded<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(|| DecodeError("unexpected end of record".into()))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn uvarint(&mut self) -> Decoded<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                if shift == 63 && b > 1 {
                    break;
                }
                return Ok(n);
            }
        }
        Err(DecodeError("varint longer than 64 bits".into()))
    }

    pub fn ivarint(&mut self) -> Decoded<i64> {
        let z = self.uvarint()?;
        // Zigzag: the low bit is the sign; `-(z & 1)` is all ones for a negative number.
        Ok(bits_as_i64(z >> 1) ^ bits_as_i64(z & 1).wrapping_neg())
    }

    /// A count of items that follow, each at least `min_item` bytes long: rejected at once if
    /// the rest of the buffer cannot hold them (so a corrupt count never reserves memory).
    pub fn count(&mut self, min_item: usize) -> Decoded<usize> {
        let n = self.uvarint()?;
        let left = (self.buf.len() - self.pos) as u64;
        if n.saturating_mul(min_item.max(1) as u64) > left {
            return Err(DecodeError(format!("count {n} does not fit in the {left} bytes left")));
        }
        // Not more than the bytes left (checked above), so it fits a usize.
        usize::try_from(n).map_err(|_| DecodeError(format!("count {n} does not fit in memory")))
    }

    pub fn bytes(&mut self) -> Decoded<&'a [u8]> {
        let len = self.uvarint()?;
        let left = self.buf.len() - self.pos;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= left)
            .ok_or_else(|| DecodeError(format!("string of {len} bytes does not fit in the {left} bytes left")))?;
        let s = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }

    pub fn f64(&mut self) -> Decoded<f64> {
        let end = self.pos + 8;
        let b = self.buf.get(self.pos..end).ok_or_else(|| DecodeError("unexpected end of record".into()))?;
        self.pos = end;
        Ok(f64::from_le_bytes(b.try_into().map_err(|_| DecodeError("short float".into()))?))
    }

    pub fn u64_le(&mut self) -> Decoded<u64> {
        let end = self.pos + 8;
        let b = self.buf.get(self.pos..end).ok_or_else(|| DecodeError("unexpected end of record".into()))?;
        self.pos = end;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| DecodeError("short integer".into()))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_their_edges() {
        let values = [0u64, 1, 127, 128, 255, 16383, 16384, u64::from(u32::MAX), u64::MAX - 1, u64::MAX];
        for &v in &values {
            let mut buf = Vec::new();
            put_uvarint(&mut buf, v);
            let mut c = Cursor::new(&buf);
            assert_eq!(c.uvarint(), Ok(v));
            assert!(c.is_empty());
        }
        for &v in &[0i64, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            let mut buf = Vec::new();
            put_ivarint(&mut buf, v);
            assert_eq!(Cursor::new(&buf).ivarint(), Ok(v));
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(Cursor::new(&[0x80; 11]).uvarint().is_err());
        assert!(Cursor::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]).uvarint().is_err());
        assert!(Cursor::new(&[5, b'a']).bytes().is_err());
        let mut huge = Vec::new();
        put_uvarint(&mut huge, u64::MAX);
        assert!(Cursor::new(&huge).bytes().is_err());
        assert!(Cursor::new(&huge).count(1).is_err());
        assert!(Cursor::new(&[1, 2, 3]).f64().is_err());
    }
}
