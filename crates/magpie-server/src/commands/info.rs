//! The INFO report: Redis's sections and field names where Redis has them, and Magpie's own
//! figures in a `magpie` section.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use magpie_store::DbStats;

use super::REDIS_VERSION;
use crate::core::alloc;
use crate::core::units::human;
use crate::model::Table;
use crate::services::Server;
use crate::services::pubsub::Kind;
use crate::services::stats::Totals;

/// Sections of `INFO` and `INFO default`, in Redis's order, then Magpie's.
const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
    "magpie",
];
/// What `INFO all` and `INFO everything` add.
const EXTRA: &[&str] = &["commandstats", "latencystats"];
/// The sections `INFO <args>` asks for, in report order. No argument means the default set;
/// unknown names select nothing, as in Redis.
pub(super) fn sections<'a>(args: impl Iterator<Item = &'a [u8]>) -> Vec<&'static str> {
    let mut wanted: Vec<&'static str> = Vec::new();
    let mut any = false;
    for arg in args {
        any = true;
        let arg = String::from_utf8_lossy(arg).to_ascii_lowercase();
        match arg.as_str() {
            "default" => wanted.extend(DEFAULT),
            "all" | "everything" => wanted.extend(DEFAULT.iter().chain(EXTRA)),
            name => wanted.extend(DEFAULT.iter().chain(EXTRA).filter(|s| **s == name)),
        }
    }
    if !any {
        wanted.extend(DEFAULT);
    }
    // Report order is Redis's, whatever the order asked.
    let order = |s: &&str| match *s {
        "commandstats" | "latencystats" => DEFAULT.iter().position(|d| *d == "errorstats").unwrap_or(0),
        s => DEFAULT.iter().position(|d| *d == s).unwrap_or(usize::MAX),
    };
    // Around errorstats: commandstats before it, latencystats after it.
    let around = |s: &&str| match *s {
        "commandstats" => 0,
        "latencystats" => 2,
        _ => 1,
    };
    wanted.sort_by_key(|s| (order(s), around(s)));
    wanted.dedup();
    wanted
}

/// Builds the report of `sections`.
pub(super) fn report(shared: &Server, table: &Table, sections: &[&str]) -> String {
    let (base_totals, base_expired) = shared.metrics().baseline();
    let totals = Totals::read().since(&base_totals);
    let dbs: Vec<DbStats> = shared.keyspace().dbs().iter().map(magpie_store::Db::stats).collect();
    let expired = dbs.iter().map(|d| d.expired).sum::<u64>().saturating_sub(base_expired);
    let r = Report { shared, table, totals: &totals, dbs: &dbs, expired };
    let mut out = String::with_capacity(4096);
    for (i, name) in sections.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        r.section(&mut out, name);
    }
    out
}

struct Report<'a> {
    shared: &'a Server,
    table: &'a Table,
    totals: &'a Totals,
    dbs: &'a [DbStats],
    expired: u64,
}

/// Appends `name:value\r\n`.
macro_rules! field {
    ($out:expr, $name:expr, $value:expr) => {
        let _ = write!($out, "{}:{}\r\n", $name, $value);
    };
}

