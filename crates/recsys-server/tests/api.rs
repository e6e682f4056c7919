//! The endpoints through `oneshot` on the router, with an in-process bundle.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use recsys_features::ExternalId;
use recsys_recommend::ProductInfo;
use recsys_server::{router, ProductSource, ServerConfig, ServerError};
use recsys_server::{BoxFuture, DatabaseState};
use serde_json::json;

#[tokio::test]
async fn similar_products_keeps_the_seed_contract() {
    let app = app();
    let a = get(&app, "/similar-products?productId=101&userId=2&n=5").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.headers["x-recsys-strategy"], "model");
    assert!(a.headers.contains_key("x-recsys-model"));
    assert!(!a.headers.contains_key("x-recsys-degraded"));
    let body = a.json();
    let items = body.as_array().unwrap();
    assert_eq!(items.len(), 5);
    for item in items {
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys.len(), 4, "{item}");
        for k in ["name", "price", "image", "product_id"] {
            assert!(keys.contains(&k), "{item}");
        }
        assert!(
            item["product_id"].is_i64(),
            "integer ids are JSON numbers: {item}"
        );
        assert_ne!(
            item["product_id"],
            json!(101),
            "the viewed product is excluded"
        );
        if let Some(image) = item["image"].as_str() {
            assert!(image.starts_with("/image/"), "{image}");
        }
    }
}

#[tokio::test]
async fn every_combination_of_missing_or_unknown_ids_has_a_fallback() {
    let app = app();
    let cases = [
        ("productId=101&userId=2", "model"),
        ("productId=999&userId=2", "model"),
        ("userId=2", "model"),
        ("productId=101", "similar-products"),
        ("productId=101&userId=999", "similar-products"),
        ("productId=101&userId=", "similar-products"),
        ("userId=nobody", "popular"),
        ("productId=999", "popular"),
        ("", "popular"),
        ("productId=&userId=", "popular"),
    ];
    for (query, strategy) in cases {
        let a = get(&app, &format!("/similar-products?{query}")).await;
        assert_eq!(a.status, 200, "{query}: {}", a.text());
        assert_eq!(a.headers["x-recsys-strategy"], strategy, "{query}");
        assert_eq!(ids(&a).len(), 10, "{query}: the seed's default n is 10");
        if query.contains("productId=101") {
            assert!(!ids(&a).contains(&json!(101)), "{query}");
        }
    }
}

#[tokio::test]
async fn details_come_from_the_bundle_without_a_database_and_never_hold_nan() {
    let app = app();
    let a = get(&app, "/similar-products?n=24").await; // every product: popular order
    let body = a.json();
    let by_id = |id: i64| {
        body.as_array()
            .unwrap()
            .iter()
            .find(|d| d["product_id"] == json!(id))
            .cloned()
    };
    // Product 105's NaN price is null, 107 has no image, 123 no details at all.
    if let Some(d) = by_id(105) {
        assert_eq!(d["price"], json!(null));
        assert_eq!(d["name"], json!("Bundle product 105"));
    }
    if let Some(d) = by_id(107) {
        assert_eq!(d["image"], json!(null));
    }
    if let Some(d) = by_id(123) {
        assert_eq!(
            d,
            json!({"name": null, "price": null, "image": null, "product_id": 123})
        );
    }
    let d = by_id(100)
        .or_else(|| by_id(101))
        .expect("a popular product");
    assert!(d["price"].is_f64());
    assert!(d["image"].as_str().unwrap().ends_with(".jpg"));
}

