//! The training kernels: LightFM's per-example SGD steps, run Hogwild-style across threads.
//!
//! # Concurrency
//!
//! Threads update the shared parameter arrays without locks (Hogwild!, Recht et al. 2011),
//! exactly as LightFM does. Unlike LightFM's C code we do this without undefined
//! behaviour: during training every access to a parameter goes through a relaxed
//! `AtomicU32` view of the `f32` storage ([`Shared`]), so concurrent reads and writes are
//! races in the algorithmic sense only (an update may be lost), never torn or UB.
//! On x86-64 whole rows move in 16-byte pieces through inline assembly with the same
//! guarantees (see `racy`), so the row loops stay vectorised.
//!
//! The exception are the few *hot* feature rows nearly every step writes (brands, price
//! buckets, demographic values): with several threads each thread trains its own copy of
//! them and merges it into the model under a lock every so often (module `hot`), because
//! under Hogwild their cache lines bounced between the cores on nearly every write.

// Index loops over latent components read more clearly than zipped iterators here.
#![allow(clippy::needless_range_loop)]

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::interactions::Interactions;
use crate::kernels::prefetch_ptr;
use crate::matrix::FeatureMatrix;
use crate::params::{Loss, Schedule};
use crate::rng::Rng;

mod compact;
mod hot;

pub(crate) use hot::HotRows;

/// How many examples ahead the parameters are prefetched.
const AHEAD: usize = 4;

/// Slots of per-example look-ahead state (a power of two above `2 × AHEAD`: BPR's negative
/// is drawn two stages ahead).
const SLOTS: usize = 16;

/// WARP's negative candidates are drawn (and their scoring rows prefetched) this many draws
/// before they are scored: about four examples' worth at five draws per positive.
const CANDIDATES_AHEAD: usize = 24;

/// Capacity of the ring of drawn candidates (at least `CANDIDATES_AHEAD`).
const RING: usize = 32;
const _: () = assert!(RING >= CANDIDATES_AHEAD);

/// WARP's gradient clip (LightFM's `MAX_LOSS`).
const MAX_LOSS: f32 = 10.0;

/// A 64-byte aligned block of 16 floats: parameter rows are padded to whole blocks so a row
/// never straddles more cache lines than it must.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C, align(64))]
struct Block([f32; 16]);

/// A growable, cache-line aligned `f32` buffer.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct AlignedBuf {
    blocks: Vec<Block>,
    len: usize,
}

/// Buffers at least this large ask for transparent huge pages (see [`AlignedBuf::resize`]).
const HUGE_PAGES_FROM: usize = 4 << 20;

impl AlignedBuf {
    /// Resizes to `len` values, new ones set to `value`.
    ///
    /// On Linux a buffer of `HUGE_PAGES_FROM` bytes or more is advised to use transparent
    /// huge pages before it is first written: training reads rows of the parameters, the
    /// optimiser state and the scoring table at random, and with 4 KB pages nearly every
    /// such read also misses the TLB, whose page walks (two-dimensional in a virtual
    /// machine) compete with the rows' own cache misses. It is only advice (`madvise`):
    /// where the system has huge pages disabled or none free, nothing changes.
    fn resize(&mut self, len: usize, value: f32) {
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
        // SAFETY: `Block` is `repr(C)` over `[f32; 16]` with size 64 = 16 × 4, so the blocks
        // are a contiguous run of initialised `f32`s; `len <= 16 × blocks.len()`.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<f32>(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        // SAFETY: as in `as_slice`, and we hold `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<f32>(), self.len) }
    }
}

