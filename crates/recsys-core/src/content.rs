//! The content model: a per-user naive-Bayes model over item feature columns, for ranking
//! items nobody has interacted with yet (item cold start). See [`ContentModel`].

use crate::error::{CoreError, Result};
use crate::interactions::Interactions;
use crate::matrix::FeatureMatrix;
use crate::scorer::{Scorer, UserQuery};

/// The content model's two settings (see [`ContentModel`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContentParams {
    /// β > 0: how many interactions' worth of the population's preferences a user's own
    /// counts are smoothed with.
    pub smoothing: f32,
    /// γ ≥ 0: the power of a value's item count the score is divided by.
    pub class_size_power: f32,
}

impl Default for ContentParams {
    /// β = 10, γ = 1.5: the best of [`ContentParams::candidates`] on a cold-start split of
    /// Complete Journey's training data.
    fn default() -> Self {
        ContentParams {
            smoothing: 10.0,
            class_size_power: 1.5,
        }
    }
}

impl ContentParams {
    /// Checks β > 0 and γ ≥ 0, both finite.
    pub fn validate(&self) -> Result<()> {
        if !(self.smoothing.is_finite() && self.smoothing > 0.0) {
            return Err(CoreError::InvalidHyperparameter {
                name: "smoothing",
                value: self.smoothing.to_string(),
                reason: "must be finite and > 0",
            });
        }
        if !(self.class_size_power.is_finite() && self.class_size_power >= 0.0) {
            return Err(CoreError::InvalidHyperparameter {
                name: "class_size_power",
                value: self.class_size_power.to_string(),
                reason: "must be finite and >= 0",
            });
        }
        Ok(())
    }

    /// The settings worth comparing on a validation split: β ∈ {1, 3, 10, 30} ×
    /// γ ∈ {0.5, 1, 1.25, 1.5, 2}.
    pub fn candidates() -> Vec<ContentParams> {
        let mut out = Vec::new();
        for smoothing in [1.0, 3.0, 10.0, 30.0] {
            for class_size_power in [0.5, 1.0, 1.25, 1.5, 2.0] {
                out.push(ContentParams {
                    smoothing,
                    class_size_power,
                });
            }
        }
        out
    }
}

