//! The Redis wire protocol, without I/O.
//!
//! - [`Decoder`] turns the bytes a client sent into commands (RESP multibulk frames and inline
//!   commands), resumably: it keeps its place across reads, so a large frame arriving in many
//!   small pieces is scanned once.
//! - [`Reply`] writes semantic replies (null, map, set, double, ...) encoded for the
//!   connection's protocol version, so command code never branches on RESP2 versus RESP3.
//! - [`FrameDecoder`] is the client's side: it turns a server's bytes into [`Frame`]s (RESP2 and
//!   RESP3 replies), just as resumably; [`encode_request`] writes commands.

// Formats and protocol code: no lossy `as` casts (a length that does not fit is an error, not
// a silently different number), as redb does for its file format.
#![deny(clippy::cast_possible_truncation, clippy::cast_possible_wrap, clippy::cast_sign_loss)]

mod args;
mod decode;
mod frame;
mod reply;

pub use args::{ArgVec, Args};
pub use decode::{Decoder, Limits, ProtocolError, parse_i64, split_line};
pub use frame::{Frame, FrameDecoder, FrameError, FrameLimits, encode_request};
pub use reply::{Reply, Resp, format_g17};
