//! OpenAI `messages` → Anthropic `system` + `messages` (C.2).
//!
//! System and developer messages are hoisted; user, assistant and tool messages become
//! content blocks that are merged into strictly alternating turns, because older API
//! versions and Bedrock reject anything else (B.3, C.12.15).

use serde_json::{Map, Value, json};

use super::{Result, invalid};

/// The translated conversation.
pub(super) struct Converted {
    /// Top-level `system` text blocks, in message order (empty when there were none).
    pub system: Vec<Value>,
    /// Alternating user/assistant turns, starting with a user turn.
    pub messages: Vec<Value>,
}

/// [Rec] C.2.6: TensorZero's placeholder for a conversation that starts with the assistant.
/// Older APIs and Bedrock reject a first `assistant` turn; a neutral user turn keeps the
/// assistant text in place, where refusing would break clients that seed a greeting.
const FIRST_TURN_PLACEHOLDER: &str = "[listening]";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Assistant,
}

struct Turn {
    role: Role,
    blocks: Vec<Value>,
}

/// Which content parts a message may carry (A.3): system, developer and assistant messages
/// are text-only; user and tool messages may also carry images and files.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parts {
    Text,
    /// Text, plus `refusal` parts, which are dropped.
    AssistantText,
    Rich,
}

pub(super) fn convert(messages: Option<&Value>) -> Result<Converted> {
    let list = messages.and_then(Value::as_array).ok_or_else(|| {
        invalid(
            "messages",
            "`messages` must be an array of message objects.",
        )
    })?;
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, message) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        let msg = message
            .as_object()
            .ok_or_else(|| invalid(at.clone(), format!("{at} must be an object.")))?;
        match role(msg, &at)? {
            "system" | "developer" => system.extend(text_message(msg, &at)?),
            "user" => push(&mut turns, Role::User, user_blocks(msg, &at)?),
            "assistant" => push(&mut turns, Role::Assistant, assistant_blocks(msg, &at)?),
            "tool" => push(&mut turns, Role::User, vec![tool_result(msg, &at)?]),
            "function" => {
                return Err(invalid(
                    format!("{at}.role"),
                    format!("{at}: the deprecated `function` role is not supported; use `tool`."),
                ));
            }
            other => {
                return Err(invalid(
                    format!("{at}.role"),
                    format!(
                        "{at}: unknown role `{other}`; expected system, developer, user, \
                         assistant or tool."
                    ),
                ));
            }
        }
    }
    Ok(Converted {
        system,
        messages: finish(turns)?,
    })
}

fn role<'a>(msg: &'a Map<String, Value>, at: &str) -> Result<&'a str> {
    msg.get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}.role"), format!("{at}.role must be a string.")))
}

/// [Rec] C.2.5 / B.3: consecutive same-role messages share one turn. A message that produced
/// no blocks (e.g. empty text) is skipped, since Anthropic rejects empty content.
fn push(turns: &mut Vec<Turn>, role: Role, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.blocks.extend(blocks),
        _ => turns.push(Turn { role, blocks }),
    }
}

fn finish(mut turns: Vec<Turn>) -> Result<Vec<Value>> {
    strip_trailing_assistant(&mut turns);
    if turns.is_empty() {
        return Err(invalid(
            "messages",
            "`messages` must contain at least one user or assistant message with content.",
        ));
    }
    if turns.first().is_some_and(|t| t.role == Role::Assistant) {
        let placeholder = json!({"type": "text", "text": FIRST_TURN_PLACEHOLDER});
        turns.insert(
            0,
            Turn {
                role: Role::User,
                blocks: vec![placeholder],
            },
        );
    }
    Ok(turns.into_iter().map(turn_json).collect())
}

/// [Rec] C.2.7: a final assistant turn is kept as prefill, but Anthropic rejects it when it
/// ends in whitespace, so trailing whitespace (and any text left empty by that) goes.
fn strip_trailing_assistant(turns: &mut Vec<Turn>) {
    let Some(last) = turns.last_mut().filter(|t| t.role == Role::Assistant) else {
        return;
    };
    while let Some(text) = last.blocks.last().and_then(text_of) {
        let stripped = text.trim_end().to_owned();
        if stripped.len() == text.len() {
            break;
        }
        if stripped.is_empty() {
            last.blocks.pop();
        } else if let Some(Value::Object(block)) = last.blocks.last_mut() {
            block.insert("text".to_owned(), json!(stripped));
        }
    }
    if last.blocks.is_empty() {
        turns.pop();
    }
}

