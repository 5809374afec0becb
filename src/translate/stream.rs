//! Anthropic Messages SSE events → OpenAI `chat.completion.chunk` SSE frames (C.9, tested
//! against E.3).
//!
//! One [`AnthropicToOpenAi`] per response. Events are parsed into small borrowed structs and
//! chunks are written by `#[derive(Serialize)]` structs straight into the output buffer:
//! this runs once per upstream event, and structs both avoid building `serde_json::Value`
//! trees and pin the key order clients see (`id, object, created, model, choices, usage`).
//!
//! Choices made where the reference leaves one, with their reasons:
//! - **One finish chunk, at `message_stop`.** Anthropic may send several `message_delta`
//!   events; each only records its stop reason and usage, and the single finish chunk is
//!   written at `message_stop` from the last stop reason seen. `message_stop` directly
//!   follows the last `message_delta`, so nothing reaches the client later, and a stream
//!   cut between the two gets an error instead of a finish it never completed.
//! - **No `[DONE]` after an error frame.** The OpenAI SDK raises on the `{"error": …}`
//!   payload before it would read `[DONE]`, so `[DONE]` adds nothing there, while a client
//!   that ignores unknown payloads would read `[DONE]` as a clean finish. Ending without it
//!   keeps an error from ever looking like success.
//! - **A stream must start with `message_start`.** If content arrives first anyway, the role
//!   chunk is written before it (role always first) with `chatcmpl-<created>` as the id.
//! - **Unparseable event data** in an event this translator acts on (`message_start`,
//!   `content_block_*`, `message_delta`, `message_stop`, `error`) is an upstream error:
//!   skipping it would silently drop part of the answer. In any other event it is ignored,
//!   like the event itself.
//! - **Tool arguments always parse.** A tool block with no non-empty fragment gets one
//!   `"{}"` fragment when it stops (or at `message_stop`, if the upstream never stopped it);
//!   if its start event carried a non-empty `input` (Anthropic never does; a compatible
//!   server might), that input is the fragment instead, so it is not lost.
//! - **`message_stop` without any `message_delta`** finishes with `stop`, C.7's mapping for
//!   a missing stop reason.

use std::borrow::Cow;

use bytes::{BufMut, BytesMut};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use super::borrowed::opt_str;
use super::response::{finish_reason, openai_usage};
use super::{SseEvent, StreamTranslator};

const DONE: &[u8] = b"data: [DONE]\n\n";
const CHUNK_OBJECT: &str = "chat.completion.chunk";

/// The error `type` for an upstream body that ended before `message_stop`.
pub const TRUNCATED_ERROR_TYPE: &str = "upstream_truncated";
/// The error `type` for a transport failure reported through `on_error`.
pub const UPSTREAM_ERROR_TYPE: &str = "upstream_error";
/// The error `type` for event data that is not the JSON its event type promises.
pub const INVALID_EVENT_ERROR_TYPE: &str = "upstream_invalid_event";

/// Translates one Anthropic Messages stream into OpenAI chat-completion chunks.
pub struct AnthropicToOpenAi {
    include_usage: bool,
    created: u64,
    id: String,
    model: String,
    /// The role chunk has been written.
    started: bool,
    /// `{"id":…,"object":…,"created":…,"model":…,"choices":`, the part every content chunk
    /// repeats, serialized once when the role chunk fixes `id` and `model`: escaping the same
    /// strings for every chunk was a tenth of a translated stream's instructions.
    head: Vec<u8>,
    /// `message_stop` or an error was handled: everything after is ignored.
    done: bool,
    /// The OpenAI index of the next tool call: tool calls count 0, 1, … among themselves,
    /// whatever their Anthropic block index.
    next_tool: u32,
    /// Tool-use blocks started and not yet stopped, by Anthropic block index. Blocks arrive
    /// one after another, so this holds at most one or two entries and a `Vec` beats a map.
    open_tools: Vec<OpenTool>,
    /// The last non-null `stop_reason` of a `message_delta`.
    stop_reason: Option<String>,
    usage: UsageCounts,
}

