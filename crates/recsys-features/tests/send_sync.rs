//! Every public type can cross threads (house rule 10).

use recsys_features::*;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    assert_send_sync::<Attributes>();
    assert_send_sync::<Bucketing>();
    assert_send_sync::<ColumnKind>();
    assert_send_sync::<ColumnSpec>();
    assert_send_sync::<ColumnValue<'static>>();
    assert_send_sync::<Dataset>();
    assert_send_sync::<DatasetBuilder>();
    assert_send_sync::<ExternalId>();
    assert_send_sync::<Feature>();
    assert_send_sync::<FeatureRow>();
    assert_send_sync::<FeatureSpec>();
    assert_send_sync::<FeatureVocabulary>();
    assert_send_sync::<FeaturesError>();
    assert_send_sync::<IdMap>();
    assert_send_sync::<InMemorySource>();
    assert_send_sync::<InteractionLog>();
    assert_send_sync::<InteractionMode>();
    assert_send_sync::<InteractionOptions>();
    assert_send_sync::<InteractionRecord>();
    assert_send_sync::<InteractionReport>();
    assert_send_sync::<InteractionWeights>();
    assert_send_sync::<LoggedInteraction>();
    assert_send_sync::<ProductRecord>();
    assert_send_sync::<RecordKind>();
    assert_send_sync::<SourceError>();
    assert_send_sync::<UnknownIdPolicy>();
    assert_send_sync::<UserRecord>();
}
