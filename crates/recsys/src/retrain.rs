//! Warm retraining: continue a trained bundle's model on the data as it is now (new users,
//! new products, new interactions — live events included when the source is the store),
//! gate the candidate on the newest interactions against the model it would replace, and
//! build the bundle to publish.
//!
//! What [`retrain`] does, in order:
//!
//! 1. **Grow.** A [`Dataset`] resumes from the bundle ([`Dataset::resume`]): its id maps,
//!    feature vocabularies and the feature rows the model was trained with. User and product
//!    records of ids the bundle does not know, and every interaction, are added: new users and
//!    products get rows after the known ones, new feature values (a new brand, a new
//!    identity feature per new row) get columns after the known ones. Known ids keep their
//!    indices and their feature rows exactly (their records are not read again: attributes
//!    that changed since the base was trained take effect at the next training from
//!    scratch). The model grows to the new matrices ([`HybridModel::extend`]): the
//!    parameters of known features are kept, new features start at zero
//!    ([`HybridModel::zero_features_from`]): they contribute nothing until trained, so a new
//!    row is first represented by the known features it has (its attributes).
//! 2. **Optimiser state.** A bundle saved with `keep_training_state` carries adagrad's (or
//!    adadelta's) accumulators, and training continues exactly where it stopped. Without it
//!    the state is reset ([`HybridModel::reset_training_state`]): the parameters are kept, but
//!    the first steps are as large as a new model's (the report says which happened).
//! 3. **Gate.** The newest `holdout_fraction` of the time-stamped interaction records (by
//!    timestamp; records without one never count as new), without the pairs the current
//!    model was trained on (the bundle's seen interactions: a model scores what it was
//!    trained on too well to be compared fairly), form the holdout; their pairs are left
//!    out of the gate's training data. The candidate — the grown model trained
//!    `epochs` more epochs on everything else — and the current model — the grown model
//!    before any training, i.e. what serves now, with new rows known only through the
//!    features they share with known ones — are evaluated on the holdout (P@k, AUC; pairs of
//!    the gate's training data excluded from the ranking). Both are evaluated user by user
//!    ([`recsys_core::evaluate_users`]), so the comparison is paired: the candidate passes
//!    when neither metric's mean is lower than the current model's by more than
//!    `tolerance + noise_z × SE`, SE being the standard error of the mean per-user
//!    difference — with few held-out users a small drop is noise, and refusing it would
//!    refuse better models (docs/benchmarks.md, "Warm retraining").
//!    With `force` and nothing to gate on (no time-stamped record, or the current model
//!    was trained on all of the newest pairs), the gate is skipped ([`Retrained::gate`] is
//!    `None`); without `force` that is an error ([`RetrainError::NoHoldout`],
//!    [`RetrainError::NothingNew`]).
//! 4. **Final model.** When the gate passed (or `force`), the same recipe runs on all the
//!    data, holdout included: the grown model, `epochs` more epochs. Its bundle carries the
//!    gate's numbers in its metadata (the description, and `metrics` = the candidate on the
//!    holdout, or the final model on the test pairs when they were given; with no gate and
//!    no test pairs, no metrics).
//!
//! Test pairs (`test_pairs`, e.g. Complete Journey's `test_pairs.csv.gz`) are left out of
//! every training run and only reported on at the end ([`Retrained::test`]).
//!
//! Only the hybrid model retrains warm; an ALS bundle is refused with
//! [`RetrainError::Unsupported`] (train it from scratch).
//!
//! ```
//! use recsys::demo::{generate, DemoConfig};
//! use recsys::experiment::{Experiment, ExperimentConfig, Split};
//! use recsys::retrain::{retrain, RetrainConfig};
//! use recsys::{ExternalId, Hyperparameters, InMemorySource, Loss};
//!
//! let shop = generate(&DemoConfig { users: 120, products: 80, interactions: 3_000, seed: 5 });
//! // The base model knows the older 90 % of the interactions (users and products that only
//! // appear later are unknown to it).
//! let cut = shop.interactions.len() * 9 / 10;
//! let mut older = InMemorySource {
//!     users: Vec::new(),
//!     products: Vec::new(),
//!     interactions: shop.interactions[..cut].to_vec(),
//! };
//! let experiment = Experiment::load(&mut older, &ExperimentConfig::collaborative(), Split::None)?;
//! let params = Hyperparameters::builder().loss(Loss::Warp).no_components(8).seed(1).build()?;
//! let (model, _) = experiment.fit(params, 10, 1, |_| {})?;
//! let base = experiment.bundle(model).neighbours(5).keep_training_state(true).build()?;
//!
//! // Retrain warm on everything, gated on the newest 10 %.
//! let mut now = shop.clone();
//! let config = RetrainConfig { epochs: 3, holdout_fraction: 0.1, ..RetrainConfig::default() };
//! let retrained = retrain(&base, &mut now, &config)?;
//! if let Some(gate) = &retrained.gate {
//!     println!("{}", gate.summary());
//! }
//! assert_eq!(retrained.growth.users_before, base.users().len());
//! if let Some(bundle) = &retrained.bundle {
//!     // Known ids keep their indices; the newer ones got rows after them.
//!     assert_eq!(bundle.users().id(0), base.users().id(0));
//!     assert_eq!(bundle.users().len(), retrained.growth.users_after);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
use std::time::{Duration, Instant};

