//! Fold-in: a representation for a new user from a handful of interactions, without
//! retraining (LightFM cannot do this).

// Index loops over latent components read more clearly than zipped iterators here.
#![allow(clippy::needless_range_loop)]

use ndarray::{Array1, Array2};

use crate::error::{CoreError, Result};
use crate::interactions::Interactions;
use crate::repr::Representation;
use crate::scorer::{Scorer, UserQuery};

/// Fold-in settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoldInOptions {
    /// Extra confidence of an observed interaction (`c = 1 + alpha`).
    pub alpha: f32,
    /// L2 regularisation of the user vector.
    pub lambda: f32,
}

impl Default for FoldInOptions {
    fn default() -> Self {
        FoldInOptions {
            alpha: 40.0,
            lambda: 1.0,
        }
    }
}

/// Precomputed state for folding in new users against a trained model.
///
/// With the item representations `q_i` and biases `b_i` fixed, the new user's vector `u`
/// solves the implicit-feedback least-squares problem of iALS (Hu, Koren & Volinsky 2008):
///
/// ```text
///   minimise  Σ_i c_i (p_i − (u·q_i + b_i))² + λ‖u‖²
/// ```
///
/// over **all** items, with target `p_i = s_pos` and confidence `c_i = 1 + α` for the user's
/// items and `p_i = s_neg`, `c_i = 1` for the rest. `s_pos` and `s_neg` are the mean scores
/// the trained model gives to training positives and to all items, so the folded-in user
/// lives on the same scale as trained users. Thanks to the Gram trick (precomputed
/// `Σ q_i q_iᵀ`, `Σ q_i`, `Σ b_i q_i`) a fold-in costs `O(n_pos·k² + k³)`. The `k × k`
/// system is symmetric positive definite (`λ > 0`); with the `lapack` feature (on by
/// default) it is solved by LAPACK through `ndarray-linalg`, without it by the crate's own
/// Cholesky factorisation, so the crate can be built with nothing but cargo.
#[derive(Debug, Clone)]
pub struct FoldIn {
    k: usize,
    n_items: usize,
    options: FoldInOptions,
    gram: Array2<f64>,
    sum_q: Array1<f64>,
    sum_bq: Array1<f64>,
    s_pos: f64,
    s_neg: f64,
    item_vectors: Array2<f32>,
    item_biases: Array1<f32>,
}

impl FoldIn {
    /// Prepares fold-in for `model` (a factorisation model of either family, or a [`Model`]:
    /// any [`Scorer`] that exposes its representations); `train` (the model's training
    /// interactions) calibrates the target scores.
    ///
    /// [`Model`]: crate::Model
    pub fn new<S: Scorer + ?Sized>(
        model: &S,
        train: &Interactions,
        options: FoldInOptions,
    ) -> Result<Self> {
        if !(options.alpha.is_finite() && options.alpha >= 0.0) {
            return Err(CoreError::InvalidHyperparameter {
                name: "alpha",
                value: options.alpha.to_string(),
                reason: "must be finite and >= 0",
            });
        }
        if !(options.lambda.is_finite() && options.lambda > 0.0) {
            return Err(CoreError::InvalidHyperparameter {
                name: "lambda",
                value: options.lambda.to_string(),
                reason: "must be finite and > 0",
            });
        }
        if train.is_empty() {
            return Err(CoreError::Empty("fold-in needs the training interactions"));
        }
        let reps = model.item_representations().ok_or(CoreError::Empty(
            "fold-in needs a model with item representations",
        ))?;
        let q = reps.vectors().mapv(f64::from);
        let b = reps.biases().mapv(f64::from);
        let gram = q.t().dot(&q);
        let sum_q = q.sum_axis(ndarray::Axis(0));
        let sum_bq = q.t().dot(&b);
        // Calibrate on up to 256 users spread over the index range.
        let n_users = train.n_users();
        let step = (n_users / 256).max(1);
        let (mut pos_sum, mut pos_n, mut all_sum, mut all_n) = (0.0f64, 0usize, 0.0f64, 0usize);
        let mut scores = Vec::new();
        for u in (0..n_users).step_by(step) {
            if train.user_items(u).is_empty() {
                continue;
            }
            let r = model
                .representation(UserQuery::Known(u))?
                .ok_or(CoreError::Empty(
                    "fold-in needs a model with user representations",
                ))?;
            // Exclude the user's own bias: the folded-in user has none.
            let r = Representation { bias: 0.0, ..r };
            reps.score_all(&r, &mut scores);
            all_sum += scores.iter().map(|&s| s as f64).sum::<f64>();
            all_n += scores.len();
            for &i in train.user_items(u) {
                pos_sum += scores[i as usize] as f64;
                pos_n += 1;
            }
        }
        if pos_n == 0 {
            return Err(CoreError::Empty(
                "fold-in found no trained user with interactions",
            ));
        }
        Ok(FoldIn {
            k: reps.vectors().ncols(),
            n_items: model.n_items(),
            options,
            gram,
            sum_q,
            sum_bq,
            s_pos: pos_sum / pos_n as f64,
            s_neg: all_sum / all_n as f64,
            item_vectors: reps.vectors().to_owned(),
            item_biases: reps.biases().to_owned(),
        })
    }

