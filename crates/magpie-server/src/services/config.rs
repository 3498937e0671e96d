//! Configuration: defaults, a TOML file, command-line flags (each overriding the one before),
//! and the live settings that CONFIG GET/SET read and change.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use clap::Parser;
use serde::Deserialize;

use magpie_store::glob_match;
use parking_lot::Mutex;

use super::journal::Fsync;
use crate::core::events::{format_events, parse_events};
use crate::core::units::parse_memory;

/// Settings from the command line or the config file. Every key of the file is also a flag
/// with the same (Redis) name.
#[derive(Parser, Deserialize, Debug, Default, Clone)]
#[command(name = "magpie-server", version, about = "Magpie: a Redis-compatible in-memory key-value server")]
#[command(args_override_self = true)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Options {
    /// TOML configuration file; flags given on the command line override it.
    #[arg(short, long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// TCP port to listen on [default: 6379].
    #[arg(long)]
    pub port: Option<u16>,
    /// Addresses to listen on, space separated; a leading '-' makes one optional
    /// [default: 127.0.0.1 -::1].
    #[arg(long, value_name = "ADDRS")]
    pub bind: Option<String>,
    /// Maximum number of connected clients [default: 10000].
    #[arg(long)]
    pub maxclients: Option<usize>,
    /// Close a client after this many idle seconds; 0 never [default: 0].
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Largest bulk string a client may send, e.g. 512mb [default: 512mb].
    #[arg(long, value_name = "BYTES")]
    pub proto_max_bulk_len: Option<String>,
    /// Number of databases [default: 16].
    #[arg(long)]
    pub databases: Option<usize>,
    /// Active expiry cycles per second, 1-500 [default: 10].
    #[arg(long)]
    pub hz: Option<u64>,
    /// Log level: debug, verbose, notice or warning [default: notice].
    #[arg(long)]
    pub loglevel: Option<String>,
    /// Shards per database, a power of two (Magpie) [default: 64].
    #[arg(long)]
    pub shards: Option<usize>,
    /// Worker threads (Magpie) [default: the number of CPUs this process may use].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Snapshot schedule: pairs of "seconds changes" (snapshot when at least that many
    /// changes happened in that many seconds); "" turns snapshots off
    /// [default: 3600 1 300 100 60 10000].
    #[arg(long, value_name = "SCHEDULE")]
    pub save: Option<String>,
    /// Directory for snapshots and the append-only log [default: the working directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Snapshot file name, in `dir` [default: dump.magpie].
    #[arg(long, value_name = "NAME")]
    pub dbfilename: Option<String>,
    /// Keep an append-only log of every write: yes or no [default: no].
    #[arg(long, value_name = "yes|no")]
    pub appendonly: Option<String>,
    /// When the log is fsynced: always (before each write is acknowledged), everysec or no
    /// (left to the OS) [default: everysec].
    #[arg(long, value_name = "always|everysec|no")]
    pub appendfsync: Option<String>,
    /// Base name of the log's files [default: appendonly.aof].
    #[arg(long, value_name = "NAME")]
    pub appendfilename: Option<String>,
    /// Directory of the log's files, in `dir` [default: appendonlydir].
    #[arg(long, value_name = "NAME")]
    pub appenddirname: Option<String>,
    /// Start even if the log's last record was cut short by a crash (the record is dropped,
    /// with a warning): yes or no [default: yes].
    #[arg(long, value_name = "yes|no")]
    pub aof_load_truncated: Option<String>,
    /// Rewrite the log when it has grown by this percentage since the last rewrite; 0 never
    /// [default: 100].
    #[arg(long, value_name = "PERCENT")]
    pub auto_aof_rewrite_percentage: Option<u64>,
    /// ...and is at least this big [default: 64mb].
    #[arg(long, value_name = "BYTES")]
    pub auto_aof_rewrite_min_size: Option<String>,
    /// Refuse writes while the last background snapshot failed: yes or no [default: yes].
    #[arg(long, value_name = "yes|no")]
    pub stop_writes_on_bgsave_error: Option<String>,
    /// Check RESTORE payloads deeply: yes, no, or clients (only those from clients)
    /// [default: no]. Magpie checks every payload entry by entry anyway; this adds the deep
    /// checks of streams.
    #[arg(long, value_name = "yes|no|clients")]
    pub sanitize_dump_payload: Option<String>,
    /// Largest sparse HyperLogLog, in bytes, before it turns dense [default: 3000].
    #[arg(long, value_name = "BYTES")]
    pub hll_sparse_max_bytes: Option<u64>,
    /// An interactive transaction (BEGIN) open longer than this many seconds is rolled back
    /// [default: 60].
    #[arg(long, value_name = "SECONDS")]
    pub txn_timeout: Option<u64>,
    /// ...or one that touches more than this many keys [default: 100000].
    #[arg(long, value_name = "KEYS")]
    pub txn_max_keys: Option<u64>,
    /// ...or whose private copy holds more than this many bytes of values [default: 256mb].
    #[arg(long, value_name = "BYTES")]
    pub txn_max_bytes: Option<String>,
    /// Keyspace events to publish, in Redis's letters: K (on __keyspace@<db>__:<key>), E (on
    /// __keyevent@<db>__:<event>), and the classes g (generic), $ (strings), l (lists), s
    /// (sets), h (hashes), z (sorted sets), x (expired), e (evicted), A (all of g$lshzxe)
    /// [default: "" (none)].
    #[arg(long, value_name = "FLAGS")]
    pub notify_keyspace_events: Option<String>,
    /// Output buffer limits: "CLASS HARD SOFT SECONDS ..." for the classes normal, replica and
    /// pubsub; a client whose pending replies (a subscriber's pending messages) pass HARD
    /// bytes, or stay above SOFT for more than SECONDS, is disconnected; 0 is no limit
    /// [default: normal 0 0 0 slave 256mb 64mb 60 pubsub 32mb 8mb 60].
    #[arg(long, value_name = "LIMITS")]
    pub client_output_buffer_limit: Option<String>,
    /// A client whose unparsed input passes this many bytes is disconnected [default: 1gb].
    #[arg(long, value_name = "BYTES")]
    pub client_query_buffer_limit: Option<String>,
    /// Seconds of silence after which the kernel probes a client's connection (SO_KEEPALIVE,
    /// TCP_KEEPIDLE); 0 for none [default: 300].
    #[arg(long, value_name = "SECONDS")]
    pub tcp_keepalive: Option<u64>,
    /// Keys the client-side caching table remembers at most (CLIENT TRACKING); past it, keys
    /// are dropped and their readers told to forget them; 0 for no bound [default: 1000000].
    #[arg(long, value_name = "KEYS")]
    pub tracking_table_max_keys: Option<u64>,
    /// When the clients' buffers (unparsed input, pending replies) pass this many bytes, or
    /// this percent of maxmemory ("10%"), the largest clients are closed (not those with
    /// CLIENT NO-EVICT on); 0 for no limit [default: 0].
    #[arg(long, value_name = "BYTES|PERCENT")]
    pub maxmemory_clients: Option<String>,
    /// The default user's password: clients must AUTH before anything else; "" for none
    /// [default: none].
    #[arg(long, value_name = "PASSWORD")]
    pub requirepass: Option<String>,
    /// ACL file: users as `user <name> <rules...>` lines, loaded at start and by ACL LOAD,
    /// written by ACL SAVE [default: none].
    #[arg(long, value_name = "FILE")]
    pub aclfile: Option<PathBuf>,
    /// Entries the ACL LOG keeps [default: 128].
    #[arg(long, value_name = "N")]
    pub acllog_max_len: Option<u64>,
    /// While the default user has no password, serve only clients on the loopback interface:
    /// yes or no [default: yes].
    #[arg(long, value_name = "yes|no")]
    pub protected_mode: Option<String>,
    /// Whether CONFIG SET may change file locations (dir, dbfilename): yes, no or local
    /// (clients on the loopback interface only) [default: no].
    #[arg(long, value_name = "yes|no|local")]
    pub enable_protected_configs: Option<String>,
    /// Whether the DEBUG command may run: yes, no or local [default: no].
    #[arg(long, value_name = "yes|no|local")]
    pub enable_debug_command: Option<String>,
    /// TCP port for TLS connections; 0 for none [default: 0].
    #[arg(long, value_name = "PORT")]
    pub tls_port: Option<u16>,
    /// The server's certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<String>,
    /// The server's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<String>,
    /// CA certificates (PEM) that client certificates must chain to.
    #[arg(long, value_name = "FILE")]
    pub tls_ca_cert_file: Option<String>,
    /// Client certificates: yes (required), optional (checked when given) or no [default: yes].
    #[arg(long, value_name = "yes|no|optional")]
    pub tls_auth_clients: Option<String>,
    /// TLS versions accepted, space separated: TLSv1.2, TLSv1.3 [default: both].
    #[arg(long, value_name = "VERSIONS")]
    pub tls_protocols: Option<String>,
    /// Check an append-only log file (or a log directory's manifest) and exit; with --fix,
    /// cut it after its last good record (keeping a backup).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub check_aof: Option<PathBuf>,
    /// Check a snapshot file and exit.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub check_snapshot: Option<PathBuf>,
    /// With --check-aof: repair the file.
    #[arg(long)]
    #[serde(skip)]
    pub fix: bool,
    /// Load a Redis RDB file (a dump.rdb of Redis up to 7.0) into the empty keyspace at start,
    /// then serve; with persistence on, the imported keys are saved at once.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub import_rdb: Option<PathBuf>,
}

