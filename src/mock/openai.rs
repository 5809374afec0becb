//! A faithful stand-in for the OpenAI Chat Completions API: it validates requests the way
//! the real API does (same status codes, error envelopes, `param` and `code` values) and
//! answers deterministically, derived from the last user message.
//!
//! Used by the in-process `mock` provider (demo mode, load tests) and by the mock upstream
//! server the tests and benchmarks run against.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::reply::{self, Conversation, Finish, Outcome, split_in_half};

/// What the mock answers: a complete JSON body, or the frames of an SSE stream.
#[derive(Debug)]
pub enum MockBody {
    Json(Bytes),
    Sse(Vec<Bytes>),
}

#[derive(Debug)]
pub struct MockResponse {
    pub status: StatusCode,
    pub body: MockBody,
}

impl MockResponse {
    pub fn error(
        status: StatusCode,
        message: &str,
        kind: &str,
        param: Option<&str>,
        code: Option<&str>,
    ) -> Self {
        let body =
            json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
        MockResponse {
            status,
            body: MockBody::Json(Bytes::from(body.to_string())),
        }
    }

    fn invalid(message: impl AsRef<str>, param: Option<&str>, code: Option<&str>) -> Self {
        Self::error(
            StatusCode::BAD_REQUEST,
            message.as_ref(),
            "invalid_request_error",
            param,
            code,
        )
    }
}

const ROLES: [&str; 6] = [
    "system",
    "assistant",
    "user",
    "function",
    "tool",
    "developer",
];

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Answers one Chat Completions request body.
pub fn chat_completions(body: &[u8]) -> MockResponse {
    let req: Value = match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return MockResponse::invalid(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your \
                 HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
                None,
                None,
            );
        }
    };
    if let Err(resp) = validate(&req) {
        return resp;
    }
    let conversation = conversation(&req);
    let outcome = reply::answer(&conversation);
    let answer = Answer {
        id: format!("chatcmpl-mock{}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
        created: crate::upstream::unix_now(),
        model: req["model"].as_str().unwrap_or_default().to_owned(),
        n: req.get("n").and_then(Value::as_u64).unwrap_or(1),
        prompt_tokens: conversation.prompt_tokens,
        outcome,
    };
    if req.get("stream") == Some(&Value::Bool(true)) {
        let include_usage =
            req.pointer("/stream_options/include_usage") == Some(&Value::Bool(true));
        return MockResponse {
            status: StatusCode::OK,
            body: MockBody::Sse(answer.stream(include_usage)),
        };
    }
    MockResponse {
        status: StatusCode::OK,
        body: MockBody::Json(Bytes::from(answer.completion().to_string())),
    }
}

/// What the reply depends on, read from an OpenAI request.
fn conversation(req: &Value) -> Conversation {
    let messages = req["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    // The trailing run of tool messages, if the conversation ends with tool results.
    let tool_results: Vec<String> = messages
        .iter()
        .rev()
        .take_while(|m| m["role"] == "tool")
        .map(|m| content_text(&m["content"]))
        .collect();
    let last_user_text = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| content_text(&m["content"]))
        .unwrap_or_default();
    let tool_choice_none = req.get("tool_choice") == Some(&json!("none"));
    let tool = req
        .pointer("/tools/0/function")
        .filter(|_| !tool_choice_none)
        .and_then(|f| {
            let name = f.get("name")?.as_str()?.to_owned();
            Some((
                name,
                f.get("parameters").cloned().unwrap_or_else(|| json!({})),
            ))
        });
    let stop = match req.get("stop") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    Conversation {
        last_user_text,
        tool_result: (!tool_results.is_empty())
            .then(|| tool_results.into_iter().rev().collect::<Vec<_>>().join(" ")),
        tool,
        max_tokens: ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|f| req.get(*f).and_then(Value::as_u64)),
        stop,
        prompt_tokens: messages
            .iter()
            .map(|m| reply::count_tokens(&content_text(&m["content"])) + 3)
            .sum(),
    }
}

