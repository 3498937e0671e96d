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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::codec::{Cursor, DecodeError, Decoded, put_bytes, put_uvarint};
use crate::frame::{self, FileError, Frames, Kind, Next};
use crate::snapshot::{parent_dir, sync_dir};

/// Appends one record (a frame) holding `commands`, all in database `db`.
pub fn put_record<'a, C, A>(out: &mut Vec<u8>, scratch: &mut Vec<u8>, db: usize, commands: C)
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
    frame::put_frame(out, scratch);
}

/// A record read back: its database and its commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub db: usize,
    pub commands: Vec<Vec<Vec<u8>>>,
}

fn decode_record(payload: &[u8]) -> Decoded<Record> {
    let mut c = Cursor::new(payload);
    let db = usize::try_from(c.uvarint()?).map_err(|_| DecodeError("database out of range".into()))?;
    let n = c.count(1)?;
    let mut commands = Vec::with_capacity(n);
    for _ in 0..n {
        let argc = c.count(1)?;
        if argc == 0 {
            return Err(DecodeError("a command with no arguments".into()));
        }
        let mut args = Vec::with_capacity(argc);
        for _ in 0..argc {
            args.push(c.bytes()?.to_vec());
        }
        commands.push(args);
    }
    if !c.is_empty() {
        return Err(DecodeError("bytes left after the last command".into()));
    }
    Ok(Record { db, commands })
}

/// An incremental log open for appending.
pub struct LogFile {
    file: File,
    path: PathBuf,
    /// Bytes known to be written whole: where a failed write is cut back to.
    len: u64,
}

impl LogFile {
    /// Creates a new, empty log (its header fsynced, and the directory entry too). Its
    /// directory must exist and be durable already (see [`create_dir_durably`]).
    pub fn create(path: &Path) -> io::Result<LogFile> {
        let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
        file.write_all(&frame::file_header(Kind::Log))?;
        file.sync_all()?;
        sync_dir(parent_dir(path))?;
        Ok(LogFile { file, path: path.to_owned(), len: frame::FILE_HEADER as u64 })
    }

    /// Opens an existing log to append to it, after its first `valid_len` bytes (anything
    /// after, a torn tail already reported by the reader, is cut off).
    pub fn open_append(path: &Path, valid_len: u64) -> io::Result<LogFile> {
        let file = OpenOptions::new().write(true).open(path)?;
        if file.metadata()?.len() != valid_len {
            file.set_len(valid_len)?;
            file.sync_all()?;
        }
        let mut log = LogFile { file, path: path.to_owned(), len: valid_len };
        use std::io::Seek;
        log.file.seek(io::SeekFrom::Start(valid_len))?;
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len <= frame::FILE_HEADER as u64
    }

    /// Appends whole records. On failure the file is cut back to its length before the call
    /// (no partial record stays behind) and the error returned: the caller keeps the bytes
    /// and tries again later.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.file.write_all(bytes) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                use std::io::Seek;
                // Best effort: if even this fails, the next append fails too and tries again.
                if self.file.set_len(self.len).is_ok() {
                    let _ = self.file.seek(io::SeekFrom::Start(self.len));
                }
                Err(e)
            }
        }
    }

    /// Makes everything appended durable (fdatasync).
    pub fn sync(&self) -> io::Result<()> {
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
    /// The last record was cut short or damaged (a write interrupted by a crash), and
    /// nothing valid follows: `dropped` bytes from `offset` are not part of the log.
    Torn { offset: u64, dropped: u64, reason: String },
}

/// Reads a log's records in order. Damage followed by intact records is corruption: an
/// error naming the file and the offset. Damage that runs to the end is a torn tail,
/// reported by [`LogReader::tail`] once the records are read.
pub struct LogReader {
    frames: Frames,
    payload: Vec<u8>,
    tail: Option<Tail>,
}

impl LogReader {
    pub fn open(path: &Path) -> Result<LogReader, FileError> {
        Ok(LogReader { frames: Frames::open(path, Kind::Log)?, payload: Vec::new(), tail: None })
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
        if self.tail.is_some() {
            return Ok(None);
        }
        let path = self.frames.path().to_owned();
        let err = |offset, reason| FileError { path: path.clone(), offset, reason };
        match self.frames.next(&mut self.payload).map_err(|e| err(self.frames.pos(), format!("read error: {e}")))? {
            Next::Frame(at) => match decode_record(&self.payload) {
                Ok(r) => Ok(Some(r)),
                Err(e) => Err(err(at, format!("bad record: {e}"))),
            },
            Next::End => {
                self.tail = Some(Tail::Clean);
                Ok(None)
            }
            Next::Bad(at, reason) => {
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
                        Ok(None)
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

/// Reads a whole log: the number of records and how it ends (for `--check-aof`).
pub fn check(path: &Path) -> Result<(u64, Tail), FileError> {
    let mut r = LogReader::open(path)?;
    let mut n = 0;
    while r.next_record()?.is_some() {
        n += 1;
    }
    Ok((n, r.tail().cloned().unwrap_or(Tail::Clean)))
}

/// The last offset at which `path` can be cut so that what stays is a log of whole, intact
/// records: the end of the last good record before any damage (for `--check-aof --fix`).
pub fn last_good_offset(path: &Path) -> Result<u64, FileError> {
    let mut frames = Frames::open(path, Kind::Log)?;
    let mut payload = Vec::new();
    loop {
        let before = frames.pos();
        let next = frames.next(&mut payload).map_err(|e| FileError {
            path: path.to_owned(),
            offset: before,
            reason: format!("read error: {e}"),
        })?;
        match next {
            Next::Frame(_) if decode_record(&payload).is_ok() => {}
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
        put_record(out, &mut scratch, db, cmds.iter().map(|c| c.iter().map(|a| a.as_bytes())));
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
