//! The training pairs as a set, for the ranking losses' negative sampling.

use crate::interactions::Interactions;
use crate::kernels::prefetch_ptr;

use super::layout::huge_vec;

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
