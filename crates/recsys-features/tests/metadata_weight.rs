//! Identity-anchored weighting (`FeatureSpec::metadata_weight`).

use approx::assert_relative_eq;
use recsys_features::*;

fn product(id: i64, brand: &str, colour: &str) -> ProductRecord {
    ProductRecord {
        product_id: id.into(),
        name: None,
        price: None,
        image: None,
        attributes: [("brand", brand), ("colour", colour)]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn dataset(spec: FeatureSpec) -> Dataset {
    let mut source = InMemorySource {
        products: vec![
            product(1, "acme", "red"),
            product(2, "acme", ""),
            product(3, "", ""),
        ],
        ..Default::default()
    };
    Dataset::from_source(&mut source, FeatureSpec::identity_only(), spec).unwrap()
}

fn spec(weight: Option<f32>) -> FeatureSpec {
    FeatureSpec::identity_only()
        .with_column(ColumnSpec::categorical("brand"))
        .with_column(ColumnSpec::categorical("colour").with_weight(3.0))
        .with_normalize(true)
        .with_metadata_weight(weight)
}

#[test]
fn identity_keeps_weight_one_and_metadata_sums_to_the_weight() {
    let ds = dataset(spec(Some(0.5)));
    let m = ds.item_features();
    // Item 0: identity, brand (weight 1), colour (weight 3) → 1, 0.125, 0.375.
    let (f, w) = m.row(0);
    assert_eq!(f.len(), 3);
    let id = ds.item_vocabulary().identity_index(0).unwrap();
    for (&f, &w) in f.iter().zip(w) {
        if f == id {
            assert_eq!(w, 1.0);
        }
    }
    assert_relative_eq!(w.iter().sum::<f32>(), 1.5, epsilon = 1e-6);
    assert_relative_eq!(w.iter().copied().fold(0.0, f32::max), 1.0);
    assert!(w.contains(&0.125) && w.contains(&0.375), "{w:?}");
    // Item 2 has no metadata: only its identity, weight 1.
    assert_eq!(m.row(2).1, &[1.0]);
    // Cold start: no identity, metadata sums to the weight.
    let row = ds.item_feature_row(&product(9, "acme", "red"));
    assert_relative_eq!(row.iter().map(|(_, w)| w).sum::<f32>(), 0.5, epsilon = 1e-6);
}

#[test]
fn without_it_rows_are_l1_normalised_like_lightfm() {
    let ds = dataset(spec(None));
    let m = ds.item_features();
    let (_, w) = m.row(0);
    assert_relative_eq!(w.iter().sum::<f32>(), 1.0, epsilon = 1e-6);
}

#[test]
fn invalid_weights_are_refused() {
    for bad in [f32::NAN, -1.0, f32::INFINITY] {
        let err = spec(Some(bad)).validate().unwrap_err();
        assert!(err.to_string().contains("metadata_weight"), "{err}");
    }
}

#[test]
fn old_specs_without_the_field_still_load() {
    let json = r#"{"identity":true,"columns":[],"normalize":false}"#;
    let spec: FeatureSpec = serde_json::from_str(json).unwrap();
    assert_eq!(spec.metadata_weight, None);
}
