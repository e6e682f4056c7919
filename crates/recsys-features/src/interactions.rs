//! Turning interaction records into [`recsys_core::Interactions`]: modes, weights, the
//! unknown-id policy, the report, and the compact log a [`Dataset`](crate::Dataset) keeps.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use recsys_core::{Interaction, Interactions};
use serde::{Deserialize, Serialize};

use crate::error::{FeaturesError, RecordKind, Result};
use crate::records::ExternalId;

/// How interaction records become matrix entries. In [`Binary`](Self::Binary) mode every
/// entry has value 1 (a positive); in [`Weighted`](Self::Weighted) mode an entry is a
/// positive (value 1) unless its records' types are listed in
/// [`InteractionWeights::negative_types`] (value −1, or 0 when the signs cancel).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum InteractionMode {
    /// Weight 1; a `(user, product)` pair seen several times is one entry of weight 1.
    #[default]
    Binary,
    /// Weight from the record and its type (see [`InteractionWeights`]); the signed weights
    /// of a repeated `(user, product)` pair are summed into one entry (LightFM's behaviour
    /// when its COO matrix is converted): value = the sign of the sum, weight = its size.
    Weighted(InteractionWeights),
}

/// Weight and sign of one interaction in [`InteractionMode::Weighted`]:
/// `(record.weight or 1 if use_record_weight, else 1) × type weight`, where the type weight
/// is `type_weights[interaction_type]` (exact match on the trimmed type) or
/// `default_type_weight` for other or missing types.
///
/// Records whose trimmed type is in `negative_types` are **negative examples** (e.g.
/// `dislike`, `return`): their weight counts with a minus sign. The records of one
/// `(user, product)` pair are summed with their signs into one entry whose `value` is the
/// sign of the sum (+1 or −1; 0 when the contributions cancel exactly) and whose `weight`
/// is the sum's absolute value. This is how LightFM's ±1 labels for its logistic loss are
/// expressed while record weights stay `>= 0`: [`Loss::Logistic`] treats value ≤ 0 as a
/// negative; WARP, BPR and WARP-kOS train only on entries with value > 0.
///
/// [`Loss::Logistic`]: recsys_core::Loss::Logistic
///
/// ```
/// use recsys_features::{InteractionMode, InteractionWeights};
///
/// let weights = InteractionWeights::new()
///     .with_record_weight(false)
///     .with_negative_type("dislike");
/// assert!(weights.is_negative(Some(" dislike ")));
/// assert!(!weights.is_negative(Some("purchase")) && !weights.is_negative(None));
/// let mode = InteractionMode::Weighted(weights);
/// # let _ = mode;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteractionWeights {
    /// Multiply by the record's own `weight` (1 when absent).
    pub use_record_weight: bool,
    /// Weight per interaction type, e.g. `view=1, cart=3, purchase=5`.
    pub type_weights: BTreeMap<String, f32>,
    /// Weight of types not in `type_weights` and of records without a type.
    pub default_type_weight: f32,
    /// Interaction types (exact match on the trimmed type) whose records are negative
    /// examples. Empty by default (and when absent from serialised settings).
    #[serde(default)]
    pub negative_types: BTreeSet<String>,
}

impl Default for InteractionWeights {
    /// Record weights on, no per-type weights, default type weight 1.
    fn default() -> Self {
        InteractionWeights {
            use_record_weight: true,
            type_weights: BTreeMap::new(),
            default_type_weight: 1.0,
            negative_types: BTreeSet::new(),
        }
    }
}

impl InteractionWeights {
    /// Same as [`Default::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the weight of one interaction type.
    pub fn with_type_weight(mut self, interaction_type: impl Into<String>, weight: f32) -> Self {
        self.type_weights.insert(interaction_type.into(), weight);
        self
    }

    /// Sets [`use_record_weight`](Self::use_record_weight).
    pub fn with_record_weight(mut self, use_record_weight: bool) -> Self {
        self.use_record_weight = use_record_weight;
        self
    }

    /// Adds an interaction type whose records are negative examples (see
    /// [`negative_types`](Self::negative_types)); the name is trimmed.
    pub fn with_negative_type(mut self, interaction_type: impl AsRef<str>) -> Self {
        self.negative_types
            .insert(interaction_type.as_ref().trim().to_string());
        self
    }

