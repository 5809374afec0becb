//! Placeholder until the reverse translation lands.
use bytes::BytesMut;
use serde_json::Value;

use super::{SseEvent, StreamTranslator, TranslateError};

pub fn anthropic_to_openai_request(
    req: &Value,
    upstream_model: &str,
) -> Result<Value, TranslateError> {
    let _ = (req, upstream_model);
    Err(TranslateError {
        message: "not yet".into(),
        param: None,
    })
}

pub fn openai_to_anthropic_response(resp: &Value) -> Value {
    resp.clone()
}

pub struct OpenAiToAnthropic;

impl OpenAiToAnthropic {
    pub fn new(model: &str) -> Self {
        let _ = model;
        OpenAiToAnthropic
    }
}

impl StreamTranslator for OpenAiToAnthropic {
    fn on_event(&mut self, _: &SseEvent, _: &mut BytesMut) {}
    fn on_end(&mut self, _: &mut BytesMut) {}
    fn on_error(&mut self, _: &str, _: &mut BytesMut) {}
}
