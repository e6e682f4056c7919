//! Shared helpers for the example binaries: the epoch progress bar, product look-up and
//! metric formatting. The real work lives in `recsys::experiment`.

pub mod report;

use std::collections::HashMap;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use recsys::{EpochReport, ExternalId, Metrics, ProductRecord};

/// A progress bar over training epochs on stderr (epoch, loss estimate, elapsed time);
/// hidden when `hidden` is set or stderr is not a terminal.
pub fn epoch_progress(epochs: usize, hidden: bool) -> ProgressBar {
    if hidden || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(epochs as u64), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "training [{bar:30.cyan/blue}] epoch {pos}/{len}  {msg}  elapsed {elapsed_precise}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Advances `bar` after an epoch and shows its loss estimate.
pub fn on_epoch(bar: &ProgressBar, report: &EpochReport) {
    bar.set_message(format!(
        "loss {:.4} ({:.2}s/epoch)",
        report.loss,
        report.elapsed.as_secs_f64()
    ));
    bar.inc(1);
}

/// Product records by id, for display.
pub struct Catalogue<'a> {
    by_id: HashMap<&'a ExternalId, &'a ProductRecord>,
}

impl<'a> Catalogue<'a> {
    /// Indexes `products` by id.
    pub fn new(products: &'a [ProductRecord]) -> Self {
        Catalogue {
            by_id: products.iter().map(|p| (&p.product_id, p)).collect(),
        }
    }

    /// The product with this id.
    pub fn get(&self, id: &ExternalId) -> Option<&'a ProductRecord> {
        self.by_id.get(id).copied()
    }

    /// `name (category, price)` or the bare id when the product is unknown.
    pub fn describe(&self, id: &ExternalId) -> String {
        let Some(p) = self.get(id) else {
            return format!("product {id}");
        };
        let name = p.name.clone().unwrap_or_else(|| format!("product {id}"));
        let mut details: Vec<String> = ["category", "price_range"]
            .iter()
            .filter_map(|c| p.attributes.get(*c).cloned())
            .collect();
        if let Some(price) = p.price {
            details.push(format!("{price:.2}"));
        }
        format!("{name:<34} {}", details.join(", "))
    }

    /// The value of attribute `column` of the product with this id.
    pub fn attribute(&self, id: &ExternalId, column: &str) -> Option<&'a str> {
        self.get(id)?.attributes.get(column).map(String::as_str)
    }
}

/// One line: `P@k, R@k, AUC, MRR, NDCG@k`.
pub fn metrics_line(m: &Metrics) -> String {
    format!(
        "P@{k} {:.4}  R@{k} {:.4}  AUC {:.4}  MRR {:.4}  NDCG@{k} {:.4}  ({} users)",
        m.precision_at_k,
        m.recall_at_k,
        m.auc,
        m.reciprocal_rank,
        m.ndcg_at_k,
        m.n_users,
        k = m.k
    )
}

/// Loss names accepted on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LossArg {
    /// Weighted approximate-rank pairwise (LightFM's best for top-k).
    Warp,
    /// Bayesian personalised ranking.
    Bpr,
    /// Logistic (pointwise).
    Logistic,
    /// k-th order statistic WARP.
    #[value(name = "warp-kos")]
    WarpKos,
}

/// Learning-rate schedules accepted on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ScheduleArg {
    /// Adagrad (LightFM's default).
    Adagrad,
    /// Adadelta (rho 0.95, epsilon 1e-6).
    Adadelta,
}

/// Model families accepted on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelKind {
    /// The hybrid factorisation model trained by SGD on a ranking loss (`--loss`).
    Hybrid,
    /// Implicit-feedback matrix factorisation by alternating least squares
    /// (`--alpha`, `--regularization`, `--cg-steps`, `--solver`).
    Als,
}

/// Row solvers of the ALS model accepted on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlsSolverArg {
    /// `--cg-steps` conjugate-gradient steps per row, warm-started.
    Cg,
    /// The exact solution by Cholesky factorisation.
    Cholesky,
}

