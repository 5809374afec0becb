//! Property: every request the real API would accept translates, and the project's strict
//! mock of the other API accepts the translation.
//!
//! - OpenAI → Anthropic: valid Chat Completions requests (system/developer/user/assistant
//!   messages with string or part content, images as data URLs, assistant `tool_calls`
//!   answered by `tool` messages, tools and `tool_choice`, sampling parameters…) go through
//!   `translate::request::openai_to_anthropic`, and `mock::anthropic::messages` must answer 200.
//! - Anthropic → OpenAI: valid Messages requests (alternating turns, `tool_use` answered by
//!   `tool_result` blocks first in the next user turn, system as a string or blocks, images
//!   and documents…) go through `translate::reverse::anthropic_to_openai_request`, and
//!   `mock::openai::chat_completions` must answer 200.
//!
//! The generators only build requests the real APIs accept; a rejection is a bug in a
//! translator or a mock. They leave out, on purpose, valid requests the translators refuse by
//! design with a clear error (documented next to the code that refuses): `n > 1`, legacy
//! `functions`, audio input, OpenAI `file_id`s, conversations with no user or assistant text
//! at all (system-only, or whitespace-only text), and more than 4 Anthropic stop sequences.
#![allow(clippy::unwrap_used)]

use keyrelay::mock::openai::{MockBody, MockResponse};
use keyrelay::translate::request::openai_to_anthropic;
use keyrelay::translate::reverse::anthropic_to_openai_request;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const CASES: u32 = 256;

// --- shared pieces -----------------------------------------------------------------------

/// Text with at least one non-whitespace character; may start or end with whitespace and
/// holds non-ASCII (accents, CJK, emoji) as real conversations do.
fn text() -> impl Strategy<Value = String> {
    (
        "[ \n]{0,2}",
        "[a-zA-Z0-9éü漢😀?]",
        "[a-zA-Z0-9 ,.!?'éü漢字😀\n]{0,24}",
    )
        .prop_map(|(lead, first, rest)| format!("{lead}{first}{rest}"))
}

/// A stop sequence: never whitespace-only.
fn stop_sequence() -> impl Strategy<Value = String> {
    ("[ \n]?", "[A-Za-z#]{1,6}").prop_map(|(lead, s)| format!("{lead}{s}"))
}

/// Within `^[a-zA-Z0-9_-]{1,64}$`, the tool-name pattern both APIs accept, once callers
/// append `_<index>` to keep names unique.
fn tool_name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_-]{0,20}"
}

/// A simple object schema: a few typed properties, some required.
fn object_schema() -> impl Strategy<Value = Value> {
    vec(
        (
            "[a-z][a-z_]{0,8}",
            prop_oneof![Just("string"), Just("integer"), Just("boolean")],
            any::<bool>(),
        ),
        0..4,
    )
    .prop_map(|props| {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (name, kind, is_required) in props {
            if properties.contains_key(&name) {
                continue;
            }
            properties.insert(name.clone(), json!({"type": kind}));
            if is_required {
                required.push(json!(name));
            }
        }
        let mut schema = json!({"type": "object", "properties": properties});
        if !required.is_empty() {
            schema["required"] = Value::Array(required);
        }
        schema
    })
}

/// A JSON object as tool arguments / input.
fn arguments() -> impl Strategy<Value = Value> {
    vec(
        (
            "[a-z]{1,6}",
            prop_oneof![
                text().prop_map(Value::from),
                any::<i32>().prop_map(Value::from),
                any::<bool>().prop_map(Value::from),
            ],
        ),
        0..3,
    )
    .prop_map(|pairs| Value::Object(pairs.into_iter().collect()))
}

/// (media type, base64 payload) of a small real image.
fn image_data() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop_oneof![
        Just((
            "image/png",
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
        )),
        Just(("image/jpeg", "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAP//2Q==")),
    ]
}

fn body_text(response: &MockResponse) -> String {
    match &response.body {
        MockBody::Json(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        MockBody::Sse(frames) => format!("({} SSE frames)", frames.len()),
    }
}

/// Inserts `value` under `key` when present.
fn put(obj: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        obj.insert(key.to_owned(), v);
    }
}

