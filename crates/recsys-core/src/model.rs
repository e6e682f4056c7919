//! The hybrid factorisation model.

// Index loops over latent components read more clearly than zipped iterators here.
#![allow(clippy::needless_range_loop)]

use std::ops::ControlFlow;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::coldstart::{ColdStartRefit, ColdStartReport};
use crate::error::{CoreError, Result};
use crate::interactions::Interactions;
use crate::matrix::FeatureMatrix;
use crate::params::Hyperparameters;
use crate::repr::{ItemRepresentations, Representation};
use crate::rng::Rng;
use crate::scorer::Factorised;
use crate::stored::{SideRecord, MODEL_RECORD_VERSION};
use crate::train::{
    run_epoch, FeatureRows, HotRows, LossTally, PackedRows, PairSet, Side, Trainer, WorkList,
};

/// What [`HybridModel::fit_partial`] reports after each epoch.
#[derive(Debug, Clone)]
pub struct EpochReport {
    /// 0-based index of the epoch within this call.
    pub epoch: usize,
    /// Number of epochs requested in this call.
    pub epochs: usize,
    /// Epochs trained in total by this model, including this one.
    pub total_epochs: usize,
    /// Mean loss estimate over the epoch's examples (logistic: log-loss; BPR: `-ln σ`;
    /// WARP: mean rank-weighted loss, 0 for positives no sampled negative violated).
    pub loss: f64,
    /// Wall time of this epoch (training only, without validation).
    pub elapsed: Duration,
    /// Metrics on the validation set, when [`FitOptions::validate_on`] was given.
    pub validation: Option<crate::eval::Metrics>,
}

/// A validation set evaluated after every epoch.
struct Validation<'a> {
    test: &'a Interactions,
    train: Option<&'a Interactions>,
    options: crate::eval::EvalOptions,
}

/// Which validation metric early stopping watches (higher is better for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationMetric {
    /// Precision at the validation options' `k`.
    Precision,
    /// AUC.
    Auc,
}

impl ValidationMetric {
    /// The metric's value in `m`.
    pub fn of(self, m: &crate::eval::Metrics) -> f64 {
        match self {
            ValidationMetric::Precision => m.precision_at_k,
            ValidationMetric::Auc => m.auc,
        }
    }
}

/// Early stopping on the validation set of [`FitOptions::validate_on`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct EarlyStopping {
    patience: usize,
    metric: ValidationMetric,
}

/// Options of a training call.
pub struct FitOptions<'a> {
    epochs: usize,
    threads: usize,
    validation: Option<Validation<'a>>,
    early_stopping: Option<EarlyStopping>,
    #[allow(clippy::type_complexity)]
    callback: Option<Box<dyn FnMut(&EpochReport, &HybridModel) -> ControlFlow<()> + 'a>>,
}

impl std::fmt::Debug for FitOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FitOptions")
            .field("epochs", &self.epochs)
            .field("threads", &self.threads)
            .field("validation", &self.validation.is_some())
            .field("early_stopping", &self.early_stopping)
            .field("callback", &self.callback.is_some())
            .finish()
    }
}

impl<'a> FitOptions<'a> {
    /// Train for `epochs` epochs on one thread.
    pub fn epochs(epochs: usize) -> Self {
        FitOptions {
            epochs,
            threads: 1,
            validation: None,
            early_stopping: None,
            callback: None,
        }
    }

    /// Stops when the validation `metric` (of [`Self::validate_on`], which it needs) has not
    /// improved for `patience` epochs in a row, and keeps the best epoch: the model returns
    /// with the parameters, optimiser state and generator of the epoch with the best value
    /// (the earliest on ties), so [`HybridModel::epochs_trained`] then counts up to that
    /// epoch, and continued training goes on from there. `epochs` stays the upper bound.
    pub fn early_stopping(mut self, patience: usize, metric: ValidationMetric) -> Self {
        self.early_stopping = Some(EarlyStopping { patience, metric });
        self
    }

