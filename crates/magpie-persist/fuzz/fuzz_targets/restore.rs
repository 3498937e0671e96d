//! Arbitrary bytes as a RESTORE payload (checksum check off, so the bytes reach the value
//! reader; byte 0's low bit chooses deep sanitization). Checks that reading never panics, and
//! that whatever is accepted is a sound value: written again and read back, it is the same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_persist::rdb::{ReadOptions, WriteOptions, dump, restore};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, payload)) = data.split_first() else { return };
    let opts = ReadOptions { deep_sanitize: mode & 1 == 1, verify_checksum: false };
    if let Ok(obj) = restore(payload, &opts) {
        for compression in [true, false] {
            let again = dump(&obj, &WriteOptions { compression, ..WriteOptions::default() });
            let back = restore(&again, &ReadOptions { verify_checksum: true, ..opts }).expect("Magpie reads what it writes");
            assert_eq!(back, obj);
        }
    }
});
