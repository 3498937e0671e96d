//! The gate: lets a transaction (EXEC, COMMIT) run with no other command running, as Redis's
//! single thread does, while ordinary commands on different threads never wait for each other.
//!
//! It is a reader-writer lock split per thread (a "big reader" lock): each thread that runs
//! commands takes the read side of its own slot, on a cache line no other core writes, so an
//! ordinary command pays one uncontended atomic operation. A transaction takes the write side
//! of every slot, which waits for the commands in flight to finish and holds new ones back
//! until it is done. Taking the gate again on a thread that holds it costs nothing (a command
//! run from inside EXEC, a blocked client served from inside a push).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Slots; threads beyond this share them (readers can).
const SLOTS: usize = 64;

#[repr(align(128))]
struct Padded(RwLock<()>);

pub(crate) struct Gate {
    slots: Box<[Padded]>,
    next: AtomicUsize,
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
    Exclusive(#[allow(dead_code)] Vec<RwLockWriteGuard<'a, ()>>),
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if !matches!(self, Pass::Reentered) {
            HELD.with(|h| h.set(0));
        }
    }
}

impl Default for Gate {
    fn default() -> Gate {
        Gate { slots: (0..SLOTS).map(|_| Padded(RwLock::new(()))).collect(), next: AtomicUsize::new(0) }
    }
}

impl Gate {
    fn slot(&self) -> usize {
        SLOT.with(|s| {
            *s.get().get_or_insert_with(|| {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % SLOTS;
                s.set(Some(i));
                i
            })
        })
    }

    /// For an ordinary command: waits only while a transaction runs.
    pub(crate) fn shared(&self) -> Pass<'_> {
        if HELD.with(Cell::get) != 0 {
            return Pass::Reentered;
        }
        let guard = self.slots[self.slot()].0.read();
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
        let guards = self.slots.iter().map(|s| s.0.write()).collect();
        HELD.with(|h| h.set(2));
        Pass::Exclusive(guards)
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
                let mut guards = Vec::with_capacity(self.slots.len());
                for s in self.slots.iter() {
                    match s.0.try_write_for(TRY) {
                        Some(g) => guards.push(g),
                        None => break,
                    }
                }
                if guards.len() == self.slots.len() {
                    HELD.with(|h| h.set(2));
                    return Some(Pass::Exclusive(guards));
                }
            } else if let Some(guard) = self.slots[self.slot()].0.try_read_for(TRY) {
                HELD.with(|h| h.set(1));
                return Some(Pass::Shared(guard));
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
        let passes = std::thread::spawn(move || matches!(g.enter_unless(true, &stop), Some(Pass::Exclusive(_)))).join();
        assert!(passes.unwrap());
    }
}
