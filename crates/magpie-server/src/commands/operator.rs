//! The operator's commands: SLOWLOG, LATENCY, MONITOR and DEBUG. What they read is gathered
//! by dispatch (`exec::observe`) into the services `slowlog`, `latency` and `monitor`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use magpie_protocol::Args;

use crate::core::error::{CmdResult, Error, is};
use crate::flags;
use crate::model::{Command, Ctx, command};

mod digest;
mod report;

#[rustfmt::skip]
pub(super) static COMMANDS: &[Command] = &[
    Command::new("slowlog", -2, flags![], "server", "2.2.12", "A container for slow log commands.",
        "", command::container)
        .with_subcommands(&[
            Command::new("slowlog|get", -2, flags![ADMIN, LOADING, STALE], "server", "2.2.12", "Returns the slow log's entries.",
                "[count:integer]", slowlog_get)
                .tips(&["request_policy:all_nodes", "nondeterministic_output"]),
            Command::new("slowlog|help", 2, flags![LOADING, STALE], "server", "6.2.0", "Show helpful text about the different subcommands",
                "", slowlog_help),
            Command::new("slowlog|len", 2, flags![ADMIN, LOADING, STALE], "server", "2.2.12", "Returns the number of entries in the slow log.",
                "", slowlog_len)
                .tips(&["request_policy:all_nodes", "response_policy:agg_sum", "nondeterministic_output"]),
            Command::new("slowlog|reset", 2, flags![ADMIN, LOADING, STALE], "server", "2.2.12", "Clears all entries from the slow log.",
                "", slowlog_reset)
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
        ]),
    Command::new("latency", -2, flags![], "server", "2.8.13", "A container for latency diagnostics commands.",
        "", command::container)
        .with_subcommands(&[
            Command::new("latency|doctor", 2, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "2.8.13", "Returns a human-readable latency analysis report.",
                "", latency_doctor)
                .tips(&["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"]),
            Command::new("latency|graph", 3, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "2.8.13", "Returns a latency graph for an event.",
                "event", latency_graph)
                .tips(&["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"]),
            Command::new("latency|help", 2, flags![LOADING, STALE], "server", "2.8.13", "Returns helpful text about the different subcommands.",
                "", latency_help),
            Command::new("latency|histogram", -2, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "7.0.0", "Returns the cumulative distribution of latencies of a subset or all commands.",
                "[command [command ...]]", latency_histogram)
                .tips(&["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"]),
            Command::new("latency|history", 3, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "2.8.13", "Returns timestamp-latency samples for an event.",
                "event", latency_history)
                .tips(&["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"]),
            Command::new("latency|latest", 2, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "2.8.13", "Returns the latest latency samples for all events.",
                "", latency_latest)
                .tips(&["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"]),
            Command::new("latency|reset", -2, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "2.8.13", "Resets the latency data for one or more events.",
                "[event [event ...]]", latency_reset)
                .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"]),
        ]),
    Command::new("monitor", 1, flags![ADMIN, NOSCRIPT, LOADING, STALE], "server", "1.0.0", "Listens for all requests received by the server in real-time.",
        "", monitor),
    Command::new("debug", -2, flags![ADMIN, NOSCRIPT, LOADING, STALE, PROTECTED, RUNS_ALONE], "server", "1.0.0", "A container for debugging commands.",
        "", debug),
];

/// Redis's `addReplyHelp`: the header, the lines, and HELP's own two.
fn help(ctx: &mut Ctx<'_>, args: Args<'_>, lines: &[&str]) -> CmdResult {
    super::reply_help(ctx, &String::from_utf8_lossy(args.get(0)).to_uppercase(), lines)
}

/// Redis's `addReplySubcommandSyntaxError`.
fn subcommand_error(args: Args<'_>) -> Error {
    let sub = crate::core::error::c_str(args.get(1));
    let mut msg = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    msg.extend_from_slice(&sub[..sub.len().min(128)]);
    msg.extend_from_slice(format!("'. Try {} HELP.", String::from_utf8_lossy(args.get(0)).to_uppercase()).as_bytes());
    Error::bytes(msg)
}

// SLOWLOG

fn slowlog_help(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    help(
        ctx,
        args,
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    )
}

