//! Redis's CRC-64 (`crc64.c`): the Jones polynomial (0xad93d23594c935a9), reflected input and
//! output, initial value 0, no final xor ("CRC-64/REDIS" in the catalogues). It checks RDB files
//! (the 8 bytes after the EOF opcode) and DUMP payloads (their last 8 bytes). Computed 8 bytes at
//! a time with tables built at compile time ("slicing by 8", as Redis's `crcspeed`).

/// The polynomial, bit-reversed for the reflected algorithm.
const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

const TABLES: [[u64; 256]; 8] = tables();

const fn tables() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut n = 0;
    while n < 256 {
        let mut crc = n as u64;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY_REFLECTED } else { crc >> 1 };
            k += 1;
        }
        t[0][n] = crc;
        n += 1;
    }
    let mut n = 0;
    while n < 256 {
        let mut k = 1;
        while k < 8 {
            let prev = t[k - 1][n];
            t[k][n] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            k += 1;
        }
        n += 1;
    }
    t
}

/// Continues `crc` (0 to start) over `data`, as Redis's `crc64(crc, data, len)`.
pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let x = crc ^ u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        crc = TABLES[7][(x & 0xff) as usize]
            ^ TABLES[6][((x >> 8) & 0xff) as usize]
            ^ TABLES[5][((x >> 16) & 0xff) as usize]
            ^ TABLES[4][((x >> 24) & 0xff) as usize]
            ^ TABLES[3][((x >> 32) & 0xff) as usize]
            ^ TABLES[2][((x >> 40) & 0xff) as usize]
            ^ TABLES[1][((x >> 48) & 0xff) as usize]
            ^ TABLES[0][(x >> 56) as usize];
    }
    for &b in chunks.remainder() {
        crc = TABLES[0][((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit by bit, as the pycrc-generated `_crc64` in Redis's crc64.c.
    fn slow(data: &[u8]) -> u64 {
        const POLY: u64 = 0xad93_d235_94c9_35a9;
        let mut crc = 0u64;
        for &c in data {
            let mut i = 1u8;
            while i != 0 {
                let mut bit = crc & 0x8000_0000_0000_0000 != 0;
                if c & i != 0 {
                    bit = !bit;
                }
                crc <<= 1;
                if bit {
                    crc ^= POLY;
                }
                i = i.wrapping_shl(1);
            }
        }
        crc.reverse_bits()
    }

    #[test]
    fn redis_test_vectors() {
        // crc64Test in Redis's crc64.c.
        assert_eq!(crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        let li = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed \
do eiusmod tempor incididunt ut labore et dolore magna \
aliqua. Ut enim ad minim veniam, quis nostrud exercitation \
ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis \
aute irure dolor in reprehenderit in voluptate velit esse \
cillum dolore eu fugiat nulla pariatur. Excepteur sint \
occaecat cupidatat non proident, sunt in culpa qui officia \
deserunt mollit anim id est laborum.\0";
        assert_eq!(crc64(0, li), 0xc779_4709_e696_83b3);
        assert_eq!(slow(li), 0xc779_4709_e696_83b3);
    }

    #[test]
    fn tables_agree_with_the_bitwise_definition_and_continue() {
        let mut rng = fastrand::Rng::with_seed(3);
        for len in 0..100 {
            let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            assert_eq!(crc64(0, &data), slow(&data));
            let cut = rng.usize(0..=len);
            assert_eq!(crc64(crc64(0, &data[..cut]), &data[cut..]), crc64(0, &data));
        }
    }
}
