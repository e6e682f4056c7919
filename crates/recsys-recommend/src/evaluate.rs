//! Offline evaluation of the whole policy (not just the model): precision and recall@k of
//! what [`Recommender::recommend`] returns for each test user.

use rayon::prelude::*;
use recsys_core::Interactions;
use serde::Serialize;

use crate::error::{RecommendError, Result};
use crate::policy::{Recommender, Request};

/// Precision and recall@k of a policy over the users with test interactions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PolicyMetrics {
    /// The cut-off.
    pub k: usize,
    /// Users evaluated (users with at least one relevant test item).
    pub users: usize,
    /// Mean precision@k.
    pub precision_at_k: f64,
    /// Mean recall@k.
    pub recall_at_k: f64,
}

/// How each test user's request is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Viewing {
    /// No viewed product: the plain model (the user's seen items excluded).
    Nothing,
    /// The user views one of their own test items (chosen by `pick(user, n_test_items)`);
    /// that item is then not counted as relevant, since it can never be recommended.
    TestItem {
        /// Weight of the similarity to the viewed product.
        boost: f32,
    },
}

/// Evaluates `recommender` on `test` (dense user × item indices of the recommender's id
/// maps): for every user with test items, recommends `k` items and counts hits.
///
/// With [`Viewing::TestItem`], the viewed item of user `u` is `test.user_items(u)[pick(u,
/// len)]`, and it is removed from that user's relevant set — for the plain policy too when
/// you compare both with the same `pick` (pass `Viewing::TestItem { boost: 0.0 }` for the
/// plain model on the same relevant sets). Users left without relevant items are skipped.
pub fn evaluate_policy(
    recommender: &Recommender<'_>,
    test: &Interactions,
    k: usize,
    viewing: Viewing,
    pick: &(dyn Fn(usize, usize) -> usize + Sync),
) -> Result<PolicyMetrics> {
    let users = recommender.users();
    let items = recommender.items();
    if test.n_users() != users.len() || test.n_items() != items.len() {
        return Err(RecommendError::Inconsistent {
            what: "test interactions (users × items) vs the recommender's id maps",
            expected: users.len() * items.len(),
            found: test.n_users() * test.n_items(),
        });
    }
    let per_user: Vec<Option<(f64, f64)>> = (0..test.n_users())
        .into_par_iter()
        .map(|u| -> Result<Option<(f64, f64)>> {
            let relevant = test.user_items(u);
            if relevant.is_empty() {
                return Ok(None);
            }
            let user_id = users.id(u).expect("user index in range");
            let mut request = Request::new(k).user(user_id);
            let mut viewed = None;
            if let Viewing::TestItem { boost } = viewing {
                let v = relevant[pick(u, relevant.len()) % relevant.len()] as usize;
                viewed = Some(v);
                request = request
                    .product(items.id(v).expect("item index in range"))
                    .boost(boost);
            }
            let n_relevant = relevant.len() - usize::from(viewed.is_some());
            if n_relevant == 0 {
                return Ok(None);
            }
            let answer = recommender.recommend(&request)?;
            let hits = answer
                .items
                .iter()
                .filter(|r| {
                    Some(r.item) != viewed && relevant.binary_search(&(r.item as u32)).is_ok()
                })
                .count();
            Ok(Some((
                hits as f64 / k.max(1) as f64,
                hits as f64 / n_relevant as f64,
            )))
        })
        .collect::<Result<_>>()?;
    let scored: Vec<(f64, f64)> = per_user.into_iter().flatten().collect();
    let n = scored.len().max(1) as f64;
    Ok(PolicyMetrics {
        k,
        users: scored.len(),
        precision_at_k: scored.iter().map(|s| s.0).sum::<f64>() / n,
        recall_at_k: scored.iter().map(|s| s.1).sum::<f64>() / n,
    })
}
