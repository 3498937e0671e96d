//! `magpie-server`: a Redis-compatible in-memory key-value server.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use magpie_server::{Config, CountingAllocator, Options, check_tool, configure_allocator, disable_huge_pages};

/// mimalloc, counted: `used_memory` and `maxmemory` read the count.
#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn main() -> ExitCode {
    configure_allocator();
    let options = Options::parse();
    if options.check_aof.is_some() || options.check_snapshot.is_some() {
        return check_tool(options.check_aof.as_deref(), options.check_snapshot.as_deref(), options.fix);
    }
    let config = match Config::load(options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("magpie-server: {e}");
            return ExitCode::from(2);
        }
    };
    let level = match config.loglevel.as_str() {
        "debug" | "verbose" => tracing::Level::DEBUG,
        "warning" => tracing::Level::WARN,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    if config.disable_thp
        && let Err(e) = disable_huge_pages()
    {
        tracing::warn!("disable-thp: transparent huge pages stay as the kernel sets them: {e}");
    }

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    // An idle worker gives back the memory its connections freed, and starts a new turn of
    // replies (see `worker_parked`).
    runtime.on_thread_park(magpie_server::worker_parked);
    if let Some(n) = config.threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("magpie-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(magpie_server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
