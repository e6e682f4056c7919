//! The ALS model against brute-force references: every half-sweep is the least-squares
//! solution written out over all pairs, the loss never increases, a planted low-rank matrix
//! is recovered, features reduce to the collaborative solve, runs are bit-identical.

// Dense reference algebra reads best with index loops.
#![allow(clippy::needless_range_loop)]

use ndarray::Array2;
use proptest::prelude::*;
use recsys_core::{evaluate, EvalOptions, FeatureMatrix, Interaction, Interactions, Rng};
use recsys_core::{AlsFitOptions, AlsModel, AlsParams, AlsSolver};

/// Solves the dense system `a x = b` by Gaussian elimination with partial pivoting (f64).
fn dense_solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap();
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row][col] / a[col][col];
            for c in col..n {
                a[row][c] -= f * a[col][c];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    x
}

/// Dense confidence and preference matrices (`c = 1 + α·w`, `p = 1` for a positive).
fn dense_cp(x: &Interactions, alpha: f64) -> (Array2<f64>, Array2<f64>) {
    let mut c = Array2::from_elem((x.n_users(), x.n_items()), 1.0);
    let mut p = Array2::zeros((x.n_users(), x.n_items()));
    for e in x.iter() {
        c[[e.user, e.item]] = 1.0 + alpha * f64::from(e.weight);
        p[[e.user, e.item]] = if e.value > 0.0 { 1.0 } else { 0.0 };
    }
    (c, p)
}

/// The embeddings `E` (rows of `a`'s features) minimising
/// `Σ_r Σ_j c_rj (p_rj − (A E)_r·y_j)² + λ‖E‖²` with `y` fixed: the dense normal equations
/// `Σ_r (a_r a_rᵀ) ⊗ M_r + λI`, written out over every pair (no Gram trick).
fn brute_force_side(
    a: &Array2<f64>,
    c: &Array2<f64>,
    p: &Array2<f64>,
    y: &Array2<f64>,
    lambda: f64,
) -> Array2<f64> {
    let (nf, k) = (a.ncols(), y.ncols());
    let n = nf * k;
    let mut h = vec![vec![0.0; n]; n];
    let mut rhs = vec![0.0; n];
    for r in 0..a.nrows() {
        for j in 0..y.nrows() {
            let (cw, pw) = (c[[r, j]], p[[r, j]]);
            // d score / d E[f][d] = a[r][f] · y[j][d]
            for f in 0..nf {
                if a[[r, f]] == 0.0 {
                    continue;
                }
                for d in 0..k {
                    let gi = a[[r, f]] * y[[j, d]];
                    rhs[f * k + d] += cw * pw * gi;
                    for g in 0..nf {
                        for e in 0..k {
                            h[f * k + d][g * k + e] += cw * gi * a[[r, g]] * y[[j, e]];
                        }
                    }
                }
            }
        }
    }
    for i in 0..n {
        h[i][i] += lambda;
    }
    let x = dense_solve(h, rhs);
    Array2::from_shape_fn((nf, k), |(f, d)| x[f * k + d])
}

fn dense(m: &FeatureMatrix) -> Array2<f64> {
    let mut a = Array2::zeros((m.n_rows(), m.n_features()));
    for r in 0..m.n_rows() {
        let (f, w) = m.row(r);
        for (&f, &w) in f.iter().zip(w) {
            a[[r, f]] += f64::from(w);
        }
    }
    a
}

fn random_interactions(n_users: usize, n_items: usize, density: f64, seed: u64) -> Interactions {
    let mut rng = Rng::new(seed);
    let mut entries = Vec::new();
    for u in 0..n_users {
        for i in 0..n_items {
            if rng.next_f64() < density {
                let weight = 1.0 + (rng.below(4) as f32);
                // Some explicit negatives: confidence without preference.
                let value = if rng.next_f64() < 0.15 { -1.0 } else { 1.0 };
                entries.push(Interaction {
                    user: u,
                    item: i,
                    value,
                    weight,
                });
            }
        }
    }
    // Every user and item appears at least once so no row is trivially zero.
    entries.push(Interaction::positive(0, 0));
    Interactions::from_entries(n_users, n_items, entries).unwrap()
}

