//! Validated, idempotent, batched import of the CSV schema into MongoDB.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use mongodb::bson::Document;
use recsys_features::{Attributes, ExternalId, SourceError};

use super::schema::{
    check_attribute_name, id_from_bson, interaction_document, interaction_key, product_document,
    user_document, INTERACTIONS, PRODUCTS, USERS,
};
use super::{MongoStore, Snapshot, WriteCounts};
use crate::reader::Located;
use crate::{CsvSource, StoreError};

/// How many invalid rows [`StoreError::InvalidInput`] lists.
pub const MAX_REPORTED_ERRORS: usize = 20;

/// What to do with invalid rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BadRows {
    /// Refuse the whole import before writing anything (the default).
    #[default]
    Reject,
    /// Import the valid rows; write each bad row to this CSV file
    /// (`file,line,error,row`) and count it as rejected.
    Skip {
        /// The rejects file (created or replaced).
        rejects: PathBuf,
    },
}

/// Options of [`import_csv`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportOptions {
    /// Documents per `insert` command (default 10,000; a command also ends at 8 MiB of
    /// BSON). One batch is written while the next is read and encoded; on FerretDB each
    /// command is a transaction, so larger batches are faster (docs/benchmarks.md).
    pub batch_size: usize,
    /// What to do with invalid rows (default: reject the import).
    pub bad_rows: BadRows,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            batch_size: 10_000,
            bad_rows: BadRows::Reject,
        }
    }
}

/// The passes of an import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportPhase {
    /// Reading every file and checking every row; nothing is written.
    Validate,
    /// Reading what a collection already holds (once, to skip unchanged rows).
    ReadExisting,
    /// Writing the new and changed rows.
    Write,
}

/// Reported to the progress callback after every batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportProgress {
    /// The pass.
    pub phase: ImportPhase,
    /// `users`, `products` or `user_product_interactions`.
    pub collection: &'static str,
    /// Rows (documents, when reading what exists) handled so far in this collection and
    /// pass.
    pub rows: u64,
    /// Rows in this collection's file (known in the write pass).
    pub total: Option<u64>,
}

/// What an import did to one collection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CollectionSummary {
    /// Data rows read from the file.
    pub read: u64,
    /// Documents that did not exist before.
    pub inserted: u64,
    /// Existing documents whose content changed.
    pub updated: u64,
    /// Existing documents that already had this content.
    pub unchanged: u64,
    /// Invalid rows skipped (written to the rejects file).
    pub rejected: u64,
    /// Seconds spent writing this collection.
    pub write_seconds: f64,
}

impl CollectionSummary {
    /// Rows handled by the write pass (written or found unchanged) per second.
    pub fn rows_per_second(&self) -> f64 {
        let written = (self.inserted + self.updated + self.unchanged) as f64;
        if self.write_seconds > 0.0 {
            written / self.write_seconds
        } else {
            0.0
        }
    }
}

/// The result of [`import_csv`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportSummary {
    /// The users collection.
    pub users: CollectionSummary,
    /// The products collection.
    pub products: CollectionSummary,
    /// The interactions collection.
    pub interactions: CollectionSummary,
    /// The rejects file, when bad rows were skipped.
    pub rejects: Option<PathBuf>,
    /// Seconds for the validation pass.
    pub validate_seconds: f64,
    /// Seconds for the whole import.
    pub total_seconds: f64,
}