    /// The representation of a new user who interacted with `items` (bias 0).
    pub fn fold_in(&self, items: &[usize]) -> Result<Representation> {
        self.solve(items, None)
    }

    /// The representation of a new user who interacted with `items`, regularised towards
    /// `prior` instead of towards zero (e.g. the representation the model gives the
    /// user's attributes): minimises `Σ_i c_i (p_i − (u·q_i + b_i))² + λ‖u − prior‖²`.
    /// With few items the prior weighs more; the bias is the prior's. Fails when `prior`
    /// has another number of components than the model.
    pub fn fold_in_with_prior(
        &self,
        items: &[usize],
        prior: &Representation,
    ) -> Result<Representation> {
        if prior.vector.len() != self.k {
            return Err(CoreError::IndexOutOfRange {
                what: "prior components",
                index: prior.vector.len(),
                len: self.k,
            });
        }
        let mut folded = self.solve(items, Some(prior))?;
        folded.bias = prior.bias;
        Ok(folded)
    }

    fn solve(&self, items: &[usize], prior: Option<&Representation>) -> Result<Representation> {
        if items.is_empty() {
            return Err(CoreError::Empty("fold-in needs at least one item"));
        }
        let alpha = self.options.alpha as f64;
        let mut a = self.gram.clone();
        for d in 0..self.k {
            a[[d, d]] += self.options.lambda as f64;
        }
        // rhs = Σ_all (s_neg − b_i) q_i + Σ_pos [(1+α)(s_pos − b_i) − (s_neg − b_i)] q_i
        let mut rhs = &self.sum_q * self.s_neg - &self.sum_bq;
        if let Some(prior) = prior {
            // λ (u − prior)² adds λ·prior to the right-hand side.
            rhs.scaled_add(self.options.lambda as f64, &prior.vector.mapv(f64::from));
        }
        let mut unique: Vec<usize> = Vec::with_capacity(items.len());
        for &i in items {
            if i >= self.n_items {
                return Err(CoreError::IndexOutOfRange {
                    what: "item",
                    index: i,
                    len: self.n_items,
                });
            }
            if !unique.contains(&i) {
                unique.push(i);
            }
        }
        // The user's item vectors as rows: A += α QᵀQ and rhs += Qᵀw in two matrix
        // products (not element-wise updates of A per item).
        let mut q = Array2::<f64>::zeros((unique.len(), self.k));
        let mut w = Array1::<f64>::zeros(unique.len());
        for (row, &i) in unique.iter().enumerate() {
            for (x, &v) in q.row_mut(row).iter_mut().zip(self.item_vectors.row(i)) {
                *x = f64::from(v);
            }
            let bi = self.item_biases[i] as f64;
            w[row] = (1.0 + alpha) * (self.s_pos - bi) - (self.s_neg - bi);
        }
        a.scaled_add(alpha, &q.t().dot(&q));
        rhs += &q.t().dot(&w);
        let u = solve_spd(a, rhs, "fold-in")?;
        Ok(Representation {
            vector: u.mapv(|v| v as f32),
            bias: 0.0,
        })
    }
}

/// Solves the symmetric positive definite system `a x = b` by Cholesky factorisation:
/// LAPACK's with the `lapack` feature, the crate's own ([`cholesky_solve`]) without, so the
/// crate builds with nothing but cargo. `context` names the caller in errors. Fold-in and
/// the ALS model's exact solves share it.
#[cfg(feature = "lapack")]
pub(crate) fn solve_spd(
    a: Array2<f64>,
    b: Array1<f64>,
    context: &'static str,
) -> Result<Array1<f64>> {
    use ndarray_linalg::SolveC;
    a.solvec_into(b).map_err(|e| CoreError::Linalg {
        context,
        message: e.to_string(),
    })
}