/// The model's hyper-parameters and training settings, shared by `evaluate` and `train`.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model family.
    #[arg(long, value_enum, default_value_t = ModelKind::Hybrid)]
    pub model: ModelKind,
    /// ALS: extra confidence per unit of interaction weight (`c = 1 + alpha·w`; implicit's
    /// `alpha` is this plus one on binary data).
    #[arg(long, default_value_t = 0.0)]
    pub alpha: f32,
    /// ALS: L2 penalty on the embeddings.
    #[arg(long, default_value_t = 0.01)]
    pub regularization: f32,
    /// ALS: conjugate-gradient steps per row and half-sweep (with `--solver cg`).
    #[arg(long, default_value_t = 3)]
    pub cg_steps: usize,
    /// ALS: preconditioned CG steps per half-sweep on a side with features.
    #[arg(long, default_value_t = 3)]
    pub feature_cg_steps: usize,
    /// ALS: row solver of sides without features.
    #[arg(long, value_enum, default_value_t = AlsSolverArg::Cg)]
    pub solver: AlsSolverArg,
    /// Loss function.
    #[arg(long, value_enum, default_value_t = LossArg::Warp)]
    pub loss: LossArg,
    /// Training epochs (ALS: sweeps).
    #[arg(long, alias = "iterations", default_value_t = 10)]
    pub epochs: usize,
    /// Threads for training and evaluation (1 = bit-reproducible).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Latent dimensions.
    #[arg(long, default_value_t = 30)]
    pub components: usize,
    /// Initial learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub learning_rate: f64,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value_t = ScheduleArg::Adagrad)]
    pub schedule: ScheduleArg,
    /// L2 penalty on item features.
    #[arg(long, default_value_t = 0.0)]
    pub item_alpha: f32,
    /// L2 penalty on user features.
    #[arg(long, default_value_t = 0.0)]
    pub user_alpha: f32,
    /// Maximum negatives sampled per positive (WARP).
    #[arg(long, default_value_t = 10)]
    pub max_sampled: usize,
    /// Seed of the model (and of the random split and the cold-start choice).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl ModelArgs {
    /// Trains a model on `experiment` with these settings, with an epoch progress bar on
    /// stderr unless `quiet`.
    pub fn fit(
        &self,
        experiment: &recsys::Experiment,
        quiet: bool,
    ) -> anyhow::Result<(recsys::HybridModel, recsys::experiment::TrainingReport)> {
        use anyhow::Context;
        let params = self.hyperparameters()?;
        let bar = epoch_progress(self.epochs, quiet);
        let trained = experiment
            .fit(params, self.epochs, self.threads, |r| on_epoch(&bar, r))
            .context("training")?;
        bar.finish_and_clear();
        Ok(trained)
    }

    /// Checked ALS hyper-parameters (the error names the bad flag's value).
    pub fn als_params(&self) -> Result<recsys::core::AlsParams, recsys::CoreError> {
        use recsys::core::{AlsParams, AlsSolver};
        let solver = match self.solver {
            AlsSolverArg::Cg => AlsSolver::ConjugateGradient {
                steps: self.cg_steps,
            },
            AlsSolverArg::Cholesky => AlsSolver::Cholesky,
        };
        AlsParams::builder()
            .no_components(self.components)
            .alpha(self.alpha)
            .regularization(self.regularization)
            .solver(solver)
            .feature_cg_steps(self.feature_cg_steps)
            .seed(self.seed)
            .build()
    }

    /// Trains an ALS model on `experiment` (its feature matrices and training
    /// interactions) with these settings; returns it with the wall time of each sweep (a
    /// line on stderr unless `quiet`).
    pub fn fit_als(
        &self,
        experiment: &recsys::Experiment,
        quiet: bool,
    ) -> anyhow::Result<(recsys::core::AlsModel, Vec<std::time::Duration>)> {
        use anyhow::Context;
        use recsys::core::{AlsFitOptions, AlsModel};
        let params = self.als_params()?;
        let dataset = experiment.dataset();
        let mut model = AlsModel::new(params, dataset.user_features(), dataset.item_features())?;
        if !quiet {
            eprintln!(
                "training ALS: {} sweeps on {} thread(s)",
                self.epochs, self.threads
            );
        }
        let report = model
            .fit(
                experiment.train(),
                AlsFitOptions::iterations(self.epochs).threads(self.threads),
            )
            .context("training ALS")?;
        let times = report.iter().map(|r| r.elapsed).collect();
        Ok((model, times))
    }

    /// A model of the family and settings these flags describe, on `experiment`'s feature
    /// matrices, trained on `interactions` (a validation split's fit part, for example)
    /// without progress output.
    pub fn fit_on(
        &self,
        experiment: &recsys::Experiment,
        interactions: &recsys::Interactions,
    ) -> anyhow::Result<recsys::Model> {
        use recsys::core::{AlsFitOptions, AlsModel};
        Ok(match self.model {
            ModelKind::Hybrid => {
                let mut m = experiment.model(self.hyperparameters()?)?;
                m.fit(
                    interactions,
                    recsys::FitOptions::epochs(self.epochs).threads(self.threads),
                )?;
                m.into()
            }
            ModelKind::Als => {
                let d = experiment.dataset();
                let mut m =
                    AlsModel::new(self.als_params()?, d.user_features(), d.item_features())?;
                m.fit(
                    interactions,
                    AlsFitOptions::iterations(self.epochs).threads(self.threads),
                )?;
                m.into()
            }
        })
    }

    /// The loss these flags name.
    pub fn loss(&self) -> recsys::Loss {
        match self.loss {
            LossArg::Warp => recsys::Loss::Warp,
            LossArg::Bpr => recsys::Loss::Bpr,
            LossArg::Logistic => recsys::Loss::Logistic,
            LossArg::WarpKos => recsys::Loss::parse("warp-kos").expect("warp-kos is a known loss"),
        }
    }

    /// Checked hyper-parameters (the error names the bad flag's value).
    pub fn hyperparameters(&self) -> Result<recsys::Hyperparameters, recsys::CoreError> {
        let schedule = match self.schedule {
            ScheduleArg::Adagrad => recsys::Schedule::Adagrad,
            ScheduleArg::Adadelta => recsys::Schedule::Adadelta {
                rho: 0.95,
                epsilon: 1e-6,
            },
        };
        recsys::Hyperparameters::builder()
            .loss(self.loss())
            .schedule(schedule)
            .no_components(self.components)
            .learning_rate(self.learning_rate as f32)
            .item_alpha(self.item_alpha)
            .user_alpha(self.user_alpha)
            .max_sampled(self.max_sampled)
            .seed(self.seed)
            .build()
    }
}

