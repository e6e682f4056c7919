//! Everything an offline experiment needs between "records" and "metrics": which columns
//! become features ([`ExperimentConfig`]), loading any [`RecordSource`] with a held-out or
//! random split ([`Experiment::load`]), an item cold-start split
//! ([`Experiment::hold_out_items`]), training with per-epoch reports ([`Experiment::fit`])
//! and evaluation that honours the split ([`Experiment::evaluate`]).
//!
//! The `evaluate` and `quickstart` examples are thin layers over this module; so are future
//! `train`/`serve` binaries.
//!
//! # Feature rules
//!
//! They match the LightFM comparison script (`scripts/lightfm_bench.py`), so both
//! implementations train on identical inputs:
//!
//! * A feature is named `column:value` and has weight 1; empty values give no feature.
//! * Identity features come first (feature index = row index), then the column values.
//! * Only the columns named in [`ExperimentConfig::numeric_columns`] (default `price`) are
//!   numeric: they are cut into [`ExperimentConfig::quantiles`] quantile buckets
//!   ([`Bucketing::Quantiles`](recsys_features::Bucketing::Quantiles), numpy's edges,
//!   features `price:q0` … `price:q4`). **Every other column is categorical**, even when its
//!   values look like numbers (`manufacturer_id`, `household_size` are categories).
//! * Rows are L1-normalised ([`ExperimentConfig::normalize`], on by default). A row that
//!   holds only its identity feature is unchanged by this, so for a pure collaborative model
//!   it is the same as LightFM without feature matrices.
//!
//! # Split rules
//!
//! * [`Split::HeldOutPairs`]: test = the given `(user id, product id)` pairs (binary, a
//!   repeated pair counts once); train = every logged interaction whose pair is **not** a
//!   test pair. Ids that appear only in the test pairs are registered (appended, like
//!   LightFM's `Dataset.fit`), so they are ranked but never trained on.
//! * [`Split::Random`]: each (merged) interaction goes to the test set with probability
//!   `test_fraction`, drawn with [`Rng::new(seed)`](Rng)
//!   ([`Interactions::split_random`]).
//! * [`Split::None`]: everything is training data.
//!
//! ```
//! use recsys::demo::{generate, DemoConfig};
//! use recsys::experiment::{Experiment, ExperimentConfig, Split};
//! use recsys::{Hyperparameters, Loss};
//!
//! let mut data = generate(&DemoConfig { users: 150, products: 80, interactions: 3_000, seed: 3 });
//! let config = ExperimentConfig::collaborative()
//!     .with_user_columns(["age_group", "city"])
//!     .with_item_columns(["category", "price"]);
//! let experiment = Experiment::load(&mut data, &config, Split::Random { test_fraction: 0.2, seed: 1 })?;
//! // `price` is bucketed, the rest is categorical.
//! assert_eq!(experiment.dataset().item_vocabulary().bucket_edges("price").map(<[f64]>::len), Some(4));
//!
//! let params = Hyperparameters::builder().loss(Loss::Warp).no_components(8).seed(1).build()?;
//! let (model, training) = experiment.fit(params, 5, 1, |_report| {})?;
//! assert_eq!(training.epochs.len(), 5);
//! let metrics = experiment.evaluate(&model, 10, 1)?;
//! assert!(metrics.auc > 0.5, "{metrics:?}");
//! # Ok::<(), recsys::experiment::ExperimentError>(())
//! ```

use std::ops::ControlFlow;

use recsys_core::{
    top_k, ColdStartRefit, ContentModel, ContentParams, ContentPrior, CoreError, EpochReport,
    EvalOptions, FitOptions, HybridModel, Hyperparameters, Interaction, Interactions, Metrics,
    Model, Popularity, Rng, Scorer, UserQuery,
};
use recsys_features::{
    Attributes, Dataset, ExternalId, Feature, FeatureSpec, FeatureVocabulary, FeaturesError,
    InteractionMode, InteractionOptions, InteractionReport, RecordKind, RecordSource,
    UnknownIdPolicy,
};
use recsys_recommend::BundleBuilder;
use thiserror::Error;

/// Everything that can go wrong in an experiment.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ExperimentError {
    /// A setting is out of range.
    #[error("invalid {name} {value}: {reason}")]
    InvalidSetting {
        /// The setting (as named on the command line).
        name: &'static str,
        /// The rejected value, formatted.
        value: String,
        /// What a valid value looks like.
        reason: &'static str,
    },
    /// One side would have no features at all.
    #[error("the {kind}s would have no features: without the {kind} identity feature, give at least one {kind} feature column")]
    NoFeatures {
        /// Users or products.
        kind: RecordKind,
    },
    /// A feature column gave no feature value for any record (usually a misspelt name).
    #[error("{kind} feature column `{column}` has no non-empty value in any {kind} record (is the name misspelt?)")]
    EmptyColumn {
        /// Users or products.
        kind: RecordKind,
        /// The column name.
        column: String,
    },
    /// The item cold-start split was asked for twice.
    #[error("the item cold-start split has already been applied to this experiment")]
    ColdStartTwice,
    /// Building the dataset, the features or the interactions failed.
    #[error(transparent)]
    Features(#[from] FeaturesError),
    /// Training or evaluation failed.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// Result alias of this module.
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;

/// Which columns become features, and how interactions become training entries.
///
/// Column entries use the command-line syntax of
/// [`FeatureSpec::from_columns`] (`brand`, `tags:multi`, `price:q4`, …; each entry may hold
/// several comma-separated columns). See the [module docs](self) for the rules.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentConfig {
    /// User attribute columns (`users.csv` columns other than `user_id`).
    pub user_columns: Vec<String>,
    /// Product columns (`products.csv` columns, including `price` and `name`).
    pub item_columns: Vec<String>,
    /// Columns bucketed by quantile. A name that is not among a side's columns is ignored
    /// on that side. Every other column is categorical.
    pub numeric_columns: Vec<String>,
    /// Number of quantile buckets of a numeric column.
    pub quantiles: usize,
    /// Give every user its own identity feature.
    pub user_identity: bool,
    /// Give every item its own identity feature.
    pub item_identity: bool,
    /// L1-normalise feature rows (identity feature included).
    pub normalize: bool,
    /// Identity-anchored weighting instead of L1 normalisation: identity weight 1, the other
    /// features of a row summing to this value
    /// ([`FeatureSpec::metadata_weight`](recsys_features::FeatureSpec::metadata_weight)).
    pub metadata_weight: Option<f32>,
    /// Binary (weight 1 per distinct pair) or weighted interactions.
    pub interactions: InteractionMode,
}

