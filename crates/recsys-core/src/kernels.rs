//! Hot loops with runtime CPU dispatch: compiled once for the baseline target and once with
//! AVX2 + FMA, chosen at run time, so a portable binary still uses the wide vector units.

/// Asks the CPU to start loading the cache line at `p` (a hint: never faults, changes no
/// result; nothing elsewhere than x86-64).
#[inline(always)]
pub(crate) fn prefetch_ptr(p: *const i8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults and has no effect on program semantics.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p);
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = p;
    }
}

/// `out[i] = dot(rows[i], u) + add` for every row of width `stride` (a multiple of 8).
pub(crate) fn score_rows(rows: &[f32], stride: usize, u: &[f32], add: f32, out: &mut [f32]) {
    debug_assert_eq!(stride % 8, 0);
    debug_assert_eq!(u.len(), stride);
    debug_assert_eq!(rows.len(), out.len() * stride);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { score_rows_avx2(rows, stride, u, add, out) };
            return;
        }
    }
    score_rows_generic(rows, stride, u, add, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn score_rows_avx2(rows: &[f32], stride: usize, u: &[f32], add: f32, out: &mut [f32]) {
    score_rows_generic(rows, stride, u, add, out);
}

#[inline(always)]
fn score_rows_generic(rows: &[f32], stride: usize, u: &[f32], add: f32, out: &mut [f32]) {
    for (row, o) in rows.chunks_exact(stride).zip(out.iter_mut()) {
        let mut acc = [0.0f32; 8];
        for (x, y) in row.chunks_exact(8).zip(u.chunks_exact(8)) {
            for j in 0..8 {
                acc[j] += x[j] * y[j];
            }
        }
        *o =
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + add;
    }
}

/// `out[i] = dot(row i, u) + add + weight × clamp(dot(row i, d) × inv[i], −1, 1)`: the
/// model score plus a weighted cosine towards the unit vector `d` (`inv[i]` = 1 / ‖row i‖),
/// in one pass. `blocked` holds the rows (width `stride`) transposed in blocks of 8 items:
/// value `c` of item `8b + l` is at `(b × stride + c) × 8 + l`, so 8 items accumulate side
/// by side; only the first `width` components are read (`d` is zero from the bias on).
#[allow(clippy::too_many_arguments)]
pub(crate) fn score_blocks_with_cosine(
    blocked: &[f32],
    stride: usize,
    width: usize,
    u: &[f32],
    add: f32,
    d: &[f32],
    inv: &[f32],
    weight: f32,
    out: &mut [f32],
) {
    assert!(width <= stride && u.len() >= width && d.len() >= width);
    assert_eq!(blocked.len(), out.len().div_ceil(8) * 8 * stride);
    assert_eq!(inv.len(), out.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { cosine_blocks_avx2(blocked, stride, width, u, add, d, inv, weight, out) };
            return;
        }
    }
    cosine_blocks_generic(blocked, stride, width, u, add, d, inv, weight, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn cosine_blocks_avx2(
    blocked: &[f32],
    stride: usize,
    width: usize,
    u: &[f32],
    add: f32,
    d: &[f32],
    inv: &[f32],
    weight: f32,
    out: &mut [f32],
) {
    cosine_blocks_generic(blocked, stride, width, u, add, d, inv, weight, out);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cosine_blocks_generic(
    blocked: &[f32],
    stride: usize,
    width: usize,
    u: &[f32],
    add: f32,
    d: &[f32],
    inv: &[f32],
    weight: f32,
    out: &mut [f32],
) {
    let n = out.len();
    for (b, block) in blocked.chunks_exact(stride * 8).enumerate() {
        let mut score = [0.0f32; 8];
        let mut cos = [0.0f32; 8];
        for (c, x) in block.chunks_exact(8).take(width).enumerate() {
            let (uc, dc) = (u[c], d[c]);
            for l in 0..8 {
                score[l] += uc * x[l];
                cos[l] += dc * x[l];
            }
        }
        let start = b * 8;
        let end = (start + 8).min(n);
        for (l, (o, &inv)) in out[start..end].iter_mut().zip(&inv[start..end]).enumerate() {
            *o = score[l] + add + weight * (cos[l] * inv).clamp(-1.0, 1.0);
        }
    }
}

/// For every value `v` of `values` (NaN read as −∞), adds one to `counts[c]` where `c` is the
/// number of entries of the ascending slice `sorted` that are `<= v`. `counts` must have
/// `sorted.len() + 1` entries.
///
pub(crate) fn count_at_most_histogram(sorted: &[f32], values: &[f32], counts: &mut [u32]) {
    debug_assert_eq!(counts.len(), sorted.len() + 1);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            unsafe { histogram_avx2(sorted, values, counts) };
            return;
        }
    }
    histogram_generic(sorted, values, counts);
}

/// AVX2 version: the sorted values are cut into blocks of 8 (padded with +∞); a vector
/// compare over the blocks' maxima ("fences"), stopped at the first fence above `v`, finds
/// the block, and one more vector compare counts inside it. Most items score below most test
/// items, so the typical item costs two compares.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn histogram_avx2(sorted: &[f32], values: &[f32], counts: &mut [u32]) {
    use std::arch::x86_64::*;
    let m = sorted.len();
    if m == 0 {
        counts[0] += values.len() as u32;
        return;
    }
    let n_blocks = m.div_ceil(8);
    let mut blocks = vec![f32::INFINITY; n_blocks * 8];
    blocks[..m].copy_from_slice(sorted);
    let mut fences = vec![f32::INFINITY; n_blocks.div_ceil(8) * 8];
    for (i, f) in fences.iter_mut().take(n_blocks).enumerate() {
        *f = blocks[i * 8 + 7];
    }
    for &x in values {
        // Padding is +∞ and must never count: keep v below it.
        let v = key(x).min(f32::MAX);
        // SAFETY: AVX2 is enabled for this function; every load reads 8 floats inside
        // `fences` / `blocks` (both padded to multiples of 8).
        unsafe {
            let vv = _mm256_set1_ps(v);
            let mut full_blocks = 0usize;
            for chunk in fences.chunks_exact(8) {
                let f = _mm256_loadu_ps(chunk.as_ptr());
                let mask = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(f, vv)) as u32;
                full_blocks += mask.count_ones() as usize;
                if mask != 0xff {
                    break;
                }
            }
            let c = if full_blocks >= n_blocks {
                m
            } else {
                let b = _mm256_loadu_ps(blocks.as_ptr().add(full_blocks * 8));
                let mask = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LE_OQ>(b, vv)) as u32;
                full_blocks * 8 + mask.count_ones() as usize
            };
            counts[c] += 1;
        }
    }
}