/// The configuration the server starts with.
#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub bind: Vec<String>,
    pub maxclients: usize,
    pub timeout: u64,
    pub proto_max_bulk_len: usize,
    pub databases: usize,
    pub hz: u64,
    pub loglevel: String,
    pub shards: usize,
    pub threads: Option<usize>,
    /// The file the configuration was read from, if any (INFO's `config_file`).
    pub config_file: Option<std::path::PathBuf>,
    pub save: Vec<(u64, u64)>,
    pub dir: PathBuf,
    pub dbfilename: String,
    pub appendonly: bool,
    pub appendfsync: Fsync,
    pub appendfilename: String,
    pub appenddirname: String,
    pub aof_load_truncated: bool,
    pub auto_aof_rewrite_percentage: u64,
    pub auto_aof_rewrite_min_size: u64,
    pub stop_writes_on_bgsave_error: bool,
    /// `sanitize-dump-payload`: 0 no, 1 yes, 2 clients.
    pub sanitize_dump_payload: u8,
    pub hll_sparse_max_bytes: u64,
    pub txn_timeout: u64,
    pub txn_max_keys: u64,
    pub txn_max_bytes: u64,
    /// `notify-keyspace-events`, as Redis's flags (see `crate::core::events`).
    pub notify_keyspace_events: u32,
    /// `client-output-buffer-limit`: (hard, soft, soft seconds) by [`ClientClass`].
    pub client_output_buffer_limit: [(u64, u64, u64); 3],
    pub client_query_buffer_limit: u64,
    pub tcp_keepalive: u64,
    pub tracking_table_max_keys: u64,
    /// `maxmemory-clients`: bytes, or a percent of maxmemory stored negative (as Redis).
    pub maxmemory_clients: i64,
    pub requirepass: Option<String>,
    pub aclfile: Option<PathBuf>,
    pub acllog_max_len: u64,
    pub protected_mode: bool,
    pub enable_protected_configs: Allow,
    pub enable_debug_command: Allow,
    pub tls_port: u16,
    pub tls: TlsSettings,
    /// `--import-rdb`: a Redis RDB file to load at start.
    pub import_rdb: Option<PathBuf>,
}

