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

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use libmimalloc_sys::mi_option_t;

/// The binary sets mimalloc as its allocator (main.rs); the library's own unit tests do too, so
/// that they measure what the server runs with.
#[cfg(test)]
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

/// Bumped whenever something frees memory worth giving back (a connection letting its grown
/// buffers go): worker threads then collect their heaps when they next run out of work.
static FREED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The value of [`FREED`] this thread last collected at, and when.
    static COLLECTED: Cell<(u64, Option<Instant>)> = const { Cell::new((0, None)) };
}

/// A thread's collections are at least this far apart.
const COLLECT_EVERY: Duration = Duration::from_millis(100);

/// Says that memory worth giving back to the operating system was freed (see
/// [`worker_parked`]).
pub(crate) fn note_freed() {
    FREED.fetch_add(1, Ordering::Relaxed);
}

/// Called by each worker thread of the runtime when it runs out of work (tokio's
/// `on_thread_park`). mimalloc gives a free page back to the operating system only through
/// the thread that owns it: memory that a connection freed on another thread (tasks move
/// between workers), or while its own thread had nothing else to allocate, stayed resident
/// (10,000 idle connections that had each run a pipeline held 80 KB each). So an idle worker
/// collects its heap when something was freed since its last collection, at most every
/// [`COLLECT_EVERY`]: a load of one atomic otherwise.
pub fn worker_parked() {
    let freed = FREED.load(Ordering::Relaxed);
    COLLECTED.with(|c| {
        let (seen, at) = c.get();
        if seen == freed || at.is_some_and(|t| t.elapsed() < COLLECT_EVERY) {
            return;
        }
        c.set((freed, Some(Instant::now())));
        // SAFETY: mi_collect takes no pointers; it collects the calling thread's heap.
        unsafe { libmimalloc_sys::mi_collect(false) }
    });
}

/// What the allocator and the process use, from mimalloc's own accounting.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// Memory mimalloc has committed from the operating system, now and at most.
    pub committed: usize,
    pub peak_committed: usize,
    /// CPU time of the process, in milliseconds.
    pub user_ms: usize,
    pub system_ms: usize,
}

pub(crate) fn usage() -> Usage {
    let mut u = Usage::default();
    let null = std::ptr::null_mut();
    // SAFETY: every argument is either null (not wanted, which mimalloc allows) or a valid,
    // exclusive pointer to a usize for the duration of the call.
    unsafe {
        libmimalloc_sys::mi_process_info(
            null,
            &mut u.user_ms,
            &mut u.system_ms,
            null,
            null,
            &mut u.committed,
            &mut u.peak_committed,
            null,
        );
    }
    u
}

/// The allocator's name and version, as INFO's `mem_allocator` shows it.
pub(crate) fn name() -> String {
    // SAFETY: returns an integer; no arguments.
    let v = unsafe { libmimalloc_sys::mi_version() };
    // Major, then two digits of minor and two of patch: 20302 is 2.3.2.
    format!("mimalloc-{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
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

    #[test]
    fn usage_reports_committed_memory() {
        let big = vec![1u8; 8 << 20];
        let u = usage();
        assert!(u.committed >= big.len() && u.peak_committed >= u.committed, "{u:?}");
        assert!(name().starts_with("mimalloc-"));
    }
}
