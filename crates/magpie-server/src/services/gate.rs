//! The gate: lets a transaction (EXEC, COMMIT) run with no other command running, as Redis's
//! single thread does, while ordinary commands on different threads never wait for each other.
//! (An EXEC whose commands declare their keys takes only the read side and holds its keys'
//! shards instead: see `exec::multi`.)
//!
//! It is a reader-writer lock split per thread (a "big reader" lock): each thread that runs
//! commands takes the read side of its own slot, on a cache line no other core writes, so an
//! ordinary command pays one uncontended atomic operation. A transaction takes the write side
//! of every slot, which waits for the commands in flight to finish and holds new ones back
//! until it is done. Taking the gate again on a thread that holds it costs nothing (a command
//! run from inside EXEC, a blocked client served from inside a push).
//!
//! **Busy.** A holder of the write side that runs too long (a script past
//! `busy-reply-threshold`) marks the gate busy. Clients' commands take the gate with
//! [`Gate::try_shared`] / [`Gate::try_exclusive`], which wait in slices and give up once the
//! gate is busy, so that the dispatcher can answer `-BUSY` (or let an `ALLOW_BUSY` command
//! through with [`Gate::bypass`]) instead of holding a thread until the script ends. Their fast
//! path is the same single atomic operation: the busy flag is read only while waiting.
//!
//! **Slots in use.** A thread gets its slot the first time it takes the gate; the write side
//! locks only the slots handed out so far (a handful: the worker threads and a few others),
//! not all of them, which made every EVAL take 64 locks. A thread getting its first slot
//! waits for the write side to be free (the holder keeps the assignment lock), so it cannot
//! slip past a transaction on a slot the transaction did not lock.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Slots; threads beyond this share them (readers can).
const SLOTS: usize = 64;
/// How long a command waits at a time before it looks whether the holder became busy.
const POLL: Duration = Duration::from_millis(10);

#[repr(align(128))]
struct Padded(RwLock<()>);

/// Slots handed out so far, by every gate of the process (a thread keeps its slot number for
/// whichever gate it uses).
static NEXT: AtomicUsize = AtomicUsize::new(0);
/// Held to hand out a slot, and by the write side while it is held.
static ASSIGN: Mutex<()> = parking_lot::const_mutex(());

pub(crate) struct Gate {
    slots: Box<[Padded]>,
    /// Set by the holder of the write side when it has run too long (see the module's doc).
    busy: AtomicBool,
}

thread_local! {
    /// This thread's slot, once it has one.
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
    /// What this thread holds: 0 nothing, 1 its slot's read side, 2 every write side.
    static HELD: Cell<u8> = const { Cell::new(0) };
}

/// Held while a command runs; released on drop.
pub(crate) enum Pass<'a> {
    /// The thread already held the gate.
    Reentered,
    Shared(#[allow(dead_code)] RwLockReadGuard<'a, ()>),
    Exclusive(#[allow(dead_code)] MutexGuard<'static, ()>, #[allow(dead_code)] Vec<RwLockWriteGuard<'a, ()>>),
    /// Let through without the gate while its holder is busy (see [`Gate::bypass`]).
    Bypassed,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if !matches!(self, Pass::Reentered | Pass::Bypassed) {
            HELD.with(|h| h.set(0));
        }
    }
}

impl Default for Gate {
    fn default() -> Gate {
        Gate { slots: (0..SLOTS).map(|_| Padded(RwLock::new(()))).collect(), busy: AtomicBool::new(false) }
    }
}

impl Gate {
    /// This thread's slot; the first time, one is handed out (see the module's doc), waiting
    /// for the write side to be free: `None` if it became busy meanwhile (with `give_up`).
    #[inline]
    fn slot(&self, give_up: bool) -> Option<usize> {
        match SLOT.with(Cell::get) {
            Some(i) => Some(i),
            None => self.assign(give_up),
        }
    }

    #[cold]
    fn assign(&self, give_up: bool) -> Option<usize> {
        let _assigning = if give_up {
            loop {
                if let Some(g) = ASSIGN.try_lock_for(POLL) {
                    break g;
                }
                if self.is_busy() {
                    return None;
                }
            }
        } else {
            ASSIGN.lock()
        };
        let i = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
        SLOT.with(|s| s.set(Some(i)));
        Some(i)
    }

