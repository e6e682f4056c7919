//! `POST /events` in process, with the in-memory event store: validation, limits, the 503
//! of a database that is down, metrics, and fresh answers on the replica that took the
//! events (and on another one through the poller).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use recsys_server::{router, spawn_event_poller, AppState, MemoryEvents, ServerConfig};
use serde_json::{json, Value};

fn live_app(config: ServerConfig) -> (axum::Router, Arc<MemoryEvents>, AppState) {
    let store = Arc::new(MemoryEvents::new());
    let state = AppState::with_events(bundle(), None, Some(store.clone()), config);
    (router(state.clone()).expect("valid config"), store, state)
}

async fn scrape(app: &axum::Router, name: &str) -> f64 {
    let text = get(app, "/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::test]
async fn bad_events_are_refused_whole_naming_index_and_field() {
    let (app, store, _) = live_app(ServerConfig::default());
    let batch = json!([
        {"user_id": 1, "product_id": 100},
        {"user_id": 2, "product_id": 101, "weight": -1},
        {"user_id": 3, "product_id": 102, "timestamp": "not a time"}
    ]);
    let a = post_json(&app, "/events", &batch.to_string()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    let body = a.json();
    assert_eq!(body["param"], "[1].weight");
    assert_eq!(body["code"], "bad_request");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("event 1: invalid weight \"-1\": must be >= 0"),
        "{message}"
    );
    assert!(
        message.contains("nothing of this request was stored"),
        "{message}"
    );
    assert!(
        store.events().is_empty(),
        "nothing of a refused batch is stored"
    );

    for (body, param) in [
        (json!({"user_id": 1}).to_string(), "product_id"),
        (
            json!({"user_id": 1, "product_id": 2, "timestamp": "2017-02-30"}).to_string(),
            "timestamp",
        ),
        (json!({"userId": 1, "product_id": 2}).to_string(), "body"),
        (
            json!([{"user_id": 1, "product_id": 2}, "x"]).to_string(),
            "[1]",
        ),
        (
            json!([{"user_id": 1, "product_id": 2}, {"user_id": [1], "product_id": 2}]).to_string(),
            "[1].user_id",
        ),
        ("[]".to_string(), "body"),
        ("{not json".to_string(), "body"),
        ("42".to_string(), "body"),
    ] {
        let a = post_json(&app, "/events", &body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {}", a.text());
        assert_eq!(a.json()["param"], param, "{body}: {}", a.text());
    }
    assert!(store.events().is_empty());
    assert_eq!(
        scrape(&app, "recsys_events_rejected_total").await,
        3.0 + 1.0 + 1.0 + 1.0 + 2.0 + 2.0 + 1.0 + 1.0 + 1.0
    );
    assert_eq!(scrape(&app, "recsys_events_accepted_total").await, 0.0);
}

#[tokio::test]
async fn limits_answer_413() {
    let (app, store, _) = live_app(ServerConfig {
        events_max_batch: 3,
        events_max_body: 400,
        ..ServerConfig::default()
    });
    let four: Vec<Value> = (0..4)
        .map(|i| json!({"user_id": i, "product_id": 100}))
        .collect();
    let a = post_json(&app, "/events", &Value::from(four).to_string()).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());
    assert_eq!(a.json()["code"], "payload_too_large");
    assert!(
        a.json()["error"].as_str().unwrap().contains("limit of 3"),
        "{}",
        a.text()
    );
    let long = json!({"user_id": 1, "product_id": 100, "interaction_type": "x".repeat(500)});
    let a = post_json(&app, "/events", &long.to_string()).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());
    assert!(
        a.json()["error"].as_str().unwrap().contains("400 bytes"),
        "{}",
        a.text()
    );
    assert!(store.events().is_empty());
}

#[tokio::test]
async fn a_database_that_is_down_answers_503_with_retry_after() {
    let (app, store, _) = live_app(ServerConfig::default());
    store.set_down(true);
    let event = json!({"user_id": "new-1", "product_id": 100}).to_string();
    let a = post_json(&app, "/events", &event).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text());
    assert_eq!(a.json()["code"], "database_unavailable");
    let retry: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(scrape(&app, "recsys_events_failed_total").await, 1.0);
    // Not acknowledged, so not used either.
    let r = get(&app, "/recommendations/new-1").await;
    assert_eq!(strategy(&r), "popular");
    // Back up: the retry is stored once, and counts.
    store.set_down(false);
    let a = post_json(&app, "/events", &event).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["stored"], 1);
    let again = post_json(&app, "/events", &event).await;
    assert_eq!(again.json()["already_stored"], 1);
    assert_eq!(store.events().len(), 1);
    assert_eq!(scrape(&app, "recsys_events_accepted_total").await, 2.0);
}