    /// True when records of `interaction_type` (trimmed) are negative examples; records
    /// without a type never are.
    pub fn is_negative(&self, interaction_type: Option<&str>) -> bool {
        interaction_type.is_some_and(|t| self.negative_types.contains(t.trim()))
    }

    /// Sets [`default_type_weight`](Self::default_type_weight).
    pub fn with_default_type_weight(mut self, weight: f32) -> Self {
        self.default_type_weight = weight;
        self
    }

    /// Parses `view=1,cart=3,purchase=5` (command-line syntax; white space around names and
    /// numbers is ignored) into type weights, record weights on, default type weight 1.
    ///
    /// ```
    /// use recsys_features::InteractionWeights;
    ///
    /// let w = InteractionWeights::parse_type_weights("view=1, cart=3,purchase=5").unwrap();
    /// assert_eq!(w.type_weights["cart"], 3.0);
    /// assert!(InteractionWeights::parse_type_weights("cart=-1").is_err());
    /// ```
    pub fn parse_type_weights(text: &str) -> Result<Self> {
        let mut weights = InteractionWeights::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let parsed = entry
                .split_once('=')
                .and_then(|(name, w)| Some((name.trim(), w.trim().parse::<f32>().ok()?)))
                .filter(|(name, _)| !name.is_empty());
            let Some((name, weight)) = parsed else {
                return Err(FeaturesError::InvalidInteractionWeight {
                    value: format!("{entry:?}"),
                    context: "in the type-weight list (expected `type=number`)".into(),
                });
            };
            weights.type_weights.insert(name.to_string(), weight);
        }
        weights.validate()?;
        Ok(weights)
    }

    /// Checks that every weight is finite and `>= 0`.
    pub fn validate(&self) -> Result<()> {
        let bad = |value: f32, context: String| FeaturesError::InvalidInteractionWeight {
            value: value.to_string(),
            context,
        };
        if !valid_weight(self.default_type_weight) {
            return Err(bad(
                self.default_type_weight,
                "as the default type weight".into(),
            ));
        }
        for (name, &w) in &self.type_weights {
            if !valid_weight(w) {
                return Err(bad(w, format!("for interaction type {name:?}")));
            }
        }
        Ok(())
    }

    /// The type weight of `interaction_type`.
    pub fn type_weight(&self, interaction_type: Option<&str>) -> f32 {
        interaction_type
            .and_then(|t| self.type_weights.get(t.trim()))
            .copied()
            .unwrap_or(self.default_type_weight)
    }
}

fn valid_weight(w: f32) -> bool {
    w.is_finite() && w >= 0.0
}

/// What to do with an interaction or pair naming an id that is not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum UnknownIdPolicy {
    /// Fail with [`FeaturesError::UnknownId`] naming the id and the position.
    #[default]
    Error,
    /// Skip the record and count it in the [`InteractionReport`].
    Skip,
}

/// Options of [`Dataset::interactions`](crate::Dataset::interactions). An
/// [`InteractionMode`] converts into options with the default policy
/// ([`UnknownIdPolicy::Error`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InteractionOptions {
    /// Binary or weighted.
    pub mode: InteractionMode,
    /// What to do with unknown ids.
    pub unknown_ids: UnknownIdPolicy,
}

impl InteractionOptions {
    /// Binary, unknown ids are an error.
    pub fn binary() -> Self {
        Self::default()
    }

    /// Weighted, unknown ids are an error.
    pub fn weighted(weights: InteractionWeights) -> Self {
        InteractionOptions {
            mode: InteractionMode::Weighted(weights),
            unknown_ids: UnknownIdPolicy::Error,
        }
    }

    /// The same options with another unknown-id policy.
    pub fn with_unknown_ids(mut self, unknown_ids: UnknownIdPolicy) -> Self {
        self.unknown_ids = unknown_ids;
        self
    }

    /// The same options, skipping unknown ids.
    pub fn skip_unknown_ids(self) -> Self {
        self.with_unknown_ids(UnknownIdPolicy::Skip)
    }
}

