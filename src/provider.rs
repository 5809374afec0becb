//! The closed set of upstream providers keyrelay knows, their names in `LLM_KEYS`, their
//! default base URLs, and which wire format each one speaks.

/// Which wire protocol a provider speaks; this, not the provider name, picks the code path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// OpenAI Chat Completions: the body passes through untouched.
    OpenAi,
    /// Anthropic Messages: native on `/v1/messages`, translated for OpenAI-format clients.
    Anthropic,
    /// keyrelay's built-in provider that answers in-process without any network.
    Mock,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    OpenAi,
    Anthropic,
    Groq,
    Mistral,
    DeepSeek,
    OpenRouter,
    Together,
    Fireworks,
    Xai,
    Perplexity,
    Gemini,
    Ollama,
    OpenAiCompatible,
    Mock,
}

impl Provider {
    pub const ALL: [Provider; 14] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Groq,
        Provider::Mistral,
        Provider::DeepSeek,
        Provider::OpenRouter,
        Provider::Together,
        Provider::Fireworks,
        Provider::Xai,
        Provider::Perplexity,
        Provider::Gemini,
        Provider::Ollama,
        Provider::OpenAiCompatible,
        Provider::Mock,
    ];

    pub fn from_name(name: &str) -> Option<Provider> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The name used in `LLM_KEYS` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Groq => "groq",
            Provider::Mistral => "mistral",
            Provider::DeepSeek => "deepseek",
            Provider::OpenRouter => "openrouter",
            Provider::Together => "together",
            Provider::Fireworks => "fireworks",
            Provider::Xai => "xai",
            Provider::Perplexity => "perplexity",
            Provider::Gemini => "gemini",
            Provider::Ollama => "ollama",
            Provider::OpenAiCompatible => "openai-compatible",
            Provider::Mock => "mock",
        }
    }

    /// Every valid name, for error messages.
    pub fn valid_names() -> String {
        Self::ALL.map(Provider::name).join(", ")
    }

    /// The documented base URL. For the OpenAI family it includes the version path, as the
    /// OpenAI SDK's `base_url` does; for Anthropic it is the host root, as the Anthropic SDK's is.
    /// `None` where the user must give one (`openai-compatible`) or none is needed (`mock`).
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi => Some("https://api.openai.com/v1"),
            Provider::Anthropic => Some("https://api.anthropic.com"),
            Provider::Groq => Some("https://api.groq.com/openai/v1"),
            Provider::Mistral => Some("https://api.mistral.ai/v1"),
            Provider::DeepSeek => Some("https://api.deepseek.com/v1"),
            Provider::OpenRouter => Some("https://openrouter.ai/api/v1"),
            Provider::Together => Some("https://api.together.xyz/v1"),
            Provider::Fireworks => Some("https://api.fireworks.ai/inference/v1"),
            Provider::Xai => Some("https://api.x.ai/v1"),
            // Perplexity serves chat completions at the host root, without a version segment.
            Provider::Perplexity => Some("https://api.perplexity.ai"),
            Provider::Gemini => Some("https://generativelanguage.googleapis.com/v1beta/openai"),
            Provider::Ollama => Some("http://127.0.0.1:11434/v1"),
            Provider::OpenAiCompatible | Provider::Mock => None,
        }
    }

    pub fn family(self) -> Family {
        match self {
            Provider::Anthropic => Family::Anthropic,
            Provider::Mock => Family::Mock,
            Provider::OpenAi
            | Provider::Groq
            | Provider::Mistral
            | Provider::DeepSeek
            | Provider::OpenRouter
            | Provider::Together
            | Provider::Fireworks
            | Provider::Xai
            | Provider::Perplexity
            | Provider::Gemini
            | Provider::Ollama
            | Provider::OpenAiCompatible => Family::OpenAi,
        }
    }

    /// Local servers run without authentication, so an empty key is legitimate there.
    pub fn allows_empty_key(self) -> bool {
        matches!(
            self,
            Provider::Ollama | Provider::OpenAiCompatible | Provider::Mock
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(Provider::from_name(p.name()), Some(p));
        }
        assert_eq!(Provider::from_name("OpenAI"), None);
    }

    #[test]
    fn every_remote_provider_but_openai_compatible_has_a_default() {
        for p in Provider::ALL {
            let needs_url = p.family() != Family::Mock && p != Provider::OpenAiCompatible;
            assert_eq!(p.default_base_url().is_some(), needs_url, "{p:?}");
        }
    }
}
