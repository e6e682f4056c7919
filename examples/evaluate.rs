//! Train on a dataset folder in the recsys CSV schema and evaluate on held-out pairs.
//!
//! ```text
//! cargo run --release -p recsys-examples --example evaluate -- \
//!     --data ../shared/data/completejourney-seed --epochs 10 --threads 2 \
//!     --user-features age_group,income --item-features category,brand,price --json
//! ```
//!
//! `--model als` trains the implicit-feedback ALS model instead (`--alpha`,
//! `--regularization`, `--iterations`, `--cg-steps`, `--solver`); `--factors DIR` trains
//! nothing and evaluates factors trained elsewhere (`DIR/user_factors.csv` and
//! `DIR/item_factors.csv`: a header, then `id,f0,…,f(k−1)` per row; users and items
//! without a row score 0), with the same metric code — how `scripts/compare-implicit.sh`
//! measures implicit.
//!
//! `--cold-start-items 0.1 --cold-start-refit auto` measures item cold start with the
//! refit of `recsys_core::ColdStartRefit` (λ chosen on a cold-start split of the training
//! data); the JSON's `cold_start_refit` says what was chosen and why.
//! `--cold-start-content auto` ranks the held-out products with `recsys_core::ContentModel`
//! instead (its settings chosen on the same kind of split; JSON: `cold_start_content`).
//!
//! Train = every interaction that is not a test pair; test = `--test-pairs` (default
//! `<data>/test_pairs.csv.gz` or `<data>/test_pairs.csv`), or, when neither exists or
//! `--test-fraction` is given, a seeded random split (said on stderr and in the JSON's
//! `split`). `--negative-types dislike` makes records of that type negative examples
//! (value −1) for `--loss logistic` (LightFM's ±1 labels; recorded as `negative_types` in
//! the JSON). The feature rules and the flags mirror
//! `scripts/lightfm_bench.py` (see `recsys::experiment`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use recsys::core::{AlsModel, AlsParams, ContentPrior};
use recsys::experiment::{Experiment, Split, TrainingReport};
use recsys::{
    CsvSource, ExternalId, HybridModel, InMemorySource, RecordSource, Rng, Scorer, UserQuery,
};
use recsys_examples::{
    metrics_line, ColdStartArgs, ContentPriorArgs, FeatureArgs, ModelArgs, ModelKind,
};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Train a hybrid recommender on a CSV dataset folder and evaluate it")]
struct Args {
    /// Folder with users.csv, products.csv and user_product_interactions.csv(.gz)
    /// [default: ../shared/data/completejourney-seed, relative to the repository root].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Held-out `user_id,product_id` pairs [default: <data>/test_pairs.csv.gz, or
    /// <data>/test_pairs.csv].
    #[arg(long, value_name = "FILE")]
    test_pairs: Option<PathBuf>,
    /// Use a seeded random split with this test fraction instead of a test-pairs file
    /// (also the fallback, with 0.2, when no default test-pairs file exists).
    #[arg(long, value_name = "F")]
    test_fraction: Option<f64>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    features: FeatureArgs,
    /// Cut-off of precision, recall and NDCG.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Item cold start: hold out this fraction of the products (all their training pairs
    /// removed) and evaluate on them only.
    #[arg(long, value_name = "FRACTION", conflicts_with = "cold_items")]
    cold_start_items: Option<f64>,
    /// Item cold start with the products listed in FILE (one product id per line; a
    /// `product_id` header line is allowed) instead of a random fraction.
    #[arg(long, value_name = "FILE")]
    cold_items: Option<PathBuf>,
    #[command(flatten)]
    cold_start: ColdStartArgs,
    #[command(flatten)]
    content_prior: ContentPriorArgs,

    /// Shuffle the products' attributes (category, brand, price, …) across products with
    /// this seed before building features: metadata that carries no information about the
    /// items, to show how a hybrid model copes with useless features (see
    /// docs/benchmarks.md, "Do features help?").
    #[arg(long, value_name = "SEED")]
    shuffle_item_features: Option<u64>,
    /// Evaluate the factors in DIR (user_factors.csv, item_factors.csv) instead of training.
    #[arg(long, value_name = "DIR")]
    factors: Option<PathBuf>,
    /// Write an HTML report with plots to DIR/report.html (as `train --report`, without
    /// per-epoch held-out metrics: precision and recall at k = 1…50 against popularity —
    /// among the cold items in a cold-start run — the long tail, coverage, and scores of
    /// products without interactions against the others).
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Print one JSON object on stdout (no progress bar).
    #[arg(long)]
    json: bool,
}

