//! Implicit-feedback matrix factorisation by alternating least squares: [`AlsModel`], its
//! hyper-parameters and solvers.

// Index loops over latent components read more clearly than zipped iterators here.
#![allow(clippy::needless_range_loop)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ndarray::{Array1, Array2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::coldstart::{ColdStartRefit, ColdStartReport};
use crate::error::{CoreError, Result};
use crate::foldin::solve_spd;
use crate::interactions::Interactions;
use crate::matrix::FeatureMatrix;
use crate::params::{check_no_components, invalid_hyperparameter};
use crate::repr::{ItemRepresentations, Representation};
use crate::rng::Rng;
use crate::scorer::Factorised;
use crate::stored::{F32s, MODEL_RECORD_VERSION};

/// How the rows of a side without features (identity feature matrix) are solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AlsSolver {
    /// `steps` conjugate-gradient steps per row and half-sweep, warm-started from the
    /// previous factors (Takács, Pilászy & Tikk 2011; implicit's default with 3 steps).
    ConjugateGradient {
        /// CG steps per row (>= 1).
        steps: usize,
    },
    /// The exact solution of every row's `k × k` system by Cholesky factorisation.
    Cholesky,
}

/// Validated ALS hyper-parameters. Build them with [`AlsParams::builder`].
///
/// Deserialising validates them like [`AlsParamsBuilder::build`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AlsParamsData")]
pub struct AlsParams {
    no_components: usize,
    alpha: f32,
    regularization: f32,
    solver: AlsSolver,
    feature_cg_steps: usize,
    init_scale: f32,
    seed: u64,
}

/// The serialised form of [`AlsParams`], before validation.
#[derive(Deserialize)]
pub(crate) struct AlsParamsData {
    no_components: usize,
    alpha: f32,
    regularization: f32,
    solver: AlsSolver,
    feature_cg_steps: usize,
    init_scale: f32,
    seed: u64,
}

impl TryFrom<AlsParamsData> for AlsParams {
    type Error = CoreError;

    fn try_from(d: AlsParamsData) -> Result<Self> {
        AlsParamsBuilder {
            p: AlsParams {
                no_components: d.no_components,
                alpha: d.alpha,
                regularization: d.regularization,
                solver: d.solver,
                feature_cg_steps: d.feature_cg_steps,
                init_scale: d.init_scale,
                seed: d.seed,
            },
        }
        .build()
    }
}

impl Default for AlsParams {
    fn default() -> Self {
        AlsParamsBuilder::default()
            .build()
            .expect("defaults are valid")
    }
}

impl AlsParams {
    /// A builder with the defaults: 10 components, `alpha` 0 (every observed pair has
    /// confidence 1, as implicit's default `alpha = 1` on binary data), `regularization`
    /// 0.01, 3 conjugate-gradient steps, 3 feature CG steps, initial scale 0.01, seed 42.
    pub fn builder() -> AlsParamsBuilder {
        AlsParamsBuilder::default()
    }
    /// Latent dimensionality.
    pub fn no_components(&self) -> usize {
        self.no_components
    }
    /// Extra confidence per unit of sample weight: `c = 1 + alpha·w`.
    pub fn alpha(&self) -> f32 {
        self.alpha
    }
    /// L2 penalty λ on the embeddings.
    pub fn regularization(&self) -> f32 {
        self.regularization
    }
    /// The row solver of sides without features.
    pub fn solver(&self) -> AlsSolver {
        self.solver
    }
    /// Preconditioned CG steps per half-sweep on a side with features.
    pub fn feature_cg_steps(&self) -> usize {
        self.feature_cg_steps
    }
    /// Initial embeddings are uniform in `[0, init_scale)`.
    pub fn init_scale(&self) -> f32 {
        self.init_scale
    }
    /// The random seed of the initialisation.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Turns these parameters back into a builder (to change one value).
    pub fn to_builder(&self) -> AlsParamsBuilder {
        AlsParamsBuilder { p: self.clone() }
    }
}

/// Builder for [`AlsParams`]; [`AlsParamsBuilder::build`] validates every value.
#[derive(Debug, Clone)]
pub struct AlsParamsBuilder {
    p: AlsParams,
}

impl Default for AlsParamsBuilder {
    fn default() -> Self {
        AlsParamsBuilder {
            p: AlsParams {
                no_components: 10,
                alpha: 0.0,
                regularization: 0.01,
                solver: AlsSolver::ConjugateGradient { steps: 3 },
                feature_cg_steps: 3,
                init_scale: 0.01,
                seed: 42,
            },
        }
    }
}

impl AlsParamsBuilder {
    /// Latent dimensionality (1..=4096).
    pub fn no_components(mut self, n: usize) -> Self {
        self.p.no_components = n;
        self
    }
    /// Extra confidence per unit of sample weight (finite, >= 0).
    pub fn alpha(mut self, alpha: f32) -> Self {
        self.p.alpha = alpha;
        self
    }
    /// L2 penalty on the embeddings (finite, > 0).
    pub fn regularization(mut self, lambda: f32) -> Self {
        self.p.regularization = lambda;
        self
    }
    /// The row solver of sides without features.
    pub fn solver(mut self, solver: AlsSolver) -> Self {
        self.p.solver = solver;
        self
    }
    /// Shorthand for `solver(AlsSolver::ConjugateGradient { steps })`.
    pub fn cg_steps(mut self, steps: usize) -> Self {
        self.p.solver = AlsSolver::ConjugateGradient { steps };
        self
    }
    /// Preconditioned CG steps per half-sweep on a side with features (1..=1000).
    pub fn feature_cg_steps(mut self, steps: usize) -> Self {
        self.p.feature_cg_steps = steps;
        self
    }
    /// Scale of the uniform initial embeddings (finite, > 0).
    pub fn init_scale(mut self, scale: f32) -> Self {
        self.p.init_scale = scale;
        self
    }
    /// Random seed of the initialisation.
    pub fn seed(mut self, seed: u64) -> Self {
        self.p.seed = seed;
        self
    }

    /// Validates and returns the parameters, or an error naming the first bad value.
    pub fn build(self) -> Result<AlsParams> {
        let p = self.p;
        let bad = invalid_hyperparameter;
        check_no_components(p.no_components)?;
        if !(p.alpha.is_finite() && p.alpha >= 0.0) {
            return bad("alpha", p.alpha.to_string(), "must be finite and >= 0");
        }
        if !(p.regularization.is_finite() && p.regularization > 0.0) {
            return bad(
                "regularization",
                p.regularization.to_string(),
                "must be finite and > 0",
            );
        }
        if let AlsSolver::ConjugateGradient { steps } = p.solver {
            if steps == 0 || steps > 1000 {
                return bad("cg_steps", steps.to_string(), "must be in 1..=1000");
            }
        }
        if p.feature_cg_steps == 0 || p.feature_cg_steps > 1000 {
            return bad(
                "feature_cg_steps",
                p.feature_cg_steps.to_string(),
                "must be in 1..=1000",
            );
        }
        if !(p.init_scale.is_finite() && p.init_scale > 0.0) {
            return bad(
                "init_scale",
                p.init_scale.to_string(),
                "must be finite and > 0",
            );
        }
        Ok(p)
    }
}

/// Settings of one [`AlsModel::fit`] / [`AlsModel::fit_partial`] call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlsFitOptions {
    /// Full sweeps (users, then items).
    pub iterations: usize,
    /// Worker threads (the result does not depend on it).
    pub threads: usize,
    /// Compute the training loss after each sweep (one extra pass; off by default).
    pub compute_loss: bool,
}

