//! The sorted set against a model: a map of member -> score, sorted on demand.

use std::collections::{BTreeMap, HashSet};

use super::*;

/// What the set must hold: scores by member, and which encoding it must be in.
#[derive(Default)]
struct Model {
    scores: BTreeMap<Vec<u8>, f64>,
    big: bool,
}

impl Model {
    fn sorted(&self) -> Vec<(Vec<u8>, f64)> {
        let mut v: Vec<(Vec<u8>, f64)> = self.scores.iter().map(|(m, s)| (m.clone(), *s)).collect();
        v.sort_by(|a, b| cmp(a.1, &a.0, b.1, &b.0));
        v
    }

    fn insert(&mut self, member: &[u8], score: f64) -> Option<f64> {
        if !self.scores.contains_key(member) && (self.scores.len() + 1 > MAX_ENTRIES || member.len() > MAX_MEMBER) {
            self.big = true;
        }
        // The small encoding keeps an integer score as an integer: -0 becomes 0.
        let stored = if !self.big && score == 0.0 { 0.0 } else { score };
        self.scores.insert(member.to_vec(), stored)
    }
}

fn bits(entries: impl Iterator<Item = (Vec<u8>, f64)>) -> Vec<(Vec<u8>, u64)> {
    entries.map(|(m, s)| (m, s.to_bits())).collect()
}

fn owned<'a>(it: impl Iterator<Item = (&'a [u8], f64)>) -> Vec<(Vec<u8>, f64)> {
    it.map(|(m, s)| (m.to_vec(), s)).collect()
}

/// Everything observable agrees with the model.
fn check(z: &ZSet, model: &Model, rng: &mut fastrand::Rng) {
    let sorted = model.sorted();
    assert_eq!(z.len(), sorted.len());
    assert_eq!(z.encoding(), if model.big { "skiplist" } else { "listpack" });
    assert_eq!(z.size(), sorted.iter().map(|(m, _)| m.len() + 8).sum::<usize>());
    assert_eq!(bits(owned(z.iter()).into_iter()), bits(sorted.clone().into_iter()));
    if let Repr::Big(b) = &z.repr {
        b.check();
    }
    let n = sorted.len();
    for _ in 0..4 {
        if n == 0 {
            break;
        }
        let r = rng.usize(..n);
        let (m, s) = &sorted[r];
        assert_eq!(z.rank(m), Some(r));
        assert_eq!(z.score(m).map(f64::to_bits), Some(s.to_bits()));
        assert_eq!(z.get(r).map(|(m, s)| (m.to_vec(), s.to_bits())), Some((m.clone(), s.to_bits())));
        let take = rng.usize(0..5);
        let fwd = owned(z.iter_from(r, false).take(take));
        assert_eq!(bits(fwd.into_iter()), bits(sorted[r..].iter().take(take).cloned()));
        let back = owned(z.iter_from(r, true).take(take));
        assert_eq!(bits(back.into_iter()), bits(sorted[..=r].iter().rev().take(take).cloned()));
    }
    assert_eq!(z.rank(b"no such member"), None);
    assert!(z.get(n).is_none() && z.iter_from(n, true).next().is_none());
    // Score ranges: the span is exactly the entries within.
    let bounds = [f64::NEG_INFINITY, -2.0, -0.0, 0.0, 1.0, 1.5, 7.0, f64::INFINITY];
    for _ in 0..3 {
        let range = ScoreRange {
            min: ScoreBound { value: bounds[rng.usize(..bounds.len())], exclusive: rng.bool() },
            max: ScoreBound { value: bounds[rng.usize(..bounds.len())], exclusive: rng.bool() },
        };
        let want: Vec<usize> =
            (0..n).filter(|&i| range.above_min(sorted[i].1) && range.below_max(sorted[i].1)).collect();
        let got = z.score_span(&range);
        assert_eq!(got.collect::<Vec<_>>(), want, "{range:?}");
    }
}

