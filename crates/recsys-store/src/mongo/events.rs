//! Live events: interactions that arrive one batch at a time while a server runs.
//!
//! A batch is written twice:
//!
//! 1. into the interactions collection ([`INTERACTIONS`]), the source of truth a retrain
//!    reads, with the same document shape as the CSV import and a deterministic `_id`, so a
//!    retried batch is stored once ([`EventBatch`] explains the key);
//! 2. as **one** small document of the [`RECENT_EVENTS`] collection
//!    (`{_id: "<writer>:<sequence>", writer, sequence, at_ms, events}`, `events` the JSON
//!    text of the batch's `[[user_id, product_id], …]`), which other server replicas poll ([`MongoStore::recent_events_since`])
//!    and which is pruned by age ([`MongoStore::prune_recent_events`]), so it stays small
//!    (one document per batch, not per event).

use std::collections::HashMap;

use mongodb::bson::{doc, Bson, Document};
use mongodb::error::ErrorKind;
use mongodb::IndexModel;
use recsys_features::{ExternalId, InteractionRecord};

use super::schema::{interaction_document, interaction_key, INTERACTIONS};
use super::MongoStore;
use crate::StoreError;

/// Name of the collection of recent event batches, polled by server replicas.
pub const RECENT_EVENTS: &str = "recent_events";

/// MongoDB's duplicate key error code: the document is already stored.
const DUPLICATE_KEY: i32 = 11000;

/// One validated event with its storage key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The interaction as stored (its timestamp is the time of receipt when the event had
    /// none).
    pub record: InteractionRecord,
    /// The document `_id`.
    pub key: String,
}

/// A batch of validated live events with their deterministic keys.
///
/// The key of an event is:
///
/// * with a client `event_id`: `event:` and the JSON text of `[user_id, event_id]`, so a
///   retry is stored once even if its other fields changed;
/// * without: the CSV import's interaction key, the JSON text of `[user_id, product_id,
///   interaction_type, timestamp]` **as sent** (`null` for an absent timestamp), plus `#n`
///   for the n-th repetition of the same key within the batch (as the import numbers
///   repeated rows of one file). Retrying a batch therefore writes the same keys; the same
///   event without timestamp nor `event_id` sent again in a *later* batch is taken as the
///   same event (send a timestamp or an `event_id` to keep repeated clicks apart).
///
/// An event without timestamp is stored with the time of receipt.
///
/// ```
/// use recsys_features::InteractionRecord;
/// use recsys_store::mongo::EventBatch;
///
/// let click = InteractionRecord {
///     user_id: 7.into(), product_id: "P-1".into(),
///     interaction_type: Some("view".into()), weight: None, timestamp: None,
/// };
/// let batch = EventBatch::new(1_700_000_000, [(click.clone(), None), (click, None)]);
/// let keys: Vec<&str> = batch.events().iter().map(|e| e.key.as_str()).collect();
/// assert_eq!(keys, [r#"[7,"P-1","view",null]"#, r#"[7,"P-1","view",null]#2"#]);
/// assert_eq!(batch.events()[0].record.timestamp, Some(1_700_000_000));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventBatch {
    events: Vec<StoredEvent>,
}

impl EventBatch {
    /// Keys `events` (each with its optional client event id) and stamps those without a
    /// timestamp with `received_at` (Unix seconds).
    pub fn new(
        received_at: i64,
        events: impl IntoIterator<Item = (InteractionRecord, Option<String>)>,
    ) -> EventBatch {
        let mut occurrences: HashMap<String, u32> = HashMap::new();
        let events = events
            .into_iter()
            .map(|(mut record, event_id)| {
                let key = match event_id {
                    Some(id) => {
                        // Serialising an id and a string to JSON cannot fail.
                        let pair =
                            serde_json::to_string(&(&record.user_id, id)).unwrap_or_default();
                        format!("event:{pair}")
                    }
                    None => {
                        let base = interaction_key(&record, 1);
                        let seen = occurrences.entry(base.clone()).or_insert(0);
                        *seen += 1;
                        if *seen > 1 {
                            interaction_key(&record, *seen)
                        } else {
                            base
                        }
                    }
                };
                record.timestamp.get_or_insert(received_at);
                StoredEvent { record, key }
            })
            .collect();
        EventBatch { events }
    }

