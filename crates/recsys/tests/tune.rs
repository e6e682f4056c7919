//! Model selection: successive halving keeps the better candidates, never drops the
//! baseline, and never chooses anything worse than it on validation.

use std::time::Duration;

use recsys::core::{AlsParams, Hyperparameters, Loss};
use recsys::demo::{generate, DemoConfig};
use recsys::experiment::{Experiment, ExperimentConfig, Split};
use recsys::tune::{successive_halving, Candidate, CandidateParams, HalvingOptions, TuneData};

fn experiment() -> Experiment {
    let mut shop = generate(&DemoConfig {
        users: 300,
        products: 120,
        interactions: 6000,
        ..DemoConfig::default()
    });
    let split = Split::Random {
        test_fraction: 0.2,
        seed: 1,
    };
    Experiment::load(&mut shop, &ExperimentConfig::collaborative(), split).unwrap()
}

/// Runs `f` on the demo experiment's tuning data (a validation split of its training part).
fn with_data<T>(f: impl FnOnce(&[TuneData<'_>]) -> T) -> T {
    let e = experiment();
    let (train, valid) = e.validation_split(0.2, 7).unwrap();
    f(&[TuneData {
        dataset: e.dataset(),
        train: &train,
        valid: &valid,
    }])
}

fn hybrid(lr: f32, components: usize) -> CandidateParams {
    CandidateParams::Hybrid(
        Hyperparameters::builder()
            .loss(Loss::Warp)
            .learning_rate(lr)
            .no_components(components)
            .seed(5)
            .build()
            .unwrap(),
    )
}

fn candidates() -> Vec<Candidate> {
    let c = |label: &str, params| Candidate {
        label: label.into(),
        features: 0,
        params,
    };
    vec![
        c("cf", hybrid(0.05, 16)),
        // A learning rate this small leaves the model at its random start.
        c("frozen", hybrid(1e-6, 16)),
        c("fast", hybrid(0.1, 16)),
        c(
            "als",
            CandidateParams::Als(
                AlsParams::builder()
                    .no_components(16)
                    .alpha(5.0)
                    .regularization(0.1)
                    .seed(2)
                    .build()
                    .unwrap(),
            ),
        ),
        c("wide", hybrid(0.05, 32)),
        c("frozen2", hybrid(1e-6, 32)),
    ]
}

#[test]
fn the_search_halves_the_field_and_keeps_the_baseline() {
    let e = experiment();
    let (train, valid) = e.validation_split(0.2, 7).unwrap();
    // The validation pairs come from the training part only.
    assert_eq!(train.len() + valid.len(), e.train().len());
    let data = [TuneData {
        dataset: e.dataset(),
        train: &train,
        valid: &valid,
    }];
    let options = HalvingOptions {
        min_epochs: 1,
        max_epochs: 9,
        eta: 3,
        k: 5,
        threads: 1,
        parallel: 1,
        time_budget: None,
    };
    let candidates = candidates();
    let mut steps = 0;
    let report = successive_halving(&data, &candidates, 1, &options, |_| steps += 1).unwrap();
    // Rungs 1, 3, 9 epochs; 6 candidates → 2 (+ the baseline) → 1 (+ the baseline).
    let epochs =
        |c: usize| -> Vec<usize> { report.trials[c].scores.iter().map(|s| s.epochs).collect() };
    assert_eq!(steps, 6 + 3 + 2, "{report:#?}");
    // The baseline (here the frozen model, the worst) is never eliminated.
    assert_eq!(epochs(1), vec![1, 3, 9], "{report:#?}");
    assert!(report.trials[1].stopped.is_none());
    // The other frozen model is eliminated at the first rung.
    assert_eq!(epochs(5), vec![1]);
    assert!(report.trials[5]
        .stopped
        .as_deref()
        .unwrap()
        .contains("eliminated after 1"));
    // The winner is the best score seen anywhere, and beats the baseline at every rung.
    let best_anywhere = report
        .trials
        .iter()
        .flat_map(|t| &t.scores)
        .map(|s| s.precision)
        .fold(f64::MIN, f64::max);
    assert_eq!(report.winner.precision, best_anywhere);
    for s in &report.trials[1].scores {
        assert!(report.winner.precision >= s.precision);
    }
    assert!(report.winner.candidate != 1 && report.winner.candidate != 5);
    assert!(!report.out_of_time);
}

#[test]
fn the_same_seed_gives_the_same_search() {
    with_data(|data| {
        let options = HalvingOptions {
            min_epochs: 1,
            max_epochs: 3,
            ..HalvingOptions::default()
        };
        let run = || {
            let r = successive_halving(data, &candidates(), 0, &options, |_| {}).unwrap();
            let scores: Vec<Vec<(usize, f64)>> = r
                .trials
                .iter()
                .map(|t| t.scores.iter().map(|s| (s.epochs, s.precision)).collect())
                .collect();
            (r.winner.candidate, r.winner.epochs, scores)
        };
        assert_eq!(run(), run());
    })
}

/// Two steps at a time on one thread each give exactly the search of one step at a time
/// on one thread (each model trains on one thread either way).
#[test]
fn parallel_steps_give_the_same_search() {
    with_data(|data| {
        let run = |threads: usize, parallel: usize| {
            let options = HalvingOptions {
                min_epochs: 1,
                max_epochs: 3,
                threads,
                parallel,
                ..HalvingOptions::default()
            };
            let mut steps = 0;
            let r = successive_halving(data, &candidates(), 0, &options, |_| steps += 1).unwrap();
            let scores: Vec<Vec<(usize, f64, f64)>> = r
                .trials
                .iter()
                .map(|t| {
                    t.scores
                        .iter()
                        .map(|s| (s.epochs, s.precision, s.auc))
                        .collect()
                })
                .collect();
            (r.winner.candidate, r.winner.epochs, scores, steps)
        };
        assert_eq!(run(2, 2), run(1, 1));
    })
}

#[test]
fn budgets_and_bad_settings_are_reported() {
    with_data(|data| {
        let spent = HalvingOptions {
            time_budget: Some(Duration::ZERO),
            ..HalvingOptions::default()
        };
        let err = successive_halving(data, &candidates(), 0, &spent, |_| {}).unwrap_err();
        assert!(err.to_string().contains("time budget"), "{err}");
        let bad = |options: HalvingOptions, baseline: usize| {
            successive_halving(data, &candidates(), baseline, &options, |_| {})
                .unwrap_err()
                .to_string()
        };
        assert!(bad(HalvingOptions::default(), 99).contains("baseline"));
        let e1 = bad(
            HalvingOptions {
                eta: 1,
                ..HalvingOptions::default()
            },
            0,
        );
        assert!(e1.contains("eta"), "{e1}");
        let e0 = bad(
            HalvingOptions {
                min_epochs: 0,
                ..HalvingOptions::default()
            },
            0,
        );
        assert!(e0.contains("min_epochs"), "{e0}");
        let e2 = bad(
            HalvingOptions {
                parallel: 2,
                ..HalvingOptions::default()
            },
            0,
        );
        assert!(e2.contains("parallel"), "{e2}");
        let mut wrong = candidates();
        wrong[2].features = 3;
        let err = successive_halving(data, &wrong, 0, &HalvingOptions::default(), |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("fast"), "{err}");
    })
}
