//! `LLM_KEYS` parsing and validation: the raw JSON array → a list of validated key entries.
//!
//! Every problem is collected with its entry index and field before failing, so a user fixes
//! their config in one go. No message ever contains a key value.

use serde_json::{Map, Value};

use crate::provider::Provider;
use crate::secret::Secret;

/// One validated entry of `LLM_KEYS`.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub provider: Provider,
    /// The name clients send in `model`.
    pub model: String,
    /// The provider's own model id; equals `model` unless the entry overrides it.
    pub upstream_model: String,
    /// Base URL without a trailing slash; empty for the `mock` provider.
    pub base_url: String,
    pub api_key: Secret,
    /// A label for logs and metrics, never the key itself.
    pub label: String,
    /// Default `max_tokens` for providers that require one (Anthropic).
    pub max_tokens: Option<u64>,
}

const FIELDS: [&str; 7] = [
    "api_key",
    "model",
    "provider",
    "base_url",
    "upstream_model",
    "name",
    "max_tokens",
];

/// Parses and validates the JSON text of `LLM_KEYS` (or of the file `LLM_KEYS_FILE` names).
/// `source` names where the text came from, for messages.
pub fn parse_keys(text: &str, source: &str) -> Result<Vec<KeySpec>, Vec<String>> {
    let value: Value = serde_json::from_str(text)
        // serde_json's syntax errors carry a position, never the offending text.
        .map_err(|e| vec![format!("{source} is not valid JSON: {e}")])?;
    let Value::Array(entries) = value else {
        return Err(vec![format!(
            "{source} must be a JSON array of {{\"api_key\", \"model\", \"provider\"}} objects, found {}",
            kind(&value)
        )]);
    };
    if entries.is_empty() {
        return Err(vec![format!(
            "{source} is an empty array: add at least one key"
        )]);
    }

    let mut problems = Vec::new();
    let mut specs = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let mut report = |field: &str, msg: String| {
            problems.push(format!("{source} entry {index}: field `{field}`: {msg}"));
        };
        let Value::Object(obj) = entry else {
            problems.push(format!(
                "{source} entry {index}: must be an object, found {}",
                kind(entry)
            ));
            continue;
        };
        if let Some(spec) = validate_entry(obj, &mut report) {
            specs.push(spec);
        }
    }
    assign_default_labels(&mut specs);
    check_unique_labels(&specs, source, &mut problems);
    // Only for keys long enough to be real: short placeholders (`k1`, `local`) used as their
    // own names in tests and demos are harmless.
    for (index, spec) in specs.iter().enumerate() {
        if spec.api_key.expose().len() >= 20 && spec.api_key.expose() == spec.label {
            problems.push(format!(
                "{source}: the `name` of a key must not be the key itself (it is shown in logs); see entry {index}"
            ));
        }
    }

    if problems.is_empty() {
        Ok(specs)
    } else {
        Err(scrub_keys(problems, &entries))
    }
}

fn validate_entry(
    obj: &Map<String, Value>,
    report: &mut impl FnMut(&str, String),
) -> Option<KeySpec> {
    for field in obj.keys() {
        if !FIELDS.contains(&field.as_str()) {
            report(
                &printable(field),
                format!("unknown field (known fields: {})", FIELDS.join(", ")),
            );
        }
    }

    let api_key = match obj.get("api_key") {
        None => {
            report("api_key", "missing".into());
            None
        }
        Some(Value::String(s)) if !s.bytes().all(|b| b.is_ascii_graphic()) => {
            // A key travels in an HTTP header; a pasted trailing newline would otherwise
            // surface much later as a confusing 401.
            report(
                "api_key",
                "contains whitespace or non-ASCII characters (check for a trailing newline or space)".into(),
            );
            None
        }
        Some(Value::String(s)) => Some(Secret::new(s.as_str())),
        Some(other) => {
            report(
                "api_key",
                format!("must be a string, found {}", kind(other)),
            );
            None
        }
    };
    let model = required_name(obj, "model", report);
    let provider = match obj.get("provider") {
        None => {
            report(
                "provider",
                format!("missing (valid: {})", Provider::valid_names()),
            );
            None
        }
        Some(Value::String(name)) => {
            let found = Provider::from_name(name);
            if found.is_none() {
                report(
                    "provider",
                    format!(
                        "unknown provider {} (valid: {})",
                        quoted_if_safe(name),
                        Provider::valid_names()
                    ),
                );
            }
            found
        }
        Some(other) => {
            report(
                "provider",
                format!("must be a string, found {}", kind(other)),
            );
            None
        }
    };
    let upstream_model = optional_name(obj, "upstream_model", report);
    let name = optional_name(obj, "name", report);
    let max_tokens = match obj.get("max_tokens") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v > 0) => n.as_u64(),
        Some(_) => {
            report("max_tokens", "must be a positive integer".into());
            None
        }
    };
    let base_url = match obj.get("base_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match check_base_url(s) {
            Ok(url) => Some(url),
            Err(msg) => {
                report("base_url", msg);
                None
            }
        },
        Some(other) => {
            report(
                "base_url",
                format!("must be a string, found {}", kind(other)),
            );
            None
        }
    };

    let provider = provider?;
    if let Some(key) = &api_key
        && key.is_empty()
        && !provider.allows_empty_key()
    {
        report(
            "api_key",
            "is empty (only ollama, openai-compatible and mock keys may be empty)".into(),
        );
    }
    let base_url = match (base_url, provider.default_base_url()) {
        (Some(url), _) => url,
        (None, Some(default)) => default.to_owned(),
        (None, None) if provider == Provider::Mock => String::new(),
        (None, None) => {
            report(
                "base_url",
                format!("required for provider {}", provider.name()),
            );
            return None;
        }
    };
    let (api_key, model) = (api_key?, model?);
    if api_key.is_empty() && !provider.allows_empty_key() {
        return None;
    }
    Some(KeySpec {
        provider,
        upstream_model: upstream_model.unwrap_or_else(|| model.clone()),
        model,
        base_url,
        api_key,
        label: name.unwrap_or_default(),
        max_tokens,
    })
}

