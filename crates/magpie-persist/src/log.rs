//! The append-only log: records of write effects, and the manifest that names the files of a
//! log (see docs/formats.md).
//!
//! ```text
//! log      := file-header record*              (each record one frame)
//! record   := db:uvarint count:uvarint command{count}
//! command  := argc:uvarint bytes{argc}
//! ```
//!
//! A record holds what one command did, or everything a transaction did: it is replayed whole
//! or not at all. A log is a *base* (a snapshot) and one or more *incremental* logs replayed
//! over it in order; the manifest names them.
//!
//! A log being written is *preallocated*: the writer extends the file ahead of its records
//! with real zeros, in steps of [`PREALLOC_STEP`], so that the `fdatasync` of a record written
//! over those zeros has only data to flush, not the file's size and block map (about 90 µs
//! instead of 230 µs on the benchmark VM's ext4). A record never starts with a zero byte (a
//! frame's mark is 0xF1..=0xF7), so a reader tells the zeros after the last record from a
//! record cut short: zeros that run from a record's end to the end of the file are the
//! preallocated tail ([`Tail::Zeros`]); anything else there is a torn tail or corruption, as
//! without preallocation. The zero tail is cut off when the log is closed or rewritten.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::codec::{Cursor, DecodeError, Decoded, put_bytes, put_uvarint};
use crate::frame::{self, FileError, Frames, Kind, Next};
use crate::snapshot::{parent_dir, sync_dir};

/// Appends one record (a frame) holding `commands`, all in database `db`; fails, appending
/// nothing, for a record over `frame::MAX_FRAME`.
pub fn put_record<'a, C, A>(out: &mut Vec<u8>, scratch: &mut Vec<u8>, db: usize, commands: C) -> io::Result<()>
where
    C: ExactSizeIterator<Item = A>,
    A: ExactSizeIterator<Item = &'a [u8]>,
{
    scratch.clear();
    put_uvarint(scratch, db as u64);
    put_uvarint(scratch, commands.len() as u64);
    for args in commands {
        put_uvarint(scratch, args.len() as u64);
        for a in args {
            put_bytes(scratch, a);
        }
    }
    frame::put_frame(out, scratch)
}

/// A record read back: its database and its commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub db: usize,
    pub commands: Vec<Vec<Vec<u8>>>,
}

/// A record read in place ([`LogReader::next_raw`]): its payload and where each argument is
/// in it, reused from record to record, so that replaying a log allocates nothing per record
/// (a `Record` is a vector per argument).
#[derive(Debug, Default)]
pub struct RawRecord {
    pub db: usize,
    payload: Vec<u8>,
    /// (start, end) of each argument in `payload`, command after command.
    spans: Vec<(usize, usize)>,
    /// Where each command's arguments end in `spans`.
    ends: Vec<usize>,
}

impl RawRecord {
    /// The commands, each as its arguments.
    pub fn commands(&self) -> impl Iterator<Item = impl ExactSizeIterator<Item = &[u8]>> {
        let mut from = 0;
        self.ends.iter().map(move |&end| {
            let args = self.spans[from..end].iter().map(|&(a, b)| &self.payload[a..b]);
            from = end;
            args
        })
    }

    /// The record's size in bytes (its encoded payload).
    pub fn size(&self) -> usize {
        self.payload.len()
    }

    /// Bytes the record's buffer holds on to (its payload's capacity), which reading the next
    /// record into it reuses.
    pub fn retained(&self) -> usize {
        self.payload.capacity()
    }

    fn to_record(&self) -> Record {
        Record { db: self.db, commands: self.commands().map(|args| args.map(<[u8]>::to_vec).collect()).collect() }
    }
}

/// Decodes the record in `rec.payload` into its spans.
fn decode_spans(rec: &mut RawRecord) -> Decoded<()> {
    rec.spans.clear();
    rec.ends.clear();
    let mut c = Cursor::new(&rec.payload);
    rec.db = usize::try_from(c.uvarint()?).map_err(|_| DecodeError("database out of range".into()))?;
    let n = c.count(1)?;
    for _ in 0..n {
        let argc = c.count(1)?;
        if argc == 0 {
            return Err(DecodeError("a command with no arguments".into()));
        }
        for _ in 0..argc {
            let len = c.bytes()?.len();
            rec.spans.push((c.pos() - len, c.pos()));
        }
        rec.ends.push(rec.spans.len());
    }
    if !c.is_empty() {
        return Err(DecodeError("bytes left after the last command".into()));
    }
    Ok(())
}

