//! `POST /v1/messages` and `/v1/messages/count_tokens`: Anthropic's native API. Anthropic
//! keys get the body and events untouched; OpenAI-family keys get a translated request and
//! a response translated back; errors use Anthropic's envelope throughout.

use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use http::{HeaderMap, HeaderValue};

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

pub async fn messages(
    state: Arc<AppState>,
    req: Request,
    admitted: Admitted,
    request_id: HeaderValue,
) -> Response {
    serve(state, req, Endpoint::Messages, admitted, request_id).await
}

pub async fn count_tokens(
    state: Arc<AppState>,
    req: Request,
    admitted: Admitted,
    request_id: HeaderValue,
) -> Response {
    serve(state, req, Endpoint::CountTokens, admitted, request_id).await
}

async fn serve(
    state: Arc<AppState>,
    req: Request,
    endpoint: Endpoint,
    admitted: Admitted,
    request_id: HeaderValue,
) -> Response {
    let (parts, body) = req.into_parts();
    let (mut trace, caller) = RequestTrace::begin(endpoint.path(), &state, admitted, request_id);
    let response = handle(&state, &parts.headers, body, endpoint, &caller, &mut trace)
        .await
        .unwrap_or_else(|e| e.into_response_for(ErrorFormat::Anthropic));
    trace.respond(response)
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    endpoint: Endpoint,
    caller: &Caller,
    trace: &mut RequestTrace,
) -> Result<Response, ApiError> {
    let (bytes, request, pool) = accept(state, headers, body, caller, trace).await?;
    let all_anthropic = pool
        .keys()
        .iter()
        .all(|k| k.provider.family() == Family::Anthropic);
    if endpoint == Endpoint::CountTokens && !all_anthropic {
        // OpenAI has no token-counting endpoint; answer with the mock's estimate rather
        // than fail a call that clients such as Claude Code make before every turn.
        return Ok(mock::into_response(mock::anthropic::count_tokens(
            true, &bytes,
        )));
    }
    let tree = match all_anthropic {
        true => None,
        false => Some(parse_json(&bytes)?),
    };
    let served = state
        .failover()
        .serve(
            &request.model,
            pool,
            |key| match (key.provider.family(), &tree) {
                (Family::OpenAi, Some(tree)) => openai::messages_request(key, tree),
                _ => {
                    let body = if key.rewrites_model {
                        request.with_model(&bytes, &key.upstream_model)
                    } else {
                        bytes.clone()
                    };
                    let native = anthropic::ClientHeaders::Native(headers);
                    Ok(anthropic::request(key, endpoint.path(), body, native))
                }
            },
            trace,
        )
        .await?;
    let (ctx, usage) = (&state.body_ctx, &trace.usage);
    match served {
        Served::InProcess(key) => {
            trace.served_by(key);
            Ok(mock::into_response(mock::anthropic::messages(true, &bytes)))
        }
        Served::Upstream(key, upstream) => match key.provider.family() {
            Family::OpenAi => {
                openai::messages_response(key, upstream, request.stream, ctx, usage).await
            }
            Family::Anthropic | Family::Mock => {
                passthrough_response(key, upstream, ErrorFormat::Anthropic, ctx, usage, false).await
            }
        },
    }
}