fn required_name(
    obj: &Map<String, Value>,
    field: &str,
    report: &mut impl FnMut(&str, String),
) -> Option<String> {
    match obj.get(field) {
        None => {
            report(field, "missing".into());
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            report(field, "is empty".into());
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            report(field, format!("must be a string, found {}", kind(other)));
            None
        }
    }
}

fn optional_name(
    obj: &Map<String, Value>,
    field: &str,
    report: &mut impl FnMut(&str, String),
) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(_) => required_name(obj, field, report),
    }
}

/// Accepts an absolute http(s) URL with a host and no query or fragment; returns it without a
/// trailing slash so paths can be appended with `format!("{base}/…")`.
fn check_base_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let uri: http::Uri = trimmed
        .parse()
        .map_err(|_| "is not a valid URL (expected e.g. https://host/v1)".to_owned())?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("must start with http:// or https://".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if uri.query().is_some() || trimmed.contains('#') {
        return Err("must not contain a query string or fragment".into());
    }
    Ok(trimmed.to_owned())
}

/// Default labels are the masked key prefixed by the provider; collisions get `#2`, `#3`…
/// so every label names exactly one key.
fn assign_default_labels(specs: &mut [KeySpec]) {
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for spec in specs.iter().filter(|s| !s.label.is_empty()) {
        seen.insert(spec.label.clone(), 1);
    }
    for spec in specs.iter_mut().filter(|s| s.label.is_empty()) {
        let base = spec.api_key.masked(spec.provider.name());
        let n = seen.entry(base.clone()).or_insert(0);
        *n += 1;
        spec.label = if *n == 1 { base } else { format!("{base}#{n}") };
    }
}

/// Removes every key value from the messages, wherever the user put it: a key pasted into
/// `provider`, `name` or a field name must not come back in an error. Keys shorter than 8
/// characters are left alone (they would garble ordinary words, and are not real keys).
fn scrub_keys(problems: Vec<String>, entries: &[Value]) -> Vec<String> {
    let keys: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.get("api_key").and_then(Value::as_str))
        .filter(|k| k.len() >= 8)
        .collect();
    problems
        .into_iter()
        .map(|mut m| {
            for key in &keys {
                m = m.replace(key, "(value not shown)");
            }
            m
        })
        .collect()
}

