//! How one side's parameters are laid out in memory: cache-line aligned buffers of rows
//! padded to whole 64-byte lines, and the checks a deserialised side must pass.

use crate::params::Schedule;
use crate::rng::Rng;
use crate::stored::{F32s, OptimiserRecord, SideRecord};

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

/// Parameters of one side of the model (users or items), with optimiser state.
///
/// Row `f` (one feature) holds its `k` embedding values, then its bias, padded to a multiple
/// of 16 floats (`stride`), so fetching a feature's parameters touches the fewest cache lines.
/// The optimiser accumulators use the same layout.
///
/// Training relies on the padding: the 8-wide sums read it (so parameters' padding must be
/// zero) and adagrad's padded step writes zeros into it (so, for adagrad, the accumulators'
/// padding must be positive). [`Side::check_layout`] checks both, the buffers' lengths and
/// finiteness.
///
/// This layout is never written to a file: [`Side::to_record`] and [`Side::from_record`]
/// convert to and from the saved form ([`crate::stored`]), which has no padding.
///
/// A side loaded without its optimiser state (`trainable` false: `acc` and `delta` empty)
/// predicts but cannot train until [`Side::reset_training_state`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Side {
    k: usize,
    stride: usize,
    n: usize,
    trainable: bool,
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
            trainable: true,
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
        if self.trainable {
            self.grow_training_state(n_features * stride, schedule);
        }
        self.n = n_features;
    }

    /// Sets the embeddings and biases of features `from..` to zero (their optimiser state
    /// is kept).
    pub fn zero_from(&mut self, from: usize) {
        let start = from.min(self.n) * self.stride;
        self.params.as_mut_slice()[start..].fill(0.0);
    }

    /// Fresh optimiser state (adagrad's accumulators at 1, adadelta's at 0) up to `len`
    /// floats, keeping what is there.
    fn grow_training_state(&mut self, len: usize, schedule: Schedule) {
        let (acc0, adadelta) = match schedule {
            Schedule::Adagrad => (1.0, false),
            Schedule::Adadelta { .. } => (0.0, true),
        };
        self.acc.resize(len, acc0);
        if adadelta {
            self.delta.resize(len, 0.0);
        }
    }

    /// Whether the side carries the optimiser state training needs.
    pub fn has_training_state(&self) -> bool {
        self.trainable
    }

    /// Frees the optimiser state (a side for predictions only).
    pub fn drop_training_state(&mut self) {
        self.trainable = false;
        self.acc = AlignedBuf::default();
        self.delta = AlignedBuf::default();
    }

    /// Replaces the optimiser state with a fresh one, as a new model starts with.
    pub fn reset_training_state(&mut self, schedule: Schedule) {
        self.drop_training_state();
        self.trainable = true;
        self.grow_training_state(self.n * self.stride, schedule);
    }

    /// The saved form: parameters without padding, the optimiser state if the side has it.
    pub fn to_record(&self) -> SideRecord {
        let unpad = |buf: &AlignedBuf, range: std::ops::Range<usize>| {
            let b = buf.as_slice();
            F32s(
                (0..self.n)
                    .flat_map(|f| &b[f * self.stride + range.start..f * self.stride + range.end])
                    .copied()
                    .collect(),
            )
        };
        let (emb, bias) = (0..self.k, self.k..self.k + 1);
        let optimiser = self.trainable.then(|| {
            let deltas = |range| {
                if self.delta.len == 0 {
                    F32s::default()
                } else {
                    unpad(&self.delta, range)
                }
            };
            OptimiserRecord {
                embedding_accumulators: unpad(&self.acc, emb.clone()),
                bias_accumulators: unpad(&self.acc, bias.clone()),
                embedding_deltas: deltas(emb.clone()),
                bias_deltas: deltas(bias.clone()),
            }
        });
        SideRecord {
            features: self.n as u64,
            components: self.k as u64,
            embeddings: unpad(&self.params, emb),
            biases: unpad(&self.params, bias),
            optimiser,
        }
    }

    /// The in-memory layout of a saved side, after checking the record's lengths against
    /// its shape and its values (finite parameters, optimiser state neither NaN nor
    /// negative, adadelta's deltas exactly when `schedule` is adadelta). Padding is zero,
    /// adagrad accumulators' padding 1, so the result passes [`Side::check_layout`].
    pub fn from_record(record: &SideRecord, schedule: Schedule) -> Result<Side, String> {
        let adadelta = matches!(schedule, Schedule::Adadelta { .. });
        let (n, k) = record.check_shape(adadelta)?;
        let stride = Side::stride_for(k);
        let len = n
            .checked_mul(stride)
            .ok_or("parameter buffer size overflows")?;
        let pad = |values: &[&F32s], fill: f32| {
            let mut buf = AlignedBuf::default();
            buf.resize(len, fill);
            let b = buf.as_mut_slice();
            for f in 0..n {
                let row = &mut b[f * stride..];
                row[..k].copy_from_slice(&values[0].0[f * k..(f + 1) * k]);
                row[k] = values[1].0[f];
            }
            buf
        };
        let mut side = Side {
            k,
            stride,
            n,
            trainable: record.optimiser.is_some(),
            params: pad(&[&record.embeddings, &record.biases], 0.0),
            acc: AlignedBuf::default(),
            delta: AlignedBuf::default(),
        };
        if let Some(o) = &record.optimiser {
            let acc_pad = if adadelta { 0.0 } else { 1.0 };
            side.acc = pad(&[&o.embedding_accumulators, &o.bias_accumulators], acc_pad);
            if adadelta {
                side.delta = pad(&[&o.embedding_deltas, &o.bias_deltas], 0.0);
            }
        }
        Ok(side)
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
        let (acc_len, delta_len) = match (self.trainable, adagrad) {
            (false, _) => (0, 0),
            (true, true) => (len, 0),
            (true, false) => (len, len),
        };
        let lens = [self.params.len, self.acc.len, self.delta.len];
        if lens != [len, acc_len, delta_len] {
            return Err(format!(
                "parameter buffers of {lens:?} floats for {} features × {stride} with {} \
                 (expected {:?})",
                self.n,
                if adagrad { "adagrad" } else { "adadelta" },
                [len, acc_len, delta_len]
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
            if self.trainable && adagrad && a[pad].iter().any(|&v| !(v > 0.0 && v.is_finite())) {
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

    /// The parameter rows (`stride` floats per feature: the embedding, the bias, zero
    /// padding) and the stride, for in-place edits that keep the layout (the padding must
    /// stay zero).
    pub fn rows_mut(&mut self) -> (&mut [f32], usize) {
        (self.params.as_mut_slice(), self.stride)
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

    /// Sides survive their saved form (with and without optimiser state, through JSON and
    /// postcard); the saved form has no padding; damaged records and layouts are errors.
    #[test]
    fn saved_sides_round_trip_and_damage_is_refused() {
        let adadelta = Schedule::Adadelta {
            rho: 0.95,
            epsilon: 1e-6,
        };
        for schedule in [Schedule::Adagrad, adadelta] {
            let mut side = Side::new(3, 5, schedule, &mut Rng::new(1));
            // Distinct, non-default optimiser state, as after training (padding untouched).
            let values = |f: usize| f * 16..f * 16 + 6;
            for f in 0..3 {
                for i in values(f) {
                    side.acc.as_mut_slice()[i] = 1.0 + i as f32;
                    if !side.delta.as_slice().is_empty() {
                        side.delta.as_mut_slice()[i] = 0.5 + i as f32;
                    }
                }
            }
            side.check_layout(schedule).unwrap();
            let record = side.to_record();
            assert_eq!(record.embeddings.0.len(), 15, "no padding is saved");
            assert_eq!(record.biases.0.len(), 3);
            assert_eq!(&record.embeddings.0[5..10], &side.row(1)[..5]);
            assert_eq!(record.biases.0[1], side.row(1)[5]);
            let json: SideRecord =
                serde_json::from_value(serde_json::to_value(&record).unwrap()).unwrap();
            let bytes: SideRecord =
                postcard::from_bytes(&postcard::to_stdvec(&record).unwrap()).unwrap();
            for back in [json, bytes] {
                let back = Side::from_record(&back, schedule).unwrap();
                back.check_layout(schedule).unwrap();
                assert_eq!(back, side);
            }

            // Without the optimiser state: the parameters only, and it can be reset.
            let mut light = side.clone();
            light.drop_training_state();
            light.check_layout(schedule).unwrap();
            let record = light.to_record();
            assert!(record.optimiser.is_none());
            let back = Side::from_record(&record, schedule).unwrap();
            assert!(!back.has_training_state());
            assert_eq!(back, light);
            let mut reset = back.clone();
            reset.reset_training_state(schedule);
            reset.check_layout(schedule).unwrap();
            let fresh = Side::new(3, 5, schedule, &mut Rng::new(1));
            assert_eq!(reset.params, side.params);
            assert_eq!((&reset.acc, &reset.delta), (&fresh.acc, &fresh.delta));

            let damaged = |edit: &dyn Fn(&mut SideRecord)| {
                let mut r = side.to_record();
                edit(&mut r);
                Side::from_record(&r, schedule).unwrap_err()
            };
            let err = damaged(&|r| {
                r.embeddings.0.pop();
            });
            assert!(
                err.contains("14 embeddings for 3 features × 5 components"),
                "{err}"
            );
            let err = damaged(&|r| r.features = 4);
            assert!(err.contains("expected 20"), "{err}");
            let err = damaged(&|r| r.biases.0[1] = f32::INFINITY);
            assert!(err.contains("parameter inf is not finite"), "{err}");
            let err = damaged(&|r| r.optimiser.as_mut().unwrap().bias_accumulators.0[0] = -1.0);
            assert!(
                err.contains("optimiser state -1 is NaN or negative"),
                "{err}"
            );
            // The optimiser state must be the schedule's.
            let other = match schedule {
                Schedule::Adagrad => adadelta,
                _ => Schedule::Adagrad,
            };
            let err = Side::from_record(&side.to_record(), other).unwrap_err();
            assert!(err.contains("deltas"), "{err}");

            // The in-memory layout is checked too.
            let mut bad = side.clone();
            bad.params.as_mut_slice()[22] = 0.5;
            let err = bad.check_layout(schedule).unwrap_err();
            assert!(err.contains("non-zero parameter padding"), "{err}");
            let err = side.check_layout(other).unwrap_err();
            assert!(err.contains("parameter buffers"), "{err}");
            if matches!(schedule, Schedule::Adagrad) {
                let mut bad = side.clone();
                bad.acc.as_mut_slice()[22] = 0.0;
                let err = bad.check_layout(schedule).unwrap_err();
                assert!(err.contains("accumulator padding"), "{err}");
            }
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