impl Default for ExperimentConfig {
    /// Same as [`ExperimentConfig::collaborative`].
    fn default() -> Self {
        Self::collaborative()
    }
}

impl ExperimentConfig {
    /// Identity features only (pure collaborative filtering), numeric column `price` in 5
    /// quantile buckets once columns are added, rows normalised, binary interactions.
    pub fn collaborative() -> Self {
        ExperimentConfig {
            user_columns: Vec::new(),
            item_columns: Vec::new(),
            numeric_columns: vec!["price".to_string()],
            quantiles: 5,
            user_identity: true,
            item_identity: true,
            normalize: true,
            metadata_weight: None,
            interactions: InteractionMode::Binary,
        }
    }

    /// The hybrid set-up of the demo shop ([`crate::demo`]): user identity + `city`,
    /// `age_group`, `user_type`; item identity + `category`, `brand`, `price_range`,
    /// `colour`, `season`.
    pub fn demo_hybrid() -> Self {
        Self::collaborative()
            .with_user_columns(["city", "age_group", "user_type"])
            .with_item_columns(["category", "brand", "price_range", "colour", "season"])
    }

    /// Replaces the user columns.
    pub fn with_user_columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.user_columns = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the item columns.
    pub fn with_item_columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.item_columns = columns.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the numeric columns.
    pub fn with_numeric_columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.numeric_columns = columns.into_iter().map(Into::into).collect();
        self
    }

    /// The user [`FeatureSpec`].
    pub fn user_spec(&self) -> Result<FeatureSpec> {
        self.side_spec(RecordKind::User, &self.user_columns, self.user_identity)
    }

    /// The item [`FeatureSpec`].
    pub fn item_spec(&self) -> Result<FeatureSpec> {
        self.side_spec(RecordKind::Product, &self.item_columns, self.item_identity)
    }

    /// The names of the numeric columns that are among the feature columns of either side,
    /// and those that are not (probably misspelt when given explicitly).
    pub fn numeric_columns_used(&self) -> (Vec<String>, Vec<String>) {
        let names = |list: &[String]| -> Vec<String> {
            FeatureSpec::from_columns(&refs(list), &[], 1, false, false)
                .map(|s| s.columns.into_iter().map(|c| c.name).collect())
                .unwrap_or_default()
        };
        let mut all = names(&self.user_columns);
        all.extend(names(&self.item_columns));
        split_names(&self.numeric_columns)
            .into_iter()
            .partition(|n| all.contains(n))
    }

    fn side_spec(
        &self,
        kind: RecordKind,
        columns: &[String],
        identity: bool,
    ) -> Result<FeatureSpec> {
        if self.quantiles == 0 {
            return Err(ExperimentError::InvalidSetting {
                name: "quantiles",
                value: "0".into(),
                reason: "must be >= 1",
            });
        }
        let list = refs(columns);
        // First the bare column names of this side, so that numeric names of the other side
        // are not reported as missing here.
        let plain =
            FeatureSpec::from_columns(&list, &[], self.quantiles, identity, self.normalize)?;
        let numeric: Vec<String> = split_names(&self.numeric_columns)
            .into_iter()
            .filter(|n| plain.columns.iter().any(|c| &c.name == n))
            .collect();
        let spec = FeatureSpec::from_columns(
            &list,
            &refs(&numeric),
            self.quantiles,
            identity,
            self.normalize,
        )?;
        if !spec.identity && spec.columns.is_empty() {
            return Err(ExperimentError::NoFeatures { kind });
        }
        let spec = spec.with_metadata_weight(self.metadata_weight);
        spec.validate()?;
        Ok(spec)
    }
}

