//! Model selection by successive halving on a validation split carved from the training
//! interactions (never the test pairs).
//!
//! Every candidate — a model family with its hyper-parameters, on one of several feature
//! configurations — trains a few epochs and is scored on the validation split; the better
//! third (`eta` = 3) trains on to three times as many epochs, and so on up to
//! `max_epochs`. Training continues from where the last rung stopped (`fit_partial`), so a
//! survivor's epochs are never trained twice. The winner is the best (candidate, epochs)
//! pair seen at any rung.
//!
//! One candidate is the **baseline** (plain collaborative filtering, by the caller's
//! choice): it is never eliminated, so it is trained to the full budget and the winner's
//! validation precision is never below the baseline's at any epoch count it was scored at.
//!
//! ```
//! use recsys::core::{Hyperparameters, Loss};
//! use recsys::experiment::{Experiment, ExperimentConfig, Split};
//! use recsys::tune::{successive_halving, Candidate, CandidateParams, HalvingOptions, TuneData};
//!
//! let mut shop = recsys::demo::generate(&recsys::demo::DemoConfig { users: 120, products: 60, interactions: 2400, ..Default::default() });
//! let split = Split::Random { test_fraction: 0.2, seed: 1 };
//! let experiment = Experiment::load(&mut shop, &ExperimentConfig::collaborative(), split)?;
//! let (train, valid) = experiment.validation_split(0.2, 7)?;
//! let data = [TuneData { dataset: experiment.dataset(), train: &train, valid: &valid }];
//! let hybrid = |lr: f32| Hyperparameters::builder().loss(Loss::Warp).learning_rate(lr).seed(3).build();
//! let candidates = vec![
//!     Candidate { label: "cf".into(), features: 0, params: CandidateParams::Hybrid(hybrid(0.05)?) },
//!     Candidate { label: "fast".into(), features: 0, params: CandidateParams::Hybrid(hybrid(0.2)?) },
//! ];
//! let options = HalvingOptions { min_epochs: 1, max_epochs: 3, ..HalvingOptions::default() };
//! let report = successive_halving(&data, &candidates, 0, &options, |_| {})?;
//! let baseline_best = report.trials[0].best().unwrap().precision;
//! assert!(report.winner.precision >= baseline_best);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::time::{Duration, Instant};

use recsys_core::{
    evaluate, AlsFitOptions, AlsModel, AlsParams, CoreError, EvalOptions, FitOptions, HybridModel,
    Hyperparameters, Interactions, Model,
};
use recsys_features::Dataset;

use crate::experiment::{ExperimentError, Result};

/// One feature configuration's data: its dataset (feature matrices) and the training and
/// validation interactions carved from the experiment's training part.
#[derive(Debug, Clone, Copy)]
pub struct TuneData<'a> {
    /// The dataset whose feature matrices the models use.
    pub dataset: &'a Dataset,
    /// What the candidates train on.
    pub train: &'a Interactions,
    /// What they are scored on (training pairs excluded from the ranking).
    pub valid: &'a Interactions,
}

/// A model family with its hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum CandidateParams {
    /// The hybrid model (epochs are SGD epochs).
    Hybrid(Hyperparameters),
    /// The ALS model (epochs are sweeps).
    Als(AlsParams),
}

/// One candidate of the search.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// A short description for tables.
    pub label: String,
    /// Index into the [`TuneData`] slice: which feature configuration it trains on.
    pub features: usize,
    /// Family and hyper-parameters.
    pub params: CandidateParams,
}

impl Candidate {
    /// A fresh model of this candidate trained `epochs` on `train` with `dataset`'s feature
    /// matrices (e.g. the winner, retrained on the whole training part).
    pub fn train(
        &self,
        dataset: &Dataset,
        train: &Interactions,
        epochs: usize,
        threads: usize,
    ) -> Result<Model> {
        let mut run = Running::new(dataset, &self.params)?;
        run.train_to(train, epochs, threads)?;
        Ok(run.model)
    }
}

/// Settings of [`successive_halving`].
#[derive(Debug, Clone, PartialEq)]
pub struct HalvingOptions {
    /// Epochs of the first rung (>= 1).
    pub min_epochs: usize,
    /// Epochs of the last rung (>= `min_epochs`).
    pub max_epochs: usize,
    /// Rung growth and survival ratio (>= 2): `1/eta` of the candidates survive a rung, and
    /// the next rung trains to `eta` times the epochs.
    pub eta: usize,
    /// Cut-off of the validation precision.
    pub k: usize,
    /// Threads for training and evaluation.
    pub threads: usize,
    /// Training steps run at the same time (1..=`threads`), each on `threads / parallel`
    /// threads. With as many steps as threads every model trains on one thread, so the
    /// search is bit-reproducible for a seed.
    pub parallel: usize,
    /// Wall-time budget: once spent, no further training starts and the winner is chosen
    /// among what was scored.
    pub time_budget: Option<Duration>,
}

impl Default for HalvingOptions {
    /// 2 → 6 → 18 → 30 epochs, `eta` 3, precision at 10, one thread, no time limit.
    fn default() -> Self {
        HalvingOptions {
            min_epochs: 2,
            max_epochs: 30,
            eta: 3,
            k: 10,
            threads: 1,
            parallel: 1,
            time_budget: None,
        }
    }
}

