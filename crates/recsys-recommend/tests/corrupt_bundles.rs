//! Bundles with a valid checksum but damaged or inconsistent contents: loading either refuses
//! them or gives a bundle on which every public query runs; nothing ever panics.
//!
//! The checksum only guards against accidental damage, so these tests recompute it after
//! every mutation. Besides raw byte damage, the payload is decoded into a plain mirror of its
//! wire format (`Raw*` below: no validation, every field reachable), one field is changed
//! — an index pointer, an index, a length, an id, a float — and it is encoded again.
//!
//! `cargo test -p recsys-recommend --test corrupt_bundles -- --nocapture` prints how many
//! mutated bundles were refused and how many loaded; `PROPTEST_CASES=10000` runs more.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::world;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use recsys_core::{AlsSolver, FoldIn, FoldInOptions, Loss, Schedule, Scorer, UserQuery};
use recsys_features::{Attributes, ExternalId, Feature, FeatureSpec};
use recsys_recommend::{Bundle, ProductInfo, RecommendError, Request};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------
// A plain mirror of the payload's wire format (postcard: fields in declaration order).

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawPayload {
    model: RawFamily,
    users: Vec<RawId>,
    items: Vec<RawId>,
    user_vocabulary: RawVocabulary,
    item_vocabulary: RawVocabulary,
    products: Vec<ProductInfo>,
    neighbours: RawTable,
    popularity: Vec<f32>,
    seen: RawInteractions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum RawId {
    Int(i64),
    Str(String),
}

/// The model's family tag, then its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // a mirror of the wire format, built a few times per test
enum RawFamily {
    Hybrid(RawModel),
    Als(RawAls),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawAls {
    version: u32,
    params: RawAlsParams,
    user_features: RawMatrix,
    item_features: RawMatrix,
    user_embeddings: Floats,
    item_embeddings: Floats,
    iterations_trained: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawAlsParams {
    no_components: usize,
    alpha: f32,
    regularization: f32,
    solver: AlsSolver,
    feature_cg_steps: usize,
    init_scale: f32,
    seed: u64,
}

impl RawPayload {
    fn hybrid(&mut self) -> &mut RawModel {
        match &mut self.model {
            RawFamily::Hybrid(m) => m,
            RawFamily::Als(_) => panic!("not a hybrid model"),
        }
    }

    fn als(&mut self) -> &mut RawAls {
        match &mut self.model {
            RawFamily::Als(m) => m,
            RawFamily::Hybrid(_) => panic!("not an ALS model"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawModel {
    version: u32,
    params: RawParams,
    user_features: RawMatrix,
    item_features: RawMatrix,
    users: RawSide,
    items: RawSide,
    rng: [u64; 4],
    epochs_trained: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawParams {
    no_components: usize,
    loss: Loss,
    schedule: Schedule,
    learning_rate: f32,
    item_alpha: f32,
    user_alpha: f32,
    max_sampled: usize,
    seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Storage {
    Csr,
    Csc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawMatrix {
    storage: Storage,
    nrows: usize,
    ncols: usize,
    indptr: Vec<usize>,
    indices: Vec<usize>,
    data: Vec<f32>,
}

/// Parameter arrays are stored as byte strings of little-endian floats.
#[derive(Debug, Clone, PartialEq)]
struct Floats(Vec<f32>);

impl Serialize for Floats {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|v| v.to_le_bytes()).collect();
        s.serialize_bytes(&bytes)
    }
}

impl<'de> Deserialize<'de> for Floats {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Floats;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Floats, E> {
                Ok(Floats(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                ))
            }
        }
        d.deserialize_bytes(V)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawSide {
    features: usize,
    components: usize,
    embeddings: Floats,
    biases: Floats,
    optimiser: Option<RawOptimiser>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawOptimiser {
    embedding_accumulators: Floats,
    bias_accumulators: Floats,
    embedding_deltas: Floats,
    bias_deltas: Floats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawVocabulary {
    spec: FeatureSpec,
    bucket_edges: Vec<Option<Vec<f64>>>,
    features: Vec<Feature>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawTable {
    format: u32,
    n_items: usize,
    k: usize,
    items: Vec<u32>,
    similarities: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RawInteractions {
    n_users: usize,
    n_items: usize,
    indptr: Vec<usize>,
    users: Vec<u32>,
    items: Vec<u32>,
    values: Vec<f32>,
    weights: Vec<f32>,
}

// ---------------------------------------------------------------------------------------
// The file around a payload.

const HEADER: usize = 40;

/// A valid bundle file (`world()`'s, 3 neighbours, with the optimiser state so that every
/// part of the model record is there to damage), built once.
fn good_file() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let bundle = world().builder(3).keep_training_state(true).build();
        bundle.unwrap().to_bytes().unwrap()
    })
}

/// (metadata, payload) of a valid file.
fn sections(file: &[u8]) -> (&[u8], &[u8]) {
    let m = u64::from_le_bytes(file[16..24].try_into().unwrap()) as usize;
    file[HEADER..].split_at(m)
}

/// A file with the header of `template`, these sections, true lengths and a valid checksum.
fn assemble(template: &[u8], metadata: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = template[..HEADER].to_vec();
    out[16..24].copy_from_slice(&(metadata.len() as u64).to_le_bytes());
    out[24..32].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[8..32]);
    crc.update(metadata);
    crc.update(payload);
    out[32..36].copy_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(metadata);
    out.extend_from_slice(payload);
    out
}

fn raw_payload() -> RawPayload {
    postcard::from_bytes(sections(good_file()).1).expect("the mirror decodes a valid payload")
}

/// The metadata of the valid file with the model id of `payload` (the id is the payload's
/// CRC, a second checksum that a faulty writer would recompute too).
fn metadata_for(payload: &[u8]) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(sections(good_file()).0).unwrap();
    json["model_id"] = format!("{:08x}", crc32fast::hash(payload)).into();
    serde_json::to_vec_pretty(&json).unwrap()
}

fn with_payload(raw: &RawPayload) -> Vec<u8> {
    let payload = postcard::to_stdvec(raw).unwrap();
    assemble(good_file(), &metadata_for(&payload), &payload)
}

fn load(bytes: &[u8]) -> recsys_recommend::Result<Bundle> {
    Bundle::from_bytes(bytes, Path::new("mutated.rsb"))
}

// ---------------------------------------------------------------------------------------
// Every public query on a loaded bundle.

fn exercise(b: &Bundle) {
    let r = b.recommender();
    let items: Vec<ExternalId> = b.items().ids().to_vec();
    let n_items = items.len();
    let nobody = ExternalId::Str("nobody at all".into());
    let mut attributes = Attributes::new();
    attributes.insert("city".into(), "north".into());
    for (u, id) in b.users().iter() {
        let _ = r.recommend(&Request::new(5).user(id));
        let _ = b.model().predict_all(u);
        if n_items > 0 {
            let p = &items[u % n_items];
            let _ = r.recommend(&Request::new(5).user(id).product(p));
            let _ = r.recommend(
                &Request::new(4)
                    .user(id)
                    .product(p)
                    .include_seen()
                    .exclude(&items[..2.min(n_items)]),
            );
            let _ = r.recommend(&Request::new(n_items + 3).user(id).product(p).boost(0.0));
        }
    }
    let _ = r.recommend(&Request::new(5).user(&nobody));
    let _ = r.recommend(&Request::new(5).user(&nobody).user_attributes(&attributes));
    for (i, p) in items.iter().enumerate() {
        let _ = r.recommend(&Request::new(5).product(p));
        let _ = r.recommend(&Request::new(n_items + 1).user(&nobody).product(p));
        let _ = r.recommend(
            &Request::new(5)
                .user(&nobody)
                .user_attributes(&attributes)
                .product(p),
        );
        let _ = b.neighbours().neighbours(i).map(|n| n.count());
        let _ = recsys_similarity::SimilarityIndex::similar(b.neighbours(), i, 5, &|_| false);
        let _ = recsys_similarity::SimilarityIndex::similar(b.similarity(), i, 5, &|_| false);
        let _ = b.product(p);
    }
    let _ = r.recommend(&Request::new(5));
    let _ = r.recommend(&Request::new(5).exclude(&items));
    let mut scores = Vec::new();
    let _ = b.popularity().score_all(UserQuery::Anonymous, &mut scores);
    if let Ok(fold) = FoldIn::new(b.model(), b.seen(), FoldInOptions::default()) {
        if n_items > 0 {
            if let Ok(user) = fold.fold_in(&[0, n_items - 1]) {
                let reps = b.model().item_representations();
                reps.score_all(&user, &mut scores);
                let _ = reps.top_k_with_cosine(&user, n_items / 2, 0.25, 5, |_| false);
                let _ = b
                    .model()
                    .score_all(UserQuery::Representation(&user), &mut scores);
            }
        }
    }
    let _ = b.to_bytes();
}

/// Loads `bytes` and runs every query on what loads: `Err(message)` on a panic, else whether
/// the bundle was refused.
fn outcome(bytes: &[u8]) -> Result<bool, String> {
    catch_unwind(AssertUnwindSafe(|| match load(bytes) {
        Ok(bundle) => {
            exercise(&bundle);
            false
        }
        Err(_) => true,
    }))
    .map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into())
    })
}

// ---------------------------------------------------------------------------------------
// Structured mutations: every field of the payload, by number.

enum Slot<'a> {
    Int(&'a mut usize),
    Int32(&'a mut u32),
    Ints(&'a mut Vec<usize>),
    Ints32(&'a mut Vec<u32>),
    Float(&'a mut f32),
    Floats(&'a mut Vec<f32>),
    Ids(&'a mut Vec<RawId>),
    Products(&'a mut Vec<ProductInfo>),
    Features(&'a mut Vec<Feature>),
    Edges(&'a mut Vec<Option<Vec<f64>>>),
    Rng(&'a mut [u64; 4]),
    Storage(&'a mut Storage),
}

const SLOTS: usize = 55;

fn slot(p: &mut RawPayload, i: usize) -> (&'static str, Slot<'_>) {
    let RawFamily::Hybrid(m) = &mut p.model else {
        panic!("the valid file holds a hybrid model")
    };
    match i {
        0 => (
            "params.no_components",
            Slot::Int(&mut m.params.no_components),
        ),
        1 => ("params.max_sampled", Slot::Int(&mut m.params.max_sampled)),
        2 => (
            "params.learning_rate",
            Slot::Float(&mut m.params.learning_rate),
        ),
        3 => ("params.item_alpha", Slot::Float(&mut m.params.item_alpha)),
        4 => (
            "user_features.storage",
            Slot::Storage(&mut m.user_features.storage),
        ),
        5 => ("user_features.nrows", Slot::Int(&mut m.user_features.nrows)),
        6 => ("user_features.ncols", Slot::Int(&mut m.user_features.ncols)),
        7 => (
            "user_features.indptr",
            Slot::Ints(&mut m.user_features.indptr),
        ),
        8 => (
            "user_features.indices",
            Slot::Ints(&mut m.user_features.indices),
        ),
        9 => (
            "user_features.data",
            Slot::Floats(&mut m.user_features.data),
        ),
        10 => (
            "item_features.storage",
            Slot::Storage(&mut m.item_features.storage),
        ),
        11 => ("item_features.nrows", Slot::Int(&mut m.item_features.nrows)),
        12 => ("item_features.ncols", Slot::Int(&mut m.item_features.ncols)),
        13 => (
            "item_features.indptr",
            Slot::Ints(&mut m.item_features.indptr),
        ),
        14 => (
            "item_features.indices",
            Slot::Ints(&mut m.item_features.indices),
        ),
        15 => (
            "item_features.data",
            Slot::Floats(&mut m.item_features.data),
        ),
        16 => ("users.features", Slot::Int(&mut m.users.features)),
        17 => ("users.components", Slot::Int(&mut m.users.components)),
        18 => ("users.embeddings", Slot::Floats(&mut m.users.embeddings.0)),
        19 => ("users.biases", Slot::Floats(&mut m.users.biases.0)),
        20 => (
            "users.optimiser.embedding_accumulators",
            Slot::Floats(&mut optimiser(&mut m.users).embedding_accumulators.0),
        ),
        21 => (
            "users.optimiser.bias_accumulators",
            Slot::Floats(&mut optimiser(&mut m.users).bias_accumulators.0),
        ),
        22 => ("items.features", Slot::Int(&mut m.items.features)),
        23 => ("items.components", Slot::Int(&mut m.items.components)),
        24 => ("items.embeddings", Slot::Floats(&mut m.items.embeddings.0)),
        25 => ("items.biases", Slot::Floats(&mut m.items.biases.0)),
        26 => (
            "items.optimiser.embedding_accumulators",
            Slot::Floats(&mut optimiser(&mut m.items).embedding_accumulators.0),
        ),
        27 => (
            "items.optimiser.bias_accumulators",
            Slot::Floats(&mut optimiser(&mut m.items).bias_accumulators.0),
        ),
        28 => ("rng", Slot::Rng(&mut m.rng)),
        29 => ("epochs_trained", Slot::Int(&mut m.epochs_trained)),
        30 => ("user ids", Slot::Ids(&mut p.users)),
        31 => ("item ids", Slot::Ids(&mut p.items)),
        32 => (
            "user_vocabulary.features",
            Slot::Features(&mut p.user_vocabulary.features),
        ),
        33 => (
            "item_vocabulary.features",
            Slot::Features(&mut p.item_vocabulary.features),
        ),
        34 => (
            "user_vocabulary.bucket_edges",
            Slot::Edges(&mut p.user_vocabulary.bucket_edges),
        ),
        35 => ("products", Slot::Products(&mut p.products)),
        36 => ("neighbours.format", Slot::Int32(&mut p.neighbours.format)),
        37 => ("neighbours.n_items", Slot::Int(&mut p.neighbours.n_items)),
        38 => ("neighbours.k", Slot::Int(&mut p.neighbours.k)),
        39 => ("neighbours.items", Slot::Ints32(&mut p.neighbours.items)),
        40 => (
            "neighbours.similarities",
            Slot::Floats(&mut p.neighbours.similarities),
        ),
        41 => ("popularity", Slot::Floats(&mut p.popularity)),
        42 => ("seen.n_users", Slot::Int(&mut p.seen.n_users)),
        43 => ("seen.n_items", Slot::Int(&mut p.seen.n_items)),
        44 => ("seen.indptr", Slot::Ints(&mut p.seen.indptr)),
        45 => ("seen.users", Slot::Ints32(&mut p.seen.users)),
        46 => ("seen.items", Slot::Ints32(&mut p.seen.items)),
        47 => ("seen.values", Slot::Floats(&mut p.seen.values)),
        48 => ("seen.weights", Slot::Floats(&mut p.seen.weights)),
        // The parts a request for a known user reads are picked more often.
        49 => ("seen.indptr", Slot::Ints(&mut p.seen.indptr)),
        50 => ("seen.items", Slot::Ints32(&mut p.seen.items)),
        51 => (
            "user_features.indptr",
            Slot::Ints(&mut m.user_features.indptr),
        ),
        52 => (
            "item_features.indices",
            Slot::Ints(&mut m.item_features.indices),
        ),
        53 => ("params.user_alpha", Slot::Float(&mut m.params.user_alpha)),
        54 => ("model record version", Slot::Int32(&mut m.version)),
        _ => unreachable!("slot {i}"),
    }
}

/// The optimiser state of a side of the valid file (which keeps it).
fn optimiser(side: &mut RawSide) -> &mut RawOptimiser {
    side.optimiser
        .as_mut()
        .expect("the valid file keeps the optimiser state")
}

/// What one structured mutation does (all choices drawn by proptest).
#[derive(Debug, Clone)]
struct Edit {
    slot: Index,
    op: u8,
    at: Index,
    other: Index,
    choice: u8,
    random: u64,
}

fn int_value(old: usize, len: usize, choice: u8, random: u64) -> usize {
    match choice % 12 {
        0 => 0,
        1 => 1,
        2 => old.wrapping_add(1),
        3 => old.wrapping_sub(1),
        4 => old.wrapping_mul(2),
        5 => len,
        6 => len.wrapping_add(1),
        7 => u32::MAX as usize,
        8 => usize::MAX,
        9 => usize::MAX / 2,
        10 => (random % 64) as usize,
        _ => random as usize,
    }
}

fn float_value(choice: u8) -> f32 {
    [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -1.0,
        0.0,
        -0.0,
        1e30,
        -1e30,
        f32::MAX,
        f32::MIN_POSITIVE / 4.0,
        2.0,
        0.5,
    ][choice as usize % 12]
}

/// Removes, duplicates, appends or cuts elements.
fn resize<T: Clone>(v: &mut Vec<T>, op: u8, at: &Index, fresh: T) {
    match op % 6 {
        0 => {
            v.pop();
        }
        1 => v.clear(),
        2 if !v.is_empty() => {
            v.remove(at.index(v.len()));
        }
        3 if !v.is_empty() => {
            let i = at.index(v.len());
            let copy = v[i].clone();
            v.insert(i, copy);
        }
        4 => v.push(fresh),
        _ => {
            if let Some(last) = v.last().cloned() {
                v.push(last);
            }
        }
    }
}

fn edit_ints<T: Copy>(
    v: &mut Vec<T>,
    e: &Edit,
    to: impl Fn(T) -> usize,
    from: impl Fn(usize) -> T,
) {
    let len = v.len();
    match e.op % 4 {
        0 | 1 if len > 0 => {
            let i = e.at.index(len);
            v[i] = from(int_value(to(v[i]), len, e.choice, e.random));
        }
        2 if len > 0 => v.swap(e.at.index(len), e.other.index(len)),
        _ => resize(v, e.choice, &e.at, from(int_value(0, len, e.op, e.random))),
    }
}

fn apply(p: &mut RawPayload, e: &Edit) -> &'static str {
    let (name, slot) = slot(p, e.slot.index(SLOTS));
    match slot {
        Slot::Int(x) => *x = int_value(*x, *x, e.choice, e.random),
        Slot::Int32(x) => *x = int_value(*x as usize, 1, e.choice, e.random) as u32,
        Slot::Ints(v) => edit_ints(v, e, |x| x, |x| x),
        Slot::Ints32(v) => edit_ints(v, e, |x| x as usize, |x| x as u32),
        Slot::Float(x) => *x = float_value(e.choice),
        Slot::Floats(v) => match e.op % 3 {
            0 | 1 if !v.is_empty() => {
                let i = e.at.index(v.len());
                v[i] = float_value(e.choice);
            }
            _ => resize(v, e.choice, &e.at, float_value(e.op)),
        },
        Slot::Ids(ids) => {
            let len = ids.len();
            match (e.op % 7, len) {
                (_, 0) => ids.push(RawId::Str(String::new())),
                (0, _) => ids[e.at.index(len)] = ids[e.other.index(len)].clone(),
                (1, _) => ids[e.at.index(len)] = RawId::Str(String::new()),
                (2, _) => {
                    let i = e.at.index(len);
                    ids[i] = match &ids[i] {
                        RawId::Int(v) => RawId::Str(v.to_string()),
                        RawId::Str(s) => RawId::Str(format!(" {s}")),
                    }
                }
                (3, _) => ids.swap(e.at.index(len), e.other.index(len)),
                (4, _) => ids[e.at.index(len)] = RawId::Int((e.random % 40) as i64),
                _ => resize(ids, e.choice, &e.at, RawId::Int(e.random as i64)),
            }
        }
        Slot::Products(products) => match e.op % 3 {
            0 | 1 if !products.is_empty() => {
                let i = e.at.index(products.len());
                products[i].price = Some(f64::from(float_value(e.choice)));
            }
            _ => resize(products, e.choice, &e.at, ProductInfo::default()),
        },
        Slot::Features(features) => {
            let len = features.len();
            match (e.op % 5, len) {
                (0, 1..) => features[e.at.index(len)] = Feature::Identity((e.random % 20) as usize),
                (1, 1..) => {
                    features[e.at.index(len)] = Feature::Value(
                        (e.random % 3) as usize,
                        ["x", "", "north"][e.choice as usize % 3].into(),
                    )
                }
                (2, 1..) => features.swap(e.at.index(len), e.other.index(len)),
                _ => resize(features, e.choice, &e.at, Feature::Value(0, "new".into())),
            }
        }
        Slot::Edges(edges) => match edges.first_mut() {
            Some(first) if e.op.is_multiple_of(2) => {
                *first = Some(vec![f64::from(float_value(e.choice)), 1.0]);
            }
            _ => resize(edges, e.choice, &e.at, None),
        },
        Slot::Rng(s) => {
            *s = if e.op.is_multiple_of(2) {
                [0; 4]
            } else {
                [e.random; 4]
            }
        }
        Slot::Storage(s) => {
            *s = match s {
                Storage::Csr => Storage::Csc,
                Storage::Csc => Storage::Csr,
            }
        }
    }
    name
}

/// Byte-level damage to the metadata (`region` even) or the payload, checksum recomputed.
#[derive(Debug, Clone)]
struct ByteEdit {
    region: u8,
    op: u8,
    at: Index,
    value: u8,
}

fn damage_bytes(e: &ByteEdit) -> Vec<u8> {
    let file = good_file();
    let (metadata, payload) = sections(file);
    let (mut metadata, mut payload) = (metadata.to_vec(), payload.to_vec());
    let in_metadata = e.region.is_multiple_of(4);
    let target = if in_metadata {
        &mut metadata
    } else {
        &mut payload
    };
    let i = e.at.index(target.len());
    match e.op % 5 {
        0 => target[i] ^= 1 << (e.value % 8),
        1 => target[i] = e.value,
        2 => target.truncate(i),
        3 => target.insert(i, e.value),
        _ => {
            target.remove(i);
        }
    }
    if !in_metadata {
        metadata = metadata_for(&payload);
    }
    assemble(file, &metadata, &payload)
}

/// A number in the metadata JSON changed, checksum recomputed.
fn damage_metadata_number(at: &Index, choice: u8, random: u64) -> Vec<u8> {
    fn numbers<'a>(v: &'a mut serde_json::Value, out: &mut Vec<&'a mut serde_json::Value>) {
        match v {
            serde_json::Value::Number(_) => out.push(v),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| numbers(x, out)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| numbers(x, out)),
            _ => {}
        }
    }
    let file = good_file();
    let (metadata, payload) = sections(file);
    let mut json: serde_json::Value = serde_json::from_slice(metadata).unwrap();
    let mut found = Vec::new();
    numbers(&mut json, &mut found);
    let i = at.index(found.len());
    let old = found[i].as_u64().unwrap_or(0) as usize;
    *found[i] = int_value(old, old, choice, random).into();
    assemble(file, &serde_json::to_vec(&json).unwrap(), payload)
}

#[derive(Debug, Clone)]
enum Mutation {
    Structured(Vec<Edit>),
    Bytes(ByteEdit),
    MetadataNumber(Index, u8, u64),
}

fn edit() -> impl Strategy<Value = Edit> {
    (
        any::<Index>(),
        any::<u8>(),
        any::<Index>(),
        any::<Index>(),
        any::<u8>(),
        any::<u64>(),
    )
        .prop_map(|(slot, op, at, other, choice, random)| Edit {
            slot,
            op,
            at,
            other,
            choice,
            random,
        })
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => prop::collection::vec(edit(), 1..=2).prop_map(Mutation::Structured),
        3 => (any::<u8>(), any::<u8>(), any::<Index>(), any::<u8>())
            .prop_map(|(region, op, at, value)| Mutation::Bytes(ByteEdit { region, op, at, value })),
        1 => (any::<Index>(), any::<u8>(), any::<u64>())
            .prop_map(|(at, choice, random)| Mutation::MetadataNumber(at, choice, random)),
    ]
}

/// Cases of the fuzz run: `PROPTEST_CASES` or 512; the seed is fixed, so a run is
/// reproducible (and `PROPTEST_RNG_SEED` is ignored).
fn fuzz_config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x7265_6373_7973),
        failure_persistence: None,
        ..Config::default()
    }
}

#[test]
fn the_mirror_matches_the_wire_format() {
    // If the format changes, the mirror must follow, or the fuzzing below tests nothing.
    let (metadata, payload) = sections(good_file());
    assert_eq!(postcard::to_stdvec(&raw_payload()).unwrap(), payload);
    let json = |b: &[u8]| serde_json::from_slice::<serde_json::Value>(b).unwrap();
    assert_eq!(json(&metadata_for(payload)), json(metadata));
    let bundle = load(&with_payload(&raw_payload())).expect("an unchanged payload loads");
    exercise(&bundle);
}

#[test]
fn mutated_bundles_with_a_valid_checksum_never_panic() {
    static REFUSED: AtomicUsize = AtomicUsize::new(0);
    static LOADED: AtomicUsize = AtomicUsize::new(0);
    let base = raw_payload();
    let config = fuzz_config();
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let result = runner.run(&mutation(), |m| {
        let (what, bytes) = match &m {
            Mutation::Structured(edits) => {
                let mut raw = base.clone();
                let names: Vec<&str> = edits.iter().map(|e| apply(&mut raw, e)).collect();
                (names.join(" + "), with_payload(&raw))
            }
            Mutation::Bytes(e) => ("bytes".to_string(), damage_bytes(e)),
            Mutation::MetadataNumber(at, choice, random) => (
                "metadata number".to_string(),
                damage_metadata_number(at, *choice, *random),
            ),
        };
        match outcome(&bytes) {
            Ok(true) => REFUSED.fetch_add(1, Ordering::Relaxed),
            Ok(false) => LOADED.fetch_add(1, Ordering::Relaxed),
            Err(panic) => {
                return Err(TestCaseError::fail(format!("{what}: panicked: {panic}")));
            }
        };
        Ok(())
    });
    let (refused, loaded) = (
        REFUSED.load(Ordering::Relaxed),
        LOADED.load(Ordering::Relaxed),
    );
    eprintln!("{cases} cases: {refused} mutated bundles refused, {loaded} loaded and answered every query");
    if let Err(e) = result {
        panic!("{e}");
    }
    // Both outcomes occur: the mutations reach the validation, and harmless ones still load.
    assert!(
        refused > cases as usize / 4 && loaded > 0,
        "{refused} refused, {loaded} loaded"
    );
}

// ---------------------------------------------------------------------------------------
// Specific inconsistencies, each refused with an error naming the part.

fn refused(edit: impl FnOnce(&mut RawPayload)) -> String {
    let mut raw = raw_payload();
    edit(&mut raw);
    let bytes = with_payload(&raw);
    match outcome(&bytes) {
        Ok(true) => load(&bytes).unwrap_err().to_string(),
        Ok(false) => panic!("the damaged bundle loaded"),
        Err(panic) => panic!("loading or querying panicked: {panic}"),
    }
}

#[test]
fn a_seen_index_pointer_past_the_items_is_refused() {
    // The bundle that took a server down: it loaded, then every request for user 3 panicked.
    let e = refused(|p| p.seen.indptr[4] = p.seen.items.len() + 7);
    assert!(e.contains("seen interactions"), "{e}");
    let e = refused(|p| p.seen.indptr.swap(2, 3));
    assert!(e.contains("seen interactions"), "{e}");
}

#[test]
fn unsorted_or_out_of_range_seen_items_are_refused() {
    let e = refused(|p| {
        let (a, b) = (p.seen.indptr[1], p.seen.indptr[1] + 1);
        p.seen.items.swap(a, b);
    });
    assert!(
        e.contains("seen interactions") && e.contains("sorted"),
        "{e}"
    );
    let e = refused(|p| p.seen.items[0] = p.seen.n_items as u32);
    assert!(
        e.contains("seen interactions") && e.contains("out of range"),
        "{e}"
    );
    let e = refused(|p| p.seen.weights[0] = f32::NAN);
    assert!(e.contains("seen interactions"), "{e}");
}

#[test]
fn feature_matrices_that_disagree_with_the_model_are_refused() {
    let e = refused(|p| {
        p.hybrid().user_features.ncols += 1;
    });
    assert!(e.contains("user feature"), "{e}");
    let e = refused(|p| {
        let m = p.hybrid();
        m.item_features.indices[0] = m.item_features.ncols
    });
    assert!(e.contains("item feature matrix"), "{e}");
    let e = refused(|p| p.hybrid().item_features.data[1] = f32::INFINITY);
    assert!(
        e.contains("item feature matrix") && e.contains("inf"),
        "{e}"
    );
    let e = refused(|p| p.hybrid().user_features.storage = Storage::Csc);
    assert!(e.contains("user feature matrix"), "{e}");
}

#[test]
fn model_parameters_that_disagree_or_are_not_finite_are_refused() {
    let e = refused(|p| p.hybrid().params.no_components += 1);
    assert!(e.contains("components"), "{e}");
    let e = refused(|p| p.hybrid().items.embeddings.0[3] = f32::NAN);
    assert!(e.contains("item") && e.contains("NaN"), "{e}");
    let e = refused(|p| {
        p.hybrid().users.biases.0.pop();
    });
    assert!(e.contains("user parameters") && e.contains("biases"), "{e}");
    let e = refused(|p| optimiser(&mut p.hybrid().items).bias_accumulators.0[0] = -2.0);
    assert!(e.contains("optimiser state -2"), "{e}");
    let e = refused(|p| p.hybrid().users.optimiser = None);
    assert!(e.contains("one side only"), "{e}");
    let e = refused(|p| p.hybrid().version = 7);
    assert!(e.contains("version 7") && e.contains("re-train"), "{e}");
    let e = refused(|p| p.hybrid().params.learning_rate = -1.0);
    assert!(e.contains("learning_rate"), "{e}");
}

#[test]
fn id_maps_that_are_not_bijective_are_refused() {
    let e = refused(|p| p.items[3] = p.items[5].clone());
    assert!(e.contains("item id map"), "{e}");
    let e = refused(|p| {
        if let RawId::Int(v) = p.items[2] {
            p.items[2] = RawId::Str(v.to_string());
        }
    });
    assert!(e.contains("item id map"), "{e}");
}

#[test]
fn other_parts_with_bad_contents_are_refused() {
    let e = refused(|p| p.neighbours.items[0] = p.neighbours.n_items as u32);
    assert!(e.contains("neighbour"), "{e}");
    let e = refused(|p| p.popularity[2] = f32::NAN);
    assert!(e.contains("popularity"), "{e}");
    let e = refused(|p| p.products[1].price = Some(f64::NAN));
    assert!(e.contains("catalogue") || e.contains("product"), "{e}");
    let e = refused(|p| p.hybrid().rng = [0; 4]);
    assert!(e.contains("random"), "{e}");
}

#[test]
fn metadata_that_contradicts_the_parts_is_refused() {
    let file = good_file();
    let (metadata, payload) = sections(file);
    let mut json: serde_json::Value = serde_json::from_slice(metadata).unwrap();
    json["counts"]["interactions"] = 1.into();
    let bytes = assemble(file, &serde_json::to_vec(&json).unwrap(), payload);
    let e = load(&bytes).unwrap_err();
    assert!(matches!(e, RecommendError::Inconsistent { .. }), "{e}");
    assert!(e.to_string().contains("interactions"), "{e}");
    // A changed payload keeps loading only with its own model id.
    let mut raw = raw_payload();
    raw.popularity[0] += 1.0;
    let payload = postcard::to_stdvec(&raw).unwrap();
    let e = load(&assemble(file, metadata, &payload)).unwrap_err();
    assert!(e.to_string().contains("model id"), "{e}");
    load(&with_payload(&raw)).expect("a consistent change loads");
}

// ---------------------------------------------------------------------------------------
// The header: every byte is checked or covered by the checksum.

#[test]
fn changing_any_single_header_byte_is_refused() {
    let good = good_file();
    assert!(load(good).is_ok());
    for at in 0..HEADER {
        for xor in [0x01u8, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff] {
            let mut bytes = good.to_vec();
            bytes[at] ^= xor;
            assert!(
                load(&bytes).is_err(),
                "header byte {at} changed by {xor:#04x} was accepted"
            );
        }
    }
}

#[test]
fn unknown_flags_or_reserved_bits_are_refused_even_with_a_valid_checksum() {
    let good = good_file();
    let (metadata, payload) = sections(good);
    for at in [12, 13, 14, 15, 36, 37, 38, 39] {
        let mut template = good[..HEADER].to_vec();
        template[at] = 0x01;
        let e = load(&assemble(&template, metadata, payload)).unwrap_err();
        assert!(
            matches!(e, RecommendError::UnsupportedHeader { .. }),
            "byte {at}: {e}"
        );
        assert!(e.to_string().contains("newer"), "{e}");
    }
}

/// An ALS bundle of `world()` (3 neighbours), built once.
fn als_file() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        use recsys_core::{AlsFitOptions, AlsModel, AlsParams};
        let w = world();
        let params = AlsParams::builder()
            .no_components(4)
            .seed(2)
            .build()
            .unwrap();
        let mut als =
            AlsModel::new(params, w.dataset.user_features(), w.dataset.item_features()).unwrap();
        als.fit(&w.train, AlsFitOptions::iterations(3)).unwrap();
        let builder = recsys_recommend::BundleBuilder::new(als, &w.dataset, w.train.clone());
        builder.neighbours(3).build().unwrap().to_bytes().unwrap()
    })
}

/// The message of refusing the ALS bundle after `edit` (with a valid checksum and model id).
fn refused_als(edit: impl FnOnce(&mut RawPayload)) -> String {
    let (metadata, payload) = sections(als_file());
    let mut raw: RawPayload = postcard::from_bytes(payload).expect("the mirror decodes");
    assert_eq!(
        postcard::to_stdvec(&raw).unwrap(),
        payload,
        "the mirror is exact"
    );
    edit(&mut raw);
    let payload = postcard::to_stdvec(&raw).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(metadata).unwrap();
    json["model_id"] = format!("{:08x}", crc32fast::hash(&payload)).into();
    let bytes = assemble(als_file(), &serde_json::to_vec(&json).unwrap(), &payload);
    match outcome(&bytes) {
        Ok(true) => load(&bytes).unwrap_err().to_string(),
        Ok(false) => panic!("the damaged bundle loaded"),
        Err(panic) => panic!("loading or querying panicked: {panic}"),
    }
}

#[test]
fn damaged_als_models_are_refused() {
    load(als_file()).expect("the intact ALS bundle loads");
    let e = refused_als(|p| {
        p.als().item_embeddings.0.pop();
    });
    assert!(
        e.contains("ALS item embeddings") && e.contains("expected"),
        "{e}"
    );
    let e = refused_als(|p| p.als().user_embeddings.0[5] = f32::NAN);
    assert!(e.contains("user embeddings") && e.contains("NaN"), "{e}");
    let e = refused_als(|p| p.als().params.regularization = -1.0);
    assert!(e.contains("regularization"), "{e}");
    let e = refused_als(|p| p.als().params.no_components = 5);
    assert!(e.contains("ALS"), "{e}");
    let e = refused_als(|p| p.als().item_features.ncols += 1);
    assert!(e.contains("ALS"), "{e}");
    let e = refused_als(|p| p.als().version = 9);
    assert!(e.contains("version 9") && e.contains("re-train"), "{e}");
    let e = refused_als(|p| p.als().iterations_trained += 1);
    assert!(e.contains("epochs"), "{e}");
}