fn refs(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

fn split_names(list: &[String]) -> Vec<String> {
    list.iter()
        .flat_map(|e| e.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// How the interactions are divided into training and test data.
#[derive(Debug, Clone, PartialEq)]
pub enum Split {
    /// No test set.
    None,
    /// A fixed held-out set of `(user id, product id)` pairs (e.g. `test_pairs.csv.gz`).
    HeldOutPairs(Vec<(ExternalId, ExternalId)>),
    /// A seeded random split of the interactions.
    Random {
        /// Probability that an interaction goes to the test set, in `[0, 1)`.
        test_fraction: f64,
        /// Seed of the split.
        seed: u64,
    },
}

/// The items of an item cold-start experiment (see [`Experiment::hold_out_items`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ColdStartItems {
    /// The chosen item indices, in the order drawn.
    pub items: Vec<usize>,
    /// `mask[i]` is true for a chosen item (the candidates of the evaluation).
    pub mask: Vec<bool>,
    /// Training interactions removed because their item was chosen.
    pub removed_train: usize,
    /// Test interactions dropped because their item was not chosen.
    pub removed_test: usize,
}

/// What loading reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Building the interactions from the logged records.
    pub interactions: InteractionReport,
    /// Building the test set from held-out pairs.
    pub test_pairs: Option<InteractionReport>,
    /// Held-out pairs that were not among the logged interactions.
    pub test_pairs_not_logged: usize,
}

/// What [`Experiment::fit`] reports.
#[derive(Debug, Clone, Default)]
pub struct TrainingReport {
    /// One report per epoch, in order.
    pub epochs: Vec<EpochReport>,
}

impl TrainingReport {
    /// Mean wall time of an epoch in seconds (0 when no epoch ran).
    pub fn seconds_per_epoch(&self) -> f64 {
        if self.epochs.is_empty() {
            return 0.0;
        }
        self.epochs
            .iter()
            .map(|e| e.elapsed.as_secs_f64())
            .sum::<f64>()
            / self.epochs.len() as f64
    }

    /// The loss estimate of the last epoch.
    pub fn final_loss(&self) -> Option<f64> {
        self.epochs.last().map(|e| e.loss)
    }
}

/// A dataset with its training and (optional) test interactions, ready to train and
/// evaluate. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Experiment {
    dataset: Dataset,
    train: Interactions,
    test: Option<Interactions>,
    cold_items: Option<ColdStartItems>,
    /// `(test, train)` re-indexed to the cold items (column `j` = `cold_items.items[j]`).
    cold_eval: Option<(Interactions, Interactions)>,
    report: LoadReport,
}

impl Experiment {
    /// Reads `source` into a [`Dataset`] with the features of `config`, then splits its
    /// interactions as [`Experiment::from_dataset`] does.
    pub fn load<S: RecordSource + ?Sized>(
        source: &mut S,
        config: &ExperimentConfig,
        split: Split,
    ) -> Result<Experiment> {
        let dataset = Dataset::from_source(source, config.user_spec()?, config.item_spec()?)?;
        Self::from_dataset(dataset, config.interactions.clone(), split)
    }

    /// Splits the logged interactions of `dataset` (see the [module docs](self)) and checks
    /// that every feature column gave at least one feature.
    pub fn from_dataset(
        mut dataset: Dataset,
        interactions: InteractionMode,
        split: Split,
    ) -> Result<Experiment> {
        check_columns(RecordKind::User, dataset.user_vocabulary())?;
        check_columns(RecordKind::Product, dataset.item_vocabulary())?;
        let options = InteractionOptions::from(interactions);
        let mut report = LoadReport::default();
        let (train, test) = match split {
            Split::None => {
                let (all, r) = dataset.logged_interactions(options)?;
                report.interactions = r;
                (all, None)
            }
            Split::Random {
                test_fraction,
                seed,
            } => {
                let (all, r) = dataset.logged_interactions(options)?;
                report.interactions = r;
                let (train, test) = all.split_random(test_fraction, seed)?;
                (train, Some(test))
            }
            Split::HeldOutPairs(pairs) => {
                for (user, product) in &pairs {
                    dataset.add_user_id(user)?;
                    dataset.add_product_id(product)?;
                }
                let (all, r) = dataset.logged_interactions(options)?;
                report.interactions = r;
                let (test, r) = dataset.interactions_from_pairs(
                    pairs.iter().map(|(u, i)| (u, i)),
                    UnknownIdPolicy::Error,
                )?;
                report.test_pairs = Some(r);
                report.test_pairs_not_logged = test
                    .iter()
                    .filter(|e| !all.contains(e.user, e.item))
                    .count();
                (all.difference(&test), Some(test))
            }
        };
        Ok(Experiment {
            dataset,
            train,
            test,
            cold_items: None,
            cold_eval: None,
            report,
        })
    }

    /// Item cold start: chooses `round(fraction × n_items)` items (rounded half away from
    /// zero) and removes all their **training** interactions; the test set keeps only the
    /// interactions with chosen items, and [`evaluate`](Self::evaluate) ranks among the
    /// chosen items only. Users without a test interaction on a chosen item are not
    /// evaluated.
    ///
    /// The choice: the item index list `0..n_items` is shuffled with
    /// [`Rng::new(seed)`](Rng)[`.shuffle`](Rng::shuffle) and the first `round(f·n)`
    /// indices are taken (in that order, see [`ColdStartItems::items`]).
    ///
    /// Only item features can describe the chosen items to the model, so this is meant for
    /// configurations with item columns (and usually without the item identity feature).
    pub fn hold_out_items(&mut self, fraction: f64, seed: u64) -> Result<&ColdStartItems> {
        if self.cold_items.is_some() {
            return Err(ExperimentError::ColdStartTwice);
        }
        check_fraction("cold-start-items", fraction)?;
        let n_items = self.dataset.n_items();
        let n_cold = (fraction * n_items as f64).round() as usize;
        if n_cold == 0 || n_cold >= n_items {
            return Err(ExperimentError::InvalidSetting {
                name: "cold-start-items",
                value: fraction.to_string(),
                reason: "chooses no item or every item for this catalogue",
            });
        }
        let mut order: Vec<usize> = (0..n_items).collect();
        Rng::new(seed).shuffle(&mut order);
        order.truncate(n_cold);
        self.hold_out(order)
    }

