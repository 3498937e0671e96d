//! An order-statistic B+tree of (score, id) entries: the order of a big sorted set.
//!
//! Entries are sorted by (score, member), where the member of id `i` is `members.member(i)`
//! (the set's dense vector of members): leaves hold scores and ids side by side (12 bytes per
//! entry), so a search compares scores in the leaf and reads a member only to break a tie.
//! Inner nodes keep, for each child, the number of entries below it (for ranks) and its
//! smallest entry (for searches). Every reference to an id sits on the path from the root to
//! its leaf, so when the set moves a member to another id, [`Tree::relocate`] fixes them all in
//! one descent.
//!
//! Nodes are owned (`Box`/`Vec`), so the tree needs no `unsafe`; walks keep a stack of the
//! inner nodes above the current leaf.

use std::ops::Range;

/// Where the members of the ids live.
pub(super) trait Members {
    fn member(&self, id: u32) -> &[u8];
}

/// Entries per leaf: 127 scores and ids fill a 1536-byte allocation to within 8 bytes.
const LEAF_CAP: usize = 127;
const LEAF_MIN: usize = LEAF_CAP / 3;
/// Children per inner node.
const FANOUT: usize = 64;
const INNER_MIN: usize = FANOUT / 3;
/// Deep enough for 2^32 entries even with every node at its minimum size.
const MAX_DEPTH: usize = 12;

#[derive(Clone)]
struct Leaf {
    len: u16,
    scores: [f64; LEAF_CAP],
    ids: [u32; LEAF_CAP],
}

#[derive(Clone)]
struct Child {
    node: Node,
    /// Entries in `node`'s subtree.
    count: u32,
    /// `node`'s smallest entry.
    score: f64,
    id: u32,
}

#[derive(Clone)]
enum Node {
    Leaf(Box<Leaf>),
    Inner(Vec<Child>),
}

#[derive(Clone)]
pub(super) struct Tree {
    root: Node,
    len: usize,
}

/// Whether entry (s, id) sorts before (score, member).
#[cfg(test)]
fn entry_less<M: Members + ?Sized>(ms: &M, s: f64, id: u32, score: f64, member: &[u8]) -> bool {
    s < score || (s == score && ms.member(id) < member)
}

/// Whether entry (s, id) sorts before or at (score, member).
#[inline]
fn entry_le<M: Members + ?Sized>(ms: &M, s: f64, id: u32, score: f64, member: &[u8]) -> bool {
    s < score || (s == score && ms.member(id) <= member)
}

impl Leaf {
    fn new() -> Box<Leaf> {
        Box::new(Leaf { len: 0, scores: [0.0; LEAF_CAP], ids: [0; LEAF_CAP] })
    }

    fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// How many entries sort before (score, member).
    fn position<M: Members + ?Sized>(&self, ms: &M, score: f64, member: &[u8]) -> usize {
        let n = self.len();
        let (scores, ids) = (&self.scores[..n], &self.ids[..n]);
        // Scores alone settle most of the search; members are read only among equal scores.
        let lo = scores.partition_point(|&s| s < score);
        let hi = lo + scores[lo..].partition_point(|&s| s <= score);
        lo + ids[lo..hi].partition_point(|&id| ms.member(id) < member)
    }

    fn insert_at(&mut self, pos: usize, score: f64, id: u32) {
        let n = self.len();
        self.scores.copy_within(pos..n, pos + 1);
        self.ids.copy_within(pos..n, pos + 1);
        self.scores[pos] = score;
        self.ids[pos] = id;
        self.len += 1;
    }

    fn remove_at(&mut self, pos: usize) -> u32 {
        let n = self.len();
        let id = self.ids[pos];
        self.scores.copy_within(pos + 1..n, pos);
        self.ids.copy_within(pos + 1..n, pos);
        self.len -= 1;
        id
    }

    /// Moves entries `from..` to the end of `to`.
    fn move_tail(&mut self, from: usize, to: &mut Leaf) {
        let (n, m) = (self.len(), to.len());
        let k = n - from;
        to.scores[m..m + k].copy_from_slice(&self.scores[from..n]);
        to.ids[m..m + k].copy_from_slice(&self.ids[from..n]);
        to.len += k as u16;
        self.len = from as u16;
    }

    /// Moves the first `k` entries to the end of `to`.
    fn move_head(&mut self, k: usize, to: &mut Leaf) {
        let (n, m) = (self.len(), to.len());
        to.scores[m..m + k].copy_from_slice(&self.scores[..k]);
        to.ids[m..m + k].copy_from_slice(&self.ids[..k]);
        to.len += k as u16;
        self.scores.copy_within(k..n, 0);
        self.ids.copy_within(k..n, 0);
        self.len -= k as u16;
    }

