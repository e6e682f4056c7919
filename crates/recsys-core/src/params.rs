//! Hyper-parameters and their checked builder.

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Loss {
    /// Pointwise logistic loss: positives (`value > 0`) against explicit negatives (`value <= 0`).
    Logistic,
    /// Bayesian Personalised Ranking: a positive against one negative sampled from the
    /// interaction list (so negatives follow item popularity, as in LightFM).
    Bpr,
    /// Weighted Approximate-Rank Pairwise loss: sample uniformly random negatives until one
    /// violates the margin; the number of draws estimates the positive's rank.
    Warp,
    /// k-th order statistic WARP: draw `n` of the user's positives, train on the `k`-th best.
    WarpKos {
        /// Which order statistic of the sampled positives to train on (1 = best).
        k: usize,
        /// How many positives to sample per user.
        n: usize,
    },
}

impl Loss {
    /// Parses `logistic`, `bpr`, `warp`, `warp-kos` (k = 5, n = 10, LightFM's defaults).
    pub fn parse(name: &str) -> Option<Loss> {
        match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "logistic" => Some(Loss::Logistic),
            "bpr" => Some(Loss::Bpr),
            "warp" => Some(Loss::Warp),
            "warp-kos" | "kos" => Some(Loss::WarpKos { k: 5, n: 10 }),
            _ => None,
        }
    }

    /// Short lower-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Loss::Logistic => "logistic",
            Loss::Bpr => "bpr",
            Loss::Warp => "warp",
            Loss::WarpKos { .. } => "warp-kos",
        }
    }
}

/// Per-parameter adaptive learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Schedule {
    /// Adagrad: `lr / sqrt(1 + sum of squared gradients)`.
    Adagrad,
    /// Adadelta with decay `rho` and `epsilon`.
    Adadelta {
        /// Decay of the running averages, in (0, 1).
        rho: f32,
        /// Numerical floor, > 0.
        epsilon: f32,
    },
}

/// Validated hyper-parameters. Build them with [`Hyperparameters::builder`].
///
/// Deserialising validates them like [`HyperparametersBuilder::build`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "HyperparametersData")]
pub struct Hyperparameters {
    pub(crate) no_components: usize,
    pub(crate) loss: Loss,
    pub(crate) schedule: Schedule,
    pub(crate) learning_rate: f32,
    pub(crate) item_alpha: f32,
    pub(crate) user_alpha: f32,
    pub(crate) max_sampled: usize,
    pub(crate) seed: u64,
}

/// The serialised form of [`Hyperparameters`], before validation.
#[derive(Deserialize)]
pub(crate) struct HyperparametersData {
    no_components: usize,
    loss: Loss,
    schedule: Schedule,
    learning_rate: f32,
    item_alpha: f32,
    user_alpha: f32,
    max_sampled: usize,
    seed: u64,
}

impl TryFrom<HyperparametersData> for Hyperparameters {
    type Error = CoreError;

    fn try_from(d: HyperparametersData) -> Result<Self> {
        HyperparametersBuilder {
            p: Hyperparameters {
                no_components: d.no_components,
                loss: d.loss,
                schedule: d.schedule,
                learning_rate: d.learning_rate,
                item_alpha: d.item_alpha,
                user_alpha: d.user_alpha,
                max_sampled: d.max_sampled,
                seed: d.seed,
            },
        }
        .build()
    }
}

impl Default for Hyperparameters {
    fn default() -> Self {
        HyperparametersBuilder::default()
            .build()
            .expect("defaults are valid")
    }
}

impl Hyperparameters {
    /// A builder initialised with LightFM's defaults (10 components, logistic loss, adagrad,
    /// learning rate 0.05, no L2, `max_sampled` 10) and seed 42.
    pub fn builder() -> HyperparametersBuilder {
        HyperparametersBuilder::default()
    }

    /// Latent dimensionality.
    pub fn no_components(&self) -> usize {
        self.no_components
    }
    /// The loss.
    pub fn loss(&self) -> Loss {
        self.loss
    }
    /// The learning schedule.
    pub fn schedule(&self) -> Schedule {
        self.schedule
    }
    /// Initial learning rate (adagrad).
    pub fn learning_rate(&self) -> f32 {
        self.learning_rate
    }
    /// L2 penalty on item feature parameters.
    pub fn item_alpha(&self) -> f32 {
        self.item_alpha
    }
    /// L2 penalty on user feature parameters.
    pub fn user_alpha(&self) -> f32 {
        self.user_alpha
    }
    /// Maximum negatives drawn per positive by WARP.
    pub fn max_sampled(&self) -> usize {
        self.max_sampled
    }
    /// The random seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Turns these parameters back into a builder (to change one value).
    pub fn to_builder(&self) -> HyperparametersBuilder {
        HyperparametersBuilder { p: self.clone() }
    }
}

/// Builder for [`Hyperparameters`]; [`HyperparametersBuilder::build`] validates every value.
#[derive(Debug, Clone)]
pub struct HyperparametersBuilder {
    p: Hyperparameters,
}

impl Default for HyperparametersBuilder {
    fn default() -> Self {
        HyperparametersBuilder {
            p: Hyperparameters {
                no_components: 10,
                loss: Loss::Logistic,
                schedule: Schedule::Adagrad,
                learning_rate: 0.05,
                item_alpha: 0.0,
                user_alpha: 0.0,
                max_sampled: 10,
                seed: 42,
            },
        }
    }
}

