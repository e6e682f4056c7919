//! Precomputed top-k neighbours of every item.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::exact::ExactCosine;
use crate::topk::rank_order;
use crate::{Neighbour, Result, SimilarityError, SimilarityIndex};

/// Version of the serialised form of [`NeighbourTable`]; loading refuses any other.
pub const TABLE_FORMAT_VERSION: u32 = 1;

/// Item queries per parallel task of the build: each task streams the whole catalogue once,
/// so larger blocks mean less memory traffic, smaller ones better load balance and finer
/// progress reports.
const BUILD_BLOCK: usize = 128;

/// The `k` most similar items of every item, precomputed from an [`ExactCosine`] index.
///
/// Stored row-major with a fixed width: row `i` holds the `min(k, n_items − 1)` best
/// neighbours of item `i` (never `i` itself), best first, ties by lower index, as `u32` item
/// indices and `f32` similarities. 68,509 items × 20 neighbours take 10.5 MiB, where the
/// dense similarity matrix would take 17.5 GiB.
///
/// The build runs blocks of item queries in parallel through the same kernel as the exact
/// index, so the stored similarities are bit for bit those of [`ExactCosine`] and each row
/// is exactly `ExactCosine::similar(i, k, no exclusion)`.
///
/// As a [`SimilarityIndex`]:
/// * `similar(item, k, exclude)` walks the stored row, skipping excluded items. If fewer
///   than `k` remain (`k` is larger than the table's, or exclusions removed too many), it
///   returns **fewer than `k`**: the table does not know the other items. Whatever it
///   returns is exactly the prefix of the exact answer. Use [`WithFallback`](crate::WithFallback)
///   to complete short answers from the exact index.
/// * `similar_to_vector` returns [`SimilarityError::Unsupported`].
/// * `for_each_similarity` yields the stored neighbours only.
///
/// Serialisable with `serde`; deserialising (like [`from_parts`](Self::from_parts)) checks
/// the format version, the lengths, that every item index is in range and not the row's own
/// item, that no row repeats an item, that every similarity is finite and within `[-1, 1]`,
/// and that each row is in rank order; a bad table is refused with
/// [`SimilarityError::InvalidTable`], never a panic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TableParts")]
pub struct NeighbourTable {
    format: u32,
    n_items: usize,
    k: usize,
    items: Vec<u32>,
    similarities: Vec<f32>,
}

/// The unchecked serialised form.
#[derive(Deserialize)]
struct TableParts {
    format: u32,
    n_items: usize,
    k: usize,
    items: Vec<u32>,
    similarities: Vec<f32>,
}

impl TryFrom<TableParts> for NeighbourTable {
    type Error = SimilarityError;

    fn try_from(p: TableParts) -> Result<Self> {
        if p.format != TABLE_FORMAT_VERSION {
            return Err(invalid(format!(
                "format version {} (this build reads version {TABLE_FORMAT_VERSION})",
                p.format
            )));
        }
        NeighbourTable::from_parts(p.n_items, p.k, p.items, p.similarities)
    }
}

impl NeighbourTable {
    /// Deserialises like the `Deserialize` impl, but returns a table that decodes and is
    /// invalid as `Ok(Err(reason))`, so that formats which drop error messages (postcard, in
    /// the artifact bundle) can still say what is wrong.
    pub fn deserialize_validated<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Result<Self>, D::Error> {
        Ok(NeighbourTable::try_from(TableParts::deserialize(d)?))
    }
}

fn invalid(reason: String) -> SimilarityError {
    SimilarityError::InvalidTable(reason)
}

impl NeighbourTable {
    /// Computes the `k` nearest neighbours of every item of `exact`, in parallel on the
    /// current rayon pool (run it inside `ThreadPool::install` to choose the threads).
    ///
    /// Fails with [`SimilarityError::TooManyItems`] if item indices do not fit in `u32`.
    pub fn build(exact: &ExactCosine, k: usize) -> Result<Self> {
        Self::build_with_progress(exact, k, &|_, _| {})
    }

