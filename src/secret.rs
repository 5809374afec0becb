//! A wrapper for values that must never be printed: upstream API keys and client tokens.
//!
//! `Debug` and `Display` print `*****`, and the type deliberately implements neither `Serialize`
//! nor `Deref`, so the only way to the value is an explicit, greppable `expose()`.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<str>);

impl Secret {
    pub fn new(value: impl Into<Box<str>>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call sites are the places where a key leaves keyrelay (an upstream
    /// request header) and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A label that identifies the key to a human without revealing it: `provider…abc`,
    /// showing the last three characters only when the key is long enough (12+) that they
    /// say nothing useful about the rest.
    pub fn masked(&self, prefix: &str) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() >= 12 {
            let tail: String = chars[chars.len() - 3..].iter().collect();
            format!("{prefix}…{tail}")
        } else {
            format!("{prefix}…")
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("*****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("sk-very-secret-value");
        assert_eq!(format!("{s:?}"), "*****");
        assert_eq!(format!("{s}"), "*****");
        assert_eq!(format!("{:?}", Some(&s)), "Some(*****)");
    }

    #[test]
    fn masked_shows_at_most_three_trailing_chars() {
        assert_eq!(Secret::new("OPENAI_KEY_1").masked("openai"), "openai…Y_1");
        assert_eq!(Secret::new("short").masked("groq"), "groq…");
        assert_eq!(Secret::new("").masked("ollama"), "ollama…");
    }
}
