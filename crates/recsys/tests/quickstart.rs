//! The quickstart example's logic, as library calls on a smaller demo shop: the hybrid
//! model beats popularity, recommendations follow each user's taste, similar products share
//! a category, and a brand-new user gets products that suit their attributes.

use std::collections::HashMap;

use recsys::demo::{generate, DemoConfig};
use recsys::experiment::{Experiment, ExperimentConfig, Split};
use recsys::{
    Attributes, ExactCosine, ExternalId, HybridModel, Hyperparameters, Loss, SimilarityIndex,
};

const SEED: u64 = 42;

struct Trained {
    experiment: Experiment,
    model: HybridModel,
    category: Vec<String>,
}

fn train() -> Trained {
    let shop = generate(&DemoConfig {
        users: 500,
        products: 240,
        interactions: 13_000,
        seed: SEED,
    });
    let by_id: HashMap<&ExternalId, &str> = shop
        .products
        .iter()
        .map(|p| (&p.product_id, p.attributes["category"].as_str()))
        .collect();
    let experiment = Experiment::load(
        &mut shop.clone(),
        &ExperimentConfig::demo_hybrid(),
        Split::Random {
            test_fraction: 0.2,
            seed: SEED,
        },
    )
    .unwrap();
    let category = experiment
        .dataset()
        .items()
        .ids()
        .iter()
        .map(|id| by_id[id].to_string())
        .collect();
    let params = Hyperparameters::builder()
        .loss(Loss::Warp)
        .no_components(32)
        .learning_rate(0.1)
        .seed(SEED)
        .build()
        .unwrap();
    let (model, _) = experiment.fit(params, 20, 1, |_| {}).unwrap();
    Trained {
        experiment,
        model,
        category,
    }
}

#[test]
fn quickstart_story_holds() {
    let Trained {
        experiment,
        model,
        category,
    } = train();

    let hybrid = experiment.evaluate(&model, 10, 1).unwrap();
    let popular = experiment
        .evaluate(&experiment.popularity(), 10, 1)
        .unwrap();
    println!("seed {SEED}: hybrid {hybrid:?}\npopularity {popular:?}");
    assert!(hybrid.precision_at_k > popular.precision_at_k);
    assert!(hybrid.auc > popular.auc);

    // Top-5 recommendations fall in the user's two most frequent training categories far
    // more often than the 2 in 8 of chance.
    let (mut hits, mut total) = (0, 0);
    for user in 0..60 {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for &i in experiment.train().user_items(user) {
            *counts.entry(category[i as usize].as_str()).or_default() += 1;
        }
        let mut favourites: Vec<(&str, usize)> = counts.into_iter().collect();
        favourites.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        favourites.truncate(2);
        let recommended = experiment.recommend(&model, user, 5).unwrap();
        assert_eq!(recommended.len(), 5);
        for (item, _) in recommended {
            assert!(
                !experiment.train().contains(user, item),
                "recommended a seen item"
            );
            total += 1;
            hits += usize::from(favourites.iter().any(|f| f.0 == category[item]));
        }
    }
    let taste_share = hits as f64 / total as f64;
    println!("share of recommendations in a favourite category: {taste_share:.2}");
    assert!(taste_share > 0.5, "{taste_share}");

    // Similar products share the category far more often than the 1 in 8 of chance.
    let index = ExactCosine::new(model.item_representations().vectors());
    let n_items = experiment.n_items();
    let same: usize = (0..n_items)
        .map(|item| {
            let similar = index.similar(item, 5, &|_| false).expect("item in range");
            assert_eq!(similar.len(), 5);
            similar
                .iter()
                .filter(|s| category[s.item] == category[item])
                .count()
        })
        .sum();
    let same_share = same as f64 / (5 * n_items) as f64;
    println!("share of similar products in the same category: {same_share:.2}");
    assert!(same_share > 0.3, "{same_share}");

    // A brand-new 18-24 year-old: sportswear and shoes (the age group's favourites).
    let newcomer: Attributes = [
        ("city", "Stockholm"),
        ("age_group", "18-24"),
        ("user_type", "vip"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(experiment.dataset().user_feature_row(&newcomer).len(), 3);
    let cold = experiment.recommend_new_user(&model, &newcomer, 5).unwrap();
    let suits = cold
        .iter()
        .filter(|(i, _)| matches!(category[*i].as_str(), "sportswear" | "shoes"))
        .count();
    println!("new 18-24 user: {suits} of 5 in sportswear/shoes");
    assert!(suits >= 3, "{suits}");
}
