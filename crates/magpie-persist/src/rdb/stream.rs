//! Streams as RDB holds them (`RDB_TYPE_STREAM_LISTPACKS_2`): the listpack nodes of Redis's
//! radix tree with their master IDs, the stream's counters and IDs, and its consumer groups
//! with their pending entries and consumers. This plain form converts to and from Magpie's
//! stream type (`magpie_store::Stream`, see `crate::stream_rdb`).
//!
//! ```text
//! stream   := nodes:len (master-id:string(16 bytes, ms:u64be seq:u64be) listpack:string)*
//!             length:len last-ms:len last-seq:len first-ms:len first-seq:len
//!             max-deleted-ms:len max-deleted-seq:len entries-added:len
//!             groups:len group*
//! group    := name:string last-ms:len last-seq:len entries-read:len
//!             pel:len (id:16 bytes delivery-time:u64le delivery-count:len)*
//!             consumers:len (name:string seen-time:u64le pel:len id:16 bytes*)*
//! ```
//!
//! A node's listpack starts with a master entry (`count deleted fields field* 0`), then each
//! entry is `flags ms-delta seq-delta [fields field value ...| value ...] lp-count`.

use std::collections::HashSet;

use magpie_store::encoding::{Corrupt, Entry, listpack, listpack::Listpack};

use super::io::{Input, put_len, put_ms, put_string, read_len, read_ms, read_string};
use super::{RdbError, ReadOptions, types};
use crate::codec::{bits_as_i64, bits_as_u64};

