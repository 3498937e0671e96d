//! RDB files and payloads written by Magpie and read back: every item kind, streams with
//! consumer groups, checksums, and damage.

use magpie_persist::rdb::{
    Aux, Consumer, ConsumerGroup, Field, Item, KeyEntry, NODE_MAX_BYTES, NODE_MAX_ENTRIES, Object, PendingEntry,
    RdbError, RdbReader, RdbWriter, ReadOptions, Stream, StreamId, WriteOptions, dump, restore,
};
use magpie_store::{Hash, Key, List, Set, Value, ZSet};

fn id(ms: u64, seq: u64) -> StreamId {
    StreamId { ms, seq }
}

fn sample_stream(n: u64) -> Stream {
    let entries: Vec<(StreamId, Vec<Field>)> = (0..n)
        .map(|i| {
            let mut fields = vec![
                (b"sensor".to_vec(), format!("s{}", i % 3).into_bytes()),
                (b"temp".to_vec(), (i * 7).to_string().into_bytes()),
            ];
            if i % 10 == 0 {
                fields.push((b"note".to_vec(), vec![b'n'; (i % 50) as usize]));
            }
            (id(1_700_000_000_000 + i / 3, i % 3), fields)
        })
        .collect();
    let mut s = Stream::from_entries(&entries, NODE_MAX_BYTES, NODE_MAX_ENTRIES);
    s.groups.push(ConsumerGroup {
        name: b"g1".to_vec(),
        last_id: id(1_700_000_000_010, 1),
        entries_read: 32,
        pending: vec![
            PendingEntry { id: id(1_700_000_000_000, 0), delivery_time_ms: 1_700_000_001_000, delivery_count: 1 },
            PendingEntry { id: id(1_700_000_000_001, 2), delivery_time_ms: 1_700_000_002_000, delivery_count: 3 },
        ],
        consumers: vec![
            Consumer {
                name: b"alice".to_vec(),
                seen_time_ms: 1_700_000_003_000,
                pending: vec![id(1_700_000_000_000, 0)],
            },
            Consumer {
                name: b"bob".to_vec(),
                seen_time_ms: 1_700_000_004_000,
                pending: vec![id(1_700_000_000_001, 2)],
            },
        ],
    });
    s.groups.push(ConsumerGroup {
        name: b"idle".to_vec(),
        last_id: StreamId::default(),
        entries_read: -1,
        pending: vec![],
        consumers: vec![],
    });
    s
}

fn sample_values(scale: usize) -> Vec<(Vec<u8>, Object, Option<i64>)> {
    let list: List = (0..50 * scale).map(|i| format!("item-{i}")).collect();
    let hash: Hash = (0..10).map(|i| (format!("f{i}"), format!("v{i}"))).collect();
    let big_hash: Hash = (0..130 + 10 * scale).map(|i| (format!("field{i}"), "x".repeat(i % 90))).collect();
    let set = Set::from_members([&b"3"[..], b"1", b"2"]);
    let zset = ZSet::from_entries(vec![(Key::new(b"a"), 1.5), (Key::new(b"b"), -2.0)]);
    vec![
        (b"str".to_vec(), Object::Value(Value::string(b"hello")), None),
        (b"12345".to_vec(), Object::Value(Value::Int(-99)), Some(4_102_444_800_000)),
        (vec![b'k'; 100], Object::Value(Value::string(&[b'v'; 300])), None),
        (b"list".to_vec(), Object::Value(Value::List(list)), None),
        (b"hash".to_vec(), Object::Value(Value::Hash(Box::new(hash))), Some(1)),
        (b"bighash".to_vec(), Object::Value(Value::Hash(Box::new(big_hash))), None),
        (b"set".to_vec(), Object::Value(Value::Set(Box::new(set))), None),
        (b"zset".to_vec(), Object::Value(Value::ZSet(Box::new(zset))), None),
        (b"stream".to_vec(), Object::Stream(Box::new(sample_stream(25 * scale as u64))), None),
    ]
}

fn write_file(opts: WriteOptions, checksum: bool, scale: usize) -> Vec<u8> {
    let mut w = RdbWriter::new(Vec::new(), opts, checksum).expect("header");
    w.default_aux("7.0.15", 1_700_000_000, 123_456).expect("aux");
    w.function(b"#!lua name=mylib\nredis.register_function('f', function() return 1 end)").expect("function");
    for db in [0u64, 3] {
        let values = sample_values(scale);
        let expiring = values.iter().filter(|v| v.2.is_some()).count() as u64;
        w.select_db(db, values.len() as u64, expiring).expect("select");
        for (k, v, exp) in &values {
            w.key(k, v, *exp).expect("key");
        }
    }
    w.key_with(b"lru", &Object::Value(Value::Int(1)), None, Some(77), None).expect("key");
    w.key_with(b"lfu", &Object::Value(Value::Int(2)), None, None, Some(5)).expect("key");
    w.finish().expect("finish")
}

fn read_all(bytes: &[u8], opts: ReadOptions) -> Result<Vec<Item>, RdbError> {
    let mut r = RdbReader::new(bytes, opts)?;
    let mut items = Vec::new();
    while let Some(i) = r.next_item()? {
        items.push(i);
    }
    Ok(items)
}

