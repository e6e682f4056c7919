//! WARP's scoring rows: every item's representation in bfloat16, built at the start of an
//! epoch (the worker re-encodes the rows its updates touch).

use super::compact;
use super::layout::AlignedBuf;
use super::shared::{self, avx_available, SideView};
use super::work::FeatureRows;

/// The representation (latent vector and bias) of each of `rows`' first `n_items` rows — an
/// item, or a class of items with identical features (see [`super::Trainer::item_class`]) — as a
/// bfloat16 scoring row (see [`compact`]), built at the start of each epoch for WARP's
/// candidates.
///
/// With item features, this is also what keeps scoring a candidate to one cache line instead
/// of one parameter row per feature (a dozen lines for a product with five metadata
/// columns). The items an update touches are re-encoded immediately; a candidate's row can
/// miss changes to features it shares with items updated since the epoch began (shared
/// features move slowly under adagrad). Quality is measured against LightFM in
/// docs/benchmarks.md.
///
/// With a `pool` of several threads the rows are built in parallel (each row depends only on
/// the parameters, so the bits are the same); `reuse`, last epoch's table, is overwritten
/// when its size fits.
pub(super) fn build_scoring(
    items: &SideView,
    rows: FeatureRows<'_>,
    n_items: usize,
    k: usize,
    pool: Option<&rayon::ThreadPool>,
    reuse: Option<AlignedBuf>,
) -> AlignedBuf {
    let cs = compact::stride(k);
    // Every word of every row is written below, so last epoch's rows can be overwritten.
    let mut out = reuse
        .filter(|b| b.as_slice().len() == n_items * cs)
        .unwrap_or_else(|| {
            let mut b = AlignedBuf::default();
            b.resize(n_items * cs, 0.0);
            b
        });
    let avx = avx_available();
    // Rows `first..` into `dst`.
    let fill = |first: usize, dst: &mut [f32]| {
        // A whole row's width, as the workers' buffers: `repr` then sums whole 8-element
        // pieces (the rows' padding is zero) and needs no element-wise tail.
        let mut repr = vec![0.0f32; items.stride];
        for (j, dst) in dst.chunks_exact_mut(cs).enumerate() {
            shared::repr(items, rows, first + j, k, &mut repr, avx);
            compact::encode_row(&repr[..=k], dst);
        }
    };
    match pool {
        // Rows are independent: the result is the same however they are shared out.
        Some(pool) if pool.current_num_threads() > 1 => {
            use rayon::prelude::*;
            const CHUNK: usize = 1024;
            pool.install(|| {
                (out.as_mut_slice().par_chunks_mut(CHUNK * cs).enumerate())
                    .for_each(|(c, dst)| fill(c * CHUNK, dst));
            });
        }
        _ => fill(0, out.as_mut_slice()),
    }
    out
}

#[cfg(test)]
mod scoring_tests {
    use super::*;
    use crate::matrix::FeatureMatrix;
    use crate::params::{Loss, Schedule};
    use crate::rng::Rng;
    use crate::train::{
        random_interactions, three_epochs, PackedRows, PairSet, Side, Trainer, WorkList,
    };

    /// Without item features the bfloat16 scoring rows are kept across epochs, so every
    /// change to an item's parameters must re-encode its row: after training they equal a
    /// fresh build, bit for bit.
    #[test]
    fn identity_scoring_rows_stay_exact_across_epochs() {
        let x = random_interactions(3, 400, 30, 50);
        let mut rng = Rng::new(1);
        let mut items = Side::new(50, 8, Schedule::Adagrad, &mut rng);
        let mut users = Side::new(30, 8, Schedule::Adagrad, &mut rng);
        let before = items.clone();
        let positives = PairSet::new(&x);
        for loss in [Loss::Warp, Loss::WarpKos { k: 2, n: 5 }] {
            let t = Trainer::collaborative(8, loss, &x, &positives);
            let mut work = WorkList::new(loss, &x, None);
            let scoring = three_epochs(&t, &mut users, &mut items, &mut work, None);
            let kept = scoring.expect("WARP keeps scoring rows");
            let fresh = build_scoring(&items.view(), FeatureRows::Identity, 50, 8, None, None);
            let bits =
                |b: &AlignedBuf| b.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&kept), bits(&fresh), "{loss:?}");
        }
        assert_ne!(items, before, "training changed the item parameters");
    }

    /// The rows are the same, bit for bit, whether built by one thread into a new buffer or
    /// by two threads over an old one (several chunks, rows of several features each).
    #[test]
    fn scoring_rows_built_in_parallel_into_an_old_buffer_are_the_same() {
        let n = 2500;
        let rows = (0..n).map(|i| vec![(i, 1.0), (n + i % 7, 0.5), (n + 7 + i % 3, 0.25)]);
        let rows = PackedRows::of(&FeatureMatrix::from_rows(n + 10, rows).unwrap()).unwrap();
        let mut items = Side::new(n + 10, 8, Schedule::Adagrad, &mut Rng::new(2));
        let rows = FeatureRows::Packed(&rows);
        let serial = build_scoring(&items.view(), rows, n, 8, None, None);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let mut old = AlignedBuf::default();
        old.resize(serial.as_slice().len(), f32::NAN);
        let parallel = build_scoring(&items.view(), rows, n, 8, Some(&pool), Some(old));
        let bits = |b: &AlignedBuf| b.as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&serial), bits(&parallel));
        // A buffer of the wrong size is not reused.
        let mut short = AlignedBuf::default();
        short.resize(16, f32::NAN);
        let fresh = build_scoring(&items.view(), rows, n, 8, Some(&pool), Some(short));
        assert_eq!(bits(&serial), bits(&fresh));
    }
}
