//! Reads the shared Complete Journey seed data (if present) and checks its row counts.

use std::path::Path;
use std::time::Instant;

use recsys_features::RecordSource;
use recsys_store::{find_csv, read_pairs, CsvSource};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/data/completejourney-seed"
);

#[test]
fn completejourney_seed_counts() {
    let dir = Path::new(DATA);
    if !dir.is_dir() {
        eprintln!("skipping: {} not found", dir.display());
        return;
    }
    let mut source = CsvSource::open(dir).unwrap();

    let start = Instant::now();
    let mut users = 0;
    for user in source.users().unwrap() {
        user.unwrap();
        users += 1;
    }
    let mut products = 0;
    for product in source.products().unwrap() {
        let product = product.unwrap();
        if let Some(price) = product.price {
            assert!(price.is_finite(), "{price}");
        }
        products += 1;
    }
    let mut interactions = 0;
    let mut with_timestamp = 0;
    for interaction in source.interactions().unwrap() {
        let interaction = interaction.unwrap();
        with_timestamp += usize::from(interaction.timestamp.is_some());
        interactions += 1;
    }
    let pairs = read_pairs(find_csv(dir, "test_pairs").unwrap()).unwrap();
    eprintln!(
        "read completejourney-seed in {:.2?}: {users} users, {products} products, \
         {interactions} interactions, {} test pairs",
        start.elapsed(),
        pairs.len()
    );

    assert_eq!(users, 2_469);
    assert_eq!(products, 68_509);
    assert_eq!(interactions, 867_688);
    assert_eq!(with_timestamp, interactions);
    assert_eq!(pairs.len(), 172_925);
}
