//! `magpie stats`: a summary of the server's metrics, read from `INFO all`.
//!
//! INFO is parsed generically (sections of `field:value` lines), and the summary takes what it
//! can find: Magpie's own section (`# Magpie`: keys, value_bytes, key_ops_*) when present,
//! Redis's standard fields otherwise, and "n/a" (null in JSON) for what neither has.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use magpie_client::Frame;
use serde_json::{Map, Value, json};

use crate::format::{grouped, human_bytes, human_duration};
use crate::{Exit, Failure, Mode, Out, Session};

/// INFO's text as ordered sections of ordered fields.
#[derive(Debug, Default, Clone)]
pub(crate) struct Info {
    pub sections: Vec<(String, Vec<(String, String)>)>,
}

impl Info {
    /// Parses `# Section` headers and `field:value` lines (CRLF or LF); other lines are
    /// ignored, and fields before any header go in a section named "".
    pub(crate) fn parse(text: &str) -> Info {
        let mut info = Info::default();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if let Some(name) = line.strip_prefix('#') {
                info.sections.push((name.trim().to_owned(), Vec::new()));
            } else if let Some((k, v)) = line.split_once(':') {
                if info.sections.is_empty() {
                    info.sections.push((String::new(), Vec::new()));
                }
                if let Some((_, fields)) = info.sections.last_mut() {
                    fields.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        info
    }

    /// A field's value, from whichever section has it.
    pub(crate) fn get(&self, field: &str) -> Option<&str> {
        self.sections.iter().flat_map(|(_, f)| f).find(|(k, _)| k == field).map(|(_, v)| v.as_str())
    }

    fn section(&self, name: &str) -> Option<&[(String, String)]> {
        self.sections.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, f)| f.as_slice())
    }

    pub(crate) fn int(&self, field: &str) -> Option<i64> {
        self.get(field)?.trim().parse().ok()
    }

    fn in_magpie(&self, field: &str) -> Option<i64> {
        self.section("Magpie")?.iter().find(|(k, _)| k == field)?.1.trim().parse().ok()
    }

    /// Sums a sub-field (`keys=` in `db0:keys=1,expires=0`) over the Keyspace section.
    fn keyspace_sum(&self, sub: &str) -> Option<i64> {
        let dbs = self.section("Keyspace")?;
        Some(dbs.iter().filter_map(|(_, v)| sub_field(v, sub)).sum())
    }

    /// The INFO sections as a JSON object of objects of strings, in INFO's order.
    fn to_json(&self) -> Value {
        let mut sections = Map::new();
        for (name, fields) in &self.sections {
            let obj: Map<String, Value> = fields.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            sections.insert(name.to_ascii_lowercase(), Value::Object(obj));
        }
        Value::Object(sections)
    }
}

/// `sub` in a value of the form `a=1,b=2`.
fn sub_field(value: &str, sub: &str) -> Option<i64> {
    value.split(',').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == sub)?.1.parse().ok())
}

/// The numbers `stats` shows, each `None` when the server does not report it.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Summary {
    pub server: String,
    pub version: Option<String>,
    pub uptime_seconds: Option<i64>,
    pub keys: Option<i64>,
    pub expires: Option<i64>,
    pub value_bytes: Option<i64>,
    pub gets: Option<i64>,
    pub sets: Option<i64>,
    pub dels: Option<i64>,
    pub ops_per_sec: Option<f64>,
    pub ops_sampled: bool,
    pub hits: Option<i64>,
    pub misses: Option<i64>,
    pub used_memory: Option<i64>,
    pub rss: Option<i64>,
    pub peak_memory: Option<i64>,
    pub maxmemory: Option<i64>,
    pub maxmemory_policy: Option<String>,
    pub clients: Option<i64>,
    pub maxclients: Option<i64>,
    pub blocked_clients: Option<i64>,
    pub commands_processed: Option<i64>,
    pub connections_received: Option<i64>,
    pub expired_keys: Option<i64>,
    pub evicted_keys: Option<i64>,
}

