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

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use libmimalloc_sys::mi_option_t;

/// The binary sets mimalloc as its allocator (main.rs); the library's own unit tests do too, so
/// that they measure what the server runs with.
#[cfg(test)]
#[global_allocator]
static GLOBAL: Counting = Counting;

/// mimalloc, counting the bytes it hands out (their usable size, as Redis's zmalloc counts
/// `malloc_usable_size`): `used_memory`, which `maxmemory` is compared with. Each thread adds
/// to its own tally and folds it into the shared counter past [`BATCH`] bytes either way, so
/// an allocation costs no shared write; the shared figure lags by at most `BATCH` per thread.
pub struct Counting;

static USED: AtomicI64 = AtomicI64::new(0);
const BATCH: i64 = 64 * 1024;

thread_local! {
    static TALLY: Cell<i64> = const { Cell::new(0) };
    /// Every byte this thread ever allocated (for measuring one value: MEMORY USAGE).
    static ALLOCATED: Cell<u64> = const { Cell::new(0) };
}

#[inline]
fn count(delta: i64) {
    if delta > 0 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + delta as u64));
    }
    // `try_with`: a thread's last frees run after its locals are gone; count them directly.
    let folded = TALLY.try_with(|t| {
        let v = t.get() + delta;
        if (-BATCH..=BATCH).contains(&v) {
            t.set(v);
        } else {
            t.set(0);
            USED.fetch_add(v, Ordering::Relaxed);
        }
    });
    if folded.is_err() {
        USED.fetch_add(delta, Ordering::Relaxed);
    }
}

/// The largest alignment [`Counting`] asks of mimalloc's plain `mi_malloc`: every block of a
/// size class that is a multiple of 16 bytes starts 16-aligned (a page's first block is, and
/// the blocks follow at the class's size).
const PLAIN_ALIGN: usize = 16;

/// The size asked of `mi_malloc` for a block of `size` bytes aligned to `align` (at most
/// [`PLAIN_ALIGN`]): every block is 8-aligned, so only 16 needs the size rounded up to a
/// multiple of 16 (a class that is one too).
#[inline]
fn plain_size(size: usize, align: usize) -> usize {
    if align > 8 { size.next_multiple_of(PLAIN_ALIGN) } else { size }
}

// mimalloc's calls that also give the block's usable size (mimalloc.h, v3), which
// libmimalloc-sys does not bind: one lookup of the block's page, where `mi_usable_size`
// beside the call would make a second.
//
// Every block is counted at its whole block's size, as `mi_ufree` reports it: an
// over-aligned block starts inside a bigger one, and `mi_usable_size` of it is smaller by
// the offset, so counting that when allocating and `mi_ufree`'s figure when freeing drifted
// `used_memory` down at every over-aligned block (tokio's tasks are aligned to 128).
unsafe extern "C" {
    fn mi_umalloc(size: usize, usable: *mut usize) -> *mut std::ffi::c_void;
    fn mi_uzalloc(size: usize, usable: *mut usize) -> *mut std::ffi::c_void;
    fn mi_umalloc_aligned(size: usize, align: usize, usable: *mut usize) -> *mut std::ffi::c_void;
    fn mi_uzalloc_aligned(size: usize, align: usize, usable: *mut usize) -> *mut std::ffi::c_void;
    fn mi_urealloc(p: *mut std::ffi::c_void, size: usize, pre: *mut usize, post: *mut usize) -> *mut std::ffi::c_void;
    fn mi_ufree(p: *mut std::ffi::c_void, usable: *mut usize);
}

