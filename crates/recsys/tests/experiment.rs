//! Integration tests of `recsys::experiment` on the demo shop and on hand-made records.

use std::collections::BTreeMap;

use recsys::demo::{generate, DemoConfig};
use recsys::experiment::{Experiment, ExperimentConfig, ExperimentError, Split};
use recsys::features::Feature;
use recsys::{
    Attributes, ExternalId, Hyperparameters, InMemorySource, InteractionRecord, Loss,
    ProductRecord, Rng, UserRecord,
};

const SEED: u64 = 42;

fn shop() -> InMemorySource {
    generate(&DemoConfig {
        users: 300,
        products: 160,
        interactions: 9_000,
        seed: SEED,
    })
}

fn warp(components: usize) -> Hyperparameters {
    Hyperparameters::builder()
        .loss(Loss::Warp)
        .no_components(components)
        .seed(SEED)
        .build()
        .unwrap()
}

#[test]
fn hybrid_model_beats_popularity_on_the_demo_shop() {
    let experiment = Experiment::load(
        &mut shop(),
        &ExperimentConfig::demo_hybrid(),
        Split::Random {
            test_fraction: 0.2,
            seed: SEED,
        },
    )
    .unwrap();
    let test = experiment.test().unwrap();
    assert_eq!(
        experiment.train().len() + test.len(),
        9_000 - merged(&experiment)
    );
    let mut losses = Vec::new();
    let (model, training) = experiment
        .fit(warp(16), 20, 1, |e| losses.push(e.loss))
        .unwrap();
    assert_eq!(training.epochs.len(), 20);
    assert_eq!(losses.len(), 20);
    assert!(training.seconds_per_epoch() > 0.0);
    let hybrid = experiment.evaluate(&model, 10, 2).unwrap();
    let popular = experiment
        .evaluate(&experiment.popularity(), 10, 1)
        .unwrap();
    println!("seed {SEED}: hybrid {hybrid:?}\npopularity {popular:?}");
    assert!(hybrid.precision_at_k > popular.precision_at_k * 1.2);
    assert!(hybrid.auc > popular.auc + 0.03);
}

/// Interactions of the same (user, product) pair merged into one entry.
fn merged(experiment: &Experiment) -> usize {
    experiment.load_report().interactions.merged_duplicates
}

#[test]
fn one_thread_and_a_seed_give_the_same_model() {
    let experiment =
        Experiment::load(&mut shop(), &ExperimentConfig::demo_hybrid(), Split::None).unwrap();
    assert!(experiment.test().is_none());
    assert!(experiment
        .evaluate(&experiment.popularity(), 10, 1)
        .is_err());
    let (a, _) = experiment.fit(warp(8), 2, 1, |_| {}).unwrap();
    let (b, _) = experiment.fit(warp(8), 2, 1, |_| {}).unwrap();
    assert_eq!(a, b);
}

#[test]
fn cold_start_split_removes_the_chosen_items_from_training() {
    // Item metadata only: the model can describe an item it never saw in training.
    let mut config = ExperimentConfig::demo_hybrid();
    config.item_identity = false;
    let mut experiment = Experiment::load(
        &mut shop(),
        &config,
        Split::Random {
            test_fraction: 0.2,
            seed: SEED,
        },
    )
    .unwrap();
    let train_before = experiment.train().clone();
    let test_before = experiment.test().unwrap().clone();
    let n_items = experiment.n_items();
    let cold = experiment.hold_out_items(0.1, SEED).unwrap().clone();

    // Documented choice: shuffle 0..n_items with Rng::new(seed), take the first round(f·n).
    let mut order: Vec<usize> = (0..n_items).collect();
    Rng::new(SEED).shuffle(&mut order);
    assert_eq!(cold.items, order[..16].to_vec()); // round(0.1 × 160)
    assert_eq!(cold.mask.iter().filter(|&&m| m).count(), 16);

    let train = experiment.train();
    assert!(train.iter().all(|e| !cold.mask[e.item]));
    assert_eq!(
        train.len() + cold.removed_train,
        train_before.len(),
        "only the chosen items' training interactions are removed"
    );
    assert!(train_before
        .iter()
        .filter(|e| !cold.mask[e.item])
        .all(|e| train.contains(e.user, e.item)));
    let test = experiment.test().unwrap();
    assert!(!test.is_empty() && test.iter().all(|e| cold.mask[e.item]));
    assert_eq!(test.len() + cold.removed_test, test_before.len());
    assert_eq!(
        experiment.eval_options(10, 1).candidates.as_ref(),
        Some(&cold.mask)
    );
    assert!(matches!(
        experiment.hold_out_items(0.1, SEED),
        Err(ExperimentError::ColdStartTwice)
    ));

    let (model, _) = experiment.fit(warp(16), 15, 1, |_| {}).unwrap();
    let metrics = experiment.evaluate(&model, 5, 1).unwrap();
    println!("seed {SEED}: cold start {metrics:?}");
    // The re-indexed fast path equals the candidate-mask reference of recsys-core.
    let reference = recsys::evaluate(
        &model,
        experiment.test().unwrap(),
        Some(experiment.train()),
        &experiment.eval_options(5, 1),
    )
    .unwrap();
    assert_eq!(metrics.n_users, reference.n_users);
    for (a, b) in [
        (metrics.precision_at_k, reference.precision_at_k),
        (metrics.recall_at_k, reference.recall_at_k),
        (metrics.auc, reference.auc),
        (metrics.reciprocal_rank, reference.reciprocal_rank),
        (metrics.ndcg_at_k, reference.ndcg_at_k),
    ] {
        assert!((a - b).abs() < 1e-9, "{metrics:?} vs {reference:?}");
    }
    // Random ranking has AUC 0.5; item features carry the taste to never-seen items.
    assert!(metrics.auc > 0.55, "{metrics:?}");
}

