//! The training kernels: LightFM's per-example SGD steps, run Hogwild-style across threads.
//!
//! # Concurrency
//!
//! Threads update the shared parameter arrays without locks (Hogwild!, Recht et al. 2011),
//! exactly as LightFM does. Unlike LightFM's C code we do this without undefined
//! behaviour: during training every access to a parameter goes through a relaxed
//! `AtomicU32` view of the `f32` storage ([`Shared`]), so concurrent reads and writes are
//! races in the algorithmic sense only (an update may be lost), never torn or UB.
//! On x86-64 and AArch64 relaxed atomic loads/stores compile to plain moves.

// Index loops over latent components read more clearly than zipped iterators here.
#![allow(clippy::needless_range_loop)]

use std::sync::atomic::{AtomicU32, Ordering};

use crate::interactions::Interactions;
use crate::matrix::FeatureMatrix;
use crate::params::{Loss, Schedule};
use crate::rng::Rng;

/// WARP's gradient clip (LightFM's `MAX_LOSS`).
const MAX_LOSS: f32 = 10.0;

/// Parameters of one side of the model (users or items), with optimiser state.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Side {
    /// `n_features × k`, row-major.
    pub embeddings: Vec<f32>,
    pub biases: Vec<f32>,
    /// Adagrad: running sum of squared gradients (starts at 1). Adadelta: E[g²].
    pub emb_acc: Vec<f32>,
    /// Adadelta only: E[Δx²] (empty for adagrad).
    pub emb_delta: Vec<f32>,
    pub bias_acc: Vec<f32>,
    pub bias_delta: Vec<f32>,
}

impl Side {
    /// LightFM's initialisation: embeddings uniform in `[-0.5, 0.5) / k`, zero biases,
    /// adagrad accumulators at 1 (adadelta's at 0).
    pub fn new(n_features: usize, k: usize, schedule: Schedule, rng: &mut Rng) -> Side {
        let mut s = Side {
            embeddings: Vec::new(),
            biases: Vec::new(),
            emb_acc: Vec::new(),
            emb_delta: Vec::new(),
            bias_acc: Vec::new(),
            bias_delta: Vec::new(),
        };
        s.grow(n_features, k, schedule, rng);
        s
    }

    /// Appends freshly initialised parameters for features `len..n_features`.
    pub fn grow(&mut self, n_features: usize, k: usize, schedule: Schedule, rng: &mut Rng) {
        let old = self.biases.len();
        if n_features <= old {
            return;
        }
        for _ in old * k..n_features * k {
            self.embeddings
                .push(((rng.next_f64() - 0.5) / k as f64) as f32);
        }
        self.biases.resize(n_features, 0.0);
        let (acc0, adadelta) = match schedule {
            Schedule::Adagrad => (1.0, false),
            Schedule::Adadelta { .. } => (0.0, true),
        };
        self.emb_acc.resize(n_features * k, acc0);
        self.bias_acc.resize(n_features, acc0);
        if adadelta {
            self.emb_delta.resize(n_features * k, 0.0);
            self.bias_delta.resize(n_features, 0.0);
        }
    }

    pub fn n_features(&self) -> usize {
        self.biases.len()
    }

    pub fn all_finite(&self) -> bool {
        self.embeddings.iter().all(|v| v.is_finite()) && self.biases.iter().all(|v| v.is_finite())
    }

    fn view(&mut self) -> SideView {
        SideView {
            emb: Shared::new(&mut self.embeddings),
            bias: Shared::new(&mut self.biases),
            emb_acc: Shared::new(&mut self.emb_acc),
            emb_delta: Shared::new(&mut self.emb_delta),
            bias_acc: Shared::new(&mut self.bias_acc),
            bias_delta: Shared::new(&mut self.bias_delta),
        }
    }
}

