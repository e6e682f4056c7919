//! Exact cosine top-k by a full scan of L2-normalised item vectors.

use ndarray::ArrayView2;
use rayon::prelude::*;

use crate::kernel::{Kernel, LANES};
use crate::topk::TopK;
use crate::{Neighbour, Result, SimilarityError, SimilarityIndex};

/// Items scanned per kernel call: 128 panels (1,024 items, 120 KiB at 30 dimensions) stay
/// in L2 while every query of a block runs over them.
pub(crate) const CHUNK_ITEMS: usize = 1024;
const CHUNK_PANELS: usize = CHUNK_ITEMS / LANES;

/// Queries per parallel task of [`ExactCosine::similar_batch`].
const BATCH_BLOCK: usize = 64;

/// Exact cosine similarity over a fixed set of item vectors.
///
/// Every row is L2-normalised once, when the index is built, so a similarity is a dot
/// product. A row that is all zeros or holds a non-finite value is stored as zeros: its
/// similarity with every item (itself included) is `0`, and no query ever returns NaN.
/// Similarities are clamped to `[-1, 1]` (rounding can otherwise push a self-similarity to
/// `1.0000001`).
///
/// A query scans the whole catalogue with a blocked, vectorised kernel (AVX2 + FMA chosen at
/// run time on x86-64, a portable kernel elsewhere) and keeps the best `k` with a
/// threshold-filtered selection. Results are ordered by similarity, highest first; equal
/// similarities are ordered by item index, lowest first. A similarity does not depend on
/// how it was asked for (single query, batch, [`NeighbourTable`](crate::NeighbourTable)),
/// and `sim(a, b) == sim(b, a)` exactly, so the different entry points agree item for item.
///
/// ```
/// use ndarray::array;
/// use recsys_similarity::{ExactCosine, SimilarityIndex};
///
/// let vectors = array![[1.0f32, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]];
/// let index = ExactCosine::new(vectors.view());
/// let similar = index.similar(0, 2, &|item| item == 1)?; // exclude item 1
/// assert_eq!(similar.iter().map(|n| n.item).collect::<Vec<_>>(), vec![2, 3]);
/// # Ok::<(), recsys_similarity::SimilarityError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ExactCosine {
    n_items: usize,
    dim: usize,
    /// Unit rows in panels of `LANES` items, dimension-major (see `kernel.rs`); the last
    /// panel is padded with zero rows.
    panels: Vec<f32>,
    kernel: Kernel,
}

/// Reusable buffers for [`ExactCosine::similar_into`] and
/// [`ExactCosine::similar_to_vector_into`]: after the first query, a query allocates
/// nothing. One scratch per thread; it can be reused across indexes.
#[derive(Debug, Clone, Default)]
pub struct QueryScratch {
    top: TopK,
    query: Vec<f32>,
    sims: Vec<f32>,
}

impl QueryScratch {
    /// Empty buffers; they grow on first use.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Writes the unit-length version of `values` into `out` (zeros when the values are all zero
/// or any is not finite). Scaled by the largest magnitude first, so neither huge nor tiny
/// finite rows overflow or underflow.
fn normalise_into(values: impl Iterator<Item = f32> + Clone, out: &mut [f32]) {
    let mut max_abs = 0.0f64;
    for x in values.clone() {
        if !x.is_finite() {
            out.fill(0.0);
            return;
        }
        max_abs = max_abs.max(x.abs() as f64);
    }
    if max_abs == 0.0 {
        out.fill(0.0);
        return;
    }
    let norm = values
        .clone()
        .map(|x| {
            let s = x as f64 / max_abs;
            s * s
        })
        .sum::<f64>()
        .sqrt();
    for (o, x) in out.iter_mut().zip(values) {
        *o = (x as f64 / max_abs / norm) as f32;
    }
}

impl ExactCosine {
    /// Builds the index from an `n_items × dim` matrix of item vectors (any memory layout),
    /// normalising every row.
    pub fn new(vectors: ArrayView2<'_, f32>) -> Self {
        Self::with_kernel(vectors, Kernel::detect())
    }

