//! Anthropic response → OpenAI response (C.6), and the finish-reason (C.7) and usage (C.8)
//! mappings that the streaming translator shares.

use serde_json::{Value, json};

/// Anthropic `stop_reason` → OpenAI `finish_reason` (C.7). Never returns a raw Anthropic
/// value: unknown and missing reasons are `stop`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        // [Rec] the context window running out is a length limit, not a natural stop.
        Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Anthropic usage → OpenAI usage (C.8). Anthropic's `input_tokens` excludes cache reads
/// and writes while OpenAI's `prompt_tokens` includes them, so both are added back;
/// `total_tokens` is always `prompt_tokens + completion_tokens`.
pub fn openai_usage(usage: &Value) -> Value {
    let n = |field: &str| usage.get(field).and_then(Value::as_u64).unwrap_or(0);
    let cache_read = n("cache_read_input_tokens");
    // Saturating: counts come from the upstream, and absurd ones must not panic or wrap.
    let prompt = n("input_tokens")
        .saturating_add(cache_read)
        .saturating_add(n("cache_creation_input_tokens"));
    let completion = n("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
        "prompt_tokens_details": {"cached_tokens": cache_read},
    })
}

/// Anthropic Messages response → OpenAI `chat.completion` (C.6). `created` comes from the
/// caller because Anthropic responses carry no timestamp and this module reads no clock.
///
/// `model` is the upstream's; a caller that wants the client's alias echoed overwrites it.
/// Thinking blocks stay out of `content` (E.39): OpenAI has no field for them, and text the
/// model did not say to the user must not reach clients as if it had.
pub fn anthropic_to_openai(msg: &Value, created: u64) -> Value {
    let blocks = msg
        .get("content")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut message = json!({
        "role": "assistant",
        "content": message_text(blocks),
        "refusal": null,
    });
    let tool_calls = tool_calls(blocks);
    // C.6: the key is omitted when there are no calls, as OpenAI does.
    if !tool_calls.is_empty() {
        if let Some(obj) = message.as_object_mut() {
            obj.insert("tool_calls".to_owned(), Value::Array(tool_calls));
        }
    }
    let str_field = |key: &str| msg.get(key).and_then(Value::as_str).unwrap_or_default();
    json!({
        "id": str_field("id"),
        "object": "chat.completion",
        "created": created,
        "model": str_field("model"),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(msg.get("stop_reason").and_then(Value::as_str)),
        }],
        "usage": openai_usage(msg.get("usage").unwrap_or(&Value::Null)),
    })
}

/// [Rec] E.36: all text blocks joined in order, or null when there are none (LiteLLM's
/// `content=text or None`), which is what OpenAI itself sends for a tool-call-only answer.
fn message_text(blocks: &[Value]) -> Value {
    let texts: Vec<&str> = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    if texts.is_empty() {
        Value::Null
    } else {
        Value::String(texts.concat())
    }
}