impl AlsFitOptions {
    /// `iterations` sweeps on one thread, without loss.
    pub fn iterations(iterations: usize) -> Self {
        AlsFitOptions {
            iterations,
            threads: 1,
            compute_loss: false,
        }
    }
    /// Sets the number of worker threads.
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }
    /// Also computes the training loss after each sweep.
    pub fn with_loss(mut self) -> Self {
        self.compute_loss = true;
        self
    }
}

/// What one sweep reports.
#[derive(Debug, Clone, PartialEq)]
pub struct AlsIteration {
    /// 0-based index of the sweep within the call.
    pub iteration: usize,
    /// Wall time of the sweep (without the loss computation).
    pub elapsed: Duration,
    /// The training loss after the sweep, when asked for.
    pub loss: Option<f64>,
}

/// The implicit-feedback ALS model: matrix factorisation by alternating least squares (iALS),
/// with user and item features.
///
/// The objective is Hu, Koren & Volinsky's (2008) weighted least squares over **all**
/// user–item pairs:
///
/// ```text
///   minimise  Σ_u Σ_i c_ui (p_ui − x_u·y_i)²  +  λ (‖E_user‖² + ‖E_item‖²)
/// ```
///
/// with preference `p_ui = 1` for a positive interaction (value > 0) and 0 otherwise,
/// confidence `c_ui = 1 + α·w_ui` for an interaction of sample weight `w_ui` (binary data:
/// `w = 1`; the `weighted` interactions of a dataset: the summed weights) and `c_ui = 1`
/// for the pairs that never happened. As in the hybrid model, a user (item) is the sum of
/// its features' embeddings, `x_u = Σ_f A_uf E_f` (the identity feature matrix gives plain
/// collaborative filtering, one free vector per user); λ penalises the embeddings. Scores
/// are `x_u·y_i` (no biases).
///
/// Training alternates: with the item representations fixed, the user embeddings solve a
/// linear least-squares problem, and vice versa. The `Σ_i` over every item is never
/// expanded: with `G = Σ_i y_i y_iᵀ` (the Gram matrix, computed once per half-sweep),
///
/// ```text
///   Σ_i c_ui (p_ui − x·y_i)² = xᵀ (G + Σ_{i∈I_u} (c_ui − 1) y_i y_iᵀ) x − 2 xᵀ Σ_{i∈I_u} c_ui p_ui y_i + const
/// ```
///
/// so a user's system costs `O(k² + k·|I_u|)` per matrix–vector product (the "Hu trick").
/// Identity sides are solved row by row, in parallel: by conjugate gradient, a few steps
/// warm-started from the previous factors ([`AlsSolver::ConjugateGradient`], implicit's
/// default), or exactly by Cholesky ([`AlsSolver::Cholesky`]: LAPACK with the `lapack`
/// feature, else the crate's own solver). A side with features couples its rows through
/// shared embeddings; its whole embedding matrix is updated by preconditioned conjugate
/// gradient on the normal equations, matrix-free (ARCHITECTURE.md derives it; with the
/// identity matrix it is the same problem as the row-by-row solve).
///
/// Every row's update depends only on the other side, and every reduction (Gram matrices,
/// inner products) sums fixed blocks in a fixed order, so a seed gives bit-identical
/// factors for any number of threads on one machine.
///
/// ```
/// use recsys_core::{AlsFitOptions, AlsModel, AlsParams};
/// use recsys_core::{evaluate, EvalOptions, Interactions};
///
/// // 40 users in two taste groups, 20 items in two groups.
/// let pairs: Vec<(usize, usize)> = (0..40)
///     .flat_map(|u| (0..20).filter(move |i| (i % 2 == u % 2) && (i + u) % 3 != 0).map(move |i| (u, i)))
///     .collect();
/// let all = Interactions::from_pairs(40, 20, pairs)?;
/// let (train, test) = all.split_random(0.2, 1)?;
/// let params = AlsParams::builder().no_components(4).alpha(5.0).regularization(0.1).seed(1).build()?;
/// let mut model = AlsModel::collaborative(params, 40, 20)?;
/// model.fit(&train, AlsFitOptions::iterations(10))?;
/// let m = evaluate(&model, &test, Some(&train), &EvalOptions::default())?;
/// assert!(m.auc > 0.8, "{m:?}");
/// // A new user who bought items 0 and 2: one least-squares solve, no retraining.
/// let new_user = model.fold_in(&[(0, 1.0), (2, 1.0)], None)?;
/// assert_eq!(new_user.vector.len(), 4);
/// # Ok::<(), recsys_core::CoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct AlsModel {
    params: AlsParams,
    user_features: FeatureMatrix,
    item_features: FeatureMatrix,
    /// Row width of the embedding buffers: `no_components` rounded up to a multiple of 8,
    /// the padding always zero.
    stride: usize,
    user_embeddings: Vec<f32>,
    item_embeddings: Vec<f32>,
    iterations_trained: usize,
    item_cache: OnceLock<ItemRepresentations>,
    /// `Σ_i y_i y_iᵀ` over the item representations (`k × k`), for fold-in.
    item_gram: OnceLock<Array2<f64>>,
}

/// The saved ALS model record as written: like the hybrid model's (see the crate's `stored`
/// module), the feature embeddings as `n × k` arrays without the row padding.
#[derive(Serialize)]
struct AlsRecordRef<'a> {
    version: u32,
    params: &'a AlsParams,
    user_features: &'a FeatureMatrix,
    item_features: &'a FeatureMatrix,
    user_embeddings: F32s,
    item_embeddings: F32s,
    iterations_trained: u64,
}

impl Serialize for AlsModel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let unpadded = |v: &[f32]| {
            let k = self.no_components();
            F32s(
                v.chunks_exact(self.stride)
                    .flat_map(|r| &r[..k])
                    .copied()
                    .collect(),
            )
        };
        AlsRecordRef {
            version: MODEL_RECORD_VERSION,
            params: &self.params,
            user_features: &self.user_features,
            item_features: &self.item_features,
            user_embeddings: unpadded(&self.user_embeddings),
            item_embeddings: unpadded(&self.item_embeddings),
            iterations_trained: self.iterations_trained as u64,
        }
        .serialize(s)
    }
}

/// The saved ALS model record as read, before validation.
#[derive(Deserialize)]
pub(crate) struct AlsData {
    version: u32,
    params: AlsParamsData,
    user_features: crate::matrix::FeatureMatrixData,
    item_features: crate::matrix::FeatureMatrixData,
    user_embeddings: F32s,
    item_embeddings: F32s,
    iterations_trained: u64,
}

impl TryFrom<AlsData> for AlsModel {
    type Error = CoreError;

    fn try_from(d: AlsData) -> Result<Self> {
        crate::stored::check_version(d.version)?;
        let part = crate::stored::corrupt_part;
        let params = AlsParams::try_from(d.params).map_err(part("ALS hyper-parameters"))?;
        let user_features =
            FeatureMatrix::try_from(d.user_features).map_err(part("ALS user feature matrix"))?;
        let item_features =
            FeatureMatrix::try_from(d.item_features).map_err(part("ALS item feature matrix"))?;
        let k = params.no_components;
        let embeddings = |what: &'static str, v: F32s, n: usize| {
            if Some(v.0.len()) != n.checked_mul(k) {
                return Err(CoreError::Corrupt {
                    what,
                    reason: format!(
                        "{} values for {n} features × {k} components (expected {})",
                        v.0.len(),
                        n.saturating_mul(k)
                    ),
                });
            }
            Ok(Array2::from_shape_vec((n, k), v.0).expect("length checked"))
        };
        let users = embeddings(
            "ALS user embeddings",
            d.user_embeddings,
            user_features.n_features(),
        )?;
        let items = embeddings(
            "ALS item embeddings",
            d.item_embeddings,
            item_features.n_features(),
        )?;
        let mut model =
            AlsModel::from_embeddings(params, user_features, item_features, users, items)
                .map_err(part("ALS model"))?;
        model.iterations_trained =
            usize::try_from(d.iterations_trained).map_err(|_| CoreError::Corrupt {
                what: "ALS iterations",
                reason: format!("{} iterations", d.iterations_trained),
            })?;
        if model.n_items() == 0 {
            return Err(CoreError::Empty("the model needs at least one item"));
        }
        Ok(model)
    }
}

