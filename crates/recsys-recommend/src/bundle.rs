//! The artifact bundle: everything a server needs to recommend, in one checked file.
//!
//! The file format and its checks are documented on [`Bundle`].

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use recsys_core::{ContentModel, ContentParams, Interactions, Model, ModelParams, Popularity};
use recsys_features::{ExternalId, FeatureVocabulary, IdMap, ProductRecord};
use recsys_similarity::{ExactCosine, NeighbourTable};
use serde::{Deserialize, Serialize};

use crate::catalog::{ProductCatalog, ProductInfo};
use crate::error::{agree, RecommendError, Result};

/// The path named in errors about a bundle that is not (yet) a file.
const IN_MEMORY: &str = "<memory>";
use crate::new_items::NewItems;
use crate::policy::Recommender;

/// The format version this library writes and reads (3: the model as its saved record,
/// [`recsys_core::MODEL_RECORD_VERSION`], with no training-layout padding and the optimiser
/// state only on request). Files of other versions are refused with
/// [`RecommendError::UnsupportedVersion`], whose message says to re-train.
pub const FORMAT_VERSION: u32 = 3;

const MAGIC: [u8; 8] = *b"\x89RECSYS\n";
const HEADER_LEN: usize = 40;

/// Evaluation results stored with a bundle (from the held-out split of its training run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationSummary {
    /// The cut-off of the precision/recall metrics.
    pub k: usize,
    /// Mean precision@k over test users.
    pub precision_at_k: f64,
    /// Mean recall@k over test users.
    pub recall_at_k: f64,
    /// Mean AUC over test users.
    pub auc: f64,
    /// Number of users evaluated.
    pub test_users: usize,
}

impl From<&recsys_core::Metrics> for EvaluationSummary {
    /// The metrics a bundle stores of an evaluation.
    fn from(m: &recsys_core::Metrics) -> Self {
        EvaluationSummary {
            k: m.k,
            precision_at_k: m.precision_at_k,
            recall_at_k: m.recall_at_k,
            auc: m.auc,
            test_users: m.n_users,
        }
    }
}

/// Sizes of what a bundle holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleCounts {
    /// Users known to the model.
    pub users: usize,
    /// Items (products) known to the model.
    pub items: usize,
    /// Training interactions (the "seen" items).
    pub interactions: usize,
    /// User features (columns of the user feature matrix).
    pub user_features: usize,
    /// Item features.
    pub item_features: usize,
    /// Precomputed neighbours per item.
    pub neighbours_per_item: usize,
    /// Products with details in the catalogue.
    pub products_with_details: usize,
}

/// The content model a bundle adds to its model's scores ([`Recommender::with_content_prior`]):
/// its settings and weight. The content model itself is not stored: it is a function of the
/// bundle's item features, item vocabulary and seen (training) interactions, refitted on
/// load (one pass over the interactions).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ContentPriorSpec {
    /// The content model's smoothing β ([`ContentParams::smoothing`]).
    pub smoothing: f32,
    /// The content model's class-size power γ ([`ContentParams::class_size_power`]).
    pub class_size_power: f32,
    /// The weight of its scores, finite and > 0.
    pub weight: f32,
}

impl ContentPriorSpec {
    /// The content model's settings.
    pub fn params(&self) -> ContentParams {
        ContentParams {
            smoothing: self.smoothing,
            class_size_power: self.class_size_power,
        }
    }

    /// The content model of `parts`, checked: valid settings, a weight finite and > 0,
    /// item features with attribute columns.
    fn fit(
        &self,
        model: &Model,
        item_vocabulary: &FeatureVocabulary,
        seen: &Interactions,
    ) -> Result<ContentModel> {
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(recsys_core::CoreError::InvalidHyperparameter {
                name: "content weight",
                value: self.weight.to_string(),
                reason: "must be finite and > 0",
            }
            .into());
        }
        Ok(ContentModel::fit(
            model.item_features(),
            &item_vocabulary.feature_columns(),
            seen,
            self.params(),
        )?)
    }
}

