//! The demo storefront's routes without a browser: off by default, the catalogue's pages,
//! search and filters, product pages, generated pictures, bad input.

mod common;

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::Router;
use common::{get, Answer};
use recsys_recommend::Bundle;
use recsys_server::{router, AppState, ServerConfig};
use serde_json::Value;

fn shop_bundle() -> Bundle {
    static BUNDLE: OnceLock<Bundle> = OnceLock::new();
    BUNDLE.get_or_init(common::demo_bundle).clone()
}

fn app(config: ServerConfig) -> Router {
    router(AppState::new(shop_bundle(), None, config)).expect("valid config")
}

fn demo() -> Router {
    app(ServerConfig {
        demo_ui: true,
        ..ServerConfig::default()
    })
}

fn header(answer: &Answer, name: &str) -> String {
    answer
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn product_ids(page: &Value) -> Vec<Value> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["product_id"].clone())
        .collect()
}

#[tokio::test]
async fn the_storefront_is_off_by_default() {
    let app = app(ServerConfig::default());
    for path in [
        "/",
        "/demo/",
        "/demo/app.js",
        "/demo/api/shop",
        "/demo/api/products",
        "/image/generated/10001.svg",
    ] {
        assert_eq!(
            get(&app, path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let app = demo();
    let page = get(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(header(&page, "content-type").starts_with("text/html"));
    let csp = header(&page, "content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = page.text();
    assert!(html.contains("/demo/app.js") && html.contains("/demo/style.css"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external URL in the page"
    );
    assert_eq!(get(&app, "/demo/").await.body, page.body);
    for (path, kind) in [
        ("/demo/app.js", "text/javascript"),
        ("/demo/style.css", "text/css"),
        ("/demo/favicon.svg", "image/svg+xml"),
    ] {
        let answer = get(&app, path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert!(header(&answer, "content-type").starts_with(kind), "{path}");
        assert!(
            !answer.text().contains("https://"),
            "{path}: no external URL"
        );
    }
}

#[tokio::test]
async fn the_shop_lists_attribute_columns_and_shoppers() {
    let app = demo();
    let shop = get(&app, "/demo/api/shop").await.json();
    assert_eq!(shop["products"], 600);
    assert_eq!(shop["events"], false, "no event store in this app");
    assert_eq!(shop["images"], false, "no image folder");
    let columns: Vec<&str> = shop["item_columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        columns.contains(&"category") && columns.contains(&"colour"),
        "{columns:?}"
    );
    let category = &shop["item_columns"][columns.iter().position(|c| *c == "category").unwrap()];
    let total: u64 = category["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 600, "every product has one category");
    let user_columns: Vec<&str> = shop["user_columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(user_columns.contains(&"age_group"), "{user_columns:?}");
    let users = shop["users"].as_array().unwrap();
    assert!(!users.is_empty() && users.len() <= 12, "{users:?}");
    // The most active shopper comes first.
    let bundle = shop_bundle();
    let activity = |id: &Value| {
        let id = recsys_features::ExternalId::Int(id.as_i64().unwrap());
        let u = bundle.users().index(&id).expect("a known user");
        bundle.seen().user_items(u).len()
    };
    assert!(activity(&users[0]) >= activity(&users[users.len() - 1]));
}

#[tokio::test]
async fn the_catalogue_pages_filters_and_searches() {
    let app = demo();
    let first = get(&app, "/demo/api/products?per_page=10").await.json();
    assert_eq!(first["total"], 600);
    assert_eq!(first["pages"], 60);
    assert_eq!(product_ids(&first).len(), 10);
    let second = get(&app, "/demo/api/products?per_page=10&page=2")
        .await
        .json();
    let (a, b) = (product_ids(&first), product_ids(&second));
    assert!(a.iter().all(|id| !b.contains(id)), "pages do not overlap");
    // Most popular first.
    let bundle = shop_bundle();
    let popularity = |id: &Value| {
        let id = recsys_features::ExternalId::Int(id.as_i64().unwrap());
        bundle.popularity().counts()[bundle.items().index(&id).unwrap()]
    };
    assert!(popularity(&a[0]) >= popularity(&a[9]));
    assert!(popularity(&a[9]) >= popularity(&b[0]));
    // Past the end: an empty page, not an error.
    let past = get(&app, "/demo/api/products?per_page=10&page=61")
        .await
        .json();
    assert_eq!(product_ids(&past).len(), 0);

    let shoes = get(
        &app,
        "/demo/api/products?column=category&value=shoes&per_page=100",
    )
    .await
    .json();
    let total = shoes["total"].as_u64().unwrap();
    assert!(total > 0 && total < 600, "{total}");
    for item in shoes["items"].as_array().unwrap() {
        assert_eq!(item["category"], "shoes", "{item}");
        assert!(item["picture"]
            .as_str()
            .unwrap()
            .starts_with("/image/generated/"));
    }
    let none = get(&app, "/demo/api/products?column=category&value=spaceships")
        .await
        .json();
    assert_eq!(none["total"], 0);

    let name = first["items"][0]["name"].as_str().unwrap().to_string();
    let word = name.split_whitespace().last().unwrap().to_uppercase();
    let found = get(&app, &format!("/demo/api/products?q={word}&per_page=100"))
        .await
        .json();
    assert!(found["total"].as_u64().unwrap() >= 1);
    for item in found["items"].as_array().unwrap() {
        let name = item["name"].as_str().unwrap().to_lowercase();
        assert!(name.contains(&word.to_lowercase()), "{name} matches {word}");
    }
}

#[tokio::test]
async fn bad_catalogue_input_is_a_400_naming_the_parameter() {
    let app = demo();
    for (query, param) in [
        ("per_page=0", "per_page"),
        ("per_page=101", "per_page"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("column=nope&value=1", "column"),
        ("column=category", "value"),
    ] {
        let answer = get(&app, &format!("/demo/api/products?{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.json()["param"], param, "{query}");
    }
    let long = "q=".to_string() + &"a".repeat(201);
    let answer = get(&app, &format!("/demo/api/products?{long}")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_product_page_has_its_attributes_and_an_unknown_one_is_a_404() {
    let app = demo();
    let first = get(&app, "/demo/api/products?per_page=1").await.json();
    let id = first["items"][0]["product_id"].as_i64().unwrap();
    let product = get(&app, &format!("/demo/api/products/{id}")).await.json();
    assert_eq!(product["product_id"], id);
    assert_eq!(product["name"], first["items"][0]["name"]);
    let columns: Vec<&str> = product["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["column"].as_str().unwrap())
        .collect();
    for column in ["category", "brand", "colour", "season"] {
        assert!(columns.contains(&column), "{column} in {columns:?}");
    }
    assert!(product["popularity"].as_f64().unwrap() > 0.0);
    let missing = get(&app, "/demo/api/products/999999").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["code"], "not_found");
}

#[tokio::test]
async fn generated_pictures_are_svg_for_known_products_only() {
    let app = demo();
    let first = get(&app, "/demo/api/products?per_page=2").await.json();
    let (a, b) = (&first["items"][0], &first["items"][1]);
    let picture = get(&app, a["picture"].as_str().unwrap()).await;
    assert_eq!(picture.status, StatusCode::OK);
    assert_eq!(header(&picture, "content-type"), "image/svg+xml");
    assert_eq!(header(&picture, "x-content-type-options"), "nosniff");
    let svg = picture.text();
    assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
    assert!(!svg.contains("<script"), "{svg}");
    let other = get(&app, b["picture"].as_str().unwrap()).await.text();
    assert_ne!(svg, other, "each product its own picture");
    for path in ["/image/generated/999999.svg", "/image/generated/10001.png"] {
        assert_eq!(
            get(&app, path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[tokio::test]
async fn with_an_image_folder_the_products_own_images_are_used() {
    let dir = std::env::temp_dir().join(format!("recsys-demo-images-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let app = app(ServerConfig {
        demo_ui: true,
        image_dir: Some(dir.clone()),
        ..ServerConfig::default()
    });
    let page = get(&app, "/demo/api/products?per_page=3").await.json();
    for item in page["items"].as_array().unwrap() {
        let id = item["product_id"].as_i64().unwrap();
        assert_eq!(item["picture"], format!("/image/{id}.jpg"));
    }
    assert_eq!(get(&app, "/demo/api/shop").await.json()["images"], true);
    let _ = std::fs::remove_dir_all(dir);
}
