//! Placeholder until the error translation lands.
use bytes::Bytes;

pub fn anthropic_error_to_openai(body: &[u8]) -> Bytes {
    Bytes::copy_from_slice(body)
}

pub fn openai_error_to_anthropic(status: u16, body: &[u8]) -> Bytes {
    let _ = status;
    Bytes::copy_from_slice(body)
}

pub fn anthropic_error_type(status: u16) -> &'static str {
    let _ = status;
    "api_error"
}

pub fn map_anthropic_ratelimit_headers(headers: &mut http::HeaderMap) {
    let _ = headers;
}
