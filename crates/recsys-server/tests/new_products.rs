//! Products added to the product source after training: learned by the sync
//! (`sync_new_products`), served by every recommendation route with their details from
//! their records, carried over a model swap, refused for a model without item features.
//! The same against a real database is in `database.rs`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use recsys_features::{Attributes, ExternalId, ProductRecord};
use recsys_recommend::ProductInfo;
use recsys_server::{
    router, sync_new_products, AppState, BoxFuture, ProductSource, ServerConfig, ServerError,
};
use serde_json::json;

/// A products collection in memory: `scan_records` answers its records (counting scans);
/// `fetch` answers "db <id>" details for any id (counting queries).
#[derive(Default)]
struct Catalogue {
    records: Mutex<Vec<ProductRecord>>,
    scans: AtomicUsize,
    queries: AtomicUsize,
}

impl Catalogue {
    /// The shop's products, as the import wrote them.
    fn of_the_shop() -> Arc<Catalogue> {
        let catalogue = Catalogue::default();
        *catalogue.records.lock().unwrap() = shop(0).products;
        Arc::new(catalogue)
    }

    fn add(&self, id: i64, category: &str) {
        self.records.lock().unwrap().push(ProductRecord {
            product_id: ExternalId::Int(id),
            name: Some(format!("Record {id}")),
            price: Some(9.5),
            image: Some(format!("r{id}.jpg")),
            attributes: Attributes::from([("category".to_string(), category.to_string())]),
        });
    }

    fn remove(&self, id: i64) {
        self.records
            .lock()
            .unwrap()
            .retain(|r| r.product_id != ExternalId::Int(id));
    }
}

impl ProductSource for Catalogue {
    fn fetch<'a>(
        &'a self,
        ids: &'a [ExternalId],
    ) -> BoxFuture<'a, Result<Vec<(ExternalId, ProductInfo)>, ServerError>> {
        Box::pin(async move {
            self.queries.fetch_add(1, Ordering::SeqCst);
            Ok(ids
                .iter()
                .map(|id| {
                    let info = ProductInfo {
                        name: Some(format!("db {id}")),
                        price: None,
                        image: None,
                    };
                    (id.clone(), info)
                })
                .collect())
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), ServerError>> {
        Box::pin(async { Ok(()) })
    }

    fn scan_records(&self) -> BoxFuture<'_, Result<Vec<ProductRecord>, ServerError>> {
        Box::pin(async move {
            self.scans.fetch_add(1, Ordering::SeqCst);
            Ok(self.records.lock().unwrap().clone())
        })
    }

    fn describe(&self) -> String {
        "catalogue".into()
    }
}

