//! Redis's ziplist (`ziplist.c`), read only: small lists, hashes and sorted sets in RDB files
//! written by Redis before 7.0 (RDB types LIST_ZIPLIST, LIST_QUICKLIST, HASH_ZIPLIST,
//! ZSET_ZIPLIST).
//!
//! ```text
//! ziplist := total-bytes:u32le tail-offset:u32le count:u16le entry* 0xFF
//! entry   := prevlen encoding data
//! prevlen := u8 (< 254) | 0xFE u32le                 size of the previous entry
//! ```
//!
//! | encoding | entry |
//! |---|---|
//! | `00LLLLLL` | string, 6-bit length |
//! | `01LLLLLL LLLLLLLL` | string, 14-bit length (big-endian) |
//! | `10xxxxxx` + u32be | string, 32-bit length |
//! | `0xC0` / `0xD0` / `0xF0` / `0xE0` / `0xFE` | 16 / 32 / 24 / 64 / 8-bit signed integer, little-endian |
//! | `0xF1`..=`0xFD` | integer 0..=12 held in the low 4 bits (minus one) |
//!
//! `count` is 65535 when the entries are too many to count there.

use super::{Corrupt, Entry};

const HEADER: usize = 10;
const END: u8 = 0xFF;
const BIG_PREVLEN: u8 = 254;

/// One decoded entry header.
struct Header {
    prevlen: u64,
    /// Bytes of prevlen and encoding.
    header: usize,
    /// Bytes of data.
    len: u64,
    encoding: u8,
}

/// Checks a ziplist from outside as `ziplistValidateIntegrity` with `deep` does, and returns
/// its entries.
pub fn entries(zl: &[u8]) -> Result<Vec<Entry<'_>>, Corrupt> {
    let size = zl.len();
    if size < HEADER + 1 {
        return Err(Corrupt("ziplist shorter than its header"));
    }
    let bytes = u32::from_le_bytes([zl[0], zl[1], zl[2], zl[3]]) as usize;
    let tail = u32::from_le_bytes([zl[4], zl[5], zl[6], zl[7]]) as usize;
    let header_count = u16::from_le_bytes([zl[8], zl[9]]);
    if bytes != size {
        return Err(Corrupt("ziplist size does not match its header"));
    }
    if zl[size - 1] != END {
        return Err(Corrupt("ziplist without its terminator"));
    }
    if tail > size - 1 {
        return Err(Corrupt("ziplist tail offset past its end"));
    }
    let last = size - 1;
    let mut out = Vec::new();
    let mut p = HEADER;
    let mut prev: Option<usize> = None;
    let mut prev_raw = 0u64;
    while zl[p] != END {
        let h = entry_header(zl, p, last).ok_or(Corrupt("ziplist entry reaches outside"))?;
        if h.prevlen != prev_raw {
            return Err(Corrupt("ziplist prevlen does not match the previous entry"));
        }
        let data = p + h.header;
        let len = h.len as usize;
        out.push(value(zl, data, len, h.encoding).ok_or(Corrupt("ziplist entry reaches outside"))?);
        prev_raw = h.header as u64 + h.len;
        prev = Some(p);
        p = data + len;
    }
    if p != last {
        return Err(Corrupt("ziplist terminator before its end"));
    }
    if prev.is_some_and(|prev| prev != tail) {
        return Err(Corrupt("ziplist tail offset is not its last entry"));
    }
    if header_count != u16::MAX && usize::from(header_count) != out.len() {
        return Err(Corrupt("ziplist count does not match its entries"));
    }
    Ok(out)
}

/// `zipEntrySafe` with `validate_prevlen`: the entry's headers, data and the previous entry it
/// points back to all lie between the header and the terminator (at `last`).
fn entry_header(zl: &[u8], p: usize, last: usize) -> Option<Header> {
    let out_of_range = |x: u64| x < HEADER as u64 || x > last as u64;
    let first = *zl.get(p)?;
    let prevlensize = if first < BIG_PREVLEN { 1 } else { 5 };
    if out_of_range((p + prevlensize) as u64) {
        return None;
    }
    let enc_pos = p + prevlensize;
    let raw = *zl.get(enc_pos)?;
    let encoding = if raw < 0xC0 { raw & 0xC0 } else { raw };
    let lensize = match encoding {
        0x00 => 1,
        0x40 => 2,
        0x80 => 5,
        0xC0 | 0xD0 | 0xE0 | 0xF0 | 0xFE | 0xF1..=0xFD => 1,
        _ => return None,
    };
    if out_of_range((enc_pos + lensize) as u64) {
        return None;
    }
    let prevlen = if prevlensize == 1 {
        u64::from(first)
    } else {
        u64::from(u32::from_le_bytes(zl.get(p + 1..p + 5)?.try_into().ok()?))
    };
    let len: u64 = match encoding {
        0x00 => u64::from(raw & 0x3F),
        0x40 => (u64::from(raw & 0x3F) << 8) | u64::from(*zl.get(enc_pos + 1)?),
        0x80 => u64::from(u32::from_be_bytes(zl.get(enc_pos + 1..enc_pos + 5)?.try_into().ok()?)),
        0xFE => 1,
        0xC0 => 2,
        0xF0 => 3,
        0xD0 => 4,
        0xE0 => 8,
        _ => 0,
    };
    let header = prevlensize + lensize;
    if out_of_range(p as u64 + header as u64 + len) {
        return None;
    }
    if (p as u64) < prevlen || out_of_range(p as u64 - prevlen) {
        return None;
    }
    Some(Header { prevlen, header, len, encoding })
}