/// The content model as a prior over the whole catalogue (`recsys_core::ContentPrior`).
#[derive(clap::Args, Debug, Clone)]
pub struct ContentPriorArgs {
    /// Add W × the content model's scores (`recsys_core::ContentModel` with its default
    /// settings, over the item feature columns) to the model's: a prior that orders the long
    /// tail the model ranks poorly. `auto` chooses W on a validation split of the training
    /// data (20 % of the pairs; trains the model once more): the highest AUC among the
    /// weights whose precision at 10 stays within 1 % of the model's alone.
    #[arg(long, value_name = "W|auto", conflicts_with = "cold_start_content")]
    pub content_weight: Option<String>,
}

impl ContentPriorArgs {
    /// Refuses a malformed `--content-weight` before anything is trained.
    pub fn check(&self) -> anyhow::Result<()> {
        match &self.content_weight {
            Some(spec) if spec.trim() != "auto" => Self::parse_weight(spec).map(|_| ()),
            _ => Ok(()),
        }
    }

    fn parse_weight(spec: &str) -> anyhow::Result<f32> {
        spec.trim()
            .parse()
            .ok()
            .filter(|w: &f32| w.is_finite() && *w >= 0.0)
            .ok_or_else(|| {
                anyhow::anyhow!("--content-weight {spec}: expected a number >= 0 or `auto`")
            })
    }

    /// The weights `auto` tries.
    pub const CANDIDATES: [f32; 10] = recsys::experiment::CONTENT_WEIGHTS;

    /// The content model fitted on `experiment`'s training data and the weight these flags
    /// ask for (`None` without `--content-weight`), with a JSON description; with `auto`,
    /// chosen on a validation split of the training data (said on stderr unless `quiet`).
    pub fn prior(
        &self,
        experiment: &recsys::Experiment,
        model: &ModelArgs,
        quiet: bool,
    ) -> anyhow::Result<Option<(recsys::core::ContentModel, f32, serde_json::Value)>> {
        use anyhow::Context;
        use recsys::core::ContentParams;
        let Some(spec) = &self.content_weight else {
            return Ok(None);
        };
        let params = ContentParams::default();
        let (weight, json) = if spec.trim() == "auto" {
            let (fit, validation) = experiment
                .validation_split(0.2, model.seed)
                .context("--content-weight auto")?;
            if !quiet {
                eprintln!(
                    "--content-weight auto: training on {} of the training pairs to choose the \
                     weight on the other {}",
                    fit.len(),
                    validation.len()
                );
            }
            let trained = model
                .fit_on(experiment, &fit)
                .context("training the validation model")?;
            let content = experiment
                .content_model(&fit, params)
                .context("--content-weight auto")?;
            let (weight, trials) = recsys::experiment::choose_content_weight(
                &trained,
                &content,
                &fit,
                &validation,
                &Self::CANDIDATES,
                10,
                model.threads,
            )
            .context("--content-weight auto")?;
            let best = &trials
                .iter()
                .find(|(w, _)| *w == weight)
                .expect("the chosen weight is a candidate")
                .1;
            if !quiet {
                eprintln!(
                    "content weight: {weight} (validation AUC {:.4} and P@10 {:.4}; without \
                     the prior {:.4} and {:.4})",
                    best.auc, best.precision_at_k, trials[0].1.auc, trials[0].1.precision_at_k
                );
            }
            let json = serde_json::json!({
                "weight": weight,
                "chosen_by": "validation",
                "validation_pairs": validation.len(),
                "trials": trials.iter().map(|(w, m)| serde_json::json!({
                    "weight": w, "auc": m.auc, "precision_at_10": m.precision_at_k,
                })).collect::<Vec<_>>(),
            });
            (weight, json)
        } else {
            let weight = Self::parse_weight(spec)?;
            (
                weight,
                serde_json::json!({"weight": weight, "chosen_by": "flag"}),
            )
        };
        let mut json = json;
        json["smoothing"] = serde_json::json!(params.smoothing);
        json["class_size_power"] = serde_json::json!(params.class_size_power);
        let content = experiment.fit_content(params).context("--content-weight")?;
        Ok(Some((content, weight, json)))
    }
}

