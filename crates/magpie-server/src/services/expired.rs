//! Keys the store removed because their time had passed: their `expired` keyspace events and
//! the DEL records the log needs (replay does not expire keys, as in Redis: it cannot know what
//! time it is in the log). The store queues them for the thread that removed them (see
//! `magpie_store::tap`); this is the one place that drains that queue.

use std::cell::RefCell;

use magpie_store::Keyspace;
use magpie_store::tap::{self, Expired};

use super::journal::Journal;
use super::pubsub::PubSub;
use crate::core::events::EXPIRED;

thread_local! {
    /// Expired keys whose event this thread has published and the log has not taken yet.
    static ANNOUNCED: RefCell<Vec<Expired>> = const { RefCell::new(Vec::new()) };
}

/// Publishes the `expired` event of each key this thread removed because it expired and that
/// was not announced yet, and keeps them for the log. `Ctx::notify` calls it before a
/// command's own event, so that, as in Redis, a key's expiry is announced before what the
/// command then does to the key.
pub(crate) fn announce(pubsub: &PubSub) {
    if !tap::has_expired() || !pubsub.wants(EXPIRED) {
        return;
    }
    let expired = tap::take_expired();
    for e in &expired {
        pubsub.keyspace_event(EXPIRED, "expired", &e.key, e.db);
    }
    ANNOUNCED.with(|a| a.borrow_mut().extend(expired));
}

/// Whether this thread has expired keys the log has not taken.
fn pending() -> bool {
    tap::has_expired() || ANNOUNCED.with(|a| !a.borrow().is_empty())
}

/// Takes every key this thread found expired, oldest first, after announcing those not
/// announced yet.
fn take(pubsub: &PubSub) -> Vec<Expired> {
    announce(pubsub);
    let mut all = ANNOUNCED.with(|a| std::mem::take(&mut *a.borrow_mut()));
    all.extend(tap::take_expired());
    all
}

/// Queues a DEL for each key this thread found expired, and publishes their keyspace events.
/// Called after every write command and every step of active expiry.
pub(crate) fn log(ks: &Keyspace, pubsub: &PubSub, journal: &Journal) {
    if !ks.tap().expired_tap() || !pending() {
        return;
    }
    for e in take(pubsub) {
        if e.seq != 0 {
            let del: [&[u8]; 2] = [b"DEL", &e.key];
            journal.push(e.seq, e.db, std::iter::once(del.into_iter()));
        }
    }
}
