//! Choose the model by itself: a seeded random search over model family, loss, components,
//! learning rate, schedule, L2 penalties, `max_sampled`, ALS confidence and regularisation,
//! and the feature configuration (plain collaborative filtering, the given columns
//! L1-normalised, identity-anchored `metadata_weight` 0.5 and 1, and with
//! `--column-subsets N` the user columns alone, the product columns alone and N random
//! subsets of the columns), run by successive halving
//! on a validation split carved from the training interactions. The test pairs are not
//! looked at unless `--report-test` asks for the final report.
//!
//! ```text
//! # the demo shop:
//! cargo run --release -p recsys-examples --example tune -- --trials 24 --out target/tuned.json
//! # Complete Journey, features to consider, a time budget:
//! cargo run --release -p recsys-examples --example tune -- \
//!     --data ../shared/data/completejourney-seed --threads 2 --seconds 1200 \
//!     --item-features category,department,brand,price --numeric-features price
//! # then train the winner:
//! cargo run --release -p recsys-examples --example train -- --data … --config target/tuned.json
//! ```
//!
//! Plain collaborative filtering (the hybrid model with recsys' defaults, no metadata) is
//! always a candidate and is never eliminated, so the winner is never worse than it on
//! validation. After the search the winner gets the content model as a prior
//! (`recsys_core::ContentPrior`), its weight chosen on the same validation split
//! (`--no-content-prior` turns this off). Prints a table of every trial and writes the
//! winner as the JSON that `train --config` reads.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recsys::core::{AlsParams, Hyperparameters, Loss, Schedule};
use recsys::demo::{generate, DemoConfig};
use recsys::experiment::{
    choose_content_weight, Experiment, ExperimentConfig, Split, CONTENT_WEIGHTS,
};
use recsys::tune::{successive_halving, Candidate, CandidateParams, HalvingOptions, TuneData};
use recsys::{ContentParams, ContentPrior, CsvSource, RecordSource, Rng};
use recsys_examples::{metrics_line, split_list, ConfigFile, ModelKind};

#[derive(Parser, Debug)]
#[command(about = "Search model family, hyper-parameters and features on a validation split")]
struct Args {
    /// CSV folder (users.csv, products.csv, user_product_interactions.csv[.gz]); the demo
    /// shop without it.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Held-out pairs [default: <data>/test_pairs.csv.gz if present, else a seeded random
    /// 20 %]: kept out of the search entirely.
    #[arg(long, value_name = "FILE")]
    test_pairs: Option<PathBuf>,
    /// Fraction of the training interactions carved out for validation.
    #[arg(long, default_value_t = 0.2)]
    validation_fraction: f64,
    /// User columns the search may use as features (the `train` syntax).
    #[arg(long, value_name = "COLS", default_value = "")]
    user_features: String,
    /// Product columns the search may use as features.
    #[arg(long, value_name = "COLS", default_value = "")]
    item_features: String,
    /// Columns bucketed by quantile.
    #[arg(long, value_name = "COLS")]
    numeric_features: Option<String>,
    /// Also search feature columns: the user columns alone, the product columns alone, and
    /// N seeded random non-empty subsets of all the columns, each identity-anchored at
    /// `metadata_weight` 1 (0: only all the columns, as given).
    #[arg(long, value_name = "N", default_value_t = 0)]
    column_subsets: usize,
    /// Model families to search.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "hybrid,als")]
    families: Vec<ModelKind>,
    /// Random candidates besides the fixed ones (the hybrid model with recsys' defaults on
    /// every feature configuration, plain CF first; ALS with implicit's defaults).
    #[arg(long, default_value_t = 16)]
    trials: usize,
    /// Wall-time budget in seconds (the winner is chosen among what was scored by then).
    #[arg(long)]
    seconds: Option<u64>,
    /// Epochs of the first rung.
    #[arg(long, default_value_t = 2)]
    min_epochs: usize,
    /// Epochs of the last rung.
    #[arg(long, default_value_t = 30)]
    max_epochs: usize,
    /// Survival ratio and epoch growth per rung.
    #[arg(long, default_value_t = 3)]
    eta: usize,
    /// Cut-off of the validation precision.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Threads for training and evaluation.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Trials trained at the same time, each on --threads / --parallel threads (with as
    /// many as threads, every model trains on one thread: a bit-reproducible search).
    #[arg(long, default_value_t = 1)]
    parallel: usize,
    /// Seed of the split, the validation carve-out, the candidates and the models.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where to write the winner's configuration.
    #[arg(long, value_name = "FILE", default_value = "target/recsys/tuned.json")]
    out: PathBuf,
    /// After the search: retrain the winner and the baseline on the whole training part
    /// and report both on the test pairs (the final report; the search never sees them).
    #[arg(long)]
    report_test: bool,
    /// Write an HTML report to DIR/report.html: validation precision of every trial at each
    /// rung (the halving as a picture) and the table of trials.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Do not add the content model to the winner as a prior. By default, when the
    /// winner's feature set has item columns, the weight is chosen on the validation split
    /// after the search (weight 0 included, so a winner it does not help keeps none) and
    /// written to the configuration as `content_weight`.
    #[arg(long)]
    no_content_prior: bool,
}

