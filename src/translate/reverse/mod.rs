//! Reverse direction (C.10): serving Anthropic's native `POST /v1/messages` from an
//! OpenAI-compatible upstream.
//!
//! - `request`: Anthropic Messages request → OpenAI Chat Completions request.
//! - `response`: OpenAI `chat.completion` → Anthropic `Message`, plus the finish-reason
//!   (C.7) and usage (C.8) mappings the stream translator shares.
//! - `stream`: OpenAI `chat.completion.chunk` SSE → Anthropic SSE events (B.7 order).
//!
//! Everything works on `serde_json::Value` and never panics on malformed input: the
//! upstream and the client are both untrusted.

pub mod request;
pub mod response;
pub mod stream;

pub use request::anthropic_to_openai_request;
pub use response::{anthropic_usage, openai_to_anthropic_response, stop_reason};
pub use stream::OpenAiToAnthropic;
