//! One client connection: read what is available, run every complete command in the buffer,
//! answer the whole batch with one write. Pipelining is the main lever for throughput.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use magpie_protocol::{Args, Decoder, Limits, Reply, Resp};
use magpie_store::WARM_MAX;

use crate::core::alloc;
use crate::exec::{Batch, pause, waiters};
use crate::model::flags::KeyFlags;
use crate::model::{Command, Flags, Session, Timeout};
use crate::services::Server;
use crate::services::blocking::Waiter;
use crate::services::clients::{ClientInfo, UNBLOCK_ERROR, UNBLOCK_TIMEOUT};
use crate::services::journal::Fsync;
use crate::services::stats;

use super::output::{Output, Stop};
use super::stream::Stream;

/// Room for one read: a worker thread's shared read buffer holds this much, and a connection's
/// own buffer gets at least this much room when it reads the rest of a long command.
const READ_CHUNK: usize = 16 * 1024;
/// Buffers a busy connection keeps from one request to the next: up to this much of replies,
/// so that it does not allocate for each (see `settle`); an idle one lets them go after
/// [`IDLE_TRIM`]. Not less: replies of hundreds of KB (a subscriber's batch of messages, a
/// pipeline's replies) freed and allocated again each time, on whichever worker thread the
/// connection runs, left mimalloc's pages freed from other threads resident (a server grew by
/// 20+ MB in `a_subscriber_that_does_not_read_is_closed_and_the_publisher_stays_fast` with 64 KB).
const KEEP_BUSY: usize = 1 << 20;
/// What an idle connection keeps: when its buffers hold more than this (a request or reply
/// that was not small, a pipeline), they are let go once it has been idle for [`IDLE_TRIM`].
/// A connection whose requests and replies are small holds about this much and arms no timer.
/// Measured with `bench/connections.py`: about 3 KB per idle connection in all.
const IDLE_KEEP: usize = 512;
/// How long a connection waits for input before it lets go of grown buffers (then rounded up
/// to a [`TRIM_TICK`]).
const IDLE_TRIM: Duration = Duration::from_secs(1);
const TRIM_TICK: Duration = Duration::from_millis(250);
/// Commands decoded (and their keys warmed) ahead of running them: enough for the cache
/// misses of their lookups to overlap, few enough for what they touch to stay in cache.
const BATCH: usize = 32;
/// Commands (or bytes of input) a connection works through before it lets the worker run
/// its other connections (see `run_commands` in [`serve`]).
const YIELD_AFTER_COMMANDS: usize = 256;
const YIELD_AFTER_BYTES: usize = 64 * 1024;
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
    // Every buffer starts empty and grows as requests need; see `trim`, `settle` and
    // `Idle::trim` for how they shrink back.
    let mut rbuf = BytesMut::new();
    let mut out = Reply::default();
    // The longest the replies grew since the buffers were last trimmed (what `out` holds).
    let mut out_peak = 0usize;
    // Replies the socket has not taken yet, under `client-output-buffer-limit`.
    let mut output = Output::default();
    let mut decoder = Decoder::new(limits(shared));
    // The decoder reserved room for a long command (or unquoted a long inline one): replace it
    // once the buffer is empty, so the room goes with it.
    let mut decoder_grown = false;
    // The current batch: each command's argument spans (into the read buffer, or into
    // `inline_args` for inline commands), reused from read to read.
    let mut batch: Vec<Queued> = Vec::new();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut inline_args: Vec<u8> = Vec::new();
    // The replies in `out` of commands that wrote to the log (see `answer_when_durable`).
    let mut writes: Vec<Written> = Vec::new();

    // When the connection began waiting for its next request (its idle time, for `timeout`).
    let mut waiting_since = tokio::time::Instant::now();
    // Commands and input bytes since this task last let others run. A client that keeps its
    // socket readable (a pipelining writer) finds input ready at every read, and tokio lets a
    // task go on for 128 such reads: 64 SETs of 1 KB a read kept another client's PING waiting
    // 3.5-5.8 ms at the 99th percentile (Redis, which serves each ready client once per turn
    // of its loop: 0.4 ms; `bench/cache.sh`'s probe). After a few hundred microseconds of
    // work, the task yields: 0.3-0.5 ms, and GET/SET at pipeline 16 unchanged (bench/ab.sh).
    let (mut run_commands, mut run_bytes) = (0usize, 0usize);

    'conn: loop {
        // One timer at most, for whichever comes first: an interactive transaction left open
        // past its age limit is rolled back even if the client says nothing more; a client
        // silent for `timeout` seconds is closed (subscribers wait for messages, not
        // commands: never, as in Redis); buffers grown past what an idle connection keeps
        // are let go after IDLE_TRIM.
        let txn_at = client.txn().deadline(shared.settings()).map(tokio::time::Instant::from_std);
        let timeout = shared.settings().timeout();
        let timeout_at =
            (timeout > 0 && !client.info().pubsub.active() && !client.info().pubsub.monitor.load(Ordering::Relaxed))
                .then(|| waiting_since + Duration::from_secs(timeout));
        let grown = decoder_grown
            || writes.capacity() > 4
            || rbuf.capacity() > IDLE_KEEP
            || out_peak > IDLE_KEEP
            || batch.capacity() > 4
            || spans.capacity() > 16
            || inline_args.capacity() > IDLE_KEEP;
        let trim_at = grown.then(|| trim_tick(waiting_since + IDLE_TRIM));
        let wake_at = [txn_at, timeout_at, trim_at].into_iter().flatten().min();
        let timer = async {
            match wake_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let read = read_into(&mut stream, &mut rbuf);
        let woke = tokio::select! {
            r = read => Woke::Input(r),
            _ = stop.wait_for(|s| *s) => break,
            () = messages(client.info()) => Woke::Messages,
            () = timer => Woke::Timer,
            () = client.info().control.killed() => break,
        };
        let read = match woke {
            Woke::Input(r) => r,
            Woke::Messages => {
                // Messages for this subscriber: written at once, then back to waiting.
                match Box::pin(write_messages(shared, client.info(), &mut out, &mut stream)).await {
                    Ok(len) => out_peak = out_peak.max(len),
                    Err(Closed) => break,
                }
                continue 'conn;
            }
            Woke::Timer => {
                let now = tokio::time::Instant::now();
                if txn_at.is_some_and(|at| at <= now) {
                    client.txn.expire(shared.keyspace(), shared.settings());
                } else if timeout_at.is_some_and(|at| at <= now) {
                    debug!("closing idle client {id}");
                    break;
                } else {
                    // Nothing is being decoded (the buffer is empty or holds the start of one
                    // command, whose spans the decoder keeps relative to it) and nothing is
                    // waiting to be written.
                    rbuf = if rbuf.is_empty() { BytesMut::new() } else { BytesMut::from(&rbuf[..]) };
                    if rbuf.is_empty() && decoder_grown {
                        decoder = Decoder::new(limits(shared));
                        decoder_grown = false;
                    }
                    (batch, spans, inline_args) = (Vec::new(), Vec::new(), Vec::new());
                    writes = Vec::new();
                    let proto = out.proto;
                    out = Reply::default();
                    out.proto = proto;
                    out_peak = 0;
                    alloc::note_freed();
                }
                continue 'conn;
            }
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                stats::local().read(n);
                run_bytes += n;
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
        // Commands decoded from this read: more than one is a pipelining client.
        let mut read_commands = 0usize;
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
                        decoder_grown |= args.len() > 16 || (inline && args.buf().len() > IDLE_KEEP);
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
                // The keys are found once: the warm-up goes over them several times.
                let mut keys: [&[u8]; WARM_MAX] = [&[]; WARM_MAX];
                let mut n = 0;
                for q in batch.iter().filter(|q| !q.inline) {
                    let arg = |i: usize| {
                        spans.get(q.spans.start + i).filter(|_| i < q.spans.len()).map(|&(s, e)| &rbuf[s..e])
                    };
                    if let Some(key) = warm_key(arg) {
                        keys[n] = key;
                        n += 1;
                        if n == WARM_MAX {
                            break;
                        }
                    }
                }
                shared.keyspace().warm(client.db(), keys[..n].iter().copied());
            }
            // The gate (see services/gate.rs) is held across the batch's commands but never
            // across an `.await`: a transaction waits for at most one batch.
            let mut run = Batch::new(shared);
            run_commands += batch.len();
            read_commands += batch.len();
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
                    let sent = send(shared, &client, &mut stream, &mut out, &mut writes, &mut output, true).await;
                    let Ok(len) = sent else { break 'conn };
                    out_peak = out_peak.max(len);
                    if !Box::pin(wait_unpaused(shared, client.info(), until, &mut stop)).await {
                        break 'conn;
                    }
                    run.resume();
                }
                let (wrote, at) = (client.wrote(), out.len());
                let mut reply_at = at;
                let ran = run.run(&mut client, &mut out, args);
                if client.wrote() > wrote {
                    writes.push(Written {
                        reply: at..out.len(),
                        seq: client.wrote(),
                        hold: ran.is_none_or(hands_over),
                    });
                }
                last = ran.or(last);
                if let (true, Some(cmd)) = (client.is_blocked(), ran) {
                    // A blocking command found nothing: the replies before it go out now (as
                    // Redis sends them while the client waits), then the client waits, still
                    // reading what it sends, and nothing else runs until the wait ends.
                    run.pause();
                    let waiter = waiters::waiter(&client, out.proto, args);
                    *client.info().last_cmd.lock() = cmd.name;
                    if !out.is_empty() || output.pending() > 0 {
                        let sent = send(shared, &client, &mut stream, &mut out, &mut writes, &mut output, true).await;
                        let Ok(len) = sent else {
                            // Gone before it could wait (it was never registered).
                            waiters::count_unserved(&waiter);
                            break 'conn;
                        };
                        out_peak = out_peak.max(len);
                    }
                    reply_at = 0;
                    let wait = block_on(shared, &waiter, client.block_timeout(), &mut stream, &mut rbuf, &mut stop);
                    // Boxed: a rare wait, whose state the connection need not carry while idle.
                    match Box::pin(wait).await {
                        Ended::Reply(reply, wrote) => {
                            let at = out.len();
                            out.raw(&reply);
                            client.note_write(wrote);
                            if wrote > 0 {
                                // A pop: its data must reach the client (see `hands_over`).
                                writes.push(Written { reply: at..out.len(), seq: wrote, hold: true });
                            }
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
                    writes.retain(|w| w.reply.end <= reply_at);
                }
                if client.wants_close() {
                    break;
                }
                // A long pipeline is answered in pieces, so its replies never pile up in
                // memory, and a client that does not read them stops being served.
                if out.len() >= FLUSH_AT {
                    run.pause();
                    let sent = send(shared, &client, &mut stream, &mut out, &mut writes, &mut output, false).await;
                    let Ok(len) = sent else { break 'conn };
                    out_peak = out_peak.max(len);
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
        trim(&mut rbuf);

        let info = client.info();
        info.last_active_ms
            .store(u64::try_from(info.created.elapsed().as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
        info.db.store(client.db(), Ordering::Relaxed);
        info.resp.store(if out.proto == Resp::V3 { 3 } else { 2 }, Ordering::Relaxed);
        if let Some(cmd) = last {
            *info.last_cmd.lock() = cmd.name;
        }

        if !out.is_empty() || output.pending() > 0 {
            if served_another() && read_commands > 1 {
                // Other connections are ready on this worker: their batches run first, and
                // the turn's replies go out together (see `served_another`).
                tokio::task::yield_now().await;
            }
            let sent = send(shared, &client, &mut stream, &mut out, &mut writes, &mut output, true).await;
            let Ok(len) = sent else {
                debug!("client {id}: write failed, idle past the timeout or over its output buffer limit");
                break 'conn;
            };
            out_peak = out_peak.max(len);
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
        waiting_since = tokio::time::Instant::now();
        if run_commands >= YIELD_AFTER_COMMANDS || run_bytes >= YIELD_AFTER_BYTES {
            (run_commands, run_bytes) = (0, 0);
            tokio::task::yield_now().await;
        }
    }
    let _ = stream.shutdown().await;
    client.end(shared.keyspace(), shared.pubsub());
    if client.info().pubsub.monitor.load(Ordering::Relaxed) {
        shared.monitors().remove(id);
    }
    shared.clients().tracking.disable(shared.keyspace(), client.info());
    shared.clients().disconnect(id);
    // Its buffers and mailbox go with this task (freed on whichever workers allocated them):
    // idle workers give the pages back (`alloc::worker_parked`).
    alloc::note_freed();
}

thread_local! {
    /// Batches this worker thread has answered since it last went idle (see
    /// [`worker_parked`]).
    static SERVED: Cell<u32> = const { Cell::new(0) };
}

/// Counts a batch answered on this worker, and says whether another connection's batch was
/// answered since the worker last went idle: then the worker is busy with several
/// connections, and more are likely ready.
///
/// A pipelining connection then yields before it writes its replies, so that the ready
/// connections' batches run first and their replies leave together, as Redis's event loop
/// writes every client's replies at the end of its turn. A client process (one
/// `redis-benchmark` serving 50 connections, an application's connection pool) that finds a
/// reply waiting when it reads the previous one needs no wake-up, and waking it was the
/// largest single cost of a write: 10% of the server's time with EVALSHA at pipeline 16, where
/// Redis spent 2.5% in it; the client slept once per 17 requests, now once per 170
/// (docs/benchmarks.md). A lone client's request finds its worker idle and is answered at
/// once, as before; so is a single command (pipeline 1), whose reply would wait for a turn:
/// its 99th percentile grew by a third when it did.
fn served_another() -> bool {
    SERVED.with(|s| {
        let n = s.get();
        s.set(n.saturating_add(1));
        n > 0
    })
}

/// Called by each worker thread when it runs out of work (the runtime's `on_thread_park`):
/// the next batch starts a new turn.
pub(crate) fn worker_parked() {
    SERVED.with(|s| s.set(0));
}

thread_local! {
    /// Each worker thread's read buffer: a connection with nothing buffered reads into it and
    /// keeps only the bytes that arrived, so an idle connection holds no read buffer.
    static READ_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Waits for input and reads what arrived into `rbuf`. A TCP connection with nothing buffered
/// reads through the worker thread's buffer (`read_some`); a TLS session decrypts into `rbuf`
/// itself (rustls holds its own buffers anyway).
async fn read_into(stream: &mut Stream, rbuf: &mut BytesMut) -> io::Result<usize> {
    match stream {
        Stream::Tcp(tcp) => loop {
            tcp.readable().await?;
            match read_some(tcp, rbuf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return done,
            }
        },
        Stream::Tls(tls) => {
            if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                rbuf.reserve(READ_CHUNK.max(rbuf.len()));
            }
            tls.read_buf(rbuf).await
        }
    }
}

/// Reads what the socket has (without waiting: `WouldBlock` if nothing) into `rbuf`. The start
/// of a request goes through the thread's buffer, so `rbuf` holds what arrived and no more;
/// the rest of a long command is read straight into `rbuf`, grown with what it holds, so a
/// large argument needs few reads and copies.
fn read_some(stream: &TcpStream, rbuf: &mut BytesMut) -> io::Result<usize> {
    if !rbuf.is_empty() {
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            rbuf.reserve(READ_CHUNK.max(rbuf.len()));
        }
        let room = rbuf.capacity() - rbuf.len();
        return read_drained(stream, rbuf, room);
    }
    READ_SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        scratch.clear();
        scratch.reserve(READ_CHUNK);
        let room = scratch.capacity();
        let n = read_drained(stream, &mut *scratch, room)?;
        rbuf.extend_from_slice(&scratch[..n]);
        Ok(n)
    })
}

/// One read into `buf`, which has `room` bytes free. A read that returns less than that took
/// everything the socket held, so the socket's readiness is cleared with it: the connection's
/// next wait goes to epoll at once, instead of through one more read that finds nothing (a
/// client at pipeline 1 cost 1.5 reads per request, where Redis makes one: it reads once per
/// readiness event). The readiness cleared is the one seen before the read (tokio's
/// `try_io`), so data that arrives after it raises a new event and is not missed.
fn read_drained<B: bytes::BufMut>(stream: &TcpStream, buf: &mut B, room: usize) -> io::Result<usize> {
    let mut drained = None;
    let read = stream.try_io(tokio::io::Interest::READABLE, || {
        let n = stream.try_read_buf(buf)?;
        if n > 0 && n < room {
            drained = Some(n);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match drained {
        Some(n) => Ok(n),
        None => read,
    }
}

/// `at`, rounded up to a multiple of [`TRIM_TICK`] since the process started: connections that
/// go idle at about the same time let their buffers go together, and each worker thread gives
/// the memory back once for all of them (`core::alloc::worker_parked`).
fn trim_tick(at: tokio::time::Instant) -> tokio::time::Instant {
    static BASE: OnceLock<tokio::time::Instant> = OnceLock::new();
    let base = *BASE.get_or_init(tokio::time::Instant::now);
    let tick = TRIM_TICK.as_nanos();
    let since = at.saturating_duration_since(base).as_nanos();
    let ticks = u64::try_from(since.div_ceil(tick)).unwrap_or(u64::MAX);
    base + TRIM_TICK.saturating_mul(u32::try_from(ticks).unwrap_or(u32::MAX))
}

/// After a batch: a read buffer much bigger than what it still holds (it held a long command)
/// is let go, or replaced by one just big enough for the start of the command it holds.
/// Buffers never stay at their peak: garbage that once sent a 100 MB argument must not keep
/// 100 MB for its connection (`bench/garbage.py`).
fn trim(rbuf: &mut BytesMut) {
    if rbuf.is_empty() {
        if rbuf.capacity() > READ_CHUNK {
            *rbuf = BytesMut::new();
        }
    } else if rbuf.capacity() > 4 * rbuf.len().max(READ_CHUNK) {
        *rbuf = BytesMut::from(&rbuf[..]);
    }
}

/// After the replies were written: empties `out`, and lets its memory go if it grew past
/// [`KEEP_BUSY`] (a big reply, a long pipeline's replies). Returns how long it was.
fn settle(out: &mut Reply) -> usize {
    let len = out.len();
    if len > KEEP_BUSY {
        let proto = out.proto;
        *out = Reply::default();
        out.proto = proto;
    } else {
        out.clear();
    }
    len
}

/// What ended a connection's wait for input.
enum Woke<R> {
    Input(R),
    Messages,
    /// A transaction's age limit, the idle `timeout`, or [`IDLE_TRIM`] with grown buffers.
    Timer,
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

/// Answers with what `out` holds: once the writes among its replies are durable (see
/// [`answer_when_durable`]), through `output` and its `client-output-buffer-limit` (see
/// `front/output.rs`: with `wait`, or without a limit, until the socket took everything).
/// Leaves `out` empty, its memory let go if it grew past [`KEEP_BUSY`]; returns how long it was.
async fn send(
    shared: &Server,
    client: &Session,
    stream: &mut Stream,
    out: &mut Reply,
    writes: &mut Vec<Written>,
    output: &mut Output,
    wait: bool,
) -> Result<usize, Stop> {
    answer_when_durable(shared, client, out, writes).await;
    let len = out.len();
    let sent = output.flush(shared, client.info(), stream, out, wait).await;
    if len > KEEP_BUSY {
        let proto = out.proto;
        *out = Reply::default();
        out.proto = proto;
    }
    sent.map(|()| len)
}

/// The reply of a command that added a record to the log, waiting in `out` for the record to
/// be durable.
struct Written {
    reply: std::ops::Range<usize>,
    seq: u64,
    /// The reply hands over data that the command took out of the keyspace (a pop): it is
    /// never replaced with an error, which would lose that data (see `hands_over`).
    hold: bool,
}

/// Whether `cmd`'s reply may hold data the command removed from the keyspace: LPOP, SPOP,
/// ZPOPMIN, GETDEL, LMOVE's source (a key spec that both reads and deletes), or a transaction,
/// whose commands are not known here.
fn hands_over(cmd: &Command) -> bool {
    cmd.has(Flags::RUNS_ALONE)
        || cmd.key_specs.iter().any(|k| k.flags.contains(KeyFlags::ACCESS) && k.flags.contains(KeyFlags::DELETE))
}

/// Under `appendfsync always`, waits until the log is on disk up to this client's last write:
/// no write is acknowledged before it is durable. Clients that wrote meanwhile share the fsync.
/// Under `everysec` and `no`, waits (until this client's records are written) only while the
/// records not yet written pass [`crate::services::journal::MAX_BACKLOG`] (a disk slower than
/// the writes) or the oldest of them waits for more than
/// [`crate::services::journal::MAX_WRITE_LAG_MS`] (a writer thread that gets no CPU): what
/// a process crash can take stays bounded.
///
/// If the log cannot be written (a full disk), the replies of the writes whose records are not
/// durable are replaced at once with the error that other clients' writes get (MISCONF): a
/// write that is not acknowledged loses nothing. Its change stays in memory and its record is
/// written when the disk has room, as with a reply lost on the way. The exception is a reply
/// that hands over data its command removed (a pop): it waits for the disk, as before, since
/// an error in its place would lose that data. `writes` is emptied.
async fn answer_when_durable(shared: &Server, client: &Session, out: &mut Reply, writes: &mut Vec<Written>) {
    let journal = shared.journal();
    let wrote = client.wrote();
    if wrote == 0
        || journal.durable_now() >= wrote
        || (journal.policy() != Fsync::Always && !journal.backlogged() && !journal.lagging())
    {
        writes.clear();
        return;
    }
    let mut durable = journal.durable();
    let _waiting = journal.wait_guard();
    let _ = durable.wait_for(|&d| d >= wrote || !journal.is_on() || journal.is_failing()).await;
    let d = journal.durable_now();
    if d < wrote && journal.is_on() {
        if writes.iter().any(|w| w.seq > d && w.hold) {
            let _ = durable.wait_for(|&d| d >= wrote || !journal.is_on()).await;
        } else {
            let error = shared
                .persistence()
                .deny_writes()
                .map_or_else(|| b"MISCONF Errors writing to the AOF file".to_vec(), |e| e.0.to_vec());
            refuse_unlogged(out, writes, d, &error);
        }
    }
    writes.clear();
}

/// Replaces in `out` the replies of the `writes` whose records are numbered above `durable`
/// with `error`.
fn refuse_unlogged(out: &mut Reply, writes: &[Written], durable: u64, error: &[u8]) {
    let replies = out.as_bytes().to_vec();
    out.clear();
    let mut from = 0;
    for w in writes.iter().filter(|w| w.seq > durable) {
        out.raw(&replies[from..w.reply.start]);
        out.error(error);
        from = w.reply.end;
    }
    out.raw(&replies[from..]);
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

/// The key a queued command most likely reads (`arg(i)`: its arguments), to warm before the
/// batch runs: a script's first key (EVAL, EVALSHA, FCALL and their read-only forms, with at
/// least one key), otherwise its first argument (the key of most commands; for the others, a
/// lookup that finds nothing).
fn warm_key<'a>(arg: impl Fn(usize) -> Option<&'a [u8]>) -> Option<&'a [u8]> {
    const SCRIPTS: [&[u8]; 6] = [b"EVALSHA", b"EVAL", b"FCALL", b"EVALSHA_RO", b"EVAL_RO", b"FCALL_RO"];
    let name = arg(0)?;
    if SCRIPTS.iter().any(|s| s.eq_ignore_ascii_case(name)) && arg(2).is_some_and(|n| !n.starts_with(b"0")) {
        return arg(3);
    }
    arg(1)
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
    if info.pubsub.active()
        || info.pubsub.monitor.load(Ordering::Relaxed)
        || info.pubsub.mailbox.pending() != 0
        || info.control.pushes.load(Ordering::Relaxed)
    {
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
/// socket failed: the connection then closes. `out` is empty, and left empty. Returns the
/// longest write (what `out` grew to).
async fn write_messages<S: AsyncWrite + Unpin>(
    shared: &Server,
    info: &ClientInfo,
    out: &mut Reply,
    stream: &mut S,
) -> Result<usize, Closed> {
    let mailbox = &info.pubsub.mailbox;
    let mut peak = 0;
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
            return Ok(peak);
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
        peak = peak.max(settle(out));
        mailbox.release(size, &shared.pubsub().limits);
    }
}

#[cfg(test)]
mod tests {
    use crate::exec::test_support::TestSession;

    /// The key warmed for a command: a script's first key, or the first argument.
    #[test]
    fn the_key_warmed_is_a_scripts_first_key_or_the_first_argument() {
        let key = |args: &[&'static str]| {
            let args: Vec<&'static [u8]> = args.iter().map(|a| a.as_bytes()).collect();
            super::warm_key(|i| args.get(i).copied()).map(|k| String::from_utf8_lossy(k).into_owned())
        };
        assert_eq!(key(&["GET", "k"]), Some("k".into()));
        assert_eq!(key(&["PING"]), None);
        assert_eq!(key(&["evalsha", "abc", "2", "k1", "k2", "arg"]), Some("k1".into()));
        assert_eq!(key(&["EVAL", "return 1", "1", "k"]), Some("k".into()));
        assert_eq!(key(&["fcall_ro", "f", "1", "k"]), Some("k".into()));
        assert_eq!(key(&["EVALSHA", "abc", "0", "arg"]), Some("abc".into()), "no keys: the first argument");
        assert_eq!(key(&["EVALSHA", "abc", "1"]), None, "a key missing");
    }

    /// What a connection's task holds while it waits is part of what every idle connection
    /// costs (bench/connections.py): the rare waits (a blocked command, pub/sub messages) are
    /// boxed, and there is one timer, so it stays small.
    #[tokio::test]
    async fn a_waiting_connection_holds_a_small_future() {
        let t = TestSession::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let connection = super::serve(t.server.clone(), super::Stream::Tcp(stream), addr, addr, false);
        let size = std::mem::size_of_val(&connection);
        assert!(size <= 2048, "the connection's future takes {size} bytes");
    }

    /// A read that drains the socket clears its readiness (`read_drained`), and what arrives
    /// afterwards, right behind the read or later, still wakes the reader: nothing is lost.
    /// The writer runs on the other worker thread, so its writes land while reads are under
    /// way. (That no second read is made is a cost, measured by bench/wakeups.sh.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drained_socket_misses_nothing_written_during_the_read() {
        use std::time::Duration;
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut writer = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (reader, _) = listener.accept().await.unwrap();
        writer.set_nodelay(true).unwrap();
        // Sizes from a few bytes to several buffers' worth, so that reads end both short
        // (draining) and full (followed by another read).
        let sizes: Vec<usize> =
            (0..3000usize).map(|i| 1 + (i * 7919) % if i % 100 == 0 { 100_000 } else { 300 }).collect();
        let want: usize = sizes.iter().sum();
        let writes = tokio::spawn(async move {
            for (i, n) in sizes.into_iter().enumerate() {
                writer.write_all(&vec![b'x'; n]).await.unwrap();
                if i % 3 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            writer
        });
        let mut rbuf = bytes::BytesMut::new();
        let mut got = 0;
        while got < want {
            let read = tokio::time::timeout(Duration::from_secs(10), async {
                loop {
                    reader.readable().await.unwrap();
                    match super::read_some(&reader, &mut rbuf) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        done => return done.unwrap(),
                    }
                }
            });
            let n = read.await.unwrap_or_else(|_| panic!("{got} of {want} bytes read, then no wake-up"));
            assert!(n > 0, "the connection closed after {got} bytes");
            got += n;
            rbuf.clear();
        }
        assert_eq!(got, want);
        let _writer = writes.await.unwrap();
    }
}