// --- OpenAI Chat Completions requests ----------------------------------------------------

#[derive(Debug, Clone)]
enum OpenAiSegment {
    /// A system or developer message.
    System { role: &'static str, content: Value },
    User {
        content: Value,
        name: Option<String>,
    },
    /// An assistant message; with tool calls it is followed by one `tool` message per
    /// call, in the order `result_order` gives.
    Assistant {
        content: Option<Value>,
        calls: Vec<OpenAiCall>,
        result_order: Vec<usize>,
    },
}

#[derive(Debug, Clone)]
struct OpenAiCall {
    /// Which declared tool is called (modulo the number of tools), or a free name when the
    /// request declares none.
    tool: usize,
    free_name: String,
    arguments: Value,
    /// Ids from other providers (`functions.name:0`) are valid too.
    provider_style_id: bool,
    result: Value,
}

fn openai_text_content() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::from),
        vec(
            text().prop_map(|t| json!({"type": "text", "text": t})),
            1..3
        )
        .prop_map(Value::Array),
    ]
}

fn openai_user_content() -> impl Strategy<Value = Value> {
    let image = (
        image_data(),
        option::of(prop_oneof![Just("auto"), Just("low"), Just("high")]),
    )
        .prop_map(|((media, data), detail)| {
            let mut image_url = json!({"url": format!("data:{media};base64,{data}")});
            if let Some(d) = detail {
                image_url["detail"] = json!(d);
            }
            json!({"type": "image_url", "image_url": image_url})
        });
    let part = prop_oneof![
        3 => text().prop_map(|t| json!({"type": "text", "text": t})),
        1 => image,
    ];
    prop_oneof![
        2 => text().prop_map(Value::from),
        1 => vec(part, 1..4).prop_map(Value::Array),
    ]
}

fn openai_assistant_content() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => openai_text_content(),
        1 => (text(), text()).prop_map(|(t, refusal)| json!([
            {"type": "text", "text": t},
            {"type": "refusal", "refusal": refusal},
        ])),
    ]
}

fn openai_call() -> impl Strategy<Value = OpenAiCall> {
    (
        any::<usize>(),
        tool_name(),
        arguments(),
        prop::bool::weighted(0.2),
        openai_text_content(),
    )
        .prop_map(
            |(tool, free_name, arguments, provider_style_id, result)| OpenAiCall {
                tool,
                free_name,
                arguments,
                provider_style_id,
                result,
            },
        )
}

fn openai_segment() -> impl Strategy<Value = OpenAiSegment> {
    let system = (
        prop_oneof![Just("system"), Just("developer")],
        openai_text_content(),
    )
        .prop_map(|(role, content)| OpenAiSegment::System { role, content });
    let user = (openai_user_content(), option::of("[a-z]{1,8}"))
        .prop_map(|(content, name)| OpenAiSegment::User { content, name });
    let assistant = (
        option::of(openai_assistant_content()),
        vec(openai_call(), 0..3),
    )
        .prop_filter(
            "an assistant message needs content or tool calls",
            |(c, calls)| c.is_some() || !calls.is_empty(),
        )
        .prop_flat_map(|(content, calls)| {
            let order: Vec<usize> = (0..calls.len()).collect();
            (Just(content), Just(calls), Just(order).prop_shuffle())
        })
        .prop_map(|(content, calls, result_order)| OpenAiSegment::Assistant {
            content,
            calls,
            result_order,
        });
    prop_oneof![1 => system, 3 => user, 2 => assistant]
}

fn openai_tool(name: &str, description: Option<String>, schema: Option<Value>) -> Value {
    let mut function = Map::new();
    function.insert("name".into(), json!(name));
    put(&mut function, "description", description.map(Value::from));
    put(&mut function, "parameters", schema);
    json!({"type": "function", "function": function})
}

