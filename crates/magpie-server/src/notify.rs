//! Keyspace events: the classes of Redis's `notify-keyspace-events` (Redis's own bit values),
//! and the event a command raises for a key it changed (`Ctx::notify`). Pub/sub delivers them on
//! `__keyspace@<db>__:<key>` and `__keyevent@<db>__:<event>` when the class is enabled.

use std::cell::RefCell;

use magpie_store::tap::{self, Expired};

use crate::pubsub::PubSub;

/// `K`: publish on `__keyspace@<db>__:<key>`.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: publish on `__keyevent@<db>__:<event>`.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: DEL, EXPIRE, RENAME, ... (commands that apply to any type).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
/// `l`: list commands.
pub const LIST: u32 = 1 << 4;
/// `s`: set commands.
pub const SET: u32 = 1 << 5;
/// `h`: hash commands.
pub const HASH: u32 = 1 << 6;
/// `z`: sorted-set commands.
pub const ZSET: u32 = 1 << 7;
/// `x`: a key removed because it expired.
pub const EXPIRED: u32 = 1 << 8;
/// `e`: a key evicted for maxmemory.
pub const EVICTED: u32 = 1 << 9;
/// `t`: stream commands (Magpie has no streams; accepted for compatibility).
pub const STREAM: u32 = 1 << 10;
/// `m`: a key looked up and not found.
pub const KEY_MISS: u32 = 1 << 11;
/// `d`: module events (accepted for compatibility).
pub const MODULE: u32 = 1 << 13;
/// `n`: a new key (not part of `A`).
pub const NEW: u32 = 1 << 14;
/// `A`: `g$lshzxetd`.
pub const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

thread_local! {
    /// Expired keys whose event this thread has published and the log has not taken yet.
    static ANNOUNCED: RefCell<Vec<Expired>> = const { RefCell::new(Vec::new()) };
}

/// Publishes the `expired` event of each key this thread removed because it expired (the
/// store queues them, see `magpie_store::tap`) and that was not announced yet, and keeps them
/// for the log. `Ctx::notify` calls it before a command's own event, so that, as in Redis, a
/// key's expiry is announced before what the command then does to the key.
pub fn announce_expired(pubsub: &PubSub) {
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
pub fn has_expired() -> bool {
    tap::has_expired() || ANNOUNCED.with(|a| !a.borrow().is_empty())
}

/// Takes every key this thread found expired, oldest first, after announcing those not
/// announced yet: the one drain of the store's queue, shared by keyspace events and the log.
pub fn take_expired(pubsub: &PubSub) -> Vec<Expired> {
    announce_expired(pubsub);
    let mut all = ANNOUNCED.with(|a| std::mem::take(&mut *a.borrow_mut()));
    all.extend(tap::take_expired());
    all
}
