//! The bottom layer: errors and the argument parsers that produce Redis's texts, the keyspace
//! event classes, sizes, `long double` arithmetic, the allocator. It knows nothing else of the
//! server; everything else may use it.

pub mod alloc;
pub mod args;
pub mod error;
pub mod events;
pub mod float;
pub mod units;
