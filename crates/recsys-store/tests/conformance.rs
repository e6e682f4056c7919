//! One conformance suite for every data source (house rule 12): the same fixture, served by
//! `InMemorySource`, by `CsvSource` (written with `write_csv_dir`) and by `MongoSource`
//! (imported with `import_csv`), must read back identically and build the same dataset.

mod common;

use common::{attrs, TempDir};
use recsys_features::{
    ColumnSpec, Dataset, ExternalId, FeatureSpec, InMemorySource, InteractionRecord, ProductRecord,
    RecordSource, UserRecord,
};
use recsys_store::{write_csv_dir, CsvSource};

/// Mixed id kinds (integers, text, negative, leading zero), attributes present and absent,
/// optional fields present and absent, a repeated (user, product) pair, non-ASCII text.
fn fixture() -> InMemorySource {
    let user = |id: ExternalId, a: &[(&str, &str)]| UserRecord {
        user_id: id,
        attributes: attrs(a),
    };
    let product = |id: ExternalId, name: Option<&str>, price: Option<f64>, a: &[(&str, &str)]| {
        ProductRecord {
            product_id: id,
            name: name.map(str::to_string),
            price,
            image: name.map(|n| format!("{n}.jpg")),
            attributes: attrs(a),
        }
    };
    let interaction =
        |u: ExternalId, p: ExternalId, kind: Option<&str>, w: Option<f32>, ts: Option<i64>| {
            InteractionRecord {
                user_id: u,
                product_id: p,
                interaction_type: kind.map(str::to_string),
                weight: w,
                timestamp: ts,
            }
        };
    InMemorySource {
        users: vec![
            user(1.into(), &[("city", "Paris"), ("age_group", "25-34")]),
            user(2.into(), &[("age_group", "55+")]),
            user("u-3".into(), &[("city", "Zürich, CH")]),
            user("007".into(), &[]),
            user((-5).into(), &[("city", "Lyon")]),
        ],
        products: vec![
            product(
                10.into(),
                Some("Blue Shirt, \"linen\""),
                Some(19.99),
                &[("category", "shirts")],
            ),
            product(
                11.into(),
                Some("Red Dress"),
                None,
                &[("category", "dresses"), ("brand", "Acme")],
            ),
            product("P-12".into(), None, Some(0.0), &[]),
            product(13.into(), Some("Socks"), Some(2.5e6), &[("brand", "Acme")]),
        ],
        interactions: vec![
            interaction(
                1.into(),
                10.into(),
                Some("view"),
                Some(1.0),
                Some(1_504_996_246),
            ),
            interaction(
                1.into(),
                10.into(),
                Some("purchase"),
                Some(2.5),
                Some(1_504_996_300),
            ),
            interaction(2.into(), 11.into(), Some("cart"), None, Some(-86_400)),
            interaction("u-3".into(), "P-12".into(), None, None, None),
            interaction("007".into(), 13.into(), Some("view"), Some(0.125), None),
            interaction((-5).into(), 10.into(), None, Some(0.0), Some(0)),
            interaction(2.into(), 10.into(), Some("view"), None, Some(1_700_000_000)),
        ],
    }
}

fn sorted<T: Clone, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort_by_key(key);
    items
}

fn interaction_key(i: &InteractionRecord) -> (ExternalId, ExternalId, Option<String>, Option<i64>) {
    (
        i.user_id.clone(),
        i.product_id.clone(),
        i.interaction_type.clone(),
        i.timestamp,
    )
}

