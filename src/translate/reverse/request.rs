//! Anthropic Messages request → OpenAI Chat Completions request (C.10, C.3 reverse table).
//!
//! Validation errors name the offending field the way Anthropic's own 400s do
//! (`max_tokens: Field required`, `messages.2.role: …`), so a client sees the same kind of
//! message whichever upstream serves the model.

use serde_json::{Map, Value, json};

use crate::translate::TranslateError;

/// OpenAI accepts at most 4 stop sequences (A.2); more is a client error, not something to
/// truncate silently (the model would then run past a stop the client relies on).
const MAX_STOP_SEQUENCES: usize = 4;

/// Translates an Anthropic `/v1/messages` body into an OpenAI `/v1/chat/completions` body
/// for `upstream_model`.
pub fn anthropic_to_openai_request(
    req: &Value,
    upstream_model: &str,
) -> Result<Value, TranslateError> {
    let Some(obj) = req.as_object() else {
        return Err(TranslateError {
            message: "request body must be a JSON object".to_owned(),
            param: None,
        });
    };

    let max_tokens = match obj.get("max_tokens") {
        None | Some(Value::Null) => return Err(err("max_tokens", "Field required")),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| err("max_tokens", "Input should be a valid integer"))?,
    };
    let input_messages = match obj.get("messages") {
        None | Some(Value::Null) => return Err(err("messages", "Field required")),
        Some(Value::Array(m)) => m,
        Some(_) => return Err(err("messages", "Input should be a valid list")),
    };

    let mut messages = Vec::with_capacity(input_messages.len() + 1);
    if let Some(system) = system_text(obj.get("system"))? {
        messages.push(json!({"role": "system", "content": system}));
    }
    for (i, message) in input_messages.iter().enumerate() {
        convert_message(i, message, &mut messages)?;
    }

    let mut out = Map::new();
    out.insert("model".into(), upstream_model.into());
    out.insert("messages".into(), Value::Array(messages));
    // `max_completion_tokens` is the current field; `max_tokens` is deprecated and o-series
    // (reasoning) models reject it outright.
    out.insert("max_completion_tokens".into(), max_tokens.into());

    for field in ["temperature", "top_p"] {
        match obj.get(field) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                out.insert(field.into(), v.clone());
            }
            Some(_) => return Err(err(field, "Input should be a valid number")),
        }
    }
    // `top_k` has no OpenAI equivalent and is dropped. `thinking` is dropped too: mapping it
    // to `reasoning_effort` would make non-reasoning models reject the request, and OpenAI
    // models that reason do so without being asked.

    if let Some(stop) = stop_sequences(obj.get("stop_sequences"))? {
        out.insert("stop".into(), stop);
    }
    if let Some(user) = obj
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
    {
        out.insert("user".into(), user.into());
    }

    let tools = tools(obj.get("tools"))?;
    // OpenAI rejects `tool_choice` and `parallel_tool_calls` when no tools are sent, while
    // Anthropic accepts e.g. `tool_choice: none` without tools; drop both in that case.
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = obj.get("tool_choice").filter(|c| !c.is_null()) {
            let (mapped, disable_parallel) = tool_choice(choice)?;
            out.insert("tool_choice".into(), mapped);
            if disable_parallel {
                out.insert("parallel_tool_calls".into(), false.into());
            }
        }
    }

    if obj.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), true.into());
        // Without this the upstream sends no usage at all and the final `message_delta`
        // could only report zero tokens (E.65; ccs #1574).
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }

    Ok(Value::Object(out))
}

/// A validation error for `path`, phrased like Anthropic's (`<path>: <problem>`).
fn err(path: &str, problem: &str) -> TranslateError {
    TranslateError {
        message: format!("{path}: {problem}"),
        param: Some(path.to_owned()),
    }
}

/// An Anthropic feature that exists but cannot be expressed to an OpenAI-compatible upstream.
fn unsupported(path: &str, what: &str) -> TranslateError {
    err(
        path,
        &format!(
            "{what} is not supported for this model (served by an OpenAI-compatible upstream)"
        ),
    )
}