/// The item cold-start refit, shared by `evaluate` and `train`.
#[derive(clap::Args, Debug, Clone)]
pub struct ColdStartArgs {
    /// After training, refit the item metadata embeddings by ridge regression (penalty
    /// LAMBDA) of the warm items' representations on their metadata, keeping every product
    /// with training interactions at its representation; products without any are then
    /// scored by the prediction from their metadata. `auto` chooses LAMBDA and --refit-popularity-power on an item cold-start
    /// split of the training data (10 % of the products with interactions; trains the model
    /// once more). Needs item identity features and item feature columns.
    #[arg(long, value_name = "LAMBDA|auto")]
    pub cold_start_refit: Option<String>,
    /// Weight of a product in the refit: its number of training interactions to this power
    /// (0 = every product alike, 1 = by popularity).
    #[arg(long, value_name = "P", default_value_t = 0.5)]
    pub refit_popularity_power: f64,
    /// Rank the held-out products of an item cold-start run with the content model
    /// (`recsys_core::ContentModel`: each user's smoothed preferences over the metadata
    /// values, divided by each value's item count to the power GAMMA) instead of the factor
    /// model's metadata embeddings. `BETA,GAMMA` gives the smoothing and the power; `auto`
    /// chooses them on an item cold-start split of the training data (10 % of the products
    /// with interactions).
    #[arg(
        long,
        value_name = "BETA,GAMMA|auto",
        conflicts_with = "cold_start_refit"
    )]
    pub cold_start_content: Option<String>,
}

impl ColdStartArgs {
    /// Refuses a refit the feature configuration cannot serve; call it before training so
    /// the mistake costs nothing. L1-normalised rows with identity features
    /// (`config.normalize` without `metadata_weight`) are refused: a product added after
    /// training gets a row without an identity feature, whose metadata weights are then
    /// larger than the ones the refit learned from, so its prediction would be on another
    /// scale than the cold items'.
    pub fn check(&self, config: &recsys::ExperimentConfig) -> anyhow::Result<()> {
        if let Some(spec) = &self.cold_start_content {
            if spec.trim() != "auto" {
                Self::parse_content(spec)?;
            }
        }
        if self.cold_start_refit.is_none() {
            return Ok(());
        }
        if config.normalize && config.metadata_weight.is_none() {
            anyhow::bail!(
                "--cold-start-refit needs identity-anchored rows (--metadata-weight W) or \
                 --no-normalize: with L1-normalised rows a product added after training, which \
                 has no identity feature, gets larger metadata weights than the ones the refit \
                 learned from"
            );
        }
        Ok(())
    }

    fn parse_content(spec: &str) -> anyhow::Result<(f32, f32)> {
        let parsed = spec
            .split_once(',')
            .and_then(|(b, g)| Some((b.trim().parse().ok()?, g.trim().parse().ok()?)));
        let (smoothing, class_size_power) = parsed.ok_or_else(|| {
            anyhow::anyhow!("--cold-start-content {spec}: expected BETA,GAMMA or `auto`")
        })?;
        recsys::core::ContentParams {
            smoothing,
            class_size_power,
        }
        .validate()
        .map_err(|e| anyhow::anyhow!("--cold-start-content {spec}: {e}"))?;
        Ok((smoothing, class_size_power))
    }