    /// Item cold start with a given set of products (by id, e.g. read from a file):
    /// as [`Experiment::hold_out_items`], with exactly these items, in this order. Every id
    /// must be a known product, none repeated, and at least one product must stay warm.
    pub fn hold_out_given_items<I>(&mut self, ids: I) -> Result<&ColdStartItems>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        if self.cold_items.is_some() {
            return Err(ExperimentError::ColdStartTwice);
        }
        let n_items = self.dataset.n_items();
        let mut order = Vec::new();
        let mut chosen = vec![false; n_items];
        for id in ids {
            let id = id.as_ref().trim();
            let item = self
                .dataset
                .items()
                .index(&ExternalId::parse(id))
                .ok_or_else(|| ExperimentError::InvalidSetting {
                    name: "cold-items",
                    value: id.to_string(),
                    reason: "is not a product of the dataset",
                })?;
            if std::mem::replace(&mut chosen[item], true) {
                return Err(ExperimentError::InvalidSetting {
                    name: "cold-items",
                    value: id.to_string(),
                    reason: "is listed twice",
                });
            }
            order.push(item);
        }
        if order.is_empty() || order.len() >= n_items {
            return Err(ExperimentError::InvalidSetting {
                name: "cold-items",
                value: format!("{} products", order.len()),
                reason: "chooses no item or every item for this catalogue",
            });
        }
        self.hold_out(order)
    }

    /// Removes the training interactions of the items of `order` and keeps only their test
    /// interactions (re-indexed for the cold evaluation).
    fn hold_out(&mut self, order: Vec<usize>) -> Result<&ColdStartItems> {
        let n_items = self.dataset.n_items();
        let mut mask = vec![false; n_items];
        for &i in &order {
            mask[i] = true;
        }
        let train = self.train.filter(|e| !mask[e.item]);
        let removed_train = self.train.len() - train.len();
        self.train = train;
        let mut removed_test = 0;
        if let Some(test) = &self.test {
            let kept = test.filter(|e| mask[e.item]);
            removed_test = test.len() - kept.len();
            self.cold_eval = Some((
                restricted_to(&kept, &order)?,
                restricted_to(&self.train, &order)?,
            ));
            self.test = Some(kept);
        }
        Ok(self.cold_items.insert(ColdStartItems {
            items: order,
            mask,
            removed_train,
            removed_test,
        }))
    }

    /// The dataset: ids, vocabularies, feature matrices.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// Training interactions.
    pub fn train(&self) -> &Interactions {
        &self.train
    }

    /// The [`ContentModel`] of the dataset's item features, fitted on the training
    /// interactions: in an item cold-start experiment, the scorer for the held-out items
    /// that ranks them from their metadata alone.
    pub fn fit_content(&self, params: ContentParams) -> Result<ContentModel> {
        self.content_model(&self.train, params)
    }

    /// The [`ContentModel`] of the dataset's item features fitted on `interactions` (e.g. the
    /// fit part of a [`validation_split`](Self::validation_split)).
    pub fn content_model(
        &self,
        interactions: &Interactions,
        params: ContentParams,
    ) -> Result<ContentModel> {
        let columns = self.dataset.item_vocabulary().feature_columns();
        Ok(ContentModel::fit(
            &self.dataset.item_features(),
            &columns,
            interactions,
            params,
        )?)
    }

    /// Test interactions (restricted to the cold items after
    /// [`hold_out_items`](Self::hold_out_items)).
    pub fn test(&self) -> Option<&Interactions> {
        self.test.as_ref()
    }

    /// The cold-start items, if [`hold_out_items`](Self::hold_out_items) was applied.
    pub fn cold_items(&self) -> Option<&ColdStartItems> {
        self.cold_items.as_ref()
    }

    /// What loading reported.
    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.dataset.n_users()
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.dataset.n_items()
    }

    /// An untrained model over the dataset's feature matrices.
    pub fn model(&self, params: Hyperparameters) -> Result<HybridModel> {
        Ok(HybridModel::new(
            params,
            self.dataset.user_features(),
            self.dataset.item_features(),
        )?)
    }

    /// Builds a model and trains it for `epochs` epochs on `threads` threads (1 =
    /// bit-reproducible), calling `on_epoch` after each epoch.
    pub fn fit(
        &self,
        params: Hyperparameters,
        epochs: usize,
        threads: usize,
        mut on_epoch: impl FnMut(&EpochReport),
    ) -> Result<(HybridModel, TrainingReport)> {
        let mut model = self.model(params)?;
        let mut report = TrainingReport::default();
        let options = FitOptions::epochs(epochs)
            .threads(threads)
            .on_epoch(|epoch, _model| {
                on_epoch(epoch);
                report.epochs.push(epoch.clone());
                ControlFlow::Continue(())
            });
        model.fit(&self.train, options)?;
        Ok((model, report))
    }

    /// A validation split carved from the training interactions (never from the test
    /// set): `(fit, validation)`, with `fraction` of the training pairs, drawn with `seed`,
    /// in the validation part. Tune and stop early on it; report on the test set.
    pub fn validation_split(
        &self,
        fraction: f64,
        seed: u64,
    ) -> Result<(Interactions, Interactions)> {
        Ok(self.train.split_random(fraction, seed)?)
    }

    /// An item cold-start validation split carved from the **training** interactions
    /// (never the test set), to choose the cold-start refit's settings
    /// ([`ColdStartValidation::choose_refit`]): `round(fraction × w)` of the `w` items with
    /// training interactions (at least one, never all) become pseudo-cold — their training
    /// pairs are removed from [`fit_interactions`](ColdStartValidation::fit_interactions)
    /// and held out. The choice: the warm item indices in ascending order, shuffled with
    /// [`Rng::new(seed)`](Rng), the first ones taken.
    ///
    /// ```
    /// use recsys::demo::{generate, DemoConfig};
    /// use recsys::experiment::{ColdStartValidation, Experiment, ExperimentConfig, Split};
    /// use recsys::{FitOptions, Hyperparameters, Model};
    ///
    /// let mut data = generate(&DemoConfig { users: 150, products: 80, interactions: 3_000, seed: 3 });
    /// let mut config = ExperimentConfig::demo_hybrid();
    /// config.metadata_weight = Some(1.0);
    /// let experiment = Experiment::load(&mut data, &config, Split::Random { test_fraction: 0.2, seed: 1 })?;
    /// let validation = experiment.cold_start_validation(0.2, 7)?;
    /// // A model trained without the pseudo-cold items' pairs...
    /// let params = Hyperparameters::builder().no_components(8).seed(1).build()?;
    /// let mut model = experiment.model(params)?;
    /// model.fit(validation.fit_interactions(), FitOptions::epochs(5))?;
    /// // ... tells which refit predicts them best from their metadata.
    /// let choice = validation.choose_refit(&Model::from(model), &ColdStartValidation::default_candidates(), 1)?;
    /// assert_eq!(choice.trials.len(), ColdStartValidation::default_candidates().len());
    /// assert!(choice.trials.iter().all(|(_, m)| m.auc <= choice.best_metrics.auc));
    /// # Ok::<(), recsys::experiment::ExperimentError>(())
    /// ```
    pub fn cold_start_validation(&self, fraction: f64, seed: u64) -> Result<ColdStartValidation> {
        check_fraction("cold-start validation fraction", fraction)?;
        let counts = self.train.item_counts();
        let mut warm: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] > 0).collect();
        if warm.len() < 2 {
            return Err(CoreError::Empty(
                "a cold-start validation split needs at least two items with training interactions",
            )
            .into());
        }
        let n_cold = ((fraction * warm.len() as f64).round() as usize).clamp(1, warm.len() - 1);
        Rng::new(seed).shuffle(&mut warm);
        warm.truncate(n_cold);
        let items = warm;
        let mut chosen = vec![false; counts.len()];
        for &i in &items {
            chosen[i] = true;
        }
        let fit = self.train.filter(|e| !chosen[e.item]);
        let held_out = restricted_to(&self.train, &items)?;
        Ok(ColdStartValidation {
            items,
            fit,
            held_out,
        })
    }

    /// The popularity baseline of the training interactions.
    pub fn popularity(&self) -> Popularity {
        Popularity::from_interactions(&self.train)
    }

    /// A [`BundleBuilder`] for `model` trained on this experiment: id maps and
    /// vocabularies of the dataset, the training interactions as seen items and
    /// popularity. Add product records (the catalogue), evaluation results and a
    /// description, then [`build`](BundleBuilder::build) the bundle a server loads.
    pub fn bundle(&self, model: impl Into<Model>) -> BundleBuilder {
        BundleBuilder::new(model, &self.dataset, self.train.clone())
    }

    /// The `n` best items for known user `user` by `scorer`, best first, skipping the items
    /// the user interacted with in training.
    pub fn recommend<S: Scorer + ?Sized>(
        &self,
        scorer: &S,
        user: usize,
        n: usize,
    ) -> Result<Vec<(usize, f32)>> {
        let mut scores = Vec::new();
        scorer.score_all(UserQuery::Known(user), &mut scores)?;
        let seen = self.train.user_items(user);
        Ok(top_k(&scores, n, |i| {
            seen.binary_search(&(i as u32)).is_ok()
        }))
    }

    /// Cold start: the `n` best items for a user who is not in the dataset, described only by
    /// attributes (values unknown to the training vocabulary are ignored; with no known
    /// value the scores are the item biases alone, i.e. the model's notion of popularity).
    pub fn recommend_new_user<S: Scorer + ?Sized>(
        &self,
        scorer: &S,
        attributes: &Attributes,
        n: usize,
    ) -> Result<Vec<(usize, f32)>> {
        let row = self.dataset.user_feature_row(attributes);
        let mut scores = Vec::new();
        scorer.score_all(UserQuery::Features(&row), &mut scores)?;
        Ok(top_k(&scores, n, |_| false))
    }

    /// Evaluation options for cut-off `k`: after [`hold_out_items`](Self::hold_out_items)
    /// only the cold items are candidates.
    pub fn eval_options(&self, k: usize, threads: usize) -> EvalOptions {
        EvalOptions {
            k,
            threads,
            candidates: self.cold_items.as_ref().map(|c| c.mask.clone()),
        }
    }

    /// Evaluates `scorer` on the test set, excluding training pairs from the ranking (and,
    /// in a cold-start experiment, ranking among the cold items only).
    ///
    /// The cold-start evaluation gives the same metrics as `recsys_core::evaluate` with
    /// [`eval_options`](Self::eval_options)' candidate mask, but ranks a [`Restricted`]
    /// scorer on interactions re-indexed to the cold items (as LightFM's comparison script
    /// slices its matrices), which skips the non-candidates instead of un-counting them.
    pub fn evaluate<S: Scorer + ?Sized>(
        &self,
        scorer: &S,
        k: usize,
        threads: usize,
    ) -> Result<Metrics> {
        let Some(test) = &self.test else {
            return Err(CoreError::Empty("the experiment has no test set").into());
        };
        if let (Some(cold), Some((cold_test, cold_train))) = (&self.cold_items, &self.cold_eval) {
            let restricted = Restricted::new(scorer, &cold.items)?;
            let options = EvalOptions {
                k,
                threads,
                candidates: None,
            };
            return Ok(recsys_core::evaluate(
                &restricted,
                cold_test,
                Some(cold_train),
                &options,
            )?);
        }
        Ok(recsys_core::evaluate(
            scorer,
            test,
            Some(&self.train),
            &self.eval_options(k, threads),
        )?)
    }
}

