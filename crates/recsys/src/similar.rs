//! "Customers who liked this also liked": exact cosine top-k over item representations.
//!
//! A small brute-force index (one dot product per item per query). Vectors are normalised
//! once when the index is built, so a query is a dot product; every query takes a limit and
//! an exclusion predicate. A dedicated similarity crate with batched and precomputed
//! neighbours will replace this module; its answers are the reference that crate is tested
//! against.
//!
//! ```
//! use ndarray::array;
//! use recsys::similar::CosineIndex;
//!
//! let vectors = array![[1.0f32, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]];
//! let index = CosineIndex::new(vectors.view());
//! let similar = index.similar(0, 2, |_| false);
//! assert_eq!(similar.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1, 2]);
//! assert!((similar[0].1 - 0.9939).abs() < 1e-3);
//! ```

use ndarray::{Array2, ArrayView2};
use recsys_core::top_k;

/// Unit-length copies of a set of vectors; answers cosine top-k queries.
#[derive(Debug, Clone, PartialEq)]
pub struct CosineIndex {
    /// `n × k`, each row of length 1 (or 0 for a zero vector).
    unit: Array2<f32>,
}

impl CosineIndex {
    /// Normalises every row of `vectors` (a zero row stays zero: similarity 0 with all).
    pub fn new(vectors: ArrayView2<'_, f32>) -> Self {
        let mut unit = vectors.to_owned();
        for mut row in unit.outer_iter_mut() {
            let norm = row.dot(&row).sqrt();
            if norm > 0.0 && norm.is_finite() {
                row /= norm;
            }
        }
        CosineIndex { unit }
    }

    /// Number of indexed vectors.
    pub fn len(&self) -> usize {
        self.unit.nrows()
    }

    /// True when no vector is indexed.
    pub fn is_empty(&self) -> bool {
        self.unit.nrows() == 0
    }

    /// Cosine similarity of every indexed vector with vector `item` (empty when `item` is
    /// out of range).
    pub fn similarities(&self, item: usize) -> Vec<f32> {
        if item >= self.len() {
            return Vec::new();
        }
        self.unit.dot(&self.unit.row(item)).to_vec()
    }

    /// The `k` vectors most similar to `item` by cosine, best first, never `item` itself,
    /// skipping indices for which `exclude` is true. Empty when `item` is out of range.
    pub fn similar(
        &self,
        item: usize,
        k: usize,
        exclude: impl Fn(usize) -> bool,
    ) -> Vec<(usize, f32)> {
        let scores = self.similarities(item);
        top_k(&scores, k, |j| j == item || exclude(j))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// The obvious definition, for reference.
    fn slow(vectors: &Array2<f32>, item: usize, k: usize) -> Vec<usize> {
        let cos = |a: usize, b: usize| {
            let (x, y) = (vectors.row(a), vectors.row(b));
            let d = x.dot(&y) / (x.dot(&x).sqrt() * y.dot(&y).sqrt());
            if d.is_nan() {
                0.0
            } else {
                d
            }
        };
        let mut all: Vec<(usize, f32)> = (0..vectors.nrows())
            .filter(|&j| j != item)
            .map(|j| (j, cos(item, j)))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.into_iter().take(k).map(|(j, _)| j).collect()
    }

    #[test]
    fn matches_brute_force_reference() {
        let mut rng = recsys_core::Rng::new(11);
        let vectors = Array2::from_shape_fn((60, 5), |_| rng.next_f64() as f32 - 0.5);
        let index = CosineIndex::new(vectors.view());
        for item in [0, 17, 59] {
            let fast: Vec<usize> = index
                .similar(item, 7, |_| false)
                .into_iter()
                .map(|s| s.0)
                .collect();
            assert_eq!(fast, slow(&vectors, item, 7), "item {item} (seed 11)");
        }
        assert!(index.similar(60, 3, |_| false).is_empty());
        let excluded = index.similar(0, 60, |j| j % 2 == 1);
        assert_eq!(excluded.len(), 29);
        assert!(excluded.iter().all(|s| s.0 % 2 == 0 && s.0 != 0));
    }

    #[test]
    fn zero_vectors_have_zero_similarity() {
        let vectors = ndarray::array![[0.0f32, 0.0], [1.0, 0.0]];
        let index = CosineIndex::new(vectors.view());
        assert_eq!(index.similar(0, 1, |_| false), vec![(1, 0.0)]);
    }
}
