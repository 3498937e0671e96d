//! Hash flooding, measured as an attacker could attempt it: crowd many keys into one shard of
//! a running magpie-server, and compare GET and SET throughput over those keys with the same
//! number of keys spread over every shard (bench/hashflood.sh runs it).
//!
//! An attacker cannot compute Magpie's hashes (every table is seeded per process), but SCAN's
//! cursor names the shard it is in, so keys that share a shard can be picked out: this tool
//! writes `CANDIDATES` keys, then walks shard 0 with SCAN (stopping exactly at its end), and
//! keeps the keys found there. The control set is as many keys taken from the whole keyspace.
//!
//! ```text
//! one_shard PORT CANDIDATES [ROUNDS] [CONNECTIONS] [PIPELINE]
//! ```
//!
//! Prints one line per workload: keys, ops/s over the spread keys, over the one-shard keys,
//! and their ratio.

use std::time::Instant;

use magpie_client::{Client, Config, Frame};

fn number(args: &[String], i: usize, default: u64) -> u64 {
    args.get(i).map_or(default, |a| a.parse().unwrap_or_else(|_| panic!("argument {i} must be a number")))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port = number(&args, 1, 6379) as u16;
    let candidates = number(&args, 2, 640_000) as usize;
    let rounds = number(&args, 3, 3) as usize;
    let connections = number(&args, 4, 8) as usize;
    let pipeline = number(&args, 5, 16) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let config = Config { port, ..Config::default() };
        let mut c = Client::connect(&config).await.expect("connect");
        c.cmd(&["FLUSHALL"]).await.expect("flushall");
        // Candidates, written in pipelined batches.
        let key = |i: usize| format!("flood:{i:010}");
        for chunk in (0..candidates).collect::<Vec<_>>().chunks(1000) {
            let cmds: Vec<Vec<String>> = chunk.iter().map(|&i| vec!["SET".into(), key(i), "v".into()]).collect();
            c.pipeline(&cmds).await.expect("fill");
        }
        // Walk shard 0: the cursor's low bits are the shard, the rest how many of its entries
        // remain (plus one); COUNT never more than remain, so no call spills into shard 1.
        let shards = 64u64;
        let mut one_shard: Vec<String> = Vec::new();
        let mut count = 1000u64;
        let mut cursor = 0u64;
        loop {
            let reply = c.cmd(&["SCAN".into(), cursor.to_string(), "COUNT".into(), count.to_string()]).await;
            let Ok(Frame::Array(parts)) = reply else { panic!("SCAN failed: {reply:?}") };
            let (Some(Frame::Bulk(next)), Some(Frame::Array(keys))) = (parts.first(), parts.get(1)) else {
                panic!("SCAN reply")
            };
            for k in keys {
                if let Frame::Bulk(k) = k {
                    one_shard.push(String::from_utf8_lossy(k).into_owned());
                }
            }
            let next: u64 = String::from_utf8_lossy(next).parse().expect("cursor");
            if next == 0 || !next.is_multiple_of(shards) {
                break; // shard 0 is done
            }
            let remaining = (next / shards).saturating_sub(1);
            if remaining == 0 {
                break;
            }
            count = remaining.min(1000);
            cursor = next;
        }
        let n = one_shard.len();
        // The control: as many keys, every 64th candidate (spread over all shards).
        let step = (candidates / n.max(1)).max(1);
        let spread: Vec<String> = (0..n).map(|i| key(i * step)).collect();
        println!("{n} of {candidates} candidates are in shard 0; {connections} connections, pipeline {pipeline}");
        println!("{:<6} {:>14} {:>14} {:>8}", "test", "spread ops/s", "1-shard ops/s", "ratio");
        for test in ["GET", "SET"] {
            let mut best = [0f64; 2];
            for _ in 0..rounds {
                for (side, keys) in [&spread, &one_shard].into_iter().enumerate() {
                    let ops = run(&config, keys, test, connections, pipeline).await;
                    best[side] = best[side].max(ops);
                }
            }
            println!("{test:<6} {:>14.0} {:>14.0} {:>8.2}", best[0], best[1], best[1] / best[0]);
        }
    });
}

/// Every key of `keys`, three times over, split among `connections` clients sending
/// `pipeline` commands at a time. Returns operations per second.
async fn run(config: &Config, keys: &[String], test: &str, connections: usize, pipeline: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for part in 0..connections {
        let config = config.clone();
        let mine: Vec<String> = keys.iter().skip(part).step_by(connections).cloned().collect();
        let test = test.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(&config).await.expect("connect");
            for _ in 0..3 {
                for batch in mine.chunks(pipeline) {
                    let cmds: Vec<Vec<&str>> = batch
                        .iter()
                        .map(|k| if test == "GET" { vec!["GET", k.as_str()] } else { vec!["SET", k.as_str(), "w"] })
                        .collect();
                    c.pipeline(&cmds).await.expect("pipeline");
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    (keys.len() * 3) as f64 / start.elapsed().as_secs_f64()
}
