//! Behavioural tests of the hybrid model: learning, determinism, incremental fit, errors.

mod common;

use std::ops::ControlFlow;

use recsys_core::{
    evaluate, CoreError, EvalOptions, FeatureMatrix, FitOptions, FoldIn, FoldInOptions,
    HybridModel, Hyperparameters, Interaction, Interactions, Loss, Popularity, Schedule, Scorer,
    UserQuery, MODEL_RECORD_VERSION,
};

fn params(loss: Loss) -> Hyperparameters {
    Hyperparameters::builder()
        .loss(loss)
        .no_components(16)
        .learning_rate(0.05)
        .seed(42)
        .build()
        .unwrap()
}

/// A collaborative model of `n_users × n_items` with `p`, fitted on `train`.
fn trained(
    p: Hyperparameters,
    n_users: usize,
    n_items: usize,
    train: &Interactions,
    options: FitOptions<'_>,
) -> HybridModel {
    let mut model = HybridModel::collaborative(p, n_users, n_items).unwrap();
    model.fit(train, options).unwrap();
    model
}

/// The error of loading a `T` from `json` changed by `edit` (which must make it invalid).
fn load_error<T>(json: &serde_json::Value, edit: &dyn Fn(&mut serde_json::Value)) -> String
where
    T: serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut damaged = json.clone();
    edit(&mut damaged);
    serde_json::from_value::<T>(damaged)
        .unwrap_err()
        .to_string()
}

#[test]
fn every_loss_beats_popularity_on_planted_structure() {
    let all = common::planted(300, 120, 4, 12, 1, 7);
    let (train, test) = all.split_random(0.2, 3).unwrap();
    let pop = evaluate(
        &Popularity::from_interactions(&train),
        &test,
        Some(&train),
        &EvalOptions::default(),
    )
    .unwrap();
    println!("popularity: {pop:?}");
    for loss in [
        Loss::Warp,
        Loss::Bpr,
        Loss::Logistic,
        Loss::WarpKos { k: 5, n: 10 },
    ] {
        for schedule in [
            Schedule::Adagrad,
            Schedule::Adadelta {
                rho: 0.95,
                epsilon: 1e-6,
            },
        ] {
            let p = params(loss)
                .to_builder()
                .schedule(schedule)
                .build()
                .unwrap();
            let model = trained(p, 300, 120, &train, FitOptions::epochs(30));
            let m = evaluate(&model, &test, Some(&train), &EvalOptions::default()).unwrap();
            println!("{loss:?} {schedule:?}: {m:?}");
            // Logistic without negatives only learns popularity-like biases plus structure
            // from co-occurrence; the ranking losses must clearly beat popularity.
            assert!(
                m.auc > pop.auc + 0.1,
                "{loss:?}/{schedule:?} auc {} vs popularity {}",
                m.auc,
                pop.auc
            );
            if loss != Loss::Logistic {
                assert!(
                    m.precision_at_k > 1.5 * pop.precision_at_k,
                    "{loss:?}/{schedule:?} p@10 {} vs popularity {}",
                    m.precision_at_k,
                    pop.precision_at_k
                );
            }
        }
    }
}

#[test]
fn one_thread_and_a_seed_are_bit_identical() {
    let train = common::planted(100, 50, 3, 8, 1, 1);
    for loss in [
        Loss::Warp,
        Loss::Bpr,
        Loss::Logistic,
        Loss::WarpKos { k: 2, n: 5 },
    ] {
        let a = trained(params(loss), 100, 50, &train, FitOptions::epochs(3));
        let b = trained(params(loss), 100, 50, &train, FitOptions::epochs(3));
        assert_eq!(a, b, "{loss:?}");
        let reseeded = params(loss).to_builder().seed(43).build().unwrap();
        let c = trained(reseeded, 100, 50, &train, FitOptions::epochs(3));
        assert_ne!(a, c, "{loss:?}: another seed must give another model");
    }
}

