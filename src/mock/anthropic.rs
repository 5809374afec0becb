//! A faithful stand-in for the Anthropic Messages API: Anthropic's validation errors
//! (missing `max_tokens`, a `system` role inside `messages`, unknown content block types,
//! empty text blocks, tool_use/tool_result pairing, temperature above 1) and deterministic
//! answers, plain or streamed with the exact event order of the real API.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::StatusCode;
use serde_json::{Value, json};

use super::openai::{MockBody, MockResponse};
use super::reply::{self, Conversation, Finish, Outcome, split_in_half};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

const BLOCK_TYPES: &str = "'text', 'image', 'document', 'search_result', 'thinking', 'redacted_thinking', \
     'tool_use', 'tool_result', 'server_tool_use', 'web_search_tool_result'";

impl MockResponse {
    pub fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Self {
        let body = json!({"type": "error", "error": {"type": kind, "message": message},
                          "request_id": "req_mock"});
        MockResponse {
            status,
            body: MockBody::Json(Bytes::from(body.to_string())),
        }
    }
}

fn invalid(message: impl AsRef<str>) -> MockResponse {
    MockResponse::anthropic_error(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message.as_ref(),
    )
}

/// Answers `POST /v1/messages`. `has_version` says whether `anthropic-version` was sent.
pub fn messages(has_version: bool, body: &[u8]) -> MockResponse {
    let req = match parse(has_version, body) {
        Ok(req) => req,
        Err(resp) => return resp,
    };
    if let Err(resp) = validate(&req, true) {
        return resp;
    }
    let conversation = conversation(&req);
    let answer = Answer {
        id: format!("msg_mock{:020}", NEXT_ID.fetch_add(1, Ordering::Relaxed)),
        model: req["model"].as_str().unwrap_or_default().to_owned(),
        input_tokens: conversation.prompt_tokens,
        outcome: reply::answer(&conversation),
    };
    let body = if req.get("stream") == Some(&Value::Bool(true)) {
        MockBody::Sse(answer.events())
    } else {
        MockBody::Json(Bytes::from(answer.message().to_string()))
    };
    MockResponse {
        status: StatusCode::OK,
        body,
    }
}

/// Answers `POST /v1/messages/count_tokens`.
pub fn count_tokens(has_version: bool, body: &[u8]) -> MockResponse {
    let req = match parse(has_version, body) {
        Ok(req) => req,
        Err(resp) => return resp,
    };
    if let Err(resp) = validate(&req, false) {
        return resp;
    }
    let tokens = conversation(&req).prompt_tokens;
    MockResponse {
        status: StatusCode::OK,
        body: MockBody::Json(Bytes::from(json!({"input_tokens": tokens}).to_string())),
    }
}

fn parse(has_version: bool, body: &[u8]) -> Result<Value, MockResponse> {
    if !has_version {
        return Err(invalid("anthropic-version: header is required"));
    }
    match serde_json::from_slice(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(invalid(
            "There was an error parsing the body of your request, please check that it is valid JSON.",
        )),
    }
}

