//! What a training step does to feature rows: sums them into a representation, and applies
//! a gradient to each with adagrad or adadelta.

use crate::params::Schedule;

use super::shared::{adagrad_prefix, avx_available, axpy_row, load_row, store_row, Bufs, SideView};
use super::work::FeatureRows;

/// Scratch rows for [`update_row`].
#[derive(Default)]
pub(super) struct RowBuf {
    pub(super) p: Vec<f32>,
    pub(super) a: Vec<f32>,
    pub(super) d: Vec<f32>,
    /// Gradients padded with zeros to whole vector pieces (`stride` long; see
    /// [`pad_gradient`]).
    pub(super) g: Vec<f32>,
}

/// One adaptive SGD step on the first `grads.len()` parameters of the row at `base` in `side`:
/// embedding, then optionally the bias (then, after [`pad_gradient`], zeros into the row's
/// padding), each gradient scaled by the feature weight `w`.
///
/// Adagrad updates the shared row in registers ([`super::shared::adagrad_prefix`]); adadelta
/// reads it with atomic loads into local buffers, updates them with vectorisable arithmetic
/// and writes them back with atomic stores. Either way the square roots and divisions
/// dominate.
#[inline(always)]
pub(super) fn update_row(
    (side, base): (&Bufs, usize),
    grads: &[f32],
    w: f32,
    opt: &Opt,
    alpha: f32,
    buf: &mut RowBuf,
) {
    let n = grads.len();
    let (prow, arow) = (side.params.row(base, n), side.acc.row(base, n));
    match opt.schedule {
        Schedule::Adagrad => {
            // In registers, eight (AVX) or four at a time, straight from and back to the
            // shared rows; the tail through the buffers (see `pad_gradient` for how callers
            // avoid one).
            let lr = opt.learning_rate;
            let done = adagrad_prefix(prow, arow, grads, w, lr, alpha, opt.avx);
            let (prow, arow, grads) = (&prow[done..], &arow[done..], &grads[done..]);
            if done < n {
                let (p, a) = (&mut buf.p[..n - done], &mut buf.a[..n - done]);
                load_row(prow, p, opt.avx);
                load_row(arow, a, opt.avx);
                adagrad_scalar(p, a, grads, w, opt.learning_rate, alpha);
                store_row(prow, p, opt.avx);
                store_row(arow, a, opt.avx);
            }
        }
        Schedule::Adadelta { rho, epsilon } => {
            let (p, a, d) = (&mut buf.p[..n], &mut buf.a[..n], &mut buf.d[..n]);
            let drow = side.delta.row(base, n);
            load_row(prow, p, opt.avx);
            load_row(arow, a, opt.avx);
            load_row(drow, d, opt.avx);
            for c in 0..n {
                let g = grads[c] * w;
                a[c] = rho * a[c] + (1.0 - rho) * g * g;
                let lr = (d[c] + epsilon).sqrt() / (a[c] + epsilon).sqrt();
                let update = lr * g;
                d[c] = rho * d[c] + (1.0 - rho) * update * update;
                p[c] = (p[c] - update)
                    * if alpha > 0.0 {
                        (1.0 - alpha * lr).max(0.0)
                    } else {
                        1.0
                    };
            }
            store_row(drow, d, opt.avx);
            store_row(prow, p, opt.avx);
            store_row(arow, a, opt.avx);
        }
    }
}

/// The gradient for [`update_row`], zero-padded to whole vector pieces (8 elements with
/// AVX, else 4) when that fits in the rows' `stride` and changes nothing: adagrad, where a
/// zero gradient leaves an accumulator as it is (`a + 0 = a`) and a padding parameter at its
/// zero (`0 - lr·0 = 0`, and with L2 `0 · shrink = 0`), so the step runs into the row's own
/// padding instead of finishing with a scalar tail. Done once per gradient, not once per
/// feature row.
#[inline(always)]
pub(super) fn pad_gradient<'g>(
    grads: &'g [f32],
    stride: usize,
    opt: &Opt,
    padded: &'g mut [f32],
) -> &'g [f32] {
    let n = grads.len();
    let piece = if opt.avx { 8 } else { 4 };
    let len = n.div_ceil(piece) * piece;
    if matches!(opt.schedule, Schedule::Adagrad) && len != n && len <= stride {
        let g = &mut padded[..len];
        g[..n].copy_from_slice(grads);
        g[n..].fill(0.0);
        g
    } else {
        grads
    }
}

