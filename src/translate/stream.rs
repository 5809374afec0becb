//! Placeholder until the Anthropic → OpenAI stream translation lands.
use bytes::BytesMut;

use super::{SseEvent, StreamTranslator};

pub struct AnthropicToOpenAi;

impl AnthropicToOpenAi {
    pub fn new(include_usage: bool, created: u64, model: &str) -> Self {
        let _ = (include_usage, created, model);
        AnthropicToOpenAi
    }
}

impl StreamTranslator for AnthropicToOpenAi {
    fn on_event(&mut self, _: &SseEvent, _: &mut BytesMut) {}
    fn on_end(&mut self, _: &mut BytesMut) {}
    fn on_error(&mut self, _: &str, _: &mut BytesMut) {}
}