/// `system` as one string: text blocks are joined with `\n` (what Anthropic's own
/// OpenAI-compat layer does in the other direction). Empty → no system message.
fn system_text(system: Option<&Value>) -> Result<Option<String>, TranslateError> {
    let text = match system {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                let path = format!("system.{j}");
                if block_type(block) != Some("text") {
                    return Err(err(&format!("{path}.type"), "Input should be 'text'"));
                }
                parts.push(text_field(&path, block)?);
            }
            parts.join("\n")
        }
        Some(_) => return Err(err("system", "Input should be a valid string or list")),
    };
    Ok((!text.is_empty()).then_some(text))
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

fn text_field(path: &str, block: &Value) -> Result<String, TranslateError> {
    block
        .get("text")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| err(&format!("{path}.text"), "Field required"))
}

fn str_field<'a>(path: &str, value: &'a Value, field: &str) -> Result<&'a str, TranslateError> {
    value
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| err(&format!("{path}.{field}"), "Field required"))
}

fn convert_message(i: usize, message: &Value, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let path = format!("messages.{i}");
    let content = match message.get("content") {
        None | Some(Value::Null) => return Err(err(&format!("{path}.content"), "Field required")),
        Some(c @ (Value::String(_) | Value::Array(_))) => c,
        Some(_) => {
            return Err(err(
                &format!("{path}.content"),
                "Input should be a valid string or list",
            ));
        }
    };
    match message.get("role").and_then(Value::as_str) {
        Some("user") => convert_user(&path, content, out),
        Some("assistant") => convert_assistant(&path, content, out),
        None => Err(err(&format!("{path}.role"), "Field required")),
        Some(_) => Err(err(
            &format!("{path}.role"),
            "Input should be 'user' or 'assistant'",
        )),
    }
}

/// A user turn becomes: one `tool` message per `tool_result` block (in order), then one
/// `user` message with everything else. Tool messages must come first because an OpenAI
/// `tool` message has to follow the assistant message that made the call directly (E.66).
fn convert_user(path: &str, content: &Value, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let blocks = match content {
        Value::Array(blocks) => blocks,
        other => {
            out.push(json!({"role": "user", "content": other}));
            return Ok(());
        }
    };
    let mut tool_messages = Vec::new();
    // Non-text content of tool results: OpenAI tool messages are text-only, so it moves to
    // the user message that follows, ahead of the turn's own content.
    let mut moved_parts = Vec::new();
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let block_path = format!("{path}.content.{j}");
        match block_type(block) {
            Some("tool_result") => {
                let (message, moved) = tool_result(&block_path, block)?;
                tool_messages.push(message);
                moved_parts.extend(moved);
            }
            // Only meaningful on assistant turns; dropped like there.
            Some("thinking" | "redacted_thinking") => {}
            _ => parts.extend(user_part(&block_path, block)?),
        }
    }
    out.extend(tool_messages);
    moved_parts.extend(parts);
    if let Some(content) = user_content(moved_parts) {
        out.push(json!({"role": "user", "content": content}));
    }
    Ok(())
}

/// A lone text part becomes plain string content: every OpenAI-compatible server accepts
/// that form, while some smaller ones mishandle content arrays.
fn user_content(mut parts: Vec<Value>) -> Option<Value> {
    match parts.as_slice() {
        [] => None,
        [only] if block_type(only) == Some("text") => {
            parts.pop().and_then(|p| p.get("text").cloned())
        }
        _ => Some(Value::Array(parts)),
    }
}

/// One content block of a user turn (or of a tool result) as an OpenAI content part.
/// `None` for parts that carry nothing (empty text, which Anthropic itself rejects).
fn user_part(path: &str, block: &Value) -> Result<Option<Value>, TranslateError> {
    match block_type(block) {
        Some("text") => {
            let text = text_field(path, block)?;
            Ok((!text.is_empty()).then(|| json!({"type": "text", "text": text})))
        }
        Some("image") => {
            let source = block
                .get("source")
                .ok_or_else(|| err(&format!("{path}.source"), "Field required"))?;
            let source_path = format!("{path}.source");
            let url = match block_type(source) {
                Some("base64") => data_url(&source_path, source)?,
                Some("url") => str_field(&source_path, source, "url")?.to_owned(),
                _ => return Err(unsupported(&source_path, "this image source type")),
            };
            Ok(Some(
                json!({"type": "image_url", "image_url": {"url": url}}),
            ))
        }
        Some("document") => document_part(path, block).map(Some),
        Some(other) => Err(unsupported(
            &format!("{path}.type"),
            &format!("the '{other}' content block"),
        )),
        None => Err(err(&format!("{path}.type"), "Field required")),
    }
}

