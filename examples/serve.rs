//! The recommendation server: loads an artifact bundle, reads product details from
//! MongoDB, serves the routes of `recsys-server` (see docs/serving.md).
//!
//!   cargo run --release -p recsys-examples --example serve -- --bundle model.bundle \
//!       --port 8002 --images ../shared/images
//!
//! Every flag has an environment variable (RECSYS_BUNDLE, RECSYS_PORT, MONGODB_URI, …).
//! With a database, POST /events takes live events (docs/serving.md): they change this
//! server's answers at once and other replicas' within --events-poll-ms.
//! SIGHUP reloads the bundle file (or POST /admin/reload with --admin-reload, and the
//! bearer token of RECSYS_ADMIN_TOKEN beyond loopback); SIGTERM and Ctrl-C shut down
//! gracefully. Contradictory flags (e.g. --default-n above --max-n) are refused at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use recsys_server::{
    load_bundle, serve, shutdown_signal, AppState, Compute, EventStore, LiveLimits, MemoryEvents,
    MongoEvents, MongoProducts, ProductSource, ServerConfig,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event.
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ComputeFlag {
    /// tokio's blocking pool.
    Blocking,
    /// On the async worker (default: faster, shorter latency tail; docs/serving.md).
    Inline,
}

/// Serve recommendations over HTTP from an artifact bundle.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The bundle file (written by the train example); with --from-store, the model to
    /// start from until a published one arrives.
    #[arg(long, env = "RECSYS_BUNDLE", required_unless_present = "from_store")]
    bundle: Option<PathBuf>,
    /// Serve the model published through the database (`train --publish`): start from the
    /// `current` model (unless --bundle is given), poll the pointer every --store-poll-ms
    /// and swap in each new model after checking it; a damaged or mismatched one is refused
    /// (shown by /ready) and the old one keeps serving.
    #[arg(long, requires = "mongodb_uri")]
    from_store: bool,
    /// How often --from-store looks at the `current` pointer, in milliseconds.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..))]
    store_poll_ms: u64,
    /// Address to listen on.
    #[arg(long, env = "RECSYS_HOST", default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Port to listen on; 0 picks a free one, named by the `listening` log line (with
    /// `--log-format json`: `fields.address` of the line whose `fields.message` is
    /// "listening").
    #[arg(long, env = "RECSYS_PORT", default_value_t = 8002)]
    port: u16,
    /// MongoDB URI for product details; without it, details come from the bundle.
    #[arg(long, env = "MONGODB_URI")]
    mongodb_uri: Option<String>,
    /// Database name (default: the URI's, else "recsys").
    #[arg(long, env = "RECSYS_DB")]
    database: Option<String>,
    /// Do not use a database even if MONGODB_URI is set.
    #[arg(long)]
    no_db: bool,
    /// Folder served by GET /image/{file}.
    #[arg(long, env = "RECSYS_IMAGES")]
    images: Option<PathBuf>,
    /// Default n.
    #[arg(long, env = "RECSYS_DEFAULT_N", default_value_t = 10)]
    default_n: usize,
    /// Largest n accepted.
    #[arg(long, env = "RECSYS_MAX_N", default_value_t = 100)]
    max_n: usize,
    /// Product details cached (entries).
    #[arg(long, env = "RECSYS_CACHE_ENTRIES", default_value_t = 100_000)]
    cache_entries: usize,
    /// Do not warm the cache with one scan of the products collection at start-up (and
    /// every TTL/2).
    #[arg(long, env = "RECSYS_NO_PRELOAD")]
    no_preload: bool,
    /// Read the products collection every this many seconds (and at start-up and after a
    /// model swap) to serve products added after training, from their attributes (models
    /// with product attribute features only); 0: serve only the model's products. Each
    /// read scans the collection.
    #[arg(long, env = "RECSYS_NEW_PRODUCTS_SECS", default_value_t = 60)]
    new_products_secs: u64,
    /// Seconds a cached product detail is served.
    #[arg(long, env = "RECSYS_CACHE_TTL_SECS", default_value_t = 300)]
    cache_ttl_secs: u64,
    /// Time limit of a database query, in milliseconds.
    #[arg(long, env = "RECSYS_DB_TIMEOUT_MS", default_value_t = 500)]
    db_timeout_ms: u64,
    /// Ping the database every this many milliseconds (up or down): a dead database is
    /// noticed, and a returning one ends degraded mode, within this interval.
    #[arg(long, env = "RECSYS_DB_RETRY_MS", default_value_t = 2000)]
    db_retry_ms: u64,
    /// Where recommendations are computed.
    #[arg(long, env = "RECSYS_COMPUTE", value_enum, default_value = "inline")]
    compute: ComputeFlag,
    /// Async worker threads (default: one per core).
    #[arg(long, env = "RECSYS_WORKERS")]
    workers: Option<usize>,
    /// Most threads of the blocking pool (recommendations run there).
    #[arg(long, env = "RECSYS_BLOCKING_THREADS", default_value_t = 64)]
    blocking_threads: usize,
    /// Serve POST /admin/reload (SIGHUP always reloads).
    #[arg(long, env = "RECSYS_ADMIN_RELOAD")]
    admin_reload: bool,
    /// Bearer token required by the admin routes (required when --host is not a loopback
    /// address and --admin-reload is on). Prefer the environment variable: flags show in
    /// process lists.
    #[arg(long, env = "RECSYS_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Close a connection whose request head (line and headers) takes longer than this
    /// many milliseconds from its first byte.
    #[arg(long, env = "RECSYS_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    header_timeout_ms: u64,
    /// Close a connection idle (no request in progress) longer than this many
    /// milliseconds.
    #[arg(long, env = "RECSYS_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    idle_timeout_ms: u64,
    /// Most connections served at once; more are answered 503 and closed. Keep it below
    /// the process's file descriptor limit (ulimit -n).
    #[arg(long, env = "RECSYS_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Log format.
    #[arg(long, env = "RECSYS_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Do not serve POST /events even with a database (no live events, no poller).
    #[arg(long, env = "RECSYS_NO_EVENTS")]
    no_events: bool,
    /// Read what other replicas stored every this many milliseconds: the delay before an
    /// event is visible on another replica.
    #[arg(long, env = "RECSYS_EVENTS_POLL_MS", default_value_t = 1000)]
    events_poll_ms: u64,
    /// Most events in one POST /events (more: 413).
    #[arg(long, env = "RECSYS_EVENTS_MAX_BATCH", default_value_t = 1000)]
    events_max_batch: usize,
    /// Largest POST /events body in bytes (more: 413).
    #[arg(long, env = "RECSYS_EVENTS_MAX_BODY", default_value_t = 1 << 20)]
    events_max_body: usize,
    /// Longest wait for the database to store a batch of events (then 503).
    #[arg(long, env = "RECSYS_EVENTS_TIMEOUT_MS", default_value_t = 5000)]
    events_timeout_ms: u64,
    /// Each poll reads again this far before the previous one (writes in flight, clock
    /// differences between replicas).
    #[arg(long, env = "RECSYS_EVENTS_LOOKBACK_MS", default_value_t = 10_000)]
    events_lookback_ms: u64,
    /// Batches older than this are pruned from the recent_events collection.
    #[arg(long, env = "RECSYS_EVENTS_RETENTION_SECS", default_value_t = 60)]
    events_retention_secs: u64,
    /// Most users held in the live state (least recently active evicted first).
    #[arg(long, env = "RECSYS_LIVE_MAX_USERS", default_value_t = 100_000)]
    live_max_users: usize,
    /// Most recent products held per user (oldest dropped first).
    #[arg(long, env = "RECSYS_LIVE_MAX_EVENTS_PER_USER", default_value_t = 50)]
    live_max_events_per_user: usize,
    /// Live events older than this many seconds are forgotten.
    #[arg(long, env = "RECSYS_LIVE_MAX_AGE_SECS", default_value_t = 86_400)]
    live_max_age_secs: u64,
    /// Serve the demo storefront at http://HOST:PORT/ (product grid, product pages with
    /// "customers also viewed" and "recommended for you", a new visitor whose clicks are
    /// posted as events). Without a database, its events are kept in memory only.
    #[arg(long, env = "RECSYS_DEMO_UI")]
    demo_ui: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("RECSYS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime
        .enable_all()
        .max_blocking_threads(args.blocking_threads.max(1));
    if let Some(workers) = args.workers {
        runtime.worker_threads(workers.max(1));
    }
    runtime.build()?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = ServerConfig {
        bundle_path: args.bundle.clone(),
        image_dir: args.images.clone(),
        default_n: args.default_n,
        max_n: args.max_n,
        cache_capacity: args.cache_entries,
        preload_details: !args.no_preload,
        cache_ttl: Duration::from_secs(args.cache_ttl_secs),
        db_timeout: Duration::from_millis(args.db_timeout_ms),
        db_retry_interval: Duration::from_millis(args.db_retry_ms),
        compute: match args.compute {
            ComputeFlag::Blocking => Compute::Blocking,
            ComputeFlag::Inline => Compute::Inline,
        },
        admin_routes: args.admin_reload,
        admin_token: args.admin_token.clone(),
        header_timeout: Duration::from_millis(args.header_timeout_ms),
        idle_timeout: Duration::from_millis(args.idle_timeout_ms),
        max_connections: args.max_connections,
        events_max_batch: args.events_max_batch,
        events_max_body: args.events_max_body,
        events_timeout: Duration::from_millis(args.events_timeout_ms),
        events_poll_interval: Duration::from_millis(args.events_poll_ms),
        events_lookback: Duration::from_millis(args.events_lookback_ms),
        events_retention: Duration::from_secs(args.events_retention_secs),
        live: LiveLimits {
            max_users: args.live_max_users,
            max_events_per_user: args.live_max_events_per_user,
            max_age: Duration::from_secs(args.live_max_age_secs),
        },
        demo_ui: args.demo_ui,
        new_products_interval: (args.new_products_secs > 0)
            .then(|| Duration::from_secs(args.new_products_secs)),
        ..ServerConfig::default()
    };
    // Refuse contradictory flags, and admin routes open to the network without a token,
    // before spending seconds on the bundle (serve checks both again).
    config.validate()?;
    recsys_server::check_admin_exposure(&config, SocketAddr::new(args.host, args.port))?;
    let started = std::time::Instant::now();
    let store = match (&args.mongodb_uri, args.from_store) {
        (Some(uri), true) => {
            let (uri, database) = (uri.trim().to_string(), args.database.clone());
            // The sync driver runs on the blocking pool, never on an async worker.
            let store = tokio::task::spawn_blocking(move || {
                recsys_examples::connect_store(&uri, database.as_deref())
            })
            .await??;
            Some(store)
        }
        _ => None,
    };
    let (bundle, origin) = match (&args.bundle, &store) {
        (Some(path), _) => {
            let file = path.clone();
            let bundle = tokio::task::spawn_blocking(move || load_bundle(&file))
                .await?
                .with_context(|| format!("loading {}", path.display()))?;
            (bundle, None)
        }
        (None, Some(store)) => {
            let (bundle, origin) = recsys_server::load_current(store)
                .await
                .context("loading the published model")?;
            (bundle, Some(origin))
        }
        (None, None) => anyhow::bail!("give --bundle, or --from-store with --mongodb-uri"),
    };
    tracing::info!(
        source = %args.bundle.as_ref().map_or("the store".to_string(), |p| p.display().to_string()),
        model_version = %bundle.metadata().model_id,
        items = bundle.items().len(),
        users = bundle.users().len(),
        seconds = started.elapsed().as_secs_f64(),
        "bundle loaded"
    );
    let source: Option<Arc<dyn ProductSource>> = match (&args.mongodb_uri, args.no_db) {
        (Some(uri), false) if !uri.trim().is_empty() => {
            let products =
                MongoProducts::connect(uri.trim(), args.database.as_deref(), config.db_timeout)
                    .await
                    .context("MongoDB connection string")?;
            Some(Arc::new(products))
        }
        _ => None,
    };
    let events: Option<Arc<dyn EventStore>> = match (
        &args.mongodb_uri,
        args.no_db || args.no_events,
    ) {
        (Some(uri), false) if !uri.trim().is_empty() => {
            let events =
                MongoEvents::open(uri.trim(), args.database.as_deref(), config.events_timeout)
                    .await
                    .context("MongoDB connection string")?;
            tracing::info!(store = %events.describe(), poll_ms = args.events_poll_ms, "live events: POST /events");
            Some(Arc::new(events))
        }
        // The storefront's new visitor needs somewhere to send clicks: without a database
        // they live in this process only (lost at exit, not seen by other replicas).
        _ if args.demo_ui && !args.no_events => {
            tracing::info!("live events: POST /events, kept in memory (no database)");
            Some(Arc::new(MemoryEvents::new()))
        }
        _ => None,
    };
    let described = source.as_ref().map(|s| s.describe());
    let state = AppState::with_events(bundle, source, events, config);
    let database = state.details().check().await;
    tracing::info!(
        database = database.as_str(),
        source = described.as_deref().unwrap_or("bundle only"),
        "product details"
    );
    if let Some(origin) = origin {
        state.set_origin(origin);
    }
    if let Some(store) = store {
        let interval = Duration::from_millis(args.store_poll_ms);
        tracing::info!(
            poll_ms = args.store_poll_ms,
            "following the published model"
        );
        recsys_server::follow_published(&state, store, interval);
    }
    #[cfg(unix)]
    recsys_server::reload_on_sighup(state.clone())?;

    let address = SocketAddr::new(args.host, args.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding {address}"))?;
    // The bound address, so `--port 0` (a free port) can be found: tests and scripts read
    // it from this line.
    let address = listener
        .local_addr()
        .with_context(|| format!("reading the address bound for {address}"))?;
    tracing::info!(%address, "listening");
    if args.demo_ui {
        tracing::info!("demo storefront: http://{address}/");
    }
    serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
