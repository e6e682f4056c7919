//! Threshold-filtered top-k selection.
//!
//! Candidates go into a buffer of up to `2k` entries; when it is full, a partial selection
//! (`select_nth_unstable_by`) keeps the best `k` and the `k`-th best becomes the threshold.
//! From then on a candidate costs one comparison with the threshold (and the scan can
//! reject eight at once by comparing their maximum), which is what makes scanning a whole
//! catalogue cheap. Amortised cost per accepted candidate is O(1); memory is O(k) and reused
//! between queries.

use std::cmp::Ordering;

use crate::Neighbour;

/// Order of results: higher similarity first, then lower item index. `-0.0` and `+0.0` are
/// equal (similarities are never NaN).
#[inline]
pub(crate) fn rank_order(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    b.0.partial_cmp(&a.0)
        .unwrap_or(Ordering::Equal)
        .then(a.1.cmp(&b.1))
}

/// The best `k` candidates seen so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct TopK {
    k: usize,
    buf: Vec<(f32, u32)>,
    /// The `k`-th best candidate once the buffer has been compacted at least once;
    /// `(-inf, u32::MAX)` before.
    threshold: (f32, u32),
}

impl TopK {
    /// Starts a new selection of `k` (keeps the allocation).
    pub(crate) fn reset(&mut self, k: usize) {
        self.k = k;
        self.buf.clear();
        self.threshold = (f32::NEG_INFINITY, u32::MAX);
    }

    /// Candidates below this value cannot enter (a cheap pre-filter; equal values must be
    /// offered to [`TopK::push`], which breaks the tie by item index).
    #[inline]
    pub(crate) fn threshold(&self) -> f32 {
        self.threshold.0
    }

    /// True when no candidate can enter at all (`k == 0`).
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.k == 0
    }

    /// Would `(similarity, item)` rank better than the current threshold?
    #[inline]
    pub(crate) fn admits(&self, similarity: f32, item: u32) -> bool {
        self.k > 0 && rank_order(&(similarity, item), &self.threshold) == Ordering::Less
    }

    /// Offers a candidate that [`TopK::admits`] (checked again here).
    #[inline]
    pub(crate) fn push(&mut self, similarity: f32, item: u32) {
        if !self.admits(similarity, item) {
            return;
        }
        self.buf.push((similarity, item));
        if self.buf.len() >= 2 * self.k.max(8) {
            self.compact();
        }
    }

    fn compact(&mut self) {
        let k = self.k;
        if self.buf.len() > k {
            self.buf.select_nth_unstable_by(k - 1, rank_order);
            self.buf.truncate(k);
            // After the selection, entry k-1 is the k-th best; nothing worse may enter.
            self.threshold = self.buf[k - 1];
        }
    }

    /// The selection, best first, as `(similarity, item)`; the state is left empty.
    pub(crate) fn drain_sorted(&mut self) -> impl Iterator<Item = (f32, u32)> + '_ {
        if self.buf.len() > self.k {
            self.compact();
        }
        self.buf.sort_unstable_by(rank_order);
        self.buf.drain(..)
    }

    /// Appends the selection, best first, to `out` as [`Neighbour`]s.
    pub(crate) fn finish_into(&mut self, out: &mut Vec<Neighbour>) {
        out.extend(self.drain_sorted().map(|(similarity, item)| Neighbour {
            item: item as usize,
            similarity,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_best_k_with_ties_by_index() {
        let sims = [
            0.5f32, 0.9, 0.5, 0.1, 0.9, 0.5, 0.7, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
            0.5, 0.2,
        ];
        for k in 0..=sims.len() + 2 {
            let mut t = TopK::default();
            t.reset(k);
            for (i, &s) in sims.iter().enumerate() {
                t.push(s, i as u32);
            }
            let got: Vec<(f32, u32)> = t.drain_sorted().collect();
            let mut want: Vec<(f32, u32)> = sims
                .iter()
                .enumerate()
                .map(|(i, &s)| (s, i as u32))
                .collect();
            want.sort_by(rank_order);
            want.truncate(k);
            assert_eq!(got, want, "k = {k}");
        }
    }

    #[test]
    fn reverse_order_pushes_still_break_ties_by_index() {
        let mut t = TopK::default();
        t.reset(3);
        for i in (0..40u32).rev() {
            t.push(0.25, i);
        }
        let got: Vec<u32> = t.drain_sorted().map(|(_, i)| i).collect();
        assert_eq!(got, vec![0, 1, 2]);
    }
}