/// SLOWLOG GET [count]
fn slowlog_get(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    if args.len() > 3 {
        return Err(subcommand_error(args));
    }
    let mut count = Some(10);
    if args.len() == 3 {
        let n = crate::core::error::int_arg(args.get(2))
            .ok()
            .filter(|&n| n >= -1)
            .ok_or_else(|| Error::from("ERR count should be greater than or equal to -1"))?;
        count = usize::try_from(n).ok();
    }
    let entries = ctx.server().slowlog().newest(count);
    let out = ctx.out();
    out.array(entries.len());
    for e in entries {
        out.array(6);
        out.int(e.id as i64);
        out.int(e.time as i64);
        out.int(i64::try_from(e.micros).unwrap_or(i64::MAX));
        out.array(e.args.len());
        for a in &e.args {
            out.bulk(a);
        }
        out.bulk(e.peer.as_bytes());
        out.bulk(&e.name);
    }
    Ok(())
}

fn slowlog_len(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let n = ctx.server().slowlog().len();
    ctx.out().int(n as i64);
    Ok(())
}

fn slowlog_reset(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    ctx.server().slowlog().reset();
    ctx.out().ok();
    Ok(())
}

// LATENCY

fn latency_help(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    help(
        ctx,
        args,
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "GRAPH <event>",
            "    Return an ASCII latency graph for the <event> class.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
        ],
    )
}

/// LATENCY LATEST: per event, its name, the time and latency of its last sample, and its
/// worst latency.
fn latency_latest(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let events = ctx.server().latency().events();
    let out = ctx.out();
    out.array(events.len());
    for (name, series) in events {
        let last = series.last();
        out.array(4);
        out.bulk(name.as_bytes());
        out.int(last.time as i64);
        out.int(last.latency as i64);
        out.int(series.max as i64);
    }
    Ok(())
}

/// LATENCY HISTORY event: its samples, oldest first.
fn latency_history(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let samples: Vec<_> = match ctx.server().latency().event(args.get(2)) {
        Some((_, series)) => series.samples().collect(),
        None => Vec::new(),
    };
    let out = ctx.out();
    out.array(samples.len());
    for s in samples {
        out.array(2);
        out.int(s.time as i64);
        out.int(s.latency as i64);
    }
    Ok(())
}

/// LATENCY RESET [event ...]: how many events were forgotten.
fn latency_reset(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let latency = ctx.server().latency();
    let n =
        if args.len() == 2 { latency.reset(None) } else { args.iter().skip(2).map(|e| latency.reset(Some(e))).sum() };
    ctx.out().int(n as i64);
    Ok(())
}

/// LATENCY GRAPH event: the samples as Redis draws them (a sparkline of 80 columns, 4 rows).
fn latency_graph(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let Some((name, series)) = ctx.server().latency().event(args.get(2)) else {
        let mut msg = b"ERR No samples available for event '".to_vec();
        msg.extend_from_slice(crate::core::error::c_str(args.get(2)));
        msg.push(b'\'');
        return Err(Error::bytes(msg));
    };
    let now = magpie_store::now_ms() / 1000;
    let samples: Vec<_> = series.samples().collect();
    let high = samples.iter().map(|s| s.latency).max().unwrap_or(0);
    let low = samples.iter().map(|s| s.latency).min().unwrap_or(0);
    let mut graph = format!("{name} - high {high} ms, low {low} ms (all time high {} ms)\n", series.max);
    graph.push_str(&"-".repeat(80));
    graph.push('\n');
    let labels: Vec<(u64, String)> = samples
        .iter()
        .map(|s| {
            let ago = now.saturating_sub(s.time);
            let label = match ago {
                0..60 => format!("{ago}s"),
                60..3600 => format!("{}m", ago / 60),
                3600..86400 => format!("{}h", ago / 3600),
                _ => format!("{}d", ago / 86400),
            };
            (s.latency, label)
        })
        .collect();
    graph.push_str(&report::sparkline(&labels, 80, 4));
    ctx.out().verbatim("txt", graph.as_bytes());
    Ok(())
}

/// LATENCY DOCTOR: Redis's report, for the events Magpie records.
fn latency_doctor(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    let server = ctx.server();
    let events = server.latency().events();
    let s = &server.settings().operator;
    let threshold = s.latency_monitor_threshold();
    let report = report::doctor(&events, threshold, s.slowlog_log_slower_than(), server.settings().hz());
    ctx.out().verbatim("txt", report.as_bytes());
    Ok(())
}

