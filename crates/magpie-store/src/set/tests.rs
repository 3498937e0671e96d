use std::collections::{BTreeSet, HashMap, HashSet};

use super::*;

fn members(set: &Set) -> BTreeSet<Vec<u8>> {
    let all: Vec<Vec<u8>> = set.iter().map(MemberRef::to_vec).collect();
    let unique: BTreeSet<Vec<u8>> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "iteration repeats a member");
    unique
}

fn set_of(items: &[&str]) -> Set {
    items.iter().map(|s| s.as_bytes()).collect()
}

#[test]
fn member_sizes_are_sixteen_bytes() {
    assert_eq!(std::mem::size_of::<Member>(), 16);
}

#[test]
fn intsets_stay_sorted_and_widen_as_needed() {
    let mut s = Set::new();
    for n in [5, -3, 300, 0] {
        assert!(s.insert(n.to_string().as_bytes()));
    }
    assert!(matches!(s.repr, Repr::Ints(Ints::I16(_))));
    assert!(s.insert(b"70000"));
    assert!(matches!(s.repr, Repr::Ints(Ints::I32(_))));
    assert!(s.insert(b"-9223372036854775808"));
    assert!(s.insert(b"9223372036854775807"));
    assert!(matches!(s.repr, Repr::Ints(Ints::I64(_))));
    assert!(!s.insert(b"300"));
    let order: Vec<Vec<u8>> = s.iter().map(MemberRef::to_vec).collect();
    let expected = ["-9223372036854775808", "-3", "0", "5", "300", "70000", "9223372036854775807"];
    assert_eq!(order, expected.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>());
    assert_eq!(s.encoding(), "intset");
    assert_eq!(s.size(), expected.iter().map(|s| s.len()).sum::<usize>());
    // Boundaries of each width.
    for n in [i64::from(i16::MIN), i64::from(i16::MAX), i64::from(i32::MIN), i64::from(i32::MAX)] {
        let mut s = Set::new();
        s.insert(n.to_string().as_bytes());
        s.insert(b"1");
        assert!(s.contains(n.to_string().as_bytes()) && s.contains(b"1") && !s.contains(b"2"));
        assert!(!s.contains((n + 1).to_string().as_bytes()) || n + 1 == 1);
    }
}

#[test]
fn only_canonical_integers_make_an_intset() {
    for not_int in ["007", "-0", "+1", " 1", "1 ", "1.0", "", "99999999999999999999", "-9223372036854775809"] {
        let s = set_of(&["1", not_int]);
        assert_eq!(s.encoding(), "hashtable", "{not_int:?}");
        assert!(s.contains(not_int.as_bytes()) && s.contains(b"1"));
        assert!(!set_of(&["1"]).contains(not_int.as_bytes()), "{not_int:?}");
    }
}

#[test]
fn encodings_convert_at_redis_thresholds_and_never_back() {
    let mut s: Set =
        (0..512).map(|i| i.to_string()).collect::<Vec<_>>().iter().map(std::string::String::as_bytes).collect();
    assert_eq!((s.len(), s.encoding()), (512, "intset"));
    s.insert(b"512");
    assert_eq!((s.len(), s.encoding()), (513, "hashtable"));
    assert!(matches!(s.repr, Repr::Table(_)));
    for i in 0..500 {
        s.remove(i.to_string().as_bytes());
    }
    assert_eq!(s.encoding(), "hashtable");

    // A string member: packed while small, a table past 128 members or 64 bytes.
    let mut s = set_of(&["1", "2", "a"]);
    assert!(matches!(s.repr, Repr::Pack(_)));
    for i in 0..125 {
        s.insert(format!("m{i}").as_bytes());
    }
    assert_eq!(s.len(), 128);
    assert!(matches!(s.repr, Repr::Pack(_)));
    s.insert(b"one more");
    assert!(matches!(s.repr, Repr::Table(_)));
    let mut s = set_of(&["a"]);
    s.insert(&[b'x'; 64]);
    assert!(matches!(s.repr, Repr::Pack(_)));
    s.insert(&[b'x'; 65]);
    assert!(matches!(s.repr, Repr::Table(_)));
    // An intset of 128 or more members meeting a string goes straight to a table.
    let mut s: Set =
        (0..128).map(|i| i.to_string()).collect::<Vec<_>>().iter().map(std::string::String::as_bytes).collect();
    s.insert(b"x");
    assert!(matches!(s.repr, Repr::Table(_)));
    // Binary members with NUL and CRLF are ordinary bytes.
    let s = set_of(&["a\0b", "\r\n", ""]);
    assert!(s.contains(b"a\0b") && s.contains(b"\r\n") && s.contains(b"") && !s.contains(b"a"));
}

