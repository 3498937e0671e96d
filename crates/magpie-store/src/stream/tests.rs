use std::collections::BTreeMap;

use super::*;

fn id(ms: u64, seq: u64) -> StreamId {
    StreamId::new(ms, seq)
}

/// Field-value pairs as owned strings.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn add(s: &mut Stream, new: NewId, pairs: &[(&str, &str)]) -> Result<StreamId, AddError> {
    add_with(s, new, pairs, NodeLimits::default())
}

fn add_with(s: &mut Stream, new: NewId, pairs: &[(&str, &str)], limits: NodeLimits) -> Result<StreamId, AddError> {
    let args: Vec<&[u8]> = pairs.iter().flat_map(|(f, v)| [f.as_bytes(), v.as_bytes()]).collect();
    s.add(new, args.iter().copied(), pairs.len(), limits, 1000)
}

fn pairs_of(e: &StreamEntry<'_>) -> Pairs {
    e.fields().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()
}

fn all(s: &Stream, rev: bool) -> Vec<(StreamId, Pairs)> {
    s.range(StreamId::MIN, StreamId::MAX, rev).map(|e| (e.id, pairs_of(&e))).collect()
}

/// Every invariant the commands rely on: the counters match the nodes, the size is the
/// nodes' bytes, each node's master entry counts its entries, entries ascend.
fn check(s: &Stream) {
    let mut live = 0u64;
    let bytes: usize = s
        .range(StreamId::MIN, StreamId::MAX, false)
        .flat_map(|e| e.fields().map(|(f, v)| f.to_vec().len() + v.to_vec().len()).collect::<Vec<_>>())
        .sum();
    let mut last = None;
    for (master_id, lp) in s.nodes() {
        node::validate(lp.as_bytes()).expect("a sound node");
        let m = node::master(lp).expect("a master entry");
        let (mut l, mut d) = (0, 0);
        let mut at = m.first_entry;
        while at < lp.end() {
            let raw = node::entry(lp, &m, master_id, at).expect("an entry");
            assert!(raw.id >= master_id);
            assert!(last < Some(raw.id), "entries ascend");
            last = Some(raw.id);
            if raw.deleted() {
                d += 1;
            } else {
                l += 1;
            }
            at = raw.next;
        }
        assert_eq!((m.live, m.deleted), (l, d), "master counters of {master_id}");
        assert!(l > 0 || d > 0);
        live += l as u64;
    }
    assert_eq!(s.len(), live);
    assert_eq!(s.size(), bytes);
    if let Some(first) = s.range(StreamId::MIN, StreamId::MAX, false).next() {
        assert_eq!(s.meta().first_id, first.id);
    } else {
        assert_eq!(s.meta().first_id, StreamId::MIN);
    }
}

#[test]
fn ids_order_format_and_step_as_redis() {
    assert!(id(1, u64::MAX) < id(2, 0));
    assert_eq!(id(1, u64::MAX).next(), Some(id(2, 0)));
    assert_eq!(StreamId::MAX.next(), None);
    assert_eq!(id(2, 0).prev(), Some(id(1, u64::MAX)));
    assert_eq!(StreamId::MIN.prev(), None);
    let mut buf = IdBuf::default();
    assert_eq!(StreamId::MAX.format(&mut buf), b"18446744073709551615-18446744073709551615");
    assert_eq!(id(0, 0).format(&mut buf), b"0-0");
    assert_eq!(StreamId::from_bytes(id(5, 7).to_bytes()), id(5, 7));
    assert_eq!(id(1, 2).to_string(), "1-2");
}