struct OpenTool {
    block: u64,
    ordinal: u32,
    /// A non-empty `partial_json` fragment was forwarded.
    saw_args: bool,
    /// The start event's `input` when it was a non-empty object. Anthropic always sends
    /// `{}` and streams the input; an upstream that puts the whole input here instead gets
    /// it forwarded once at the block's end, so the arguments are not lost.
    start_input: Option<String>,
}

/// Anthropic usage as the stream reports it: `message_start` sets it, and any non-null
/// value in a `message_delta` replaces it (the counts are cumulative, never summed).
#[derive(Default)]
struct UsageCounts {
    input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

impl UsageCounts {
    fn update(&mut self, usage: &Usage) {
        let replace = |slot: &mut Option<u64>, value: Option<u64>| {
            if value.is_some() {
                *slot = value;
            }
        };
        replace(&mut self.input_tokens, usage.input_tokens);
        replace(
            &mut self.cache_creation_input_tokens,
            usage.cache_creation_input_tokens,
        );
        replace(
            &mut self.cache_read_input_tokens,
            usage.cache_read_input_tokens,
        );
        replace(&mut self.output_tokens, usage.output_tokens);
    }

    /// The Anthropic-shaped usage object `openai_usage` maps (missing counts are left out
    /// and count as 0 there).
    fn to_anthropic(&self) -> Value {
        let mut map = serde_json::Map::new();
        for (key, value) in [
            ("input_tokens", self.input_tokens),
            (
                "cache_creation_input_tokens",
                self.cache_creation_input_tokens,
            ),
            ("cache_read_input_tokens", self.cache_read_input_tokens),
            ("output_tokens", self.output_tokens),
        ] {
            if let Some(n) = value {
                map.insert(key.to_owned(), Value::from(n));
            }
        }
        Value::Object(map)
    }
}

impl AnthropicToOpenAi {
    /// `include_usage` is the client's `stream_options.include_usage`; `created` is the
    /// timestamp every chunk carries; `model` is reported unless `message_start` names one.
    pub fn new(include_usage: bool, created: u64, model: &str) -> Self {
        AnthropicToOpenAi {
            include_usage,
            created,
            id: format!("chatcmpl-{created}"),
            model: model.to_owned(),
            started: false,
            head: Vec::new(),
            done: false,
            next_tool: 0,
            open_tools: Vec::new(),
            stop_reason: None,
            usage: UsageCounts::default(),
        }
    }

    fn on_message_start(&mut self, message: Option<StartMessage<'_>>, out: &mut BytesMut) {
        if self.started {
            return; // a repeated message_start would restart nothing; keep the first
        }
        if let Some(message) = message {
            if let Some(id) = message.id.filter(|id| !id.is_empty()) {
                self.id = format!("chatcmpl-{id}");
            }
            if let Some(model) = message.model.filter(|m| !m.is_empty()) {
                self.model = model.into_owned();
            }
            if let Some(usage) = &message.usage {
                self.usage.update(usage);
            }
        }
        self.ensure_started(out);
    }

    /// Writes the role chunk if it has not been written.
    fn ensure_started(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            self.head = self.chunk_head();
            let delta = OutDelta {
                role: Some("assistant"),
                content: Some(""),
                ..OutDelta::default()
            };
            self.write_chunk(out, delta, None);
        }
    }

    fn on_block_start(&mut self, index: Option<u64>, block: Option<Block<'_>>, out: &mut BytesMut) {
        let Some(block) = block else { return };
        match block.kind.as_deref() {
            Some("text") => {
                // The start block's text is empty in practice; forward it if not.
                if let Some(text) = block.text.filter(|t| !t.is_empty()) {
                    self.write_content(out, &text);
                }
            }
            Some("tool_use") => {
                let Some(block_index) = index else { return };
                let ordinal = self.next_tool;
                self.next_tool = self.next_tool.saturating_add(1);
                let start_input = block
                    .input
                    .filter(|raw| is_non_empty_object(raw))
                    .map(|raw| raw.get().to_owned());
                self.open_tools.retain(|t| t.block != block_index);
                self.open_tools.push(OpenTool {
                    block: block_index,
                    ordinal,
                    saw_args: false,
                    start_input,
                });
                self.ensure_started(out);
                // `arguments` is "" as OpenAI sends it: the start event's `input: {}` is a
                // placeholder, and prefixing it would corrupt the arguments (C.12 #3).
                let call = ToolCallChunk {
                    index: ordinal,
                    id: Some(block.id.as_deref().unwrap_or_default()),
                    kind: Some("function"),
                    function: FunctionChunk {
                        name: Some(block.name.as_deref().unwrap_or_default()),
                        arguments: "",
                    },
                };
                self.write_tool_call(out, call);
            }
            // thinking, redacted_thinking, server_tool_use, web_search_tool_result, and
            // whatever comes next have no place in a strict OpenAI chunk.
            _ => {}
        }
    }

