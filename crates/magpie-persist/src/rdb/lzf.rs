//! LZF, as Redis 7.0 builds it (`lzf_c.c` and `lzf_d.c` with `HLOG 16`, `VERY_FAST`): RDB files
//! and DUMP payloads compress strings longer than 20 bytes with it when that saves at least 4
//! bytes.
//!
//! ```text
//! 000LLLLL data[L+1]                 literal run of 1..=32 bytes
//! LLLooooo oooooooo                  back reference: copy L+2 (3..=8) bytes from o+1 back
//! 111ooooo LLLLLLLL oooooooo         back reference: copy L+9 (9..=264) bytes from o+1 back
//! ```
//!
//! The compressor follows Redis's control flow step by step (hash of three bytes, the same
//! table size, the same rule for where the table is updated after a match, the same checks
//! against the output limit), so that its output is Redis's byte for byte. One difference:
//! Redis leaves its hash table uninitialised (`INIT_HTAB 0`), so a stale slot can occasionally
//! make it find a match a fresh table would not; here the table always starts empty.

use std::cell::RefCell;

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const HMASK: u32 = (1 << HLOG) - 1;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// Most bytes one byte of compressed input can expand to (a 3-byte reference copies 264).
pub(super) const MAX_EXPANSION: u64 = 88;

thread_local! {
    /// The hash table: slot -> (generation << 32 | position + 1). A slot written in an earlier
    /// call has an older generation and counts as empty, so the table is not cleared per call.
    static TABLE: RefCell<(u32, Vec<u64>)> = const { RefCell::new((0, Vec::new())) };
}

fn idx(h: u32) -> usize {
    let slot = (h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) & HMASK;
    // Below HSIZE, which is a usize.
    slot as usize
}

/// Compresses `input` into at most `out_len` bytes, as `lzf_compress(in, in_len, out, out_len)`;
/// `None` where it returns 0 (empty input, or the output would not fit).
pub fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    if input.is_empty() || out_len == 0 || input.len() >= u32::MAX as usize {
        return None;
    }
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let (generation, table) = &mut *t;
        if table.is_empty() {
            table.resize(HSIZE, 0);
        }
        *generation = generation.wrapping_add(1);
        if *generation == 0 {
            table.fill(0);
            *generation = 1;
        }
        compress_with(input, out_len, *generation, table)
    })
}

