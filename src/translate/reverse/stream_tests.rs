//! Tests of `reverse::stream`, kept beside it so the module itself stays short.
#![allow(clippy::unwrap_used)]
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
        [json!({"type": "error", "error": {"type": "api_error", "message": "upstream exploded"}})]
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
