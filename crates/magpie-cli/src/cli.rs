//! The command line, defined once: parsing, `--help` and shell completions all come from here.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  magpie get user:1                    print one value (exit code 1 if the key is missing)
  magpie get user:1 user:2,user:3      print many values with one MGET
  magpie set greeting hello --ex 60    set a key that expires in a minute
  magpie set a=1,b=2 c=3               set several keys at once, atomically (MSET)
  magpie set --nx lock=me              set only if no such key exists
  magpie set logo --value-file logo.png    store a file's bytes; `magpie get logo --raw > copy.png`
  magpie del a,b,c                     delete keys, report how many existed
  magpie incr visits                   add 1 (or `magpie incr price 0.5`)
  magpie keys 'user:*'                 list matching keys (SCAN, never KEYS)
  magpie stats --watch                 live summary of the server's metrics
  magpie subscribe news alerts         print messages published to channels as they arrive
  magpie psubscribe 'user:*'           ... to channels matching a pattern
  magpie publish news 'hello'          publish a message, print how many received it
  magpie monitor                       print every command the server runs (MONITOR)
  magpie cmd CONFIG GET maxclients     any other command, output typed like redis-cli
  magpie                               interactive shell; `echo PING | magpie` runs piped commands

Keys, values, commas and '=':
  In `get`, `del` and `set k=v,...`, a comma separates items and, in `set`, the first '=' of an
  item separates key from value. Write a literal comma as \\, a literal '=' as \\= and a backslash
  before them as \\\\ (any other backslash is kept as it is). In `magpie set KEY VALUE` the VALUE is
  taken exactly as given: commas and '=' need no escaping there. `--literal` turns all splitting
  off; `--value-file` reads a value's exact bytes from a file or stdin (-).

Exit codes: 0 success; 1 not found (a single-key get, ttl or expire of a missing key) or not
written (set --nx found an existing key); 2 error (connection, server error reply, usage).";

/// Command-line client for Magpie (and any server that speaks the Redis protocol).
///
/// With a subcommand, runs it and exits; without one, starts an interactive shell with line
/// editing, history, completion and argument hints (or, when stdin is not a terminal, runs the
/// commands piped to it, one per line, like redis-cli).
#[derive(Debug, Parser)]
#[command(name = "magpie", version, disable_help_flag = true, after_help = EXAMPLES, max_term_width = 100)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub conn: ConnArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Print help (-h is the host, as in redis-cli)
    #[arg(long, action = ArgAction::Help, global = true)]
    pub help: Option<bool>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Connection")]
pub(crate) struct ConnArgs {
    /// Server host [default: 127.0.0.1]
    #[arg(short = 'h', long, global = true, value_name = "HOST")]
    pub host: Option<String>,

    /// Server port [default: 6379]
    #[arg(short = 'p', long, global = true, value_name = "PORT")]
    pub port: Option<u16>,

    /// Password sent with AUTH after connecting
    #[arg(short = 'a', long = "pass", global = true, value_name = "PASSWORD")]
    pub pass: Option<String>,

    /// User name sent with AUTH (with --pass)
    #[arg(long, global = true, value_name = "USER")]
    pub user: Option<String>,

    /// Connect with TLS (as a rediss:// URL does)
    #[arg(long, global = true)]
    pub tls: bool,

    /// CA certificate (PEM) to check the server's certificate against (with --tls)
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Client certificate (PEM) to present (with --tls and --key)
    #[arg(long = "cert", id = "tls_cert", global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// The client certificate's private key (PEM)
    #[arg(long = "key", id = "tls_key", global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// Server name the certificate must carry [default: the host]
    #[arg(long, global = true, value_name = "HOST")]
    pub sni: Option<String>,

    /// Accept any server certificate: no verification (with --tls)
    #[arg(long, global = true)]
    pub insecure: bool,

