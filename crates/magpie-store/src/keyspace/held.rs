//! Shards held by a transaction for its whole length, and lent to the commands it runs.
//!
//! A transaction that names its keys in advance (EXEC of commands whose key specs name every
//! key they touch) write-locks those keys' shards, in the keyspace's lock order, before its
//! first command and lets them go after its last ([`Keyspace::hold`]): every other thread's
//! access to those shards waits, so nobody sees the transaction half done, while the other
//! shards stay open. The commands it runs lock their shards again, on the same thread, through
//! [`Db::read`], [`Db::write`], [`Keyspace::lock_read`] and [`Keyspace::lock_write`]; the
//! locks are not re-entrant, so these find the shard lent instead:
//!
//! - [`Keyspace::hold`] locks each shard and moves its contents out, into this thread's list
//!   of lent shards (the lock keeps an empty spare, which nobody can see: it stays locked);
//! - an acquisition that finds its lock taken (the fast path, an uncontended lock, is the same
//!   single atomic operation as before) looks in that list: a shard lent to this thread is
//!   moved into the guard ([`ShardRead`], [`ShardWrite`]) and back when the guard drops;
//!   anything else waits for the lock as before;
//! - dropping the [`Held`] moves every shard back into its lock and unlocks it.
//!
//! Moving the shard (a few hundred bytes, its tables stay where they are) rather than lending
//! a reference keeps this free of `unsafe`. A command that borrowed the same lent shard twice
//! at once would have deadlocked on the lock before; here it panics with a clear message.

use std::cell::RefCell;

use super::*;

thread_local! {
    /// The shards this thread holds through a [`Held`]: each lock's address and its contents
    /// (`None` while a guard has them). Empty unless a transaction runs on this thread.
    static LENT: RefCell<Vec<(usize, Option<Box<Shard>>)>> = const { RefCell::new(Vec::new()) };
    /// Empty shards to leave in the locks while their contents are lent, kept for reuse. Boxed:
    /// what moves between the lock, the list and a guard is then a pointer.
    #[allow(clippy::vec_box)]
    static SPARE: RefCell<Vec<Box<Shard>>> = const { RefCell::new(Vec::new()) };
}

fn addr(lock: &RwLock<Shard>) -> usize {
    std::ptr::from_ref(lock) as usize
}

/// A shard's contents lent to a guard on this thread; they go back to the list on drop.
pub(super) struct Lent {
    lock: usize,
    shard: Option<Box<Shard>>,
}

impl Lent {
    fn get(&self) -> &Shard {
        self.shard.as_deref().expect("a lent shard is present until dropped")
    }

    fn get_mut(&mut self) -> &mut Shard {
        self.shard.as_deref_mut().expect("a lent shard is present until dropped")
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let shard = self.shard.take();
        LENT.with(|l| {
            if let Some(slot) = l.borrow_mut().iter_mut().find(|(a, _)| *a == self.lock) {
                slot.1 = shard;
            }
        });
    }
}

/// Takes the contents of `lock` if this thread holds it through a [`Held`]; `None` if it does
/// not. Panics if a guard of this thread has them already (the same shard borrowed twice at
/// once: before, the second lock would have waited for the first forever).
fn take_lent(lock: &RwLock<Shard>) -> Option<Lent> {
    let a = addr(lock);
    LENT.with(|l| {
        let mut l = l.borrow_mut();
        let slot = l.iter_mut().find(|(x, _)| *x == a)?;
        let shard = slot.1.take();
        assert!(shard.is_some(), "a shard held by a transaction was borrowed twice at once on one thread");
        Some(Lent { lock: a, shard })
    })
}

/// In debug builds: whether this thread may lock `lock` normally. While it holds shards for a
/// transaction, any other shard is one the transaction did not declare: locking it would break
/// the lock order (a deadlock) and the transaction's atomicity.
fn may_lock(lock: &RwLock<Shard>) -> bool {
    let a = addr(lock);
    LENT.with(|l| {
        let l = l.borrow();
        l.is_empty() || l.iter().any(|(x, _)| *x == a)
    })
}

/// A read lock on a shard, or a shard lent to this thread (see the module's doc).
pub struct ShardRead<'a>(ReadInner<'a>);

enum ReadInner<'a> {
    Locked(RwLockReadGuard<'a, Shard>),
    Lent(Lent),
}

