//! The training kernels: LightFM's per-example SGD steps, run Hogwild-style across threads.
//!
//! # Concurrency
//!
//! Threads update the shared parameter arrays without locks (Hogwild!, Recht et al. 2011),
//! exactly as LightFM does. Unlike LightFM's C code we do this without undefined
//! behaviour: during training every access to a parameter goes through a relaxed
//! `AtomicU32` view of the `f32` storage ([`Shared`]), so concurrent reads and writes are
//! races in the algorithmic sense only (an update may be lost), never torn or UB.
//! On x86-64 whole rows move in 16-byte pieces through inline assembly with the same
//! guarantees (see `racy`), so the row loops stay vectorised.
//!
//! The exception are the few *hot* feature rows nearly every step writes (brands, price
//! buckets, demographic values): with several threads each thread trains its own copy of
//! them and merges it into the model under a lock every so often (module `hot`), because
//! under Hogwild their cache lines bounced between the cores on nearly every write.
//!
//! # Modules
//!
//! * this module: [`Trainer`] (what every thread shares), [`run_epoch`], the blocks threads
//!   take ([`BLOCK`], [`take_block`]);
//! * `layout`: [`Side`] (one side's parameter rows and optimiser state), [`AlignedBuf`],
//!   their layout checks (`Side::check_layout`);
//! * `shared`: the views threads train through (`Shared`, `Bufs`, `SideView`), which borrow
//!   what they view, and every `unsafe` and `asm!` of training (the rest denies
//!   `unsafe_code`): the vector-width row moves (`racy`), the AVX-compiled entry points,
//!   the prefetches, the bfloat16 kernels (`bf16`), huge-page advice, `AlignedBuf`'s float
//!   views;
//! * `rows`: a step on feature rows: summing them into a representation (`repr_rows`),
//!   adagrad and adadelta (`update_row`, `apply_rows`), `Opt`, `RowBuf`;
//! * `pairs`: [`PairSet`], the training pairs for negative sampling;
//! * `work`: [`WorkList`] and [`Work`] (the shuffled examples), [`PackedRows`] and
//!   [`FeatureRows`] (feature matrices packed for training), classes of identical item rows;
//! * `worker`: `Worker`, a thread's look-ahead pipeline and the steps of each loss,
//!   `train_examples`, `HotCopies`;
//! * `scoring`: `build_scoring`, WARP's bfloat16 scoring rows;
//! * `compact`: the bfloat16 encoding of the scoring rows;
//! * `hot`: [`HotRows`], per-thread copies of the hot feature rows (`Copies`, `Replica`).

// Index loops over latent components read more clearly than zipped iterators here.
#![allow(clippy::needless_range_loop)]
// Every `unsafe` of training lives in `shared` (which allows it); nowhere else.
#![deny(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::interactions::Interactions;
use crate::params::{Loss, Schedule};
#[cfg(test)]
use crate::rng::Rng;

mod compact;
mod hot;
mod layout;
mod pairs;
mod rows;
mod scoring;
mod shared;
mod work;
mod worker;

pub(crate) use hot::HotRows;
pub(crate) use layout::{AlignedBuf, Side};
pub(crate) use pairs::PairSet;
pub(crate) use work::{FeatureRows, PackedRows, Work, WorkList};

use scoring::build_scoring;
use shared::Shared;
use work::item_row;
use worker::{train_examples, HotCopies, Worker};

/// Everything a worker thread needs.
pub(crate) struct Trainer<'a> {
    pub k: usize,
    pub loss: Loss,
    pub schedule: Schedule,
    pub learning_rate: f32,
    pub user_alpha: f32,
    pub item_alpha: f32,
    pub max_sampled: usize,
    pub user_rows: FeatureRows<'a>,
    /// The items' feature rows: one per item, or, with `item_class`, one per class.
    pub item_rows: FeatureRows<'a>,
    /// Items whose feature rows are identical (item metadata without an identity feature)
    /// have the same representation, so training keeps one row per class of them: the class
    /// of each item, or `None` when every item is its own row (see [`PackedRows::classes`]).
    pub item_class: Option<&'a [u32]>,
    pub interactions: &'a Interactions,
    /// The training pairs, for the ranking losses' negative sampling.
    pub positives: &'a PairSet,
    /// Multi-threaded training: the hot user and item features, which each thread updates
    /// in its own copy (see [`hot`]).
    pub user_hot: Option<&'a HotRows>,
    pub item_hot: Option<&'a HotRows>,
}

