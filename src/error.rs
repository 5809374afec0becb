//! Errors that keyrelay itself answers with, and their one mapping to HTTP: status, the
//! OpenAI or Anthropic envelope, and headers.
//!
//! Upstream errors are not here: those reach the client as the upstream sent them (in the
//! client's envelope when the formats differ).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::json;

use crate::exhaustion::Resource;

/// Which of the upstream's deadlines passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutKind {
    Connect,
    FirstByte,
    Idle,
}

impl TimeoutKind {
    pub fn code(self) -> &'static str {
        match self {
            TimeoutKind::Connect => "upstream_connect_timeout",
            TimeoutKind::FirstByte => "upstream_first_byte_timeout",
            TimeoutKind::Idle => "upstream_idle_timeout",
        }
    }

    fn what(self) -> &'static str {
        match self {
            TimeoutKind::Connect => "accept the connection",
            TimeoutKind::FirstByte => "send response headers",
            TimeoutKind::Idle => "send the next stream chunk",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    #[error("{reason}")]
    Unauthenticated { reason: &'static str },
    #[error("The client token `{token}` may not use model `{model}`.")]
    ModelNotAllowed { token: String, model: String },
    #[error("keyrelay is at its limit of {limit} requests in flight; retry shortly.")]
    Overloaded { limit: usize },
    #[error(
        "keyrelay has run out of {} on its host (not a problem with the upstream or the request); retry shortly.",
        resource.short()
    )]
    ProxyOverloaded { resource: Resource },
    #[error("The request body is larger than the limit of {limit} bytes.")]
    BodyTooLarge { limit: usize },
    #[error("The model `{model}` does not exist or has no keys configured in keyrelay.")]
    ModelNotFound { model: String },
    #[error(
        "Every key for model `{model}` is cooling down after rate limits or failures; retry in {retry_after_secs} s."
    )]
    AllKeysCooling {
        model: String,
        retry_after_secs: u64,
    },
    #[error(
        "Every key for model `{model}` is disabled: the upstream refused them (401/403). Fix the keys, then restart keyrelay or reset them through /admin/keys."
    )]
    AllKeysDisabled { model: String },
    #[error(
        "No upstream host for model `{model}` can be reached (connections refused, timed out, or failing DNS or TLS); the next try is in {retry_after_secs} s."
    )]
    UpstreamsDown {
        model: String,
        retry_after_secs: u64,
    },
    #[error("The upstream for key `{key}` could not be reached: {detail}")]
    UpstreamUnreachable { key: String, detail: String },
    #[error("The upstream for key `{key}` sent an invalid response: {detail}")]
    UpstreamInvalid { key: String, detail: String },
    #[error("The upstream for key `{key}` did not {} within {seconds} s.", kind.what())]
    UpstreamTimeout {
        key: String,
        kind: TimeoutKind,
        seconds: f64,
    },
    #[error("Unknown path {path}.")]
    NotFound { path: String },
    #[error("Method {method} is not allowed on this path.")]
    MethodNotAllowed { method: String },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            ApiError::ModelNotAllowed { .. } => StatusCode::FORBIDDEN,
            ApiError::Overloaded { .. }
            | ApiError::ProxyOverloaded { .. }
            | ApiError::UpstreamsDown { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ModelNotFound { .. } | ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::AllKeysCooling { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::AllKeysDisabled { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UpstreamUnreachable { .. } | ApiError::UpstreamInvalid { .. } => {
                StatusCode::BAD_GATEWAY
            }
            ApiError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// `(type, code, param)` of the OpenAI error envelope.
    fn openai_fields(&self) -> (&'static str, Option<&'static str>, Option<&str>) {
        const INVALID: &str = "invalid_request_error";
        match self {
            ApiError::InvalidRequest { param, .. } => (INVALID, None, param.as_deref()),
            ApiError::Unauthenticated { .. } => (INVALID, Some("invalid_api_key"), None),
            ApiError::ModelNotAllowed { .. } => (INVALID, Some("model_not_allowed"), Some("model")),
            ApiError::Overloaded { .. } => ("server_error", Some("overloaded"), None),
            ApiError::ProxyOverloaded { .. } => ("server_error", Some("proxy_overloaded"), None),
            ApiError::UpstreamsDown { .. } => ("server_error", Some("upstream_unreachable"), None),
            ApiError::BodyTooLarge { .. } => (INVALID, Some("request_too_large"), None),
            ApiError::ModelNotFound { .. } => (INVALID, Some("model_not_found"), Some("model")),
            ApiError::NotFound { .. } => (INVALID, Some("unknown_url"), None),
            ApiError::MethodNotAllowed { .. } => (INVALID, Some("method_not_allowed"), None),
            ApiError::AllKeysCooling { .. } => {
                ("rate_limit_error", Some("all_keys_cooling_down"), None)
            }
            ApiError::AllKeysDisabled { .. } => ("server_error", Some("all_keys_disabled"), None),
            ApiError::UpstreamUnreachable { .. } => {
                ("server_error", Some("upstream_unreachable"), None)
            }
            ApiError::UpstreamInvalid { .. } => {
                ("server_error", Some("upstream_invalid_response"), None)
            }
            ApiError::UpstreamTimeout { kind, .. } => ("server_error", Some(kind.code()), None),
        }
    }

    /// The OpenAI error envelope: all four keys present, as the spec requires.
    pub fn openai_body(&self) -> serde_json::Value {
        let (kind, code, param) = self.openai_fields();
        json!({"error": {"message": self.to_string(), "type": kind, "param": param, "code": code}})
    }

    /// The Anthropic error envelope, for errors on `/v1/messages`.
    pub fn anthropic_body(&self) -> serde_json::Value {
        let kind = crate::translate::errors::anthropic_error_type(self.status().as_u16());
        json!({"type": "error", "error": {"type": kind, "message": self.to_string()}})
    }

    /// The response in the error format of the endpoint the request came to.
    pub fn into_response_for(self, format: ErrorFormat) -> Response {
        let body = match format {
            ErrorFormat::OpenAi => self.openai_body(),
            ErrorFormat::Anthropic => self.anthropic_body(),
        };
        let mut resp = (self.status(), axum::Json(body)).into_response();
        let retry_after = match self {
            ApiError::AllKeysCooling {
                retry_after_secs, ..
            }
            | ApiError::UpstreamsDown {
                retry_after_secs, ..
            } => Some(retry_after_secs),
            ApiError::Overloaded { .. } | ApiError::ProxyOverloaded { .. } => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Which API's error envelope a client expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorFormat {
    OpenAi,
    Anthropic,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.into_response_for(ErrorFormat::OpenAi)
    }
}

impl From<crate::translate::TranslateError> for ApiError {
    fn from(e: crate::translate::TranslateError) -> Self {
        ApiError::InvalidRequest {
            message: e.message,
            param: e.param,
        }
    }
}

/// Client-supplied text that ends up in an error message is cut short, so an error can
/// never be used to reflect an arbitrarily large payload.
pub fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
