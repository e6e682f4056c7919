//! The recommendation policy: model scores blended with similarity, exclusions, filters and
//! fallbacks, every item with its reason.

use std::cell::RefCell;
use std::fmt;

use recsys_core::{
    top_k, ContentModel, ContentPrior, FoldIn, Interactions, ItemRepresentations, Popularity,
    Representation, Scorer, UserQuery,
};
use recsys_features::{Attributes, ExternalId, FeatureVocabulary, IdMap};
use recsys_similarity::SimilarityIndex;
use serde::Serialize;

use crate::error::{agree, RecommendError, Result};
use crate::new_items::NewItems;

/// The boost of the original system: `score = model + 0.25 × cosine(item, viewed product)`.
pub const DEFAULT_BOOST: f32 = 0.25;

/// Why an item was recommended.
///
/// Displayed as `model`, `model+similar-to-<id>`, `similar-to-<id>`, `popular`,
/// `cold-start-features`, `cold-start-features+similar-to-<id>`, `recent-activity` or
/// `recent-activity+similar-to-<id>`; a product added after training
/// ([`NewItems`]) has one of these followed by `+new-product` (e.g.
/// `model+new-product`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Reason {
    /// The model's score for a known user.
    Model,
    /// The model's score plus the similarity boost towards product `to`.
    ModelAndSimilar {
        /// The product being viewed.
        to: ExternalId,
    },
    /// Similar to product `to` (the user is unknown).
    Similar {
        /// The product being viewed.
        to: ExternalId,
    },
    /// Among the most popular products (nothing else was known).
    Popular,
    /// Scored from the attributes of a user the model has not seen (cold start).
    ColdStartFeatures,
    /// Cold-start score plus the similarity boost towards product `to`.
    ColdStartFeaturesAndSimilar {
        /// The product being viewed.
        to: ExternalId,
    },
    /// Scored from the recent activity (live events) of a user the model has not seen,
    /// by fold-in (with the user's attributes too, when they match the vocabulary).
    RecentActivity,
    /// Recent-activity score plus the similarity boost towards product `to`.
    RecentActivityAndSimilar {
        /// The product being viewed.
        to: ExternalId,
    },
    /// A product the model was not trained on (added after training, represented from its
    /// attributes: [`NewItems`]), ranked by the path `scored_as` names (never itself
    /// `NewProduct`). Serialised as `{"kind": "new-product", "scored_as": {…}}`.
    NewProduct {
        /// How it was ranked.
        scored_as: Box<Reason>,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Model => f.write_str("model"),
            Reason::ModelAndSimilar { to } => write!(f, "model+similar-to-{to}"),
            Reason::Similar { to } => write!(f, "similar-to-{to}"),
            Reason::Popular => f.write_str("popular"),
            Reason::ColdStartFeatures => f.write_str("cold-start-features"),
            Reason::ColdStartFeaturesAndSimilar { to } => {
                write!(f, "cold-start-features+similar-to-{to}")
            }
            Reason::RecentActivity => f.write_str("recent-activity"),
            Reason::RecentActivityAndSimilar { to } => {
                write!(f, "recent-activity+similar-to-{to}")
            }
            Reason::NewProduct { scored_as } => write!(f, "{scored_as}+new-product"),
        }
    }
}

/// Which path produced a response (the first that applied, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Strategy {
    /// A known user: model scores (+ boost when a known product is given).
    Model,
    /// An unknown user with recent activity ([`Request::recent`]) on known products:
    /// fold-in of those items (towards the user's attributes when they match).
    RecentActivity,
    /// An unknown user with attributes that match the training vocabulary.
    ColdStartFeatures,
    /// No usable user, a known product: its most similar products.
    SimilarProducts,
    /// Nothing usable: the most popular products.
    Popular,
}

/// Something the caller should know about how a request was answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Note {
    /// The user id is not known to the model.
    UnknownUser {
        /// The id given.
        id: ExternalId,
    },
    /// The product id is not known: the similarity boost was not applied.
    UnknownProduct {
        /// The id given.
        id: ExternalId,
    },
    /// User attributes were given but none matches a feature of the model.
    AttributesNotUsable,
    /// Some ids to exclude are not known (they could not be recommended anyway).
    UnknownExcludedIds {
        /// How many.
        count: usize,
    },
    /// A product was given but this recommender has no similarity index.
    NoSimilarityIndex,
    /// Fewer items than requested remained after exclusions and filters.
    FewerThanRequested {
        /// `n` of the request.
        requested: usize,
        /// Items returned.
        returned: usize,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::UnknownUser { id } => write!(f, "user {id} is not known to the model"),
            Note::UnknownProduct { id } => {
                write!(f, "product {id} is not known: no similarity boost applied")
            }
            Note::AttributesNotUsable => {
                f.write_str("none of the user attributes matches a feature of the model")
            }
            Note::UnknownExcludedIds { count } => {
                write!(f, "{count} excluded id(s) are not known products")
            }
            Note::NoSimilarityIndex => {
                f.write_str("no similarity index: the viewed product was not used")
            }
            Note::FewerThanRequested {
                requested,
                returned,
            } => write!(
                f,
                "only {returned} of {requested} items remain after exclusions and filters"
            ),
        }
    }
}