fn member(rng: &mut fastrand::Rng, pool: usize, long: bool) -> Vec<u8> {
    let i = rng.usize(..pool);
    if long && i.is_multiple_of(50) { format!("{i:0>70}").into_bytes() } else { format!("m{i}").into_bytes() }
}

fn score(rng: &mut fastrand::Rng) -> f64 {
    const SPECIAL: [f64; 9] = [0.0, -0.0, 1.0, 1.5, -2.0, f64::INFINITY, f64::NEG_INFINITY, 1e300, 7.0];
    if rng.bool() { SPECIAL[rng.usize(..SPECIAL.len())] } else { f64::from(rng.i32(-50..50)) / 4.0 }
}

/// Random operations against the model, crossing the conversion thresholds.
fn run(seed: u64, steps: usize, pool: usize, long: bool) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut z = ZSet::new();
    let mut model = Model::default();
    for step in 0..steps {
        match rng.u8(..10) {
            0..=4 => {
                let (m, s) = (member(&mut rng, pool, long), score(&mut rng));
                assert_eq!(z.insert(&m, s).map(f64::to_bits), model.insert(&m, s).map(f64::to_bits), "step {step}");
            }
            5 | 6 => {
                let m = member(&mut rng, pool, long);
                assert_eq!(z.remove(&m).map(f64::to_bits), model.scores.remove(&m).map(f64::to_bits));
            }
            7 => {
                let max = rng.bool();
                let got = z.pop_with(max, |m, s| (m.to_vec(), s.to_bits()));
                let sorted = model.sorted();
                let want = if max { sorted.last() } else { sorted.first() }.map(|(m, s)| (m.clone(), s.to_bits()));
                assert_eq!(got, want);
                if let Some((m, _)) = want {
                    model.scores.remove(&m);
                }
            }
            8 => {
                let n = z.len();
                let from = rng.usize(0..=n);
                let to = (from + rng.usize(0..4)).min(n + 1);
                let sorted = model.sorted();
                assert_eq!(z.remove_ranks(from..to), to.min(n).saturating_sub(from));
                for (m, _) in sorted.iter().take(to.min(n)).skip(from) {
                    model.scores.remove(m);
                }
            }
            _ => {
                // Clones are equal and independent.
                let copy = z.clone();
                assert_eq!(copy, z);
            }
        }
        check(&z, &model, &mut rng);
    }
}

#[test]
fn small_sets_agree_with_the_model() {
    for seed in 0..20 {
        run(seed, 400, 60, false);
    }
}

#[test]
fn sets_crossing_the_thresholds_agree_with_the_model() {
    for seed in 0..6 {
        run(seed, 3000, 400, seed % 2 == 0);
    }
}

#[test]
fn conversion_happens_at_129_members_and_65_bytes() {
    let mut z = ZSet::new();
    for i in 0..128 {
        z.insert(format!("{i}").as_bytes(), f64::from(i));
    }
    assert_eq!(z.encoding(), "listpack");
    z.insert(b"0", 5.0); // an update does not convert
    z.insert(&[b'x'; 64], 1.0);
    assert_eq!((z.encoding(), z.len()), ("skiplist", 129));
    z.remove(&[b'x'; 64]);
    assert_eq!(z.encoding(), "skiplist", "a set that shrinks stays big");

    let mut z = ZSet::new();
    z.insert(&[b'x'; 64], 1.0);
    assert_eq!(z.encoding(), "listpack");
    z.insert(&[b'y'; 65], 1.0);
    assert_eq!(z.encoding(), "skiplist");

    let z = ZSet::from_sorted((0..128).map(|i| (Key::new(format!("{i:03}").as_bytes()), 1.0)).collect());
    assert_eq!(z.encoding(), "listpack");
    let z = ZSet::from_sorted((0..129).map(|i| (Key::new(format!("{i:03}").as_bytes()), 1.0)).collect());
    assert_eq!(z.encoding(), "skiplist");
    assert_eq!(ZSet::with_capacity(129).encoding(), "skiplist");
}

