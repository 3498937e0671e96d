//! The parameters CONFIG GET and SET know: how each is read, checked and changed.

use super::*;

#[derive(Clone, Copy)]
pub(super) enum Kind {
    Int {
        min: u64,
        max: u64,
    },
    Memory {
        min: u64,
    },
    /// Text, checked by the function.
    Text(fn(&str) -> Result<(), String>),
}

/// A checked value, ready to apply.
pub(super) enum Apply<'a> {
    Num(fn(&Settings, u64), u64),
    Text(fn(&Settings, &str), &'a str),
}

#[derive(Clone, Copy)]
pub(super) enum Set {
    Num(fn(&Settings, u64)),
    Text(fn(&Settings, &str)),
}

pub(super) fn parse_value(kind: Kind, s: &str) -> Result<u64, String> {
    match kind {
        Kind::Int { min, max } => {
            // Parsed as a signed number first, so a negative one is out of range, as in Redis.
            let n: i64 = s.parse().map_err(|_| "argument couldn't be parsed into an integer".to_owned())?;
            match u64::try_from(n) {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(format!("argument must be between {min} and {max} inclusive")),
            }
        }
        Kind::Memory { min } => {
            let n = parse_memory(s).ok_or_else(|| "argument must be a memory value".to_owned())? as u64;
            if n < min {
                return Err(format!("argument must be between {min} and {} inclusive", i64::MAX));
            }
            Ok(n)
        }
        Kind::Text(_) => Err("not a number".to_owned()),
    }
}

/// Sets the encoding thresholds given at start (process-wide: see `magpie_store::limits`).
pub(super) fn apply_encoding_limits(config: &Config) {
    use magpie_store::limits::{HASH_ENTRIES, HASH_VALUE, SET_INTSET_ENTRIES, ZSET_ENTRIES, ZSET_VALUE};
    let o = &config.encoding;
    for (limit, v) in [
        (&HASH_ENTRIES, o.hash_max_listpack_entries),
        (&HASH_VALUE, o.hash_max_listpack_value),
        (&SET_INTSET_ENTRIES, o.set_max_intset_entries),
        (&ZSET_ENTRIES, o.zset_max_listpack_entries),
        (&ZSET_VALUE, o.zset_max_listpack_value),
    ] {
        if let Some(v) = v {
            limit.set(usize::try_from(v).unwrap_or(usize::MAX));
        }
    }
}

/// A setting Redis keeps as a C `int` (`list-max-listpack-size`), with its errors.
pub(super) fn parse_i32(s: &str) -> Result<i32, String> {
    let n: i64 = s.parse().map_err(|_| "argument couldn't be parsed into an integer".to_owned())?;
    i32::try_from(n).map_err(|_| format!("argument must be between {} and {} inclusive", i32::MIN, i32::MAX))
}

pub(super) fn yes_no(s: &str) -> Result<(), String> {
    parse_yes_no("argument", s).map(|_| ()).map_err(|_| "argument must be 'yes' or 'no'".to_owned())
}

/// `sanitize-dump-payload`'s values, by their number.
pub(super) const SANITIZE: [&str; 3] = ["no", "yes", "clients"];

pub(super) fn parse_sanitize(v: &str) -> Result<u8, String> {
    SANITIZE
        .iter()
        .position(|n| n.eq_ignore_ascii_case(v))
        .map(|i| i as u8)
        .ok_or_else(|| "argument(s) must be one of the following: no, yes, clients".to_owned())
}

pub(super) fn yes(s: &str) -> bool {
    s.eq_ignore_ascii_case("yes")
}

pub(super) struct Param {
    pub(super) name: &'static str,
    pub(super) get: fn(&Settings) -> String,
    pub(super) kind: Kind,
    /// `None` for settings fixed at start.
    pub(super) set: Option<Set>,
}

pub(super) const FIXED: Kind = Kind::Int { min: 0, max: 0 };

