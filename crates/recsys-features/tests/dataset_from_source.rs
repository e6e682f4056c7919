//! Building a dataset from an in-memory source: ids, features, interactions, test pairs,
//! errors, incremental growth.

use approx::assert_relative_eq;
use recsys_features::*;

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn user(id: &str, pairs: &[(&str, &str)]) -> UserRecord {
    UserRecord {
        user_id: id.into(),
        attributes: attrs(pairs),
    }
}

fn product(id: &str, price: Option<f64>, pairs: &[(&str, &str)]) -> ProductRecord {
    ProductRecord {
        product_id: id.into(),
        name: Some(format!("Product {id}")),
        price,
        image: None,
        attributes: attrs(pairs),
    }
}

fn interaction(
    user: &str,
    product: &str,
    kind: Option<&str>,
    weight: Option<f32>,
) -> InteractionRecord {
    InteractionRecord {
        user_id: user.into(),
        product_id: product.into(),
        interaction_type: kind.map(str::to_string),
        weight,
        timestamp: Some(1_700_000_000),
    }
}

fn source() -> InMemorySource {
    InMemorySource {
        users: vec![
            user("u1", &[("city", "Oslo"), ("age", "31")]),
            user("u2", &[("city", " "), ("age", "45")]),
            user("3", &[("city", "Bergen")]),
        ],
        products: vec![
            product("10", Some(10.0), &[("brand", "Nike"), ("tags", "red|run")]),
            product("11", Some(30.0), &[("brand", "Puma"), ("tags", "")]),
            product("12", None, &[("brand", ""), ("tags", "red")]),
            product(
                "13",
                Some(20.0),
                &[("brand", "Nike"), ("tags", "blue| run ")],
            ),
        ],
        interactions: vec![
            interaction("u1", "10", Some("view"), None),
            interaction("u1", "10", Some("purchase"), Some(2.0)),
            interaction("u2", "11", Some("cart"), None),
            interaction(" 3 ", "13", None, Some(0.5)),
            // Known only from interactions:
            interaction("u4", "14", Some("view"), None),
        ],
    }
}

fn item_spec() -> FeatureSpec {
    FeatureSpec::from_columns(&["brand,tags:multi,price"], &["price"], 2, true, true).unwrap()
}

fn user_spec() -> FeatureSpec {
    FeatureSpec::from_columns(&["city,age:q2"], &[], 4, true, false).unwrap()
}

#[test]
fn registers_every_id_and_builds_matrices() {
    let dataset = Dataset::from_source(&mut source(), user_spec(), item_spec()).unwrap();
    let user_ids: Vec<String> = dataset
        .users()
        .iter()
        .map(|(_, id)| id.to_string())
        .collect();
    assert_eq!(user_ids, ["u1", "u2", "3", "u4"]);
    assert_eq!(dataset.users().index(&ExternalId::Int(3)), Some(2));
    assert_eq!(dataset.items().len(), 5);
    assert_eq!(dataset.items().index(&ExternalId::from(14)), Some(4));

    // Users: identity 0..4, then city:Oslo, age:q0, age:q1, city:Bergen.
    assert_eq!(
        dataset.user_vocabulary().bucket_edges("age"),
        Some(&[38.0][..])
    );
    let names: Vec<String> = (0..dataset.user_vocabulary().len())
        .map(|f| dataset.user_feature_name(f).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "u1",
            "u2",
            "3",
            "u4",
            "city:Oslo",
            "age:q0",
            "age:q1",
            "city:Bergen"
        ]
    );
    let users = dataset.user_features();
    assert_eq!((users.n_rows(), users.n_features()), (4, 8));
    assert_eq!(users.row(0), (&[0, 4, 5][..], &[1.0, 1.0, 1.0][..]));
    assert_eq!(users.row(1), (&[1, 6][..], &[1.0, 1.0][..]));
    assert_eq!(users.row(3), (&[3][..], &[1.0][..])); // only known by id

    // Items: price edges learned from 10, 30, 20 → median 20.
    assert_eq!(
        dataset.item_vocabulary().bucket_edges("price"),
        Some(&[20.0][..])
    );
    let items = dataset.item_features();
    assert_eq!(items.n_rows(), 5);
    for i in 0..items.n_rows() {
        let sum: f32 = items.row(i).1.iter().sum();
        assert_relative_eq!(sum, 1.0, epsilon = 1e-6);
    }
    let product_13 = dataset.items().index(&ExternalId::from(13)).unwrap();
    let (features, _) = items.row(product_13);
    let names: Vec<String> = features
        .iter()
        .map(|&f| dataset.item_feature_name(f).unwrap())
        .collect();
    assert_eq!(
        names,
        ["13", "brand:Nike", "tags:run", "price:q1", "tags:blue"]
    );
    assert!(items.row(4).0 == [4]); // product 14: identity only
}

