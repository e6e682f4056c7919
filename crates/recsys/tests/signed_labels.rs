//! Signed labels for the logistic loss: interaction types listed as negative become
//! entries of value −1 (LightFM's ±1 labels), so the model learns what users dislike.

use recsys::core::{Interaction, Interactions};
use recsys::experiment::{Experiment, ExperimentConfig, Split};
use recsys::{
    FitOptions, HybridModel, Hyperparameters, InMemorySource, InteractionMode, InteractionRecord,
    InteractionWeights, Loss,
};

const USERS: usize = 24;
const ITEMS: usize = 12;
const SEED: u64 = 7;
const EPOCHS: usize = 40;

/// Users of group `u % 2` like items of group `i / 6 == u % 2` and dislike the others.
fn likes(user: usize, item: usize) -> bool {
    item / (ITEMS / 2) == user % 2
}

/// The planted records as `(user, item, type)`: each user purchases 3 of its 6 liked
/// items (one of them twice) and dislikes the 3 disliked items at the same positions (one
/// after a purchase, so that pair sums to −1). The other 6 items stay unseen. Liked and
/// disliked items are seen symmetrically, so without the signs nothing tells them apart.
fn planted() -> Vec<(usize, usize, &'static str)> {
    let mut records = Vec::new();
    for u in 0..USERS {
        let (liked, disliked): (Vec<usize>, Vec<usize>) = (0..ITEMS).partition(|&i| likes(u, i));
        for k in 0..3 {
            records.push((u, liked[(u + k) % 6], "purchase"));
            records.push((u, disliked[(u + k) % 6], "dislike"));
        }
        records.push((u, liked[u % 6], "purchase"));
        let d = disliked[u % 6];
        records.push((u, d, "purchase"));
        records.push((u, d, "dislike"));
    }
    records
}

fn source() -> InMemorySource {
    InMemorySource {
        users: Vec::new(),
        products: Vec::new(),
        interactions: planted()
            .into_iter()
            .map(|(u, i, kind)| InteractionRecord {
                user_id: format!("u{u}").as_str().into(),
                product_id: format!("p{i}").as_str().into(),
                interaction_type: Some(kind.to_string()),
                weight: None,
                timestamp: None,
            })
            .collect(),
    }
}

fn signed_config() -> ExperimentConfig {
    let mut config = ExperimentConfig::collaborative();
    config.interactions = InteractionMode::Weighted(
        InteractionWeights::new()
            .with_record_weight(false)
            .with_negative_type("dislike"),
    );
    config
}

fn logistic() -> Hyperparameters {
    Hyperparameters::builder()
        .loss(Loss::Logistic)
        .no_components(8)
        .seed(SEED)
        .build()
        .unwrap()
}

/// Fraction of `(liked, disliked)` item pairs, over all users, that the model orders
/// correctly; `unseen_only` keeps the items a user has no record of.
fn ordered_fraction(experiment: &Experiment, model: &HybridModel, unseen_only: bool) -> f64 {
    let dataset = experiment.dataset();
    let seen: Vec<(usize, usize)> = planted().iter().map(|&(u, i, _)| (u, i)).collect();
    let (mut right, mut total) = (0usize, 0usize);
    for u in 0..USERS {
        let user = dataset
            .users()
            .index(&format!("u{u}").as_str().into())
            .unwrap();
        let items: Vec<usize> = (0..ITEMS)
            .filter(|&i| !(unseen_only && seen.contains(&(u, i))))
            .collect();
        let indices: Vec<usize> = items
            .iter()
            .map(|i| {
                dataset
                    .items()
                    .index(&format!("p{i}").as_str().into())
                    .unwrap()
            })
            .collect();
        let scores = model.predict(user, &indices).unwrap();
        for (a, &ia) in items.iter().enumerate() {
            for (b, &ib) in items.iter().enumerate() {
                if likes(u, ia) && !likes(u, ib) {
                    total += 1;
                    right += usize::from(scores[a] > scores[b]);
                }
            }
        }
    }
    right as f64 / total as f64
}

#[test]
fn logistic_loss_learns_dislikes_from_negative_types() {
    let experiment = Experiment::load(&mut source(), &signed_config(), Split::None).unwrap();
    let train = experiment.train();
    assert!(train.iter().any(|e| e.value == -1.0));
    let (model, _) = experiment.fit(logistic(), EPOCHS, 1, |_| {}).unwrap();
    let all = ordered_fraction(&experiment, &model, false);
    let unseen = ordered_fraction(&experiment, &model, true);
    assert!(all > 0.95, "liked above disliked for {all:.3} of the pairs");
    assert!(
        unseen > 0.8,
        "unseen liked above unseen disliked for {unseen:.3} of the pairs"
    );
}

#[test]
fn signed_dataset_trains_like_hand_built_signed_interactions() {
    let experiment = Experiment::load(&mut source(), &signed_config(), Split::None).unwrap();
    let dataset = experiment.dataset();
    // The same labels by hand: sum the ±1 of each pair's records.
    let mut sums = std::collections::BTreeMap::new();
    for (u, i, kind) in planted() {
        let user = dataset
            .users()
            .index(&format!("u{u}").as_str().into())
            .unwrap();
        let item = dataset
            .items()
            .index(&format!("p{i}").as_str().into())
            .unwrap();
        *sums.entry((user, item)).or_insert(0.0f32) += if kind == "dislike" { -1.0 } else { 1.0 };
    }
    assert!(sums.values().all(|&s| s != 0.0));
    let hand = Interactions::from_entries(
        dataset.n_users(),
        dataset.n_items(),
        sums.iter().map(|(&(user, item), &sum)| Interaction {
            user,
            item,
            value: sum.signum(),
            weight: sum.abs(),
        }),
    )
    .unwrap();
    assert_eq!(experiment.train(), &hand);

    let (signed, _) = experiment.fit(logistic(), EPOCHS, 1, |_| {}).unwrap();
    let mut by_hand = experiment.model(logistic()).unwrap();
    by_hand
        .fit(&hand, FitOptions::epochs(EPOCHS).threads(1))
        .unwrap();
    assert!(signed == by_hand, "parameters differ");
    let items: Vec<usize> = (0..dataset.n_items()).collect();
    for user in 0..dataset.n_users() {
        let a = signed.predict(user, &items).unwrap();
        let b = by_hand.predict(user, &items).unwrap();
        assert_eq!(
            a.iter().map(|s| s.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|s| s.to_bits()).collect::<Vec<_>>()
        );
    }
}