#[tokio::test]
async fn events_change_the_next_answer_on_the_same_replica() {
    let (app, store, _) = live_app(ServerConfig::default());
    // A known user: the items it just bought are excluded like the trained ones.
    let before = get(&app, "/recommendations/2?n=24").await;
    assert_eq!(strategy(&before), "model");
    let bought: Vec<Value> = item_ids(&before)[..2].to_vec();
    let batch: Vec<Value> = bought
        .iter()
        .map(|p| json!({"user_id": 2, "product_id": p, "interaction_type": "purchase"}))
        .collect();
    let a = post_json(&app, "/events", &Value::from(batch).to_string()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        a.json(),
        json!({"accepted": 2, "stored": 2, "already_stored": 0})
    );
    let after = get(&app, "/recommendations/2?n=24").await;
    let ids = item_ids(&after);
    assert!(bought.iter().all(|b| !ids.contains(b)), "{ids:?}");
    assert_eq!(ids.len(), item_ids(&before).len() - 2);
    let similar = get(&app, "/similar-products?userId=2&productId=100&n=24").await;
    assert!(bought.iter().all(|b| !ids_of(&similar).contains(b)));

    // A shopper the model has never seen: popular, then fold-in of its events.
    let cold = get(&app, "/recommendations/shopper-9?n=5").await;
    assert_eq!(strategy(&cold), "popular");
    let east: Vec<Value> = [100, 103, 106]
        .iter()
        .map(|p| json!({"user_id": "shopper-9", "product_id": p, "interaction_type": "view"}))
        .collect();
    let a = post_json(&app, "/events", &Value::from(east).to_string()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let warm = get(&app, "/recommendations/shopper-9?n=5").await;
    assert_eq!(strategy(&warm), "recent-activity", "{}", warm.text());
    let body = warm.json();
    assert_eq!(body["strategy"], "recent-activity");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for item in items {
        assert_eq!(item["reason"], "recent-activity");
        let p = item["product_id"].as_i64().unwrap();
        assert!(
            ![100, 103, 106].contains(&p),
            "own events are excluded: {p}"
        );
    }
    let east_items = items
        .iter()
        .filter(|i| i["product_id"].as_i64().unwrap() < 112)
        .count();
    assert!(east_items >= 4, "{body}");
    // With attributes too, both are used (still recent-activity, another ranking).
    let both = get(&app, "/recommendations/shopper-9?n=24&attr.region=west").await;
    assert_eq!(strategy(&both), "recent-activity");
    let alone = get(&app, "/recommendations/shopper-9?n=24").await;
    assert_ne!(both.json()["items"], alone.json()["items"]);
    // The seed's route too.
    let seed = get(&app, "/similar-products?userId=shopper-9&n=5").await;
    assert_eq!(strategy(&seed), "recent-activity");
    assert!(ids_of(&seed)
        .iter()
        .all(|p| ![100, 103, 106].contains(&p.as_i64().unwrap())));
    assert_eq!(store.events().len(), 5);
}

fn ids_of(answer: &Answer) -> Vec<Value> {
    ids(answer)
}

#[tokio::test]
async fn another_replica_sees_the_events_through_its_poller() {
    let store = Arc::new(MemoryEvents::new());
    let config = ServerConfig {
        events_poll_interval: Duration::from_millis(50),
        ..ServerConfig::default()
    };
    let a = AppState::with_events(bundle(), None, Some(store.clone()), config.clone());
    let b = AppState::with_events(bundle(), None, Some(store.clone()), config);
    let (app_a, app_b) = (router(a.clone()).unwrap(), router(b.clone()).unwrap());
    let poller = spawn_event_poller(&b).expect("an event store is set");
    let event = json!({"user_id": "roaming", "product_id": 113}).to_string();
    assert_eq!(
        post_json(&app_a, "/events", &event).await.status,
        StatusCode::OK
    );
    let started = Instant::now();
    loop {
        let answer = get(&app_b, "/recommendations/roaming").await;
        if strategy(&answer) == "recent-activity" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not visible on replica b"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!("visible on the other replica after {:?}", started.elapsed());
    assert_eq!(scrape(&app_b, "recsys_events_polled_total").await, 1.0);
    // A's own batch is applied once on A even if A polls too.
    let poller_a = spawn_event_poller(&a).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(scrape(&app_a, "recsys_events_polled_total").await, 0.0);
    poller.abort();
    poller_a.abort();
}
