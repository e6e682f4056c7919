//! Ranking metrics with LightFM's exact definitions, computed fast.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::interactions::Interactions;
use crate::repr::{ItemRepresentations, Representation};
use crate::scorer::{Scorer, UserQuery};

/// Evaluation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalOptions {
    /// Cut-off for precision, recall and NDCG.
    pub k: usize,
    /// Worker threads.
    pub threads: usize,
    /// If set, only items whose flag is true are ranked (e.g. the new items of an item
    /// cold-start test); other items are ignored like training positives.
    pub candidates: Option<Vec<bool>>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            k: 10,
            threads: 1,
            candidates: None,
        }
    }
}

/// Mean metrics over the users that have test interactions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// The cut-off `k`.
    pub k: usize,
    /// Number of users evaluated.
    pub n_users: usize,
    /// Mean precision@k.
    pub precision_at_k: f64,
    /// Mean recall@k.
    pub recall_at_k: f64,
    /// Mean AUC.
    pub auc: f64,
    /// Mean reciprocal rank.
    pub reciprocal_rank: f64,
    /// Mean NDCG@k.
    pub ndcg_at_k: f64,
}

impl Metrics {
    /// The mean of per-user metrics (as [`evaluate_users`] returns them) at cut-off `k`,
    /// summed in the order given: what [`evaluate`] returns for the same users.
    pub fn mean_of<'a>(k: usize, users: impl ExactSizeIterator<Item = &'a Metrics>) -> Metrics {
        let n_users = users.len();
        let n = n_users as f64;
        let mut m = Metrics {
            k,
            n_users,
            precision_at_k: 0.0,
            recall_at_k: 0.0,
            auc: 0.0,
            reciprocal_rank: 0.0,
            ndcg_at_k: 0.0,
        };
        for u in users {
            m.precision_at_k += u.precision_at_k / n;
            m.recall_at_k += u.recall_at_k / n;
            m.auc += u.auc / n;
            m.reciprocal_rank += u.reciprocal_rank / n;
            m.ndcg_at_k += u.ndcg_at_k / n;
        }
        m
    }
}

/// Per-user metric values (LightFM's per-user arrays).
#[derive(Debug, Clone, Copy, PartialEq)]
struct UserMetrics {
    precision: f64,
    recall: f64,
    auc: f64,
    rr: f64,
    ndcg: f64,
}

fn check_shapes(
    n_items: usize,
    test: &Interactions,
    train: Option<&Interactions>,
    opts: &EvalOptions,
) -> Result<()> {
    if test.n_items() != n_items {
        return Err(CoreError::ShapeMismatch {
            what: "test interactions items vs scorer items",
            expected: n_items,
            found: test.n_items(),
        });
    }
    if let Some(tr) = train {
        if tr.n_items() != n_items || tr.n_users() != test.n_users() {
            return Err(CoreError::ShapeMismatch {
                what: "train interactions shape vs test interactions",
                expected: test.n_users(),
                found: tr.n_users(),
            });
        }
    }
    if let Some(c) = &opts.candidates {
        if c.len() != n_items {
            return Err(CoreError::ShapeMismatch {
                what: "candidate mask length vs items",
                expected: n_items,
                found: c.len(),
            });
        }
    }
    if opts.threads == 0 {
        return Err(CoreError::zero_count("threads"));
    }
    Ok(())
}

/// Scratch space reused across users by one thread.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    order: Vec<usize>,
    sorted: Vec<f32>,
    counts: Vec<u32>,
}

#[inline(always)]
fn key(x: f32) -> f32 {
    if x.is_nan() {
        f32::NEG_INFINITY
    } else {
        x
    }
}

/// Sorts one user's test scores: `s.order` (test positions by ascending score) and
/// `s.sorted` (the scores in that order); resets `s.counts`.
fn prepare_sorted(test_scores: &[f32], s: &mut Scratch) {
    let m = test_scores.len();
    s.order.clear();
    s.order.extend(0..m);
    s.order
        .sort_by(|&a, &b| key(test_scores[a]).total_cmp(&key(test_scores[b])));
    s.sorted.clear();
    s.sorted
        .extend(s.order.iter().map(|&t| key(test_scores[t])));
    s.counts.clear();
    s.counts.resize(m + 1, 0);
}