/// The interactions of `x` with the items of `items`, re-indexed so that item `j` is
/// `items[j]` (the shape of a cold-start evaluation among those items only).
fn restricted_to(x: &Interactions, items: &[usize]) -> Result<Interactions> {
    let mut column = vec![usize::MAX; x.n_items()];
    for (j, &i) in items.iter().enumerate() {
        column[i] = j;
    }
    Ok(Interactions::from_entries(
        x.n_users(),
        items.len(),
        x.iter()
            .filter(|e| column[e.item] != usize::MAX)
            .map(|e| Interaction {
                item: column[e.item],
                ..e
            }),
    )?)
}

/// `Ok` when `fraction` is in (0, 1), else the setting `name` is invalid.
fn check_fraction(name: &'static str, fraction: f64) -> Result<()> {
    if fraction > 0.0 && fraction < 1.0 {
        Ok(())
    } else {
        Err(ExperimentError::InvalidSetting {
            name,
            value: fraction.to_string(),
            reason: "must be a fraction in (0, 1)",
        })
    }
}

/// An item cold-start validation split of the training interactions
/// ([`Experiment::cold_start_validation`]).
#[derive(Debug, Clone)]
pub struct ColdStartValidation {
    items: Vec<usize>,
    fit: Interactions,
    held_out: Interactions,
}

