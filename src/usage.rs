//! Token usage of one response: read from whichever layer sees it (a translator, a stream
//! tap, a whole JSON body) into a cell the request's trace reads when the response is done.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub prompt: u64,
    pub completion: u64,
    /// Prompt tokens served from a cache (a subset of `prompt`).
    pub cached: u64,
}

impl TokenUsage {
    /// From an OpenAI `usage` object.
    pub fn from_openai(usage: &Value) -> Option<TokenUsage> {
        let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        usage.is_object().then(|| TokenUsage {
            prompt: n(usage.get("prompt_tokens")),
            completion: n(usage.get("completion_tokens")),
            cached: n(usage.pointer("/prompt_tokens_details/cached_tokens")),
        })
    }

    /// From an Anthropic `usage` object (cache reads and writes count as prompt tokens).
    pub fn from_anthropic(usage: &Value) -> Option<TokenUsage> {
        usage
            .is_object()
            .then(|| crate::translate::response::openai_usage(usage))
            .and_then(|u| TokenUsage::from_openai(&u))
    }
}

/// Shared between a response's body layers and its trace.
#[derive(Debug, Default)]
pub struct UsageCell {
    seen: AtomicBool,
    prompt: AtomicU64,
    completion: AtomicU64,
    cached: AtomicU64,
}

impl UsageCell {
    /// Records the response's usage; later reports replace earlier ones (totals, not deltas).
    pub fn set(&self, usage: TokenUsage) {
        self.prompt.store(usage.prompt, Relaxed);
        self.completion.store(usage.completion, Relaxed);
        self.cached.store(usage.cached, Relaxed);
        self.seen.store(true, Relaxed);
    }

    pub fn get(&self) -> Option<TokenUsage> {
        self.seen.load(Relaxed).then(|| TokenUsage {
            prompt: self.prompt.load(Relaxed),
            completion: self.completion.load(Relaxed),
            cached: self.cached.load(Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_shapes() {
        let openai = json!({"prompt_tokens": 10, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}});
        assert_eq!(
            TokenUsage::from_openai(&openai),
            Some(TokenUsage {
                prompt: 10,
                completion: 3,
                cached: 4
            })
        );
        let anthropic = json!({"input_tokens": 5, "cache_read_input_tokens": 900, "cache_creation_input_tokens": 100, "output_tokens": 20});
        assert_eq!(
            TokenUsage::from_anthropic(&anthropic),
            Some(TokenUsage {
                prompt: 1005,
                completion: 20,
                cached: 900
            })
        );
        assert_eq!(TokenUsage::from_openai(&Value::Null), None);
        let cell = UsageCell::default();
        assert_eq!(cell.get(), None);
        cell.set(TokenUsage {
            prompt: 1,
            completion: 2,
            cached: 0,
        });
        assert_eq!(cell.get().map(|u| u.completion), Some(2));
    }
}
