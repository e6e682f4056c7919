//! The route handlers.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use recsys_features::{Attributes, ExternalId};
use recsys_recommend::{Bundle, NewItems, ProductInfo, Recommendations, Request, Strategy};
use serde::Serialize;

use crate::details::DatabaseState;
use crate::error::{clip, ApiError};
use crate::events::now_ms;
use crate::query::{parse_id, QueryParams};
use crate::state::{AppState, Serving};

/// Response header naming the model version that answered.
pub const MODEL_HEADER: &str = "x-recsys-model";
/// Response header naming the strategy that produced the list.
pub const STRATEGY_HEADER: &str = "x-recsys-strategy";
/// Response header present (value `database`) when details came from the bundle because
/// the database is down.
pub const DEGRADED_HEADER: &str = "x-recsys-degraded";

/// One item of `/similar-products`: the seed's contract.
#[derive(Debug, Clone, Serialize)]
pub struct SimilarProduct {
    /// Product name (null when unknown).
    pub name: Option<String>,
    /// Price (null when unknown; never NaN).
    pub price: Option<f64>,
    /// `/image/<file>` (null when the product has no image).
    pub image: Option<String>,
    /// The product id (a number for integer ids, else a string).
    pub product_id: ExternalId,
}

/// One item of `/recommendations/{user_id}` and `/products/{product_id}/similar`.
#[derive(Debug, Clone, Serialize)]
pub struct RecommendedItem {
    /// The product id.
    pub product_id: ExternalId,
    /// Product name (null when unknown).
    pub name: Option<String>,
    /// Price (null when unknown).
    pub price: Option<f64>,
    /// `/image/<file>` or null.
    pub image: Option<String>,
    /// The ranking score (null if not finite).
    pub score: Option<f32>,
    /// Why: `model`, `model+similar-to-X`, `similar-to-X`, `popular`,
    /// `cold-start-features`, `cold-start-features+similar-to-X`, `recent-activity`,
    /// `recent-activity+similar-to-X`; followed by `+new-product` for a product added after
    /// training.
    pub reason: String,
}

/// The body of `/recommendations/{user_id}` and `/products/{product_id}/similar`.
#[derive(Debug, Clone, Serialize)]
pub struct RecommendationList {
    /// The user asked for (recommendations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<ExternalId>,
    /// The product viewed / compared with, if any.
    pub product_id: Option<ExternalId>,
    /// The path that produced the list.
    pub strategy: Strategy,
    /// The model version (bundle `model_id`).
    pub model_version: String,
    /// True when details came from the bundle because the database is down.
    pub degraded: bool,
    /// Things to know (unknown ids, short lists…): `{kind, …, message}`.
    pub notes: Vec<serde_json::Value>,
    /// The items, best first.
    pub items: Vec<RecommendedItem>,
}

/// Characters kept as they are in an image URL path (unreserved, plus `/`).
fn url_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/')
}

/// `/image/<file>` with the file name percent-encoded where needed.
pub fn image_url(file: &str) -> String {
    let mut out = String::with_capacity(7 + file.len());
    out.push_str("/image/");
    for &b in file.as_bytes() {
        if url_path_char(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What one recommendation call needs, owned (it runs on another thread).
struct Ask {
    n: usize,
    user: Option<ExternalId>,
    product: Option<ExternalId>,
    exclude: Vec<ExternalId>,
    attributes: Attributes,
    /// The user's live events (products since the model was trained), oldest first.
    recent: Vec<ExternalId>,
}

fn recommend(
    serving: &Serving,
    new_items: Option<&NewItems>,
    ask: &Ask,
) -> recsys_recommend::Result<Recommendations> {
    let mut request = Request::new(ask.n)
        .exclude(&ask.exclude)
        .recent(&ask.recent);
    if let Some(user) = &ask.user {
        request = request.user(user);
    }
    if let Some(product) = &ask.product {
        request = request.product(product);
    }
    if !ask.attributes.is_empty() {
        request = request.user_attributes(&ask.attributes);
    }
    let mut recommender = serving.bundle.recommender();
    if let Some(fold_in) = &serving.fold_in {
        recommender = recommender.with_fold_in(fold_in);
    }
    if let Some(new_items) = new_items {
        recommender = recommender.with_new_items(new_items)?;
    }
    recommender.recommend(&request)
}

/// Runs the policy per the compute setting and fetches the details of the result.
async fn answer(
    state: &AppState,
    mut ask: Ask,
) -> Result<(Arc<Bundle>, Recommendations, Vec<ProductInfo>, bool), ApiError> {
    if let Some(user) = &ask.user {
        ask.recent = state.live().recent(user, now_ms());
    }
    let serving = state.serving();
    let bundle = Arc::clone(&serving.bundle);
    // Loaded once: the products added after training that this request sees.
    let new_items = serving.new_items();
    let for_work = (serving, new_items.clone());
    let recs = state
        .compute(move || recommend(&for_work.0, for_work.1.as_deref(), &ask))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "recommendation task failed");
            ApiError::internal("the recommendation could not be computed")
        })?
        .map_err(|e| {
            tracing::error!(error = %e, "recommendation failed");
            ApiError::internal("the recommendation could not be computed")
        })?;
    let ids: Vec<ExternalId> = recs.items.iter().map(|r| r.product_id.clone()).collect();
    let lookup = state
        .details()
        .lookup(&ids, &bundle, new_items.as_deref())
        .await;
    if lookup.degraded {
        state
            .metrics()
            .degraded_responses
            .fetch_add(1, Ordering::Relaxed);
    }
    Ok((bundle, recs, lookup.details, lookup.degraded))
}

fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(name), v);
    }
}

fn annotate(response: &mut Response, bundle: &Bundle, strategy: Strategy, degraded: bool) {
    set_header(response, MODEL_HEADER, &bundle.metadata().model_id);
    let strategy = serde_json::to_value(strategy)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    set_header(response, STRATEGY_HEADER, &strategy);
    if degraded {
        set_header(response, DEGRADED_HEADER, "database");
    }
}

/// `GET /similar-products?productId=&userId=&n=` — the seed's contract: a JSON list of
/// `{name, price, image, product_id}`, best first.
pub async fn similar_products(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let config = state.config();
    let q = QueryParams::parse(raw.as_deref());
    let ask = Ask {
        n: q.n(config)?,
        user: q.id("userId", config)?,
        product: q.id("productId", config)?,
        exclude: Vec::new(),
        attributes: Attributes::new(),
        recent: Vec::new(),
    };
    let (bundle, recs, details, degraded) = answer(&state, ask).await?;
    let body: Vec<SimilarProduct> = recs
        .items
        .iter()
        .zip(details)
        .map(|(r, d)| SimilarProduct {
            name: d.name,
            price: d.price,
            image: d.image.as_deref().map(image_url),
            product_id: r.product_id.clone(),
        })
        .collect();
    let mut response = Json(body).into_response();
    annotate(&mut response, &bundle, recs.strategy, degraded);
    Ok(response)
}

fn note_values(recs: &Recommendations) -> Vec<serde_json::Value> {
    recs.notes
        .iter()
        .map(|note| {
            let mut value = serde_json::to_value(note).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("message".into(), note.to_string().into());
            }
            value
        })
        .collect()
}

fn items(recs: &Recommendations, details: Vec<ProductInfo>) -> Vec<RecommendedItem> {
    recs.items
        .iter()
        .zip(details)
        .map(|(r, d)| RecommendedItem {
            product_id: r.product_id.clone(),
            name: d.name,
            price: d.price,
            image: d.image.as_deref().map(image_url),
            score: Some(r.score).filter(|s| s.is_finite()),
            reason: r.reason.to_string(),
        })
        .collect()
}

pub(crate) fn path_param(
    name: &str,
    path: Result<Path<String>, PathRejection>,
    state: &AppState,
) -> Result<ExternalId, ApiError> {
    let Path(text) = path.map_err(|e| ApiError::bad_param(name, clip(&e.body_text())))?;
    parse_id(name, &text, state.config())?
        .ok_or_else(|| ApiError::bad_param(name, format!("{name} must not be blank")))
}

/// `GET /recommendations/{user_id}?n=&exclude=&productId=&attr.<column>=` — personalised
/// list with reason and score per item; attributes serve a user unknown to the model.
pub async fn recommendations(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let user = path_param("user_id", path, &state)?;
    let config = state.config();
    let q = QueryParams::parse(raw.as_deref());
    let product = q.id("productId", config)?;
    let ask = Ask {
        n: q.n(config)?,
        user: Some(user.clone()),
        product: product.clone(),
        exclude: q.exclude(config)?,
        attributes: q.attributes(config)?,
        recent: Vec::new(),
    };
    let (bundle, recs, details, degraded) = answer(&state, ask).await?;
    let body = RecommendationList {
        user_id: Some(user),
        product_id: product,
        strategy: recs.strategy,
        model_version: bundle.metadata().model_id.clone(),
        degraded,
        notes: note_values(&recs),
        items: items(&recs, details),
    };
    let mut response = Json(body).into_response();
    annotate(&mut response, &bundle, recs.strategy, degraded);
    Ok(response)
}

