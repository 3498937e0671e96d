//! RDB files, read and written one item at a time (`rdbLoadRio`, `rdbSaveRio`).
//!
//! ```text
//! file  := "REDIS" version:4 ASCII digits item* 0xFF crc64:u64le
//! item  := 0xFA key:string value:string                       AUX field
//!        | 0xF5 code:string                                   FUNCTION2 (a library)
//!        | 0xFE db:len                                        SELECTDB
//!        | 0xFB db-size:len expires-size:len                  RESIZEDB
//!        | [0xFC ms:u64le | 0xFD s:u32le] [0xF8 idle:len] [0xF9 freq:u8] type key:string value
//! ```
//!
//! The checksum is the CRC-64 of every byte before it; 0 means the writer had checksums off.

use std::io::{BufReader, BufWriter, Read, Write};

use super::io::{Input, StreamInput, put_len, put_ms, put_string, read_len, read_ms, read_string};
use super::{
    Object, RDB_VERSION, RdbError, ReadOptions, WriteOptions, crc64, dump::read_function, module_type_name, opcodes,
    types, value,
};

/// An AUX field (`redis-ver`, `ctime`, `used-mem`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aux {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A key and its value, with what the opcodes before it said.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyEntry {
    pub db: u64,
    pub key: Vec<u8>,
    pub object: Object,
    /// Absolute expiry time, milliseconds since the Unix epoch.
    pub expire_ms: Option<i64>,
    /// LRU idle time in seconds (written under an LRU maxmemory policy).
    pub idle_secs: Option<u64>,
    /// LFU counter (written under an LFU maxmemory policy).
    pub freq: Option<u8>,
}

/// One item of a file, in file order.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Aux(Aux),
    /// The code of a function library.
    Function(Vec<u8>),
    SelectDb(u64),
    ResizeDb {
        db_size: u64,
        expires_size: u64,
    },
    Key(KeyEntry),
}

/// Reads an RDB file item by item: memory holds one value at a time, never the file.
pub struct RdbReader<R: Read> {
    inp: StreamInput<BufReader<R>>,
    version: u32,
    db: u64,
    opts: ReadOptions,
    done: bool,
    empty_keys_skipped: u64,
    checksum_disabled: bool,
}

impl<R: Read> RdbReader<R> {
    /// Reads the header. With `opts.verify_checksum` off, the checksum at the end is read but
    /// not compared.
    pub fn new(inner: R, opts: ReadOptions) -> Result<RdbReader<R>, RdbError> {
        let mut inp = StreamInput::new(BufReader::with_capacity(1 << 16, inner));
        let magic: [u8; 9] = inp.array()?;
        if &magic[..5] != b"REDIS" {
            return Err(RdbError::Signature);
        }
        // atoi: leading digits.
        let version =
            magic[5..].iter().take_while(|b| b.is_ascii_digit()).fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'));
        if version < 1 || version > u32::from(RDB_VERSION) {
            return Err(RdbError::Version(version));
        }
        Ok(RdbReader { inp, version, db: 0, opts, done: false, empty_keys_skipped: 0, checksum_disabled: false })
    }

    /// The file's RDB version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Empty collections found and skipped (Redis skips them too, with a warning).
    pub fn empty_keys_skipped(&self) -> u64 {
        self.empty_keys_skipped
    }

    /// Whether the file ended with a zero checksum (written with `rdbchecksum no`).
    pub fn checksum_disabled(&self) -> bool {
        self.checksum_disabled
    }

    /// Bytes read so far (for progress reports).
    pub fn offset(&self) -> u64 {
        self.inp.offset()
    }

