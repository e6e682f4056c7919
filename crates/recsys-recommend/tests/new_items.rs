//! Products added after training (`NewItems`): represented from their attributes, served
//! by `recommend()` beside the trained items, for both model families; checked against
//! brute-force references and the planted north/south structure of the test shop.

mod common;

use std::collections::HashSet;

use common::{id, user, world, World};
use recsys_core::{AlsFitOptions, AlsModel, AlsParams, ColdStartRefit, Model, Popularity};
use recsys_features::{Attributes, ExternalId, FeatureSpec, ProductRecord};
use recsys_recommend::{
    NewItems, Reason, RecommendError, Recommendation, Recommender, Request, Strategy,
};
use recsys_similarity::{ExactCosine, NeighbourTable};

/// Products 0..9 are side "n" (bought by the even, "north" users), 9..18 side "s".
fn is_north(item: &ExternalId) -> bool {
    matches!(item, ExternalId::Int(p) if (0..9).contains(p) || *p == NEW_NORTH)
}

const NEW_NORTH: i64 = 100;
const NEW_SOUTH: i64 = 101;

fn product(p: i64, side: Option<&str>) -> ProductRecord {
    let mut attributes = Attributes::new();
    if let Some(side) = side {
        attributes.insert("side".into(), side.into());
    }
    ProductRecord {
        product_id: ExternalId::Int(p),
        name: Some(format!("New product {p}")),
        price: Some(3.5),
        image: None,
        attributes,
    }
}

/// What the shop added after training: one product per side.
fn added() -> Vec<ProductRecord> {
    vec![product(NEW_NORTH, Some("n")), product(NEW_SOUTH, Some("s"))]
}

/// The test shop's model of either family, with the item cold-start refit (what makes the
/// metadata embeddings a prediction of an item's representation).
fn models(w: &World) -> Vec<(&'static str, Model)> {
    let mut hybrid = Model::Hybrid(w.model.clone());
    hybrid
        .refit_cold_start(&w.train, &ColdStartRefit::new(0.1))
        .unwrap();
    let params = AlsParams::builder()
        .no_components(4)
        .alpha(10.0)
        .regularization(0.1)
        .seed(3)
        .build()
        .unwrap();
    let mut als =
        AlsModel::new(params, w.dataset.user_features(), w.dataset.item_features()).unwrap();
    als.fit(&w.train, AlsFitOptions::iterations(15)).unwrap();
    let mut als = Model::Als(als);
    als.refit_cold_start(&w.train, &ColdStartRefit::new(0.1))
        .unwrap();
    vec![("hybrid", hybrid), ("als", als)]
}

struct Parts {
    exact: ExactCosine,
    table: NeighbourTable,
    popularity: Popularity,
    new: NewItems,
}

fn parts(w: &World, model: &Model) -> Parts {
    let exact = ExactCosine::new(model.item_representations().vectors());
    let table = NeighbourTable::build(&exact, 3).unwrap();
    let new = NewItems::new(
        model,
        w.dataset.items(),
        w.dataset.item_vocabulary(),
        added(),
    )
    .unwrap();
    Parts {
        exact,
        table,
        popularity: Popularity::from_interactions(&w.train),
        new,
    }
}

fn recommender<'a>(w: &'a World, model: &'a Model, p: &'a Parts) -> Recommender<'a> {
    Recommender::new(model, w.dataset.users(), w.dataset.items())
        .unwrap()
        .with_similarity(&p.exact)
        .unwrap()
        .with_model_similarity()
        .unwrap()
        .with_neighbours(&p.table)
        .unwrap()
        .with_popularity(&p.popularity)
        .unwrap()
        .with_seen(&w.train)
        .unwrap()
        .with_user_vocabulary(w.dataset.user_vocabulary())
        .with_new_items(&p.new)
        .unwrap()
}

/// A new product's representation computed the long way: its feature row by hand (side
/// "n" or "s", weight 1: the spec does not normalise), through the model.
fn new_vector(w: &World, model: &Model, side: &str) -> (Vec<f32>, f32) {
    let f = w
        .dataset
        .item_vocabulary()
        .value_index("side", side)
        .unwrap();
    let r = model
        .item_representation_from_features(&[(f, 1.0)])
        .unwrap();
    (r.vector.to_vec(), r.bias)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let d = dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt());
    if d.is_finite() {
        d
    } else {
        0.0
    }
}