impl Report<'_> {
    fn section(&self, out: &mut String, name: &str) {
        let title = match name {
            "cpu" => "CPU".to_owned(),
            "commandstats" => "Commandstats".to_owned(),
            "errorstats" => "Errorstats".to_owned(),
            n => n[..1].to_ascii_uppercase() + &n[1..],
        };
        let _ = write!(out, "# {title}\r\n");
        match name {
            "server" => self.server(out),
            "clients" => self.clients(out),
            "memory" => self.memory(out),
            "persistence" => self.shared.persistence().info(out),
            "stats" => self.stats(out),
            "replication" => self.replication(out),
            "cpu" => cpu(out),
            "commandstats" => self.commandstats(out),
            "errorstats" => self.errorstats(out),
            "latencystats" => super::operator::latencystats(self.shared, self.table, self.totals, out),
            "cluster" => {
                field!(out, "cluster_enabled", 0);
            }
            "keyspace" => self.keyspace(out),
            "magpie" => self.magpie(out),
            _ => {} // modules: none
        }
    }

    fn server(&self, out: &mut String) {
        let s = self.shared;
        let uptime = s.metrics().started().elapsed().as_secs();
        let now_us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        field!(out, "redis_version", REDIS_VERSION);
        field!(out, "magpie_version", env!("CARGO_PKG_VERSION"));
        field!(out, "redis_git_sha1", "00000000");
        field!(out, "redis_git_dirty", 0);
        field!(out, "redis_mode", "standalone");
        field!(out, "os", format!("{} {} {}", std_os(), kernel.trim(), std::env::consts::ARCH));
        field!(out, "arch_bits", usize::BITS);
        field!(out, "multiplexing_api", "epoll");
        field!(out, "process_id", std::process::id());
        field!(out, "process_supervised", "no");
        field!(out, "run_id", s.metrics().run_id());
        field!(out, "tcp_port", s.settings().config.port);
        field!(out, "server_time_usec", now_us);
        field!(out, "uptime_in_seconds", uptime);
        field!(out, "uptime_in_days", uptime / 86400);
        field!(out, "hz", s.settings().hz());
        field!(out, "configured_hz", s.settings().hz());
        let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default();
        field!(out, "executable", exe);
        let config_file = s.settings().config.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        field!(out, "config_file", config_file);
        field!(out, "io_threads_active", 0);
    }

    fn clients(&self, out: &mut String) {
        field!(out, "connected_clients", self.shared.clients().len());
        field!(out, "cluster_connections", 0);
        field!(out, "maxclients", self.shared.settings().maxclients());
        field!(out, "blocked_clients", self.shared.blocking().blocked());
        field!(out, "tracking_clients", self.shared.clients().tracking.clients());
        field!(out, "clients_in_timeout_table", 0);
    }

    fn memory(&self, out: &mut String) {
        let rss = alloc::resident();
        let system = meminfo_kib("MemTotal:") * 1024;
        let memory = &self.shared.settings().memory;
        // What the allocator handed out (counted: see core::alloc), as Redis's zmalloc.
        let used = memory.used();
        let peak = memory.peak();
        let startup = memory.startup();
        field!(out, "used_memory", used);
        field!(out, "used_memory_human", human(used));
        field!(out, "used_memory_rss", rss);
        field!(out, "used_memory_rss_human", human(rss));
        field!(out, "used_memory_peak", peak);
        field!(out, "used_memory_peak_human", human(peak));
        field!(out, "used_memory_peak_perc", format!("{:.2}%", used as f64 * 100.0 / peak.max(1) as f64));
        field!(out, "used_memory_startup", startup);
        field!(out, "used_memory_dataset", used.saturating_sub(startup));
        let scripting = self.shared.scripting();
        let (libraries, functions) = scripting.function_counts();
        field!(out, "number_of_cached_scripts", scripting.script_count());
        field!(out, "number_of_functions", functions);
        field!(out, "number_of_libraries", libraries);
        field!(out, "total_system_memory", system);
        field!(out, "total_system_memory_human", human(system));
        field!(out, "maxmemory", memory.maxmemory());
        field!(out, "maxmemory_human", human(memory.maxmemory()));
        field!(out, "maxmemory_policy", memory.policy().name());
        let ratio = if used > 0 { rss as f64 / used as f64 } else { 0.0 };
        field!(out, "mem_fragmentation_ratio", format!("{ratio:.2}"));
        field!(out, "mem_fragmentation_bytes", rss as i64 - used as i64);
        field!(out, "mem_not_counted_for_evict", 0);
        field!(out, "mem_allocator", alloc::name());
    }

    fn stats(&self, out: &mut String) {
        let t = self.totals;
        let (ops, input, output) = self.shared.metrics().rates();
        field!(out, "total_connections_received", self.shared.clients().accepted.load(Ordering::Relaxed));
        field!(out, "total_commands_processed", t.commands);
        field!(out, "instantaneous_ops_per_sec", ops.round() as u64);
        field!(out, "total_net_input_bytes", t.net_in);
        field!(out, "total_net_output_bytes", t.net_out);
        field!(out, "instantaneous_input_kbps", format!("{:.2}", input / 1024.0));
        field!(out, "instantaneous_output_kbps", format!("{:.2}", output / 1024.0));
        field!(out, "rejected_connections", self.shared.clients().rejected.load(Ordering::Relaxed));
        field!(out, "expired_keys", self.expired);
        field!(out, "evicted_keys", self.shared.settings().memory.evicted());
        field!(out, "evicted_clients", self.shared.clients().evicted.load(Ordering::Relaxed));
        field!(out, "keyspace_hits", t.hits);
        field!(out, "keyspace_misses", t.misses);
        field!(out, "pubsub_channels", self.shared.pubsub().active(Kind::Channel));
        field!(out, "pubsub_patterns", self.shared.pubsub().active(Kind::Pattern));
        field!(out, "pubsubshard_channels", self.shared.pubsub().active(Kind::Shard));
        let (keys, items, prefixes) = self.shared.clients().tracking.totals();
        field!(out, "tracking_total_keys", keys);
        field!(out, "tracking_total_items", items);
        field!(out, "tracking_total_prefixes", prefixes);
        field!(out, "total_error_replies", t.error_replies);
        field!(out, "total_reads_processed", t.reads);
        field!(out, "total_writes_processed", t.writes);
        // Redis 7.2's names: refusals by the ACL (failed AUTH and HELLO AUTH included).
        let denied = &self.shared.acl().denied;
        field!(out, "acl_access_denied_auth", denied.auth.load(Ordering::Relaxed));
        field!(out, "acl_access_denied_cmd", denied.cmd.load(Ordering::Relaxed));
        field!(out, "acl_access_denied_key", denied.key.load(Ordering::Relaxed));
        field!(out, "acl_access_denied_channel", denied.channel.load(Ordering::Relaxed));
    }

    fn replication(&self, out: &mut String) {
        field!(out, "role", "master");
        field!(out, "connected_slaves", 0);
        field!(out, "master_failover_state", "no-failover");
        field!(out, "master_replid", self.shared.metrics().run_id());
        field!(out, "master_replid2", "0000000000000000000000000000000000000000");
        field!(out, "master_repl_offset", 0);
        field!(out, "second_repl_offset", -1);
        field!(out, "repl_backlog_active", 0);
    }

    fn commandstats(&self, out: &mut String) {
        for (name, c) in self.table.names().iter().zip(&self.totals.cmds) {
            if c.calls == 0 && c.rejected == 0 && c.failed == 0 {
                continue;
            }
            let usec = c.nanos / 1000;
            let per_call = if c.calls > 0 { c.nanos as f64 / 1000.0 / c.calls as f64 } else { 0.0 };
            let _ = write!(
                out,
                "cmdstat_{name}:calls={},usec={usec},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
                c.calls, c.rejected, c.failed
            );
        }
    }

    fn errorstats(&self, out: &mut String) {
        for (code, n) in &self.totals.errors {
            let _ = write!(out, "errorstat_{}:count={n}\r\n", String::from_utf8_lossy(code));
        }
    }

    fn keyspace(&self, out: &mut String) {
        for (i, db) in self.dbs.iter().enumerate().filter(|(_, db)| db.keys > 0) {
            let _ = write!(out, "db{i}:keys={},expires={},avg_ttl={}\r\n", db.keys, db.expires, db.avg_ttl);
        }
    }

    fn magpie(&self, out: &mut String) {
        let bytes: u64 = self.dbs.iter().map(|d| d.value_bytes).sum();
        field!(out, "keys", self.dbs.iter().map(|d| d.keys).sum::<u64>());
        field!(out, "expires", self.dbs.iter().map(|d| d.expires).sum::<u64>());
        field!(out, "value_bytes", bytes);
        field!(out, "value_bytes_human", human(bytes));
        let [get, set, del] = self.totals.key_ops;
        field!(out, "key_ops_get", get);
        field!(out, "key_ops_set", set);
        field!(out, "key_ops_del", del);
        field!(out, "databases", self.dbs.len());
        field!(out, "shards_per_db", self.shared.keyspace().db(0).shard_count());
    }
}

