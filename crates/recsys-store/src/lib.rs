//! Data sources for recsys: the CSV schema, read and validated as a stream (plain or gzip),
//! written back, and MongoDB as the real data store.
//!
//! * [`CsvSource`] implements [`RecordSource`](recsys_features::RecordSource) over a folder
//!   with `users.csv`, `products.csv` and `user_product_interactions.csv` (each possibly
//!   `.csv.gz`); bad rows come out as errors naming file, line, column and value.
//! * [`read_pairs`] reads a `user_id,product_id` file such as a fixed held-out test split.
//! * [`write_csv_dir`] writes any record source in the same schema.
//! * [`CountingSource`] wraps any source and counts interactions per product while the
//!   dataset loads (the popularity fallback without an extra pass).
//! * [`parse_timestamp`] / [`format_timestamp`]: ISO 8601 or Unix seconds, no date library.
//! * [`interaction_from_fields`]: the rules of one interaction (ids, weight, timestamp),
//!   shared by the CSV reader and the server's live events.
//! * `mongo` (cargo feature `mongodb`, on by default): [`mongo::MongoStore`] connects (fast
//!   timeouts, password redacted in errors), [`mongo::import_csv`] validates and upserts the
//!   CSV files idempotently, [`mongo::MongoSource`] streams the collections into the dataset
//!   builder, [`mongo::MongoStore::popularity`] counts in the database, artifacts go to
//!   GridFS, and [`mongo::MongoStore::append_events`] stores live event batches
//!   idempotently ([`mongo::EventBatch`]). The driver's sync API is used, so no caller needs async. Turn the feature off
//!   (`default-features = false`) to keep only the CSV layer, without tokio and TLS.
//!
//! Tests that need a server read `MONGODB_URI` (`scripts/db.sh start` brings one up; the
//! README's `scripts/test.sh` does it for you) and skip with a message when it is unset,
//! unless `RECSYS_REQUIRE_DB=1`.
//!
//! ```
//! use recsys_features::RecordSource;
//! use recsys_store::CsvSource;
//!
//! let dir = std::env::temp_dir().join(format!("recsys-store-crate-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! std::fs::write(dir.join("users.csv"), "user_id\n1\n").unwrap();
//! std::fs::write(dir.join("products.csv"), "product_id,price\n10,NaN\n").unwrap();
//! std::fs::write(dir.join("user_product_interactions.csv"), "user_id,product_id\n1,10\n").unwrap();
//!
//! let mut source = CsvSource::open(&dir).unwrap();
//! let err = source.products().unwrap().next().unwrap().unwrap_err();
//! assert!(err.location.ends_with("products.csv:2 column price"), "{err}");
//! assert!(err.message.contains("\"NaN\""), "{err}");
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```
#![warn(missing_docs)]

mod error;
mod interaction;
#[cfg(feature = "mongodb")]
pub mod mongo;
mod popularity;
mod reader;
mod table;
mod timestamp;
mod writer;

pub use error::StoreError;
pub use interaction::{interaction_from_fields, FieldError, InteractionFields};
pub use popularity::CountingSource;
pub use reader::{find_csv, read_pairs, CsvSource, INTERACTIONS_STEM, PRODUCTS_STEM, USERS_STEM};
pub use timestamp::{format_timestamp, parse_timestamp};
pub use writer::write_csv_dir;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        assert_send_sync::<CsvSource>();
        assert_send_sync::<StoreError>();
        #[cfg(feature = "mongodb")]
        {
            assert_send_sync::<mongo::MongoStore>();
            assert_send_sync::<mongo::MongoSource>();
            assert_send_sync::<mongo::ImportSummary>();
        }
    }
}
