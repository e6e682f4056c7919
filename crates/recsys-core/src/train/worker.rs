//! A training thread: its look-ahead pipeline and the per-loss steps (logistic, BPR, WARP,
//! WARP-kOS).

use crate::kernels::prefetch_ptr;
use crate::params::{Loss, Schedule};
use crate::rng::Rng;

use super::rows::{Opt, RowBuf};
use super::shared::{apply, prefetch, prefetch_words, repr, store_row, Shared, SideView};
use super::work::{Example, FeatureRows};
use super::{compact, hot, HotRows, LossTally, Trainer};

/// How many examples ahead the parameters are prefetched.
const AHEAD: usize = 4;

/// Slots of per-example look-ahead state (a power of two above `2 × AHEAD`: BPR's negative
/// is drawn two stages ahead).
const SLOTS: usize = 16;

/// WARP's negative candidates are drawn (and their scoring rows prefetched) this many draws
/// before they are scored: about four examples' worth at five draws per positive.
const CANDIDATES_AHEAD: usize = 24;

/// Capacity of the ring of drawn candidates (at least `CANDIDATES_AHEAD`).
const RING: usize = 32;
const _: () = assert!(RING >= CANDIDATES_AHEAD);

/// WARP's gradient clip (LightFM's `MAX_LOSS`).
const MAX_LOSS: f32 = 10.0;

pub(super) struct Worker<'a> {
    t: &'a Trainer<'a>,
    users: SideView<'a>,
    items: SideView<'a>,
    /// The feature rows as this thread addresses them (hot features as slots of its copies).
    user_rows: FeatureRows<'a>,
    item_rows: FeatureRows<'a>,
    /// This thread's copies of the hot rows (multi-threaded training; they merge into
    /// `users.main` / `items.main`), and the lock merges take.
    hot_users: Option<(hot::Replica<'a>, &'a HotRows)>,
    hot_items: Option<(hot::Replica<'a>, &'a HotRows)>,
    merge_lock: &'a std::sync::Mutex<()>,
    opt: Opt,
    user_repr: Vec<f32>,
    pos_repr: Vec<f32>,
    neg_repr: Vec<f32>,
    grad: Vec<f32>,
    rowbuf: RowBuf,
    rng: Rng,
    /// WARP: the stream of negative candidates, drawn `CANDIDATES_AHEAD` draws before they
    /// are scored (a ring: `ahead_len` of them from `ahead_head`), whichever example
    /// scores them.
    ahead: [u32; RING],
    ahead_head: usize,
    ahead_len: usize,
    /// BPR: the interaction index of each example's negative (stage 1), then the negative
    /// itself (stage 2).
    bpr_neg: [u32; SLOTS],
    /// WARP: every item's (or class's, see [`Trainer::item_class`]) representation in
    /// bfloat16 (see [`compact`]), rebuilt at the start of each epoch and refreshed for the
    /// rows an update touches.
    scoring: Option<Shared<'a>>,
    /// Words per row of `scoring`.
    scoring_stride: usize,
    /// The user's representation as [`compact::dot`] wants it: `k` latent values, 1 (for
    /// the item bias), zeros.
    user_ext: Vec<f32>,
    /// Scratch: an exact representation, and its encoded row.
    cache_tmp: Vec<f32>,
    words: Vec<f32>,
    /// WARP: the negative of the previous update, whose own step is deferred to the next
    /// example (its parameters are loading meanwhile), with its loss and the user
    /// representation its gradient uses.
    pending: Option<(u32, f32)>,
    pending_user: Vec<f32>,
    /// Some user's training positives are every item (WARP has no negative for them).
    saturated_users: bool,
    /// WARP-kOS: the step's sampled positives (feature rows) and their scores, reused.
    kos_pairs: Vec<(usize, f32)>,
    pub(super) tally: LossTally,
}