#[test]
fn two_threads_learn_as_well_as_one() {
    let all = common::planted(300, 120, 4, 12, 1, 11);
    let (train, test) = all.split_random(0.2, 5).unwrap();
    let one = trained(params(Loss::Warp), 300, 120, &train, FitOptions::epochs(20));
    let two = trained(
        params(Loss::Warp),
        300,
        120,
        &train,
        FitOptions::epochs(20).threads(2),
    );
    let m1 = evaluate(&one, &test, Some(&train), &EvalOptions::default()).unwrap();
    let m2 = evaluate(
        &two,
        &test,
        Some(&train),
        &EvalOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert!((m1.auc - m2.auc).abs() < 0.03, "{m1:?} vs {m2:?}");
}

/// Each of `n` rows: its identity, its taste group's feature (`n + row % 4`) and a feature
/// every row shares (`n + 4`).
fn grouped_features(n: usize) -> FeatureMatrix {
    FeatureMatrix::from_rows(
        n + 5,
        (0..n).map(|r| vec![(r, 1.0), (n + r % 4, 1.0), (n + 4, 1.0)]),
    )
    .unwrap()
}

#[test]
fn two_threads_train_shared_features_as_well_as_one() {
    // The group and shared features are in a quarter or all of the rows: with two threads
    // they are hot rows, trained in per-thread copies that are merged into the model.
    let all = common::planted(300, 120, 4, 12, 1, 11);
    let (train, test) = all.split_random(0.2, 5).unwrap();
    let adadelta = Schedule::Adadelta {
        rho: 0.95,
        epsilon: 1e-6,
    };
    for schedule in [Schedule::Adagrad, adadelta] {
        for loss in [Loss::Warp, Loss::Bpr] {
            let p = params(loss)
                .to_builder()
                .schedule(schedule)
                .build()
                .unwrap();
            let untrained =
                HybridModel::new(p.clone(), grouped_features(300), grouped_features(120)).unwrap();
            let fit = |threads| {
                let mut m = untrained.clone();
                m.fit(&train, FitOptions::epochs(20).threads(threads))
                    .unwrap();
                m
            };
            let (one, two) = (fit(1), fit(2));
            let metrics = |m: &HybridModel| {
                evaluate(m, &test, Some(&train), &EvalOptions::default()).unwrap()
            };
            let (m1, m2) = (metrics(&one), metrics(&two));
            let what = format!("{loss:?}/{schedule:?}");
            assert!((m1.auc - m2.auc).abs() < 0.03, "{what}: {m1:?} vs {m2:?}");
            // The shared rows did train (a merge that lost the threads' changes would leave
            // them as initialised), about as far as with one thread.
            let moved = |m: &HybridModel| {
                let (now, then) = (
                    m.item_feature_embeddings(),
                    untrained.item_feature_embeddings(),
                );
                (120..125)
                    .map(|f| (&now.row(f) - &then.row(f)).mapv(f32::abs).sum())
                    .sum::<f32>()
            };
            assert!(
                moved(&two) > 0.5 * moved(&one) && moved(&two) < 2.0 * moved(&one),
                "{what}: {} vs {}",
                moved(&two),
                moved(&one)
            );
            // A new user described by a group feature alone prefers that group's items.
            for g in 0..4 {
                let mut scores = Vec::new();
                two.score_all(UserQuery::Features(&[(300 + g, 1.0)]), &mut scores)
                    .unwrap();
                let top = recsys_core::top_k(&scores, 10, |_| false);
                let in_group = top.iter().filter(|(i, _)| i % 4 == g).count();
                assert!(in_group >= 7, "{what}, group {g}: {top:?}");
            }
        }
    }
}

#[test]
fn callback_sees_every_epoch_and_can_stop() {
    let train = common::planted(50, 30, 2, 5, 0, 2);
    let mut model = HybridModel::collaborative(params(Loss::Warp), 50, 30).unwrap();
    let mut seen = Vec::new();
    model
        .fit(
            &train,
            FitOptions::epochs(20).on_epoch(|r, m| {
                seen.push((r.epoch, r.total_epochs, r.loss));
                assert_eq!(m.epochs_trained(), r.total_epochs);
                if r.epoch == 9 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            }),
        )
        .unwrap();
    assert_eq!(seen.len(), 10);
    assert_eq!(model.epochs_trained(), 10);
    assert!(seen.iter().all(|s| s.2.is_finite() && s.2 >= 0.0));
    // WARP's loss estimate falls as the model learns (on this small fixture it starts
    // falling after a few epochs).
    assert!(seen[9].2 < seen[0].2, "{seen:?}");
}

#[test]
fn validation_metrics_arrive_every_epoch_and_improve() {
    let all = common::planted(200, 60, 3, 10, 1, 4);
    let (train, test) = all.split_random(0.2, 8).unwrap();
    let mut model = HybridModel::collaborative(params(Loss::Warp), 200, 60).unwrap();
    let mut aucs = Vec::new();
    model
        .fit(
            &train,
            FitOptions::epochs(8)
                .validate_on(&test, Some(&train), EvalOptions::default())
                .on_epoch(|r, _| {
                    aucs.push(r.validation.expect("validation requested").auc);
                    ControlFlow::Continue(())
                }),
        )
        .unwrap();
    assert_eq!(aucs.len(), 8);
    assert!(aucs[7] > aucs[0] + 0.05, "{aucs:?}");
    // The last validation is exactly what evaluating the final model gives.
    let last = evaluate(&model, &test, Some(&train), &EvalOptions::default()).unwrap();
    assert_eq!(last.auc, aucs[7]);
}

#[test]
fn divergence_is_a_typed_error_naming_the_learning_rate() {
    let train = common::planted(50, 30, 2, 5, 0, 2);
    let p = Hyperparameters::builder()
        .loss(Loss::Logistic)
        .schedule(Schedule::Adagrad)
        .learning_rate(1e30)
        .build()
        .unwrap();
    let mut model = HybridModel::collaborative(p, 50, 30).unwrap();
    let err = model.fit(&train, FitOptions::epochs(5)).unwrap_err();
    assert!(matches!(err, CoreError::Diverged { .. }), "{err:?}");
    assert!(err.to_string().contains("learning_rate"), "{err}");
}

#[test]
fn shape_errors_are_reported() {
    let train = Interactions::from_pairs(3, 4, [(0, 0)]).unwrap();
    let mut model = HybridModel::collaborative(params(Loss::Warp), 3, 5).unwrap();
    let err = model.fit(&train, FitOptions::epochs(1)).unwrap_err();
    assert!(
        matches!(
            err,
            CoreError::ShapeMismatch {
                expected: 5,
                found: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        model.predict(9, &[0]),
        Err(CoreError::IndexOutOfRange { what: "user", .. })
    ));
    assert!(matches!(
        model.predict(0, &[7]),
        Err(CoreError::IndexOutOfRange { what: "item", .. })
    ));
    assert!(matches!(
        model.fit(
            &Interactions::from_pairs(3, 5, []).unwrap(),
            FitOptions::epochs(1)
        ),
        Err(CoreError::Empty(_))
    ));
}

#[test]
fn fit_partial_after_new_users_items_and_features() {
    let train = common::planted(60, 40, 2, 8, 0, 3);
    let uf = FeatureMatrix::identity(60);
    let itf = FeatureMatrix::identity(40);
    let mut model = HybridModel::new(params(Loss::Warp), uf, itf).unwrap();
    model.fit(&train, FitOptions::epochs(10)).unwrap();
    let before = model.predict_all(0).unwrap();

    // Two new users, one new item and one new item feature shared by items 0 and 40.
    let uf2 = FeatureMatrix::identity(62);
    let mut rows: Vec<Vec<(usize, f32)>> = (0..41).map(|i| vec![(i, 1.0)]).collect();
    rows[0].push((41, 1.0));
    rows[40].push((41, 1.0));
    let itf2 = FeatureMatrix::from_rows(42, rows).unwrap();
    model.extend(uf2, itf2).unwrap();
    assert_eq!((model.n_users(), model.n_items()), (62, 41));
    let mut entries: Vec<Interaction> = train.iter().collect();
    entries.extend([
        Interaction::positive(60, 40),
        Interaction::positive(61, 0),
        Interaction::positive(61, 2),
    ]);
    let train2 = Interactions::from_entries(62, 41, entries).unwrap();
    model.fit_partial(&train2, FitOptions::epochs(5)).unwrap();
    assert_eq!(model.epochs_trained(), 15);
    let after = model.predict_all(0).unwrap();
    assert_eq!(after.len(), 41);
    assert_ne!(before[..], after[..40]);
    assert!(model
        .predict(61, &[0, 40])
        .unwrap()
        .iter()
        .all(|s| s.is_finite()));
    // Shrinking is refused.
    assert!(model
        .extend(FeatureMatrix::identity(10), FeatureMatrix::identity(41))
        .is_err());
}

#[test]
fn cold_start_scores_from_features() {
    // Users carry a group feature (60 + group) besides identity; a new user with only the
    // group feature must prefer that group's items.
    let all = common::planted(200, 60, 2, 10, 0, 5);
    let rows: Vec<Vec<(usize, f32)>> = (0..200)
        .map(|u| vec![(u, 1.0), (200 + u % 2, 1.0)])
        .collect();
    let uf = FeatureMatrix::from_rows(202, rows).unwrap();
    let mut model = HybridModel::new(params(Loss::Warp), uf, FeatureMatrix::identity(60)).unwrap();
    model.fit(&all, FitOptions::epochs(20)).unwrap();
    for g in 0..2 {
        let mut scores = Vec::new();
        model
            .score_all(UserQuery::Features(&[(200 + g, 1.0)]), &mut scores)
            .unwrap();
        let top = recsys_core::top_k(&scores, 10, |_| false);
        let in_group = top.iter().filter(|(i, _)| i % 2 == g).count();
        assert!(in_group >= 8, "group {g}: {top:?}");
    }
    assert!(model
        .user_representation_from_features(&[(999, 1.0)])
        .is_err());
}

#[test]
fn folded_in_user_agrees_with_retrained_model() {
    let all = common::planted(201, 80, 4, 15, 0, 9);
    // User 200 is new: train without it, then fold it in.
    let without = all.filter(|e| e.user != 200);
    let model = trained(
        params(Loss::Warp),
        201,
        80,
        &without,
        FitOptions::epochs(25),
    );
    let retrained = trained(params(Loss::Warp), 201, 80, &all, FitOptions::epochs(25));

    let items: Vec<usize> = all.user_items(200).iter().map(|&i| i as usize).collect();
    let fold = FoldIn::new(&model, &without, FoldInOptions::default()).unwrap();
    let rep = fold.fold_in(&items).unwrap();
    let mut folded_scores = Vec::new();
    model
        .score_all(UserQuery::Representation(&rep), &mut folded_scores)
        .unwrap();
    let seen = |i: usize| items.contains(&i);
    let folded_top: Vec<usize> = recsys_core::top_k(&folded_scores, 10, seen)
        .into_iter()
        .map(|x| x.0)
        .collect();
    let retrained_top: Vec<usize> = retrained
        .recommend(200, 10, seen)
        .unwrap()
        .into_iter()
        .map(|x| x.0)
        .collect();
    let overlap = folded_top
        .iter()
        .filter(|i| retrained_top.contains(i))
        .count();
    let group = 200 % 4;
    let folded_in_group = folded_top.iter().filter(|&&i| i % 4 == group).count();
    println!("folded {folded_top:?}\nretrained {retrained_top:?}\noverlap {overlap}");
    // A random top-10 among the 80 - |items| candidates would overlap ~1.5 items.
    assert!(overlap >= 5, "overlap {overlap}");
    assert!(
        folded_in_group >= 9,
        "folded-in top-10 has {folded_in_group} items of the user's group"
    );
    assert!(fold.fold_in(&[]).is_err());
    assert!(fold.fold_in(&[1000]).is_err());
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<HybridModel>();
    check::<Interactions>();
    check::<FeatureMatrix>();
    check::<Hyperparameters>();
    check::<FoldIn>();
    check::<Popularity>();
    check::<CoreError>();
    check::<recsys_core::Metrics>();
    check::<Box<dyn Scorer>>();
}

/// A scorer that hides the model's factors, forcing evaluation onto the generic path.
struct Opaque<'a>(&'a HybridModel);

impl Scorer for Opaque<'_> {
    fn n_items(&self) -> usize {
        self.0.n_items()
    }
    fn score_all(&self, user: UserQuery<'_>, out: &mut Vec<f32>) -> recsys_core::Result<()> {
        self.0.score_all(user, out)
    }
}

