//! Configuration: defaults, a TOML file, command-line flags (each overriding the one before),
//! and the live settings that CONFIG GET/SET read and change.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use clap::Parser;
use serde::Deserialize;

use magpie_store::glob_match;

/// Settings from the command line or the config file. Every key of the file is also a flag
/// with the same (Redis) name.
#[derive(Parser, Deserialize, Debug, Default, Clone)]
#[command(name = "magpie-server", version, about = "Magpie: a Redis-compatible in-memory key-value server")]
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
        };
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

/// Parses a size as Redis does: a number with an optional unit (k = 1000, kb = 1024, m, mb,
/// g, gb), any case.
pub fn parse_memory(s: &str) -> Option<usize> {
    let s = s.to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mul: usize = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    num.parse::<usize>().ok()?.checked_mul(mul)
}

/// The settings as the running server sees them; CONFIG SET changes the mutable ones.
pub struct Settings {
    pub config: Config,
    maxclients: AtomicUsize,
    timeout: AtomicU64,
    proto_max_bulk_len: AtomicUsize,
    hz: AtomicU64,
}

impl Settings {
    pub fn new(config: Config) -> Settings {
        Settings {
            maxclients: AtomicUsize::new(config.maxclients),
            timeout: AtomicU64::new(config.timeout),
            proto_max_bulk_len: AtomicUsize::new(config.proto_max_bulk_len),
            hz: AtomicU64::new(config.hz),
            config,
        }
    }

    pub fn maxclients(&self) -> usize {
        self.maxclients.load(Ordering::Relaxed)
    }

    pub fn timeout(&self) -> u64 {
        self.timeout.load(Ordering::Relaxed)
    }

    pub fn proto_max_bulk_len(&self) -> usize {
        self.proto_max_bulk_len.load(Ordering::Relaxed)
    }

    pub fn hz(&self) -> u64 {
        self.hz.load(Ordering::Relaxed)
    }

    /// `(name, value)` of every parameter matching one of `patterns` (glob, any case), each
    /// once, in table order.
    pub fn get<'p>(&self, patterns: impl Iterator<Item = &'p [u8]> + Clone) -> Vec<(&'static str, String)> {
        PARAMS
            .iter()
            .filter(|p| patterns.clone().any(|pat| glob_match(pat, p.name.as_bytes(), true)))
            .map(|p| (p.name, (p.get)(self)))
            .collect()
    }

    /// Applies `name value` pairs all or nothing: every pair is checked before any is applied.
    pub fn set(&self, pairs: &[(&[u8], &[u8])]) -> Result<(), String> {
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
            let value = std::str::from_utf8(value).map_err(|_| failed("argument must be valid text"))?;
            let parsed = parse_value(param.kind, value).map_err(|e| failed(&e))?;
            checked.push((set, parsed));
        }
        for (set, value) in checked {
            set(self, value);
        }
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Int { min: u64, max: u64 },
    Memory { min: u64 },
}

fn parse_value(kind: Kind, s: &str) -> Result<u64, String> {
    match kind {
        Kind::Int { min, max } => {
            let n: u64 = s.parse().map_err(|_| "argument couldn't be parsed into an integer".to_owned())?;
            if n < min || n > max {
                return Err(format!("argument must be between {min} and {max} inclusive"));
            }
            Ok(n)
        }
        Kind::Memory { min } => {
            let n = parse_memory(s).ok_or_else(|| "argument must be a memory value".to_owned())? as u64;
            if n < min {
                return Err(format!("argument must be between {min} and {} inclusive", i64::MAX));
            }
            Ok(n)
        }
    }
}

struct Param {
    name: &'static str,
    get: fn(&Settings) -> String,
    kind: Kind,
    /// `None` for settings fixed at start.
    set: Option<fn(&Settings, u64)>,
}

const FIXED: Kind = Kind::Int { min: 0, max: 0 };

static PARAMS: &[Param] = &[
    Param { name: "port", get: |s| s.config.port.to_string(), kind: FIXED, set: None },
    Param { name: "bind", get: |s| s.config.bind.join(" "), kind: FIXED, set: None },
    Param { name: "databases", get: |s| s.config.databases.to_string(), kind: FIXED, set: None },
    Param {
        name: "maxclients",
        get: |s| s.maxclients().to_string(),
        kind: Kind::Int { min: 1, max: u32::MAX as u64 },
        set: Some(|s, v| s.maxclients.store(usize::try_from(v).unwrap_or(usize::MAX), Ordering::Relaxed)),
    },
    Param {
        name: "timeout",
        get: |s| s.timeout().to_string(),
        kind: Kind::Int { min: 0, max: i32::MAX as u64 },
        set: Some(|s, v| s.timeout.store(v, Ordering::Relaxed)),
    },
    Param {
        name: "proto-max-bulk-len",
        get: |s| s.proto_max_bulk_len().to_string(),
        kind: Kind::Memory { min: MIN_BULK_LEN as u64 },
        set: Some(|s, v| s.proto_max_bulk_len.store(usize::try_from(v).unwrap_or(usize::MAX), Ordering::Relaxed)),
    },
    Param {
        name: "hz",
        get: |s| s.hz().to_string(),
        kind: Kind::Int { min: 1, max: 500 },
        set: Some(|s, v| s.hz.store(v, Ordering::Relaxed)),
    },
    Param { name: "loglevel", get: |s| s.config.loglevel.clone(), kind: FIXED, set: None },
    // Persistence does not exist yet: say so truthfully to tools that ask (redis-benchmark).
    Param { name: "save", get: |_| String::new(), kind: FIXED, set: None },
    Param { name: "appendonly", get: |_| "no".to_owned(), kind: FIXED, set: None },
];

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::new(Config::load(Options::default()).unwrap())
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("512mb"), Some(512 * 1024 * 1024));
        assert_eq!(parse_memory("1GB"), Some(1 << 30));
        assert_eq!(parse_memory("10k"), Some(10_000));
        assert_eq!(parse_memory("123"), Some(123));
        assert_eq!(parse_memory("12x"), None);
        assert_eq!(parse_memory(""), None);
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
    fn get_matches_globs_once() {
        let s = settings();
        let got = s.get([&b"max*"[..], b"maxclients"].into_iter());
        assert_eq!(got, vec![("maxclients", "10000".to_owned())]);
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
