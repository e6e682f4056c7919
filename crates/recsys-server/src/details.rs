//! Product details for responses: one `$in` query per request to MongoDB, a bounded cache,
//! and the bundle's own product lookup when the database is down (degraded mode).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ClientOptions;
use recsys_features::{ExternalId, ProductRecord};
use recsys_recommend::{Bundle, NewItems, ProductInfo};
use recsys_store::mongo::{
    id_to_bson, product_details_lenient, product_record_lenient, redact_secrets, redact_uri,
    DEFAULT_DATABASE, PRODUCTS,
};

use crate::error::ServerError;

/// A boxed, sendable future (what [`ProductSource`] methods return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where product details come from (MongoDB in production, anything in tests).
pub trait ProductSource: Send + Sync + 'static {
    /// Details of the given products, in any order; ids the source does not know are
    /// simply absent. One round trip.
    fn fetch<'a>(
        &'a self,
        ids: &'a [ExternalId],
    ) -> BoxFuture<'a, Result<Vec<(ExternalId, ProductInfo)>, ServerError>>;

    /// Succeeds when the source answers.
    fn ping(&self) -> BoxFuture<'_, Result<(), ServerError>>;

    /// Details of up to `limit` products (any), to warm the cache; the default answers
    /// nothing.
    fn scan(
        &self,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(ExternalId, ProductInfo)>, ServerError>> {
        let _ = limit;
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Every product as a full record (attributes included), to learn the products the
    /// serving model was not trained on ([`crate::sync_new_products`]). One scan; the
    /// default answers nothing (no product is ever new).
    fn scan_records(&self) -> BoxFuture<'_, Result<Vec<ProductRecord>, ServerError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// A short description for logs (`mongodb://host:port/db`, password redacted).
    fn describe(&self) -> String;
}

/// The `products` collection of a MongoDB database (async driver).
#[derive(Debug, Clone)]
pub struct MongoProducts {
    collection: mongodb::Collection<Document>,
    uri: String,
    timeout: Duration,
}

impl MongoProducts {
    /// A client for `uri` (database: `database`, else the URI's, else `recsys`) with
    /// connect and server-selection timeouts of `timeout`. Does not contact the server:
    /// a database that is down at start-up only makes the server start degraded.
    pub async fn connect(
        uri: &str,
        database: Option<&str>,
        timeout: Duration,
    ) -> Result<MongoProducts, ServerError> {
        let redacted = redact_uri(uri);
        // The driver may quote part of a malformed URI (a password with an unencoded `?`).
        let fail = |e: mongodb::error::Error| ServerError::Database {
            uri: redacted.clone(),
            message: redact_secrets(uri, &e.to_string()),
        };
        let mut options = ClientOptions::parse(uri).await.map_err(fail)?;
        options.connect_timeout = Some(timeout);
        options.server_selection_timeout = Some(timeout);
        options.app_name = Some("recsys-server".to_string());
        let name = database
            .map(str::to_string)
            .or_else(|| options.default_database.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        let client = mongodb::Client::with_options(options).map_err(fail)?;
        let collection = client.database(&name).collection::<Document>(PRODUCTS);
        Ok(MongoProducts {
            collection,
            uri: format!("{redacted} (database {name})"),
            timeout,
        })
    }

    /// One unfiltered `find` with `projection` (and `limit`), every document decoded by
    /// `decode`; a document that does not decode, or that `decode` rejects, is skipped.
    async fn scan_with<T>(
        &self,
        projection: Document,
        limit: Option<i64>,
        decode: impl Fn(&Document) -> Option<T>,
    ) -> Result<Vec<T>, ServerError> {
        let find = self
            .collection
            .find(doc! {})
            .projection(projection)
            .batch_size(10_000);
        let find = match limit {
            Some(limit) => find.limit(limit),
            None => find,
        };
        let mut cursor = find.await.map_err(|e| self.error(e))?;
        let mut found = Vec::new();
        while cursor.advance().await.map_err(|e| self.error(e))? {
            if let Ok(doc) = Document::try_from(cursor.current()) {
                found.extend(decode(&doc));
            }
        }
        Ok(found)
    }

    fn error(&self, e: mongodb::error::Error) -> ServerError {
        // MaxTimeMSExpired: the server gave up on a slow query; the database answers.
        let slow = matches!(&*e.kind, mongodb::error::ErrorKind::Command(c) if c.code == 50);
        if slow {
            ServerError::DatabaseTimeout {
                uri: self.uri.clone(),
                message: e.to_string(),
            }
        } else {
            ServerError::Database {
                uri: self.uri.clone(),
                message: e.to_string(),
            }
        }
    }
}

/// The details of one product document, leniently (a bad document never fails a request;
/// see [`product_details_lenient`]).
fn info_from_document(doc: &Document) -> Option<(ExternalId, ProductInfo)> {
    let product = product_details_lenient(doc)?;
    let info = ProductInfo::from_record(&product);
    Some((product.product_id, info))
}

impl ProductSource for MongoProducts {
    fn fetch<'a>(
        &'a self,
        ids: &'a [ExternalId],
    ) -> BoxFuture<'a, Result<Vec<(ExternalId, ProductInfo)>, ServerError>> {
        Box::pin(async move {
            let wanted: Vec<Bson> = ids.iter().map(id_to_bson).collect();
            let mut cursor = self
                .collection
                .find(doc! { "product_id": { "$in": wanted } })
                .projection(doc! { "_id": 0, "product_id": 1, "name": 1, "price": 1, "image": 1 })
                // The server abandons the query too when the client gives up on it, so a
                // slow database is not buried under queries nobody waits for.
                .max_time(self.timeout)
                .await
                .map_err(|e| self.error(e))?;
            let mut found = Vec::with_capacity(ids.len());
            while cursor.advance().await.map_err(|e| self.error(e))? {
                let raw = cursor.current();
                let doc = Document::try_from(raw).map_err(|e| ServerError::Database {
                    uri: self.uri.clone(),
                    message: format!("undecodable document: {e}"),
                })?;
                found.extend(info_from_document(&doc));
            }
            Ok(found)
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), ServerError>> {
        Box::pin(async move {
            self.collection
                .client()
                .database("admin")
                .run_command(doc! { "ping": 1 })
                .await
                .map(|_| ())
                .map_err(|e| self.error(e))
        })
    }

    fn scan(
        &self,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(ExternalId, ProductInfo)>, ServerError>> {
        let projection = doc! { "_id": 0, "product_id": 1, "name": 1, "price": 1, "image": 1 };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(self.scan_with(projection, Some(limit), info_from_document))
    }

    fn scan_records(&self) -> BoxFuture<'_, Result<Vec<ProductRecord>, ServerError>> {
        Box::pin(self.scan_with(doc! { "_id": 0 }, None, product_record_lenient))
    }

    fn describe(&self) -> String {
        self.uri.clone()
    }
}

/// A bounded cache of product details with two generations: lookups hit the young or the
/// old generation (a hit in the old one moves the entry to the young); when the young
/// generation holds `capacity / 2` entries the old one is dropped and the young one becomes
/// old. So at most `capacity` entries are held and recently used entries survive (an LRU
/// approximation with O(1) work and no per-entry links). Each entry remembers when it was
/// fetched and is not served once older than `ttl`.
#[derive(Debug)]
pub(crate) struct DetailCache {
    inner: Mutex<Generations>,
    half: usize,
    ttl: Duration,
}

type Entry = (ProductInfo, Instant);

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<ExternalId, Entry>,
    old: HashMap<ExternalId, Entry>,
}

impl Generations {
    fn put(&mut self, half: usize, id: ExternalId, entry: Entry) {
        self.young.insert(id, entry);
        if self.young.len() >= half {
            self.old = std::mem::take(&mut self.young);
        }
    }
}

impl DetailCache {
    /// A cache of at most `capacity` entries (below 2 disables it), each served for at
    /// most `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        DetailCache {
            inner: Mutex::new(Generations::default()),
            half: capacity / 2,
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The maps are never left half-updated, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// For each id, its cached details (or `None`).
    pub fn get_many(&self, ids: &[ExternalId]) -> Vec<Option<ProductInfo>> {
        if self.half == 0 {
            return vec![None; ids.len()];
        }
        let mut g = self.lock();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let fresh = |e: &Entry| e.1.elapsed() < self.ttl;
            if let Some(entry) = g.young.get(id).filter(|e| fresh(e)) {
                out.push(Some(entry.0.clone()));
            } else if let Some(entry) = g.old.remove(id).filter(fresh) {
                out.push(Some(entry.0.clone()));
                g.put(self.half, id.clone(), entry);
            } else {
                out.push(None);
            }
        }
        out
    }

    /// Stores details fetched now.
    pub fn insert_many(&self, entries: impl IntoIterator<Item = (ExternalId, ProductInfo)>) {
        if self.half == 0 {
            return;
        }
        let now = Instant::now();
        let mut g = self.lock();
        for (id, info) in entries {
            g.old.remove(&id);
            g.put(self.half, id, (info, now));
        }
    }

    /// Entries held now (young + old, expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.young.len() + g.old.len()
    }
}