/// A tree several levels deep: inserts in every order, removals down to nothing, ranks and
/// spans checked along the way.
#[test]
fn deep_trees_stay_consistent() {
    let mut rng = fastrand::Rng::with_seed(42);
    let n = 30_000;
    let mut z = ZSet::new();
    let mut model = Model::default();
    // Ascending, descending and random scores, with many ties broken by member.
    for i in 0..n {
        let s = match i % 3 {
            0 => f64::from(i),
            1 => -f64::from(i),
            _ => f64::from(rng.i32(0..100)),
        };
        let m = format!("k{}", rng.u32(..)).into_bytes();
        assert_eq!(z.insert(&m, s), model.insert(&m, s));
        if i % 5000 == 0 {
            check(&z, &model, &mut rng);
        }
    }
    check(&z, &model, &mut rng);
    // Lexicographical spans are exact when scores are equal.
    let mut lex = ZSet::new();
    for i in 0..5000 {
        lex.insert(format!("{i:05}").as_bytes(), 0.0);
    }
    for (min, max, want) in [
        (LexBound::Min, LexBound::Max, 0..5000),
        (LexBound::Inclusive(b"00100"), LexBound::Exclusive(b"00200"), 100..200),
        (LexBound::Exclusive(b"00100"), LexBound::Inclusive(b"00200"), 101..201),
        (LexBound::Inclusive(b"0"), LexBound::Inclusive(b"1"), 0..5000),
        (LexBound::Inclusive(b"00"), LexBound::Inclusive(b"01"), 0..1000),
        (LexBound::Max, LexBound::Min, 0..0),
        (LexBound::Inclusive(b"3"), LexBound::Inclusive(b"2"), 0..0),
    ] {
        let r = LexRange { min, max };
        assert_eq!(lex.lex_span(&r, false), want, "{r:?}");
        assert_eq!(lex.lex_span(&r, true), want, "{r:?}");
    }
    // Removals in random order down to nothing, in bulk and one by one.
    let mut members: Vec<Vec<u8>> = model.scores.keys().cloned().collect();
    rng.shuffle(&mut members);
    let removed = z.remove_ranks(1000..9000);
    let sorted = model.sorted();
    for (m, _) in &sorted[1000..9000] {
        model.scores.remove(m);
    }
    assert_eq!(removed, 8000);
    check(&z, &model, &mut rng);
    for (i, m) in members.iter().enumerate() {
        assert_eq!(z.remove(m).is_some(), model.scores.remove(m).is_some());
        if i % 4000 == 0 {
            check(&z, &model, &mut rng);
        }
    }
    assert!(z.is_empty());
    check(&z, &model, &mut rng);
}

#[test]
fn scan_never_misses_a_member_present_throughout() {
    let mut rng = fastrand::Rng::with_seed(3);
    let mut z = ZSet::new();
    for i in 0..2000 {
        z.insert(format!("stable{i}").as_bytes(), f64::from(i));
        z.insert(format!("churn{i}").as_bytes(), f64::from(i));
    }
    let mut seen = HashSet::new();
    let mut cursor = 0;
    let mut calls = 0;
    loop {
        cursor = z.scan(cursor, 10, |m, _| {
            seen.insert(m.to_vec());
        });
        calls += 1;
        if cursor == 0 {
            break;
        }
        for _ in 0..5 {
            z.remove(format!("churn{}", rng.usize(..2000)).as_bytes());
            z.insert(format!("new{}", rng.u32(..)).as_bytes(), 1.0);
        }
    }
    assert!(calls > 100);
    for i in 0..2000 {
        assert!(seen.contains(format!("stable{i}").as_bytes()), "missed stable{i}");
    }
}

