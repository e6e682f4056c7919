//! Products added after training: represented from their attributes by the model's item
//! features, and served beside the trained items by [`Recommender`](crate::Recommender).

use ndarray::{Array1, Array2};
use recsys_core::{ItemRepresentations, Scorer};
use recsys_features::{ExternalId, Feature, FeatureVocabulary, IdMap, ProductRecord};
use serde::Serialize;

use crate::catalog::ProductInfo;
use crate::error::{agree, RecommendError, Result};

/// What [`NewItems::new`] did with the product records it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NewItemsReport {
    /// Products added (the model does not know them and they have known feature values).
    pub added: usize,
    /// Products the model was trained on (served as trained items, not added).
    pub already_known: usize,
    /// Records of a product already added from an earlier record (the first one counts).
    pub duplicates: usize,
    /// Products none of whose attribute values is a feature of the model (a new brand in a
    /// new category, no attributes at all): without a known feature they have no
    /// representation, so they are skipped.
    pub without_known_features: usize,
}

/// Products the model was not trained on — added to the catalogue after training — with
/// their representations, computed from their attributes by the model's item features
/// (item cold start), so that a [`Recommender`](crate::Recommender) can serve them
/// ([`Recommender::with_new_items`](crate::Recommender::with_new_items)).
///
/// Each product's feature row is built exactly as training built item rows — the same
/// columns, values, numeric buckets and weighting (L1 or identity-anchored) — from the
/// training vocabulary ([`FeatureVocabulary::feature_row`]), without an identity feature
/// (the model has none for an unseen item); values the vocabulary does not know are
/// ignored. Its representation is the model family's item representation from features
/// ([`Scorer::item_representation_from_features`]: the hybrid model's and ALS's), so it
/// is scored as `user · item + item bias` like a trained item (ALS has no biases). With
/// identity features, [`refit_cold_start`](recsys_core::Model::refit_cold_start) makes
/// these metadata-only representations good predictions of a trained item's.
///
/// Skipped, and counted in the [`report`](Self::report): products the model knows,
/// repeated records of a product, and products with no known feature value (no
/// representation). A model without item features (plain collaborative filtering: only
/// identity features) cannot represent any new product: [`NewItems::new`] fails with
/// [`RecommendError::NewItemsUnsupported`].
///
/// Served items keep their dense indices `0..n`; new product `j` is item `n + j` in
/// [`Recommendation::item`](crate::Recommendation::item) and in a request's filter.
///
/// ```
/// use recsys_core::{ColdStartRefit, FitOptions, HybridModel, Hyperparameters, Loss};
/// use recsys_features::{
///     Attributes, ColumnSpec, Dataset, ExternalId, FeatureSpec, InMemorySource,
///     InteractionOptions, InteractionRecord, ProductRecord,
/// };
/// use recsys_recommend::{NewItems, Reason, Recommender, Request};
///
/// // Products 0..6 are "tea" (even) or "coffee" (odd); user u drinks what u % 2 says.
/// let product = |id: i64, kind: &str| ProductRecord {
///     product_id: id.into(),
///     name: Some(format!("{kind} {id}")),
///     price: None,
///     image: None,
///     attributes: Attributes::from([("kind".to_string(), kind.to_string())]),
/// };
/// let mut shop = InMemorySource::default();
/// shop.products = (0..6).map(|p| product(p, if p % 2 == 0 { "tea" } else { "coffee" })).collect();
/// for u in 0..6_i64 {
///     for p in [u % 2, u % 2 + 2, u % 2 + 4] {
///         if (u + p) % 3 != 0 {
///             shop.interactions.push(InteractionRecord {
///                 user_id: u.into(), product_id: p.into(),
///                 interaction_type: None, weight: None, timestamp: None,
///             });
///         }
///     }
/// }
/// let items = FeatureSpec::identity_only()
///     .with_column(ColumnSpec::categorical("kind"))
///     .with_metadata_weight(Some(1.0));
/// let dataset = Dataset::from_source(&mut shop, FeatureSpec::identity_only(), items)?;
/// let (train, _) = dataset.logged_interactions(InteractionOptions::binary())?;
/// let params = Hyperparameters::builder().loss(Loss::Warp).no_components(8).seed(1).build()?;
/// let mut model = HybridModel::new(params, dataset.user_features(), dataset.item_features())?;
/// model.fit(&train, FitOptions::epochs(30))?;
/// model.refit_cold_start(&train, &ColdStartRefit::new(0.1))?;
///
/// // After training, the shop adds a tea (and a product of an unknown kind).
/// let added = [product(100, "tea"), product(101, "juice")];
/// let new = NewItems::new(&model, dataset.items(), dataset.item_vocabulary(), added)?;
/// assert_eq!((new.report().added, new.report().without_known_features), (1, 1));
///
/// let recommender = Recommender::new(&model, dataset.users(), dataset.items())?
///     .with_seen(&train)?
///     .with_new_items(&new)?;
/// // Tea drinker 0 can be recommended the new tea, which says that it is new.
/// let tea_drinker = ExternalId::Int(0);
/// let answer = recommender.recommend(&Request::new(6).user(&tea_drinker))?;
/// let new_tea = answer.items.iter().find(|r| r.product_id == ExternalId::Int(100)).unwrap();
/// assert_eq!(new_tea.reason.to_string(), "model+new-product");
/// // The new tea has similar products: the teas.
/// let tea = ExternalId::Int(100);
/// let similar = recommender.recommend(&Request::new(3).product(&tea))?;
/// assert!(similar.items.iter().all(|r| r.product_id.to_string().parse::<i64>().unwrap() % 2 == 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct NewItems {
    ids: IdMap,
    details: Vec<ProductInfo>,
    representations: ItemRepresentations,
    /// Each added product's feature row (for a content prior).
    rows: Vec<recsys_features::FeatureRow>,
    /// The number of items of the scorer these products were added to.
    base_items: usize,
    report: NewItemsReport,
}