/// The expected OBJECT ENCODING, from the history of the set's contents, as Redis 7.0 decides
/// it: an intset until a non-integer arrives or it holds more than 512 members, then for good
/// a hash table.
struct Model {
    members: BTreeSet<Vec<u8>>,
    converted: bool,
}

impl Model {
    fn note(&mut self) {
        if self.members.len() > MAX_INTSET_ENTRIES || self.members.iter().any(|m| canonical_int(m).is_none()) {
            self.converted = true;
        }
    }
}

#[test]
fn random_operations_agree_with_a_model() {
    let mut rng = fastrand::Rng::with_seed(11);
    for round in 0..6 {
        let mut set = Set::new();
        let mut model = Model { members: BTreeSet::new(), converted: false };
        // Rounds differ in what members they draw, to cross each threshold.
        let member = |rng: &mut fastrand::Rng| -> Vec<u8> {
            match (round, rng.u8(..10)) {
                (0, _) => rng.i64(-200..200).to_string().into_bytes(),
                (1, 0) => b"str".to_vec(),
                (1, _) => rng.i64(-400..400).to_string().into_bytes(),
                (2, 0..=4) => rng.i64(..).to_string().into_bytes(),
                (2, _) => rng.i32(..).to_string().into_bytes(),
                (3, 0) => ["007", "-0", "+5", "", "a\0b"][rng.usize(..5)].as_bytes().to_vec(),
                (3, _) => format!("m{}", rng.u8(..150)).into_bytes(),
                (4, 0) => vec![b'L'; rng.usize(60..70)],
                (4, _) => format!("k{}", rng.u16(..3000)).into_bytes(),
                (_, 0..=4) => rng.u16(..1500).to_string().into_bytes(),
                (_, _) => format!("s{}", rng.u16(..1500)).into_bytes(),
            }
        };
        for step in 0..6000 {
            let m = member(&mut rng);
            match rng.u8(..10) {
                0..=4 => {
                    assert_eq!(set.insert(&m), model.members.insert(m.clone()), "round {round} step {step}");
                    model.note();
                }
                5 | 6 => assert_eq!(set.remove(&m), model.members.remove(&m)),
                7 => {
                    let popped = set.pop_random().map(|p| p.as_ref().to_vec());
                    assert_eq!(popped.is_some(), !model.members.is_empty());
                    if let Some(p) = popped {
                        assert!(model.members.remove(&p), "popped {p:?}, not a member");
                    }
                }
                8 => {
                    let n = rng.usize(..20);
                    let mut got = Vec::new();
                    set.random_distinct(n, |m| got.push(m.to_vec()));
                    assert_eq!(got.len(), n.min(model.members.len()));
                    let unique: HashSet<_> = got.iter().collect();
                    assert_eq!(unique.len(), got.len(), "distinct sampling repeated a member");
                    assert!(got.iter().all(|m| model.members.contains(m)));
                    let mut got = Vec::new();
                    set.random_with_repeats(n, |m| got.push(m.to_vec()));
                    assert_eq!(got.len(), if model.members.is_empty() { 0 } else { n });
                    assert!(got.iter().all(|m| model.members.contains(m)));
                    assert_eq!(set.random().is_some(), !model.members.is_empty());
                }
                _ => assert_eq!(set.contains(&m), model.members.contains(&m)),
            }
            assert_eq!(set.len(), model.members.len());
            assert_eq!(set.size(), model.members.iter().map(Vec::len).sum::<usize>(), "round {round} step {step}");
            let expected = if model.converted { "hashtable" } else { "intset" };
            assert_eq!(set.encoding(), expected, "round {round} step {step}");
            if step % 97 == 0 {
                assert_eq!(members(&set), model.members);
                let mut scanned = BTreeSet::new();
                let mut cursor = 0;
                loop {
                    cursor = set.scan(cursor, 7, |m| {
                        scanned.insert(m.to_vec());
                    });
                    if cursor == 0 {
                        break;
                    }
                }
                assert_eq!(scanned, model.members);
                assert_eq!(set.clone(), set);
                if let Repr::Table(t) = &set.repr {
                    check_table(t);
                }
            }
        }
    }
}

/// Every index entry points at a distinct position, and every member is found where it is.
fn check_table(t: &Table) {
    assert_eq!(t.index.len(), t.members.len());
    let mut seen = vec![false; t.members.len()];
    for slot in t.index.iter() {
        assert!(!std::mem::replace(&mut seen[slot.pos as usize], true));
        assert_eq!(slot.hash, hash_of(&t.hasher, t.members[slot.pos as usize].as_ref()));
    }
    for (pos, m) in t.members.iter().enumerate() {
        assert_eq!(t.find(m.as_ref()), Some(pos));
    }
    t.index.check(|s| table_hash(s.hash));
}

