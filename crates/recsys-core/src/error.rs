//! The one error type of `recsys-core`.

use thiserror::Error;

/// Everything that can go wrong in `recsys-core`.
///
/// Variants name the offending value so that callers can show a useful message without
/// extra context.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum CoreError {
    /// A hyper-parameter is out of its valid range.
    #[error("invalid hyper-parameter `{name}` = {value}: {reason}")]
    InvalidHyperparameter {
        /// Name of the hyper-parameter, as in the builder method.
        name: &'static str,
        /// The rejected value, formatted.
        value: String,
        /// What a valid value looks like.
        reason: &'static str,
    },
    /// Two objects that must agree in size do not.
    #[error("shape mismatch for {what}: expected {expected}, found {found}")]
    ShapeMismatch {
        /// What was being checked.
        what: &'static str,
        /// The size that was expected.
        expected: usize,
        /// The size that was found.
        found: usize,
    },
    /// An index is out of range.
    #[error("{what} index {index} is out of range (there are {len})")]
    IndexOutOfRange {
        /// The kind of index (user, item, feature).
        what: &'static str,
        /// The offending index.
        index: usize,
        /// The number of valid indices.
        len: usize,
    },
    /// A value that must be finite is NaN or infinite.
    #[error("{what} contains a non-finite value ({value}) at position {position}")]
    NonFinite {
        /// Which input held the value.
        what: &'static str,
        /// Position of the value (row-major / data index).
        position: usize,
        /// The value, formatted.
        value: String,
    },
    /// A value that must be non-negative is negative.
    #[error("{what} contains a negative value ({value}) at position {position}")]
    Negative {
        /// Which input held the value.
        what: &'static str,
        /// Position of the value.
        position: usize,
        /// The value, formatted.
        value: String,
    },
    /// A stored value (a model file, a bundle part) decoded but is internally inconsistent:
    /// it was written by a faulty tool or altered. Nothing is built from it.
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// What was being loaded (`model`, `interactions`, `feature matrix`, …).
        what: &'static str,
        /// What is inconsistent, naming the offending value.
        reason: String,
    },
    /// The item feature matrix is valid but not laid out as the operation needs (the item
    /// cold-start refit needs identity features first: feature `i` = item `i`).
    #[error("{operation} needs {needs}: {reason}")]
    FeatureLayout {
        /// The operation that was refused.
        operation: &'static str,
        /// The layout it needs.
        needs: &'static str,
        /// Where the given matrix differs, naming the row and feature.
        reason: String,
    },
    /// A saved model was written in a record version this library does not read.
    #[error(
        "saved model record version {found} is not supported (this library reads version \
         {supported}): re-train the model with this version of recsys"
    )]
    UnsupportedRecord {
        /// The version in the saved model.
        found: u32,
        /// The version this library reads ([`crate::MODEL_RECORD_VERSION`]).
        supported: u32,
    },
    /// Training was asked of a model saved without its optimiser state.
    #[error(
        "the model was saved without its optimiser state, so it cannot continue training: \
         save it with its training state (`BundleBuilder::keep_training_state`, \
         `train --keep-training-state`), or call `HybridModel::reset_training_state` to go \
         on with a fresh one"
    )]
    NoTrainingState,
    /// Training produced NaN or infinite parameters.
    #[error(
        "training diverged in epoch {epoch}: parameters became NaN or infinite; \
         lower `learning_rate` (now {learning_rate}), normalise feature rows or sample weights, \
         or raise `user_alpha`/`item_alpha`"
    )]
    Diverged {
        /// The (0-based) epoch in which divergence was detected.
        epoch: usize,
        /// The learning rate in force.
        learning_rate: f32,
    },
    /// There is nothing to train on or evaluate.
    #[error("no interactions: {0}")]
    Empty(&'static str),
    /// A linear-algebra routine failed (for example a singular system in fold-in).
    #[error("linear algebra failed in {context}: {message}")]
    Linalg {
        /// Where it failed.
        context: &'static str,
        /// The solver's message.
        message: String,
    },
    /// A thread pool could not be created.
    #[error("could not build a thread pool with {threads} threads: {message}")]
    ThreadPool {
        /// The requested number of threads.
        threads: usize,
        /// The error from rayon.
        message: String,
    },
}

impl CoreError {
    /// The error of a count setting `name` (threads, k, …) given as 0 where at least 1 is
    /// needed.
    /// A rayon pool of `threads` threads, or [`CoreError::ThreadPool`].
    pub(crate) fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| CoreError::ThreadPool {
                threads,
                message: e.to_string(),
            })
    }

    pub(crate) fn zero_count(name: &'static str) -> CoreError {
        CoreError::InvalidHyperparameter {
            name,
            value: "0".into(),
            reason: "must be >= 1",
        }
    }
}

/// Result alias for `recsys-core`.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
