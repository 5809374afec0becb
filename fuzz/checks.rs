//! The invariants the fuzz targets check, one function per target.
//!
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and by
//! `tests/fuzz_regressions.rs`, which replays every file under `fuzz/seeds/<target>/` and
//! `fuzz/regressions/<target>/` through the same function, so a crash found by fuzzing stays
//! caught by `cargo test`. Both include this file with `#[path]`. Every check panics when an
//! invariant is broken (that is what libFuzzer reports as a crash) and returns quietly for
//! input it has nothing to say about.
//!
//! Input layouts (the first byte steers the harness, so seeds stay readable text when it is
//! a printable character):
//! - `llm_keys`, `openai_to_anthropic_request`: the whole input.
//! - `anthropic_to_openai`, `reverse`: a control byte, then the payload. The payload is
//!   parsed as one JSON value for the non-streaming functions and fed as raw upstream bytes
//!   through `SseParser` into the stream translator. Control bits: 0 = `include_usage`
//!   (OpenAI output only), 1 = the upstream fails after the first chunk instead of ending,
//!   2..=7 = where the payload is split in two chunks (`len * n / 63`).
//! - `sse_parser`: a control byte, up to 7 cut bytes, then the payload. Control bits 0..=2 =
//!   how many cut bytes follow (each one places a chunk boundary at `len * b / 255`), bit 3 =
//!   use a small event size limit of `8 * (bits 4..=7 + 1)` bytes instead of the default.
//!   The same chunks are also read with `whole_data_events` where it applies.
//! - `json_member`: the whole input, as an upstream's JSON answer.
//! - `inspect`: a control byte, then the payload. Control bits 0..=2 = where the payload goes
//!   in a chat body (see `inspect_body`; `'0'` and `'7'` = the payload is the whole body), so
//!   the fuzzer works on each kind of value without having to build the object around it.
#![allow(dead_code)]

use bytes::BytesMut;
use keyrelay::config::parse_keys;
use keyrelay::inspect::ChatRequest;
use keyrelay::json_member::{self, Member};
use keyrelay::translate::reverse::{
    OpenAiToAnthropic, anthropic_to_openai_request, openai_to_anthropic_response,
};
use keyrelay::translate::sse::{SseError, SseParser};
use keyrelay::translate::stream::AnthropicToOpenAi;
use keyrelay::translate::{SseEvent, StreamTranslator};
use serde_json::{Map, Value};

/// A target's check: panics when the input breaks an invariant.
pub type Check = fn(&[u8]);

/// Every target by name, for the regression replay.
pub const TARGETS: [(&str, Check); 7] = [
    ("llm_keys", llm_keys),
    ("openai_to_anthropic_request", openai_to_anthropic_request),
    ("anthropic_to_openai", anthropic_to_openai),
    ("reverse", reverse),
    ("sse_parser", sse_parser),
    ("inspect", inspect),
    ("json_member", json_member),
];

/// Key values shorter than this are not checked: short strings occur in message text by
/// chance (`openai`, `model`, an entry index…).
const MIN_SECRET_CHARS: usize = 12;

// --- llm_keys --------------------------------------------------------------------------

/// `parse_keys` never panics, an error always has at least one message, a success at least
/// one key, and no message shows an `api_key` value of the input (of 12+ characters): not
/// the key itself, and not another field (provider, field name, name…) holding the same
/// string, as when a key is pasted into the wrong field.
pub fn llm_keys(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let problems = match parse_keys(&text, "LLM_KEYS") {
        Ok(specs) => {
            assert!(
                !specs.is_empty(),
                "parse_keys accepted a config with no keys"
            );
            return;
        }
        Err(problems) => problems,
    };
    assert!(!problems.is_empty(), "parse_keys failed without saying why");
    let Ok(value) = serde_json::from_str::<Value>(&text) else {
        return;
    };
    let mut keys = Vec::new();
    collect_api_keys(&value, &mut keys);
    keys.sort();
    keys.dedup();
    for key in keys
        .iter()
        .filter(|k| k.chars().count() >= MIN_SECRET_CHARS)
    {
        let shown = occurrences(&problems, key);
        if shown == 0 {
            continue;
        }
        // The value may also be part of a message's fixed text (a provider name such as
        // `openai-compatible`, a field list…) or of a longer input string that is echoed
        // (a provider `xopenai-compatible` contains the key `openai-compatible`). Only the
        // value itself counts: replace every string (and object key) equal to it by a filler
        // of the same length and character classes, which keeps the validation outcome; an
        // occurrence that disappears with it was copied from a field holding the key value.
        let masked = replace_strings(&value, key, &filler(key));
        let reference = parse_keys(&masked.to_string(), "LLM_KEYS")
            .err()
            .unwrap_or_default();
        let fixed = occurrences(&reference, key);
        assert!(
            shown <= fixed,
            "an error message shows the api_key value {key:?}:\n{problems:#?}"
        );
    }
}

