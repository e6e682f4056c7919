//! Item cold start by least-squares re-anchoring of the metadata embeddings.
//!
//! With identity features, an item's representation is `v_i = w_i e_id(i) + Σ_g M_ig e_g`
//! (identity embedding plus the weighted metadata embeddings; the bias likewise). Training
//! lets the identity embeddings carry whatever the metadata does not, so the metadata
//! embeddings alone predict an item poorly — and a new item has nothing else. The refit
//! replaces the metadata embeddings by the ridge regression of the warm items' full
//! representations on their metadata rows,
//!
//! ```text
//!   E* = argmin_E  Σ_{i warm} ω_i ‖M_i E − v_i‖² + λ ‖E‖²
//!      = (Mᵀ Ω M + λ I)⁻¹ Mᵀ Ω V
//! ```
//!
//! and then sets each warm item's identity embedding to `(v_i − M_i E*) / w_i`, so every
//! warm item keeps its representation (up to `f32` rounding), while an item without
//! interactions gets its identity embedding set to zero and is represented by `M_i E*`, the
//! least-squares prediction from its metadata. A product that is not in the model at all
//! (a feature row without identity, [`HybridModel::item_representation_from_features`]) gets
//! the same prediction. The model's shape is unchanged: only parameter values move.
//!
//! The normal equations (one system per latent component and one for the bias, all with the
//! same matrix) are solved by Jacobi-preconditioned conjugate gradient in `f64`, matrix-free
//! over the warm items' metadata rows, so the cost is `O(steps · nnz(M) · (k + 1))`.
//!
//! [`HybridModel::item_representation_from_features`]: crate::HybridModel::item_representation_from_features

use crate::error::{CoreError, Result};
use crate::interactions::Interactions;
use crate::matrix::FeatureMatrix;

/// Settings of the cold-start refit ([`HybridModel::refit_cold_start`],
/// [`AlsModel::refit_cold_start`], [`Model::refit_cold_start`]).
///
/// [`HybridModel::refit_cold_start`]: crate::HybridModel::refit_cold_start
/// [`AlsModel::refit_cold_start`]: crate::AlsModel::refit_cold_start
/// [`Model::refit_cold_start`]: crate::Model::refit_cold_start
#[derive(Debug, Clone, PartialEq)]
pub struct ColdStartRefit {
    /// Ridge penalty λ on the metadata embeddings (> 0): larger values shrink the
    /// prediction for rare metadata values towards zero (the hybrid model's bias towards
    /// the average of the other features).
    pub lambda: f64,
    /// Each warm item's weight in the regression is `n_i^popularity_power` for an item with
    /// `n_i` training interactions: 0 weighs every warm item alike, 1 weighs them by
    /// popularity (as a training loss over interactions does). In `[0, 2]`.
    pub popularity_power: f64,
    /// Conjugate-gradient steps at most.
    pub max_steps: usize,
    /// Stop when every column's residual is below this fraction of its right-hand side.
    pub tolerance: f64,
}

impl ColdStartRefit {
    /// Penalty `lambda`, warm items weighted by the square root of their number of
    /// interactions (`popularity_power` 0.5), at most 2,000 CG steps, relative tolerance
    /// 1e-6.
    pub fn new(lambda: f64) -> Self {
        ColdStartRefit {
            lambda,
            popularity_power: 0.5,
            max_steps: 2_000,
            tolerance: 1e-6,
        }
    }

    /// Sets [`ColdStartRefit::popularity_power`].
    pub fn popularity_power(mut self, power: f64) -> Self {
        self.popularity_power = power;
        self
    }

    fn validate(&self) -> Result<()> {
        let bad = |name, value: f64, reason| {
            Err(CoreError::InvalidHyperparameter {
                name,
                value: value.to_string(),
                reason,
            })
        };
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return bad("lambda", self.lambda, "must be a finite number > 0");
        }
        if !(0.0..=2.0).contains(&self.popularity_power) {
            return bad(
                "popularity_power",
                self.popularity_power,
                "must be in [0, 2]",
            );
        }
        if self.max_steps == 0 {
            return Err(CoreError::zero_count("max_steps"));
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return bad("tolerance", self.tolerance, "must be a finite number > 0");
        }
        Ok(())
    }
}

