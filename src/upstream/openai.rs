//! The OpenAI-family upstream path: the client's body goes upstream as sent (only `model`
//! rewritten when the key names the model differently), and the upstream's status, headers
//! and body come back unchanged, streamed frame by frame.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::Full;

use super::client::UpstreamClient;
use super::headers::{copy_request_headers, strip_response_headers};
use super::translated_body::TranslatedBody;
use super::{json_response, read_upstream_body};
use crate::error::ApiError;
use crate::inspect::ChatRequest;
use crate::pool::Key;
use crate::translate::errors;
use crate::translate::reverse::{self, OpenAiToAnthropic};
use serde_json::Value;

pub async fn chat_completions(
    client: &UpstreamClient,
    key: &Key,
    chat: &ChatRequest,
    body: Bytes,
    client_headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let body = if key.rewrites_model {
        chat.with_model(&body, &key.upstream_model)
    } else {
        body
    };
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = key.endpoint.clone();
    let headers = req.headers_mut();
    copy_request_headers(client_headers, headers);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some((name, value)) = &key.auth {
        headers.insert(name, value.clone());
    }

    let upstream = client.send(req, &key.label).await?;
    let (mut parts, incoming) = upstream.into_parts();
    strip_response_headers(&mut parts.headers);
    let mut resp = Response::new(Body::new(incoming));
    *resp.status_mut() = parts.status;
    *resp.headers_mut() = parts.headers;
    Ok(resp)
}

/// A native Anthropic `/v1/messages` request served by an OpenAI-family key: the request is
/// translated to Chat Completions and the answer (or stream) back to Anthropic's format.
pub async fn messages(
    client: &UpstreamClient,
    key: &Key,
    anthropic_request: &Value,
    stream: bool,
) -> Result<Response, ApiError> {
    let translated = reverse::anthropic_to_openai_request(anthropic_request, &key.upstream_model)?;
    let mut req = http::Request::new(Full::new(Bytes::from(
        serde_json::to_vec(&translated).unwrap_or_default(),
    )));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = key.endpoint.clone();
    let headers = req.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some((name, value)) = &key.auth {
        headers.insert(name, value.clone());
    }

    let upstream = client.send(req, &key.label).await?;
    let (parts, incoming) = upstream.into_parts();
    let mut headers = parts.headers;
    strip_response_headers(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    if !parts.status.is_success() {
        let body = read_upstream_body(incoming, &key.label).await?;
        let body = errors::openai_error_to_anthropic(parts.status.as_u16(), &body);
        return Ok(json_response(parts.status, headers, body));
    }
    if stream {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let translator = OpenAiToAnthropic::new(&key.upstream_model);
        let mut resp = Response::new(Body::new(TranslatedBody::new(incoming, translator)));
        *resp.headers_mut() = headers;
        return Ok(resp);
    }
    let body = read_upstream_body(incoming, &key.label).await?;
    let completion: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::UpstreamInvalid {
            key: key.label.clone(),
            detail: format!("response is not JSON: {e}"),
        })?;
    let message = reverse::openai_to_anthropic_response(&completion);
    Ok(json_response(
        StatusCode::OK,
        headers,
        Bytes::from(message.to_string()),
    ))
}
