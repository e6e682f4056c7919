//! Warm retraining (`recsys::retrain`): new users and products get rows after the known
//! ones, known ids keep their rows, training continues from the bundle's parameters and
//! optimiser state, and the gate refuses a candidate that is worse on the newest
//! interactions unless forced.

use recsys::demo::{generate, DemoConfig};
use recsys::experiment::{Experiment, ExperimentConfig, Split};
use recsys::retrain::{retrain, RetrainConfig, RetrainError};
use recsys::{
    Bundle, ExternalId, FitOptions, Hyperparameters, InMemorySource, InteractionRecord, Loss,
    Request, Strategy,
};

/// The demo shop "now", and what the base model saw: the older 90 % of the interactions,
/// without the users 1–4 and the first four products (they arrive later: no record and no
/// interaction in the base).
fn shop() -> (
    InMemorySource,
    InMemorySource,
    Vec<ExternalId>,
    Vec<ExternalId>,
) {
    let now = generate(&DemoConfig {
        users: 150,
        products: 90,
        interactions: 5_000,
        seed: 11,
    });
    let new_users: Vec<ExternalId> = (1..=4).map(ExternalId::Int).collect();
    let new_products: Vec<ExternalId> = now.products[..4]
        .iter()
        .map(|p| p.product_id.clone())
        .collect();
    let cut = now.interactions.len() * 9 / 10;
    let base = InMemorySource {
        users: now
            .users
            .iter()
            .filter(|u| !new_users.contains(&u.user_id))
            .cloned()
            .collect(),
        products: now
            .products
            .iter()
            .filter(|p| !new_products.contains(&p.product_id))
            .cloned()
            .collect(),
        interactions: now.interactions[..cut]
            .iter()
            .filter(|i| !new_users.contains(&i.user_id) && !new_products.contains(&i.product_id))
            .cloned()
            .collect(),
    };
    (now, base, new_users, new_products)
}

fn params() -> Hyperparameters {
    Hyperparameters::builder()
        .loss(Loss::Warp)
        .no_components(12)
        .learning_rate(0.05)
        .seed(3)
        .build()
        .unwrap()
}

/// The base bundle: the demo hybrid features, 10 epochs on `base`.
fn base_bundle(base: &InMemorySource, keep_training_state: bool) -> Bundle {
    let mut source = base.clone();
    let experiment =
        Experiment::load(&mut source, &ExperimentConfig::demo_hybrid(), Split::None).unwrap();
    let (model, _) = experiment.fit(params(), 10, 1, |_| {}).unwrap();
    experiment
        .bundle(model)
        .products(base.products.clone())
        .neighbours(5)
        .keep_training_state(keep_training_state)
        .build()
        .unwrap()
}

fn config(epochs: usize) -> RetrainConfig {
    RetrainConfig {
        epochs,
        holdout_fraction: 0.1,
        ..RetrainConfig::default()
    }
}