/// The content model: fitted with
/// [`ContentModel::fit`], a [`Scorer`] of every item of the feature matrix, and of any
/// product described by a feature row ([`ContentModel::score_rows`]), for ranking items
/// nobody has interacted with yet (item cold start).
///
/// A factorisation model scores a product without interactions through the embeddings of
/// its metadata, squeezed through a few dozen latent components. The content model keeps
/// every user's affinity to every metadata value instead (full rank), and scores an item by
/// how likely the user is to pick *that item* given its values:
///
/// ```text
/// score(u, i) = Σ over the values f of item i, in column c(f):
///               ln((n_uf + β·π_f) / (n_uc + β)) − γ·ln(N_f + 1)
/// ```
///
/// * `n_uf`: the user's training interactions (positive values) with items that have `f`;
///   `n_uc`: the sum of `n_uf` over column `c`'s values. The first term is the user's
///   probability of picking an item with value `f` among column `c`'s values, smoothed
///   towards the population's `π_f` with strength `β` ([`ContentParams::smoothing`]).
/// * `π_f`: every user's interactions with value `f` over the column's, plus ½ per value (so
///   no value has probability 0).
/// * `N_f`: the number of items with value `f`. A value shared by many items is split among
///   them: with `γ = 1` ([`ContentParams::class_size_power`]) the score is the log
///   probability of the item itself under a uniform choice within the value; larger `γ`
///   favours items of narrow values further.
///
/// Only features given a column in `columns` count (identity features have none: an item's
/// own feature says nothing about an item never seen); feature weights are ignored (a value
/// is present or not). An item without a value in a column has the column's "no value"
/// value, counted like any other, so missing metadata neither helps nor hurts an item by
/// itself. A user without interactions gets the population's probabilities, and
/// [`UserQuery::Anonymous`] asks for exactly that.
///
/// On Complete Journey this ranks cold products better than any factorisation model's
/// metadata path (docs/benchmarks.md, "Item cold start"): the choice among thousands of
/// product types is personal, and 30–150 components cannot hold it.
///
/// ```
/// use recsys_core::{ContentModel, ContentParams, FeatureMatrix, Interactions, Scorer, UserQuery};
///
/// // Items 0-1 are "tea", 2-3 "coffee" (features 0 and 1, column 0). User 0 bought tea.
/// let items = FeatureMatrix::from_rows(2, [vec![(0, 1.0)], vec![(0, 1.0)], vec![(1, 1.0)], vec![(1, 1.0)]])?;
/// let train = Interactions::from_pairs(2, 4, [(0, 0), (1, 2)])?;
/// let model = ContentModel::fit(&items, &[Some(0), Some(0)], &train, ContentParams::default())?;
/// let mut scores = Vec::new();
/// model.score_all(UserQuery::Known(0), &mut scores)?;
/// assert!(scores[1] > scores[3]); // the other tea
/// // A new product, described by its features only:
/// let new = model.score_rows(UserQuery::Known(1), &[&[(1, 1.0)][..], &[(0, 1.0)][..]])?;
/// assert!(new[0] > new[1]); // coffee for the coffee buyer
/// # Ok::<(), recsys_core::CoreError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ContentModel {
    params: ContentParams,
    /// Column of each feature (`u32::MAX`: not used).
    column: Vec<u32>,
    n_columns: usize,
    /// `ln(β·π_f) − γ·ln(N_f + 1)` for used features, 0 otherwise.
    prior: Vec<f32>,
    /// `β·π_f` for used features.
    pseudo: Vec<f32>,
    /// `γ·ln(N_f + 1)` for used features.
    size_penalty: Vec<f32>,
    /// Every user's counts per value, CSR (used features only, sorted).
    user_indptr: Vec<usize>,
    user_features: Vec<u32>,
    user_counts: Vec<f32>,
    /// Every user's counts per column (`n_users × n_columns`).
    user_column_totals: Vec<f32>,
    /// The population's counts per column.
    column_totals: Vec<f32>,
    /// The population's counts per value.
    value_totals: Vec<f32>,
    /// Items' used features, CSR.
    item_indptr: Vec<usize>,
    item_features: Vec<u32>,
}

const UNUSED: u32 = u32::MAX;

