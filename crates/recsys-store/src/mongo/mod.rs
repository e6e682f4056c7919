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
//! | `recent_events` | `<writer>:<sequence>` | `writer`, `sequence`, `at_ms` (writer's clock), `events` (JSON text of `[[user_id, product_id], …]`): one document per live-event batch, pruned by age ([`EventBatch`]) |
//!
//! Ids have one canonical BSON type ([`id_to_bson`]): integer ids are `Int64`, others
//! `String`, in every `user_id` / `product_id` field and every query. `_id`s are always
//! strings: MongoDB-compatible servers such as FerretDB only use their primary key for string
//! `_id`s, and the import upserts by `_id`. Absent values are absent fields. Unique
//! indexes on `users.user_id` and `products.product_id`, plain indexes on
//! `user_product_interactions.product_id` and `(user_id, product_id)`; the interaction key
//! is the `_id`, so re-importing the same rows updates, never duplicates.
//!
//! # Timeouts
//!
//! No call waits for the server without bound: connecting uses
//! [`ConnectOptions::timeout`], every other operation (one command, one batch of a cursor,
//! one artifact transfer) [`ConnectOptions::operation_timeout`]. The sync driver has no
//! client-side operation timeout of its own, so each operation runs on a helper thread and
//! the caller stops waiting after the limit with [`StoreError::Timeout`], which names the
//! operation; the abandoned request finishes (or fails) in the background.

mod artifacts;
mod events;
mod import;
mod publish;
mod schema;
mod source;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ClientOptions;
use mongodb::sync::{Client, Database};
use mongodb::IndexModel;
use recsys_features::ExternalId;

use crate::StoreError;

pub use artifacts::{ArtifactInfo, ARTIFACT_BUCKET};
pub use events::{AppendSummary, EventBatch, RecentBatch, StoredEvent, RECENT_EVENTS};
pub use import::{
    import_csv, BadRows, CollectionSummary, ImportOptions, ImportPhase, ImportProgress,
    ImportSummary, MAX_REPORTED_ERRORS,
};
pub use publish::{PublishedModel, MODELS};
pub use schema::{
    id_from_bson, id_to_bson, product_details_lenient, product_record_lenient, INTERACTIONS,
    PRODUCTS, USERS,
};
pub use source::MongoSource;

/// Default database name when the URI names none.
pub const DEFAULT_DATABASE: &str = "recsys";
/// Connect and server-selection timeout unless set otherwise: a dead server fails fast.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait for any one operation after connecting unless set otherwise
/// ([`ConnectOptions::operation_timeout`]).
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(120);
/// At most this many replacements of existing documents go into one `update` command.
/// FerretDB 1.24 (SQLite) never answers an `update` with more than 100 replacement
/// statements on existing documents (and the database stays stuck until it restarts).
pub const MAX_REPLACEMENTS_PER_COMMAND: usize = 50;

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
    operation_timeout: Duration,
    secrets: Secrets,
}

/// Text that must never appear in a message (the URI's user-info and password, and the
/// pieces of the password between URI delimiters, which the driver may quote when an
/// unencoded `/`, `?` or `@` makes it misread the URI), printed as `***`.
#[derive(Clone, Default)]
struct Secrets {
    whole: Vec<String>,
    pieces: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Secrets {
    /// The secrets of `uri`'s user-info.
    fn of(uri: &str) -> Secrets {
        let mut secrets = Secrets::default();
        let Some((userinfo, _)) = split_userinfo(uri) else {
            return secrets;
        };
        let Some((_, password)) = userinfo.split_once(':') else {
            return secrets;
        };
        if password.is_empty() {
            return secrets;
        }
        secrets.whole = vec![
            userinfo.to_string(),
            password.to_string(),
            percent_decode(password),
        ];
        secrets.pieces = password
            .split(['/', '?', '@', ':', '#', ',', '[', ']', '&', '='])
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        // Longest first, so a shorter secret inside a longer one does not leave the rest.
        secrets.whole.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.pieces.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets
    }

    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in &self.whole {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "***");
            }
        }
        for piece in &self.pieces {
            text = replace_token(&text, piece);
        }
        text
    }
}