impl Summary {
    /// Summarizes `now`; with an earlier sample, measures operations per second between the
    /// two (else falls back on the server's own estimate).
    pub(crate) fn new(now: &Info, before: Option<(&Info, Duration)>) -> Summary {
        let is_magpie = now.get("magpie_version").is_some() || now.section("Magpie").is_some();
        let sampled = before.and_then(|(prev, elapsed)| {
            let (a, b) = (prev.int("total_commands_processed")?, now.int("total_commands_processed")?);
            // The first INFO counts itself only once it has answered: it is in the difference.
            let ops = (b - a - 1).max(0) as f64;
            let secs = elapsed.as_secs_f64();
            (secs > 0.0).then(|| ops / secs)
        });
        Summary {
            server: if is_magpie { "magpie" } else { "redis" }.to_owned(),
            version: now.get("magpie_version").or_else(|| now.get("redis_version")).map(str::to_owned),
            uptime_seconds: now.int("uptime_in_seconds"),
            keys: now.in_magpie("keys").or_else(|| now.keyspace_sum("keys")),
            expires: now.in_magpie("expires").or_else(|| now.keyspace_sum("expires")),
            value_bytes: now.in_magpie("value_bytes"),
            gets: now.in_magpie("key_ops_get"),
            sets: now.in_magpie("key_ops_set"),
            dels: now.in_magpie("key_ops_del"),
            ops_sampled: sampled.is_some(),
            ops_per_sec: sampled.or_else(|| now.int("instantaneous_ops_per_sec").map(|n| n as f64)),
            hits: now.int("keyspace_hits"),
            misses: now.int("keyspace_misses"),
            used_memory: now.int("used_memory"),
            rss: now.int("used_memory_rss"),
            peak_memory: now.int("used_memory_peak"),
            maxmemory: now.int("maxmemory"),
            maxmemory_policy: now.get("maxmemory_policy").map(str::to_owned),
            clients: now.int("connected_clients"),
            maxclients: now.int("maxclients"),
            blocked_clients: now.int("blocked_clients"),
            commands_processed: now.int("total_commands_processed"),
            connections_received: now.int("total_connections_received"),
            expired_keys: now.int("expired_keys"),
            evicted_keys: now.int("evicted_keys"),
        }
    }

    /// Hits over reads, when there were reads.
    pub(crate) fn hit_rate(&self) -> Option<f64> {
        let (h, m) = (self.hits?, self.misses?);
        (h + m > 0).then(|| h as f64 / (h + m) as f64)
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "server": self.server,
            "version": self.version,
            "uptime_seconds": self.uptime_seconds,
            "keys": self.keys,
            "expires": self.expires,
            "value_bytes": self.value_bytes,
            "key_ops": { "get": self.gets, "set": self.sets, "del": self.dels },
            "ops_per_sec": self.ops_per_sec.map(|x| (x * 10.0).round() / 10.0),
            "ops_per_sec_sampled": self.ops_sampled,
            "keyspace_hits": self.hits,
            "keyspace_misses": self.misses,
            "hit_rate": self.hit_rate(),
            "memory": {
                "used": self.used_memory,
                "rss": self.rss,
                "peak": self.peak_memory,
                "max": self.maxmemory,
                "policy": self.maxmemory_policy,
            },
            "clients": { "connected": self.clients, "max": self.maxclients, "blocked": self.blocked_clients },
            "total_commands_processed": self.commands_processed,
            "total_connections_received": self.connections_received,
            "expired_keys": self.expired_keys,
            "evicted_keys": self.evicted_keys,
        })
    }

    /// The summary as aligned lines of text.
    pub(crate) fn to_text(&self, addr: &str) -> String {
        const NA: &str = "n/a";
        let n = |v: Option<i64>| v.map_or_else(|| NA.to_owned(), grouped);
        let bytes = |v: Option<i64>| v.map_or_else(|| NA.to_owned(), |b| human_bytes(b.max(0) as u64));
        let mut lines = Vec::new();
        let name = if self.server == "magpie" { "Magpie" } else { "Server" };
        let uptime = self.uptime_seconds.map_or_else(|| NA.to_owned(), |s| human_duration(s.max(0) as u64));
        lines.push(format!("{name} {} at {addr}, up {uptime}", self.version.as_deref().unwrap_or(NA)));
        let expires = match self.expires {
            Some(e) => format!(" ({} with an expiry)", grouped(e)),
            None => String::new(),
        };
        lines.push(format!("keys        {}{expires}", n(self.keys)));
        let values = match self.value_bytes {
            Some(v) if v >= 1024 => format!("{} ({} bytes)", bytes(Some(v)), grouped(v)),
            v => bytes(v),
        };
        lines.push(format!("values      {values}"));
        lines.push(format!("key ops     get {}, set {}, del {}", n(self.gets), n(self.sets), n(self.dels)));
        let ops = match self.ops_per_sec {
            Some(x) if self.ops_sampled => format!("{} (measured over 1 s)", grouped(x.round() as i64)),
            Some(x) => format!("{} (the server's estimate)", grouped(x.round() as i64)),
            None => NA.to_owned(),
        };
        lines.push(format!("ops/s       {ops}"));
        let hits = match self.hit_rate() {
            Some(r) => format!("{:.1}% ({} hits, {} misses)", r * 100.0, n(self.hits), n(self.misses)),
            None if self.hits.is_some() => "n/a (no reads yet)".to_owned(),
            None => NA.to_owned(),
        };
        lines.push(format!("hit rate    {hits}"));
        let policy = self.maxmemory_policy.as_deref().map(|p| format!(", {p}")).unwrap_or_default();
        let max = match (self.maxmemory, self.used_memory) {
            (Some(0), _) => "no limit".to_owned(),
            (Some(m), Some(u)) if m > 0 => {
                format!("limit {} ({:.1}% used{policy})", bytes(Some(m)), u as f64 * 100.0 / m as f64)
            }
            (m, _) => format!("limit {}{policy}", bytes(m)),
        };
        lines.push(format!(
            "memory      {} used, {} RSS, {} peak, {max}",
            bytes(self.used_memory),
            bytes(self.rss),
            bytes(self.peak_memory)
        ));
        lines.push(format!("clients     {} connected (max {})", n(self.clients), n(self.maxclients)));
        lines.push(format!(
            "totals      {} commands, {} connections, {} keys expired, {} evicted",
            n(self.commands_processed),
            n(self.connections_received),
            n(self.expired_keys),
            n(self.evicted_keys)
        ));
        lines.join("\n") + "\n"
    }
}

