//! `GET /v1/models`: the configured model names in OpenAI's list format.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header;
use serde_json::json;

use super::AppState;
use crate::pool::KeyPool;

pub fn render(keys: &KeyPool) -> Bytes {
    let data: Vec<_> = keys
        .models()
        .map(|(model, _)| json!({"id": model, "object": "model", "created": 0, "owned_by": "keyrelay"}))
        .collect();
    Bytes::from(json!({"object": "list", "data": data}).to_string())
}

pub fn list(state: &AppState) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.models_body.clone(),
    )
        .into_response()
}