/// True when the vocabulary has at least one attribute value (not only identity features).
fn has_value_features(vocabulary: &FeatureVocabulary) -> bool {
    vocabulary
        .features()
        .iter()
        .any(|f| matches!(f, Feature::Value(..)))
}

impl NewItems {
    /// Represents `products` the model does not know for `scorer` (the model, e.g.
    /// `bundle.model()`), whose trained items are `items` and item features
    /// `vocabulary` (the training run's item vocabulary, e.g. `bundle.item_vocabulary()`;
    /// [`Bundle::new_items`](crate::Bundle::new_items) passes all three).
    ///
    /// Fails with [`RecommendError::NewItemsUnsupported`] when the model has no item
    /// features beyond identity (plain collaborative filtering) or the scorer cannot
    /// represent items from features, and with [`RecommendError::Inconsistent`] when
    /// `items` and the scorer disagree on the number of items.
    pub fn new(
        scorer: &dyn Scorer,
        items: &IdMap,
        vocabulary: &FeatureVocabulary,
        products: impl IntoIterator<Item = ProductRecord>,
    ) -> Result<NewItems> {
        agree("scorer items vs item id map", items.len(), scorer.n_items())?;
        Self::check_supported(scorer, vocabulary)?;
        let known = scorer
            .item_representations()
            .ok_or(RecommendError::NewItemsUnsupported {
                reason: "the scorer exposes no item representations",
            })?;
        let k = known.vectors().ncols();
        let mut report = NewItemsReport::default();
        let mut ids = IdMap::new();
        let mut details = Vec::new();
        let mut vectors: Vec<f32> = Vec::new();
        let mut biases = Vec::new();
        let mut rows = Vec::new();
        for product in products {
            if items.index(&product.product_id).is_some() {
                report.already_known += 1;
                continue;
            }
            if ids.index(&product.product_id).is_some() {
                report.duplicates += 1;
                continue;
            }
            let row = vocabulary.feature_row(&product);
            if row.is_empty() {
                report.without_known_features += 1;
                continue;
            }
            let representation = scorer.item_representation_from_features(&row)?.ok_or(
                RecommendError::NewItemsUnsupported {
                    reason: "the scorer does not represent items from features",
                },
            )?;
            agree(
                "components of a new product's representation",
                k,
                representation.vector.len(),
            )?;
            vectors.extend(representation.vector.iter());
            biases.push(representation.bias);
            ids.get_or_insert(product.product_id.clone());
            details.push(ProductInfo::from_record(&product));
            rows.push(row);
        }
        report.added = ids.len();
        let vectors = Array2::from_shape_vec((ids.len(), k), vectors)
            .expect("k values were pushed per product");
        let representations = ItemRepresentations::new(vectors, Array1::from(biases))?;
        Ok(NewItems {
            ids,
            details,
            representations,
            rows,
            base_items: items.len(),
            report,
        })
    }

    /// `Ok` when products the model was not trained on can be represented: the scorer
    /// represents items from features and the vocabulary has attribute features (not only
    /// identity ones); else [`RecommendError::NewItemsUnsupported`] saying which. Cheap: a
    /// server calls it before reading the catalogue.
    pub fn check_supported(scorer: &dyn Scorer, vocabulary: &FeatureVocabulary) -> Result<()> {
        if !has_value_features(vocabulary) {
            return Err(RecommendError::NewItemsUnsupported {
                reason: "the model has no item features beyond identity (plain collaborative \
                         filtering): a product it was not trained on has no representation \
                         until the model is retrained with it, or trained with product \
                         attribute columns",
            });
        }
        if scorer.item_representations().is_none()
            || scorer.item_representation_from_features(&[])?.is_none()
        {
            return Err(RecommendError::NewItemsUnsupported {
                reason: "the scorer does not represent items from features",
            });
        }
        Ok(())
    }

    /// Number of products added.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no product was added.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// What happened to the records given to [`NewItems::new`].
    pub fn report(&self) -> &NewItemsReport {
        &self.report
    }

    /// The added products' feature rows (index `j` is new product `j`), in the model's item
    /// feature layout.
    pub fn rows(&self) -> &[recsys_features::FeatureRow] {
        &self.rows
    }

    /// The added products' ids (index `j` is new product `j`).
    pub fn ids(&self) -> &IdMap {
        &self.ids
    }

    /// The index `j` of an added product.
    pub fn index(&self, id: &ExternalId) -> Option<usize> {
        self.ids.index(id)
    }

    /// The display details (name, price, image) of an added product, from its record.
    pub fn product(&self, id: &ExternalId) -> Option<&ProductInfo> {
        self.details.get(self.ids.index(id)?)
    }

    /// The representations of the added products (row `j`: new product `j`).
    pub fn representations(&self) -> &ItemRepresentations {
        &self.representations
    }

    /// The number of trained items of the scorer these products were added to (new product
    /// `j` is item `base_items() + j` of a recommender).
    pub fn base_items(&self) -> usize {
        self.base_items
    }
}
