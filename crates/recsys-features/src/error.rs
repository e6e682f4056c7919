//! The one error type of `recsys-features`.

use std::fmt;

use recsys_core::CoreError;
use thiserror::Error;

use crate::records::{ExternalId, SourceError};

/// Which kind of record an id or a feature belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A user.
    User,
    /// A product (an item, in model terms).
    Product,
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecordKind::User => "user",
            RecordKind::Product => "product",
        })
    }
}

/// Everything that can go wrong in `recsys-features`.
///
/// Variants name the offending value (an id, a column, a weight) and where it was found, so
/// that a caller can show the message as is.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FeaturesError {
    /// An interaction or a test pair names an id that was never registered.
    #[error("unknown {kind} id \"{id}\" in {context} #{position}")]
    UnknownId {
        /// User or product.
        kind: RecordKind,
        /// The id that is not registered.
        id: ExternalId,
        /// What was being read (`interaction`, `pair`).
        context: &'static str,
        /// 0-based position of the record in its stream.
        position: usize,
    },
    /// An id is the empty string.
    #[error("empty {kind} id in {context}")]
    EmptyId {
        /// User or product.
        kind: RecordKind,
        /// Where it was found, e.g. `interaction #17` or `user record`.
        context: String,
    },
    /// The same user or product record was registered twice.
    #[error("duplicate {kind} record for id \"{id}\" (each id may carry attributes once)")]
    DuplicateRecord {
        /// User or product.
        kind: RecordKind,
        /// The repeated id.
        id: ExternalId,
    },
    /// A feature or column specification is invalid.
    #[error("invalid feature column `{column}`: {reason}")]
    InvalidColumn {
        /// The column name or the text that failed to parse.
        column: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An interaction weight (from a record or from the per-type table) is negative or not
    /// finite.
    #[error("invalid interaction weight {value} {context}: weights must be finite and >= 0")]
    InvalidInteractionWeight {
        /// The offending value, formatted.
        value: String,
        /// Where it was found, e.g. `in interaction #3 (user "u1", product "p9")` or
        /// `for interaction type "cart"`.
        context: String,
    },
    /// A saved id map or vocabulary is internally inconsistent.
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// What was being loaded (`id map`, `feature vocabulary`).
        what: &'static str,
        /// What is inconsistent, naming the value.
        reason: String,
    },
    /// A data source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `recsys-core` rejected a matrix or the interactions.
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// Result alias for `recsys-features`.
pub type Result<T, E = FeaturesError> = std::result::Result<T, E>;