impl<'de> Deserialize<'de> for AlsModel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        AlsModel::try_from(AlsData::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl PartialEq for AlsModel {
    fn eq(&self, o: &Self) -> bool {
        self.params == o.params
            && self.user_features == o.user_features
            && self.item_features == o.item_features
            && self.user_embeddings == o.user_embeddings
            && self.item_embeddings == o.item_embeddings
            && self.iterations_trained == o.iterations_trained
    }
}

impl AlsModel {
    /// An untrained model (seeded random embeddings) over the given feature matrices.
    pub fn new(
        params: AlsParams,
        user_features: FeatureMatrix,
        item_features: FeatureMatrix,
    ) -> Result<Self> {
        let k = params.no_components;
        let stride = k.div_ceil(8) * 8;
        let mut rng = Rng::new(params.seed);
        let mut init = |n: usize| {
            let mut v = vec![0.0f32; n * stride];
            for row in v.chunks_exact_mut(stride) {
                for x in &mut row[..k] {
                    *x = (rng.next_f64() * f64::from(params.init_scale)) as f32;
                }
            }
            v
        };
        let user_embeddings = init(user_features.n_features());
        let item_embeddings = init(item_features.n_features());
        Ok(AlsModel {
            params,
            user_features,
            item_features,
            stride,
            user_embeddings,
            item_embeddings,
            iterations_trained: 0,
            item_cache: OnceLock::new(),
            item_gram: OnceLock::new(),
        })
    }

    /// Pure collaborative filtering: identity feature matrices.
    pub fn collaborative(params: AlsParams, n_users: usize, n_items: usize) -> Result<Self> {
        Self::new(
            params,
            FeatureMatrix::identity(n_users),
            FeatureMatrix::identity(n_items),
        )
    }

    /// A collaborative model from ready-made factors (`n_users × k` and `n_items × k`, e.g.
    /// trained by another library), to evaluate or fold in against them. `k` must be the
    /// parameters' `no_components`.
    pub fn from_factors(
        params: AlsParams,
        user_factors: Array2<f32>,
        item_factors: Array2<f32>,
    ) -> Result<Self> {
        let (n_users, n_items) = (user_factors.nrows(), item_factors.nrows());
        Self::from_embeddings(
            params,
            FeatureMatrix::identity(n_users),
            FeatureMatrix::identity(n_items),
            user_factors,
            item_factors,
        )
    }

    /// A model with given feature embeddings (`n_user_features × k`, `n_item_features × k`),
    /// e.g. to continue training from embeddings kept elsewhere with
    /// [`AlsModel::fit_partial`].
    pub fn from_embeddings(
        params: AlsParams,
        user_features: FeatureMatrix,
        item_features: FeatureMatrix,
        user_embeddings: Array2<f32>,
        item_embeddings: Array2<f32>,
    ) -> Result<Self> {
        let k = params.no_components;
        for (what, m, n) in [
            (
                "user embeddings",
                &user_embeddings,
                user_features.n_features(),
            ),
            (
                "item embeddings",
                &item_embeddings,
                item_features.n_features(),
            ),
        ] {
            if m.ncols() != k {
                return Err(CoreError::ShapeMismatch {
                    what,
                    expected: k,
                    found: m.ncols(),
                });
            }
            if m.nrows() != n {
                return Err(CoreError::ShapeMismatch {
                    what,
                    expected: n,
                    found: m.nrows(),
                });
            }
            if let Some((position, v)) = m.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                return Err(CoreError::NonFinite {
                    what,
                    position,
                    value: v.to_string(),
                });
            }
        }
        let mut model = Self::new(params, user_features, item_features)?;
        let s = model.stride;
        for (dst, src) in [
            (&mut model.user_embeddings, &user_embeddings),
            (&mut model.item_embeddings, &item_embeddings),
        ] {
            for (row, v) in dst.chunks_exact_mut(s).zip(src.outer_iter()) {
                for (d, x) in row.iter_mut().zip(v.iter()) {
                    *d = *x;
                }
            }
        }
        Ok(model)
    }

    /// The hyper-parameters.
    pub fn params(&self) -> &AlsParams {
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
    /// Latent dimensionality.
    pub fn no_components(&self) -> usize {
        self.params.no_components
    }
    /// Sweeps trained so far (over all fit calls).
    pub fn iterations_trained(&self) -> usize {
        self.iterations_trained
    }
    /// The user feature matrix.
    pub fn user_features(&self) -> &FeatureMatrix {
        &self.user_features
    }
    /// The item feature matrix.
    pub fn item_features(&self) -> &FeatureMatrix {
        &self.item_features
    }

    /// The user feature embeddings (`n_user_features × k`).
    pub fn user_feature_embeddings(&self) -> Array2<f32> {
        unpad(&self.user_embeddings, self.stride, self.no_components())
    }
    /// The item feature embeddings (`n_item_features × k`).
    pub fn item_feature_embeddings(&self) -> Array2<f32> {
        unpad(&self.item_embeddings, self.stride, self.no_components())
    }
    /// All user representations (`n_users × k`).
    pub fn user_factors(&self) -> Array2<f32> {
        let reps = represent(&self.user_features, &self.user_embeddings, self.stride);
        unpad(&reps, self.stride, self.no_components())
    }
    /// All item representations (`n_items × k`).
    pub fn item_factors(&self) -> Array2<f32> {
        self.item_representations().vectors().to_owned()
    }

    /// Trains from a fresh seeded initialisation (as [`AlsModel::new`] draws it), then
    /// runs `options.iterations` sweeps.
    pub fn fit(
        &mut self,
        interactions: &Interactions,
        options: AlsFitOptions,
    ) -> Result<Vec<AlsIteration>> {
        self.check_fit(interactions, &options)?;
        let fresh = AlsModel::new(
            self.params.clone(),
            self.user_features.clone(),
            self.item_features.clone(),
        )?;
        self.user_embeddings = fresh.user_embeddings;
        self.item_embeddings = fresh.item_embeddings;
        self.iterations_trained = 0;
        self.fit_partial(interactions, options)
    }

    /// Continues training from the current factors (warm start): `options.iterations` more
    /// sweeps, e.g. after new interactions arrived.
    pub fn fit_partial(
        &mut self,
        interactions: &Interactions,
        options: AlsFitOptions,
    ) -> Result<Vec<AlsIteration>> {
        self.check_fit(interactions, &options)?;
        self.item_cache = OnceLock::new();
        self.item_gram = OnceLock::new();
        CoreError::thread_pool(options.threads)?.install(|| self.sweeps(interactions, options))
    }

    fn check_fit(&self, x: &Interactions, options: &AlsFitOptions) -> Result<()> {
        if x.n_users() != self.n_users() {
            return Err(CoreError::ShapeMismatch {
                what: "interaction users vs model users",
                expected: self.n_users(),
                found: x.n_users(),
            });
        }
        if x.n_items() != self.n_items() {
            return Err(CoreError::ShapeMismatch {
                what: "interaction items vs model items",
                expected: self.n_items(),
                found: x.n_items(),
            });
        }
        if options.threads == 0 {
            return Err(CoreError::zero_count("threads"));
        }
        if x.is_empty() {
            return Err(CoreError::Empty("cannot train on an empty interaction set"));
        }
        Ok(())
    }

    fn sweeps(&mut self, x: &Interactions, options: AlsFitOptions) -> Result<Vec<AlsIteration>> {
        let s = self.stride;
        let alpha = self.params.alpha;
        let by_user = RowData::by_user(x, alpha);
        let by_item = RowData::by_item(x, alpha);
        let user_side = SideShape::of(&self.user_features);
        let item_side = SideShape::of(&self.item_features);
        let mut user_reps = user_side.represent(&self.user_features, &self.user_embeddings, s);
        let mut item_reps = item_side.represent(&self.item_features, &self.item_embeddings, s);
        let mut reports = Vec::with_capacity(options.iterations);
        for iteration in 0..options.iterations {
            let started = Instant::now();
            let ctx = SolveContext {
                params: &self.params,
                stride: s,
            };
            let other = item_reps.as_deref().unwrap_or(&self.item_embeddings);
            let gram = gram_matrix(other, s, self.params.no_components);
            ctx.solve_side(
                &self.user_features,
                &user_side,
                &mut self.user_embeddings,
                &mut user_reps,
                &by_user,
                other,
                &gram,
            )?;
            let other = user_reps.as_deref().unwrap_or(&self.user_embeddings);
            let gram = gram_matrix(other, s, self.params.no_components);
            ctx.solve_side(
                &self.item_features,
                &item_side,
                &mut self.item_embeddings,
                &mut item_reps,
                &by_item,
                other,
                &gram,
            )?;
            let elapsed = started.elapsed();
            if let Some(position) = self
                .user_embeddings
                .iter()
                .chain(&self.item_embeddings)
                .position(|v| !v.is_finite())
            {
                return Err(CoreError::Linalg {
                    context: "ALS sweep",
                    message: format!(
                        "embeddings became non-finite (value {position}) in sweep {iteration}; \
                         raise `regularization` or lower `alpha`"
                    ),
                });
            }
            self.iterations_trained += 1;
            let loss = options.compute_loss.then(|| {
                objective(
                    &by_user,
                    user_reps.as_deref().unwrap_or(&self.user_embeddings),
                    item_reps.as_deref().unwrap_or(&self.item_embeddings),
                    &self.user_embeddings,
                    &self.item_embeddings,
                    s,
                    &self.params,
                )
            });
            reports.push(AlsIteration {
                iteration,
                elapsed,
                loss,
            });
        }
        Ok(reports)
    }

    /// The training objective (weighted squared error over all pairs plus the L2 penalty)
    /// of the current factors on `interactions`, computed in f64.
    pub fn loss(&self, interactions: &Interactions) -> Result<f64> {
        self.check_fit(interactions, &AlsFitOptions::iterations(0))?;
        let s = self.stride;
        let by_user = RowData::by_user(interactions, self.params.alpha);
        let users = represent(&self.user_features, &self.user_embeddings, s);
        let items = represent(&self.item_features, &self.item_embeddings, s);
        Ok(objective(
            &by_user,
            &users,
            &items,
            &self.user_embeddings,
            &self.item_embeddings,
            s,
            &self.params,
        ))
    }

    /// The representation of a known user (bias 0).
    pub fn user_representation(&self, user: usize) -> Result<Representation> {
        if user >= self.n_users() {
            return Err(CoreError::IndexOutOfRange {
                what: "user",
                index: user,
                len: self.n_users(),
            });
        }
        let (f, w) = self.user_features.row(user);
        Ok(self.combine(
            &self.user_embeddings,
            f.iter().copied().zip(w.iter().copied()),
        ))
    }

    /// The representation of a user not seen in training, from a feature row of the training
    /// vocabulary (`(feature, weight)` pairs). Cold start.
    pub fn user_representation_from_features(
        &self,
        row: &[(usize, f32)],
    ) -> Result<Representation> {
        check_row(row, self.user_features.n_features(), "user feature")?;
        Ok(self.combine(&self.user_embeddings, row.iter().copied()))
    }

    /// The representation of an item not seen in training, from a feature row. Cold start.
    pub fn item_representation_from_features(
        &self,
        row: &[(usize, f32)],
    ) -> Result<Representation> {
        check_row(row, self.item_features.n_features(), "item feature")?;
        Ok(self.combine(&self.item_embeddings, row.iter().copied()))
    }

    fn combine(&self, emb: &[f32], row: impl Iterator<Item = (usize, f32)>) -> Representation {
        let (k, s) = (self.no_components(), self.stride);
        let mut v = Array1::<f32>::zeros(k);
        for (f, w) in row {
            for (d, e) in v.iter_mut().zip(&emb[f * s..f * s + k]) {
                *d += w * e;
            }
        }
        Representation {
            vector: v,
            bias: 0.0,
        }
    }

    /// All item representations, computed once and cached (bias 0).
    pub fn item_representations(&self) -> &ItemRepresentations {
        self.item_cache.get_or_init(|| {
            let reps = represent(&self.item_features, &self.item_embeddings, self.stride);
            let vectors = unpad(&reps, self.stride, self.no_components());
            let n = vectors.nrows();
            ItemRepresentations::new(vectors, Array1::zeros(n)).expect("consistent shapes")
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

    /// Item cold start: as [`HybridModel::refit_cold_start`](crate::HybridModel::refit_cold_start)
    /// for the item embeddings (ALS has no biases): the metadata embeddings become the ridge
    /// regression of the warm items' representations on their metadata rows, warm items
    /// keep their representations, and items without a training interaction in `train`
    /// are represented by the prediction from their metadata.
    pub fn refit_cold_start(
        &mut self,
        train: &Interactions,
        options: &ColdStartRefit,
    ) -> Result<ColdStartReport> {
        let counts = crate::coldstart::item_counts(train, self.n_items())?;
        let k = self.no_components();
        // The embeddings are only written once the solve has succeeded.
        let report = crate::coldstart::refit_table(
            &self.item_features,
            &counts,
            &mut self.item_embeddings,
            self.stride,
            k,
            options,
        )?;
        self.item_cache = OnceLock::new();
        self.item_gram = OnceLock::new();
        Ok(report)
    }

    /// Fold-in: the representation of a new user from `(item, weight)` interactions and an
    /// optional feature row, by one exact least-squares solve against the fixed items —
    /// the user half-step of ALS for one row:
    ///
    /// ```text
    ///   x = argmin Σ_i c_i (p_i − x·y_i)² + λ‖x − x₀‖²
    /// ```
    ///
    /// with `c_i = 1 + α·w_i`, `p_i = 1` for the given items (repeated items' weights are
    /// summed) and `c_i = 1, p_i = 0` for all others; `x₀` is the representation of the
    /// feature row (zero without one), so a user with attributes and few interactions is
    /// shrunk towards what the attributes say, and with no interactions gets exactly `x₀`.
    /// Costs `O(n·k² + k³)` for `n` interactions (the Gram matrix of the items is cached).
    pub fn fold_in(
        &self,
        items: &[(usize, f32)],
        features: Option<&[(usize, f32)]>,
    ) -> Result<Representation> {
        let k = self.no_components();
        let x0 = match features {
            Some(row) => self.user_representation_from_features(row)?.vector,
            None => Array1::zeros(k),
        };
        if items.is_empty() {
            if features.is_none() {
                return Err(CoreError::Empty(
                    "fold-in needs at least one item or a feature row",
                ));
            }
            return Ok(Representation {
                vector: x0,
                bias: 0.0,
            });
        }
        let n_items = self.n_items();
        let mut merged: Vec<(usize, f32)> = Vec::with_capacity(items.len());
        for (position, &(i, w)) in items.iter().enumerate() {
            if i >= n_items {
                return Err(CoreError::IndexOutOfRange {
                    what: "item",
                    index: i,
                    len: n_items,
                });
            }
            if !w.is_finite() {
                return Err(CoreError::NonFinite {
                    what: "fold-in weight",
                    position,
                    value: w.to_string(),
                });
            }
            if w < 0.0 {
                return Err(CoreError::Negative {
                    what: "fold-in weight",
                    position,
                    value: w.to_string(),
                });
            }
            merged.push((i, w));
        }
        crate::matrix::canonical_row(&mut merged);
        let reps = self.item_representations().vectors();
        let gram = self.item_gram.get_or_init(|| {
            let q = reps.mapv(f64::from);
            q.t().dot(&q)
        });
        let (alpha, lambda) = (
            f64::from(self.params.alpha),
            f64::from(self.params.regularization),
        );
        let mut a = gram.clone();
        let mut b = x0.mapv(|v| lambda * f64::from(v));
        for d in 0..k {
            a[[d, d]] += lambda;
        }
        for &(i, w) in &merged {
            let y = reps.row(i);
            let extra = alpha * f64::from(w);
            for r in 0..k {
                let yr = f64::from(y[r]);
                b[r] += (1.0 + extra) * yr;
                for c in 0..k {
                    a[[r, c]] += extra * yr * f64::from(y[c]);
                }
            }
        }
        let x = solve_spd(a, b, "ALS least squares")?;
        Ok(Representation {
            vector: x.mapv(|v| v as f32),
            bias: 0.0,
        })
    }
}

impl Factorised for AlsModel {
    const NAME: &'static str = "the ALS model needs a user (id, features or representation)";

    fn no_components(&self) -> usize {
        AlsModel::no_components(self)
    }

    fn item_representations(&self) -> &ItemRepresentations {
        AlsModel::item_representations(self)
    }

    fn user_representation(&self, user: usize) -> Result<Representation> {
        AlsModel::user_representation(self, user)
    }

    fn user_representation_from_features(&self, row: &[(usize, f32)]) -> Result<Representation> {
        AlsModel::user_representation_from_features(self, row)
    }

    fn item_representation_from_features(&self, row: &[(usize, f32)]) -> Result<Representation> {
        AlsModel::item_representation_from_features(self, row)
    }
}

crate::scorer::factorised_scorer!(AlsModel);

fn check_row(row: &[(usize, f32)], n: usize, what: &'static str) -> Result<()> {
    for (position, &(f, w)) in row.iter().enumerate() {
        if f >= n {
            return Err(CoreError::IndexOutOfRange {
                what,
                index: f,
                len: n,
            });
        }
        if !w.is_finite() {
            return Err(CoreError::NonFinite {
                what,
                position,
                value: w.to_string(),
            });
        }
    }
    Ok(())
}

/// `n × k` from padded rows of width `stride`.
fn unpad(v: &[f32], stride: usize, k: usize) -> Array2<f32> {
    let n = v.len() / stride;
    Array2::from_shape_fn((n, k), |(r, c)| v[r * stride + c])
}

/// The representations `A E` (padded rows), in parallel over rows.
fn represent(a: &FeatureMatrix, emb: &[f32], s: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; a.n_rows() * s];
    out.par_chunks_mut(s)
        .enumerate()
        .with_min_len(256)
        .for_each(|(r, dst)| {
            let (f, w) = a.row(r);
            for (&f, &w) in f.iter().zip(w) {
                axpy(w, &emb[f * s..(f + 1) * s], dst);
            }
        });
    out
}

// ------------------------------------------------------------------ training internals

/// The interactions of one side's rows (users, or items for the transposed side):
/// CSR column indices with `c − 1` and `c·p` per entry.
struct RowData {
    indptr: Vec<usize>,
    cols: Vec<u32>,
    /// `c − 1 = α·w`.
    cm1: Vec<f32>,
    /// `c·p`: the confidence for a positive, 0 for a negative.
    cp: Vec<f32>,
}

impl RowData {
    fn entry(alpha: f32, value: f32, weight: f32) -> (f32, f32) {
        let cm1 = alpha * weight;
        let cp = if value > 0.0 { 1.0 + cm1 } else { 0.0 };
        (cm1, cp)
    }

    fn by_user(x: &Interactions, alpha: f32) -> Self {
        let mut indptr = Vec::with_capacity(x.n_users() + 1);
        indptr.push(0);
        for u in 0..x.n_users() {
            indptr.push(indptr[u] + x.user_items(u).len());
        }
        let (cm1, cp) = x
            .values_raw()
            .iter()
            .zip(x.weights_raw())
            .map(|(&v, &w)| Self::entry(alpha, v, w))
            .unzip();
        RowData {
            indptr,
            cols: x.items_raw().to_vec(),
            cm1,
            cp,
        }
    }

    /// The transpose (items as rows), users in ascending order within an item.
    fn by_item(x: &Interactions, alpha: f32) -> Self {
        let n = x.n_items();
        let mut indptr = vec![0usize; n + 1];
        for &i in x.items_raw() {
            indptr[i as usize + 1] += 1;
        }
        for i in 0..n {
            indptr[i + 1] += indptr[i];
        }
        let mut next = indptr.clone();
        let len = x.len();
        let (mut cols, mut cm1, mut cp) = (vec![0u32; len], vec![0.0f32; len], vec![0.0f32; len]);
        for k in 0..len {
            let e = x.entry(k);
            let slot = &mut next[e.item];
            let (a, b) = Self::entry(alpha, e.value, e.weight);
            cols[*slot] = e.user as u32;
            cm1[*slot] = a;
            cp[*slot] = b;
            *slot += 1;
        }
        RowData {
            indptr,
            cols,
            cm1,
            cp,
        }
    }

    fn n_rows(&self) -> usize {
        self.indptr.len() - 1
    }

    #[inline]
    fn row(&self, r: usize) -> (&[u32], &[f32], &[f32]) {
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        (&self.cols[a..b], &self.cm1[a..b], &self.cp[a..b])
    }
}

/// A side's feature structure: the identity (representations are the embeddings) or a
/// general matrix with its transpose (features × rows), for the scatter of the normal
/// equations.
enum SideShape {
    Identity,
    Features {
        indptr: Vec<usize>,
        rows: Vec<u32>,
        weights: Vec<f32>,
    },
}

impl SideShape {
    fn of(a: &FeatureMatrix) -> Self {
        if a.is_identity() {
            return SideShape::Identity;
        }
        let nf = a.n_features();
        let mut indptr = vec![0usize; nf + 1];
        for r in 0..a.n_rows() {
            for &f in a.row(r).0 {
                indptr[f + 1] += 1;
            }
        }
        for f in 0..nf {
            indptr[f + 1] += indptr[f];
        }
        let mut next = indptr.clone();
        let nnz = indptr[nf];
        let (mut rows, mut weights) = (vec![0u32; nnz], vec![0.0f32; nnz]);
        for r in 0..a.n_rows() {
            let (f, w) = a.row(r);
            for (&f, &w) in f.iter().zip(w) {
                rows[next[f]] = r as u32;
                weights[next[f]] = w;
                next[f] += 1;
            }
        }
        SideShape::Features {
            indptr,
            rows,
            weights,
        }
    }

    fn represent(&self, a: &FeatureMatrix, emb: &[f32], s: usize) -> Option<Vec<f32>> {
        match self {
            SideShape::Identity => None,
            SideShape::Features { .. } => Some(represent(a, emb, s)),
        }
    }
}

/// `Σ_r y_r y_rᵀ` over padded rows (`s × s`, zero outside the leading `k × k`), in f64:
/// blocks of rows summed in f32 in parallel, the block sums added in order, so the result
/// does not depend on the number of threads.
fn gram_matrix(y: &[f32], s: usize, k: usize) -> Vec<f64> {
    const BLOCK: usize = 512;
    let partial: Vec<Vec<f32>> = y
        .par_chunks(BLOCK * s)
        .map(|block| {
            let mut g = vec![0.0f32; s * s];
            gram_block_simd(block, s, k, &mut g);
            g
        })
        .collect();
    let mut total = vec![0.0f64; s * s];
    for g in &partial {
        for (t, v) in total.iter_mut().zip(g) {
            *t += f64::from(*v);
        }
    }
    total
}

#[inline(always)]
fn gram_block(block: &[f32], s: usize, k: usize, g: &mut [f32]) {
    for y in block.chunks_exact(s) {
        for r in 0..k {
            let yr = y[r];
            if yr != 0.0 {
                axpy(yr, y, &mut g[r * s..(r + 1) * s]);
            }
        }
    }
}

/// Defines `$name(args)`: calls `$inner(args)` compiled for AVX2 + FMA when the CPU has
/// them (`$inner` is `#[inline(always)]`, so it is compiled into the `target_feature`
/// function), else the baseline build of `$inner`. Only one of the two runs on a machine.
macro_rules! simd_dispatch {
    ($(#[$m:meta])* fn $name:ident => $inner:ident ( $($arg:ident : $ty:ty),* $(,)? );) => {
        $(#[$m])*
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide($($arg: $ty),*) {
                    $inner($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU supports the features `wide` is compiled for.
                    unsafe { wide($($arg),*) };
                    return;
                }
            }
            $inner($($arg),*)
        }
    };
}

simd_dispatch! {
    fn gram_block_simd => gram_block(block: &[f32], s: usize, k: usize, g: &mut [f32]);
}

simd_dispatch! {
    #[allow(clippy::too_many_arguments)]
    fn cg_row_simd => cg_row(
        x: &mut [f32],
        gl: &[f32],
        s: usize,
        k: usize,
        cols: &[u32],
        cm1: &[f32],
        cp: &[f32],
        y: &[f32],
        steps: usize,
        sc: &mut Scratch,
    );
}

simd_dispatch! {
    #[allow(clippy::too_many_arguments)]
    fn rhs_row_simd => rhs_row(
        g: &[f32],
        s: usize,
        k: usize,
        cols: &[u32],
        cm1: &[f32],
        cp: &[f32],
        y: &[f32],
        b: &mut [f32],
        d: &mut [f32],
    );
}

simd_dispatch! {
    #[allow(clippy::too_many_arguments)]
    fn operator_row_simd => operator_row(
        features: (&[usize], &[f32]),
        d: &[f32],
        g: &[f32],
        s: usize,
        k: usize,
        cols: &[u32],
        cm1: &[f32],
        y: &[f32],
        du: &mut [f32],
        v: &mut [f32],
    );
}

simd_dispatch! {
    fn scatter_simd => scatter(
        rows: &[u32],
        weights: &[f32],
        square: bool,
        from: &[f32],
        s: usize,
        out: &mut [f32],
    );
}

/// `b = Σ c·p y_i` and `d = diag(G + Σ (c−1) y_i y_iᵀ)` of one row.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn rhs_row(
    g: &[f32],
    s: usize,
    k: usize,
    cols: &[u32],
    cm1: &[f32],
    cp: &[f32],
    y: &[f32],
    b: &mut [f32],
    d: &mut [f32],
) {
    for c in 0..k {
        d[c] = g[c * s + c];
    }
    for ((&i, &w), &v) in cols.iter().zip(cm1).zip(cp) {
        let yi = &y[i as usize * s..(i as usize + 1) * s];
        if v != 0.0 {
            axpy(v, yi, b);
        }
        if w != 0.0 {
            for c in 0..k {
                d[c] += w * yi[c] * yi[c];
            }
        }
    }
}

/// `v = M_u d_u` with `d_u = Σ_f a_uf D_f` for one row (`du` is scratch).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn operator_row(
    features: (&[usize], &[f32]),
    d: &[f32],
    g: &[f32],
    s: usize,
    k: usize,
    cols: &[u32],
    cm1: &[f32],
    y: &[f32],
    du: &mut [f32],
    v: &mut [f32],
) {
    du.fill(0.0);
    for (&f, &w) in features.0.iter().zip(features.1) {
        axpy(w, &d[f * s..(f + 1) * s], du);
    }
    symv(g, s, k, du, v);
    for (&i, &c) in cols.iter().zip(cm1) {
        if c != 0.0 {
            let yi = &y[i as usize * s..(i as usize + 1) * s];
            axpy(c * dot(yi, du), yi, v);
        }
    }
}

/// `out += Σ_j w_j from[rows_j]` (or `w_j²` when `square`).
#[inline(always)]
fn scatter(rows: &[u32], weights: &[f32], square: bool, from: &[f32], s: usize, out: &mut [f32]) {
    for (&r, &w) in rows.iter().zip(weights) {
        let r = r as usize;
        axpy(
            if square { w * w } else { w },
            &from[r * s..(r + 1) * s],
            out,
        );
    }
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

#[inline(always)]
fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yc, xc) in y.chunks_exact_mut(8).zip(x.chunks_exact(8)) {
        for j in 0..8 {
            yc[j] += a * xc[j];
        }
    }
}

/// `out = g x` for the padded symmetric `s × s` matrix `g` (only the first `k` columns
/// can be non-zero).
#[inline(always)]
fn symv(g: &[f32], s: usize, k: usize, x: &[f32], out: &mut [f32]) {
    // One block of 8 outputs at a time, accumulated in registers.
    for (j, o) in out.chunks_exact_mut(8).enumerate() {
        let mut acc = [0.0f32; 8];
        for (c, &xc) in x[..k].iter().enumerate() {
            let gr = &g[c * s + j * 8..c * s + j * 8 + 8];
            for l in 0..8 {
                acc[l] += xc * gr[l];
            }
        }
        o.copy_from_slice(&acc);
    }
}

struct SolveContext<'a> {
    params: &'a AlsParams,
    stride: usize,
}

