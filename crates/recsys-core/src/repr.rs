//! Representations: a user's or item's latent vector and bias, and the scoring tables of
//! all items built from them. The shared vocabulary of the model, evaluation, scoring,
//! the certified blend and fold-in.

use std::sync::OnceLock;

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::blend::{certified_top_k, Approx, ExactRows, HalfItems};
use crate::error::{CoreError, Result};

/// A user's (or item's) latent vector and bias: its score with an item is
/// `vector · item.vector + bias + item.bias`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Representation {
    /// Latent vector (`no_components` values).
    pub vector: Array1<f32>,
    /// Bias term.
    pub bias: f32,
}

/// Representations of all items, computed once and cached by the model.
#[derive(Debug, Clone)]
pub struct ItemRepresentations {
    vectors: Array2<f32>,
    biases: Array1<f32>,
    /// Row `i`: the item's vector, its bias, zero padding to a multiple of 8 floats, so one
    /// padded dot product with `[user vector, 1, 0…]` gives vector·vector + item bias.
    packed: Vec<f32>,
    stride: usize,
    /// `1 / ‖vector‖` per item (0 for a zero or non-finite vector).
    inverse_norms: Vec<f32>,
    /// The packed rows transposed in blocks of 8 items (`[component][item in block]`), so a
    /// scan computes 8 items' dot products side by side without horizontal sums.
    blocked: Vec<f32>,
    /// The half-float rows of the certified blend ([`Self::top_k_with_cosine`]), built on
    /// first use or by [`Self::prepare_blend`]; `None` when the values are outside what its
    /// error bound covers.
    half: OnceLock<Option<HalfItems>>,
}

/// Everything else is derived from the vectors and biases.
impl PartialEq for ItemRepresentations {
    fn eq(&self, o: &Self) -> bool {
        self.vectors == o.vectors && self.biases == o.biases
    }
}

/// `1 / ‖v‖` computed in f64 (0 for a zero or non-finite vector).
fn inverse_norm(v: impl Iterator<Item = f32>) -> f32 {
    let norm = v.map(|x| f64::from(x) * f64::from(x)).sum::<f64>().sqrt();
    if norm > 0.0 && norm.is_finite() {
        (1.0 / norm) as f32
    } else {
        0.0
    }
}

impl ItemRepresentations {
    /// Builds the cache from `n_items × k` vectors and `n_items` biases.
    pub fn new(vectors: Array2<f32>, biases: Array1<f32>) -> Result<Self> {
        if vectors.nrows() != biases.len() {
            return Err(CoreError::ShapeMismatch {
                what: "item representation biases vs vectors",
                expected: vectors.nrows(),
                found: biases.len(),
            });
        }
        let k = vectors.ncols();
        let stride = (k + 1).div_ceil(8) * 8;
        let mut packed = vec![0.0; vectors.nrows() * stride];
        for (i, row) in vectors.outer_iter().enumerate() {
            let dst = &mut packed[i * stride..(i + 1) * stride];
            for (d, v) in dst.iter_mut().zip(row.iter()) {
                *d = *v;
            }
            dst[k] = biases[i];
        }
        let inverse_norms = vectors
            .outer_iter()
            .map(|row| inverse_norm(row.iter().copied()))
            .collect();
        let n = vectors.nrows();
        let mut blocked = vec![0.0; n.div_ceil(8) * 8 * stride];
        for (i, row) in packed.chunks_exact(stride).enumerate() {
            let (block, lane) = (i / 8, i % 8);
            for (c, v) in row.iter().enumerate() {
                blocked[(block * stride + c) * 8 + lane] = *v;
            }
        }
        Ok(ItemRepresentations {
            vectors,
            biases,
            packed,
            stride,
            inverse_norms,
            blocked,
            half: OnceLock::new(),
        })
    }