/// The settings a [`ColdStartValidation`] chose ([`ColdStartValidation::choose_refit`],
/// [`ColdStartValidation::choose_content`]), and every candidate's validation metrics.
#[derive(Debug, Clone)]
pub struct Choice<T> {
    /// The candidate with the highest validation AUC (the first one on a tie).
    pub best: T,
    /// Its validation metrics.
    pub best_metrics: Metrics,
    /// Every candidate with its validation metrics, in the order given.
    pub trials: Vec<(T, Metrics)>,
}

/// The refit settings [`ColdStartValidation::choose_refit`] chose.
pub type RefitChoice = Choice<ColdStartRefit>;

/// The content model settings [`ColdStartValidation::choose_content`] chose.
pub type ContentChoice = Choice<ContentParams>;

impl<T: Clone> Choice<T> {
    /// Evaluates every candidate and keeps the best by AUC.
    fn among(
        candidates: &[T],
        what: &'static str,
        mut evaluate: impl FnMut(&T) -> Result<Metrics>,
    ) -> Result<Self> {
        let mut trials: Vec<(T, Metrics)> = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let metrics = evaluate(candidate)?;
            trials.push((candidate.clone(), metrics));
        }
        let mut best: Option<&(T, Metrics)> = None;
        for trial in &trials {
            if best.is_none_or(|b| trial.1.auc > b.1.auc) {
                best = Some(trial);
            }
        }
        let (best, best_metrics) = best.cloned().ok_or(ExperimentError::InvalidSetting {
            name: what,
            value: "none".into(),
            reason: "give at least one candidate",
        })?;
        Ok(Choice {
            best,
            best_metrics,
            trials,
        })
    }
}

impl ColdStartValidation {
    /// The training interactions without the pseudo-cold items' pairs: train the
    /// validation model on these.
    pub fn fit_interactions(&self) -> &Interactions {
        &self.fit
    }

    /// The pseudo-cold items (model indices), in the order drawn.
    pub fn items(&self) -> &[usize] {
        &self.items
    }

    /// The held-out pairs of the pseudo-cold items, re-indexed: item `j` is
    /// [`items`](Self::items)`[j]`.
    pub fn held_out(&self) -> &Interactions {
        &self.held_out
    }

    /// Metrics of `scorer` (trained on [`fit_interactions`](Self::fit_interactions)) on
    /// the held-out pairs, ranking each user's pseudo-cold items among the pseudo-cold items
    /// only — the protocol of [`Experiment::hold_out_items`].
    pub fn evaluate<S: Scorer + ?Sized>(
        &self,
        scorer: &S,
        k: usize,
        threads: usize,
    ) -> Result<Metrics> {
        let restricted = Restricted::new(scorer, &self.items)?;
        let options = EvalOptions {
            k,
            threads,
            candidates: None,
        };
        Ok(recsys_core::evaluate(
            &restricted,
            &self.held_out,
            None,
            &options,
        )?)
    }

    /// The cold-start refit settings, among `candidates`, under which `model` (trained on
    /// [`fit_interactions`](Self::fit_interactions)) ranks the held-out pairs best by AUC
    /// (precision at 10 is reported too). Each candidate refits a copy of `model`.
    pub fn choose_refit(
        &self,
        model: &Model,
        candidates: &[ColdStartRefit],
        threads: usize,
    ) -> Result<RefitChoice> {
        Choice::among(candidates, "cold-start refit candidates", |candidate| {
            let mut refitted = model.clone();
            refitted.refit_cold_start(&self.fit, candidate)?;
            self.evaluate(&refitted, 10, threads)
        })
    }

    /// The content model settings, among `candidates` (e.g. [`ContentParams::candidates`]),
    /// under which a [`ContentModel`] of `dataset`'s item features fitted on
    /// [`fit_interactions`](Self::fit_interactions) ranks the held-out pairs best by AUC.
    pub fn choose_content(
        &self,
        dataset: &Dataset,
        candidates: &[ContentParams],
        threads: usize,
    ) -> Result<ContentChoice> {
        let items = dataset.item_features();
        let columns = dataset.item_vocabulary().feature_columns();
        Choice::among(candidates, "content model candidates", |&params| {
            let model = ContentModel::fit(&items, &columns, &self.fit, params)?;
            self.evaluate(&model, 10, threads)
        })
    }

    /// The candidates `evaluate --cold-start-refit auto` tries: penalty λ in
    /// {0.1, 0.3, 1, 3, 10} × popularity power in {0, 0.5, 1}.
    pub fn default_candidates() -> Vec<ColdStartRefit> {
        let mut out = Vec::new();
        for lambda in [0.1, 0.3, 1.0, 3.0, 10.0] {
            for power in [0.0, 0.5, 1.0] {
                out.push(ColdStartRefit::new(lambda).popularity_power(power));
            }
        }
        out
    }
}