/// Which of a worker's representation buffers [`Worker::load_repr`] fills.
#[derive(Clone, Copy)]
enum Repr {
    User,
    Pos,
    Neg,
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

#[inline(always)]
fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

impl<'a> Worker<'a> {
    /// Row `row`'s representation into `user_repr` (a user), `pos_repr` or `neg_repr` (an
    /// item).
    #[inline(always)]
    fn load_repr(&mut self, into: Repr, row: usize) {
        let (k, avx) = (self.t.k, self.opt.avx);
        let (side, rows, out) = match into {
            Repr::User => (&self.users, self.user_rows, &mut self.user_repr),
            Repr::Pos => (&self.items, self.item_rows, &mut self.pos_repr),
            Repr::Neg => (&self.items, self.item_rows, &mut self.neg_repr),
        };
        repr(side, rows, row, k, out, avx);
    }

    /// Asks the CPU to start loading the parameters (and, with `acc`, the optimiser state) of
    /// `row`'s features.
    #[inline(always)]
    fn prefetch_row(side: &SideView, rows: FeatureRows<'_>, row: usize, acc: bool) {
        let one = |f: usize| {
            let (b, base) = side.at(f);
            prefetch(b.params, base);
            if acc {
                prefetch(b.acc, base);
            }
        };
        match rows {
            FeatureRows::Identity => one(row),
            FeatureRows::Packed(rows) => rows.row(row).iter().for_each(|e| one(e.feature as usize)),
        }
    }

    /// Look-ahead stage 0 for example `ex` (`3 × AHEAD` early): where its user's and item's
    /// packed feature rows start (so stage 1 does not wait for that).
    #[inline(always)]
    fn stage0(&self, ex: &Example) {
        if let FeatureRows::Packed(rows) = self.user_rows {
            rows.prefetch_offset(ex.user as usize);
        }
        if let FeatureRows::Packed(rows) = self.item_rows {
            rows.prefetch_offset(ex.item as usize);
        }
    }

    /// Look-ahead stage 1 for example `ex` (number `j`, `2 × AHEAD` early): the user's and
    /// item's packed feature rows start loading (stage 2 reads them to prefetch parameters),
    /// and BPR draws the interaction whose item will be the negative and prefetches that
    /// entry of the item column.
    #[inline(always)]
    fn stage1(&mut self, ex: &Example, j: usize) {
        if let FeatureRows::Packed(rows) = self.user_rows {
            rows.prefetch(ex.user as usize);
        }
        if let FeatureRows::Packed(rows) = self.item_rows {
            rows.prefetch(ex.item as usize);
        }
        if let Loss::Bpr = self.t.loss {
            let items = self.t.interactions.items_raw();
            let r = self.rng.below(items.len());
            prefetch_ptr(items[r..].as_ptr().cast());
            self.bpr_neg[j % SLOTS] = r as u32;
        }
    }

    /// Look-ahead stage 2 for example `ex` (number `j`, `AHEAD` early): prefetch what it
    /// touches first (its user's and item's parameters and optimiser state, the item's
    /// scoring row; BPR: the negative's).
    #[inline(always)]
    fn stage2(&mut self, ex: &Example, j: usize) {
        let user = ex.user as usize;
        Self::prefetch_row(&self.users, self.user_rows, user, true);
        Self::prefetch_row(&self.items, self.item_rows, ex.item as usize, true);
        if let Some(scoring) = self.scoring {
            // The positive's scoring row is rewritten after its update.
            prefetch_words(
                scoring,
                ex.item as usize * self.scoring_stride,
                self.scoring_stride,
            );
        }
        let slot = j % SLOTS;
        match self.t.loss {
            Loss::Bpr => {
                let r = self.bpr_neg[slot] as usize;
                let cand = self.t.interactions.items_raw()[r];
                self.bpr_neg[slot] = cand;
                let row = self.t.item_row(cand as usize);
                Self::prefetch_row(&self.items, self.item_rows, row, true);
                self.t.positives.prefetch(user, cand as usize);
            }
            // Which candidates the example will score is not known yet (see
            // `candidate`), but they are looked up in this user's filter: load all of it
            // (up to 16 lines).
            Loss::Warp if ex.value > 0.0 => self.t.positives.prefetch_filter(user, 16),
            _ => {}
        }
    }

