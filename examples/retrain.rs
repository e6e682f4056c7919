//! Retrain the current model warm on the data as it is now — new users, new products, new
//! interactions and live events — and publish it only if it is not worse on the newest
//! interactions than the model serving now.
//!
//! ```text
//! # from the published model and the store's data (live events included), publishing:
//! cargo run --release -p recsys-examples --example retrain -- \
//!     --uri "$MONGODB_URI" --database shop --publish
//! # from a bundle file and a CSV folder, writing a file only:
//! cargo run --release -p recsys-examples --example retrain -- \
//!     --bundle target/cj-base.rsb --data ../shared/data/completejourney-seed --out target/cj-warm.rsb
//! # the gate's numbers only:
//! cargo run --release -p recsys-examples --example retrain -- --uri "$MONGODB_URI" --dry-run
//! ```
//!
//! The library call behind it is `recsys::retrain::retrain`; its docs say what is grown,
//! kept and reset. The gate holds out the newest `--holdout` fraction of the time-stamped
//! interactions, trains a candidate `--epochs` epochs on the rest starting from the model's
//! parameters, and compares it with the current model on the held-out ones (P@k and AUC).
//! When it is not worse — by more than `--tolerance` plus `--noise-z` standard errors of
//! the per-user difference, so that noise does not refuse a model — or with `--force`, the
//! same recipe runs on all the data and the result is written (`--out`) and/or published
//! (`--publish`). A refused candidate is neither: the command says why and exits with
//! status 2.
//!
//! Feature columns and hyper-parameters come from the bundle. Whether interactions are
//! binary or weighted is not recorded in a bundle: pass `--weighted` when the base was
//! trained with it. Like `train`, a CSV folder's `test_pairs.csv.gz` (or `--test-pairs`)
//! is never trained on, and the final model is evaluated on it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use recsys::retrain::{retrain, RetrainConfig};
use recsys::store::mongo::redact_uri;
use recsys::{Bundle, CsvSource, RecordSource};

#[derive(Parser, Debug)]
#[command(about = "Retrain the current model warm, gate it on the newest interactions, publish")]
struct Args {
    /// Start from this bundle file instead of the published `current` model of --uri.
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    /// CSV folder with the data as it is now (users.csv, products.csv,
    /// user_product_interactions.csv[.gz]) instead of the --uri database.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// MongoDB URI: the published model and the data (collections users, products,
    /// user_product_interactions, where live events are stored), and where --publish
    /// publishes.
    #[arg(long, value_name = "URI")]
    uri: Option<String>,
    /// Database name with --uri (default: the URI's, else "recsys").
    #[arg(long, requires = "uri")]
    database: Option<String>,
    /// Held-out `user_id,product_id` pairs, never trained on, for the final report
    /// [default: <data>/test_pairs.csv.gz if present].
    #[arg(long, value_name = "FILE")]
    test_pairs: Option<PathBuf>,
    /// Epochs on top of the current model's parameters.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    /// Training and evaluation threads (1: reproducible).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Fraction of the time-stamped interactions, the newest, that the gate holds out.
    #[arg(long, value_name = "F", default_value_t = 0.05)]
    holdout: f64,
    /// Cut-off of the gate's precision.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// How much lower than the current model's the candidate's P@k and AUC may be.
    #[arg(long, default_value_t = 0.0)]
    tolerance: f64,
    /// Noise allowance of the gate in standard errors of the per-user difference: the
    /// candidate is refused only when it is worse by more than `--tolerance` + this many
    /// standard errors (0: any drop refuses).
    #[arg(long, value_name = "Z", default_value_t = 2.0)]
    noise_z: f64,
    /// Write and publish the new model even when the gate refuses it.
    #[arg(long)]
    force: bool,
    /// Weighted interactions (the `weight` column), as `train --weighted`.
    #[arg(long)]
    weighted: bool,
    /// Precomputed similar products per product [default: as many as the current bundle].
    #[arg(long)]
    neighbours: Option<usize>,
    /// Save the optimiser state with the new model, so the next retraining continues it
    /// exactly; without it the next one resets it (keeps the parameters).
    #[arg(long)]
    keep_training_state: bool,
    /// Where to write the new bundle.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Publish the new bundle to the --uri database (GridFS + the `current` pointer).
    #[arg(long, requires = "uri")]
    publish: bool,
    /// Run the gate and print its numbers; train no final model, write and publish nothing.
    #[arg(long, conflicts_with_all = ["out", "publish", "force"])]
    dry_run: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(Outcome::Refused) => ExitCode::from(2),
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Err(e) => recsys_examples::exit_code(Err(e)),
    }
}

enum Outcome {
    Done,
    Refused,
}

