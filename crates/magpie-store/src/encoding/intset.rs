//! Redis's intset (`intset.c`): a sorted array of distinct integers, all stored in the width of
//! the widest (16, 32 or 64 bits).
//!
//! ```text
//! intset := width:u32le count:u32le value{count}      width is 2, 4 or 8 (bytes per value);
//!                                                     values little-endian, ascending
//! ```

use super::Corrupt;

const HEADER: usize = 8;

/// Bytes per value needed to hold `v` (`_intsetValueEncoding`).
pub fn width_of(v: i64) -> usize {
    if i32::try_from(v).is_err() {
        8
    } else if i16::try_from(v).is_err() {
        4
    } else {
        2
    }
}

/// The intset of `values`, which must be ascending and distinct (as a set's integers sorted).
/// The width is the narrowest holding them all, as Redis's intset built by adding them has.
pub fn encode(values: &[i64]) -> Vec<u8> {
    debug_assert!(values.windows(2).all(|w| w[0] < w[1]));
    let width = values.iter().map(|&v| width_of(v)).max().unwrap_or(2);
    let mut out = Vec::with_capacity(HEADER + width * values.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for &v in values {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// A checked view of an intset's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Intset<'a> {
    width: usize,
    body: &'a [u8],
}

impl<'a> Intset<'a> {
    /// Checks bytes from outside as `intsetValidateIntegrity` does: a known width, a size that
    /// matches the count, at least one value, and (with `deep`) values strictly ascending.
    pub fn parse(bytes: &'a [u8], deep: bool) -> Result<Intset<'a>, Corrupt> {
        let header = bytes.get(..HEADER).ok_or(Corrupt("intset shorter than its header"))?;
        let width = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let width = match width {
            2 | 4 | 8 => width as usize,
            _ => return Err(Corrupt("intset with an unknown encoding")),
        };
        if (HEADER as u64) + u64::from(count) * width as u64 != bytes.len() as u64 {
            return Err(Corrupt("intset size does not match its count"));
        }
        if count == 0 {
            return Err(Corrupt("empty intset"));
        }
        let set = Intset { width, body: &bytes[HEADER..] };
        if deep && !set.iter().zip(set.iter().skip(1)).all(|(a, b)| a < b) {
            return Err(Corrupt("intset values out of order or repeated"));
        }
        Ok(set)
    }

    pub fn len(&self) -> usize {
        self.body.len() / self.width
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// Bytes per value.
    pub fn width(&self) -> usize {
        self.width
    }

    /// The values, in the order stored (ascending in a sound intset).
    pub fn iter(&self) -> impl Iterator<Item = i64> + 'a {
        let width = self.width;
        self.body.chunks_exact(width).map(move |c| match width {
            2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
            4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_follow_the_widest_value() {
        assert_eq!(encode(&[1, 2]), [2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 2, 0]);
        assert_eq!(encode(&[-1, 40000]), [4, 0, 0, 0, 2, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x40, 0x9C, 0, 0]);
        let big = encode(&[i64::MIN, 0, i64::MAX]);
        assert_eq!((big.len(), big[0]), (8 + 24, 8));
        for v in [i64::MIN, -2147483649, -2147483648, -32769, -32768, 0, 32767, 32768, 2147483647, 2147483648, i64::MAX]
        {
            let bytes = encode(&[v]);
            let set = Intset::parse(&bytes, true).expect("valid");
            assert_eq!((set.width(), set.iter().collect::<Vec<_>>()), (width_of(v), vec![v]));
        }
    }

    #[test]
    fn corrupt_intsets_are_refused() {
        let good = encode(&[1, 5, 9]);
        assert!(Intset::parse(&good, true).is_ok());
        let mut bad_width = good.clone();
        bad_width[0] = 3;
        let mut unsorted = good.clone();
        unsorted[8] = 7;
        let mut long_count = good.clone();
        long_count[4] = 4;
        for bad in [&good[..7], &good[..good.len() - 1], &bad_width, &long_count, &encode(&[])] {
            assert!(Intset::parse(bad, true).is_err(), "{bad:?}");
        }
        assert!(Intset::parse(&unsorted, true).is_err());
        assert!(Intset::parse(&unsorted, false).is_ok(), "order is a deep check");
    }
}