    /// Evaluates the model on `test` (excluding `train` pairs from the ranking) after every
    /// epoch; the metrics arrive in [`EpochReport::validation`], so a callback can stop
    /// training when they stop improving.
    pub fn validate_on(
        mut self,
        test: &'a Interactions,
        train: Option<&'a Interactions>,
        options: crate::eval::EvalOptions,
    ) -> Self {
        self.validation = Some(Validation {
            test,
            train,
            options,
        });
        self
    }

    /// Number of Hogwild threads (1 = bit-reproducible for a seed).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Called after each epoch with the report and the model; return
    /// `ControlFlow::Break(())` to stop early (e.g. when a validation metric stops improving).
    pub fn on_epoch(
        mut self,
        f: impl FnMut(&EpochReport, &HybridModel) -> ControlFlow<()> + 'a,
    ) -> Self {
        self.callback = Some(Box::new(f));
        self
    }
}

/// LightFM's hybrid matrix factorisation model.
///
/// A user's representation is the weighted sum of its features' embeddings (plus the sum of
/// their biases); likewise for items. The score of `(user, item)` is the dot product of the
/// two latent vectors plus both biases. With identity feature matrices this is plain
/// collaborative filtering.
///
/// The model owns the feature matrices it was trained with, so predictions can never be made
/// with the wrong features (a failure of the seed system).
///
/// ```
/// use recsys_core::{FitOptions, HybridModel, Hyperparameters, Interactions, Loss};
///
/// // Users 0-1 like items 0-1, users 2-3 like items 2-3.
/// let train = Interactions::from_pairs(4, 4, [(0, 0), (1, 1), (0, 1), (2, 2), (3, 3), (3, 2)])?;
/// let params = Hyperparameters::builder()
///     .loss(Loss::Warp)
///     .no_components(4)
///     .seed(7)
///     .build()?;
/// let mut model = HybridModel::collaborative(params, 4, 4)?;
/// model.fit(&train, FitOptions::epochs(30))?;
/// let scores = model.predict(1, &[0, 3])?;
/// assert!(scores[0] > scores[1]);
/// # Ok::<(), recsys_core::CoreError>(())
/// ```
///
/// # Saving
///
/// `Serialize` writes the saved model record ([`MODEL_RECORD_VERSION`], documented in the
/// crate's `stored` module): parameters without the training layout's padding, and the
/// optimiser state only if the model has it ([`HybridModel::has_training_state`]; drop it
/// with [`HybridModel::drop_training_state`] to save a model for serving, at a third of the
/// size with adagrad). Deserialising checks the record and everything
/// [`HybridModel::validate`] checks, so a damaged model is an error, never a panic later.
///
/// ```
/// # use recsys_core::{HybridModel, Hyperparameters};
/// let mut model = HybridModel::collaborative(Hyperparameters::builder().build()?, 3, 4)?;
/// model.drop_training_state();
/// let json = serde_json::to_string(&model).unwrap();
/// let back: HybridModel = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, model);
/// assert!(!back.has_training_state());
/// # Ok::<(), recsys_core::CoreError>(())
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "ModelData")]
pub struct HybridModel {
    params: Hyperparameters,
    user_features: FeatureMatrix,
    item_features: FeatureMatrix,
    users: Side,
    items: Side,
    rng: Rng,
    epochs_trained: usize,
    #[serde(skip)]
    item_cache: OnceLock<ItemRepresentations>,
}

/// Early stopping's best epoch so far: its validation value, its state (unless it was the
/// last epoch) and the epochs trained since.
struct Best {
    value: f64,
    kept: Option<Snapshot>,
    since: usize,
}

/// What [`HybridModel::snapshot`] keeps for early stopping.
struct Snapshot {
    users: Side,
    items: Side,
    rng: Rng,
    epochs_trained: usize,
}

/// The saved model record as written (see [`HybridModel`]'s "Saving"): borrowed parts, the
/// sides converted to their saved form.
#[derive(Serialize)]
struct ModelRecordRef<'a> {
    version: u32,
    params: &'a Hyperparameters,
    user_features: &'a FeatureMatrix,
    item_features: &'a FeatureMatrix,
    users: SideRecord,
    items: SideRecord,
    rng: &'a Rng,
    epochs_trained: u64,
}