fn data_url(path: &str, source: &Value) -> Result<String, TranslateError> {
    let media_type = str_field(path, source, "media_type")?;
    let data = str_field(path, source, "data")?;
    Ok(format!("data:{media_type};base64,{data}"))
}

/// PDFs become an OpenAI `file` part; plain-text documents become text. OpenAI cannot fetch
/// document URLs (and the proxy does not download on the client's behalf: SSRF), so URL
/// sources are rejected rather than dropped.
fn document_part(path: &str, block: &Value) -> Result<Value, TranslateError> {
    let source_path = format!("{path}.source");
    let source = block
        .get("source")
        .ok_or_else(|| err(&source_path, "Field required"))?;
    match block_type(source) {
        Some("base64")
            if source.get("media_type").and_then(Value::as_str) == Some("application/pdf") =>
        {
            // OpenAI needs a filename next to inline file data.
            let filename = block
                .get("title")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .unwrap_or("document.pdf");
            Ok(json!({"type": "file",
                      "file": {"filename": filename, "file_data": data_url(&source_path, source)?}}))
        }
        Some("text") => {
            let text = str_field(&source_path, source, "data")?;
            Ok(json!({"type": "text", "text": text}))
        }
        Some("content") => {
            let text = source
                .get("content")
                .and_then(Value::as_array)
                .map(|blocks| {
                    blocks
                        .iter()
                        .filter_map(|b| b.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            Ok(json!({"type": "text", "text": text}))
        }
        _ => Err(unsupported(&source_path, "this document source type")),
    }
}

/// A `tool_result` block → an OpenAI `tool` message, plus the non-text parts that have to
/// move to the following user message.
fn tool_result(path: &str, block: &Value) -> Result<(Value, Vec<Value>), TranslateError> {
    let id = str_field(path, block, "tool_use_id")?;
    let mut texts = Vec::new();
    let mut moved = Vec::new();
    match block.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => texts.push(s.clone()),
        Some(Value::Array(items)) => {
            for (k, item) in items.iter().enumerate() {
                let item_path = format!("{path}.content.{k}");
                match user_part(&item_path, item)? {
                    Some(part) if block_type(&part) == Some("text") => {
                        texts.extend(part.get("text").and_then(Value::as_str).map(str::to_owned));
                    }
                    Some(part) => moved.push(part),
                    None => {}
                }
            }
        }
        Some(_) => {
            return Err(err(
                &format!("{path}.content"),
                "Input should be a valid string or list",
            ));
        }
    }
    let mut text = texts.join("\n");
    if text.is_empty() && !moved.is_empty() {
        // Otherwise the model sees an empty result and cannot tell the image is its answer.
        text = "(the tool result continues in the next user message)".to_owned();
    }
    // [Rec] OpenAI has no error flag on tool messages; the prefix keeps the failure visible
    // to the model.
    if block.get("is_error").and_then(Value::as_bool) == Some(true) {
        text = format!("Error: {text}");
    }
    Ok((
        json!({"role": "tool", "tool_call_id": id, "content": text}),
        moved,
    ))
}

/// An assistant turn: text blocks concatenated into `content`, `tool_use` blocks into
/// `tool_calls`. Thinking blocks are dropped: an OpenAI upstream cannot verify or use their
/// signatures. A turn left with nothing to send is skipped (OpenAI rejects an assistant
/// message with neither content nor tool calls).
fn convert_assistant(
    path: &str,
    content: &Value,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let blocks = match content {
        Value::Array(blocks) => blocks,
        Value::String(s) if s.is_empty() => return Ok(()),
        other => {
            out.push(json!({"role": "assistant", "content": other}));
            return Ok(());
        }
    };
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let block_path = format!("{path}.content.{j}");
        match block_type(block) {
            Some("text") => text.push_str(&text_field(&block_path, block)?),
            Some("tool_use") => {
                let id = str_field(&block_path, block, "id")?;
                let name = str_field(&block_path, block, "name")?;
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                tool_calls.push(json!({"id": id, "type": "function",
                                       "function": {"name": name, "arguments": input.to_string()}}));
            }
            Some("thinking" | "redacted_thinking") => {}
            Some(other) => {
                return Err(unsupported(
                    &format!("{block_path}.type"),
                    &format!("the '{other}' content block"),
                ));
            }
            None => return Err(err(&format!("{block_path}.type"), "Field required")),
        }
    }
    if text.is_empty() && tool_calls.is_empty() {
        return Ok(());
    }
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    message.insert(
        "content".into(),
        if text.is_empty() {
            Value::Null
        } else {
            text.into()
        },
    );
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    out.push(Value::Object(message));
    Ok(())
}

fn stop_sequences(value: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(err("stop_sequences", "Input should be a valid list")),
    };
    if list.iter().any(|s| !s.is_string()) {
        return Err(err("stop_sequences", "Input should be a list of strings"));
    }
    if list.len() > MAX_STOP_SEQUENCES {
        return Err(err(
            "stop_sequences",
            &format!(
                "at most {MAX_STOP_SEQUENCES} stop sequences are supported for this model \
                 (OpenAI-compatible upstream), got {}",
                list.len()
            ),
        ));
    }
    Ok((!list.is_empty()).then(|| Value::Array(list.clone())))
}

