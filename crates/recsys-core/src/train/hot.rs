//! Per-thread copies of the most shared feature rows, for multi-threaded training.
//!
//! Hogwild threads write the parameter rows they touch without locks. For identity features
//! that is cheap: two threads rarely touch the same user or item at once. Metadata features
//! are different: with item features every product update also writes its brand row (this
//! data set has three brands), its department row (31), its price bucket (5); with user
//! features every step writes the user's demographic rows. Those few rows are then written by
//! both threads thousands of times a second, and every write takes the cache line away from
//! the other core: the second thread gained little, and erratically (one to two times, as
//! the two virtual CPUs happened to share a cache or not).
//!
//! So in multi-threaded training the *hot* features (touched, on average, at least once
//! every [`HOT_EVERY`] examples) get a private copy per thread: the thread's packed feature
//! rows address them as features `boundary + slot` (see [`super::shared::SideView::at`]), and every
//! [`MERGE_EVERY`] examples (and at the end of each block of the epoch it takes) the thread
//! adds what its steps changed since the last merge to the model's rows, under a lock, and
//! takes the sum as its new copy. Parameters and adagrad's sums of squared gradients merge by adding
//! the changes, so no update is lost (plain Hogwild can lose some); adadelta's running
//! averages are not sums, so the thread's own average replaces the model's. Each thread
//! sees the other threads' changes to a hot row up to `MERGE_EVERY` examples late, where
//! Hogwild sees them at once (or loses them); with one thread nothing changes (and training
//! stays bit-reproducible).

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use super::layout::AlignedBuf;
use super::shared::{Bufs, Shared};
use super::work::{Entry, PackedRows};
use crate::interactions::Interactions;

/// A feature is hot when it is touched, on average, at least once every this many training
/// examples.
pub(super) const HOT_EVERY: f64 = 64.0;

/// At most this many hot features per side.
const MAX_HOT: usize = 256;

/// Examples (for WARP-kOS, interactions' users) a thread trains between merges of its hot rows.
pub(super) const MERGE_EVERY: usize = 1024;

/// The hot features of one side and the packed feature rows that address them as slots.
#[derive(Debug)]
pub(crate) struct HotRows {
    /// The packed rows with every hot feature renumbered `boundary + slot`.
    pub(super) rows: PackedRows,
    /// The feature of each slot.
    pub(super) features: Vec<u32>,
    /// The side's number of features: entries at or above it are slots.
    pub(super) boundary: usize,
}

impl HotRows {
    /// The hot user features of `rows` (`n_features` features) when training on
    /// `interactions`: each user row is touched once per interaction of the user.
    pub(crate) fn users(
        rows: &PackedRows,
        n_features: usize,
        interactions: &Interactions,
    ) -> Option<HotRows> {
        let mut touches = vec![0.0f64; interactions.n_users()];
        for &u in interactions.users_raw() {
            touches[u as usize] += 1.0;
        }
        Self::select(rows, n_features, &touches, interactions.len() as f64)
    }

    /// The hot item features: each item row is touched once per interaction of the item
    /// (as the positive) and about once per epoch's worth of uniform negatives.
    ///
    /// With `item_class` (see [`super::Trainer::item_class`]), `rows` has a row per class,
    /// touched as often as all its items together.
    pub(crate) fn items(
        rows: &PackedRows,
        n_features: usize,
        interactions: &Interactions,
        item_class: Option<&[u32]>,
    ) -> Option<HotRows> {
        let examples = interactions.len() as f64;
        let uniform = examples / interactions.n_items().max(1) as f64;
        let mut touches = vec![uniform; interactions.n_items()];
        for &i in interactions.items_raw() {
            touches[i as usize] += 1.0;
        }
        if let Some(class) = item_class {
            let mut per_class = vec![0.0; rows.n_rows()];
            for (i, t) in touches.iter().enumerate() {
                per_class[class[i] as usize] += t;
            }
            touches = per_class;
        }
        Self::select(rows, n_features, &touches, examples)
    }

