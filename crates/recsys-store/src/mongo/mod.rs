//! MongoDB as the data store: the three collections, validated CSV import, streaming loads,
//! popularity counts and artifacts in GridFS.
//!
//! Built on the official `mongodb` driver's **sync** API: the driver runs its own small
//! runtime, so callers (training code, examples, tests) stay plain blocking Rust and the
//! [`RecordSource`](recsys_features::RecordSource) trait needs no async. Every call blocks the
//! calling thread; the types are `Send + Sync` and cheap to clone (one connection pool).
//!
//! # Documents
//!
//! | collection | `_id` | fields |
//! |---|---|---|
//! | `users` | the user id as JSON text (`42`, `"u-1"`) | `user_id`, then each attribute column as a string |
//! | `products` | the product id as JSON text | `product_id`, `name`, `price` (double), `image`, attributes |
//! | `user_product_interactions` | `[user,product,type,ts]` as JSON text | `user_id`, `product_id`, `interaction_type`, `weight` (double), `timestamp` (BSON date) |
//!
//! Ids have one canonical BSON type ([`id_to_bson`]): integer ids are `Int64`, others
//! `String`, in every `user_id` / `product_id` field and every query. `_id`s are always
//! strings: MongoDB-compatible servers such as FerretDB only use their primary key for string
//! `_id`s, and the import upserts by `_id`. Absent values are absent fields. Unique
//! indexes on `users.user_id` and `products.product_id`, plain indexes on
//! `user_product_interactions.product_id` and `(user_id, product_id)`; the interaction key
//! is the `_id`, so re-importing the same rows updates, never duplicates.

mod artifacts;
mod import;
mod schema;
mod source;

use std::time::Duration;

use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ClientOptions;
use mongodb::sync::{Client, Database};
use mongodb::IndexModel;
use recsys_features::ExternalId;

use crate::StoreError;

pub use artifacts::{ArtifactInfo, ARTIFACT_BUCKET};
pub use import::{
    import_csv, BadRows, CollectionSummary, ImportOptions, ImportPhase, ImportProgress,
    ImportSummary, MAX_REPORTED_ERRORS,
};
pub use schema::{id_from_bson, id_to_bson, INTERACTIONS, PRODUCTS, USERS};
pub use source::MongoSource;

/// Default database name when the URI names none.
pub const DEFAULT_DATABASE: &str = "recsys";
/// Connect and server-selection timeout unless set otherwise: a dead server fails fast.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to one database of a MongoDB (or compatible, e.g. FerretDB) server.
///
/// ```no_run
/// use recsys_store::mongo::MongoStore;
///
/// let store = MongoStore::connect("mongodb://127.0.0.1:27017/shop").unwrap();
/// let popular = store.popularity().unwrap(); // (product id, interaction count), most first
/// # let _ = popular;
/// ```
#[derive(Clone, Debug)]
pub struct MongoStore {
    client: Client,
    db: Database,
    uri: String,
}

/// Options for [`MongoStore::connect_with`].
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Database to use; default: the one in the URI's path, else [`DEFAULT_DATABASE`].
    pub database: Option<String>,
    /// Connect and server-selection timeout ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            database: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// `uri` with the password (if any) replaced by `***`, for messages and logs.
