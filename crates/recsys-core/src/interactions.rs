//! User–item interactions: the training signal and the evaluation ground truth.

use serde::{Deserialize, Serialize};
use sprs::CsMat;

use crate::error::{CoreError, Result};
use crate::rng::Rng;

/// One observed interaction, as given to [`Interactions::from_entries`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    /// Dense user index.
    pub user: usize,
    /// Dense item index.
    pub item: usize,
    /// The label: `> 0` is a positive interaction; `<= 0` a negative one (only the logistic
    /// loss uses negatives, the ranking losses skip them).
    pub value: f32,
    /// Sample weight: scales this interaction's gradient (LightFM's `sample_weight`).
    pub weight: f32,
}

impl Interaction {
    /// A positive interaction with weight 1.
    pub fn positive(user: usize, item: usize) -> Self {
        Interaction {
            user,
            item,
            value: 1.0,
            weight: 1.0,
        }
    }
}

/// An immutable set of interactions of `n_users` users with `n_items` items, stored by user
/// with items sorted (fast "has the user seen this item?" checks).
///
/// Duplicated `(user, item)` pairs are merged on construction: values and weights are summed.
///
/// Deserialising checks every invariant ([`Interactions::validate`]), so a damaged file is an
/// error, never an out-of-range slice later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "InteractionsData")]
pub struct Interactions {
    n_users: usize,
    n_items: usize,
    indptr: Vec<usize>,
    users: Vec<u32>,
    items: Vec<u32>,
    values: Vec<f32>,
    weights: Vec<f32>,
}

/// The serialised form of [`Interactions`], before validation.
#[derive(Deserialize)]
pub(crate) struct InteractionsData {
    n_users: usize,
    n_items: usize,
    indptr: Vec<usize>,
    users: Vec<u32>,
    items: Vec<u32>,
    values: Vec<f32>,
    weights: Vec<f32>,
}

impl TryFrom<InteractionsData> for Interactions {
    type Error = CoreError;

    fn try_from(d: InteractionsData) -> Result<Self> {
        let x = Interactions {
            n_users: d.n_users,
            n_items: d.n_items,
            indptr: d.indptr,
            users: d.users,
            items: d.items,
            values: d.values,
            weights: d.weights,
        };
        x.validate()?;
        Ok(x)
    }
}

impl Interactions {
    /// Deserialises like the `Deserialize` impl, but returns interactions that decode and
    /// break an invariant as `Ok(Err(reason))`, so that formats which drop error messages
    /// (postcard, in the artifact bundle) can still say what is wrong.
    pub fn deserialize_validated<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Result<Self>, D::Error> {
        Ok(Interactions::try_from(InteractionsData::deserialize(d)?))
    }

    /// Checks the invariants every method relies on, in one pass: dimensions fit in `u32`;
    /// one row pointer per user plus one, starting at 0, non-decreasing, ending at the number
    /// of entries; per-entry arrays of equal length; each entry's user is its row; items in
    /// range and strictly increasing within a user; values finite; weights finite and ≥ 0.
    /// [`Interactions::from_entries`] guarantees all of it; a deserialised set is checked.
    pub fn validate(&self) -> Result<()> {
        let corrupt = |reason: String| {
            Err(CoreError::Corrupt {
                what: "interactions",
                reason,
            })
        };
        let (n_users, n_items) = (self.n_users, self.n_items);
        if n_users > u32::MAX as usize || n_items > u32::MAX as usize {
            return corrupt(format!("{n_users} users × {n_items} items exceed 2^32 − 1"));
        }
        let n = self.items.len();
        if self.indptr.len() != n_users + 1 {
            return corrupt(format!(
                "{} row pointers for {n_users} users (expected {})",
                self.indptr.len(),
                n_users + 1
            ));
        }
        if self.indptr[0] != 0 || self.indptr[n_users] != n {
            return corrupt(format!(
                "row pointers run from {} to {} over {n} entries",
                self.indptr[0], self.indptr[n_users]
            ));
        }
        let lens = [self.users.len(), self.values.len(), self.weights.len()];
        if lens.iter().any(|&l| l != n) {
            return corrupt(format!(
                "{n} items but {} users, {} values, {} weights",
                lens[0], lens[1], lens[2]
            ));
        }
        // Non-decreasing from 0 to `n`: every row is a range of the entries.
        for (u, w) in self.indptr.windows(2).enumerate() {
            if w[0] > w[1] {
                return corrupt(format!(
                    "row pointer {} ({}) is below row pointer {u} ({})",
                    u + 1,
                    w[1],
                    w[0]
                ));
            }
        }
        for u in 0..n_users {
            let (start, end) = (self.indptr[u], self.indptr[u + 1]);
            let mut previous: Option<u32> = None;
            for k in start..end {
                let item = self.items[k];
                if self.users[k] as usize != u {
                    return corrupt(format!(
                        "entry {k} is in user {u}'s row but names user {}",
                        self.users[k]
                    ));
                }
                if item as usize >= n_items {
                    return corrupt(format!(
                        "entry {k}: item {item} is out of range ({n_items} items)"
                    ));
                }
                if previous.is_some_and(|p| p >= item) {
                    return corrupt(format!(
                        "user {u}'s items are not sorted and distinct at entry {k} (item {item})"
                    ));
                }
                previous = Some(item);
            }
        }
        for (k, (&v, &w)) in self.values.iter().zip(&self.weights).enumerate() {
            if !v.is_finite() {
                return corrupt(format!("entry {k}: value {v} is not finite"));
            }
            if !(w.is_finite() && w >= 0.0) {
                return corrupt(format!("entry {k}: weight {w} is not finite and ≥ 0"));
            }
        }
        Ok(())
    }

