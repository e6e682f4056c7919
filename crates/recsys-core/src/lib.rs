//! Core of recsys: LightFM's hybrid matrix-factorisation model in Rust.
//!
//! A user (item) is represented by the sum of the embeddings of its features plus their
//! biases; the score of a pair is the dot product of the two representations plus both
//! biases. Losses: logistic, BPR, WARP and WARP-kOS; learning schedules: adagrad and
//! adadelta; multi-threaded Hogwild training; evaluation (precision/recall@k, AUC,
//! reciprocal rank, NDCG@k); fold-in of new users by regularised least squares.
//!
//! This crate does no IO. Building feature matrices from records is `recsys-features`' job.
//!
//! Cargo feature `lapack` (default): fold-in solves its small linear system with LAPACK
//! through `ndarray-linalg`, which links the system's OpenBLAS (`libopenblas-dev`). With
//! `default-features = false` it uses a built-in Cholesky solver and needs no system library.
//!
//! ```
//! use recsys_core::{evaluate, EvalOptions, FitOptions, HybridModel, Hyperparameters, Interactions, Loss};
//!
//! // 40 users in two taste groups, 20 items in two groups.
//! let pairs: Vec<(usize, usize)> = (0..40)
//!     .flat_map(|u| (0..20).filter(move |i| (i % 2 == u % 2) && (i + u) % 3 != 0).map(move |i| (u, i)))
//!     .collect();
//! let all = Interactions::from_pairs(40, 20, pairs)?;
//! let (train, test) = all.split_random(0.2, 1)?;
//! let params = Hyperparameters::builder().loss(Loss::Warp).no_components(8).seed(1).build()?;
//! let mut model = HybridModel::collaborative(params, 40, 20)?;
//! model.fit(&train, FitOptions::epochs(20))?;
//! let m = evaluate(&model, &test, Some(&train), &EvalOptions::default())?;
//! assert!(m.auc > 0.8, "{m:?}");
//! # Ok::<(), recsys_core::CoreError>(())
//! ```
#![warn(missing_docs)]

mod als;
mod blend;
mod coldstart;
mod content;
mod error;
mod eval;
mod family;
mod foldin;
mod interactions;
mod kernels;
mod matrix;
mod model;
mod params;
mod repr;
mod rng;
mod scorer;
mod stored;
mod topk;
mod train;

pub use als::{AlsFitOptions, AlsIteration, AlsModel, AlsParams, AlsParamsBuilder, AlsSolver};
pub use coldstart::{ColdStartRefit, ColdStartReport};
pub use content::{ContentModel, ContentParams, ContentPrior};
pub use error::{CoreError, Result};
pub use eval::{evaluate, evaluate_users, rank_test_items, EvalOptions, Metrics};
pub use family::{Model, ModelParams};
pub use foldin::{FoldIn, FoldInOptions};
pub use interactions::{Interaction, Interactions};
pub use matrix::{canonical_row, FeatureMatrix};
pub use model::{EpochReport, FitOptions, HybridModel, ValidationMetric};
pub use params::{Hyperparameters, HyperparametersBuilder, Loss, Schedule};
pub use repr::{ItemRepresentations, Representation};
pub use rng::Rng;
pub use scorer::{Popularity, Scorer, UserQuery};
pub use stored::MODEL_RECORD_VERSION;
pub use topk::top_k;
