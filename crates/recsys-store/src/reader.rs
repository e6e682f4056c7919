//! [`CsvSource`]: the recsys CSV schema read as a [`RecordSource`], plus the pairs reader.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use recsys_features::{
    Attributes, ExternalId, InteractionRecord, ProductRecord, RecordIter, RecordSource,
    SourceError, UserRecord,
};

use crate::interaction::{interaction_from_fields, InteractionFields};
use crate::table::Table;
use crate::StoreError;

/// File name (without `.csv` / `.csv.gz`) of the users table.
pub const USERS_STEM: &str = "users";
/// File name (without `.csv` / `.csv.gz`) of the products table.
pub const PRODUCTS_STEM: &str = "products";
/// File name (without `.csv` / `.csv.gz`) of the interactions table.
pub const INTERACTIONS_STEM: &str = "user_product_interactions";

const INTERACTION_COLUMNS: [&str; 5] = [
    "user_id",
    "product_id",
    "interaction_type",
    "weight",
    "timestamp",
];
const PAIR_COLUMNS: [&str; 2] = ["user_id", "product_id"];

/// The three CSV files of the recsys schema, streamed as a [`RecordSource`].
///
/// * `users.csv`: `user_id` and any attribute columns.
/// * `products.csv`: `product_id`; optional `name`, `price`, `image`; any attribute columns.
/// * `user_product_interactions.csv`: `user_id`, `product_id`; optional `interaction_type`,
///   `weight`, `timestamp` (ISO 8601 or integer Unix seconds, see
///   [`parse_timestamp`](crate::parse_timestamp)); no other column.
///
/// Each file may be gzip-compressed (`.csv.gz`; gzip is recognised by its magic bytes).
/// Cells are trimmed; an empty cell is absent. Attribute columns are kept as text. Ids are
/// normalised by [`ExternalId::parse`] rules (`"42"` becomes the integer id 42).
///
/// Every call to [`RecordSource::users`] (etc.) reopens the file and streams it row by row
/// into one reused buffer; nothing is loaded whole. A bad row comes out of the iterator as a
/// [`SourceError`] whose location names file, line and column, e.g.
/// `data/products.csv:17 column price: invalid price "NaN": must be a finite number` (lines
/// count every line of the file, blank ones included; a row's line is where it starts);
/// the iterator goes on with the next row, except after an I/O or gzip error or a quote
/// that is never closed, which end it. Prices and weights must be `>= 0`.
/// Problems with the header (missing required column, duplicate or empty names) are returned
/// by the call that opens the stream. Users and products must have unique ids.
///
/// ```
/// use recsys_features::{InMemorySource, RecordSource};
/// use recsys_store::CsvSource;
///
/// let dir = std::env::temp_dir().join(format!("recsys-store-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("users.csv"), "user_id,city\n1,Paris\n2,\n").unwrap();
/// std::fs::write(dir.join("products.csv"), "product_id,name,price,image\nP1,Shirt,19.99,P1.jpg\n").unwrap();
/// std::fs::write(
///     dir.join("user_product_interactions.csv"),
///     "user_id,product_id,interaction_type,weight,timestamp\n1,P1,view,1,2017-09-09T22:30:46Z\n",
/// ).unwrap();
///
/// let mut source = CsvSource::open(&dir).unwrap();
/// let data = InMemorySource::collect_from(&mut source).unwrap();
/// assert_eq!(data.users.len(), 2);
/// assert_eq!(data.users[0].attributes["city"], "Paris");
/// assert!(data.users[1].attributes.is_empty()); // empty cell = absent
/// assert_eq!(data.products[0].price, Some(19.99));
/// assert_eq!(data.interactions[0].timestamp, Some(1_504_996_246));
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvSource {
    users: PathBuf,
    products: PathBuf,
    interactions: PathBuf,
}

impl CsvSource {
    /// The files `users`, `products` and `user_product_interactions` (each `.csv` or
    /// `.csv.gz`) in `dir`; see [`find_csv`].
    pub fn open(dir: impl AsRef<Path>) -> Result<CsvSource, StoreError> {
        let dir = dir.as_ref();
        Ok(CsvSource {
            users: find_csv(dir, USERS_STEM)?,
            products: find_csv(dir, PRODUCTS_STEM)?,
            interactions: find_csv(dir, INTERACTIONS_STEM)?,
        })
    }

