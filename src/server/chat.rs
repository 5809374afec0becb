//! `POST /v1/chat/completions`: read and check the body, pick the model's next key, and hand
//! the request to that key's provider family.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::Value;

use super::AppState;
use super::body::read_request;
use crate::error::{ApiError, truncate_for_message};
use crate::provider::Family;
use crate::{mock, upstream};

pub async fn chat_completions(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let mut key_label = None;
    let result = handle(&state, &parts.headers, body, &mut key_label).await;
    let response = result.unwrap_or_else(IntoResponse::into_response);
    tracing::info!(
        endpoint = "chat_completions",
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
    key_label: &mut Option<&'s str>,
) -> Result<Response, ApiError> {
    let (bytes, chat) = read_request(headers, body, state.max_body_bytes).await?;
    let pool = state
        .keys
        .model(&chat.model)
        .ok_or_else(|| ApiError::ModelNotFound {
            model: truncate_for_message(&chat.model),
        })?;
    let key = pool.next_key();
    *key_label = Some(&key.label);
    match key.provider.family() {
        Family::OpenAi => {
            upstream::openai::chat_completions(&state.client, key, &chat, bytes, headers).await
        }
        Family::Anthropic => {
            // Translation needs the whole request; `inspect` has already proved it is a
            // JSON object, so this parse cannot fail on valid input.
            let request: Value =
                serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidRequest {
                    message: format!("We could not parse the JSON body of your request: {e}"),
                    param: None,
                })?;
            upstream::anthropic::chat_completions(
                &state.client,
                key,
                &request,
                chat.stream,
                headers,
            )
            .await
        }
        Family::Mock => Ok(mock::chat_completions(key, &chat, &bytes)),
    }
}