/// A stream entry ID.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    /// The 16-byte big-endian form the radix tree and the PEL keys use.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    pub fn from_bytes(b: [u8; 16]) -> StreamId {
        let (ms, seq) = b.split_at(8);
        StreamId {
            ms: u64::from_be_bytes(ms.try_into().unwrap_or_default()),
            seq: u64::from_be_bytes(seq.try_into().unwrap_or_default()),
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One node of the radix tree: entries delta-encoded against `master_id` in a listpack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamNode {
    pub master_id: StreamId,
    pub listpack: Listpack,
}

/// An entry decoded from a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: StreamId,
    /// Deleted by XDEL (a tombstone still in the node).
    pub deleted: bool,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A pending entry of a consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEntry {
    pub id: StreamId,
    pub delivery_time_ms: i64,
    pub delivery_count: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    pub name: Vec<u8>,
    pub seen_time_ms: i64,
    /// IDs of the group's pending entries this consumer owns, ascending.
    pub pending: Vec<StreamId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroup {
    pub name: Vec<u8>,
    pub last_id: StreamId,
    /// Redis's `entries_read`; -1 when unknown.
    pub entries_read: i64,
    /// Ascending by ID.
    pub pending: Vec<PendingEntry>,
    /// Ascending by name (the radix tree's order).
    pub consumers: Vec<Consumer>,
}

/// A stream, as RDB_TYPE_STREAM_LISTPACKS_2 holds it. Nodes, groups, consumers and pending
/// entries are in Redis's order (ascending IDs and names); the writer writes them as given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    pub nodes: Vec<StreamNode>,
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    pub groups: Vec<ConsumerGroup>,
}

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;

impl StreamNode {
    /// The node's entries, tombstones included, in order.
    pub fn entries(&self) -> Result<Vec<StreamEntry>, Corrupt> {
        const BAD: Corrupt = Corrupt("stream node listpack is malformed");
        let mut it = self.listpack.iter();
        let int = |it: &mut listpack::Iter<'_>| it.next().and_then(Entry::as_int).ok_or(BAD);
        let count = int(&mut it)?;
        let deleted = int(&mut it)?;
        let nfields = int(&mut it)?;
        let mut master_fields = Vec::new();
        for _ in 0..nfields {
            master_fields.push(it.next().ok_or(BAD)?.to_vec());
        }
        if int(&mut it)? != 0 {
            return Err(BAD);
        }
        let total = count.checked_add(deleted).filter(|&n| n >= 0).ok_or(BAD)?;
        let mut out = Vec::new();
        for _ in 0..total {
            let flags = int(&mut it)?;
            let ms = int(&mut it)?;
            let seq = int(&mut it)?;
            // The deltas from the master ID, stored as int64 and added in uint64 arithmetic
            // (`lpGetInteger(...) + master_id.ms` in Redis), wrapping as the writer did.
            let id = StreamId {
                ms: self.master_id.ms.wrapping_add(bits_as_u64(ms)),
                seq: self.master_id.seq.wrapping_add(bits_as_u64(seq)),
            };
            let mut fields = Vec::new();
            if flags & FLAG_SAMEFIELDS != 0 {
                for f in &master_fields {
                    fields.push((f.clone(), it.next().ok_or(BAD)?.to_vec()));
                }
            } else {
                let n = int(&mut it)?;
                for _ in 0..n {
                    let f = it.next().ok_or(BAD)?.to_vec();
                    fields.push((f, it.next().ok_or(BAD)?.to_vec()));
                }
            }
            int(&mut it)?; // lp-count, for walking backwards
            out.push(StreamEntry { id, deleted: flags & FLAG_DELETED != 0, fields });
        }
        if it.next().is_some() {
            return Err(BAD);
        }
        Ok(out)
    }
}

/// A field and its value.
pub type Field = (Vec<u8>, Vec<u8>);

/// Redis's default `stream-node-max-bytes` and `stream-node-max-entries`.
pub const NODE_MAX_BYTES: usize = 4096;
pub const NODE_MAX_ENTRIES: usize = 100;
const LISTPACK_MAX_SIZE: usize = 1 << 30;

impl Stream {
    /// The stream XADD would build from these entries (ascending IDs), with Redis's node
    /// layout (`streamAppendItem`): a new node when the last one's bytes plus the entry's
    /// fields and values reach `node_max_bytes`, or it holds `node_max_entries` entries; the
    /// first entry's fields are the node's master fields, and an entry with the same fields
    /// stores only its values. No consumer groups.
    pub fn from_entries(entries: &[(StreamId, Vec<Field>)], node_max_bytes: usize, node_max_entries: usize) -> Stream {
        let max_bytes =
            if node_max_bytes == 0 || node_max_bytes > LISTPACK_MAX_SIZE { LISTPACK_MAX_SIZE } else { node_max_bytes };
        let mut s = Stream::default();
        // Per open node: the master fields and the number of entries.
        let mut master_fields: Vec<Vec<u8>> = Vec::new();
        let mut count = 0usize;
        for (id, fields) in entries {
            let totelelen: usize = fields.iter().map(|(f, v)| f.len() + v.len()).sum();
            let open = s.nodes.last().is_some_and(|n| {
                n.listpack.bytes() + totelelen < max_bytes && (node_max_entries == 0 || count < node_max_entries)
            });
            let same;
            if !open {
                let mut lp = Listpack::new();
                let _ = lp.push_int(1);
                let _ = lp.push_int(0);
                let _ = lp.push_int(count_i64(fields.len()));
                for (f, _) in fields {
                    let _ = lp.push_str(f);
                }
                let _ = lp.push_int(0);
                master_fields = fields.iter().map(|(f, _)| f.clone()).collect();
                count = 1;
                same = true;
                s.nodes.push(StreamNode { master_id: *id, listpack: lp });
            } else {
                count += 1;
                same =
                    fields.len() == master_fields.len() && fields.iter().zip(&master_fields).all(|((f, _), m)| f == m);
            }
            let Some(node) = s.nodes.last_mut() else { continue };
            let lp = &mut node.listpack;
            if let Some(first) = lp.first() {
                let _ = lp.replace(first, Entry::Int(count_i64(count)));
            }
            let _ = lp.push_int(if same { FLAG_SAMEFIELDS } else { 0 });
            // Redis passes the uint64 difference to `lpAppendInteger` as an int64: a delta past
            // i64::MAX is stored negative and wraps back on reading (`entries` above).
            let _ = lp.push_int(bits_as_i64(id.ms.wrapping_sub(node.master_id.ms)));
            let _ = lp.push_int(bits_as_i64(id.seq.wrapping_sub(node.master_id.seq)));
            if same {
                for (_, v) in fields {
                    let _ = lp.push_str(v);
                }
            } else {
                let _ = lp.push_int(count_i64(fields.len()));
                for (f, v) in fields {
                    let _ = lp.push_str(f);
                    let _ = lp.push_str(v);
                }
            }
            let lp_count = fields.len() + 3 + if same { 0 } else { fields.len() + 1 };
            let _ = lp.push_int(count_i64(lp_count));
        }
        s.length = entries.len() as u64;
        s.entries_added = s.length;
        if let (Some((first, _)), Some((last, _))) = (entries.first(), entries.last()) {
            s.first_id = *first;
            s.last_id = *last;
        }
        s
    }

    /// Every live entry, in order.
    pub fn entries(&self) -> Result<Vec<StreamEntry>, Corrupt> {
        let mut out = Vec::new();
        for node in &self.nodes {
            out.extend(node.entries()?.into_iter().filter(|e| !e.deleted));
        }
        Ok(out)
    }
}

/// A count of things held in memory as a listpack integer. A `Vec`'s length is at most
/// `isize::MAX` (Rust's limit on an allocation), which fits an i64, so the fallback is never
/// taken; it only keeps the conversion honest without a cast.
fn count_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `streamValidateListpackIntegrity` with `deep`: the master entry, then every entry's fields
/// and its lp-count, all integers where integers belong, and nothing after the last entry.
fn validate_node(lp: &[u8]) -> Result<(), Corrupt> {
    const BAD: Corrupt = Corrupt("Stream listpack integrity check failed.");
    listpack::validate(lp).map_err(|_| BAD)?;
    let mut it = listpack::iter(lp);
    let int = |it: &mut listpack::Iter<'_>| it.next().and_then(Entry::as_int).ok_or(BAD);
    let mut entry_count = int(&mut it)?;
    let deleted = int(&mut it)?;
    let master_fields = int(&mut it)?;
    for _ in 0..master_fields {
        it.next().ok_or(BAD)?;
    }
    if int(&mut it)? != 0 {
        return Err(BAD);
    }
    entry_count = entry_count.wrapping_add(deleted);
    while entry_count != 0 {
        entry_count = entry_count.wrapping_sub(1);
        let flags = int(&mut it)?;
        int(&mut it)?;
        int(&mut it)?;
        let mut fields = master_fields;
        let mut extra = 3i64;
        if flags & FLAG_SAMEFIELDS == 0 {
            fields = int(&mut it)?;
            for _ in 0..fields {
                it.next().ok_or(BAD)?;
            }
            extra = extra.wrapping_add(fields).wrapping_add(1);
        }
        for _ in 0..fields {
            it.next().ok_or(BAD)?;
        }
        if int(&mut it)? != fields.wrapping_add(extra) {
            return Err(BAD);
        }
    }
    if it.next().is_some() {
        return Err(BAD);
    }
    Ok(())
}

fn read_id(inp: &mut impl Input) -> Result<StreamId, RdbError> {
    Ok(StreamId { ms: read_len(inp)?, seq: read_len(inp)? })
}

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    put_len(out, id.ms);
    put_len(out, id.seq);
}

