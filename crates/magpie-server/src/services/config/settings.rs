//! The settings as the running server sees them; CONFIG SET changes the mutable ones.

use super::*;

pub(super) const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning"];
pub(super) const MIN_BULK_LEN: usize = 1024 * 1024;

/// The settings as the running server sees them; CONFIG SET changes the mutable ones.
pub(crate) struct Settings {
    pub config: Config,
    pub(super) maxclients: AtomicUsize,
    pub(super) timeout: AtomicU64,
    pub(super) proto_max_bulk_len: AtomicUsize,
    pub(super) hz: AtomicU64,
    pub(super) save: Mutex<Vec<(u64, u64)>>,
    pub(super) dbfilename: Mutex<String>,
    pub(super) appendonly: AtomicBool,
    pub(super) appendfsync: AtomicUsize,
    pub(super) aof_load_truncated: AtomicBool,
    pub(super) auto_aof_rewrite_percentage: AtomicU64,
    pub(super) auto_aof_rewrite_min_size: AtomicU64,
    pub(super) stop_writes_on_bgsave_error: AtomicBool,
    pub(super) sanitize_dump_payload: AtomicU32,
    pub(super) hll_sparse_max_bytes: AtomicU64,
    pub(super) txn_timeout: AtomicU64,
    pub(super) txn_max_keys: AtomicU64,
    pub(super) txn_max_bytes: AtomicU64,
    pub(super) notify_keyspace_events: AtomicU32,
    pub(super) client_output_buffer_limit: Mutex<[(u64, u64, u64); 3]>,
    pub(super) client_query_buffer_limit: AtomicU64,
    pub(super) tcp_keepalive: AtomicU64,
    pub(super) tracking_table_max_keys: AtomicU64,
    pub(super) maxmemory_clients: AtomicI64,
    pub(super) requirepass: Mutex<Option<String>>,
    pub(super) acllog_max_len: AtomicU64,
    pub(super) protected_mode: AtomicBool,
    pub(super) tls: Mutex<TlsSettings>,
    pub(crate) operator: OperatorSettings,
    pub(super) http_allowed_hosts: Mutex<String>,
    pub(super) http_cors_origins: Mutex<String>,
    pub(super) stream_node_max_bytes: AtomicU64,
    pub(super) stream_node_max_entries: AtomicU64,
    pub(super) busy_reply_threshold: AtomicU64,
    pub(crate) memory: Memory,
}

impl Settings {
    pub(crate) fn new(config: Config) -> Settings {
        apply_encoding_limits(&config);
        Settings {
            maxclients: AtomicUsize::new(config.maxclients),
            timeout: AtomicU64::new(config.timeout),
            proto_max_bulk_len: AtomicUsize::new(config.proto_max_bulk_len),
            hz: AtomicU64::new(config.hz),
            save: Mutex::new(config.save.clone()),
            dbfilename: Mutex::new(config.dbfilename.clone()),
            appendonly: AtomicBool::new(config.appendonly),
            appendfsync: AtomicUsize::new(config.appendfsync as usize),
            aof_load_truncated: AtomicBool::new(config.aof_load_truncated),
            auto_aof_rewrite_percentage: AtomicU64::new(config.auto_aof_rewrite_percentage),
            auto_aof_rewrite_min_size: AtomicU64::new(config.auto_aof_rewrite_min_size),
            stop_writes_on_bgsave_error: AtomicBool::new(config.stop_writes_on_bgsave_error),
            sanitize_dump_payload: AtomicU32::new(u32::from(config.sanitize_dump_payload)),
            hll_sparse_max_bytes: AtomicU64::new(config.hll_sparse_max_bytes),
            txn_timeout: AtomicU64::new(config.txn_timeout),
            txn_max_keys: AtomicU64::new(config.txn_max_keys),
            txn_max_bytes: AtomicU64::new(config.txn_max_bytes),
            notify_keyspace_events: AtomicU32::new(config.notify_keyspace_events),
            client_output_buffer_limit: Mutex::new(config.client_output_buffer_limit),
            client_query_buffer_limit: AtomicU64::new(config.client_query_buffer_limit),
            tcp_keepalive: AtomicU64::new(config.tcp_keepalive),
            tracking_table_max_keys: AtomicU64::new(config.tracking_table_max_keys),
            maxmemory_clients: AtomicI64::new(config.maxmemory_clients),
            requirepass: Mutex::new(config.requirepass.clone()),
            acllog_max_len: AtomicU64::new(config.acllog_max_len),
            protected_mode: AtomicBool::new(config.protected_mode),
            tls: Mutex::new(config.tls.clone()),
            operator: OperatorSettings::new(&config.operator),
            http_allowed_hosts: Mutex::new(config.http_allowed_hosts.clone()),
            http_cors_origins: Mutex::new(config.http_cors_origins.clone()),
            stream_node_max_bytes: AtomicU64::new(config.stream_node_max_bytes),
            stream_node_max_entries: AtomicU64::new(config.stream_node_max_entries),
            busy_reply_threshold: AtomicU64::new(config.busy_reply_threshold),
            memory: Memory::new(config.memory),
            config,
        }
    }

