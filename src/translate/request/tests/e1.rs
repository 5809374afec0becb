//! Conformance cases E.1 (1–30, 32) for `openai_to_anthropic`; each test name starts with
//! the case number in `shared/reference/api-formats.md`.

use serde_json::{Value, json};

use super::*;

#[test]
fn e01_system_hoisted_to_top_level() {
    let out = tr(req(
        json!([{"role": "system", "content": "A"}, {"role": "user", "content": "hi"}]),
        json!({}),
    ));
    assert_eq!(
        out,
        json!({"model": "claude-x", "max_tokens": 4096, "system": [text("A")],
               "messages": [{"role": "user", "content": [text("hi")]}]})
    );
}

#[test]
fn e02_developer_hoisted_like_system() {
    let out = tr(req(
        json!([{"role": "developer", "content": "D"}, {"role": "user", "content": "hi"}]),
        json!({}),
    ));
    assert_eq!(out["system"], json!([text("D")]));
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [text("hi")]}])
    );
}

#[test]
fn e03_multiple_system_messages_keep_order() {
    let out = tr(req(
        json!([{"role": "system", "content": "A"}, {"role": "user", "content": "u"},
               {"role": "system", "content": "B"}]),
        json!({}),
    ));
    assert_eq!(out["system"], json!([text("A"), text("B")]));
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [text("u")]}])
    );
}

#[test]
fn e04_system_content_parts_become_blocks_with_cache_control() {
    let out = tr(req(
        json!([{"role": "system", "content": [
                   {"type": "text", "text": "A"},
                   {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}]},
               {"role": "user", "content": "hi"}]),
        json!({}),
    ));
    assert_eq!(
        out["system"],
        json!([text("A"), {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}])
    );
}

#[test]
fn e05_max_tokens_defaults_when_absent() {
    assert_eq!(tr(req(hi(), json!({})))["max_tokens"], 4096);
    let out = openai_to_anthropic(&req(hi(), json!({"max_tokens": null})), "claude-x", 64000);
    assert_eq!(out.expect("translates")["max_tokens"], 64000);
}

#[test]
fn e06_max_completion_tokens_wins_over_max_tokens() {
    let limit = |extra: Value| tr(req(hi(), extra))["max_tokens"].clone();
    assert_eq!(
        limit(json!({"max_tokens": 100, "max_completion_tokens": 200})),
        200
    );
    assert_eq!(limit(json!({"max_completion_tokens": 300})), 300);
    assert_eq!(limit(json!({"max_tokens": 50})), 50);
    let e = rejected(req(hi(), json!({"max_tokens": "many"})));
    assert_eq!(param(&e), Some("max_tokens"));
}

#[test]
fn e07_stop_string_and_array() {
    assert_eq!(
        tr(req(hi(), json!({"stop": "END"})))["stop_sequences"],
        json!(["END"])
    );
    assert_eq!(
        tr(req(hi(), json!({"stop": ["a", "b"]})))["stop_sequences"],
        json!(["a", "b"])
    );
}

#[test]
fn e08_whitespace_stop_sequences_dropped() {
    assert_eq!(
        tr(req(hi(), json!({"stop": ["\n", "END"]})))["stop_sequences"],
        json!(["END"])
    );
    let out = tr(req(hi(), json!({"stop": " "})));
    assert!(out.get("stop_sequences").is_none(), "{out}");
}

#[test]
fn e09_temperature_clamped_to_anthropic_range() {
    let temp = |t: Value| {
        tr(req(hi(), json!({"temperature": t})))
            .get("temperature")
            .and_then(Value::as_f64)
    };
    assert_eq!(temp(json!(1.5)), Some(1.0));
    assert_eq!(temp(json!(0.3)), Some(0.3));
    assert_eq!(temp(json!(-0.5)), Some(0.0));
    assert_eq!(temp(json!(null)), None);
    assert!(tr(req(hi(), json!({}))).get("temperature").is_none());
}

#[test]
fn e10_openai_only_params_dropped() {
    let out = tr(req(
        hi(),
        json!({"seed": 7, "logprobs": true, "top_logprobs": 3, "logit_bias": {"50256": -100},
               "presence_penalty": 0.5, "frequency_penalty": 0.5,
               "stream_options": {"include_usage": true}, "n": 1, "store": true,
               "service_tier": "flex", "metadata": {"k": "v"}, "prediction": {"type": "content"},
               "modalities": ["text"], "verbosity": "low", "prompt_cache_key": "p"}),
    ));
    assert_eq!(out, tr(req(hi(), json!({}))));
}

#[test]
fn e11_n_greater_than_one_rejected() {
    let e = rejected(req(hi(), json!({"n": 2})));
    assert_eq!(param(&e), Some("n"));
    assert!(e.message.contains("n: 1"), "{}", e.message);
    assert_eq!(tr(req(hi(), json!({"n": 1}))), tr(req(hi(), json!({}))));
}

