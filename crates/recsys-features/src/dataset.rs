//! [`DatasetBuilder`] and [`Dataset`]: ids, feature vocabularies, feature matrices and
//! interactions, in the spirit of LightFM's `Dataset`.

use std::borrow::Borrow;

use recsys_core::{FeatureMatrix, Interactions};

use crate::columns::RecordColumns;
use crate::error::{FeaturesError, RecordKind, Result};
use crate::id_map::IdMap;
use crate::interactions::{
    record_weight, InteractionAccumulator, InteractionLog, InteractionMode, InteractionOptions,
    InteractionReport, UnknownIdPolicy,
};
use crate::records::{
    Attributes, ExternalId, InteractionRecord, ProductRecord, RecordSource, UserRecord,
};
use crate::spec::{ColumnKind, FeatureSpec};
use crate::vocab::{
    canonical_row, extract_columns, weight_row, ColumnContent, FeatureRow, FeatureVocabulary,
};

fn check_id(kind: RecordKind, id: &ExternalId, context: impl FnOnce() -> String) -> Result<()> {
    if id.is_empty() {
        return Err(FeaturesError::EmptyId {
            kind,
            context: context(),
        });
    }
    Ok(())
}

/// One side (users or items) before the build: ids and the extracted column values.
#[derive(Debug, Clone)]
struct PendingTable {
    kind: RecordKind,
    spec: FeatureSpec,
    ids: IdMap,
    /// Per row: the extracted columns, `None` while only the id is known.
    contents: Vec<Option<Vec<ColumnContent>>>,
}

impl PendingTable {
    fn new(kind: RecordKind, spec: FeatureSpec) -> Result<Self> {
        spec.validate()?;
        Ok(PendingTable {
            kind,
            spec,
            ids: IdMap::new(),
            contents: Vec::new(),
        })
    }

    fn add_id(&mut self, id: &ExternalId, context: impl FnOnce() -> String) -> Result<usize> {
        if let Some(row) = self.ids.index(id) {
            return Ok(row);
        }
        check_id(self.kind, id, context)?;
        self.contents.push(None);
        Ok(self.ids.get_or_insert(id.clone()))
    }

    fn add_record(&mut self, id: &ExternalId, record: &impl RecordColumns) -> Result<usize> {
        let kind = self.kind;
        let row = self.add_id(id, || format!("{kind} record"))?;
        if self.contents[row].is_some() {
            return Err(FeaturesError::DuplicateRecord {
                kind,
                id: id.clone(),
            });
        }
        self.contents[row] = Some(extract_columns(&self.spec, record));
        Ok(row)
    }

