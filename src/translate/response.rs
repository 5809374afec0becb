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
    let prompt = n("input_tokens") + cache_read + n("cache_creation_input_tokens");
    let completion = n("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cache_read},
    })
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
        let u = openai_usage(
            &json!({"input_tokens": 5, "cache_creation_input_tokens": 100,
                                     "cache_read_input_tokens": 900, "output_tokens": 20}),
        );
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
}

/// Placeholder until the response translation lands.
pub fn anthropic_to_openai(msg: &Value, created: u64) -> Value {
    json!({"placeholder": msg, "created": created})
}