#[test]
fn xadd_chooses_ids_as_redis() {
    let mut s = Stream::new();
    assert_eq!(add(&mut s, NewId::Auto, &[("f", "v")]), Ok(id(1000, 0)));
    assert_eq!(add(&mut s, NewId::Auto, &[("f", "v")]), Ok(id(1000, 1)));
    assert_eq!(add(&mut s, NewId::Ms(1000), &[("f", "v")]), Ok(id(1000, 2)));
    assert_eq!(add(&mut s, NewId::Ms(999), &[("f", "v")]), Err(AddError::IdTooSmall));
    assert_eq!(add(&mut s, NewId::Ms(2000), &[("f", "v")]), Ok(id(2000, 0)));
    assert_eq!(add(&mut s, NewId::Exact(id(2000, 0)), &[("f", "v")]), Err(AddError::IdTooSmall));
    assert_eq!(add(&mut s, NewId::Exact(id(2000, u64::MAX)), &[("f", "v")]), Ok(id(2000, u64::MAX)));
    assert_eq!(add(&mut s, NewId::Ms(2000), &[("f", "v")]), Err(AddError::TooLarge), "as Redis says");
    // The clock is behind the last ID: the last ID plus one.
    assert_eq!(add(&mut s, NewId::Auto, &[("f", "v")]), Ok(id(2001, 0)));
    assert_eq!(s.len(), 6);
    assert_eq!(s.meta().entries_added, 6);
    check(&s);
}

#[test]
fn nodes_split_at_the_entry_and_byte_limits() {
    let mut s = Stream::new();
    for i in 1..=250 {
        add(&mut s, NewId::Exact(id(i, 0)), &[("f", "v")]).unwrap();
    }
    assert_eq!(s.node_count(), 3, "100 entries a node");
    let masters: Vec<StreamId> = s.nodes().map(|(k, _)| k).collect();
    assert_eq!(masters, vec![id(1, 0), id(101, 0), id(201, 0)]);
    // Closed nodes give back what they reserved.
    let lps: Vec<&Listpack> = s.nodes().map(|(_, lp)| lp).collect();
    assert_eq!(lps[0].capacity(), lps[0].bytes());
    check(&s);

    let mut s = Stream::new();
    let big = "x".repeat(1000);
    for i in 1..=10 {
        add(&mut s, NewId::Exact(id(i, 0)), &[("f", &big)]).unwrap();
    }
    // A node takes entries while its bytes plus the new entry's fields stay under 4096: four
    // of about 1010 bytes.
    assert_eq!(s.node_count(), 3);
    check(&s);
    let limits = NodeLimits { max_bytes: 0, max_entries: 0 };
    let mut s = Stream::new();
    for i in 1..=300 {
        add_with(&mut s, NewId::Exact(id(i, 0)), &[("f", "v")], limits).unwrap();
    }
    assert_eq!(s.node_count(), 1, "no limits");
}

#[test]
fn entries_keep_their_fields_whether_or_not_they_match_the_master() {
    let mut s = Stream::new();
    add(&mut s, NewId::Exact(id(1, 0)), &[("a", "1"), ("b", "2")]).unwrap();
    add(&mut s, NewId::Exact(id(1, 1)), &[("a", "3"), ("b", "4")]).unwrap();
    add(&mut s, NewId::Exact(id(1, 2)), &[("b", "5"), ("a", "6")]).unwrap();
    add(&mut s, NewId::Exact(id(2, 0)), &[("a", "7")]).unwrap();
    add(&mut s, NewId::Exact(id(3, 0)), &[("123", "-5"), ("", "")]).unwrap();
    let got = all(&s, false);
    let p = |v: &[(&str, &str)]| -> Pairs {
        v.iter().map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    };
    assert_eq!(
        got,
        vec![
            (id(1, 0), p(&[("a", "1"), ("b", "2")])),
            (id(1, 1), p(&[("a", "3"), ("b", "4")])),
            (id(1, 2), p(&[("b", "5"), ("a", "6")])),
            (id(2, 0), p(&[("a", "7")])),
            (id(3, 0), p(&[("123", "-5"), ("", "")])),
        ]
    );
    let mut rev = all(&s, true);
    rev.reverse();
    assert_eq!(rev, got);
    // The node's bytes, element by element, as streamAppendItem writes them.
    let (_, lp) = s.nodes().next().unwrap();
    let elements: Vec<Vec<u8>> = lp.iter().map(super::super::encoding::Entry::to_vec).collect();
    let expected: Vec<&str> = vec![
        "5", "0", "2", "a", "b", "0", // master: 5 live, 0 deleted, 2 fields, a b, 0
        "2", "0", "0", "1", "2", "5", // same fields: flags 2, deltas 0 0, values, lp-count 2+3
        "2", "0", "1", "3", "4", "5", //
        "0", "0", "2", "2", "b", "5", "a", "6", "8", // own fields: 2 pairs, lp-count 2+3+2+1
        "0", "1", "0", "1", "a", "7", "6", //
        "0", "2", "0", "2", "123", "-5", "", "", "8",
    ];
    let expected: Vec<Vec<u8>> = expected.into_iter().map(|e| e.as_bytes().to_vec()).collect();
    assert_eq!(elements, expected);
    check(&s);
}