    /// Moves the last `k` entries to the front of `to`.
    fn move_last_to_front(&mut self, k: usize, to: &mut Leaf) {
        let (n, m) = (self.len(), to.len());
        to.scores.copy_within(0..m, k);
        to.ids.copy_within(0..m, k);
        to.scores[..k].copy_from_slice(&self.scores[n - k..n]);
        to.ids[..k].copy_from_slice(&self.ids[n - k..n]);
        to.len += k as u16;
        self.len -= k as u16;
    }
}

impl Node {
    /// The smallest entry (the node is not empty).
    fn first(&self) -> (f64, u32) {
        match self {
            Node::Leaf(l) => (l.scores[0], l.ids[0]),
            Node::Inner(kids) => (kids[0].score, kids[0].id),
        }
    }

    /// Entries (leaf) or children (inner).
    fn width(&self) -> usize {
        match self {
            Node::Leaf(l) => l.len(),
            Node::Inner(kids) => kids.len(),
        }
    }

    fn min_width(&self) -> usize {
        match self {
            Node::Leaf(_) => LEAF_MIN,
            Node::Inner(_) => INNER_MIN,
        }
    }

    fn cap(&self) -> usize {
        match self {
            Node::Leaf(_) => LEAF_CAP,
            Node::Inner(_) => FANOUT,
        }
    }
}

impl Child {
    fn new(node: Node, count: u32) -> Child {
        let (score, id) = node.first();
        Child { node, count, score, id }
    }

    fn refresh_first(&mut self) {
        (self.score, self.id) = self.node.first();
    }
}

/// The child of an inner node whose subtree holds (or would hold) (score, member): the last
/// one whose smallest entry is at or before it (or the first).
#[inline]
fn child_for<M: Members + ?Sized>(kids: &[Child], ms: &M, score: f64, member: &[u8]) -> usize {
    kids.partition_point(|k| entry_le(ms, k.score, k.id, score, member)).saturating_sub(1)
}

impl Default for Tree {
    fn default() -> Tree {
        Tree { root: Node::Leaf(Leaf::new()), len: 0 }
    }
}

impl Tree {
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// A tree of entries already in order, with leaves and nodes filled evenly.
    pub(super) fn from_sorted(entries: impl ExactSizeIterator<Item = (f64, u32)>) -> Tree {
        let n = entries.len();
        if n <= LEAF_CAP {
            let mut leaf = Leaf::new();
            for (i, (s, id)) in entries.enumerate() {
                leaf.scores[i] = s;
                leaf.ids[i] = id;
            }
            leaf.len = n as u16;
            return Tree { root: Node::Leaf(leaf), len: n };
        }
        let mut level: Vec<Child> = Vec::with_capacity(n.div_ceil(LEAF_CAP));
        let mut entries = entries;
        for size in even_parts(n, LEAF_CAP) {
            let mut leaf = Leaf::new();
            for (i, (s, id)) in entries.by_ref().take(size).enumerate() {
                leaf.scores[i] = s;
                leaf.ids[i] = id;
            }
            leaf.len = size as u16;
            level.push(Child::new(Node::Leaf(leaf), size as u32));
        }
        while level.len() > 1 {
            let mut kids = level.into_iter();
            let mut up = Vec::new();
            for size in even_parts(kids.len(), FANOUT) {
                let group: Vec<Child> = kids.by_ref().take(size).collect();
                let count = group.iter().map(|k| k.count).sum();
                up.push(Child::new(Node::Inner(group), count));
            }
            level = up;
        }
        let root = level.pop().map_or_else(|| Node::Leaf(Leaf::new()), |c| c.node);
        Tree { root, len: n }
    }

    /// Adds entry (score, id) whose member `ms.member(id)` is `member` (not in the tree yet).
    pub(super) fn insert<M: Members + ?Sized>(&mut self, ms: &M, score: f64, member: &[u8], id: u32) {
        if let Some(right) = insert_into(&mut self.root, ms, score, member, id) {
            let left = std::mem::replace(&mut self.root, Node::Inner(Vec::new()));
            let left_count = (self.len + 1) as u32 - right.count;
            self.root = Node::Inner(vec![Child::new(left, left_count), right]);
        }
        self.len += 1;
    }

