//! Streams, as Redis 7.0 builds them (`t_stream.c`): entries in listpack nodes of at most
//! `stream-node-max-bytes` bytes and `stream-node-max-entries` entries, kept in order of each
//! node's master ID (Redis's radix tree; here a sorted vector, a `BTreeMap` past eight nodes:
//! see [`nodes`]), each node's entries delta-encoded against its master entry exactly as Redis
//! writes them (see [`node`]). So a node holds the bytes Redis's would, `XADD ... MAXLEN ~ n`
//! and `XTRIM ~` remove the whole nodes Redis removes, and a node converts to and from Redis's
//! RDB format by copying it.
//!
//! Consumer groups keep their pending entries (PEL) in an ordered map from ID to
//! [`Nack`] (delivery time, delivery count, owner), and each consumer the set of IDs it owns,
//! as Redis's group and consumer radix trees.
//!
//! Times (entry IDs, delivery and seen times) are milliseconds since the Unix epoch, passed
//! in by the caller.

mod group;
mod node;
mod nodes;
mod rax;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use crate::encoding::listpack::{self, Listpack};
use crate::encoding::{Corrupt, Entry};

pub use group::{Consumer, Group, Nack};
use node::{FLAG_DELETED, FLAG_SAMEFIELDS, Master, Raw};
use nodes::Nodes;

/// A stream entry ID: milliseconds and a sequence number, ordered as Redis's 128-bit
/// big-endian keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The ID after this one; `None` after the last (Redis's `streamIncrID` fails there).
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId { ms: self.ms, seq: self.seq + 1 })
        } else if self.ms < u64::MAX {
            Some(StreamId { ms: self.ms + 1, seq: 0 })
        } else {
            None
        }
    }

    /// The ID before this one; `None` before 0-0 (`streamDecrID`).
    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId { ms: self.ms, seq: self.seq - 1 })
        } else if self.ms > 0 {
            Some(StreamId { ms: self.ms - 1, seq: u64::MAX })
        } else {
            None
        }
    }

    /// The 16-byte big-endian form of Redis's radix tree keys and RDB files.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    pub fn from_bytes(b: [u8; 16]) -> StreamId {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&b[..8]);
        seq.copy_from_slice(&b[8..]);
        StreamId { ms: u64::from_be_bytes(ms), seq: u64::from_be_bytes(seq) }
    }

    /// `ms-seq` into `buf`, without allocating.
    pub fn format(self, buf: &mut IdBuf) -> &[u8] {
        let mut a = itoa::Buffer::new();
        let ms = a.format(self.ms).as_bytes();
        let mut b = itoa::Buffer::new();
        let seq = b.format(self.seq).as_bytes();
        let n = ms.len();
        buf.0[..n].copy_from_slice(ms);
        buf.0[n] = b'-';
        buf.0[n + 1..n + 1 + seq.len()].copy_from_slice(seq);
        &buf.0[..n + 1 + seq.len()]
    }
}

/// Room for a formatted ID (20 digits, a dash, 20 digits).
pub struct IdBuf([u8; 41]);