fn text_of(block: &Value) -> Option<&str> {
    if block.get("type").and_then(Value::as_str) != Some("text") {
        return None;
    }
    block.get("text").and_then(Value::as_str)
}

/// B.3: tool_result blocks must open their user turn, so they move ahead of any user text
/// merged into the same turn (order among each kind is kept).
fn turn_json(turn: Turn) -> Value {
    let (role, blocks) = match turn.role {
        Role::Assistant => ("assistant", turn.blocks),
        Role::User => {
            let (mut results, rest): (Vec<Value>, Vec<Value>) = turn
                .blocks
                .into_iter()
                .partition(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"));
            results.extend(rest);
            ("user", results)
        }
    };
    json!({"role": role, "content": blocks})
}

/// [Rec] C.2.1: system/developer text becomes one system block per message or part, so
/// `cache_control` breakpoints survive (LiteLLM's and Portkey's shape).
fn text_message(msg: &Map<String, Value>, at: &str) -> Result<Vec<Value>> {
    let mut blocks = content_blocks(msg.get("content"), at, Parts::Text)?;
    apply_message_cache_control(msg, &mut blocks);
    Ok(blocks)
}

fn user_blocks(msg: &Map<String, Value>, at: &str) -> Result<Vec<Value>> {
    let mut blocks = content_blocks(msg.get("content"), at, Parts::Rich)?;
    apply_message_cache_control(msg, &mut blocks);
    Ok(blocks)
}

/// C.2.3: text first, then one `tool_use` per tool call. `refusal`, `name` and `audio` have
/// no Anthropic equivalent and are dropped.
fn assistant_blocks(msg: &Map<String, Value>, at: &str) -> Result<Vec<Value>> {
    if msg.get("function_call").is_some_and(|f| !f.is_null()) {
        return Err(invalid(
            format!("{at}.function_call"),
            format!("{at}: the deprecated `function_call` is not supported; use `tool_calls`."),
        ));
    }
    let mut blocks = content_blocks(msg.get("content"), at, Parts::AssistantText)?;
    match msg.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            for (j, call) in calls.iter().enumerate() {
                blocks.push(tool_use(call, &format!("{at}.tool_calls[{j}]"))?);
            }
        }
        Some(_) => {
            return Err(invalid(
                format!("{at}.tool_calls"),
                format!("{at}.tool_calls must be an array."),
            ));
        }
    }
    apply_message_cache_control(msg, &mut blocks);
    Ok(blocks)
}

fn tool_use(call: &Value, at: &str) -> Result<Value> {
    let call = call
        .as_object()
        .ok_or_else(|| invalid(at, format!("{at} must be an object.")))?;
    if call
        .get("type")
        .is_some_and(|t| !t.is_null() && t != "function")
    {
        return Err(invalid(
            format!("{at}.type"),
            format!("{at}: only tool calls of type `function` are supported."),
        ));
    }
    let id = tool_id(call.get("id"), &format!("{at}.id"))?;
    let function = call.get("function");
    let name = function
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            invalid(
                format!("{at}.function.name"),
                format!("{at}.function.name must be a non-empty string."),
            )
        })?;
    let input = arguments(
        function.and_then(|f| f.get("arguments")),
        &format!("{at}.function.arguments"),
    )?;
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