    /// Features whose rows' touches (`touches[r]` per epoch for row `r`) add up to at least
    /// `examples / HOT_EVERY`, the most touched first, at most [`MAX_HOT`]; `None` if there
    /// are none.
    fn select(
        rows: &PackedRows,
        n_features: usize,
        touches: &[f64],
        examples: f64,
    ) -> Option<HotRows> {
        let mut per_feature = vec![0.0f64; n_features];
        for (r, &t) in touches.iter().enumerate().take(rows.n_rows()) {
            for e in rows.row(r) {
                per_feature[e.feature as usize] += t;
            }
        }
        let threshold = examples / HOT_EVERY;
        let mut hot: Vec<u32> = (0..n_features as u32)
            .filter(|&f| per_feature[f as usize] >= threshold && per_feature[f as usize] > 0.0)
            .collect();
        if hot.is_empty() {
            return None;
        }
        // Most touched first; ties by feature index, so the choice is deterministic.
        hot.sort_by(|&a, &b| {
            per_feature[b as usize]
                .total_cmp(&per_feature[a as usize])
                .then(a.cmp(&b))
        });
        hot.truncate(MAX_HOT);
        let mut slot_of = vec![u32::MAX; n_features];
        for (slot, &f) in hot.iter().enumerate() {
            slot_of[f as usize] = slot as u32;
        }
        let boundary = u32::try_from(n_features).expect("feature index fits in u32");
        let remapped = rows.map_features(|f| match slot_of[f as usize] {
            u32::MAX => f,
            slot => boundary + slot,
        });
        Some(HotRows {
            rows: remapped,
            features: hot,
            boundary: n_features,
        })
    }

    /// Number of hot features.
    pub(crate) fn len(&self) -> usize {
        self.features.len()
    }
}

/// One thread's copies of one side's hot rows: the storage its [`Replica`] views. Made
/// before the thread's worker, which borrows it for as long as it trains.
pub(super) struct Copies {
    rows: [AlignedBuf; 3],
}

impl Copies {
    /// Copies of `hot`'s rows from the model's rows `main` (`stride` floats per row).
    pub fn new(main: &Bufs<'_>, hot: &HotRows, stride: usize) -> Copies {
        let copy = |src: Shared<'_>| {
            let mut out = AlignedBuf::default();
            if src.len > 0 {
                out.resize(hot.len() * stride, 0.0);
                let dst = out.as_mut_slice();
                for (slot, &f) in hot.features.iter().enumerate() {
                    let from = src.row(f as usize * stride, stride);
                    for (d, s) in dst[slot * stride..(slot + 1) * stride].iter_mut().zip(from) {
                        *d = f32::from_bits(s.load(Ordering::Relaxed));
                    }
                }
            }
            out
        };
        Copies {
            rows: [copy(main.params), copy(main.acc), copy(main.delta)],
        }
    }
}

/// One thread's view of its [`Copies`] of one side's hot rows (borrowed for `'a`), and
/// their values at the last merge.
pub(super) struct Replica<'a> {
    rows: Bufs<'a>,
    at_merge: [AlignedBuf; 3],
    /// Adagrad: merge the optimiser state by adding changes (sums of squares); adadelta:
    /// replace it (running averages).
    additive_state: bool,
}

impl<'a> Replica<'a> {
    /// The thread's replica of the hot rows in `copies`, as they are now.
    pub fn new(copies: &'a mut Copies, additive_state: bool) -> Replica<'a> {
        let at_merge = copies.rows.clone();
        let [p, a, d] = &mut copies.rows;
        Replica {
            rows: Bufs {
                params: Shared::new(p.as_mut_slice()),
                acc: Shared::new(a.as_mut_slice()),
                delta: Shared::new(d.as_mut_slice()),
            },
            at_merge,
            additive_state,
        }
    }

    /// The copies as training addresses them.
    pub fn bufs(&self) -> Bufs<'a> {
        self.rows
    }

    /// Adds what this thread changed since the last merge to the model's rows `main` and
    /// takes the result as its copies. Holds `lock` meanwhile, so merges of different threads
    /// never interleave (outside merges only the copies are touched, and only by this
    /// thread: the worker calls it between examples).
    pub fn merge(&mut self, main: &Bufs<'_>, hot: &HotRows, stride: usize, lock: &Mutex<()>) {
        let _guard = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let targets = [main.params, main.acc, main.delta];
        let copies = [self.rows.params, self.rows.acc, self.rows.delta];
        for (i, (target, rows)) in targets.into_iter().zip(copies).enumerate() {
            let additive = i == 0 || self.additive_state;
            if rows.len == 0 {
                continue;
            }
            let at_merge = self.at_merge[i].as_mut_slice();
            for (slot, &f) in hot.features.iter().enumerate() {
                let model = target.row(f as usize * stride, stride);
                let mine = rows.row(slot * stride, stride);
                let before = &mut at_merge[slot * stride..(slot + 1) * stride];
                for c in 0..stride {
                    let own = f32::from_bits(mine[c].load(Ordering::Relaxed));
                    let merged = if additive {
                        f32::from_bits(model[c].load(Ordering::Relaxed)) + (own - before[c])
                    } else {
                        own
                    };
                    model[c].store(merged.to_bits(), Ordering::Relaxed);
                    mine[c].store(merged.to_bits(), Ordering::Relaxed);
                    before[c] = merged;
                }
            }
        }
    }
}

