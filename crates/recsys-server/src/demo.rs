//! The demo storefront ([`ServerConfig::demo_ui`](crate::ServerConfig::demo_ui)): a shop a
//! person can click through in a browser, built only from what the server already has.
//!
//! | route | answers |
//! |---|---|
//! | `GET /`, `GET /demo/` | the page (plain HTML; `app.js` renders it from the JSON routes) |
//! | `GET /demo/app.js`, `GET /demo/style.css`, `GET /demo/favicon.svg` | the page's script, style sheet and icon |
//! | `GET /demo/api/shop` | product and user attribute columns with their values, sample shoppers, whether images and events are available |
//! | `GET /demo/api/products?q=&column=&value=&page=&per_page=` | one page of the catalogue, most popular first, filtered by name/id text and one attribute value |
//! | `GET /demo/api/products/{product_id}` | one product with its attributes |
//! | `GET /image/generated/{product_id}.svg` | a picture drawn from the product's attributes |
//!
//! The recommendation blocks of the page call the ordinary routes
//! (`/products/{id}/similar`, `/recommendations/{user}?productId=&attr.<column>=`) and post
//! the visitor's clicks and purchases to `POST /events`, so what the page shows is what any
//! client of the server gets.
//!
//! The catalogue (names, attribute values from the bundle's item feature rows, popularity
//! order) is indexed once per model version, on the blocking pool, and swapped with the
//! model. Product attributes are the *feature* values the model was trained with: columns
//! that were not features are not shown, numeric columns are left out (their values are
//! bucket names). Pictures are SVG drawings (colour from a `colour`/`color` attribute when
//! it names a colour, otherwise from the first attribute's value; a shape per first
//! attribute value; the name's initials), so the demo never needs image files or an
//! external URL; with an image folder configured, product images from it are used instead.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use recsys_features::{ColumnKind, ExternalId, Feature, FeatureVocabulary};
use recsys_recommend::Bundle;
use serde::Serialize;

use crate::error::{clip, ApiError};
use crate::handlers::{image_url, path_param};
use crate::query::{parse_id, QueryParams};
use crate::state::AppState;

const INDEX_HTML: &str = include_str!("demo/index.html");
const APP_JS: &str = include_str!("demo/app.js");
const STYLE_CSS: &str = include_str!("demo/style.css");

/// Most products on one catalogue page.
pub const MAX_PER_PAGE: usize = 100;
/// Values listed per attribute column in `/demo/api/shop` (the most frequent first).
pub const MAX_FACET_VALUES: usize = 500;
/// Known shoppers offered by the user switcher (the most active first).
pub const SAMPLE_USERS: usize = 12;
/// Longest search text accepted (characters).
const MAX_QUERY_CHARS: usize = 200;

/// Content-Security-Policy of the page: everything from this server, nothing inline.
const CSP: &str = "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The routes of the storefront (merged into the router when `demo_ui` is on).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/demo/", get(page))
        .route("/demo/app.js", get(script))
        .route("/demo/style.css", get(style))
        .route("/demo/favicon.svg", get(favicon))
        .route("/demo/api/shop", get(shop))
        .route("/demo/api/products", get(products))
        .route("/demo/api/products/{product_id}", get(product))
        .route("/image/generated/{file}", get(generated_image))
        .layer(Extension(Arc::new(CatalogCache::default())))
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        APP_JS,
    )
        .into_response()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        STYLE_CSS,
    )
        .into_response()
}

async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">"##,
            r##"<rect width="32" height="32" rx="7" fill="#1f5fa8"/>"##,
            r##"<path d="M9 23V9h8a4 4 0 0 1 0 8h-8m6 0 6 6" stroke="#fff" stroke-width="3" fill="none"/></svg>"##
        ),
    )
        .into_response()
}

/// One attribute column and its values with the number of products (or users) per value.
#[derive(Debug, Clone, Serialize)]
struct Facet {
    name: String,
    values: Vec<FacetValue>,
}

#[derive(Debug, Clone, Serialize)]
struct FacetValue {
    value: String,
    count: usize,
}

/// The catalogue of one model version, indexed for the page.
struct Catalog {
    model_id: String,
    /// Item indices, most popular first (ties by index).
    order: Vec<u32>,
    /// Per item: lower-case name and id, searched by `q`.
    search: Vec<String>,
    /// Per item: `(column index into item_columns, value index into its values)`.
    attributes: Vec<Vec<(u16, u32)>>,
    item_columns: Vec<Facet>,
    user_columns: Vec<Facet>,
    users: Vec<ExternalId>,
}

