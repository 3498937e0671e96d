//! Sets of byte strings, in three representations chosen by content, as Redis 7.0 chooses its
//! encodings:
//!
//! - **Integers** (OBJECT ENCODING `intset`): a set of at most 512 members that are all
//!   canonical 64-bit integers is a sorted array of the narrowest integer width holding them
//!   all (16, 32 or 64 bits), as Redis's intset. Membership is a binary search; members come
//!   out in ascending order, as from Redis.
//! - **Packed** (reported as `hashtable`, which is what Redis 7.0 uses for these): up to 128
//!   members of at most 64 bytes each, in one buffer of length-prefixed members (a listpack,
//!   as Redis 7.2 has for small sets). Lookups scan the buffer, which for 128 short members is
//!   as fast as hashing and takes a fraction of the memory.
//! - **Table** (`hashtable`): the members in a dense vector, and a hash table of their
//!   positions in it. Removal moves the last member into the hole. The dense vector makes a
//!   random member O(1) (SPOP, SRANDMEMBER) and gives SSCAN a cursor that never misses a
//!   member present for the whole scan (see [`Set::scan`]). The index holds a 4-byte position
//!   and 32 bits of the member's hash (9 bytes a bucket with hashbrown's control byte), so it
//!   grows without reading the members. A member that is a canonical integer is kept as an
//!   `i64` in its 16-byte slot, without an allocation. Both parts grow in bounded steps (the
//!   vector in chunks, the index in segments: see `dense.rs` and `segtable.rs`), so no SADD
//!   stalls the shard however big the set, and a snapshot freezes the vector's chunks instead
//!   of copying the set ([`Set::freeze`]).
//!
//! Conversions go one way (intset → packed → table, or intset → table), as in Redis: a big
//! set that shrinks stays a table.

use std::fmt;
use std::hash::BuildHasher;

use magpie_protocol::parse_i64;

use crate::decimal_len;
use crate::dense::{self, Dense};
use crate::segtable::SegTable;

/// Most members an intset holds (Redis's `set-max-intset-entries`).
pub const MAX_INTSET_ENTRIES: usize = 512;
/// Most members a packed set holds.
const PACK_MAX_ENTRIES: usize = 128;
/// Longest member a packed set holds (its length fits the one-byte prefix).
const PACK_MAX_MEMBER: usize = 64;

/// A member, borrowed from a set or an argument. A canonical integer (as Redis's `string2ll`
/// reads one: no sign but `-`, no leading zeros) may be either variant; [`MemberRef::parse`]
/// makes it `Int`.
#[derive(Clone, Copy, Debug)]
pub enum MemberRef<'a> {
    Int(i64),
    Bytes(&'a [u8]),
}

impl<'a> MemberRef<'a> {
    /// The member `bytes`, as `Int` if they are a canonical integer.
    pub fn parse(bytes: &'a [u8]) -> MemberRef<'a> {
        match canonical_int(bytes) {
            Some(n) => MemberRef::Int(n),
            None => MemberRef::Bytes(bytes),
        }
    }

    /// The same member with a canonical integer as `Int` (what the set's lookups compare).
    fn normalize(self) -> MemberRef<'a> {
        match self {
            MemberRef::Bytes(b) => MemberRef::parse(b),
            int => int,
        }
    }

