//! Item representations in bfloat16, for scoring WARP's negative candidates.
//!
//! WARP scores about five uniformly drawn candidates per positive example and updates at
//! most one of them. In `f32` a 30-component representation plus its bias is two cache lines
//! per candidate, fetched from all over an 8.8 MB array; in bfloat16 it is one line (the
//! whole table 4.4 MB). The candidates' scores only decide which one violates the margin (and
//! give the user's gradient its negative term), where bfloat16's relative error of at most
//! 2⁻⁸ per component is far below the margin of 1; every parameter update still happens in
//! `f32` on the exact parameters. ARCHITECTURE.md records this difference from LightFM.
//!
//! Layout: row `i` holds the `k` latent values, then the bias, two bfloat16 per 32-bit word
//! (the even element in the low half), zero-padded to whole 64-byte lines. Rows are read and
//! written like the parameter rows, through relaxed atomics or the 16-byte moves of
//! `super::shared::racy`, so Hogwild threads may share them.

use std::sync::atomic::{AtomicU32, Ordering};

/// Words (two bfloat16 each) per row for `k` components: `k + 1` values rounded up to a
/// whole number of 64-byte lines.
pub(super) fn stride(k: usize) -> usize {
    (k + 1).div_ceil(32) * 16
}

/// `x` rounded to the nearest bfloat16 (ties to even); NaN stays NaN.
pub(super) fn encode(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

/// The `f32` a bfloat16 stands for (exact).
pub(super) fn decode(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Encodes `values` (a representation: `k` latent values and the bias) into `words`
/// (`stride(k)` of them, as `f32` bit patterns for [`super::shared::store_row`]), zero-padded.
///
/// Eight values at a time where they fill whole pieces (SSE2: the same rounding as
/// [`encode`], lane by lane), the rest one by one.
pub(super) fn encode_row(values: &[f32], words: &mut [f32]) {
    let done = super::shared::bf16::encode_wide(values, words);
    encode_row_scalar(values, words, done);
}

/// [`encode_row`] one value at a time, from word `from` on.
fn encode_row_scalar(values: &[f32], words: &mut [f32], from: usize) {
    for (w, word) in words.iter_mut().enumerate().skip(from) {
        let lo = values.get(2 * w).map_or(0, |&v| encode(v));
        let hi = values.get(2 * w + 1).map_or(0, |&v| encode(v));
        *word = f32::from_bits(lo as u32 | (hi as u32) << 16);
    }
}

/// Decodes the first `out.len()` values of a row.
pub(super) fn decode_row(row: &[AtomicU32], out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = value(row, i);
    }
}

/// `Σ u[i] · row[i]` over the whole row (`u.len() == 2 × row.len()`, padded with zeros).
///
/// Eight values at a time in two 4-lane accumulators (multiply, then add), summed as
/// `(s0 + s1) + (s2 + s3)` of their lane-wise sum: the same arithmetic on every target.
#[inline(always)]
pub(super) fn dot(row: &[AtomicU32], u: &[f32]) -> f32 {
    assert!(row.len().is_multiple_of(4) && u.len() == 2 * row.len());
    #[cfg(target_arch = "x86_64")]
    {
        super::shared::bf16::dot(row, u)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        dot_portable(row, u)
    }
}

/// [`dot`] with atomics, element by element (the reference for tests; used off x86-64).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(super) fn dot_portable(row: &[AtomicU32], u: &[f32]) -> f32 {
    let (mut a1, mut a2) = ([0.0f32; 4], [0.0f32; 4]);
    for (r, u) in row.chunks_exact(4).zip(u.chunks_exact(8)) {
        for l in 0..4 {
            // Lane `l` of the low half is value `l` of the chunk, of the high half value 4 + l.
            let (lo, hi) = (value(r, l), value(r, 4 + l));
            a1[l] += lo * u[l];
            a2[l] += hi * u[4 + l];
        }
    }
    let s: [f32; 4] = std::array::from_fn(|l| a1[l] + a2[l]);
    (s[0] + s[1]) + (s[2] + s[3])
}

