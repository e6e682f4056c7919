//! The shared state of a server: the hot-swappable bundle (with its fold-in), product
//! details, live events, metrics.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, ArcSwapOption};
use recsys_core::{FoldIn, FoldInOptions};
use recsys_features::ProductRecord;
use recsys_recommend::{Bundle, NewItems};
use serde::Serialize;

use crate::config::{Compute, ServerConfig};
use crate::details::{ProductDetails, ProductSource};
use crate::error::ServerError;
use crate::events::EventStore;
use crate::live::LiveState;
use crate::metrics::Metrics;

/// Cheap to clone (one `Arc`); handed to every handler.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// The bundle serving now, the fold-in prepared for its model and the products added after
/// training represented by its model (swapped together, so a request never pairs a model
/// with another model's fold-in or new products).
pub struct Serving {
    /// The bundle.
    pub bundle: Arc<Bundle>,
    /// Fold-in for users with live events the model does not know (`None` when the model
    /// cannot fold in, e.g. no training interactions in the bundle).
    pub fold_in: Option<FoldIn>,
    /// Products the model was not trained on, represented by this model; replaced by each
    /// sync ([`crate::sync_new_products`]) while this bundle serves.
    new_items: ArcSwapOption<NewItems>,
    /// Whether the log already said that this model cannot serve new products.
    pub(crate) unsupported_logged: AtomicBool,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("model_version", &self.bundle.metadata().model_id)
            .field("fold_in", &self.fold_in.is_some())
            .field("new_items", &self.new_items().map(|x| x.len()))
            .finish()
    }
}

impl Serving {
    /// Prepares fold-in for `bundle` (CPU: a few Gram products over the item vectors).
    pub fn new(bundle: Bundle) -> Serving {
        let fold_in = match FoldIn::new(bundle.model(), bundle.seen(), FoldInOptions::default()) {
            Ok(fold_in) => Some(fold_in),
            Err(e) => {
                tracing::warn!(error = %e, model_version = %bundle.metadata().model_id, "fold-in unavailable: users unknown to the model get no recent-activity answers");
                None
            }
        };
        Serving {
            bundle: Arc::new(bundle),
            fold_in,
            new_items: ArcSwapOption::empty(),
            unsupported_logged: AtomicBool::new(false),
        }
    }

    /// The products added after training served with this bundle now (`None`: none).
    pub fn new_items(&self) -> Option<Arc<NewItems>> {
        self.new_items.load_full()
    }

    /// Replaces the products added after training served with this bundle (they must have
    /// been built for its model, e.g. by [`Bundle::new_items`]).
    pub fn set_new_items(&self, new_items: Option<Arc<NewItems>>) {
        self.new_items.store(new_items);
    }

    /// Represents `records` with this bundle's model and serves those it does not know
    /// (see [`Bundle::new_items`]); logs and serves none when the model cannot. CPU work:
    /// one feature row and representation per record.
    pub(crate) fn attach_new_items(&self, records: &[ProductRecord]) {
        if records.is_empty() {
            self.set_new_items(None);
            return;
        }
        match self.bundle.new_items(records.iter().cloned()) {
            Ok(new_items) => self.set_new_items(Some(Arc::new(new_items))),
            Err(e) => {
                if !self.unsupported_logged.swap(true, Ordering::Relaxed) {
                    tracing::info!(error = %e, model_version = %self.bundle.metadata().model_id, "products added after training are not served by this model");
                }
                self.set_new_items(None);
            }
        }
    }
}

/// Where the serving model came from (shown by `/ready`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelOrigin {
    /// A bundle file.
    File {
        /// The file.
        path: String,
    },
    /// A model published through the database (`train --publish`).
    Store {
        /// The published model id.
        model_id: String,
        /// When it was published, milliseconds since the Unix epoch.
        published_at_millis: i64,
    },
    /// A bundle handed over in memory (embedding code, tests).
    Memory,
}

/// A published model the server refused to load: it was downloaded completely and failed
/// its checks (damaged, incompatible, not the model the pointer named). The previous model
/// kept serving, and the refused id is not downloaded again while the pointer names it.
/// Cleared when a later model is swapped in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedModel {
    /// The published model id.
    pub model_id: String,
    /// Why (damaged, incompatible, not the model the pointer named, …).
    pub reason: String,
    /// When it was refused (Unix seconds).
    pub at_unix: i64,
}

