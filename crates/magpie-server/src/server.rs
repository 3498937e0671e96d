//! The server: shared state, listeners, the active expiry thread and graceful shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};

use magpie_store::{Keyspace, now_ms};

use crate::blocking::Blocking;
use crate::client::Registry;
use crate::config::{Config, Settings};
use crate::conn;
use crate::info::Metrics;
use crate::journal::Journal;
use crate::persist::{self, Persistence};

/// State shared by every connection.
pub struct Shared {
    pub keyspace: Keyspace,
    pub blocking: Blocking,
    pub settings: Settings,
    pub clients: Registry,
    pub metrics: Metrics,
    pub persistence: Persistence,
    pub gate: crate::gate::Gate,
    pub pubsub: crate::pubsub::PubSub,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        let keyspace = Keyspace::new(config.databases, config.shards);
        let tap = keyspace.tap_handle();
        let journal = Journal::new(move || tap.current_seq());
        Shared {
            persistence: Persistence::new(&config, journal),
            gate: crate::gate::Gate::default(),
            keyspace,
            blocking: Blocking::default(),
            settings: Settings::new(config),
            clients: Registry::default(),
            metrics: Metrics::new(),
            pubsub: crate::pubsub::PubSub::default(),
            shutdown: watch::Sender::new(false),
        }
    }

    /// Asks the server to stop (SHUTDOWN, or a signal).
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Frees what a flush took out of the keyspace on another thread, so that dropping
    /// millions of values does not stall the connection that asked.
    pub fn drop_in_background<T: Send + 'static>(&self, garbage: T) {
        let spawned = std::thread::Builder::new().name("magpie-free".into()).spawn(move || drop(garbage));
        if let Err(e) = spawned {
            warn!("could not start a thread to free memory ({e}); it stays allocated");
        }
    }
}

/// Binds the configured addresses and serves until shutdown.
pub async fn run(config: Config) -> io::Result<()> {
    let shared = Arc::new(Shared::new(config.clone()));
    ignore_file_size_signal();
    // Load what is on disk before anyone can connect (and fail before binding if it is damaged).
    let loader = shared.clone();
    tokio::task::spawn_blocking(move || persist::start(&loader))
        .await
        .map_err(|e| io::Error::other(format!("loading failed: {e}")))?
        .map_err(io::Error::other)?;
    crate::pubsub::follow_config(&shared);
    let listeners = bind_all(&config).await?;
    for l in &listeners {
        if let Ok(addr) = l.local_addr() {
            info!("Ready to accept connections on {addr}");
        }
    }
    for listener in listeners {
        tokio::spawn(accept_loop(shared.clone(), listener));
    }
    let expiry = spawn_expiry(shared.clone())?;

    let mut stop = shared.shutdown_signal();
    tokio::select! {
        _ = stop.wait_for(|s| *s) => info!("SHUTDOWN received"),
        _ = signal(SignalKind::Interrupt) => info!("Received SIGINT, scheduling shutdown"),
        _ = signal(SignalKind::Terminate) => info!("Received SIGTERM, scheduling shutdown"),
    }
    shared.shutdown();
    // Connections finish the batch they are running and close; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !shared.clients.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = tokio::task::spawn_blocking(move || expiry.join()).await;
    let last = shared.clone();
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = persist::shutdown_save(&last, None) {
            warn!("the final snapshot failed: {e}");
        }
        persist::shutdown_log(&last);
    })
    .await;
    info!("Magpie is now ready to exit, bye bye...");
    Ok(())
}

async fn bind_all(config: &Config) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for addr in &config.bind {
        // Redis's syntax: "-addr" may fail to bind (e.g. no IPv6) without stopping the start.
        let (optional, host) = match addr.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, addr.as_str()),
        };
        let host = if host == "*" { "0.0.0.0" } else { host };
        let sockaddr: SocketAddr = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, config.port),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bind: '{host}' is not an IP address"),
                ));
            }
        };
        match TcpListener::bind(sockaddr).await {
            Ok(l) => listeners.push(l),
            Err(e) if optional => info!("skipping optional bind address {sockaddr}: {e}"),
            Err(e) => return Err(io::Error::new(e.kind(), format!("could not listen on {sockaddr}: {e}"))),
        }
    }
    Ok(listeners)
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut stop = shared.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                tokio::spawn(conn::serve(shared.clone(), stream, addr));
            }
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The server's timer, on its own thread: `hz` times a second, reclaim expired keys for at
/// most a quarter of the period (as Redis's slow cycle), a few hundred keys per lock, and
/// sample the rates INFO reports.
fn spawn_expiry(shared: Arc<Shared>) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("magpie-cron".into()).spawn(move || {
        let mut last_persist = Instant::now();
        while !shared.is_shutting_down() {
            let period = Duration::from_millis(1000 / shared.settings.hz().max(1));
            let start = Instant::now();
            shared.metrics.sample();
            let journal = &shared.persistence.journal;
            // Expiry takes turns with transactions (which see time stand still) between steps.
            let mut pass = Some(shared.gate.shared());
            journal.begin();
            shared.keyspace.active_expire(now_ms(), start + period / 4, || {
                // Log the keys this step expired, and renew the bound for the next step.
                crate::command::log_expired(&shared);
                journal.end();
                pass = None;
                pass = Some(shared.gate.shared());
                journal.begin();
            });
            crate::command::log_expired(&shared);
            journal.end();
            drop(pass);
            if last_persist.elapsed() >= Duration::from_millis(100) {
                last_persist = Instant::now();
                persist::cron(&shared);
            }
            std::thread::sleep(period.saturating_sub(start.elapsed()));
        }
    })
}

/// A write past the process's file size limit (`ulimit -f`) raises SIGXFSZ, which kills by
/// default. Listening for it turns it into an EFBIG error from `write`, which the log handles
/// like a full disk: writes are refused until it works again.
fn ignore_file_size_signal() {
    use tokio::signal::unix::{SignalKind as K, signal};
    const SIGXFSZ: i32 = 25;
    match signal(K::from_raw(SIGXFSZ)) {
        Ok(mut s) => {
            tokio::spawn(async move { while s.recv().await.is_some() {} });
        }
        Err(e) => warn!("cannot catch SIGXFSZ: {e}; exceeding the file size limit will kill the server"),
    }
}

enum SignalKind {
    Interrupt,
    Terminate,
}

async fn signal(kind: SignalKind) {
    use tokio::signal::unix::{SignalKind as K, signal};
    let kind = match kind {
        SignalKind::Interrupt => K::interrupt(),
        SignalKind::Terminate => K::terminate(),
    };
    match signal(kind) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(e) => {
            warn!("cannot listen for signals: {e}");
            std::future::pending::<()>().await;
        }
    }
}