    /// Server URL: redis[s]://[[user]:password@]host[:port][/db]; -h, -p, -a and -n override its parts
    #[arg(short = 'u', long, global = true, env = "MAGPIE_URL", hide_env_values = true, value_name = "URL")]
    pub url: Option<String>,

    /// Database number to SELECT [default: 0]
    #[arg(short = 'n', long, global = true, value_name = "DB")]
    pub db: Option<u32>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Output")]
pub(crate) struct OutputArgs {
    /// Print JSON for scripts (strings that are not UTF-8 become {"base64": "..."})
    #[arg(long, global = true)]
    pub json: bool,

    /// Print exact bytes: values without quotes or escapes, replies without type labels
    #[arg(long, global = true, conflicts_with = "json")]
    pub raw: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the values of one or more keys (GET, or one MGET for several)
    #[command(after_help = "\
Examples:
  magpie get greeting             prints the value; exit code 1 if the key does not exist
  magpie get k1 k2 k3             one MGET: each key with its value, or (missing)
  magpie get k1,k2,k3             the same
  magpie get 'a\\,b'               the key \"a,b\" (or: magpie get --literal a,b)
  magpie get logo --raw > logo.png    the exact bytes, nothing added

With one key, prints the value as text (escaped and quoted if it is not printable text; use
--raw for the exact bytes). With several, prints one line per key, missing keys as (missing),
and exits 0 even when some are missing; with --raw, each value followed by a newline, and an
empty line for a missing key. --json prints {\"key\": ..., \"value\": ...} for one key, an
array of them for several (value null when missing).")]
    Get {
        /// Keys, as separate arguments and/or separated by commas
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<OsString>,

        /// Take every argument as one whole key: no splitting on commas, no escapes
        #[arg(long)]
        literal: bool,
    },

    /// Set one key, or several at once atomically (SET, MSET, MSETNX)
    #[command(after_help = "\
Forms:
  magpie set KEY VALUE             one key; VALUE is taken exactly as given (commas, '=' and all)
  magpie set KEY --value-file F    one key, the exact bytes of file F (- reads stdin)
  magpie set k1=v1,k2=v2 k3=v3     several keys in one atomic MSET: all are set or none

In the k=v form a comma separates pairs and the first '=' separates key from value (later
'=' belong to the value). Write a literal comma as \\, and a literal '=' as \\= (\\\\ is a
backslash before them; other backslashes are kept). With --literal the arguments are
KEY VALUE [KEY VALUE ...], taken exactly.

--nx sets only keys that do not exist: with several keys it uses MSETNX, which writes nothing
if any of them exists; magpie then names the existing keys and exits with code 1.

Examples:
  magpie set greeting 'hello, world'
  magpie set session:1 abc --ex 3600
  magpie set a=1,b=2,c=3 --nx
  magpie set note 'x=1,y=2'             value \"x=1,y=2\" (the KEY VALUE form never splits)
  magpie set 'list=a\\,b\\,c'              key \"list\", value \"a,b,c\"
  tar c dir | magpie set backup --value-file -")]
    Set {
        /// KEY VALUE, or KEY=VALUE pairs separated by commas and/or spaces
        #[arg(required = true, value_name = "KEY VALUE | KEY=VALUE")]
        items: Vec<OsString>,

        /// Expire after this many seconds (one key only: MSET has no expiry)
        #[arg(long, value_name = "SECONDS")]
        ex: Option<u64>,

        /// Only set keys that do not exist yet (several keys: all or none, MSETNX)
        #[arg(long)]
        nx: bool,

        /// Read the value of the one KEY from this file, byte for byte (- for stdin)
        #[arg(long, value_name = "PATH")]
        value_file: Option<PathBuf>,

        /// Arguments are KEY VALUE [KEY VALUE ...] pairs, taken exactly: no splitting, no escapes
        #[arg(long)]
        literal: bool,
    },

    /// Delete keys in one call and report how many existed (DEL)
    #[command(after_help = "\
Examples:
  magpie del session:1
  magpie del a b c           prints: deleted 2 of 3 keys (the others did not exist)
  magpie del a,b,c           the same")]
    Del {
        /// Keys, as separate arguments and/or separated by commas
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<OsString>,

        /// Take every argument as one whole key: no splitting on commas, no escapes
        #[arg(long)]
        literal: bool,
    },

    /// Add to a number stored at a key and print the result (INCRBY, INCRBYFLOAT)
    #[command(after_help = "\
Examples:
  magpie incr visits          adds 1
  magpie incr stock -3        subtracts 3
  magpie incr price 0.25      a number with a fraction uses INCRBYFLOAT")]
    Incr {
        /// The key (created with 0 if missing)
        #[arg(value_name = "KEY")]
        key: OsString,

        /// How much to add: an integer (INCRBY) or a decimal number (INCRBYFLOAT) [default: 1]
        #[arg(value_name = "BY", allow_negative_numbers = true)]
        by: Option<String>,
    },

    /// Print how long a key has left to live (TTL)
    #[command(after_help = "\
Prints the seconds left, \"no expiry\" for a key that never expires; exit code 1 if the key
does not exist.

Example:
  magpie ttl session:1        3541 s (59m 1s)")]
    Ttl {
        #[arg(value_name = "KEY")]
        key: OsString,
    },

    /// Make a key expire after some seconds (EXPIRE)
    #[command(after_help = "\
Exit code 1 if the key does not exist.

Example:
  magpie expire session:1 3600")]
    Expire {
        #[arg(value_name = "KEY")]
        key: OsString,

        #[arg(value_name = "SECONDS")]
        seconds: u64,
    },

    /// List the keys that match a glob pattern (SCAN ... MATCH ... COUNT, never KEYS)
    #[command(after_help = "\
Walks the keyspace with SCAN, so even a large database is never blocked. Keys are printed one
per line, sorted; unprintable ones are quoted and escaped (exact with --raw).

Patterns: * any bytes, ? one byte, [abc] [a-z] [^a] a set, \\x the byte x.

Examples:
  magpie keys                 all keys
  magpie keys 'user:*'
  magpie keys 'user:?' --json")]
    Keys {
        /// Glob pattern
        #[arg(value_name = "PATTERN", default_value = "*")]
        pattern: OsString,

        /// How many keys to ask SCAN for per call (a hint to the server)
        #[arg(long, value_name = "N", default_value_t = 1000)]
        count: u64,
    },

    /// Run any command and print its reply typed like redis-cli
    #[command(after_help = "\
Options go before the command's words: everything after the command name is passed on.

Examples:
  magpie cmd PING
  magpie cmd CONFIG GET maxclients
  magpie --json cmd COMMAND DOCS get
  magpie cmd SET k v EX 10 NX

An error reply is printed as (error) ... on stderr, with exit code 2.")]
    Cmd {
        /// The command and its arguments
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
        args: Vec<OsString>,
    },

    /// Summarize the server's metrics (from INFO): keys, sizes, operations, hit rate, memory
    #[command(after_help = "\
Reads INFO twice, a second apart, to measure operations per second. Fields a server does not
report (redis-server has no value_bytes, for instance) show as n/a (null in JSON).

--json prints an object with the summary and every INFO section; with --watch, one object
per line.

Examples:
  magpie stats
  magpie stats --watch        refresh every second until Ctrl-C
  magpie stats --json | jq .summary.keys")]
    Stats {
        /// Refresh every second until Ctrl-C
        #[arg(long)]
        watch: bool,

        /// With --watch, stop after this many refreshes
        #[arg(long, value_name = "N", requires = "watch")]
        count: Option<u64>,
    },

    /// Print messages published to channels as they arrive (SUBSCRIBE), until Ctrl-C
    #[command(after_help = "\
Prints one line per message: CHANNEL: MESSAGE (a message that is not printable text, or spans
lines, is quoted and escaped). --json prints {\"channel\": ..., \"message\": ...} per line;
--raw prints each message's exact bytes followed by a newline. Ctrl-C ends it with exit code
0, and so does a closed pipe (`magpie subscribe news | head -3`).

Examples:
  magpie subscribe news
  magpie subscribe news alerts --count 1     wait for one message, print it, exit
  magpie subscribe __keyevent@0__:expired    keys expiring (with notify-keyspace-events Ex)")]
    Subscribe {
        /// Channels to listen on
        #[arg(required = true, value_name = "CHANNEL")]
        channels: Vec<OsString>,

        /// Exit after this many messages
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },

    /// Print messages published to channels matching glob patterns (PSUBSCRIBE), until Ctrl-C
    #[command(after_help = "\
Prints one line per message: CHANNEL (PATTERN): MESSAGE, with the pattern that matched.
--json adds \"pattern\" to each object; --raw prints the messages' bytes only.

Patterns: * any bytes, ? one byte, [abc] [a-z] [^a] a set, \\x the byte x.

Examples:
  magpie psubscribe 'news.*'
  magpie psubscribe '__keyspace@0__:user:*' --json     changes to user:* keys")]
    Psubscribe {
        /// Glob patterns of channel names
        #[arg(required = true, value_name = "PATTERN")]
        patterns: Vec<OsString>,

        /// Exit after this many messages
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },

    /// Print every command the server runs, as it runs it (MONITOR), until Ctrl-C
    #[command(after_help = "\
Prints one line per command, as Redis's MONITOR shows it:
  TIME [DB CLIENT] \"command\" \"arg\" ...
(CLIENT is the address, or lua for a script's commands; arguments quoted and escaped).
--json prints {\"time\": ..., \"db\": ..., \"client\": ..., \"args\": [...]} per line; --raw the
line as the server sent it. Administrative commands (CONFIG, DEBUG, ...) are not shown, and
passwords are shown as (redacted). Watching costs the server a formatted line per command.

Examples:
  magpie monitor
  magpie monitor --count 10          the next ten commands
  magpie --json monitor | jq .args")]
    Monitor {
        /// Exit after this many commands
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },

    /// Publish a message to a channel and print how many subscribers received it (PUBLISH)
    #[command(after_help = "\
Counts every subscription that received it: a client subscribed to the channel and to a
matching pattern counts twice. No receiver is not an error (exit code 0).

Examples:
  magpie publish news 'hello, world'
  magpie --raw publish news hello      prints just the number")]
    Publish {
        /// The channel
        #[arg(value_name = "CHANNEL")]
        channel: OsString,

        /// The message, taken exactly as given
        #[arg(value_name = "MESSAGE", allow_hyphen_values = true)]
        message: OsString,
    },

    /// Write every key (type, value, TTL) as newline-delimited JSON, or as a Redis RDB file
    #[command(after_help = "\
With --format ndjson (the default): one JSON object per line, per key of the database (-n):
{\"key\", \"type\", \"value\", \"ttl_ms\"} (ttl_ms only for keys that expire; strings that are not
UTF-8 as {\"$base64\": ...}; types with no JSON form as a DUMP payload in \"dump\"). The format
is described in docs/formats.md; `magpie import` reads it back. A progress bar is drawn on
stderr when it is a terminal.

With --format rdb: every key of every database, as the RDB file (version 10) Redis's SAVE
writes (dump.rdb unless a file is named): copy it to Redis's `dir` as its `dbfilename` and
start redis-server, or load it into Magpie with `magpie-server --import-rdb dump.rdb`.

Keys are read with SCAN and DUMP while the server runs: the export is not a snapshot, keys
changed while it runs may be seen before or after the change (each key is exported whole).

Examples:
  magpie export > backup.ndjson
  magpie -n 2 export db2.ndjson
  magpie export --format rdb --output dump.rdb
  magpie -p 6380 export --format rdb - > dump.rdb")]
    Export {
        /// Where to write; - for stdout [default: stdout for ndjson, dump.rdb for rdb]
        #[arg(value_name = "FILE")]
        file: Option<std::path::PathBuf>,

        /// The file format: ndjson, or rdb (Redis's RDB, version 10)
        #[arg(long, default_value = "ndjson", value_name = "FORMAT")]
        format: String,

        /// The file to write (the same as FILE)
        #[arg(long, short = 'o', value_name = "FILE", conflicts_with = "file")]
        output: Option<std::path::PathBuf>,
    },

    /// Read keys written by `magpie export` back (replacing keys of the same names)
    #[command(after_help = "\
Each batch of 500 lines is written in one MULTI/EXEC: applied whole, and no client sees part
of it. A bad line stops the import with its line number; the batches before it are written.
TTLs count from the import.

Examples:
  magpie import backup.ndjson
  magpie export | magpie -p 6380 import      copy a database to another server")]
    Import {
        /// Where to read; - or nothing for stdin
        #[arg(value_name = "FILE")]
        file: Option<std::path::PathBuf>,
    },

    /// Print a completion script for a shell
    #[command(after_help = "\
Examples:
  magpie completions bash > ~/.local/share/bash-completion/completions/magpie
  magpie completions zsh > ~/.zfunc/_magpie
  magpie completions fish > ~/.config/fish/completions/magpie.fish")]
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dash_h_is_the_host_and_options_go_anywhere() {
        let cli = Cli::try_parse_from(["magpie", "get", "k", "-h", "example", "-p", "7000", "--json"]).unwrap();
        assert_eq!(cli.conn.host.as_deref(), Some("example"));
        assert_eq!(cli.conn.port, Some(7000));
        assert!(cli.output.json);
        let help = Cli::try_parse_from(["magpie", "get", "--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
    }

    #[test]
    fn cmd_passes_everything_after_the_command_name_on() {
        let cli = Cli::try_parse_from(["magpie", "--raw", "cmd", "SET", "k", "-1", "--json"]).unwrap();
        let Some(Command::Cmd { args }) = cli.command else { panic!() };
        assert_eq!(args, ["SET", "k", "-1", "--json"]);
        assert!(cli.output.raw);
    }

    #[test]
    fn tls_options_do_not_clash_with_subcommand_arguments() {
        let cli = Cli::try_parse_from(["magpie", "--tls", "--key", "k.pem", "--cert", "c.pem", "get", "key"]).unwrap();
        assert!(cli.conn.tls);
        assert_eq!(cli.conn.key.as_deref(), Some(std::path::Path::new("k.pem")));
        assert_eq!(cli.conn.cert.as_deref(), Some(std::path::Path::new("c.pem")));
    }

    #[test]
    fn negative_increments() {
        let cli = Cli::try_parse_from(["magpie", "incr", "k", "-3"]).unwrap();
        let Some(Command::Incr { by, .. }) = cli.command else { panic!() };
        assert_eq!(by.as_deref(), Some("-3"));
    }

    #[test]
    fn subscribe_takes_channels_and_a_count() {
        let cli = Cli::try_parse_from(["magpie", "subscribe", "a", "b", "--count", "2"]).unwrap();
        let Some(Command::Subscribe { channels, count }) = cli.command else { panic!() };
        assert_eq!((channels, count), (vec!["a".into(), "b".into()], Some(2)));
        assert!(Cli::try_parse_from(["magpie", "psubscribe"]).is_err());
        let cli = Cli::try_parse_from(["magpie", "publish", "ch", "-1"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Publish { message, .. }) if message == "-1"));
    }

    #[test]
    fn json_and_raw_conflict() {
        assert!(Cli::try_parse_from(["magpie", "get", "k", "--json", "--raw"]).is_err());
    }
}