/// Asks the kernel to back `v`'s allocation with transparent huge pages if it is at least
/// `HUGE_PAGES_FROM` bytes (Linux; elsewhere, and on any error, nothing happens). Call it
/// before the memory is first written: pages already touched stay small.
fn advise_huge_pages<T>(v: &mut Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < HUGE_PAGES_FROM {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let start = v.as_mut_ptr() as usize;
        let (lo, hi) = (start.next_multiple_of(PAGE), (start + bytes) / PAGE * PAGE);
        if hi > lo {
            // SAFETY: `lo..hi` lies inside the vector's allocation, which we own; the advice
            // changes how the pages are backed, never their contents. The result is ignored:
            // huge pages are an optimisation, and the call fails harmlessly where they are
            // unavailable.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
}

/// `vec![value; len]`, advised to use huge pages first (see [`advise_huge_pages`]).
fn huge_vec<T: Clone>(len: usize, value: T) -> Vec<T> {
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
    /// Adagrad: running sum of squared gradients (starts at 1). Adadelta: E[g²].
    acc: AlignedBuf,
    /// Adadelta only: E[Δx²] (empty for adagrad).
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

    pub fn all_finite(&self) -> bool {
        (0..self.n).all(|f| self.row(f).iter().all(|v| v.is_finite()))
    }

    fn view(&mut self) -> SideView {
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

/// A lock-free view of an `f32` slice; every access is a relaxed atomic operation.
#[derive(Clone, Copy)]
struct Shared {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: all accesses through `Shared` are atomic (see `get`/`set`), and the slice it points
// to is mutably borrowed for as long as any `Shared` exists (the borrow of `Side` in `train`).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// A view of nothing.
    const EMPTY: Shared = Shared {
        ptr: std::ptr::NonNull::dangling().as_ptr(),
        len: 0,
    };

    fn new(xs: &mut [f32]) -> Shared {
        Shared {
            ptr: xs.as_mut_ptr(),
            len: xs.len(),
        }
    }

    /// The `n` atomics starting at `base`, bounds-checked once (so the loops over a row have
    /// no per-element checks and can be unrolled).
    #[inline(always)]
    fn row(&self, base: usize, n: usize) -> &[AtomicU32] {
        assert!(
            base <= self.len && n <= self.len - base,
            "parameter row {base}+{n} out of range {}",
            self.len
        );
        // SAFETY: `base..base + n` is in bounds (checked above); `f32` and `AtomicU32` have
        // the same size and alignment; while the view lives, the storage is only accessed
        // atomically, and the storage outlives the view (see the `Send`/`Sync` impls).
        unsafe { std::slice::from_raw_parts(self.ptr.add(base).cast::<AtomicU32>(), n) }
    }
}

/// Parameter rows and their optimiser state, laid out alike (`stride` floats per row).
#[derive(Clone, Copy)]
struct Bufs {
    params: Shared,
    acc: Shared,
    /// Adadelta's E[Δx²] (empty for adagrad).
    delta: Shared,
}

impl Bufs {
    const EMPTY: Bufs = Bufs {
        params: Shared::EMPTY,
        acc: Shared::EMPTY,
        delta: Shared::EMPTY,
    };
}

/// One side's parameters as a training thread sees them: the model's rows, and, in
/// multi-threaded training, the thread's own copies of the hot rows (see [`hot`]), which
/// the packed feature rows address as features `boundary + slot`.
#[derive(Clone, Copy)]
struct SideView {
    main: Bufs,
    hot: Bufs,
    /// The side's number of features (`usize::MAX` without hot rows).
    boundary: usize,
    stride: usize,
}

impl SideView {
    /// Where feature `f`'s row lives: the buffers and the row's first index.
    #[inline(always)]
    fn at(&self, f: usize) -> (&Bufs, usize) {
        if f < self.boundary {
            (&self.main, f * self.stride)
        } else {
            (&self.hot, (f - self.boundary) * self.stride)
        }
    }
}

/// Scratch rows for [`update_row`].
#[derive(Default)]
struct RowBuf {
    p: Vec<f32>,
    a: Vec<f32>,
    d: Vec<f32>,
    /// Gradients padded with zeros to whole vector pieces (`stride` long; see
    /// [`pad_gradient`]).
    g: Vec<f32>,
}

/// One adaptive SGD step on the first `grads.len()` parameters of the row at `base` in `side`:
/// embedding, then optionally the bias (then, after [`pad_gradient`], zeros into the row's
/// padding), each gradient scaled by the feature weight `w`.
///
/// Adagrad updates the shared row in registers ([`racy::adagrad`]); adadelta reads it with
/// atomic loads into local buffers, updates them with vectorisable arithmetic and writes them
/// back with atomic stores. Either way the square roots and divisions dominate.
#[inline(always)]
fn update_row(
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
            let done = if opt.avx {
                // SAFETY: `opt.avx` is set only when the CPU supports AVX.
                unsafe { racy::adagrad_avx(prow, arow, grads, w, lr, alpha) }
            } else {
                racy::adagrad(prow, arow, grads, w, lr, alpha)
            };
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
fn pad_gradient<'g>(
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
/// element-wise definition; [`racy::adagrad`] does the same four elements at a time).
#[inline(always)]
fn adagrad_scalar(p: &mut [f32], a: &mut [f32], grads: &[f32], w: f32, lr0: f32, alpha: f32) {
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

/// Relaxed atomic loads of a parameter row into a local buffer; with `avx` (which the
/// caller guarantees the CPU has) eight elements at a time.
///
/// With `avx` the remainder is done one element at a time, never four: these helpers are
/// inlined into AVX-compiled functions, and on this project's benchmark machine a
/// legacy-SSE instruction after 256-bit AVX code costs about 110 ns (see [`racy`]).
#[inline(always)]
fn load_row(src: &[AtomicU32], dst: &mut [f32], avx: bool) {
    let n = dst.len().min(src.len());
    let done = if avx {
        // SAFETY: `avx` is true only where the CPU supports AVX.
        unsafe { racy::load_avx(src, &mut dst[..n]) }
    } else {
        racy::load(src, &mut dst[..n])
    };
    for (d, s) in dst[done..n].iter_mut().zip(&src[done..]) {
        *d = f32::from_bits(s.load(Ordering::Relaxed));
    }
}

/// Relaxed atomic stores of a local buffer into a parameter row; `avx` as in [`load_row`].
#[inline(always)]
fn store_row(dst: &[AtomicU32], src: &[f32], avx: bool) {
    let n = dst.len().min(src.len());
    let done = if avx {
        // SAFETY: `avx` is true only where the CPU supports AVX.
        unsafe { racy::store_avx(&dst[..n], src) }
    } else {
        racy::store(&dst[..n], src)
    };
    for (d, s) in dst[done..n].iter().zip(&src[done..]) {
        d.store(s.to_bits(), Ordering::Relaxed);
    }
}

/// `out += w × row`, the row read with relaxed atomic loads; `avx` as in [`load_row`].
#[inline(always)]
fn axpy_row(src: &[AtomicU32], w: f32, out: &mut [f32], avx: bool) {
    let n = out.len().min(src.len());
    let done = if avx {
        // SAFETY: `avx` is true only where the CPU supports AVX.
        unsafe { racy::axpy_avx(src, w, &mut out[..n]) }
    } else {
        racy::axpy(src, w, &mut out[..n])
    };
    for (o, s) in out[done..n].iter_mut().zip(&src[done..]) {
        *o += w * f32::from_bits(s.load(Ordering::Relaxed));
    }
}

/// Vector-width access to shared parameter rows.
///
/// Relaxed `AtomicU32` operations are sound for Hogwild but the compiler must emit them one
/// element at a time, which made every row copy and every optimiser step scalar (a quarter of
/// a hybrid epoch went into those loops). On x86-64 the rows are therefore moved in 16-byte
/// pieces by inline assembly (`movups`, SSE2, part of the x86-64 baseline). An `asm!` block is
/// opaque to the compiler, so it cannot be the data race of the Rust memory model that a plain
/// racing load or store would be, and on x86-64 each aligned 4-byte element of a vector access
/// is read or written as one indivisible unit: the block does exactly what four relaxed
/// atomic accesses would do, in one instruction. The arithmetic happens on local buffers, in
/// the same order as the scalar code, so results are bit-identical to it.
///
/// Each function handles a prefix of whole 4-element pieces (`*_avx`: 8-element pieces, VEX
/// `vmovups`) and returns its length; callers finish the tail with atomics. Elsewhere than
/// x86-64 the prefix is empty.
///
/// The 4-element pieces are legacy SSE (non-VEX) instructions, and they must not run inside
/// AVX-compiled code (`repr_avx`, `apply_rows_avx`) once 256-bit instructions have run there:
/// on the benchmark machine each such switch costs about 110 ns (a one-off C probe: 1.9 ns
/// per loop iteration of 256-bit adds, 111 ns with one legacy `movups` in the loop, 1.9 ns
/// with `vmovups`), which made a 5-element tail after the 8-wide pieces cost more than the
/// rest of the row. So with `avx` the row helpers use only the `*_avx` pieces and then
/// single elements.
mod racy {
    use std::sync::atomic::AtomicU32;

    #[cfg(target_arch = "x86_64")]
    use std::arch::{
        asm,
        x86_64::{__m128, _mm_add_ps, _mm_loadu_ps, _mm_mul_ps, _mm_set1_ps, _mm_storeu_ps},
    };

    /// Four elements of shared memory at `p`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn get4(p: &[AtomicU32]) -> __m128 {
        assert!(p.len() >= 4);
        let v: __m128;
        // SAFETY: `p` holds at least 4 elements (checked); `movups` has no alignment
        // requirement; see the module documentation for why this is not a data race.
        unsafe {
            asm!("movups {v}, [{p}]", p = in(reg) p.as_ptr(), v = out(xmm_reg) v,
                 options(nostack, preserves_flags, readonly));
        }
        v
    }

    /// Writes four elements of shared memory at `p`.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn put4(p: &[AtomicU32], v: __m128) {
        assert!(p.len() >= 4);
        // SAFETY: as in `get4`; the memory is `AtomicU32`, which permits writes through a
        // shared reference.
        unsafe {
            asm!("movups [{p}], {v}", p = in(reg) p.as_ptr(), v = in(xmm_reg) v,
                 options(nostack, preserves_flags));
        }
    }

    /// `dst[..m] = src[..m]` for the largest `m ≤ dst.len()` that is a multiple of 4.
    #[inline(always)]
    pub(super) fn load(src: &[AtomicU32], dst: &mut [f32]) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            let m = dst.len().min(src.len()) / 4 * 4;
            for (d, s) in dst[..m].chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                // SAFETY: `d` has 4 elements.
                unsafe { _mm_storeu_ps(d.as_mut_ptr(), get4(s)) }
            }
            m
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (src, dst);
            0
        }
    }

    /// `dst[..m] = src[..m]` for the largest `m ≤ dst.len()` that is a multiple of 4.
    #[inline(always)]
    pub(super) fn store(dst: &[AtomicU32], src: &[f32]) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            let m = dst.len().min(src.len()) / 4 * 4;
            for (d, s) in dst[..m].chunks_exact(4).zip(src.chunks_exact(4)) {
                // SAFETY: `s` has 4 elements.
                put4(d, unsafe { _mm_loadu_ps(s.as_ptr()) })
            }
            m
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (src, dst);
            0
        }
    }

    /// Adagrad's step ([`super::adagrad_scalar`], the same operations in the same order) on
    /// the first `m` elements of a shared row, `m` the largest multiple of 4 `≤ grads.len()`;
    /// returns `m`.
    #[inline(always)]
    pub(super) fn adagrad(
        prow: &[AtomicU32],
        arow: &[AtomicU32],
        grads: &[f32],
        w: f32,
        lr0: f32,
        alpha: f32,
    ) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{
                _mm_div_ps, _mm_max_ps, _mm_setzero_ps, _mm_sqrt_ps, _mm_sub_ps,
            };
            let m = grads.len().min(prow.len()).min(arow.len()) / 4 * 4;
            // SAFETY: SSE is part of the x86-64 baseline; every chunk has 4 elements.
            unsafe {
                let (wv, lr0v) = (_mm_set1_ps(w), _mm_set1_ps(lr0));
                let (alphav, one, zero) = (_mm_set1_ps(alpha), _mm_set1_ps(1.0), _mm_setzero_ps());
                for ((pc, ac), gc) in prow[..m]
                    .chunks_exact(4)
                    .zip(arow.chunks_exact(4))
                    .zip(grads.chunks_exact(4))
                {
                    let (p, a) = (get4(pc), get4(ac));
                    let g = _mm_mul_ps(_mm_loadu_ps(gc.as_ptr()), wv);
                    let lr = _mm_div_ps(lr0v, _mm_sqrt_ps(a));
                    let mut p = _mm_sub_ps(p, _mm_mul_ps(lr, g));
                    if alpha > 0.0 {
                        let shrink = _mm_max_ps(_mm_sub_ps(one, _mm_mul_ps(alphav, lr)), zero);
                        p = _mm_mul_ps(p, shrink);
                    }
                    put4(pc, p);
                    put4(ac, _mm_add_ps(a, _mm_mul_ps(g, g)));
                }
            }
            m
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (prow, arow, grads, w, lr0, alpha);
            0
        }
    }

    /// Eight elements of shared memory at `p` (AVX).
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    #[inline]
    unsafe fn get8(p: &[AtomicU32]) -> std::arch::x86_64::__m256 {
        assert!(p.len() >= 8);
        let v: std::arch::x86_64::__m256;
        // SAFETY: `p` holds at least 8 elements (checked); `vmovups` has no alignment
        // requirement; as with `get4`, every aligned 4-byte element is read as one unit.
        unsafe {
            asm!("vmovups {v}, [{p}]", p = in(reg) p.as_ptr(), v = out(ymm_reg) v,
                 options(nostack, preserves_flags, readonly));
        }
        v
    }

    /// Writes eight elements of shared memory at `p` (AVX).
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    #[inline]
    unsafe fn put8(p: &[AtomicU32], v: std::arch::x86_64::__m256) {
        assert!(p.len() >= 8);
        // SAFETY: as in `get8`; the memory is `AtomicU32`, which permits writes through a
        // shared reference.
        unsafe {
            asm!("vmovups [{p}], {v}", p = in(reg) p.as_ptr(), v = in(ymm_reg) v,
                 options(nostack, preserves_flags));
        }
    }

    /// [`adagrad`] eight elements at a time: the same operations in the same order (square
    /// root and division are correctly rounded at every width), so the same results, with
    /// half the instructions on the divider, which bounds the hybrid models' updates. Handles
    /// the largest multiple of 8 `≤ grads.len()` and returns it.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) unsafe fn adagrad_avx(
        prow: &[AtomicU32],
        arow: &[AtomicU32],
        grads: &[f32],
        w: f32,
        lr0: f32,
        alpha: f32,
    ) -> usize {
        use std::arch::x86_64::{
            _mm256_add_ps, _mm256_div_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_mul_ps,
            _mm256_set1_ps, _mm256_setzero_ps, _mm256_sqrt_ps, _mm256_sub_ps,
        };
        let m = grads.len().min(prow.len()).min(arow.len()) / 8 * 8;
        let (wv, lr0v) = (_mm256_set1_ps(w), _mm256_set1_ps(lr0));
        let (alphav, one, zero) = (
            _mm256_set1_ps(alpha),
            _mm256_set1_ps(1.0),
            _mm256_setzero_ps(),
        );
        for ((pc, ac), gc) in prow[..m]
            .chunks_exact(8)
            .zip(arow.chunks_exact(8))
            .zip(grads.chunks_exact(8))
        {
            // SAFETY: AVX is available (the caller's contract); every chunk has 8 elements.
            unsafe {
                let (p, a) = (get8(pc), get8(ac));
                let g = _mm256_mul_ps(_mm256_loadu_ps(gc.as_ptr()), wv);
                let lr = _mm256_div_ps(lr0v, _mm256_sqrt_ps(a));
                let mut p = _mm256_sub_ps(p, _mm256_mul_ps(lr, g));
                if alpha > 0.0 {
                    let shrink = _mm256_max_ps(_mm256_sub_ps(one, _mm256_mul_ps(alphav, lr)), zero);
                    p = _mm256_mul_ps(p, shrink);
                }
                put8(pc, p);
                put8(ac, _mm256_add_ps(a, _mm256_mul_ps(g, g)));
            }
        }
        m
    }

    /// [`axpy`] eight elements at a time (the same arithmetic, so the same results):
    /// `out[..m] += w × src[..m]` for the largest `m ≤ out.len()` that is a multiple of 8.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) unsafe fn axpy_avx(src: &[AtomicU32], w: f32, out: &mut [f32]) -> usize {
        use std::arch::x86_64::{
            _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_storeu_ps,
        };
        let m = out.len().min(src.len()) / 8 * 8;
        let wv = _mm256_set1_ps(w);
        for (o, s) in out[..m].chunks_exact_mut(8).zip(src.chunks_exact(8)) {
            // SAFETY: AVX is available (the caller's contract); every `o` has 8 elements.
            unsafe {
                let sum = _mm256_add_ps(_mm256_loadu_ps(o.as_ptr()), _mm256_mul_ps(wv, get8(s)));
                _mm256_storeu_ps(o.as_mut_ptr(), sum);
            }
        }
        m
    }

    /// [`load`] eight elements at a time: `dst[..m] = src[..m]` for the largest
    /// `m ≤ dst.len()` that is a multiple of 8.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) unsafe fn load_avx(src: &[AtomicU32], dst: &mut [f32]) -> usize {
        let m = dst.len().min(src.len()) / 8 * 8;
        for (d, s) in dst[..m].chunks_exact_mut(8).zip(src.chunks_exact(8)) {
            // SAFETY: AVX is available (the caller's contract); every `d` has 8 elements.
            unsafe { std::arch::x86_64::_mm256_storeu_ps(d.as_mut_ptr(), get8(s)) }
        }
        m
    }

    /// [`store`] eight elements at a time: `dst[..m] = src[..m]` for the largest
    /// `m ≤ src.len()` that is a multiple of 8.
    ///
    /// # Safety
    /// The CPU must support AVX.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    #[inline]
    pub(super) unsafe fn store_avx(dst: &[AtomicU32], src: &[f32]) -> usize {
        let m = dst.len().min(src.len()) / 8 * 8;
        for (d, s) in dst[..m].chunks_exact(8).zip(src.chunks_exact(8)) {
            // SAFETY: AVX is available (the caller's contract); every `s` has 8 elements.
            unsafe { put8(d, std::arch::x86_64::_mm256_loadu_ps(s.as_ptr())) }
        }
        m
    }

    // Elsewhere than x86-64 there is no AVX and `avx` is always false: empty prefixes.
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn load_avx(_: &[AtomicU32], _: &mut [f32]) -> usize {
        0
    }
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn store_avx(_: &[AtomicU32], _: &[f32]) -> usize {
        0
    }
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn axpy_avx(_: &[AtomicU32], _: f32, _: &mut [f32]) -> usize {
        0
    }
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn adagrad_avx(
        _: &[AtomicU32],
        _: &[AtomicU32],
        _: &[f32],
        _: f32,
        _: f32,
        _: f32,
    ) -> usize {
        0
    }

    /// `out[..m] += w × src[..m]` (multiply, then add: no fused rounding) for the largest
    /// `m ≤ out.len()` that is a multiple of 4.
    #[inline(always)]
    pub(super) fn axpy(src: &[AtomicU32], w: f32, out: &mut [f32]) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            let m = out.len().min(src.len()) / 4 * 4;
            // SAFETY: SSE is part of the x86-64 baseline; every `o` has 4 elements.
            unsafe {
                let wv = _mm_set1_ps(w);
                for (o, s) in out[..m].chunks_exact_mut(4).zip(src.chunks_exact(4)) {
                    let sum = _mm_add_ps(_mm_loadu_ps(o.as_ptr()), _mm_mul_ps(wv, get4(s)));
                    _mm_storeu_ps(o.as_mut_ptr(), sum);
                }
            }
            m
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (src, w, out);
            0
        }
    }
}

#[derive(Clone, Copy)]
struct Opt {
    schedule: Schedule,
    learning_rate: f32,
    /// The CPU has AVX: adagrad steps and representation sums eight elements at a time
    /// (see [`apply_rows_avx`], [`repr_avx`]).
    avx: bool,
}

impl Opt {
    fn new(schedule: Schedule, learning_rate: f32) -> Opt {
        Opt {
            schedule,
            learning_rate,
            avx: avx_available(),
        }
    }
}