/// Adagrad's step on local copies of a row's parameters `p` and accumulators `a` (the
/// element-wise definition; `racy::adagrad` in [`super::shared`] does the same four elements
/// at a time).
#[inline(always)]
pub(super) fn adagrad_scalar(
    p: &mut [f32],
    a: &mut [f32],
    grads: &[f32],
    w: f32,
    lr0: f32,
    alpha: f32,
) {
    for c in 0..p.len() {
        let g = grads[c] * w;
        let lr = lr0 / a[c].sqrt();
        p[c] = if alpha > 0.0 {
            (p[c] - lr * g) * (1.0 - alpha * lr).max(0.0)
        } else {
            p[c] - lr * g
        };
        a[c] += g * g;
    }
}

#[derive(Clone, Copy)]
pub(super) struct Opt {
    schedule: Schedule,
    learning_rate: f32,
    /// The CPU has AVX: adagrad steps and representation sums eight elements at a time
    /// (see [`super::shared::apply`], [`super::shared::repr`]).
    pub(super) avx: bool,
}

impl Opt {
    pub(super) fn new(schedule: Schedule, learning_rate: f32) -> Opt {
        Opt {
            schedule,
            learning_rate,
            avx: avx_available(),
        }
    }
}

/// [`super::shared::repr`]: the representation (k latent values, then the bias) of `row` in
/// `out[..=k]`. With `avx` (the CPU has it) and room in `out` and in the rows' padding,
/// eight elements at a time over whole 8-element pieces: the rows' padding is zero, so the
/// extra elements of `out` receive zeros.
#[inline(always)]
pub(super) fn repr_rows(
    side: &SideView,
    rows: FeatureRows<'_>,
    row: usize,
    k: usize,
    out: &mut [f32],
    avx: bool,
) {
    let wide = (k + 1).div_ceil(8) * 8;
    let n = if avx && wide <= side.stride && wide <= out.len() {
        wide
    } else {
        k + 1
    };
    match rows {
        FeatureRows::Identity => {
            load_row(
                side.main.params.row(row * side.stride, n),
                &mut out[..n],
                avx,
            );
        }
        FeatureRows::Packed(rows) => {
            out[..n].iter_mut().for_each(|v| *v = 0.0);
            for e in rows.row(row) {
                let (b, base) = side.at(e.feature as usize);
                axpy_row(b.params.row(base, n), e.weight, &mut out[..n], avx);
            }
        }
    }
}

/// One optimiser step with gradient `grad` (scaled by each feature's weight) on every
/// feature of `row`.
#[inline(always)]
pub(super) fn apply_rows(
    side: SideView,
    rows: FeatureRows<'_>,
    row: usize,
    grad: &[f32],
    alpha: f32,
    opt: &Opt,
    buf: &mut RowBuf,
) {
    let mut padded = std::mem::take(&mut buf.g);
    let grad = pad_gradient(grad, side.stride, opt, &mut padded);
    match rows {
        FeatureRows::Identity => {
            let at = (&side.main, row * side.stride);
            update_row(at, grad, 1.0, opt, alpha, buf)
        }
        FeatureRows::Packed(rows) => {
            for e in rows.row(row) {
                let at = side.at(e.feature as usize);
                update_row(at, grad, e.weight, opt, alpha, buf);
            }
        }
    }
    buf.g = padded;
}

#[cfg(test)]
mod row_update_tests {
    use super::super::layout::Side;
    use super::super::shared::{repr, Shared};
    use super::super::work::PackedRows;
    use super::*;
    use crate::matrix::FeatureMatrix;
    use proptest::prelude::*;

    proptest! {
        /// The in-register adagrad step (plus its buffered tail) is the element-wise
        /// definition, bit for bit, with and without L2, for every row length and offset,
        /// four elements at a time and (where the CPU has AVX) eight.
        #[test]
        fn adagrad_step_matches_the_definition(
            init in proptest::collection::vec((-1f32..1.0, 1f32..50.0, -3f32..3.0), 1..40),
            offset in 0usize..5,
            w in 0.05f32..2.0,
            lr in 0.001f32..0.2,
            alpha in prop_oneof![Just(0.0f32), 0.001f32..0.5],
        ) {
            for avx in [false, avx_available()] {
                for pad in [false, true] {
                    check_adagrad_step(&init, offset, w, lr, alpha, avx, pad)?;
                }
            }
        }
    }