#[test]
fn binary_and_weighted_interactions() {
    let src = source();
    let dataset = Dataset::from_source(&mut src.clone(), user_spec(), item_spec()).unwrap();
    assert_eq!(dataset.interaction_log().len(), 5);
    assert_eq!(
        dataset.interaction_log().interaction_types(),
        ["view", "purchase", "cart"]
    );

    let (binary, report) = dataset
        .logged_interactions(InteractionMode::Binary)
        .unwrap();
    assert_eq!((binary.n_users(), binary.n_items()), (4, 5));
    assert_eq!(binary.len(), 4);
    assert_eq!(report.merged_duplicates, 1);
    assert!(binary.weights_raw().iter().all(|&w| w == 1.0));
    assert!(binary.values_raw().iter().all(|&v| v == 1.0));

    let weights = InteractionWeights::parse_type_weights("view=1,cart=3,purchase=5").unwrap();
    let (weighted, _) = dataset
        .logged_interactions(InteractionOptions::weighted(weights.clone()))
        .unwrap();
    // u1/10: view (1) + purchase (2 × 5); u2/11: cart 3; 3/13: no type (1) × 0.5; u4/14: 1.
    assert_eq!(weighted.weights_raw(), &[11.0, 3.0, 0.5, 1.0]);

    // The same from the records themselves.
    let (again, _) = dataset
        .interactions(
            &src.interactions,
            InteractionOptions::weighted(weights.clone()),
        )
        .unwrap();
    assert_eq!(again, weighted);

    let no_record_weight = weights.with_record_weight(false);
    let (w, _) = dataset
        .interactions(
            &src.interactions,
            InteractionOptions::weighted(no_record_weight),
        )
        .unwrap();
    assert_eq!(w.weights_raw(), &[6.0, 3.0, 1.0, 1.0]);
}

#[test]
fn unknown_ids_error_by_default_and_can_be_skipped() {
    let dataset = Dataset::from_source(&mut source(), user_spec(), item_spec()).unwrap();
    let records = vec![
        interaction("u1", "11", None, None),
        interaction("ghost", "11", None, None),
        interaction("u2", "999", None, None),
        interaction("ghost", "999", None, None),
    ];
    let err = dataset
        .interactions(&records, InteractionMode::Binary)
        .unwrap_err();
    assert!(matches!(err, FeaturesError::UnknownId { position: 1, .. }));
    assert_eq!(
        err.to_string(),
        "unknown user id \"ghost\" in interaction #1"
    );

    let (x, report) = dataset
        .interactions(&records, InteractionOptions::binary().skip_unknown_ids())
        .unwrap();
    assert_eq!(x.len(), 1);
    assert_eq!(
        (
            report.records,
            report.skipped,
            report.unknown_users,
            report.unknown_products
        ),
        (4, 3, 2, 2)
    );
    assert_eq!(report.unknown_user_examples, [ExternalId::from("ghost")]);
    assert_eq!(report.unknown_product_examples, [ExternalId::from(999)]);
}

#[test]
fn held_out_pairs_map_to_the_same_shape() {
    let dataset = Dataset::from_source(&mut source(), user_spec(), item_spec()).unwrap();
    let pairs = vec![
        (ExternalId::from("u2"), ExternalId::from("10")),
        (ExternalId::from("u2"), ExternalId::from(10)), // same pair
        (ExternalId::from("nobody"), ExternalId::from(10)),
    ];
    let (test, report) = dataset
        .interactions_from_pairs(pairs.iter().map(|(u, p)| (u, p)), UnknownIdPolicy::Skip)
        .unwrap();
    assert_eq!((test.n_users(), test.n_items()), (4, 5));
    assert!(test.contains(1, 0));
    assert_eq!(
        (report.pairs, report.merged_duplicates, report.skipped),
        (1, 1, 1)
    );
    let err = dataset
        .interactions_from_pairs(pairs, UnknownIdPolicy::Error)
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown user id \"nobody\" in pair #2");
}

#[test]
fn bad_input_is_an_error_naming_the_value() {
    let mut dup = source();
    dup.products.push(product("13", None, &[]));
    let err = Dataset::from_source(&mut dup, user_spec(), item_spec()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "duplicate product record for id \"13\" (each id may carry attributes once)"
    );

    let mut empty = source();
    empty.interactions.push(interaction("u1", " ", None, None));
    let err = Dataset::from_source(&mut empty, user_spec(), item_spec()).unwrap_err();
    assert_eq!(err.to_string(), "empty product id in interaction #5");

    let dataset = Dataset::from_source(&mut source(), user_spec(), item_spec()).unwrap();
    let negative = vec![interaction("u1", "10", None, Some(-2.0))];
    let err = dataset
        .interactions(
            &negative,
            InteractionOptions::weighted(InteractionWeights::new()),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid interaction weight -2 in interaction #0 (user \"u1\", product \"10\"): \
         weights must be finite and >= 0"
    );
    // Binary mode ignores record weights.
    assert!(dataset
        .interactions(&negative, InteractionMode::Binary)
        .is_ok());
    let err = InteractionWeights::parse_type_weights("view=1,cart").unwrap_err();
    assert!(err.to_string().contains("\"cart\""), "{err}");
}

