//! Property tests over random records: feature names are never empty, normalised rows sum to
//! one, identity features come first, cold-start rows equal training rows minus identity,
//! numeric buckets follow the edges, interactions keep every distinct pair.

use std::collections::HashSet;

use approx::assert_relative_eq;
use proptest::prelude::*;
use recsys_features::*;

/// Text with the characters that matter: separators, weight colons, spaces, digits.
fn messy_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("  ".to_string()),
        "[ab |:;0-9.]{0,10}",
        "(Nike|Puma| Adidas ){1}",
    ]
}

fn arb_product(index: usize) -> impl Strategy<Value = ProductRecord> {
    (
        proptest::option::of(prop_oneof![
            Just(f64::NAN),
            -100.0f64..100.0,
            (0i32..5).prop_map(f64::from)
        ]),
        messy_text(),
        messy_text(),
        messy_text(),
        prop_oneof![messy_text(), (0u8..50).prop_map(|v| v.to_string())],
    )
        .prop_map(move |(price, brand, tags, mix, size)| ProductRecord {
            product_id: ExternalId::from(format!("p{index}")),
            name: Some(format!("Product {index}")),
            price,
            image: None,
            attributes: [
                ("brand", brand),
                ("tags", tags),
                ("mix", mix),
                ("size", size),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        })
}

fn arb_products() -> impl Strategy<Value = Vec<ProductRecord>> {
    (0usize..25).prop_flat_map(|n| (0..n).map(arb_product).collect::<Vec<_>>())
}

fn spec(identity: bool, normalize: bool, quantiles: usize) -> FeatureSpec {
    FeatureSpec {
        identity,
        normalize,
        metadata_weight: None,
        columns: vec![
            ColumnSpec::categorical("brand").with_weight(2.0),
            ColumnSpec::multi_valued("tags", '|'),
            ColumnSpec::weighted_multi_valued("mix", ';').with_weight(0.5),
            ColumnSpec::quantiles("price", quantiles),
            ColumnSpec::edges("size", vec![10.0, 20.0, 20.0]),
        ],
    }
}

fn build(products: &[ProductRecord], item_spec: FeatureSpec) -> Dataset {
    let mut builder = Dataset::builder(FeatureSpec::identity_only(), item_spec).unwrap();
    for p in products {
        builder.add_product(p).unwrap();
    }
    builder.build()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn features_are_well_formed(
        products in arb_products(),
        identity in any::<bool>(),
        normalize in any::<bool>(),
        quantiles in 1usize..6,
    ) {
        let dataset = build(&products, spec(identity, normalize, quantiles));
        let vocabulary = dataset.item_vocabulary();
        let n = products.len();

        // Identity features first, exactly rows 0..n.
        for f in 0..vocabulary.len() {
            match vocabulary.feature(f).unwrap() {
                Feature::Identity(row) => {
                    prop_assert!(identity && f < n && *row == f);
                }
                Feature::Value(_, value) => {
                    prop_assert!(!identity || f >= n);
                    prop_assert!(!value.is_empty() && value.trim() == value, "{:?}", value);
                    let name = vocabulary.feature_name(f).unwrap();
                    let (column, v) = name.split_once(':').unwrap();
                    prop_assert!(!column.is_empty() && !v.is_empty(), "{}", name);
                    prop_assert_eq!(vocabulary.value_index(column, v), Some(f));
                }
            }
        }
        // All names distinct.
        let names: HashSet<String> =
            (0..vocabulary.len()).map(|f| dataset.item_feature_name(f).unwrap()).collect();
        prop_assert_eq!(names.len(), vocabulary.len());

        let matrix = dataset.item_features();
        prop_assert_eq!((matrix.n_rows(), matrix.n_features()), (n, vocabulary.len()));
        for i in 0..n {
            let (features, weights) = matrix.row(i);
            prop_assert!(features.windows(2).all(|w| w[0] < w[1]));
            prop_assert!(weights.iter().all(|w| w.is_finite() && *w > 0.0));
            if identity {
                prop_assert!(features.contains(&i));
            }
            if normalize && !features.is_empty() {
                let sum: f32 = weights.iter().sum();
                prop_assert!((sum - 1.0).abs() < 1e-5, "row {} sums to {}", i, sum);
            }
        }
    }

    #[test]
    fn numeric_buckets_follow_the_learned_edges(
        products in arb_products(),
        quantiles in 1usize..6,
    ) {
        let dataset = build(&products, spec(false, false, quantiles));
        let finite: Vec<f64> = products.iter().filter_map(|p| p.price).filter(|v| v.is_finite()).collect();
        let edges = dataset.item_vocabulary().bucket_edges("price").unwrap().to_vec();
        prop_assert_eq!(&edges, &quantile_edges(&finite, quantiles));
        let matrix = dataset.item_features();
        for (i, p) in products.iter().enumerate() {
            let price_features: Vec<String> = matrix.row(i).0.iter()
                .filter_map(|&f| dataset.item_feature_name(f))
                .filter(|name| name.starts_with("price:"))
                .collect();
            match p.price.filter(|v| v.is_finite()) {
                Some(v) => prop_assert_eq!(
                    price_features,
                    vec![format!("price:q{}", edges.iter().filter(|&&e| e <= v).count())]
                ),
                None => prop_assert!(price_features.is_empty()),
            }
        }
    }

    #[test]
    fn cold_start_row_is_the_training_row_without_identity(
        products in arb_products(),
        normalize in any::<bool>(),
        quantiles in 1usize..6,
    ) {
        // Same vocabulary either way; the raw (unnormalised) rows come from `raw`.
        let dataset = build(&products, spec(true, normalize, quantiles));
        let raw = build(&products, spec(true, false, quantiles)).item_features();
        let raw_vocabulary = raw_features(&products, quantiles);
        prop_assert_eq!(dataset.item_vocabulary().features(), raw_vocabulary.as_slice());
        for (i, p) in products.iter().enumerate() {
            let (features, weights) = raw.row(i);
            let mut expected: Vec<(usize, f32)> = features
                .iter()
                .zip(weights)
                .filter(|(&f, _)| f != i)
                .map(|(&f, &w)| (f, w))
                .collect();
            if normalize {
                let sum: f64 = expected.iter().map(|&(_, w)| f64::from(w)).sum();
                for (_, w) in &mut expected {
                    *w = (f64::from(*w) / sum) as f32;
                }
            }
            let cold = dataset.item_feature_row(p);
            prop_assert_eq!(cold.len(), expected.len());
            for ((f, w), (ef, ew)) in cold.iter().zip(&expected) {
                prop_assert_eq!(f, ef);
                assert_relative_eq!(*w, *ew, max_relative = 1e-6);
            }
        }
    }

    #[test]
    fn interactions_keep_every_distinct_pair(
        pairs in proptest::collection::vec((0i64..6, 0i64..6), 0..60),
    ) {
        let records: Vec<InteractionRecord> = pairs.iter().map(|&(u, p)| InteractionRecord {
            user_id: u.into(),
            product_id: p.into(),
            interaction_type: None,
            weight: Some(0.5),
            timestamp: None,
        }).collect();
        let mut source = InMemorySource { interactions: records.clone(), ..Default::default() };
        let dataset = Dataset::from_source(&mut source, FeatureSpec::identity_only(), FeatureSpec::identity_only()).unwrap();
        let distinct: HashSet<(i64, i64)> = pairs.iter().copied().collect();
        let (binary, report) = dataset.interactions(&records, InteractionMode::Binary).unwrap();
        prop_assert_eq!(binary.len(), distinct.len());
        prop_assert_eq!(report.merged_duplicates, pairs.len() - distinct.len());
        let (weighted, _) = dataset
            .logged_interactions(InteractionOptions::weighted(InteractionWeights::new()))
            .unwrap();
        let total: f32 = weighted.weights_raw().iter().sum();
        assert_relative_eq!(total, 0.5 * pairs.len() as f32, epsilon = 1e-4);
        for &(u, p) in &distinct {
            let ui = dataset.users().index(&u.into()).unwrap();
            let pi = dataset.items().index(&p.into()).unwrap();
            prop_assert!(binary.contains(ui, pi));
        }
    }
}

/// The vocabulary a normalised build must share with an unnormalised one.
fn raw_features(products: &[ProductRecord], quantiles: usize) -> Vec<Feature> {
    build(products, spec(true, false, quantiles))
        .item_vocabulary()
        .features()
        .to_vec()
}