/// A protected action's setting (`enable-protected-configs`, `enable-debug-command`): Redis's
/// yes, no, or local (clients on the loopback interface only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allow {
    No,
    Yes,
    Local,
}

impl Allow {
    fn parse(s: &str) -> Option<Allow> {
        match s.to_ascii_lowercase().as_str() {
            "no" => Some(Allow::No),
            "yes" => Some(Allow::Yes),
            "local" => Some(Allow::Local),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Allow::No => "no",
            Allow::Yes => "yes",
            Allow::Local => "local",
        }
    }

    /// Whether a client (on the loopback interface, or not) may do the action.
    pub(crate) fn allows(self, local: bool) -> bool {
        self == Allow::Yes || (self == Allow::Local && local)
    }
}

/// `tls-auth-clients`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    Yes,
    No,
    Optional,
}

/// The TLS settings that CONFIG SET may change (the certificates are loaded again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub ca_cert_file: Option<String>,
    pub auth_clients: ClientAuth,
    pub protocols: Option<String>,
}

fn parse_client_auth(s: &str) -> Result<ClientAuth, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(ClientAuth::Yes),
        "no" => Ok(ClientAuth::No),
        "optional" => Ok(ClientAuth::Optional),
        _ => Err("argument(s) must be one of the following: no, yes, optional".to_owned()),
    }
}

