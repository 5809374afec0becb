//! Conformance cases E.59–E.72 (api-formats.md E.4, E.5) through the running proxy:
//! native `/v1/messages` passthrough to Anthropic keys, `/v1/messages` served from OpenAI
//! keys (reverse translation), errors and rate-limit headers across formats, keyrelay's own
//! errors in the Anthropic envelope, count_tokens, and rotation on `/v1/messages`.
//!
//! E.60 (client authentication with `x-api-key`) is not tested: keyrelay does not
//! authenticate clients yet.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use serde_json::{Value, json};

// --- helpers -----------------------------------------------------------------------------

/// One SSE frame as the client received it: the `event:` line (if any) and the `data:` text.
#[derive(Debug)]
struct Frame {
    event: Option<String>,
    data: String,
}

impl Frame {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("frame data is not JSON ({e}): {:?}", self.data))
    }
}

fn parse_sse(text: &str) -> Vec<Frame> {
    assert!(
        text.ends_with("\n\n"),
        "the stream must end with a complete frame: {text:?}"
    );
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let mut event = None;
            let mut data = Vec::new();
            for line in f.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    assert!(event.is_none(), "two event lines in one frame: {f:?}");
                    event = Some(e.trim_start().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push(d.strip_prefix(' ').unwrap_or(d).to_owned());
                } else {
                    panic!("unexpected SSE line {line:?} in {text:?}");
                }
            }
            Frame {
                event,
                data: data.join("\n"),
            }
        })
        .collect()
}

/// OpenAI chunk frames followed by `data: [DONE]`.
fn openai_frames(chunks: &[Value]) -> Vec<Bytes> {
    chunks
        .iter()
        .map(|c| Bytes::from(format!("data: {c}\n\n")))
        .chain([Bytes::from_static(b"data: [DONE]\n\n")])
        .collect()
}

/// A `chat.completion.chunk` with one choice.
fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-up1", "object": "chat.completion.chunk", "created": 1,
           "model": "gpt-up", "choices": [{"index": 0, "delta": delta, "logprobs": null,
           "finish_reason": finish}]})
}

/// The `include_usage` chunk: no choices, only usage.
fn usage_chunk(usage: Value) -> Value {
    json!({"id": "chatcmpl-up1", "object": "chat.completion.chunk", "created": 1,
           "model": "gpt-up", "choices": [], "usage": usage})
}

fn usage(prompt: u64, completion: u64, cached: u64) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion,
           "total_tokens": prompt + completion,
           "prompt_tokens_details": {"cached_tokens": cached}})
}

/// A non-streaming `chat.completion`.
fn completion(message: Value, finish: &str, usage: Value) -> Bytes {
    Bytes::from(
        json!({"id": "chatcmpl-up1", "object": "chat.completion", "created": 1,
               "model": "gpt-up", "choices": [{"index": 0, "message": message,
               "logprobs": null, "finish_reason": finish}], "usage": usage})
        .to_string(),
    )
}

fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Behavior {
    Behavior::Respond {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.into(),
    }
}

fn stream(frames: Vec<Bytes>) -> Behavior {
    Behavior::Stream {
        frames,
        truncate: false,
    }
}

fn messages_body(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": text}]})
}

fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body
}

/// Posts a streamed `/v1/messages` body, checks the 200 SSE response and parses its frames.
async fn messages_stream(proxy: &Proxy, body: &Value) -> Vec<Frame> {
    let resp = post_messages(proxy, body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    parse_sse(&resp.text().await.unwrap())
}

/// Asserts the Anthropic error envelope with `kind` and returns the message.
async fn expect_anthropic_error(resp: reqwest::Response, status: u16, kind: &str) -> String {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{body}");
    message.to_owned()
}

/// Checks B.7's shape of a translated stream and returns its events' JSON: every frame
/// has an `event:` line equal to its JSON `type`, no `[DONE]`, `message_start` first,
/// blocks opened with indexes 0,1,2… each started, delta'd and stopped in turn, then
/// `message_delta` and `message_stop` last.
fn check_anthropic_stream(frames: &[Frame]) -> Vec<Value> {
    let events: Vec<Value> = frames
        .iter()
        .map(|f| {
            assert!(!f.data.contains("[DONE]"), "no [DONE] on /v1/messages");
            let v = f.json();
            assert_eq!(
                f.event.as_deref(),
                v["type"].as_str(),
                "event line must equal the JSON type: {f:?}"
            );
            v
        })
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"message_start"), "{kinds:?}");
    assert_eq!(
        &kinds[kinds.len() - 2..],
        ["message_delta", "message_stop"],
        "{kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "message_delta").count(), 1);
    let mut next_index = 0;
    let mut open: Option<u64> = None;
    for e in &events[1..events.len() - 2] {
        let index = e["index"].as_u64();
        match e["type"].as_str().unwrap() {
            "content_block_start" => {
                assert_eq!(
                    open, None,
                    "a block started while another is open: {kinds:?}"
                );
                assert_eq!(index, Some(next_index), "indexes must be 0,1,2…: {e}");
                open = index;
                next_index += 1;
            }
            "content_block_delta" => assert_eq!(index, open, "delta outside its block: {e}"),
            "content_block_stop" => {
                assert_eq!(index, open, "stop for a block that is not open: {e}");
                open = None;
            }
            "ping" => {}
            other => panic!("unexpected event {other} inside the message: {kinds:?}"),
        }
    }
    assert_eq!(open, None, "a block was left open: {kinds:?}");
    events
}

