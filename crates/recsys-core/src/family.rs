//! [`Model`]: a trained model of either family, for code that stores, serves or evaluates
//! models without caring which one it holds (the artifact bundle, the server).

use serde::{Deserialize, Serialize};

use crate::als::{AlsData, AlsModel, AlsParams};
use crate::error::Result;
use crate::matrix::FeatureMatrix;
use crate::model::{HybridModel, ModelData};
use crate::params::Hyperparameters;
use crate::repr::{ItemRepresentations, Representation};
use crate::scorer::Factorised;

/// A trained model of either family. Both are factorisation models — a user or item is the
/// sum of its features' embeddings — so everything downstream of the representations
/// (scoring, similarity, fold-in, cold start from attributes) is the same; the families
/// differ in how they are trained.
///
/// Serialising writes the family's saved record (see [`crate::MODEL_RECORD_VERSION`])
/// tagged with the family; deserialising validates it.
///
/// ```
/// use recsys_core::{AlsModel, AlsParams, HybridModel, Hyperparameters, Model, Scorer, UserQuery};
///
/// let hybrid: Model = HybridModel::collaborative(Hyperparameters::builder().build()?, 3, 4)?.into();
/// let als: Model = AlsModel::collaborative(AlsParams::builder().build()?, 3, 4)?.into();
/// for model in [hybrid, als] {
///     let mut scores = Vec::new();
///     model.score_all(UserQuery::Known(1), &mut scores)?;
///     assert_eq!(scores.len(), 4);
///     let json = serde_json::to_string(&model).unwrap();
///     assert_eq!(serde_json::from_str::<Model>(&json).unwrap(), model);
/// }
/// # Ok::<(), recsys_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Model {
    /// The hybrid (LightFM-style) model trained by SGD on a ranking loss.
    Hybrid(HybridModel),
    /// The implicit-feedback ALS model.
    Als(AlsModel),
}

/// The hyper-parameters of either family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum ModelParams {
    /// A hybrid model's.
    Hybrid(Hyperparameters),
    /// An ALS model's.
    Als(AlsParams),
}

impl ModelParams {
    /// Latent dimensionality.
    pub fn no_components(&self) -> usize {
        match self {
            ModelParams::Hybrid(p) => p.no_components(),
            ModelParams::Als(p) => p.no_components(),
        }
    }

    /// One line for people: the family, its main settings and the components, e.g.
    /// `hybrid, warp loss, 30 components` or `als, alpha 1, regularization 0.01, 30 components`.
    pub fn describe(&self) -> String {
        match self {
            ModelParams::Hybrid(p) => format!(
                "hybrid, {} loss, {} components",
                p.loss().name(),
                p.no_components()
            ),
            ModelParams::Als(p) => format!(
                "als, alpha {}, regularization {}, {} components",
                p.alpha(),
                p.regularization(),
                p.no_components()
            ),
        }
    }
}

/// The tagged record as read, before validation.
#[derive(Deserialize)]
enum ModelVariantData {
    Hybrid(Box<ModelData>),
    Als(Box<AlsData>),
}

impl<'de> Deserialize<'de> for Model {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Model::deserialize_validated(d)?.map_err(serde::de::Error::custom)
    }
}

impl From<HybridModel> for Model {
    fn from(m: HybridModel) -> Self {
        Model::Hybrid(m)
    }
}

impl From<AlsModel> for Model {
    fn from(m: AlsModel) -> Self {
        Model::Als(m)
    }
}

impl Model {
    /// Deserialises like the `Deserialize` impl, but returns a model that decodes and is
    /// invalid as `Ok(Err(reason))` (see [`HybridModel::deserialize_validated`]).
    pub fn deserialize_validated<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Result<Self>, D::Error> {
        Ok(match ModelVariantData::deserialize(d)? {
            ModelVariantData::Hybrid(m) => HybridModel::try_from(*m).map(Model::Hybrid),
            ModelVariantData::Als(m) => AlsModel::try_from(*m).map(Model::Als),
        })
    }