fn run(args: Args) -> Result<Outcome> {
    if !args.dry_run && !args.publish && args.out.is_none() {
        bail!("nothing to do: give --out FILE, --publish, or --dry-run");
    }
    let store = match &args.uri {
        Some(uri) => Some(recsys_examples::connect_store(
            uri,
            args.database.as_deref(),
        )?),
        None => None,
    };

    // ---- the model to start from
    let started = Instant::now();
    let base = match (&args.bundle, &store) {
        (Some(path), _) => {
            Bundle::load(path).with_context(|| format!("loading {}", path.display()))?
        }
        (None, Some(store)) => {
            let published = store
                .current_model()
                .context("reading the current model pointer")?
                .context("nothing is published in this database (train --publish publishes a first model)")?;
            let bytes = store
                .download_model(&published)
                .with_context(|| format!("downloading model {}", published.model_id))?;
            Bundle::from_bytes(&bytes, std::path::Path::new(&published.artifact))
                .with_context(|| format!("checking model {}", published.model_id))?
        }
        (None, None) => bail!("give --bundle FILE or --uri URI (its published model)"),
    };
    let meta = base.metadata();
    eprintln!(
        "starting from model {} ({}, {} epochs, {} users, {} products, optimiser state {}) in {:.2}s",
        meta.model_id,
        meta.hyperparameters.describe(),
        meta.epochs,
        meta.counts.users,
        meta.counts.items,
        if meta.training_state { "saved" } else { "not saved: it is reset" },
        started.elapsed().as_secs_f64()
    );

    // ---- the data as it is now
    let test_pairs = match (&args.test_pairs, &args.data) {
        (Some(path), _) => Some(path.clone()),
        (None, Some(dir)) if dir.join("test_pairs.csv.gz").is_file() => {
            Some(dir.join("test_pairs.csv.gz"))
        }
        _ => None,
    };
    let test_pairs = test_pairs
        .map(|path| {
            recsys::read_pairs(&path)
                .with_context(|| format!("reading test pairs {}", path.display()))
        })
        .transpose()?;
    let (mut source, described): (Box<dyn RecordSource>, String) = match (&args.data, &store) {
        (Some(dir), _) => (
            Box::new(
                CsvSource::open(dir)
                    .with_context(|| format!("opening dataset {}", dir.display()))?,
            ),
            dir.display().to_string(),
        ),
        (None, Some(store)) => (
            Box::new(store.source()),
            format!("{} ({})", redact_uri(store.uri()), store.database_name()),
        ),
        (None, None) => bail!("give --data DIR or --uri URI for the data"),
    };
    let mut interactions = recsys::InteractionMode::Binary;
    if args.weighted {
        interactions = recsys::InteractionMode::Weighted(recsys::InteractionWeights::new());
    }
    let config = RetrainConfig {
        epochs: args.epochs,
        threads: args.threads,
        holdout_fraction: args.holdout,
        k: args.k,
        tolerance: args.tolerance,
        noise_z: args.noise_z,
        force: args.force,
        interactions,
        test_pairs,
        neighbours: args.neighbours,
        keep_training_state: args.keep_training_state,
        gate_only: args.dry_run,
    };
    let started = Instant::now();
    let out = retrain(&base, source.as_mut(), &config)
        .with_context(|| format!("retraining on {described}"))?;
    let total = started.elapsed().as_secs_f64();
    let (g, t) = (&out.growth, &out.times);
    eprintln!(
        "read {described} in {:.1}s: {} interaction records; users {} -> {}, products {} -> {}, \
         user features {} -> {}, item features {} -> {}",
        t.load.as_secs_f64(),
        g.records,
        g.users_before,
        g.users_after,
        g.items_before,
        g.items_after,
        g.user_features.0,
        g.user_features.1,
        g.item_features.0,
        g.item_features.1,
    );
    match &out.gate {
        Some(gate) => {
            println!("{}", gate.summary());
            eprintln!(
                "gate: candidate trained {} epochs in {:.2}s, both evaluated in {:.2}s",
                args.epochs,
                t.gate_training.as_secs_f64(),
                t.gate_evaluation.as_secs_f64()
            );
        }
        None => println!(
            "no gate: nothing new to compare the models on (no time-stamped interaction the \
             current model was not trained on); --force trains and publishes without one"
        ),
    }
    let Some(bundle) = out.bundle else {
        if args.dry_run {
            println!("dry run: nothing trained further, written or published ({total:.1}s)");
            return Ok(Outcome::Done);
        }
        println!(
            "not published: the candidate is worse than the current model on the newest \
             interactions (--force publishes it anyway; --tolerance and --noise-z allow a drop)"
        );
        return Ok(Outcome::Refused);
    };
    eprintln!(
        "final model: {} epochs on all the data in {:.2}s; neighbours and bundle in {:.2}s",
        args.epochs,
        t.final_training.as_secs_f64(),
        t.bundle.as_secs_f64()
    );
    if let Some(m) = &out.test {
        println!("test pairs: {}", recsys_examples::metrics_line(m));
    }
    println!(
        "model {} ({} epochs in all){} in {total:.1}s",
        bundle.metadata().model_id,
        bundle.metadata().epochs,
        match &out.gate {
            Some(gate) if gate.passed => "",
            Some(_) => ", forced past the gate",
            None => ", forced without a gate",
        }
    );
    if let Some(path) = &args.out {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let bytes = bundle
            .save(path)
            .with_context(|| format!("saving {}", path.display()))?;
        println!(
            "wrote {} ({:.1} MiB)",
            path.display(),
            bytes as f64 / (1024.0 * 1024.0)
        );
    }
    if let (true, Some(store)) = (args.publish, &store) {
        let bytes = bundle.to_bytes().context("encoding the bundle")?;
        let started = Instant::now();
        let published = store
            .publish_model(&bundle.metadata().model_id, &bytes)
            .with_context(|| format!("publishing to {}", redact_uri(store.uri())))?;
        println!(
            "published model {} ({:.1} MiB, GridFS artifact {}) as the current model of {} in {:.2}s",
            published.model_id,
            published.length as f64 / (1024.0 * 1024.0),
            published.artifact,
            store.database_name(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Outcome::Done)
}
