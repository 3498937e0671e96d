//! Lists. Placeholder representation, replaced by the list work: a deque of elements.

use std::collections::VecDeque;

/// A list of byte strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct List {
    items: VecDeque<Box<[u8]>>,
    bytes: usize,
}

impl List {
    pub fn new() -> List {
        List::default()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes of user data held (sum of the elements' lengths), O(1).
    pub fn size(&self) -> usize {
        self.bytes
    }

    /// Redis 7.0's OBJECT ENCODING for lists.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }
}
