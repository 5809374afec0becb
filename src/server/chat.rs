//! `POST /v1/chat/completions`: read and check the body, then let the failover loop try the
//! model's keys; each key's provider family decides whether the body passes through or is
//! translated to Anthropic Messages.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use serde_json::Value;

use super::AppState;
use super::body::{accept, parse_json};
use super::guard::Admitted;
use super::trace::RequestTrace;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorFormat};
use crate::mock;
use crate::provider::Family;
use crate::upstream::failover::Served;
use crate::upstream::{anthropic, openai, passthrough_response};

pub async fn chat_completions(
    state: Arc<AppState>,
    req: Request,
    admitted: Admitted,
    request_id: HeaderValue,
) -> Response {
    let (parts, body) = req.into_parts();
    let (mut trace, caller) = RequestTrace::begin("chat_completions", &state, admitted, request_id);
    let response = handle(&state, &parts.headers, body, &caller, &mut trace)
        .await
        .unwrap_or_else(|e| e.into_response_for(ErrorFormat::OpenAi));
    trace.respond(response)
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    caller: &Caller,
    trace: &mut RequestTrace,
) -> Result<Response, ApiError> {
    let (bytes, chat, pool) = accept(state, headers, body, caller, trace).await?;
    // Parsed into a tree only if an Anthropic key is tried, and then only once.
    let mut tree: Option<Value> = None;
    let served = state
        .failover()
        .serve(
            &chat.model,
            pool,
            |key| match key.provider.family() {
                Family::Anthropic => {
                    anthropic::chat_request(key, parsed(&mut tree, &bytes)?, headers)
                }
                Family::OpenAi | Family::Mock => {
                    Ok(openai::chat_request(key, &chat, &bytes, headers))
                }
            },
            trace,
        )
        .await?;
    let usage = &trace.usage;
    match served {
        Served::InProcess(key) => {
            trace.served_by(key);
            Ok(mock::chat_completions(key, &chat, &bytes))
        }
        Served::Upstream(key, upstream) => match key.provider.family() {
            Family::Anthropic => {
                let request = parsed(&mut tree, &bytes)?;
                let ctx = &state.body_ctx;
                anthropic::chat_response(key, upstream, request, chat.stream, ctx, usage).await
            }
            Family::OpenAi | Family::Mock => {
                let ctx = &state.body_ctx;
                let strip = chat.stream && !chat.include_usage;
                passthrough_response(key, upstream, ErrorFormat::OpenAi, ctx, usage, strip).await
            }
        },
    }
}

/// The request as a JSON tree, parsed on first use. `inspect` has already proved the body
/// is a JSON object, so this cannot fail on a body that got this far.
fn parsed<'a>(tree: &'a mut Option<Value>, bytes: &Bytes) -> Result<&'a Value, ApiError> {
    if tree.is_none() {
        *tree = Some(parse_json(bytes)?);
    }
    tree.as_ref().ok_or_else(|| ApiError::InvalidRequest {
        message: "The request body could not be parsed.".into(),
        param: None,
    })
}
