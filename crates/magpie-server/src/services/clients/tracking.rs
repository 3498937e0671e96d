//! Server-assisted client-side caching (Redis's tracking.c): CLIENT TRACKING's tables and
//! the invalidation messages.
//!
//! - **Default mode**: after a read-only command, the keys it named are remembered with the
//!   client's id ([`Tracking::remember`]) and marked in their shard (`Shard::track`), which
//!   queues the key's next change, removal or expiry on the changing thread. After each
//!   command the execution layer hands the queue here ([`Tracking::deliver`]): each client that
//!   read a changed key gets one invalidation and forgets it (the key leaves the table).
//! - **BCAST**: clients register prefixes; while any does, the keyspace queues every change,
//!   and each client gets the changed keys under its prefixes, one message per prefix.
//! - **Flushes**: every tracking client gets a null invalidation, and the table empties.
//!
//! A message goes to the client itself as a RESP3 push (`>2 invalidate [keys]`), or to the
//! client it redirects to: a RESP3 push again, or for a RESP2 subscriber a message on
//! `__redis__:invalidate`. A RESP2 client without a redirection gets nothing (as Redis). The
//! messages go through the receiver's mailbox (`super::pubsub::Mailbox`), under the pubsub
//! output buffer limits. Keys are tracked by name in every database, as in Redis.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use magpie_store::Keyspace;
use magpie_store::tap::{Tracked, take_tracked};

use super::{ClientInfo, Registry};
use crate::services::pubsub::Limits;

/// The tracking tables of one server.
#[derive(Default)]
pub(crate) struct Tracking {
    inner: Mutex<Tables>,
    /// Clients with tracking on (INFO's `tracking_clients`).
    clients: AtomicUsize,
}

#[derive(Default)]
struct Tables {
    /// Key → ids of the clients that may cache it (default mode).
    keys: HashMap<Box<[u8]>, Vec<u64>>,
    /// Ids in `keys`, all keys together (INFO's `tracking_total_items`).
    items: usize,
    /// BCAST prefix → ids of the clients registered for it.
    prefixes: BTreeMap<Box<[u8]>, Vec<u64>>,
}

/// BCAST invalidations to send: (client, prefix) → keys.
type ByPrefix = BTreeMap<(u64, Box<[u8]>), Vec<Box<[u8]>>>;

/// An invalidation's payload: keys, or null (a flush).
enum Payload<'a> {
    Keys(&'a [&'a [u8]]),
    Null,
}

impl Tracking {
    /// Clients with tracking on.
    pub(crate) fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// (keys, items, prefixes) in the tables: INFO's `tracking_total_*`.
    pub(crate) fn totals(&self) -> (usize, usize, usize) {
        let t = self.inner.lock();
        (t.keys.len(), t.items, t.prefixes.len())
    }

    /// CLIENT TRACKING ON for `info` with the mode in its `control.tracking` (already
    /// checked): counts it and registers its prefixes.
    pub(crate) fn enable(&self, ks: &Keyspace, info: &ClientInfo, was_on: bool, new_prefixes: &[Box<[u8]>]) {
        if !was_on {
            self.clients.fetch_add(1, Ordering::Relaxed);
        }
        let mut t = self.inner.lock();
        for p in new_prefixes {
            let ids = t.prefixes.entry(p.clone()).or_default();
            if !ids.contains(&info.id) {
                ids.push(info.id);
            }
        }
        self.follow(ks, &t);
        info.control.set_tracking_on(true);
    }

    /// CLIENT TRACKING OFF, or the client left: its prefixes go (its keys stay in the table
    /// until they change, as in Redis).
    pub(crate) fn disable(&self, ks: &Keyspace, info: &ClientInfo) {
        let mut state = info.control.tracking.lock();
        if !state.on {
            return;
        }
        let prefixes = std::mem::take(&mut state.prefixes);
        *state = Default::default();
        drop(state);
        info.control.set_tracking_on(false);
        self.clients.fetch_sub(1, Ordering::Relaxed);
        let mut t = self.inner.lock();
        for p in prefixes {
            if let Some(ids) = t.prefixes.get_mut(&p) {
                ids.retain(|&id| id != info.id);
                if ids.is_empty() {
                    t.prefixes.remove(&p);
                }
            }
        }
        self.follow(ks, &t);
    }

    /// Tells the keyspace what to queue: flushes while anyone tracks, every change while
    /// anyone tracks by prefix.
    fn follow(&self, ks: &Keyspace, t: &Tables) {
        ks.tap().set_tracking(self.clients() > 0);
        ks.tap().set_track_all(!t.prefixes.is_empty());
    }

