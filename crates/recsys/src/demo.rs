//! A synthetic fashion-shop dataset with a planted taste structure, so the quickstart can
//! train a recommender with no setup and the recommendations visibly make sense.
//!
//! # The generative story
//!
//! 1. **Catalogue.** Each product gets a category (shirts, dresses, trousers, shoes,
//!    outerwear, knitwear, sportswear, accessories; balanced), a colour, a season (outerwear
//!    and knitwear lean to autumn/winter, shirts and dresses to spring/summer), a brand with a
//!    price tier, a price (category base price × brand tier × noise, ending in .99) and a
//!    `price_range` that follows the price (budget < 30, mid < 80, else premium). Its name
//!    reads like "Blue Summer Linen Shirt". Products have a Zipf-like popularity (a random
//!    rank r gets weight 1/(r+1)^0.7).
//! 2. **Users.** Each user has a city, an age group and a user type (new/regular/vip).
//! 3. **Latent taste, partly visible in the attributes.** With probability 0.7 a user's
//!    favourite category is one of the two favoured by their age group (e.g. 18-24 →
//!    sportswear or shoes), else any category; a second category is drawn at random. With
//!    probability 0.7 each, their favourite season follows their city's climate (Stockholm →
//!    winter, Madrid → summer, …) and their favourite price range follows their user type
//!    (new → budget, regular → mid, vip → premium). Their favourite colour is random: it is
//!    in no attribute, only interactions reveal it.
//! 4. **Interactions.** Activity is heavy-tailed (user of random rank r gets weight
//!    1/(r+1)^0.4, and everyone has at least one interaction). For each interaction, with
//!    probability 0.8 the product comes from the user's taste: from the favourite category
//!    (4 times in 5) or the second one, drawn with weight popularity × 4 if the colour
//!    matches × 2.5 if the season matches × 3 if the price range matches; otherwise any
//!    product, by popularity. The type is view, cart or purchase (weights 1, 3, 5): views are
//!    the most common, and carts and purchases are likelier for products of the user's taste.
//!    Times are uniform over the year 2023 (UTC); interactions are sorted by time.
//! 5. **Coverage.** Every product gets one view from a user who likes its category, so every
//!    user and every product appears; no (user, product, type) triple repeats.
//!
//! A model that learns from interactions and user/product features should therefore
//! recommend to a user mostly products of their favourite categories, in their colour,
//! season and price range, and for a new user with only attributes, products that suit their
//! age group, city and user type.
//!
//! ```
//! use recsys::demo::{generate, DemoConfig};
//!
//! let config = DemoConfig { users: 100, products: 80, interactions: 2_000, seed: 7 };
//! let data = generate(&config);
//! assert_eq!(data.users.len(), 100);
//! assert_eq!(data.products.len(), 80);
//! assert_eq!(data.interactions.len(), 2_000);
//! assert_eq!(data, generate(&config)); // same seed, same data
//! ```

use std::collections::HashSet;
use std::path::Path;

use recsys_core::Rng;
use recsys_features::{
    Attributes, ExternalId, InMemorySource, InteractionRecord, ProductRecord, RecordIter,
    RecordSource, SourceError, UserRecord,
};
use recsys_store::StoreError;

/// Sizes and seed of the demo dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoConfig {
    /// Number of users (ids 1..=users).
    pub users: usize,
    /// Number of products (ids 10001..).
    pub products: usize,
    /// Target number of interactions. Raised to `users + products` when smaller (so everyone
    /// appears) and lowered to `3 × users × products` when larger (each (user, product, type)
    /// triple occurs at most once); no interactions when there are no users or no products.
    pub interactions: usize,
    /// Seed of the random generator: the same config always gives the same data.
    pub seed: u64,
}

impl Default for DemoConfig {
    /// 1,200 users, 600 products, 30,000 interactions, seed 42.
    fn default() -> Self {
        DemoConfig {
            users: 1_200,
            products: 600,
            interactions: 30_000,
            seed: 42,
        }
    }
}

