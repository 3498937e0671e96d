//! The primitives of the RDB format: lengths, strings (plain, integer-encoded, LZF), doubles
//! and times, read from a byte slice (a DUMP payload) or a stream (a file), and written to a
//! buffer.
//!
//! ```text
//! length := 00LLLLLL                      6-bit length
//!         | 01LLLLLL LLLLLLLL             14-bit length, big-endian
//!         | 0x80 u32be | 0x81 u64be       32- and 64-bit lengths
//!         | 11EEEEEE                      a special string encoding E (below)
//! string := length data
//!         | 0xC0 i8 | 0xC1 i16le | 0xC2 i32le          the integer, in decimal
//!         | 0xC3 clen:length len:length lzf[clen]      LZF-compressed, len bytes once expanded
//! ```

use std::io::Read;

use super::{RdbError, crc64::crc64, lzf};

pub const ENC_INT8: u8 = 0;
pub const ENC_INT16: u8 = 1;
pub const ENC_INT32: u8 = 2;
pub const ENC_LZF: u8 = 3;

/// A length, or the special string encoding that stands in its place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Len {
    Len(u64),
    Encoded(u8),
}

/// Where RDB bytes come from.
pub trait Input {
    /// Fills `buf`, or fails with [`RdbError::Eof`].
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), RdbError>;

    /// Reads `n` bytes into a new vector, allocating as the bytes arrive (never `n` up front
    /// from a length nobody has checked).
    fn read_vec(&mut self, n: u64) -> Result<Vec<u8>, RdbError>;

    fn u8(&mut self) -> Result<u8, RdbError> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut b = [0u8; N];
        self.read_exact(&mut b)?;
        Ok(b)
    }
}

/// A DUMP payload or any bytes in memory.
pub struct SliceInput<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> SliceInput<'a> {
    pub fn new(data: &'a [u8]) -> SliceInput<'a> {
        SliceInput { data, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }
}

impl Input for SliceInput<'_> {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), RdbError> {
        let end = self.pos.checked_add(buf.len()).filter(|&e| e <= self.data.len()).ok_or(RdbError::Eof)?;
        buf.copy_from_slice(&self.data[self.pos..end]);
        self.pos = end;
        Ok(())
    }

    fn read_vec(&mut self, n: u64) -> Result<Vec<u8>, RdbError> {
        let n = usize::try_from(n).map_err(|_| RdbError::Eof)?;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or(RdbError::Eof)?;
        let v = self.data[self.pos..end].to_vec();
        self.pos = end;
        Ok(v)
    }
}

/// A file or socket, read through a buffer, keeping the CRC-64 of every byte read.
pub struct StreamInput<R: Read> {
    inner: R,
    crc: u64,
    read: u64,
}

impl<R: Read> StreamInput<R> {
    pub fn new(inner: R) -> StreamInput<R> {
        StreamInput { inner, crc: 0, read: 0 }
    }

    pub fn crc(&self) -> u64 {
        self.crc
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.read
    }

    /// Reads without adding to the checksum (the checksum itself).
    pub fn read_exact_unchecked(&mut self, buf: &mut [u8]) -> Result<(), RdbError> {
        read_fully(&mut self.inner, buf)?;
        self.read += buf.len() as u64;
        Ok(())
    }
}

fn read_fully<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), RdbError> {
    r.read_exact(buf)
        .map_err(|e| if e.kind() == std::io::ErrorKind::UnexpectedEof { RdbError::Eof } else { RdbError::Io(e) })
}

impl<R: Read> Input for StreamInput<R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), RdbError> {
        read_fully(&mut self.inner, buf)?;
        self.crc = crc64(self.crc, buf);
        self.read += buf.len() as u64;
        Ok(())
    }

    fn read_vec(&mut self, n: u64) -> Result<Vec<u8>, RdbError> {
        const CHUNK: u64 = 1 << 20;
        let mut v = Vec::with_capacity(n.min(CHUNK) as usize);
        let mut left = n;
        while left > 0 {
            let take = left.min(CHUNK) as usize;
            let start = v.len();
            v.resize(start + take, 0);
            self.read_exact(&mut v[start..])?;
            left -= take as u64;
        }
        Ok(v)
    }
}

