//! Against a real MongoDB-compatible server.
//!
//! * `details_come_from_mongodb_in_recommendation_order` uses `MONGODB_URI` (set by
//!   scripts/test.sh); skipped with a message when it is unset, a failure when
//!   `RECSYS_REQUIRE_DB=1`.
//! * `a_stopped_database_degrades_and_recovers_by_itself` starts its own FerretDB (the
//!   binary scripts/db.sh caches in `~/.cache/recsys/bin`, or `$RECSYS_TOOLS`), kills it
//!   mid-test and starts it again on the same port and data.
//! * `a_database_that_dies_behind_a_warm_cache_is_reported_down` starts another FerretDB
//!   of its own, warms the cache, kills it: only the timer probe can notice.
//! * `with_the_cache_off_a_live_database_stays_up` uses `MONGODB_URI` with 30,000 products,
//!   so FerretDB's `$in` scans outlast the query limit while pings answer.
//! * `a_product_inserted_after_start_is_served_after_the_sync` uses `MONGODB_URI`: a
//!   product inserted into `products` while the server runs is recommended, has similar
//!   products and details after the background sync.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use common::ferret::{drop_database, own_ferretdb, uri_from_env};
use common::*;
use mongodb::bson::{doc, Document};
use recsys_server::DatabaseState;
use recsys_server::{router, AppState, MongoProducts, ServerConfig};
use serde_json::json;

/// Product documents as recsys-store writes them: string `_id`, Int64 `product_id`.
fn documents() -> Vec<Document> {
    (100..124_i64)
        .map(|id| {
            doc! {
                "_id": id.to_string(),
                "product_id": id,
                "name": format!("Mongo product {id}"),
                "price": 10.0 + id as f64,
                "image": format!("m{id}.jpg"),
                "category": category(id),
            }
        })
        .collect()
}

async fn fill(uri: &str, database: &str) {
    let client = mongodb::Client::with_uri_str(uri).await.expect("client");
    let db = client.database(database);
    db.drop().await.expect("drop");
    db.collection::<Document>("products")
        .insert_many(documents())
        .await
        .expect("insert products");
}

/// A server state whose details come from `database` at `uri` (queries limited to `timeout`).
async fn mongo_state(
    uri: &str,
    database: &str,
    timeout: Duration,
    config: ServerConfig,
) -> AppState {
    mongo_state_with(uri, database, timeout, bundle(), config).await
}

