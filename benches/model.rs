//! Criterion benchmarks: one training epoch per loss (1 and 2 threads), scoring every item
//! for one user, and a full precision@10 evaluation.
//!
//! `cargo bench -p recsys-benches` (results and the machine in docs/benchmarks.md).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use recsys::core::{evaluate, EvalOptions, FitOptions, HybridModel, Hyperparameters, Loss};

fn params(loss: Loss) -> Hyperparameters {
    Hyperparameters::builder()
        .loss(loss)
        .no_components(30)
        .learning_rate(0.05)
        .seed(42)
        .build()
        .expect("valid parameters")
}

fn benches(c: &mut Criterion) {
    let data = recsys_benches::load();
    let (n_users, n_items) = (data.train.n_users(), data.train.n_items());
    eprintln!(
        "data: {} ({n_users} users, {n_items} items, {} train, {} test)",
        data.name,
        data.train.len(),
        data.test.len()
    );

    let mut g = c.benchmark_group(format!("fit_epoch/{}", data.name));
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for loss in [
        Loss::Warp,
        Loss::Bpr,
        Loss::Logistic,
        Loss::WarpKos { k: 5, n: 10 },
    ] {
        for threads in [1, 2] {
            // Warm the model up for 2 epochs so the benchmark measures a typical epoch,
            // not the first ones (WARP's epochs get slower as the model improves).
            let mut model =
                HybridModel::collaborative(params(loss), n_users, n_items).expect("model");
            model
                .fit(&data.train, FitOptions::epochs(2).threads(threads))
                .expect("training");
            g.bench_with_input(
                BenchmarkId::new(loss.name(), threads),
                &threads,
                |b, &threads| {
                    b.iter(|| {
                        model
                            .fit_partial(&data.train, FitOptions::epochs(1).threads(threads))
                            .expect("training")
                    })
                },
            );
        }
    }
    g.finish();

    let mut model =
        HybridModel::collaborative(params(Loss::Warp), n_users, n_items).expect("model");
    model
        .fit(&data.train, FitOptions::epochs(10).threads(2))
        .expect("training");
    let _ = model.item_representations();

    let mut g = c.benchmark_group(format!("predict/{}", data.name));
    let mut user = 0;
    g.bench_function("score_one_user_all_items", |b| {
        b.iter(|| {
            user = (user + 1) % n_users;
            black_box(model.predict_all(user).expect("known user"))
        })
    });
    g.bench_function("top10_one_user", |b| {
        b.iter(|| {
            user = (user + 1) % n_users;
            black_box(
                model
                    .recommend(user, 10, |i| data.train.contains(user, i))
                    .expect("known user"),
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("evaluate/{}", data.name));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for threads in [1, 2] {
        g.bench_with_input(
            BenchmarkId::new("precision_at_10_auc", threads),
            &threads,
            |b, &threads| {
                let opts = EvalOptions {
                    k: 10,
                    threads,
                    candidates: None,
                };
                b.iter(|| {
                    black_box(
                        evaluate(&model, &data.test, Some(&data.train), &opts).expect("evaluation"),
                    )
                })
            },
        );
    }
    g.finish();
}

criterion_group!(model_benches, benches);
criterion_main!(model_benches);
