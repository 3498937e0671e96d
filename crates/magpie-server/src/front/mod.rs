//! The front ends: the ways into command execution. Each owns its sessions and runs commands
//! through the execution layer's dispatcher (`crate::exec::Batch`); none makes a check of its
//! own. The RESP connection ([`resp`]), the HTTP API ([`http`]) and the log replayed at start
//! ([`replay`]).

pub(crate) mod http;
pub(crate) mod output;
pub(crate) mod replay;
pub(crate) mod resp;
pub(crate) mod stream;