#[test]
fn sampling_follows_zrandmember_rules() {
    let z = ZSet::from_sorted((0..1000).map(|i| (Key::new(format!("{i:04}").as_bytes()), f64::from(i))).collect());
    let collect = |count, unique| {
        let mut v = Vec::new();
        z.sample(count, unique, |m, s| v.push((m.to_vec(), s)));
        v
    };
    for count in [1, 10, 400, 999] {
        let got = collect(count, true);
        assert_eq!(got.len(), count);
        assert_eq!(got.iter().map(|e| &e.0).collect::<HashSet<_>>().len(), count, "distinct");
    }
    let all = collect(5000, true);
    assert_eq!(all.len(), 1000);
    assert_eq!(all[0].1, 999.0, "the whole set comes highest first");
    assert_eq!(collect(5000, false).len(), 5000);
    // Every member comes up about equally often.
    let mut hits = vec![0u32; 1000];
    z.sample(200_000, false, |_, s| hits[s as usize] += 1);
    assert!(hits.iter().all(|&h| (100..300).contains(&h)), "{:?}", hits.iter().minmax());
    let small = ZSet::from_sorted(vec![(Key::new(b"a"), 1.0), (Key::new(b"b"), 2.0)]);
    let mut v = Vec::new();
    small.sample(5, true, |m, _| v.push(m.to_vec()));
    assert_eq!(v, [b"b".to_vec(), b"a".to_vec()]);
}

trait MinMax {
    fn minmax(self) -> (u32, u32);
}

impl<'a, I: Iterator<Item = &'a u32>> MinMax for I {
    fn minmax(self) -> (u32, u32) {
        self.fold((u32::MAX, 0), |(lo, hi), &x| (lo.min(x), hi.max(x)))
    }
}

#[test]
fn lex_spans_in_small_sets_follow_redis_scans() {
    let mut z = ZSet::new();
    for (m, s) in [(&b"b"[..], 1.0), (b"a", 2.0), (b"c", 3.0)] {
        z.insert(m, s);
    }
    // Scores differ, so members are out of order: Redis scans from the start for the first
    // member at or above min, then takes members while they stay at or below max.
    let r = LexRange { min: LexBound::Inclusive(b"a"), max: LexBound::Inclusive(b"b") };
    assert_eq!(z.lex_span(&r, false), 0..2);
    assert_eq!(z.lex_span(&r, true), 0..2);
    let r = LexRange { min: LexBound::Exclusive(b"a"), max: LexBound::Max };
    assert_eq!(z.lex_span(&r, false), 0..3);
    assert_eq!(z.lex_span(&r, true), 2..3);
    let r = LexRange { min: LexBound::Min, max: LexBound::Exclusive(b"b") };
    assert_eq!(z.lex_span(&r, false), 0..0, "the first member is not below max");
}

#[test]
fn memory_per_member_of_a_big_set() {
    // 64-byte members inserted in score order, as the benchmark loads them.
    let n = 250_000;
    let z = ZSet::from_sorted(Vec::new());
    drop(z);
    let mut z = ZSet::new();
    for i in 0..n {
        let mut m = format!("{i:012}").into_bytes();
        m.resize(64, b'x');
        z.insert(&m, f64::from(i));
    }
    let Repr::Big(b) = &z.repr else { panic!("big") };
    let per = b.allocated() as f64 / n as f64;
    // Members (64) + an item (32) + a hash slot (~5-10) + a leaf entry (12), full leaves.
    assert!(per < 125.0, "{per} bytes per member");
}

fn stats(z: &ZSet) -> (usize, usize, usize) {
    match &z.repr {
        Repr::Big(b) => b.growth_stats(),
        Repr::Small(_) => (0, 0, 0),
    }
}

