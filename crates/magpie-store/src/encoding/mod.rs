//! Redis's compact encodings, byte for byte as Redis 7.0 writes and checks them: the
//! [`listpack`] (small hashes, sorted sets, list nodes and stream nodes), the [`intset`] (small
//! sets of integers), and, read only, the [`ziplist`] and [`zipmap`] that older Redis versions
//! left in RDB files. They are what Redis's RDB format and DUMP payloads carry; Magpie's own
//! value types keep their data in their own layouts and convert at the boundary.
//!
//! Every reader here takes bytes from outside (a file, a RESTORE payload): it checks each length
//! against the bytes it has before using it, and refuses anything Redis's integrity checks
//! (`lpValidateIntegrity`, `intsetValidateIntegrity`, `ziplistValidateIntegrity`,
//! `zipmapValidateIntegrity`, with their `deep` walk) refuse, with a [`Corrupt`] error.

pub mod intset;
pub mod listpack;
pub mod ziplist;
pub mod zipmap;

use std::fmt;

/// An element of a listpack or ziplist: a string, or an integer the encoding stored as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl<'a> Entry<'a> {
    /// The entry as the string it stands for (an integer in decimal).
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Entry::Str(s) => s.to_vec(),
            Entry::Int(n) => itoa::Buffer::new().format(n).as_bytes().to_vec(),
        }
    }

    /// Calls `f` with the entry's bytes (an integer formatted on the stack).
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Entry::Str(s) => f(s),
            Entry::Int(n) => f(itoa::Buffer::new().format(n).as_bytes()),
        }
    }

    /// The entry as an integer: an integer entry, or a string that is a canonical integer (as
    /// Redis's `lpGetIntegerIfValid` reads stream fields).
    pub fn as_int(self) -> Option<i64> {
        match self {
            Entry::Int(n) => Some(n),
            Entry::Str(s) => magpie_protocol::parse_i64(s),
        }
    }

    /// Whether the entry equals the string `s` (an integer compared in decimal).
    pub fn eq_bytes(self, s: &[u8]) -> bool {
        match self {
            Entry::Str(v) => v == s,
            Entry::Int(n) => magpie_protocol::parse_i64(s) == Some(n),
        }
    }
}

/// An encoded structure failed an integrity check: what was wrong, for logs and errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corrupt(pub &'static str);

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Corrupt {}
