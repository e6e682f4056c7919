//! Quickstart: a hybrid recommender on the synthetic demo shop, with nothing but cargo.
//!
//! ```text
//! cargo run --release -p recsys-examples --example quickstart [-- --threads 2 --epochs 20]
//! ```
//!
//! Generates the seeded demo dataset (`recsys::demo`), builds user features (identity,
//! city, age group, user type) and item features (identity, category, brand, price range,
//! colour, season), trains WARP on a seeded 80/20 split, compares it with the popularity
//! baseline, and shows recommendations, similar products and a cold-start recommendation
//! for a brand-new user described only by attributes.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use recsys::demo::{generate, DemoConfig};
use recsys::experiment::{Experiment, ExperimentConfig, Split};
use recsys::{Attributes, ExactCosine, ExternalId, Hyperparameters, Loss, SimilarityIndex};
use recsys_examples::{epoch_progress, metrics_line, on_epoch, Catalogue};

#[derive(Parser, Debug)]
#[command(about = "Train and explore a hybrid recommender on the synthetic demo shop")]
struct Args {
    /// Training threads (more than 1: Hogwild, not bit-reproducible).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Training epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Latent dimensions.
    #[arg(long, default_value_t = 32)]
    components: usize,
    /// Initial learning rate (adagrad).
    #[arg(long, default_value_t = 0.1)]
    learning_rate: f32,
    /// Seed of the data, the split and the model.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> ExitCode {
    recsys_examples::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let config = DemoConfig {
        seed: args.seed,
        ..DemoConfig::default()
    };
    let shop = generate(&config);
    let catalogue = Catalogue::new(&shop.products);
    let experiment = Experiment::load(
        &mut shop.clone(),
        &ExperimentConfig::demo_hybrid(),
        Split::Random {
            test_fraction: 0.2,
            seed: args.seed,
        },
    )
    .context("building the demo dataset")?;
    let dataset = experiment.dataset();
    let test = experiment.test().context("the split has a test set")?;
    println!(
        "recsys quickstart — synthetic fashion shop (seed {})",
        args.seed
    );
    println!(
        "  {} users, {} products, {} interactions → {} train / {} test pairs",
        dataset.n_users(),
        dataset.n_items(),
        shop.interactions.len(),
        experiment.train().len(),
        test.len()
    );
    println!(
        "  features: {} user (identity + city, age_group, user_type), {} item (identity + category, brand, price_range, colour, season)\n",
        dataset.user_vocabulary().len(),
        dataset.item_vocabulary().len()
    );

    let params = Hyperparameters::builder()
        .loss(Loss::Warp)
        .no_components(args.components)
        .learning_rate(args.learning_rate)
        .seed(args.seed)
        .build()?;
    let bar = epoch_progress(args.epochs, false);
    let (model, training) =
        experiment.fit(params, args.epochs, args.threads, |r| on_epoch(&bar, r))?;
    bar.finish_and_clear();
    println!(
        "trained WARP, {} components, {} epochs on {} thread(s): {:.3}s/epoch, final loss {:.4}\n",
        args.components,
        args.epochs,
        args.threads,
        training.seconds_per_epoch(),
        training.final_loss().unwrap_or(0.0)
    );

    let hybrid = experiment.evaluate(&model, 10, args.threads)?;
    let popular = experiment.evaluate(&experiment.popularity(), 10, args.threads)?;
    println!("held-out evaluation (training pairs excluded from the ranking):");
    println!("  hybrid model  {}", metrics_line(&hybrid));
    println!("  popularity    {}\n", metrics_line(&popular));

    // A few users: who they are, what they did, what we recommend.
    let users = dataset.users();
    let attributes: BTreeMap<&ExternalId, &Attributes> = shop
        .users
        .iter()
        .map(|u| (&u.user_id, &u.attributes))
        .collect();
    for user in [0usize, 1, 2] {
        let id = users.id(user).context("user index")?;
        let attrs = attributes
            .get(id)
            .map(|a| {
                a.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let history: Vec<&ExternalId> = experiment
            .train()
            .user_items(user)
            .iter()
            .filter_map(|&i| dataset.items().id(i as usize))
            .collect();
        let mut by_category: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &history {
            if let Some(c) = catalogue.attribute(p, "category") {
                *by_category.entry(c).or_default() += 1;
            }
        }
        let mut favourites: Vec<(&str, usize)> = by_category.into_iter().collect();
        favourites.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        favourites.truncate(2);
        println!("user {id} ({attrs})");
        println!(
            "  {} past interactions, mostly {}; for example:",
            history.len(),
            favourites
                .iter()
                .map(|(c, n)| format!("{c} ({n})"))
                .collect::<Vec<_>>()
                .join(" and ")
        );
        for p in history.iter().take(3) {
            println!("    · {}", catalogue.describe(p));
        }
        println!("  top 5 recommendations:");
        for (rank, (item, score)) in experiment
            .recommend(&model, user, 5)?
            .into_iter()
            .enumerate()
        {
            let pid = dataset.items().id(item).context("item index")?;
            let hit = catalogue
                .attribute(pid, "category")
                .is_some_and(|c| favourites.iter().any(|f| f.0 == c));
            println!(
                "    {}. {}  score {score:6.2}{}",
                rank + 1,
                catalogue.describe(pid),
                if hit { "  ✓ favourite category" } else { "" }
            );
        }
        println!();
    }

    // Similar products by cosine similarity of the learned item representations.
    let index = ExactCosine::new(model.item_representations().vectors());
    let popular_item = experiment
        .train()
        .item_counts()
        .iter()
        .enumerate()
        .max_by_key(|(i, c)| (**c, std::cmp::Reverse(*i)))
        .map(|(i, _)| i)
        .context("at least one item")?;
    let pid = dataset.items().id(popular_item).context("item index")?;
    println!(
        "products most similar to the best seller {}:",
        catalogue.describe(pid).trim_end()
    );
    for similar in index.similar(popular_item, 5, &|_| false)? {
        let other = dataset.items().id(similar.item).context("item index")?;
        println!(
            "    · {}  cosine {:.3}",
            catalogue.describe(other),
            similar.similarity
        );
    }
    println!();

    // Cold start: a user who has never interacted, described only by attributes.
    let newcomer: Attributes = [
        ("city", "Stockholm"),
        ("age_group", "18-24"),
        ("user_type", "vip"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    println!("a brand-new user (city=Stockholm, age_group=18-24, user_type=vip), no history:");
    println!("  (in the demo shop, 18-24 year-olds favour sportswear and shoes, Stockholm winter, vips premium)");
    for (rank, (item, score)) in experiment
        .recommend_new_user(&model, &newcomer, 5)?
        .into_iter()
        .enumerate()
    {
        let pid = dataset.items().id(item).context("item index")?;
        println!(
            "    {}. {}  score {score:6.2}",
            rank + 1,
            catalogue.describe(pid)
        );
    }
    println!("\ndone in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