    /// Three explicit files (plain or gzip); each must exist.
    pub fn from_paths(
        users: impl Into<PathBuf>,
        products: impl Into<PathBuf>,
        interactions: impl Into<PathBuf>,
    ) -> Result<CsvSource, StoreError> {
        let source = CsvSource {
            users: users.into(),
            products: products.into(),
            interactions: interactions.into(),
        };
        for path in [&source.users, &source.products, &source.interactions] {
            std::fs::metadata(path).map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(source)
    }

    /// The users file.
    pub fn users_path(&self) -> &Path {
        &self.users
    }

    /// The products file.
    pub fn products_path(&self) -> &Path {
        &self.products
    }

    /// The interactions file.
    pub fn interactions_path(&self) -> &Path {
        &self.interactions
    }
}

/// `dir/<stem>.csv` or `dir/<stem>.csv.gz`, whichever exists; [`StoreError::FileNotFound`]
/// if neither does, [`StoreError::AmbiguousFile`] if both do (which one holds the data
/// cannot be guessed).
pub fn find_csv(dir: impl AsRef<Path>, stem: &str) -> Result<PathBuf, StoreError> {
    let dir = dir.as_ref();
    let plain = dir.join(format!("{stem}.csv"));
    let gzip = dir.join(format!("{stem}.csv.gz"));
    match (plain.is_file(), gzip.is_file()) {
        (true, true) => Err(StoreError::AmbiguousFile { plain, gzip }),
        (true, false) => Ok(plain),
        (false, true) => Ok(gzip),
        (false, false) => Err(StoreError::FileNotFound {
            dir: dir.to_path_buf(),
            stem: stem.to_string(),
        }),
    }
}

/// Rejects a second row with an id already seen (remembering the first line).
fn check_unique(
    table: &Table,
    column: usize,
    id: &ExternalId,
    seen: &mut HashMap<ExternalId, u64>,
) -> Result<(), SourceError> {
    if let Some(first) = seen.get(id) {
        return Err(table.cell_error(
            column,
            format!(
                "duplicate {} {id} (first on line {first})",
                table.headers[column]
            ),
        ));
    }
    seen.insert(id.clone(), table.line());
    Ok(())
}

fn attributes(table: &Table, columns: &[(usize, String)]) -> Attributes {
    columns
        .iter()
        .filter_map(|(i, name)| Some((name.clone(), table.cell(*i)?.to_string())))
        .collect()
}

/// One row read by the located iterators: its line, the record or the error, and (on error)
/// the raw row as CSV text for a rejects file.
#[cfg_attr(not(feature = "mongodb"), allow(dead_code))] // line and raw feed the importer
pub(crate) struct Located<T> {
    pub(crate) line: u64,
    pub(crate) record: Result<T, SourceError>,
    pub(crate) raw: Option<String>,
}

/// Runs `read` on the table's next row, wrapping the outcome with its line (and the raw row
/// on error).
fn next_located<T>(
    table: &mut Table,
    read: impl FnOnce(&Table) -> Result<T, SourceError>,
) -> Option<Located<T>> {
    let record = match table.advance()? {
        Ok(()) => read(table),
        Err(e) => Err(e),
    };
    let raw = record.is_err().then(|| table.raw_row());
    Some(Located {
        line: table.line(),
        record,
        raw,
    })
}

impl CsvSource {
    /// Users with their lines (see [`Located`]).
    pub(crate) fn users_located(
        &self,
    ) -> Result<impl Iterator<Item = Located<UserRecord>>, SourceError> {
        let mut table = Table::open(&self.users)?;
        let id = table.require("user_id")?;
        let attribute_columns = table.other_columns(&[Some(id)]);
        let mut seen = HashMap::new();
        Ok(std::iter::from_fn(move || {
            next_located(&mut table, |table| {
                let user_id = table.id(id)?;
                check_unique(table, id, &user_id, &mut seen)?;
                Ok(UserRecord {
                    user_id,
                    attributes: attributes(table, &attribute_columns),
                })
            })
        }))
    }