/// OpenAI `arguments` is a JSON string, Anthropic `input` must be an object (C.2.3, C.12.2):
/// `""` means no arguments; anything that is not an object would be rejected upstream, so it
/// is reported here with its exact location.
fn arguments(raw: Option<&Value>, at: &str) -> Result<Value> {
    let text = match raw {
        None | Some(Value::Null) => return Ok(json!({})),
        Some(obj @ Value::Object(_)) => return Ok(obj.clone()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(json!({})),
        Some(Value::String(s)) => s,
        Some(_) => return Err(invalid(at, format!("{at} must be a JSON-encoded string."))),
    };
    match serde_json::from_str::<Value>(text) {
        Ok(obj @ Value::Object(_)) => Ok(obj),
        Ok(_) => Err(invalid(at, format!("{at} must encode a JSON object."))),
        Err(e) => Err(invalid(at, format!("{at} is not valid JSON: {e}."))),
    }
}

/// C.2.4: a tool message → a `tool_result` block. An empty result omits `content` (optional
/// in Anthropic) instead of sending empty text, which Anthropic rejects.
fn tool_result(msg: &Map<String, Value>, at: &str) -> Result<Value> {
    let id = tool_id(msg.get("tool_call_id"), &format!("{at}.tool_call_id"))?;
    let mut block = Map::new();
    block.insert("type".to_owned(), json!("tool_result"));
    block.insert("tool_use_id".to_owned(), json!(id));
    match msg.get("content") {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            block.insert("content".to_owned(), json!(s));
        }
        content @ Some(Value::Array(_)) => {
            let blocks = content_blocks(content, at, Parts::Rich)?;
            if !blocks.is_empty() {
                block.insert("content".to_owned(), Value::Array(blocks));
            }
        }
        None | Some(Value::Null | Value::String(_)) => {}
        Some(_) => {
            return Err(invalid(
                format!("{at}.content"),
                format!("{at}.content must be a string or an array of content parts."),
            ));
        }
    }
    if let Some(cc) = msg.get("cache_control").filter(|c| !c.is_null()) {
        block.insert("cache_control".to_owned(), cc.clone());
    }
    Ok(Value::Object(block))
}

/// C.2.9: ids from other providers (e.g. `functions.Bash:0`) break Anthropic's
/// `^[a-zA-Z0-9_-]+$`; rewriting both `tool_use.id` and `tool_result.tool_use_id` with the same
/// rule keeps the pairs matched.
fn tool_id(raw: Option<&Value>, at: &str) -> Result<String> {
    let id = raw
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| invalid(at, format!("{at} must be a non-empty string.")))?;
    Ok(id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect())
}

/// LiteLLM's message-level `cache_control` extension marks the message's last block.
fn apply_message_cache_control(msg: &Map<String, Value>, blocks: &mut [Value]) {
    let Some(cc) = msg.get("cache_control").filter(|c| !c.is_null()) else {
        return;
    };
    if let Some(Value::Object(last)) = blocks.last_mut() {
        last.entry("cache_control").or_insert_with(|| cc.clone());
    }
}

/// `content` as a string or an array of parts → Anthropic blocks. Null means no content
/// (allowed for assistant messages with tool calls; empty for the others).
fn content_blocks(content: Option<&Value>, at: &str, allowed: Parts) -> Result<Vec<Value>> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(text_block(s, None).into_iter().collect()),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                blocks.extend(part_block(part, &format!("{at}.content[{j}]"), allowed)?);
            }
            Ok(blocks)
        }
        Some(_) => Err(invalid(
            format!("{at}.content"),
            format!("{at}.content must be a string, an array of content parts, or null."),
        )),
    }
}

/// Anthropic rejects empty and whitespace-only text blocks (B.3, C.12.5), so such text
/// produces no block at all.
fn text_block(text: &str, cache_control: Option<&Value>) -> Option<Value> {
    if text.trim().is_empty() {
        return None;
    }
    let mut block = json!({"type": "text", "text": text});
    if let (Some(cc), Some(obj)) = (cache_control, block.as_object_mut()) {
        obj.insert("cache_control".to_owned(), cc.clone());
    }
    Some(block)
}

fn part_block(part: &Value, at: &str, allowed: Parts) -> Result<Option<Value>> {
    let part = part
        .as_object()
        .ok_or_else(|| invalid(at, format!("{at} must be an object.")))?;
    let kind = part
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{at}.type"), format!("{at}.type must be a string.")))?;
    let cache_control = part.get("cache_control").filter(|c| !c.is_null());
    match (kind, allowed) {
        ("text", _) => {
            let text = part.get("text").and_then(Value::as_str).ok_or_else(|| {
                invalid(format!("{at}.text"), format!("{at}.text must be a string."))
            })?;
            Ok(text_block(text, cache_control))
        }
        // A refusal is the model's own earlier answer; Anthropic has no such block (C.2.3).
        ("refusal", Parts::AssistantText) => Ok(None),
        ("image_url", Parts::Rich) => image_url_block(part, at, cache_control).map(Some),
        ("file", Parts::Rich) => file_block(part, at, cache_control).map(Some),
        ("input_audio", Parts::Rich) => Err(invalid(
            format!("{at}.input_audio"),
            format!("{at}: audio input is not supported by the Anthropic upstream."),
        )),
        _ => Err(invalid(
            format!("{at}.type"),
            format!("{at}: content part type `{kind}` is not supported in this message."),
        )),
    }
}

