//! MEMORY: USAGE, STATS, DOCTOR, MALLOC-STATS, PURGE and HELP, shaped as Redis 7.0's replies.
//! The figures come from the counted allocator (`core::alloc`) and the memory settings
//! (`services::memory`).

use magpie_protocol::Args;

use crate::core::alloc;
use crate::core::error::{self, CmdResult, int_arg, is};
use crate::model::{Command, Ctx, KeySpec, command};
use crate::{acl, flags, key_flags};

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("memory", -2, flags![], "server", "4.0.0", "A container for memory diagnostics commands.",
        "", command::container)
        .acl(acl![])
        .with_subcommands(&[
            Command::new("memory|doctor", 2, flags![], "server", "4.0.0", "Outputs a memory problems report.",
                "", doctor)
                .acl(acl![])
                .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"]),
            Command::new("memory|help", 2, flags![LOADING, STALE], "server", "4.0.0", "Returns helpful text about the different subcommands.",
                "", help)
                .acl(acl![]),
            Command::new("memory|malloc-stats", 2, flags![], "server", "4.0.0", "Returns the allocator statistics.",
                "", malloc_stats)
                .acl(acl![])
                .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"]),
            Command::new("memory|purge", 2, flags![], "server", "4.0.0", "Asks the allocator to release memory.",
                "", purge)
                .acl(acl![])
                .tips(&["request_policy:all_shards", "response_policy:all_succeeded"]),
            Command::new("memory|stats", 2, flags![], "server", "4.0.0", "Returns details about memory usage.",
                "", stats)
                .acl(acl![])
                .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"]),
            Command::new("memory|usage", -3, flags![READONLY], "server", "4.0.0", "Estimates the memory usage of a key.",
                "key [SAMPLES count:integer]", usage)
                .acl(acl![])
                .keys(&[KeySpec::one(2, key_flags![RO])]),
        ]),
];

fn help(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    const LINES: &[&str] = &[
        "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DOCTOR",
        "    Return memory problems reports.",
        "MALLOC-STATS",
        "    Return internal statistics report from the memory allocator.",
        "PURGE",
        "    Attempt to purge dirty pages for reclamation by the allocator.",
        "STATS",
        "    Return information about the memory usage of the server.",
        "USAGE <key> [SAMPLES <count>]",
        "    Return memory in bytes used by <key> and its value. Nested values are",
        "    sampled up to <count> times (default: 5, 0 means sample all).",
        "HELP",
        "    Prints this help.",
    ];
    ctx.out().array(LINES.len());
    for line in LINES {
        ctx.out().simple(line);
    }
    Ok(())
}

/// What a stored key costs beyond its block (see [`magpie_store::EntryRef::block`]) and its
/// value's own allocations: its place in the shard's table (16 bytes) and its share of the
/// table's index (a 4-byte position and a 1-byte tag per slot, the index 7/16 to 7/8 full:
/// about 8 bytes).
const PER_KEY: u64 = 16 + 8;

/// What an expiry time costs a key that has one: its place (4 bytes) and time (8) in the
/// shard's table of expiring keys.
const PER_EXPIRE: u64 = 4 + 8;

/// Values up to this many logical bytes are measured exactly, by copying them under the
/// counted allocator; bigger ones are estimated from their logical size.
const MEASURE_MAX: usize = 16 << 20;

/// MEMORY USAGE key [SAMPLES count]: the bytes the key and its value take. Magpie measures the
/// value (its copy's allocations, exact), so SAMPLES is checked as Redis checks it and
/// otherwise changes nothing.
fn usage(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let mut j = 3;
    while j < args.len() {
        if is(args.get(j), "samples") && j + 1 < args.len() {
            if int_arg(args.get(j + 1))? < 0 {
                return Err(error::syntax());
            }
            j += 2;
        } else {
            return Err(error::syntax());
        }
    }
    let key = args.get(2);
    let shard = ctx.db().read(key);
    let Some(e) = shard.peek(key, ctx.now()) else {
        drop(shard);
        ctx.out().null();
        return Ok(());
    };
    let (block, joined) = e.block();
    let expire = if e.expire_at().is_some() { PER_EXPIRE } else { 0 };
    let size = e.value.size();
    let value = if joined {
        0
    } else if size <= MEASURE_MAX {
        let before = alloc::thread_allocated();
        let copy = (*e.value).clone();
        let bytes = alloc::thread_allocated() - before;
        drop(copy);
        bytes
    } else {
        size as u64 + size as u64 / 4
    };
    drop(shard);
    ctx.out().int((PER_KEY + block as u64 + expire + value) as i64);
    Ok(())
}

