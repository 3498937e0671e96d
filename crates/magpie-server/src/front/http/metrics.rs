//! `GET /metrics`: the Prometheus exposition (OpenMetrics text), written by prometheus-client
//! from an explicit registry. Nothing is counted twice: the figures are read at each scrape
//! from INFO's own sources (the per-thread command counters, the keyspace's per-database
//! statistics, the clients, the allocator, persistence), so a scrape costs the hot path
//! nothing. Counters are totals since start: CONFIG RESETSTAT, which INFO honours, does not
//! move them backwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::Http;
use crate::core::alloc;
use crate::exec::TABLE;
use crate::services::Server;
use crate::services::stats::{LATENCY_BUCKETS, Totals};

/// The registry, and what only the HTTP service counts (its answers by status).
pub(super) struct Exporter {
    registry: Registry,
    requests: Arc<Requests>,
}

/// HTTP answers by status code (100-599), counted as they leave.
#[derive(Debug)]
struct Requests([AtomicU64; 500]);

impl Exporter {
    pub(super) fn new(server: Arc<Server>) -> Exporter {
        let requests = Arc::new(Requests(std::array::from_fn(|_| AtomicU64::new(0))));
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ServerCollector { server }));
        registry.register_collector(Box::new(requests.clone()));
        Exporter { registry, requests }
    }

    pub(super) fn count_request(&self, status: u16) {
        if let Some(c) = status.checked_sub(100).and_then(|i| self.requests.0.get(usize::from(i))) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

pub(super) async fn scrape(State(http): State<Arc<Http>>) -> Response {
    match http.metrics.encode() {
        Ok(text) => {
            let mut resp = text.into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            resp
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed").into_response(),
    }
}

type Enc<'a> = DescriptorEncoder<'a>;
type Fmt = Result<(), std::fmt::Error>;

fn counter(enc: &mut Enc<'_>, name: &str, help: &str, v: u64) -> Fmt {
    enc.encode_descriptor(name, help, None, MetricType::Counter)?.encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge(enc: &mut Enc<'_>, name: &str, help: &str, unit: Option<&Unit>, v: f64) -> Fmt {
    enc.encode_descriptor(name, help, unit, MetricType::Gauge)?.encode_gauge(&v)
}

/// A metric with one label, one sample per `(label value, value)`.
fn family(
    enc: &mut Enc<'_>,
    (name, help, kind): (&str, &str, MetricType),
    label: &str,
    samples: impl Iterator<Item = (String, u64)>,
) -> Fmt {
    let mut m: MetricEncoder<'_> = enc.encode_descriptor(name, help, None, kind)?;
    for (value, n) in samples {
        let labels = [(label, value)];
        let mut sample = m.encode_family(&labels)?;
        match kind {
            MetricType::Counter => sample.encode_counter::<NoLabelSet, _, u64>(&n, None)?,
            _ => sample.encode_gauge(&n)?,
        }
    }
    Ok(())
}

/// Reads the server's figures at each scrape.
struct ServerCollector {
    server: Arc<Server>,
}

impl std::fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerCollector")
    }
}

impl Collector for ServerCollector {
    fn encode(&self, mut enc: Enc<'_>) -> Fmt {
        let s = &*self.server;
        let totals = Totals::read();
        let dbs: Vec<_> = s.keyspace().dbs().iter().map(magpie_store::Db::stats).collect();
        let db_samples = |f: fn(&magpie_store::DbStats) -> u64| {
            dbs.iter().enumerate().map(move |(i, d)| (i.to_string(), f(d))).collect::<Vec<_>>().into_iter()
        };
        family(&mut enc, ("magpie_keys", "Keys per database", MetricType::Gauge), "db", db_samples(|d| d.keys))?;
        family(
            &mut enc,
            ("magpie_keys_with_expiry", "Keys with a time to live, per database", MetricType::Gauge),
            "db",
            db_samples(|d| d.expires),
        )?;
        gauge(
            &mut enc,
            "magpie_value",
            "Bytes held by values (the keyspace's own accounting)",
            Some(&Unit::Bytes),
            dbs.iter().map(|d| d.value_bytes).sum::<u64>() as f64,
        )?;
        let ops = ["get", "set", "del"].iter().zip(totals.key_ops).map(|(op, n)| (op.to_string(), n));
        family(
            &mut enc,
            (
                "magpie_key_operations",
                "Keys read (get), written (set) and deleted (del) by commands",
                MetricType::Counter,
            ),
            "op",
            ops,
        )?;
        counter(&mut enc, "magpie_keyspace_hits", "Lookups of keys that found them", totals.hits)?;
        counter(&mut enc, "magpie_keyspace_misses", "Lookups of keys that did not find them", totals.misses)?;
        counter(
            &mut enc,
            "magpie_expired_keys",
            "Keys removed because they expired",
            dbs.iter().map(|d| d.expired).sum(),
        )?;
        counter(&mut enc, "magpie_commands_processed", "Commands run", totals.commands)?;
        counter(&mut enc, "magpie_error_replies", "Error replies sent", totals.error_replies)?;
        self.commands(&mut enc, &totals)?;
        let errors = totals.errors.iter().map(|(code, n)| (String::from_utf8_lossy(code).into_owned(), *n));
        family(&mut enc, ("magpie_errors", "Error replies by code", MetricType::Counter), "code", errors)?;
        counter(&mut enc, "magpie_net_input_bytes", "Bytes read from clients", totals.net_in)?;
        counter(&mut enc, "magpie_net_output_bytes", "Bytes written to clients", totals.net_out)?;
        // Clients.
        let clients = s.clients();
        gauge(
            &mut enc,
            "magpie_connected_clients",
            "Clients connected now (RESP connections, HTTP requests in flight, open HTTP transactions and subscriptions)",
            None,
            clients.len() as f64,
        )?;
        counter(
            &mut enc,
            "magpie_connections_received",
            "Connections accepted (RESP and HTTP)",
            clients.accepted.load(Ordering::Relaxed),
        )?;
        counter(
            &mut enc,
            "magpie_rejected_connections",
            "Connections refused (maxclients)",
            clients.rejected.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut enc,
            "magpie_blocked_clients",
            "Clients waiting in a blocking command",
            None,
            s.blocking().blocked() as f64,
        )?;
        // Memory.
        let usage = alloc::usage();
        gauge(
            &mut enc,
            "magpie_memory_used",
            "Memory the allocator has committed",
            Some(&Unit::Bytes),
            usage.committed as f64,
        )?;
        gauge(
            &mut enc,
            "magpie_memory_peak",
            "Most memory the allocator has committed",
            Some(&Unit::Bytes),
            usage.peak_committed as f64,
        )?;
        gauge(
            &mut enc,
            "magpie_memory_rss",
            "Resident set size of the process",
            Some(&Unit::Bytes),
            crate::core::alloc::resident() as f64,
        )?;
        gauge(
            &mut enc,
            "magpie_uptime",
            "Time since the server started",
            Some(&Unit::Seconds),
            s.metrics().started().elapsed().as_secs_f64(),
        )?;
        // Persistence: the fields of INFO persistence that are numbers or ok/err.
        let mut info = String::new();
        s.persistence().info(&mut info);
        let mut m = enc.encode_descriptor(
            "magpie_persistence",
            "INFO persistence's fields (loading, rdb_*, aof_*; ok is 1, err is 0)",
            None,
            MetricType::Gauge,
        )?;
        for (field, value) in info.lines().filter_map(|l| l.split_once(':')) {
            let n = match value.trim() {
                "ok" => 1.0,
                "err" => 0.0,
                v => match v.parse::<f64>() {
                    Ok(n) if n.is_finite() => n,
                    _ => continue,
                },
            };
            let labels = [("field", field.to_owned())];
            m.encode_family(&labels)?.encode_gauge(&n)?;
        }
        Ok(())
    }
}

impl ServerCollector {
    /// Per command: calls, failed and rejected calls, and the latency histogram.
    fn commands(&self, enc: &mut Enc<'_>, totals: &Totals) -> Fmt {
        let used: Vec<_> = TABLE
            .names()
            .iter()
            .zip(&totals.cmds)
            .filter(|(_, c)| c.calls > 0 || c.rejected > 0 || c.failed > 0)
            .collect();
        let per = |f: fn(&crate::services::stats::CmdTotals) -> u64| {
            used.iter().map(move |(name, c)| (name.to_string(), f(c))).collect::<Vec<_>>().into_iter()
        };
        family(enc, ("magpie_command_calls", "Calls per command", MetricType::Counter), "command", per(|c| c.calls))?;
        family(
            enc,
            ("magpie_command_failed_calls", "Calls that replied with an error, per command", MetricType::Counter),
            "command",
            per(|c| c.failed),
        )?;
        family(
            enc,
            (
                "magpie_command_rejected_calls",
                "Calls refused before running (arity, ACL...), per command",
                MetricType::Counter,
            ),
            "command",
            per(|c| c.rejected),
        )?;
        let mut m = enc.encode_descriptor(
            "magpie_command_duration",
            "Time commands took to run (each call of a pipelined run of one command counts at the run's average)",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (name, c) in &used {
            let mut buckets = Vec::with_capacity(LATENCY_BUCKETS);
            for (i, n) in c.latency.iter().enumerate() {
                let upper = if i + 1 == LATENCY_BUCKETS { f64::INFINITY } else { (1u64 << i) as f64 / 1e6 };
                buckets.push((upper, *n));
            }
            let count = c.latency.iter().sum();
            let labels = [("command", name.to_string())];
            m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(c.nanos as f64 / 1e9, count, &buckets, None)?;
        }
        Ok(())
    }
}

impl Collector for Requests {
    fn encode(&self, mut enc: Enc<'_>) -> Fmt {
        let samples = self
            .0
            .iter()
            .enumerate()
            .map(|(i, c)| ((i + 100).to_string(), c.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0);
        family(
            &mut enc,
            ("magpie_http_requests", "HTTP requests answered, by status", MetricType::Counter),
            "status",
            samples,
        )
    }
}