fn render_openai_messages(segments: &[OpenAiSegment], tool_names: &[String]) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut next_id = 0;
    for segment in segments {
        match segment {
            OpenAiSegment::System { role, content } => {
                messages.push(json!({"role": role, "content": content}));
            }
            OpenAiSegment::User { content, name } => {
                let mut m = json!({"role": "user", "content": content});
                if let Some(n) = name {
                    m["name"] = json!(n);
                }
                messages.push(m);
            }
            OpenAiSegment::Assistant {
                content,
                calls,
                result_order,
            } => {
                let mut m = json!({"role": "assistant", "content": content});
                let mut ids = Vec::new();
                if !calls.is_empty() {
                    let tool_calls: Vec<Value> = calls
                        .iter()
                        .map(|call| {
                            let name = if tool_names.is_empty() {
                                call.free_name.clone()
                            } else {
                                tool_names[call.tool % tool_names.len()].clone()
                            };
                            let id = if call.provider_style_id {
                                format!("functions.{name}:{next_id}")
                            } else {
                                format!("call_{next_id}x{}", name.len())
                            };
                            next_id += 1;
                            ids.push(id.clone());
                            json!({"id": id, "type": "function",
                                   "function": {"name": name, "arguments": call.arguments.to_string()}})
                        })
                        .collect();
                    m["tool_calls"] = Value::Array(tool_calls);
                }
                messages.push(m);
                for &i in result_order {
                    messages.push(json!({"role": "tool", "tool_call_id": ids[i],
                                         "content": calls[i].result}));
                }
            }
        }
    }
    messages
}