#[test]
fn grows_incrementally_without_moving_indices() {
    let mut dataset = Dataset::from_source(&mut source(), user_spec(), item_spec()).unwrap();
    let before = dataset.item_features();
    let n_features = dataset.item_vocabulary().len();

    // Product 14 was known by id only: its attributes may still arrive once.
    dataset
        .add_product(&product(
            "14",
            Some(25.0),
            &[("brand", "Adidas"), ("tags", "red")],
        ))
        .unwrap();
    let new_item = dataset
        .add_product(&product(
            "15",
            Some(5.0),
            &[("brand", "Nike"), ("tags", "green")],
        ))
        .unwrap();
    assert_eq!(new_item, 5);
    assert!(dataset.add_product(&product("15", None, &[])).is_err());
    dataset
        .add_interaction(&interaction("u9", "15", Some("view"), None))
        .unwrap();

    let after = dataset.item_features();
    assert_eq!(after.n_rows(), 6);
    assert!(after.n_features() > n_features);
    for i in 0..4 {
        assert_eq!(after.row(i), before.row(i), "row {i} changed");
    }
    for f in 0..n_features {
        assert_eq!(
            dataset.item_feature_name(f),
            Dataset::from_source(&mut source(), user_spec(), item_spec())
                .unwrap()
                .item_feature_name(f)
        );
    }
    // Edges stay as learned: 25 > 20 is q1, 5 is q0.
    let names = |i: usize| -> Vec<String> {
        after
            .row(i)
            .0
            .iter()
            .map(|&f| dataset.item_feature_name(f).unwrap())
            .collect()
    };
    assert_eq!(names(4), ["14", "tags:red", "price:q1", "brand:Adidas"]);
    assert_eq!(names(5), ["brand:Nike", "price:q0", "15", "tags:green"]);
    let (x, _) = dataset
        .logged_interactions(InteractionMode::Binary)
        .unwrap();
    assert_eq!((x.n_users(), x.n_items(), x.len()), (5, 6, 5));
}

#[test]
fn cold_start_rows_use_the_training_vocabulary() {
    let dataset = Dataset::from_source(&mut source(), user_spec(), item_spec()).unwrap();
    let row = dataset.user_feature_row(&attrs(&[("city", "Bergen"), ("age", "60"), ("x", "y")]));
    let names: Vec<String> = row
        .iter()
        .map(|&(f, _)| dataset.user_feature_name(f).unwrap())
        .collect();
    assert_eq!(names, ["age:q1", "city:Bergen"]);
    assert!(row.iter().all(|&(_, w)| w == 1.0)); // users are not normalised
    assert!(dataset
        .user_feature_row(&attrs(&[("city", "Paris")]))
        .is_empty());
    let row = dataset.item_feature_row(&product("new", Some(1.0), &[("tags", "run|red|neon")]));
    assert_eq!(row.len(), 3); // tags:red, tags:run, price:q0
    assert_relative_eq!(
        row.iter().map(|&(_, w)| w).sum::<f32>(),
        1.0,
        epsilon = 1e-6
    );
}

#[test]
fn builder_accepts_records_after_ids_and_vocabulary_serialises() {
    let mut builder = Dataset::builder(FeatureSpec::attributes_only(), item_spec()).unwrap();
    builder
        .add_interaction(&interaction("a", "1", None, None))
        .unwrap();
    builder
        .add_product(&product("1", Some(3.0), &[("brand", "X")]))
        .unwrap();
    assert!(builder.add_product(&product("1", None, &[])).is_err());
    assert_eq!(builder.add_user_id(&ExternalId::from("a")).unwrap(), 0);
    let dataset = builder.build();
    // No user features at all: a 1 × 0 matrix with an empty row.
    let users = dataset.user_features();
    assert_eq!((users.n_rows(), users.n_features()), (1, 0));
    let items = dataset.item_features();
    assert_eq!(items.row(0).0, &[0, 1, 2]);

    let json = serde_json::to_string(dataset.item_vocabulary()).unwrap();
    let back: FeatureVocabulary = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, dataset.item_vocabulary());
    let ids = serde_json::to_string(dataset.items()).unwrap();
    assert_eq!(ids, "[1]");
}