    pub(crate) fn save(&self) -> Vec<(u64, u64)> {
        self.save.lock().clone()
    }

    /// `busy-reply-threshold`, in milliseconds.
    pub(crate) fn busy_reply_threshold(&self) -> u64 {
        self.busy_reply_threshold.load(Ordering::Relaxed)
    }

    pub(crate) fn dbfilename(&self) -> String {
        self.dbfilename.lock().clone()
    }

    /// Whether the log should be on (CONFIG SET appendonly changes it; the server follows).
    pub(crate) fn appendonly(&self) -> bool {
        self.appendonly.load(Ordering::Relaxed)
    }

    pub(crate) fn set_appendonly(&self, on: bool) {
        self.appendonly.store(on, Ordering::Relaxed);
    }

    pub(crate) fn appendfsync(&self) -> Fsync {
        match self.appendfsync.load(Ordering::Relaxed) {
            0 => Fsync::Always,
            1 => Fsync::Everysec,
            _ => Fsync::No,
        }
    }

    pub(crate) fn aof_load_truncated(&self) -> bool {
        self.aof_load_truncated.load(Ordering::Relaxed)
    }

    pub(crate) fn auto_aof_rewrite(&self) -> (u64, u64) {
        (
            self.auto_aof_rewrite_percentage.load(Ordering::Relaxed),
            self.auto_aof_rewrite_min_size.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn txn_timeout(&self) -> u64 {
        self.txn_timeout.load(Ordering::Relaxed)
    }

    pub(crate) fn txn_max_keys(&self) -> usize {
        usize::try_from(self.txn_max_keys.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    pub(crate) fn txn_max_bytes(&self) -> u64 {
        self.txn_max_bytes.load(Ordering::Relaxed)
    }

    /// Whether a client's RESTORE payload gets the deep checks (`sanitize-dump-payload` yes
    /// or clients).
    pub(crate) fn sanitize_client_payloads(&self) -> bool {
        self.sanitize_dump_payload.load(Ordering::Relaxed) != 0
    }

    /// `hll-sparse-max-bytes`.
    pub(crate) fn hll_sparse_max_bytes(&self) -> usize {
        usize::try_from(self.hll_sparse_max_bytes.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    pub(crate) fn stop_writes_on_bgsave_error(&self) -> bool {
        self.stop_writes_on_bgsave_error.load(Ordering::Relaxed)
    }

    pub(crate) fn maxclients(&self) -> usize {
        self.maxclients.load(Ordering::Relaxed)
    }

    pub(crate) fn timeout(&self) -> u64 {
        self.timeout.load(Ordering::Relaxed)
    }

    pub(crate) fn proto_max_bulk_len(&self) -> usize {
        self.proto_max_bulk_len.load(Ordering::Relaxed)
    }

    pub(crate) fn hz(&self) -> u64 {
        self.hz.load(Ordering::Relaxed)
    }

    /// `notify-keyspace-events` as flags (the pub/sub state follows it: see
    /// `pubsub::follow_config`).
    pub(crate) fn notify_keyspace_events(&self) -> u32 {
        self.notify_keyspace_events.load(Ordering::Relaxed)
    }

    /// `client-output-buffer-limit` of one class: (hard, soft, soft seconds).
    pub(crate) fn output_buffer_limit(&self, class: ClientClass) -> (u64, u64, u64) {
        self.client_output_buffer_limit.lock()[class as usize]
    }

    /// `client-query-buffer-limit`, in bytes.
    pub(crate) fn client_query_buffer_limit(&self) -> usize {
        usize::try_from(self.client_query_buffer_limit.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// `tracking-table-max-keys` (0: no bound).
    pub(crate) fn tracking_table_max_keys(&self) -> usize {
        usize::try_from(self.tracking_table_max_keys.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    /// `maxmemory-clients` in bytes for a `maxmemory` of this many bytes: 0 for no limit, and
    /// at least 128 KB, as Redis's `getClientEvictionLimit`.
    pub(crate) fn client_eviction_limit(&self, maxmemory: u64) -> u64 {
        let v = self.maxmemory_clients.load(Ordering::Relaxed);
        let bytes = match v {
            0 => return 0,
            v if v < 0 && maxmemory == 0 => return 0,
            v if v < 0 => (maxmemory as f64 * (-v) as f64 / 100.0) as u64,
            v => v as u64,
        };
        bytes.max(128 * 1024)
    }

    /// `tcp-keepalive`, in seconds (0: off).
    pub(crate) fn tcp_keepalive(&self) -> u64 {
        self.tcp_keepalive.load(Ordering::Relaxed)
    }

    /// `requirepass` (the ACL follows it: see `Server::config_set`).
    pub(crate) fn requirepass(&self) -> Option<String> {
        self.requirepass.lock().clone()
    }

    pub(crate) fn acllog_max_len(&self) -> usize {
        usize::try_from(self.acllog_max_len.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    pub(crate) fn protected_mode(&self) -> bool {
        self.protected_mode.load(Ordering::Relaxed)
    }

    /// The TLS settings now (the certificates are loaded from them: see `services::tls`).
    pub(crate) fn tls(&self) -> TlsSettings {
        self.tls.lock().clone()
    }

    /// `http-allowed-hosts`: host names (lowercase) the HTTP API answers to, besides its own.
    pub(crate) fn http_allowed_hosts(&self) -> Vec<String> {
        self.http_allowed_hosts.lock().split(' ').filter(|h| !h.is_empty()).map(str::to_ascii_lowercase).collect()
    }

    /// `http-cors-origins`: the web origins allowed to call the HTTP API.
    pub(crate) fn http_cors_origins(&self) -> Vec<String> {
        self.http_cors_origins.lock().split(' ').filter(|h| !h.is_empty()).map(str::to_owned).collect()
    }

    /// Puts back TLS settings whose certificates failed to load.
    pub(crate) fn restore_tls(&self, tls: TlsSettings) {
        *self.tls.lock() = tls;
    }

    /// `stream-node-max-bytes` and `stream-node-max-entries`: when XADD starts a new node.
    pub(crate) fn stream_node_limits(&self) -> magpie_store::stream::NodeLimits {
        let clamp = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        magpie_store::stream::NodeLimits {
            max_bytes: clamp(self.stream_node_max_bytes.load(Ordering::Relaxed)),
            max_entries: clamp(self.stream_node_max_entries.load(Ordering::Relaxed)),
        }
    }

    /// `(name, value)` of every parameter matching one of `patterns` (glob, any case), each
    /// once, in table order.
    pub(crate) fn get<'p>(&self, patterns: impl Iterator<Item = &'p [u8]> + Clone) -> Vec<(&'static str, String)> {
        PARAMS
            .iter()
            .filter(|p| patterns.clone().any(|pat| glob_match(pat, p.name.as_bytes(), true)))
            .map(|p| (p.name, (p.get)(self)))
            .collect()
    }

    /// Applies `name value` pairs all or nothing: every pair is checked before any is applied.
    #[cfg(test)]
    pub(crate) fn set(&self, pairs: &[(&[u8], &[u8])]) -> Result<(), String> {
        self.set_from(pairs, true)
    }

    /// [`Settings::set`] for a client on the loopback interface (`local`) or not: file
    /// locations (Redis's protected configs) change only as `enable-protected-configs` allows.
    pub(crate) fn set_from(&self, pairs: &[(&[u8], &[u8])], local: bool) -> Result<(), String> {
        let mut checked = Vec::with_capacity(pairs.len());
        for (i, (name, value)) in pairs.iter().enumerate() {
            let Some(param) = PARAMS.iter().find(|p| p.name.as_bytes().eq_ignore_ascii_case(name)) else {
                return Err(format!(
                    "Unknown option or number of arguments for CONFIG SET - '{}'",
                    String::from_utf8_lossy(name)
                ));
            };
            let failed =
                |why: &str| format!("CONFIG SET failed (possibly related to argument '{}') - {why}", param.name);
            if pairs[..i].iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Err(failed("duplicate parameter"));
            }
            let Some(set) = param.set else { return Err(failed("can't set immutable config")) };
            if PROTECTED.contains(&param.name) && !self.config.enable_protected_configs.allows(local) {
                return Err(failed("can't set protected config"));
            }
            let value = std::str::from_utf8(value).map_err(|_| failed("argument must be valid text"))?;
            let parsed = match (param.kind, set) {
                (Kind::Text(check), Set::Text(apply)) => {
                    check(value).map_err(|e| failed(&e))?;
                    Apply::Text(apply, value)
                }
                (kind, Set::Num(apply)) => Apply::Num(apply, parse_value(kind, value).map_err(|e| failed(&e))?),
                (_, Set::Text(apply)) => Apply::Text(apply, value),
            };
            checked.push(parsed);
        }
        for apply in checked {
            match apply {
                Apply::Num(f, n) => f(self, n),
                Apply::Text(f, v) => f(self, v),
            }
        }
        Ok(())
    }
}