/// The last catalogue built, replaced when the model version changes. The lock is held
/// while a catalogue is built, so requests arriving meanwhile wait for that one build
/// instead of starting their own.
#[derive(Default)]
struct CatalogCache {
    current: tokio::sync::Mutex<Option<Arc<Catalog>>>,
}

impl CatalogCache {
    async fn get(&self, state: &AppState) -> Result<(Arc<Bundle>, Arc<Catalog>), ApiError> {
        let bundle = state.bundle();
        let model_id = &bundle.metadata().model_id;
        let mut current = self.current.lock().await;
        if let Some(catalog) = current.as_ref() {
            if &catalog.model_id == model_id {
                return Ok((bundle, Arc::clone(catalog)));
            }
        }
        let for_build = Arc::clone(&bundle);
        let catalog = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let catalog = Catalog::build(&for_build);
            tracing::info!(
                model_version = %catalog.model_id,
                products = catalog.search.len(),
                seconds = started.elapsed().as_secs_f64(),
                "demo storefront: catalogue indexed"
            );
            Arc::new(catalog)
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "demo catalogue task failed");
            ApiError::internal("the catalogue could not be indexed")
        })?;
        *current = Some(Arc::clone(&catalog));
        Ok((bundle, catalog))
    }
}

/// Per feature index: `(column, value)` for categorical and multi-valued column values.
fn shown_features(vocabulary: &FeatureVocabulary) -> Vec<Option<(usize, &str)>> {
    let columns = &vocabulary.spec().columns;
    vocabulary
        .features()
        .iter()
        .map(|feature| match feature {
            Feature::Value(c, value) => match columns.get(*c).map(|column| &column.kind) {
                Some(ColumnKind::Numeric(_)) | None => None,
                Some(_) => Some((*c, value.as_str())),
            },
            Feature::Identity(_) => None,
        })
        .collect()
}

/// `(vocabulary column, value)` → `(facet column, value position)`.
type FacetPositions = HashMap<(usize, String), (u16, u32)>;

/// Columns with at least one shown value, values by descending count then text.
fn facets(
    vocabulary: &FeatureVocabulary,
    counts: &HashMap<(usize, &str), usize>,
) -> (Vec<Facet>, FacetPositions) {
    let mut by_column: Vec<Vec<FacetValue>> = vec![Vec::new(); vocabulary.spec().columns.len()];
    for (&(c, value), &count) in counts {
        by_column[c].push(FacetValue {
            value: value.to_string(),
            count,
        });
    }
    let mut out = Vec::new();
    let mut position = HashMap::new();
    for (c, mut values) in by_column.into_iter().enumerate() {
        if values.is_empty() {
            continue;
        }
        values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        let column = out.len() as u16;
        for (v, value) in values.iter().enumerate() {
            position.insert((c, value.value.clone()), (column, v as u32));
        }
        out.push(Facet {
            name: vocabulary.spec().columns[c].name.clone(),
            values,
        });
    }
    (out, position)
}

impl Catalog {
    fn build(bundle: &Bundle) -> Catalog {
        let model = bundle.model();
        let n_items = bundle.items().len();

        let item_vocabulary = bundle.item_vocabulary();
        let shown = shown_features(item_vocabulary);
        let item_matrix = model.item_features();
        let mut counts: HashMap<(usize, &str), usize> = HashMap::new();
        for i in 0..n_items {
            for &f in item_matrix.row(i).0 {
                if let Some(Some(key)) = shown.get(f) {
                    *counts.entry(*key).or_default() += 1;
                }
            }
        }
        let (mut item_columns, position) = facets(item_vocabulary, &counts);
        let attributes = (0..n_items)
            .map(|i| {
                let mut row: Vec<(u16, u32)> = item_matrix
                    .row(i)
                    .0
                    .iter()
                    .filter_map(|&f| shown.get(f).copied().flatten())
                    .filter_map(|(c, value)| position.get(&(c, value.to_string())).copied())
                    .collect();
                row.sort_unstable();
                row
            })
            .collect();
        for facet in &mut item_columns {
            facet.values.truncate(MAX_FACET_VALUES);
        }

        let user_vocabulary = bundle.user_vocabulary();
        let user_shown = shown_features(user_vocabulary);
        let user_matrix = model.user_features();
        let mut user_counts: HashMap<(usize, &str), usize> = HashMap::new();
        for u in 0..bundle.users().len() {
            for &f in user_matrix.row(u).0 {
                if let Some(Some(key)) = user_shown.get(f) {
                    *user_counts.entry(*key).or_default() += 1;
                }
            }
        }
        let (mut user_columns, _) = facets(user_vocabulary, &user_counts);
        for facet in &mut user_columns {
            facet.values.truncate(MAX_FACET_VALUES);
        }

        let popularity = bundle.popularity().counts();
        let mut order: Vec<u32> = (0..n_items as u32).collect();
        order.sort_by(|&a, &b| {
            let count = |i: u32| popularity.get(i as usize).copied().unwrap_or_default();
            count(b).total_cmp(&count(a)).then(a.cmp(&b))
        });
        let search = (0..n_items)
            .map(|i| {
                let name = bundle
                    .products()
                    .get(i)
                    .and_then(|p| p.name.as_deref())
                    .unwrap_or_default();
                let id = bundle
                    .items()
                    .id(i)
                    .map(ExternalId::to_string)
                    .unwrap_or_default();
                format!("{} {}", name.to_lowercase(), id.to_lowercase())
            })
            .collect();

        let seen = bundle.seen();
        let mut users: Vec<usize> = (0..seen.n_users()).collect();
        users.sort_by(|&a, &b| {
            seen.user_items(b)
                .len()
                .cmp(&seen.user_items(a).len())
                .then(a.cmp(&b))
        });
        let users = users
            .into_iter()
            .take(SAMPLE_USERS)
            .filter_map(|u| bundle.users().id(u).cloned())
            .collect();

        Catalog {
            model_id: bundle.metadata().model_id.clone(),
            order,
            search,
            attributes,
            item_columns,
            user_columns,
            users,
        }
    }