/// The content blocks of a translated stream, each as (start event, concatenated delta text
/// or partial JSON).
fn blocks(events: &[Value]) -> Vec<(Value, String)> {
    let mut out: Vec<(Value, String)> = Vec::new();
    for e in events {
        match e["type"].as_str().unwrap() {
            "content_block_start" => out.push((e["content_block"].clone(), String::new())),
            "content_block_delta" => {
                let delta = &e["delta"];
                let piece = match delta["type"].as_str().unwrap() {
                    "text_delta" => delta["text"].as_str(),
                    "input_json_delta" => delta["partial_json"].as_str(),
                    other => panic!("unexpected delta type {other}"),
                };
                out.last_mut().unwrap().1.push_str(piece.unwrap());
            }
            _ => {}
        }
    }
    out
}

fn message_delta(events: &[Value]) -> &Value {
    events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap()
}

// --- E.59 passthrough --------------------------------------------------------------------

const BETA: &str = "prompt-caching-2024-07-31,token-efficient-tools-2025-02-19";

/// A body with odd spacing, key order, escapes and unknown fields: any re-serialisation
/// would change its bytes.
const ODD_BODY: &str = "{ \"max_tokens\" : 64,\"model\":\"claude-x\",\n \"messages\": [{\"role\":\"user\",\"content\":\"h\\u00e9llo ✓\"}], \"x_vendor\": {\"n\": 1.50e2} }";

