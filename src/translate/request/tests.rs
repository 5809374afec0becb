//! Tests for `openai_to_anthropic`: the error paths and the decisions this translator adds.
//! The E.1 conformance cases are in `tests/e1.rs`.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::openai_to_anthropic;
use crate::translate::TranslateError;

mod e1;

fn tr(body: Value) -> Value {
    openai_to_anthropic(&body, "claude-x", 4096).expect("request translates")
}

fn rejected(body: Value) -> TranslateError {
    openai_to_anthropic(&body, "claude-x", 4096).expect_err("request is rejected")
}

/// A request with `messages` and the extra top-level fields of `extra`.
fn req(messages: Value, extra: Value) -> Value {
    let mut body = json!({"model": "gpt-x", "messages": messages});
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

fn hi() -> Value {
    json!([{"role": "user", "content": "hi"}])
}

fn text(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

fn tool_call(id: &str, args: &str) -> Value {
    json!({"id": id, "type": "function", "function": {"name": "f", "arguments": args}})
}

fn param(e: &TranslateError) -> Option<&str> {
    e.param.as_deref()
}

#[test]
fn response_format_json_schema_uses_native_output_config() {
    let schema =
        json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]});
    let out = tr(req(
        hi(),
        json!({"response_format": {"type": "json_schema",
                                   "json_schema": {"name": "x", "schema": schema, "strict": true}}}),
    ));
    assert_eq!(
        out["output_config"],
        json!({"format": {"type": "json_schema", "schema": schema}})
    );
    let plain = tr(req(hi(), json!({})));
    assert_eq!(
        tr(req(
            hi(),
            json!({"response_format": {"type": "json_object"}})
        )),
        plain
    );
}

#[test]
fn invalid_tool_arguments_name_the_parameter() {
    let history = |args: &str| {
        req(
            json!([{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                   {"role": "assistant", "tool_calls": [tool_call("call_1", args)]}]),
            json!({}),
        )
    };
    for bad in ["{\"x\":", "[]", "3", "\"s\""] {
        let e = rejected(history(bad));
        assert_eq!(
            param(&e),
            Some("messages[2].tool_calls[0].function.arguments"),
            "{bad}"
        );
    }
}

#[test]
fn malformed_shapes_are_errors_with_a_param() {
    let cases = [
        (json!({"model": "m"}), "messages"),
        (json!({"model": "m", "messages": "hi"}), "messages"),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "a"}, "b"]}),
            "messages[1]",
        ),
        (
            json!({"model": "m", "messages": [{"role": "robot", "content": "a"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"content": "a"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (json!({"model": "m", "messages": []}), "messages"),
        (
            json!({"model": "m", "messages": [{"role": "system", "content": "only"}]}),
            "messages",
        ),
        (
            req(
                hi(),
                json!({"tools": [{"type": "custom", "custom": {"name": "c"}}]}),
            ),
            "tools[0].type",
        ),
        (
            req(hi(), json!({"tool_choice": "sometimes"})),
            "tool_choice",
        ),
        (
            req(hi(), json!({"reasoning_effort": "extreme"})),
            "reasoning_effort",
        ),
        (
            req(hi(), json!({"functions": [{"name": "f"}]})),
            "functions",
        ),
    ];
    for (body, expected) in cases {
        let e = rejected(body.clone());
        assert_eq!(param(&e), Some(expected), "{body}: {}", e.message);
        assert!(!e.message.is_empty());
    }
    assert_eq!(rejected(json!([1, 2])).param, None);
}

#[test]
fn unsupported_inputs_name_the_parameter() {
    let part = |p: Value| rejected(req(json!([{"role": "user", "content": [p]}]), json!({})));
    let e = part(json!({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}));
    assert_eq!(param(&e), Some("messages[0].content[0].input_audio"));
    let e = part(json!({"type": "file", "file": {"file_id": "file-abc"}}));
    assert_eq!(param(&e), Some("messages[0].content[0].file.file_id"));
}

#[test]
fn first_assistant_turn_gets_a_placeholder_user_turn() {
    let out = tr(req(
        json!([{"role": "system", "content": "s"}, {"role": "assistant", "content": "Hello!"},
               {"role": "user", "content": "hi"}]),
        json!({}),
    ));
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [text("[listening]")]},
               {"role": "assistant", "content": [text("Hello!")]},
               {"role": "user", "content": [text("hi")]}])
    );
}

