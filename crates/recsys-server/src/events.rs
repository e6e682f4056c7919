//! Live events: `POST /events`, where they are stored ([`EventStore`]: MongoDB, or memory
//! in tests), and the poller that brings other replicas' events into this replica's
//! [`LiveState`](crate::LiveState).
//!
//! # The contract of `POST /events`
//!
//! * The body is one event object or a JSON array of 1 to
//!   [`ServerConfig::events_max_batch`](crate::ServerConfig) of them: `user_id` and
//!   `product_id` (integer or string), optional `interaction_type` (string), `weight`
//!   (number or numeric string, finite, `>= 0`), `timestamp` (integer Unix seconds or ISO
//!   8601 text), `event_id` (string or integer, at most `max_id_len` bytes). The values
//!   obey the rules of the CSV import ([`recsys_store::interaction_from_fields`]); users
//!   and products need not be known yet (a new shopper is the point; a retrain registers
//!   them from the interactions). Unknown fields are refused (a typo must not lose data).
//! * **All or nothing for bad input**: if any event is invalid, the answer is 400 naming
//!   the first bad event's index and field (`param`: `[3].weight`, or `weight` for a single
//!   object) and nothing of the request is stored.
//! * **2xx means durable**: 200 only after the database acknowledged every event (with the
//!   URI's write concern). Then the events count at once on this replica and, through the
//!   recent-events collection, on every other replica within its poll interval.
//! * **Database down → 503** with `Retry-After`; part of the batch may be stored, and
//!   retrying the same request is safe: each event's key is deterministic
//!   ([`recsys_store::mongo::EventBatch`]), so nothing is stored twice.
//! * **Too big → 413**: a body above `events_max_body` bytes or a batch above
//!   `events_max_batch` events.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use recsys_features::InteractionRecord;
use recsys_store::mongo::{
    AppendSummary, ConnectOptions, EventBatch, MongoStore, RecentBatch, RECENT_EVENTS,
};
use recsys_store::{interaction_from_fields, InteractionFields};
use serde::Serialize;
use serde_json::Value;

use crate::details::BoxFuture;
use crate::error::{clip, ApiError, ServerError};
use crate::state::AppState;

/// Where live events are stored and read back (MongoDB in production; [`MemoryEvents`] in
/// tests and examples). With one, the router serves `POST /events`: validated with the
/// CSV import's rules, all or nothing for bad input (400 naming index and field), 200 only
/// once durable, 503 with `Retry-After` when the store fails, 413 above the limits (the
/// full contract: `docs/serving.md`, "Live events").
pub trait EventStore: Send + Sync + 'static {
    /// Stores `batch` durably as the batch `<writer>:<sequence>` written at `at_ms`
    /// (see [`MongoStore::append_events`]).
    fn append<'a>(
        &'a self,
        batch: &'a EventBatch,
        writer: &'a str,
        sequence: u64,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<AppendSummary, ServerError>>;

    /// The batches stored at `since_ms` or later, except the ids in `skip`, oldest first.
    fn recent_since<'a>(
        &'a self,
        since_ms: i64,
        skip: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RecentBatch>, ServerError>>;

    /// Deletes the batches stored before `before_ms` (the events themselves stay).
    fn prune(&self, before_ms: i64) -> BoxFuture<'_, Result<u64, ServerError>>;

    /// A short description for logs.
    fn describe(&self) -> String;
}

/// Live events in MongoDB: the interactions collection plus [`RECENT_EVENTS`], through
/// `recsys-store` (each call on the blocking pool, bounded by the operation timeout).
#[derive(Debug, Clone)]
pub struct MongoEvents {
    store: MongoStore,
    indexed: Arc<std::sync::atomic::AtomicBool>,
}

