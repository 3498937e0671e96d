//! Snapshots: a point-in-time image of every database, streamed to a file (see
//! docs/formats.md for the byte layout).
//!
//! ```text
//! snapshot := file-header META FUNCTIONS? DATA* END (each a frame)
//! META     := 0x01 created-ms:u64le databases:uvarint writer:bytes
//! FUNCTIONS:= 0x04 count:uvarint code:bytes*       (FUNCTION libraries, when there are any)
//! DATA     := 0x02 entry*                          (whole entries; about 256 KB a frame)
//! END      := 0x03 entries:u64le
//! entry    := db:uvarint key:bytes expire-at-ms:uvarint (0: none) value
//! ```
//!
//! A snapshot is written to a temporary file in the target directory, fsynced, renamed over the
//! target and the directory fsynced: a crash leaves the old snapshot or the new one, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use magpie_store::{EntryRef, FrozenEntry, SnapEntry, Value};

use crate::codec::{Cursor, Decoded, put_bytes, put_uvarint};
use crate::frame::{self, FileError, Frames, Kind, Next};
use crate::value::{decode_value, encode_frozen_pausing, encode_value};

const META: u8 = 1;
const DATA: u8 = 2;
const END: u8 = 3;
const FUNCTIONS: u8 = 4;
/// A data frame is written once its entries reach this size.
const FRAME_TARGET: usize = 256 * 1024;
/// The file is fsynced each time this much more has been written (Redis's
/// `rdb-save-incremental-fsync`, 4 MB): the kernel then writes the snapshot out as it goes,
/// instead of all of it at the final fsync, which on a shared core stalled the server's
/// other threads for the milliseconds the kernel spent on it.
const SYNC_EVERY: u64 = 4 << 20;
/// A data frame at least this big (a big collection's entry) is written where it was encoded,
/// not copied after its header, and the work on it (checksum, write) is done in pieces of this
/// size with the CPU yielded in between, so that on a shared core the server's threads run.
const BIG_FRAME: usize = 1 << 20;

/// Writes a snapshot. Entries are encoded into memory by [`SnapshotWriter::entry`] (no I/O,
/// so it can run under a shard's lock) and written by [`SnapshotWriter::flush`]. Big
/// collections arrive frozen ([`SnapEntry::Later`]): [`SnapshotWriter::add`] only queues them,
/// and [`SnapshotWriter::encode_later`] encodes them once the lock is let go.
pub struct SnapshotWriter {
    file: File,
    temp: PathBuf,
    target: PathBuf,
    /// The current data frame's payload.
    data: Vec<u8>,
    /// Frames encoded and not yet written: the buffers of `queue`, then `out`. Small frames
    /// are appended to `out`; a big frame's header and payload go to `queue` as they are.
    queue: Vec<Vec<u8>>,
    out: Vec<u8>,
    entries: u64,
    bytes: u64,
    /// `bytes` at the last fsync.
    synced: u64,
    /// Frozen entries queued by [`SnapshotWriter::add`], to encode outside the lock.
    later: Vec<(usize, Vec<u8>, FrozenEntry)>,
    /// Put in place: the temporary file is gone. Until then, dropping the writer (a failed
    /// write, an abandoned snapshot) removes it.
    placed: bool,
    /// A frame that could not be made (a single value over `frame::MAX_FRAME`): the snapshot
    /// fails at the next flush, whole, rather than be written damaged.
    failed: Option<io::Error>,
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if !self.placed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

impl SnapshotWriter {
    /// Starts a snapshot that [`SnapshotWriter::finish`] will put at `target`, of as many
    /// databases as `keys` has items: each the number of keys that database held at the
    /// snapshot's moment (the entries the snapshot will hold; a loader sizes its tables by them).
    pub fn create(target: &Path, created_ms: u64, keys: &[u64]) -> io::Result<SnapshotWriter> {
        let dir = parent_dir(target);
        let temp = dir.join(format!("temp-{}-{}.snapshot", std::process::id(), created_ms));
        let file = OpenOptions::new().write(true).create(true).truncate(true).open(&temp)?;
        let mut w = SnapshotWriter {
            file,
            temp,
            target: target.to_owned(),
            data: Vec::with_capacity(FRAME_TARGET + 4096),
            queue: Vec::new(),
            out: frame::file_header(Kind::Snapshot).to_vec(),
            entries: 0,
            bytes: 0,
            synced: 0,
            later: Vec::new(),
            placed: false,
            failed: None,
        };
        let mut meta = vec![META];
        meta.extend_from_slice(&created_ms.to_le_bytes());
        put_uvarint(&mut meta, keys.len() as u64);
        put_bytes(&mut meta, concat!("magpie ", env!("CARGO_PKG_VERSION")).as_bytes());
        for &n in keys {
            put_uvarint(&mut meta, n);
        }
        frame::put_frame(&mut w.out, &meta)?;
        w.data.push(DATA);
        Ok(w)
    }

