//! The OpenAI-family upstream path: the client's body goes upstream as sent (only `model`
//! rewritten when the key names the model differently), and the upstream's status, headers
//! and body come back unchanged, streamed frame by frame.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use http_body_util::Full;

use super::client::UpstreamClient;
use super::headers::{copy_request_headers, strip_response_headers};
use crate::error::ApiError;
use crate::inspect::ChatRequest;
use crate::pool::Key;

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
    if let Some(bearer) = &key.bearer {
        headers.insert(header::AUTHORIZATION, bearer.clone());
    }

    let upstream = client.send(req, &key.label).await?;
    let (mut parts, incoming) = upstream.into_parts();
    strip_response_headers(&mut parts.headers);
    let mut resp = Response::new(Body::new(incoming));
    *resp.status_mut() = parts.status;
    *resp.headers_mut() = parts.headers;
    Ok(resp)
}