    pub(crate) fn with_kernel(vectors: ArrayView2<'_, f32>, kernel: Kernel) -> Self {
        let (n_items, dim) = vectors.dim();
        let n_panels = n_items.div_ceil(LANES);
        let mut panels = vec![0.0f32; n_panels * dim * LANES];
        let mut unit = vec![0.0f32; dim];
        for (item, row) in vectors.outer_iter().enumerate() {
            normalise_into(row.iter().copied(), &mut unit);
            let (p, l) = (item / LANES, item % LANES);
            for (d, &x) in unit.iter().enumerate() {
                panels[(p * dim + d) * LANES + l] = x;
            }
        }
        ExactCosine {
            n_items,
            dim,
            panels,
            kernel,
        }
    }

    /// The same index answered by the portable (non-AVX) kernel; for tests of both paths.
    #[doc(hidden)]
    pub fn force_portable_kernel(mut self) -> Self {
        self.kernel = Kernel::Portable;
        self
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.n_items
    }

    /// True when the index holds no items.
    pub fn is_empty(&self) -> bool {
        self.n_items == 0
    }

    /// Number of components of each vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Heap memory held by the index, in bytes.
    pub fn size_in_bytes(&self) -> usize {
        self.panels.capacity() * std::mem::size_of::<f32>()
    }

    fn check_item(&self, item: usize) -> Result<()> {
        if item < self.n_items {
            Ok(())
        } else {
            Err(SimilarityError::ItemOutOfRange {
                index: item,
                len: self.n_items,
            })
        }
    }

    fn check_vector(&self, vector: &[f32]) -> Result<()> {
        if vector.len() == self.dim {
            Ok(())
        } else {
            Err(SimilarityError::DimensionMismatch {
                expected: self.dim,
                found: vector.len(),
            })
        }
    }

    /// Copies the stored unit vector of `item` into `out` (resized to [`dim`](Self::dim)).
    /// All zeros for a zero or non-finite input row.
    pub fn unit_vector(&self, item: usize, out: &mut Vec<f32>) -> Result<()> {
        self.check_item(item)?;
        out.resize(self.dim, 0.0);
        self.gather(item, out);
        Ok(())
    }

    fn gather(&self, item: usize, out: &mut [f32]) {
        let (p, l) = (item / LANES, item % LANES);
        for (d, o) in out.iter_mut().enumerate() {
            *o = self.panels[(p * self.dim + d) * LANES + l];
        }
    }

    /// Cosine similarity of two items, exactly as every query computes it.
    pub fn similarity(&self, a: usize, b: usize) -> Result<f32> {
        self.check_item(a)?;
        self.check_item(b)?;
        if self.dim == 0 {
            return Ok(0.0);
        }
        let mut query = vec![0.0; self.dim];
        self.gather(a, &mut query);
        let panel_len = self.dim * LANES;
        let p = b / LANES;
        let mut out = [0.0f32; LANES];
        self.kernel.dots(
            &query,
            &self.panels[p * panel_len..(p + 1) * panel_len],
            self.dim,
            &mut out,
            LANES,
        );
        Ok(out[b % LANES])
    }

    /// Writes the similarity of `item` with every item into `out` (resized to
    /// [`len`](Self::len)); `out[item]` is the self-similarity (1, or 0 for a zero row).
    /// Useful for blending similarity into dense model scores.
    pub fn similarities(&self, item: usize, out: &mut Vec<f32>) -> Result<()> {
        self.check_item(item)?;
        let mut query = vec![0.0; self.dim];
        self.gather(item, &mut query);
        self.dense(&query, out);
        Ok(())
    }

    /// Writes the cosine similarity of `vector` with every item into `out` (resized to
    /// [`len`](Self::len)). A zero or non-finite vector has similarity 0 with everything.
    pub fn vector_similarities(&self, vector: &[f32], out: &mut Vec<f32>) -> Result<()> {
        self.check_vector(vector)?;
        let mut query = vec![0.0; self.dim];
        normalise_into(vector.iter().copied(), &mut query);
        self.dense(&query, out);
        Ok(())
    }