fn validate(req: &Value, needs_max_tokens: bool) -> Result<(), MockResponse> {
    if !req.get("model").is_some_and(Value::is_string) {
        return Err(invalid("model: Field required"));
    }
    if needs_max_tokens {
        match req.get("max_tokens") {
            None => return Err(invalid("max_tokens: Field required")),
            Some(v) if !v.is_u64() => {
                return Err(invalid("max_tokens: Input should be a valid integer"));
            }
            _ => {}
        }
    }
    let Some(messages) = req.get("messages") else {
        return Err(invalid("messages: Field required"));
    };
    let Some(messages) = messages.as_array() else {
        return Err(invalid("messages: Input should be a valid list"));
    };
    if let Some(t) = req.get("temperature").and_then(Value::as_f64)
        && !(0.0..=1.0).contains(&t)
    {
        return Err(invalid(
            "temperature: Input should be less than or equal to 1",
        ));
    }
    if let Some(stops) = req.get("stop_sequences").and_then(Value::as_array)
        && stops
            .iter()
            .any(|s| s.as_str().is_none_or(|s| s.trim().is_empty()))
    {
        return Err(invalid(
            "stop_sequences: each stop sequence must contain non-whitespace",
        ));
    }
    validate_system(req.get("system"))?;
    validate_tools(req.get("tools"))?;
    let mut pending_tool_uses: Vec<String> = Vec::new();
    for (i, msg) in messages.iter().enumerate() {
        let role = msg.get("role").and_then(Value::as_str).unwrap_or_default();
        if role != "user" && role != "assistant" {
            return Err(invalid(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            )));
        }
        let blocks = content_blocks(msg.get("content"))
            .map_err(|e| invalid(format!("messages.{i}.content: {e}")))?;
        for (j, block) in blocks.iter().enumerate() {
            validate_block(block).map_err(|e| invalid(format!("messages.{i}.content.{j}: {e}")))?;
        }
        // Every tool_use must be answered by tool_result blocks at the start of the next turn.
        if !pending_tool_uses.is_empty() {
            let leading: Vec<&str> = blocks
                .iter()
                .take_while(|b| b["type"] == "tool_result")
                .filter_map(|b| b["tool_use_id"].as_str())
                .collect();
            if role != "user" || leading.len() < pending_tool_uses.len() {
                return Err(invalid(format!(
                    "messages.{i}: Did not find {} tool_result block(s) at the beginning of this message. Messages \
                     following tool_use blocks must begin with a matching number of tool_result blocks.",
                    pending_tool_uses.len()
                )));
            }
            if let Some(unknown) = leading
                .iter()
                .find(|id| !pending_tool_uses.iter().any(|p| p == *id))
            {
                return Err(invalid(format!(
                    "messages.{i}.content.0: unexpected tool_use_id found in tool_result blocks: {unknown}. Each \
                     tool_result block must have a corresponding tool_use block in the previous message."
                )));
            }
        } else if let Some(b) = blocks.iter().find(|b| b["type"] == "tool_result") {
            let id = b["tool_use_id"].as_str().unwrap_or_default();
            return Err(invalid(format!(
                "messages.{i}.content.0: unexpected tool_use_id found in tool_result blocks: {id}. Each tool_result \
                 block must have a corresponding tool_use block in the previous message."
            )));
        }
        pending_tool_uses = blocks
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .filter_map(|b| b["id"].as_str().map(str::to_owned))
            .collect();
        if i + 1 == messages.len() && role == "assistant" {
            let last_text = blocks
                .last()
                .and_then(|b| b["text"].as_str())
                .unwrap_or_default();
            if last_text.ends_with(char::is_whitespace) {
                return Err(invalid(
                    "final assistant content cannot end with trailing whitespace",
                ));
            }
        }
    }
    Ok(())
}

fn content_blocks(content: Option<&Value>) -> Result<Vec<Value>, String> {
    match content {
        Some(Value::String(s)) if s.is_empty() => {
            Err("text content blocks must be non-empty".into())
        }
        Some(Value::String(s)) => Ok(vec![json!({"type": "text", "text": s})]),
        Some(Value::Array(blocks)) => Ok(blocks.clone()),
        Some(_) => Err("Input should be a valid string or list".into()),
        None => Err("Field required".into()),
    }
}

fn validate_block(block: &Value) -> Result<(), String> {
    let kind = block
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "text" => match block.get("text").and_then(Value::as_str) {
            Some("") => Err("text content blocks must be non-empty".into()),
            Some(_) => Ok(()),
            None => Err("text.text: Field required".into()),
        },
        "image" | "document" => match block.pointer("/source/type").and_then(Value::as_str) {
            Some("base64") => {
                let media = block
                    .pointer("/source/media_type")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let ok = if kind == "image" {
                    ["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&media)
                } else {
                    media == "application/pdf"
                };
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "{kind}.source.base64.media_type: Input should be a supported media type"
                    ))
                }
            }
            Some("url" | "text" | "file") => Ok(()),
            _ => Err(format!(
                "{kind}.source: Input tag found using 'type' does not match any of the expected tags"
            )),
        },
        "tool_use" => {
            let id_ok = block["id"].as_str().is_some_and(|id| {
                !id.is_empty()
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
            if !id_ok {
                return Err("tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'".into());
            }
            if !block.get("input").is_some_and(Value::is_object) {
                return Err("tool_use.input: Input should be a valid dictionary".into());
            }
            Ok(())
        }
        "tool_result" => {
            if block["tool_use_id"].as_str().is_none() {
                return Err("tool_result.tool_use_id: Field required".into());
            }
            Ok(())
        }
        "thinking"
        | "redacted_thinking"
        | "search_result"
        | "server_tool_use"
        | "web_search_tool_result" => Ok(()),
        other => Err(format!(
            "Input tag '{other}' found using 'type' does not match any of the expected tags: {BLOCK_TYPES}"
        )),
    }
}

fn validate_system(system: Option<&Value>) -> Result<(), MockResponse> {
    match system {
        None | Some(Value::String(_)) => Ok(()),
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                if b["type"] != "text" || b["text"].as_str().is_none_or(str::is_empty) {
                    return Err(invalid(format!(
                        "system.{i}: system blocks must be non-empty text blocks"
                    )));
                }
            }
            Ok(())
        }
        Some(_) => Err(invalid("system: Input should be a valid string or list")),
    }
}