/// The state of the product-detail database, as reported by `/ready` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseState {
    /// No database configured: details come from the bundle (not degraded).
    NotConfigured,
    /// The last ping succeeded (and no query failed since with a connection error).
    Up,
    /// The last ping failed, or a query failed with a connection error: details come from
    /// the bundle until a ping answers again.
    Down,
}

impl DatabaseState {
    /// `not-configured`, `up` or `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseState::NotConfigured => "not-configured",
            DatabaseState::Up => "up",
            DatabaseState::Down => "down",
        }
    }
}

/// Details of the products of one response, in its order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Lookup {
    /// One entry per asked id (empty details when nobody knows the product).
    pub(crate) details: Vec<ProductInfo>,
    /// True when the database should have answered but did not (or is known to be down):
    /// details not in the cache came from the bundle.
    pub(crate) degraded: bool,
}

/// Counters of the detail service (exported by `/metrics`).
#[derive(Debug, Default)]
pub(crate) struct DetailCounters {
    /// Failed database queries and pings (timeouts of queries included).
    pub(crate) db_errors: AtomicU64,
    /// Database queries sent.
    pub(crate) db_queries: AtomicU64,
    /// Ids answered from the cache.
    pub(crate) cache_hits: AtomicU64,
    /// Ids not in the cache.
    pub(crate) cache_misses: AtomicU64,
    /// Queries that took longer than the time limit (answered from the bundle; the
    /// database is not marked down for that).
    pub(crate) db_timeouts: AtomicU64,
}

