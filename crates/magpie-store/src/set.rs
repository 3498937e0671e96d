//! Sets of byte strings. Placeholder representation, replaced by the set work.

/// Sets of byte strings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Set {
    len: usize,
    bytes: usize,
}

impl Set {
    pub fn new() -> Set {
        Set::default()
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

    /// Whether `member` is in the set. (Used by the sorted-set commands, which accept sets.)
    pub fn contains(&self, member: &[u8]) -> bool {
        let _ = member;
        false
    }

    /// Calls `f` with every member, in no particular order (integers in decimal). (Used by the
    /// sorted-set commands, which accept sets.)
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        let _ = &mut f;
    }

    /// OBJECT ENCODING, as Redis 7.0 names it.
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }
}