impl ContentModel {
    /// Fits the model: `items` holds every item's feature row (`n_items × n_features`),
    /// `columns[f]` the column of feature `f` (`None` for features that must not count, such
    /// as identity features), `train` the interactions counted (pairs with a positive value
    /// count once each, whatever their weight).
    pub fn fit(
        items: &FeatureMatrix,
        columns: &[Option<usize>],
        train: &Interactions,
        params: ContentParams,
    ) -> Result<Self> {
        params.validate()?;
        let n_features = items.n_features();
        if columns.len() != n_features {
            return Err(CoreError::ShapeMismatch {
                what: "feature columns",
                expected: n_features,
                found: columns.len(),
            });
        }
        if train.n_items() != items.n_rows() {
            return Err(CoreError::ShapeMismatch {
                what: "items of the interactions",
                expected: items.n_rows(),
                found: train.n_items(),
            });
        }
        let column: Vec<u32> = columns
            .iter()
            .map(|c| c.map_or(Ok(UNUSED), |c| u32::try_from(c).map_err(|_| too_many())))
            .collect::<Result<_>>()?;
        let n_columns = columns.iter().flatten().map(|&c| c + 1).max().unwrap_or(0);
        if n_columns == 0 {
            return Err(CoreError::InvalidHyperparameter {
                name: "columns",
                value: "no feature with a column".into(),
                reason: "the content model needs item metadata features",
            });
        }

        // "No value in column c" is value `n_features + c`.
        let mut column = column;
        column.extend(0..n_columns as u32);
        let n_features = column.len();

        // Items' used values.
        let mut item_indptr = Vec::with_capacity(items.n_rows() + 1);
        let mut item_features = Vec::new();
        let mut class_size = vec![0u32; n_features];
        let mut present = vec![false; n_columns];
        item_indptr.push(0);
        for i in 0..items.n_rows() {
            let start = item_features.len();
            let (indices, values) = items.row(i);
            let row = indices.iter().copied().zip(values.iter().copied());
            used_values(&column, row, &mut present, &mut item_features);
            for &f in &item_features[start..] {
                class_size[f as usize] += 1;
            }
            item_indptr.push(item_features.len());
        }

        // Users' counts.
        let n_users = train.n_users();
        let mut dense = vec![0f32; n_features];
        let mut touched: Vec<u32> = Vec::new();
        let mut user_indptr = Vec::with_capacity(n_users + 1);
        let mut user_features = Vec::new();
        let mut user_counts = Vec::new();
        let mut user_column_totals = vec![0f32; n_users * n_columns];
        let mut value_totals = vec![0f32; n_features];
        user_indptr.push(0);
        for u in 0..n_users {
            for (&i, &value) in train.user_items(u).iter().zip(train.user_values(u)) {
                if value <= 0.0 {
                    continue;
                }
                let i = i as usize;
                for &f in &item_features[item_indptr[i]..item_indptr[i + 1]] {
                    if dense[f as usize] == 0.0 {
                        touched.push(f);
                    }
                    dense[f as usize] += 1.0;
                }
            }
            touched.sort_unstable();
            for &f in &touched {
                let n = std::mem::take(&mut dense[f as usize]);
                user_features.push(f);
                user_counts.push(n);
                user_column_totals[u * n_columns + column[f as usize] as usize] += n;
                value_totals[f as usize] += n;
            }
            touched.clear();
            user_indptr.push(user_features.len());
        }

        // The population's shares, with ½ per value.
        let mut column_totals = vec![0f32; n_columns];
        let mut column_values = vec![0f32; n_columns];
        for f in 0..n_features {
            if column[f] != UNUSED {
                column_totals[column[f] as usize] += value_totals[f];
                column_values[column[f] as usize] += 1.0;
            }
        }
        let mut prior = vec![0f32; n_features];
        let mut pseudo = vec![0f32; n_features];
        let mut size_penalty = vec![0f32; n_features];
        for f in 0..n_features {
            if column[f] == UNUSED {
                continue;
            }
            let c = column[f] as usize;
            let share = (value_totals[f] + 0.5) / (column_totals[c] + 0.5 * column_values[c]);
            pseudo[f] = params.smoothing * share;
            size_penalty[f] = params.class_size_power * (class_size[f] as f32 + 1.0).ln();
            prior[f] = pseudo[f].ln() - size_penalty[f];
        }
        Ok(ContentModel {
            params,
            column,
            n_columns,
            prior,
            pseudo,
            size_penalty,
            user_indptr,
            user_features,
            user_counts,
            user_column_totals,
            column_totals,
            value_totals,
            item_indptr,
            item_features,
        })
    }

    /// The settings the model was fitted with.
    pub fn params(&self) -> ContentParams {
        self.params
    }

    /// Number of users the model was fitted on.
    pub fn n_users(&self) -> usize {
        self.user_indptr.len() - 1
    }

    /// Every feature's log score for `user` (0 for unused features): an item's score is the
    /// sum over its features.
    fn feature_scores(&self, user: UserQuery<'_>) -> Result<Vec<f32>> {
        let (features, counts, totals): (&[u32], &[f32], &[f32]) = match user {
            UserQuery::Known(u) => {
                if u >= self.n_users() {
                    return Err(CoreError::IndexOutOfRange {
                        what: "user",
                        index: u,
                        len: self.n_users(),
                    });
                }
                let range = self.user_indptr[u]..self.user_indptr[u + 1];
                (
                    &self.user_features[range.clone()],
                    &self.user_counts[range],
                    &self.user_column_totals[u * self.n_columns..(u + 1) * self.n_columns],
                )
            }
            UserQuery::Anonymous => (&[], &[], &self.column_totals),
            UserQuery::Features(_) | UserQuery::Representation(_) => {
                return Err(CoreError::InvalidHyperparameter {
                    name: "user",
                    value: "a feature row or a representation".into(),
                    reason: "the content model scores known users (or nobody in particular)",
                })
            }
        };
        let beta = self.params.smoothing;
        let column_norm: Vec<f32> = totals.iter().map(|&t| (t + beta).ln()).collect();
        let mut scores: Vec<f32> = self
            .prior
            .iter()
            .zip(&self.column)
            .map(|(&p, &c)| {
                if c == UNUSED {
                    0.0
                } else {
                    p - column_norm[c as usize]
                }
            })
            .collect();
        if matches!(user, UserQuery::Anonymous) {
            // The population as one user: its own counts are the value totals.
            for (f, s) in scores.iter_mut().enumerate() {
                if self.column[f] != UNUSED {
                    *s = (self.value_totals[f] + self.pseudo[f]).ln()
                        - self.size_penalty[f]
                        - column_norm[self.column[f] as usize];
                }
            }
        }
        for (&f, &n) in features.iter().zip(counts) {
            let f = f as usize;
            scores[f] = (n + self.pseudo[f]).ln()
                - self.size_penalty[f]
                - column_norm[self.column[f] as usize];
        }
        Ok(scores)
    }

