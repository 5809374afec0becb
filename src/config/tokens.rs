//! Client tokens: `KEYRELAY_TOKENS` (comma-separated) or `KEYRELAY_TOKENS_FILE` (a JSON array
//! of `{"token", "name", "models"}`), validated like the key list: every problem reported
//! with its position, no token ever printed.

use serde_json::Value;

use crate::metrics::intern;
use crate::secret::Secret;

/// One client token, with the name logs and metrics show instead of it.
#[derive(Debug, Clone)]
pub struct ClientToken {
    pub token: Secret,
    /// Interned: it labels metrics for the life of the process.
    pub name: &'static str,
    /// Model names this token may use; `None` for all.
    pub models: Option<Vec<String>>,
}

impl ClientToken {
    pub fn allows(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|models| models.iter().any(|m| m == model))
    }
}

/// `KEYRELAY_TOKENS`: `tok1,tok2`; names are `token-1`, `token-2`, by position.
pub fn parse_token_list(text: &str) -> Result<Vec<ClientToken>, Vec<String>> {
    let mut problems = Vec::new();
    let tokens: Vec<ClientToken> = text
        .split(',')
        .map(str::trim)
        .enumerate()
        .filter_map(|(i, t)| match check_token(t) {
            Ok(()) => Some(ClientToken {
                token: Secret::new(t),
                name: intern(&format!("token-{}", i + 1)),
                models: None,
            }),
            Err(e) => {
                problems.push(format!("KEYRELAY_TOKENS token {}: {e}", i + 1));
                None
            }
        })
        .collect();
    finish(tokens, problems, "KEYRELAY_TOKENS")
}

/// `KEYRELAY_TOKENS_FILE`'s JSON array.
pub fn parse_token_file(text: &str) -> Result<Vec<ClientToken>, Vec<String>> {
    const SOURCE: &str = "KEYRELAY_TOKENS_FILE";
    let Ok(Value::Array(entries)) = serde_json::from_str::<Value>(text) else {
        return Err(vec![format!(
            "{SOURCE} must hold a JSON array of {{\"token\", \"name\", \"models\"}} objects"
        )]);
    };
    let mut problems = Vec::new();
    let mut tokens = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let mut report = |field: &str, msg: &str| {
            problems.push(format!("{SOURCE} entry {i}: field `{field}`: {msg}"));
        };
        let Some(obj) = entry.as_object() else {
            problems.push(format!("{SOURCE} entry {i}: must be an object"));
            continue;
        };
        for field in obj.keys() {
            if !["token", "name", "models"].contains(&field.as_str()) {
                report(
                    "(unknown)",
                    "unknown field (known fields: token, name, models)",
                );
            }
        }
        let token = match obj.get("token").and_then(Value::as_str) {
            None => {
                report("token", "missing or not a string");
                None
            }
            Some(t) => match check_token(t) {
                Ok(()) => Some(Secret::new(t)),
                Err(e) => {
                    report("token", e);
                    None
                }
            },
        };
        let name = match obj.get("name") {
            None | Some(Value::Null) => Some(intern(&format!("token-{}", i + 1))),
            Some(Value::String(n)) if !n.trim().is_empty() => Some(intern(n)),
            Some(_) => {
                report("name", "must be a non-empty string");
                None
            }
        };
        let models = match obj.get("models") {
            None | Some(Value::Null) => Some(None),
            Some(Value::Array(list)) if list.iter().all(Value::is_string) => Some(Some(
                list.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            )),
            Some(_) => {
                report("models", "must be an array of model names");
                None
            }
        };
        if let (Some(token), Some(name), Some(models)) = (token, name, models) {
            tokens.push(ClientToken {
                token,
                name,
                models,
            });
        }
    }
    finish(tokens, problems, SOURCE)
}

fn check_token(t: &str) -> Result<(), &'static str> {
    if t.len() < 8 {
        return Err("is shorter than 8 characters");
    }
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("contains whitespace or non-ASCII characters");
    }
    Ok(())
}

fn finish(
    tokens: Vec<ClientToken>,
    mut problems: Vec<String>,
    source: &str,
) -> Result<Vec<ClientToken>, Vec<String>> {
    for (i, a) in tokens.iter().enumerate() {
        if tokens[..i].iter().any(|b| b.token == a.token) {
            problems.push(format!(
                "{source}: token `{}` repeats an earlier token",
                a.name
            ));
        }
        if tokens[..i].iter().any(|b| b.name == a.name) {
            problems.push(format!("{source}: name {:?} is used twice", a.name));
        }
    }
    if tokens.is_empty() && problems.is_empty() {
        problems.push(format!("{source} is set but holds no token"));
    }
    if problems.is_empty() {
        Ok(tokens)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_names_tokens_by_position() {
        let t = parse_token_list("alpha-token-1, beta-token-2").expect("valid");
        assert_eq!(t[1].name, "token-2");
        assert_eq!(t[1].token.expose(), "beta-token-2");
        assert!(t[0].allows("anything"));
    }

    #[test]
    fn file_entries_restrict_models() {
        let t = parse_token_file(
            r#"[{"token": "team-a-secret", "name": "team-a", "models": ["gpt-4o"]}]"#,
        )
        .expect("valid");
        assert!(t[0].allows("gpt-4o"));
        assert!(!t[0].allows("claude"));
    }

    #[test]
    fn problems_are_reported_without_tokens() {
        let p = parse_token_file(
            r#"[{"token": "short"}, {"token": "dup-secret-1"}, {"token": "dup-secret-1", "name": "x"}, {"name": "n"}, 3]"#,
        )
        .expect_err("invalid");
        assert!(
            p.iter()
                .any(|m| m.contains("entry 0: field `token`: is shorter")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.contains("repeats an earlier token")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("entry 3: field `token`: missing")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|m| m.contains("entry 4: must be an object")),
            "{p:?}"
        );
        assert!(p.iter().all(|m| !m.contains("dup-secret-1")), "{p:?}");
        assert!(parse_token_list(" , ").is_err());
    }
}