    /// Encodes one entry (in memory only).
    pub fn entry<'a>(&mut self, db: usize, key: &[u8], entry: impl Into<EntryRef<'a>>) {
        encode_entry(&mut self.data, db, key, entry);
        self.entries += 1;
        if self.data.len() >= FRAME_TARGET {
            self.seal();
        }
    }

    /// Takes an entry as the keyspace's snapshot walk gives it: a small one is encoded at once,
    /// a frozen one queued for [`SnapshotWriter::encode_later`]. O(1) for a frozen entry, so it
    /// can run under a shard's lock.
    pub fn add(&mut self, db: usize, key: &[u8], entry: SnapEntry<'_>) {
        match entry {
            SnapEntry::Now(e) => self.entry(db, key, e),
            SnapEntry::Later(f) => self.later.push((db, key.to_vec(), f)),
        }
    }

    /// Encodes the frozen entries queued by [`SnapshotWriter::add`] (call with no lock held).
    /// A big collection takes a while: the thread yields the CPU every few thousand elements,
    /// so that on a shared core the server's threads run in between.
    pub fn encode_later(&mut self) {
        for (db, key, f) in std::mem::take(&mut self.later) {
            put_entry_head(&mut self.data, db, &key, f.expire_at);
            encode_frozen_pausing(&mut self.data, &f.value, std::thread::yield_now);
            self.entries += 1;
            if self.data.len() >= FRAME_TARGET {
                self.seal();
            }
        }
    }

    /// Writes out what writers preserved through the snapshot's sink (see [`Preserved`]),
    /// leaving it empty; frozen entries are encoded here, outside any lock.
    pub fn preserved(&mut self, p: &mut Preserved) {
        self.encoded(&p.bytes, p.count);
        p.bytes.clear();
        p.count = 0;
        self.later.append(&mut p.later);
        self.encode_later();
    }

    /// Adds the code of the server's function libraries (a FUNCTIONS frame; none when there
    /// are none), in memory only.
    pub fn functions(&mut self, libraries: &[Vec<u8>]) {
        if libraries.is_empty() {
            return;
        }
        self.seal();
        let mut payload = vec![FUNCTIONS];
        put_uvarint(&mut payload, libraries.len() as u64);
        for code in libraries {
            put_bytes(&mut payload, code);
        }
        self.put(&payload);
    }

    /// Adds `count` entries encoded elsewhere with [`encode_entry`] (in memory only).
    pub fn encoded(&mut self, encoded: &[u8], count: u64) {
        if count == 0 {
            return;
        }
        self.seal();
        let mut payload = Vec::with_capacity(encoded.len() + 1);
        payload.push(DATA);
        payload.extend_from_slice(encoded);
        self.put(&payload);
        self.entries += count;
    }

