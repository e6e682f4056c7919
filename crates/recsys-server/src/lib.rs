//! recsys-server: the recommendation HTTP server as a library — an axum [`Router`] over
//! an artifact bundle ([`recsys_recommend::Bundle`]), with product details from MongoDB.
//!
//! | route | answers |
//! |---|---|
//! | `GET /similar-products?productId=&userId=&n=` | the seed's contract: `[{name, price, image, product_id}]` |
//! | `GET /recommendations/{user_id}?n=&exclude=&productId=&attr.<col>=` | personalised list with `score` and `reason`; attributes for cold start |
//! | `GET /products/{product_id}/similar?n=` | item-to-item |
//! | `GET /image/{file}` | product images from a folder (no traversal) |
//! | `GET /health`, `GET /ready`, `GET /metrics` | liveness; model + database state; Prometheus text |
//! | `POST /events` | live events, one or an array (only with an [`EventStore`], see [`AppState::with_events`]) |
//! | `POST /admin/reload` | reload the bundle file (only with [`ServerConfig::admin_routes`]; bearer token when [`ServerConfig::admin_token`] is set) |
//! | `GET /`, `/demo/…`, `GET /image/generated/{id}.svg` | the demo storefront: a product grid with search and attribute filters, product pages with "customers also viewed" and "recommended for you", a user switcher with a new visitor whose clicks are posted as events (only with [`ServerConfig::demo_ui`]; docs/serving.md) |
//!
//! * **Bad input** answers 400 with `{"error", "code", "param"}`; unknown parameters are
//!   ignored; no input produces a 5xx (property-tested). Every error, also those answered
//!   by hyper (414, 431) or the framework, has that JSON shape; a panicking handler
//!   answers 500 (logged) instead of dropping the connection. Echoed client values are
//!   clipped to [`ECHO_CHARS`] characters ([`clip`]).
//! * **Connections** ([`serve`]): a connection limit, header-read and idle timeouts.
//! * **Product details** come from one `$in` query per response (through a bounded
//!   cache of two generations with a time to live), in the recommendation's order. When the database
//!   fails, the server marks itself degraded (header `x-recsys-degraded`, `/ready`), logs
//!   once, answers from the bundle's product lookup and pings the database in the
//!   background until it answers again.
//! * **Live events** (`POST /events`, with an [`EventStore`]): validated
//!   with the CSV import's rules, answered 200 only once durable in the database (503
//!   with `Retry-After` when it is down). Every recommendation route then excludes a
//!   user's products since training, and folds in a user the model does not know
//!   (strategy and reason `recent-activity`), from a bounded in-memory [`LiveState`]: fed
//!   at once by this replica's writes, and by a poller ([`spawn_event_poller`], started by
//!   [`serve`]) for what other replicas wrote, every
//!   [`ServerConfig::events_poll_interval`].
//! * **Products added after training** (with a product source and a model with product
//!   attribute features): a background task ([`spawn_new_product_sync`], started by
//!   [`serve`]) reads the products collection at start-up, after every model swap and
//!   every [`ServerConfig::new_products_interval`], and the serving model represents the
//!   products it does not know from their attributes ([`recsys_recommend::NewItems`]):
//!   every recommendation route serves them (reason `…+new-product`), `/products/{id}/similar`
//!   answers for them, their details come from the records read. No request queries the
//!   database for them.
//! * **Hot reload** ([`AppState::reload`], wired to SIGHUP by the example binary) loads
//!   and checks the new bundle on the blocking pool and swaps it atomically
//!   (`arc_swap`); requests in flight keep the bundle they started with; a corrupt or
//!   incompatible file is refused and the old model keeps serving.
//!
//! Run it with `cargo run --release -p recsys-examples --example serve -- --bundle FILE`
//! (see `docs/serving.md`). In-process, e.g. in a test:
//!
//! ```
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use recsys_core::{FitOptions, HybridModel, Hyperparameters, Loss};
//! use recsys_features::{Dataset, FeatureSpec, InMemorySource, InteractionOptions};
//! use recsys_features::{InteractionRecord, ProductRecord, UserRecord};
//! use recsys_recommend::BundleBuilder;
//! use recsys_server::{router, AppState, ServerConfig};
//! use tower::ServiceExt;
//!
//! // A tiny shop: 3 users, 4 products, a seeded collaborative model.
//! let mut shop = InMemorySource::default();
//! for u in 1..=3 {
//!     shop.users.push(UserRecord { user_id: u.into(), attributes: Default::default() });
//! }
//! for p in 10..14 {
//!     shop.products.push(ProductRecord {
//!         product_id: p.into(), name: Some(format!("Product {p}")), price: Some(2.5),
//!         image: Some(format!("{p}.jpg")), attributes: Default::default(),
//!     });
//! }
//! for (u, p) in [(1, 10), (1, 11), (2, 11), (3, 12), (3, 13)] {
//!     shop.interactions.push(InteractionRecord {
//!         user_id: u.into(), product_id: p.into(),
//!         interaction_type: None, weight: None, timestamp: None,
//!     });
//! }
//! let dataset = Dataset::from_source(&mut shop, FeatureSpec::identity_only(), FeatureSpec::identity_only())?;
//! let (train, _) = dataset.logged_interactions(InteractionOptions::binary())?;
//! let params = Hyperparameters::builder().loss(Loss::Warp).no_components(4).seed(1).build()?;
//! let mut model = HybridModel::new(params, dataset.user_features(), dataset.item_features())?;
//! model.fit(&train, FitOptions::epochs(5))?;
//! let bundle = BundleBuilder::new(model, &dataset, train)
//!     .products(shop.products.iter().cloned())
//!     .neighbours(2)
//!     .build()?;
//!
//! // No database: details come from the bundle.
//! let app = router(AppState::new(bundle, None, ServerConfig::default()))?;
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let request = Request::get("/similar-products?userId=1&productId=11&n=2").body(Body::empty())?;
//! let response = runtime.block_on(app.oneshot(request))?;
//! assert_eq!(response.status(), StatusCode::OK);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod config;
mod conn;
mod demo;
mod details;
mod error;
mod events;
mod handlers;
mod image;
mod live;
mod metrics;
mod new_products;
mod published;
mod query;
mod state;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