/// Whether this CPU has AVX (checked once per worker or build, then carried as a flag).
fn avx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// "Is this item one of the user's training positives?", asked once per sampled negative.
///
/// One small open-addressing hash table per user (item ids as `u32`, twice as many slots as
/// the user has items, all tables in one array: about 8 bytes per training pair, so it stays
/// in cache). A lookup reads one cache line (BPR prefetches it with the negative's
/// parameters); a binary search in a heavy user's sorted item list would be a chain of
/// dependent cache misses.
///
/// WARP asks only about the candidate that violates the margin (as LightFM does), but which
/// one that is is known only once it is scored, too late to prefetch its slot; prefetching
/// every candidate's slot costs a cache line each from a table of several megabytes. So each
/// user also has a small Bloom filter (8 bits per item, two bits per item in one 64-byte
/// block, under 1 MB in all, so it mostly stays in cache): "not in the filter" is a sure no,
/// and only a "maybe" (the few violators that are positives, plus about 5 % false alarms)
/// reads the table.
pub(crate) struct PairSet {
    /// Start of each user's table in `slots`, and its length (`offsets[u]..offsets[u + 1]`).
    offsets: Vec<usize>,
    slots: Vec<u32>,
    /// Start of each user's filter in `blocks` (`block_offsets[u]..block_offsets[u + 1]`).
    block_offsets: Vec<u32>,
    blocks: Vec<FilterBlock>,
    /// Some user's positives are every item (see [`Self::some_user_has_every_item`]).
    saturated: bool,
}

/// 512 filter bits, one cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct FilterBlock([u64; 8]);

const EMPTY: u32 = u32::MAX;

impl PairSet {
    pub fn new(x: &Interactions) -> PairSet {
        let mut offsets = Vec::with_capacity(x.n_users() + 1);
        offsets.push(0);
        for u in 0..x.n_users() {
            let n = x.user_items(u).len();
            let cap = if n == 0 { 0 } else { 2 * n + 1 };
            offsets.push(offsets[u] + cap);
        }
        let mut block_offsets = Vec::with_capacity(x.n_users() + 1);
        block_offsets.push(0u32);
        for u in 0..x.n_users() {
            // 8 bits per item: one 512-bit block per 64 items.
            let blocks = x.user_items(u).len().div_ceil(64) as u32;
            block_offsets.push(block_offsets[u] + blocks);
        }
        let n_blocks = block_offsets[x.n_users()] as usize;
        let saturated = (0..x.n_users()).any(|u| x.user_items(u).len() >= x.n_items());
        let mut set = PairSet {
            // Read at random during training: huge pages spare the TLB (as `AlignedBuf`).
            slots: huge_vec(offsets[x.n_users()], EMPTY),
            offsets,
            block_offsets,
            blocks: vec![FilterBlock([0; 8]); n_blocks],
            saturated,
        };
        for u in 0..x.n_users() {
            for &i in x.user_items(u) {
                let (start, cap) = set.table(u);
                let mut s = Self::home(i, cap);
                while set.slots[start + s] != EMPTY {
                    s = if s + 1 == cap { 0 } else { s + 1 };
                }
                set.slots[start + s] = i;
                if let Some((b, bit1, bit2)) = set.filter_bits(u, i) {
                    let block = &mut set.blocks[b].0;
                    block[bit1 / 64] |= 1 << (bit1 % 64);
                    block[bit2 / 64] |= 1 << (bit2 % 64);
                }
            }
        }
        set
    }

    /// Whether some user's training positives are every item (WARP has no negative for
    /// such a user; computed once, so the search asks per example only when it is true).
    pub fn some_user_has_every_item(&self) -> bool {
        self.saturated
    }

    /// The filter block of `(user, item)` and the two bits (0..512) it sets there; `None`
    /// for a user without items.
    #[inline(always)]
    fn filter_bits(&self, user: usize, item: u32) -> Option<(usize, usize, usize)> {
        let (start, n) = self.filter(user);
        if n == 0 {
            return None;
        }
        let h = (item as u64 ^ 0x5851_F42D_4C95_7F2D).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let b = start + (((h >> 32) * n as u64) >> 32) as usize;
        Some((b, (h & 511) as usize, ((h >> 9) & 511) as usize))
    }

    /// Starts loading `user`'s filter, at most its first `max_blocks` blocks (one cache
    /// line each; a user with 281 items, the average here, has 5).
    #[inline(always)]
    pub fn prefetch_filter(&self, user: usize, max_blocks: usize) {
        let (start, n) = self.filter(user);
        for b in &self.blocks[start..start + n.min(max_blocks)] {
            prefetch_ptr((b as *const FilterBlock).cast());
        }
    }

    /// `false` only if `item` is surely not one of `user`'s positives ([`Self::contains`]
    /// is the exact answer).
    #[inline(always)]
    pub fn maybe_contains(&self, user: usize, item: usize) -> bool {
        match self.filter_bits(user, item as u32) {
            None => false,
            Some((b, bit1, bit2)) => {
                let block = &self.blocks[b].0;
                (block[bit1 / 64] >> (bit1 % 64)) & (block[bit2 / 64] >> (bit2 % 64)) & 1 == 1
            }
        }
    }

    /// Where `user`'s filter starts in `blocks`, and its length in blocks.
    #[inline(always)]
    fn filter(&self, user: usize) -> (usize, usize) {
        let start = self.block_offsets[user] as usize;
        (start, self.block_offsets[user + 1] as usize - start)
    }

    #[inline(always)]
    fn table(&self, user: usize) -> (usize, usize) {
        let start = self.offsets[user];
        (start, self.offsets[user + 1] - start)
    }

    /// Multiply-shift hash mapped onto `0..cap` (Lemire's fast range).
    #[inline(always)]
    fn home(item: u32, cap: usize) -> usize {
        let h = (item as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        ((h * cap as u64) >> 32) as usize
    }

    #[inline(always)]
    pub fn contains(&self, user: usize, item: usize) -> bool {
        let (start, cap) = self.table(user);
        if cap == 0 {
            return false;
        }
        let item = item as u32;
        let mut s = Self::home(item, cap);
        loop {
            let v = self.slots[start + s];
            if v == item {
                return true;
            }
            if v == EMPTY {
                return false;
            }
            s = if s + 1 == cap { 0 } else { s + 1 };
        }
    }

    #[inline(always)]
    pub fn prefetch(&self, user: usize, item: usize) {
        let (start, cap) = self.table(user);
        if cap > 0 {
            let s = start + Self::home(item as u32, cap);
            prefetch_ptr((&self.slots[s] as *const u32).cast());
        }
    }
}

#[cfg(test)]
mod pair_set_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn answers_exactly_like_the_interactions(pairs in proptest::collection::vec((0usize..20, 0usize..300), 0..400)) {
            let x = Interactions::from_pairs(20, 300, pairs).unwrap();
            let set = PairSet::new(&x);
            for u in 0..20 {
                for i in 0..300 {
                    prop_assert_eq!(set.contains(u, i), x.contains(u, i), "user {} item {}", u, i);
                    if x.contains(u, i) {
                        prop_assert!(set.maybe_contains(u, i), "filter misses user {} item {}", u, i);
                    }
                }
            }
        }
    }
}

/// Everything a worker thread needs.
pub(crate) struct Trainer<'a> {
    pub k: usize,
    pub loss: Loss,
    pub schedule: Schedule,
    pub learning_rate: f32,
    pub user_alpha: f32,
    pub item_alpha: f32,
    pub max_sampled: usize,
    pub user_rows: FeatureRows<'a>,
    /// The items' feature rows: one per item, or, with `item_class`, one per class.
    pub item_rows: FeatureRows<'a>,
    /// Items whose feature rows are identical (item metadata without an identity feature)
    /// have the same representation, so training keeps one row per class of them: the class
    /// of each item, or `None` when every item is its own row (see [`PackedRows::classes`]).
    pub item_class: Option<&'a [u32]>,
    pub interactions: &'a Interactions,
    /// The training pairs, for the ranking losses' negative sampling.
    pub positives: &'a PairSet,
    /// Multi-threaded training: the hot user and item features, which each thread updates
    /// in its own copy (see [`hot`]).
    pub user_hot: Option<&'a HotRows>,
    pub item_hot: Option<&'a HotRows>,
}

/// Item `item`'s feature row: its class under `item_class` (see [`Trainer::item_class`]),
/// else the item itself.
#[inline(always)]
fn item_row(item_class: Option<&[u32]>, item: usize) -> usize {
    match item_class {
        Some(class) => class[item] as usize,
        None => item,
    }
}

impl Trainer<'_> {
    /// Item `item`'s feature row (see [`Self::item_class`]).
    #[inline(always)]
    fn item_row(&self, item: usize) -> usize {
        item_row(self.item_class, item)
    }

    /// Number of item feature rows (items, or classes of them).
    fn n_item_rows(&self) -> usize {
        match self.item_rows {
            FeatureRows::Packed(rows) if self.item_class.is_some() => rows.n_rows(),
            _ => self.interactions.n_items(),
        }
    }
}

/// One training example: 16 bytes, so the hot loop reads the epoch's examples sequentially
/// from one array (see [`Work`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Example {
    user: u32,
    /// The item's feature row: the item itself, or its class (see [`Trainer::item_class`]).
    /// Training never needs the positive's id, only its features.
    item: u32,
    value: f32,
    weight: f32,
}

impl Example {
    /// Every interaction of `x` as an example, in `x`'s order (huge pages when large: the
    /// epoch's shuffle swaps entries at random), its item as the feature row `item_class`
    /// maps it to (if any).
    pub fn all(x: &Interactions, item_class: Option<&[u32]>) -> Vec<Example> {
        let mut v = Vec::with_capacity(x.len());
        advise_huge_pages(&mut v);
        v.extend((0..x.len()).map(|e| Example {
            user: x.users_raw()[e],
            item: item_row(item_class, x.items_raw()[e] as usize) as u32,
            value: x.values_raw()[e],
            weight: x.weights_raw()[e],
        }));
        v
    }
}

/// What an epoch trains on, in (shuffled) order: the examples themselves, or WARP-kOS's
/// users, one entry per interaction (as LightFM's `fit_warp_kos`, which steps once for each
/// interaction's user, so users are drawn in proportion to their interactions).
///
/// The examples are shuffled in place from one epoch to the next with the same swaps as a
/// list of their indices would be, so training sees the same sequence as gathering
/// `x[order[j]]` every epoch, without the gather: four random reads per example (user, item,
/// value and weight live in separate arrays), about 20 ms of a 0.3 s epoch.
#[derive(Clone, Copy)]
pub(crate) enum Work<'a> {
    Examples(&'a [Example]),
    Users(&'a [u32]),
}

impl Work<'_> {
    fn len(&self) -> usize {
        match self {
            Work::Examples(e) => e.len(),
            Work::Users(u) => u.len(),
        }
    }
}

/// The owned list behind a [`Work`], kept across epochs and shuffled before each.
pub(crate) enum WorkList {
    Examples(Vec<Example>),
    Users(Vec<u32>),
}

impl WorkList {
    /// WARP-kOS: the user of every interaction; any other loss: every interaction; both in
    /// `x`'s order (see [`Example::all`] for `item_class`).
    pub fn new(loss: Loss, x: &Interactions, item_class: Option<&[u32]>) -> WorkList {
        match loss {
            Loss::WarpKos { .. } => {
                let mut users = Vec::with_capacity(x.len());
                advise_huge_pages(&mut users);
                users.extend_from_slice(x.users_raw());
                WorkList::Users(users)
            }
            _ => WorkList::Examples(Example::all(x, item_class)),
        }
    }

    /// Fisher–Yates in place ([`Rng::shuffle`]): the permutation depends only on the length
    /// and `rng`.
    pub fn shuffle(&mut self, rng: &mut Rng) {
        match self {
            WorkList::Examples(e) => rng.shuffle(e),
            WorkList::Users(u) => rng.shuffle(u),
        }
    }

    pub fn view(&self) -> Work<'_> {
        match self {
            WorkList::Examples(e) => Work::Examples(e),
            WorkList::Users(u) => Work::Users(u),
        }
    }
}

/// Per-thread running totals of the loss estimate.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LossTally {
    pub sum: f64,
    pub count: u64,
}

impl LossTally {
    pub fn merge(self, o: LossTally) -> LossTally {
        LossTally {
            sum: self.sum + o.sum,
            count: self.count + o.count,
        }
    }
}