/// Per-thread scratch of the row solvers.
struct Scratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
}

impl Scratch {
    fn new(s: usize) -> Self {
        Scratch {
            r: vec![0.0; s],
            p: vec![0.0; s],
            ap: vec![0.0; s],
        }
    }
}

impl SolveContext<'_> {
    /// Updates one side's embeddings (and, for a side with features, its representations)
    /// with the other side's representations `y` and their Gram matrix fixed.
    #[allow(clippy::too_many_arguments)]
    fn solve_side(
        &self,
        a: &FeatureMatrix,
        shape: &SideShape,
        emb: &mut [f32],
        reps: &mut Option<Vec<f32>>,
        rows: &RowData,
        y: &[f32],
        gram: &[f64],
    ) -> Result<()> {
        match shape {
            SideShape::Identity => self.solve_rows(emb, rows, y, gram),
            SideShape::Features {
                indptr,
                rows: frows,
                weights,
            } => {
                let t = Transposed {
                    indptr,
                    rows: frows,
                    weights,
                };
                self.solve_features(a, &t, emb, rows, y, gram);
                *reps = Some(represent(a, emb, self.stride));
                Ok(())
            }
        }
    }

    /// Identity side: every row's system on its own, in parallel.
    fn solve_rows(&self, x: &mut [f32], rows: &RowData, y: &[f32], gram: &[f64]) -> Result<()> {
        let (s, k) = (self.stride, self.params.no_components);
        let lambda = self.params.regularization;
        match self.params.solver {
            AlsSolver::ConjugateGradient { steps } => {
                // G + λI in f32.
                let mut gl: Vec<f32> = gram.iter().map(|&v| v as f32).collect();
                for d in 0..k {
                    gl[d * s + d] += lambda;
                }
                x.par_chunks_mut(s)
                    .enumerate()
                    .with_min_len(64)
                    .for_each_init(
                        || Scratch::new(s),
                        |sc, (r, xr)| {
                            let (cols, cm1, cp) = rows.row(r);
                            cg_row_simd(xr, &gl, s, k, cols, cm1, cp, y, steps, sc);
                        },
                    );
                Ok(())
            }
            AlsSolver::Cholesky => x
                .par_chunks_mut(s)
                .enumerate()
                .with_min_len(16)
                .try_for_each(|(r, xr)| {
                    let (cols, cm1, cp) = rows.row(r);
                    exact_row(xr, gram, s, k, f64::from(lambda), cols, cm1, cp, y)
                }),
        }
    }

    /// A side with features: preconditioned CG on the normal equations of the embeddings,
    /// `Σ_u a_u (M_u Eᵀ a_u)ᵀ + λE = Σ_u a_u b_uᵀ`, matrix-free; `M_u = G + Σ_{i∈I_u} (c−1)
    /// y_i y_iᵀ`, `b_u = Σ_{i∈I_u} c·p y_i`; Jacobi preconditioner (the exact diagonal).
    fn solve_features(
        &self,
        a: &FeatureMatrix,
        t: &Transposed<'_>,
        emb: &mut [f32],
        rows: &RowData,
        y: &[f32],
        gram: &[f64],
    ) {
        let (s, k) = (self.stride, self.params.no_components);
        let lambda = self.params.regularization;
        let g: Vec<f32> = gram.iter().map(|&v| v as f32).collect();
        let n_rows = rows.n_rows();
        // Per row: b_u and diag(M_u).
        let mut b_rows = vec![0.0f32; n_rows * s];
        let mut d_rows = vec![0.0f32; n_rows * s];
        b_rows
            .par_chunks_mut(s)
            .zip(d_rows.par_chunks_mut(s))
            .enumerate()
            .with_min_len(64)
            .for_each(|(r, (b, d))| {
                let (cols, cm1, cp) = rows.row(r);
                rhs_row_simd(&g, s, k, cols, cm1, cp, y, b, d);
            });
        let nf = t.indptr.len() - 1;
        let mut rhs = vec![0.0f32; nf * s];
        let mut precond = vec![0.0f32; nf * s];
        rhs.par_chunks_mut(s)
            .zip(precond.par_chunks_mut(s))
            .enumerate()
            .with_min_len(64)
            .for_each(|(f, (bf, pf))| {
                let (rows, weights) = t.rows_of(f);
                scatter_simd(rows, weights, false, &b_rows, s, bf);
                scatter_simd(rows, weights, true, &d_rows, s, pf);
                for c in 0..s {
                    pf[c] = if c < k { 1.0 / (pf[c] + lambda) } else { 0.0 };
                }
            });
        drop(b_rows);
        let op = FeatureOperator {
            a,
            t,
            rows,
            y,
            g: &g,
            s,
            k,
            lambda,
        };
        let mut v_rows = d_rows; // reused as the per-row buffer of the operator
                                 // r = rhs − H e; z = P r; p = z.
        let mut q = vec![0.0f32; nf * s];
        op.apply(emb, &mut v_rows, &mut q);
        let mut r: Vec<f32> = rhs.iter().zip(&q).map(|(b, h)| b - h).collect();
        let mut z: Vec<f32> = r.iter().zip(&precond).map(|(r, p)| r * p).collect();
        let mut p = z.clone();
        let mut rz = par_dot(&r, &z);
        for _ in 0..self.params.feature_cg_steps {
            // Converged (or NaN: stop rather than spread it).
            if rz.is_nan() || rz <= 1e-30 {
                break;
            }
            op.apply(&p, &mut v_rows, &mut q);
            let pq = par_dot(&p, &q);
            if pq.is_nan() || pq <= 0.0 {
                break;
            }
            let step = (rz / pq) as f32;
            emb.par_chunks_mut(4096)
                .zip(p.par_chunks(4096))
                .for_each(|(e, p)| e.iter_mut().zip(p).for_each(|(e, p)| *e += step * p));
            r.par_chunks_mut(4096)
                .zip(q.par_chunks(4096))
                .for_each(|(r, q)| r.iter_mut().zip(q).for_each(|(r, q)| *r -= step * q));
            z.par_chunks_mut(4096)
                .zip(r.par_chunks(4096).zip(precond.par_chunks(4096)))
                .for_each(|(z, (r, m))| {
                    z.iter_mut()
                        .zip(r.iter().zip(m))
                        .for_each(|(z, (r, m))| *z = r * m)
                });
            let rz_new = par_dot(&r, &z);
            let beta = (rz_new / rz) as f32;
            p.par_chunks_mut(4096)
                .zip(z.par_chunks(4096))
                .for_each(|(p, z)| p.iter_mut().zip(z).for_each(|(p, z)| *p = z + beta * *p));
            rz = rz_new;
        }
    }
}