    /// [`build`](Self::build), calling `progress(items_done, n_items)` after each block of
    /// items (from worker threads, in no particular order of blocks; `items_done` only
    /// grows and reaches `n_items`).
    pub fn build_with_progress(
        exact: &ExactCosine,
        k: usize,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self> {
        let n = exact.len();
        if u32::try_from(n).is_err() {
            return Err(SimilarityError::TooManyItems { len: n });
        }
        let width = row_width(n, k);
        let mut items = vec![0u32; n * width];
        let mut similarities = vec![0.0f32; n * width];
        let done = AtomicUsize::new(0);
        if width > 0 {
            let all: Vec<usize> = (0..n).collect();
            items
                .par_chunks_mut(BUILD_BLOCK * width)
                .zip(similarities.par_chunks_mut(BUILD_BLOCK * width))
                .zip(all.par_chunks(BUILD_BLOCK))
                .for_each(|((items, sims), queries)| {
                    exact.top_k_block(queries, width, &|_| false, |q, top| {
                        let row = q * width..(q + 1) * width;
                        let mut filled = 0;
                        for ((s, i), (slot_i, slot_s)) in top
                            .drain_sorted()
                            .zip(items[row.clone()].iter_mut().zip(&mut sims[row]))
                        {
                            *slot_i = i;
                            *slot_s = s;
                            filled += 1;
                        }
                        debug_assert_eq!(filled, width);
                    });
                    let now = done.fetch_add(queries.len(), Ordering::Relaxed) + queries.len();
                    progress(now, n);
                });
        } else {
            progress(n, n);
        }
        Ok(NeighbourTable {
            format: TABLE_FORMAT_VERSION,
            n_items: n,
            k,
            items,
            similarities,
        })
    }

    /// Builds a table from its parts, validating them: `items` and `similarities` hold
    /// `n_items` rows of `min(k, n_items − 1)` entries each, row-major, each row in rank
    /// order (similarity descending, then item index ascending), without the row's own item
    /// or repeats, similarities finite and within `[-1, 1]`.
    pub fn from_parts(
        n_items: usize,
        k: usize,
        items: Vec<u32>,
        similarities: Vec<f32>,
    ) -> Result<Self> {
        if u32::try_from(n_items).is_err() {
            return Err(SimilarityError::TooManyItems { len: n_items });
        }
        let width = row_width(n_items, k);
        let expected = n_items
            .checked_mul(width)
            .ok_or_else(|| invalid(format!("{n_items} rows of {width} overflow")))?;
        if items.len() != expected || similarities.len() != expected {
            return Err(invalid(format!(
                "{n_items} items × {width} neighbours need {expected} entries, found {} items and {} similarities",
                items.len(),
                similarities.len()
            )));
        }
        if width > 0 {
            for (row, (ids, sims)) in items
                .chunks_exact(width)
                .zip(similarities.chunks_exact(width))
                .enumerate()
            {
                for (pos, (&id, &s)) in ids.iter().zip(sims).enumerate() {
                    if id as usize >= n_items {
                        return Err(invalid(format!(
                            "row {row} entry {pos}: item {id} is out of range ({n_items} items)"
                        )));
                    }
                    if id as usize == row {
                        return Err(invalid(format!("row {row} lists the item itself")));
                    }
                    if !s.is_finite() || !(-1.0..=1.0).contains(&s) {
                        return Err(invalid(format!(
                            "row {row} entry {pos}: similarity {s} is not a finite value in [-1, 1]"
                        )));
                    }
                    if pos > 0 {
                        let prev = (sims[pos - 1], ids[pos - 1]);
                        if rank_order(&prev, &(s, id)) != std::cmp::Ordering::Less {
                            return Err(invalid(format!(
                                "row {row} is not in rank order at entry {pos} (item {id})"
                            )));
                        }
                    }
                }
                // Rank order makes equal items adjacent only when their similarities are
                // equal too; check repeats explicitly (rows are short).
                for (pos, id) in ids.iter().enumerate() {
                    if ids[..pos].contains(id) {
                        return Err(invalid(format!("row {row} repeats item {id}")));
                    }
                }
            }
        }
        Ok(NeighbourTable {
            format: TABLE_FORMAT_VERSION,
            n_items,
            k,
            items,
            similarities,
        })
    }

    /// The `k` the table was built with (rows hold `min(k, len − 1)` entries).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of neighbours stored per item: `min(k, len − 1)`.
    pub fn row_len(&self) -> usize {
        row_width(self.n_items, self.k)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.n_items
    }

    /// True when the table covers no items.
    pub fn is_empty(&self) -> bool {
        self.n_items == 0
    }

    /// Heap memory held by the neighbour lists, in bytes.
    pub fn size_in_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<u32>()
            + self.similarities.capacity() * std::mem::size_of::<f32>()
    }

    /// The stored row of `item`: neighbour indices and their similarities, best first.
    pub fn row(&self, item: usize) -> Result<(&[u32], &[f32])> {
        if item >= self.n_items {
            return Err(SimilarityError::ItemOutOfRange {
                index: item,
                len: self.n_items,
            });
        }
        let w = self.row_len();
        let r = item * w..(item + 1) * w;
        Ok((&self.items[r.clone()], &self.similarities[r]))
    }

    /// The stored neighbours of `item`, best first.
    pub fn neighbours(&self, item: usize) -> Result<impl ExactSizeIterator<Item = Neighbour> + '_> {
        let (ids, sims) = self.row(item)?;
        Ok(ids.iter().zip(sims).map(|(&i, &s)| Neighbour {
            item: i as usize,
            similarity: s,
        }))
    }

    /// The stored rows as `(items, similarities)`, row-major, [`row_len`](Self::row_len)
    /// entries per item.
    pub fn as_parts(&self) -> (&[u32], &[f32]) {
        (&self.items, &self.similarities)
    }
}

fn row_width(n_items: usize, k: usize) -> usize {
    k.min(n_items.saturating_sub(1))
}

impl SimilarityIndex for NeighbourTable {
    fn len(&self) -> usize {
        self.n_items
    }

    /// The stored neighbours of `item` that are not excluded, at most `k` of them; fewer
    /// when the stored row runs out (see the type's documentation).
    fn similar(
        &self,
        item: usize,
        k: usize,
        exclude: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Neighbour>> {
        Ok(self
            .neighbours(item)?
            .filter(|n| !exclude(n.item))
            .take(k)
            .collect())
    }

    /// Always [`SimilarityError::Unsupported`]: the table knows no vectors.
    fn similar_to_vector(
        &self,
        _vector: &[f32],
        _k: usize,
        _exclude: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Neighbour>> {
        Err(SimilarityError::Unsupported(
            "a NeighbourTable stores neighbour lists, not vectors: use ExactCosine or WithFallback",
        ))
    }

    /// The stored neighbours of `item`, best first.
    fn for_each_similarity(&self, item: usize, f: &mut dyn FnMut(usize, f32)) -> Result<()> {
        for n in self.neighbours(item)? {
            f(n.item, n.similarity);
        }
        Ok(())
    }
}