impl From<InteractionMode> for InteractionOptions {
    fn from(mode: InteractionMode) -> Self {
        InteractionOptions {
            mode,
            unknown_ids: UnknownIdPolicy::Error,
        }
    }
}

/// How many ids shown as examples in an [`InteractionReport`].
pub const UNKNOWN_ID_EXAMPLES: usize = 10;

/// What happened while building interactions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractionReport {
    /// Records (or pairs) read.
    pub records: usize,
    /// Records skipped because an id is unknown (only with [`UnknownIdPolicy::Skip`]).
    pub skipped: usize,
    /// Skipped records whose user id is unknown.
    pub unknown_users: usize,
    /// Skipped records whose product id is unknown (a record may count here and in
    /// `unknown_users`).
    pub unknown_products: usize,
    /// The first few distinct unknown user ids (at most [`UNKNOWN_ID_EXAMPLES`]).
    pub unknown_user_examples: Vec<ExternalId>,
    /// The first few distinct unknown product ids (at most [`UNKNOWN_ID_EXAMPLES`]).
    pub unknown_product_examples: Vec<ExternalId>,
    /// Records merged into an earlier record of the same `(user, product)` pair.
    pub merged_duplicates: usize,
    /// Distinct `(user, product)` pairs in the result.
    pub pairs: usize,
}

/// Collects entries, applies the unknown-id policy and builds the result.
pub(crate) struct InteractionAccumulator {
    unknown_ids: UnknownIdPolicy,
    context: &'static str,
    weighted: bool,
    /// `(user, item, signed weight, negative)`: `negative` when the record is a negative
    /// example (its weight is then `<= 0`, possibly `-0.0`).
    entries: Vec<(usize, usize, f32, bool)>,
    pub(crate) report: InteractionReport,
}

impl InteractionAccumulator {
    pub(crate) fn new(
        unknown_ids: UnknownIdPolicy,
        context: &'static str,
        weighted: bool,
        capacity: usize,
    ) -> Self {
        InteractionAccumulator {
            unknown_ids,
            context,
            weighted,
            entries: Vec::with_capacity(capacity),
            report: InteractionReport::default(),
        }
    }

    /// Resolves both indices (applying the policy) and returns them when the record is kept.
    pub(crate) fn resolve(
        &mut self,
        position: usize,
        user: (Option<usize>, &ExternalId),
        product: (Option<usize>, &ExternalId),
    ) -> Result<Option<(usize, usize)>> {
        self.report.records += 1;
        match (user.0, product.0) {
            (Some(u), Some(i)) => Ok(Some((u, i))),
            (u, i) => {
                if self.unknown_ids == UnknownIdPolicy::Error {
                    let (kind, id) = if u.is_none() {
                        (RecordKind::User, user.1)
                    } else {
                        (RecordKind::Product, product.1)
                    };
                    return Err(FeaturesError::UnknownId {
                        kind,
                        id: id.clone(),
                        context: self.context,
                        position,
                    });
                }
                self.report.skipped += 1;
                if u.is_none() {
                    self.report.unknown_users += 1;
                    remember(&mut self.report.unknown_user_examples, user.1);
                }
                if i.is_none() {
                    self.report.unknown_products += 1;
                    remember(&mut self.report.unknown_product_examples, product.1);
                }
                Ok(None)
            }
        }
    }

    /// Adds a record of `weight >= 0`, a negative example when `negative`.
    pub(crate) fn push(&mut self, user: usize, item: usize, weight: f32, negative: bool) {
        let signed = if negative { -weight } else { weight };
        self.entries.push((user, item, signed, negative));
    }

