//! The application: builds the server's services, loads what is on disk, listens, runs the
//! timer thread (active expiry, persistence schedule, rate samples), and shuts down gracefully.
//! It is the only module that knows every layer.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket};
use tracing::{info, warn};

use magpie_store::now_ms;

use crate::front;
use crate::front::stream::Stream;
use crate::services::config::Config;
use crate::services::memory::Outcome;
use crate::services::{Server, expired};

/// Binds the configured addresses and serves until shutdown.
pub async fn run(config: Config) -> io::Result<()> {
    let shared = Arc::new(Server::new(config.clone()));
    tokio::spawn(shared.journal().clone().relay());
    ignore_file_size_signal();
    // The HTTP API listens from the start, so its probes can say "loading" (503) meanwhile.
    let http = start_http(&shared, &config).await?;
    // Load what is on disk before anyone can connect (and fail before binding if it is damaged).
    let loader = shared.clone();
    tokio::task::spawn_blocking(move || front::replay::load(&loader))
        .await
        .map_err(|e| io::Error::other(format!("loading failed: {e}")))?
        .map_err(io::Error::other)?;
    if let Some(path) = config.import_rdb.clone() {
        let importer = shared.clone();
        tokio::task::spawn_blocking(move || importer.persistence().import_rdb(&path))
            .await
            .map_err(|e| io::Error::other(format!("import failed: {e}")))?
            .map_err(io::Error::other)?;
    }
    shared.apply_settings();
    // Users from the ACL file, resolved through the command table; a bad file stops the start.
    let acl = crate::commands::acl::acl_of(&shared, &crate::exec::TABLE);
    acl.load_file().map_err(|e| io::Error::other(format!("Aborting startup because of ACL errors: {e}")))?;
    if config.tls_port != 0 {
        shared.tls().configure(&config.tls).map_err(|e| io::Error::other(format!("TLS: {e}")))?;
    }
    http.set_ready();
    let listeners = bind_all(&config, config.port)?;
    let tls_listeners = if config.tls_port != 0 { bind_all(&config, config.tls_port)? } else { Vec::new() };
    for (l, kind) in listeners.iter().map(|l| (l, "")).chain(tls_listeners.iter().map(|l| (l, " (TLS)"))) {
        if let Ok(addr) = l.local_addr() {
            info!("Ready to accept connections on {addr}{kind}");
        }
    }
    for listener in listeners {
        tokio::spawn(accept_loop(shared.clone(), listener, false));
    }
    for listener in tls_listeners {
        tokio::spawn(accept_loop(shared.clone(), listener, true));
    }
    let expiry = spawn_expiry(shared.clone())?;

    let mut stop = shared.shutdown_signal();
    let (mut sigint, mut sigterm) = (Signal::new(SignalKind::Interrupt), Signal::new(SignalKind::Terminate));
    loop {
        tokio::select! {
            // SHUTDOWN took the final snapshot itself (it runs alone).
            _ = stop.wait_for(|s| *s) => {
                info!("SHUTDOWN received");
                break;
            }
            () = sigint.recv() => info!("Received SIGINT, scheduling shutdown"),
            () = sigterm.recv() => info!("Received SIGTERM, scheduling shutdown"),
        }
        // As Redis on a signal: the final snapshot, with no command running; if it cannot be
        // written the server does not exit (the writes since the last snapshot would be
        // lost) and goes on serving. SHUTDOWN NOSAVE or FORCE stop it without one. A SIGINT
        // while the snapshot is written exits at once, as Redis's second Ctrl-C does.
        let last = shared.clone();
        let attempt = tokio::task::spawn_blocking(move || {
            let _alone = last.gate().exclusive();
            last.persistence().final_save(None, false)
        });
        let saved = tokio::select! {
            r = attempt => r.map_err(|e| io::Error::other(e.to_string())).and_then(|r| r),
            () = sigint.recv() => {
                warn!("You insist... exiting now, without the final snapshot.");
                std::process::exit(1);
            }
        };
        match saved {
            Ok(()) => {
                shared.shutdown();
                break;
            }
            Err(e) => warn!(
                "Errors trying to shut down the server ({e}); it goes on serving. Check the logs for more \
                 information."
            ),
        }
    }
    // Connections finish the batch they are running and close; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !shared.clients().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = tokio::task::spawn_blocking(move || expiry.join()).await;
    let last = shared.clone();
    let _ = tokio::task::spawn_blocking(move || last.persistence().shutdown_log()).await;
    info!("Magpie is now ready to exit, bye bye...");
    Ok(())
}

/// The HTTP API (see `front::http`) on `http-port` and `http-tls-port` (0: off), at every
/// `bind` address. Before anything is loaded it answers only its probes and /metrics.
async fn start_http(shared: &Arc<Server>, config: &Config) -> io::Result<Arc<front::http::Http>> {
    let http = front::http::Http::new(shared.clone());
    if config.http_tls_port != 0 {
        shared.tls().configure(&config.tls).map_err(|e| io::Error::other(format!("TLS: {e}")))?;
    }
    for (port, tls) in [(config.http_port, false), (config.http_tls_port, true)] {
        if port == 0 {
            continue;
        }
        for listener in bind_all(config, port)? {
            if let Ok(addr) = listener.local_addr() {
                info!("HTTP API on {}://{addr}", if tls { "https" } else { "http" });
            }
            tokio::spawn(front::http::accept_loop(http.clone(), listener, tls));
        }
    }
    http.spawn_housekeeping();
    Ok(http)
}

