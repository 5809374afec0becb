//! Who may call: client tokens presented as `Authorization: Bearer` (OpenAI SDKs) or
//! `x-api-key` (Anthropic SDKs), compared in constant time.

use std::sync::Arc;

use http::{HeaderMap, header};
use subtle::{Choice, ConstantTimeEq};

use crate::config::ClientToken;
use crate::error::ApiError;

#[derive(Debug, Default)]
pub struct ClientAuth {
    tokens: Vec<Arc<ClientToken>>,
}

/// Who made a request, as the guard established it; handlers read it from the request's
/// extensions to check the model and to name the caller in the log.
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<Arc<ClientToken>>);

impl Caller {
    /// 403 unless this caller may use `model`.
    pub fn check_model(&self, model: &str) -> Result<(), ApiError> {
        match &self.0 {
            Some(token) if !token.allows(model) => Err(ApiError::ModelNotAllowed {
                token: token.name.to_owned(),
                model: crate::error::truncate_for_message(model),
            }),
            _ => Ok(()),
        }
    }

    pub fn name(&self) -> &'static str {
        self.0.as_ref().map_or("-", |t| t.name)
    }
}

impl ClientAuth {
    pub fn new(tokens: Vec<ClientToken>) -> Self {
        ClientAuth {
            tokens: tokens.into_iter().map(Arc::new).collect(),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The caller (anonymous when no tokens are configured), or 401.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if self.tokens.is_empty() {
            return Ok(Caller(None));
        }
        let presented = presented_token(headers).ok_or(ApiError::Unauthenticated {
            reason: "No client token was sent: use 'Authorization: Bearer <token>' or 'x-api-key: <token>'.",
        })?;
        // Every token is compared, whatever matched first, so timing does not reveal which
        // token (or how much of one) was right.
        let mut found: Option<&Arc<ClientToken>> = None;
        for token in &self.tokens {
            let matches: Choice = presented.as_bytes().ct_eq(token.token.expose().as_bytes());
            if bool::from(matches) {
                found = Some(token);
            }
        }
        found
            .map(|t| Caller(Some(t.clone())))
            .ok_or(ApiError::Unauthenticated {
                reason: "The client token is not valid.",
            })
    }
}

/// Whether the request carries `expected`, the token of an operator endpoint, compared in
/// constant time: as a bearer token (curl, Prometheus), or as the password of HTTP Basic
/// auth (any user name), which browsers send by themselves on every refresh of `/status`.
pub fn bearer_matches(headers: &HeaderMap, expected: &crate::secret::Secret) -> bool {
    use base64::Engine;
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let presented: Vec<u8> = if let Some(token) = value.strip_prefix("Bearer ") {
        token.as_bytes().to_vec()
    } else if let Some(encoded) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .unwrap_or_default();
        match decoded.iter().position(|&b| b == b':') {
            Some(colon) => decoded[colon + 1..].to_vec(),
            None => Vec::new(),
        }
    } else {
        Vec::new()
    };
    bool::from(presented.ct_eq(expected.expose().as_bytes()))
}

fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}
