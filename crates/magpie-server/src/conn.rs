//! One client connection: read what is available, run every complete command in the buffer,
//! answer the whole batch with one write. Pipelining is the main lever for throughput.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use magpie_protocol::{Args, Decoder, Limits, Reply, Resp};
use magpie_store::now_ms;

use crate::blocking::{Timeout, Wait, Waiter};
use crate::client::Client;
use crate::command::{Ctx, Effects, dispatch};
use crate::journal::Fsync;
use crate::server::Shared;
use crate::stats;

const READ_CHUNK: usize = 16 * 1024;
/// Commands decoded (and their keys warmed) ahead of running them: enough for the cache
/// misses of their lookups to overlap, few enough for what they touch to stay in cache.
const BATCH: usize = 32;
/// Replies pending beyond this are written before the rest of the batch runs.
const FLUSH_AT: usize = 64 * 1024;
/// Redis's `client-query-buffer-limit`: a command still incomplete past this closes the client.
const QUERY_BUFFER_LIMIT: usize = 1 << 30;

pub async fn serve(shared: Arc<Shared>, mut stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let laddr = stream.local_addr().unwrap_or(addr);
    let mut client = shared.clients.connect(addr, laddr);
    let id = client.id;
    if shared.clients.len() > shared.settings.maxclients() {
        shared.clients.rejected.fetch_add(1, Ordering::Relaxed);
        let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
        shared.clients.disconnect(id);
        return;
    }
    shared.clients.accepted.fetch_add(1, Ordering::Relaxed);
    let mut stop = shared.shutdown_signal();
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Reply::new(Resp::V2);
    let mut decoder = Decoder::new(limits(&shared));
    // The current batch: each command's argument spans (into the read buffer, or into
    // `inline_args` for inline commands), reused from read to read.
    let mut batch: Vec<Queued> = Vec::with_capacity(BATCH);
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut inline_args: Vec<u8> = Vec::new();
    let mut effects = Effects::default();
    let mut wait = Wait::default();

    'conn: loop {
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            // Grow with what is buffered, so a large argument needs few reads and copies.
            rbuf.reserve(READ_CHUNK.max(rbuf.len()));
        }
        let timeout = shared.settings.timeout();
        let read = async {
            // Subscribers wait for messages, not commands: never idle (as in Redis).
            if timeout == 0 || client.info.pubsub.active() {
                Ok(stream.read_buf(&mut rbuf).await)
            } else {
                tokio::time::timeout(Duration::from_secs(timeout), stream.read_buf(&mut rbuf)).await
            }
        };
        // An interactive transaction left open past its age limit is rolled back even if the
        // client says nothing more.
        let txn_deadline = client.txn.deadline(&shared);
        let txn_expiry = async {
            match txn_deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let read = tokio::select! {
            r = read => Some(r),
            _ = stop.wait_for(|s| *s) => break,
            () = txn_expiry => {
                client.txn.expire(&shared);
                continue 'conn;
            }
            () = crate::pubsub::messages(&client.info) => None,
        };
        let Some(read) = read else {
            // Messages for this subscriber: written at once, then back to waiting.
            if crate::pubsub::write_messages(&shared, &client.info, &mut out, &mut stream).await.is_err() {
                break;
            }
            continue;
        };
        match read {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => stats::local().read(n),
            Err(_elapsed) => {
                debug!("closing idle client {id}");
                break;
            }
        }

        decoder.set_limits(limits(&shared));
        let mut last = None;
        let mut protocol_error = None;
        let mut more = true;
        while more && !client.close {
            // Decode a batch of commands, then warm the keys they name, then run them. The
            // clock is read per batch: a batch may wait on a slow client's writes.
            let now = now_ms();
            batch.clear();
            spans.clear();
            inline_args.clear();
            while batch.len() < BATCH {
                match decoder.next(&rbuf) {
                    Ok(Some(args)) => {
                        let start = spans.len();
                        let inline = !std::ptr::eq(args.buf(), &rbuf[..]);
                        if inline {
                            // Its arguments live in the decoder's scratch buffer, which the
                            // next command overwrites: keep a copy.
                            for arg in args.iter() {
                                spans.push((inline_args.len(), inline_args.len() + arg.len()));
                                inline_args.extend_from_slice(arg);
                            }
                        } else {
                            spans.extend_from_slice(args.spans());
                        }
                        batch.push(Queued { spans: start..spans.len(), inline });
                    }
                    Ok(None) => {
                        more = false;
                        break;
                    }
                    Err(e) => {
                        protocol_error = Some(e);
                        more = false;
                        break;
                    }
                }
            }
            // Fetched per batch: after an `.await` the task may run on another thread.
            let mut counters = stats::local();
            if batch.len() > 1 {
                let keys = batch.iter().filter(|q| !q.inline && q.spans.len() >= 2).map(|q| {
                    let (s, e) = spans[q.spans.start + 1];
                    &rbuf[s..e]
                });
                shared.keyspace.warm(client.db, keys);
            }
            let mut timer = stats::Timer::start();
            // The gate (see gate.rs), held across the batch's commands but never across an
            // `.await`: a transaction waits for at most one batch, and each command re-enters it
            // for free. A command that runs alone (EXEC) takes it exclusively itself.
            let mut pass = None;
            for q in &batch {
                let buf = if q.inline { &inline_args[..] } else { &rbuf[..] };
                let args = Args::new(buf, &spans[q.spans.clone()]);
                if crate::command::runs_alone(args.get(0)) {
                    pass = None;
                } else if pass.is_none() {
                    pass = Some(shared.gate.shared());
                }
                let mut ctx = Ctx {
                    shared: &shared,
                    ks: &shared.keyspace,
                    client: &mut client,
                    out: &mut out,
                    now,
                    stats: counters,
                    timer: &mut timer,
                    effects: &mut effects,
                    wait: &mut wait,
                };
                let ran = dispatch(&mut ctx, args);
                last = ran.or(last);
                if let (true, Some(cmd)) = (wait.requested, ran) {
                    // A blocking command found nothing: the replies before it go out now (as
                    // Redis sends them while the client waits), then the client waits, still
                    // reading what it sends, and nothing else runs until the wait ends.
                    pass = None;
                    let waiter = Arc::new(Waiter::new(&client, out.proto, cmd, args, &wait));
                    timer.stop(counters);
                    *client.info.last_cmd.lock() = cmd.name;
                    if !out.is_empty() {
                        if write_out(&mut stream, out.as_bytes(), timeout).await.is_err() {
                            // Gone before it could wait (it was never registered).
                            waiter.count_unserved();
                            break 'conn;
                        }
                        stats::local().wrote(out.len());
                        out.clear();
                    }
                    match block_on(&shared, &waiter, wait.timeout, &mut stream, &mut rbuf, &mut stop).await {
                        Ended::Reply(reply, wrote) => {
                            out.raw(&reply);
                            client.wrote = client.wrote.max(wrote);
                        }
                        Ended::TimedOut => out.null_array(),
                        Ended::Closed => break 'conn,
                    }
                    // Commands that arrived meanwhile are in the buffer: decode on.
                    more = true;
                    counters = stats::local();
                    timer = stats::Timer::start();
                }
                if client.close {
                    break;
                }
                // A long pipeline is answered in pieces, so its replies never pile up in
                // memory, and a client that does not read them stops being served.
                if out.len() >= FLUSH_AT {
                    pass = None;
                    timer.stop(counters);
                    wait_durable(&shared, &client).await;
                    if write_out(&mut stream, out.as_bytes(), timeout).await.is_err() {
                        break 'conn;
                    }
                    counters = stats::local();
                    counters.wrote(out.len());
                    out.clear();
                    timer = stats::Timer::start();
                }
            }
            drop(pass);
            timer.stop(counters);
        }
        if let Some(e) = &protocol_error {
            let mut msg = b"ERR ".to_vec();
            msg.extend_from_slice(e.message().as_bytes());
            stats::local().error(&msg);
            out.error(&msg);
            debug!("client {id}: {e}");
        }
        let consumed = decoder.consumed();
        rbuf.advance(consumed);
        decoder.discard(consumed);
        if rbuf.is_empty() && rbuf.capacity() > 4 * 1024 * 1024 {
            rbuf = BytesMut::with_capacity(READ_CHUNK); // let a huge request's buffer go
        }

        let info = &client.info;
        info.last_active_ms
            .store(u64::try_from(info.created.elapsed().as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
        info.db.store(client.db, Ordering::Relaxed);
        info.resp.store(if out.proto == Resp::V3 { 3 } else { 2 }, Ordering::Relaxed);
        if let Some(cmd) = last {
            *info.last_cmd.lock() = cmd.name;
        }

        if !out.is_empty() {
            wait_durable(&shared, &client).await;
            if write_out(&mut stream, out.as_bytes(), timeout).await.is_err() {
                debug!("client {id}: write failed or idle past the timeout");
                break 'conn;
            }
            stats::local().wrote(out.len());
            out.clear();
        }
        if client.close || protocol_error.is_some() {
            break;
        }
        if decoder.pending_len(&rbuf) > QUERY_BUFFER_LIMIT {
            debug!("client {id}: closing, query buffer over {QUERY_BUFFER_LIMIT} bytes");
            break;
        }
    }
    crate::pubsub::disconnect(&shared, &client.info);
    let _ = stream.shutdown().await;
    client.txn.clear(&shared);
    shared.clients.disconnect(id);
}

/// How a blocked client's wait ended.
enum Ended {
    /// Served: the reply, and the log record its write added (see `wait_durable`).
    Reply(Vec<u8>, u64),
    TimedOut,
    /// The client went away, or the server is shutting down.
    Closed,
}

/// Waits as `waiter` until it is served, its timeout passes, the client disconnects or the
/// server shuts down. Meanwhile what the client sends is read into `rbuf` (up to the query
/// buffer limit), so a disconnect is noticed at once and leaves no trace in the queues.
async fn block_on(
    shared: &Arc<Shared>,
    waiter: &Arc<Waiter>,
    timeout: Timeout,
    stream: &mut TcpStream,
    rbuf: &mut BytesMut,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Ended {
    let blocking = &shared.blocking;
    blocking.register(waiter);
    // An element that arrived between the command's first look and the registration is seen
    // now; anything later finds the client registered.
    {
        let _pass = shared.gate.shared();
        if blocking.try_serve(shared, waiter) && blocking.has_ready() {
            // Served at once, and what it did may feed others (BLMOVE's destination).
            blocking.serve(shared);
        }
    }
    let deadline = timeout.and_then(|ms| tokio::time::Instant::now().checked_add(Duration::from_millis(ms)));
    let gone = |waiter: &Arc<Waiter>| match blocking.leave(waiter) {
        Some((reply, wrote)) => Ended::Reply(reply, wrote),
        None => {
            waiter.count_unserved();
            Ended::Closed
        }
    };
    loop {
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            rbuf.reserve(READ_CHUNK);
        }
        let expiry = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = waiter.served() => {
                if let Some((reply, wrote)) = blocking.leave(waiter) {
                    return Ended::Reply(reply, wrote);
                }
            }
            () = expiry => {
                return match blocking.leave(waiter) {
                    Some((reply, wrote)) => Ended::Reply(reply, wrote),
                    None => {
                        waiter.count_unserved();
                        Ended::TimedOut
                    }
                };
            }
            read = stream.read_buf(rbuf) => match read {
                Ok(0) | Err(_) => {
                    return match gone(waiter) {
                        // Served as the client left: the reply has nowhere to go, as in Redis.
                        Ended::Reply(..) => Ended::Closed,
                        ended => ended,
                    };
                }
                Ok(n) => {
                    stats::local().read(n);
                    if rbuf.len() > QUERY_BUFFER_LIMIT {
                        debug!("closing a blocked client: query buffer over {QUERY_BUFFER_LIMIT} bytes");
                        gone(waiter);
                        return Ended::Closed;
                    }
                }
            },
            _ = stop.wait_for(|s| *s) => {
                gone(waiter);
                return Ended::Closed;
            }
        }
    }
}