/// The transpose of a feature matrix (features × rows).
struct Transposed<'a> {
    indptr: &'a [usize],
    rows: &'a [u32],
    weights: &'a [f32],
}

impl Transposed<'_> {
    fn rows_of(&self, f: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.indptr[f], self.indptr[f + 1]);
        (&self.rows[a..b], &self.weights[a..b])
    }
}

/// The Hessian (up to a factor 2) of the objective in the embeddings of a side with
/// features: `D ↦ Σ_u a_u (M_u Dᵀ a_u)ᵀ + λD`.
struct FeatureOperator<'a> {
    a: &'a FeatureMatrix,
    t: &'a Transposed<'a>,
    rows: &'a RowData,
    y: &'a [f32],
    g: &'a [f32],
    s: usize,
    k: usize,
    lambda: f32,
}

impl FeatureOperator<'_> {
    fn apply(&self, d: &[f32], v_rows: &mut [f32], out: &mut [f32]) {
        let (s, k) = (self.s, self.k);
        v_rows
            .par_chunks_mut(s)
            .enumerate()
            .with_min_len(64)
            .for_each_init(
                || vec![0.0f32; s],
                |du, (r, v)| {
                    let (cols, cm1, _) = self.rows.row(r);
                    operator_row_simd(self.a.row(r), d, self.g, s, k, cols, cm1, self.y, du, v);
                },
            );
        let v_rows = &*v_rows;
        out.par_chunks_mut(s)
            .enumerate()
            .with_min_len(64)
            .for_each(|(f, o)| {
                o.fill(0.0);
                let (rows, weights) = self.t.rows_of(f);
                scatter_simd(rows, weights, false, v_rows, s, o);
                axpy(self.lambda, &d[f * s..(f + 1) * s], o);
            });
    }
}