    /// The next item; `None` once the EOF opcode and a sound checksum have been read.
    pub fn next_item(&mut self) -> Result<Option<Item>, RdbError> {
        if self.done {
            return Ok(None);
        }
        let (mut expire_ms, mut idle_secs, mut freq) = (None, None, None);
        loop {
            let t = self.inp.u8()?;
            match t {
                opcodes::EXPIRETIME => expire_ms = Some(i64::from(i32::from_le_bytes(self.inp.array()?)) * 1000),
                opcodes::EXPIRETIME_MS => expire_ms = Some(read_ms(&mut self.inp)?),
                opcodes::FREQ => freq = Some(self.inp.u8()?),
                opcodes::IDLE => idle_secs = Some(read_len(&mut self.inp)?),
                opcodes::EOF => {
                    self.finish()?;
                    return Ok(None);
                }
                opcodes::SELECTDB => {
                    self.db = read_len(&mut self.inp)?;
                    return Ok(Some(Item::SelectDb(self.db)));
                }
                opcodes::RESIZEDB => {
                    let db_size = read_len(&mut self.inp)?;
                    let expires_size = read_len(&mut self.inp)?;
                    return Ok(Some(Item::ResizeDb { db_size, expires_size }));
                }
                opcodes::AUX => {
                    let key = read_string(&mut self.inp)?;
                    let value = read_string(&mut self.inp)?;
                    return Ok(Some(Item::Aux(Aux { key, value })));
                }
                opcodes::MODULE_AUX => {
                    let id = read_len(&mut self.inp)?;
                    return Err(RdbError::Module(format!(
                        "The RDB file contains AUX module data I can't load: no matching module '{}'",
                        module_type_name(id)
                    )));
                }
                opcodes::FUNCTION | opcodes::FUNCTION2 => {
                    return read_function(&mut self.inp, t).map(|code| Some(Item::Function(code))).map_err(
                        |e| match e {
                            RdbError::Function(m) => RdbError::Function(format!("Failed loading library, {m}")),
                            e => e,
                        },
                    );
                }
                t if types::is_object_type(t) => {
                    let key = read_string(&mut self.inp)?;
                    match value::read_object(&mut self.inp, t, &self.opts)? {
                        Some(object) => {
                            return Ok(Some(Item::Key(KeyEntry {
                                db: self.db,
                                key,
                                object,
                                expire_ms,
                                idle_secs,
                                freq,
                            })));
                        }
                        None => {
                            self.empty_keys_skipped += 1;
                            (expire_ms, idle_secs, freq) = (None, None, None);
                        }
                    }
                }
                t => return Err(RdbError::corrupt(format!("Unknown RDB encoding type {t}"))),
            }
        }
    }

    /// After the EOF opcode: the checksum (RDB 5 and later).
    fn finish(&mut self) -> Result<(), RdbError> {
        self.done = true;
        if self.version < 5 {
            return Ok(());
        }
        let expected = self.inp.crc();
        let mut b = [0u8; 8];
        self.inp.read_exact_unchecked(&mut b)?;
        let found = u64::from_le_bytes(b);
        if found == 0 {
            self.checksum_disabled = true;
        } else if self.opts.verify_checksum && found != expected {
            return Err(RdbError::Checksum { expected, found });
        }
        Ok(())
    }

    /// Calls `f` with every item until the end of the file.
    pub fn for_each(mut self, mut f: impl FnMut(Item) -> Result<(), RdbError>) -> Result<Self, RdbError> {
        while let Some(item) = self.next_item()? {
            f(item)?;
        }
        Ok(self)
    }
}

/// Writes an RDB file item by item; each item is encoded, then written.
pub struct RdbWriter<W: Write> {
    out: BufWriter<W>,
    crc: u64,
    checksum: bool,
    opts: WriteOptions,
    buf: Vec<u8>,
}

impl<W: Write> RdbWriter<W> {
    /// Writes the header `REDIS0010`. `checksum` is Redis's `rdbchecksum` (off: the file ends
    /// with a zero checksum).
    pub fn new(inner: W, opts: WriteOptions, checksum: bool) -> std::io::Result<RdbWriter<W>> {
        let mut w =
            RdbWriter { out: BufWriter::with_capacity(1 << 16, inner), crc: 0, checksum, opts, buf: Vec::new() };
        w.buf.extend_from_slice(format!("REDIS{RDB_VERSION:04}").as_bytes());
        w.flush_item()?;
        Ok(w)
    }