#[test]
fn a_written_file_reads_back_item_for_item() {
    for compression in [true, false] {
        let bytes = write_file(WriteOptions { compression, ..WriteOptions::default() }, true, 100);
        assert_eq!(&bytes[..9], b"REDIS0010");
        let items = read_all(&bytes, ReadOptions::default()).expect("reads");
        let mut want = vec![
            Item::Aux(Aux { key: b"redis-ver".to_vec(), value: b"7.0.15".to_vec() }),
            Item::Aux(Aux { key: b"redis-bits".to_vec(), value: b"64".to_vec() }),
            Item::Aux(Aux { key: b"ctime".to_vec(), value: b"1700000000".to_vec() }),
            Item::Aux(Aux { key: b"used-mem".to_vec(), value: b"123456".to_vec() }),
            Item::Aux(Aux { key: b"aof-base".to_vec(), value: b"0".to_vec() }),
            Item::Function(b"#!lua name=mylib\nredis.register_function('f', function() return 1 end)".to_vec()),
        ];
        for db in [0u64, 3] {
            let values = sample_values(100);
            want.push(Item::SelectDb(db));
            want.push(Item::ResizeDb { db_size: values.len() as u64, expires_size: 2 });
            for (key, object, expire_ms) in values {
                want.push(Item::Key(KeyEntry { db, key, object, expire_ms, idle_secs: None, freq: None }));
            }
        }
        want.push(Item::Key(KeyEntry {
            db: 3,
            key: b"lru".to_vec(),
            object: Object::Value(Value::Int(1)),
            expire_ms: None,
            idle_secs: Some(77),
            freq: None,
        }));
        want.push(Item::Key(KeyEntry {
            db: 3,
            key: b"lfu".to_vec(),
            object: Object::Value(Value::Int(2)),
            expire_ms: None,
            idle_secs: None,
            freq: Some(5),
        }));
        assert_eq!(items.len(), want.len());
        for (got, want) in items.iter().zip(&want) {
            assert_eq!(got, want);
        }
    }
}

#[test]
fn stream_layout_and_entries_survive() {
    let s = sample_stream(250);
    assert!(s.nodes.len() > 2, "250 entries take several nodes");
    let entries = s.entries().expect("well-formed");
    assert_eq!(entries.len(), 250);
    assert_eq!(entries[10].fields.len(), 3);
    assert_eq!(entries[11].fields[1], (b"temp".to_vec(), b"77".to_vec()));
    let payload = dump(&Object::Stream(Box::new(s.clone())), &WriteOptions::default());
    assert_eq!(restore(&payload, &ReadOptions::default()).expect("restores"), Object::Stream(Box::new(s)));
}

#[test]
fn checksums_are_checked_unless_zero_or_off() {
    let good = write_file(WriteOptions::default(), true, 1);
    assert!(read_all(&good, ReadOptions::default()).is_ok());
    let unchecked = write_file(WriteOptions::default(), false, 1);
    assert_eq!(&unchecked[unchecked.len() - 8..], &[0; 8]);
    let mut r = RdbReader::new(&unchecked[..], ReadOptions::default()).expect("header");
    while r.next_item().expect("reads").is_some() {}
    assert!(r.checksum_disabled());
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 1] ^= 0x55;
    assert!(matches!(read_all(&bad, ReadOptions::default()), Err(RdbError::Checksum { .. })));
    assert!(read_all(&bad, ReadOptions { verify_checksum: false, ..ReadOptions::default() }).is_ok());
}

#[test]
fn damaged_files_are_refused_never_panic() {
    // Small values, so that each damaged copy reads quickly (the fuzz targets go further).
    let good = write_file(WriteOptions::default(), true, 1);
    for cut in (0..good.len()).filter(|c| c % 11 == 0 || c + 100 > good.len()) {
        assert!(read_all(&good[..cut], ReadOptions::default()).is_err(), "cut at {cut}");
    }
    assert!(matches!(read_all(b"RUDIS0010\xff", ReadOptions::default()), Err(RdbError::Signature)));
    assert!(matches!(read_all(b"REDIS0011\xff", ReadOptions::default()), Err(RdbError::Version(11))));
    let mut rng = fastrand::Rng::with_seed(9);
    for _ in 0..300 {
        let mut bad = good.clone();
        for _ in 0..rng.usize(1..4) {
            let i = rng.usize(9..bad.len());
            bad[i] = rng.u8(..);
        }
        let _ = read_all(&bad, ReadOptions { verify_checksum: false, ..ReadOptions::default() });
    }
}

#[test]
fn module_aux_data_is_refused() {
    let mut bytes = b"REDIS0010".to_vec();
    bytes.extend_from_slice(&[247, 0x81, 0, 0, 0, 0, 0, 0, 0x04, 0x00, 2, 2]);
    match read_all(&bytes, ReadOptions::default()) {
        Err(RdbError::Module(m)) => assert!(m.starts_with("The RDB file contains AUX module data I can't load"), "{m}"),
        other => panic!("{other:?}"),
    }
}