/// See the `lapack` version.
#[cfg(not(feature = "lapack"))]
pub(crate) fn solve_spd(
    a: Array2<f64>,
    b: Array1<f64>,
    context: &'static str,
) -> Result<Array1<f64>> {
    cholesky_solve(a, b, context)
}

/// Solves `a x = b` for a symmetric positive definite `a` by Cholesky factorisation
/// (`a = L Lᵀ`, then two triangular solves), reading only `a`'s lower triangle. Fails when a
/// pivot is not positive (`a` not positive definite, or too ill-conditioned).
#[cfg_attr(feature = "lapack", allow(dead_code))] // used by the tests then
pub(crate) fn cholesky_solve(
    a: Array2<f64>,
    b: Array1<f64>,
    context: &'static str,
) -> Result<Array1<f64>> {
    let n = b.len();
    assert_eq!(a.dim(), (n, n), "cholesky_solve: shapes");
    // Row-major copies: slices keep the inner loops free of per-element index calls.
    let mut l: Vec<f64> = a.iter().copied().collect();
    let mut x: Vec<f64> = b.to_vec();
    let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(p, q)| p * q).sum::<f64>();
    // Overwrite the lower triangle with L, column by column.
    for j in 0..n {
        let row_j = j * n;
        let pivot = l[row_j + j] - dot(&l[row_j..row_j + j], &l[row_j..row_j + j]);
        if !(pivot > 0.0 && pivot.is_finite()) {
            return Err(CoreError::Linalg {
                context,
                message: format!("matrix is not positive definite (pivot {pivot} at row {j})"),
            });
        }
        let d = pivot.sqrt();
        l[row_j + j] = d;
        for r in j + 1..n {
            let row_r = r * n;
            let s = dot(&l[row_r..row_r + j], &l[row_j..row_j + j]);
            l[row_r + j] = (l[row_r + j] - s) / d;
        }
    }
    // L y = b.
    for r in 0..n {
        let s = dot(&l[r * n..r * n + r], &x[..r]);
        x[r] = (x[r] - s) / l[r * n + r];
    }
    // Lᵀ x = y.
    for r in (0..n).rev() {
        let s = (r + 1..n).map(|c| l[c * n + r] * x[c]).sum::<f64>();
        x[r] = (x[r] - s) / l[r * n + r];
    }
    Ok(Array1::from(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `m mᵀ + λ I` for an `n × n` matrix `m` with entries from `values` (cycled).
    fn spd(n: usize, values: &[f64], lambda: f64) -> Array2<f64> {
        let m = Array2::from_shape_fn((n, n), |(r, c)| values[(r * n + c) % values.len()]);
        m.dot(&m.t()) + Array2::<f64>::eye(n) * lambda
    }

    proptest! {
        #[test]
        fn cholesky_solves_spd_systems(
            n in 1usize..24,
            values in prop::collection::vec(-3.0f64..3.0, 1..600),
            rhs in prop::collection::vec(-10.0f64..10.0, 24),
            lambda in 0.01f64..5.0,
        ) {
            let a = spd(n, &values, lambda);
            let b = Array1::from(rhs[..n].to_vec());
            let x = cholesky_solve(a.clone(), b.clone(), "test").unwrap();
            let residual = (a.dot(&x) - &b).mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v));
            let scale = a.mapv(f64::abs).sum() * x.mapv(f64::abs).sum() + b.mapv(f64::abs).sum();
            prop_assert!(residual <= 1e-10 * scale, "residual {residual}, scale {scale}");
            // The solver the build uses (LAPACK with the `lapack` feature) agrees.
            let y = solve_spd(a, b, "test").unwrap();
            for (u, v) in x.iter().zip(y.iter()) {
                prop_assert!((u - v).abs() <= 1e-8 * (1.0 + v.abs()), "{u} vs {v}");
            }
        }
    }

    #[test]
    fn cholesky_rejects_a_matrix_that_is_not_positive_definite() {
        let a = ndarray::arr2(&[[1.0, 2.0], [2.0, 1.0]]); // eigenvalues 3 and -1
        let err = cholesky_solve(a, ndarray::arr1(&[1.0, 1.0]), "test").unwrap_err();
        assert!(matches!(err, CoreError::Linalg { .. }), "{err}");
        let nan = ndarray::arr2(&[[f64::NAN]]);
        assert!(cholesky_solve(nan, ndarray::arr1(&[1.0]), "test").is_err());
    }
}