fn main() -> ExitCode {
    recsys_examples::exit_code(run(Args::parse()))
}

/// A feature configuration of the search: its name and experiment configuration.
struct FeatureSet {
    name: String,
    config: ExperimentConfig,
}

fn feature_sets(args: &Args, demo: bool) -> Result<Vec<FeatureSet>> {
    let mut sets = vec![FeatureSet {
        name: "cf".into(),
        config: ExperimentConfig::collaborative(),
    }];
    let (mut users, mut items) = (
        split_list(&args.user_features),
        split_list(&args.item_features),
    );
    let mut numeric = args.numeric_features.as_deref().map(split_list);
    if demo && users.is_empty() && items.is_empty() {
        let d = ExperimentConfig::demo_hybrid();
        (users, items, numeric) = (d.user_columns, d.item_columns, Some(d.numeric_columns));
    }
    if users.is_empty() && items.is_empty() {
        return Ok(sets);
    }
    let mut base = ExperimentConfig::collaborative()
        .with_user_columns(users)
        .with_item_columns(items);
    if let Some(n) = numeric {
        base = base.with_numeric_columns(n);
        let (_, unused) = base.numeric_columns_used();
        if !unused.is_empty() && args.numeric_features.is_some() {
            bail!(
                "--numeric-features names {} which is not among the feature columns",
                unused.join(", ")
            );
        }
    }
    sets.push(FeatureSet {
        name: "features".into(),
        config: base.clone(),
    });
    for w in [0.5f32, 1.0] {
        let mut c = base.clone();
        c.metadata_weight = Some(w);
        sets.push(FeatureSet {
            name: format!("features w{w}"),
            config: c,
        });
    }
    sets.extend(column_subsets(&base, args.column_subsets, args.seed));
    Ok(sets)
}

/// With `n` > 0: the user columns of `base` alone, its product columns alone (when it has
/// both), and `n` seeded random non-empty subsets of all its columns (no repeats, none
/// equal to all of them), each identity-anchored at `metadata_weight` 1.
fn column_subsets(base: &ExperimentConfig, n: usize, seed: u64) -> Vec<FeatureSet> {
    if n == 0 {
        return Vec::new();
    }
    let (users, items) = (&base.user_columns, &base.item_columns);
    let all: Vec<(bool, &String)> = users
        .iter()
        .map(|c| (true, c))
        .chain(items.iter().map(|c| (false, c)))
        .collect();
    let mut chosen: Vec<Vec<bool>> = Vec::new();
    if !users.is_empty() && !items.is_empty() {
        chosen.push(all.iter().map(|&(user, _)| user).collect());
        chosen.push(all.iter().map(|&(user, _)| !user).collect());
    }
    // Every non-empty proper subset is a candidate; draw until n new ones or none is left
    // (the draw stops after enough tries on a small column list).
    let mut rng = Rng::new(seed ^ 0x0063_6f6c_756d_6e73);
    let mut drawn = 0;
    for _ in 0..n.saturating_mul(50) {
        if drawn == n {
            break;
        }
        let mask: Vec<bool> = (0..all.len()).map(|_| rng.below(2) == 1).collect();
        let size = mask.iter().filter(|&&m| m).count();
        if size == 0 || size == all.len() || chosen.contains(&mask) {
            continue;
        }
        chosen.push(mask);
        drawn += 1;
    }
    chosen
        .into_iter()
        .map(|mask| {
            let pick = |user: bool| -> Vec<String> {
                all.iter()
                    .zip(&mask)
                    .filter(|&(&(u, _), &m)| m && u == user)
                    .map(|(&(_, c), _)| c.clone())
                    .collect()
            };
            let (u, i) = (pick(true), pick(false));
            let mut config = base.clone();
            config.user_columns = u.clone();
            config.item_columns = i.clone();
            config.metadata_weight = Some(1.0);
            FeatureSet {
                name: format!("cols u[{}] i[{}] w1", u.join(","), i.join(",")),
                config,
            }
        })
        .collect()
}

