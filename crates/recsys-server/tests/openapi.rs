//! docs/openapi.json against real responses: every documented route and status is
//! exercised, and every JSON body validates against its schema (a small validator for the
//! subset of JSON Schema the document uses: type, enum, const, properties, required,
//! additionalProperties, items, anyOf, minimum, maximum, $ref).

mod common;

use std::collections::BTreeSet;

use common::*;
use std::sync::Arc;

use recsys_server::{router, AppState, MemoryEvents, ServerConfig};
use serde_json::Value;

fn document() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openapi.json")).expect("JSON")
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.strip_prefix('#').expect("local $ref");
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {r}")),
            )
        }
        None => schema,
    }
}

fn type_matches(name: &str, v: &Value) -> bool {
    match name {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        other => panic!("unsupported type {other}"),
    }
}

const KNOWN: [&str; 15] = [
    "$ref",
    "type",
    "enum",
    "const",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "anyOf",
    "minimum",
    "maximum",
    "description",
    "default",
    "maxLength",
    "contentMediaType",
];

/// Errors of `v` against `schema`, with JSON-pointer-ish paths.
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    let obj = schema.as_object().expect("schema object");
    for key in obj.keys() {
        assert!(
            KNOWN.contains(&key.as_str()),
            "validator does not support {key}"
        );
    }
    if let Some(t) = obj.get("type") {
        let ok = match t {
            Value::String(name) => type_matches(name, v),
            Value::Array(names) => names.iter().any(|n| type_matches(n.as_str().unwrap(), v)),
            _ => panic!("bad type"),
        };
        if !ok {
            errors.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(e) = obj.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errors.push(format!("{at}: {v} not in {e:?}"));
        }
    }
    if let Some(c) = obj.get("const") {
        if c != v {
            errors.push(format!("{at}: {v} != {c}"));
        }
    }
    if let (Some(min), Some(x)) = (obj.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if x < min {
            errors.push(format!("{at}: {x} < {min}"));
        }
    }
    if let (Some(max), Some(x)) = (obj.get("maximum").and_then(Value::as_f64), v.as_f64()) {
        if x > max {
            errors.push(format!("{at}: {x} > {max}"));
        }
    }
    if let Some(options) = obj.get("anyOf").and_then(Value::as_array) {
        let ok = options.iter().any(|o| {
            let mut e = Vec::new();
            validate(doc, o, v, at, &mut e);
            e.is_empty()
        });
        if !ok {
            errors.push(format!("{at}: {v} matches no anyOf option"));
        }
    }
    if let Some(map) = v.as_object() {
        let props = obj.get("properties").and_then(Value::as_object);
        for r in obj
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !map.contains_key(r.as_str().unwrap()) {
                errors.push(format!("{at}: missing required {r}"));
            }
        }
        for (k, x) in map {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, x, &format!("{at}/{k}"), errors),
                None if obj.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{at}: unexpected property {k}"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(list)) = (obj.get("items"), v.as_array()) {
        for (i, x) in list.iter().enumerate() {
            validate(doc, items, x, &format!("{at}/{i}"), errors);
        }
    }
}

/// The documented path template that `path` matches.
fn template<'a>(doc: &'a Value, path: &str) -> Option<&'a str> {
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .find(|t| {
            let parts: Vec<&str> = t.split('/').collect();
            if t.starts_with("/image/") {
                return path.starts_with("/image/") && path.len() > 7;
            }
            parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| (p.starts_with('{') && !s.is_empty()) || p == s)
        })
}

