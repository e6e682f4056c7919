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

    // A model swapped in from elsewhere (a file reload) does not clear the refusal: the
    // pointer still names the refused model, which is not downloaded again.
    state.swap(v1.clone());
    assert_eq!(
        follow_once(&state, &store).await.unwrap(),
        Followed::StillRefused
    );
    assert_eq!(state.refused().unwrap().model_id, "0badc0de");
    state.swap(v2.clone());

    // Publishing the first model again brings it back, and the refusal is history: /ready
    // no longer reports it.
    publish(&store, &id1, v1.to_bytes().unwrap()).await;
    assert!(matches!(
        follow_once(&state, &store).await.unwrap(),
        Followed::Swapped(_)
    ));
    assert_eq!(state.bundle().metadata().model_id, id1);
    let ready = get(&app, "/ready").await.json();
    assert_eq!(ready["model_version"], id1.as_str());
    assert!(ready.get("refused_model").is_none(), "{ready}");
    assert!(state.refused().is_none());
    tokio::task::spawn_blocking(move || {
        let _ = store.database().drop().run();
    })
    .await
    .unwrap();
}

/// The GridFS chunks of a published model's artifact, taken out of the store (as a
/// download that fails mid-way sees it), to be put back with [`put_back`].
async fn take_out_chunks(store: &MongoStore, model_id: &str) -> Vec<mongodb::bson::Document> {
    use mongodb::bson::{doc, Document};
    let (store, artifact) = (store.clone(), format!("model-{model_id}.rsb"));
    tokio::task::spawn_blocking(move || {
        let db = store.database();
        let file = db
            .collection::<Document>("artifacts.files")
            .find_one(doc! { "filename": &artifact })
            .run()
            .unwrap()
            .expect("the artifact's file document");
        let filter = doc! { "files_id": file.get("_id").unwrap().clone() };
        let chunks = db.collection::<Document>("artifacts.chunks");
        let taken: Vec<Document> = chunks
            .find(filter.clone())
            .run()
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
        assert!(!taken.is_empty());
        chunks.delete_many(filter).run().unwrap();
        taken
    })
    .await
    .unwrap()
}

async fn put_back(store: &MongoStore, chunks: Vec<mongodb::bson::Document>) {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        store
            .database()
            .collection::<mongodb::bson::Document>("artifacts.chunks")
            .insert_many(chunks)
            .run()
            .unwrap();
    })
    .await
    .unwrap();
}