fn position(ids: &[serde_json::Value], id: i64) -> Option<usize> {
    ids.iter().position(|v| v == &json!(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_added_after_training_is_recommended_and_has_similar_products() {
    let catalogue = Catalogue::of_the_shop();
    let state = AppState::new(
        bundle_with_categories(7),
        Some(catalogue.clone()),
        ServerConfig::default(),
    );
    let app = router(state.clone()).expect("valid config");
    // Before any sync: unknown.
    assert_eq!(get(&app, "/products/900/similar").await.status, 404);
    let report = sync_new_products(&state).await.unwrap().unwrap();
    assert_eq!(
        report.added, 0,
        "every product of the collection is the model's"
    );

    catalogue.add(900, "tea");
    catalogue.add(901, "unheard-of");
    let report = sync_new_products(&state).await.unwrap().unwrap();
    assert_eq!((report.added, report.without_known_features), (1, 1));

    // Recommended to the tea drinkers (even users), with its reason and its record's
    // details, not the database's.
    for user in [2, 4, 6] {
        let a = get(&app, &format!("/recommendations/{user}?n=10")).await;
        assert_eq!(a.status, 200, "{}", a.text());
        let ids = item_ids(&a);
        let at = position(&ids, 900).unwrap_or_else(|| panic!("user {user}: {ids:?}"));
        let item = &a.json()["items"][at];
        assert_eq!(item["reason"], "model+new-product");
        assert_eq!(item["name"], "Record 900");
        assert_eq!(item["image"], "/image/r900.jpg");
        assert!(
            position(&ids, 901).is_none(),
            "no known feature: not served"
        );
    }
    // Its similar products are the teas.
    let a = get(&app, "/products/900/similar?n=5").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(strategy(&a), "similar-products");
    let ids = item_ids(&a);
    assert_eq!(ids.len(), 5);
    for id in &ids {
        assert_eq!(category(id.as_i64().unwrap()), "tea", "{ids:?}");
    }
    assert!(a.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|item| item["reason"] == "similar-to-900"));
    // The seed's route takes it as the viewed product too.
    let a = get(&app, "/similar-products?productId=900&userId=2&n=4").await;
    assert_eq!(a.status, 200);
    let seed_ids = common::ids(&a);
    assert_eq!(seed_ids.len(), 4);
    assert!(!seed_ids.contains(&json!(900)));
    // A tea's similar products include it.
    let a = get(&app, "/products/101/similar?n=12").await;
    assert!(position(&item_ids(&a), 900).is_some(), "{}", a.text());
    // Excluding it works.
    let a = get(&app, "/recommendations/2?n=10&exclude=900").await;
    assert!(position(&item_ids(&a), 900).is_none());
    // Health and metrics count it.
    assert_eq!(get(&app, "/ready").await.json()["new_products"], 1);
    let metrics = get(&app, "/metrics").await.text();
    assert!(metrics.contains("\nrecsys_new_products 1\n"), "{metrics}");
    assert!(metrics.contains("\nrecsys_new_products_without_features 1\n"));

    // Deleted from the collection: no longer served after the next sync.
    catalogue.remove(900);
    sync_new_products(&state).await.unwrap();
    assert_eq!(get(&app, "/products/900/similar").await.status, 404);
    assert_eq!(get(&app, "/ready").await.json()["new_products"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_model_serves_the_new_products_at_once() {
    let catalogue = Catalogue::of_the_shop();
    catalogue.add(900, "tea");
    let state = AppState::new(
        bundle_with_categories(7),
        Some(catalogue.clone()),
        ServerConfig::default(),
    );
    let app = router(state.clone()).expect("valid config");
    sync_new_products(&state).await.unwrap();
    assert_eq!(get(&app, "/ready").await.json()["new_products"], 1);
    let scans = catalogue.scans.load(Ordering::SeqCst);
    // Another model: represented by it before it serves, without reading the collection.
    let outcome = state.swap(bundle_with_categories(8));
    assert_ne!(outcome.model_version, outcome.previous_model_version);
    assert_eq!(catalogue.scans.load(Ordering::SeqCst), scans);
    let ready = get(&app, "/ready").await.json();
    assert_eq!(ready["model_version"], json!(outcome.model_version));
    assert_eq!(ready["new_products"], 1);
    let a = get(&app, "/products/900/similar?n=3").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["x-recsys-model"], outcome.model_version.as_str());
    // A model without item features serves none (and says why once in the log).
    state.swap(bundle());
    assert_eq!(get(&app, "/ready").await.json()["new_products"], 0);
    assert_eq!(get(&app, "/products/900/similar").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_without_item_features_does_not_read_the_collection() {
    let catalogue = Catalogue::of_the_shop();
    catalogue.add(900, "tea");
    let state = AppState::new(bundle(), Some(catalogue.clone()), ServerConfig::default());
    let app = router(state.clone()).expect("valid config");
    assert_eq!(sync_new_products(&state).await.unwrap(), None);
    assert_eq!(catalogue.scans.load(Ordering::SeqCst), 0);
    assert_eq!(get(&app, "/products/900/similar").await.status, 404);
    let a = get(&app, "/recommendations/2?n=30").await;
    assert!(position(&item_ids(&a), 900).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sync_learns_products_added_while_serving() {
    let catalogue = Catalogue::of_the_shop();
    let config = ServerConfig {
        new_products_interval: Some(std::time::Duration::from_millis(50)),
        ..ServerConfig::default()
    };
    let state = AppState::new(bundle_with_categories(7), Some(catalogue.clone()), config);
    let app = router(state.clone()).expect("valid config");
    let task = recsys_server::spawn_new_product_sync(&state).expect("a source and an interval");
    catalogue.add(902, "coffee");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if get(&app, "/products/902/similar").await.status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "902 never served");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let a = get(&app, "/recommendations/3?n=10").await;
    assert!(position(&item_ids(&a), 902).is_some(), "{}", a.text());
    // Requests never query the source for it: its details are the record's.
    let queries = catalogue.queries.load(Ordering::SeqCst);
    let a = get(&app, "/products/113/similar?n=30").await;
    let items = a.json()["items"].as_array().unwrap().clone();
    let new = items.iter().find(|i| i["product_id"] == 902).expect("902");
    assert_eq!(new["name"], "Record 902");
    assert_eq!(new["reason"], "similar-to-113+new-product");
    assert!(catalogue.queries.load(Ordering::SeqCst) <= queries + 1);
    task.abort();
}