fn value(zl: &[u8], data: usize, len: usize, encoding: u8) -> Option<Entry<'_>> {
    let d = zl.get(data..data + len)?;
    let le = |d: &[u8]| d.iter().rev().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    Some(match encoding {
        0x00 | 0x40 | 0x80 => Entry::Str(d),
        0xFE => Entry::Int(i64::from(d[0] as i8)),
        0xC0 => Entry::Int(i64::from(le(d) as u16 as i16)),
        0xF0 => Entry::Int(i64::from(((le(d) as u32) << 8) as i32 >> 8)),
        0xD0 => Entry::Int(i64::from(le(d) as u32 as i32)),
        0xE0 => Entry::Int(le(d) as i64),
        imm => Entry::Int(i64::from(imm & 0x0F) - 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a ziplist as Redis's `ziplistPush` does (for tests of the reader).
    fn build(entries: &[Entry<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev_len = 0usize;
        let mut tail = HEADER;
        for e in entries {
            let start = body.len();
            tail = HEADER + start;
            if prev_len < 254 {
                body.push(prev_len as u8);
            } else {
                body.push(0xFE);
                body.extend_from_slice(&(prev_len as u32).to_le_bytes());
            }
            match *e {
                Entry::Str(s) if s.len() < 64 => body.push(s.len() as u8),
                Entry::Str(s) if s.len() < 16384 => {
                    body.extend_from_slice(&[0x40 | (s.len() >> 8) as u8, s.len() as u8]);
                }
                Entry::Str(s) => {
                    body.push(0x80);
                    body.extend_from_slice(&(s.len() as u32).to_be_bytes());
                }
                Entry::Int(n @ 0..=12) => body.push(0xF1 + n as u8),
                Entry::Int(n) if i8::try_from(n).is_ok() => body.extend_from_slice(&[0xFE, n as u8]),
                Entry::Int(n) if i16::try_from(n).is_ok() => {
                    body.push(0xC0);
                    body.extend_from_slice(&(n as i16).to_le_bytes());
                }
                Entry::Int(n) if (-(1 << 23)..1 << 23).contains(&n) => {
                    body.push(0xF0);
                    body.extend_from_slice(&(n as i32).to_le_bytes()[..3]);
                }
                Entry::Int(n) if i32::try_from(n).is_ok() => {
                    body.push(0xD0);
                    body.extend_from_slice(&(n as i32).to_le_bytes());
                }
                Entry::Int(n) => {
                    body.push(0xE0);
                    body.extend_from_slice(&n.to_le_bytes());
                }
            }
            if let Entry::Str(s) = e {
                body.extend_from_slice(s);
            }
            prev_len = body.len() - start;
        }
        let mut zl = Vec::new();
        zl.extend_from_slice(&((HEADER + body.len() + 1) as u32).to_le_bytes());
        zl.extend_from_slice(&(tail as u32).to_le_bytes());
        zl.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        zl.extend_from_slice(&body);
        zl.push(END);
        zl
    }

    #[test]
    fn every_encoding_reads_back() {
        let long = vec![b'q'; 300];
        let huge = vec![b'h'; 20000];
        let entries = [
            Entry::Str(b"a"),
            Entry::Str(&long),
            Entry::Str(&huge),
            Entry::Int(0),
            Entry::Int(12),
            Entry::Int(13),
            Entry::Int(-128),
            Entry::Int(-30000),
            Entry::Int(8_000_000),
            Entry::Int(-8_388_608),
            Entry::Int(2_000_000_000),
            Entry::Int(i64::MIN),
            Entry::Str(b""),
        ];
        let zl = build(&entries);
        assert_eq!(super::entries(&zl), Ok(entries.to_vec()));
        assert_eq!(super::entries(&build(&[])), Ok(vec![]));
    }

    #[test]
    fn corrupt_ziplists_are_refused_and_never_panic() {
        let zl = build(&[Entry::Str(b"abc"), Entry::Int(1000), Entry::Str(&[b'z'; 300]), Entry::Int(5)]);
        assert!(super::entries(&zl).is_ok());
        for i in 0..zl.len() {
            for v in [0u8, 0x3F, 0x40, 0x80, 0xC0, 0xC1, 0xFD, 0xFE, 0xFF] {
                let mut bad = zl.clone();
                bad[i] = v;
                let _ = super::entries(&bad);
            }
        }
        for cut in 0..zl.len() {
            assert!(super::entries(&zl[..cut]).is_err());
        }
        let mut wrong_tail = zl.clone();
        wrong_tail[4] = 11;
        assert!(super::entries(&wrong_tail).is_err());
    }
}