prop_compose! {
    fn openai_sampling()(
        temperature in option::of(prop_oneof![Just(0.0), Just(2.0), 0.0..=2.0f64]),
        top_p in option::of(0.0..=1.0f64),
        limit in option::of((any::<bool>(), 1..=8192u64)),
        stop in option::of(prop_oneof![
            stop_sequence().prop_map(Value::from),
            vec(stop_sequence(), 1..=4).prop_map(|s| json!(s)),
        ]),
        stream in option::of((any::<bool>(), option::of(any::<bool>()))),
        penalties in option::of((-2.0..=2.0f64, -2.0..=2.0f64)),
        seed in option::of(any::<i32>()),
        n_one in any::<bool>(),
        user in option::of("[a-z0-9-]{1,16}"),
        response_format in option::of(prop_oneof![
            Just(json!({"type": "text"})),
            Just(json!({"type": "json_object"})),
            object_schema().prop_map(|schema| json!({"type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema}})),
        ]),
    ) -> Map<String, Value> {
        let mut req = Map::new();
        put(&mut req, "temperature", temperature.map(Value::from));
        put(&mut req, "top_p", top_p.map(Value::from));
        if let Some((completion, n)) = limit {
            let key = if completion { "max_completion_tokens" } else { "max_tokens" };
            req.insert(key.into(), json!(n));
        }
        put(&mut req, "stop", stop);
        if let Some((stream, include_usage)) = stream {
            req.insert("stream".into(), json!(stream));
            if let (true, Some(include)) = (stream, include_usage) {
                req.insert("stream_options".into(), json!({"include_usage": include}));
            }
        }
        if let Some((presence, frequency)) = penalties {
            req.insert("presence_penalty".into(), json!(presence));
            req.insert("frequency_penalty".into(), json!(frequency));
        }
        put(&mut req, "seed", seed.map(Value::from));
        if n_one {
            req.insert("n".into(), json!(1));
        }
        put(&mut req, "user", user.map(Value::from));
        put(&mut req, "response_format", response_format);
        req
    }
}

prop_compose! {
    fn openai_tools()(
        tools in vec((tool_name(), option::of(text()), option::of(object_schema())), 1..4),
        choice in option::of((0..4usize, any::<usize>())),
        parallel in option::of(any::<bool>()),
    ) -> (Vec<String>, Map<String, Value>) {
        let names: Vec<String> = tools
            .iter()
            .enumerate()
            .map(|(i, (name, _, _))| format!("{name}_{i}"))
            .collect();
        let defs: Vec<Value> = tools
            .into_iter()
            .zip(&names)
            .map(|((_, description, schema), name)| openai_tool(name, description, schema))
            .collect();
        let mut req = Map::new();
        req.insert("tools".into(), Value::Array(defs));
        if let Some((kind, pick)) = choice {
            let choice = match kind {
                0 => json!("auto"),
                1 => json!("none"),
                2 => json!("required"),
                _ => json!({"type": "function",
                            "function": {"name": names[pick % names.len()]}}),
            };
            req.insert("tool_choice".into(), choice);
        }
        put(&mut req, "parallel_tool_calls", parallel.map(Value::from));
        (names, req)
    }
}

/// Sampling parameters reasoning models reject ("Unsupported parameter").
const NOT_FOR_REASONING_MODELS: [&str; 6] = [
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "stop",
    "parallel_tool_calls",
];

prop_compose! {
    fn openai_request()(
        segments in vec(openai_segment(), 1..8)
            .prop_filter("a conversation needs a user or assistant message", |s| {
                s.iter().any(|m| !matches!(m, OpenAiSegment::System { .. }))
            }),
        tools in option::of(openai_tools()),
        sampling in openai_sampling(),
        // o4-mini's efforts (`minimal` is gpt-5's only).
        reasoning_effort in option::of(prop_oneof![Just("low"), Just("medium"), Just("high")]),
    ) -> Value {
        let (names, tool_fields) = tools.unwrap_or_default();
        let mut messages = render_openai_messages(&segments, &names);
        let mut req = Map::new();
        req.extend(tool_fields);
        req.extend(sampling);
        if req.get("response_format").is_some_and(|f| f["type"] == "json_object") {
            // OpenAI requires the word "JSON" in the messages for this mode.
            messages.insert(0, json!({"role": "system", "content": "Reply in JSON."}));
        }
        req.insert("messages".into(), Value::Array(messages));
        match reasoning_effort {
            None => {
                req.insert("model".into(), json!("gpt-4o"));
            }
            Some(effort) => {
                req.insert("model".into(), json!("o4-mini"));
                req.insert("reasoning_effort".into(), json!(effort));
                for key in NOT_FOR_REASONING_MODELS {
                    req.remove(key);
                }
                if let Some(limit) = req.remove("max_tokens") {
                    req.insert("max_completion_tokens".into(), limit);
                }
            }
        }
        Value::Object(req)
    }
}

// --- Anthropic Messages requests ---------------------------------------------------------

#[derive(Debug, Clone)]
struct AnthropicAssistant {
    text: Vec<String>,
    calls: Vec<(usize, Value)>,
    /// Tool results for the calls, in this order, with (content, is_error).
    result_order: Vec<usize>,
    results: Vec<(Option<Value>, Option<bool>)>,
}

fn anthropic_image() -> impl Strategy<Value = Value> {
    prop_oneof![
        image_data().prop_map(|(media, data)| json!({"type": "image",
            "source": {"type": "base64", "media_type": media, "data": data}})),
        Just(json!({"type": "image",
            "source": {"type": "url", "url": "https://example.com/cat.png"}})),
    ]
}

fn anthropic_text_block() -> impl Strategy<Value = Value> {
    (text(), prop::bool::weighted(0.1)).prop_map(|(t, cache)| {
        let mut block = json!({"type": "text", "text": t});
        if cache {
            block["cache_control"] = json!({"type": "ephemeral"});
        }
        block
    })
}

fn anthropic_user_content() -> impl Strategy<Value = Value> {
    let document = prop_oneof![
        option::of("[a-z]{1,8}\\.pdf").prop_map(|title| {
            let mut doc = json!({"type": "document", "source": {"type": "base64",
                "media_type": "application/pdf", "data": "JVBERi0xLjQK"}});
            if let Some(t) = title {
                doc["title"] = json!(t);
            }
            doc
        }),
        text().prop_map(|t| json!({"type": "document",
            "source": {"type": "text", "media_type": "text/plain", "data": t}})),
    ];
    let block = prop_oneof![
        4 => anthropic_text_block(),
        1 => anthropic_image(),
        1 => document,
    ];
    prop_oneof![
        2 => text().prop_map(Value::from),
        1 => vec(block, 1..4).prop_map(Value::Array),
    ]
}

fn anthropic_tool_result_content() -> impl Strategy<Value = Option<Value>> {
    option::of(prop_oneof![
        2 => text().prop_map(Value::from),
        1 => vec(anthropic_text_block(), 1..3).prop_map(Value::Array),
        1 => (text(), anthropic_image())
            .prop_map(|(t, image)| json!([{"type": "text", "text": t}, image])),
    ])
}

fn anthropic_assistant() -> impl Strategy<Value = AnthropicAssistant> {
    (vec(text(), 0..3), vec((any::<usize>(), arguments()), 0..3))
        .prop_filter(
            "an assistant turn needs text or tool use",
            |(text, calls)| !text.is_empty() || !calls.is_empty(),
        )
        .prop_flat_map(|(text, calls)| {
            let n = calls.len();
            let order: Vec<usize> = (0..n).collect();
            (
                Just(text),
                Just(calls),
                Just(order).prop_shuffle(),
                vec(
                    (anthropic_tool_result_content(), option::of(any::<bool>())),
                    n..=n,
                ),
            )
        })
        .prop_map(|(text, calls, result_order, results)| AnthropicAssistant {
            text,
            calls,
            result_order,
            results,
        })
}

/// The tool_result blocks answering `assistant`'s calls, whose ids are `ids`.
fn tool_results(assistant: &AnthropicAssistant, ids: &[String]) -> Vec<Value> {
    assistant
        .result_order
        .iter()
        .map(|&i| {
            let (content, is_error) = &assistant.results[i];
            let mut block = json!({"type": "tool_result", "tool_use_id": ids[i]});
            if let Some(c) = content {
                block["content"] = c.clone();
            }
            if let Some(e) = is_error {
                block["is_error"] = json!(e);
            }
            block
        })
        .collect()
}

/// A user turn: its own content, after the tool results the previous turn calls for.
fn user_turn(pending: Option<(&AnthropicAssistant, Vec<String>)>, own: &Value) -> Value {
    let content = match pending {
        None => own.clone(),
        Some((assistant, ids)) => {
            let mut blocks = tool_results(assistant, &ids);
            match own {
                Value::Array(own) => blocks.extend(own.iter().cloned()),
                other => blocks.push(json!({"type": "text", "text": other})),
            }
            Value::Array(blocks)
        }
    };
    json!({"role": "user", "content": content})
}

/// Strictly alternating turns: each (user, assistant) exchange, then the last user turn,
/// then optionally an assistant prefill. A user turn after tool use opens with the results.
fn render_anthropic_messages(
    exchanges: &[(Value, AnthropicAssistant)],
    last_user: &Value,
    prefill: Option<&str>,
    tool_names: &[String],
) -> Vec<Value> {
    let mut messages = Vec::new();
    let mut pending: Option<(&AnthropicAssistant, Vec<String>)> = None;
    let mut next_id = 0;
    for (user, assistant) in exchanges {
        messages.push(user_turn(pending.take(), user));
        let mut blocks = Vec::new();
        for t in &assistant.text {
            blocks.push(json!({"type": "text", "text": t}));
        }
        let mut ids = Vec::new();
        for (tool, input) in &assistant.calls {
            let name = &tool_names[tool % tool_names.len()];
            let id = format!("toolu_{next_id:03}");
            next_id += 1;
            ids.push(id.clone());
            blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
        messages.push(json!({"role": "assistant", "content": blocks}));
        if !ids.is_empty() {
            pending = Some((assistant, ids));
        }
    }
    messages.push(user_turn(pending.take(), last_user));
    if let Some(text) = prefill {
        // A final assistant turn may not end in whitespace.
        messages.push(json!({"role": "assistant", "content": text.trim_end()}));
    }
    messages
}

prop_compose! {
    fn anthropic_tools()(
        tools in vec((tool_name(), option::of(text()), object_schema()), 1..4),
        choice in option::of((0..4usize, any::<usize>(), option::of(any::<bool>()))),
    ) -> (Vec<String>, Map<String, Value>) {
        let names: Vec<String> = tools
            .iter()
            .enumerate()
            .map(|(i, (name, _, _))| format!("{name}_{i}"))
            .collect();
        let defs: Vec<Value> = tools
            .into_iter()
            .zip(&names)
            .map(|((_, description, schema), name)| {
                let mut tool = json!({"name": name, "input_schema": schema});
                if let Some(d) = description {
                    tool["description"] = json!(d);
                }
                tool
            })
            .collect();
        let mut req = Map::new();
        req.insert("tools".into(), Value::Array(defs));
        if let Some((kind, pick, disable_parallel)) = choice {
            let mut choice = match kind {
                0 => json!({"type": "auto"}),
                1 => json!({"type": "any"}),
                2 => json!({"type": "none"}),
                _ => json!({"type": "tool", "name": names[pick % names.len()]}),
            };
            if let (Some(d), false) = (disable_parallel, kind == 2) {
                choice["disable_parallel_tool_use"] = json!(d);
            }
            req.insert("tool_choice".into(), choice);
        }
        (names, req)
    }
}

prop_compose! {
    fn anthropic_request()(
        exchanges in vec((anthropic_user_content(), anthropic_assistant()), 0..4),
        last_user in anthropic_user_content(),
        prefill in option::of(text()),
        system in option::of(prop_oneof![
            text().prop_map(Value::from),
            vec(anthropic_text_block(), 1..3).prop_map(Value::Array),
        ]),
        tools in option::of(anthropic_tools()),
        max_tokens in 1..=8192u64,
        temperature in option::of(prop_oneof![Just(0.0), Just(1.0), 0.0..=1.0f64]),
        top_p in option::of(0.0..=1.0f64),
        top_k in option::of(1..=500u64),
        stop_sequences in option::of(vec(stop_sequence(), 0..=4)),
        user_id in option::of("[a-z0-9-]{1,16}"),
        stream in option::of(any::<bool>()),
    ) -> Value {
        let uses_tools = exchanges.iter().any(|(_, a)| !a.calls.is_empty());
        // Anthropic requires `tools` whenever the conversation holds tool_use blocks.
        let (names, tool_fields) = match tools {
            Some(tools) => tools,
            None if uses_tools => {
                let names: Vec<String> = (0..3).map(|i| format!("tool{i}")).collect();
                let defs: Vec<Value> = names
                    .iter()
                    .map(|n| json!({"name": n, "input_schema": {"type": "object"}}))
                    .collect();
                (names, Map::from_iter([("tools".to_owned(), Value::Array(defs))]))
            }
            None => Default::default(),
        };
        let mut req = Map::new();
        req.insert("model".into(), json!("claude-sonnet-4-5"));
        req.insert("max_tokens".into(), json!(max_tokens));
        req.insert(
            "messages".into(),
            Value::Array(render_anthropic_messages(
                &exchanges,
                &last_user,
                prefill.as_deref(),
                &names,
            )),
        );
        put(&mut req, "system", system);
        req.extend(tool_fields);
        put(&mut req, "temperature", temperature.map(Value::from));
        put(&mut req, "top_p", top_p.map(Value::from));
        put(&mut req, "top_k", top_k.map(Value::from));
        put(&mut req, "stop_sequences", stop_sequences.map(|s| json!(s)));
        put(&mut req, "metadata", user_id.map(|id| json!({"user_id": id})));
        put(&mut req, "stream", stream.map(Value::from));
        Value::Object(req)
    }
}

// --- the properties ----------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn valid_openai_requests_translate_to_requests_anthropic_accepts(req in openai_request()) {
        let translated = openai_to_anthropic(&req, "claude-x", 4096)
            .map_err(|e| TestCaseError::fail(format!("translation refused a valid request: {e:?}")))?;
        let body = serde_json::to_vec(&translated).unwrap();
        let response = keyrelay::mock::anthropic::messages(true, &body);
        prop_assert_eq!(
            response.status.as_u16(),
            200,
            "the Anthropic mock rejected the translation\ntranslated: {}\nresponse: {}",
            translated,
            body_text(&response)
        );
    }

    #[test]
    fn valid_anthropic_requests_translate_to_requests_openai_accepts(req in anthropic_request()) {
        let translated = anthropic_to_openai_request(&req, "gpt-x")
            .map_err(|e| TestCaseError::fail(format!("translation refused a valid request: {e:?}")))?;
        let body = serde_json::to_vec(&translated).unwrap();
        let response = keyrelay::mock::openai::chat_completions(&body);
        prop_assert_eq!(
            response.status.as_u16(),
            200,
            "the OpenAI mock rejected the translation\ntranslated: {}\nresponse: {}",
            translated,
            body_text(&response)
        );
    }
}