#[tokio::test]
async fn e59_passthrough_plain_forwards_headers_and_body_and_swaps_the_key() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([anthropic_key(&mock, "claude-x", "sk-ant-1")]), &[]).await;
    let upstream_body = r#"{"id":"msg_01X","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hi  there"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":7,"output_tokens":3}}"#;
    mock.script(
        "sk-ant-1",
        [respond(
            200,
            &[
                ("request-id", "req_0123"),
                ("anthropic-ratelimit-requests-remaining", "41"),
            ],
            upstream_body,
        )],
    );
    let resp = client()
        .post(proxy.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", BETA)
        .header("x-api-key", "client-token")
        .header("authorization", "Bearer client-token")
        .header("x-stainless-lang", "python")
        .body(ODD_BODY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["request-id"], "req_0123");
    assert_eq!(
        resp.headers()["anthropic-ratelimit-requests-remaining"],
        "41"
    );
    assert_eq!(resp.bytes().await.unwrap(), upstream_body.as_bytes());

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let seen = &reqs[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.body, ODD_BODY.as_bytes(), "body must go byte-for-byte");
    assert_eq!(seen.key.as_deref(), Some("sk-ant-1"));
    let values = |name: &str| -> Vec<&str> {
        seen.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(
        values("x-api-key"),
        ["sk-ant-1"],
        "client key never forwarded"
    );
    assert!(values("authorization").is_empty(), "{:?}", seen.headers);
    assert_eq!(values("anthropic-version"), ["2023-06-01"]);
    assert_eq!(values("anthropic-beta"), [BETA]);
    assert_eq!(values("x-stainless-lang"), ["python"]);
    for (_, v) in &seen.headers {
        assert!(
            !v.to_str().unwrap_or_default().contains("client-token"),
            "client token leaked upstream: {:?}",
            seen.headers
        );
    }
}

#[tokio::test]
async fn e59_passthrough_keeps_the_clients_anthropic_version_value() {
    // A value other than keyrelay's default proves the header is forwarded, not re-added.
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([anthropic_key(&mock, "claude-x", "sk-ant-1")]), &[]).await;
    let resp = client()
        .post(proxy.url("/v1/messages"))
        .header("anthropic-version", "2099-12-31")
        .json(&messages_body("claude-x", "version check"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["content"][0]["text"], "You said: version check");
    assert_eq!(
        mock.requests()[0].headers["anthropic-version"],
        "2099-12-31"
    );
}

#[tokio::test]
async fn e59_passthrough_stream_is_byte_identical_including_ping() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([anthropic_key(&mock, "claude-x", "sk-ant-1")]), &[]).await;
    // B.7's example, with the spacing the real API uses in `ping` and a frame split across
    // two upstream chunks: re-framing or re-serialising would change the bytes.
    let frames: Vec<&str> = vec![
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay, let's check\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,",
        "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"San Francisco, CA\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ];
    let expected: String = frames.concat();
    mock.script(
        "sk-ant-1",
        [stream(
            frames.iter().map(|f| Bytes::from(f.to_string())).collect(),
        )],
    );
    let body = streamed(messages_body("claude-x", "weather in SF"));
    let resp = client()
        .post(proxy.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", BETA)
        .header("x-api-key", "client-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    assert_eq!(text, expected, "SSE must pass through byte-identical");
    let kinds: Vec<String> = parse_sse(&text)
        .into_iter()
        .map(|f| f.event.unwrap())
        .collect();
    assert_eq!(kinds[2], "ping");

    let seen = &mock.requests()[0];
    assert_eq!(seen.body, serde_json::to_vec(&body).unwrap());
    assert_eq!(seen.headers["anthropic-beta"], BETA);
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert_eq!(seen.headers["x-api-key"], "sk-ant-1");
}

#[tokio::test]
async fn e59_passthrough_of_the_mocks_own_stream() {
    // Unscripted: the faithful mock's real event sequence (with its ping) arrives intact.
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([anthropic_key(&mock, "claude-x", "sk-ant-1")]), &[]).await;
    let frames = messages_stream(&proxy, &streamed(messages_body("claude-x", "one two"))).await;
    let events = check_anthropic_stream(&frames);
    assert!(events.iter().any(|e| e["type"] == "ping"));
    let text: String = blocks(&events).into_iter().map(|(_, t)| t).collect();
    assert_eq!(text, "You said: one two");
    assert_eq!(message_delta(&events)["delta"]["stop_reason"], "end_turn");
}

// --- E.61–E.67 reverse translation (OpenAI upstream) -------------------------------------

#[tokio::test]
async fn e61_e63_reverse_stream_shape_and_tool_calls() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "gpt-x", "sk-oa-1")]), &[]).await;
    let chunks = [
        chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        ),
        chunk(json!({"content": "Let me "}), None),
        chunk(json!({"content": "check."}), None),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_w1", "type": "function",
                   "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"location\": "}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"San Francisco, CA\"}"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_t2", "type": "function",
                   "function": {"name": "get_time", "arguments": "{\"tz\":"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "function": {"arguments": "\"PST\"}"}}]}),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        usage_chunk(usage(20, 30, 0)),
    ];
    mock.script("sk-oa-1", [stream(openai_frames(&chunks))]);
    let frames = messages_stream(&proxy, &streamed(messages_body("gpt-x", "weather?"))).await;
    let events = check_anthropic_stream(&frames);

    let start = &events[0]["message"];
    assert_eq!(start["type"], "message");
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert!(start["id"].as_str().unwrap().starts_with("msg_"), "{start}");

    let blocks = blocks(&events);
    assert_eq!(blocks.len(), 3, "{events:?}");
    assert_eq!(blocks[0].0, json!({"type": "text", "text": ""}));
    assert_eq!(blocks[0].1, "Let me check.");
    assert_eq!(
        blocks[1].0,
        json!({"type": "tool_use", "id": "call_w1", "name": "get_weather", "input": {}})
    );
    let input: Value = serde_json::from_str(&blocks[1].1).unwrap();
    assert_eq!(input, json!({"location": "San Francisco, CA"}));
    assert_eq!(
        blocks[2].0,
        json!({"type": "tool_use", "id": "call_t2", "name": "get_time", "input": {}})
    );
    assert_eq!(
        serde_json::from_str::<Value>(&blocks[2].1).unwrap(),
        json!({"tz": "PST"})
    );
    // Tool input arrives only as input_json_delta, and text only as text_delta.
    for e in events.iter().filter(|e| e["type"] == "content_block_delta") {
        let expected = if e["index"] == 0 {
            "text_delta"
        } else {
            "input_json_delta"
        };
        assert_eq!(e["delta"]["type"], expected, "{e}");
    }
    let delta = message_delta(&events);
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["delta"]["stop_sequence"], Value::Null);
    assert_eq!(delta["usage"]["output_tokens"], 30);
}