impl DemoConfig {
    /// The number of interactions [`generate`] produces for this config.
    pub fn interaction_count(&self) -> usize {
        if self.users == 0 || self.products == 0 {
            return 0;
        }
        let capacity = self
            .users
            .saturating_mul(self.products)
            .saturating_mul(INTERACTION_TYPES.len());
        self.interactions
            .max(self.users + self.products)
            .min(capacity)
    }
}

/// First product id (product ids and user ids never look alike).
pub const FIRST_PRODUCT_ID: i64 = 10_001;
/// 2023-01-01T00:00:00Z: start of the year the interactions fall in.
const YEAR_START: i64 = 1_672_531_200;
const YEAR_SECONDS: u64 = 365 * 86_400;

struct Category {
    name: &'static str,
    nouns: &'static [&'static str],
    materials: &'static [&'static str],
    base_price: f64,
    /// Season weights (spring, summer, autumn, winter).
    seasons: [f64; 4],
}

const CATEGORIES: [Category; 8] = [
    Category {
        name: "shirts",
        nouns: &["Shirt", "Blouse", "Polo"],
        materials: &["Linen", "Cotton", "Oxford"],
        base_price: 40.0,
        seasons: [3.0, 4.0, 1.5, 1.0],
    },
    Category {
        name: "dresses",
        nouns: &["Dress", "Maxi Dress", "Sundress"],
        materials: &["Silk", "Cotton", "Jersey"],
        base_price: 50.0,
        seasons: [3.0, 4.0, 1.5, 1.0],
    },
    Category {
        name: "trousers",
        nouns: &["Chinos", "Jeans", "Trousers"],
        materials: &["Denim", "Twill", "Corduroy"],
        base_price: 45.0,
        seasons: [1.0, 1.0, 1.0, 1.0],
    },
    Category {
        name: "shoes",
        nouns: &["Sneakers", "Loafers", "Boots"],
        materials: &["Leather", "Canvas", "Suede"],
        base_price: 55.0,
        seasons: [1.0, 1.0, 1.0, 1.0],
    },
    Category {
        name: "outerwear",
        nouns: &["Jacket", "Coat", "Parka"],
        materials: &["Wool", "Down", "Waxed Cotton"],
        base_price: 65.0,
        seasons: [1.0, 0.5, 3.0, 4.0],
    },
    Category {
        name: "knitwear",
        nouns: &["Sweater", "Cardigan", "Hoodie"],
        materials: &["Merino", "Cashmere", "Fleece"],
        base_price: 50.0,
        seasons: [1.0, 0.5, 3.0, 4.0],
    },
    Category {
        name: "sportswear",
        nouns: &["Running Tee", "Leggings", "Track Jacket"],
        materials: &["Mesh", "Stretch", "Performance"],
        base_price: 40.0,
        seasons: [1.0, 1.0, 1.0, 1.0],
    },
    Category {
        name: "accessories",
        nouns: &["Scarf", "Cap", "Belt", "Tote Bag"],
        materials: &["Leather", "Knit", "Canvas"],
        base_price: 30.0,
        seasons: [1.0, 1.0, 1.0, 1.0],
    },
];

const COLOURS: [&str; 8] = [
    "black", "white", "blue", "red", "green", "beige", "grey", "pink",
];
const SEASONS: [&str; 4] = ["spring", "summer", "autumn", "winter"];
const PRICE_RANGES: [&str; 3] = ["budget", "mid", "premium"];
const TIER_MULTIPLIERS: [f64; 3] = [0.45, 1.0, 2.2];
/// Brands and their price tier (index into [`PRICE_RANGES`]).
const BRANDS: [(&str, usize); 12] = [
    ("Pebble", 0),
    ("Urbanica", 0),
    ("Sola", 0),
    ("Kestrel", 0),
    ("Northwind", 1),
    ("Oakline", 1),
    ("Fjord", 1),
    ("Verde", 1),
    ("Lumen", 2),
    ("Atelier Rue", 2),
    ("Marlow & Co", 2),
    ("Halcyon", 2),
];