fn collect_api_keys(value: &Value, keys: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (name, v) in map {
                if let (true, Value::String(s)) = (name == "api_key", v) {
                    keys.push(s.clone());
                }
                collect_api_keys(v, keys);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_api_keys(v, keys)),
        _ => {}
    }
}

fn occurrences(messages: &[String], needle: &str) -> usize {
    messages.iter().map(|m| m.matches(needle).count()).sum()
}

/// Same number of characters, same validity as a key (ASCII graphic or not), same
/// whitespace, none of the original text.
fn filler(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            c if c.is_ascii_graphic() => '#',
            c if c.is_whitespace() => c,
            _ => '\u{7f}',
        })
        .collect()
}

/// `value` with every string and object key equal to `from` replaced by `to`.
fn replace_strings(value: &Value, from: &str, to: &str) -> Value {
    let swap = |s: &String| if s == from { to.to_owned() } else { s.clone() };
    match value {
        Value::String(s) => Value::String(swap(s)),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| replace_strings(v, from, to)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (swap(k), replace_strings(v, from, to)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

// --- openai_to_anthropic_request ---------------------------------------------------------

/// `openai_to_anthropic` never panics on any JSON value, and what it accepts has the shape
/// it documents: the model and a token limit set, alternating non-empty turns that start
/// with the user.
pub fn openai_to_anthropic_request(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(out) = keyrelay::translate::request::openai_to_anthropic(&req, "claude-x", 4096) else {
        return;
    };
    assert_eq!(out["model"], "claude-x", "{out}");
    // A limit of 0 is passed on for the upstream to refuse, like other values it validates.
    assert!(
        out["max_tokens"].is_u64(),
        "max_tokens must be an integer: {out}"
    );
    let turns = out["messages"].as_array().expect("messages is an array");
    assert!(!turns.is_empty(), "no turns: {out}");
    for (i, turn) in turns.iter().enumerate() {
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        assert_eq!(
            turn["role"], expected,
            "turns must alternate from user: {out}"
        );
        assert!(
            turn["content"].as_array().is_some_and(|c| !c.is_empty()),
            "turn {i} has no content: {out}"
        );
    }
}

// --- anthropic_to_openai -----------------------------------------------------------------

/// The Anthropic → OpenAI response and stream translators never panic; the stream's output
/// is well-formed OpenAI SSE (see [`check_openai_frames`]).
pub fn anthropic_to_openai(data: &[u8]) {
    let Some((control, payload)) = data.split_first() else {
        return;
    };
    if let Ok(msg) = serde_json::from_slice::<Value>(payload) {
        let out = keyrelay::translate::response::anthropic_to_openai(&msg, 0);
        assert_eq!(out["object"], "chat.completion", "{out}");
        assert!(out["choices"][0]["message"].is_object(), "{out}");
    }
    let translator = AnthropicToOpenAi::new(control & 1 == 1, 0, "m");
    let frames = run_stream(translator, *control, payload);
    check_stream(&frames, openai_frame, "OpenAI");
}

// --- reverse -----------------------------------------------------------------------------

/// The reverse direction (Anthropic client, OpenAI upstream): request and response
/// translation never panic, and the stream translator's output is well-formed Anthropic
/// SSE (see [`anthropic_frame`]).
pub fn reverse(data: &[u8]) {
    let Some((control, payload)) = data.split_first() else {
        return;
    };
    if let Ok(value) = serde_json::from_slice::<Value>(payload) {
        if let Ok(req) = anthropic_to_openai_request(&value, "gpt-x") {
            assert_eq!(req["model"], "gpt-x", "{req}");
            assert!(req["messages"].is_array(), "{req}");
        }
        let resp = openai_to_anthropic_response(&value);
        assert_eq!(resp["type"], "message", "{resp}");
        assert!(resp["content"].is_array(), "{resp}");
    }
    let frames = run_stream(OpenAiToAnthropic::new("m"), *control, payload);
    check_stream(&frames, anthropic_frame, "Anthropic");
}

// --- stream harness ----------------------------------------------------------------------

/// One call of the translator and what it appended.
struct Step {
    /// `event`, `end` or `error`.
    call: &'static str,
    output: Vec<u8>,
}

/// Drives `translator` the way `upstream::translated_body` does: the payload arrives in two
/// chunks, each parsed and translated event by event, then either the body ends (parser
/// `finish`, translator `on_end`) or the transport fails (`on_error`). After a failure the
/// rest of the events are still offered, as the body does after an oversized event; the
/// translator must ignore them. Returns every call with its output.
fn run_stream(mut translator: impl StreamTranslator, control: u8, payload: &[u8]) -> Vec<Step> {
    let transport_fails = control & 2 == 2;
    let split = payload.len() * usize::from(control >> 2) / 63;
    let (first, second) = payload.split_at(split);
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut steps = Vec::new();
    let mut call = |t: &mut dyn FnMut(&mut BytesMut), name: &'static str| {
        let mut out = BytesMut::new();
        t(&mut out);
        steps.push(Step {
            call: name,
            output: out.to_vec(),
        });
    };
    let mut failed = false;
    for (n, chunk) in [first, second].into_iter().enumerate() {
        if let Err(e) = parser.push(chunk, &mut events) {
            call(&mut |out| translator.on_error(&e.to_string(), out), "error");
            failed = true;
        }
        for event in events.drain(..) {
            call(&mut |out| translator.on_event(&event, out), "event");
        }
        if n == 0 && transport_fails && !failed {
            call(
                &mut |out| translator.on_error("upstream stream failed: connection reset", out),
                "error",
            );
            failed = true;
        }
    }
    if failed {
        // The body stops here; an `on_end` would not come. Offer it anyway: it must be a no-op.
        call(&mut |out| translator.on_end(out), "end");
    } else {
        parser.finish(&mut events);
        for event in events.drain(..) {
            call(&mut |out| translator.on_event(&event, out), "event");
        }
        call(&mut |out| translator.on_end(out), "end");
    }
    steps
}

/// Checks one frame's text (without its closing blank line); returns whether it ends the
/// stream.
type FrameCheck = fn(&str) -> bool;

/// Stream-level rules, whatever the format:
/// - every call's output is valid UTF-8 and made of whole frames (`…\n\n`), each well-formed;
/// - nothing follows a terminal frame, and nothing at all follows a transport error;
/// - the stream ends with exactly one terminal frame: a client never sees a stream that
///   just stops.
fn check_stream(steps: &[Step], frame: FrameCheck, format: &str) {
    let mut terminated = false;
    let mut errored = false;
    for step in steps {
        let text = std::str::from_utf8(&step.output)
            .unwrap_or_else(|e| panic!("{format} output of `{}` is not UTF-8: {e}", step.call));
        assert!(
            text.is_empty() || !errored,
            "{format}: `{}` emitted after on_error: {text:?}",
            step.call
        );
        assert!(
            !text.is_empty() || step.call != "error" || terminated,
            "{format}: on_error emitted nothing on an unfinished stream"
        );
        if step.call == "error" {
            errored = true;
        }
        if text.is_empty() {
            continue;
        }
        assert!(
            text.ends_with("\n\n"),
            "{format}: `{}` left a partial frame: {text:?}",
            step.call
        );
        for one in text[..text.len() - 2].split("\n\n") {
            assert!(
                !terminated,
                "{format}: frame after the end of the stream: {one:?} (all: {text:?})"
            );
            terminated = frame(one);
        }
    }
    assert!(
        terminated,
        "{format}: the stream ended without a terminal frame: {:?}",
        steps
            .iter()
            .map(|s| String::from_utf8_lossy(&s.output).into_owned())
            .collect::<String>()
    );
}

/// `data: [DONE]` or `data: {json object}`; `[DONE]` and error objects end the stream.
fn openai_frame(frame: &str) -> bool {
    let payload = frame
        .strip_prefix("data: ")
        .unwrap_or_else(|| panic!("OpenAI frame without `data: `: {frame:?}"));
    assert!(
        !payload.contains('\n') && !payload.contains('\r'),
        "OpenAI frame with more than one line: {frame:?}"
    );
    if payload == "[DONE]" {
        return true;
    }
    let value: Value = serde_json::from_str(payload)
        .unwrap_or_else(|e| panic!("OpenAI frame is not JSON ({e}): {frame:?}"));
    let obj = value
        .as_object()
        .unwrap_or_else(|| panic!("OpenAI frame is not a JSON object: {frame:?}"));
    if obj.contains_key("error") {
        return true;
    }
    assert_eq!(
        obj.get("object").and_then(Value::as_str),
        Some("chat.completion.chunk"),
        "OpenAI frame is neither a chunk nor an error: {frame:?}"
    );
    false
}

/// `event: X\ndata: {json object whose type is X}`; `message_stop` and `error` end the stream.
fn anthropic_frame(frame: &str) -> bool {
    let (event_line, data_line) = frame
        .split_once('\n')
        .unwrap_or_else(|| panic!("Anthropic frame is not two lines: {frame:?}"));
    let name = event_line
        .strip_prefix("event: ")
        .unwrap_or_else(|| panic!("Anthropic frame without `event: `: {frame:?}"));
    let payload = data_line
        .strip_prefix("data: ")
        .unwrap_or_else(|| panic!("Anthropic frame without `data: `: {frame:?}"));
    assert!(
        !payload.contains('\n') && !payload.contains('\r') && !name.contains('\r'),
        "Anthropic frame with more than two lines: {frame:?}"
    );
    let value: Value = serde_json::from_str(payload)
        .unwrap_or_else(|e| panic!("Anthropic frame is not JSON ({e}): {frame:?}"));
    assert_eq!(
        value.get("type").and_then(Value::as_str),
        Some(name),
        "Anthropic event name and data type differ: {frame:?}"
    );
    matches!(name, "message_stop" | "error")
}

// --- sse_parser --------------------------------------------------------------------------

/// The parser never panics, and the events (and whether and where it fails on an oversized
/// event) do not depend on how the input is cut into chunks. The parser is reused after
/// `finish`, which must reset it.
pub fn sse_parser(data: &[u8]) {
    let Some((control, rest)) = data.split_first() else {
        return;
    };
    let cut_count = usize::from(control & 7).min(rest.len());
    let (cut_bytes, payload) = rest.split_at(cut_count);
    let mut cuts: Vec<usize> = cut_bytes
        .iter()
        .map(|b| payload.len() * usize::from(*b) / 255)
        .collect();
    cuts.sort_unstable();
    let mut parser = if control & 8 == 8 {
        SseParser::with_max_event_bytes(8 * (usize::from(control >> 4) + 1))
    } else {
        SseParser::new()
    };

    let whole = parse_chunks(&mut parser, [payload]);
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts {
        chunks.push(&payload[start..cut]);
        start = cut;
    }
    chunks.push(&payload[start..]);
    let chunked = parse_chunks(&mut parser, chunks.iter().copied());
    assert_eq!(
        whole, chunked,
        "parsing in chunks {chunks:?} differs from parsing at once"
    );
    // Reading whole-event chunks in place (as `UsageStrip` does) gives the same events, as
    // long as the size limit never trips (the in-place path reads whole events only).
    if chunked.1.is_none() {
        let mut events = Vec::new();
        for chunk in &chunks {
            match parser.whole_data_events(chunk) {
                Some(payloads) => events.extend(payloads.map(|data| SseEvent {
                    event: None,
                    data: String::from_utf8(data.to_vec()).expect("checked UTF-8"),
                })),
                None => parser.push(chunk, &mut events).expect("no limit tripped"),
            }
        }
        parser.finish(&mut events);
        assert_eq!(events, chunked.0, "in-place reading of {chunks:?} differs");
    }
}

/// (events, the first error, whether a partial event was left) for one stream; the parser
/// is finished afterwards.
type Parsed = (Vec<SseEvent>, Option<SseError>, bool);

fn parse_chunks<'a>(parser: &mut SseParser, chunks: impl IntoIterator<Item = &'a [u8]>) -> Parsed {
    let mut events = Vec::new();
    let mut error = None;
    for chunk in chunks {
        if let Err(e) = parser.push(chunk, &mut events) {
            error = Some(e);
            // Every later push must fail the same way without adding events.
            let before = events.len();
            assert_eq!(
                parser.push(b"data: x\n\n", &mut events),
                Err(error.clone().expect("just set")),
                "a failed parser accepted more input"
            );
            assert_eq!(events.len(), before, "a failed parser dispatched an event");
            break;
        }
    }
    let partial = error.is_none() && parser.has_partial();
    let before = events.len();
    parser.finish(&mut events);
    assert_eq!(
        events.len(),
        before,
        "finish dispatched an incomplete event"
    );
    assert!(!parser.has_partial(), "finish did not reset the parser");
    (events, error, partial)
}

// --- inspect -----------------------------------------------------------------------------

/// `ChatRequest::parse` (the hand-written walk) and `ChatRequest::parse_reference` (the
/// serde_json walk it replaced) agree on every body: the same acceptance, the same model,
/// stream, include_usage and byte spans, and the same error message and param.
pub fn inspect(data: &[u8]) {
    let Some((&control, payload)) = data.split_first() else {
        return;
    };
    let body = inspect_body(control, payload);
    let fast = ChatRequest::parse(&body);
    let reference = ChatRequest::parse_reference(&body);
    assert_eq!(
        fast,
        reference,
        "parse and parse_reference disagree on {:?}",
        String::from_utf8_lossy(&body)
    );
}

/// The payload placed in a chat body by control bits 0..=2: as the value of a member
/// keyrelay does not read (walked with serde_json's depth and number rules), as `messages`
/// or `stream_options` (walked as raw values), inside a string of each kind, or as a key.
pub fn inspect_body(control: u8, payload: &[u8]) -> Vec<u8> {
    let (before, after): (&[u8], &[u8]) = match control & 7 {
        1 => (br#"{"model":"m","messages":[],"x":"#, b"}"),
        2 => (br#"{"model":"m","messages":"#, b"}"),
        3 => (
            br#"{"model":"m","messages":[{"role":"user","content":""#,
            br#""}]}"#,
        ),
        4 => (br#"{"model":"m","messages":[],"x":""#, br#""}"#),
        5 => (br#"{""#, br#"":1,"model":"m","messages":[]}"#),
        6 => (br#"{"model":"m","stream_options":"#, br#","messages":[]}"#),
        _ => (b"", b""),
    };
    [before, payload, after].concat()
}

// --- json_member -------------------------------------------------------------------------

/// The names looked for: the one keyrelay reads, and one the fuzzer meets in its dictionary.
const MEMBERS: [&str; 2] = ["usage", "model"];

/// `json_member` on any bytes: it never panics and never points past the body; the first
/// occurrence and the last agree on what they share; and on a body serde_json reads as an
/// object, every answer is serde_json's (the value found parses to the member's value, an
/// absent member is absent or repeated), with `Unsure` only where a top-level key is escaped.
/// On anything else that parses (an array, a number) the scan is always unsure.
pub fn json_member(data: &[u8]) {
    let once = json_member::find_each(data, MEMBERS);
    let last = json_member::find_each_last(data, MEMBERS);
    for (name, (once, last)) in MEMBERS.iter().zip(once.iter().zip(&last)) {
        match (once, last) {
            (Member::At(a), Member::At(b)) => assert_eq!(a, b, "{name}: first and last differ"),
            (Member::Absent, Member::Absent | Member::At(_)) | (Member::Unsure, Member::Unsure) => {
            }
            other => panic!(
                "{name}: find_each {:?} but find_each_last {:?}",
                other.0, other.1
            ),
        }
        if let Member::At(at) = last {
            assert!(*at < data.len(), "{name}: value at {at}, past the body");
        }
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Value::Object(members) = parsed else {
        assert!(
            last.iter().all(|m| *m == Member::Unsure),
            "not an object, yet {last:?}"
        );
        return;
    };
    // The top-level keys, when all are written without escapes: then the scan must vouch.
    let plain_keys = top_level_keys(data);
    for (name, (once, last)) in MEMBERS.iter().zip(once.iter().zip(&last)) {
        match last {
            Member::At(at) => {
                let value = serde_json::Deserializer::from_slice(&data[*at..])
                    .into_iter::<Value>()
                    .next();
                assert!(
                    matches!(&value, Some(Ok(v)) if Some(v) == members.get(*name)),
                    "{name}: the value at {at} is {value:?}, serde_json has {:?}",
                    members.get(*name)
                );
            }
            Member::Absent => assert!(!members.contains_key(*name), "{name}: missed"),
            Member::Unsure => assert!(
                plain_keys.is_none(),
                "{name}: unsure about an object whose keys are plain"
            ),
        }
        // `find_each` finds a member written once, and calls a repeated one absent.
        if let Some(keys) = &plain_keys {
            let times = keys.iter().filter(|k| *k == name).count();
            assert_eq!(
                matches!(once, Member::At(_)),
                times == 1,
                "{name}: written {times} times at the top level, found {once:?}"
            );
        }
    }
}

/// The keys of the object `data` holds, in order and repeats included; `None` when one is
/// written with escapes (it cannot be borrowed from the body) or `data` is no object.
fn top_level_keys(data: &[u8]) -> Option<Vec<&str>> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<&'de str>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some(key) = map.next_key::<&'de str>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(data);
    serde::Deserializer::deserialize_map(&mut de, Keys).ok()
}