///
/// ```
/// use recsys_store::mongo::redact_uri;
/// assert_eq!(redact_uri("mongodb://bob:s3cr:t@db:27017/x"), "mongodb://bob:***@db:27017/x");
/// assert_eq!(redact_uri("mongodb://127.0.0.1:27017/"), "mongodb://127.0.0.1:27017/");
/// ```
pub fn redact_uri(uri: &str) -> String {
    let Some(scheme_end) = uri.find("://") else {
        return uri.to_string();
    };
    let rest = &uri[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return uri.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &uri[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => uri.to_string(),
    }
}

impl MongoStore {
    /// Connects with [`ConnectOptions::default`] and pings the server.
    pub fn connect(uri: &str) -> Result<MongoStore, StoreError> {
        MongoStore::connect_with(uri, &ConnectOptions::default())
    }

    /// Connects to the URI in `MONGODB_URI` ([`StoreError::MissingUri`] if unset or empty).
    pub fn from_env() -> Result<MongoStore, StoreError> {
        match std::env::var("MONGODB_URI") {
            Ok(uri) if !uri.trim().is_empty() => MongoStore::connect(uri.trim()),
            _ => Err(StoreError::MissingUri),
        }
    }

    /// Connects and pings; a server that does not answer within `options.timeout` gives a
    /// [`StoreError::Database`] naming the (redacted) URI.
    pub fn connect_with(uri: &str, options: &ConnectOptions) -> Result<MongoStore, StoreError> {
        let redacted = redact_uri(uri);
        let fail = |context: &str, e: mongodb::error::Error| database_error(&redacted, context, e);
        let mut client_options = ClientOptions::parse(uri)
            .run()
            .map_err(|e| fail("invalid connection string", e))?;
        client_options.connect_timeout = Some(options.timeout);
        client_options.server_selection_timeout = Some(options.timeout);
        client_options.app_name = Some("recsys-store".to_string());
        let database = options
            .database
            .clone()
            .or_else(|| client_options.default_database.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_string());
        let client = Client::with_options(client_options).map_err(|e| fail("connect", e))?;
        let db = client.database(&database);
        db.run_command(doc! { "ping": 1 })
            .run()
            .map_err(|e| fail("server did not answer a ping", e))?;
        Ok(MongoStore {
            client,
            db,
            uri: redacted,
        })
    }

    /// The same server, another database (no round trip).
    pub fn with_database(&self, name: &str) -> MongoStore {
        MongoStore {
            client: self.client.clone(),
            db: self.client.database(name),
            uri: self.uri.clone(),
        }
    }

    /// The URI with any password redacted.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The database name.
    pub fn database_name(&self) -> &str {
        self.db.name()
    }

    /// The driver's database handle, for anything this type does not wrap.
    pub fn database(&self) -> &Database {
        &self.db
    }

    pub(crate) fn error(&self, context: impl Into<String>, e: mongodb::error::Error) -> StoreError {
        database_error(&self.uri, &context.into(), e)
    }

    /// Drops the whole database (every collection and artifact).
    pub fn drop_database(&self) -> Result<(), StoreError> {
        self.db
            .drop()
            .run()
            .map_err(|e| self.error(format!("drop database {}", self.db.name()), e))
    }

    /// Creates the indexes described in the [module docs](self) (idempotent).
    pub fn ensure_indexes(&self) -> Result<(), StoreError> {
        let unique = mongodb::options::IndexOptions::builder()
            .unique(true)
            .build();
        let indexes = [
            (USERS, doc! { "user_id": 1 }, true),
            (PRODUCTS, doc! { "product_id": 1 }, true),
            (INTERACTIONS, doc! { "product_id": 1 }, false),
            (INTERACTIONS, doc! { "user_id": 1, "product_id": 1 }, false),
        ];
        for (collection, keys, is_unique) in indexes {
            let model = IndexModel::builder()
                .keys(keys.clone())
                .options(is_unique.then(|| unique.clone()))
                .build();
            self.db
                .collection::<Document>(collection)
                .create_index(model)
                .run()
                .map_err(|e| self.error(format!("create index {keys} on {collection}"), e))?;
        }
        Ok(())
    }

    /// Number of documents in a collection.
    pub fn count(&self, collection: &str) -> Result<u64, StoreError> {
        self.db
            .collection::<Document>(collection)
            .count_documents(doc! {})
            .run()
            .map_err(|e| self.error(format!("count {collection}"), e))
    }

    /// A [`RecordSource`](recsys_features::RecordSource) streaming the three collections.
    pub fn source(&self) -> MongoSource {
        MongoSource::new(self.clone())
    }

    /// Interactions per product, computed in the database (`$group`), most popular first
    /// (ties by id), for the popularity fallback.
    ///
    /// On MongoDB this runs in the server. FerretDB 1.x groups in its own process after
    /// fetching every document, which is slower than loading; there, wrap the training load
    /// in [`CountingSource`](crate::CountingSource) to count while loading instead.
    pub fn popularity(&self) -> Result<Vec<(ExternalId, u64)>, StoreError> {
        let pipeline = [doc! { "$group": { "_id": "$product_id", "count": { "$sum": 1 } } }];
        let cursor = self
            .db
            .collection::<Document>(INTERACTIONS)
            .aggregate(pipeline)
            .run()
            .map_err(|e| self.error("popularity aggregation", e))?;
        let namespace = format!("{}.{INTERACTIONS}", self.db.name());
        let mut counts = Vec::new();
        for row in cursor {
            let row = row.map_err(|e| self.error("popularity aggregation", e))?;
            let bad = |message: String| StoreError::BadDocument {
                location: format!("mongodb {namespace} popularity"),
                message,
            };
            let id = row
                .get("_id")
                .and_then(schema::id_from_bson)
                .ok_or_else(|| bad(format!("invalid product_id in group {row}")))?;
            let count = match row.get("count") {
                Some(Bson::Int32(c)) => u64::try_from(*c).ok(),
                Some(Bson::Int64(c)) => u64::try_from(*c).ok(),
                Some(Bson::Double(c)) if *c >= 0.0 && c.fract() == 0.0 => Some(*c as u64),
                _ => None,
            }
            .ok_or_else(|| bad(format!("invalid count in group {row}")))?;
            counts.push((id, count));
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(counts)
    }

    /// Writes documents keyed by `_id`: one unordered `insert` for the batch, then, for the
    /// documents that already existed (duplicate-key errors), one `update` command replacing
    /// them by `_id`. Inserting first keeps fresh imports fast on servers where an upsert of
    /// a new document costs a collection scan (FerretDB 1.x); updates by string `_id` use the
    /// primary key everywhere.
    pub(crate) fn upsert_batch(
        &self,
        collection: &str,
        documents: Vec<Document>,
    ) -> Result<WriteCounts, StoreError> {
        if documents.is_empty() {
            return Ok(WriteCounts::default());
        }
        let n = documents.len() as u64;
        let context = format!("insert {n} documents into {collection}");
        let reply = self
            .db
            .run_command(doc! { "insert": collection, "documents": &documents, "ordered": false })
            .run()
            .map_err(|e| self.error(context.clone(), e))?;
        let mut existing = Vec::new();
        for error in reply
            .get_array("writeErrors")
            .map_or(&[][..], Vec::as_slice)
        {
            let error = error.as_document();
            let code = error.and_then(|e| bson_int(e.get("code")));
            let index = error.and_then(|e| bson_int(e.get("index")));
            match (code, index) {
                (Some(DUPLICATE_KEY), Some(index)) if (index as u64) < n => {
                    existing.push(index as usize)
                }
                _ => return Err(self.write_error(context, &reply)),
            }
        }
        let inserted = n - existing.len() as u64;
        if existing.is_empty() {
            return Ok(WriteCounts {
                inserted,
                ..WriteCounts::default()
            });
        }
        let updates: Vec<Document> = existing
            .iter()
            .map(|&i| {
                let d = &documents[i];
                let id = d.get("_id").cloned().unwrap_or(Bson::Null);
                doc! { "q": { "_id": id }, "u": d, "upsert": true }
            })
            .collect();
        let m = updates.len() as u64;
        let context = format!("replace {m} existing documents in {collection}");
        let reply = self
            .db
            .run_command(doc! { "update": collection, "updates": updates, "ordered": false })
            .run()
            .map_err(|e| self.error(context.clone(), e))?;
        if reply.get_array("writeErrors").is_ok_and(|e| !e.is_empty()) {
            return Err(self.write_error(context, &reply));
        }
        // A document deleted between the insert and the update is upserted again.
        let reinserted = reply.get_array("upserted").map_or(0, |a| a.len() as u64);
        let updated = bson_int(reply.get("nModified")).unwrap_or(0).max(0) as u64;
        Ok(WriteCounts {
            inserted: inserted + reinserted,
            updated,
            unchanged: m.saturating_sub(reinserted + updated),
        })
    }

    fn write_error(&self, context: String, reply: &Document) -> StoreError {
        let errors = reply
            .get_array("writeErrors")
            .map_or(&[][..], Vec::as_slice);
        let first = errors.first().map_or_else(String::new, ToString::to_string);
        StoreError::Database {
            uri: self.uri.clone(),
            message: format!("{} write error(s), first: {first}", errors.len()),
            context,
            source: "write errors in the server's reply".into(),
        }
    }

    /// Every value of the id `field` in a collection (streamed in batches).
    pub(crate) fn ids(&self, collection: &str, field: &str) -> Result<Vec<ExternalId>, StoreError> {
        let cursor = self
            .db
            .collection::<Document>(collection)
            .find(doc! {})
            .projection(doc! { "_id": 0, field: 1 })
            .batch_size(10_000)
            .run()
            .map_err(|e| self.error(format!("read ids of {collection}"), e))?;
        let mut ids = Vec::new();
        for d in cursor {
            let d = d.map_err(|e| self.error(format!("read ids of {collection}"), e))?;
            if let Some(id) = d.get(field).and_then(schema::id_from_bson) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

/// What one upsert batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WriteCounts {
    pub(crate) inserted: u64,
    pub(crate) updated: u64,
    pub(crate) unchanged: u64,
}

/// MongoDB's duplicate key error code.
const DUPLICATE_KEY: i64 = 11000;

/// An integer of any BSON width (servers differ in which they send).
fn bson_int(value: Option<&Bson>) -> Option<i64> {
    match value? {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) if v.fract() == 0.0 => Some(*v as i64),
        _ => None,
    }
}

fn database_error(uri: &str, context: &str, e: mongodb::error::Error) -> StoreError {
    let mut message = e.to_string();
    if matches!(*e.kind, mongodb::error::ErrorKind::ServerSelection { .. }) {
        message = format!(
            "no server answered ({message}); is it running? (scripts/db.sh start starts one)"
        );
    }
    StoreError::Database {
        uri: uri.to_string(),
        context: context.to_string(),
        message,
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact_uri("mongodb://u:p@h/db"), "mongodb://u:***@h/db");
        assert_eq!(
            redact_uri("mongodb+srv://u:p@h/?x=1"),
            "mongodb+srv://u:***@h/?x=1"
        );
        assert_eq!(redact_uri("mongodb://u@h/db"), "mongodb://u@h/db");
        assert_eq!(redact_uri("mongodb://h/db?a=b@c"), "mongodb://h/db?a=b@c");
        assert_eq!(redact_uri("not a uri"), "not a uri");
        assert_eq!(
            redact_uri("mongodb://u:p%40x@h1,h2/"),
            "mongodb://u:***@h1,h2/"
        );
    }

    #[test]
    fn dead_server_fails_fast_with_redacted_uri() {
        let start = std::time::Instant::now();
        let options = ConnectOptions {
            timeout: Duration::from_millis(300),
            ..ConnectOptions::default()
        };
        // Port 9 (discard) on loopback: nothing listens there in tests.
        let err =
            MongoStore::connect_with("mongodb://bob:hunter2@127.0.0.1:9/x", &options).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("mongodb://bob:***@127.0.0.1:9/x"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("no server answered"), "{text}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }
}