    /// Remembers that client `id` read `keys` in database `db` (`reader`), keeping the
    /// table under `max_keys` (`tracking-table-max-keys`, 0 for no bound) by invalidating keys
    /// it holds.
    pub(crate) fn remember(
        &self,
        ks: &Keyspace,
        registry: &Registry,
        limits: &Limits,
        (db, id): (usize, u64),
        keys: &[&[u8]],
        max_keys: usize,
    ) {
        let mut evicted: Vec<(Box<[u8]>, Vec<u64>)> = Vec::new();
        {
            let mut t = self.inner.lock();
            for &key in keys {
                let ids = t.keys.entry(key.into()).or_default();
                if !ids.contains(&id) {
                    ids.push(id);
                    t.items += 1;
                }
            }
            // Over the bound: keys other than these go, each client told to forget them (as
            // Redis's `trackingLimitUsedSlots`).
            while max_keys > 0 && t.keys.len() > max_keys {
                let Some(victim) = t.keys.keys().find(|k| !keys.contains(&&***k)).cloned() else { break };
                if let Some(ids) = t.keys.remove(&victim) {
                    t.items -= ids.len();
                    evicted.push((victim, ids));
                }
            }
        }
        let dbs = ks.db_count();
        for &key in keys {
            if db < dbs {
                ks.db(db).write(key).track(key);
            }
        }
        for (key, ids) in evicted {
            for d in 0..dbs {
                ks.db(d).write(&key).untrack(&key);
            }
            for target in ids {
                if let Some(info) = registry.get(target) {
                    send(registry, limits, &info, Payload::Keys(&[&key]));
                }
            }
        }
    }

    /// Sends the invalidations for the tracked changes this thread queued. `current` is the
    /// client whose command made them (NOLOOP clients are not told of their own changes);
    /// returns true when it got a message itself (its connection puts it after the reply).
    pub(crate) fn deliver(&self, registry: &Registry, limits: &Limits, current: Option<u64>) -> bool {
        let changes = take_tracked();
        if changes.is_empty() {
            return false;
        }
        let mut to_me = false;
        // Per client: the keys to tell it of, in order; BCAST keys per prefix.
        let mut direct: Vec<(u64, Vec<Box<[u8]>>)> = Vec::new();
        let mut bcast: ByPrefix = BTreeMap::new();
        let mut flushed = false;
        {
            let mut t = self.inner.lock();
            for change in changes {
                match change {
                    Tracked::Flush => {
                        flushed = true;
                        t.keys.clear();
                        t.items = 0;
                    }
                    Tracked::Key(key) => {
                        for (prefix, ids) in &t.prefixes {
                            if !key.starts_with(prefix) {
                                continue;
                            }
                            for &id in ids {
                                let keys = bcast.entry((id, prefix.clone())).or_default();
                                if !keys.contains(&key) {
                                    keys.push(key.clone());
                                }
                            }
                        }
                        if let Some(ids) = t.keys.remove(&key) {
                            t.items -= ids.len();
                            for id in ids {
                                match direct.iter_mut().find(|(c, _)| *c == id) {
                                    Some((_, keys)) => keys.push(key.clone()),
                                    None => direct.push((id, vec![key.clone()])),
                                }
                            }
                        }
                    }
                }
            }
        }
        if flushed {
            for info in registry.list() {
                if info.control.tracking_on() {
                    to_me |= Some(info.id) == current;
                    send(registry, limits, &info, Payload::Null);
                }
            }
        }
        for (id, keys) in direct {
            let Some(info) = registry.get(id) else { continue };
            let state = info.control.tracking.lock().clone();
            if !state.on || state.bcast || (state.noloop && Some(id) == current) {
                continue;
            }
            to_me |= Some(id) == current;
            // One message per key, as Redis sends them.
            for key in &keys {
                send(registry, limits, &info, Payload::Keys(&[key]));
            }
        }
        for ((id, _prefix), keys) in bcast {
            let Some(info) = registry.get(id) else { continue };
            let noloop = info.control.tracking.lock().noloop;
            if noloop && Some(id) == current {
                continue;
            }
            to_me |= Some(id) == current;
            let keys: Vec<&[u8]> = keys.iter().map(|k| &**k).collect();
            send(registry, limits, &info, Payload::Keys(&keys));
        }
        to_me
    }
}

/// Sends one invalidation to `info` (or the client it redirects to), as Redis's
/// `sendTrackingMessage`.
fn send(registry: &Registry, limits: &Limits, info: &ClientInfo, payload: Payload<'_>) {
    let redirect = info.control.tracking.lock().redirect;
    // The null of a flush is in the tracking client's own protocol, as in Redis.
    let own_resp3 = info.pubsub.mailbox.is_resp3();
    let receiver;
    let target: &ClientInfo = if redirect != 0 {
        match registry.get(redirect) {
            Some(r) => {
                receiver = r;
                &receiver
            }
            None => {
                info.control.tracking.lock().broken_redirect = true;
                if own_resp3 {
                    let mut msg = b">2\r\n$21\r\ntracking-redir-broken\r\n:".to_vec();
                    msg.extend_from_slice(redirect.to_string().as_bytes());
                    msg.extend_from_slice(b"\r\n");
                    info.pubsub.mailbox.deliver_raw(&msg, limits);
                }
                return;
            }
        }
    } else {
        info
    };
    let mut msg = if target.pubsub.mailbox.is_resp3() {
        b">2\r\n$10\r\ninvalidate\r\n".to_vec()
    } else if redirect != 0 && target.pubsub.active() {
        b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n".to_vec()
    } else {
        return; // RESP2 without a redirection: nothing can carry it
    };
    match payload {
        Payload::Null => msg.extend_from_slice(if own_resp3 { b"_\r\n" } else { b"$-1\r\n" }),
        Payload::Keys(keys) => {
            msg.extend_from_slice(format!("*{}\r\n", keys.len()).as_bytes());
            for k in keys {
                msg.extend_from_slice(format!("${}\r\n", k.len()).as_bytes());
                msg.extend_from_slice(k);
                msg.extend_from_slice(b"\r\n");
            }
        }
    }
    target.pubsub.mailbox.deliver_raw(&msg, limits);
}
