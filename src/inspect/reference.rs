//! The serde_json-based inspection keyrelay used before `json` replaced it: kept, unchanged,
//! as the reference the differential tests compare the fast path with (`proptest` in
//! `tests/prop_inspect.rs`, the `inspect` fuzz target). Not used to serve requests.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{ChatRequest, InvalidRequest};

/// The three fields inspection needs, borrowed from the body.
struct Probe<'a> {
    model: Option<&'a RawValue>,
    stream: Option<&'a RawValue>,
    messages: Option<&'a RawValue>,
    stream_options: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum Field {
    Model,
    Stream,
    Messages,
    #[serde(rename = "stream_options")]
    StreamOptions,
    #[serde(other)]
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Probe<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ProbeVisitor(std::marker::PhantomData))
    }
}

struct ProbeVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ProbeVisitor<'a> {
    type Value = Probe<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Probe<'a>, M::Error> {
        let mut probe = Probe {
            model: None,
            stream: None,
            messages: None,
            stream_options: None,
        };
        while let Some(field) = map.next_key::<Field>()? {
            let (slot, name) = match field {
                Field::Model => (&mut probe.model, "model"),
                Field::Stream => (&mut probe.stream, "stream"),
                Field::Messages => (&mut probe.messages, "messages"),
                Field::StreamOptions => (&mut probe.stream_options, "stream_options"),
                Field::Other => {
                    map.next_value::<Skip>()?;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(de::Error::duplicate_field(name));
            }
            *slot = Some(map.next_value::<&RawValue>()?);
        }
        Ok(probe)
    }
}

/// Any JSON value, walked and dropped. Unlike `serde::de::IgnoredAny`, which serde_json skips
/// without counting depth, this goes through `deserialize_any`, so serde_json's recursion
/// limit bounds how deeply a client may nest a field keyrelay never reads.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Skip, S::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Skip, M::Error> {
        while map.next_key::<de::IgnoredAny>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
}

/// `ChatRequest::parse` as it was, serde_json walking every byte.
pub fn parse(body: &[u8]) -> Result<ChatRequest, InvalidRequest> {
    let invalid = |message: String, param| Err(InvalidRequest { message, param });
    let Ok(text) = std::str::from_utf8(body) else {
        return invalid("The request body is not valid UTF-8.".into(), None);
    };
    match text.trim_start().as_bytes().first() {
        Some(b'{') => {}
        None => {
            return invalid(
                "The request body is empty; expected a JSON object.".into(),
                None,
            );
        }
        Some(_) => return invalid("The request body must be a JSON object.".into(), None),
    }
    let probe: Probe = match serde_json::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            return invalid(
                format!("We could not parse the JSON body of your request: {e}"),
                None,
            );
        }
    };
    let Some(model_raw) = probe.model else {
        return invalid("Missing required parameter: 'model'.".into(), Some("model"));
    };
    let Ok(model) = serde_json::from_str::<String>(model_raw.get()) else {
        return invalid(
            "Invalid type for 'model': expected a string.".into(),
            Some("model"),
        );
    };
    if model.is_empty() {
        return invalid("Invalid 'model': empty string.".into(), Some("model"));
    }
    match probe.messages.map(|m| m.get().as_bytes()[0]) {
        None => {
            return invalid(
                "Missing required parameter: 'messages'.".into(),
                Some("messages"),
            );
        }
        Some(b'[') => {}
        Some(_) => {
            return invalid(
                "Invalid type for 'messages': expected an array.".into(),
                Some("messages"),
            );
        }
    }
    let stream = match probe.stream.map(RawValue::get) {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return invalid(
                "Invalid type for 'stream': expected a boolean.".into(),
                Some("stream"),
            );
        }
    };
    let include_usage = probe
        .stream_options
        .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok())
        .is_some_and(|o| o.get("include_usage") == Some(&serde_json::Value::Bool(true)));
    // A raw value borrows from `text`, so its address locates it in the body.
    let span = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        start..start + raw.get().len()
    };
    Ok(ChatRequest {
        model,
        stream,
        include_usage,
        model_span: span(model_raw),
        stream_options_span: probe.stream_options.map(span),
        object_start: text.len() - text.trim_start().len() + 1,
    })
}