    /// WARP's next negative candidate: a uniform draw made `CANDIDATES_AHEAD` draws ago,
    /// whose bfloat16 scoring row was prefetched then (only its scoring row: a candidate's
    /// parameters are needed only if it wins, and its step is deferred until they have
    /// arrived). The candidates are uniform and independent of everything, so drawing them
    /// early, for whichever example comes to score them, changes nothing but which random
    /// numbers go where — and no drawn candidate is wasted.
    #[inline(always)]
    fn candidate(&mut self) -> usize {
        let n_items = self.t.interactions.n_items();
        while self.ahead_len < CANDIDATES_AHEAD {
            let c = self.rng.below(n_items);
            if let Some(scoring) = self.scoring {
                let row = self.t.item_row(c);
                prefetch_words(scoring, row * self.scoring_stride, self.scoring_stride);
            }
            self.ahead[(self.ahead_head + self.ahead_len) % RING] = c as u32;
            self.ahead_len += 1;
        }
        let c = self.ahead[self.ahead_head];
        self.ahead_head = (self.ahead_head + 1) % RING;
        self.ahead_len -= 1;
        c as usize
    }

    /// Re-encodes an item's scoring row after its parameters were updated.
    #[inline]
    fn refresh_scoring(&mut self, item: usize) {
        if let Some(scoring) = self.scoring {
            let k = self.t.k;
            repr(
                &self.items,
                self.item_rows,
                item,
                k,
                &mut self.cache_tmp,
                self.opt.avx,
            );
            // Zeros after the bias (the row's padding), so whole pieces encode at once.
            self.cache_tmp[k + 1..].fill(0.0);
            compact::encode_row(&self.cache_tmp, &mut self.words);
            let cs = self.scoring_stride;
            store_row(scoring.row(item * cs, cs), &self.words, self.opt.avx);
        }
    }

    #[inline(always)]
    fn predict(&self, a: &[f32], b: &[f32]) -> f32 {
        let k = self.t.k;
        dot(&a[..k], &b[..k]) + a[k] + b[k]
    }

    /// Applies `grad` to every feature of `row`: `k` latent components, then (when
    /// `grad.len() == k + 1`) the bias.
    #[inline]
    fn apply(
        &mut self,
        side: SideView,
        rows: FeatureRows<'_>,
        row: usize,
        grad: &[f32],
        alpha: f32,
    ) {
        let opt = self.opt;
        apply(side, rows, row, grad, alpha, &opt, &mut self.rowbuf);
    }

    /// Pairwise update: raise the positive's score, lower the negative's, by `loss`.
    fn pairwise_update(&mut self, loss: f32, user: usize, pos: usize, neg: usize) {
        // The negative's optimiser state was not prefetched with it (most candidates are
        // never updated): start loading it now and update it last.
        Self::prefetch_row(&self.items, self.item_rows, neg, true);
        self.step_positive_and_user(loss, user, pos);
        self.step_negative(loss, neg, false);
    }

    /// The positive's and the user's steps of a pairwise update, from `user_repr`,
    /// `pos_repr` and `neg_repr` as they were before either step.
    fn step_positive_and_user(&mut self, loss: f32, user: usize, pos: usize) {
        let k = self.t.k;
        let mut grad = std::mem::take(&mut self.grad);
        // Positive item: d(-score_pos)/d(item) = -user.
        for c in 0..k {
            grad[c] = -loss * self.user_repr[c];
        }
        grad[k] = -loss;
        self.apply(
            self.items,
            self.item_rows,
            pos,
            &grad[..=k],
            self.t.item_alpha,
        );
        // User: d(score_neg - score_pos)/d(user) = neg - pos; the user bias cancels out.
        for c in 0..k {
            grad[c] = loss * (self.neg_repr[c] - self.pos_repr[c]);
        }
        self.apply(
            self.users,
            self.user_rows,
            user,
            &grad[..k],
            self.t.user_alpha,
        );
        self.grad = grad;
    }

