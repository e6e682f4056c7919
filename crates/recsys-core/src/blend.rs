//! The certified fast blend: the top-k of `user · item + biases + weight × cosine(item,
//! viewed product)` over every item, identical to scoring every item exactly in f32 and
//! taking [`top_k`](crate::top_k), at a fraction of the memory traffic.
//!
//! # How
//!
//! 1. **Approximate pass.** Every item row is also kept as IEEE half floats (f16), scaled
//!    per item by a power of two `s_i` so that its largest component lies in
//!    `[2^14, 2^15)` (no overflow, no loss to f16's subnormal range beyond `2^-25` absolute,
//!    i.e. `2^-39 × max|x|` once unscaled). One pass converts them back to f32 (F16C) and
//!    accumulates the approximate score `A_i` of every item with FMA, reading 30 half floats
//!    plus 3 f32 per item (bias, `1/s_i`, `‖x_i‖⁻¹ / s_i`) instead of 31 f32 + 1, and
//!    without writing a score array.
//! 2. **Certified bound.** For every block of 8 items, `E_b ≥ |A_i − S_i|` where `S_i` is
//!    the score the exact f32 kernel computes (with its own rounding): the f16 rounding is at
//!    most `2^-11` relative plus the absolute part above, so the model part is off by at most
//!    `ε16 · ‖u‖ · ‖x_i‖` (Cauchy–Schwarz, `ε16 = 2^-11 + 2^-38·√k`) and the cosine part by
//!    `ε16 · |w| · ‖d‖ · ‖x_i‖⁻¹‖x_i‖`; both paths' f32 rounding adds at most
//!    `γ_m = m·2^-24 / (1 − m·2^-24)` (`m = 2k + 6`) of the magnitudes involved; underflow
//!    adds a tiny absolute `η`. So, with `ρ = ε16 + 2γ_m(1 + ε16)` and `θ ≥ ‖x_i‖⁻¹·‖x_i‖`
//!    (checked at build time), `E_b = ρ·(‖u‖·max‖x_i‖ + max|b_i| + |a| + |w|(‖d‖θ + 1)) + η`
//!    over the block's items, computed with upward margins.
//! 3. **Selection.** While scanning, the `k` largest lower bounds `A_i − E_b` of
//!    non-excluded items give a level `L` (at least `k` items have `S ≥ L`, and `L` only
//!    grows); an item is a candidate when its upper bound `A_i + E_b ≥ L`. Any item with
//!    `S_i ≥ L_final` (which includes the exact top-k) passes every test made along the way,
//!    since `L ≤ L_final`. The candidates still above `L_final` are scored again with the
//!    exact f32 arithmetic of the reference kernel (same operations in the same order, so
//!    bit-identical) and the exact top-k is taken with the usual rules (ties → lower index).
//!
//! Bounds are made conservative with `next_up`/`next_down`, and the scan's prefilter relies on
//! rounding being monotonic (`A + E ≥ L` implies `fl(A + E) ≥ L`). Inputs the argument
//! does not cover (non-finite values, magnitudes outside `[2^-40, 2^40]` per row, huge user
//! vectors or weights) take the plain f32 path instead, as do CPUs without AVX2/FMA/F16C.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use ndarray::{ArrayView1, ArrayView2};

/// Which approximate kernel runs (the exact path is decided by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Approx {
    /// Scalar code with a software half-float decoder: every platform (chosen by tests only:
    /// slower than the plain f32 path).
    #[cfg_attr(not(test), allow(dead_code))]
    Portable,
    /// AVX2 + FMA + F16C.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Approx {
    /// The fast kernel of this CPU, if it has one worth using (the portable one is slower
    /// than the plain f32 path).
    pub(crate) fn detect() -> Option<Approx> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
            {
                return Some(Approx::Avx2);
            }
        }
        None
    }
}

/// Largest per-row magnitude (and smallest non-zero one) the certification covers.
const MAX_ROW_EXP: i32 = 40;
/// Bound on biases, user norm × item norm, weights: keeps every intermediate finite.
const MAX_MAGNITUDE: f64 = 1e27; // < 2^90
/// Margin applied to every bound computed in floating point.
const MARGIN: f64 = 1.0 + 1.0 / (1u64 << 20) as f64;
/// Upper bound of `inv_i × ‖x_i‖` (checked when the half rows are built).
const THETA: f64 = 1.0 + 1.0 / (1u64 << 21) as f64;

