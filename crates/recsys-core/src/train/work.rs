//! What an epoch trains on: the examples (or WARP-kOS's users) in shuffled order, and the
//! feature matrices packed for the training loop.

use crate::interactions::Interactions;
use crate::kernels::prefetch_ptr;
use crate::matrix::FeatureMatrix;
use crate::params::Loss;
use crate::rng::Rng;

use super::shared::advise_huge_pages;

/// Item `item`'s feature row: its class under `item_class` (see [`super::Trainer::item_class`]),
/// else the item itself.
#[inline(always)]
pub(super) fn item_row(item_class: Option<&[u32]>, item: usize) -> usize {
    match item_class {
        Some(class) => class[item] as usize,
        None => item,
    }
}

/// One training example: 16 bytes, so the hot loop reads the epoch's examples sequentially
/// from one array (see [`Work`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Example {
    pub(super) user: u32,
    /// The item's feature row: the item itself, or its class (see [`super::Trainer::item_class`]).
    /// Training never needs the positive's id, only its features.
    pub(super) item: u32,
    pub(super) value: f32,
    pub(super) weight: f32,
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
    pub(super) fn len(&self) -> usize {
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
    pub(super) feature: u32,
    pub(super) weight: f32,
}

/// A feature matrix laid out for the training loop: each row's (feature, weight) pairs
/// contiguous, 8 bytes each, so a product with six features is one cache line, where the CSR
/// form spreads it over an index array (8 bytes per entry) and a weight array, two cache
/// misses per row. Rows are found through `offsets`, which the look-ahead prefetches.
#[derive(Debug)]
pub(crate) struct PackedRows {
    pub(super) offsets: Vec<u32>,
    pub(super) entries: Vec<Entry>,
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
    pub(super) fn row(&self, r: usize) -> &[Entry] {
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
    pub(super) fn prefetch_offset(&self, r: usize) {
        if let Some(o) = self.offsets.get(r) {
            prefetch_ptr((o as *const u32).cast());
        }
    }

    /// Starts loading row `r`'s entries. Reads `offsets[r]`: a cache miss for a random row
    /// unless [`Self::prefetch_offset`] ran a while before.
    #[inline(always)]
    pub(super) fn prefetch(&self, r: usize) {
        if let Some(&o) = self.offsets.get(r) {
            if let Some(e) = self.entries.get(o as usize) {
                prefetch_ptr((e as *const Entry).cast());
            }
        }
    }
}

#[cfg(test)]
mod packed_rows_tests {
    use super::*;
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

#[cfg(test)]
mod work_tests {
    use super::*;
    use crate::train::random_interactions;

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
