//! Placeholder until the SSE parser lands.
use super::SseEvent;

#[derive(Debug)]
pub struct SseError;

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sse error")
    }
}

impl std::error::Error for SseError {}

#[derive(Default)]
pub struct SseParser;

impl SseParser {
    pub fn new() -> Self {
        SseParser
    }
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let _ = (chunk, out);
        Ok(())
    }
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        let _ = out;
    }
}
