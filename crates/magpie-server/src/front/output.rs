//! A client's replies on their way out, and `client-output-buffer-limit` (Redis's
//! `checkClientOutputBufferLimits`): the replies a client has not taken yet are its output
//! buffer; past the hard limit, or above the soft limit for longer than the soft seconds, the
//! client is closed.
//!
//! Without a limit for its class (`normal 0 0 0`, the default) a connection waits for its
//! replies to be written before it runs more commands, so a client that does not read costs a
//! bounded amount however much it pipelines. With a limit it runs on while the socket will not
//! take its replies, as Redis does, keeping them here, until they pass the limit: then it is
//! closed, and it never held more than the limit (plus one reply).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tracing::warn;

use magpie_protocol::Reply;

use crate::services::Server;
use crate::services::clients::ClientInfo;
use crate::services::config::ClientClass;
use crate::services::stats;

/// Why writing stopped.
#[derive(Debug)]
pub(super) enum Stop {
    /// The socket failed, or the client accepted nothing for `timeout` seconds.
    Io,
    /// The client's pending replies went over its class's limit (logged).
    OverLimit,
}

/// Replies that the socket has not taken yet, and since when they are above the soft limit.
#[derive(Default)]
pub(super) struct Output {
    backlog: BytesMut,
    over_soft: Option<Instant>,
}

impl Output {
    /// Bytes of replies not written yet, besides those in the connection's reply buffer.
    pub(super) fn pending(&self) -> usize {
        self.backlog.len()
    }

    /// Writes the replies in `out` (after any still pending) and empties it. With `wait`, or
    /// when the client's class has no limit, returns once everything is written. Otherwise
    /// writes what the socket takes now and keeps the rest, so that the connection runs on.
    /// Fails when the socket fails, or the pending replies pass the class's limit.
    pub(super) async fn flush<S: AsyncWrite + Unpin>(
        &mut self,
        shared: &Server,
        info: &ClientInfo,
        stream: &mut S,
        out: &mut Reply,
        wait: bool,
    ) -> Result<(), Stop> {
        let timeout = shared.settings().timeout();
        let limits = shared.settings().output_buffer_limit(class(info));
        if limits.0 == 0 && limits.1 == 0 && self.backlog.is_empty() {
            // CLIENT KILL reaches a client that does not read its replies too; CLIENT LIST
            // shows what waits meanwhile.
            info.control.omem.store(out.len() as u64, Ordering::Relaxed);
            let written = tokio::select! {
                written = write_out(stream, out.as_bytes(), timeout) => written.map_err(|_| Stop::Io),
                () = info.control.killed() => Err(Stop::Io),
            };
            info.control.omem.store(0, Ordering::Relaxed);
            stats::local().wrote(out.len());
            out.clear();
            return written;
        }
        // Straight from the reply buffer when nothing is pending; what the socket does not
        // take joins the backlog.
        if self.backlog.is_empty() {
            let n = try_write(stream, out.as_bytes()).await?;
            stats::local().wrote(n);
            self.backlog.extend_from_slice(&out.as_bytes()[n..]);
        } else {
            self.backlog.extend_from_slice(out.as_bytes());
            let n = try_write(stream, &self.backlog).await?;
            stats::local().wrote(n);
            self.backlog.advance(n);
        }
        out.clear();
        info.control.omem.store(self.backlog.len() as u64, Ordering::Relaxed);
        self.check(info, limits)?;
        // Run on while under the limit (under the soft one when there is no hard one, so that
        // the backlog stays bounded); wait otherwise.
        let cap = if limits.0 > 0 { limits.0 } else { limits.1 };
        if !wait && (cap == 0 || (self.backlog.len() as u64) < cap) {
            return Ok(());
        }
        self.drain(info, stream, limits, timeout).await
    }

    /// Writes the whole backlog, closing the client if it stays above the soft limit too long.
    async fn drain<S: AsyncWrite + Unpin>(
        &mut self,
        info: &ClientInfo,
        stream: &mut S,
        limits: (u64, u64, u64),
        timeout: u64,
    ) -> Result<(), Stop> {
        let mut progress = Instant::now();
        while !self.backlog.is_empty() {
            self.check(info, limits)?;
            // Wake when the soft limit's time runs out, or the idle timeout passes.
            let soft_end = self.over_soft.map(|since| since + Duration::from_secs(limits.2));
            let idle_end = (timeout > 0).then(|| progress + Duration::from_secs(timeout));
            let wake = [soft_end, idle_end].into_iter().flatten().min();
            let timer = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                written = stream.write(&self.backlog) => match written {
                    Ok(0) | Err(_) => return Err(Stop::Io),
                    Ok(n) => {
                        stats::local().wrote(n);
                        self.backlog.advance(n);
                        info.control.omem.store(self.backlog.len() as u64, Ordering::Relaxed);
                        progress = Instant::now();
                    }
                },
                () = info.control.killed() => return Err(Stop::Io),
                () = timer => {
                    if idle_end.is_some_and(|at| at <= Instant::now()) {
                        return Err(Stop::Io);
                    }
                }
            }
        }
        self.over_soft = None;
        if self.backlog.capacity() > 1 << 20 {
            self.backlog = BytesMut::new();
        }
        Ok(())
    }

    /// Redis's rule: over the hard limit at once; over the soft one for more than its seconds.
    fn check(&mut self, info: &ClientInfo, (hard, soft, secs): (u64, u64, u64)) -> Result<(), Stop> {
        let pending = self.backlog.len() as u64;
        let mut over = hard > 0 && pending >= hard;
        if soft > 0 && pending >= soft {
            let since = *self.over_soft.get_or_insert_with(Instant::now);
            over |= since.elapsed() > Duration::from_secs(secs);
        } else {
            self.over_soft = None;
        }
        if over {
            warn!(
                "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
                String::from_utf8_lossy(&info.line())
            );
            return Err(Stop::OverLimit);
        }
        Ok(())
    }
}

/// The class of `client-output-buffer-limit` a client falls in: a subscriber is `pubsub`.
pub(super) fn class(info: &ClientInfo) -> ClientClass {
    if info.pubsub.active() { ClientClass::Pubsub } else { ClientClass::Normal }
}

/// Writes as much of `buf` as the socket takes without waiting.
async fn try_write<S: AsyncWrite + Unpin>(stream: &mut S, buf: &[u8]) -> Result<usize, Stop> {
    if buf.is_empty() {
        return Ok(0);
    }
    poll_fn(|cx| match Pin::new(&mut *stream).poll_write(cx, buf) {
        Poll::Pending => Poll::Ready(Ok(0)),
        Poll::Ready(Ok(0)) => Poll::Ready(Err(Stop::Io)),
        Poll::Ready(Ok(n)) => Poll::Ready(Ok(n)),
        Poll::Ready(Err(_)) => Poll::Ready(Err(Stop::Io)),
    })
    .await
}

/// Writes all of `buf`. With an idle `timeout` (seconds, 0 for none), a client that accepts no
/// bytes for that long is idle and the write fails: Redis counts any progress as interaction,
/// so a slow reader is fine but one that stopped reading does not hold its replies forever.
pub(super) async fn write_out<S: AsyncWrite + Unpin>(stream: &mut S, buf: &[u8], timeout: u64) -> io::Result<()> {
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
