//! `POST /v1/chat/completions`: read and check the body, pick the model's next key, and hand
//! the request to that key's provider family.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::AppState;
use crate::error::{ApiError, truncate_for_message};
use crate::inspect::ChatRequest;
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
    body: Body,
    key_label: &mut Option<&'s str>,
) -> Result<Response, ApiError> {
    check_content_type(headers)?;
    let bytes = read_body(headers, body, state.max_body_bytes).await?;
    let chat = ChatRequest::parse(&bytes).map_err(|e| ApiError::InvalidRequest {
        message: e.message,
        param: e.param,
    })?;
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
        Family::Mock => Ok(mock::chat_completions(key, &chat, &bytes)),
        Family::Anthropic => Err(ApiError::ProviderNotImplemented {
            provider: key.provider,
            model: truncate_for_message(&chat.model),
        }),
    }
}

/// JSON, or no content type at all (some clients omit it); anything else is a client mistake
/// worth naming, such as curl's default form encoding.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest {
            message: format!(
                "Unsupported Content-Type {:?}: send the body as JSON with 'Content-Type: application/json'.",
                truncate_for_message(essence)
            ),
            param: None,
        })
    }
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::BodyTooLarge { limit }),
        Err(e) => Err(ApiError::InvalidRequest {
            message: format!("Could not read the request body: {e}"),
            param: None,
        }),
    }
}
