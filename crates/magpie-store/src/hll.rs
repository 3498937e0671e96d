//! HyperLogLog on string values, byte for byte as Redis 7.0 (`hyperloglog.c`), so that a value
//! moved between Redis and Magpie keeps working and PFCOUNT gives the same estimate.
//!
//! ```text
//! value  := "HYLL" encoding:u8 (0 dense, 1 sparse) 0 0 0 card:u64le registers
//! dense  := 16384 registers of 6 bits, little-endian bit order (12288 bytes)
//! sparse := opcodes covering the 16384 registers in order:
//!           00xxxxxx            ZERO: xxxxxx+1 registers at 0 (1..64)
//!           01xxxxxx yyyyyyyy   XZERO: xxxxxxyyyyyyyy+1 registers at 0 (1..16384)
//!           1vvvvvxx            VAL: xx+1 registers (1..4) at vvvvv+1 (1..32)
//! ```
//!
//! The high bit of `card` set means the cached cardinality is stale. Elements are hashed with
//! MurmurHash64A (seed 0xadc83b19); the low 14 bits pick a register, the run of zeros after
//! them (plus one) is the register's candidate value. The estimate is Ertl's improved
//! estimator as Redis 7 computes it.

/// Registers: 2^14.
pub const REGISTERS: usize = 1 << 14;
const P: u32 = 14;
const Q: usize = 64 - P as usize;
/// Header bytes.
pub const HDR: usize = 16;
/// Size of a dense value.
pub const DENSE_SIZE: usize = HDR + (REGISTERS * 6).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
/// Redis's `hll-sparse-max-bytes` default.
pub const SPARSE_MAX_BYTES: usize = 3000;

/// The value is not a sound HyperLogLog (Redis's `-INVALIDOBJ Corrupted HLL object detected`).
#[derive(Debug, PartialEq, Eq)]
pub struct Corrupt;

/// MurmurHash64A, as Redis's copy reads the input (little-endian words).
pub fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let mut k = u64::from_le_bytes(w);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate().rev() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element goes to and its candidate value (`hllPatLen`).
pub fn pattern(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// A new, empty HyperLogLog: sparse, one XZERO per 16384 registers (`createHLLObject`).
pub fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 2);
    v.extend_from_slice(b"HYLL");
    v.push(SPARSE);
    v.extend_from_slice(&[0; 11]);
    let l = XZERO_MAX_LEN - 1;
    v.push(0x40 | (l >> 8) as u8);
    v.push((l & 0xff) as u8);
    v
}

/// Whether a string may be used as a HyperLogLog (`isHLLObjectOrReply`): the header, a known
/// encoding, and the exact size of a dense one.
pub fn is_hll(v: &[u8]) -> bool {
    v.len() >= HDR && &v[..4] == b"HYLL" && v[4] <= SPARSE && (v[4] != DENSE || v.len() == DENSE_SIZE)
}

/// The cached cardinality, if it is valid.
pub fn cached(v: &[u8]) -> Option<u64> {
    let card: [u8; 8] = v.get(8..16)?.try_into().ok()?;
    (card[7] & 0x80 == 0).then(|| u64::from_le_bytes(card))
}

/// Stores the cardinality in the header.
pub fn set_cache(v: &mut [u8], card: u64) {
    if let Some(c) = v.get_mut(8..16) {
        c.copy_from_slice(&card.to_le_bytes());
    }
}

/// Marks the cached cardinality stale.
pub fn invalidate(v: &mut [u8]) {
    if let Some(b) = v.get_mut(15) {
        *b |= 0x80;
    }
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let b0 = u16::from(regs.get(byte).copied().unwrap_or(0));
    let b1 = u16::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & 63) as u8
}

fn dense_set(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let v = u16::from(val);
    if let Some(b) = regs.get_mut(byte) {
        *b &= !((63u16 << fb) as u8);
        *b |= (v << fb) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b &= !((63u16 >> (8 - fb)) as u8);
        *b |= (v >> (8 - fb)) as u8;
    }
}

/// Raises register `i` of dense registers to `count`; whether it changed.
fn dense_raise(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_set(regs, i, count);
        true
    } else {
        false
    }
}

/// One sparse opcode at `p`: (registers covered, value, bytes).
fn sparse_op(v: &[u8], p: usize) -> (usize, u8, usize) {
    let b = v[p];
    if b & 0xc0 == 0 {
        (usize::from(b & 0x3f) + 1, 0, 1)
    } else if b & 0xc0 == 0x40 {
        let lo = usize::from(v.get(p + 1).copied().unwrap_or(0));
        (((usize::from(b & 0x3f) << 8) | lo) + 1, 0, 2)
    } else {
        (usize::from(b & 3) + 1, ((b >> 2) & 0x1f) + 1, 1)
    }
}