    fn seal(&mut self) {
        if self.data.len() >= BIG_FRAME {
            let payload = std::mem::replace(&mut self.data, Vec::with_capacity(FRAME_TARGET + 4096));
            self.data.push(DATA);
            let mut crc = 0;
            for piece in payload.chunks(BIG_FRAME) {
                crc = crc32c::crc32c_append(crc, piece);
                std::thread::yield_now();
            }
            if !self.out.is_empty() {
                self.queue.push(std::mem::take(&mut self.out));
            }
            match frame::frame_header(payload.len(), crc) {
                Ok(header) => {
                    self.queue.push(header.to_vec());
                    self.queue.push(payload);
                }
                Err(e) => self.fail(e),
            }
        } else if self.data.len() > 1 {
            if let Err(e) = frame::put_frame(&mut self.out, &self.data) {
                self.fail(e);
            }
            self.data.clear();
            self.data.push(DATA);
        }
    }

    /// Bytes encoded and not yet written.
    pub fn pending(&self) -> usize {
        self.queue.iter().map(Vec::len).sum::<usize>() + self.out.len() + self.data.len()
    }

    /// Remembers the first frame that could not be made (see `failed`).
    fn fail(&mut self, e: io::Error) {
        self.failed.get_or_insert(e);
    }

    /// Appends a frame to `out`, or remembers why it cannot be made.
    fn put(&mut self, payload: &[u8]) {
        if let Err(e) = frame::put_frame(&mut self.out, payload) {
            self.fail(e);
        }
    }

    /// Writes the frames encoded so far (the last, partial one stays in memory).
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        for buf in std::mem::take(&mut self.queue) {
            for piece in buf.chunks(BIG_FRAME) {
                self.write(piece)?;
                std::thread::yield_now();
            }
        }
        if !self.out.is_empty() {
            let out = std::mem::take(&mut self.out);
            self.write(&out)?;
            self.out = out;
            self.out.clear();
            if self.out.capacity() > 4 * FRAME_TARGET {
                self.out.shrink_to(FRAME_TARGET);
            }
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.bytes += bytes.len() as u64;
        if self.bytes - self.synced >= SYNC_EVERY {
            self.file.sync_data()?;
            self.synced = self.bytes;
        }
        Ok(())
    }

    /// Entries written so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Writes the end, makes the file durable and puts it in place. Returns (entries, bytes).
    pub fn finish(mut self) -> io::Result<(u64, u64)> {
        self.encode_later();
        self.seal();
        let mut end = vec![END];
        end.extend_from_slice(&self.entries.to_le_bytes());
        self.put(&end);
        self.flush()?;
        self.file.sync_all()?;
        fs::rename(&self.temp, &self.target)?;
        self.placed = true;
        sync_dir(parent_dir(&self.target))?;
        Ok((self.entries, self.bytes))
    }

    /// Gives up: removes the temporary file (as dropping the writer does).
    pub fn abandon(self) {}
}

/// Appends one snapshot entry, as a data frame holds it.
pub fn encode_entry<'a>(out: &mut Vec<u8>, db: usize, key: &[u8], entry: impl Into<EntryRef<'a>>) {
    let entry = entry.into();
    put_entry_head(out, db, key, entry.expire_at());
    encode_value(out, &entry.value);
}

/// Appends one snapshot entry from a frozen image (see [`SnapEntry::Later`]): the same bytes
/// [`encode_entry`] would have written for the entry it was.
pub fn encode_frozen_entry(out: &mut Vec<u8>, db: usize, key: &[u8], entry: &FrozenEntry) {
    put_entry_head(out, db, key, entry.expire_at);
    crate::value::encode_frozen(out, &entry.value);
}

/// An entry's database, key and expiry, as [`encode_entry`] starts it.
fn put_entry_head(out: &mut Vec<u8>, db: usize, key: &[u8], expire_at: Option<u64>) {
    put_uvarint(out, db as u64);
    put_bytes(out, key);
    put_uvarint(out, expire_at.unwrap_or(0));
}

