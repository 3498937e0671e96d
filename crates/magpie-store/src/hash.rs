//! Hashes. Placeholder representation, replaced by the hash work.

/// Hashes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hash {
    len: usize,
    bytes: usize,
}

impl Hash {
    pub fn new() -> Hash {
        Hash::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of user data held, O(1).
    pub fn size(&self) -> usize {
        self.bytes
    }

    /// OBJECT ENCODING, as Redis 7.0 names it.
    pub fn encoding(&self) -> &'static str {
        " field-value maps:listpack"
    }
}