/// `options[rng.below(len)]`.
fn pick<T: Copy>(rng: &mut Rng, options: &[T]) -> T {
    options[rng.below(options.len())]
}

/// The hybrid model with the example binaries' defaults (WARP, 30 components, learning
/// rate 0.05; the library builder's own defaults are LightFM's: logistic, 10 components).
fn recsys_defaults(seed: u64) -> Result<Hyperparameters, recsys::CoreError> {
    Hyperparameters::builder()
        .loss(Loss::Warp)
        .no_components(30)
        .learning_rate(0.05)
        .seed(seed)
        .build()
}

/// The fixed baselines, then `n` random candidates.
fn candidates(args: &Args, sets: &[FeatureSet]) -> Result<Vec<Candidate>> {
    let mut out = vec![Candidate {
        label: "hybrid warp, 30 components, lr 0.05 (recsys defaults)".into(),
        features: 0,
        params: CandidateParams::Hybrid(recsys_defaults(args.seed)?),
    }];
    let als = args.families.contains(&ModelKind::Als);
    let hybrid = args.families.contains(&ModelKind::Hybrid);
    // recsys' defaults on every other feature configuration too.
    for (features, set) in sets.iter().enumerate().skip(1) {
        if hybrid {
            out.push(Candidate {
                label: format!("hybrid warp, 30 components, lr 0.05 ({})", set.name),
                features,
                params: CandidateParams::Hybrid(recsys_defaults(args.seed)?),
            });
        }
    }
    if als {
        out.push(Candidate {
            label: "als, 30 components, alpha 1, regularization 0.01".into(),
            features: 0,
            params: CandidateParams::Als(
                AlsParams::builder()
                    .no_components(30)
                    .alpha(1.0)
                    .seed(args.seed)
                    .build()?,
            ),
        });
    }
    // ALS with item features at the settings recsys recommends for it (chosen on a
    // validation split of Complete Journey's training data: docs/benchmarks.md, "ALS"):
    // a starting point the random draws rarely hit all at once.
    if let Some(w05) = sets
        .iter()
        .position(|s| s.name == "features w0.5")
        .filter(|_| als)
    {
        out.push(Candidate {
            label: "als, 150 components, alpha 1, regularization 40, feature CG steps 10 \
                    (recsys' ALS-with-features settings)"
                .into(),
            features: w05,
            params: CandidateParams::Als(
                AlsParams::builder()
                    .no_components(150)
                    .alpha(1.0)
                    .regularization(40.0)
                    .feature_cg_steps(10)
                    .seed(args.seed)
                    .build()?,
            ),
        });
    }
    let mut rng = Rng::stream(args.seed, 7);
    for _ in 0..args.trials {
        let features = rng.below(sets.len());
        let components = pick(&mut rng, &[16usize, 32, 64]);
        let use_als = als && (!hybrid || rng.below(3) == 0);
        if use_als {
            // ALS sweeps cost little per component: it gets 128 too.
            let components = if rng.below(4) == 0 { 128 } else { components };
            let alpha = pick(&mut rng, &[0.0f32, 1.0, 5.0, 20.0]);
            let regularization = pick(&mut rng, &[0.01f32, 0.1, 1.0, 10.0, 40.0]);
            let feature_cg_steps = pick(&mut rng, &[3usize, 10]);
            out.push(Candidate {
                label: format!(
                    "als, {components} components, alpha {alpha}, regularization \
                     {regularization}, feature CG steps {feature_cg_steps}"
                ),
                features,
                params: CandidateParams::Als(
                    AlsParams::builder()
                        .no_components(components)
                        .alpha(alpha)
                        .regularization(regularization)
                        .feature_cg_steps(feature_cg_steps)
                        .seed(args.seed)
                        .build()?,
                ),
            });
        } else {
            let loss = pick(&mut rng, &["warp", "warp-kos", "bpr", "logistic"]);
            // Log-uniform in [0.01, 0.2].
            let lr = (0.01f64 * 20f64.powf(rng.next_f64())) as f32;
            let lr = (lr * 1000.0).round() / 1000.0;
            let adadelta = rng.below(4) == 0;
            let item_alpha = pick(&mut rng, &[0.0f32, 1e-6, 1e-5]);
            let user_alpha = pick(&mut rng, &[0.0f32, 1e-6, 1e-5]);
            let max_sampled = pick(&mut rng, &[10usize, 30, 50]);
            let schedule = if adadelta {
                Schedule::Adadelta {
                    rho: 0.95,
                    epsilon: 1e-6,
                }
            } else {
                Schedule::Adagrad
            };
            out.push(Candidate {
                label: format!(
                    "hybrid {loss}, {components} components, lr {lr}, {}, alpha {item_alpha}/{user_alpha}, max_sampled {max_sampled}",
                    if adadelta { "adadelta" } else { "adagrad" }
                ),
                features,
                params: CandidateParams::Hybrid(
                    Hyperparameters::builder()
                        .loss(Loss::parse(loss).expect("a known loss"))
                        .no_components(components)
                        .learning_rate(lr)
                        .schedule(schedule)
                        .item_alpha(item_alpha)
                        .user_alpha(user_alpha)
                        .max_sampled(max_sampled)
                        .seed(args.seed)
                        .build()?,
                ),
            });
        }
    }
    Ok(out)
}