/// [`mongo_state`] serving `bundle`.
async fn mongo_state_with(
    uri: &str,
    database: &str,
    timeout: Duration,
    bundle: recsys_recommend::Bundle,
    config: ServerConfig,
) -> AppState {
    let products = MongoProducts::connect(uri, Some(database), timeout)
        .await
        .expect("connect");
    AppState::new(bundle, Some(Arc::new(products)), config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_come_from_mongodb_in_recommendation_order() {
    let Some(uri) = uri_from_env() else { return };
    let database = format!("recsys_server_test_{}", std::process::id());
    fill(&uri, &database).await;
    let state = mongo_state(
        &uri,
        &database,
        Duration::from_secs(5),
        ServerConfig::default(),
    )
    .await;
    assert_eq!(state.details().check().await, DatabaseState::Up);
    let app = router(state.clone()).expect("valid config");

    // "101" in the query string matches the Int64 101 stored in the database.
    let a = get(&app, "/similar-products?userId=2&productId=101&n=8").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(!a.headers.contains_key("x-recsys-degraded"));
    let reference = get(
        &router(AppState::new(bundle(), None, ServerConfig::default())).expect("valid config"),
        "/similar-products?userId=2&productId=101&n=8",
    )
    .await;
    assert_eq!(ids(&a), ids(&reference), "same order as without a database");
    for item in a.json().as_array().unwrap() {
        let id = item["product_id"].as_i64().unwrap();
        assert_eq!(item["name"], format!("Mongo product {id}"));
        assert_eq!(item["price"], json!(10.0 + id as f64));
        assert_eq!(item["image"], format!("/image/m{id}.jpg"));
    }
    let metrics = get(&app, "/metrics").await.text();
    assert!(metrics.contains("recsys_db_queries_total 1"), "{metrics}");
    assert!(metrics.contains("recsys_db_up 1"), "{metrics}");
    drop_database(&uri, &database).await;
}

/// The value of an unlabelled metric of `/metrics`.
async fn metric(app: &axum::Router, name: &str) -> f64 {
    let text = get(app, "/metrics").await.text();
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no metric {name} in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_database_degrades_and_recovers_by_itself() {
    let Some(mut ferret) = own_ferretdb("main").await else {
        return;
    };
    fill(&ferret.uri(), "shop").await;

    let config = ServerConfig {
        cache_capacity: 0, // every response asks the database
        db_timeout: Duration::from_millis(300),
        db_retry_interval: Duration::from_millis(100),
        ..ServerConfig::default()
    };
    let state = mongo_state(&ferret.uri(), "shop", config.db_timeout, config).await;
    assert_eq!(state.details().check().await, DatabaseState::Up);
    let probe = state.spawn_database_probe();
    let app = router(state.clone()).expect("valid config");
    let from_mongo = |a: &Answer| {
        a.json().as_array().unwrap().iter().all(|d| {
            d["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("Mongo product"))
        })
    };

    let a = get(&app, "/similar-products?userId=3&n=5").await;
    assert!(
        from_mongo(&a) && !a.headers.contains_key("x-recsys-degraded"),
        "{}",
        a.text()
    );

    // Stop the database: answers keep coming, from the bundle, marked degraded, and without
    // waiting on the dead database: at most the first request tries it (its failure marks
    // the database down, bounded by db_timeout); the others do not query it at all.
    let queries_before = metric(&app, "recsys_db_queries_total").await;
    ferret.kill();
    let a = get(&app, "/similar-products?userId=3&n=5").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["x-recsys-degraded"], "database");
    assert!(!from_mongo(&a));
    assert_eq!(ids(&a).len(), 5);
    let queries_first = metric(&app, "recsys_db_queries_total").await;
    assert!(
        queries_first <= queries_before + 1.0,
        "one request, at most one query: {queries_before} → {queries_first}"
    );
    // A refused connection marks the database down at once; a query that times out does
    // not (slow is not down), and then the probe's failed ping does, within its interval
    // plus the ping's time limit. From then on no request queries the database.
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.details().state() != DatabaseState::Down {
        assert!(
            Instant::now() < deadline,
            "the dead database was never marked down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queries_down = metric(&app, "recsys_db_queries_total").await;
    for u in 1..=10 {
        let a = get(&app, &format!("/recommendations/{u}?n=3")).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.json()["degraded"], json!(true));
    }
    assert_eq!(
        metric(&app, "recsys_db_queries_total").await,
        queries_down,
        "degraded answers do not query the database that is down"
    );
    let ready = get(&app, "/ready").await.json();
    assert_eq!(ready["database"], "down");
    assert!(get(&app, "/metrics")
        .await
        .text()
        .contains("recsys_db_up 0"));

    // Start it again (same port, same data): the server notices by itself.
    ferret.spawn();
    ferret.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while state.details().state() != DatabaseState::Up {
        assert!(
            Instant::now() < deadline,
            "the server did not notice the database came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a = get(&app, "/similar-products?userId=3&n=5").await;
    assert!(
        from_mongo(&a) && !a.headers.contains_key("x-recsys-degraded"),
        "{}",
        a.text()
    );
    assert_eq!(get(&app, "/ready").await.json()["status"], "ready");
    probe.abort();
}

/// A server whose cache holds every product stops querying the database; when the database
/// dies, only the timer probe can notice. It must within the probe interval (plus the
/// ping's time limit), while requests keep being answered from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_dies_behind_a_warm_cache_is_reported_down() {
    let Some(mut ferret) = own_ferretdb("warm").await else {
        return;
    };
    fill(&ferret.uri(), "shop").await;
    let config = ServerConfig {
        db_timeout: Duration::from_millis(300),
        db_retry_interval: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let state = mongo_state(&ferret.uri(), "shop", config.db_timeout, config).await;
    let probe = state.spawn_database_probe();
    let app = router(state.clone()).expect("valid config");
    // The probe's preload warms the cache with every product.
    let deadline = Instant::now() + Duration::from_secs(60);
    while state.details().cached() < 24 {
        assert!(Instant::now() < deadline, "the cache was never warmed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = get(&app, "/similar-products?userId=3&n=5").await;
    assert!(!a.headers.contains_key("x-recsys-degraded"));
    let queries = |app: Router| async move {
        let text = get(&app, "/metrics").await.text();
        text.lines()
            .find(|l| l.starts_with("recsys_db_queries_total "))
            .unwrap()
            .to_string()
    };
    let before = queries(app.clone()).await;

    ferret.kill();
    let killed = Instant::now();
    loop {
        // Still answered from the cache, without a query.
        let a = get(&app, "/similar-products?userId=3&n=5").await;
        assert_eq!(a.status, 200);
        let ready = get(&app, "/ready").await.json();
        if ready["database"] == "down" {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the dead database was never reported: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("dead database reported down after {:?}", killed.elapsed());
    assert!(get(&app, "/metrics")
        .await
        .text()
        .contains("recsys_db_up 0"));
    assert_eq!(
        queries(app.clone()).await,
        before,
        "no query was needed to notice"
    );
    probe.abort();
}

/// With the cache off every response queries the database. On FerretDB a `$in` over a
/// large collection is a scan that can outlast the query limit while pings answer at once:
/// those slow queries must not flip the database to down (it flapped down/up every 2–3 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_off_a_live_database_stays_up() {
    let Some(uri) = uri_from_env() else { return };
    let database = format!("recsys_server_flap_{}", std::process::id());
    {
        let client = mongodb::Client::with_uri_str(&uri).await.expect("client");
        let db = client.database(&database);
        db.drop().await.expect("drop");
        let mut docs = documents();
        docs.extend((1_000_000..1_030_000_i64).map(|id| {
            doc! { "_id": id.to_string(), "product_id": id, "name": format!("filler {id}"), "price": 1.0 }
        }));
        for chunk in docs.chunks(5_000) {
            db.collection::<Document>("products")
                .insert_many(chunk.to_vec())
                .await
                .expect("insert products");
        }
    }
    let config = ServerConfig {
        cache_capacity: 0,
        db_timeout: Duration::from_millis(200),
        db_retry_interval: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let state = mongo_state(&uri, &database, config.db_timeout, config).await;
    assert_eq!(state.details().check().await, DatabaseState::Up);
    let probe = state.spawn_database_probe();
    let app = router(state.clone()).expect("valid config");
    let started = Instant::now();
    let mut requests = 0;
    // Several probe intervals with requests running.
    while started.elapsed() < Duration::from_secs(3) {
        let a = get(&app, &format!("/recommendations/{}?n=5", 1 + requests % 10)).await;
        assert_eq!(a.status, 200);
        requests += 1;
        let ready = get(&app, "/ready").await.json();
        assert_eq!(
            ready["database"], "up",
            "after {requests} requests: {ready}"
        );
    }
    let metrics = get(&app, "/metrics").await.text();
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    eprintln!(
        "cache off: {requests} requests in 3 s, {}, {}",
        line("recsys_db_queries_total "),
        line("recsys_db_query_timeouts_total ")
    );
    assert!(metrics.contains("recsys_db_up 1"), "{metrics}");
    probe.abort();
    drop_database(&uri, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_inserted_after_start_is_served_after_the_sync() {
    let Some(uri) = uri_from_env() else { return };
    let database = format!("recsys_server_new_products_{}", std::process::id());
    fill(&uri, &database).await;
    let config = ServerConfig {
        new_products_interval: Some(Duration::from_millis(300)),
        ..ServerConfig::default()
    };
    let state = mongo_state_with(
        &uri,
        &database,
        Duration::from_secs(5),
        bundle_with_categories(7),
        config,
    )
    .await;
    // `serve` starts the sync next to the database probe.
    let server = common::net::start(state.clone()).await;
    let address = server.address;
    let get = |path: String| async move { common::net::http(address, "GET", &path, "").await };
    let synced = Instant::now() + Duration::from_secs(60);
    while state
        .metrics()
        .new_products_syncs
        .load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        assert!(Instant::now() < synced, "no sync within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get("/products/950/similar".into()).await.0, 404);

    let client = mongodb::Client::with_uri_str(&uri).await.expect("client");
    client
        .database(&database)
        .collection::<Document>("products")
        .insert_one(doc! {
            "_id": "950", "product_id": 950_i64, "name": "Mongo product 950",
            "price": 4.5, "image": "m950.jpg", "category": "tea",
        })
        .await
        .expect("insert");
    let deadline = Instant::now() + Duration::from_secs(60);
    let similar = loop {
        let (status, _, body) = get("/products/950/similar?n=5".into()).await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 404);
        assert!(
            Instant::now() < deadline,
            "product 950 not served within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let items = similar["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    for item in items {
        let id = item["product_id"].as_i64().unwrap();
        assert_eq!(category(id), "tea", "{similar}");
        assert_eq!(item["name"], format!("Mongo product {id}"));
    }
    // Recommended to a tea drinker, with the details of its document.
    let (status, _, body) = get("/recommendations/2?n=10".into()).await;
    assert_eq!(status, 200);
    let item = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["product_id"] == 950)
        .unwrap_or_else(|| panic!("950 not recommended to user 2: {body}"));
    assert_eq!(item["reason"], "model+new-product");
    assert_eq!(item["name"], "Mongo product 950");
    assert_eq!(item["price"], json!(4.5));
    assert_eq!(item["image"], "/image/m950.jpg");
    let (_, _, ready) = get("/ready".into()).await;
    assert_eq!(ready["new_products"], 1);
    drop(server);
    drop_database(&uri, &database).await;
}