/// Anthropic client tools → OpenAI function tools. The schema passes unchanged (C.3 [Rec]).
/// `strict` is not forwarded: OpenAI's strict mode imposes schema rules (all properties
/// required, no additional properties) that Anthropic schemas need not follow.
fn tools(value: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    let list = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(err("tools", "Input should be a valid list")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let path = format!("tools.{i}");
        match block_type(tool) {
            None | Some("custom") => {}
            // Server tools (web search, code execution, …) run inside Anthropic's API.
            Some(other) => return Err(unsupported(&path, &format!("the '{other}' tool"))),
        }
        let name = str_field(&path, tool, "name")?;
        let schema = tool
            .get("input_schema")
            .filter(|s| s.is_object())
            .ok_or_else(|| err(&format!("{path}.input_schema"), "Field required"))?;
        let mut function = Map::new();
        function.insert("name".into(), name.into());
        if let Some(description) = tool.get("description").and_then(Value::as_str) {
            function.insert("description".into(), description.into());
        }
        function.insert("parameters".into(), schema.clone());
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(out)
}

/// Anthropic `tool_choice` → (OpenAI `tool_choice`, `disable_parallel_tool_use`).
fn tool_choice(choice: &Value) -> Result<(Value, bool), TranslateError> {
    let disable_parallel = choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        == Some(true);
    let mapped = match block_type(choice) {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => return Ok((json!("none"), false)),
        Some("tool") => {
            let name = str_field("tool_choice", choice, "name")?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(err(
                "tool_choice.type",
                "Input should be 'auto', 'any', 'tool' or 'none'",
            ));
        }
    };
    Ok((mapped, disable_parallel))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn translate(req: Value) -> Value {
        anthropic_to_openai_request(&req, "gpt-up").unwrap()
    }

    fn base(messages: Value) -> Value {
        json!({"model": "claude-x", "max_tokens": 100, "messages": messages})
    }

    #[test]
    fn e65_streamed_requests_ask_upstream_for_usage() {
        let mut req = base(json!([{"role": "user", "content": "hi"}]));
        req["stream"] = json!(true);
        let out = translate(req);
        assert_eq!(out["stream"], true);
        assert_eq!(out["stream_options"], json!({"include_usage": true}));

        let out = translate(base(json!([{"role": "user", "content": "hi"}])));
        assert!(out.get("stream").is_none() && out.get("stream_options").is_none());
    }

    #[test]
    fn e66_tool_results_come_before_the_turns_user_text() {
        let out = translate(base(json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "w", "input": {"c": "SF"}},
                {"type": "tool_use", "id": "t2", "name": "w", "input": {"c": "NY"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "15C"},
                {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "22C"}]},
                {"type": "text", "text": "ok"}]}])));
        let messages = out["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 5);
        assert_eq!(
            messages[2],
            json!({"role": "tool", "tool_call_id": "t1", "content": "15C"})
        );
        assert_eq!(
            messages[3],
            json!({"role": "tool", "tool_call_id": "t2", "content": "22C"})
        );
        assert_eq!(messages[4], json!({"role": "user", "content": "ok"}));
    }

    #[test]
    fn e67_system_blocks_become_the_first_system_message() {
        let mut req = base(json!([{"role": "user", "content": "hi"}]));
        req["system"] = json!([{"type": "text", "text": "S"}]);
        let out = translate(req);
        assert_eq!(
            out["messages"][0],
            json!({"role": "system", "content": "S"})
        );
        assert_eq!(out["messages"][1], json!({"role": "user", "content": "hi"}));

        let mut req = base(json!([{"role": "user", "content": "hi"}]));
        req["system"] = json!([{"type": "text", "text": "A"},
                               {"type": "text", "text": "B", "cache_control": {"type": "ephemeral"}}]);
        assert_eq!(translate(req)["messages"][0]["content"], "A\nB");

        let mut req = base(json!([{"role": "user", "content": "hi"}]));
        req["system"] = json!("plain");
        assert_eq!(
            translate(req)["messages"][0],
            json!({"role": "system", "content": "plain"})
        );
    }

    #[test]
    fn scalar_fields_map_and_anthropic_only_ones_drop() {
        let req = json!({
            "model": "claude-x", "max_tokens": 321, "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.5, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END", "STOP"],
            "metadata": {"user_id": "u-1"}, "thinking": {"type": "enabled", "budget_tokens": 2048},
            "service_tier": "auto"});
        let out = translate(req);
        assert_eq!(out["model"], "gpt-up");
        assert_eq!(out["max_completion_tokens"], 321);
        assert!(
            out.get("max_tokens").is_none(),
            "o-series models reject max_tokens"
        );
        assert_eq!(out["temperature"], 0.5);
        assert_eq!(out["top_p"], 0.9);
        assert_eq!(out["stop"], json!(["END", "STOP"]));
        assert_eq!(out["user"], "u-1");
        for dropped in [
            "top_k",
            "thinking",
            "metadata",
            "service_tier",
            "stop_sequences",
            "system",
        ] {
            assert!(
                out.get(dropped).is_none(),
                "{dropped} should not be forwarded"
            );
        }
    }

    #[test]
    fn tools_and_tool_choice_map_to_functions() {
        let schema = json!({"type": "object", "properties": {"c": {"type": "string"}},
                            "required": ["c"], "$defs": {"x": {"type": "integer"}}});
        let mut req = base(json!([{"role": "user", "content": "hi"}]));
        req["tools"] = json!([{"name": "w", "description": "Weather", "input_schema": schema,
                               "cache_control": {"type": "ephemeral"}}]);
        req["tool_choice"] =
            json!({"type": "tool", "name": "w", "disable_parallel_tool_use": true});
        let out = translate(req.clone());
        assert_eq!(
            out["tools"],
            json!([{"type": "function",
            "function": {"name": "w", "description": "Weather", "parameters": schema}}])
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "w"}})
        );
        assert_eq!(out["parallel_tool_calls"], false);

        for (choice, expected) in [
            (json!({"type": "auto"}), json!("auto")),
            (json!({"type": "any"}), json!("required")),
            (json!({"type": "none"}), json!("none")),
        ] {
            req["tool_choice"] = choice;
            let out = translate(req.clone());
            assert_eq!(out["tool_choice"], expected);
            assert!(out.get("parallel_tool_calls").is_none());
        }

        // Without tools OpenAI rejects tool_choice; it is dropped.
        let mut req = base(json!([{"role": "user", "content": "hi"}]));
        req["tool_choice"] = json!({"type": "none"});
        req["tools"] = json!([]);
        let out = translate(req);
        assert!(out.get("tools").is_none() && out.get("tool_choice").is_none());
    }

    #[test]
    fn assistant_tool_use_becomes_tool_calls_with_compact_json_arguments() {
        let out = translate(base(json!([
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Let me "}, {"type": "text", "text": "check"},
                {"type": "tool_use", "id": "call_1", "name": "w", "input": {"c": "SF", "n": [1, 2]}}]},
            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "x"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "call_2", "name": "z", "input": {}}]}])));
        let messages = out["messages"].as_array().unwrap();
        assert_eq!(
            messages.len(),
            3,
            "thinking-only turn is skipped: {messages:?}"
        );
        assert_eq!(messages[1]["content"], "Let me check");
        let call = &messages[1]["tool_calls"][0];
        assert_eq!(call["id"], "call_1");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "w");
        assert_eq!(call["function"]["arguments"], r#"{"c":"SF","n":[1,2]}"#);
        assert_eq!(messages[2]["content"], Value::Null);
        assert_eq!(messages[2]["tool_calls"][0]["function"]["arguments"], "{}");
    }

    #[test]
    fn images_and_pdfs_become_openai_parts() {
        let out = translate(base(json!([{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
            {"type": "document", "title": "a.pdf",
             "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}}]}])));
        assert_eq!(
            out["messages"][0]["content"],
            json!([
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
            {"type": "text", "text": "notes"}])
        );
    }

    #[test]
    fn tool_result_errors_are_prefixed_and_images_move_to_a_user_message() {
        let out = translate(base(json!([{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "is_error": true, "content": "boom"},
            {"type": "tool_result", "tool_use_id": "t2", "content": [
                {"type": "text", "text": "chart:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "PNG"}}]},
            {"type": "text", "text": "thoughts?"}]}])));
        let messages = out["messages"].as_array().unwrap();
        assert_eq!(messages[0]["content"], "Error: boom");
        assert_eq!(
            messages[1],
            json!({"role": "tool", "tool_call_id": "t2", "content": "chart:"})
        );
        assert_eq!(
            messages[2],
            json!({"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,PNG"}},
            {"type": "text", "text": "thoughts?"}]})
        );
        assert_eq!(messages.len(), 3);
    }

    #[test]
    fn invalid_requests_name_the_problem() {
        let cases = [
            (
                json!({"messages": [{"role": "user", "content": "hi"}]}),
                "max_tokens: Field required",
                "max_tokens",
            ),
            (
                json!({"max_tokens": 1, "messages": "hi"}),
                "messages: Input should be a valid list",
                "messages",
            ),
            (
                json!({"max_tokens": 1}),
                "messages: Field required",
                "messages",
            ),
            (
                json!({"max_tokens": 1, "messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "x"}]}),
                "messages.1.role: Input should be 'user' or 'assistant'",
                "messages.1.role",
            ),
            (
                json!({"max_tokens": "9", "messages": []}),
                "max_tokens: Input should be a valid integer",
                "max_tokens",
            ),
            (
                json!({"max_tokens": 1, "messages": [{"role": "user"}]}),
                "messages.0.content: Field required",
                "messages.0.content",
            ),
        ];
        for (req, message, param) in cases {
            let e = anthropic_to_openai_request(&req, "m").unwrap_err();
            assert_eq!(e.message, message);
            assert_eq!(e.param.as_deref(), Some(param));
        }
        let mut req = base(json!([{"role": "user", "content": "hi"}]));
        req["stop_sequences"] = json!(["a", "b", "c", "d", "e"]);
        let e = anthropic_to_openai_request(&req, "m").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("stop_sequences"));
        assert!(e.message.contains("at most 4"), "{}", e.message);
        req["stop_sequences"] = json!(["a", "b", "c", "d"]);
        assert_eq!(translate(req)["stop"].as_array().map(Vec::len), Some(4));

        let mut req = base(json!([{"role": "user", "content": "hi"}]));
        req["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
        let e = anthropic_to_openai_request(&req, "m").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools.0"));
        assert!(anthropic_to_openai_request(&json!([1]), "m").is_err());
    }
}