use recsys_core::{
    evaluate_users, CoreError, EvalOptions, FitOptions, HybridModel, Interaction, Interactions,
    Metrics,
};
use recsys_features::{
    Dataset, ExternalId, FeaturesError, InteractionMode, InteractionOptions, ProductRecord,
    RecordSource, UnknownIdPolicy,
};
use recsys_recommend::{
    Bundle, BundleBuilder, EvaluationSummary, ProductCatalog, ProductInfo, RecommendError,
};
use thiserror::Error;

/// Everything that can go wrong while retraining.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RetrainError {
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
    /// The bundle's model cannot be retrained warm.
    #[error("{0}")]
    Unsupported(String),
    /// No interaction record has a timestamp, so there is nothing to gate on.
    #[error(
        "no interaction outside the test pairs has a timestamp: the gate needs time-stamped \
         interactions (force skips the gate)"
    )]
    NoHoldout,
    /// The current model was trained on every pair of the newest interactions, so they
    /// cannot tell the two models apart.
    #[error(
        "the current model was trained on every pair of the newest interactions: nothing new \
         to gate on (wait for new interactions, raise the holdout fraction, or force)"
    )]
    NothingNew,
    /// Reading the records or growing the dataset failed.
    #[error(transparent)]
    Features(#[from] FeaturesError),
    /// Training or evaluation failed.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// Assembling the bundle failed.
    #[error(transparent)]
    Recommend(#[from] RecommendError),
}

/// Result alias of this module.
pub type Result<T, E = RetrainError> = std::result::Result<T, E>;

/// How to retrain (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrainConfig {
    /// Epochs trained on top of the bundle's model (for the gate's candidate, and again for
    /// the final model). 0 keeps the parameters as they are (new features at zero).
    pub epochs: usize,
    /// Training and evaluation threads (1: bit-reproducible).
    pub threads: usize,
    /// The newest fraction of the time-stamped interaction records that the gate holds out,
    /// in `(0, 1)`.
    pub holdout_fraction: f64,
    /// Cut-off of the gate's precision.
    pub k: usize,
    /// How much lower than the current model's the candidate's P@k and AUC may be and still
    /// pass, besides the noise allowance (0: no fixed allowance).
    pub tolerance: f64,
    /// Noise allowance, in standard errors of the paired per-user difference: the candidate
    /// fails on a metric only when its mean over the holdout's users is lower than the
    /// current model's by more than `tolerance + noise_z × SE` (0: any drop fails; 2: a
    /// drop fails only when it is unlikely to be noise, about 2.3 % one-sided).
    pub noise_z: f64,
    /// Build the final model even when the gate refuses the candidate.
    pub force: bool,
    /// Binary or weighted interactions (as the base was trained: the bundle does not record
    /// it).
    pub interactions: InteractionMode,
    /// Held-out `(user id, product id)` pairs: never trained on, reported on at the end.
    pub test_pairs: Option<Vec<(ExternalId, ExternalId)>>,
    /// Precomputed neighbours per product in the new bundle (`None`: as many as the base
    /// bundle has).
    pub neighbours: Option<usize>,
    /// Keep the optimiser state in the new bundle, so that it can be retrained warm in turn
    /// without a reset (a larger bundle: one or two more copies of the parameters).
    pub keep_training_state: bool,
    /// Stop after the gate: no final model, no bundle (a dry run).
    pub gate_only: bool,
}