#[test]
fn ranges_start_and_end_anywhere() {
    let mut s = Stream::new();
    for i in 1..=300u64 {
        add(&mut s, NewId::Exact(id(i * 10, i % 3)), &[("f", &i.to_string())]).unwrap();
    }
    let ids: Vec<StreamId> = all(&s, false).into_iter().map(|(i, _)| i).collect();
    for (start, end) in
        [(id(0, 0), id(5, 0)), (id(15, 0), id(1005, 7)), (id(1000, 1), id(1000, 1)), (id(2995, 0), StreamId::MAX)]
    {
        let want: Vec<StreamId> = ids.iter().copied().filter(|i| *i >= start && *i <= end).collect();
        let fwd: Vec<StreamId> = s.range(start, end, false).map(|e| e.id).collect();
        let mut back: Vec<StreamId> = s.range(start, end, true).map(|e| e.id).collect();
        back.reverse();
        assert_eq!((&fwd, &back), (&want, &want), "{start}..{end}");
    }
    assert_eq!(s.range(id(5, 0), id(1, 0), false).count(), 0);
    assert_eq!(s.last_valid_id(), Some(id(3000, 0)));
}

#[test]
fn deletes_leave_tombstones_and_drop_empty_nodes() {
    let mut s = Stream::new();
    for i in 1..=150 {
        add(&mut s, NewId::Exact(id(i, 0)), &[("f", "v")]).unwrap();
    }
    assert_eq!(s.delete_ids(&[id(1, 0), id(1, 0), id(7, 7), id(50, 0)]), 2);
    assert_eq!((s.len(), s.meta().first_id, s.meta().max_deleted_id), (148, id(2, 0), id(50, 0)));
    assert!(!s.contains(id(50, 0)));
    check(&s);
    let second: Vec<StreamId> = (101..=150).map(|i| id(i, 0)).collect();
    assert_eq!(s.delete_ids(&second), 50);
    assert_eq!(s.node_count(), 1, "the node whose entries all went is gone");
    assert_eq!(s.last_id(), id(150, 0), "the last ID stays");
    check(&s);
    // The next entry starts a node of its own (the tail went away).
    add(&mut s, NewId::Exact(id(200, 0)), &[("f", "v")]).unwrap();
    assert_eq!(s.node_count(), 2);
    let rest: Vec<StreamId> = s.range(StreamId::MIN, StreamId::MAX, false).map(|e| e.id).collect();
    assert_eq!(s.delete_ids(&rest), 99);
    assert_eq!((s.len(), s.meta().first_id, s.node_count()), (0, StreamId::MIN, 0));
    check(&s);
}

