//! OpenAI `chat.completion` → Anthropic `Message` (C.10 non-streaming), and the
//! finish-reason (C.7) and usage (C.8) mappings shared with the stream translator.

use serde_json::{Map, Value, json};

/// Used when the upstream sent no usable id; ids are opaque to clients, so a fixed one is
/// acceptable and keeps translation free of clocks and randomness.
const FALLBACK_MESSAGE_ID: &str = "msg_keyrelay";

/// Key under which unparsable tool-call arguments are kept (see [`tool_input`]).
pub const RAW_ARGUMENTS_KEY: &str = "_raw_arguments";

/// OpenAI `finish_reason` → Anthropic `stop_reason` (C.7, LiteLLM's adapter). OpenAI never
/// says which stop sequence fired, so `stop_sequence` is never produced.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// The stop reason for a message that contains tool calls. Some OpenAI-compatible servers
/// report `stop` even when the model called tools; Anthropic clients (agent loops) only run
/// tools on `tool_use`, so a natural end with tool calls is reported as `tool_use`.
pub(crate) fn stop_reason_with_tools(
    finish_reason: Option<&str>,
    has_tool_calls: bool,
) -> &'static str {
    match stop_reason(finish_reason) {
        "end_turn" if has_tool_calls => "tool_use",
        other => other,
    }
}

/// OpenAI usage → Anthropic usage (C.8, E.64). OpenAI's `prompt_tokens` includes cached
/// tokens while Anthropic's three input counts are disjoint, so cache reads (and writes, when
/// reported) are subtracted from `input_tokens`. Cache fields appear only when non-zero.
pub fn anthropic_usage(openai_usage: &Value) -> Value {
    let count = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let details = openai_usage.get("prompt_tokens_details");
    let prompt = count(openai_usage.get("prompt_tokens"));
    let cache_read = details
        .and_then(|d| d.get("cached_tokens"))
        .and_then(Value::as_u64)
        // DeepSeek reports cache hits at the top level instead.
        .unwrap_or_else(|| count(openai_usage.get("prompt_cache_hit_tokens")));
    let cache_write = count(details.and_then(|d| d.get("cache_write_tokens")));
    let mut usage = Map::new();
    usage.insert(
        "input_tokens".into(),
        prompt
            .saturating_sub(cache_read)
            .saturating_sub(cache_write)
            .into(),
    );
    usage.insert(
        "output_tokens".into(),
        count(openai_usage.get("completion_tokens")).into(),
    );
    if cache_read > 0 {
        usage.insert("cache_read_input_tokens".into(), cache_read.into());
    }
    if cache_write > 0 {
        usage.insert("cache_creation_input_tokens".into(), cache_write.into());
    }
    Value::Object(usage)
}

/// An Anthropic message id from the upstream's: kept when already `msg_…`, else prefixed.
pub(crate) fn message_id(upstream_id: Option<&str>) -> String {
    match upstream_id {
        Some(id) if id.starts_with("msg_") => id.to_owned(),
        Some(id) if !id.is_empty() => format!("msg_{id}"),
        _ => FALLBACK_MESSAGE_ID.to_owned(),
    }
}

/// Tool-call `arguments` (a JSON string) → Anthropic `input` (always an object).
///
/// Empty arguments mean "no arguments" → `{}`. Arguments that are not a JSON object (the
/// spec warns models may emit invalid JSON) are kept verbatim as `{"_raw_arguments": …}`
/// instead of becoming `{}`: calling a tool with silently emptied input hides the model's
/// mistake, while the raw text lets the client's input validation report it, and the model
/// sees its own malformed call when the history is sent back.
pub fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(input @ Value::Object(_)) => input,
        _ => json!({ RAW_ARGUMENTS_KEY: arguments }),
    }
}

/// Translates a non-streaming OpenAI `chat.completion` into an Anthropic `Message`.
/// Only the first choice is used (the request never asks for more). `model` is the
/// upstream's; the caller may replace it with the client-facing name.
pub fn openai_to_anthropic_response(resp: &Value) -> Value {
    let choice = resp
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first());
    let message = choice.and_then(|c| c.get("message"));

    let mut content = Vec::new();
    let text = message.map(message_text).unwrap_or_default();
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, call) in calls.iter().enumerate() {
        let id = call
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map_or_else(|| fallback_tool_id(i), str::to_owned);
        let function = call.get("function");
        let name = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let arguments = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        content.push(
            json!({"type": "tool_use", "id": id, "name": name, "input": tool_input(arguments)}),
        );
    }

    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    json!({
        "id": message_id(resp.get("id").and_then(Value::as_str)),
        "type": "message",
        "role": "assistant",
        "model": resp.get("model").and_then(Value::as_str).unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason_with_tools(finish, !calls.is_empty()),
        "stop_sequence": null,
        "usage": anthropic_usage(resp.get("usage").unwrap_or(&Value::Null)),
    })
}

/// A tool-use id for upstreams that omit one; unique within the message, and stable so the
/// client's `tool_result` refers back to it.
pub(crate) fn fallback_tool_id(position: usize) -> String {
    format!("toolu_keyrelay_{position}")
}