/// C.2.2: data URLs become base64 sources (PDFs as `document`); [Rec] http(s) URLs become
/// `url` sources for Anthropic to fetch — the proxy never fetches them (SSRF). `detail` has no
/// equivalent and is dropped.
fn image_url_block(part: &Map<String, Value>, at: &str, cc: Option<&Value>) -> Result<Value> {
    let url_at = format!("{at}.image_url.url");
    let url = match part.get("image_url") {
        Some(Value::String(url)) => Some(url.as_str()),
        Some(obj) => obj.get("url").and_then(Value::as_str),
        None => None,
    }
    .ok_or_else(|| invalid(url_at.clone(), format!("{url_at} must be a string.")))?;
    let block = if url.starts_with("data:") {
        let (media_type, data) = parse_data_url(url, &url_at)?;
        media_block(&media_type, data)
    } else if is_http_url(url) {
        json!({"type": "image", "source": {"type": "url", "url": url}})
    } else {
        return Err(invalid(
            url_at.clone(),
            format!("{url_at} must be an http(s) URL or a base64 data URL."),
        ));
    };
    Ok(with_cache_control(block, cc))
}

/// C.2.2: inline `file_data` (OpenAI chat accepts PDFs there) becomes a `document`; uploaded
/// `file_id`s live in OpenAI's file store, which Anthropic cannot read.
fn file_block(part: &Map<String, Value>, at: &str, cc: Option<&Value>) -> Result<Value> {
    let file = part.get("file");
    if file
        .and_then(|f| f.get("file_id"))
        .is_some_and(|id| !id.is_null())
    {
        return Err(invalid(
            format!("{at}.file.file_id"),
            format!(
                "{at}: OpenAI file ids cannot be read by the Anthropic upstream; send `file_data`."
            ),
        ));
    }
    let data_at = format!("{at}.file.file_data");
    let data = file
        .and_then(|f| f.get("file_data"))
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(data_at.clone(), format!("{data_at} must be a string.")))?;
    let block = if data.starts_with("data:") {
        let (media_type, payload) = parse_data_url(data, &data_at)?;
        if media_type != "application/pdf" && !media_type.starts_with("image/") {
            return Err(invalid(
                data_at,
                format!("{at}: file type `{media_type}` is not supported; send a PDF or an image."),
            ));
        }
        media_block(&media_type, payload)
    } else {
        // Bare base64: PDF is the only file type OpenAI chat accepts inline.
        media_block("application/pdf", data)
    };
    Ok(with_cache_control(block, cc))
}

fn media_block(media_type: &str, data: &str) -> Value {
    let kind = if media_type == "application/pdf" {
        "document"
    } else {
        "image"
    };
    json!({"type": kind, "source": {"type": "base64", "media_type": media_type, "data": data}})
}

fn with_cache_control(mut block: Value, cc: Option<&Value>) -> Value {
    if let (Some(cc), Some(obj)) = (cc, block.as_object_mut()) {
        obj.insert("cache_control".to_owned(), cc.clone());
    }
    block
}

fn is_http_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// `data:<media>[;params];base64,<payload>` → (media type, payload). Only base64 data URLs
/// are accepted because Anthropic sources carry base64. `image/jpg` is a common client
/// mistake that Anthropic rejects, so it becomes `image/jpeg`.
fn parse_data_url<'a>(url: &'a str, at: &str) -> Result<(String, &'a str)> {
    let bad = || {
        invalid(
            at,
            format!("{at} must be a base64 data URL (data:<type>;base64,<data>)."),
        )
    };
    let (meta, payload) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(','))
        .ok_or_else(bad)?;
    let mut params = meta.split(';');
    let media_type = params.next().unwrap_or("").trim().to_ascii_lowercase();
    if media_type.is_empty() || !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
        return Err(bad());
    }
    let media_type = if media_type == "image/jpg" {
        "image/jpeg".to_owned()
    } else {
        media_type
    };
    Ok((media_type, payload))
}