#[tokio::test]
async fn e61_reverse_stream_of_the_mocks_own_answer() {
    // Unscripted: the faithful OpenAI mock's stream, translated.
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "gpt-x", "sk-oa-1")]), &[]).await;
    let frames = messages_stream(
        &proxy,
        &streamed(messages_body("gpt-x", "alpha beta gamma")),
    )
    .await;
    let events = check_anthropic_stream(&frames);
    let blocks = blocks(&events);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].1, "You said: alpha beta gamma");
    let delta = message_delta(&events);
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn e62_reverse_stop_reasons_streaming_and_plain() {
    let cases = [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ];
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "gpt-x", "sk-oa-1")]), &[]).await;
    for (finish, expected) in cases {
        let (delta, message) = if finish == "tool_calls" {
            let call = json!({"index": 0, "id": "call_1", "type": "function",
                              "function": {"name": "f", "arguments": "{\"a\":1}"}});
            (
                json!({"tool_calls": [call]}),
                json!({"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}),
            )
        } else {
            (
                json!({"content": "partial"}),
                json!({"role": "assistant", "content": "partial"}),
            )
        };
        mock.script(
            "sk-oa-1",
            [
                stream(openai_frames(&[
                    chunk(json!({"role": "assistant", "content": ""}), None),
                    chunk(delta, None),
                    chunk(json!({}), Some(finish)),
                    usage_chunk(usage(10, 2, 0)),
                ])),
                respond(200, &[], completion(message, finish, usage(10, 2, 0))),
            ],
        );
        let frames = messages_stream(&proxy, &streamed(messages_body("gpt-x", "go"))).await;
        let events = check_anthropic_stream(&frames);
        assert_eq!(
            message_delta(&events)["delta"]["stop_reason"],
            expected,
            "streamed finish_reason {finish}"
        );

        let resp = post_messages(&proxy, &messages_body("gpt-x", "go")).await;
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["stop_reason"], expected, "finish_reason {finish}: {v}");
        assert_eq!(v["type"], "message");
    }
    assert_eq!(mock.hits()["sk-oa-1"], 8);
}

#[tokio::test]
async fn e63_reverse_plain_tool_calls_become_tool_use_blocks() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "gpt-x", "sk-oa-1")]), &[]).await;
    let message = json!({"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_w1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"location\":\"SF\",\"days\":[1,2]}"}},
        {"id": "call_n", "type": "function", "function": {"name": "now", "arguments": ""}}]});
    mock.script(
        "sk-oa-1",
        [respond(
            200,
            &[],
            completion(message, "tool_calls", usage(12, 9, 0)),
        )],
    );
    let resp = post_messages(&proxy, &messages_body("gpt-x", "weather?")).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["content"],
        json!([
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_w1", "name": "get_weather",
             "input": {"location": "SF", "days": [1, 2]}},
            {"type": "tool_use", "id": "call_n", "name": "now", "input": {}}
        ])
    );
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["role"], "assistant");
    assert!(v["id"].as_str().unwrap().starts_with("msg_"), "{v}");
}

#[tokio::test]
async fn e64_reverse_usage_maps_cached_tokens() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "gpt-x", "sk-oa-1")]), &[]).await;
    mock.script(
        "sk-oa-1",
        [
            stream(openai_frames(&[
                chunk(json!({"role": "assistant", "content": "ok"}), None),
                chunk(json!({}), Some("stop")),
                usage_chunk(usage(1000, 50, 800)),
            ])),
            respond(
                200,
                &[],
                completion(
                    json!({"role": "assistant", "content": "ok"}),
                    "stop",
                    usage(1000, 50, 800),
                ),
            ),
        ],
    );
    let frames = messages_stream(&proxy, &streamed(messages_body("gpt-x", "hi"))).await;
    let events = check_anthropic_stream(&frames);
    let u = &message_delta(&events)["usage"];
    assert_eq!(u["output_tokens"], 50, "{u}");
    assert_eq!(u["input_tokens"], 200, "{u}");
    assert_eq!(u["cache_read_input_tokens"], 800, "{u}");

    let v: Value = post_messages(&proxy, &messages_body("gpt-x", "hi"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["output_tokens"], 50, "{v}");
    assert_eq!(v["usage"]["input_tokens"], 200, "{v}");
    assert_eq!(v["usage"]["cache_read_input_tokens"], 800, "{v}");
}