    /// The negative's step: d(score_neg)/d(item) = user, with the user representation in
    /// `pending_user` (a deferred WARP step) or `user_repr`.
    fn step_negative(&mut self, loss: f32, neg: usize, pending: bool) {
        let k = self.t.k;
        let mut grad = std::mem::take(&mut self.grad);
        let u = if pending {
            &self.pending_user
        } else {
            &self.user_repr
        };
        for c in 0..k {
            grad[c] = loss * u[c];
        }
        grad[k] = loss;
        self.apply(
            self.items,
            self.item_rows,
            neg,
            &grad[..=k],
            self.t.item_alpha,
        );
        self.grad = grad;
    }

    fn logistic(&mut self, ex: &Example) {
        let (user, item) = (ex.user as usize, ex.item as usize);
        let weight = ex.weight;
        let y = if ex.value > 0.0 { 1.0 } else { 0.0 };
        let k = self.t.k;
        self.load_repr(Repr::User, user);
        self.load_repr(Repr::Pos, item);
        let p = sigmoid(self.predict(&self.user_repr, &self.pos_repr));
        let loss = weight * (p - y);
        let ll = -(if y > 0.0 { p } else { 1.0 - p }).max(1e-12).ln();
        self.tally.sum += (weight * ll) as f64;
        self.tally.count += 1;
        let mut grad = std::mem::take(&mut self.grad);
        for c in 0..k {
            grad[c] = loss * self.user_repr[c];
        }
        grad[k] = loss;
        self.apply(
            self.items,
            self.item_rows,
            item,
            &grad[..=k],
            self.t.item_alpha,
        );
        for c in 0..k {
            grad[c] = loss * self.pos_repr[c];
        }
        grad[k] = loss;
        self.apply(
            self.users,
            self.user_rows,
            user,
            &grad[..=k],
            self.t.user_alpha,
        );
        self.grad = grad;
    }

    /// WARP's negative search and update for a positive whose representation is in
    /// `pos_repr` (and the user's in `user_repr` and `user_ext`). `n_negatives` is the rank
    /// denominator (LightFM: n_items - 1 for WARP, the number of the user's negatives for
    /// WARP-kOS).
    ///
    /// As in LightFM, up to `max_sampled` uniform draws are scored; the first that violates
    /// the margin is the negative, unless it is one of the user's positives, which is skipped
    /// but counted. Candidates are scored from the bfloat16 rows (see [`compact`]), drawn
    /// well before (see [`Self::candidate`]). Returns whether there was an update.
    fn warp_search(
        &mut self,
        user: usize,
        pos: usize,
        pos_pred: f32,
        weight: f32,
        n_negatives: usize,
    ) -> bool {
        let x = self.t.interactions;
        let k = self.t.k;
        self.tally.count += 1;
        // (A lookup per example, skipped unless some user has every item.)
        if self.saturated_users && x.user_items(user).len() >= x.n_items() {
            return false;
        }
        let scoring = self.scoring.expect("WARP training builds the scoring rows");
        let cs = self.scoring_stride;
        let user_bias = self.user_repr[k];
        let mut sampled = 0usize;
        let mut updated = false;
        while sampled < self.t.max_sampled {
            let cand = self.candidate();
            sampled += 1;
            let cand_row = self.t.item_row(cand);
            let row = scoring.row(cand_row * cs, cs);
            let neg_pred = compact::dot(row, &self.user_ext) + user_bias;
            if neg_pred > pos_pred - 1.0 {
                let positives = self.t.positives;
                if positives.maybe_contains(user, cand) && positives.contains(user, cand) {
                    continue;
                }
                let rank_estimate = ((n_negatives / sampled) as f32).max(1.0);
                let loss = (weight * rank_estimate.ln()).min(MAX_LOSS);
                self.tally.sum += loss as f64;
                compact::decode_row(row, &mut self.neg_repr[..=k]);
                self.warp_update(loss, user, pos, cand_row);
                updated = true;
                break;
            }
        }
        updated
    }