    /// The events, in the order given.
    pub fn events(&self) -> &[StoredEvent] {
        &self.events
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// What [`MongoStore::append_events`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendSummary {
    /// Events written now.
    pub inserted: u64,
    /// Events whose key was already stored (a retry): left as they are.
    pub already_stored: u64,
}

/// One batch of the [`RECENT_EVENTS`] collection, as read back by a poller.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentBatch {
    /// The document `_id` (`<writer>:<sequence>`), unique per batch.
    pub id: String,
    /// The writer that stored it.
    pub writer: String,
    /// When the writer stored it (its clock, Unix milliseconds).
    pub at_ms: i64,
    /// `(user_id, product_id)` of each event, in order.
    pub events: Vec<(ExternalId, ExternalId)>,
}

impl MongoStore {
    /// Creates the index of the recent-events collection (`at_ms`; idempotent). A real
    /// MongoDB answers [`Self::recent_events_since`] and [`Self::prune_recent_events`]
    /// from it; FerretDB 1.x scans the (small) collection.
    pub fn ensure_event_indexes(&self) -> Result<(), StoreError> {
        let model = IndexModel::builder().keys(doc! { "at_ms": 1 }).build();
        self.bounded("create index {at_ms: 1} on recent_events", move |s| {
            s.db.collection::<Document>(RECENT_EVENTS)
                .create_index(model)
                .run()
        })?;
        Ok(())
    }

    /// Stores `batch` durably (with the URI's write concern): first every event into the
    /// interactions collection (one unordered `insert_many`; keys already stored count as
    /// [`AppendSummary::already_stored`]), then one document into [`RECENT_EVENTS`] with
    /// `_id` `<writer>:<sequence>` and `at_ms` (this clock).
    ///
    /// On error, part of the batch may be stored: retrying the same batch is safe (the keys
    /// are deterministic). An error never means an event is stored twice.
    ///
    /// ```no_run
    /// use recsys_features::InteractionRecord;
    /// use recsys_store::mongo::{EventBatch, MongoStore};
    ///
    /// let store = MongoStore::connect("mongodb://127.0.0.1:27017/shop")?;
    /// let click = InteractionRecord {
    ///     user_id: "visitor-1".into(), product_id: 10118.into(),
    ///     interaction_type: Some("view".into()), weight: None, timestamp: None,
    /// };
    /// let batch = EventBatch::new(1_700_000_000, [(click, Some("c-1".to_string()))]);
    /// let first = store.append_events(&batch, "replica-a", 1, 1_700_000_000_000)?;
    /// let retry = store.append_events(&batch, "replica-a", 2, 1_700_000_000_100)?;
    /// assert_eq!((first.inserted, retry.already_stored), (1, 1));
    /// // What other replicas poll:
    /// let recent = store.recent_events_since(1_700_000_000_000, &[])?;
    /// assert_eq!(recent.len(), 2);
    /// # Ok::<(), recsys_store::StoreError>(())
    /// ```
    pub fn append_events(
        &self,
        batch: &EventBatch,
        writer: &str,
        sequence: u64,
        at_ms: i64,
    ) -> Result<AppendSummary, StoreError> {
        if batch.is_empty() {
            return Ok(AppendSummary::default());
        }
        let documents: Vec<Document> = batch
            .events
            .iter()
            .map(|e| interaction_document(&e.record, e.key.clone()))
            .collect();
        let total = documents.len() as u64;
        let context = format!("insert {total} event(s) into {INTERACTIONS}");
        let summary = self.bounded_store(&context.clone(), move |s| {
            let result =
                s.db.collection::<Document>(INTERACTIONS)
                    .insert_many(documents)
                    .ordered(false)
                    .run();
            match result {
                Ok(r) => Ok(AppendSummary {
                    inserted: r.inserted_ids.len() as u64,
                    already_stored: 0,
                }),
                Err(e) => match &*e.kind {
                    ErrorKind::InsertMany(failure)
                        if failure.write_concern_error.is_none()
                            && failure.write_errors.as_ref().is_some_and(|errors| {
                                errors.iter().all(|w| w.code == DUPLICATE_KEY)
                            }) =>
                    {
                        let duplicates = failure.write_errors.as_ref().map_or(0, Vec::len) as u64;
                        Ok(AppendSummary {
                            inserted: total - duplicates,
                            already_stored: duplicates,
                        })
                    }
                    _ => Err(s.error(context, e)),
                },
            }
        })?;
        // One text field, not an array of documents: FerretDB 1.x decodes every value of
        // every document a find scans, so a batch as one string keeps polls ~30× cheaper
        // (measured: 1,100 batches of 100 events, 0.1 s instead of 2.9 s per scan).
        let pairs: Vec<(&ExternalId, &ExternalId)> = batch
            .events
            .iter()
            .map(|e| (&e.record.user_id, &e.record.product_id))
            .collect();
        // Serialising ids to JSON cannot fail.
        let events = serde_json::to_string(&pairs).unwrap_or_default();
        let recent = doc! {
            "_id": format!("{writer}:{sequence}"),
            "writer": writer,
            "sequence": sequence as i64,
            "at_ms": at_ms,
            "events": events,
        };
        self.bounded("insert a batch into recent_events", move |s| {
            s.db.collection::<Document>(RECENT_EVENTS)
                .insert_one(recent)
                .run()
        })?;
        Ok(summary)
    }