/// Listens on every `bind` address at `port`.
fn bind_all(config: &Config, port: u16) -> io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::new();
    for addr in &config.bind {
        // Redis's syntax: "-addr" may fail to bind (e.g. no IPv6) without stopping the start.
        let (optional, host) = match addr.strip_prefix('-') {
            Some(h) => (true, h),
            None => (false, addr.as_str()),
        };
        let host = if host == "*" { "0.0.0.0" } else { host };
        let sockaddr: SocketAddr = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("bind: '{host}' is not an IP address"),
                ));
            }
        };
        match listen(sockaddr, config.tcp_backlog) {
            Ok(l) => listeners.push(l),
            Err(e) if optional => info!("skipping optional bind address {sockaddr}: {e}"),
            Err(e) => return Err(io::Error::new(e.kind(), format!("could not listen on {sockaddr}: {e}"))),
        }
    }
    Ok(listeners)
}

/// A listening socket with the `tcp-backlog` queue (tokio's and std's `bind` use 128, too
/// short for a burst of connections: the kernel drops the SYNs that do not fit, and each
/// client waits a second or more before it tries again).
fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // As std's bind does: a restarted server can listen while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Accepts connections on `listener` (TLS ones when `tls`) and serves each on its own task.
async fn accept_loop(shared: Arc<Server>, listener: TcpListener, tls: bool) {
    let mut stop = shared.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                front::stream::keepalive(&stream, shared.settings().tcp_keepalive());
                let laddr = stream.local_addr().unwrap_or(addr);
                if tls {
                    tokio::spawn(serve_tls(shared.clone(), stream, addr, laddr));
                } else {
                    tokio::spawn(front::resp::serve(shared.clone(), Stream::Tcp(stream), addr, laddr, false));
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A TLS handshake may take this long; one left half done fails its connection only.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Completes the TLS handshake with the acceptor configured now, then serves the connection
/// like any other. A failed handshake (a plaintext client, a refused certificate, silence)
/// closes that connection, with a log line.
async fn serve_tls(shared: Arc<Server>, stream: tokio::net::TcpStream, addr: SocketAddr, laddr: SocketAddr) {
    let Some(acceptor) = shared.tls().acceptor() else { return };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => front::resp::serve(shared, Stream::Tls(Box::new(tls)), addr, laddr, true).await,
        Ok(Err(e)) => warn!("Error accepting a client connection: {e} (conn: {addr})"),
        Err(_) => warn!(
            "Error accepting a client connection: TLS handshake not completed in {HANDSHAKE_TIMEOUT:?} (conn: {addr})"
        ),
    }
}

/// The server's timer, on its own thread: `hz` times a second, reclaim expired keys for at
/// most a quarter of the period (as Redis's slow cycle), a few hundred keys per lock, and
/// sample the rates INFO reports.
fn spawn_expiry(shared: Arc<Server>) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("magpie-cron".into()).spawn(move || {
        let mut last_persist = Instant::now();
        while !shared.is_shutting_down() {
            let period = Duration::from_millis(1000 / shared.settings().hz().max(1));
            let start = Instant::now();
            shared.metrics().sample();
            let (ks, pubsub, journal, gate) = (shared.keyspace(), shared.pubsub(), shared.journal(), shared.gate());
            // Expiry takes turns with transactions (which see time stand still) between steps.
            let mut pass = Some(gate.shared());
            journal.begin();
            // DEBUG SET-ACTIVE-EXPIRE 0 stops the cycle (keys then expire when touched); so does
            // CLIENT PAUSE WRITE (or ALL): keys past their time read as missing but stay until
            // it ends, so nothing is written meanwhile (as Redis).
            let cycle = Instant::now();
            if shared.settings().operator.active_expire() && shared.clients().paused(now_ms()).is_none() {
                ks.active_expire(now_ms(), start + period / 4, || {
                    // Log the keys this step expired, and renew the bound for the next step.
                    expired::log(ks, pubsub, journal);
                    journal.end();
                    pass = None;
                    pass = Some(gate.shared());
                    journal.begin();
                });
            }
            expired::log(ks, pubsub, journal);
            journal.end();
            // Over maxmemory (lowered at run time, or a command's eviction ran out of time):
            // evict here too, as Redis's eviction time proc, without waiting for a write.
            let memory = &shared.settings().memory;
            while memory.perform_evictions(ks, pubsub, journal, now_ms()) == Outcome::Running
                && start.elapsed() < period / 2
            {
                // Let commands waiting for the gate in between.
                drop(pass.take());
                pass = Some(gate.shared());
            }
            drop(pass);
            // LATENCY's "expire-cycle" event: the cycle's time, as Redis's activeExpireCycle.
            let ms = u64::try_from(cycle.elapsed().as_millis()).unwrap_or(u64::MAX);
            shared.latency().sample_if_needed(
                "expire-cycle",
                ms,
                shared.settings().operator.latency_monitor_threshold(),
            );
            // Clients caching keys that expired hear of it.
            shared.clients().tracking.deliver(shared.clients(), &pubsub.limits, None);
            shared.clients().evict_over(shared.settings().client_eviction_limit(memory.maxmemory()));
            if last_persist.elapsed() >= Duration::from_millis(100) {
                last_persist = Instant::now();
                shared.persistence().cron(shared.is_shutting_down());
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

/// A signal to wait for, listened to from its creation on (so that none delivered between two
/// waits is missed).
struct Signal(Option<tokio::signal::unix::Signal>);

impl Signal {
    fn new(kind: SignalKind) -> Signal {
        use tokio::signal::unix::{SignalKind as K, signal};
        let kind = match kind {
            SignalKind::Interrupt => K::interrupt(),
            SignalKind::Terminate => K::terminate(),
        };
        match signal(kind) {
            Ok(s) => Signal(Some(s)),
            Err(e) => {
                warn!("cannot listen for signals: {e}");
                Signal(None)
            }
        }
    }

    async fn recv(&mut self) {
        match &mut self.0 {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}
