//! Connected clients: what others may see of each (CLIENT LIST), and the registry of them all.
//! A connection's own state is its session (`crate::model::Session`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

/// What other connections may see of a client (CLIENT LIST). Written by its own connection
/// only, once per batch of commands, so readers cost the hot path nothing.
pub(crate) struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    /// Milliseconds since `created` at the last command.
    pub last_active_ms: AtomicU64,
    pub db: AtomicUsize,
    pub resp: AtomicUsize,
    pub name: Mutex<Option<Vec<u8>>>,
    pub last_cmd: Mutex<&'static str>,
    /// The user it authenticated as (CLIENT LIST's `user`).
    pub user: Mutex<Box<[u8]>>,
    /// Waiting in a blocking command (CLIENT LIST's `b` flag).
    pub blocked: AtomicBool,
    /// Subscriptions and the mailbox of messages for them (see `super::pubsub`).
    pub pubsub: super::pubsub::ClientPubSub,
}

impl ClientInfo {
    /// One line of CLIENT LIST / CLIENT INFO, with Redis 7.0's fields.
    pub(crate) fn line(&self) -> Vec<u8> {
        let age = self.created.elapsed();
        let idle_ms = u64::try_from(age.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_sub(self.last_active_ms.load(Ordering::Relaxed));
        let mut line = format!("id={} addr={} laddr={} fd=0 name=", self.id, self.addr, self.laddr).into_bytes();
        // Redis's order of the flags we have; N when there are none.
        let mut flags = String::new();
        if self.pubsub.monitor.load(Ordering::Relaxed) {
            flags.push('O');
        }
        if self.pubsub.active() {
            flags.push('P');
        }
        if self.blocked.load(Ordering::Relaxed) {
            flags.push('b');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let [sub, psub, ssub] = self.pubsub.counts();
        let omem = self.pubsub.mailbox.pending();
        if let Some(name) = &*self.name.lock() {
            line.extend_from_slice(name);
        }
        line.extend_from_slice(
            format!(
                " age={} idle={} flags={flags} db={} sub={sub} psub={psub} ssub={ssub} multi=-1 qbuf=0 qbuf-free=0 \
                 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem={omem} tot-mem=0 events=r cmd={} user=",
                age.as_secs(),
                idle_ms / 1000,
                self.db.load(Ordering::Relaxed),
                self.last_cmd.lock(),
            )
            .as_bytes(),
        );
        line.extend_from_slice(&self.user.lock());
        line.extend_from_slice(format!(" redir=-1 resp={}", self.resp.load(Ordering::Relaxed)).as_bytes());
        line
    }
}

impl ClientInfo {
    /// A client of the server itself (replaying the log, a script's calls), in no registry.
    pub(crate) fn internal() -> Arc<ClientInfo> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Arc::new(ClientInfo::new(0, addr, addr))
    }

    fn new(id: u64, addr: SocketAddr, laddr: SocketAddr) -> ClientInfo {
        ClientInfo {
            id,
            addr,
            laddr,
            created: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            db: AtomicUsize::new(0),
            resp: AtomicUsize::new(2),
            name: Mutex::new(None),
            last_cmd: Mutex::new("NULL"),
            user: Mutex::new(b"default".to_vec().into_boxed_slice()),
            blocked: AtomicBool::new(false),
            pubsub: Default::default(),
        }
    }
}

/// All connected clients.
#[derive(Default)]
pub(crate) struct Registry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    /// Connections accepted and served (INFO's `total_connections_received`).
    pub accepted: AtomicU64,
    /// Connections refused for `maxclients` (INFO's `rejected_connections`).
    pub rejected: AtomicU64,
}

impl Registry {
    /// Registers a new connection and returns what others may see of it.
    pub(crate) fn connect(&self, addr: SocketAddr, laddr: SocketAddr) -> Arc<ClientInfo> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let info = Arc::new(ClientInfo::new(id, addr, laddr));
        self.clients.lock().insert(id, info.clone());
        info
    }

    pub(crate) fn disconnect(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    pub(crate) fn len(&self) -> usize {
        self.clients.lock().len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of the connected clients, in id order.
    pub(crate) fn list(&self) -> Vec<Arc<ClientInfo>> {
        self.clients.lock().values().cloned().collect()
    }
}