fn ids(items: &[Recommendation]) -> Vec<ExternalId> {
    items.iter().map(|r| r.product_id.clone()).collect()
}

fn position(items: &[Recommendation], p: i64) -> Option<usize> {
    items
        .iter()
        .position(|r| r.product_id == ExternalId::Int(p))
}

#[test]
fn a_new_product_is_recommended_to_the_users_of_its_group() {
    let w = world();
    for (family, model) in models(&w) {
        let p = parts(&w, &model);
        assert_eq!(p.new.len(), 2, "{family}");
        let r = recommender(&w, &model, &p);
        let (north, north_bias) = new_vector(&w, &model, "n");
        for u in 0..12 {
            let answer = r.recommend(&Request::new(5).user(&user(u))).unwrap();
            let (mine, theirs) = if u % 2 == 0 {
                (NEW_NORTH, NEW_SOUTH)
            } else {
                (NEW_SOUTH, NEW_NORTH)
            };
            // Four unseen products of the user's side, then the other side's nine: the
            // new product of the user's side is among the top five, the other one is not.
            let at = position(&answer.items, mine)
                .unwrap_or_else(|| panic!("{family}: user {u} did not get {mine}: {answer:?}"));
            assert!(
                position(&answer.items, theirs).is_none(),
                "{family} user {u}"
            );
            let item = &answer.items[at];
            assert_eq!(item.item, 18 + p.new.index(&ExternalId::Int(mine)).unwrap());
            assert_eq!(
                item.reason,
                Reason::NewProduct {
                    scored_as: Box::new(Reason::Model)
                }
            );
            assert_eq!(item.reason.to_string(), "model+new-product");
            // Score = user · item + item bias (+ user bias), as for a trained item.
            if mine == NEW_NORTH {
                let ui = w.dataset.users().index(&user(u)).unwrap();
                let rep = model.user_representation(ui).unwrap();
                let expected = dot(rep.vector.as_slice().unwrap(), &north) + north_bias + rep.bias;
                assert!(
                    (item.score - expected).abs() < 1e-4,
                    "{family}: {item:?} vs {expected}"
                );
            }
            // Trained products keep their reason.
            assert!(answer
                .items
                .iter()
                .filter(|r| r.item < 18)
                .all(|r| r.reason == Reason::Model));
        }
    }
}

#[test]
fn a_new_product_has_the_products_of_its_group_as_similar_products() {
    let w = world();
    for (family, model) in models(&w) {
        let p = parts(&w, &model);
        let r = recommender(&w, &model, &p);
        let reps = model.item_representations().vectors();
        let (north, _) = new_vector(&w, &model, "n");
        let viewed = id(NEW_NORTH);
        let answer = r.recommend(&Request::new(6).product(&viewed)).unwrap();
        assert_eq!(answer.strategy, Strategy::SimilarProducts, "{family}");
        assert!(answer.notes.is_empty(), "{family}: {:?}", answer.notes);
        assert_eq!(answer.items.len(), 6);
        assert!(
            answer.items.iter().all(|r| is_north(&r.product_id)),
            "{family}: {:?}",
            ids(&answer.items)
        );
        assert!(position(&answer.items, NEW_NORTH).is_none(), "never itself");
        // Exactly the brute-force cosine top 6 over every other item.
        let mut reference: Vec<(ExternalId, f32)> = (0..18)
            .map(|i| {
                let v = reps.row(i).to_vec();
                (w.dataset.items().id(i).unwrap().clone(), cosine(&v, &north))
            })
            .collect();
        let (south, _) = new_vector(&w, &model, "s");
        reference.push((id(NEW_SOUTH), cosine(&south, &north)));
        reference.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (got, want) in answer.items.iter().zip(&reference) {
            assert_eq!(got.product_id, want.0, "{family}");
            assert!(
                (got.score - want.1).abs() < 1e-5,
                "{family}: {got:?} vs {want:?}"
            );
            assert_eq!(got.reason.to_string(), "similar-to-100");
        }
        // The south product's similar products are the south ones.
        let answer = r
            .recommend(&Request::new(6).product(&id(NEW_SOUTH)))
            .unwrap();
        assert!(
            answer.items.iter().all(|r| !is_north(&r.product_id)),
            "{family}"
        );
    }
}