#[cfg(test)]
fn decode_record(payload: &[u8]) -> Decoded<Record> {
    let mut rec = RawRecord { payload: payload.to_vec(), ..RawRecord::default() };
    decode_spans(&mut rec)?;
    Ok(rec.to_record())
}

/// How far ahead of its records a log being written is extended with zeros, at least: the
/// writer adds this much whenever less than half of it is left (see the module's doc). 4 MiB
/// of zeros cost about 3 ms to write and 2 ms to flush on the benchmark VM, once per 4 MiB of
/// records (some 60,000 SETs of 64 bytes).
pub const PREALLOC_STEP: u64 = 4 << 20;

/// After a preallocation fails (a full disk, a file size limit), how many appends pass
/// before the next try: the log goes on growing write by write meanwhile, as it would without
/// preallocation.
const PREALLOC_RETRY_APPENDS: u32 = 1000;

/// An incremental log open for appending.
pub struct LogFile {
    file: File,
    path: PathBuf,
    /// Bytes known to be written whole: where a failed write is cut back to, and where the
    /// next record goes.
    len: u64,
    /// Bytes in the file: `len` and the zeros written ahead of it (see the module's doc).
    allocated: u64,
    /// Appends left before preallocation is tried again, after it failed.
    prealloc_backoff: u32,
}

impl LogFile {
    /// Creates a new, empty log (its header fsynced, and the directory entry too). Its
    /// directory must exist and be durable already (see [`create_dir_durably`]). Nothing is
    /// preallocated yet: the writer does that ([`LogFile::preallocate`]), so that a log
    /// created and never written (a rewrite that fails) takes no room.
    pub fn create(path: &Path) -> io::Result<LogFile> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        file.write_all(&frame::file_header(Kind::Log))?;
        file.sync_all()?;
        sync_dir(parent_dir(path))?;
        let len = frame::FILE_HEADER as u64;
        Ok(LogFile { file, path: path.to_owned(), len, allocated: len, prealloc_backoff: 0 })
    }

    /// Opens an existing log to append to it, after its first `valid_len` bytes (anything
    /// after, a torn tail already reported by the reader or the zeros of a preallocation, is
    /// cut off).
    pub fn open_append(path: &Path, valid_len: u64) -> io::Result<LogFile> {
        let file = OpenOptions::new().write(true).open(path)?;
        if file.metadata()?.len() != valid_len {
            file.set_len(valid_len)?;
            file.sync_all()?;
        }
        Ok(LogFile { file, path: path.to_owned(), len: valid_len, allocated: valid_len, prealloc_backoff: 0 })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the log (its records; not the zeros preallocated after them).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Bytes of zeros preallocated after the records.
    pub fn preallocated(&self) -> u64 {
        self.allocated.saturating_sub(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len <= frame::FILE_HEADER as u64
    }

    /// Appends whole records (over the preallocated zeros, or past the end of the file when
    /// none are left). On failure the file is cut back to its length before the call (no
    /// partial record stays behind) and the error returned: the caller keeps the bytes and
    /// tries again later.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.file.write_all_at(bytes, self.len) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                self.allocated = self.allocated.max(self.len);
                self.prealloc_backoff = self.prealloc_backoff.saturating_sub(1);
                Ok(())
            }
            Err(e) => {
                // Best effort: if even this fails, the next append fails too and tries again
                // (it writes at `len`, over whatever this one left).
                if self.file.set_len(self.len).is_ok() {
                    self.allocated = self.len;
                }
                Err(e)
            }
        }
    }

    /// Whether [`LogFile::preallocate`] has something to do: less than half of
    /// [`PREALLOC_STEP`] is left ahead of the records, and no recent try failed.
    pub fn wants_room(&self) -> bool {
        self.preallocated() < PREALLOC_STEP / 2 && self.prealloc_backoff == 0
    }

    /// Extends the file with zeros to [`PREALLOC_STEP`] past the records, if less than half
    /// of that is left (see the module's doc). The zeros become durable with the next
    /// [`LogFile::sync`], which is the one that flushes the file's new size; the records
    /// written over them later need no such update. A failure (a full disk) is not an error
    /// of the log: the zeros written are taken back, and the log goes on growing write by
    /// write; preallocation is tried again after a while. Returns whether the file grew.
    pub fn preallocate(&mut self) -> bool {
        if !self.wants_room() {
            return false;
        }
        static ZEROS: [u8; 1 << 16] = [0; 1 << 16];
        let target = self.len + PREALLOC_STEP;
        let mut at = self.allocated.max(self.len);
        while at < target {
            let n = usize::try_from(target - at).map_or(ZEROS.len(), |n| n.min(ZEROS.len()));
            if self.file.write_all_at(&ZEROS[..n], at).is_err() {
                // Give the room back: a full disk stays usable for the records themselves,
                // and for snapshots.
                if self.file.set_len(self.len).is_ok() {
                    self.allocated = self.len;
                } else {
                    self.allocated = at;
                }
                self.prealloc_backoff = PREALLOC_RETRY_APPENDS;
                return false;
            }
            at += n as u64;
        }
        self.allocated = target;
        true
    }

    /// Makes everything appended durable (fdatasync).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Closes the log for good (at shutdown, when the log is turned off, or when a rewrite
    /// switches to a new file): the preallocated zeros are cut off and the file synced, so
    /// that what stays on disk is the records and nothing else.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.allocated > self.len {
            self.file.set_len(self.len)?;
            self.allocated = self.len;
        }
        self.file.sync_data()
    }

    /// A second handle on the file, for syncing from another thread.
    pub fn try_clone_file(&self) -> io::Result<File> {
        self.file.try_clone()
    }
}

