//! Sparse feature matrices (CSR, `f32`), the input that makes the model hybrid.

use serde::{Deserialize, Serialize};
use sprs::{CompressedStorage, CsMat, TriMat};

use crate::error::{CoreError, Result};

/// A sparse `rows × features` matrix in CSR form.
///
/// Row *i* lists the features of user (or item) *i* with their weights. A user's latent
/// representation is the weighted sum of its features' embeddings, exactly as in LightFM.
/// All values are finite; this is checked on construction, and deserialising checks it too,
/// with the CSR structure (row pointers non-decreasing and consistent with the entries,
/// feature indices in range and strictly increasing within each row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FeatureMatrixData")]
pub struct FeatureMatrix {
    csr: CsMat<f32>,
}

/// The serialised form of [`FeatureMatrix`] (as `sprs` writes a `CsMat`), before validation.
#[derive(Deserialize)]
pub(crate) struct FeatureMatrixData {
    csr: CsrData,
}

#[derive(Deserialize)]
struct CsrData {
    storage: CompressedStorage,
    nrows: usize,
    ncols: usize,
    indptr: Vec<usize>,
    indices: Vec<usize>,
    data: Vec<f32>,
}

impl TryFrom<FeatureMatrixData> for FeatureMatrix {
    type Error = CoreError;

    fn try_from(d: FeatureMatrixData) -> Result<Self> {
        let c = d.csr;
        let corrupt = |reason: String| CoreError::Corrupt {
            what: "feature matrix",
            reason,
        };
        if c.storage != CompressedStorage::CSR {
            return Err(corrupt(
                "stored by column (CSC), expected rows (CSR)".into(),
            ));
        }
        // Checked here because `sprs` computes `nrows + 1` unchecked.
        if c.nrows.checked_add(1) != Some(c.indptr.len()) {
            return Err(corrupt(format!(
                "{} row pointers for {} rows",
                c.indptr.len(),
                c.nrows
            )));
        }
        let csr = CsMat::try_new((c.nrows, c.ncols), c.indptr, c.indices, c.data).map_err(
            |(indptr, indices, data, e)| {
                corrupt(format!(
                    "{e} ({} × {} with {} row pointers, {} indices, {} values)",
                    c.nrows,
                    c.ncols,
                    indptr.len(),
                    indices.len(),
                    data.len()
                ))
            },
        )?;
        Self::from_csr(csr)
    }
}

impl FeatureMatrix {
    /// The `n × n` identity: every row has exactly its own feature (pure collaborative filtering).
    pub fn identity(n: usize) -> Self {
        FeatureMatrix {
            csr: CsMat::new((n, n), (0..=n).collect(), (0..n).collect(), vec![1.0; n]),
        }
    }

    /// Wraps a CSR matrix after checking that it is CSR, sorted and finite.
    pub fn from_csr(csr: CsMat<f32>) -> Result<Self> {
        let csr = if csr.is_csr() { csr } else { csr.to_csr() };
        for (position, v) in csr.data().iter().enumerate() {
            if !v.is_finite() {
                return Err(CoreError::NonFinite {
                    what: "feature matrix",
                    position,
                    value: v.to_string(),
                });
            }
        }
        Ok(FeatureMatrix { csr })
    }

    /// Builds a matrix from one list of `(feature, weight)` pairs per row.
    ///
    /// Duplicate features within a row are summed. Every feature index must be `< n_features`.
    pub fn from_rows<R, I>(n_features: usize, rows: R) -> Result<Self>
    where
        R: IntoIterator<Item = I>,
        I: IntoIterator<Item = (usize, f32)>,
    {
        let mut n_rows = 0;
        let mut triplets = Vec::new();
        for (r, row) in rows.into_iter().enumerate() {
            n_rows = r + 1;
            for (f, w) in row {
                if f >= n_features {
                    return Err(CoreError::IndexOutOfRange {
                        what: "feature",
                        index: f,
                        len: n_features,
                    });
                }
                triplets.push((r, f, w));
            }
        }
        let mut tri = TriMat::with_capacity((n_rows, n_features), triplets.len());
        for (r, f, w) in triplets {
            tri.add_triplet(r, f, w);
        }
        Self::from_csr(tri.to_csr())
    }

    /// Number of rows (users or items).
    pub fn n_rows(&self) -> usize {
        self.csr.rows()
    }

    /// Number of features (columns).
    pub fn n_features(&self) -> usize {
        self.csr.cols()
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.csr.nnz()
    }

    /// Feature indices and weights of row `i`.
    ///
    /// # Panics
    /// If `i >= n_rows()`.
    #[inline]
    pub fn row(&self, i: usize) -> (&[usize], &[f32]) {
        let indptr = self.csr.indptr();
        let raw = indptr.raw_storage();
        let (start, end) = (raw[i] - raw[0], raw[i + 1] - raw[0]);
        (
            &self.csr.indices()[start..end],
            &self.csr.data()[start..end],
        )
    }