/// Writes all of `buf`. With an idle `timeout` (seconds, 0 for none), a client that accepts no
/// bytes for that long is idle and the write fails: Redis counts any progress as interaction,
/// so a slow reader is fine but one that stopped reading does not hold its replies forever.
async fn write_out(stream: &mut TcpStream, buf: &[u8], timeout: u64) -> io::Result<()> {
    if timeout == 0 {
        return stream.write_all(buf).await;
    }
    let limit = Duration::from_secs(timeout);
    let mut pos = 0;
    while pos < buf.len() {
        match tokio::time::timeout(limit, stream.write(&buf[pos..])).await {
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => pos += n,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "client idle while we wrote")),
        }
    }
    Ok(())
}

/// Under `appendfsync always`, waits until the log is on disk up to this client's last write:
/// no write is acknowledged before it is durable. Clients that wrote meanwhile share the fsync.
/// Under `everysec` and `no`, waits only while the records not yet written pass
/// [`crate::journal::MAX_BACKLOG`] (a disk slower than the writes), until this client's are.
async fn wait_durable(shared: &Shared, client: &Client) {
    let journal = &shared.persistence.journal;
    if client.wrote == 0
        || (journal.policy() != Fsync::Always && !journal.backlogged())
        || journal.durable_now() >= client.wrote
    {
        return;
    }
    let mut durable = journal.durable();
    journal.wake();
    let _ = durable.wait_for(|&d| d >= client.wrote || !journal.is_on()).await;
}

/// A decoded command waiting to run.
struct Queued {
    /// Its arguments, in the connection's `spans`.
    spans: std::ops::Range<usize>,
    /// Arguments in `inline_args` rather than the read buffer.
    inline: bool,
}

fn limits(shared: &Shared) -> Limits {
    Limits { max_bulk_len: shared.settings.proto_max_bulk_len(), ..Limits::default() }
}