/// Creates `dir` (and any missing parent) so that it survives a power loss: POSIX makes a
/// new directory entry durable only through an fsync of the directory that holds it, so each
/// directory created here has its parent fsynced. Without that, a power loss after the first
/// start could take a new `appendonlydir`, and every write acknowledged into it, away
/// (tests/power_loss.rs in magpie-server). Nothing is synced when `dir` exists already.
pub fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    // The directories to create, outermost first.
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d);
        at = d.parent();
    }
    fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        sync_dir(parent_dir(d))?;
    }
    Ok(())
}

/// What reading a log found at its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// The file ends after a whole record.
    Clean,
    /// The last record is followed by `zeros` bytes of zeros, from `offset` to the end of the
    /// file: a preallocated tail (see the module's doc), not part of the log, never a record.
    Zeros { offset: u64, zeros: u64 },
    /// The last record was cut short or damaged (a write interrupted by a crash), and
    /// nothing valid follows: `dropped` bytes from `offset` are not part of the log.
    Torn { offset: u64, dropped: u64, reason: String },
}

/// Reads a log's records in order. Damage followed by intact records is corruption: an
/// error naming the file and the offset. Damage that runs to the end is a torn tail,
/// reported by [`LogReader::tail`] once the records are read.
pub struct LogReader {
    frames: Frames,
    /// The buffers of [`LogReader::next_record`].
    raw: RawRecord,
    tail: Option<Tail>,
}

impl LogReader {
    pub fn open(path: &Path) -> Result<LogReader, FileError> {
        Ok(LogReader { frames: Frames::open(path, Kind::Log)?, raw: RawRecord::default(), tail: None })
    }

    pub fn file_len(&self) -> u64 {
        self.frames.file_len()
    }

    /// Bytes read so far.
    pub fn pos(&self) -> u64 {
        self.frames.pos()
    }

    /// The next record, or None at the end (see [`LogReader::tail`]).
    pub fn next_record(&mut self) -> Result<Option<Record>, FileError> {
        let mut raw = std::mem::take(&mut self.raw);
        let next = self.next_raw(&mut raw);
        let record = next.map(|found| found.then(|| raw.to_record()));
        self.raw = raw;
        record
    }

    /// The next record, read into `rec` in place; false at the end (see [`LogReader::tail`]).
    pub fn next_raw(&mut self, rec: &mut RawRecord) -> Result<bool, FileError> {
        if self.tail.is_some() {
            return Ok(false);
        }
        let path = self.frames.path().to_owned();
        let err = |offset, reason| FileError { path: path.clone(), offset, reason };
        match self.frames.next(&mut rec.payload).map_err(|e| err(self.frames.pos(), format!("read error: {e}")))? {
            Next::Frame(at) => match decode_spans(rec) {
                Ok(()) => Ok(true),
                Err(e) => Err(err(at, format!("bad record: {e}"))),
            },
            Next::End => {
                self.tail = Some(Tail::Clean);
                Ok(false)
            }
            Next::Bad(at, reason) => {
                // A record never starts with a zero byte: zeros from here to the end are the
                // preallocated tail; a record cut short inside them is not all zeros.
                if self.frames.zeros_from(at).map_err(|e| err(at, format!("read error: {e}")))? {
                    self.tail = Some(Tail::Zeros { offset: at, zeros: self.frames.file_len() - at });
                    return Ok(false);
                }
                let next = self.frames.next_intact_after(at).map_err(|e| err(at, format!("read error: {e}")))?;
                match next {
                    Some(good) => Err(err(
                        at,
                        format!(
                            "{reason}; intact records follow at offset {good}, so this is corruption, not a torn tail"
                        ),
                    )),
                    None => {
                        self.tail = Some(Tail::Torn { offset: at, dropped: self.frames.file_len() - at, reason });
                        Ok(false)
                    }
                }
            }
        }
    }