/// Entries that writers hand to a snapshot through its sink (under a shard's lock): small ones
/// encoded at once, frozen ones kept to encode later, by [`SnapshotWriter::preserved`].
#[derive(Default)]
pub struct Preserved {
    bytes: Vec<u8>,
    count: u64,
    later: Vec<(usize, Vec<u8>, FrozenEntry)>,
}

impl Preserved {
    /// O(1) for a frozen entry: safe under a shard's lock.
    pub fn add(&mut self, db: usize, key: &[u8], entry: SnapEntry<'_>) {
        match entry {
            SnapEntry::Now(e) => {
                encode_entry(&mut self.bytes, db, key, e);
                self.count += 1;
            }
            SnapEntry::Later(f) => self.later.push((db, key.to_vec(), f)),
        }
    }
}

/// The directory a file is in (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// An entry read back from a snapshot (its key borrowed from the reader's buffer).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<'a> {
    pub db: usize,
    pub key: &'a [u8],
    pub expire_at: Option<u64>,
    pub value: Value,
}

/// Reads a snapshot's entries in order, checking every frame.
pub struct SnapshotReader {
    frames: Frames,
    payload: Vec<u8>,
    /// Position in `payload` of the next entry.
    at: usize,
    /// Offset of the frame in `payload`.
    frame_at: u64,
    pub created_ms: u64,
    pub databases: usize,
    /// The keys of each database, as META gives them (empty in a file from before they were
    /// written). Not checked against the entries: a hint, to size tables by.
    keys: Vec<u64>,
    entries: u64,
    done: bool,
    /// The function libraries' code, from the FUNCTIONS frame once it has been read.
    functions: Vec<Vec<u8>>,
}

impl SnapshotReader {
    pub fn open(path: &Path) -> Result<SnapshotReader, FileError> {
        let mut frames = Frames::open(path, Kind::Snapshot)?;
        let mut payload = Vec::new();
        let at = match frames.next(&mut payload).map_err(|e| io_error(path, 0, e))? {
            Next::Frame(at) => at,
            Next::End => return Err(err(path, frames.pos(), "no META frame".into())),
            Next::Bad(at, why) => return Err(err(path, at, why)),
        };
        let mut c = Cursor::new(&payload);
        let meta = (|| -> Decoded<(u64, usize, Vec<u64>)> {
            if c.u8()? != META {
                return Err(crate::codec::DecodeError("the first frame is not META".into()));
            }
            let created = c.u64_le()?;
            let dbs = c.uvarint()?;
            // The writer's name, then (since 0.1.x) the keys per database; older files stop
            // after the name.
            c.bytes()?;
            let mut keys = Vec::new();
            while !c.is_empty() && (keys.len() as u64) < dbs {
                keys.push(c.uvarint()?);
            }
            if !c.is_empty() {
                return Err(crate::codec::DecodeError("bytes after the databases' key counts".into()));
            }
            if !keys.is_empty() && keys.len() as u64 != dbs {
                return Err(crate::codec::DecodeError(format!("META counts {} databases' keys of {dbs}", keys.len())));
            }
            Ok((created, usize::try_from(dbs).unwrap_or(usize::MAX), keys))
        })()
        .map_err(|e| err(path, at, format!("bad META frame: {}", e.0)))?;
        Ok(SnapshotReader {
            frames,
            payload: Vec::new(),
            at: 0,
            frame_at: 0,
            created_ms: meta.0,
            databases: meta.1,
            keys: meta.2,
            entries: 0,
            done: false,
            functions: Vec::new(),
        })
    }

    pub fn file_len(&self) -> u64 {
        self.frames.file_len()
    }