/// The half-float copy of the item rows and what the bound needs, derived from the f32
/// item representations.
#[derive(Debug, Clone)]
pub(crate) struct HalfItems {
    /// Latent components per item.
    k: usize,
    /// Number of items.
    n: usize,
    /// `f16(x_ic × s_i)` bits, `[block][component][lane]` (lanes past `n` are zero).
    half: Vec<u16>,
    /// Per item (padded to blocks of 8): bias, `1 / s_i`, `inv_i / s_i`.
    bias: Vec<f32>,
    sigma: Vec<f32>,
    kappa: Vec<f32>,
    /// Per block: `max ‖x_i‖` rounded up, `max |b_i|`.
    norm_max: Vec<f32>,
    bias_max: Vec<f32>,
}

/// f32 → IEEE binary16 bits, rounding to nearest, ties to even (as F16C's
/// `_MM_FROUND_TO_NEAREST_INT`); magnitudes of 65520 and above become infinity.
pub(crate) fn f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = b & 0x7fff_ffff;
    if a > 0x7f80_0000 {
        return sign | 0x7e00; // NaN
    }
    if a >= 0x4780_0000 {
        return sign | 0x7c00; // ≥ 65536 (rounded below): infinity
    }
    if a < 0x3880_0000 {
        // Below 2^-14: a subnormal half, a multiple of 2^-24 (1024 × 2^-24 = 2^-14 is the
        // smallest normal, whose bits are also 1024).
        let v = f32::from_bits(a) * 16_777_216.0; // × 2^24: exact
        return sign | v.round_ties_even() as u16;
    }
    // Normal: rebias the exponent (127 → 15) and round 23 mantissa bits to 10; a carry
    // moves into the exponent (up to infinity for ≥ 65520), as it should.
    let a = a - ((127 - 15) << 23);
    let rounded = (a + 0x0fff + ((a >> 13) & 1)) >> 13;
    sign | rounded as u16
}

/// IEEE binary16 bits → f32 (exact).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let e = u32::from((h >> 10) & 0x1f);
    let m = u32::from(h & 0x3ff);
    let magnitude = match e {
        0 => m as f32 / 16_777_216.0,
        31 if m == 0 => f32::INFINITY,
        31 => f32::NAN,
        _ => f32::from_bits(((e + 112) << 23) | (m << 13)),
    };
    f32::from_bits(magnitude.to_bits() | sign)
}

/// `2^e` as f32 (`e` within the normal range).
fn pow2(e: i32) -> f32 {
    debug_assert!((-126..=127).contains(&e));
    f32::from_bits(((e + 127) as u32) << 23)
}

impl HalfItems {
    /// Builds the half rows, or `None` when the certification does not cover these values
    /// (non-finite, a row whose largest magnitude is outside `[2^-40, 2^40]` and not zero,
    /// a bias above 1e27, or an inverse norm inconsistent with the row).
    pub(crate) fn new(
        vectors: ArrayView2<'_, f32>,
        biases: ArrayView1<'_, f32>,
        inverse_norms: &[f32],
    ) -> Option<HalfItems> {
        let (n, k) = vectors.dim();
        let padded = n.div_ceil(8) * 8;
        let blocks = padded / 8;
        let mut half = vec![0u16; blocks * k * 8];
        let mut bias = vec![0.0f32; padded];
        let mut sigma = vec![1.0f32; padded];
        let mut kappa = vec![0.0f32; padded];
        let mut norm_max = vec![0.0f32; blocks];
        let mut bias_max = vec![0.0f32; blocks];
        for (i, row) in vectors.outer_iter().enumerate() {
            let b = biases[i];
            if !b.is_finite() || f64::from(b.abs()) > MAX_MAGNITUDE {
                return None;
            }
            let mut largest = 0.0f32;
            for &x in row.iter() {
                if !x.is_finite() {
                    return None;
                }
                largest = largest.max(x.abs());
            }
            let (s, sig) = if largest == 0.0 {
                (1.0, 1.0)
            } else {
                let e = largest.log2().floor() as i32;
                // `log2` may be off by one at a power of two: settle e exactly.
                let e = if pow2(e.clamp(-126, 127)) > largest {
                    e - 1
                } else if e < 127 && pow2(e + 1) <= largest {
                    e + 1
                } else {
                    e
                };
                if !(-MAX_ROW_EXP..MAX_ROW_EXP).contains(&e) {
                    return None;
                }
                (pow2(14 - e), pow2(e - 14))
            };
            let norm = row
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>()
                .sqrt();
            let inv = inverse_norms[i];
            if f64::from(inv) * norm > THETA {
                return None;
            }
            let (block, lane) = (i / 8, i % 8);
            for (c, &x) in row.iter().enumerate() {
                half[(block * k + c) * 8 + lane] = f16_bits(x * s);
            }
            bias[i] = b;
            sigma[i] = sig;
            kappa[i] = inv * sig; // exact: a power of two times a normal float, in range
            norm_max[block] = norm_max[block].max((norm as f32).next_up());
            bias_max[block] = bias_max[block].max(b.abs());
        }
        Some(HalfItems {
            k,
            n,
            half,
            bias,
            sigma,
            kappa,
            norm_max,
            bias_max,
        })
    }
}