#[tokio::test]
async fn bad_input_is_400_with_a_json_error_naming_the_parameter() {
    let app = app();
    let long = "9".repeat(129);
    let cases: Vec<(String, &str)> = vec![
        ("/similar-products?n=abc".into(), "n"),
        ("/similar-products?n=0".into(), "n"),
        ("/similar-products?n=101".into(), "n"),
        ("/similar-products?n=-3".into(), "n"),
        ("/similar-products?n=99999999999999999999999".into(), "n"),
        (format!("/similar-products?userId={long}"), "userId"),
        (format!("/similar-products?productId={long}"), "productId"),
        ("/recommendations/2?n=x".into(), "n"),
        (format!("/recommendations/{long}"), "user_id"),
        (format!("/recommendations/2?exclude=1,{long}"), "exclude"),
        (
            format!("/recommendations/2?attr.{long}=x"),
            &*Box::leak(format!("attr.{long}").into_boxed_str()),
        ),
        ("/products/101/similar?n=1000".into(), "n"),
        ("/recommendations/%FF%FE".into(), "user_id"),
    ];
    for (uri, param) in cases {
        let a = get(&app, &uri).await;
        assert_eq!(a.status, 400, "{uri}: {}", a.text());
        let body = a.json();
        assert_eq!(body["code"], "bad_request", "{uri}");
        // Parameter names come from clients: echoed clipped.
        assert_eq!(body["param"], recsys_server::clip(param).as_ref(), "{uri}");
        assert!(body["error"].as_str().unwrap().len() > 5, "{uri}");
    }
    // Unknown parameters are fine.
    let a = get(&app, "/similar-products?foo=bar&n=3&x").await;
    assert_eq!(a.status, 200);
    assert_eq!(ids(&a).len(), 3);
}

#[tokio::test]
async fn recommendations_carry_score_and_reason() {
    let app = app();
    let a = get(&app, "/recommendations/2?n=4").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let body = a.json();
    assert_eq!(body["strategy"], "model");
    assert_eq!(body["user_id"], json!(2));
    assert_eq!(body["degraded"], json!(false));
    assert!(body["model_version"].as_str().unwrap().len() == 8);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    for item in items {
        assert_eq!(item["reason"], "model");
        assert!(item["score"].is_number());
    }
    let scores: Vec<f64> = items.iter().map(|i| i["score"].as_f64().unwrap()).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );

    // Viewing a product: boosted, and that product excluded; exclude removes more.
    let first = items[0]["product_id"].clone();
    let a = get(
        &app,
        &format!("/recommendations/2?n=4&productId=101&exclude={first}"),
    )
    .await;
    let body = a.json();
    for item in body["items"].as_array().unwrap() {
        assert_eq!(item["reason"], "model+similar-to-101");
        assert_ne!(item["product_id"], json!(101));
        assert_ne!(item["product_id"], first);
    }
}

