//! Reads the RDB files and RESTORE payloads of Redis's own test suite
//! (`tests/data/redis/README.md`) and checks what Redis's tests check of them.

use std::collections::BTreeMap;

use magpie_persist::rdb::{Item, Object, RdbError, RdbReader, ReadOptions, restore};
use magpie_store::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/redis");

/// A value in a canonical text form: lists in order, sets sorted, hashes sorted by field,
/// sorted sets by score, as Redis's `csvdump` test helper prints them.
fn canon(v: &Value) -> Vec<String> {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match v {
        Value::Str(b) => vec![s(b)],
        Value::Int(n) => vec![n.to_string()],
        Value::List(l) => l.iter().map(s).collect(),
        Value::Set(set) => {
            let mut m = Vec::new();
            set.for_each(|b| m.push(s(b)));
            m.sort();
            m
        }
        Value::Hash(h) => {
            let mut pairs: Vec<(String, String)> = h.iter().map(|(f, v)| (s(f), s(v))).collect();
            pairs.sort();
            pairs.into_iter().flat_map(|(f, v)| [f, v]).collect()
        }
        Value::ZSet(z) => z.iter().flat_map(|(m, score)| [s(m), format!("{score}")]).collect(),
        Value::Stream(st) => st
            .range(magpie_store::StreamId::MIN, magpie_store::StreamId::MAX, false)
            .flat_map(|e| {
                let mut v = vec![e.id.to_string()];
                v.extend(e.fields().flat_map(|(f, x)| [s(&f.to_vec()), s(&x.to_vec())]));
                v
            })
            .collect(),
    }
}

struct Loaded {
    keys: BTreeMap<String, Vec<String>>,
    aux: BTreeMap<String, String>,
    skipped: u64,
}

fn load(name: &str) -> Result<Loaded, RdbError> {
    let file = std::fs::File::open(format!("{DIR}/{name}")).map_err(RdbError::Io)?;
    let mut r = RdbReader::new(file, ReadOptions::default())?;
    let mut keys = BTreeMap::new();
    let mut aux = BTreeMap::new();
    while let Some(item) = r.next_item()? {
        match item {
            Item::Key(k) => {
                let Object::Value(v) = k.object else { panic!("no streams in these files") };
                keys.insert(String::from_utf8_lossy(&k.key).into_owned(), canon(&v));
            }
            Item::Aux(a) => {
                aux.insert(
                    String::from_utf8_lossy(&a.key).into_owned(),
                    String::from_utf8_lossy(&a.value).into_owned(),
                );
            }
            _ => {}
        }
    }
    Ok(Loaded { keys, aux, skipped: r.empty_keys_skipped() })
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(std::string::ToString::to_string).collect()
}

