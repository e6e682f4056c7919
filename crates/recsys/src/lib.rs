//! recsys: hybrid recommendation in the spirit of LightFM — one import for the whole toolkit.
//!
//! * [`core`] (`recsys-core`): the hybrid factorisation model, losses, training, evaluation,
//!   the [`Scorer`] trait and the popularity baseline. No IO.
//! * [`features`] (`recsys-features`): records, id maps, feature vocabularies and the
//!   [`Dataset`] that turns records into feature matrices and interactions.
//! * [`store`] (`recsys-store`): the CSV schema ([`CsvSource`], [`read_pairs`]).
//! * [`experiment`]: load a [`RecordSource`] with a split, train with progress reports,
//!   evaluate (also item cold start).
//! * [`tune`]: model selection by successive halving on a validation split carved from the
//!   training interactions, plain collaborative filtering always a candidate.
//! * [`similarity`] (`recsys-similarity`): the [`SimilarityIndex`] trait, exact cosine top-k
//!   ([`ExactCosine`]) and precomputed neighbours ([`NeighbourTable`]).
//! * [`recommend`] (`recsys-recommend`): the [`Recommender`] policy (model + similarity
//!   boost, fallbacks with reasons), the artifact [`Bundle`] and its [`BundleBuilder`]
//!   ([`Experiment::bundle`]).
//! * [`demo`]: a seeded synthetic fashion shop with a planted taste structure.
//! * [`retrain`]: warm retraining of a bundle's model on the data as it is now (new users
//!   and products get rows), gated on the newest interactions against the current model.
//!
//! The most used types are re-exported at the top level.
//!
//! Cargo feature `lapack` (default) is recsys-core's: fold-in through LAPACK, which needs
//! `libopenblas-dev`; `default-features = false` builds with nothing beyond cargo.
//!
//! ```
//! use recsys::demo::{generate, DemoConfig};
//! use recsys::experiment::{Experiment, ExperimentConfig, Split};
//! use recsys::{ExternalId, Hyperparameters, Loss, Scorer};
//!
//! // A small demo shop; the same seed always gives the same data and the same model.
//! let mut shop = generate(&DemoConfig { users: 200, products: 120, interactions: 5_000, seed: 7 });
//! // User identity + city, age group, user type; item identity + category, brand, …
//! let experiment = Experiment::load(
//!     &mut shop,
//!     &ExperimentConfig::demo_hybrid(),
//!     Split::Random { test_fraction: 0.2, seed: 7 },
//! )?;
//! let params = Hyperparameters::builder()
//!     .loss(Loss::Warp)
//!     .no_components(16)
//!     .seed(7)
//!     .build()?;
//! let (model, _training) = experiment.fit(params, 10, 1, |_epoch| {})?;
//!
//! // Five recommendations for user "1", skipping what they already interacted with.
//! let user = experiment.dataset().users().index(&ExternalId::Int(1)).unwrap();
//! let seen = experiment.train();
//! let top = model.recommend(user, 5, |item| seen.contains(user, item))?;
//! assert_eq!(top.len(), 5);
//!
//! // The model ranks held-out interactions better than popularity does.
//! let hybrid = experiment.evaluate(&model, 10, 1)?;
//! let popular = experiment.evaluate(&experiment.popularity(), 10, 1)?;
//! assert!(hybrid.auc > popular.auc, "{hybrid:?} vs {popular:?}");
//!
//! // Everything a server needs in one checked file: model, ids, catalogue, neighbours.
//! let bundle = experiment.bundle(model).products(shop.products.clone()).neighbours(10).build()?;
//! assert_eq!(bundle.metadata().counts.items, experiment.n_items());
//! # let path = std::env::temp_dir().join(format!("recsys-doc-{}.rsb", std::process::id()));
//! # bundle.save(&path)?;
//! # std::fs::remove_file(&path)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod demo;
pub mod experiment;
pub mod retrain;
pub mod tune;

pub use recsys_core as core;
pub use recsys_features as features;
pub use recsys_recommend as recommend;
pub use recsys_similarity as similarity;
pub use recsys_store as store;

pub use recsys_core::{
    evaluate, top_k, ContentModel, ContentParams, ContentPrior, CoreError, EpochReport,
    EvalOptions, FeatureMatrix, FitOptions, HybridModel, Hyperparameters, Interactions, Loss,
    Metrics, Model, Popularity, Representation, Rng, Schedule, Scorer, UserQuery,
};
pub use recsys_features::{
    Attributes, ColumnSpec, Dataset, ExternalId, FeatureSpec, FeaturesError, IdMap, InMemorySource,
    InteractionMode, InteractionOptions, InteractionRecord, InteractionWeights, ProductRecord,
    RecordSource, UnknownIdPolicy, UserRecord,
};
pub use recsys_store::{read_pairs, CsvSource, StoreError};

pub use experiment::{Experiment, ExperimentConfig, ExperimentError, Split};
pub use recsys_recommend::{
    Bundle, BundleBuilder, BundleParts, ProductCatalog, ProductInfo, Reason, RecommendError,
    Recommendation, Recommendations, Recommender, Request, Strategy,
};
pub use recsys_similarity::{ExactCosine, Neighbour, NeighbourTable, SimilarityIndex};

#[cfg(test)]
mod tests {
    #[test]
    fn public_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::ExactCosine>();
        assert_send_sync::<crate::Bundle>();
        assert_send_sync::<crate::Split>();
    }
}

/// The README's code blocks, compiled and run as doc tests so the README cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