#[tokio::test]
async fn unknown_users_with_attributes_get_a_cold_start() {
    let app = app();
    let a = get(&app, "/recommendations/new-user?n=3&attr.region=east").await;
    let body = a.json();
    assert_eq!(body["strategy"], "cold-start-features", "{body}");
    assert_eq!(body["user_id"], "new-user");
    assert!(body["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["kind"] == "unknown-user"));
    assert!(body["notes"][0]["message"].is_string());

    let a = get(&app, "/recommendations/new-user?n=3&attr.region=mars").await;
    let body = a.json();
    assert_eq!(body["strategy"], "popular", "{body}");
    assert!(body["notes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["kind"] == "attributes-not-usable"));
}

#[tokio::test]
async fn item_to_item() {
    let app = app();
    let a = get(&app, "/products/105/similar?n=3").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let body = a.json();
    assert_eq!(body["strategy"], "similar-products");
    assert_eq!(body["product_id"], json!(105));
    assert!(body.get("user_id").is_none());
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for item in items {
        assert_eq!(item["reason"], "similar-to-105");
        assert_ne!(item["product_id"], json!(105));
    }
    let a = get(&app, "/products/99999/similar").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["code"], "unknown_product");
}

#[tokio::test]
async fn health_ready_metrics() {
    let app = app();
    let a = get(&app, "/health").await;
    assert_eq!(
        (a.status.as_u16(), a.json()),
        (200, json!({"status": "ok"}))
    );
    let a = get(&app, "/ready").await;
    let body = a.json();
    assert_eq!(a.status, 200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["model_loaded"], json!(true));
    assert_eq!(body["database"], "not-configured");
    assert_eq!(body["items"], json!(N_PRODUCTS));
    get(&app, "/similar-products?n=2").await;
    get(&app, "/similar-products?n=zz").await;
    get(&app, "/recommendations/3").await;
    // Unmatched paths (also a route that is off: admin routes) share one label value.
    for path in ["/nope", "/nope/1", "/recommendations/", "/admin/reload"] {
        assert_eq!(get(&app, path).await.status, 404, "{path}");
    }
    let a = get(&app, "/metrics").await;
    assert_eq!(a.status, 200);
    assert!(a.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = a.text();
    for needle in [
        "recsys_http_requests_total{route=\"/similar-products\",status=\"200\"} 1",
        "recsys_http_requests_total{route=\"/similar-products\",status=\"400\"} 1",
        "recsys_http_requests_total{route=\"/recommendations/{user_id}\",status=\"200\"} 1",
        "recsys_http_request_duration_seconds_bucket{route=\"/similar-products\",le=\"+Inf\"} 2",
        "recsys_http_requests_total{route=\"unmatched\",status=\"404\"} 4",
        "recsys_model_info{model_version=\"",
        "recsys_db_errors_total 0",
        "recsys_db_up -1",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
    // Label values are route templates: no request path leaks into a label.
    for line in text.lines().filter(|l| l.contains("route=")) {
        assert!(
            !line.contains("/nope") && !line.contains("/recommendations/3"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = app();
    let a = get(&app, "/nope").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["code"], "not_found");
    let a = call(&app, "POST", "/health").await;
    assert_eq!(a.status, 405);
    assert_eq!(a.json()["code"], "method_not_allowed");
    // The admin route is off by default.
    assert_eq!(call(&app, "POST", "/admin/reload").await.status, 404);
}

/// A product source in memory: answers in reverse order, counts queries, can be switched
/// off to play a dead database.
struct FakeSource {
    up: AtomicBool,
    /// Queries take this many milliseconds (pings answer at once).
    query_ms: AtomicUsize,
    queries: AtomicUsize,
    pings: AtomicUsize,
}

impl FakeSource {
    fn new() -> Arc<Self> {
        Arc::new(FakeSource {
            up: AtomicBool::new(true),
            query_ms: AtomicUsize::new(0),
            queries: AtomicUsize::new(0),
            pings: AtomicUsize::new(0),
        })
    }
    fn down() -> ServerError {
        ServerError::Database {
            uri: "fake".into(),
            message: "connection refused".into(),
        }
    }
}

impl ProductSource for FakeSource {
    fn fetch<'a>(
        &'a self,
        ids: &'a [ExternalId],
    ) -> BoxFuture<'a, Result<Vec<(ExternalId, ProductInfo)>, ServerError>> {
        Box::pin(async move {
            self.queries.fetch_add(1, Ordering::SeqCst);
            let ms = self.query_ms.load(Ordering::SeqCst) as u64;
            if ms > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            if !self.up.load(Ordering::SeqCst) {
                return Err(FakeSource::down());
            }
            Ok(ids
                .iter()
                .rev()
                .map(|id| {
                    let info = ProductInfo {
                        name: Some(format!("db {id}")),
                        price: Some(1.25),
                        image: Some(format!("db-{id}.png")),
                    };
                    (id.clone(), info)
                })
                .collect())
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), ServerError>> {
        Box::pin(async move {
            self.pings.fetch_add(1, Ordering::SeqCst);
            if self.up.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(FakeSource::down())
            }
        })
    }

    fn describe(&self) -> String {
        "fake".into()
    }
}

#[tokio::test]
async fn details_come_in_one_query_in_recommendation_order_then_from_the_cache() {
    let source = FakeSource::new();
    let state = state_with_source(source.clone(), ServerConfig::default());
    let app = router(state.clone()).expect("valid config");
    let a = get(&app, "/recommendations/2?n=6").await;
    let body = a.json();
    assert_eq!(source.queries.load(Ordering::SeqCst), 1);
    for item in body["items"].as_array().unwrap() {
        let id = item["product_id"].to_string();
        assert_eq!(
            item["name"],
            format!("db {id}"),
            "details match the item: {item}"
        );
        assert_eq!(item["image"], format!("/image/db-{id}.png"));
    }
    // Same list again: all from the cache, no query.
    let again = get(&app, "/recommendations/2?n=6").await;
    assert_eq!(again.json()["items"], body["items"]);
    assert_eq!(source.queries.load(Ordering::SeqCst), 1);
    assert!(state.details().cached() >= 6);
}

#[tokio::test]
async fn a_dead_database_degrades_then_recovers_by_itself() {
    let source = FakeSource::new();
    let config = ServerConfig {
        cache_capacity: 0, // every request needs the database
        ..ServerConfig::default()
    };
    let state = state_with_source(source.clone(), config);
    let app = router(state.clone()).expect("valid config");
    assert_eq!(state.details().check().await, DatabaseState::Up);

    source.up.store(false, Ordering::SeqCst);
    let a = get(&app, "/similar-products?userId=2&n=4").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["x-recsys-degraded"], "database");
    let body = a.json();
    assert_eq!(body.as_array().unwrap().len(), 4);
    for item in body.as_array().unwrap() {
        let name = item["name"].as_str().unwrap_or("Bundle product");
        assert!(
            name.starts_with("Bundle product"),
            "from the bundle: {item}"
        );
    }
    let queries = source.queries.load(Ordering::SeqCst);
    // While down, requests do not wait for the database.
    for _ in 0..5 {
        let a = get(&app, "/recommendations/3?n=2").await;
        assert_eq!(a.status, 200);
        assert_eq!(a.json()["degraded"], json!(true));
    }
    assert_eq!(source.queries.load(Ordering::SeqCst), queries);
    let ready = get(&app, "/ready").await.json();
    assert_eq!(
        (ready["status"].clone(), ready["database"].clone()),
        (json!("degraded"), json!("down"))
    );
    let metrics = get(&app, "/metrics").await.text();
    assert!(metrics.contains("recsys_db_up 0"), "{metrics}");
    assert!(
        metrics.contains("recsys_degraded_responses_total 6"),
        "{metrics}"
    );

    // Still down: the probe fails; back up: the probe recovers.
    assert_eq!(state.details().probe().await, DatabaseState::Down);
    source.up.store(true, Ordering::SeqCst);
    assert_eq!(state.details().probe().await, DatabaseState::Up);
    let a = get(&app, "/similar-products?userId=2&n=4").await;
    assert!(!a.headers.contains_key("x-recsys-degraded"));
    assert!(a.json()[0]["name"].as_str().unwrap().starts_with("db "));
    assert_eq!(get(&app, "/ready").await.json()["status"], "ready");
}

#[tokio::test]
async fn the_background_probe_recovers_without_requests() {
    let source = FakeSource::new();
    let config = ServerConfig {
        db_retry_interval: std::time::Duration::from_millis(20),
        ..ServerConfig::default()
    };
    let state = state_with_source(source.clone(), config);
    source.up.store(false, Ordering::SeqCst);
    assert_eq!(state.details().check().await, DatabaseState::Down);
    let probe = state.spawn_database_probe();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(source.pings.load(Ordering::SeqCst) >= 2);
    source.up.store(true, Ordering::SeqCst);
    for _ in 0..100 {
        if state.details().state() == DatabaseState::Up {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(state.details().state(), DatabaseState::Up);
    probe.abort();
}

#[tokio::test]
async fn blocking_and_inline_compute_answer_the_same() {
    let blocking = router(state(ServerConfig {
        compute: recsys_server::Compute::Blocking,
        ..ServerConfig::default()
    }))
    .expect("valid config");
    let inline = router(state(ServerConfig {
        compute: recsys_server::Compute::Inline,
        ..ServerConfig::default()
    }))
    .expect("valid config");
    for q in ["userId=2&productId=101", "productId=110", "n=7"] {
        let uri = format!("/similar-products?{q}");
        assert_eq!(
            get(&blocking, &uri).await.json(),
            get(&inline, &uri).await.json(),
            "{q}"
        );
    }
}

#[tokio::test]
async fn a_database_that_dies_behind_a_warm_cache_is_reported_down_by_the_timer_probe() {
    let source = FakeSource::new();
    let config = ServerConfig {
        db_retry_interval: std::time::Duration::from_millis(20),
        ..ServerConfig::default()
    };
    let state = state_with_source(source.clone(), config);
    let app = router(state.clone()).expect("valid config");
    // Warm the cache with this list, then the database dies.
    get(&app, "/recommendations/2?n=6").await;
    let queries = source.queries.load(Ordering::SeqCst);
    let probe = state.spawn_database_probe();
    source.up.store(false, Ordering::SeqCst);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        // Requests keep being served from the cache: no query fails.
        let a = get(&app, "/recommendations/2?n=6").await;
        assert_eq!(a.status, 200);
        if get(&app, "/ready").await.json()["database"] == "down" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reported down");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(source.queries.load(Ordering::SeqCst), queries);
    assert!(get(&app, "/metrics")
        .await
        .text()
        .contains("recsys_db_up 0"));
    probe.abort();
}

#[tokio::test]
async fn slow_queries_do_not_mark_an_answering_database_down() {
    // Pings answer, queries outlast the limit (FerretDB's `$in` scans on a large
    // collection): responses come from the bundle, but the database stays up.
    let source = FakeSource::new();
    source.query_ms.store(200, Ordering::SeqCst);
    let config = ServerConfig {
        cache_capacity: 0,
        db_timeout: std::time::Duration::from_millis(30),
        db_retry_interval: std::time::Duration::from_millis(20),
        ..ServerConfig::default()
    };
    let state = state_with_source(source.clone(), config);
    let app = router(state.clone()).expect("valid config");
    let probe = state.spawn_database_probe();
    for i in 0..10 {
        let a = get(&app, &format!("/recommendations/{}?n=3", 1 + i % 10)).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.json()["degraded"], json!(true));
        let ready = get(&app, "/ready").await.json();
        assert_eq!(ready["database"], "up", "after {} slow queries", i + 1);
    }
    // Every request still tried the database (it is up).
    assert_eq!(source.queries.load(Ordering::SeqCst), 10);
    assert!(source.pings.load(Ordering::SeqCst) >= 2);
    let metrics = get(&app, "/metrics").await.text();
    assert!(
        metrics.contains("recsys_db_query_timeouts_total 10"),
        "{metrics}"
    );
    assert!(metrics.contains("recsys_db_up 1"), "{metrics}");
    probe.abort();
}

#[tokio::test]
async fn a_panic_on_the_request_path_is_a_json_500_in_both_compute_modes() {
    for compute in [
        recsys_server::Compute::Inline,
        recsys_server::Compute::Blocking,
    ] {
        let state = state_with_source(
            Arc::new(PanickingSource),
            ServerConfig {
                cache_capacity: 0,
                compute,
                ..ServerConfig::default()
            },
        );
        let app = router(state).expect("valid config");
        for uri in ["/similar-products?userId=2&n=3", "/recommendations/3?n=2"] {
            let a = get(&app, uri).await;
            assert_eq!(a.status, 500, "{compute:?} {uri}");
            assert_eq!(a.json()["code"], "internal");
            assert!(
                !a.text().contains("product source bug"),
                "no panic text to clients"
            );
        }
        let metrics = get(&app, "/metrics").await.text();
        assert!(metrics.contains("recsys_http_panics_total 2"), "{metrics}");
        assert!(
            metrics.contains("route=\"/similar-products\",status=\"500\"} 1"),
            "{metrics}"
        );
    }
    // Work on the blocking pool that panics is an error, not a lost task.
    let state = state(ServerConfig {
        compute: recsys_server::Compute::Blocking,
        ..ServerConfig::default()
    });
    let result = state.compute(|| -> usize { panic!("scoring bug") }).await;
    assert!(matches!(result, Err(ServerError::Task(_))));
}

#[tokio::test]
async fn echoed_client_values_are_clipped() {
    let app = app();
    let long = "a".repeat(60_000);
    for uri in [
        format!("/{long}"),
        format!("/recommendations/2?attr.{long}=x"),
        format!("/health/{long}"),
        format!("/products/{}/similar", "9".repeat(100)),
    ] {
        let a = get(&app, &uri).await;
        assert!(a.status.is_client_error(), "{}", a.status);
        assert!(a.json()["error"].is_string());
        assert!(
            a.body.len() < 600,
            "{} bytes: {}",
            a.body.len(),
            &a.text()[..200]
        );
    }
    let a = get(&app, &format!("/recommendations/2?attr.{long}=x")).await;
    let param = a.json()["param"].as_str().unwrap().to_string();
    assert!(
        param.ends_with('…') && param.chars().count() == 65,
        "{param}"
    );
    let a = call(&app, &"X".repeat(5000), "/health").await;
    assert!(a.body.len() < 600, "{}", a.body.len());
}

#[test]
fn the_router_refuses_a_contradictory_configuration() {
    for (config, flag) in [
        (
            ServerConfig {
                default_n: 0,
                ..ServerConfig::default()
            },
            "--default-n",
        ),
        (
            ServerConfig {
                default_n: 1000,
                max_n: 100,
                ..ServerConfig::default()
            },
            "--default-n",
        ),
        (
            ServerConfig {
                max_n: 0,
                ..ServerConfig::default()
            },
            "--max-n",
        ),
    ] {
        let error = router(state(config)).unwrap_err();
        assert_eq!(error.flag, flag);
    }
}