#[test]
fn blocked_evaluation_equals_the_generic_path() {
    // More users than one block and more items than one chunk.
    let all = common::planted(150, 5000, 5, 30, 3, 21);
    let (train, test) = all.split_random(0.3, 2).unwrap();
    let model = trained(params(Loss::Bpr), 150, 5000, &train, FitOptions::epochs(3));
    let mask: Vec<bool> = (0..5000).map(|i| i % 3 != 0).collect();
    for candidates in [None, Some(mask)] {
        let opts = EvalOptions {
            candidates,
            threads: 2,
            ..Default::default()
        };
        let fast = recsys_core::rank_test_items(&model, &test, Some(&train), &opts).unwrap();
        let slow =
            recsys_core::rank_test_items(&Opaque(&model), &test, Some(&train), &opts).unwrap();
        assert_eq!(fast, slow);
        let a = evaluate(&model, &test, Some(&train), &opts).unwrap();
        let b = evaluate(&Opaque(&model), &test, Some(&train), &opts).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn a_model_round_trips_through_json_and_keeps_training_identically() {
    // JSON is the human-readable path of the parameter buffers (binary formats store bytes;
    // the bundle tests of recsys-recommend cover that path).
    let train = common::planted(60, 40, 3, 6, 1, 4);
    let mut a = trained(params(Loss::Warp), 60, 40, &train, FitOptions::epochs(2));
    let text = serde_json::to_string(&a).unwrap();
    let mut b: HybridModel = serde_json::from_str(&text).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.predict_all(3).unwrap(), b.predict_all(3).unwrap());
    a.fit_partial(&train, FitOptions::epochs(1)).unwrap();
    b.fit_partial(&train, FitOptions::epochs(1)).unwrap();
    assert_eq!(a, b, "the optimiser state survives the round trip");
}

#[test]
fn a_damaged_model_file_is_an_error_not_a_panic() {
    let model = HybridModel::collaborative(params(Loss::Warp), 6, 5).unwrap();
    let json = serde_json::to_value(&model).unwrap();
    serde_json::from_value::<HybridModel>(json.clone()).expect("an intact model loads");
    // The saved form is the documented record: 5 items × 16 components, no padding.
    assert_eq!(json["version"], MODEL_RECORD_VERSION);
    assert_eq!(
        json["items"]["embeddings"].as_array().unwrap().len(),
        5 * 16
    );
    assert_eq!(json["items"]["biases"].as_array().unwrap().len(), 5);
    let refused = |edit: &dyn Fn(&mut serde_json::Value)| load_error::<HybridModel>(&json, edit);
    let err = refused(&|j| {
        j["items"]["embeddings"].as_array_mut().unwrap().pop();
    });
    assert!(
        err.contains("79 embeddings for 5 features × 16 components (expected 80)"),
        "{err}"
    );
    let err = refused(&|j| j["users"]["optimiser"] = serde_json::Value::Null);
    assert!(
        err.contains("optimiser state saved for one side only"),
        "{err}"
    );
    // A record from another version of the format says what to do.
    let err = refused(&|j| j["version"] = 2.into());
    assert!(
        err.contains("record version 2 is not supported") && err.contains("re-train"),
        "{err}"
    );
}

/// A model saved without its optimiser state predicts like the original, refuses to
/// continue training with a clear error, and trains again after a reset.
#[test]
fn a_model_saved_without_training_state_predicts_and_refuses_to_continue() {
    let train = Interactions::from_pairs(
        60,
        40,
        (0..60).flat_map(|u| (0..3).map(move |j| (u, (u + 7 * j) % 40))),
    )
    .unwrap();
    for schedule in [
        Schedule::Adagrad,
        Schedule::Adadelta {
            rho: 0.95,
            epsilon: 1e-6,
        },
    ] {
        let p = Hyperparameters::builder()
            .loss(Loss::Warp)
            .schedule(schedule)
            .no_components(8)
            .seed(3)
            .build()
            .unwrap();
        let full = trained(p, 60, 40, &train, FitOptions::epochs(2));
        let full_bytes = serde_json::to_vec(&full).unwrap();
        let mut light = full.clone();
        light.drop_training_state();
        assert!(full.has_training_state() && !light.has_training_state());
        let light_bytes = serde_json::to_vec(&light).unwrap();
        assert!(
            light_bytes.len() * 3 / 2 < full_bytes.len(),
            "{} vs {} bytes",
            light_bytes.len(),
            full_bytes.len()
        );
        let mut back: HybridModel = serde_json::from_slice(&light_bytes).unwrap();
        assert!(!back.has_training_state());
        assert_eq!(back.predict_all(5).unwrap(), full.predict_all(5).unwrap());
        let err = back.fit_partial(&train, FitOptions::epochs(1)).unwrap_err();
        assert_eq!(err, CoreError::NoTrainingState);
        assert!(err.to_string().contains("reset_training_state"), "{err}");
        back.reset_training_state();
        back.fit_partial(&train, FitOptions::epochs(1)).unwrap();
        assert_eq!(back.epochs_trained(), 3);
        // A full `fit` starts afresh, so it needs no saved state.
        let mut again: HybridModel = serde_json::from_slice(&light_bytes).unwrap();
        again.fit(&train, FitOptions::epochs(2)).unwrap();
        assert_eq!(again.predict_all(5).unwrap(), full.predict_all(5).unwrap());
    }
}

#[test]
fn a_model_file_whose_parts_disagree_is_an_error_not_a_panic() {
    // Hybrid: 6 users with 2 extra features, 5 items with 1 extra feature.
    let users =
        FeatureMatrix::from_rows(8, (0..6).map(|u| vec![(u, 1.0), (6 + u % 2, 0.5)])).unwrap();
    let items = FeatureMatrix::from_rows(6, (0..5).map(|i| vec![(i, 1.0), (5, 0.5)])).unwrap();
    let train = Interactions::from_pairs(6, 5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)]).unwrap();
    let mut model = HybridModel::new(params(Loss::Warp), users, items).unwrap();
    model.fit(&train, FitOptions::epochs(2)).unwrap();
    model.validate().unwrap();
    let json = serde_json::to_value(&model).unwrap();
    serde_json::from_value::<HybridModel>(json.clone()).expect("an intact model loads");
    let refused = |edit: &dyn Fn(&mut serde_json::Value)| load_error::<HybridModel>(&json, edit);
    // The user feature matrix names a column the model has no parameters for.
    let err = refused(&|j| j["user_features"]["csr"]["ncols"] = 9.into());
    assert!(
        err.contains("8 feature rows for the user feature matrix's 9 columns"),
        "{err}"
    );
    // Row pointers that decrease, and a feature index past the columns.
    let err = refused(&|j| j["item_features"]["csr"]["indptr"][2] = 1.into());
    assert!(err.contains("model item feature matrix"), "{err}");
    let err = refused(&|j| j["item_features"]["csr"]["indices"][1] = 6.into());
    assert!(err.contains("model item feature matrix"), "{err}");
    let err = refused(&|j| j["user_features"]["csr"]["storage"] = "CSC".into());
    assert!(err.contains("stored by column"), "{err}");
    // Parameters for another number of components, and a non-finite parameter.
    let err = refused(&|j| j["params"]["no_components"] = 15.into());
    assert!(
        err.contains("16 components, the hyper-parameters say 15"),
        "{err}"
    );
    let err = refused(&|j| j["users"]["embeddings"][3] = 1e300.into());
    assert!(err.contains("parameter inf is not finite"), "{err}");
    // Adadelta's state is missing for an adadelta schedule.
    let err = refused(&|j| {
        j["params"]["schedule"] = serde_json::json!({"Adadelta": {"rho": 0.95, "epsilon": 1e-6}})
    });
    assert!(err.contains("0 embedding deltas"), "{err}");
    let err = refused(&|j| j["params"]["learning_rate"] = 0.into());
    assert!(err.contains("learning_rate"), "{err}");
    let err = refused(&|j| j["rng"]["s"] = serde_json::json!([0, 0, 0, 0]));
    assert!(err.contains("random generator"), "{err}");
}

