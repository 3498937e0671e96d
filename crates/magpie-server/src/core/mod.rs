//! The bottom layer: errors and the argument parsers that produce Redis's texts, the keyspace
//! event classes, sizes, `long double` arithmetic, the allocator. It knows nothing else of the
//! server; everything else may use it.

pub(crate) mod alloc;
pub(crate) mod args;
pub(crate) mod error;
pub(crate) mod events;
pub(crate) mod float;
pub(crate) mod units;