    /// Removes the entry (score, member), returning its id.
    pub(super) fn remove<M: Members + ?Sized>(&mut self, ms: &M, score: f64, member: &[u8]) -> Option<u32> {
        self.remove_target(ms, Target::Key(score, member)).map(|(_, id)| id)
    }

    /// Removes the entry at `rank`, returning it: a descent by counts, with no comparison.
    pub(super) fn remove_rank<M: Members + ?Sized>(&mut self, ms: &M, rank: usize) -> Option<(f64, u32)> {
        if rank >= self.len {
            return None;
        }
        self.remove_target(ms, Target::Rank(rank))
    }

    fn remove_target<M: Members + ?Sized>(&mut self, ms: &M, target: Target<'_>) -> Option<(f64, u32)> {
        let removed = remove_from(&mut self.root, ms, target)?;
        self.len -= 1;
        while let Node::Inner(kids) = &mut self.root
            && kids.len() == 1
        {
            let only = kids.pop().map(|c| c.node);
            if let Some(node) = only {
                self.root = node;
            }
        }
        Some(removed)
    }

    /// Rewrites the id of entry (score, member) from `old` to `new` (the member moved).
    pub(super) fn relocate<M: Members + ?Sized>(&mut self, ms: &M, score: f64, member: &[u8], old: u32, new: u32) {
        let mut node = &mut self.root;
        loop {
            match node {
                Node::Inner(kids) => {
                    let i = child_for(kids, ms, score, member);
                    if kids[i].id == old {
                        kids[i].id = new;
                    }
                    node = &mut kids[i].node;
                }
                Node::Leaf(leaf) => {
                    let pos = leaf.position(ms, score, member);
                    debug_assert!(pos < leaf.len() && leaf.ids[pos] == old);
                    if pos < leaf.len() {
                        leaf.ids[pos] = new;
                    }
                    return;
                }
            }
        }
    }

    /// How many entries satisfy `pred`, which must hold for a prefix of the order and not
    /// after it (e.g. "sorts before x", "score below y"): the rank where it turns false.
    pub(super) fn count_while(&self, mut pred: impl FnMut(f64, u32) -> bool) -> usize {
        let mut node = &self.root;
        let mut below = 0;
        loop {
            match node {
                Node::Leaf(leaf) => {
                    let (mut lo, mut hi) = (0, leaf.len());
                    while lo < hi {
                        let mid = (lo + hi) / 2;
                        if pred(leaf.scores[mid], leaf.ids[mid]) {
                            lo = mid + 1;
                        } else {
                            hi = mid;
                        }
                    }
                    return below + lo;
                }
                Node::Inner(kids) => {
                    let i = kids.partition_point(|k| pred(k.score, k.id));
                    if i == 0 {
                        return below;
                    }
                    below += kids[..i - 1].iter().map(|k| k.count as usize).sum::<usize>();
                    node = &kids[i - 1].node;
                }
            }
        }
    }

    /// A walk from `rank` towards the highest entries, or with `rev` towards the lowest.
    pub(super) fn iter_from(&self, rank: usize, rev: bool) -> Iter<'_> {
        let mut it = Iter { stack: [None; MAX_DEPTH], depth: 0, leaf: None, slot: 0, rev };
        if rank >= self.len {
            return it;
        }
        let mut r = rank;
        let mut node = &self.root;
        loop {
            match node {
                Node::Inner(kids) => {
                    let mut i = 0;
                    while r >= kids[i].count as usize {
                        r -= kids[i].count as usize;
                        i += 1;
                    }
                    it.stack[it.depth] = Some((kids, i));
                    it.depth += 1;
                    node = &kids[i].node;
                }
                Node::Leaf(leaf) => {
                    it.leaf = Some(leaf);
                    it.slot = r;
                    return it;
                }
            }
        }
    }

    /// Checks the invariants (for tests): counts, smallest entries, order, node sizes.
    #[cfg(test)]
    pub(super) fn check<M: Members + ?Sized>(&self, ms: &M) {
        fn walk(node: &Node, root: bool, out: &mut Vec<(f64, u32)>) -> usize {
            match node {
                Node::Leaf(l) => {
                    assert!(root || l.len() >= 1);
                    out.extend((0..l.len()).map(|i| (l.scores[i], l.ids[i])));
                    l.len()
                }
                Node::Inner(kids) => {
                    assert!(kids.len() >= 2 || !root && !kids.is_empty(), "inner node with {} kids", kids.len());
                    let mut total = 0;
                    for k in kids {
                        let n = walk(&k.node, false, out);
                        assert_eq!(n, k.count as usize);
                        assert_eq!(k.node.first().1, k.id);
                        assert_eq!(k.node.first().0.to_bits(), k.score.to_bits());
                        total += n;
                    }
                    total
                }
            }
        }
        let mut all = Vec::new();
        assert_eq!(walk(&self.root, true, &mut all), self.len);
        for w in all.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert!(entry_less(ms, a.0, a.1, b.0, ms.member(b.1)), "out of order");
        }
    }

    /// Bytes allocated for the nodes (for memory tests).
    #[cfg(test)]
    pub(super) fn node_bytes(&self) -> usize {
        fn walk(node: &Node) -> usize {
            match node {
                Node::Leaf(_) => std::mem::size_of::<Leaf>(),
                Node::Inner(kids) => {
                    kids.capacity() * std::mem::size_of::<Child>() + kids.iter().map(|k| walk(&k.node)).sum::<usize>()
                }
            }
        }
        walk(&self.root)
    }
}