impl Serialize for HybridModel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        ModelRecordRef {
            version: MODEL_RECORD_VERSION,
            params: &self.params,
            user_features: &self.user_features,
            item_features: &self.item_features,
            users: self.users.to_record(),
            items: self.items.to_record(),
            rng: &self.rng,
            epochs_trained: self.epochs_trained as u64,
        }
        .serialize(s)
    }
}

/// The saved model record as read, before validation: every part in its unchecked form, so
/// each refusal can name the part (binary formats drop nested error messages).
#[derive(Deserialize)]
pub(crate) struct ModelData {
    version: u32,
    params: crate::params::HyperparametersData,
    user_features: crate::matrix::FeatureMatrixData,
    item_features: crate::matrix::FeatureMatrixData,
    users: SideRecord,
    items: SideRecord,
    rng: crate::rng::RngData,
    epochs_trained: u64,
}

impl TryFrom<ModelData> for HybridModel {
    type Error = CoreError;

    fn try_from(d: ModelData) -> Result<Self> {
        crate::stored::check_version(d.version)?;
        let part = crate::stored::corrupt_part;
        let params = Hyperparameters::try_from(d.params).map_err(part("model hyper-parameters"))?;
        let side = |what: &'static str, record: &SideRecord| {
            Side::from_record(record, params.schedule)
                .map_err(|reason| CoreError::Corrupt { what, reason })
        };
        let users = side("model user parameters", &d.users)?;
        let items = side("model item parameters", &d.items)?;
        if users.has_training_state() != items.has_training_state() {
            return Err(CoreError::Corrupt {
                what: "model parameters",
                reason: "optimiser state saved for one side only".into(),
            });
        }
        let model = HybridModel {
            params,
            user_features: FeatureMatrix::try_from(d.user_features)
                .map_err(part("model user feature matrix"))?,
            item_features: FeatureMatrix::try_from(d.item_features)
                .map_err(part("model item feature matrix"))?,
            users,
            items,
            rng: Rng::try_from(d.rng).map_err(part("model random generator"))?,
            epochs_trained: usize::try_from(d.epochs_trained).map_err(|_| CoreError::Corrupt {
                what: "model epochs",
                reason: format!("{} epochs", d.epochs_trained),
            })?,
            item_cache: OnceLock::new(),
        };
        model.validate()?;
        Ok(model)
    }
}

impl PartialEq for HybridModel {
    fn eq(&self, o: &Self) -> bool {
        self.params == o.params
            && self.user_features == o.user_features
            && self.item_features == o.item_features
            && self.users == o.users
            && self.items == o.items
            && self.rng == o.rng
            && self.epochs_trained == o.epochs_trained
    }
}

impl HybridModel {
    /// Deserialises like the `Deserialize` impl, but returns a model that decodes and is
    /// invalid as `Ok(Err(reason))`, so that formats which drop error messages (postcard, in
    /// the artifact bundle) can still say what is wrong.
    pub fn deserialize_validated<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Result<Self>, D::Error> {
        Ok(HybridModel::try_from(ModelData::deserialize(d)?))
    }

    /// Checks that the parts agree, in one pass over the parameters: the hyper-parameters
    /// are valid; there is at least one item; each side has one parameter row per column of
    /// its feature matrix and `no_components` components; each side's layout and optimiser
    /// state match the schedule (row stride, buffer lengths, zero padding);
    /// parameters are finite and optimiser state never NaN or negative. Every model built
    /// by [`HybridModel::new`] and trained without [`CoreError::Diverged`] passes; a
    /// deserialised model is checked before it is returned.
    pub fn validate(&self) -> Result<()> {
        let corrupt = |what: &'static str, reason: String| Err(CoreError::Corrupt { what, reason });
        self.params.to_builder().build()?;
        if self.item_features.n_rows() == 0 {
            return Err(CoreError::Empty("the model needs at least one item"));
        }
        let k = self.params.no_components;
        for (what, name, side, features) in [
            (
                "model user parameters",
                "user",
                &self.users,
                &self.user_features,
            ),
            (
                "model item parameters",
                "item",
                &self.items,
                &self.item_features,
            ),
        ] {
            if side.k() != k {
                return corrupt(
                    what,
                    format!("{} components, the hyper-parameters say {k}", side.k()),
                );
            }
            if side.n_features() != features.n_features() {
                return corrupt(
                    what,
                    format!(
                        "{} feature rows for the {name} feature matrix's {} columns",
                        side.n_features(),
                        features.n_features()
                    ),
                );
            }
            side.check_layout(self.params.schedule)
                .or_else(|reason| corrupt(what, reason))?;
        }
        Ok(())
    }