fn client_auth_name(a: ClientAuth) -> &'static str {
    match a {
        ClientAuth::Yes => "yes",
        ClientAuth::No => "no",
        ClientAuth::Optional => "optional",
    }
}

fn parse_allow(s: &str) -> Result<Allow, String> {
    Allow::parse(s).ok_or_else(|| "argument(s) must be one of the following: no, yes, local".to_owned())
}

/// An empty string is no file, as Redis's `EMPTY_STRING_IS_NULL`.
fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// The client classes of `client-output-buffer-limit`, in Redis's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientClass {
    Normal,
    Replica,
    Pubsub,
}

/// Redis's default `client-output-buffer-limit`.
pub(crate) const DEFAULT_OUTPUT_LIMITS: [(u64, u64, u64); 3] =
    [(0, 0, 0), (256 << 20, 64 << 20, 60), (32 << 20, 8 << 20, 60)];

/// Parses `client-output-buffer-limit` as Redis does (`class hard soft seconds`, repeated;
/// sizes with units), over the `current` limits: the classes not named keep theirs.
pub(crate) fn parse_output_limits(s: &str, current: [(u64, u64, u64); 3]) -> Result<[(u64, u64, u64); 3], String> {
    let words: Vec<&str> = if s.is_empty() { Vec::new() } else { s.split(' ').collect() };
    if !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".to_owned());
    }
    let mut limits = current;
    for group in words.chunks(4) {
        let class = match group[0].to_ascii_lowercase().as_str() {
            "normal" => ClientClass::Normal,
            "slave" | "replica" => ClientClass::Replica,
            "pubsub" => ClientClass::Pubsub,
            _ => return Err("Invalid client class specified in buffer limit configuration.".to_owned()),
        };
        let mut n = [0u64; 3];
        for (v, word) in n.iter_mut().zip(&group[1..]) {
            *v = parse_memory(word).ok_or_else(|| {
                "Error in hard, soft or soft_seconds setting in buffer limit configuration.".to_owned()
            })? as u64;
        }
        limits[class as usize] = (n[0], n[1], n[2]);
    }
    Ok(limits)
}

pub(crate) fn format_output_limits(limits: &[(u64, u64, u64); 3]) -> String {
    ["normal", "slave", "pubsub"]
        .iter()
        .zip(limits)
        .map(|(class, (hard, soft, secs))| format!("{class} {hard} {soft} {secs}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A size, or a percent (`10%`, stored negative as Redis does), for `maxmemory-clients`.
fn parse_memory_or_percent(s: &str) -> Result<i64, String> {
    if let Some(p) = s.strip_suffix('%').filter(|p| !p.is_empty()) {
        return match p.parse::<i64>() {
            Ok(n) if (0..=100).contains(&n) => Ok(-n),
            Ok(n) if n > 100 => Err("percentage argument must be less or equal to 100".to_owned()),
            _ => Err("argument must be a memory or percent value".to_owned()),
        };
    }
    parse_memory(s)
        .and_then(|n| i64::try_from(n).ok())
        .ok_or_else(|| "argument must be a memory or percent value".to_owned())
}

fn format_memory_or_percent(v: i64) -> String {
    if v < 0 { format!("{}%", -v) } else { v.to_string() }
}

fn parse_events_setting(s: &str) -> Result<u32, String> {
    parse_events(s).ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_owned())
}

/// The default snapshot schedule (Redis's).
pub(crate) const DEFAULT_SAVE: &str = "3600 1 300 100 60 10000";

/// Parses a `save` schedule: pairs of seconds and changes; "" is none.
pub(crate) fn parse_save(s: &str) -> Result<Vec<(u64, u64)>, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    if !words.len().is_multiple_of(2) {
        return Err("Invalid save parameters".to_owned());
    }
    words
        .chunks(2)
        .map(|w| match (w[0].parse::<u64>(), w[1].parse::<u64>()) {
            (Ok(secs), Ok(changes)) if secs > 0 => Ok((secs, changes)),
            _ => Err("Invalid save parameters".to_owned()),
        })
        .collect()
}

pub(crate) fn format_save(save: &[(u64, u64)]) -> String {
    save.iter().map(|(s, c)| format!("{s} {c}")).collect::<Vec<_>>().join(" ")
}

fn parse_yes_no(name: &str, s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("{name} must be yes or no, not '{s}'")),
    }
}