/// One validation score of a trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Epochs trained when scored.
    pub epochs: usize,
    /// Validation precision at `k`.
    pub precision: f64,
    /// Validation AUC.
    pub auc: f64,
    /// Training time of this rung.
    pub train_time: Duration,
}

/// What happened to one candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Index of the candidate.
    pub candidate: usize,
    /// Its scores, one per rung it reached.
    pub scores: Vec<Score>,
    /// Why it stopped early: eliminated at a rung, failed (e.g. diverged), or the budget.
    pub stopped: Option<String>,
}

impl Trial {
    /// Its best score (highest precision, the fewest epochs on ties).
    pub fn best(&self) -> Option<Score> {
        self.scores
            .iter()
            .copied()
            .reduce(|a, b| if b.precision > a.precision { b } else { a })
    }
}

/// The winner: a candidate and the epochs at which it scored best.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Winner {
    /// Index of the candidate.
    pub candidate: usize,
    /// Epochs to train it for.
    pub epochs: usize,
    /// Its validation precision there.
    pub precision: f64,
    /// Its validation AUC there.
    pub auc: f64,
}

/// The outcome of a search.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneReport {
    /// Every candidate's trial, in candidate order.
    pub trials: Vec<Trial>,
    /// The best (candidate, epochs) seen.
    pub winner: Winner,
    /// Whether the time budget ended the search.
    pub out_of_time: bool,
    /// Wall time of the search.
    pub elapsed: Duration,
}

/// Progress of a search, reported as each training step finishes.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The candidate about to train.
    pub candidate: &'a Candidate,
    /// Its index.
    pub index: usize,
    /// The rung's epochs.
    pub epochs: usize,
    /// Training steps done so far and planned in this rung.
    pub done: usize,
    /// Steps of this rung.
    pub of: usize,
}

/// What one training step of a rung came to.
enum Outcome {
    Scored(Score),
    Failed(String),
    OutOfTime,
}