/// `Σ a_i b_i` in f64 over fixed blocks summed in order (independent of the thread count).
fn par_dot(a: &[f32], b: &[f32]) -> f64 {
    let parts: Vec<f64> = a
        .par_chunks(4096)
        .zip(b.par_chunks(4096))
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(p, q)| f64::from(*p) * f64::from(*q))
                .sum::<f64>()
        })
        .collect();
    parts.iter().sum()
}

/// `steps` CG steps on row `x`'s system `(G + λI + Σ (c−1) y yᵀ) x = Σ c·p y`, warm-started
/// from `x`; `gl` is `G + λI`. A row without interactions is set to zero (its minimiser).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn cg_row(
    x: &mut [f32],
    gl: &[f32],
    s: usize,
    k: usize,
    cols: &[u32],
    cm1: &[f32],
    cp: &[f32],
    y: &[f32],
    steps: usize,
    sc: &mut Scratch,
) {
    if cols.is_empty() {
        x.fill(0.0);
        return;
    }
    let Scratch { r, p, ap } = sc;
    // r = b − A x
    symv(gl, s, k, x, ap);
    r.fill(0.0);
    for ((&i, &c), &v) in cols.iter().zip(cm1).zip(cp) {
        let yi = &y[i as usize * s..(i as usize + 1) * s];
        let coef = if c != 0.0 { v - c * dot(yi, x) } else { v };
        if coef != 0.0 {
            axpy(coef, yi, r);
        }
    }
    for (rc, a) in r.iter_mut().zip(ap.iter()) {
        *rc -= a;
    }
    p.copy_from_slice(r);
    let mut rs_old = dot(r, r);
    if rs_old < 1e-20 {
        return;
    }
    for _ in 0..steps {
        symv(gl, s, k, p, ap);
        for (&i, &c) in cols.iter().zip(cm1) {
            if c != 0.0 {
                let yi = &y[i as usize * s..(i as usize + 1) * s];
                axpy(c * dot(yi, p), yi, ap);
            }
        }
        let step = rs_old / dot(p, ap);
        axpy(step, p, x);
        axpy(-step, ap, r);
        let rs_new = dot(r, r);
        if rs_new < 1e-20 {
            break;
        }
        let beta = rs_new / rs_old;
        for (pc, rc) in p.iter_mut().zip(r.iter()) {
            *pc = rc + beta * *pc;
        }
        rs_old = rs_new;
    }
}

