//! Placeholder until the OpenAI → Anthropic request translation lands.
use serde_json::Value;

use super::TranslateError;

pub fn openai_to_anthropic(
    req: &Value,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Value, TranslateError> {
    let _ = (req, upstream_model, default_max_tokens);
    Err(TranslateError {
        message: "not yet".into(),
        param: None,
    })
}