    /// How the log ended (after `next_record` returned None).
    pub fn tail(&self) -> Option<&Tail> {
        self.tail.as_ref()
    }
}

/// Reads a whole log: the number of records and how it ends (for `--check-aof`; a zero tail,
/// [`Tail::Zeros`], is a sound end).
pub fn check(path: &Path) -> Result<(u64, Tail), FileError> {
    let mut r = LogReader::open(path)?;
    let mut n = 0;
    while r.next_record()?.is_some() {
        n += 1;
    }
    Ok((n, r.tail().cloned().unwrap_or(Tail::Clean)))
}

/// The last offset at which `path` can be cut so that what stays is a log of whole, intact
/// records: the end of the last good record before any damage or preallocated zeros (for
/// `--check-aof --fix`).
pub fn last_good_offset(path: &Path) -> Result<u64, FileError> {
    let mut frames = Frames::open(path, Kind::Log)?;
    let mut rec = RawRecord::default();
    loop {
        let before = frames.pos();
        let next = frames.next(&mut rec.payload).map_err(|e| FileError {
            path: path.to_owned(),
            offset: before,
            reason: format!("read error: {e}"),
        })?;
        match next {
            Next::Frame(_) if decode_spans(&mut rec).is_ok() => {}
            Next::End => return Ok(before),
            _ => return Ok(before),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The manifest

/// The files of a log, oldest first: a base snapshot and incremental logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub base: Option<String>,
    pub incrs: Vec<String>,
}

const MANIFEST_HEAD: &str = "magpie-manifest 1";

impl Manifest {
    /// The number in a file name `<prefix>.<n>.base|incr`.
    pub fn number(name: &str) -> Option<u64> {
        let mut parts = name.rsplit('.');
        parts.next()?;
        parts.next()?.parse().ok()
    }

    /// The highest file number in use.
    pub fn max_number(&self) -> u64 {
        self.base.iter().chain(&self.incrs).filter_map(|n| Manifest::number(n)).max().unwrap_or(0)
    }

    pub fn encode(&self) -> String {
        let mut text = format!("{MANIFEST_HEAD}\n");
        if let Some(b) = &self.base {
            text.push_str(&format!("base {b}\n"));
        }
        for i in &self.incrs {
            text.push_str(&format!("incr {i}\n"));
        }
        let crc = crc32c::crc32c(text.as_bytes());
        text.push_str(&format!("crc32c {crc:08x}\n"));
        text
    }

    pub fn decode(text: &str) -> Result<Manifest, String> {
        let body_end = text.rfind("crc32c ").ok_or("no checksum line")?;
        let (body, crc_line) = text.split_at(body_end);
        let want = u32::from_str_radix(crc_line.trim_start_matches("crc32c ").trim(), 16)
            .map_err(|_| "unreadable checksum line".to_owned())?;
        if crc32c::crc32c(body.as_bytes()) != want {
            return Err("checksum mismatch".into());
        }
        let mut lines = body.lines();
        if lines.next() != Some(MANIFEST_HEAD) {
            return Err(format!("the first line is not '{MANIFEST_HEAD}'"));
        }
        let mut m = Manifest::default();
        for line in lines {
            let (kind, name) = line.split_once(' ').ok_or_else(|| format!("bad line '{line}'"))?;
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(format!("bad file name '{name}'"));
            }
            match kind {
                "base" if m.base.is_none() && m.incrs.is_empty() => m.base = Some(name.to_owned()),
                "incr" => m.incrs.push(name.to_owned()),
                _ => return Err(format!("bad line '{line}'")),
            }
        }
        Ok(m)
    }

    pub fn read(path: &Path) -> Result<Option<Manifest>, String> {
        match fs::read_to_string(path) {
            Ok(text) => Manifest::decode(&text).map(Some).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Writes the manifest atomically: a temporary file, fsynced, renamed over `path`, and the
    /// directory fsynced.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        write_atomically(path, self.encode().as_bytes())
    }
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    {
        let mut f = File::create(&temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&temp, path)?;
    sync_dir(parent_dir(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("magpie-log-test-{}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn record(out: &mut Vec<u8>, db: usize, cmds: &[&[&str]]) {
        let mut scratch = Vec::new();
        put_record(out, &mut scratch, db, cmds.iter().map(|c| c.iter().map(|a| a.as_bytes()))).unwrap();
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_found() {
        let path = dir().join("log1");
        let _ = fs::remove_file(&path);
        let mut log = LogFile::create(&path).unwrap();
        let mut buf = Vec::new();
        record(&mut buf, 0, &[&["SET", "a", "1"]]);
        record(&mut buf, 3, &[&["MULTI"], &["INCR", "x"], &["EXEC"]]);
        log.append(&buf).unwrap();
        let good = log.len();
        buf.clear();
        record(&mut buf, 1, &[&["SET", "b", "a longer value"]]);
        log.append(&buf[..buf.len() - 3]).unwrap(); // a crash mid-write
        drop(log);

        let mut r = LogReader::open(&path).unwrap();
        let one = r.next_record().unwrap().unwrap();
        assert_eq!(one, Record { db: 0, commands: vec![vec![b"SET".to_vec(), b"a".to_vec(), b"1".to_vec()]] });
        assert_eq!(r.next_record().unwrap().unwrap().commands.len(), 3);
        assert!(r.next_record().unwrap().is_none());
        let Some(Tail::Torn { offset, dropped, .. }) = r.tail() else { panic!("{:?}", r.tail()) };
        assert_eq!((*offset, *offset + *dropped), (good, fs::metadata(&path).unwrap().len()));
        assert_eq!(last_good_offset(&path).unwrap(), good);

        // Appending after a torn tail cuts it off first.
        let mut log = LogFile::open_append(&path, good).unwrap();
        buf.clear();
        record(&mut buf, 0, &[&["DEL", "a"]]);
        log.append(&buf).unwrap();
        let (n, tail) = check(&path).unwrap();
        assert_eq!((n, tail), (3, Tail::Clean));
    }

    /// A preallocated log: the records are written over zeros, and the reader stops at the
    /// zeros after the last one (a clean end, not a torn tail); `finish` cuts them off.
    #[test]
    fn a_log_with_a_zero_tail_reads_to_its_last_record() {
        let path = dir().join("log-zeros");
        let _ = fs::remove_file(&path);
        let mut log = LogFile::create(&path).unwrap();
        assert!(log.wants_room());
        assert!(log.preallocate());
        assert!(!log.wants_room() && !log.preallocate(), "room enough until half the step is used");
        let size = fs::metadata(&path).unwrap().len();
        assert_eq!(size, frame::FILE_HEADER as u64 + PREALLOC_STEP);
        let mut buf = Vec::new();
        for i in 0..50 {
            record(&mut buf, 0, &[&["SET", &format!("k{i}"), "v"]]);
        }
        log.append(&buf).unwrap();
        log.sync().unwrap();
        let end = log.len();
        assert_eq!(fs::metadata(&path).unwrap().len(), size, "the records went over the zeros");
        assert_eq!(log.preallocated(), size - end);
        // What a crash (kill -9, power loss after the fsync) leaves: records, then zeros.
        let (n, tail) = check(&path).unwrap();
        assert_eq!((n, tail), (50, Tail::Zeros { offset: end, zeros: size - end }));
        let mut r = LogReader::open(&path).unwrap();
        while r.next_record().unwrap().is_some() {}
        assert_eq!(r.pos(), end);
        assert_eq!(last_good_offset(&path).unwrap(), end);
        // Opened again, the zeros are cut and the records go on from the last one.
        drop(log);
        let mut log = LogFile::open_append(&path, end).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), end);
        buf.clear();
        record(&mut buf, 0, &[&["DEL", "k0"]]);
        log.preallocate();
        log.append(&buf).unwrap();
        assert!(log.preallocated() > 0);
        log.finish().unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), log.len(), "closed: no zeros left");
        assert_eq!(check(&path).unwrap(), (51, Tail::Clean));
        // An empty log with zeros only after its header.
        let empty = dir().join("log-zeros-empty");
        let _ = fs::remove_file(&empty);
        let mut log = LogFile::create(&empty).unwrap();
        log.preallocate();
        drop(log);
        assert_eq!(check(&empty).unwrap().0, 0);
        assert!(matches!(check(&empty).unwrap().1, Tail::Zeros { offset: 16, .. }));
    }

    /// A record cut short by a crash inside the preallocated zeros is a torn tail, as without
    /// preallocation (dropped up to the end of the file); zeros followed by a record, or damage
    /// followed by intact records and zeros, are corruption.
    #[test]
    fn a_torn_record_inside_the_zero_tail_is_a_torn_tail() {
        let path = dir().join("log-zeros-torn");
        let _ = fs::remove_file(&path);
        let mut log = LogFile::create(&path).unwrap();
        log.preallocate();
        let mut buf = Vec::new();
        record(&mut buf, 0, &[&["SET", "a", "1"]]);
        log.append(&buf).unwrap();
        let good = log.len();
        buf.clear();
        record(&mut buf, 0, &[&["SET", "b", "a longer value"]]);
        log.append(&buf[..buf.len() - 4]).unwrap(); // the rest of the record never reached the disk
        drop(log);
        let size = fs::metadata(&path).unwrap().len();
        let (n, tail) = check(&path).unwrap();
        assert_eq!(n, 1);
        let Tail::Torn { offset, dropped, .. } = tail else { panic!("{tail:?}") };
        assert_eq!((offset, offset + dropped), (good, size));
        assert_eq!(last_good_offset(&path).unwrap(), good);
        // Only the mark of a record written: still torn.
        let mut bytes = fs::read(&path).unwrap();
        let g = usize::try_from(good).unwrap();
        bytes[g + 1..].fill(0);
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(check(&path).unwrap(), (1, Tail::Torn { .. })));

        // Zeros in the middle, a record after them: corruption, with the offset of the zeros.
        let mut bytes = fs::read(&path).unwrap();
        bytes.truncate(g);
        let mut rec = Vec::new();
        record(&mut rec, 0, &[&["SET", "c", "3"]]);
        bytes.extend_from_slice(&[0; 40]);
        bytes.extend_from_slice(&rec);
        bytes.extend_from_slice(&[0; 4096]);
        fs::write(&path, &bytes).unwrap();
        let e = check(&path).unwrap_err();
        assert!(e.reason.contains("corruption") && e.offset == good, "{e}");
    }

    #[test]
    fn corruption_in_the_middle_is_an_error_with_the_offset() {
        let path = dir().join("log2");
        let _ = fs::remove_file(&path);
        let mut log = LogFile::create(&path).unwrap();
        let mut buf = Vec::new();
        for i in 0..100 {
            record(&mut buf, 0, &[&["SET", &format!("k{i}"), "v"]]);
        }
        log.append(&buf).unwrap();
        drop(log);
        let mut bytes = fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let e = check(&path).unwrap_err();
        assert!(e.reason.contains("corruption"), "{e}");
        assert!(e.offset <= mid as u64 && mid as u64 - e.offset < 40, "{e}");
        let cut = last_good_offset(&path).unwrap();
        assert_eq!(cut, e.offset);
    }

    #[test]
    fn manifests_round_trip_and_reject_damage() {
        let m = Manifest {
            base: Some("appendonly.aof.3.base".into()),
            incrs: vec!["appendonly.aof.3.incr".into(), "appendonly.aof.4.incr".into()],
        };
        let text = m.encode();
        assert_eq!(Manifest::decode(&text).unwrap(), m);
        assert_eq!(m.max_number(), 4);
        assert!(Manifest::decode(&text.replace("aof.4", "aof.5")).unwrap_err().contains("checksum"));
        let path = dir().join("manifest");
        m.write(&path).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), Some(m));
        assert_eq!(Manifest::read(&dir().join("none")).unwrap(), None);
    }

    #[test]
    fn directories_are_created_with_their_parents() {
        let top = dir().join("durable-a");
        let _ = fs::remove_dir_all(&top);
        let deep = top.join("b").join("c");
        create_dir_durably(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_durably(&deep).unwrap(); // exists: nothing to do
        let log = LogFile::create(&deep.join("x.incr")).unwrap();
        assert!(log.is_empty());
        assert!(LogFile::create(&deep.join("x.incr")).is_err(), "a log file is never overwritten");
        fs::remove_dir_all(&top).unwrap();
    }

    #[test]
    fn garbage_records_are_errors() {
        assert!(decode_record(&[0, 1, 0]).is_err()); // a command with no arguments
        assert!(decode_record(&[0, 200]).is_err()); // more commands than bytes
        assert!(decode_record(&[0, 1, 1, 3, b'a']).is_err());
        assert!(decode_record(&[0, 0, 9]).is_err()); // trailing bytes
    }
}