/// A lock-free view of an `f32` slice; every access is a relaxed atomic operation.
#[derive(Clone, Copy)]
struct Shared {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: all accesses through `Shared` are atomic (see `get`/`set`), and the slice it points
// to is mutably borrowed for as long as any `Shared` exists (the borrow of `Side` in `train`).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    fn new(xs: &mut [f32]) -> Shared {
        Shared {
            ptr: xs.as_mut_ptr(),
            len: xs.len(),
        }
    }

    #[inline(always)]
    fn atomic(&self, i: usize) -> &AtomicU32 {
        assert!(
            i < self.len,
            "parameter index {i} out of range {}",
            self.len
        );
        // SAFETY: in bounds (checked above); `f32` and `AtomicU32` have the same size and
        // alignment; while the view lives, the storage is only accessed atomically.
        unsafe { AtomicU32::from_ptr(self.ptr.add(i).cast::<u32>()) }
    }

    #[inline(always)]
    fn get(&self, i: usize) -> f32 {
        f32::from_bits(self.atomic(i).load(Ordering::Relaxed))
    }

    #[inline(always)]
    fn set(&self, i: usize, v: f32) {
        self.atomic(i).store(v.to_bits(), Ordering::Relaxed)
    }
}

#[derive(Clone, Copy)]
struct SideView {
    emb: Shared,
    bias: Shared,
    emb_acc: Shared,
    emb_delta: Shared,
    bias_acc: Shared,
    bias_delta: Shared,
}

/// One adaptive SGD step on a single parameter; returns nothing (the local learning rate is
/// folded into the L2 decay).
#[inline(always)]
fn step(param: Shared, acc: Shared, delta: Shared, i: usize, grad: f32, opt: &Opt, alpha: f32) {
    let lr = match opt.schedule {
        Schedule::Adagrad => {
            let a = acc.get(i);
            let lr = opt.learning_rate / a.sqrt();
            param.set(i, param.get(i) - lr * grad);
            acc.set(i, a + grad * grad);
            lr
        }
        Schedule::Adadelta { rho, epsilon } => {
            let a = rho * acc.get(i) + (1.0 - rho) * grad * grad;
            acc.set(i, a);
            let d = delta.get(i);
            let lr = (d + epsilon).sqrt() / (a + epsilon).sqrt();
            let update = lr * grad;
            delta.set(i, rho * d + (1.0 - rho) * update * update);
            param.set(i, param.get(i) - update);
            lr
        }
    };
    if alpha > 0.0 {
        let decay = (1.0 - alpha * lr).max(0.0);
        param.set(i, param.get(i) * decay);
    }
}

#[derive(Clone, Copy)]
struct Opt {
    schedule: Schedule,
    learning_rate: f32,
}

/// Everything a worker thread needs.
pub(crate) struct Trainer<'a> {
    pub k: usize,
    pub loss: Loss,
    pub schedule: Schedule,
    pub learning_rate: f32,
    pub user_alpha: f32,
    pub item_alpha: f32,
    pub max_sampled: usize,
    pub user_features: &'a FeatureMatrix,
    pub item_features: &'a FeatureMatrix,
    pub interactions: &'a Interactions,
}

/// Per-thread running totals of the loss estimate.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LossTally {
    pub sum: f64,
    pub count: u64,
}

impl LossTally {
    pub fn merge(self, o: LossTally) -> LossTally {
        LossTally {
            sum: self.sum + o.sum,
            count: self.count + o.count,
        }
    }
}

struct Worker<'a> {
    t: &'a Trainer<'a>,
    users: SideView,
    items: SideView,
    opt: Opt,
    user_repr: Vec<f32>,
    pos_repr: Vec<f32>,
    neg_repr: Vec<f32>,
    grad: Vec<f32>,
    rng: Rng,
    tally: LossTally,
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four independent accumulators let the compiler vectorise and pipeline.
    let mut acc = [0.0f32; 4];
    let (ca, ra) = a.split_at(a.len() / 4 * 4);
    let (cb, rb) = b.split_at(ca.len());
    for (x, y) in ca.chunks_exact(4).zip(cb.chunks_exact(4)) {
        for j in 0..4 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

pub(crate) fn dot_product(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b)
}

