//! Conformance cases E.1–E.3 of `shared/reference/api-formats.md`, end to end: an
//! OpenAI-format client talks to the running proxy about a model whose key has
//! `"provider": "anthropic"`, in front of the project's mock upstream.
//!
//! - E.1 (request translation): the mock answers unscripted, so it validates the translated
//!   request the way Anthropic does — a 200 at the client proves the request was acceptable —
//!   and the test then inspects the exact body (and headers) the mock recorded.
//! - E.2 (non-streaming response translation): the mock answers a scripted Anthropic message;
//!   the test checks the OpenAI `chat.completion` the client received over HTTP.
//! - E.3 (streaming translation): the mock answers scripted Anthropic SSE frames; the test
//!   checks the full byte stream the client received.
//!
//! The translators have their own unit tests; these prove the wiring around them.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use serde_json::{Value, json};

const MODEL: &str = "claude-x";
const KEY: &str = "sk-ant-1";

// ---------------------------------------------------------------------------------------
// Shared harness pieces
// ---------------------------------------------------------------------------------------

/// A recording mock upstream and keyrelay with one Anthropic key for `claude-x`.
struct Rig {
    mock: MockUpstream,
    proxy: Proxy,
}

async fn rig() -> Rig {
    rig_with(json!({})).await
}

/// Like `rig`, with `extra` merged into the key's `LLM_KEYS` entry.
async fn rig_with(extra: Value) -> Rig {
    let mock = recording_mock().await;
    let key = merge(anthropic_key(&mock, MODEL, KEY), extra);
    let proxy = Proxy::start(&json!([key]), &[]).await;
    Rig { mock, proxy }
}

/// `base` with the keys of `extra` set (a `null` value removes the key).
fn merge(mut base: Value, extra: Value) -> Value {
    let obj = base.as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    base
}

/// A minimal valid OpenAI request for `claude-x` with `extra` merged in.
fn req(extra: Value) -> Value {
    merge(
        json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}),
        extra,
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------
// E.1 helpers: what went upstream
// ---------------------------------------------------------------------------------------

/// Posts `body` to keyrelay and returns the Anthropic body the mock received for it. The
/// mock answers unscripted, validating like Anthropic, so the client's 200 proves the
/// translated request is one Anthropic accepts.
async fn sent_upstream(rig: &Rig, body: &Value) -> Value {
    let before = rig.mock.requests().len();
    let resp = rig.proxy.chat(body).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "the mock rejected the translation: {text}");
    let client: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(client["object"], "chat.completion", "{client}");
    let reqs = rig.mock.requests();
    assert_eq!(reqs.len(), before + 1, "exactly one upstream request");
    let seen = &reqs[before];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.key.as_deref(), Some(KEY));
    serde_json::from_slice(&seen.body).unwrap()
}

/// `sent_upstream` on a fresh rig.
async fn translate(body: Value) -> Value {
    let rig = rig().await;
    sent_upstream(&rig, &body).await
}

/// The upstream `messages` with string content written as the equivalent single text block
/// (the reference allows either form).
fn messages(body: &Value) -> Value {
    let list = body["messages"].as_array().expect("messages array");
    Value::Array(
        list.iter()
            .map(|m| {
                let mut m = m.clone();
                if let Some(s) = m["content"].as_str() {
                    m["content"] = json!([{"type": "text", "text": s}]);
                }
                m
            })
            .collect(),
    )
}

/// `system` is either text blocks with exactly these texts, or these texts joined with `\n`.
fn assert_system(body: &Value, expected: &[&str]) {
    match &body["system"] {
        Value::Array(blocks) => {
            let want: Vec<Value> = expected
                .iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect();
            assert_eq!(blocks, &want, "system blocks");
        }
        Value::String(s) => assert_eq!(s, &expected.join("\n"), "system string"),
        other => panic!("system must be a string or text blocks, got {other}"),
    }
}

/// The object's keys, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}})
}

fn f_tool() -> Value {
    json!({"type": "function", "function": {"name": "f",
        "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}})
}

fn call(id: &str, name: &str, args: &str) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
}

// ---------------------------------------------------------------------------------------
// E.1 Request translation (OpenAI → Anthropic)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn e01_system_is_hoisted() {
    let body = translate(req(json!({"messages": [
        {"role": "system", "content": "A"},
        {"role": "user", "content": "hi"}]})))
    .await;
    assert_system(&body, &["A"]);
    assert_eq!(
        messages(&body),
        json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    );
}

#[tokio::test]
async fn e02_developer_is_hoisted_like_system() {
    let body = translate(req(json!({"messages": [
        {"role": "developer", "content": "D"},
        {"role": "user", "content": "hi"}]})))
    .await;
    assert_system(&body, &["D"]);
    assert_eq!(
        messages(&body),
        json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    );
}

#[tokio::test]
async fn e03_multiple_system_messages_keep_their_order() {
    let body = translate(req(json!({"messages": [
        {"role": "system", "content": "A"},
        {"role": "user", "content": "u"},
        {"role": "system", "content": "B"}]})))
    .await;
    assert_system(&body, &["A", "B"]);
    assert_eq!(
        messages(&body),
        json!([{"role": "user", "content": [{"type": "text", "text": "u"}]}])
    );
}

#[tokio::test]
async fn e04_system_content_parts_become_two_text_blocks() {
    let body = translate(req(json!({"messages": [
        {"role": "system", "content": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}]},
        {"role": "user", "content": "hi"}]})))
    .await;
    assert_system(&body, &["A", "B"]);
}

#[tokio::test]
async fn e05_max_tokens_is_always_sent() {
    // The built-in default [Rec 4096]…
    let body = translate(req(json!({}))).await;
    assert!(body["max_tokens"].is_u64(), "{body}");
    assert_eq!(body["max_tokens"], 4096);
    // …and a per-key configured default.
    let rig = rig_with(json!({"max_tokens": 1234})).await;
    let body = sent_upstream(&rig, &req(json!({}))).await;
    assert_eq!(body["max_tokens"], 1234);
}

#[tokio::test]
async fn e06_max_completion_tokens_takes_precedence() {
    let rig = rig().await;
    for (extra, want) in [
        (
            json!({"max_tokens": 100, "max_completion_tokens": 200}),
            200,
        ),
        (json!({"max_completion_tokens": 300}), 300),
        (json!({"max_tokens": 50}), 50),
    ] {
        let body = sent_upstream(&rig, &req(extra.clone())).await;
        assert_eq!(body["max_tokens"], want, "{extra}");
    }
}

#[tokio::test]
async fn e07_stop_becomes_stop_sequences() {
    let rig = rig().await;
    for (stop, want) in [
        (json!("END"), json!(["END"])),
        (json!(["a", "b"]), json!(["a", "b"])),
    ] {
        let body = sent_upstream(&rig, &req(json!({ "stop": stop }))).await;
        assert_eq!(body["stop_sequences"], want, "{stop}");
        assert!(body.get("stop").is_none());
    }
}