/// Value `i` of a row (or chunk): half `i % 2` of word `i / 2`.
fn value(row: &[AtomicU32], i: usize) -> f32 {
    let word = row[i / 2].load(Ordering::Relaxed);
    decode((word >> (16 * (i % 2))) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn atomics(words: &[f32]) -> Vec<AtomicU32> {
        words.iter().map(|w| AtomicU32::new(w.to_bits())).collect()
    }

    #[test]
    fn rounds_to_nearest_even_and_keeps_specials() {
        // 1 + 2⁻⁸ is exactly halfway between two bfloat16: ties go to the even one (1.0).
        assert_eq!(decode(encode(1.0 + 2f32.powi(-8))), 1.0);
        // 1 + 3·2⁻⁸ is halfway between 1 + 2⁻⁷ (odd) and 1 + 2⁻⁶ (even).
        assert_eq!(
            decode(encode(1.0 + 3.0 * 2f32.powi(-8))),
            1.0 + 2f32.powi(-6)
        );
        assert_eq!(
            decode(encode(1.0 + 2f32.powi(-8) + 2f32.powi(-20))),
            1.0 + 2f32.powi(-7)
        );
        assert_eq!(decode(encode(-0.0)).to_bits(), (-0.0f32).to_bits());
        assert_eq!(decode(encode(f32::INFINITY)), f32::INFINITY);
        assert!(decode(encode(f32::NAN)).is_nan());
        assert_eq!(
            decode(encode(f32::MAX)),
            f32::INFINITY,
            "rounds up past the largest"
        );
    }

    #[test]
    fn stride_is_whole_lines() {
        assert_eq!(stride(30), 16);
        assert_eq!(stride(31), 16);
        assert_eq!(stride(32), 32);
        assert_eq!(stride(1), 16);
    }

    proptest! {
        /// Encoding loses at most half a unit in the 8th significant bit; decoding a row gives back the
        /// encoded values and the padding is zero.
        #[test]
        fn row_round_trip(values in proptest::collection::vec(-1e4f32..1e4, 1..70)) {
            let k = values.len() - 1;
            let mut words = vec![f32::NAN; stride(k)];
            encode_row(&values, &mut words);
            let row = atomics(&words);
            let mut back = vec![f32::NAN; values.len()];
            decode_row(&row, &mut back);
            for (&v, &b) in values.iter().zip(&back) {
                prop_assert!((v - b).abs() <= v.abs() * 2f32.powi(-8), "{} -> {}", v, b);
                prop_assert_eq!(b, decode(encode(v)));
            }
            let mut all = vec![f32::NAN; 2 * words.len()];
            decode_row(&row, &mut all);
            prop_assert!(all[values.len()..].iter().all(|&x| x == 0.0));
        }

        /// The vectorised encoding is the value-by-value one, bit for bit, NaNs, infinities,
        /// ties and padding included.
        #[test]
        fn wide_encoding_matches_scalar(
            bits in proptest::collection::vec(any::<u32>(), 1..70),
            specials in proptest::collection::vec(0usize..6, 1..70),
        ) {
            let values: Vec<f32> = bits.iter().zip(specials.iter().cycle()).map(|(&b, &s)| match s {
                0 => f32::NAN,
                1 => f32::INFINITY,
                // Exactly halfway between two bfloat16 (odd or even below).
                2 => f32::from_bits((b & 0xFFFF_0000) | 0x8000),
                3 => -0.0,
                _ => f32::from_bits(b),
            }).collect();
            let k = values.len() - 1;
            let mut fast = vec![f32::NAN; stride(k)];
            encode_row(&values, &mut fast);
            let mut slow = vec![f32::NAN; stride(k)];
            encode_row_scalar(&values, &mut slow, 0);
            let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits_of(&fast), bits_of(&slow));
        }

        /// The vectorised dot product is the portable one, bit for bit, and close to the
        /// exact dot product of the decoded values.
        #[test]
        fn dot_matches_reference(
            values in proptest::collection::vec(-10f32..10.0, 1..70),
            seed in proptest::collection::vec(-3f32..3.0, 70..71),
        ) {
            let k = values.len() - 1;
            let mut words = vec![0.0; stride(k)];
            encode_row(&values, &mut words);
            let row = atomics(&words);
            let mut u = vec![0.0f32; 2 * words.len()];
            u[..values.len()].copy_from_slice(&seed[..values.len()]);
            let fast = dot(&row, &u);
            prop_assert_eq!(fast.to_bits(), dot_portable(&row, &u).to_bits());
            let exact: f64 = values.iter().zip(&u).map(|(&v, &x)| decode(encode(v)) as f64 * x as f64).sum();
            prop_assert!((fast as f64 - exact).abs() <= 1e-4 * (1.0 + exact.abs()) * values.len() as f64);
        }
    }
}