pub(super) fn read(inp: &mut impl Input, rdbtype: u8, opts: &ReadOptions) -> Result<Stream, RdbError> {
    let v2 = rdbtype == types::STREAM_LISTPACKS_2;
    let mut s = Stream::default();
    let nodes = read_len(inp)?;
    for _ in 0..nodes {
        let key = read_string(inp)?;
        let key: [u8; 16] =
            key.try_into().map_err(|_| RdbError::corrupt("Stream node key entry is not the size of a stream ID"))?;
        let lp = read_string(inp)?;
        // Every node is walked: a listpack Magpie holds must be sound, whatever the setting.
        if opts.deep_sanitize {
            validate_node(&lp).map_err(|e| RdbError::corrupt(e.0))?;
        }
        let lp = Listpack::from_bytes(lp).map_err(|_| RdbError::corrupt("Stream listpack integrity check failed."))?;
        if lp.is_empty() {
            return Err(RdbError::corrupt("Empty listpack inside stream"));
        }
        s.nodes.push(StreamNode { master_id: StreamId::from_bytes(key), listpack: lp });
    }
    // Redis inserts each node into its radix tree, which keeps them in order; a key given twice
    // is damage.
    s.nodes.sort_by_key(|n| n.master_id);
    if s.nodes.windows(2).any(|w| w[0].master_id == w[1].master_id) {
        return Err(RdbError::corrupt("Listpack re-added with existing key"));
    }
    s.length = read_len(inp)?;
    s.last_id = read_id(inp)?;
    if v2 {
        s.first_id = read_id(inp)?;
        s.max_deleted_id = read_id(inp)?;
        s.entries_added = read_len(inp)?;
    } else {
        // As Redis loads a stream written before 7.0.
        s.max_deleted_id = StreamId::default();
        s.entries_added = s.length;
        s.first_id = match s.entries() {
            Ok(entries) => entries.first().map_or(StreamId::MAX, |e| e.id),
            Err(e) => return Err(RdbError::corrupt(e.0)),
        };
    }
    if s.length > 0 && s.nodes.is_empty() {
        return Err(RdbError::corrupt("Stream length inconsistent with rax entries"));
    }
    let groups = read_len(inp)?;
    let mut group_names = HashSet::new();
    for _ in 0..groups {
        let name = read_string(inp)?;
        let last_id = read_id(inp)?;
        // Stored with `rdbSaveLen` from a long long: the "unknown" -1 is written as u64::MAX
        // and must read back as -1, so the bits are taken as they are (not range-checked).
        let entries_read = if v2 { bits_as_i64(read_len(inp)?) } else { estimate_distance(&s, last_id) };
        if !group_names.insert(name.clone()) {
            return Err(RdbError::corrupt(format!(
                "Duplicated consumer group name {}",
                String::from_utf8_lossy(&name)
            )));
        }
        let mut group = ConsumerGroup { name, last_id, entries_read, pending: Vec::new(), consumers: Vec::new() };
        let pel = read_len(inp)?;
        let mut owned: Vec<(StreamId, bool)> = Vec::new();
        for _ in 0..pel {
            let id = StreamId::from_bytes(inp.array()?);
            let delivery_time_ms = read_ms(inp)?;
            let delivery_count = read_len(inp)?;
            group.pending.push(PendingEntry { id, delivery_time_ms, delivery_count });
            owned.push((id, false));
        }
        owned.sort_unstable();
        if owned.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(RdbError::corrupt("Duplicated global PEL entry loading stream consumer group"));
        }
        let consumers = read_len(inp)?;
        let mut consumer_names = HashSet::new();
        for _ in 0..consumers {
            let name = read_string(inp)?;
            if !consumer_names.insert(name.clone()) {
                return Err(RdbError::corrupt("Duplicate stream consumer detected."));
            }
            let seen_time_ms = read_ms(inp)?;
            let n = read_len(inp)?;
            let mut pending = Vec::new();
            for _ in 0..n {
                let id = StreamId::from_bytes(inp.array()?);
                let Ok(at) = owned.binary_search_by(|(x, _)| x.cmp(&id)) else {
                    return Err(RdbError::corrupt("Consumer entry not found in group global PEL"));
                };
                owned[at].1 = true;
                pending.push(id);
            }
            let mut sorted = pending.clone();
            sorted.sort_unstable();
            if sorted.windows(2).any(|w| w[0] == w[1]) {
                return Err(RdbError::corrupt("Duplicated consumer PEL entry loading a stream consumer group"));
            }
            group.consumers.push(Consumer { name, seen_time_ms, pending });
        }
        if opts.deep_sanitize && owned.iter().any(|(_, has_owner)| !has_owner) {
            return Err(RdbError::corrupt("Stream CG PEL entry without consumer"));
        }
        s.groups.push(group);
    }
    Ok(s)
}