    /// The write side: the assignment lock, then every slot handed out.
    fn write_all<'a>(&'a self, assigning: MutexGuard<'static, ()>, give_up: bool) -> Option<Pass<'a>> {
        let used = NEXT.load(Ordering::Relaxed).min(SLOTS);
        let mut guards = Vec::with_capacity(used);
        for s in &self.slots[..used] {
            let guard = match s.0.try_write() {
                Some(g) => g,
                None if !give_up => s.0.write(),
                None => loop {
                    if self.is_busy() {
                        return None; // the slots taken so far are let go
                    }
                    if let Some(g) = s.0.try_write_for(POLL) {
                        break g;
                    }
                },
            };
            guards.push(guard);
        }
        HELD.with(|h| h.set(2));
        Some(Pass::Exclusive(assigning, guards))
    }

    /// For an ordinary command: waits only while a transaction runs.
    pub(crate) fn shared(&self) -> Pass<'_> {
        if HELD.with(Cell::get) != 0 {
            return Pass::Reentered;
        }
        let slot = self.slot(false).unwrap_or(0);
        let guard = self.slots[slot].0.read();
        HELD.with(|h| h.set(1));
        Pass::Shared(guard)
    }

    /// For a transaction: waits for every command in flight, and keeps others out.
    pub(crate) fn exclusive(&self) -> Pass<'_> {
        match HELD.with(Cell::get) {
            0 => {}
            // Already exclusive; or (a bug) shared, which cannot be upgraded without
            // deadlocking against itself: run inside what is held.
            held => {
                debug_assert_eq!(held, 2, "the gate cannot be upgraded from shared to exclusive");
                return Pass::Reentered;
            }
        }
        match self.write_all(ASSIGN.lock(), false) {
            Some(pass) => pass,
            None => Pass::Reentered, // cannot happen: it waits without giving up
        }
    }

    /// [`Gate::shared`] for a client's command: `None` once the holder of the write side is
    /// busy (instead of waiting for it to finish).
    #[inline]
    pub(crate) fn try_shared(&self) -> Option<Pass<'_>> {
        if HELD.with(Cell::get) != 0 {
            return Some(Pass::Reentered);
        }
        let slot = &self.slots[self.slot(true)?].0;
        let guard = match slot.try_read() {
            Some(g) => g,
            None => self.wait_read(slot)?,
        };
        HELD.with(|h| h.set(1));
        Some(Pass::Shared(guard))
    }

    #[cold]
    fn wait_read<'a>(&self, slot: &'a RwLock<()>) -> Option<RwLockReadGuard<'a, ()>> {
        loop {
            if self.is_busy() {
                return None;
            }
            if let Some(g) = slot.try_read_for(POLL) {
                return Some(g);
            }
        }
    }

    /// [`Gate::exclusive`] for a client's command: `None` once the holder is busy.
    pub(crate) fn try_exclusive(&self) -> Option<Pass<'_>> {
        match HELD.with(Cell::get) {
            0 => {}
            held => {
                debug_assert_eq!(held, 2, "the gate cannot be upgraded from shared to exclusive");
                return Some(Pass::Reentered);
            }
        }
        let assigning = match ASSIGN.try_lock() {
            Some(g) => g,
            None => loop {
                if self.is_busy() {
                    return None;
                }
                if let Some(g) = ASSIGN.try_lock_for(POLL) {
                    break g;
                }
            },
        };
        self.write_all(assigning, true)
    }

    /// For a command allowed while the holder is busy (`ALLOW_BUSY`: SCRIPT KILL, SHUTDOWN
    /// NOSAVE, ...): runs without the gate. Such commands touch only their session or the
    /// script's state, or take the shard locks they need.
    pub(crate) fn bypass(&self) -> Pass<'_> {
        Pass::Bypassed
    }

    /// Marks (or unmarks) the holder of the write side as busy. Only that holder calls it.
    pub(crate) fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::SeqCst);
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }
}