#[test]
fn a_viewed_new_product_boosts_similar_items_for_a_known_user() {
    let w = world();
    for (family, model) in models(&w) {
        let p = parts(&w, &model);
        let r = recommender(&w, &model, &p);
        let (north, north_bias) = new_vector(&w, &model, "n");
        let (south, south_bias) = new_vector(&w, &model, "s");
        let u = w.dataset.users().index(&user(1)).unwrap();
        let rep = model.user_representation(u).unwrap();
        let scores = model.predict_all(u).unwrap();
        let reps = model.item_representations().vectors();
        let seen: HashSet<usize> = w.train.user_items(u).iter().map(|&j| j as usize).collect();
        let viewed = id(NEW_NORTH);
        let boost = 2.0;
        let answer = r
            .recommend(
                &Request::new(20)
                    .user(&user(1))
                    .product(&viewed)
                    .boost(boost),
            )
            .unwrap();
        // Brute force: every unseen trained item and the other new product, score plus
        // boost × cosine with the viewed new product.
        let mut reference: Vec<(ExternalId, f32)> = (0..18)
            .filter(|i| !seen.contains(i))
            .map(|i| {
                let c = cosine(&reps.row(i).to_vec(), &north);
                (
                    w.dataset.items().id(i).unwrap().clone(),
                    scores[i] + boost * c,
                )
            })
            .collect();
        let south_score = dot(rep.vector.as_slice().unwrap(), &south) + south_bias + rep.bias;
        reference.push((id(NEW_SOUTH), south_score + boost * cosine(&south, &north)));
        reference.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert_eq!(answer.items.len(), reference.len(), "{family}");
        for (got, want) in answer.items.iter().zip(&reference) {
            assert_eq!(got.product_id, want.0, "{family}");
            assert!(
                (got.score - want.1).abs() < 1e-4,
                "{family}: {got:?} vs {want:?}"
            );
        }
        assert!(
            position(&answer.items, NEW_NORTH).is_none(),
            "the viewed product"
        );
        let new_south = &answer.items[position(&answer.items, NEW_SOUTH).unwrap()];
        assert_eq!(
            new_south.reason.to_string(),
            "model+similar-to-100+new-product"
        );
        assert_eq!(answer.items[0].reason.to_string(), "model+similar-to-100");
        // The boost pulls north items up for this south user: with a large boost, the
        // north items come first.
        let _ = north_bias;
        let strong = r
            .recommend(&Request::new(4).user(&user(1)).product(&viewed).boost(50.0))
            .unwrap();
        assert!(
            strong.items.iter().all(|r| is_north(&r.product_id)),
            "{family}"
        );
    }
}

#[test]
fn a_known_product_has_new_products_among_its_similar_products() {
    let w = world();
    for (family, model) in models(&w) {
        let p = parts(&w, &model);
        let r = recommender(&w, &model, &p);
        let (north, _) = new_vector(&w, &model, "n");
        let reps = model.item_representations().vectors();
        let viewed = id(3);
        let v = w.dataset.items().index(&viewed).unwrap();
        let answer = r.recommend(&Request::new(8).product(&viewed)).unwrap();
        assert_eq!(answer.strategy, Strategy::SimilarProducts);
        let at = position(&answer.items, NEW_NORTH)
            .unwrap_or_else(|| panic!("{family}: {:?}", ids(&answer.items)));
        let item = &answer.items[at];
        let expected = cosine(&reps.row(v).to_vec(), &north);
        assert!((item.score - expected).abs() < 1e-5, "{family}");
        assert_eq!(item.reason.to_string(), "similar-to-3+new-product");
        assert!(position(&answer.items, NEW_SOUTH).is_none(), "{family}");
        // A known user viewing it: the new products get the boost too.
        let boosted = r
            .recommend(&Request::new(20).user(&user(0)).product(&viewed))
            .unwrap();
        let new_north = &boosted.items[position(&boosted.items, NEW_NORTH).unwrap()];
        assert_eq!(
            new_north.reason.to_string(),
            "model+similar-to-3+new-product"
        );
        let plain = r.recommend(&Request::new(20).user(&user(0))).unwrap();
        let unboosted = &plain.items[position(&plain.items, NEW_NORTH).unwrap()];
        assert!(
            (new_north.score - unboosted.score - 0.25 * expected).abs() < 1e-4,
            "{family}: {} vs {} + 0.25 × {expected}",
            new_north.score,
            unboosted.score
        );
    }
}

