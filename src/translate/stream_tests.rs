//! Tests of `stream`, kept beside it so the module itself stays short.
use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::translate::sse::SseParser;

const CREATED: u64 = 1_700_000_000;

/// The full example of B.7, verbatim (text, then a tool call, with a ping).
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

/// Upstream bytes, cut into `chunks`, through the SSE parser and the translator, then
/// the end of the body; returns everything the client would receive.
fn translate_chunks(chunks: &[&[u8]], include_usage: bool) -> String {
    let mut parser = SseParser::new();
    let mut translator = AnthropicToOpenAi::new(include_usage, CREATED, "claude-x");
    let mut events = Vec::new();
    let mut out = BytesMut::new();
    for chunk in chunks {
        parser.push(chunk, &mut events).expect("valid SSE");
        for event in events.drain(..) {
            translator.on_event(&event, &mut out);
        }
    }
    parser.finish(&mut events);
    translator.on_end(&mut out);
    String::from_utf8(out.to_vec()).expect("UTF-8 output")
}

fn translate(input: &str, include_usage: bool) -> String {
    translate_chunks(&[input.as_bytes()], include_usage)
}

#[derive(Debug, PartialEq)]
enum Frame {
    Json(Value),
    Done,
}

/// Splits client output into frames, checking the E.40 framing on the way: every frame
/// is one `data: ` line followed by a blank line.
fn frames(output: &str) -> Vec<Frame> {
    let body = output
        .strip_suffix("\n\n")
        .expect("output ends with a blank line");
    body.split("\n\n")
        .map(|frame| {
            assert!(!frame.contains('\n'), "one line per frame: {frame:?}");
            let data = frame.strip_prefix("data: ").expect("a data: line");
            if data == "[DONE]" {
                Frame::Done
            } else {
                Frame::Json(serde_json::from_str(data).expect("JSON payload"))
            }
        })
        .collect()
}

/// The JSON payloads, `[DONE]` left out.
fn payloads(output: &str) -> Vec<Value> {
    frames(output)
        .into_iter()
        .filter_map(|f| match f {
            Frame::Json(v) => Some(v),
            Frame::Done => None,
        })
        .collect()
}

fn deltas(output: &str) -> Vec<Value> {
    payloads(output)
        .into_iter()
        .filter_map(|c| c["choices"].get(0).map(|choice| choice["delta"].clone()))
        .collect()
}

fn content(output: &str) -> String {
    deltas(output)
        .iter()
        .filter_map(|d| d["content"].as_str().map(str::to_owned))
        .collect()
}

/// Concatenated arguments per tool-call index, as an OpenAI client accumulates them.
fn tool_arguments(output: &str) -> BTreeMap<u64, String> {
    let mut calls = BTreeMap::new();
    for delta in deltas(output) {
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().expect("tool call index");
            let args: &mut String = calls.entry(index).or_default();
            args.push_str(call["function"]["arguments"].as_str().unwrap_or_default());
        }
    }
    calls
}

fn finish_chunks(output: &str) -> Vec<Value> {
    payloads(output)
        .into_iter()
        .filter(|c| {
            c["choices"]
                .get(0)
                .is_some_and(|ch| !ch["finish_reason"].is_null())
        })
        .collect()
}

/// The `usage` of the last chunk.
fn usage_of(output: &str) -> Value {
    payloads(output).last().expect("a last chunk")["usage"].clone()
}

fn errors(output: &str) -> Vec<Value> {
    payloads(output)
        .into_iter()
        .filter_map(|c| c.get("error").cloned())
        .collect()
}

/// Anthropic SSE text: `event: <type>` and `data: <json>` per event.
fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "event: {}\ndata: {e}\n\n",
                e["type"].as_str().unwrap_or("x")
            )
        })
        .collect()
}