impl MongoEvents {
    /// A store for `uri` (database: `database`, else the URI's, else `recsys`) whose
    /// operations give up after `timeout`. Does not contact the server, so a server can
    /// start while the database is down (events are then refused with 503). Parses the URI
    /// on the blocking pool (the store's driver is synchronous).
    pub async fn open(
        uri: &str,
        database: Option<&str>,
        timeout: Duration,
    ) -> Result<MongoEvents, ServerError> {
        let options = ConnectOptions {
            database: database.map(str::to_string),
            timeout,
            operation_timeout: timeout,
        };
        let owned = uri.to_string();
        let store = tokio::task::spawn_blocking(move || MongoStore::open(&owned, &options))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))?
            .map_err(|e| ServerError::Database {
                uri: recsys_store::mongo::redact_uri(uri),
                message: e.to_string(),
            })?;
        Ok(MongoEvents {
            store,
            indexed: Arc::default(),
        })
    }

    fn error(&self, e: recsys_store::StoreError) -> ServerError {
        ServerError::Database {
            uri: self.store.uri().to_string(),
            message: e.to_string(),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&MongoStore) -> Result<T, recsys_store::StoreError> + Send + 'static,
    ) -> Result<T, ServerError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))?
            .map_err(|e| self.error(e))
    }
}

impl EventStore for MongoEvents {
    fn append<'a>(
        &'a self,
        batch: &'a EventBatch,
        writer: &'a str,
        sequence: u64,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<AppendSummary, ServerError>> {
        let batch = batch.clone();
        let writer = writer.to_string();
        Box::pin(self.blocking(move |s| s.append_events(&batch, &writer, sequence, at_ms)))
    }

    fn recent_since<'a>(
        &'a self,
        since_ms: i64,
        skip: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RecentBatch>, ServerError>> {
        let skip = skip.to_vec();
        let indexed = Arc::clone(&self.indexed);
        Box::pin(self.blocking(move |s| {
            // The index helps a real MongoDB; created once the database answers.
            if !indexed.load(Ordering::Relaxed) {
                s.ensure_event_indexes()?;
                indexed.store(true, Ordering::Relaxed);
            }
            s.recent_events_since(since_ms, &skip)
        }))
    }

    fn prune(&self, before_ms: i64) -> BoxFuture<'_, Result<u64, ServerError>> {
        Box::pin(self.blocking(move |s| s.prune_recent_events(before_ms)))
    }

    fn describe(&self) -> String {
        format!(
            "{} (database {}, collection {RECENT_EVENTS})",
            self.store.uri(),
            self.store.database_name()
        )
    }
}

/// Live events in memory: for tests and examples without a database. Every batch stored
/// is kept; [`MemoryEvents::set_down`] makes every call fail as a dead database would.
#[derive(Debug, Default)]
pub struct MemoryEvents {
    batches: Mutex<Vec<RecentBatch>>,
    events: Mutex<Vec<(String, InteractionRecord)>>,
    down: std::sync::atomic::AtomicBool,
}

impl MemoryEvents {
    /// An empty store that answers.
    pub fn new() -> MemoryEvents {
        MemoryEvents::default()
    }

    /// While `down`, every call fails with [`ServerError::Database`].
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Every event stored, with its key, in the order stored (each key once).
    pub fn events(&self) -> Vec<(String, InteractionRecord)> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn check(&self) -> Result<(), ServerError> {
        if self.down.load(Ordering::SeqCst) {
            Err(ServerError::Database {
                uri: "memory".into(),
                message: "the in-memory event store is set down".into(),
            })
        } else {
            Ok(())
        }
    }
}

impl EventStore for MemoryEvents {
    fn append<'a>(
        &'a self,
        batch: &'a EventBatch,
        writer: &'a str,
        sequence: u64,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<AppendSummary, ServerError>> {
        Box::pin(async move {
            self.check()?;
            let mut summary = AppendSummary::default();
            {
                let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
                for event in batch.events() {
                    if events.iter().any(|(key, _)| key == &event.key) {
                        summary.already_stored += 1;
                    } else {
                        events.push((event.key.clone(), event.record.clone()));
                        summary.inserted += 1;
                    }
                }
            }
            self.batches
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(RecentBatch {
                    id: format!("{writer}:{sequence}"),
                    writer: writer.to_string(),
                    at_ms,
                    events: batch
                        .events()
                        .iter()
                        .map(|e| (e.record.user_id.clone(), e.record.product_id.clone()))
                        .collect(),
                });
            Ok(summary)
        })
    }