    /// The number of keys of each database that META announces, if it does, and if they
    /// could be in a file this long (every entry takes at least 5 bytes): what a loader may
    /// size its tables by without trusting a damaged or crafted file with its memory.
    pub fn keys_per_db(&self) -> Option<&[u64]> {
        let total = self.keys.iter().try_fold(0u64, |a, &n| a.checked_add(n))?;
        (!self.keys.is_empty() && total <= self.file_len() / 5).then_some(&self.keys[..])
    }

    /// The function libraries' code read so far (all of it once [`SnapshotReader::next_entry`]
    /// has returned `None`).
    pub fn take_functions(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.functions)
    }

    /// Bytes read so far (for progress reports).
    pub fn pos(&self) -> u64 {
        self.frames.pos()
    }

    /// The next entry; `None` after the END frame (whose entry count is checked).
    pub fn next_entry(&mut self) -> Result<Option<Loaded<'_>>, FileError> {
        loop {
            if self.done {
                return Ok(None);
            }
            if self.at > 0 && self.at < self.payload.len() {
                let at = self.at;
                let mut c = Cursor::new(&self.payload[at..]);
                let entry = match read_entry(&mut c) {
                    Ok(e) => e,
                    Err(e) => {
                        let why = format!("bad entry at byte {at} of the frame: {e}");
                        return Err(err(self.frames.path(), self.frame_at, why));
                    }
                };
                self.at += c.pos();
                self.entries += 1;
                return Ok(Some(entry));
            }
            let path = self.frames.path().to_owned();
            match self.frames.next(&mut self.payload).map_err(|e| io_error(&path, self.frames.pos(), e))? {
                Next::Frame(at) => {
                    self.frame_at = at;
                    match self.payload.first() {
                        Some(&DATA) => self.at = 1,
                        Some(&FUNCTIONS) => {
                            let mut c = Cursor::new(&self.payload[1..]);
                            let read = (|| -> Decoded<()> {
                                let n = c.uvarint()?;
                                for _ in 0..n {
                                    let code = c.bytes()?.to_vec();
                                    self.functions.push(code);
                                }
                                if !c.is_empty() {
                                    return Err(crate::codec::DecodeError("bytes after the libraries".into()));
                                }
                                Ok(())
                            })();
                            read.map_err(|e| err(&path, at, format!("bad FUNCTIONS frame: {e}")))?;
                            self.at = 0;
                        }
                        Some(&END) => {
                            let mut c = Cursor::new(&self.payload[1..]);
                            let n = c.u64_le().map_err(|e| err(&path, at, e.0))?;
                            if n != self.entries {
                                return Err(err(
                                    &path,
                                    at,
                                    format!("END says {n} entries, {} were read", self.entries),
                                ));
                            }
                            if self.frames.pos() != self.frames.file_len() {
                                return Err(err(&path, self.frames.pos(), "data after the END frame".into()));
                            }
                            self.done = true;
                        }
                        _ => return Err(err(&path, at, "unknown frame type".into())),
                    }
                }
                Next::End => {
                    return Err(err(&path, self.frames.pos(), "the snapshot ends without its END frame".into()));
                }
                Next::Bad(at, why) => return Err(err(&path, at, why)),
            }
        }
    }
}

fn read_entry<'a>(c: &mut Cursor<'a>) -> Decoded<Loaded<'a>> {
    let db = c.uvarint()?;
    let key = c.bytes()?;
    let expire_at = c.uvarint()?;
    let value = decode_value(c)?;
    Ok(Loaded {
        db: usize::try_from(db).unwrap_or(usize::MAX),
        key,
        expire_at: (expire_at != 0).then_some(expire_at),
        value,
    })
}

fn err(path: &Path, offset: u64, reason: String) -> FileError {
    FileError { path: path.to_owned(), offset, reason }
}

fn io_error(path: &Path, offset: u64, e: io::Error) -> FileError {
    err(path, offset, format!("read error: {e}"))
}