    /// The content model `--cold-start-content` asks for (`None` without it), fitted on
    /// `experiment`'s training data, and a JSON description of its settings; with `auto`,
    /// the settings with the best AUC on an item cold-start validation split of the training
    /// data (said on stderr unless `quiet`).
    pub fn content(
        &self,
        experiment: &recsys::Experiment,
        model: &ModelArgs,
        quiet: bool,
    ) -> anyhow::Result<Option<(recsys::core::ContentModel, serde_json::Value)>> {
        use anyhow::Context;
        use recsys::core::ContentParams;
        let Some(spec) = &self.cold_start_content else {
            return Ok(None);
        };
        let started = std::time::Instant::now();
        let (params, mut json) = if spec.trim() == "auto" {
            let validation = experiment
                .cold_start_validation(0.1, model.seed)
                .context("--cold-start-content auto")?;
            let choice = validation
                .choose_content(
                    experiment.dataset(),
                    &ContentParams::candidates(),
                    model.threads,
                )
                .context("--cold-start-content auto")?;
            let trials: Vec<serde_json::Value> = choice
                .trials
                .iter()
                .map(|(p, m)| {
                    serde_json::json!({
                        "smoothing": p.smoothing,
                        "class_size_power": p.class_size_power,
                        "auc": m.auc,
                        "precision_at_10": m.precision_at_k,
                    })
                })
                .collect();
            if !quiet {
                eprintln!(
                    "content model: smoothing {} class-size power {} (validation AUC {:.4} on \
                     {} pseudo-cold products, {} candidates)",
                    choice.best.smoothing,
                    choice.best.class_size_power,
                    choice.best_metrics.auc,
                    validation.items().len(),
                    trials.len()
                );
            }
            let json = serde_json::json!({
                "smoothing": choice.best.smoothing,
                "class_size_power": choice.best.class_size_power,
                "chosen_by": "validation",
                "validation_items": validation.items().len(),
                "validation_auc": choice.best_metrics.auc,
                "trials": trials,
            });
            (choice.best, json)
        } else {
            let (smoothing, class_size_power) = Self::parse_content(spec)?;
            let params = ContentParams {
                smoothing,
                class_size_power,
            };
            let json = serde_json::json!({
                "smoothing": smoothing,
                "class_size_power": class_size_power,
                "chosen_by": "flag",
            });
            (params, json)
        };
        json["choose_seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
        let started = std::time::Instant::now();
        let content = experiment
            .fit_content(params)
            .context("--cold-start-content")?;
        json["fit_seconds"] = serde_json::json!(started.elapsed().as_secs_f64());
        Ok(Some((content, json)))
    }

    /// The refit settings these flags ask for (`None` without `--cold-start-refit`) and a
    /// JSON description; with `auto`, trains a model like the main one on an item
    /// cold-start validation split of `experiment`'s training data and picks the candidate
    /// with the best validation AUC (said on stderr unless `quiet`). Call
    /// [`ColdStartArgs::check`] first, before training.
    pub fn choose(
        &self,
        experiment: &recsys::Experiment,
        model: &ModelArgs,
        quiet: bool,
    ) -> anyhow::Result<Option<(recsys::core::ColdStartRefit, serde_json::Value)>> {
        use anyhow::Context;
        use recsys::core::ColdStartRefit;
        use recsys::experiment::ColdStartValidation;
        let Some(spec) = &self.cold_start_refit else {
            return Ok(None);
        };
        if spec.trim() != "auto" {
            let lambda: f64 = spec
                .trim()
                .parse()
                .ok()
                .filter(|l: &f64| l.is_finite() && *l > 0.0)
                .with_context(|| {
                    format!("--cold-start-refit {spec}: expected a number > 0 or `auto`")
                })?;
            let refit = ColdStartRefit::new(lambda).popularity_power(self.refit_popularity_power);
            let json = serde_json::json!({
                "lambda": lambda,
                "popularity_power": self.refit_popularity_power,
                "chosen_by": "flag",
            });
            return Ok(Some((refit, json)));
        }
        let validation = experiment
            .cold_start_validation(0.1, model.seed)
            .context("--cold-start-refit auto")?;
        if !quiet {
            eprintln!(
                "--cold-start-refit auto: training on the training data without {} \
                 pseudo-cold products to choose the refit",
                validation.items().len()
            );
        }
        let trained = model
            .fit_on(experiment, validation.fit_interactions())
            .context("training the cold-start validation model")?;
        let choice = validation
            .choose_refit(
                &trained,
                &ColdStartValidation::default_candidates(),
                model.threads,
            )
            .context("--cold-start-refit auto")?;
        let trials: Vec<serde_json::Value> = choice
            .trials
            .iter()
            .map(|(c, m)| {
                serde_json::json!({
                    "lambda": c.lambda,
                    "popularity_power": c.popularity_power,
                    "auc": m.auc,
                    "precision_at_10": m.precision_at_k,
                })
            })
            .collect();
        if !quiet {
            eprintln!(
                "cold-start refit: lambda {} popularity power {} (validation AUC {:.4}, \
                 {} candidates)",
                choice.best.lambda,
                choice.best.popularity_power,
                choice.best_metrics.auc,
                trials.len()
            );
        }
        let json = serde_json::json!({
            "lambda": choice.best.lambda,
            "popularity_power": choice.best.popularity_power,
            "chosen_by": "validation",
            "validation_items": validation.items().len(),
            "validation_auc": choice.best_metrics.auc,
            "trials": trials,
        });
        Ok(Some((choice.best, json)))
    }
}

/// Which record columns become features, shared by `evaluate` and `train`.
#[derive(clap::Args, Debug, Clone)]
pub struct FeatureArgs {
    /// Comma-separated user columns to use as user features. Each entry is a column name
    /// with an optional kind and weight: `col` or `col:cat` (categorical), `col:multi` /
    /// `col:multi(;)` (several values split at `|` / `;`), `col:weighted` (`red:0.7|blue:0.3`),
    /// `col:q5` (numeric, 5 quantile buckets), `col:edges(10;50)` (numeric, fixed edges),
    /// any of them followed by `*2` (column weight 2). Example: `age_group,tags:multi*0.5`.
    #[arg(long, value_name = "COLS", default_value = "", verbatim_doc_comment)]
    pub user_features: String,
    /// Comma-separated product columns to use as item features, with the same syntax as
    /// --user-features (`col`, `col:multi`, `col:multi(;)`, `col:weighted`, `col:q5`,
    /// `col:edges(10;50)`, `…*2`). Example: `category,brand*2,price:q5`.
    #[arg(long, value_name = "COLS", default_value = "", verbatim_doc_comment)]
    pub item_features: String,
    /// Columns bucketed by quantile; every other column is categorical.
    #[arg(long, value_name = "COLS", alias = "numeric-columns")]
    pub numeric_features: Option<String>,
    /// Quantile buckets per numeric column.
    #[arg(long, default_value_t = 5)]
    pub quantiles: usize,
    /// No item identity features (items are described by their metadata only).
    #[arg(long)]
    pub no_identity: bool,
    /// No user identity features.
    #[arg(long)]
    pub no_user_identity: bool,
    /// Identity-anchored feature weighting instead of LightFM's L1 normalisation: identity
    /// weight 1, a row's other features summing to W.
    #[arg(long, value_name = "W")]
    pub metadata_weight: Option<f32>,
    /// Weighted interactions (the `weight` column; repeated pairs summed) instead of binary.
    #[arg(long)]
    pub weighted: bool,
    /// Comma-separated interaction types (exact, trimmed) whose records are negative
    /// examples, e.g. `dislike,return`: signed labels for `--loss logistic` (LightFM's ±1).
    /// Implies weighted interactions: the records of a (user, product) pair are summed with
    /// their signs into one entry of value +1 or −1 (0 when they cancel) and weight |sum|.
    /// Without --weighted the `weight` column is not used (each record counts ±1); with
    /// --weighted each record counts ±weight. WARP, BPR and WARP-kOS train only on the
    /// positive entries. Evaluation counts every test pair as relevant, as LightFM does, so
    /// prefer a test-pairs file of positives to a random split.
    #[arg(long, value_name = "TYPES", verbatim_doc_comment)]
    pub negative_types: Option<String>,
    /// Keep feature rows as they are (LightFM's raw `item_features`/`user_features`: every
    /// feature weight as given) instead of L1-normalising each row.
    #[arg(long, conflicts_with = "metadata_weight")]
    pub no_normalize: bool,
}

/// The JSON configuration of `train --config` (all fields optional), which `tune` writes
/// for its winner: feature columns and weighting, and the model's family, hyper-parameters
/// and epochs. Flags given on the command line win over the file.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_features: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_features: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numeric_features: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantiles: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_identity: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_identity: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_weight: Option<f32>,
    /// `"hybrid"` or `"als"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `warp`, `bpr`, `logistic` or `warp-kos`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub components: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// `adagrad` or `adadelta`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_alpha: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_alpha: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sampled: Option<usize>,
    /// Epochs (ALS: sweeps).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// ALS confidence per unit of weight.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f32>,
    /// ALS L2 penalty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regularization: Option<f32>,
    /// ALS conjugate-gradient steps per feature-embedding update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_cg_steps: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Weight of the content model added to the model's scores (`--content-weight`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_weight: Option<f32>,
}