#[tokio::test]
async fn real_responses_match_the_document() {
    let doc = document();
    let images = std::env::temp_dir().join(format!("recsys-server-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("100.jpg"), b"jpeg").unwrap();
    #[cfg(unix)]
    let _ = std::os::unix::fs::symlink("/etc/hostname", images.join("out.jpg"));
    let file = images.join("model.bundle");
    bundle().save(&file).unwrap();
    let state = AppState::new(
        bundle(),
        None,
        ServerConfig {
            image_dir: Some(images.clone()),
            bundle_path: Some(file.clone()),
            admin_routes: true,
            ..ServerConfig::default()
        },
    );
    let app = router(state).expect("valid config");
    let requests: Vec<(&str, &str, u16)> = vec![
        ("GET", "/similar-products?productId=101&userId=2&n=5", 200),
        ("GET", "/similar-products?userId=nobody", 200),
        ("GET", "/similar-products?n=24", 200),
        ("GET", "/similar-products?n=abc", 400),
        (
            "GET",
            "/recommendations/2?n=3&productId=110&exclude=101,102",
            200,
        ),
        (
            "GET",
            "/recommendations/someone?attr.region=east&exclude=zzz",
            200,
        ),
        ("GET", "/recommendations/someone?n=200", 400),
        ("GET", "/products/101/similar?n=30", 200),
        ("GET", "/products/5/similar", 404),
        ("GET", "/products/101/similar?n=-1", 400),
        ("GET", "/image/100.jpg", 200),
        ("GET", "/image/..%2f..%2fetc%2fpasswd", 400),
        ("GET", "/image/out.jpg", 403),
        ("GET", "/image/none.jpg", 404),
        ("GET", "/health", 200),
        ("GET", "/ready", 200),
        ("GET", "/metrics", 200),
        ("POST", "/admin/reload", 200),
    ];
    let mut covered = BTreeSet::new();
    for (method, uri, status) in &requests {
        check(&doc, &app, method, uri, *status, &mut covered).await;
    }
    // A refused reload (corrupt file): 422, the old model keeps serving.
    std::fs::write(&file, b"not a bundle").unwrap();
    check(&doc, &app, "POST", "/admin/reload", 422, &mut covered).await;
    // With an admin token, a request without it: 401.
    let guarded = router(AppState::new(
        bundle(),
        None,
        ServerConfig {
            bundle_path: Some(file.clone()),
            admin_routes: true,
            admin_token: Some("openapi-token".into()),
            ..ServerConfig::default()
        },
    ))
    .expect("valid config");
    check(&doc, &guarded, "POST", "/admin/reload", 401, &mut covered).await;
    // Live events (in-memory store): accepted, bad, too long, database down; then an
    // answer from them.
    let events = Arc::new(MemoryEvents::new());
    let live = router(AppState::with_events(
        bundle(),
        None,
        Some(events.clone()),
        ServerConfig {
            events_max_batch: 2,
            ..ServerConfig::default()
        },
    ))
    .expect("valid config");
    let one = r#"{"user_id": "new", "product_id": 101, "interaction_type": "view"}"#;
    let two = r#"[{"user_id": "new", "product_id": 102}, {"user_id": "new", "product_id": 103, "weight": 2, "timestamp": "2024-01-02T03:04:05Z", "event_id": "e-1"}]"#;
    let bad = r#"[{"user_id": "new", "product_id": 102, "weight": -1}]"#;
    let three = r#"[{"user_id": 1, "product_id": 2}, {"user_id": 1, "product_id": 3}, {"user_id": 1, "product_id": 4}]"#;
    for (body, status) in [(one, 200), (two, 200), (bad, 400), (three, 413)] {
        check_body(&doc, &live, "/events", body, status, &mut covered).await;
    }
    check(
        &doc,
        &live,
        "GET",
        "/recommendations/new?n=3",
        200,
        &mut covered,
    )
    .await;
    check(
        &doc,
        &live,
        "GET",
        "/similar-products?userId=new&productId=110",
        200,
        &mut covered,
    )
    .await;
    events.set_down(true);
    check_body(&doc, &live, "/events", one, 503, &mut covered).await;
    // Every documented (path, method, status) was exercised.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for status in op["responses"].as_object().unwrap().keys() {
                assert!(
                    covered.contains(&(path.clone(), method.clone(), status.clone())),
                    "{method} {path} {status} is documented but not tested"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&images);
}

type Covered = BTreeSet<(String, String, String)>;

/// Calls `method uri`, expects `status`, validates the body against the document.
async fn check(
    doc: &Value,
    app: &axum::Router,
    method: &str,
    uri: &str,
    status: u16,
    covered: &mut Covered,
) {
    let a = call(app, method, uri).await;
    check_answer(doc, method, uri, status, a, covered);
}

/// `POST uri` with a JSON body, expects `status`, validates the answer.
async fn check_body(
    doc: &Value,
    app: &axum::Router,
    uri: &str,
    body: &str,
    status: u16,
    covered: &mut Covered,
) {
    let a = post_json(app, uri, body).await;
    check_answer(doc, "POST", uri, status, a, covered);
}

/// Checks an answer's status and validates its body against the document.
fn check_answer(
    doc: &Value,
    method: &str,
    uri: &str,
    status: u16,
    a: Answer,
    covered: &mut Covered,
) {
    assert_eq!(a.status.as_u16(), status, "{method} {uri}: {}", a.text());
    let path = uri.split('?').next().unwrap();
    let t = template(doc, path).unwrap_or_else(|| panic!("{path} is not documented"));
    let op = &doc["paths"][t][method.to_lowercase()];
    assert!(op.is_object(), "{method} {t} is not documented");
    let response = resolve(doc, &op["responses"][status.to_string()]);
    assert!(
        response.is_object(),
        "{method} {t} {status} is not documented"
    );
    covered.insert((t.to_string(), method.to_lowercase(), status.to_string()));
    let content = response["content"].as_object().expect("content");
    let content_type = a.headers["content-type"].to_str().unwrap().to_string();
    if let Some(media) = content.get("application/json") {
        assert_eq!(content_type, "application/json", "{uri}");
        let mut errors = Vec::new();
        validate(doc, &media["schema"], &a.json(), "", &mut errors);
        assert!(
            errors.is_empty(),
            "{method} {uri}: {errors:#?}\n{}",
            a.text()
        );
    } else if content.contains_key("text/plain") {
        assert!(
            content_type.starts_with("text/plain"),
            "{uri}: {content_type}"
        );
    } else {
        assert!(content.contains_key("image/*"), "{uri}");
        assert!(content_type.starts_with("image/"), "{uri}: {content_type}");
    }
}

#[test]
fn the_validator_rejects_what_it_should() {
    let doc = document();
    let schema = serde_json::json!({"$ref": "#/components/schemas/SimilarProduct"});
    // (value, how many errors the validator must find)
    let cases = [
        (
            serde_json::json!({"name": 1, "price": null, "image": null, "product_id": 2}),
            1,
        ),
        (
            serde_json::json!({"name": null, "price": null, "image": null, "product_id": 2, "x": 1}),
            1,
        ),
        (
            serde_json::json!({"price": null, "image": null, "product_id": true}),
            2,
        ),
    ];
    for (value, expected) in cases {
        let mut e = Vec::new();
        validate(&doc, &schema, &value, "", &mut e);
        assert_eq!(e.len(), expected, "{value}: {e:?}");
    }
}