#[test]
fn scan_never_misses_a_member_present_throughout_despite_churn() {
    let mut set = Set::new();
    for i in 0..2000 {
        set.insert(format!("stable{i}").as_bytes());
    }
    for i in 0..2000 {
        set.insert(format!("churn{i}").as_bytes());
    }
    let mut seen = HashSet::new();
    // Stable members that a pop took out (and that went back in): not present throughout.
    let mut disturbed = HashSet::new();
    let (mut cursor, mut calls) = (0, 0);
    loop {
        cursor = set.scan(cursor, 10, |m| {
            seen.insert(m.to_vec());
        });
        if cursor == 0 {
            break;
        }
        calls += 1;
        // Between calls: remove some members, add others, pop one.
        for j in 0..5 {
            set.remove(format!("churn{}", calls * 5 + j).as_bytes());
            set.insert(format!("new{calls}_{j}").as_bytes());
        }
        if let Some(p) = set.pop_random() {
            let p = p.as_ref().to_vec();
            if p.starts_with(b"stable") {
                set.insert(&p);
                disturbed.insert(p);
            }
        }
    }
    assert!(disturbed.len() < 400, "most stable members stay put");
    for i in 0..2000 {
        let m = format!("stable{i}").into_bytes();
        assert!(disturbed.contains(&m) || seen.contains(&m), "missed stable{i}");
    }
    // Small sets come whole, cursor 0, whatever cursor was given.
    let small = set_of(&["a", "b", "1"]);
    let mut n = 0;
    assert_eq!(small.scan(12345, 1, |_| n += 1), 0);
    assert_eq!(n, 3);
}

#[test]
fn sampling_is_roughly_uniform() {
    for size in [10usize, 100, 300, 2000] {
        let set: Set =
            (0..size).map(|i| format!("m{i}")).collect::<Vec<_>>().iter().map(std::string::String::as_bytes).collect();
        let mut counts: HashMap<Vec<u8>, usize> = HashMap::new();
        let draws = size * 200;
        set.random_with_repeats(draws, |m| *counts.entry(m.to_vec()).or_default() += 1);
        for _ in 0..draws / 5 {
            set.random_distinct(5, |m| *counts.entry(m.to_vec()).or_default() += 1);
        }
        assert_eq!(counts.len(), size);
        let expected = 400.0;
        for (m, &c) in &counts {
            let c = c as f64;
            assert!(
                c > expected * 0.7 && c < expected * 1.3,
                "size {size}: {m:?} drawn {c} times, expected about {expected}"
            );
        }
    }
}

#[test]
fn tables_give_memory_back_when_they_shrink() {
    let mut set: Set =
        (0..10_000).map(|i| format!("m{i}")).collect::<Vec<_>>().iter().map(std::string::String::as_bytes).collect();
    for _ in 0..9_990 {
        set.pop_random();
    }
    let Repr::Table(t) = &set.repr else { panic!("a big set stays a table") };
    assert!(t.index.buckets() < 1000 && t.members.capacity() < 1000, "{} {}", t.index.buckets(), t.members.capacity());
    check_table(t);
    assert_eq!(set.len(), 10);
}

