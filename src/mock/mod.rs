//! The `mock` provider: OpenAI-compatible answers produced locally, for demo mode, load
//! tests and the project's own test upstream. No network, no key needed.

pub mod anthropic;
pub mod openai;
pub mod reply;
pub mod upstream;

use std::convert::Infallible;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, header};

use crate::inspect::ChatRequest;
use crate::pool::Key;
use openai::{MockBody, MockResponse};

/// Serves a chat request in-process, as an upstream would.
pub fn chat_completions(key: &Key, chat: &ChatRequest, body: &Bytes) -> Response {
    let body = if key.rewrites_model {
        chat.with_model(body, &key.upstream_model)
    } else {
        body.clone()
    };
    into_response(openai::chat_completions(&body))
}

pub(crate) fn into_response(resp: MockResponse) -> Response {
    let (content_type, body) = match resp.body {
        MockBody::Json(bytes) => ("application/json", Body::from(bytes)),
        MockBody::Sse(frames) => (
            "text/event-stream",
            Body::from_stream(futures_util::stream::iter(
                frames.into_iter().map(Ok::<Bytes, Infallible>),
            )),
        ),
    };
    let mut out = Response::new(body);
    *out.status_mut() = resp.status;
    out.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    out
}