fn message_start(usage: Value) -> Value {
    json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
        "role": "assistant", "model": "claude-x-1", "content": [], "stop_reason": null,
        "stop_sequence": null, "usage": usage}})
}
fn start() -> Value {
    message_start(json!({"input_tokens": 10, "output_tokens": 1}))
}
fn text_start(index: u64) -> Value {
    json!({"type": "content_block_start", "index": index,
           "content_block": {"type": "text", "text": ""}})
}
fn text(index: u64, text: &str) -> Value {
    json!({"type": "content_block_delta", "index": index,
           "delta": {"type": "text_delta", "text": text}})
}
fn block_stop(index: u64) -> Value {
    json!({"type": "content_block_stop", "index": index})
}
fn tool_start(index: u64, id: &str, name: &str) -> Value {
    json!({"type": "content_block_start", "index": index,
           "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})
}
fn args(index: u64, partial_json: &str) -> Value {
    json!({"type": "content_block_delta", "index": index,
           "delta": {"type": "input_json_delta", "partial_json": partial_json}})
}
fn message_delta(stop_reason: &str, usage: Value) -> Value {
    json!({"type": "message_delta", "delta": {"stop_reason": stop_reason,
           "stop_sequence": null}, "usage": usage})
}
fn message_stop() -> Value {
    json!({"type": "message_stop"})
}
fn ping() -> Value {
    json!({"type": "ping"})
}

/// A complete text-only stream.
fn text_stream(parts: &[&str]) -> Vec<Value> {
    let mut events = vec![start(), text_start(0)];
    events.extend(parts.iter().map(|p| text(0, p)));
    events.extend([
        block_stop(0),
        message_delta("end_turn", json!({"output_tokens": 5})),
        message_stop(),
    ]);
    events
}

#[test]
fn e40_frames_are_data_lines_sharing_id_created_model_and_end_with_done() {
    for include_usage in [false, true] {
        let out = translate(B7, include_usage);
        assert!(!out.contains("event:"), "no event: lines");
        let frames = frames(&out);
        assert_eq!(frames.last(), Some(&Frame::Done));
        assert_eq!(frames.iter().filter(|f| **f == Frame::Done).count(), 1);
        let chunks = payloads(&out);
        assert!(chunks.len() >= 6);
        for chunk in &chunks {
            assert_eq!(chunk["id"], "chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U");
            assert_eq!(chunk["object"], "chat.completion.chunk");
            assert_eq!(chunk["created"], CREATED);
            assert_eq!(chunk["model"], "claude-opus-4-1-20250805");
            for choice in chunk["choices"].as_array().expect("choices") {
                assert_eq!(choice["index"], 0, "choice index is always 0");
                assert_eq!(choice["logprobs"], Value::Null);
                assert!(choice.get("logprobs").is_some());
            }
        }
    }
}

#[test]
fn e40_keys_are_compact_and_in_openai_order() {
    let out = translate(&sse(&text_stream(&["Hi"])), false);
    let first = out.lines().next().expect("a first line");
    assert_eq!(
        first,
        r#"data: {"id":"chatcmpl-msg_1","object":"chat.completion.chunk","created":1700000000,"model":"claude-x-1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#
    );
}

#[test]
fn e40_model_falls_back_to_the_constructor_argument() {
    let mut events = text_stream(&["Hi"]);
    events[0] = json!({"type": "message_start", "message": {"id": "msg_9",
        "usage": {"input_tokens": 1}}});
    let out = translate(&sse(&events), false);
    for chunk in payloads(&out) {
        assert_eq!(chunk["model"], "claude-x");
        assert_eq!(chunk["id"], "chatcmpl-msg_9");
    }
}

#[test]
fn e41_role_chunk_comes_first_and_only_once() {
    let out = translate(B7, true);
    let deltas = deltas(&out);
    assert_eq!(deltas[0], json!({"role": "assistant", "content": ""}));
    assert!(deltas[1..].iter().all(|d| d.get("role").is_none()));
}

#[test]
fn e41_content_before_message_start_still_gets_the_role_chunk_first() {
    let events = [text_start(0), text(0, "Hi"), block_stop(0), message_stop()];
    let out = translate(&sse(&events), false);
    let deltas = deltas(&out);
    assert_eq!(deltas[0], json!({"role": "assistant", "content": ""}));
    assert_eq!(deltas[1], json!({"content": "Hi"}));
    assert_eq!(payloads(&out)[0]["id"], format!("chatcmpl-{CREATED}"));
}

#[test]
fn e42_text_deltas_become_content_chunks() {
    let out = translate(&sse(&text_stream(&["Hel", "lo"])), false);
    let contents: Vec<Value> = deltas(&out)
        .into_iter()
        .filter(|d| d.get("role").is_none() && d.get("content").is_some())
        .collect();
    assert_eq!(
        contents,
        [json!({"content": "Hel"}), json!({"content": "lo"})]
    );
    assert_eq!(content(&out), "Hello");
    let finish = finish_chunks(&out);
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn e43_ping_events_change_nothing() {
    let without = sse(&text_stream(&["a", "b"]));
    let mut with = text_stream(&["a", "b"]);
    for at in [5, 3, 1, 0] {
        with.insert(at, ping());
    }
    assert_eq!(translate(&sse(&with), true), translate(&without, true));
    assert_eq!(
        translate(B7, false),
        translate(
            &B7.replace("event: ping\ndata: {\"type\": \"ping\"}\n\n", ""),
            false
        )
    );
}

#[test]
fn e44_b7_single_tool_call() {
    let out = translate(B7, false);
    let calls: Vec<Value> = deltas(&out)
        .into_iter()
        .filter_map(|d| d.get("tool_calls").cloned())
        .collect();
    assert_eq!(calls.len(), 3, "start + two non-empty fragments: {calls:?}");
    assert_eq!(
        calls[0],
        json!([{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}])
    );
    for later in &calls[1..] {
        let call = &later[0];
        let keys: Vec<&String> = call.as_object().expect("object").keys().collect();
        assert_eq!(
            keys,
            ["function", "index"],
            "only index and function: {call}"
        );
        assert_eq!(call["index"], 0);
        assert_eq!(call["function"].as_object().map(|f| f.len()), Some(1));
    }
    let args = tool_arguments(&out);
    let parsed: Value = serde_json::from_str(&args[&0]).expect("arguments parse");
    assert_eq!(
        parsed,
        json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
    );
    assert_eq!(content(&out), "Okay, let's check");
}

#[test]
fn e45_tool_index_is_ordinal() {
    let events = [
        start(),
        text_start(0),
        text(0, "Checking both."),
        block_stop(0),
        tool_start(1, "toolu_a", "get_weather"),
        args(1, ""),
        args(1, "{\"city\": \"Paris\"}"),
        block_stop(1),
        tool_start(2, "toolu_b", "get_time"),
        args(2, "{\"tz\":"),
        args(2, " \"CET\"}"),
        block_stop(2),
        message_delta("tool_use", json!({"output_tokens": 30})),
        message_stop(),
    ];
    let out = translate(&sse(&events), false);
    let args = tool_arguments(&out);
    assert_eq!(args.keys().copied().collect::<Vec<_>>(), [0, 1]);
    let first: Value = serde_json::from_str(&args[&0]).expect("call 0 parses");
    let second: Value = serde_json::from_str(&args[&1]).expect("call 1 parses");
    assert_eq!(first, json!({"city": "Paris"}));
    assert_eq!(second, json!({"tz": "CET"}));
    let ids: Vec<(Value, Value)> = deltas(&out)
        .iter()
        .flat_map(|d| d["tool_calls"].as_array().cloned().unwrap_or_default())
        .filter(|c| c.get("id").is_some())
        .map(|c| (c["index"].clone(), c["id"].clone()))
        .collect();
    assert_eq!(
        ids,
        [(json!(0), json!("toolu_a")), (json!(1), json!("toolu_b"))]
    );
    assert_eq!(
        finish_chunks(&out)[0]["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[test]
fn e46_start_input_is_never_an_arguments_prefix() {
    let events = [
        start(),
        tool_start(0, "toolu_1", "f"),
        args(0, "{\"a\":"),
        args(0, "1}"),
        block_stop(0),
        message_delta("tool_use", json!({"output_tokens": 3})),
        message_stop(),
    ];
    let out = translate(&sse(&events), false);
    assert_eq!(tool_arguments(&out)[&0], "{\"a\":1}");
}

#[test]
fn e47_no_arg_tool_gets_empty_object_arguments() {
    let only_empty = vec![args(0, ""), args(0, "")];
    for fragments in [only_empty, vec![]] {
        let mut events = vec![start(), tool_start(0, "toolu_1", "now")];
        events.extend(fragments);
        events.extend([
            block_stop(0),
            message_delta("tool_use", json!({"output_tokens": 3})),
            message_stop(),
        ]);
        let out = translate(&sse(&events), false);
        assert_eq!(tool_arguments(&out)[&0], "{}");
        // The fix-up is a fragment of its own, right after the start, before the finish.
        let deltas = deltas(&out);
        assert_eq!(
            deltas[2],
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]})
        );
        assert_eq!(deltas[3], json!({}));
    }
    // A tool with arguments gets no extra "{}".
    let out = translate(B7, false);
    assert!(!out.contains(r#""arguments":"{}""#));
}

#[test]
fn e48_exactly_one_finish_chunk_with_empty_delta() {
    let out = translate(B7, true);
    let finish = finish_chunks(&out);
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(finish[0]["choices"][0]["delta"], json!({}));
    assert_eq!(finish[0]["usage"], Value::Null);
}

#[test]
fn e48_several_message_deltas_still_give_one_finish_chunk_from_the_last_reason() {
    let events = [
        start(),
        text_start(0),
        text(0, "x"),
        block_stop(0),
        message_delta("end_turn", json!({"output_tokens": 4})),
        message_delta("max_tokens", json!({"output_tokens": 6})),
        json!({"type": "message_delta", "delta": {"stop_reason": null}, "usage": {"output_tokens": 7}}),
        message_stop(),
    ];
    let out = translate(&sse(&events), true);
    let finish = finish_chunks(&out);
    assert_eq!(finish.len(), 1);
    assert_eq!(
        finish[0]["choices"][0]["finish_reason"], "length",
        "the last non-null reason"
    );
    let usage = usage_of(&out);
    assert_eq!(usage["completion_tokens"], 7);
}

#[test]
fn e49_stop_sequence_finishes_with_stop() {
    let mut events = text_stream(&["a"]);
    let n = events.len();
    events[n - 2] = json!({"type": "message_delta",
        "delta": {"stop_reason": "stop_sequence", "stop_sequence": "END"},
        "usage": {"output_tokens": 2}});
    let out = translate(&sse(&events), false);
    let finish = finish_chunks(&out);
    assert_eq!(finish.len(), 1);
    assert_eq!(finish[0]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn e50_include_usage_reproduces_the_c9_worked_example() {
    let envelope = r#""id":"chatcmpl-msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1700000000,"model":"claude-opus-4-1-20250805""#;
    let expected = [
        r#"{…,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{…,"choices":[{"index":0,"delta":{"content":"Okay, let's check"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{…,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{…,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\": \"San Francisco, CA\""}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{…,"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":", \"unit\": \"fahrenheit\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{…,"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}"#,
        r#"{…,"choices":[],"usage":{"prompt_tokens":472,"completion_tokens":89,"total_tokens":561,"prompt_tokens_details":{"cached_tokens":0}}}"#,
        "[DONE]",
    ];
    let expected: String = expected
        .iter()
        .map(|f| format!("data: {}\n\n", f.replace('…', envelope)))
        .collect();
    assert_eq!(translate(B7, true), expected);
}

#[test]
fn e50_every_chunk_but_the_last_has_null_usage() {
    let out = translate(B7, true);
    let chunks = payloads(&out);
    let (last, rest) = chunks.split_last().expect("chunks");
    for chunk in rest {
        assert!(chunk.get("usage").is_some_and(Value::is_null), "{chunk}");
        assert_eq!(chunk["choices"].as_array().map(Vec::len), Some(1));
    }
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"]["total_tokens"], 561);
    let frames = frames(&out);
    assert_eq!(
        frames[frames.len() - 2],
        Frame::Json(last.clone()),
        "right before [DONE]"
    );
}

#[test]
fn e50_usage_counts_cache_tokens_as_prompt_tokens() {
    let mut events = text_stream(&["a"]);
    events[0] = message_start(
        json!({"input_tokens": 5, "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 900, "output_tokens": 1}),
    );
    let out = translate(&sse(&events), true);
    let usage = usage_of(&out);
    assert_eq!(usage["prompt_tokens"], 1005);
    assert_eq!(usage["completion_tokens"], 5);
    assert_eq!(usage["total_tokens"], 1010);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 900);
}

#[test]
fn e51_no_usage_without_include_usage() {
    let out = translate(B7, false);
    for chunk in payloads(&out) {
        assert!(chunk.get("usage").is_none(), "{chunk}");
        assert_ne!(chunk["choices"], json!([]));
    }
    assert!(!out.contains("usage"));
    assert_eq!(frames(&out).last(), Some(&Frame::Done));
}

#[test]
fn e52_output_tokens_replace_not_sum() {
    let events = [
        start(),
        text_start(0),
        text(0, "x"),
        block_stop(0),
        message_delta("end_turn", json!({"output_tokens": 10})),
        json!({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 25}}),
        message_stop(),
    ];
    let out = translate(&sse(&events), true);
    let usage = usage_of(&out);
    assert_eq!(usage["completion_tokens"], 25);
    assert_eq!(usage["total_tokens"], 35, "prompt 10 + completion 25");
}

#[test]
fn e53_input_tokens_fall_back_to_message_delta_then_zero() {
    let usage_of = |start_usage: Value, delta_usage: Value| {
        let events = [
            message_start(start_usage),
            message_delta("end_turn", delta_usage),
            message_stop(),
        ];
        let out = translate(&sse(&events), true);
        payloads(&out).last().expect("usage chunk")["usage"].clone()
    };
    let u = usage_of(
        json!({"output_tokens": 1}),
        json!({"output_tokens": 3, "input_tokens": 40}),
    );
    assert_eq!(u["prompt_tokens"], 40);
    let u = usage_of(json!({"output_tokens": 1}), json!({"output_tokens": 3}));
    assert_eq!(u["prompt_tokens"], 0);
    assert_eq!(u["total_tokens"], 3);
    // A null in message_delta does not erase the message_start count.
    let u = usage_of(
        json!({"input_tokens": 7}),
        json!({"output_tokens": 3, "input_tokens": null}),
    );
    assert_eq!(u["prompt_tokens"], 7);
    // A non-null one replaces it (never summed).
    let u = usage_of(
        json!({"input_tokens": 7}),
        json!({"output_tokens": 3, "input_tokens": 9}),
    );
    assert_eq!(u["prompt_tokens"], 9);
}

fn overloaded() -> Value {
    json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
}

#[test]
fn e54_mid_stream_error_after_text() {
    let mut events = vec![
        start(),
        text_start(0),
        text(0, "Hel"),
        text(0, "lo"),
        overloaded(),
    ];
    // Anything the upstream sends after the error is ignored.
    events.extend([
        text(0, "more"),
        block_stop(0),
        message_delta("end_turn", json!({})),
        message_stop(),
    ]);
    for include_usage in [false, true] {
        let out = translate(&sse(&events), include_usage);
        let frames = frames(&out);
        assert!(!frames.contains(&Frame::Done), "no [DONE] after an error");
        assert_eq!(content(&out), "Hello");
        assert!(finish_chunks(&out).is_empty(), "never a fake finish");
        assert_eq!(
            frames.last(),
            Some(&Frame::Json(json!({"error": {"message": "Overloaded",
                "type": "overloaded_error", "param": null, "code": null}})))
        );
        assert!(out.ends_with(
            "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\",\"param\":null,\"code\":null}}\n\n"
        ));
    }
}

#[test]
fn e54_error_as_the_first_event() {
    let out = translate(&sse(&[overloaded()]), false);
    assert_eq!(
        frames(&out).len(),
        1,
        "just the error, no role chunk: {out}"
    );
    assert_eq!(errors(&out)[0]["type"], "overloaded_error");
    // Without a message the error still has one, so the SDK's message is meaningful.
    let out = translate(&sse(&[json!({"type": "error", "error": {}})]), false);
    assert_eq!(errors(&out)[0]["type"], "api_error");
    assert!(
        !errors(&out)[0]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
    );
}

#[test]
fn e55_truncated_upstream_is_an_error_not_a_finish() {
    let full = sse(&text_stream(&["Hel", "lo"]));
    // Cut after the content, after message_delta, and in the middle of message_stop.
    let cut_points = [
        full.find("event: content_block_stop").expect("stop"),
        full.find("event: message_stop").expect("message_stop"),
        full.len() - 3,
    ];
    for cut in cut_points {
        for include_usage in [false, true] {
            let out = translate(&full[..cut], include_usage);
            let frames = frames(&out);
            assert!(!frames.contains(&Frame::Done), "cut at {cut}: {out}");
            assert!(finish_chunks(&out).is_empty(), "cut at {cut}: {out}");
            assert!(!out.contains("\"choices\":[]"), "no usage chunk");
            let errors = errors(&out);
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0]["type"], TRUNCATED_ERROR_TYPE);
            assert_eq!(
                frames
                    .last()
                    .map(|f| matches!(f, Frame::Json(v) if v.get("error").is_some())),
                Some(true)
            );
        }
    }
    assert_eq!(content(&translate(&full[..cut_points[0]], false)), "Hello");
    // An empty body is truncated too.
    assert_eq!(
        errors(&translate("", false))[0]["type"],
        TRUNCATED_ERROR_TYPE
    );
}

#[test]
fn e55_transport_error_is_an_error_frame_and_ends_the_stream() {
    let mut parser = SseParser::new();
    let mut t = AnthropicToOpenAi::new(false, CREATED, "claude-x");
    let mut events = Vec::new();
    let mut out = BytesMut::new();
    parser
        .push(
            sse(&[start(), text_start(0), text(0, "Hi")]).as_bytes(),
            &mut events,
        )
        .expect("valid");
    for e in &events {
        t.on_event(e, &mut out);
    }
    t.on_error("idle timeout after 60 s", &mut out);
    let before_end = out.len();
    t.on_end(&mut out);
    t.on_error("again", &mut out);
    assert_eq!(out.len(), before_end, "nothing after the error");
    let out = String::from_utf8(out.to_vec()).expect("utf-8");
    assert_eq!(content(&out), "Hi");
    let errors = errors(&out);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["message"], "idle timeout after 60 s");
    assert_eq!(errors[0]["type"], UPSTREAM_ERROR_TYPE);
    assert!(finish_chunks(&out).is_empty());
}

#[test]
fn e56_unknown_events_are_ignored() {
    let plain = sse(&text_stream(&["a"]));
    let mut with_unknown = text_stream(&["a"]);
    with_unknown.insert(
        2,
        json!({"type": "foo", "index": 0, "delta": {"type": "text_delta", "text": "zzz"}}),
    );
    let mut noisy = sse(&with_unknown);
    noisy.push_str("event: bar\ndata: not json\n\n"); // after message_stop, but also unknown
    noisy.insert_str(0, "event: baz\ndata: also not json\n\n");
    assert_eq!(translate(&noisy, true), translate(&plain, true));
}

#[test]
fn e57_thinking_and_server_tools_produce_nothing() {
    let events = [
        start(),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "SECRET-THOUGHT"}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "SIG"}}),
        block_stop(0),
        json!({"type": "content_block_start", "index": 1, "content_block": {"type": "redacted_thinking", "data": "REDACTED"}}),
        block_stop(1),
        json!({"type": "content_block_start", "index": 2, "content_block": {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}}}),
        args(2, "{\"query\": \"SERVER-QUERY\"}"),
        block_stop(2),
        json!({"type": "content_block_start", "index": 3, "content_block": {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []}}),
        block_stop(3),
        text_start(4),
        text(4, "Answer"),
        json!({"type": "content_block_delta", "index": 4, "delta": {"type": "citations_delta", "citation": {"type": "web_search_result_location", "cited_text": "CITED"}}}),
        block_stop(4),
        tool_start(5, "toolu_1", "f"),
        args(5, "{}"),
        block_stop(5),
        message_delta("tool_use", json!({"output_tokens": 50})),
        message_stop(),
    ];
    let out = translate(&sse(&events), false);
    for secret in [
        "SECRET-THOUGHT",
        "SIG",
        "REDACTED",
        "SERVER-QUERY",
        "srvtoolu",
        "CITED",
        "web_search",
    ] {
        assert!(!out.contains(secret), "{secret} leaked: {out}");
    }
    assert_eq!(content(&out), "Answer");
    // The server tool took no client tool index.
    assert_eq!(
        tool_arguments(&out).into_iter().collect::<Vec<_>>(),
        [(0, "{}".to_owned())]
    );
}

