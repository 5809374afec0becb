//! `POST /v1/messages` and `/v1/messages/count_tokens`: Anthropic's native API. Anthropic
//! keys get the body and events untouched; OpenAI-family keys get a translated request and
//! a response translated back; errors use Anthropic's envelope throughout.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::Response;
use http::HeaderMap;
use serde_json::Value;

use super::AppState;
use super::body::read_request;
use crate::error::{ApiError, ErrorFormat, truncate_for_message};
use crate::provider::Family;
use crate::{mock, upstream};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Messages,
    CountTokens,
}

impl Endpoint {
    fn path(self) -> &'static str {
        match self {
            Endpoint::Messages => "/v1/messages",
            Endpoint::CountTokens => "/v1/messages/count_tokens",
        }
    }
}

pub async fn messages(state: State<Arc<AppState>>, req: Request) -> Response {
    serve(state, req, Endpoint::Messages).await
}

pub async fn count_tokens(state: State<Arc<AppState>>, req: Request) -> Response {
    serve(state, req, Endpoint::CountTokens).await
}

async fn serve(State(state): State<Arc<AppState>>, req: Request, endpoint: Endpoint) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let mut key_label = None;
    let result = handle(&state, &parts.headers, body, endpoint, &mut key_label).await;
    let response = result.unwrap_or_else(|e| e.into_response_for(ErrorFormat::Anthropic));
    tracing::info!(
        endpoint = endpoint.path(),
        key = key_label.unwrap_or("-"),
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

async fn handle<'s>(
    state: &'s AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    endpoint: Endpoint,
    key_label: &mut Option<&'s str>,
) -> Result<Response, ApiError> {
    let (bytes, request) = read_request(headers, body, state.max_body_bytes).await?;
    let pool = state
        .keys
        .model(&request.model)
        .ok_or_else(|| ApiError::ModelNotFound {
            model: truncate_for_message(&request.model),
        })?;
    let key = pool.next_key();
    *key_label = Some(&key.label);
    match (key.provider.family(), endpoint) {
        (Family::Anthropic, _) => {
            let bytes = if key.rewrites_model {
                request.with_model(&bytes, &key.upstream_model)
            } else {
                bytes
            };
            upstream::anthropic::passthrough(&state.client, key, endpoint.path(), bytes, headers)
                .await
        }
        (Family::OpenAi, Endpoint::Messages) => {
            let value = parse(&bytes)?;
            upstream::openai::messages(&state.client, key, &value, request.stream).await
        }
        // OpenAI has no token-counting endpoint; answer with the mock's estimate rather
        // than fail a call that clients such as Claude Code make before every turn.
        (Family::OpenAi | Family::Mock, Endpoint::CountTokens) => Ok(mock::into_response(
            mock::anthropic::count_tokens(true, &bytes),
        )),
        (Family::Mock, Endpoint::Messages) => {
            Ok(mock::into_response(mock::anthropic::messages(true, &bytes)))
        }
    }
}

fn parse(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidRequest {
        message: format!("There was an error parsing the body of your request: {e}"),
        param: None,
    })
}
