//! How one side's parameters are laid out in memory: cache-line aligned buffers of rows
//! padded to whole 64-byte lines, and the checks a deserialised side must pass.

use crate::params::Schedule;
use crate::rng::Rng;

use super::shared::{advise_huge_pages, block_floats, block_floats_mut, Bufs, Shared, SideView};

/// A 64-byte aligned block of 16 floats: parameter rows are padded to whole blocks so a row
/// never straddles more cache lines than it must.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
pub(super) struct Block([f32; 16]);

/// A growable, cache-line aligned `f32` buffer.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct AlignedBuf {
    blocks: Vec<Block>,
    len: usize,
}

impl AlignedBuf {
    /// Resizes to `len` values, new ones set to `value`.
    ///
    /// On Linux a buffer of 4 MB or more is advised to use transparent huge pages before it
    /// is first written ([`advise_huge_pages`]): training reads rows of the parameters, the
    /// optimiser state and the scoring table at random, and with 4 KB pages nearly every
    /// such read also misses the TLB, whose page walks (two-dimensional in a virtual
    /// machine) compete with the rows' own cache misses. It is only advice (`madvise`):
    /// where the system has huge pages disabled or none free, nothing changes.
    pub(super) fn resize(&mut self, len: usize, value: f32) {
        let old = self.len;
        let blocks = len.div_ceil(16);
        if blocks > self.blocks.capacity() {
            self.blocks.reserve_exact(blocks - self.blocks.len());
            advise_huge_pages(&mut self.blocks);
        }
        self.blocks.resize(blocks, Block([0.0; 16]));
        self.len = len;
        let s = self.as_mut_slice();
        for v in &mut s[old.min(len)..] {
            *v = value;
        }
    }

    pub fn as_slice(&self) -> &[f32] {
        block_floats(&self.blocks, self.len)
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        block_floats_mut(&mut self.blocks, self.len)
    }
}

/// `vec![value; len]`, advised to use huge pages first (see [`advise_huge_pages`]).
pub(super) fn huge_vec<T: Clone>(len: usize, value: T) -> Vec<T> {
    let mut v = Vec::with_capacity(len);
    advise_huge_pages(&mut v);
    v.resize(len, value);
    v
}

/// Human-readable formats (JSON) get a list of numbers; binary formats (the artifact bundle)
/// get the little-endian bytes in one piece, which decodes with one allocation and one copy
/// instead of a number-by-number, repeatedly growing vector.
impl serde::Serialize for AlignedBuf {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            return self.as_slice().serialize(s);
        }
        let mut bytes = Vec::with_capacity(self.len * 4);
        for v in self.as_slice() {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        s.serialize_bytes(&bytes)
    }
}

impl<'de> serde::Deserialize<'de> for AlignedBuf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Floats;

        impl<'de> serde::de::Visitor<'de> for Floats {
            type Value = AlignedBuf;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of floats or their little-endian bytes")
            }

            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<AlignedBuf, E> {
                if !bytes.len().is_multiple_of(4) {
                    return Err(E::invalid_length(bytes.len(), &"a multiple of 4 bytes"));
                }
                let mut b = AlignedBuf::default();
                b.resize(bytes.len() / 4, 0.0);
                for (v, c) in b.as_mut_slice().iter_mut().zip(bytes.chunks_exact(4)) {
                    *v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
                Ok(b)
            }

            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<AlignedBuf, E> {
                self.visit_bytes(&bytes)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<AlignedBuf, A::Error> {
                let mut v: Vec<f32> = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                let mut b = AlignedBuf::default();
                b.resize(v.len(), 0.0);
                b.as_mut_slice().copy_from_slice(&v);
                Ok(b)
            }
        }

        if d.is_human_readable() {
            d.deserialize_seq(Floats)
        } else {
            d.deserialize_bytes(Floats)
        }
    }
}

/// Parameters of one side of the model (users or items), with optimiser state.
///
/// Row `f` (one feature) holds its `k` embedding values, then its bias, padded to a multiple
/// of 16 floats (`stride`), so fetching a feature's parameters touches the fewest cache lines.
/// The optimiser accumulators use the same layout.
///
/// Training relies on the padding: the 8-wide sums read it (so parameters' padding must be
/// zero) and adagrad's padded step writes zeros into it (so, for adagrad, the accumulators'
/// padding must be positive). A deserialised model checks its sides with
/// [`Side::check_layout`] (both, the buffers' lengths and finiteness), so a hand-made or
/// damaged model file gives an error instead of wrong scores or a panic.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Side {
    k: usize,
    stride: usize,
    n: usize,
    params: AlignedBuf,
    /// Adagrad: running sum of squared gradients (starts at 1). Adadelta: E\[g²\].
    acc: AlignedBuf,
    /// Adadelta only: E\[Δx²\] (empty for adagrad).
    delta: AlignedBuf,
}