    /// Builds the set from entries; checks indices, finiteness and non-negative weights.
    pub fn from_entries<I>(n_users: usize, n_items: usize, entries: I) -> Result<Self>
    where
        I: IntoIterator<Item = Interaction>,
    {
        if n_users > u32::MAX as usize || n_items > u32::MAX as usize {
            return Err(CoreError::IndexOutOfRange {
                what: "dimension (max 2^32-1)",
                index: n_users.max(n_items),
                len: u32::MAX as usize,
            });
        }
        let mut all: Vec<Interaction> = Vec::new();
        for (position, e) in entries.into_iter().enumerate() {
            if e.user >= n_users {
                return Err(CoreError::IndexOutOfRange {
                    what: "user",
                    index: e.user,
                    len: n_users,
                });
            }
            if e.item >= n_items {
                return Err(CoreError::IndexOutOfRange {
                    what: "item",
                    index: e.item,
                    len: n_items,
                });
            }
            if !e.value.is_finite() {
                return Err(CoreError::NonFinite {
                    what: "interaction value",
                    position,
                    value: e.value.to_string(),
                });
            }
            if !e.weight.is_finite() {
                return Err(CoreError::NonFinite {
                    what: "interaction weight",
                    position,
                    value: e.weight.to_string(),
                });
            }
            if e.weight < 0.0 {
                return Err(CoreError::Negative {
                    what: "interaction weight",
                    position,
                    value: e.weight.to_string(),
                });
            }
            all.push(e);
        }
        all.sort_by_key(|e| (e.user, e.item));
        let mut out = Interactions {
            n_users,
            n_items,
            indptr: vec![0; n_users + 1],
            users: Vec::with_capacity(all.len()),
            items: Vec::with_capacity(all.len()),
            values: Vec::with_capacity(all.len()),
            weights: Vec::with_capacity(all.len()),
        };
        for e in all {
            let n = out.items.len();
            if n > 0 && out.users[n - 1] as usize == e.user && out.items[n - 1] as usize == e.item {
                out.values[n - 1] += e.value;
                out.weights[n - 1] += e.weight;
                continue;
            }
            out.users.push(e.user as u32);
            out.items.push(e.item as u32);
            out.values.push(e.value);
            out.weights.push(e.weight);
            out.indptr[e.user + 1] += 1;
        }
        for u in 0..n_users {
            out.indptr[u + 1] += out.indptr[u];
        }
        Ok(out)
    }

    /// Positive, unit-weight interactions from `(user, item)` pairs.
    pub fn from_pairs<I>(n_users: usize, n_items: usize, pairs: I) -> Result<Self>
    where
        I: IntoIterator<Item = (usize, usize)>,
    {
        Self::from_entries(
            n_users,
            n_items,
            pairs.into_iter().map(|(u, i)| Interaction::positive(u, i)),
        )
    }

    /// Number of users (rows).
    pub fn n_users(&self) -> usize {
        self.n_users
    }

    /// Number of items (columns).
    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Number of distinct `(user, item)` pairs.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are no interactions.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Sorted items of `user`.
    #[inline]
    pub fn user_items(&self, user: usize) -> &[u32] {
        &self.items[self.indptr[user]..self.indptr[user + 1]]
    }

    /// Values aligned with [`Self::user_items`].
    pub fn user_values(&self, user: usize) -> &[f32] {
        &self.values[self.indptr[user]..self.indptr[user + 1]]
    }

    /// Whether `(user, item)` is present.
    #[inline]
    pub fn contains(&self, user: usize, item: usize) -> bool {
        user < self.n_users && self.user_items(user).binary_search(&(item as u32)).is_ok()
    }

    /// The `k`-th entry (in user-major order) as an [`Interaction`].
    #[inline]
    pub fn entry(&self, k: usize) -> Interaction {
        Interaction {
            user: self.users[k] as usize,
            item: self.items[k] as usize,
            value: self.values[k],
            weight: self.weights[k],
        }
    }

