//! The blend of the `/similar-products` route: model score + 0.25 × cosine to the viewed
//! product over every item, then the top 10, the viewed product and the user's seen items
//! excluded. Compares the plain path (`score_all_with_cosine` into a score array, exclusions
//! as NaN, `top_k`: what the policy did before) with `top_k_with_cosine` (the certified
//! half-float pass + exact rescoring; the same answer, checked here for every query).
//!
//! Data: 68,509 seeded random 30-dimensional items and 2,000 users (LightFM-like scale), and
//! the model of a bundle when `RECSYS_BENCH_BUNDLE` names one (real users, products and
//! seen items). Before criterion runs, a plain measurement interleaves old and new, round
//! after round over the same 256 queries, and prints medians of the per-query time (the
//! machine is shared: interleaving keeps both exposed to the same load).
//! `cargo bench -p recsys-benches --bench blend -- --report-only` (`--skip-report` for
//! criterion only).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use ndarray::{Array1, Array2};
use recsys::core::{top_k, ItemRepresentations, Representation, Rng};

const K: usize = 10;
const BOOST: f32 = 0.25;
const QUERIES: usize = 256;

/// One request: user representation, viewed product, items to exclude (sorted).
struct Query {
    user: Representation,
    product: usize,
    seen: Vec<u32>,
}

struct Workload {
    name: String,
    reps: ItemRepresentations,
    queries: Vec<Query>,
}

fn gaussian(rng: &mut Rng) -> f32 {
    // Sum of uniforms: close enough to a normal for timing.
    ((0..4).map(|_| rng.next_f64()).sum::<f64>() - 2.0) as f32
}

fn synthetic() -> Workload {
    let (n, k) = (68_509, 30);
    let mut rng = Rng::new(42);
    let vectors = Array2::from_shape_fn((n, k), |_| gaussian(&mut rng) * 0.3);
    let biases = Array1::from_shape_fn(n, |_| gaussian(&mut rng) * 0.5);
    let reps = ItemRepresentations::new(vectors, biases).expect("shapes");
    let queries = (0..QUERIES)
        .map(|_| {
            let user = Representation {
                vector: Array1::from_shape_fn(k, |_| gaussian(&mut rng) * 0.3),
                bias: gaussian(&mut rng),
            };
            let mut seen: Vec<u32> = (0..50).map(|_| rng.below(n) as u32).collect();
            seen.sort_unstable();
            Query {
                user,
                product: rng.below(n),
                seen,
            }
        })
        .collect();
    Workload {
        name: format!("synthetic {n} x {k}"),
        reps,
        queries,
    }
}

fn from_bundle(path: &str) -> Workload {
    let bundle = recsys::recommend::Bundle::load(path).expect("bundle");
    let model = bundle.model();
    let reps = model.item_representations().clone();
    let mut rng = Rng::new(7);
    let queries = (0..QUERIES)
        .map(|_| {
            let u = rng.below(model.n_users());
            Query {
                user: model.user_representation(u).expect("user"),
                product: rng.below(model.n_items()),
                seen: bundle.seen().user_items(u).to_vec(),
            }
        })
        .collect();
    Workload {
        name: format!(
            "bundle {path} ({} x {})",
            model.n_items(),
            model.no_components()
        ),
        reps,
        queries,
    }
}

fn excluded(q: &Query, j: usize) -> bool {
    j == q.product || q.seen.binary_search(&(j as u32)).is_ok()
}

/// The plain path, as the policy ran it before.
fn old(reps: &ItemRepresentations, q: &Query, scores: &mut Vec<f32>) -> Vec<(usize, f32)> {
    reps.score_all_with_cosine(&q.user, q.product, BOOST, scores)
        .expect("in range");
    scores[q.product] = f32::NAN;
    for &j in &q.seen {
        scores[j as usize] = f32::NAN;
    }
    top_k(scores, K, |_| false)
}

fn new(reps: &ItemRepresentations, q: &Query) -> Vec<(usize, f32)> {
    reps.top_k_with_cosine(&q.user, q.product, BOOST, K, |j| excluded(q, j))
        .expect("in range")
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn report(w: &Workload) {
    let reps = &w.reps;
    let start = Instant::now();
    reps.prepare_blend();
    println!("{}: half-float rows built in {:?}", w.name, start.elapsed());
    let mut scores = Vec::new();
    for q in &w.queries {
        let (a, b) = (old(reps, q, &mut scores), new(reps, q));
        let bits =
            |v: &[(usize, f32)]| v.iter().map(|&(i, s)| (i, s.to_bits())).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "old and new disagree");
    }
    println!("  old == new on all {} queries", w.queries.len());
    let rounds = 21;
    let (mut t_old, mut t_new) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        for q in &w.queries {
            black_box(old(reps, q, &mut scores));
        }
        t_old.push(t.elapsed().as_secs_f64() / w.queries.len() as f64);
        let t = Instant::now();
        for q in &w.queries {
            black_box(new(reps, q));
        }
        t_new.push(t.elapsed().as_secs_f64() / w.queries.len() as f64);
    }
    let (mo, mn) = (median(&mut t_old), median(&mut t_new));
    println!(
        "  per query, median of {rounds} interleaved rounds x {} queries: old {:.1} us, new {:.1} us ({:.0}% less); load average {}",
        w.queries.len(),
        mo * 1e6,
        mn * 1e6,
        (1.0 - mn / mo) * 100.0,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
}

fn benches(c: &mut Criterion, w: &Workload) {
    let reps = &w.reps;
    let mut g = c.benchmark_group(format!("blend_top10/{}", w.name));
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    let mut scores = Vec::new();
    let mut i = 0;
    g.bench_function("old: score array + top_k", |b| {
        b.iter(|| {
            i = (i + 1) % w.queries.len();
            black_box(old(reps, &w.queries[i], &mut scores))
        })
    });
    g.bench_function("new: certified f16 + rescoring", |b| {
        b.iter(|| {
            i = (i + 1) % w.queries.len();
            black_box(new(reps, &w.queries[i]))
        })
    });
    g.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut workloads = vec![synthetic()];
    if let Ok(path) = std::env::var("RECSYS_BENCH_BUNDLE") {
        workloads.push(from_bundle(&path));
    }
    if !args.iter().any(|a| a == "--skip-report") {
        for w in &workloads {
            report(w);
        }
    }
    if args.iter().any(|a| a == "--report-only") {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    for w in &workloads {
        benches(&mut c, w);
    }
    c.final_summary();
}