impl ImportSummary {
    /// The three collections with their names.
    pub fn collections(&self) -> [(&'static str, &CollectionSummary); 3] {
        [
            (USERS, &self.users),
            (PRODUCTS, &self.products),
            (INTERACTIONS, &self.interactions),
        ]
    }
}

/// Imports the three CSV files of `source` into `store`: users, then products, then
/// interactions.
///
/// 1. **Validate** every row of every file (nothing is written): ids present, numbers
///    finite, timestamps parsable, column counts right, user and product ids unique, and
///    every interaction's user and product present in the files or already in the
///    database. With [`BadRows::Reject`] (default) any invalid row fails the import with
///    [`StoreError::InvalidInput`], listing the first [`MAX_REPORTED_ERRORS`] rows by file,
///    line, column and value. With [`BadRows::Skip`] the bad rows go to the rejects file.
///    Header problems, unreadable files and attribute columns MongoDB cannot store
///    (`_id`, `$x`, `a.b`) always fail the import.
/// 2. **Write**: create the indexes, then write the valid rows in batches keyed on `_id`
///    (user id, product id, interaction key). Each collection's existing documents are read
///    once first (one scan, keeping a hash of each `_id` and of its content): rows whose
///    `_id` is new are inserted in bulk, rows whose stored content differs are replaced
///    (small commands, see [`MAX_REPLACEMENTS_PER_COMMAND`](super::MAX_REPLACEMENTS_PER_COMMAND)),
///    identical rows are not sent. So running the same import twice changes nothing and
///    writes nothing; an import killed half-way and run again ends with every row present
///    once; a row changed in the CSV files is updated. Documents that are in the database
///    but not in the files are left alone (the import adds and updates, it never deletes).
///
/// `progress` is called after every batch of each pass.
pub fn import_csv(
    store: &MongoStore,
    source: &CsvSource,
    options: &ImportOptions,
    progress: &mut dyn FnMut(&ImportProgress),
) -> Result<ImportSummary, StoreError> {
    let start = Instant::now();
    let batch_size = options.batch_size.max(1);
    let mut rejects = match &options.bad_rows {
        BadRows::Reject => None,
        BadRows::Skip { rejects } => Some(Rejects::create(rejects.clone())?),
    };
    let mut bad = BadRowLog::default();

    // Pass 1: validate.
    let mut summary = ImportSummary::default();
    let mut user_ids = HashSet::new();
    for row in source.users_located()? {
        summary.users.read += 1;
        report_validated(progress, batch_size, USERS, summary.users.read);
        match row.record {
            Ok(user) => {
                check_attributes(source.users_path(), &user.attributes)?;
                user_ids.insert(user.user_id);
            }
            Err(e) => bad.add(&mut rejects, e, row.line, row.raw, source.users_path())?,
        }
    }
    let mut product_ids = HashSet::new();
    for row in source.products_located()? {
        summary.products.read += 1;
        report_validated(progress, batch_size, PRODUCTS, summary.products.read);
        match row.record {
            Ok(product) => {
                check_attributes(source.products_path(), &product.attributes)?;
                product_ids.insert(product.product_id);
            }
            Err(e) => bad.add(&mut rejects, e, row.line, row.raw, source.products_path())?,
        }
    }
    let users_before = read_existing(store, USERS, "user_id", &mut user_ids, progress)?;
    let products_before = read_existing(store, PRODUCTS, "product_id", &mut product_ids, progress)?;
    let known = KnownIds {
        users: &user_ids,
        products: &product_ids,
        file: source.interactions_path().display().to_string(),
    };
    for row in source.interactions_located(|line, i| known.check(line, i))? {
        summary.interactions.read += 1;
        report_validated(
            progress,
            batch_size,
            INTERACTIONS,
            summary.interactions.read,
        );
        if let Err(e) = row.record {
            bad.add(
                &mut rejects,
                e,
                row.line,
                row.raw,
                source.interactions_path(),
            )?;
        }
    }
    if let Some(rejects) = rejects.as_mut() {
        rejects.flush()?;
    }
    if bad.total > 0 && rejects.is_none() {
        return Err(StoreError::InvalidInput {
            errors: bad.first,
            total: bad.total,
        });
    }
    summary.validate_seconds = start.elapsed().as_secs_f64();

    // Pass 2: write.
    store.ensure_indexes()?;
    let mut writer = BatchWriter {
        store,
        batch_size,
        progress,
        batch: Vec::with_capacity(batch_size),
        batch_bytes: 0,
        collection: USERS,
        rows: 0,
        total: 0,
        existing: Arc::new(Snapshot::default()),
        in_flight: Default::default(),
    };

    writer.write_collection(
        USERS,
        &mut summary.users,
        users_before,
        || source.users_located(),
        user_document,
    )?;
    writer.write_collection(
        PRODUCTS,
        &mut summary.products,
        products_before,
        || source.products_located(),
        product_document,
    )?;

    // The validation pass's id sets still hold exactly the ids interactions may use (the
    // valid rows just written plus what was in the database), so the same rows are skipped.
    let total = summary.interactions.read;
    let t = Instant::now();
    let interactions_before = read_existing(
        store,
        INTERACTIONS,
        "",
        &mut HashSet::new(),
        writer.progress,
    )?;
    writer.begin(INTERACTIONS, total, interactions_before);
    // Repeated interaction keys in one file get an occurrence number; keys are remembered
    // by a 64-bit hash, which only has to be deterministic for the same file.
    let hasher = RandomState::new();
    let mut occurrences: HashMap<u64, u32> = HashMap::new();
    for row in source.interactions_located(|line, i| known.check(line, i))? {
        match row.record {
            Ok(interaction) => {
                let key = interaction_key(&interaction, 1);
                let seen = occurrences.entry(hasher.hash_one(&key)).or_insert(0);
                *seen += 1;
                let key = if *seen > 1 {
                    interaction_key(&interaction, *seen)
                } else {
                    key
                };
                writer.push(
                    &mut summary.interactions,
                    interaction_document(&interaction, key),
                )?;
            }
            Err(_) => summary.interactions.rejected += 1,
        }
    }
    writer.finish(&mut summary.interactions)?;
    summary.interactions.write_seconds = t.elapsed().as_secs_f64();

    summary.rejects = rejects.map(|r| r.path);
    summary.total_seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Reports the validation pass's progress through `collection` every `batch_size` rows.
fn report_validated(
    progress: &mut dyn FnMut(&ImportProgress),
    batch_size: usize,
    collection: &'static str,
    rows: u64,
) {
    if rows.is_multiple_of(batch_size as u64) {
        progress(&ImportProgress {
            phase: ImportPhase::Validate,
            collection,
            rows,
            total: None,
        });
    }
}

/// Reads the documents `collection` holds (see [`MongoStore::snapshot`]), adding the ids in
/// `id_field` (if not empty) to `ids` and reporting progress every 10,000 documents.
fn read_existing(
    store: &MongoStore,
    collection: &'static str,
    id_field: &str,
    ids: &mut HashSet<ExternalId>,
    progress: &mut dyn FnMut(&ImportProgress),
) -> Result<Snapshot, StoreError> {
    let mut rows = 0u64;
    let mut report = |rows| {
        progress(&ImportProgress {
            phase: ImportPhase::ReadExisting,
            collection,
            rows,
            total: None,
        })
    };
    report(0);
    let snapshot = store.snapshot(collection, |d| {
        if !id_field.is_empty() {
            if let Some(id) = d.get(id_field).and_then(id_from_bson) {
                ids.insert(id);
            }
        }
        rows += 1;
        if rows.is_multiple_of(10_000) {
            report(rows);
        }
    })?;
    report(rows);
    Ok(snapshot)
}

fn check_attributes(path: &std::path::Path, attributes: &Attributes) -> Result<(), StoreError> {
    for name in attributes.keys() {
        if let Err(reason) = check_attribute_name(name) {
            return Err(SourceError::new(
                format!("{}:1", path.display()),
                format!("column {name:?} cannot be stored in MongoDB: {reason}"),
            )
            .into());
        }
    }
    Ok(())
}

/// The user and product ids interactions may refer to.
struct KnownIds<'a> {
    users: &'a HashSet<ExternalId>,
    products: &'a HashSet<ExternalId>,
    file: String,
}

impl KnownIds<'_> {
    fn check(
        &self,
        line: u64,
        interaction: recsys_features::InteractionRecord,
    ) -> Result<recsys_features::InteractionRecord, SourceError> {
        if !self.users.contains(&interaction.user_id) {
            return Err(SourceError::new(
                format!("{}:{line} column user_id", self.file),
                format!(
                    "unknown user_id {}: not in the users file nor in the database",
                    interaction.user_id
                ),
            ));
        }
        if !self.products.contains(&interaction.product_id) {
            return Err(SourceError::new(
                format!("{}:{line} column product_id", self.file),
                format!(
                    "unknown product_id {}: not in the products file nor in the database",
                    interaction.product_id
                ),
            ));
        }
        Ok(interaction)
    }
}