/// Holding out a given list of products is the same experiment as drawing them: the same
/// items in the same order give the same training and test sets; unknown, repeated or no
/// ids are errors naming the id.
#[test]
fn cold_start_with_given_items_equals_the_drawn_ones() {
    let load = || {
        Experiment::load(
            &mut shop(),
            &ExperimentConfig::demo_hybrid(),
            Split::Random {
                test_fraction: 0.2,
                seed: SEED,
            },
        )
        .unwrap()
    };
    let mut drawn = load();
    let cold = drawn.hold_out_items(0.1, SEED).unwrap().clone();
    let ids: Vec<String> = cold
        .items
        .iter()
        .map(|&i| drawn.dataset().items().id(i).unwrap().to_string())
        .collect();
    let mut given = load();
    let same = given.hold_out_given_items(&ids).unwrap().clone();
    assert_eq!(same, cold);
    assert_eq!(given.train(), drawn.train());
    assert_eq!(given.test(), drawn.test());
    assert_eq!(
        given.eval_options(10, 1).candidates,
        drawn.eval_options(10, 1).candidates
    );

    for (bad, why) in [
        (vec!["no-such-product".to_string()], "no-such-product"),
        (vec![ids[0].clone(), ids[0].clone()], ids[0].as_str()),
        (Vec::new(), "0 products"),
    ] {
        match load().hold_out_given_items(&bad) {
            Err(ExperimentError::InvalidSetting { name, value, .. }) => {
                assert_eq!((name, value.as_str()), ("cold-items", why))
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn cold_start_fraction_is_checked() {
    let mut experiment =
        Experiment::load(&mut shop(), &ExperimentConfig::collaborative(), Split::None).unwrap();
    for bad in [0.0, 1.0, -0.5, f64::NAN, 0.001] {
        assert!(
            matches!(
                experiment.hold_out_items(bad, 1),
                Err(ExperimentError::InvalidSetting { .. })
            ),
            "{bad}"
        );
    }
}

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Five products of a grocery-like catalogue, two users, a few purchases.
fn grocery() -> InMemorySource {
    let product = |id: i64, price: f64, manufacturer: &str, brand: &str| ProductRecord {
        product_id: id.into(),
        name: Some(format!("product {id}")),
        price: Some(price),
        image: None,
        attributes: attrs(&[("manufacturer_id", manufacturer), ("brand", brand)]),
    };
    let buy = |user: i64, product: i64| InteractionRecord {
        user_id: user.into(),
        product_id: product.into(),
        interaction_type: Some("purchase".into()),
        weight: Some(2.0),
        timestamp: None,
    };
    InMemorySource {
        users: vec![
            UserRecord {
                user_id: 1.into(),
                attributes: attrs(&[("household_size", "2"), ("income", "")]),
            },
            UserRecord {
                user_id: 2.into(),
                attributes: attrs(&[("household_size", "5+"), ("income", "35-49K")]),
            },
        ],
        products: vec![
            product(10, 1.0, "2", "National"),
            product(11, 2.0, "69", "Private"),
            product(12, 3.0, "2", ""),
            product(13, 4.0, "7", "National"),
            product(14, 5.0, "69", "Private"),
        ],
        interactions: vec![
            buy(1, 10),
            buy(1, 11),
            buy(2, 12),
            buy(2, 13),
            buy(2, 14),
            buy(1, 10),
        ],
    }
}

#[test]
fn only_listed_numeric_columns_are_bucketed() {
    let config = ExperimentConfig::collaborative()
        .with_user_columns(["household_size,income"])
        .with_item_columns(["manufacturer_id,brand,price"]);
    let experiment = Experiment::load(&mut grocery(), &config, Split::None).unwrap();
    let dataset = experiment.dataset();
    let names = |n_rows: usize,
                 len: usize,
                 name: &dyn Fn(usize) -> Option<String>|
     -> Vec<String> { (n_rows..len).filter_map(name).collect() };
    let items = names(5, dataset.item_vocabulary().len(), &|f| {
        dataset.item_feature_name(f)
    });
    // manufacturer_id looks numeric but is a category; price is bucketed (5 quantiles);
    // the empty brand of product 12 gives no feature.
    for expected in [
        "manufacturer_id:2",
        "manufacturer_id:69",
        "manufacturer_id:7",
        "brand:National",
        "brand:Private",
    ] {
        assert!(
            items.contains(&expected.to_string()),
            "{expected} in {items:?}"
        );
    }
    let buckets: Vec<&String> = items.iter().filter(|n| n.starts_with("price:")).collect();
    assert_eq!(
        buckets,
        ["price:q0", "price:q1", "price:q2", "price:q3", "price:q4"]
    );
    assert!(!items.iter().any(|n| n.ends_with(':')));
    assert_eq!(items.len(), 3 + 2 + 5);
    let users = names(2, dataset.user_vocabulary().len(), &|f| {
        dataset.user_feature_name(f)
    });
    assert_eq!(
        users,
        ["household_size:2", "household_size:5+", "income:35-49K"]
    );

    // Identity features first (feature index = row index), rows L1-normalised.
    let item_vocab = dataset.item_vocabulary();
    for row in 0..5 {
        assert_eq!(item_vocab.feature(row), Some(&Feature::Identity(row)));
    }
    let features = dataset.item_features();
    let (f, w) = features.row(2); // product 12: identity, manufacturer 2, price bucket
    assert_eq!(f.len(), 3);
    assert_eq!(f[0], 2);
    assert!(w.iter().all(|&x| (x - 1.0 / 3.0).abs() < 1e-6));
    for row in 0..features.n_rows() {
        let sum: f32 = features.row(row).1.iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
    }

    // Listing manufacturer_id as numeric buckets it instead.
    let numeric = config
        .clone()
        .with_numeric_columns(["price,manufacturer_id"]);
    let experiment = Experiment::load(&mut grocery(), &numeric, Split::None).unwrap();
    let d = experiment.dataset();
    assert!(d
        .item_vocabulary()
        .bucket_edges("manufacturer_id")
        .is_some());
    assert!(d
        .item_vocabulary()
        .value_index("manufacturer_id", "69")
        .is_none());

    // Binary interactions: the repeated purchase counts once, with weight 1.
    assert_eq!(experiment.train().len(), 5);
    assert!(experiment.train().weights_raw().iter().all(|&w| w == 1.0));
}

#[test]
fn weighted_interactions_keep_record_weights() {
    let mut config = ExperimentConfig::collaborative();
    config.interactions = recsys::InteractionMode::Weighted(recsys::InteractionWeights::new());
    let experiment = Experiment::load(&mut grocery(), &config, Split::None).unwrap();
    let user = experiment.dataset().users().index(&1.into()).unwrap();
    let item = experiment.dataset().items().index(&10.into()).unwrap();
    let k = experiment
        .train()
        .iter()
        .position(|e| e.user == user && e.item == item)
        .unwrap();
    assert_eq!(experiment.train().entry(k).weight, 4.0);
}

#[test]
fn misspelt_columns_and_missing_features_are_errors() {
    let config = ExperimentConfig::collaborative().with_item_columns(["brnad"]);
    let err = Experiment::load(&mut grocery(), &config, Split::None).unwrap_err();
    assert!(
        matches!(&err, ExperimentError::EmptyColumn { column, .. } if column == "brnad"),
        "{err}"
    );
    assert!(err.to_string().contains("brnad"));

    let mut config = ExperimentConfig::collaborative();
    config.user_identity = false;
    let err = Experiment::load(&mut grocery(), &config, Split::None).unwrap_err();
    assert!(matches!(err, ExperimentError::NoFeatures { .. }), "{err}");
}

#[test]
fn held_out_pairs_are_removed_from_training_and_new_ids_registered() {
    let pairs: Vec<(ExternalId, ExternalId)> = vec![
        (1.into(), 11.into()),
        (2.into(), 14.into()),
        (2.into(), 14.into()),
        (3.into(), 10.into()), // user 3 is new: registered, never trained on
    ];
    let experiment = Experiment::load(
        &mut grocery(),
        &ExperimentConfig::collaborative(),
        Split::HeldOutPairs(pairs),
    )
    .unwrap();
    assert_eq!(experiment.n_users(), 3);
    let test = experiment.test().unwrap();
    assert_eq!(test.len(), 3);
    assert_eq!(experiment.train().len(), 5 - 2);
    assert!(test
        .iter()
        .all(|e| !experiment.train().contains(e.user, e.item)));
    assert_eq!(experiment.load_report().test_pairs_not_logged, 1);
    let by_user: BTreeMap<usize, usize> = test.iter().map(|e| (e.user, e.item)).collect();
    assert_eq!(by_user.len(), 3);
    let metrics = experiment.evaluate(&experiment.popularity(), 2, 1).unwrap();
    assert_eq!(metrics.n_users, 3);
}
