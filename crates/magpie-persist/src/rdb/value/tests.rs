use magpie_store::encoding::listpack::Listpack;

use super::super::io::SliceInput;
use super::*;

fn encode(v: &Value, opts: &WriteOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_object(&mut out, None, &Object::Value(v.clone()), opts);
    out
}

/// Writes `v`, reads it back, checks nothing is left over; returns the type byte.
fn round_trip(v: &Value, opts: &WriteOptions) -> u8 {
    let bytes = encode(v, opts);
    let mut inp = SliceInput::new(&bytes);
    let t = inp.u8().expect("type");
    let back = read_object(&mut inp, t, &ReadOptions::default()).expect("reads").expect("not empty");
    assert_eq!(inp.position(), bytes.len(), "bytes left over for type {t}");
    assert_eq!(back, Object::Value(v.clone()), "type {t}");
    t
}

fn both(f: impl Fn(&WriteOptions)) {
    for compression in [true, false] {
        f(&WriteOptions { compression, thresholds: Thresholds::default() });
    }
}

#[test]
fn doubles_print_as_c_printf_17g() {
    // Expected values from C's printf("%.17g").
    for (d, want) in [
        (1.5, "1.5"),
        (0.1, "0.10000000000000001"),
        (-0.1, "-0.10000000000000001"),
        (std::f64::consts::PI, "3.1415926535897931"),
        (1e-5, "1.0000000000000001e-05"),
        (0.0001, "0.0001"),
        (1.2345e-7, "1.2345000000000001e-07"),
        (123456789.123, "123456789.123"),
        (9.223372036854776e18, "9.2233720368547758e+18"),
        (-1e300, "-1.0000000000000001e+300"),
        (5e-324, "4.9406564584124654e-324"),
        (1.0 / 3.0, "0.33333333333333331"),
        (0.30000000000000004, "0.30000000000000004"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
        (1e17, "100000000000000000"),
        (-0.0, "-0"),
    ] {
        assert_eq!(format_double(d), want, "{d}");
    }
    assert_eq!(double_as_int(-0.0), Some(0));
    assert_eq!(double_as_int(4611686018427387904.0), Some(1 << 62));
    assert_eq!(double_as_int(9223372036854775807.0), None);
    assert_eq!(double_as_int(0.5), None);
}

#[test]
fn strings_and_integers_round_trip() {
    both(|o| {
        for s in [&b""[..], b"0", b"-1", b"12345678901", b"123456789012345678901", b"x", &[7u8; 20], &[b'q'; 5000]] {
            assert_eq!(round_trip(&Value::string(s), o), types::STRING);
        }
        for n in [0, -128, 127, 32767, -32769, i64::from(i32::MAX) + 1, i64::MIN, i64::MAX] {
            let v = Value::Int(n);
            assert_eq!(round_trip(&v, o), types::STRING);
            // An Int is written exactly as the string of its digits.
            assert_eq!(encode(&v, o), encode(&Value::Str(n.to_string().into_bytes().into()), o));
        }
    });
}

#[test]
fn hashes_switch_to_a_table_past_the_thresholds() {
    both(|o| {
        let t = Thresholds::default();
        let make = |n: usize, len: usize| -> Value {
            let h: Hash = (0..n).map(|i| (format!("f{i:0>w$}", w = len.max(4) - 1), "v".repeat(len))).collect();
            Value::Hash(Box::new(h))
        };
        assert_eq!(round_trip(&make(t.hash_max_listpack_entries, 8), o), types::HASH_LISTPACK);
        assert_eq!(round_trip(&make(t.hash_max_listpack_entries + 1, 8), o), types::HASH);
        assert_eq!(round_trip(&make(3, t.hash_max_listpack_value), o), types::HASH_LISTPACK);
        assert_eq!(round_trip(&make(3, t.hash_max_listpack_value + 1), o), types::HASH);
        // Fields and values that are integers are stored as integers in the listpack.
        let ints: Hash = [("1", "2"), ("-300", "70000")].into_iter().collect();
        assert_eq!(round_trip(&Value::Hash(Box::new(ints)), o), types::HASH_LISTPACK);
    });
}

#[test]
fn sets_are_intsets_while_all_integers_and_few() {
    both(|o| {
        let t = Thresholds::default();
        let ints = |n: usize, scale: i64| {
            let m: Vec<String> = (0..i64::try_from(n).unwrap()).map(|i| (i * scale - 5).to_string()).collect();
            Value::Set(Box::new(Set::from_members(m.iter().map(std::string::String::as_bytes))))
        };
        assert_eq!(round_trip(&ints(t.set_max_intset_entries, 1), o), types::SET_INTSET);
        assert_eq!(round_trip(&ints(10, 1 << 40), o), types::SET_INTSET);
        assert_eq!(round_trip(&ints(t.set_max_intset_entries + 1, 1), o), types::SET);
        let mixed = Set::from_members([&b"1"[..], b"a", b"01"]);
        assert_eq!(round_trip(&Value::Set(Box::new(mixed)), o), types::SET);
    });
}

#[test]
fn sorted_sets_switch_to_zset_2_past_the_thresholds() {
    both(|o| {
        let t = Thresholds::default();
        let make = |n: usize, len: usize, score: fn(usize) -> f64| {
            let e = (0..n).map(|i| (Key::new(format!("{i:0>len$}").as_bytes()), score(i))).collect();
            Value::ZSet(Box::new(ZSet::from_entries(e)))
        };
        let scores: [fn(usize) -> f64; 4] =
            [|i| i as f64, |i| i as f64 / 7.0 - 3.0, |i| if i % 2 == 0 { f64::INFINITY } else { -1e300 }, |_| -0.0];
        for score in scores {
            assert_eq!(round_trip(&make(t.zset_max_listpack_entries, 3, score), o), types::ZSET_LISTPACK);
            assert_eq!(round_trip(&make(t.zset_max_listpack_entries + 1, 3, score), o), types::ZSET_2);
            assert_eq!(round_trip(&make(2, t.zset_max_listpack_value, score), o), types::ZSET_LISTPACK);
            assert_eq!(round_trip(&make(2, t.zset_max_listpack_value + 1, score), o), types::ZSET_2);
        }
    });
}

#[test]
fn lists_split_into_nodes_as_quicklist_push_tail_does() {
    both(|o| {
        for (n, len) in [(1, 1), (500, 10), (3000, 100), (40, 5000), (3, 20000)] {
            let list: List = (0..n).map(|i| format!("{i}:{}", "x".repeat(len))).collect();
            assert_eq!(round_trip(&Value::List(list), o), types::LIST_QUICKLIST_2);
        }
    });
    // Node sizes under -2 (8 KB): each node stays within the limit and the next element would
    // not have fitted.
    let list: List = (0..2000).map(|i| format!("element-{i}")).collect();
    let nodes = quicklist_nodes(&list, -2);
    let lps: Vec<&Listpack> =
        nodes.iter().filter_map(|n| if let Node::Packed(lp) = n { Some(lp) } else { None }).collect();
    assert_eq!(lps.iter().map(|lp| lp.len()).sum::<usize>(), 2000);
    for lp in &lps {
        assert!(lp.bytes() + NODE_ENTRY_OVERHEAD <= 8192 + 20);
    }
    for w in lps.windows(2) {
        let next_len = w[1].iter().next().map_or(0, |e| e.to_vec().len());
        assert!(w[0].bytes() + next_len + NODE_ENTRY_OVERHEAD > 8192, "a node was closed early");
    }
    // A count limit: 5 entries a node.
    let nodes = quicklist_nodes(&list, 5);
    assert_eq!(nodes.len(), 400);
}

#[test]
fn empty_collections_read_as_nothing() {
    for (t, body) in [(types::LIST, vec![0]), (types::SET, vec![0]), (types::HASH, vec![0]), (types::ZSET_2, vec![0])] {
        assert_eq!(read_object(&mut SliceInput::new(&body), t, &ReadOptions::default()).ok(), Some(None));
    }
}

#[test]
fn duplicates_nan_and_bad_blobs_are_refused() {
    let cases: Vec<(u8, Vec<u8>)> = vec![
        (types::SET, vec![2, 1, b'a', 1, b'a']),
        (types::HASH, vec![2, 1, b'a', 1, b'1', 1, b'a', 1, b'2']),
        (types::ZSET_2, {
            let mut v = vec![1, 1, b'a'];
            v.extend_from_slice(&f64::NAN.to_le_bytes());
            v
        }),
        (types::ZSET, vec![1, 1, b'a', 253]),
        (types::HASH_LISTPACK, {
            let lp = Listpack::from_entries([Entry::Str(b"a"), Entry::Int(1), Entry::Str(b"a"), Entry::Int(2)])
                .expect("small");
            let mut v = vec![u8::try_from(lp.bytes()).unwrap()];
            v.extend_from_slice(lp.as_bytes());
            v
        }),
        (types::ZSET_LISTPACK, {
            let lp = Listpack::from_entries([Entry::Str(b"a")]).expect("small");
            let mut v = vec![u8::try_from(lp.bytes()).unwrap()];
            v.extend_from_slice(lp.as_bytes());
            v
        }),
        (types::SET_INTSET, vec![12, 2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 5, 0]),
        (types::LIST_QUICKLIST_2, vec![1, 3, 1, b'x']),
        (types::LIST_QUICKLIST_2, vec![1, 2, 0]),
        (types::MODULE_2, vec![5]),
        (8, vec![]),
    ];
    for (t, body) in cases {
        assert!(read_object(&mut SliceInput::new(&body), t, &ReadOptions::default()).is_err(), "type {t}: {body:?}");
    }
}

#[test]
fn module_values_are_refused_with_redis_message() {
    // A module id is the 9-character name in 6-bit groups, then a 10-bit encoding version.
    let name = b"mymodule1";
    const CSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let id = name.iter().fold(0u64, |id, c| (id << 6) | CSET.iter().position(|x| x == c).unwrap_or(0) as u64) << 10 | 3;
    let mut body = Vec::new();
    super::super::io::put_len(&mut body, id);
    let e = read_object(&mut SliceInput::new(&body), types::MODULE_2, &ReadOptions::default()).expect_err("refused");
    assert_eq!(e.to_string(), "The RDB file contains module data I can't load: no matching module type 'mymodule1'");
}

#[test]
fn random_values_round_trip() {
    let mut rng = fastrand::Rng::with_seed(42);
    let word = |rng: &mut fastrand::Rng| -> Vec<u8> {
        match rng.u8(0..5) {
            0 => rng.i64(..).to_string().into_bytes(),
            1 => rng.i64(-100..100).to_string().into_bytes(),
            2 => (0..rng.usize(0..80)).map(|_| rng.u8(..)).collect(),
            3 => vec![b'r'; rng.usize(0..300)],
            _ => format!("w{}", rng.u32(..)).into_bytes(),
        }
    };
    for _ in 0..300 {
        let n = rng.usize(1..300);
        let v = match rng.u8(0..4) {
            0 => Value::List((0..n).map(|_| word(&mut rng)).collect()),
            1 => Value::Set(Box::new(
                (0..n).map(|_| word(&mut rng)).collect::<Vec<_>>().iter().map(std::vec::Vec::as_slice).collect(),
            )),
            2 => Value::Hash(Box::new((0..n).map(|_| (word(&mut rng), word(&mut rng))).collect())),
            _ => {
                let e = (0..n).map(|_| (Key::new(&word(&mut rng)), (rng.f64() - 0.5) * 1e6)).collect();
                Value::ZSet(Box::new(ZSet::from_entries(e)))
            }
        };
        both(|o| {
            round_trip(&v, o);
        });
    }
}

#[test]
fn old_plain_lists_and_text_score_sorted_sets_read() {
    let list = [2, 1, b'a', 0xC0, 7];
    let got = read_object(&mut SliceInput::new(&list), types::LIST, &ReadOptions::default()).expect("reads");
    assert_eq!(got, Some(Object::Value(Value::List([&b"a"[..], b"7"].into_iter().collect()))));
    let mut zset = vec![3, 1, b'a', 3, b'1', b'.', b'5', 1, b'b', 254, 1, b'c', 255];
    let got = read_object(&mut SliceInput::new(&zset), types::ZSET, &ReadOptions::default()).expect("reads");
    let want = ZSet::from_entries(vec![
        (Key::new(b"a"), 1.5),
        (Key::new(b"b"), f64::INFINITY),
        (Key::new(b"c"), f64::NEG_INFINITY),
    ]);
    assert_eq!(got, Some(Object::Value(Value::ZSet(Box::new(want)))));
    zset[4] = b'x';
    assert!(read_object(&mut SliceInput::new(&zset), types::ZSET, &ReadOptions::default()).is_err());
}
