//! Magpie's server: a Redis-compatible in-memory key-value server, as a library under a thin
//! binary (`main.rs`).
//!
//! Layers, each depending only on those below it (docs/design.md draws them):
//!
//! ```text
//! app        listeners, timer thread, start and shutdown: wires everything
//! front      front ends: the RESP connection, log replay (later HTTP, Lua's redis.call)
//! exec       the dispatcher and its checks, MULTI/EXEC, BEGIN/COMMIT, blocked clients
//! commands   the command families: one table entry and one function per command
//! model      the command table's types, the context a command runs in, the session
//! services   keyspace companions: config, journal, persistence, pub/sub, blocking queues,
//!            clients, statistics, the gate; bundled as `services::Server`
//! core       errors, argument parsing, event classes, sizes, long double arithmetic
//! ```

mod app;
mod commands;
mod core;
mod exec;
mod front;
mod model;
mod services;

pub use app::run;
pub use core::alloc::Counting as CountingAllocator;
pub use core::alloc::{configure as configure_allocator, disable_huge_pages};
pub use services::config::{Config, Options};
pub use services::persist::check_tool;

/// For the runtime's `on_thread_park`: a worker thread that runs out of work gives back the
/// memory its connections freed, and starts a new turn of replies.
pub fn worker_parked() {
    core::alloc::worker_parked();
    front::resp::worker_parked();
}