/// `streamEstimateDistanceFromFirstEverEntry`: a group's entries-read counter for streams
/// written before 7.0, which did not store it.
fn estimate_distance(s: &Stream, id: StreamId) -> i64 {
    const INVALID: i64 = -1;
    if s.entries_added == 0 {
        return 0;
    }
    // Redis computes in uint64 and returns a long long: the same bits, wrapping alike.
    if s.length == 0 && id <= s.last_id {
        return bits_as_i64(s.entries_added);
    }
    if id == s.last_id {
        return bits_as_i64(s.entries_added);
    } else if id > s.last_id {
        return INVALID;
    }
    if s.max_deleted_id == StreamId::default() || s.max_deleted_id < s.first_id {
        if id < s.first_id {
            return bits_as_i64(s.entries_added.wrapping_sub(s.length));
        } else if id == s.first_id {
            return bits_as_i64(s.entries_added.wrapping_sub(s.length).wrapping_add(1));
        }
    }
    INVALID
}

pub(super) fn write(out: &mut Vec<u8>, s: &Stream, compress: bool) {
    put_len(out, s.nodes.len() as u64);
    for node in &s.nodes {
        put_string(out, &node.master_id.to_bytes(), compress);
        put_string(out, node.listpack.as_bytes(), compress);
    }
    put_len(out, s.length);
    put_id(out, s.last_id);
    put_id(out, s.first_id);
    put_id(out, s.max_deleted_id);
    put_len(out, s.entries_added);
    put_len(out, s.groups.len() as u64);
    for g in &s.groups {
        put_string(out, &g.name, compress);
        put_id(out, g.last_id);
        put_len(out, bits_as_u64(g.entries_read)); // -1 ("unknown") as u64::MAX, as Redis
        put_len(out, g.pending.len() as u64);
        for p in &g.pending {
            out.extend_from_slice(&p.id.to_bytes());
            put_ms(out, p.delivery_time_ms);
            put_len(out, p.delivery_count);
        }
        put_len(out, g.consumers.len() as u64);
        for c in &g.consumers {
            put_string(out, &c.name, compress);
            put_ms(out, c.seen_time_ms);
            put_len(out, c.pending.len() as u64);
            for id in &c.pending {
                out.extend_from_slice(&id.to_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::io::SliceInput;
    use super::*;

    fn fields(i: u64) -> Vec<Field> {
        vec![(b"f".to_vec(), i.to_string().into_bytes())]
    }

    /// Redis 5 and 6 wrote streams without the first ID, the tombstone ID, entries-added and
    /// the groups' entries-read: they are derived on load as Redis 7.0 derives them.
    #[test]
    fn streams_written_before_7_0_get_their_counters_derived() {
        let entries: Vec<(StreamId, Vec<Field>)> = (1..=5).map(|i| (StreamId { ms: i, seq: 0 }, fields(i))).collect();
        let s = Stream::from_entries(&entries, NODE_MAX_BYTES, NODE_MAX_ENTRIES);
        let mut v1 = Vec::new();
        put_len(&mut v1, s.nodes.len() as u64);
        for n in &s.nodes {
            put_string(&mut v1, &n.master_id.to_bytes(), false);
            put_string(&mut v1, n.listpack.as_bytes(), false);
        }
        put_len(&mut v1, 5);
        put_id(&mut v1, StreamId { ms: 5, seq: 0 });
        // Three groups: at the last entry, before the first, and past the end.
        put_len(&mut v1, 3);
        for (name, last) in [(&b"at-last"[..], 5), (b"before", 0), (b"future", 9)] {
            put_string(&mut v1, name, false);
            put_id(&mut v1, StreamId { ms: last, seq: 0 });
            put_len(&mut v1, 0);
            put_len(&mut v1, 0);
        }
        let got = read(&mut SliceInput::new(&v1), types::STREAM_LISTPACKS, &ReadOptions::default()).expect("reads");
        assert_eq!(
            (got.first_id, got.max_deleted_id, got.entries_added),
            (StreamId { ms: 1, seq: 0 }, StreamId::default(), 5)
        );
        let read: Vec<i64> = got.groups.iter().map(|g| g.entries_read).collect();
        assert_eq!(read, vec![5, 0, -1]);
        assert_eq!(got.entries().expect("entries").len(), 5);
    }

    /// Redis stores an entry's ID as int64 deltas from the node's master ID, computed in uint64:
    /// a delta past i64::MAX is stored negative and must come back as the same ID.
    #[test]
    fn id_deltas_past_i64_max_wrap_as_in_redis() {
        let ids = [StreamId { ms: 1, seq: 0 }, StreamId { ms: u64::MAX, seq: u64::MAX }];
        let entries: Vec<(StreamId, Vec<Field>)> =
            ids.iter().map(|&id| (id, vec![(b"f".to_vec(), b"v".to_vec())])).collect();
        let s = Stream::from_entries(&entries, NODE_MAX_BYTES, NODE_MAX_ENTRIES);
        assert_eq!(s.nodes.len(), 1);
        let ints: Vec<i64> = s.nodes[0].listpack.iter().filter_map(Entry::as_int).collect();
        // master entry: count 2, deleted 0, 1 field, 0; entry 1: flags, 0, 0, lp-count; entry 2:
        // flags, then the deltas u64::MAX - 1 and u64::MAX, as int64.
        assert_eq!(ints[..8], [2, 0, 1, 0, FLAG_SAMEFIELDS, 0, 0, 4]);
        assert_eq!(ints[8..], [FLAG_SAMEFIELDS, -2, -1, 4]);
        let back: Vec<StreamId> = s.entries().expect("entries").iter().map(|e| e.id).collect();
        assert_eq!(back, ids);
    }

    /// A group whose entries-read is unknown (-1) is written as Redis writes it, `rdbSaveLen` of
    /// the long long: the 64-bit length u64::MAX; and that reads back as -1.
    #[test]
    fn an_unknown_entries_read_is_written_as_u64_max() {
        let entries: Vec<(StreamId, Vec<Field>)> = (1..=3).map(|i| (StreamId { ms: i, seq: 0 }, fields(i))).collect();
        let mut s = Stream::from_entries(&entries, NODE_MAX_BYTES, NODE_MAX_ENTRIES);
        s.groups.push(ConsumerGroup {
            name: b"g".to_vec(),
            last_id: StreamId { ms: 2, seq: 0 },
            entries_read: -1,
            pending: Vec::new(),
            consumers: Vec::new(),
        });
        let mut out = Vec::new();
        write(&mut out, &s, false);
        // The group: name, last ID (2-0), entries-read, no PEL, no consumers.
        let tail = [&[1, b'g', 2, 0][..], &[0x81], &[0xFF; 8], &[0, 0]].concat();
        assert!(out.ends_with(&tail), "{out:?}");
        let back = read(&mut SliceInput::new(&out), types::STREAM_LISTPACKS_2, &ReadOptions::default()).expect("reads");
        assert_eq!(back.groups[0].entries_read, -1);
        assert_eq!(back, s);
    }

    #[test]
    fn inconsistent_groups_are_refused() {
        let entries: Vec<(StreamId, Vec<Field>)> = (1..=3).map(|i| (StreamId { ms: i, seq: 0 }, fields(i))).collect();
        let base = Stream::from_entries(&entries, NODE_MAX_BYTES, NODE_MAX_ENTRIES);
        let pe = |ms| PendingEntry { id: StreamId { ms, seq: 0 }, delivery_time_ms: 1, delivery_count: 1 };
        let consumer = |pending: Vec<u64>| Consumer {
            name: b"c".to_vec(),
            seen_time_ms: 1,
            pending: pending.into_iter().map(|ms| StreamId { ms, seq: 0 }).collect(),
        };
        let group = |pending, consumers| ConsumerGroup {
            name: b"g".to_vec(),
            last_id: StreamId { ms: 3, seq: 0 },
            entries_read: 3,
            pending,
            consumers,
        };
        let check = |groups: Vec<ConsumerGroup>, deep: bool| {
            let mut s = base.clone();
            s.groups = groups;
            let mut out = Vec::new();
            write(&mut out, &s, true);
            let opts = ReadOptions { deep_sanitize: deep, ..ReadOptions::default() };
            read(&mut SliceInput::new(&out), types::STREAM_LISTPACKS_2, &opts).map(|back| assert_eq!(back, s))
        };
        assert!(check(vec![group(vec![pe(1), pe(2)], vec![consumer(vec![1, 2])])], true).is_ok());
        assert!(check(vec![group(vec![pe(1), pe(1)], vec![consumer(vec![1])])], true).is_err(), "PEL twice");
        assert!(check(vec![group(vec![pe(1)], vec![consumer(vec![2])])], true).is_err(), "not in the PEL");
        assert!(check(vec![group(vec![pe(1)], vec![consumer(vec![1, 1])])], true).is_err(), "owned twice");
        assert!(check(vec![group(vec![pe(1)], vec![consumer(vec![1]), consumer(vec![])])], true).is_err(), "same name");
        assert!(check(vec![group(vec![], vec![]), group(vec![], vec![])], true).is_err(), "same group");
        assert!(check(vec![group(vec![pe(1)], vec![])], true).is_err(), "no owner");
        assert!(check(vec![group(vec![pe(1)], vec![])], false).is_ok(), "no owner is a deep check");
    }
}