/// The `train --config` file of a candidate trained for `epochs`.
fn config_file(candidate: &Candidate, set: &FeatureSet, epochs: usize) -> ConfigFile {
    let c = &set.config;
    let mut file = ConfigFile {
        user_features: Some(c.user_columns.clone()),
        item_features: Some(c.item_columns.clone()),
        numeric_features: Some(c.numeric_columns_used().0),
        quantiles: Some(c.quantiles),
        item_identity: Some(c.item_identity),
        user_identity: Some(c.user_identity),
        metadata_weight: c.metadata_weight,
        epochs: Some(epochs),
        ..ConfigFile::default()
    };
    match &candidate.params {
        CandidateParams::Hybrid(p) => {
            file.model = Some("hybrid".into());
            file.loss = Some(p.loss().name().to_string());
            file.components = Some(p.no_components());
            file.learning_rate = Some(f64::from(p.learning_rate()));
            file.schedule = Some(
                match p.schedule() {
                    Schedule::Adagrad => "adagrad",
                    _ => "adadelta",
                }
                .into(),
            );
            file.item_alpha = Some(p.item_alpha());
            file.user_alpha = Some(p.user_alpha());
            file.max_sampled = Some(p.max_sampled());
            file.seed = Some(p.seed());
        }
        CandidateParams::Als(p) => {
            file.model = Some("als".into());
            file.components = Some(p.no_components());
            file.alpha = Some(p.alpha());
            file.regularization = Some(p.regularization());
            file.feature_cg_steps = Some(p.feature_cg_steps());
            file.seed = Some(p.seed());
        }
    }
    file
}

