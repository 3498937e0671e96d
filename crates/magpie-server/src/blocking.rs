//! Clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN, ...), and the signal that wakes them.
//!
//! A command that adds elements to a list or sorted set calls [`Blocking::signal`] for its
//! key (through `Ctx::signal`). That costs one atomic load while nobody is blocked.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// One blocked client, queued on each key it waits for.
pub struct Waiter {
    pub notify: Notify,
}

/// Blocked clients by (database, key), oldest first.
type Queues = HashMap<(usize, Box<[u8]>), VecDeque<Arc<Waiter>>, foldhash::fast::RandomState>;

/// The queues of blocked clients, by (database, key), oldest first.
#[derive(Default)]
pub struct Blocking {
    /// Clients blocked right now; zero makes `signal` free.
    count: AtomicUsize,
    queues: Mutex<Queues>,
}

impl Blocking {
    /// Says that `key` in `db` may now have what a blocked client waits for: wakes the client
    /// that has waited on it longest.
    pub fn signal(&self, db: usize, key: &[u8]) {
        // SeqCst, paired with the one in `register`: a client that registers after this load
        // saw zero looks at the key after this command's change.
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        let queues = self.queues.lock();
        if let Some(first) = queues.get(&(db, Box::from(key))).and_then(|q| q.front()) {
            first.notify.notify_one();
        }
    }
}