/// What a cold-start refit did.
#[derive(Debug, Clone, PartialEq)]
pub struct ColdStartReport {
    /// Items with at least one training interaction (their representations are kept).
    pub warm_items: usize,
    /// Items without one (now represented by their metadata alone).
    pub cold_items: usize,
    /// Metadata features (all item features but the identity features).
    pub metadata_features: usize,
    /// Conjugate-gradient steps taken.
    pub steps: usize,
    /// The largest relative residual `‖r‖ / ‖b‖` over the columns at the end.
    pub residual: f64,
}

/// Checks that `fm` has identity features first: row `i` holds feature `i` with a non-zero
/// weight, and no other row holds a feature below `n_rows`. Returns the identity weights.
fn identity_weights(fm: &FeatureMatrix) -> Result<Vec<f64>> {
    let n = fm.n_rows();
    let missing = |reason: String| CoreError::FeatureLayout {
        operation: "the item cold-start refit",
        needs: "identity features first (feature i = item i, as a dataset built from scratch \
                has them) and metadata after them; a dataset grown by `Dataset::resume` \
                appends new identity features after the metadata",
        reason,
    };
    if fm.n_features() < n {
        return Err(missing(format!(
            "{} features for {n} items",
            fm.n_features()
        )));
    }
    let mut weights = Vec::with_capacity(n);
    for i in 0..n {
        let (f, w) = fm.row(i);
        let mut own = None;
        for (&f, &w) in f.iter().zip(w) {
            if f < n {
                if f != i {
                    return Err(missing(format!(
                        "item {i} holds item {f}'s identity feature"
                    )));
                }
                own = Some(w);
            }
        }
        match own {
            Some(w) if w != 0.0 => weights.push(f64::from(w)),
            _ => return Err(missing(format!("item {i} has no identity feature"))),
        }
    }
    Ok(weights)
}