/// A file name that stays inside its directory.
fn check_file_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(format!("{what} can't be a path, just a filename"));
    }
    Ok(())
}

impl Config {
    /// Reads the config file named by `--config` (if any) and applies the flags over it.
    pub fn load(cli: Options) -> Result<Config, String> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str::<Options>(&text).map_err(|e| format!("invalid config file {}: {e}", path.display()))?
            }
            None => Options::default(),
        };
        let pick = |flag: Option<String>, file: Option<String>| flag.or(file);
        let config = Config {
            port: cli.port.or(file.port).unwrap_or(6379),
            bind: pick(cli.bind, file.bind)
                .unwrap_or_else(|| "127.0.0.1 -::1".to_owned())
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            maxclients: cli.maxclients.or(file.maxclients).unwrap_or(10_000),
            timeout: cli.timeout.or(file.timeout).unwrap_or(0),
            proto_max_bulk_len: match pick(cli.proto_max_bulk_len, file.proto_max_bulk_len) {
                Some(s) => parse_memory(&s)
                    .filter(|&n| n >= MIN_BULK_LEN)
                    .ok_or_else(|| format!("proto-max-bulk-len: '{s}' is not a size of at least 1mb"))?,
                None => 512 * 1024 * 1024,
            },
            databases: cli.databases.or(file.databases).unwrap_or(16),
            hz: cli.hz.or(file.hz).unwrap_or(10),
            loglevel: pick(cli.loglevel, file.loglevel).unwrap_or_else(|| "notice".to_owned()),
            shards: cli.shards.or(file.shards).unwrap_or(64),
            threads: cli.threads.or(file.threads),
            config_file: cli.config.as_ref().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())),
            save: parse_save(&pick(cli.save, file.save).unwrap_or_else(|| DEFAULT_SAVE.to_owned()))
                .map_err(|e| format!("save: {e}"))?,
            dir: cli.dir.or(file.dir).unwrap_or_else(|| PathBuf::from(".")),
            dbfilename: pick(cli.dbfilename, file.dbfilename).unwrap_or_else(|| "dump.magpie".to_owned()),
            appendonly: parse_yes_no(
                "appendonly",
                &pick(cli.appendonly, file.appendonly).unwrap_or_else(|| "no".into()),
            )?,
            appendfsync: {
                let s = pick(cli.appendfsync, file.appendfsync).unwrap_or_else(|| "everysec".to_owned());
                Fsync::parse(&s).ok_or_else(|| format!("appendfsync must be always, everysec or no, not '{s}'"))?
            },
            appendfilename: pick(cli.appendfilename, file.appendfilename)
                .unwrap_or_else(|| "appendonly.aof".to_owned()),
            appenddirname: pick(cli.appenddirname, file.appenddirname).unwrap_or_else(|| "appendonlydir".to_owned()),
            aof_load_truncated: parse_yes_no(
                "aof-load-truncated",
                &pick(cli.aof_load_truncated, file.aof_load_truncated).unwrap_or_else(|| "yes".into()),
            )?,
            auto_aof_rewrite_percentage: cli
                .auto_aof_rewrite_percentage
                .or(file.auto_aof_rewrite_percentage)
                .unwrap_or(100),
            auto_aof_rewrite_min_size: match pick(cli.auto_aof_rewrite_min_size, file.auto_aof_rewrite_min_size) {
                Some(s) => {
                    parse_memory(&s).ok_or_else(|| format!("auto-aof-rewrite-min-size: '{s}' is not a size"))? as u64
                }
                None => 64 * 1024 * 1024,
            },
            txn_timeout: cli.txn_timeout.or(file.txn_timeout).unwrap_or(60),
            txn_max_keys: cli.txn_max_keys.or(file.txn_max_keys).unwrap_or(100_000),
            txn_max_bytes: match pick(cli.txn_max_bytes, file.txn_max_bytes) {
                Some(s) => parse_memory(&s).ok_or_else(|| format!("txn-max-bytes: '{s}' is not a size"))? as u64,
                None => 256 * 1024 * 1024,
            },
            sanitize_dump_payload: match pick(cli.sanitize_dump_payload, file.sanitize_dump_payload) {
                Some(v) => parse_sanitize(&v).map_err(|e| format!("sanitize-dump-payload: {e}"))?,
                None => 0,
            },
            hll_sparse_max_bytes: cli.hll_sparse_max_bytes.or(file.hll_sparse_max_bytes).unwrap_or(3000),
            stop_writes_on_bgsave_error: parse_yes_no(
                "stop-writes-on-bgsave-error",
                &pick(cli.stop_writes_on_bgsave_error, file.stop_writes_on_bgsave_error)
                    .unwrap_or_else(|| "yes".into()),
            )?,
            notify_keyspace_events: match pick(cli.notify_keyspace_events, file.notify_keyspace_events) {
                Some(v) => parse_events_setting(&v).map_err(|e| format!("notify-keyspace-events: {e}"))?,
                None => 0,
            },
            client_output_buffer_limit: match pick(cli.client_output_buffer_limit, file.client_output_buffer_limit) {
                Some(v) => parse_output_limits(&v, DEFAULT_OUTPUT_LIMITS)
                    .map_err(|e| format!("client-output-buffer-limit: {e}"))?,
                None => DEFAULT_OUTPUT_LIMITS,
            },
            client_query_buffer_limit: match pick(cli.client_query_buffer_limit, file.client_query_buffer_limit) {
                Some(s) => parse_memory(&s)
                    .filter(|&n| n >= MIN_BULK_LEN)
                    .ok_or_else(|| format!("client-query-buffer-limit: '{s}' is not a size of at least 1mb"))?
                    as u64,
                None => 1 << 30,
            },
            tcp_keepalive: cli.tcp_keepalive.or(file.tcp_keepalive).unwrap_or(300),
            tracking_table_max_keys: cli.tracking_table_max_keys.or(file.tracking_table_max_keys).unwrap_or(1_000_000),
            maxmemory_clients: match pick(cli.maxmemory_clients, file.maxmemory_clients) {
                Some(v) => parse_memory_or_percent(&v).map_err(|e| format!("maxmemory-clients: {e}"))?,
                None => 0,
            },
            requirepass: None,
            aclfile: None,
            acllog_max_len: 128,
            protected_mode: true,
            enable_protected_configs: Allow::No,
            enable_debug_command: Allow::No,
            tls_port: 0,
            tls: TlsSettings {
                cert_file: None,
                key_file: None,
                ca_cert_file: None,
                auth_clients: ClientAuth::Yes,
                protocols: None,
            },
            import_rdb: cli.import_rdb,
        };
        let mut config = config;
        config.requirepass = non_empty(pick(cli.requirepass, file.requirepass));
        config.aclfile = cli.aclfile.or(file.aclfile).filter(|p| !p.as_os_str().is_empty());
        config.acllog_max_len = cli.acllog_max_len.or(file.acllog_max_len).unwrap_or(128);
        config.protected_mode = parse_yes_no(
            "protected-mode",
            &pick(cli.protected_mode, file.protected_mode).unwrap_or_else(|| "yes".into()),
        )?;
        config.enable_protected_configs = parse_allow(
            &pick(cli.enable_protected_configs, file.enable_protected_configs).unwrap_or_else(|| "no".into()),
        )
        .map_err(|e| format!("enable-protected-configs: {e}"))?;
        config.enable_debug_command =
            parse_allow(&pick(cli.enable_debug_command, file.enable_debug_command).unwrap_or_else(|| "no".into()))
                .map_err(|e| format!("enable-debug-command: {e}"))?;
        config.tls_port = cli.tls_port.or(file.tls_port).unwrap_or(0);
        config.tls = TlsSettings {
            cert_file: non_empty(pick(cli.tls_cert_file, file.tls_cert_file)),
            key_file: non_empty(pick(cli.tls_key_file, file.tls_key_file)),
            ca_cert_file: non_empty(pick(cli.tls_ca_cert_file, file.tls_ca_cert_file)),
            auth_clients: parse_client_auth(
                &pick(cli.tls_auth_clients, file.tls_auth_clients).unwrap_or_else(|| "yes".into()),
            )
            .map_err(|e| format!("tls-auth-clients: {e}"))?,
            protocols: non_empty(pick(cli.tls_protocols, file.tls_protocols)),
        };
        check_file_name("dbfilename", &config.dbfilename)?;
        check_file_name("appendfilename", &config.appendfilename)?;
        check_file_name("appenddirname", &config.appenddirname)?;
        if !(1..=1_000_000).contains(&config.databases) {
            return Err(format!("databases must be between 1 and 1000000, not {}", config.databases));
        }
        if !(1..=500).contains(&config.hz) {
            return Err(format!("hz must be between 1 and 500, not {}", config.hz));
        }
        if !config.shards.is_power_of_two() || config.shards > 65536 {
            return Err(format!("shards must be a power of two up to 65536, not {}", config.shards));
        }
        if !LOGLEVELS.contains(&config.loglevel.as_str()) {
            return Err(format!("loglevel must be one of {}, not '{}'", LOGLEVELS.join(", "), config.loglevel));
        }
        if config.bind.is_empty() {
            return Err("bind needs at least one address".to_owned());
        }
        Ok(config)
    }
}