/// Sizes of `parts` as even as possible, each at most `cap`, adding up to `n`.
fn even_parts(n: usize, cap: usize) -> impl Iterator<Item = usize> {
    let parts = n.div_ceil(cap).max(1);
    (0..parts).map(move |i| n / parts + usize::from(i < n % parts))
}

/// Inserts into the subtree of `node`; returns the new right sibling if `node` split.
fn insert_into<M: Members + ?Sized>(node: &mut Node, ms: &M, score: f64, member: &[u8], id: u32) -> Option<Child> {
    match node {
        Node::Leaf(leaf) => {
            let pos = leaf.position(ms, score, member);
            if leaf.len() < LEAF_CAP {
                leaf.insert_at(pos, score, id);
                return None;
            }
            // Split. Entries arriving in order (at either end) leave the old leaf full, so a
            // set built in score order has full leaves; otherwise each half gets half.
            let keep = match pos {
                LEAF_CAP => LEAF_CAP,
                0 => 1,
                _ => LEAF_CAP.div_ceil(2),
            };
            let mut right = Leaf::new();
            if pos < keep {
                leaf.move_tail(keep - 1, &mut right);
                leaf.insert_at(pos, score, id);
            } else {
                leaf.move_tail(keep, &mut right);
                right.insert_at(pos - keep, score, id);
            }
            let count = right.len() as u32;
            Some(Child::new(Node::Leaf(right), count))
        }
        Node::Inner(kids) => {
            let i = child_for(kids, ms, score, member);
            let split = insert_into(&mut kids[i].node, ms, score, member, id);
            kids[i].count += 1;
            kids[i].refresh_first();
            let right = split?;
            kids[i].count -= right.count;
            kids.insert(i + 1, right);
            if kids.len() <= FANOUT {
                return None;
            }
            let keep = if i + 1 == FANOUT { FANOUT } else { FANOUT.div_ceil(2) };
            let moved = kids.split_off(keep);
            let count = moved.iter().map(|k| k.count).sum();
            Some(Child::new(Node::Inner(moved), count))
        }
    }
}

/// What to remove: an entry by its key, or the entry at a rank within the subtree.
#[derive(Clone, Copy)]
enum Target<'k> {
    Key(f64, &'k [u8]),
    Rank(usize),
}

/// Removes `target` from the subtree of `node`, returning its score and id.
fn remove_from<M: Members + ?Sized>(node: &mut Node, ms: &M, target: Target<'_>) -> Option<(f64, u32)> {
    match node {
        Node::Leaf(leaf) => {
            let pos = match target {
                Target::Key(score, member) => {
                    let pos = leaf.position(ms, score, member);
                    let found = pos < leaf.len() && leaf.scores[pos] == score && ms.member(leaf.ids[pos]) == member;
                    found.then_some(pos)?
                }
                Target::Rank(r) => r,
            };
            let score = leaf.scores[pos];
            Some((score, leaf.remove_at(pos)))
        }
        Node::Inner(kids) => {
            let (i, inner) = match target {
                Target::Key(score, member) => (child_for(kids, ms, score, member), target),
                Target::Rank(mut r) => {
                    let mut i = 0;
                    while r >= kids[i].count as usize {
                        r -= kids[i].count as usize;
                        i += 1;
                    }
                    (i, Target::Rank(r))
                }
            };
            let removed = remove_from(&mut kids[i].node, ms, inner)?;
            kids[i].count -= 1;
            if kids[i].count > 0 {
                kids[i].refresh_first();
            }
            rebalance(kids, i);
            Some(removed)
        }
    }
}