#[test]
fn new_users_and_products_get_rows_and_known_ids_keep_theirs() {
    let (mut now, base_data, new_users, new_products) = shop();
    let base = base_bundle(&base_data, true);
    let out = retrain(
        &base,
        &mut now,
        &RetrainConfig {
            force: true,
            ..config(3)
        },
    )
    .unwrap();
    let bundle = out.bundle.expect("forced: a bundle is built");
    let (before, after) = (base.model().as_hybrid().unwrap(), bundle.model());

    // Known ids keep their indices and their feature rows, bit for bit.
    for (i, id) in base.users().iter() {
        assert_eq!(bundle.users().index(id), Some(i));
        assert_eq!(
            after.user_features().row(i),
            before.user_features().row(i),
            "user {id}"
        );
    }
    for (i, id) in base.items().iter() {
        assert_eq!(bundle.items().index(id), Some(i));
        assert_eq!(after.item_features().row(i), before.item_features().row(i));
    }
    // The vocabularies grew by appending: every known feature keeps its index.
    for (f, feature) in base.item_vocabulary().features().iter().enumerate() {
        assert_eq!(bundle.item_vocabulary().feature(f), Some(feature));
    }
    // The new ones got rows after them, with their identity feature and attributes.
    assert_eq!(out.growth.users_after, base.users().len() + new_users.len());
    assert_eq!(
        out.growth.items_after,
        base.items().len() + new_products.len()
    );
    for id in &new_users {
        let row = bundle.users().index(id).expect("new user has a row");
        assert!(row >= base.users().len());
        assert!(
            after.user_features().row(row).0.len() > 1,
            "identity + attributes"
        );
    }
    for id in &new_products {
        let row = bundle.items().index(id).expect("new product has a row");
        assert!(row >= base.items().len());
        let name = bundle.products().get(row).and_then(|p| p.name.clone());
        assert!(
            name.is_some(),
            "the catalogue has the new product's details"
        );
    }
    assert!(out.growth.user_features.1 > out.growth.user_features.0);
    assert!(out.growth.item_features.1 > out.growth.item_features.0);

    // Recommendable: a new user gets model recommendations, and the new products are
    // recommended to someone and have similar products.
    let recommender = bundle.recommender();
    let mut recommended_new = 0;
    for id in bundle.users().ids() {
        let recs = recommender.recommend(&Request::new(10).user(id)).unwrap();
        assert_eq!(recs.strategy, Strategy::Model, "user {id}");
        recommended_new += recs
            .items
            .iter()
            .filter(|r| new_products.contains(&r.product_id))
            .count();
    }
    assert!(
        recommended_new > 0,
        "no new product was recommended to anyone"
    );
    for id in &new_users {
        let recs = recommender.recommend(&Request::new(10).user(id)).unwrap();
        assert_eq!(recs.items.len(), 10);
    }
    for id in &new_products {
        let recs = recommender.recommend(&Request::new(5).product(id)).unwrap();
        assert_eq!(recs.items.len(), 5, "similar to new product {id}");
    }
    // The gate's numbers are in the bundle's metadata.
    let meta = bundle.metadata();
    let description = meta.description.as_deref().unwrap();
    let gate = out.gate.as_ref().expect("new interactions to gate on");
    assert!(
        description.contains(&format!(
            "candidate P@10 {:.4}",
            gate.candidate.precision_at_k
        )),
        "{description}"
    );
    assert!(description.contains(&base.metadata().model_id));
    let stored = meta.metrics.as_ref().unwrap();
    assert_eq!(stored.precision_at_k, gate.candidate.precision_at_k);
    assert_eq!(stored.auc, gate.candidate.auc);
    assert_eq!(meta.epochs, base.metadata().epochs + 3);
}

#[test]
fn zero_epochs_keep_every_prediction_of_known_pairs() {
    let (mut now, base_data, _, _) = shop();
    let base = base_bundle(&base_data, true);
    let out = retrain(
        &base,
        &mut now,
        &RetrainConfig {
            force: true,
            ..config(0)
        },
    )
    .unwrap();
    let bundle = out.bundle.unwrap();
    let (before, after) = (
        base.model().as_hybrid().unwrap(),
        bundle.model().as_hybrid().unwrap(),
    );
    let items: Vec<usize> = (0..base.items().len()).collect();
    for user in 0..base.users().len() {
        assert_eq!(
            after.predict(user, &items).unwrap(),
            before.predict(user, &items).unwrap(),
            "user {user}"
        );
    }
    // The features the base did not know start at zero: zeroing them again changes no
    // prediction, new users' and products' included.
    let mut zeroed = after.clone();
    zeroed.zero_features_from(
        before.user_features().n_features(),
        before.item_features().n_features(),
    );
    assert!(after.user_features().n_features() > before.user_features().n_features());
    let all_items: Vec<usize> = (0..after.n_items()).collect();
    for user in 0..after.n_users() {
        assert_eq!(
            zeroed.predict(user, &all_items).unwrap(),
            after.predict(user, &all_items).unwrap(),
            "user {user}"
        );
    }
    // And the gate compared the same model with itself.
    let gate = out.gate.expect("new interactions to gate on");
    assert_eq!(gate.candidate, gate.current);
    assert!(gate.passed);
}