    fn flush_item(&mut self) -> std::io::Result<()> {
        if self.checksum {
            self.crc = crc64(self.crc, &self.buf);
        }
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    pub fn aux(&mut self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        self.buf.push(opcodes::AUX);
        put_string(&mut self.buf, key, self.opts.compression);
        put_string(&mut self.buf, value, self.opts.compression);
        self.flush_item()
    }

    /// The AUX fields Redis 7.0 writes first: `redis-ver`, `redis-bits`, `ctime` (seconds),
    /// `used-mem` and `aof-base`.
    pub fn default_aux(&mut self, redis_ver: &str, ctime_secs: i64, used_mem: u64) -> std::io::Result<()> {
        self.aux(b"redis-ver", redis_ver.as_bytes())?;
        self.aux(b"redis-bits", b"64")?;
        self.aux(b"ctime", ctime_secs.to_string().as_bytes())?;
        self.aux(b"used-mem", used_mem.to_string().as_bytes())?;
        self.aux(b"aof-base", b"0")
    }

    /// A function library's code (written before the databases, as Redis does).
    pub fn function(&mut self, code: &[u8]) -> std::io::Result<()> {
        self.buf.push(opcodes::FUNCTION2);
        put_string(&mut self.buf, code, self.opts.compression);
        self.flush_item()
    }

    /// Starts database `db`: SELECTDB and RESIZEDB with its number of keys and of expiring keys.
    pub fn select_db(&mut self, db: u64, db_size: u64, expires_size: u64) -> std::io::Result<()> {
        self.buf.push(opcodes::SELECTDB);
        put_len(&mut self.buf, db);
        self.buf.push(opcodes::RESIZEDB);
        put_len(&mut self.buf, db_size);
        put_len(&mut self.buf, expires_size);
        self.flush_item()
    }

    /// A key in the current database.
    pub fn key(&mut self, key: &[u8], object: &Object, expire_ms: Option<i64>) -> std::io::Result<()> {
        self.key_with(key, object, expire_ms, None, None)
    }

    /// A key with its LRU idle time or LFU counter (Redis writes one when its maxmemory policy
    /// uses it).
    pub fn key_with(
        &mut self,
        key: &[u8],
        object: &Object,
        expire_ms: Option<i64>,
        idle_secs: Option<u64>,
        freq: Option<u8>,
    ) -> std::io::Result<()> {
        if let Some(ms) = expire_ms {
            self.buf.push(opcodes::EXPIRETIME_MS);
            put_ms(&mut self.buf, ms);
        }
        if let Some(idle) = idle_secs {
            self.buf.push(opcodes::IDLE);
            put_len(&mut self.buf, idle);
        }
        if let Some(f) = freq {
            self.buf.extend_from_slice(&[opcodes::FREQ, f]);
        }
        value::write_object(&mut self.buf, Some(key), object, &self.opts);
        self.flush_item()
    }

    /// A key whose value is a DUMP payload, copied as it is (its footer and CRC-64 checked
    /// first): what a client that reads a server with SCAN and DUMP writes, whatever the type,
    /// without decoding the value.
    pub fn key_from_dump(&mut self, key: &[u8], payload: &[u8], expire_ms: Option<i64>) -> std::io::Result<()> {
        super::dump::verify_payload(payload, false)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
        let (&rdbtype, body) = payload[..payload.len() - 10]
            .split_first()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "empty DUMP payload"))?;
        if !types::is_object_type(rdbtype) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unknown RDB type {rdbtype}")));
        }
        if let Some(ms) = expire_ms {
            self.buf.push(opcodes::EXPIRETIME_MS);
            put_ms(&mut self.buf, ms);
        }
        self.buf.push(rdbtype);
        put_string(&mut self.buf, key, self.opts.compression);
        self.buf.extend_from_slice(body);
        self.flush_item()
    }

    /// Writes EOF and the checksum, flushes, and returns the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.buf.push(opcodes::EOF);
        self.flush_item()?;
        let crc = if self.checksum { self.crc } else { 0 };
        self.out.write_all(&crc.to_le_bytes())?;
        self.out.into_inner().map_err(std::io::IntoInnerError::into_error)
    }
}