    /// Scores of products described by feature rows (in the fitted feature layout; weights
    /// and unused features are ignored): new products added after fitting, for example.
    pub fn score_rows(&self, user: UserQuery<'_>, rows: &[&[(usize, f32)]]) -> Result<Vec<f32>> {
        let mut out = vec![0.0; rows.len()];
        self.add_rows(&self.feature_scores(user)?, 1.0, rows, &mut out)?;
        Ok(out)
    }

    /// The user the model scores as a prior for `user`: a known user it was fitted on, or
    /// else (a user described by features, given as a representation, or beyond its users)
    /// the population.
    fn prior_user<'q>(&self, user: UserQuery<'q>) -> UserQuery<'q> {
        match user {
            UserQuery::Known(u) if u < self.n_users() => UserQuery::Known(u),
            _ => UserQuery::Anonymous,
        }
    }

    /// Adds `weight ×` every item's score for `user` to `out` (one entry per item), as a
    /// prior: a user this model cannot score gets the population's preferences
    /// ([`ContentPrior`] and `recsys_recommend::Recommender::with_content_prior` use it).
    pub fn add_prior(&self, user: UserQuery<'_>, weight: f32, out: &mut [f32]) -> Result<()> {
        if out.len() != self.n_items() {
            return Err(CoreError::ShapeMismatch {
                what: "scores to add the content prior to",
                expected: self.n_items(),
                found: out.len(),
            });
        }
        let scores = self.feature_scores(self.prior_user(user))?;
        self.add_items(&scores, weight, out);
        Ok(())
    }

    /// Adds `weight ×` every item's score under the feature scores `scores` to `out`.
    fn add_items(&self, scores: &[f32], weight: f32, out: &mut [f32]) {
        for (o, w) in out.iter_mut().zip(self.item_indptr.windows(2)) {
            let item: f32 = self.item_features[w[0]..w[1]]
                .iter()
                .map(|&f| scores[f as usize])
                .sum();
            *o += weight * item;
        }
    }

    /// As [`ContentModel::add_prior`], for products described by feature rows (one entry of
    /// `out` per row).
    pub fn add_prior_rows(
        &self,
        user: UserQuery<'_>,
        weight: f32,
        rows: &[&[(usize, f32)]],
        out: &mut [f32],
    ) -> Result<()> {
        let scores = self.feature_scores(self.prior_user(user))?;
        self.add_rows(&scores, weight, rows, out)
    }

    /// Adds `weight ×` each row's score under the feature scores `scores` to `out`.
    fn add_rows(
        &self,
        scores: &[f32],
        weight: f32,
        rows: &[&[(usize, f32)]],
        out: &mut [f32],
    ) -> Result<()> {
        if out.len() != rows.len() {
            return Err(CoreError::ShapeMismatch {
                what: "scores to add the content prior to",
                expected: rows.len(),
                found: out.len(),
            });
        }
        let n_features = self.column.len() - self.n_columns;
        let mut present = vec![false; self.n_columns];
        let mut values = Vec::new();
        for (o, row) in out.iter_mut().zip(rows) {
            if let Some(&(f, _)) = row.iter().find(|&&(f, _)| f >= n_features) {
                return Err(CoreError::IndexOutOfRange {
                    what: "feature",
                    index: f,
                    len: n_features,
                });
            }
            values.clear();
            used_values(&self.column, row.iter().copied(), &mut present, &mut values);
            *o += weight * values.iter().map(|&f| scores[f as usize]).sum::<f32>();
        }
        Ok(())
    }
}

