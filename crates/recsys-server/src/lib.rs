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
//! | `POST /admin/reload` | reload the bundle file (only with [`ServerConfig::admin_routes`]) |
//!
//! * **Bad input** answers 400 with `{"error", "code", "param"}`; unknown parameters are
//!   ignored; no input produces a 5xx (property-tested).
//! * **Product details** come from one `$in` query per response (through a bounded
//!   cache, [`details::DetailCache`]), in the recommendation's order. When the database
//!   fails, the server marks itself degraded (header `x-recsys-degraded`, `/ready`), logs
//!   once, answers from the bundle's product lookup and pings the database in the
//!   background until it answers again.
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
//! use recsys_core::{FitOptions, HybridModel, Hyperparameters, Loss, Popularity};
//! use recsys_features::{Dataset, FeatureSpec, InMemorySource, InteractionOptions};
//! use recsys_features::{InteractionRecord, ProductRecord, UserRecord};
//! use recsys_recommend::{Bundle, BundleParts, ProductCatalog};
//! use recsys_server::{router, AppState, ServerConfig};
//! use recsys_similarity::{ExactCosine, NeighbourTable};
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
//! let exact = ExactCosine::new(model.item_representations().vectors());
//! let bundle = Bundle::new(BundleParts {
//!     neighbours: NeighbourTable::build(&exact, 2)?,
//!     popularity: Popularity::from_interactions(&train),
//!     products: ProductCatalog::from_records(dataset.items(), shop.products.iter().cloned()),
//!     users: dataset.users().clone(),
//!     items: dataset.items().clone(),
//!     user_vocabulary: dataset.user_vocabulary().clone(),
//!     item_vocabulary: dataset.item_vocabulary().clone(),
//!     model, seen: train, metrics: None, description: None,
//! })?;
//!
//! // No database: details come from the bundle.
//! let app = router(AppState::new(bundle, None, ServerConfig::default()));
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let request = Request::get("/similar-products?userId=1&productId=11&n=2").body(Body::empty())?;
//! let response = runtime.block_on(app.oneshot(request))?;
//! assert_eq!(response.status(), StatusCode::OK);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod config;
pub mod details;
mod error;
pub mod handlers;
pub mod image;
pub mod metrics;
pub mod query;
mod state;

use std::future::Future;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub use config::{Compute, ServerConfig};
pub use details::{MongoProducts, ProductSource};
pub use error::{ApiError, ServerError};
pub use state::{load_bundle, AppState, ReloadOutcome};

/// The router with every route, the JSON 404/405 fallbacks and the metrics layer.
pub fn router(state: AppState) -> Router {
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
    if state.config().admin_routes {
        app = app.route("/admin/reload", post(handlers::reload));
    }
    app.fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Counts and times every request (route template, status); logs it at debug level.
async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = metrics::route_label(request.uri().path());
    let method = request.method().clone();
    let response = next.run(request).await;
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
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let probe = state.spawn_database_probe();
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|error| ServerError::Io {
            action: "serving HTTP".into(),
            error,
        });
    probe.abort();
    result
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
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<super::AppState>();
        assert_send_sync::<super::ServerError>();
        assert_send_sync::<super::ApiError>();
        assert_send_sync::<super::MongoProducts>();
    }
}