    fn check_adagrad_step(
        init: &[(f32, f32, f32)],
        offset: usize,
        w: f32,
        lr: f32,
        alpha: f32,
        avx: bool,
        pad: bool,
    ) -> Result<(), TestCaseError> {
        let n = init.len();
        // One row of `stride` elements at `offset` (a multiple of the stride in real
        // rows; any offset here); what follows the row's `n` values is padding.
        let stride = n.div_ceil(16) * 16;
        // Parameters' padding is zero, as in a `Side`; the accumulators' is not.
        let mut params: Vec<f32> = vec![9.0; offset];
        params.extend(init.iter().map(|t| t.0));
        params.resize(offset + stride, 0.0);
        params.resize(offset + stride + 3, 7.0);
        let mut acc: Vec<f32> = vec![9.0; offset];
        acc.extend(init.iter().map(|t| t.1));
        acc.resize(offset + stride + 3, 7.0);
        let grads: Vec<f32> = init.iter().map(|t| t.2).collect();
        let (mut p_ref, mut a_ref) = (
            params[offset..offset + n].to_vec(),
            acc[offset..offset + n].to_vec(),
        );
        adagrad_scalar(&mut p_ref, &mut a_ref, &grads, w, lr, alpha);
        let side = Bufs {
            params: Shared::new(&mut params),
            acc: Shared::new(&mut acc),
            delta: Shared::new(&mut []),
        };
        let opt = Opt {
            schedule: Schedule::Adagrad,
            learning_rate: lr,
            avx,
        };
        let mut buf = RowBuf {
            p: vec![0.0; n],
            a: vec![0.0; n],
            d: vec![0.0; n],
            g: vec![f32::NAN; stride],
        };
        // With `avx`, the eight-wide kernel runs (called, not inlined, from here).
        let mut padded = vec![f32::NAN; stride];
        let grads = if pad {
            pad_gradient(&grads, stride, &opt, &mut padded)
        } else {
            &grads
        };
        update_row((&side, offset), grads, w, &opt, alpha, &mut buf);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&params[offset..offset + n]), bits(&p_ref));
        prop_assert_eq!(bits(&acc[offset..offset + n]), bits(&a_ref));
        prop_assert!(params[..offset]
            .iter()
            .chain(&acc[..offset])
            .all(|&v| v == 9.0));
        // The padding (and beyond) is untouched, whether or not the step used it.
        prop_assert!(params[offset + n..offset + stride]
            .iter()
            .all(|&v| v.to_bits() == 0));
        prop_assert!(params[offset + stride..]
            .iter()
            .chain(&acc[offset + n..])
            .all(|&v| v == 7.0));
        Ok(())
    }

    /// A representation summed eight elements at a time (reading the rows' zero padding)
    /// is the four-at-a-time sum, bit for bit, for identity and packed rows.
    #[test]
    fn representations_are_the_same_at_every_width() {
        let k = 30;
        let mut rng = crate::rng::Rng::new(7);
        let mut side = Side::new(6, k, Schedule::Adagrad, &mut rng);
        let stride = side.stride();
        for (i, p) in side.params().as_mut_slice().iter_mut().enumerate() {
            if i % stride <= k {
                *p = (i as f32 * 0.37).sin();
            }
        }
        let fm = FeatureMatrix::from_rows(
            6,
            vec![vec![(0, 0.25), (3, 0.5), (5, 0.25)], vec![], vec![(4, 1.0)]],
        )
        .unwrap();
        let packed = PackedRows::of(&fm).unwrap();
        let view = side.view();
        for rows in [FeatureRows::Identity, FeatureRows::Packed(&packed)] {
            for r in 0..3 {
                let mut narrow = vec![f32::NAN; view.stride];
                repr_rows(&view, rows, r, k, &mut narrow, false);
                let mut wide = vec![f32::NAN; view.stride];
                repr(&view, rows, r, k, &mut wide, avx_available());
                let bits = |v: &[f32]| v[..=k].iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&narrow), bits(&wide), "row {r}");
                assert!(narrow[..=k].iter().all(|v| v.is_finite()));
            }
        }
    }
}
