//! The mock's deterministic answer, independent of wire format: both the OpenAI and the
//! Anthropic mock extract a `Conversation` from their request and render the `Outcome`.
//!
//! Rules: when tools are offered (and not refused) and the last user turn is not a tool
//! result, the mock calls the first tool with `{"<first property>": "<last user text>"}`;
//! after a tool result it answers "Tool said: <result>"; otherwise "You said: <text>".
//! Text is cut at `max_tokens` words (finish: length) and before any stop sequence.

use serde_json::{Value, json};

#[derive(Debug, Default)]
pub struct Conversation {
    pub last_user_text: String,
    /// The text of the tool results in the last user turn, if it holds any.
    pub tool_result: Option<String>,
    /// The first offered tool (name, JSON schema), when tool use is allowed.
    pub tool: Option<(String, Value)>,
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub prompt_tokens: u64,
}

#[derive(Debug, PartialEq)]
pub enum Finish {
    Stop,
    Length,
    StopSequence(String),
}

#[derive(Debug)]
pub enum Outcome {
    Text { words: Vec<String>, finish: Finish },
    ToolCall { name: String, arguments: Value },
}

impl Outcome {
    pub fn completion_tokens(&self) -> u64 {
        match self {
            Outcome::Text { words, .. } => words.len() as u64,
            Outcome::ToolCall { arguments, .. } => arguments.to_string().len() as u64 / 4 + 1,
        }
    }
}

pub fn answer(c: &Conversation) -> Outcome {
    if c.tool_result.is_none()
        && let Some((name, schema)) = &c.tool
    {
        let field = schema
            .pointer("/required/0")
            .and_then(Value::as_str)
            .or_else(|| {
                schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .and_then(|p| p.keys().next().map(String::as_str))
            });
        let arguments = match field {
            Some(f) => json!({ f: c.last_user_text.trim() }),
            None => json!({}),
        };
        return Outcome::ToolCall {
            name: name.clone(),
            arguments,
        };
    }
    let mut text = match &c.tool_result {
        Some(result) => format!("Tool said: {}", result.trim()),
        None if c.last_user_text.trim().is_empty() => "You said nothing.".to_owned(),
        None => format!("You said: {}", c.last_user_text.trim()),
    };
    let mut finish = Finish::Stop;
    if let Some((at, seq)) = c
        .stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at)
    {
        finish = Finish::StopSequence(seq.clone());
        text.truncate(at);
    }
    let mut words: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
    if let Some(limit) = c.max_tokens.and_then(|l| usize::try_from(l).ok())
        && limit < words.len()
    {
        words.truncate(limit);
        finish = Finish::Length;
    }
    Outcome::Text { words, finish }
}

/// A string cut in two near its middle, on a character boundary, for streaming tool
/// arguments in two fragments.
pub fn split_in_half(s: &str) -> (&str, &str) {
    let mut at = s.len() / 2;
    while !s.is_char_boundary(at) {
        at += 1;
    }
    s.split_at(at)
}

/// A rough token count for prompt usage: words plus a per-message overhead.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_is_called_with_the_first_required_property() {
        let c = Conversation {
            last_user_text: "Paris".into(),
            tool: Some((
                "get_weather".into(),
                json!({"type": "object", "properties": {"unit": {}, "city": {}}, "required": ["city"]}),
            )),
            ..Default::default()
        };
        match answer(&c) {
            Outcome::ToolCall { name, arguments } => {
                assert_eq!(name, "get_weather");
                assert_eq!(arguments, json!({"city": "Paris"}));
            }
            other => panic!("expected a tool call, got {other:?}"),
        }
    }

    #[test]
    fn stop_sequences_and_limits() {
        let c = Conversation {
            last_user_text: "alpha END beta".into(),
            stop: vec!["END".into()],
            ..Default::default()
        };
        let Outcome::Text { words, finish } = answer(&c) else {
            panic!()
        };
        assert_eq!(words.concat(), "You said: alpha ");
        assert_eq!(finish, Finish::StopSequence("END".into()));
        let c = Conversation {
            last_user_text: "a b c".into(),
            max_tokens: Some(2),
            ..Default::default()
        };
        let Outcome::Text { words, finish } = answer(&c) else {
            panic!()
        };
        assert_eq!(
            (words.concat().as_str(), finish),
            ("You said: ", Finish::Length)
        );
    }
}