#[tokio::test]
async fn e65_streamed_requests_ask_the_openai_upstream_for_usage() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "gpt-x", "sk-oa-1")]), &[]).await;
    messages_stream(&proxy, &streamed(messages_body("gpt-x", "count me"))).await;
    let resp = post_messages(&proxy, &messages_body("gpt-x", "count me")).await;
    assert_eq!(resp.status(), 200);

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(reqs[0].key.as_deref(), Some("sk-oa-1"));
    let streamed: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(streamed["stream"], true);
    assert_eq!(streamed["stream_options"], json!({"include_usage": true}));
    let plain: Value = serde_json::from_slice(&reqs[1].body).unwrap();
    assert!(plain.get("stream_options").is_none(), "{plain}");
}

#[tokio::test]
async fn e66_tool_results_precede_the_turns_text_upstream() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "gpt-x", "sk-oa-1")]), &[]).await;
    let body = json!({"model": "gpt-x", "max_tokens": 50, "messages": [
        {"role": "user", "content": "weather in SF and NY?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "SF"}},
            {"type": "tool_use", "id": "t2", "name": "get_weather", "input": {"city": "NY"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "15C"},
            {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "22C"}]},
            {"type": "text", "text": "ok"}]}]});
    let resp = post_messages(&proxy, &body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["content"][0]["text"], "You said: ok");

    let sent: Value = serde_json::from_slice(&mock.requests()[0].body).unwrap();
    let messages = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "tool", "user"]);
    assert_eq!(
        messages[1]["tool_calls"][1]["function"]["arguments"],
        r#"{"city":"NY"}"#
    );
    assert_eq!(messages[2]["tool_call_id"], "t1");
    assert_eq!(messages[2]["content"], "15C");
    assert_eq!(messages[3]["tool_call_id"], "t2");
    assert_eq!(messages[3]["content"], "22C");
    assert_eq!(messages[4]["content"], "ok");
}

#[tokio::test]
async fn e67_system_becomes_the_first_openai_message() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "gpt-x", "sk-oa-1")]), &[]).await;
    let mut body = messages_body("gpt-x", "hi");
    body["system"] = json!([{"type": "text", "text": "S"}]);
    assert_eq!(post_messages(&proxy, &body).await.status(), 200);
    body["system"] = json!("plain system");
    assert_eq!(post_messages(&proxy, &body).await.status(), 200);

    let reqs = mock.requests();
    let first: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(
        first["messages"],
        json!([{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}])
    );
    let second: Value = serde_json::from_slice(&reqs[1].body).unwrap();
    assert_eq!(
        second["messages"][0],
        json!({"role": "system", "content": "plain system"})
    );
    assert!(second.get("system").is_none());
}

// --- E.68–E.72 errors and headers --------------------------------------------------------

const TOO_MANY: &str = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Too many"},"request_id":"req_1"}"#;