/// A block of `layout`, from `plain` (`mi_umalloc` or `mi_uzalloc`) where that is aligned
/// enough, else from `aligned` (their aligned forms); counted.
#[inline]
fn allocate(
    layout: Layout,
    plain: unsafe extern "C" fn(usize, *mut usize) -> *mut std::ffi::c_void,
    aligned: unsafe extern "C" fn(usize, usize, *mut usize) -> *mut std::ffi::c_void,
) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    if align <= PLAIN_ALIGN {
        let mut got = 0;
        // SAFETY: a plain allocation; `got` is a valid place for the block's size.
        let p: *mut u8 = unsafe { plain(plain_size(size, align), &mut got) }.cast();
        if p.is_null() {
            return p;
        }
        if p as usize & (align - 1) == 0 {
            count(got as i64);
            return p;
        }
        // Never seen (see `PLAIN_ALIGN`); the check keeps the contract whatever mimalloc's
        // size classes become.
        // SAFETY: `p` came from mimalloc just now and is not used again.
        unsafe { libmimalloc_sys::mi_free(p.cast()) };
    }
    let mut got = 0;
    // SAFETY: a non-zero size (the caller's guarantee), a power-of-two alignment, and a valid
    // place for the block's size.
    let p: *mut u8 = unsafe { aligned(size, align, &mut got) }.cast();
    if !p.is_null() {
        count(got as i64);
    }
    p
}

// SAFETY: every block comes from mimalloc with at least the layout's size and alignment
// (checked for the plain calls), and is freed by mimalloc; the counting reads the block's
// size and touches no memory of the block.
//
// Why not mimalloc's own `GlobalAlloc`: it asks `mi_malloc_aligned` for every allocation,
// alignment 1 included. When the thread's page of a size class has no free block at hand,
// that call over-allocates from the next class up (size + alignment - 1) rather than
// collecting the page's freed blocks, which only the plain path does. So blocks that one
// thread frees and allocates in turn (Lua's objects, with mlua's 16-byte alignment; 48-byte
// blocks aligned to 8) moved up a class for good: 48-byte blocks became 64, and half of a
// script's allocations took that slow path (callgrind, EVALSHA of INCR + EXPIRE).
unsafe impl GlobalAlloc for Counting {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        allocate(layout, mi_umalloc, mi_umalloc_aligned)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        allocate(layout, mi_uzalloc, mi_uzalloc_aligned)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        let mut freed = 0;
        // SAFETY: `ptr` came from this allocator (mimalloc) and is freed once, as the caller
        // guarantees; `freed` is a valid place for its size.
        unsafe { mi_ufree(ptr.cast(), &mut freed) };
        count(-(freed as i64));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        if align > PLAIN_ALIGN {
            // Rare (no buffer of Magpie's grows with such an alignment): a new block, the
            // bytes copied, the old one freed, each counted as above.
            let q =
                allocate(Layout::from_size_align(new_size, align).unwrap_or(layout), mi_umalloc, mi_umalloc_aligned);
            if !q.is_null() {
                // SAFETY: both blocks hold at least `min(old, new)` bytes and are distinct;
                // the old one is the caller's, not used again once this returns non-null.
                unsafe {
                    std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
            }
            return q;
        }
        let (mut before, mut after) = (0, 0);
        // SAFETY: `ptr` came from mimalloc; on success it is moved or grown in place, on
        // failure left as it was. Both sizes go to valid places.
        let p: *mut u8 =
            unsafe { mi_urealloc(ptr.cast(), plain_size(new_size, align), &mut before, &mut after) }.cast();
        if p.is_null() {
            return p;
        }
        count(after as i64 - before as i64);
        if p as usize & (align - 1) == 0 {
            return p;
        }
        // Never seen (see `PLAIN_ALIGN`): move the bytes to an aligned block.
        let q = allocate(Layout::from_size_align(new_size, align).unwrap_or(layout), mi_umalloc, mi_umalloc_aligned);
        if q.is_null() {
            // The caller's block is already moved to `p`: a null would tell it to go on
            // using the old one.
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: both blocks hold at least `min(old, new)` bytes and are distinct; `p` is
        // not used again.
        unsafe {
            std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
            self.dealloc(p, layout);
        }
        q
    }
}

/// Asks mimalloc to free and return to the system every page it can (MEMORY PURGE): this
/// thread's heap and the abandoned ones at once, and every other worker's when it next runs
/// out of work (a heap is collected only by its own thread; see [`worker_parked`]).
pub(crate) fn purge() {
    // SAFETY: takes no pointers; collects this thread's heap and the abandoned ones.
    unsafe { libmimalloc_sys::mi_collect(true) }
    note_freed();
}

/// Bytes this thread has allocated since it started (never decreases).
pub(crate) fn thread_allocated() -> u64 {
    ALLOCATED.try_with(Cell::get).unwrap_or(0)
}

/// Folds this thread's tally into the shared counter once it is [`FLUSH_MIN`] or more either
/// way (after evicting, so that other threads see the memory freed and do not evict it
/// again). A locked add to the shared counter after every eviction's few hundred bytes was
/// 1.8% of the time of SETs under `allkeys-lru` (`perf`); other threads now see at most
/// 4 KB of it late, where they already see up to [`BATCH`] of each thread's own.
pub(crate) fn flush() {
    let _ = TALLY.try_with(|t| {
        if t.get().abs() >= FLUSH_MIN {
            USED.fetch_add(t.replace(0), Ordering::Relaxed);
        }
    });
}

const FLUSH_MIN: i64 = 4 * 1024;

/// Bytes allocated now (Redis's `zmalloc_used_memory`), as this thread sees them: the shared
/// counter and this thread's own tally. 0 if the process does not run [`Counting`].
pub(crate) fn used() -> u64 {
    let own = TALLY.try_with(Cell::get).unwrap_or(0);
    u64::try_from(USED.load(Ordering::Relaxed) + own).unwrap_or(0)
}

/// The process's resident memory (`VmRSS` of /proc/self/status), 0 where unavailable.
pub(crate) fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3), which libmimalloc-sys does not name:
/// the option just before `mi_option_use_numa_nodes` (16).
const PURGE_DELAY: mi_option_t = 15;