struct Worker<'a> {
    t: &'a Trainer<'a>,
    users: SideView,
    items: SideView,
    /// The feature rows as this thread addresses them (hot features as slots of its copies).
    user_rows: FeatureRows<'a>,
    item_rows: FeatureRows<'a>,
    /// This thread's copies of the hot rows (multi-threaded training; they merge into
    /// `users.main` / `items.main`), and the lock merges take.
    hot_users: Option<(hot::Replica, &'a HotRows)>,
    hot_items: Option<(hot::Replica, &'a HotRows)>,
    merge_lock: &'a std::sync::Mutex<()>,
    opt: Opt,
    user_repr: Vec<f32>,
    pos_repr: Vec<f32>,
    neg_repr: Vec<f32>,
    grad: Vec<f32>,
    rowbuf: RowBuf,
    rng: Rng,
    /// WARP: the stream of negative candidates, drawn `CANDIDATES_AHEAD` draws before they
    /// are scored (a ring: `ahead_len` of them from `ahead_head`), whichever example
    /// scores them.
    ahead: [u32; RING],
    ahead_head: usize,
    ahead_len: usize,
    /// BPR: the interaction index of each example's negative (stage 1), then the negative
    /// itself (stage 2).
    bpr_neg: [u32; SLOTS],
    /// WARP: every item's (or class's, see [`Trainer::item_class`]) representation in
    /// bfloat16 (see [`compact`]), rebuilt at the start of each epoch and refreshed for the
    /// rows an update touches.
    scoring: Option<Shared>,
    /// Words per row of `scoring`.
    scoring_stride: usize,
    /// The user's representation as [`compact::dot`] wants it: `k` latent values, 1 (for
    /// the item bias), zeros.
    user_ext: Vec<f32>,
    /// Scratch: an exact representation, and its encoded row.
    cache_tmp: Vec<f32>,
    words: Vec<f32>,
    /// WARP: the negative of the previous update, whose own step is deferred to the next
    /// example (its parameters are loading meanwhile), with its loss and the user
    /// representation its gradient uses.
    pending: Option<(u32, f32)>,
    pending_user: Vec<f32>,
    /// Some user's training positives are every item (WARP has no negative for them).
    saturated_users: bool,
    /// WARP-kOS: the step's sampled positives (feature rows) and their scores, reused.
    kos_pairs: Vec<(usize, f32)>,
    tally: LossTally,
}

/// Which of a worker's representation buffers [`Worker::load_repr`] fills.
#[derive(Clone, Copy)]
enum Repr {
    User,
    Pos,
    Neg,
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Four independent accumulators let the compiler vectorise and pipeline.
    let mut acc = [0.0f32; 4];
    let (ca, ra) = a.split_at(a.len() / 4 * 4);
    let (cb, rb) = b.split_at(ca.len());
    for (x, y) in ca.chunks_exact(4).zip(cb.chunks_exact(4)) {
        for j in 0..4 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[inline(always)]
fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// How a worker walks the features of a row: identity matrices skip the lookups.
#[derive(Clone, Copy)]
pub(crate) enum FeatureRows<'a> {
    /// Row `i` is feature `i` with weight 1.
    Identity,
    /// A general sparse matrix, packed for training.
    Packed(&'a PackedRows),
}

impl<'a> FeatureRows<'a> {
    pub fn of(packed: &'a Option<PackedRows>) -> Self {
        match packed {
            None => FeatureRows::Identity,
            Some(p) => FeatureRows::Packed(p),
        }
    }
}

/// One nonzero of a feature row: the feature and its weight, side by side.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct Entry {
    feature: u32,
    weight: f32,
}

/// A feature matrix laid out for the training loop: each row's (feature, weight) pairs
/// contiguous, 8 bytes each, so a product with six features is one cache line, where the CSR
/// form spreads it over an index array (8 bytes per entry) and a weight array, two cache
/// misses per row. Rows are found through `offsets`, which the look-ahead prefetches.
#[derive(Debug)]
pub(crate) struct PackedRows {
    offsets: Vec<u32>,
    entries: Vec<Entry>,
}

impl PackedRows {
    /// `None` for an identity matrix (walked without lookups), else the packed rows.
    ///
    /// # Panics
    /// If the matrix has 2³² or more nonzeros or features (far beyond what fits in memory
    /// as parameters).
    pub fn of(fm: &FeatureMatrix) -> Option<PackedRows> {
        if fm.is_identity() {
            return None;
        }
        let mut offsets = Vec::with_capacity(fm.n_rows() + 1);
        let mut entries = Vec::new();
        offsets.push(0u32);
        for r in 0..fm.n_rows() {
            let (feats, weights) = fm.row(r);
            entries.extend(feats.iter().zip(weights).map(|(&f, &w)| Entry {
                feature: u32::try_from(f).expect("feature index fits in u32"),
                weight: w,
            }));
            offsets.push(u32::try_from(entries.len()).expect("nonzeros fit in u32"));
        }
        Some(PackedRows { offsets, entries })
    }

    #[inline(always)]
    fn row(&self, r: usize) -> &[Entry] {
        &self.entries[self.offsets[r] as usize..self.offsets[r + 1] as usize]
    }

    /// Number of rows.
    pub(crate) fn n_rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Rows with identical entries (the same features with the same weights) grouped into
    /// classes: the class of each row, and one row per class (classes numbered in order of
    /// first appearance). `None` unless there are at most three classes per four rows.
    ///
    /// Items described only by metadata (no identity feature) repeat a lot: the 68,509
    /// products of the Complete Journey data have 13,893 distinct rows of category,
    /// department, brand, manufacturer and price bucket. Their representations are the
    /// same by definition, so WARP scores the class's row (a fifth of the scoring table,
    /// which then stays in the core's cache) and an update re-encodes it for every item of
    /// the class at once.
    pub fn classes(&self) -> Option<(Vec<u32>, PackedRows)> {
        let n = self.n_rows();
        let mut seen: std::collections::HashMap<Vec<u64>, u32> = Default::default();
        let mut class_of = Vec::with_capacity(n);
        let mut firsts = Vec::new();
        for r in 0..n {
            let key: Vec<u64> = (self.row(r).iter())
                .map(|e| (u64::from(e.feature) << 32) | u64::from(e.weight.to_bits()))
                .collect();
            let next = u32::try_from(firsts.len()).expect("rows fit in u32");
            let class = *seen.entry(key).or_insert_with(|| {
                firsts.push(r);
                next
            });
            class_of.push(class);
        }
        if 4 * firsts.len() > 3 * n {
            return None;
        }
        let mut offsets = Vec::with_capacity(firsts.len() + 1);
        let mut entries = Vec::new();
        offsets.push(0u32);
        for &r in &firsts {
            entries.extend_from_slice(self.row(r));
            offsets.push(entries.len() as u32);
        }
        Some((class_of, PackedRows { offsets, entries }))
    }

    /// Starts loading where row `r` starts (see [`Self::prefetch`]).
    #[inline(always)]
    fn prefetch_offset(&self, r: usize) {
        if let Some(o) = self.offsets.get(r) {
            prefetch_ptr((o as *const u32).cast());
        }
    }

    /// Starts loading row `r`'s entries. Reads `offsets[r]`: a cache miss for a random row
    /// unless [`Self::prefetch_offset`] ran a while before.
    #[inline(always)]
    fn prefetch(&self, r: usize) {
        if let Some(&o) = self.offsets.get(r) {
            if let Some(e) = self.entries.get(o as usize) {
                prefetch_ptr((e as *const Entry).cast());
            }
        }
    }
}

/// Prefetches the whole lines holding `words` elements of `buf` from `start` (a line
/// boundary).
#[inline(always)]
fn prefetch_words(buf: Shared, start: usize, words: usize) {
    if start < buf.len {
        for line in (0..words).step_by(16) {
            // The pointer stays in bounds or one line past: prefetching never faults.
            prefetch_ptr(buf.ptr.wrapping_add(start + line).cast());
        }
    }
}

#[inline(always)]
fn prefetch(buf: Shared, start: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if start < buf.len {
            // SAFETY: `start` is in bounds; prefetching never faults and has no effect on
            // program semantics.
            unsafe {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                let p = buf.ptr.add(start).cast::<i8>();
                _mm_prefetch::<_MM_HINT_T0>(p);
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (buf, start);
    }
}

impl<'a> Worker<'a> {
    /// Writes the representation (k latent values, then the bias) of `row` into `out`.
    ///
    /// `avx` ([`Opt::avx`]) must be true only where the CPU has AVX.
    #[inline]
    fn repr(
        side: &SideView,
        rows: FeatureRows<'_>,
        row: usize,
        k: usize,
        out: &mut [f32],
        avx: bool,
    ) {
        #[cfg(target_arch = "x86_64")]
        if avx {
            // SAFETY: `avx` is set only where the CPU supports AVX (the caller's contract).
            unsafe { repr_avx(side, rows, row, k, out) };
            return;
        }
        repr_rows(side, rows, row, k, out, false);
    }

    /// Row `row`'s representation into `user_repr` (a user), `pos_repr` or `neg_repr` (an
    /// item).
    #[inline(always)]
    fn load_repr(&mut self, into: Repr, row: usize) {
        let (k, avx) = (self.t.k, self.opt.avx);
        let (side, rows, out) = match into {
            Repr::User => (&self.users, self.user_rows, &mut self.user_repr),
            Repr::Pos => (&self.items, self.item_rows, &mut self.pos_repr),
            Repr::Neg => (&self.items, self.item_rows, &mut self.neg_repr),
        };
        Self::repr(side, rows, row, k, out, avx);
    }

    /// Asks the CPU to start loading the parameters (and, with `acc`, the optimiser state) of
    /// `row`'s features.
    #[inline(always)]
    fn prefetch_row(side: &SideView, rows: FeatureRows<'_>, row: usize, acc: bool) {
        let one = |f: usize| {
            let (b, base) = side.at(f);
            prefetch(b.params, base);
            if acc {
                prefetch(b.acc, base);
            }
        };
        match rows {
            FeatureRows::Identity => one(row),
            FeatureRows::Packed(rows) => rows.row(row).iter().for_each(|e| one(e.feature as usize)),
        }
    }

    /// Look-ahead stage 0 for example `ex` (`3 × AHEAD` early): where its user's and item's
    /// packed feature rows start (so stage 1 does not wait for that).
    #[inline(always)]
    fn stage0(&self, ex: &Example) {
        if let FeatureRows::Packed(rows) = self.user_rows {
            rows.prefetch_offset(ex.user as usize);
        }
        if let FeatureRows::Packed(rows) = self.item_rows {
            rows.prefetch_offset(ex.item as usize);
        }
    }

    /// Look-ahead stage 1 for example `ex` (number `j`, `2 × AHEAD` early): the user's and
    /// item's packed feature rows start loading (stage 2 reads them to prefetch parameters),
    /// and BPR draws the interaction whose item will be the negative and prefetches that
    /// entry of the item column.
    #[inline(always)]
    fn stage1(&mut self, ex: &Example, j: usize) {
        if let FeatureRows::Packed(rows) = self.user_rows {
            rows.prefetch(ex.user as usize);
        }
        if let FeatureRows::Packed(rows) = self.item_rows {
            rows.prefetch(ex.item as usize);
        }
        if let Loss::Bpr = self.t.loss {
            let items = self.t.interactions.items_raw();
            let r = self.rng.below(items.len());
            prefetch_ptr(items[r..].as_ptr().cast());
            self.bpr_neg[j % SLOTS] = r as u32;
        }
    }

    /// Look-ahead stage 2 for example `ex` (number `j`, `AHEAD` early): prefetch what it
    /// touches first (its user's and item's parameters and optimiser state, the item's
    /// scoring row; BPR: the negative's).
    #[inline(always)]
    fn stage2(&mut self, ex: &Example, j: usize) {
        let user = ex.user as usize;
        Self::prefetch_row(&self.users, self.user_rows, user, true);
        Self::prefetch_row(&self.items, self.item_rows, ex.item as usize, true);
        if let Some(scoring) = self.scoring {
            // The positive's scoring row is rewritten after its update.
            prefetch_words(
                scoring,
                ex.item as usize * self.scoring_stride,
                self.scoring_stride,
            );
        }
        let slot = j % SLOTS;
        match self.t.loss {
            Loss::Bpr => {
                let r = self.bpr_neg[slot] as usize;
                let cand = self.t.interactions.items_raw()[r];
                self.bpr_neg[slot] = cand;
                let row = self.t.item_row(cand as usize);
                Self::prefetch_row(&self.items, self.item_rows, row, true);
                self.t.positives.prefetch(user, cand as usize);
            }
            // Which candidates the example will score is not known yet (see
            // `candidate`), but they are looked up in this user's filter: load all of it
            // (up to 16 lines).
            Loss::Warp if ex.value > 0.0 => self.t.positives.prefetch_filter(user, 16),
            _ => {}
        }
    }

    /// WARP's next negative candidate: a uniform draw made `CANDIDATES_AHEAD` draws ago,
    /// whose bfloat16 scoring row was prefetched then (only its scoring row: a candidate's
    /// parameters are needed only if it wins, and its step is deferred until they have
    /// arrived). The candidates are uniform and independent of everything, so drawing them
    /// early, for whichever example comes to score them, changes nothing but which random
    /// numbers go where — and no drawn candidate is wasted.
    #[inline(always)]
    fn candidate(&mut self) -> usize {
        let n_items = self.t.interactions.n_items();
        while self.ahead_len < CANDIDATES_AHEAD {
            let c = self.rng.below(n_items);
            if let Some(scoring) = self.scoring {
                let row = self.t.item_row(c);
                prefetch_words(scoring, row * self.scoring_stride, self.scoring_stride);
            }
            self.ahead[(self.ahead_head + self.ahead_len) % RING] = c as u32;
            self.ahead_len += 1;
        }
        let c = self.ahead[self.ahead_head];
        self.ahead_head = (self.ahead_head + 1) % RING;
        self.ahead_len -= 1;
        c as usize
    }

    /// Re-encodes an item's scoring row after its parameters were updated.
    #[inline]
    fn refresh_scoring(&mut self, item: usize) {
        if let Some(scoring) = self.scoring {
            let k = self.t.k;
            Self::repr(
                &self.items,
                self.item_rows,
                item,
                k,
                &mut self.cache_tmp,
                self.opt.avx,
            );
            // Zeros after the bias (the row's padding), so whole pieces encode at once.
            self.cache_tmp[k + 1..].fill(0.0);
            compact::encode_row(&self.cache_tmp, &mut self.words);
            let cs = self.scoring_stride;
            store_row(scoring.row(item * cs, cs), &self.words, self.opt.avx);
        }
    }

    #[inline(always)]
    fn predict(&self, a: &[f32], b: &[f32]) -> f32 {
        let k = self.t.k;
        dot(&a[..k], &b[..k]) + a[k] + b[k]
    }

    /// Applies `grad` to every feature of `row`: `k` latent components, then (when
    /// `grad.len() == k + 1`) the bias.
    #[inline]
    fn apply(
        &mut self,
        side: SideView,
        rows: FeatureRows<'_>,
        row: usize,
        grad: &[f32],
        alpha: f32,
    ) {
        let opt = self.opt;
        let buf = &mut self.rowbuf;
        #[cfg(target_arch = "x86_64")]
        if opt.avx {
            // SAFETY: `opt.avx` is set only when the CPU supports AVX.
            unsafe { apply_rows_avx(side, rows, row, grad, alpha, &opt, buf) };
            return;
        }
        apply_rows(side, rows, row, grad, alpha, &opt, buf);
    }

    /// Pairwise update: raise the positive's score, lower the negative's, by `loss`.
    fn pairwise_update(&mut self, loss: f32, user: usize, pos: usize, neg: usize) {
        // The negative's optimiser state was not prefetched with it (most candidates are
        // never updated): start loading it now and update it last.
        Self::prefetch_row(&self.items, self.item_rows, neg, true);
        self.step_positive_and_user(loss, user, pos);
        self.step_negative(loss, neg, false);
    }

    /// The positive's and the user's steps of a pairwise update, from `user_repr`,
    /// `pos_repr` and `neg_repr` as they were before either step.
    fn step_positive_and_user(&mut self, loss: f32, user: usize, pos: usize) {
        let k = self.t.k;
        let mut grad = std::mem::take(&mut self.grad);
        // Positive item: d(-score_pos)/d(item) = -user.
        for c in 0..k {
            grad[c] = -loss * self.user_repr[c];
        }
        grad[k] = -loss;
        self.apply(
            self.items,
            self.item_rows,
            pos,
            &grad[..=k],
            self.t.item_alpha,
        );
        // User: d(score_neg - score_pos)/d(user) = neg - pos; the user bias cancels out.
        for c in 0..k {
            grad[c] = loss * (self.neg_repr[c] - self.pos_repr[c]);
        }
        self.apply(
            self.users,
            self.user_rows,
            user,
            &grad[..k],
            self.t.user_alpha,
        );
        self.grad = grad;
    }

    /// The negative's step: d(score_neg)/d(item) = user, with the user representation in
    /// `pending_user` (a deferred WARP step) or `user_repr`.
    fn step_negative(&mut self, loss: f32, neg: usize, pending: bool) {
        let k = self.t.k;
        let mut grad = std::mem::take(&mut self.grad);
        let u = if pending {
            &self.pending_user
        } else {
            &self.user_repr
        };
        for c in 0..k {
            grad[c] = loss * u[c];
        }
        grad[k] = loss;
        self.apply(
            self.items,
            self.item_rows,
            neg,
            &grad[..=k],
            self.t.item_alpha,
        );
        self.grad = grad;
    }

    fn logistic(&mut self, ex: &Example) {
        let (user, item) = (ex.user as usize, ex.item as usize);
        let weight = ex.weight;
        let y = if ex.value > 0.0 { 1.0 } else { 0.0 };
        let k = self.t.k;
        self.load_repr(Repr::User, user);
        self.load_repr(Repr::Pos, item);
        let p = sigmoid(self.predict(&self.user_repr, &self.pos_repr));
        let loss = weight * (p - y);
        let ll = -(if y > 0.0 { p } else { 1.0 - p }).max(1e-12).ln();
        self.tally.sum += (weight * ll) as f64;
        self.tally.count += 1;
        let mut grad = std::mem::take(&mut self.grad);
        for c in 0..k {
            grad[c] = loss * self.user_repr[c];
        }
        grad[k] = loss;
        self.apply(
            self.items,
            self.item_rows,
            item,
            &grad[..=k],
            self.t.item_alpha,
        );
        for c in 0..k {
            grad[c] = loss * self.pos_repr[c];
        }
        grad[k] = loss;
        self.apply(
            self.users,
            self.user_rows,
            user,
            &grad[..=k],
            self.t.user_alpha,
        );
        self.grad = grad;
    }

    /// WARP's negative search and update for a positive whose representation is in
    /// `pos_repr` (and the user's in `user_repr` and `user_ext`). `n_negatives` is the rank
    /// denominator (LightFM: n_items - 1 for WARP, the number of the user's negatives for
    /// WARP-kOS).
    ///
    /// As in LightFM, up to `max_sampled` uniform draws are scored; the first that violates
    /// the margin is the negative, unless it is one of the user's positives, which is skipped
    /// but counted. Candidates are scored from the bfloat16 rows (see [`compact`]), drawn
    /// well before (see [`Self::candidate`]). Returns whether there was an update.
    fn warp_search(
        &mut self,
        user: usize,
        pos: usize,
        pos_pred: f32,
        weight: f32,
        n_negatives: usize,
    ) -> bool {
        let x = self.t.interactions;
        let k = self.t.k;
        self.tally.count += 1;
        // (A lookup per example, skipped unless some user has every item.)
        if self.saturated_users && x.user_items(user).len() >= x.n_items() {
            return false;
        }
        let scoring = self.scoring.expect("WARP training builds the scoring rows");
        let cs = self.scoring_stride;
        let user_bias = self.user_repr[k];
        let mut sampled = 0usize;
        let mut updated = false;
        while sampled < self.t.max_sampled {
            let cand = self.candidate();
            sampled += 1;
            let cand_row = self.t.item_row(cand);
            let row = scoring.row(cand_row * cs, cs);
            let neg_pred = compact::dot(row, &self.user_ext) + user_bias;
            if neg_pred > pos_pred - 1.0 {
                let positives = self.t.positives;
                if positives.maybe_contains(user, cand) && positives.contains(user, cand) {
                    continue;
                }
                let rank_estimate = ((n_negatives / sampled) as f32).max(1.0);
                let loss = (weight * rank_estimate.ln()).min(MAX_LOSS);
                self.tally.sum += loss as f64;
                compact::decode_row(row, &mut self.neg_repr[..=k]);
                self.warp_update(loss, user, pos, cand_row);
                updated = true;
                break;
            }
        }
        updated
    }

    /// WARP's update for a violating negative whose (bfloat16) representation is in
    /// `neg_repr`: the positive and the user now, the negative one example later.
    ///
    /// The negative is a random item, so its parameters are a cache miss that starts only
    /// now; its step (gradient `loss × user`, the user as it was now) is deferred to the end
    /// of the next example, by when they have arrived, and the previous example's deferred
    /// step is done here instead. The user's gradient takes the negative's term from the
    /// scoring row (bfloat16), not the exact parameters. Both are recorded in ARCHITECTURE.md
    /// as differences from LightFM.
    fn warp_update(&mut self, loss: f32, user: usize, pos: usize, neg: usize) {
        let k = self.t.k;
        let itf = self.item_rows;
        match itf {
            FeatureRows::Identity => Self::prefetch_row(&self.items, itf, neg, true),
            // Three dependent loads: where its packed row starts (now), the row (at the next
            // example's start), the feature parameters (before the deferred step).
            FeatureRows::Packed(rows) => rows.prefetch_offset(neg),
        }
        self.prefetch_pending_params();
        self.step_positive_and_user(loss, user, pos);
        self.refresh_scoring(pos);
        self.flush_pending();
        self.pending = Some((neg as u32, loss));
        self.pending_user[..k].copy_from_slice(&self.user_repr[..k]);
    }

    /// Starts loading the deferred negative's packed feature row (where it starts was
    /// prefetched when it won).
    #[inline(always)]
    fn prefetch_pending(&self) {
        if let (Some((neg, _)), FeatureRows::Packed(rows)) = (self.pending, self.item_rows) {
            rows.prefetch(neg as usize);
        }
    }

    /// Starts loading the deferred negative's feature parameters and optimiser state (a
    /// while after [`Self::prefetch_pending`]).
    #[inline(always)]
    fn prefetch_pending_params(&self) {
        if let (Some((neg, _)), FeatureRows::Packed(_)) = (self.pending, self.item_rows) {
            Self::prefetch_row(&self.items, self.item_rows, neg as usize, true);
        }
    }

    /// The deferred step of the previous update's negative (see [`Self::warp_update`]):
    /// d(score_neg)/d(item) = user.
    fn flush_pending(&mut self) {
        if let Some((neg, loss)) = self.pending.take() {
            self.step_negative(loss, neg as usize, true);
            self.refresh_scoring(neg as usize);
        }
    }

    /// Merges this thread's hot rows into the model's (see [`hot`]). A deferred negative
    /// step still pending lands in the next merge.
    fn merge_hot(&mut self) {
        let lock = self.merge_lock;
        if let Some((replica, hot)) = &mut self.hot_users {
            replica.merge(&self.users.main, hot, self.users.stride, lock);
        }
        if let Some((replica, hot)) = &mut self.hot_items {
            replica.merge(&self.items.main, hot, self.items.stride, lock);
        }
    }

    /// Sets `user_ext` from `user_repr`.
    #[inline(always)]
    fn extend_user(&mut self) {
        let k = self.t.k;
        self.user_ext[..k].copy_from_slice(&self.user_repr[..k]);
        self.user_ext[k] = 1.0;
    }

    fn warp(&mut self, ex: &Example) {
        let x = self.t.interactions;
        if ex.value <= 0.0 {
            return;
        }
        let (user, pos) = (ex.user as usize, ex.item as usize);
        self.prefetch_pending();
        self.load_repr(Repr::User, user);
        self.load_repr(Repr::Pos, pos);
        self.extend_user();
        let pos_pred = self.predict(&self.user_repr, &self.pos_repr);
        let n_neg = x.n_items().saturating_sub(1);
        if !self.warp_search(user, pos, pos_pred, ex.weight, n_neg) {
            // No update this time: the previous one's deferred step is due now.
            self.prefetch_pending_params();
            self.flush_pending();
        }
    }

    fn bpr(&mut self, ex: &Example, slot: usize) {
        let x = self.t.interactions;
        if ex.value <= 0.0 {
            return;
        }
        let (user, pos) = (ex.user as usize, ex.item as usize);
        let weight = ex.weight;
        // LightFM draws the negative from the item column of the interaction list, so
        // negatives follow popularity. Bounded redraws as in `draw_negative`.
        // The first draw was made (and prefetched) two look-ahead stages early.
        let n = x.len();
        let mut neg = None;
        for attempt in 0..1000 {
            let cand = if attempt == 0 {
                self.bpr_neg[slot] as usize
            } else {
                x.items_raw()[self.rng.below(n)] as usize
            };
            if !self.t.positives.contains(user, cand) {
                neg = Some(cand);
                break;
            }
        }
        let Some(neg) = neg else { return };
        let neg = self.t.item_row(neg);
        self.load_repr(Repr::User, user);
        self.load_repr(Repr::Pos, pos);
        self.load_repr(Repr::Neg, neg);
        let diff = self.predict(&self.user_repr, &self.pos_repr)
            - self.predict(&self.user_repr, &self.neg_repr);
        let s = sigmoid(diff);
        self.tally.sum += (weight * -(s.max(1e-12)).ln()) as f64;
        self.tally.count += 1;
        self.pairwise_update(weight * (1.0 - s), user, pos, neg);
    }

    fn warp_kos(&mut self, user: usize, kth: usize, n: usize) {
        let x = self.t.interactions;
        let positives = x.user_items(user);
        if positives.is_empty() {
            return;
        }
        self.prefetch_pending();
        self.load_repr(Repr::User, user);
        self.extend_user();
        let no_positives = n.min(positives.len());
        // Draw every sampled positive first (the same draws in the same order) and start
        // loading their parameters, so the representation sums below wait for the `n`
        // random rows together instead of one after another.
        let mut pairs = std::mem::take(&mut self.kos_pairs);
        pairs.clear();
        for _ in 0..no_positives {
            let item = self
                .t
                .item_row(positives[self.rng.below(positives.len())] as usize);
            Self::prefetch_row(&self.items, self.item_rows, item, false);
            pairs.push((item, 0.0));
        }
        for pair in pairs.iter_mut() {
            self.load_repr(Repr::Pos, pair.0);
            pair.1 = self.predict(&self.user_repr, &self.pos_repr);
        }
        // Descending by score; stable for equal scores so runs are reproducible.
        pairs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (pos, pos_pred) = pairs[kth.min(no_positives) - 1];
        self.kos_pairs = pairs;
        self.load_repr(Repr::Pos, pos);
        // LightFM's rank estimate for k-OS divides `n_items - 1`, as for WARP (not the
        // user's negatives).
        let n_neg = x.n_items().saturating_sub(1);
        if !self.warp_search(user, pos, pos_pred, 1.0, n_neg) {
            self.prefetch_pending_params();
            self.flush_pending();
        }
    }
}

/// The representation (latent vector and bias) of each of `rows`' first `n_items` rows — an
/// item, or a class of items with identical features (see [`Trainer::item_class`]) — as a
/// bfloat16 scoring row (see [`compact`]), built at the start of each epoch for WARP's
/// candidates.
///
/// With item features, this is also what keeps scoring a candidate to one cache line instead
/// of one parameter row per feature (a dozen lines for a product with five metadata
/// columns). The items an update touches are re-encoded immediately; a candidate's row can
/// miss changes to features it shares with items updated since the epoch began (shared
/// features move slowly under adagrad). Quality is measured against LightFM in
/// docs/benchmarks.md.
///
/// With a `pool` of several threads the rows are built in parallel (each row depends only on
/// the parameters, so the bits are the same); `reuse`, last epoch's table, is overwritten
/// when its size fits.
fn build_scoring(
    items: &SideView,
    rows: FeatureRows<'_>,
    n_items: usize,
    k: usize,
    pool: Option<&rayon::ThreadPool>,
    reuse: Option<AlignedBuf>,
) -> AlignedBuf {
    let cs = compact::stride(k);
    // Every word of every row is written below, so last epoch's rows can be overwritten.
    let mut out = reuse
        .filter(|b| b.as_slice().len() == n_items * cs)
        .unwrap_or_else(|| {
            let mut b = AlignedBuf::default();
            b.resize(n_items * cs, 0.0);
            b
        });
    let avx = avx_available();
    // Rows `first..` into `dst`.
    let fill = |first: usize, dst: &mut [f32]| {
        // A whole row's width, as the workers' buffers: `repr` then sums whole 8-element
        // pieces (the rows' padding is zero) and needs no element-wise tail.
        let mut repr = vec![0.0f32; items.stride];
        for (j, dst) in dst.chunks_exact_mut(cs).enumerate() {
            Worker::repr(items, rows, first + j, k, &mut repr, avx);
            compact::encode_row(&repr[..=k], dst);
        }
    };
    match pool {
        // Rows are independent: the result is the same however they are shared out.
        Some(pool) if pool.current_num_threads() > 1 => {
            use rayon::prelude::*;
            const CHUNK: usize = 1024;
            pool.install(|| {
                (out.as_mut_slice().par_chunks_mut(CHUNK * cs).enumerate())
                    .for_each(|(c, dst)| fill(c * CHUNK, dst));
            });
        }
        _ => fill(0, out.as_mut_slice()),
    }
    out
}

/// [`Worker::repr`]: the representation (k latent values, then the bias) of `row` in
/// `out[..=k]`. With `avx` (the CPU has it) and room in `out` and in the rows' padding,
/// eight elements at a time over whole 8-element pieces: the rows' padding is zero, so the
/// extra elements of `out` receive zeros.
#[inline(always)]
fn repr_rows(
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

/// [`repr_rows`] compiled with AVX.
///
/// # Safety
/// The CPU must support AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn repr_avx(side: &SideView, rows: FeatureRows<'_>, row: usize, k: usize, out: &mut [f32]) {
    repr_rows(side, rows, row, k, out, true);
}

/// One optimiser step with gradient `grad` (scaled by each feature's weight) on every
/// feature of `row`.
#[inline(always)]
fn apply_rows(
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

/// [`apply_rows`] compiled with AVX, so that its adagrad steps ([`racy::adagrad_avx`]) are
/// inlined eight elements at a time.
///
/// # Safety
/// The CPU must support AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn apply_rows_avx(
    side: SideView,
    rows: FeatureRows<'_>,
    row: usize,
    grad: &[f32],
    alpha: f32,
    opt: &Opt,
    buf: &mut RowBuf,
) {
    apply_rows(side, rows, row, grad, alpha, opt, buf);
}

/// Trains on `examples` in order, with three look-ahead stages (see [`Worker::stage0`],
/// [`Worker::stage1`], [`Worker::stage2`]) primed for the first examples.
fn train_examples(w: &mut Worker<'_>, examples: &[Example]) {
    for ex in examples.iter().take(3 * AHEAD) {
        w.stage0(ex);
    }
    for (j, ex) in examples.iter().enumerate().take(2 * AHEAD) {
        w.stage1(ex, j);
    }
    for (j, ex) in examples.iter().enumerate().take(AHEAD) {
        w.stage2(ex, j);
    }
    for (j, ex) in examples.iter().enumerate() {
        if let Some(latest) = examples.get(j + 3 * AHEAD) {
            w.stage0(latest);
        }
        if let Some(later) = examples.get(j + 2 * AHEAD) {
            w.stage1(later, j + 2 * AHEAD);
        }
        if let Some(next) = examples.get(j + AHEAD) {
            w.stage2(next, j + AHEAD);
        }
        let slot = j % SLOTS;
        match w.t.loss {
            Loss::Logistic => w.logistic(ex),
            Loss::Bpr => w.bpr(ex, slot),
            _ => w.warp(ex),
        }
        if j % hot::MERGE_EVERY == hot::MERGE_EVERY - 1 {
            w.merge_hot();
        }
    }
    w.flush_pending();
    w.merge_hot();
}

impl<'a> Worker<'a> {
    /// A training thread's state: its views of both sides (with its own copies of the hot
    /// rows, if the trainer has any), the shared scoring rows, and its random stream.
    fn new(
        t: &'a Trainer<'a>,
        uv: SideView,
        iv: SideView,
        scoring: Option<Shared>,
        merge_lock: &'a std::sync::Mutex<()>,
        seed: u64,
    ) -> Worker<'a> {
        let k = t.k;
        let cs = compact::stride(k);
        let additive_state = matches!(t.schedule, Schedule::Adagrad);
        let width = uv.stride.max(iv.stride).max(k + 1);
        let (users, user_rows, hot_users) =
            thread_side(uv, t.user_rows, t.user_hot, additive_state);
        let (items, item_rows, hot_items) =
            thread_side(iv, t.item_rows, t.item_hot, additive_state);
        Worker {
            t,
            users,
            items,
            user_rows,
            item_rows,
            hot_users,
            hot_items,
            merge_lock,
            opt: Opt::new(t.schedule, t.learning_rate),
            // Room for whole 8-element pieces (see `repr_rows`).
            user_repr: vec![0.0; width],
            pos_repr: vec![0.0; width],
            neg_repr: vec![0.0; width],
            grad: vec![0.0; k + 1],
            rowbuf: RowBuf {
                p: vec![0.0; k + 1],
                a: vec![0.0; k + 1],
                d: vec![0.0; k + 1],
                g: vec![0.0; uv.stride.max(iv.stride)],
            },
            rng: Rng::new(seed),
            ahead: [0; RING],
            ahead_head: 0,
            ahead_len: 0,
            bpr_neg: [0; SLOTS],
            scoring,
            scoring_stride: cs,
            user_ext: vec![0.0; 2 * cs],
            cache_tmp: vec![0.0; width],
            words: vec![0.0; cs],
            pending: None,
            pending_user: vec![0.0; k],
            saturated_users: t.positives.some_user_has_every_item(),
            kos_pairs: Vec::new(),
            tally: LossTally::default(),
        }
    }
}

/// A training thread's view of one side: with hot rows, its own copies of them (see
/// [`hot`]) and the feature rows that address them.
type ThreadSide<'a> = (
    SideView,
    FeatureRows<'a>,
    Option<(hot::Replica, &'a HotRows)>,
);

fn thread_side<'a>(
    view: SideView,
    rows: FeatureRows<'a>,
    hot: Option<&'a HotRows>,
    additive_state: bool,
) -> ThreadSide<'a> {
    match hot {
        Some(hot) => {
            let mut replica = hot::Replica::new(&view.main, hot, view.stride, additive_state);
            let view = SideView {
                hot: replica.bufs(),
                boundary: hot.boundary,
                ..view
            };
            (view, FeatureRows::Packed(&hot.rows), Some((replica, hot)))
        }
        None => (view, rows, None),
    }
}

