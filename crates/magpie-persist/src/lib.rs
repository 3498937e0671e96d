//! Magpie's files, with std I/O only: snapshots (a point-in-time image of the keyspace), the
//! append-only log of write effects with its manifest, and the checks that find damage.
//! The byte layouts are documented in `docs/formats.md`.

// File formats: no lossy `as` casts (a length that does not fit is an error, not a silently
// different number written to disk or read from it), as in magpie-protocol.
#![deny(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

pub mod codec;
pub mod frame;
pub mod log;
pub mod rdb;
pub mod snapshot;
mod stream_rdb;
mod value;

pub use frame::FileError;
pub use snapshot::{Loaded, SnapshotReader, SnapshotWriter};