/// One request for the approximate pass: vectors (`k` values each), the user bias, the
/// weight, and the bound coefficients (`E_b = alpha × norm_max + rho × bias_max + c0`).
struct Query<'a> {
    u: &'a [f32],
    d: &'a [f32],
    add: f32,
    weight: f32,
    alpha: f32,
    rho: f32,
    c0: f32,
}

impl Query<'_> {
    /// The bound of block `b` (its terms are non-negative and were inflated by 2^-20 for
    /// the three roundings here).
    #[inline(always)]
    fn bound(&self, h: &HalfItems, b: usize) -> f32 {
        self.alpha * h.norm_max[b] + (self.rho * h.bias_max[b] + self.c0)
    }
}

/// An f32 ordered by `total_cmp` (for the heap of lower bounds).
#[derive(Clone, Copy, PartialEq)]
struct Key(f32);
impl Eq for Key {}
impl Ord for Key {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0)
    }
}
impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// The running selection: the `k` largest lower bounds of non-excluded items and the
/// candidates whose upper bound reached the level at the time they were seen.
struct Selector<E> {
    k: usize,
    n: usize,
    lows: BinaryHeap<Reverse<Key>>,
    /// The k-th largest lower bound so far (−∞ until `k` items are in).
    level: f32,
    /// `(item, lower bound, upper bound)`, in index order.
    candidates: Vec<(u32, f32, f32)>,
    exclude: E,
}

impl<E: Fn(usize) -> bool> Selector<E> {
    fn new(k: usize, n: usize, exclude: E) -> Self {
        Selector {
            k,
            n,
            lows: BinaryHeap::with_capacity(k + 1),
            level: f32::NEG_INFINITY,
            candidates: Vec::with_capacity(4 * k + 64),
            exclude,
        }
    }

    /// Block `b`'s approximate scores, with bound `e`, after some lane reached the
    /// prefilter threshold.
    #[cold]
    #[inline(never)]
    fn offer(&mut self, b: usize, scores: &[f32; 8], e: f32) {
        for (lane, &a) in scores.iter().enumerate() {
            let i = b * 8 + lane;
            if i >= self.n {
                break;
            }
            let high = (a + e).next_up();
            if high < self.level || (self.exclude)(i) {
                continue;
            }
            let low = (a - e).next_down();
            self.candidates.push((i as u32, low, high));
            if self.lows.len() < self.k {
                self.lows.push(Reverse(Key(low)));
            } else if low > self.level {
                self.lows.pop();
                self.lows.push(Reverse(Key(low)));
            } else {
                continue;
            }
            if self.lows.len() == self.k {
                self.level = self.lows.peek().map_or(f32::NEG_INFINITY, |w| w.0 .0);
            }
        }
    }
}