/// Runs one epoch over `order` (examples, or for WARP-kOS each interaction's user) split into
/// `threads` contiguous chunks. With one thread everything runs on the calling thread and the
/// result is a pure function of the inputs and `seeds[0]`.
///
/// `scoring` holds WARP's bfloat16 scoring rows between the epochs of one fit (`None` at
/// first). With item features they are rebuilt every epoch (shared features move under every
/// item); without, every change to an item's parameters re-encodes its row, so they stay
/// exact and are built once (with one thread bit for bit what a rebuild would give; with
/// several, up to the Hogwild race of two threads re-encoding one item at once).
pub(crate) fn run_epoch(
    t: &Trainer<'_>,
    users: &mut Side,
    items: &mut Side,
    work: Work<'_>,
    seeds: &[u64],
    pool: Option<&rayon::ThreadPool>,
    scoring: &mut Option<AlignedBuf>,
) -> LossTally {
    let uv = users.view();
    let iv = items.view();
    match t.loss {
        Loss::Warp | Loss::WarpKos { .. } => {
            if scoring.is_none() || matches!(t.item_rows, FeatureRows::Packed(_)) {
                let last = scoring.take();
                let rows = t.n_item_rows();
                *scoring = Some(build_scoring(&iv, t.item_rows, rows, t.k, pool, last));
            }
        }
        _ => *scoring = None,
    }
    let scoring_view = scoring.as_mut().map(|c| Shared::new(c.as_mut_slice()));
    let merge_lock = std::sync::Mutex::new(());
    let make_worker = |seed: u64| Worker::new(t, uv, iv, scoring_view, &merge_lock, seed);
    // One thread's share: the blocks of `work` it takes (in order) from `next`.
    let run = |next: &AtomicUsize, block: usize, seed: u64| -> LossTally {
        let mut w = make_worker(seed);
        match (work, t.loss) {
            (Work::Users(users), Loss::WarpKos { k: kth, n }) => {
                while let Some(chunk) = take_block(users, next, block) {
                    for (j, &u) in chunk.iter().enumerate() {
                        w.warp_kos(u as usize, kth, n);
                        if j % hot::MERGE_EVERY == hot::MERGE_EVERY - 1 {
                            w.merge_hot();
                        }
                    }
                    w.flush_pending();
                    w.merge_hot();
                }
            }
            (Work::Examples(examples), loss) => {
                assert!(
                    !matches!(loss, Loss::WarpKos { .. }),
                    "WARP-kOS trains on users"
                );
                while let Some(chunk) = take_block(examples, next, block) {
                    train_examples(&mut w, chunk);
                }
            }
            (Work::Users(_), _) => unreachable!("WorkList::new gives users only to WARP-kOS"),
        }
        w.tally
    };
    let threads = seeds.len().max(1);
    let next = AtomicUsize::new(0);
    let len = work.len();
    match pool {
        Some(pool) if threads > 1 => {
            // At least eight blocks per thread.
            let block = BLOCK.min(len.div_ceil(8 * threads)).max(1);
            let mut tallies = vec![LossTally::default(); threads];
            pool.scope(|s| {
                for (seed, out) in seeds.iter().zip(tallies.iter_mut()) {
                    let (run, next) = (&run, &next);
                    s.spawn(move |_| *out = run(next, block, *seed));
                }
            });
            tallies
                .into_iter()
                .fold(LossTally::default(), LossTally::merge)
        }
        // One thread: the whole epoch as one block, one look-ahead pipeline.
        _ => run(&next, len.max(1), seeds[0]),
    }
}