    fn recent_since<'a>(
        &'a self,
        since_ms: i64,
        skip: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RecentBatch>, ServerError>> {
        Box::pin(async move {
            self.check()?;
            Ok(self
                .batches
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|b| b.at_ms >= since_ms && !skip.contains(&b.id))
                .cloned()
                .collect())
        })
    }

    fn prune(&self, before_ms: i64) -> BoxFuture<'_, Result<u64, ServerError>> {
        Box::pin(async move {
            self.check()?;
            let mut batches = self.batches.lock().unwrap_or_else(|e| e.into_inner());
            let before = batches.len();
            batches.retain(|b| b.at_ms >= before_ms);
            Ok((before - batches.len()) as u64)
        })
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The body of a 200 answer of `POST /events`.
#[derive(Debug, Clone, Serialize)]
pub struct EventsAccepted {
    /// Events of the request, all durable now.
    pub accepted: usize,
    /// Of those, stored by this request.
    pub stored: u64,
    /// Of those, already stored by an earlier try of the same events (same keys).
    pub already_stored: u64,
}

const FIELDS: [&str; 6] = [
    "user_id",
    "product_id",
    "interaction_type",
    "weight",
    "timestamp",
    "event_id",
];

/// The text of a JSON scalar for the store's rules: strings as they are, numbers as
/// written; `None` for null or absent. Other types are refused.
fn text_of<'a>(
    value: Option<&'a Value>,
    field: &str,
    numbers: bool,
) -> Result<Option<std::borrow::Cow<'a, str>>, String> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(std::borrow::Cow::Borrowed(s))),
        Some(Value::Number(n)) if numbers => Ok(Some(std::borrow::Cow::Owned(n.to_string()))),
        Some(other) => Err(format!(
            "{field} must be {}, not {}",
            if numbers {
                "a number or a string"
            } else {
                "a string"
            },
            clip(&other.to_string())
        )),
    }
}

/// Validates one event (the store's rules plus the server's id length limit).
fn parse_event(
    value: &Value,
    max_id_len: usize,
) -> Result<(InteractionRecord, Option<String>), (&'static str, String)> {
    let Value::Object(map) = value else {
        return Err(("", "an event must be a JSON object".into()));
    };
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err((
            "",
            format!(
                "unknown field {} (fields: {})",
                clip(unknown),
                FIELDS.join(", ")
            ),
        ));
    }
    let field = |name: &'static str, numbers: bool| {
        text_of(map.get(name), name, numbers).map_err(|message| (name, message))
    };
    let ids = [field("user_id", true)?, field("product_id", true)?];
    for (name, id) in ["user_id", "product_id"].iter().zip(&ids) {
        if let (Some(Value::Number(n)), _) = (map.get(*name), id) {
            if !(n.is_i64() || n.is_u64()) {
                return Err((
                    name,
                    format!("{name} must be an integer or a string, not {n}"),
                ));
            }
        }
        if id.as_ref().is_some_and(|t| t.len() > max_id_len) {
            return Err((name, format!("{name} is longer than {max_id_len} bytes")));
        }
    }
    let kind = field("interaction_type", false)?;
    let weight = field("weight", true)?;
    let timestamp = field("timestamp", true)?;
    let event_id = field("event_id", true)?;
    if let Some(id) = &event_id {
        if id.trim().is_empty() || id.len() > max_id_len {
            return Err((
                "event_id",
                format!("event_id must be 1 to {max_id_len} bytes"),
            ));
        }
    }
    let record = interaction_from_fields(InteractionFields {
        user_id: ids[0].as_deref(),
        product_id: ids[1].as_deref(),
        interaction_type: kind.as_deref(),
        weight: weight.as_deref(),
        timestamp: timestamp.as_deref(),
    })
    .map_err(|e| (e.field, e.message))?;
    Ok((record, event_id.map(|id| id.trim().to_string())))
}

fn too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
}

fn reject(state: &AppState, events: usize, error: ApiError) -> ApiError {
    state
        .metrics()
        .events_rejected
        .fetch_add(events.max(1) as u64, Ordering::Relaxed);
    error
}

