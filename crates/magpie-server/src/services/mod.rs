//! The services: the keyspace's companions that commands use, each owning its state, none
//! knowing the server that holds them, the command model or the front ends. They depend on
//! `core` and on each other in one direction (the persistence holds the keyspace, settings,
//! gate and journal it needs); [`Server`] bundles them for the layers above.

pub(crate) mod acl;
pub(crate) mod blocking;
pub(crate) mod clients;
pub(crate) mod config;
pub(crate) mod expired;
pub(crate) mod gate;
pub(crate) mod journal;
pub(crate) mod latency;
pub(crate) mod memory;
pub(crate) mod metrics;
pub(crate) mod monitor;
pub(crate) mod persist;
pub(crate) mod pubsub;
pub(crate) mod scripting;
pub(crate) mod slowlog;
pub(crate) mod stats;
pub(crate) mod tls;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tracing::warn;

use magpie_store::Keyspace;

use acl::Acl;
use blocking::Blocking;
use clients::Registry;
use config::{ClientClass, Config, Settings};
use gate::Gate;
use journal::Journal;
use metrics::Metrics;
use persist::Persistence;
use pubsub::PubSub;
use scripting::Scripting;
use tls::Tls;

/// Every service of one server. Built once at start; shared by every connection and thread.
pub(crate) struct Server {
    keyspace: Arc<Keyspace>,
    settings: Arc<Settings>,
    gate: Arc<Gate>,
    persistence: Arc<Persistence>,
    pubsub: PubSub,
    blocking: Arc<Blocking>,
    clients: Registry,
    metrics: Metrics,
    acl: Acl,
    tls: Tls,
    slowlog: slowlog::SlowLog,
    latency: latency::Latency,
    monitors: monitor::Monitors,
    scripting: Arc<Scripting>,
    shutdown: watch::Sender<bool>,
}

impl Server {
    pub(crate) fn new(config: Config) -> Server {
        let keyspace = Arc::new(Keyspace::new(config.databases, config.shards));
        let gate = Arc::new(Gate::default());
        let settings = Arc::new(Settings::new(config.clone()));
        let scripting = Arc::new(Scripting::new(gate.clone()));
        let persistence = Arc::new(Persistence::new(&config, keyspace.clone(), settings.clone(), gate.clone()));
        persistence.set_scripting(scripting.clone());
        // Blocked clients are signalled by the keyspace itself when a key they wait on changes.
        let blocking = Arc::new(Blocking::default());
        let signals = blocking.clone();
        keyspace.tap().set_ready_hook(Box::new(move |db, key| signals.signal(db, key)));
        Server {
            persistence,
            gate,
            keyspace,
            settings,
            blocking,
            clients: Registry::default(),
            metrics: Metrics::new(),
            scripting,
            pubsub: PubSub::default(),
            acl: Acl::new(
                config.aclfile.clone(),
                config.requirepass.as_deref().map(str::as_bytes),
                usize::try_from(config.acllog_max_len).unwrap_or(usize::MAX),
            ),
            tls: Tls::default(),
            slowlog: slowlog::SlowLog::default(),
            latency: latency::Latency::default(),
            monitors: monitor::Monitors::default(),
            shutdown: watch::Sender::new(false),
        }
    }

    /// The server's keyspace (an interactive transaction's commands see a private copy instead:
    /// commands reach keys through `Ctx`, never through this).
    pub(crate) fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Lets a transaction run with no other command running (see [`gate`]).
    pub(crate) fn gate(&self) -> &Gate {
        &self.gate
    }

    pub(crate) fn persistence(&self) -> &Arc<Persistence> {
        &self.persistence
    }

    pub(crate) fn journal(&self) -> &Arc<Journal> {
        self.persistence.journal()
    }

    pub(crate) fn pubsub(&self) -> &PubSub {
        &self.pubsub
    }

    pub(crate) fn blocking(&self) -> &Blocking {
        &self.blocking
    }