/// Examples per block (at most) that a thread of a multi-threaded epoch takes at a time.
/// Threads take blocks as they finish the last one, so a thread whose core runs slower
/// (another process, a busy neighbour on a shared host) trains fewer of them instead of the
/// epoch waiting for it: with fixed halves, two-thread epochs ran at the pace of the slower
/// core, one thread often idle for the last quarter of the epoch.
const BLOCK: usize = 16 * hot::MERGE_EVERY;

/// The next `block` entries of `order` not yet taken by any thread (`next` is the shared
/// cursor), or `None` when all are taken.
fn take_block<'o, T>(order: &'o [T], next: &AtomicUsize, block: usize) -> Option<&'o [T]> {
    let start = next.fetch_add(block, Ordering::Relaxed);
    (start < order.len()).then(|| &order[start..order.len().min(start + block)])
}

#[cfg(test)]
mod row_access_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The vector-width row moves (plus their atomic tails) do exactly what the
        /// element-by-element atomic code did, for every length and offset (`axpy_row` four
        /// and, where the CPU has AVX, eight elements at a time).
        #[test]
        fn row_moves_match_elementwise_atomics(
            xs in proptest::collection::vec(-1e3f32..1e3, 0..80),
            offset in 0usize..8,
            n in 0usize..40,
            w in -4.0f32..4.0,
        ) {
            let mut shared = xs.clone();
            let n = n.min(xs.len().saturating_sub(offset));
            if offset + n <= xs.len() {
                let view = Shared::new(&mut shared);
                let row = view.row(offset, n);
                let has_avx = avx_available();
                for avx in [false, has_avx] {
                    let mut local = vec![f32::NAN; n];
                    load_row(row, &mut local, avx);
                    prop_assert_eq!(&local[..], &xs[offset..offset + n]);
                }

                let acc: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
                let expected: Vec<f32> =
                    acc.iter().zip(&xs[offset..]).map(|(a, x)| a + w * x).collect();
                for avx in [false, has_avx] {
                    let mut acc = acc.clone();
                    axpy_row(row, w, &mut acc, avx);
                    prop_assert_eq!(acc.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
                }

                // Both widths store every element; the last store is also checked below.
                for (avx, sign) in [(false, 1.0), (has_avx, -1.0)] {
                    let new: Vec<f32> = (0..n).map(|i| sign * i as f32).collect();
                    store_row(row, &new, avx);
                    let stored: Vec<f32> =
                        row.iter().map(|a| f32::from_bits(a.load(Ordering::Relaxed))).collect();
                    prop_assert_eq!(stored, new);
                }
            }
            for (i, (&after, &before)) in shared.iter().zip(&xs).enumerate() {
                if i >= offset && i < offset + n {
                    prop_assert_eq!(after, -((i - offset) as f32));
                } else {
                    prop_assert_eq!(after, before, "element {} outside the row changed", i);
                }
            }
        }
    }

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
        for (i, p) in side.params.as_mut_slice().iter_mut().enumerate() {
            if i % side.stride <= k {
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
                Worker::repr(&view, rows, r, k, &mut wide, avx_available());
                let bits = |v: &[f32]| v[..=k].iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&narrow), bits(&wide), "row {r}");
                assert!(narrow[..=k].iter().all(|v| v.is_finite()));
            }
        }
    }

    #[test]
    fn packed_rows_hold_the_matrix_rows() {
        let fm =
            FeatureMatrix::from_rows(5, vec![vec![(0, 1.0), (3, 0.5)], vec![], vec![(4, 2.0)]])
                .unwrap();
        let packed = PackedRows::of(&fm).expect("not an identity matrix");
        for r in 0..3 {
            let (feats, weights) = fm.row(r);
            let got: Vec<(usize, f32)> = packed
                .row(r)
                .iter()
                .map(|e| (e.feature as usize, e.weight))
                .collect();
            let want: Vec<(usize, f32)> =
                feats.iter().copied().zip(weights.iter().copied()).collect();
            assert_eq!(got, want, "row {r}");
        }
        assert!(PackedRows::of(&FeatureMatrix::identity(4)).is_none());
    }
}

