//! Item-to-item similarity (work in progress: see issue 4).
#![warn(missing_docs)]

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