/// The product-detail service: cache, then one database query, then the bundle.
pub struct ProductDetails {
    source: Option<Arc<dyn ProductSource>>,
    cache: DetailCache,
    up: AtomicBool,
    timeout: Duration,
    counters: DetailCounters,
}

impl std::fmt::Debug for ProductDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductDetails")
            .field("source", &self.source.as_ref().map(|s| s.describe()))
            .field("cached", &self.cache.len())
            .field("state", &self.state())
            .finish()
    }
}

impl ProductDetails {
    /// A service over `source` (`None`: the bundle's lookup only), with a cache of
    /// `cache_capacity` entries served for at most `cache_ttl`, and `timeout` per query.
    /// The database counts as up until a query or ping fails.
    pub(crate) fn new(
        source: Option<Arc<dyn ProductSource>>,
        cache_capacity: usize,
        cache_ttl: Duration,
        timeout: Duration,
    ) -> Self {
        ProductDetails {
            source,
            cache: DetailCache::new(cache_capacity, cache_ttl),
            up: AtomicBool::new(true),
            timeout,
            counters: DetailCounters::default(),
        }
    }

    /// Up, down or not configured.
    pub fn state(&self) -> DatabaseState {
        match (&self.source, self.up.load(Ordering::Relaxed)) {
            (None, _) => DatabaseState::NotConfigured,
            (Some(_), true) => DatabaseState::Up,
            (Some(_), false) => DatabaseState::Down,
        }
    }