#[test]
fn trimming_removes_whole_nodes_then_entries() {
    let filled = || {
        let mut s = Stream::new();
        for i in 1..=350 {
            add(&mut s, NewId::Exact(id(i, 0)), &[("f", "v")]).unwrap();
        }
        s
    };
    let maxlen = |n, approx, limit| Trim { to: TrimTo::MaxLen(n), approx, limit };
    let minid = |ms, approx, limit| Trim { to: TrimTo::MinId(id(ms, 0)), approx, limit };
    // (trim, removed, first left)
    let cases = [
        (maxlen(100, false, 0), 250, 251),
        (maxlen(100, true, 0), 200, 201),
        (maxlen(260, true, 0), 0, 1),
        (maxlen(250, true, 0), 100, 101),
        (maxlen(0, true, 0), 350, 0),
        (maxlen(0, false, 0), 350, 0),
        (maxlen(100, true, 150), 100, 101),
        (maxlen(100, true, 99), 0, 1),
        (maxlen(400, false, 0), 0, 1),
        (minid(150, false, 0), 149, 150),
        (minid(150, true, 0), 100, 101),
        (minid(101, true, 0), 100, 101),
        (minid(100, true, 0), 0, 1),
        (minid(1, false, 0), 0, 1),
        (minid(1000, false, 0), 350, 0),
        (minid(1000, true, 250), 200, 201),
    ];
    for (trim, removed, first) in cases {
        let mut s = filled();
        assert_eq!(s.trim_would_change(&trim), removed > 0, "{trim:?}");
        assert_eq!(s.trim(&trim), removed, "{trim:?}");
        assert_eq!(s.len(), 350 - removed);
        assert_eq!(s.meta().first_id, if first == 0 { StreamId::MIN } else { id(first, 0) }, "{trim:?}");
        check(&s);
    }
}

/// Random adds, deletes and trims against a plain map, reading back every way.
#[test]
fn random_operations_match_a_model() {
    let mut rng = fastrand::Rng::with_seed(7);
    for round in 0..20 {
        let limits = NodeLimits { max_bytes: [4096, 100, 0][round % 3], max_entries: [100, 5, 0][round % 3] };
        let mut s = Stream::new();
        let mut model: BTreeMap<StreamId, Pairs> = BTreeMap::new();
        let mut next_ms = 1;
        for _ in 0..600 {
            match rng.u32(0..10) {
                0..=5 => {
                    next_ms += rng.u64(0..3);
                    let n = rng.usize(1..4);
                    let fields: Vec<(String, String)> = (0..n)
                        .map(|i| (["a", "b", "1", "x"][rng.usize(0..4)].repeat(i + 1), rng.u32(0..300).to_string()))
                        .collect();
                    let refs: Vec<(&str, &str)> = fields.iter().map(|(f, v)| (f.as_str(), v.as_str())).collect();
                    let got = add_with(&mut s, NewId::Ms(next_ms), &refs, limits).unwrap();
                    let pairs = fields.iter().map(|(f, v)| (f.clone().into_bytes(), v.clone().into_bytes())).collect();
                    model.insert(got, pairs);
                }
                6 | 7 => {
                    let ids: Vec<StreamId> = (0..3)
                        .map(|_| model.keys().nth(rng.usize(0..model.len().max(1))).copied().unwrap_or(id(1, 0)))
                        .collect();
                    let mut unique = ids.clone();
                    unique.sort();
                    unique.dedup();
                    let expected = unique.iter().filter(|i| model.remove(i).is_some()).count() as u64;
                    assert_eq!(s.delete_ids(&ids), expected);
                }
                8 => {
                    let keep = rng.u64(0..model.len() as u64 + 2);
                    let trim = Trim { to: TrimTo::MaxLen(keep), approx: false, limit: 0 };
                    let would = s.trim_would_change(&trim);
                    let removed = s.trim(&trim);
                    assert_eq!(would, removed > 0);
                    while model.len() as u64 > keep {
                        model.pop_first();
                    }
                }
                _ => {
                    let min = model.keys().nth(rng.usize(0..model.len().max(1))).copied().unwrap_or(id(1, 0));
                    let trim = Trim { to: TrimTo::MinId(min), approx: rng.bool(), limit: 0 };
                    let would = s.trim_would_change(&trim);
                    let before = s.len();
                    let removed = s.trim(&trim);
                    assert_eq!(would, removed > 0, "{trim:?}");
                    assert_eq!(before - removed, s.len());
                    // Approximate trims keep some entries before `min`; exact ones none.
                    model.retain(|k, _| s.contains(*k));
                    assert!(trim.approx || model.keys().next().is_none_or(|k| *k >= min));
                }
            }
            check(&s);
            let expected: Vec<(StreamId, Pairs)> = model.iter().map(|(k, v)| (*k, v.clone())).collect();
            assert_eq!(all(&s, false), expected);
        }
        let mut rev = all(&s, true);
        rev.reverse();
        assert_eq!(rev, all(&s, false));
        // The radix tree count never falls below its keys (a leaf each, plus the head).
        assert!(s.rax_node_count() > s.node_count() || s.node_count() == 0);
    }
}