/// One OpenAI tool call per `tool_use` block, in order. `arguments` is the compact JSON text of
/// `input`, so a no-argument call is `"{}"`, never `""` (C.12.2).
fn tool_calls(blocks: &[Value]) -> Vec<Value> {
    blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        .map(|b| {
            let input = b.get("input").filter(|i| !i.is_null()).cloned();
            let arguments = input.unwrap_or_else(|| json!({})).to_string();
            json!({
                "id": b.get("id").and_then(Value::as_str).unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": b.get("name").and_then(Value::as_str).unwrap_or_default(),
                    "arguments": arguments,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e37_finish_reasons_are_always_openai_values() {
        for (anthropic, openai) in [
            (Some("end_turn"), "stop"),
            (Some("stop_sequence"), "stop"),
            (Some("max_tokens"), "length"),
            (Some("tool_use"), "tool_calls"),
            (Some("refusal"), "content_filter"),
            (Some("pause_turn"), "stop"),
            (Some("model_context_window_exceeded"), "length"),
            (Some("something_new"), "stop"),
            (None, "stop"),
        ] {
            assert_eq!(finish_reason(anthropic), openai, "{anthropic:?}");
        }
    }

    #[test]
    fn e38_cache_tokens_count_as_prompt_tokens() {
        let u = openai_usage(&json!({
            "input_tokens": 5, "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 900, "output_tokens": 20}));
        assert_eq!(u["prompt_tokens"], 1005);
        assert_eq!(u["completion_tokens"], 20);
        assert_eq!(u["total_tokens"], 1025);
        assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 900);
        let u = openai_usage(
            &json!({"input_tokens": 10, "output_tokens": 3, "cache_read_input_tokens": null}),
        );
        assert_eq!(
            (u["prompt_tokens"].as_u64(), u["total_tokens"].as_u64()),
            (Some(10), Some(13))
        );
    }

    /// The B.6 example message: the input of the C.6 worked example.
    fn b6_message() -> Value {
        json!({"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
               "model": "claude-sonnet-4-5",
               "content": [{"type": "text", "text": "I'll check."},
                           {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                            "name": "get_weather", "input": {"location": "San Francisco, CA"}}],
               "stop_reason": "tool_use", "stop_sequence": null,
               "usage": {"input_tokens": 472, "output_tokens": 89,
                         "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})
    }

    fn message(content: Value, stop_reason: &str) -> Value {
        json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
               "content": content, "stop_reason": stop_reason, "stop_sequence": null,
               "usage": {"input_tokens": 10, "output_tokens": 3}})
    }

    #[test]
    fn e33_text_response() {
        let out = anthropic_to_openai(
            &message(json!([{"type": "text", "text": "Hi"}]), "end_turn"),
            1_700_000_000,
        );
        assert_eq!(
            out,
            json!({"id": "msg_1", "object": "chat.completion", "created": 1_700_000_000, "model": "claude-x",
                   "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "Hi", "refusal": null}}],
                   "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13,
                             "prompt_tokens_details": {"cached_tokens": 0}}})
        );
    }

    #[test]
    fn e34_text_blocks_concatenate() {
        let content =
            json!([{"type": "text", "text": "Hello "}, {"type": "text", "text": "world"}]);
        let out = anthropic_to_openai(&message(content, "end_turn"), 1);
        assert_eq!(out["choices"][0]["message"]["content"], "Hello world");
    }

    /// The C.6 worked example, deep-equal.
    #[test]
    fn e35_tool_use_becomes_tool_calls() {
        let out = anthropic_to_openai(&b6_message(), 1_700_000_000);
        assert_eq!(
            out,
            json!({"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "object": "chat.completion", "created": 1_700_000_000,
                   "model": "claude-sonnet-4-5",
                   "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
                     "message": {"role": "assistant", "content": "I'll check.", "refusal": null,
                       "tool_calls": [{"id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                         "function": {"name": "get_weather",
                                      "arguments": "{\"location\":\"San Francisco, CA\"}"}}]}}],
                   "usage": {"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561,
                             "prompt_tokens_details": {"cached_tokens": 0}}})
        );
        let args = out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].as_str();
        let parsed: Value =
            serde_json::from_str(args.unwrap_or_default()).expect("arguments are JSON");
        assert_eq!(parsed, json!({"location": "San Francisco, CA"}));
    }

    #[test]
    fn e36_tool_use_only_has_null_content() {
        let content = json!([{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]);
        let out = anthropic_to_openai(&message(content, "tool_use"), 1);
        let msg = &out["choices"][0]["message"];
        assert_eq!(msg["content"], Value::Null);
        assert_eq!(
            msg["tool_calls"][0]["function"],
            json!({"name": "f", "arguments": "{}"})
        );
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn e39_thinking_not_leaked_into_content() {
        let content = json!([{"type": "thinking", "thinking": "secret plan", "signature": "sig"},
                             {"type": "redacted_thinking", "data": "xyz"},
                             {"type": "text", "text": "A"}]);
        let out = anthropic_to_openai(&message(content, "end_turn"), 1);
        assert_eq!(
            out["choices"][0]["message"],
            json!({"role": "assistant", "content": "A", "refusal": null})
        );
        assert!(!out.to_string().contains("secret plan"));
    }

    #[test]
    fn malformed_message_still_yields_a_completion() {
        for msg in [
            json!(null),
            json!({"content": "text"}),
            json!({"content": [1, {"type": "tool_use"}]}),
        ] {
            let out = anthropic_to_openai(&msg, 5);
            assert_eq!(out["object"], "chat.completion");
            assert_eq!(out["choices"][0]["finish_reason"], "stop");
            assert_eq!(out["usage"]["total_tokens"], 0);
        }
    }
}