/// The approximate pass in scalar code (software half-float decoding).
fn scan_portable<E: Fn(usize) -> bool>(h: &HalfItems, q: &Query<'_>, sel: &mut Selector<E>) {
    let k = h.k;
    for b in 0..h.n.div_ceil(8) {
        let mut s = [0.0f32; 8];
        let mut c = [0.0f32; 8];
        for comp in 0..k {
            let x = &h.half[(b * k + comp) * 8..(b * k + comp + 1) * 8];
            for l in 0..8 {
                let v = f16_to_f32(x[l]);
                s[l] += q.u[comp] * v;
                c[l] += q.d[comp] * v;
            }
        }
        let mut a = [0.0f32; 8];
        for l in 0..8 {
            let i = b * 8 + l;
            let dot = s[l] * h.sigma[i] + h.bias[i] + q.add;
            a[l] = dot + q.weight * (c[l] * h.kappa[i]).clamp(-1.0, 1.0);
        }
        let e = q.bound(h, b);
        // Rounding is monotonic: `A + E ≥ L` exactly implies `fl(A + E) ≥ L`.
        if a.iter().any(|&x| x + e >= sel.level) {
            sel.offer(b, &a, e);
        }
    }
}

/// The approximate pass with AVX2 + FMA + F16C: 8 items side by side, 4 accumulators per
/// sum (the bound does not depend on the summation order).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scan_avx2<E: Fn(usize) -> bool>(h: &HalfItems, q: &Query<'_>, sel: &mut Selector<E>) {
    use std::arch::x86_64::*;
    let k = h.k;
    let blocks = h.n.div_ceil(8);
    assert!(q.u.len() >= k && q.d.len() >= k && h.half.len() == blocks * k * 8);
    assert!(h.bias.len() == blocks * 8 && h.sigma.len() == blocks * 8);
    assert!(h.kappa.len() == blocks * 8 && h.norm_max.len() == blocks);
    // SAFETY (all loads below): `half` holds `blocks × k × 8` values, the per-item arrays
    // `blocks × 8` (asserted above); `c < k` and `b < blocks`, so every 8-lane load at
    // `(b × k + c) × 8` or `b × 8` is in bounds; `u`, `d` have at least `k` values.
    unsafe {
        let add = _mm256_set1_ps(q.add);
        let weight = _mm256_set1_ps(q.weight);
        let one = _mm256_set1_ps(1.0);
        let minus_one = _mm256_set1_ps(-1.0);
        let u = q.u.as_ptr();
        let d = q.d.as_ptr();
        let half = h.half.as_ptr();
        // A macro, not a closure: the conversion must be inlined with F16C enabled.
        macro_rules! load {
            ($b:expr, $c:expr) => {
                _mm256_cvtph_ps(_mm_loadu_si128(
                    half.add(($b * k + $c) * 8) as *const __m128i
                ))
            };
        }
        let mut level = _mm256_set1_ps(sel.level);
        for b in 0..blocks {
            let mut s = [_mm256_setzero_ps(); 4];
            let mut cs = [_mm256_setzero_ps(); 4];
            let mut c = 0;
            while c + 4 <= k {
                for j in 0..4 {
                    let x = load!(b, c + j);
                    s[j] = _mm256_fmadd_ps(_mm256_set1_ps(*u.add(c + j)), x, s[j]);
                    cs[j] = _mm256_fmadd_ps(_mm256_set1_ps(*d.add(c + j)), x, cs[j]);
                }
                c += 4;
            }
            while c < k {
                let x = load!(b, c);
                s[0] = _mm256_fmadd_ps(_mm256_set1_ps(*u.add(c)), x, s[0]);
                cs[0] = _mm256_fmadd_ps(_mm256_set1_ps(*d.add(c)), x, cs[0]);
                c += 1;
            }
            let s = _mm256_add_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
            let cs = _mm256_add_ps(_mm256_add_ps(cs[0], cs[1]), _mm256_add_ps(cs[2], cs[3]));
            let sigma = _mm256_loadu_ps(h.sigma.as_ptr().add(b * 8));
            let kappa = _mm256_loadu_ps(h.kappa.as_ptr().add(b * 8));
            let bias = _mm256_loadu_ps(h.bias.as_ptr().add(b * 8));
            let dot = _mm256_add_ps(_mm256_fmadd_ps(s, sigma, bias), add);
            let cos = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(cs, kappa), minus_one), one);
            let a = _mm256_fmadd_ps(weight, cos, dot);
            // An item can matter only if `A + E_b ≥ L`; rounding is monotonic, so testing
            // `fl(A + E_b) ≥ L` never drops one.
            let e = q.bound(h, b);
            let high = _mm256_add_ps(a, _mm256_set1_ps(e));
            if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(high, level)) != 0 {
                let mut out = [0.0f32; 8];
                _mm256_storeu_ps(out.as_mut_ptr(), a);
                sel.offer(b, &out, e);
                level = _mm256_set1_ps(sel.level);
            }
        }
    }
}