/// LATENCY HISTOGRAM [command ...]: per command, its calls and their cumulative
/// distribution over powers of two of microseconds.
fn latency_histogram(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let table = ctx.table();
    let histograms = report::histograms(ctx.server(), table, args);
    let out = ctx.out();
    out.map(histograms.len());
    for (name, calls, buckets) in histograms {
        out.bulk(name.as_bytes());
        out.map(2);
        out.bulk(b"calls");
        out.int(calls as i64);
        out.bulk(b"histogram_usec");
        out.map(buckets.len());
        for (us, cumulative) in buckets {
            out.int(us as i64);
            out.int(cumulative as i64);
        }
    }
    Ok(())
}

// MONITOR

/// MONITOR: from now on the client gets a line for every command the server runs, and may
/// not touch the keyspace. A second MONITOR is ignored (no reply), as in Redis.
fn monitor(ctx: &mut Ctx<'_>, _args: Args<'_>) -> CmdResult {
    if ctx.session().txn.executing {
        return Err("ERR MONITOR isn't allowed for DENY BLOCKING client".into());
    }
    let info = ctx.session().info().clone();
    if info.pubsub.monitor.swap(true, Ordering::Relaxed) {
        return Ok(());
    }
    ctx.server().monitors().add(info.id, info.pubsub.mailbox.clone());
    ctx.out().ok();
    Ok(())
}

// DEBUG

/// DEBUG subcommand ...: the subcommands Magpie has (see DEBUG HELP).
fn debug(ctx: &mut Ctx<'_>, args: Args<'_>) -> CmdResult {
    let sub = args.get(1);
    let n = args.len();
    if is(sub, "help") && n == 2 {
        return help(ctx, args, DEBUG_HELP);
    }
    if is(sub, "sleep") && n == 3 {
        // Stops this client's worker, holding the gate as a command does: Redis stops the
        // whole server, Magpie stops what waits for this thread or the gate.
        let secs = std::str::from_utf8(args.get(2)).ok().and_then(|s| s.trim().parse::<f64>().ok()).unwrap_or(0.0);
        if secs > 0.0 && secs.is_finite() {
            std::thread::sleep(Duration::from_secs_f64(secs.min(86400.0 * 365.0)));
        }
        ctx.out().ok();
        return Ok(());
    }
    if is(sub, "object") && n == 3 {
        return debug_object(ctx, args.get(2));
    }
    if is(sub, "digest-value") {
        let digests: Vec<String> = args.iter().skip(2).map(|key| key_digest(ctx, key, false)).collect();
        let out = ctx.out();
        out.array(digests.len());
        for d in digests {
            out.simple(&d);
        }
        return Ok(());
    }
    if is(sub, "digest") && n == 2 {
        let d = keyspace_digest(ctx);
        ctx.out().simple(&d);
        return Ok(());
    }
    if is(sub, "reload") {
        let mut save = true;
        for opt in args.iter().skip(2) {
            if is(opt, "nosave") {
                save = false;
            } else if !is(opt, "merge") && !is(opt, "noflush") {
                return Err("ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.".into());
            }
        }
        // MERGE and NOFLUSH are accepted; the keyspace is always emptied first.
        ctx.server().persistence().reload(save).map_err(Error::from)?;
        ctx.out().ok();
        return Ok(());
    }
    if is(sub, "log") && n == 3 {
        tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(args.get(2)));
        ctx.out().ok();
        return Ok(());
    }
    if is(sub, "set-active-expire") && n == 3 {
        let on = crate::core::error::int_arg(args.get(2))? != 0;
        ctx.server().settings().operator.set_active_expire(on);
        ctx.out().ok();
        return Ok(());
    }
    Err(subcommand_error(args))
}

const DEBUG_HELP: &[&str] = &[
    "DIGEST",
    "    Output a hex signature representing the current DB content.",
    "DIGEST-VALUE <key> [<key> ...]",
    "    Output a hex signature of the values of all the specified keys.",
    "LOG <message>",
    "    Write <message> to the server log.",
    "OBJECT <key>",
    "    Show low level info about `key` and associated value.",
    "RELOAD [option ...]",
    "    Save the RDB on disk and reload it back to memory. Valid <option> values:",
    "    * NOSAVE: the database will be loaded from an existing RDB file.",
    "    (MERGE and NOFLUSH are accepted; the database is always emptied first.)",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
];