#[tokio::test]
async fn e68_anthropic_429_becomes_openai_envelope_with_retry_after() {
    let mock = recording_mock().await;
    for stream in [false, true] {
        // A fresh proxy per case: the first 429/529 puts the key into cooldown.
        let proxy = Proxy::start(&json!([anthropic_key(&mock, "claude-x", "sk-ant-1")]), &[]).await;
        mock.script(
            "sk-ant-1",
            [respond(429, &[("retry-after", "7")], TOO_MANY)],
        );
        let mut body = chat_body("claude-x", "hi");
        body["stream"] = json!(stream);
        let resp = proxy.chat(&body).await;
        assert_eq!(resp.headers()["retry-after"], "7", "stream: {stream}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let err = expect_error(resp, 429).await;
        assert_eq!(
            err,
            json!({"error": {"message": "Too many", "type": "rate_limit_error",
                             "param": null, "code": null}}),
            "stream: {stream}"
        );
    }
    assert_eq!(mock.hits()["sk-ant-1"], 2);
}

#[tokio::test]
async fn e69_anthropic_529_is_never_a_success() {
    let mock = recording_mock().await;
    for stream in [false, true] {
        // A fresh proxy per case: the first 429/529 puts the key into cooldown.
        let proxy = Proxy::start(&json!([anthropic_key(&mock, "claude-x", "sk-ant-1")]), &[]).await;
        mock.script(
            "sk-ant-1",
            [Behavior::Fail {
                status: 529,
                headers: Vec::new(),
            }],
        );
        let mut body = chat_body("claude-x", "hi");
        body["stream"] = json!(stream);
        let resp = proxy.chat(&body).await;
        let status = resp.status().as_u16();
        assert!(status == 529 || status == 503, "got {status}");
        let err = expect_error(resp, status).await;
        assert_eq!(err["error"]["type"], "overloaded_error");
        assert_eq!(
            err["error"]["message"],
            "Mock upstream failure with status 529."
        );
    }
}

#[tokio::test]
async fn e70_anthropic_401_is_401() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([anthropic_key(&mock, "claude-x", "sk-ant-1")]), &[]).await;
    mock.script(
        "sk-ant-1",
        [Behavior::Fail {
            status: 401,
            headers: Vec::new(),
        }],
    );
    let err = expect_error(proxy.chat(&chat_body("claude-x", "hi")).await, 401).await;
    assert_eq!(err["error"]["type"], "authentication_error");
    assert_eq!(
        err["error"]["message"],
        "Mock upstream failure with status 401."
    );
}

#[tokio::test]
async fn e71_openai_error_becomes_anthropic_envelope_on_messages() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "gpt-x", "sk-oa-1")]), &[]).await;
    let bad =
        r#"{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}"#;
    for stream in [false, true] {
        mock.script("sk-oa-1", [respond(400, &[], bad)]);
        let mut body = messages_body("gpt-x", "hi");
        body["stream"] = json!(stream);
        let resp = post_messages(&proxy, &body).await;
        assert_eq!(resp.status(), 400, "stream: {stream}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v,
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}),
            "stream: {stream}"
        );
    }
    // The faithful mock's own rate limit, too: 429 → rate_limit_error.
    mock.script(
        "sk-oa-1",
        [Behavior::Fail {
            status: 429,
            headers: vec![("retry-after".into(), "3".into())],
        }],
    );
    let resp = post_messages(&proxy, &messages_body("gpt-x", "hi")).await;
    assert_eq!(resp.headers()["retry-after"], "3");
    let message = expect_anthropic_error(resp, 429, "rate_limit_error").await;
    assert_eq!(message, "Mock upstream failure with status 429.");
}

#[tokio::test]
async fn e72_anthropic_ratelimit_headers_reach_openai_clients_under_openai_names() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([anthropic_key(&mock, "claude-x", "sk-ant-1")]), &[]).await;
    let message = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}"#;
    mock.script(
        "sk-ant-1",
        [respond(
            200,
            &[
                ("anthropic-ratelimit-requests-remaining", "99"),
                ("anthropic-ratelimit-requests-limit", "100"),
            ],
            message,
        )],
    );
    let resp = proxy.chat(&chat_body("claude-x", "hi")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ratelimit-remaining-requests"], "99");
    assert_eq!(resp.headers()["x-ratelimit-limit-requests"], "100");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "hi");

    // Streaming (the mock's own headers: remaining 999) and on an error response.
    let mut body = chat_body("claude-x", "hi");
    body["stream"] = json!(true);
    let resp = proxy.chat(&body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-ratelimit-remaining-requests"], "999");
    mock.script(
        "sk-ant-1",
        [Behavior::Fail {
            status: 429,
            headers: Vec::new(),
        }],
    );
    let resp = proxy.chat(&chat_body("claude-x", "hi")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["x-ratelimit-remaining-requests"], "999");
}

// --- keyrelay's own errors on /v1/messages -----------------------------------------------