/// What a bundle is, readable without decoding it (stored as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleMetadata {
    /// Format version of the file.
    pub format_version: u32,
    /// Version of the recsys library that wrote it.
    pub library_version: String,
    /// Seconds since the Unix epoch (UTC) when it was written.
    pub created_at_unix: i64,
    /// A short identifier of the model: the CRC-32 of the payload, in hex. Two bundles with
    /// the same id hold the same parts.
    pub model_id: String,
    /// Free text given by the caller (e.g. the data source and feature columns).
    pub description: Option<String>,
    /// Sizes.
    pub counts: BundleCounts,
    /// The model's family and hyper-parameters (JSON: `"family": "hybrid"` or `"als"` next
    /// to the family's parameters).
    pub hyperparameters: ModelParams,
    /// Training passes done: epochs of the hybrid model, sweeps of ALS.
    pub epochs: usize,
    /// Whether the model was saved with its optimiser state, so training can continue from
    /// it ([`crate::BundleBuilder::keep_training_state`]).
    pub training_state: bool,
    /// Evaluation on a held-out split, if the training run did one.
    pub metrics: Option<EvaluationSummary>,
    /// The content prior added to the model's scores, if any (absent from files without
    /// one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_prior: Option<ContentPriorSpec>,
}

/// The parts of a bundle, as produced by a training run.
#[derive(Debug, Clone)]
pub struct BundleParts {
    /// The trained model (embeddings, biases, hyper-parameters, feature matrices).
    pub model: Model,
    /// User ids ⇄ model user indices.
    pub users: IdMap,
    /// Product ids ⇄ model item indices.
    pub items: IdMap,
    /// The user feature vocabulary (cold start from attributes).
    pub user_vocabulary: FeatureVocabulary,
    /// The item feature vocabulary.
    pub item_vocabulary: FeatureVocabulary,
    /// Product details by item index.
    pub products: ProductCatalog,
    /// Precomputed similar items.
    pub neighbours: NeighbourTable,
    /// Interaction counts per item (the popular fallback).
    pub popularity: Popularity,
    /// Training interactions (to exclude what a user already has).
    pub seen: Interactions,
    /// Evaluation results, if any.
    pub metrics: Option<EvaluationSummary>,
    /// Free text for the metadata.
    pub description: Option<String>,
    /// Whether to save the model's optimiser state (for continued training); without it,
    /// [`Bundle::new`] drops the state.
    pub keep_training_state: bool,
    /// The content prior to add to the model's scores, if any.
    pub content_prior: Option<ContentPriorSpec>,
}