/// `γ_m = m·u / (1 − m·u)`, `u = 2^-24`: the classic bound on the relative error of `m`
/// chained f32 roundings.
fn gamma(m: usize) -> f64 {
    let mu = m as f64 / (1u64 << 24) as f64;
    mu / (1.0 - mu)
}

/// The exact f32 blend of one item, with the operations of the reference kernel
/// (`kernels::cosine_blocks_generic`) in the same order: bit-identical to it.
#[inline]
pub(crate) fn exact_one(row: &[f32], u: &[f32], add: f32, d: &[f32], inv: f32, w: f32) -> f32 {
    let (mut s, mut c) = (0.0f32, 0.0f32);
    for ((&x, &uc), &dc) in row.iter().zip(u).zip(d) {
        s += uc * x;
        c += dc * x;
    }
    s + add + w * (c * inv).clamp(-1.0, 1.0)
}

/// The rows the exact rescoring reads: `packed` row `i` (`stride` floats, the first
/// `width` used) and `inverse_norms[i]`, as the reference kernel does.
pub(crate) struct ExactRows<'a> {
    pub(crate) packed: &'a [f32],
    pub(crate) stride: usize,
    pub(crate) width: usize,
    pub(crate) inverse_norms: &'a [f32],
}

/// The request's vectors and bound coefficients; `un`, `dn`: the norms of the user and
/// direction vectors (first `k` components).
fn query<'a>(
    h: &HalfItems,
    u: &'a [f32],
    add: f32,
    d: &'a [f32],
    weight: f32,
    un: f64,
    dn: f64,
) -> Query<'a> {
    let k = h.k;
    let eps16 = 2f64.powi(-11) + 2f64.powi(-38) * (k as f64).sqrt();
    let rho = (eps16 + 2.0 * gamma(2 * k + 6) * (1.0 + eps16)) * MARGIN;
    let wabs = f64::from(weight.abs());
    let eta = 2f64.powi(-100) * (4 * k + 16) as f64 * (1.0 + wabs);
    let up = |x: f64| ((x * MARGIN) as f32).next_up();
    Query {
        u: &u[..k],
        d: &d[..k],
        add,
        weight,
        alpha: up(rho * un),
        rho: up(rho),
        c0: up(rho * (f64::from(add.abs()) + wabs * (dn * THETA + 1.0)) + eta),
    }
}