fn val_op(val: u8, len: usize) -> u8 {
    0x80 | ((val - 1) << 2) | (len as u8 - 1)
}

fn push_zeros(seq: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        let l = len - 1;
        seq.push(0x40 | (l >> 8) as u8);
        seq.push((l & 0xff) as u8);
    } else {
        seq.push((len - 1) as u8);
    }
}

/// Turns a sparse value into a dense one (`hllSparseToDense`).
pub fn to_dense(v: &mut Vec<u8>) -> Result<(), Corrupt> {
    if v.get(4) == Some(&DENSE) {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    // The header is carried over (magic, cached cardinality), as Redis copies it.
    dense[..HDR].copy_from_slice(v.get(..HDR).ok_or(Corrupt)?);
    dense[4] = DENSE;
    let mut idx = 0usize;
    let mut p = HDR;
    while p < v.len() {
        let (run, val, len) = sparse_op(v, p);
        if val > 0 {
            if run + idx > REGISTERS {
                break;
            }
            for _ in 0..run {
                dense_set(&mut dense[HDR..], idx, val);
                idx += 1;
            }
        } else {
            idx += run;
        }
        p += len;
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    *v = dense;
    Ok(())
}

/// Raises register `index` to `count` (`hllSparseSet` / `hllDenseSet`), turning a sparse
/// value dense when it would outgrow `sparse_max` bytes or a value above 32 is needed.
/// Whether a register changed.
pub fn set_register(v: &mut Vec<u8>, index: usize, count: u8, sparse_max: usize) -> Result<bool, Corrupt> {
    match v.get(4) {
        Some(&DENSE) => {
            let changed = dense_raise(&mut v[HDR..], index, count);
            if changed {
                invalidate(v);
            }
            return Ok(changed);
        }
        Some(&SPARSE) => {}
        _ => return Err(Corrupt),
    }
    if count > VAL_MAX_VALUE {
        return promote(v, index, count);
    }
    // Find the opcode covering `index`.
    let (mut p, mut first, mut span, mut prev) = (HDR, 0usize, 0usize, None);
    let mut oplen = 1;
    while p < v.len() {
        let (run, _, len) = sparse_op(v, p);
        span = run;
        oplen = len;
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += len;
        first += span;
    }
    if span == 0 || p >= v.len() {
        return Err(Corrupt);
    }
    let (run, val, _) = sparse_op(v, p);
    let is_xzero = oplen == 2;
    if val > 0 {
        if val >= count {
            return Ok(false);
        }
        if run == 1 {
            v[p] = val_op(count, 1);
            merge_vals(v, prev.unwrap_or(HDR));
            return Ok(true);
        }
    } else if !is_xzero && run == 1 {
        v[p] = val_op(count, 1);
        merge_vals(v, prev.unwrap_or(HDR));
        return Ok(true);
    }
    // Split the run into up to three opcodes.
    let last = first + span - 1;
    let mut seq = Vec::with_capacity(5);
    if val == 0 {
        if index != first {
            push_zeros(&mut seq, index - first);
        }
        seq.push(val_op(count, 1));
        if index != last {
            push_zeros(&mut seq, last - index);
        }
    } else {
        if index != first {
            seq.push(val_op(val, index - first));
        }
        seq.push(val_op(count, 1));
        if index != last {
            seq.push(val_op(val, last - index));
        }
    }
    let old_len = if is_xzero { 2 } else { 1 };
    if seq.len() > old_len && v.len() + seq.len() - old_len > sparse_max {
        return promote(v, index, count);
    }
    let end = (p + old_len).min(v.len());
    if v.capacity() < v.len() + seq.len() {
        // Grow by an eighth, not double: a sparse value grows a few bytes at a time up to
        // `sparse_max`, and thousands of small HyperLogLogs would otherwise carry up to half
        // their size in spare capacity.
        v.reserve_exact(v.len() / 8 + 8);
    }
    v.splice(p..end, seq);
    merge_vals(v, prev.unwrap_or(HDR));
    Ok(true)
}

fn promote(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(v)?;
    dense_raise(&mut v[HDR..], index, count);
    invalidate(v);
    Ok(true)
}

/// After a change: merges adjacent VAL opcodes of the same value, looking at up to five
/// opcodes from `p` (the opcode before the change), and marks the cache stale.
fn merge_vals(v: &mut Vec<u8>, mut p: usize) {
    let mut scan = 5;
    while p < v.len() && scan > 0 {
        scan -= 1;
        let b = v[p];
        if b & 0xc0 == 0x40 {
            p += 2;
            continue;
        } else if b & 0xc0 == 0 {
            p += 1;
            continue;
        }
        if p + 1 < v.len() && v[p + 1] & 0x80 != 0 {
            let (l1, v1, _) = sparse_op(v, p);
            let (l2, v2, _) = sparse_op(v, p + 1);
            if v1 == v2 && l1 + l2 <= VAL_MAX_LEN {
                v[p + 1] = val_op(v1, l1 + l2);
                v.remove(p);
                continue;
            }
        }
        p += 1;
    }
    invalidate(v);
}

/// PFADD of one element; whether a register changed.
pub fn add(v: &mut Vec<u8>, ele: &[u8], sparse_max: usize) -> Result<bool, Corrupt> {
    let (index, count) = pattern(ele);
    set_register(v, index, count, sparse_max)
}

/// Raises `max` (one byte per register) to the registers of `v` (`hllMerge`).
pub fn merge_into(max: &mut [u8], v: &[u8]) -> Result<(), Corrupt> {
    if v.get(4) == Some(&DENSE) {
        let regs = &v[HDR..];
        for (i, m) in max.iter_mut().enumerate().take(REGISTERS) {
            *m = (*m).max(dense_get(regs, i));
        }
        return Ok(());
    }
    let mut i = 0usize;
    let mut p = HDR;
    while p < v.len() {
        let (run, val, len) = sparse_op(v, p);
        if val > 0 {
            if run + i > REGISTERS {
                break;
            }
            for m in &mut max[i..i + run] {
                *m = (*m).max(val);
            }
        }
        i += run;
        p += len;
    }
    if i != REGISTERS { Err(Corrupt) } else { Ok(()) }
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// The estimate from a histogram of register values (`hllCount`).
fn estimate(histo: &[i64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (0.721_347_520_444_481_7 * m * m / z).round() as u64
}

/// The cardinality of a HyperLogLog value, ignoring its cache.
pub fn count(v: &[u8]) -> Result<u64, Corrupt> {
    let mut histo = [0i64; 64];
    match v.get(4) {
        Some(&DENSE) => {
            let regs = &v[HDR..];
            for i in 0..REGISTERS {
                histo[usize::from(dense_get(regs, i))] += 1;
            }
        }
        Some(&SPARSE) => {
            let mut idx = 0usize;
            let mut p = HDR;
            while p < v.len() {
                let (run, val, len) = sparse_op(v, p);
                idx += run;
                histo[usize::from(val)] += run as i64;
                p += len;
            }
            if idx != REGISTERS {
                return Err(Corrupt);
            }
        }
        _ => return Err(Corrupt),
    }
    Ok(estimate(&histo))
}

/// The cardinality of merged registers (one byte each, as [`merge_into`] fills them).
pub fn count_registers(max: &[u8]) -> u64 {
    let mut histo = [0i64; 64];
    for &r in max {
        histo[usize::from(r & 63)] += 1;
    }
    estimate(&histo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_matches_the_reference() {
        // MurmurHash64A's published reference: the empty input hashes to 0 with seed 0, and
        // a one-block input exercises the word loop (cross-checked against redis-server by
        // the differential script, which compares the registers PFADD writes).
        assert_eq!(murmur64a(b"", 0), 0);
        assert_ne!(murmur64a(b"abcdefgh", 0xadc83b19), murmur64a(b"abcdefgi", 0xadc83b19));
    }

    #[test]
    fn sparse_grows_then_turns_dense() {
        let mut v = new_sparse();
        assert_eq!(v.len(), 18);
        assert_eq!(count(&v), Ok(0));
        for i in 0..200u32 {
            add(&mut v, &i.to_le_bytes(), SPARSE_MAX_BYTES).unwrap();
        }
        assert_eq!(v[4], SPARSE);
        let sparse_estimate = count(&v).unwrap();
        assert!((190..=210).contains(&sparse_estimate), "{sparse_estimate}");
        let mut d = v.clone();
        to_dense(&mut d).unwrap();
        assert_eq!(d.len(), DENSE_SIZE);
        assert_eq!(count(&d).unwrap(), sparse_estimate);
        for i in 200..5000u32 {
            add(&mut v, &i.to_le_bytes(), SPARSE_MAX_BYTES).unwrap();
        }
        assert_eq!(v[4], DENSE);
        let e = count(&v).unwrap();
        assert!((4800..=5200).contains(&e), "{e}");
        let mut max = vec![0u8; REGISTERS];
        merge_into(&mut max, &v).unwrap();
        assert_eq!(count_registers(&max), e);
    }

    #[test]
    fn corrupt_sparse_is_refused() {
        let mut v = new_sparse();
        v.truncate(17);
        assert_eq!(count(&v), Err(Corrupt));
        let mut max = vec![0u8; REGISTERS];
        assert_eq!(merge_into(&mut max, &v), Err(Corrupt));
        let mut w = new_sparse();
        w.push(0x80);
        assert_eq!(count(&w), Err(Corrupt));
    }
}