impl std::ops::Deref for ShardRead<'_> {
    type Target = Shard;

    #[inline]
    fn deref(&self) -> &Shard {
        match &self.0 {
            ReadInner::Locked(g) => g,
            ReadInner::Lent(l) => l.get(),
        }
    }
}

/// A write lock on a shard, or a shard lent to this thread (see the module's doc).
pub struct ShardWrite<'a>(WriteInner<'a>);

enum WriteInner<'a> {
    Locked(RwLockWriteGuard<'a, Shard>),
    Lent(Lent),
}

impl std::ops::Deref for ShardWrite<'_> {
    type Target = Shard;

    #[inline]
    fn deref(&self) -> &Shard {
        match &self.0 {
            WriteInner::Locked(g) => g,
            WriteInner::Lent(l) => l.get(),
        }
    }
}

impl std::ops::DerefMut for ShardWrite<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut Shard {
        match &mut self.0 {
            WriteInner::Locked(g) => g,
            WriteInner::Lent(l) => l.get_mut(),
        }
    }
}

/// Read-locks `lock`, or borrows it from this thread's transaction.
#[inline]
pub(super) fn read(lock: &RwLock<Shard>) -> ShardRead<'_> {
    debug_assert!(may_lock(lock), "a transaction read a shard it did not declare");
    match lock.try_read() {
        Some(g) => ShardRead(ReadInner::Locked(g)),
        None => read_slow(lock),
    }
}

#[cold]
fn read_slow(lock: &RwLock<Shard>) -> ShardRead<'_> {
    match take_lent(lock) {
        Some(l) => ShardRead(ReadInner::Lent(l)),
        None => ShardRead(ReadInner::Locked(lock.read())),
    }
}

/// Write-locks `lock`, or borrows it from this thread's transaction.
#[inline]
pub(super) fn write(lock: &RwLock<Shard>) -> ShardWrite<'_> {
    debug_assert!(may_lock(lock), "a transaction wrote to a shard it did not declare");
    match lock.try_write() {
        Some(g) => ShardWrite(WriteInner::Locked(g)),
        None => write_slow(lock),
    }
}

#[cold]
fn write_slow(lock: &RwLock<Shard>) -> ShardWrite<'_> {
    match take_lent(lock) {
        Some(l) => ShardWrite(WriteInner::Lent(l)),
        None => ShardWrite(WriteInner::Locked(lock.write())),
    }
}

/// Shards held by a transaction on this thread: see [`Keyspace::hold`].
pub struct Held<'a> {
    guards: Vec<RwLockWriteGuard<'a, Shard>>,
}

impl Keyspace {
    /// Write-locks the shards of `keys` ((database, key) pairs) in the keyspace's lock order
    /// and lends them to this thread until the [`Held`] is dropped: the commands this thread
    /// runs meanwhile find those shards through the usual calls ([`Db::read`],
    /// [`Db::write`], [`Keyspace::lock_write`], ...) without locking them again, and every
    /// other thread waits for them. Those commands must touch no other shard (debug builds
    /// check it). One at a time per thread.
    pub fn hold<'a, 'k>(&'a self, keys: impl IntoIterator<Item = (usize, &'k [u8])>) -> Held<'a> {
        assert!(LENT.with(|l| l.borrow().is_empty()), "a thread holds one transaction's shards at a time");
        let ids = self.shard_ids(keys);
        let mut guards = Vec::with_capacity(ids.len());
        for &(db, s) in &ids {
            let lock = &self.dbs[db].shards[s].0;
            let mut g = lock.write();
            let mut contents = SPARE.with(|p| p.borrow_mut().pop()).unwrap_or_default();
            std::mem::swap(&mut *g, &mut *contents);
            LENT.with(|l| l.borrow_mut().push((addr(lock), Some(contents))));
            guards.push(g);
        }
        Held { guards }
    }
}

impl Held<'_> {
    /// How many shards are held.
    pub fn shards(&self) -> usize {
        self.guards.len()
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let lent = LENT.with(|l| std::mem::take(&mut *l.borrow_mut()));
        for (g, (a, contents)) in self.guards.iter_mut().zip(lent) {
            debug_assert_eq!(addr(RwLockWriteGuard::rwlock(g)), a);
            // Every guard on this thread has given its shard back by now: the commands that
            // borrowed it are over.
            let mut contents = contents.expect("a held shard is back in place when the transaction ends");
            std::mem::swap(&mut **g, &mut *contents);
            SPARE.with(|p| p.borrow_mut().push(contents));
        }
        self.guards.clear();
    }
}