fn compress_with(input: &[u8], out_len: usize, generation: u32, htab: &mut [u64]) -> Option<Vec<u8>> {
    let in_len = input.len();
    let tag = u64::from(generation) << 32;
    let get = |htab: &[u64], slot: usize| -> Option<usize> {
        let v = htab[slot];
        let pos = v & u64::from(u32::MAX);
        if v >> 32 != u64::from(generation) || pos == 0 {
            return None;
        }
        // A position below the input's length (which `compress` keeps under u32::MAX), stored + 1.
        usize::try_from(pos - 1).ok()
    };
    let put = |htab: &mut [u64], slot: usize, pos: usize| htab[slot] = tag | (pos as u64 + 1);
    // The output may overshoot `out_len` by a reserved (unwritten) run byte before a check
    // refuses; a little slack keeps the indexing simple.
    let mut out = vec![0u8; out_len + 2];
    let frst = |ip: usize| (u32::from(input[ip]) << 8) | u32::from(input[ip + 1]);
    let next = |v: u32, ip: usize| (v << 8) | u32::from(input[ip + 2]);

    let mut ip = 0usize;
    let mut op = 1usize; // out[0] is the first literal run's length
    let mut lit = 0usize;
    let mut hval = if in_len >= 2 { frst(0) } else { 0 };
    while ip + 2 < in_len {
        hval = next(hval, ip);
        let slot = idx(hval);
        let reference = get(htab, slot);
        put(htab, slot, ip);
        let found = reference.filter(|&r| {
            r < ip
                && ip - r - 1 < MAX_OFF
                && r > 0
                && input[r + 2] == input[ip + 2]
                && input[r..r + 2] == input[ip..ip + 2]
        });
        if let Some(r) = found {
            let off = ip - r - 1;
            let mut len = 2usize;
            let maxlen = (in_len - ip - len).min(MAX_REF);
            if op + 3 + 1 >= out_len && op - usize::from(lit == 0) + 3 + 1 >= out_len {
                return None;
            }
            out[op - lit - 1] = byte(lit).wrapping_sub(1); // stop run
            op -= usize::from(lit == 0); // undo run if length is zero
            'search: {
                if maxlen > 16 {
                    for _ in 0..16 {
                        len += 1;
                        if input[r + len] != input[ip + len] {
                            break 'search;
                        }
                    }
                }
                loop {
                    len += 1;
                    if !(len < maxlen && input[r + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2; // the format stores the match length minus 2
            ip += 1;
            if len < 7 {
                out[op] = byte((off >> 8) + (len << 5));
                op += 1;
            } else {
                out[op] = byte((off >> 8) + (7 << 5));
                out[op + 1] = byte(len - 7);
                op += 2;
            }
            out[op] = byte(off & 0xff); // the high bits went in the first byte
            op += 1;
            lit = 0;
            op += 1; // start run
            ip += len + 1;
            if ip + 2 >= in_len {
                break;
            }
            // VERY_FAST: hash the last two positions of the match.
            ip -= 2;
            hval = frst(ip);
            hval = next(hval, ip);
            put(htab, idx(hval), ip);
            ip += 1;
            hval = next(hval, ip);
            put(htab, idx(hval), ip);
            ip += 1;
        } else {
            if op >= out_len {
                return None;
            }
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = byte(lit - 1);
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > out_len {
        return None;
    }
    while ip < in_len {
        lit += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = byte(lit - 1);
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = byte(lit).wrapping_sub(1); // end run
    op -= usize::from(lit == 0);
    out.truncate(op);
    Some(out)
}

/// One byte of the compressor's output. Every value it is given is below 256 by construction:
/// a literal run is at most `MAX_LIT` (32), an offset below `MAX_OFF` (8192) so `off >> 8` is
/// below 32, a short match length below 7 (so `len << 5` is at most 192), a long one at most
/// `MAX_REF - 2` (262, so `len - 7` is at most 255), and `off & 0xff`. A plain cast (checked in
/// debug builds) because this runs for every match of every compressed string.
#[allow(clippy::cast_possible_truncation)]
#[inline(always)]
fn byte(n: usize) -> u8 {
    debug_assert!(n <= 0xff, "LZF output byte {n} out of range");
    n as u8
}

/// Decompresses `input`, which must expand to exactly `out_len` bytes (Redis refuses any other
/// length). `None` on malformed input. Allocates `out_len`: callers bound it first (at most
/// [`MAX_EXPANSION`] times the input).
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(out_len);
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < (1 << 5) {
            let n = ctrl + 1;
            if out.len() + n > out_len {
                return None;
            }
            out.extend_from_slice(input.get(ip..ip + n)?);
            ip += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(ip)?);
                ip += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + usize::from(*input.get(ip)?) + 1;
            ip += 1;
            let len = len + 2;
            if out.len() + len > out_len {
                return None;
            }
            let start = out.len().checked_sub(back)?;
            // Copies may overlap what they produce (a run of one byte repeated): byte by byte.
            for i in 0..len {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    (out.len() == out_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_redis_outputs() {
        // What redis-server 7.0 writes in the DUMP of a string of 100 'a's and of
        // "hello world hello world hello world 1234567890".
        let input = vec![b'a'; 100];
        let c = compress(&input, input.len() - 4).expect("compressible");
        assert_eq!(c, [0x01, b'a', b'a', 0xE0, b'W', 0x00, 0x01, b'a', b'a']);
        assert_eq!(decompress(&c, 100), Some(input));
        let input = b"hello world hello world hello world 1234567890";
        let c = compress(input, input.len() - 4).expect("compressible");
        let mut want = vec![0x0c];
        want.extend_from_slice(b"hello world h");
        want.extend_from_slice(&[0xe0, 0x0e, 0x0b, 0x09]);
        want.extend_from_slice(b"1234567890");
        assert_eq!(c, want);
        // Not worth it (or impossible) within the limit: Redis stores these verbatim.
        assert_eq!(compress(b"abcdefghijklmnopqrstuvwxyz", 22), None);
    }

    #[test]
    fn round_trips_and_respects_the_output_limit() {
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..2000 {
            let len = rng.usize(1..3000);
            let alphabet = rng.u8(1..=255);
            let input: Vec<u8> = (0..len).map(|_| rng.u8(0..alphabet)).collect();
            let limit = rng.usize(1..len + 100);
            if let Some(c) = compress(&input, limit) {
                assert!(c.len() <= limit);
                assert_eq!(decompress(&c, len).as_deref(), Some(&input[..]));
                assert_eq!(decompress(&c, len + 1), None, "a wrong length is refused");
            }
            assert!(compress(&input, len + 100).is_some() || len < 1, "always fits with room");
        }
    }

    #[test]
    fn malformed_input_is_refused_without_panicking() {
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..5000 {
            let input: Vec<u8> = (0..rng.usize(0..40)).map(|_| rng.u8(..)).collect();
            let _ = decompress(&input, rng.usize(0..300));
        }
        assert_eq!(decompress(&[0x20, 0x00], 3), None, "reference before the start");
        assert_eq!(decompress(&[0x05, b'a'], 6), None, "literal past the input");
    }
}