    /// WARP's update for a violating negative whose (bfloat16) representation is in
    /// `neg_repr`: the positive and the user now, the negative one example later.
    ///
    /// The negative is a random item, so its parameters are a cache miss that starts only
    /// now; its step (gradient `loss × user`, the user as it was now) is deferred to the end
    /// of the next example, by when they have arrived, and the previous example's deferred
    /// step is done here instead. The user's gradient takes the negative's term from the
    /// scoring row (bfloat16), not the exact parameters. Both are recorded in ARCHITECTURE.md
    /// as differences from LightFM.
    fn warp_update(&mut self, loss: f32, user: usize, pos: usize, neg: usize) {
        let k = self.t.k;
        let itf = self.item_rows;
        match itf {
            FeatureRows::Identity => Self::prefetch_row(&self.items, itf, neg, true),
            // Three dependent loads: where its packed row starts (now), the row (at the next
            // example's start), the feature parameters (before the deferred step).
            FeatureRows::Packed(rows) => rows.prefetch_offset(neg),
        }
        self.prefetch_pending_params();
        self.step_positive_and_user(loss, user, pos);
        self.refresh_scoring(pos);
        self.flush_pending();
        self.pending = Some((neg as u32, loss));
        self.pending_user[..k].copy_from_slice(&self.user_repr[..k]);
    }

    /// Starts loading the deferred negative's packed feature row (where it starts was
    /// prefetched when it won).
    #[inline(always)]
    fn prefetch_pending(&self) {
        if let (Some((neg, _)), FeatureRows::Packed(rows)) = (self.pending, self.item_rows) {
            rows.prefetch(neg as usize);
        }
    }

    /// Starts loading the deferred negative's feature parameters and optimiser state (a
    /// while after [`Self::prefetch_pending`]).
    #[inline(always)]
    fn prefetch_pending_params(&self) {
        if let (Some((neg, _)), FeatureRows::Packed(_)) = (self.pending, self.item_rows) {
            Self::prefetch_row(&self.items, self.item_rows, neg as usize, true);
        }
    }

    /// The deferred step of the previous update's negative (see [`Self::warp_update`]):
    /// d(score_neg)/d(item) = user.
    pub(super) fn flush_pending(&mut self) {
        if let Some((neg, loss)) = self.pending.take() {
            self.step_negative(loss, neg as usize, true);
            self.refresh_scoring(neg as usize);
        }
    }

    /// Merges this thread's hot rows into the model's (see [`hot`]). A deferred negative
    /// step still pending lands in the next merge.
    pub(super) fn merge_hot(&mut self) {
        let lock = self.merge_lock;
        if let Some((replica, hot)) = &mut self.hot_users {
            replica.merge(&self.users.main, hot, self.users.stride, lock);
        }
        if let Some((replica, hot)) = &mut self.hot_items {
            replica.merge(&self.items.main, hot, self.items.stride, lock);
        }
    }

    /// Sets `user_ext` from `user_repr`.
    #[inline(always)]
    fn extend_user(&mut self) {
        let k = self.t.k;
        self.user_ext[..k].copy_from_slice(&self.user_repr[..k]);
        self.user_ext[k] = 1.0;
    }

    fn warp(&mut self, ex: &Example) {
        let x = self.t.interactions;
        if ex.value <= 0.0 {
            return;
        }
        let (user, pos) = (ex.user as usize, ex.item as usize);
        self.prefetch_pending();
        self.load_repr(Repr::User, user);
        self.load_repr(Repr::Pos, pos);
        self.extend_user();
        let pos_pred = self.predict(&self.user_repr, &self.pos_repr);
        let n_neg = x.n_items().saturating_sub(1);
        if !self.warp_search(user, pos, pos_pred, ex.weight, n_neg) {
            // No update this time: the previous one's deferred step is due now.
            self.prefetch_pending_params();
            self.flush_pending();
        }
    }