/// A loaded (or freshly assembled) bundle: the parts, checked to agree, plus an exact
/// similarity index over the model's item representations (rebuilt on load; it is cheap).
///
/// # File format (version 3)
///
/// | bytes | content |
/// |---|---|
/// | 0..8 | magic `\x89RECSYS\n` (the high byte catches 7-bit transfers, the newline text-mode ones) |
/// | 8..12 | format version, u32 little-endian |
/// | 12..16 | flags, u32: 0 (no flag is defined; any other value is refused) |
/// | 16..24 | metadata length `m`, u64 |
/// | 24..32 | payload length `p`, u64 |
/// | 32..36 | CRC-32 (IEEE) of bytes 8..32, the metadata and the payload |
/// | 36..40 | reserved: 0 (any other value is refused) |
/// | 40..40+m | metadata: UTF-8 JSON ([`BundleMetadata`]), readable without decoding the rest |
/// | 40+m..40+m+p | payload: [postcard](https://docs.rs/postcard) encoding of the parts |
///
/// The payload's parts, in order: the model (its saved record, documented with
/// [`recsys_core::MODEL_RECORD_VERSION`]: embeddings and biases without padding, the
/// optimiser state only if [`BundleMetadata::training_state`]), the user and item ids, the
/// two feature vocabularies, the product catalogue, the neighbour table, popularity and the
/// seen interactions. A golden file in the tests pins these bytes, so a change of any
/// in-memory layout cannot change the file format unnoticed.
///
/// Every header byte is checked: the magic, the version, the zero flags and reserved bytes
/// directly, the lengths against the file size, and bytes 8..32 (with the metadata and the
/// payload) by the checksum — all *before* anything is decoded.
///
/// The CRC detects accidental damage, not a file written by a faulty tool or altered with
/// its checksum recomputed, so loading then validates every decoded part in one pass
/// (`O(size)`) and returns [`RecommendError::Corrupt`] naming the part and the problem, or
/// [`RecommendError::Inconsistent`] when two parts disagree:
///
/// * the model: valid hyper-parameters; feature matrices in CSR with row pointers
///   non-decreasing and consistent with the entries, feature indices in range and increasing
///   within a row, finite weights; one parameter row per feature-matrix column with
///   `no_components` components, the row layout and optimiser state of its schedule,
///   finite parameters (see `HybridModel::validate`);
/// * the seen interactions: row pointers from 0, non-decreasing, to the number of entries;
///   items in range and strictly increasing per user (the exclusion of seen items binary
///   searches them); finite values, finite non-negative weights;
/// * the id maps: no empty or repeated id, no integer id stored as text (a bijection between
///   ids and `0..len`);
/// * vocabularies, neighbour table (item indices in range, rows in rank order, finite
///   similarities), popularity (finite counts), catalogue (finite prices);
/// * across parts: the numbers of users, items and features of the model, both id maps,
///   both vocabularies, the catalogue, the neighbour table, popularity and the seen
///   interactions; and the metadata's counts, hyper-parameters, epochs and model id.
///
/// A bundle that loads answers every query without panicking (a property test mutates
/// valid bundles, recomputes the checksum and runs every query on whatever loads). Decoding
/// only builds data: nothing is ever executed (unlike the pickle files of the original
/// system).
///
/// Files are written atomically: to a temporary file in the same folder, synced, then
/// renamed over the target, so a reader sees the old bundle or the new one, never half.
#[derive(Debug, Clone)]
pub struct Bundle {
    metadata: BundleMetadata,
    model: Model,
    users: IdMap,
    items: IdMap,
    user_vocabulary: FeatureVocabulary,
    item_vocabulary: FeatureVocabulary,
    products: ProductCatalog,
    neighbours: NeighbourTable,
    popularity: Popularity,
    seen: Interactions,
    exact: ExactCosine,
    /// The content prior's model (refitted from the parts) and weight.
    content: Option<(ContentModel, f32)>,
}

/// How an id is stored: postcard needs a tagged enum (the JSON-friendly `ExternalId`
/// serde form is untagged).
#[derive(Serialize, Deserialize)]
enum StoredId {
    Int(i64),
    Str(String),
}

fn store_ids(ids: &IdMap) -> Vec<StoredId> {
    ids.ids()
        .iter()
        .map(|id| match id {
            ExternalId::Int(v) => StoredId::Int(*v),
            ExternalId::Str(s) => StoredId::Str(s.clone()),
        })
        .collect()
}

fn restore_ids(ids: Vec<StoredId>) -> std::result::Result<IdMap, recsys_features::FeaturesError> {
    let ids: Vec<ExternalId> = ids
        .into_iter()
        .map(|id| match id {
            StoredId::Int(v) => ExternalId::Int(v),
            StoredId::Str(s) => ExternalId::Str(s),
        })
        .collect();
    IdMap::try_from(ids)
}

/// A part's own validation result as a [`RecommendError::Corrupt`] naming the part.
fn part<T, E: std::fmt::Display>(
    path: &Path,
    part: &'static str,
    checked: std::result::Result<T, E>,
) -> Result<T> {
    checked.map_err(|e| RecommendError::Corrupt {
        path: path.to_path_buf(),
        part,
        message: e.to_string(),
    })
}

#[derive(Serialize)]
struct PayloadRef<'a> {
    model: &'a Model,
    users: Vec<StoredId>,
    items: Vec<StoredId>,
    user_vocabulary: &'a FeatureVocabulary,
    item_vocabulary: &'a FeatureVocabulary,
    products: &'a ProductCatalog,
    neighbours: &'a NeighbourTable,
    popularity: &'a Popularity,
    seen: &'a Interactions,
}