/// Reads a whole snapshot and says what is in it (for `--check-snapshot`).
pub fn check(path: &Path) -> Result<(u64, u64), FileError> {
    let mut r = SnapshotReader::open(path)?;
    let mut n = 0;
    while r.next_entry()?.is_some() {
        n += 1;
    }
    Ok((n, r.file_len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory of the test's own: the writer's temporary file is named by the process and
    /// the creation time, which tests running side by side share.
    fn dir(test: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("magpie-snapshot-test-{}-{test}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn entry(value: Value, expire: Option<u64>) -> magpie_store::Entry {
        let mut shard = magpie_store::Shard::default();
        shard.insert(b"k", value, expire, 0);
        shard.get(b"k", 0).unwrap().to_entry()
    }

    /// Big collections arrive frozen and are written as big frames where they were encoded,
    /// between small ones; the file reads back in full, in order.
    #[test]
    fn frozen_big_values_round_trip_between_small_entries() {
        let target = dir("frozen").join("frozen.snapshot");
        let mut w = SnapshotWriter::create(&target, 1, &[0; 16]).unwrap();
        let mut expected = Vec::new();
        for i in 0..6u64 {
            let key = format!("key:{i}").into_bytes();
            let value = if i % 2 == 0 {
                Value::string(format!("small {i}").as_bytes())
            } else {
                let list: magpie_store::List =
                    (0..60_000 * i).map(|j| format!("element:{j}:{}", "x".repeat((j % 50) as usize))).collect();
                Value::List(list)
            };
            let mut e = entry(value.clone(), (i == 3).then_some(99));
            match e.value.freeze() {
                Some(frozen) => {
                    let f = FrozenEntry { expire_at: e.expire_at(), value: frozen };
                    w.add(0, &key, SnapEntry::Later(f));
                    w.encode_later();
                }
                None => w.add(0, &key, SnapEntry::Now(e.view())),
            }
            if i == 4 {
                w.flush().unwrap();
            }
            expected.push((0, key, e.expire_at(), value));
        }
        assert!(w.pending() > BIG_FRAME, "big frames wait in the queue until flushed");
        w.finish().unwrap();
        let mut r = SnapshotReader::open(&target).unwrap();
        let mut got = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            got.push((e.db, e.key.to_vec(), e.expire_at, e.value));
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn a_snapshot_round_trips_and_damage_is_reported_with_its_offset() {
        let target = dir("roundtrip").join("roundtrip.snapshot");
        let counts: Vec<u64> = (0..16).map(|db| (0..5000u64).filter(|i| i % 16 == db).count() as u64).collect();
        let mut w = SnapshotWriter::create(&target, 1234, &counts).unwrap();
        let mut expected = Vec::new();
        for i in 0..5000u64 {
            let value = if i % 3 == 0 {
                Value::Int(i64::try_from(i).unwrap() - 2500)
            } else {
                Value::string(&vec![b'v'; (i % 300) as usize])
            };
            let expire = (i % 7 == 0).then_some(1_000_000 + i);
            let key = format!("key:{i}").into_bytes();
            w.entry((i % 16) as usize, &key, &entry(value.clone(), expire));
            if w.pending() > 100_000 {
                w.flush().unwrap();
            }
            expected.push(((i % 16) as usize, key, expire, value));
        }
        w.finish().unwrap();
        let mut r = SnapshotReader::open(&target).unwrap();
        assert_eq!((r.created_ms, r.databases), (1234, 16));
        assert_eq!(r.keys_per_db(), Some(&counts[..]));
        let mut got = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            got.push((e.db, e.key.to_vec(), e.expire_at, e.value));
        }
        assert_eq!(got, expected);

        let bytes = fs::read(&target).unwrap();
        let mid = bytes.len() / 2;
        let mut bad = bytes.clone();
        bad[mid] ^= 0x40;
        fs::write(&target, &bad).unwrap();
        let e = check(&target).unwrap_err();
        assert!(e.offset <= mid as u64 && e.offset + 300_000 > mid as u64, "{e}");
        fs::write(&target, &bytes[..bytes.len() - 5]).unwrap();
        assert!(check(&target).is_err(), "a truncated snapshot is damage");
        fs::write(&target, &bytes).unwrap();
        assert_eq!(check(&target).unwrap().0, 5000);
    }

    #[test]
    fn function_libraries_round_trip_and_a_bad_frame_is_damage() {
        let target = dir("functions").join("functions.snapshot");
        let libs = vec![b"#!lua name=a\nredis.register_function('f', function() return 1 end)".to_vec(), vec![0, 1, 2]];
        let mut w = SnapshotWriter::create(&target, 1, &[0; 16]).unwrap();
        w.functions(&libs);
        w.entry(0, b"k", &entry(Value::Int(1), None));
        w.finish().unwrap();
        let mut r = SnapshotReader::open(&target).unwrap();
        assert!(r.next_entry().unwrap().is_some());
        assert!(r.next_entry().unwrap().is_none());
        assert_eq!(r.take_functions(), libs);
        assert_eq!(check(&target).unwrap().0, 1);

        // A count larger than the frame holds is damage, not an allocation.
        let mut w = SnapshotWriter::create(&target, 1, &[0; 16]).unwrap();
        let mut payload = vec![FUNCTIONS];
        put_uvarint(&mut payload, u64::MAX);
        frame::put_frame(&mut w.out, &payload).unwrap();
        w.finish().unwrap();
        let mut r = SnapshotReader::open(&target).unwrap();
        let e = r.next_entry().unwrap_err();
        assert!(e.reason.contains("bad FUNCTIONS frame"), "{e}");
    }

    /// META's keys per database are a hint a loader may trust with memory only when the file
    /// could hold them; a file from before they were written reads as before, without them.
    #[test]
    fn the_keys_per_database_are_a_bounded_hint() {
        let target = dir("hint").join("hint.snapshot");
        let w = SnapshotWriter::create(&target, 1, &[1_000_000, 0]).unwrap();
        w.finish().unwrap();
        let r = SnapshotReader::open(&target).unwrap();
        assert_eq!(r.databases, 2);
        assert_eq!(r.keys_per_db(), None, "a million keys claimed in {} bytes", r.file_len());

        // META as written before the counts: created, databases, the writer's name.
        let mut out = frame::file_header(Kind::Snapshot).to_vec();
        let mut meta = vec![META];
        meta.extend_from_slice(&7u64.to_le_bytes());
        put_uvarint(&mut meta, 16);
        put_bytes(&mut meta, b"magpie 0.1.0");
        frame::put_frame(&mut out, &meta).unwrap();
        let mut data = vec![DATA];
        encode_entry(&mut data, 3, b"k", &entry(Value::string(b"v"), None));
        frame::put_frame(&mut out, &data).unwrap();
        let mut end = vec![END];
        end.extend_from_slice(&1u64.to_le_bytes());
        frame::put_frame(&mut out, &end).unwrap();
        fs::write(&target, &out).unwrap();
        let mut r = SnapshotReader::open(&target).unwrap();
        assert_eq!((r.created_ms, r.databases, r.keys_per_db()), (7, 16, None));
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!((e.db, e.key), (3, &b"k"[..]));
        assert!(r.next_entry().unwrap().is_none());

        // Counts for some databases only, or more counts than databases, are damage.
        let refused = |meta: &[u8]| {
            let mut out = frame::file_header(Kind::Snapshot).to_vec();
            frame::put_frame(&mut out, meta).unwrap();
            fs::write(&target, &out).unwrap();
            SnapshotReader::open(&target).err().expect("a META with the wrong number of counts").reason
        };
        put_uvarint(&mut meta, 5);
        assert!(refused(&meta).contains("bad META"));
        for _ in 0..16 {
            put_uvarint(&mut meta, 5);
        }
        assert!(refused(&meta).contains("bytes after the databases' key counts"));
    }
}
