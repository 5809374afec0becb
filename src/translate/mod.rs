//! Translation between the OpenAI Chat Completions and Anthropic Messages wire formats.
//!
//! Pure functions and state machines over `serde_json::Value` and bytes: no I/O, no keys,
//! no clocks read inside (callers pass `created`). Rules follow
//! `shared/reference/api-formats.md` sections C.1–C.11; where the reference leaves a choice
//! ([Rec]), the choice is stated next to the code that makes it.
//!
//! - `sse`: incremental Server-Sent Events parser.
//! - `request`: OpenAI request → Anthropic request (C.1–C.5).
//! - `response`: Anthropic response → OpenAI response, finish reasons, usage (C.6–C.8).
//! - `stream`: Anthropic SSE events → OpenAI chunks (C.9).
//! - `reverse`: the other direction for `/v1/messages` on OpenAI upstreams (C.10).
//! - `errors`: error envelopes and rate-limit headers across formats (C.11).

mod borrowed;
pub mod errors;
pub mod request;
pub mod response;
pub mod reverse;
pub mod sse;
pub mod stream;

use bytes::BytesMut;

/// A client request that cannot be translated; becomes a 400 in the endpoint's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateError {
    pub message: String,
    /// The offending OpenAI/Anthropic parameter, when there is one (e.g. `"n"`).
    pub param: Option<String>,
}

/// One Server-Sent Event as dispatched by the parser.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if the event had one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Turns one upstream SSE stream into the client's format, event by event.
///
/// Output is appended to `out` as complete SSE frames (`data: …\n\n`, with `event: …` lines
/// for Anthropic output). The caller flushes `out` to the client after every upstream chunk.
pub trait StreamTranslator: Send + 'static {
    /// One upstream event.
    fn on_event(&mut self, event: &SseEvent, out: &mut BytesMut);
    /// The upstream body ended. If the stream was not complete (no terminal event), this
    /// must emit an in-band error, never a clean finish.
    fn on_end(&mut self, out: &mut BytesMut);
    /// The upstream failed mid-stream (transport error, idle timeout). Emits an in-band
    /// error carrying `message`; nothing else is emitted afterwards.
    fn on_error(&mut self, message: &str, out: &mut BytesMut);
    /// The token usage seen so far, as an OpenAI `usage` object, for accounting.
    fn usage(&self) -> Option<serde_json::Value> {
        None
    }
}