fn validate(req: &Value) -> Result<(), MockResponse> {
    let invalid = |m: String, p: &str, c: &str| Err(MockResponse::invalid(m, Some(p), Some(c)));
    match req.get("model") {
        Some(Value::String(s)) if !s.is_empty() => {}
        _ => {
            return Err(MockResponse::invalid(
                "you must provide a model parameter",
                None,
                None,
            ));
        }
    }
    let messages = match req.get("messages") {
        None => {
            return invalid(
                "Missing required parameter: 'messages'.".into(),
                "messages",
                "missing_required_parameter",
            );
        }
        Some(Value::Array(m)) if m.is_empty() => {
            return invalid(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."
                    .into(),
                "messages",
                "empty_array",
            );
        }
        Some(Value::Array(m)) => m,
        Some(other) => {
            return invalid(
                format!(
                    "Invalid type for 'messages': expected an array of objects, but got {} instead.",
                    type_name(other)
                ),
                "messages",
                "invalid_type",
            );
        }
    };
    for (i, msg) in messages.iter().enumerate() {
        let role = match msg.get("role") {
            Some(Value::String(r)) => r.as_str(),
            None => {
                let p = format!("messages[{i}].role");
                return invalid(
                    format!("Missing required parameter: '{p}'."),
                    &p,
                    "missing_required_parameter",
                );
            }
            Some(other) => {
                let p = format!("messages[{i}].role");
                return invalid(
                    format!(
                        "Invalid type for '{p}': expected a string, but got {} instead.",
                        type_name(other)
                    ),
                    &p,
                    "invalid_type",
                );
            }
        };
        if !ROLES.contains(&role) {
            let p = format!("messages[{i}].role");
            return invalid(
                format!(
                    "Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."
                ),
                &p,
                "invalid_value",
            );
        }
        let needs_content = role != "assistant";
        if needs_content && msg.get("content").is_none_or(Value::is_null) {
            let p = format!("messages[{i}].content");
            return invalid(
                format!("Missing required parameter: '{p}'."),
                &p,
                "missing_required_parameter",
            );
        }
        if role == "tool" && msg.get("tool_call_id").is_none() {
            let p = format!("messages[{i}].tool_call_id");
            return invalid(
                format!("Missing required parameter: '{p}'."),
                &p,
                "missing_required_parameter",
            );
        }
    }
    let stream = match req.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return invalid(
                format!(
                    "Invalid type for 'stream': expected a boolean, but got {} instead.",
                    type_name(other)
                ),
                "stream",
                "invalid_type",
            );
        }
    };
    if !stream && req.get("stream_options").is_some_and(|v| !v.is_null()) {
        return Err(MockResponse::invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            Some("stream_options"),
            None,
        ));
    }
    if let Some(n) = req.get("n").filter(|v| !v.is_null())
        && !n.as_u64().is_some_and(|n| (1..=128).contains(&n))
    {
        return invalid(
            "Invalid 'n': expected an integer between 1 and 128.".into(),
            "n",
            "invalid_value",
        );
    }
    for field in ["max_tokens", "max_completion_tokens"] {
        if let Some(v) = req.get(field).filter(|v| !v.is_null())
            && v.as_u64().is_none_or(|n| n < 1)
        {
            return invalid(
                format!("Invalid '{field}': expected an integer >= 1."),
                field,
                "invalid_value",
            );
        }
    }
    if let Some(t) = req.get("temperature").filter(|v| !v.is_null()) {
        match t.as_f64() {
            Some(t) if (0.0..=2.0).contains(&t) => {}
            Some(t) if t > 2.0 => {
                return invalid(
                    format!(
                        "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got {t} instead."
                    ),
                    "temperature",
                    "decimal_above_max_value",
                );
            }
            _ => {
                return invalid(
                    "Invalid 'temperature': expected a number between 0 and 2.".into(),
                    "temperature",
                    "invalid_value",
                );
            }
        }
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One rendered answer: the same outcome as a completion or as stream frames.
struct Answer {
    id: String,
    created: u64,
    model: String,
    n: u64,
    prompt_tokens: u64,
    outcome: Outcome,
}

impl Answer {
    fn finish_reason(&self) -> &'static str {
        match &self.outcome {
            Outcome::ToolCall { .. } => "tool_calls",
            Outcome::Text {
                finish: Finish::Length,
                ..
            } => "length",
            Outcome::Text { .. } => "stop",
        }
    }

    fn tool_call_id(&self, choice: u64) -> String {
        format!("call_{}_{choice}", self.id.trim_start_matches("chatcmpl-"))
    }

    fn usage(&self) -> Value {
        let completion = self.outcome.completion_tokens() * self.n;
        json!({
            "prompt_tokens": self.prompt_tokens, "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
        })
    }

    fn completion(&self) -> Value {
        let choices: Vec<Value> = (0..self.n)
            .map(|i| {
                let message = match &self.outcome {
                    Outcome::Text { words, .. } => {
                        json!({"role": "assistant", "content": words.concat(), "refusal": null})
                    }
                    Outcome::ToolCall { name, arguments } => json!({
                        "role": "assistant", "content": null, "refusal": null,
                        "tool_calls": [{"id": self.tool_call_id(i), "type": "function",
                                        "function": {"name": name, "arguments": arguments.to_string()}}]
                    }),
                };
                json!({"index": i, "message": message, "logprobs": null, "finish_reason": self.finish_reason()})
            })
            .collect();
        json!({
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": choices, "usage": self.usage(), "service_tier": "default", "system_fingerprint": "fp_mock",
        })
    }

    /// The SSE frames of a streamed answer, `[DONE]` included, exactly as OpenAI frames them.
    fn stream(&self, include_usage: bool) -> Vec<Bytes> {
        let chunk = |choices: Value| {
            let mut c = json!({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                               "model": self.model, "system_fingerprint": "fp_mock", "choices": choices});
            if include_usage {
                c["usage"] = Value::Null;
            }
            c
        };
        let per_choice = |delta: &dyn Fn(u64) -> Value, finish: Value| -> Value {
            (0..self.n)
                .map(|i| json!({"index": i, "delta": delta(i), "logprobs": null, "finish_reason": finish}))
                .collect()
        };
        let mut frames = Vec::new();
        match &self.outcome {
            Outcome::Text { words, .. } => {
                frames.push(chunk(per_choice(
                    &|_| json!({"role": "assistant", "content": "", "refusal": null}),
                    Value::Null,
                )));
                for word in words {
                    frames.push(chunk(per_choice(
                        &|_| json!({"content": word}),
                        Value::Null,
                    )));
                }
            }
            Outcome::ToolCall { name, arguments } => {
                let args = arguments.to_string();
                let (head, tail) = split_in_half(&args);
                frames.push(chunk(per_choice(
                    &|i| json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0,
                        "id": self.tool_call_id(i), "type": "function", "function": {"name": name, "arguments": ""}}]}),
                    Value::Null,
                )));
                for piece in [head, tail] {
                    frames.push(chunk(per_choice(
                        &|_| json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                        Value::Null,
                    )));
                }
            }
        }
        frames.push(chunk(per_choice(
            &|_| json!({}),
            json!(self.finish_reason()),
        )));
        if include_usage {
            let mut last = chunk(json!([]));
            last["usage"] = self.usage();
            frames.push(last);
        }
        let mut out: Vec<Bytes> = frames
            .into_iter()
            .map(|f| Bytes::from(format!("data: {f}\n\n")))
            .collect();
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
        out
    }
}