    fn bpr(&mut self, ex: &Example, slot: usize) {
        let x = self.t.interactions;
        if ex.value <= 0.0 {
            return;
        }
        let (user, pos) = (ex.user as usize, ex.item as usize);
        let weight = ex.weight;
        // LightFM draws the negative from the item column of the interaction list, so
        // negatives follow popularity. Bounded redraws as in `draw_negative`.
        // The first draw was made (and prefetched) two look-ahead stages early.
        let n = x.len();
        let mut neg = None;
        for attempt in 0..1000 {
            let cand = if attempt == 0 {
                self.bpr_neg[slot] as usize
            } else {
                x.items_raw()[self.rng.below(n)] as usize
            };
            if !self.t.positives.contains(user, cand) {
                neg = Some(cand);
                break;
            }
        }
        let Some(neg) = neg else { return };
        let neg = self.t.item_row(neg);
        self.load_repr(Repr::User, user);
        self.load_repr(Repr::Pos, pos);
        self.load_repr(Repr::Neg, neg);
        let diff = self.predict(&self.user_repr, &self.pos_repr)
            - self.predict(&self.user_repr, &self.neg_repr);
        let s = sigmoid(diff);
        self.tally.sum += (weight * -(s.max(1e-12)).ln()) as f64;
        self.tally.count += 1;
        self.pairwise_update(weight * (1.0 - s), user, pos, neg);
    }

    pub(super) fn warp_kos(&mut self, user: usize, kth: usize, n: usize) {
        let x = self.t.interactions;
        let positives = x.user_items(user);
        if positives.is_empty() {
            return;
        }
        self.prefetch_pending();
        self.load_repr(Repr::User, user);
        self.extend_user();
        let no_positives = n.min(positives.len());
        // Draw every sampled positive first (the same draws in the same order) and start
        // loading their parameters, so the representation sums below wait for the `n`
        // random rows together instead of one after another.
        let mut pairs = std::mem::take(&mut self.kos_pairs);
        pairs.clear();
        for _ in 0..no_positives {
            let item = self
                .t
                .item_row(positives[self.rng.below(positives.len())] as usize);
            Self::prefetch_row(&self.items, self.item_rows, item, false);
            pairs.push((item, 0.0));
        }
        for pair in pairs.iter_mut() {
            self.load_repr(Repr::Pos, pair.0);
            pair.1 = self.predict(&self.user_repr, &self.pos_repr);
        }
        // Descending by score; stable for equal scores so runs are reproducible.
        pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (pos, pos_pred) = pairs[kth.min(no_positives) - 1];
        self.kos_pairs = pairs;
        self.load_repr(Repr::Pos, pos);
        // LightFM's rank estimate for k-OS divides `n_items - 1`, as for WARP (not the
        // user's negatives).
        let n_neg = x.n_items().saturating_sub(1);
        if !self.warp_search(user, pos, pos_pred, 1.0, n_neg) {
            self.prefetch_pending_params();
            self.flush_pending();
        }
    }
}

/// Trains on `examples` in order, with three look-ahead stages (see [`Worker::stage0`],
/// [`Worker::stage1`], [`Worker::stage2`]) primed for the first examples.
pub(super) fn train_examples(w: &mut Worker<'_>, examples: &[Example]) {
    for ex in examples.iter().take(3 * AHEAD) {
        w.stage0(ex);
    }
    for (j, ex) in examples.iter().enumerate().take(2 * AHEAD) {
        w.stage1(ex, j);
    }
    for (j, ex) in examples.iter().enumerate().take(AHEAD) {
        w.stage2(ex, j);
    }
    for (j, ex) in examples.iter().enumerate() {
        if let Some(latest) = examples.get(j + 3 * AHEAD) {
            w.stage0(latest);
        }
        if let Some(later) = examples.get(j + 2 * AHEAD) {
            w.stage1(later, j + 2 * AHEAD);
        }
        if let Some(next) = examples.get(j + AHEAD) {
            w.stage2(next, j + AHEAD);
        }
        let slot = j % SLOTS;
        match w.t.loss {
            Loss::Logistic => w.logistic(ex),
            Loss::Bpr => w.bpr(ex, slot),
            _ => w.warp(ex),
        }
        if j % hot::MERGE_EVERY == hot::MERGE_EVERY - 1 {
            w.merge_hot();
        }
    }
    w.flush_pending();
    w.merge_hot();
}

impl<'a> Worker<'a> {
    /// A training thread's state: its views of both sides (with its own `copies` of the hot
    /// rows, if the trainer has any), the shared scoring rows, and its random stream.
    pub(super) fn new(
        t: &'a Trainer<'a>,
        uv: SideView<'a>,
        iv: SideView<'a>,
        copies: &'a mut HotCopies,
        scoring: Option<Shared<'a>>,
        merge_lock: &'a std::sync::Mutex<()>,
        seed: u64,
    ) -> Worker<'a> {
        let k = t.k;
        let cs = compact::stride(k);
        let additive_state = matches!(t.schedule, Schedule::Adagrad);
        let width = uv.stride.max(iv.stride).max(k + 1);
        let user_hot = t.user_hot.zip(copies.users.as_mut());
        let (users, user_rows, hot_users) = thread_side(uv, t.user_rows, user_hot, additive_state);
        let item_hot = t.item_hot.zip(copies.items.as_mut());
        let (items, item_rows, hot_items) = thread_side(iv, t.item_rows, item_hot, additive_state);
        Worker {
            t,
            users,
            items,
            user_rows,
            item_rows,
            hot_users,
            hot_items,
            merge_lock,
            opt: Opt::new(t.schedule, t.learning_rate),
            // Room for whole 8-element pieces (see `repr_rows`).
            user_repr: vec![0.0; width],
            pos_repr: vec![0.0; width],
            neg_repr: vec![0.0; width],
            grad: vec![0.0; k + 1],
            rowbuf: RowBuf {
                p: vec![0.0; k + 1],
                a: vec![0.0; k + 1],
                d: vec![0.0; k + 1],
                g: vec![0.0; uv.stride.max(iv.stride)],
            },
            rng: Rng::new(seed),
            ahead: [0; RING],
            ahead_head: 0,
            ahead_len: 0,
            bpr_neg: [0; SLOTS],
            scoring,
            scoring_stride: cs,
            user_ext: vec![0.0; 2 * cs],
            cache_tmp: vec![0.0; width],
            words: vec![0.0; cs],
            pending: None,
            pending_user: vec![0.0; k],
            saturated_users: t.positives.some_user_has_every_item(),
            kos_pairs: Vec::new(),
            tally: LossTally::default(),
        }
    }
}