    fn on_block_delta(
        &mut self,
        index: Option<u64>,
        delta: Option<InDelta<'_>>,
        out: &mut BytesMut,
    ) {
        let Some(delta) = delta else { return };
        match delta.kind.as_deref() {
            Some("text_delta") => {
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    self.write_content(out, &text);
                }
            }
            Some("input_json_delta") => {
                // Only client tools are open here; server tool input deltas find nothing.
                let Some(tool) = self.open_tools.iter_mut().find(|t| Some(t.block) == index) else {
                    return;
                };
                // Anthropic's first fragment is often "": nothing to forward.
                let Some(fragment) = delta.partial_json.filter(|f| !f.is_empty()) else {
                    return;
                };
                tool.saw_args = true;
                let ordinal = tool.ordinal;
                self.ensure_started(out);
                self.write_tool_call(out, ToolCallChunk::arguments(ordinal, &fragment));
            }
            // thinking_delta, signature_delta, citations_delta: no OpenAI equivalent.
            _ => {}
        }
    }

    fn on_block_stop(&mut self, index: Option<u64>, out: &mut BytesMut) {
        let Some(pos) = self.open_tools.iter().position(|t| Some(t.block) == index) else {
            return;
        };
        let tool = self.open_tools.swap_remove(pos);
        self.close_tool(tool, out);
    }

    /// A tool whose arguments never arrived gets `"{}"`, so the arguments the client
    /// accumulates always parse as JSON (C.12 #2, E.47).
    fn close_tool(&mut self, tool: OpenTool, out: &mut BytesMut) {
        if tool.saw_args {
            return;
        }
        let arguments = tool.start_input.as_deref().unwrap_or("{}");
        self.write_tool_call(out, ToolCallChunk::arguments(tool.ordinal, arguments));
    }

    fn on_message_stop(&mut self, out: &mut BytesMut) {
        self.ensure_started(out);
        // Blocks the upstream never closed still need parseable arguments.
        for tool in std::mem::take(&mut self.open_tools) {
            self.close_tool(tool, out);
        }
        let reason = finish_reason(self.stop_reason.as_deref());
        self.write_chunk(out, OutDelta::default(), Some(reason));
        if self.include_usage {
            let usage = openai_usage(&self.usage.to_anthropic());
            write_value(
                out,
                &Chunk {
                    id: &self.id,
                    object: CHUNK_OBJECT,
                    created: self.created,
                    model: &self.model,
                    choices: &[],
                    usage: UsageSlot::Totals(&usage),
                },
            );
        }
        out.extend_from_slice(DONE);
        self.done = true;
    }

    /// Writes the in-band error frame and ends the stream: no finish chunk and no `[DONE]`
    /// follow, so the error cannot be mistaken for a completed response.
    fn fail(&mut self, out: &mut BytesMut, kind: &str, message: &str) {
        self.done = true;
        write_value(
            out,
            &ErrorFrame {
                error: ErrorPayload {
                    message,
                    kind,
                    param: None,
                    code: None,
                },
            },
        );
    }

    fn write_content(&mut self, out: &mut BytesMut, text: &str) {
        self.ensure_started(out);
        let delta = OutDelta {
            content: Some(text),
            ..OutDelta::default()
        };
        self.write_chunk(out, delta, None);
    }

    fn write_tool_call(&self, out: &mut BytesMut, call: ToolCallChunk<'_>) {
        let delta = OutDelta {
            tool_calls: Some([call]),
            ..OutDelta::default()
        };
        self.write_chunk(out, delta, None);
    }

    fn write_chunk(&self, out: &mut BytesMut, delta: OutDelta<'_>, finish: Option<&str>) {
        let choices = [Choice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish,
        }];
        let usage = if self.include_usage {
            UsageSlot::Null
        } else {
            UsageSlot::Absent
        };
        if self.head.is_empty() {
            let chunk = Chunk {
                id: &self.id,
                object: CHUNK_OBJECT,
                created: self.created,
                model: &self.model,
                choices: &choices,
                usage,
            };
            return write_value(out, &chunk);
        }
        // The same bytes as the whole `Chunk`: its head, then the rest of its fields.
        write_frame(out, |out| {
            out.extend_from_slice(&self.head);
            serde_json::to_writer((&mut *out).writer(), &choices)?;
            out.extend_from_slice(match usage {
                UsageSlot::Null => b",\"usage\":null}",
                _ => b"}",
            });
            Ok(())
        });
    }

    /// The serialized start of every chunk, up to and with `"choices":`; empty if the
    /// serializer fails (never, with these types), and then chunks are serialized whole.
    fn chunk_head(&self) -> Vec<u8> {
        let head = ChunkHead {
            id: &self.id,
            object: CHUNK_OBJECT,
            created: self.created,
            model: &self.model,
        };
        let Ok(mut bytes) = serde_json::to_vec(&head) else {
            return Vec::new();
        };
        // `{…}` → `{…,"choices":`
        bytes.pop();
        bytes.extend_from_slice(b",\"choices\":");
        bytes
    }
}

