//! The dot-product kernel, with run-time CPU dispatch.
//!
//! Item vectors are stored in *panels* of [`LANES`] items, dimension-major: the `d`-th
//! component of the `l`-th item of panel `p` is `panels[(p * dim + d) * LANES + l]`. A query
//! component is broadcast and multiplied with one panel row, so eight similarities are
//! accumulated side by side in one vector register and no horizontal sum is ever needed.
//! The micro-kernel keeps `Q` queries × `P` panels of accumulators in registers.
//!
//! Every similarity is summed in the same order (component 0, 1, …, `dim − 1`, starting from
//! `+0.0`) whatever `Q` and `P` are, so a similarity does not depend on how it was asked for
//! (single query, batch, table build) and `sim(i, j) == sim(j, i)` bit for bit. The AVX2
//! path uses fused multiply-adds, the portable path separate multiplies and adds: the two
//! paths can differ in the last bits, but a process always uses one of them.

/// Items per panel (one AVX register of `f32`).
pub(crate) const LANES: usize = 8;

/// Which instruction set the kernel runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// Plain Rust, separate multiply and add (auto-vectorised for the baseline target).
    Portable,
    /// Compiled with AVX2 + FMA, chosen at run time when the CPU has them.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Kernel::Avx2Fma;
            }
        }
        Kernel::Portable
    }

    /// `out[q * stride + p * LANES + l] = clamp(dot(query q, item l of panel p), -1, 1)` for
    /// every query (`queries` holds them contiguously, `dim` floats each) and every panel in
    /// `panels` (`n_panels * dim * LANES` floats). Each output row needs
    /// `n_panels * LANES <= stride` floats.
    pub(crate) fn dots(
        self,
        queries: &[f32],
        panels: &[f32],
        dim: usize,
        out: &mut [f32],
        stride: usize,
    ) {
        if dim == 0 {
            return;
        }
        let n_queries = queries.len() / dim;
        let n_panels = panels.len() / (dim * LANES);
        assert_eq!(queries.len(), n_queries * dim);
        assert_eq!(panels.len(), n_panels * dim * LANES);
        assert!(n_panels * LANES <= stride);
        assert!(out.len() >= n_queries * stride);
        match self {
            Kernel::Portable => dots_dispatch::<false>(queries, panels, dim, n_panels, out, stride),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Avx2Fma` is only constructed by `detect`, after checking the CPU.
            Kernel::Avx2Fma => unsafe { dots_avx2(queries, panels, dim, n_panels, out, stride) },
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2(
    queries: &[f32],
    panels: &[f32],
    dim: usize,
    n_panels: usize,
    out: &mut [f32],
    stride: usize,
) {
    dots_dispatch::<true>(queries, panels, dim, n_panels, out, stride)
}

/// Splits the work into register-blocked micro-kernel calls: 4 queries × 2 panels when
/// there are several queries, 1 query × 8 panels for a single one (enough independent
/// accumulators to hide the multiply-add latency), and narrower kernels for the remainders.
#[inline(always)]
fn dots_dispatch<const FUSED: bool>(
    queries: &[f32],
    panels: &[f32],
    dim: usize,
    n_panels: usize,
    out: &mut [f32],
    stride: usize,
) {
    let n_queries = queries.len() / dim;
    let mut q0 = 0;
    while q0 + 4 <= n_queries {
        let qs = &queries[q0 * dim..(q0 + 4) * dim];
        let os = &mut out[q0 * stride..(q0 + 4) * stride];
        let main = n_panels / 2 * 2;
        micro::<4, 2, FUSED>(qs, panels, dim, 0, main, os, stride);
        micro::<4, 1, FUSED>(qs, panels, dim, main, n_panels, os, stride);
        q0 += 4;
    }
    for q in q0..n_queries {
        let qs = &queries[q * dim..(q + 1) * dim];
        let os = &mut out[q * stride..(q + 1) * stride];
        let main = n_panels / 8 * 8;
        micro::<1, 8, FUSED>(qs, panels, dim, 0, main, os, stride);
        micro::<1, 1, FUSED>(qs, panels, dim, main, n_panels, os, stride);
    }
}

/// `Q` queries (`queries` holds exactly `Q * dim` floats) × panels `from..to`, `P` panels at
/// a time (`to - from` a multiple of `P`).
// Index loops over the fixed-size accumulator block read like the maths and unroll fully.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn micro<const Q: usize, const P: usize, const FUSED: bool>(
    queries: &[f32],
    panels: &[f32],
    dim: usize,
    from: usize,
    to: usize,
    out: &mut [f32],
    stride: usize,
) {
    let panel_len = dim * LANES;
    // Slices whose lengths are checked once, so the inner loop has no bounds checks.
    let query_rows: [&[f32]; Q] = std::array::from_fn(|q| &queries[q * dim..(q + 1) * dim]);
    let mut p = from;
    while p + P <= to {
        let panel_rows: [&[[f32; LANES]]; P] = std::array::from_fn(|pp| {
            let panel = &panels[(p + pp) * panel_len..(p + pp + 1) * panel_len];
            panel.as_chunks::<LANES>().0
        });
        for rows in &panel_rows {
            assert_eq!(rows.len(), dim);
        }
        for q in &query_rows {
            assert_eq!(q.len(), dim);
        }
        let mut acc = [[[0.0f32; LANES]; P]; Q];
        for d in 0..dim {
            for pp in 0..P {
                let row = &panel_rows[pp][d];
                for q in 0..Q {
                    let a = query_rows[q][d];
                    for l in 0..LANES {
                        acc[q][pp][l] = if FUSED {
                            a.mul_add(row[l], acc[q][pp][l])
                        } else {
                            acc[q][pp][l] + a * row[l]
                        };
                    }
                }
            }
        }
        for q in 0..Q {
            for pp in 0..P {
                let at = q * stride + (p + pp) * LANES;
                let o = &mut out[at..at + LANES];
                for l in 0..LANES {
                    // Rounding can push a self-similarity just past 1; the clamp keeps the
                    // documented range (min/max instructions, so it vectorises).
                    o[l] = acc[q][pp][l].clamp(-1.0, 1.0);
                }
            }
        }
        p += P;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random floats in `[-1, 1)`.
    fn floats(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn naive(q: &[f32], panels: &[f32], dim: usize, item: usize) -> f64 {
        let (p, l) = (item / LANES, item % LANES);
        (0..dim)
            .map(|d| q[d] as f64 * panels[(p * dim + d) * LANES + l] as f64)
            .sum()
    }

    fn check(kernel: Kernel, seed: u64) {
        for &(dim, n_panels, n_queries) in
            &[(1, 1, 1), (3, 5, 2), (30, 17, 7), (32, 9, 4), (7, 8, 5)]
        {
            // Scaled so that most dot products stay inside the clamp.
            let scale = 1.0 / (dim as f32).sqrt();
            let panels: Vec<f32> = floats(seed, dim * n_panels * LANES)
                .iter()
                .map(|x| x * scale)
                .collect();
            let qv: Vec<f32> = floats(seed + 1, dim * n_queries)
                .iter()
                .map(|x| x * scale)
                .collect();
            let queries: Vec<&[f32]> = qv.chunks(dim).collect();
            let stride = n_panels * LANES + 3;
            let mut flat = vec![f32::NAN; n_queries * stride];
            kernel.dots(&qv, &panels, dim, &mut flat, stride);
            let outs: Vec<&[f32]> = flat
                .chunks(stride)
                .map(|o| &o[..n_panels * LANES])
                .collect();
            for (q, o) in outs.iter().enumerate() {
                for (item, &got) in o.iter().enumerate() {
                    let want = naive(queries[q], &panels, dim, item).clamp(-1.0, 1.0);
                    assert!(
                        (got as f64 - want).abs() < 1e-5 * dim as f64,
                        "seed {seed} kernel {kernel:?} dim {dim} q {q} item {item}: {got} vs {want}"
                    );
                }
            }
            // One query at a time gives the same bits as the blocked call.
            for (q, o) in outs.iter().enumerate() {
                let mut single = vec![0.0; n_panels * LANES];
                kernel.dots(queries[q], &panels, dim, &mut single, n_panels * LANES);
                assert_eq!(
                    &single[..],
                    *o,
                    "seed {seed} kernel {kernel:?} dim {dim} q {q}"
                );
            }
        }
    }

    #[test]
    fn portable_kernel_matches_naive_dot() {
        check(Kernel::Portable, 7);
    }

    #[test]
    fn detected_kernel_matches_naive_dot() {
        eprintln!("detected kernel: {:?}", Kernel::detect());
        check(Kernel::detect(), 11);
    }
}
