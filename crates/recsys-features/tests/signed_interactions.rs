//! Negative interaction types: signed labels (value ±1) for the logistic loss.

use recsys_features::*;

fn interaction(user: &str, product: &str, kind: &str, weight: Option<f32>) -> InteractionRecord {
    InteractionRecord {
        user_id: user.into(),
        product_id: product.into(),
        interaction_type: Some(kind.to_string()),
        weight,
        timestamp: None,
    }
}

fn source() -> InMemorySource {
    InMemorySource {
        users: Vec::new(),
        products: Vec::new(),
        interactions: vec![
            interaction("a", "p1", "purchase", None),
            interaction("a", "p2", " dislike ", None),
            // Repeated pair: +1 + 1 − 1 = +1.
            interaction("b", "p1", "purchase", None),
            interaction("b", "p1", "purchase", None),
            interaction("b", "p1", "dislike", None),
            // Repeated pair: −1 − 1 + 1 = −1, weight 1; with record weights −2 − 3 + 1 = −4.
            interaction("b", "p2", "dislike", Some(2.0)),
            interaction("b", "p2", "dislike", Some(3.0)),
            interaction("b", "p2", "view", None),
            // Cancels exactly.
            interaction("c", "p1", "purchase", Some(2.0)),
            interaction("c", "p1", "dislike", Some(2.0)),
        ],
    }
}

fn spec() -> FeatureSpec {
    FeatureSpec::from_columns(&[], &[], 2, true, false).unwrap()
}

/// `(user, item) -> (value, weight)` of every entry, by external ids.
fn entries(
    dataset: &Dataset,
    interactions: &recsys_core::Interactions,
) -> Vec<(String, String, f32, f32)> {
    interactions
        .iter()
        .map(|e| {
            (
                dataset.users().id(e.user).unwrap().to_string(),
                dataset.items().id(e.item).unwrap().to_string(),
                e.value,
                e.weight,
            )
        })
        .collect()
}

#[test]
fn negative_types_give_signed_summed_entries() {
    let mut src = source();
    let dataset = Dataset::from_source(&mut src, spec(), spec()).unwrap();
    let counted = InteractionWeights::new()
        .with_record_weight(false)
        .with_negative_type("dislike");
    let (signed, report) = dataset
        .logged_interactions(InteractionOptions::weighted(counted.clone()))
        .unwrap();
    assert_eq!(report.pairs, 5);
    let expected = [
        ("a", "p1", 1.0, 1.0),
        ("a", "p2", -1.0, 1.0),
        ("b", "p1", 1.0, 1.0),
        ("b", "p2", -1.0, 1.0),
        ("c", "p1", 0.0, 0.0),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|&(u, i, v, w)| (u.to_string(), i.to_string(), v, w))
        .collect();
    assert_eq!(entries(&dataset, &signed), expected);

    // The same from the records themselves.
    let (again, _) = dataset
        .interactions(&src.interactions, InteractionOptions::weighted(counted))
        .unwrap();
    assert_eq!(again, signed);

    // With record weights: the sizes are the signed sums' absolute values.
    let weighted = InteractionWeights::new().with_negative_type("dislike");
    let (w, _) = dataset
        .logged_interactions(InteractionOptions::weighted(weighted))
        .unwrap();
    let got: Vec<(f32, f32)> = w.iter().map(|e| (e.value, e.weight)).collect();
    assert_eq!(
        got,
        [(1.0, 1.0), (-1.0, 1.0), (1.0, 1.0), (-1.0, 4.0), (0.0, 0.0)]
    );

    // Without negative types, nothing is negative; binary mode is unchanged.
    let (plain, _) = dataset
        .logged_interactions(InteractionOptions::weighted(
            InteractionWeights::new().with_record_weight(false),
        ))
        .unwrap();
    assert!(plain.values_raw().iter().all(|&v| v == 1.0));
    assert_eq!(plain.weights_raw(), &[1.0, 1.0, 3.0, 3.0, 2.0]);
    let (binary, _) = dataset
        .logged_interactions(InteractionMode::Binary)
        .unwrap();
    assert!(binary.values_raw().iter().all(|&v| v == 1.0));
    assert!(binary.weights_raw().iter().all(|&w| w == 1.0));
}

#[test]
fn weights_without_negative_types_still_deserialize() {
    let old =
        r#"{"use_record_weight":false,"type_weights":{"cart":3.0},"default_type_weight":1.0}"#;
    let weights: InteractionWeights = serde_json::from_str(old).unwrap();
    assert!(weights.negative_types.is_empty());
    assert_eq!(weights.type_weights["cart"], 3.0);
    let mode: InteractionMode = serde_json::from_str(&format!(r#"{{"Weighted":{old}}}"#)).unwrap();
    assert_eq!(mode, InteractionMode::Weighted(weights.clone()));

    let signed = weights.with_negative_type("dislike");
    let text = serde_json::to_string(&signed).unwrap();
    assert_eq!(
        serde_json::from_str::<InteractionWeights>(&text).unwrap(),
        signed
    );
}