fn run(args: Args) -> Result<()> {
    if args.families.is_empty() {
        bail!("--families needs at least one of hybrid, als");
    }
    let demo = args.data.is_none();
    let mut source: Box<dyn RecordSource> = match &args.data {
        Some(dir) => Box::new(
            CsvSource::open(dir).with_context(|| format!("opening dataset {}", dir.display()))?,
        ),
        None => {
            eprintln!("note: no --data given: tuning on the built-in demo shop");
            Box::new(generate(&DemoConfig::default()))
        }
    };
    let pairs = args.test_pairs.clone().or_else(|| {
        let p = args.data.as_ref()?.join("test_pairs.csv.gz");
        p.is_file().then_some(p)
    });
    let split = match &pairs {
        Some(path) => Split::HeldOutPairs(
            recsys::read_pairs(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => Split::Random {
            test_fraction: 0.2,
            seed: args.seed,
        },
    };
    let sets = feature_sets(&args, demo)?;
    let mut experiments = Vec::new();
    for set in &sets {
        let e = Experiment::load(&mut source, &set.config, split.clone())
            .with_context(|| format!("loading the data with features {:?}", set.name))?;
        let (train, valid) = e.validation_split(args.validation_fraction, args.seed)?;
        experiments.push((e, train, valid));
    }
    let data: Vec<TuneData<'_>> = experiments
        .iter()
        .map(|(e, train, valid)| TuneData {
            dataset: e.dataset(),
            train,
            valid,
        })
        .collect();
    let (e0, t0, v0) = &experiments[0];
    eprintln!(
        "{} users, {} products; search on {} training / {} validation pairs ({} test pairs \
         kept out); feature sets: {}",
        e0.dataset().n_users(),
        e0.dataset().n_items(),
        t0.len(),
        v0.len(),
        e0.test().map_or(0, |t| t.len()),
        sets.iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let candidates = candidates(&args, &sets)?;
    let options = HalvingOptions {
        min_epochs: args.min_epochs,
        max_epochs: args.max_epochs,
        eta: args.eta,
        k: args.k,
        threads: args.threads,
        parallel: args.parallel,
        time_budget: args.seconds.map(Duration::from_secs),
    };
    let bar = if args.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{elapsed} rung {prefix} {bar:30} {pos}/{len} {msg}")
                .expect("template"),
        );
        b
    };
    let report = successive_halving(&data, &candidates, 0, &options, |p| {
        bar.set_prefix(format!("{} epochs", p.epochs));
        bar.set_length(p.of as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!("#{} {}", p.index, p.candidate.label));
    })?;
    bar.finish_and_clear();

    println!(
        "{:>3}  {:<28} {:<14} {:<44} status",
        "#",
        format!("P@{} by epochs", args.k),
        "features",
        "candidate"
    );
    for t in &report.trials {
        let c = &candidates[t.candidate];
        let scores: Vec<String> = t
            .scores
            .iter()
            .map(|s| format!("{}:{:.4}", s.epochs, s.precision))
            .collect();
        println!(
            "{:>3}  {:<28} {:<14} {:<44} {}",
            t.candidate,
            scores.join(" "),
            sets[c.features].name,
            c.label,
            t.stopped.as_deref().unwrap_or("trained to the end")
        );
    }
    let w = report.winner;
    let winner = &candidates[w.candidate];
    let baseline = report.trials[0].best();
    println!(
        "winner #{}: {} on {} for {} epochs: validation P@{} {:.4}, AUC {:.4} (baseline CF \
         best {}); search {:.1}s{}",
        w.candidate,
        winner.label,
        sets[winner.features].name,
        w.epochs,
        args.k,
        w.precision,
        w.auc,
        baseline.map_or("not scored".into(), |b| format!(
            "{:.4} at {} epochs",
            b.precision, b.epochs
        )),
        report.elapsed.as_secs_f64(),
        if report.out_of_time {
            " (time budget spent)"
        } else {
            ""
        }
    );
    if let Some(dir) = &args.report {
        let path = write_report(dir, &report, &candidates, &sets, args.k)?;
        eprintln!("report: {}", path.display());
    }
    let mut file = config_file(winner, &sets[winner.features], w.epochs);
    let (e, fit, valid) = &experiments[winner.features];
    // The content model needs item metadata: the winner's feature set's (a plain
    // collaborative winner gets no prior: `train --config` builds the content model from
    // the configuration's item columns).
    let content_set = Some(winner.features).filter(|_| {
        !args.no_content_prior && !e.dataset().item_vocabulary().spec().columns.is_empty()
    });
    let content_weight = match content_set {
        None => 0.0,
        Some(cs) => {
            // The content model as a prior: its weight chosen on the same validation split,
            // for the winner at its epochs (weight 0 is a candidate, so the prior never
            // costs validation AUC, nor more than 1 % of validation precision).
            let started = Instant::now();
            let model = winner.train(e.dataset(), fit, w.epochs, args.threads)?;
            let content = experiments[cs]
                .0
                .content_model(fit, ContentParams::default())?;
            let (weight, trials) = choose_content_weight(
                &model,
                &content,
                fit,
                valid,
                &CONTENT_WEIGHTS,
                args.k,
                args.threads,
            )?;
            let at = |x: f32| &trials.iter().find(|(w, _)| *w == x).expect("a candidate").1;
            println!(
                "content prior ({} item columns): weight {weight} (validation P@{} {:.4}, AUC \
                 {:.4}; without it {:.4}, {:.4}); chosen in {:.1}s",
                sets[cs].name,
                args.k,
                at(weight).precision_at_k,
                at(weight).auc,
                at(0.0).precision_at_k,
                at(0.0).auc,
                started.elapsed().as_secs_f64()
            );
            weight
        }
    };
    if content_weight > 0.0 {
        file.content_weight = Some(content_weight);
    }
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&file)? + "\n")
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {} (train --config reads it)", args.out.display());

    if args.report_test {
        for (what, index, epochs) in [
            ("winner", w.candidate, w.epochs),
            (
                "baseline",
                0,
                baseline.map_or(args.max_epochs, |b| b.epochs),
            ),
        ] {
            let c = &candidates[index];
            let (e, _, _) = &experiments[c.features];
            if e.test().is_none() {
                break;
            }
            let model = c.train(e.dataset(), e.train(), epochs, args.threads)?;
            let m = e.evaluate(&model, args.k, args.threads)?;
            println!(
                "test ({what}, {epochs} epochs on the whole training part): {}",
                metrics_line(&m)
            );
            if let (true, Some(cs)) = (what == "winner" && content_weight > 0.0, content_set) {
                let content = experiments[cs].0.fit_content(ContentParams::default())?;
                let prior = ContentPrior::new(&model, &content, content_weight)?;
                let m = e.evaluate(&prior, args.k, args.threads)?;
                println!(
                    "test (winner + {content_weight} × content model): {}",
                    metrics_line(&m)
                );
            }
        }
    }
    Ok(())
}