impl Trainer<'_> {
    /// Item `item`'s feature row (see [`Self::item_class`]).
    #[inline(always)]
    fn item_row(&self, item: usize) -> usize {
        item_row(self.item_class, item)
    }

    /// Number of item feature rows (items, or classes of them).
    fn n_item_rows(&self) -> usize {
        match self.item_rows {
            FeatureRows::Packed(rows) if self.item_class.is_some() => rows.n_rows(),
            _ => self.interactions.n_items(),
        }
    }
}

/// Per-thread running totals of the loss estimate.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LossTally {
    pub sum: f64,
    pub count: u64,
}

impl LossTally {
    pub fn merge(self, o: LossTally) -> LossTally {
        LossTally {
            sum: self.sum + o.sum,
            count: self.count + o.count,
        }
    }
}

/// Runs one epoch over `order` (examples, or for WARP-kOS each interaction's user) split into
/// `threads` contiguous chunks. With one thread everything runs on the calling thread and the
/// result is a pure function of the inputs and `seeds[0]`.
///
/// `scoring` holds WARP's bfloat16 scoring rows between the epochs of one fit (`None` at
/// first). With item features they are rebuilt every epoch (shared features move under every
/// item); without, every change to an item's parameters re-encodes its row, so they stay
/// exact and are built once (with one thread bit for bit what a rebuild would give; with
/// several, up to the Hogwild race of two threads re-encoding one item at once).
pub(crate) fn run_epoch(
    t: &Trainer<'_>,
    users: &mut Side,
    items: &mut Side,
    work: Work<'_>,
    seeds: &[u64],
    pool: Option<&rayon::ThreadPool>,
    scoring: &mut Option<AlignedBuf>,
) -> LossTally {
    let uv = users.view();
    let iv = items.view();
    match t.loss {
        Loss::Warp | Loss::WarpKos { .. } => {
            if scoring.is_none() || matches!(t.item_rows, FeatureRows::Packed(_)) {
                let last = scoring.take();
                let rows = t.n_item_rows();
                *scoring = Some(build_scoring(&iv, t.item_rows, rows, t.k, pool, last));
            }
        }
        _ => *scoring = None,
    }
    let scoring_view = scoring.as_mut().map(|c| Shared::new(c.as_mut_slice()));
    let merge_lock = std::sync::Mutex::new(());
    // One thread's share: the blocks of `work` it takes (in order) from `next`.
    let run = |next: &AtomicUsize, block: usize, seed: u64| -> LossTally {
        let mut copies = HotCopies::new(t, &uv, &iv);
        let mut w = Worker::new(t, uv, iv, &mut copies, scoring_view, &merge_lock, seed);
        match (work, t.loss) {
            (Work::Users(users), Loss::WarpKos { k: kth, n }) => {
                while let Some(chunk) = take_block(users, next, block) {
                    for (j, &u) in chunk.iter().enumerate() {
                        w.warp_kos(u as usize, kth, n);
                        if j % hot::MERGE_EVERY == hot::MERGE_EVERY - 1 {
                            w.merge_hot();
                        }
                    }
                    w.flush_pending();
                    w.merge_hot();
                }
            }
            (Work::Examples(examples), loss) => {
                assert!(
                    !matches!(loss, Loss::WarpKos { .. }),
                    "WARP-kOS trains on users"
                );
                while let Some(chunk) = take_block(examples, next, block) {
                    train_examples(&mut w, chunk);
                }
            }
            (Work::Users(_), _) => unreachable!("WorkList::new gives users only to WARP-kOS"),
        }
        w.tally
    };
    let threads = seeds.len().max(1);
    let next = AtomicUsize::new(0);
    let len = work.len();
    match pool {
        Some(pool) if threads > 1 => {
            // At least eight blocks per thread.
            let block = BLOCK.min(len.div_ceil(8 * threads)).max(1);
            let mut tallies = vec![LossTally::default(); threads];
            pool.scope(|s| {
                for (seed, out) in seeds.iter().zip(tallies.iter_mut()) {
                    let (run, next) = (&run, &next);
                    s.spawn(move |_| *out = run(next, block, *seed));
                }
            });
            tallies
                .into_iter()
                .fold(LossTally::default(), LossTally::merge)
        }
        // One thread: the whole epoch as one block, one look-ahead pipeline.
        _ => run(&next, len.max(1), seeds[0]),
    }
}

/// Examples per block (at most) that a thread of a multi-threaded epoch takes at a time.
/// Threads take blocks as they finish the last one, so a thread whose core runs slower
/// (another process, a busy neighbour on a shared host) trains fewer of them instead of the
/// epoch waiting for it: with fixed halves, two-thread epochs ran at the pace of the slower
/// core, one thread often idle for the last quarter of the epoch.
const BLOCK: usize = 16 * hot::MERGE_EVERY;

