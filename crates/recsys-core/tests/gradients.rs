//! Every loss's gradient, as applied by the real training kernel, against finite differences.
//!
//! On its first step adagrad's accumulators are 1, so one update is plain gradient descent:
//! `θ_after = θ_before − lr · ∂f/∂θ`. We run exactly one training example through
//! `fit_partial`, recover the applied gradient from the parameter change, and compare it with
//! central finite differences of the loss `f` evaluated on the parameters before the step.
//! The fixture uses weighted, multi-feature rows so it also checks how feature weights enter
//! the gradients.

use recsys_core::{
    FeatureMatrix, FitOptions, HybridModel, Hyperparameters, Interaction, Interactions, Loss,
};

const K: usize = 3;
const LR: f32 = 0.05;

#[derive(Clone, Debug)]
struct Params {
    ue: Vec<f64>,
    ub: Vec<f64>,
    ie: Vec<f64>,
    ib: Vec<f64>,
}

impl Params {
    fn of(m: &HybridModel) -> Params {
        let c = |v: Vec<f32>| v.into_iter().map(f64::from).collect();
        Params {
            ue: c(m.user_feature_embeddings().iter().copied().collect()),
            ub: c(m.user_feature_biases().to_vec()),
            ie: c(m.item_feature_embeddings().iter().copied().collect()),
            ib: c(m.item_feature_biases().to_vec()),
        }
    }

    fn flat(&self) -> Vec<f64> {
        [&self.ue[..], &self.ub[..], &self.ie[..], &self.ib[..]].concat()
    }

    fn with_flat(&self, x: &[f64]) -> Params {
        let (a, b, c) = (self.ue.len(), self.ub.len(), self.ie.len());
        Params {
            ue: x[..a].to_vec(),
            ub: x[a..a + b].to_vec(),
            ie: x[a + b..a + b + c].to_vec(),
            ib: x[a + b + c..].to_vec(),
        }
    }
}

fn user_rows() -> Vec<Vec<(usize, f32)>> {
    vec![vec![(0, 0.5), (1, 1.5)], vec![(2, 1.0)]]
}

fn item_rows() -> Vec<Vec<(usize, f32)>> {
    // Items 1 and 2 are identical, so whichever negative WARP draws, the gradient is the same.
    vec![
        vec![(0, 0.7), (1, 0.3)],
        vec![(2, 1.2), (3, 0.4)],
        vec![(2, 1.2), (3, 0.4)],
    ]
}