/// The search as a page: every trial's validation precision by epochs, and the trials.
fn write_report(
    dir: &std::path::Path,
    report: &recsys::tune::TuneReport,
    candidates: &[Candidate],
    sets: &[FeatureSet],
    k: usize,
) -> Result<PathBuf> {
    use recsys_examples::report::{line_chart, Html, Series};
    let mut html = Html::default();
    let w = report.winner;
    html.facts(&[
        ("candidates", candidates.len().to_string()),
        (
            "search time",
            format!("{:.1} s", report.elapsed.as_secs_f64()),
        ),
        (
            "winner",
            format!(
                "#{} {} on {} for {} epochs: validation P@{k} {:.4}",
                w.candidate,
                candidates[w.candidate].label,
                sets[candidates[w.candidate].features].name,
                w.epochs,
                w.precision
            ),
        ),
    ]);
    html.heading("Successive halving");
    // The baseline, the winner and every trial that reached a second rung, by name; the
    // others (eliminated at the first rung) as one series of points.
    let mut series = Vec::new();
    let mut first_rung_only = Vec::new();
    for t in &report.trials {
        let points: Vec<(f64, f64)> = t
            .scores
            .iter()
            .map(|s| (s.epochs as f64, s.precision))
            .collect();
        if points.len() > 1 || t.candidate == 0 || t.candidate == w.candidate {
            let tag = if t.candidate == 0 { " (baseline)" } else { "" };
            series.push(Series::new(format!("#{}{tag}", t.candidate), points));
        } else {
            first_rung_only.extend(points);
        }
    }
    html.figure(
        "halving",
        &line_chart(
            &format!("Validation precision@{k} of each trial at each rung"),
            "epochs",
            &format!("precision@{k}"),
            &series,
        ),
    );
    html.paragraph(&format!(
        "{} trials were eliminated at the first rung (their scores: {}).",
        first_rung_only.len(),
        first_rung_only
            .iter()
            .map(|(_, p)| format!("{p:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    html.heading("Trials");
    let rows: Vec<(String, String)> = report
        .trials
        .iter()
        .map(|t| {
            let c = &candidates[t.candidate];
            let scores: Vec<String> = t
                .scores
                .iter()
                .map(|s| format!("{}:{:.4}", s.epochs, s.precision))
                .collect();
            (
                format!("#{} {} ({})", t.candidate, c.label, sets[c.features].name),
                format!(
                    "{} — {}",
                    scores.join(" "),
                    t.stopped.as_deref().unwrap_or("trained to the end")
                ),
            )
        })
        .collect();
    let rows: Vec<(&str, String)> = rows.iter().map(|(a, b)| (a.as_str(), b.clone())).collect();
    html.facts(&rows);
    html.write(dir, "recsys tuning report")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ExperimentConfig {
        ExperimentConfig::collaborative()
            .with_user_columns(vec!["age", "income"])
            .with_item_columns(vec!["brand", "category", "price:q5"])
    }

    #[test]
    fn column_subsets_are_each_side_alone_then_distinct_proper_subsets() {
        assert!(column_subsets(&base(), 0, 1).is_empty());
        let sets = column_subsets(&base(), 4, 7);
        assert_eq!(sets.len(), 6);
        assert_eq!(sets[0].config.user_columns, ["age", "income"]);
        assert!(sets[0].config.item_columns.is_empty());
        assert!(sets[1].config.user_columns.is_empty());
        assert_eq!(
            sets[1].config.item_columns,
            ["brand", "category", "price:q5"]
        );
        let mut seen = Vec::new();
        for set in &sets {
            let (u, i) = (&set.config.user_columns, &set.config.item_columns);
            let size = u.len() + i.len();
            assert!(size > 0 && size < 5, "{}", set.name);
            assert_eq!(set.config.metadata_weight, Some(1.0));
            assert!(
                !seen.contains(&(u.clone(), i.clone())),
                "repeated: {}",
                set.name
            );
            seen.push((u.clone(), i.clone()));
        }
        // Seeded: the same seed draws the same subsets, another seed others.
        let names = |sets: &[FeatureSet]| sets.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&sets), names(&column_subsets(&base(), 4, 7)));
        assert_ne!(names(&sets), names(&column_subsets(&base(), 4, 8)));
    }

    #[test]
    fn als_with_features_is_a_seeded_candidate_and_its_config_keeps_the_cg_steps() {
        let args = Args::parse_from(["tune", "--item-features", "brand,category", "--trials", "3"]);
        let sets = feature_sets(&args, false).unwrap();
        let all = candidates(&args, &sets).unwrap();
        let seeded = all
            .iter()
            .find(|c| c.label.contains("ALS-with-features"))
            .expect("the seeded candidate");
        assert_eq!(sets[seeded.features].name, "features w0.5");
        let file = config_file(seeded, &sets[seeded.features], 20);
        assert_eq!(file.model.as_deref(), Some("als"));
        assert_eq!(file.components, Some(150));
        assert_eq!(file.feature_cg_steps, Some(10));
        assert_eq!(file.metadata_weight, Some(0.5));
        assert_eq!(file.content_weight, None);
        // Without ALS among the families there is none.
        let hybrid_only =
            Args::parse_from(["tune", "--item-features", "brand", "--families", "hybrid"]);
        let sets = feature_sets(&hybrid_only, false).unwrap();
        assert!(candidates(&hybrid_only, &sets)
            .unwrap()
            .iter()
            .all(|c| !c.label.contains("ALS-with-features")));
    }

    #[test]
    fn column_subsets_stop_when_no_new_subset_is_left() {
        let two = ExperimentConfig::collaborative()
            .with_user_columns(vec!["age"])
            .with_item_columns(vec!["brand"]);
        // The only proper subsets are the two sides alone.
        assert_eq!(column_subsets(&two, 10, 1).len(), 2);
        // One side only: its proper subsets (2 columns: 2 of them) at most.
        let items = ExperimentConfig::collaborative().with_item_columns(vec!["brand", "category"]);
        assert_eq!(column_subsets(&items, 10, 1).len(), 2);
    }
}
