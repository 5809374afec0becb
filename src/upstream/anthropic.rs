//! The Anthropic upstream: requests for a key (native `/v1/messages` bodies as sent, or
//! OpenAI requests translated to Messages), and the conversion of its answer back to an
//! OpenAI client.

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
use super::{BodyContext, json_response, read_upstream_body, right_sized, unix_now};
use crate::error::{ApiError, ErrorFormat};
use crate::pool::Key;
use crate::translate::stream::AnthropicToOpenAi;
use crate::translate::{errors, request, response};
use crate::usage::{TokenUsage, UsageCell};
use std::sync::Arc;

/// The only Messages API version there is; clients on the native endpoint may send their own.
const ANTHROPIC_VERSION: &str = "2023-06-01";
/// [Rec C.5] Anthropic requires `max_tokens`; OpenAI clients often omit it.
const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Which client headers go upstream.
pub enum ClientHeaders<'a> {
    /// Native endpoint: everything but credentials and hop-by-hop headers, so
    /// `anthropic-version`, `anthropic-beta` and SDK headers arrive as sent.
    Native(&'a HeaderMap),
    /// Translated from OpenAI: only `anthropic-beta`, which selects upstream features.
    Translated(&'a HeaderMap),
}

/// A request to `{base_url}{path}` for an Anthropic key.
pub fn request(key: &Key, path: &str, body: Bytes, client: ClientHeaders) -> UpstreamRequest {
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = format!("{}{path}", key.base_url)
        .parse()
        .unwrap_or_else(|_| key.endpoint.clone());
    let headers = req.headers_mut();
    match client {
        ClientHeaders::Native(h) => copy_request_headers(h, headers),
        ClientHeaders::Translated(h) => {
            if let Some(beta) = h.get("anthropic-beta") {
                headers.insert("anthropic-beta", beta.clone());
            }
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if !headers.contains_key("anthropic-version") {
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
    }
    if let Some((name, value)) = &key.auth {
        headers.insert(name, value.clone());
    }
    req
}

/// An OpenAI Chat Completions request translated to Messages for `key`.
pub fn chat_request(
    key: &Key,
    openai_request: &Value,
    client_headers: &HeaderMap,
) -> Result<UpstreamRequest, ApiError> {
    let max_tokens = key.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    let translated = request::openai_to_anthropic(openai_request, &key.upstream_model, max_tokens)?;
    let body = Bytes::from(serde_json::to_vec(&translated).unwrap_or_default());
    Ok(request(
        key,
        "/v1/messages",
        body,
        ClientHeaders::Translated(client_headers),
    ))
}

/// An Anthropic answer to a translated Chat Completions request, back in OpenAI's format:
/// errors as OpenAI envelopes with the same status, streams chunk by chunk.
pub async fn chat_response(
    key: &Key,
    upstream: http::Response<UpstreamBody>,
    openai_request: &Value,
    stream: bool,
    ctx: &BodyContext,
    usage: &Arc<UsageCell>,
) -> Result<Response, ApiError> {
    let (parts, incoming) = upstream.into_parts();
    let mut headers = parts.headers;
    strip_response_headers(&mut headers);
    errors::map_anthropic_ratelimit_headers(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    if !parts.status.is_success() {
        let body = read_upstream_body(incoming, key).await?;
        return Ok(json_response(
            parts.status,
            headers,
            errors::anthropic_error_to_openai(&body),
        ));
    }
    let created = unix_now();
    if stream {
        let include_usage =
            openai_request.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
        let translated = TranslatedBody::new(
            IdleTimeout::new(incoming, ctx.idle_timeout),
            AnthropicToOpenAi::new(include_usage, created, &key.upstream_model),
            usage.clone(),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let body = ClientBody::new(translated, Some(ErrorFormat::OpenAi), ctx.stats.clone());
        let mut resp = Response::new(Body::new(body));
        *resp.headers_mut() = right_sized(headers);
        return Ok(resp);
    }
    let body = read_upstream_body(incoming, key).await?;
    let message: Value = serde_json::from_slice(&body).map_err(|e| ApiError::UpstreamInvalid {
        key: key.label.clone(),
        detail: format!("response is not JSON: {e}"),
    })?;
    if let Some(counts) = message.get("usage").and_then(TokenUsage::from_anthropic) {
        usage.set(counts);
    }
    let completion = response::anthropic_to_openai(&message, created);
    Ok(json_response(
        StatusCode::OK,
        headers,
        Bytes::from(completion.to_string()),
    ))
}
