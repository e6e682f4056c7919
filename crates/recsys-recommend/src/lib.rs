//! recsys-recommend: the recommendation policy and the artifact bundle.
//!
//! * [`Recommender`] — the original system's algorithm as a library: model scores for a
//!   user plus `boost` (0.25) × cosine similarity to the product being viewed, that
//!   product and the user's seen items excluded; an unknown user is scored from their
//!   attributes (cold start), else gets the viewed product's similar items, else popular
//!   items. Every item carries its [`Reason`]; exclusions and filters are applied before the
//!   top-`n`, so `n` items come back whenever enough remain.
//! * [`Bundle`] — model, id maps, product catalogue, feature vocabularies and matrices,
//!   similarity neighbours, popularity and metadata in one checked file (magic bytes,
//!   format version, CRC-32, atomic writes; nothing is executed on load).
//! * [`evaluate_policy`] — precision/recall@k of the whole policy (e.g. with the similarity
//!   boost towards a viewed product) rather than of the bare model.
//!
//! ```
//! use recsys_core::{FitOptions, HybridModel, Hyperparameters, Interactions, Loss, Popularity};
//! use recsys_features::{ExternalId, IdMap};
//! use recsys_recommend::{Reason, Recommender, Request, Strategy};
//! use recsys_similarity::ExactCosine;
//!
//! // Two tastes: users 0-1 buy items 0-2, users 2-3 buy items 3-5.
//! let pairs = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 3), (2, 4), (3, 4), (3, 5)];
//! let train = Interactions::from_pairs(4, 6, pairs)?;
//! let params = Hyperparameters::builder().loss(Loss::Warp).no_components(8).seed(3).build()?;
//! let mut model = HybridModel::collaborative(params, 4, 6)?;
//! model.fit(&train, FitOptions::epochs(40))?;
//!
//! let mut users = IdMap::new();
//! let mut items = IdMap::new();
//! (0..4).for_each(|u| { users.get_or_insert(ExternalId::Int(100 + u)); });
//! (0..6).for_each(|i| { items.get_or_insert(ExternalId::Int(i)); });
//! let similarity = ExactCosine::new(model.item_representations().vectors());
//! let popularity = Popularity::from_interactions(&train);
//! let recommender = Recommender::new(&model, &users, &items)?
//!     .with_similarity(&similarity)?
//!     .with_popularity(&popularity)?
//!     .with_seen(&train)?;
//!
//! // User 100 viewing product 1: the unseen item of their taste comes first.
//! let (user, product) = (ExternalId::Int(100), ExternalId::Int(1));
//! let answer = recommender.recommend(&Request::new(2).user(&user).product(&product))?;
//! assert_eq!(answer.strategy, Strategy::Model);
//! assert_eq!(answer.items[0].product_id, ExternalId::Int(2));
//! assert_eq!(answer.items[0].reason.to_string(), "model+similar-to-1");
//!
//! // Nobody known: popular products, with that reason.
//! let stranger = ExternalId::Int(999);
//! let answer = recommender.recommend(&Request::new(3).user(&stranger))?;
//! assert_eq!(answer.strategy, Strategy::Popular);
//! assert!(answer.items.iter().all(|r| r.reason == Reason::Popular));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod builder;
mod bundle;
mod catalog;
mod error;
mod evaluate;
mod new_items;
mod policy;

pub use builder::{BundleBuilder, DEFAULT_NEIGHBOURS};
pub use bundle::{
    Bundle, BundleCounts, BundleMetadata, BundleParts, ContentPriorSpec, EvaluationSummary,
    FORMAT_VERSION,
};
pub use catalog::{ProductCatalog, ProductInfo};
pub use error::{RecommendError, Result};
pub use evaluate::{evaluate_policy, PolicyMetrics, Viewing};
pub use new_items::{NewItems, NewItemsReport};
pub use policy::{
    AttributeLookup, ItemFilter, Note, Reason, Recommendation, Recommendations, Recommender,
    Request, Strategy, DEFAULT_BOOST,
};