impl ConfigFile {
    /// Reads and parses a configuration file.
    pub fn read(path: &std::path::Path) -> anyhow::Result<ConfigFile> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --config {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing --config {}", path.display()))
    }

    /// Sets the model flags the file names, except those `given` on the command line
    /// (`given(id)`: the flag's argument id, its field name), checking every name.
    pub fn apply_model(
        &self,
        args: &mut ModelArgs,
        given: &dyn Fn(&str) -> bool,
    ) -> anyhow::Result<()> {
        use clap::ValueEnum;
        fn set<T: Clone>(slot: &mut T, value: &Option<T>, id: &str, given: &dyn Fn(&str) -> bool) {
            if let (Some(v), false) = (value, given(id)) {
                *slot = v.clone();
            }
        }
        if let Some(m) = &self.model {
            if !given("model") {
                args.model = ModelKind::from_str(m, true)
                    .map_err(|_| anyhow::anyhow!("config: unknown model {m:?} (hybrid, als)"))?;
            }
        }
        if let Some(l) = &self.loss {
            if !given("loss") {
                args.loss = LossArg::from_str(l, true).map_err(|_| {
                    anyhow::anyhow!("config: unknown loss {l:?} (warp, bpr, logistic, warp-kos)")
                })?;
            }
        }
        if let Some(s) = &self.schedule {
            if !given("schedule") {
                args.schedule = ScheduleArg::from_str(s, true).map_err(|_| {
                    anyhow::anyhow!("config: unknown schedule {s:?} (adagrad, adadelta)")
                })?;
            }
        }
        set(&mut args.components, &self.components, "components", given);
        set(
            &mut args.learning_rate,
            &self.learning_rate,
            "learning_rate",
            given,
        );
        set(&mut args.item_alpha, &self.item_alpha, "item_alpha", given);
        set(&mut args.user_alpha, &self.user_alpha, "user_alpha", given);
        set(
            &mut args.max_sampled,
            &self.max_sampled,
            "max_sampled",
            given,
        );
        set(&mut args.epochs, &self.epochs, "epochs", given);
        set(&mut args.alpha, &self.alpha, "alpha", given);
        set(
            &mut args.regularization,
            &self.regularization,
            "regularization",
            given,
        );
        set(
            &mut args.feature_cg_steps,
            &self.feature_cg_steps,
            "feature_cg_steps",
            given,
        );
        set(&mut args.seed, &self.seed, "seed", given);
        Ok(())
    }
}

