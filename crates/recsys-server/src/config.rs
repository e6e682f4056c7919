//! Server configuration (the example binary fills it from flags and environment variables).

use std::path::PathBuf;
use std::time::Duration;

/// Where recommendation CPU work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compute {
    /// On tokio's blocking pool (`spawn_blocking`): the async workers never stall on a
    /// scoring pass, but under load many pool threads time-slice the 2 cores and the
    /// latency tail grows (p99 25 ms vs 10 ms at 16 connections, docs/benchmarks.md).
    Blocking,
    /// On the async worker that received the request (the default): one scoring pass
    /// (well under 1 ms for 68,509 items) per worker at a time, in arrival order — higher
    /// throughput and a shorter tail than the blocking pool on this workload.
    #[default]
    Inline,
}

/// Everything the router needs to know besides the bundle and the product source.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The bundle file: reloads read it again. `None` for an in-process bundle (reload then
    /// answers "no bundle path").
    pub bundle_path: Option<PathBuf>,
    /// Folder served by `GET /image/{file}`; `None` answers 404 for every image.
    pub image_dir: Option<PathBuf>,
    /// `n` when the request does not say (the seed's 10).
    pub default_n: usize,
    /// Largest `n` accepted (400 above).
    pub max_n: usize,
    /// Longest user or product id accepted, in bytes (400 above).
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
    /// Time limit of one database query (and of server selection): a dead database costs
    /// this, once, before the server switches to degraded mode.
    pub db_timeout: Duration,
    /// While the database is down, how often it is pinged to detect its return.
    pub db_retry_interval: Duration,
    /// Where recommendation runs.
    pub compute: Compute,
    /// Serve `POST /admin/reload` (off by default: reload with SIGHUP instead).
    pub admin_routes: bool,
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
        }
    }
}
