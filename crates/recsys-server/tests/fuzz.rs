//! Property test over arbitrary paths, query strings and methods: never a 5xx, never a
//! panic, every error body is JSON with an `error` message.

mod common;

use common::*;
use proptest::prelude::*;
use recsys_server::{router, ServerConfig};

/// Percent-encodes every byte that is not unreserved.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A piece of a URI: raw URI characters (may hold stray `%`, `..`, `/`, `=`, `&`), or any
/// Unicode percent-encoded, or a few interesting values.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9%._~!$&'()*+,;=:@/?-]{0,24}",
        any::<String>().prop_map(|s| encode(&s)),
        prop::collection::vec(any::<u8>(), 0..12)
            .prop_map(|b| b.iter().map(|x| format!("%{x:02X}")).collect()),
        Just(String::new()),
        Just("..".to_string()),
        Just("%2e%2e%2f".to_string()),
        Just("-1".to_string()),
        Just("1e9".to_string()),
        Just("18446744073709551616".to_string()),
        Just("101".to_string()),
        Just("2".to_string()),
        Just("9".repeat(200)),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("n".to_string()),
        Just("userId".to_string()),
        Just("productId".to_string()),
        Just("exclude".to_string()),
        Just("attr.region".to_string()),
        Just("attr.".to_string()),
        Just("page".to_string()),
        Just("per_page".to_string()),
        Just("q".to_string()),
        Just("column".to_string()),
        Just("value".to_string()),
        piece(),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec((key(), piece(), any::<bool>()), 0..6).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v, with_eq)| if with_eq { format!("{k}={v}") } else { k })
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/similar-products".to_string()),
        piece().prop_map(|p| format!("/recommendations/{p}")),
        piece().prop_map(|p| format!("/products/{p}/similar")),
        piece().prop_map(|p| format!("/image/{p}")),
        Just("/health".to_string()),
        Just("/ready".to_string()),
        Just("/metrics".to_string()),
        Just("/admin/reload".to_string()),
        Just("/demo/api/shop".to_string()),
        Just("/demo/api/products".to_string()),
        piece().prop_map(|p| format!("/demo/api/products/{p}")),
        piece().prop_map(|p| format!("/image/generated/{p}")),
        piece().prop_map(|p| format!("/image/generated/{p}.svg")),
        piece().prop_map(|p| format!("/{p}")),
    ]
}

fn method() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        6 => Just("GET"),
        1 => Just("POST"),
        1 => Just("HEAD"),
        1 => Just("DELETE"),
        1 => Just("OPTIONS"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_input_gives_a_5xx_or_a_non_json_error((m, p, q) in (method(), path(), query())) {
        thread_local! {
            static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all().build().unwrap();
            static APP: axum::Router = {
                let images = std::env::temp_dir().join(format!("recsys-server-fuzz-{}", std::process::id()));
                std::fs::create_dir_all(&images).unwrap();
                std::fs::write(images.join("100.jpg"), b"jpeg").unwrap();
                router(state(ServerConfig { image_dir: Some(images), admin_routes: true, demo_ui: true, ..ServerConfig::default() })).expect("valid config")
            };
        }
        let uri = if q.is_empty() { p.clone() } else { format!("{p}?{q}") };
        // Only URIs a client could send: the HTTP layer rejects the rest before us.
        prop_assume!(uri.parse::<axum::http::Uri>().is_ok());
        let app = APP.with(|a| a.clone());
        let answer = RUNTIME.with(|rt| rt.block_on(call(&app, m, &uri)));
        prop_assert!(answer.status.as_u16() < 500, "{m} {uri}: {} {}", answer.status, answer.text());
        if answer.status.is_client_error() && m != "HEAD" {
            let body: serde_json::Value = serde_json::from_slice(&answer.body)
                .map_err(|e| TestCaseError::fail(format!("{m} {uri}: not JSON ({e}): {}", answer.text())))?;
            prop_assert!(body["error"].is_string(), "{m} {uri}: {body}");
        }
    }
}

/// A JSON value of the shapes an event body takes, with arbitrary (often wrong) values.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::from),
        piece().prop_map(Value::from),
        Just(json!("2017-09-09T22:30:46Z")),
        Just(json!("-0.0")),
        Just(json!("NaN")),
    ];
    let field = prop_oneof![
        Just("user_id".to_string()),
        Just("product_id".to_string()),
        Just("interaction_type".to_string()),
        Just("weight".to_string()),
        Just("timestamp".to_string()),
        Just("event_id".to_string()),
        "[a-z_]{0,8}",
    ];
    let event = prop::collection::btree_map(field, scalar.clone(), 0..7)
        .prop_map(|m| Value::Object(m.into_iter().collect()));
    prop_oneof![
        3 => event.clone(),
        3 => prop::collection::vec(event, 0..6).prop_map(Value::from),
        1 => scalar,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    /// POST /events with arbitrary bodies (JSON or not): 200, 400 or 413, a JSON body that
    /// says why, and nothing stored unless the answer is 200.
    #[test]
    fn no_event_body_gives_a_5xx(body in prop_oneof![
        3 => json_value().prop_map(|v| v.to_string()),
        1 => any::<String>(),
    ]) {
        thread_local! {
            static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all().build().unwrap();
            static LIVE: (axum::Router, std::sync::Arc<recsys_server::MemoryEvents>) = {
                let events = std::sync::Arc::new(recsys_server::MemoryEvents::new());
                let state = recsys_server::AppState::with_events(
                    bundle(), None, Some(events.clone()),
                    ServerConfig { events_max_batch: 4, events_max_body: 4096, ..ServerConfig::default() },
                );
                (router(state).expect("valid config"), events)
            };
        }
        let (app, events) = LIVE.with(|(a, e)| (a.clone(), e.clone()));
        let before = events.events().len();
        let answer = RUNTIME.with(|rt| rt.block_on(post_json(&app, "/events", &body)));
        let status = answer.status.as_u16();
        prop_assert!([200, 400, 413].contains(&status), "{body}: {status} {}", answer.text());
        let json: serde_json::Value = serde_json::from_slice(&answer.body)
            .map_err(|e| TestCaseError::fail(format!("{body}: not JSON ({e}): {}", answer.text())))?;
        if status == 200 {
            prop_assert!(json["accepted"].as_u64().is_some_and(|n| n >= 1), "{json}");
        } else {
            prop_assert!(json["error"].is_string(), "{json}");
            prop_assert_eq!(events.events().len(), before, "a refused request stored events");
        }
    }
}