/// Takes back from `s.counts` the training positives that were counted (the hot loop
/// counts every candidate item); `score_of(j)` gives item `j`'s score.
fn uncount_train_items(
    train_items: &[u32],
    candidates: Option<&[bool]>,
    s: &mut Scratch,
    mut score_of: impl FnMut(usize) -> f32,
) {
    let sorted = &s.sorted;
    let counts = &mut s.counts;
    for &j in train_items {
        let j = j as usize;
        if candidates.is_none_or(|c| c[j]) {
            counts[crate::kernels::count_at_most(sorted, key(score_of(j)))] -= 1;
        }
    }
}

/// Adds the scores of `scores` (items `start..`) to the histogram: all of them, or with a
/// candidate mask only the candidates (gathered into `buf` first, so the vectorised
/// search still runs over a dense slice).
fn count_scores(
    scores: &[f32],
    start: usize,
    candidates: Option<&[bool]>,
    s: &mut Scratch,
    buf: &mut Vec<f32>,
) {
    match candidates {
        None => crate::kernels::count_at_most_histogram(&s.sorted, scores, &mut s.counts),
        Some(mask) => {
            buf.clear();
            buf.extend(
                scores
                    .iter()
                    .zip(&mask[start..start + scores.len()])
                    .filter(|(_, &keep)| keep)
                    .map(|(&v, _)| v),
            );
            crate::kernels::count_at_most_histogram(&s.sorted, buf, &mut s.counts);
        }
    }
}

/// Turns the histogram in `s.counts` into the ranks of the test items.
fn finish_ranks(
    test_items: &[u32],
    train_items: &[u32],
    candidates: Option<&[bool]>,
    s: &Scratch,
    ranks: &mut [f32],
) {
    let m = test_items.len();
    // Rank of the t-th smallest test score = number of counted items with c > t, minus the
    // item itself when it was counted.
    let mut suffix = 0u32;
    let mut by_sorted = vec![0u32; m];
    for t in (0..m).rev() {
        suffix += s.counts[t + 1];
        by_sorted[t] = suffix;
    }
    for (t, &orig) in s.order.iter().enumerate() {
        let item = test_items[orig];
        let counted_self = train_items.binary_search(&item).is_err()
            && candidates.is_none_or(|c| c[item as usize]);
        ranks[orig] = (by_sorted[t] - u32::from(counted_self)) as f32;
    }
}

/// Ranks of `test_items` among the candidates of one user, from all item scores.
fn user_ranks(
    scores: &[f32],
    test_items: &[u32],
    train_items: &[u32],
    candidates: Option<&[bool]>,
    s: &mut Scratch,
    ranks: &mut [f32],
) {
    let test_scores: Vec<f32> = test_items.iter().map(|&i| scores[i as usize]).collect();
    prepare_sorted(&test_scores, s);
    // Count every candidate, then take back the training positives: no per-item branches
    // in the hot loop.
    let mut buf = Vec::new();
    count_scores(scores, 0, candidates, s, &mut buf);
    uncount_train_items(train_items, candidates, s, |j| scores[j]);
    finish_ranks(test_items, train_items, candidates, s, ranks);
}

/// Items per chunk in the blocked path: 2,048 rows of ≤ 32 floats stay in L2 while every
/// user of a block is scored against them.
const ITEM_CHUNK: usize = 2048;
/// Users per block in the blocked path.
const USER_BLOCK: usize = 32;