impl Side {
    /// LightFM's initialisation: embeddings uniform in `[-0.5, 0.5) / k`, zero biases,
    /// adagrad accumulators at 1 (adadelta's at 0).
    pub fn new(n_features: usize, k: usize, schedule: Schedule, rng: &mut Rng) -> Side {
        let mut s = Side {
            k,
            stride: Side::stride_for(k),
            n: 0,
            params: AlignedBuf::default(),
            acc: AlignedBuf::default(),
            delta: AlignedBuf::default(),
        };
        s.grow(n_features, schedule, rng);
        s
    }

    /// Appends freshly initialised parameters for features `n..n_features`.
    pub fn grow(&mut self, n_features: usize, schedule: Schedule, rng: &mut Rng) {
        let old = self.n;
        if n_features <= old {
            return;
        }
        let (k, stride) = (self.k, self.stride);
        self.params.resize(n_features * stride, 0.0);
        let p = self.params.as_mut_slice();
        for f in old..n_features {
            for c in 0..k {
                p[f * stride + c] = ((rng.next_f64() - 0.5) / k as f64) as f32;
            }
        }
        let (acc0, adadelta) = match schedule {
            Schedule::Adagrad => (1.0, false),
            Schedule::Adadelta { .. } => (0.0, true),
        };
        self.acc.resize(n_features * stride, acc0);
        if adadelta {
            self.delta.resize(n_features * stride, 0.0);
        }
        self.n = n_features;
    }

    pub fn n_features(&self) -> usize {
        self.n
    }

    /// Latent components per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Floats per row for `k` components: the embedding and the bias, padded to whole
    /// 64-byte lines.
    fn stride_for(k: usize) -> usize {
        (k + 1).div_ceil(16) * 16
    }

    /// Row stride and buffer lengths consistent with `k` and `n`; the optimiser state of
    /// `schedule` (adadelta's second buffer exactly when the schedule is adadelta);
    /// parameters finite and their padding zero; optimiser state never NaN or negative;
    /// adagrad accumulators' padding positive and finite. One pass over the buffers.
    pub fn check_layout(&self, schedule: Schedule) -> Result<(), String> {
        let stride = Side::stride_for(self.k);
        if self.stride != stride {
            return Err(format!(
                "parameter rows of {} floats for {} components (expected {stride})",
                self.stride, self.k
            ));
        }
        let len = (self.n.checked_mul(stride)).ok_or("parameter buffer size overflows")?;
        let adagrad = matches!(schedule, Schedule::Adagrad);
        let delta_len = if adagrad { 0 } else { len };
        let lens = [self.params.len, self.acc.len, self.delta.len];
        if lens != [len, len, delta_len] {
            return Err(format!(
                "parameter buffers of {lens:?} floats for {} features × {stride} with {} \
                 (expected {:?})",
                self.n,
                if adagrad { "adagrad" } else { "adadelta" },
                [len, len, delta_len]
            ));
        }
        let (p, a, d) = (
            self.params.as_slice(),
            self.acc.as_slice(),
            self.delta.as_slice(),
        );
        for row in 0..self.n {
            let values = row * stride..row * stride + self.k + 1;
            if let Some(v) = p[values].iter().find(|v| !v.is_finite()) {
                return Err(format!("feature {row}: parameter {v} is not finite"));
            }
            let pad = row * stride + self.k + 1..(row + 1) * stride;
            if p[pad.clone()].iter().any(|&v| v != 0.0) {
                return Err(format!("feature {row}: non-zero parameter padding"));
            }
            if adagrad && a[pad].iter().any(|&v| !(v > 0.0 && v.is_finite())) {
                return Err(format!(
                    "feature {row}: adagrad accumulator padding not positive"
                ));
            }
        }
        if let Some(v) = a.iter().chain(d).find(|&&v| v.is_nan() || v < 0.0) {
            return Err(format!("optimiser state {v} is NaN or negative"));
        }
        Ok(())
    }

    /// Embedding (k values) followed by the bias of feature `f`.
    #[inline]
    pub fn row(&self, f: usize) -> &[f32] {
        &self.params.as_slice()[f * self.stride..f * self.stride + self.k + 1]
    }

