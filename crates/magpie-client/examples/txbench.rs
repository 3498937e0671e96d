//! A load generator for transactions: each client sends `MULTI`, N `SET`s (or `INCR`s) of
//! random keys and `EXEC` in one write and waits for the replies, again and again, for a
//! while; prints transactions per second. Used by `bench/txn.sh` and `bench/txnmix.sh` against
//! Magpie and redis-server alike.
//!
//! ```text
//! cargo run --release -p magpie-client --example txbench -- 127.0.0.1:6379 [clients] [seconds] [sets] [set|incr]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use magpie_client::{Client, Config, Frame};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args.get(1).cloned().unwrap_or_else(|| "127.0.0.1:6379".to_owned());
    let num = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (clients, seconds, sets) = (num(2, 50), num(3, 5), num(4, 10));
    let incr = args.get(5).is_some_and(|a| a.eq_ignore_ascii_case("incr"));
    let config = match Config::from_url(&format!("redis://{addr}/")) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("txbench: {e}");
            std::process::exit(2);
        }
    };
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (config, done, stop) = (config.clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut client = match Client::connect(&config).await {
                Ok(client) => client,
                Err(e) => {
                    eprintln!("txbench: {e}");
                    std::process::exit(2);
                }
            };
            let value = "v".repeat(64);
            let mut n = c * 7919;
            while !stop.load(Ordering::Relaxed) {
                let mut cmds: Vec<Vec<String>> = Vec::with_capacity(sets as usize + 2);
                cmds.push(vec!["MULTI".to_owned()]);
                for _ in 0..sets {
                    n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    // INCRs go to keys of their own (`tx:`), which no SET has made a non-number.
                    let key = format!("{}:{:012}", if incr { "tx" } else { "key" }, (n >> 33) % 100_000);
                    cmds.push(if incr {
                        vec!["INCR".to_owned(), key]
                    } else {
                        vec!["SET".to_owned(), key, value.clone()]
                    });
                }
                cmds.push(vec!["EXEC".to_owned()]);
                match client.pipeline(&cmds).await {
                    Ok(replies) => match replies.last() {
                        Some(Frame::Array(items)) if items.len() == sets as usize => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            eprintln!("txbench: unexpected EXEC reply {other:?}");
                            std::process::exit(1);
                        }
                    },
                    Err(e) => {
                        eprintln!("txbench: {e}");
                        std::process::exit(2);
                    }
                }
            }
        }));
    }
    // Warm up for a second, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (start, before) = (Instant::now(), done.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (after, elapsed) = (done.load(Ordering::Relaxed), start.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let tps = (after - before) as f64 / elapsed;
    let what = if incr { "INCR" } else { "SET" };
    println!(
        "{tps:.0} transactions/s ({:.0} {what}s/s) with {clients} clients, {sets} {what}s each",
        tps * sets as f64
    );
}