/// Reads a length or an encoding marker (`rdbLoadLenByRef`).
pub fn read_len_or_enc(inp: &mut impl Input) -> Result<Len, RdbError> {
    let b = inp.u8()?;
    Ok(match b >> 6 {
        3 => Len::Encoded(b & 0x3F),
        0 => Len::Len(u64::from(b & 0x3F)),
        1 => Len::Len((u64::from(b & 0x3F) << 8) | u64::from(inp.u8()?)),
        _ if b == 0x80 => Len::Len(u64::from(u32::from_be_bytes(inp.array()?))),
        _ if b == 0x81 => Len::Len(u64::from_be_bytes(inp.array()?)),
        _ => return Err(RdbError::corrupt(format!("Unknown length encoding {} in rdbLoadLen()", b >> 6))),
    })
}

/// Reads a plain length (`rdbLoadLen`); an encoding marker where a length belongs is damage.
pub fn read_len(inp: &mut impl Input) -> Result<u64, RdbError> {
    match read_len_or_enc(inp)? {
        Len::Len(n) => Ok(n),
        Len::Encoded(e) => Err(RdbError::corrupt(format!("Unexpected string encoding {e} where a length belongs"))),
    }
}

/// Reads a string in any of its encodings (`rdbGenericLoadStringObject`).
pub fn read_string(inp: &mut impl Input) -> Result<Vec<u8>, RdbError> {
    match read_len_or_enc(inp)? {
        Len::Len(n) => inp.read_vec(n),
        Len::Encoded(ENC_INT8) => Ok(decimal(i64::from(i8::from_le_bytes(inp.array()?)))),
        Len::Encoded(ENC_INT16) => Ok(decimal(i64::from(i16::from_le_bytes(inp.array()?)))),
        Len::Encoded(ENC_INT32) => Ok(decimal(i64::from(i32::from_le_bytes(inp.array()?)))),
        Len::Encoded(ENC_LZF) => {
            let clen = read_len(inp)?;
            let len = read_len(inp)?;
            // Checked before anything is allocated: LZF cannot expand more than this.
            if len > clen.saturating_mul(lzf::MAX_EXPANSION) {
                return Err(RdbError::corrupt("Invalid LZF compressed string"));
            }
            let c = inp.read_vec(clen)?;
            let len = usize::try_from(len).map_err(|_| RdbError::corrupt("Invalid LZF compressed string"))?;
            lzf::decompress(&c, len).ok_or_else(|| RdbError::corrupt("Invalid LZF compressed string"))
        }
        Len::Encoded(e) => Err(RdbError::corrupt(format!("Unknown RDB string encoding type {e}"))),
    }
}

fn decimal(n: i64) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
}

/// A little-endian 64-bit millisecond time (expiry, PEL delivery, consumer seen time).
pub fn read_ms(inp: &mut impl Input) -> Result<i64, RdbError> {
    Ok(i64::from_le_bytes(inp.array()?))
}

/// A binary double (RDB 8 and later): IEEE-754, little-endian.
pub fn read_binary_double(inp: &mut impl Input) -> Result<f64, RdbError> {
    Ok(f64::from_le_bytes(inp.array()?))
}

/// A double as older files store it (`rdbLoadDoubleValue`): a length byte, with 253, 254 and
/// 255 for NaN, +inf and -inf, then that many bytes of text.
pub fn read_text_double(inp: &mut impl Input) -> Result<f64, RdbError> {
    match inp.u8()? {
        255 => Ok(f64::NEG_INFINITY),
        254 => Ok(f64::INFINITY),
        253 => Ok(f64::NAN),
        n => {
            let text = inp.read_vec(u64::from(n))?;
            parse_double(&text).ok_or_else(|| RdbError::corrupt("Bad double value"))
        }
    }
}

/// Reads a double written as text (C's `strtod`/`%lg` forms that Redis writes: decimal,
/// exponent, `inf`, `-inf`, `nan`).
pub fn parse_double(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?.trim_start();
    s.parse::<f64>().ok()
}

