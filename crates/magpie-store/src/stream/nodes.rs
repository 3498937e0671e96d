//! A stream's nodes by master ID: a sorted vector while there are few, a B-tree beyond.
//!
//! A `BTreeMap`'s first leaf has room for eleven nodes: 452 bytes (a 512-byte block), where a
//! stream of a few hundred entries has three or four nodes. That leaf made a stream of 100
//! entries 1% bigger than Redis's (whose radix tree takes about 40 bytes a key). Up to
//! [`FEW`] nodes live in a sorted `Vec` of 40-byte pairs (160 bytes for four); past that, in a
//! `BTreeMap`, so a stream of millions of entries never copies its whole node table when it
//! grows, and inserts and removals stay O(log n). A tree that shrinks to half of [`FEW`] goes
//! back to a vector.

use std::collections::BTreeMap;
use std::collections::btree_map;

use super::StreamId;
use crate::encoding::listpack::Listpack;

/// Most nodes kept in the vector.
const FEW: usize = 8;

#[derive(Clone, Debug)]
pub(super) enum Nodes {
    Few(Vec<(StreamId, Listpack)>),
    Many(BTreeMap<StreamId, Listpack>),
}

impl Default for Nodes {
    fn default() -> Nodes {
        Nodes::Few(Vec::new())
    }
}

impl PartialEq for Nodes {
    fn eq(&self, other: &Nodes) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// The nodes in order, either way (a `BTreeMap` range's items).
pub(super) enum Iter<'a> {
    Few(std::slice::Iter<'a, (StreamId, Listpack)>),
    Many(btree_map::Range<'a, StreamId, Listpack>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a StreamId, &'a Listpack);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Few(it) => it.next().map(|(k, v)| (k, v)),
            Iter::Many(it) => it.next(),
        }
    }
}

impl DoubleEndedIterator for Iter<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Few(it) => it.next_back().map(|(k, v)| (k, v)),
            Iter::Many(it) => it.next_back(),
        }
    }
}

impl Nodes {
    pub(super) fn len(&self) -> usize {
        match self {
            Nodes::Few(v) => v.len(),
            Nodes::Many(m) => m.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index in the vector of the first node whose master ID is not below `id`.
    fn lower_bound(v: &[(StreamId, Listpack)], id: &StreamId) -> usize {
        v.partition_point(|(k, _)| k < id)
    }

    pub(super) fn iter(&self) -> Iter<'_> {
        match self {
            Nodes::Few(v) => Iter::Few(v.iter()),
            Nodes::Many(m) => Iter::Many(m.range(..)),
        }
    }

    /// The nodes from master ID `id` on.
    pub(super) fn starting_at(&self, id: StreamId) -> Iter<'_> {
        match self {
            Nodes::Few(v) => Iter::Few(v[Nodes::lower_bound(v, &id)..].iter()),
            Nodes::Many(m) => Iter::Many(m.range(id..)),
        }
    }

