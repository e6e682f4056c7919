//! Data for the benchmarks: the Complete Journey split when it is present, else a synthetic
//! data set of similar shape (so `cargo bench` always runs).
//!
//! The real data is looked up in `$RECSYS_BENCH_DATA`, then in
//! `../shared/data/completejourney-seed` next to the repository.

use std::path::{Path, PathBuf};

use recsys::core::{Interactions, Rng};
use recsys::features::{Dataset, FeatureSpec, InteractionOptions, UnknownIdPolicy};
use recsys::store::{read_pairs, CsvSource};

/// A train/test split ready for benchmarking.
pub struct BenchData {
    /// Where it came from.
    pub name: String,
    /// Training interactions.
    pub train: Interactions,
    /// Held-out interactions.
    pub test: Interactions,
}

/// The Complete Journey folder, if present.
pub fn complete_journey_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("RECSYS_BENCH_DATA").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/completejourney-seed")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|d| d.join("test_pairs.csv.gz").exists())
}

/// Loads the Complete Journey split (train = all interactions not in `test_pairs.csv.gz`).
pub fn complete_journey(dir: &Path) -> Result<BenchData, Box<dyn std::error::Error>> {
    let mut source = CsvSource::open(dir)?;
    let dataset = Dataset::from_source(
        &mut source,
        FeatureSpec::identity_only(),
        FeatureSpec::identity_only(),
    )?;
    let (all, _) = dataset.logged_interactions(InteractionOptions::binary())?;
    let pairs = read_pairs(dir.join("test_pairs.csv.gz"))?;
    let (test, _) = dataset.interactions_from_pairs(pairs, UnknownIdPolicy::Error)?;
    Ok(BenchData {
        name: "complete-journey".into(),
        train: all.difference(&test),
        test,
    })
}

/// A synthetic split with the shape of Complete Journey scaled down by `scale` (1 = full):
/// users in 50 taste groups, Zipf-like item popularity.
pub fn synthetic(scale: usize) -> BenchData {
    let (n_users, n_items, per_user) = (2469 / scale, 68_509 / scale, 350);
    let mut rng = Rng::new(42);
    let groups = 50;
    let mut pairs = Vec::new();
    for u in 0..n_users {
        let g = u % groups;
        for _ in 0..per_user {
            let item = if rng.next_f64() < 0.7 {
                let r = rng.next_f64().powi(3);
                (((r * (n_items / groups) as f64) as usize) * groups + g) % n_items
            } else {
                rng.below(n_items)
            };
            pairs.push((u, item));
        }
    }
    let all = Interactions::from_pairs(n_users, n_items, pairs).expect("valid synthetic data");
    let (train, test) = all.split_random(0.2, 7).expect("valid fraction");
    BenchData {
        name: format!("synthetic-1/{scale}"),
        train,
        test,
    }
}

/// The real data when present, else the synthetic stand-in (with a note on stderr).
pub fn load() -> BenchData {
    match complete_journey_dir() {
        Some(dir) => {
            complete_journey(&dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
        }
        None => {
            eprintln!("note: Complete Journey data not found; benchmarking a synthetic data set");
            synthetic(1)
        }
    }
}