/// Writes a length as `rdbSaveLen` does, in the fewest bytes.
pub fn put_len(out: &mut Vec<u8>, n: u64) {
    if let Ok(b) = u8::try_from(n)
        && b < 1 << 6
    {
        out.push(b);
    } else if let Ok(w) = u16::try_from(n)
        && w < 1 << 14
    {
        out.extend_from_slice(&(0x4000 | w).to_be_bytes());
    } else if let Ok(d) = u32::try_from(n) {
        out.push(0x80);
        out.extend_from_slice(&d.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// The integer encoding of `v` if it fits 8, 16 or 32 bits (`rdbEncodeInteger`).
fn put_int_encoding(out: &mut Vec<u8>, v: i64) -> bool {
    if let Ok(v) = i8::try_from(v) {
        out.push(0xC0 | ENC_INT8);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = i16::try_from(v) {
        out.push(0xC0 | ENC_INT16);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = i32::try_from(v) {
        out.push(0xC0 | ENC_INT32);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Writes a string as `rdbSaveRawString` does: a canonical integer of up to 11 bytes that fits
/// 32 bits as an integer; with `compress`, anything longer than 20 bytes that LZF shrinks by at
/// least 4 bytes compressed; otherwise length and bytes.
pub fn put_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11
        && let Some(v) = magpie_store::parse_i64(s)
        && put_int_encoding(out, v)
    {
        return;
    }
    if compress
        && s.len() > 20
        && let Some(c) = lzf::compress(s, s.len() - 4)
    {
        out.push(0xC0 | ENC_LZF);
        put_len(out, c.len() as u64);
        put_len(out, s.len() as u64);
        out.extend_from_slice(&c);
        return;
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Writes an integer-valued string as `rdbSaveLongLongAsStringObject` does (the same bytes
/// `put_string` writes for its decimal form).
pub fn put_int_string(out: &mut Vec<u8>, v: i64) {
    if !put_int_encoding(out, v) {
        let mut buf = itoa::Buffer::new();
        let s = buf.format(v).as_bytes();
        put_len(out, s.len() as u64);
        out.extend_from_slice(s);
    }
}

pub fn put_ms(out: &mut Vec<u8>, t: i64) {
    out.extend_from_slice(&t.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_bytes(s: &[u8], compress: bool) -> Vec<u8> {
        let mut out = Vec::new();
        put_string(&mut out, s, compress);
        out
    }

    #[test]
    fn lengths_use_the_fewest_bytes_and_read_back() {
        for (n, want) in [
            (0u64, &[0x00][..]),
            (63, &[0x3F]),
            (64, &[0x40, 0x40]),
            (16383, &[0x7F, 0xFF]),
            (16384, &[0x80, 0, 0, 0x40, 0]),
            (u64::from(u32::MAX), &[0x80, 0xFF, 0xFF, 0xFF, 0xFF]),
            (1 << 32, &[0x81, 0, 0, 0, 1, 0, 0, 0, 0]),
            (u64::MAX, &[0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
        ] {
            let mut out = Vec::new();
            put_len(&mut out, n);
            assert_eq!(out, want, "{n}");
            assert_eq!(read_len(&mut SliceInput::new(&out)).ok(), Some(n));
        }
        assert!(read_len(&mut SliceInput::new(&[0x82])).is_err());
    }

    #[test]
    fn strings_take_rdb_save_raw_string_encodings() {
        assert_eq!(string_bytes(b"0", true), [0xC0, 0]);
        assert_eq!(string_bytes(b"-128", true), [0xC0, 0x80]);
        assert_eq!(string_bytes(b"128", true), [0xC1, 0x80, 0]);
        assert_eq!(string_bytes(b"-2147483648", true), [0xC2, 0, 0, 0, 0x80]);
        assert_eq!(string_bytes(b"2147483648", true)[0], 10, "past 32 bits: text");
        assert_eq!(string_bytes(b"007", true), [3, b'0', b'0', b'7']);
        assert_eq!(string_bytes(&[b'a'; 20], true)[0], 20, "20 bytes are never compressed");
        assert_eq!(string_bytes(&[b'a'; 21], true)[0], 0xC3);
        assert_eq!(string_bytes(&[b'a'; 21], false)[0], 21);
        let mut out = Vec::new();
        put_int_string(&mut out, 1 << 40);
        assert_eq!(out, string_bytes(b"1099511627776", true));
        for s in [&b""[..], b"12", b"-99999", b"hello", &[b'z'; 1000], b"1099511627776"] {
            for compress in [false, true] {
                let bytes = string_bytes(s, compress);
                let mut inp = SliceInput::new(&bytes);
                assert_eq!(read_string(&mut inp).ok().as_deref(), Some(s));
                assert_eq!(inp.position(), bytes.len());
            }
        }
    }

    #[test]
    fn absurd_declared_lengths_fail_without_allocating() {
        let mut huge = vec![0x81];
        huge.extend_from_slice(&(u64::MAX - 1).to_be_bytes());
        assert!(matches!(read_string(&mut SliceInput::new(&huge)), Err(RdbError::Eof)));
        assert!(matches!(read_string(&mut StreamInput::new(&huge[..])), Err(RdbError::Eof)));
        // LZF claiming 1 GB from 2 bytes.
        let lzf = [0xC3, 0x02, 0x80, 0x40, 0, 0, 0, 0x00, b'a'];
        assert!(read_string(&mut SliceInput::new(&lzf)).is_err());
    }
}