    pub(crate) fn clients(&self) -> &Registry {
        &self.clients
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Users, passwords and the ACL LOG.
    pub(crate) fn acl(&self) -> &Acl {
        &self.acl
    }

    /// The TLS acceptor (see [`tls`]).
    pub(crate) fn tls(&self) -> &Tls {
        &self.tls
    }

    /// SLOWLOG's entries.
    pub(crate) fn slowlog(&self) -> &slowlog::SlowLog {
        &self.slowlog
    }

    /// LATENCY's events.
    pub(crate) fn latency(&self) -> &latency::Latency {
        &self.latency
    }

    /// The clients that run MONITOR.
    pub(crate) fn monitors(&self) -> &monitor::Monitors {
        &self.monitors
    }

    /// CONFIG SET: applies `name value` pairs all or nothing (see [`Settings::set_from`]) for a
    /// client on the loopback interface or not, then what follows from them: the default
    /// user's password (`requirepass`, as Redis's `updateRequirePass`), the ACL LOG's length,
    /// and the TLS certificates, loaded again (if they fail to load, the TLS settings go back
    /// to what they were and CONFIG SET fails, as in Redis).
    pub(crate) fn config_set(&self, pairs: &[(&[u8], &[u8])], local: bool) -> Result<(), String> {
        let named = |name: &str| pairs.iter().any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()));
        let tls_before = self.settings.tls();
        self.settings.set_from(pairs, local)?;
        if named("requirepass") {
            self.acl.set_requirepass(self.settings.requirepass().as_deref().map(str::as_bytes));
        }
        if named("acllog-max-len") {
            self.acl.set_log_max(self.settings.acllog_max_len());
        }
        let tls_now = self.settings.tls();
        if tls_now != tls_before
            && self.settings.config.tls_port != 0
            && let Err(e) = self.tls.configure(&tls_now)
        {
            {
                warn!("TLS configuration failed: {e}");
                self.settings.restore_tls(tls_before);
                let mut names = pairs.iter().map(|(n, _)| String::from_utf8_lossy(n).to_ascii_lowercase());
                let name = names.find(|n| n.starts_with("tls-")).unwrap_or_default();
                return Err(format!(
                    "CONFIG SET failed (possibly related to argument '{name}') - Unable to update TLS configuration. \
                     Check server logs."
                ));
            }
        }
        self.apply_settings();
        Ok(())
    }

    /// EVAL's script cache, FUNCTION's libraries and the running script.
    pub(crate) fn scripting(&self) -> &Scripting {
        &self.scripting
    }

    /// Asks the server to stop (SHUTDOWN, or a signal).
    pub(crate) fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Copies `notify-keyspace-events` and `client-output-buffer-limit pubsub` from the settings
    /// into the live state (at start and after CONFIG SET). Expired events need the store to
    /// report the keys it removes because they expired (the append-only log uses that report too).
    pub(crate) fn apply_settings(&self) {
        let events = self.settings.notify_keyspace_events();
        self.pubsub.events.store(events, Ordering::Relaxed);
        let (hard, soft, secs) = self.settings.output_buffer_limit(ClientClass::Pubsub);
        self.pubsub.limits.set(hard, soft, secs);
        if events & crate::core::events::EXPIRED != 0 {
            let tap = self.keyspace.tap();
            self.keyspace.with_all_locked(|| tap.set_expired_tap(true));
        }
    }

    /// CONFIG RESETSTAT: the counters INFO shows start again from zero.
    pub(crate) fn reset_stats(&self) {
        let expired = self.keyspace.dbs().iter().map(|db| db.stats().expired).sum();
        self.metrics.reset(expired);
        self.clients.accepted.store(0, Ordering::Relaxed);
        self.clients.rejected.store(0, Ordering::Relaxed);
    }
}

/// Frees what a flush or a big delete took out of the keyspace on another thread, so that
/// dropping millions of values does not stall the connection that asked.
pub(crate) fn drop_in_background<T: Send + 'static>(garbage: T) {
    let spawned = std::thread::Builder::new().name("magpie-free".into()).spawn(move || drop(garbage));
    if let Err(e) = spawned {
        warn!("could not start a thread to free memory ({e}); it stays allocated");
    }
}