/// The next `block` entries of `order` not yet taken by any thread (`next` is the shared
/// cursor), or `None` when all are taken.
fn take_block<'o, T>(order: &'o [T], next: &AtomicUsize, block: usize) -> Option<&'o [T]> {
    let start = next.fetch_add(block, Ordering::Relaxed);
    (start < order.len()).then(|| &order[start..order.len().min(start + block)])
}

/// `n` random `(user, item)` pairs (seeded) among `users × items`, as interactions.
#[cfg(test)]
fn random_interactions(seed: u64, n: usize, users: usize, items: usize) -> Interactions {
    let mut pick = Rng::new(seed);
    let pairs: Vec<(usize, usize)> = (0..n)
        .map(|_| (pick.below(users), pick.below(items)))
        .collect();
    Interactions::from_pairs(users, items, pairs).unwrap()
}

/// Three one-thread epochs (seeds 0, 1, 2) of `work`, shuffled with `order` before each if
/// given; returns the scoring rows they kept.
#[cfg(test)]
fn three_epochs(
    t: &Trainer<'_>,
    users: &mut Side,
    items: &mut Side,
    work: &mut WorkList,
    mut order: Option<&mut Rng>,
) -> Option<AlignedBuf> {
    let mut scoring = None;
    for seed in 0..3 {
        if let Some(rng) = order.as_deref_mut() {
            work.shuffle(rng);
        }
        run_epoch(t, users, items, work.view(), &[seed], None, &mut scoring);
    }
    scoring
}

#[cfg(test)]
impl<'a> Trainer<'a> {
    /// A trainer without features (adagrad, learning rate 0.05, no L2, 10 WARP draws).
    fn collaborative(
        k: usize,
        loss: Loss,
        interactions: &'a Interactions,
        positives: &'a PairSet,
    ) -> Trainer<'a> {
        Trainer {
            k,
            loss,
            schedule: Schedule::Adagrad,
            learning_rate: 0.05,
            user_alpha: 0.0,
            item_alpha: 0.0,
            max_sampled: 10,
            user_rows: FeatureRows::Identity,
            item_rows: FeatureRows::Identity,
            item_class: None,
            interactions,
            positives,
            user_hot: None,
            item_hot: None,
        }
    }
}

#[cfg(test)]
mod class_tests {
    use super::*;
    use crate::matrix::FeatureMatrix;

    /// `n` items in `classes` classes (item `i` in class `i % classes`); class `c` has two
    /// private features, `2c` and `2c + 1`, weighted 0.5 each (with `shared`, also feature
    /// `2 × classes`, which every item has).
    fn class_features(n: usize, classes: usize, shared: bool) -> PackedRows {
        let rows = (0..n).map(|i| {
            let c = i % classes;
            let mut r = vec![(2 * c, 0.5), (2 * c + 1, 0.5)];
            if shared {
                r.push((2 * classes, 0.25));
            }
            r
        });
        PackedRows::of(&FeatureMatrix::from_rows(2 * classes + 1, rows).unwrap()).unwrap()
    }

    /// Trains `epochs` epochs of `loss` with the items' feature rows per item (`class`
    /// `None`) or per class, and returns the model's sides and the scoring rows.
    fn train(
        loss: Loss,
        x: &Interactions,
        item_rows: &PackedRows,
        class: Option<&[u32]>,
        n_item_features: usize,
    ) -> (Side, Side, Option<AlignedBuf>) {
        let mut rng = Rng::new(5);
        let mut items = Side::new(n_item_features, 8, Schedule::Adagrad, &mut rng);
        let mut users = Side::new(x.n_users(), 8, Schedule::Adagrad, &mut rng);
        let positives = PairSet::new(x);
        let t = Trainer {
            item_rows: FeatureRows::Packed(item_rows),
            item_class: class,
            ..Trainer::collaborative(8, loss, x, &positives)
        };
        let mut work = WorkList::new(loss, x, class);
        let order = &mut Rng::new(9);
        let scoring = three_epochs(&t, &mut users, &mut items, &mut work, Some(order));
        (users, items, scoring)
    }