#[test]
fn e78_comment_lines_in_the_upstream_are_ignored() {
    let plain = sse(&text_stream(&["a", "b"]));
    let commented = plain
        .replace(
            "event: content_block_delta\n",
            ": OPENROUTER PROCESSING\nevent: content_block_delta\n",
        )
        .replace("\n\n", "\n\n: keep-alive\n\n");
    assert_eq!(translate(&commented, true), translate(&plain, true));
}

#[test]
fn crlf_upstream_translates_like_lf() {
    assert_eq!(
        translate(&B7.replace('\n', "\r\n"), true),
        translate(B7, true)
    );
}

#[test]
fn a_repeated_message_start_changes_nothing() {
    let mut events = text_stream(&["a"]);
    let again = json!({"type": "message_start", "message": {"id": "msg_2", "model": "other",
        "usage": {"input_tokens": 999}}});
    events.insert(2, again);
    let out = translate(&sse(&events), true);
    assert_eq!(out, translate(&sse(&text_stream(&["a"])), true));
}

#[test]
fn input_after_message_stop_is_ignored() {
    let mut events = text_stream(&["a"]);
    events.extend([
        text(0, "late"),
        message_delta("max_tokens", json!({})),
        message_stop(),
        overloaded(),
    ]);
    let out = translate(&sse(&events), true);
    assert!(out.ends_with("data: [DONE]\n\n"));
    assert_eq!(
        frames(&out).iter().filter(|f| **f == Frame::Done).count(),
        1
    );
    assert_eq!(content(&out), "a");
    assert!(
        errors(&out).is_empty(),
        "on_end after message_stop is no truncation"
    );
}