fn random_features(rows: usize, features: usize, seed: u64) -> FeatureMatrix {
    let mut rng = Rng::new(seed);
    FeatureMatrix::from_rows(
        features,
        (0..rows).map(|_| {
            let mut row = Vec::new();
            for f in 0..features {
                if rng.next_f64() < 0.4 {
                    row.push((f, 0.25 + rng.next_f64() as f32));
                }
            }
            row
        }),
    )
    .unwrap()
}

fn to64(m: &Array2<f32>) -> Array2<f64> {
    m.mapv(f64::from)
}

fn assert_close(found: &Array2<f32>, expected: &Array2<f64>, tol: f64, what: &str) {
    assert_eq!(found.dim(), expected.dim(), "{what}: shape");
    let scale = expected.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for ((r, c), v) in expected.indexed_iter() {
        let d = (f64::from(found[[r, c]]) - v).abs();
        assert!(
            d <= tol * scale,
            "{what}[{r}][{c}]: {} vs reference {v} (diff {d}, scale {scale})",
            found[[r, c]]
        );
    }
}

/// Checks that one sweep of a collaborative model with `params` (confidence `alpha`,
/// regularization `lambda`) on `x` gives the brute-force least-squares solutions within
/// `tol`: users from the initial items, then items from the new users.
fn assert_one_sweep_solves(x: &Interactions, params: AlsParams, alpha: f32, lambda: f32, tol: f64) {
    let (n_users, n_items) = (x.n_users(), x.n_items());
    let mut model = AlsModel::collaborative(params, n_users, n_items).unwrap();
    let y0 = to64(&model.item_factors());
    model.fit_partial(x, AlsFitOptions::iterations(1)).unwrap();
    let (c, p) = dense_cp(x, f64::from(alpha));
    let x1 = brute_force_side(&Array2::eye(n_users), &c, &p, &y0, f64::from(lambda));
    assert_close(&model.user_factors(), &x1, tol, "users");
    let y1 = brute_force_side(
        &Array2::eye(n_items),
        &c.t().to_owned(),
        &p.t().to_owned(),
        &x1,
        f64::from(lambda),
    );
    assert_close(&model.item_factors(), &y1, tol, "items");
}

/// One sweep of the exact solver = the brute-force least-squares solutions, users from the
/// initial items, then items from the new users.
#[test]
fn cholesky_sweep_matches_brute_force_least_squares() {
    let x = random_interactions(11, 8, 0.35, 1);
    let (alpha, lambda) = (2.5f32, 0.3f32);
    let params = AlsParams::builder()
        .no_components(3)
        .alpha(alpha)
        .regularization(lambda)
        .solver(AlsSolver::Cholesky)
        .init_scale(0.5)
        .seed(4)
        .build()
        .unwrap();
    assert_one_sweep_solves(&x, params, alpha, lambda, 1e-5);
}

/// Conjugate gradient with as many steps as unknowns per row reaches the same solutions.
#[test]
fn conjugate_gradient_converges_to_the_least_squares_solution() {
    let x = random_interactions(13, 9, 0.4, 2);
    let (alpha, lambda) = (1.5f32, 0.2f32);
    let params = AlsParams::builder()
        .no_components(4)
        .alpha(alpha)
        .regularization(lambda)
        .cg_steps(12)
        .init_scale(0.5)
        .seed(5)
        .build()
        .unwrap();
    assert_one_sweep_solves(&x, params, alpha, lambda, 1e-3);
}

