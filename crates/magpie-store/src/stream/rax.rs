//! How many nodes Redis's radix tree (`rax.c`) uses for a set of stream node keys, which
//! XINFO STREAM reports as `radix-tree-nodes`.
//!
//! Stream keys are all 16 bytes, so no key is a prefix of another and only leaves are keys.
//! For such sets rax's insertions and deletions (which recompress chains after a removal)
//! always leave the same shape: a chain of bytes shared by every key below a point is one
//! compressed node, a byte where keys diverge is one branching node with a child per byte
//! value, and each key ends in an empty leaf. So the count depends on the keys only.

/// Nodes of a rax holding `keys` (sorted, distinct, 16 bytes each); an empty rax has its head.
pub(crate) fn node_count(keys: &[[u8; 16]]) -> usize {
    if keys.is_empty() { 1 } else { count(keys, 0) }
}

/// Nodes of the subtree holding `keys` (which share their first `depth` bytes).
fn count(keys: &[[u8; 16]], depth: usize) -> usize {
    match keys {
        [] => 0,
        // One key: the rest of it compressed in one node, then its leaf.
        [_] => {
            if depth == 16 {
                1
            } else {
                2
            }
        }
        [first, .., last] => {
            // Sorted: the bytes all keys share are those the first and last share.
            let shared = (depth..16).take_while(|&i| first[i] == last[i]).count();
            if shared > 0 {
                return 1 + count(keys, depth + shared);
            }
            // A branching node, and a subtree per byte value.
            let mut n = 1;
            let mut rest = keys;
            while let Some(k) = rest.first() {
                let b = k[depth];
                let same = rest.iter().take_while(|x| x[depth] == b).count();
                n += count(&rest[..same], depth + 1);
                rest = &rest[same..];
            }
            n
        }
    }
}
