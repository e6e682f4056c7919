//! Assembling a [`Bundle`] from a training run: the one place that knows which part of a
//! bundle comes from where.

use recsys_core::{Interactions, Model, Popularity};
use recsys_features::{Dataset, FeatureVocabulary, IdMap, ProductRecord};
use recsys_similarity::{ExactCosine, NeighbourTable};

use crate::bundle::{Bundle, BundleParts, ContentPriorSpec, EvaluationSummary};
use crate::catalog::ProductCatalog;
use crate::error::Result;

/// Neighbours per product a [`BundleBuilder`] precomputes unless told otherwise.
pub const DEFAULT_NEIGHBOURS: usize = 20;

/// Where the neighbour table comes from.
#[derive(Debug, Clone)]
enum Neighbours {
    /// Built from the model's item representations at [`BundleBuilder::build`].
    Count(usize),
    /// Built by the caller (e.g. with a progress bar).
    Table(NeighbourTable),
}

/// Turns a trained model and the dataset it was trained on into a [`Bundle`]: id maps and
/// feature vocabularies from the dataset, the product catalogue from product records (in
/// the dataset's item order), the neighbour table from the model's item representations,
/// popularity and the seen items from the training interactions.
///
/// ```
/// use recsys_core::{FitOptions, HybridModel, Hyperparameters, Loss};
/// use recsys_features::{Dataset, FeatureSpec, InMemorySource, InteractionOptions};
/// use recsys_features::{InteractionRecord, ProductRecord, UserRecord};
/// use recsys_recommend::BundleBuilder;
///
/// // 3 users, 4 products.
/// let mut shop = InMemorySource::default();
/// for u in 1..=3 {
///     shop.users.push(UserRecord { user_id: u.into(), attributes: Default::default() });
/// }
/// for p in 10..14 {
///     shop.products.push(ProductRecord {
///         product_id: p.into(), name: Some(format!("Product {p}")), price: Some(2.5),
///         image: None, attributes: Default::default(),
///     });
/// }
/// for (u, p) in [(1, 10), (1, 11), (2, 11), (3, 12), (3, 13)] {
///     shop.interactions.push(InteractionRecord {
///         user_id: u.into(), product_id: p.into(),
///         interaction_type: None, weight: None, timestamp: None,
///     });
/// }
/// let dataset = Dataset::from_source(&mut shop, FeatureSpec::identity_only(), FeatureSpec::identity_only())?;
/// let (train, _) = dataset.logged_interactions(InteractionOptions::binary())?;
/// let params = Hyperparameters::builder().loss(Loss::Warp).no_components(4).seed(1).build()?;
/// let mut model = HybridModel::new(params, dataset.user_features(), dataset.item_features())?;
/// model.fit(&train, FitOptions::epochs(5))?;
///
/// let bundle = BundleBuilder::new(model, &dataset, train)
///     .products(shop.products.iter().cloned())
///     .neighbours(2)
///     .description("a tiny shop")
///     .build()?;
/// assert_eq!(bundle.metadata().counts.items, 4);
/// assert_eq!(bundle.products().get(0).and_then(|p| p.name.as_deref()), Some("Product 10"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BundleBuilder {
    model: Model,
    users: IdMap,
    items: IdMap,
    user_vocabulary: FeatureVocabulary,
    item_vocabulary: FeatureVocabulary,
    products: ProductCatalog,
    neighbours: Neighbours,
    popularity: Option<Popularity>,
    seen: Interactions,
    metrics: Option<EvaluationSummary>,
    description: Option<String>,
    content_prior: Option<ContentPriorSpec>,
    keep_training_state: bool,
}

impl BundleBuilder {
    /// A builder for `model`, trained on `train`, the interactions of `dataset`. Until told
    /// otherwise the bundle has no product details, [`DEFAULT_NEIGHBOURS`] neighbours per
    /// product, popularity counted from `train`, no evaluation results and no description.
    pub fn new(model: impl Into<Model>, dataset: &Dataset, train: Interactions) -> Self {
        let items = dataset.items().clone();
        BundleBuilder {
            model: model.into(),
            users: dataset.users().clone(),
            products: ProductCatalog::from_records(&items, std::iter::empty()),
            items,
            user_vocabulary: dataset.user_vocabulary().clone(),
            item_vocabulary: dataset.item_vocabulary().clone(),
            neighbours: Neighbours::Count(DEFAULT_NEIGHBOURS),
            popularity: None,
            seen: train,
            metrics: None,
            description: None,
            content_prior: None,
            keep_training_state: false,
        }
    }

    /// Product details from product records (any order; records of products the dataset
    /// does not know are skipped, products without a record have no details).
    pub fn products(mut self, records: impl IntoIterator<Item = ProductRecord>) -> Self {
        self.products = ProductCatalog::from_records(&self.items, records);
        self
    }

    /// Product details already in the dataset's item order.
    pub fn catalog(mut self, catalog: ProductCatalog) -> Self {
        self.products = catalog;
        self
    }

    /// Precompute `k` neighbours per product (exact cosine over the model's item
    /// representations) when the bundle is built.
    pub fn neighbours(mut self, k: usize) -> Self {
        self.neighbours = Neighbours::Count(k);
        self
    }

    /// A neighbour table built by the caller (e.g. with
    /// [`NeighbourTable::build_with_progress`]) instead of one built here.
    pub fn neighbour_table(mut self, table: NeighbourTable) -> Self {
        self.neighbours = Neighbours::Table(table);
        self
    }

    /// Item popularity for the popular fallback, instead of the counts of the training
    /// interactions.
    pub fn popularity(mut self, popularity: Popularity) -> Self {
        self.popularity = Some(popularity);
        self
    }

    /// Evaluation results to store with the bundle (`None`: none).
    pub fn metrics(mut self, metrics: Option<EvaluationSummary>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Free text for the bundle's metadata.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Keeps the model's optimiser state in the bundle, so that training can continue from
    /// it (a warm start) exactly as if it had not been saved. Off by default: serving needs
    /// the parameters only, and the state is one (adagrad) or two (adadelta) more copies of
    /// them.
    pub fn keep_training_state(mut self, keep: bool) -> Self {
        self.keep_training_state = keep;
        self
    }

    /// The parts, unchecked (building the neighbour table if none was given): for callers
    /// that adjust a part before [`Bundle::new`] checks them.
    pub fn into_parts(self) -> Result<BundleParts> {
        let neighbours = match self.neighbours {
            Neighbours::Table(table) => table,
            Neighbours::Count(k) => {
                let exact = ExactCosine::new(self.model.item_representations().vectors());
                NeighbourTable::build(&exact, k)?
            }
        };
        let popularity = self
            .popularity
            .unwrap_or_else(|| Popularity::from_interactions(&self.seen));
        Ok(BundleParts {
            model: self.model,
            users: self.users,
            items: self.items,
            user_vocabulary: self.user_vocabulary,
            item_vocabulary: self.item_vocabulary,
            products: self.products,
            neighbours,
            popularity,
            seen: self.seen,
            metrics: self.metrics,
            description: self.description,
            keep_training_state: self.keep_training_state,
            content_prior: self.content_prior,
        })
    }

    /// Adds the content model to the model's scores with this spec (its settings and
    /// weight), refitted from the bundle's parts on load ([`ContentPriorSpec`]).
    pub fn content_prior(mut self, spec: ContentPriorSpec) -> Self {
        self.content_prior = Some(spec);
        self
    }

    /// The bundle, its parts checked to agree ([`Bundle::new`]).
    pub fn build(self) -> Result<Bundle> {
        Bundle::new(self.into_parts()?)
    }
}