impl Default for IdBuf {
    fn default() -> IdBuf {
        IdBuf([0; 41])
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Redis's `stream-node-max-bytes` and `stream-node-max-entries`: when a new node starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeLimits {
    /// 0 (or past 1 GB) means 1 GB.
    pub max_bytes: usize,
    /// 0 means no limit.
    pub max_entries: usize,
}

impl Default for NodeLimits {
    fn default() -> NodeLimits {
        NodeLimits { max_bytes: 4096, max_entries: 100 }
    }
}

impl NodeLimits {
    /// What a node may grow to before it needs more than doubling: Redis preallocates 4096
    /// bytes (or `max_bytes` if smaller) for a new node (`STREAM_LISTPACK_MAX_PRE_ALLOCATE`).
    fn prealloc(&self) -> usize {
        if self.max_bytes > 0 && self.max_bytes < 4096 { self.max_bytes } else { 4096 }
    }
}

/// Makes room for `need` more bytes in a node. Up to the preallocation the node doubles (a
/// small stream stays small, where Redis reserves 4 KB at once); past it, the last entries
/// of a node of the default size get exactly what they take, because a node then closes and
/// gives back the rest, and an allocator may keep a shrunk block whole (mimalloc keeps one
/// that shrinks to more than half: a node doubled to 8 KB would stay 8 KB). A node allowed to
/// grow much bigger doubles again, so that growing stays linear.
fn make_room(lp: &mut Listpack, need: usize, prealloc: usize) {
    let (len, cap) = (lp.bytes(), lp.capacity());
    if cap - len >= need {
        return;
    }
    let want = len.saturating_add(need);
    let target = if want <= prealloc {
        cap.saturating_mul(2).clamp(want, prealloc)
    } else if cap < prealloc.saturating_mul(2) {
        want
    } else {
        cap.saturating_mul(2).max(want)
    };
    lp.reserve_exact(target - len);
}

/// Redis never lets a stream node (nor the fields of one entry) pass 1 GB
/// (`STREAM_LISTPACK_MAX_SIZE`).
const NODE_MAX_SIZE: usize = 1 << 30;

/// How XADD chooses the new entry's ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewId {
    /// `*`: the time now, or the last ID plus one.
    Auto,
    /// `ms-*`: this time, with the next sequence number for it.
    Ms(u64),
    /// An explicit ID.
    Exact(StreamId),
}

/// Why XADD could not add an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddError {
    /// The ID is not greater than the last one (Redis's `EDOM`).
    IdTooSmall,
    /// The fields and values together pass 1 GB (`ERANGE`).
    TooLarge,
}

/// What to trim (XTRIM, and XADD's trimming options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrimTo {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Remove the entries before this ID.
    MinId(StreamId),
}

/// A trimming request, as `streamAddTrimArgs` holds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trim {
    pub to: TrimTo,
    /// `~`: only whole nodes are removed.
    pub approx: bool,
    /// At most this many entries removed (0: no limit).
    pub limit: u64,
}

/// The counters and edge IDs of a stream (what RDB stores beside the nodes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamMeta {
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
}

impl StreamMeta {
    /// `streamRangeHasTombstones`: whether an entry between `start` and `end` (or the end)
    /// may have been deleted.
    pub fn range_has_tombstones(&self, start: StreamId, end: Option<StreamId>) -> bool {
        if self.length == 0 || self.max_deleted_id.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id && self.max_deleted_id <= end.unwrap_or(StreamId::MAX)
    }

    /// `streamEstimateDistanceFromFirstEverEntry`: how many entries were added up to `id`,
    /// when that can be known; -1 otherwise.
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        let added = self.entries_added as i64;
        if self.length == 0 && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        } else if id > self.last_id {
            return -1;
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            let before = self.entries_added.wrapping_sub(self.length) as i64;
            if id < self.first_id {
                return before;
            } else if id == self.first_id {
                return before.wrapping_add(1);
            }
        }
        -1
    }

    /// A group's lag (`streamReplyWithCGLag`): entries added that it has not read, `None`
    /// when it cannot be known.
    pub fn lag(&self, group: &Group) -> Option<i64> {
        let added = self.entries_added as i64;
        if self.entries_added == 0 {
            return Some(0);
        }
        if group.entries_read() != -1 && !self.range_has_tombstones(group.last_id(), None) {
            return Some(added.wrapping_sub(group.entries_read()));
        }
        let read = self.estimate_distance(group.last_id());
        (read != -1).then(|| added.wrapping_sub(read))
    }
}

/// A stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    /// Listpack nodes by master ID.
    nodes: Nodes,
    meta: StreamMeta,
    /// Consumer groups by name (Redis's radix tree order: bytewise).
    groups: BTreeMap<Box<[u8]>, Group>,
    /// Bytes of the fields and values of the live entries (an integer counts its decimal
    /// digits): the value's size, as the keyspace's metrics count a collection's elements.
    bytes: usize,
}

/// One entry, found in a node: its ID and its fields and values.
#[derive(Clone, Copy)]
pub struct StreamEntry<'a> {
    pub id: StreamId,
    lp: &'a Listpack,
    raw: Raw,
    master_fields_at: usize,
}

impl<'a> StreamEntry<'a> {
    /// Number of field-value pairs.
    pub fn len(&self) -> usize {
        self.raw.fields
    }

    pub fn is_empty(&self) -> bool {
        self.raw.fields == 0
    }

