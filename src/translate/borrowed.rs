//! Strings read from an event in place when they can be.
//!
//! serde's own `Cow<str>` borrows only as a field of its own: inside an `Option`, as every
//! field of an incoming event is, it always copies the string into a new `String`, even with
//! `#[serde(borrow)]` (serde issue #1497). That was 35 allocations per translated 8-chunk
//! stream. `opt_str` borrows whatever JSON text holds unescaped, and decodes the rest.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// For `#[serde(borrow, default, deserialize_with = "borrowed::opt_str")]` on an
/// `Option<Cow<'a, str>>`: `null` is `None`, a string is borrowed unless it has escapes.
pub(crate) fn opt_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    d.deserialize_option(OptStr)
}

struct OptStr;

impl<'de> Visitor<'de> for OptStr {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(Str).map(Some)
    }
}

struct Str;

impl<'de> Visitor<'de> for Str {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(s))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(borrow, default, deserialize_with = "opt_str")]
        text: Option<Cow<'a, str>>,
    }

    fn text(json: &str) -> Option<Cow<'_, str>> {
        serde_json::from_str::<Event<'_>>(json).unwrap().text
    }

    #[test]
    fn strings_without_escapes_are_borrowed_and_the_rest_decoded() {
        assert!(matches!(
            text(r#"{"text":"plain"}"#),
            Some(Cow::Borrowed("plain"))
        ));
        match text(r#"{"text":"line\nbreak \u00e9"}"#) {
            Some(Cow::Owned(s)) => assert_eq!(s, "line\nbreak \u{e9}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(text(r#"{"text":null}"#), None);
        assert_eq!(text("{}"), None);
        assert!(serde_json::from_str::<Event<'_>>(r#"{"text":5}"#).is_err());
    }

    /// What the helper replaces: serde's `Cow` inside an `Option` copies every string.
    #[test]
    fn serdes_own_option_cow_would_copy() {
        #[derive(serde::Deserialize)]
        struct Plain<'a> {
            #[serde(borrow)]
            text: Option<Cow<'a, str>>,
        }
        let plain: Plain<'_> = serde_json::from_str(r#"{"text":"plain"}"#).unwrap();
        assert!(matches!(plain.text, Some(Cow::Owned(_))));
    }
}
