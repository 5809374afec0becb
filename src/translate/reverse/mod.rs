//! Reverse direction (C.10): serving Anthropic's native `POST /v1/messages` from an
//! OpenAI-compatible upstream.
//!
//! - `request`: Anthropic Messages request → OpenAI Chat Completions request.
//!
//! Everything works on `serde_json::Value` and never panics on malformed input: the
//! upstream and the client are both untrusted.

pub mod request;

pub use request::anthropic_to_openai_request;
