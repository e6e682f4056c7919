//! Prometheus metrics in the text exposition format, without a metrics library: request
//! counts per route and status, latency histograms per route, reloads, degraded
//! responses; the database and model gauges are read from the state when scraped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::details::DatabaseState;
use crate::state::AppState;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// The route label of requests no route matched (404s): one fixed value, so a client
/// probing random paths cannot grow the number of series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Series {
    /// (route template, status) → count.
    requests: BTreeMap<(Arc<str>, u16), u64>,
    /// route template → latency histogram.
    latency: BTreeMap<Arc<str>, Histogram>,
}

/// Connection counters of [`crate::serve`] (exported by `/metrics`).
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Connections being served now.
    pub open: AtomicU64,
    /// Connections accepted and served.
    pub accepted: AtomicU64,
    /// Connections answered 503 and closed because the limit was reached.
    pub refused: AtomicU64,
    /// Connections closed because they were idle too long.
    pub idle_closed: AtomicU64,
    /// Connections closed because the request head came too slowly.
    pub header_closed: AtomicU64,
    /// Connections closed because the client did not read its response.
    pub write_closed: AtomicU64,
    /// `accept` failures (e.g. no file descriptor left).
    pub accept_errors: AtomicU64,
}

/// The metrics of one server.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<Series>,
    /// Reloads that swapped in a new bundle.
    pub reloads_ok: AtomicU64,
    /// Reloads refused (the old bundle kept serving).
    pub reloads_failed: AtomicU64,
    /// Responses served in degraded mode (details from the bundle, database down).
    pub degraded_responses: AtomicU64,
    /// Responses that answered a panic (500).
    pub panics: AtomicU64,
    /// Connection counters (only [`crate::serve`] updates them).
    pub connections: ConnectionCounters,
    /// Events stored (answered 200).
    pub events_accepted: AtomicU64,
    /// Events refused for bad input (400 or 413; a body that could not be read counts 1).
    pub events_rejected: AtomicU64,
    /// Events refused because the database did not store them (503).
    pub events_failed: AtomicU64,
    /// Events of other replicas applied by the poller.
    pub events_polled: AtomicU64,
    /// Polls of the recent-events collection that failed.
    pub events_poll_errors: AtomicU64,
    /// When the last successful poll started (Unix milliseconds; 0: none yet).
    pub events_last_poll_ms: AtomicU64,
    /// Reads of the products collection for products added after training that succeeded.
    pub new_products_syncs: AtomicU64,
    /// Reads of the products collection for products added after training that failed.
    pub new_products_sync_errors: AtomicU64,
    /// When the last successful read started (Unix milliseconds; 0: none yet).
    pub new_products_last_sync_ms: AtomicU64,
    /// Products unknown to the model skipped by the last read because none of their
    /// attribute values is a feature of the model.
    pub new_products_without_features: AtomicU64,
}

