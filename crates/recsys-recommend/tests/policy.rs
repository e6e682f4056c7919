//! The recommendation policy against slow, obvious reference computations.

mod common;

use std::collections::HashSet;

use common::{id, user, world, World};
use proptest::prelude::*;
use recsys_core::{HybridModel, Interactions, Popularity};
use recsys_features::{Attributes, ExternalId};
use recsys_recommend::{Note, Reason, RecommendError, Recommender, Request, Strategy};
use recsys_similarity::{ExactCosine, NeighbourTable, SimilarityIndex};

/// Cosine of the model's item representations, computed the long way.
fn cosine(model: &HybridModel, a: usize, b: usize) -> f32 {
    let v = model.item_representations().vectors();
    let (x, y) = (v.row(a), v.row(b));
    let d = x.dot(&y) / (x.dot(&x).sqrt() * y.dot(&y).sqrt());
    if d.is_finite() {
        d
    } else {
        0.0
    }
}

/// The blended ranking by brute force: score + boost × cosine, sorted, exclusions removed.
fn reference(
    w: &World,
    u: usize,
    product: Option<usize>,
    boost: f32,
    excluded: &HashSet<usize>,
    n: usize,
) -> Vec<(usize, f32)> {
    let scores = w.model.predict_all(u).unwrap();
    let mut all: Vec<(usize, f32)> = (0..w.model.n_items())
        .filter(|j| !excluded.contains(j) && Some(*j) != product)
        .map(|j| {
            let s = scores[j] + product.map_or(0.0, |p| boost * cosine(&w.model, p, j));
            (j, s)
        })
        .collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

struct Parts {
    exact: ExactCosine,
    table: NeighbourTable,
    popularity: Popularity,
}

fn parts(w: &World, k: usize) -> Parts {
    let exact = ExactCosine::new(w.model.item_representations().vectors());
    let table = NeighbourTable::build(&exact, k).unwrap();
    Parts {
        exact,
        table,
        popularity: Popularity::from_interactions(&w.train),
    }
}

fn recommender<'a>(w: &'a World, p: &'a Parts) -> Recommender<'a> {
    Recommender::new(&w.model, w.dataset.users(), w.dataset.items())
        .unwrap()
        .with_similarity(&p.exact)
        .unwrap()
        .with_neighbours(&p.table)
        .unwrap()
        .with_popularity(&p.popularity)
        .unwrap()
        .with_seen(&w.train)
        .unwrap()
        .with_user_vocabulary(w.dataset.user_vocabulary())
}

fn seen_set(train: &Interactions, u: usize) -> HashSet<usize> {
    train.user_items(u).iter().map(|&j| j as usize).collect()
}

fn items_of(answer: &recsys_recommend::Recommendations) -> Vec<usize> {
    answer.items.iter().map(|r| r.item).collect()
}

#[test]
fn known_user_gets_model_scores_without_seen_items() {
    let w = world();
    let p = parts(&w, 4);
    let r = recommender(&w, &p);
    let u = w.dataset.users().index(&user(3)).unwrap();
    let answer = r.recommend(&Request::new(5).user(&user(3))).unwrap();
    assert_eq!(answer.strategy, Strategy::Model);
    assert!(answer.notes.is_empty(), "{:?}", answer.notes);
    let expected = reference(&w, u, None, 0.0, &seen_set(&w.train, u), 5);
    assert_eq!(
        items_of(&answer),
        expected.iter().map(|x| x.0).collect::<Vec<_>>()
    );
    for (got, want) in answer.items.iter().zip(&expected) {
        assert!((got.score - want.1).abs() < 1e-5, "{got:?} vs {want:?}");
        assert_eq!(got.reason, Reason::Model);
        assert_eq!(&got.product_id, w.dataset.items().id(got.item).unwrap());
    }
}

#[test]
fn viewed_product_boosts_similar_items_and_is_excluded() {
    let w = world();
    let p = parts(&w, 4);
    let r = recommender(&w, &p);
    let u = w.dataset.users().index(&user(2)).unwrap();
    let viewed = id(4);
    let v = w.dataset.items().index(&viewed).unwrap();
    for boost in [0.25f32, 3.0] {
        let answer = r
            .recommend(&Request::new(6).user(&user(2)).product(&viewed).boost(boost))
            .unwrap();
        let expected = reference(&w, u, Some(v), boost, &seen_set(&w.train, u), 6);
        assert_eq!(
            items_of(&answer),
            expected.iter().map(|x| x.0).collect::<Vec<_>>(),
            "boost {boost}"
        );
        for (got, want) in answer.items.iter().zip(&expected) {
            assert!((got.score - want.1).abs() < 1e-4, "{got:?} vs {want:?}");
            assert_eq!(got.reason, Reason::ModelAndSimilar { to: viewed.clone() });
            assert_eq!(got.reason.to_string(), "model+similar-to-4");
        }
        assert!(!items_of(&answer).contains(&v));
    }
}

#[test]
fn seen_items_can_be_included_and_ids_excluded() {
    let w = world();
    let p = parts(&w, 4);
    let r = recommender(&w, &p);
    let u = w.dataset.users().index(&user(0)).unwrap();
    let all = r
        .recommend(&Request::new(18).user(&user(0)).include_seen())
        .unwrap();
    assert_eq!(all.items.len(), 18, "every item, seen ones included");
    let excluded = [id(0), id(1), ExternalId::Str("no-such-product".into())];
    let answer = r
        .recommend(&Request::new(18).user(&user(0)).exclude(&excluded))
        .unwrap();
    let got: HashSet<usize> = items_of(&answer).into_iter().collect();
    let seen = seen_set(&w.train, u);
    assert!(got.is_disjoint(&seen));
    assert!(!got.contains(&w.dataset.items().index(&id(0)).unwrap()));
    assert!(!got.contains(&w.dataset.items().index(&id(1)).unwrap()));
    assert!(answer
        .notes
        .contains(&Note::UnknownExcludedIds { count: 1 }));
    let (p0, p1) = (
        w.dataset.items().index(&id(0)).unwrap(),
        w.dataset.items().index(&id(1)).unwrap(),
    );
    let remaining = (0..18)
        .filter(|j| !seen.contains(j) && *j != p0 && *j != p1)
        .count();
    assert_eq!(answer.items.len(), remaining);
    assert!(answer
        .notes
        .iter()
        .any(|n| matches!(n, Note::FewerThanRequested { requested: 18, .. })));
}

#[test]
fn filters_apply_before_top_k() {
    let w = world();
    let p = parts(&w, 4);
    let r = recommender(&w, &p);
    let odd = |j: usize| j % 2 == 1;
    for request in [
        Request::new(4).user(&user(1)),
        Request::new(4).product(&id(10)),
        Request::new(4),
    ] {
        let answer = r.recommend(&request.filter(&odd)).unwrap();
        assert_eq!(answer.items.len(), 4, "{:?}", answer.strategy);
        assert!(items_of(&answer).into_iter().all(odd));
    }
}

#[test]
fn unknown_user_with_product_gets_similar_items() {
    let w = world();
    let p = parts(&w, 3);
    let r = recommender(&w, &p);
    let viewed = id(12);
    let v = w.dataset.items().index(&viewed).unwrap();
    let stranger = user(99);
    let answer = r
        .recommend(&Request::new(6).user(&stranger).product(&viewed))
        .unwrap();
    assert_eq!(answer.strategy, Strategy::SimilarProducts);
    assert_eq!(answer.notes, vec![Note::UnknownUser { id: stranger }]);
    // Six asked, three stored per item: the exact index fills the list.
    let expected = p.exact.similar(v, 6, &|_| false).unwrap();
    assert_eq!(
        items_of(&answer),
        expected.iter().map(|x| x.item).collect::<Vec<_>>()
    );
    for (got, want) in answer.items.iter().zip(&expected) {
        assert!((got.score - cosine(&w.model, v, got.item)).abs() < 1e-4);
        assert!((got.score - want.similarity).abs() < 1e-6);
        assert_eq!(got.reason.to_string(), "similar-to-12");
    }
    // No user at all: the same path.
    let answer = r.recommend(&Request::new(2).product(&viewed)).unwrap();
    assert_eq!(answer.strategy, Strategy::SimilarProducts);
    assert_eq!(items_of(&answer), items_of(&answer)[..2].to_vec());
}

#[test]
fn nothing_known_falls_back_to_popularity() {
    let w = world();
    let p = parts(&w, 3);
    let r = recommender(&w, &p);
    let (stranger, unknown) = (user(99), id(999));
    let answer = r
        .recommend(&Request::new(3).user(&stranger).product(&unknown))
        .unwrap();
    assert_eq!(answer.strategy, Strategy::Popular);
    assert_eq!(
        answer.notes,
        vec![
            Note::UnknownUser { id: stranger },
            Note::UnknownProduct { id: unknown }
        ]
    );
    let counts = p.popularity.counts();
    let mut expected: Vec<usize> = (0..counts.len()).collect();
    expected.sort_by(|&a, &b| counts[b].total_cmp(&counts[a]).then(a.cmp(&b)));
    assert_eq!(items_of(&answer), expected[..3].to_vec());
    assert!(answer.items.iter().all(|r| r.reason == Reason::Popular));
    assert_eq!(answer.items[0].score, counts[expected[0]]);
}

#[test]
fn unknown_product_for_known_user_ignores_the_boost_and_says_so() {
    let w = world();
    let p = parts(&w, 3);
    let r = recommender(&w, &p);
    let unknown = id(12345);
    let plain = r.recommend(&Request::new(5).user(&user(4))).unwrap();
    let answer = r
        .recommend(&Request::new(5).user(&user(4)).product(&unknown))
        .unwrap();
    assert_eq!(items_of(&answer), items_of(&plain));
    assert_eq!(answer.notes, vec![Note::UnknownProduct { id: unknown }]);
    assert!(answer.items.iter().all(|r| r.reason == Reason::Model));
}

#[test]
fn unknown_user_with_attributes_is_scored_from_features() {
    let w = world();
    let p = parts(&w, 3);
    let r = recommender(&w, &p);
    let stranger = user(1000);
    let mut north = Attributes::new();
    north.insert("city".into(), "north".into());
    let answer = r
        .recommend(&Request::new(5).user(&stranger).user_attributes(&north))
        .unwrap();
    assert_eq!(answer.strategy, Strategy::ColdStartFeatures);
    assert!(answer
        .items
        .iter()
        .all(|r| r.reason == Reason::ColdStartFeatures));
    // Same scores as the model's own cold-start path.
    let row = w.dataset.user_feature_row(&north);
    let scores = {
        use recsys_core::{Scorer, UserQuery};
        let mut out = Vec::new();
        w.model
            .score_all(UserQuery::Features(&row), &mut out)
            .unwrap();
        out
    };
    for r in &answer.items {
        assert!((r.score - scores[r.item]).abs() < 1e-6);
    }
    // North users buy p0..p8: the cold-start list should be mostly from there.
    let north_items = answer.items.iter().filter(|r| r.item < 9).count();
    assert!(north_items >= 4, "{:?}", items_of(&answer));

    // Attributes that match nothing: noted, then the next fallback.
    let mut mars = Attributes::new();
    mars.insert("city".into(), "mars".into());
    let answer = r
        .recommend(&Request::new(2).user_attributes(&mars))
        .unwrap();
    assert_eq!(answer.strategy, Strategy::Popular);
    assert_eq!(answer.notes, vec![Note::AttributesNotUsable]);
}

#[test]
fn edge_sizes_never_panic() {
    let w = world();
    let p = parts(&w, 3);
    let r = recommender(&w, &p);
    let answer = r.recommend(&Request::new(0).user(&user(0))).unwrap();
    assert!(answer.items.is_empty());
    let answer = r.recommend(&Request::new(1000).product(&id(3))).unwrap();
    assert_eq!(answer.items.len(), 17);
    let answer = r.recommend(&Request::new(1000)).unwrap();
    assert_eq!(answer.items.len(), 18);
}

#[test]
fn parts_that_disagree_are_refused() {
    let w = world();
    let p = parts(&w, 3);
    let mut fewer = w.dataset.items().clone();
    fewer = recsys_features::IdMap::try_from(fewer.ids()[..10].to_vec()).unwrap();
    assert!(matches!(
        Recommender::new(&w.model, w.dataset.users(), &fewer),
        Err(RecommendError::Inconsistent { .. })
    ));
    let small = Popularity::from_counts(vec![1.0; 3]);
    let r = Recommender::new(&w.model, w.dataset.users(), w.dataset.items()).unwrap();
    assert!(r.with_popularity(&small).is_err());
    let _ = p;
}

#[test]
fn without_any_fallback_an_empty_answer_is_noted() {
    let w = world();
    let r = Recommender::new(&w.model, w.dataset.users(), w.dataset.items()).unwrap();
    let answer = r.recommend(&Request::new(3).product(&id(1))).unwrap();
    assert_eq!(answer.strategy, Strategy::Popular);
    assert!(answer.items.is_empty());
    assert!(answer.notes.contains(&Note::NoSimilarityIndex));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the request, no excluded, filtered, viewed or seen item comes back, there
    /// are no repeats, scores are sorted, and the list is as long as it can be.
    #[test]
    fn requests_respect_every_exclusion(
        user_ix in prop::option::of(0usize..14),
        product_ix in prop::option::of(0i64..20),
        n in 0usize..25,
        excluded in prop::collection::vec(0i64..20, 0..6),
        modulus in 1usize..4,
        include_seen in any::<bool>(),
    ) {
        let w = world_cached();
        let p = parts(w, 3);
        let r = recommender(w, &p);
        let u_id = user_ix.map(user);
        let p_id = product_ix.map(id);
        let excluded: Vec<ExternalId> = excluded.into_iter().map(id).collect();
        let keep = move |j: usize| j.is_multiple_of(modulus);
        let mut request = Request::new(n).exclude(&excluded).filter(&keep);
        if let Some(u) = &u_id { request = request.user(u); }
        if let Some(pr) = &p_id { request = request.product(pr); }
        if include_seen { request = request.include_seen(); }
        let answer = r.recommend(&request).unwrap();

        let items = w.dataset.items();
        let mut banned: HashSet<usize> = excluded.iter().filter_map(|e| items.index(e)).collect();
        let viewed = p_id.as_ref().and_then(|x| items.index(x));
        banned.extend(viewed);
        let known_user = u_id.as_ref().and_then(|x| w.dataset.users().index(x));
        if let (Some(u), false) = (known_user, include_seen) {
            banned.extend(seen_set(&w.train, u));
        }
        let allowed = (0..items.len()).filter(|j| !banned.contains(j) && keep(*j)).count();
        let got = items_of(&answer);
        let unique: HashSet<usize> = got.iter().copied().collect();
        prop_assert_eq!(unique.len(), got.len());
        prop_assert!(got.iter().all(|j| !banned.contains(j) && keep(*j)), "{:?}", got);
        prop_assert_eq!(got.len(), n.min(allowed), "{:?}", answer);
        prop_assert!(answer.items.windows(2).all(|x| x[0].score >= x[1].score));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The one-pass blend (certified half-float pass + exact rescoring where the CPU has
    /// it) returns exactly what scoring every item with `score_all_with_cosine`, dropping
    /// the viewed, seen and excluded items and taking the top n of those the filter keeps
    /// returns: same items, same order, same score bits.
    #[test]
    fn one_pass_blend_is_the_plain_blend_exactly(
        user_ix in 0usize..12,
        product_ix in 0i64..18,
        n in 0usize..25,
        excluded in prop::collection::vec(0i64..20, 0..6),
        modulus in 1usize..4,
        include_seen in any::<bool>(),
        boost in prop::sample::select(vec![0.25f32, 4.0, -1.0]),
    ) {
        let w = world_cached();
        let p = parts(w, 3);
        let r = recommender(w, &p).with_model_similarity().unwrap();
        let (u_id, p_id) = (user(user_ix), id(product_ix));
        let excluded: Vec<ExternalId> = excluded.into_iter().map(id).collect();
        let keep = move |j: usize| j.is_multiple_of(modulus);
        let mut request = Request::new(n)
            .user(&u_id)
            .product(&p_id)
            .boost(boost)
            .exclude(&excluded)
            .filter(&keep);
        if include_seen { request = request.include_seen(); }
        let answer = r.recommend(&request).unwrap();

        let items = w.dataset.items();
        let (Some(u), Some(viewed)) = (w.dataset.users().index(&u_id), items.index(&p_id)) else {
            // Not the one-pass path (another test covers these).
            return Ok(());
        };
        prop_assert_eq!(answer.strategy, Strategy::Model);
        let mut scores = Vec::new();
        w.model
            .item_representations()
            .score_all_with_cosine(&w.model.user_representation(u).unwrap(), viewed, boost, &mut scores)
            .unwrap();
        scores[viewed] = f32::NAN;
        for j in excluded.iter().filter_map(|e| items.index(e)) {
            scores[j] = f32::NAN;
        }
        if !include_seen {
            for &j in w.train.user_items(u) {
                scores[j as usize] = f32::NAN;
            }
        }
        let want: Vec<(usize, u32)> = recsys_core::top_k(&scores, n, |j| !keep(j))
            .into_iter()
            .map(|(j, s)| (j, s.to_bits()))
            .collect();
        let got: Vec<(usize, u32)> = answer.items.iter().map(|x| (x.item, x.score.to_bits())).collect();
        prop_assert_eq!(got, want);
    }
}

fn world_cached() -> &'static World {
    static WORLD: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    WORLD.get_or_init(world)
}

#[test]
fn policy_evaluation_of_the_plain_model_matches_the_core_evaluation() {
    use recsys_core::{evaluate, EvalOptions, FitOptions};
    use recsys_recommend::{evaluate_policy, Viewing};

    let w = world();
    let all = w.train.clone();
    let (train, test) = all.split_random(0.3, 9).unwrap();
    let mut model = HybridModel::new(
        w.model.params().clone(),
        w.model.user_features().clone(),
        w.model.item_features().clone(),
    )
    .unwrap();
    model.fit(&train, FitOptions::epochs(20)).unwrap();
    let exact = ExactCosine::new(model.item_representations().vectors());
    let r = Recommender::new(&model, w.dataset.users(), w.dataset.items())
        .unwrap()
        .with_similarity(&exact)
        .unwrap()
        .with_seen(&train)
        .unwrap();
    let core = evaluate(
        &model,
        &test,
        Some(&train),
        &EvalOptions {
            k: 3,
            ..EvalOptions::default()
        },
    )
    .unwrap();
    let plain = evaluate_policy(&r, &test, 3, Viewing::Nothing, &|_, _| 0).unwrap();
    assert_eq!(plain.users, core.n_users);
    assert!(
        (plain.precision_at_k - core.precision_at_k).abs() < 1e-9,
        "{plain:?} vs {core:?}"
    );
    assert!((plain.recall_at_k - core.recall_at_k).abs() < 1e-9);

    // Viewing a test item: that item never counts; boost 0 is the plain model on the
    // same relevant sets, and a huge boost ranks by similarity alone.
    let pick = |u: usize, n: usize| u % n;
    let zero = evaluate_policy(&r, &test, 3, Viewing::TestItem { boost: 0.0 }, &pick).unwrap();
    let blended = evaluate_policy(&r, &test, 3, Viewing::TestItem { boost: 0.25 }, &pick).unwrap();
    assert_eq!(zero.users, blended.users);
    assert!(zero.users <= plain.users);
    for m in [zero, blended] {
        assert!((0.0..=1.0).contains(&m.precision_at_k));
        assert!((0.0..=1.0).contains(&m.recall_at_k));
    }
}

#[test]
fn attributes_of_a_new_user_can_be_looked_up() {
    let w = world();
    let p = parts(&w, 3);
    let lookup = |id: &ExternalId| {
        (id == &user(500)).then(|| {
            let mut a = Attributes::new();
            a.insert("city".into(), "south".into());
            a
        })
    };
    let r = recommender(&w, &p).with_attribute_lookup(&lookup);
    let found = r.recommend(&Request::new(4).user(&user(500))).unwrap();
    assert_eq!(found.strategy, Strategy::ColdStartFeatures);
    let mut south = Attributes::new();
    south.insert("city".into(), "south".into());
    let given = r
        .recommend(&Request::new(4).user(&user(501)).user_attributes(&south))
        .unwrap();
    assert_eq!(items_of(&found), items_of(&given));
    // Unknown to the lookup too: the usual fallback.
    let missing = r.recommend(&Request::new(4).user(&user(502))).unwrap();
    assert_eq!(missing.strategy, Strategy::Popular);
    // Known users never reach the lookup.
    let panicking = |_: &ExternalId| -> Option<Attributes> { panic!("looked up a known user") };
    let r = recommender(&w, &p).with_attribute_lookup(&panicking);
    assert_eq!(
        r.recommend(&Request::new(2).user(&user(1)))
            .unwrap()
            .strategy,
        Strategy::Model
    );
}

#[test]
fn the_one_pass_blend_ranks_like_the_two_pass_blend() {
    let w = world();
    let p = parts(&w, 3);
    let two_pass = recommender(&w, &p);
    let one_pass = recommender(&w, &p).with_model_similarity().unwrap();
    let mut north = Attributes::new();
    north.insert("city".into(), "north".into());
    for u in [0, 3, 7, 11] {
        let known = user(u);
        for viewed in [id(0), id(5), id(13)] {
            for boost in [0.25f32, 4.0] {
                let request = Request::new(8).user(&known).product(&viewed).boost(boost);
                let a = two_pass.recommend(&request).unwrap();
                let b = one_pass.recommend(&request).unwrap();
                assert_eq!(
                    items_of(&a),
                    items_of(&b),
                    "user {u} viewing {viewed} boost {boost}"
                );
                for (x, y) in a.items.iter().zip(&b.items) {
                    assert!((x.score - y.score).abs() < 1e-5, "{x:?} vs {y:?}");
                    assert_eq!(x.reason, y.reason);
                }
            }
        }
        // Cold start takes the one-pass path too.
        let stranger = user(900 + u);
        let viewed = id(2);
        let request = Request::new(5)
            .user(&stranger)
            .user_attributes(&north)
            .product(&viewed);
        assert_eq!(
            items_of(&two_pass.recommend(&request).unwrap()),
            items_of(&one_pass.recommend(&request).unwrap())
        );
    }
}

#[test]
fn recent_activity_is_excluded_and_folded_in() {
    use recsys_core::{FoldIn, FoldInOptions};
    let w = world();
    let p = parts(&w, 6);
    let fold = FoldIn::new(&w.model, &w.train, FoldInOptions::default()).unwrap();
    let r = recommender(&w, &p).with_fold_in(&fold);
    let all = w.model.n_items();

    // A known user: items since training are excluded like the trained ones.
    let known = user(0);
    let before = r.recommend(&Request::new(all).user(&known)).unwrap();
    let fresh: Vec<ExternalId> = before.items[..2]
        .iter()
        .map(|x| x.product_id.clone())
        .collect();
    let after = r
        .recommend(&Request::new(all).user(&known).recent(&fresh))
        .unwrap();
    assert_eq!(after.strategy, Strategy::Model);
    assert!(after.items.iter().all(|x| !fresh.contains(&x.product_id)));
    assert_eq!(after.items.len(), before.items.len() - 2);
    // ... unless seen items are asked for.
    let included = r
        .recommend(&Request::new(all).user(&known).recent(&fresh).include_seen())
        .unwrap();
    assert!(fresh
        .iter()
        .all(|f| included.items.iter().any(|x| &x.product_id == f)));

    // An unknown user with recent north items: fold-in, north items first, own items out.
    let stranger = ExternalId::Str("new-shopper".into());
    let recent = [id(0), id(2), id(4), ExternalId::Int(999)];
    let answer = r
        .recommend(&Request::new(4).user(&stranger).recent(&recent))
        .unwrap();
    assert_eq!(answer.strategy, Strategy::RecentActivity);
    assert!(answer
        .items
        .iter()
        .all(|x| x.reason == Reason::RecentActivity));
    assert!(answer.items.iter().all(|x| !recent.contains(&x.product_id)));
    let north = answer
        .items
        .iter()
        .filter(|x| matches!(x.product_id, ExternalId::Int(p) if p < 9))
        .count();
    assert!(north >= 3, "{answer:?}");
    assert_eq!(answer.items[0].reason.to_string(), "recent-activity");
    // With a viewed product: the boost reason.
    let viewing = id(6);
    let boosted = r
        .recommend(
            &Request::new(3)
                .user(&stranger)
                .recent(&recent)
                .product(&viewing),
        )
        .unwrap();
    assert_eq!(
        boosted.items[0].reason.to_string(),
        "recent-activity+similar-to-6"
    );

    // Attributes too: both are used (the answer is not the plain fold-in's nor the
    // attributes' alone).
    let mut south = Attributes::new();
    south.insert("city".into(), "south".into());
    let scores = |request: &Request<'_>| -> Vec<(ExternalId, u32)> {
        r.recommend(request)
            .unwrap()
            .items
            .iter()
            .map(|x| (x.product_id.clone(), x.score.to_bits()))
            .collect()
    };
    let one = [id(0)];
    let both = scores(
        &Request::new(all)
            .user(&stranger)
            .recent(&one)
            .user_attributes(&south),
    );
    let events_only = scores(&Request::new(all).user(&stranger).recent(&one));
    let attributes_only = scores(&Request::new(all).user(&stranger).user_attributes(&south));
    assert_ne!(both, events_only);
    assert_ne!(both[..], attributes_only[..both.len()]);
    let with_attributes = r
        .recommend(
            &Request::new(3)
                .user(&stranger)
                .recent(&one)
                .user_attributes(&south),
        )
        .unwrap();
    assert_eq!(with_attributes.strategy, Strategy::RecentActivity);

    // Without fold-in, or without known recent items: the previous fallbacks.
    let plain = recommender(&w, &p)
        .recommend(&Request::new(3).user(&stranger).recent(&recent))
        .unwrap();
    assert_eq!(plain.strategy, Strategy::Popular);
    let unknown_only = [ExternalId::Int(999)];
    let answer = r
        .recommend(&Request::new(3).user(&stranger).recent(&unknown_only))
        .unwrap();
    assert_eq!(answer.strategy, Strategy::Popular);
}