/// The certified top-`k` (see the module docs), or `None` when this request is outside
/// what the bound covers (the caller then takes the exact path). `u` and `d` are the
/// padded user and direction vectors of the reference kernel (`u[k] = 1` for the bias,
/// `d` zero from `k` on).
#[allow(clippy::too_many_arguments)]
pub(crate) fn certified_top_k(
    h: &HalfItems,
    rows: &ExactRows<'_>,
    u: &[f32],
    add: f32,
    d: &[f32],
    weight: f32,
    k: usize,
    exclude: impl Fn(usize) -> bool,
    approx: Approx,
) -> Option<Vec<(usize, f32)>> {
    let kk = h.k;
    if u.len() < kk + 1
        || d.len() < kk + 1
        || u[..kk + 1].iter().chain(&d[..kk]).any(|x| !x.is_finite())
    {
        return None;
    }
    if !add.is_finite() || !weight.is_finite() {
        return None;
    }
    if k == 0 {
        return Some(Vec::new());
    }
    let norm = |v: &[f32]| {
        v.iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt()
    };
    let (un, dn) = (norm(&u[..kk]), norm(&d[..kk]));
    let item_norm = h.norm_max.iter().fold(0.0f32, |m, &x| m.max(x));
    if un * f64::from(item_norm) > MAX_MAGNITUDE
        || un > MAX_MAGNITUDE
        || dn > 2.0
        || f64::from(add.abs()) > MAX_MAGNITUDE
        || f64::from(weight.abs()) > MAX_MAGNITUDE
    {
        return None;
    }
    let q = query(h, u, add, d, weight, un, dn);
    let mut sel = Selector::new(k, h.n, exclude);
    match approx {
        Approx::Portable => scan_portable(h, &q, &mut sel),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Approx::Avx2` is only chosen after detecting AVX2, FMA and F16C.
        Approx::Avx2 => unsafe { scan_avx2(h, &q, &mut sel) },
    }
    let level = sel.level;
    let mut items = Vec::with_capacity(sel.candidates.len());
    let mut exact = Vec::with_capacity(sel.candidates.len());
    for &(i, _, high) in &sel.candidates {
        if high >= level {
            let i = i as usize;
            let row = &rows.packed[i * rows.stride..i * rows.stride + rows.width];
            items.push(i);
            exact.push(exact_one(row, u, add, d, rows.inverse_norms[i], weight));
        }
    }
    // Candidates are in index order, so position ties break as item ties do.
    Some(
        crate::topk::top_k(&exact, k, |_| false)
            .into_iter()
            .map(|(pos, s)| (items[pos], s))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repr::{ItemRepresentations, Representation};
    use crate::rng::Rng;
    use ndarray::{Array1, Array2};
    use proptest::prelude::*;

    /// The approximate kernels this machine can run.
    fn kernels() -> Vec<Approx> {
        let mut all = vec![Approx::Portable];
        all.extend(Approx::detect());
        all
    }

    #[test]
    fn half_conversion_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let x = f16_to_f32(h);
            if x.is_nan() {
                assert!(f16_bits(x).wrapping_shl(1) > 0xf800, "{h:#x}");
            } else {
                assert_eq!(f16_bits(x), h, "{h:#x} = {x}");
            }
        }
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_bits(65519.0), 0x7bff);
        assert_eq!(f16_bits(65520.0), 0x7c00);
        // Ties go to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
        assert_eq!(f16_bits(1.0 + 2f32.powi(-11)), 0x3c00);
        assert_eq!(f16_bits(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f16_bits(2f32.powi(-26)), 0); // half of the smallest subnormal: tie to 0
        assert_eq!(f16_bits(3.0 * 2f32.powi(-26)), 1);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn half_conversion_matches_f16c() {
        use std::arch::x86_64::*;
        if !std::arch::is_x86_feature_detected!("f16c") {
            return;
        }
        let mut rng = Rng::new(5);
        for _ in 0..200_000 {
            let x = f32::from_bits(rng.next_u64() as u32);
            let x = if x.is_nan() { 1.5 } else { x };
            // SAFETY: F16C was detected.
            let (hw, back) = unsafe {
                let v = _mm_set1_ps(x);
                let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
                (
                    _mm_extract_epi16::<0>(h) as u16,
                    _mm_cvtss_f32(_mm_cvtph_ps(h)),
                )
            };
            assert_eq!(f16_bits(x), hw, "{x:e}");
            assert_eq!(f16_to_f32(hw).to_bits(), back.to_bits(), "{x:e}");
        }
    }

    proptest! {
        /// The rounding the certification assumes: relative 2^-11 or absolute 2^-25.
        #[test]
        fn half_rounding_error_is_bounded(bits in any::<u32>()) {
            let x = f32::from_bits(bits);
            prop_assume!(x.is_finite() && x.abs() < 65504.0);
            let err = (f64::from(f16_to_f32(f16_bits(x))) - f64::from(x)).abs();
            prop_assert!(err <= (f64::from(x.abs()) * 2f64.powi(-11)).max(2f64.powi(-25)), "{x:e}: {err:e}");
        }
    }

    /// A random blend problem. `style`: 0 uniform, 1 rows and user of very different
    /// magnitudes, 2 quantised values (exact ties, duplicated rows), 3 near-ties finer than
    /// half-float precision, 4 duplicated and zero rows.
    struct Case {
        reps: ItemRepresentations,
        user: Representation,
        towards: usize,
        weight: f32,
        excluded: Vec<bool>,
    }

    fn case(seed: u64, n: usize, dim: usize, style: u8, exclude_rate: f64) -> Case {
        let mut rng = Rng::new(seed);
        let uniform = |rng: &mut Rng| rng.next_f64() as f32 * 2.0 - 1.0;
        let mut vectors = Array2::<f32>::zeros((n, dim));
        let prototypes: Vec<Vec<f32>> = (0..3)
            .map(|_| (0..dim).map(|_| uniform(&mut rng)).collect())
            .collect();
        for i in 0..n {
            let scale = match style {
                1 => 2f32.powi(rng.below(70) as i32 - 35),
                _ => 1.0,
            };
            for c in 0..dim {
                vectors[[i, c]] = match style {
                    2 => (rng.below(9) as f32 - 4.0) / 4.0,
                    3 => prototypes[i % 3][c] * (1.0 + (rng.next_f64() as f32 - 0.5) * 2e-4),
                    _ => uniform(&mut rng) * scale,
                };
            }
            if style == 1 {
                // Keep the row's scale: its largest value at least half of it.
                vectors[[i, 0]] = (0.5 + rng.next_f64() as f32 / 2.0) * scale;
            }
            if style == 4 && i > 0 {
                match rng.below(3) {
                    0 => {
                        let j = rng.below(i);
                        let row = vectors.row(j).to_owned();
                        vectors.row_mut(i).assign(&row);
                    }
                    1 => vectors.row_mut(i).fill(0.0),
                    _ => {}
                }
            }
        }
        let biases = Array1::from_shape_fn(n, |i| match (style, rng.below(4)) {
            (2 | 4, _) => (i % 3) as f32 * 0.5,
            (3, _) => 0.1,
            (_, 0) => 0.0,
            (_, 1) => uniform(&mut rng) * 1000.0,
            _ => uniform(&mut rng),
        });
        let user_scale = match style {
            1 => 2f32.powi(rng.below(20) as i32 - 10),
            _ => 1.0 + rng.below(3) as f32,
        };
        let user = Representation {
            vector: Array1::from_shape_fn(dim, |_| match style {
                2 => (rng.below(5) as f32 - 2.0) / 2.0,
                _ => uniform(&mut rng) * user_scale,
            }),
            bias: uniform(&mut rng),
        };
        let weight = [0.25, -1.0, 2.0, 0.0, 1e-3, 40.0][rng.below(6)];
        let towards = rng.below(n);
        let excluded = (0..n).map(|_| rng.next_f64() < exclude_rate).collect();
        Case {
            reps: ItemRepresentations::new(vectors, biases).unwrap(),
            user,
            towards,
            weight,
            excluded,
        }
    }

    fn bits(v: &[(usize, f32)]) -> Vec<(usize, u32)> {
        v.iter().map(|&(i, s)| (i, s.to_bits())).collect()
    }

    fn reference(c: &Case, k: usize) -> Vec<(usize, f32)> {
        let mut scores = Vec::new();
        c.reps
            .score_all_with_cosine(&c.user, c.towards, c.weight, &mut scores)
            .unwrap();
        crate::topk::top_k(&scores, k, |i| c.excluded[i])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// The certified path returns exactly the plain path's top-k (same items, order and
        /// score bits), with every kernel, and the public entry point agrees.
        #[test]
        fn certified_top_k_is_the_exact_top_k(
            seed in any::<u64>(),
            n in 1usize..400,
            dim in 1usize..40,
            style in 0u8..5,
            k in 0usize..50,
            exclude_rate in prop::sample::select(vec![0.0, 0.1, 0.5, 0.97]),
        ) {
            let c = case(seed, n, dim, style, exclude_rate);
            let want = reference(&c, k);
            let ex = |i: usize| c.excluded[i];
            for approx in kernels() {
                let got = c.reps
                    .certified_top_k(approx, &c.user, c.towards, c.weight, k, ex)
                    .unwrap();
                let got = got.expect("these values are within the certified range");
                prop_assert_eq!(bits(&got), bits(&want), "{:?}", approx);
            }
            let auto = c.reps.top_k_with_cosine(&c.user, c.towards, c.weight, k, ex).unwrap();
            prop_assert_eq!(bits(&auto), bits(&want));
            let plain = c.reps
                .top_k_with_cosine_using(None, &c.user, c.towards, c.weight, k, ex)
                .unwrap();
            prop_assert_eq!(bits(&plain), bits(&want));
        }

        /// Every item's exact score lies within the bounds the scan derived for it.
        #[test]
        fn bounds_contain_the_exact_scores(
            seed in any::<u64>(),
            n in 1usize..200,
            dim in 1usize..40,
            style in 0u8..5,
        ) {
            let c = case(seed, n, dim, style, 0.0);
            let mut scores = Vec::new();
            c.reps.score_all_with_cosine(&c.user, c.towards, c.weight, &mut scores).unwrap();
            for approx in kernels() {
                let sel = scan_all(&c, approx);
                prop_assert_eq!(sel.candidates.len(), n);
                for &(i, low, high) in &sel.candidates {
                    let s = scores[i as usize];
                    prop_assert!(low <= s && s <= high, "{:?} item {}: {} not in [{}, {}]", approx, i, s, low, high);
                }
            }
        }

        /// Values outside the certified range (huge or tiny rows, non-finite values) take the
        /// plain path, with the same answer.
        #[test]
        fn uncovered_values_fall_back(
            seed in any::<u64>(),
            n in 1usize..100,
            which in 0usize..4,
            k in 0usize..20,
        ) {
            let mut c = case(seed, n, 8, 0, 0.1);
            let mut vectors = c.reps.vectors().to_owned();
            let mut biases = c.reps.biases().to_owned();
            let i = seed as usize % n;
            match which {
                0 => vectors.row_mut(i).mapv_inplace(|x| x * 2f32.powi(60)),
                1 => vectors.row_mut(i).mapv_inplace(|x| x * 2f32.powi(-60)),
                2 => vectors[[i, 0]] = f32::INFINITY,
                _ => biases[i] = f32::NAN,
            }
            c.reps = ItemRepresentations::new(vectors, biases).unwrap();
            let ex = |i: usize| c.excluded[i];
            for approx in kernels() {
                let got = c.reps.certified_top_k(approx, &c.user, c.towards, c.weight, k, ex).unwrap();
                prop_assert!(got.is_none());
            }
            let auto = c.reps.top_k_with_cosine(&c.user, c.towards, c.weight, k, ex).unwrap();
            prop_assert_eq!(bits(&auto), bits(&reference(&c, k)));
        }
    }

    /// Runs a scan that keeps every item (k = n: the level never rises).
    fn scan_all(c: &Case, approx: Approx) -> Selector<impl Fn(usize) -> bool> {
        let reps = &c.reps;
        let h = reps.half_items().expect("certified range");
        let (u, d) = (
            reps.padded_user(&c.user),
            reps.direction(c.towards).unwrap(),
        );
        let (un, dn) = (
            u[..h.k]
                .iter()
                .map(|&x| f64::from(x).powi(2))
                .sum::<f64>()
                .sqrt(),
            d[..h.k]
                .iter()
                .map(|&x| f64::from(x).powi(2))
                .sum::<f64>()
                .sqrt(),
        );
        let q = query(h, &u, c.user.bias, &d, c.weight, un, dn);
        let mut sel = Selector::new(h.n, h.n, |_| false);
        match approx {
            Approx::Portable => scan_portable(h, &q, &mut sel),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: only returned by `detect` on CPUs with the features.
            Approx::Avx2 => unsafe { scan_avx2(h, &q, &mut sel) },
        }
        sel
    }

    /// On a catalogue of 5,000 random items, few items need exact rescoring: the bound is
    /// tight enough for the fast path to pay.
    #[test]
    fn few_candidates_on_random_items() {
        for seed in 0..5 {
            let c = case(seed, 5000, 30, 0, 0.0);
            for approx in kernels() {
                let reps = &c.reps;
                let h = reps.half_items().unwrap();
                let (u, d) = (
                    reps.padded_user(&c.user),
                    reps.direction(c.towards).unwrap(),
                );
                let un = u[..30]
                    .iter()
                    .map(|&x| f64::from(x).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let dn = d[..30]
                    .iter()
                    .map(|&x| f64::from(x).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let q = query(h, &u, c.user.bias, &d, c.weight, un, dn);
                let mut sel = Selector::new(10, h.n, |_| false);
                match approx {
                    Approx::Portable => scan_portable(h, &q, &mut sel),
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: only returned by `detect` on CPUs with the features.
                    Approx::Avx2 => unsafe { scan_avx2(h, &q, &mut sel) },
                }
                let level = sel.level;
                let kept = sel.candidates.iter().filter(|c| c.2 >= level).count();
                assert!(
                    sel.candidates.len() < 300,
                    "{approx:?}: {} seen",
                    sel.candidates.len()
                );
                assert!((10..40).contains(&kept), "{approx:?}: {kept} rescored");
            }
        }
    }
}