/// With features on both sides, a sweep (many preconditioned CG steps) solves the normal
/// equations of the feature embeddings, written out over every pair.
#[test]
fn feature_sweep_matches_brute_force_least_squares() {
    let x = random_interactions(10, 9, 0.4, 3);
    let uf = random_features(10, 4, 7);
    let itf = random_features(9, 5, 8);
    let (alpha, lambda) = (2.0f32, 0.25f32);
    let params = AlsParams::builder()
        .no_components(3)
        .alpha(alpha)
        .regularization(lambda)
        .feature_cg_steps(200)
        .init_scale(0.5)
        .seed(6)
        .build()
        .unwrap();
    let mut model = AlsModel::new(params, uf.clone(), itf.clone()).unwrap();
    let y0 = to64(&model.item_factors());
    model.fit_partial(&x, AlsFitOptions::iterations(1)).unwrap();
    let (c, p) = dense_cp(&x, f64::from(alpha));
    let (a, b) = (dense(&uf), dense(&itf));
    let e_users = brute_force_side(&a, &c, &p, &y0, f64::from(lambda));
    assert_close(
        &model.user_feature_embeddings(),
        &e_users,
        1e-3,
        "user embeddings",
    );
    let x1 = a.dot(&e_users);
    let e_items = brute_force_side(
        &b,
        &c.t().to_owned(),
        &p.t().to_owned(),
        &x1,
        f64::from(lambda),
    );
    assert_close(
        &model.item_feature_embeddings(),
        &e_items,
        1e-3,
        "item embeddings",
    );
    assert_close(
        &model.item_factors(),
        &b.dot(&e_items),
        1e-3,
        "item factors",
    );
}

/// Identity features given as a general matrix (one unused extra feature, so the feature
/// solver runs) give the collaborative model's exact solution.
#[test]
fn identity_features_reduce_to_the_collaborative_solve() {
    let x = random_interactions(12, 10, 0.35, 9);
    let base = AlsParams::builder()
        .no_components(3)
        .alpha(3.0)
        .regularization(0.1)
        .init_scale(0.5)
        .seed(2);
    let cf = AlsModel::collaborative(
        base.clone().solver(AlsSolver::Cholesky).build().unwrap(),
        12,
        10,
    )
    .unwrap();
    let padded =
        |n: usize| FeatureMatrix::from_rows(n + 1, (0..n).map(|r| vec![(r, 1.0f32)])).unwrap();
    let with_unused_row = |m: Array2<f32>| {
        let mut out = Array2::zeros((m.nrows() + 1, m.ncols()));
        out.slice_mut(ndarray::s![..m.nrows(), ..]).assign(&m);
        out
    };
    let general = AlsModel::from_embeddings(
        base.feature_cg_steps(300).build().unwrap(),
        padded(12),
        padded(10),
        with_unused_row(cf.user_feature_embeddings()),
        with_unused_row(cf.item_feature_embeddings()),
    )
    .unwrap();
    let (mut cf, mut general) = (cf, general);
    cf.fit_partial(&x, AlsFitOptions::iterations(3)).unwrap();
    general
        .fit_partial(&x, AlsFitOptions::iterations(3))
        .unwrap();
    assert_close(
        &general.user_factors(),
        &to64(&cf.user_factors()),
        1e-3,
        "users",
    );
    assert_close(
        &general.item_factors(),
        &to64(&cf.item_factors()),
        1e-3,
        "items",
    );
}