impl Default for RetrainConfig {
    /// 3 epochs, 1 thread, the newest 5 % held out, P@10, tolerance 0, a noise allowance
    /// of 2 standard errors, no force, binary
    /// interactions, no test pairs, the base's neighbour count, no optimiser state in the
    /// new bundle, a bundle built when the gate passes.
    fn default() -> Self {
        RetrainConfig {
            epochs: 3,
            threads: 1,
            holdout_fraction: 0.05,
            k: 10,
            tolerance: 0.0,
            noise_z: 2.0,
            force: false,
            interactions: InteractionMode::Binary,
            test_pairs: None,
            neighbours: None,
            keep_training_state: false,
            gate_only: false,
        }
    }
}

/// How the id maps and feature vocabularies grew.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Growth {
    /// Users of the base bundle.
    pub users_before: usize,
    /// Users after retraining (the new ones appended).
    pub users_after: usize,
    /// Products of the base bundle.
    pub items_before: usize,
    /// Products after retraining.
    pub items_after: usize,
    /// User features before and after.
    pub user_features: (usize, usize),
    /// Item features before and after.
    pub item_features: (usize, usize),
    /// Interaction records read.
    pub records: usize,
    /// Whether the bundle carried the optimiser state (else it was reset).
    pub training_state_kept: bool,
}

/// The gate's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// Interaction records held out: the newest by timestamp whose pair the current model
    /// was not trained on.
    pub holdout_records: usize,
    /// Distinct `(user, product)` pairs among them (the holdout evaluated on).
    pub holdout_pairs: usize,
    /// Timestamp of the oldest held-out record (seconds since the Unix epoch).
    pub since_timestamp: Option<i64>,
    /// The candidate on the holdout.
    pub candidate: Metrics,
    /// The current model on the holdout.
    pub current: Metrics,
    /// The allowed drop besides the noise allowance.
    pub tolerance: f64,
    /// The noise allowance in standard errors.
    pub noise_z: f64,
    /// Standard error of the mean per-user difference (candidate − current) of P@k.
    pub precision_se: f64,
    /// Standard error of the mean per-user difference of AUC.
    pub auc_se: f64,
    /// Whether the candidate is not worse on P@k and AUC: neither mean is lower than the
    /// current model's by more than `tolerance + noise_z × SE`.
    pub passed: bool,
}

impl Gate {
    /// One line: holdout, both models' P@k and AUC, the verdict.
    pub fn summary(&self) -> String {
        let k = self.candidate.k;
        format!(
            "gate on the newest {} interactions ({} pairs, {} users{}): candidate P@{k} {:.4} \
             AUC {:.4}, current P@{k} {:.4} AUC {:.4}; difference P@{k} {:+.4} ± {:.4}, AUC \
             {:+.4} ± {:.4} (standard errors; allowed drop {} + {} SE): {}",
            self.holdout_records,
            self.holdout_pairs,
            self.candidate.n_users,
            self.since_timestamp
                .map_or(String::new(), |t| format!(", since {t}")),
            self.candidate.precision_at_k,
            self.candidate.auc,
            self.current.precision_at_k,
            self.current.auc,
            self.candidate.precision_at_k - self.current.precision_at_k,
            self.precision_se,
            self.candidate.auc - self.current.auc,
            self.auc_se,
            self.tolerance,
            self.noise_z,
            if self.passed { "passed" } else { "refused" }
        )
    }
}

/// Wall times of the parts of a retraining run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetrainTimes {
    /// Reading the records and growing the dataset and the model.
    pub load: Duration,
    /// Training the gate's candidate.
    pub gate_training: Duration,
    /// Evaluating both models on the holdout.
    pub gate_evaluation: Duration,
    /// Training the final model on all the data.
    pub final_training: Duration,
    /// Neighbours and bundle assembly.
    pub bundle: Duration,
}

