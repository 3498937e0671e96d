//! One node of a stream: a listpack laid out exactly as Redis's `t_stream.c` lays it out.
//!
//! ```text
//! node   := master entry*
//! master := live-count deleted-count field-count field* 0
//! entry  := flags ms-delta seq-delta [field-count] (field value | value)* lp-count
//! ```
//!
//! Every number is a listpack integer. An entry's ID is the node's master ID (its key in the
//! stream's tree) plus the two deltas, with 64-bit wrapping arithmetic as in C. The flags say
//! whether the entry was deleted (a tombstone, still in the node) and whether its fields are
//! the master entry's (then only the values are stored). `lp-count` is the number of listpack
//! elements of the entry before it, so that a walk can go backwards from the node's last
//! element; the master entry's final `0` stops such a walk.
//!
//! Nodes built here are sound; nodes from outside (a snapshot, an RDB payload) are checked by
//! [`validate`] before use. The readers still never index past what they checked: every
//! step is an `Option`, so a damaged node ends a walk instead of a panic.

use crate::encoding::listpack::{self, Listpack};
use crate::encoding::{Corrupt, Entry};

use super::StreamId;

/// The entry was deleted (XDEL, or trimmed inside a node it shares with live entries).
pub(crate) const FLAG_DELETED: i64 = 1;
/// The entry's fields are the master entry's: only its values are stored.
pub(crate) const FLAG_SAMEFIELDS: i64 = 2;

/// Reads the integer at `at` and the offset after it.
pub(crate) fn int_at(lp: &Listpack, at: usize) -> Option<(i64, usize)> {
    let (e, next) = lp.read(at)?;
    Some((e.as_int()?, next))
}

/// What the master entry of a node says, and where things are.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Master {
    /// Live entries.
    pub live: i64,
    /// Tombstones.
    pub deleted: i64,
    /// Number of master fields.
    pub fields: usize,
    /// Offset of the first master field.
    pub fields_at: usize,
    /// Offset of the first entry's flags (the terminator's when there is none).
    pub first_entry: usize,
}

pub(crate) fn master(lp: &Listpack) -> Option<Master> {
    let first = lp.first()?;
    let (live, deleted_at) = int_at(lp, first)?;
    let (deleted, at) = int_at(lp, deleted_at)?;
    let (fields, mut at) = int_at(lp, at)?;
    let fields = usize::try_from(fields).ok()?;
    let fields_at = at;
    for _ in 0..fields {
        at = lp.skip(at)?;
    }
    let (_zero, first_entry) = int_at(lp, at)?;
    Some(Master { live, deleted, fields, fields_at, first_entry })
}

/// One entry of a node, located.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Raw {
    pub id: StreamId,
    pub flags: i64,
    /// Offset of the flags.
    pub at: usize,
    /// Number of field-value pairs.
    pub fields: usize,
    /// Offset of the first field (or, with [`FLAG_SAMEFIELDS`], of the first value).
    pub data_at: usize,
    /// Offset just past the entry's `lp-count` (the next entry's flags, or the terminator).
    pub next: usize,
}

impl Raw {
    pub(crate) fn deleted(&self) -> bool {
        self.flags & FLAG_DELETED != 0
    }

    pub(crate) fn same_fields(&self) -> bool {
        self.flags & FLAG_SAMEFIELDS != 0
    }
}

/// The entry whose flags are at `at`.
pub(crate) fn entry(lp: &Listpack, m: &Master, master_id: StreamId, at: usize) -> Option<Raw> {
    let (flags, p) = int_at(lp, at)?;
    let (ms, p) = int_at(lp, p)?;
    let (seq, mut p) = int_at(lp, p)?;
    let id = StreamId { ms: master_id.ms.wrapping_add(ms as u64), seq: master_id.seq.wrapping_add(seq as u64) };
    let (fields, skip) = if flags & FLAG_SAMEFIELDS != 0 {
        (m.fields, m.fields)
    } else {
        let (n, q) = int_at(lp, p)?;
        p = q;
        let n = usize::try_from(n).ok()?;
        (n, n.checked_mul(2)?)
    };
    let data_at = p;
    for _ in 0..skip {
        p = lp.skip(p)?;
    }
    let next = lp.skip(p)?; // the lp-count
    Some(Raw { id, flags, at, fields, data_at, next })
}