    fn dense(&self, unit_query: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.n_items.div_ceil(LANES) * LANES, 0.0);
        let stride = out.len();
        self.kernel
            .dots(unit_query, &self.panels, self.dim, out, stride);
        out.truncate(self.n_items);
    }

    /// [`SimilarityIndex::similar`] without allocating: the result replaces the contents of
    /// `out`, and `scratch` holds the working buffers between calls.
    pub fn similar_into(
        &self,
        item: usize,
        k: usize,
        exclude: &dyn Fn(usize) -> bool,
        scratch: &mut QueryScratch,
        out: &mut Vec<Neighbour>,
    ) -> Result<()> {
        self.check_item(item)?;
        scratch.query.resize(self.dim, 0.0);
        self.gather(item, &mut scratch.query);
        self.scan_one(Some(item), k, exclude, scratch, out);
        Ok(())
    }

    /// [`SimilarityIndex::similar_to_vector`] without allocating (see
    /// [`similar_into`](Self::similar_into)). A zero or non-finite vector has similarity 0
    /// with everything, so the answer is the first `k` non-excluded items by index.
    pub fn similar_to_vector_into(
        &self,
        vector: &[f32],
        k: usize,
        exclude: &dyn Fn(usize) -> bool,
        scratch: &mut QueryScratch,
        out: &mut Vec<Neighbour>,
    ) -> Result<()> {
        self.check_vector(vector)?;
        scratch.query.resize(self.dim, 0.0);
        normalise_into(vector.iter().copied(), &mut scratch.query);
        self.scan_one(None, k, exclude, scratch, out);
        Ok(())
    }

    fn scan_one(
        &self,
        self_item: Option<usize>,
        k: usize,
        exclude: &dyn Fn(usize) -> bool,
        scratch: &mut QueryScratch,
        out: &mut Vec<Neighbour>,
    ) {
        out.clear();
        scratch.top.reset(k.min(self.n_items));
        let QueryScratch { top, query, sims } = scratch;
        self.scan_block(
            query,
            &[self_item.unwrap_or(usize::MAX)],
            exclude,
            std::slice::from_mut(top),
            sims,
        );
        top.finish_into(out);
    }

    /// Answers many item queries at once: blocks of queries run in parallel (rayon), and
    /// each block scans the catalogue chunk by chunk through a register-blocked kernel, so
    /// every chunk of item vectors is loaded once per block rather than once per query.
    /// `result[i]` equals `similar(items[i], k, exclude)`.
    pub fn similar_batch(
        &self,
        items: &[usize],
        k: usize,
        exclude: &(dyn Fn(usize) -> bool + Sync),
    ) -> Result<Vec<Vec<Neighbour>>> {
        for &item in items {
            self.check_item(item)?;
        }
        let blocks: Vec<Vec<Vec<Neighbour>>> = items
            .par_chunks(BATCH_BLOCK)
            .map(|block| {
                let mut results = Vec::with_capacity(block.len());
                self.top_k_block(block, k, exclude, |_, top| {
                    let mut out = Vec::with_capacity(k.min(self.n_items));
                    top.finish_into(&mut out);
                    results.push(out);
                });
                results
            })
            .collect();
        Ok(blocks.into_iter().flatten().collect())
    }

    /// Runs the queries `items` (valid indices, never themselves in their results) as one
    /// block and hands each finished selection to `finish(position in block, selection)`.
    pub(crate) fn top_k_block(
        &self,
        items: &[usize],
        k: usize,
        exclude: &dyn Fn(usize) -> bool,
        mut finish: impl FnMut(usize, &mut TopK),
    ) {
        let nq = items.len();
        let mut queries = vec![0.0f32; nq * self.dim];
        if self.dim > 0 {
            for (q, &item) in queries.chunks_exact_mut(self.dim).zip(items) {
                self.gather(item, q);
            }
        }
        let mut tops = vec![TopK::default(); nq];
        for t in &mut tops {
            t.reset(k.min(self.n_items));
        }
        let mut sims = Vec::new();
        self.scan_block(&queries, items, exclude, &mut tops, &mut sims);
        for (q, t) in tops.iter_mut().enumerate() {
            finish(q, t);
        }
    }