/// The payload as decoded: each part already validated, or the reason it is not (postcard
/// drops the messages of errors raised inside a decode, so parts report theirs this way).
#[derive(Deserialize)]
struct Payload {
    #[serde(deserialize_with = "Model::deserialize_validated")]
    model: recsys_core::Result<Model>,
    users: Vec<StoredId>,
    items: Vec<StoredId>,
    #[serde(deserialize_with = "FeatureVocabulary::deserialize_validated")]
    user_vocabulary: recsys_features::Result<FeatureVocabulary>,
    #[serde(deserialize_with = "FeatureVocabulary::deserialize_validated")]
    item_vocabulary: recsys_features::Result<FeatureVocabulary>,
    #[serde(deserialize_with = "ProductCatalog::deserialize_validated")]
    products: std::result::Result<ProductCatalog, String>,
    #[serde(deserialize_with = "NeighbourTable::deserialize_validated")]
    neighbours: recsys_similarity::Result<NeighbourTable>,
    #[serde(deserialize_with = "Popularity::deserialize_validated")]
    popularity: recsys_core::Result<Popularity>,
    #[serde(deserialize_with = "Interactions::deserialize_validated")]
    seen: recsys_core::Result<Interactions>,
}

/// Validates each part of a training run on its own, as loading does (parts built through
/// the libraries' constructors pass; this catches e.g. a diverged model or hand-made counts
/// before a bundle that could not be loaded is written).
fn validate_parts(parts: &BundleParts) -> Result<()> {
    fn invalid<T, E: std::fmt::Display>(
        what: &'static str,
        checked: std::result::Result<T, E>,
    ) -> Result<T> {
        checked.map_err(|e| RecommendError::Invalid {
            what,
            message: e.to_string(),
        })
    }
    invalid("model", parts.model.validate())?;
    invalid("user id map", IdMap::try_from(parts.users.ids().to_vec()))?;
    invalid("item id map", IdMap::try_from(parts.items.ids().to_vec()))?;
    invalid("product catalogue", parts.products.validate())?;
    invalid("popularity", parts.popularity.validate())?;
    invalid("seen interactions", parts.seen.validate())?;
    if let Some(m) = &parts.metrics {
        // JSON has no NaN or infinity: serde_json would write null, which never parses back.
        let values = [m.precision_at_k, m.recall_at_k, m.auc];
        if values.iter().any(|v| !v.is_finite()) {
            return Err(RecommendError::Invalid {
                what: "metrics",
                message: format!("precision, recall and AUC {values:?} must be finite"),
            });
        }
    }
    Ok(())
}

/// Checks that the metadata describes these parts (`payload`: their encoding).
fn check_metadata(
    metadata: &BundleMetadata,
    parts: &BundleParts,
    payload: &[u8],
    path: &Path,
) -> Result<()> {
    let c = &metadata.counts;
    let model = &parts.model;
    agree(
        "metadata user count vs model users",
        model.n_users(),
        c.users,
    )?;
    agree(
        "metadata item count vs model items",
        model.n_items(),
        c.items,
    )?;
    agree(
        "metadata interaction count vs seen interactions",
        parts.seen.len(),
        c.interactions,
    )?;
    agree(
        "metadata user feature count vs user vocabulary",
        parts.user_vocabulary.len(),
        c.user_features,
    )?;
    agree(
        "metadata item feature count vs item vocabulary",
        parts.item_vocabulary.len(),
        c.item_features,
    )?;
    agree(
        "metadata neighbours per item vs neighbour table",
        parts.neighbours.k(),
        c.neighbours_per_item,
    )?;
    agree(
        "metadata products with details vs catalogue",
        parts.products.known(),
        c.products_with_details,
    )?;
    agree(
        "metadata epochs vs model epochs",
        model.epochs_trained(),
        metadata.epochs,
    )?;
    agree(
        "metadata training state vs model",
        usize::from(model.has_training_state()),
        usize::from(metadata.training_state),
    )?;
    let corrupt = |message: String| {
        Err(RecommendError::Corrupt {
            path: path.to_path_buf(),
            part: "metadata",
            message,
        })
    };
    if metadata.hyperparameters != model.params() {
        return corrupt(format!(
            "hyper-parameters {:?} differ from the model's {:?}",
            metadata.hyperparameters,
            model.params()
        ));
    }
    let id = format!("{:08x}", crc32fast::hash(payload));
    if metadata.model_id != id {
        return corrupt(format!(
            "model id {:?} is not the payload's checksum {id}",
            metadata.model_id
        ));
    }
    Ok(())
}

