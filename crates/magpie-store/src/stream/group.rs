//! Consumer groups: the last delivered ID, the read counter, the pending entries list (PEL) and
//! the consumers, as Redis's `streamCG`, `streamConsumer` and `streamNACK`.
//!
//! Redis shares one NACK between the group's PEL and its owner's PEL. Here the group's PEL
//! holds the NACK (with its owner's name) and each consumer the set of IDs it owns; every
//! change goes through [`Group`]'s methods, which keep the two sides in step.

use std::collections::{BTreeMap, BTreeSet, btree_map};
use std::sync::Arc;

use crate::encoding::Corrupt;

use super::StreamId;

/// A delivered entry not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    /// When it was last delivered (ms since the epoch).
    pub delivery_time: i64,
    /// How many times it was delivered.
    pub delivery_count: u64,
    /// The consumer it was last delivered to (its name, shared with the consumer table).
    owner: Arc<[u8]>,
}

impl Nack {
    pub fn owner(&self) -> &[u8] {
        &self.owner
    }
}

/// A consumer of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    /// When it last read or claimed (ms since the epoch).
    pub seen_time: i64,
    /// The IDs of the pending entries it owns.
    pending: BTreeSet<StreamId>,
}

impl Consumer {
    pub fn pending(&self) -> &BTreeSet<StreamId> {
        &self.pending
    }
}

/// A consumer group.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    last_id: StreamId,
    /// Redis's `entries_read`: -1 when unknown.
    entries_read: i64,
    pel: BTreeMap<StreamId, Nack>,
    /// By name (bytewise order, as Redis's radix tree).
    consumers: BTreeMap<Arc<[u8]>, Consumer>,
}