/// The exact solution of one row's system, assembled and solved in f64.
#[allow(clippy::too_many_arguments)]
fn exact_row(
    x: &mut [f32],
    gram: &[f64],
    s: usize,
    k: usize,
    lambda: f64,
    cols: &[u32],
    cm1: &[f32],
    cp: &[f32],
    y: &[f32],
) -> Result<()> {
    if cols.is_empty() {
        x.fill(0.0);
        return Ok(());
    }
    let mut a = Array2::from_shape_fn((k, k), |(r, c)| gram[r * s + c]);
    for d in 0..k {
        a[[d, d]] += lambda;
    }
    let mut b = Array1::<f64>::zeros(k);
    for ((&i, &c), &v) in cols.iter().zip(cm1).zip(cp) {
        let yi = &y[i as usize * s..i as usize * s + k];
        let (c, v) = (f64::from(c), f64::from(v));
        for r in 0..k {
            let yr = f64::from(yi[r]);
            b[r] += v * yr;
            if c != 0.0 {
                for q in 0..k {
                    a[[r, q]] += c * yr * f64::from(yi[q]);
                }
            }
        }
    }
    let sol = solve_spd(a, b, "ALS least squares")?;
    for (d, v) in x.iter_mut().zip(sol.iter()) {
        *d = *v as f32;
    }
    Ok(())
}

