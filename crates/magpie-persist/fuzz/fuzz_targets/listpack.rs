//! Arbitrary bytes as a listpack: validation never panics, and a listpack it accepts reads the
//! same entries forwards and backwards, and rebuilt from those entries validates again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_store::encoding::{intset::Intset, listpack, ziplist, zipmap};

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = listpack::validate(data) {
        let forward: Vec<_> = listpack::iter(data).collect();
        let mut backward: Vec<_> = listpack::iter(data).rev().collect();
        backward.reverse();
        assert_eq!(forward.len(), n);
        assert_eq!(forward, backward);
        let lp = listpack::Listpack::from_bytes(data.to_vec()).expect("validated");
        let rebuilt = listpack::Listpack::from_entries(lp.iter()).expect("small");
        assert_eq!(listpack::validate(rebuilt.as_bytes()), Ok(n));
        let strings: Vec<Vec<u8>> = forward.iter().map(|e| e.to_vec()).collect();
        let again: Vec<Vec<u8>> = rebuilt.iter().map(|e| e.to_vec()).collect();
        assert_eq!(strings, again);
    }
    let _ = listpack::iter(data).count();
    let _ = listpack::iter(data).rev().count();
    let _ = ziplist::entries(data);
    let _ = zipmap::pairs(data);
    if let Ok(set) = Intset::parse(data, true) {
        assert!(set.iter().zip(set.iter().skip(1)).all(|(a, b)| a < b));
    }
});