/// `text` with every occurrence of `token` that is not part of a longer word replaced by
/// `***`.
fn replace_token(text: &str, token: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(token) {
        let end = at + token.len();
        let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        let inside_word = word(rest[..at].chars().next_back()) || word(rest[end..].chars().next());
        out.push_str(&rest[..at]);
        out.push_str(if inside_word { token } else { "***" });
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Options for [`MongoStore::connect_with`].
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Database to use; default: the one in the URI's path, else [`DEFAULT_DATABASE`].
    pub database: Option<String>,
    /// Connect and server-selection timeout ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// The longest wait for any one later operation: a command, one batch of a cursor, one
    /// artifact transfer ([`DEFAULT_OPERATION_TIMEOUT`]). A server that does not answer in
    /// time gives [`StoreError::Timeout`] naming the operation instead of a hang.
    pub operation_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            database: None,
            timeout: DEFAULT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }
}

/// `uri` with the password (if any) replaced by `***`, for messages and logs.
///
/// Everything from the first `:` after the scheme's `://` up to the **last** `@` is
/// redacted, whatever it contains, so a password with an unencoded `@`, `/`, `?` or `:`
/// never shows. A URI whose text before its last `@` has no `:` has no password and is
/// returned unchanged.
///
/// ```
/// use recsys_store::mongo::redact_uri;
/// assert_eq!(redact_uri("mongodb://bob:s3cr:t@db:27017/x"), "mongodb://bob:***@db:27017/x");
/// assert_eq!(redact_uri("mongodb://bob:a/b?c@db/x"), "mongodb://bob:***@db/x");
/// assert_eq!(redact_uri("mongodb://127.0.0.1:27017/"), "mongodb://127.0.0.1:27017/");
/// ```
pub fn redact_uri(uri: &str) -> String {
    let Some((userinfo, host_start)) = split_userinfo(uri) else {
        return uri.to_string();
    };
    let scheme_end = host_start - userinfo.len() - 1;
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{}{user}:***{}", &uri[..scheme_end], &uri[host_start - 1..]),
        None => uri.to_string(),
    }
}

/// `text` (typically a driver's error message about `uri`) with the password of `uri`
/// removed: its user-info, its password (raw and percent-decoded) and the pieces of the
/// password between URI delimiters, which the driver quotes when an unencoded `/`, `?` or
/// `@` makes it misread the URI, each become `***`.
///
/// ```
/// use recsys_store::mongo::redact_secrets;
/// let uri = "mongodb://bob:se?cret@db/x";
/// let message = "invalid server address bob:se: the port must be an integer, got se";
/// assert_eq!(
///     redact_secrets(uri, message),
///     "invalid server address bob:***: the port must be an integer, got ***"
/// );
/// ```
pub fn redact_secrets(uri: &str, text: &str) -> String {
    Secrets::of(uri).scrub(text)
}

/// The text between `scheme://` and the last `@` of `uri`, and the byte index just after
/// that `@`.
fn split_userinfo(uri: &str) -> Option<(&str, usize)> {
    let scheme_end = uri.find("://")? + 3;
    let at = scheme_end + uri[scheme_end..].rfind('@')?;
    Some((&uri[scheme_end..at], at + 1))
}