/// Appends the used values of a feature row (`(feature, weight)` pairs) to `out`: its
/// features that have a column and a non-zero weight, then "no value" (`n_features + c`,
/// the last `present.len()` entries of `column`) for each column `c` it has no value in.
fn used_values(
    column: &[u32],
    row: impl IntoIterator<Item = (usize, f32)>,
    present: &mut [bool],
    out: &mut Vec<u32>,
) {
    let n_features = column.len() - present.len();
    present.fill(false);
    for (f, w) in row {
        if f < n_features && column[f] != UNUSED && w != 0.0 {
            out.push(f as u32);
            present[column[f] as usize] = true;
        }
    }
    for (c, &p) in present.iter().enumerate() {
        if !p {
            out.push((n_features + c) as u32);
        }
    }
}

fn too_many() -> CoreError {
    CoreError::InvalidHyperparameter {
        name: "columns",
        value: "a column index beyond u32".into(),
        reason: "at most 2^32 - 1 columns",
    }
}

impl Scorer for ContentModel {
    fn n_items(&self) -> usize {
        self.item_indptr.len() - 1
    }

    fn score_all(&self, user: UserQuery<'_>, out: &mut Vec<f32>) -> Result<()> {
        let scores = self.feature_scores(user)?;
        out.clear();
        out.resize(self.n_items(), 0.0);
        self.add_items(&scores, 1.0, out);
        Ok(())
    }
}

/// A model's scores plus `weight ×` a [`ContentModel`]'s: the content model as a prior
/// over the whole catalogue. Its log probabilities separate the long tail, which a
/// factorisation model ranks poorly, while a small weight leaves the top of the model's
/// ranking in place (on Complete Journey, ALS's AUC rises by 0.014 with its P@10 unchanged,
/// docs/benchmarks.md). A user the content model cannot score (described by features or
/// given as a representation) gets the population's prior.
///
/// ```
/// use recsys_core::{ContentModel, ContentParams, ContentPrior, FeatureMatrix, Interactions, Popularity, Scorer, UserQuery};
///
/// let items = FeatureMatrix::from_rows(2, [vec![(0, 1.0)], vec![(0, 1.0)], vec![(1, 1.0)]])?;
/// let train = Interactions::from_pairs(2, 3, [(0, 0), (1, 0), (1, 2)])?;
/// let content = ContentModel::fit(&items, &[Some(0), Some(0)], &train, ContentParams::default())?;
/// let popularity = Popularity::from_counts(vec![2.0, 0.0, 0.0]); // any scorer
/// let blend = ContentPrior::new(&popularity, &content, 0.01)?;
/// let (mut both, mut alone) = (Vec::new(), Vec::new());
/// blend.score_all(UserQuery::Known(0), &mut both)?;
/// popularity.score_all(UserQuery::Known(0), &mut alone)?;
/// assert_eq!(alone[1], alone[2]); // a tie for the model...
/// assert!(both[1] > both[2]); // ...but item 1 shares its kind with user 0's purchase
/// # Ok::<(), recsys_core::CoreError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ContentPrior<'a, S: ?Sized> {
    model: &'a S,
    content: &'a ContentModel,
    weight: f32,
}

impl<'a, S: Scorer + ?Sized> ContentPrior<'a, S> {
    /// `model`'s scores plus `weight ×` `content`'s; both must know the same items, and
    /// `weight` must be finite and ≥ 0.
    pub fn new(model: &'a S, content: &'a ContentModel, weight: f32) -> Result<Self> {
        if model.n_items() != content.n_items() {
            return Err(CoreError::ShapeMismatch {
                what: "items of the content model",
                expected: model.n_items(),
                found: content.n_items(),
            });
        }
        if !(weight.is_finite() && weight >= 0.0) {
            return Err(CoreError::InvalidHyperparameter {
                name: "content weight",
                value: weight.to_string(),
                reason: "must be finite and >= 0",
            });
        }
        Ok(ContentPrior {
            model,
            content,
            weight,
        })
    }

    /// The weight of the content model's scores.
    pub fn weight(&self) -> f32 {
        self.weight
    }
}