#[test]
fn rax_node_counts_follow_the_shape_of_the_keys() {
    let key = |ms: u64, seq: u64| id(ms, seq).to_bytes();
    assert_eq!(rax::node_count(&[]), 1);
    assert_eq!(rax::node_count(&[key(1, 0)]), 2);
    // Sharing 15 bytes: compressed, branch, two leaves.
    assert_eq!(rax::node_count(&[key(1, 0), key(1, 1)]), 4);
    // Sharing 8 bytes: compressed, branch, and a compressed tail and leaf each.
    assert_eq!(rax::node_count(&[key(1, 0), key(2, 0)]), 6);
    // No shared byte: the head branches.
    assert_eq!(rax::node_count(&[key(0, 0), key(u64::MAX, 0)]), 5);
}

#[test]
fn consumer_groups_deliver_track_and_acknowledge() {
    let mut s = Stream::new();
    for i in 1..=5 {
        add(&mut s, NewId::Exact(id(i, 0)), &[("f", "v")]).unwrap();
    }
    assert!(s.create_group(b"g", StreamId::MIN, 0));
    assert!(!s.create_group(b"g", StreamId::MIN, 0));
    let g = s.group_mut(b"g").unwrap();
    assert!(g.create_consumer(b"alice", 10));
    let mut seen = Vec::new();
    let n = s.deliver_new(b"g", b"alice", StreamId::MIN, 2, false, 20, |e, last| seen.push((e.id, last)));
    assert_eq!(n, 2);
    assert_eq!(seen, vec![(id(1, 0), id(1, 0)), (id(2, 0), id(2, 0))]);
    let g = s.group(b"g").unwrap();
    assert_eq!((g.last_id(), g.entries_read()), (id(2, 0), 2));
    assert_eq!(s.meta().lag(g), Some(3));
    assert_eq!(g.pending().len(), 2);
    assert_eq!(g.consumer(b"alice").unwrap().pending().len(), 2);
    // bob reads the rest without acknowledging them.
    s.group_mut(b"g").unwrap().create_consumer(b"bob", 30);
    let last = s.group(b"g").unwrap().last_id();
    assert_eq!(s.deliver_new(b"g", b"bob", last, 0, true, 40, |_, _| {}), 3);
    let g = s.group(b"g").unwrap();
    assert_eq!((g.last_id(), g.entries_read(), g.pending().len()), (id(5, 0), 5, 2));
    assert_eq!(s.meta().lag(g), Some(0));
    // alice's history: both entries, delivered again; one deleted meanwhile.
    s.delete_ids(&[id(2, 0)]);
    let mut history = Vec::new();
    s.deliver_history(b"g", b"alice", StreamId::MIN, 0, 50, |i, e, nack| {
        history.push((i, e.is_some(), nack.map(|n| (n.delivery_time, n.delivery_count))));
    });
    assert_eq!(history, vec![(id(1, 0), true, Some((50, 2))), (id(2, 0), false, None)]);
    // Claiming moves ownership; deleting a consumer drops what it owned.
    let g = s.group_mut(b"g").unwrap();
    g.give(id(1, 0), b"bob", 60, 1);
    assert_eq!(g.nack(id(1, 0)).unwrap().owner(), b"bob");
    assert_eq!(g.consumer(b"alice").unwrap().pending().len(), 1);
    assert!(g.ack(id(2, 0)));
    assert!(!g.ack(id(2, 0)));
    assert_eq!(g.delete_consumer(b"bob"), Some(1));
    assert_eq!(g.pending().len(), 0);
    assert_eq!(g.delete_consumer(b"bob"), None);
    // Lag is unknown when a tombstone lies after the group's position.
    assert!(s.create_group(b"late", StreamId::MIN, -1));
    let meta = s.meta();
    assert_eq!(meta.lag(s.group(b"late").unwrap()), None);
}