/// `%XX` sequences decoded (invalid ones kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    /// [`StoreError::Database`] (no server) or [`StoreError::Timeout`] (a server that
    /// accepts the connection but does not answer), naming the (redacted) URI. Driver
    /// messages never show the password.
    pub fn connect_with(uri: &str, options: &ConnectOptions) -> Result<MongoStore, StoreError> {
        let store = MongoStore::open(uri, options)?;
        // Longer than server selection, so a server that is not there is reported as such;
        // one that connects but does not answer the ping gives a timeout.
        let pinging = store.with_operation_timeout(options.timeout + Duration::from_secs(2));
        pinging.bounded("ping (the server did not answer)", |s| {
            s.db.run_command(doc! { "ping": 1 }).run()
        })?;
        Ok(store)
    }

    /// Like [`Self::connect_with`] but without contacting the server: only the URI is
    /// checked. For a long-running process (a server) that must start while the database is
    /// down; every later operation fails with [`StoreError::Database`] or
    /// [`StoreError::Timeout`] until the server answers.
    pub fn open(uri: &str, options: &ConnectOptions) -> Result<MongoStore, StoreError> {
        let redacted = redact_uri(uri);
        let secrets = Secrets::of(uri);
        let fail = |context: &str, e: mongodb::error::Error| {
            database_error(&redacted, &secrets, context, e)
        };
        let context = if secrets.pieces.len() > 1 {
            "invalid connection string (a password containing / ? @ : # , [ ] must be \
             percent-encoded, e.g. / as %2F)"
        } else {
            "invalid connection string"
        };
        let mut client_options = ClientOptions::parse(uri)
            .run()
            .map_err(|e| fail(context, e))?;
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
        Ok(MongoStore {
            client,
            db,
            uri: redacted,
            operation_timeout: options.operation_timeout.max(Duration::from_millis(1)),
            secrets,
        })
    }

    /// Runs one database operation on a helper thread and waits at most the operation
    /// timeout for it; `context` names it in errors. A timed-out operation is abandoned (it
    /// ends in the background when the server answers or the connection closes).
    pub(crate) fn bounded<T, F>(&self, context: &str, operation: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&MongoStore) -> mongodb::error::Result<T> + Send + 'static,
    {
        let owned = context.to_string();
        self.bounded_store(context, move |s| {
            operation(s).map_err(|e| s.error(owned, e))
        })
    }

    /// [`Self::bounded`] for an operation that builds its own [`StoreError`]s.
    pub(crate) fn bounded_store<T, F>(&self, context: &str, operation: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&MongoStore) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        let (sender, receiver) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("recsys-store-db".to_string())
            .spawn(move || {
                let _ = sender.send(operation(&store));
            })
            .map_err(|e| StoreError::Database {
                uri: self.uri.clone(),
                context: context.to_string(),
                message: format!("cannot start a thread for the operation: {e}"),
                source: Box::new(e),
            })?;
        match receiver.recv_timeout(self.operation_timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(self.timeout_error(context)),
            Err(RecvTimeoutError::Disconnected) => Err(StoreError::Database {
                uri: self.uri.clone(),
                context: context.to_string(),
                message: "the operation's thread ended without an answer (it panicked)".into(),
                source: "operation thread panicked".into(),
            }),
        }
    }

    pub(crate) fn timeout_error(&self, context: &str) -> StoreError {
        StoreError::Timeout {
            uri: self.uri.clone(),
            context: context.to_string(),
            after: self.operation_timeout,
        }
    }

    /// The operation timeout ([`ConnectOptions::operation_timeout`]).
    pub fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    /// The same store with another operation timeout.
    pub fn with_operation_timeout(&self, timeout: Duration) -> MongoStore {
        MongoStore {
            operation_timeout: timeout.max(Duration::from_millis(1)),
            ..self.clone()
        }
    }

    /// Streams the documents of `collection` (all of them, with `projection` if given)
    /// from a helper thread, in cursor batches of `batch_size`; each wait for the next
    /// documents is bounded by the operation timeout. Dropping the iterator stops the
    /// reader.
    pub(crate) fn stream(
        &self,
        collection: &str,
        projection: Option<Document>,
        batch_size: u32,
        context: String,
    ) -> DocStream {
        let store = self.clone();
        let collection = collection.to_string();
        let (sender, receiver) = mpsc::sync_channel::<Chunk>(4);
        let chunk_len = (batch_size as usize).clamp(1, 1024);
        let spawned = std::thread::Builder::new()
            .name("recsys-store-cursor".to_string())
            .spawn(move || {
                let cursor = store
                    .db
                    .collection::<Document>(&collection)
                    .find(doc! {})
                    .with_options(
                        mongodb::options::FindOptions::builder()
                            .projection(projection)
                            .batch_size(batch_size)
                            .build(),
                    )
                    .run();
                let cursor = match cursor {
                    Ok(cursor) => cursor,
                    Err(e) => {
                        let _ = sender.send(Chunk::Failed(Box::new(e)));
                        return;
                    }
                };
                let mut chunk = Vec::with_capacity(chunk_len);
                for d in cursor {
                    match d {
                        Ok(d) => {
                            chunk.push(d);
                            if chunk.len() == chunk_len {
                                let full =
                                    std::mem::replace(&mut chunk, Vec::with_capacity(chunk_len));
                                if sender.send(Chunk::Documents(full)).is_err() {
                                    return; // the reader was dropped
                                }
                            }
                        }
                        Err(e) => {
                            let _ = sender.send(Chunk::Failed(Box::new(e)));
                            return;
                        }
                    }
                }
                if !chunk.is_empty() && sender.send(Chunk::Documents(chunk)).is_err() {
                    return;
                }
                let _ = sender.send(Chunk::End);
            });
        DocStream {
            store: self.clone(),
            context,
            receiver,
            buffer: Vec::new().into_iter(),
            done: false,
            spawn_error: spawned.err(),
        }
    }

    /// The same server, another database (no round trip).
    pub fn with_database(&self, name: &str) -> MongoStore {
        MongoStore {
            client: self.client.clone(),
            db: self.client.database(name),
            ..self.clone()
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
        database_error(&self.uri, &self.secrets, &context.into(), e)
    }

    /// Drops the whole database (every collection and artifact).
    pub fn drop_database(&self) -> Result<(), StoreError> {
        let context = format!("drop database {}", self.db.name());
        self.bounded(&context, |s| s.db.drop().run())
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
            self.bounded(&format!("create index {keys} on {collection}"), move |s| {
                s.db.collection::<Document>(collection)
                    .create_index(model)
                    .run()
            })?;
        }
        Ok(())
    }

    /// Number of documents in a collection.
    pub fn count(&self, collection: &str) -> Result<u64, StoreError> {
        let name = collection.to_string();
        self.bounded(&format!("count {collection}"), move |s| {
            s.db.collection::<Document>(&name)
                .count_documents(doc! {})
                .run()
        })
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
        let context = "popularity aggregation";
        let rows = self.bounded(context, |s| {
            let pipeline = [doc! { "$group": { "_id": "$product_id", "count": { "$sum": 1 } } }];
            s.db.collection::<Document>(INTERACTIONS)
                .aggregate(pipeline)
                .run()?
                .collect::<Result<Vec<Document>, _>>()
        })?;
        let namespace = format!("{}.{INTERACTIONS}", self.db.name());
        let mut counts = Vec::new();
        for row in rows {
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

    /// Writes documents keyed by `_id`, given what the collection held when the import
    /// started (`existing`, see [`Self::snapshot`]):
    ///
    /// * a document whose `_id` is new goes into one unordered `insert` for the batch;
    /// * one whose stored content is the same is not sent at all;
    /// * one whose content changed is replaced by `_id`, at most
    ///   [`MAX_REPLACEMENTS_PER_COMMAND`] per `update` command.
    ///
    /// A "new" document that exists after all (written by someone else since the snapshot:
    /// a duplicate-key error) is replaced the same way. Inserting new documents in bulk
    /// keeps fresh imports fast on servers where an upsert of a new document costs a
    /// collection scan (FerretDB 1.x); replacements by string `_id` use the primary key.
    pub(crate) fn upsert_batch(
        &self,
        collection: &'static str,
        documents: Vec<Document>,
        existing: &Snapshot,
    ) -> Result<WriteCounts, StoreError> {
        let mut counts = WriteCounts::default();
        let mut fresh = Vec::with_capacity(documents.len());
        let mut changed = Vec::new();
        for d in documents {
            match existing.stored_hash(&d) {
                None => fresh.push(d),
                Some(stored) if stored == content_hash(&d) => counts.unchanged += 1,
                Some(_) => changed.push(d),
            }
        }
        if !fresh.is_empty() {
            let n = fresh.len() as u64;
            let context = format!("insert {n} documents into {collection}");
            let (reply, fresh) = self.bounded(&context, move |s| {
                let command = doc! { "insert": collection, "documents": &fresh, "ordered": false };
                s.db.run_command(command).run().map(|reply| (reply, fresh))
            })?;
            let mut duplicates = Vec::new();
            for error in reply
                .get_array("writeErrors")
                .map_or(&[][..], Vec::as_slice)
            {
                let error = error.as_document();
                let code = error.and_then(|e| bson_int(e.get("code")));
                let index = error.and_then(|e| bson_int(e.get("index")));
                match (code, index) {
                    (Some(DUPLICATE_KEY), Some(index)) if (index as u64) < n => {
                        duplicates.push(index as usize)
                    }
                    _ => return Err(self.write_error(context, &reply)),
                }
            }
            counts.inserted += n - duplicates.len() as u64;
            let mut fresh: Vec<Option<Document>> = fresh.into_iter().map(Some).collect();
            changed.extend(duplicates.into_iter().filter_map(|i| fresh[i].take()));
        }
        for chunk in changed.chunks(MAX_REPLACEMENTS_PER_COMMAND) {
            let updates: Vec<Document> = chunk
                .iter()
                .map(|d| {
                    let id = d.get("_id").cloned().unwrap_or(Bson::Null);
                    doc! { "q": { "_id": id }, "u": d, "upsert": true }
                })
                .collect();
            let m = updates.len() as u64;
            let context = format!("replace {m} existing documents in {collection}");
            let reply = self.bounded(&context, move |s| {
                s.db.run_command(
                    doc! { "update": collection, "updates": updates, "ordered": false },
                )
                .run()
            })?;
            if reply.get_array("writeErrors").is_ok_and(|e| !e.is_empty()) {
                return Err(self.write_error(context, &reply));
            }
            // A document deleted since the snapshot is upserted again.
            let reinserted = reply.get_array("upserted").map_or(0, |a| a.len() as u64);
            let updated = bson_int(reply.get("nModified")).unwrap_or(0).max(0) as u64;
            counts.inserted += reinserted;
            counts.updated += updated;
            counts.unchanged += m.saturating_sub(reinserted + updated);
        }
        Ok(counts)
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

    /// Reads every document of `collection` once (one full scan, no filter: a filtered
    /// find is a full scan per query on FerretDB) and keeps a 64-bit hash of each string
    /// `_id` with a hash of the document's content; `each` sees every document on the way
    /// (to collect ids). Memory: 16 bytes per document, plus map overhead.
    pub(crate) fn snapshot(
        &self,
        collection: &str,
        mut each: impl FnMut(&Document),
    ) -> Result<Snapshot, StoreError> {
        let mut snapshot = Snapshot::default();
        let context = format!("read the existing documents of {collection}");
        for d in self.stream(collection, None, 10_000, context) {
            let d = d?;
            each(&d);
            if let Some(Bson::String(id)) = d.get("_id") {
                snapshot.hashes.insert(id_hash(id), content_hash(&d));
            }
        }
        Ok(snapshot)
    }
}

/// What a collection held when an import started: hash of `_id` → hash of content.
///
/// Two different `_id`s with the same 64-bit hash only cost a replacement (by the real
/// `_id`, with upsert), never a lost or wrong row.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    hashes: HashMap<u64, u64>,
}

impl Snapshot {
    /// The stored content hash of the document with `d`'s `_id`, if there was one.
    fn stored_hash(&self, d: &Document) -> Option<u64> {
        match d.get("_id") {
            Some(Bson::String(id)) => self.hashes.get(&id_hash(id)).copied(),
            _ => None,
        }
    }
}

fn id_hash(id: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// A hash of a document's content that is the same for what the import writes and what a
/// server returns: fields in any order, integers of any width, a double by its bits.
fn content_hash(d: &Document) -> u64 {
    let mut fields: Vec<(&String, &Bson)> = d.iter().collect();
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut h = std::hash::DefaultHasher::new();
    fields.len().hash(&mut h);
    for (name, value) in fields {
        name.hash(&mut h);
        hash_bson(value, &mut h);
    }
    h.finish()
}

fn hash_bson(value: &Bson, h: &mut impl Hasher) {
    match value {
        Bson::Int32(v) => (1u8, i64::from(*v)).hash(h),
        Bson::Int64(v) => (1u8, *v).hash(h),
        Bson::Double(v) => (2u8, v.to_bits()).hash(h),
        Bson::String(v) => (3u8, v).hash(h),
        Bson::DateTime(v) => (4u8, v.timestamp_millis()).hash(h),
        Bson::Null => 5u8.hash(h),
        Bson::Boolean(v) => (6u8, *v).hash(h),
        Bson::Document(d) => (7u8, content_hash(d)).hash(h),
        Bson::Array(items) => {
            (8u8, items.len()).hash(h);
            for item in items {
                hash_bson(item, h);
            }
        }
        other => (9u8, other.to_string()).hash(h),
    }
}

/// One message from a cursor's reader thread.
enum Chunk {
    Documents(Vec<Document>),
    Failed(Box<mongodb::error::Error>),
    End,
}

/// Documents streamed by [`MongoStore::stream`].
pub(crate) struct DocStream {
    store: MongoStore,
    context: String,
    receiver: mpsc::Receiver<Chunk>,
    buffer: std::vec::IntoIter<Document>,
    done: bool,
    spawn_error: Option<std::io::Error>,
}

impl Iterator for DocStream {
    type Item = Result<Document, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(d) = self.buffer.next() {
                return Some(Ok(d));
            }
            if self.done {
                return None;
            }
            if let Some(e) = self.spawn_error.take() {
                self.done = true;
                return Some(Err(StoreError::Database {
                    uri: self.store.uri.clone(),
                    context: self.context.clone(),
                    message: format!("cannot start the cursor's thread: {e}"),
                    source: Box::new(e),
                }));
            }
            match self.receiver.recv_timeout(self.store.operation_timeout) {
                Ok(Chunk::Documents(documents)) => self.buffer = documents.into_iter(),
                Ok(Chunk::End) => {
                    self.done = true;
                    return None;
                }
                Ok(Chunk::Failed(e)) => {
                    self.done = true;
                    return Some(Err(self.store.error(self.context.clone(), *e)));
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.done = true;
                    return Some(Err(self.store.timeout_error(&self.context)));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.done = true;
                    return Some(Err(StoreError::Database {
                        uri: self.store.uri.clone(),
                        context: self.context.clone(),
                        message: "the cursor's thread ended without finishing (it panicked)".into(),
                        source: "cursor thread panicked".into(),
                    }));
                }
            }
        }
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

fn database_error(
    uri: &str,
    secrets: &Secrets,
    context: &str,
    e: mongodb::error::Error,
) -> StoreError {
    let text = e.to_string();
    let mut message = secrets.scrub(&text);
    // The driver's error is kept as the source unless its text quotes a secret.
    let source: Box<dyn std::error::Error + Send + Sync> = if message == text {
        Box::new(e.clone())
    } else {
        message.clone().into()
    };
    if matches!(*e.kind, mongodb::error::ErrorKind::ServerSelection { .. }) {
        message = format!(
            "no server answered ({message}); is it running? (scripts/db.sh start starts one)"
        );
    }
    StoreError::Database {
        uri: uri.to_string(),
        context: context.to_string(),
        message,
        source,
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
    fn redacts_everything_up_to_the_last_at() {
        for (uri, redacted) in [
            ("mongodb://bob:pa/ss@h:1/db", "mongodb://bob:***@h:1/db"),
            ("mongodb://bob:pa?ss@h/db", "mongodb://bob:***@h/db"),
            ("mongodb://bob:p@ss@h/db", "mongodb://bob:***@h/db"),
            (
                "mongodb://bob:a/b?c@d:e@h/db?x=1",
                "mongodb://bob:***@h/db?x=1",
            ),
            ("mongodb://bob:/@h", "mongodb://bob:***@h"),
            (
                "mongodb+srv://bob:x/y@cluster/db",
                "mongodb+srv://bob:***@cluster/db",
            ),
        ] {
            assert_eq!(redact_uri(uri), redacted, "{uri}");
        }
    }

    #[test]
    fn connection_errors_never_show_the_password() {
        let options = ConnectOptions {
            timeout: Duration::from_millis(200),
            ..ConnectOptions::default()
        };
        for uri in [
            "mongodb://bob:s3Kr/9tQ@127.0.0.1:9/x",
            "mongodb://bob:s3Kr?9tQ@127.0.0.1:9/x",
            "mongodb://bob:s3Kr@9tQ@127.0.0.1:9/",
            "mongodb://bob:s3Kr:9tQ@127.0.0.1:9/",
            "mongodb://bob:s3Kr/9tQ@127.0.0.1:9/x?replicaSet=",
            "mongodb://bob:s3Kr%2F9tQ@127.0.0.1:9/x",
            "mongodb://bob:s3Kr9tQ@127.0.0.1:9/x?authMechanism=NOPE",
            "mongodb://bob:s3Kr9tQ@[::1/x",
        ] {
            let err = MongoStore::connect_with(uri, &options).unwrap_err();
            let mut text = format!("{err} | {err:?}");
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                text.push_str(&format!(" | {s} | {s:?}"));
                source = s.source();
            }
            assert!(
                !text.contains("s3Kr") && !text.contains("9tQ"),
                "{uri}: {text}"
            );
            assert!(
                text.contains("bob:***@") || text.contains("***"),
                "{uri}: {text}"
            );
        }
    }

    #[test]
    fn password_pieces_are_scrubbed_as_whole_tokens_only() {
        let secrets = Secrets::of("mongodb://bob:se?cret@h/");
        assert_eq!(
            secrets.scrub("invalid server address bob:se: got se; server cretin"),
            "invalid server address bob:***: got ***; server cretin"
        );
        assert_eq!(Secrets::of("mongodb://h/").scrub("h se"), "h se");
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