    /// Learns the bucket edges, then registers identity features (rows `0..n`) and the
    /// column values in first-seen order.
    fn build(self) -> FeatureTable {
        let numeric_values: Vec<Vec<f64>> = (0..self.spec.columns.len())
            .map(|c| {
                if !matches!(self.spec.columns[c].kind, ColumnKind::Numeric(_)) {
                    return Vec::new();
                }
                self.contents
                    .iter()
                    .flatten()
                    .filter_map(|row| match row[c] {
                        ColumnContent::Number(v) => Some(v),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let mut vocabulary = FeatureVocabulary::with_learned_edges(self.spec, &numeric_values);
        let identity = vocabulary.spec().identity;
        let mut rows: Vec<FeatureRow> = if identity {
            (0..self.contents.len())
                .map(|_| vec![(vocabulary.register_identity(), 1.0)])
                .collect()
        } else {
            vec![Vec::new(); self.contents.len()]
        };
        let has_record = self.contents.iter().map(Option::is_some).collect();
        for (row, contents) in rows.iter_mut().zip(&self.contents) {
            if let Some(contents) = contents {
                row.extend(vocabulary.register_values(contents));
                *row = canonical_row(std::mem::take(row));
            }
        }
        FeatureTable {
            kind: self.kind,
            ids: self.ids,
            vocabulary,
            rows,
            has_record,
            weighted_rows: 0,
        }
    }
}

/// Id registration, shared by the tables of [`DatasetBuilder`] and [`Dataset`].
trait RegisterIds {
    fn add_id(&mut self, id: &ExternalId, context: impl FnOnce() -> String) -> Result<usize>;
}

impl RegisterIds for PendingTable {
    fn add_id(&mut self, id: &ExternalId, context: impl FnOnce() -> String) -> Result<usize> {
        PendingTable::add_id(self, id, context)
    }
}

impl RegisterIds for FeatureTable {
    fn add_id(&mut self, id: &ExternalId, context: impl FnOnce() -> String) -> Result<usize> {
        FeatureTable::add_id(self, id, context)
    }
}

/// Registers an interaction's user and product ids (if new) and appends it to `log`.
fn log_interaction<T: RegisterIds>(
    users: &mut T,
    items: &mut T,
    log: &mut InteractionLog,
    interaction: &InteractionRecord,
) -> Result<()> {
    let position = log.len();
    let user = users.add_id(&interaction.user_id, || format!("interaction #{position}"))?;
    let item = items.add_id(&interaction.product_id, || {
        format!("interaction #{position}")
    })?;
    log.push(
        user,
        item,
        interaction.interaction_type.as_deref(),
        interaction.weight,
        interaction.timestamp,
    );
    Ok(())
}

/// One side (users or items) after the build.
#[derive(Debug, Clone)]
struct FeatureTable {
    kind: RecordKind,
    ids: IdMap,
    vocabulary: FeatureVocabulary,
    /// Canonical, un-normalised rows, identity feature included.
    rows: Vec<FeatureRow>,
    /// Whether the row's attributes were given (a second record for it is an error).
    has_record: Vec<bool>,
    /// Rows `0..weighted_rows` are already weighted (taken from a trained model by
    /// [`Dataset::resume`]) and go into the matrix as they are.
    weighted_rows: usize,
}

impl FeatureTable {
    /// A table continuing from trained rows (see [`Dataset::resume`]).
    fn resume(
        kind: RecordKind,
        ids: IdMap,
        vocabulary: FeatureVocabulary,
        features: &FeatureMatrix,
    ) -> Result<Self> {
        let corrupt = |reason: String| FeaturesError::Corrupt {
            what: match kind {
                RecordKind::User => "user feature rows to resume from",
                RecordKind::Product => "item feature rows to resume from",
            },
            reason,
        };
        if features.n_rows() != ids.len() {
            return Err(corrupt(format!(
                "{} rows for {} ids",
                features.n_rows(),
                ids.len()
            )));
        }
        if features.n_features() != vocabulary.len() {
            return Err(corrupt(format!(
                "{} feature columns for a vocabulary of {} features",
                features.n_features(),
                vocabulary.len()
            )));
        }
        for (index, feature) in vocabulary.features().iter().enumerate() {
            if let crate::vocab::Feature::Identity(row) = feature {
                if *row >= ids.len() {
                    return Err(corrupt(format!(
                        "identity feature {index} names row {row} of {}",
                        ids.len()
                    )));
                }
            }
        }
        let rows: Vec<FeatureRow> = (0..features.n_rows())
            .map(|r| {
                let (f, w) = features.row(r);
                f.iter().copied().zip(w.iter().copied()).collect()
            })
            .collect();
        let n = rows.len();
        Ok(FeatureTable {
            kind,
            ids,
            vocabulary,
            rows,
            has_record: vec![true; n],
            weighted_rows: n,
        })
    }

    fn add_id(&mut self, id: &ExternalId, context: impl FnOnce() -> String) -> Result<usize> {
        if let Some(row) = self.ids.index(id) {
            return Ok(row);
        }
        check_id(self.kind, id, context)?;
        let row = if self.vocabulary.spec().identity {
            vec![(self.vocabulary.register_identity(), 1.0)]
        } else {
            Vec::new()
        };
        self.rows.push(row);
        self.has_record.push(false);
        Ok(self.ids.get_or_insert(id.clone()))
    }

    fn add_record(&mut self, id: &ExternalId, record: &impl RecordColumns) -> Result<usize> {
        let kind = self.kind;
        let row = self.add_id(id, || format!("{kind} record"))?;
        if self.has_record[row] {
            return Err(FeaturesError::DuplicateRecord {
                kind,
                id: id.clone(),
            });
        }
        self.has_record[row] = true;
        let contents = extract_columns(self.vocabulary.spec(), record);
        let values = self.vocabulary.register_values(&contents);
        let mut features = std::mem::take(&mut self.rows[row]);
        features.extend(values);
        self.rows[row] = canonical_row(features);
        Ok(row)
    }

    fn matrix(&self) -> FeatureMatrix {
        let spec = self.vocabulary.spec();
        let rows = self.rows.iter().enumerate().map(|(r, row)| {
            let mut row = row.clone();
            if r >= self.weighted_rows {
                weight_row(spec, &mut row, self.vocabulary.identity_index(r));
            }
            row
        });
        FeatureMatrix::from_rows(self.vocabulary.len(), rows)
            .expect("invariant: feature indices < vocabulary length and weights finite")
    }

    fn feature_name(&self, index: usize) -> Option<String> {
        match self.vocabulary.feature(index)? {
            crate::vocab::Feature::Identity(row) => self.ids.id(*row).map(ToString::to_string),
            crate::vocab::Feature::Value(..) => self.vocabulary.feature_name(index),
        }
    }
}

/// Registers users, products (with their attributes) and interactions, then
/// [`build`](Self::build)s a [`Dataset`].
///
/// Registration order decides indices: users and products get dense indices in the order
/// their ids are first seen (by a record, an id or an interaction). Attributes of a row may
/// be given once, before or after its id was seen in an interaction.
#[derive(Debug, Clone)]
pub struct DatasetBuilder {
    users: PendingTable,
    items: PendingTable,
    /// Interactions (ids already resolved to indices).
    log: InteractionLog,
}

impl DatasetBuilder {
    /// A builder for the given user and item feature specs (checked here).
    pub fn new(user_spec: FeatureSpec, item_spec: FeatureSpec) -> Result<Self> {
        Ok(DatasetBuilder {
            users: PendingTable::new(RecordKind::User, user_spec)?,
            items: PendingTable::new(RecordKind::Product, item_spec)?,
            log: InteractionLog::default(),
        })
    }

    /// Registers a user with its attributes; returns its index. A second record for the
    /// same id is an error; an empty id is an error.
    pub fn add_user(&mut self, user: &UserRecord) -> Result<usize> {
        self.users.add_record(&user.user_id, user)
    }

    /// Registers a user id without attributes (no-op if known); returns its index.
    pub fn add_user_id(&mut self, id: &ExternalId) -> Result<usize> {
        self.users.add_id(id, || "user id".into())
    }

    /// Registers a product with its attributes; returns its index. A second record for the
    /// same id is an error; an empty id is an error.
    pub fn add_product(&mut self, product: &ProductRecord) -> Result<usize> {
        self.items.add_record(&product.product_id, product)
    }

    /// Registers a product id without attributes (no-op if known); returns its index.
    pub fn add_product_id(&mut self, id: &ExternalId) -> Result<usize> {
        self.items.add_id(id, || "product id".into())
    }

    /// Registers the interaction's user and product ids (if new) and keeps the interaction
    /// for [`Dataset::logged_interactions`].
    pub fn add_interaction(&mut self, interaction: &InteractionRecord) -> Result<()> {
        log_interaction(&mut self.users, &mut self.items, &mut self.log, interaction)
    }

    /// Number of users registered so far.
    pub fn n_users(&self) -> usize {
        self.users.ids.len()
    }

    /// Number of products registered so far.
    pub fn n_items(&self) -> usize {
        self.items.ids.len()
    }

    /// Learns the numeric bucket edges and assigns feature indices (identity features
    /// first, then values in first-seen order). O(number of values).
    pub fn build(self) -> Dataset {
        Dataset {
            users: self.users.build(),
            items: self.items.build(),
            log: self.log,
        }
    }
}

/// Users, items, their feature vocabularies and matrices, and the interactions they were
/// registered with.
///
/// Built by [`DatasetBuilder::build`] or [`Dataset::from_source`]. It can keep growing:
/// [`add_user`](Self::add_user), [`add_product`](Self::add_product) and friends append rows
/// and feature columns without changing existing indices (for an incremental fit, the
/// matrices then have more rows and more columns); numeric bucket edges stay as learned.
///
/// See the [crate docs](crate) for an example.
#[derive(Debug, Clone)]
pub struct Dataset {
    users: FeatureTable,
    items: FeatureTable,
    log: InteractionLog,
}

impl Dataset {
    /// A [`DatasetBuilder`] (same as [`DatasetBuilder::new`]).
    pub fn builder(user_spec: FeatureSpec, item_spec: FeatureSpec) -> Result<DatasetBuilder> {
        DatasetBuilder::new(user_spec, item_spec)
    }

    /// Reads all users, then all products, then all interactions from `source`, registering
    /// every id (also ids that only appear in interactions) and keeping the interactions
    /// (see [`logged_interactions`](Self::logged_interactions)); then builds.
    ///
    /// Fails on the first source error, empty id or repeated user/product record.
    pub fn from_source<S: RecordSource + ?Sized>(
        source: &mut S,
        user_spec: FeatureSpec,
        item_spec: FeatureSpec,
    ) -> Result<Dataset> {
        let mut builder = DatasetBuilder::new(user_spec, item_spec)?;
        for user in source.users()? {
            builder.add_user(&user?)?;
        }
        for product in source.products()? {
            builder.add_product(&product?)?;
        }
        for interaction in source.interactions()? {
            builder.add_interaction(&interaction?)?;
        }
        Ok(builder.build())
    }

    /// A dataset that continues from a trained model: its id maps, feature vocabularies
    /// and the feature matrices it was trained with (e.g. a bundle's, for warm
    /// retraining), with no interactions logged yet.
    ///
    /// The given rows keep their indices, features and weights exactly (the matrices
    /// return them bit for bit); their attributes are settled, so a record for a known id is
    /// a [`FeaturesError::DuplicateRecord`]. Users, products, feature values and
    /// interactions added afterwards are appended as for any dataset (new rows weighted by
    /// the vocabularies' specs, new values after the known ones; numeric bucket edges stay
    /// as learned). Fails with [`FeaturesError::Corrupt`] when a matrix does not match its
    /// ids and vocabulary.
    ///
    /// ```
    /// use recsys_features::{Dataset, ExternalId, FeatureSpec, InMemorySource, InteractionRecord};
    ///
    /// let mut shop = InMemorySource::default();
    /// shop.interactions.push(InteractionRecord {
    ///     user_id: 1.into(), product_id: 10.into(),
    ///     interaction_type: None, weight: None, timestamp: None,
    /// });
    /// let built = Dataset::from_source(&mut shop, FeatureSpec::identity_only(), FeatureSpec::identity_only())?;
    /// let mut grown = Dataset::resume(
    ///     built.users().clone(), built.items().clone(),
    ///     built.user_vocabulary().clone(), built.item_vocabulary().clone(),
    ///     &built.user_features(), &built.item_features(),
    /// )?;
    /// assert_eq!(grown.add_product_id(&ExternalId::Int(11))?, 1); // appended
    /// assert_eq!(grown.items().index(&ExternalId::Int(10)), Some(0)); // unchanged
    /// assert_eq!(grown.item_features().n_rows(), 2);
    /// # Ok::<(), recsys_features::FeaturesError>(())
    /// ```
    pub fn resume(
        users: IdMap,
        items: IdMap,
        user_vocabulary: FeatureVocabulary,
        item_vocabulary: FeatureVocabulary,
        user_features: &FeatureMatrix,
        item_features: &FeatureMatrix,
    ) -> Result<Dataset> {
        Ok(Dataset {
            users: FeatureTable::resume(RecordKind::User, users, user_vocabulary, user_features)?,
            items: FeatureTable::resume(
                RecordKind::Product,
                items,
                item_vocabulary,
                item_features,
            )?,
            log: InteractionLog::default(),
        })
    }

    /// User ids ⇄ user indices (rows of [`user_features`](Self::user_features)).
    pub fn users(&self) -> &IdMap {
        &self.users.ids
    }

    /// Product ids ⇄ item indices (rows of [`item_features`](Self::item_features)).
    pub fn items(&self) -> &IdMap {
        &self.items.ids
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.users.ids.len()
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.items.ids.len()
    }

    /// The user features' names and indices.
    pub fn user_vocabulary(&self) -> &FeatureVocabulary {
        &self.users.vocabulary
    }

    /// The item features' names and indices.
    pub fn item_vocabulary(&self) -> &FeatureVocabulary {
        &self.items.vocabulary
    }

    /// The `n_users × n_user_features` matrix (normalised if the user spec says so).
    pub fn user_features(&self) -> FeatureMatrix {
        self.users.matrix()
    }

    /// The `n_items × n_item_features` matrix (normalised if the item spec says so).
    pub fn item_features(&self) -> FeatureMatrix {
        self.items.matrix()
    }

    /// Name of user feature `index`: `column:value`, or the user's id for an identity
    /// feature (as LightFM names them).
    pub fn user_feature_name(&self, index: usize) -> Option<String> {
        self.users.feature_name(index)
    }

    /// Name of item feature `index`: `column:value`, or the product's id for an identity
    /// feature (as LightFM names them).
    pub fn item_feature_name(&self, index: usize) -> Option<String> {
        self.items.feature_name(index)
    }

    /// Cold start: the feature row of a user who is not in the dataset, from its
    /// attributes (see [`FeatureVocabulary::feature_row`]: known values only, no identity,
    /// same normalisation). Empty when nothing is known about it.
    pub fn user_feature_row(&self, attributes: &Attributes) -> FeatureRow {
        self.users.vocabulary.feature_row(attributes)
    }

    /// Cold start: the feature row of a product that is not in the dataset (see
    /// [`user_feature_row`](Self::user_feature_row)).
    pub fn item_feature_row(&self, product: &ProductRecord) -> FeatureRow {
        self.items.vocabulary.feature_row(product)
    }

    /// Adds a user with attributes (or gives attributes to a user known only by id); new
    /// values get new feature indices. Returns its index.
    pub fn add_user(&mut self, user: &UserRecord) -> Result<usize> {
        self.users.add_record(&user.user_id, user)
    }

    /// Adds a user id (no-op if known). Returns its index.
    pub fn add_user_id(&mut self, id: &ExternalId) -> Result<usize> {
        self.users.add_id(id, || "user id".into())
    }

    /// Adds a product with attributes (or gives attributes to a product known only by id).
    /// Returns its index.
    pub fn add_product(&mut self, product: &ProductRecord) -> Result<usize> {
        self.items.add_record(&product.product_id, product)
    }

    /// Adds a product id (no-op if known). Returns its index.
    pub fn add_product_id(&mut self, id: &ExternalId) -> Result<usize> {
        self.items.add_id(id, || "product id".into())
    }

    /// Registers the interaction's ids (if new) and appends it to the log.
    pub fn add_interaction(&mut self, interaction: &InteractionRecord) -> Result<()> {
        log_interaction(&mut self.users, &mut self.items, &mut self.log, interaction)
    }

    /// The interactions registered with the dataset, in arrival order.
    pub fn interaction_log(&self) -> &InteractionLog {
        &self.log
    }

    /// The `n_users × n_items` interactions of `records` (position `#n` in errors is the
    /// 0-based index in `records`). See [`InteractionMode`] for values and weights and
    /// [`UnknownIdPolicy`] for ids that are not registered.
    pub fn interactions<'r, I>(
        &self,
        records: I,
        options: impl Into<InteractionOptions>,
    ) -> Result<(Interactions, InteractionReport)>
    where
        I: IntoIterator<Item = &'r InteractionRecord>,
    {
        let options = options.into();
        let mode = &options.mode;
        if let InteractionMode::Weighted(weights) = mode {
            weights.validate()?;
        }
        let records = records.into_iter();
        let mut acc = InteractionAccumulator::new(
            options.unknown_ids,
            "interaction",
            matches!(mode, InteractionMode::Weighted(_)),
            records.size_hint().0,
        );
        for (position, record) in records.enumerate() {
            let user = self.users.ids.index(&record.user_id);
            let item = self.items.ids.index(&record.product_id);
            let Some((user, item)) = acc.resolve(
                position,
                (user, &record.user_id),
                (item, &record.product_id),
            )?
            else {
                continue;
            };
            let (weight, negative) = record_weight(
                mode,
                record.weight,
                |w| {
                    let t = record.interaction_type.as_deref();
                    (w.type_weight(t), w.is_negative(t))
                },
                || {
                    format!(
                        "in interaction #{position} (user \"{}\", product \"{}\")",
                        record.user_id, record.product_id
                    )
                },
            )?;
            acc.push(user, item, weight, negative);
        }
        acc.finish(self.n_users(), self.n_items())
    }

    /// The interactions registered with the dataset ([`Dataset::from_source`] or
    /// [`add_interaction`](Self::add_interaction)), as in
    /// [`interactions`](Self::interactions); every id is known.
    pub fn logged_interactions(
        &self,
        options: impl Into<InteractionOptions>,
    ) -> Result<(Interactions, InteractionReport)> {
        let options = options.into();
        let mode = &options.mode;
        let type_weights: Vec<(f32, bool)> = match mode {
            InteractionMode::Weighted(weights) => {
                weights.validate()?;
                self.log
                    .interaction_types()
                    .iter()
                    .map(|t| (weights.type_weight(Some(t)), weights.is_negative(Some(t))))
                    .collect()
            }
            InteractionMode::Binary => Vec::new(),
        };
        let mut acc = InteractionAccumulator::new(
            options.unknown_ids,
            "interaction",
            matches!(mode, InteractionMode::Weighted(_)),
            self.log.len(),
        );
        acc.report.records = self.log.len();
        for (position, entry) in self.log.entries().iter().enumerate() {
            let (weight, negative) = record_weight(
                mode,
                entry.weight,
                |w| match entry.interaction_type {
                    Some(t) => type_weights[t],
                    None => (w.default_type_weight, false),
                },
                || {
                    format!(
                        "in interaction #{position} (user \"{}\", product \"{}\")",
                        self.users
                            .ids
                            .id(entry.user)
                            .map_or(String::new(), |id| id.to_string()),
                        self.items
                            .ids
                            .id(entry.item)
                            .map_or(String::new(), |id| id.to_string()),
                    )
                },
            )?;
            acc.push(entry.user, entry.item, weight, negative);
        }
        acc.finish(self.n_users(), self.n_items())
    }

    /// Binary `n_users × n_items` interactions of external `(user id, product id)` pairs,
    /// e.g. a held-out test file; repeated pairs count once.
    pub fn interactions_from_pairs<P, U, I>(
        &self,
        pairs: P,
        unknown_ids: UnknownIdPolicy,
    ) -> Result<(Interactions, InteractionReport)>
    where
        P: IntoIterator<Item = (U, I)>,
        U: Borrow<ExternalId>,
        I: Borrow<ExternalId>,
    {
        let pairs = pairs.into_iter();
        let mut acc = InteractionAccumulator::new(unknown_ids, "pair", false, pairs.size_hint().0);
        for (position, (user_id, product_id)) in pairs.enumerate() {
            let (user_id, product_id) = (user_id.borrow(), product_id.borrow());
            let user = self.users.ids.index(user_id);
            let item = self.items.ids.index(product_id);
            if let Some((user, item)) =
                acc.resolve(position, (user, user_id), (item, product_id))?
            {
                acc.push(user, item, 1.0, false);
            }
        }
        acc.finish(self.n_users(), self.n_items())
    }
}
