//! `Dataset::resume`: a dataset continuing from a trained model's ids, vocabularies and
//! feature rows; known rows come back bit for bit, new rows and values are appended.

use recsys_features::*;

fn product(id: i64, tags: &str) -> ProductRecord {
    ProductRecord {
        product_id: id.into(),
        name: None,
        price: None,
        image: None,
        attributes: [("tags".to_string(), tags.to_string())].into(),
    }
}

fn spec() -> FeatureSpec {
    FeatureSpec::identity_only()
        .with_column(ColumnSpec::weighted_multi_valued("tags", '|'))
        .with_normalize(true)
}

#[test]
fn known_rows_come_back_bit_for_bit_and_new_ones_are_appended() {
    // L1-normalising these rows a second time changes the last bit of a weight (1 + 0.1 +
    // 1.3 does not divide evenly in f32), so rows taken from a model must not be weighted
    // again.
    let mut source = InMemorySource {
        products: vec![product(1, "a:0.1|b:1.3"), product(2, "a:0.2|c:0.5")],
        ..Default::default()
    };
    let built = Dataset::from_source(&mut source, FeatureSpec::identity_only(), spec()).unwrap();
    let trained = built.item_features();
    let mut grown = Dataset::resume(
        built.users().clone(),
        built.items().clone(),
        built.user_vocabulary().clone(),
        built.item_vocabulary().clone(),
        &built.user_features(),
        &trained,
    )
    .unwrap();
    assert_eq!(grown.item_features().row(0), trained.row(0));
    assert_eq!(grown.item_features().row(1), trained.row(1));

    // A record of a known product is refused: its row is settled.
    assert!(matches!(
        grown.add_product(&product(1, "z:1")),
        Err(FeaturesError::DuplicateRecord { .. })
    ));
    // A new product: a row after the known ones, its identity feature and new value after
    // the known features, weighted by the spec.
    let known = built.item_vocabulary().len();
    assert_eq!(grown.add_product(&product(3, "a:1|d:3")).unwrap(), 2);
    let matrix = grown.item_features();
    assert_eq!(matrix.n_rows(), 3);
    assert_eq!(matrix.n_features(), known + 2);
    let (features, weights) = matrix.row(2);
    let a = built.item_vocabulary().value_index("tags", "a").unwrap();
    assert_eq!(features, &[a, known, known + 1]);
    assert_eq!(weights, &[0.2, 0.2, 0.6]);
    assert_eq!(grown.item_features().row(0), trained.row(0));
    // Interactions register new ids too.
    grown
        .add_interaction(&InteractionRecord {
            user_id: 9.into(),
            product_id: 1.into(),
            interaction_type: None,
            weight: None,
            timestamp: Some(5),
        })
        .unwrap();
    assert_eq!(grown.n_users(), built.n_users() + 1);
    assert_eq!(grown.interaction_log().len(), 1);
}

#[test]
fn matrices_that_do_not_match_their_ids_or_vocabulary_are_refused() {
    let mut source = InMemorySource {
        products: vec![product(1, "a"), product(2, "b")],
        ..Default::default()
    };
    let built = Dataset::from_source(&mut source, FeatureSpec::identity_only(), spec()).unwrap();
    let resume = |items: &recsys_core::FeatureMatrix| {
        Dataset::resume(
            built.users().clone(),
            built.items().clone(),
            built.user_vocabulary().clone(),
            built.item_vocabulary().clone(),
            &built.user_features(),
            items,
        )
    };
    let too_few_rows = recsys_core::FeatureMatrix::identity(1);
    let err = resume(&too_few_rows).unwrap_err();
    assert!(err.to_string().contains("1 rows for 2 ids"), "{err}");
    let too_many_features = built.item_features().grown(2, 9).unwrap();
    let err = resume(&too_many_features).unwrap_err();
    assert!(err.to_string().contains("9 feature columns"), "{err}");
}
