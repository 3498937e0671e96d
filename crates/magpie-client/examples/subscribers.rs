//! Many subscribers in one process, for bench/pubsub.sh: N connections SUBSCRIBE to one
//! channel, then each reads until it has received M messages of a known payload size, counting
//! bytes rather than parsing (every message has the same length), so that one client core can
//! keep up with a server's fan-out.
//!
//! ```text
//! subscribers HOST PORT CHANNEL SUBSCRIBERS MESSAGES PAYLOAD_BYTES [TIMEOUT_SECS]
//! ```
//!
//! Prints `ready` once every connection is subscribed, then, at the end, one line:
//! `received=<total messages> min=<fewest by one subscriber> seconds=<first byte to last>`.
//! Exits 1 if the timeout passed first (a subscriber was disconnected, or too slow).

use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 7 {
        eprintln!("usage: subscribers HOST PORT CHANNEL SUBSCRIBERS MESSAGES PAYLOAD_BYTES [TIMEOUT_SECS]");
        std::process::exit(2);
    }
    let number = |i: usize| -> u64 {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("subscribers: argument {i} must be a number, not {:?}", args[i]);
            std::process::exit(2)
        })
    };
    let (host, port, channel) = (args[1].clone(), number(2) as u16, args[3].clone());
    let (subscribers, messages, payload) = (number(4) as usize, number(5), number(6) as usize);
    let timeout = Duration::from_secs(args.get(7).and_then(|t| t.parse().ok()).unwrap_or(120));
    // The RESP2 message every subscriber receives, and its length.
    let message_len =
        format!("*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n${payload}\r\n", channel.len()).len() + payload + 2;
    let confirmation = format!("*3\r\n$9\r\nsubscribe\r\n${}\r\n{channel}\r\n:1\r\n", channel.len());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let local = tokio::task::LocalSet::new();
    let outcome = local.block_on(&runtime, async move {
        let mut conns = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            let mut s = TcpStream::connect((host.as_str(), port)).await.expect("connect");
            s.set_nodelay(true).ok();
            let cmd = format!("*2\r\n$9\r\nSUBSCRIBE\r\n${}\r\n{channel}\r\n", channel.len());
            s.write_all(cmd.as_bytes()).await.expect("SUBSCRIBE");
            let mut got = vec![0u8; confirmation.len()];
            s.read_exact(&mut got).await.expect("the confirmation");
            assert_eq!(got, confirmation.as_bytes(), "unexpected reply to SUBSCRIBE");
            conns.push(s);
        }
        println!("ready");
        std::io::stdout().flush().ok();
        let first: Rc<Cell<Option<Instant>>> = Rc::default();
        let last: Rc<Cell<Option<Instant>>> = Rc::default();
        let want = messages * message_len as u64;
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut s| {
                let (first, last) = (first.clone(), last.clone());
                tokio::task::spawn_local(async move {
                    let mut buf = vec![0u8; 256 * 1024];
                    let mut bytes = 0u64;
                    while bytes < want {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if first.get().is_none() {
                                    first.set(Some(Instant::now()));
                                }
                                bytes += n as u64;
                            }
                        }
                    }
                    last.set(Some(Instant::now()));
                    bytes / message_len as u64
                })
            })
            .collect();
        let all = async {
            let mut counts = Vec::new();
            for t in tasks {
                counts.push(t.await.unwrap_or(0));
            }
            counts
        };
        let counts = tokio::time::timeout(timeout, all).await.ok();
        let seconds = match (first.get(), last.get()) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        (counts, seconds)
    });
    match outcome {
        (Some(counts), seconds) => {
            let total: u64 = counts.iter().sum();
            let min = counts.iter().copied().min().unwrap_or(0);
            println!("received={total} min={min} seconds={seconds:.3}");
            if min < messages {
                std::process::exit(1);
            }
        }
        (None, _) => {
            println!("received=? min=? seconds=? (timed out after {timeout:?})");
            std::process::exit(1);
        }
    }
}