/// One recommended item.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// Dense item index.
    pub item: usize,
    /// The product's external id.
    pub product_id: ExternalId,
    /// The score it was ranked by (model score + boost, cosine similarity, or popularity
    /// count, depending on [`reason`](Self::reason)).
    pub score: f32,
    /// Why it was recommended.
    pub reason: Reason,
}

/// The answer to a [`Request`]: items best first, how they were chosen, and notes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendations {
    /// Recommended items, best first, at most `n`.
    pub items: Vec<Recommendation>,
    /// The path that produced them.
    pub strategy: Strategy,
    /// Things the caller should know (unknown ids, short results, …).
    pub notes: Vec<Note>,
}

/// A predicate on dense item indices: `true` keeps the item (e.g. "in stock").
pub type ItemFilter<'a> = &'a (dyn Fn(usize) -> bool + Sync);

/// Finds the attributes of a user the model does not know (e.g. a customer who registered
/// after training, looked up in the `users` collection), for cold-start scoring.
pub type AttributeLookup<'a> = &'a (dyn Fn(&ExternalId) -> Option<Attributes> + Sync);

/// What to recommend: built with chained setters, all optional but `n`.
///
/// ```
/// use recsys_features::ExternalId;
/// use recsys_recommend::Request;
///
/// let user = ExternalId::Int(42);
/// let viewing = ExternalId::Int(7);
/// let not_these = [ExternalId::Int(8)];
/// let request = Request::new(10).user(&user).product(&viewing).exclude(&not_these);
/// assert_eq!(request.n(), 10);
/// ```
#[derive(Clone, Copy)]
pub struct Request<'a> {
    n: usize,
    user: Option<&'a ExternalId>,
    attributes: Option<&'a Attributes>,
    product: Option<&'a ExternalId>,
    boost: f32,
    exclude_seen: bool,
    exclude: &'a [ExternalId],
    recent: &'a [ExternalId],
    filter: Option<ItemFilter<'a>>,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("n", &self.n)
            .field("user", &self.user)
            .field("attributes", &self.attributes)
            .field("product", &self.product)
            .field("boost", &self.boost)
            .field("exclude_seen", &self.exclude_seen)
            .field("exclude", &self.exclude)
            .field("recent", &self.recent)
            .field("filter", &self.filter.map(|_| "<fn>"))
            .finish()
    }
}

impl<'a> Request<'a> {
    /// `n` items for nobody in particular (popular products unless more is set).
    pub fn new(n: usize) -> Self {
        Request {
            n,
            user: None,
            attributes: None,
            product: None,
            boost: DEFAULT_BOOST,
            exclude_seen: true,
            exclude: &[],
            recent: &[],
            filter: None,
        }
    }

    /// For this user (unknown ids fall back, see [`Recommender::recommend`]).
    pub fn user(mut self, id: &'a ExternalId) -> Self {
        self.user = Some(id);
        self
    }

    /// Attributes of the user (`column → value`), used when the user is not known to the
    /// model (cold start).
    pub fn user_attributes(mut self, attributes: &'a Attributes) -> Self {
        self.attributes = Some(attributes);
        self
    }

    /// The product being viewed: boosts similar items and is never recommended itself.
    pub fn product(mut self, id: &'a ExternalId) -> Self {
        self.product = Some(id);
        self
    }

    /// The weight of the similarity to the viewed product (default [`DEFAULT_BOOST`]).
    pub fn boost(mut self, boost: f32) -> Self {
        self.boost = boost;
        self
    }

    /// Also recommend items the user already interacted with (excluded by default).
    pub fn include_seen(mut self) -> Self {
        self.exclude_seen = false;
        self
    }

    /// Never recommend these products.
    pub fn exclude(mut self, ids: &'a [ExternalId]) -> Self {
        self.exclude = ids;
        self
    }

