//! Train a model, evaluate it on a held-out split and save everything a server needs as one
//! artifact bundle.
//!
//! ```text
//! # the built-in demo shop (no files, no database):
//! cargo run --release -p recsys-examples --example train -- --out target/demo.rsb
//! # a CSV folder in the recsys schema, with features:
//! cargo run --release -p recsys-examples --example train -- \
//!     --data ../shared/data/completejourney-seed --out target/cj.rsb --threads 2 \
//!     --user-features age_group,income,household_size \
//!     --item-features category,department,brand,price --numeric-features price
//! # MongoDB (collections users, products, user_product_interactions):
//! cargo run --release -p recsys-examples --example train -- --uri "$MONGODB_URI" --out cj.rsb
//! ```
//!
//! Features and the model can also come from a small JSON file (`--config FILE`, what `tune`
//! writes), e.g. `{"user_features": ["age_group"], "item_features": ["category", "price"],
//!   "numeric_features": ["price"], "quantiles": 5, "model": "hybrid", "loss": "warp",
//!   "components": 32, "learning_rate": 0.05, "epochs": 18}`; flags given on the command
//! line win.
//!
//! `--cold-start-refit LAMBDA|auto` refits the item metadata embeddings after training so
//! that products without interactions in the bundle are scored from their attributes, every
//! other product keeping its representation (`recsys_core::ColdStartRefit`). Products added
//! to the store after training reach a bundle by retraining; a library user scores them
//! from their attributes with `HybridModel::item_representation_from_features`.
//!
//! `--model als` trains the implicit-feedback ALS model instead of the hybrid one (`--alpha`,
//! `--regularization`, `--cg-steps`, `--feature-cg-steps`, `--solver`; `--epochs` counts
//! sweeps); the bundle, `recommend` and `serve` take either.
//!
//! The model in the bundle is the one evaluated: trained on the training part of the
//! split (`--test-pairs FILE`, `<data>/test_pairs.csv.gz` when present, else a seeded
//! random `--test-fraction`, 0.2 by default).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recsys::demo::{generate, DemoConfig};
use recsys::experiment::{Experiment, ExperimentConfig, Split};
use recsys::features::{RecordIter, SourceError};
use recsys::recommend::{ContentPriorSpec, EvaluationSummary};
use recsys::{
    Bundle, ContentPrior, CsvSource, ExactCosine, InMemorySource, InteractionRecord, Model,
    NeighbourTable, ProductRecord, RecordSource, UserRecord,
};
use recsys_examples::report::EpochPoint;
use recsys_examples::{
    metrics_line, ColdStartArgs, ConfigFile, ContentPriorArgs, FeatureArgs, ModelArgs, ModelKind,
};

#[derive(Parser, Debug)]
#[command(about = "Train, evaluate and save a recommendation bundle")]
struct Args {
    /// CSV folder (users.csv, products.csv, user_product_interactions.csv[.gz]).
    #[arg(long, value_name = "DIR", conflicts_with = "uri")]
    data: Option<PathBuf>,
    /// MongoDB URI to read the three collections from.
    #[arg(long, value_name = "URI")]
    uri: Option<String>,
    /// Database name with --uri (default: the URI's, else "recsys").
    #[arg(long, requires = "uri")]
    database: Option<String>,
    /// After saving, publish the bundle to the --uri database: its bytes into GridFS, then
    /// the `current` model pointer moved to it (what serving replicas poll).
    #[arg(long, requires = "uri")]
    publish: bool,
    /// Held-out `user_id,product_id` pairs [default: <data>/test_pairs.csv.gz if present].
    #[arg(long, value_name = "FILE")]
    test_pairs: Option<PathBuf>,
    /// Fraction of interactions held out at random (seeded) when no test-pairs file is used.
    #[arg(long, value_name = "F", default_value_t = 0.2)]
    test_fraction: f64,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    features: FeatureArgs,
    #[command(flatten)]
    cold_start: ColdStartArgs,
    #[command(flatten)]
    content_prior: ContentPriorArgs,
    /// Feature and model configuration as JSON (see the example's docs; `tune` writes one);
    /// flags given on the command line override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Precomputed similar products per product.
    #[arg(long, default_value_t = recsys::recommend::DEFAULT_NEIGHBOURS)]
    neighbours: usize,
    /// Cut-off of precision and recall in the evaluation.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Free text stored in the bundle's metadata.
    #[arg(long)]
    description: Option<String>,
    /// Where to write the bundle.
    #[arg(long, value_name = "FILE", default_value = "target/recsys/bundle.rsb")]
    out: PathBuf,
    /// Save the optimiser state with the model, so that training can continue from the
    /// bundle (a warm start). Serving does not need it; without it the bundle is smaller.
    #[arg(long)]
    keep_training_state: bool,
    /// Skip the evaluation of the whole recommend() policy (plain vs blended with a viewed
    /// product) on the held-out split.
    #[arg(long)]
    no_policy_eval: bool,
    /// Write an HTML report with plots to DIR/report.html: training loss and held-out
    /// precision/AUC per epoch, precision and recall at k = 1…50 against popularity, the
    /// popularity long tail and catalogue coverage, scores of items without interactions
    /// against the others.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// Where the records come from.
enum Input {
    Demo(InMemorySource),
    Csv(PathBuf, CsvSource),
    Mongo(String, recsys::store::mongo::MongoSource),
}

impl Input {
    fn source(&mut self) -> &mut dyn RecordSource {
        match self {
            Input::Demo(s) => s,
            Input::Csv(_, s) => s,
            Input::Mongo(_, s) => s,
        }
    }