/// The assistant's text: `content` as a string or as text parts. A `refusal` (structured
/// outputs) is the only text of a refused message, so it is used when there is no content —
/// otherwise the client would get an empty message and no explanation.
fn message_text(message: &Value) -> String {
    let content = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    if !content.is_empty() {
        return content;
    }
    message
        .get("refusal")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e62_finish_reasons_map_to_anthropic_stop_reasons() {
        for (finish, stop) in [
            (Some("stop"), "end_turn"),
            (Some("length"), "max_tokens"),
            (Some("tool_calls"), "tool_use"),
            (Some("function_call"), "tool_use"),
            (Some("content_filter"), "refusal"),
            (Some("something_new"), "end_turn"),
            (None, "end_turn"),
        ] {
            assert_eq!(stop_reason(finish), stop, "{finish:?}");
        }
    }

    #[test]
    fn e64_usage_subtracts_cached_tokens_from_input() {
        let usage = anthropic_usage(&json!({"prompt_tokens": 1000, "completion_tokens": 50,
            "total_tokens": 1050, "prompt_tokens_details": {"cached_tokens": 800}}));
        assert_eq!(
            usage,
            json!({"input_tokens": 200, "output_tokens": 50, "cache_read_input_tokens": 800})
        );

        let usage = anthropic_usage(&json!({"prompt_tokens": 9, "completion_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 0}}));
        assert_eq!(
            usage,
            json!({"input_tokens": 9, "output_tokens": 12}),
            "no zero cache fields"
        );

        let usage = anthropic_usage(&json!({"prompt_tokens": 100, "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 50}}));
        assert_eq!(
            usage,
            json!({"input_tokens": 20, "output_tokens": 1,
            "cache_read_input_tokens": 30, "cache_creation_input_tokens": 50})
        );

        assert_eq!(
            anthropic_usage(&Value::Null),
            json!({"input_tokens": 0, "output_tokens": 0})
        );
        // Inconsistent upstream numbers must not underflow.
        let usage = anthropic_usage(
            &json!({"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}),
        );
        assert_eq!(usage["input_tokens"], 0);
    }

    #[test]
    fn text_and_tool_calls_become_content_blocks() {
        let resp = json!({
            "id": "chatcmpl-abc", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "logprobs": null,
                "message": {"role": "assistant", "content": "I'll check.", "refusal": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"location\":\"Boston\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}]}}],
            "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99,
                      "prompt_tokens_details": {"cached_tokens": 0}}});
        assert_eq!(
            openai_to_anthropic_response(&resp),
            json!({
            "id": "msg_chatcmpl-abc", "type": "message", "role": "assistant", "model": "gpt-4o",
            "content": [
                {"type": "text", "text": "I'll check."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"location": "Boston"}},
                {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 82, "output_tokens": 17}})
        );
    }

    #[test]
    fn plain_text_reply_and_id_handling() {
        let resp = json!({"id": "msg_01X", "model": "m", "choices": [{"index": 0, "finish_reason": "length",
            "message": {"role": "assistant", "content": "Hi"}}]});
        let out = openai_to_anthropic_response(&resp);
        assert_eq!(out["id"], "msg_01X");
        assert_eq!(out["content"], json!([{"type": "text", "text": "Hi"}]));
        assert_eq!(out["stop_reason"], "max_tokens");
        assert_eq!(out["usage"], json!({"input_tokens": 0, "output_tokens": 0}));

        // Empty text is not a block; no id → fixed fallback; garbage never panics.
        let out = openai_to_anthropic_response(&json!({"choices": [{"message": {"content": ""}}]}));
        assert_eq!(out["content"], json!([]));
        assert_eq!(out["id"], FALLBACK_MESSAGE_ID);
        assert_eq!(out["stop_reason"], "end_turn");
        for junk in [
            json!(null),
            json!([]),
            json!({"choices": "x"}),
            json!({"choices": [{"message": 3}]}),
        ] {
            assert_eq!(openai_to_anthropic_response(&junk)["type"], "message");
        }
    }

    #[test]
    fn tool_calls_with_stop_finish_still_report_tool_use() {
        let resp = json!({"id": "x", "choices": [{"finish_reason": "stop", "message": {"content": null,
            "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}}]});
        let out = openai_to_anthropic_response(&resp);
        assert_eq!(out["stop_reason"], "tool_use");
        assert_eq!(
            out["content"][0]["id"], "toolu_keyrelay_0",
            "missing ids get a fallback"
        );
    }

    #[test]
    fn unparsable_arguments_are_kept_raw_not_emptied() {
        assert_eq!(tool_input(""), json!({}));
        assert_eq!(tool_input("  "), json!({}));
        assert_eq!(tool_input(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(
            tool_input(r#"{"a":"#),
            json!({RAW_ARGUMENTS_KEY: r#"{"a":"#})
        );
        assert_eq!(tool_input("[1]"), json!({RAW_ARGUMENTS_KEY: "[1]"}));
    }

    #[test]
    fn refusal_is_reported_as_text() {
        let resp = json!({"choices": [{"finish_reason": "stop",
            "message": {"content": null, "refusal": "I can't help with that."}}]});
        let out = openai_to_anthropic_response(&resp);
        assert_eq!(
            out["content"],
            json!([{"type": "text", "text": "I can't help with that."}])
        );
    }
}