/// `n` random `(user, item)` pairs (seeded) among `users × items`, as interactions.
#[cfg(test)]
fn random_interactions(seed: u64, n: usize, users: usize, items: usize) -> Interactions {
    let mut pick = Rng::new(seed);
    let pairs: Vec<(usize, usize)> = (0..n)
        .map(|_| (pick.below(users), pick.below(items)))
        .collect();
    Interactions::from_pairs(users, items, pairs).unwrap()
}

/// Three one-thread epochs (seeds 0, 1, 2) of `work`, shuffled with `order` before each if
/// given; returns the scoring rows they kept.
#[cfg(test)]
fn three_epochs(
    t: &Trainer<'_>,
    users: &mut Side,
    items: &mut Side,
    work: &mut WorkList,
    mut order: Option<&mut Rng>,
) -> Option<AlignedBuf> {
    let mut scoring = None;
    for seed in 0..3 {
        if let Some(rng) = order.as_deref_mut() {
            work.shuffle(rng);
        }
        run_epoch(t, users, items, work.view(), &[seed], None, &mut scoring);
    }
    scoring
}

#[cfg(test)]
impl<'a> Trainer<'a> {
    /// A trainer without features (adagrad, learning rate 0.05, no L2, 10 WARP draws).
    fn collaborative(
        k: usize,
        loss: Loss,
        interactions: &'a Interactions,
        positives: &'a PairSet,
    ) -> Trainer<'a> {
        Trainer {
            k,
            loss,
            schedule: Schedule::Adagrad,
            learning_rate: 0.05,
            user_alpha: 0.0,
            item_alpha: 0.0,
            max_sampled: 10,
            user_rows: FeatureRows::Identity,
            item_rows: FeatureRows::Identity,
            item_class: None,
            interactions,
            positives,
            user_hot: None,
            item_hot: None,
        }
    }
}

#[cfg(test)]
mod scoring_tests {
    use super::*;

    /// Without item features the bfloat16 scoring rows are kept across epochs, so every
    /// change to an item's parameters must re-encode its row: after training they equal a
    /// fresh build, bit for bit.
    #[test]
    fn identity_scoring_rows_stay_exact_across_epochs() {
        let x = random_interactions(3, 400, 30, 50);
        let mut rng = Rng::new(1);
        let mut items = Side::new(50, 8, Schedule::Adagrad, &mut rng);
        let mut users = Side::new(30, 8, Schedule::Adagrad, &mut rng);
        let before = items.clone();
        let positives = PairSet::new(&x);
        for loss in [Loss::Warp, Loss::WarpKos { k: 2, n: 5 }] {
            let t = Trainer::collaborative(8, loss, &x, &positives);
            let mut work = WorkList::new(loss, &x, None);
            let scoring = three_epochs(&t, &mut users, &mut items, &mut work, None);
            let kept = scoring.expect("WARP keeps scoring rows");
            let fresh = build_scoring(&items.view(), FeatureRows::Identity, 50, 8, None, None);
            let bits =
                |b: &AlignedBuf| b.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&kept), bits(&fresh), "{loss:?}");
        }
        assert_ne!(items, before, "training changed the item parameters");
    }

    /// The rows are the same, bit for bit, whether built by one thread into a new buffer or
    /// by two threads over an old one (several chunks, rows of several features each).
    #[test]
    fn scoring_rows_built_in_parallel_into_an_old_buffer_are_the_same() {
        let n = 2500;
        let rows = (0..n).map(|i| vec![(i, 1.0), (n + i % 7, 0.5), (n + 7 + i % 3, 0.25)]);
        let rows = PackedRows::of(&FeatureMatrix::from_rows(n + 10, rows).unwrap()).unwrap();
        let mut items = Side::new(n + 10, 8, Schedule::Adagrad, &mut Rng::new(2));
        let rows = FeatureRows::Packed(&rows);
        let serial = build_scoring(&items.view(), rows, n, 8, None, None);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut old = AlignedBuf::default();
        old.resize(serial.as_slice().len(), f32::NAN);
        let parallel = build_scoring(&items.view(), rows, n, 8, Some(&pool), Some(old));
        let bits = |b: &AlignedBuf| b.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&serial), bits(&parallel));
        // A buffer of the wrong size is not reused.
        let mut short = AlignedBuf::default();
        short.resize(16, f32::NAN);
        let fresh = build_scoring(&items.view(), rows, n, 8, Some(&pool), Some(short));
        assert_eq!(bits(&serial), bits(&fresh));
    }
}

#[cfg(test)]
mod class_tests {
    use super::*;
    use crate::rng::Rng;
    use proptest::prelude::*;

    fn entries(rows: &PackedRows, r: usize) -> Vec<(u32, u32)> {
        rows.row(r)
            .iter()
            .map(|e| (e.feature, e.weight.to_bits()))
            .collect()
    }

    proptest! {
        /// Every row's class row holds exactly its entries, no two classes hold the same
        /// entries, classes are numbered in order of first appearance, and rows are grouped
        /// only when at most three in four are distinct.
        #[test]
        fn classes_group_exactly_the_identical_rows(
            pool in proptest::collection::vec(
                proptest::collection::btree_map(0usize..12, prop_oneof![Just(1.0f32), Just(0.5)], 0..4),
                1..6,
            ),
            picks in proptest::collection::vec(0usize..6, 1..60),
        ) {
            // Feature 12 in every row: never an identity matrix (which has no packed form).
            let rows = picks.iter().map(|&p| {
                let row = pool[p % pool.len()].iter().map(|(&f, &w)| (f, w));
                row.chain([(12, 0.25)]).collect::<Vec<_>>()
            });
            let fm = FeatureMatrix::from_rows(13, rows).unwrap();
            let packed = PackedRows::of(&fm).unwrap();
            let n = packed.n_rows();
            let distinct: std::collections::HashSet<Vec<(u32, u32)>> =
                (0..n).map(|r| entries(&packed, r)).collect();
            match packed.classes() {
                None => prop_assert!(4 * distinct.len() > 3 * n),
                Some((class, rows)) => {
                    prop_assert!(4 * distinct.len() <= 3 * n);
                    prop_assert_eq!(class.len(), n);
                    prop_assert_eq!(rows.n_rows(), distinct.len());
                    let mut next = 0;
                    for r in 0..n {
                        let c = class[r] as usize;
                        prop_assert!(c <= next, "class {} numbered before class {}", c, next);
                        next = next.max(c + 1);
                        prop_assert_eq!(entries(&rows, c), entries(&packed, r));
                    }
                }
            }
        }
    }

