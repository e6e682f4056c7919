//! A small shop with planted structure, shared by the policy and bundle tests.
#![allow(dead_code)]

use recsys_core::{FitOptions, HybridModel, Hyperparameters, Interactions, Loss};
use recsys_features::{
    Attributes, ColumnSpec, Dataset, ExternalId, FeatureSpec, InMemorySource, InteractionOptions,
    InteractionRecord, ProductRecord, UserRecord,
};
use recsys_recommend::{Bundle, BundleBuilder, BundleParts, EvaluationSummary};

/// Users `u0..u11` live in "north" (even) or "south" (odd) and buy from the matching half of
/// products `p0..p17` (north: p0..p8, south: p9..p17), each user a few of them.
pub fn shop() -> InMemorySource {
    let mut source = InMemorySource::default();
    for u in 0..12 {
        let mut attributes = Attributes::new();
        attributes.insert(
            "city".into(),
            if u % 2 == 0 { "north" } else { "south" }.into(),
        );
        source.users.push(UserRecord {
            user_id: ExternalId::Str(format!("u{u}")),
            attributes,
        });
    }
    for p in 0..18 {
        let mut attributes = Attributes::new();
        attributes.insert("side".into(), if p < 9 { "n" } else { "s" }.into());
        source.products.push(ProductRecord {
            product_id: ExternalId::Int(p),
            name: Some(format!("Product {p}")),
            price: Some(if p == 5 { f64::NAN } else { 1.0 + p as f64 }),
            image: Some(format!("{p}.jpg")),
            attributes,
        });
    }
    for u in 0..12i64 {
        let base = if u % 2 == 0 { 0 } else { 9 };
        for j in 0..5 {
            let p = base + (u / 2 + j * 2) % 9;
            source.interactions.push(InteractionRecord {
                user_id: ExternalId::Str(format!("u{u}")),
                product_id: ExternalId::Int(p),
                interaction_type: None,
                weight: None,
                timestamp: None,
            });
        }
    }
    source
}

/// Everything trained on [`shop`]: a hybrid model (user identity + city, item identity +
/// side), its dataset and training interactions.
pub struct World {
    pub dataset: Dataset,
    pub train: Interactions,
    pub model: HybridModel,
    pub source: InMemorySource,
}

pub fn world() -> World {
    let mut source = shop();
    let user_spec = FeatureSpec::identity_only().with_column(ColumnSpec::categorical("city"));
    let item_spec = FeatureSpec::identity_only().with_column(ColumnSpec::categorical("side"));
    let dataset = Dataset::from_source(&mut source, user_spec, item_spec).expect("dataset");
    let (train, _) = dataset
        .logged_interactions(InteractionOptions::binary())
        .expect("interactions");
    let params = Hyperparameters::builder()
        .loss(Loss::Warp)
        .no_components(8)
        .seed(5)
        .build()
        .expect("params");
    let mut model =
        HybridModel::new(params, dataset.user_features(), dataset.item_features()).expect("model");
    model.fit(&train, FitOptions::epochs(30)).expect("fit");
    World {
        dataset,
        train,
        model,
        source,
    }
}

impl World {
    pub fn builder(&self, k: usize) -> BundleBuilder {
        BundleBuilder::new(self.model.clone(), &self.dataset, self.train.clone())
            .products(self.source.products.iter().cloned())
            .neighbours(k)
            .metrics(Some(EvaluationSummary {
                k: 10,
                precision_at_k: 0.25,
                recall_at_k: 0.5,
                auc: 0.9,
                test_users: 12,
            }))
            .description("test shop")
    }

    pub fn parts(&self, k: usize) -> BundleParts {
        self.builder(k).into_parts().expect("parts")
    }

    pub fn bundle(&self, k: usize) -> Bundle {
        self.builder(k).build().expect("bundle")
    }
}

pub fn id(v: i64) -> ExternalId {
    ExternalId::Int(v)
}

pub fn user(u: usize) -> ExternalId {
    ExternalId::Str(format!("u{u}"))
}