/// Appends `data: <what json writes>\n\n`.
fn write_frame(out: &mut BytesMut, json: impl FnOnce(&mut BytesMut) -> serde_json::Result<()>) {
    let start = out.len();
    out.extend_from_slice(b"data: ");
    match json(out) {
        Ok(()) => out.extend_from_slice(b"\n\n"),
        Err(e) => {
            // Unreachable with these types (string keys, no fallible fields); never leave
            // half a frame behind.
            out.truncate(start);
            tracing::error!(error = %e, "could not serialize an OpenAI stream chunk");
        }
    }
}

/// `write_frame` of one value serialized whole.
fn write_value<T: Serialize>(out: &mut BytesMut, value: &T) {
    write_frame(out, |out| serde_json::to_writer(out.writer(), value));
}

impl StreamTranslator for AnthropicToOpenAi {
    fn usage(&self) -> Option<Value> {
        let seen = self.usage.input_tokens.is_some() || self.usage.output_tokens.is_some();
        seen.then(|| openai_usage(&self.usage.to_anthropic()))
    }

    fn on_event(&mut self, event: &SseEvent, out: &mut BytesMut) {
        if self.done {
            return;
        }
        let incoming: Incoming<'_> = match serde_json::from_str(&event.data) {
            Ok(incoming) => incoming,
            Err(e) => {
                if event.event.as_deref().is_some_and(is_handled_type) {
                    let message = format!("The upstream sent an unreadable event: {e}");
                    self.fail(out, INVALID_EVENT_ERROR_TYPE, &message);
                }
                return;
            }
        };
        // The payload's `type` equals the SSE event name in Anthropic streams; it is the
        // one used so that data-only streams from compatible servers work too.
        let kind = incoming
            .kind
            .as_deref()
            .or(event.event.as_deref())
            .unwrap_or_default();
        match kind {
            "message_start" => self.on_message_start(incoming.message, out),
            "content_block_start" => {
                self.on_block_start(incoming.index, incoming.content_block, out)
            }
            "content_block_delta" => self.on_block_delta(incoming.index, incoming.delta, out),
            "content_block_stop" => self.on_block_stop(incoming.index, out),
            "message_delta" => {
                if let Some(reason) = incoming.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason.into_owned());
                }
                if let Some(usage) = &incoming.usage {
                    self.usage.update(usage);
                }
            }
            "message_stop" => self.on_message_stop(out),
            "error" => {
                let error = incoming.error.unwrap_or_default();
                let kind = error.kind.as_deref().unwrap_or("api_error");
                let message = error
                    .message
                    .as_deref()
                    .filter(|m| !m.is_empty())
                    .unwrap_or("The upstream reported an error.");
                self.fail(out, kind, message);
            }
            // ping, and event types added after this was written (Anthropic's versioning
            // policy says clients must ignore them).
            _ => {}
        }
    }

    fn on_end(&mut self, out: &mut BytesMut) {
        if !self.done {
            self.fail(
                out,
                TRUNCATED_ERROR_TYPE,
                "The upstream stream ended before the response was complete.",
            );
        }
    }

    fn on_error(&mut self, message: &str, out: &mut BytesMut) {
        if !self.done {
            self.fail(out, UPSTREAM_ERROR_TYPE, message);
        }
    }
}