/// MEMORY STATS: Redis 7.0's fields, from what Magpie knows (client and log buffers are not
/// broken out: 0).
fn stats(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let server = ctx.server();
    let memory = &server.settings().memory;
    let (used, peak, startup) = (memory.used(), memory.peak(), memory.startup());
    let rss = alloc::resident();
    let dbs: Vec<(usize, u64, u64)> = server
        .keyspace()
        .dbs()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let s = d.stats();
            (i, s.keys, s.expires)
        })
        .filter(|&(_, keys, _)| keys > 0)
        .collect();
    let keys: u64 = dbs.iter().map(|d| d.1).sum();
    let overhead_main: u64 = dbs.iter().map(|d| d.1 * PER_KEY).sum();
    let overhead_expires: u64 = dbs.iter().map(|d| d.2 * PER_EXPIRE).sum();
    let overhead = startup + overhead_main + overhead_expires;
    let dataset = used.saturating_sub(overhead);
    let net = used.saturating_sub(startup);
    let frag = if used > 0 { rss as f64 / used as f64 } else { 0.0 };
    let out = ctx.out();
    out.map(27 + dbs.len());
    let int = |out: &mut magpie_protocol::Reply, name: &str, n: u64| {
        out.bulk(name.as_bytes());
        out.int(i64::try_from(n).unwrap_or(i64::MAX));
    };
    int(out, "peak.allocated", peak);
    int(out, "total.allocated", used);
    int(out, "startup.allocated", startup);
    for name in ["replication.backlog", "clients.slaves", "clients.normal", "cluster.links", "aof.buffer"] {
        int(out, name, 0);
    }
    int(out, "lua.caches", 0);
    int(out, "functions.caches", 0);
    for (i, main, expires) in &dbs {
        out.bulk(format!("db.{i}").as_bytes());
        out.map(3);
        int(out, "overhead.hashtable.main", main * PER_KEY);
        int(out, "overhead.hashtable.expires", expires * PER_EXPIRE);
        int(out, "overhead.hashtable.slot-to-keys", 0);
    }
    int(out, "overhead.total", overhead);
    int(out, "keys.count", keys);
    int(out, "keys.bytes-per-key", net.checked_div(keys).unwrap_or(0));
    int(out, "dataset.bytes", dataset);
    let perc = |a: u64, b: u64| if b > 0 { a as f64 * 100.0 / b as f64 } else { 0.0 };
    out.bulk(b"dataset.percentage");
    out.double(perc(dataset, net));
    out.bulk(b"peak.percentage");
    out.double(perc(used, peak));
    int(out, "allocator.allocated", used);
    int(out, "allocator.active", used);
    int(out, "allocator.resident", rss);
    out.bulk(b"allocator-fragmentation.ratio");
    out.double(1.0);
    int(out, "allocator-fragmentation.bytes", 0);
    out.bulk(b"allocator-rss.ratio");
    out.double(frag);
    int(out, "allocator-rss.bytes", rss.saturating_sub(used));
    out.bulk(b"rss-overhead.ratio");
    out.double(1.0);
    int(out, "rss-overhead.bytes", 0);
    out.bulk(b"fragmentation");
    out.double(frag);
    out.bulk(b"fragmentation.bytes");
    out.int(rss as i64 - used as i64);
    Ok(())
}

/// MEMORY DOCTOR: Redis's report, for the conditions Magpie can see.
fn doctor(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let memory = &ctx.server().settings().memory;
    let (used, peak) = (memory.used(), memory.peak());
    let rss = alloc::resident();
    let text = if used < 5 << 20 {
        "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these \
         conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be \
         back to our programming as soon as I finished rebooting.\n"
            .to_owned()
    } else {
        let big_peak = peak as f64 / used as f64 > 1.5;
        let high_frag = rss as f64 / used as f64 > 1.4 && rss.saturating_sub(used) > 10 << 20;
        if !big_peak && !high_frag {
            "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n"
                .to_owned()
        } else {
            let mut s = "Sam, I detected a few issues in this Redis instance memory implants:\n\n".to_owned();
            if big_peak {
                s.push_str(
                    " * Peak memory: In the past this instance used more than 150% the memory that is currently \
                     using. The allocator is normally not able to release memory after a peak, so you can expect to \
                     see a big fragmentation ratio, however this is actually harmless and is only due to the memory \
                     peak, and if the Redis instance Resident Set Size (RSS) is currently bigger than expected, the \
                     memory will be used as soon as you fill the Redis instance with more data. If the memory peak \
                     was only occasional and you want to try to reclaim memory, please try the MEMORY PURGE command, \
                     otherwise the only other option is to shutdown and restart the instance.\n\n",
                );
            }
            if high_frag {
                s.push_str(&format!(
                    " * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 \
                     (this means that the Resident Set Size of the Redis process is much larger than the sum of the \
                     logical allocations Redis performed). This problem is usually due either to a large peak memory \
                     (check if there is a peak memory entry above in the report) or may result from a workload that \
                     causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there \
                     is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc \
                     malloc. Note: The currently used allocator is \"{}\".\n\n",
                    alloc::name()
                ));
            }
            s.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
            s
        }
    };
    ctx.out().verbatim("txt", text.as_bytes());
    Ok(())
}

/// MEMORY MALLOC-STATS: Redis without jemalloc answers this line; Magpie's allocator figures
/// are in INFO memory and MEMORY STATS.
fn malloc_stats(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.out().bulk(b"Stats not supported for the current allocator");
    Ok(())
}

/// MEMORY PURGE: the allocator returns what it can to the system.
fn purge(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    alloc::purge();
    ctx.out().ok();
    Ok(())
}