/// After a removal below `kids[i]`: merges it with a sibling or takes entries from one when it
/// has become too small, so nodes stay at least a third full and the tree shallow.
fn rebalance(kids: &mut Vec<Child>, i: usize) {
    if kids[i].count == 0 {
        kids.remove(i);
        return;
    }
    if kids[i].node.width() >= kids[i].node.min_width() || kids.len() < 2 {
        return;
    }
    let (a, b) = if i + 1 < kids.len() { (i, i + 1) } else { (i - 1, i) };
    let (left, right) = kids.split_at_mut(b);
    let (l, r) = (&mut left[a], &mut right[0]);
    let (lw, rw) = (l.node.width(), r.node.width());
    if lw + rw <= l.node.cap() {
        // Merge the right one into the left one.
        match (&mut l.node, &mut r.node) {
            (Node::Leaf(x), Node::Leaf(y)) => y.move_tail(0, x),
            (Node::Inner(x), Node::Inner(y)) => x.append(y),
            _ => unreachable!("siblings are at the same depth"),
        }
        l.count += r.count;
        kids.remove(b);
        return;
    }
    // Share evenly.
    let target = (lw + rw) / 2;
    let moved: u32 = match (&mut l.node, &mut r.node) {
        (Node::Leaf(x), Node::Leaf(y)) => {
            if lw < target {
                y.move_head(target - lw, x);
                (target - lw) as u32
            } else {
                x.move_last_to_front(lw - target, y);
                (lw - target) as u32
            }
        }
        (Node::Inner(x), Node::Inner(y)) => {
            if lw < target {
                let head: Vec<Child> = y.drain(..target - lw).collect();
                let c = head.iter().map(|k| k.count).sum();
                x.extend(head);
                c
            } else {
                let tail: Vec<Child> = x.drain(target..).collect();
                let c = tail.iter().map(|k| k.count).sum();
                y.splice(0..0, tail);
                c
            }
        }
        _ => unreachable!("siblings are at the same depth"),
    };
    if lw < target {
        l.count += moved;
        r.count -= moved;
    } else {
        l.count -= moved;
        r.count += moved;
    }
    l.refresh_first();
    r.refresh_first();
}

/// A walk over a tree's entries; see [`Tree::iter_from`].
pub(super) struct Iter<'a> {
    /// The inner nodes above the current leaf, with the child taken in each.
    stack: [Option<(&'a [Child], usize)>; MAX_DEPTH],
    depth: usize,
    /// `None` once the walk is over.
    leaf: Option<&'a Leaf>,
    slot: usize,
    rev: bool,
}

impl Iter<'_> {
    /// Moves to the next leaf in the walk's direction.
    fn next_leaf(&mut self) {
        while self.depth > 0 {
            let Some((kids, i)) = self.stack[self.depth - 1] else { break };
            let next = if self.rev { i.checked_sub(1) } else { Some(i + 1).filter(|&j| j < kids.len()) };
            let Some(j) = next else {
                self.depth -= 1;
                continue;
            };
            self.stack[self.depth - 1] = Some((kids, j));
            let mut node = &kids[j].node;
            loop {
                match node {
                    Node::Inner(k) => {
                        let at = if self.rev { k.len() - 1 } else { 0 };
                        self.stack[self.depth] = Some((k, at));
                        self.depth += 1;
                        node = &k[at].node;
                    }
                    Node::Leaf(l) => {
                        self.leaf = Some(l);
                        self.slot = if self.rev { l.len() - 1 } else { 0 };
                        return;
                    }
                }
            }
        }
        self.leaf = None;
    }
}

impl Iterator for Iter<'_> {
    type Item = (f64, u32);

    #[inline]
    fn next(&mut self) -> Option<(f64, u32)> {
        let leaf = self.leaf?;
        let item = (leaf.scores[self.slot], leaf.ids[self.slot]);
        if self.rev {
            if self.slot > 0 {
                self.slot -= 1;
            } else {
                self.next_leaf();
            }
        } else if self.slot + 1 < leaf.len() {
            self.slot += 1;
        } else {
            self.next_leaf();
        }
        Some(item)
    }
}

/// The ranks of the entries for which `above` turns false and `below` stays true: both must
/// be monotone (see [`Tree::count_while`]).
pub(super) fn span(
    tree: &Tree,
    not_above: impl FnMut(f64, u32) -> bool,
    below: impl FnMut(f64, u32) -> bool,
) -> Range<usize> {
    let lo = tree.count_while(not_above);
    let hi = tree.count_while(below);
    lo..hi.max(lo)
}