    /// `n_items × k` latent vectors.
    pub fn vectors(&self) -> ArrayView2<'_, f32> {
        self.vectors.view()
    }

    /// Item biases.
    pub fn biases(&self) -> ArrayView1<'_, f32> {
        self.biases.view()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.biases.len()
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.biases.is_empty()
    }

    pub(crate) fn padded_user(&self, user: &Representation) -> Vec<f32> {
        let mut u = vec![0.0; self.stride];
        for (d, v) in u.iter_mut().zip(user.vector.iter()) {
            *d = *v;
        }
        u[self.vectors.ncols()] = 1.0;
        u
    }

    /// Scores every item for a user representation, writing into `out` (resized to `n_items`).
    pub fn score_all(&self, user: &Representation, out: &mut Vec<f32>) {
        let u = self.padded_user(user);
        out.clear();
        out.resize(self.len(), 0.0);
        crate::kernels::score_rows(&self.packed, self.stride, &u, user.bias, out);
    }

    /// Scores every item for `user` plus `weight ×` the cosine similarity of the item with
    /// item `towards` (both as representations), in one pass over the items: the blend of
    /// "what this user likes" and "what resembles the product being viewed". A zero vector
    /// has cosine 0 with everything; cosines are clamped to `[-1, 1]`.
    pub fn score_all_with_cosine(
        &self,
        user: &Representation,
        towards: usize,
        weight: f32,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let d = self.direction(towards)?;
        self.score_all_along(&self.padded_user(user), user.bias, &d, weight, out);
        Ok(())
    }

    /// Like [`Self::score_all_with_cosine`], with the cosine taken against a vector instead
    /// of one of these items (e.g. a product the model was not trained on, represented
    /// from its features). A zero vector has cosine 0 with everything. Fails when `towards`
    /// does not have the items' number of components.
    pub fn score_all_with_cosine_to(
        &self,
        user: &Representation,
        towards: &[f32],
        weight: f32,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let d = self.direction_of(towards)?;
        self.score_all_along(&self.padded_user(user), user.bias, &d, weight, out);
        Ok(())
    }

    /// The one-pass blend over every item for the padded user vector `u` (its last
    /// component multiplies the item biases) with bias `bias`, towards the padded direction
    /// `d` (from [`Self::direction`] or [`Self::direction_of`]).
    fn score_all_along(&self, u: &[f32], bias: f32, d: &[f32], weight: f32, out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.len(), 0.0);
        crate::kernels::score_blocks_with_cosine(
            &self.blocked,
            self.stride,
            self.vectors.ncols() + 1,
            u,
            bias,
            d,
            &self.inverse_norms,
            weight,
            out,
        );
    }

    /// The cosine similarity of every item with `towards` (clamped to `[-1, 1]`; 0 for a
    /// zero vector on either side), written into `out` (resized to `n_items`). Fails when
    /// `towards` does not have the items' number of components.
    pub fn cosine_all(&self, towards: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let d = self.direction_of(towards)?;
        // No user: the kernel's score part is 0 and the bias column is multiplied by 0.
        self.score_all_along(&vec![0.0; self.stride], 0.0, &d, 1.0, out);
        Ok(())
    }

    /// The unit vector of `towards` (zero for a zero or non-finite vector), padded to the
    /// stride.
    fn direction_of(&self, towards: &[f32]) -> Result<Vec<f32>> {
        let k = self.vectors.ncols();
        if towards.len() != k {
            return Err(CoreError::ShapeMismatch {
                what: "vector to compare items with",
                expected: k,
                found: towards.len(),
            });
        }
        let mut d = vec![0.0; self.stride];
        let scale = inverse_norm(towards.iter().copied());
        for (x, v) in d.iter_mut().zip(towards) {
            *x = v * scale;
        }
        Ok(d)
    }

    /// The unit vector of item `towards` (zero for a zero vector), padded to the stride.
    pub(crate) fn direction(&self, towards: usize) -> Result<Vec<f32>> {
        if towards >= self.len() {
            return Err(CoreError::IndexOutOfRange {
                what: "item",
                index: towards,
                len: self.len(),
            });
        }
        let mut d = vec![0.0; self.stride];
        let scale = self.inverse_norms[towards];
        for (x, v) in d.iter_mut().zip(self.vectors.row(towards).iter()) {
            *x = v * scale;
        }
        Ok(d)
    }

    /// The `k` best items of the blend of [`Self::score_all_with_cosine`], best first,
    /// skipping items for which `exclude` is true: exactly what
    /// [`top_k`](crate::top_k)`(scores, k, exclude)` returns over those scores (same items,
    /// order and scores; ties to the lower index), without scoring every item exactly.
    ///
    /// With AVX2, FMA and F16C, a first pass scores every item approximately from a
    /// half-float copy of the rows (half the memory traffic), keeps the items whose score
    /// can still reach the top `k` under a rigorous bound on the approximation error, and
    /// scores those again exactly (the certification is described in the `blend` module
    /// and ARCHITECTURE.md). Other CPUs, and values the bound does not cover (non-finite,
    /// extreme magnitudes), take the plain path. `exclude` is asked only about items that
    /// might enter the top `k`; it must not depend on when it is asked.
    pub fn top_k_with_cosine(
        &self,
        user: &Representation,
        towards: usize,
        weight: f32,
        k: usize,
        exclude: impl Fn(usize) -> bool,
    ) -> Result<Vec<(usize, f32)>> {
        self.top_k_with_cosine_using(Approx::detect(), user, towards, weight, k, exclude)
    }

    /// [`Self::top_k_with_cosine`] with the approximate kernel chosen by the caller (`None`:
    /// the plain f32 path).
    pub(crate) fn top_k_with_cosine_using(
        &self,
        approx: Option<Approx>,
        user: &Representation,
        towards: usize,
        weight: f32,
        k: usize,
        exclude: impl Fn(usize) -> bool,
    ) -> Result<Vec<(usize, f32)>> {
        if let Some(approx) = approx {
            if let Some(top) = self.certified_top_k(approx, user, towards, weight, k, &exclude)? {
                return Ok(top);
            }
        }
        let mut scores = Vec::new();
        self.score_all_with_cosine(user, towards, weight, &mut scores)?;
        Ok(crate::topk::top_k(&scores, k, exclude))
    }

    /// The certified path alone: `None` when the values are outside what its bound covers.
    pub(crate) fn certified_top_k(
        &self,
        approx: Approx,
        user: &Representation,
        towards: usize,
        weight: f32,
        k: usize,
        exclude: impl Fn(usize) -> bool,
    ) -> Result<Option<Vec<(usize, f32)>>> {
        let d = self.direction(towards)?;
        let Some(half) = self.half_items() else {
            return Ok(None);
        };
        let u = self.padded_user(user);
        let rows = ExactRows {
            packed: &self.packed,
            stride: self.stride,
            width: self.vectors.ncols() + 1,
            inverse_norms: &self.inverse_norms,
        };
        Ok(certified_top_k(
            half, &rows, &u, user.bias, &d, weight, k, exclude, approx,
        ))
    }

    /// Builds the half-float rows [`Self::top_k_with_cosine`] uses now (e.g. when a server
    /// loads a model) instead of on its first call. Cheap when already built.
    pub fn prepare_blend(&self) {
        self.half_items();
    }

    pub(crate) fn half_items(&self) -> Option<&HalfItems> {
        self.half
            .get_or_init(|| {
                HalfItems::new(self.vectors.view(), self.biases.view(), &self.inverse_norms)
            })
            .as_ref()
    }

    /// Scores items `range` for a user representation into `out` (`range.len()` values).
    ///
    /// # Panics
    /// If `range` is out of bounds or `out` has the wrong length.
    pub fn score_range(
        &self,
        user: &Representation,
        range: std::ops::Range<usize>,
        out: &mut [f32],
    ) {
        assert_eq!(out.len(), range.len(), "output length must match the range");
        let u = self.padded_user(user);
        let rows = &self.packed[range.start * self.stride..range.end * self.stride];
        crate::kernels::score_rows(rows, self.stride, &u, user.bias, out);
    }

    /// Scores the given items for a user representation.
    pub fn score_items(
        &self,
        user: &Representation,
        items: &[usize],
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let n = self.len();
        let u = self.padded_user(user);
        out.clear();
        for &i in items {
            if i >= n {
                return Err(CoreError::IndexOutOfRange {
                    what: "item",
                    index: i,
                    len: n,
                });
            }
            // The same kernel as `score_all`, so a score never depends on how it was asked for.
            let row = &self.packed[i * self.stride..(i + 1) * self.stride];
            let mut one = [0.0f32];
            crate::kernels::score_rows(row, self.stride, &u, user.bias, &mut one);
            out.push(one[0]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use ndarray::{array, Array2};

    fn items() -> ItemRepresentations {
        // 11 items (a partial block of 8), 3 components, one zero vector (item 4).
        let vectors = Array2::from_shape_fn((11, 3), |(i, c)| {
            if i == 4 {
                0.0
            } else {
                ((i * 7 + c * 3) % 5) as f32 - 1.5
            }
        });
        let biases = (0..11).map(|i| i as f32 * 0.1 - 0.4).collect();
        ItemRepresentations::new(vectors, biases).unwrap()
    }

    /// The obvious reference: dot product over the norms, in f64.
    fn cosine(a: ArrayView1<'_, f32>, b: &[f32]) -> f32 {
        let dot: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum();
        let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        if na == 0.0 || nb == 0.0 {
            0.0
        } else {
            (dot / (na * nb)) as f32
        }
    }

    #[test]
    fn cosine_to_a_vector_matches_the_reference() {
        let reps = items();
        let towards = [0.3, -1.0, 2.0];
        let mut out = Vec::new();
        reps.cosine_all(&towards, &mut out).unwrap();
        assert_eq!(out.len(), 11);
        for (i, &c) in out.iter().enumerate() {
            assert_relative_eq!(c, cosine(reps.vectors().row(i), &towards), epsilon = 1e-6);
        }
        assert_eq!(out[4], 0.0, "a zero item vector has cosine 0");
        reps.cosine_all(&[0.0; 3], &mut out).unwrap();
        assert!(out.iter().all(|&c| c == 0.0), "a zero query has cosine 0");
        assert!(reps.cosine_all(&[1.0, 2.0], &mut out).is_err());
    }

    #[test]
    fn the_blend_towards_an_item_vector_is_the_blend_towards_the_item() {
        let reps = items();
        let user = Representation {
            vector: array![0.5, -0.25, 1.0],
            bias: 0.2,
        };
        let (mut by_index, mut by_vector) = (Vec::new(), Vec::new());
        for p in [0, 3, 10] {
            reps.score_all_with_cosine(&user, p, 0.25, &mut by_index)
                .unwrap();
            let v: Vec<f32> = reps.vectors().row(p).to_vec();
            reps.score_all_with_cosine_to(&user, &v, 0.25, &mut by_vector)
                .unwrap();
            assert_eq!(by_index, by_vector, "towards item {p}");
        }
        // And against the reference: score + weight × cosine.
        let towards = [1.0, 1.0, -0.5];
        let mut scores = Vec::new();
        reps.score_all(&user, &mut scores);
        reps.score_all_with_cosine_to(&user, &towards, 0.25, &mut by_vector)
            .unwrap();
        for i in 0..reps.len() {
            let expected = scores[i] + 0.25 * cosine(reps.vectors().row(i), &towards);
            assert_relative_eq!(by_vector[i], expected, epsilon = 1e-5);
        }
    }
}