/// Sets the allocator's options; call once at start.
pub fn configure() {
    // SAFETY: mi_option_set stores an integer in mimalloc's option table; it takes no
    // pointers and is valid at any time.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) }
}

/// `PR_SET_THP_DISABLE` in linux/prctl.h.
#[cfg(target_os = "linux")]
const PR_SET_THP_DISABLE: std::ffi::c_int = 41;

#[cfg(target_os = "linux")]
unsafe extern "C" {
    fn prctl(option: std::ffi::c_int, ...) -> std::ffi::c_int;
}

/// Turns transparent huge pages off for the whole process (`disable-thp yes`, as Redis's),
/// before the keyspace allocates. mimalloc asks for huge pages (`madvise(MADV_HUGEPAGE)` on
/// its arenas), and a 2 MB page is resident whole as soon as one byte of it is used: 1M small
/// keys took 11 bytes a key more, and an idle server 18 MB instead of 9 (docs/benchmarks.md).
/// The kernel then ignores the allocator's advice for every mapping, old and new. Fails only
/// on kernels before 3.5 (or outside Linux), where the server goes on with the kernel's
/// choice.
pub fn disable_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_THP_DISABLE reads its integer arguments only and sets a
        // flag of this process.
        if unsafe {
            prctl(
                PR_SET_THP_DISABLE,
                1 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
                0 as std::ffi::c_ulong,
            )
        } != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    Err(std::io::Error::other("transparent huge pages are a Linux setting"))
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
pub(crate) fn worker_parked() {
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

    fn usable(p: *mut u8) -> usize {
        // SAFETY: `p` was returned by mimalloc and not freed yet.
        unsafe { libmimalloc_sys::mi_usable_size(p.cast()) }
    }

    #[test]
    fn purge_delay_is_the_option_before_use_numa_nodes() {
        assert_eq!(libmimalloc_sys::mi_option_use_numa_nodes - 1, PURGE_DELAY);
        configure();
        // SAFETY: reads an integer option.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 0);
    }

    #[test]
    fn used_follows_allocations() {
        let before = used();
        let mine = thread_allocated();
        let big = vec![1u8; 64 << 20];
        let during = used();
        assert!(thread_allocated() - mine >= 64 << 20);
        drop(big);
        let after = used();
        // Other test threads allocate meanwhile; 64 MB stands out of their noise.
        assert!(during >= before + (48 << 20), "{before} {during}");
        assert!(after + (48 << 20) <= during, "{during} {after}");
    }

    #[test]
    fn usage_reports_committed_memory() {
        let big = vec![1u8; 8 << 20];
        let u = usage();
        assert!(u.committed >= big.len() && u.peak_committed >= u.committed, "{u:?}");
        assert!(name().starts_with("mimalloc-"));
    }

    /// Blocks of a size class that is not a power of two, allocated and freed in turn by one
    /// thread (as Lua's collector and the keyspace's entries do), keep their class: the
    /// blocks freed go back to the class's page and are handed out again.
    #[test]
    fn blocks_keep_their_size_class_as_they_are_freed_and_reused() {
        for (size, align) in [(24, 8), (40, 8), (48, 8), (40, 16), (24, 16), (80, 1), (100, 4)] {
            let layout = Layout::from_size_align(size, align).unwrap();
            let class = {
                // SAFETY: the layout's size is not zero; the block is freed below.
                let p = unsafe { Counting.alloc(layout) };
                let u = usable(p);
                // SAFETY: allocated above with this layout.
                unsafe { Counting.dealloc(p, layout) };
                u
            };
            let mut live: Vec<*mut u8> = Vec::new();
            let mut worst = 0;
            for round in 0..20 {
                for _ in 0..2000 {
                    // SAFETY: as above; every block is freed before the test ends.
                    let p = unsafe { Counting.alloc(layout) };
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "{size}/{align}");
                    worst = worst.max(usable(p));
                    live.push(p);
                }
                // Free all but a few, leaving pages partly used, as a collector's sweep does.
                let keep = live.split_off(live.len() - round);
                for p in live.drain(..) {
                    // SAFETY: allocated above with this layout, freed once.
                    unsafe { Counting.dealloc(p, layout) };
                }
                live = keep;
            }
            for p in live {
                // SAFETY: as above.
                unsafe { Counting.dealloc(p, layout) };
            }
            assert_eq!(worst, class, "{size} bytes aligned to {align}: blocks of {worst} bytes, not {class}");
        }
    }

    /// `magpie_store::sizes::alloc_class`, which the store's growing buffers round to, is
    /// mimalloc's own rounding.
    #[test]
    fn the_stores_size_classes_are_mimallocs() {
        for n in 1..=magpie_store::sizes::CLASSES_UP_TO {
            // SAFETY: takes and returns an integer.
            let good = unsafe { libmimalloc_sys::mi_good_size(n) };
            assert_eq!(magpie_store::sizes::alloc_class(n), good, "{n} bytes");
        }
    }

    /// A block counts the same bytes when it is freed as when it was allocated, whatever its
    /// alignment (over-aligned blocks start inside a bigger one): `used_memory` must not
    /// drift as tasks and buffers with big alignments come and go.
    #[test]
    fn a_block_counts_the_same_when_freed_as_when_allocated() {
        std::thread::spawn(|| {
            let tally = || TALLY.with(Cell::get);
            for (size, align) in [(100, 128), (24, 64), (3000, 4096), (40, 16), (7, 1), (200, 32)] {
                let layout = Layout::from_size_align(size, align).unwrap();
                for _ in 0..50 {
                    let before = tally();
                    // SAFETY: a non-zero size; freed right after with the same layout.
                    let p = unsafe { Counting.alloc(layout) };
                    assert_eq!(p as usize % align, 0);
                    // SAFETY: as above.
                    let q = unsafe { Counting.realloc(p, layout, size * 3) };
                    assert_eq!(q as usize % align, 0);
                    // SAFETY: `q` holds the block now, with the grown layout.
                    unsafe { Counting.dealloc(q, Layout::from_size_align(size * 3, align).unwrap()) };
                    assert_eq!(tally(), before, "{size} bytes aligned to {align}");
                }
            }
        })
        .join()
        .unwrap();
    }
}