/// The refit on one embedding table: `table` holds one row of `stride` floats per item
/// feature, of which the first `width` are refitted (the embedding, and the bias when it
/// follows it). `counts[i]` is item `i`'s number of training interactions.
pub(crate) fn refit_table(
    fm: &FeatureMatrix,
    counts: &[u32],
    table: &mut [f32],
    stride: usize,
    width: usize,
    options: &ColdStartRefit,
) -> Result<ColdStartReport> {
    options.validate()?;
    let n = fm.n_rows();
    let nf = fm.n_features();
    assert_eq!(counts.len(), n, "refit_table: counts");
    assert!(
        width <= stride && table.len() == nf * stride,
        "refit_table: table"
    );
    let id_weight = identity_weights(fm)?;
    let m = nf - n;
    let row = |f: usize| &table[f * stride..f * stride + width];

    // Warm items' representations and metadata rows (metadata index, weight).
    let mut warm: Vec<usize> = Vec::new();
    let mut omega: Vec<f64> = Vec::new();
    let mut targets: Vec<f64> = Vec::new();
    for (i, &count) in counts.iter().enumerate().take(n) {
        if count == 0 {
            continue;
        }
        let (f, w) = fm.row(i);
        let start = targets.len();
        targets.resize(start + width, 0.0);
        for (&f, &w) in f.iter().zip(w) {
            for (t, &e) in targets[start..].iter_mut().zip(row(f)) {
                *t += f64::from(w) * f64::from(e);
            }
        }
        warm.push(i);
        omega.push(f64::from(count).powf(options.popularity_power));
    }
    let meta = |i: usize| {
        let (f, w) = fm.row(i);
        f.iter()
            .zip(w)
            .filter(|(&f, _)| f >= n)
            .map(move |(&f, &w)| (f - n, f64::from(w)))
    };

    // Normal equations A X = B (m × width unknowns, A symmetric positive definite).
    let lambda = options.lambda;
    // A = Mᵀ Ω M + λ I (the same for every column), B = Mᵀ Ω V.
    let mut diag = vec![lambda; m * width];
    let mut b = vec![0.0f64; m * width];
    for (r, &i) in warm.iter().enumerate() {
        let v = &targets[r * width..(r + 1) * width];
        for (g, w) in meta(i) {
            for c in 0..width {
                diag[g * width + c] += omega[r] * w * w;
                b[g * width + c] += omega[r] * w * v[c];
            }
        }
    }
    let apply = |p: &[f64], out: &mut [f64]| {
        for (o, &x) in out.iter_mut().zip(p) {
            *o = lambda * x;
        }
        let mut t = vec![0.0f64; width];
        for (r, &i) in warm.iter().enumerate() {
            t.iter_mut().for_each(|x| *x = 0.0);
            for (g, w) in meta(i) {
                for (tt, &pp) in t.iter_mut().zip(&p[g * width..(g + 1) * width]) {
                    *tt += w * pp;
                }
            }
            for (g, w) in meta(i) {
                let s = omega[r] * w;
                for (oo, &tt) in out[g * width..(g + 1) * width].iter_mut().zip(&t) {
                    *oo += s * tt;
                }
            }
        }
    };
    let (x, steps, residual) = pcg(&apply, &b, &diag, options);
    if x.iter().any(|v| !v.is_finite()) {
        return Err(CoreError::Linalg {
            context: "cold-start refit",
            message: "the conjugate-gradient solution is not finite".into(),
        });
    }

    // Write back: metadata embeddings, then identity embeddings so that warm items keep
    // their representations (computed against the stored f32 metadata values).
    for g in 0..m {
        let dst = &mut table[(n + g) * stride..(n + g) * stride + width];
        for (d, &v) in dst.iter_mut().zip(&x[g * width..(g + 1) * width]) {
            *d = v as f32;
        }
    }
    let mut next_warm = 0;
    let mut pred = vec![0.0f64; width];
    for (i, &wi) in id_weight.iter().enumerate().take(n) {
        let is_warm = warm.get(next_warm) == Some(&i);
        let dst_start = i * stride;
        if !is_warm {
            table[dst_start..dst_start + width].fill(0.0);
            continue;
        }
        pred.iter_mut().for_each(|v| *v = 0.0);
        for (g, w) in meta(i) {
            let e = &table[(n + g) * stride..(n + g) * stride + width];
            for (pp, &ee) in pred.iter_mut().zip(e) {
                *pp += w * f64::from(ee);
            }
        }
        let v = &targets[next_warm * width..(next_warm + 1) * width];
        for c in 0..width {
            table[dst_start + c] = ((v[c] - pred[c]) / wi) as f32;
        }
        next_warm += 1;
    }
    Ok(ColdStartReport {
        warm_items: warm.len(),
        cold_items: n - warm.len(),
        metadata_features: m,
        steps,
        residual,
    })
}

/// Jacobi-preconditioned conjugate gradient for `A X = B` with `X`, `B` flattened and
/// `diag` the diagonal of `A` per entry (`A` acts on every column alike, so this is CG on
/// the block-diagonal system of all columns together). Returns the solution, the steps
/// taken and the final relative residual `‖B − A X‖ / ‖B‖`.
fn pcg(
    apply: &dyn Fn(&[f64], &mut [f64]),
    b: &[f64],
    diag: &[f64],
    options: &ColdStartRefit,
) -> (Vec<f64>, usize, f64) {
    let dot = |x: &[f64], y: &[f64]| x.iter().zip(y).map(|(a, b)| a * b).sum::<f64>();
    let b_norm = dot(b, b).sqrt();
    let mut x = vec![0.0f64; b.len()];
    if b_norm == 0.0 {
        return (x, 0, 0.0);
    }
    let mut r = b.to_vec();
    let mut z: Vec<f64> = r.iter().zip(diag).map(|(r, d)| r / d).collect();
    let mut p = z.clone();
    let mut rz = dot(&r, &z);
    let mut q = vec![0.0f64; b.len()];
    let mut residual = 1.0;
    let mut steps = 0;
    while residual > options.tolerance && steps < options.max_steps {
        apply(&p, &mut q);
        let pq = dot(&p, &q);
        if pq <= 0.0 {
            break;
        }
        let alpha = rz / pq;
        for i in 0..x.len() {
            x[i] += alpha * p[i];
            r[i] -= alpha * q[i];
        }
        steps += 1;
        residual = dot(&r, &r).sqrt() / b_norm;
        for i in 0..z.len() {
            z[i] = r[i] / diag[i];
        }
        let rz_new = dot(&r, &z);
        let beta = rz_new / rz;
        for i in 0..p.len() {
            p[i] = z[i] + beta * p[i];
        }
        rz = rz_new;
    }
    (x, steps, residual)
}