    /// Whether it is a tombstone (only iterators that include them return these).
    pub fn is_deleted(&self) -> bool {
        self.raw.deleted()
    }

    /// The field-value pairs, in order.
    pub fn fields(&self) -> Fields<'a> {
        let same = self.raw.same_fields();
        Fields {
            lp: self.lp,
            left: self.raw.fields,
            same,
            field_at: if same { self.master_fields_at } else { self.raw.data_at },
            at: self.raw.data_at,
        }
    }
}

impl fmt::Debug for StreamEntry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<(Vec<u8>, Vec<u8>)> = self.fields().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        f.debug_struct("StreamEntry").field("id", &self.id).field("fields", &fields).finish()
    }
}

/// The field-value pairs of an entry.
pub struct Fields<'a> {
    lp: &'a Listpack,
    left: usize,
    same: bool,
    /// Next field: in the master entry for an entry with the master's fields.
    field_at: usize,
    /// Next value (or field, when fields and values alternate).
    at: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = (Entry<'a>, Entry<'a>);

    fn next(&mut self) -> Option<(Entry<'a>, Entry<'a>)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let pair = if self.same {
            let (f, next_field) = self.lp.read(self.field_at)?;
            let (v, next) = self.lp.read(self.at)?;
            self.field_at = next_field;
            self.at = next;
            (f, v)
        } else {
            let (f, at) = self.lp.read(self.at)?;
            let (v, next) = self.lp.read(at)?;
            self.at = next;
            (f, v)
        };
        Some(pair)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// Entries of a stream between two IDs (inclusive), forwards or backwards: Redis's
/// `streamIterator`.
pub struct Range<'a> {
    nodes: nodes::Iter<'a>,
    rev: bool,
    start: StreamId,
    end: StreamId,
    tombstones: bool,
    /// The node being walked: its master ID, listpack and master entry, and where the next
    /// entry to look at is (its flags), if any.
    node: Option<(StreamId, &'a Listpack, Master, Option<usize>)>,
    done: bool,
}

impl<'a> Range<'a> {
    fn new(nodes: &'a Nodes, start: StreamId, end: StreamId, rev: bool) -> Range<'a> {
        // Forwards from the node that may hold `start` (the last whose master ID is not
        // after it); backwards from the one that may hold `end`.
        let seek = if rev { end } else { start };
        let from = nodes.holding(seek).map(|(k, _)| *k);
        let (range, done) = match (rev, from) {
            (false, Some(k)) => (nodes.starting_at(k), false),
            (false, None) => (nodes.iter(), false),
            (true, Some(k)) => (nodes.up_to(k), false),
            // Every node starts after `end`: nothing to return.
            (true, None) => (nodes.iter(), true),
        };
        Range { nodes: range, rev, start, end, tombstones: false, node: None, done }
    }

    /// Also returns tombstones (for `streamGetEdgeID` without skipping them).
    pub fn with_tombstones(mut self) -> Range<'a> {
        self.tombstones = true;
        self
    }
}

impl<'a> Iterator for Range<'a> {
    type Item = StreamEntry<'a>;

    fn next(&mut self) -> Option<StreamEntry<'a>> {
        while !self.done {
            let Some((master_id, lp, m, pos)) = self.node else {
                let next = if self.rev { self.nodes.next_back() } else { self.nodes.next() };
                let Some((id, lp)) = next else {
                    self.done = true;
                    return None;
                };
                let Some(m) = node::master(lp) else { continue };
                let pos = if self.rev {
                    node::prev_entry(lp, lp.end())
                } else {
                    (m.first_entry < lp.end()).then_some(m.first_entry)
                };
                self.node = Some((*id, lp, m, pos));
                continue;
            };
            let Some(at) = pos else {
                self.node = None;
                continue;
            };
            let Some(raw) = node::entry(lp, &m, master_id, at) else {
                self.node = None;
                continue;
            };
            let following = if self.rev { node::prev_entry(lp, at) } else { (raw.next < lp.end()).then_some(raw.next) };
            self.node = Some((master_id, lp, m, following));
            if raw.deleted() && !self.tombstones {
                continue;
            }
            let (inside, past) = if self.rev {
                (raw.id <= self.end, raw.id < self.start)
            } else {
                (raw.id >= self.start, raw.id > self.end)
            };
            if !inside {
                continue;
            }
            if past {
                self.done = true;
                return None;
            }
            return Some(StreamEntry { id: raw.id, lp, raw, master_fields_at: m.fields_at });
        }
        None
    }
}