/// Checks that every part has the model's number of users and items.
fn check_parts(parts: &BundleParts) -> Result<()> {
    let (n_users, n_items) = (parts.model.n_users(), parts.model.n_items());
    agree("user id map vs model users", n_users, parts.users.len())?;
    agree("item id map vs model items", n_items, parts.items.len())?;
    agree(
        "product catalogue vs model items",
        n_items,
        parts.products.len(),
    )?;
    agree(
        "neighbour table vs model items",
        n_items,
        parts.neighbours.len(),
    )?;
    agree(
        "popularity vs model items",
        n_items,
        parts.popularity.counts().len(),
    )?;
    agree("seen interactions: users", n_users, parts.seen.n_users())?;
    agree("seen interactions: items", n_items, parts.seen.n_items())?;
    agree(
        "user vocabulary vs model user features",
        parts.model.user_features().n_features(),
        parts.user_vocabulary.len(),
    )?;
    agree(
        "item vocabulary vs model item features",
        parts.model.item_features().n_features(),
        parts.item_vocabulary.len(),
    )?;
    Ok(())
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RecommendError {
    let path = path.to_path_buf();
    move |source| RecommendError::Io {
        action,
        path,
        source,
    }
}

impl Bundle {
    /// Assembles a bundle from the parts of a training run (checked to agree).
    pub fn new(mut parts: BundleParts) -> Result<Bundle> {
        if !parts.keep_training_state {
            parts.model.drop_training_state();
        }
        validate_parts(&parts)?;
        check_parts(&parts)?;
        let metadata = BundleMetadata {
            format_version: FORMAT_VERSION,
            library_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            model_id: String::new(),
            description: parts.description.clone(),
            counts: BundleCounts {
                users: parts.model.n_users(),
                items: parts.model.n_items(),
                interactions: parts.seen.len(),
                user_features: parts.user_vocabulary.len(),
                item_features: parts.item_vocabulary.len(),
                neighbours_per_item: parts.neighbours.k(),
                products_with_details: parts.products.known(),
            },
            hyperparameters: parts.model.params(),
            epochs: parts.model.epochs_trained(),
            training_state: parts.model.has_training_state(),
            metrics: parts.metrics.clone(),
            content_prior: parts.content_prior,
        };
        let mut bundle = Bundle::assemble(metadata, parts)?;
        let payload = bundle.encode_payload(Path::new(IN_MEMORY))?;
        bundle.metadata.model_id = format!("{:08x}", crc32fast::hash(&payload));
        Ok(bundle)
    }

    fn encode_payload(&self, path: &Path) -> Result<Vec<u8>> {
        let payload = PayloadRef {
            model: &self.model,
            users: store_ids(&self.users),
            items: store_ids(&self.items),
            user_vocabulary: &self.user_vocabulary,
            item_vocabulary: &self.item_vocabulary,
            products: &self.products,
            neighbours: &self.neighbours,
            popularity: &self.popularity,
            seen: &self.seen,
        };
        postcard::to_stdvec(&payload).map_err(|e| RecommendError::Decode {
            path: path.to_path_buf(),
            section: "payload (encoding)",
            message: e.to_string(),
        })
    }

    /// The whole file as bytes (header, metadata, payload).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let here = Path::new(IN_MEMORY);
        let payload = self.encode_payload(here)?;
        let metadata =
            serde_json::to_vec_pretty(&self.metadata).map_err(|e| RecommendError::Decode {
                path: here.to_path_buf(),
                section: "metadata (encoding)",
                message: e.to_string(),
            })?;
        let mut out = Vec::with_capacity(HEADER_LEN + metadata.len() + payload.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&out[8..32]);
        crc.update(&metadata);
        crc.update(&payload);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&metadata);
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Writes the bundle to `path` atomically (temporary file in the same folder, fsync,
    /// rename). Returns the number of bytes written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<u64> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bundle".to_string());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!(".{name}.tmp-{}-{nanos}", std::process::id()));
        let write = || -> Result<()> {
            let mut file = File::create(&tmp).map_err(io_error("creating", &tmp))?;
            file.write_all(&bytes).map_err(io_error("writing", &tmp))?;
            file.sync_all().map_err(io_error("syncing", &tmp))?;
            std::fs::rename(&tmp, path).map_err(io_error("renaming into", path))?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        // Make the rename itself durable (best effort: not every platform can sync a dir).
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(bytes.len() as u64)
    }

    /// Reads and fully checks a bundle file (see [`Bundle`]'s file format).
    pub fn load(path: impl AsRef<Path>) -> Result<Bundle> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(io_error("reading", path))?;
        Bundle::from_bytes(&bytes, path)
    }

    /// Reads only the metadata of a bundle file, after checking its header and checksum.
    pub fn read_metadata(path: impl AsRef<Path>) -> Result<BundleMetadata> {
        let path = path.as_ref();
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(io_error("reading", path))?;
        let (metadata, _) = split_checked(&bytes, path)?;
        parse_metadata(metadata, path)
    }

    /// Decodes a bundle from the bytes of a file (`path` is only used in messages), checking
    /// the header, the checksum, every part and their agreement (see the
    /// [file format](Bundle#file-format-version-3)); never panics, whatever the bytes.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Bundle> {
        let (metadata, payload_bytes) = split_checked(bytes, path)?;
        let metadata = parse_metadata(metadata, path)?;
        let payload: Payload =
            postcard::from_bytes(payload_bytes).map_err(|e| RecommendError::Decode {
                path: path.to_path_buf(),
                section: "payload",
                message: e.to_string(),
            })?;
        let parts = BundleParts {
            model: part(path, "model", payload.model)?,
            users: part(path, "user id map", restore_ids(payload.users))?,
            items: part(path, "item id map", restore_ids(payload.items))?,
            user_vocabulary: part(path, "user vocabulary", payload.user_vocabulary)?,
            item_vocabulary: part(path, "item vocabulary", payload.item_vocabulary)?,
            products: part(path, "product catalogue", payload.products)?,
            neighbours: part(path, "neighbour table", payload.neighbours)?,
            popularity: part(path, "popularity", payload.popularity)?,
            seen: part(path, "seen interactions", payload.seen)?,
            metrics: metadata.metrics.clone(),
            description: metadata.description.clone(),
            keep_training_state: metadata.training_state,
            content_prior: metadata.content_prior,
        };
        check_parts(&parts)?;
        check_metadata(&metadata, &parts, payload_bytes, path)?;
        Bundle::assemble(metadata, parts)
    }

    /// The bundle of checked parts, with the exact index rebuilt from the model and the
    /// content prior's model refitted.
    fn assemble(metadata: BundleMetadata, parts: BundleParts) -> Result<Bundle> {
        let content = match parts.content_prior {
            Some(spec) => Some((
                spec.fit(&parts.model, &parts.item_vocabulary, &parts.seen)?,
                spec.weight,
            )),
            None => None,
        };
        // The half-float rows of the one-pass blend, built now rather than on a request.
        parts.model.item_representations().prepare_blend();
        Ok(Bundle {
            content,
            exact: ExactCosine::new(parts.model.item_representations().vectors()),
            metadata,
            model: parts.model,
            users: parts.users,
            items: parts.items,
            user_vocabulary: parts.user_vocabulary,
            item_vocabulary: parts.item_vocabulary,
            products: parts.products,
            neighbours: parts.neighbours,
            popularity: parts.popularity,
            seen: parts.seen,
        })
    }

    /// The metadata.
    pub fn metadata(&self) -> &BundleMetadata {
        &self.metadata
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// User ids ⇄ indices.
    pub fn users(&self) -> &IdMap {
        &self.users
    }

    /// Product ids ⇄ indices.
    pub fn items(&self) -> &IdMap {
        &self.items
    }

    /// The user feature vocabulary.
    pub fn user_vocabulary(&self) -> &FeatureVocabulary {
        &self.user_vocabulary
    }

    /// The item feature vocabulary.
    pub fn item_vocabulary(&self) -> &FeatureVocabulary {
        &self.item_vocabulary
    }

    /// Product details by item index.
    pub fn products(&self) -> &ProductCatalog {
        &self.products
    }

    /// Details of a product by id.
    pub fn product(&self, id: &ExternalId) -> Option<&ProductInfo> {
        self.products.by_id(&self.items, id)
    }

    /// The precomputed neighbour lists.
    pub fn neighbours(&self) -> &NeighbourTable {
        &self.neighbours
    }

    /// The exact cosine index over the model's item representations.
    pub fn similarity(&self) -> &ExactCosine {
        &self.exact
    }

    /// Interaction counts per item.
    pub fn popularity(&self) -> &Popularity {
        &self.popularity
    }

    /// The training interactions.
    pub fn seen(&self) -> &Interactions {
        &self.seen
    }

    /// The content prior's model and weight, if the bundle has one
    /// ([`BundleMetadata::content_prior`]).
    pub fn content_prior(&self) -> Option<(&ContentModel, f32)> {
        self.content.as_ref().map(|(c, w)| (c, *w))
    }

    /// Products of `products` this bundle's model was not trained on (added to the shop
    /// after training), represented from their attributes by the model's item features, to
    /// serve with [`Recommender::with_new_items`]: [`NewItems::new`] with this bundle's
    /// model, item id map and item vocabulary. Fails with
    /// [`RecommendError::NewItemsUnsupported`] for a model without item features.
    pub fn new_items(&self, products: impl IntoIterator<Item = ProductRecord>) -> Result<NewItems> {
        NewItems::new(&self.model, &self.items, &self.item_vocabulary, products)
    }

    /// The default policy over this bundle's parts: model (plus its content prior, if it
    /// has one) + 0.25 × exact similarity, precomputed neighbours for unknown users,
    /// popularity last, cold start from user attributes.
    pub fn recommender(&self) -> Recommender<'_> {
        Recommender::new(&self.model, &self.users, &self.items)
            .and_then(|r| r.with_similarity(&self.exact))
            .and_then(|r| r.with_model_similarity())
            .and_then(|r| r.with_neighbours(&self.neighbours))
            .and_then(|r| r.with_popularity(&self.popularity))
            .and_then(|r| r.with_seen(&self.seen))
            .map(|r| r.with_user_vocabulary(&self.user_vocabulary))
            .and_then(|r| match &self.content {
                Some((content, weight)) => r.with_content_prior(content, *weight),
                None => Ok(r),
            })
            .expect("invariant: a bundle's parts were checked to agree when it was built")
    }
}

