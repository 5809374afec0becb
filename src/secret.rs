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

/// `text` with every occurrence of `secret` replaced by `[redacted]`: upstream error bodies
/// sometimes echo the key they were sent. Secrets under 8 characters are not searched for,
/// since they would match ordinary text.
pub fn redact(text: &[u8], secret: &Secret) -> Option<Vec<u8>> {
    let needle = secret.expose().as_bytes();
    if needle.len() < 8 || !text.windows(needle.len()).any(|w| w == needle) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(b"[redacted]");
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    Some(out)
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
    fn redact_replaces_every_occurrence() {
        let key = Secret::new("sk-live-0123456789");
        let out = redact(
            b"bad key sk-live-0123456789, again sk-live-0123456789.",
            &key,
        );
        assert_eq!(
            out.as_deref(),
            Some(&b"bad key [redacted], again [redacted]."[..])
        );
        assert_eq!(redact(b"nothing here", &key), None);
        assert_eq!(redact(b"short", &Secret::new("short")), None);
    }

    #[test]
    fn masked_shows_at_most_three_trailing_chars() {
        assert_eq!(Secret::new("OPENAI_KEY_1").masked("openai"), "openai…Y_1");
        assert_eq!(Secret::new("short").masked("groq"), "groq…");
        assert_eq!(Secret::new("").masked("ollama"), "ollama…");
    }
}
