//! Products added to the database after the model was trained: learned by reading the
//! products collection in the background, represented from their attributes by the
//! serving model, and served beside its products — never a query on a request's path.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use recsys_recommend::{NewItems, NewItemsReport};

use crate::details::DatabaseState;
use crate::error::ServerError;
use crate::events::now_ms;
use crate::state::AppState;

/// The longest a sync waits for its scan of the products collection: the preload's limit.
fn scan_timeout(state: &AppState) -> Duration {
    (state.config().db_timeout * 20).max(Duration::from_secs(120))
}

/// Reads the products collection once (one scan, [`ProductSource::scan_records`]) and
/// serves the products the serving model was not trained on: their records are kept, and
/// the serving model represents them from their attributes
/// ([`Bundle::new_items`](recsys_recommend::Bundle::new_items)) off the async workers;
/// the result replaces the previous sync's for this model (a product deleted from the
/// collection stops being served). Returns what was done with the records, or `None` when
/// nothing was read: no product source, the database is down, or the serving model cannot
/// represent new products (no item features beyond identity; said once in the log). A
/// model swapped in later is given the kept records at once, before it serves.
///
/// [`crate::spawn_new_product_sync`] runs it at start-up, after every swap and every
/// [`ServerConfig::new_products_interval`](crate::ServerConfig).
///
/// [`ProductSource::scan_records`]: crate::ProductSource::scan_records
pub async fn sync_new_products(state: &AppState) -> Result<Option<NewItemsReport>, ServerError> {
    let Some(source) = state.details().source() else {
        return Ok(None);
    };
    if state.details().state() == DatabaseState::Down {
        return Ok(None);
    }
    let serving = state.serving();
    let bundle = Arc::clone(&serving.bundle);
    if let Err(e) = NewItems::check_supported(bundle.model(), bundle.item_vocabulary()) {
        if !serving.unsupported_logged.swap(true, Ordering::Relaxed) {
            tracing::info!(error = %e, model_version = %bundle.metadata().model_id, "products added after training are not served by this model: the products collection is not read for them");
        }
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let started_ms = now_ms();
    let timeout = scan_timeout(state);
    let records = match tokio::time::timeout(timeout, source.scan_records()).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(ServerError::DatabaseTimeout {
                uri: source.describe(),
                message: format!("reading the products collection took longer than {timeout:?}"),
            })
        }
    };
    let scanned = records.len();
    let unknown: Vec<_> = records
        .into_iter()
        .filter(|r| bundle.items().index(&r.product_id).is_none())
        .collect();
    let unknown = Arc::new(unknown);
    state.set_new_product_records(Arc::clone(&unknown));
    let for_work = Arc::clone(&serving);
    let report = tokio::task::spawn_blocking(move || {
        for_work.attach_new_items(&unknown);
        for_work
            .new_items()
            .map(|x| *x.report())
            .unwrap_or_default()
    })
    .await
    .map_err(|e| ServerError::Task(e.to_string()))?;
    let metrics = state.metrics();
    metrics.new_products_syncs.fetch_add(1, Ordering::Relaxed);
    metrics
        .new_products_last_sync_ms
        .store(u64::try_from(started_ms).unwrap_or(0), Ordering::Relaxed);
    metrics
        .new_products_without_features
        .store(report.without_known_features as u64, Ordering::Relaxed);
    tracing::debug!(
        scanned,
        new_products = report.added,
        without_known_features = report.without_known_features,
        seconds = started.elapsed().as_secs_f64(),
        "products collection read for products added after training"
    );
    Ok(Some(report))
}

/// Starts the background task that runs [`sync_new_products`] at once, then every
/// [`ServerConfig::new_products_interval`](crate::ServerConfig) and right after every
/// model swap, until every clone of the state is dropped. `None` (nothing started) without
/// a product source or with the interval off. Failures are logged, counted in
/// `recsys_new_products_sync_errors_total` and retried at the next interval; the products
/// served stay as the last successful sync left them.
pub fn spawn_new_product_sync(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let interval = state.config().new_products_interval?;
    state.details().source()?;
    let weak = state.downgrade();
    let wake = state.new_products_wake();
    Some(tokio::spawn(async move {
        // What the last read found, logged at `info` only when it changes.
        let mut logged = None;
        loop {
            let Some(state) = AppState::upgrade(&weak) else {
                break;
            };
            match sync_new_products(&state).await {
                Ok(Some(report)) => {
                    let found = (report.added, report.without_known_features);
                    if logged != Some(found) && (found != (0, 0) || logged.is_some()) {
                        tracing::info!(
                            new_products = report.added,
                            without_known_features = report.without_known_features,
                            "serving products added after training"
                        );
                    }
                    logged = Some(found);
                }
                Ok(None) => {}
                Err(e) => {
                    state
                        .metrics()
                        .new_products_sync_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "could not read the products collection for products added after training; retrying at the next interval");
                }
            }
            drop(state);
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = wake.notified() => {}
            }
        }
    }))
}