    /// The product source, if one is configured.
    pub(crate) fn source(&self) -> Option<&Arc<dyn ProductSource>> {
        self.source.as_ref()
    }

    /// The counters.
    pub(crate) fn counters(&self) -> &DetailCounters {
        &self.counters
    }

    /// Entries in the cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    fn mark_down(&self, error: &ServerError) {
        self.counters.db_errors.fetch_add(1, Ordering::Relaxed);
        // Logged once per outage: only the request that flips the state logs.
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                error = %error,
                "product database unreachable: serving details from the bundle (degraded) until it answers again"
            );
        }
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::AcqRel) {
            tracing::info!("product database answers again: degraded mode over");
        }
    }

    /// Pings the database, whatever its state, and marks it up or down by the answer
    /// (within the query time limit). Returns the state afterwards. Called on a timer by
    /// the background task ([`crate::AppState::spawn_database_probe`]): with a warm cache
    /// no query may fail for hours, so only the ping notices a dead database.
    pub async fn probe(&self) -> DatabaseState {
        self.check().await
    }

    /// Pings the database now, whatever its state; marks it up or down.
    pub async fn check(&self) -> DatabaseState {
        if let Some(source) = &self.source {
            match tokio::time::timeout(self.timeout, source.ping()).await {
                Ok(Ok(())) => self.mark_up(),
                Ok(Err(e)) => self.mark_down(&e),
                Err(_) => self.mark_down(&ServerError::Database {
                    uri: source.describe(),
                    message: format!("no answer within {:?}", self.timeout),
                }),
            }
        }
        self.state()
    }

    /// Fills the cache with up to its capacity (minus one) of products read in one scan (a
    /// warm-up: on servers where `$in` is a collection scan, e.g. FerretDB 1.x, a cold
    /// cache costs a scan per request). Returns how many were cached; errors mark the
    /// database down like a failed query.
    pub(crate) async fn preload(&self, scan_timeout: Duration) -> usize {
        let Some(source) = &self.source else { return 0 };
        // Up to 2·half − 1 insertions rotate the generations at most once: all are kept.
        let limit = (self.cache.half * 2).saturating_sub(1);
        if self.cache.half == 0 {
            return 0;
        }
        match tokio::time::timeout(scan_timeout, source.scan(limit)).await {
            Ok(Ok(found)) => {
                let n = found.len();
                self.cache.insert_many(found);
                self.mark_up();
                n
            }
            Ok(Err(e)) => {
                self.mark_down(&e);
                0
            }
            Err(_) => {
                tracing::warn!("product preload did not finish within {scan_timeout:?}");
                0
            }
        }
    }

    /// Details of `ids`, in their order: products added after training from their records
    /// (`new_items`, read by the last sync: never a query), then the cache, then one `$in`
    /// query for the rest (skipped while the database is down), then the bundle's product
    /// lookup for whatever is still missing.
    pub(crate) async fn lookup(
        &self,
        ids: &[ExternalId],
        bundle: &Bundle,
        new_items: Option<&NewItems>,
    ) -> Lookup {
        let mut slots: Vec<Option<ProductInfo>> = ids
            .iter()
            .map(|id| new_items.and_then(|x| x.product(id)).cloned())
            .collect();
        let from_records = slots.iter().filter(|s| s.is_some()).count();
        if from_records == 0 {
            slots = self.cache.get_many(ids);
        } else {
            let others: Vec<ExternalId> = ids
                .iter()
                .zip(&slots)
                .filter(|(_, s)| s.is_none())
                .map(|(id, _)| id.clone())
                .collect();
            let mut cached = self.cache.get_many(&others).into_iter();
            for slot in slots.iter_mut().filter(|s| s.is_none()) {
                *slot = cached.next().flatten();
            }
        }
        let missing: Vec<ExternalId> = ids
            .iter()
            .zip(&slots)
            .filter(|(_, s)| s.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        let hits = (ids.len() - from_records - missing.len()) as u64;
        self.counters.cache_hits.fetch_add(hits, Ordering::Relaxed);
        self.counters
            .cache_misses
            .fetch_add(missing.len() as u64, Ordering::Relaxed);
        let mut degraded = false;
        if !missing.is_empty() {
            match &self.source {
                Some(source) if self.up.load(Ordering::Acquire) => {
                    self.counters.db_queries.fetch_add(1, Ordering::Relaxed);
                    let result =
                        match tokio::time::timeout(self.timeout, source.fetch(&missing)).await {
                            Ok(result) => result,
                            Err(_) => Err(ServerError::DatabaseTimeout {
                                uri: source.describe(),
                                message: format!("query took longer than {:?}", self.timeout),
                            }),
                        };
                    match result {
                        Ok(found) => {
                            let found: HashMap<ExternalId, ProductInfo> =
                                found.into_iter().collect();
                            for (slot, id) in slots.iter_mut().zip(ids) {
                                if slot.is_none() {
                                    if let Some(info) = found.get(id) {
                                        *slot = Some(info.clone());
                                    }
                                }
                            }
                            self.cache.insert_many(found);
                        }
                        Err(ServerError::DatabaseTimeout { message, .. }) => {
                            // Slow is not down: FerretDB 1.x answers a `$in` over a large
                            // collection with a scan that can outlast the limit while
                            // pings answer at once. Marking the database down here made
                            // the state flap (down, up at the next ping, down at the next
                            // slow query). This response comes from the bundle; the
                            // periodic ping decides whether the database is up.
                            self.counters.db_timeouts.fetch_add(1, Ordering::Relaxed);
                            self.counters.db_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%message, "product query too slow: details from the bundle");
                            degraded = true;
                        }
                        Err(e) => {
                            self.mark_down(&e);
                            degraded = true;
                        }
                    }
                }
                Some(_) => degraded = true,
                None => {}
            }
        }
        let details = slots
            .into_iter()
            .zip(ids)
            .map(|(slot, id)| {
                slot.or_else(|| bundle.product(id).cloned())
                    .map(|mut info| {
                        info.price = info.price.filter(|p| p.is_finite());
                        info
                    })
                    .unwrap_or_default()
            })
            .collect();
        Lookup { details, degraded }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> ProductInfo {
        ProductInfo {
            name: Some(name.into()),
            price: None,
            image: None,
        }
    }

    #[test]
    fn cache_is_bounded_and_keeps_recent_entries() {
        let cache = DetailCache::new(10, Duration::from_secs(3600));
        for i in 0..100 {
            cache.insert_many([(ExternalId::Int(i), info("x"))]);
            // Keep touching id 0: it must survive every rotation.
            assert!(cache.get_many(&[ExternalId::Int(0)])[0].is_some(), "{i}");
            assert!(cache.len() <= 10, "{}", cache.len());
        }
        assert!(cache.get_many(&[ExternalId::Int(1)])[0].is_none());
        assert!(cache.get_many(&[ExternalId::Int(99)])[0].is_some());
    }

    #[test]
    fn cache_of_zero_capacity_holds_nothing() {
        let cache = DetailCache::new(0, Duration::from_secs(1));
        cache.insert_many([(ExternalId::Int(1), info("x"))]);
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.get_many(&[ExternalId::Int(1)]), vec![None]);
    }

    #[test]
    fn cache_entries_expire() {
        let cache = DetailCache::new(100, Duration::from_millis(40));
        cache.insert_many([(ExternalId::Int(1), info("x"))]);
        std::thread::sleep(Duration::from_millis(90));
        assert_eq!(cache.get_many(&[ExternalId::Int(1)]), vec![None]);
    }
}