pub use config::{Compute, ConfigError, ServerConfig};
pub use details::{BoxFuture, DatabaseState, MongoProducts, ProductDetails, ProductSource};
pub use error::{clip, ApiError, ServerError, ECHO_CHARS};
pub use events::{spawn_event_poller, EventStore, EventsAccepted, MemoryEvents, MongoEvents};
pub use live::{LiveCounts, LiveLimits, LiveState};
pub use metrics::{ConnectionCounters, Metrics};
pub use new_products::{spawn_new_product_sync, sync_new_products};
pub use published::{follow_once, follow_published, load_current, Followed};
pub use state::{
    load_bundle, AppState, FollowError, ModelOrigin, RefusedModel, ReloadOutcome, Serving,
    WeakState,
};

/// The router with every route, the JSON 404/405 fallbacks, the panic guard and the
/// metrics layer. Fails when the state's configuration does not validate
/// ([`ServerConfig::validate`]).
pub fn router(state: AppState) -> Result<Router, ConfigError> {
    state.config().validate()?;
    let mut app = Router::new()
        .route("/similar-products", get(handlers::similar_products))
        .route("/recommendations/{user_id}", get(handlers::recommendations))
        .route(
            "/products/{product_id}/similar",
            get(handlers::similar_to_product),
        )
        .route("/image/{*file}", get(image::image))
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/metrics", get(handlers::metrics));
    if state.events().is_some() {
        app = app.route("/events", post(events::post_events));
    }
    if state.config().admin_routes {
        app = app.route("/admin/reload", post(handlers::reload));
    }
    if state.config().demo_ui {
        app = app.merge(demo::routes());
    }
    Ok(app
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state))
}

/// An error response whose body is not JSON gets the JSON error body of its status.
fn json_error_body(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json {
        return response;
    }
    let (parts, _) = response.into_parts();
    let message = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase();
    let mut fixed =
        ApiError::new(status, error::status_code_name(status.as_u16()), message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fixed
}

/// Counts and times every request (route template from [`MatchedPath`], status); logs it
/// at debug level.
///
/// Also the guard of the request path: a panic while answering becomes a logged 500 with
/// the JSON error body (the connection stays usable), and any error response without a
/// JSON body (one the framework produced) gets the documented `{"error", "code"}` body.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // The template of the route that matched (bounded by the router), never the raw path.
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched
        .as_ref()
        .map_or(metrics::UNMATCHED_ROUTE, MatchedPath::as_str);
    let method = request.method().clone();
    let mut running = std::pin::pin!(next.run(request));
    let caught = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| running.as_mut().poll(cx))) {
            Ok(Poll::Ready(response)) => Poll::Ready(Ok(response)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await;
    let response = match caught {
        Ok(response) => json_error_body(response),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            state.metrics().panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%method, route, panic = %message, "request handler panicked: answered 500");
            ApiError::internal("internal error: the request could not be answered").into_response()
        }
    };
    let elapsed = started.elapsed();
    let status = response.status();
    state.metrics().observe(route, status.as_u16(), elapsed);
    if status.is_server_error() {
        tracing::warn!(%method, route, status = status.as_u16(), micros = elapsed.as_micros() as u64, "request failed");
    } else {
        tracing::debug!(%method, route, status = status.as_u16(), micros = elapsed.as_micros() as u64, "request");
    }
    response
}