    fn describe(&self) -> String {
        match self {
            Input::Demo(_) => "the demo shop".to_string(),
            Input::Csv(dir, _) => dir.display().to_string(),
            Input::Mongo(uri, _) => recsys::store::mongo::redact_uri(uri),
        }
    }
}

/// A source that passes everything through and keeps a copy of every product record.
struct KeepProducts<'a> {
    inner: &'a mut dyn RecordSource,
    products: Vec<ProductRecord>,
}

impl RecordSource for KeepProducts<'_> {
    fn users(&mut self) -> Result<RecordIter<'_, UserRecord>, SourceError> {
        self.inner.users()
    }

    fn products(&mut self) -> Result<RecordIter<'_, ProductRecord>, SourceError> {
        let kept = &mut self.products;
        kept.clear();
        Ok(Box::new(self.inner.products()?.inspect(move |record| {
            if let Ok(product) = record {
                kept.push(product.clone());
            }
        })))
    }

    fn interactions(&mut self) -> Result<RecordIter<'_, InteractionRecord>, SourceError> {
        self.inner.interactions()
    }
}

fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let parsed = Args::from_arg_matches(&matches).map_err(anyhow::Error::from);
    recsys_examples::exit_code(parsed.and_then(|mut args| {
        // The model settings of --config, where no flag was given.
        if let Some(path) = &args.config {
            let given =
                |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
            let file = ConfigFile::read(path)?;
            file.apply_model(&mut args.model, &given)?;
            if let (Some(w), false) = (file.content_weight, given("content_weight")) {
                args.content_prior.content_weight = Some(w.to_string());
            }
        }
        run(args)
    }))
}

/// The experiment configuration: the JSON file first, then the flags that were given.
fn feature_config(args: &Args, demo: bool) -> Result<ExperimentConfig> {
    let flags_given = !args.features.user_features.is_empty()
        || !args.features.item_features.is_empty()
        || args.features.numeric_features.is_some();
    let mut config = if demo && !flags_given && args.config.is_none() {
        let mut config = ExperimentConfig::demo_hybrid();
        config.interactions = args.features.config()?.interactions;
        config
    } else {
        args.features.config()?
    };
    if let Some(path) = &args.config {
        let file = ConfigFile::read(path)?;
        if args.features.user_features.is_empty() {
            if let Some(c) = file.user_features {
                config = config.with_user_columns(c);
            }
        }
        if args.features.item_features.is_empty() {
            if let Some(c) = file.item_features {
                config = config.with_item_columns(c);
            }
        }
        if args.features.numeric_features.is_none() {
            if let Some(c) = file.numeric_features {
                config = config.with_numeric_columns(c);
            }
        }
        if let Some(q) = file.quantiles {
            config.quantiles = q;
        }
        if let Some(v) = file.item_identity {
            config.item_identity = v && !args.features.no_identity;
        }
        if let Some(v) = file.user_identity {
            config.user_identity = v && !args.features.no_user_identity;
        }
        if args.features.metadata_weight.is_none() {
            config.metadata_weight = file.metadata_weight;
        }
        let (_, unused) = config.numeric_columns_used();
        if !unused.is_empty() {
            bail!(
                "numeric features {} are not among the user/item feature columns",
                unused.join(", ")
            );
        }
    }
    Ok(config)
}