#[inline(always)]
fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

impl<'a> Worker<'a> {
    /// Writes the representation (k latent values, then the bias) of `row` into `out`.
    #[inline]
    fn repr(side: &SideView, fm: &FeatureMatrix, row: usize, k: usize, out: &mut [f32]) {
        out.iter_mut().for_each(|v| *v = 0.0);
        let (feats, weights) = fm.row(row);
        for (&f, &w) in feats.iter().zip(weights) {
            let base = f * k;
            for c in 0..k {
                out[c] += w * side.emb.get(base + c);
            }
            out[k] += w * side.bias.get(f);
        }
    }

    #[inline]
    fn predict(&self, a: &[f32], b: &[f32]) -> f32 {
        let k = self.t.k;
        dot(&a[..k], &b[..k]) + a[k] + b[k]
    }

    /// Applies `grad` (k latent components; bias gradient `bias_grad`) to every feature of `row`.
    #[inline]
    fn apply(
        &self,
        side: SideView,
        fm: &FeatureMatrix,
        row: usize,
        grad: &[f32],
        bias_grad: Option<f32>,
        alpha: f32,
    ) {
        let k = self.t.k;
        let (feats, weights) = fm.row(row);
        for (&f, &w) in feats.iter().zip(weights) {
            let base = f * k;
            for (c, &g) in grad.iter().enumerate() {
                step(
                    side.emb,
                    side.emb_acc,
                    side.emb_delta,
                    base + c,
                    g * w,
                    &self.opt,
                    alpha,
                );
            }
            if let Some(bg) = bias_grad {
                step(
                    side.bias,
                    side.bias_acc,
                    side.bias_delta,
                    f,
                    bg * w,
                    &self.opt,
                    alpha,
                );
            }
        }
    }

    /// Pairwise update: raise the positive's score, lower the negative's, by `loss`.
    fn pairwise_update(&mut self, loss: f32, user: usize, pos: usize, neg: usize) {
        let k = self.t.k;
        let (uf, itf) = (self.t.user_features, self.t.item_features);
        let mut grad = std::mem::take(&mut self.grad);
        // Positive item: d(-score_pos)/d(item) = -user.
        for c in 0..k {
            grad[c] = -loss * self.user_repr[c];
        }
        self.apply(
            self.items,
            itf,
            pos,
            &grad[..k],
            Some(-loss),
            self.t.item_alpha,
        );
        for c in 0..k {
            grad[c] = loss * self.user_repr[c];
        }
        self.apply(
            self.items,
            itf,
            neg,
            &grad[..k],
            Some(loss),
            self.t.item_alpha,
        );
        // User: d(score_neg - score_pos)/d(user) = neg - pos; the user bias cancels out.
        for c in 0..k {
            grad[c] = loss * (self.neg_repr[c] - self.pos_repr[c]);
        }
        self.apply(self.users, uf, user, &grad[..k], None, self.t.user_alpha);
        self.grad = grad;
    }

    fn logistic(&mut self, e: usize) {
        let x = self.t.interactions;
        let (user, item) = (x.users_raw()[e] as usize, x.items_raw()[e] as usize);
        let weight = x.weights_raw()[e];
        let y = if x.values_raw()[e] > 0.0 { 1.0 } else { 0.0 };
        let k = self.t.k;
        Self::repr(
            &self.users,
            self.t.user_features,
            user,
            k,
            &mut self.user_repr,
        );
        Self::repr(
            &self.items,
            self.t.item_features,
            item,
            k,
            &mut self.pos_repr,
        );
        let p = sigmoid(self.predict(&self.user_repr, &self.pos_repr));
        let loss = weight * (p - y);
        let ll = -(if y > 0.0 { p } else { 1.0 - p }).max(1e-12).ln();
        self.tally.sum += (weight * ll) as f64;
        self.tally.count += 1;
        let mut grad = std::mem::take(&mut self.grad);
        for c in 0..k {
            grad[c] = loss * self.user_repr[c];
        }
        self.apply(
            self.items,
            self.t.item_features,
            item,
            &grad[..k],
            Some(loss),
            self.t.item_alpha,
        );
        for c in 0..k {
            grad[c] = loss * self.pos_repr[c];
        }
        self.apply(
            self.users,
            self.t.user_features,
            user,
            &grad[..k],
            Some(loss),
            self.t.user_alpha,
        );
        self.grad = grad;
    }