/// `GET /products/{product_id}/similar?n=` — item-to-item: the most similar products.
/// 404 when the product is neither the model's nor one added after training that is served.
pub async fn similar_to_product(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let product = path_param("product_id", path, &state)?;
    let q = QueryParams::parse(raw.as_deref());
    let n = q.n(state.config())?;
    let serving = state.serving();
    let known = serving.bundle.items().index(&product).is_some()
        || serving
            .new_items()
            .is_some_and(|x| x.index(&product).is_some());
    drop(serving);
    if !known {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_product",
            format!(
                "product {} is not known to the model",
                clip(&product.to_string())
            ),
        ));
    }
    let ask = Ask {
        n,
        user: None,
        product: Some(product.clone()),
        exclude: Vec::new(),
        attributes: Attributes::new(),
        recent: Vec::new(),
    };
    let (bundle, recs, details, degraded) = answer(&state, ask).await?;
    let body = RecommendationList {
        user_id: None,
        product_id: Some(product),
        strategy: recs.strategy,
        model_version: bundle.metadata().model_id.clone(),
        degraded,
        notes: note_values(&recs),
        items: items(&recs, details),
    };
    let mut response = Json(body).into_response();
    annotate(&mut response, &bundle, recs.strategy, degraded);
    Ok(response)
}

/// `GET /health` — the process is alive.
pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The body of `/ready`.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// `ready`, or `degraded` while the database is down.
    pub status: &'static str,
    /// Always true once the server runs (it does not start without a bundle).
    pub model_loaded: bool,
    /// The model version (bundle `model_id`).
    pub model_version: String,
    /// When the bundle was written (Unix seconds).
    pub model_created_at_unix: i64,
    /// When this server loaded it (Unix seconds).
    pub loaded_at_unix: i64,
    /// Users known to the model.
    pub users: usize,
    /// Items known to the model.
    pub items: usize,
    /// Products the model was not trained on (added to the database after training),
    /// served from their attributes.
    pub new_products: usize,
    /// `up`, `down` or `not-configured`.
    pub database: &'static str,
    /// True while the database is down (details from the bundle).
    pub degraded: bool,
    /// Where the serving model came from: a file, the store (published id and time), or
    /// memory.
    pub model_source: crate::state::ModelOrigin,
    /// The last published model this server refused to load since the serving model was
    /// swapped in, if any (the model above kept serving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_model: Option<crate::state::RefusedModel>,
    /// The last failed attempt to read the published-model pointer or download the model
    /// it names, while no poll has succeeded since (retried at every poll).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_error: Option<crate::state::FollowError>,
}

/// `GET /ready` — model loaded, database state, model version. 200 whenever a model is
/// loaded (the server can answer, degraded or not).
pub async fn ready(State(state): State<AppState>) -> Json<Readiness> {
    let serving = state.serving();
    let bundle = Arc::clone(&serving.bundle);
    let database = state.details().state();
    let degraded = database == DatabaseState::Down;
    Json(Readiness {
        status: if degraded { "degraded" } else { "ready" },
        model_loaded: true,
        model_version: bundle.metadata().model_id.clone(),
        model_created_at_unix: bundle.metadata().created_at_unix,
        loaded_at_unix: state.loaded_at_unix(),
        users: bundle.users().len(),
        items: bundle.items().len(),
        new_products: serving.new_items().map_or(0, |x| x.len()),
        database: database.as_str(),
        degraded,
        model_source: state.origin(),
        refused_model: state.refused(),
        follow_error: state.follow_error(),
    })
}

/// `GET /metrics` — Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&state),
    )
        .into_response()
}

/// Compares two byte strings in time that depends only on their lengths, not on where
/// they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// 401 unless the request carries `Authorization: Bearer <admin token>` (when a token is
/// configured).
fn authorise_admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.config().admin_token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or(b"");
    if constant_time_eq(given, token.as_bytes()) {
        return Ok(());
    }
    tracing::warn!("admin request refused: missing or wrong bearer token");
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this route needs the admin token: Authorization: Bearer <token>",
    ))
}

/// `POST /admin/reload` (only with [`ServerConfig::admin_routes`](crate::ServerConfig)):
/// reloads the bundle file; 200 with the new version, 401 without the admin token (when
/// one is configured), or 422 while the old one keeps serving. The 422 body names no file
/// system path (the log has the details).
pub async fn reload(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorise_admin(&state, &headers)?;
    match state.reload().await {
        Ok(outcome) => Ok(Json(outcome).into_response()),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reload_refused",
            format!(
                "{}; model {} keeps serving",
                e.public_message(),
                state.bundle().metadata().model_id
            ),
        )),
    }
}

/// Unknown routes: 404 with a JSON body (the path is echoed clipped).
pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        clip(method.as_str()),
        clip(uri.path())
    ))
}

/// Known route, wrong method: 405 with a JSON body.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            clip(method.as_str()),
            clip(uri.path())
        ),
    )
}
