//! The allocator's size classes, for buffers that grow: a buffer whose capacity is a whole
//! class holds every byte of its block, where a capacity just past a class takes the next
//! class's block and leaves up to a fifth of it unused (and uncounted by the buffer).

/// The block size mimalloc (the server's allocator) hands out for `n` bytes: `mi_good_size`
/// for small and medium blocks. Up to 64 bytes the classes are 8 and every 16 bytes; above,
/// four per doubling (80, 96, 112, 128, 160, ...: `_mi_bin` in mimalloc's page-queue.c). Past
/// [`CLASSES_UP_TO`] blocks come in pages of their own, and `n` is returned as it is. The
/// server's tests check this against `mi_good_size` itself.
pub fn alloc_class(n: usize) -> usize {
    if n > CLASSES_UP_TO {
        return n;
    }
    if n <= 8 {
        return 8;
    }
    if n <= 64 {
        return n.next_multiple_of(16);
    }
    let w = n.div_ceil(8) - 1;
    let b = usize::BITS - 1 - w.leading_zeros();
    let step = 1usize << (b - 2);
    ((w >> (b - 2)) + 1) * step * 8
}

/// The largest size [`alloc_class`] rounds up: mimalloc's medium objects (64 KB) and below.
pub const CLASSES_UP_TO: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_sixteen_bytes_apart_then_four_per_doubling() {
        assert_eq!(alloc_class(1), 8);
        assert_eq!(alloc_class(9), 16);
        assert_eq!(alloc_class(24), 32);
        assert_eq!(alloc_class(64), 64);
        assert_eq!(alloc_class(65), 80);
        assert_eq!(alloc_class(81), 96);
        assert_eq!(alloc_class(129), 160);
        assert_eq!(alloc_class(6600), 7168);
        assert_eq!(alloc_class(8193), 10240);
        assert_eq!(alloc_class(16384), 16384);
        assert_eq!(alloc_class(CLASSES_UP_TO + 1), CLASSES_UP_TO + 1);
        let mut last = 0;
        for n in 1..=CLASSES_UP_TO {
            let c = alloc_class(n);
            assert!(c >= n && c >= last, "{n}: {c}");
            assert_eq!(alloc_class(c), c, "{n}: a class is its own class");
            last = c;
        }
    }
}