/// Parses and validates a request body into a keyed batch, or the 400/413 to answer.
fn parse_body(state: &AppState, bytes: &[u8]) -> Result<EventBatch, ApiError> {
    let config = state.config();
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        reject(
            state,
            1,
            ApiError::bad_param("body", format!("the body is not valid JSON: {e}")),
        )
    })?;
    let (list, single) = match value {
        Value::Array(list) => (list, false),
        object @ Value::Object(_) => (vec![object], true),
        _ => {
            return Err(reject(
                state,
                1,
                ApiError::bad_param(
                    "body",
                    "the body must be an event object or an array of events",
                ),
            ))
        }
    };
    if list.is_empty() {
        return Err(reject(
            state,
            1,
            ApiError::bad_param("body", "the array holds no event"),
        ));
    }
    if list.len() > config.events_max_batch {
        return Err(reject(
            state,
            list.len(),
            too_large(format!(
                "a batch of {} events is longer than the limit of {}: split it into several requests",
                list.len(),
                config.events_max_batch
            )),
        ));
    }
    let mut parsed = Vec::with_capacity(list.len());
    for (i, value) in list.iter().enumerate() {
        match parse_event(value, config.max_id_len) {
            Ok(event) => parsed.push(event),
            Err((field, message)) => {
                let param = match (single, field) {
                    (true, "") => "body".to_string(),
                    (true, f) => f.to_string(),
                    (false, "") => format!("[{i}]"),
                    (false, f) => format!("[{i}].{f}"),
                };
                let prefix = if single {
                    String::new()
                } else {
                    format!("event {i}: ")
                };
                return Err(reject(
                    state,
                    list.len(),
                    ApiError::bad_param(
                        &param,
                        format!("{prefix}{message}; nothing of this request was stored"),
                    ),
                ));
            }
        }
    }
    Ok(EventBatch::new(now_ms().div_euclid(1000), parsed))
}

/// `POST /events` (see the module docs).
pub async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some(store) = state.events().cloned() else {
        return Err(ApiError::not_found("live events are not configured"));
    };
    let limit = state.config().events_max_body;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let over = |size: String| {
        reject(
            &state,
            1,
            too_large(format!(
                "the body{size} is larger than the limit of {limit} bytes: send fewer events per request"
            )),
        )
    };
    if let Some(length) = declared.filter(|&l| l > limit as u64) {
        return Err(over(format!(" ({length} bytes)")));
    }
    // Without a (truthful) content-length, reading stops at the limit. Any other read
    // error is a client that went away mid-body: nothing was stored either way.
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| over(String::new()))?;
    let batch = parse_body(&state, &bytes)?;
    let n = batch.len();
    let sequence = state.next_event_sequence();
    let at_ms = now_ms();
    let writer = state.writer_id();
    let stored = tokio::time::timeout(
        state.config().events_timeout,
        store.append(&batch, writer, sequence, at_ms),
    )
    .await
    .unwrap_or_else(|_| {
        Err(ServerError::DatabaseTimeout {
            uri: store.describe(),
            message: format!(
                "storing {n} event(s) took longer than {:?}",
                state.config().events_timeout
            ),
        })
    });
    let metrics = state.metrics();
    match stored {
        Ok(summary) => {
            state.live().record(
                batch
                    .events()
                    .iter()
                    .map(|e| (&e.record.user_id, &e.record.product_id)),
                at_ms,
            );
            state
                .live()
                .mark_applied(format!("{writer}:{sequence}"), at_ms);
            metrics
                .events_accepted
                .fetch_add(n as u64, Ordering::Relaxed);
            Ok(Json(EventsAccepted {
                accepted: n,
                stored: summary.inserted,
                already_stored: summary.already_stored,
            })
            .into_response())
        }
        Err(e) => {
            metrics.events_failed.fetch_add(n as u64, Ordering::Relaxed);
            tracing::warn!(error = %e, events = n, "events refused: the database did not store them");
            let retry = state.config().db_retry_interval.as_secs().max(1);
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                format!(
                    "the events could not be stored ({}): none of this request is acknowledged; retry the same request (events are keyed, nothing is stored twice)",
                    e.public_message()
                ),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&retry.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Ok(response)
        }
    }
}