    /// The item's shown attributes as `(column name, value)`.
    fn attributes_of(&self, item: usize) -> Vec<(&str, &str)> {
        self.attributes
            .get(item)
            .map(|row| {
                row.iter()
                    .map(|&(c, v)| {
                        let facet = &self.item_columns[c as usize];
                        let value = facet
                            .values
                            .get(v as usize)
                            .map_or("", |value| value.value.as_str());
                        (facet.name.as_str(), value)
                    })
                    .filter(|(_, value)| !value.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Percent-encodes a path segment.
fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The picture URL the page uses for a product: its image from the image folder when one
/// is configured and the product names a file, else the generated drawing.
fn picture_url(state: &AppState, id: &ExternalId, image: Option<&str>) -> String {
    match image {
        Some(file) if state.config().image_dir.is_some() => image_url(file),
        _ => format!("/image/generated/{}.svg", encode_segment(&id.to_string())),
    }
}

#[derive(Serialize)]
struct ShopInfo<'a> {
    model_version: &'a str,
    products: usize,
    images: bool,
    events: bool,
    item_columns: &'a [Facet],
    user_columns: &'a [Facet],
    users: &'a [ExternalId],
}

/// `GET /demo/api/shop`.
async fn shop(
    State(state): State<AppState>,
    Extension(cache): Extension<Arc<CatalogCache>>,
) -> Result<Response, ApiError> {
    let (bundle, catalog) = cache.get(&state).await?;
    Ok(Json(ShopInfo {
        model_version: &catalog.model_id,
        products: bundle.items().len(),
        images: state.config().image_dir.is_some(),
        events: state.events().is_some(),
        item_columns: &catalog.item_columns,
        user_columns: &catalog.user_columns,
        users: &catalog.users,
    })
    .into_response())
}

#[derive(Serialize)]
struct CatalogItem {
    product_id: ExternalId,
    name: Option<String>,
    price: Option<f64>,
    picture: String,
    /// The value of the first attribute column (the page shows it as the category).
    category: Option<String>,
}

#[derive(Serialize)]
struct CatalogPage {
    total: usize,
    page: usize,
    per_page: usize,
    pages: usize,
    items: Vec<CatalogItem>,
}

fn positive(q: &QueryParams, key: &str, default: usize, max: usize) -> Result<usize, ApiError> {
    match q.last(key) {
        None | Some("") => Ok(default),
        Some(text) => match text.trim().parse::<usize>() {
            Ok(v) if (1..=max).contains(&v) => Ok(v),
            _ => Err(ApiError::bad_param(
                key,
                format!(
                    "{key} must be an integer from 1 to {max}, got {:?}",
                    clip(text)
                ),
            )),
        },
    }
}

/// `GET /demo/api/products?q=&column=&value=&page=&per_page=`.
async fn products(
    State(state): State<AppState>,
    Extension(cache): Extension<Arc<CatalogCache>>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = QueryParams::parse(raw.as_deref());
    let per_page = positive(&q, "per_page", 24, MAX_PER_PAGE)?;
    let page = positive(&q, "page", 1, usize::MAX)?;
    let text = q
        .last("q")
        .map(|t| t.trim().to_lowercase())
        .unwrap_or_default();
    if text.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::bad_param(
            "q",
            format!("q is longer than {MAX_QUERY_CHARS} characters"),
        ));
    }
    let (bundle, catalog) = cache.get(&state).await?;
    let filter = match (q.last("column"), q.last("value")) {
        (Some(column), Some(value)) if !column.is_empty() && !value.is_empty() => {
            let c = catalog
                .item_columns
                .iter()
                .position(|f| f.name == column)
                .ok_or_else(|| {
                    ApiError::bad_param(
                        "column",
                        format!("no product attribute column {:?}", clip(column)),
                    )
                })?;
            // An unknown value matches nothing (an empty page), like a search without hits.
            let v = catalog.item_columns[c]
                .values
                .iter()
                .position(|v| v.value == value);
            Some((c as u16, v.map(|v| v as u32)))
        }
        (Some(column), None) if !column.is_empty() => {
            return Err(ApiError::bad_param("value", "column needs a value"));
        }
        _ => None,
    };
    let matches = |&item: &u32| {
        let i = item as usize;
        let text_ok = text.is_empty() || catalog.search[i].contains(text.as_str());
        let filter_ok = match filter {
            None => true,
            Some((_, None)) => false,
            Some((c, Some(v))) => catalog.attributes[i].binary_search(&(c, v)).is_ok(),
        };
        text_ok && filter_ok
    };
    let hits: Vec<u32> = catalog.order.iter().copied().filter(matches).collect();
    let total = hits.len();
    let start = (page - 1).saturating_mul(per_page);
    let items = hits
        .iter()
        .skip(start)
        .take(per_page)
        .filter_map(|&i| {
            let i = i as usize;
            let id = bundle.items().id(i)?.clone();
            let info = bundle.products().get(i);
            Some(CatalogItem {
                picture: picture_url(&state, &id, info.and_then(|p| p.image.as_deref())),
                name: info.and_then(|p| p.name.clone()),
                price: info.and_then(|p| p.price),
                category: catalog.attributes_of(i).first().map(|(_, v)| v.to_string()),
                product_id: id,
            })
        })
        .collect();
    Ok(Json(CatalogPage {
        total,
        page,
        per_page,
        pages: total.div_ceil(per_page),
        items,
    })
    .into_response())
}

#[derive(Serialize)]
struct ProductPage {
    product_id: ExternalId,
    name: Option<String>,
    price: Option<f64>,
    picture: String,
    attributes: Vec<Attribute>,
    /// Interactions in the training data.
    popularity: f64,
}

#[derive(Serialize)]
struct Attribute {
    column: String,
    value: String,
}

/// `GET /demo/api/products/{product_id}`.
async fn product(
    State(state): State<AppState>,
    Extension(cache): Extension<Arc<CatalogCache>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_param("product_id", path, &state)?;
    let (bundle, catalog) = cache.get(&state).await?;
    let Some(item) = bundle.items().index(&id) else {
        return Err(ApiError::not_found(format!(
            "the model does not know product {}",
            clip(&id.to_string())
        )));
    };
    let info = bundle.products().get(item);
    Ok(Json(ProductPage {
        picture: picture_url(&state, &id, info.and_then(|p| p.image.as_deref())),
        name: info.and_then(|p| p.name.clone()),
        price: info.and_then(|p| p.price),
        attributes: catalog
            .attributes_of(item)
            .into_iter()
            .map(|(column, value)| Attribute {
                column: column.to_string(),
                value: value.to_string(),
            })
            .collect(),
        popularity: f64::from(
            bundle
                .popularity()
                .counts()
                .get(item)
                .copied()
                .unwrap_or_default(),
        ),
        product_id: id,
    })
    .into_response())
}

/// `GET /image/generated/{product_id}.svg`.
async fn generated_image(
    State(state): State<AppState>,
    Extension(cache): Extension<Arc<CatalogCache>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(file) = path.map_err(|e| ApiError::bad_param("file", clip(&e.body_text())))?;
    let Some(stem) = file.strip_suffix(".svg") else {
        return Err(ApiError::not_found(
            "generated pictures are <product_id>.svg",
        ));
    };
    let id = parse_id("file", stem, state.config())?
        .ok_or_else(|| ApiError::bad_param("file", "the product id must not be blank"))?;
    let (bundle, catalog) = cache.get(&state).await?;
    let Some(item) = bundle.items().index(&id) else {
        return Err(ApiError::not_found(format!(
            "the model does not know product {}",
            clip(&id.to_string())
        )));
    };
    let name = bundle
        .products()
        .get(item)
        .and_then(|p| p.name.clone())
        .unwrap_or_else(|| id.to_string());
    let svg = picture_svg(&name, &catalog.attributes_of(item));
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // An SVG opened on its own must not run anything.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
        ],
        svg,
    )
        .into_response())
}