/// City and the season its climate favours (index into [`SEASONS`]).
const CITIES: [(&str, usize); 6] = [
    ("Stockholm", 3),
    ("Berlin", 2),
    ("London", 2),
    ("Paris", 0),
    ("Madrid", 1),
    ("Rome", 1),
];
/// Age group and the two categories it favours (indices into [`CATEGORIES`]).
const AGE_GROUPS: [(&str, [usize; 2]); 5] = [
    ("18-24", [6, 3]),
    ("25-34", [1, 2]),
    ("35-44", [0, 4]),
    ("45-54", [5, 7]),
    ("55+", [4, 5]),
];
/// User type, its share of users, and the price tier it favours.
const USER_TYPES: [(&str, f64, usize); 3] =
    [("new", 0.3, 0), ("regular", 0.55, 1), ("vip", 0.15, 2)];
/// Interaction type and weight.
const INTERACTION_TYPES: [(&str, f32); 3] = [("view", 1.0), ("cart", 3.0), ("purchase", 5.0)];
/// Type probabilities for a product from the user's taste and for a random one.
const TYPE_ODDS_IN_TASTE: [f64; 3] = [0.6, 0.25, 0.15];
const TYPE_ODDS_RANDOM: [f64; 3] = [0.9, 0.08, 0.02];

const IN_TASTE: f64 = 0.8;
const FAVOURITE_CATEGORY: f64 = 0.8;
const ATTRIBUTE_SIGNAL: f64 = 0.7;

/// The hidden preferences of one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Taste {
    categories: [usize; 2],
    colour: usize,
    season: usize,
    tier: usize,
}

struct Product {
    category: usize,
    colour: usize,
    season: usize,
    tier: usize,
}

/// Index drawn with probability proportional to `weights`.
fn pick_weighted(rng: &mut Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.next_f64() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// Cumulative weights, sampled by binary search.
struct Sampler {
    cumulative: Vec<f64>,
}

impl Sampler {
    fn new(weights: impl IntoIterator<Item = f64>) -> Sampler {
        let mut total = 0.0;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                total += w;
                total
            })
            .collect();
        Sampler { cumulative }
    }

    fn is_empty(&self) -> bool {
        !matches!(self.cumulative.last(), Some(&total) if total > 0.0)
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let x = rng.next_f64() * total;
        self.cumulative
            .partition_point(|&c| c <= x)
            .min(self.cumulative.len().saturating_sub(1))
    }
}

fn chance(rng: &mut Rng, p: f64) -> bool {
    rng.next_f64() < p
}