impl<S: Scorer + ?Sized> Scorer for ContentPrior<'_, S> {
    fn n_items(&self) -> usize {
        self.model.n_items()
    }

    fn score_all(&self, user: UserQuery<'_>, out: &mut Vec<f32>) -> Result<()> {
        self.model.score_all(user, out)?;
        if self.weight == 0.0 {
            return Ok(());
        }
        self.content.add_prior(user, self.weight, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 6 items: features 0..3 are "kind" a/b/c (column 0), 3..5 "brand" x/y (column 1),
    /// feature 5 an identity-like feature without a column.
    fn items() -> FeatureMatrix {
        FeatureMatrix::from_rows(
            6,
            [
                vec![(0, 1.0), (3, 1.0), (5, 1.0)],
                vec![(0, 1.0), (4, 1.0)],
                vec![(1, 1.0), (3, 1.0)],
                vec![(1, 1.0), (4, 1.0)],
                vec![(2, 1.0), (3, 1.0)],
                vec![(2, 1.0)],
            ],
        )
        .unwrap()
    }

    fn columns() -> Vec<Option<usize>> {
        vec![Some(0), Some(0), Some(0), Some(1), Some(1), None]
    }

    #[test]
    fn scores_follow_the_formula() {
        let train = Interactions::from_pairs(2, 6, [(0, 0), (0, 1), (0, 2), (1, 4)]).unwrap();
        let params = ContentParams {
            smoothing: 2.0,
            class_size_power: 1.0,
        };
        let model = ContentModel::fit(&items(), &columns(), &train, params).unwrap();
        let mut got = Vec::new();
        model.score_all(UserQuery::Known(0), &mut got).unwrap();
        // Population counts: kind a 2, b 1, c 1, none 0 (total 4, 4 values); brand x 3,
        // y 1, none 0 (total 4, 3 values).
        let pi = |n: f32, total: f32, values: f32| (n + 0.5) / (total + 0.5 * values);
        let term = |n_uf: f32, n_uc: f32, share: f32, size: f32| {
            ((n_uf + 2.0 * share) / (n_uc + 2.0)).ln() - (size + 1.0).ln()
        };
        // User 0: kind a 2, b 1, c 0 (total 3); brand x 2, y 1 (total 3).
        let kind = |n, pop| term(n, 3.0, pi(pop, 4.0, 4.0), 2.0);
        let brand_x = term(2.0, 3.0, pi(3.0, 4.0, 3.0), 3.0);
        let brand_y = term(1.0, 3.0, pi(1.0, 4.0, 3.0), 2.0);
        let no_brand = term(0.0, 3.0, pi(0.0, 4.0, 3.0), 1.0);
        let want = [
            kind(2.0, 2.0) + brand_x, // identity feature 5 ignored
            kind(2.0, 2.0) + brand_y,
            kind(1.0, 1.0) + brand_x,
            kind(1.0, 1.0) + brand_y,
            kind(0.0, 1.0) + brand_x,
            kind(0.0, 1.0) + no_brand,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
        // The same through feature rows.
        let rows: Vec<&[(usize, f32)]> = vec![&[(0, 1.0), (3, 1.0)], &[(2, 0.5)]];
        let by_rows = model.score_rows(UserQuery::Known(0), &rows).unwrap();
        assert!((by_rows[0] - want[0]).abs() < 1e-5);
        assert!((by_rows[1] - want[5]).abs() < 1e-5);
    }

    #[test]
    fn a_user_prefers_the_kind_they_buy_and_strangers_get_the_population() {
        // Users 0-2 buy kind a, user 3 kind c: kind a is the popular one.
        let train =
            Interactions::from_pairs(5, 6, [(0, 0), (1, 1), (2, 0), (3, 4), (3, 5)]).unwrap();
        let model =
            ContentModel::fit(&items(), &columns(), &train, ContentParams::default()).unwrap();
        let mut s = Vec::new();
        // Items 1 and 3 differ in kind only: the population prefers kind a (3 pairs) to b
        // (none), and so does a user without interactions.
        model.score_all(UserQuery::Anonymous, &mut s).unwrap();
        assert!(s[1] > s[3], "{s:?}");
        let mut nobody = Vec::new();
        model.score_all(UserQuery::Known(4), &mut nobody).unwrap();
        assert!(nobody[1] > nobody[3], "{nobody:?}");
        // ... while user 3, who bought kind c only, prefers c.
        model.score_all(UserQuery::Known(3), &mut s).unwrap();
        assert!(s[4] > s[0] && s[4] > s[2], "{s:?}");
    }

    #[test]
    fn a_larger_class_size_power_favours_narrow_values() {
        // Kind a has three items (0-2), kind b one (3); the user bought one of each.
        let items = FeatureMatrix::from_rows(
            2,
            [
                vec![(0, 1.0)],
                vec![(0, 1.0)],
                vec![(0, 1.0)],
                vec![(1, 1.0)],
            ],
        )
        .unwrap();
        let train = Interactions::from_pairs(1, 4, [(0, 0), (0, 3)]).unwrap();
        let scores = |power| {
            let params = ContentParams {
                smoothing: 1.0,
                class_size_power: power,
            };
            let m = ContentModel::fit(&items, &[Some(0), Some(0)], &train, params).unwrap();
            m.score_rows(UserQuery::Known(0), &[&[(0, 1.0)][..], &[(1, 1.0)][..]])
                .unwrap()
        };
        // Without the penalty the two kinds tie; with it the narrow kind wins, by γ·ln(4/2).
        let (flat, penalised) = (scores(0.0), scores(1.5));
        assert!((flat[0] - flat[1]).abs() < 1e-6, "{flat:?}");
        assert!(
            (penalised[1] - penalised[0] - 1.5 * 2f32.ln()).abs() < 1e-5,
            "{penalised:?}"
        );
    }

    #[test]
    fn the_prior_adds_weighted_content_scores_and_falls_back_to_the_population() {
        let train = Interactions::from_pairs(3, 6, [(0, 0), (1, 4), (2, 2)]).unwrap();
        let content =
            ContentModel::fit(&items(), &columns(), &train, ContentParams::default()).unwrap();
        let popularity = crate::Popularity::from_interactions(&train);
        let blend = ContentPrior::new(&popularity, &content, 0.5).unwrap();
        let (mut got, mut pop, mut prior) = (Vec::new(), Vec::new(), Vec::new());
        popularity.score_all(UserQuery::Known(1), &mut pop).unwrap();
        for (query, prior_query) in [
            (UserQuery::Known(1), UserQuery::Known(1)),
            (UserQuery::Features(&[]), UserQuery::Anonymous),
            (UserQuery::Anonymous, UserQuery::Anonymous),
        ] {
            blend.score_all(query, &mut got).unwrap();
            content.score_all(prior_query, &mut prior).unwrap();
            for i in 0..6 {
                assert!((got[i] - (pop[i] + 0.5 * prior[i])).abs() < 1e-5, "{got:?}");
            }
        }
        let zero = ContentPrior::new(&popularity, &content, 0.0).unwrap();
        zero.score_all(UserQuery::Known(1), &mut got).unwrap();
        assert_eq!(got, pop);
        assert!(ContentPrior::new(&popularity, &content, -1.0).is_err());
        let fewer = crate::Popularity::from_interactions(
            &Interactions::from_pairs(1, 5, [(0, 0)]).unwrap(),
        );
        assert!(ContentPrior::new(&fewer, &content, 0.1).is_err());
    }

    #[test]
    fn bad_inputs_are_errors() {
        let train = Interactions::from_pairs(1, 6, [(0, 0)]).unwrap();
        let bad = ContentParams {
            smoothing: 0.0,
            class_size_power: 1.0,
        };
        assert!(ContentModel::fit(&items(), &columns(), &train, bad).is_err());
        let p = ContentParams::default();
        assert!(ContentModel::fit(&items(), &columns()[..3], &train, p).is_err());
        assert!(ContentModel::fit(&items(), &[None; 6], &train, p).is_err());
        let wrong_items = Interactions::from_pairs(1, 5, [(0, 0)]).unwrap();
        assert!(ContentModel::fit(&items(), &columns(), &wrong_items, p).is_err());
        let model = ContentModel::fit(&items(), &columns(), &train, p).unwrap();
        let mut s = Vec::new();
        assert!(model.score_all(UserQuery::Known(1), &mut s).is_err());
        assert!(model.score_all(UserQuery::Features(&[]), &mut s).is_err());
        assert!(model
            .score_rows(UserQuery::Known(0), &[&[(9, 1.0)][..]])
            .is_err());
    }
}