/// The objective in f64: `Σ_u [x_uᵀ G x_u + Σ_{i∈I_u} ((c−1) s² − 2 c p s + c p²)] + λ‖E‖²`
/// with `s = x_u·y_i` and `G` the Gram matrix of the item representations.
fn objective(
    by_user: &RowData,
    users: &[f32],
    items: &[f32],
    user_emb: &[f32],
    item_emb: &[f32],
    s: usize,
    params: &AlsParams,
) -> f64 {
    let k = params.no_components;
    let g = gram_matrix(items, s, k);
    let parts: Vec<f64> = (0..by_user.n_rows())
        .into_par_iter()
        .with_min_len(256)
        .map(|u| {
            let x = &users[u * s..(u + 1) * s];
            let mut total = 0.0f64;
            for r in 0..k {
                let mut gx = 0.0f64;
                for c in 0..k {
                    gx += g[r * s + c] * f64::from(x[c]);
                }
                total += f64::from(x[r]) * gx;
            }
            let (cols, cm1, cp) = by_user.row(u);
            for ((&i, &c), &v) in cols.iter().zip(cm1).zip(cp) {
                let yi = &items[i as usize * s..(i as usize + 1) * s];
                let sc: f64 = x[..k]
                    .iter()
                    .zip(&yi[..k])
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                let (c, v) = (f64::from(c), f64::from(v));
                // c p² = c p for p ∈ {0, 1}.
                total += c * sc * sc - 2.0 * v * sc + v;
            }
            total
        })
        .collect();
    let norm: f64 = user_emb
        .iter()
        .chain(item_emb)
        .map(|v| f64::from(*v) * f64::from(*v))
        .sum();
    parts.iter().sum::<f64>() + f64::from(params.regularization) * norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_named() {
        for (b, name) in [
            (AlsParams::builder().no_components(0), "no_components"),
            (AlsParams::builder().alpha(-1.0), "alpha"),
            (AlsParams::builder().alpha(f32::NAN), "alpha"),
            (AlsParams::builder().regularization(0.0), "regularization"),
            (AlsParams::builder().cg_steps(0), "cg_steps"),
            (AlsParams::builder().feature_cg_steps(0), "feature_cg_steps"),
            (AlsParams::builder().init_scale(-0.1), "init_scale"),
        ] {
            let e = b.build().unwrap_err();
            assert!(
                matches!(e, CoreError::InvalidHyperparameter { name: n, .. } if n == name),
                "{e}"
            );
        }
        assert!(AlsParams::builder()
            .solver(AlsSolver::Cholesky)
            .build()
            .is_ok());
    }

    #[test]
    fn transpose_keeps_users_ascending_and_values() {
        let x = Interactions::from_entries(
            3,
            2,
            vec![
                crate::Interaction {
                    user: 2,
                    item: 0,
                    value: 1.0,
                    weight: 3.0,
                },
                crate::Interaction::positive(0, 0),
                crate::Interaction {
                    user: 1,
                    item: 1,
                    value: -1.0,
                    weight: 1.0,
                },
            ],
        )
        .unwrap();
        let t = RowData::by_item(&x, 2.0);
        assert_eq!(
            t.row(0),
            (&[0u32, 2][..], &[2.0f32, 6.0][..], &[3.0f32, 7.0][..])
        );
        // A negative: confidence 1 + α·w, preference 0.
        assert_eq!(t.row(1), (&[1u32][..], &[2.0f32][..], &[0.0f32][..]));
    }

    #[test]
    fn gram_matches_naive_and_ignores_block_boundaries() {
        let (s, k) = (8, 5);
        let n = 1300;
        let mut rng = Rng::new(3);
        let mut y = vec![0.0f32; n * s];
        for row in y.chunks_exact_mut(s) {
            for v in &mut row[..k] {
                *v = rng.next_f64() as f32 - 0.5;
            }
        }
        let g = gram_matrix(&y, s, k);
        for r in 0..s {
            for c in 0..s {
                let naive: f64 = y
                    .chunks_exact(s)
                    .map(|row| f64::from(row[r]) * f64::from(row[c]))
                    .sum();
                assert!((g[r * s + c] - naive).abs() < 1e-3, "{r},{c}");
            }
        }
    }
}