/// What [`retrain`] produced.
#[derive(Debug, Clone)]
pub struct Retrained {
    /// The new bundle: `None` when the gate refused the candidate (and `force` was off), or
    /// with `gate_only`.
    pub bundle: Option<Bundle>,
    /// The gate's numbers; `None` when `force` skipped a gate that had nothing to compare
    /// (no time-stamped interaction, or none the current model was not trained on).
    pub gate: Option<Gate>,
    /// How ids and features grew.
    pub growth: Growth,
    /// The final model on the test pairs, when they were given and the model was built.
    pub test: Option<Metrics>,
    /// Wall times.
    pub times: RetrainTimes,
}

/// The base model, grown to the dataset's matrices, with training state.
fn grown_model(base: &HybridModel, dataset: &Dataset) -> Result<(HybridModel, bool)> {
    let mut model = base.clone();
    let known = (
        base.user_features().n_features(),
        base.item_features().n_features(),
    );
    model.extend(dataset.user_features(), dataset.item_features())?;
    // New features start at zero: the grown model is what serves now (new rows known only
    // through the features they share with known ones), and training moves them from there.
    model.zero_features_from(known.0, known.1);
    let kept = model.has_training_state();
    if !kept {
        model.reset_training_state();
    }
    Ok((model, kept))
}

fn train(model: &mut HybridModel, data: &Interactions, config: &RetrainConfig) -> Result<()> {
    if config.epochs > 0 {
        model.fit_partial(
            data,
            FitOptions::epochs(config.epochs).threads(config.threads),
        )?;
    }
    Ok(())
}

/// Trains a candidate without the holdout from `model` (the grown current model) and
/// compares both on the holdout.
fn run_gate(
    model: &HybridModel,
    all: &Interactions,
    holdout: Interactions,
    holdout_records: usize,
    since_timestamp: Option<i64>,
    config: &RetrainConfig,
    times: &mut RetrainTimes,
) -> Result<Gate> {
    let gate_train = all.difference(&holdout);
    let started = Instant::now();
    let mut candidate = model.clone();
    train(&mut candidate, &gate_train, config)?;
    times.gate_training = started.elapsed();
    let started = Instant::now();
    let eval = EvalOptions {
        k: config.k,
        threads: config.threads,
        candidates: None,
    };
    let candidate_users = evaluate_users(&candidate, &holdout, Some(&gate_train), &eval)?;
    let current_users = evaluate_users(model, &holdout, Some(&gate_train), &eval)?;
    times.gate_evaluation = started.elapsed();
    let mean =
        |users: &[(usize, Metrics)]| Metrics::mean_of(config.k, users.iter().map(|(_, m)| m));
    let (candidate_metrics, current_metrics) = (mean(&candidate_users), mean(&current_users));
    let differences = |metric: fn(&Metrics) -> f64| -> Vec<f64> {
        candidate_users
            .iter()
            .zip(&current_users)
            .map(|((_, c), (_, p))| metric(c) - metric(p))
            .collect()
    };
    let precision_se = standard_error(&differences(|m| m.precision_at_k));
    let auc_se = standard_error(&differences(|m| m.auc));
    let (tolerance, z) = (config.tolerance, config.noise_z);
    let passed = candidate_metrics.precision_at_k
        >= current_metrics.precision_at_k - tolerance - z * precision_se
        && candidate_metrics.auc >= current_metrics.auc - tolerance - z * auc_se;
    Ok(Gate {
        holdout_records,
        holdout_pairs: holdout.len(),
        since_timestamp,
        candidate: candidate_metrics,
        current: current_metrics,
        tolerance,
        noise_z: z,
        precision_se,
        auc_se,
        passed,
    })
}

/// Standard error of the mean of `values` (sample standard deviation / √n; 0 for fewer
/// than two values).
fn standard_error(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (var / n as f64).sqrt()
}

