//! OpenAI Chat Completions request → Anthropic Messages request (C.1–C.5).
//!
//! The messages themselves are converted in `request/messages.rs`; this file maps the
//! top-level parameters (sampling, tools, response format, reasoning) and assembles the body.
//! Anything Anthropic cannot express faithfully is a `TranslateError` naming the parameter,
//! never a silent change of meaning; OpenAI-only knobs with no effect on the answer's shape
//! (E.10) are dropped.

mod messages;

use serde_json::{Map, Value, json};

use super::TranslateError;

type Result<T> = std::result::Result<T, TranslateError>;

/// Translates an OpenAI Chat Completions request body into an Anthropic Messages body for
/// `upstream_model`. `default_max_tokens` is used when the client sets no token limit,
/// because Anthropic requires one (C.5).
pub fn openai_to_anthropic(
    req: &Value,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Value> {
    let req = req.as_object().ok_or_else(|| TranslateError {
        message: "The request body must be a JSON object.".to_owned(),
        param: None,
    })?;
    reject_legacy_functions(req)?;
    let converted = messages::convert(req.get("messages"))?;

    let mut out = Map::new();
    out.insert("model".to_owned(), json!(upstream_model));
    if !converted.system.is_empty() {
        out.insert("system".to_owned(), Value::Array(converted.system));
    }
    out.insert("messages".to_owned(), Value::Array(converted.messages));
    map_sampling(req, &mut out, default_max_tokens)?;
    map_tools(req, &mut out)?;
    map_response_format(req, &mut out)?;
    map_user(req, &mut out);
    pass_extensions(req, &mut out);
    map_reasoning_effort(req, &mut out)?;
    fit_thinking(&mut out);
    Ok(Value::Object(out))
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError {
        message: message.into(),
        param: Some(param.into()),
    }
}

/// A request field, with JSON `null` treated as absent (OpenAI documents every optional
/// field as nullable).
fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// Legacy `functions`/`function_call` would need invented tool ids to round-trip; dropping them
/// would silently take the tools away from the model, so the client is told instead.
fn reject_legacy_functions(req: &Map<String, Value>) -> Result<()> {
    for param in ["functions", "function_call"] {
        if field(req, param).is_some() {
            return Err(invalid(
                param,
                format!(
                    "`{param}` is deprecated and not supported here; use `tools`/`tool_choice`."
                ),
            ));
        }
    }
    Ok(())
}

fn map_sampling(
    req: &Map<String, Value>,
    out: &mut Map<String, Value>,
    default_max_tokens: u64,
) -> Result<()> {
    out.insert(
        "max_tokens".to_owned(),
        json!(max_tokens(req)?.unwrap_or(default_max_tokens)),
    );
    if let Some(t) = field(req, "temperature") {
        out.insert("temperature".to_owned(), clamp_temperature(t)?);
    }
    if let Some(p) = field(req, "top_p") {
        if !p.is_number() {
            return Err(invalid("top_p", "`top_p` must be a number."));
        }
        out.insert("top_p".to_owned(), p.clone());
    }
    if let Some(stops) = stop_sequences(req)? {
        out.insert("stop_sequences".to_owned(), stops);
    }
    if let Some(Value::Bool(stream)) = field(req, "stream") {
        out.insert("stream".to_owned(), json!(stream));
    }
    check_n(req)
}

/// [Rec] C.1: `max_completion_tokens` wins over the deprecated `max_tokens` when both are set.
fn max_tokens(req: &Map<String, Value>) -> Result<Option<u64>> {
    for param in ["max_completion_tokens", "max_tokens"] {
        if let Some(v) = field(req, param) {
            return v.as_u64().map(Some).ok_or_else(|| {
                invalid(param, format!("`{param}` must be a non-negative integer."))
            });
        }
    }
    Ok(None)
}

/// [Rec] C.1: OpenAI allows 0–2, Anthropic rejects anything above 1, so clamp like
/// Anthropic's own compatibility layer rather than forward a guaranteed 400.
fn clamp_temperature(t: &Value) -> Result<Value> {
    let value = t
        .as_f64()
        .ok_or_else(|| invalid("temperature", "`temperature` must be a number."))?;
    Ok(if value > 1.0 {
        json!(1)
    } else if value < 0.0 {
        json!(0)
    } else {
        t.clone()
    })
}

/// Anthropic rejects whitespace-only stop sequences (C.1, E.8), so they are dropped; the key is
/// omitted when nothing is left.
fn stop_sequences(req: &Map<String, Value>) -> Result<Option<Value>> {
    let stops: Vec<&Value> = match field(req, "stop") {
        None => return Ok(None),
        Some(one @ Value::String(_)) => vec![one],
        Some(Value::Array(many)) => many.iter().collect(),
        Some(_) => {
            return Err(invalid(
                "stop",
                "`stop` must be a string or an array of strings.",
            ));
        }
    };
    let mut kept = Vec::new();
    for stop in stops {
        let s = stop
            .as_str()
            .ok_or_else(|| invalid("stop", "`stop` must be a string or an array of strings."))?;
        if !s.trim().is_empty() {
            kept.push(json!(s));
        }
    }
    Ok((!kept.is_empty()).then_some(Value::Array(kept)))
}

/// [Rec] C.1: Anthropic returns exactly one choice, so `n > 1` is refused rather than
/// answered with fewer choices than asked for.
fn check_n(req: &Map<String, Value>) -> Result<()> {
    match field(req, "n") {
        None => Ok(()),
        Some(n) if n.as_u64() == Some(1) => Ok(()),
        Some(_) => Err(invalid(
            "n",
            "Only `n: 1` is supported for this model: the Anthropic upstream returns a single choice.",
        )),
    }
}

fn map_tools(req: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<()> {
    let no_tools = Vec::new();
    let tools = match field(req, "tools") {
        None => &no_tools,
        Some(Value::Array(tools)) => tools,
        Some(_) => {
            return Err(invalid(
                "tools",
                "`tools` must be an array of tool objects.",
            ));
        }
    };
    let converted = tools
        .iter()
        .enumerate()
        .map(|(i, tool)| tool_definition(tool, &format!("tools[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let choice = tool_choice(req)?;
    // Without tools there is nothing for `tool_choice` to refer to, so it is dropped with them.
    if converted.is_empty() {
        return Ok(());
    }
    out.insert("tools".to_owned(), Value::Array(converted));
    if let Some(choice) = choice {
        out.insert("tool_choice".to_owned(), choice);
    }
    Ok(())
}

/// C.3. [Rec] The schema is passed through unchanged: rebuilding it from known keys (as
/// Portkey does) silently loses `$defs`, `enum` constraints and the like. `strict` is dropped
/// because older Anthropic models reject unknown tool fields.
fn tool_definition(tool: &Value, at: &str) -> Result<Value> {
    let kind = tool.get("type").and_then(Value::as_str);
    if kind != Some("function") {
        return Err(invalid(
            format!("{at}.type"),
            format!("{at}: only tools of type `function` are supported."),
        ));
    }
    let function = tool
        .get("function")
        .filter(|f| f.is_object())
        .ok_or_else(|| {
            invalid(
                format!("{at}.function"),
                format!("{at}.function must be an object."),
            )
        })?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            invalid(
                format!("{at}.function.name"),
                format!("{at}.function.name must be a non-empty string."),
            )
        })?;
    let schema = match function.get("parameters") {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => {
            return Err(invalid(
                format!("{at}.function.parameters"),
                format!("{at}.function.parameters must be a JSON Schema object."),
            ));
        }
    };
    let mut def = Map::new();
    def.insert("name".to_owned(), json!(name));
    if let Some(description) = function.get("description").filter(|d| d.is_string()) {
        def.insert("description".to_owned(), description.clone());
    }
    def.insert("input_schema".to_owned(), schema);
    // Extension (LiteLLM-compatible): a prompt-cache breakpoint on the tool definition.
    if let Some(cc) = tool
        .get("cache_control")
        .or_else(|| function.get("cache_control"))
    {
        def.insert("cache_control".to_owned(), cc.clone());
    }
    Ok(Value::Object(def))
}

/// C.3 / E.15–E.16: `tool_choice` plus `parallel_tool_calls: false` →
/// `disable_parallel_tool_use: true` on the choice (which defaults to `auto` when absent).
/// `none` cannot carry the flag, and `parallel_tool_calls: true` is already Anthropic's default.
fn tool_choice(req: &Map<String, Value>) -> Result<Option<Value>> {
    let parallel = match field(req, "parallel_tool_calls") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(invalid(
                "parallel_tool_calls",
                "`parallel_tool_calls` must be a boolean.",
            ));
        }
    };
    let mut choice = match field(req, "tool_choice") {
        None => None,
        Some(c) => Some(anthropic_tool_choice(c)?),
    };
    if !parallel {
        let c = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if let Some(obj) = c
            .as_object_mut()
            .filter(|o| o.get("type") != Some(&json!("none")))
        {
            obj.insert("disable_parallel_tool_use".to_owned(), json!(true));
        }
    }
    Ok(choice)
}

fn anthropic_tool_choice(choice: &Value) -> Result<Value> {
    let bad = || {
        invalid(
            "tool_choice",
            "`tool_choice` must be \"auto\", \"required\", \"none\" or \
             {\"type\": \"function\", \"function\": {\"name\": …}}.",
        )
    };
    match choice {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(json!({"type": "auto"})),
            "required" => Ok(json!({"type": "any"})),
            "none" => Ok(json!({"type": "none"})),
            _ => Err(bad()),
        },
        Value::Object(obj) if obj.get("type") == Some(&json!("function")) => obj
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|name| json!({"type": "tool", "name": name}))
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// C.4. [Rec] `json_schema` uses Anthropic's native structured output. `json_object` is
/// dropped: Anthropic has no schema-less JSON mode, OpenAI already requires the prompt itself
/// to ask for JSON in that mode, and the forced-tool emulation would change the response shape
/// the other translators must then undo.
fn map_response_format(req: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<()> {
    let Some(format) = field(req, "response_format") else {
        return Ok(());
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text" | "json_object") => Ok(()),
        Some("json_schema") => {
            let schema = format
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .filter(|s| s.is_object())
                .ok_or_else(|| {
                    invalid(
                        "response_format.json_schema.schema",
                        "`response_format.json_schema.schema` must be a JSON Schema object.",
                    )
                })?;
            out.insert(
                "output_config".to_owned(),
                json!({"format": {"type": "json_schema", "schema": schema}}),
            );
            Ok(())
        }
        _ => Err(invalid(
            "response_format.type",
            "`response_format.type` must be \"text\", \"json_object\" or \"json_schema\".",
        )),
    }
}

/// [Rec] C.1 / E.12: `safety_identifier` (or the deprecated `user`) becomes
/// `metadata.user_id`, except values that look like personal data, which Anthropic's terms
/// forbid there (LiteLLM's rule).
fn map_user(req: &Map<String, Value>, out: &mut Map<String, Value>) {
    let id = field(req, "safety_identifier")
        .or_else(|| field(req, "user"))
        .and_then(Value::as_str)
        .filter(|id| !id.trim().is_empty() && !looks_like_email(id) && !looks_like_phone(id));
    if let Some(id) = id {
        out.insert("metadata".to_owned(), json!({"user_id": id}));
    }
}

fn looks_like_email(s: &str) -> bool {
    s.split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
}

/// Digits with the usual phone punctuation, 7–15 digits (E.164 allows at most 15).
fn looks_like_phone(s: &str) -> bool {
    let s = s.trim();
    let body = s.strip_prefix('+').unwrap_or(s);
    let digits = body.chars().filter(char::is_ascii_digit).count();
    let only_phone_chars = body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'));
    only_phone_chars && (7..=15).contains(&digits)
}

/// Anthropic-only parameters that OpenAI-format clients send to reach Claude features
/// (C.1 extensions, accepted by LiteLLM and Portkey too). Anthropic validates them.
fn pass_extensions(req: &Map<String, Value>, out: &mut Map<String, Value>) {
    for key in ["top_k", "thinking", "cache_control"] {
        if let Some(v) = field(req, key) {
            out.insert(key.to_owned(), v.clone());
        }
    }
}

/// C.1: LiteLLM's effort → thinking budgets. An explicit `thinking` extension is more specific
/// and wins. `xhigh`/`max` have no published budget, so they get `high`'s rather than a refusal.
fn map_reasoning_effort(req: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<()> {
    if out.contains_key("thinking") {
        return Ok(());
    }
    let Some(effort) = field(req, "reasoning_effort") else {
        return Ok(());
    };
    let budget: u64 = match effort.as_str() {
        Some("none" | "minimal") => return Ok(()),
        Some("low") => 1024,
        Some("medium") => 2048,
        Some("high" | "xhigh" | "max") => 4096,
        _ => {
            return Err(invalid(
                "reasoning_effort",
                "`reasoning_effort` must be one of none, minimal, low, medium, high, xhigh, max.",
            ));
        }
    };
    out.insert(
        "thinking".to_owned(),
        json!({"type": "enabled", "budget_tokens": budget}),
    );
    Ok(())
}

/// Makes a thinking request acceptable to Anthropic (B.2, B.5): `budget_tokens` must be below
/// `max_tokens`, and `temperature`/`top_k` may not be changed (`top_p` only within 0.95–1).
/// When the limit is too small it is raised to budget + limit: OpenAI's limit includes the
/// reasoning, so the client's number is kept for the visible answer on top of the budget.
fn fit_thinking(out: &mut Map<String, Value>) {
    let Some(thinking) = out.get("thinking") else {
        return;
    };
    if !matches!(
        thinking.get("type").and_then(Value::as_str),
        Some("enabled" | "adaptive")
    ) {
        return;
    }
    if let Some(budget) = thinking.get("budget_tokens").and_then(Value::as_u64) {
        let limit = out.get("max_tokens").and_then(Value::as_u64).unwrap_or(0);
        if limit <= budget {
            out.insert(
                "max_tokens".to_owned(),
                json!(budget.saturating_add(limit.max(1))),
            );
        }
    }
    out.remove("temperature");
    out.remove("top_k");
    if out
        .get("top_p")
        .and_then(Value::as_f64)
        .is_some_and(|p| p < 0.95)
    {
        out.remove("top_p");
    }
}

#[cfg(test)]
mod tests;