    /// Merges repeated pairs: weighted, the signed weights are summed (value = sign of the
    /// sum, 0 when a pair with a negative record sums to 0; weight = its absolute value);
    /// otherwise value 1, weight 1.
    pub(crate) fn finish(
        mut self,
        n_users: usize,
        n_items: usize,
    ) -> Result<(Interactions, InteractionReport)> {
        self.entries.sort_unstable_by_key(|&(u, i, _, _)| (u, i));
        let before = self.entries.len();
        let weighted = self.weighted;
        self.entries.dedup_by(|later, earlier| {
            if (later.0, later.1) == (earlier.0, earlier.1) {
                if weighted {
                    earlier.2 += later.2;
                    earlier.3 |= later.3;
                }
                true
            } else {
                false
            }
        });
        self.report.merged_duplicates = before - self.entries.len();
        self.report.pairs = self.entries.len();
        let interactions = Interactions::from_entries(
            n_users,
            n_items,
            self.entries.iter().map(|&(user, item, sum, negative)| {
                if !weighted {
                    return Interaction {
                        user,
                        item,
                        value: 1.0,
                        weight: 1.0,
                    };
                }
                let value = if sum > 0.0 {
                    1.0
                } else if sum < 0.0 {
                    -1.0
                } else if negative {
                    0.0
                } else {
                    1.0
                };
                Interaction {
                    user,
                    item,
                    value,
                    weight: sum.abs(),
                }
            }),
        )?;
        Ok((interactions, self.report))
    }
}

fn remember(examples: &mut Vec<ExternalId>, id: &ExternalId) {
    if examples.len() < UNKNOWN_ID_EXAMPLES && !examples.contains(id) {
        examples.push(id.clone());
    }
}

/// The weight (`>= 0`) of one record in `mode` and whether it is a negative example,
/// checking the record's own weight. `type_weight` gives the record's type weight and
/// whether its type is negative.
pub(crate) fn record_weight(
    mode: &InteractionMode,
    record_weight: Option<f32>,
    type_weight: impl FnOnce(&InteractionWeights) -> (f32, bool),
    describe: impl FnOnce() -> String,
) -> Result<(f32, bool)> {
    let InteractionMode::Weighted(weights) = mode else {
        return Ok((1.0, false));
    };
    let own = if weights.use_record_weight {
        record_weight.unwrap_or(1.0)
    } else {
        1.0
    };
    let (type_weight, negative) = type_weight(weights);
    let weight = own * type_weight;
    if !valid_weight(own) || !valid_weight(weight) {
        let value = if valid_weight(own) { weight } else { own };
        return Err(FeaturesError::InvalidInteractionWeight {
            value: value.to_string(),
            context: describe(),
        });
    }
    Ok((weight, negative))
}

/// One interaction as kept by a [`Dataset`](crate::Dataset): dense indices instead of ids,
/// the type interned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoggedInteraction {
    /// User index in [`Dataset::users`](crate::Dataset::users).
    pub user: usize,
    /// Item index in [`Dataset::items`](crate::Dataset::items).
    pub item: usize,
    /// Index into [`InteractionLog::interaction_types`].
    pub interaction_type: Option<usize>,
    /// The record's weight.
    pub weight: Option<f32>,
    /// The record's timestamp (seconds since the Unix epoch).
    pub timestamp: Option<i64>,
}

/// The interactions a dataset was built from, in arrival order, without repeating id or
/// type strings (so keeping 10⁶ interactions costs ~50 MB, not a string per record).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InteractionLog {
    entries: Vec<LoggedInteraction>,
    interaction_types: Vec<String>,
    type_index: HashMap<String, usize>,
}

impl InteractionLog {
    /// Number of logged interactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is logged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The logged interactions in arrival order.
    pub fn entries(&self) -> &[LoggedInteraction] {
        &self.entries
    }

    /// Distinct interaction types (trimmed) in first-seen order.
    pub fn interaction_types(&self) -> &[String] {
        &self.interaction_types
    }

    /// The type name of a logged interaction.
    pub fn type_name(&self, entry: &LoggedInteraction) -> Option<&str> {
        entry
            .interaction_type
            .and_then(|t| self.interaction_types.get(t))
            .map(String::as_str)
    }

    pub(crate) fn push(
        &mut self,
        user: usize,
        item: usize,
        interaction_type: Option<&str>,
        weight: Option<f32>,
        timestamp: Option<i64>,
    ) {
        let interaction_type = interaction_type
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| match self.type_index.get(t) {
                Some(&index) => index,
                None => {
                    let index = self.interaction_types.len();
                    self.interaction_types.push(t.to_string());
                    self.type_index.insert(t.to_string(), index);
                    index
                }
            });
        self.entries.push(LoggedInteraction {
            user,
            item,
            interaction_type,
            weight,
            timestamp,
        });
    }
}