/// Warns on stderr about categorical columns whose values contain `|` or `;`: such a
/// column may list several values and be meant as `col:multi` (or `col:multi(;)`).
pub fn warn_possibly_multi_valued(dataset: &recsys::Dataset) {
    for (side, vocabulary) in [
        ("user", dataset.user_vocabulary()),
        ("item", dataset.item_vocabulary()),
    ] {
        for (column, value, separator) in vocabulary.possibly_multi_valued() {
            let kind = if separator == '|' {
                "multi"
            } else {
                "multi(;)"
            };
            eprintln!(
                "warning: {side} feature column `{column}` is categorical but has values with \
                 `{separator}` (e.g. {value:?}); if it lists several values, write \
                 `{column}:{kind}`"
            );
        }
    }
}

/// Splits a comma-separated list, dropping empty entries.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl FeatureArgs {
    /// The experiment configuration these flags describe (checked: numeric columns must
    /// be among the feature columns).
    pub fn config(&self) -> anyhow::Result<recsys::ExperimentConfig> {
        let mut config = recsys::ExperimentConfig::collaborative()
            .with_user_columns(split_list(&self.user_features))
            .with_item_columns(split_list(&self.item_features));
        if let Some(numeric) = &self.numeric_features {
            config = config.with_numeric_columns(split_list(numeric));
            let (_, unused) = config.numeric_columns_used();
            if !unused.is_empty() {
                anyhow::bail!(
                    "--numeric-features names {} which is not among --user-features/--item-features",
                    unused.join(", ")
                );
            }
        }
        config.quantiles = self.quantiles;
        config.item_identity = !self.no_identity;
        config.user_identity = !self.no_user_identity;
        config.metadata_weight = self.metadata_weight;
        config.normalize = !self.no_normalize;
        let negative_types = self.negative_types();
        if self.weighted || !negative_types.is_empty() {
            let mut weights = recsys::InteractionWeights::new().with_record_weight(self.weighted);
            for t in negative_types {
                weights = weights.with_negative_type(t);
            }
            config.interactions = recsys::InteractionMode::Weighted(weights);
        }
        Ok(config)
    }

    /// The types of `--negative-types`, trimmed, without empty entries.
    pub fn negative_types(&self) -> Vec<String> {
        self.negative_types
            .as_deref()
            .map(split_list)
            .unwrap_or_default()
    }
}

/// The negative interaction types of `config` that no logged interaction of `dataset` has
/// (probably misspelt), in name order.
pub fn unused_negative_types(
    config: &recsys::ExperimentConfig,
    dataset: &recsys::Dataset,
) -> Vec<String> {
    let recsys::InteractionMode::Weighted(weights) = &config.interactions else {
        return Vec::new();
    };
    let logged = dataset.interaction_log().interaction_types();
    weights
        .negative_types
        .iter()
        .filter(|t| !logged.contains(t))
        .cloned()
        .collect()
}