    /// The scan shared by every query path: unit `queries` (`self_items.len()` of them,
    /// `dim` floats each) against all items, chunk by chunk; candidates that beat a
    /// selection's threshold (eight at a time by their maximum) are offered to it unless they
    /// are the query item itself or excluded. `exclude` is only called for such candidates.
    pub(crate) fn scan_block(
        &self,
        queries: &[f32],
        self_items: &[usize],
        exclude: &dyn Fn(usize) -> bool,
        tops: &mut [TopK],
        sims: &mut Vec<f32>,
    ) {
        let nq = self_items.len();
        debug_assert_eq!(tops.len(), nq);
        debug_assert_eq!(queries.len(), nq * self.dim);
        if tops.iter().all(TopK::is_closed) {
            return;
        }
        sims.clear();
        sims.resize(nq * CHUNK_ITEMS, 0.0);
        let panel_len = self.dim * LANES;
        let n_panels = self.n_items.div_ceil(LANES);
        let mut first = 0;
        while first < n_panels {
            let last = (first + CHUNK_PANELS).min(n_panels);
            self.kernel.dots(
                queries,
                &self.panels[first * panel_len..last * panel_len],
                self.dim,
                sims,
                CHUNK_ITEMS,
            );
            let base = first * LANES;
            let valid = (last * LANES).min(self.n_items) - base;
            for (q, top) in tops.iter_mut().enumerate() {
                if top.is_closed() {
                    continue;
                }
                let row = &sims[q * CHUNK_ITEMS..q * CHUNK_ITEMS + valid];
                let self_item = self_items[q];
                let offer = |offset: usize, s: f32, top: &mut TopK| {
                    let item = base + offset;
                    if top.admits(s, item as u32) && item != self_item && !exclude(item) {
                        top.push(s, item as u32);
                    }
                };
                let mut eights = row.chunks_exact(LANES);
                for (c, eight) in eights.by_ref().enumerate() {
                    let eight: &[f32; LANES] = eight.try_into().expect("eight floats");
                    if max8(eight) < top.threshold() {
                        continue;
                    }
                    for (l, &s) in eight.iter().enumerate() {
                        offer(c * LANES + l, s, top);
                    }
                }
                let tail_start = row.len() / LANES * LANES;
                for (l, &s) in eights.remainder().iter().enumerate() {
                    offer(tail_start + l, s, top);
                }
            }
            first = last;
        }
    }
}

#[inline(always)]
fn max8(x: &[f32; LANES]) -> f32 {
    #[inline(always)]
    fn m(a: f32, b: f32) -> f32 {
        if a > b {
            a
        } else {
            b
        }
    }
    m(
        m(m(x[0], x[4]), m(x[1], x[5])),
        m(m(x[2], x[6]), m(x[3], x[7])),
    )
}

impl SimilarityIndex for ExactCosine {
    fn len(&self) -> usize {
        self.n_items
    }

    fn similar(
        &self,
        item: usize,
        k: usize,
        exclude: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Neighbour>> {
        let mut out = Vec::with_capacity(k.min(self.n_items));
        self.similar_into(item, k, exclude, &mut QueryScratch::new(), &mut out)?;
        Ok(out)
    }

    fn similar_to_vector(
        &self,
        vector: &[f32],
        k: usize,
        exclude: &dyn Fn(usize) -> bool,
    ) -> Result<Vec<Neighbour>> {
        let mut out = Vec::with_capacity(k.min(self.n_items));
        self.similar_to_vector_into(vector, k, exclude, &mut QueryScratch::new(), &mut out)?;
        Ok(out)
    }

    /// Every item but `item` itself, in index order.
    fn for_each_similarity(&self, item: usize, f: &mut dyn FnMut(usize, f32)) -> Result<()> {
        let mut sims = Vec::new();
        self.similarities(item, &mut sims)?;
        for (j, &s) in sims.iter().enumerate() {
            if j != item {
                f(j, s);
            }
        }
        Ok(())
    }
}