#[inline(always)]
fn key(x: f32) -> f32 {
    if x.is_nan() {
        f32::NEG_INFINITY
    } else {
        x
    }
}

fn histogram_generic(sorted: &[f32], values: &[f32], counts: &mut [u32]) {
    for &x in values {
        counts[count_at_most(sorted, key(x))] += 1;
    }
}

/// Number of entries of the ascending slice `sorted` that are `<= v` (branch-free search).
#[inline(always)]
pub(crate) fn count_at_most(sorted: &[f32], v: f32) -> usize {
    let n = sorted.len();
    if n == 0 {
        return 0;
    }
    let mut base = 0usize;
    let mut len = n;
    while len > 1 {
        let half = len / 2;
        base += usize::from(sorted[base + half] <= v) * half;
        len -= half;
    }
    base + usize::from(sorted[base] <= v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn histogram_matches_partition_point(
            mut sorted in proptest::collection::vec(-20i8..20, 0..150),
            values in proptest::collection::vec(-25i8..25, 0..50),
        ) {
            sorted.sort_unstable();
            let sorted: Vec<f32> = sorted.into_iter().map(f32::from).collect();
            let values: Vec<f32> = values.into_iter().map(f32::from).collect();
            let mut fast = vec![0u32; sorted.len() + 1];
            count_at_most_histogram(&sorted, &values, &mut fast);
            let mut slow = vec![0u32; sorted.len() + 1];
            for v in &values {
                slow[sorted.partition_point(|x| x <= v)] += 1;
            }
            prop_assert_eq!(&fast, &slow);
            let mut generic = vec![0u32; sorted.len() + 1];
            histogram_generic(&sorted, &values, &mut generic);
            prop_assert_eq!(generic, slow);
        }

        #[test]
        fn scores_match_naive_dot(
            rows in proptest::collection::vec(-3i8..3, 0..64),
            u in proptest::collection::vec(-3i8..3, 16),
        ) {
            let stride = 16;
            let n = rows.len() / stride;
            let rows: Vec<f32> = rows[..n * stride].iter().map(|&x| f32::from(x) * 0.5).collect();
            let u: Vec<f32> = u.into_iter().map(f32::from).collect();
            let mut out = vec![0.0; n];
            score_rows(&rows, stride, &u, 1.5, &mut out);
            for i in 0..n {
                let naive: f32 = rows[i * stride..(i + 1) * stride].iter().zip(&u).map(|(a, b)| a * b).sum::<f32>() + 1.5;
                prop_assert!((out[i] - naive).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn nan_counts_as_lowest() {
        let mut c = vec![0u32; 3];
        count_at_most_histogram(&[0.0, 1.0], &[f32::NAN; 9], &mut c);
        assert_eq!(c, vec![9, 0, 0]);
    }
}
