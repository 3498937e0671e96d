//! The HTTP API: a front end on its own port (`http-port`, and `http-tls-port` over TLS) that
//! runs the same commands through the same dispatcher as RESP clients, on the same keyspace,
//! with the same checks, statistics, log and keyspace events.
//!
//! - [`codec`]: JSON and MessagePack bodies, RESP3 replies turned into values.
//! - `guard`: what every request passes first: the Host allow-list and the Origin check
//!   (browsers are not a way in), protected mode, credentials, the body's declared size.
//! - `api`: the endpoints; `session`: running a command for a request's session; `txn`:
//!   interactive transactions kept between requests; `sse`: Pub/Sub as Server-Sent Events;
//!   `metrics`: the Prometheus exposition.
//!
//! HTTP is parsed by hyper (HTTP/1.1), routed by axum, on the server's tokio runtime.

pub(crate) mod codec;

mod api;
mod guard;
mod metrics;
mod session;
mod sse;
mod txn;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::services::Server;

/// The HTTP service: shared by every HTTP connection of one server.
pub(crate) struct Http {
    server: Arc<Server>,
    /// Set once what is on disk is loaded: until then only the probes and /metrics answer.
    ready: AtomicBool,
    txns: txn::Registry,
    metrics: metrics::Exporter,
}

/// A request's headers may take this long to arrive (a slow or half-sent request is dropped).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// ...and its body this long.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head (request line and headers) read; beyond it hyper answers 431.
const MAX_HEAD: usize = 64 * 1024;
/// A TLS handshake may take this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Http {
    pub(crate) fn new(server: Arc<Server>) -> Arc<Http> {
        Arc::new(Http {
            ready: AtomicBool::new(false),
            txns: txn::Registry::default(),
            metrics: metrics::Exporter::new(server.clone()),
            server,
        })
    }

    /// What is on disk is loaded: every endpoint answers from now on.
    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.server.is_shutting_down()
    }

    /// Starts the background work: ending idle transactions.
    pub(crate) fn spawn_housekeeping(self: &Arc<Http>) {
        let http = self.clone();
        tokio::spawn(async move {
            let mut stop = http.server.shutdown_signal();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => http.txns.sweep(&http.server),
                    () = stopped(&mut stop) => break,
                }
            }
            http.txns.clear();
        });
    }
}

/// Accepts HTTP connections on `listener` (HTTPS when `tls`) until shutdown.
pub(crate) async fn accept_loop(http: Arc<Http>, listener: TcpListener, tls: bool) {
    let router = router(http.clone());
    let mut stop = http.server.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stopped(&mut stop) => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let laddr = stream.local_addr().unwrap_or(addr);
                let (http, router) = (http.clone(), router.clone());
                tokio::spawn(async move {
                    let conn = guard::Conn { addr, laddr, tls };
                    if !tls {
                        serve_connection(&http, stream, router, conn).await;
                        return;
                    }
                    let Some(acceptor) = http.server.tls().acceptor() else { return };
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => serve_connection(&http, tls, router, conn).await,
                        Ok(Err(e)) => debug!("HTTPS handshake with {addr} failed: {e}"),
                        Err(_) => debug!("HTTPS handshake with {addr} not completed in {HANDSHAKE_TIMEOUT:?}"),
                    }
                });
            }
            Err(e) => {
                warn!("accept failed on the HTTP port: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Every endpoint, behind the checks of [`guard`].
fn router(http: Arc<Http>) -> Router {
    Router::new()
        .route("/v1/keys/{*key}", get(api::get_key).put(api::put_key).delete(api::delete_key))
        .route("/v1/mset", post(api::mset))
        .route("/v1/mget", post(api::mget))
        .route("/v1/del", post(api::del))
        .route("/v1/command", post(api::command))
        .route("/v1/txn", post(txn::begin))
        .route("/v1/txn/{id}/command", post(txn::command))
        .route("/v1/txn/{id}/commit", post(txn::commit))
        .route("/v1/txn/{id}/rollback", post(txn::rollback))
        .route("/v1/subscribe/{*channel}", get(sse::subscribe))
        .route("/v1/psubscribe/{*pattern}", get(sse::psubscribe))
        .route("/metrics", get(metrics::scrape))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .route("/v1/openapi.json", get(api::openapi))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(middleware::from_fn_with_state(http.clone(), guard::check))
        .with_state(http)
}

/// Serves one HTTP/1.1 connection (keep-alive) with hyper, until the client closes it, a
/// request breaks the protocol, or the server shuts down (in-flight requests finish).
async fn serve_connection<S>(http: &Http, stream: S, router: axum::Router, conn: guard::Conn)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    http.server.clients().accepted.fetch_add(1, Ordering::Relaxed);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(conn);
        let mut router = router.clone();
        async move { tower_service::Service::call(&mut router, req).await }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut stop = http.server.shutdown_signal();
    tokio::select! {
        r = connection.as_mut() => {
            if let Err(e) = r {
                debug!("HTTP connection from {}: {e}", conn.addr);
            }
        }
        () = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
        }
    }
}

/// Resolves once the server is shutting down.
pub(super) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