/// `<data>/test_pairs.csv.gz` or `<data>/test_pairs.csv`, whichever exists; an error when
/// both do (which one is meant?).
fn default_test_pairs(data: &Path) -> Result<Option<PathBuf>> {
    let gz = data.join("test_pairs.csv.gz");
    let plain = data.join("test_pairs.csv");
    match (gz.is_file(), plain.is_file()) {
        (true, true) => bail!(
            "both {} and {} exist; remove one or pass --test-pairs FILE",
            gz.display(),
            plain.display()
        ),
        (true, false) => Ok(Some(gz)),
        (false, true) => Ok(Some(plain)),
        (false, false) => Ok(None),
    }
}

/// The ids of a one-column file: one id per line, blank lines skipped, an optional first
/// line `product_id` (a header).
fn read_id_list(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut ids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if ids.first().is_some_and(|h| h == "product_id") {
        ids.remove(0);
    }
    if ids.is_empty() {
        bail!("{} lists no product id", path.display());
    }
    Ok(ids)
}

fn default_data_dir() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the examples crate has a parent directory")?;
    let dir = root.join("../shared/data/completejourney-seed");
    if !dir.is_dir() {
        bail!(
            "no --data given and the default dataset {} does not exist; pass --data DIR \
             (a folder with users.csv, products.csv and user_product_interactions.csv.gz)",
            dir.display()
        );
    }
    Ok(dir)
}

fn main() -> ExitCode {
    recsys_examples::exit_code(run(Args::parse()))
}

