//! Inputs of the recsys model: records and the data-source trait, id maps, feature
//! vocabularies, and the user/item feature matrices and interactions that
//! `recsys-core` trains on — in the spirit of LightFM's `Dataset`.
//!
//! ```
//! use recsys_features::{
//!     Attributes, ColumnSpec, Dataset, ExternalId, FeatureSpec, InMemorySource,
//!     InteractionOptions, InteractionRecord, InteractionWeights, ProductRecord, UserRecord,
//! };
//!
//! let product = |id: i64, brand: &str, tags: &str, price: f64| ProductRecord {
//!     product_id: id.into(),
//!     name: None,
//!     price: Some(price),
//!     image: None,
//!     attributes: Attributes::from([
//!         ("brand".to_string(), brand.to_string()),
//!         ("tags".to_string(), tags.to_string()),
//!     ]),
//! };
//! let click = |user: &str, product: i64, kind: &str| InteractionRecord {
//!     user_id: user.into(),
//!     product_id: product.into(),
//!     interaction_type: Some(kind.to_string()),
//!     weight: None,
//!     timestamp: None,
//! };
//! let mut source = InMemorySource {
//!     users: vec![UserRecord { user_id: "ann".into(), attributes: Attributes::new() }],
//!     products: vec![
//!         product(1, "Nike", "red|run", 80.0),
//!         product(2, "Puma", "blue", 20.0),
//!         product(3, "Nike", "", 50.0),
//!     ],
//!     // "bob" and product 4 appear only here; they are registered too.
//!     interactions: vec![click("ann", 1, "view"), click("ann", 1, "cart"), click("bob", 4, "view")],
//! };
//!
//! // Items: identity + brand + tags + price in 2 quantile buckets, rows summing to 1.
//! // (From a command line: FeatureSpec::from_columns(&["brand,tags:multi,price"], &["price"], 2, true, true).)
//! let item_spec = FeatureSpec::identity_only()
//!     .with_column(ColumnSpec::categorical("brand"))
//!     .with_column(ColumnSpec::multi_valued("tags", '|'))
//!     .with_column(ColumnSpec::quantiles("price", 2))
//!     .with_normalize(true);
//! let dataset = Dataset::from_source(&mut source, FeatureSpec::identity_only(), item_spec)?;
//!
//! assert_eq!((dataset.n_users(), dataset.n_items()), (2, 4));
//! assert_eq!(dataset.items().index(&ExternalId::from("4")), Some(3));
//! // Identity features 0..4 first, then values in first-seen order.
//! let names: Vec<String> = (4..dataset.item_vocabulary().len())
//!     .filter_map(|f| dataset.item_feature_name(f))
//!     .collect();
//! assert_eq!(names, ["brand:Nike", "tags:red", "tags:run", "price:q1", "brand:Puma", "tags:blue", "price:q0"]);
//! // The median price 50 is the bucket edge: 50 and 80 fall in q1, 20 in q0.
//! assert_eq!(dataset.item_vocabulary().bucket_edges("price"), Some(&[50.0][..]));
//!
//! let items = dataset.item_features();
//! assert_eq!((items.n_rows(), items.n_features()), (4, 11));
//! let (features, weights) = items.row(0); // product 1: itself, Nike, red, run, q1
//! assert_eq!(features, &[0, 4, 5, 6, 7]);
//! assert!(weights.iter().all(|&w| w == 0.2));
//!
//! // Weighted interactions: view = 1, cart = 3; ann's two clicks on product 1 merge.
//! let weights = InteractionWeights::parse_type_weights("view=1,cart=3")?;
//! let (interactions, report) = dataset.logged_interactions(InteractionOptions::weighted(weights))?;
//! assert_eq!((interactions.len(), report.merged_duplicates), (2, 1));
//! assert_eq!(interactions.weights_raw(), &[4.0, 1.0]);
//!
//! // Cold start: a product never seen in training, described by its attributes.
//! let row = dataset.item_feature_row(&product(99, "Puma", "red|new", 10.0));
//! assert_eq!(row, vec![(5, 1.0 / 3.0), (8, 1.0 / 3.0), (10, 1.0 / 3.0)]); // tags:red, brand:Puma, price:q0
//! # Ok::<(), recsys_features::FeaturesError>(())
//! ```
//!
//! # Contents
//!
//! * Records: [`ExternalId`], the three record kinds and [`RecordSource`].
//! * [`IdMap`]: external ids ⇄ dense indices.
//! * [`FeatureSpec`]: which columns become features, and how (with its command-line
//!   syntax).
//! * [`RecordColumns`]: which value a record has in a named column.
//! * [`FeatureVocabulary`], numeric bucketing ([`quantile_edges`], [`bucket_index`]) and the
//!   record → feature-row rules.
//! * [`DatasetBuilder`] and [`Dataset`].
//! * Interactions: [`InteractionMode`], weights, the [`UnknownIdPolicy`] and the
//!   [`InteractionReport`].
#![warn(missing_docs)]

mod columns;
mod dataset;
mod error;
mod id_map;
mod interactions;
mod records;
mod spec;
mod vocab;

pub use columns::{ColumnValue, RecordColumns};
pub use dataset::{Dataset, DatasetBuilder};
pub use error::{FeaturesError, RecordKind, Result};
pub use id_map::IdMap;
pub use interactions::{
    InteractionLog, InteractionMode, InteractionOptions, InteractionReport, InteractionWeights,
    LoggedInteraction, UnknownIdPolicy, UNKNOWN_ID_EXAMPLES,
};
pub use records::{
    Attributes, ExternalId, InMemorySource, InteractionRecord, ProductRecord, RecordIter,
    RecordSource, SourceError, UserRecord,
};
pub use spec::{detect_numeric_columns, Bucketing, ColumnKind, ColumnSpec, FeatureSpec};
pub use vocab::{bucket_index, quantile_edges, Feature, FeatureRow, FeatureVocabulary};
