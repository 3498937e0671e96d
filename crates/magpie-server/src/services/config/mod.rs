//! Configuration: defaults, a TOML file, command-line flags (each overriding the one before),
//! and the live settings that CONFIG GET/SET read and change: the options and the `Config`
//! built from them (here), the live `Settings` (`settings`), the table of CONFIG GET/SET
//! parameters (`params`), the operator's settings (`operator`).

mod operator;
mod params;
mod settings;
#[cfg(test)]
mod tests;

pub(crate) use operator::OperatorConfig;
use operator::*;
pub(crate) use operator::{OperatorSettings, format_percentile};
use params::*;
pub(crate) use settings::Settings;
use settings::*;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use clap::Parser;
use serde::Deserialize;

use magpie_store::glob_match;
use parking_lot::Mutex;

use super::journal::Fsync;
use super::memory::{Memory, MemoryConfig};
use crate::core::events::{format_events, parse_events};
use crate::core::units::parse_memory;
use magpie_store::evict::Policy;

/// The memory settings of the file and the flags (flags win).
fn memory_config(cli: &Options, file: &Options) -> Result<MemoryConfig, String> {
    let mut m = MemoryConfig::default();
    if let Some(v) = cli.maxmemory.clone().or_else(|| file.maxmemory.clone()) {
        m.maxmemory = parse_memory(&v).ok_or_else(|| format!("maxmemory: '{v}' is not a size"))? as u64;
    }
    if let Some(v) = cli.maxmemory_policy.clone().or_else(|| file.maxmemory_policy.clone()) {
        m.policy = Policy::parse(&v).ok_or_else(|| format!("maxmemory-policy: {POLICY_ERROR}"))?;
    }
    let int = |name: &str, v: Option<u32>, min: u32, max: u32, default: u32| match v {
        Some(n) if n < min || n > max => Err(format!("{name} must be between {min} and {max}, not {n}")),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    m.samples = int("maxmemory-samples", cli.maxmemory_samples.or(file.maxmemory_samples), 1, i32::MAX as u32, 5)?;
    m.tenacity = int(
        "maxmemory-eviction-tenacity",
        cli.maxmemory_eviction_tenacity.or(file.maxmemory_eviction_tenacity),
        0,
        100,
        10,
    )?;
    m.lfu_log_factor = int("lfu-log-factor", cli.lfu_log_factor.or(file.lfu_log_factor), 0, i32::MAX as u32, 10)?;
    m.lfu_decay_time = int("lfu-decay-time", cli.lfu_decay_time.or(file.lfu_decay_time), 0, i32::MAX as u32, 1)?;
    Ok(m)
}

/// Redis's error for an unknown policy (which does not name Magpie's allkeys-s3fifo and
/// allkeys-wtinylfu).
const POLICY_ERROR: &str = "argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, \
                            volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction";

fn check_policy(v: &str) -> Result<(), String> {
    Policy::parse(v).map(|_| ()).ok_or_else(|| POLICY_ERROR.to_owned())
}

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
    /// Length of the queue of connections the kernel completes before the server accepts
    /// them; the kernel caps it at net.core.somaxconn [default: 511].
    #[arg(long)]
    pub tcp_backlog: Option<u32>,
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
    /// A hash with more fields than this is a hashtable, not a listpack [default: 512].
    #[arg(long, value_name = "N", alias = "hash-max-ziplist-entries")]
    #[serde(alias = "hash-max-ziplist-entries")]
    pub hash_max_listpack_entries: Option<u64>,
    /// ... or with a field or value longer than this many bytes [default: 64].
    #[arg(long, value_name = "BYTES", alias = "hash-max-ziplist-value")]
    #[serde(alias = "hash-max-ziplist-value")]
    pub hash_max_listpack_value: Option<u64>,
    /// A set of integers with more members than this is a hashtable, not an intset
    /// [default: 512].
    #[arg(long, value_name = "N")]
    pub set_max_intset_entries: Option<u64>,
    /// A sorted set with more members than this is a skiplist, not a listpack [default: 128].
    #[arg(long, value_name = "N", alias = "zset-max-ziplist-entries")]
    #[serde(alias = "zset-max-ziplist-entries")]
    pub zset_max_listpack_entries: Option<u64>,
    /// ... or with a member longer than this many bytes [default: 64].
    #[arg(long, value_name = "BYTES", alias = "zset-max-ziplist-value")]
    #[serde(alias = "zset-max-ziplist-value")]
    pub zset_max_listpack_value: Option<u64>,
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
    /// Turn transparent huge pages off for this process, as Redis's `disable-thp` does: yes
    /// or no [default: yes]. The allocator asks for huge pages, which made the heap 8% bigger
    /// (and the idle server's twice as big) for 2-11% of speed on big keyspaces.
    #[arg(long, value_name = "yes|no")]
    pub disable_thp: Option<String>,
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
    /// SLOWLOG: log commands slower than this many microseconds; -1 logs none, 0 every
    /// command [default: 10000].
    #[arg(long, value_name = "USEC", allow_hyphen_values = true)]
    pub slowlog_log_slower_than: Option<i64>,
    /// SLOWLOG: entries kept [default: 128].
    #[arg(long, value_name = "N")]
    pub slowlog_max_len: Option<u64>,
    /// LATENCY: record events that take at least this many milliseconds; 0 records none
    /// [default: 0].
    #[arg(long, value_name = "MS")]
    pub latency_monitor_threshold: Option<u64>,
    /// Per-command latency percentiles in INFO latencystats: yes or no [default: yes].
    #[arg(long, value_name = "yes|no")]
    pub latency_tracking: Option<String>,
    /// The percentiles INFO latencystats shows, space separated [default: 50 99 99.9].
    #[arg(long, value_name = "PERCENTILES")]
    pub latency_tracking_info_percentiles: Option<String>,
    /// TCP port of the HTTP API (on the `bind` addresses); 0 turns it off [default: 7379].
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// TCP port of the HTTP API over TLS (with the tls-* certificates); 0 for none
    /// [default: 0].
    #[arg(long, value_name = "PORT")]
    pub http_tls_port: Option<u16>,
    /// Host names the HTTP API answers to besides the bind addresses, localhost and the
    /// loopback addresses, space separated (a request for any other Host gets 421: DNS
    /// rebinding) [default: none].
    #[arg(long, value_name = "HOSTS")]
    pub http_allowed_hosts: Option<String>,
    /// Web origins (scheme://host[:port]) allowed to call the HTTP API from a browser, space
    /// separated; a request with any other Origin gets 403 [default: none].
    #[arg(long, value_name = "ORIGINS")]
    pub http_cors_origins: Option<String>,
    /// A stream node (a listpack of entries) takes no more entries once it holds this many
    /// bytes; 0 means 1 GB [default: 4096].
    #[arg(long, value_name = "BYTES")]
    pub stream_node_max_bytes: Option<String>,
    /// ...or this many entries; 0 means no limit [default: 100].
    #[arg(long, value_name = "ENTRIES")]
    pub stream_node_max_entries: Option<u64>,
    /// A script running longer than this many milliseconds makes other clients' commands
    /// answer -BUSY, and may then be stopped with SCRIPT KILL / FUNCTION KILL; 0 at once
    /// [default: 5000].
    #[arg(long, value_name = "MS")]
    pub busy_reply_threshold: Option<u64>,
    /// The old name of busy-reply-threshold.
    #[arg(long, value_name = "MS")]
    pub lua_time_limit: Option<u64>,
    /// Memory limit for the data, e.g. 100mb; 0 for none [default: 0].
    #[arg(long, value_name = "BYTES")]
    pub maxmemory: Option<String>,
    /// What to do at the limit: noeviction, allkeys-lru, allkeys-lfu, allkeys-random,
    /// volatile-lru, volatile-lfu, volatile-random, volatile-ttl, or Magpie's allkeys-s3fifo or
    /// allkeys-wtinylfu [default: noeviction].
    #[arg(long, value_name = "POLICY")]
    pub maxmemory_policy: Option<String>,
    /// Keys sampled per eviction [default: 5].
    #[arg(long, value_name = "N")]
    pub maxmemory_samples: Option<u32>,
    /// How long one command may spend evicting, 0-100 (100: no limit) [default: 10].
    #[arg(long, value_name = "N")]
    pub maxmemory_eviction_tenacity: Option<u32>,
    /// LFU counter's logarithm factor [default: 10].
    #[arg(long, value_name = "N")]
    pub lfu_log_factor: Option<u32>,
    /// Minutes per halving step of the LFU counter [default: 1].
    #[arg(long, value_name = "MINUTES")]
    pub lfu_decay_time: Option<u32>,
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
    pub tcp_backlog: u32,
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
    /// The encoding thresholds given at start (unset: Redis's defaults).
    pub encoding: EncodingLimits,
    pub txn_timeout: u64,
    pub txn_max_keys: u64,
    pub txn_max_bytes: u64,
    /// `notify-keyspace-events`, as Redis's flags (see `crate::core::events`).
    pub notify_keyspace_events: u32,
    /// `client-output-buffer-limit`: (hard, soft, soft seconds) by [`ClientClass`].
    pub client_output_buffer_limit: [(u64, u64, u64); 3],
    /// `busy-reply-threshold` (`lua-time-limit`), in milliseconds.
    pub busy_reply_threshold: u64,
    pub stream_node_max_bytes: u64,
    pub stream_node_max_entries: u64,
    pub client_query_buffer_limit: u64,
    pub tcp_keepalive: u64,
    pub tracking_table_max_keys: u64,
    /// `maxmemory-clients`: bytes, or a percent of maxmemory stored negative (as Redis).
    pub maxmemory_clients: i64,
    pub requirepass: Option<String>,
    pub aclfile: Option<PathBuf>,
    pub acllog_max_len: u64,
    pub protected_mode: bool,
    pub disable_thp: bool,
    pub enable_protected_configs: Allow,
    pub enable_debug_command: Allow,
    pub tls_port: u16,
    pub tls: TlsSettings,
    /// The HTTP API's port (0: off), and its TLS port (0: none).
    pub http_port: u16,
    pub http_tls_port: u16,
    /// `http-allowed-hosts` and `http-cors-origins` at start (CONFIG SET changes them).
    pub http_allowed_hosts: String,
    pub http_cors_origins: String,
    /// `--import-rdb`: a Redis RDB file to load at start.
    pub import_rdb: Option<PathBuf>,
    /// SLOWLOG and LATENCY settings.
    pub operator: OperatorConfig,
    /// `maxmemory` and its companions.
    pub memory: MemoryConfig,
}

