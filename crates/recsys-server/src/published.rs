//! Serving models published through the database (`train --publish`): load the `current`
//! model at start, then poll the pointer and swap in each new model after checking it. A
//! damaged or mismatched model is refused for good and reported by `/ready`; a download
//! that fails (database error, timeout) is retried at the next poll. Either way the
//! previous model keeps serving.

use std::path::Path;
use std::time::Duration;

use recsys_recommend::Bundle;
use recsys_store::mongo::{MongoStore, PublishedModel};

use crate::error::ServerError;
use crate::state::{AppState, ModelOrigin, ReloadOutcome};

/// What one look at the `current` pointer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// Nothing published, or the published model is the one serving.
    Unchanged,
    /// The published model was already refused once; not downloaded again.
    StillRefused,
    /// A new model was loaded, checked and swapped in.
    Swapped(ReloadOutcome),
    /// The published model was refused (the reason is in `/ready`).
    Refused(String),
}

/// Why a published model could not be loaded.
#[derive(Debug)]
enum FetchError {
    /// The download failed (database error, timeout, artifact not found): worth another
    /// try at the next poll.
    Download(String),
    /// The bytes arrived and failed the checks (length, magic, version, checksum, parts,
    /// model id): refused for good.
    Check(String),
}

fn database_error(store: &MongoStore, message: impl Into<String>) -> ServerError {
    ServerError::Database {
        uri: store.uri().to_string(),
        message: message.into(),
    }
}

/// Downloads `published` and checks it (header, checksum, every part, and that it is the
/// model the pointer names); CPU and IO, for the blocking pool.
fn fetch(store: &MongoStore, published: &PublishedModel) -> Result<Bundle, FetchError> {
    let bytes = store.download_model(published).map_err(|e| match e {
        // The whole artifact arrived, with another length than the pointer recorded.
        recsys_store::StoreError::Publish(_) => FetchError::Check(e.to_string()),
        _ => FetchError::Download(e.to_string()),
    })?;
    let origin = format!("gridfs:{}", published.artifact);
    let bundle = Bundle::from_bytes(&bytes, Path::new(&origin))
        .map_err(|e| FetchError::Check(e.to_string()))?;
    if bundle.metadata().model_id != published.model_id {
        return Err(FetchError::Check(format!(
            "the pointer names model {} but the artifact holds model {}",
            published.model_id,
            bundle.metadata().model_id
        )));
    }
    Ok(bundle)
}

fn origin_of(published: &PublishedModel) -> ModelOrigin {
    ModelOrigin::Store {
        model_id: published.model_id.clone(),
        published_at_millis: published.published_at_millis,
    }
}

/// The current published model, downloaded and checked, for a server to start from.
pub async fn load_current(store: &MongoStore) -> Result<(Bundle, ModelOrigin), ServerError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let published = store
            .current_model()
            .map_err(|e| database_error(&store, e.to_string()))?
            .ok_or_else(|| {
                database_error(
                    &store,
                    "no model is published (train --publish publishes one)",
                )
            })?;
        let bundle = fetch(&store, &published).map_err(|e| match e {
            FetchError::Download(message) => database_error(&store, message),
            FetchError::Check(reason) => ServerError::Unservable {
                path: published.artifact.clone().into(),
                reason,
            },
        })?;
        Ok((bundle, origin_of(&published)))
    })
    .await
    .map_err(|e| ServerError::Task(e.to_string()))?
}

/// Looks at the `current` pointer once and swaps in a new published model if there is
/// one (see [`Followed`]). A model that downloads completely and fails its checks is
/// refused for good ([`Followed::Refused`], `refused_model` in `/ready`). Database errors —
/// reading the pointer, or downloading the model (a failure mid-download, a timeout) —
/// are recorded ([`AppState::follow_error`], `follow_error` in `/ready`) and returned: the
/// caller tries again later, and the model is downloaded again then. The first poll that
/// succeeds clears the recorded error.
pub async fn follow_once(state: &AppState, store: &MongoStore) -> Result<Followed, ServerError> {
    let followed = follow(state, store).await;
    if followed.is_ok() {
        state.clear_follow_error();
    }
    followed
}

async fn follow(state: &AppState, store: &MongoStore) -> Result<Followed, ServerError> {
    let reader = store.clone();
    let current = match tokio::task::spawn_blocking(move || reader.current_model())
        .await
        .map_err(|e| ServerError::Task(e.to_string()))?
    {
        Ok(current) => current,
        Err(e) => {
            let e = database_error(store, e.to_string());
            state.record_follow_error(None, e.to_string());
            return Err(e);
        }
    };
    let Some(published) = current else {
        return Ok(Followed::Unchanged);
    };
    if published.model_id == state.bundle().metadata().model_id {
        return Ok(Followed::Unchanged);
    }
    if state
        .refused()
        .is_some_and(|r| r.model_id == published.model_id)
    {
        return Ok(Followed::StillRefused);
    }
    let (downloader, wanted) = (store.clone(), published.clone());
    let started = std::time::Instant::now();
    let fetched = tokio::task::spawn_blocking(move || fetch(&downloader, &wanted))
        .await
        .map_err(|e| ServerError::Task(e.to_string()))?;
    let fetch_seconds = started.elapsed().as_secs_f64();
    match fetched {
        Ok(bundle) => {
            let started = std::time::Instant::now();
            let outcome = state.swap(bundle);
            state.set_origin(origin_of(&published));
            state.clear_refused();
            tracing::info!(
                model_version = %outcome.model_version,
                previous = %outcome.previous_model_version,
                download_and_check_seconds = fetch_seconds,
                swap_seconds = started.elapsed().as_secs_f64(),
                "published model swapped in"
            );
            Ok(Followed::Swapped(outcome))
        }
        Err(FetchError::Check(reason)) => {
            state.refuse(&published.model_id, reason.clone());
            Ok(Followed::Refused(reason))
        }
        Err(FetchError::Download(message)) => {
            tracing::warn!(
                model_id = %published.model_id,
                error = %message,
                "could not download the published model; retrying at the next poll"
            );
            state.record_follow_error(Some(&published.model_id), message.clone());
            Err(database_error(store, message))
        }
    }
}

/// Polls the `current` pointer every `interval` (see [`follow_once`]) until every clone of
/// the state is dropped. Database errors (reading the pointer, downloading a model) are
/// logged, shown by `/ready` and retried at the next poll.
pub fn follow_published(
    state: &AppState,
    store: MongoStore,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    let weak = state.downgrade();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(interval).await;
            let Some(state) = AppState::upgrade(&weak) else {
                break;
            };
            if let Err(e) = follow_once(&state, &store).await {
                tracing::warn!(error = %e, "could not check the published model; retrying at the next poll");
            }
        }
    })
}