impl Group {
    pub(crate) fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group { last_id, entries_read, pel: BTreeMap::new(), consumers: BTreeMap::new() }
    }

    /// The last ID delivered to the group.
    pub fn last_id(&self) -> StreamId {
        self.last_id
    }

    /// Entries read by the group, -1 when unknown.
    pub fn entries_read(&self) -> i64 {
        self.entries_read
    }

    /// XGROUP SETID (and delivery): the last ID and the read counter.
    pub fn set_position(&mut self, last_id: StreamId, entries_read: i64) {
        self.last_id = last_id;
        self.entries_read = entries_read;
    }

    /// XCLAIM's LASTID: only ever moves the last ID forwards. Returns whether it moved.
    pub fn advance_last_id(&mut self, id: StreamId) -> bool {
        if id > self.last_id {
            self.last_id = id;
            true
        } else {
            false
        }
    }

    /// The PEL, by ID.
    pub fn pending(&self) -> &BTreeMap<StreamId, Nack> {
        &self.pel
    }

    pub fn nack(&self, id: StreamId) -> Option<&Nack> {
        self.pel.get(&id)
    }

    /// A NACK's delivery time and count, to change.
    pub fn nack_mut(&mut self, id: StreamId) -> Option<&mut Nack> {
        self.pel.get_mut(&id)
    }

    pub fn consumers(&self) -> impl ExactSizeIterator<Item = (&[u8], &Consumer)> {
        self.consumers.iter().map(|(k, v)| (&**k, v))
    }

    pub fn consumer(&self, name: &[u8]) -> Option<&Consumer> {
        self.consumers.get(name)
    }

    /// Looks a consumer up and marks it seen now (`streamLookupConsumer`); false if there is
    /// none.
    pub fn touch_consumer(&mut self, name: &[u8], now: i64) -> bool {
        match self.consumers.get_mut(name) {
            Some(c) => {
                c.seen_time = now;
                true
            }
            None => false,
        }
    }

    /// Creates a consumer seen now; false if it exists (`streamCreateConsumer`).
    pub fn create_consumer(&mut self, name: &[u8], now: i64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(name.into(), Consumer { seen_time: now, pending: BTreeSet::new() });
        true
    }

    /// Deletes a consumer and its pending entries (`streamDelConsumer`): the number it had,
    /// or `None` if there is no such consumer.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let c = self.consumers.remove(name)?;
        for id in &c.pending {
            self.pel.remove(id);
        }
        Some(c.pending.len())
    }

    /// XACK of one ID: removes it from the PEL and its owner's. Returns whether it was there.
    pub fn ack(&mut self, id: StreamId) -> bool {
        self.remove_nack(id).is_some()
    }

    /// Removes a pending entry (acknowledged, or no longer in the stream).
    pub fn remove_nack(&mut self, id: StreamId) -> Option<Nack> {
        let nack = self.pel.remove(&id)?;
        if let Some(c) = self.consumers.get_mut(&nack.owner) {
            c.pending.remove(&id);
        }
        Some(nack)
    }

    /// The shared name of consumer `name`, created (seen at `now`) if it does not exist.
    fn consumer_name(&mut self, name: &[u8], now: i64) -> Arc<[u8]> {
        if let Some((k, _)) = self.consumers.get_key_value(name) {
            return k.clone();
        }
        let k: Arc<[u8]> = name.into();
        self.consumers.insert(k.clone(), Consumer { seen_time: now, pending: BTreeSet::new() });
        k
    }

    /// Makes `consumer` the owner of pending entry `id`, creating the entry (delivered at
    /// `time`, `count` times) if it is not pending. The owner's and the previous owner's sets
    /// follow. Returns the NACK.
    pub fn give(&mut self, id: StreamId, consumer: &[u8], time: i64, count: u64) -> &mut Nack {
        let owner = self.consumer_name(consumer, time);
        if let Some(c) = self.consumers.get_mut(&owner) {
            c.pending.insert(id);
        }
        match self.pel.entry(id) {
            btree_map::Entry::Vacant(v) => v.insert(Nack { delivery_time: time, delivery_count: count, owner }),
            btree_map::Entry::Occupied(o) => {
                let nack = o.into_mut();
                if nack.owner != owner {
                    let previous = std::mem::replace(&mut nack.owner, owner);
                    if let Some(c) = self.consumers.get_mut(&previous) {
                        c.pending.remove(&id);
                    }
                }
                nack
            }
        }
    }

    /// A delivery by XREADGROUP: `id` is pending for `consumer`, delivered once, now (a NACK
    /// of another consumer moves over and starts counting again, as in Redis).
    pub(crate) fn assign(&mut self, id: StreamId, consumer: &[u8], now: i64) {
        let nack = self.give(id, consumer, now, 1);
        nack.delivery_time = now;
        nack.delivery_count = 1;
    }

    /// Calls `f` with each ID `consumer` owns from `start` on, and its NACK, until `f` says
    /// stop.
    pub(crate) fn for_each_owned_from(
        &mut self,
        consumer: &[u8],
        start: StreamId,
        mut f: impl FnMut(StreamId, &mut Nack) -> bool,
    ) {
        let Some(c) = self.consumers.get(consumer) else { return };
        for id in c.pending.range(start..) {
            let Some(nack) = self.pel.get_mut(id) else { continue };
            if !f(*id, nack) {
                break;
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Loading

    /// Adds a consumer while loading; refused if it exists.
    pub fn load_consumer(&mut self, name: &[u8], seen_time: i64) -> Result<(), Corrupt> {
        if !self.create_consumer(name, seen_time) {
            return Err(Corrupt("Duplicate stream consumer detected."));
        }
        Ok(())
    }

    /// Adds a pending entry owned by an existing consumer while loading; refused if the ID is
    /// pending already or the consumer does not exist.
    pub fn load_nack(&mut self, id: StreamId, consumer: &[u8], time: i64, count: u64) -> Result<(), Corrupt> {
        if self.pel.contains_key(&id) {
            return Err(Corrupt("Duplicated global PEL entry loading stream consumer group"));
        }
        if !self.consumers.contains_key(consumer) {
            return Err(Corrupt("Consumer entry not found in group global PEL"));
        }
        self.give(id, consumer, time, count);
        Ok(())
    }
}