/// Serves `state` on `listener` until `shutdown` completes, then stops accepting and
/// lets requests in flight finish (graceful shutdown). Also runs the database probe.
///
/// Connections are limited to [`ServerConfig::max_connections`] (more are answered 503 and
/// closed), closed when idle longer than [`ServerConfig::idle_timeout`] or when a request
/// head takes longer than [`ServerConfig::header_timeout`]; refusals and closures are
/// logged (throttled) and counted in `/metrics`.
///
/// Refuses to start when the configuration does not validate, or when admin routes are
/// on, the listener is not on a loopback address and no [`ServerConfig::admin_token`] is
/// set (with a token, it warns that admin routes are reachable from the network).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let config = state.config();
    let address = listener.local_addr().map_err(|error| ServerError::Io {
        action: "reading the listening address".into(),
        error,
    })?;
    check_admin_exposure(config, address)?;
    let app = router(state.clone())?;
    let limits = conn::Limits {
        header: config.header_timeout,
        idle: config.idle_timeout,
        max_connections: config.max_connections,
    };
    warn_if_descriptors_run_out(config.max_connections);
    let probe = state.spawn_database_probe();
    let poller = spawn_event_poller(&state);
    let new_products = spawn_new_product_sync(&state);
    let result = conn::run(listener, app, state, limits, shutdown).await;
    probe.abort();
    for task in [poller, new_products].into_iter().flatten() {
        task.abort();
    }
    result
}

/// Warns when the connection limit is above what the process's file descriptor limit
/// allows (then the limit cannot protect the server: accepts fail before it is reached).
fn warn_if_descriptors_run_out(max_connections: usize) {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            // `rlim_t` is not u64 on every Unix.
            #[allow(clippy::unnecessary_cast)]
            let current = limit.rlim_cur as u64;
            // Leave room for the listener, the database pool, bundle and image files.
            let room = current.saturating_sub(64);
            if max_connections as u64 > room {
                tracing::warn!(
                    max_connections,
                    descriptor_limit = current,
                    "the connection limit is above the file descriptor limit (minus 64 for everything else): lower --max-connections or raise ulimit -n, or accepts will fail before the limit refuses anything"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = max_connections;
}

/// Admin routes on an address beyond loopback need a token: an error without one, a
/// warning (logged) with one. [`serve`] calls it with its listener's address.
pub fn check_admin_exposure(
    config: &ServerConfig,
    address: std::net::SocketAddr,
) -> Result<(), ServerError> {
    if !config.admin_routes || address.ip().is_loopback() {
        return Ok(());
    }
    if config.admin_token.is_none() {
        return Err(ServerError::Config(ConfigError {
            flag: "--admin-token",
            message: format!(
                "admin routes are on and the server listens on {address}, beyond loopback: set an admin token (RECSYS_ADMIN_TOKEN) or listen on 127.0.0.1"
            ),
        }));
    }
    tracing::warn!(
        %address,
        "admin routes (POST /admin/reload) are reachable beyond loopback; they require the admin bearer token"
    );
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C (SIGINT).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT: shutting down"),
        _ = term => tracing::info!("SIGTERM: shutting down"),
    }
}

/// Reloads the bundle on every SIGHUP (Unix), in the background, for as long as the
/// runtime runs.
#[cfg(unix)]
pub fn reload_on_sighup(state: AppState) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(
        |error| ServerError::Io {
            action: "installing the SIGHUP handler".into(),
            error,
        },
    )?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the bundle");
            // Errors are logged by reload(); the old bundle keeps serving.
            let _ = state.reload().await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn framework_errors_without_json_get_the_error_body() {
        // What axum's extractors answer when they reject a request: plain text.
        let text = (
            StatusCode::PAYLOAD_TOO_LARGE,
            [("x-kept", "1")],
            "Failed to buffer the request body",
        )
            .into_response();
        let fixed = super::json_error_body(text);
        assert_eq!(fixed.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(fixed.headers()["content-type"], "application/json");
        assert_eq!(fixed.headers()["x-kept"], "1");
        let body = body_bytes(fixed);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["code"], "payload_too_large");
        assert!(value["error"].is_string());
        // JSON errors and successes are left alone.
        let ours = super::ApiError::not_found("x").into_response();
        assert_eq!(
            body_bytes(super::json_error_body(ours)),
            br#"{"error":"x","code":"not_found"}"#
        );
        let ok = (StatusCode::OK, "plain").into_response();
        assert_eq!(body_bytes(super::json_error_body(ok)), b"plain");
    }

    fn body_bytes(response: axum::response::Response) -> Vec<u8> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap()
            .to_vec()
    }

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<super::AppState>();
        assert_send_sync::<super::ServerError>();
        assert_send_sync::<super::ApiError>();
        assert_send_sync::<super::MongoProducts>();
        assert_send_sync::<super::Serving>();
    }
}