/// The last failed attempt to follow the published model: the `current` pointer could not
/// be read, or the model it names could not be downloaded (database error, timeout,
/// artifact missing). Transient: the next poll tries again, and the first poll that
/// succeeds clears it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FollowError {
    /// The published model id whose download failed; absent when the pointer itself could
    /// not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The error.
    pub reason: String,
    /// When the last attempt failed (Unix seconds).
    pub at_unix: i64,
    /// Attempts that failed in a row, this one included.
    pub attempts: u64,
}

struct Inner {
    serving: ArcSwap<Serving>,
    origin: ArcSwap<ModelOrigin>,
    refused: ArcSwap<Option<RefusedModel>>,
    follow_error: ArcSwap<Option<FollowError>>,
    loaded_at_unix: AtomicI64,
    config: ServerConfig,
    details: ProductDetails,
    metrics: Metrics,
    reload_lock: tokio::sync::Mutex<()>,
    events: Option<Arc<dyn EventStore>>,
    live: LiveState,
    writer_id: String,
    event_sequence: AtomicU64,
    /// The records of the products the last sync found that the model serving then did not
    /// know: what a model swapped in next is given at once.
    new_product_records: Mutex<Arc<Vec<ProductRecord>>>,
    /// Wakes the new-product sync (after a model swap).
    new_products_wake: Arc<tokio::sync::Notify>,
}

/// A handle on the state that does not keep it alive (for background tasks).
#[derive(Clone)]
pub struct WeakState(Weak<Inner>);

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("model_version", &self.bundle().metadata().model_id)
            .field("config", &self.inner.config)
            .field("details", &self.inner.details)
            .finish()
    }
}

/// A writer id unique per process start: process id and start time.
fn writer_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{:x}", std::process::id(), nanos)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReloadOutcome {
    /// Model version (the bundle's `model_id`) now serving.
    pub model_version: String,
    /// Model version that served before.
    pub previous_model_version: String,
    /// Items of the new model.
    pub items: usize,
    /// Users of the new model.
    pub users: usize,
}

/// Checks that a freshly loaded bundle can be served.
fn check_servable(bundle: &Bundle, path: &Path) -> Result<(), ServerError> {
    if bundle.items().is_empty() {
        return Err(ServerError::Unservable {
            path: path.to_path_buf(),
            reason: "it has no items".into(),
        });
    }
    Ok(())
}

/// Loads and checks a bundle file (blocking: call it from a blocking thread).
pub fn load_bundle(path: &Path) -> Result<Bundle, ServerError> {
    let bundle = Bundle::load(path).map_err(|error| ServerError::Bundle {
        path: path.to_path_buf(),
        error,
    })?;
    check_servable(&bundle, path)?;
    Ok(bundle)
}

impl AppState {
    /// A state serving `bundle`, with product details from `source` (`None`: the bundle's
    /// product lookup only), without live events.
    pub fn new(
        bundle: Bundle,
        source: Option<Arc<dyn ProductSource>>,
        config: ServerConfig,
    ) -> AppState {
        AppState::with_events(bundle, source, None, config)
    }

    /// A state serving `bundle`, with product details from `source` and live events
    /// stored in `events` (`None`: no `POST /events` route, no live state fed).
    pub fn with_events(
        bundle: Bundle,
        source: Option<Arc<dyn ProductSource>>,
        events: Option<Arc<dyn EventStore>>,
        config: ServerConfig,
    ) -> AppState {
        let details = ProductDetails::new(
            source,
            config.cache_capacity,
            config.cache_ttl,
            config.db_timeout,
        );
        AppState {
            inner: Arc::new(Inner {
                serving: ArcSwap::from_pointee(Serving::new(bundle)),
                origin: ArcSwap::from_pointee(match &config.bundle_path {
                    Some(path) => ModelOrigin::File {
                        path: path.display().to_string(),
                    },
                    None => ModelOrigin::Memory,
                }),
                refused: ArcSwap::from_pointee(None),
                follow_error: ArcSwap::from_pointee(None),
                loaded_at_unix: AtomicI64::new(now_unix()),
                live: LiveState::new(config.live),
                config,
                details,
                metrics: Metrics::default(),
                reload_lock: tokio::sync::Mutex::new(()),
                events,
                writer_id: writer_id(),
                event_sequence: AtomicU64::new(0),
                new_product_records: Mutex::new(Arc::new(Vec::new())),
                new_products_wake: Arc::new(tokio::sync::Notify::new()),
            }),
        }
    }