fn is_handled_type(kind: &str) -> bool {
    matches!(
        kind,
        "message_start"
            | "content_block_start"
            | "content_block_delta"
            | "content_block_stop"
            | "message_delta"
            | "message_stop"
            | "error"
    )
}

fn is_non_empty_object(raw: &RawValue) -> bool {
    matches!(
        serde_json::from_str::<serde_json::Map<String, Value>>(raw.get()),
        Ok(map) if !map.is_empty()
    )
}

// ---- Incoming Anthropic events: one flat shape for all types; unknown fields are skipped.

#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "opt_str")]
    kind: Option<Cow<'a, str>>,
    index: Option<u64>,
    #[serde(borrow)]
    message: Option<StartMessage<'a>>,
    #[serde(borrow)]
    content_block: Option<Block<'a>>,
    #[serde(borrow)]
    delta: Option<InDelta<'a>>,
    usage: Option<Usage>,
    #[serde(borrow)]
    error: Option<ErrorBody<'a>>,
}

#[derive(Deserialize)]
struct StartMessage<'a> {
    #[serde(borrow, default, deserialize_with = "opt_str")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    model: Option<Cow<'a, str>>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "opt_str")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    text: Option<Cow<'a, str>>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InDelta<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "opt_str")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    stop_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Usage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct ErrorBody<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "opt_str")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "opt_str")]
    message: Option<Cow<'a, str>>,
}

// ---- Outgoing OpenAI frames. Field order here is the key order on the wire.

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [Choice<'a>],
    #[serde(skip_serializing_if = "UsageSlot::is_absent")]
    usage: UsageSlot<'a>,
}

/// `Chunk`'s first four fields, serialized once per stream (`chunk_head`).
#[derive(Serialize)]
struct ChunkHead<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
}

/// `usage` is absent without `include_usage`, `null` on content chunks with it, and the
/// totals on the final chunk.
enum UsageSlot<'a> {
    Absent,
    Null,
    Totals(&'a Value),
}

impl UsageSlot<'_> {
    fn is_absent(&self) -> bool {
        matches!(self, UsageSlot::Absent)
    }
}

impl Serialize for UsageSlot<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // `openai_usage` builds a `json!` map, which serializes its keys alphabetically;
            // the three totals go first, in the order OpenAI sends them, then the rest.
            UsageSlot::Totals(Value::Object(map)) => {
                const FIRST: [&str; 3] = ["prompt_tokens", "completion_tokens", "total_tokens"];
                let mut s = serializer.serialize_map(Some(map.len()))?;
                for key in FIRST {
                    if let Some(value) = map.get(key) {
                        s.serialize_entry(key, value)?;
                    }
                }
                for (key, value) in map {
                    if !FIRST.contains(&key.as_str()) {
                        s.serialize_entry(key, value)?;
                    }
                }
                s.end()
            }
            UsageSlot::Totals(other) => other.serialize(serializer),
            UsageSlot::Absent | UsageSlot::Null => serializer.serialize_none(),
        }
    }
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    delta: OutDelta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct OutDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallChunk<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallChunk<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionChunk<'a>,
}

impl<'a> ToolCallChunk<'a> {
    /// A later fragment: only the index and a piece of the arguments.
    fn arguments(index: u32, arguments: &'a str) -> Self {
        ToolCallChunk {
            index,
            id: None,
            kind: None,
            function: FunctionChunk {
                name: None,
                arguments,
            },
        }
    }
}

#[derive(Serialize)]
struct FunctionChunk<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct ErrorFrame<'a> {
    error: ErrorPayload<'a>,
}

#[derive(Serialize)]
struct ErrorPayload<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