    /// `n` items in `classes` classes (item `i` in class `i % classes`); class `c` has two
    /// private features, `2c` and `2c + 1`, weighted 0.5 each (with `shared`, also feature
    /// `2 × classes`, which every item has).
    fn class_features(n: usize, classes: usize, shared: bool) -> PackedRows {
        let rows = (0..n).map(|i| {
            let c = i % classes;
            let mut r = vec![(2 * c, 0.5), (2 * c + 1, 0.5)];
            if shared {
                r.push((2 * classes, 0.25));
            }
            r
        });
        PackedRows::of(&FeatureMatrix::from_rows(2 * classes + 1, rows).unwrap()).unwrap()
    }

    /// Trains `epochs` epochs of `loss` with the items' feature rows per item (`class`
    /// `None`) or per class, and returns the model's sides and the scoring rows.
    fn train(
        loss: Loss,
        x: &Interactions,
        item_rows: &PackedRows,
        class: Option<&[u32]>,
        n_item_features: usize,
    ) -> (Side, Side, Option<AlignedBuf>) {
        let mut rng = Rng::new(5);
        let mut items = Side::new(n_item_features, 8, Schedule::Adagrad, &mut rng);
        let mut users = Side::new(x.n_users(), 8, Schedule::Adagrad, &mut rng);
        let positives = PairSet::new(x);
        let t = Trainer {
            item_rows: FeatureRows::Packed(item_rows),
            item_class: class,
            ..Trainer::collaborative(8, loss, x, &positives)
        };
        let mut work = WorkList::new(loss, x, class);
        let order = &mut Rng::new(9);
        let scoring = three_epochs(&t, &mut users, &mut items, &mut work, Some(order));
        (users, items, scoring)
    }

    /// Without a scoring table (BPR, logistic) a class row is only a shorter way to reach
    /// the same features: training per class is training per item, bit for bit.
    #[test]
    fn class_rows_train_bpr_and_logistic_exactly_like_item_rows() {
        let x = random_interactions(11, 300, 20, 60);
        let per_item = class_features(60, 7, true);
        let (class, per_class) = per_item.classes().expect("60 items in 7 classes");
        assert_eq!(per_class.n_rows(), 7);
        for loss in [Loss::Bpr, Loss::Logistic] {
            let (u1, i1, _) = train(loss, &x, &per_item, None, 15);
            let (u2, i2, _) = train(loss, &x, &per_class, Some(&class), 15);
            assert_eq!(u1, u2, "{loss:?}: users");
            assert_eq!(i1, i2, "{loss:?}: items");
            let initial = Side::new(15, 8, Schedule::Adagrad, &mut Rng::new(5));
            assert_ne!(i1, initial, "{loss:?}: training changed the items");
        }
    }

    /// WARP scores candidates from one row per class, and an update re-encodes it for every
    /// item of the class: where classes share no feature, the rows kept after an epoch are
    /// exact (a fresh build, bit for bit). Per item they are not (an update leaves the
    /// other items of its class on their old rows until the next epoch's rebuild).
    #[test]
    fn class_scoring_rows_follow_every_update_of_the_class() {
        let x = random_interactions(12, 300, 20, 60);
        let per_item = class_features(60, 7, false);
        let (class, per_class) = per_item.classes().expect("60 items in 7 classes");
        let bits = |b: &AlignedBuf| b.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for loss in [Loss::Warp, Loss::WarpKos { k: 2, n: 5 }] {
            let (_, mut items, kept) = train(loss, &x, &per_class, Some(&class), 15);
            let fresh = build_scoring(
                &items.view(),
                FeatureRows::Packed(&per_class),
                7,
                8,
                None,
                None,
            );
            let kept = kept.expect("WARP keeps scoring rows");
            assert_eq!(bits(&kept), bits(&fresh), "{loss:?}");

            let (_, mut items, kept) = train(loss, &x, &per_item, None, 15);
            let fresh = build_scoring(
                &items.view(),
                FeatureRows::Packed(&per_item),
                60,
                8,
                None,
                None,
            );
            let kept = kept.expect("WARP keeps scoring rows");
            assert_ne!(bits(&kept), bits(&fresh), "{loss:?}");
        }
    }
}

#[cfg(test)]
mod warp_search_tests {
    use super::*;

    /// The loss of one WARP step for user 0's positive 0 when the candidate stream starts
    /// with `first` (8 items; user 0's positives are 0 and 1). At initialisation every score
    /// is within a hair of 0, so every candidate violates the margin of 1.
    fn first_step_loss(first: &[u32]) -> LossTally {
        let x = Interactions::from_pairs(2, 8, [(0, 0), (0, 1), (1, 2)]).unwrap();
        let mut rng = Rng::new(1);
        let mut items = Side::new(8, 4, Schedule::Adagrad, &mut rng);
        let mut users = Side::new(2, 4, Schedule::Adagrad, &mut rng);
        let positives = PairSet::new(&x);
        let t = Trainer::collaborative(4, Loss::Warp, &x, &positives);
        let mut scoring = build_scoring(&items.view(), FeatureRows::Identity, 8, 4, None, None);
        let lock = std::sync::Mutex::new(());
        let view = Some(Shared::new(scoring.as_mut_slice()));
        let mut w = Worker::new(&t, users.view(), items.view(), view, &lock, 7);
        w.ahead[..first.len()].copy_from_slice(first);
        w.ahead_len = first.len();
        w.warp(&Example {
            user: 0,
            item: 0,
            value: 1.0,
            weight: 1.0,
        });
        w.tally
    }

    #[test]
    fn a_violating_positive_is_skipped_but_counted() {
        // As in LightFM: the rank estimate is ⌊(n_items − 1) / draws⌋ with every draw
        // counted, the skipped positive included.
        let direct = first_step_loss(&[5]);
        assert_eq!((direct.count, direct.sum), (1, (7.0f32).ln() as f64));
        let after_positive = first_step_loss(&[1, 5]);
        assert_eq!(after_positive.count, 1);
        assert_eq!(after_positive.sum, (3.0f32).ln() as f64, "⌊7 / 2⌋ = 3");
        let after_two = first_step_loss(&[0, 1, 6]);
        assert_eq!(after_two.sum, (2.0f32).ln() as f64, "⌊7 / 3⌋ = 2");
    }

    #[test]
    fn a_user_with_every_item_draws_no_candidates() {
        // User 0 has all 3 items: no negative exists, so no draw is made and nothing changes;
        // user 1 (one item) still trains.
        let x = Interactions::from_pairs(2, 3, [(0, 0), (0, 1), (0, 2), (1, 0)]).unwrap();
        let mut rng = Rng::new(1);
        let mut items = Side::new(3, 4, Schedule::Adagrad, &mut rng);
        let mut users = Side::new(2, 4, Schedule::Adagrad, &mut rng);
        let before = (items.params.clone(), users.params.clone());
        let positives = PairSet::new(&x);
        let t = Trainer::collaborative(4, Loss::Warp, &x, &positives);
        let mut scoring = build_scoring(&items.view(), FeatureRows::Identity, 3, 4, None, None);
        let lock = std::sync::Mutex::new(());
        let view = Some(Shared::new(scoring.as_mut_slice()));
        let mut w = Worker::new(&t, users.view(), items.view(), view, &lock, 7);
        assert!(w.saturated_users);
        let example = |user| Example {
            user,
            item: 0,
            value: 1.0,
            weight: 1.0,
        };
        w.warp(&example(0));
        w.flush_pending();
        assert_eq!((w.ahead_len, w.tally.count, w.tally.sum), (0, 1, 0.0));
        assert!(before == (items.params.clone(), users.params.clone()));
        // User 1's first candidate is item 2: it violates, with loss ln ⌊2 / 1⌋.
        w.ahead[0] = 2;
        w.ahead_len = 1;
        w.warp(&example(1));
        w.flush_pending();
        assert_eq!((w.tally.count, w.tally.sum), (2, (2.0f32).ln() as f64));
        assert!(before.0 != items.params && before.1 != users.params);
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

#[cfg(test)]
mod block_tests {
    use super::*;

    /// Threads taking blocks from one cursor get disjoint, contiguous pieces of the order
    /// that together cover all of it.
    #[test]
    fn concurrent_takers_partition_the_order() {
        let order: Vec<u32> = (0..10_007).collect();
        let next = AtomicUsize::new(0);
        let taken: Vec<Vec<&[u32]>> = std::thread::scope(|s| {
            let takers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        while let Some(b) = take_block(&order, &next, 64) {
                            mine.push(b);
                        }
                        mine
                    })
                })
                .collect();
            takers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut seen: Vec<u32> = taken
            .iter()
            .flatten()
            .flat_map(|b| b.iter().copied())
            .collect();
        assert!(taken
            .iter()
            .flatten()
            .all(|b| !b.is_empty() && b.len() <= 64 && b.windows(2).all(|w| w[1] == w[0] + 1)));
        seen.sort_unstable();
        assert_eq!(seen, order);
        assert!(take_block(&order, &next, 64).is_none());
    }

    /// An epoch, on one thread or two, makes one step per interaction, whichever thread
    /// takes it: every example, and for WARP-kOS every interaction's user (as LightFM's
    /// `fit_warp_kos`; one step per *user* trained 40 steps here instead of 3,000).
    #[test]
    fn an_epoch_steps_once_per_interaction() {
        let x = random_interactions(5, 3000, 40, 60);
        let positives = PairSet::new(&x);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for loss in [Loss::Logistic, Loss::Warp, Loss::WarpKos { k: 2, n: 5 }] {
            for (seeds, pool) in [(&[1u64][..], None), (&[1, 2][..], Some(&pool))] {
                let mut rng = Rng::new(1);
                let mut items = Side::new(60, 8, Schedule::Adagrad, &mut rng);
                let mut users = Side::new(40, 8, Schedule::Adagrad, &mut rng);
                let t = Trainer::collaborative(8, loss, &x, &positives);
                let work = WorkList::new(loss, &x, None);
                let mut scoring = None;
                let tally = run_epoch(
                    &t,
                    &mut users,
                    &mut items,
                    work.view(),
                    seeds,
                    pool,
                    &mut scoring,
                );
                let threads = seeds.len();
                assert_eq!(tally.count, x.len() as u64, "{loss:?}, {threads} thread(s)");
            }
        }
    }
}

#[cfg(test)]
mod work_tests {
    use super::*;

    /// Shuffling the examples in place, epoch after epoch, gives the same sequence as
    /// shuffling their indices with the same random stream and gathering them.
    #[test]
    fn shuffled_examples_match_gathered_indices() {
        let x = random_interactions(9, 500, 20, 70);
        let mut work = WorkList::new(Loss::Warp, &x, None);
        let mut order: Vec<u32> = (0..x.len() as u32).collect();
        let (mut a, mut b) = (Rng::new(4), Rng::new(4));
        for _ in 0..3 {
            work.shuffle(&mut a);
            b.shuffle(&mut order);
            let gathered: Vec<Example> = order
                .iter()
                .map(|&e| {
                    let e = e as usize;
                    Example {
                        user: x.users_raw()[e],
                        item: x.items_raw()[e],
                        value: x.values_raw()[e],
                        weight: x.weights_raw()[e],
                    }
                })
                .collect();
            let Work::Examples(shuffled) = work.view() else {
                panic!("WARP trains on examples")
            };
            assert_eq!(shuffled, &gathered[..]);
        }
        assert_ne!(order, (0..x.len() as u32).collect::<Vec<_>>());
        let kos = WorkList::new(Loss::WarpKos { k: 2, n: 5 }, &x, None);
        let Work::Users(users) = kos.view() else {
            panic!("WARP-kOS trains on users")
        };
        assert_eq!(
            users,
            x.users_raw(),
            "one entry per interaction, as LightFM"
        );
    }
}