/// Big sorted sets grow in bounded steps: no insert moves more than one index segment's
/// entries; ranks, scans and the three parts stay consistent through the splits.
#[test]
fn a_growing_sorted_set_moves_a_bounded_number_of_members_per_insert() {
    let mut z = ZSet::new();
    let mut worst = 0;
    let n = 150_000;
    for i in 0..n {
        let before = stats(&z).0;
        z.insert(format!("m{i}").as_bytes(), f64::from(i % 1000));
        worst = worst.max(stats(&z).0 - before);
    }
    assert!(worst <= crate::segtable::SEGMENT_BUCKETS, "one insert moved {worst} index entries");
    assert!(stats(&z).1 > 20, "{} segments", stats(&z).1);
    let Repr::Big(b) = &z.repr else { panic!() };
    b.check();
    // Score 0 holds m0, m1000, m10000, ... in byte order.
    assert_eq!((z.rank(b"m0"), z.rank(b"m1000"), z.rank(b"m10000")), (Some(0), Some(1), Some(2)));
    // ZSCAN's guarantee while members come and go.
    let mut seen = HashSet::new();
    let (mut cursor, mut next) = (0, 0);
    loop {
        cursor = z.scan(cursor, 100, |m, _| {
            seen.insert(m.to_vec());
        });
        if cursor == 0 {
            break;
        }
        for _ in 0..150 {
            z.insert(format!("new{next}").as_bytes(), -1.0);
            next += 1;
        }
        for _ in 0..50 {
            z.remove(format!("new{}", fastrand::usize(..next)).as_bytes());
        }
    }
    assert!((0..n).all(|i| seen.contains(format!("m{i}").as_bytes())));
    let Repr::Big(b) = &z.repr else { panic!() };
    b.check();
}

/// A snapshot's image of a big sorted set gives its entries in order, as they were, and
/// writes after the freeze copy only the chunks they touch.
#[test]
fn a_frozen_sorted_set_keeps_its_entries_and_writes_copy_only_their_chunks() {
    let mut z =
        ZSet::from_entries((0..30_000).map(|i| (Key::new(format!("m{i}").as_bytes()), f64::from(i % 77))).collect());
    let before: Vec<(Vec<u8>, f64)> = z.iter().map(|(m, s)| (m.to_vec(), s)).collect();
    let frozen = z.freeze().expect("a big sorted set freezes");
    z.pop_with(true, |_, _| ());
    z.insert(b"m5", 1000.0);
    z.insert(b"new", -5.0);
    assert!(stats(&z).2 <= 4, "{} chunks copied", stats(&z).2);
    let image: Vec<(Vec<u8>, f64)> = frozen.in_order().into_iter().map(|(m, s)| (m.to_vec(), s)).collect();
    assert_eq!(image, before);
    assert_eq!(z.score(b"m5"), Some(1000.0));
    assert!(ZSet::from_entries(vec![(Key::new(b"a"), 1.0)]).freeze().is_none());
}

/// A small sorted set is a 16-byte box and its exact buffer (a one-member set's box was 48).
#[test]
fn a_small_zset_is_16_bytes_and_its_buffer() {
    assert_eq!(std::mem::size_of::<ZSet>(), 16);
    let mut z = ZSet::new();
    z.insert(b"m", 1.5);
    z.insert(b"n", 2.0);
    let Repr::Small(p) = &z.repr else { panic!("small") };
    assert_eq!(p.bytes(), (1 + 1 + 8) + (1 + 1 + 1));
    assert_eq!((z.len(), z.size()), (2, 1 + 8 + 1 + 8));
    let from: ZSet = ZSet::from_sorted(vec![(Key::new(b"m"), 1.5), (Key::new(b"n"), 2.0)]);
    assert!(from.iter().eq(z.iter()));
    assert_eq!((from.len(), from.size()), (2, 18));
    z.remove(b"m");
    z.insert(b"n", 7.0);
    assert_eq!((z.len(), z.size()), (1, 9));
    z.remove(b"n");
    let Repr::Small(p) = &z.repr else { panic!("small") };
    assert_eq!((p.len(), p.size(), p.bytes()), (0, 0, 0), "an empty pack keeps no trailer");
}