#[test]
fn unreadable_data_in_a_handled_event_is_an_error() {
    let mut input = sse(&[start(), text_start(0), text(0, "a")]);
    input.push_str("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\n\n");
    input.push_str(&sse(&[text(0, "b"), block_stop(0), message_stop()]));
    let out = translate(&input, false);
    assert_eq!(content(&out), "a");
    assert_eq!(errors(&out)[0]["type"], INVALID_EVENT_ERROR_TYPE);
    assert!(finish_chunks(&out).is_empty());
    assert!(!out.contains("[DONE]"));
}

#[test]
fn a_tool_input_given_whole_in_the_start_event_is_not_lost() {
    let events = [
        start(),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use",
            "id": "toolu_1", "name": "f", "input": {"x": [1, 2]}}}),
        block_stop(0),
        message_stop(),
    ];
    let out = translate(&sse(&events), false);
    let args: Value = serde_json::from_str(&tool_arguments(&out)[&0]).expect("parses");
    assert_eq!(args, json!({"x": [1, 2]}));
}

#[test]
fn a_tool_block_left_open_still_gets_parseable_arguments() {
    let events = [
        start(),
        tool_start(0, "toolu_1", "f"),
        args(0, ""),
        message_stop(),
    ];
    let out = translate(&sse(&events), false);
    assert_eq!(tool_arguments(&out)[&0], "{}");
    assert_eq!(
        finish_chunks(&out)[0]["choices"][0]["finish_reason"],
        "stop"
    );
}