    /// Products with their lines (see [`Located`]).
    pub(crate) fn products_located(
        &self,
    ) -> Result<impl Iterator<Item = Located<ProductRecord>>, SourceError> {
        let mut table = Table::open(&self.products)?;
        let id = table.require("product_id")?;
        let name = table.column("name");
        let price = table.column("price");
        let image = table.column("image");
        let attribute_columns = table.other_columns(&[Some(id), name, price, image]);
        let mut seen = HashMap::new();
        Ok(std::iter::from_fn(move || {
            next_located(&mut table, |table| {
                let product_id = table.id(id)?;
                let price = table.non_negative::<f64>(price, "price")?;
                check_unique(table, id, &product_id, &mut seen)?;
                let text = |c: Option<usize>| c.and_then(|c| table.cell(c)).map(str::to_string);
                Ok(ProductRecord {
                    product_id,
                    name: text(name),
                    price,
                    image: text(image),
                    attributes: attributes(table, &attribute_columns),
                })
            })
        }))
    }

    /// Interactions with their lines (see [`Located`]); `check` runs on each valid record
    /// (with its line) while the row is still at hand, so a row it refuses keeps its raw text.
    pub(crate) fn interactions_located<'a>(
        &self,
        mut check: impl FnMut(u64, InteractionRecord) -> Result<InteractionRecord, SourceError> + 'a,
    ) -> Result<impl Iterator<Item = Located<InteractionRecord>> + 'a, SourceError> {
        let mut table = Table::open(&self.interactions)?;
        let user = table.require("user_id")?;
        let product = table.require("product_id")?;
        table.only(&INTERACTION_COLUMNS)?;
        let kind = table.column("interaction_type");
        let weight = table.column("weight");
        let timestamp = table.column("timestamp");
        Ok(std::iter::from_fn(move || {
            next_located(&mut table, |table| {
                // The rules every interaction obeys (the server's live events too).
                let fields = InteractionFields {
                    user_id: table.cell(user),
                    product_id: table.cell(product),
                    interaction_type: kind.and_then(|c| table.cell(c)),
                    weight: weight.and_then(|c| table.cell(c)),
                    timestamp: timestamp.and_then(|c| table.cell(c)),
                };
                let record = interaction_from_fields(fields).map_err(|e| {
                    let column = match e.field {
                        "user_id" => Some(user),
                        "product_id" => Some(product),
                        "weight" => weight,
                        _ => timestamp,
                    };
                    match column {
                        Some(column) => table.cell_error(column, e.message),
                        None => SourceError::new(e.field, e.message),
                    }
                })?;
                check(table.line(), record)
            })
        }))
    }
}

impl RecordSource for CsvSource {
    fn users(&mut self) -> Result<RecordIter<'_, UserRecord>, SourceError> {
        Ok(Box::new(self.users_located()?.map(|row| row.record)))
    }

    fn products(&mut self) -> Result<RecordIter<'_, ProductRecord>, SourceError> {
        Ok(Box::new(self.products_located()?.map(|row| row.record)))
    }

    fn interactions(&mut self) -> Result<RecordIter<'_, InteractionRecord>, SourceError> {
        Ok(Box::new(
            self.interactions_located(|_, i| Ok(i))?
                .map(|row| row.record),
        ))
    }
}

/// Reads a file of `user_id,product_id` pairs (plain or gzip), such as the fixed held-out
/// test split, failing on the first bad row.
///
/// ```
/// use recsys_features::ExternalId;
///
/// let path = std::env::temp_dir().join(format!("recsys-pairs-doc-{}.csv", std::process::id()));
/// std::fs::write(&path, "user_id,product_id\n1,823721\n2,P-9\n").unwrap();
/// let pairs = recsys_store::read_pairs(&path).unwrap();
/// assert_eq!(pairs[0], (ExternalId::Int(1), ExternalId::Int(823721)));
/// assert_eq!(pairs[1].1, ExternalId::Str("P-9".into()));
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn read_pairs(path: impl AsRef<Path>) -> Result<Vec<(ExternalId, ExternalId)>, StoreError> {
    let mut table = Table::open(path.as_ref())?;
    let user = table.require("user_id")?;
    let product = table.require("product_id")?;
    table.only(&PAIR_COLUMNS)?;
    let mut pairs = Vec::new();
    while let Some(row) = table.advance() {
        row?;
        pairs.push((table.id(user)?, table.id(product)?));
    }
    Ok(pairs)
}
