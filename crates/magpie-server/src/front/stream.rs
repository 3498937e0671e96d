//! A client's byte stream: a TCP connection, or a TLS session over one. One type rather than
//! a generic parameter, so the RESP connection's loop is compiled once (two copies of it made
//! the compiler stop inlining the decoder and the batch into it: +5% instructions per GET).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// A client connection's stream.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// `tcp-keepalive`: after `secs` seconds of silence the kernel probes the peer, so a client
/// that vanished (a crash, a dropped route) is noticed and its connection closed, as Redis's
/// `anetKeepAlive`. 0 leaves keepalive off.
pub(crate) fn keepalive(stream: &TcpStream, secs: u64) {
    if secs == 0 {
        return;
    }
    let time = Duration::from_secs(secs);
    // Probes every third of the time, and the connection is dropped after 3 unanswered ones
    // (Redis's values).
    let params = socket2::TcpKeepalive::new().with_time(time).with_interval((time / 3).max(Duration::from_secs(1)));
    let params = params.with_retries(3);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&params) {
        tracing::debug!("could not set SO_KEEPALIVE: {e}");
    }
}