/// Starts the background task that reads what other replicas stored every
/// [`ServerConfig::events_poll_interval`](crate::ServerConfig) into the live state, and
/// prunes the recent-events collection by age. Each poll reads the batches stored since
/// `events_lookback` before the previous poll (clock skew and slow writes), skipping those
/// already applied. Stops when every clone of the state is dropped; `None` without an event
/// store.
pub fn spawn_event_poller(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    let store: Arc<dyn EventStore> = state.events()?.clone();
    let weak = state.downgrade();
    let config = state.config();
    let interval = config.events_poll_interval;
    let lookback = i64::try_from(config.events_lookback.as_millis()).unwrap_or(i64::MAX);
    let retention = i64::try_from(config.events_retention.as_millis()).unwrap_or(i64::MAX);
    Some(tokio::spawn(async move {
        // The first poll reads everything still retained (events of the last minutes).
        let mut since = now_ms().saturating_sub(retention);
        let mut last_prune = i64::MIN;
        let mut failing = false;
        loop {
            let Some(state) = AppState::upgrade(&weak) else {
                break;
            };
            let started = now_ms();
            let skip = state.live().applied_ids(since);
            match store.recent_since(since, &skip).await {
                Ok(batches) => {
                    let mut applied = 0u64;
                    for batch in &batches {
                        if state
                            .live()
                            .apply_batch(&batch.id, batch.at_ms, &batch.events)
                        {
                            applied += batch.events.len() as u64;
                        }
                    }
                    state
                        .metrics()
                        .events_polled
                        .fetch_add(applied, Ordering::Relaxed);
                    state
                        .metrics()
                        .events_last_poll_ms
                        .store(started.max(0) as u64, Ordering::Relaxed);
                    since = since.max(started.saturating_sub(lookback));
                    state.live().prune(now_ms(), since);
                    if failing {
                        tracing::info!("event poller: the database answers again");
                        failing = false;
                    }
                }
                Err(e) => {
                    state
                        .metrics()
                        .events_poll_errors
                        .fetch_add(1, Ordering::Relaxed);
                    if !failing {
                        tracing::warn!(error = %e, "event poller: could not read recent events (retrying every poll)");
                        failing = true;
                    }
                }
            }
            if started.saturating_sub(last_prune) >= retention / 2 {
                match store.prune(started.saturating_sub(retention)).await {
                    Ok(n) => {
                        last_prune = started;
                        if n > 0 {
                            tracing::debug!(batches = n, "recent events pruned");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "recent events not pruned"),
                }
            }
            drop(state);
            tokio::time::sleep(interval).await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_features::ExternalId;

    #[test]
    fn events_follow_the_import_rules() {
        let ok = serde_json::json!({"user_id": 7, "product_id": "P-1", "weight": "0.5",
            "timestamp": "2017-09-09T22:30:46Z", "interaction_type": "view", "event_id": 3});
        let (record, id) = parse_event(&ok, 128).unwrap();
        assert_eq!(record.user_id, ExternalId::Int(7));
        assert_eq!(record.timestamp, Some(1_504_996_246));
        assert_eq!(id.as_deref(), Some("3"));
        let bad = |v: Value| parse_event(&v, 8).unwrap_err();
        assert_eq!(bad(serde_json::json!({"product_id": 1})).0, "user_id");
        assert_eq!(
            bad(serde_json::json!({"user_id": 1.5, "product_id": 1})).0,
            "user_id"
        );
        assert_eq!(
            bad(serde_json::json!({"user_id": true, "product_id": 1})).0,
            "user_id"
        );
        assert_eq!(
            bad(serde_json::json!({"user_id": "123456789", "product_id": 1})).0,
            "user_id"
        );
        assert_eq!(
            bad(serde_json::json!({"user_id": 1, "product_id": 1, "weight": -1})).0,
            "weight"
        );
        assert_eq!(
            bad(serde_json::json!({"user_id": 1, "product_id": 1, "timestamp": "yesterday"})).0,
            "timestamp"
        );
        assert_eq!(
            bad(serde_json::json!({"user_id": 1, "product_id": 1, "interaction_type": 3})).0,
            "interaction_type"
        );
        let (field, message) = bad(serde_json::json!({"userId": 1, "product_id": 1}));
        assert_eq!(field, "");
        assert!(message.contains("unknown field userId"), "{message}");
        assert_eq!(bad(serde_json::json!([1])).0, "");
    }
}
