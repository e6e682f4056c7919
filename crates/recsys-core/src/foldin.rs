//! Fold-in: a representation for a new user from a handful of interactions, without
//! retraining (LightFM cannot do this).
//!
//! With the item representations `q_i` and biases `b_i` fixed, the new user's vector `u`
//! solves the implicit-feedback least-squares problem of iALS (Hu, Koren & Volinsky 2008):
//!
//! ```text
//!   minimise  Σ_i c_i (p_i − (u·q_i + b_i))² + λ‖u‖²
//! ```
//!
//! over **all** items, with target `p_i = s_pos` and confidence `c_i = 1 + α` for the user's
//! items and `p_i = s_neg`, `c_i = 1` for the rest. `s_pos` and `s_neg` are the mean scores
//! the trained model gives to training positives and to all items, so the folded-in user
//! lives on the same scale as trained users. Thanks to the Gram trick (precomputed
//! `Σ q_i q_iᵀ`, `Σ q_i`, `Σ b_i q_i`) a fold-in costs `O(n_pos·k² + k³)`; the `k × k`
//! system is solved with LAPACK through `ndarray-linalg`.

// Index loops over latent components read more clearly than zipped iterators here.
#![allow(clippy::needless_range_loop)]

use ndarray::{Array1, Array2};
use ndarray_linalg::Solve;

use crate::error::{CoreError, Result};
use crate::interactions::Interactions;
use crate::model::{HybridModel, Representation};

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
    /// Prepares fold-in for `model`; `train` (the model's training interactions) calibrates the
    /// target scores.
    pub fn new(model: &HybridModel, train: &Interactions, options: FoldInOptions) -> Result<Self> {
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
        let reps = model.item_representations();
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
            let r = model.user_representation(u)?;
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
            k: model.no_components(),
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
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        for &i in items {
            if i >= self.n_items {
                return Err(CoreError::IndexOutOfRange {
                    what: "item",
                    index: i,
                    len: self.n_items,
                });
            }
            if !seen.insert(i) {
                continue;
            }
            let qi = self.item_vectors.row(i).mapv(f64::from);
            let bi = self.item_biases[i] as f64;
            for r in 0..self.k {
                for c in 0..self.k {
                    a[[r, c]] += alpha * qi[r] * qi[c];
                }
            }
            let w = (1.0 + alpha) * (self.s_pos - bi) - (self.s_neg - bi);
            rhs.scaled_add(w, &qi);
        }
        let u = a.solve_into(rhs).map_err(|e| CoreError::Linalg {
            context: "fold-in",
            message: e.to_string(),
        })?;
        Ok(Representation {
            vector: u.mapv(|v| v as f32),
            bias: 0.0,
        })
    }
}