    /// Calls `f` with the member's bytes (an integer written in decimal).
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            MemberRef::Int(n) => f(itoa::Buffer::new().format(n).as_bytes()),
            MemberRef::Bytes(b) => f(b),
        }
    }

    pub fn to_vec(self) -> Vec<u8> {
        self.with_bytes(<[u8]>::to_vec)
    }

    /// Length in bytes (an integer's in decimal).
    pub fn len(self) -> usize {
        match self {
            MemberRef::Int(n) => decimal_len(n),
            MemberRef::Bytes(b) => b.len(),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    fn to_member(self) -> Member {
        match self {
            MemberRef::Int(n) => Member::Int(n),
            MemberRef::Bytes(b) => Member::Bytes(b.into()),
        }
    }
}

/// Two references are the same member when their bytes are equal, whatever their variants.
impl PartialEq for MemberRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.normalize(), other.normalize()) {
            (MemberRef::Int(a), MemberRef::Int(b)) => a == b,
            (MemberRef::Bytes(a), MemberRef::Bytes(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for MemberRef<'_> {}

fn canonical_int(bytes: &[u8]) -> Option<i64> {
    if bytes.len() > 20 { None } else { parse_i64(bytes) }
}

/// A member owned: what [`Set::pop_random`] takes out. 16 bytes; an integer needs no
/// allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Member {
    Int(i64),
    Bytes(Box<[u8]>),
}

impl Member {
    pub fn as_ref(&self) -> MemberRef<'_> {
        match self {
            Member::Int(n) => MemberRef::Int(*n),
            Member::Bytes(b) => MemberRef::Bytes(b),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Integers

/// A sorted array of integers in the narrowest width that holds them all.
#[derive(Clone, Debug, PartialEq)]
enum Ints {
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

/// Runs `$e` with `$v` bound to the vector, whatever its width.
macro_rules! each_width {
    ($ints:expr, $v:ident => $e:expr) => {
        match $ints {
            Ints::I16($v) => $e,
            Ints::I32($v) => $e,
            Ints::I64($v) => $e,
        }
    };
}

/// Position of `n` in the sorted `v`, or where it would go.
fn search<T: Copy + Ord + TryFrom<i64>>(v: &[T], n: i64) -> Result<usize, usize> {
    match T::try_from(n) {
        Ok(x) => v.binary_search(&x),
        // Out of this width's range: below or above everything held.
        Err(_) => Err(if n < 0 { 0 } else { v.len() }),
    }
}

/// Makes room for `extra` more elements, growing by an eighth at a time rather than doubling:
/// small collections live long, and their slack would be most of their memory. (Inserting in
/// the middle of the buffer is O(n) anyway.)
fn reserve_lean<T>(v: &mut Vec<T>, extra: usize) {
    if v.capacity() - v.len() < extra {
        v.reserve_exact(extra.max(v.len() / 8).max(4));
    }
}

fn insert_lean<T>(v: &mut Vec<T>, pos: usize, x: T) {
    reserve_lean(v, 1);
    v.insert(pos, x);
}

impl Ints {
    fn len(&self) -> usize {
        each_width!(self, v => v.len())
    }

    #[allow(clippy::useless_conversion)] // i64 to i64 in the 64-bit arm
    fn get(&self, i: usize) -> i64 {
        each_width!(self, v => i64::from(v[i]))
    }

    fn search(&self, n: i64) -> Result<usize, usize> {
        each_width!(self, v => search(v, n))
    }

    fn contains(&self, n: i64) -> bool {
        self.search(n).is_ok()
    }

    /// Adds `n`; false if it was there.
    fn insert(&mut self, n: i64) -> bool {
        let Err(pos) = self.search(n) else { return false };
        self.widen_for(n);
        // After widening, `n` fits the width: the casts below are exact.
        match self {
            Ints::I16(v) => insert_lean(v, pos, n as i16),
            Ints::I32(v) => insert_lean(v, pos, n as i32),
            Ints::I64(v) => insert_lean(v, pos, n),
        }
        true
    }

    /// Converts to a width that holds `n` too, if this one does not.
    fn widen_for(&mut self, n: i64) {
        let fits16 = i16::try_from(n).is_ok();
        let fits32 = i32::try_from(n).is_ok();
        match self {
            Ints::I16(v) if !fits16 => {
                *self = if fits32 {
                    Ints::I32(v.iter().map(|&x| i32::from(x)).collect())
                } else {
                    Ints::I64(v.iter().map(|&x| i64::from(x)).collect())
                }
            }
            Ints::I32(v) if !fits32 => *self = Ints::I64(v.iter().map(|&x| i64::from(x)).collect()),
            _ => {}
        }
    }

    fn remove(&mut self, n: i64) -> bool {
        match self.search(n) {
            Ok(pos) => {
                self.remove_at(pos);
                true
            }
            Err(_) => false,
        }
    }

    #[allow(clippy::useless_conversion)] // i64 to i64 in the 64-bit arm
    fn remove_at(&mut self, pos: usize) -> i64 {
        each_width!(self, v => i64::from(v.remove(pos)))
    }
}

// ---------------------------------------------------------------------------------------------
// Packed

/// Members in one buffer, each as a length byte followed by its bytes.
#[derive(Clone, Debug, Default, PartialEq)]
struct Pack {
    buf: Vec<u8>,
    len: usize,
}

impl Pack {
    /// The member that starts at `off`, and where the next one starts.
    fn at(&self, off: usize) -> (&[u8], usize) {
        let start = off + 1;
        let end = start + usize::from(self.buf[off]);
        (&self.buf[start..end], end)
    }

    fn iter(&self) -> PackIter<'_> {
        PackIter { buf: &self.buf, pos: 0 }
    }

    /// Offset of `member`.
    fn find(&self, member: MemberRef<'_>) -> Option<usize> {
        member.with_bytes(|m| {
            let mut off = 0;
            while off < self.buf.len() {
                let (s, next) = self.at(off);
                if s == m {
                    return Some(off);
                }
                off = next;
            }
            None
        })
    }

    /// Appends a member that is not there yet (at most [`PACK_MAX_MEMBER`] bytes).
    fn push(&mut self, member: MemberRef<'_>) {
        member.with_bytes(|m| {
            reserve_lean(&mut self.buf, m.len() + 1);
            self.buf.push(m.len() as u8);
            self.buf.extend_from_slice(m);
        });
        self.len += 1;
    }

    fn remove_at(&mut self, off: usize) {
        let (_, next) = self.at(off);
        self.buf.drain(off..next);
        self.len -= 1;
    }

    /// Offset of the `i`th member.
    fn offset(&self, i: usize) -> usize {
        let mut off = 0;
        for _ in 0..i {
            off = self.at(off).1;
        }
        off
    }

    /// Offsets of every member, for repeated random access.
    fn offsets(&self) -> Vec<u16> {
        let mut offsets = Vec::with_capacity(self.len);
        let mut off = 0;
        while off < self.buf.len() {
            // At most 128 members of 65 bytes: offsets fit 16 bits.
            offsets.push(off as u16);
            off = self.at(off).1;
        }
        offsets
    }
}

struct PackIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PackIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(*self.buf.get(self.pos)?);
        let start = self.pos + 1;
        self.pos = start + len;
        self.buf.get(start..start + len)
    }
}

// ---------------------------------------------------------------------------------------------
// Table

type Hasher = foldhash::fast::RandomState;

/// Members in a dense vector and a hash table of their positions (see the module's notes).
/// Positions are `u32`: a set holds at most 4 billion members.
#[derive(Clone)]
struct Table {
    members: Dense<Member>,
    index: SegTable<Slot>,
    hasher: Hasher,
}

/// An index entry: a member's position, and 32 bits of its hash. With the hash at hand the
/// index grows (and shrinks) without reading a single member: growing a table of 4M members
/// took 60 ms instead of 1.2 s (members scattered in memory cost a cache miss each), for 4
/// more bytes per bucket. It also rules out most members before their bytes are compared.
#[derive(Clone, Copy)]
struct Slot {
    pos: u32,
    hash: u32,
}

/// The 32-bit hash of a (normalized) member. Integers hash as integers: cheaper, and
/// consistent, since a canonical integer is always held as one.
fn hash_of(hasher: &Hasher, m: MemberRef<'_>) -> u32 {
    let h = match m {
        MemberRef::Int(n) => hasher.hash_one(n),
        MemberRef::Bytes(b) => hasher.hash_one(b),
    };
    (h >> 32) as u32 // foldhash's high bits are its best
}

/// The hash the index sees, made of the 32 bits so that its three uses take different ones:
/// hashbrown's bucket (the low bits: `h`), the index's segment (bits 32 and up: `h >> 13`) and
/// hashbrown's tag (the top 7 bits: `h >> 25`). They stay independent up to 8192 buckets a
/// segment and 4096 segments (tens of millions of members); past that the segment bits share
/// the tag's, which only costs more comparisons of the stored 32 bits.
fn table_hash(h: u32) -> u64 {
    u64::from(h) | (u64::from(h >> 13) << 32) | (u64::from(h >> 25) << 57)
}

/// Whether a held member is the (normalized) member `m`.
fn same(held: &Member, m: MemberRef<'_>) -> bool {
    match (held, m) {
        (Member::Int(a), MemberRef::Int(b)) => *a == b,
        (Member::Bytes(a), MemberRef::Bytes(b)) => **a == *b,
        _ => false,
    }
}

impl Table {
    fn with_capacity(n: usize) -> Table {
        Table { members: Dense::with_capacity(n), index: SegTable::with_capacity(n), hasher: Hasher::default() }
    }

    fn len(&self) -> usize {
        self.members.len()
    }

    /// Position of the normalized member `m`.
    fn find(&self, m: MemberRef<'_>) -> Option<usize> {
        let h = hash_of(&self.hasher, m);
        let members = &self.members;
        let found = self.index.find(table_hash(h), |s| s.hash == h && same(&members[s.pos as usize], m));
        found.map(|s| s.pos as usize)
    }

    /// Adds the normalized member `m`; false if it was there.
    fn insert(&mut self, m: MemberRef<'_>) -> bool {
        let h = hash_of(&self.hasher, m);
        let members = &self.members;
        let (_, new) = self.index.find_or_insert(
            table_hash(h),
            |s| s.hash == h && same(&members[s.pos as usize], m),
            || Slot { pos: members.len() as u32, hash: h },
            |s| table_hash(s.hash),
        );
        if new {
            self.members.push(m.to_member());
        }
        new
    }

    /// Removes the normalized member `m`.
    fn remove(&mut self, m: MemberRef<'_>) -> Option<Member> {
        let h = hash_of(&self.hasher, m);
        let members = &self.members;
        let slot = self.index.remove(
            table_hash(h),
            |s| s.hash == h && same(&members[s.pos as usize], m),
            |s| table_hash(s.hash),
        )?;
        Some(self.take_out(slot.pos as usize))
    }

    /// Removes the member at position `pos` (0..len).
    fn remove_at(&mut self, pos: usize) -> Member {
        let h = hash_of(&self.hasher, self.members[pos].as_ref());
        self.index.remove(table_hash(h), |s| s.pos as usize == pos, |s| table_hash(s.hash));
        self.take_out(pos)
    }

    /// Takes the member at `pos` (already out of the index) out of the vector: the last member
    /// moves into its place, and its index entry follows.
    fn take_out(&mut self, pos: usize) -> Member {
        let last = self.members.len() - 1;
        let member = self.members.swap_remove(pos);
        if pos != last {
            let h = hash_of(&self.hasher, self.members[pos].as_ref());
            if let Some(slot) = self.index.find_mut(table_hash(h), |s| s.pos as usize == last) {
                slot.pos = pos as u32;
            }
        }
        // Memory goes back as the set shrinks: the index segment by segment, the vector chunk
        // by chunk.
        member
    }
}

// ---------------------------------------------------------------------------------------------
// Set

/// A set of byte strings (see the module's notes for the representations).
#[derive(Clone)]
pub struct Set {
    repr: Repr,
    /// Sum of the members' lengths (integers in decimal): [`Set::size`].
    bytes: usize,
}

#[derive(Clone)]
enum Repr {
    Ints(Ints),
    Pack(Pack),
    Table(Box<Table>),
}

impl Default for Set {
    fn default() -> Set {
        Set::new()
    }
}

impl Set {
    pub fn new() -> Set {
        Set { repr: Repr::Ints(Ints::I16(Vec::new())), bytes: 0 }
    }

    /// A set of `members` (duplicates count once), in the representation Redis would give it.
    pub fn from_members<'a>(members: impl IntoIterator<Item = &'a [u8]>) -> Set {
        let mut set = Set::new();
        for m in members {
            set.insert(m);
        }
        set
    }

    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(ints) => ints.len(),
            Repr::Pack(pack) => pack.len,
            Repr::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of user data held, O(1): the members' lengths, integers counted in decimal.
    pub fn size(&self) -> usize {
        self.bytes
    }

    /// OBJECT ENCODING, as Redis 7.0 names it: `intset` for up to 512 integers, `hashtable`
    /// otherwise (Redis 7.0 has no listpack sets; the packed form answers as what Redis would
    /// use).
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Ints(_) => "intset",
            Repr::Pack(_) | Repr::Table(_) => "hashtable",
        }
    }

    /// Whether `member` is in the set. (Used by the sorted-set commands, which accept sets.)
    pub fn contains(&self, member: &[u8]) -> bool {
        self.contains_ref(MemberRef::Bytes(member))
    }

    pub fn contains_ref(&self, member: MemberRef<'_>) -> bool {
        let m = member.normalize();
        match &self.repr {
            Repr::Ints(ints) => matches!(m, MemberRef::Int(n) if ints.contains(n)),
            Repr::Pack(pack) => pack.find(m).is_some(),
            Repr::Table(t) => t.find(m).is_some(),
        }
    }

    /// Adds `member`; false if it was there already.
    pub fn insert(&mut self, member: &[u8]) -> bool {
        self.insert_ref(MemberRef::Bytes(member))
    }

    pub fn insert_ref(&mut self, member: MemberRef<'_>) -> bool {
        let m = member.normalize();
        let added = match (&mut self.repr, m) {
            (Repr::Ints(ints), MemberRef::Int(n)) => {
                let added = ints.insert(n);
                if ints.len() > crate::limits::SET_INTSET_ENTRIES.get() {
                    self.convert(false);
                }
                added
            }
            (Repr::Ints(ints), MemberRef::Bytes(b)) => {
                let packable = ints.len() < PACK_MAX_ENTRIES && b.len() <= PACK_MAX_MEMBER;
                self.convert(packable);
                self.insert_absent(m);
                true
            }
            (Repr::Pack(pack), _) => {
                if pack.find(m).is_some() {
                    false
                } else {
                    if pack.len >= PACK_MAX_ENTRIES || m.len() > PACK_MAX_MEMBER {
                        self.convert(false);
                    }
                    self.insert_absent(m);
                    true
                }
            }
            (Repr::Table(t), _) => t.insert(m),
        };
        if added {
            self.bytes += m.len();
        }
        added
    }

    /// Adds a member known to be absent, to a packed set or a table.
    fn insert_absent(&mut self, m: MemberRef<'_>) {
        match &mut self.repr {
            Repr::Pack(pack) => pack.push(m),
            Repr::Table(t) => {
                t.insert(m);
            }
            Repr::Ints(_) => unreachable!("insert_absent is for packed sets and tables"),
        }
    }

    /// Converts an intset to a packed set (`packed`) or a table, or a packed set to a table.
    fn convert(&mut self, packed: bool) {
        let repr = if packed {
            let mut pack = Pack::default();
            for m in self.iter() {
                pack.push(m);
            }
            Repr::Pack(pack)
        } else {
            let mut table = Table::with_capacity(self.len() + 1);
            for m in self.iter() {
                table.insert(m.normalize());
            }
            Repr::Table(Box::new(table))
        };
        self.repr = repr;
    }

    /// Removes `member`; false if it was not there.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        self.remove_ref(MemberRef::Bytes(member))
    }

    pub fn remove_ref(&mut self, member: MemberRef<'_>) -> bool {
        let m = member.normalize();
        let removed = match &mut self.repr {
            Repr::Ints(ints) => matches!(m, MemberRef::Int(n) if ints.remove(n)),
            Repr::Pack(pack) => match pack.find(m) {
                Some(off) => {
                    pack.remove_at(off);
                    true
                }
                None => false,
            },
            Repr::Table(t) => t.remove(m).is_some(),
        };
        if removed {
            self.bytes -= m.len();
        }
        removed
    }

    /// The members, in no particular order (an intset's in ascending order).
    pub fn iter(&self) -> Iter<'_> {
        Iter(match &self.repr {
            Repr::Ints(Ints::I16(v)) => IterRepr::I16(v.iter()),
            Repr::Ints(Ints::I32(v)) => IterRepr::I32(v.iter()),
            Repr::Ints(Ints::I64(v)) => IterRepr::I64(v.iter()),
            Repr::Pack(pack) => IterRepr::Pack(pack.iter()),
            Repr::Table(t) => IterRepr::Table(t.members.iter()),
        })
    }

    /// Calls `f` with every member, in no particular order (integers in decimal). (Used by the
    /// sorted-set commands, which accept sets.)
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        for m in self.iter() {
            m.with_bytes(&mut f);
        }
    }

    /// Random access by position, for sampling.
    fn positions(&self) -> Positions<'_> {
        match &self.repr {
            Repr::Ints(ints) => Positions::Ints(ints),
            Repr::Pack(pack) => Positions::Pack(pack, pack.offsets()),
            Repr::Table(t) => Positions::Table(&t.members),
        }
    }

    /// A member chosen uniformly at random.
    pub fn random(&self) -> Option<MemberRef<'_>> {
        if self.is_empty() {
            return None;
        }
        let i = fastrand::usize(..self.len());
        Some(match &self.repr {
            Repr::Ints(ints) => MemberRef::Int(ints.get(i)),
            Repr::Pack(pack) => MemberRef::Bytes(pack.at(pack.offset(i)).0),
            Repr::Table(t) => t.members[i].as_ref(),
        })
    }

    /// Calls `f` with `count` members chosen independently and uniformly at random (so
    /// repeats are possible): SRANDMEMBER with a negative count. O(1) per member.
    pub fn random_with_repeats<'a>(&'a self, count: usize, mut f: impl FnMut(MemberRef<'a>)) {
        if self.is_empty() {
            return;
        }
        let positions = self.positions();
        for _ in 0..count {
            f(positions.get(fastrand::usize(..self.len())));
        }
    }

    /// Calls `f` with `count` distinct members chosen uniformly at random (all of them, in
    /// storage order, when `count` is at least the size): SRANDMEMBER with a positive count.
    /// O(count) for a table.
    pub fn random_distinct<'a>(&'a self, count: usize, mut f: impl FnMut(MemberRef<'a>)) {
        let len = self.len();
        if count >= len {
            self.iter().for_each(f);
            return;
        }
        let positions = self.positions();
        if count.saturating_mul(3) > len {
            // Most of the set: a partial shuffle of all positions.
            let mut order: Vec<usize> = (0..len).collect();
            for i in 0..count {
                order.swap(i, fastrand::usize(i..len));
                f(positions.get(order[i]));
            }
        } else {
            // A small part: Floyd's sampling, O(count) whatever the set's size.
            let mut chosen = hashbrown::HashSet::with_capacity_and_hasher(count, Hasher::default());
            for j in len - count..len {
                let t = fastrand::usize(..=j);
                let pick = if chosen.insert(t) { t } else { j };
                chosen.insert(pick);
                f(positions.get(pick));
            }
        }
    }

    /// Removes a member chosen uniformly at random and returns it. O(1) for a table.
    pub fn pop_random(&mut self) -> Option<Member> {
        if self.is_empty() {
            return None;
        }
        let i = fastrand::usize(..self.len());
        let member = match &mut self.repr {
            Repr::Ints(ints) => Member::Int(ints.remove_at(i)),
            Repr::Pack(pack) => {
                let off = pack.offset(i);
                let member = Member::Bytes(pack.at(off).0.into());
                pack.remove_at(off);
                member
            }
            Repr::Table(t) => t.remove_at(i),
        };
        self.bytes -= member.as_ref().len();
        Some(member)
    }

    /// SSCAN: calls `f` with about `count` members from `cursor` (0 to start) and returns the
    /// cursor to continue from, 0 when the scan is complete.
    ///
    /// An intset or a packed set is returned whole in one call, as Redis does with its small
    /// encodings. A table is walked from its last position down: the cursor is the number of
    /// positions still to visit. Adding appends at the end (the visited part), and removing
    /// moves the last member (visited) into the hole, so a member can only move from the
    /// visited part to the unvisited one, never back: **a member present for the whole scan is
    /// never missed**, though it may come twice, which SSCAN allows.
    pub fn scan<'a>(&'a self, cursor: u64, count: usize, mut f: impl FnMut(MemberRef<'a>)) -> u64 {
        let Repr::Table(t) = &self.repr else {
            self.iter().for_each(f);
            return 0;
        };
        let len = t.len();
        let mut pos = if cursor == 0 { len } else { usize::try_from(cursor).unwrap_or(usize::MAX).min(len) };
        let mut visited = 0;
        while pos > 0 && visited < count {
            pos -= 1;
            visited += 1;
            f(t.members[pos].as_ref());
        }
        pos as u64
    }
}