fn validate_tools(tools: Option<&Value>) -> Result<(), MockResponse> {
    let Some(tools) = tools else { return Ok(()) };
    let Some(tools) = tools.as_array() else {
        return Err(invalid("tools: Input should be a valid list"));
    };
    for (i, tool) in tools.iter().enumerate() {
        let name = tool["name"].as_str().unwrap_or_default();
        let valid = (1..=128).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(invalid(format!(
                "tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            )));
        }
        if tool.get("type").is_none() && tool["input_schema"]["type"] != "object" {
            return Err(invalid(format!(
                "tools.{i}.custom.input_schema: Input should be an object schema"
            )));
        }
    }
    Ok(())
}

fn block_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| match b["type"].as_str() {
                Some("text") => b["text"].as_str().map(str::to_owned),
                Some("tool_result") => Some(block_text(&b["content"])),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn conversation(req: &Value) -> Conversation {
    let messages = req["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let last = messages.last();
    let tool_results: Vec<String> = last
        .and_then(|m| m["content"].as_array())
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b["type"] == "tool_result")
                .map(|b| block_text(&b["content"]))
                .collect()
        })
        .unwrap_or_default();
    let last_user_text = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| match &m["content"] {
            Value::Array(b) => block_text(&Value::Array(
                b.iter().filter(|b| b["type"] == "text").cloned().collect(),
            )),
            other => block_text(other),
        })
        .unwrap_or_default();
    let tool = req
        .pointer("/tools/0")
        .filter(|_| req.pointer("/tool_choice/type") != Some(&json!("none")))
        .and_then(|t| {
            Some((
                t.get("name")?.as_str()?.to_owned(),
                t.get("input_schema").cloned().unwrap_or_default(),
            ))
        });
    let system = match req.get("system") {
        Some(s) => block_text(s),
        None => String::new(),
    };
    Conversation {
        last_user_text,
        tool_result: (!tool_results.is_empty()).then(|| tool_results.join(" ")),
        tool,
        max_tokens: req.get("max_tokens").and_then(Value::as_u64),
        stop: req
            .get("stop_sequences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        prompt_tokens: reply::count_tokens(&system)
            + messages
                .iter()
                .map(|m| reply::count_tokens(&block_text(&m["content"])) + 3)
                .sum::<u64>(),
    }
}

struct Answer {
    id: String,
    model: String,
    input_tokens: u64,
    outcome: Outcome,
}

impl Answer {
    fn stop(&self) -> (&'static str, Value) {
        match &self.outcome {
            Outcome::ToolCall { .. } => ("tool_use", Value::Null),
            Outcome::Text {
                finish: Finish::Length,
                ..
            } => ("max_tokens", Value::Null),
            Outcome::Text {
                finish: Finish::StopSequence(s),
                ..
            } => ("stop_sequence", json!(s)),
            Outcome::Text {
                finish: Finish::Stop,
                ..
            } => ("end_turn", Value::Null),
        }
    }

    fn tool_id(&self) -> String {
        format!("toolu_{}", self.id.trim_start_matches("msg_"))
    }

    fn usage(&self, output_tokens: u64) -> Value {
        json!({"input_tokens": self.input_tokens, "cache_creation_input_tokens": 0,
               "cache_read_input_tokens": 0, "output_tokens": output_tokens})
    }

    fn content(&self) -> Vec<Value> {
        match &self.outcome {
            Outcome::Text { words, .. } => vec![json!({"type": "text", "text": words.concat()})],
            Outcome::ToolCall { name, arguments } => {
                vec![
                    json!({"type": "tool_use", "id": self.tool_id(), "name": name, "input": arguments}),
                ]
            }
        }
    }

    fn message(&self) -> Value {
        let (stop_reason, stop_sequence) = self.stop();
        json!({"id": self.id, "type": "message", "role": "assistant", "model": self.model,
               "content": self.content(), "stop_reason": stop_reason, "stop_sequence": stop_sequence,
               "usage": self.usage(self.outcome.completion_tokens())})
    }

    /// The stream in the real API's order: message_start, a ping, each block's
    /// start/deltas/stop, message_delta, message_stop.
    fn events(&self) -> Vec<Bytes> {
        let mut events = vec![json!({"type": "message_start", "message": {
            "id": self.id, "type": "message", "role": "assistant", "model": self.model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": self.usage(1)}})];
        match &self.outcome {
            Outcome::Text { words, .. } => {
                events.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
                events.push(json!({"type": "ping"}));
                for word in words {
                    events.push(json!({"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": word}}));
                }
            }
            Outcome::ToolCall { name, arguments } => {
                events.push(
                    json!({"type": "content_block_start", "index": 0, "content_block":
                    {"type": "tool_use", "id": self.tool_id(), "name": name, "input": {}}}),
                );
                events.push(json!({"type": "ping"}));
                let args = arguments.to_string();
                let (head, tail) = split_in_half(&args);
                for piece in ["", head, tail] {
                    events.push(json!({"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "input_json_delta", "partial_json": piece}}));
                }
            }
        }
        events.push(json!({"type": "content_block_stop", "index": 0}));
        let (stop_reason, stop_sequence) = self.stop();
        events.push(json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                           "usage": {"output_tokens": self.outcome.completion_tokens()}}));
        events.push(json!({"type": "message_stop"}));
        events
            .into_iter()
            .map(|e| {
                let kind = e["type"].as_str().unwrap_or_default().to_owned();
                Bytes::from(format!("event: {kind}\ndata: {e}\n\n"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(resp: MockResponse) -> (StatusCode, String, String) {
        let MockBody::Json(b) = resp.body else {
            panic!("expected json")
        };
        let v: Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(v["type"], "error");
        (
            resp.status,
            v["error"]["type"].as_str().unwrap_or_default().into(),
            v["error"]["message"].as_str().unwrap_or_default().into(),
        )
    }

    #[test]
    fn rejects_what_anthropic_rejects() {
        let cases: [(&str, &str); 7] = [
            (
                r#"{"model":"c","messages":[{"role":"user","content":"hi"}]}"#,
                "max_tokens: Field required",
            ),
            (
                r#"{"model":"c","max_tokens":5,"messages":[{"role":"system","content":"hi"}]}"#,
                "messages.0.role: Input should be 'user' or 'assistant'",
            ),
            (
                r#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":[{"type":"video"}]}]}"#,
                "Input tag 'video' found",
            ),
            (
                r#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":""}]}]}"#,
                "text content blocks must be non-empty",
            ),
            (
                r#"{"model":"c","max_tokens":5,"temperature":1.5,"messages":[{"role":"user","content":"x"}]}"#,
                "temperature",
            ),
            (
                r#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"x"},
                {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},
                {"role":"user","content":[{"type":"text","text":"hm"},{"type":"tool_result","tool_use_id":"t1","content":"r"}]}]}"#,
                "Did not find 1 tool_result block(s) at the beginning",
            ),
            (
                r#"{"model":"c","max_tokens":5,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":"so "}]}"#,
                "trailing whitespace",
            ),
        ];
        for (body, says) in cases {
            let (status, kind, message) = error_of(messages(true, body.as_bytes()));
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(kind, "invalid_request_error");
            assert!(
                message.contains(says),
                "{message:?} should contain {says:?}"
            );
        }
        let (status, _, message) = error_of(messages(false, b"{}"));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.contains("anthropic-version"));
    }

    #[test]
    fn stream_has_the_real_event_order() {
        let resp = messages(true, br#"{"model":"c","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi there"}]}"#);
        let MockBody::Sse(frames) = resp.body else {
            panic!("expected sse")
        };
        let kinds: Vec<String> = frames
            .iter()
            .map(|f| {
                String::from_utf8_lossy(f)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("event: ")
                    .to_owned()
            })
            .collect();
        assert_eq!(kinds.first().map(String::as_str), Some("message_start"));
        assert_eq!(
            &kinds[kinds.len() - 3..],
            ["content_block_stop", "message_delta", "message_stop"]
        );
        assert_eq!(
            kinds.iter().filter(|k| *k == "content_block_delta").count(),
            4
        );
    }

    #[test]
    fn tool_use_answer_and_count_tokens() {
        let body = br#"{"model":"c","max_tokens":50,"tools":[{"name":"get_weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}],
                        "messages":[{"role":"user","content":"Rome"}]}"#;
        let MockBody::Json(b) = messages(true, body).body else {
            panic!()
        };
        let v: Value = serde_json::from_slice(&b).expect("json");
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(v["content"][0]["input"], json!({"city": "Rome"}));
        let MockBody::Json(b) = count_tokens(
            true,
            br#"{"model":"c","messages":[{"role":"user","content":"a b c"}]}"#,
        )
        .body
        else {
            panic!()
        };
        assert_eq!(
            serde_json::from_slice::<Value>(&b).expect("json")["input_tokens"],
            6
        );
    }
}
