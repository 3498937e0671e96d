//! Sorted sets. Placeholder representation, replaced by the zset work.

/// Sorted sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZSet {
    len: usize,
    bytes: usize,
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet::default()
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
        "listpack"
    }
}