#[tokio::test]
async fn e08_whitespace_stop_sequences_are_dropped() {
    let rig = rig().await;
    let body = sent_upstream(&rig, &req(json!({"stop": ["\n", "END"]}))).await;
    assert_eq!(body["stop_sequences"], json!(["END"]));
    let body = sent_upstream(&rig, &req(json!({"stop": " "}))).await;
    assert!(body.get("stop_sequences").is_none(), "{body}");
    assert!(body.get("stop").is_none());
}

#[tokio::test]
async fn e09_temperature_is_clamped_to_one() {
    let rig = rig().await;
    let body = sent_upstream(&rig, &req(json!({"temperature": 1.5}))).await;
    assert_eq!(body["temperature"].as_f64(), Some(1.0), "{body}");
    let body = sent_upstream(&rig, &req(json!({"temperature": 0.3}))).await;
    assert_eq!(body["temperature"].as_f64(), Some(0.3), "{body}");
    let body = sent_upstream(&rig, &req(json!({}))).await;
    assert!(body.get("temperature").is_none(), "{body}");
}

#[tokio::test]
async fn e10_unsupported_openai_params_are_dropped() {
    let dropped = json!({
        "seed": 7, "logprobs": true, "top_logprobs": 2, "logit_bias": {"50256": -100},
        "presence_penalty": 0.5, "frequency_penalty": 0.5,
        "stream_options": {"include_usage": true}, "n": 1, "store": true,
        "service_tier": "default"});
    let body = translate(req(dropped.clone())).await;
    for key in keys(&dropped) {
        assert!(
            body.get(key).is_none(),
            "{key} must not go upstream: {body}"
        );
    }
    assert_eq!(keys(&body), ["max_tokens", "messages", "model"], "{body}");
}

#[tokio::test]
async fn e11_n_above_one_is_rejected_before_the_upstream() {
    let rig = rig().await;
    let resp = rig.proxy.chat(&req(json!({"n": 2}))).await;
    let body = expect_error(resp, 400).await;
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert!(rig.mock.requests().is_empty(), "the mock must see nothing");
    assert!(rig.mock.hits().is_empty(), "{:?}", rig.mock.hits());
}

#[tokio::test]
async fn e12_user_becomes_metadata_user_id_unless_it_is_an_email() {
    let rig = rig().await;
    let body = sent_upstream(&rig, &req(json!({"user": "u-123"}))).await;
    assert_eq!(body["metadata"], json!({"user_id": "u-123"}));
    assert!(body.get("user").is_none());
    let body = sent_upstream(&rig, &req(json!({"user": "a@b.com"}))).await;
    assert!(body.get("metadata").is_none(), "{body}");
    assert!(body.get("user").is_none());
}

#[tokio::test]
async fn e13_tool_definition_keeps_the_schema_unchanged() {
    let schema = json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name", "minLength": 1},
            "unit": {"type": "string", "enum": ["c", "f"], "default": "c"},
            "when": {"$ref": "#/$defs/date"}
        },
        "required": ["city"],
        "additionalProperties": false,
        "$defs": {"date": {"type": "string", "format": "date"}}
    });
    let body = translate(req(json!({"tools": [{"type": "function", "function":
        {"name": "f", "description": "d", "parameters": schema}}]})))
    .await;
    assert_eq!(
        body["tools"],
        json!([{"name": "f", "description": "d", "input_schema": schema}])
    );
}

#[tokio::test]
async fn e14_tool_without_parameters_gets_an_empty_object_schema() {
    let body = translate(req(
        json!({"tools": [{"type": "function", "function": {"name": "ping"}}]}),
    ))
    .await;
    assert_eq!(
        body["tools"],
        json!([{"name": "ping", "input_schema": {"type": "object", "properties": {}}}])
    );
}

#[tokio::test]
async fn e15_tool_choice_mapping() {
    let rig = rig().await;
    for (choice, want) in [
        (json!("auto"), json!({"type": "auto"})),
        (json!("required"), json!({"type": "any"})),
        (json!("none"), json!({"type": "none"})),
        (
            json!({"type": "function", "function": {"name": "f"}}),
            json!({"type": "tool", "name": "f"}),
        ),
    ] {
        let body = sent_upstream(
            &rig,
            &req(json!({"tools": [f_tool()], "tool_choice": choice})),
        )
        .await;
        assert_eq!(body["tool_choice"], want, "{choice}");
    }
}

#[tokio::test]
async fn e16_parallel_tool_calls_false_disables_parallel_tool_use() {
    let rig = rig().await;
    let want = json!({"type": "auto", "disable_parallel_tool_use": true});
    let body = sent_upstream(
        &rig,
        &req(json!({"tools": [f_tool()], "tool_choice": "auto", "parallel_tool_calls": false})),
    )
    .await;
    assert_eq!(body["tool_choice"], want);
    let body = sent_upstream(
        &rig,
        &req(json!({"tools": [f_tool()], "parallel_tool_calls": false})),
    )
    .await;
    assert_eq!(body["tool_choice"], want);
    assert!(body.get("parallel_tool_calls").is_none());
}

/// `[user "q", assistant <assistant>, tool(call_1, "r")]` with `f` defined.
fn with_assistant(assistant: Value) -> Value {
    req(json!({"tools": [f_tool()], "messages": [
        {"role": "user", "content": "q"},
        assistant,
        {"role": "tool", "tool_call_id": "call_1", "content": "r"}]}))
}

#[tokio::test]
async fn e17_assistant_tool_calls_become_tool_use_only() {
    let body = translate(with_assistant(json!({"role": "assistant", "content": null,
        "tool_calls": [call("call_1", "f", "{\"x\":1}")]})))
    .await;
    assert_eq!(
        messages(&body)[1],
        json!({"role": "assistant", "content":
            [{"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": 1}}]})
    );
}

#[tokio::test]
async fn e18_empty_arguments_become_an_empty_input_object() {
    let body = translate(with_assistant(json!({"role": "assistant", "content": null,
        "tool_calls": [call("call_1", "f", "")]})))
    .await;
    assert_eq!(
        messages(&body)[1]["content"],
        json!([{"type": "tool_use", "id": "call_1", "name": "f", "input": {}}])
    );
}

#[tokio::test]
async fn e19_assistant_text_comes_before_tool_use() {
    let body = translate(with_assistant(
        json!({"role": "assistant", "content": "Let me check",
        "tool_calls": [call("call_1", "f", "{\"x\":1}")]}),
    ))
    .await;
    assert_eq!(
        messages(&body)[1]["content"],
        json!([{"type": "text", "text": "Let me check"},
               {"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": 1}}])
    );
}

#[tokio::test]
async fn e20_empty_assistant_text_is_skipped() {
    let body = translate(with_assistant(json!({"role": "assistant", "content": "",
        "tool_calls": [call("call_1", "f", "{\"x\":1}")]})))
    .await;
    assert_eq!(
        messages(&body)[1]["content"],
        json!([{"type": "tool_use", "id": "call_1", "name": "f", "input": {"x": 1}}])
    );
}

