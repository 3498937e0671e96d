//! Arbitrary frame payloads as an append-only log, read back as the server reads it at start,
//! then the same file followed by preallocated zeros and, if the input asks, a record cut short
//! inside them. The input: a byte of flags (bit 0: add a zero tail; bit 1: cut the last frame
//! short), a byte for the zero tail's length (in units of 97 bytes), then payloads each after a
//! two-byte little-endian length, framed and checksummed as a log holds them (so that the
//! fuzzer reaches the record decoder rather than the checksum).
//!
//! Reading must end in records, a clean end, a zero tail, a torn tail or an error, never a
//! panic; and zeros after the last whole record never change what is read: the same records,
//! the same error, and a zero tail where the plain file ended cleanly.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use magpie_persist::frame::{Kind, file_header, put_frame};
use magpie_persist::log::{LogReader, Record, Tail};

/// The records read, and how the reading ended: a tail, or an error's offset and reason.
fn read(path: &Path) -> (Vec<Record>, Result<Tail, (u64, String)>) {
    let mut records = Vec::new();
    let Ok(mut r) = LogReader::open(path) else { return (records, Err((0, "open".into()))) };
    loop {
        match r.next_record() {
            Ok(Some(rec)) => records.push(rec),
            Ok(None) => return (records, Ok(r.tail().cloned().unwrap_or(Tail::Clean))),
            Err(e) => return (records, Err((e.offset, e.reason))),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| std::env::temp_dir().join(format!("magpie-fuzz-log-{}", std::process::id())));
    let [flags, zeros, rest @ ..] = data else { return };
    let mut file = file_header(Kind::Log).to_vec();
    let mut rest = rest;
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
    let (records, end) = read(path);
    if flags & 1 == 0 {
        return;
    }
    // The same log, preallocated: zeros after it.
    let mut padded = file.clone();
    padded.resize(file.len() + 1 + usize::from(*zeros) * 97, 0);
    if std::fs::write(path, &padded).is_err() {
        return;
    }
    let (records2, end2) = read(path);
    assert_eq!(records, records2, "zeros after the log changed its records");
    match (&end, &end2) {
        (Ok(Tail::Clean), Ok(Tail::Zeros { offset, zeros })) => {
            assert_eq!(*offset, file.len() as u64);
            assert_eq!(*offset + *zeros, padded.len() as u64);
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "zeros after the log changed its error"),
        (Ok(Tail::Torn { offset: a, .. }), Ok(Tail::Torn { offset: b, .. })) => assert_eq!(a, b),
        _ => panic!("{end:?} became {end2:?} with zeros after the log"),
    }
    if flags & 2 == 0 || records.is_empty() || end != Ok(Tail::Clean) {
        return;
    }
    // A record cut short inside the zeros (a crash mid-write): a torn tail where it starts.
    let mut torn = file.clone();
    let mut frame = Vec::new();
    if put_frame(&mut frame, b"\x00\x01\x01\x03SET").is_err() {
        return;
    }
    torn.extend_from_slice(&frame[..frame.len() / 2]);
    torn.resize(padded.len().max(torn.len()) + 64, 0);
    if std::fs::write(path, &torn).is_err() {
        return;
    }
    let (records3, end3) = read(path);
    assert_eq!(records, records3);
    assert!(
        matches!(end3, Ok(Tail::Torn { offset, .. }) if offset == file.len() as u64),
        "a record cut short inside the zeros read as {end3:?}"
    );
});
