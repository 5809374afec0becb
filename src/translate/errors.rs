//! Error envelopes and rate-limit headers across the two formats (C.11).
//!
//! The HTTP status is preserved by the caller; only bodies and headers change here. Upstream
//! error bodies are not always the documented JSON (proxies in front of providers answer with
//! HTML or plain text), so every function yields a valid envelope for any input.

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use serde_json::{Value, json};

/// Longest upstream text copied into an error message, so a full HTML error page does not
/// end up inside a JSON message.
const MAX_MESSAGE_CHARS: usize = 500;

/// C.11 / B.8: the Anthropic `error.type` for an HTTP status.
pub fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        // B.8: Anthropic uses `invalid_request_error` for the 4xx statuses it does not list.
        405..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// Anthropic error body → OpenAI error envelope with the same message and type (C.11, E.68).
/// `param` and `code` are always present because the OpenAI spec requires both keys.
pub fn anthropic_error_to_openai(body: &[u8]) -> Bytes {
    let error = UpstreamError::parse(body);
    let envelope = json!({"error": {
        "message": error.message,
        "type": error.kind.unwrap_or_else(|| "api_error".to_owned()),
        "param": null,
        "code": null,
    }});
    Bytes::from(envelope.to_string())
}

/// OpenAI (or OpenRouter/vLLM-style) error body → Anthropic error envelope (C.11, E.71).
/// The type follows the status rather than the upstream's `type`, whose OpenAI values
/// (`insufficient_quota`, `server_error`, …) Anthropic clients do not know.
pub fn openai_error_to_anthropic(status: u16, body: &[u8]) -> Bytes {
    let error = UpstreamError::parse(body);
    let envelope = json!({"type": "error", "error": {
        "type": anthropic_error_type(status),
        "message": error.message,
    }});
    Bytes::from(envelope.to_string())
}

/// [Rec] C.11 / E.72 (LiteLLM's mapping): OpenAI clients read `x-ratelimit-*`, so the
/// Anthropic counts are copied under those names; the originals stay. Reset headers are not
/// copied: Anthropic sends RFC 3339 timestamps where OpenAI sends durations, and converting
/// needs the current time, which this module does not read. A header the upstream already
/// sent under the OpenAI name is not overwritten.
pub fn map_anthropic_ratelimit_headers(headers: &mut HeaderMap) {
    for (anthropic, openai) in RATELIMIT_HEADERS {
        if let Some(value) = headers.get(&anthropic).cloned() {
            headers.entry(openai).or_insert(value);
        }
    }
}

const RATELIMIT_HEADERS: [(HeaderName, HeaderName); 4] = [
    (
        HeaderName::from_static("anthropic-ratelimit-requests-limit"),
        HeaderName::from_static("x-ratelimit-limit-requests"),
    ),
    (
        HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
        HeaderName::from_static("x-ratelimit-remaining-requests"),
    ),
    (
        HeaderName::from_static("anthropic-ratelimit-tokens-limit"),
        HeaderName::from_static("x-ratelimit-limit-tokens"),
    ),
    (
        HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
        HeaderName::from_static("x-ratelimit-remaining-tokens"),
    ),
];

/// What can be recovered from an upstream error body of either format.
struct UpstreamError {
    message: String,
    /// `error.type`, when the body had one.
    kind: Option<String>,
}