#[test]
fn e12_user_becomes_metadata_unless_personal_data() {
    let meta = |extra: Value| tr(req(hi(), extra)).get("metadata").cloned();
    assert_eq!(
        meta(json!({"user": "u-123"})),
        Some(json!({"user_id": "u-123"}))
    );
    assert_eq!(meta(json!({"user": "a@b.com"})), None);
    assert_eq!(meta(json!({"user": "+1 (555) 123-4567"})), None);
    assert_eq!(
        meta(json!({"user": "u-1", "safety_identifier": "hash-9"})),
        Some(json!({"user_id": "hash-9"}))
    );
}

#[test]
fn e13_tool_schema_passed_through_unchanged() {
    let p = json!({"type": "object", "properties": {"unit": {"enum": ["c", "f"]}, "loc": {"$ref": "#/$defs/L"}},
                   "$defs": {"L": {"type": "string"}}, "required": ["loc"], "additionalProperties": false});
    let out = tr(req(
        hi(),
        json!({"tools": [{"type": "function", "function": {"name": "f", "description": "d",
                                                             "parameters": p, "strict": true}}]}),
    ));
    assert_eq!(
        out["tools"],
        json!([{"name": "f", "description": "d", "input_schema": p}])
    );
}

#[test]
fn e14_tool_without_parameters_gets_empty_object_schema() {
    let out = tr(req(
        hi(),
        json!({"tools": [{"type": "function", "function": {"name": "f"}}]}),
    ));
    assert_eq!(
        out["tools"],
        json!([{"name": "f", "input_schema": {"type": "object", "properties": {}}}])
    );
}

fn with_tools(extra: Value) -> Value {
    let mut body = req(
        hi(),
        json!({"tools": [{"type": "function", "function": {"name": "f"}}]}),
    );
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    tr(body)
}

#[test]
fn e15_tool_choice_mapping() {
    for (openai, anthropic) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("required"), json!({"type": "any"})),
        (json!("none"), json!({"type": "none"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
    ] {
        assert_eq!(
            with_tools(json!({"tool_choice": openai}))["tool_choice"],
            anthropic
        );
    }
    assert!(with_tools(json!({})).get("tool_choice").is_none());
}

#[test]
fn e16_parallel_tool_calls_false_disables_parallel_use() {
    let expected = json!({"type": "auto", "disable_parallel_tool_use": true});
    let choice = |extra: Value| with_tools(extra).get("tool_choice").cloned();
    assert_eq!(
        choice(json!({"tool_choice": "auto", "parallel_tool_calls": false})),
        Some(expected.clone())
    );
    assert_eq!(
        choice(json!({"parallel_tool_calls": false})),
        Some(expected)
    );
    assert_eq!(
        choice(json!({"tool_choice": "none", "parallel_tool_calls": false})),
        Some(json!({"type": "none"}))
    );
    assert_eq!(choice(json!({"parallel_tool_calls": true})), None);
}

#[test]
fn e17_assistant_tool_calls_become_only_tool_use() {
    let out = tr(req(
        json!([{"role": "user", "content": "q"},
               {"role": "assistant", "content": null, "tool_calls": [tool_call("call_1", "{\"x\":1}")]}]),
        json!({}),
    ));
    assert_eq!(
        out["messages"][1],
        json!({"role": "assistant",
               "content": [{"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": 1}}]})
    );
}

#[test]
fn e18_empty_arguments_become_empty_object() {
    let out = tr(req(
        json!([{"role": "user", "content": "q"},
               {"role": "assistant", "tool_calls": [tool_call("call_1", "")]}]),
        json!({}),
    ));
    assert_eq!(out["messages"][1]["content"][0]["input"], json!({}));
}

#[test]
fn e19_assistant_text_comes_before_tool_use() {
    let out = tr(req(
        json!([{"role": "user", "content": "q"},
               {"role": "assistant", "content": "Let me check", "tool_calls": [tool_call("call_1", "{}")]}]),
        json!({}),
    ));
    assert_eq!(
        out["messages"][1]["content"],
        json!([text("Let me check"), {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}])
    );
}

#[test]
fn e20_empty_assistant_text_skipped() {
    let out = tr(req(
        json!([{"role": "user", "content": "q"},
               {"role": "assistant", "content": "", "tool_calls": [tool_call("call_1", "{}")]},
               {"role": "tool", "tool_call_id": "call_1", "content": "r"}]),
        json!({}),
    ));
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type": "tool_use", "id": "call_1", "name": "f", "input": {}}])
    );
}

