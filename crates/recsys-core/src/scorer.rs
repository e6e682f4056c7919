//! The [`Scorer`] trait: anything that can score items for a user.
//!
//! The hybrid model and the popularity baseline implement it; the blending policy of the
//! `recsys` crate wraps one scorer in another.

use std::borrow::Cow;
use std::sync::Arc;

use crate::error::{CoreError, Result};
use crate::repr::{ItemRepresentations, Representation};

/// Who the scores are for.
#[derive(Debug, Clone, Copy)]
pub enum UserQuery<'a> {
    /// A user known to the model, by dense index.
    Known(usize),
    /// A user not seen in training, described by a feature row (`(feature, weight)` pairs
    /// from the training vocabulary): cold start.
    Features(&'a [(usize, f32)]),
    /// A ready-made representation (e.g. from fold-in).
    Representation(&'a Representation),
    /// Nobody in particular: scorers that do not personalise answer; others fail.
    Anonymous,
}

/// Scores items for a user. `Send + Sync` so one scorer can serve many threads.
pub trait Scorer: Send + Sync {
    /// Number of items this scorer knows.
    fn n_items(&self) -> usize;

    /// Writes a score for every item into `out` (resized to [`Scorer::n_items`]).
    fn score_all(&self, user: UserQuery<'_>, out: &mut Vec<f32>) -> Result<()>;

    /// For factorisation models: the item representations, so callers (evaluation, top-k)
    /// can use blocked, cache-friendly kernels. Default: `None`.
    fn item_representations(&self) -> Option<&ItemRepresentations> {
        None
    }

    /// For factorisation models: the user's representation (scores are then
    /// `user · item + biases`). Default: `None`.
    fn representation(&self, user: UserQuery<'_>) -> Result<Option<Representation>> {
        let _ = user;
        Ok(None)
    }

    /// For factorisation models with item features: the representation of an item the
    /// model was not trained on (a product added after training), from its feature row —
    /// `(feature, weight)` pairs of the training vocabulary, built as training built item
    /// rows but without an identity feature (`recsys_features::FeatureVocabulary::feature_row`).
    /// Scores with it are `user · item + biases`, as for the trained items. Default: `None`
    /// (this scorer cannot represent an item it does not know).
    fn item_representation_from_features(
        &self,
        row: &[(usize, f32)],
    ) -> Result<Option<Representation>> {
        let _ = row;
        Ok(None)
    }

    /// Scores of the given items (default: via [`Scorer::score_all`]).
    fn score_items(&self, user: UserQuery<'_>, items: &[usize], out: &mut Vec<f32>) -> Result<()> {
        let mut all = Vec::new();
        self.score_all(user, &mut all)?;
        out.clear();
        for &i in items {
            out.push(*all.get(i).ok_or(CoreError::IndexOutOfRange {
                what: "item",
                index: i,
                len: all.len(),
            })?);
        }
        Ok(())
    }
}

/// Forwards every `Scorer` method through a pointer type.
macro_rules! forward_scorer {
    ($($ptr:ty),*) => {$(
        impl<S: Scorer + ?Sized> Scorer for $ptr {
            fn n_items(&self) -> usize {
                (**self).n_items()
            }
            fn item_representations(&self) -> Option<&ItemRepresentations> {
                (**self).item_representations()
            }
            fn representation(&self, user: UserQuery<'_>) -> Result<Option<Representation>> {
                (**self).representation(user)
            }
            fn item_representation_from_features(&self, row: &[(usize, f32)]) -> Result<Option<Representation>> {
                (**self).item_representation_from_features(row)
            }
            fn score_all(&self, user: UserQuery<'_>, out: &mut Vec<f32>) -> Result<()> {
                (**self).score_all(user, out)
            }
            fn score_items(&self, user: UserQuery<'_>, items: &[usize], out: &mut Vec<f32>) -> Result<()> {
                (**self).score_items(user, items, out)
            }
        }
    )*};
}

forward_scorer!(&S, Box<S>, Arc<S>);

/// The non-personalised baseline: an item's score is its number of interactions.
///
/// Deserialising checks that every count is finite ([`Popularity::validate`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "PopularityData")]
pub struct Popularity {
    counts: Vec<f32>,
}

/// The serialised form of [`Popularity`], before validation.
#[derive(serde::Deserialize)]
struct PopularityData {
    counts: Vec<f32>,
}

impl TryFrom<PopularityData> for Popularity {
    type Error = CoreError;

    fn try_from(d: PopularityData) -> Result<Self> {
        let p = Popularity { counts: d.counts };
        p.validate()?;
        Ok(p)
    }
}

impl Popularity {
    /// Deserialises like the `Deserialize` impl, but returns counts that decode and are
    /// invalid as `Ok(Err(reason))`, so that formats which drop error messages (postcard, in
    /// the artifact bundle) can still say what is wrong.
    pub fn deserialize_validated<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Result<Self>, D::Error> {
        use serde::Deserialize;
        Ok(Popularity::try_from(PopularityData::deserialize(d)?))
    }

    /// Checks that every count is finite (a NaN or infinite count would rank arbitrarily).
    pub fn validate(&self) -> Result<()> {
        match self.counts.iter().position(|c| !c.is_finite()) {
            Some(position) => Err(CoreError::NonFinite {
                what: "popularity counts",
                position,
                value: self.counts[position].to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Popularity from training interactions.
    pub fn from_interactions(x: &crate::Interactions) -> Self {
        Popularity {
            counts: x.item_counts().into_iter().map(|c| c as f32).collect(),
        }
    }

    /// Popularity from explicit per-item counts.
    pub fn from_counts(counts: Vec<f32>) -> Self {
        Popularity { counts }
    }

    /// The per-item counts.
    pub fn counts(&self) -> &[f32] {
        &self.counts
    }
}

impl Scorer for Popularity {
    fn n_items(&self) -> usize {
        self.counts.len()
    }

    fn score_all(&self, _user: UserQuery<'_>, out: &mut Vec<f32>) -> Result<()> {
        out.clear();
        out.extend_from_slice(&self.counts);
        Ok(())
    }
}

/// A factorisation model as the [`Scorer`] machinery sees it: a user is a vector (from a
/// known index, a feature row, or given), an item is a row of [`ItemRepresentations`], and a
/// score is their dot product plus biases. The hybrid model and ALS implement it, and are
/// [`Scorer`]s through it, so both answer every [`UserQuery`] the same way.
pub(crate) trait Factorised: Send + Sync {
    /// The model's name in errors ("the hybrid model needs a user …").
    const NAME: &'static str;
    /// Latent components of a representation.
    fn no_components(&self) -> usize;
    /// Every item's representation.
    fn item_representations(&self) -> &ItemRepresentations;
    /// The representation of a known user.
    fn user_representation(&self, user: usize) -> Result<Representation>;
    /// The representation of a user described by a feature row (cold start).
    fn user_representation_from_features(&self, row: &[(usize, f32)]) -> Result<Representation>;
    /// The representation of an item described by a feature row (item cold start).
    fn item_representation_from_features(&self, row: &[(usize, f32)]) -> Result<Representation>;

    /// The representation `user` stands for: computed, or borrowed when given (its length
    /// checked).
    fn query_representation<'a>(&'a self, user: UserQuery<'a>) -> Result<Cow<'a, Representation>> {
        Ok(match user {
            UserQuery::Known(u) => Cow::Owned(self.user_representation(u)?),
            UserQuery::Features(row) => Cow::Owned(self.user_representation_from_features(row)?),
            UserQuery::Representation(r) => {
                if r.vector.len() != self.no_components() {
                    return Err(CoreError::ShapeMismatch {
                        what: "user representation length",
                        expected: self.no_components(),
                        found: r.vector.len(),
                    });
                }
                Cow::Borrowed(r)
            }
            UserQuery::Anonymous => return Err(CoreError::Empty(Self::NAME)),
        })
    }

    /// Scores of `items` for a known `user` (the models' `predict`).
    fn predict_items(&self, user: usize, items: &[usize]) -> Result<Vec<f32>> {
        let u = self.user_representation(user)?;
        let mut out = Vec::with_capacity(items.len());
        self.item_representations()
            .score_items(&u, items, &mut out)?;
        Ok(out)
    }

    /// Scores of every item for a known `user` (the models' `predict_all`).
    fn predict_every_item(&self, user: usize) -> Result<Vec<f32>> {
        let u = self.user_representation(user)?;
        let mut out = Vec::new();
        self.item_representations().score_all(&u, &mut out);
        Ok(out)
    }

    /// The `n` best items for `user`, best first, skipping `exclude` (the models'
    /// `recommend`).
    fn top_items(
        &self,
        user: usize,
        n: usize,
        exclude: impl Fn(usize) -> bool,
    ) -> Result<Vec<(usize, f32)>> {
        let scores = self.predict_every_item(user)?;
        Ok(crate::topk::top_k(&scores, n, exclude))
    }
}

/// Implements [`Scorer`] for factorisation models through [`Factorised`]: a user is a known
/// index, a feature row, or a ready-made representation, scored against the cached item
/// representations.
macro_rules! factorised_scorer {
    ($($model:ty),*) => {$(
        impl $crate::scorer::Scorer for $model {
            fn n_items(&self) -> usize {
                $crate::scorer::Factorised::item_representations(self).len()
            }

            fn item_representations(&self) -> Option<&$crate::repr::ItemRepresentations> {
                Some($crate::scorer::Factorised::item_representations(self))
            }

            fn representation(
                &self,
                user: $crate::scorer::UserQuery<'_>,
            ) -> $crate::error::Result<Option<$crate::repr::Representation>> {
                use $crate::scorer::Factorised;
                Ok(Some(self.query_representation(user)?.into_owned()))
            }

            fn item_representation_from_features(
                &self,
                row: &[(usize, f32)],
            ) -> $crate::error::Result<Option<$crate::repr::Representation>> {
                $crate::scorer::Factorised::item_representation_from_features(self, row).map(Some)
            }

            fn score_all(
                &self,
                user: $crate::scorer::UserQuery<'_>,
                out: &mut Vec<f32>,
            ) -> $crate::error::Result<()> {
                use $crate::scorer::Factorised;
                let r = self.query_representation(user)?;
                Factorised::item_representations(self).score_all(&r, out);
                Ok(())
            }

            fn score_items(
                &self,
                user: $crate::scorer::UserQuery<'_>,
                items: &[usize],
                out: &mut Vec<f32>,
            ) -> $crate::error::Result<()> {
                use $crate::scorer::Factorised;
                let r = self.query_representation(user)?;
                Factorised::item_representations(self).score_items(&r, items, out)
            }
        }
    )*};
}
pub(crate) use factorised_scorer;