impl PackedRows {
    /// The same rows with every entry's feature replaced by `f(feature)`.
    fn map_features(&self, f: impl Fn(u32) -> u32) -> PackedRows {
        PackedRows {
            offsets: self.offsets.clone(),
            entries: self
                .entries
                .iter()
                .map(|e| Entry {
                    feature: f(e.feature),
                    weight: e.weight,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::FeatureMatrix;

    /// 200 items, each with its identity (0..200), one of two colours (200, 201) and, for
    /// item 0 only, a rare tag (202); user 0 bought every item once, user 1 item 0 only.
    fn fixture() -> (PackedRows, Interactions) {
        let rows: Vec<Vec<(usize, f32)>> = (0..200)
            .map(|i| {
                let mut r = vec![(i, 1.0), (200 + i % 2, 1.0)];
                if i == 0 {
                    r.push((202, 1.0));
                }
                r
            })
            .collect();
        let fm = FeatureMatrix::from_rows(203, rows).unwrap();
        let pairs: Vec<(usize, usize)> = (0..200).map(|i| (0, i)).chain([(1, 0)]).collect();
        let x = Interactions::from_pairs(2, 200, pairs).unwrap();
        (PackedRows::of(&fm).unwrap(), x)
    }

    #[test]
    fn hot_features_are_the_often_touched_ones_renumbered_as_slots() {
        let (rows, x) = fixture();
        let hot = HotRows::items(&rows, 203, &x, None).unwrap();
        // 201 examples, so the threshold is 201 / 64 = 3.1 touches an epoch. An item is
        // touched about twice (once as a positive, about once as a uniform negative), item 0
        // and the tag three times: not hot. The colours are touched about 200 times each,
        // the first a little more (item 0's second interaction).
        assert_eq!(hot.boundary, 203);
        assert_eq!(hot.features, vec![200, 201]);
        assert_eq!(hot.len(), 2);
        for r in 0..200 {
            let original: Vec<u32> = rows.row(r).iter().map(|e| e.feature).collect();
            let remapped: Vec<u32> = hot.rows.row(r).iter().map(|e| e.feature).collect();
            let mut expected = original.clone();
            expected[1] = 203 + (r as u32 % 2);
            assert_eq!(remapped, expected, "row {r}");
            let resolved: Vec<u32> = (remapped.iter())
                .map(|&f| match f as usize {
                    f if f < hot.boundary => f as u32,
                    f => hot.features[f - hot.boundary],
                })
                .collect();
            assert_eq!(resolved, original, "row {r}");
        }
    }

    #[test]
    fn rarely_touched_features_stay_shared() {
        // A thousand users with one interaction each: a user's identity is touched once an
        // epoch, below the threshold (1000 / 64); the feature they all share is hot.
        let rows: Vec<Vec<(usize, f32)>> = (0..1000).map(|u| vec![(u, 1.0), (1000, 1.0)]).collect();
        let fm = FeatureMatrix::from_rows(1001, rows).unwrap();
        let packed = PackedRows::of(&fm).unwrap();
        let x = Interactions::from_pairs(1000, 1, (0..1000).map(|u| (u, 0))).unwrap();
        let hot = HotRows::users(&packed, 1001, &x).unwrap();
        assert_eq!(hot.features, vec![1000]);
        assert_eq!(hot.rows.row(7)[0].feature, 7);
        assert_eq!(hot.rows.row(7)[1].feature, 1001);
        let none = Interactions::from_pairs(1000, 1, (0..1000).map(|u| (u, 0)))
            .unwrap()
            .filter(|e| e.user == 0);
        let rows_one: Vec<Vec<(usize, f32)>> = (0..1000).map(|u| vec![(u, 0.5)]).collect();
        let fm = FeatureMatrix::from_rows(1000, rows_one).unwrap();
        let hot = HotRows::users(&PackedRows::of(&fm).unwrap(), 1000, &none);
        assert_eq!(
            hot.map(|h| h.features),
            Some(vec![0]),
            "user 0 is every example"
        );
    }

    /// Items grouped into classes of identical feature rows (see
    /// [`PackedRows::classes`]) touch each feature as often as the items do: the same
    /// features are hot, in the same order.
    #[test]
    fn classes_of_items_make_the_same_features_hot() {
        // 400 items without identity: one of 200 makers (rarely touched), one of 2 colours
        // and one of 4 sizes (hot); interactions skewed to the low item numbers.
        let rows = (0..400).map(|i| vec![(i % 200, 1.0), (200 + i % 2, 0.5), (202 + i % 4, 0.5)]);
        let fm = FeatureMatrix::from_rows(206, rows).unwrap();
        let per_item = PackedRows::of(&fm).unwrap();
        let (class, per_class) = per_item.classes().expect("400 items in 200 classes");
        assert_eq!(per_class.n_rows(), 200);
        let pairs = (0..30).flat_map(|u| {
            (0..400)
                .filter(move |i| (i * 7 + u) % (1 + i / 20) == 0)
                .map(move |i| (u, i))
        });
        let x = Interactions::from_pairs(30, 400, pairs).unwrap();
        let by_item = HotRows::items(&per_item, 206, &x, None).unwrap();
        let by_class = HotRows::items(&per_class, 206, &x, Some(&class)).unwrap();
        assert_eq!(by_class.features, by_item.features);
        assert!(by_item.features.contains(&200) && !by_item.features.contains(&199));
    }

    fn bufs<'a>(p: &'a mut [f32], a: &'a mut [f32], d: &'a mut [f32]) -> Bufs<'a> {
        Bufs {
            params: Shared::new(p),
            acc: Shared::new(a),
            delta: Shared::new(d),
        }
    }

    /// Adds `by` to every value of the copies (as training steps would).
    fn step(replica: &Replica<'_>, by: f32) {
        let r = replica.bufs();
        for buf in [r.params, r.acc, r.delta] {
            for v in buf.row(0, buf.len) {
                v.store(
                    (f32::from_bits(v.load(Ordering::Relaxed)) + by).to_bits(),
                    Ordering::Relaxed,
                );
            }
        }
    }

    #[test]
    fn merges_add_every_threads_changes_to_the_model() {
        let (rows, x) = fixture();
        let hot = HotRows::items(&rows, 203, &x, None).unwrap();
        let stride = 16;
        let init = |f: usize| (0..203 * stride).map(move |i| (i / stride * 10 + f) as f32);
        let (mut p, mut a, mut d): (Vec<f32>, Vec<f32>, Vec<f32>) =
            (init(0).collect(), init(1).collect(), Vec::new());
        let main = bufs(&mut p, &mut a, &mut d);
        let lock = Mutex::new(());
        let (mut copies_one, mut copies_two) = (
            Copies::new(&main, &hot, stride),
            Copies::new(&main, &hot, stride),
        );
        let mut one = Replica::new(&mut copies_one, true);
        let mut two = Replica::new(&mut copies_two, true);
        // The copies start as the model's rows (slot 0 is feature 200).
        let p0: Vec<f32> = init(0).collect();
        assert_eq!(one.bufs().params.to_vec(), &p0[200 * stride..202 * stride]);
        step(&one, 0.5);
        step(&two, 0.25);
        one.merge(&main, &hot, stride, &lock);
        two.merge(&main, &hot, stride, &lock);
        step(&one, 1.0);
        one.merge(&main, &hot, stride, &lock);
        let a0: Vec<f32> = init(1).collect();
        for f in 0..203 {
            let moved = if hot.features.contains(&(f as u32)) {
                1.75
            } else {
                0.0
            };
            for c in 0..stride {
                let i = f * stride + c;
                assert_eq!(p[i], p0[i] + moved, "param {f}/{c}");
                assert_eq!(a[i], a0[i] + moved, "adagrad sum {f}/{c}");
            }
        }
        // A merge leaves the thread's copies equal to the model's rows.
        let slot = 1;
        let f = hot.features[slot] as usize;
        assert_eq!(one.bufs().params.to_vec()[slot * stride], p[f * stride]);
    }

    #[test]
    fn adadelta_state_merges_by_replacing_not_adding() {
        let (rows, x) = fixture();
        let hot = HotRows::items(&rows, 203, &x, None).unwrap();
        let stride = 16;
        let (mut p, mut a, mut d) = (
            vec![1.0; 203 * stride],
            vec![2.0; 203 * stride],
            vec![3.0; 203 * stride],
        );
        let main = bufs(&mut p, &mut a, &mut d);
        let lock = Mutex::new(());
        let (mut copies_one, mut copies_two) = (
            Copies::new(&main, &hot, stride),
            Copies::new(&main, &hot, stride),
        );
        let mut one = Replica::new(&mut copies_one, false);
        let mut two = Replica::new(&mut copies_two, false);
        step(&one, 0.5);
        step(&two, 0.25);
        one.merge(&main, &hot, stride, &lock);
        two.merge(&main, &hot, stride, &lock);
        let f = hot.features[0] as usize * stride;
        assert_eq!(p[f], 1.75, "parameters add up");
        assert_eq!((a[f], d[f]), (2.25, 3.25), "the last merge's averages");
        assert_eq!((p[0], a[0], d[0]), (1.0, 2.0, 3.0), "feature 0 is not hot");
    }
}
