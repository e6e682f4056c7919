//! Server configuration (the example binary fills it from flags and environment variables)
//! and its validation.

use std::path::PathBuf;
use std::time::Duration;

/// Where recommendation CPU work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// On tokio's blocking pool (`spawn_blocking`): the async workers never stall on a
    /// scoring pass, but under load many pool threads time-slice the 2 cores and the
    /// latency tail grows (p99 24.6 ms vs 10.32 ms inline at 16 connections with the f32
    /// blend kernel; docs/benchmarks.md, "Where the computation runs").
    Blocking,
    /// On the async worker that received the request (the default): one scoring pass
    /// (well under 1 ms for 68,509 items) per worker at a time, in arrival order — higher
    /// throughput and a shorter tail than the blocking pool on this workload.
    #[default]
    Inline,
}

/// Everything the router needs to know besides the bundle and the product source.
///
/// [`ServerConfig::validate`] refuses contradictory values; [`crate::router`] and
/// [`crate::serve`] call it.
#[derive(Clone)]
pub struct ServerConfig {
    /// The bundle file: reloads read it again. `None` for an in-process bundle (reload then
    /// answers "no bundle path").
    pub bundle_path: Option<PathBuf>,
    /// Folder served by `GET /image/{file}`; `None` answers 404 for every image.
    pub image_dir: Option<PathBuf>,
    /// `n` when the request does not say (the seed's 10); `1..=max_n`.
    pub default_n: usize,
    /// Largest `n` accepted (400 above); at least 1.
    pub max_n: usize,
    /// Longest user or product id accepted, in bytes (400 above); at least 1.
    pub max_id_len: usize,
    /// Most ids accepted in `exclude` (400 above).
    pub max_exclude: usize,
    /// Most user attributes (`attr.<column>=value`) accepted (400 above).
    pub max_attributes: usize,
    /// Product details kept in the cache (entries; about 200 bytes each).
    pub cache_capacity: usize,
    /// Warm the cache at start-up with one scan of the products collection (up to
    /// `cache_capacity - 1` products), and again every `cache_ttl / 2`.
    pub preload_details: bool,
    /// How long a cached product detail may be served before it is fetched again.
    pub cache_ttl: Duration,
    /// Time limit of one database query, ping (and of server selection). A query slower
    /// than this is answered from the bundle; a ping slower than this marks the database
    /// down.
    pub db_timeout: Duration,
    /// How often the database is pinged, whatever its state: a dead database is noticed
    /// within this interval (plus `db_timeout`) even when every request is served from the
    /// cache, and a database that answers again ends degraded mode as fast.
    pub db_retry_interval: Duration,
    /// Where recommendation runs.
    pub compute: Compute,
    /// Serve `POST /admin/reload` (off by default: reload with SIGHUP instead).
    pub admin_routes: bool,
    /// Bearer token required by the admin routes (`Authorization: Bearer <token>`, checked
    /// in constant time). [`crate::serve`] refuses to start with admin routes on a
    /// non-loopback address without one.
    pub admin_token: Option<String>,
    /// Longest time a client may take to send a complete request head (request line and
    /// headers), counted from its first byte; the connection is closed after it.
    pub header_timeout: Duration,
    /// Longest time a connection may stay open without a request in progress (after
    /// accepting it, or after the last response); closed after it.
    pub idle_timeout: Duration,
    /// Most connections served at once; a connection beyond it is answered 503 and closed
    /// (logged, counted in `recsys_http_connections_refused_total`).
    pub max_connections: usize,
    /// Most events in one `POST /events` (more: 413).
    pub events_max_batch: usize,
    /// Largest `POST /events` body in bytes (more: 413).
    pub events_max_body: usize,
    /// Longest wait for the database to store one batch of events (then 503).
    pub events_timeout: Duration,
    /// How often the poller reads the batches other replicas stored: the bound of the
    /// delay before an event is visible on another replica (plus one read).
    pub events_poll_interval: Duration,
    /// How far before its previous poll each poll reads again (writes still in flight,
    /// clock differences between replicas); batches already applied are skipped.
    pub events_lookback: Duration,
    /// Batches older than this are pruned from the recent-events collection (the events
    /// stay in the interactions collection).
    pub events_retention: Duration,
    /// The bounds of the in-memory live state (users, events per user, age).
    pub live: crate::live::LiveLimits,
    /// Serve the demo storefront (`GET /` and `/demo/…`, generated product pictures under
    /// `/image/generated/`); off by default. See the crate documentation.
    pub demo_ui: bool,
    /// How often the products collection is read in full to learn the products the model
    /// was not trained on (added after training) and serve them from their attributes
    /// ([`crate::sync_new_products`]); also right after start-up and after every model
    /// swap. `None`: products the model does not know are not served. Each read is one
    /// scan of the collection, so on FerretDB keep it at a minute or more.
    pub new_products_interval: Option<Duration>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("bundle_path", &self.bundle_path)
            .field("image_dir", &self.image_dir)
            .field("default_n", &self.default_n)
            .field("max_n", &self.max_n)
            .field("max_id_len", &self.max_id_len)
            .field("max_exclude", &self.max_exclude)
            .field("max_attributes", &self.max_attributes)
            .field("cache_capacity", &self.cache_capacity)
            .field("preload_details", &self.preload_details)
            .field("cache_ttl", &self.cache_ttl)
            .field("db_timeout", &self.db_timeout)
            .field("db_retry_interval", &self.db_retry_interval)
            .field("compute", &self.compute)
            .field("admin_routes", &self.admin_routes)
            // Never print the token itself.
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("events_max_batch", &self.events_max_batch)
            .field("events_max_body", &self.events_max_body)
            .field("events_timeout", &self.events_timeout)
            .field("events_poll_interval", &self.events_poll_interval)
            .field("events_lookback", &self.events_lookback)
            .field("events_retention", &self.events_retention)
            .field("live", &self.live)
            .field("demo_ui", &self.demo_ui)
            .field("new_products_interval", &self.new_products_interval)
            .finish()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bundle_path: None,
            image_dir: None,
            default_n: 10,
            max_n: 100,
            max_id_len: 128,
            max_exclude: 1000,
            max_attributes: 32,
            cache_capacity: 100_000,
            preload_details: true,
            cache_ttl: Duration::from_secs(300),
            db_timeout: Duration::from_millis(500),
            db_retry_interval: Duration::from_secs(2),
            compute: Compute::Inline,
            admin_routes: false,
            admin_token: None,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            events_max_batch: 1000,
            events_max_body: 1 << 20,
            events_timeout: Duration::from_secs(5),
            events_poll_interval: Duration::from_millis(1000),
            events_lookback: Duration::from_secs(10),
            events_retention: Duration::from_secs(60),
            live: crate::live::LiveLimits::default(),
            demo_ui: false,
            new_products_interval: Some(Duration::from_secs(60)),
        }
    }
}