/// Checks magic, version, lengths and checksum; returns (metadata, payload) bytes.
fn split_checked<'b>(bytes: &'b [u8], path: &Path) -> Result<(&'b [u8], &'b [u8])> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(RecommendError::NotABundle {
            path: path.to_path_buf(),
        });
    }
    if bytes.len() < HEADER_LEN {
        return Err(RecommendError::Truncated {
            path: path.to_path_buf(),
            expected: HEADER_LEN as u64,
            found: bytes.len() as u64,
        });
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let version = u32_at(8);
    if version != FORMAT_VERSION {
        return Err(RecommendError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    for (at, field) in [(12, "flags"), (36, "reserved bytes 36..40")] {
        if u32_at(at) != 0 {
            return Err(RecommendError::UnsupportedHeader {
                path: path.to_path_buf(),
                field,
                value: u32_at(at),
            });
        }
    }
    let (m, p) = (u64_at(16), u64_at(24));
    let expected = (HEADER_LEN as u64)
        .checked_add(m)
        .and_then(|x| x.checked_add(p))
        .unwrap_or(u64::MAX);
    if expected != bytes.len() as u64 {
        return Err(RecommendError::Truncated {
            path: path.to_path_buf(),
            expected,
            found: bytes.len() as u64,
        });
    }
    let recorded = u32_at(32);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&bytes[8..32]);
    crc.update(&bytes[HEADER_LEN..]);
    let found = crc.finalize();
    if found != recorded {
        return Err(RecommendError::ChecksumMismatch {
            path: path.to_path_buf(),
            expected: recorded,
            found,
        });
    }
    let body = &bytes[HEADER_LEN..];
    Ok(body.split_at(m as usize))
}

fn parse_metadata(bytes: &[u8], path: &Path) -> Result<BundleMetadata> {
    let metadata: BundleMetadata =
        serde_json::from_slice(bytes).map_err(|e| RecommendError::Decode {
            path: path.to_path_buf(),
            section: "metadata",
            message: e.to_string(),
        })?;
    if metadata.format_version != FORMAT_VERSION {
        return Err(RecommendError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: metadata.format_version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(metadata)
}