    /// The batches of [`RECENT_EVENTS`] stored at `since_ms` or later (the writer's clock),
    /// except those whose id is in `skip` (already applied by the caller), oldest first.
    /// Documents that do not have the expected shape are skipped (they are not ours).
    pub fn recent_events_since(
        &self,
        since_ms: i64,
        skip: &[String],
    ) -> Result<Vec<RecentBatch>, StoreError> {
        let filter = if skip.is_empty() {
            doc! { "at_ms": { "$gte": since_ms } }
        } else {
            doc! { "at_ms": { "$gte": since_ms }, "_id": { "$nin": skip } }
        };
        let mut batches = self
            .bounded("read recent_events", move |s| {
                s.db.collection::<Document>(RECENT_EVENTS)
                    .find(filter)
                    .run()?
                    .collect::<mongodb::error::Result<Vec<Document>>>()
            })?
            .iter()
            .filter_map(recent_batch)
            .collect::<Vec<_>>();
        batches.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
        Ok(batches)
    }

    /// Deletes the [`RECENT_EVENTS`] batches stored before `before_ms`; returns how many.
    pub fn prune_recent_events(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.bounded("prune recent_events", move |s| {
            s.db.collection::<Document>(RECENT_EVENTS)
                .delete_many(doc! { "at_ms": { "$lt": before_ms } })
                .run()
                .map(|r| r.deleted_count)
        })
    }
}

fn integer(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int64(v) => Some(*v),
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Double(v) if v.fract() == 0.0 => Some(*v as i64),
        _ => None,
    }
}

fn recent_batch(doc: &Document) -> Option<RecentBatch> {
    let events: Vec<(ExternalId, ExternalId)> =
        serde_json::from_str(doc.get_str("events").ok()?).ok()?;
    Some(RecentBatch {
        id: doc.get_str("_id").ok()?.to_string(),
        writer: doc.get_str("writer").ok()?.to_string(),
        at_ms: integer(doc.get("at_ms"))?,
        events,
    })
}
