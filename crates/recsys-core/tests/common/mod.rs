//! Shared fixtures for the integration tests.
#![allow(dead_code)]

use recsys_core::{Interactions, Rng};

/// Users and items split into `groups` taste groups; each user interacts with `per_user`
/// random items of its own group (all items equally popular in expectation), plus `noise`
/// random items from anywhere. Returns all interactions.
pub fn planted(
    n_users: usize,
    n_items: usize,
    groups: usize,
    per_user: usize,
    noise: usize,
    seed: u64,
) -> Interactions {
    let mut rng = Rng::new(seed);
    let mut pairs = Vec::new();
    for u in 0..n_users {
        let g = u % groups;
        let group_items: Vec<usize> = (0..n_items).filter(|i| i % groups == g).collect();
        for _ in 0..per_user {
            pairs.push((u, group_items[rng.below(group_items.len())]));
        }
        for _ in 0..noise {
            pairs.push((u, rng.below(n_items)));
        }
    }
    Interactions::from_pairs(n_users, n_items, pairs).expect("valid fixture")
}