#[test]
fn e21_tool_message_becomes_tool_result() {
    let out = tr(req(
        json!([{"role": "user", "content": "q"},
               {"role": "assistant", "tool_calls": [tool_call("call_1", "{}")]},
               {"role": "tool", "tool_call_id": "call_1", "content": "42"}]),
        json!({}),
    ));
    assert_eq!(
        out["messages"][2],
        json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "42"}]})
    );
}

/// The C.2 worked example, deep-equal.
#[test]
fn e22_parallel_tool_results_merged() {
    let out = tr(json!({"model": "claude-x", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in SF and NYC?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"SF\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"NYC\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "15C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "22C"}]}));
    assert_eq!(
        out,
        json!({"model": "claude-x", "max_tokens": 4096,
               "system": [{"type": "text", "text": "Be brief."}],
               "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather in SF and NYC?"}]},
                {"role": "assistant", "content": [
                   {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "SF"}},
                   {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "NYC"}}]},
                {"role": "user", "content": [
                   {"type": "tool_result", "tool_use_id": "call_1", "content": "15C"},
                   {"type": "tool_result", "tool_use_id": "call_2", "content": "22C"}]}]})
    );
}

#[test]
fn e23_tool_results_come_before_user_text() {
    let out = tr(req(
        json!([{"role": "user", "content": "q"},
               {"role": "assistant", "tool_calls": [tool_call("call_1", "{}"), tool_call("call_2", "{}")]},
               {"role": "tool", "tool_call_id": "call_1", "content": "r1"},
               {"role": "user", "content": "thanks"},
               {"role": "tool", "tool_call_id": "call_2", "content": "r2"}]),
        json!({}),
    ));
    assert_eq!(
        out["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "r1"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "r2"},
            text("thanks")]})
    );
    assert_eq!(out["messages"].as_array().map(Vec::len), Some(3));
}

#[test]
fn e24_consecutive_user_messages_merged() {
    let out = tr(req(
        json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]),
        json!({}),
    ));
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [text("a"), text("b")]}])
    );
}

#[test]
fn e25_consecutive_assistant_messages_merged() {
    let out = tr(req(
        json!([{"role": "user", "content": "u"}, {"role": "assistant", "content": "x"},
               {"role": "assistant", "content": "y"}, {"role": "user", "content": "v"}]),
        json!({}),
    ));
    assert_eq!(
        out["messages"],
        json!([{"role": "user", "content": [text("u")]},
               {"role": "assistant", "content": [text("x"), text("y")]},
               {"role": "user", "content": [text("v")]}])
    );
}

fn user_part(part: Value) -> Value {
    let out = tr(req(json!([{"role": "user", "content": [part]}]), json!({})));
    out["messages"][0]["content"][0].clone()
}

#[test]
fn e26_data_url_image_becomes_base64_source() {
    let block = user_part(json!({"type": "image_url",
                                 "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}}));
    assert_eq!(
        block,
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}})
    );
}

#[test]
fn e27_jpeg_media_type_preserved() {
    let media = |url: &str| {
        user_part(json!({"type": "image_url", "image_url": {"url": url}}))["source"]["media_type"]
            .clone()
    };
    assert_eq!(media("data:image/jpeg;base64,/9j/"), "image/jpeg");
    assert_eq!(media("data:image/jpg;base64,/9j/"), "image/jpeg");
}

#[test]
fn e28_http_image_becomes_url_source() {
    let block =
        user_part(json!({"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}));
    assert_eq!(
        block,
        json!({"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}})
    );
    let e = rejected(req(
        json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]),
        json!({}),
    ));
    assert_eq!(param(&e), Some("messages[0].content[0].image_url.url"));
}

#[test]
fn e29_pdf_data_url_becomes_document() {
    let expected = json!({"type": "document",
                          "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}});
    let url = "data:application/pdf;base64,JVBE";
    assert_eq!(
        user_part(json!({"type": "image_url", "image_url": {"url": url}})),
        expected
    );
    assert_eq!(
        user_part(json!({"type": "file", "file": {"filename": "a.pdf", "file_data": url}})),
        expected
    );
    assert_eq!(
        user_part(json!({"type": "file", "file": {"file_data": "JVBE"}})),
        expected
    );
}

#[test]
fn e30_trailing_assistant_prefill_right_stripped() {
    let out = tr(req(
        json!([{"role": "user", "content": "q"}, {"role": "assistant", "content": "The answer is "}]),
        json!({}),
    ));
    assert_eq!(
        out["messages"][1],
        json!({"role": "assistant", "content": [text("The answer is")]})
    );
    let out = tr(req(
        json!([{"role": "user", "content": "q"},
               {"role": "assistant", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": " \n"}]}]),
        json!({}),
    ));
    assert_eq!(out["messages"][1]["content"], json!([text("A")]));
}

#[test]
fn e32_response_format_text_is_noop() {
    assert_eq!(
        tr(req(hi(), json!({"response_format": {"type": "text"}}))),
        tr(req(hi(), json!({})))
    );
}