/// FNV-1a: a stable hash for picking colours and shapes (the same across runs and
/// platforms, unlike `std`'s hasher).
fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// CSS colours for the colour names a shop is likely to use.
fn named_colour(value: &str) -> Option<&'static str> {
    let colour = match value.trim().to_ascii_lowercase().as_str() {
        "black" => "#2b2b2b",
        "white" => "#e8e4da",
        "grey" | "gray" => "#8a8d91",
        "red" => "#c0392b",
        "blue" => "#2e6db4",
        "navy" => "#1f3a68",
        "green" => "#2f8a4c",
        "yellow" => "#e0b422",
        "orange" => "#e07b22",
        "pink" => "#e07aa5",
        "purple" => "#7d4fa6",
        "brown" => "#7a5230",
        "beige" => "#cdb891",
        "silver" => "#b4b8bd",
        "gold" => "#c9a23f",
        _ => return None,
    };
    Some(colour)
}

fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A 240×240 SVG: background colour from the colour attribute or the first attribute
/// value, a shape per first attribute value, the name's initials and the first value.
fn picture_svg(name: &str, attributes: &[(&str, &str)]) -> String {
    let first = attributes.first().map_or("", |(_, v)| *v);
    let colour_attribute = attributes
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case("colour") || c.eq_ignore_ascii_case("color"))
        .and_then(|(_, v)| named_colour(v));
    let key = stable_hash(first);
    let background = match colour_attribute {
        Some(colour) => colour.to_string(),
        None => format!("hsl({}, 45%, 42%)", key % 360),
    };
    // Dark text on the light named colours, white on everything else.
    let light = matches!(
        colour_attribute,
        Some("#e8e4da" | "#cdb891" | "#b4b8bd" | "#e0b422" | "#c9a23f")
    );
    let ink = if light { "#1d2327" } else { "#ffffff" };
    let accent = format!("hsl({}, 70%, 85%)", (key / 360) % 360);
    let shape = match (key / 7) % 4 {
        0 => r#"<circle cx="120" cy="104" r="62""#.to_string(),
        1 => r#"<rect x="62" y="46" width="116" height="116" rx="18""#.to_string(),
        2 => r#"<polygon points="120,38 186,160 54,160""#.to_string(),
        _ => r#"<polygon points="120,40 180,104 120,168 60,104""#.to_string(),
    };
    let initials: String = name
        .split_whitespace()
        .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    let label: String = first.chars().take(24).collect();
    format!(
        concat!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="240" height="240" viewBox="0 0 240 240" role="img" aria-label="{name}">"##,
            r##"<rect width="240" height="240" fill="{background}"/>"##,
            r##"{shape} fill="{accent}" fill-opacity="0.35"/>"##,
            r##"<text x="120" y="122" font-family="sans-serif" font-size="52" font-weight="700" text-anchor="middle" fill="{ink}">{initials}</text>"##,
            r##"<text x="120" y="214" font-family="sans-serif" font-size="15" text-anchor="middle" fill="{ink}" fill-opacity="0.9">{label}</text>"##,
            "</svg>"
        ),
        name = escape_xml(name),
        background = background,
        shape = shape,
        accent = accent,
        ink = ink,
        initials = escape_xml(&initials),
        label = escape_xml(&label),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_escape_text_and_follow_the_colour_attribute() {
        let svg = picture_svg(
            "Red <b>\"Wool\"</b> & Co",
            &[("category", "coats"), ("colour", "red")],
        );
        assert!(svg.starts_with("<svg "), "{svg}");
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(svg.contains("&lt;b&gt;"), "{svg}");
        assert!(svg.contains("fill=\"#c0392b\""), "{svg}");
        assert!(svg.contains(">RB<"), "initials: {svg}");
        // Without a colour attribute, the colour follows the first value, stably.
        let a = picture_svg("A", &[("category", "coats")]);
        let b = picture_svg("B", &[("category", "coats")]);
        let c = picture_svg("C", &[("category", "shoes")]);
        let fill = |s: &str| s.split("fill=\"").nth(1).map(|t| t[..10].to_string());
        assert_eq!(fill(&a), fill(&b));
        assert_ne!(fill(&a), fill(&c));
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_segment("P-1.x_~"), "P-1.x_~");
    }
}