// ---- Property: any split of the upstream bytes gives the same client bytes.

#[derive(Debug, Clone)]
enum GenBlock {
    Text(Vec<String>),
    Tool(Vec<String>),
    Thinking(Vec<String>),
}

#[derive(Debug, Clone)]
enum Ending {
    Complete,
    Error,
    Truncated,
}

fn gen_block() -> impl Strategy<Value = GenBlock> {
    let piece = "[a-zA-Z \"\\\\é😀\n{}:,]{0,6}";
    let pieces = prop::collection::vec(piece, 0..4);
    prop_oneof![
        pieces.clone().prop_map(GenBlock::Text),
        pieces.clone().prop_map(GenBlock::Tool),
        pieces.prop_map(GenBlock::Thinking),
    ]
}

/// A generated upstream: its events plus what a correct translation must contain.
fn render(blocks: &[GenBlock], pings: bool, ending: &Ending) -> Vec<Value> {
    let mut events = vec![start()];
    for (i, block) in (0u64..).zip(blocks) {
        if pings {
            events.push(ping());
        }
        match block {
            GenBlock::Text(parts) => {
                events.push(text_start(i));
                events.extend(parts.iter().map(|p| text(i, p)));
            }
            GenBlock::Tool(parts) => {
                events.push(tool_start(i, &format!("toolu_{i}"), "f"));
                events.extend(parts.iter().map(|p| args(i, p)));
            }
            GenBlock::Thinking(parts) => {
                events.push(json!({"type": "content_block_start", "index": i,
                    "content_block": {"type": "thinking", "thinking": ""}}));
                events.extend(parts.iter().map(|p| {
                    json!({"type": "content_block_delta",
                    "index": i, "delta": {"type": "thinking_delta", "thinking": p}})
                }));
            }
        }
        events.push(block_stop(i));
    }
    match ending {
        Ending::Complete => {
            events.push(message_delta("end_turn", json!({"output_tokens": 7})));
            events.push(message_stop());
        }
        Ending::Error => events.push(overloaded()),
        Ending::Truncated => {}
    }
    events
}