/// Ranks for a block of users of a factorisation model: the item matrix is streamed from
/// memory once per block instead of once per user.
fn block_ranks(
    items: &ItemRepresentations,
    users: &[(usize, Representation)],
    test: &Interactions,
    train: Option<&Interactions>,
    candidates: Option<&[bool]>,
) -> Result<Vec<Vec<f32>>> {
    let mut scratch: Vec<Scratch> = users.iter().map(|_| Scratch::default()).collect();
    let mut buf = Vec::new();
    for ((u, rep), s) in users.iter().zip(scratch.iter_mut()) {
        items.score_items(
            rep,
            &test
                .user_items(*u)
                .iter()
                .map(|&i| i as usize)
                .collect::<Vec<_>>(),
            &mut buf,
        )?;
        prepare_sorted(&buf, s);
    }
    let n = items.len();
    let mut chunk_scores = vec![0.0f32; ITEM_CHUNK];
    let mut gathered = Vec::with_capacity(ITEM_CHUNK);
    let mut start = 0;
    while start < n {
        let end = (start + ITEM_CHUNK).min(n);
        let out = &mut chunk_scores[..end - start];
        for ((_, rep), s) in users.iter().zip(scratch.iter_mut()) {
            items.score_range(rep, start..end, out);
            count_scores(out, start, candidates, s, &mut gathered);
        }
        start = end;
    }
    let mut all_ranks = Vec::with_capacity(users.len());
    for ((u, rep), s) in users.iter().zip(scratch.iter_mut()) {
        let train_items = train.map_or(&[][..], |t| t.user_items(*u));
        let mut one = Vec::new();
        uncount_train_items(train_items, candidates, s, |j| {
            items
                .score_items(rep, &[j], &mut one)
                .expect("index in range");
            one[0]
        });
        let test_items = test.user_items(*u);
        let mut ranks = vec![0.0; test_items.len()];
        finish_ranks(test_items, train_items, candidates, s, &mut ranks);
        all_ranks.push(ranks);
    }
    Ok(all_ranks)
}