/// INFO's latencystats section: each command's latency percentiles in µs (Redis's
/// `latency_percentiles_usec_<command>:p50=...,p99=...`), while `latency-tracking` is on.
pub(super) fn latencystats(
    server: &crate::services::Server,
    table: &crate::model::Table,
    totals: &crate::services::stats::Totals,
    out: &mut String,
) {
    let s = &server.settings().operator;
    if !s.latency_tracking() {
        return;
    }
    let percentiles = s.percentiles();
    for (name, c) in table.names().iter().zip(&totals.cmds) {
        if report::percentile(c, 50.0).is_none() {
            continue;
        }
        let fields: Vec<String> = percentiles
            .iter()
            .map(|&p| {
                let v = report::percentile(c, p).unwrap_or(0.0);
                format!("p{}={v:.3}", crate::services::config::format_percentile(p))
            })
            .collect();
        out.push_str(&format!("latency_percentiles_usec_{name}:{}\r\n", fields.join(",")));
    }
}

/// DEBUG OBJECT key: Redis's line (`Value at:... refcount:... encoding:... serializedlength:...
/// lru:... lru_seconds_idle:...`, and the quicklist fields for a list). The serialized length
/// is the length of the value in RDB, as DUMP writes it.
fn debug_object(ctx: &mut Ctx<'_>, key: &[u8]) -> CmdResult {
    let shard = ctx.db().read(key);
    let Some(e) = shard.get(key, ctx.now()) else {
        return Err("ERR no such key".into());
    };
    let v: &magpie_store::Value = &e.value;
    // DUMP's payload is the type byte, the value, 2 bytes of version and 8 of checksum.
    let serialized = magpie_persist::rdb::dump_value(v, &super::dump::write_options()).len().saturating_sub(11);
    let shared = matches!(v, magpie_store::Value::Int(n) if (0..10_000).contains(n));
    let refcount = if shared { i32::MAX } else { 1 };
    let mut line = format!(
        "Value at:{:p} refcount:{refcount} encoding:{} serializedlength:{serialized} lru:0 lru_seconds_idle:0",
        v as *const magpie_store::Value,
        v.encoding()
    );
    if let magpie_store::Value::List(l) = v {
        let nodes = l.chunk_count().max(1);
        // As a listpack of short strings takes them: a 6-byte header and an end byte per
        // node, and a byte of encoding and one of back length around each element.
        let bytes: usize = l.iter().map(|e| e.len() + 2).sum::<usize>() + 7 * nodes;
        line.push_str(&format!(
            " ql_nodes:{nodes} ql_avg_node:{:.2} ql_listpack_max:-2 ql_compressed:0 ql_uncompressed_size:{bytes}",
            l.len() as f64 / nodes as f64
        ));
    }
    drop(shard);
    ctx.out().simple(&line);
    Ok(())
}

/// The digest of one key's value (40 zeros for a missing key), with its expiry time when
/// `with_ttl`.
fn key_digest(ctx: &Ctx<'_>, key: &[u8], with_ttl: bool) -> String {
    let shard = ctx.db().read(key);
    match shard.get(key, ctx.now()) {
        Some(e) => digest::hex(&digest::value(&e.value, if with_ttl { e.expire_at() } else { None })),
        None => "0".repeat(40),
    }
}

/// DEBUG DIGEST: every database's keys, values and expiry times (40 zeros when empty).
fn keyspace_digest(ctx: &Ctx<'_>) -> String {
    let now = ctx.now();
    let mut total = [0u8; 20];
    for (i, db) in ctx.server().keyspace().dbs().iter().enumerate() {
        let mut db_digest = [0u8; 20];
        let mut any = false;
        for s in 0..db.shard_count() {
            let shard = db.shard(s).read();
            for (key, e) in shard.iter(now) {
                any = true;
                let mut d = [0u8; 20];
                digest::mix(&mut d, key);
                digest::mix(&mut d, &digest::value(&e.value, e.expire_at()));
                for (a, b) in db_digest.iter_mut().zip(d) {
                    *a ^= b;
                }
            }
        }
        if any {
            digest::mix(&mut total, &(i as u64).to_le_bytes());
            digest::mix(&mut total, &db_digest);
        }
    }
    if total == [0u8; 20] { "0".repeat(40) } else { digest::hex(&total) }
}