#[test]
fn exclusions_filters_and_recent_items_apply_to_new_products() {
    let w = world();
    let model = models(&w).remove(0).1;
    let p = parts(&w, &model);
    let r = recommender(&w, &model, &p);
    let base = r.items().len();
    let all =
        |request: Request<'_>| -> Vec<ExternalId> { ids(&r.recommend(&request).unwrap().items) };
    let (stranger, u0, p2, new_south) = (user(99), user(0), id(2), id(NEW_SOUTH));
    let mut north = Attributes::new();
    north.insert("city".into(), "north".into());
    let requests = [
        Request::new(30).user(&u0),
        Request::new(30).user(&stranger).user_attributes(&north),
        Request::new(30).product(&p2),
        Request::new(30).product(&new_south),
        Request::new(30),
    ];
    for request in requests {
        let everything = all(request);
        assert!(
            everything.contains(&id(NEW_NORTH)),
            "{request:?}: {everything:?}"
        );
        // By id.
        let excluded = [id(NEW_NORTH)];
        assert!(
            !all(request.exclude(&excluded)).contains(&id(NEW_NORTH)),
            "{request:?}"
        );
        // By the filter: new product j is item base + j.
        let j = p.new.index(&id(NEW_NORTH)).unwrap();
        let not_it = move |i: usize| i != base + j;
        let filtered = all(request.filter(&not_it));
        assert!(!filtered.contains(&id(NEW_NORTH)), "{request:?}");
        assert_eq!(filtered.len(), everything.len() - 1, "{request:?}");
    }
    // Recent products: excluded, unless seen items are included.
    let recent = [id(NEW_NORTH)];
    let request = Request::new(30).user(&u0).recent(&recent);
    assert!(!all(request).contains(&id(NEW_NORTH)));
    assert!(all(request.include_seen()).contains(&id(NEW_NORTH)));
    // No note about unknown ids for new ones.
    let answer = r
        .recommend(
            &Request::new(3)
                .user(&user(0))
                .exclude(&recent)
                .product(&id(NEW_SOUTH)),
        )
        .unwrap();
    assert!(answer.notes.is_empty(), "{:?}", answer.notes);
}

#[test]
fn cold_start_users_and_popularity_serve_new_products_too() {
    let w = world();
    let model = models(&w).remove(0).1;
    let p = parts(&w, &model);
    let r = recommender(&w, &model, &p);
    let stranger = user(99);
    let mut south = Attributes::new();
    south.insert("city".into(), "south".into());
    let answer = r
        .recommend(&Request::new(10).user(&stranger).user_attributes(&south))
        .unwrap();
    assert_eq!(answer.strategy, Strategy::ColdStartFeatures);
    let (mine, theirs) = (
        position(&answer.items, NEW_SOUTH).expect("the south product"),
        position(&answer.items, NEW_NORTH),
    );
    assert!(theirs.is_none_or(|t| t > mine), "{:?}", ids(&answer.items));
    assert_eq!(
        answer.items[mine].reason.to_string(),
        "cold-start-features+new-product"
    );
    // Popularity: new products have none, so they come after every trained product.
    let answer = r.recommend(&Request::new(20)).unwrap();
    assert_eq!(answer.strategy, Strategy::Popular);
    assert_eq!(answer.items.len(), 20);
    assert!(answer.items[..18].iter().all(|r| r.item < 18));
    assert_eq!(ids(&answer.items[18..]), [id(NEW_NORTH), id(NEW_SOUTH)]);
    assert!(answer.items[18..]
        .iter()
        .all(|r| r.score == 0.0 && r.reason.to_string() == "popular+new-product"));
}

#[test]
fn known_duplicate_and_featureless_products_are_skipped_and_counted() {
    let w = world();
    let model = models(&w).remove(0).1;
    let records = vec![
        product(NEW_NORTH, Some("n")),
        product(NEW_NORTH, Some("s")), // a second record of the same product
        product(4, Some("s")),         // trained: served as trained
        product(102, Some("unheard-of")),
        product(103, None),
    ];
    let new = NewItems::new(
        &model,
        w.dataset.items(),
        w.dataset.item_vocabulary(),
        records,
    )
    .unwrap();
    let report = new.report();
    assert_eq!(
        (
            report.added,
            report.duplicates,
            report.already_known,
            report.without_known_features
        ),
        (1, 1, 1, 2)
    );
    assert_eq!(new.len(), 1);
    assert_eq!(
        new.product(&id(NEW_NORTH)).unwrap().name.as_deref(),
        Some("New product 100")
    );
    // The first record counts: the product is a north one.
    let (north, _) = new_vector(&w, &model, "n");
    assert_eq!(new.representations().vectors().row(0).to_vec(), north);
    // Nothing added: a recommender with it answers as without it.
    let empty = NewItems::new(&model, w.dataset.items(), w.dataset.item_vocabulary(), []).unwrap();
    assert!(empty.is_empty());
    let p = parts(&w, &model);
    let with = recommender(&w, &model, &p).with_new_items(&empty).unwrap();
    assert!(with.new_items().is_none());
}

