//! Publishing models through the database: the bundle's bytes in GridFS, then one
//! `current` pointer moved atomically, so every replica that reads the pointer finds a
//! complete artifact behind it.

use mongodb::bson::{doc, Document};

use super::MongoStore;
use crate::StoreError;

/// The collection holding the `current` model pointer (one document, `_id: "current"`).
pub const MODELS: &str = "models";

/// A published model, as the `current` pointer describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedModel {
    /// The model's id (the bundle metadata's `model_id`).
    pub model_id: String,
    /// The GridFS artifact holding the bundle's bytes.
    pub artifact: String,
    /// Size of the bundle in bytes.
    pub length: u64,
    /// When the pointer was moved, milliseconds since the Unix epoch.
    pub published_at_millis: i64,
}

impl PublishedModel {
    fn from_document(d: &Document) -> Option<PublishedModel> {
        let int = |key: &str| {
            d.get_i64(key)
                .ok()
                .or_else(|| d.get_i32(key).ok().map(i64::from))
        };
        Some(PublishedModel {
            model_id: d.get_str("model_id").ok()?.to_string(),
            artifact: d.get_str("artifact").ok()?.to_string(),
            length: u64::try_from(int("length")?).ok()?,
            published_at_millis: int("published_at_millis")?,
        })
    }
}

/// The artifact name of a model id.
fn artifact_name(model_id: &str) -> String {
    format!("model-{model_id}.rsb")
}

impl MongoStore {
    /// Publishes a model: uploads `bundle` (the bytes of a bundle file) to GridFS as
    /// `model-<model_id>.rsb`, then moves the `current` pointer to it in one single-document
    /// write. A reader of the pointer never sees a partial upload: until the upload is
    /// complete, the pointer still names the previous model. Publishing the same id again
    /// replaces its artifact (same bytes, by the id's definition) and moves the pointer.
    ///
    /// The bytes are not decoded here; a replica checks them (magic, version, checksum,
    /// every part) when it loads them, and refuses a damaged model.
    pub fn publish_model(
        &self,
        model_id: &str,
        bundle: &[u8],
    ) -> Result<PublishedModel, StoreError> {
        if model_id.is_empty()
            || !model_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(StoreError::Publish(format!(
                "model id {model_id:?} must be non-empty ASCII letters, digits, '-' or '_'"
            )));
        }
        let artifact = artifact_name(model_id);
        self.put_artifact(&artifact, bundle)?;
        let published = PublishedModel {
            model_id: model_id.to_string(),
            artifact,
            length: bundle.len() as u64,
            published_at_millis: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        };
        let pointer = doc! {
            "_id": "current",
            "model_id": &published.model_id,
            "artifact": &published.artifact,
            "length": published.length as i64,
            "published_at_millis": published.published_at_millis,
        };
        let context = format!("move the current model pointer to {model_id}");
        self.bounded_store(&context.clone(), move |s| {
            s.database()
                .collection::<Document>(MODELS)
                .replace_one(doc! { "_id": "current" }, pointer)
                .upsert(true)
                .run()
                .map(|_| ())
                .map_err(|e| s.error(context, e))
        })?;
        Ok(published)
    }

    /// The model the `current` pointer names, or `None` when nothing was published.
    /// One small read (the pointer collection holds one document), cheap enough to poll.
    pub fn current_model(&self) -> Result<Option<PublishedModel>, StoreError> {
        let context = "read the current model pointer";
        self.bounded_store(context, move |s| {
            let found = s
                .database()
                .collection::<Document>(MODELS)
                .find_one(doc! { "_id": "current" })
                .run()
                .map_err(|e| s.error(context, e))?;
            match found {
                None => Ok(None),
                Some(d) => PublishedModel::from_document(&d).map(Some).ok_or_else(|| {
                    StoreError::Publish(format!(
                        "the current pointer {d} lacks model_id, artifact, length or \
                         published_at_millis"
                    ))
                }),
            }
        })
    }

    /// The bytes of a published model, checked to have the published length (a bundle's
    /// own checks then run when it is loaded).
    pub fn download_model(&self, model: &PublishedModel) -> Result<Vec<u8>, StoreError> {
        let bytes = self.get_artifact(&model.artifact)?;
        if bytes.len() as u64 != model.length {
            return Err(StoreError::Publish(format!(
                "artifact {} has {} bytes, the pointer says {}",
                model.artifact,
                bytes.len(),
                model.length
            )));
        }
        Ok(bytes)
    }
}