impl Metrics {
    /// Records one request. `route` is the template of the route that answered (axum's
    /// [`MatchedPath`](axum::extract::MatchedPath)), or [`UNMATCHED_ROUTE`]: label values
    /// are bounded by the router's routes.
    pub(crate) fn observe(&self, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut s = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let route: Arc<str> = match s.latency.get_key_value(route) {
            Some((known, _)) => known.clone(),
            None => Arc::from(route),
        };
        *s.requests.entry((route.clone(), status)).or_insert(0) += 1;
        let h = s.latency.entry(route).or_default();
        h.count += 1;
        h.sum += seconds;
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| seconds <= b) {
            h.buckets[i] += 1;
        }
    }

    /// The request series in the exposition format.
    pub fn render_requests(&self, out: &mut String) {
        let s = {
            let guard = self.series.lock().unwrap_or_else(|e| e.into_inner());
            (guard.requests.clone(), guard.latency.clone())
        };
        let (requests, latency) = s;
        out.push_str(
            "# HELP recsys_http_requests_total HTTP requests by route template and status.\n",
        );
        out.push_str("# TYPE recsys_http_requests_total counter\n");
        for ((route, status), n) in &requests {
            let _ = writeln!(
                out,
                "recsys_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP recsys_http_request_duration_seconds Time to produce a response, by route template.\n");
        out.push_str("# TYPE recsys_http_request_duration_seconds histogram\n");
        for (route, h) in &latency {
            let mut cumulative = 0;
            for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "recsys_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "recsys_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "recsys_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "recsys_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
    }

    /// Adds one counter or gauge (HELP, TYPE and one unlabelled sample).
    pub fn render_scalar(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }

    /// The connection series in the exposition format.
    pub fn render_connections(&self, out: &mut String) {
        let c = &self.connections;
        Metrics::render_scalar(
            out,
            "recsys_http_connections_open",
            "gauge",
            "Connections being served now.",
            Metrics::get(&c.open),
        );
        Metrics::render_scalar(
            out,
            "recsys_http_connections_accepted_total",
            "counter",
            "Connections accepted and served.",
            Metrics::get(&c.accepted),
        );
        Metrics::render_scalar(
            out,
            "recsys_http_connections_refused_total",
            "counter",
            "Connections answered 503 and closed at the connection limit.",
            Metrics::get(&c.refused),
        );
        let _ = writeln!(out, "# HELP recsys_http_connections_closed_total Connections closed by the server, by reason.\n# TYPE recsys_http_connections_closed_total counter");
        for (reason, n) in [
            ("idle", &c.idle_closed),
            ("header_timeout", &c.header_closed),
            ("write_stalled", &c.write_closed),
        ] {
            let _ = writeln!(
                out,
                "recsys_http_connections_closed_total{{reason=\"{reason}\"}} {}",
                Metrics::get(n)
            );
        }
        Metrics::render_scalar(
            out,
            "recsys_http_accept_errors_total",
            "counter",
            "Failed accepts (e.g. no file descriptor left).",
            Metrics::get(&c.accept_errors),
        );
        Metrics::render_scalar(
            out,
            "recsys_http_panics_total",
            "counter",
            "Requests whose handler panicked (answered 500).",
            Metrics::get(&self.panics),
        );
    }

    /// Counter value helper.
    pub fn get(counter: &AtomicU64) -> f64 {
        counter.load(Ordering::Relaxed) as f64
    }
}

/// The whole `/metrics` page: request and connection series, the model serving now,
/// reloads, the database and the product cache (gauges read from `state` now).
pub(crate) fn render(state: &AppState) -> String {
    let mut out = String::with_capacity(4096);
    let m = state.metrics();
    m.render_requests(&mut out);
    let bundle = state.bundle();
    let version = escape_label(&bundle.metadata().model_id);
    out.push_str("# HELP recsys_model_info The model serving now (value 1).\n# TYPE recsys_model_info gauge\n");
    out.push_str(&format!(
        "recsys_model_info{{model_version=\"{version}\",items=\"{}\",users=\"{}\"}} 1\n",
        bundle.items().len(),
        bundle.users().len()
    ));
    Metrics::render_scalar(
        &mut out,
        "recsys_model_loaded_timestamp_seconds",
        "gauge",
        "When the serving bundle was loaded (Unix seconds).",
        state.loaded_at_unix() as f64,
    );
    Metrics::render_scalar(
        &mut out,
        "recsys_model_reloads_total",
        "counter",
        "Reloads that swapped in a new bundle.",
        Metrics::get(&m.reloads_ok),
    );
    Metrics::render_scalar(
        &mut out,
        "recsys_model_reload_failures_total",
        "counter",
        "Reloads refused (the previous bundle kept serving).",
        Metrics::get(&m.reloads_failed),
    );
    let details = state.details();
    let c = details.counters();
    Metrics::render_scalar(
        &mut out,
        "recsys_db_up",
        "gauge",
        "1 when the product database answers, 0 when down, -1 when none is configured.",
        match details.state() {
            DatabaseState::Up => 1.0,
            DatabaseState::Down => 0.0,
            DatabaseState::NotConfigured => -1.0,
        },
    );
    Metrics::render_scalar(
        &mut out,
        "recsys_db_errors_total",
        "counter",
        "Failed product database queries and pings.",
        Metrics::get(&c.db_errors),
    );
    Metrics::render_scalar(
        &mut out,
        "recsys_db_query_timeouts_total",
        "counter",
        "Product database queries slower than the time limit (answered from the bundle).",
        Metrics::get(&c.db_timeouts),
    );
    Metrics::render_scalar(
        &mut out,
        "recsys_db_queries_total",
        "counter",
        "Product database queries sent (one per response at most).",
        Metrics::get(&c.db_queries),
    );
    Metrics::render_scalar(
        &mut out,
        "recsys_degraded_responses_total",
        "counter",
        "Responses whose details came from the bundle because the database was down.",
        Metrics::get(&m.degraded_responses),
    );
    Metrics::render_scalar(
        &mut out,
        "recsys_product_cache_hits_total",
        "counter",
        "Product details answered from the cache.",
        Metrics::get(&c.cache_hits),
    );
    Metrics::render_scalar(
        &mut out,
        "recsys_product_cache_misses_total",
        "counter",
        "Product details not in the cache.",
        Metrics::get(&c.cache_misses),
    );
    Metrics::render_scalar(
        &mut out,
        "recsys_product_cache_entries",
        "gauge",
        "Product details held in the cache.",
        details.cached() as f64,
    );
    m.render_connections(&mut out);
    render_events(state, &mut out);
    render_new_products(state, &mut out);
    out
}

/// The series of products added after training.
fn render_new_products(state: &AppState, out: &mut String) {
    let m = state.metrics();
    let served = state.serving().new_items().map_or(0, |x| x.len());
    let scalars = [
        (
            "recsys_new_products",
            "gauge",
            "Products the serving model was not trained on, served from their attributes.",
            served as f64,
        ),
        (
            "recsys_new_products_without_features",
            "gauge",
            "Products unknown to the model not served: none of their attribute values is a feature of the model (last read).",
            Metrics::get(&m.new_products_without_features),
        ),
        (
            "recsys_new_products_syncs_total",
            "counter",
            "Reads of the products collection for products added after training.",
            Metrics::get(&m.new_products_syncs),
        ),
        (
            "recsys_new_products_sync_errors_total",
            "counter",
            "Failed reads of the products collection for products added after training.",
            Metrics::get(&m.new_products_sync_errors),
        ),
        (
            "recsys_new_products_last_sync_timestamp_seconds",
            "gauge",
            "When the last successful read of the products collection for products added after training started (Unix seconds; 0: none yet).",
            Metrics::get(&m.new_products_last_sync_ms) / 1000.0,
        ),
    ];
    for (name, kind, help, value) in scalars {
        Metrics::render_scalar(out, name, kind, help, value);
    }
}

/// The live-event series.
fn render_events(state: &AppState, out: &mut String) {
    let m = state.metrics();
    let scalars = [
        (
            "recsys_events_accepted_total",
            "counter",
            "Events stored durably (POST /events answered 200).",
            Metrics::get(&m.events_accepted),
        ),
        (
            "recsys_events_rejected_total",
            "counter",
            "Events refused for bad input (400 or 413).",
            Metrics::get(&m.events_rejected),
        ),
        (
            "recsys_events_failed_total",
            "counter",
            "Events refused because the database did not store them (503).",
            Metrics::get(&m.events_failed),
        ),
        (
            "recsys_events_polled_total",
            "counter",
            "Events of other replicas applied to the live state by the poller.",
            Metrics::get(&m.events_polled),
        ),
        (
            "recsys_events_poll_errors_total",
            "counter",
            "Failed polls of the recent-events collection.",
            Metrics::get(&m.events_poll_errors),
        ),
        (
            "recsys_events_last_poll_timestamp_seconds",
            "gauge",
            "When the last successful poll of the recent-events collection started (Unix seconds; 0: none yet).",
            Metrics::get(&m.events_last_poll_ms) / 1000.0,
        ),
    ];
    for (name, kind, help, value) in scalars {
        Metrics::render_scalar(out, name, kind, help, value);
    }
    let live = state.live().counts();
    Metrics::render_scalar(
        out,
        "recsys_live_users",
        "gauge",
        "Users with live events held in memory.",
        live.users as f64,
    );
    Metrics::render_scalar(
        out,
        "recsys_live_events",
        "gauge",
        "Live events (user, product) held in memory.",
        live.events as f64,
    );
    Metrics::render_scalar(
        out,
        "recsys_live_evicted_users_total",
        "counter",
        "Users dropped from the live state (user limit or age).",
        live.evicted_users as f64,
    );
}

/// Escapes a label value (backslash, quote, newline).
pub fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe("/health", 200, Duration::from_micros(300));
        m.observe("/health", 200, Duration::from_millis(3));
        m.observe("/health", 404, Duration::from_secs(60));
        let mut out = String::new();
        m.render_requests(&mut out);
        assert!(out.contains("recsys_http_requests_total{route=\"/health\",status=\"200\"} 2"));
        assert!(out.contains("le=\"0.0005\"} 1\n"), "{out}");
        assert!(out.contains("le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("le=\"10\"} 2\n"), "{out}");
        assert!(out.contains("le=\"+Inf\"} 3\n"), "{out}");
    }
}