fn attributes(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// The dataset plus the hidden tastes and product traits (the tests check the data against
/// them).
#[cfg_attr(not(test), allow(dead_code))]
struct Generated {
    source: InMemorySource,
    tastes: Vec<Taste>,
    products: Vec<Product>,
}

/// Generates the demo dataset described in the [module docs](self); deterministic for a
/// given config.
pub fn generate(config: &DemoConfig) -> InMemorySource {
    generate_with_truth(config).source
}

fn generate_with_truth(config: &DemoConfig) -> Generated {
    let mut rng = Rng::new(config.seed);
    let (users, tastes) = make_users(config.users, &mut rng);
    let (products, catalogue) = make_products(config.products, &mut rng);
    let interactions = make_interactions(config, &tastes, &catalogue, &mut rng);
    Generated {
        source: InMemorySource {
            users,
            products,
            interactions,
        },
        tastes,
        products: catalogue,
    }
}

fn make_users(count: usize, rng: &mut Rng) -> (Vec<UserRecord>, Vec<Taste>) {
    let type_shares: Vec<f64> = USER_TYPES.iter().map(|t| t.1).collect();
    let mut users = Vec::with_capacity(count);
    let mut tastes = Vec::with_capacity(count);
    for i in 0..count {
        let (city, city_season) = CITIES[rng.below(CITIES.len())];
        let (age_group, age_categories) = AGE_GROUPS[rng.below(AGE_GROUPS.len())];
        let (user_type, _, type_tier) = USER_TYPES[pick_weighted(rng, &type_shares)];
        let favourite = if chance(rng, ATTRIBUTE_SIGNAL) {
            age_categories[rng.below(2)]
        } else {
            rng.below(CATEGORIES.len())
        };
        let second = (favourite + 1 + rng.below(CATEGORIES.len() - 1)) % CATEGORIES.len();
        let colour = rng.below(COLOURS.len());
        let season = if chance(rng, ATTRIBUTE_SIGNAL) {
            city_season
        } else {
            rng.below(SEASONS.len())
        };
        let tier = if chance(rng, ATTRIBUTE_SIGNAL) {
            type_tier
        } else {
            rng.below(PRICE_RANGES.len())
        };
        tastes.push(Taste {
            categories: [favourite, second],
            colour,
            season,
            tier,
        });
        users.push(UserRecord {
            user_id: ExternalId::Int(i as i64 + 1),
            attributes: attributes(&[
                ("city", city),
                ("age_group", age_group),
                ("user_type", user_type),
            ]),
        });
    }
    (users, tastes)
}

fn price_range(price: f64) -> &'static str {
    if price < 30.0 {
        PRICE_RANGES[0]
    } else if price < 80.0 {
        PRICE_RANGES[1]
    } else {
        PRICE_RANGES[2]
    }
}

fn make_products(count: usize, rng: &mut Rng) -> (Vec<ProductRecord>, Vec<Product>) {
    let mut categories: Vec<usize> = (0..count).map(|i| i % CATEGORIES.len()).collect();
    rng.shuffle(&mut categories);
    let mut records = Vec::with_capacity(count);
    let mut catalogue = Vec::with_capacity(count);
    for (i, &category) in categories.iter().enumerate() {
        let c = &CATEGORIES[category];
        let colour = rng.below(COLOURS.len());
        let season = pick_weighted(rng, &c.seasons);
        let (brand, brand_tier) = BRANDS[rng.below(BRANDS.len())];
        let noise = 0.85 + 0.3 * rng.next_f64();
        // Shop prices: whole currency units minus one cent (34.99), at least 4.99.
        let whole = (c.base_price * TIER_MULTIPLIERS[brand_tier] * noise)
            .round()
            .max(5.0);
        let price = (whole * 100.0 - 1.0) / 100.0;
        let name = format!(
            "{} {} {} {}",
            capitalised(COLOURS[colour]),
            capitalised(SEASONS[season]),
            c.materials[rng.below(c.materials.len())],
            c.nouns[rng.below(c.nouns.len())],
        );
        let range = price_range(price);
        let id = FIRST_PRODUCT_ID + i as i64;
        records.push(ProductRecord {
            product_id: ExternalId::Int(id),
            name: Some(name),
            price: Some(price),
            image: Some(format!("{id}.jpg")),
            attributes: attributes(&[
                ("category", c.name),
                ("brand", brand),
                ("price_range", range),
                ("colour", COLOURS[colour]),
                ("season", SEASONS[season]),
            ]),
        });
        let tier = PRICE_RANGES.iter().position(|r| *r == range).unwrap_or(1);
        catalogue.push(Product {
            category,
            colour,
            season,
            tier,
        });
    }
    (records, catalogue)
}

/// The (user, product, type) events so far, each at most once.
struct EventLog {
    seen: HashSet<(usize, usize, usize)>,
    used_per_user: Vec<usize>,
    events: Vec<(usize, usize, usize)>,
}

impl EventLog {
    /// Adds the event unless it already happened; true when added.
    fn record(&mut self, user: usize, product: usize, kind: usize) -> bool {
        let added = self.seen.insert((user, product, kind));
        if added {
            self.used_per_user[user] += 1;
            self.events.push((user, product, kind));
        }
        added
    }
}

