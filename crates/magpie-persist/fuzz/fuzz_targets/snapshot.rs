//! Arbitrary frame payloads as a snapshot file: the input is cut into payloads (each after a
//! two-byte little-endian length), which are framed and checksummed as a snapshot file holds
//! them, so that the fuzzer reaches the readers of META, FUNCTIONS, DATA and END rather than
//! the checksum. Reading must end in entries or an error, never a panic or an allocation
//! sized by a count the bytes do not hold.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use magpie_persist::SnapshotReader;
use magpie_persist::frame::{Kind, file_header, put_frame};

fuzz_target!(|data: &[u8]| {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| std::env::temp_dir().join(format!("magpie-fuzz-snapshot-{}", std::process::id())));
    let mut file = file_header(Kind::Snapshot).to_vec();
    let mut rest = data;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let take = n.min(rest.len() - 2);
        if put_frame(&mut file, &rest[2..2 + take]).is_err() {
            return;
        }
        rest = &rest[2 + take..];
    }
    if std::fs::write(path, &file).is_err() {
        return;
    }
    let Ok(mut reader) = SnapshotReader::open(path) else { return };
    // The databases' key counts, if given, are never more entries than the file can hold.
    if let Some(keys) = reader.keys_per_db() {
        assert!(keys.iter().sum::<u64>() <= reader.file_len() / 5);
    }
    while let Ok(Some(_)) = reader.next_entry() {}
    let _ = reader.take_functions();
});