/// The newest `fraction` of the time-stamped records of `dataset`'s log that are not test
/// pairs, as binary pairs, without the pairs the current model was trained on (`seen`);
/// with the number of records held out and the oldest timestamp among them.
fn newest(
    dataset: &Dataset,
    fraction: f64,
    test: Option<&Interactions>,
    seen: &Interactions,
) -> Result<(Interactions, usize, Option<i64>)> {
    let entries = dataset.interaction_log().entries();
    let mut stamped: Vec<(i64, usize)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| !test.is_some_and(|t| t.contains(e.user, e.item)))
        .filter_map(|(position, e)| e.timestamp.map(|t| (t, position)))
        .collect();
    if stamped.is_empty() {
        return Err(RetrainError::NoHoldout);
    }
    // Newest first; among equal timestamps the later record first.
    stamped.sort_unstable_by(|a, b| b.cmp(a));
    let n = ((fraction * stamped.len() as f64).round() as usize).clamp(1, stamped.len());
    let held: Vec<(i64, usize)> = stamped[..n]
        .iter()
        .copied()
        .filter(|&(_, position)| {
            let e = &entries[position];
            !seen.contains(e.user, e.item)
        })
        .collect();
    if held.is_empty() {
        return Err(RetrainError::NothingNew);
    }
    let mut pairs = HashSet::new();
    let mut holdout = Vec::new();
    for &(_, position) in &held {
        let e = &entries[position];
        if pairs.insert((e.user, e.item)) {
            holdout.push(Interaction {
                user: e.user,
                item: e.item,
                value: 1.0,
                weight: 1.0,
            });
        }
    }
    let since = held.last().map(|&(t, _)| t);
    Ok((
        Interactions::from_entries(dataset.n_users(), dataset.n_items(), holdout)?,
        held.len(),
        since,
    ))
}