fn open_input(args: &Args) -> Result<Input> {
    if let Some(uri) = &args.uri {
        let store = recsys_examples::connect_store(uri, args.database.as_deref())?;
        return Ok(Input::Mongo(uri.clone(), store.source()));
    }
    if let Some(dir) = &args.data {
        let source =
            CsvSource::open(dir).with_context(|| format!("opening dataset {}", dir.display()))?;
        return Ok(Input::Csv(dir.clone(), source));
    }
    eprintln!("note: no --data or --uri given: training on the built-in demo shop");
    Ok(Input::Demo(generate(&DemoConfig::default())))
}

fn spinner(message: &str, hidden: bool) -> ProgressBar {
    if hidden || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("template"));
    bar.set_message(message.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn run(args: Args) -> Result<()> {
    let mut input = open_input(&args)?;
    let config = feature_config(&args, matches!(input, Input::Demo(_)))?;
    args.cold_start.check(&config)?;
    args.content_prior.check()?;

    // ---- load + split
    let started = Instant::now();
    let split = match (&args.test_pairs, &input) {
        (Some(path), _) => Split::HeldOutPairs(
            recsys::read_pairs(path)
                .with_context(|| format!("reading test pairs {}", path.display()))?,
        ),
        (None, Input::Csv(dir, _)) if dir.join("test_pairs.csv.gz").is_file() => {
            let path = dir.join("test_pairs.csv.gz");
            Split::HeldOutPairs(
                recsys::read_pairs(&path)
                    .with_context(|| format!("reading test pairs {}", path.display()))?,
            )
        }
        _ => Split::Random {
            test_fraction: args.test_fraction,
            seed: args.model.seed,
        },
    };
    let bar = spinner(&format!("loading {}", input.describe()), args.quiet);
    let description = input.describe();
    // One pass over the source: the product records are kept for the catalogue as they
    // stream into the dataset.
    let mut keep = KeepProducts {
        inner: input.source(),
        products: Vec::new(),
    };
    let experiment = Experiment::load(&mut keep, &config, split)
        .with_context(|| format!("loading {description}"))?;
    let products = keep.products;
    bar.finish_and_clear();
    let dataset = experiment.dataset();
    recsys_examples::warn_possibly_multi_valued(dataset);
    recsys_examples::warn_unused_negative_types(&config, dataset);
    eprintln!(
        "loaded {} in {:.1}s: {} users, {} products, {} training interactions, {} test pairs; \
         {} user / {} item features",
        input.describe(),
        started.elapsed().as_secs_f64(),
        dataset.n_users(),
        dataset.n_items(),
        experiment.train().len(),
        experiment.test().map_or(0, |t| t.len()),
        dataset.user_vocabulary().len(),
        dataset.item_vocabulary().len(),
    );

    // ---- train (with --report: the held-out metrics after every epoch, for the plots)
    let held_out = args.report.is_some().then(|| experiment.test()).flatten();
    let (mut model, curve) = train_model(&args, &experiment, held_out)?;
    if let Some((refit, _)) = args
        .cold_start
        .choose(&experiment, &args.model, args.quiet)?
    {
        let report = model
            .refit_cold_start(experiment.train(), &refit)
            .context("--cold-start-refit")?;
        if !args.quiet {
            eprintln!(
                "cold-start refit (lambda {}, popularity power {}): {} products with training \
                 interactions kept, {} without now scored from their attributes",
                refit.lambda, refit.popularity_power, report.warm_items, report.cold_items
            );
        }
        if report.residual > refit.tolerance {
            eprintln!(
                "warning: the cold-start refit stopped after {} CG steps with relative residual \
                 {:.2e} (tolerance {:.0e}): the metadata embeddings are an approximation",
                report.steps, report.residual, refit.tolerance
            );
        }
    }

    // ---- the content prior (--content-weight, or the configuration's content_weight)
    let prior = args
        .content_prior
        .prior(&experiment, &args.model, args.quiet)?
        .filter(|(_, weight, _)| *weight > 0.0);
    let scorer = match &prior {
        Some((content, weight, _)) => {
            eprintln!("content prior: weight {weight}");
            Some(ContentPrior::new(&model, content, *weight)?)
        }
        None => None,
    };

    // ---- evaluate
    let metrics = match experiment.test() {
        Some(test) if !test.is_empty() => {
            let bar = spinner("evaluating", args.quiet);
            let m = match &scorer {
                Some(prior) => experiment.evaluate(prior, args.k, args.model.threads),
                None => experiment.evaluate(&model, args.k, args.model.threads),
            }
            .context("evaluating")?;
            bar.finish_and_clear();
            eprintln!("held-out evaluation: {}", metrics_line(&m));
            Some(EvaluationSummary::from(&m))
        }
        _ => {
            eprintln!("no test interactions: the bundle carries no evaluation");
            None
        }
    };

    // ---- similarity
    let started = Instant::now();
    let exact = ExactCosine::new(model.item_representations().vectors());
    let bar = item_progress(exact.len(), args.quiet);
    let neighbours = NeighbourTable::build_with_progress(&exact, args.neighbours, &|done, _| {
        bar.set_position(done as u64)
    })
    .context("building the neighbour table")?;
    bar.finish_and_clear();
    eprintln!(
        "{} neighbours per product in {:.2}s ({:.1} MiB)",
        neighbours.k(),
        started.elapsed().as_secs_f64(),
        neighbours.size_in_bytes() as f64 / (1024.0 * 1024.0)
    );

    // ---- bundle
    let description = args.description.clone().unwrap_or_else(|| {
        format!(
            "{}; user features [{}]; item features [{}]",
            input.describe(),
            config.user_columns.join(","),
            config.item_columns.join(",")
        )
    });
    let spec = prior.as_ref().map(|(content, weight, _)| {
        let params = content.params();
        ContentPriorSpec {
            smoothing: params.smoothing,
            class_size_power: params.class_size_power,
            weight: *weight,
        }
    });
    let mut builder = experiment.bundle(model);
    if let Some(spec) = spec {
        builder = builder.content_prior(spec);
    }
    let bundle = builder
        .products(products)
        .neighbour_table(neighbours)
        .metrics(metrics)
        .description(description)
        .keep_training_state(args.keep_training_state)
        .build()
        .context("assembling the bundle")?;
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let started = Instant::now();
    let bytes = bundle
        .save(&args.out)
        .with_context(|| format!("saving {}", args.out.display()))?;
    let save_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let reloaded = Bundle::load(&args.out).context("loading the bundle back")?;
    let load_seconds = started.elapsed().as_secs_f64();
    summary(&args.out, bytes, save_seconds, load_seconds, &reloaded);
    if let (true, Some(uri)) = (args.publish, &args.uri) {
        publish(uri, args.database.as_deref(), &args.out, &reloaded)?;
    }
    if let Some(dir) = &args.report {
        let path = recsys_examples::report::training_report(
            dir,
            &reloaded.model().params().describe(),
            &experiment,
            reloaded.model(),
            &curve,
            args.k,
            args.model.threads,
        )?;
        eprintln!("report: {}", path.display());
    }
    if let (Some(test), false) = (experiment.test(), args.no_policy_eval) {
        if !test.is_empty() {
            policy_report(&reloaded, test, args.k, args.model.seed)?;
        }
    }
    Ok(())
}

/// Publishes the saved bundle at `path` through the database (GridFS + `current` pointer).
fn publish(uri: &str, database: Option<&str>, path: &Path, bundle: &Bundle) -> Result<()> {
    let redacted = recsys::store::mongo::redact_uri(uri);
    let store = recsys_examples::connect_store(uri, database)?;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let started = Instant::now();
    let published = store
        .publish_model(&bundle.metadata().model_id, &bytes)
        .with_context(|| format!("publishing to {redacted}"))?;
    eprintln!(
        "published model {} ({:.1} MiB, GridFS artifact {}) as the current model of {} in \
         {:.2}s",
        published.model_id,
        published.length as f64 / (1024.0 * 1024.0),
        published.artifact,
        store.database_name(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Trains the model the flags describe; with `held_out`, evaluates it after every epoch.
fn train_model(
    args: &Args,
    experiment: &Experiment,
    held_out: Option<&recsys::Interactions>,
) -> Result<(Model, Vec<EpochPoint>)> {
    use recsys::core::{AlsFitOptions, AlsModel};
    use std::ops::ControlFlow;
    let m = &args.model;
    let eval = recsys::EvalOptions {
        k: args.k,
        threads: m.threads,
        candidates: None,
    };
    let train = experiment.train();
    let mut curve = Vec::new();
    let started = Instant::now();
    let model: Model = match m.model {
        ModelKind::Hybrid => {
            let mut model = experiment.model(m.hyperparameters()?)?;
            let bar = recsys_examples::epoch_progress(m.epochs, args.quiet);
            let mut options = recsys::FitOptions::epochs(m.epochs).threads(m.threads);
            if let Some(test) = held_out {
                options = options.validate_on(test, Some(train), eval.clone());
            }
            let options = options.on_epoch(|r, _| {
                recsys_examples::on_epoch(&bar, r);
                curve.push(EpochPoint {
                    epoch: r.total_epochs,
                    loss: Some(r.loss),
                    held_out: r.validation,
                });
                ControlFlow::Continue(())
            });
            model.fit(train, options).context("training")?;
            bar.finish_and_clear();
            eprintln!(
                "trained {} epochs ({:.2}s/epoch with evaluation, {} thread(s))",
                m.epochs,
                started.elapsed().as_secs_f64() / m.epochs.max(1) as f64,
                m.threads
            );
            model.into()
        }
        ModelKind::Als if held_out.is_some() => {
            let dataset = experiment.dataset();
            let mut model = AlsModel::new(
                m.als_params()?,
                dataset.user_features(),
                dataset.item_features(),
            )?;
            for sweep in 1..=m.epochs {
                let options = AlsFitOptions::iterations(1).threads(m.threads).with_loss();
                let report = model.fit_partial(train, options).context("training ALS")?;
                let scores = held_out
                    .map(|test| recsys::evaluate(&model, test, Some(train), &eval))
                    .transpose()?;
                curve.push(EpochPoint {
                    epoch: sweep,
                    loss: report.last().and_then(|r| r.loss),
                    held_out: scores,
                });
            }
            eprintln!("trained ALS, {} sweeps with evaluation", m.epochs);
            model.into()
        }
        ModelKind::Als => {
            let (model, times) = m.fit_als(experiment, args.quiet)?;
            let total: f64 = times.iter().map(|t| t.as_secs_f64()).sum();
            eprintln!(
                "trained ALS, {} sweeps ({:.2}s/sweep, {} thread(s))",
                times.len(),
                total / times.len().max(1) as f64,
                m.threads
            );
            model.into()
        }
    };
    Ok((model, curve))
}

/// Precision@k of recommend() as a product page uses it: each test user views one of their
/// test products (seeded choice), and that product is not counted as a hit. The same users
/// and relevant sets for the plain model (boost 0) and the default blend (boost 0.25).
fn policy_report(bundle: &Bundle, test: &recsys::Interactions, k: usize, seed: u64) -> Result<()> {
    use recsys::recommend::{evaluate_policy, Viewing, DEFAULT_BOOST};
    let bar = spinner("evaluating the recommend() policy", false);
    let recommender = bundle.recommender();
    let pick = move |user: usize, n: usize| {
        // splitmix64 of (seed, user): a fixed, seeded choice per user.
        let mut z = seed ^ (user as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    };
    let plain = evaluate_policy(
        &recommender,
        test,
        k,
        Viewing::TestItem { boost: 0.0 },
        &pick,
    )?;
    let blended = evaluate_policy(
        &recommender,
        test,
        k,
        Viewing::TestItem {
            boost: DEFAULT_BOOST,
        },
        &pick,
    )?;
    bar.finish_and_clear();
    println!(
        "recommend() while viewing one held-out product ({} users): plain model P@{k} {:.4} R@{k} {:.4}; \
         + {DEFAULT_BOOST} x similarity P@{k} {:.4} R@{k} {:.4}",
        plain.users,
        plain.precision_at_k,
        plain.recall_at_k,
        blended.precision_at_k,
        blended.recall_at_k,
    );
    Ok(())
}

fn item_progress(items: usize, hidden: bool) -> ProgressBar {
    if hidden || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(items as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("similar products [{bar:30.cyan/blue}] {pos}/{len} {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar
}

fn summary(path: &Path, bytes: u64, save_seconds: f64, load_seconds: f64, bundle: &Bundle) {
    let m = bundle.metadata();
    println!("bundle {} (model {})", path.display(), m.model_id);
    println!(
        "  {:.1} MiB, saved in {save_seconds:.2}s, loaded and checked in {load_seconds:.3}s",
        bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "  {} users, {} products ({} with details), {} interactions, {} user / {} item features",
        m.counts.users,
        m.counts.items,
        m.counts.products_with_details,
        m.counts.interactions,
        m.counts.user_features,
        m.counts.item_features
    );
    println!("  {}, {} epochs", m.hyperparameters.describe(), m.epochs);
    if let Some(e) = &m.metrics {
        println!(
            "  held out: P@{k} {:.4}  R@{k} {:.4}  AUC {:.4} ({} users)",
            e.precision_at_k,
            e.recall_at_k,
            e.auc,
            e.test_users,
            k = e.k
        );
    }
    println!(
        "try: cargo run --release -p recsys-examples --example recommend -- --bundle {} --user {}",
        path.display(),
        bundle
            .users()
            .id(0)
            .map_or_else(|| "ID".to_string(), ToString::to_string)
    );
}
