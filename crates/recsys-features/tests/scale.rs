//! Smoke test at the size of the real data (68,509 products, 867,688 interactions): building
//! must stay linear. Prints the timings; asserts only the shapes.

use std::time::Instant;

use recsys_features::*;

#[test]
fn builds_at_production_scale() {
    const PRODUCTS: i64 = 68_509;
    const USERS: i64 = 40_000;
    const INTERACTIONS: i64 = 867_688;
    let products = (0..PRODUCTS).map(|p| ProductRecord {
        product_id: p.into(),
        name: Some(format!("Product number {p} with a long display name")),
        price: Some((p * 7919 % 1000) as f64 / 10.0),
        image: Some(format!("{p}.jpg")),
        attributes: [
            ("category", format!("cat{}", p % 40)),
            ("brand", format!("brand{}", p % 900)),
            ("colour", format!("c{}|c{}", p % 12, p % 5)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    });
    // A tiny deterministic generator (seed 42) for interaction pairs.
    let mut state: u64 = 42;
    let mut next = move |n: i64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % n as u64) as i64
    };
    let kinds = ["view", "cart", "purchase"];
    let interactions: Vec<InteractionRecord> = (0..INTERACTIONS)
        .map(|k| InteractionRecord {
            user_id: ExternalId::from(format!("user{}", next(USERS))),
            product_id: next(PRODUCTS).into(),
            interaction_type: Some(kinds[(k % 3) as usize].to_string()),
            weight: None,
            timestamp: Some(k),
        })
        .collect();
    let mut source = InMemorySource {
        users: Vec::new(),
        products: products.collect(),
        interactions,
    };
    let item_spec = FeatureSpec::from_columns(
        &["category,brand,colour:multi,price"],
        &["price"],
        10,
        true,
        true,
    )
    .unwrap();

    let start = Instant::now();
    let dataset =
        Dataset::from_source(&mut source, FeatureSpec::identity_only(), item_spec).unwrap();
    let built = start.elapsed();
    let items = dataset.item_features();
    let users = dataset.user_features();
    let matrices = start.elapsed() - built;
    let weights = InteractionWeights::parse_type_weights("view=1,cart=3,purchase=5").unwrap();
    let (x, report) = dataset
        .logged_interactions(InteractionOptions::weighted(weights))
        .unwrap();
    let (from_records, _) = dataset
        .interactions(&source.interactions, InteractionMode::Binary)
        .unwrap();
    let total = start.elapsed();
    println!("build {built:?}, matrices {matrices:?}, all {total:?}; {report:?}");

    assert_eq!(items.n_rows(), PRODUCTS as usize);
    assert_eq!(users.n_rows(), dataset.n_users());
    assert_eq!(x.len(), from_records.len());
    assert_eq!(report.records, INTERACTIONS as usize);
}
