//! Model artifacts in GridFS, so every serving replica can load the same bytes.

use std::io::{Read, Write};

use mongodb::bson::{doc, Bson};
use mongodb::options::GridFsBucketOptions;
use mongodb::sync::gridfs::GridFsBucket;

use super::MongoStore;
use crate::StoreError;

/// The GridFS bucket holding artifacts (collections `artifacts.files` / `artifacts.chunks`).
pub const ARTIFACT_BUCKET: &str = "artifacts";

/// A stored artifact (its newest revision).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtifactInfo {
    /// The artifact name.
    pub name: String,
    /// Size in bytes.
    pub length: u64,
    /// Upload time, milliseconds since the Unix epoch.
    pub uploaded_at_millis: i64,
}

impl MongoStore {
    fn bucket(&self) -> GridFsBucket {
        self.database().gridfs_bucket(
            GridFsBucketOptions::builder()
                .bucket_name(ARTIFACT_BUCKET.to_string())
                .build(),
        )
    }

    /// Stores `bytes` under `name` (e.g. `model-2024-05-01.recsys`), replacing any earlier
    /// artifact of that name once the new one is complete: a reader sees the old or the new
    /// bytes, never a partial upload.
    ///
    /// The whole transfer is bounded by the operation timeout.
    pub fn put_artifact(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let context = format!("upload artifact {name:?}");
        let (name, bytes) = (name.to_string(), bytes.to_vec());
        self.bounded_store(&context, move |s| s.put_artifact_now(&name, &bytes))
    }

    fn put_artifact_now(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let bucket = self.bucket();
        let context = format!("upload artifact {name:?}");
        let mut upload = bucket
            .open_upload_stream(name)
            .run()
            .map_err(|e| self.error(context.clone(), e))?;
        let io_error = |e: std::io::Error| StoreError::Database {
            uri: self.uri().to_string(),
            context: context.clone(),
            message: e.to_string(),
            source: Box::new(e),
        };
        if let Err(e) = upload.write_all(bytes) {
            // Best effort: remove the chunks already written; report the write error.
            let _ = upload.abort();
            return Err(io_error(e));
        }
        upload.close().map_err(io_error)?;
        let new_id = upload.id().clone();
        // Older revisions of the same name.
        let old = bucket
            .find(doc! { "filename": name, "_id": { "$ne": new_id } })
            .run()
            .map_err(|e| self.error(context.clone(), e))?;
        let old_ids: Vec<Bson> = old
            .map(|f| f.map(|f| f.id))
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(context.clone(), e))?;
        for id in old_ids {
            bucket
                .delete(id)
                .run()
                .map_err(|e| self.error(format!("delete old revision of {name:?}"), e))?;
        }
        Ok(())
    }

    /// The bytes of the newest artifact named `name`
    /// ([`StoreError::ArtifactNotFound`] if there is none).
    ///
    /// The whole transfer is bounded by the operation timeout.
    pub fn get_artifact(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let context = format!("download artifact {name:?}");
        let name = name.to_string();
        self.bounded_store(&context, move |s| s.get_artifact_now(&name))
    }

    fn get_artifact_now(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let bucket = self.bucket();
        let context = format!("download artifact {name:?}");
        let newest = bucket
            .find(doc! { "filename": name })
            .sort(doc! { "uploadDate": -1, "_id": -1 })
            .limit(1)
            .run()
            .map_err(|e| self.error(context.clone(), e))?
            .next()
            .transpose()
            .map_err(|e| self.error(context.clone(), e))?;
        let Some(file) = newest else {
            return Err(StoreError::ArtifactNotFound {
                name: name.to_string(),
                bucket: format!("{}.{ARTIFACT_BUCKET}", self.database_name()),
            });
        };
        let mut download = bucket
            .open_download_stream(file.id)
            .run()
            .map_err(|e| self.error(context.clone(), e))?;
        let mut bytes = Vec::with_capacity(usize::try_from(file.length).unwrap_or(0));
        download
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::Database {
                uri: self.uri().to_string(),
                context,
                message: e.to_string(),
                source: Box::new(e),
            })?;
        Ok(bytes)
    }

    /// Every artifact name with its newest revision's size and time, sorted by name.
    pub fn list_artifacts(&self) -> Result<Vec<ArtifactInfo>, StoreError> {
        self.bounded_store("list artifacts", |s| s.list_artifacts_now())
    }

    fn list_artifacts_now(&self) -> Result<Vec<ArtifactInfo>, StoreError> {
        let files = self
            .bucket()
            .find(doc! {})
            .run()
            .map_err(|e| self.error("list artifacts", e))?;
        let mut newest: std::collections::BTreeMap<String, ArtifactInfo> = Default::default();
        for file in files {
            let file = file.map_err(|e| self.error("list artifacts", e))?;
            let name = file.filename.unwrap_or_default();
            let info = ArtifactInfo {
                name: name.clone(),
                length: file.length,
                uploaded_at_millis: file.upload_date.timestamp_millis(),
            };
            match newest.get(&name) {
                Some(old) if old.uploaded_at_millis > info.uploaded_at_millis => {}
                _ => {
                    newest.insert(name, info);
                }
            }
        }
        Ok(newest.into_values().collect())
    }

    /// Deletes every revision of `name`; returns whether there was any.
    pub fn delete_artifact(&self, name: &str) -> Result<bool, StoreError> {
        let context = format!("delete artifact {name:?}");
        let name = name.to_string();
        self.bounded_store(&context, move |s| s.delete_artifact_now(&name))
    }

    fn delete_artifact_now(&self, name: &str) -> Result<bool, StoreError> {
        let bucket = self.bucket();
        let files = bucket
            .find(doc! { "filename": name })
            .run()
            .map_err(|e| self.error(format!("delete artifact {name:?}"), e))?;
        let ids: Vec<Bson> = files
            .map(|f| f.map(|f| f.id))
            .collect::<Result<_, _>>()
            .map_err(|e| self.error(format!("delete artifact {name:?}"), e))?;
        for id in &ids {
            bucket
                .delete(id.clone())
                .run()
                .map_err(|e| self.error(format!("delete artifact {name:?}"), e))?;
        }
        Ok(!ids.is_empty())
    }
}
