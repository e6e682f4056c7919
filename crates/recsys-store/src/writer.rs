//! Writing any [`RecordSource`] as the three CSV files of the recsys schema.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use csv::StringRecord;
use recsys_features::{Attributes, RecordSource};

use crate::reader::{INTERACTIONS_STEM, PRODUCTS_STEM, USERS_STEM};
use crate::timestamp::format_timestamp;
use crate::StoreError;

/// Writes `users.csv`, `products.csv` and `user_product_interactions.csv` into `dir`
/// (created if missing, files replaced), in the schema that [`CsvSource`](crate::CsvSource)
/// reads.
///
/// Attribute columns are the union of all attribute names, sorted, after the schema columns;
/// absent values are empty cells. Prices and weights are written in Rust's shortest
/// round-trip form, timestamps as ISO 8601 UTC (`2017-09-09T22:30:46Z`), so reading the
/// files back gives the same records (except that an empty attribute value reads back as
/// absent). The source is read twice: once for the attribute names, once to write.
///
/// ```
/// use recsys_features::{InMemorySource, UserRecord};
///
/// let mut data = InMemorySource::default();
/// data.users.push(UserRecord {
///     user_id: 7.into(),
///     attributes: [("city".to_string(), "Lyon".to_string())].into(),
/// });
/// let dir = std::env::temp_dir().join(format!("recsys-write-doc-{}", std::process::id()));
/// recsys_store::write_csv_dir(&mut data, &dir).unwrap();
/// let text = std::fs::read_to_string(dir.join("users.csv")).unwrap();
/// assert_eq!(text, "user_id,city\n7,Lyon\n");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_csv_dir<S: RecordSource + ?Sized>(
    source: &mut S,
    dir: impl AsRef<Path>,
) -> Result<(), StoreError> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let mut cell = String::new();

    // Users.
    let path = dir.join(format!("{USERS_STEM}.csv"));
    let mut names = BTreeSet::new();
    for user in source.users()? {
        names.extend(user?.attributes.into_keys());
    }
    let names = checked_names(&path, names, &["user_id"])?;
    let mut out = Output::create(path, ["user_id"], &names)?;
    for user in source.users()? {
        let user = user?;
        out.row.push_field(id_text(&mut cell, &user.user_id));
        out.finish_row(&names, &user.attributes)?;
    }
    out.finish()?;

    // Products.
    let path = dir.join(format!("{PRODUCTS_STEM}.csv"));
    let fixed = ["product_id", "name", "price", "image"];
    let mut names = BTreeSet::new();
    for product in source.products()? {
        names.extend(product?.attributes.into_keys());
    }
    let names = checked_names(&path, names, &fixed)?;
    let mut out = Output::create(path, fixed, &names)?;
    for product in source.products()? {
        let product = product?;
        out.row.push_field(id_text(&mut cell, &product.product_id));
        out.row.push_field(product.name.as_deref().unwrap_or(""));
        cell.clear();
        if let Some(price) = product.price {
            let _ = write!(cell, "{price}");
        }
        out.row.push_field(&cell);
        out.row.push_field(product.image.as_deref().unwrap_or(""));
        out.finish_row(&names, &product.attributes)?;
    }
    out.finish()?;

    // Interactions.
    let path = dir.join(format!("{INTERACTIONS_STEM}.csv"));
    let fixed = [
        "user_id",
        "product_id",
        "interaction_type",
        "weight",
        "timestamp",
    ];
    let mut out = Output::create(path, fixed, &[])?;
    for interaction in source.interactions()? {
        let interaction = interaction?;
        out.row.push_field(id_text(&mut cell, &interaction.user_id));
        out.row
            .push_field(id_text(&mut cell, &interaction.product_id));
        out.row
            .push_field(interaction.interaction_type.as_deref().unwrap_or(""));
        cell.clear();
        if let Some(weight) = interaction.weight {
            let _ = write!(cell, "{weight}");
        }
        out.row.push_field(&cell);
        match interaction.timestamp {
            Some(t) => out.row.push_field(&format_timestamp(t)),
            None => out.row.push_field(""),
        }
        out.write_row()?;
    }
    out.finish()
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn id_text<'a>(cell: &'a mut String, id: &recsys_features::ExternalId) -> &'a str {
    cell.clear();
    let _ = write!(cell, "{id}");
    cell
}

fn checked_names(
    path: &Path,
    names: BTreeSet<String>,
    reserved: &[&str],
) -> Result<Vec<String>, StoreError> {
    for name in &names {
        let reason = if name.trim().is_empty() {
            Some("empty name")
        } else if name.trim() != name {
            Some("surrounding white space")
        } else if reserved.contains(&name.as_str()) {
            Some("clashes with a schema column")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(StoreError::BadAttributeName {
                path: path.to_path_buf(),
                name: name.clone(),
                reason,
            });
        }
    }
    Ok(names.into_iter().collect())
}

struct Output {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
    row: StringRecord,
}

impl Output {
    fn create<const N: usize>(
        path: PathBuf,
        fixed: [&str; N],
        attributes: &[String],
    ) -> Result<Output, StoreError> {
        let file = File::create(&path).map_err(|e| io_error(&path, e))?;
        let writer = csv::Writer::from_writer(BufWriter::new(file));
        let mut out = Output {
            path,
            writer,
            row: StringRecord::new(),
        };
        for name in fixed {
            out.row.push_field(name);
        }
        for name in attributes {
            out.row.push_field(name);
        }
        out.write_row()?;
        Ok(out)
    }

    fn write_row(&mut self) -> Result<(), StoreError> {
        let result = self.writer.write_record(&self.row);
        self.row.clear();
        result.map_err(|e| io_error(&self.path, e.into()))
    }

    /// Ends the row with its cells for the attribute columns `names` and writes it.
    fn finish_row(&mut self, names: &[String], attributes: &Attributes) -> Result<(), StoreError> {
        for name in names {
            self.row
                .push_field(attributes.get(name).map_or("", String::as_str));
        }
        self.write_row()
    }

    fn finish(mut self) -> Result<(), StoreError> {
        self.writer.flush().map_err(|e| io_error(&self.path, e))
    }
}