/// A training thread's copies of the hot rows (see [`hot`]) of each side that has them:
/// made before its [`Worker`], which views them while it trains.
#[derive(Default)]
pub(super) struct HotCopies {
    users: Option<hot::Copies>,
    items: Option<hot::Copies>,
}

impl HotCopies {
    /// Copies of `t`'s hot rows from the model's rows, `uv` and `iv`.
    pub(super) fn new(t: &Trainer<'_>, uv: &SideView<'_>, iv: &SideView<'_>) -> HotCopies {
        HotCopies {
            users: (t.user_hot).map(|hot| hot::Copies::new(&uv.main, hot, uv.stride)),
            items: (t.item_hot).map(|hot| hot::Copies::new(&iv.main, hot, iv.stride)),
        }
    }
}

/// A training thread's view of one side: with hot rows, its own copies of them (see
/// [`hot`]) and the feature rows that address them.
type ThreadSide<'a> = (
    SideView<'a>,
    FeatureRows<'a>,
    Option<(hot::Replica<'a>, &'a HotRows)>,
);

fn thread_side<'a>(
    view: SideView<'a>,
    rows: FeatureRows<'a>,
    hot: Option<(&'a HotRows, &'a mut hot::Copies)>,
    additive_state: bool,
) -> ThreadSide<'a> {
    match hot {
        Some((hot, copies)) => {
            let replica = hot::Replica::new(copies, additive_state);
            let view = SideView {
                hot: replica.bufs(),
                boundary: hot.boundary,
                ..view
            };
            (view, FeatureRows::Packed(&hot.rows), Some((replica, hot)))
        }
        None => (view, rows, None),
    }
}

#[cfg(test)]
mod warp_search_tests {
    use super::*;
    use crate::interactions::Interactions;
    use crate::train::scoring::build_scoring;
    use crate::train::{PairSet, Side};