/// A rank-3 block matrix (users and items in three groups; a user likes their group's
/// items) is reconstructed by 3 components.
#[test]
fn planted_low_rank_matrix_is_recovered() {
    let (n_users, n_items) = (60, 45);
    let pairs: Vec<(usize, usize)> = (0..n_users)
        .flat_map(|u| {
            (0..n_items)
                .filter(move |i| u % 3 == i % 3)
                .map(move |i| (u, i))
        })
        .collect();
    let x = Interactions::from_pairs(n_users, n_items, pairs).unwrap();
    for solver in [
        AlsSolver::Cholesky,
        AlsSolver::ConjugateGradient { steps: 3 },
    ] {
        let params = AlsParams::builder()
            .no_components(3)
            .regularization(1e-3)
            .solver(solver)
            .init_scale(0.1)
            .build()
            .unwrap();
        let mut model = AlsModel::collaborative(params, n_users, n_items).unwrap();
        model.fit(&x, AlsFitOptions::iterations(30)).unwrap();
        let scores = model.user_factors().dot(&model.item_factors().t());
        for ((u, i), s) in scores.indexed_iter() {
            let target = if u % 3 == i % 3 { 1.0 } else { 0.0 };
            assert!(
                (s - target).abs() < 0.02,
                "{solver:?}: score({u}, {i}) = {s}, planted {target}"
            );
        }
    }
}

fn hybrid_model(threads_seed: u64) -> (AlsModel, Interactions) {
    let x = random_interactions(40, 30, 0.2, threads_seed);
    let uf = FeatureMatrix::from_rows(43, (0..40).map(|u| vec![(u, 0.5f32), (40 + u % 3, 0.5)]))
        .unwrap();
    let params = AlsParams::builder()
        .no_components(5)
        .alpha(2.0)
        .regularization(0.05)
        .build()
        .unwrap();
    (
        AlsModel::new(params, uf, FeatureMatrix::identity(30)).unwrap(),
        x,
    )
}

/// Same seed, same factors: bit for bit, with one thread and with several.
#[test]
fn runs_are_bit_identical_for_any_thread_count() {
    let (template, x) = hybrid_model(11);
    let mut runs = Vec::new();
    for threads in [1, 1, 2, 3] {
        let mut m = template.clone();
        m.fit(&x, AlsFitOptions::iterations(4).threads(threads))
            .unwrap();
        runs.push(m);
    }
    for m in &runs[1..] {
        assert!(m == &runs[0], "a run differs");
    }
    // And the collaborative path.
    let params = AlsParams::builder()
        .no_components(6)
        .alpha(1.0)
        .build()
        .unwrap();
    let fits: Vec<AlsModel> = [1, 1, 2]
        .into_iter()
        .map(|threads| {
            let mut m = AlsModel::collaborative(params.clone(), 40, 30).unwrap();
            m.fit(&x, AlsFitOptions::iterations(4).threads(threads))
                .unwrap();
            m
        })
        .collect();
    assert!(fits[1] == fits[0] && fits[2] == fits[0]);
}

/// Warm start: 3 sweeps then 2 more are the same as 5 sweeps.
#[test]
fn fit_partial_continues_where_training_stopped() {
    let (template, x) = hybrid_model(12);
    let mut once = template.clone();
    once.fit(&x, AlsFitOptions::iterations(5)).unwrap();
    let mut twice = template.clone();
    twice.fit(&x, AlsFitOptions::iterations(3)).unwrap();
    twice.fit_partial(&x, AlsFitOptions::iterations(2)).unwrap();
    assert!(once == twice);
    assert_eq!(twice.iterations_trained(), 5);
    // `fit` starts over.
    let mut again = twice.clone();
    again.fit(&x, AlsFitOptions::iterations(5)).unwrap();
    assert!(again == once);
}