/// The suite: every check any data source must pass.
fn conformance_suite<S: RecordSource>(label: &str, mut source: S) {
    let expected = fixture();
    let got = InMemorySource::collect_from(&mut source)
        .unwrap_or_else(|e| panic!("{label}: reading failed: {e}"));

    // Same records (order is not part of the contract).
    assert_eq!(
        sorted(&got.users, |u| u.user_id.clone()),
        sorted(&expected.users, |u| u.user_id.clone()),
        "{label}: users"
    );
    assert_eq!(
        sorted(&got.products, |p| p.product_id.clone()),
        sorted(&expected.products, |p| p.product_id.clone()),
        "{label}: products"
    );
    assert_eq!(
        sorted(&got.interactions, interaction_key),
        sorted(&expected.interactions, interaction_key),
        "{label}: interactions"
    );

    // Ids are normalised: "1" and 1 are one id; "007" stays text.
    assert!(
        got.users.iter().any(|u| u.user_id == ExternalId::Int(1)),
        "{label}"
    );
    assert!(
        got.users
            .iter()
            .any(|u| u.user_id == ExternalId::Str("007".into())),
        "{label}"
    );

    // Streams can be opened again and give the same count.
    assert_eq!(
        source.interactions().unwrap().count(),
        expected.interactions.len(),
        "{label}"
    );
    assert_eq!(
        source.users().unwrap().count(),
        expected.users.len(),
        "{label}"
    );

    // Popularity counted while streaming matches the fixture's.
    let mut counting = recsys_store::CountingSource::new(&mut source);
    assert_eq!(
        counting.interactions().unwrap().count(),
        expected.interactions.len()
    );
    assert_eq!(
        counting.popularity(),
        vec![
            (10.into(), 4),
            (11.into(), 1),
            (13.into(), 1),
            ("P-12".into(), 1)
        ],
        "{label}: popularity"
    );

    // The dataset builder takes the source directly and sees the same ids and features.
    let item_spec = FeatureSpec::identity_only()
        .with_column(ColumnSpec::categorical("category"))
        .with_column(ColumnSpec::categorical("brand"));
    let user_spec = FeatureSpec::identity_only().with_column(ColumnSpec::categorical("city"));
    let dataset = Dataset::from_source(&mut source, user_spec.clone(), item_spec.clone())
        .unwrap_or_else(|e| panic!("{label}: dataset failed: {e}"));
    let mut reference = fixture();
    let reference = Dataset::from_source(&mut reference, user_spec, item_spec).unwrap();
    assert_eq!(dataset.n_users(), reference.n_users(), "{label}");
    assert_eq!(dataset.n_items(), reference.n_items(), "{label}");
    assert_eq!(
        dataset.item_vocabulary().len(),
        reference.item_vocabulary().len(),
        "{label}"
    );
    assert_eq!(
        dataset.user_vocabulary().len(),
        reference.user_vocabulary().len(),
        "{label}"
    );
    for user in &expected.users {
        assert!(
            dataset.users().index(&user.user_id).is_some(),
            "{label}: {}",
            user.user_id
        );
    }
}

#[test]
fn in_memory_source_conforms() {
    conformance_suite("in-memory", fixture());
}

#[test]
fn csv_source_conforms() {
    let dir = TempDir::new("conformance-csv");
    write_csv_dir(&mut fixture(), &dir.0).unwrap();
    conformance_suite("csv", CsvSource::open(&dir.0).unwrap());
}

#[cfg(feature = "mongodb")]
#[test]
fn mongo_source_conforms() {
    use recsys_store::mongo::{import_csv, ImportOptions};

    let Some(db) = common::TestDb::new("conformance") else {
        return;
    };
    let dir = TempDir::new("conformance-mongo");
    write_csv_dir(&mut fixture(), &dir.0).unwrap();
    let csv = CsvSource::open(&dir.0).unwrap();
    import_csv(&db.store, &csv, &ImportOptions::default(), &mut |_| {}).unwrap();
    conformance_suite("mongodb", db.store.source());
    // Counted in the database ($group), the same popularity.
    assert_eq!(db.store.popularity().unwrap()[0], (10.into(), 4));
    // Small cursor batches stream the same records.
    conformance_suite("mongodb batch 2", db.store.source().batch_size(2));
}