/// Retrains `base`'s model warm on the records of `source` (see the [module docs](self)).
///
/// `source` holds the data as it is now — every user, product and interaction, the ones
/// the base was trained on included (the store, or a CSV folder); records of known users
/// and products are skipped, interactions are all used.
pub fn retrain<S: RecordSource + ?Sized>(
    base: &Bundle,
    source: &mut S,
    config: &RetrainConfig,
) -> Result<Retrained> {
    if !(config.holdout_fraction > 0.0 && config.holdout_fraction < 1.0) {
        return Err(RetrainError::InvalidSetting {
            name: "holdout",
            value: config.holdout_fraction.to_string(),
            reason: "must be a fraction in (0, 1)",
        });
    }
    if config.threads == 0 || config.k == 0 {
        return Err(RetrainError::InvalidSetting {
            name: if config.threads == 0 { "threads" } else { "k" },
            value: "0".into(),
            reason: "must be >= 1",
        });
    }
    for (name, value) in [("tolerance", config.tolerance), ("noise z", config.noise_z)] {
        if !(value.is_finite() && value >= 0.0) {
            return Err(RetrainError::InvalidSetting {
                name,
                value: value.to_string(),
                reason: "must be a finite number >= 0",
            });
        }
    }
    let Some(base_model) = base.model().as_hybrid() else {
        return Err(RetrainError::Unsupported(format!(
            "model {} is {}: warm retraining continues the hybrid model only; train the {} \
             model from scratch",
            base.metadata().model_id,
            base.model().family(),
            base.model().family()
        )));
    };
    let mut times = RetrainTimes::default();
    let started = Instant::now();

    // ---- grow the ids, vocabularies and feature rows
    let mut dataset = Dataset::resume(
        base.users().clone(),
        base.items().clone(),
        base.user_vocabulary().clone(),
        base.item_vocabulary().clone(),
        base_model.user_features(),
        base_model.item_features(),
    )?;
    for user in source.users().map_err(FeaturesError::from)? {
        let user = user.map_err(FeaturesError::from)?;
        if !dataset.users().contains(&user.user_id) {
            dataset.add_user(&user)?;
        }
    }
    let mut products: Vec<ProductRecord> = Vec::new();
    for product in source.products().map_err(FeaturesError::from)? {
        let product = product.map_err(FeaturesError::from)?;
        if !dataset.items().contains(&product.product_id) {
            dataset.add_product(&product)?;
        }
        products.push(product);
    }
    let mut records = 0;
    for interaction in source.interactions().map_err(FeaturesError::from)? {
        dataset.add_interaction(&interaction.map_err(FeaturesError::from)?)?;
        records += 1;
    }
    if let Some(pairs) = &config.test_pairs {
        for (user, product) in pairs {
            dataset.add_user_id(user)?;
            dataset.add_product_id(product)?;
        }
    }
    let options = InteractionOptions::from(config.interactions.clone());
    let (logged, _) = dataset.logged_interactions(options)?;
    let test = match &config.test_pairs {
        Some(pairs) => Some(
            dataset
                .interactions_from_pairs(pairs.iter().map(|(u, i)| (u, i)), UnknownIdPolicy::Error)?
                .0,
        ),
        None => None,
    };
    let all = match &test {
        Some(test) => logged.difference(test),
        None => logged,
    };
    let (model, training_state_kept) = grown_model(base_model, &dataset)?;
    let growth = Growth {
        users_before: base.users().len(),
        users_after: dataset.n_users(),
        items_before: base.items().len(),
        items_after: dataset.n_items(),
        user_features: (
            base.user_vocabulary().len(),
            dataset.user_vocabulary().len(),
        ),
        item_features: (
            base.item_vocabulary().len(),
            dataset.item_vocabulary().len(),
        ),
        records,
        training_state_kept,
    };
    let held = match newest(
        &dataset,
        config.holdout_fraction,
        test.as_ref(),
        base.seen(),
    ) {
        Ok(held) => Some(held),
        Err(RetrainError::NoHoldout | RetrainError::NothingNew) if config.force => None,
        Err(e) => return Err(e),
    };
    times.load = started.elapsed();
    let gate = match held {
        Some((holdout, holdout_records, since_timestamp)) => Some(run_gate(
            &model,
            &all,
            holdout,
            holdout_records,
            since_timestamp,
            config,
            &mut times,
        )?),
        None => None,
    };
    let passed = gate.as_ref().is_some_and(|g| g.passed);
    if config.gate_only || (!passed && !config.force) {
        return Ok(Retrained {
            bundle: None,
            gate,
            growth,
            test: None,
            times,
        });
    }

    // ---- the final model: the same recipe on all the data
    let started = Instant::now();
    let mut model = model;
    train(&mut model, &all, config)?;
    times.final_training = started.elapsed();
    let test_metrics = match &test {
        Some(test) if !test.is_empty() => {
            let eval = EvalOptions {
                k: config.k,
                threads: config.threads,
                candidates: None,
            };
            Some(recsys_core::evaluate(&model, test, Some(&all), &eval)?)
        }
        _ => None,
    };

    // ---- the bundle
    let started = Instant::now();
    let mut details: Vec<ProductInfo> = (0..dataset.n_items())
        .map(|i| base.products().get(i).cloned().unwrap_or_default())
        .collect();
    for record in &products {
        if let Some(i) = dataset.items().index(&record.product_id) {
            details[i] = ProductInfo::from_record(record);
        }
    }
    let description = format!(
        "retrained warm from model {} ({} more epochs, optimiser state {}; users {} -> {}, \
         products {} -> {}); {}{}",
        base.metadata().model_id,
        config.epochs,
        if training_state_kept { "kept" } else { "reset" },
        growth.users_before,
        growth.users_after,
        growth.items_before,
        growth.items_after,
        gate.as_ref().map_or_else(
            || "no gate: forced, nothing new to gate on".to_string(),
            Gate::summary
        ),
        if passed { "" } else { " (forced)" }
    );
    let metrics = test_metrics
        .as_ref()
        .or(gate.as_ref().map(|g| &g.candidate));
    let mut builder = BundleBuilder::new(model, &dataset, all);
    // The base's content prior, refitted on load from the grown parts.
    if let Some(spec) = base.metadata().content_prior {
        builder = builder.content_prior(spec);
    }
    let bundle = builder
        .catalog(ProductCatalog::from_infos(details))
        .neighbours(
            config
                .neighbours
                .unwrap_or(base.metadata().counts.neighbours_per_item),
        )
        .metrics(metrics.map(EvaluationSummary::from))
        .description(description)
        .keep_training_state(config.keep_training_state)
        .build()?;
    times.bundle = started.elapsed();
    Ok(Retrained {
        bundle: Some(bundle),
        gate,
        growth,
        test: test_metrics,
        times,
    })
}