/// The flags offset of the entry before the one whose flags are at `at` (or, with `at` the
/// terminator's offset, of the last entry); `None` at the master entry.
pub(crate) fn prev_entry(lp: &Listpack, at: usize) -> Option<usize> {
    let count_at = lp.prev(at)?;
    let (count, _) = int_at(lp, count_at)?;
    if count <= 0 {
        return None; // the master entry's terminating 0
    }
    let mut p = count_at;
    for _ in 0..count {
        p = lp.prev(p)?;
    }
    Some(p)
}

/// A new node holding the master entry for `fields` (the fields of its first entry).
pub(crate) fn new_node<'a>(fields: impl Iterator<Item = &'a [u8]>, count: usize) -> Listpack {
    let mut lp = Listpack::new();
    let _ = lp.push_int(0); // live: the caller counts the first entry
    let _ = lp.push_int(0);
    let _ = lp.push_int(count as i64);
    for f in fields {
        let _ = lp.push_str(f);
    }
    let _ = lp.push_int(0);
    lp
}

/// Whether the master fields are exactly `fields` (field names of alternate arguments).
pub(crate) fn same_fields<'a>(lp: &Listpack, m: &Master, mut fields: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut at = m.fields_at;
    for _ in 0..m.fields {
        let (Some((e, next)), Some(f)) = (lp.read(at), fields.next()) else { return false };
        if !e.eq_bytes(f) {
            return false;
        }
        at = next;
    }
    fields.next().is_none()
}

/// Sets the master entry's counters (after which offsets past them may have moved).
pub(crate) fn set_counts(lp: &mut Listpack, live: i64, deleted: i64) {
    // `live` first: it may change size and move `deleted`.
    if let Some(first) = lp.first() {
        let _ = lp.replace(first, Entry::Int(live));
        if let Some(at) = lp.skip(first) {
            let _ = lp.replace(at, Entry::Int(deleted));
        }
    }
}

/// `streamValidateListpackIntegrity` with `deep`: a sound listpack, then the master entry,
/// every entry with integers where integers belong and an `lp-count` that matches it, and
/// nothing after the last entry. A node must also hold at least one element.
pub(crate) fn validate(lp: &[u8]) -> Result<(), Corrupt> {
    const BAD: Corrupt = Corrupt("Stream listpack integrity check failed.");
    listpack::validate(lp).map_err(|_| BAD)?;
    let mut it = listpack::iter(lp);
    if lp.get(listpack::HDR_SIZE) == Some(&listpack::EOF) {
        return Err(Corrupt("Empty listpack inside stream"));
    }
    let int = |it: &mut listpack::Iter<'_>| it.next().and_then(Entry::as_int).ok_or(BAD);
    // Redis lets negative counts through here (and misbehaves on them later); they are damage.
    let count = |it: &mut listpack::Iter<'_>| int(it).and_then(|n| if n < 0 { Err(BAD) } else { Ok(n) });
    let entries = count(&mut it)?;
    let deleted = count(&mut it)?;
    let master_fields = count(&mut it)?;
    for _ in 0..master_fields {
        it.next().ok_or(BAD)?;
    }
    if int(&mut it)? != 0 {
        return Err(BAD);
    }
    let mut left = entries.checked_add(deleted).ok_or(BAD)?;
    while left != 0 {
        left -= 1;
        let flags = int(&mut it)?;
        int(&mut it)?;
        int(&mut it)?;
        let mut fields = master_fields;
        let mut extra = 3i64;
        if flags & FLAG_SAMEFIELDS == 0 {
            fields = count(&mut it)?;
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