#[test]
fn warm_start_continues_exactly_where_training_stopped() {
    // No new data: retraining one epoch warm from a bundle with its optimiser state is the
    // eleventh epoch of the run that trained the base, bit for bit.
    let (_, base_data, _, _) = shop();
    let mut source = base_data.clone();
    let experiment =
        Experiment::load(&mut source, &ExperimentConfig::demo_hybrid(), Split::None).unwrap();
    let (model, _) = experiment.fit(params(), 10, 1, |_| {}).unwrap();
    let base = experiment
        .bundle(model.clone())
        .neighbours(5)
        .keep_training_state(true)
        .build()
        .unwrap();
    let mut continued = model;
    continued
        .fit_partial(experiment.train(), FitOptions::epochs(1))
        .unwrap();

    // The bundle's model was trained on every pair, so there is nothing to gate on: an
    // error, unless forced, which skips the gate.
    let err = retrain(&base, &mut base_data.clone(), &config(1)).unwrap_err();
    assert!(matches!(err, RetrainError::NothingNew), "{err}");
    let forced = RetrainConfig {
        force: true,
        ..config(1)
    };
    let out = retrain(&base, &mut base_data.clone(), &forced).unwrap();
    assert!(out.gate.is_none());
    assert!(out.growth.training_state_kept);
    let bundle = out.bundle.expect("forced");
    assert!(bundle
        .metadata()
        .description
        .as_deref()
        .unwrap()
        .contains("no gate"));
    let items: Vec<usize> = (0..base.items().len()).collect();
    for user in [0, 7, 42, 99] {
        assert_eq!(
            bundle
                .model()
                .as_hybrid()
                .unwrap()
                .predict(user, &items)
                .unwrap(),
            continued.predict(user, &items).unwrap()
        );
    }

    // Without the optimiser state in the bundle, the state is reset (the parameters are
    // kept): the first warm epoch takes other steps than the continued run did.
    let lean = experiment
        .bundle(base.model().clone())
        .neighbours(5)
        .build()
        .unwrap();
    assert!(!lean.metadata().training_state);
    let out = retrain(
        &lean,
        &mut base_data.clone(),
        &RetrainConfig {
            force: true,
            ..config(1)
        },
    )
    .unwrap();
    assert!(!out.growth.training_state_kept);
    let reset = out.bundle.unwrap();
    assert_ne!(
        reset
            .model()
            .as_hybrid()
            .unwrap()
            .predict(0, &items)
            .unwrap(),
        continued.predict(0, &items).unwrap()
    );
}

#[test]
fn the_gate_refuses_a_worse_candidate_unless_forced() {
    // The feed went wrong: the older interactions the retraining reads are random pairs,
    // and only the newest ones follow the shop's tastes. Training on them makes the model
    // worse on the newest interactions than the one serving (AUC), by less than two
    // standard errors of the per-user difference on this small shop.
    let (now, base_data, _, _) = shop();
    let base = base_bundle(&base_data, true);
    let users: Vec<ExternalId> = base.users().ids().to_vec();
    let products: Vec<ExternalId> = base.items().ids().to_vec();
    let cut = now.interactions.len() * 9 / 10;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut noisy = InMemorySource {
        users: base_data.users.clone(),
        products: base_data.products.clone(),
        interactions: Vec::new(),
    };
    for record in &now.interactions[..cut] {
        noisy.interactions.push(InteractionRecord {
            user_id: users[next(users.len())].clone(),
            product_id: products[next(products.len())].clone(),
            ..record.clone()
        });
    }
    noisy.interactions.extend(
        now.interactions[cut..]
            .iter()
            .filter(|i| base.users().contains(&i.user_id) && base.items().contains(&i.product_id))
            .cloned(),
    );

    // The strict gate (no noise allowance) refuses any drop.
    let strict = RetrainConfig {
        noise_z: 0.0,
        ..config(10)
    };
    let refused = retrain(&base, &mut noisy.clone(), &strict).unwrap();
    let gate = refused.gate.as_ref().unwrap();
    assert!(!gate.passed, "{}", gate.summary());
    assert!(
        gate.candidate.precision_at_k < gate.current.precision_at_k
            || gate.candidate.auc < gate.current.auc
    );
    assert!(refused.bundle.is_none(), "a refused candidate is not built");
    assert!(gate.summary().ends_with("refused"));

    // The default gate allows a drop within 2 standard errors of the per-user difference:
    // the same candidate, the same numbers, passes.
    let lenient = retrain(
        &base,
        &mut noisy.clone(),
        &RetrainConfig {
            gate_only: true,
            ..config(10)
        },
    )
    .unwrap();
    let g = lenient.gate.unwrap();
    assert_eq!((&g.candidate, &g.current), (&gate.candidate, &gate.current));
    assert!(g.auc_se > 0.0 && g.precision_se > 0.0);
    assert!(g.candidate.auc < g.current.auc);
    assert!(g.candidate.auc >= g.current.auc - 2.0 * g.auc_se);
    assert!(g.passed, "{}", g.summary());

    let forced = retrain(
        &base,
        &mut noisy,
        &RetrainConfig {
            force: true,
            ..strict
        },
    )
    .unwrap();
    assert_eq!(forced.gate, refused.gate, "the same gate, deterministic");
    let bundle = forced.bundle.expect("forced");
    let description = bundle.metadata().description.clone().unwrap();
    assert!(description.contains("refused (forced)"), "{description}");
}

