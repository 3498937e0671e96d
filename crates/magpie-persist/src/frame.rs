//! Checksummed frames, the container of every Magpie file.
//!
//! ```text
//! file   := header frame*
//! header := magic[8] version:u16le reserved:u16le crc32c(magic..reserved):u32le      16 bytes
//! frame  := mark len:u32le crc32c(payload):u32le crc32c(mark..payload crc):u32le     13 bytes
//!           payload[len]
//! mark   := 0xF7                        (a payload under 4 GiB)
//!         | 0xF0 + (length >> 32)       (0xF1..=0xF4: bits 32 and up of a longer one's length)
//! ```
//!
//! The header checksum lets a reader trust `len` before reading the payload, and find the next
//! good frame after a damaged one: that is how a torn tail (a crash in the middle of a write:
//! nothing valid follows the damage) is told from corruption (valid frames follow it).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub const MARK: u8 = 0xF7;
/// Base of the marks of frames of 4 GiB and more (see the module's doc).
pub const LONG_MARK: u8 = 0xF0;
pub const FRAME_HEADER: usize = 13;
pub const FILE_HEADER: usize = 16;
/// The format version written, and the newest one read.
pub const VERSION: u16 = 1;
/// No frame is larger (a bigger length is damage).
pub const MAX_FRAME: u64 = 1 << 34;

/// What a file holds, named by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Snapshot,
    Log,
}

impl Kind {
    fn magic(self) -> &'static [u8; 8] {
        match self {
            Kind::Snapshot => b"MAGPIESN",
            Kind::Log => b"MAGPIELG",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshot",
            Kind::Log => "append-only log",
        }
    }
}

/// The 16 bytes a file of `kind` starts with.
pub fn file_header(kind: Kind) -> [u8; FILE_HEADER] {
    let mut h = [0u8; FILE_HEADER];
    h[..8].copy_from_slice(kind.magic());
    h[8..10].copy_from_slice(&VERSION.to_le_bytes());
    let crc = crc32c::crc32c(&h[..12]);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Appends one frame holding `payload`; fails, appending nothing, for a payload over
/// [`MAX_FRAME`].
pub fn put_frame(out: &mut Vec<u8>, payload: &[u8]) -> io::Result<()> {
    let header = frame_header(payload.len(), crc32c::crc32c(payload))?;
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    Ok(())
}

/// The header of a frame whose payload is `len` bytes with checksum `crc` (for a writer that
/// writes a big payload where it lies rather than copy it after the header). A payload over
/// [`MAX_FRAME`] is refused: its length would not fit (written cut short, it would make the
/// file unreadable from there on).
pub fn frame_header(len: usize, crc: u32) -> io::Result<[u8; FRAME_HEADER]> {
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a record of {len} bytes is over the {MAX_FRAME}-byte limit of a frame"),
        )
    };
    let len = u64::try_from(len).map_err(|_| too_big())?;
    if len > MAX_FRAME {
        return Err(too_big());
    }
    let high = u8::try_from(len >> 32).map_err(|_| too_big())?;
    let low = u32::try_from(len & u64::from(u32::MAX)).map_err(|_| too_big())?;
    let mut h = [0u8; FRAME_HEADER];
    h[0] = if high == 0 { MARK } else { LONG_MARK + high };
    h[1..5].copy_from_slice(&low.to_le_bytes());
    h[5..9].copy_from_slice(&crc.to_le_bytes());
    let hcrc = crc32c::crc32c(&h[..9]);
    h[9..].copy_from_slice(&hcrc.to_le_bytes());
    Ok(h)
}

/// Whether `b` starts a frame header (see the module's doc).
fn is_mark(b: u8) -> bool {
    b == MARK || (LONG_MARK + 1..=LONG_MARK + 4).contains(&b)
}

/// Parses a frame header: the payload's length and checksum, if the header is intact.
fn parse_header(h: &[u8; FRAME_HEADER]) -> Option<(u64, u32)> {
    if !is_mark(h[0]) {
        return None;
    }
    let hcrc = u32::from_le_bytes([h[9], h[10], h[11], h[12]]);
    if crc32c::crc32c(&h[..9]) != hcrc {
        return None;
    }
    let high = if h[0] == MARK { 0 } else { u64::from(h[0] - LONG_MARK) };
    let len = high << 32 | u64::from(u32::from_le_bytes([h[1], h[2], h[3], h[4]]));
    let crc = u32::from_le_bytes([h[5], h[6], h[7], h[8]]);
    Some((len, crc))
}

/// A file that could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    pub offset: u64,
    pub reason: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at offset {}: {}", self.path.display(), self.offset, self.reason)
    }
}

impl std::error::Error for FileError {}

/// Reads the frames of a file in order.
#[derive(Debug)]
pub struct Frames {
    path: PathBuf,
    reader: BufReader<File>,
    /// Offset of the next frame.
    pos: u64,
    len: u64,
}

