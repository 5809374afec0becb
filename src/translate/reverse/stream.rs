//! OpenAI `chat.completion.chunk` SSE → Anthropic Messages SSE (C.10 streaming, B.7 order).
//!
//! Output per message: `message_start`; per content block `content_block_start`,
//! deltas, `content_block_stop` with indexes 0,1,2…; then `message_delta` and
//! `message_stop`. Every frame is `event: <type>\ndata: <json>\n\n` with the event name
//! taken from the JSON's own `type`, so the two can never disagree.
//!
//! Decisions where the upstream protocol leaves room:
//! - The stop reason is held from `finish_reason` until usage arrives (the usage chunk
//!   comes after the finish chunk with `include_usage`), `[DONE]`, or the end of the body.
//! - A stream that reached `finish_reason` and then ended without `[DONE]` is complete
//!   (some servers omit `[DONE]`); one that ended without `finish_reason` and without
//!   `[DONE]` was cut off and ends with an `error` event, never a clean `message_stop`.
//! - `[DONE]` before any `finish_reason` is the upstream's explicit end, so the message
//!   completes (`end_turn`, or `tool_use` if tools were called).
//! - Tool-call fragments are keyed by the OpenAI `tool_calls[].index`. A fragment for a
//!   tool call whose block was already closed (an upstream interleaving calls) is still sent,
//!   as an `input_json_delta` on that call's own block index: dropping it would corrupt the
//!   call's input, blocks cannot be reopened, and the official SDKs accumulate deltas by
//!   `index` (the Python SDK re-parses `content[index]`'s buffer on every delta), so the
//!   final message is right.
//! - A tool call without arguments produces no `input_json_delta` at all, exactly like
//!   Anthropic's API for a no-argument tool; the SDK then keeps the `input: {}` from
//!   `content_block_start`. (Emitting a `"{}"` filler instead would corrupt the input if
//!   an interleaving upstream sent the arguments later.)
//! - `reasoning_content` (a non-standard extension) is dropped rather than turned into
//!   `thinking` blocks: such blocks would carry no valid signature, and the client did not
//!   necessarily ask for thinking. `refusal` text is sent as text (it is the only
//!   explanation the client gets).
//! - After `message_stop` or an `error` event nothing more is emitted, not even for a later
//!   transport error: the client already has a complete message or an error.

use bytes::BytesMut;
use serde_json::{Value, json};

use super::response::{anthropic_usage, fallback_tool_id, message_id, stop_reason_with_tools};
use crate::translate::{SseEvent, StreamTranslator};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet.
    Waiting,
    /// `message_start` sent; content may follow.
    Streaming,
    /// `finish_reason` seen; the stop reason is held for the usage.
    Finished,
    /// `message_stop` or `error` sent; everything else is ignored.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Text(u64),
    /// Position in `tools`.
    Tool(usize),
}

/// How a tool call is recognized across fragments.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ToolKey {
    /// The OpenAI `tool_calls[].index` (the normal case).
    Index(u64),
    /// For upstreams that omit `index`: the n-th call seen.
    Position(usize),
}

#[derive(Debug)]
struct ToolCall {
    key: ToolKey,
    id: String,
    block: u64,
}

/// Translates one OpenAI chat-completions stream into Anthropic Messages events.
#[derive(Debug)]
pub struct OpenAiToAnthropic {
    model: String,
    phase: Phase,
    next_block: u64,
    open: Option<OpenBlock>,
    tools: Vec<ToolCall>,
    stop_reason: &'static str,
    usage: Option<Value>,
}

