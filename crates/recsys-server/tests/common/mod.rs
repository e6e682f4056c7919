//! A small shop with two tastes, trained in-process, and helpers to call the router.
#![allow(dead_code)]

pub mod ferret;
pub mod net;

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use recsys_core::{FitOptions, HybridModel, Hyperparameters, Loss};
use recsys_features::{
    Attributes, ColumnSpec, Dataset, ExternalId, FeatureSpec, InMemorySource, InteractionOptions,
    InteractionRecord, ProductRecord, UserRecord,
};
use recsys_recommend::{Bundle, BundleBuilder};
use recsys_server::{router, AppState, ProductSource, ServerConfig};
use tower::ServiceExt;

pub const N_PRODUCTS: i64 = 24;
pub const N_USERS: usize = 10;

/// The category of product `id`: "tea" for the products the east users buy (100..112 and
/// any id beyond the shop's that is even), "coffee" for the west users' (112..124, odd).
pub fn category(id: i64) -> &'static str {
    match id {
        100..=111 => "tea",
        112..=123 => "coffee",
        _ if id % 2 == 0 => "tea",
        _ => "coffee",
    }
}

/// Users 1..=10: even ones live in "east" and buy products 100..112 (category "tea"), odd
/// ones in "west" and buy 112..124 ("coffee"). Product 105 has a NaN price, product 107 no
/// image, product 123 no details at all.
pub fn shop(seed_offset: i64) -> InMemorySource {
    let mut source = InMemorySource::default();
    for u in 1..=N_USERS as i64 {
        let mut attributes = Attributes::new();
        attributes.insert(
            "region".into(),
            if u % 2 == 0 { "east" } else { "west" }.into(),
        );
        source.users.push(UserRecord {
            user_id: ExternalId::Int(u),
            attributes,
        });
    }
    for p in 0..N_PRODUCTS {
        let id = 100 + p;
        source.products.push(ProductRecord {
            product_id: ExternalId::Int(id),
            name: (id != 123).then(|| format!("Bundle product {id}")),
            price: (id != 123).then_some(if id == 105 { f64::NAN } else { 0.5 + p as f64 }),
            image: (id != 107 && id != 123).then(|| format!("{id}.jpg")),
            attributes: Attributes::from([("category".to_string(), category(id).to_string())]),
        });
    }
    for u in 1..=N_USERS as i64 {
        let base = if u % 2 == 0 { 100 } else { 112 };
        for j in 0..4 {
            source.interactions.push(InteractionRecord {
                user_id: ExternalId::Int(u),
                product_id: ExternalId::Int(base + (u + j * 3 + seed_offset) % 12),
                interaction_type: None,
                weight: None,
                timestamp: None,
            });
        }
    }
    source
}

/// A bundle trained on [`shop`] (user identity + region; item identity). `seed` changes
/// the model (and so its version).
pub fn bundle_with_seed(seed: u64) -> Bundle {
    trained_bundle(
        seed,
        FeatureSpec::identity_only(),
        false,
        "recsys-server test shop",
    )
}

pub fn bundle() -> Bundle {
    bundle_with_seed(7)
}

/// A bundle trained on [`shop`] with the product category as an item feature
/// (identity-anchored, weight 1) and the item cold-start refit: its model can represent a
/// product added after training from its category.
pub fn bundle_with_categories(seed: u64) -> Bundle {
    let item_spec = FeatureSpec::identity_only()
        .with_column(ColumnSpec::categorical("category"))
        .with_metadata_weight(Some(1.0));
    trained_bundle(
        seed,
        item_spec,
        true,
        "recsys-server test shop with categories",
    )
}