    /// `n_features × k` view of the embeddings.
    pub fn embeddings(&self) -> ndarray::ArrayView2<'_, f32> {
        use ndarray::ShapeBuilder;
        let len = if self.n == 0 {
            0
        } else {
            (self.n - 1) * self.stride + self.k
        };
        ndarray::ArrayView2::from_shape(
            (self.n, self.k).strides((self.stride, 1)),
            &self.params.as_slice()[..len],
        )
        .expect("consistent strided layout")
    }

    /// The biases (strided view).
    pub fn biases(&self) -> ndarray::ArrayView1<'_, f32> {
        use ndarray::ShapeBuilder;
        let p = self.params.as_slice();
        let len = if self.n == 0 {
            0
        } else {
            (self.n - 1) * self.stride + 1
        };
        let start = self.k.min(p.len());
        ndarray::ArrayView1::from_shape((self.n,).strides((self.stride,)), &p[start..start + len])
            .expect("consistent strided layout")
    }

    /// The parameter buffer (tests in sibling modules compare and set it).
    #[cfg(test)]
    pub(super) fn params(&mut self) -> &mut AlignedBuf {
        &mut self.params
    }

    /// Floats per row.
    #[cfg(test)]
    pub(super) fn stride(&self) -> usize {
        self.stride
    }

    pub fn all_finite(&self) -> bool {
        (0..self.n).all(|f| self.row(f).iter().all(|v| v.is_finite()))
    }

    pub(super) fn view(&mut self) -> SideView<'_> {
        SideView {
            main: Bufs {
                params: Shared::new(self.params.as_mut_slice()),
                acc: Shared::new(self.acc.as_mut_slice()),
                delta: Shared::new(self.delta.as_mut_slice()),
            },
            hot: Bufs::EMPTY,
            boundary: usize::MAX,
            stride: self.stride,
        }
    }
}

#[cfg(test)]
mod side_tests {
    use super::*;

    /// Sides survive serialisation; damaged padding, strides or lengths are errors.
    #[test]
    fn deserialising_a_side_checks_its_layout() {
        let adadelta = Schedule::Adadelta {
            rho: 0.95,
            epsilon: 1e-6,
        };
        for schedule in [Schedule::Adagrad, adadelta] {
            let side = Side::new(3, 5, schedule, &mut Rng::new(1));
            let json = serde_json::to_value(&side).unwrap();
            let back: Side = serde_json::from_value(json.clone()).unwrap();
            back.check_layout(schedule).unwrap();
            assert_eq!(back, side);
            let damaged = |field: &str, edit: &dyn Fn(&mut serde_json::Value)| {
                let mut j = json.clone();
                edit(&mut j[field]);
                let side: Side = serde_json::from_value(j).unwrap();
                side.check_layout(schedule).unwrap_err()
            };
            // Row 1 holds 5 values and a bias at 16..22; 22..32 is padding.
            let err = damaged("params", &|v| v[22] = 0.5.into());
            assert!(err.contains("non-zero parameter padding"), "{err}");
            let err = damaged("stride", &|v| *v = 32.into());
            assert!(err.contains("expected 16"), "{err}");
            let err = damaged("params", &|v| {
                v.as_array_mut().unwrap().pop();
            });
            assert!(err.contains("parameter buffers"), "{err}");
            let err = damaged("params", &|v| v[17] = f64::MAX.into());
            assert!(
                err.contains("feature 1: parameter inf is not finite"),
                "{err}"
            );
            let err = damaged("acc", &|v| v[3] = (-1.0).into());
            assert!(
                err.contains("optimiser state -1 is NaN or negative"),
                "{err}"
            );
            if matches!(schedule, Schedule::Adagrad) {
                let err = damaged("acc", &|v| v[22] = 0.0.into());
                assert!(err.contains("accumulator padding"), "{err}");
            }
            // The optimiser state must be the schedule's.
            let other = match schedule {
                Schedule::Adagrad => adadelta,
                _ => Schedule::Adagrad,
            };
            let err = back.check_layout(other).unwrap_err();
            assert!(err.contains("parameter buffers"), "{err}");
        }
    }
}

#[cfg(test)]
mod aligned_buf_tests {
    use super::*;

    /// Growing a buffer to megabytes keeps the old values and fills the new ones; shrinking
    /// keeps the prefix; the buffer stays cache-line aligned.
    #[test]
    fn resize_keeps_values_across_large_growth() {
        let mut b = AlignedBuf::default();
        b.resize(10, 1.5);
        b.as_mut_slice()[3] = 7.0;
        b.resize(1 << 20, -2.0);
        let s = b.as_slice();
        assert_eq!(s.len(), 1 << 20);
        assert_eq!(s[3], 7.0);
        assert!(s[..10]
            .iter()
            .enumerate()
            .all(|(i, &v)| v == if i == 3 { 7.0 } else { 1.5 }));
        assert!(s[10..].iter().all(|&v| v == -2.0));
        assert_eq!(s.as_ptr() as usize % 64, 0);
        b.resize(5, 0.0);
        assert_eq!(b.as_slice(), &[1.5, 1.5, 1.5, 7.0, 1.5]);
    }
}