/// The encoding thresholds of [`Options`], as given.
#[derive(Debug, Clone, Default)]
pub struct EncodingLimits {
    pub hash_max_listpack_entries: Option<u64>,
    pub hash_max_listpack_value: Option<u64>,
    pub set_max_intset_entries: Option<u64>,
    pub zset_max_listpack_entries: Option<u64>,
    pub zset_max_listpack_value: Option<u64>,
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

/// A list setting, normalised: words separated by single spaces.
fn words(s: Option<String>) -> String {
    s.unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ")
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
        let operator = OperatorConfig::pick(&cli, &file)?;
        let memory = memory_config(&cli, &file)?;
        let config = Config {
            port: cli.port.or(file.port).unwrap_or(6379),
            bind: pick(cli.bind, file.bind)
                .unwrap_or_else(|| "127.0.0.1 -::1".to_owned())
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            maxclients: cli.maxclients.or(file.maxclients).unwrap_or(10_000),
            tcp_backlog: cli.tcp_backlog.or(file.tcp_backlog).unwrap_or(511),
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
            encoding: EncodingLimits {
                hash_max_listpack_entries: cli.hash_max_listpack_entries.or(file.hash_max_listpack_entries),
                hash_max_listpack_value: cli.hash_max_listpack_value.or(file.hash_max_listpack_value),
                set_max_intset_entries: cli.set_max_intset_entries.or(file.set_max_intset_entries),
                zset_max_listpack_entries: cli.zset_max_listpack_entries.or(file.zset_max_listpack_entries),
                zset_max_listpack_value: cli.zset_max_listpack_value.or(file.zset_max_listpack_value),
            },
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
            busy_reply_threshold: cli
                .busy_reply_threshold
                .or(cli.lua_time_limit)
                .or(file.busy_reply_threshold)
                .or(file.lua_time_limit)
                .unwrap_or(5000),
            stream_node_max_bytes: match pick(cli.stream_node_max_bytes, file.stream_node_max_bytes) {
                Some(s) => {
                    parse_memory(&s).ok_or_else(|| format!("stream-node-max-bytes: '{s}' is not a size"))? as u64
                }
                None => 4096,
            },
            stream_node_max_entries: cli.stream_node_max_entries.or(file.stream_node_max_entries).unwrap_or(100),
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
            disable_thp: true,
            enable_protected_configs: Allow::No,
            enable_debug_command: Allow::No,
            tls_port: 0,
            http_port: cli.http_port.or(file.http_port).unwrap_or(7379),
            http_tls_port: cli.http_tls_port.or(file.http_tls_port).unwrap_or(0),
            http_allowed_hosts: words(pick(cli.http_allowed_hosts, file.http_allowed_hosts)),
            http_cors_origins: words(pick(cli.http_cors_origins, file.http_cors_origins)),
            tls: TlsSettings {
                cert_file: None,
                key_file: None,
                ca_cert_file: None,
                auth_clients: ClientAuth::Yes,
                protocols: None,
            },
            import_rdb: cli.import_rdb,
            operator,
            memory: MemoryConfig::default(),
        };
        let mut config = config;
        config.requirepass = non_empty(pick(cli.requirepass, file.requirepass));
        config.aclfile = cli.aclfile.or(file.aclfile).filter(|p| !p.as_os_str().is_empty());
        config.acllog_max_len = cli.acllog_max_len.or(file.acllog_max_len).unwrap_or(128);
        config.disable_thp =
            parse_yes_no("disable-thp", &pick(cli.disable_thp, file.disable_thp).unwrap_or_else(|| "yes".into()))?;
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
        config.memory = memory;
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