/// What [`Frames::next`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// A frame starting at this offset; its payload is in the caller's buffer.
    Frame(u64),
    /// The clean end of the file.
    End,
    /// A frame that is cut short or damaged, at this offset, and why.
    Bad(u64, String),
}

impl Frames {
    /// Opens a file and checks its header.
    pub fn open(path: &Path, kind: Kind) -> Result<Frames, FileError> {
        let err = |offset, reason: String| FileError { path: path.to_owned(), offset, reason };
        let file = File::open(path).map_err(|e| err(0, format!("cannot open: {e}")))?;
        let len = file.metadata().map_err(|e| err(0, format!("cannot stat: {e}")))?.len();
        let mut reader = BufReader::with_capacity(1 << 16, file);
        let mut h = [0u8; FILE_HEADER];
        if len < FILE_HEADER as u64 || reader.read_exact(&mut h).is_err() {
            return Err(err(0, format!("too short to be a Magpie {} ({len} bytes)", kind.name())));
        }
        if &h[..8] != kind.magic() {
            return Err(err(0, format!("not a Magpie {} (wrong magic bytes)", kind.name())));
        }
        if crc32c::crc32c(&h[..12]).to_le_bytes() != h[12..] {
            return Err(err(0, "file header checksum mismatch".to_owned()));
        }
        let version = u16::from_le_bytes([h[8], h[9]]);
        if version > VERSION {
            return Err(err(8, format!("format version {version} is newer than this build reads ({VERSION})")));
        }
        Ok(Frames { path: path.to_owned(), reader, pos: FILE_HEADER as u64, len })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Length of the file when it was opened.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Offset just past the last frame read.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Reads the next frame's payload into `payload`.
    pub fn next(&mut self, payload: &mut Vec<u8>) -> io::Result<Next> {
        let start = self.pos;
        let left = self.len - start;
        if left == 0 {
            return Ok(Next::End);
        }
        if left < FRAME_HEADER as u64 {
            return Ok(Next::Bad(start, format!("{left} bytes at the end, too few for a frame")));
        }
        let mut h = [0u8; FRAME_HEADER];
        self.reader.read_exact(&mut h)?;
        let Some((len, crc)) = parse_header(&h) else {
            return Ok(Next::Bad(start, "damaged frame header".to_owned()));
        };
        if len > left - FRAME_HEADER as u64 {
            return Ok(Next::Bad(start, format!("frame of {len} bytes runs past the end of the file")));
        }
        payload.clear();
        let Ok(size) = usize::try_from(len) else {
            return Ok(Next::Bad(start, format!("frame of {len} bytes is too big for this machine")));
        };
        payload.resize(size, 0);
        self.reader.read_exact(payload)?;
        if crc32c::crc32c(payload) != crc {
            return Ok(Next::Bad(start, "frame checksum mismatch".to_owned()));
        }
        self.pos = start + FRAME_HEADER as u64 + len;
        Ok(Next::Frame(start))
    }

    /// Whether every byte from `offset` to the end of the file is zero: after [`Next::Bad`]
    /// there, the zeros a log is preallocated with (see `log`'s module doc), which no frame
    /// starts with. True at the end of the file.
    pub fn zeros_from(&mut self, offset: u64) -> io::Result<bool> {
        let file = self.reader.get_mut();
        file.seek(SeekFrom::Start(offset))?;
        let mut chunk = vec![0u8; 1 << 16];
        let mut pos = offset;
        while pos < self.len {
            let n = read_full(file, &mut chunk)?;
            if n == 0 {
                break;
            }
            if chunk[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            pos += n as u64;
        }
        Ok(true)
    }

    /// After [`Next::Bad`] at `offset`: the offset of the first intact frame after it, if any.
    /// None means nothing valid follows: the damage is a torn tail (a write cut short by a
    /// crash), not corruption in the middle of the file.
    pub fn next_intact_after(&mut self, offset: u64) -> io::Result<Option<u64>> {
        let file = self.reader.get_mut();
        let mut pos = offset + 1;
        let mut chunk = vec![0u8; 1 << 20];
        while pos + FRAME_HEADER as u64 <= self.len {
            file.seek(SeekFrom::Start(pos))?;
            let n = read_full(file, &mut chunk)?;
            if n < FRAME_HEADER {
                break;
            }
            let candidates = chunk[..n - FRAME_HEADER + 1].iter().enumerate().filter(|&(_, &b)| is_mark(b));
            for (i, _) in candidates {
                let at = pos + i as u64;
                let Ok(h) = <[u8; FRAME_HEADER]>::try_from(&chunk[i..i + FRAME_HEADER]) else { continue };
                let Some((len, crc)) = parse_header(&h) else { continue };
                if at + FRAME_HEADER as u64 + len > self.len {
                    continue;
                }
                let Ok(size) = usize::try_from(len) else { continue };
                let mut payload = vec![0u8; size];
                file.seek(SeekFrom::Start(at + FRAME_HEADER as u64))?;
                file.read_exact(&mut payload)?;
                if crc32c::crc32c(&payload) == crc {
                    return Ok(Some(at));
                }
            }
            pos += (n - FRAME_HEADER + 1) as u64;
        }
        Ok(None)
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub(super) fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("magpie-persist-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn write_file(path: &Path, frames: &[&[u8]]) -> Vec<u64> {
        let mut out = file_header(Kind::Log).to_vec();
        let mut offsets = Vec::new();
        for f in frames {
            offsets.push(out.len() as u64);
            put_frame(&mut out, f).unwrap();
        }
        std::fs::File::create(path).unwrap().write_all(&out).unwrap();
        offsets
    }

    fn read_all(path: &Path) -> (Vec<Vec<u8>>, Next) {
        let mut frames = Frames::open(path, Kind::Log).unwrap();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            match frames.next(&mut buf).unwrap() {
                Next::Frame(_) => out.push(buf.clone()),
                other => return (out, other),
            }
        }
    }

    /// Frames of 4 GiB and more carry the high bits of their length in the mark; past
    /// MAX_FRAME a frame is refused rather than written with its length cut short.
    #[test]
    fn long_frames_keep_their_whole_length() {
        for len in [0usize, 1, (1 << 32) - 1, 1 << 32, (5 << 30) + 7, 1 << 34] {
            let h = frame_header(len, 0xDEAD_BEEF).unwrap();
            assert_eq!(h[0] == MARK, len < 1 << 32, "{len}");
            assert_eq!(parse_header(&h), Some((len as u64, 0xDEAD_BEEF)), "{len}");
        }
        assert!(frame_header((1 << 34) + 1, 0).is_err());
        let mut out = Vec::new();
        assert!(put_frame(&mut out, b"small").is_ok());
        // A damaged long mark is damage, not another length.
        let mut h = frame_header(1 << 33, 7).unwrap();
        h[0] = LONG_MARK + 1;
        assert_eq!(parse_header(&h), None);
    }

    #[test]
    fn frames_round_trip() {
        let p = temp_path("roundtrip");
        write_file(&p, &[b"one", b"", &[MARK; 100]]);
        let (frames, end) = read_all(&p);
        assert_eq!(frames, vec![b"one".to_vec(), vec![], vec![MARK; 100]]);
        assert_eq!(end, Next::End);
    }

    #[test]
    fn a_cut_tail_is_torn_and_a_flipped_byte_in_the_middle_is_corruption() {
        let p = temp_path("damage");
        let offsets = write_file(&p, &[b"first", b"second", b"third"]);
        let full = std::fs::read(&p).unwrap();
        // Cut in the middle of the last frame: nothing valid follows.
        std::fs::write(&p, &full[..full.len() - 2]).unwrap();
        let (frames, end) = read_all(&p);
        assert_eq!(frames.len(), 2);
        let Next::Bad(at, _) = end else { panic!("{end:?}") };
        assert_eq!(at, offsets[2]);
        let mut f = Frames::open(&p, Kind::Log).unwrap();
        assert_eq!(f.next_intact_after(at).unwrap(), None);
        // A flipped byte in the second frame's payload: the third is still intact.
        let mut bad = full.clone();
        bad[usize::try_from(offsets[1]).unwrap() + FRAME_HEADER + 2] ^= 0x10;
        std::fs::write(&p, &bad).unwrap();
        let (frames, end) = read_all(&p);
        assert_eq!(frames.len(), 1);
        let Next::Bad(at, reason) = end else { panic!() };
        assert_eq!((at, reason.as_str()), (offsets[1], "frame checksum mismatch"));
        let mut f = Frames::open(&p, Kind::Log).unwrap();
        assert_eq!(f.next_intact_after(at).unwrap(), Some(offsets[2]));
        // A flipped byte in a header's length is caught by the header checksum.
        let mut bad = full.clone();
        bad[usize::try_from(offsets[0]).unwrap() + 2] ^= 0x01;
        std::fs::write(&p, &bad).unwrap();
        let (_, end) = read_all(&p);
        assert_eq!(end, Next::Bad(offsets[0], "damaged frame header".to_owned()));
    }

    #[test]
    fn headers_are_checked() {
        let p = temp_path("headers");
        std::fs::write(&p, b"short").unwrap();
        assert!(Frames::open(&p, Kind::Log).unwrap_err().reason.contains("too short"));
        write_file(&p, &[]);
        assert!(Frames::open(&p, Kind::Snapshot).unwrap_err().reason.contains("not a Magpie snapshot"));
        let mut h = file_header(Kind::Log);
        h[8] = 9; // version 9, checksum fixed up
        let crc = crc32c::crc32c(&h[..12]);
        h[12..].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&p, h).unwrap();
        assert!(Frames::open(&p, Kind::Log).unwrap_err().reason.contains("newer"));
    }
}