    /// Products the user interacted with since the model was trained (live events),
    /// oldest first. Excluded like the user's seen items (unless
    /// [`include_seen`](Self::include_seen)); for a user the model does not know they are
    /// folded in ([`Recommender::with_fold_in`]; products added after training
    /// ([`NewItems`]) are excluded but not folded in). Other unknown ids are ignored.
    pub fn recent(mut self, ids: &'a [ExternalId]) -> Self {
        self.recent = ids;
        self
    }

    /// Only recommend items for which `keep` is true; applied before the top-`n` is taken,
    /// so `n` items still come back when enough pass.
    pub fn filter(mut self, keep: ItemFilter<'a>) -> Self {
        self.filter = Some(keep);
        self
    }

    /// Number of items asked for.
    pub fn n(&self) -> usize {
        self.n
    }
}

/// The recommendation policy over borrowed parts: a [`Scorer`] (the model), the id maps,
/// and optional similarity indices, popularity, seen items and user vocabulary.
///
/// * `similarity` answers the blend (`boost × cosine` for every item): an exact index;
/// * `neighbours` answers "similar to X" for unknown users: usually precomputed lists,
///   with `similarity` as fallback when they run short after exclusions.
///
/// See the [crate docs](crate) for a complete example.
#[derive(Clone, Copy)]
pub struct Recommender<'a> {
    scorer: &'a dyn Scorer,
    users: &'a IdMap,
    items: &'a IdMap,
    similarity: Option<&'a dyn SimilarityIndex>,
    neighbours: Option<&'a dyn SimilarityIndex>,
    popularity: Option<&'a Popularity>,
    seen: Option<&'a Interactions>,
    user_vocabulary: Option<&'a FeatureVocabulary>,
    lookup: Option<AttributeLookup<'a>>,
    fold_in: Option<&'a FoldIn>,
    new_items: Option<&'a NewItems>,
    /// The content model and its weight, added to the model's scores.
    prior: Option<(&'a ContentModel, f32)>,
    /// The similarity index is the cosine of the scorer's own item representations, so the
    /// blend can run in one pass over them.
    fused: bool,
}

impl fmt::Debug for Recommender<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recommender")
            .field("users", &self.users.len())
            .field("items", &self.items.len())
            .field("similarity", &self.similarity.is_some())
            .field("neighbours", &self.neighbours.is_some())
            .field("popularity", &self.popularity.is_some())
            .field("seen", &self.seen.is_some())
            .field("user_vocabulary", &self.user_vocabulary.is_some())
            .field("lookup", &self.lookup.is_some())
            .field("fold_in", &self.fold_in.is_some())
            .field("new_items", &self.new_items.map(NewItems::len))
            .field("content_weight", &self.prior.map(|(_, w)| w))
            .field("fused", &self.fused)
            .finish()
    }
}