/// The text of a message's content: a string, or the `text` parts of an array.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(resp: &MockResponse) -> Value {
        match &resp.body {
            MockBody::Json(b) => serde_json::from_slice(b).expect("json"),
            MockBody::Sse(_) => panic!("expected json"),
        }
    }

    #[test]
    fn answers_from_the_last_user_message() {
        let resp = chat_completions(
            br#"{"model":"m","messages":[{"role":"user","content":"first"},{"role":"assistant","content":"x"},
                {"role":"user","content":[{"type":"text","text":"hello there"}]}]}"#,
        );
        let v = json_of(&resp);
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "You said: hello there"
        );
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert_eq!(v["usage"]["completion_tokens"], 4);
        assert_eq!(v["object"], "chat.completion");
    }

    #[test]
    fn tools_are_called_and_results_answered() {
        let tools = r#"[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]"#;
        let v = json_of(&chat_completions(
            format!(
                r#"{{"model":"m","tools":{tools},"messages":[{{"role":"user","content":"Oslo"}}]}}"#
            )
            .as_bytes(),
        ));
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather");
        assert_eq!(call["function"]["arguments"], r#"{"city":"Oslo"}"#);
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
        let v = json_of(&chat_completions(
            format!(r#"{{"model":"m","tools":{tools},"messages":[{{"role":"user","content":"Oslo"}},
                {{"role":"assistant","content":null,"tool_calls":[{{"id":"c1","type":"function","function":{{"name":"get_weather","arguments":"{{}}"}}}}]}},
                {{"role":"tool","tool_call_id":"c1","content":"rainy"}}]}}"#).as_bytes(),
        ));
        assert_eq!(v["choices"][0]["message"]["content"], "Tool said: rainy");
    }

    #[test]
    fn max_tokens_truncates_with_length() {
        let v = json_of(&chat_completions(
            br#"{"model":"m","max_tokens":2,"messages":[{"role":"user","content":"a b c d"}]}"#,
        ));
        assert_eq!(v["choices"][0]["message"]["content"], "You said: ");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn stream_frames_follow_the_spec() {
        let resp = chat_completions(
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#,
        );
        let MockBody::Sse(frames) = resp.body else {
            panic!("expected sse")
        };
        let texts: Vec<String> = frames
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        assert!(texts[0].contains(r#""role":"assistant""#));
        assert_eq!(texts.last().map(String::as_str), Some("data: [DONE]\n\n"));
        let usage: Value =
            serde_json::from_str(texts[texts.len() - 2].trim_start_matches("data: ").trim())
                .expect("json");
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["usage"]["completion_tokens"], 3);
        assert!(
            texts[..texts.len() - 2]
                .iter()
                .all(|t| t.contains(r#""usage":null"#))
        );
    }

    #[test]
    fn validation_errors_match_openai() {
        let cases: [(&[u8], Option<&str>, Option<&str>); 6] = [
            (b"nope", None, None),
            (br#"{"messages":[{"role":"user","content":"x"}]}"#, None, None),
            (br#"{"model":"m"}"#, Some("messages"), Some("missing_required_parameter")),
            (br#"{"model":"m","messages":[]}"#, Some("messages"), Some("empty_array")),
            (br#"{"model":"m","messages":[{"role":"robot","content":"x"}]}"#, Some("messages[0].role"), Some("invalid_value")),
            (br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#, Some("stream_options"), None),
        ];
        for (body, param, code) in cases {
            let resp = chat_completions(body);
            assert_eq!(resp.status, StatusCode::BAD_REQUEST);
            let v = json_of(&resp);
            assert_eq!(v["error"]["type"], "invalid_request_error");
            assert_eq!(v["error"]["param"].as_str(), param, "{v}");
            assert_eq!(v["error"]["code"].as_str(), code, "{v}");
        }
    }
}
