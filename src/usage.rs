//! Token usage of one response: read from whichever layer sees it (a translator, a stream
//! tap, a whole JSON body) into a cell the request's trace reads when the response is done.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::json_member::{self, Member};

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
        OpenAiUsage::deserialize(usage).ok().map(|u| u.0)
    }

    /// From an Anthropic `usage` object (cache reads and writes count as prompt tokens).
    pub fn from_anthropic(usage: &Value) -> Option<TokenUsage> {
        usage
            .is_object()
            .then(|| crate::translate::response::openai_usage(usage))
            .and_then(|u| TokenUsage::from_openai(&u))
    }
}

/// Visitor methods that read any other scalar (float, string, bool, null) as 0.
macro_rules! forward_scalars_to_zero {
    ($out:ident) => {
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$out, E> {
            Ok($out(0))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<$out, E> {
            Ok($out(0))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$out, E> {
            Ok($out(0))
        }
        fn visit_unit<E: de::Error>(self) -> Result<$out, E> {
            Ok($out(0))
        }
    };
}

/// An OpenAI `usage` object read straight from JSON: its three counts, nothing built. (Every
/// plain response is read for usage; going through a `Value` and looking the fields up cost
/// more than the rest of the response's accounting.) It must be an object; a count that is
/// missing or not a non-negative integer reads as 0, and the last of repeated members wins,
/// as `Value` lookups would have it.
pub struct OpenAiUsage(pub TokenUsage);

impl OpenAiUsage {
    /// The counts of the usage object `json` starts with. A scan finds the three members
    /// (`json_member`), and their numbers are read in place; anything the scan is not sure
    /// of is read by the deserializer below, so the result is the same either way.
    pub fn read(json: &[u8]) -> Option<TokenUsage> {
        Self::scan(json).unwrap_or_else(|| {
            let mut de = serde_json::Deserializer::from_slice(json);
            OpenAiUsage::deserialize(&mut de).ok().map(|u| u.0)
        })
    }

    /// `None` when unsure.
    fn scan(json: &[u8]) -> Option<Option<TokenUsage>> {
        let members = [
            "prompt_tokens",
            "completion_tokens",
            "prompt_tokens_details",
        ];
        let [prompt, completion, details] = json_member::find_each_last(json, members);
        let cached = match details {
            Member::At(at) if json[at] == b'{' => {
                let [cached] = json_member::find_each_last(&json[at..], ["cached_tokens"]);
                count_at(&json[at..], cached)?
            }
            Member::At(_) | Member::Absent => 0,
            Member::Unsure => return None,
        };
        Some(Some(TokenUsage {
            prompt: count_at(json, prompt)?,
            completion: count_at(json, completion)?,
            cached,
        }))
    }
}

/// The count at a member's value, as `Count` reads it: a non-negative integer, else 0.
/// `None` for what the scan cannot vouch for, including a number with a leading zero.
fn count_at(json: &[u8], member: Member) -> Option<u64> {
    let value = match member {
        Member::At(at) => &json[at..],
        Member::Absent => return Some(0),
        Member::Unsure => return None,
    };
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Some(0);
    }
    if digits > 1 && value[0] == b'0' {
        return None;
    }
    if let Some(b'.' | b'e' | b'E') = value.get(digits) {
        return Some(0);
    }
    // Past u64 serde_json reads a float: 0 too.
    let mut n: u64 = 0;
    for &d in &value[..digits] {
        let Some(next) = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
        else {
            return Some(0);
        };
        n = next;
    }
    Some(n)
}

#[derive(serde::Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum UsageField {
    PromptTokens,
    CompletionTokens,
    PromptTokensDetails,
    CachedTokens,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for OpenAiUsage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Usage;
        impl<'de> Visitor<'de> for Usage {
            type Value = OpenAiUsage;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a usage object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OpenAiUsage, A::Error> {
                let mut usage = TokenUsage::default();
                while let Some(field) = map.next_key()? {
                    match field {
                        UsageField::PromptTokens => usage.prompt = map.next_value::<Count>()?.0,
                        UsageField::CompletionTokens => {
                            usage.completion = map.next_value::<Count>()?.0;
                        }
                        UsageField::PromptTokensDetails => {
                            usage.cached = map.next_value::<CachedTokens>()?.0;
                        }
                        UsageField::CachedTokens | UsageField::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(OpenAiUsage(usage))
            }
        }
        d.deserialize_map(Usage)
    }
}

/// `prompt_tokens_details.cached_tokens`, or 0 when the details are not an object.
struct CachedTokens(u64);

impl<'de> Deserialize<'de> for CachedTokens {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Details;
        impl<'de> Visitor<'de> for Details {
            type Value = CachedTokens;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("anything")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CachedTokens, A::Error> {
                let mut cached = 0;
                while let Some(field) = map.next_key()? {
                    match field {
                        UsageField::CachedTokens => cached = map.next_value::<Count>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(CachedTokens(cached))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<CachedTokens, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| CachedTokens(0))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<CachedTokens, E> {
                Ok(CachedTokens(0))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<CachedTokens, E> {
                Ok(CachedTokens(0))
            }
            forward_scalars_to_zero!(CachedTokens);
        }
        d.deserialize_any(Details)
    }
}

/// A count: a non-negative integer, or 0 for any other JSON value.
struct Count(u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Lenient;
        impl<'de> Visitor<'de> for Lenient {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("anything")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Count, E> {
                Ok(Count(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(n).unwrap_or(0)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Count, A::Error> {
                IgnoredAny.visit_map(map).map(|_| Count(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Count, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Count(0))
            }
            forward_scalars_to_zero!(Count);
        }
        d.deserialize_any(Lenient)
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// What `from_openai` did when it looked fields up in a `Value`.
    fn looked_up(usage: &Value) -> Option<TokenUsage> {
        let n = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
        usage.is_object().then(|| TokenUsage {
            prompt: n(usage.get("prompt_tokens")),
            completion: n(usage.get("completion_tokens")),
            cached: n(usage.pointer("/prompt_tokens_details/cached_tokens")),
        })
    }

    fn from_text(text: &str) -> Option<TokenUsage> {
        let typed = serde_json::from_str::<OpenAiUsage>(text).ok().map(|u| u.0);
        assert_eq!(OpenAiUsage::read(text.as_bytes()), typed, "scanned: {text}");
        typed
    }

    #[test]
    fn usage_is_read_from_text_as_from_a_tree() {
        for text in [
            r#"{"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13, "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0}}"#,
            r#"{"prompt_tokens": -1, "completion_tokens": 2.5, "prompt_tokens_details": null}"#,
            r#"{"prompt_tokens": "7", "completion_tokens": [1], "prompt_tokens_details": [{"cached_tokens": 1}]}"#,
            r#"{"prompt_tokens": 1, "prompt_tokens": 2, "prompt_tokens_details": {"cached_tokens": 5}, "prompt_tokens_details": {}}"#,
            r#"{"prompt\u005ftokens": 9, "cached_tokens": 3, "completion_tokens": {"x": [1, {"y": null}]}}"#,
            r#"{}"#,
            r#"{"prompt_tokens": 18446744073709551616, "completion_tokens": 1e2, "prompt_tokens_details": {"cached_tokens": 0}}"#,
            r#"{"prompt_tokens": 18446744073709551615, "completion_tokens": -0, "prompt_tokens_details": {"cached_tokens": 7, "cached_tokens": 8}}"#,
            r#"[1, 2, 3]"#,
            r#"null"#,
            r#"12"#,
        ] {
            let tree: Value = serde_json::from_str(text).unwrap();
            assert_eq!(from_text(text), looked_up(&tree), "{text}");
            assert_eq!(TokenUsage::from_openai(&tree), looked_up(&tree), "{text}");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop_oneof![
            Just("prompt_tokens".to_owned()),
            Just("completion_tokens".to_owned()),
            Just("prompt_tokens_details".to_owned()),
            Just("cached_tokens".to_owned()),
            "[a-z_]{0,6}",
        ];
        crate::json_strategy::json_value(key, "[a-z_]{0,8}")
    }

    proptest! {
        #[test]
        fn any_usage_reads_as_the_field_lookups_read_it(usage in json_value()) {
            prop_assert_eq!(TokenUsage::from_openai(&usage), looked_up(&usage));
            prop_assert_eq!(from_text(&usage.to_string()), looked_up(&usage));
        }
    }

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
