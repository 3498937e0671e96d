//! Arbitrary bytes as an RDB file (after a `REDIS0010` header unless the input has its own
//! `REDIS` header; checksum check off). Reads item by item until the end or an error, which
//! must never be a panic; every key read is written into a new file that must read back the
//! same.

#![no_main]

use libfuzzer_sys::fuzz_target;
use magpie_persist::rdb::{Item, RdbReader, RdbWriter, ReadOptions, WriteOptions};

fuzz_target!(|data: &[u8]| {
    let mut file = Vec::new();
    if !data.starts_with(b"REDIS") {
        file.extend_from_slice(b"REDIS0010");
    }
    file.extend_from_slice(data);
    let opts = ReadOptions { deep_sanitize: true, verify_checksum: false };
    let Ok(mut reader) = RdbReader::new(&file[..], opts) else { return };
    let mut keys = Vec::new();
    while let Ok(Some(item)) = reader.next_item() {
        if let Item::Key(k) = item {
            keys.push(k);
        }
    }
    let Ok(mut w) = RdbWriter::new(Vec::new(), WriteOptions::default(), true) else { return };
    for k in &keys {
        w.key_with(&k.key, &k.object, k.expire_ms, k.idle_secs, k.freq).expect("write to memory");
    }
    let written = w.finish().expect("write to memory");
    let mut reader = RdbReader::new(&written[..], ReadOptions::default()).expect("header");
    for k in &keys {
        match reader.next_item() {
            Ok(Some(Item::Key(back))) => {
                assert_eq!((&back.key, &back.object, back.expire_ms), (&k.key, &k.object, k.expire_ms))
            }
            other => panic!("wrote {k:?}, read {other:?}"),
        }
    }
    assert!(matches!(reader.next_item(), Ok(None)));
});
