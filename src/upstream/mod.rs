//! Talking to upstream providers: the shared HTTP client, header rules, and one module per
//! wire family.

pub mod client;
mod coalesce;
pub mod connections;
mod gathered;
pub mod headers;
pub mod openai;

pub use client::UpstreamClient;
pub mod anthropic;
pub mod failover;
pub mod stream_guard;
pub mod translated_body;
pub mod usage_tap;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Limited};

use crate::error::{ApiError, ErrorFormat};
use crate::pool::Key;
use crate::secret::redact;
use headers::strip_response_headers;
use stream_guard::{ClientBody, IdleTimeout, StreamStats};
use usage_tap::{UsageStrip, UsageTap};

use crate::usage::UsageCell;

/// What a response body needs once the upstream answered.
pub struct BodyContext {
    pub idle_timeout: std::time::Duration,
    pub stats: std::sync::Arc<StreamStats>,
}

/// A same-format answer, passed on as the upstream sent it: status, headers, body frames.
/// A stream that breaks after its first byte ends with an in-band error in `format`. Error
/// bodies are read whole so that a key the upstream echoed can be redacted.
pub async fn passthrough_response(
    key: &Key,
    upstream: http::Response<connections::UpstreamBody>,
    format: ErrorFormat,
    ctx: &BodyContext,
    usage: &std::sync::Arc<UsageCell>,
    strip_usage: bool,
) -> Result<Response, ApiError> {
    let (mut parts, incoming) = upstream.into_parts();
    strip_response_headers(&mut parts.headers);
    if !parts.status.is_success() {
        let body = read_upstream_body(incoming, key).await?;
        parts.headers.remove(header::CONTENT_LENGTH);
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = parts.status;
        *resp.headers_mut() = right_sized(parts.headers);
        return Ok(resp);
    }
    let is_stream = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let in_band = is_stream.then_some(format);
    let body = if is_stream && strip_usage {
        let stripped = UsageStrip::new(incoming, usage.clone());
        Body::new(ClientBody::new(
            IdleTimeout::new(stripped, ctx.idle_timeout),
            in_band,
            ctx.stats.clone(),
        ))
    } else {
        let tapped = UsageTap::new(incoming, format, is_stream, usage.clone());
        Body::new(ClientBody::new(
            IdleTimeout::new(tapped, ctx.idle_timeout),
            in_band,
            ctx.stats.clone(),
        ))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = parts.status;
    *resp.headers_mut() = right_sized(parts.headers);
    Ok(resp)
}

/// The same headers in a map sized for them, for a response to the client. hyper's server
/// keeps a response's header map for the connection's life (to parse the next request
/// into), and the upstream's map was sized for every header the upstream sent: a
/// provider's 25 make a 5 KB map, of which a rebuilt one keeps half (about 3 KiB less per
/// open stream). The rebuild costs about 2,500 instructions and two allocations, so it is
/// done only when the map would shrink: not for a short head.
pub(crate) fn right_sized(headers: HeaderMap) -> HeaderMap {
    // Room for the `x-request-id` the dispatcher adds to every response, so that it does
    // not grow the map again.
    let wanted = headers.len() + 1;
    // `HeaderMap::with_capacity(n)`'s usable capacity: (n + n/3) buckets rounded up to a
    // power of two, three quarters of them usable.
    let buckets = (wanted + wanted / 3).next_power_of_two();
    if buckets - buckets / 4 >= headers.capacity() {
        return headers;
    }
    let mut map = HeaderMap::with_capacity(wanted);
    map.extend(headers);
    map
}

/// Upstream bodies keyrelay must read whole (errors, responses to translate) are bounded,
/// so a misbehaving upstream cannot exhaust memory.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// Reads a whole upstream body, bounded, with the key redacted wherever the upstream echoed
/// it (error bodies do).
pub(crate) async fn read_upstream_body(
    body: connections::UpstreamBody,
    key: &Key,
) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_UPSTREAM_BODY).collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            Ok(redact(&bytes, &key.secret).map_or(bytes, Bytes::from))
        }
        Err(e) => Err(ApiError::UpstreamInvalid {
            key: key.label.clone(),
            detail: format!("reading the response failed: {e}"),
        }),
    }
}

/// Seconds since the epoch, for the `created` field of translated responses.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A JSON response keyrelay composed (a translated body or error), with the upstream's
/// remaining headers.
pub(crate) fn json_response(status: StatusCode, mut headers: HeaderMap, body: Bytes) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.remove(header::CONTENT_LENGTH);
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = right_sized(headers);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(n: usize) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(n);
        for i in 0..n {
            let name = http::HeaderName::try_from(format!("x-header-{i}")).expect("name");
            headers.append(name, HeaderValue::from_static("v"));
        }
        headers
    }

    #[test]
    fn a_map_sized_for_more_headers_is_rebuilt_smaller_with_every_value() {
        let mut provider = map(25);
        for _ in 0..3 {
            let name = provider.keys().next().expect("a header").clone();
            provider.remove(name);
        }
        provider.append("x-header-24", HeaderValue::from_static("second"));
        let before = provider.clone();
        let sized = right_sized(provider);
        assert!(sized.capacity() < before.capacity(), "{}", sized.capacity());
        assert!(sized.capacity() > sized.len(), "room for x-request-id");
        assert_eq!(
            sized, before,
            "every name and value, repeated ones included"
        );
        // A map already as small as a rebuild would make it is passed on as it is.
        let short = map(8);
        let capacity = short.capacity();
        assert_eq!(right_sized(short).capacity(), capacity);
    }
}
