//! Top-k selection over score slices.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(PartialEq)]
struct Entry {
    score: f32,
    item: usize,
}

impl Eq for Entry {}

impl Ord for Entry {
    // "Greater" = better: higher score, then lower index. The heap keeps the worst on top,
    // so it is ordered by the reverse.
    fn cmp(&self, o: &Self) -> Ordering {
        o.score
            .total_cmp(&self.score)
            .then_with(|| self.item.cmp(&o.item))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// The `k` highest-scoring indices of `scores` (best first; ties broken by lower index; NaN
/// scores are never returned), skipping indices for which `exclude` is true.
pub fn top_k(scores: &[f32], k: usize, exclude: impl Fn(usize) -> bool) -> Vec<(usize, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Entry> = BinaryHeap::with_capacity(k + 1);
    // Once the heap is full, `threshold` is its worst score: a chunk of 8 whose maximum is
    // not above it is skipped with one vectorisable pass, and `exclude` is only asked about
    // items that would enter. (`f32::max` ignores NaN, so a chunk's maximum is never NaN;
    // NaN scores are skipped before any comparison.)
    let mut threshold = f32::NEG_INFINITY;
    for (c, chunk) in scores.chunks(8).enumerate() {
        if heap.len() == k && chunk.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) <= threshold {
            continue;
        }
        for (o, &score) in chunk.iter().enumerate() {
            let item = c * 8 + o;
            if score.is_nan() || (heap.len() == k && score <= threshold) || exclude(item) {
                continue;
            }
            if heap.len() == k {
                heap.pop();
            }
            heap.push(Entry { score, item });
            if heap.len() == k {
                threshold = heap.peek().map_or(f32::NEG_INFINITY, |w| w.score);
            }
        }
    }
    let mut out: Vec<(usize, f32)> = heap.into_iter().map(|e| (e.item, e.score)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(scores: &[f32], k: usize, exclude: &dyn Fn(usize) -> bool) -> Vec<(usize, f32)> {
        let mut all: Vec<(usize, f32)> = scores
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, s)| !s.is_nan() && !exclude(*i))
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    #[test]
    fn ties_prefer_lower_index() {
        assert_eq!(
            top_k(&[1.0, 2.0, 2.0, 0.5], 2, |_| false),
            vec![(1, 2.0), (2, 2.0)]
        );
        assert_eq!(top_k(&[1.0, f32::NAN, 3.0], 5, |i| i == 2), vec![(0, 1.0)]);
    }

    proptest! {
        #[test]
        fn matches_sorting(scores in proptest::collection::vec(-5i32..5, 0..200), k in 0usize..20, m in 1usize..5) {
            let scores: Vec<f32> = scores.into_iter().map(|s| s as f32).collect();
            let ex = |i: usize| m > 1 && i.is_multiple_of(m);
            prop_assert_eq!(top_k(&scores, k, ex), reference(&scores, k, &ex));
        }
    }
}
