//! Serving models published through the database (`train --publish`): a server starts
//! from the `current` model, swaps in each newly published one after checking it, and
//! refuses a damaged or mismatched one while the old model keeps serving and answering.

mod common;

use std::time::{Duration, Instant};

use common::ferret::{require_db, uri_from_env};
use common::*;
use recsys_server::{
    follow_once, follow_published, load_current, router, AppState, Followed, ModelOrigin,
    ServerConfig,
};
use recsys_store::mongo::MongoStore;

/// A store on a database of this test's own (the sync driver must not run on an async
/// worker, so every store call here goes through the blocking pool).
async fn store(uri: String, database: &'static str) -> MongoStore {
    tokio::task::spawn_blocking(move || {
        let store = MongoStore::connect(&uri)
            .expect("connect")
            .with_database(database);
        let _ = store.database().drop().run();
        store
    })
    .await
    .unwrap()
}

async fn publish(store: &MongoStore, model_id: &str, bytes: Vec<u8>) {
    let (store, id) = (store.clone(), model_id.to_string());
    tokio::task::spawn_blocking(move || store.publish_model(&id, &bytes).expect("publish"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_follows_published_models_and_refuses_bad_ones() {
    let Some(uri) = uri_from_env() else {
        assert!(!require_db());
        return;
    };
    let store = store(uri, "recsys_test_published").await;
    let (v1, v2) = (bundle_with_seed(7), bundle_with_seed(8));
    let (id1, id2) = (
        v1.metadata().model_id.clone(),
        v2.metadata().model_id.clone(),
    );
    assert_ne!(id1, id2);

    // Nothing published: a server cannot start from the store, and says why.
    let err = load_current(&store).await.unwrap_err().to_string();
    assert!(err.contains("no model is published"), "{err}");

    publish(&store, &id1, v1.to_bytes().unwrap()).await;
    let (first, origin) = load_current(&store).await.unwrap();
    assert_eq!(first.metadata().model_id, id1);
    let state = AppState::new(first, None, ServerConfig::default());
    state.set_origin(origin);
    let app = router(state.clone()).unwrap();
    let ready = get(&app, "/ready").await.json();
    assert_eq!(ready["model_version"], id1.as_str());
    assert_eq!(ready["model_source"]["kind"], "store");
    assert_eq!(ready["model_source"]["model_id"], id1.as_str());
    assert_eq!(
        follow_once(&state, &store).await.unwrap(),
        Followed::Unchanged
    );

    // A new model is swapped in by the background poller, with requests answered before
    // and after.
    let poller = follow_published(&state, store.clone(), Duration::from_millis(50));
    assert_eq!(get(&app, "/recommendations/u1?n=3").await.status, 200);
    publish(&store, &id2, v2.to_bytes().unwrap()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while state.bundle().metadata().model_id != id2 {
        assert!(Instant::now() < deadline, "model {id2} was not swapped in");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get(&app, "/recommendations/u1?n=3").await.status, 200);
    match state.origin() {
        ModelOrigin::Store { model_id, .. } => assert_eq!(model_id, id2),
        other => panic!("{other:?}"),
    }
    poller.abort();

    // Damaged bytes are refused (the bundle's checksum), reported by /ready, and not
    // downloaded again; the old model keeps serving.
    let mut damaged = v1.to_bytes().unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    publish(&store, "deadbeef", damaged).await;
    match follow_once(&state, &store).await.unwrap() {
        Followed::Refused(reason) => assert!(reason.contains("checksum"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        follow_once(&state, &store).await.unwrap(),
        Followed::StillRefused
    );
    assert_eq!(state.bundle().metadata().model_id, id2);
    let ready = get(&app, "/ready").await.json();
    assert_eq!(ready["model_version"], id2.as_str());
    assert_eq!(ready["refused_model"]["model_id"], "deadbeef");
    assert_eq!(get(&app, "/recommendations/u1?n=3").await.status, 200);

    // An intact bundle published under another model's id is refused too.
    publish(&store, "0badc0de", v1.to_bytes().unwrap()).await;
    match follow_once(&state, &store).await.unwrap() {
        Followed::Refused(reason) => {
            assert!(reason.contains("names model 0badc0de"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(state.bundle().metadata().model_id, id2);

    // Publishing the first model again brings it back.
    publish(&store, &id1, v1.to_bytes().unwrap()).await;
    assert!(matches!(
        follow_once(&state, &store).await.unwrap(),
        Followed::Swapped(_)
    ));
    assert_eq!(state.bundle().metadata().model_id, id1);
    tokio::task::spawn_blocking(move || {
        let _ = store.database().drop().run();
    })
    .await
    .unwrap();
}