/// The weights [`choose_content_weight`] tries by default: 0 (the model alone) and
/// 1e-4 … 1 in steps of about √10 — the right weight depends on the model's score scale.
pub const CONTENT_WEIGHTS: [f32; 10] = [0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0];

/// The weight of a [`ContentPrior`] for `model` (trained on `fit`) and `content` (fitted on
/// `fit`), chosen on `validation` (pairs held out of `fit`, which are excluded from the
/// ranking): the highest AUC among the `candidates` whose precision at `k` is at least 99 %
/// of the model's alone (weight 0, which must be a candidate). So the prior never costs
/// more than 1 % of validation precision, and a model it does not help keeps weight 0.
/// Returns the chosen weight and every candidate's metrics, in order.
///
/// ```
/// use recsys::demo::{generate, DemoConfig};
/// use recsys::experiment::{choose_content_weight, Experiment, ExperimentConfig, Split, CONTENT_WEIGHTS};
/// use recsys::{ContentParams, FitOptions, Hyperparameters};
///
/// let mut data = generate(&DemoConfig { users: 120, products: 80, interactions: 2_500, seed: 2 });
/// let experiment = Experiment::load(&mut data, &ExperimentConfig::demo_hybrid(), Split::None)?;
/// let (fit, validation) = experiment.validation_split(0.2, 1)?;
/// let mut model = experiment.model(Hyperparameters::builder().no_components(8).seed(1).build()?)?;
/// model.fit(&fit, FitOptions::epochs(10))?;
/// let content = experiment.content_model(&fit, ContentParams::default())?;
/// let (weight, trials) = choose_content_weight(&model, &content, &fit, &validation, &CONTENT_WEIGHTS, 10, 1)?;
/// assert_eq!(trials.len(), CONTENT_WEIGHTS.len());
/// assert!(trials.iter().any(|(w, _)| *w == weight));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn choose_content_weight<S: Scorer + ?Sized>(
    model: &S,
    content: &ContentModel,
    fit: &Interactions,
    validation: &Interactions,
    candidates: &[f32],
    k: usize,
    threads: usize,
) -> Result<(f32, Vec<(f32, Metrics)>)> {
    if !candidates.contains(&0.0) {
        return Err(ExperimentError::InvalidSetting {
            name: "content weight candidates",
            value: format!("{candidates:?}"),
            reason: "include 0 (the model alone)",
        });
    }
    let options = EvalOptions {
        k,
        threads,
        candidates: None,
    };
    let mut trials = Vec::with_capacity(candidates.len());
    for &w in candidates {
        let prior = ContentPrior::new(model, content, w)?;
        let metrics = recsys_core::evaluate(&prior, validation, Some(fit), &options)?;
        trials.push((w, metrics));
    }
    let alone = &trials[candidates.iter().position(|&w| w == 0.0).expect("checked")].1;
    let floor = alone.precision_at_k * 0.99;
    let mut best: Option<&(f32, Metrics)> = None;
    for trial in trials.iter().filter(|t| t.1.precision_at_k >= floor) {
        if best.is_none_or(|b| trial.1.auc > b.1.auc) {
            best = Some(trial);
        }
    }
    let weight = best.map_or(0.0, |b| b.0);
    Ok((weight, trials))
}

/// A scorer that scores only some items of another scorer: its item `j` is the inner
/// scorer's item `items[j]`.
#[derive(Debug, Clone, Copy)]
pub struct Restricted<'a, S: ?Sized> {
    inner: &'a S,
    items: &'a [usize],
}

impl<'a, S: Scorer + ?Sized> Restricted<'a, S> {
    /// Restricts `inner` to `items` (each must be an item of `inner`).
    pub fn new(inner: &'a S, items: &'a [usize]) -> Result<Self> {
        let n = inner.n_items();
        if let Some(&i) = items.iter().find(|&&i| i >= n) {
            return Err(CoreError::IndexOutOfRange {
                what: "restricted item",
                index: i,
                len: n,
            }
            .into());
        }
        Ok(Restricted { inner, items })
    }
}

impl<S: Scorer + ?Sized> Scorer for Restricted<'_, S> {
    fn n_items(&self) -> usize {
        self.items.len()
    }

    fn score_all(&self, user: UserQuery<'_>, out: &mut Vec<f32>) -> recsys_core::Result<()> {
        self.inner.score_items(user, self.items, out)
    }
}

