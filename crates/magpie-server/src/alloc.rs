//! The memory allocator: mimalloc, told to give freed pages back at once.
//!
//! mimalloc is faster than glibc's malloc for Magpie's many small values. By default it
//! returns freed pages to the operating system only some time after they are freed, and only
//! while the allocator is being called. When a shard's table grows, the old, smaller table is
//! freed; after a bulk load those old tables add up to about as much as the live ones, and an
//! idle server kept them resident: 1M keys measured 251 bytes/key, 199 with immediate purging
//! (`bench/run.sh --memory`). Redis runs jemalloc with a background purge thread for the same
//! reason.

#![allow(unsafe_code)]

use libmimalloc_sys::mi_option_t;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3), which libmimalloc-sys does not name:
/// the option just before `mi_option_use_numa_nodes` (16).
const PURGE_DELAY: mi_option_t = 15;

/// Sets the allocator's options; call once at start.
pub fn configure() {
    // SAFETY: mi_option_set stores an integer in mimalloc's option table; it takes no
    // pointers and is valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_is_the_option_before_use_numa_nodes() {
        assert_eq!(libmimalloc_sys::mi_option_use_numa_nodes - 1, PURGE_DELAY);
        configure();
        // SAFETY: reads an integer option.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 0);
    }
}
