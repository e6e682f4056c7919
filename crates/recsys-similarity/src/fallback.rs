//! A precomputed table answered first, the exact index when the table cannot answer.

use crate::{ExactCosine, Neighbour, NeighbourTable, Result, SimilarityError, SimilarityIndex};

/// A [`NeighbourTable`] paired with the [`ExactCosine`] index it was built from.
///
/// `similar` answers from the stored row when, after exclusions, it still holds `k`
/// items, and otherwise runs the exact query; `similar_to_vector` always runs the exact
/// query; `for_each_similarity` yields the stored neighbours (the cheap, sparse list that
/// blending wants).
///
/// Why this is exact: a stored row is the exact top-`K` of all other items (same kernel,
/// same tie order). Dropping excluded items from it keeps the order, and any item not in
/// the row ranks below every item in it, so if `k` items survive they are precisely the
/// exact top-`k` of the non-excluded items. The answer therefore never depends on whether
/// the table or the scan produced it; a test checks this on random data.
///
/// The pairing is only meaningful if the table was built from this exact index;
/// [`new`](Self::new) checks that both cover the same number of items (it cannot check
/// more without recomputing the table).
#[derive(Debug, Clone)]
pub struct WithFallback {
    table: NeighbourTable,
    exact: ExactCosine,
}

impl WithFallback {
    /// Pairs a table with the exact index it was built from.
    pub fn new(table: NeighbourTable, exact: ExactCosine) -> Result<Self> {
        if table.len() != exact.len() {
            return Err(SimilarityError::Mismatch {
                table: table.len(),
                exact: exact.len(),
            });
        }
        Ok(WithFallback { table, exact })
    }

    /// The precomputed table.
    pub fn table(&self) -> &NeighbourTable {
        &self.table
    }

    /// The exact index.
    pub fn exact(&self) -> &ExactCosine {
        &self.exact
    }

    /// Splits the pair.
    pub fn into_parts(self) -> (NeighbourTable, ExactCosine) {
        (self.table, self.exact)
    }
}

impl SimilarityIndex for WithFallback {
    fn len(&self) -> usize {
        self.exact.len()
    }

    fn similar(
        &self,
        item: usize,
        k: usize,
        exclude: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Neighbour>> {
        let stored = self.table.similar(item, k, exclude)?;
        // A row that already lists every other item is complete: nothing to fall back to.
        if stored.len() == k || self.table.row_len() + 1 >= self.table.len() {
            Ok(stored)
        } else {
            self.exact.similar(item, k, exclude)
        }
    }

    fn similar_to_vector(
        &self,
        vector: &[f32],
        k: usize,
        exclude: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Neighbour>> {
        self.exact.similar_to_vector(vector, k, exclude)
    }

    /// The stored neighbours of `item` (not every item).
    fn for_each_similarity(&self, item: usize, f: &mut dyn FnMut(usize, f32)) -> Result<()> {
        self.table.for_each_similarity(item, f)
    }
}