/// Training interactions per item, checked against the model's item count.
pub(crate) fn item_counts(train: &Interactions, n_items: usize) -> Result<Vec<u32>> {
    if train.n_items() != n_items {
        return Err(CoreError::ShapeMismatch {
            what: "interactions items vs item feature rows",
            expected: n_items,
            found: train.n_items(),
        });
    }
    Ok(train.item_counts())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlsModel, AlsParams, FitOptions, HybridModel, Hyperparameters, Rng};
    use ndarray::{Array1, Array2};
    use proptest::prelude::*;

    /// `n` items: identity features `0..n`, then `n_meta` metadata features; item `i`
    /// holds `per_item` metadata values drawn with `rng`, weights summing to `w_meta`.
    fn anchored_items(
        n: usize,
        n_meta: usize,
        per_item: usize,
        w_meta: f32,
        rng: &mut Rng,
    ) -> FeatureMatrix {
        let rows: Vec<Vec<(usize, f32)>> = (0..n)
            .map(|i| {
                let mut row = vec![(i, 1.0)];
                let mut values: Vec<usize> = Vec::new();
                while values.len() < per_item.min(n_meta) {
                    let g = (rng.next_f64() * n_meta as f64) as usize % n_meta;
                    if !values.contains(&g) {
                        values.push(g);
                    }
                }
                values.sort_unstable();
                let w = w_meta / values.len() as f32;
                row.extend(values.into_iter().map(|g| (n + g, w)));
                row
            })
            .collect();
        FeatureMatrix::from_rows(n + n_meta, rows).unwrap()
    }

    fn random_table(rows: usize, stride: usize, width: usize, rng: &mut Rng) -> Vec<f32> {
        let mut t = vec![0.0f32; rows * stride];
        for r in t.chunks_exact_mut(stride) {
            for v in &mut r[..width] {
                *v = (rng.next_f64() - 0.5) as f32;
            }
        }
        t
    }

    fn representations(fm: &FeatureMatrix, t: &[f32], stride: usize, width: usize) -> Vec<f64> {
        let mut out = vec![0.0f64; fm.n_rows() * width];
        for i in 0..fm.n_rows() {
            let (f, w) = fm.row(i);
            for (&f, &w) in f.iter().zip(w) {
                for c in 0..width {
                    out[i * width + c] += f64::from(w) * f64::from(t[f * stride + c]);
                }
            }
        }
        out
    }

    /// The ridge solution by the dense normal equations, one column at a time.
    fn dense_ridge(
        fm: &FeatureMatrix,
        counts: &[u32],
        reps: &[f64],
        width: usize,
        lambda: f64,
        power: f64,
    ) -> Array2<f64> {
        let n = fm.n_rows();
        let m = fm.n_features() - n;
        let mut a = Array2::<f64>::zeros((m, m));
        let mut b = Array2::<f64>::zeros((m, width));
        for i in (0..n).filter(|&i| counts[i] > 0) {
            let omega = f64::from(counts[i]).powf(power);
            let (f, w) = fm.row(i);
            let meta: Vec<(usize, f64)> = f
                .iter()
                .zip(w)
                .filter(|(&f, _)| f >= n)
                .map(|(&f, &w)| (f - n, f64::from(w)))
                .collect();
            for &(g, wg) in &meta {
                for &(h, wh) in &meta {
                    a[[g, h]] += omega * wg * wh;
                }
                for c in 0..width {
                    b[[g, c]] += omega * wg * reps[i * width + c];
                }
            }
        }
        for g in 0..m {
            a[[g, g]] += lambda;
        }
        let mut x = Array2::<f64>::zeros((m, width));
        for c in 0..width {
            let col =
                crate::foldin::cholesky_solve(a.clone(), b.column(c).to_owned(), "test").unwrap();
            x.column_mut(c).assign(&col);
        }
        x
    }

    #[test]
    fn matches_the_dense_ridge_solution_and_keeps_warm_items() {
        let mut rng = Rng::new(5);
        let (n, m, stride, width) = (60, 9, 16, 5);
        let fm = anchored_items(n, m, 2, 1.0, &mut rng);
        let counts: Vec<u32> = (0..n as u32)
            .map(|i| if i % 5 == 0 { 0 } else { 1 + i % 7 })
            .collect();
        let mut table = random_table(n + m, stride, width, &mut rng);
        let before = representations(&fm, &table, stride, width);
        let options = ColdStartRefit::new(0.7).popularity_power(1.0);
        let expected = dense_ridge(&fm, &counts, &before, width, 0.7, 1.0);
        let report = refit_table(&fm, &counts, &mut table, stride, width, &options).unwrap();
        assert_eq!(
            (
                report.warm_items,
                report.cold_items,
                report.metadata_features
            ),
            (48, 12, m)
        );
        assert!(report.residual <= 1e-6, "{report:?}");
        for g in 0..m {
            for c in 0..width {
                let got = f64::from(table[(n + g) * stride + c]);
                assert!(
                    (got - expected[[g, c]]).abs() < 1e-5,
                    "feature {g} column {c}: {got} vs {}",
                    expected[[g, c]]
                );
            }
        }
        let after = representations(&fm, &table, stride, width);
        for i in 0..n {
            let (f, w) = fm.row(i);
            for c in 0..width {
                let got = after[i * width + c];
                if counts[i] > 0 {
                    assert!(
                        (got - before[i * width + c]).abs() < 1e-5,
                        "warm item {i} moved"
                    );
                } else {
                    // Cold: identity zero, the metadata prediction alone.
                    assert_eq!(table[i * stride + c], 0.0);
                    let predicted: f64 = f
                        .iter()
                        .zip(w)
                        .filter(|(&f, _)| f >= n)
                        .map(|(&f, &w)| f64::from(w) * expected[[f - n, c]])
                        .sum();
                    assert!((got - predicted).abs() < 1e-5);
                }
            }
        }
        // The padding is untouched.
        assert!(table
            .chunks_exact(stride)
            .all(|r| r[width..].iter().all(|&v| v == 0.0)));
    }

    /// Items whose vectors are exactly their metadata's embeddings (plus noise carried by
    /// the identity features of warm items): the refit predicts a cold item's vector from
    /// its metadata; before it, the cold item's untrained identity embedding is noise.
    #[test]
    fn recovers_planted_metadata_embeddings_for_cold_items() {
        let mut rng = Rng::new(11);
        let (n, m, k) = (400, 12, 4);
        let items = anchored_items(n, m, 3, 1.0, &mut rng);
        let truth = Array2::from_shape_fn((m, k), |_| rng.next_f64() as f32 - 0.5);
        let noise = 0.2;
        let mut embeddings = Array2::<f32>::zeros((n + m, k));
        for i in 0..n {
            for c in 0..k {
                embeddings[[i, c]] = noise * (rng.next_f64() as f32 - 0.5);
            }
        }
        // The model's own metadata embeddings are untrained noise too.
        for g in 0..m {
            for c in 0..k {
                embeddings[[n + g, c]] = rng.next_f64() as f32 - 0.5;
            }
        }
        // Warm items are truth + zero-mean identity noise: shift so that Σ_g M_ig e_g = truth.
        let target = |i: usize| -> Array1<f32> {
            let (f, w) = items.row(i);
            let mut v = Array1::<f32>::zeros(k);
            for (&f, &w) in f.iter().zip(w).filter(|(&f, _)| f >= n) {
                v.scaled_add(w, &truth.row(f - n));
            }
            v
        };
        let warm = |i: usize| !i.is_multiple_of(4);
        for i in (0..n).filter(|&i| warm(i)) {
            let (f, w) = items.row(i);
            let mut meta_part = Array1::<f32>::zeros(k);
            for (&f, &w) in f.iter().zip(w).filter(|(&f, _)| f >= n) {
                meta_part.scaled_add(w, &embeddings.row(f));
            }
            let id = &target(i) - &meta_part + embeddings.row(i);
            embeddings.row_mut(i).assign(&id);
        }
        let users = Array2::<f32>::from_shape_fn((3, k), |(u, c)| (u + c) as f32 * 0.1);
        let params = AlsParams::builder().no_components(k).build().unwrap();
        let mut model = AlsModel::from_embeddings(
            params,
            FeatureMatrix::identity(3),
            items.clone(),
            users,
            embeddings,
        )
        .unwrap();
        let pairs: Vec<(usize, usize)> = (0..n).filter(|&i| warm(i)).map(|i| (i % 3, i)).collect();
        let train = Interactions::from_pairs(3, n, pairs).unwrap();
        let error = |model: &AlsModel| -> f32 {
            let reps = model.item_representations().vectors();
            (0..n)
                .filter(|&i| !warm(i))
                .map(|i| (&reps.row(i) - &target(i)).mapv(|d| d * d).sum())
                .fold(0.0f32, f32::max)
                .sqrt()
        };
        assert!(error(&model) > 0.2, "the planted cold items start far off");
        let warm_before = model.item_representations().vectors().to_owned();
        model
            .refit_cold_start(&train, &ColdStartRefit::new(1e-3).popularity_power(0.0))
            .unwrap();
        assert!(error(&model) < 0.1, "cold error {}", error(&model));
        let after = model.item_representations().vectors();
        for i in (0..n).filter(|&i| warm(i)) {
            for c in 0..k {
                assert!((after[[i, c]] - warm_before[[i, c]]).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn hybrid_refit_keeps_warm_scores_and_serves_cold_items_from_metadata() {
        let mut rng = Rng::new(3);
        let (n_users, n, m) = (30, 50, 6);
        let items = anchored_items(n, m, 2, 1.0, &mut rng);
        let params = Hyperparameters::builder()
            .no_components(6)
            .seed(2)
            .build()
            .unwrap();
        let mut model =
            HybridModel::new(params, FeatureMatrix::identity(n_users), items.clone()).unwrap();
        let pairs: Vec<(usize, usize)> = (0..n_users)
            .flat_map(|u| {
                (0..n)
                    .filter(move |i| (u + i) % 4 == 0 && i % 7 != 3)
                    .map(move |i| (u, i))
            })
            .collect();
        let train = Interactions::from_pairs(n_users, n, pairs).unwrap();
        model.fit(&train, FitOptions::epochs(5)).unwrap();
        let warm: Vec<usize> = (0..n).filter(|i| i % 7 != 3).collect();
        let before: Vec<Vec<f32>> = (0..n_users)
            .map(|u| model.predict(u, &warm).unwrap())
            .collect();
        let report = model
            .refit_cold_start(&train, &ColdStartRefit::new(0.5))
            .unwrap();
        assert_eq!(report.cold_items, n - warm.len());
        for (u, b) in before.iter().enumerate() {
            for (x, y) in b.iter().zip(model.predict(u, &warm).unwrap()) {
                assert!((x - y).abs() < 1e-4, "user {u}: {x} vs {y}");
            }
        }
        // A cold item is scored exactly as a new product with the same attributes.
        let reps = model.item_representations();
        for i in (0..n).filter(|i| i % 7 == 3) {
            let (f, w) = items.row(i);
            let row: Vec<(usize, f32)> = f
                .iter()
                .copied()
                .zip(w.iter().copied())
                .filter(|&(f, _)| f >= n)
                .collect();
            let new = model.item_representation_from_features(&row).unwrap();
            assert_eq!(reps.vectors().row(i), new.vector);
            assert_eq!(reps.biases()[i], new.bias);
        }
        // The optimiser state is kept: training can go on.
        model.fit_partial(&train, FitOptions::epochs(1)).unwrap();
    }

    #[test]
    fn refuses_models_without_identity_features_and_bad_settings() {
        let items = FeatureMatrix::from_rows(2, (0..4).map(|i| vec![(i % 2, 1.0)])).unwrap();
        let params = Hyperparameters::builder().no_components(2).build().unwrap();
        let mut model = HybridModel::new(params, FeatureMatrix::identity(2), items).unwrap();
        let train = Interactions::from_pairs(2, 4, [(0, 0), (1, 1)]).unwrap();
        let err = model
            .refit_cold_start(&train, &ColdStartRefit::new(1.0))
            .unwrap_err();
        assert!(matches!(err, CoreError::FeatureLayout { .. }), "{err}");
        assert!(err.to_string().contains("identity"), "{err}");

        let mut model = HybridModel::collaborative(
            Hyperparameters::builder().no_components(2).build().unwrap(),
            2,
            4,
        )
        .unwrap();
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = model
                .refit_cold_start(&train, &ColdStartRefit::new(bad))
                .unwrap_err();
            assert!(
                matches!(err, CoreError::InvalidHyperparameter { name: "lambda", .. }),
                "{err}"
            );
        }
        let err = model
            .refit_cold_start(&train, &ColdStartRefit::new(1.0).popularity_power(3.0))
            .unwrap_err();
        assert!(matches!(
            err,
            CoreError::InvalidHyperparameter {
                name: "popularity_power",
                ..
            }
        ));
        let wrong = Interactions::from_pairs(2, 3, [(0, 0)]).unwrap();
        let err = model
            .refit_cold_start(&wrong, &ColdStartRefit::new(1.0))
            .unwrap_err();
        assert!(matches!(err, CoreError::ShapeMismatch { .. }), "{err}");
        // Identity features only (no metadata): warm items kept, cold items at zero.
        let before = model.item_representations().vectors().to_owned();
        let report = model
            .refit_cold_start(&train, &ColdStartRefit::new(1.0))
            .unwrap();
        assert_eq!((report.metadata_features, report.steps), (0, 0));
        let after = model.item_representations().vectors();
        assert_eq!(after.row(0), before.row(0));
        assert!(after.row(2).iter().all(|&v| v == 0.0));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any identity-anchored matrix, weights and parameters: warm items keep their
        /// representations, and a second refit changes nothing (the refit depends only
        /// on the warm representations, which it keeps).
        #[test]
        fn keeps_warm_items_and_is_idempotent(
            seed in 0u64..1_000,
            n in 2usize..40,
            m in 1usize..8,
            per_item in 1usize..4,
            w_meta in 0.1f32..3.0,
            lambda in 0.01f64..10.0,
            power in 0.0f64..2.0,
        ) {
            let mut rng = Rng::new(seed);
            let fm = anchored_items(n, m, per_item, w_meta, &mut rng);
            let counts: Vec<u32> = (0..n).map(|_| (rng.next_f64() * 4.0) as u32).collect();
            let (stride, width) = (8, 3);
            let mut table = random_table(n + m, stride, width, &mut rng);
            let before = representations(&fm, &table, stride, width);
            let options = ColdStartRefit::new(lambda).popularity_power(power);
            refit_table(&fm, &counts, &mut table, stride, width, &options).unwrap();
            let once = table.clone();
            let after = representations(&fm, &table, stride, width);
            for i in (0..n).filter(|&i| counts[i] > 0) {
                for c in 0..width {
                    prop_assert!((after[i * width + c] - before[i * width + c]).abs() < 1e-4);
                }
            }
            refit_table(&fm, &counts, &mut table, stride, width, &options).unwrap();
            for (a, b) in table.iter().zip(&once) {
                prop_assert!((a - b).abs() < 1e-4, "{a} vs {b}");
            }
        }
    }
}