    /// The bundle serving now. A request holds this `Arc` to its end, so a reload never
    /// changes the model under a request.
    pub fn bundle(&self) -> Arc<Bundle> {
        Arc::clone(&self.inner.serving.load().bundle)
    }

    /// The bundle and its fold-in serving now (one consistent pair).
    pub fn serving(&self) -> Arc<Serving> {
        self.inner.serving.load_full()
    }

    /// Where live events are stored, if anywhere.
    pub fn events(&self) -> Option<&Arc<dyn EventStore>> {
        self.inner.events.as_ref()
    }

    /// The live state (recent products per user).
    pub fn live(&self) -> &LiveState {
        &self.inner.live
    }

    /// This replica's id in the recent-events collection (unique per process start).
    pub fn writer_id(&self) -> &str {
        &self.inner.writer_id
    }

    /// The next sequence number of this replica's event batches.
    pub(crate) fn next_event_sequence(&self) -> u64 {
        self.inner.event_sequence.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The records of the products the last sync found unknown to the model then.
    pub(crate) fn new_product_records(&self) -> Arc<Vec<ProductRecord>> {
        Arc::clone(
            &self
                .inner
                .new_product_records
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Keeps the records of the products the last sync found unknown to the model.
    pub(crate) fn set_new_product_records(&self, records: Arc<Vec<ProductRecord>>) {
        *self
            .inner
            .new_product_records
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = records;
    }

    /// What wakes the new-product sync before its interval is over.
    pub(crate) fn new_products_wake(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.inner.new_products_wake)
    }

    /// A handle that does not keep the state alive.
    pub fn downgrade(&self) -> WeakState {
        WeakState(Arc::downgrade(&self.inner))
    }

    /// The state again, while any clone of it lives.
    pub fn upgrade(weak: &WeakState) -> Option<AppState> {
        weak.0.upgrade().map(|inner| AppState { inner })
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The product-detail service.
    pub fn details(&self) -> &ProductDetails {
        &self.inner.details
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// When the serving bundle was loaded (Unix seconds).
    pub fn loaded_at_unix(&self) -> i64 {
        self.inner.loaded_at_unix.load(Ordering::Relaxed)
    }

    /// Runs CPU work on the blocking pool or inline, per [`ServerConfig::compute`].
    pub async fn compute<T, F>(&self, work: F) -> Result<T, ServerError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.inner.config.compute {
            Compute::Inline => Ok(work()),
            Compute::Blocking => tokio::task::spawn_blocking(work)
                .await
                .map_err(|e| ServerError::Task(e.to_string())),
        }
    }

    /// Swaps in `bundle` (already loaded and checked) atomically, preparing its fold-in
    /// first.
    pub fn swap(&self, bundle: Bundle) -> ReloadOutcome {
        self.swap_serving(Serving::new(bundle))
    }

    /// Where the serving model came from.
    pub fn origin(&self) -> ModelOrigin {
        ModelOrigin::clone(&self.inner.origin.load())
    }

    /// Records where the serving model came from (after a swap).
    pub fn set_origin(&self, origin: ModelOrigin) {
        self.inner.origin.store(Arc::new(origin));
    }

    /// The last published model refused, if any (cleared when a later published model is
    /// swapped in, not by a reload from a file).
    pub fn refused(&self) -> Option<RefusedModel> {
        Option::clone(&self.inner.refused.load())
    }

    /// Records a refused published model (shown by `/ready`; the old model keeps serving).
    pub fn refuse(&self, model_id: &str, reason: String) {
        tracing::error!(model_id, reason = %reason, "published model refused: the previous model keeps serving");
        self.inner
            .metrics
            .reloads_failed
            .fetch_add(1, Ordering::Relaxed);
        self.inner.refused.store(Arc::new(Some(RefusedModel {
            model_id: model_id.to_string(),
            reason,
            at_unix: now_unix(),
        })));
    }

    /// The last failed attempt to follow the published model, while no poll has
    /// succeeded since.
    pub fn follow_error(&self) -> Option<FollowError> {
        Option::clone(&self.inner.follow_error.load())
    }

    /// Records a failed attempt to read the `current` pointer (`model_id` `None`) or to
    /// download the model it names (shown by `/ready`; retried at the next poll). A failed
    /// download counts in `recsys_model_reload_failures_total`.
    pub fn record_follow_error(&self, model_id: Option<&str>, reason: String) {
        let attempts = self.follow_error().map_or(0, |e| e.attempts) + 1;
        if model_id.is_some() {
            self.inner
                .metrics
                .reloads_failed
                .fetch_add(1, Ordering::Relaxed);
        }
        self.inner.follow_error.store(Arc::new(Some(FollowError {
            model_id: model_id.map(str::to_string),
            reason,
            at_unix: now_unix(),
            attempts,
        })));
    }

    /// Forgets the refused published model: a later published model is serving, so the
    /// refusal is history. Only a model swapped in from the store clears it: after a reload
    /// from a file the pointer may still name the refused model, which must not be
    /// downloaded again.
    pub fn clear_refused(&self) {
        if self.inner.refused.load().is_some() {
            self.inner.refused.store(Arc::new(None));
        }
    }

    /// Forgets the last failed attempt to follow the published model (a poll succeeded).
    pub fn clear_follow_error(&self) {
        if self.inner.follow_error.load().is_some() {
            self.inner.follow_error.store(Arc::new(None));
        }
    }

    fn swap_serving(&self, serving: Serving) -> ReloadOutcome {
        // The products added after training that the last sync found, represented by the
        // new model before it serves; the sync then reads the collection again at once.
        serving.attach_new_items(&self.new_product_records());
        self.inner.new_products_wake.notify_one();
        let bundle = &serving.bundle;
        let outcome_items = bundle.items().len();
        let outcome_users = bundle.users().len();
        let version = bundle.metadata().model_id.clone();
        let previous = self.inner.serving.swap(Arc::new(serving)).bundle.clone();
        self.inner
            .loaded_at_unix
            .store(now_unix(), Ordering::Relaxed);
        ReloadOutcome {
            model_version: version,
            previous_model_version: previous.metadata().model_id.clone(),
            items: outcome_items,
            users: outcome_users,
        }
    }

    /// Reloads the configured bundle file: loads and checks it on the blocking pool, then
    /// swaps it in. On any error the old bundle keeps serving. Reloads run one at a time.
    pub async fn reload(&self) -> Result<ReloadOutcome, ServerError> {
        let result = self.reload_inner().await;
        match &result {
            Ok(outcome) => {
                self.inner
                    .metrics
                    .reloads_ok
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    model_version = %outcome.model_version,
                    previous = %outcome.previous_model_version,
                    items = outcome.items,
                    "bundle reloaded"
                );
            }
            Err(e) => {
                self.inner
                    .metrics
                    .reloads_failed
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "bundle reload refused: the previous model keeps serving");
            }
        }
        result
    }

    async fn reload_inner(&self) -> Result<ReloadOutcome, ServerError> {
        let _one_at_a_time = self.inner.reload_lock.lock().await;
        let path = self
            .inner
            .config
            .bundle_path
            .clone()
            .ok_or(ServerError::NoBundlePath)?;
        // Loading and preparing fold-in are CPU work: both off the async workers.
        let serving = tokio::task::spawn_blocking(move || load_bundle(&path).map(Serving::new))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        Ok(self.swap_serving(serving))
    }

    /// Starts the background task that pings the database every
    /// [`ServerConfig::db_retry_interval`], whatever its state (so `/ready` and
    /// `recsys_db_up` follow a database that dies while every request is served from the
    /// cache, and the server leaves degraded mode by itself), and warms the product cache
    /// (when [`ServerConfig::preload_details`] is set: at once, then every `cache_ttl / 2`
    /// while the database is up). Stops when every clone of the state is dropped.
    pub fn spawn_database_probe(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        let config = &self.inner.config;
        let interval = config.db_retry_interval;
        let preload = config.preload_details;
        let refresh = config.cache_ttl / 2;
        let scan_timeout = (config.db_timeout * 20).max(std::time::Duration::from_secs(120));
        tokio::spawn(async move {
            let mut last_preload: Option<std::time::Instant> = None;
            loop {
                let Some(inner) = weak.upgrade() else { break };
                let state = inner.details.probe().await;
                let due = last_preload.is_none_or(|t| t.elapsed() >= refresh);
                if preload && due && state == crate::details::DatabaseState::Up {
                    let started = std::time::Instant::now();
                    let n = inner.details.preload(scan_timeout).await;
                    if n > 0 {
                        tracing::info!(
                            products = n,
                            seconds = started.elapsed().as_secs_f64(),
                            "product cache warmed"
                        );
                        last_preload = Some(std::time::Instant::now());
                    }
                }
                drop(inner);
                tokio::time::sleep(interval).await;
            }
        })
    }
}
