//! Where a key is in a shard, and what may be done there ([`Shard::slot`]).

use super::*;

/// Where a key is in a shard: see [`Shard::slot`].
pub enum Slot<'a> {
    Live(LiveSlot<'a>),
    Empty(EmptySlot<'a>),
}

/// A live entry, found by [`Shard::slot`].
pub struct LiveSlot<'a> {
    pub(super) shard: &'a mut Shard,
    pub(super) idx: usize,
    /// The value's size when [`LiveSlot::value_mut`] first lent it out: the shard's byte count
    /// is brought up to date when the slot is done with (dropped or removed).
    pub(super) before: Option<usize>,
}

impl LiveSlot<'_> {
    pub fn entry(&self) -> EntryRef<'_> {
        self.shard.view(&self.shard.map[self.idx])
    }

    /// The value, to change in place. Call it only to change the value: it counts as a change
    /// (numbered for the log, seen by WATCH and snapshots) even if nothing is changed.
    pub fn value_mut(&mut self) -> &mut Value {
        if self.before.is_none() {
            self.shard.changing(self.idx);
        }
        let value = self.shard.map[self.idx].value_mut();
        self.before.get_or_insert(value.size());
        value
    }

    /// Accounts for what was done through [`LiveSlot::value_mut`].
    #[inline]
    pub(super) fn settle(&mut self) {
        if let Some(before) = self.before.take() {
            let now = self.shard.map[self.idx].value().size();
            self.shard.value_bytes = self.shard.value_bytes - before as u64 + now as u64;
        }
    }

    /// Replaces value and expiry, returning the old entry.
    pub fn replace(&mut self, value: Value, expire_at: Option<u64>) -> Entry {
        let size = value.size();
        self.replace_with(size, expire_at, |p| p.replace(value))
    }

    /// Replaces the value with the string `bytes` (as [`Value::string`] stores them) and the
    /// expiry, returning the old entry: [`LiveSlot::replace`] with no buffer made for the bytes
    /// on the way to the key's block.
    pub fn replace_string(&mut self, bytes: &[u8], expire_at: Option<u64>) -> Entry {
        self.replace_with(bytes.len(), expire_at, |p| p.replace_string(bytes))
    }

    /// Replaces the value through `put` (which returns the old one), its new size `size`, and
    /// the expiry.
    fn replace_with(&mut self, size: usize, expire_at: Option<u64>, put: impl FnOnce(&mut Pair) -> Value) -> Entry {
        self.settle();
        self.shard.changing(self.idx);
        let old_value = put(&mut self.shard.map[self.idx].pair);
        self.shard.value_bytes = self.shard.value_bytes - old_value.size() as u64 + size as u64;
        let old_expire = self.entry().expire_at();
        self.shard.set_expire_index(self.idx, expire_at);
        Entry::new(old_value).with_expire(old_expire)
    }

    pub fn set_expire(&mut self, expire_at: Option<u64>) {
        self.shard.changing(self.idx);
        self.shard.set_expire_index(self.idx, expire_at);
    }

    /// Overwrites the value with the string `bytes` and sets the expiry, reusing the old
    /// value's buffer where it fits (the common SET overwrite allocates nothing).
    pub fn assign_string(&mut self, bytes: &[u8], expire_at: Option<u64>) {
        self.settle();
        self.shard.changing(self.idx);
        let stored = &mut self.shard.map[self.idx];
        let old = stored.value().size() as u64;
        stored.pair.assign_string(bytes);
        self.shard.value_bytes = self.shard.value_bytes - old + bytes.len() as u64;
        self.shard.set_expire_index(self.idx, expire_at);
    }

    /// Removes the entry as [`LiveSlot::remove`] does, but hands it back as stored: a short
    /// string is not copied out of its block (DEL, which only drops it).
    pub fn delete(mut self) -> Removed {
        self.settle();
        let (e, _, _) = self.shard.take_index(self.idx).expect("a live slot's index is valid");
        Removed { stored: e }
    }

    pub fn remove(mut self) -> Entry {
        self.settle();
        let (_, e, _) = self.shard.remove_index(self.idx).expect("a live slot's index is valid");
        e
    }
}

impl Drop for LiveSlot<'_> {
    fn drop(&mut self) {
        self.settle();
    }
}

/// No live entry for a key, found by [`Shard::slot`]. If an expired entry is there, it is
/// overwritten by [`EmptySlot::insert`], or removed when the slot is dropped unused.
pub struct EmptySlot<'a> {
    /// `None` once used.
    pub(super) shard: Option<&'a mut Shard>,
    pub(super) key: &'a [u8],
    /// The key's hash in the shard's table.
    pub(super) hash: u64,
    /// Index of an expired entry of this key.
    pub(super) expired: Option<usize>,
    pub(super) now: u64,
}

impl<'a> EmptySlot<'a> {
    /// Creates the key.
    pub fn insert(self, value: Value, expire_at: Option<u64>) {
        let size = value.size();
        self.put(size, expire_at, |key| Pair::new(key, value));
    }

    /// Creates the key with the string `bytes` (as [`Value::string`] stores them): SET's way,
    /// which makes no buffer for the bytes on the way to the key's block.
    pub fn insert_string(self, bytes: &[u8], expire_at: Option<u64>) {
        self.put(bytes.len(), expire_at, |key| Pair::string(key, bytes));
    }

    /// Creates the key with the pair `make` gives, whose value's size is `size`.
    fn put(mut self, size: usize, expire_at: Option<u64>, make: impl FnOnce(&[u8]) -> Pair) {
        let shard = self.shard.take().expect("an EmptySlot is used once");
        shard.value_bytes += size as u64;
        let idx = match self.expired {
            Some(idx) => {
                // The expired key is gone (and counted and reported as expired); a new one
                // takes its place.
                let seq = shard.changing(idx);
                shard.tap.expired(seq, shard.db, self.key);
                shard.creating(self.key);
                let old = std::mem::replace(&mut shard.map[idx].pair, make(self.key));
                shard.value_bytes -= old.value().size() as u64;
                shard.expired += 1;
                if shard.map[idx].used.fifo().0 {
                    shard.small += 1;
                }
                shard.map[idx].used.init(self.now);
                idx
            }
            None => {
                shard.creating(self.key);
                let idx = shard.map.push_hashed(self.hash, Stored::with(make(self.key)));
                shard.map[idx].used.init(self.now);
                shard.small += 1;
                idx
            }
        };
        shard.created(idx, self.key, expire_at);
    }
}

impl Drop for EmptySlot<'_> {
    fn drop(&mut self) {
        if let (Some(shard), Some(idx)) = (self.shard.take(), self.expired) {
            shard.expire_index(idx);
        }
    }
}
