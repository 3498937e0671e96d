//! One client connection: read what is available, run every complete command in the buffer,
//! answer the whole batch with one write. Pipelining is the main lever for throughput.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::{debug, warn};

use magpie_protocol::{Args, Decoder, Limits, Reply, Resp};

use crate::exec::{Batch, pause, waiters};
use crate::model::{Session, Timeout};
use crate::services::Server;
use crate::services::blocking::Waiter;
use crate::services::clients::{ClientInfo, UNBLOCK_ERROR, UNBLOCK_TIMEOUT};
use crate::services::journal::Fsync;
use crate::services::stats;

use super::output::Output;
use super::stream::Stream;

const READ_CHUNK: usize = 16 * 1024;
/// Commands decoded (and their keys warmed) ahead of running them: enough for the cache
/// misses of their lookups to overlap, few enough for what they touch to stay in cache.
const BATCH: usize = 32;
/// Replies pending beyond this are written before the rest of the batch runs.
const FLUSH_AT: usize = 64 * 1024;

/// Serves one client on `stream` (a TCP connection, or a TLS session over one: `tls`) from
/// `addr`, accepted on `laddr`.
pub(crate) async fn serve(server: Arc<Server>, mut stream: Stream, addr: SocketAddr, laddr: SocketAddr, tls: bool) {
    let shared = &*server;
    let mut client = Session::new(shared.clients().connect(addr, laddr), shared.acl().login());
    let id = client.id();
    if shared.clients().len() > shared.settings().maxclients() {
        shared.clients().rejected.fetch_add(1, Ordering::Relaxed);
        let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
        shared.clients().disconnect(id);
        return;
    }
    // Protected mode (Redis 7.0): while the default user needs no password, only clients on
    // the loopback interface are served.
    if shared.settings().protected_mode() && !client.is_local() && shared.acl().default_nopass() {
        refuse_protected(shared, &mut stream, addr, id).await;
        return;
    }
    let mut first_read = !tls;
    shared.clients().accepted.fetch_add(1, Ordering::Relaxed);
    let mut stop = shared.shutdown_signal();
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut out = Reply::new(Resp::V2);
    // Replies the socket has not taken yet, under `client-output-buffer-limit`.
    let mut output = Output::default();
    let mut decoder = Decoder::new(limits(shared));
    // The current batch: each command's argument spans (into the read buffer, or into
    // `inline_args` for inline commands), reused from read to read.
    let mut batch: Vec<Queued> = Vec::with_capacity(BATCH);
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut inline_args: Vec<u8> = Vec::new();

    'conn: loop {
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            // Grow with what is buffered, so a large argument needs few reads and copies.
            rbuf.reserve(READ_CHUNK.max(rbuf.len()));
        }
        let timeout = shared.settings().timeout();
        let read = async {
            // Subscribers wait for messages, not commands: never idle (as in Redis).
            if timeout == 0 || client.info().pubsub.active() {
                Ok(stream.read_buf(&mut rbuf).await)
            } else {
                tokio::time::timeout(Duration::from_secs(timeout), stream.read_buf(&mut rbuf)).await
            }
        };
        // An interactive transaction left open past its age limit is rolled back even if the
        // client says nothing more.
        let txn_deadline = client.txn().deadline(shared.settings());
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
                client.txn.expire(shared.keyspace(), shared.settings());
                continue 'conn;
            }
            () = messages(client.info()) => None,
            () = client.info().control.killed() => break,
        };
        let Some(read) = read else {
            // Messages for this subscriber: written at once, then back to waiting.
            if write_messages(shared, client.info(), &mut out, &mut stream).await.is_err() {
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

        if first_read {
            first_read = false;
            // A TLS ClientHello (a handshake record, 0x16) on the plain port: no RESP client
            // starts so, and answering it would leave the client waiting for a handshake.
            if rbuf.first() == Some(&0x16) {
                warn!("client {addr} started a TLS handshake on the plain port; closing it");
                break;
            }
        }
        decoder.set_limits(limits(shared));
        let mut last = None;
        let mut protocol_error = None;
        let mut more = true;
        while more && !client.wants_close() {
            // Decode a batch of commands, then warm the keys they name, then run them. The
            // clock is read per batch: a batch may wait on a slow client's writes.
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
            if batch.len() > 1 {
                let keys = batch.iter().filter(|q| !q.inline && q.spans.len() >= 2).map(|q| {
                    let (s, e) = spans[q.spans.start + 1];
                    &rbuf[s..e]
                });
                shared.keyspace().warm(client.db(), keys);
            }
            // The gate (see services/gate.rs) is held across the batch's commands but never
            // across an `.await`: a transaction waits for at most one batch.
            let mut run = Batch::new(shared);
            for q in &batch {
                let buf = if q.inline { &inline_args[..] } else { &rbuf[..] };
                let args = Args::new(buf, &spans[q.spans.clone()]);
                if looks_like_http(args.get(0)) {
                    security_warning(addr);
                    break 'conn;
                }
                if let Some(until) = pause::held(shared, &client, args) {
                    // CLIENT PAUSE holds this command: the replies before it go out, then it
                    // waits for the pause to end, and runs.
                    run.pause();
                    if output.flush(shared, client.info(), &mut stream, &mut out, true).await.is_err()
                        || !wait_unpaused(shared, client.info(), until, &mut stop).await
                    {
                        break 'conn;
                    }
                    run.resume();
                }
                let mut reply_at = out.len();
                let ran = run.run(&mut client, &mut out, args);
                last = ran.or(last);
                if let (true, Some(cmd)) = (client.is_blocked(), ran) {
                    // A blocking command found nothing: the replies before it go out now (as
                    // Redis sends them while the client waits), then the client waits, still
                    // reading what it sends, and nothing else runs until the wait ends.
                    run.pause();
                    let waiter = waiters::waiter(&client, out.proto, args);
                    *client.info().last_cmd.lock() = cmd.name;
                    if (!out.is_empty() || output.pending() > 0)
                        && output.flush(shared, client.info(), &mut stream, &mut out, true).await.is_err()
                    {
                        // Gone before it could wait (it was never registered).
                        waiters::count_unserved(&waiter);
                        break 'conn;
                    }
                    reply_at = 0;
                    match block_on(shared, &waiter, client.block_timeout(), &mut stream, &mut rbuf, &mut stop).await {
                        Ended::Reply(reply, wrote) => {
                            out.raw(&reply);
                            client.note_write(wrote);
                        }
                        Ended::TimedOut => out.null_array(),
                        Ended::Unblocked => out.error(b"UNBLOCKED client unblocked via CLIENT UNBLOCK"),
                        Ended::Closed => break 'conn,
                    }
                    // Commands that arrived meanwhile are in the buffer: decode on.
                    more = true;
                    run.resume();
                }
                if client.info().control.drop_reply() {
                    out.truncate(reply_at); // CLIENT REPLY OFF or SKIP
                }
                if client.wants_close() {
                    break;
                }
                // A long pipeline is answered in pieces, so its replies never pile up in
                // memory, and a client that does not read them stops being served.
                if out.len() >= FLUSH_AT {
                    run.pause();
                    wait_durable(shared, &client).await;
                    if output.flush(shared, client.info(), &mut stream, &mut out, false).await.is_err() {
                        break 'conn;
                    }
                    run.resume();
                }
            }
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

        let info = client.info();
        info.last_active_ms
            .store(u64::try_from(info.created.elapsed().as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
        info.db.store(client.db(), Ordering::Relaxed);
        info.resp.store(if out.proto == Resp::V3 { 3 } else { 2 }, Ordering::Relaxed);
        if let Some(cmd) = last {
            *info.last_cmd.lock() = cmd.name;
        }

        if !out.is_empty() || output.pending() > 0 {
            wait_durable(shared, &client).await;
            if output.flush(shared, client.info(), &mut stream, &mut out, true).await.is_err() {
                debug!("client {id}: write failed, idle past the timeout or over its output buffer limit");
                break 'conn;
            }
        }
        if client.wants_close() || protocol_error.is_some() {
            break;
        }
        let qbuf = decoder.pending_len(&rbuf);
        client.info().control.qbuf.store(qbuf as u64, Ordering::Relaxed);
        if qbuf > shared.settings().client_query_buffer_limit() {
            query_buffer_warning(client.info(), &rbuf[..rbuf.len().min(64)]);
            break;
        }
    }
    let _ = stream.shutdown().await;
    client.end(shared.keyspace(), shared.pubsub());
    shared.clients().tracking.disable(shared.keyspace(), client.info());
    shared.clients().disconnect(id);
}

/// How a blocked client's wait ended.
enum Ended {
    /// Served: the reply, and the log record its write added (see `wait_durable`).
    Reply(Vec<u8>, u64),
    TimedOut,
    /// CLIENT UNBLOCK ... ERROR.
    Unblocked,
    /// The client went away, or the server is shutting down.
    Closed,
}

/// Waits as `waiter` until it is served, its timeout passes, the client disconnects or the
/// server shuts down. Meanwhile what the client sends is read into `rbuf` (up to the query
/// buffer limit), so a disconnect is noticed at once and leaves no trace in the queues.
async fn block_on<S: AsyncRead + Unpin>(
    shared: &Server,
    waiter: &Arc<Waiter>,
    timeout: Timeout,
    stream: &mut S,
    rbuf: &mut BytesMut,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Ended {
    let blocking = shared.blocking();
    waiter.info.control.clear_unblock(); // a CLIENT UNBLOCK meant for an earlier wait
    waiters::register(shared, waiter);
    let deadline = timeout.and_then(|ms| tokio::time::Instant::now().checked_add(Duration::from_millis(ms)));
    let gone = |waiter: &Arc<Waiter>| match blocking.leave(shared.keyspace(), waiter) {
        Some((reply, wrote)) => Ended::Reply(reply, wrote),
        None => {
            waiters::count_unserved(waiter);
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
                if let Some((reply, wrote)) = blocking.leave(shared.keyspace(), waiter) {
                    return Ended::Reply(reply, wrote);
                }
            }
            () = expiry => {
                return match blocking.leave(shared.keyspace(), waiter) {
                    Some((reply, wrote)) => Ended::Reply(reply, wrote),
                    None => {
                        waiters::count_unserved(waiter);
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
                    if rbuf.len() > shared.settings().client_query_buffer_limit() {
                        debug!("closing a blocked client: query buffer over client-query-buffer-limit");
                        gone(waiter);
                        return Ended::Closed;
                    }
                }
            },
            _ = stop.wait_for(|s| *s) => {
                gone(waiter);
                return Ended::Closed;
            }
            how = waiter.info.control.unblocked() => {
                // CLIENT UNBLOCK (a timeout or an error), or CLIENT KILL (0).
                return match blocking.leave(shared.keyspace(), waiter) {
                    Some((reply, wrote)) if how != 0 => Ended::Reply(reply, wrote),
                    _ => {
                        waiters::count_unserved(waiter);
                        match how {
                            UNBLOCK_TIMEOUT => Ended::TimedOut,
                            UNBLOCK_ERROR => Ended::Unblocked,
                            _ => Ended::Closed,
                        }
                    }
                };
            }
        }
    }
}

/// Waits while CLIENT PAUSE holds the client's next command: until `until` (ms since the
/// epoch, widened if the pause is), CLIENT UNPAUSE, or the client is killed or the server
/// stops (false). The client shows as blocked meanwhile, as in Redis.
async fn wait_unpaused(
    shared: &Server,
    info: &ClientInfo,
    mut until: u64,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    info.blocked.store(true, Ordering::Relaxed);
    let ended = loop {
        let left = until.saturating_sub(magpie_store::now_ms()) + 1;
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(left)) => {}
            () = shared.clients().unpaused() => {}
            () = info.control.killed() => break false,
            _ = stop.wait_for(|s| *s) => break false,
        }
        match shared.clients().paused(magpie_store::now_ms()) {
            Some((_, end)) => until = end,
            None => break true,
        }
    };
    info.blocked.store(false, Ordering::Relaxed);
    ended
}

/// Under `appendfsync always`, waits until the log is on disk up to this client's last write:
/// no write is acknowledged before it is durable. Clients that wrote meanwhile share the fsync.
/// Under `everysec` and `no`, waits only while the records not yet written pass
/// [`crate::journal::MAX_BACKLOG`] (a disk slower than the writes), until this client's are.
async fn wait_durable(shared: &Server, client: &Session) {
    let journal = shared.journal();
    let wrote = client.wrote();
    if wrote == 0 || (journal.policy() != Fsync::Always && !journal.backlogged()) || journal.durable_now() >= wrote {
        return;
    }
    let mut durable = journal.durable();
    journal.wake();
    let _ = durable.wait_for(|&d| d >= wrote || !journal.is_on()).await;
}

/// Redis's warning when a client's unparsed input passes `client-query-buffer-limit`, with the
/// first bytes of it.
#[cold]
fn query_buffer_warning(info: &ClientInfo, start: &[u8]) {
    warn!(
        "Closing client that reached max query buffer length: {} (qbuf initial bytes: {:?})",
        String::from_utf8_lossy(&info.line()),
        String::from_utf8_lossy(start)
    );
}

/// Redis's refusal of a client from outside the loopback interface in protected mode.
const PROTECTED_MODE: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no \
password is set for the default user. In this mode connections are only accepted from the loopback interface. If you \
want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable \
protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis \
from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do \
so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by \
editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. \
3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a \
an authentication password for the default user. NOTE: You only need to do one of the above things in order for the \
server to start accepting connections from the outside.\r\n";

/// Protected mode's refusal: Redis's explanation, then the connection closes.
#[cold]
async fn refuse_protected<S: AsyncWrite + Unpin>(shared: &Server, stream: &mut S, addr: SocketAddr, id: u64) {
    shared.clients().rejected.fetch_add(1, Ordering::Relaxed);
    debug!("refused {addr}: protected mode");
    let _ = stream.write_all(PROTECTED_MODE).await;
    let _ = stream.shutdown().await;
    shared.clients().disconnect(id);
}

/// `POST` or `Host:` as a command: an HTTP request sent to the RESP port (a browser made to
/// talk to Magpie: cross-protocol scripting). Redis closes such connections.
#[inline]
fn looks_like_http(name: &[u8]) -> bool {
    (name.len() == 4 && name.eq_ignore_ascii_case(b"post")) || (name.len() == 5 && name.eq_ignore_ascii_case(b"host:"))
}

/// Logs Redis's warning, at most once a minute, as Redis does.
#[cold]
fn security_warning(addr: SocketAddr) {
    static LOGGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = magpie_store::now_ms() / 1000;
    let last = LOGGED.load(Ordering::Relaxed);
    if now.abs_diff(last) > 60 && LOGGED.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
        warn!(
            "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: commands to Redis. \
             This is likely due to an attacker attempting to use Cross Protocol Scripting to compromise your Redis \
             instance. Connection aborted."
        );
    }
    debug!("closing {addr}: POST or Host: on the RESP port");
}

/// A decoded command waiting to run.
struct Queued {
    /// Its arguments, in the connection's `spans`.
    spans: std::ops::Range<usize>,
    /// Arguments in `inline_args` rather than the read buffer.
    inline: bool,
}

fn limits(shared: &Server) -> Limits {
    Limits { max_bulk_len: shared.settings().proto_max_bulk_len(), ..Limits::default() }
}

/// Waits until the client's mailbox has something to write (or overflowed); never, for a
/// client with no subscriptions. One branch of the connection's wait for input.
async fn messages(info: &ClientInfo) {
    if info.pubsub.active() || info.pubsub.mailbox.pending() != 0 || info.control.pushes.load(Ordering::Relaxed) {
        info.pubsub.mailbox.notify.notified().await;
    } else {
        std::future::pending::<()>().await;
    }
}

/// The client went over its output buffer limit, or its socket failed.
#[derive(Debug)]
struct Closed;

/// Writes what is in the client's mailbox, until it is empty. Fails when the client went over
/// its output buffer limit (also while a write is stuck because it does not read) or its
/// socket failed: the connection then closes. `out` is empty, and left empty.
async fn write_messages<S: AsyncWrite + Unpin>(
    shared: &Server,
    info: &ClientInfo,
    out: &mut Reply,
    stream: &mut S,
) -> Result<(), Closed> {
    let mailbox = &info.pubsub.mailbox;
    loop {
        if mailbox.overflowed() {
            let (hard, soft, secs) = shared.pubsub().limits.get();
            tracing::info!(
                "closing client {}: its pub/sub output buffer went over client-output-buffer-limit pubsub \
                 {hard} {soft} {secs}",
                info.id
            );
            return Err(Closed);
        }
        // Let the publishers that are ready run first: their messages then go out in this
        // write rather than one write each (as Redis writes once per event loop iteration).
        tokio::task::yield_now().await;
        let size = mailbox.take_into(out);
        if out.is_empty() {
            return Ok(());
        }
        let overflow = async {
            while !mailbox.overflowed() {
                mailbox.notify.notified().await;
            }
        };
        tokio::select! {
            written = stream.write_all(out.as_bytes()) => {
                if written.is_err() {
                    return Err(Closed);
                }
            }
            () = overflow => continue,
        }
        stats::local().wrote(out.len());
        out.clear();
        mailbox.release(size, &shared.pubsub().limits);
    }
}