fn cpu(out: &mut String) {
    let usage = alloc::usage();
    field!(out, "used_cpu_sys", format!("{:.6}", usage.system_ms as f64 / 1000.0));
    field!(out, "used_cpu_user", format!("{:.6}", usage.user_ms as f64 / 1000.0));
    field!(out, "used_cpu_sys_children", "0.000000");
    field!(out, "used_cpu_user_children", "0.000000");
}

fn std_os() -> &'static str {
    match std::env::consts::OS {
        "linux" => "Linux",
        "macos" => "Darwin",
        os => os,
    }
}

/// A `Name:   123 kB` line of /proc/meminfo, in KiB (0 where unavailable).
fn meminfo_kib(name: &str) -> u64 {
    kib_field(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default(), name)
}

fn kib_field(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_chosen_like_redis() {
        let pick = |args: &[&str]| sections(args.iter().map(|a| a.as_bytes()));
        assert_eq!(pick(&[]), DEFAULT);
        assert_eq!(pick(&["KEYSPACE", "server"]), ["server", "keyspace"]);
        assert!(pick(&["all"]).contains(&"commandstats"));
        assert!(!pick(&["default"]).contains(&"commandstats"));
        assert_eq!(pick(&["nosuch"]), Vec::<&str>::new());
        assert_eq!(pick(&["commandstats", "commandstats"]), ["commandstats"]);
    }

    #[test]
    fn kib_fields_are_read_from_proc_text() {
        assert_eq!(kib_field("VmPeak:\t  100 kB\nVmRSS:\t  2048 kB\n", "VmRSS:"), 2048);
        assert_eq!(kib_field("", "VmRSS:"), 0);
    }
}