    /// A new, initialised model for the given user and item feature matrices
    /// (`n_users × n_user_features`, `n_items × n_item_features`).
    pub fn new(
        params: Hyperparameters,
        user_features: FeatureMatrix,
        item_features: FeatureMatrix,
    ) -> Result<Self> {
        if item_features.n_rows() == 0 {
            return Err(CoreError::Empty("the model needs at least one item"));
        }
        let mut rng = Rng::new(params.seed);
        let k = params.no_components;
        // Items first, as LightFM does.
        let items = Side::new(item_features.n_features(), k, params.schedule, &mut rng);
        let users = Side::new(user_features.n_features(), k, params.schedule, &mut rng);
        Ok(HybridModel {
            params,
            user_features,
            item_features,
            users,
            items,
            rng,
            epochs_trained: 0,
            item_cache: OnceLock::new(),
        })
    }

    /// A pure collaborative-filtering model (identity features).
    pub fn collaborative(params: Hyperparameters, n_users: usize, n_items: usize) -> Result<Self> {
        Self::new(
            params,
            FeatureMatrix::identity(n_users),
            FeatureMatrix::identity(n_items),
        )
    }

    /// The hyper-parameters.
    pub fn params(&self) -> &Hyperparameters {
        &self.params
    }
    /// Number of users (rows of the user feature matrix).
    pub fn n_users(&self) -> usize {
        self.user_features.n_rows()
    }
    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.item_features.n_rows()
    }
    /// The user feature matrix the model trains and predicts with.
    pub fn user_features(&self) -> &FeatureMatrix {
        &self.user_features
    }
    /// The item feature matrix the model trains and predicts with.
    pub fn item_features(&self) -> &FeatureMatrix {
        &self.item_features
    }
    /// Epochs trained so far.
    pub fn epochs_trained(&self) -> usize {
        self.epochs_trained
    }

    /// Whether the model carries the optimiser state that [`Self::fit_partial`] continues
    /// from. A new model has it; a model saved after [`Self::drop_training_state`] does not.
    pub fn has_training_state(&self) -> bool {
        self.users.has_training_state()
    }

    /// Frees the optimiser state (adagrad's accumulators, adadelta's two running means: one
    /// or two more copies of the parameters), for a model that only predicts. Saving then
    /// writes the parameters only. [`Self::fit`] still works (it starts afresh);
    /// [`Self::fit_partial`] refuses with [`CoreError::NoTrainingState`] until
    /// [`Self::reset_training_state`].
    pub fn drop_training_state(&mut self) {
        self.users.drop_training_state();
        self.items.drop_training_state();
    }

    /// Replaces the optimiser state with a fresh one (as a new model has), keeping the
    /// parameters: continued training then takes larger steps at first than it would have
    /// with the saved state.
    pub fn reset_training_state(&mut self) {
        self.users.reset_training_state(self.params.schedule);
        self.items.reset_training_state(self.params.schedule);
    }
    /// Latent dimensionality.
    pub fn no_components(&self) -> usize {
        self.params.no_components
    }

    /// Embeddings of the user features (`n_user_features × k`).
    pub fn user_feature_embeddings(&self) -> ArrayView2<'_, f32> {
        let k = self.no_components();
        debug_assert_eq!(k, self.users.embeddings().ncols());
        self.users.embeddings()
    }
    /// Biases of the user features.
    pub fn user_feature_biases(&self) -> ArrayView1<'_, f32> {
        self.users.biases()
    }
    /// Embeddings of the item features (`n_item_features × k`).
    pub fn item_feature_embeddings(&self) -> ArrayView2<'_, f32> {
        let k = self.no_components();
        debug_assert_eq!(k, self.items.embeddings().ncols());
        self.items.embeddings()
    }
    /// Biases of the item features.
    pub fn item_feature_biases(&self) -> ArrayView1<'_, f32> {
        self.items.biases()
    }

    fn check_shape(&self, x: &Interactions) -> Result<()> {
        if x.n_users() != self.n_users() {
            return Err(CoreError::ShapeMismatch {
                what: "interactions users vs user feature rows",
                expected: self.n_users(),
                found: x.n_users(),
            });
        }
        if x.n_items() != self.n_items() {
            return Err(CoreError::ShapeMismatch {
                what: "interactions items vs item feature rows",
                expected: self.n_items(),
                found: x.n_items(),
            });
        }
        Ok(())
    }

    /// Re-initialises all parameters from the seed, then trains (LightFM's `fit`).
    pub fn fit(&mut self, interactions: &Interactions, options: FitOptions<'_>) -> Result<()> {
        let fresh = Self::new(
            self.params.clone(),
            self.user_features.clone(),
            self.item_features.clone(),
        )?;
        *self = fresh;
        self.fit_partial(interactions, options)
    }

    /// Continues training from the current parameters (LightFM's `fit_partial`).
    ///
    /// After [`Self::extend`] added users, items or features, pass interactions of the new
    /// shape. Stops with [`CoreError::Diverged`] if parameters become NaN or infinite.
    pub fn fit_partial(
        &mut self,
        interactions: &Interactions,
        mut options: FitOptions<'_>,
    ) -> Result<()> {
        self.check_shape(interactions)?;
        if !self.has_training_state() {
            return Err(CoreError::NoTrainingState);
        }
        if options.threads == 0 {
            return Err(CoreError::zero_count("threads"));
        }
        if interactions.is_empty() {
            return Err(CoreError::Empty("cannot train on an empty interaction set"));
        }
        if let Some(stop) = options.early_stopping {
            if stop.patience == 0 {
                return Err(CoreError::zero_count("patience"));
            }
            if options.validation.is_none() {
                return Err(CoreError::InvalidHyperparameter {
                    name: "early_stopping",
                    value: format!("patience {}", stop.patience),
                    reason: "needs a validation set (FitOptions::validate_on)",
                });
            }
        }
        let threads = options.threads;
        let pool = if threads > 1 {
            Some(CoreError::thread_pool(threads)?)
        } else {
            None
        };
        self.item_cache = OnceLock::new();
        let positives = PairSet::new(interactions);
        let user_rows = PackedRows::of(&self.user_features);
        // Items with identical feature rows train as one row (see `PackedRows::classes`).
        let (item_class, item_rows) = match PackedRows::of(&self.item_features) {
            Some(rows) => match rows.classes() {
                Some((class, per_class)) => (Some(class), Some(per_class)),
                None => (None, Some(rows)),
            },
            None => (None, None),
        };
        let mut work = WorkList::new(self.params.loss, interactions, item_class.as_deref());
        // With several threads, the most shared feature rows get a copy per thread.
        let several = threads > 1;
        let user_hot = (user_rows.as_ref())
            .filter(|_| several)
            .and_then(|r| HotRows::users(r, self.users.n_features(), interactions));
        let item_hot = (item_rows.as_ref()).filter(|_| several).and_then(|r| {
            HotRows::items(
                r,
                self.items.n_features(),
                interactions,
                item_class.as_deref(),
            )
        });
        let mut scoring = None;
        let mut best: Option<Best> = None;
        for epoch in 0..options.epochs {
            let started = Instant::now();
            work.shuffle(&mut self.rng);
            let seeds: Vec<u64> = (0..threads).map(|_| self.rng.next_u64()).collect();
            let trainer = Trainer {
                k: self.params.no_components,
                loss: self.params.loss,
                schedule: self.params.schedule,
                learning_rate: self.params.learning_rate,
                user_alpha: self.params.user_alpha,
                item_alpha: self.params.item_alpha,
                max_sampled: self.params.max_sampled,
                user_rows: FeatureRows::of(&user_rows),
                item_rows: FeatureRows::of(&item_rows),
                item_class: item_class.as_deref(),
                interactions,
                positives: &positives,
                user_hot: user_hot.as_ref(),
                item_hot: item_hot.as_ref(),
            };
            let tally: LossTally = run_epoch(
                &trainer,
                &mut self.users,
                &mut self.items,
                work.view(),
                &seeds,
                pool.as_ref(),
                &mut scoring,
            );
            self.epochs_trained += 1;
            if !(self.users.all_finite() && self.items.all_finite()) {
                return Err(CoreError::Diverged {
                    epoch,
                    learning_rate: self.params.learning_rate,
                });
            }
            let elapsed = started.elapsed();
            self.item_cache = OnceLock::new();
            let validation = match &options.validation {
                Some(v) => Some(crate::eval::evaluate(&*self, v.test, v.train, &v.options)?),
                None => None,
            };
            let report = EpochReport {
                epoch,
                epochs: options.epochs,
                total_epochs: self.epochs_trained,
                loss: if tally.count > 0 {
                    tally.sum / tally.count as f64
                } else {
                    0.0
                },
                elapsed,
                validation,
            };
            let mut stop_now = false;
            if let (Some(stop), Some(m)) = (options.early_stopping, &report.validation) {
                let value = stop.metric.of(m);
                match &mut best {
                    Some(b) if value <= b.value => {
                        b.since += 1;
                        stop_now = b.since >= stop.patience;
                    }
                    _ => {
                        // The best state so far, kept before the next epoch changes it.
                        let kept = (epoch + 1 < options.epochs).then(|| self.snapshot());
                        best = Some(Best {
                            value,
                            kept,
                            since: 0,
                        });
                    }
                }
            }
            if let Some(cb) = options.callback.as_mut() {
                stop_now |= cb(&report, self).is_break();
            }
            if stop_now {
                break;
            }
        }
        // Epochs ran after the best one: go back to it (it was kept, not being the last).
        if let Some(Best {
            since: 1..,
            kept: Some(kept),
            ..
        }) = best
        {
            self.restore(kept);
        }
        Ok(())
    }

    /// The state training changes (parameters, optimiser state, generator, epoch count).
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            users: self.users.clone(),
            items: self.items.clone(),
            rng: self.rng.clone(),
            epochs_trained: self.epochs_trained,
        }
    }

    fn restore(&mut self, s: Snapshot) {
        self.users = s.users;
        self.items = s.items;
        self.rng = s.rng;
        self.epochs_trained = s.epochs_trained;
        self.item_cache = OnceLock::new();
    }

    /// Replaces the feature matrices with larger ones (new users, items or feature values
    /// appended; existing rows and columns keep their meaning) and initialises parameters for
    /// the new features. Follow with [`Self::fit_partial`].
    pub fn extend(
        &mut self,
        user_features: FeatureMatrix,
        item_features: FeatureMatrix,
    ) -> Result<()> {
        if user_features.n_rows() < self.n_users()
            || user_features.n_features() < self.users.n_features()
        {
            return Err(CoreError::ShapeMismatch {
                what: "extended user features (may only grow)",
                expected: self.users.n_features(),
                found: user_features.n_features(),
            });
        }
        if item_features.n_rows() < self.n_items()
            || item_features.n_features() < self.items.n_features()
        {
            return Err(CoreError::ShapeMismatch {
                what: "extended item features (may only grow)",
                expected: self.items.n_features(),
                found: item_features.n_features(),
            });
        }
        let s = self.params.schedule;
        self.items
            .grow(item_features.n_features(), s, &mut self.rng);
        self.users
            .grow(user_features.n_features(), s, &mut self.rng);
        self.user_features = user_features;
        self.item_features = item_features;
        self.item_cache = OnceLock::new();
        Ok(())
    }

    /// Sets the embeddings and biases of the user features from index `user_features_from`
    /// on, and of the item features from `item_features_from` on, to zero: after
    /// [`HybridModel::extend`], the new features then contribute nothing until they are
    /// trained, so every known pair scores as before and a new row is represented by the
    /// known features it has (its attributes) instead of random values. Training moves
    /// them from zero like LightFM's biases (each gradient comes from the other side's
    /// representation). The optimiser state is kept.
    ///
    /// ```
    /// use recsys_core::{FeatureMatrix, HybridModel, Hyperparameters};
    ///
    /// let params = Hyperparameters::builder().no_components(4).seed(1).build()?;
    /// let mut model = HybridModel::collaborative(params, 2, 3)?;
    /// let before = model.predict(0, &[0, 1, 2])?;
    /// // One more user and one more item, each with its own new identity feature.
    /// model.extend(FeatureMatrix::identity(3), FeatureMatrix::identity(4))?;
    /// model.zero_features_from(2, 3);
    /// assert_eq!(model.predict(0, &[0, 1, 2])?, before);
    /// assert_eq!(model.predict(2, &[3])?, vec![0.0]);
    /// # Ok::<(), recsys_core::CoreError>(())
    /// ```
    pub fn zero_features_from(&mut self, user_features_from: usize, item_features_from: usize) {
        self.users.zero_from(user_features_from);
        self.items.zero_from(item_features_from);
        self.item_cache = OnceLock::new();
    }

    fn side_repr(side: &Side, k: usize, feats: &[usize], weights: &[f32]) -> Representation {
        let mut vector = Array1::<f32>::zeros(k);
        let mut bias = 0.0;
        let v = vector.as_slice_mut().expect("contiguous");
        for (&f, &w) in feats.iter().zip(weights) {
            let row = side.row(f);
            for c in 0..k {
                v[c] += w * row[c];
            }
            bias += w * row[k];
        }
        Representation { vector, bias }
    }

    /// The representation of a known user.
    pub fn user_representation(&self, user: usize) -> Result<Representation> {
        if user >= self.n_users() {
            return Err(CoreError::IndexOutOfRange {
                what: "user",
                index: user,
                len: self.n_users(),
            });
        }
        let (f, w) = self.user_features.row(user);
        Ok(Self::side_repr(&self.users, self.no_components(), f, w))
    }

    /// The representation of a user not seen in training, from a feature row built with the
    /// training vocabulary (`(feature index, weight)` pairs). Cold start.
    pub fn user_representation_from_features(
        &self,
        row: &[(usize, f32)],
    ) -> Result<Representation> {
        Self::repr_from_row(&self.users, self.no_components(), row, "user feature")
    }

    /// The representation of an item not seen in training, from a feature row. Cold start.
    pub fn item_representation_from_features(
        &self,
        row: &[(usize, f32)],
    ) -> Result<Representation> {
        Self::repr_from_row(&self.items, self.no_components(), row, "item feature")
    }

    fn repr_from_row(
        side: &Side,
        k: usize,
        row: &[(usize, f32)],
        what: &'static str,
    ) -> Result<Representation> {
        let n = side.n_features();
        if let Some(&(f, _)) = row.iter().find(|(f, _)| *f >= n) {
            return Err(CoreError::IndexOutOfRange {
                what,
                index: f,
                len: n,
            });
        }
        let (f, w): (Vec<usize>, Vec<f32>) = row.iter().copied().unzip();
        Ok(Self::side_repr(side, k, &f, &w))
    }

    /// Item cold start: refits the item metadata embeddings and biases by ridge regression
    /// of the warm items' representations on their metadata rows, keeps every item with a
    /// training interaction in `train` at its representation (up to `f32` rounding) by
    /// adjusting its identity feature, and sets the identity embedding and bias of every
    /// item without one to zero, so such items — and products added after training,
    /// described by their attributes through [`HybridModel::item_representation_from_features`]
    /// — are scored by the least-squares prediction from their metadata. The module docs of [`ColdStartRefit`] derive it.
    ///
    /// Needs identity features first in the item feature matrix (feature `i` = item `i`,
    /// as `recsys-features` builds them); fails with [`CoreError::FeatureLayout`] otherwise.
    ///
    /// ```
    /// use recsys_core::{ColdStartRefit, FeatureMatrix, FitOptions, HybridModel, Hyperparameters, Interactions};
    /// // 6 items: identity features 0..6, then two categories (features 6, 7).
    /// let items = FeatureMatrix::from_rows(8, (0..6).map(|i| vec![(i, 1.0), (6 + i % 2, 1.0)]))?;
    /// let params = Hyperparameters::builder().no_components(4).seed(1).build()?;
    /// let mut model = HybridModel::new(params, FeatureMatrix::identity(4), items)?;
    /// // Item 5 has no interaction: it is cold.
    /// let train = Interactions::from_pairs(4, 6, [(0, 0), (1, 2), (2, 1), (3, 3), (0, 4)])?;
    /// model.fit(&train, FitOptions::epochs(5))?;
    /// let before = model.predict(0, &[0, 1, 2])?;
    /// let report = model.refit_cold_start(&train, &ColdStartRefit::new(0.1))?;
    /// assert_eq!((report.warm_items, report.cold_items), (5, 1));
    /// for (a, b) in before.iter().zip(model.predict(0, &[0, 1, 2])?) {
    ///     assert!((a - b).abs() < 1e-5);
    /// }
    /// // The cold item is now its category's prediction, as a new product would be.
    /// let new_product = model.item_representation_from_features(&[(7, 1.0)])?;
    /// assert_eq!(model.item_representations().vectors().row(5), new_product.vector);
    /// # Ok::<(), recsys_core::CoreError>(())
    /// ```
    pub fn refit_cold_start(
        &mut self,
        train: &Interactions,
        options: &ColdStartRefit,
    ) -> Result<ColdStartReport> {
        let counts = crate::coldstart::item_counts(train, self.n_items())?;
        let k = self.no_components();
        // The table is only written once the solve has succeeded.
        let (table, stride) = self.items.rows_mut();
        let report = crate::coldstart::refit_table(
            &self.item_features,
            &counts,
            table,
            stride,
            k + 1,
            options,
        )?;
        self.item_cache = OnceLock::new();
        Ok(report)
    }

    /// All user representations: (`n_users × k` vectors, biases).
    pub fn user_representations(&self) -> (Array2<f32>, Array1<f32>) {
        Self::all_reprs(&self.users, &self.user_features, self.no_components())
    }

    fn all_reprs(side: &Side, fm: &FeatureMatrix, k: usize) -> (Array2<f32>, Array1<f32>) {
        let n = fm.n_rows();
        let mut vectors = Array2::<f32>::zeros((n, k));
        let mut biases = Array1::<f32>::zeros(n);
        for (i, mut row) in vectors.outer_iter_mut().enumerate() {
            let (f, w) = fm.row(i);
            let r = Self::side_repr(side, k, f, w);
            row.assign(&r.vector);
            biases[i] = r.bias;
        }
        (vectors, biases)
    }

    /// All item representations, computed once after training and cached.
    pub fn item_representations(&self) -> &ItemRepresentations {
        self.item_cache.get_or_init(|| {
            let (vectors, biases) =
                Self::all_reprs(&self.items, &self.item_features, self.no_components());
            ItemRepresentations::new(vectors, biases).expect("consistent shapes")
        })
    }

    /// Scores of `items` for a known `user`.
    pub fn predict(&self, user: usize, items: &[usize]) -> Result<Vec<f32>> {
        self.predict_items(user, items)
    }

    /// Scores of every item for a known `user`.
    pub fn predict_all(&self, user: usize) -> Result<Vec<f32>> {
        self.predict_every_item(user)
    }

    /// The `n` best items for `user`, best first, skipping items for which `exclude` is true.
    pub fn recommend(
        &self,
        user: usize,
        n: usize,
        exclude: impl Fn(usize) -> bool,
    ) -> Result<Vec<(usize, f32)>> {
        self.top_items(user, n, exclude)
    }
}

impl Factorised for HybridModel {
    const NAME: &'static str = "the hybrid model needs a user (id, features or representation)";

    fn no_components(&self) -> usize {
        HybridModel::no_components(self)
    }

    fn item_representations(&self) -> &ItemRepresentations {
        HybridModel::item_representations(self)
    }

    fn user_representation(&self, user: usize) -> Result<Representation> {
        HybridModel::user_representation(self, user)
    }

    fn user_representation_from_features(&self, row: &[(usize, f32)]) -> Result<Representation> {
        HybridModel::user_representation_from_features(self, row)
    }

    fn item_representation_from_features(&self, row: &[(usize, f32)]) -> Result<Representation> {
        HybridModel::item_representation_from_features(self, row)
    }
}

// The model as a [`Scorer`]: a user is a known index, a feature row, or a ready-made
// representation.
crate::scorer::factorised_scorer!(HybridModel);