/// A configuration value that cannot work, named by its `serve` flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct ConfigError {
    /// The flag of the `serve` example (`--max-n`, …) that carries the value.
    pub flag: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl ServerConfig {
    /// Checks that the values agree: `1 <= default_n <= max_n`, non-zero limits, timeouts
    /// and intervals, a non-blank admin token. The error names the `serve` flag at fault.
    ///
    /// ```
    /// use recsys_server::ServerConfig;
    /// let config = ServerConfig { default_n: 1000, max_n: 100, ..ServerConfig::default() };
    /// assert_eq!(config.validate().unwrap_err().flag, "--default-n");
    /// assert!(ServerConfig::default().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |flag: &'static str, message: String| Err(ConfigError { flag, message });
        if self.max_n == 0 {
            return bad("--max-n", "must be at least 1".into());
        }
        if self.default_n == 0 {
            return bad("--default-n", "must be at least 1".into());
        }
        if self.default_n > self.max_n {
            return bad(
                "--default-n",
                format!(
                    "{} is above --max-n {}: requests without n would be refused",
                    self.default_n, self.max_n
                ),
            );
        }
        if self.max_id_len == 0 {
            return bad("max_id_len", "must be at least 1".into());
        }
        let positive = [
            ("--db-timeout-ms", self.db_timeout),
            ("--db-retry-ms", self.db_retry_interval),
            ("--cache-ttl-secs", self.cache_ttl),
            ("--header-timeout-ms", self.header_timeout),
            ("--idle-timeout-ms", self.idle_timeout),
            ("--events-timeout-ms", self.events_timeout),
            ("--events-poll-ms", self.events_poll_interval),
            ("--live-max-age-secs", self.live.max_age),
            (
                "--new-products-secs",
                self.new_products_interval.unwrap_or(Duration::MAX),
            ),
        ];
        for (flag, value) in positive {
            if value.is_zero() {
                return bad(flag, "must be greater than 0".into());
            }
        }
        for (flag, value) in [
            ("--events-max-batch", self.events_max_batch),
            ("--events-max-body", self.events_max_body),
            ("--live-max-users", self.live.max_users),
            ("--live-max-events-per-user", self.live.max_events_per_user),
        ] {
            if value == 0 {
                return bad(flag, "must be at least 1".into());
            }
        }
        if self.events_retention <= self.events_lookback + self.events_poll_interval {
            return bad(
                "--events-retention-secs",
                format!(
                    "{:?} must be longer than the look-back ({:?}) plus the poll interval ({:?}), or batches are pruned before every replica read them",
                    self.events_retention, self.events_lookback, self.events_poll_interval
                ),
            );
        }
        if self.max_connections == 0 {
            return bad("--max-connections", "must be at least 1".into());
        }
        if let Some(token) = &self.admin_token {
            if token.trim().is_empty() || token.chars().any(|c| c.is_whitespace()) {
                return bad(
                    "--admin-token",
                    "must be non-empty and contain no whitespace".into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contradictory_values_name_their_flag() {
        let flag = |config: ServerConfig| config.validate().map_err(|e| e.flag);
        let base = ServerConfig::default;
        assert_eq!(flag(base()), Ok(()));
        assert_eq!(
            flag(ServerConfig {
                default_n: 0,
                ..base()
            }),
            Err("--default-n")
        );
        assert_eq!(
            flag(ServerConfig {
                default_n: 1000,
                max_n: 100,
                ..base()
            }),
            Err("--default-n")
        );
        assert_eq!(flag(ServerConfig { max_n: 0, ..base() }), Err("--max-n"));
        assert_eq!(
            flag(ServerConfig {
                max_connections: 0,
                ..base()
            }),
            Err("--max-connections")
        );
        assert_eq!(
            flag(ServerConfig {
                idle_timeout: Duration::ZERO,
                ..base()
            }),
            Err("--idle-timeout-ms")
        );
        assert_eq!(
            flag(ServerConfig {
                admin_token: Some(" ".into()),
                ..base()
            }),
            Err("--admin-token")
        );
        assert_eq!(
            flag(ServerConfig {
                default_n: 100,
                max_n: 100,
                ..base()
            }),
            Ok(())
        );
        assert_eq!(
            flag(ServerConfig {
                new_products_interval: Some(Duration::ZERO),
                ..base()
            }),
            Err("--new-products-secs")
        );
        assert_eq!(
            flag(ServerConfig {
                new_products_interval: None,
                ..base()
            }),
            Ok(())
        );
    }

    #[test]
    fn debug_does_not_print_the_token() {
        let config = ServerConfig {
            admin_token: Some("s3cret-token".into()),
            ..ServerConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
