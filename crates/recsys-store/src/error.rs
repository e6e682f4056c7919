//! The crate's error type.

use std::path::PathBuf;

use recsys_features::SourceError;

/// Everything that can go wrong in `recsys-store`.
///
/// Errors found while streaming rows come out of the record iterators as [`SourceError`]s
/// (with a location such as `products.csv:17 column price`); this enum covers opening files,
/// writing files and the helpers that return whole results (for example [`crate::read_pairs`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file could not be opened, created, read or written.
    #[error("cannot access {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Neither `<stem>.csv` nor `<stem>.csv.gz` exists in a folder.
    #[error("neither {stem}.csv nor {stem}.csv.gz found in {}", dir.display())]
    FileNotFound {
        /// The folder searched.
        dir: PathBuf,
        /// The file name without extension, e.g. `users`.
        stem: String,
    },
    /// A timestamp is neither ISO 8601 nor integer Unix seconds.
    #[error("timestamp {value:?} is not ISO 8601 or integer Unix seconds: {reason}")]
    InvalidTimestamp {
        /// The offending text.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An attribute name cannot be written as a column (it is empty or clashes with a schema
    /// column such as `price`).
    #[error("{}: attribute {name:?} cannot be a column: {reason}", path.display())]
    BadAttributeName {
        /// The file being written.
        path: PathBuf,
        /// The attribute name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Invalid data in a file (the location names file, line and column).
    #[error(transparent)]
    Invalid(#[from] SourceError),
    /// An import found invalid rows and, in the default all-or-nothing mode, wrote nothing.
    /// `errors` holds the first few (each naming file, line, column and value).
    #[error("{total} invalid row(s), nothing was written; first: {}{}", errors.first().map_or_else(String::new, ToString::to_string), if *total > 1 { " (see the other errors, or import with skipping of bad rows to write them to a rejects file)" } else { "" })]
    InvalidInput {
        /// The first invalid rows (at most 20).
        errors: Vec<SourceError>,
        /// How many invalid rows there are in all.
        total: usize,
    },
    /// No MongoDB URI was given.
    #[error("no MongoDB URI: pass --uri or set MONGODB_URI (scripts/db.sh start prints one)")]
    MissingUri,
    /// A MongoDB operation failed. `uri` has any password redacted.
    #[error("MongoDB at {uri}: {context}: {message}")]
    Database {
        /// The server's URI, password redacted.
        uri: String,
        /// What was being done, e.g. `upsert into products`.
        context: String,
        /// The driver's message.
        message: String,
        /// The driver's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A MongoDB operation got no answer within the operation timeout
    /// ([`ConnectOptions::operation_timeout`](crate::mongo::ConnectOptions::operation_timeout)).
    #[error("MongoDB at {uri}: {context}: no answer within {after:?} (the operation timeout); the server is stuck or overloaded — check it, or raise the timeout if it is only slow")]
    Timeout {
        /// The server's URI, password redacted.
        uri: String,
        /// The operation, e.g. `insert 1000 documents into products`.
        context: String,
        /// How long the caller waited.
        after: std::time::Duration,
    },
    /// Both the plain and the gzip file of one table exist, so which to read is ambiguous.
    #[error("both {} and {} exist: remove or rename one of them", plain.display(), gzip.display())]
    AmbiguousFile {
        /// The `.csv` file.
        plain: PathBuf,
        /// The `.csv.gz` file.
        gzip: PathBuf,
    },
    /// A document in the database does not fit the schema (names collection, id and field).
    #[error("{location}: {message}")]
    BadDocument {
        /// E.g. `mongodb recsys.products _id=42 field price`.
        location: String,
        /// What is wrong, naming the value.
        message: String,
    },
    /// No stored artifact has this name.
    #[error("no artifact named {name:?} in {bucket}")]
    ArtifactNotFound {
        /// The artifact name.
        name: String,
        /// The GridFS bucket searched.
        bucket: String,
    },
    /// A model cannot be published under this id, or what the `current` pointer names is
    /// inconsistent (a pointer without its fields, an artifact of another length).
    #[error("published model: {0}")]
    Publish(String),
}

impl From<StoreError> for SourceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(inner) => inner,
            StoreError::Io { path, source } => SourceError::new(
                path.display().to_string(),
                format!("cannot access file: {source}"),
            )
            .with_source(source),
            other => {
                let location = match &other {
                    StoreError::FileNotFound { dir, .. } => dir.display().to_string(),
                    StoreError::BadAttributeName { path, .. } => path.display().to_string(),
                    StoreError::BadDocument { location, message } => {
                        return SourceError::new(location.clone(), message.clone())
                    }
                    StoreError::Database { uri, .. } | StoreError::Timeout { uri, .. } => {
                        format!("mongodb {uri}")
                    }
                    StoreError::AmbiguousFile { plain, .. } => plain.display().to_string(),
                    _ => "recsys-store".to_string(),
                };
                SourceError::new(location, other.to_string())
            }
        }
    }
}