/// A WARP model (8 components, 20 epochs) on [`shop`] with the user region and `item_spec`,
/// refitted for item cold start when `refit`, as a bundle with 8 neighbours per product.
fn trained_bundle(seed: u64, item_spec: FeatureSpec, refit: bool, description: &str) -> Bundle {
    let mut source = shop(0);
    let user_spec = FeatureSpec::identity_only().with_column(ColumnSpec::categorical("region"));
    let dataset = Dataset::from_source(&mut source, user_spec, item_spec).expect("dataset");
    let (train, _) = dataset
        .logged_interactions(InteractionOptions::binary())
        .expect("interactions");
    let params = Hyperparameters::builder()
        .loss(Loss::Warp)
        .no_components(8)
        .seed(seed)
        .build()
        .expect("params");
    let mut model =
        HybridModel::new(params, dataset.user_features(), dataset.item_features()).expect("model");
    model.fit(&train, FitOptions::epochs(20)).expect("fit");
    if refit {
        model
            .refit_cold_start(&train, &recsys_core::ColdStartRefit::new(0.1))
            .expect("refit");
    }
    BundleBuilder::new(model, &dataset, train)
        .products(source.products.iter().cloned())
        .neighbours(8)
        .description(description)
        .build()
        .expect("bundle")
}

/// The quickstart's demo shop (600 products with category, brand, colour…; users with
/// city, age group and type), trained briefly in-process: for the storefront's tests.
pub fn demo_bundle() -> Bundle {
    use recsys::demo::{generate, DemoConfig};
    use recsys::experiment::{Experiment, ExperimentConfig, Split};

    let mut shop = generate(&DemoConfig::default());
    let products = shop.products.clone();
    let experiment = Experiment::load(&mut shop, &ExperimentConfig::demo_hybrid(), Split::None)
        .expect("the demo shop loads");
    let params = Hyperparameters::builder()
        .loss(Loss::Warp)
        .no_components(16)
        .seed(3)
        .build()
        .expect("hyperparameters");
    let (model, _) = experiment.fit(params, 5, 1, |_| {}).expect("training");
    experiment
        .bundle(model)
        .products(products)
        .neighbours(10)
        .description("storefront test shop")
        .build()
        .expect("the bundle")
}

pub fn state(config: ServerConfig) -> AppState {
    AppState::new(bundle(), None, config)
}

pub fn state_with_source(source: Arc<dyn ProductSource>, config: ServerConfig) -> AppState {
    AppState::new(bundle(), Some(source), config)
}

pub fn app() -> Router {
    router(state(ServerConfig::default())).expect("valid config")
}

/// The answer of one request.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub async fn call(app: &Router, method: &str, uri: &str) -> Answer {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .expect("request");
    send(app, request).await
}

/// The answer of `app` to `request`.
pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body")
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn get(app: &Router, uri: &str) -> Answer {
    call(app, "GET", uri).await
}

/// Ids of a `/similar-products` answer.
pub fn ids(answer: &Answer) -> Vec<serde_json::Value> {
    answer
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|item| item["product_id"].clone())
        .collect()
}

/// A product source whose queries panic (a bug on the request path); pings answer.
pub struct PanickingSource;

impl ProductSource for PanickingSource {
    fn fetch<'a>(
        &'a self,
        _ids: &'a [ExternalId],
    ) -> recsys_server::BoxFuture<
        'a,
        Result<Vec<(ExternalId, recsys_recommend::ProductInfo)>, recsys_server::ServerError>,
    > {
        Box::pin(async { panic!("product source bug") })
    }

    fn ping(&self) -> recsys_server::BoxFuture<'_, Result<(), recsys_server::ServerError>> {
        Box::pin(async { Ok(()) })
    }

    fn describe(&self) -> String {
        "panicking".into()
    }
}

/// `POST uri` with a JSON body.
pub async fn post_json(app: &Router, uri: &str, body: &str) -> Answer {
    let request = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    send(app, request).await
}

/// Product ids of a `/recommendations` answer.
pub fn item_ids(answer: &Answer) -> Vec<serde_json::Value> {
    answer.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["product_id"].clone())
        .collect()
}

/// The `x-recsys-strategy` header.
pub fn strategy(answer: &Answer) -> String {
    answer
        .headers
        .get("x-recsys-strategy")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}