/// Ranks of the test items of every user in `users` (in that order).
fn ranks_for_users<S: Scorer + ?Sized>(
    scorer: &S,
    users: &[usize],
    test: &Interactions,
    train: Option<&Interactions>,
    candidates: Option<&[bool]>,
) -> Result<Vec<Vec<f32>>> {
    if let Some(items) = scorer.item_representations() {
        // Factorisation models: blocked, cache-friendly scoring.
        let blocks: Vec<Result<Vec<Vec<f32>>>> = users
            .par_chunks(USER_BLOCK)
            .map(|block| {
                let reps = block
                    .iter()
                    .map(|&u| {
                        Ok((
                            u,
                            scorer
                                .representation(UserQuery::Known(u))?
                                .expect("factor model"),
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                block_ranks(items, &reps, test, train, candidates)
            })
            .collect();
        let mut out = Vec::with_capacity(users.len());
        for b in blocks {
            out.extend(b?);
        }
        return Ok(out);
    }
    users
        .par_iter()
        .map_init(Scratch::default, |s, &u| {
            let mut scores = std::mem::take(&mut s.scores);
            scorer.score_all(UserQuery::Known(u), &mut scores)?;
            let items = test.user_items(u);
            let mut ranks = vec![0.0; items.len()];
            let train_items = train.map_or(&[][..], |t| t.user_items(u));
            user_ranks(&scores, items, train_items, candidates, s, &mut ranks);
            s.scores = scores;
            Ok(ranks)
        })
        .collect()
}

/// Per-user metrics from the ranks of the user's test items, as [`user_ranks`] computes them
/// (so at most `k` of them are below `k`).
fn metrics_from_ranks(ranks: &[f32], k: usize, n_negatives: i64) -> UserMetrics {
    let m = ranks.len();
    let hits = ranks.iter().filter(|&&r| (r as usize) < k).count();
    let mut sorted: Vec<f32> = ranks.to_vec();
    sorted.sort_by(f32::total_cmp);
    let auc = if n_negatives <= 0 {
        0.5
    } else {
        sorted
            .iter()
            .enumerate()
            // LightFM's term, clamped at 0: when test items tie, each counts the others in
            // its rank but only `i` are subtracted, and LightFM's AUC can go negative.
            .map(|(i, &r)| (1.0 - ((r as f64) - i as f64).max(0.0) / n_negatives as f64).max(0.0))
            .sum::<f64>()
            / m as f64
    };
    let dcg: f64 = ranks
        .iter()
        .filter(|&&r| (r as usize) < k)
        .map(|&r| 1.0 / (r as f64 + 2.0).log2())
        .sum();
    let idcg: f64 = (0..m.min(k)).map(|i| 1.0 / (i as f64 + 2.0).log2()).sum();
    UserMetrics {
        precision: hits as f64 / k as f64,
        recall: hits as f64 / m as f64,
        auc,
        rr: 1.0 / (sorted[0] as f64 + 1.0),
        ndcg: if idcg > 0.0 { dcg / idcg } else { 0.0 },
    }
}

/// Runs `f` in a pool of exactly `threads` threads (also for 1: the global pool must not be
/// used behind the caller's back).
fn with_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> Result<T> {
    Ok(CoreError::thread_pool(threads)?.install(f))
}

/// Ranks of every test entry (aligned with `test.iter()` order), LightFM's `predict_rank`.
pub fn rank_test_items<S: Scorer + ?Sized>(
    scorer: &S,
    test: &Interactions,
    train: Option<&Interactions>,
    opts: &EvalOptions,
) -> Result<Vec<f32>> {
    check_shapes(scorer.n_items(), test, train, opts)?;
    let users: Vec<usize> = (0..test.n_users())
        .filter(|&u| !test.user_items(u).is_empty())
        .collect();
    let per_user = with_pool(opts.threads, || {
        ranks_for_users(scorer, &users, test, train, opts.candidates.as_deref())
    })??;
    let mut out = vec![0.0; test.len()];
    let mut offset_of_user = vec![0usize; test.n_users() + 1];
    for u in 0..test.n_users() {
        offset_of_user[u + 1] = offset_of_user[u] + test.user_items(u).len();
    }
    for (&u, ranks) in users.iter().zip(per_user) {
        out[offset_of_user[u]..offset_of_user[u] + ranks.len()].copy_from_slice(&ranks);
    }
    Ok(out)
}

/// Evaluates `scorer` on `test`, excluding `train` positives from the ranking.
///
/// Returns the mean of each metric over users with at least one test interaction.
///
/// For each test pair `(u, i)` the **rank** is the number of other items `j` that are not
/// training positives of `u` and score at least as high: `score(u, j) >= score(u, i)`
/// (LightFM's `predict_rank`). Then, per user with at least one test item:
/// - precision@k = |{test items with rank < k}| / k
/// - recall@k = |{test items with rank < k}| / |test items|
/// - AUC: test ranks sorted ascending, `1 - max(0, rank_i - i) / n_negatives` averaged, where
///   `n_negatives = n_items - |test| - |train|` (LightFM's `auc_score`; each term is clamped
///   at 0, which only matters when test items tie, where LightFM's can go negative)
/// - reciprocal rank = 1 / (1 + best rank)
/// - NDCG@k = Σ_{rank<k} 1/log2(rank + 2) divided by the ideal DCG for min(k, |test|) items.
///
/// The metrics are averaged over users. LightFM recomputes every item representation for
/// every user and compares each item with each test item; we score all items once per user
/// from cached representations and count with one binary search per item, so a full
/// evaluation costs `O(n_users · n_items · (k + log |test|))`.
pub fn evaluate<S: Scorer + ?Sized>(
    scorer: &S,
    test: &Interactions,
    train: Option<&Interactions>,
    opts: &EvalOptions,
) -> Result<Metrics> {
    let per_user = evaluate_users(scorer, test, train, opts)?;
    Ok(Metrics::mean_of(opts.k, per_user.iter().map(|(_, m)| m)))
}

/// [`evaluate`] user by user: `(user, that user's metrics)` for every user with a test
/// interaction, in ascending user order (each [`Metrics`] has `n_users` 1). [`evaluate`] is
/// their mean; two models evaluated on the same test set can be compared user by user (a
/// paired comparison, as the retraining gate does).
pub fn evaluate_users<S: Scorer + ?Sized>(
    scorer: &S,
    test: &Interactions,
    train: Option<&Interactions>,
    opts: &EvalOptions,
) -> Result<Vec<(usize, Metrics)>> {
    if opts.k == 0 {
        return Err(CoreError::zero_count("k"));
    }
    check_shapes(scorer.n_items(), test, train, opts)?;
    let users: Vec<usize> = (0..test.n_users())
        .filter(|&u| !test.user_items(u).is_empty())
        .collect();
    if users.is_empty() {
        return Err(CoreError::Empty("the test set has no interactions"));
    }
    let n_candidates = opts
        .candidates
        .as_ref()
        .map_or(scorer.n_items(), |c| c.iter().filter(|&&b| b).count());
    let cands = opts.candidates.as_deref();
    let per_user: Vec<UserMetrics> = with_pool(opts.threads, || -> Result<Vec<UserMetrics>> {
        let ranks = ranks_for_users(scorer, &users, test, train, cands)?;
        Ok(users
            .par_iter()
            .zip(ranks.par_iter())
            .map(|(&u, ranks)| {
                let train_items = train.map_or(&[][..], |t| t.user_items(u));
                let n_train = match cands {
                    None => train_items.len(),
                    Some(c) => train_items.iter().filter(|&&i| c[i as usize]).count(),
                };
                let n_neg = n_candidates as i64 - ranks.len() as i64 - n_train as i64;
                metrics_from_ranks(ranks, opts.k, n_neg)
            })
            .collect())
    })??;
    Ok(users
        .into_iter()
        .zip(per_user)
        .map(|(user, u)| {
            let metrics = Metrics {
                k: opts.k,
                n_users: 1,
                precision_at_k: u.precision,
                recall_at_k: u.recall,
                auc: u.auc,
                reciprocal_rank: u.rr,
                ndcg_at_k: u.ndcg,
            };
            (user, metrics)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scorer::Popularity;
    use proptest::prelude::*;

    /// LightFM's quadratic definition, for reference.
    fn slow_ranks(scores: &[f32], test_items: &[u32], train_items: &[u32]) -> Vec<f32> {
        test_items
            .iter()
            .map(|&t| {
                (0..scores.len())
                    .filter(|&j| j != t as usize && !train_items.contains(&(j as u32)))
                    .filter(|&j| scores[j] >= scores[t as usize])
                    .count() as f32
            })
            .collect()
    }

    /// A generated case: scores, sorted distinct test items, sorted training items disjoint
    /// from them, and the ranks the fast path computes.
    fn ranked_case(
        scores: Vec<i8>,
        picks: &[usize],
        train_picks: &[usize],
    ) -> (Vec<f32>, Vec<u32>, Vec<u32>, Vec<f32>) {
        let n = scores.len();
        let scores: Vec<f32> = scores.into_iter().map(f32::from).collect();
        let mut test: Vec<u32> = picks.iter().map(|p| (p % n) as u32).collect();
        test.sort_unstable();
        test.dedup();
        let mut train: Vec<u32> = train_picks
            .iter()
            .map(|p| (p % n) as u32)
            .filter(|i| !test.contains(i))
            .collect();
        train.sort_unstable();
        train.dedup();
        let mut ranks = vec![0.0; test.len()];
        user_ranks(
            &scores,
            &test,
            &train,
            None,
            &mut Scratch::default(),
            &mut ranks,
        );
        (scores, test, train, ranks)
    }

    proptest! {
        #[test]
        fn fast_ranks_match_reference(
            scores in proptest::collection::vec(-4i8..4, 1..60),
            picks in proptest::collection::vec(0usize..1000, 1..20),
            train_picks in proptest::collection::vec(0usize..1000, 0..20),
        ) {
            let (scores, test, train, ranks) = ranked_case(scores, &picks, &train_picks);
            prop_assert_eq!(ranks, slow_ranks(&scores, &test, &train));
        }

        #[test]
        fn metrics_stay_in_unit_interval(
            scores in proptest::collection::vec(-4i8..4, 2..80),
            picks in proptest::collection::vec(0usize..1000, 1..25),
            train_picks in proptest::collection::vec(0usize..1000, 0..25),
            k in 1usize..20,
        ) {
            // Ranks as the evaluation produces them (many ties among the scores), not
            // arbitrary numbers: e.g. two test items can never both have rank 0.
            let (scores, test, train, ranks) = ranked_case(scores, &picks, &train_picks);
            let n_negatives = scores.len() as i64 - test.len() as i64 - train.len() as i64;
            let m = metrics_from_ranks(&ranks, k, n_negatives);
            for v in [m.precision, m.recall, m.auc, m.rr, m.ndcg] {
                prop_assert!((0.0..=1.0).contains(&v), "{m:?} from ranks {ranks:?}");
            }
        }
    }

    #[test]
    fn perfect_ranking_scores_one() {
        // Item scores equal to -index: items 0..3 are the test items and rank first.
        let test = Interactions::from_pairs(1, 10, (0..3).map(|i| (0, i))).unwrap();
        let scorer = Popularity::from_counts((0..10).map(|i| 10.0 - i as f32).collect());
        let m = evaluate(
            &scorer,
            &test,
            None,
            &EvalOptions {
                k: 3,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(m.auc, 1.0);
        assert_eq!(m.precision_at_k, 1.0);
        assert_eq!(m.recall_at_k, 1.0);
        assert_eq!(m.reciprocal_rank, 1.0);
        assert!((m.ndcg_at_k - 1.0).abs() < 1e-12);
    }

    #[test]
    fn worst_ranking_scores_zero_auc() {
        let test = Interactions::from_pairs(1, 10, (7..10).map(|i| (0, i))).unwrap();
        let scorer = Popularity::from_counts((0..10).map(|i| 10.0 - i as f32).collect());
        let m = evaluate(&scorer, &test, None, &EvalOptions::default()).unwrap();
        assert_eq!(m.auc, 0.0);
        assert_eq!(m.precision_at_k, 0.3); // all 10 items are in the top 10
    }

    #[test]
    fn zero_k_or_threads_is_a_named_error() {
        let test = Interactions::from_pairs(2, 3, [(0, 1)]).unwrap();
        let scorer = Popularity::from_counts(vec![1.0; 3]);
        for (name, opts) in [
            (
                "k",
                EvalOptions {
                    k: 0,
                    ..Default::default()
                },
            ),
            (
                "threads",
                EvalOptions {
                    threads: 0,
                    ..Default::default()
                },
            ),
        ] {
            let err = evaluate(&scorer, &test, None, &opts).unwrap_err();
            assert_eq!(
                err,
                CoreError::InvalidHyperparameter {
                    name,
                    value: "0".into(),
                    reason: "must be >= 1",
                }
            );
        }
    }

    #[test]
    fn train_items_are_excluded_and_threads_agree() {
        let train = Interactions::from_pairs(2, 6, [(0, 0), (1, 1)]).unwrap();
        let test = Interactions::from_pairs(2, 6, [(0, 1), (1, 2), (1, 0)]).unwrap();
        let scorer = Popularity::from_counts(vec![6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
        let ranks = rank_test_items(&scorer, &test, Some(&train), &EvalOptions::default()).unwrap();
        assert_eq!(ranks, vec![0.0, 0.0, 1.0]);
        let one = evaluate(&scorer, &test, Some(&train), &EvalOptions::default()).unwrap();
        let two = evaluate(
            &scorer,
            &test,
            Some(&train),
            &EvalOptions {
                threads: 2,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(one, two);
        assert_eq!(one.auc, 1.0);
    }

    #[test]
    fn per_user_metrics_average_to_evaluate() {
        let train = Interactions::from_pairs(3, 6, [(0, 0), (1, 1)]).unwrap();
        let test = Interactions::from_pairs(3, 6, [(0, 1), (0, 4), (2, 5), (2, 3)]).unwrap();
        let scorer = Popularity::from_counts(vec![6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
        let opts = EvalOptions {
            k: 2,
            ..Default::default()
        };
        let users = evaluate_users(&scorer, &test, Some(&train), &opts).unwrap();
        // Users with a test interaction only, in order; user 0: item 1 ranks 0 (item 0 is
        // a training item), item 4 ranks 2 — one hit in the top 2.
        assert_eq!(users.iter().map(|(u, _)| *u).collect::<Vec<_>>(), [0, 2]);
        assert_eq!(users[0].1.precision_at_k, 0.5);
        assert_eq!(users[0].1.n_users, 1);
        let mean = Metrics::mean_of(2, users.iter().map(|(_, m)| m));
        assert_eq!(mean, evaluate(&scorer, &test, Some(&train), &opts).unwrap());
    }

    #[test]
    fn candidate_mask_restricts_ranking() {
        let test = Interactions::from_pairs(1, 6, [(0, 5)]).unwrap();
        let scorer = Popularity::from_counts(vec![6.0, 5.0, 4.0, 3.0, 2.0, 1.0]);
        let mask = vec![false, false, false, false, true, true];
        let m = evaluate(
            &scorer,
            &test,
            None,
            &EvalOptions {
                k: 1,
                candidates: Some(mask),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(m.reciprocal_rank, 0.5);
        assert_eq!(m.auc, 0.0);
    }
}
