//! Errors: [`ApiError`] is what a client sees (a status and a JSON body), [`ServerError`]
//! what the library's own operations (start-up, reload, database) return.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// At most this many characters of a client-supplied value (a path, a parameter name, an
/// id) are echoed in an error body; longer values are cut and end with `…`.
pub const ECHO_CHARS: usize = 64;

/// `value` cut to [`ECHO_CHARS`] characters plus `…` when longer (borrowed when short).
pub fn clip(value: &str) -> std::borrow::Cow<'_, str> {
    match value.char_indices().nth(ECHO_CHARS) {
        None => std::borrow::Cow::Borrowed(value),
        Some((cut, _)) => std::borrow::Cow::Owned(format!("{}…", &value[..cut])),
    }
}

/// The `code` of an error body for a bare HTTP status (used where no handler chose one:
/// errors answered by hyper or the framework).
pub fn status_code_name(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "unprocessable_entity",
        431 => "request_header_fields_too_large",
        500 => "internal",
        503 => "unavailable",
        505 => "http_version_not_supported",
        402..=499 => "client_error",
        _ => "server_error",
    }
}

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
    /// 400 about one parameter (its name is clipped to [`ECHO_CHARS`] characters: names
    /// come from clients, e.g. `attr.<column>`).
    pub fn bad_param(param: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: message.into(),
            code: "bad_request",
            param: Some(clip(param).into_owned()),
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

impl From<crate::config::ConfigError> for ServerError {
    fn from(error: crate::config::ConfigError) -> Self {
        ServerError::Config(error)
    }
}

impl ServerError {
    /// A description for HTTP response bodies: no file system paths (those go to the log
    /// only).
    pub fn public_message(&self) -> String {
        match self {
            ServerError::Bundle { .. } => {
                "the bundle file could not be loaded (missing, corrupt or incompatible; the server log says why)".into()
            }
            ServerError::Unservable { reason, .. } => {
                format!("the bundle is not servable: {reason}")
            }
            ServerError::NoBundlePath => self.to_string(),
            ServerError::Database { .. } | ServerError::DatabaseTimeout { .. } => {
                "the database did not answer".into()
            }
            ServerError::Config(e) => e.to_string(),
            ServerError::Task(_) | ServerError::Io { .. } => {
                "internal error (the server log says why)".into()
            }
        }
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
    /// A database query did not answer within the configured time (the database may be
    /// slow rather than down: the periodic ping decides that).
    #[error("database {uri}: {message}")]
    DatabaseTimeout {
        /// The URI, password redacted.
        uri: String,
        /// What took too long.
        message: String,
    },
    /// The configuration is contradictory ([`crate::ServerConfig::validate`]), or admin
    /// routes would be reachable beyond loopback without a token.
    /// (The cause is part of the message, as for [`ServerError::Bundle`].)
    #[error("invalid configuration: {0}")]
    Config(crate::config::ConfigError),
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