/// Fails with [`ExperimentError::EmptyColumn`] for a column without any feature value.
fn check_columns(kind: RecordKind, vocabulary: &FeatureVocabulary) -> Result<()> {
    let columns = &vocabulary.spec().columns;
    let mut used = vec![false; columns.len()];
    for feature in vocabulary.features() {
        if let Feature::Value(c, _) = feature {
            used[*c] = true;
        }
    }
    match used.iter().position(|u| !u) {
        Some(c) => Err(ExperimentError::EmptyColumn {
            kind,
            column: columns[c].name.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_features::{Bucketing, ColumnKind};

    #[test]
    fn numeric_columns_apply_per_side_and_only_when_listed() {
        let config = ExperimentConfig::collaborative()
            .with_user_columns(["household_size,income"])
            .with_item_columns(["manufacturer_id", "price"]);
        let users = config.user_spec().unwrap();
        assert!(users
            .columns
            .iter()
            .all(|c| c.kind == ColumnKind::Categorical));
        let items = config.item_spec().unwrap();
        assert_eq!(items.columns[0].kind, ColumnKind::Categorical);
        assert_eq!(
            items.columns[1].kind,
            ColumnKind::Numeric(Bucketing::Quantiles(5))
        );
        assert_eq!(
            config.numeric_columns_used(),
            (vec!["price".to_string()], vec![])
        );
        let typo = config.with_numeric_columns(["price,prise"]);
        assert_eq!(typo.numeric_columns_used().1, vec!["prise".to_string()]);
    }

    #[test]
    fn a_side_without_features_is_refused() {
        let mut config = ExperimentConfig::collaborative();
        config.item_identity = false;
        assert!(matches!(
            config.item_spec(),
            Err(ExperimentError::NoFeatures {
                kind: RecordKind::Product
            })
        ));
    }

    #[test]
    fn cold_start_validation_holds_out_warm_training_items_only() {
        use crate::demo::{generate, DemoConfig};
        let mut data = generate(&DemoConfig {
            users: 120,
            products: 90,
            interactions: 2_500,
            seed: 4,
        });
        let mut config = ExperimentConfig::demo_hybrid();
        config.metadata_weight = Some(1.0);
        let mut experiment = Experiment::load(
            &mut data,
            &config,
            Split::Random {
                test_fraction: 0.2,
                seed: 1,
            },
        )
        .unwrap();
        // Real cold items first: the validation must not pick them (they have no pairs).
        experiment.hold_out_items(0.1, 3).unwrap();
        let cold = experiment.cold_items().unwrap().mask.clone();
        let train = experiment.train().clone();
        let counts = train.item_counts();
        let warm = counts.iter().filter(|&&c| c > 0).count();
        let v = experiment.cold_start_validation(0.25, 9).unwrap();
        assert_eq!(v.items().len(), (0.25 * warm as f64).round() as usize);
        assert!(v.items().iter().all(|&i| counts[i] > 0 && !cold[i]));
        let mut chosen = vec![false; counts.len()];
        for &i in v.items() {
            assert!(!std::mem::replace(&mut chosen[i], true), "item {i} twice");
        }
        assert!(v.fit_interactions().iter().all(|e| !chosen[e.item]));
        assert_eq!(v.fit_interactions().len() + v.held_out().len(), train.len());
        assert_eq!(v.held_out().n_items(), v.items().len());
        for e in v.held_out().iter() {
            assert!(train.contains(e.user, v.items()[e.item]));
        }
        // Seeded: the same split again, another with another seed.
        assert_eq!(
            experiment.cold_start_validation(0.25, 9).unwrap().items(),
            v.items()
        );
        assert_ne!(
            experiment.cold_start_validation(0.25, 10).unwrap().items(),
            v.items()
        );
        assert!(experiment.cold_start_validation(1.0, 9).is_err());

        // The choice is the candidate with the best validation AUC, and refitting helps
        // the pseudo-cold items over the untrained identity embeddings.
        let params = Hyperparameters::builder()
            .no_components(8)
            .seed(1)
            .build()
            .unwrap();
        let mut model = experiment.model(params).unwrap();
        model
            .fit(v.fit_interactions(), FitOptions::epochs(10))
            .unwrap();
        let plain = v.evaluate(&model, 10, 1).unwrap();
        let model = Model::from(model);
        let candidates = ColdStartValidation::default_candidates();
        let choice = v.choose_refit(&model, &candidates, 1).unwrap();
        assert_eq!(choice.trials.len(), candidates.len());
        let best = choice
            .trials
            .iter()
            .map(|(_, m)| m.auc)
            .fold(f64::MIN, f64::max);
        assert_eq!(choice.best_metrics.auc, best);
        assert!(
            choice.best_metrics.auc > plain.auc,
            "{choice:?} vs {plain:?}"
        );
        assert!(v.choose_refit(&model, &[], 1).is_err());
    }

    #[test]
    fn the_content_model_ranks_held_out_demo_products_and_is_chosen_by_auc() {
        use crate::demo::{generate, DemoConfig};
        let mut data = generate(&DemoConfig {
            users: 150,
            products: 120,
            interactions: 3_000,
            seed: 6,
        });
        let mut experiment = Experiment::load(
            &mut data,
            &ExperimentConfig::demo_hybrid(),
            Split::Random {
                test_fraction: 0.2,
                seed: 1,
            },
        )
        .unwrap();
        experiment.hold_out_items(0.2, 3).unwrap();
        // The demo shop's shoppers follow their favourite categories, so the held-out
        // products' metadata says who buys them: well above chance.
        let content = experiment.fit_content(ContentParams::default()).unwrap();
        let cold = experiment.evaluate(&content, 10, 1).unwrap();
        assert!(cold.auc > 0.6, "{cold:?}");

        let v = experiment.cold_start_validation(0.2, 9).unwrap();
        let candidates = ContentParams::candidates();
        let choice = v
            .choose_content(experiment.dataset(), &candidates, 1)
            .unwrap();
        assert_eq!(choice.trials.len(), candidates.len());
        let best = choice
            .trials
            .iter()
            .map(|(_, m)| m.auc)
            .fold(f64::MIN, f64::max);
        assert_eq!(choice.best_metrics.auc, best);
        let first_best = choice.trials.iter().find(|(_, m)| m.auc == best).unwrap();
        assert_eq!(choice.best, first_best.0);
        assert!(v.choose_content(experiment.dataset(), &[], 1).is_err());
    }

    #[test]
    fn public_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Experiment>();
        assert_send_sync::<ExperimentConfig>();
        assert_send_sync::<ExperimentError>();
        assert_send_sync::<ColdStartItems>();
        assert_send_sync::<ColdStartValidation>();
        assert_send_sync::<TrainingReport>();
    }
}