    /// The loss of one WARP step for user 0's positive 0 when the candidate stream starts
    /// with `first` (8 items; user 0's positives are 0 and 1). At initialisation every score
    /// is within a hair of 0, so every candidate violates the margin of 1.
    fn first_step_loss(first: &[u32]) -> LossTally {
        let x = Interactions::from_pairs(2, 8, [(0, 0), (0, 1), (1, 2)]).unwrap();
        let mut rng = Rng::new(1);
        let mut items = Side::new(8, 4, Schedule::Adagrad, &mut rng);
        let mut users = Side::new(2, 4, Schedule::Adagrad, &mut rng);
        let positives = PairSet::new(&x);
        let t = Trainer::collaborative(4, Loss::Warp, &x, &positives);
        let mut scoring = build_scoring(&items.view(), FeatureRows::Identity, 8, 4, None, None);
        let lock = std::sync::Mutex::new(());
        let view = Some(Shared::new(scoring.as_mut_slice()));
        let copies = &mut HotCopies::default();
        let mut w = Worker::new(&t, users.view(), items.view(), copies, view, &lock, 7);
        w.ahead[..first.len()].copy_from_slice(first);
        w.ahead_len = first.len();
        w.warp(&Example {
            user: 0,
            item: 0,
            value: 1.0,
            weight: 1.0,
        });
        w.tally
    }

    #[test]
    fn a_violating_positive_is_skipped_but_counted() {
        // As in LightFM: the rank estimate is ⌊(n_items − 1) / draws⌋ with every draw
        // counted, the skipped positive included.
        let direct = first_step_loss(&[5]);
        assert_eq!((direct.count, direct.sum), (1, (7.0f32).ln() as f64));
        let after_positive = first_step_loss(&[1, 5]);
        assert_eq!(after_positive.count, 1);
        assert_eq!(after_positive.sum, (3.0f32).ln() as f64, "⌊7 / 2⌋ = 3");
        let after_two = first_step_loss(&[0, 1, 6]);
        assert_eq!(after_two.sum, (2.0f32).ln() as f64, "⌊7 / 3⌋ = 2");
    }

    #[test]
    fn a_user_with_every_item_draws_no_candidates() {
        // User 0 has all 3 items: no negative exists, so no draw is made and nothing changes;
        // user 1 (one item) still trains.
        let x = Interactions::from_pairs(2, 3, [(0, 0), (0, 1), (0, 2), (1, 0)]).unwrap();
        let mut rng = Rng::new(1);
        let mut items = Side::new(3, 4, Schedule::Adagrad, &mut rng);
        let mut users = Side::new(2, 4, Schedule::Adagrad, &mut rng);
        let before = (items.params().clone(), users.params().clone());
        let positives = PairSet::new(&x);
        let t = Trainer::collaborative(4, Loss::Warp, &x, &positives);
        let mut scoring = build_scoring(&items.view(), FeatureRows::Identity, 3, 4, None, None);
        let lock = std::sync::Mutex::new(());
        let view = Some(Shared::new(scoring.as_mut_slice()));
        let copies = &mut HotCopies::default();
        let mut w = Worker::new(&t, users.view(), items.view(), copies, view, &lock, 7);
        assert!(w.saturated_users);
        let example = |user| Example {
            user,
            item: 0,
            value: 1.0,
            weight: 1.0,
        };
        w.warp(&example(0));
        w.flush_pending();
        assert_eq!((w.ahead_len, w.tally.count, w.tally.sum), (0, 1, 0.0));
        // (Read through the worker's views: the parameters stay borrowed while it lives.)
        let now = (w.items.main.params.to_vec(), w.users.main.params.to_vec());
        assert!(now.0 == before.0.as_slice() && now.1 == before.1.as_slice());
        // User 1's first candidate is item 2: it violates, with loss ln ⌊2 / 1⌋.
        w.ahead[0] = 2;
        w.ahead_len = 1;
        w.warp(&example(1));
        w.flush_pending();
        assert_eq!((w.tally.count, w.tally.sum), (2, (2.0f32).ln() as f64));
        drop(w);
        assert!(before.0 != *items.params() && before.1 != *users.params());
    }
}