/// Warns on stderr about each [`unused_negative_types`] entry.
pub fn warn_unused_negative_types(config: &recsys::ExperimentConfig, dataset: &recsys::Dataset) {
    for t in unused_negative_types(config, dataset) {
        eprintln!(
            "warning: negative interaction type {t:?} (--negative-types) occurs in no \
             interaction record; no record is a negative example because of it"
        );
    }
}

/// A store on `uri` (database `database`, else the URI's, else "recsys"); the error names
/// the URI with its password redacted. Blocking: call it off async workers.
pub fn connect_store(
    uri: &str,
    database: Option<&str>,
) -> anyhow::Result<recsys::store::mongo::MongoStore> {
    use anyhow::Context;
    use recsys::store::mongo::{redact_uri, MongoStore};
    let store = MongoStore::connect(uri.trim())
        .with_context(|| format!("connecting to {}", redact_uri(uri)))?;
    Ok(match database {
        Some(db) => store.with_database(db),
        None => store,
    })
}

/// The exit code of an example's `run`: errors are printed with their causes.
///
/// A closed standard output (`… | head`) ends the program quietly with success, as `cat`
/// does, when the example writes through a handle rather than `println!`.
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        features: FeatureArgs,
    }

    fn config(args: &[&str]) -> recsys::ExperimentConfig {
        let flags =
            Flags::try_parse_from(std::iter::once("test").chain(args.iter().copied())).unwrap();
        flags.features.config().unwrap()
    }

    #[test]
    fn negative_types_switch_to_signed_weighted_interactions() {
        assert_eq!(config(&[]).interactions, recsys::InteractionMode::Binary);
        let counted = recsys::InteractionWeights::new()
            .with_record_weight(false)
            .with_negative_type("dislike")
            .with_negative_type("return");
        assert_eq!(
            config(&["--negative-types", " dislike,,return "]).interactions,
            recsys::InteractionMode::Weighted(counted.clone())
        );
        assert_eq!(
            config(&["--negative-types", "dislike,return", "--weighted"]).interactions,
            recsys::InteractionMode::Weighted(counted.with_record_weight(true))
        );
        assert_eq!(
            config(&["--weighted"]).interactions,
            recsys::InteractionMode::Weighted(recsys::InteractionWeights::new())
        );
    }

    #[test]
    fn negative_types_missing_from_the_data_are_reported() {
        let record = |kind: &str| recsys::InteractionRecord {
            user_id: "u".into(),
            product_id: "p".into(),
            interaction_type: Some(kind.to_string()),
            weight: None,
            timestamp: None,
        };
        let mut source = recsys::InMemorySource {
            users: Vec::new(),
            products: Vec::new(),
            interactions: vec![record("purchase"), record(" dislike ")],
        };
        let config = config(&["--negative-types", "return,dislike,refund"]);
        let dataset = recsys::Dataset::from_source(
            &mut source,
            config.user_spec().unwrap(),
            config.item_spec().unwrap(),
        )
        .unwrap();
        assert_eq!(
            unused_negative_types(&config, &dataset),
            ["refund", "return"]
        );
        let binary = recsys::ExperimentConfig::collaborative();
        assert!(unused_negative_types(&binary, &dataset).is_empty());
    }
}

#[cfg(test)]
mod config_tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        model: ModelArgs,
    }

    /// A `tune` winner's file sets the model flags, except those given on the command line;
    /// bad names are errors that say what is accepted.
    #[test]
    fn a_config_file_sets_the_model_flags_not_given() {
        let file: ConfigFile = serde_json::from_str(
            r#"{"model": "als", "components": 64, "alpha": 5, "regularization": 0.1,
                "epochs": 7, "loss": "warp-kos", "learning_rate": 0.02, "seed": 9}"#,
        )
        .unwrap();
        let mut args = Cli::parse_from(["x", "--components", "16"]).model;
        file.apply_model(&mut args, &|id| id == "components")
            .unwrap();
        assert_eq!(args.model, ModelKind::Als);
        assert_eq!(args.components, 16, "the flag wins");
        assert_eq!(
            (args.alpha, args.regularization, args.epochs),
            (5.0, 0.1, 7)
        );
        assert_eq!(args.loss().name(), "warp-kos");
        assert_eq!((args.learning_rate, args.seed), (0.02, 9));

        let bad: ConfigFile = serde_json::from_str(r#"{"loss": "hinge"}"#).unwrap();
        let err = bad.apply_model(&mut args, &|_| false).unwrap_err();
        assert!(err.to_string().contains("warp, bpr"), "{err}");
        let unknown = serde_json::from_str::<ConfigFile>(r#"{"epoch": 3}"#).unwrap_err();
        assert!(unknown.to_string().contains("unknown field"), "{unknown}");
    }
}