/// Fold-in is the exact least-squares solution over all items, shrunk towards the feature
/// row's representation.
#[test]
fn fold_in_matches_brute_force_least_squares() {
    let (mut model, x) = hybrid_model(13);
    model.fit(&x, AlsFitOptions::iterations(3)).unwrap();
    let y = to64(&model.item_factors());
    let (alpha, lambda) = (2.0f64, 0.05f64);
    let items = [(3usize, 1.0f32), (7, 2.0), (3, 1.0), (12, 0.5), (29, 1.0)];
    let feature_row = [(41usize, 1.0f32)];
    for features in [None, Some(&feature_row[..])] {
        let got = model.fold_in(&items, features).unwrap();
        let x0: Vec<f64> = match features {
            Some(row) => model
                .user_representation_from_features(row)
                .unwrap()
                .vector
                .iter()
                .map(|&v| f64::from(v))
                .collect(),
            None => vec![0.0; 5],
        };
        let mut w = [0.0f64; 30];
        for &(i, wi) in &items {
            w[i] += f64::from(wi);
        }
        let mut a = vec![vec![0.0; 5]; 5];
        let mut b: Vec<f64> = x0.iter().map(|v| lambda * v).collect();
        for i in 0..30 {
            let observed = w[i] > 0.0;
            let c = if observed { 1.0 + alpha * w[i] } else { 1.0 };
            let p = if observed { 1.0 } else { 0.0 };
            for r in 0..5 {
                b[r] += c * p * y[[i, r]];
                for q in 0..5 {
                    a[r][q] += c * y[[i, r]] * y[[i, q]];
                }
            }
        }
        for d in 0..5 {
            a[d][d] += lambda;
        }
        let expected = dense_solve(a, b);
        for (g, e) in got.vector.iter().zip(&expected) {
            assert!(
                (f64::from(*g) - e).abs() < 1e-4 * (1.0 + e.abs()),
                "{g} vs {e}"
            );
        }
        assert_eq!(got.bias, 0.0);
    }
    // No interactions: the feature row's representation (cold start); nothing: an error.
    let cold = model.fold_in(&[], Some(&feature_row)).unwrap();
    assert_eq!(
        cold,
        model
            .user_representation_from_features(&feature_row)
            .unwrap()
    );
    assert!(model.fold_in(&[], None).is_err());
    assert!(model.fold_in(&[(30, 1.0)], None).is_err());
    assert!(model.fold_in(&[(1, -1.0)], None).is_err());
    assert!(model.fold_in(&[(1, f32::NAN)], None).is_err());
}

/// The model ranks held-out pairs of a planted-taste dataset through the generic evaluation.
#[test]
fn evaluates_as_a_scorer() {
    let pairs: Vec<(usize, usize)> = (0..80)
        .flat_map(|u| {
            (0..40)
                .filter(move |i| i % 4 == u % 4 && (i * 7 + u) % 5 != 0)
                .map(move |i| (u, i))
        })
        .collect();
    let all = Interactions::from_pairs(80, 40, pairs).unwrap();
    let (train, test) = all.split_random(0.2, 3).unwrap();
    let params = AlsParams::builder()
        .no_components(8)
        .alpha(4.0)
        .build()
        .unwrap();
    let mut model = AlsModel::collaborative(params, 80, 40).unwrap();
    model.fit(&train, AlsFitOptions::iterations(8)).unwrap();
    let m = evaluate(&model, &test, Some(&train), &EvalOptions::default()).unwrap();
    assert!(m.auc > 0.95, "{m:?}");
    let top = model.recommend(1, 3, |i| train.contains(1, i)).unwrap();
    assert!(top.iter().all(|&(i, _)| i % 4 == 1), "{top:?}");
}