thread_local! {
    /// Per-thread score buffer: one request allocates nothing of size `n_items`.
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl<'a> Recommender<'a> {
    /// A recommender scoring with `scorer`; `users` and `items` map external ids to the
    /// scorer's indices. Fails when `items` and the scorer disagree on the number of items.
    pub fn new(scorer: &'a dyn Scorer, users: &'a IdMap, items: &'a IdMap) -> Result<Self> {
        agree("scorer items vs item id map", items.len(), scorer.n_items())?;
        Ok(Recommender {
            scorer,
            users,
            items,
            similarity: None,
            neighbours: None,
            popularity: None,
            seen: None,
            user_vocabulary: None,
            lookup: None,
            fold_in: None,
            new_items: None,
            prior: None,
            fused: false,
        })
    }

    /// The exact similarity index used for the boost (and for "similar to X" when no
    /// `neighbours` are set or they run short).
    pub fn with_similarity(mut self, index: &'a dyn SimilarityIndex) -> Result<Self> {
        agree("similarity index items", self.items.len(), index.len())?;
        self.similarity = Some(index);
        Ok(self)
    }

    /// Declares that the similarity index holds the cosines of the scorer's own item
    /// representations (as `ExactCosine::new(model.item_representations().vectors())` does):
    /// the blend then computes model scores and cosines in one pass over the item
    /// representations and takes the top n without a score array
    /// ([`ItemRepresentations::top_k_with_cosine`]; the same ranking as two passes up to
    /// float rounding). Builds the half-float rows that pass reads, if not built yet. Fails
    /// when the scorer exposes no item representations.
    ///
    /// [`ItemRepresentations::top_k_with_cosine`]: recsys_core::ItemRepresentations::top_k_with_cosine
    pub fn with_model_similarity(mut self) -> Result<Self> {
        let reps = self
            .scorer
            .item_representations()
            .ok_or(RecommendError::Inconsistent {
                what: "item representations exposed by the scorer (for the one-pass blend)",
                expected: self.items.len(),
                found: 0,
            })?;
        agree(
            "item representations vs item id map",
            self.items.len(),
            reps.len(),
        )?;
        reps.prepare_blend();
        self.fused = true;
        Ok(self)
    }

    /// Fast (e.g. precomputed) neighbour lists for "similar to X".
    pub fn with_neighbours(mut self, index: &'a dyn SimilarityIndex) -> Result<Self> {
        agree("neighbour index items", self.items.len(), index.len())?;
        self.neighbours = Some(index);
        Ok(self)
    }

    /// Popularity for the last fallback.
    pub fn with_popularity(mut self, popularity: &'a Popularity) -> Result<Self> {
        agree(
            "popularity items",
            self.items.len(),
            popularity.counts().len(),
        )?;
        self.popularity = Some(popularity);
        Ok(self)
    }

    /// The interactions each known user already had (excluded unless the request says
    /// otherwise).
    pub fn with_seen(mut self, seen: &'a Interactions) -> Result<Self> {
        agree("seen-interaction items", self.items.len(), seen.n_items())?;
        agree("seen-interaction users", self.users.len(), seen.n_users())?;
        self.seen = Some(seen);
        Ok(self)
    }

    /// The user feature vocabulary, to score users that are unknown but have attributes.
    pub fn with_user_vocabulary(mut self, vocabulary: &'a FeatureVocabulary) -> Self {
        self.user_vocabulary = Some(vocabulary);
        self
    }

    /// Where to find the attributes of a user unknown to the model when the request gives
    /// none (used only with a user vocabulary).
    pub fn with_attribute_lookup(mut self, lookup: AttributeLookup<'a>) -> Self {
        self.lookup = Some(lookup);
        self
    }

    /// Fold-in for users the model does not know but who have recent activity
    /// ([`Request::recent`]); prepared for the same model as the scorer (e.g.
    /// `FoldIn::new(bundle.model(), bundle.seen(), FoldInOptions::default())`).
    pub fn with_fold_in(mut self, fold_in: &'a FoldIn) -> Self {
        self.fold_in = Some(fold_in);
        self
    }

    /// Serves products added after training too ([`NewItems`], built for this recommender's
    /// scorer and item id map): [`recommend`](Self::recommend) ranks them beside the trained
    /// items. Fails when they were built for a scorer with another number of items or
    /// components, or the scorer exposes no item representations.
    ///
    /// Where they take part, with reason `<path>+new-product`:
    /// * model scores (known user, recent activity, cold start): `user · item + item
    ///   bias`, plus `boost ×` the exact cosine with the viewed product when the trained
    ///   items get the boost;
    /// * a viewed product that is a new one: the trained and the new items are boosted by
    ///   their exact cosine with its representation, and an unknown user gets its most
    ///   similar products (exact cosine over every item: one vector against the catalogue);
    /// * the similar products of a trained product include new products by exact cosine
    ///   (the trained neighbours come from the index as before);
    /// * popularity: new products have none, so they only fill a list the trained
    ///   products leave short.
    ///
    /// Exclusions, the filter (item `base + j` for new product `j`) and recent items apply
    /// to them; they are never among a user's seen items.
    pub fn with_new_items(mut self, new_items: &'a NewItems) -> Result<Self> {
        agree(
            "trained items the new products were added to",
            self.items.len(),
            new_items.base_items(),
        )?;
        let reps =
            self.scorer
                .item_representations()
                .ok_or(RecommendError::NewItemsUnsupported {
                    reason: "the scorer exposes no item representations",
                })?;
        agree(
            "components of the new products' representations",
            reps.vectors().ncols(),
            new_items.representations().vectors().ncols(),
        )?;
        self.new_items = Some(new_items).filter(|x| !x.is_empty());
        Ok(self)
    }

    /// Adds `weight ×` the content model's scores to the model's, for trained and new
    /// products alike ([`recsys_core::ContentPrior`]: the user's metadata preferences order
    /// the long tail the model scores near zero; a user the content model does not know —
    /// folded in, described by attributes — gets the population's preferences). The content
    /// model must know the same items; `weight` must be finite and ≥ 0 (0 leaves the
    /// model's scores alone). The one-pass blend is not used with a prior; the answer is
    /// the same, computed from a score array.
    pub fn with_content_prior(mut self, content: &'a ContentModel, weight: f32) -> Result<Self> {
        ContentPrior::new(self.scorer, content, weight)?;
        self.prior = Some((content, weight)).filter(|_| weight > 0.0);
        Ok(self)
    }

    /// Adds the content prior (if any) to the trained items' `scores`.
    fn add_prior(&self, query: UserQuery<'_>, scores: &mut [f32]) -> Result<()> {
        if let Some((content, weight)) = self.prior {
            content.add_prior(query, weight, scores)?;
        }
        Ok(())
    }

    /// Adds the content prior (if any) to the new products' `scores`.
    fn add_prior_new(
        &self,
        query: UserQuery<'_>,
        new: &NewItems,
        scores: &mut [f32],
    ) -> Result<()> {
        if let Some((content, weight)) = self.prior {
            let rows: Vec<&[(usize, f32)]> = new.rows().iter().map(Vec::as_slice).collect();
            content.add_prior_rows(query, weight, &rows, scores)?;
        }
        Ok(())
    }

    /// The products added after training, if any are served.
    pub fn new_items(&self) -> Option<&'a NewItems> {
        self.new_items
    }

    /// The item id map.
    pub fn items(&self) -> &'a IdMap {
        self.items
    }

    /// The user id map.
    pub fn users(&self) -> &'a IdMap {
        self.users
    }

    /// Recommends `request.n()` items.
    ///
    /// The policy (the original system's, extended):
    /// 1. a **known user**: model scores for every item, plus `boost × cosine(item,
    ///    product)` when a known product is given (reason `model+similar-to-X`, else
    ///    `model`);
    /// 2. an **unknown user with recent activity** ([`Request::recent`]) on products the
    ///    model knows, with [fold-in](Self::with_fold_in): the fold-in of those items,
    ///    regularised towards the user's attributes when they match the vocabulary
    ///    (`recent-activity`), boosted the same way;
    /// 3. an **unknown user with attributes** (given in the request, or found by the
    ///    [attribute lookup](Self::with_attribute_lookup)) that match the training
    ///    vocabulary: the model's cold-start score from those features, boosted the same
    ///    way;
    /// 4. otherwise, a **known product**: its most similar items (`similar-to-X`);
    /// 5. otherwise the **most popular** items (`popular`).
    ///
    /// Always excluded: the viewed product, the ids in `exclude`, the user's seen and
    /// recent items (unless [`Request::include_seen`]) and items the filter rejects — before the top-`n`
    /// is taken. Unknown ids never fail a request; they become [`Note`]s.
    ///
    /// Errors only when the parts disagree (e.g. a model and seen interactions of
    /// different sizes) or a scorer fails.
    pub fn recommend(&self, request: &Request<'_>) -> Result<Recommendations> {
        let mut notes = Vec::new();
        let n_items = self.items.len();
        let new_items = self.new_items;

        let user = request.user.and_then(|id| {
            let index = self.users.index(id);
            if index.is_none() {
                notes.push(Note::UnknownUser { id: id.clone() });
            }
            index
        });
        // The viewed product: a trained item (`product`), a new one (`new_product`), or
        // unknown.
        let new_index = |id: &ExternalId| new_items.and_then(|x| x.index(id));
        let mut new_product = None;
        let product = request.product.and_then(|id| {
            let index = self.items.index(id);
            if index.is_none() {
                match new_index(id) {
                    Some(j) => new_product = Some((j, id)),
                    None => notes.push(Note::UnknownProduct { id: id.clone() }),
                }
            }
            index.map(|i| (i, id))
        });
        let mut excluded_items: Vec<usize> = Vec::with_capacity(request.exclude.len());
        let mut excluded_new: Vec<usize> = Vec::new();
        let mut unknown_excluded = 0;
        for id in request.exclude {
            match (self.items.index(id), new_index(id)) {
                (Some(i), _) => excluded_items.push(i),
                (None, Some(j)) => excluded_new.push(j),
                (None, None) => unknown_excluded += 1,
            }
        }
        // Sorted: the similar-items path tests every candidate against it.
        excluded_items.sort_unstable();
        excluded_new.sort_unstable();
        if unknown_excluded > 0 {
            notes.push(Note::UnknownExcludedIds {
                count: unknown_excluded,
            });
        }
        if product.is_some() && self.similarity.is_none() && self.neighbours.is_none() {
            notes.push(Note::NoSimilarityIndex);
        }

        // Cold start: an unknown (or absent) user described by attributes.
        let mut cold_row = None;
        let looked_up = match (user, request.attributes, request.user, self.lookup) {
            (None, None, Some(id), Some(lookup)) if self.user_vocabulary.is_some() => lookup(id),
            _ => None,
        };
        if user.is_none() {
            if let Some(attributes) = request.attributes.or(looked_up.as_ref()) {
                let row = self
                    .user_vocabulary
                    .map(|v| v.feature_row(attributes))
                    .unwrap_or_default();
                if row.is_empty() {
                    notes.push(Note::AttributesNotUsable);
                } else {
                    cold_row = Some(row);
                }
            }
        }

        // Live events: known items, sorted, without repeats (new products apart: they
        // are excluded, not folded in).
        let mut recent: Vec<usize> = request
            .recent
            .iter()
            .filter_map(|id| self.items.index(id))
            .collect();
        recent.sort_unstable();
        recent.dedup();
        let mut recent_new: Vec<usize> = if request.exclude_seen {
            request.recent.iter().filter_map(new_index).collect()
        } else {
            Vec::new()
        };
        recent_new.sort_unstable();
        let folded = match (user, self.fold_in) {
            (None, Some(fold_in)) if !recent.is_empty() => {
                Some(self.fold_in_user(fold_in, &recent, cold_row.as_deref())?)
            }
            _ => None,
        };
        let recent_excluded: &[usize] = if request.exclude_seen { &recent } else { &[] };

        let keep = |j: usize| request.filter.is_none_or(|f| f(j));
        // A new product `j` is excluded when it is viewed, excluded by id, recent (unless
        // seen items are included) or rejected by the filter (as item `n_items + j`).
        let new_excluded = |j: usize| {
            new_product.is_some_and(|(p, _)| p == j)
                || excluded_new.binary_search(&j).is_ok()
                || recent_new.binary_search(&j).is_ok()
                || !keep(n_items + j)
        };
        let (items, strategy) = if user.is_some() || folded.is_some() || cold_row.is_some() {
            let query = match (&user, &folded, &cold_row) {
                (Some(u), _, _) => UserQuery::Known(*u),
                (None, Some(rep), _) => UserQuery::Representation(rep),
                (None, None, Some(row)) => UserQuery::Features(row),
                (None, None, None) => unreachable!("checked above"),
            };
            let seen: &[u32] = match (user, self.seen) {
                (Some(u), Some(seen)) if request.exclude_seen => seen.user_items(u),
                _ => &[],
            };
            let boost_from = product.filter(|_| request.boost != 0.0);
            let boost_new = new_product.filter(|_| request.boost != 0.0);
            // The viewed product, seen items, the caller's exclusions and the filter, for
            // both paths: asked only about items that could enter the top n.
            let excluded = |j: usize| {
                product.is_some_and(|(p, _)| p == j)
                    || seen.binary_search(&(j as u32)).is_ok()
                    || recent_excluded.binary_search(&j).is_ok()
                    || excluded_items.binary_search(&j).is_ok()
                    || !keep(j)
            };
            let fused = match (boost_from, self.fused && self.prior.is_none()) {
                (Some((p, _)), true) => {
                    self.top_n_fused(query, p, request.boost, request.n, &excluded)?
                }
                _ => None,
            };
            // The representation of the viewed product when it is a new one.
            let new_towards =
                boost_new.and_then(|(j, _)| new_items.map(|x| row_of(x.representations(), j)));
            let ranked = match (fused, &new_towards, self.scorer.item_representations()) {
                (Some(ranked), _, _) => ranked,
                (None, Some(towards), Some(reps)) => {
                    // Viewing a new product: the blend against its vector, in one pass.
                    match self.scorer.representation(query)? {
                        Some(u) => SCORES.with(|cell| -> Result<Vec<(usize, f32)>> {
                            let mut scores = cell.borrow_mut();
                            reps.score_all_with_cosine_to(&u, towards, request.boost, &mut scores)?;
                            self.add_prior(query, &mut scores)?;
                            Ok(top_k(&scores, request.n, excluded))
                        })?,
                        None => {
                            self.top_n_scored(query, None, request.boost, request.n, &excluded)?
                        }
                    }
                }
                (None, _, _) => {
                    self.top_n_scored(query, boost_from, request.boost, request.n, &excluded)?
                }
            };
            let boosted_known = boost_from.is_some() && self.has_similarity();
            let boosted = boosted_known || new_towards.is_some();
            // New products: `user · item + bias`, plus the boost towards the viewed product
            // when the trained items get it.
            let ranked = match new_items {
                Some(x) => {
                    let towards = match (boost_from, &new_towards) {
                        (Some((p, _)), _) if boosted_known => self
                            .scorer
                            .item_representations()
                            .map(|reps| row_of(reps, p)),
                        (_, Some(towards)) => Some(towards.clone()),
                        _ => None,
                    };
                    let new_ranked = match self.scorer.representation(query)? {
                        Some(u) => with_scores(|scores| {
                            match &towards {
                                Some(t) => x.representations().score_all_with_cosine_to(
                                    &u,
                                    t,
                                    request.boost,
                                    scores,
                                )?,
                                None => x.representations().score_all(&u, scores),
                            }
                            self.add_prior_new(query, x, scores)?;
                            Ok(top_k(scores, request.n, new_excluded))
                        })?,
                        None => Vec::new(),
                    };
                    merge(ranked, new_ranked, n_items, request.n)
                }
                None => ranked,
            };
            let strategy = match (user.is_some(), folded.is_some()) {
                (true, _) => Strategy::Model,
                (false, true) => Strategy::RecentActivity,
                (false, false) => Strategy::ColdStartFeatures,
            };
            let to = match (product, new_product) {
                (Some((_, to)), _) | (None, Some((_, to))) if boosted => Some(to.clone()),
                _ => None,
            };
            let reason = match (strategy, to) {
                (Strategy::Model, Some(to)) => Reason::ModelAndSimilar { to },
                (Strategy::Model, None) => Reason::Model,
                (Strategy::RecentActivity, Some(to)) => Reason::RecentActivityAndSimilar { to },
                (Strategy::RecentActivity, None) => Reason::RecentActivity,
                (_, Some(to)) => Reason::ColdStartFeaturesAndSimilar { to },
                (_, None) => Reason::ColdStartFeatures,
            };
            (self.label(ranked, reason), strategy)
        } else if let (Some((p, to)), true) = (product, self.has_similarity()) {
            let excluded = |j: usize| excluded_items.binary_search(&j).is_ok() || !keep(j);
            let mut found = match self.neighbours.or(self.similarity) {
                Some(index) => index.similar(p, request.n, &excluded)?,
                None => Vec::new(),
            };
            if found.len() < request.n {
                if let (Some(exact), Some(_)) = (self.similarity, self.neighbours) {
                    found = exact.similar(p, request.n, &excluded)?;
                }
            }
            let ranked = found.into_iter().map(|x| (x.item, x.similarity)).collect();
            // New products by their exact cosine with the viewed product.
            let ranked = match (new_items, self.scorer.item_representations()) {
                (Some(x), Some(reps)) => {
                    let new_ranked = with_scores(|cosines| {
                        x.representations().cosine_all(&row_of(reps, p), cosines)?;
                        Ok(top_k(cosines, request.n, new_excluded))
                    })?;
                    merge(ranked, new_ranked, n_items, request.n)
                }
                _ => ranked,
            };
            let reason = Reason::Similar { to: to.clone() };
            (self.label(ranked, reason), Strategy::SimilarProducts)
        } else if let (Some((j, to)), Some(x), Some(reps)) =
            (new_product, new_items, self.scorer.item_representations())
        {
            // A new product viewed by nobody known: exact cosine over every item.
            let towards = row_of(x.representations(), j);
            let ranked = with_scores(|cosines| {
                reps.cosine_all(&towards, cosines)?;
                let known = top_k(cosines, request.n, |i| {
                    excluded_items.binary_search(&i).is_ok() || !keep(i)
                });
                x.representations().cosine_all(&towards, cosines)?;
                let new_ranked = top_k(cosines, request.n, new_excluded);
                Ok(merge(known, new_ranked, n_items, request.n))
            })?;
            let reason = Reason::Similar { to: to.clone() };
            (self.label(ranked, reason), Strategy::SimilarProducts)
        } else {
            let mut ranked = match self.popularity {
                Some(pop) => {
                    let mut scores = pop.counts().to_vec();
                    for &j in &excluded_items {
                        scores[j] = f32::NAN;
                    }
                    top_k(&scores, request.n, |j| !keep(j))
                }
                None => Vec::new(),
            };
            // New products have no popularity: they fill what the trained ones leave short.
            if let (Some(x), Some(_)) = (new_items, self.popularity) {
                let missing = request.n.saturating_sub(ranked.len());
                ranked.extend(
                    (0..x.len())
                        .filter(|&j| !new_excluded(j))
                        .take(missing)
                        .map(|j| (n_items + j, 0.0)),
                );
            }
            (self.label(ranked, Reason::Popular), Strategy::Popular)
        };
        if items.len() < request.n {
            notes.push(Note::FewerThanRequested {
                requested: request.n,
                returned: items.len(),
            });
        }
        Ok(Recommendations {
            items,
            strategy,
            notes,
        })
    }

    /// The top `n` of model scores for `query`, plus `boost ×` the similarity to the trained
    /// product `boost_from` when there is an index (the exact one when there is one, else
    /// the stored neighbours).
    fn top_n_scored(
        &self,
        query: UserQuery<'_>,
        boost_from: Option<(usize, &ExternalId)>,
        boost: f32,
        n: usize,
        excluded: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<(usize, f32)>> {
        SCORES.with(|cell| -> Result<Vec<(usize, f32)>> {
            let mut scores = cell.borrow_mut();
            self.scorer.score_all(query, &mut scores)?;
            agree(
                "scores returned by the scorer",
                self.items.len(),
                scores.len(),
            )?;
            self.add_prior(query, &mut scores)?;
            if let (Some((p, _)), Some(index)) = (boost_from, self.similarity.or(self.neighbours)) {
                index.for_each_similarity(p, &mut |j, s| {
                    if let Some(x) = scores.get_mut(j) {
                        *x += boost * s;
                    }
                })?;
            }
            Ok(top_k(&scores, n, excluded))
        })
    }

    /// The fold-in representation of an unknown user from its recent items, pulled
    /// towards the representation of its attributes when it has usable ones.
    fn fold_in_user(
        &self,
        fold_in: &FoldIn,
        recent: &[usize],
        attributes: Option<&[(usize, f32)]>,
    ) -> Result<Representation> {
        let prior = match attributes {
            Some(row) => self.scorer.representation(UserQuery::Features(row))?,
            None => None,
        };
        Ok(match prior {
            Some(prior) => fold_in.fold_in_with_prior(recent, &prior)?,
            None => fold_in.fold_in(recent)?,
        })
    }

    /// The top `n` of model scores plus `boost × cosine(·, p)`, in one pass over the item
    /// representations ([`ItemRepresentations::top_k_with_cosine`]: no score array, the
    /// same answer as scoring every item); `None` when the scorer cannot give this user's
    /// representation (the caller then takes the two-pass path).
    ///
    /// [`ItemRepresentations::top_k_with_cosine`]: recsys_core::ItemRepresentations::top_k_with_cosine
    fn top_n_fused(
        &self,
        query: UserQuery<'_>,
        p: usize,
        boost: f32,
        n: usize,
        excluded: &dyn Fn(usize) -> bool,
    ) -> Result<Option<Vec<(usize, f32)>>> {
        let (Some(reps), Some(user)) = (
            self.scorer.item_representations(),
            self.scorer.representation(query)?,
        ) else {
            return Ok(None);
        };
        Ok(Some(reps.top_k_with_cosine(&user, p, boost, n, excluded)?))
    }

    fn has_similarity(&self) -> bool {
        self.similarity.is_some() || self.neighbours.is_some()
    }

    /// The ranked items with their ids and `reason` (`NewProduct { scored_as: reason }`
    /// for a new product, item `n_items + j`).
    fn label(&self, ranked: Vec<(usize, f32)>, reason: Reason) -> Vec<Recommendation> {
        let n_items = self.items.len();
        ranked
            .into_iter()
            .filter_map(|(item, score)| {
                let (product_id, reason) = match item.checked_sub(n_items) {
                    None => (self.items.id(item)?, reason.clone()),
                    Some(j) => (
                        self.new_items?.ids().id(j)?,
                        Reason::NewProduct {
                            scored_as: Box::new(reason.clone()),
                        },
                    ),
                };
                Some(Recommendation {
                    item,
                    product_id: product_id.clone(),
                    score,
                    reason,
                })
            })
            .collect()
    }
}

/// Runs `f` with this thread's score buffer (one request allocates nothing of catalogue
/// size); not reentrant.
fn with_scores<T>(f: impl FnOnce(&mut Vec<f32>) -> Result<T>) -> Result<T> {
    SCORES.with(|cell| f(&mut cell.borrow_mut()))
}

/// Row `i` of a table of representations, as a vector.
fn row_of(reps: &ItemRepresentations, i: usize) -> Vec<f32> {
    reps.vectors().row(i).to_vec()
}

/// The best `n` of two ranked lists (each best first), the second one's items offset by
/// `offset`: score descending, ties to the lower item (a trained item before a new one).
fn merge(
    first: Vec<(usize, f32)>,
    second: Vec<(usize, f32)>,
    offset: usize,
    n: usize,
) -> Vec<(usize, f32)> {
    if second.is_empty() {
        return first;
    }
    let mut all = first;
    all.extend(second.into_iter().map(|(j, s)| (offset + j, s)));
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(n);
    all
}
