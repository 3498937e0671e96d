//! Measures how fast Magpie writes and reads an RDB file of mixed values, and DUMP/RESTORE of
//! small values.
//!
//! ```text
//! cargo run --release -p magpie-persist --example rdb_throughput -- [keys] [path]
//! ```
//! Default: 1,000,000 keys in /tmp/magpie-throughput.rdb (removed afterwards). A quarter each:
//! 20-byte strings, 10-element lists, 10-field hashes, 10-member sorted sets.

use std::time::Instant;

use magpie_persist::rdb::{Item, Object, RdbReader, RdbWriter, ReadOptions, WriteOptions, dump, restore};
use magpie_store::{Hash, Key, List, Value, ZSet};

fn value(i: usize) -> Value {
    match i % 4 {
        0 => Value::string(format!("value-{i:0>14}").as_bytes()),
        1 => Value::List((0..10).map(|j| format!("element-{i}-{j}")).collect::<List>()),
        2 => Value::Hash(Box::new((0..10).map(|j| (format!("field{j}"), format!("v{i}-{j}"))).collect::<Hash>())),
        _ => Value::ZSet(Box::new(ZSet::from_entries(
            (0..10).map(|j| (Key::new(format!("m{j}").as_bytes()), (i * j) as f64 / 7.0)).collect(),
        ))),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let keys: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let path = args.next().unwrap_or_else(|| "/tmp/magpie-throughput.rdb".into());
    let values: Vec<Object> = (0..keys).map(|i| Object::Value(value(i))).collect();

    let start = Instant::now();
    let mut w = RdbWriter::new(std::fs::File::create(&path)?, WriteOptions::default(), true)?;
    w.default_aux("7.0.15", 0, 0)?;
    w.select_db(0, keys as u64, 0)?;
    for (i, v) in values.iter().enumerate() {
        w.key(format!("key:{i}").as_bytes(), v, None)?;
    }
    w.finish()?.sync_all()?;
    let write = start.elapsed();
    let bytes = std::fs::metadata(&path)?.len();

    let start = Instant::now();
    let mut r = RdbReader::new(std::fs::File::open(&path)?, ReadOptions::default())?;
    let mut read_keys = 0;
    while let Some(item) = r.next_item()? {
        if let Item::Key(_) = item {
            read_keys += 1;
        }
    }
    let read = start.elapsed();
    assert_eq!(read_keys, keys);
    std::fs::remove_file(&path)?;

    let mb = bytes as f64 / 1e6;
    println!("file: {keys} keys, {mb:.1} MB");
    println!(
        "write: {:.2} s, {:.0} MB/s, {:.0} keys/s",
        write.as_secs_f64(),
        mb / write.as_secs_f64(),
        keys as f64 / write.as_secs_f64()
    );
    println!(
        "read:  {:.2} s, {:.0} MB/s, {:.0} keys/s",
        read.as_secs_f64(),
        mb / read.as_secs_f64(),
        keys as f64 / read.as_secs_f64()
    );

    let sample: Vec<&Object> = values.iter().take(4).collect();
    let rounds = 200_000;
    let start = Instant::now();
    let mut total = 0;
    for i in 0..rounds {
        let p = dump(sample[i % 4], &WriteOptions::default());
        total += restore(&p, &ReadOptions::default()).map(|_| p.len())?;
    }
    let t = start.elapsed();
    println!(
        "DUMP+RESTORE of small values: {:.0} ns per value ({total} payload bytes)",
        t.as_nanos() as f64 / rounds as f64
    );
    Ok(())
}