    /// Draws a uniformly random item that `user` has not interacted with; `None` if the user
    /// has interacted with (nearly) everything.
    #[inline]
    fn draw_negative(&mut self, user: usize) -> Option<usize> {
        let x = self.t.interactions;
        let n_items = x.n_items();
        if x.user_items(user).len() >= n_items {
            return None;
        }
        // LightFM redraws forever; we bound the redraws so a user with almost every item
        // cannot stall training.
        for _ in 0..1000 {
            let cand = self.rng.below(n_items);
            if !x.contains(user, cand) {
                return Some(cand);
            }
        }
        None
    }

    /// WARP's negative search and update for a positive whose representation is in
    /// `pos_repr`. `n_negatives` is the rank denominator (LightFM: n_items - 1 for WARP,
    /// the number of the user's negatives for WARP-kOS).
    fn warp_search(
        &mut self,
        user: usize,
        pos: usize,
        pos_pred: f32,
        weight: f32,
        n_negatives: usize,
    ) {
        let k = self.t.k;
        let mut sampled = 0usize;
        while sampled < self.t.max_sampled {
            let Some(neg) = self.draw_negative(user) else {
                break;
            };
            sampled += 1;
            Self::repr(
                &self.items,
                self.t.item_features,
                neg,
                k,
                &mut self.neg_repr,
            );
            let neg_pred = self.predict(&self.user_repr, &self.neg_repr);
            if neg_pred > pos_pred - 1.0 {
                let rank_estimate = ((n_negatives / sampled) as f32).max(1.0);
                let loss = (weight * rank_estimate.ln()).min(MAX_LOSS);
                self.tally.sum += loss as f64;
                self.tally.count += 1;
                self.pairwise_update(loss, user, pos, neg);
                return;
            }
        }
        self.tally.count += 1;
    }

    fn warp(&mut self, e: usize) {
        let x = self.t.interactions;
        if x.values_raw()[e] <= 0.0 {
            return;
        }
        let (user, pos) = (x.users_raw()[e] as usize, x.items_raw()[e] as usize);
        let k = self.t.k;
        Self::repr(
            &self.users,
            self.t.user_features,
            user,
            k,
            &mut self.user_repr,
        );
        Self::repr(
            &self.items,
            self.t.item_features,
            pos,
            k,
            &mut self.pos_repr,
        );
        let pos_pred = self.predict(&self.user_repr, &self.pos_repr);
        let n_neg = x.n_items().saturating_sub(1);
        self.warp_search(user, pos, pos_pred, x.weights_raw()[e], n_neg);
    }

    fn bpr(&mut self, e: usize) {
        let x = self.t.interactions;
        if x.values_raw()[e] <= 0.0 {
            return;
        }
        let (user, pos) = (x.users_raw()[e] as usize, x.items_raw()[e] as usize);
        let weight = x.weights_raw()[e];
        // LightFM draws the negative from the item column of the interaction list, so
        // negatives follow popularity. Bounded redraws as in `draw_negative`.
        let n = x.len();
        let mut neg = None;
        for _ in 0..1000 {
            let cand = x.items_raw()[self.rng.below(n)] as usize;
            if !x.contains(user, cand) {
                neg = Some(cand);
                break;
            }
        }
        let Some(neg) = neg else { return };
        let k = self.t.k;
        Self::repr(
            &self.users,
            self.t.user_features,
            user,
            k,
            &mut self.user_repr,
        );
        Self::repr(
            &self.items,
            self.t.item_features,
            pos,
            k,
            &mut self.pos_repr,
        );
        Self::repr(
            &self.items,
            self.t.item_features,
            neg,
            k,
            &mut self.neg_repr,
        );
        let diff = self.predict(&self.user_repr, &self.pos_repr)
            - self.predict(&self.user_repr, &self.neg_repr);
        let s = sigmoid(diff);
        self.tally.sum += (weight * -(s.max(1e-12)).ln()) as f64;
        self.tally.count += 1;
        self.pairwise_update(weight * (1.0 - s), user, pos, neg);
    }