impl Set {
    /// The image of this set a snapshot writes, when the set is too big to encode under the
    /// shard's lock: its vector's chunks, shared (O(chunks), no member copied). A write that
    /// follows copies only the chunk it touches, while the image is alive. `None` for a set
    /// small enough to encode at once.
    pub fn freeze(&mut self) -> Option<Frozen> {
        if !self.wants_freezing() {
            return None;
        }
        let Repr::Table(t) = &mut self.repr else { return None };
        Some(Frozen(t.members.freeze()))
    }

    /// Whether [`Set::freeze`] gives an image.
    pub fn wants_freezing(&self) -> bool {
        matches!(&self.repr, Repr::Table(t) if dense::worth_freezing(t.len(), self.bytes))
    }
}

/// A frozen image of a big set (see [`Set::freeze`]), readable on any thread without a lock.
pub struct Frozen(dense::Frozen<Member>);

impl Frozen {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// Calls `f` with every member (integers in decimal), in the order [`Set::for_each`] gave.
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        for m in self.0.iter() {
            m.as_ref().with_bytes(&mut f);
        }
    }
}

/// Positional access to the members of a set, for sampling.
enum Positions<'a> {
    Ints(&'a Ints),
    Pack(&'a Pack, Vec<u16>),
    Table(&'a Dense<Member>),
}

impl<'a> Positions<'a> {
    fn get(&self, i: usize) -> MemberRef<'a> {
        match self {
            Positions::Ints(ints) => MemberRef::Int(ints.get(i)),
            Positions::Pack(pack, offsets) => MemberRef::Bytes(pack.at(usize::from(offsets[i])).0),
            Positions::Table(members) => members[i].as_ref(),
        }
    }
}

/// Iterator over the members of a [`Set`].
pub struct Iter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    I16(std::slice::Iter<'a, i16>),
    I32(std::slice::Iter<'a, i32>),
    I64(std::slice::Iter<'a, i64>),
    Pack(PackIter<'a>),
    Table(dense::Iter<'a, Member>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = MemberRef<'a>;

    fn next(&mut self) -> Option<MemberRef<'a>> {
        match &mut self.0 {
            IterRepr::I16(it) => it.next().map(|&n| MemberRef::Int(n.into())),
            IterRepr::I32(it) => it.next().map(|&n| MemberRef::Int(n.into())),
            IterRepr::I64(it) => it.next().map(|&n| MemberRef::Int(n)),
            IterRepr::Pack(it) => it.next().map(MemberRef::Bytes),
            IterRepr::Table(it) => it.next().map(Member::as_ref),
        }
    }
}

impl<'a> FromIterator<&'a [u8]> for Set {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(members: I) -> Set {
        Set::from_members(members)
    }
}

impl<'a> FromIterator<MemberRef<'a>> for Set {
    fn from_iter<I: IntoIterator<Item = MemberRef<'a>>>(members: I) -> Set {
        let mut set = Set::new();
        for m in members {
            set.insert_ref(m);
        }
        set
    }
}

/// Sets are equal when they hold the same members, whatever their representations.
impl PartialEq for Set {
    fn eq(&self, other: &Set) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains_ref(m))
    }
}

impl fmt::Debug for Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let repr = match self.repr {
            Repr::Ints(_) => "Set(intset)",
            Repr::Pack(_) => "Set(packed)",
            Repr::Table(_) => "Set(table)",
        };
        f.write_str(repr)?;
        f.debug_set().entries(self.iter().map(|m| m.with_bytes(|b| String::from_utf8_lossy(b).into_owned()))).finish()
    }
}

#[cfg(test)]
mod tests;