#[test]
fn shape_and_setting_errors() {
    let x = random_interactions(5, 4, 0.5, 1);
    let mut m = AlsModel::collaborative(AlsParams::default(), 6, 4).unwrap();
    assert!(m.fit(&x, AlsFitOptions::iterations(1)).is_err());
    let mut m = AlsModel::collaborative(AlsParams::default(), 5, 4).unwrap();
    assert!(m.fit(&x, AlsFitOptions::iterations(1).threads(0)).is_err());
    let empty = Interactions::from_pairs(5, 4, Vec::new()).unwrap();
    assert!(m.fit(&empty, AlsFitOptions::iterations(1)).is_err());
    assert!(AlsModel::from_factors(
        AlsParams::default(),
        Array2::zeros((2, 3)),
        Array2::zeros((2, 10))
    )
    .is_err());
    let mut nan = Array2::zeros((2, 10));
    nan[[1, 1]] = f32::NAN;
    assert!(AlsModel::from_factors(AlsParams::default(), nan, Array2::zeros((2, 10))).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The training loss never increases from one sweep to the next (up to f32 rounding of
    /// the factors), for every solver, with and without features.
    #[test]
    fn loss_never_increases(
        seed in 0u64..1000,
        alpha in 0.0f32..6.0,
        lambda in 0.01f32..1.0,
        k in 1usize..6,
        solver in 0usize..4,
        features in any::<bool>(),
    ) {
        let (n_users, n_items) = (14, 11);
        let x = random_interactions(n_users, n_items, 0.3, seed);
        let builder = AlsParams::builder()
            .no_components(k)
            .alpha(alpha)
            .regularization(lambda)
            .feature_cg_steps(1 + solver)
            .seed(seed);
        let params = match solver {
            0 => builder.solver(AlsSolver::Cholesky),
            s => builder.cg_steps(s),
        }
        .build()
        .unwrap();
        let mut model = if features {
            AlsModel::new(
                params,
                random_features(n_users, 5, seed + 1),
                random_features(n_items, 4, seed + 2),
            )
            .unwrap()
        } else {
            AlsModel::collaborative(params, n_users, n_items).unwrap()
        };
        let mut previous = model.loss(&x).unwrap();
        let reports = model
            .fit_partial(&x, AlsFitOptions::iterations(6).with_loss())
            .unwrap();
        for r in reports {
            let loss = r.loss.unwrap();
            prop_assert!(
                loss <= previous * (1.0 + 1e-5) + 1e-9,
                "sweep {}: loss {} after {}",
                r.iteration,
                loss,
                previous
            );
            previous = loss;
        }
        prop_assert!((model.loss(&x).unwrap() - previous).abs() <= 1e-9 * previous.max(1.0));
    }
}

/// Cold start: a feature row gives the same representation as a trained row with the same
/// features, and the scorer scores a feature-described user by it.
#[test]
fn feature_rows_represent_new_users_and_items() {
    use recsys_core::{Scorer, UserQuery};
    let x = random_interactions(10, 9, 0.4, 21);
    let uf = random_features(10, 4, 22);
    let itf = random_features(9, 5, 23);
    let params = AlsParams::builder()
        .no_components(3)
        .alpha(2.0)
        .regularization(0.2)
        .build()
        .unwrap();
    let mut model = AlsModel::new(params, uf.clone(), itf.clone()).unwrap();
    model.fit(&x, AlsFitOptions::iterations(3)).unwrap();
    let items = model.item_factors();
    let users = model.user_factors();
    for i in 0..9 {
        let (f, w) = itf.row(i);
        let row: Vec<(usize, f32)> = f.iter().copied().zip(w.iter().copied()).collect();
        let r = model.item_representation_from_features(&row).unwrap();
        for d in 0..3 {
            assert!((r.vector[d] - items[[i, d]]).abs() < 1e-5);
        }
    }
    let (f, w) = uf.row(4);
    let row: Vec<(usize, f32)> = f.iter().copied().zip(w.iter().copied()).collect();
    let mut by_features = Vec::new();
    model
        .score_all(UserQuery::Features(&row), &mut by_features)
        .unwrap();
    let mut known = Vec::new();
    model.score_all(UserQuery::Known(4), &mut known).unwrap();
    for (i, (a, b)) in by_features.iter().zip(&known).enumerate() {
        let direct: f32 = (0..3).map(|d| users[[4, d]] * items[[i, d]]).sum();
        assert!(
            (a - b).abs() < 1e-5 && (a - direct).abs() < 1e-4,
            "{a} {b} {direct}"
        );
    }
    assert!(model
        .user_representation_from_features(&[(4, 1.0)])
        .is_err());
    assert!(model.score_all(UserQuery::Anonymous, &mut known).is_err());
}