#[tokio::test]
async fn e21_tool_message_becomes_a_tool_result_in_a_user_turn() {
    let body = translate(req(json!({"tools": [f_tool()], "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": null, "tool_calls": [call("call_1", "f", "{}")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"}]})))
    .await;
    assert_eq!(
        messages(&body)[2],
        json!({"role": "user", "content":
            [{"type": "tool_result", "tool_use_id": "call_1", "content": "42"}]})
    );
}

#[tokio::test]
async fn e22_parallel_tool_results_merge_into_one_user_turn() {
    // The C.2 worked example, with the tool defined.
    let mut body = translate(req(json!({"tools": [weather_tool()], "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in SF and NYC?"},
        {"role": "assistant", "content": null, "tool_calls": [
            call("call_1", "get_weather", "{\"city\":\"SF\"}"),
            call("call_2", "get_weather", "{\"city\":\"NYC\"}")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "15C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "22C"}]})))
    .await;
    assert_system(&body, &["Be brief."]);
    body.as_object_mut().unwrap().remove("system");
    body["messages"] = messages(&body);
    assert_eq!(
        body,
        json!({"model": "claude-x", "max_tokens": 4096,
            "tools": [{"name": "get_weather", "input_schema": {"type": "object",
                "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
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

#[tokio::test]
async fn e23_tool_results_come_before_user_text() {
    let body = translate(req(json!({"tools": [f_tool()], "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": null, "tool_calls": [call("call_1", "f", "{}")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        {"role": "user", "content": "thanks"}]})))
    .await;
    let msgs = messages(&body);
    assert_eq!(msgs.as_array().unwrap().len(), 3, "{msgs}");
    assert_eq!(
        msgs[2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "42"},
            {"type": "text", "text": "thanks"}]})
    );
}

#[tokio::test]
async fn e24_consecutive_user_messages_merge() {
    let body = translate(req(json!({"messages": [
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"}]})))
    .await;
    assert_eq!(
        messages(&body),
        json!([{"role": "user", "content": [
            {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])
    );
}

#[tokio::test]
async fn e25_consecutive_assistant_messages_merge() {
    let body = translate(req(json!({"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "x"},
        {"role": "assistant", "content": "y"},
        {"role": "user", "content": "z"}]})))
    .await;
    assert_eq!(
        messages(&body),
        json!([
            {"role": "user", "content": [{"type": "text", "text": "q"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "x"}, {"type": "text", "text": "y"}]},
            {"role": "user", "content": [{"type": "text", "text": "z"}]}])
    );
}

/// A user message with one text part and `part`; returns the translated part.
async fn translated_part(part: Value) -> Value {
    let body = translate(req(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"}, part]}]})))
    .await;
    let content = messages(&body)[0]["content"].clone();
    assert_eq!(content.as_array().unwrap().len(), 2, "{content}");
    assert_eq!(content[0], json!({"type": "text", "text": "look"}));
    content[1].clone()
}

#[tokio::test]
async fn e26_data_url_image_becomes_a_base64_source() {
    let block = translated_part(json!({"type": "image_url",
        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}}))
    .await;
    assert_eq!(
        block,
        json!({"type": "image", "source":
            {"type": "base64", "media_type": "image/png", "data": "AAAA"}})
    );
}

#[tokio::test]
async fn e27_jpeg_media_type_is_preserved() {
    let block = translated_part(json!({"type": "image_url",
        "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}))
    .await;
    assert_eq!(
        block,
        json!({"type": "image", "source":
            {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}})
    );
}

/// A loopback listener that counts the connections it gets and closes them.
async fn connection_counter() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(conn);
        }
    });
    (format!("http://{addr}/a.png"), count)
}

#[tokio::test]
async fn e28_http_image_becomes_a_url_source_without_a_fetch() {
    let block = translated_part(json!({"type": "image_url",
        "image_url": {"url": "https://x.test/a.png"}}))
    .await;
    assert_eq!(
        block,
        json!({"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}})
    );
    // A reachable URL: any fetch by the proxy would connect here before it answered.
    let (url, fetches) = connection_counter().await;
    let block = translated_part(json!({"type": "image_url", "image_url": {"url": url}})).await;
    assert_eq!(
        block,
        json!({"type": "image", "source": {"type": "url", "url": url}})
    );
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        0,
        "the proxy fetched the image"
    );
}

#[tokio::test]
async fn e29_pdf_data_url_becomes_a_document() {
    let want = json!({"type": "document", "source":
        {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}});
    let block = translated_part(json!({"type": "image_url",
        "image_url": {"url": "data:application/pdf;base64,JVBE"}}))
    .await;
    assert_eq!(block, want);
    let block = translated_part(json!({"type": "file",
        "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}}))
    .await;
    assert_eq!(block, want);
}

#[tokio::test]
async fn e30_trailing_assistant_prefill_is_right_stripped() {
    let body = translate(req(json!({"messages": [
        {"role": "user", "content": "What is 6*7?"},
        {"role": "assistant", "content": "The answer is "}]})))
    .await;
    let msgs = messages(&body);
    let last = msgs.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        json!({"role": "assistant", "content": [{"type": "text", "text": "The answer is"}]})
    );
}

#[tokio::test]
async fn e31_upstream_headers_carry_the_pool_key_not_the_clients() {
    let rig = rig().await;
    let resp = client()
        .post(rig.proxy.url("/v1/chat/completions"))
        .header("authorization", "Bearer client-token")
        .json(&req(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let reqs = rig.mock.requests();
    assert_eq!(reqs.len(), 1);
    let h = &reqs[0].headers;
    assert_eq!(reqs[0].path, "/v1/messages");
    assert_eq!(h["x-api-key"], KEY);
    assert_eq!(h["anthropic-version"], "2023-06-01");
    assert_eq!(h["content-type"], "application/json");
    assert!(h.get("authorization").is_none(), "{h:?}");
    for (name, value) in h {
        assert!(
            !String::from_utf8_lossy(value.as_bytes()).contains("client-token"),
            "client credential forwarded in {name}"
        );
    }
}

#[tokio::test]
async fn e32_response_format_text_is_a_no_op() {
    let rig = rig().await;
    let plain = sent_upstream(&rig, &req(json!({"temperature": 0.2}))).await;
    let with_text = sent_upstream(
        &rig,
        &req(json!({"temperature": 0.2, "response_format": {"type": "text"}})),
    )
    .await;
    assert_eq!(with_text, plain);
    let reqs = rig.mock.requests();
    assert_eq!(reqs[0].body, reqs[1].body, "byte-identical upstream bodies");
}

// ---------------------------------------------------------------------------------------
// E.2 Response translation (Anthropic → OpenAI, non-streaming)
// ---------------------------------------------------------------------------------------

fn respond(message: &Value) -> Behavior {
    Behavior::Respond {
        status: 200,
        headers: vec![],
        body: Bytes::from(message.to_string()),
    }
}

fn anthropic_message(content: Value, stop_reason: &str, usage: Value) -> Value {
    json!({"id": "msg_conf", "type": "message", "role": "assistant", "model": "claude-x",
           "content": content, "stop_reason": stop_reason, "stop_sequence": null,
           "usage": usage})
}

/// The OpenAI `chat.completion` the client receives when the upstream answers `message`.
async fn client_sees(message: &Value) -> Value {
    let rig = rig().await;
    rig.mock.script(KEY, [respond(message)]);
    let resp = rig.proxy.chat(&req(json!({}))).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(rig.mock.requests().len(), 1);
    assert_eq!(rig.mock.requests()[0].path, "/v1/messages");
    body
}

#[tokio::test]
async fn e33_text_response() {
    let before = now_secs();
    let body = client_sees(&anthropic_message(
        json!([{"type": "text", "text": "Hi"}]),
        "end_turn",
        json!({"input_tokens": 10, "output_tokens": 3}),
    ))
    .await;
    let after = now_secs();
    assert_eq!(body["object"], "chat.completion");
    let choices = body["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 1);
    assert_eq!(choices[0]["index"], 0);
    assert_eq!(choices[0]["message"]["role"], "assistant");
    assert_eq!(choices[0]["message"]["content"], "Hi");
    assert_eq!(choices[0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 10);
    assert_eq!(body["usage"]["completion_tokens"], 3);
    assert_eq!(body["usage"]["total_tokens"], 13);
    let created = body["created"].as_u64().expect("integer created");
    assert!(
        (before..=after).contains(&created),
        "created {created} must be unix seconds now ({before}..={after})"
    );
}

#[tokio::test]
async fn e34_text_blocks_concatenate() {
    let body = client_sees(&anthropic_message(
        json!([{"type": "text", "text": "Hello "}, {"type": "text", "text": "world"}]),
        "end_turn",
        json!({"input_tokens": 1, "output_tokens": 2}),
    ))
    .await;
    assert_eq!(body["choices"][0]["message"]["content"], "Hello world");
}

#[tokio::test]
async fn e35_tool_use_becomes_tool_calls() {
    let body = client_sees(&anthropic_message(
        json!([{"type": "text", "text": "ok"},
               {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}]),
        "tool_use",
        json!({"input_tokens": 1, "output_tokens": 2}),
    ))
    .await;
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["content"], "ok");
    assert_eq!(
        choice["message"]["tool_calls"],
        json!([{"id": "toolu_1", "type": "function",
                "function": {"name": "f", "arguments": "{\"a\":1}"}}])
    );
    assert_eq!(choice["finish_reason"], "tool_calls");
    let args: Value = serde_json::from_str(
        choice["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"a": 1}));
}

#[tokio::test]
async fn e35_c6_worked_example_exactly() {
    // The B.6 message must become exactly the C.6 example (`created` is the current time).
    let b6 = json!({"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "I'll check."},
                    {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather",
                     "input": {"location": "San Francisco, CA"}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 472, "output_tokens": 89,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}});
    let mut body = client_sees(&b6).await;
    assert!(body["created"].is_u64());
    body["created"] = json!(1_700_000_000);
    assert_eq!(
        body,
        json!({"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "object": "chat.completion",
            "created": 1_700_000_000, "model": "claude-sonnet-4-5",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls",
              "message": {"role": "assistant", "content": "I'll check.", "refusal": null,
                "tool_calls": [{"id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                  "function": {"name": "get_weather",
                               "arguments": "{\"location\":\"San Francisco, CA\"}"}}]}}],
            "usage": {"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561,
                      "prompt_tokens_details": {"cached_tokens": 0}}})
    );
}

#[tokio::test]
async fn e36_tool_use_only_has_null_content() {
    let body = client_sees(&anthropic_message(
        json!([{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]),
        "tool_use",
        json!({"input_tokens": 1, "output_tokens": 2}),
    ))
    .await;
    let message = &body["choices"][0]["message"];
    assert!(message.get("content").is_some(), "content key present");
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"][0]["function"]["arguments"], "{}");
}

#[tokio::test]
async fn e37_finish_reasons_are_openai_values() {
    let table = [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("some_future_reason", "stop"),
        ("model_context_window_exceeded", "length"),
    ];
    let rig = rig().await;
    rig.mock.script(
        KEY,
        table.iter().map(|(reason, _)| {
            respond(&anthropic_message(
                json!([{"type": "text", "text": "x"}]),
                reason,
                json!({"input_tokens": 1, "output_tokens": 1}),
            ))
        }),
    );
    for (reason, want) in table {
        let resp = rig.proxy.chat(&req(json!({}))).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["choices"][0]["finish_reason"], want, "{reason}");
    }
    assert_eq!(rig.mock.requests().len(), table.len());
}

#[tokio::test]
async fn e38_cache_tokens_count_as_prompt_tokens() {
    let body = client_sees(&anthropic_message(
        json!([{"type": "text", "text": "x"}]),
        "end_turn",
        json!({"input_tokens": 5, "cache_creation_input_tokens": 100,
               "cache_read_input_tokens": 900, "output_tokens": 20}),
    ))
    .await;
    let usage = &body["usage"];
    assert_eq!(usage["prompt_tokens"], 1005);
    assert_eq!(usage["completion_tokens"], 20);
    assert_eq!(usage["total_tokens"], 1025);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 900);
}

#[tokio::test]
async fn e39_thinking_is_not_leaked_into_content() {
    let body = client_sees(&anthropic_message(
        json!([{"type": "thinking", "thinking": "secret reasoning", "signature": "sig"},
               {"type": "text", "text": "A"}]),
        "end_turn",
        json!({"input_tokens": 1, "output_tokens": 9}),
    ))
    .await;
    let mut message = body["choices"][0]["message"].clone();
    assert_eq!(message["content"], "A");
    // Extension fields may carry the thinking; no standard field may.
    for extension in [
        "reasoning_content",
        "thinking_blocks",
        "provider_specific_fields",
    ] {
        message.as_object_mut().unwrap().remove(extension);
    }
    assert!(
        !message.to_string().contains("secret reasoning"),
        "{message}"
    );
}

// ---------------------------------------------------------------------------------------
// E.3 helpers: Anthropic SSE in, OpenAI SSE out
// ---------------------------------------------------------------------------------------

/// One Anthropic SSE event: `event: <type>` and `data: <json>`.
fn ev(data: &Value) -> String {
    format!(
        "event: {}\ndata: {data}\n\n",
        data["type"].as_str().unwrap()
    )
}

fn sse(events: &[Value]) -> String {
    events.iter().map(ev).collect()
}

fn msg_start(usage: Value) -> Value {
    json!({"type": "message_start", "message": {"id": "msg_conf", "type": "message",
        "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null,
        "stop_sequence": null, "usage": usage}})
}
fn text_start(i: u64) -> Value {
    json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
}
fn text_delta(i: u64, t: &str) -> Value {
    json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t}})
}
fn tool_start(i: u64, id: &str, name: &str) -> Value {
    json!({"type": "content_block_start", "index": i,
           "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})
}
fn json_delta(i: u64, partial: &str) -> Value {
    json!({"type": "content_block_delta", "index": i,
           "delta": {"type": "input_json_delta", "partial_json": partial}})
}
fn block_stop(i: u64) -> Value {
    json!({"type": "content_block_stop", "index": i})
}
fn msg_delta(stop_reason: &str, usage: Value) -> Value {
    json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
           "usage": usage})
}
fn msg_stop() -> Value {
    json!({"type": "message_stop"})
}
fn ping() -> Value {
    json!({"type": "ping"})
}

/// A complete text stream with these deltas.
fn text_stream(parts: &[&str]) -> Vec<Value> {
    let mut events = vec![
        msg_start(json!({"input_tokens": 12, "output_tokens": 1})),
        text_start(0),
    ];
    events.extend(parts.iter().map(|p| text_delta(0, p)));
    events.extend([
        block_stop(0),
        msg_delta("end_turn", json!({"output_tokens": 7})),
        msg_stop(),
    ]);
    events
}

/// The B.7 example stream, byte for byte.
const B7: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-opus-4-1-20250805","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay, let's check"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"San Francisco, CA\""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":", \"unit\": \"fahrenheit\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

/// What the client received for a streamed request.
struct Streamed {
    status: u16,
    content_type: String,
    raw: String,
}

/// One SSE frame per event, as the real API writes them.
fn per_event(stream: &str) -> Vec<Bytes> {
    stream
        .split_inclusive("\n\n")
        .map(|f| Bytes::from(f.to_owned()))
        .collect()
}

/// Streams `frames` from the mock (exactly these bytes, then a clean end of the body) for an
/// OpenAI request with `stream: true` and `extra` merged in.
async fn stream_on(rig: &Rig, frames: Vec<Bytes>, extra: Value) -> Streamed {
    rig.mock.script(
        KEY,
        [Behavior::Stream {
            frames,
            truncate: false,
        }],
    );
    let resp = rig
        .proxy
        .chat(&req(merge(json!({"stream": true}), extra)))
        .await;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let raw = String::from_utf8(resp.bytes().await.unwrap().to_vec()).unwrap();
    Streamed {
        status,
        content_type,
        raw,
    }
}

async fn stream_through(stream: &str, extra: Value) -> Streamed {
    let rig = rig().await;
    stream_on(&rig, per_event(stream), extra).await
}

/// The `data:` payloads of an OpenAI SSE body, checking the framing on the way: every frame
/// is exactly one `data: ` line followed by a blank line, and there is nothing else.
fn payloads(raw: &str) -> Vec<String> {
    assert!(
        raw.ends_with("\n\n"),
        "body must end with a blank line: {raw:?}"
    );
    raw[..raw.len() - 2]
        .split("\n\n")
        .map(|frame| {
            assert!(!frame.contains('\n'), "one line per frame: {frame:?}");
            assert!(!frame.starts_with("event:"), "no event: lines: {frame:?}");
            frame
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data line: {frame:?}"))
                .to_owned()
        })
        .collect()
}

/// The chunks of a complete OpenAI stream (E.40): `data:` framing, `[DONE]` exactly once and
/// last, every chunk a `chat.completion.chunk` with the same `id`, `created` and `model`.
fn parse_chunks(raw: &str) -> Vec<Value> {
    let mut payloads = payloads(raw);
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"), "{raw}");
    payloads.pop();
    assert!(!payloads.iter().any(|p| p == "[DONE]"), "one [DONE]: {raw}");
    let chunks: Vec<Value> = payloads
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    assert!(!chunks.is_empty());
    let first = &chunks[0];
    assert!(first["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert!(first["created"].is_u64());
    assert!(first["model"].as_str().is_some_and(|m| !m.is_empty()));
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        for field in ["id", "created", "model"] {
            assert_eq!(chunk[field], first[field], "{field} differs in {chunk}");
        }
    }
    chunks
}

/// The `choices[0].delta` of every chunk that has a choice.
fn deltas(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .map(|choice| choice["delta"].clone())
        .collect()
}

fn content(chunks: &[Value]) -> String {
    deltas(chunks)
        .iter()
        .filter_map(|d| d["content"].as_str().map(str::to_owned))
        .collect()
}

/// Every tool-call fragment, in order.
fn tool_fragments(chunks: &[Value]) -> Vec<Value> {
    deltas(chunks)
        .iter()
        .filter_map(|d| d["tool_calls"].as_array().cloned())
        .flatten()
        .collect()
}

/// Concatenated arguments per tool index.
fn tool_arguments(chunks: &[Value]) -> BTreeMap<u64, String> {
    let mut args = BTreeMap::<u64, String>::new();
    for frag in tool_fragments(chunks) {
        let index = frag["index"].as_u64().expect("tool index");
        let piece = frag["function"]["arguments"].as_str().unwrap_or_default();
        args.entry(index).or_default().push_str(piece);
    }
    args
}

/// The chunks with a non-null `finish_reason`.
fn finish_chunks(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .filter(|c| {
            c["choices"]
                .get(0)
                .is_some_and(|ch| !ch["finish_reason"].is_null())
        })
        .cloned()
        .collect()
}

/// `raw` with every `"created":<digits>` replaced by `"created":0`.
fn mask_created(raw: &str) -> String {
    const TAG: &str = "\"created\":";
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find(TAG) {
        out.push_str(&rest[..at + TAG.len()]);
        rest = rest[at + TAG.len()..].trim_start_matches(|c: char| c.is_ascii_digit());
        out.push('0');
    }
    out.push_str(rest);
    out
}

fn include_usage() -> Value {
    json!({"stream_options": {"include_usage": true}})
}

// ---------------------------------------------------------------------------------------
// E.3 Streaming translation (Anthropic SSE → OpenAI SSE)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn e40_framing_data_lines_shared_envelope_done_last() {
    for extra in [json!({}), include_usage()] {
        let out = stream_through(B7, extra).await;
        assert_eq!(out.status, 200);
        assert!(
            !out.raw.lines().any(|l| l.starts_with("event:")),
            "{}",
            out.raw
        );
        let chunks = parse_chunks(&out.raw);
        assert!(chunks.len() >= 6, "{}", out.raw);
        for chunk in &chunks {
            for choice in chunk["choices"].as_array().unwrap() {
                assert_eq!(choice["index"], 0, "{chunk}");
            }
        }
    }
}

#[tokio::test]
async fn e41_role_comes_first_and_only_once() {
    let out = stream_through(B7, json!({})).await;
    let deltas = deltas(&parse_chunks(&out.raw));
    assert_eq!(deltas[0]["role"], "assistant", "{}", out.raw);
    for later in &deltas[1..] {
        assert!(later.get("role").is_none(), "role repeated: {later}");
    }
}

#[tokio::test]
async fn e42_text_deltas_become_content_chunks() {
    let out = stream_through(&sse(&text_stream(&["Hel", "lo"])), json!({})).await;
    let chunks = parse_chunks(&out.raw);
    let texts: Vec<String> = deltas(&chunks)
        .iter()
        .filter_map(|d| d["content"].as_str())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(texts, ["Hel", "lo"]);
    assert_eq!(content(&chunks), "Hello");
}

#[tokio::test]
async fn e43_ping_events_change_nothing() {
    let plain = text_stream(&["a", "b"]);
    let mut pinged = plain.clone();
    for at in [5, 3, 2, 1] {
        pinged.insert(at, ping());
    }
    let rig = rig().await;
    for extra in [json!({}), include_usage()] {
        let without = stream_on(&rig, per_event(&sse(&plain)), extra.clone()).await;
        let with = stream_on(&rig, per_event(&sse(&pinged)), extra).await;
        parse_chunks(&without.raw);
        assert_eq!(mask_created(&with.raw), mask_created(&without.raw));
    }
}

#[tokio::test]
async fn e44_b7_single_tool_call() {
    let out = stream_through(B7, json!({})).await;
    let chunks = parse_chunks(&out.raw);
    let frags = tool_fragments(&chunks);
    assert!(frags.len() >= 2, "{}", out.raw);
    assert_eq!(
        frags[0],
        json!({"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
               "function": {"name": "get_weather", "arguments": ""}})
    );
    for later in &frags[1..] {
        assert_eq!(keys(later), ["function", "index"], "{later}");
        assert_eq!(later["index"], 0);
        assert_eq!(keys(&later["function"]), ["arguments"], "{later}");
    }
    let args = tool_arguments(&chunks);
    assert_eq!(args.len(), 1);
    let parsed: Value = serde_json::from_str(&args[&0]).unwrap();
    assert_eq!(
        parsed,
        json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
    );
}

#[tokio::test]
async fn e44_e50_c9_worked_example_exactly() {
    // The B.7 stream with include_usage must give exactly the C.9 worked example (the
    // reference abbreviates the id; `created` is the current time).
    let out = stream_through(B7, include_usage()).await;
    let chunks = parse_chunks(&out.raw);
    let id = chunks[0]["id"].clone();
    let created = chunks[0]["created"].clone();
    let envelope = |choices: Value, usage: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": created,
               "model": "claude-opus-4-1-20250805", "choices": choices, "usage": usage})
    };
    let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    let expected = vec![
        envelope(
            choice(json!({"role": "assistant", "content": ""}), Value::Null),
            Value::Null,
        ),
        envelope(
            choice(json!({"content": "Okay, let's check"}), Value::Null),
            Value::Null,
        ),
        envelope(
            choice(
                json!({"tool_calls": [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                    "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null,
            ),
            Value::Null,
        ),
        envelope(
            choice(
                json!({"tool_calls": [{"index": 0,
                    "function": {"arguments": "{\"location\": \"San Francisco, CA\""}}]}),
                Value::Null,
            ),
            Value::Null,
        ),
        envelope(
            choice(
                json!({"tool_calls": [{"index": 0,
                    "function": {"arguments": ", \"unit\": \"fahrenheit\"}"}}]}),
                Value::Null,
            ),
            Value::Null,
        ),
        envelope(choice(json!({}), json!("tool_calls")), Value::Null),
        envelope(
            json!([]),
            json!({"prompt_tokens": 472, "completion_tokens": 89, "total_tokens": 561,
                   "prompt_tokens_details": {"cached_tokens": 0}}),
        ),
    ];
    assert_eq!(chunks, expected, "{}", out.raw);
}

#[tokio::test]
async fn e45_tool_index_is_an_ordinal_not_a_block_index() {
    let events = [
        msg_start(json!({"input_tokens": 3, "output_tokens": 1})),
        text_start(0),
        text_delta(0, "Checking both."),
        block_stop(0),
        tool_start(1, "toolu_a", "f"),
        json_delta(1, "{\"x\":"),
        json_delta(1, "1}"),
        block_stop(1),
        tool_start(2, "toolu_b", "g"),
        json_delta(2, "{\"y\":"),
        json_delta(2, "2}"),
        block_stop(2),
        msg_delta("tool_use", json!({"output_tokens": 30})),
        msg_stop(),
    ];
    let out = stream_through(&sse(&events), json!({})).await;
    let chunks = parse_chunks(&out.raw);
    let starts: Vec<(u64, String)> = tool_fragments(&chunks)
        .iter()
        .filter(|f| f.get("id").is_some())
        .map(|f| {
            (
                f["index"].as_u64().unwrap(),
                f["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        starts,
        [(0, "toolu_a".to_owned()), (1, "toolu_b".to_owned())]
    );
    let args = tool_arguments(&chunks);
    assert_eq!(args.keys().copied().collect::<Vec<_>>(), [0, 1], "{args:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&args[&0]).unwrap(),
        json!({"x": 1})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&args[&1]).unwrap(),
        json!({"y": 2})
    );
    assert_eq!(content(&chunks), "Checking both.");
}

#[tokio::test]
async fn e46_start_input_is_not_an_arguments_prefix() {
    let events = [
        msg_start(json!({"input_tokens": 3, "output_tokens": 1})),
        tool_start(0, "toolu_a", "f"),
        json_delta(0, "{\"a\":"),
        json_delta(0, "1}"),
        block_stop(0),
        msg_delta("tool_use", json!({"output_tokens": 9})),
        msg_stop(),
    ];
    let out = stream_through(&sse(&events), json!({})).await;
    let args = tool_arguments(&parse_chunks(&out.raw));
    assert_eq!(args[&0], "{\"a\":1}");
}

#[tokio::test]
async fn e47_no_arg_tool_gets_empty_object_arguments() {
    let events = [
        msg_start(json!({"input_tokens": 3, "output_tokens": 1})),
        // Only empty fragments…
        tool_start(0, "toolu_a", "now"),
        json_delta(0, ""),
        json_delta(0, ""),
        block_stop(0),
        // …or none at all.
        tool_start(1, "toolu_b", "today"),
        block_stop(1),
        msg_delta("tool_use", json!({"output_tokens": 9})),
        msg_stop(),
    ];
    let out = stream_through(&sse(&events), json!({})).await;
    let args = tool_arguments(&parse_chunks(&out.raw));
    assert_eq!(args.get(&0).map(String::as_str), Some("{}"), "{args:?}");
    assert_eq!(args.get(&1).map(String::as_str), Some("{}"), "{args:?}");
}

#[tokio::test]
async fn e48_exactly_one_finish_chunk() {
    let out = stream_through(B7, json!({})).await;
    let finish = finish_chunks(&parse_chunks(&out.raw));
    assert_eq!(finish.len(), 1, "{}", out.raw);
    let choice = &finish[0]["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let delta = &choice["delta"];
    assert!(
        delta == &json!({}) || delta.get("content").is_none_or(Value::is_null),
        "finish delta carries content: {delta}"
    );
}

#[tokio::test]
async fn e49_stop_sequence_finishes_with_stop() {
    let mut events = text_stream(&["alpha "]);
    let at = events.len() - 2;
    events[at] = json!({"type": "message_delta",
        "delta": {"stop_reason": "stop_sequence", "stop_sequence": "END"},
        "usage": {"output_tokens": 2}});
    let out = stream_through(&sse(&events), json!({})).await;
    let finish = finish_chunks(&parse_chunks(&out.raw));
    assert_eq!(finish.len(), 1, "{}", out.raw);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn e50_usage_chunk_with_include_usage() {
    let out = stream_through(B7, include_usage()).await;
    let chunks = parse_chunks(&out.raw);
    let (last, rest) = chunks.split_last().unwrap();
    for chunk in rest {
        assert!(chunk.get("usage").is_some(), "usage key missing: {chunk}");
        assert_eq!(chunk["usage"], Value::Null, "{chunk}");
        assert_ne!(chunk["choices"], json!([]), "{chunk}");
    }
    assert_eq!(last["choices"], json!([]));
    let usage = &last["usage"];
    assert_eq!(usage["prompt_tokens"], 472);
    assert_eq!(usage["completion_tokens"], 89);
    assert_eq!(usage["total_tokens"], 561);

    // C.8 applies to the stream as well: cache tokens are prompt tokens.
    let mut events = text_stream(&["x"]);
    events[0] = msg_start(
        json!({"input_tokens": 5, "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 900, "output_tokens": 1}),
    );
    let at = events.len() - 2;
    events[at] = msg_delta("end_turn", json!({"output_tokens": 20}));
    let out = stream_through(&sse(&events), include_usage()).await;
    let chunks = parse_chunks(&out.raw);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(
        (
            &usage["prompt_tokens"],
            &usage["completion_tokens"],
            &usage["total_tokens"]
        ),
        (&json!(1005), &json!(20), &json!(1025))
    );
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 900);
}

#[tokio::test]
async fn e51_no_usage_without_include_usage() {
    let rig = rig().await;
    for extra in [
        json!({}),
        json!({"stream_options": {"include_usage": false}}),
    ] {
        let out = stream_on(&rig, per_event(B7), extra.clone()).await;
        for chunk in parse_chunks(&out.raw) {
            assert!(
                chunk.get("usage").is_none_or(Value::is_null),
                "{extra}: {chunk}"
            );
            assert_ne!(chunk["choices"], json!([]), "{extra}: {chunk}");
        }
    }
}

#[tokio::test]
async fn e52_output_tokens_are_cumulative() {
    let events = [
        msg_start(json!({"input_tokens": 4, "output_tokens": 1})),
        text_start(0),
        text_delta(0, "hi"),
        block_stop(0),
        msg_delta("end_turn", json!({"output_tokens": 10})),
        msg_delta("end_turn", json!({"output_tokens": 25})),
        msg_stop(),
    ];
    let out = stream_through(&sse(&events), include_usage()).await;
    let chunks = parse_chunks(&out.raw);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 25, "{usage}");
    assert_eq!(usage["total_tokens"], 29, "{usage}");
}

#[tokio::test]
async fn e53_input_tokens_fall_back_to_message_delta_then_zero() {
    let rig = rig().await;
    let stream = |start_usage: Value, delta_usage: Value| {
        let mut events = text_stream(&["x"]);
        events[0] = msg_start(start_usage);
        let at = events.len() - 2;
        events[at] = msg_delta("end_turn", delta_usage);
        per_event(&sse(&events))
    };
    let out = stream_on(
        &rig,
        stream(
            json!({"output_tokens": 1}),
            json!({"input_tokens": 40, "output_tokens": 6}),
        ),
        include_usage(),
    )
    .await;
    let usage = parse_chunks(&out.raw).last().unwrap()["usage"].clone();
    assert_eq!(usage["prompt_tokens"], 40, "{usage}");
    assert_eq!(usage["total_tokens"], 46, "{usage}");

    let out = stream_on(
        &rig,
        stream(json!({"output_tokens": 1}), json!({"output_tokens": 6})),
        include_usage(),
    )
    .await;
    let usage = parse_chunks(&out.raw).last().unwrap()["usage"].clone();
    assert!(usage.get("prompt_tokens").is_some(), "{usage}");
    assert_eq!(usage["prompt_tokens"], 0, "{usage}");
    assert_eq!(usage["total_tokens"], 6, "{usage}");
}

/// The payloads of a stream that must end in an error (E.54, E.55): the parsed JSON payloads,
/// and whether `[DONE]` was sent. Asserts there is exactly one error payload, that it comes
/// after every chunk, and that `[DONE]`, if present, is last.
fn error_stream(raw: &str) -> (Vec<Value>, Value, bool) {
    let mut payloads = payloads(raw);
    let done = payloads.last().is_some_and(|p| p == "[DONE]");
    if done {
        payloads.pop();
    }
    assert!(!payloads.iter().any(|p| p == "[DONE]"), "{raw}");
    let values: Vec<Value> = payloads
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let (error, chunks) = values.split_last().expect("an error payload");
    assert!(
        error.get("error").is_some(),
        "last payload must be the error: {raw}"
    );
    assert!(
        chunks.iter().all(|c| c.get("error").is_none()),
        "one error payload: {raw}"
    );
    for chunk in chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        assert_eq!(chunk["id"], chunks[0]["id"]);
    }
    let err = error["error"].clone();
    for field in ["message", "type", "param", "code"] {
        assert!(err.get(field).is_some(), "error.{field} missing: {err}");
    }
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{err}"
    );
    (chunks.to_vec(), err, done)
}

#[tokio::test]
async fn e54_mid_stream_error_is_in_band_and_never_a_stop() {
    let events = [
        msg_start(json!({"input_tokens": 3, "output_tokens": 1})),
        text_start(0),
        text_delta(0, "Hello"),
        text_delta(0, " there"),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ];
    let out = stream_through(&sse(&events), include_usage()).await;
    assert_eq!(out.status, 200);
    let (chunks, err, _) = error_stream(&out.raw);
    assert_eq!(content(&chunks), "Hello there", "{}", out.raw);
    assert_eq!(err["message"], "Overloaded");
    assert_eq!(err["type"], "overloaded_error");
    assert!(finish_chunks(&chunks).is_empty(), "{}", out.raw);
    assert!(
        !out.raw.contains("\"finish_reason\":\"stop\""),
        "{}",
        out.raw
    );
    assert!(
        !chunks.iter().any(|c| c["choices"] == json!([])),
        "no usage chunk after an error: {}",
        out.raw
    );
}

/// An Anthropic-style upstream for one request that answers 200 with `frames` as HTTP/1.1
/// chunks and then drops the connection mid-body (no terminating chunk): a connection that
/// breaks mid-stream. Returns the `base_url` for an `LLM_KEYS` entry.
///
/// The mock's `Behavior::Stream { truncate: true }` cannot be used for this: it fails the
/// body before hyper flushes the response head, so the proxy sees a connection closed before
/// any response (a 502) rather than a stream that breaks after some events.
async fn breaking_upstream(frames: Vec<Bytes>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        // Read the whole request first, so closing sends FIN rather than a reset.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "request ended early");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < head_end + length {
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "request body ended early");
            buf.extend_from_slice(&chunk[..n]);
        }
        let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        transfer-encoding: chunked\r\n\r\n"
            .to_vec();
        for frame in frames {
            out.extend_from_slice(format!("{:x}\r\n", frame.len()).as_bytes());
            out.extend_from_slice(&frame);
            out.extend_from_slice(b"\r\n");
        }
        conn.write_all(&out).await.unwrap();
        conn.shutdown().await.unwrap();
    });
    format!("http://{addr}")
}

/// Checks a client stream for an upstream that ended after "Hello there" without
/// `message_stop`: the text arrives, then an error payload, and no finish, usage or `[DONE]`.
fn assert_truncated(out: &Streamed, label: &str) {
    assert_eq!(out.status, 200, "{label}: {}", out.raw);
    let (chunks, _, done) = error_stream(&out.raw);
    assert!(
        !done,
        "{label}: [DONE] after a truncated stream: {}",
        out.raw
    );
    assert_eq!(content(&chunks), "Hello there", "{label}: {}", out.raw);
    assert!(finish_chunks(&chunks).is_empty(), "{label}: {}", out.raw);
    assert!(
        !chunks.iter().any(|c| c["choices"] == json!([])),
        "{label}: {}",
        out.raw
    );
}

#[tokio::test]
async fn e55_truncated_upstream_is_an_error_not_a_finish() {
    let content_only = vec![
        msg_start(json!({"input_tokens": 3, "output_tokens": 1})),
        text_start(0),
        text_delta(0, "Hello"),
        text_delta(0, " there"),
    ];
    let mut after_delta = content_only.clone();
    after_delta.extend([
        block_stop(0),
        msg_delta("end_turn", json!({"output_tokens": 4})),
    ]);
    // A clean end of the body without message_stop.
    let rig = rig().await;
    for events in [&content_only, &after_delta] {
        let out = stream_on(&rig, per_event(&sse(events)), include_usage()).await;
        assert_truncated(&out, &format!("clean EOF after {} events", events.len()));
    }
    // The connection breaking after the same events.
    for events in [&content_only, &after_delta] {
        let base = breaking_upstream(per_event(&sse(events))).await;
        let key = json!({"api_key": KEY, "model": MODEL, "provider": "anthropic",
                         "base_url": base, "name": KEY});
        let proxy = Proxy::start(&json!([key]), &[]).await;
        let resp = proxy
            .chat(&req(
                json!({"stream": true, "stream_options": {"include_usage": true}}),
            ))
            .await;
        let out = Streamed {
            status: resp.status().as_u16(),
            content_type: String::new(),
            raw: String::from_utf8(resp.bytes().await.unwrap().to_vec()).unwrap(),
        };
        assert_truncated(
            &out,
            &format!("broken connection after {} events", events.len()),
        );
    }
}

#[tokio::test]
async fn e56_unknown_events_are_ignored() {
    let plain = text_stream(&["a", "b"]);
    let foo = json!({"type": "foo", "payload": {"x": 1}});
    let mut with_foo = plain.clone();
    for at in [6, 4, 2, 1] {
        with_foo.insert(at, foo.clone());
    }
    // An unknown content block and delta type inside a known event, too.
    with_foo.insert(
        1,
        json!({"type": "content_block_delta", "index": 7, "delta": {"type": "foo_delta", "foo": "x"}}),
    );
    let rig = rig().await;
    let without = stream_on(&rig, per_event(&sse(&plain)), include_usage()).await;
    let with = stream_on(&rig, per_event(&sse(&with_foo)), include_usage()).await;
    parse_chunks(&without.raw);
    assert_eq!(mask_created(&with.raw), mask_created(&without.raw));
}

#[tokio::test]
async fn e57_thinking_produces_no_content() {
    let events = [
        msg_start(json!({"input_tokens": 3, "output_tokens": 1})),
        json!({"type": "content_block_start", "index": 0,
               "content_block": {"type": "thinking", "thinking": ""}}),
        json!({"type": "content_block_delta", "index": 0,
               "delta": {"type": "thinking_delta", "thinking": "secret plan"}}),
        json!({"type": "content_block_delta", "index": 0,
               "delta": {"type": "signature_delta", "signature": "c2lnbmF0dXJl"}}),
        block_stop(0),
        text_start(1),
        text_delta(1, "A"),
        block_stop(1),
        msg_delta("end_turn", json!({"output_tokens": 40})),
        msg_stop(),
    ];
    let out = stream_through(&sse(&events), json!({})).await;
    let chunks = parse_chunks(&out.raw);
    assert_eq!(content(&chunks), "A", "{}", out.raw);
    for delta in deltas(&chunks) {
        let text = delta["content"].as_str().unwrap_or_default();
        assert!(
            !text.contains("secret") && !text.contains("c2ln"),
            "{delta}"
        );
    }
    assert_eq!(finish_chunks(&chunks).len(), 1);
}

#[tokio::test]
async fn e58_streamed_success_is_200_event_stream() {
    // Scripted: exactly the B.7 frames.
    let out = stream_through(B7, json!({})).await;
    assert_eq!(out.status, 200);
    assert!(
        out.content_type.starts_with("text/event-stream"),
        "{}",
        out.content_type
    );
    // Unscripted: the mock validates the translated streaming request and streams its own
    // answer in the real API's event order.
    let rig = rig().await;
    let resp = rig
        .proxy
        .chat(&req(json!({"stream": true, "messages": [
            {"role": "user", "content": "hello world"}]})))
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let raw = String::from_utf8(resp.bytes().await.unwrap().to_vec()).unwrap();
    let chunks = parse_chunks(&raw);
    assert_eq!(content(&chunks), "You said: hello world");
    assert_eq!(finish_chunks(&chunks).len(), 1);
    let sent: Value = serde_json::from_slice(&rig.mock.requests()[0].body).unwrap();
    assert_eq!(sent["stream"], true);
    assert!(sent.get("stream_options").is_none());
}

#[tokio::test]
async fn e3_upstream_chunking_does_not_change_the_client_stream() {
    // Multi-byte text, a tool call and usage, so 1-byte frames split UTF-8 sequences, JSON
    // strings, `event:`/`data:` lines and the blank lines between events.
    let events = [
        msg_start(json!({"input_tokens": 21, "output_tokens": 1})),
        text_start(0),
        ping(),
        text_delta(0, "Grüße ✓ — "),
        text_delta(0, "日本語 🎉"),
        block_stop(0),
        tool_start(1, "toolu_x", "get_weather"),
        json_delta(1, ""),
        json_delta(1, "{\"city\": \"Zürich\""),
        json_delta(1, ", \"unit\": \"c\"}"),
        block_stop(1),
        msg_delta("tool_use", json!({"output_tokens": 33})),
        msg_stop(),
    ];
    let stream = sse(&events);
    let whole = vec![Bytes::from(stream.clone())];
    let bytewise: Vec<Bytes> = stream
        .as_bytes()
        .iter()
        .map(|b| Bytes::copy_from_slice(&[*b]))
        .collect();
    let rig = rig().await;
    let reference = stream_on(&rig, per_event(&stream), include_usage()).await;
    let chunks = parse_chunks(&reference.raw);
    assert_eq!(content(&chunks), "Grüße ✓ — 日本語 🎉");
    assert_eq!(
        tool_arguments(&chunks)[&0],
        "{\"city\": \"Zürich\", \"unit\": \"c\"}"
    );
    for (label, frames) in [("one frame", whole), ("1-byte frames", bytewise)] {
        let out = stream_on(&rig, frames, include_usage()).await;
        assert_eq!(out.status, 200);
        assert_eq!(
            mask_created(&out.raw),
            mask_created(&reference.raw),
            "{label}"
        );
    }
}
