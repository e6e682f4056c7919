//! Live events against the real database: idempotent appends, the recent-events
//! collection, pruning.
#![cfg(feature = "mongodb")]

mod common;

use common::TestDb;
use mongodb::bson::{doc, Bson, Document};
use recsys_features::{ExternalId, InteractionRecord};
use recsys_store::mongo::{EventBatch, INTERACTIONS, RECENT_EVENTS};

fn event(user: i64, product: &str, timestamp: Option<i64>) -> InteractionRecord {
    InteractionRecord {
        user_id: user.into(),
        product_id: ExternalId::parse(product),
        interaction_type: Some("view".into()),
        weight: Some(1.5),
        timestamp,
    }
}

#[test]
fn appends_are_idempotent_and_visible_to_pollers() {
    let Some(db) = TestDb::new("events_append") else {
        return;
    };
    let store = &db.store;
    store.ensure_event_indexes().unwrap();
    let batch = EventBatch::new(
        1_700_000_000,
        [
            (event(1, "10", Some(5)), None),
            (event(1, "10", Some(5)), None), // the same click twice: two documents
            (event(2, "P-1", None), Some("e-1".to_string())),
        ],
    );
    let first = store.append_events(&batch, "w1", 1, 1_000).unwrap();
    assert_eq!((first.inserted, first.already_stored), (3, 0));
    // A retry of the same batch stores nothing twice.
    let retry = store.append_events(&batch, "w1", 2, 2_000).unwrap();
    assert_eq!((retry.inserted, retry.already_stored), (0, 3));
    assert_eq!(store.count(INTERACTIONS).unwrap(), 3);
    // Part new, part retried.
    let mixed = EventBatch::new(
        1_700_000_001,
        [
            (event(2, "P-1", Some(9)), Some("e-1".to_string())), // same event id: stored
            (event(3, "11", None), None),
        ],
    );
    let summary = store.append_events(&mixed, "w2", 1, 3_000).unwrap();
    assert_eq!((summary.inserted, summary.already_stored), (1, 1));
    assert_eq!(store.count(INTERACTIONS).unwrap(), 4);

    // The stored documents have the import's shape; a missing timestamp is the receipt time.
    let doc = store
        .database()
        .collection::<Document>(INTERACTIONS)
        .find_one(doc! { "_id": "event:[2,\"e-1\"]" })
        .run()
        .unwrap()
        .expect("stored under the event id key");
    assert_eq!(doc.get("product_id"), Some(&Bson::String("P-1".into())));
    let stamp = doc.get_datetime("timestamp").unwrap().timestamp_millis();
    assert_eq!(stamp, 1_700_000_000_000);
    let source_rows: Vec<InteractionRecord> = {
        use recsys_features::RecordSource;
        let mut source = store.source();
        source.interactions().unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(source_rows.len(), 4, "a retrain reads every event");

    // Every append is one recent batch; pollers read them by time.
    let all = store.recent_events_since(0, &[]).unwrap();
    let ids: Vec<&str> = all.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, ["w1:1", "w1:2", "w2:1"]);
    assert_eq!(
        all[2].events,
        vec![
            (ExternalId::Int(2), ExternalId::Str("P-1".into())),
            (ExternalId::Int(3), ExternalId::Int(11)),
        ]
    );
    let later = store.recent_events_since(2_000, &[]).unwrap();
    assert_eq!(later.len(), 2);
    let unseen = store
        .recent_events_since(0, &["w1:1".to_string(), "w2:1".to_string()])
        .unwrap();
    assert_eq!(unseen.len(), 1);
    assert_eq!(unseen[0].id, "w1:2");
    assert_eq!(store.prune_recent_events(2_500).unwrap(), 2);
    assert_eq!(store.count(RECENT_EVENTS).unwrap(), 1);
    assert_eq!(
        store.count(INTERACTIONS).unwrap(),
        4,
        "pruning keeps the events"
    );
}