impl Gate {
    /// [`Gate::shared`] or [`Gate::exclusive`] for a background job, which must not wait for
    /// the gate forever: a SHUTDOWN runs alone and waits for the job to stop. Waits for the
    /// gate until `give_up` is set; then returns None.
    pub(crate) fn enter_unless(&self, exclusive: bool, give_up: &AtomicBool) -> Option<Pass<'_>> {
        const TRY: Duration = Duration::from_millis(20);
        loop {
            if HELD.with(Cell::get) != 0 {
                return Some(Pass::Reentered);
            }
            if exclusive {
                if let Some(assigning) = ASSIGN.try_lock_for(TRY) {
                    let used = NEXT.load(Ordering::Relaxed).min(SLOTS);
                    let mut guards = Vec::with_capacity(used);
                    for s in &self.slots[..used] {
                        match s.0.try_write_for(TRY) {
                            Some(g) => guards.push(g),
                            None => break,
                        }
                    }
                    if guards.len() == used {
                        HELD.with(|h| h.set(2));
                        return Some(Pass::Exclusive(assigning, guards));
                    }
                }
            } else {
                // A thread without a slot yet gets one under the assignment lock, which a
                // transaction holds: wait for it in slices too.
                let slot = match SLOT.with(Cell::get) {
                    Some(i) => Some(i),
                    None => ASSIGN.try_lock_for(TRY).map(|_assigning| {
                        let i = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
                        SLOT.with(|s| s.set(Some(i)));
                        i
                    }),
                };
                if let Some(guard) = slot.and_then(|i| self.slots[i].0.try_read_for(TRY)) {
                    HELD.with(|h| h.set(1));
                    return Some(Pass::Shared(guard));
                }
            }
            if give_up.load(Ordering::SeqCst) {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn exclusive_waits_for_shared_and_reentry_is_free() {
        let gate = Arc::new(Gate::default());
        let inside = Arc::new(AtomicBool::new(false));
        let pass = gate.shared();
        assert!(matches!(gate.shared(), Pass::Reentered));
        let (g, i) = (gate.clone(), inside.clone());
        let t = std::thread::spawn(move || {
            let _x = g.exclusive();
            i.store(true, Ordering::SeqCst);
            assert!(matches!(g.exclusive(), Pass::Reentered));
            assert!(matches!(g.shared(), Pass::Reentered));
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!inside.load(Ordering::SeqCst), "exclusive entered while a command ran");
        drop(pass);
        t.join().unwrap();
        assert!(inside.load(Ordering::SeqCst));
        // After the transaction, commands pass again.
        assert!(matches!(gate.shared(), Pass::Shared(_)));
    }

    #[test]
    fn a_background_job_gives_up_waiting_when_asked() {
        let gate = Arc::new(Gate::default());
        let give_up = Arc::new(AtomicBool::new(false));
        let transaction = gate.exclusive();
        let (g, stop) = (gate.clone(), give_up.clone());
        let job = std::thread::spawn(move || {
            let shared = g.enter_unless(false, &stop).is_some();
            let exclusive = g.enter_unless(true, &stop).is_some();
            (shared, exclusive)
        });
        std::thread::sleep(Duration::from_millis(60));
        give_up.store(true, Ordering::SeqCst);
        assert_eq!(job.join().unwrap(), (false, false));
        drop(transaction);
        give_up.store(false, Ordering::SeqCst);
        let (g, stop) = (gate.clone(), give_up.clone());
        let passes =
            std::thread::spawn(move || matches!(g.enter_unless(true, &stop), Some(Pass::Exclusive(..)))).join();
        assert!(passes.unwrap());
    }

    #[test]
    fn waiters_give_up_once_the_holder_is_busy() {
        let gate = Arc::new(Gate::default());
        let pass = gate.exclusive();
        let g = gate.clone();
        let t = std::thread::spawn(move || {
            let shared = g.try_shared().is_none();
            let exclusive = g.try_exclusive().is_none();
            (shared, exclusive)
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished(), "a waiter gave up before the holder was busy");
        gate.set_busy(true);
        assert_eq!(t.join().unwrap(), (true, true));
        gate.set_busy(false);
        drop(pass);
        let g = gate.clone();
        let t = std::thread::spawn(move || g.try_exclusive().is_some() && g.try_shared().is_some());
        assert!(t.join().unwrap());
        assert!(matches!(gate.try_shared(), Some(Pass::Shared(_))));
    }
}