/// tests/integration/rdb.tcl, "RDB encoding loading test": an RDB 4 file with zipmap,
/// ziplist and intset encodings, compared with its `csvdump`.
#[test]
fn encodings_rdb_loads_as_redis_loads_it() {
    let l = load("encodings.rdb").expect("loads");
    let want: BTreeMap<String, Vec<String>> = [
        ("compressible", vec!["a".repeat(137)]),
        (
            "hash",
            strs(&[
                "a",
                "1",
                "aa",
                "10",
                "aaa",
                "100",
                "b",
                "2",
                "bb",
                "20",
                "bbb",
                "200",
                "c",
                "3",
                "cc",
                "30",
                "ccc",
                "300",
                "ddd",
                "400",
                "eee",
                "5000000000",
            ]),
        ),
        ("hash_zipped", strs(&["a", "1", "b", "2", "c", "3"])),
        ("list", strs(&["1", "2", "3", "a", "b", "c", "100000", "6000000000"].repeat(3))),
        ("list_zipped", strs(&["1", "2", "3", "a", "b", "c", "100000", "6000000000"])),
        ("number", strs(&["10"])),
        ("set", strs(&["1", "100000", "2", "3", "6000000000", "a", "b", "c"])),
        ("set_zipped_1", strs(&["1", "2", "3", "4"])),
        ("set_zipped_2", strs(&["100000", "200000", "300000", "400000"])),
        ("set_zipped_3", strs(&["1000000000", "2000000000", "3000000000", "4000000000", "5000000000", "6000000000"])),
        ("string", strs(&["Hello World"])),
        (
            "zset",
            strs(&[
                "a",
                "1",
                "b",
                "2",
                "c",
                "3",
                "aa",
                "10",
                "bb",
                "20",
                "cc",
                "30",
                "aaa",
                "100",
                "bbb",
                "200",
                "ccc",
                "300",
                "aaaa",
                "1000",
                "cccc",
                "123456789",
                "bbbb",
                "5000000000",
            ]),
        ),
        ("zset_zipped", strs(&["a", "1", "b", "2", "c", "3"])),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(l.keys, want);
}

/// convert-zipmap-hash-on-load.tcl, convert-ziplist-hash-on-load.tcl,
/// convert-ziplist-zset-on-load.tcl, and rdb.tcl's "test old version rdb file".
#[test]
fn old_hash_zset_and_list_encodings_load() {
    let l = load("hash-zipmap.rdb").expect("loads");
    assert_eq!(l.keys["hash"], strs(&["f1", "v1", "f2", "v2"]));
    let l = load("hash-ziplist.rdb").expect("loads");
    assert_eq!(l.keys["hash"], strs(&["f1", "v1", "f2", "v2"]));
    assert_eq!(l.aux["redis-bits"], "64");
    let l = load("zset-ziplist.rdb").expect("loads");
    assert_eq!(l.keys["zset"], strs(&["one", "1", "two", "2"]));
    let l = load("list-quicklist.rdb").expect("loads");
    assert_eq!((&l.keys["x"], &l.keys["list"]), (&strs(&["7"]), &strs(&["7"])));
}

/// rdb.tcl, "script won't load anymore if it's in rdb": the `lua` AUX field is read (and
/// left to the caller, which ignores it as Redis 7.0 does).
#[test]
fn script_backup_is_an_aux_field() {
    let l = load("scriptbackup.rdb").expect("loads");
    assert_eq!(l.aux["lua"], "return redis.call('set', 'foo', 'bar')");
    assert!(l.keys.is_empty());
}

/// corrupt-dump.tcl: "load corrupted rdb with empty keys" skips nine empty keys of every
/// encoding; "load corrupted rdb with no CRC - #3505" fails an integrity check.
#[test]
fn corrupt_files_are_handled_as_redis_handles_them() {
    let l = load("corrupt_empty_keys.rdb").expect("loads");
    assert_eq!((l.keys.len(), l.skipped), (0, 9));
    match load("corrupt_ziplist.rdb") {
        Err(RdbError::Corrupt(m)) => assert!(m.contains("integrity check failed"), "{m}"),
        other => panic!("not refused: {:?}", other.map(|l| l.keys.len())),
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// Every RESTORE payload of corrupt-dump.tcl: none makes the reader panic, and each one Redis
/// answers with "Bad data format" is refused (with the checksum check off where the test
/// turned it off).
#[test]
fn corrupt_dump_payloads_are_refused() {
    let text = std::fs::read_to_string(format!("{DIR}/corrupt-dump-payloads.txt")).expect("vectors");
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.split(' ');
        let (expect, crc, hex) = (parts.next(), parts.next(), parts.next().unwrap_or(""));
        let payload = unhex(hex);
        let opts = ReadOptions { verify_checksum: crc == Some("crc"), ..ReadOptions::default() };
        let result = restore(&payload, &opts);
        if expect == Some("bad") {
            assert!(result.is_err(), "accepted: {hex}");
            checked += 1;
        }
    }
    assert!(checked >= 50, "{checked}");
}
