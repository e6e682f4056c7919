//! Item-to-item cosine similarity behind one [`SimilarityIndex`] trait.
//!
//! * [`ExactCosine`]: exact top-k over L2-normalised item vectors, by a vectorised scan of
//!   the whole catalogue; single queries ([`ExactCosine::similar_into`] allocates nothing
//!   with a reused [`QueryScratch`]), parallel batches ([`ExactCosine::similar_batch`]) and
//!   dense similarity rows for blending ([`ExactCosine::similarities`]).
//! * [`NeighbourTable`]: the top-k neighbours of every item, built in parallel without ever
//!   forming the `n × n` matrix, stored compactly and serialisable with `serde`.
//! * [`WithFallback`]: the table when it can answer, the exact index when it cannot.
//!
//! Results are `(item, cosine)` pairs ([`Neighbour`]), best first; equal similarities are
//! ordered by item index, lowest first. A query never returns its own item, skips the items
//! for which `exclude` returns true, and returns fewer than `k` items when fewer are left.
//! A zero or non-finite vector has similarity 0 with everything; NaN is never returned.
//!
//! ```
//! use ndarray::Array2;
//! use recsys_similarity::{ExactCosine, NeighbourTable, QueryScratch, SimilarityIndex};
//!
//! // 1,000 seeded pseudo-random 30-dimensional item vectors.
//! let mut state = 42u64;
//! let vectors = Array2::from_shape_fn((1_000, 30), |_| {
//!     state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
//!     (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
//! });
//!
//! let exact = ExactCosine::new(vectors.view());
//! let purchased = [3, 17];
//! let similar = exact.similar(7, 5, &|item| purchased.contains(&item))?;
//! assert_eq!(similar.len(), 5);
//! assert!(similar.windows(2).all(|w| w[0].similarity >= w[1].similarity));
//! assert!(similar.iter().all(|n| n.item != 7 && !purchased.contains(&n.item)));
//!
//! // Allocation-free repeated queries.
//! let (mut scratch, mut out) = (QueryScratch::new(), Vec::new());
//! exact.similar_into(7, 5, &|item| purchased.contains(&item), &mut scratch, &mut out)?;
//! assert_eq!(out, similar);
//!
//! // Every item's 10 nearest neighbours, precomputed; the same answers as the exact index.
//! let table = NeighbourTable::build(&exact, 10)?;
//! assert_eq!(table.similar(7, 5, &|item| purchased.contains(&item))?, similar);
//! assert_eq!(table.size_in_bytes(), 1_000 * 10 * 8);
//! # Ok::<(), recsys_similarity::SimilarityError>(())
//! ```
#![warn(missing_docs)]

mod exact;
mod fallback;
mod kernel;
mod table;
mod topk;

use std::sync::Arc;

pub use exact::{ExactCosine, QueryScratch};
pub use fallback::WithFallback;
pub use table::{NeighbourTable, TABLE_FORMAT_VERSION};

/// One similar item: its dense index and its cosine similarity with the query.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Neighbour {
    /// Dense item index.
    pub item: usize,
    /// Cosine similarity with the query, in `[-1, 1]`.
    pub similarity: f32,
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimilarityError {
    /// An item index outside the index.
    #[error("item {index} is out of range (the index holds {len} items)")]
    ItemOutOfRange {
        /// The bad index.
        index: usize,
        /// Number of items.
        len: usize,
    },
    /// A query vector of the wrong length.
    #[error("query vector has {found} components, the index has {expected}")]
    DimensionMismatch {
        /// Expected length.
        expected: usize,
        /// Given length.
        found: usize,
    },
    /// The index cannot answer this kind of query.
    #[error("{0}")]
    Unsupported(&'static str),
    /// A neighbour table (deserialised or built from parts) is inconsistent; the message
    /// names the first problem found.
    #[error("invalid neighbour table: {0}")]
    InvalidTable(String),
    /// More items than a `u32` index can address.
    #[error("{len} items do not fit in 32-bit item indices")]
    TooManyItems {
        /// Number of items.
        len: usize,
    },
    /// A table and an exact index that cover different numbers of items.
    #[error("the neighbour table covers {table} items, the exact index {exact}")]
    Mismatch {
        /// Items in the table.
        table: usize,
        /// Items in the exact index.
        exact: usize,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, SimilarityError>;

/// Answers "which items are most similar to this one?".
pub trait SimilarityIndex: Send + Sync {
    /// Number of indexed items.
    fn len(&self) -> usize;

    /// True when nothing is indexed.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` items most similar to `item`, best first (ties: lower index first), never
    /// `item` itself, skipping items for which `exclude` returns true.
    fn similar(
        &self,
        item: usize,
        k: usize,
        exclude: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Neighbour>>;

    /// The `k` items most similar to a vector in the embedding space, best first.
    fn similar_to_vector(
        &self,
        vector: &[f32],
        k: usize,
        exclude: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Neighbour>>;

    /// Calls `f(j, cosine(item, j))` for every item `j != item` whose similarity the index
    /// knows (all items for an exact index, the stored neighbours for a precomputed one).
    /// Used to blend similarity into model scores.
    fn for_each_similarity(&self, item: usize, f: &mut dyn FnMut(usize, f32)) -> Result<()>;
}

macro_rules! forward_similarity_index {
    ($($ty:ty),*) => {$(
        impl<T: SimilarityIndex + ?Sized> SimilarityIndex for $ty {
            fn len(&self) -> usize {
                (**self).len()
            }

            fn is_empty(&self) -> bool {
                (**self).is_empty()
            }

            fn similar(
                &self,
                item: usize,
                k: usize,
                exclude: &dyn Fn(usize) -> bool,
            ) -> Result<Vec<Neighbour>> {
                (**self).similar(item, k, exclude)
            }

            fn similar_to_vector(
                &self,
                vector: &[f32],
                k: usize,
                exclude: &dyn Fn(usize) -> bool,
            ) -> Result<Vec<Neighbour>> {
                (**self).similar_to_vector(vector, k, exclude)
            }

            fn for_each_similarity(
                &self,
                item: usize,
                f: &mut dyn FnMut(usize, f32),
            ) -> Result<()> {
                (**self).for_each_similarity(item, f)
            }
        }
    )*};
}

forward_similarity_index!(&T, Box<T>, Arc<T>);
