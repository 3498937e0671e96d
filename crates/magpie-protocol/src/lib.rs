//! The Redis wire protocol, without I/O.
//!
//! - [`Decoder`] turns the bytes a client sent into commands (RESP multibulk frames and inline
//!   commands), resumably: it keeps its place across reads, so a large frame arriving in many
//!   small pieces is scanned once.
//! - [`Reply`] writes semantic replies (null, map, set, double, ...) encoded for the
//!   connection's protocol version, so command code never branches on RESP2 versus RESP3.

mod decode;
mod reply;

pub use decode::{Args, Decoder, Limits, ProtocolError, parse_i64};
pub use reply::{Reply, Resp};