fn split_at_cuts<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        pieces.push(&input[start..cut]);
        start = cut;
    }
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prop_any_split_translates_identically(
        (blocks, pings, ending, crlf, include_usage, cuts) in (
            prop::collection::vec(gen_block(), 0..5),
            prop::bool::ANY,
            prop_oneof![Just(Ending::Complete), Just(Ending::Error), Just(Ending::Truncated)],
            prop::bool::ANY,
            prop::bool::ANY,
            prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        )
    ) {
        let mut input = sse(&render(&blocks, pings, &ending));
        if crlf {
            input = input.replace('\n', "\r\n");
        }
        let bytes = input.as_bytes();
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let whole = translate_chunks(&[bytes], include_usage);
        prop_assert_eq!(&translate_chunks(&split_at_cuts(bytes, &cuts), include_usage), &whole);
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(&translate_chunks(&bytewise, include_usage), &whole);

        // And the translation itself is right, whatever the generated stream.
        let expected_text: String = blocks.iter().filter_map(|b| match b {
            GenBlock::Text(parts) => Some(parts.concat()),
            _ => None,
        }).collect();
        prop_assert_eq!(content(&whole), expected_text);
        let expected_args: Vec<String> = blocks.iter().filter_map(|b| match b {
            GenBlock::Tool(parts) if parts.concat().is_empty() => Some("{}".to_owned()),
            GenBlock::Tool(parts) => Some(parts.concat()),
            _ => None,
        }).collect();
        prop_assert_eq!(tool_arguments(&whole).into_values().collect::<Vec<_>>(), expected_args);
        let complete = matches!(ending, Ending::Complete);
        prop_assert_eq!(finish_chunks(&whole).len(), usize::from(complete));
        prop_assert_eq!(whole.ends_with("data: [DONE]\n\n"), complete);
        prop_assert_eq!(errors(&whole).len(), usize::from(!complete));
        prop_assert_eq!(deltas(&whole).first().cloned(), Some(json!({"role": "assistant", "content": ""})));
    }
}