/// Per-user samplers over the products of their two categories.
struct TasteSampler {
    /// For each of the user's two categories: the product indices and their sampler.
    pools: [(Vec<usize>, Sampler); 2],
}

fn make_interactions(
    config: &DemoConfig,
    tastes: &[Taste],
    catalogue: &[Product],
    rng: &mut Rng,
) -> Vec<InteractionRecord> {
    let total = config.interaction_count();
    let (n_users, n_products) = (tastes.len(), catalogue.len());
    if total == 0 {
        return Vec::new();
    }

    // Popularity: a random rank per product, Zipf-like weights.
    let mut ranks: Vec<usize> = (0..n_products).collect();
    rng.shuffle(&mut ranks);
    let popularity: Vec<f64> = ranks
        .iter()
        .map(|&r| 1.0 / (r as f64 + 1.0).powf(0.7))
        .collect();
    let global = Sampler::new(popularity.iter().copied());
    let mut by_category = vec![Vec::new(); CATEGORIES.len()];
    for (p, product) in catalogue.iter().enumerate() {
        by_category[product.category].push(p);
    }
    let samplers: Vec<TasteSampler> = tastes
        .iter()
        .map(|taste| {
            let pool = |category: usize| {
                let members = by_category[category].clone();
                let sampler = Sampler::new(members.iter().map(|&p| {
                    let product = &catalogue[p];
                    let mut w = popularity[p];
                    if product.colour == taste.colour {
                        w *= 4.0;
                    }
                    if product.season == taste.season {
                        w *= 2.5;
                    }
                    if product.tier == taste.tier {
                        w *= 3.0;
                    }
                    w
                }));
                (members, sampler)
            };
            TasteSampler {
                pools: [pool(taste.categories[0]), pool(taste.categories[1])],
            }
        })
        .collect();

    let mut log = EventLog {
        seen: HashSet::with_capacity(total),
        used_per_user: vec![0; n_users],
        events: Vec::with_capacity(total),
    };

    // Coverage: one view per product, from a user who likes its category.
    let mut fans = vec![Vec::new(); CATEGORIES.len()];
    for (u, taste) in tastes.iter().enumerate() {
        fans[taste.categories[0]].push(u);
        fans[taste.categories[1]].push(u);
    }
    for (p, product) in catalogue.iter().enumerate() {
        let candidates = &fans[product.category];
        let u = if candidates.is_empty() {
            rng.below(n_users)
        } else {
            candidates[rng.below(candidates.len())]
        };
        log.record(u, p, 0);
    }

    // Activity: every user at least one event, the rest heavy-tailed.
    let remaining = total - log.events.len();
    let mut per_user = vec![(remaining / n_users).min(1); n_users];
    let mut activity_ranks: Vec<usize> = (0..n_users).collect();
    rng.shuffle(&mut activity_ranks);
    let activity = Sampler::new(
        activity_ranks
            .iter()
            .map(|&r| 1.0 / (r as f64 + 1.0).powf(0.4)),
    );
    for _ in per_user.iter().sum::<usize>()..remaining {
        per_user[activity.sample(rng)] += 1;
    }

    let capacity = n_products * INTERACTION_TYPES.len();
    for (u, &count) in per_user.iter().enumerate() {
        for _ in 0..count {
            let mut done = false;
            for _attempt in 0..32 {
                let (p, odds) = if chance(rng, IN_TASTE) {
                    let which = usize::from(!chance(rng, FAVOURITE_CATEGORY));
                    let (members, sampler) = &samplers[u].pools[which];
                    if sampler.is_empty() {
                        (global.sample(rng), &TYPE_ODDS_RANDOM)
                    } else {
                        (members[sampler.sample(rng)], &TYPE_ODDS_IN_TASTE)
                    }
                } else {
                    (global.sample(rng), &TYPE_ODDS_RANDOM)
                };
                let t = pick_weighted(rng, odds);
                if log.record(u, p, t) {
                    done = true;
                    break;
                }
            }
            if !done {
                // This user's draws keep repeating: take the first free triple of a user
                // with room, scanning from a random product.
                let owner = (0..n_users)
                    .map(|k| (u + k) % n_users)
                    .find(|&v| log.used_per_user[v] < capacity);
                if let Some(v) = owner {
                    let start = rng.below(capacity);
                    for k in 0..capacity {
                        let slot = (start + k) % capacity;
                        let (p, t) = (
                            slot / INTERACTION_TYPES.len(),
                            slot % INTERACTION_TYPES.len(),
                        );
                        if log.record(v, p, t) {
                            break;
                        }
                    }
                }
            }
        }
    }

    let mut interactions: Vec<(i64, usize, usize, usize)> = log
        .events
        .into_iter()
        .map(|(u, p, t)| (YEAR_START + (rng.next_u64() % YEAR_SECONDS) as i64, u, p, t))
        .collect();
    interactions.sort_unstable();
    interactions
        .into_iter()
        .map(|(timestamp, u, p, t)| InteractionRecord {
            user_id: ExternalId::Int(u as i64 + 1),
            product_id: ExternalId::Int(FIRST_PRODUCT_ID + p as i64),
            interaction_type: Some(INTERACTION_TYPES[t].0.to_string()),
            weight: Some(INTERACTION_TYPES[t].1),
            timestamp: Some(timestamp),
        })
        .collect()
}