    /// `"hybrid"` or `"als"`.
    pub fn family(&self) -> &'static str {
        match self {
            Model::Hybrid(_) => "hybrid",
            Model::Als(_) => "als",
        }
    }

    /// The hyper-parameters.
    pub fn params(&self) -> ModelParams {
        match self {
            Model::Hybrid(m) => ModelParams::Hybrid(m.params().clone()),
            Model::Als(m) => ModelParams::Als(m.params().clone()),
        }
    }

    /// The hybrid model, if that is the family.
    pub fn as_hybrid(&self) -> Option<&HybridModel> {
        match self {
            Model::Hybrid(m) => Some(m),
            Model::Als(_) => None,
        }
    }

    /// The ALS model, if that is the family.
    pub fn as_als(&self) -> Option<&AlsModel> {
        match self {
            Model::Als(m) => Some(m),
            Model::Hybrid(_) => None,
        }
    }

    /// Latent dimensionality.
    pub fn no_components(&self) -> usize {
        Factorised::no_components(self)
    }

    /// Number of users.
    pub fn n_users(&self) -> usize {
        self.user_features().n_rows()
    }

    /// Number of items.
    pub fn n_items(&self) -> usize {
        self.item_features().n_rows()
    }

    /// The user feature matrix.
    pub fn user_features(&self) -> &FeatureMatrix {
        match self {
            Model::Hybrid(m) => m.user_features(),
            Model::Als(m) => m.user_features(),
        }
    }

    /// The item feature matrix.
    pub fn item_features(&self) -> &FeatureMatrix {
        match self {
            Model::Hybrid(m) => m.item_features(),
            Model::Als(m) => m.item_features(),
        }
    }

    /// Training passes so far: epochs of the hybrid model, sweeps of ALS.
    pub fn epochs_trained(&self) -> usize {
        match self {
            Model::Hybrid(m) => m.epochs_trained(),
            Model::Als(m) => m.iterations_trained(),
        }
    }

    /// Whether training can continue from the model exactly as it stands: the hybrid model
    /// needs its optimiser state ([`HybridModel::has_training_state`]); ALS needs nothing
    /// beyond its factors, so always.
    pub fn has_training_state(&self) -> bool {
        match self {
            Model::Hybrid(m) => m.has_training_state(),
            Model::Als(_) => true,
        }
    }

    /// Frees what only continued training needs ([`HybridModel::drop_training_state`]; ALS
    /// has nothing to drop).
    pub fn drop_training_state(&mut self) {
        if let Model::Hybrid(m) = self {
            m.drop_training_state();
        }
    }

    /// Checks the parts agree ([`HybridModel::validate`]; an ALS model is checked when it is
    /// built or deserialised and cannot become inconsistent).
    pub fn validate(&self) -> Result<()> {
        match self {
            Model::Hybrid(m) => m.validate(),
            Model::Als(_) => Ok(()),
        }
    }

    /// The item representations (computed once).
    pub fn item_representations(&self) -> &ItemRepresentations {
        Factorised::item_representations(self)
    }

    /// Item cold start for either family: [`HybridModel::refit_cold_start`] or
    /// [`AlsModel::refit_cold_start`].
    pub fn refit_cold_start(
        &mut self,
        train: &crate::Interactions,
        options: &crate::ColdStartRefit,
    ) -> Result<crate::ColdStartReport> {
        match self {
            Model::Hybrid(m) => m.refit_cold_start(train, options),
            Model::Als(m) => m.refit_cold_start(train, options),
        }
    }

    /// The representation of a known user.
    pub fn user_representation(&self, user: usize) -> Result<Representation> {
        Factorised::user_representation(self, user)
    }

    /// The representation of an item the model was not trained on, from its feature row
    /// (item cold start): [`HybridModel::item_representation_from_features`] or
    /// [`AlsModel::item_representation_from_features`].
    pub fn item_representation_from_features(
        &self,
        row: &[(usize, f32)],
    ) -> Result<Representation> {
        Factorised::item_representation_from_features(self, row)
    }

    /// Scores of every item for a known user.
    pub fn predict_all(&self, user: usize) -> Result<Vec<f32>> {
        Factorised::predict_every_item(self, user)
    }
}

impl Factorised for Model {
    const NAME: &'static str = "the model needs a user (id, features or representation)";

    fn no_components(&self) -> usize {
        match self {
            Model::Hybrid(m) => m.no_components(),
            Model::Als(m) => m.no_components(),
        }
    }

    fn item_representations(&self) -> &ItemRepresentations {
        match self {
            Model::Hybrid(m) => m.item_representations(),
            Model::Als(m) => m.item_representations(),
        }
    }

    fn user_representation(&self, user: usize) -> Result<Representation> {
        match self {
            Model::Hybrid(m) => m.user_representation(user),
            Model::Als(m) => m.user_representation(user),
        }
    }

    fn user_representation_from_features(&self, row: &[(usize, f32)]) -> Result<Representation> {
        match self {
            Model::Hybrid(m) => m.user_representation_from_features(row),
            Model::Als(m) => m.user_representation_from_features(row),
        }
    }

    fn item_representation_from_features(&self, row: &[(usize, f32)]) -> Result<Representation> {
        match self {
            Model::Hybrid(m) => m.item_representation_from_features(row),
            Model::Als(m) => m.item_representation_from_features(row),
        }
    }
}

crate::scorer::factorised_scorer!(Model);