/// Chunks written after the role chunk start from the pre-serialized head; they must be the
/// very bytes of the whole `Chunk` serialized, whatever the id and model hold.
#[test]
fn chunks_from_the_cached_head_are_the_whole_chunk_serialized() {
    for (id, model) in [
        ("msg_1", "claude"),
        ("q\"uote\\back", "caf\u{e9} \u{1}\u{7f}\u{2028}😀"),
        ("", ""),
    ] {
        for include_usage in [false, true] {
            let mut t = AnthropicToOpenAi::new(include_usage, CREATED, model);
            t.id = format!("chatcmpl-{id}");
            let mut role = BytesMut::new();
            t.ensure_started(&mut role);
            assert!(!t.head.is_empty());
            let call = || ToolCallChunk {
                index: 2,
                id: Some("call\"1"),
                kind: Some("function"),
                function: FunctionChunk {
                    name: Some("get\\weather"),
                    arguments: "{\"a\":1}",
                },
            };
            let deltas: Vec<(OutDelta<'_>, Option<&str>)> = vec![
                (
                    OutDelta {
                        content: Some("line\n\"two\" \u{e9}"),
                        ..OutDelta::default()
                    },
                    None,
                ),
                (
                    OutDelta {
                        tool_calls: Some([call()]),
                        ..OutDelta::default()
                    },
                    None,
                ),
                (OutDelta::default(), Some("stop")),
            ];
            for (delta, finish) in deltas {
                let mut cached = BytesMut::new();
                let again = OutDelta {
                    role: delta.role,
                    content: delta.content,
                    tool_calls: delta.tool_calls.as_ref().map(|_| [call()]),
                };
                t.write_chunk(&mut cached, delta, finish);
                let head = std::mem::take(&mut t.head);
                let mut whole = BytesMut::new();
                t.write_chunk(&mut whole, again, finish);
                t.head = head;
                assert_eq!(
                    String::from_utf8_lossy(&cached),
                    String::from_utf8_lossy(&whole),
                    "id {id:?}, model {model:?}, include_usage {include_usage}"
                );
            }
        }
    }
}
