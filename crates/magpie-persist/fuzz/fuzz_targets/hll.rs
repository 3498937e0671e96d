//! Arbitrary bytes as a HyperLogLog value (a string a client SET, or a RESTORE payload
//! delivered): PFCOUNT, PFMERGE and PFADD on it never panic, and a value they accept stays a
//! value they accept. Lives with the RDB targets because HLL values arrive through RESTORE.

#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_store::hll;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    // Mostly well-formed headers, so the fuzzer spends its time in the registers.
    let mut v = b"HYLL".to_vec();
    v.push(mode & 1);
    v.extend_from_slice(&[0; 11]);
    v.extend_from_slice(body);
    if !hll::is_hll(&v) {
        return;
    }
    let count = hll::count(&v);
    let mut max = vec![0u8; hll::REGISTERS];
    // (Like Redis's, the merge stops at a run that overflows the registers and may then accept
    // what the count refuses: only that neither panics is checked here.)
    if hll::merge_into(&mut max, &v).is_ok() {
        let _ = hll::count_registers(&max);
    }
    let sparse_max = usize::from(mode >> 1) * 40;
    for ele in body.chunks(5).take(64) {
        if hll::add(&mut v, ele, sparse_max).is_err() {
            return;
        }
        assert!(hll::is_hll(&v), "PFADD keeps a HyperLogLog");
    }
    if count.is_ok() {
        hll::count(&v).expect("a sound value stays sound");
        let mut d = v.clone();
        hll::to_dense(&mut d).expect("a sound value turns dense");
        assert_eq!(hll::count(&d), hll::count(&v));
    }
});
