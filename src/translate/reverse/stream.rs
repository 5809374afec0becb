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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn data(value: Value) -> SseEvent {
        SseEvent {
            event: None,
            data: value.to_string(),
        }
    }

    fn done() -> SseEvent {
        SseEvent {
            event: None,
            data: "[DONE]".to_owned(),
        }
    }

    fn chunk(delta: Value, finish: Option<&str>) -> SseEvent {
        data(
            json!({"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1,
                    "model": "gpt-4o", "usage": null,
                    "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}),
        )
    }

    fn text(t: &str) -> SseEvent {
        chunk(json!({"content": t}), None)
    }

    fn tool_start(index: u64, id: &str, name: &str) -> Value {
        json!({"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}})
    }

    fn tool_args(index: u64, arguments: &str) -> Value {
        json!({"index": index, "function": {"arguments": arguments}})
    }

    fn tools(fragments: Value) -> SseEvent {
        chunk(json!({"tool_calls": fragments}), None)
    }

    fn finish(reason: &str) -> SseEvent {
        chunk(json!({}), Some(reason))
    }

    fn usage(prompt: u64, completion: u64, cached: u64) -> SseEvent {
        data(
            json!({"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                    "choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                    "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": cached}}}),
        )
    }

    fn feed(t: &mut OpenAiToAnthropic, events: &[SseEvent]) -> Vec<Value> {
        let mut out = BytesMut::new();
        for event in events {
            t.on_event(event, &mut out);
        }
        frames(&out)
    }

    /// Feeds the events, then ends the upstream body.
    fn run(events: &[SseEvent]) -> Vec<Value> {
        let mut t = OpenAiToAnthropic::new("claude-x");
        let mut out = BytesMut::new();
        for event in events {
            t.on_event(event, &mut out);
        }
        t.on_end(&mut out);
        frames(&out)
    }

    /// Parses output frames, checking the framing: `event: T\ndata: {json with type T}\n\n`.
    fn frames(out: &[u8]) -> Vec<Value> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.is_empty() || text.ends_with("\n\n"), "{text:?}");
        assert!(!text.contains("[DONE]"), "Anthropic streams have no [DONE]");
        text.split_terminator("\n\n")
            .map(|frame| {
                let (event_line, data_line) = frame.split_once('\n').unwrap();
                let name = event_line.strip_prefix("event: ").unwrap();
                let data: Value =
                    serde_json::from_str(data_line.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], name, "event line must equal the JSON type");
                data
            })
            .collect()
    }

    fn types(frames: &[Value]) -> Vec<&str> {
        frames.iter().map(|f| f["type"].as_str().unwrap()).collect()
    }

    fn of_type<'a>(frames: &'a [Value], kind: &str) -> Vec<&'a Value> {
        frames.iter().filter(|f| f["type"] == kind).collect()
    }

    /// Checks B.7's grammar strictly: message_start, then blocks start→deltas→stop with
    /// indexes 0,1,2…, then message_delta, message_stop.
    fn assert_anthropic_order(frames: &[Value]) {
        let kinds = types(frames);
        assert_eq!(kinds.first(), Some(&"message_start"), "{kinds:?}");
        assert_eq!(
            &kinds[kinds.len() - 2..],
            ["message_delta", "message_stop"],
            "{kinds:?}"
        );
        let mut open: Option<u64> = None;
        let mut next = 0;
        for frame in &frames[1..frames.len() - 2] {
            let index = frame["index"].as_u64().unwrap();
            match frame["type"].as_str().unwrap() {
                "content_block_start" => {
                    assert_eq!((open, index), (None, next), "{kinds:?}");
                    open = Some(index);
                    next += 1;
                }
                "content_block_delta" => assert_eq!(open, Some(index)),
                "content_block_stop" => assert_eq!(open.take(), Some(index)),
                other => panic!("unexpected {other} between message_start and message_delta"),
            }
        }
        assert_eq!(open, None, "every block is closed before message_delta");
    }

    /// Builds the final message the way the Anthropic SDK's stream accumulator does: blocks
    /// by `index`, tool input from the concatenated `partial_json` (left as the start
    /// event's `{}` when nothing non-empty arrived), usage fields from `message_delta`
    /// applied over `message_start`'s. Err(message) on an `error` event.
    fn assemble(frames: &[Value]) -> Result<Value, String> {
        let mut message = None::<Value>;
        let mut buffers = Vec::<String>::new();
        for frame in frames {
            let kind = frame["type"].as_str().unwrap();
            if kind == "error" {
                return Err(frame["error"]["message"].as_str().unwrap().to_owned());
            }
            if kind == "message_start" {
                message = Some(frame["message"].clone());
                continue;
            }
            let m = message.as_mut().unwrap();
            let index = frame["index"].as_u64().unwrap_or(0) as usize;
            match kind {
                "content_block_start" => {
                    assert_eq!(index, buffers.len());
                    m["content"]
                        .as_array_mut()
                        .unwrap()
                        .push(frame["content_block"].clone());
                    buffers.push(String::new());
                }
                "content_block_delta" => match frame["delta"]["type"].as_str().unwrap() {
                    "text_delta" => {
                        let t = format!(
                            "{}{}",
                            m["content"][index]["text"].as_str().unwrap(),
                            frame["delta"]["text"].as_str().unwrap()
                        );
                        m["content"][index]["text"] = t.into();
                    }
                    "input_json_delta" => {
                        assert_eq!(m["content"][index]["type"], "tool_use");
                        buffers[index].push_str(frame["delta"]["partial_json"].as_str().unwrap());
                    }
                    other => panic!("unexpected delta {other}"),
                },
                "message_delta" => {
                    m["stop_reason"] = frame["delta"]["stop_reason"].clone();
                    m["stop_sequence"] = frame["delta"]["stop_sequence"].clone();
                    for (key, value) in frame["usage"].as_object().unwrap() {
                        m["usage"][key] = value.clone();
                    }
                }
                _ => {}
            }
        }
        let mut m = message.unwrap();
        for (index, buffer) in buffers.iter().enumerate() {
            if !buffer.is_empty() {
                m["content"][index]["input"] = serde_json::from_str(buffer).unwrap();
            }
        }
        Ok(m)
    }

    #[test]
    fn e61_events_come_in_anthropic_order_with_sequential_indexes() {
        let frames = run(&[
            chunk(json!({"role": "assistant", "content": ""}), None),
            text("Okay, "),
            text("let's check"),
            tools(json!([tool_start(0, "call_1", "get_weather")])),
            tools(json!([tool_args(0, "{\"location\":")])),
            tools(json!([tool_args(0, "\"SF\"}")])),
            finish("tool_calls"),
            usage(10, 5, 0),
            done(),
        ]);
        assert_eq!(
            types(&frames),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_anthropic_order(&frames);
        assert_eq!(
            frames[0],
            json!({"type": "message_start", "message": {
            "id": "msg_chatcmpl-123", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}}})
        );
        assert_eq!(
            frames[1]["content_block"],
            json!({"type": "text", "text": ""})
        );
        assert_eq!(frames[10], json!({"type": "message_stop"}));
        let message = assemble(&frames).unwrap();
        assert_eq!(
            message["content"][0],
            json!({"type": "text", "text": "Okay, let's check"})
        );
        assert_eq!(message["content"][1]["input"], json!({"location": "SF"}));
        assert_eq!(message["stop_reason"], "tool_use");
    }

    #[test]
    fn e62_finish_reasons_become_stop_reasons_in_message_delta() {
        for (finish_reason, stop) in [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("tool_calls", "tool_use"),
            ("content_filter", "refusal"),
        ] {
            let frames = run(&[text("x"), finish(finish_reason), usage(1, 1, 0), done()]);
            assert_anthropic_order(&frames);
            let delta = of_type(&frames, "message_delta");
            assert_eq!(delta.len(), 1);
            assert_eq!(
                delta[0]["delta"],
                json!({"stop_reason": stop, "stop_sequence": null})
            );
        }
    }

    #[test]
    fn e63_tool_call_fragments_become_a_tool_use_block_and_input_json_deltas() {
        let arguments = ["{\"lo", "cation\": \"Bos", "ton\", \"unit\": \"c\"}"];
        let mut events = vec![tools(json!([tool_start(0, "call_9oOU", "get_weather")]))];
        events.extend(arguments.iter().map(|a| tools(json!([tool_args(0, a)]))));
        events.extend([finish("tool_calls"), usage(3, 4, 0), done()]);
        let frames = run(&events);
        assert_anthropic_order(&frames);
        assert_eq!(
            frames[1],
            json!({"type": "content_block_start", "index": 0, "content_block":
            {"type": "tool_use", "id": "call_9oOU", "name": "get_weather", "input": {}}})
        );
        let joined: String = of_type(&frames, "content_block_delta")
            .iter()
            .map(|f| {
                assert_eq!(f["delta"]["type"], "input_json_delta");
                f["delta"]["partial_json"].as_str().unwrap()
            })
            .collect();
        assert_eq!(
            joined,
            arguments.concat(),
            "fragments pass verbatim, no `{{}}` prefix"
        );
        let input: Value = serde_json::from_str(&joined).unwrap();
        assert_eq!(input, json!({"location": "Boston", "unit": "c"}));
    }

    #[test]
    fn e64_usage_waits_for_the_usage_chunk_and_maps_cached_tokens() {
        let mut t = OpenAiToAnthropic::new("claude-x");
        let frames = feed(&mut t, &[text("hi"), finish("stop")]);
        assert!(
            of_type(&frames, "message_delta").is_empty(),
            "stop reason is held for usage"
        );
        assert_eq!(types(&frames).last(), Some(&"content_block_stop"));
        let frames = feed(&mut t, &[usage(1000, 50, 800)]);
        assert_eq!(types(&frames), ["message_delta", "message_stop"]);
        assert_eq!(
            frames[0]["usage"],
            json!({"input_tokens": 200, "output_tokens": 50, "cache_read_input_tokens": 800})
        );
        assert!(
            feed(&mut t, &[done()]).is_empty(),
            "[DONE] after message_stop adds nothing"
        );
        let mut out = BytesMut::new();
        t.on_end(&mut out);
        t.on_error("late", &mut out);
        assert!(out.is_empty(), "nothing after message_stop");
    }

    #[test]
    fn no_argument_tool_call_assembles_to_an_empty_object() {
        for fragments in [
            json!([tool_start(0, "call_1", "now")]),
            json!([{"index": 0, "id": "call_1", "type": "function", "function": {"name": "now"}}]),
        ] {
            let frames = run(&[tools(fragments), finish("tool_calls"), done()]);
            assert_anthropic_order(&frames);
            assert!(
                of_type(&frames, "content_block_delta").is_empty(),
                "like Anthropic's API: no partial_json, the SDK keeps the start event's input {{}}"
            );
            let message = assemble(&frames).unwrap();
            assert_eq!(
                message["content"],
                json!([{"type": "tool_use", "id": "call_1", "name": "now", "input": {}}])
            );
        }
        let frames = run(&[
            tools(json!([tool_start(0, "c", "now")])),
            tools(json!([tool_args(0, "{}")])),
            finish("tool_calls"),
            done(),
        ]);
        assert_eq!(assemble(&frames).unwrap()["content"][0]["input"], json!({}));
    }

    #[test]
    fn two_parallel_tool_calls_get_separate_blocks() {
        let frames = run(&[
            chunk(json!({"role": "assistant", "content": null}), None),
            tools(json!([tool_start(0, "call_a", "get_weather")])),
            tools(json!([tool_args(0, "{\"city\":\"SF\"}")])),
            tools(json!([tool_start(1, "call_b", "get_time")])),
            tools(json!([tool_args(1, "{\"tz\":\"PST\"}")])),
            finish("tool_calls"),
            usage(20, 10, 0),
            done(),
        ]);
        assert_anthropic_order(&frames);
        let starts = of_type(&frames, "content_block_start");
        assert_eq!(
            (starts[0]["index"].as_u64(), starts[1]["index"].as_u64()),
            (Some(0), Some(1))
        );
        let message = assemble(&frames).unwrap();
        assert_eq!(
            message["content"],
            json!([
            {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "SF"}},
            {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {"tz": "PST"}}])
        );
        assert_eq!(
            message["usage"],
            json!({"input_tokens": 20, "output_tokens": 10})
        );
    }

    #[test]
    fn text_then_tool_call_closes_the_text_block_first() {
        let frames = run(&[
            text("Let me look."),
            tools(json!([tool_start(0, "call_1", "search")])),
            tools(json!([tool_args(0, "{\"q\":\"x\"}")])),
            finish("tool_calls"),
            done(),
        ]);
        assert_anthropic_order(&frames);
        assert_eq!(
            &types(&frames)[1..5],
            [
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start"
            ]
        );
        assert_eq!(frames[3], json!({"type": "content_block_stop", "index": 0}));
        assert_eq!(frames[4]["index"], 1);
        let message = assemble(&frames).unwrap();
        assert_eq!(message["content"][0]["text"], "Let me look.");
        assert_eq!(message["content"][1]["input"], json!({"q": "x"}));
    }

    #[test]
    fn one_chunk_with_several_kinds_is_split_into_separate_events() {
        let frames = run(&[
            chunk(
                json!({"content": "Sure.", "tool_calls": [
                {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                {"index": 1, "id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]}),
                Some("tool_calls"),
            ),
            usage(5, 6, 0),
        ]);
        assert_anthropic_order(&frames);
        assert_eq!(of_type(&frames, "content_block_start").len(), 3);
        let message = assemble(&frames).unwrap();
        assert_eq!(
            message["content"],
            json!([
            {"type": "text", "text": "Sure."},
            {"type": "tool_use", "id": "c1", "name": "f", "input": {"a": 1}},
            {"type": "tool_use", "id": "c2", "name": "g", "input": {}}])
        );
    }

    #[test]
    fn truncated_upstream_ends_with_an_error_event_not_message_stop() {
        let frames = run(&[text("Hel"), text("lo")]);
        let kinds = types(&frames);
        assert_eq!(kinds.last(), Some(&"error"), "{kinds:?}");
        assert!(!kinds.contains(&"message_stop") && !kinds.contains(&"message_delta"));
        assert_eq!(frames.last().unwrap()["error"]["type"], "api_error");
        assert!(assemble(&frames).is_err());

        // Cut off in the middle of a tool call, and an upstream that sent nothing at all.
        let frames = run(&[
            tools(json!([tool_start(0, "c", "f")])),
            tools(json!([tool_args(0, "{\"a\"")])),
        ]);
        assert_eq!(types(&frames).last(), Some(&"error"));
        assert_eq!(types(&run(&[])), ["error"]);
    }

    #[test]
    fn in_band_upstream_errors_become_error_events_and_end_the_stream() {
        let cases = [
            (
                json!({"error": {"message": "Rate limit reached", "type": "requests",
                              "param": null, "code": "rate_limit_exceeded"}}),
                "rate_limit_error",
                "Rate limit reached",
            ),
            (
                json!({"object": "error", "message": "bad input", "type": "BadRequestError", "code": 400}),
                "invalid_request_error",
                "bad input",
            ),
            (
                json!({"id": "x", "choices": [], "error": {"code": 502, "message": "Provider returned error"}}),
                "api_error",
                "Provider returned error",
            ),
            (
                json!({"error": {"message": "Overloaded", "type": "overloaded_error"}}),
                "overloaded_error",
                "Overloaded",
            ),
            (
                json!({"error": "plain string"}),
                "api_error",
                "plain string",
            ),
        ];
        for (error, error_type, message) in cases {
            let frames = run(&[
                text("partial"),
                data(error),
                text("more"),
                finish("stop"),
                done(),
            ]);
            assert_eq!(
                types(&frames),
                [
                    "message_start",
                    "content_block_start",
                    "content_block_delta",
                    "error"
                ]
            );
            assert_eq!(
                frames[3],
                json!({"type": "error", "error": {"type": error_type, "message": message}})
            );
        }
        let named = SseEvent {
            event: Some("error".into()),
            data: "upstream exploded".into(),
        };
        let frames = run(&[named]);
        assert_eq!(
            frames,
            [
                json!({"type": "error", "error": {"type": "api_error", "message": "upstream exploded"}})
            ]
        );
    }

    #[test]
    fn on_error_mid_stream_emits_an_error_event_and_then_nothing() {
        let mut t = OpenAiToAnthropic::new("claude-x");
        let mut out = BytesMut::new();
        t.on_event(&text("hi"), &mut out);
        t.on_error("idle timeout", &mut out);
        t.on_event(&finish("stop"), &mut out);
        t.on_end(&mut out);
        let frames = frames(&out);
        assert_eq!(
            frames.last().unwrap(),
            &json!({"type": "error", "error": {"type": "api_error", "message": "idle timeout"}})
        );
        assert_eq!(of_type(&frames, "error").len(), 1);
    }

    #[test]
    fn azure_empty_first_chunk_and_null_usage_are_tolerated() {
        let azure = data(
            json!({"id": "", "object": "", "created": 0, "model": "", "choices": [],
            "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}),
        );
        let mut t = OpenAiToAnthropic::new("claude-x");
        assert!(
            feed(&mut t, &[azure]).is_empty(),
            "not a message start, not usage"
        );
        let frames = feed(
            &mut t,
            &[
                chunk(json!({"role": "assistant", "content": ""}), None),
                text("ok"),
                finish("stop"),
                done(),
            ],
        );
        assert_anthropic_order(&frames);
        assert_eq!(frames[0]["message"]["id"], "msg_chatcmpl-123");
        let message = assemble(&frames).unwrap();
        assert_eq!(message["content"], json!([{"type": "text", "text": "ok"}]));
        assert_eq!(
            message["usage"],
            json!({"input_tokens": 0, "output_tokens": 0})
        );
    }

    #[test]
    fn finished_stream_without_done_is_complete() {
        let frames = run(&[text("ok"), finish("length")]);
        assert_anthropic_order(&frames);
        assert_eq!(
            of_type(&frames, "message_delta")[0]["delta"]["stop_reason"],
            "max_tokens"
        );
        assert_eq!(
            of_type(&frames, "message_delta")[0]["usage"],
            json!({"output_tokens": 0})
        );
    }

    #[test]
    fn done_without_finish_reason_completes_the_message() {
        let frames = run(&[text("ok"), done()]);
        assert_anthropic_order(&frames);
        assert_eq!(assemble(&frames).unwrap()["stop_reason"], "end_turn");
        let frames = run(&[tools(json!([tool_start(0, "c", "f")])), done()]);
        assert_eq!(assemble(&frames).unwrap()["stop_reason"], "tool_use");
    }

    #[test]
    fn usage_in_the_finish_chunk_completes_immediately() {
        let mut finish_with_usage = json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                                           "usage": {"prompt_tokens": 7, "completion_tokens": 2}});
        let mut t = OpenAiToAnthropic::new("m");
        let frames = feed(&mut t, &[text("a"), data(finish_with_usage.take())]);
        assert_eq!(
            &types(&frames)[frames.len() - 2..],
            ["message_delta", "message_stop"]
        );
        assert_eq!(
            frames[frames.len() - 2]["usage"],
            json!({"input_tokens": 7, "output_tokens": 2})
        );
    }

    #[test]
    fn stop_finish_with_tool_calls_reports_tool_use() {
        let frames = run(&[
            tools(json!([tool_start(0, "c", "f")])),
            finish("stop"),
            done(),
        ]);
        assert_eq!(assemble(&frames).unwrap()["stop_reason"], "tool_use");
    }

    #[test]
    fn interleaved_fragments_reach_their_own_tool_block() {
        let frames = run(&[
            tools(json!([
                tool_start(0, "call_a", "f"),
                tool_start(1, "call_b", "g")
            ])),
            tools(json!([tool_args(0, "{\"a\":1}")])),
            tools(json!([tool_args(1, "{\"b\":2}")])),
            finish("tool_calls"),
            done(),
        ]);
        let deltas = of_type(&frames, "content_block_delta");
        assert_eq!(
            (deltas[0]["index"].as_u64(), deltas[1]["index"].as_u64()),
            (Some(0), Some(1))
        );
        let message = assemble(&frames).unwrap();
        assert_eq!(message["content"][0]["input"], json!({"a": 1}));
        assert_eq!(message["content"][1]["input"], json!({"b": 2}));
    }

    #[test]
    fn repeated_ids_and_missing_indexes_continue_the_same_call() {
        let repeat = |args: &str| {
            json!([{"index": 0, "id": "call_1", "type": "function",
                                           "function": {"name": "f", "arguments": args}}])
        };
        let frames = run(&[
            tools(repeat("{\"x\":")),
            tools(repeat("1}")),
            finish("tool_calls"),
            done(),
        ]);
        assert_eq!(of_type(&frames, "content_block_start").len(), 1);
        assert_eq!(
            assemble(&frames).unwrap()["content"][0]["input"],
            json!({"x": 1})
        );

        let no_index = |id: Option<&str>, args: &str| {
            let mut f = json!({"function": {"name": "f", "arguments": args}});
            if let Some(id) = id {
                f["id"] = id.into();
            }
            json!([f])
        };
        let frames = run(&[
            tools(no_index(Some("a"), "{\"n\":")),
            tools(no_index(None, "1}")),
            tools(no_index(Some("b"), "{}")),
            finish("tool_calls"),
            done(),
        ]);
        assert_anthropic_order(&frames);
        let message = assemble(&frames).unwrap();
        assert_eq!(message["content"][0]["input"], json!({"n": 1}));
        assert_eq!(message["content"][1]["id"], "b");
    }

    #[test]
    fn malformed_input_never_panics_and_output_stays_well_formed() {
        let junk = [
            "null",
            "[]",
            "3",
            "\"s\"",
            "{}",
            "{\"choices\": \"x\"}",
            "{\"choices\": [null, 1]}",
            "{\"choices\": [{\"delta\": {\"tool_calls\": [{\"index\": \"a\"}, null, 7]}}]}",
            "{\"choices\": [{\"delta\": {\"content\": 5, \"tool_calls\": {}}}]}",
            "{\"choices\": [{\"index\": 0, \"delta\": null, \"finish_reason\": 9}]}",
            "{\"usage\": {\"prompt_tokens\": -1}, \"choices\": []}",
            "{\"error\": null}",
        ];
        let mut events: Vec<SseEvent> = junk
            .iter()
            .map(|d| SseEvent {
                event: None,
                data: (*d).to_owned(),
            })
            .collect();
        events.push(done());
        let frames = run(&events);
        assert_eq!(types(&frames).last(), Some(&"message_stop"));
        // Non-JSON data is an error, not silently skipped content.
        let frames = run(&[
            text("a"),
            SseEvent {
                event: None,
                data: "{\"trunc".into(),
            },
        ]);
        assert_eq!(types(&frames).last(), Some(&"error"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_event_data_never_panics(payloads in proptest::collection::vec(".{0,40}", 0..8)) {
            let events: Vec<SseEvent> = payloads
                .into_iter()
                .map(|data| SseEvent { event: None, data })
                .collect();
            let frames = run(&events);
            let last = types(&frames).last().map(|s| s.to_string());
            proptest::prop_assert!(matches!(last.as_deref(), Some("error" | "message_stop")));
        }
    }
}