    /// True when this is the `n × n` identity matrix.
    pub fn is_identity(&self) -> bool {
        self.n_rows() == self.n_features()
            && self.nnz() == self.n_rows()
            && (0..self.n_rows()).all(|i| {
                let (f, w) = self.row(i);
                f == [i] && w == [1.0]
            })
    }

    /// A copy whose rows sum to one in absolute value (LightFM's `normalize=True`).
    /// Empty rows stay empty.
    pub fn normalized_l1(&self) -> Self {
        let mut csr = self.csr.clone();
        let indptr: Vec<usize> = csr.indptr().raw_storage().to_vec();
        let data = csr.data_mut();
        for w in indptr.windows(2) {
            let row = &mut data[w[0] - indptr[0]..w[1] - indptr[0]];
            let norm: f32 = row.iter().map(|v| v.abs()).sum();
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        FeatureMatrix { csr }
    }

    /// The matrix with `extra_rows` empty rows and `extra_features` unused columns appended
    /// (used when new users/items/feature values arrive before an incremental fit).
    pub fn grown(&self, n_rows: usize, n_features: usize) -> Result<Self> {
        if n_rows < self.n_rows() || n_features < self.n_features() {
            return Err(CoreError::ShapeMismatch {
                what: "grown feature matrix (it may only grow)",
                expected: self.n_rows().max(self.n_features()),
                found: n_rows.min(n_features),
            });
        }
        let mut indptr: Vec<usize> = self.csr.indptr().raw_storage().to_vec();
        let last = *indptr.last().unwrap_or(&0);
        indptr.resize(n_rows + 1, last);
        Ok(FeatureMatrix {
            csr: CsMat::new(
                (n_rows, n_features),
                indptr,
                self.csr.indices().to_vec(),
                self.csr.data().to_vec(),
            ),
        })
    }

    /// The underlying `sprs` matrix.
    pub fn as_csr(&self) -> &CsMat<f32> {
        &self.csr
    }

    /// Consumes `self`, returning the underlying `sprs` matrix.
    pub fn into_csr(self) -> CsMat<f32> {
        self.csr
    }
}

/// Puts `(index, weight)` pairs in canonical form: sorted by index (stably) with the weights
/// of a repeated index summed in their original order. Feature rows are stored this way, and
/// fold-in merges its item lists this way.
///
/// ```
/// let mut row = vec![(3, 1.0), (1, 2.0), (3, 0.5)];
/// recsys_core::canonical_row(&mut row);
/// assert_eq!(row, [(1, 2.0), (3, 1.5)]);
/// ```
pub fn canonical_row(row: &mut Vec<(usize, f32)>) {
    row.sort_by_key(|&(i, _)| i);
    row.dedup_by(|later, kept| {
        if later.0 == kept.0 {
            kept.1 += later.1;
            true
        } else {
            false
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_rows() {
        let m = FeatureMatrix::identity(3);
        assert!(m.is_identity());
        assert_eq!(m.row(1), (&[1usize][..], &[1.0f32][..]));
    }

    #[test]
    fn from_rows_sums_duplicates_and_checks_range() {
        let m =
            FeatureMatrix::from_rows(3, vec![vec![(0, 1.0), (0, 2.0)], vec![(2, 0.5)]]).unwrap();
        assert_eq!(m.row(0), (&[0usize][..], &[3.0f32][..]));
        assert_eq!(m.n_rows(), 2);
        assert!(matches!(
            FeatureMatrix::from_rows(2, vec![vec![(2, 1.0)]]),
            Err(CoreError::IndexOutOfRange { index: 2, .. })
        ));
        assert!(matches!(
            FeatureMatrix::from_rows(2, vec![vec![(1, f32::NAN)]]),
            Err(CoreError::NonFinite { .. })
        ));
    }

    #[test]
    fn l1_normalisation() {
        let m = FeatureMatrix::from_rows(3, vec![vec![(0, 1.0), (2, 3.0)], vec![]]).unwrap();
        let n = m.normalized_l1();
        assert_eq!(n.row(0).1, &[0.25, 0.75]);
        assert!(n.row(1).0.is_empty());
    }

    #[test]
    fn grow_appends_empty_rows() {
        let m = FeatureMatrix::identity(2).grown(3, 4).unwrap();
        assert_eq!((m.n_rows(), m.n_features()), (3, 4));
        assert!(m.row(2).0.is_empty());
        assert!(FeatureMatrix::identity(2).grown(1, 2).is_err());
    }
}