/// Borrows an [`InMemorySource`] as a [`RecordSource`] without copying it whole.
struct Borrowed<'a>(&'a InMemorySource);

impl RecordSource for Borrowed<'_> {
    fn users(&mut self) -> Result<RecordIter<'_, UserRecord>, SourceError> {
        Ok(Box::new(self.0.users.iter().cloned().map(Ok)))
    }
    fn products(&mut self) -> Result<RecordIter<'_, ProductRecord>, SourceError> {
        Ok(Box::new(self.0.products.iter().cloned().map(Ok)))
    }
    fn interactions(&mut self) -> Result<RecordIter<'_, InteractionRecord>, SourceError> {
        Ok(Box::new(self.0.interactions.iter().cloned().map(Ok)))
    }
}

/// Writes `users.csv`, `products.csv` and `user_product_interactions.csv` into `dir` in the
/// recsys CSV schema (see [`recsys_store::write_csv_dir`]);
/// [`CsvSource`](recsys_store::CsvSource) reads them back to the same records.
///
/// ```
/// use recsys::demo::{generate, write_csv, DemoConfig};
/// use recsys_features::InMemorySource;
///
/// let data = generate(&DemoConfig { users: 20, products: 30, interactions: 200, seed: 1 });
/// let dir = std::env::temp_dir().join(format!("recsys-demo-doc-{}", std::process::id()));
/// write_csv(&data, &dir).unwrap();
/// let back = InMemorySource::collect_from(recsys_store::CsvSource::open(&dir).unwrap()).unwrap();
/// assert_eq!(back, data);
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_csv(data: &InMemorySource, dir: impl AsRef<Path>) -> Result<(), StoreError> {
    recsys_store::write_csv_dir(&mut Borrowed(data), dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn small() -> DemoConfig {
        DemoConfig {
            users: 300,
            products: 200,
            interactions: 8_000,
            seed: 5,
        }
    }

    #[test]
    fn config_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DemoConfig>();
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = generate(&small());
        assert_eq!(a, generate(&small()));
        let b = generate(&DemoConfig { seed: 6, ..small() });
        assert_ne!(a.interactions, b.interactions);
    }

    #[test]
    fn counts_are_as_configured() {
        for config in [DemoConfig::default(), small()] {
            let data = generate(&config);
            assert_eq!(data.users.len(), config.users);
            assert_eq!(data.products.len(), config.products);
            assert_eq!(data.interactions.len(), config.interactions);
            assert_eq!(config.interaction_count(), config.interactions);
        }
    }

    #[test]
    fn small_and_degenerate_configs() {
        let cases = [
            (0, 10, 100, 0),
            (10, 0, 100, 0),
            (5, 7, 3, 12),     // raised to users + products
            (2, 3, 1_000, 18), // capped at 3 × users × products
            (1, 1, 1, 2),
        ];
        for (users, products, interactions, expected) in cases {
            let config = DemoConfig {
                users,
                products,
                interactions,
                seed: 3,
            };
            let data = generate(&config);
            assert_eq!(data.interactions.len(), expected, "{config:?}");
            assert_eq!(config.interaction_count(), expected, "{config:?}");
            check_invariants(&data);
        }
    }

    fn check_invariants(data: &InMemorySource) {
        let mut triples = HashSet::new();
        for i in &data.interactions {
            assert!(
                triples.insert((&i.user_id, &i.product_id, &i.interaction_type)),
                "duplicate {i:?}"
            );
        }
        if data.interactions.is_empty() {
            return;
        }
        let users: HashSet<_> = data.interactions.iter().map(|i| &i.user_id).collect();
        let products: HashSet<_> = data.interactions.iter().map(|i| &i.product_id).collect();
        assert_eq!(users.len(), data.users.len(), "every user appears");
        assert_eq!(products.len(), data.products.len(), "every product appears");
    }

    #[test]
    fn records_are_well_formed() {
        let data = generate(&DemoConfig::default());
        check_invariants(&data);
        let mut kinds = HashMap::new();
        for i in &data.interactions {
            *kinds
                .entry(i.interaction_type.clone().unwrap())
                .or_insert(0usize) += 1;
            let expected_weight = match i.interaction_type.as_deref() {
                Some("view") => 1.0,
                Some("cart") => 3.0,
                Some("purchase") => 5.0,
                other => panic!("unexpected type {other:?}"),
            };
            assert_eq!(i.weight, Some(expected_weight));
            let t = i.timestamp.unwrap();
            assert!((YEAR_START..YEAR_START + YEAR_SECONDS as i64).contains(&t));
        }
        assert!(
            kinds["view"] > kinds["cart"] && kinds["cart"] > kinds["purchase"],
            "{kinds:?}"
        );
        assert!(data
            .interactions
            .windows(2)
            .all(|w| w[0].timestamp <= w[1].timestamp));
        for p in &data.products {
            let price = p.price.unwrap();
            assert!(price > 0.0 && ((price * 100.0).round() - price * 100.0).abs() < 1e-6);
            assert_eq!(p.attributes["price_range"], price_range(price));
            assert_eq!(
                p.image.as_deref(),
                Some(format!("{}.jpg", p.product_id).as_str())
            );
            let name = p.name.as_deref().unwrap();
            assert!(
                name.starts_with(&capitalised(&p.attributes["colour"])),
                "{name}"
            );
            for key in ["category", "brand", "colour", "season"] {
                assert!(p.attributes.contains_key(key), "{key}");
            }
        }
        for u in &data.users {
            for key in ["city", "age_group", "user_type"] {
                assert!(u.attributes.contains_key(key), "{key}");
            }
        }
    }

    /// Share of each user's interactions that fall in a given category per user.
    fn category_share(g: &Generated, category_of_user: impl Fn(usize) -> usize) -> f64 {
        let (mut hits, mut total) = (0usize, 0usize);
        for i in &g.source.interactions {
            let (ExternalId::Int(u), ExternalId::Int(p)) = (&i.user_id, &i.product_id) else {
                panic!("integer ids");
            };
            let u = (*u - 1) as usize;
            let p = (*p - FIRST_PRODUCT_ID) as usize;
            total += 1;
            hits += usize::from(g.products[p].category == category_of_user(u));
        }
        hits as f64 / total as f64
    }

    #[test]
    fn interactions_follow_the_planted_taste() {
        let g = generate_with_truth(&DemoConfig::default());
        // Planted: 0.8 × 0.8 + 0.2 / 8 ≈ 0.66, less where a user's favourites are exhausted by
        // the no-repeat rule; a random category would give 1/8.
        let favourite = category_share(&g, |u| g.tastes[u].categories[0]);
        let unrelated = category_share(&g, |u| (g.tastes[u].categories[0] + 4) % 8);
        eprintln!("share in favourite category {favourite:.3}, unrelated {unrelated:.3}");
        assert!(favourite > 0.5, "share in favourite category {favourite}");
        assert!(
            unrelated < 0.12,
            "share in an unrelated category {unrelated}"
        );

        // Visible without the truth: for most active users, their most frequent category
        // holds over half of their interactions.
        let mut per_user: HashMap<&ExternalId, HashMap<&str, usize>> = HashMap::new();
        let category: HashMap<&ExternalId, &str> = g
            .source
            .products
            .iter()
            .map(|p| (&p.product_id, p.attributes["category"].as_str()))
            .collect();
        for i in &g.source.interactions {
            *per_user
                .entry(&i.user_id)
                .or_default()
                .entry(category[&i.product_id])
                .or_default() += 1;
        }
        let active: Vec<_> = per_user
            .values()
            .filter(|counts| counts.values().sum::<usize>() >= 20)
            .collect();
        let focused = active
            .iter()
            .filter(|counts| {
                let n: usize = counts.values().sum();
                *counts.values().max().unwrap() * 2 > n
            })
            .count();
        eprintln!("{focused} of {} active users focused", active.len());
        assert!(active.len() > 200, "{} active users", active.len());
        assert!(
            focused * 10 > active.len() * 7,
            "{focused} of {} active users focused",
            active.len()
        );
    }

    #[test]
    fn user_attributes_carry_signal() {
        let g = generate_with_truth(&DemoConfig::default());
        let data = &g.source;
        // The most interacted category of each age group is one it favours.
        for (age_group, favoured) in AGE_GROUPS {
            let mut counts = [0usize; 8];
            for i in &data.interactions {
                let ExternalId::Int(u) = i.user_id else {
                    panic!()
                };
                let ExternalId::Int(p) = i.product_id else {
                    panic!()
                };
                if data.users[(u - 1) as usize].attributes["age_group"] == age_group {
                    counts[g.products[(p - FIRST_PRODUCT_ID) as usize].category] += 1;
                }
            }
            let top = (0..8).max_by_key(|&c| counts[c]).unwrap();
            assert!(favoured.contains(&top), "{age_group}: {counts:?}");
        }
        // VIP users buy premium more than new users do.
        let premium_share = |user_type: &str| {
            let (mut hits, mut total) = (0usize, 0usize);
            for i in &data.interactions {
                let ExternalId::Int(u) = i.user_id else {
                    panic!()
                };
                let ExternalId::Int(p) = i.product_id else {
                    panic!()
                };
                if data.users[(u - 1) as usize].attributes["user_type"] == user_type {
                    total += 1;
                    hits += usize::from(g.products[(p - FIRST_PRODUCT_ID) as usize].tier == 2);
                }
            }
            hits as f64 / total as f64
        };
        let (vip, new) = (premium_share("vip"), premium_share("new"));
        eprintln!("premium share: vip {vip:.3}, new {new:.3}");
        assert!(vip > new + 0.1, "premium share vip {vip} new {new}");
    }

    #[test]
    fn csv_round_trip() {
        let data = generate(&small());
        let dir = std::env::temp_dir().join(format!(
            "recsys-demo-round-trip-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        write_csv(&data, &dir).unwrap();
        let source = recsys_store::CsvSource::open(&dir).unwrap();
        let back = InMemorySource::collect_from(source);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(back.unwrap(), data);
    }
}
