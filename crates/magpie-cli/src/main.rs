//! `magpie`: the command-line client and interactive shell for Magpie.
//!
//! Everything that can fail flows back here as a [`Failure`], printed as one line on stderr;
//! the exit code follows the contract in `--help` (0 success, 1 not found, 2 error).

mod cli;
mod commands;
mod docs;
mod export;
mod format;
mod items;
mod pubsub;
mod shell;
mod stats;
mod transfer;

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use magpie_client::{Client, Config};

use crate::cli::{Cli, ConnArgs};

/// How a run ended when nothing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok,
    /// The key (of a single-key get, ttl, expire) does not exist, or `set --nx` wrote nothing.
    NotFound,
}

/// Why a run failed: each is one line on stderr and exit code 2.
#[derive(Debug)]
pub enum Failure {
    /// The connection: could not connect, lost, or the server spoke nonsense.
    Client(magpie_client::Error),
    /// The server answered with an error reply.
    Reply(Vec<u8>),
    /// The command line asked for something that cannot be done.
    Usage(String),
    /// Reading a file or stdin failed.
    Input(String),
    /// Writing our output failed (a closed pipe ends the run quietly instead).
    Output(io::Error),
}

impl Failure {
    /// A reply that is not of the kind a command expects: an error reply becomes a failure, and
    /// anything else is reported as the surprise it is.
    pub(crate) fn unexpected(reply: magpie_client::Frame, what: &str) -> Failure {
        match reply {
            magpie_client::Frame::Error(msg) => Failure::Reply(msg),
            other => {
                let shown = String::from_utf8_lossy(&format::typed(&other)).trim_end().to_owned();
                Failure::Usage(format!("unexpected reply to {what}: {shown}"))
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Client(e) => write!(f, "error: {e}"),
            Failure::Reply(msg) => write!(f, "(error) {}", String::from_utf8_lossy(msg)),
            Failure::Usage(msg) => write!(f, "error: {msg}"),
            Failure::Input(msg) => write!(f, "error: {msg}"),
            Failure::Output(e) => write!(f, "error: cannot write the output: {e}"),
        }
    }
}

impl From<magpie_client::Error> for Failure {
    fn from(e: magpie_client::Error) -> Self {
        Failure::Client(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

impl From<items::UsageError> for Failure {
    fn from(e: items::UsageError) -> Self {
        Failure::Usage(e.0)
    }
}

/// How replies are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Human,
    Json,
    Raw,
}

/// Standard output, buffered, and how to print on it.
pub struct Out {
    pub mode: Mode,
    w: io::BufWriter<io::Stdout>,
}

impl Out {
    fn new(mode: Mode) -> Out {
        Out { mode, w: io::BufWriter::new(io::stdout()) }
    }

    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)
    }

    pub fn line(&mut self, s: &str) -> io::Result<()> {
        self.w.write_all(s.as_bytes())?;
        self.w.write_all(b"\n")
    }

    pub fn json(&mut self, v: &serde_json::Value) -> io::Result<()> {
        serde_json::to_writer(&mut self.w, v)?;
        self.w.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// A connection made when first needed, so that mistakes in the arguments are reported
/// without one.
pub struct Session {
    pub config: Config,
    pub(crate) client: Option<Client>,
}

impl Session {
    pub async fn client(&mut self) -> Result<&mut Client, Failure> {
        if self.client.is_none() {
            self.client = Some(Client::connect(&self.config).await?);
        }
        match self.client.as_mut() {
            Some(c) => Ok(c),
            None => unreachable!("connected just above"),
        }
    }
}

/// The connection settings: the URL (from --url or MAGPIE_URL) with -h, -p, -a, -n on top.
fn config(conn: &ConnArgs) -> Result<Config, Failure> {
    let mut config = match &conn.url {
        Some(url) => Config::from_url(url)?,
        None => Config::default(),
    };
    if let Some(host) = &conn.host {
        config.host = host.clone();
    }
    if let Some(port) = conn.port {
        config.port = port;
    }
    if let Some(pass) = &conn.pass {
        config.password = Some(pass.clone());
    }
    if let Some(user) = &conn.user {
        config.username = Some(user.clone());
    }
    if let Some(db) = conn.db {
        config.db = db;
    }
    let tls_options =
        conn.cacert.is_some() || conn.cert.is_some() || conn.key.is_some() || conn.sni.is_some() || conn.insecure;
    if conn.tls || (config.tls.is_some() && tls_options) {
        let tls = config.tls.get_or_insert_with(Default::default);
        tls.ca_cert = conn.cacert.clone().or(tls.ca_cert.take());
        tls.cert = conn.cert.clone().or(tls.cert.take());
        tls.key = conn.key.clone().or(tls.key.take());
        tls.sni = conn.sni.clone().or(tls.sni.take());
        tls.insecure |= conn.insecure;
    }
    Ok(config)
}

fn run(cli: Cli) -> Result<Exit, Failure> {
    let mode = match (cli.output.json, cli.output.raw) {
        (true, _) => Mode::Json,
        (_, true) => Mode::Raw,
        _ => Mode::Human,
    };
    let mut out = Out::new(mode);
    if let Some(cli::Command::Completions { shell }) = cli.command {
        let mut cmd = <Cli as clap::CommandFactory>::command();
        // Into memory first: clap_complete panics when its writer fails (a closed pipe, as in
        // `magpie completions bash | head -1`); our own write reports it instead.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, "magpie", &mut script);
        out.write(&script)?;
        out.flush()?;
        return Ok(Exit::Ok);
    }
    let session = Session { config: config(&cli.conn)?, client: None };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the async runtime: {e}")))?;
    let result = match cli.command {
        Some(command) => runtime.block_on(commands::run(command, session, &mut out)),
        None => shell::run(&runtime, session, &mut out),
    };
    // Whatever happened, what was printed so far goes out.
    let flushed = out.flush();
    let exit = result?;
    flushed?;
    Ok(exit)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Exit::Ok) => ExitCode::SUCCESS,
        Ok(Exit::NotFound) => ExitCode::from(1),
        // The reader went away (`magpie keys | head`): nothing to report.
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(failure) => {
            note(&failure.to_string());
            ExitCode::from(2)
        }
    }
}

/// A line on stderr (which, unlike `eprintln!`, does not panic when stderr is closed).
pub fn note(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}