const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning"];
const MIN_BULK_LEN: usize = 1024 * 1024;

/// The settings as the running server sees them; CONFIG SET changes the mutable ones.
pub(crate) struct Settings {
    pub config: Config,
    maxclients: AtomicUsize,
    timeout: AtomicU64,
    proto_max_bulk_len: AtomicUsize,
    hz: AtomicU64,
    save: Mutex<Vec<(u64, u64)>>,
    dbfilename: Mutex<String>,
    appendonly: AtomicBool,
    appendfsync: AtomicUsize,
    aof_load_truncated: AtomicBool,
    auto_aof_rewrite_percentage: AtomicU64,
    auto_aof_rewrite_min_size: AtomicU64,
    stop_writes_on_bgsave_error: AtomicBool,
    sanitize_dump_payload: AtomicU32,
    hll_sparse_max_bytes: AtomicU64,
    txn_timeout: AtomicU64,
    txn_max_keys: AtomicU64,
    txn_max_bytes: AtomicU64,
    notify_keyspace_events: AtomicU32,
    client_output_buffer_limit: Mutex<[(u64, u64, u64); 3]>,
    client_query_buffer_limit: AtomicU64,
    tcp_keepalive: AtomicU64,
    tracking_table_max_keys: AtomicU64,
    maxmemory_clients: AtomicI64,
    requirepass: Mutex<Option<String>>,
    acllog_max_len: AtomicU64,
    protected_mode: AtomicBool,
    tls: Mutex<TlsSettings>,
}

