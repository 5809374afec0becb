//! The OpenAI-family upstream: requests for a key (the client's body as sent, only `model`
//! rewritten; or a translated Anthropic request), and the conversion of its answer back to
//! an Anthropic client.

use super::connections::UpstreamBody;
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::Full;
use serde_json::Value;

use super::client::UpstreamRequest;
use super::headers::{copy_request_headers, strip_response_headers};
use super::stream_guard::{ClientBody, IdleTimeout};
use super::translated_body::TranslatedBody;
use super::{BodyContext, json_response, read_upstream_body, right_sized};
use crate::error::{ApiError, ErrorFormat};
use crate::inspect::ChatRequest;
use crate::pool::Key;
use crate::translate::errors;
use crate::translate::reverse::{self, OpenAiToAnthropic};
use crate::usage::{TokenUsage, UsageCell};
use std::sync::Arc;

/// The client's Chat Completions request, as sent, for `key`. A stream whose client did not
/// ask for usage asks for it anyway (see `UsageStrip` for the way back).
pub fn chat_request(
    key: &Key,
    chat: &ChatRequest,
    body: &Bytes,
    client_headers: &HeaderMap,
) -> UpstreamRequest {
    let model = key.rewrites_model.then_some(key.upstream_model.as_str());
    let body = chat.rewrite(body, model, chat.stream);
    let mut req = post(key, body);
    copy_request_headers(client_headers, req.headers_mut());
    set_json_and_auth(key, req.headers_mut());
    req
}

/// An Anthropic Messages request translated to Chat Completions for `key`.
pub fn messages_request(key: &Key, anthropic_request: &Value) -> Result<UpstreamRequest, ApiError> {
    let translated = reverse::anthropic_to_openai_request(anthropic_request, &key.upstream_model)?;
    let mut req = post(
        key,
        Bytes::from(serde_json::to_vec(&translated).unwrap_or_default()),
    );
    set_json_and_auth(key, req.headers_mut());
    Ok(req)
}

fn post(key: &Key, body: Bytes) -> UpstreamRequest {
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = key.endpoint.clone();
    req
}

fn set_json_and_auth(key: &Key, headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some((name, value)) = &key.auth {
        headers.insert(name, value.clone());
    }
}

/// An OpenAI-family answer to a translated `/v1/messages` request, back in Anthropic's
/// format: errors as Anthropic envelopes, streams event by event.
pub async fn messages_response(
    key: &Key,
    upstream: http::Response<UpstreamBody>,
    stream: bool,
    ctx: &BodyContext,
    usage: &Arc<UsageCell>,
) -> Result<Response, ApiError> {
    let (parts, incoming) = upstream.into_parts();
    let mut headers = parts.headers;
    strip_response_headers(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    if !parts.status.is_success() {
        let body = read_upstream_body(incoming, key).await?;
        let body = errors::openai_error_to_anthropic(parts.status.as_u16(), &body);
        return Ok(json_response(parts.status, headers, body));
    }
    if stream {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let translated = TranslatedBody::new(
            IdleTimeout::new(incoming, ctx.idle_timeout),
            OpenAiToAnthropic::new(&key.upstream_model),
            usage.clone(),
        );
        let body = ClientBody::new(translated, Some(ErrorFormat::Anthropic), ctx.stats.clone());
        let mut resp = Response::new(Body::new(body));
        *resp.headers_mut() = right_sized(headers);
        return Ok(resp);
    }
    let body = read_upstream_body(incoming, key).await?;
    let completion: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::UpstreamInvalid {
            key: key.label.clone(),
            detail: format!("response is not JSON: {e}"),
        })?;
    if let Some(counts) = completion.get("usage").and_then(TokenUsage::from_openai) {
        usage.set(counts);
    }
    let message = reverse::openai_to_anthropic_response(&completion);
    Ok(json_response(
        StatusCode::OK,
        headers,
        Bytes::from(message.to_string()),
    ))
}