fn run(args: Args) -> Result<()> {
    let data = match &args.data {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };

    let config = args.features.config()?;
    args.cold_start.check(&config)?;
    args.content_prior.check()?;

    // ---- load
    let load_started = Instant::now();
    let mut csv =
        CsvSource::open(&data).with_context(|| format!("opening dataset {}", data.display()))?;
    let mut shuffled;
    let source: &mut dyn RecordSource = match args.shuffle_item_features {
        None => &mut csv,
        Some(seed) => {
            shuffled = InMemorySource::collect_from(&mut csv)?;
            shuffle_product_attributes(&mut shuffled, seed);
            &mut shuffled
        }
    };
    let pairs_file = match (args.test_fraction, &args.test_pairs) {
        (Some(_), _) => None,
        (None, Some(path)) => Some(path.clone()),
        (None, None) => default_test_pairs(&data)?,
    };
    let (split, mut split_json) = match (&pairs_file, args.test_fraction) {
        (Some(path), _) => {
            let pairs = recsys::read_pairs(path)
                .with_context(|| format!("reading test pairs {}", path.display()))?;
            let json = json!({"kind": "held-out-pairs", "file": path.display().to_string(), "pairs_in_file": pairs.len()});
            (Split::HeldOutPairs(pairs), json)
        }
        (None, fraction) => {
            let test_fraction = fraction.unwrap_or(0.2);
            if fraction.is_none() {
                eprintln!(
                    "note: no test_pairs.csv.gz or test_pairs.csv in {}; using a random 20 % \
                     test split (seed {})",
                    data.display(),
                    args.model.seed
                );
            }
            let json =
                json!({"kind": "random", "test_fraction": test_fraction, "seed": args.model.seed});
            let split = Split::Random {
                test_fraction,
                seed: args.model.seed,
            };
            (split, json)
        }
    };
    let mut experiment = Experiment::load(source, &config, split)
        .with_context(|| format!("loading dataset {}", data.display()))?;
    if pairs_file.is_some() {
        split_json["test_pairs_not_in_interactions"] =
            json!(experiment.load_report().test_pairs_not_logged);
    }
    recsys_examples::warn_possibly_multi_valued(experiment.dataset());
    recsys_examples::warn_unused_negative_types(&config, experiment.dataset());
    if (args.cold_start_items.is_some() || args.cold_items.is_some())
        && experiment
            .dataset()
            .item_vocabulary()
            .spec()
            .columns
            .is_empty()
    {
        eprintln!(
            "warning: item cold start without item features (--item-features): the held-out \
             products have no representation, so they are ranked at chance level"
        );
    }
    if let Some(fraction) = args.cold_start_items {
        experiment
            .hold_out_items(fraction, args.model.seed)
            .context("--cold-start-items")?;
    }
    if let Some(path) = &args.cold_items {
        let ids = read_id_list(path)?;
        experiment
            .hold_out_given_items(&ids)
            .with_context(|| format!("--cold-items {}", path.display()))?;
    }
    if args.cold_start.cold_start_content.is_some() && experiment.cold_items().is_none() {
        bail!("--cold-start-content needs an item cold-start run (--cold-start-items or --cold-items)");
    }
    let load_seconds = load_started.elapsed().as_secs_f64();
    let test = experiment.test().context("the split has a test set")?;
    if test.is_empty() {
        bail!("the test set is empty");
    }
    if !args.json {
        let d = experiment.dataset();
        eprintln!(
            "loaded {} in {load_seconds:.1}s: {} users, {} items, {} train, {} test pairs; \
             {} user / {} item features",
            data.display(),
            d.n_users(),
            d.n_items(),
            experiment.train().len(),
            test.len(),
            d.user_vocabulary().len(),
            d.item_vocabulary().len()
        );
        if let Some(cold) = experiment.cold_items() {
            eprintln!(
                "cold start: {} items held out ({} training pairs removed)",
                cold.items.len(),
                cold.removed_train
            );
        }
    }

    // ---- train
    let loss = args.model.loss();
    let trained = match (&args.factors, args.model.model) {
        (Some(dir), _) => Trained::External(read_factors(dir, &experiment)?),
        (None, ModelKind::Hybrid) => {
            let (model, training) = args.model.fit(&experiment, args.json)?;
            Trained::Hybrid(model, training)
        }
        (None, ModelKind::Als) => {
            let (model, times) = args.model.fit_als(&experiment, args.json)?;
            Trained::Als(model, times)
        }
    };
    let mut trained = trained;
    let mut refit_json = serde_json::Value::Null;
    if let Trained::External(_) = trained {
        if args.cold_start.cold_start_refit.is_some() {
            bail!("--cold-start-refit needs a model trained here, not --factors");
        }
    } else if let Some((refit, mut json)) =
        args.cold_start
            .choose(&experiment, &args.model, args.json)?
    {
        let started = Instant::now();
        let report = match &mut trained {
            Trained::Hybrid(m, _) => m.refit_cold_start(experiment.train(), &refit),
            Trained::Als(m, _) => m.refit_cold_start(experiment.train(), &refit),
            Trained::External(_) => unreachable!("refused above"),
        }
        .context("--cold-start-refit")?;
        json["warm_items"] = json!(report.warm_items);
        json["cold_items"] = json!(report.cold_items);
        json["metadata_features"] = json!(report.metadata_features);
        json["cg_steps"] = json!(report.steps);
        json["residual"] = json!(report.residual);
        json["seconds"] = json!(started.elapsed().as_secs_f64());
        if !args.json {
            eprintln!(
                "cold-start refit: {} warm and {} cold products, {} CG steps, {:.2}s",
                report.warm_items,
                report.cold_items,
                report.steps,
                started.elapsed().as_secs_f64()
            );
        }
        if report.residual > refit.tolerance {
            eprintln!(
                "warning: the cold-start refit stopped after {} CG steps with relative residual \
                 {:.2e} (tolerance {:.0e}): the metadata embeddings are an approximation",
                report.steps, report.residual, refit.tolerance
            );
        }
        refit_json = json;
    }
    let (model_name, loss_name, epoch_seconds, final_loss): (_, _, Vec<f64>, _) = match &trained {
        Trained::Hybrid(_, t) => (
            "hybrid",
            loss.name(),
            t.epochs.iter().map(|e| e.elapsed.as_secs_f64()).collect(),
            t.final_loss(),
        ),
        Trained::Als(_, times) => (
            "als",
            "als",
            times.iter().map(|d| d.as_secs_f64()).collect(),
            None,
        ),
        Trained::External(_) => ("external", "external", Vec::new(), None),
    };
    let seconds_per_epoch = if epoch_seconds.is_empty() {
        0.0
    } else {
        epoch_seconds.iter().sum::<f64>() / epoch_seconds.len() as f64
    };
    let content = args
        .cold_start
        .content(&experiment, &args.model, args.json)?;
    let model_scorer: &dyn Scorer = match &trained {
        Trained::Hybrid(m, _) => m,
        Trained::Als(m, _) | Trained::External(m) => m,
    };
    let prior = match &trained {
        Trained::External(_) if args.content_prior.content_weight.is_some() => {
            bail!("--content-weight needs a model trained here, not --factors")
        }
        _ => args
            .content_prior
            .prior(&experiment, &args.model, args.json)?,
    };
    let blend = match &prior {
        Some((c, w, _)) => Some(ContentPrior::new(model_scorer, c, *w)?),
        None => None,
    };
    let scorer: &dyn Scorer = match (&content, &blend) {
        (Some((c, _)), _) => c,
        (None, Some(b)) => b,
        (None, None) => model_scorer,
    };

    // ---- evaluate
    let eval_started = Instant::now();
    let metrics = experiment
        .evaluate(scorer, args.k, args.model.threads)
        .context("evaluating")?;
    let eval_seconds = eval_started.elapsed().as_secs_f64();
    if let Some(dir) = &args.report {
        let curve: Vec<recsys_examples::report::EpochPoint> = match &trained {
            Trained::Hybrid(_, t) => t
                .epochs
                .iter()
                .map(|e| recsys_examples::report::EpochPoint {
                    epoch: e.total_epochs,
                    loss: Some(e.loss),
                    held_out: None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let description = format!("{model_name} ({loss_name}), {} epochs", args.model.epochs);
        let path = recsys_examples::report::training_report(
            dir,
            &description,
            &experiment,
            scorer,
            &curve,
            args.k,
            args.model.threads,
        )?;
        eprintln!("report: {}", path.display());
    }
    let score_one_user_ms = score_one_user_ms(scorer, experiment.n_users())?;

    let k = args.k;
    let mut out = json!({
        "impl": if args.factors.is_some() { "external" } else { "recsys" },
        "model": model_name,
        "loss": loss_name,
        "epochs": args.model.epochs,
        "threads": args.model.threads,
        "components": args.model.components,
        "learning_rate": args.model.learning_rate,
        "seed": args.model.seed,
        "user_features": config.user_columns,
        "item_features": config.item_columns,
        "item_identity": config.item_identity,
        "user_identity": config.user_identity,
        "metadata_weight": config.metadata_weight,
        "normalize": config.normalize,
        "negative_types": args.features.negative_types(),
        "shuffle_item_features": args.shuffle_item_features,
        "k": k,
        format!("precision_at_{k}"): metrics.precision_at_k,
        format!("recall_at_{k}"): metrics.recall_at_k,
        "auc": metrics.auc,
        "reciprocal_rank": metrics.reciprocal_rank,
        format!("ndcg_at_{k}"): metrics.ndcg_at_k,
        "seconds_per_epoch": seconds_per_epoch,
        "epoch_seconds": epoch_seconds.iter().map(|s| (s * 1e4).round() / 1e4).collect::<Vec<_>>(),
        "final_loss": final_loss,
        "load_seconds": load_seconds,
        "eval_seconds": eval_seconds,
        "score_one_user_ms": score_one_user_ms,
        "n_users": experiment.n_users(),
        "n_items": experiment.n_items(),
        "n_train": experiment.train().len(),
        "n_test": test.len(),
        "split": split_json,
        "n_eval_users": metrics.n_users,
        "cold_start_refit": refit_json,
        "cold_start_content": content.as_ref().map(|(_, json)| json),
        "content_prior": prior.as_ref().map(|(_, _, json)| json),
    });
    if let Trained::Als(model, _) = &trained {
        out["fold_in_5_ms"] = json!(fold_in_ms(model, experiment.train())?);
        out["alpha"] = json!(args.model.alpha);
        out["regularization"] = json!(args.model.regularization);
        out["solver"] = json!(format!("{:?}", args.model.solver).to_lowercase());
        out["cg_steps"] = json!(args.model.cg_steps);
        out["feature_cg_steps"] = json!(args.model.feature_cg_steps);
    }
    if let Some(cold) = experiment.cold_items() {
        out["cold_items"] = json!(cold.items.len());
        out["cold_start_items"] = json!(args.cold_start_items);
        out["cold_items_file"] = json!(args.cold_items.as_ref().map(|p| p.display().to_string()));
    }
    if args.json {
        println!("{out}");
    } else {
        println!(
            "{} on {} ({} epochs, {} components, {} thread(s))",
            loss_name,
            data.display(),
            args.model.epochs,
            args.model.components,
            args.model.threads
        );
        println!("  {}", metrics_line(&metrics));
        println!(
            "  load {load_seconds:.2}s · {:.3}s/epoch · evaluation {eval_seconds:.2}s · \
             scoring one user {score_one_user_ms:.3} ms",
            seconds_per_epoch
        );
    }
    Ok(())
}

/// A trained (or loaded) model.
enum Trained {
    Hybrid(HybridModel, TrainingReport),
    Als(AlsModel, Vec<std::time::Duration>),
    External(AlsModel),
}

/// Median time of scoring every item for one user (into a new vector, as `predict_all`)
/// over 50 users spread over the user range, after 5 warm-up calls, in milliseconds.
fn score_one_user_ms(model: &dyn Scorer, n: usize) -> Result<f64> {
    if n == 0 {
        return Ok(0.0);
    }
    let predict_all = |u: usize| {
        let mut out = Vec::new();
        model.score_all(UserQuery::Known(u), &mut out).map(|()| out)
    };
    let users: Vec<usize> = (0..50).map(|i| i * n / 50).collect();
    for &u in users.iter().take(5) {
        std::hint::black_box(predict_all(u)?);
    }
    let mut times: Vec<f64> = users
        .iter()
        .map(|&u| {
            let t = Instant::now();
            let scores = predict_all(u);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            std::hint::black_box(scores).map(|_| ms)
        })
        .collect::<Result<_, _>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Gives every product the attributes (and price) of another product, a seeded permutation:
/// the metadata keeps its distribution but says nothing about the item any more.
fn shuffle_product_attributes(data: &mut InMemorySource, seed: u64) {
    let mut order: Vec<usize> = (0..data.products.len()).collect();
    Rng::new(seed).shuffle(&mut order);
    let attributes: Vec<_> = order
        .iter()
        .map(|&i| (data.products[i].attributes.clone(), data.products[i].price))
        .collect();
    for (product, (a, price)) in data.products.iter_mut().zip(attributes) {
        product.attributes = a;
        product.price = price;
    }
}

/// Median time of folding in a new user from 5 interactions (the first 5 training items of
/// 50 users spread over the user range, each as a new user), after one warm-up call that
/// also builds the cached Gram matrix, in milliseconds; `None` when no user has 5 items.
fn fold_in_ms(model: &AlsModel, train: &recsys::Interactions) -> Result<Option<f64>> {
    let users: Vec<usize> = (0..train.n_users())
        .filter(|&u| train.user_items(u).len() >= 5)
        .collect();
    if users.is_empty() {
        return Ok(None);
    }
    let picks: Vec<Vec<(usize, f32)>> = (0..50)
        .map(|i| {
            let u = users[i * users.len() / 50];
            train.user_items(u)[..5]
                .iter()
                .map(|&i| (i as usize, 1.0))
                .collect()
        })
        .collect();
    std::hint::black_box(model.fold_in(&picks[0], None)?);
    let mut times = Vec::with_capacity(picks.len());
    for items in &picks {
        let t = Instant::now();
        let r = model.fold_in(items, None)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(r);
    }
    times.sort_by(f64::total_cmp);
    Ok(Some(times[times.len() / 2]))
}

/// Factors trained elsewhere: `DIR/user_factors.csv` and `DIR/item_factors.csv` (a header
/// line, then `id,f0,…,f(k−1)`), placed by id into the experiment's index; users and items
/// without a row get zero vectors.
fn read_factors(dir: &Path, experiment: &Experiment) -> Result<AlsModel> {
    let dataset = experiment.dataset();
    let read = |name: &str, index: &dyn Fn(&ExternalId) -> Option<usize>, n: usize| {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut rows: Vec<(usize, Vec<f32>)> = Vec::new();
        for (line_no, line) in text.lines().enumerate().skip(1) {
            let mut parts = line.split(',');
            let id = ExternalId::parse(parts.next().unwrap_or(""));
            let at = index(&id).with_context(|| {
                format!(
                    "{}:{}: id {id:?} is not in the dataset",
                    path.display(),
                    line_no + 1
                )
            })?;
            let values = parts
                .map(|v| v.trim().parse::<f32>())
                .collect::<Result<Vec<f32>, _>>()
                .with_context(|| format!("{}:{}: not a number", path.display(), line_no + 1))?;
            rows.push((at, values));
        }
        let k = rows.first().map(|r| r.1.len()).unwrap_or(0);
        if k == 0 {
            bail!("{} has no factor rows", path.display());
        }
        let mut m = ndarray::Array2::<f32>::zeros((n, k));
        for (at, values) in rows {
            if values.len() != k {
                bail!("{}: rows of different lengths", path.display());
            }
            m.row_mut(at).assign(&ndarray::Array1::from(values));
        }
        Ok::<_, anyhow::Error>(m)
    };
    let users = read(
        "user_factors.csv",
        &|id| dataset.users().index(id),
        experiment.n_users(),
    )?;
    let items = read(
        "item_factors.csv",
        &|id| dataset.items().index(id),
        experiment.n_items(),
    )?;
    if users.ncols() != items.ncols() {
        bail!(
            "user factors have {} columns, item factors {}",
            users.ncols(),
            items.ncols()
        );
    }
    let params = AlsParams::builder().no_components(users.ncols()).build()?;
    Ok(AlsModel::from_factors(params, users, items)?)
}