impl Settings {
    pub(crate) fn new(config: Config) -> Settings {
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
            config,
        }
    }

    pub(crate) fn save(&self) -> Vec<(u64, u64)> {
        self.save.lock().clone()
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

    /// Puts back TLS settings whose certificates failed to load.
    pub(crate) fn restore_tls(&self, tls: TlsSettings) {
        *self.tls.lock() = tls;
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

#[derive(Clone, Copy)]
enum Kind {
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
enum Apply<'a> {
    Num(fn(&Settings, u64), u64),
    Text(fn(&Settings, &str), &'a str),
}

#[derive(Clone, Copy)]
enum Set {
    Num(fn(&Settings, u64)),
    Text(fn(&Settings, &str)),
}

fn parse_value(kind: Kind, s: &str) -> Result<u64, String> {
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

fn yes_no(s: &str) -> Result<(), String> {
    parse_yes_no("argument", s).map(|_| ()).map_err(|_| "argument must be 'yes' or 'no'".to_owned())
}

/// `sanitize-dump-payload`'s values, by their number.
const SANITIZE: [&str; 3] = ["no", "yes", "clients"];

fn parse_sanitize(v: &str) -> Result<u8, String> {
    SANITIZE
        .iter()
        .position(|n| n.eq_ignore_ascii_case(v))
        .map(|i| i as u8)
        .ok_or_else(|| "argument(s) must be one of the following: no, yes, clients".to_owned())
}

fn yes(s: &str) -> bool {
    s.eq_ignore_ascii_case("yes")
}

struct Param {
    name: &'static str,
    get: fn(&Settings) -> String,
    kind: Kind,
    /// `None` for settings fixed at start.
    set: Option<Set>,
}

const FIXED: Kind = Kind::Int { min: 0, max: 0 };

/// Settings that name files: CONFIG SET may change them only as `enable-protected-configs`
/// allows (Redis 7's `PROTECTED_CONFIG`: `dir` is fixed in Magpie anyway).
const PROTECTED: &[&str] = &["dir", "dbfilename"];

fn opt_text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

fn opt_value(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

static PARAMS: &[Param] = &[
    Param { name: "port", get: |s| s.config.port.to_string(), kind: FIXED, set: None },
    Param { name: "bind", get: |s| s.config.bind.join(" "), kind: FIXED, set: None },
    Param { name: "databases", get: |s| s.config.databases.to_string(), kind: FIXED, set: None },
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
            s.proto_max_bulk_len.store(usize::try_from(v).unwrap_or(usize::MAX), Ordering::Relaxed)
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
            s.appendfsync.store(Fsync::parse(v).unwrap_or(Fsync::Everysec) as usize, Ordering::Relaxed)
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
            s.sanitize_dump_payload.store(u32::from(parse_sanitize(v).unwrap_or(0)), Ordering::Relaxed)
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
            s.notify_keyspace_events.store(parse_events_setting(v).unwrap_or(0), Ordering::Relaxed)
        })),
    },
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
            s.maxmemory_clients.store(parse_memory_or_percent(v).unwrap_or(0), Ordering::Relaxed)
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
];

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::new(Config::load(Options::default()).unwrap())
    }

    #[test]
    fn set_is_all_or_nothing() {
        let s = settings();
        let err = s.set(&[(b"timeout", b"5"), (b"maxclients", b"zero")]).unwrap_err();
        assert!(err.contains("'maxclients'"), "{err}");
        assert_eq!(s.timeout(), 0);
        s.set(&[(b"TIMEOUT", b"5"), (b"proto-max-bulk-len", b"2mb")]).unwrap();
        assert_eq!((s.timeout(), s.proto_max_bulk_len()), (5, 2 << 20));
        assert!(s.set(&[(b"port", b"1")]).unwrap_err().contains("immutable"));
        assert!(s.set(&[(b"nope", b"1")]).unwrap_err().starts_with("Unknown option"));
    }

    #[test]
    fn output_buffer_limits_as_redis() {
        let s = settings();
        let get = |s: &Settings| s.get([&b"client-output-buffer-limit"[..]].into_iter())[0].1.clone();
        assert_eq!(get(&s), "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60");
        s.set(&[(b"client-output-buffer-limit", b"pubsub 1mb 512kb 10")]).unwrap();
        assert_eq!(s.output_buffer_limit(ClientClass::Pubsub), (1 << 20, 512 << 10, 10));
        s.set(&[(b"client-output-buffer-limit", b"replica 1 2 3 NORMAL 4k 5 6")]).unwrap();
        assert_eq!(get(&s), "normal 4000 5 6 slave 1 2 3 pubsub 1048576 524288 10");
        s.set(&[(b"client-output-buffer-limit", b"")]).unwrap();
        for (bad, why) in [
            ("pubsub 1 2", "Wrong number"),
            (" pubsub 1 2 3", "Wrong number"),
            ("master 1 2 3", "Invalid client class"),
            ("pubsub -1 2 3", "Error in hard"),
            ("pubsub 1 2 3x", "Error in hard"),
        ] {
            let err = s.set(&[(b"client-output-buffer-limit", bad.as_bytes())]).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert_eq!(get(&s), "normal 4000 5 6 slave 1 2 3 pubsub 1048576 524288 10");
        let err = s.set(&[(b"notify-keyspace-events", b"KEq")]).unwrap_err();
        assert!(err.ends_with("Invalid event class character. Use 'Ag$lshzxeKEtmdn'."), "{err}");
        s.set(&[(b"notify-keyspace-events", b"Ex$")]).unwrap();
        assert_eq!(s.get([&b"notify-keyspace-events"[..]].into_iter())[0].1, "$xE");
    }

    #[test]
    fn get_matches_globs_once() {
        let s = settings();
        let got = s.get([&b"max*"[..], b"maxclients"].into_iter());
        assert_eq!(got.iter().filter(|(name, _)| *name == "maxclients").count(), 1);
        assert!(got.contains(&("maxclients", "10000".to_owned())));
        assert!(got.iter().all(|(name, _)| name.starts_with("max")));
    }

    #[test]
    fn file_and_flags_merge() {
        let dir = std::env::temp_dir().join(format!("magpie-config-{}", std::process::id()));
        std::fs::write(&dir, "port = 7000\ntimeout = 3\n").unwrap();
        let cli = Options { config: Some(dir.clone()), timeout: Some(9), ..Options::default() };
        let c = Config::load(cli).unwrap();
        assert_eq!((c.port, c.timeout), (7000, 9));
        std::fs::write(&dir, "prot = 7000\n").unwrap();
        let cli = Options { config: Some(dir.clone()), ..Options::default() };
        assert!(Config::load(cli).unwrap_err().contains("unknown field"));
        std::fs::remove_file(dir).ok();
    }
}