/// Settings that name files: CONFIG SET may change them only as `enable-protected-configs`
/// allows (Redis 7's `PROTECTED_CONFIG`: `dir` is fixed in Magpie anyway).
pub(super) const PROTECTED: &[&str] = &["dir", "dbfilename"];

pub(super) fn opt_text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

pub(super) fn opt_value(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

/// `list-max-listpack-size` (also listed under its old name, `list-max-ziplist-size`).
const LIST_MAX_LISTPACK_SIZE: Param = Param {
    name: "list-max-listpack-size",
    get: |_| magpie_store::limits::LIST_MAX_LISTPACK_SIZE.load(Ordering::Relaxed).to_string(),
    kind: Kind::Text(|v| parse_i32(v).map(|_| ())),
    set: Some(Set::Text(|_, v| {
        if let Ok(n) = parse_i32(v) {
            magpie_store::limits::LIST_MAX_LISTPACK_SIZE.store(i64::from(n), Ordering::Relaxed);
        }
    })),
};

/// `busy-reply-threshold` (also listed under its old name, `lua-time-limit`).
const BUSY_REPLY_THRESHOLD: Param = Param {
    name: "busy-reply-threshold",
    get: |s| s.busy_reply_threshold().to_string(),
    kind: Kind::Int { min: 0, max: i64::MAX as u64 },
    set: Some(Set::Num(|s, v| s.busy_reply_threshold.store(v, Ordering::Relaxed))),
};

/// A [`Param`] for one of the encoding thresholds in `magpie_store::limits`.
macro_rules! limit_param {
    ($name:literal, $limit:ident) => {
        Param {
            name: $name,
            get: |_| magpie_store::limits::$limit.configured().to_string(),
            kind: Kind::Int { min: 0, max: i64::MAX as u64 },
            set: Some(Set::Num(|_, v| magpie_store::limits::$limit.set(usize::try_from(v).unwrap_or(usize::MAX)))),
        }
    };
}

pub(super) static PARAMS: &[Param] = &[
    Param { name: "port", get: |s| s.config.port.to_string(), kind: FIXED, set: None },
    Param { name: "bind", get: |s| s.config.bind.join(" "), kind: FIXED, set: None },
    Param { name: "databases", get: |s| s.config.databases.to_string(), kind: FIXED, set: None },
    Param { name: "tcp-backlog", get: |s| s.config.tcp_backlog.to_string(), kind: FIXED, set: None },
    Param {
        name: "maxclients",
        get: |s| s.maxclients().to_string(),
        kind: Kind::Int { min: 1, max: u32::MAX as u64 },
        set: Some(Set::Num(|s, v| s.maxclients.store(usize::try_from(v).unwrap_or(usize::MAX), Ordering::Relaxed))),
    },
    Param {
        name: "timeout",
        get: |s| s.timeout().to_string(),
        kind: Kind::Int { min: 0, max: i32::MAX as u64 },
        set: Some(Set::Num(|s, v| s.timeout.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "proto-max-bulk-len",
        get: |s| s.proto_max_bulk_len().to_string(),
        kind: Kind::Memory { min: MIN_BULK_LEN as u64 },
        set: Some(Set::Num(|s, v| {
            s.proto_max_bulk_len.store(usize::try_from(v).unwrap_or(usize::MAX), Ordering::Relaxed);
        })),
    },
    Param {
        name: "hz",
        get: |s| s.hz().to_string(),
        kind: Kind::Int { min: 1, max: 500 },
        set: Some(Set::Num(|s, v| s.hz.store(v, Ordering::Relaxed))),
    },
    Param { name: "loglevel", get: |s| s.config.loglevel.clone(), kind: FIXED, set: None },
    Param {
        name: "save",
        get: |s| format_save(&s.save()),
        kind: Kind::Text(|v| parse_save(v).map(|_| ())),
        set: Some(Set::Text(|s, v| *s.save.lock() = parse_save(v).unwrap_or_default())),
    },
    Param { name: "dir", get: |s| s.config.dir.display().to_string(), kind: FIXED, set: None },
    Param {
        name: "dbfilename",
        get: |s| s.dbfilename(),
        kind: Kind::Text(|v| check_file_name("dbfilename", v)),
        set: Some(Set::Text(|s, v| *s.dbfilename.lock() = v.to_owned())),
    },
    Param {
        name: "appendonly",
        get: |s| if s.appendonly() { "yes" } else { "no" }.to_owned(),
        kind: Kind::Text(yes_no),
        set: Some(Set::Text(|s, v| s.set_appendonly(yes(v)))),
    },
    Param {
        name: "appendfsync",
        get: |s| s.appendfsync().name().to_owned(),
        kind: Kind::Text(|v| {
            Fsync::parse(v)
                .map(|_| ())
                .ok_or_else(|| "argument(s) must be one of the following: always, everysec, no".to_owned())
        }),
        set: Some(Set::Text(|s, v| {
            s.appendfsync.store(Fsync::parse(v).unwrap_or(Fsync::Everysec) as usize, Ordering::Relaxed);
        })),
    },
    Param { name: "appendfilename", get: |s| s.config.appendfilename.clone(), kind: FIXED, set: None },
    Param { name: "appenddirname", get: |s| s.config.appenddirname.clone(), kind: FIXED, set: None },
    Param {
        name: "aof-load-truncated",
        get: |s| if s.aof_load_truncated() { "yes" } else { "no" }.to_owned(),
        kind: Kind::Text(yes_no),
        set: Some(Set::Text(|s, v| s.aof_load_truncated.store(yes(v), Ordering::Relaxed))),
    },
    Param {
        name: "auto-aof-rewrite-percentage",
        get: |s| s.auto_aof_rewrite().0.to_string(),
        kind: Kind::Int { min: 0, max: i32::MAX as u64 },
        set: Some(Set::Num(|s, v| s.auto_aof_rewrite_percentage.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "auto-aof-rewrite-min-size",
        get: |s| s.auto_aof_rewrite().1.to_string(),
        kind: Kind::Memory { min: 0 },
        set: Some(Set::Num(|s, v| s.auto_aof_rewrite_min_size.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "sanitize-dump-payload",
        get: |s| SANITIZE[s.sanitize_dump_payload.load(Ordering::Relaxed) as usize % 3].to_owned(),
        kind: Kind::Text(|v| parse_sanitize(v).map(|_| ())),
        set: Some(Set::Text(|s, v| {
            s.sanitize_dump_payload.store(u32::from(parse_sanitize(v).unwrap_or(0)), Ordering::Relaxed);
        })),
    },
    Param {
        name: "hll-sparse-max-bytes",
        get: |s| s.hll_sparse_max_bytes.load(Ordering::Relaxed).to_string(),
        kind: Kind::Memory { min: 0 },
        set: Some(Set::Num(|s, v| s.hll_sparse_max_bytes.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "txn-timeout",
        get: |s| s.txn_timeout().to_string(),
        kind: Kind::Int { min: 1, max: i32::MAX as u64 },
        set: Some(Set::Num(|s, v| s.txn_timeout.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "txn-max-keys",
        get: |s| s.txn_max_keys().to_string(),
        kind: Kind::Int { min: 1, max: u32::MAX as u64 },
        set: Some(Set::Num(|s, v| s.txn_max_keys.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "txn-max-bytes",
        get: |s| s.txn_max_bytes().to_string(),
        kind: Kind::Memory { min: 1 },
        set: Some(Set::Num(|s, v| s.txn_max_bytes.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "stop-writes-on-bgsave-error",
        get: |s| if s.stop_writes_on_bgsave_error() { "yes" } else { "no" }.to_owned(),
        kind: Kind::Text(yes_no),
        set: Some(Set::Text(|s, v| s.stop_writes_on_bgsave_error.store(yes(v), Ordering::Relaxed))),
    },
    Param {
        name: "notify-keyspace-events",
        get: |s| format_events(s.notify_keyspace_events()),
        kind: Kind::Text(|v| parse_events_setting(v).map(|_| ())),
        set: Some(Set::Text(|s, v| {
            s.notify_keyspace_events.store(parse_events_setting(v).unwrap_or(0), Ordering::Relaxed);
        })),
    },
    limit_param!("hash-max-listpack-entries", HASH_ENTRIES),
    limit_param!("hash-max-ziplist-entries", HASH_ENTRIES),
    limit_param!("hash-max-listpack-value", HASH_VALUE),
    limit_param!("hash-max-ziplist-value", HASH_VALUE),
    limit_param!("set-max-intset-entries", SET_INTSET_ENTRIES),
    limit_param!("zset-max-listpack-entries", ZSET_ENTRIES),
    limit_param!("zset-max-ziplist-entries", ZSET_ENTRIES),
    limit_param!("zset-max-listpack-value", ZSET_VALUE),
    limit_param!("zset-max-ziplist-value", ZSET_VALUE),
    LIST_MAX_LISTPACK_SIZE,
    Param { name: "list-max-ziplist-size", ..LIST_MAX_LISTPACK_SIZE },
    Param {
        name: "list-compress-depth",
        get: |_| magpie_store::limits::LIST_COMPRESS_DEPTH.load(Ordering::Relaxed).to_string(),
        kind: Kind::Int { min: 0, max: i32::MAX as u64 },
        set: Some(Set::Num(|_, v| {
            magpie_store::limits::LIST_COMPRESS_DEPTH
                .store(usize::try_from(v).unwrap_or(usize::MAX), Ordering::Relaxed);
        })),
    },
    BUSY_REPLY_THRESHOLD,
    Param { name: "lua-time-limit", ..BUSY_REPLY_THRESHOLD },
    Param {
        name: "client-output-buffer-limit",
        get: |s| format_output_limits(&s.client_output_buffer_limit.lock()),
        kind: Kind::Text(|v| parse_output_limits(v, DEFAULT_OUTPUT_LIMITS).map(|_| ())),
        set: Some(Set::Text(|s, v| {
            let mut limits = s.client_output_buffer_limit.lock();
            *limits = parse_output_limits(v, *limits).unwrap_or(*limits);
        })),
    },
    Param {
        name: "client-query-buffer-limit",
        get: |s| s.client_query_buffer_limit().to_string(),
        kind: Kind::Memory { min: MIN_BULK_LEN as u64 },
        set: Some(Set::Num(|s, v| s.client_query_buffer_limit.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "tcp-keepalive",
        get: |s| s.tcp_keepalive().to_string(),
        kind: Kind::Int { min: 0, max: i32::MAX as u64 },
        set: Some(Set::Num(|s, v| s.tcp_keepalive.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "maxmemory-clients",
        get: |s| format_memory_or_percent(s.maxmemory_clients.load(Ordering::Relaxed)),
        kind: Kind::Text(|v| parse_memory_or_percent(v).map(|_| ())),
        set: Some(Set::Text(|s, v| {
            s.maxmemory_clients.store(parse_memory_or_percent(v).unwrap_or(0), Ordering::Relaxed);
        })),
    },
    Param {
        name: "tracking-table-max-keys",
        get: |s| s.tracking_table_max_keys().to_string(),
        kind: Kind::Int { min: 0, max: i64::MAX as u64 },
        set: Some(Set::Num(|s, v| s.tracking_table_max_keys.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "requirepass",
        get: |s| opt_text(&s.requirepass()),
        kind: Kind::Text(|_| Ok(())),
        set: Some(Set::Text(|s, v| *s.requirepass.lock() = opt_value(v))),
    },
    Param {
        name: "aclfile",
        get: |s| s.config.aclfile.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        kind: FIXED,
        set: None,
    },
    Param {
        name: "acllog-max-len",
        get: |s| s.acllog_max_len().to_string(),
        kind: Kind::Int { min: 0, max: i64::MAX as u64 },
        set: Some(Set::Num(|s, v| s.acllog_max_len.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "protected-mode",
        get: |s| if s.protected_mode() { "yes" } else { "no" }.to_owned(),
        kind: Kind::Text(yes_no),
        set: Some(Set::Text(|s, v| s.protected_mode.store(yes(v), Ordering::Relaxed))),
    },
    Param {
        name: "disable-thp",
        get: |s| if s.config.disable_thp { "yes" } else { "no" }.to_owned(),
        kind: FIXED,
        set: None,
    },
    Param {
        name: "enable-protected-configs",
        get: |s| s.config.enable_protected_configs.name().to_owned(),
        kind: FIXED,
        set: None,
    },
    Param {
        name: "enable-debug-command",
        get: |s| s.config.enable_debug_command.name().to_owned(),
        kind: FIXED,
        set: None,
    },
    Param {
        name: "slowlog-log-slower-than",
        get: |s| s.operator.slowlog_log_slower_than().to_string(),
        kind: Kind::Text(|v| parse_signed(v, -1).map(|_| ())),
        set: Some(Set::Text(|s, v| {
            s.operator.slowlog_log_slower_than.store(parse_signed(v, -1).unwrap_or(-1), Ordering::Relaxed);
        })),
    },
    Param {
        name: "slowlog-max-len",
        get: |s| s.operator.slowlog_max_len().to_string(),
        kind: Kind::Text(|v| parse_signed(v, 0).map(|_| ())),
        set: Some(Set::Text(|s, v| {
            s.operator.slowlog_max_len.store(parse_signed(v, 0).unwrap_or(0) as u64, Ordering::Relaxed);
        })),
    },
    Param {
        name: "latency-monitor-threshold",
        get: |s| s.operator.latency_monitor_threshold().to_string(),
        kind: Kind::Text(|v| parse_signed(v, 0).map(|_| ())),
        set: Some(Set::Text(|s, v| {
            s.operator.latency_monitor_threshold.store(parse_signed(v, 0).unwrap_or(0) as u64, Ordering::Relaxed);
        })),
    },
    Param {
        name: "latency-tracking",
        get: |s| if s.operator.latency_tracking() { "yes" } else { "no" }.to_owned(),
        kind: Kind::Text(yes_no),
        set: Some(Set::Text(|s, v| s.operator.latency_tracking.store(yes(v), Ordering::Relaxed))),
    },
    Param {
        name: "latency-tracking-info-percentiles",
        get: |s| format_percentiles(&s.operator.percentiles()),
        kind: Kind::Text(|v| parse_percentiles(v).map(|_| ())),
        set: Some(Set::Text(|s, v| *s.operator.percentiles.lock() = parse_percentiles(v).unwrap_or_default())),
    },
    Param { name: "tls-port", get: |s| s.config.tls_port.to_string(), kind: FIXED, set: None },
    Param {
        name: "tls-cert-file",
        get: |s| opt_text(&s.tls.lock().cert_file),
        kind: Kind::Text(|_| Ok(())),
        set: Some(Set::Text(|s, v| s.tls.lock().cert_file = opt_value(v))),
    },
    Param {
        name: "tls-key-file",
        get: |s| opt_text(&s.tls.lock().key_file),
        kind: Kind::Text(|_| Ok(())),
        set: Some(Set::Text(|s, v| s.tls.lock().key_file = opt_value(v))),
    },
    Param {
        name: "tls-ca-cert-file",
        get: |s| opt_text(&s.tls.lock().ca_cert_file),
        kind: Kind::Text(|_| Ok(())),
        set: Some(Set::Text(|s, v| s.tls.lock().ca_cert_file = opt_value(v))),
    },
    Param {
        name: "tls-auth-clients",
        get: |s| client_auth_name(s.tls.lock().auth_clients).to_owned(),
        kind: Kind::Text(|v| parse_client_auth(v).map(|_| ())),
        set: Some(Set::Text(|s, v| {
            if let Ok(a) = parse_client_auth(v) {
                s.tls.lock().auth_clients = a;
            }
        })),
    },
    Param {
        name: "tls-protocols",
        get: |s| opt_text(&s.tls.lock().protocols),
        kind: Kind::Text(|_| Ok(())),
        set: Some(Set::Text(|s, v| s.tls.lock().protocols = opt_value(v))),
    },
    Param { name: "http-port", get: |s| s.config.http_port.to_string(), kind: FIXED, set: None },
    Param { name: "http-tls-port", get: |s| s.config.http_tls_port.to_string(), kind: FIXED, set: None },
    Param {
        name: "http-allowed-hosts",
        get: |s| s.http_allowed_hosts.lock().clone(),
        kind: Kind::Text(|_| Ok(())),
        set: Some(Set::Text(|s, v| *s.http_allowed_hosts.lock() = words(Some(v.to_owned())))),
    },
    Param {
        name: "http-cors-origins",
        get: |s| s.http_cors_origins.lock().clone(),
        kind: Kind::Text(|_| Ok(())),
        set: Some(Set::Text(|s, v| *s.http_cors_origins.lock() = words(Some(v.to_owned())))),
    },
    Param {
        name: "stream-node-max-bytes",
        get: |s| s.stream_node_max_bytes.load(Ordering::Relaxed).to_string(),
        kind: Kind::Memory { min: 0 },
        set: Some(Set::Num(|s, v| s.stream_node_max_bytes.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "stream-node-max-entries",
        get: |s| s.stream_node_max_entries.load(Ordering::Relaxed).to_string(),
        kind: Kind::Int { min: 0, max: i64::MAX as u64 },
        set: Some(Set::Num(|s, v| s.stream_node_max_entries.store(v, Ordering::Relaxed))),
    },
    Param {
        name: "maxmemory",
        get: |s| s.memory.maxmemory().to_string(),
        kind: Kind::Memory { min: 0 },
        set: Some(Set::Num(|s, v| s.memory.set_maxmemory(v))),
    },
    Param {
        name: "maxmemory-policy",
        get: |s| s.memory.policy().name().to_owned(),
        kind: Kind::Text(check_policy),
        set: Some(Set::Text(|s, v| s.memory.set_policy(Policy::parse(v).unwrap_or(Policy::NoEviction)))),
    },
    Param {
        name: "maxmemory-samples",
        get: |s| s.memory.samples().to_string(),
        kind: Kind::Int { min: 1, max: i32::MAX as u64 },
        set: Some(Set::Num(|s, v| s.memory.set_samples(v as u32))),
    },
    Param {
        name: "maxmemory-eviction-tenacity",
        get: |s| s.memory.tenacity().to_string(),
        kind: Kind::Int { min: 0, max: 100 },
        set: Some(Set::Num(|s, v| s.memory.set_tenacity(v as u32))),
    },
    Param {
        name: "lfu-log-factor",
        get: |s| s.memory.lfu_log_factor().to_string(),
        kind: Kind::Int { min: 0, max: i32::MAX as u64 },
        set: Some(Set::Num(|s, v| s.memory.set_lfu_log_factor(v as u32))),
    },
    Param {
        name: "lfu-decay-time",
        get: |s| s.memory.lfu_decay_time().to_string(),
        kind: Kind::Int { min: 0, max: i32::MAX as u64 },
        set: Some(Set::Num(|s, v| s.memory.set_lfu_decay_time(v as u32))),
    },
];
