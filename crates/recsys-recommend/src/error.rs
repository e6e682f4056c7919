//! Errors of recsys-recommend.

use std::path::PathBuf;

/// What can go wrong when recommending or handling a bundle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecommendError {
    /// Two parts disagree on a size (e.g. a model for 10 items and an id map of 12).
    #[error("inconsistent parts: {what}: expected {expected}, found {found}")]
    Inconsistent {
        /// Which sizes were compared.
        what: &'static str,
        /// The size the other parts imply.
        expected: usize,
        /// The size found.
        found: usize,
    },
    /// The model failed.
    #[error(transparent)]
    Model(#[from] recsys_core::CoreError),
    /// The similarity index failed.
    #[error(transparent)]
    Similarity(#[from] recsys_similarity::SimilarityError),
    /// Reading or writing a bundle file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", "renaming to", …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The file does not start with the bundle magic bytes.
    #[error("{path} is not a recsys bundle (its first bytes are not the bundle magic)")]
    NotABundle {
        /// The file.
        path: PathBuf,
    },
    /// The bundle was written by an incompatible format version.
    #[error(
        "{path} has bundle format version {found}; this library reads version {supported}: \
         re-train with this version to write it anew (`train --out …`); no converter \
         reads older formats"
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The version this library reads.
        supported: u32,
    },
    /// A header field this library only knows as 0 (the flags, the reserved bytes) is not 0:
    /// the file was written by a newer recsys, or its header is damaged.
    #[error(
        "{path}: header {field} is {value:#010x}, but this library reads only 0 there: the file \
         was written by a newer recsys or is damaged"
    )]
    UnsupportedHeader {
        /// The file.
        path: PathBuf,
        /// Which field (`flags`, `reserved bytes 36..40`).
        field: &'static str,
        /// Its value (little-endian u32).
        value: u32,
    },
    /// The file is shorter or longer than its header says.
    #[error(
        "{path} is truncated or has trailing bytes: header says {expected} bytes, file has {found}"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Length the header announces.
        expected: u64,
        /// Actual length.
        found: u64,
    },
    /// The checksum does not match the content: the file is corrupt.
    #[error("{path} is corrupt: checksum {found:08x} does not match the recorded {expected:08x}")]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Checksum in the header.
        expected: u32,
        /// Checksum of the content.
        found: u32,
    },
    /// The content could not be decoded (or encoded).
    #[error("{path}: cannot decode the {section}: {message}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// "metadata" or "payload".
        section: &'static str,
        /// What the decoder said.
        message: String,
    },
    /// A part of a bundle file decodes but is invalid (its checksum matched, so the file was
    /// written by a faulty tool or altered after writing): nothing is served from it.
    #[error("{path}: invalid {part}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Which part (`model`, `seen interactions`, `item id map`, `metadata`, …).
        part: &'static str,
        /// What is wrong, naming the offending value.
        message: String,
    },
    /// A part given to [`Bundle::new`](crate::Bundle::new) is invalid (e.g. a diverged model
    /// with NaN parameters, NaN popularity counts): a bundle of it could not be loaded.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// Which part.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// Products added after training cannot be scored by this model or scorer (see
    /// [`NewItems`](crate::NewItems)).
    #[error("products the model was not trained on cannot be scored: {reason}")]
    NewItemsUnsupported {
        /// Why (e.g. the model has no item features).
        reason: &'static str,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, RecommendError>;

/// `Ok` when two parts agree on a size, else [`RecommendError::Inconsistent`].
pub(crate) fn agree(what: &'static str, expected: usize, found: usize) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(RecommendError::Inconsistent {
            what,
            expected,
            found,
        })
    }
}