#[test]
fn equality_ignores_representation_and_debug_shows_members() {
    let a = set_of(&["1", "2", "3"]);
    let mut b = set_of(&["x", "1", "2", "3"]);
    assert_ne!(a, b);
    b.remove(b"x");
    assert_eq!(a, b);
    assert_eq!(format!("{a:?}"), r#"Set(intset){"1", "2", "3"}"#);
    let mut v = Vec::new();
    a.for_each(|m| v.push(m.to_vec()));
    assert_eq!(v, [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
}

/// Big sets grow in bounded steps: no insert moves more than one index segment's entries
/// (a single table would move all of them at each doubling), and every member stays findable
/// while the index is split over many segments.
#[test]
fn a_growing_set_moves_a_bounded_number_of_members_per_insert() {
    let mut set = Set::new();
    let mut worst = 0;
    let n: usize = 300_000;
    for i in 0..n {
        let before = match &set.repr {
            Repr::Table(t) => t.index.moved(),
            _ => 0,
        };
        set.insert(format!("member:{i}").as_bytes());
        if let Repr::Table(t) = &set.repr {
            worst = worst.max(t.index.moved() - before);
        }
    }
    assert!(worst <= crate::segtable::SEGMENT_BUCKETS, "one insert moved {worst} index entries");
    let Repr::Table(t) = &set.repr else { panic!("a big set is a table") };
    assert!(t.index.segment_count() > 50, "{} segments", t.index.segment_count());
    assert_eq!(t.members.chunk_count(), n.div_ceil(crate::dense::CHUNK));
    check_table(t);
    // Shrinking is bounded too, and a set that empties gathers its index back.
    let mut worst = 0;
    for i in 0..n - 10 {
        let Repr::Table(t) = &set.repr else { unreachable!() };
        let before = t.index.moved();
        assert!(set.remove(format!("member:{i}").as_bytes()));
        let Repr::Table(t) = &set.repr else { unreachable!() };
        worst = worst.max(t.index.moved() - before);
    }
    let Repr::Table(t) = &set.repr else { unreachable!() };
    assert!(worst <= crate::segtable::SEGMENT_BUCKETS + t.index.segment_count() + 1000, "moved {worst}");
    assert_eq!(t.index.segment_count(), 1);
    check_table(t);
    assert_eq!(members(&set).len(), 10);
}

/// SSCAN's guarantee holds while the set grows through many segment splits and shrinks.
#[test]
fn scan_never_misses_a_member_while_the_set_grows_and_shrinks() {
    let mut set = Set::new();
    for i in 0..20_000 {
        set.insert(format!("stable{i}").as_bytes());
    }
    let Repr::Table(t) = &set.repr else { unreachable!() };
    let segments_before = t.index.segment_count();
    let mut seen = HashSet::new();
    let (mut cursor, mut next) = (0, 0);
    loop {
        cursor = set.scan(cursor, 50, |m| {
            seen.insert(m.to_vec());
        });
        if cursor == 0 {
            break;
        }
        for _ in 0..100 {
            set.insert(format!("new{next}").as_bytes());
            next += 1;
        }
        for _ in 0..30 {
            set.remove(format!("new{}", fastrand::usize(..next)).as_bytes());
        }
    }
    for i in 0..20_000 {
        assert!(seen.contains(format!("stable{i}").as_bytes()), "missed stable{i}");
    }
    let Repr::Table(t) = &set.repr else { unreachable!() };
    assert!(t.index.segment_count() >= 2 * segments_before, "{segments_before} -> {}", t.index.segment_count());
    check_table(t);
}

/// A snapshot's image of a big set keeps its members exactly, and a write after the freeze
/// copies only the vector's chunks it touches (the rest stay shared with the image).
#[test]
fn a_frozen_set_keeps_its_members_and_writes_copy_only_their_chunks() {
    let mut set: Set =
        (0..50_000).map(|i| format!("m{i}")).collect::<Vec<_>>().iter().map(std::string::String::as_bytes).collect();
    let before = members(&set);
    assert!(Set::from_members([&b"a"[..]]).freeze().is_none(), "a small set is encoded at once");
    let frozen = set.freeze().expect("a big set freezes");
    set.insert(b"new");
    set.remove(b"m17");
    set.pop_random();
    let Repr::Table(t) = &set.repr else { unreachable!() };
    let chunks = t.members.chunk_count();
    assert!(t.members.unshared_chunks() <= 4, "{} of {chunks} chunks copied", t.members.unshared_chunks());
    check_table(t);
    let mut image = BTreeSet::new();
    frozen.for_each(|m| {
        assert!(image.insert(m.to_vec()));
    });
    assert_eq!(image, before);
    assert_eq!(frozen.len(), before.len());
    drop(frozen);
    assert!(set.contains(b"new") && !set.contains(b"m17"));
    assert_eq!(set.len(), before.len() - 1);
}

/// Random members come from every chunk of a big set's vector, evenly, and distinct draws
/// stay distinct across chunks.
#[test]
fn sampling_reaches_every_chunk_of_a_big_set() {
    fastrand::seed(21);
    let chunk = crate::dense::CHUNK;
    let n = 3 * chunk + 5;
    let set: Set =
        (0..n).map(|i| format!("{i}x")).collect::<Vec<_>>().iter().map(std::string::String::as_bytes).collect();
    // Members were added in order, so a member's number says which chunk holds it.
    let chunk_of = |m: MemberRef<'_>| -> usize {
        m.with_bytes(|b| std::str::from_utf8(&b[..b.len() - 1]).unwrap().parse::<usize>().unwrap()) / chunk
    };
    let mut per_chunk = [0usize; 4];
    set.random_with_repeats(400_000, |m| per_chunk[chunk_of(m)] += 1);
    for c in 0..3 {
        let share = per_chunk[c] as f64 / 400_000.0;
        assert!((share - chunk as f64 / n as f64).abs() < 0.01, "chunk {c}: {per_chunk:?}");
    }
    assert!(per_chunk[3] > 0, "the last, partial chunk is drawn too");
    let mut seen = HashSet::new();
    set.random_distinct(2 * chunk, |m| assert!(seen.insert(m.to_vec()), "drawn twice"));
    assert_eq!(seen.len(), 2 * chunk);
    assert!(seen.iter().map(|m| chunk_of(MemberRef::Bytes(m))).collect::<HashSet<_>>().len() == 4);
}
