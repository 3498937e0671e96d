//! The encoding thresholds Redis 7.0 makes settings of (`hash-max-listpack-entries`,
//! `set-max-intset-entries`, `zset-max-listpack-value`, ...): process-wide, read where a
//! collection decides whether it still fits its compact form. A lower value converts sooner,
//! as in Redis. A value above what Magpie's compact form can hold (its compiled maximum) is
//! kept, and reported by CONFIG GET, but acts as that maximum.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// One threshold: what was set, and the most the compact form holds.
pub struct Limit {
    value: AtomicUsize,
    max: usize,
}

impl Limit {
    const fn new(default: usize, max: usize) -> Limit {
        Limit { value: AtomicUsize::new(default), max }
    }

    /// The threshold in force.
    #[inline]
    pub fn get(&self) -> usize {
        self.value.load(Relaxed).min(self.max)
    }

    /// What was set (CONFIG GET).
    pub fn configured(&self) -> usize {
        self.value.load(Relaxed)
    }

    pub fn set(&self, v: usize) {
        self.value.store(v, Relaxed);
    }
}

/// The most a hash's compact form holds: fields (Redis's default, 512)...
pub const HASH_MAX_ENTRIES: usize = 512;
/// ... and bytes in a field or value (Redis's default, 64).
pub const HASH_MAX_VALUE: usize = 64;
/// The most a sorted set's compact form holds: members (Redis's default, 128; its index is
/// a fixed array of that size)...
pub const ZSET_MAX_ENTRIES: usize = 128;
/// ... and bytes in a member (Redis's default, 64).
pub const ZSET_MAX_MEMBER: usize = 64;

/// `hash-max-listpack-entries` (`hash-max-ziplist-entries`).
pub static HASH_ENTRIES: Limit = Limit::new(512, HASH_MAX_ENTRIES);
/// `hash-max-listpack-value` (`hash-max-ziplist-value`).
pub static HASH_VALUE: Limit = Limit::new(64, HASH_MAX_VALUE);
/// `set-max-intset-entries`.
pub static SET_INTSET_ENTRIES: Limit = Limit::new(512, usize::MAX);
/// `zset-max-listpack-entries` (`zset-max-ziplist-entries`).
pub static ZSET_ENTRIES: Limit = Limit::new(128, ZSET_MAX_ENTRIES);
/// `zset-max-listpack-value` (`zset-max-ziplist-value`).
pub static ZSET_VALUE: Limit = Limit::new(64, ZSET_MAX_MEMBER);

/// `list-max-listpack-size` (`list-max-ziplist-size`): kept for CONFIG GET; a list's chunks
/// are Magpie's own 16 KB ones whatever it says (Redis 7.0 reports every list as a
/// quicklist, and so does Magpie).
pub static LIST_MAX_LISTPACK_SIZE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(-2);
/// `list-compress-depth`: kept for CONFIG GET; Magpie does not compress list chunks.
pub static LIST_COMPRESS_DEPTH: AtomicUsize = AtomicUsize::new(0);