impl HyperparametersBuilder {
    /// Latent dimensionality (> 0).
    pub fn no_components(mut self, n: usize) -> Self {
        self.p.no_components = n;
        self
    }
    /// The loss.
    pub fn loss(mut self, loss: Loss) -> Self {
        self.p.loss = loss;
        self
    }
    /// The learning schedule.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.p.schedule = schedule;
        self
    }
    /// Learning rate for adagrad (> 0, finite).
    pub fn learning_rate(mut self, lr: f32) -> Self {
        self.p.learning_rate = lr;
        self
    }
    /// L2 penalty on item parameters (>= 0).
    pub fn item_alpha(mut self, a: f32) -> Self {
        self.p.item_alpha = a;
        self
    }
    /// L2 penalty on user parameters (>= 0).
    pub fn user_alpha(mut self, a: f32) -> Self {
        self.p.user_alpha = a;
        self
    }
    /// Maximum number of negatives WARP draws per positive (> 0).
    pub fn max_sampled(mut self, n: usize) -> Self {
        self.p.max_sampled = n;
        self
    }
    /// Random seed for initialisation, shuffling and sampling.
    pub fn seed(mut self, seed: u64) -> Self {
        self.p.seed = seed;
        self
    }

    /// Validates and returns the parameters, or an error naming the first bad value.
    pub fn build(self) -> Result<Hyperparameters> {
        let p = self.p;
        let bad = invalid_hyperparameter;
        check_no_components(p.no_components)?;
        if !(p.learning_rate.is_finite() && p.learning_rate > 0.0) {
            return bad(
                "learning_rate",
                p.learning_rate.to_string(),
                "must be finite and > 0",
            );
        }
        if !(p.item_alpha.is_finite() && p.item_alpha >= 0.0) {
            return bad(
                "item_alpha",
                p.item_alpha.to_string(),
                "must be finite and >= 0",
            );
        }
        if !(p.user_alpha.is_finite() && p.user_alpha >= 0.0) {
            return bad(
                "user_alpha",
                p.user_alpha.to_string(),
                "must be finite and >= 0",
            );
        }
        if p.max_sampled == 0 {
            return bad("max_sampled", "0".into(), "must be >= 1");
        }
        if let Loss::WarpKos { k, n } = p.loss {
            if n == 0 {
                return bad("loss.n", n.to_string(), "WARP-kOS n must be >= 1");
            }
            if k == 0 || k > n {
                return bad("loss.k", k.to_string(), "WARP-kOS k must be in 1..=n");
            }
        }
        if let Schedule::Adadelta { rho, epsilon } = p.schedule {
            if !(rho > 0.0 && rho < 1.0) {
                return bad(
                    "schedule.rho",
                    rho.to_string(),
                    "adadelta rho must be in (0, 1)",
                );
            }
            if !(epsilon.is_finite() && epsilon > 0.0) {
                return bad(
                    "schedule.epsilon",
                    epsilon.to_string(),
                    "adadelta epsilon must be finite and > 0",
                );
            }
        }
        Ok(p)
    }
}

/// `Err(CoreError::InvalidHyperparameter)` naming `name`, the rejected `value` and what a
/// valid one looks like: the error every hyper-parameter builder returns.
pub(crate) fn invalid_hyperparameter<T>(
    name: &'static str,
    value: String,
    reason: &'static str,
) -> Result<T> {
    Err(CoreError::InvalidHyperparameter {
        name,
        value,
        reason,
    })
}

/// The latent dimension every model family accepts: 1 to 4096 components.
pub(crate) fn check_no_components(no_components: usize) -> Result<()> {
    if no_components == 0 || no_components > 4096 {
        return invalid_hyperparameter(
            "no_components",
            no_components.to_string(),
            "must be in 1..=4096",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_lightfm() {
        let p = Hyperparameters::default();
        assert_eq!(p.no_components(), 10);
        assert_eq!(p.learning_rate(), 0.05);
        assert_eq!(p.max_sampled(), 10);
        assert_eq!(p.loss(), Loss::Logistic);
    }

    #[test]
    fn bad_values_are_named() {
        let e = Hyperparameters::builder()
            .learning_rate(-1.0)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("learning_rate"), "{e}");
        let e = Hyperparameters::builder()
            .no_components(0)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("no_components"));
        let e = Hyperparameters::builder()
            .loss(Loss::WarpKos { k: 11, n: 10 })
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("loss.k"));
        let e = Hyperparameters::builder()
            .schedule(Schedule::Adadelta {
                rho: 1.5,
                epsilon: 1e-6,
            })
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("rho"));
        let e = Hyperparameters::builder()
            .item_alpha(f32::NAN)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("item_alpha"));
    }

    #[test]
    fn loss_names_round_trip() {
        for l in [
            Loss::Logistic,
            Loss::Bpr,
            Loss::Warp,
            Loss::WarpKos { k: 5, n: 10 },
        ] {
            assert_eq!(Loss::parse(l.name()), Some(l));
        }
        assert_eq!(Loss::parse("nope"), None);
    }
}