    fn warp_kos(&mut self, user: usize, kth: usize, n: usize) {
        let x = self.t.interactions;
        let positives = x.user_items(user);
        if positives.is_empty() {
            return;
        }
        let k = self.t.k;
        Self::repr(
            &self.users,
            self.t.user_features,
            user,
            k,
            &mut self.user_repr,
        );
        let no_positives = n.min(positives.len());
        let mut pairs: Vec<(usize, f32)> = Vec::with_capacity(no_positives);
        for _ in 0..no_positives {
            let item = positives[self.rng.below(positives.len())] as usize;
            Self::repr(
                &self.items,
                self.t.item_features,
                item,
                k,
                &mut self.pos_repr,
            );
            pairs.push((item, self.predict(&self.user_repr, &self.pos_repr)));
        }
        // Descending by score; stable for equal scores so runs are reproducible.
        pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (pos, pos_pred) = pairs[kth.min(no_positives) - 1];
        Self::repr(
            &self.items,
            self.t.item_features,
            pos,
            k,
            &mut self.pos_repr,
        );
        let n_neg = x.n_items() - positives.len();
        self.warp_search(user, pos, pos_pred, 1.0, n_neg);
    }
}

/// Runs one epoch over `order` (example indices, or user indices for WARP-kOS) split into
/// `threads` contiguous chunks. With one thread everything runs on the calling thread and the
/// result is a pure function of the inputs and `seeds[0]`.
pub(crate) fn run_epoch(
    t: &Trainer<'_>,
    users: &mut Side,
    items: &mut Side,
    order: &[u32],
    seeds: &[u64],
    pool: Option<&rayon::ThreadPool>,
) -> LossTally {
    let uv = users.view();
    let iv = items.view();
    let k = t.k;
    let make_worker = |seed: u64| Worker {
        t,
        users: uv,
        items: iv,
        opt: Opt {
            schedule: t.schedule,
            learning_rate: t.learning_rate,
        },
        user_repr: vec![0.0; k + 1],
        pos_repr: vec![0.0; k + 1],
        neg_repr: vec![0.0; k + 1],
        grad: vec![0.0; k],
        rng: Rng::new(seed),
        tally: LossTally::default(),
    };
    let run = |chunk: &[u32], seed: u64| -> LossTally {
        let mut w = make_worker(seed);
        match t.loss {
            Loss::Logistic => chunk.iter().for_each(|&e| w.logistic(e as usize)),
            Loss::Bpr => chunk.iter().for_each(|&e| w.bpr(e as usize)),
            Loss::Warp => chunk.iter().for_each(|&e| w.warp(e as usize)),
            Loss::WarpKos { k: kth, n } => {
                chunk.iter().for_each(|&u| w.warp_kos(u as usize, kth, n))
            }
        }
        w.tally
    };
    let threads = seeds.len().max(1);
    match pool {
        Some(pool) if threads > 1 => {
            let chunk_len = order.len().div_ceil(threads).max(1);
            let chunks: Vec<&[u32]> = order.chunks(chunk_len).collect();
            let mut tallies = vec![LossTally::default(); chunks.len()];
            pool.scope(|s| {
                for ((chunk, seed), out) in chunks.iter().zip(seeds).zip(tallies.iter_mut()) {
                    let run = &run;
                    s.spawn(move |_| *out = run(chunk, *seed));
                }
            });
            tallies
                .into_iter()
                .fold(LossTally::default(), LossTally::merge)
        }
        _ => run(order, seeds[0]),
    }
}