    /// All entries in user-major order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Interaction> + '_ {
        (0..self.len()).map(move |k| self.entry(k))
    }

    /// Per-entry user indices (user-major order).
    pub fn users_raw(&self) -> &[u32] {
        &self.users
    }

    /// Per-entry item indices (user-major order).
    pub fn items_raw(&self) -> &[u32] {
        &self.items
    }

    /// Per-entry values (user-major order).
    pub fn values_raw(&self) -> &[f32] {
        &self.values
    }

    /// Per-entry sample weights (user-major order).
    pub fn weights_raw(&self) -> &[f32] {
        &self.weights
    }

    /// Number of interactions per item (popularity).
    pub fn item_counts(&self) -> Vec<u32> {
        let mut c = vec![0u32; self.n_items];
        for &i in &self.items {
            c[i as usize] += 1;
        }
        c
    }

    /// The same interactions in a larger `n_users × n_items` space (new users/items appended).
    pub fn grown(&self, n_users: usize, n_items: usize) -> Result<Self> {
        if n_users < self.n_users || n_items < self.n_items {
            return Err(CoreError::ShapeMismatch {
                what: "grown interactions (they may only grow)",
                expected: self.n_users.max(self.n_items),
                found: n_users.min(n_items),
            });
        }
        let mut g = self.clone();
        g.n_users = n_users;
        g.n_items = n_items;
        let last = *g.indptr.last().unwrap_or(&0);
        g.indptr.resize(n_users + 1, last);
        Ok(g)
    }

    /// Keeps the entries for which `keep` returns true.
    pub fn filter(&self, mut keep: impl FnMut(&Interaction) -> bool) -> Self {
        let kept: Vec<Interaction> = self.iter().filter(|e| keep(e)).collect();
        Self::from_entries(self.n_users, self.n_items, kept).expect("subset of valid entries")
    }

    /// Entries of `self` whose pair is not in `other`.
    pub fn difference(&self, other: &Interactions) -> Self {
        self.filter(|e| !other.contains(e.user, e.item))
    }

    /// A seeded random split: each entry goes to the test set with probability
    /// `test_fraction`. Returns `(train, test)`, both in the same shape as `self`.
    pub fn split_random(&self, test_fraction: f64, seed: u64) -> Result<(Self, Self)> {
        if !(0.0..1.0).contains(&test_fraction) {
            return Err(CoreError::InvalidHyperparameter {
                name: "test_fraction",
                value: test_fraction.to_string(),
                reason: "must be in [0, 1)",
            });
        }
        let mut rng = Rng::new(seed);
        let mut train = Vec::with_capacity(self.len());
        let mut test = Vec::new();
        for e in self.iter() {
            if rng.next_f64() < test_fraction {
                test.push(e);
            } else {
                train.push(e);
            }
        }
        Ok((
            Self::from_entries(self.n_users, self.n_items, train)?,
            Self::from_entries(self.n_users, self.n_items, test)?,
        ))
    }

    /// The values as an `sprs` CSR matrix (`n_users × n_items`).
    pub fn to_csr(&self) -> CsMat<f32> {
        CsMat::new(
            (self.n_users, self.n_items),
            self.indptr.clone(),
            self.items.iter().map(|&i| i as usize).collect(),
            self.values.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_duplicates_and_sorts() {
        let x = Interactions::from_entries(
            2,
            3,
            vec![
                Interaction::positive(1, 2),
                Interaction::positive(0, 1),
                Interaction::positive(1, 0),
                Interaction::positive(1, 2),
            ],
        )
        .unwrap();
        assert_eq!(x.len(), 3);
        assert_eq!(x.user_items(1), &[0, 2]);
        assert_eq!(x.user_values(1), &[1.0, 2.0]);
        assert!(x.contains(0, 1) && !x.contains(0, 2));
        assert_eq!(x.item_counts(), vec![1, 1, 1]);
    }

    #[test]
    fn rejects_bad_entries() {
        assert!(matches!(
            Interactions::from_pairs(1, 1, vec![(0, 1)]),
            Err(CoreError::IndexOutOfRange { what: "item", .. })
        ));
        let bad = Interaction {
            weight: -1.0,
            ..Interaction::positive(0, 0)
        };
        assert!(matches!(
            Interactions::from_entries(1, 1, vec![bad]),
            Err(CoreError::Negative { .. })
        ));
    }

    #[test]
    fn split_is_a_partition_and_seeded() {
        let pairs: Vec<(usize, usize)> =
            (0..50).flat_map(|u| (0..20).map(move |i| (u, i))).collect();
        let x = Interactions::from_pairs(50, 20, pairs).unwrap();
        let (tr, te) = x.split_random(0.2, 9).unwrap();
        assert_eq!(tr.len() + te.len(), x.len());
        assert!(te.iter().all(|e| !tr.contains(e.user, e.item)));
        let (tr2, _) = x.split_random(0.2, 9).unwrap();
        assert_eq!(tr, tr2);
        assert!(te.len() > 100 && te.len() < 300, "{}", te.len());
    }

    #[test]
    fn grown_keeps_entries() {
        let x = Interactions::from_pairs(1, 1, vec![(0, 0)]).unwrap();
        let g = x.grown(3, 4).unwrap();
        assert_eq!(g.n_users(), 3);
        assert!(g.user_items(2).is_empty());
        assert!(g.contains(0, 0));
    }
}