/// A download that fails (here: the artifact's chunks are missing, as when the database
/// fails mid-download) is not a refusal: the old model keeps serving, `/ready` shows the
/// error, and the next poll downloads the model again and swaps it in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_download_is_retried_not_refused() {
    let Some(uri) = uri_from_env() else {
        assert!(!require_db());
        return;
    };
    let store = store(uri, "recsys_test_published_retry").await;
    let (v1, v2) = (bundle_with_seed(21), bundle_with_seed(22));
    let (id1, id2) = (
        v1.metadata().model_id.clone(),
        v2.metadata().model_id.clone(),
    );
    publish(&store, &id1, v1.to_bytes().unwrap()).await;
    let (first, origin) = load_current(&store).await.unwrap();
    let state = AppState::new(first, None, ServerConfig::default());
    state.set_origin(origin);
    let app = router(state.clone()).unwrap();

    publish(&store, &id2, v2.to_bytes().unwrap()).await;
    let chunks = take_out_chunks(&store, &id2).await;
    for attempt in 1..=2u64 {
        let err = follow_once(&state, &store).await.unwrap_err().to_string();
        assert!(err.contains("chunk") || err.contains(&id2), "{err}");
        assert_eq!(state.bundle().metadata().model_id, id1);
        assert!(state.refused().is_none(), "a failed download was refused");
        let ready = get(&app, "/ready").await.json();
        assert_eq!(ready["model_version"], id1.as_str());
        assert!(ready.get("refused_model").is_none(), "{ready}");
        let error = &ready["follow_error"];
        assert_eq!(error["model_id"], id2.as_str(), "{ready}");
        assert_eq!(error["attempts"], attempt, "{ready}");
        assert!(error["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert!(error["at_unix"].as_i64().is_some());
        // Every field shown is documented in docs/openapi.json.
        let doc: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../docs/openapi.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let documented =
            &doc["components"]["schemas"]["Readiness"]["properties"]["follow_error"]["properties"];
        for key in error.as_object().unwrap().keys() {
            assert!(
                documented.get(key).is_some(),
                "follow_error.{key} undocumented"
            );
        }
    }
    let failures = get(&app, "/metrics").await.text();
    assert!(
        failures.contains("recsys_model_reload_failures_total 2"),
        "failed downloads are counted"
    );

    // The database has the whole artifact again: the next poll swaps the model in.
    put_back(&store, chunks).await;
    assert!(matches!(
        follow_once(&state, &store).await.unwrap(),
        Followed::Swapped(_)
    ));
    assert_eq!(state.bundle().metadata().model_id, id2);
    let ready = get(&app, "/ready").await.json();
    assert_eq!(ready["model_version"], id2.as_str());
    assert!(ready.get("follow_error").is_none(), "{ready}");
    tokio::task::spawn_blocking(move || {
        let _ = store.database().drop().run();
    })
    .await
    .unwrap();
}

/// Two replicas on loopback ports follow the store while a load generator keeps asking
/// both: a model published mid-load reaches both with zero failed requests, and stopping
/// one replica leaves the other answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_switch_under_load_without_a_failed_request() {
    use common::net::{http, start};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let Some(uri) = uri_from_env() else {
        assert!(!require_db());
        return;
    };
    let store = store(uri, "recsys_test_published_two").await;
    let (v1, v2) = (bundle_with_seed(11), bundle_with_seed(12));
    let id2 = v2.metadata().model_id.clone();
    publish(&store, &v1.metadata().model_id, v1.to_bytes().unwrap()).await;
    let mut replicas = Vec::new();
    let mut states = Vec::new();
    for _ in 0..2 {
        let (bundle, origin) = load_current(&store).await.unwrap();
        let state = AppState::new(bundle, None, ServerConfig::default());
        state.set_origin(origin);
        follow_published(&state, store.clone(), Duration::from_millis(100));
        replicas.push(start(state.clone()).await);
        states.push(state);
    }
    let addresses: Vec<_> = replicas.iter().map(|r| r.address).collect();

    // The load: each worker asks both replicas in turn until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, ok, failed, addresses) =
                (stop.clone(), ok.clone(), failed.clone(), addresses.clone());
            tokio::spawn(async move {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let path = format!(
                        "/similar-products?productId={}&userId={}",
                        100 + i % 20,
                        i % 12
                    );
                    let (status, _, _) = http(addresses[i % 2], "GET", &path, "").await;
                    if status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(&store, &id2, v2.to_bytes().unwrap()).await;
    let published = Instant::now();
    let deadline = published + Duration::from_secs(20);
    while states.iter().any(|s| s.bundle().metadata().model_id != id2) {
        assert!(Instant::now() < deadline, "a replica did not switch");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "both replicas serve {id2} {:?} after publishing",
        published.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!("{ok} requests answered 200 during the switch, {failed} not");
    assert!(ok > 100, "the load generator ran ({ok} requests)");
    assert_eq!(failed, 0, "failed requests during the swap");

    // One replica stops; the other keeps answering.
    drop(replicas.remove(0));
    for i in 0..20 {
        let path = format!(
            "/similar-products?productId={}&userId={}",
            100 + i % 20,
            i % 12
        );
        let (status, _, _) = http(addresses[1], "GET", &path, "").await;
        assert_eq!(status, 200);
    }
    tokio::task::spawn_blocking(move || {
        let _ = store.database().drop().run();
    })
    .await
    .unwrap();
}