/// Invalid rows seen in the validation pass.
#[derive(Default)]
struct BadRowLog {
    first: Vec<SourceError>,
    total: usize,
}

impl BadRowLog {
    fn add(
        &mut self,
        rejects: &mut Option<Rejects>,
        error: SourceError,
        line: u64,
        raw: Option<String>,
        file: &std::path::Path,
    ) -> Result<(), StoreError> {
        // An error with an underlying cause (I/O, gzip) means the file cannot be read on:
        // skipping it would silently drop the rest of the file.
        if error.source.is_some() || raw.is_none() {
            return Err(error.into());
        }
        self.total += 1;
        if let Some(rejects) = rejects.as_mut() {
            rejects.write(file, line, &error, raw.as_deref().unwrap_or(""))?;
        }
        if self.first.len() < MAX_REPORTED_ERRORS {
            self.first.push(error);
        }
        Ok(())
    }
}

/// The rejects CSV file.
struct Rejects {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
}

impl Rejects {
    fn create(path: PathBuf) -> Result<Rejects, StoreError> {
        let io = |e: std::io::Error, path: &PathBuf| StoreError::Io {
            path: path.clone(),
            source: e,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| io(e, &path))?;
        }
        let file = File::create(&path).map_err(|e| io(e, &path))?;
        let mut rejects = Rejects {
            writer: csv::Writer::from_writer(BufWriter::new(file)),
            path,
        };
        rejects.write_fields(["file", "line", "error", "row"])?;
        Ok(rejects)
    }

    fn write(
        &mut self,
        file: &std::path::Path,
        line: u64,
        error: &SourceError,
        raw: &str,
    ) -> Result<(), StoreError> {
        let file = file.display().to_string();
        let line = line.to_string();
        let error = error.to_string();
        self.write_fields([file.as_str(), line.as_str(), error.as_str(), raw])
    }

    fn write_fields(&mut self, fields: [&str; 4]) -> Result<(), StoreError> {
        self.writer
            .write_record(fields)
            .map_err(|e| self.error(std::io::Error::other(e)))
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.writer.flush().map_err(|e| self.error(e))
    }

    fn error(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

/// A batch's command stops growing at this many bytes of BSON (half the server's 16 MiB
/// command limit), whatever the batch size.
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// A batch being written on its own thread: its number of documents and the writer.
type InFlight = (u64, JoinHandle<Result<WriteCounts, StoreError>>);

/// Batches written at the same time, each on its own connection: while the server works on
/// one, the next is already encoded and on its way.
const IN_FLIGHT: usize = 2;

/// Collects documents into batches and upserts them, up to [`IN_FLIGHT`] batches in flight
/// while the next is built: reading, validating and encoding rows overlaps the database's
/// work, so the import goes at the database's speed. Batches hold distinct documents (keys
/// are unique within an import), so their order does not matter.
struct BatchWriter<'a, 'p> {
    store: &'a MongoStore,
    batch_size: usize,
    progress: &'p mut dyn FnMut(&ImportProgress),
    batch: Vec<Document>,
    /// BSON size of `batch`.
    batch_bytes: usize,
    collection: &'static str,
    rows: u64,
    total: u64,
    /// What the current collection held before the write pass.
    existing: Arc<Snapshot>,
    /// The batches being written, oldest first.
    in_flight: std::collections::VecDeque<InFlight>,
}

impl Drop for BatchWriter<'_, '_> {
    /// An import that stops with an error still waits for the batch it sent, so nothing
    /// writes behind the caller's back after it returned.
    fn drop(&mut self) {
        for (_, handle) in self.in_flight.drain(..) {
            let _ = handle.join();
        }
    }
}

impl BatchWriter<'_, '_> {
    fn begin(&mut self, collection: &'static str, total: u64, existing: Snapshot) {
        self.existing = Arc::new(existing);
        self.collection = collection;
        self.rows = 0;
        self.total = total;
        self.batch.clear();
        self.batch_bytes = 0;
        self.report();
    }

    /// Writes one collection's valid rows (what `rows` opens, each made a document by
    /// `document`), counting the invalid ones as rejected and timing the pass.
    fn write_collection<T, I>(
        &mut self,
        collection: &'static str,
        summary: &mut CollectionSummary,
        existing: Snapshot,
        rows: impl FnOnce() -> Result<I, SourceError>,
        document: impl Fn(&T) -> Document,
    ) -> Result<(), StoreError>
    where
        I: Iterator<Item = Located<T>>,
    {
        let t = Instant::now();
        self.begin(collection, summary.read, existing);
        for row in rows()? {
            match row.record {
                Ok(record) => self.push(summary, document(&record))?,
                Err(_) => summary.rejected += 1,
            }
        }
        self.finish(summary)?;
        summary.write_seconds = t.elapsed().as_secs_f64();
        Ok(())
    }

    fn report(&mut self) {
        (self.progress)(&ImportProgress {
            phase: ImportPhase::Write,
            collection: self.collection,
            rows: self.rows,
            total: Some(self.total),
        });
    }

    fn push(&mut self, summary: &mut CollectionSummary, doc: Document) -> Result<(), StoreError> {
        let bytes = bson_size(&doc);
        if !self.batch.is_empty() && self.batch_bytes + bytes > MAX_BATCH_BYTES {
            self.flush(summary)?;
        }
        self.batch_bytes += bytes;
        self.batch.push(doc);
        if self.batch.len() >= self.batch_size {
            self.flush(summary)?;
        }
        Ok(())
    }

    /// Sends the current batch on its own thread, after waiting for the oldest one in
    /// flight when [`IN_FLIGHT`] are.
    fn flush(&mut self, summary: &mut CollectionSummary) -> Result<(), StoreError> {
        while self.in_flight.len() >= IN_FLIGHT {
            self.wait(summary)?;
        }
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_size));
        self.batch_bytes = 0;
        let n = batch.len() as u64;
        let (store, existing, collection) = (
            self.store.clone(),
            Arc::clone(&self.existing),
            self.collection,
        );
        let handle = std::thread::Builder::new()
            .name("recsys-import-writer".to_string())
            .spawn(move || store.upsert_batch(collection, batch, &existing))
            .map_err(|e| StoreError::Database {
                uri: self.store.uri.clone(),
                context: format!("writing {n} documents into {collection}"),
                message: format!("cannot start the writer thread: {e}"),
                source: Box::new(e),
            })?;
        self.in_flight.push_back((n, handle));
        Ok(())
    }

    /// Waits for the oldest batch in flight, if any, and counts what it wrote.
    fn wait(&mut self, summary: &mut CollectionSummary) -> Result<(), StoreError> {
        let Some((n, handle)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let WriteCounts {
            inserted,
            updated,
            unchanged,
        } = handle.join().map_err(|_| StoreError::Database {
            uri: self.store.uri.clone(),
            context: format!("writing {n} documents into {}", self.collection),
            message: "the writer thread ended without an answer (it panicked)".into(),
            source: "writer thread panicked".into(),
        })??;
        summary.inserted += inserted;
        summary.updated += updated;
        summary.unchanged += unchanged;
        self.rows += n;
        self.report();
        Ok(())
    }

    fn finish(&mut self, summary: &mut CollectionSummary) -> Result<(), StoreError> {
        // Rejected rows count as handled for the progress total.
        self.flush(summary)?;
        while !self.in_flight.is_empty() {
            self.wait(summary)?;
        }
        self.rows += summary.rejected;
        self.report();
        Ok(())
    }
}

/// The size of `doc` encoded as BSON.
fn bson_size(doc: &Document) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing into a counter cannot fail; a document that cannot be encoded fails later,
    // in the write, with the driver's error.
    let _ = doc.to_writer(&mut count);
    count.0
}