#[tokio::test]
async fn own_errors_on_messages_use_the_anthropic_envelope_and_spend_no_key() {
    let mock = recording_mock().await;
    let keys = json!([
        anthropic_key(&mock, "claude-x", "sk-ant-1"),
        openai_key(&mock, "gpt-x", "sk-oa-1")
    ]);
    let proxy = Proxy::start(&keys, &[]).await;

    let resp = post_messages(&proxy, &messages_body("no-such-model", "hi")).await;
    let message = expect_anthropic_error(resp, 404, "not_found_error").await;
    assert!(message.contains("no-such-model"), "{message}");

    for path in ["/v1/messages", "/v1/messages/count_tokens"] {
        let resp = client()
            .post(proxy.url(path))
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body("{\"model\": \"claude-x\", ")
            .send()
            .await
            .unwrap();
        expect_anthropic_error(resp, 400, "invalid_request_error").await;

        let resp = client().get(proxy.url(path)).send().await.unwrap();
        expect_anthropic_error(resp, 405, "invalid_request_error").await;
    }
    let resp = post_messages(&proxy, &json!({"max_tokens": 5, "messages": []})).await;
    let message = expect_anthropic_error(resp, 400, "invalid_request_error").await;
    assert!(message.contains("model"), "{message}");

    // Caught by keyrelay's own translation before an OpenAI key is spent.
    let resp = post_messages(
        &proxy,
        &json!({"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let message = expect_anthropic_error(resp, 400, "invalid_request_error").await;
    assert!(message.contains("max_tokens"), "{message}");

    assert!(
        mock.requests().is_empty(),
        "nothing may reach the upstream: {:?}",
        mock.requests()
    );
}

// --- count_tokens ------------------------------------------------------------------------

#[tokio::test]
async fn count_tokens_passes_through_for_anthropic_keys() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([anthropic_key(&mock, "claude-x", "sk-ant-1")]), &[]).await;
    let body = r#"{"model": "claude-x", "messages": [{"role": "user", "content": "a b c"}]}"#;
    let resp = client()
        .post(proxy.url("/v1/messages/count_tokens"))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", BETA)
        .header("x-api-key", "client-token")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    // The mock's count: 3 words + 3 per message.
    assert_eq!(v, json!({"input_tokens": 6}));

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/messages/count_tokens");
    assert_eq!(reqs[0].key.as_deref(), Some("sk-ant-1"));
    assert_eq!(reqs[0].body, body.as_bytes());
    assert_eq!(reqs[0].headers["anthropic-beta"], BETA);

    // The upstream's own error comes back as it sent it.
    let upstream_error = r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages.0.content: text content blocks must be non-empty"}}"#;
    mock.script("sk-ant-1", [respond(400, &[], upstream_error)]);
    let resp = client()
        .post(proxy.url("/v1/messages/count_tokens"))
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.bytes().await.unwrap(), upstream_error.as_bytes());
}

#[tokio::test]
async fn count_tokens_is_answered_locally_for_openai_keys() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "gpt-x", "sk-oa-1")]), &[]).await;
    let count = |text: &str| {
        let body = json!({"model": "gpt-x", "messages": [{"role": "user", "content": text}]});
        let proxy = &proxy;
        async move {
            let resp = client()
                .post(proxy.url("/v1/messages/count_tokens"))
                .header("anthropic-version", "2023-06-01")
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v.as_object().unwrap().len(), 1, "{v}");
            v["input_tokens"]
                .as_u64()
                .unwrap_or_else(|| panic!("input_tokens must be an integer: {v}"))
        }
    };
    let short = count("hi").await;
    let long = count("one two three four five six seven eight nine ten").await;
    assert!(short > 0);
    assert!(long > short, "{long} should exceed {short}");
    assert!(mock.requests().is_empty(), "{:?}", mock.requests());
}

// --- rotation ----------------------------------------------------------------------------

#[tokio::test]
async fn messages_round_robin_over_anthropic_keys() {
    let mock = recording_mock().await;
    let keys = json!([
        anthropic_key(&mock, "claude-x", "ka"),
        anthropic_key(&mock, "claude-x", "kb"),
        anthropic_key(&mock, "claude-x", "kc"),
    ]);
    let proxy = Proxy::start(&keys, &[]).await;
    for i in 0..6 {
        let mut body = messages_body("claude-x", &format!("request {i}"));
        if i % 2 == 1 {
            body["stream"] = json!(true);
        }
        let resp = post_messages(&proxy, &body).await;
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    let hits = mock.hits();
    assert_eq!(hits.len(), 3, "{hits:?}");
    for key in ["ka", "kb", "kc"] {
        assert_eq!(hits.get(key), Some(&2), "{hits:?}");
    }
    let served: Vec<String> = mock
        .requests()
        .into_iter()
        .map(|r| r.key.unwrap())
        .collect();
    assert_eq!(served[..3], served[3..], "a strict rotation: {served:?}");
}