    /// Without a scoring table (BPR, logistic) a class row is only a shorter way to reach
    /// the same features: training per class is training per item, bit for bit.
    #[test]
    fn class_rows_train_bpr_and_logistic_exactly_like_item_rows() {
        let x = random_interactions(11, 300, 20, 60);
        let per_item = class_features(60, 7, true);
        let (class, per_class) = per_item.classes().expect("60 items in 7 classes");
        assert_eq!(per_class.n_rows(), 7);
        for loss in [Loss::Bpr, Loss::Logistic] {
            let (u1, i1, _) = train(loss, &x, &per_item, None, 15);
            let (u2, i2, _) = train(loss, &x, &per_class, Some(&class), 15);
            assert_eq!(u1, u2, "{loss:?}: users");
            assert_eq!(i1, i2, "{loss:?}: items");
            let initial = Side::new(15, 8, Schedule::Adagrad, &mut Rng::new(5));
            assert_ne!(i1, initial, "{loss:?}: training changed the items");
        }
    }

    /// WARP scores candidates from one row per class, and an update re-encodes it for every
    /// item of the class: where classes share no feature, the rows kept after an epoch are
    /// exact (a fresh build, bit for bit). Per item they are not (an update leaves the
    /// other items of its class on their old rows until the next epoch's rebuild).
    #[test]
    fn class_scoring_rows_follow_every_update_of_the_class() {
        let x = random_interactions(12, 300, 20, 60);
        let per_item = class_features(60, 7, false);
        let (class, per_class) = per_item.classes().expect("60 items in 7 classes");
        let bits = |b: &AlignedBuf| b.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for loss in [Loss::Warp, Loss::WarpKos { k: 2, n: 5 }] {
            let (_, mut items, kept) = train(loss, &x, &per_class, Some(&class), 15);
            let fresh = build_scoring(
                &items.view(),
                FeatureRows::Packed(&per_class),
                7,
                8,
                None,
                None,
            );
            let kept = kept.expect("WARP keeps scoring rows");
            assert_eq!(bits(&kept), bits(&fresh), "{loss:?}");

            let (_, mut items, kept) = train(loss, &x, &per_item, None, 15);
            let fresh = build_scoring(
                &items.view(),
                FeatureRows::Packed(&per_item),
                60,
                8,
                None,
                None,
            );
            let kept = kept.expect("WARP keeps scoring rows");
            assert_ne!(bits(&kept), bits(&fresh), "{loss:?}");
        }
    }
}

#[cfg(test)]
mod block_tests {
    use super::*;

    /// Threads taking blocks from one cursor get disjoint, contiguous pieces of the order
    /// that together cover all of it.
    #[test]
    fn concurrent_takers_partition_the_order() {
        let order: Vec<u32> = (0..10_007).collect();
        let next = AtomicUsize::new(0);
        let taken: Vec<Vec<&[u32]>> = std::thread::scope(|s| {
            let takers: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        while let Some(b) = take_block(&order, &next, 64) {
                            mine.push(b);
                        }
                        mine
                    })
                })
                .collect();
            takers.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut seen: Vec<u32> = taken
            .iter()
            .flatten()
            .flat_map(|b| b.iter().copied())
            .collect();
        assert!(taken
            .iter()
            .flatten()
            .all(|b| !b.is_empty() && b.len() <= 64 && b.windows(2).all(|w| w[1] == w[0] + 1)));
        seen.sort_unstable();
        assert_eq!(seen, order);
        assert!(take_block(&order, &next, 64).is_none());
    }

    /// An epoch, on one thread or two, makes one step per interaction, whichever thread
    /// takes it: every example, and for WARP-kOS every interaction's user (as LightFM's
    /// `fit_warp_kos`; one step per *user* trained 40 steps here instead of 3,000).
    #[test]
    fn an_epoch_steps_once_per_interaction() {
        let x = random_interactions(5, 3000, 40, 60);
        let positives = PairSet::new(&x);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for loss in [Loss::Logistic, Loss::Warp, Loss::WarpKos { k: 2, n: 5 }] {
            for (seeds, pool) in [(&[1u64][..], None), (&[1, 2][..], Some(&pool))] {
                let mut rng = Rng::new(1);
                let mut items = Side::new(60, 8, Schedule::Adagrad, &mut rng);
                let mut users = Side::new(40, 8, Schedule::Adagrad, &mut rng);
                let t = Trainer::collaborative(8, loss, &x, &positives);
                let work = WorkList::new(loss, &x, None);
                let mut scoring = None;
                let tally = run_epoch(
                    &t,
                    &mut users,
                    &mut items,
                    work.view(),
                    seeds,
                    pool,
                    &mut scoring,
                );
                let threads = seeds.len();
                assert_eq!(tally.count, x.len() as u64, "{loss:?}, {threads} thread(s)");
            }
        }
    }
}