/// Runs `step` on every job, `parallel` at a time (on the calling thread when 1), handing
/// each result to `done` on the calling thread as it arrives.
fn run_jobs<S, D>(jobs: Vec<(usize, Option<Running>)>, parallel: usize, step: &S, mut done: D)
where
    S: Fn(usize, Option<Running>) -> (Option<Running>, Outcome) + Sync,
    D: FnMut(usize, Option<Running>, Outcome),
{
    if parallel <= 1 {
        for (c, run) in jobs {
            let (run, outcome) = step(c, run);
            done(c, run, outcome);
        }
        return;
    }
    let queue = std::sync::Mutex::new(jobs.into_iter());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            let (queue, tx) = (&queue, tx.clone());
            scope.spawn(move || loop {
                let job = queue.lock().expect("queue lock").next();
                let Some((c, run)) = job else { break };
                let (run, outcome) = step(c, run);
                if tx.send((c, run, outcome)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (c, run, outcome) in rx {
            done(c, run, outcome);
        }
    });
}

/// A candidate's model, trained some epochs.
struct Running {
    model: Model,
    epochs: usize,
}

impl Running {
    fn new(dataset: &Dataset, params: &CandidateParams) -> Result<Running> {
        let (u, i) = (dataset.user_features(), dataset.item_features());
        let model = match params {
            CandidateParams::Hybrid(p) => Model::Hybrid(HybridModel::new(p.clone(), u, i)?),
            CandidateParams::Als(p) => Model::Als(AlsModel::new(p.clone(), u, i)?),
        };
        Ok(Running { model, epochs: 0 })
    }

    /// Trains up to `epochs` in total.
    fn train_to(&mut self, train: &Interactions, epochs: usize, threads: usize) -> Result<()> {
        let more = epochs.saturating_sub(self.epochs);
        if more > 0 {
            match &mut self.model {
                Model::Hybrid(m) => {
                    m.fit_partial(train, FitOptions::epochs(more).threads(threads))?
                }
                Model::Als(m) => {
                    m.fit_partial(train, AlsFitOptions::iterations(more).threads(threads))?;
                }
            }
            self.epochs = epochs;
        }
        Ok(())
    }
}

/// Runs the search (see the [module documentation](self)); `baseline` is the index of the
/// candidate that is never eliminated. `progress` is called as each training step
/// finishes, on the calling thread.
pub fn successive_halving(
    data: &[TuneData<'_>],
    candidates: &[Candidate],
    baseline: usize,
    options: &HalvingOptions,
    mut progress: impl FnMut(&Progress<'_>),
) -> Result<TuneReport> {
    let invalid = |name: &'static str, value: String, reason: &'static str| {
        Err(ExperimentError::from(CoreError::InvalidHyperparameter {
            name,
            value,
            reason,
        }))
    };
    if candidates.is_empty() {
        return Err(CoreError::Empty("the search needs at least one candidate").into());
    }
    if baseline >= candidates.len() {
        return invalid("baseline", baseline.to_string(), "must index a candidate");
    }
    if let Some(c) = candidates.iter().find(|c| c.features >= data.len()) {
        return invalid(
            "features",
            format!("{} (candidate {})", c.features, c.label),
            "must index the tuning data",
        );
    }
    if options.min_epochs == 0 || options.max_epochs < options.min_epochs {
        return invalid(
            "min_epochs",
            format!("{}..{}", options.min_epochs, options.max_epochs),
            "needs 1 <= min_epochs <= max_epochs",
        );
    }
    if options.eta < 2 {
        return invalid("eta", options.eta.to_string(), "must be >= 2");
    }
    if options.parallel == 0 || options.parallel > options.threads {
        return invalid(
            "parallel",
            format!("{} with {} threads", options.parallel, options.threads),
            "must be in 1..=threads",
        );
    }
    let per_trial = options.threads / options.parallel;
    let eval = EvalOptions {
        k: options.k,
        threads: per_trial,
        candidates: None,
    };
    let started = Instant::now();
    let mut trials: Vec<Trial> = (0..candidates.len())
        .map(|candidate| Trial {
            candidate,
            scores: Vec::new(),
            stopped: None,
        })
        .collect();
    let mut running: Vec<Option<Running>> = (0..candidates.len()).map(|_| None).collect();
    let mut alive: Vec<usize> = (0..candidates.len()).collect();
    let mut rung_epochs = options.min_epochs;
    let mut out_of_time = false;
    'rungs: loop {
        // This rung's training steps, `parallel` at a time, each on `threads / parallel`
        // threads; results (and progress) arrive on this thread as steps finish.
        let jobs: Vec<(usize, Option<Running>)> =
            alive.iter().map(|&c| (c, running[c].take())).collect();
        let of = jobs.len();
        let step = |c: usize, run: Option<Running>| -> (Option<Running>, Outcome) {
            if options.time_budget.is_some_and(|b| started.elapsed() >= b) {
                return (run, Outcome::OutOfTime);
            }
            let candidate = &candidates[c];
            let d = &data[candidate.features];
            let mut run = match run {
                Some(r) => r,
                None => match Running::new(d.dataset, &candidate.params) {
                    Ok(r) => r,
                    Err(e) => return (None, Outcome::Failed(e.to_string())),
                },
            };
            let t = Instant::now();
            if let Err(e) = run.train_to(d.train, rung_epochs, per_trial) {
                return (None, Outcome::Failed(e.to_string()));
            }
            let train_time = t.elapsed();
            match evaluate(&run.model, d.valid, Some(d.train), &eval) {
                Ok(m) => (
                    Some(run),
                    Outcome::Scored(Score {
                        epochs: rung_epochs,
                        precision: m.precision_at_k,
                        auc: m.auc,
                        train_time,
                    }),
                ),
                Err(e) => (None, Outcome::Failed(e.to_string())),
            }
        };
        let mut done = 0;
        let mut rung_out_of_time = false;
        run_jobs(jobs, options.parallel, &step, |c, run, outcome| {
            running[c] = run;
            match outcome {
                Outcome::Scored(score) => trials[c].scores.push(score),
                Outcome::Failed(e) => {
                    trials[c].stopped = Some(format!("failed at {rung_epochs} epochs: {e}"));
                }
                Outcome::OutOfTime => rung_out_of_time = true,
            }
            progress(&Progress {
                candidate: &candidates[c],
                index: c,
                epochs: rung_epochs,
                done,
                of,
            });
            done += 1;
        });
        if rung_out_of_time {
            out_of_time = true;
            break 'rungs;
        }
        alive.retain(|&c| trials[c].stopped.is_none());
        if rung_epochs >= options.max_epochs || alive.is_empty() {
            break;
        }
        // The better 1/eta survive (ranked by this rung's score), and always the baseline.
        let mut ranked = alive.clone();
        let last = |c: usize| trials[c].scores.last().map_or(f64::MIN, |s| s.precision);
        ranked.sort_by(|&a, &b| last(b).total_cmp(&last(a)).then(a.cmp(&b)));
        let keep = alive.len().div_ceil(options.eta).max(1);
        for &c in &ranked[keep..] {
            if c != baseline {
                trials[c].stopped = Some(format!("eliminated after {rung_epochs} epochs"));
                running[c] = None;
            }
        }
        alive.retain(|&c| trials[c].stopped.is_none());
        rung_epochs = (rung_epochs * options.eta).min(options.max_epochs);
    }
    if out_of_time {
        for c in alive {
            trials[c]
                .stopped
                .get_or_insert_with(|| "stopped by the time budget".into());
        }
    }
    let winner = trials
        .iter()
        .filter_map(|t| t.best().map(|s| (t.candidate, s)))
        .reduce(|a, b| if b.1.precision > a.1.precision { b } else { a })
        .map(|(candidate, s)| Winner {
            candidate,
            epochs: s.epochs,
            precision: s.precision,
            auc: s.auc,
        })
        .ok_or(CoreError::Empty(
            "no candidate was scored (every one failed, or the time budget was spent first)",
        ))?;
    Ok(TuneReport {
        trials,
        winner,
        out_of_time,
        elapsed: started.elapsed(),
    })
}
