//! The bundle file format is pinned by a checked-in file: the saved model record (no
//! training-layout padding, the optimiser state when kept) and every other part must encode
//! to exactly these bytes, so a change of an in-memory layout cannot change the format
//! unnoticed. An intended change bumps `FORMAT_VERSION` (and `MODEL_RECORD_VERSION` for the
//! model) and re-blesses the file: `RECSYS_BLESS=1 cargo test -p recsys-recommend --test golden`.

mod common;

use std::path::Path;

use recsys_core::{AlsModel, AlsParams, HybridModel, Hyperparameters, Loss, Model};
use recsys_features::{ColumnSpec, Dataset, FeatureSpec, InteractionOptions};
use recsys_recommend::{Bundle, BundleBuilder, RecommendError, FORMAT_VERSION};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden-v3.rsb");
const GOLDEN_ALS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden-als-v3.rsb");

/// A bundle built without any floating-point computation that could differ between
/// machines: an untrained (seeded) model, no neighbour table.
fn golden_bundle() -> Bundle {
    bundle_of(|dataset| {
        let params = Hyperparameters::builder()
            .loss(Loss::Warp)
            .no_components(4)
            .seed(11)
            .build()
            .unwrap();
        HybridModel::new(params, dataset.user_features(), dataset.item_features())
            .unwrap()
            .into()
    })
}

/// The same for an ALS model.
fn golden_als_bundle() -> Bundle {
    bundle_of(|dataset| {
        let params = AlsParams::builder()
            .no_components(3)
            .seed(13)
            .build()
            .unwrap();
        AlsModel::new(params, dataset.user_features(), dataset.item_features())
            .unwrap()
            .into()
    })
}

fn bundle_of(model: impl Fn(&Dataset) -> Model) -> Bundle {
    let mut source = common::shop();
    let user_spec = FeatureSpec::identity_only().with_column(ColumnSpec::categorical("city"));
    let item_spec = FeatureSpec::identity_only().with_column(ColumnSpec::categorical("side"));
    let dataset = Dataset::from_source(&mut source, user_spec, item_spec).unwrap();
    let (train, _) = dataset
        .logged_interactions(InteractionOptions::binary())
        .unwrap();
    BundleBuilder::new(model(&dataset), &dataset, train)
        .products(source.products.iter().cloned())
        .neighbours(0)
        .keep_training_state(true)
        .build()
        .unwrap()
}

/// The payload bytes (after the header and the JSON metadata, which holds the write time).
fn payload(file: &[u8]) -> &[u8] {
    let len = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().unwrap()) as usize;
    let start = 40 + len(16);
    &file[start..start + len(24)]
}

/// `fresh` encodes to the payload of the file at `path`, and that file loads as `fresh`.
fn check_golden(fresh: &Bundle, path: &str) -> Bundle {
    let bytes = fresh.to_bytes().unwrap();
    if std::env::var_os("RECSYS_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(path, &bytes).unwrap();
    }
    let golden = std::fs::read(path).unwrap_or_else(|e| {
        panic!("{path}: {e} (create it with RECSYS_BLESS=1 cargo test --test golden)")
    });
    assert!(
        payload(&bytes) == payload(&golden),
        "the bundle payload no longer encodes as {path}: if the format change is intended, \
         bump FORMAT_VERSION (and MODEL_RECORD_VERSION for the model) and re-bless"
    );
    let loaded = Bundle::from_bytes(&golden, Path::new(path)).unwrap();
    assert_eq!(loaded.metadata().format_version, FORMAT_VERSION);
    assert_eq!(loaded.model(), fresh.model());
    assert_eq!(
        loaded.model().predict_all(3).unwrap(),
        fresh.model().predict_all(3).unwrap()
    );
    loaded
}

#[test]
fn the_file_format_is_pinned_by_a_golden_file() {
    let loaded = check_golden(&golden_bundle(), GOLDEN);
    assert_eq!(loaded.model().family(), "hybrid");
    assert!(loaded.metadata().training_state);
    assert!(loaded.model().has_training_state());
}

#[test]
fn the_als_record_is_pinned_by_a_golden_file() {
    let loaded = check_golden(&golden_als_bundle(), GOLDEN_ALS);
    assert_eq!(loaded.model().family(), "als");
    let json = serde_json::to_value(&loaded.metadata().hyperparameters).unwrap();
    assert_eq!(json["family"], "als");
}

#[test]
fn a_bundle_of_another_format_version_says_to_retrain() {
    let mut bytes = golden_bundle().to_bytes().unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let err = Bundle::from_bytes(&bytes, Path::new("old.rsb")).unwrap_err();
    assert!(
        matches!(
            err,
            RecommendError::UnsupportedVersion {
                found: 2,
                supported: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("re-train"), "{err}");
}

/// Serving bundles leave the optimiser state out unless asked; the model still predicts
/// the same and the file is smaller.
#[test]
fn the_training_state_is_saved_only_when_asked() {
    let world = common::world();
    let serving = world.bundle(2);
    let warm = world.builder(2).keep_training_state(true).build().unwrap();
    assert!(!serving.metadata().training_state && !serving.model().has_training_state());
    assert!(warm.metadata().training_state && warm.model().has_training_state());
    assert_eq!(warm.model().as_hybrid(), Some(&world.model));
    let (small, large) = (serving.to_bytes().unwrap(), warm.to_bytes().unwrap());
    assert!(
        small.len() < large.len(),
        "{} vs {}",
        small.len(),
        large.len()
    );
    let back = Bundle::from_bytes(&small, Path::new("serving.rsb")).unwrap();
    assert_eq!(
        back.model().predict_all(1).unwrap(),
        world.model.predict_all(1).unwrap()
    );
    assert!(!back.metadata().training_state);
}