impl UpstreamError {
    /// Understands `{"error": {"message", "type"}}` (Anthropic and OpenAI), `{"error": "…"}`
    /// and `{"message": "…"}` (vLLM and other compatible servers); anything else becomes the
    /// body text itself.
    fn parse(body: &[u8]) -> Self {
        let json = serde_json::from_slice::<Value>(body).ok();
        let error = json.as_ref().and_then(|v| v.get("error"));
        let message = error
            .and_then(|e| e.get("message").or(Some(e)))
            .and_then(Value::as_str)
            .or_else(|| json.as_ref()?.get("message")?.as_str())
            .filter(|m| !m.trim().is_empty());
        let kind = error
            .and_then(|e| e.get("type"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let message = match message {
            Some(m) => m.to_owned(),
            None => body_text(body),
        };
        UpstreamError { message, kind }
    }
}

fn body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "The upstream returned an error with an empty body.".to_owned();
    }
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", text.get(..cut).unwrap_or(text)),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn json_of(bytes: &Bytes) -> Value {
        serde_json::from_slice(bytes).expect("output is JSON")
    }

    #[test]
    fn e68_anthropic_rate_limit_error_becomes_openai_envelope() {
        let body = br#"{"type":"error","error":{"type":"rate_limit_error","message":"Too many"},"request_id":"req_1"}"#;
        assert_eq!(
            json_of(&anthropic_error_to_openai(body)),
            json!({"error": {"message": "Too many", "type": "rate_limit_error", "param": null, "code": null}})
        );
    }

    #[test]
    fn e70_authentication_error_keeps_its_type() {
        let body = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;
        let out = json_of(&anthropic_error_to_openai(body));
        assert_eq!(out["error"]["type"], "authentication_error");
        assert_eq!(out["error"]["message"], "invalid x-api-key");
    }

    #[test]
    fn unexpected_anthropic_bodies_still_give_an_openai_envelope() {
        let html = b"<html><body>502 Bad Gateway</body></html>";
        assert_eq!(
            json_of(&anthropic_error_to_openai(html)),
            json!({"error": {"message": "<html><body>502 Bad Gateway</body></html>",
                             "type": "api_error", "param": null, "code": null}})
        );
        let out = json_of(&anthropic_error_to_openai(br#"{"unexpected": true}"#));
        assert_eq!(out["error"]["message"], r#"{"unexpected": true}"#);
        let out = json_of(&anthropic_error_to_openai(b""));
        assert_eq!(
            out["error"]["message"],
            "The upstream returned an error with an empty body."
        );
        let long = "é".repeat(2000);
        let out = json_of(&anthropic_error_to_openai(long.as_bytes()));
        let message = out["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(message.ends_with('…'));
        let out = json_of(&anthropic_error_to_openai(&[0xff, 0xfe, b'x']));
        assert_eq!(out["error"]["type"], "api_error");
    }

    #[test]
    fn e71_openai_error_becomes_anthropic_envelope() {
        let body = br#"{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}"#;
        assert_eq!(
            json_of(&openai_error_to_anthropic(400, body)),
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}})
        );
    }

    #[test]
    fn compatible_server_errors_become_anthropic_envelopes() {
        let openrouter =
            br#"{"error":{"message":"Rate limited upstream","code":429,"metadata":{}}}"#;
        assert_eq!(
            json_of(&openai_error_to_anthropic(429, openrouter)),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limited upstream"}})
        );
        let vllm = br#"{"object":"error","message":"context too long","type":"BadRequestError","param":null,"code":400}"#;
        assert_eq!(
            json_of(&openai_error_to_anthropic(400, vllm)),
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "context too long"}})
        );
        let quota = br#"{"error":{"message":"quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        assert_eq!(
            json_of(&openai_error_to_anthropic(429, quota))["error"]["type"],
            "rate_limit_error"
        );
        assert_eq!(
            json_of(&openai_error_to_anthropic(503, b"upstream connect error")),
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "upstream connect error"}})
        );
        let plain_string = br#"{"error":"model not loaded"}"#;
        assert_eq!(
            json_of(&openai_error_to_anthropic(404, plain_string))["error"]["message"],
            "model not loaded"
        );
    }

    #[test]
    fn anthropic_error_types_follow_the_status_table() {
        for (status, kind) in [
            (400, "invalid_request_error"),
            (422, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (503, "overloaded_error"),
            (529, "overloaded_error"),
            (504, "timeout_error"),
            (409, "invalid_request_error"),
            (502, "api_error"),
            (200, "api_error"),
        ] {
            assert_eq!(anthropic_error_type(status), kind, "{status}");
        }
    }

    #[test]
    fn e72_anthropic_ratelimit_headers_mapped_to_openai_names() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("anthropic-ratelimit-requests-limit", "1000"),
            ("anthropic-ratelimit-requests-remaining", "99"),
            ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
            ("anthropic-ratelimit-tokens-limit", "80000"),
            ("anthropic-ratelimit-tokens-remaining", "79000"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        map_anthropic_ratelimit_headers(&mut headers);
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(get("x-ratelimit-limit-requests"), Some("1000"));
        assert_eq!(get("x-ratelimit-remaining-requests"), Some("99"));
        assert_eq!(get("x-ratelimit-limit-tokens"), Some("80000"));
        assert_eq!(get("x-ratelimit-remaining-tokens"), Some("79000"));
        assert_eq!(get("anthropic-ratelimit-requests-remaining"), Some("99"));
        assert_eq!(get("x-ratelimit-reset-requests"), None);
        assert_eq!(headers.len(), 9);
    }

    #[test]
    fn ratelimit_mapping_keeps_existing_openai_headers_and_tolerates_absence() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "anthropic-ratelimit-requests-remaining",
            HeaderValue::from_static("5"),
        );
        headers.insert(
            "x-ratelimit-remaining-requests",
            HeaderValue::from_static("7"),
        );
        map_anthropic_ratelimit_headers(&mut headers);
        assert_eq!(
            headers.get("x-ratelimit-remaining-requests"),
            Some(&HeaderValue::from_static("7"))
        );
        assert_eq!(headers.len(), 2);
        let mut empty = HeaderMap::new();
        map_anthropic_ratelimit_headers(&mut empty);
        assert!(empty.is_empty());
    }
}