impl Stream {
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Number of entries (XLEN).
    pub fn len(&self) -> u64 {
        self.meta.length
    }

    pub fn is_empty(&self) -> bool {
        self.meta.length == 0
    }

    pub fn meta(&self) -> StreamMeta {
        self.meta
    }

    /// The last ID ever added (or set by XSETID).
    pub fn last_id(&self) -> StreamId {
        self.meta.last_id
    }

    /// Bytes of the fields and values of its entries: the value's size for the keyspace's
    /// metrics.
    pub fn size(&self) -> usize {
        self.bytes
    }

    /// Number of nodes (XINFO's `radix-tree-keys`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Nodes of Redis's radix tree holding the node keys (XINFO's `radix-tree-nodes`).
    pub fn rax_node_count(&self) -> usize {
        let keys: Vec<[u8; 16]> = self.nodes.iter().map(|(k, _)| k.to_bytes()).collect();
        rax::node_count(&keys)
    }

    /// The nodes, by master ID (for RDB and snapshots).
    pub fn nodes(&self) -> impl Iterator<Item = (StreamId, &Listpack)> {
        self.nodes.iter().map(|(k, v)| (*k, v))
    }

    /// The live entries from `start` to `end` (inclusive), backwards with `rev`.
    pub fn range(&self, start: StreamId, end: StreamId, rev: bool) -> Range<'_> {
        Range::new(&self.nodes, start, end, rev)
    }

    /// The live entry `id`.
    pub fn get(&self, id: StreamId) -> Option<StreamEntry<'_>> {
        self.range(id, id, false).next()
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.get(id).is_some()
    }

    /// The last live entry's ID (`streamLastValidID`).
    pub fn last_valid_id(&self) -> Option<StreamId> {
        self.range(StreamId::MIN, StreamId::MAX, true).next().map(|e| e.id)
    }

    /// The first entry's ID, tombstones included or not (`streamGetEdgeID`); 0-0... as Redis:
    /// `MAX` when there is none.
    pub fn first_edge_id(&self, tombstones: bool) -> StreamId {
        let mut range = self.range(StreamId::MIN, StreamId::MAX, false);
        if tombstones {
            range = range.with_tombstones();
        }
        range.next().map_or(StreamId::MAX, |e| e.id)
    }

    // -----------------------------------------------------------------------------------------
    // Adding

    /// The ID XADD would give a new entry (`now` in ms for an automatic one), or why it cannot
    /// add one. Redis reports a sequence that would overflow (`ms-*` after `ms-18446744073709551615`)
    /// as elements too large, and every other ID not past the last one as too small.
    pub fn new_id(&self, id: NewId, now: u64) -> Result<StreamId, AddError> {
        let last = self.meta.last_id;
        let id = match id {
            NewId::Exact(id) => id,
            NewId::Ms(ms) if ms == last.ms => {
                if last.seq == u64::MAX {
                    return Err(AddError::TooLarge);
                }
                StreamId { ms, seq: last.seq + 1 }
            }
            NewId::Ms(ms) => StreamId { ms, seq: 0 },
            NewId::Auto if now > last.ms => StreamId { ms: now, seq: 0 },
            NewId::Auto => last.next().unwrap_or(StreamId::MIN),
        };
        if id <= last {
            return Err(AddError::IdTooSmall);
        }
        Ok(id)
    }

    /// Adds an entry with the field-value pairs `args` (`pairs` of them: field, value, field,
    /// ...), as `streamAppendItem`. `now` (ms) is the time an automatic ID starts from.
    pub fn add<'f>(
        &mut self,
        id: NewId,
        args: impl Iterator<Item = &'f [u8]> + Clone,
        pairs: usize,
        limits: NodeLimits,
        now: u64,
    ) -> Result<StreamId, AddError> {
        let id = self.new_id(id, now)?;
        let total: usize = args.clone().map(<[u8]>::len).fold(0usize, usize::saturating_add);
        if total > NODE_MAX_SIZE {
            return Err(AddError::TooLarge);
        }
        let max_bytes =
            if limits.max_bytes == 0 || limits.max_bytes > NODE_MAX_SIZE { NODE_MAX_SIZE } else { limits.max_bytes };
        // The tail node, unless it is full (then it gives back what it reserved).
        let mut tail = None;
        if let Some((master_id, lp)) = self.nodes.last_mut() {
            let m = node::master(lp);
            let full = match m {
                None => true,
                Some(_) if lp.bytes() + total >= max_bytes => true,
                Some(m) => limits.max_entries != 0 && m.live.saturating_add(m.deleted) >= limits.max_entries as i64,
            };
            if full {
                lp.shrink_to_fit();
            } else if let Some(m) = m {
                tail = Some((*master_id, m));
            }
        }
        let fields = || args.clone().step_by(2);
        let (master_id, m, same) = match tail {
            Some((master_id, m)) => {
                let lp = self.nodes.get(&master_id).ok_or(AddError::TooLarge)?;
                let same = node::same_fields(lp, &m, fields());
                (master_id, m, same)
            }
            None => {
                let lp = node::new_node(fields(), pairs);
                let m = node::master(&lp).ok_or(AddError::TooLarge)?;
                // Only a stream loaded with nodes beyond its last ID can find one there.
                if self.nodes.contains(&id) {
                    return Err(AddError::IdTooSmall);
                }
                self.nodes.insert(id, lp);
                (id, m, true)
            }
        };
        let Some(lp) = self.nodes.get_mut(&master_id) else { return Err(AddError::TooLarge) };
        let flags = if same { FLAG_SAMEFIELDS } else { 0 };
        let (ms_delta, seq_delta) =
            (id.ms.wrapping_sub(master_id.ms) as i64, id.seq.wrapping_sub(master_id.seq) as i64);
        let count = pairs + 3 + if same { 0 } else { pairs + 1 };
        // The entry's exact size (and a byte should the live counter need one more), so that
        // the node grows by what it takes (see `make_room`).
        let int = |n: i64| listpack::entry_bytes(Entry::Int(n));
        let strs =
            |it: &mut dyn Iterator<Item = &'f [u8]>| it.map(|a| listpack::entry_bytes(Entry::Str(a))).sum::<usize>();
        let mut need = 1 + int(flags) + int(ms_delta) + int(seq_delta) + int(count as i64);
        need +=
            if same { strs(&mut args.clone().skip(1).step_by(2)) } else { int(pairs as i64) + strs(&mut args.clone()) };
        make_room(lp, need, limits.prealloc());
        node::set_counts(lp, m.live.saturating_add(1), m.deleted);
        let _ = lp.push_int(flags);
        let _ = lp.push_int(ms_delta);
        let _ = lp.push_int(seq_delta);
        if same {
            for v in args.skip(1).step_by(2) {
                let _ = lp.push_str(v);
            }
        } else {
            let _ = lp.push_int(pairs as i64);
            for a in args {
                let _ = lp.push_str(a);
            }
        }
        let _ = lp.push_int(count as i64);
        self.bytes += total;
        self.meta.length = self.meta.length.saturating_add(1);
        self.meta.entries_added = self.meta.entries_added.wrapping_add(1);
        self.meta.last_id = id;
        if self.meta.length == 1 {
            self.meta.first_id = id;
        }
        Ok(id)
    }

    // -----------------------------------------------------------------------------------------
    // Deleting

    /// Marks the live entry `id` deleted, removing its node when it was the node's last live
    /// entry (`streamDeleteItem`). Returns whether it was there. Does not update the first ID
    /// or the greatest deleted ID: see [`Stream::delete_ids`].
    fn delete(&mut self, id: StreamId) -> bool {
        let Some((&master_id, lp)) = self.nodes.holding(id) else { return false };
        let Some(m) = node::master(lp) else { return false };
        let mut at = m.first_entry;
        let found = loop {
            if at >= lp.end() {
                break None;
            }
            let Some(raw) = node::entry(lp, &m, master_id, at) else { break None };
            if raw.id == id && !raw.deleted() {
                break Some(raw);
            }
            if raw.id > id {
                break None;
            }
            at = raw.next;
        };
        let Some(raw) = found else { return false };
        self.bytes = self.bytes.saturating_sub(data_len(lp, &m, raw));
        let Some(lp) = self.nodes.get_mut(&master_id) else { return false };
        if m.live <= 1 {
            self.nodes.remove(&master_id);
        } else {
            let _ = lp.replace(raw.at, Entry::Int(raw.flags | FLAG_DELETED));
            node::set_counts(lp, m.live - 1, m.deleted.saturating_add(1));
        }
        self.meta.length = self.meta.length.saturating_sub(1);
        true
    }

    /// XDEL: deletes the entries of `ids` that are live, keeping the first ID and the greatest
    /// deleted ID up to date. Returns how many were deleted.
    pub fn delete_ids(&mut self, ids: &[StreamId]) -> u64 {
        let mut deleted = 0;
        let mut first_deleted = false;
        for &id in ids {
            if self.delete(id) {
                if id == self.meta.first_id {
                    first_deleted = true;
                }
                if id > self.meta.max_deleted_id {
                    self.meta.max_deleted_id = id;
                }
                deleted += 1;
            }
        }
        if deleted > 0 {
            if self.meta.length == 0 {
                self.meta.first_id = StreamId::MIN;
            } else if first_deleted {
                self.meta.first_id = self.first_edge_id(false);
            }
        }
        deleted
    }

    /// Whether [`Stream::trim`] with `trim` would change anything (so a command that would
    /// not need not take the value for writing).
    pub fn trim_would_change(&self, trim: &Trim) -> bool {
        let Some((&master_id, lp)) = self.nodes.first() else { return false };
        if let TrimTo::MaxLen(max) = trim.to
            && self.meta.length <= max
        {
            return false;
        }
        let Some(m) = node::master(lp) else { return false };
        if trim.limit != 0 && m.live.max(0) as u64 > trim.limit {
            return false;
        }
        let remove = match trim.to {
            TrimTo::MaxLen(max) => self.meta.length.saturating_sub(m.live.max(0) as u64) >= max,
            TrimTo::MinId(min) => last_entry_id(lp, master_id, &m).is_some_and(|last| last < min),
        };
        if remove {
            return true;
        }
        if trim.approx {
            return false;
        }
        match trim.to {
            // The node holds entries beyond those to keep: the first live one goes.
            TrimTo::MaxLen(_) => true,
            TrimTo::MinId(min) => self.range(StreamId::MIN, StreamId::MAX, false).next().is_some_and(|e| e.id < min),
        }
    }

    /// Trims from the oldest entries, as `streamTrim`: whole nodes while they can go; then,
    /// unless `approx`, entries of the next node marked deleted one by one. Returns how many
    /// entries were removed.
    pub fn trim(&mut self, trim: &Trim) -> u64 {
        let mut deleted: u64 = 0;
        while let Some((&master_id, lp)) = self.nodes.first() {
            if let TrimTo::MaxLen(max) = trim.to
                && self.meta.length <= max
            {
                break;
            }
            let Some(m) = node::master(lp) else { break };
            let entries = m.live.max(0) as u64;
            if trim.limit != 0 && deleted.saturating_add(entries) > trim.limit {
                break;
            }
            let remove = match trim.to {
                TrimTo::MaxLen(max) => self.meta.length.saturating_sub(entries) >= max,
                TrimTo::MinId(min) => last_entry_id(lp, master_id, &m).is_some_and(|last| last < min),
            };
            if remove {
                let bytes = node_data_len(lp, master_id, &m);
                self.nodes.remove(&master_id);
                self.bytes = self.bytes.saturating_sub(bytes);
                self.meta.length = self.meta.length.saturating_sub(entries);
                deleted += entries;
                continue;
            }
            if trim.approx {
                break;
            }
            deleted += self.trim_inside(master_id, &m, trim.to);
            break;
        }
        if self.meta.length == 0 {
            self.meta.first_id = StreamId::MIN;
        } else if deleted > 0 {
            self.meta.first_id = self.first_edge_id(false);
        }
        deleted
    }

    /// Marks entries of the node `master_id` deleted from its start until the stream is short
    /// enough or the entries reach the minimum ID.
    fn trim_inside(&mut self, master_id: StreamId, m: &Master, to: TrimTo) -> u64 {
        let Some(lp) = self.nodes.get_mut(&master_id) else { return 0 };
        let mut at = m.first_entry;
        let mut marked: u64 = 0;
        while at < lp.end() {
            let Some(raw) = node::entry(lp, m, master_id, at) else { break };
            let stop = match to {
                TrimTo::MaxLen(max) => self.meta.length <= max,
                TrimTo::MinId(min) => raw.id >= min,
            };
            if stop {
                break;
            }
            if !raw.deleted() {
                self.bytes = self.bytes.saturating_sub(data_len(lp, m, raw));
                // Flags 0 or 2 become 1 or 3: one byte each, so offsets do not move.
                let _ = lp.replace(raw.at, Entry::Int(raw.flags | FLAG_DELETED));
                marked += 1;
                self.meta.length = self.meta.length.saturating_sub(1);
            }
            at = raw.next;
        }
        let delta = marked as i64;
        node::set_counts(lp, m.live.saturating_sub(delta), m.deleted.saturating_add(delta));
        marked
    }

    // -----------------------------------------------------------------------------------------
    // XSETID

    /// Sets the last ID, and optionally the entries-added counter and the greatest deleted ID
    /// (the caller checked them against the stream as XSETID does).
    pub fn set_ids(&mut self, last_id: StreamId, entries_added: Option<u64>, max_deleted_id: Option<StreamId>) {
        self.meta.last_id = last_id;
        if let Some(n) = entries_added {
            self.meta.entries_added = n;
        }
        if let Some(id) = max_deleted_id {
            self.meta.max_deleted_id = id;
        }
    }

    // -----------------------------------------------------------------------------------------
    // Consumer groups

    pub fn groups(&self) -> impl ExactSizeIterator<Item = (&[u8], &Group)> {
        self.groups.iter().map(|(k, v)| (&**k, v))
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn group(&self, name: &[u8]) -> Option<&Group> {
        self.groups.get(name)
    }

    pub fn group_mut(&mut self, name: &[u8]) -> Option<&mut Group> {
        self.groups.get_mut(name)
    }

    /// Creates a group reading after `last_id`; false if the name is taken.
    pub fn create_group(&mut self, name: &[u8], last_id: StreamId, entries_read: i64) -> bool {
        if self.groups.contains_key(name) {
            return false;
        }
        self.groups.insert(name.into(), Group::new(last_id, entries_read));
        true
    }

    pub fn destroy_group(&mut self, name: &[u8]) -> bool {
        self.groups.remove(name).is_some()
    }

    /// Delivers to `consumer` of `group` the entries after `after`, at most `count` (0: all),
    /// as XREADGROUP with `>` does through `streamReplyWithRange`: the group's last ID and
    /// read counter move along, and each entry enters the PEL owned by the consumer (unless
    /// `noack`). `emit` gets each entry and the group's last ID just after it. Returns how
    /// many were delivered.
    #[allow(clippy::too_many_arguments)]
    pub fn deliver_new(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        after: StreamId,
        count: usize,
        noack: bool,
        now: i64,
        mut emit: impl FnMut(&StreamEntry<'_>, StreamId),
    ) -> usize {
        let meta = self.meta;
        let Some(g) = self.groups.get_mut(group) else { return 0 };
        // As Redis: past the last possible ID the start wraps to 0-0.
        let start = after.next().unwrap_or(StreamId::MIN);
        let mut n = 0;
        for e in Range::new(&self.nodes, start, StreamId::MAX, false) {
            if e.id > g.last_id() {
                let read = if g.entries_read() != -1 && !meta.range_has_tombstones(e.id, None) {
                    g.entries_read().wrapping_add(1)
                } else if meta.entries_added != 0 {
                    meta.estimate_distance(e.id)
                } else {
                    g.entries_read()
                };
                g.set_position(e.id, read);
            }
            emit(&e, g.last_id());
            if !noack {
                g.assign(e.id, consumer, now);
            }
            n += 1;
            if count != 0 && n == count {
                break;
            }
        }
        n
    }

    /// Serves `consumer` of `group` its own pending entries from `start`, at most `count` (0:
    /// all), as XREADGROUP with an ID does (`streamReplyWithRangeFromConsumerPEL`): each entry
    /// still in the stream counts one more delivery, now; one no longer in the stream is
    /// emitted without its entry. Returns how many were emitted.
    pub fn deliver_history(
        &mut self,
        group: &[u8],
        consumer: &[u8],
        start: StreamId,
        count: usize,
        now: i64,
        mut emit: impl FnMut(StreamId, Option<&StreamEntry<'_>>, Option<&Nack>),
    ) -> usize {
        let Some(g) = self.groups.get_mut(group) else { return 0 };
        let mut n = 0;
        g.for_each_owned_from(consumer, start, |id, nack| {
            if count != 0 && n >= count {
                return false;
            }
            match Range::new(&self.nodes, id, id, false).next() {
                Some(e) => {
                    nack.delivery_time = now;
                    nack.delivery_count = nack.delivery_count.wrapping_add(1);
                    emit(id, Some(&e), Some(nack));
                }
                None => emit(id, None, None),
            }
            n += 1;
            true
        });
        n
    }

    // -----------------------------------------------------------------------------------------
    // Loading

    /// A stream from its nodes and counters, checked: each node must be a sound stream node
    /// (Redis's deep `streamValidateListpackIntegrity`) with a master ID of its own, as Redis's
    /// loading requires. Groups are added with [`Stream::load_group`].
    pub fn from_parts(nodes: Vec<(StreamId, Vec<u8>)>, meta: StreamMeta) -> Result<Stream, Corrupt> {
        let mut s = Stream { meta, ..Stream::default() };
        for (master_id, bytes) in nodes {
            node::validate(&bytes)?;
            let lp = Listpack::from_bytes(bytes).map_err(|_| Corrupt("Stream listpack integrity check failed."))?;
            if let Some(m) = node::master(&lp) {
                s.bytes += node_data_len(&lp, master_id, &m);
            }
            if s.nodes.insert(master_id, lp).is_some() {
                return Err(Corrupt("Listpack re-added with existing key"));
            }
        }
        if s.meta.length > 0 && s.nodes.is_empty() {
            return Err(Corrupt("Stream length inconsistent with rax entries"));
        }
        Ok(s)
    }

    /// Adds a group while loading; refused if the name is taken.
    pub fn load_group(&mut self, name: &[u8], last_id: StreamId, entries_read: i64) -> Result<&mut Group, Corrupt> {
        if self.groups.contains_key(name) {
            return Err(Corrupt("Duplicated consumer group name"));
        }
        Ok(self.groups.entry(name.into()).or_insert_with(|| Group::new(last_id, entries_read)))
    }
}

/// Bytes of an element as the metrics count it: a string's length, an integer's digits.
fn element_len(e: Entry<'_>) -> usize {
    match e {
        Entry::Str(s) => s.len(),
        Entry::Int(n) => crate::decimal_len(n),
    }
}

/// Bytes of the fields and values of one entry.
fn data_len(lp: &Listpack, m: &Master, raw: Raw) -> usize {
    let e = StreamEntry { id: raw.id, lp, raw, master_fields_at: m.fields_at };
    e.fields().map(|(f, v)| element_len(f) + element_len(v)).sum()
}

/// Bytes of the fields and values of the live entries of a node.
fn node_data_len(lp: &Listpack, master_id: StreamId, m: &Master) -> usize {
    let mut total = 0;
    let mut at = m.first_entry;
    while at < lp.end() {
        let Some(raw) = node::entry(lp, m, master_id, at) else { break };
        if !raw.deleted() {
            total += data_len(lp, m, raw);
        }
        at = raw.next;
    }
    total
}

/// The ID of the last entry of a node, tombstone or not (`lpGetEdgeStreamID` backwards).
fn last_entry_id(lp: &Listpack, master_id: StreamId, m: &Master) -> Option<StreamId> {
    let at = node::prev_entry(lp, lp.end())?;
    node::entry(lp, m, master_id, at).map(|raw| raw.id)
}

/// Checks one node's listpack as Redis's `streamValidateListpackIntegrity` does with `deep`
/// (and refuses negative counts, which Redis lets through): for loaders of Redis's formats,
/// which check a payload before they make a [`Stream`] of it.
pub fn validate_node(lp: &[u8]) -> Result<(), Corrupt> {
    node::validate(lp)
}
