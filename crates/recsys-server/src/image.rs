//! `GET /image/{file}`: product images from the configured folder. Only plain relative
//! paths inside the folder are served: `..`, `.` and hidden components, absolute paths,
//! backslashes and NUL are refused (400); a symbolic link anywhere in the path is refused
//! (403) — the file is opened component by component without following links and read
//! through that one handle, so a link swapped in by another process cannot lead outside
//! the folder; folders, FIFOs, devices, files over [`MAX_IMAGE_BYTES`] and missing files
//! are 404; a read slower than [`READ_TIMEOUT`] is 503.

use std::path::{Path as FsPath, PathBuf};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{clip, ApiError};
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

/// How long reading one image may take before the request is answered 503 (a file system
/// that hangs must not hang requests).
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens `relative` under `root` without following any symbolic link and reads it through
/// that one handle (blocking: run it on the blocking pool).
///
/// The root folder is opened once; each component is opened with `openat` relative to the
/// previous one with `O_NOFOLLOW` (a symbolic link anywhere in the path is refused, so
/// nothing outside the folder is ever opened, whatever another process swaps in meanwhile)
/// and `O_NONBLOCK` (opening a FIFO cannot block). The opened handle must be a regular file
/// (`fstat`) of at most [`MAX_IMAGE_BYTES`], and at most that many bytes are read from it.
#[cfg(unix)]
pub fn read_inside(root: &FsPath, relative: &FsPath) -> Result<Vec<u8>, ApiError> {
    use std::ffi::CString;
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;

    let missing = || ApiError::not_found("no such image");
    let forbidden = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "symbolic links are not served from the image folder",
        )
    };
    let c_path = |p: &std::ffi::OsStr| CString::new(p.as_bytes()).map_err(|_| missing());
    let root_c = c_path(root.as_os_str())?;
    // SAFETY: a valid NUL-terminated path; the result is checked before use.
    let fd = unsafe {
        libc::open(
            root_c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(missing());
    }
    // SAFETY: `fd` is a freshly opened descriptor that nothing else owns.
    let mut dir = unsafe { OwnedFd::from_raw_fd(fd) };
    let parts: Vec<&std::ffi::OsStr> = relative.iter().collect();
    let mut file = None;
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let name = c_path(part)?;
        let mut flags =
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
        if !last {
            flags |= libc::O_DIRECTORY;
        }
        // SAFETY: `dir` is an open directory descriptor, `name` a valid C string.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
        if fd < 0 {
            return Err(if is_symlink_at(&dir, &name) {
                forbidden()
            } else {
                missing()
            });
        }
        // SAFETY: as above.
        let opened = unsafe { OwnedFd::from_raw_fd(fd) };
        if last {
            file = Some(std::fs::File::from(opened));
        } else {
            dir = opened;
        }
    }
    let file = file.ok_or_else(missing)?;
    let meta = file.metadata().map_err(|_| missing())?;
    if !meta.file_type().is_file() || meta.len() > MAX_IMAGE_BYTES {
        return Err(missing());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|_| missing())?;
    if bytes.len() as u64 > MAX_IMAGE_BYTES {
        return Err(missing());
    }
    Ok(bytes)
}

/// True when `name` in `dir` is a symbolic link (for the answer's wording only).
#[cfg(unix)]
fn is_symlink_at(dir: &std::os::fd::OwnedFd, name: &std::ffi::CStr) -> bool {
    use std::os::fd::AsRawFd;
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid descriptor and C string; `stat` is written by the call when it
    // succeeds and only read then.
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            stat.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    // SAFETY: initialised by the successful call.
    rc == 0 && (unsafe { stat.assume_init() }.st_mode & libc::S_IFMT) == libc::S_IFLNK
}

/// Without `openat` and `O_NOFOLLOW` the folder cannot be served safely: every image is 404.
#[cfg(not(unix))]
pub fn read_inside(_root: &FsPath, _relative: &FsPath) -> Result<Vec<u8>, ApiError> {
    Err(ApiError::not_found(
        "images are served on Unix systems only",
    ))
}

/// The handler.
pub async fn image(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(file) = path.map_err(|e| ApiError::bad_param("file", clip(&e.body_text())))?;
    let relative = checked_relative(&file)?;
    let Some(dir) = state.config().image_dir.clone() else {
        return Err(ApiError::not_found("no image folder is configured"));
    };
    let read = tokio::task::spawn_blocking(move || read_inside(&dir, &relative));
    let bytes = match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(result)) => result?,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "image read task failed");
            return Err(ApiError::internal("the image could not be read"));
        }
        Err(_) => {
            tracing::warn!(file = %clip(&file), "image read took longer than {READ_TIMEOUT:?}");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the image could not be read in time",
            ));
        }
    };
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