impl OpenAiToAnthropic {
    /// `model` is reported in `message_start` (the client-facing model name).
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            phase: Phase::Waiting,
            next_block: 0,
            open: None,
            tools: Vec::new(),
            stop_reason: "end_turn",
            usage: None,
        }
    }

    fn on_chunk(&mut self, chunk: &Value, out: &mut BytesMut) {
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|choices| {
                // Only one choice is ever requested; anything else is not ours to merge.
                choices
                    .iter()
                    .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            });
        let usage = chunk.get("usage").filter(|u| u.is_object());
        if choice.is_none() && usage.is_none() {
            // Azure's leading `prompt_filter_results` chunk (`choices: []`, no usage), or an
            // object of a kind we do not know: neither starts the message.
            return;
        }
        self.start(chunk.get("id").and_then(Value::as_str), out);
        if let Some(usage) = usage {
            // Replace, never add: a usage object is always the running total.
            self.usage = Some(usage.clone());
        }
        if let (Phase::Streaming, Some(choice)) = (self.phase, choice) {
            if let Some(delta) = choice.get("delta") {
                self.on_delta(delta, out);
            }
            if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
                self.close_open_block(out);
                self.stop_reason = stop_reason_with_tools(Some(finish), !self.tools.is_empty());
                self.phase = Phase::Finished;
            }
        }
        if self.phase == Phase::Finished && usage.is_some() {
            self.finish(out);
        }
    }

    /// One delta, split into separate block events in Anthropic's order: text, then tools.
    fn on_delta(&mut self, delta: &Value, out: &mut BytesMut) {
        for field in ["content", "refusal"] {
            if let Some(text) = delta.get(field).and_then(Value::as_str) {
                self.on_text(text, out);
            }
        }
        if let Some(fragments) = delta.get("tool_calls").and_then(Value::as_array) {
            for fragment in fragments {
                self.on_tool_fragment(fragment, out);
            }
        }
    }

    fn on_text(&mut self, text: &str, out: &mut BytesMut) {
        // The first chunk usually carries `content: ""`; an empty block would be noise.
        if text.is_empty() {
            return;
        }
        let index = match self.open {
            Some(OpenBlock::Text(index)) => index,
            _ => {
                self.close_open_block(out);
                let index = self.allocate_block();
                emit(
                    out,
                    &json!({"type": "content_block_start", "index": index,
                                  "content_block": {"type": "text", "text": ""}}),
                );
                self.open = Some(OpenBlock::Text(index));
                index
            }
        };
        emit(
            out,
            &json!({"type": "content_block_delta", "index": index,
                          "delta": {"type": "text_delta", "text": text}}),
        );
    }

    fn on_tool_fragment(&mut self, fragment: &Value, out: &mut BytesMut) {
        let position = match self.find_tool(fragment) {
            // A continuation, including from servers that repeat `id`/`name` on every
            // fragment of the same call.
            Some(position) => position,
            None => self.open_tool(fragment, out),
        };
        let arguments = fragment
            .get("function")
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let (false, Some(tool)) = (arguments.is_empty(), self.tools.get(position)) {
            emit(
                out,
                &json!({"type": "content_block_delta", "index": tool.block,
                              "delta": {"type": "input_json_delta", "partial_json": arguments}}),
            );
        }
    }

    fn find_tool(&self, fragment: &Value) -> Option<usize> {
        if let Some(index) = fragment.get("index").and_then(Value::as_u64) {
            return self
                .tools
                .iter()
                .position(|t| t.key == ToolKey::Index(index));
        }
        match fragment.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => self.tools.iter().position(|t| t.id == id),
            // No index and no id: the latest call continues.
            _ => self.tools.len().checked_sub(1),
        }
    }

    /// Closes the open block and starts a `tool_use` block; returns its position in `tools`.
    fn open_tool(&mut self, fragment: &Value, out: &mut BytesMut) -> usize {
        self.close_open_block(out);
        let block = self.allocate_block();
        let position = self.tools.len();
        let key = fragment
            .get("index")
            .and_then(Value::as_u64)
            .map_or(ToolKey::Position(position), ToolKey::Index);
        let id = fragment
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map_or_else(|| fallback_tool_id(position), str::to_owned);
        let name = fragment
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        // `input` is always `{}` here; the real input arrives as `input_json_delta`s.
        emit(
            out,
            &json!({"type": "content_block_start", "index": block,
                          "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}}),
        );
        self.tools.push(ToolCall { key, id, block });
        self.open = Some(OpenBlock::Tool(position));
        position
    }

    fn allocate_block(&mut self) -> u64 {
        let index = self.next_block;
        self.next_block += 1;
        index
    }

    fn close_open_block(&mut self, out: &mut BytesMut) {
        let index = match self.open.take() {
            None => return,
            Some(OpenBlock::Text(index)) => index,
            Some(OpenBlock::Tool(position)) => match self.tools.get(position) {
                Some(tool) => tool.block,
                None => return,
            },
        };
        emit(out, &json!({"type": "content_block_stop", "index": index}));
    }

    fn start(&mut self, upstream_id: Option<&str>, out: &mut BytesMut) {
        if self.phase != Phase::Waiting {
            return;
        }
        // Zeros: OpenAI reports usage only at the end; the real counts go into
        // `message_delta.usage`, which the SDKs apply over these.
        emit(
            out,
            &json!({"type": "message_start", "message": {
            "id": message_id(upstream_id), "type": "message", "role": "assistant",
            "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        );
        self.phase = Phase::Streaming;
    }

    /// Completes the message: closes any open block, then `message_delta` + `message_stop`.
    fn finish(&mut self, out: &mut BytesMut) {
        match self.phase {
            Phase::Done => return,
            Phase::Waiting => self.start(None, out),
            Phase::Streaming => {
                self.close_open_block(out);
                self.stop_reason = stop_reason_with_tools(None, !self.tools.is_empty());
            }
            Phase::Finished => {}
        }
        // `output_tokens` is required in `message_delta.usage`; without upstream usage the
        // honest value is unknown, and 0 is what the SDK already holds from message_start.
        let usage = self
            .usage
            .as_ref()
            .map_or_else(|| json!({"output_tokens": 0}), anthropic_usage);
        emit(
            out,
            &json!({"type": "message_delta",
                          "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
                          "usage": usage}),
        );
        emit(out, &json!({"type": "message_stop"}));
        self.phase = Phase::Done;
    }

    /// An in-band `error` event; nothing is emitted after it.
    fn fail(&mut self, error_type: &str, message: &str, out: &mut BytesMut) {
        if self.phase == Phase::Done {
            return;
        }
        emit(
            out,
            &json!({"type": "error", "error": {"type": error_type, "message": message}}),
        );
        self.phase = Phase::Done;
    }
}

impl StreamTranslator for OpenAiToAnthropic {
    fn usage(&self) -> Option<Value> {
        self.usage.clone()
    }

    fn on_event(&mut self, event: &SseEvent, out: &mut BytesMut) {
        if self.phase == Phase::Done {
            return;
        }
        let data = event.data.trim();
        let named_error = event.event.as_deref() == Some("error");
        if data.is_empty() && !named_error {
            return;
        }
        // The OpenAI SDK also ends at any payload starting with `[DONE]`.
        if data.starts_with("[DONE]") {
            self.finish(out);
            return;
        }
        let parsed = serde_json::from_str::<Value>(data);
        let chunk = match parsed {
            Ok(chunk) => chunk,
            Err(_) if named_error => {
                let message = if data.is_empty() {
                    "upstream error"
                } else {
                    data
                };
                return self.fail("api_error", message, out);
            }
            // Not JSON and not `[DONE]`: the stream is not what we can translate, and
            // skipping it could silently drop content.
            Err(_) => {
                return self.fail("api_error", "upstream sent a malformed stream event", out);
            }
        };
        if let Some((error_type, message)) = upstream_error(&chunk, named_error) {
            return self.fail(error_type, &message, out);
        }
        self.on_chunk(&chunk, out);
    }

    fn on_end(&mut self, out: &mut BytesMut) {
        match self.phase {
            Phase::Done => {}
            Phase::Finished => self.finish(out),
            Phase::Waiting | Phase::Streaming => self.fail(
                "api_error",
                "upstream stream ended before the response was complete",
                out,
            ),
        }
    }

    fn on_error(&mut self, message: &str, out: &mut BytesMut) {
        self.fail("api_error", message, out);
    }
}

/// Writes one Anthropic SSE frame; the event name is the JSON's `type`.
fn emit(out: &mut BytesMut, data: &Value) {
    let event_type = data.get("type").and_then(Value::as_str).unwrap_or("error");
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event_type.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// Recognizes an in-band upstream error — `{"error": …}` (OpenAI, OpenRouter) or
/// `{"object": "error", …}` (vLLM and similar) — as (Anthropic error type, message).
fn upstream_error(chunk: &Value, named_error: bool) -> Option<(&'static str, String)> {
    let error = match chunk.get("error") {
        Some(error) if !error.is_null() => error,
        _ if named_error || chunk.get("object").and_then(Value::as_str) == Some("error") => chunk,
        _ => return None,
    };
    let message = match error {
        Value::String(s) => s.clone(),
        _ => error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_owned),
    };
    Some((error_type(error), message))
}

/// Maps an upstream error object to an Anthropic error type (C.11): a numeric `code` is an
/// HTTP status (OpenRouter), otherwise OpenAI's `type`/`code` strings decide.
fn error_type(error: &Value) -> &'static str {
    let code = error.get("code");
    let status = code
        .and_then(Value::as_u64)
        .or_else(|| code.and_then(Value::as_str).and_then(|c| c.parse().ok()));
    if let Some(status) = status {
        return match status {
            400 | 422 => "invalid_request_error",
            401 => "authentication_error",
            402 => "billing_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            504 => "timeout_error",
            _ => "api_error",
        };
    }
    let names = [error.get("type"), code];
    for name in names.into_iter().flatten().filter_map(Value::as_str) {
        let mapped = match name {
            "invalid_request_error" | "context_length_exceeded" | "invalid_request" => {
                "invalid_request_error"
            }
            "authentication_error" | "invalid_api_key" => "authentication_error",
            "permission_error" => "permission_error",
            "not_found_error" | "model_not_found" => "not_found_error",
            "rate_limit_error" | "rate_limit_exceeded" | "requests" | "tokens" => {
                "rate_limit_error"
            }
            "insufficient_quota" | "billing_error" => "billing_error",
            "overloaded_error" | "overloaded" | "server_overloaded" => "overloaded_error",
            "timeout_error" | "timeout" => "timeout_error",
            _ => continue,
        };
        return mapped;
    }
    "api_error"
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
