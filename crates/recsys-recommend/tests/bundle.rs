//! The artifact bundle: round trips, atomic writes, and refusal of damaged files.

mod common;

use std::path::{Path, PathBuf};

use common::{id, user, world};
use proptest::prelude::*;
use recsys_recommend::{Bundle, RecommendError, Request, FORMAT_VERSION};

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("recsys-bundle-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_saved_bundle_loads_back_identical_and_recommends_the_same() {
    let w = world();
    let bundle = w.bundle(5);
    let dir = temp_dir("roundtrip");
    let path = dir.join("shop.rsb");
    let bytes = bundle.save(&path).unwrap();
    assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
    assert_eq!(files_in(&dir), vec!["shop.rsb"], "no temporary file left");

    let loaded = Bundle::load(&path).unwrap();
    assert_eq!(loaded.metadata(), bundle.metadata());
    assert_eq!(loaded.model(), bundle.model());
    assert_eq!(loaded.users(), bundle.users());
    assert_eq!(loaded.items(), bundle.items());
    assert_eq!(loaded.user_vocabulary(), bundle.user_vocabulary());
    assert_eq!(loaded.item_vocabulary(), bundle.item_vocabulary());
    assert_eq!(loaded.products(), bundle.products());
    assert_eq!(loaded.neighbours(), bundle.neighbours());
    assert_eq!(loaded.popularity(), bundle.popularity());
    assert_eq!(loaded.seen(), bundle.seen());

    let meta = loaded.metadata();
    assert_eq!(meta.format_version, FORMAT_VERSION);
    assert_eq!(meta.counts.items, 18);
    assert_eq!(meta.counts.users, 12);
    assert_eq!(meta.counts.interactions, w.train.len());
    assert_eq!(meta.counts.neighbours_per_item, 5);
    assert_eq!(meta.counts.products_with_details, 18);
    assert_eq!(meta.model_id.len(), 8);
    assert_eq!(meta.metrics.as_ref().unwrap().auc, 0.9);
    assert_eq!(Bundle::read_metadata(&path).unwrap(), *meta);

    // The product lookup keeps details and never holds a NaN price.
    let p5 = loaded.product(&id(5)).unwrap();
    assert_eq!(p5.name.as_deref(), Some("Product 5"));
    assert_eq!(p5.price, None);
    assert_eq!(loaded.product(&id(6)).unwrap().price, Some(7.0));
    assert_eq!(
        loaded.product(&id(6)).unwrap().image.as_deref(),
        Some("6.jpg")
    );

    for request in [
        Request::new(5).user(&user(3)),
        Request::new(5).user(&user(3)).product(&id(4)),
        Request::new(5).product(&id(11)),
        Request::new(5),
    ] {
        let a = bundle.recommender().recommend(&request).unwrap();
        let b = loaded.recommender().recommend(&request).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.items.len(), 5);
    }

    // Saving again over the file replaces it atomically; the model id is stable.
    loaded.save(&path).unwrap();
    assert_eq!(files_in(&dir), vec!["shop.rsb"]);
    assert_eq!(
        Bundle::read_metadata(&path).unwrap().model_id,
        meta.model_id
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_files_are_refused_with_a_clear_error() {
    let w = world();
    let good = w.bundle(3).to_bytes().unwrap();
    let p = Path::new("x.rsb");

    let mut flipped = good.clone();
    let last = flipped.len() - 7;
    flipped[last] ^= 0x40;
    let e = Bundle::from_bytes(&flipped, p).unwrap_err();
    assert!(matches!(e, RecommendError::ChecksumMismatch { .. }), "{e}");
    assert!(e.to_string().contains("corrupt"), "{e}");

    let e = Bundle::from_bytes(&good[..good.len() - 1], p).unwrap_err();
    assert!(matches!(e, RecommendError::Truncated { .. }), "{e}");
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(
        Bundle::from_bytes(&longer, p).unwrap_err(),
        RecommendError::Truncated { .. }
    ));

    let e = Bundle::from_bytes(b"\x80\x04\x95pickle", p).unwrap_err();
    assert!(matches!(e, RecommendError::NotABundle { .. }), "{e}");
    assert!(matches!(
        Bundle::from_bytes(&[], p).unwrap_err(),
        RecommendError::NotABundle { .. }
    ));
    assert!(matches!(
        Bundle::from_bytes(&good[..20], p).unwrap_err(),
        RecommendError::Truncated { .. }
    ));

    let mut future = good.clone();
    future[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let e = Bundle::from_bytes(&future, p).unwrap_err();
    assert!(
        matches!(e, RecommendError::UnsupportedVersion { found, .. } if found == FORMAT_VERSION + 1),
        "{e}"
    );

    let dir = temp_dir("missing");
    let e = Bundle::load(dir.join("nope.rsb")).unwrap_err();
    assert!(matches!(e, RecommendError::Io { .. }), "{e}");
    assert!(e.to_string().contains("nope.rsb"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Checks that a bundle of `parts` is refused as invalid in its part `what`.
fn assert_invalid(parts: recsys_recommend::BundleParts, what: &str) {
    let e = Bundle::new(parts).unwrap_err();
    assert!(
        matches!(&e, RecommendError::Invalid { what: w, .. } if *w == what),
        "{e}"
    );
}

#[test]
fn a_checksummed_but_inconsistent_payload_is_refused() {
    // A bundle whose parts disagree cannot be built in the first place.
    let w = world();
    let mut parts = w.parts(3);
    parts.popularity = recsys_core::Popularity::from_counts(vec![1.0; 4]);
    assert!(matches!(
        Bundle::new(parts).unwrap_err(),
        RecommendError::Inconsistent { .. }
    ));
    // Nor one with a part that loading would refuse: it would be written and then lost.
    let mut parts = w.parts(3);
    let mut counts = parts.popularity.counts().to_vec();
    counts[4] = f32::NAN;
    parts.popularity = recsys_core::Popularity::from_counts(counts);
    assert_invalid(parts, "popularity");
    let mut parts = w.parts(3);
    let mut items = recsys_features::IdMap::new();
    for (i, id) in parts.items.iter() {
        items.get_or_insert(if i == 2 {
            recsys_features::ExternalId::Str(id.to_string())
        } else {
            id.clone()
        });
    }
    parts.items = items;
    let e = Bundle::new(parts).unwrap_err();
    assert!(e.to_string().contains("integer id stored as text"), "{e}");
    // JSON has no NaN: a NaN metric would be written as null and the metadata never parse.
    let mut parts = w.parts(3);
    parts.metrics.as_mut().unwrap().auc = f64::NAN;
    assert_invalid(parts, "metrics");
}

#[test]
fn a_failed_save_leaves_no_temporary_file_and_keeps_the_old_bundle() {
    let w = world();
    let bundle = w.bundle(3);
    let dir = temp_dir("failed-save");
    let path = dir.join("b.rsb");
    bundle.save(&path).unwrap();
    // Renaming a file over a directory fails: the old file is untouched, no temp remains.
    let target_dir = dir.join("is-a-dir");
    std::fs::create_dir(&target_dir).unwrap();
    std::fs::write(target_dir.join("keep"), b"x").unwrap();
    assert!(bundle.save(&target_dir).is_err());
    assert_eq!(files_in(&dir), vec!["b.rsb", "is-a-dir"]);
    assert!(Bundle::load(&path).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any damage — a changed byte anywhere, or a cut — gives an error, never a panic.
    #[test]
    fn random_damage_never_panics(at in any::<prop::sample::Index>(), xor in 1u8..=255, cut in any::<bool>()) {
        let good = bytes_cached();
        let i = at.index(good.len());
        let damaged: Vec<u8> = if cut {
            good[..i].to_vec()
        } else {
            let mut d = good.clone();
            d[i] ^= xor;
            d
        };
        prop_assert!(Bundle::from_bytes(&damaged, Path::new("fuzz.rsb")).is_err());
    }
}

fn bytes_cached() -> &'static Vec<u8> {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| world().bundle(3).to_bytes().unwrap())
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Bundle>();
    assert_send_sync::<recsys_recommend::Recommender<'static>>();
    assert_send_sync::<recsys_recommend::Recommendations>();
    assert_send_sync::<RecommendError>();
    assert_send_sync::<recsys_recommend::NewItems>();
    assert_send_sync::<recsys_recommend::NewItemsReport>();
}

/// The builder puts each part where a hand-written `BundleParts` would: the same payload
/// (the model id is its checksum) for the same inputs, with the defaults it documents.
#[test]
fn the_builder_assembles_the_parts_a_training_run_produces() {
    use recsys_recommend::{BundleBuilder, BundleParts, ProductCatalog, DEFAULT_NEIGHBOURS};
    use recsys_similarity::{ExactCosine, NeighbourTable};

    let w = world();
    let exact = ExactCosine::new(w.model.item_representations().vectors());
    let by_hand = |k: usize, popularity: recsys_core::Popularity| {
        Bundle::new(BundleParts {
            model: w.model.clone().into(),
            users: w.dataset.users().clone(),
            items: w.dataset.items().clone(),
            user_vocabulary: w.dataset.user_vocabulary().clone(),
            item_vocabulary: w.dataset.item_vocabulary().clone(),
            products: ProductCatalog::from_records(
                w.dataset.items(),
                w.source.products.iter().cloned(),
            ),
            neighbours: NeighbourTable::build(&exact, k).unwrap(),
            popularity,
            seen: w.train.clone(),
            metrics: None,
            description: Some("by hand".into()),
            keep_training_state: false,
            content_prior: None,
        })
        .unwrap()
    };
    let builder = || {
        BundleBuilder::new(w.model.clone(), &w.dataset, w.train.clone())
            .products(w.source.products.iter().cloned())
            .description("by hand")
    };
    let counted = recsys_core::Popularity::from_interactions(&w.train);
    // Defaults: DEFAULT_NEIGHBOURS neighbours, popularity counted from the training data.
    let expected = by_hand(DEFAULT_NEIGHBOURS, counted.clone());
    let built = builder().build().unwrap();
    assert_eq!(built.metadata().model_id, expected.metadata().model_id);
    assert_eq!(built.neighbours(), expected.neighbours());
    assert_eq!(built.popularity(), expected.popularity());
    assert_eq!(built.products().get(3), expected.products().get(3));
    // A neighbour count, a table built by the caller and a popularity of its own.
    let expected = by_hand(3, recsys_core::Popularity::from_counts(vec![1.0; 18]));
    let from_k = builder()
        .neighbours(3)
        .popularity(recsys_core::Popularity::from_counts(vec![1.0; 18]))
        .build()
        .unwrap();
    let from_table = builder()
        .neighbour_table(NeighbourTable::build(&exact, 3).unwrap())
        .popularity(recsys_core::Popularity::from_counts(vec![1.0; 18]))
        .build()
        .unwrap();
    assert_eq!(from_k.metadata().model_id, expected.metadata().model_id);
    assert_eq!(from_table.metadata().model_id, expected.metadata().model_id);
    assert_ne!(from_k.metadata().model_id, built.metadata().model_id);
}

/// An ALS model goes through the bundle like the hybrid one: saved, loaded, checked, and it
/// answers every kind of request (known user, viewed product, cold-start attributes); the
/// planted north/south structure shows in its recommendations.
#[test]
fn an_als_bundle_round_trips_and_recommends() {
    use recsys_core::{AlsFitOptions, AlsModel, AlsParams};
    use recsys_features::Attributes;

    let w = world();
    let params = AlsParams::builder()
        .no_components(4)
        .alpha(10.0)
        .regularization(0.1)
        .seed(3)
        .build()
        .unwrap();
    let mut als =
        AlsModel::new(params, w.dataset.user_features(), w.dataset.item_features()).unwrap();
    als.fit(&w.train, AlsFitOptions::iterations(15)).unwrap();
    let bundle = recsys_recommend::BundleBuilder::new(als.clone(), &w.dataset, w.train.clone())
        .products(w.source.products.iter().cloned())
        .neighbours(3)
        .build()
        .unwrap();
    let dir = temp_dir("als");
    let path = dir.join("als.rsb");
    bundle.save(&path).unwrap();
    let loaded = Bundle::load(&path).unwrap();
    assert_eq!(loaded.model().as_als(), Some(&als));
    assert_eq!(loaded.metadata(), bundle.metadata());
    assert_eq!(loaded.metadata().epochs, 15);
    assert!(loaded
        .metadata()
        .hyperparameters
        .describe()
        .starts_with("als, alpha 10"));

    let mut south = Attributes::new();
    south.insert("city".into(), "south".into());
    let stranger = recsys_features::ExternalId::Str("stranger".into());
    for request in [
        Request::new(4).user(&user(3)),
        Request::new(4).user(&user(3)).product(&id(12)),
        Request::new(4).user(&stranger).user_attributes(&south),
        Request::new(4).product(&id(2)),
    ] {
        let a = bundle.recommender().recommend(&request).unwrap();
        let b = loaded.recommender().recommend(&request).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.items.len(), 4);
    }
    // User 3 (south) is recommended south products (p9..p17).
    let recs = loaded
        .recommender()
        .recommend(&Request::new(3).user(&user(3)))
        .unwrap();
    for r in &recs.items {
        let recsys_features::ExternalId::Int(p) = r.product_id else {
            panic!("{:?}", r.product_id)
        };
        assert!(p >= 9, "{recs:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_content_prior_is_saved_refitted_on_load_and_added_to_the_scores() {
    use recsys_core::{ContentModel, Scorer, UserQuery};
    use recsys_recommend::ContentPriorSpec;
    let w = world();
    let spec = ContentPriorSpec {
        smoothing: 3.0,
        class_size_power: 1.5,
        weight: 0.5,
    };
    let bundle = w.builder(3).content_prior(spec).build().unwrap();
    let bytes = bundle.to_bytes().unwrap();
    let loaded = Bundle::from_bytes(&bytes, Path::new("prior.rsb")).unwrap();
    assert_eq!(loaded.metadata().content_prior, Some(spec));
    // The content model is refitted from the bundle's parts: the same one as fitted by hand.
    let columns = w.dataset.item_vocabulary().feature_columns();
    let by_hand = ContentModel::fit(
        loaded.model().item_features(),
        &columns,
        &w.train,
        spec.params(),
    )
    .unwrap();
    let (content, weight) = loaded.content_prior().expect("a prior");
    assert_eq!(weight, 0.5);
    let (mut model, mut prior, mut want) = (Vec::new(), Vec::new(), Vec::new());
    by_hand.score_all(UserQuery::Known(0), &mut want).unwrap();
    content.score_all(UserQuery::Known(0), &mut prior).unwrap();
    assert_eq!(prior, want);

    // Every recommended score is the model's plus half the content model's.
    loaded
        .model()
        .score_all(UserQuery::Known(0), &mut model)
        .unwrap();
    let u = w.dataset.users().id(0).unwrap().clone();
    let answer = loaded
        .recommender()
        .recommend(&Request::new(4).user(&u).boost(0.0))
        .unwrap();
    assert!(!answer.items.is_empty());
    for r in &answer.items {
        let expected = model[r.item] + 0.5 * prior[r.item];
        assert!((r.score - expected).abs() < 1e-5, "{r:?} vs {expected}");
    }
    // A product added after training gets the prior too, from its feature row.
    let mut record = w.source.products[0].clone();
    record.product_id = id(100);
    let new = loaded.new_items([record]).unwrap();
    let recommender = loaded.recommender().with_new_items(&new).unwrap();
    let answer = recommender
        .recommend(&Request::new(30).user(&u).boost(0.0).include_seen())
        .unwrap();
    let added = answer
        .items
        .iter()
        .find(|r| r.product_id == id(100))
        .expect("the new product is ranked");
    let rep = &new.representations();
    let user_rep = loaded
        .model()
        .representation(UserQuery::Known(0))
        .unwrap()
        .unwrap();
    let model_score: f32 = rep
        .vectors()
        .row(0)
        .iter()
        .zip(user_rep.vector.iter())
        .map(|(a, b)| a * b)
        .sum::<f32>()
        + rep.biases()[0]
        + user_rep.bias;
    let row: &[(usize, f32)] = &new.rows()[0];
    let content_score = content.score_rows(UserQuery::Known(0), &[row]).unwrap()[0];
    let expected = model_score + 0.5 * content_score;
    assert!(
        (added.score - expected).abs() < 1e-4,
        "{added:?} vs {expected}"
    );

    // Without the prior the scores are the model's alone, and the metadata has no entry.
    let plain = w.builder(3).build().unwrap();
    assert!(plain.content_prior().is_none());
    let json = String::from_utf8_lossy(&plain.to_bytes().unwrap()).into_owned();
    assert!(!json.contains("content_prior"));

    // A weight that is not > 0 is refused.
    for weight in [0.0, -1.0, f32::NAN] {
        let bad = ContentPriorSpec { weight, ..spec };
        assert!(w.builder(3).content_prior(bad).build().is_err(), "{weight}");
    }
}