/// Reads INFO: `INFO all`, or plain `INFO` from a server that knows no sections.
async fn read_info(session: &mut Session) -> Result<Info, Failure> {
    let client = session.client().await?;
    let mut reply = client.cmd(&["INFO", "all"]).await?;
    if reply.is_error() {
        reply = client.cmd(&["INFO"]).await?;
    }
    match reply {
        Frame::Bulk(text) | Frame::Verbatim { text, .. } => Ok(Info::parse(&String::from_utf8_lossy(&text))),
        Frame::Error(msg) => Err(Failure::Reply(msg)),
        _ => Err(Failure::Usage("the server's reply to INFO is not text".into())),
    }
}

pub(crate) async fn run(
    session: &mut Session,
    out: &mut Out,
    watch: bool,
    count: Option<u64>,
) -> Result<Exit, Failure> {
    let addr = session.config.addr();
    let clear = watch && out.mode == Mode::Human && std::io::stdout().is_terminal();
    let mut before = read_info(session).await?;
    let mut taken = Instant::now();
    let mut shown = 0u64;
    loop {
        // Wait a second (the sampling interval), or stop at Ctrl-C when watching.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c(), if watch => return Ok(Exit::Ok),
        }
        let now = read_info(session).await?;
        let elapsed = taken.elapsed();
        taken = Instant::now();
        let summary = Summary::new(&now, Some((&before, elapsed)));
        match out.mode {
            Mode::Json => {
                out.json(&json!({ "address": addr, "summary": summary.to_json(), "info": now.to_json() }))?;
            }
            _ => {
                if clear {
                    out.write(b"\x1b[2J\x1b[H")?;
                }
                out.write(summary.to_text(&addr).as_bytes())?;
                if watch && !clear {
                    out.write(b"\n")?;
                }
            }
        }
        out.flush()?;
        shown += 1;
        if !watch || count.is_some_and(|c| shown >= c) {
            return Ok(Exit::Ok);
        }
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGPIE: &str = "# Server\r\nredis_version:7.0.15\r\nmagpie_version:0.1.0\r\nuptime_in_seconds:7500\r\n\r\n\
        # Clients\r\nconnected_clients:3\r\nmaxclients:10000\r\n\r\n# Memory\r\nused_memory:12897484\r\n\
        used_memory_rss:21076377\r\nused_memory_peak:14680064\r\nmaxmemory:0\r\n\r\n# Stats\r\n\
        total_commands_processed:5000\r\ninstantaneous_ops_per_sec:7\r\nkeyspace_hits:9980\r\nkeyspace_misses:253\r\n\r\n\
        # Commandstats\r\ncmdstat_get:calls=10,usec=5,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n\r\n\
        # Keyspace\r\ndb0:keys=1000,expires=10,avg_ttl=0\r\ndb1:keys=204,expires=0,avg_ttl=0\r\n\r\n\
        # Magpie\r\nkeys:1204\r\nexpires:10\r\nvalue_bytes:3565123\r\nkey_ops_get:10233\r\nkey_ops_set:1204\r\nkey_ops_del:12\r\n";

    #[test]
    fn info_parses_into_ordered_sections() {
        let info = Info::parse(MAGPIE);
        let names: Vec<&str> = info.sections.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Server", "Clients", "Memory", "Stats", "Commandstats", "Keyspace", "Magpie"]);
        assert_eq!(info.get("cmdstat_get"), Some("calls=10,usec=5,usec_per_call=0.50,rejected_calls=0,failed_calls=0"));
        assert_eq!(info.keyspace_sum("keys"), Some(1204));
        let json = info.to_json();
        assert_eq!(json["keyspace"]["db1"], "keys=204,expires=0,avg_ttl=0");
        assert_eq!(json["magpie"]["value_bytes"], "3565123");
    }

    #[test]
    fn summary_of_magpie() {
        let mut before = Info::parse(MAGPIE);
        before.sections[3].1[0].1 = "3476".into(); // total_commands_processed a second earlier
        let s = Summary::new(&Info::parse(MAGPIE), Some((&before, Duration::from_secs(1))));
        assert_eq!(s.ops_per_sec, Some(1523.0));
        assert!(s.ops_sampled);
        let text = s.to_text("127.0.0.1:6379");
        assert_eq!(
            text,
            "Magpie 0.1.0 at 127.0.0.1:6379, up 2h 5m\n\
             keys        1,204 (10 with an expiry)\n\
             values      3.40 MiB (3,565,123 bytes)\n\
             key ops     get 10,233, set 1,204, del 12\n\
             ops/s       1,523 (measured over 1 s)\n\
             hit rate    97.5% (9,980 hits, 253 misses)\n\
             memory      12.3 MiB used, 20.1 MiB RSS, 14.0 MiB peak, no limit\n\
             clients     3 connected (max 10,000)\n\
             totals      5,000 commands, n/a connections, n/a keys expired, n/a evicted\n"
        );
        // With a limit: how full, and the policy; evictions counted.
        let limited = MAGPIE
            .replace("maxmemory:0", "maxmemory:16777216\r\nmaxmemory_policy:allkeys-lru")
            .replace("keyspace_hits", "evicted_keys:42\r\nkeyspace_hits");
        let text = Summary::new(&Info::parse(&limited), None).to_text("a");
        assert!(
            text.contains(
                "memory      12.3 MiB used, 20.1 MiB RSS, 14.0 MiB peak, limit 16.0 MiB (76.9% used, allkeys-lru)\n"
            ),
            "{text}"
        );
        assert!(text.contains("keys expired, 42 evicted"), "{text}");
        let json = s.to_json();
        assert_eq!(json["keys"], 1204);
        assert_eq!(json["key_ops"]["del"], 12);
        assert_eq!(json["hit_rate"].as_f64().map(|r| (r * 1000.0).round()), Some(975.0));
    }

    #[test]
    fn missing_fields_are_not_available_not_errors() {
        // What redis-server reports: no Magpie section, keys from Keyspace.
        let redis = "# Server\r\nredis_version:7.0.15\r\n# Stats\r\nkeyspace_hits:0\r\nkeyspace_misses:0\r\n\
            # Keyspace\r\ndb0:keys=5,expires=1,avg_ttl=0\r\n";
        let s = Summary::new(&Info::parse(redis), None);
        assert_eq!(
            (s.server.as_str(), s.keys, s.expires, s.value_bytes, s.gets),
            ("redis", Some(5), Some(1), None, None)
        );
        let text = s.to_text("h:1");
        assert!(text.starts_with("Server 7.0.15 at h:1, up n/a\n"), "{text}");
        assert!(text.contains("values      n/a\n"));
        assert!(text.contains("hit rate    n/a (no reads yet)\n"));
        assert_eq!(s.to_json()["value_bytes"], Value::Null);
        // And nothing at all still makes a summary.
        let empty = Summary::new(&Info::parse(""), None);
        assert!(empty.to_text("h:1").contains("keys        n/a\n"));
        // An empty Keyspace section means no keys.
        assert_eq!(Summary::new(&Info::parse("# Keyspace\r\n"), None).keys, Some(0));
    }
}
