//! Criterion benchmarks of `recsys-similarity`: one exact top-10 query, a batch of 256
//! queries, and the full `NeighbourTable` build (k = 20) on 1 and 2 threads, over as many
//! seeded random 30-dimensional vectors as the Complete Journey catalogue has products
//! (68,509; the cost does not depend on the values).
//!
//! Before criterion runs, a plain measurement prints build times (k = 20 and 50, 1 and 2
//! threads, 3 runs each: best and spread), table sizes, single-query latency and batch
//! throughput. `cargo bench -p recsys-benches --bench similarity`
//! (`-- --skip-report` to run criterion only, `--report-only` to skip criterion).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use ndarray::Array2;
use recsys_similarity::{ExactCosine, NeighbourTable, QueryScratch};

const DIM: usize = 30;
const SEED: u64 = 42;

/// Number of products in the Complete Journey catalogue if it is present, else 68,509.
fn catalogue_size() -> usize {
    recsys_benches::complete_journey_dir()
        .and_then(|dir| std::fs::read_to_string(dir.join("products.csv")).ok())
        .map(|text| text.lines().skip(1).filter(|l| !l.is_empty()).count())
        .unwrap_or(68_509)
}

/// Seeded uniform vectors in `[-0.5, 0.5)` (an LCG: the values do not matter for timing).
fn vectors(n: usize) -> Array2<f32> {
    let mut state = SEED;
    Array2::from_shape_fn((n, DIM), |_| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    })
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

fn best_and_spread(times: &[Duration]) -> String {
    let secs: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
    let best = secs.iter().cloned().fold(f64::INFINITY, f64::min);
    let worst = secs.iter().cloned().fold(0.0, f64::max);
    let all: Vec<String> = secs.iter().map(|s| format!("{s:.3}")).collect();
    format!(
        "best {best:.3} s, worst {worst:.3} s (runs: {})",
        all.join(", ")
    )
}

/// User + system CPU time of this process so far (from `/proc/self/stat`, 100 ticks per
/// second): with other engineers compiling on the same 2 cores, wall time mostly measures
/// the queue, CPU time the work.
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            // Fields 14 and 15 (utime, stime) are at 11 and 12 after the ")".
            Some(after.get(11)?.parse::<u64>().ok()? + after.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The plain measurement printed before criterion.
fn report(exact: &ExactCosine) {
    let n = exact.len();
    println!(
        "similarity report: {n} items × {DIM} dims, seed {SEED}, load average {}",
        load_average()
    );
    for k in [20, 50] {
        for threads in [1, 2] {
            let pool = pool(threads);
            let (mut times, mut cpu) = (Vec::new(), Vec::new());
            let mut size = 0;
            for _ in 0..3 {
                let (start, cpu_start) = (Instant::now(), cpu_time());
                let table = pool.install(|| NeighbourTable::build(exact, k).expect("build"));
                times.push(start.elapsed());
                cpu.push(cpu_time() - cpu_start);
                size = table.size_in_bytes();
            }
            println!(
                "  build k={k:<2} threads={threads}: wall {}; cpu {}; table {size} bytes ({:.2} MiB)",
                best_and_spread(&times),
                best_and_spread(&cpu),
                size as f64 / (1024.0 * 1024.0)
            );
        }
    }
    let (mut scratch, mut out) = (QueryScratch::new(), Vec::new());
    let queries: Vec<usize> = (0..n).step_by(n / 2_000 + 1).collect();
    let (mut per_query, mut cpu_per_query) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (start, cpu_start) = (Instant::now(), cpu_time());
        for &q in &queries {
            exact
                .similar_into(q, 10, &|_| false, &mut scratch, &mut out)
                .expect("query");
            black_box(&out);
        }
        per_query.push(start.elapsed() / queries.len() as u32);
        cpu_per_query.push((cpu_time() - cpu_start) / queries.len() as u32);
    }
    let us = |ds: &[Duration]| {
        ds.iter()
            .map(|d| format!("{:.1}", d.as_secs_f64() * 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  single query top-10 (1 thread, {} queries per run): µs per query wall {}; cpu {}",
        queries.len(),
        us(&per_query),
        us(&cpu_per_query)
    );
    let batch: Vec<usize> = (0..256).map(|i| i * (n / 256)).collect();
    for threads in [1, 2] {
        let pool = pool(threads);
        let (mut rates, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let (start, cpu_start) = (Instant::now(), cpu_time());
            let r = pool.install(|| exact.similar_batch(&batch, 10, &|_| false).expect("batch"));
            black_box(r);
            rates.push(format!("{:.0}", 256.0 / start.elapsed().as_secs_f64()));
            cpu.push(format!(
                "{:.0}",
                (cpu_time() - cpu_start).as_secs_f64() * 1e6 / 256.0
            ));
        }
        println!(
            "  batch of 256 top-10 queries, threads={threads}: queries/s (wall) {}; cpu µs per query {}",
            rates.join(", "),
            cpu.join(", ")
        );
    }
    println!("  load average after: {}", load_average());
}

fn benches(c: &mut Criterion, exact: &ExactCosine) {
    let n = exact.len();
    let mut g = c.benchmark_group(format!("similarity/{n}x{DIM}"));
    let (mut scratch, mut out) = (QueryScratch::new(), Vec::new());
    let mut q = 0;
    g.bench_function("single_top10", |b| {
        b.iter(|| {
            q = (q + 7_919) % n;
            exact
                .similar_into(q, 10, &|_| false, &mut scratch, &mut out)
                .expect("query");
            black_box(&out);
        })
    });
    let batch: Vec<usize> = (0..256).map(|i| i * (n / 256)).collect();
    let two = pool(2);
    g.bench_function("batch256_top10_2threads", |b| {
        b.iter(|| two.install(|| exact.similar_batch(&batch, 10, &|_| false).expect("batch")))
    });
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for threads in [1, 2] {
        let pool = pool(threads);
        g.bench_with_input(
            BenchmarkId::new("table_build_k20", threads),
            &threads,
            |b, _| b.iter(|| pool.install(|| NeighbourTable::build(exact, 20).expect("build"))),
        );
    }
    g.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let exact = ExactCosine::new(vectors(catalogue_size()).view());
    if !args.iter().any(|a| a == "--skip-report") {
        report(&exact);
    }
    if args.iter().any(|a| a == "--report-only") {
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &exact);
    c.final_summary();
}