#[test]
fn a_model_without_item_features_cannot_score_new_products() {
    // The test shop trained as plain collaborative filtering: identity features only.
    let mut source = common::shop();
    let dataset = recsys_features::Dataset::from_source(
        &mut source,
        FeatureSpec::identity_only(),
        FeatureSpec::identity_only(),
    )
    .unwrap();
    let (train, _) = dataset
        .logged_interactions(recsys_features::InteractionOptions::binary())
        .unwrap();
    let params = recsys_core::Hyperparameters::builder()
        .no_components(4)
        .seed(1)
        .build()
        .unwrap();
    let mut model =
        recsys_core::HybridModel::new(params, dataset.user_features(), dataset.item_features())
            .unwrap();
    model
        .fit(&train, recsys_core::FitOptions::epochs(2))
        .unwrap();
    let error =
        NewItems::new(&model, dataset.items(), dataset.item_vocabulary(), added()).unwrap_err();
    assert!(
        matches!(error, RecommendError::NewItemsUnsupported { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("collaborative filtering"),
        "{error}"
    );
    // The bundle says the same.
    let bundle = recsys_recommend::BundleBuilder::new(model, &dataset, train)
        .neighbours(2)
        .build()
        .unwrap();
    assert!(matches!(
        bundle.new_items(added()),
        Err(RecommendError::NewItemsUnsupported { .. })
    ));
}

#[test]
fn new_products_of_another_model_are_refused() {
    let w = world();
    let mut models = models(&w);
    let (als, hybrid) = (models.pop().unwrap().1, models.pop().unwrap().1);
    let p = parts(&w, &als); // four components
    let error = Recommender::new(&hybrid, w.dataset.users(), w.dataset.items())
        .unwrap()
        .with_new_items(&p.new)
        .unwrap_err();
    assert!(
        matches!(error, RecommendError::Inconsistent { .. }),
        "{error:?}"
    );
}

#[test]
fn a_bundle_serves_new_products_through_its_recommender() {
    let w = world();
    let bundle = w.bundle(3);
    let new = bundle.new_items(added()).unwrap();
    assert_eq!(new.len(), 2);
    let r = bundle.recommender().with_new_items(&new).unwrap();
    let answer = r
        .recommend(&Request::new(4).product(&id(NEW_NORTH)))
        .unwrap();
    assert_eq!(answer.strategy, Strategy::SimilarProducts);
    assert_eq!(answer.items.len(), 4);
    // The blend of a known user with a viewed new product: the one-pass path of trained
    // items and the new items agree with the scores asked without the product plus the
    // boost.
    let viewed = id(NEW_SOUTH);
    let boosted = r
        .recommend(&Request::new(30).user(&user(4)).product(&viewed))
        .unwrap();
    let plain = r.recommend(&Request::new(30).user(&user(4))).unwrap();
    assert_eq!(
        boosted.items.len(),
        plain.items.len() - 1,
        "all but the viewed one"
    );
    let (south, _) = {
        let f = bundle.item_vocabulary().value_index("side", "s").unwrap();
        let rep = bundle
            .model()
            .item_representation_from_features(&[(f, 1.0)])
            .unwrap();
        (rep.vector.to_vec(), rep.bias)
    };
    let reps = bundle.model().item_representations().vectors();
    for item in &boosted.items {
        let before = plain
            .items
            .iter()
            .find(|r| r.product_id == item.product_id)
            .unwrap();
        let vector = if item.item < 18 {
            reps.row(item.item).to_vec()
        } else {
            new.representations().vectors().row(item.item - 18).to_vec()
        };
        let expected = before.score + 0.25 * cosine(&vector, &south);
        assert!(
            (item.score - expected).abs() < 1e-4,
            "{item:?} vs {expected}"
        );
    }
}
