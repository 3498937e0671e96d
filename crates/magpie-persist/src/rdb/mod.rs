//! Redis's RDB format, version 10 (Redis 7.0): the values of every type, DUMP/RESTORE
//! payloads, FUNCTION DUMP payloads, and whole RDB files (read and written entry by entry).
//! Byte layouts are in `docs/formats.md` ("Redis's RDB format").
//!
//! - [`dump`] / [`restore`]: one value as `DUMP` produces and `RESTORE` accepts it.
//! - [`function_dump`] / [`function_restore`]: function libraries as `FUNCTION DUMP` does.
//! - [`RdbReader`] / [`RdbWriter`]: files, as `SAVE` writes them and Redis loads them.
//!
//! Writing picks the encoding Redis 7.0 would hold the value in under the given [`Thresholds`]
//! (Redis's defaults by default), so that the DUMP of a value is the bytes Redis produces for
//! the same value wherever Redis's own output does not depend on chance (hash-table order).
//! Reading accepts every type Redis 7.0 reads, including those older versions wrote, checks
//! everything as Redis's `sanitize-dump-payload yes` does, and never panics or allocates from
//! a length it has not seen the bytes for.

mod crc64;
mod dump;
mod file;
pub mod io;
mod lzf;
mod stream;
mod value;

use std::fmt;

use magpie_store::Value;

pub use crc64::crc64;
pub use dump::{
    FunctionRestoreError, RestoreError, dump, dump_value, function_dump, function_restore, restore, verify_payload,
};
pub use file::{Aux, Item, KeyEntry, RdbReader, RdbWriter};
pub use lzf::{compress as lzf_compress, decompress as lzf_decompress};
pub use stream::{
    Consumer, ConsumerGroup, Field, NODE_MAX_BYTES, NODE_MAX_ENTRIES, PendingEntry, Stream, StreamEntry, StreamId,
    StreamNode,
};
pub use value::{read_object, write_object, write_value};

/// The RDB version Magpie writes, and the newest it reads (Redis 7.0's).
pub const RDB_VERSION: u16 = 10;

/// Object types (the byte before a value).
pub mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;

    /// Whether `t` is an object type Redis 7.0 knows (`rdbIsObjectType`).
    pub fn is_object_type(t: u8) -> bool {
        t <= 7 || (9..=19).contains(&t)
    }
}

/// Opcodes of an RDB file.
pub mod opcodes {
    pub const FUNCTION2: u8 = 245;
    /// Function libraries as Redis 7.0's release candidates wrote them.
    pub const FUNCTION: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

/// A value as RDB holds it: one of Magpie's values, or a stream as read, in Redis's layout
/// (`magpie_store::Stream::try_from` makes it a `Value::Stream`; either form is written as
/// Redis writes a stream).
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Value(Value),
    Stream(Box<Stream>),
}

impl From<Value> for Object {
    fn from(v: Value) -> Object {
        Object::Value(v)
    }
}

/// Redis's encoding thresholds (`hash-max-listpack-entries` and the others), which decide how a
/// value is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    /// `list-max-listpack-size`: negative for a size per node (-1 4 KB .. -5 64 KB), positive
    /// for a number of entries per node (within 8 KB).
    pub list_max_listpack_size: i64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
        }
    }
}

/// How values are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// `rdbcompression`: LZF for strings (and encoded blobs) longer than 20 bytes.
    pub compression: bool,
    pub thresholds: Thresholds,
}

impl Default for WriteOptions {
    fn default() -> WriteOptions {
        WriteOptions { compression: true, thresholds: Thresholds::default() }
    }
}

/// How values are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// Redis's `sanitize-dump-payload`: with it, a stream's listpacks are walked entry by entry
    /// and every pending entry must have a consumer. Everything else (listpacks, intsets,
    /// ziplists, duplicates) is always checked entry by entry, since Magpie converts each
    /// entry into its own types anyway.
    pub deep_sanitize: bool,
    /// Compare checksums: an RDB file's (Redis's `rdbchecksum`; a file whose checksum is 0 was
    /// written without one and is accepted) and a payload's (off as with Redis's
    /// `DEBUG SET-SKIP-CHECKSUM-VALIDATION 1`).
    pub verify_checksum: bool,
}

impl Default for ReadOptions {
    fn default() -> ReadOptions {
        ReadOptions { deep_sanitize: true, verify_checksum: true }
    }
}

/// Why RDB data could not be read.
#[derive(Debug)]
pub enum RdbError {
    Io(std::io::Error),
    /// The data ends before what it announced ("Short read").
    Eof,
    /// The data is damaged: what was wrong.
    Corrupt(String),
    /// Not an RDB file.
    Signature,
    /// An RDB version newer than Magpie reads.
    Version(u32),
    /// The checksum after the EOF opcode does not match the file.
    Checksum {
        expected: u64,
        found: u64,
    },
    /// Module data, which Magpie cannot load (Redis's message).
    Module(String),
    /// A function library could not be read.
    Function(String),
}

impl RdbError {
    pub(crate) fn corrupt(msg: impl Into<String>) -> RdbError {
        RdbError::Corrupt(msg.into())
    }
}

impl fmt::Display for RdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RdbError::Io(e) => write!(f, "I/O error: {e}"),
            RdbError::Eof => f.write_str("Unexpected EOF reading RDB file"),
            RdbError::Corrupt(m) => write!(f, "Internal error in RDB reading: {m}"),
            RdbError::Signature => f.write_str("Wrong signature trying to load DB from file"),
            RdbError::Version(v) => write!(f, "Can't handle RDB format version {v}"),
            RdbError::Checksum { expected, found } => {
                write!(f, "Wrong RDB checksum expected: ({expected:x}) but got ({found:x})")
            }
            RdbError::Module(m) | RdbError::Function(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for RdbError {}

impl From<std::io::Error> for RdbError {
    fn from(e: std::io::Error) -> RdbError {
        RdbError::Io(e)
    }
}

/// The 9-character name of a module type from its 64-bit id (`moduleTypeNameByID`).
pub fn module_type_name(id: u64) -> String {
    const CSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id = id >> 10;
    let mut name = [0u8; 9];
    for slot in name.iter_mut().rev() {
        *slot = CSET[(id & 63) as usize];
        id >>= 6;
    }
    String::from_utf8_lossy(&name).into_owned()
}