    /// The nodes up to master ID `id`, included.
    pub(super) fn up_to(&self, id: StreamId) -> Iter<'_> {
        match self {
            Nodes::Few(v) => Iter::Few(v[..v.partition_point(|(k, _)| *k <= id)].iter()),
            Nodes::Many(m) => Iter::Many(m.range(..=id)),
        }
    }

    /// The node that may hold `id`: the last whose master ID is not after it.
    pub(super) fn holding(&self, id: StreamId) -> Option<(&StreamId, &Listpack)> {
        self.up_to(id).next_back()
    }

    pub(super) fn first(&self) -> Option<(&StreamId, &Listpack)> {
        self.iter().next()
    }

    pub(super) fn last_mut(&mut self) -> Option<(&StreamId, &mut Listpack)> {
        match self {
            Nodes::Few(v) => v.last_mut().map(|(k, v)| (&*k, v)),
            Nodes::Many(m) => m.iter_mut().next_back(),
        }
    }

    pub(super) fn contains(&self, id: &StreamId) -> bool {
        self.get(id).is_some()
    }

    pub(super) fn get(&self, id: &StreamId) -> Option<&Listpack> {
        match self {
            Nodes::Few(v) => v.get(Nodes::lower_bound(v, id)).filter(|(k, _)| k == id).map(|(_, lp)| lp),
            Nodes::Many(m) => m.get(id),
        }
    }

    pub(super) fn get_mut(&mut self, id: &StreamId) -> Option<&mut Listpack> {
        match self {
            Nodes::Few(v) => {
                let at = Nodes::lower_bound(v, id);
                v.get_mut(at).filter(|(k, _)| k == id).map(|(_, lp)| lp)
            }
            Nodes::Many(m) => m.get_mut(id),
        }
    }

    /// Adds a node; a node already at `id` is replaced and returned, as a map's `insert`.
    pub(super) fn insert(&mut self, id: StreamId, lp: Listpack) -> Option<Listpack> {
        match self {
            Nodes::Few(v) => {
                let at = Nodes::lower_bound(v, &id);
                if let Some((k, old)) = v.get_mut(at)
                    && *k == id
                {
                    return Some(std::mem::replace(old, lp));
                }
                v.insert(at, (id, lp));
                if v.len() > FEW {
                    *self = Nodes::Many(std::mem::take(v).into_iter().collect());
                }
                None
            }
            Nodes::Many(m) => m.insert(id, lp),
        }
    }

    pub(super) fn remove(&mut self, id: &StreamId) -> Option<Listpack> {
        match self {
            Nodes::Few(v) => {
                let at = Nodes::lower_bound(v, id);
                let found = v.get(at).is_some_and(|(k, _)| k == id);
                found.then(|| v.remove(at).1)
            }
            Nodes::Many(m) => {
                let lp = m.remove(id);
                if m.len() <= FEW / 2 {
                    *self = Nodes::Few(std::mem::take(m).into_iter().collect());
                }
                lp
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64) -> StreamId {
        StreamId { ms, seq: 0 }
    }

    fn keys(it: Iter<'_>) -> Vec<u64> {
        it.map(|(k, _)| k.ms).collect()
    }

    /// Both forms answer as a `BTreeMap` does, through growth past [`FEW`] and back.
    #[test]
    fn nodes_agree_with_a_map_in_both_forms() {
        let mut rng = fastrand::Rng::with_seed(5);
        let mut nodes = Nodes::default();
        let mut model: BTreeMap<StreamId, Listpack> = BTreeMap::new();
        let (mut saw_few, mut saw_many) = (false, false);
        for step in 0..20_000i64 {
            let k = id(rng.u64(..40));
            match rng.u8(..10) {
                0..4 => {
                    let mut lp = Listpack::new();
                    lp.push_int(step).expect("a small listpack");
                    assert_eq!(nodes.insert(k, lp.clone()).is_some(), model.insert(k, lp).is_some());
                }
                4..8 => assert_eq!(nodes.remove(&k), model.remove(&k)),
                _ => {
                    if let Some(lp) = nodes.get_mut(&k) {
                        lp.push_int(-1).expect("a small listpack");
                    }
                    if let Some(lp) = model.get_mut(&k) {
                        lp.push_int(-1).expect("a small listpack");
                    }
                }
            }
            match &nodes {
                Nodes::Few(v) => {
                    saw_few = true;
                    assert!(v.len() <= FEW);
                }
                Nodes::Many(m) => {
                    saw_many = true;
                    assert!(m.len() > FEW / 2);
                }
            }
            assert_eq!(nodes.len(), model.len());
            assert!(nodes.iter().eq(model.iter()));
            assert_eq!(nodes.get(&k), model.get(&k));
            assert_eq!(nodes.contains(&k), model.contains_key(&k));
            assert_eq!(keys(nodes.starting_at(k)), model.range(k..).map(|(k, _)| k.ms).collect::<Vec<_>>());
            assert_eq!(keys(nodes.up_to(k)), model.range(..=k).map(|(k, _)| k.ms).collect::<Vec<_>>());
            assert_eq!(nodes.holding(k), model.range(..=k).next_back());
            assert_eq!(nodes.first(), model.iter().next());
            assert_eq!(nodes.last_mut().map(|(k, _)| *k), model.keys().next_back().copied());
            assert_eq!(nodes.iter().rev().map(|(k, _)| k.ms).collect::<Vec<_>>(), {
                let mut v = keys(nodes.iter());
                v.reverse();
                v
            });
        }
        assert!(saw_few && saw_many);
    }
}
