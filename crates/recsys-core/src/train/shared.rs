//! The parameters as training threads share them, and every `unsafe` and `asm!` of training
//! (the parent module denies `unsafe_code`; this one alone allows it): the racy views
//! ([`Shared`], [`Bufs`], [`SideView`]), the vector-width row moves (module `racy`), the
//! AVX-compiled entry points, the prefetches, the SIMD kernels of the bfloat16 scoring rows
//! (module `bf16`), huge-page advice ([`advise_huge_pages`]) and the float views of
//! `AlignedBuf`'s blocks ([`block_floats`]).

// The one module of training that may use `unsafe` (see the parent module).
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::kernels::prefetch_ptr;

use super::layout::Block;
use super::rows::{apply_rows, repr_rows, Opt, RowBuf};
use super::work::FeatureRows;

/// A lock-free view of an `f32` slice; every access is a relaxed atomic operation.
///
/// The view carries the lifetime `'a` of the mutable borrow it was made from ([`Self::new`]),
/// so safe code cannot keep a view (or a [`Bufs`] or [`SideView`] made of views) past the
/// buffer it points into, nor touch the buffer otherwise while a view of it is alive: the
/// buffer stays mutably borrowed for as long as any copy of the view exists.
///
/// (A `compile_fail` doc test would show this, but doc tests compile as another crate, which
/// cannot name these `pub(super)` types; the borrow is checked like any other, see `new`.)
#[derive(Clone, Copy)]
pub(super) struct Shared<'a> {
    ptr: *mut f32,
    pub(super) len: usize,
    /// The exclusive borrow of the viewed slice, held (shared among the view's copies) for
    /// as long as the view lives.
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: all accesses through `Shared` are atomic (relaxed `AtomicU32` operations, or the
// vector moves of `racy`, see its documentation), and the slice it points to is mutably
// borrowed for `'a`, as long as any copy of the view exists, so nothing else accesses it
// meanwhile and it outlives every thread the view is sent to.
unsafe impl Send for Shared<'_> {}
unsafe impl Sync for Shared<'_> {}

impl<'a> Shared<'a> {
    /// A view of nothing.
    pub(super) const EMPTY: Shared<'a> = Shared {
        ptr: std::ptr::NonNull::dangling().as_ptr(),
        len: 0,
        _borrow: PhantomData,
    };

    /// A view of `xs`, which stays mutably borrowed for as long as the view (or any copy of
    /// it) lives.
    pub(super) fn new(xs: &'a mut [f32]) -> Shared<'a> {
        Shared {
            ptr: xs.as_mut_ptr(),
            len: xs.len(),
            _borrow: PhantomData,
        }
    }

    /// The `n` atomics starting at `base`, bounds-checked once (so the loops over a row have
    /// no per-element checks and can be unrolled).
    #[inline(always)]
    pub(super) fn row(&self, base: usize, n: usize) -> &'a [AtomicU32] {
        assert!(
            base <= self.len && n <= self.len - base,
            "parameter row {base}+{n} out of range {}",
            self.len
        );
        // SAFETY: `base..base + n` is in bounds (checked above); `f32` and `AtomicU32` have
        // the same size and alignment; the storage is mutably borrowed for `'a` (see `new`),
        // so for `'a` it lives and is accessed only through views, that is, atomically.
        unsafe { std::slice::from_raw_parts(self.ptr.add(base).cast::<AtomicU32>(), n) }
    }

    /// Every value, read with relaxed atomic loads.
    #[cfg(test)]
    pub(super) fn to_vec(self) -> Vec<f32> {
        (self.row(0, self.len).iter())
            .map(|v| f32::from_bits(v.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Parameter rows and their optimiser state, laid out alike (`stride` floats per row), as
/// views of buffers borrowed for `'a`.
#[derive(Clone, Copy)]
pub(super) struct Bufs<'a> {
    pub(super) params: Shared<'a>,
    pub(super) acc: Shared<'a>,
    /// Adadelta's E\[Δx²\] (empty for adagrad).
    pub(super) delta: Shared<'a>,
}

impl<'a> Bufs<'a> {
    pub(super) const EMPTY: Bufs<'a> = Bufs {
        params: Shared::EMPTY,
        acc: Shared::EMPTY,
        delta: Shared::EMPTY,
    };
}

/// One side's parameters as a training thread sees them: the model's rows, and, in
/// multi-threaded training, the thread's own copies of the hot rows (see [`super::hot`]),
/// which the packed feature rows address as features `boundary + slot`. Both are borrowed
/// for `'a` (see [`Shared`]).
#[derive(Clone, Copy)]
pub(super) struct SideView<'a> {
    pub(super) main: Bufs<'a>,
    pub(super) hot: Bufs<'a>,
    /// The side's number of features (`usize::MAX` without hot rows).
    pub(super) boundary: usize,
    pub(super) stride: usize,
}

impl<'a> SideView<'a> {
    /// Where feature `f`'s row lives: the buffers and the row's first index.
    #[inline(always)]
    pub(super) fn at(&self, f: usize) -> (&Bufs<'a>, usize) {
        if f < self.boundary {
            (&self.main, f * self.stride)
        } else {
            (&self.hot, (f - self.boundary) * self.stride)
        }
    }
}

/// Buffers at least this large ask for transparent huge pages (see [`advise_huge_pages`]).
const HUGE_PAGES_FROM: usize = 4 << 20;

/// Asks the kernel to back `v`'s allocation with transparent huge pages if it is at least
/// [`HUGE_PAGES_FROM`] bytes (Linux; elsewhere, and on any error, nothing happens). Call it
/// before the memory is first written: pages already touched stay small.
pub(super) fn advise_huge_pages<T>(v: &mut Vec<T>) {
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

/// The first `len` floats of `blocks`.
///
/// # Panics
/// If `blocks` hold fewer than `len` floats.
#[inline]
pub(super) fn block_floats(blocks: &[Block], len: usize) -> &[f32] {
    assert!(
        len <= 16 * blocks.len(),
        "{len} floats in {} blocks",
        blocks.len()
    );
    // SAFETY: `Block` is `repr(C)` over `[f32; 16]` with size 64 = 16 × 4, so the blocks
    // are a contiguous run of initialised `f32`s, at least `len` of them (checked).
    unsafe { std::slice::from_raw_parts(blocks.as_ptr().cast::<f32>(), len) }
}

/// [`block_floats`], mutable.
#[inline]
pub(super) fn block_floats_mut(blocks: &mut [Block], len: usize) -> &mut [f32] {
    assert!(
        len <= 16 * blocks.len(),
        "{len} floats in {} blocks",
        blocks.len()
    );
    // SAFETY: as in `block_floats`, and the blocks are borrowed mutably.
    unsafe { std::slice::from_raw_parts_mut(blocks.as_mut_ptr().cast::<f32>(), len) }
}

/// Relaxed atomic loads of a parameter row into a local buffer; with `avx` (which the
/// caller guarantees the CPU has) eight elements at a time.
///
/// With `avx` the remainder is done one element at a time, never four: these helpers are
/// inlined into AVX-compiled functions, and on this project's benchmark machine a
/// legacy-SSE instruction after 256-bit AVX code costs about 110 ns (see [`racy`]).
#[inline(always)]
pub(super) fn load_row(src: &[AtomicU32], dst: &mut [f32], avx: bool) {
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
pub(super) fn store_row(dst: &[AtomicU32], src: &[f32], avx: bool) {
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
pub(super) fn axpy_row(src: &[AtomicU32], w: f32, out: &mut [f32], avx: bool) {
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
/// racing load or store would be, and each aligned 4-byte element of a vector access is read
/// or written as one indivisible unit: the block does what four relaxed atomic accesses would
/// do, in one instruction. The arithmetic happens on local buffers, in the same order as the
/// scalar code, so results are bit-identical to it.
///
/// # Atomicity: what the architecture manuals guarantee
///
/// *Intel® 64 and IA-32 Architectures Software Developer's Manual*, Vol. 3A, §9.1.1
/// "Guaranteed Atomic Operations" (§8.1.1 in older editions) guarantees that reading
/// or writing a byte, a word aligned on a 16-bit boundary, a doubleword aligned on a 32-bit
/// boundary and a quadword aligned on a 64-bit boundary are always carried out atomically,
/// and says that "an x87 instruction or an SSE instruction that accesses data larger than a
/// quadword may be implemented using multiple memory accesses": a 16-byte `movups` (or a
/// 32-byte `vmovups`) is not guaranteed atomic as a whole, so two threads may see a row's
/// four (eight) elements from different writes. The AMD counterpart is *AMD64 Architecture
/// Programmer's Manual*, Vol. 2, §7.3.2 "Access Atomicity" (cacheable, naturally aligned
/// single loads and stores of up to a quadword are atomic).
///
/// Neither section states in so many words how the "multiple memory accesses" of a wider
/// access are cut. That each aligned 4-byte element within them is accessed indivisibly (so
/// no element is ever a mix of two writes) is our reading of them, the basis on which this
/// module claims the semantics of relaxed per-element atomics; every element here is
/// 4-byte aligned (the rows are `AtomicU32`s) and, in training, every piece lies within one
/// 64-byte line (rows start on lines and pieces on 16-byte multiples). Soundness does not
/// rest on it: whatever bits a racing access produced, every bit pattern is a valid `f32`.
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
pub(super) mod racy {
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
        // requirement; see the module documentation for why this is not a data race, and
        // for its atomicity per 4-byte element (Intel SDM Vol. 3A §9.1.1 "Guaranteed Atomic
        // Operations"; AMD APM Vol. 2 §7.3.2 "Access Atomicity").
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

    /// Adagrad's step ([`super::super::rows::adagrad_scalar`], the same operations in the
    /// same order) on the first `m` elements of a shared row, `m` the largest multiple of 4
    /// `≤ grads.len()`; returns `m`.
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
        // requirement; as with `get4`, every aligned 4-byte element is read as one unit (a
        // 32-byte access is not atomic as a whole: Intel SDM Vol. 3A §9.1.1; see the module
        // documentation).
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

/// Whether this CPU has AVX (checked once per worker or build, then carried as a flag).
pub(super) fn avx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Prefetches the whole lines holding `words` elements of `buf` from `start` (a line
/// boundary).
#[inline(always)]
pub(super) fn prefetch_words(buf: Shared, start: usize, words: usize) {
    if start < buf.len {
        for line in (0..words).step_by(16) {
            // The pointer stays in bounds or one line past: prefetching never faults.
            prefetch_ptr(buf.ptr.wrapping_add(start + line).cast());
        }
    }
}

#[inline(always)]
pub(super) fn prefetch(buf: Shared, start: usize) {
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

/// [`repr_rows`] compiled with AVX.
///
/// # Safety
/// The CPU must support AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn repr_avx(side: &SideView, rows: FeatureRows<'_>, row: usize, k: usize, out: &mut [f32]) {
    repr_rows(side, rows, row, k, out, true);
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

/// Writes the representation (k latent values, then the bias) of `row` into `out`: through
/// [`repr_avx`] where `avx` ([`Opt::avx`]) says the CPU has AVX, else [`repr_rows`].
///
/// `avx` must be true only where the CPU has AVX.
#[inline]
pub(super) fn repr(
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

/// One optimiser step with gradient `grad` on every feature of `row` ([`apply_rows`]),
/// compiled with AVX ([`apply_rows_avx`]) where `opt.avx` says the CPU has it.
#[inline(always)]
pub(super) fn apply(
    side: SideView,
    rows: FeatureRows<'_>,
    row: usize,
    grad: &[f32],
    alpha: f32,
    opt: &Opt,
    buf: &mut RowBuf,
) {
    #[cfg(target_arch = "x86_64")]
    if opt.avx {
        // SAFETY: `opt.avx` is set only when the CPU supports AVX.
        unsafe { apply_rows_avx(side, rows, row, grad, alpha, opt, buf) };
        return;
    }
    apply_rows(side, rows, row, grad, alpha, opt, buf);
}

/// Adagrad's step on the first whole vector pieces of a shared row ([`racy::adagrad_avx`]
/// where `avx`, which the caller guarantees the CPU has, else [`racy::adagrad`]); returns
/// how many elements it did.
#[inline(always)]
pub(super) fn adagrad_prefix(
    prow: &[AtomicU32],
    arow: &[AtomicU32],
    grads: &[f32],
    w: f32,
    lr: f32,
    alpha: f32,
    avx: bool,
) -> usize {
    if avx {
        // SAFETY: `avx` is set only when the CPU supports AVX.
        unsafe { racy::adagrad_avx(prow, arow, grads, w, lr, alpha) }
    } else {
        racy::adagrad(prow, arow, grads, w, lr, alpha)
    }
}

/// The SIMD kernels of the bfloat16 scoring rows (module `compact`, which describes the
/// format): SSE2, part of the x86-64 baseline (elsewhere `encode_wide` does nothing and
/// `compact::dot` has a portable form).
pub(super) mod bf16 {
    use std::sync::atomic::AtomicU32;

    /// The first `4 × m` words of `compact::encode_row` for the largest `m` with `8 × m` values and
    /// `4 × m` words available; returns `4 × m`.
    #[inline]
    pub(in crate::train) fn encode_wide(values: &[f32], words: &mut [f32]) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{
                __m128i, _mm_add_epi32, _mm_and_si128, _mm_andnot_si128, _mm_castps_si128,
                _mm_cmpunord_ps, _mm_loadu_ps, _mm_or_si128, _mm_set1_epi32, _mm_shuffle_epi32,
                _mm_srli_epi32, _mm_srli_epi64, _mm_storeu_si128, _mm_unpacklo_epi64,
            };
            let m = (values.len() / 8).min(words.len() / 4);
            // SAFETY: SSE2 is part of the x86-64 baseline; chunk `c` reads values 8c..8c + 8 and
            // writes words 4c..4c + 4, in bounds for c < m.
            unsafe {
                let (one, bias, quiet) = (
                    _mm_set1_epi32(1),
                    _mm_set1_epi32(0x7FFF),
                    _mm_set1_epi32(0x0040_0000),
                );
                let high = _mm_set1_epi32(0xFFFF_0000_u32 as i32);
                // Four values → their bfloat16 in the high halves of four lanes (as `encode`:
                // round to nearest even; a NaN keeps its top bits with the quiet bit set).
                let round = |v: std::arch::x86_64::__m128| -> __m128i {
                    let b = _mm_castps_si128(v);
                    let odd = _mm_and_si128(_mm_srli_epi32(b, 16), one);
                    let rounded = _mm_add_epi32(b, _mm_add_epi32(bias, odd));
                    let nan = _mm_castps_si128(_mm_cmpunord_ps(v, v));
                    let r = _mm_or_si128(
                        _mm_and_si128(nan, _mm_or_si128(b, quiet)),
                        _mm_andnot_si128(nan, rounded),
                    );
                    // Lane 2i: its bfloat16 low, lane 2i + 1's high: one word per lane pair.
                    let pairs = _mm_or_si128(
                        _mm_srli_epi32(r, 16),
                        _mm_srli_epi64(_mm_and_si128(r, high), 32),
                    );
                    _mm_shuffle_epi32::<0b10_00_10_00>(pairs)
                };
                for c in 0..m {
                    let a = round(_mm_loadu_ps(values.as_ptr().add(8 * c)));
                    let b = round(_mm_loadu_ps(values.as_ptr().add(8 * c + 4)));
                    _mm_storeu_si128(
                        words.as_mut_ptr().add(4 * c).cast(),
                        _mm_unpacklo_epi64(a, b),
                    );
                }
            }
            4 * m
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (values, words);
            0
        }
    }

    /// `Σ u[i] · row[i]` over the whole row: `compact::dot` on x86-64 (its contract and
    /// summation order).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(in crate::train) fn dot(row: &[AtomicU32], u: &[f32]) -> f32 {
        assert!(row.len().is_multiple_of(4) && u.len() == 2 * row.len());
        // SAFETY: SSE2 is part of the x86-64 baseline; every chunk of `u` has 8 elements and
        // every chunk of `row` 4 (checked above).
        unsafe {
            use std::arch::x86_64::{
                _mm_add_ps, _mm_castps_si128, _mm_castsi128_ps, _mm_loadu_ps, _mm_mul_ps,
                _mm_setzero_ps, _mm_setzero_si128, _mm_storeu_ps, _mm_unpackhi_epi16,
                _mm_unpacklo_epi16,
            };
            let (mut a1, mut a2) = (_mm_setzero_ps(), _mm_setzero_ps());
            let zero = _mm_setzero_si128();
            for (r, u) in row.chunks_exact(4).zip(u.chunks_exact(8)) {
                let v = _mm_castps_si128(super::racy::get4(r));
                let lo = _mm_castsi128_ps(_mm_unpacklo_epi16(zero, v));
                let hi = _mm_castsi128_ps(_mm_unpackhi_epi16(zero, v));
                a1 = _mm_add_ps(a1, _mm_mul_ps(lo, _mm_loadu_ps(u.as_ptr())));
                a2 = _mm_add_ps(a2, _mm_mul_ps(hi, _mm_loadu_ps(u.as_ptr().add(4))));
            }
            let mut s = [0.0f32; 4];
            _mm_storeu_ps(s.as_mut_ptr(), _mm_add_ps(a1, a2));
            (s[0] + s[1]) + (s[2] + s[3])
        }
    }
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
}