fn score(p: &Params, u: usize, i: usize) -> f64 {
    let (ur, ir) = (&user_rows()[u], &item_rows()[i]);
    let mut s = 0.0;
    for &(f, wf) in ur {
        s += wf as f64 * p.ub[f];
        for &(g, wg) in ir {
            let dot: f64 = (0..K).map(|c| p.ue[f * K + c] * p.ie[g * K + c]).sum();
            s += wf as f64 * wg as f64 * dot;
        }
    }
    for &(g, wg) in ir {
        s += wg as f64 * p.ib[g];
    }
    s
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `x` rounded to the nearest bfloat16, ties to even (what WARP scores candidates with).
fn bf16(x: f32) -> f32 {
    let b = x.to_bits();
    f32::from_bits((b + 0x7FFF + ((b >> 16) & 1)) >> 16 << 16)
}

/// WARP's loss as the user's parameters see it: the negative's term comes from its
/// bfloat16 scoring row (computed in `f32` from the parameters before the step, then
/// rounded), the positive's from the exact parameters.
fn warp_user_loss(before: &Params, w: f64, pos: usize, neg: usize) -> impl Fn(&Params) -> f64 {
    let rounded: Vec<f64> = (0..K)
        .map(|c| {
            let mut v = 0.0f32;
            for &(g, wg) in &item_rows()[neg] {
                v += wg * before.ie[g * K + c] as f32;
            }
            bf16(v) as f64
        })
        .collect();
    move |p: &Params| {
        let mut s = 0.0;
        for &(f, wf) in &user_rows()[0] {
            for (c, r) in rounded.iter().enumerate() {
                s += wf as f64 * p.ue[f * K + c] * r;
            }
        }
        w * (s - score(p, 0, pos))
    }
}

/// Trains one epoch on `entries` and checks the applied gradient against `loss_fn`.
fn check(loss: Loss, entries: Vec<Interaction>, alpha: f32, loss_fn: impl Fn(&Params) -> f64) {
    check_with(loss, entries, alpha, loss_fn, None)
}

/// A WARP-family step of user 0 with positive item 0 and negative item 1, loss weight `w`:
/// [`check_with`] the pairwise loss, the user's gradient from [`warp_user_loss`].
fn check_warp(loss: Loss, entries: Vec<Interaction>, alpha: f32, w: f64) {
    let pairwise = move |p: &Params| w * (score(p, 0, 1) - score(p, 0, 0));
    check_with(loss, entries, alpha, pairwise, Some((w, 0, 1)));
}

/// [`check`]; with `warp_user = Some((w, pos, neg))` the user embeddings' gradient is
/// checked against [`warp_user_loss`] instead of `loss_fn`.
fn check_with(
    loss: Loss,
    entries: Vec<Interaction>,
    alpha: f32,
    loss_fn: impl Fn(&Params) -> f64,
    warp_user: Option<(f64, usize, usize)>,
) {
    let params = Hyperparameters::builder()
        .loss(loss)
        .no_components(K)
        .learning_rate(LR)
        .item_alpha(alpha)
        .user_alpha(alpha)
        // As in LightFM, a drawn positive that violates the margin is skipped but counted,
        // which would halve the WARP rank estimates below; with this seed every WARP test's
        // first draw is a negative (seed 3 draws the positive first for WARP-kOS).
        .seed(4)
        .build()
        .unwrap();
    let uf = FeatureMatrix::from_rows(3, user_rows()).unwrap();
    let itf = FeatureMatrix::from_rows(4, item_rows()).unwrap();
    let mut model = HybridModel::new(params, uf, itf).unwrap();
    let x = Interactions::from_entries(2, 3, entries).unwrap();
    let before = Params::of(&model);
    model.fit_partial(&x, FitOptions::epochs(1)).unwrap();
    let after = Params::of(&model);

    let theta = before.flat();
    let user_fn = warp_user.map(|(w, pos, neg)| warp_user_loss(&before, w, pos, neg));
    let h = 1e-4;
    let mut checked_nonzero = 0;
    for (j, (&b, &a)) in theta.iter().zip(after.flat().iter()).enumerate() {
        let mut plus = theta.clone();
        plus[j] += h;
        let mut minus = theta.clone();
        minus[j] -= h;
        let f: &dyn Fn(&Params) -> f64 = match &user_fn {
            Some(u) if j < before.ue.len() => u,
            _ => &loss_fn,
        };
        let fd = (f(&before.with_flat(&plus)) - f(&before.with_flat(&minus))) / (2.0 * h);
        // Without L2: a = b − lr·g. With L2 on touched parameters: a = (b − lr·g)(1 − α·lr).
        let expected_after = if a != b && alpha > 0.0 {
            (b - LR as f64 * fd) * (1.0 - alpha as f64 * LR as f64)
        } else {
            b - LR as f64 * fd
        };
        assert!((a - expected_after).abs() < 2e-6, "{loss:?}: parameter {j}: after {a}, expected {expected_after} (before {b}, fd gradient {fd})");
        if fd.abs() > 1e-3 {
            checked_nonzero += 1;
        }
    }
    assert!(
        checked_nonzero >= 10,
        "{loss:?}: only {checked_nonzero} non-zero gradients"
    );
}

fn positive(user: usize, item: usize, weight: f32) -> Interaction {
    Interaction {
        user,
        item,
        value: 1.0,
        weight,
    }
}

#[test]
fn logistic_positive() {
    check(Loss::Logistic, vec![positive(0, 0, 1.5)], 0.0, |p| {
        -1.5 * sigmoid(score(p, 0, 0)).ln()
    });
}

#[test]
fn logistic_negative() {
    let neg = Interaction {
        value: 0.0,
        ..positive(0, 1, 2.0)
    };
    check(Loss::Logistic, vec![neg], 0.0, |p| {
        -2.0 * (1.0 - sigmoid(score(p, 0, 1))).ln()
    });
}

#[test]
fn bpr() {
    // User 1's entry is a negative label: skipped as a training example, but its item is in
    // the interaction list BPR samples negatives from (LightFM's behaviour).
    let entries = vec![
        positive(0, 0, 1.5),
        Interaction {
            value: -1.0,
            ..positive(1, 1, 1.0)
        },
    ];
    check(Loss::Bpr, entries, 0.0, |p| {
        -1.5 * sigmoid(score(p, 0, 0) - score(p, 0, 1)).ln()
    });
}

#[test]
fn warp() {
    // 3 items, 1 positive: the first draw violates, so the rank estimate is
    // floor((3 - 1) / 1) = 2 and the loss weight is ln 2, times the sample weight.
    let w = 1.5 * 2f64.ln();
    check_warp(Loss::Warp, vec![positive(0, 0, 1.5)], 0.0, w);
}

#[test]
fn warp_kos() {
    // WARP-kOS ignores sample weights; its rank denominator is n_items - 1 = 2, as WARP's.
    let w = 2f64.ln();
    check_warp(
        Loss::WarpKos { k: 1, n: 3 },
        vec![positive(0, 0, 1.5)],
        0.0,
        w,
    );
}

#[test]
fn warp_with_l2_decays_touched_parameters() {
    let w = 2f64.ln();
    check_warp(Loss::Warp, vec![positive(0, 0, 1.0)], 0.1, w);
}
