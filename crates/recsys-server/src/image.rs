//! `GET /image/{file}`: product images from the configured folder. Only plain relative
//! paths inside the folder are served: `..`, `.` and hidden components, absolute paths,
//! backslashes and NUL are refused (400), as is anything whose real path (symlinks
//! resolved) leaves the folder (403); folders and missing files are 404.

use std::path::{Path as FsPath, PathBuf};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Largest image served (bytes); bigger files are refused with 404 like missing ones.
pub const MAX_IMAGE_BYTES: u64 = 20 * 1024 * 1024;

/// The content type of an image file name (by extension).
pub fn content_type(file: &str) -> &'static str {
    let ext = file
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "svg" => "image/svg+xml",
        "bmp" => "image/bmp",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// Checks the requested path syntactically; returns it as a relative path.
pub fn checked_relative(file: &str) -> Result<PathBuf, ApiError> {
    let bad = |why: &str| ApiError::bad_param("file", format!("invalid image path: {why}"));
    if file.is_empty() {
        return Err(bad("empty"));
    }
    if file.len() > 1024 {
        return Err(bad("longer than 1024 bytes"));
    }
    if file.contains('\0') || file.contains('\\') {
        return Err(bad("NUL or backslash"));
    }
    let mut path = PathBuf::new();
    for part in file.split('/') {
        if part.is_empty() {
            return Err(bad("absolute path or empty component"));
        }
        if part.starts_with('.') {
            return Err(bad(
                "components may not start with '.' (no '..', no hidden files)",
            ));
        }
        path.push(part);
    }
    Ok(path)
}

async fn resolve(dir: &FsPath, relative: &FsPath) -> Result<PathBuf, ApiError> {
    let missing = || ApiError::not_found("no such image");
    let root = tokio::fs::canonicalize(dir).await.map_err(|_| missing())?;
    let real = tokio::fs::canonicalize(root.join(relative))
        .await
        .map_err(|_| missing())?;
    if !real.starts_with(&root) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the image path leaves the image folder",
        ));
    }
    let meta = tokio::fs::metadata(&real).await.map_err(|_| missing())?;
    if !meta.is_file() || meta.len() > MAX_IMAGE_BYTES {
        return Err(missing());
    }
    Ok(real)
}

/// The handler.
pub async fn image(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(file) = path.map_err(|e| ApiError::bad_param("file", e.body_text()))?;
    let relative = checked_relative(&file)?;
    let Some(dir) = state.config().image_dir.clone() else {
        return Err(ApiError::not_found("no image folder is configured"));
    };
    let real = resolve(&dir, &relative).await?;
    let bytes = tokio::fs::read(&real)
        .await
        .map_err(|_| ApiError::not_found("no such image"))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&file)),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_pass() {
        assert!(checked_relative("a.jpg").is_ok());
        assert!(checked_relative("shop/a.jpg").is_ok());
        for bad in [
            "",
            "../a",
            "a/../b",
            "/etc/passwd",
            ".hidden",
            "a//b",
            "a\\b",
            "a\0",
            "./a",
        ] {
            assert!(checked_relative(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("A.JPG"), "image/jpeg");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