#[test]
fn interactions_and_popularity_are_checked_when_deserialised() {
    let x = Interactions::from_pairs(3, 4, [(0, 1), (0, 3), (2, 0)]).unwrap();
    let json = serde_json::to_value(&x).unwrap();
    assert_eq!(
        serde_json::from_value::<Interactions>(json.clone()).unwrap(),
        x
    );
    let refused = |edit: &dyn Fn(&mut serde_json::Value)| load_error::<Interactions>(&json, edit);
    // The row pointer past the entries that made `user_items` panic.
    let err = refused(&|j| j["indptr"][1] = 9.into());
    assert!(
        err.contains("row pointer 2 (2) is below row pointer 1 (9)"),
        "{err}"
    );
    let err = refused(&|j| j["indptr"][3] = 2.into());
    assert!(
        err.contains("row pointers run from 0 to 2 over 3 entries"),
        "{err}"
    );
    let err = refused(&|j| j["items"][1] = 0.into());
    assert!(err.contains("not sorted and distinct at entry 1"), "{err}");
    let err = refused(&|j| j["items"][2] = 4.into());
    assert!(err.contains("item 4 is out of range"), "{err}");
    let err = refused(&|j| j["users"][2] = 1.into());
    assert!(err.contains("names user 1"), "{err}");
    let err = refused(&|j| j["weights"][0] = (-1.0).into());
    assert!(err.contains("weight -1"), "{err}");
    let err = refused(&|j| j["n_users"] = u64::MAX.into());
    assert!(err.contains("exceed"), "{err}");

    let p = Popularity::from_counts(vec![1.0, 2.0]);
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(serde_json::from_value::<Popularity>(json).unwrap(), p);
    assert!(Popularity::from_counts(vec![1.0, f32::NAN])
        .validate()
        .is_err());
    let err = serde_json::from_str::<Popularity>(r#"{"counts": [1.0, 1e300]}"#).unwrap_err();
    assert!(err.to_string().contains("popularity counts"), "{err}");
}

#[test]
fn blended_scores_are_model_scores_plus_weighted_cosine() {
    let train = common::planted(50, 45, 3, 6, 1, 8); // 45 items: a partial block of 8
    let model = trained(params(Loss::Warp), 50, 45, &train, FitOptions::epochs(3));
    let reps = model.item_representations();
    let user = model.user_representation(7).unwrap();
    let mut plain = Vec::new();
    reps.score_all(&user, &mut plain);
    let v = reps.vectors();
    let cos = |a: usize, b: usize| {
        let (x, y) = (v.row(a), v.row(b));
        let c = f64::from(x.dot(&y)) / (f64::from(x.dot(&x)).sqrt() * f64::from(y.dot(&y)).sqrt());
        c.clamp(-1.0, 1.0) as f32
    };
    for (towards, weight) in [(0, 0.25f32), (17, 2.0), (44, -1.0)] {
        let mut blended = Vec::new();
        reps.score_all_with_cosine(&user, towards, weight, &mut blended)
            .unwrap();
        for i in 0..45 {
            let want = plain[i] + weight * cos(towards, i);
            assert!(
                (blended[i] - want).abs() < 1e-4,
                "item {i} towards {towards}: {} vs {want}",
                blended[i]
            );
        }
    }
    let mut out = Vec::new();
    assert!(matches!(
        reps.score_all_with_cosine(&user, 45, 1.0, &mut out),
        Err(CoreError::IndexOutOfRange { .. })
    ));
}

/// Early stopping watches the validation metric, stops after `patience` epochs without a
/// better value, and returns the model exactly as it was after the best epoch (the same as
/// training that many epochs from scratch, on one thread).
#[test]
fn early_stopping_keeps_the_best_epoch() {
    use recsys_core::ValidationMetric;
    let all = common::planted(200, 80, 4, 10, 1, 5);
    let (train, valid) = all.split_random(0.2, 9).unwrap();
    // A large learning rate makes validation precision wander instead of rising steadily.
    let p = Hyperparameters::builder()
        .loss(Loss::Warp)
        .no_components(8)
        .learning_rate(0.3)
        .seed(4)
        .build()
        .unwrap();
    let opts = EvalOptions {
        k: 5,
        ..EvalOptions::default()
    };
    let mut history = Vec::new();
    let mut model = HybridModel::collaborative(p.clone(), 200, 80).unwrap();
    model
        .fit(
            &train,
            FitOptions::epochs(60)
                .validate_on(&valid, Some(&train), opts.clone())
                .early_stopping(2, ValidationMetric::Precision)
                .on_epoch(|r, _| {
                    history.push(r.validation.as_ref().unwrap().precision_at_k);
                    ControlFlow::Continue(())
                }),
        )
        .unwrap();
    // The first epoch with the highest value, then exactly `patience` worse epochs.
    let best = (0..history.len())
        .find(|&i| {
            history[..i].iter().all(|&v| v < history[i])
                && history[i..].iter().all(|&v| v <= history[i])
        })
        .unwrap();
    assert!(history.len() < 60, "stopped early: {history:?}");
    assert_eq!(history.len(), best + 1 + 2, "{history:?}");
    assert_eq!(model.epochs_trained(), best + 1);
    let again = evaluate(&model, &valid, Some(&train), &opts).unwrap();
    assert_eq!(again.precision_at_k, history[best]);
    let reference = trained(p, 200, 80, &train, FitOptions::epochs(best + 1));
    assert_eq!(model, reference, "the kept state is the best epoch's");

    // Misuse is an error, not a silent no-op.
    let mut m = HybridModel::collaborative(params(Loss::Warp), 200, 80).unwrap();
    let err = m
        .fit(
            &train,
            FitOptions::epochs(3).early_stopping(2, ValidationMetric::Auc),
        )
        .unwrap_err();
    assert!(err.to_string().contains("validate_on"), "{err}");
    let err = m
        .fit(
            &train,
            FitOptions::epochs(3)
                .validate_on(&valid, Some(&train), opts)
                .early_stopping(0, ValidationMetric::Auc),
        )
        .unwrap_err();
    assert!(err.to_string().contains("patience"), "{err}");
}

#[test]
fn fold_in_with_a_prior_is_pulled_towards_it() {
    let all = common::planted(201, 80, 4, 15, 0, 9);
    let without = all.filter(|e| e.user != 200);
    let mut model = HybridModel::collaborative(params(Loss::Warp), 201, 80).unwrap();
    model.fit(&without, FitOptions::epochs(10)).unwrap();
    let fold = FoldIn::new(&model, &without, FoldInOptions::default()).unwrap();
    let items: Vec<usize> = all.user_items(200).iter().map(|&i| i as usize).collect();
    let plain = fold.fold_in(&items[..1]).unwrap();
    let k = plain.vector.len();
    // A zero prior is plain fold-in (its bias kept).
    let zero = recsys_core::Representation {
        vector: ndarray::Array1::zeros(k),
        bias: 0.5,
    };
    let same = fold.fold_in_with_prior(&items[..1], &zero).unwrap();
    for (a, b) in plain.vector.iter().zip(same.vector.iter()) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
    }
    assert_eq!(same.bias, 0.5);
    // Another trained user's vector as prior: the result moves towards it.
    let prior = model.user_representation(3).unwrap();
    let pulled = fold.fold_in_with_prior(&items[..1], &prior).unwrap();
    let distance =
        |r: &recsys_core::Representation| (&r.vector - &prior.vector).mapv(|d| d * d).sum().sqrt();
    assert!(
        distance(&pulled) < distance(&plain),
        "{} vs {}",
        distance(&pulled),
        distance(&plain)
    );
    // A prior of the wrong size is refused.
    let wrong = recsys_core::Representation {
        vector: ndarray::Array1::zeros(k + 1),
        bias: 0.0,
    };
    assert!(fold.fold_in_with_prior(&items, &wrong).is_err());
}
