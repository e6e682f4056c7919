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
                router(state(ServerConfig { image_dir: Some(images), admin_routes: true, ..ServerConfig::default() })).expect("valid config")
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