#[test]
fn reasoning_effort_enables_thinking_within_limits() {
    for (effort, budget) in [("low", 1024), ("medium", 2048), ("high", 4096)] {
        let out = tr(req(
            hi(),
            json!({"reasoning_effort": effort, "temperature": 0.2, "top_k": 5}),
        ));
        assert_eq!(
            out["thinking"],
            json!({"type": "enabled", "budget_tokens": budget}),
            "{effort}"
        );
        assert!(out["max_tokens"].as_u64() > Some(budget), "{out}");
        assert!(
            out.get("temperature").is_none() && out.get("top_k").is_none(),
            "{out}"
        );
    }
    // OpenAI's limit includes reasoning, so a limit under the budget is added on top of it.
    let out = tr(req(
        hi(),
        json!({"reasoning_effort": "low", "max_completion_tokens": 1000}),
    ));
    assert_eq!(out["max_tokens"], 2024);
    assert_eq!(
        tr(req(hi(), json!({"reasoning_effort": "high"})))["max_tokens"],
        8192
    );
    for effort in ["none", "minimal"] {
        let out = tr(req(
            hi(),
            json!({"reasoning_effort": effort, "temperature": 0.2}),
        ));
        assert!(out.get("thinking").is_none(), "{effort}");
        assert_eq!(out["temperature"], 0.2);
    }
}

#[test]
fn anthropic_extensions_pass_through() {
    let thinking = json!({"type": "enabled", "budget_tokens": 3000});
    let out = tr(req(
        hi(),
        json!({"top_k": 40, "cache_control": {"type": "ephemeral"}, "thinking": thinking,
               "reasoning_effort": "low", "max_tokens": 10000}),
    ));
    assert_eq!(out["thinking"], thinking);
    assert_eq!(out["cache_control"], json!({"type": "ephemeral"}));
    assert_eq!(out["max_tokens"], 10000);
    // `top_k` is forbidden with thinking on, so it only survives without it.
    assert!(out.get("top_k").is_none());
    assert_eq!(tr(req(hi(), json!({"top_k": 40})))["top_k"], 40);
}

#[test]
fn foreign_tool_ids_rewritten_consistently() {
    let out = tr(req(
        json!([{"role": "user", "content": "q"},
               {"role": "assistant", "tool_calls": [tool_call("functions.Bash:0", "{}")]},
               {"role": "tool", "tool_call_id": "functions.Bash:0", "content": "ok"}]),
        json!({}),
    ));
    assert_eq!(out["messages"][1]["content"][0]["id"], "functions_Bash_0");
    assert_eq!(
        out["messages"][2]["content"][0]["tool_use_id"],
        "functions_Bash_0"
    );
}

#[test]
fn message_cache_control_marks_the_last_block() {
    let cc = json!({"type": "ephemeral"});
    let out = tr(req(
        json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                "cache_control": cc}]),
        json!({}),
    ));
    assert_eq!(
        out["messages"][0]["content"],
        json!([text("a"), {"type": "text", "text": "b", "cache_control": cc}])
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "",
            " ",
            "user",
            "assistant",
            "tool",
            "system",
            "developer",
            "text",
            "image_url",
            "file",
            "function",
            "auto",
            "none",
            "required",
            "data:image/png;base64,AA",
            "data:,x",
            "https://x.test/a.png",
            "{\"a\":1}",
            "[]",
            "low",
            "high",
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "role",
                        "content",
                        "type",
                        "text",
                        "tool_calls",
                        "tool_call_id",
                        "id",
                        "function",
                        "name",
                        "arguments",
                        "image_url",
                        "url",
                        "file",
                        "file_data",
                        "cache_control",
                        "parameters",
                        "tools",
                        "tool_choice",
                        "stop",
                        "temperature",
                        "max_tokens",
                        "response_format",
                        "n",
                        "user",
                        "reasoning_effort",
                        "thinking",
                        "parallel_tool_calls",
                        "json_schema",
                        "schema",
                    ]),
                    inner,
                ),
                0..5,
            )
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

proptest! {
    /// The translator is fed client JSON: any shape must give `Ok` or `Err`, never a panic,
    /// and every `Ok` must carry `max_tokens` and a non-empty `messages` array.
    #[test]
    fn never_panics_on_arbitrary_requests(messages in arb_json(), extra in arb_json()) {
        let body = req(messages, extra);
        if let Ok(out) = openai_to_anthropic(&body, "claude-x", 4096) {
            prop_assert!(out["max_tokens"].is_u64());
            prop_assert!(out["messages"].as_array().is_some_and(|m| !m.is_empty()));
        }
    }
}
