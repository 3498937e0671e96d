//! Magpie's keyspace, without I/O: databases split into shards, each a hash map behind its own
//! read-write lock; the value types; expiry (lazy on access, and an incremental active cycle).
//!
//! Locking rules, which make multi-key commands atomic and deadlock-free:
//! - a command on one key locks that key's shard only;
//! - a command on several keys locks every shard involved at once, in ascending
//!   (database, shard) order, through [`Keyspace::lock_write`] or [`Keyspace::lock_read`];
//! - whole-database operations take every shard of the database, in order.
//! - a transaction that names its keys holds their shards the same way, for its whole length,
//!   and lends them to the commands it runs on its thread ([`Keyspace::hold`]).

pub mod bits;
mod dense;
pub mod encoding;
pub mod evict;
pub mod geohash;
mod glob;
pub mod hash;
pub mod hll;
mod key;
mod keyspace;
pub mod limits;
mod lines;
pub mod list;
mod segtable;
pub mod set;
pub mod sizes;
mod sketch;
mod strbuf;
pub mod stream;
pub mod tap;
mod value;
pub mod zset;

pub use glob::glob_match;
pub use hash::Hash;
pub use key::Key;
pub use keyspace::{
    Db, DbStats, EmptySlot, Entry, EntryRef, EvictStep, Evicted, FrozenEntry, Held, Keyspace, LiveSlot, Loader,
    MultiRead, MultiWrite, Removed, ScanCursor, Shard, ShardRead, ShardWrite, Slot, SnapEntry, SnapshotSink, ValueRef,
    WARM_MAX,
};
pub use list::List;
pub use magpie_protocol::parse_i64;
pub use set::Set;
pub use strbuf::StrBuf;
pub use stream::{Stream, StreamId};
pub use tap::{Expired, Tap};
pub use value::{Frozen, Value};
pub use zset::ZSet;

/// Milliseconds since the Unix epoch: the clock expiry times are kept in.
pub fn now_ms() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

/// Length of `n` written in decimal (a string value's length when it is stored as an integer).
pub(crate) fn decimal_len(n: i64) -> usize {
    let digits = n.unsigned_abs().checked_ilog10().map_or(1, |d| d as usize + 1);
    digits + usize::from(n < 0)
}