fn check_unique_labels(specs: &[KeySpec], source: &str, problems: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    for spec in specs {
        if !seen.insert(spec.label.as_str()) {
            problems.push(format!(
                "{source}: field `name`: {:?} is used by more than one entry; names must be unique",
                spec.label
            ));
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Echoes a user-supplied name only when it cannot be a misplaced secret: short and made of
/// the characters provider names use. Anything else is described, not printed.
fn quoted_if_safe(s: &str) -> String {
    if s.len() <= 24
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        format!("{s:?}")
    } else {
        "(value not shown)".to_owned()
    }
}

fn printable(field: &str) -> String {
    let shown = quoted_if_safe(field);
    shown.trim_matches('"').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        parse_keys(text, "LLM_KEYS").expect_err("config should be rejected")
    }

    #[test]
    fn parses_the_documented_example() {
        let text = r#"[{"api_key": "OPENAI_KEY_1", "model": "gpt-4o", "provider": "openai"},
            {"api_key": "OPENAI_KEY_2", "model": "gpt-4o", "provider": "openai"},
            {"api_key": "ANTHROPIC_1", "model": "claude-3-7-sonnet", "provider": "anthropic"}]"#;
        let keys = parse_keys(text, "LLM_KEYS").expect("valid");
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0].label, "openai…Y_1");
        assert_eq!(keys[1].label, "openai…Y_2");
        assert_eq!(keys[0].base_url, "https://api.openai.com/v1");
        assert_eq!(keys[0].upstream_model, "gpt-4o");
        assert_eq!(keys[2].provider, Provider::Anthropic);
        assert_eq!(keys[2].base_url, "https://api.anthropic.com");
        assert_eq!(keys[2].label, "anthropic…");
    }

    #[test]
    fn optional_fields_override_defaults() {
        let text = r#"[{"api_key": "k", "model": "fast", "provider": "groq",
            "base_url": "http://127.0.0.1:9000/v1/", "upstream_model": "llama-3.1-8b", "name": "team-a"}]"#;
        let keys = parse_keys(text, "LLM_KEYS").expect("valid");
        assert_eq!(keys[0].base_url, "http://127.0.0.1:9000/v1");
        assert_eq!(keys[0].upstream_model, "llama-3.1-8b");
        assert_eq!(keys[0].label, "team-a");
    }

    #[test]
    fn colliding_default_labels_are_numbered() {
        let text = r#"[{"api_key": "aaaaaaaaaaaa-xyz", "model": "m", "provider": "openai"},
            {"api_key": "bbbbbbbbbbbb-xyz", "model": "m", "provider": "openai"}]"#;
        let keys = parse_keys(text, "LLM_KEYS").expect("valid");
        assert_eq!(keys[0].label, "openai…xyz");
        assert_eq!(keys[1].label, "openai…xyz#2");
    }

    #[test]
    fn every_problem_is_reported_with_index_and_field() {
        let text = r#"[{"model": "m", "provider": "openai"},
            {"api_key": "k", "model": "", "provider": "openai"},
            {"api_key": "k", "model": "m", "provider": "opnai"},
            {"api_key": "k", "model": "m", "provider": "openai", "base_url": "ftp://x"},
            {"api_key": "k", "model": "m", "provider": "openai-compatible"},
            {"api_key": "k", "model": "m", "provider": "openai", "base_ur": "http://x"},
            "not an object"]"#;
        let p = problems(text);
        let expect = [
            "entry 0: field `api_key`: missing",
            "entry 1: field `model`: is empty",
            "entry 2: field `provider`: unknown provider \"opnai\" (valid: openai, anthropic,",
            "entry 3: field `base_url`: must start with http:// or https://",
            "entry 4: field `base_url`: required for provider openai-compatible",
            "entry 5: field `base_ur`: unknown field",
            "entry 6: must be an object, found a string",
        ];
        for e in expect {
            assert!(p.iter().any(|m| m.contains(e)), "missing {e:?} in {p:#?}");
        }
        assert_eq!(p.len(), expect.len(), "{p:#?}");
    }

    #[test]
    fn not_an_array_and_not_json() {
        assert!(problems(r#"{"api_key": "k"}"#)[0].contains("must be a JSON array"));
        assert!(
            problems("[{")
                .iter()
                .any(|m| m.contains("is not valid JSON"))
        );
        assert!(problems("[]")[0].contains("empty array"));
    }

    #[test]
    fn empty_key_only_for_local_providers() {
        assert!(
            parse_keys(
                r#"[{"api_key": "", "model": "llama3", "provider": "ollama"}]"#,
                "X"
            )
            .is_ok()
        );
        let p = problems(r#"[{"api_key": "", "model": "gpt-4o", "provider": "openai"}]"#);
        assert!(p[0].contains("entry 0: field `api_key`: is empty"), "{p:?}");
    }

    #[test]
    fn messages_never_contain_key_values() {
        let secret = "sk-live-SECRET-VALUE-123456";
        let text = format!(
            r#"[{{"api_key": "{secret}", "model": 5, "provider": "{secret}", "base_url": "{secret}"}},
               {{"api_key": "{secret}", "model": "m", "provider": "openai", "{secret}": 1}}]"#
        );
        let p = problems(&text);
        assert!(p.len() >= 4, "{p:#?}");
        for m in &p {
            assert!(!m.contains("SECRET"), "leaked: {m}");
        }
    }

    #[test]
    fn keys_with_whitespace_are_rejected() {
        let p =
            problems("[{\"api_key\": \"sk-abc\\n\", \"model\": \"m\", \"provider\": \"openai\"}]");
        assert!(
            p[0].contains("entry 0: field `api_key`: contains whitespace"),
            "{p:?}"
        );
    }

    #[test]
    fn a_key_pasted_into_another_field_is_never_echoed() {
        for text in [
            r#"[{"api_key":"abcdef123456","model":"m","provider":"abcdef123456"}]"#,
            r#"[{"api_key":"abcdef123456","model":"m","provider":"openai","abcdef123456":1}]"#,
            r#"[{"api_key":"abcdef123456","model":"m","provider":"openai","name":"abcdef123456"},
                {"api_key":"other-key-9999","model":"m","provider":"openai","name":"abcdef123456"}]"#,
        ] {
            let p = problems(text);
            assert!(p.iter().all(|m| !m.contains("abcdef123456")), "{p:?}");
        }
        let p = problems(
            r#"[{"api_key":"sk-real-looking-0123456789","model":"m","provider":"openai","name":"sk-real-looking-0123456789"}]"#,
        );
        assert!(
            p.iter().any(|m| m.contains("must not be the key itself")),
            "{p:?}"
        );
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let p = problems(
            r#"[{"api_key": "a", "model": "m", "provider": "openai", "name": "x"},
                {"api_key": "b", "model": "m", "provider": "openai", "name": "x"}]"#,
        );
        assert!(p[0].contains("used by more than one entry"), "{p:?}");
    }
}
