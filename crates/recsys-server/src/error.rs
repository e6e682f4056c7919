//! Errors: [`ApiError`] is what a client sees (a status and a JSON body), [`ServerError`]
//! what the library's own operations (start-up, reload, database) return.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// An HTTP error answer: status plus a JSON body `{"error": message, "code": code,
/// "param": name}` (`param` only when one query or path parameter is at fault).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// What is wrong, for people.
    pub error: String,
    /// A stable machine-readable code (`bad_request`, `not_found`, …).
    pub code: &'static str,
    /// The parameter at fault, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
}

impl ApiError {
    /// 400 about one parameter.
    pub fn bad_param(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: message.into(),
            code: "bad_request",
            param: Some(param.to_string()),
        }
    }

    /// Any status with a code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error: message.into(),
            code,
            param: None,
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500: something that should not happen (logged by the caller).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

/// What the server's own operations can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The bundle could not be loaded or is not usable (the old one keeps serving).
    ///
    /// The cause is part of the message (logs and HTTP answers print only the message), so
    /// it is not also reported as `source()`: an error chain would print it twice.
    #[error("{error}")]
    Bundle {
        /// The file.
        path: PathBuf,
        /// Why.
        error: recsys_recommend::RecommendError,
    },
    /// The bundle loaded but cannot be served (e.g. it has no items).
    #[error("bundle {path} is not servable: {reason}")]
    Unservable {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A reload was asked for but the server was started without a bundle path.
    #[error("no bundle path configured: nothing to reload")]
    NoBundlePath,
    /// A background task died (panicked or was cancelled).
    #[error("background task failed: {0}")]
    Task(String),
    /// The database could not be reached or answered with an error.
    #[error("database {uri}: {message}")]
    Database {
        /// The URI, password redacted.
        uri: String,
        /// What the driver said.
        message: String,
    },
    /// Binding or serving the socket failed.
    /// (The cause is part of the message, as for [`ServerError::Bundle`].)
    #[error("{action}: {error}")]
    Io {
        /// What was being done.
        action: String,
        /// The IO error.
        error: std::io::Error,
    },
}