#[test]
fn bad_settings_and_models_that_cannot_retrain_warm_are_refused() {
    let (mut now, base_data, _, _) = shop();
    let base = base_bundle(&base_data, false);
    for noise_z in [-1.0, f64::NAN, f64::INFINITY] {
        let err = retrain(
            &base,
            &mut now,
            &RetrainConfig {
                noise_z,
                ..config(1)
            },
        )
        .unwrap_err();
        assert!(matches!(err, RetrainError::InvalidSetting { .. }), "{err}");
    }
    for holdout_fraction in [0.0, 1.0, f64::NAN] {
        let err = retrain(
            &base,
            &mut now,
            &RetrainConfig {
                holdout_fraction,
                ..config(1)
            },
        )
        .unwrap_err();
        assert!(matches!(err, RetrainError::InvalidSetting { .. }), "{err}");
    }
    // No timestamps: nothing is newest, nothing to gate on.
    let mut untimed = now.clone();
    for i in &mut untimed.interactions {
        i.timestamp = None;
    }
    let err = retrain(&base, &mut untimed.clone(), &config(1)).unwrap_err();
    assert!(matches!(err, RetrainError::NoHoldout), "{err}");
    // Forced, the model is retrained without a gate.
    let out = retrain(
        &base,
        &mut untimed,
        &RetrainConfig {
            force: true,
            ..config(1)
        },
    )
    .unwrap();
    assert!(out.gate.is_none() && out.bundle.is_some());

    // An ALS bundle is refused with a reason.
    let mut source = base_data.clone();
    let experiment =
        Experiment::load(&mut source, &ExperimentConfig::collaborative(), Split::None).unwrap();
    let als_params = recsys::core::AlsParams::builder()
        .no_components(8)
        .seed(1)
        .build()
        .unwrap();
    let mut als = recsys::core::AlsModel::new(
        als_params,
        experiment.dataset().user_features(),
        experiment.dataset().item_features(),
    )
    .unwrap();
    als.fit(
        experiment.train(),
        recsys::core::AlsFitOptions::iterations(2),
    )
    .unwrap();
    let als_bundle = experiment.bundle(als).neighbours(3).build().unwrap();
    let err = retrain(&als_bundle, &mut now, &config(1)).unwrap_err();
    assert!(matches!(err, RetrainError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("from scratch"), "{err}");
}

#[test]
fn a_content_prior_is_carried_to_the_retrained_bundle() {
    use recsys::recommend::ContentPriorSpec;
    let (mut now, base_data, _, new_products) = shop();
    let spec = ContentPriorSpec {
        smoothing: 10.0,
        class_size_power: 1.5,
        weight: 0.2,
    };
    let mut source = base_data.clone();
    let experiment =
        Experiment::load(&mut source, &ExperimentConfig::demo_hybrid(), Split::None).unwrap();
    let (model, _) = experiment.fit(params(), 5, 1, |_| {}).unwrap();
    let base = experiment
        .bundle(model)
        .products(base_data.products.clone())
        .neighbours(5)
        .content_prior(spec)
        .build()
        .unwrap();
    let out = retrain(
        &base,
        &mut now,
        &RetrainConfig {
            force: true,
            ..config(1)
        },
    )
    .unwrap();
    let bundle = out.bundle.expect("forced: a bundle is built");
    assert_eq!(bundle.metadata().content_prior, Some(spec));
    // Refitted on the grown parts: it knows the new products.
    let (content, weight) = bundle.content_prior().expect("a prior");
    assert_eq!(weight, 0.2);
    assert_eq!(
        recsys::Scorer::n_items(content),
        base.items().len() + new_products.len()
    );
}
