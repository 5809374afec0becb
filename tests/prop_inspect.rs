//! Property: `ChatRequest::parse` (the hand-written walk) agrees with
//! `ChatRequest::parse_reference` (the serde_json walk it replaced) on every body: it accepts
//! exactly the same bodies, finds the same model, stream, include_usage and byte spans, and
//! rejects with the same message (serde_json's wording and position) and param.
//!
//! Inputs: arbitrary bytes; sequences of JSON tokens (mostly near-JSON); valid chat bodies
//! built from random JSON values, compact or pretty, then mutated (bytes deleted, inserted,
//! replaced, the body cut); and bodies nested around the 128-level limit. The fuzz target
//! `inspect` checks the same property on inputs libFuzzer grows.
#![allow(clippy::unwrap_used)]

use keyrelay::inspect::ChatRequest;
use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{Map, Value};

const CASES: u32 = 1024;

fn assert_same(body: &[u8]) -> Result<(), TestCaseError> {
    let fast = ChatRequest::parse(body);
    let reference = ChatRequest::parse_reference(body);
    prop_assert_eq!(
        fast,
        reference,
        "on body {:?}",
        String::from_utf8_lossy(body)
    );
    Ok(())
}

/// Pieces that make or break JSON, chat fields, escapes, numbers at the `f64` edge, and
/// bytes that break UTF-8 or are whitespace only outside JSON.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    " ",
    "\n",
    "\t",
    "\r",
    "\u{1}",
    "\u{1f}",
    "\u{a0}",
    "\u{c}",
    "\u{feff}",
    "é",
    "😀",
    "null",
    "true",
    "false",
    "tru",
    "nul",
    "0",
    "-",
    "1",
    "01",
    "-0",
    "0.",
    ".5",
    "1e",
    "1e+",
    "1E-2",
    "1e400",
    "-1e400",
    "1e308",
    "1.8e308",
    "18446744073709551615",
    "18446744073709551616",
    "1e2147483648",
    "0e9999999999",
    "\"model\"",
    "\"messages\"",
    "\"stream\"",
    "\"stream_options\"",
    "\"include_usage\"",
    "\"mod\\u0065l\"",
    "\"m\"",
    "\"\"",
    "[]",
    "{}",
    "\\n",
    "\\\"",
    "\\\\",
    "\\/",
    "\\u",
    "\\u00e9",
    "\\ud800",
    "\\udc00",
    "\\ud83d\\ude00",
    "\\ud800\\n",
    "\\ud800\\u0041",
    "\\x",
    "\\u12",
    "\\uZZZZ",
];

fn token_soup() -> impl Strategy<Value = Vec<u8>> {
    vec(0..TOKENS.len(), 0..40)
        .prop_map(|picks| picks.iter().flat_map(|&n| TOKENS[n].bytes()).collect())
}

/// The inside of a long string: runs of backslashes of every length, escapes good and bad,
/// quotes and control characters, across many 64-byte blocks of the walk's string scan.
fn escape_heavy() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: &[&str] = &[
        "a",
        "abcdefghijklmnopqrstuvwxyz",
        "\\\\",
        "\\",
        "\\\\\\",
        "\\\\\\\\",
        "\\n",
        "\\t",
        "\\\"",
        "\\r",
        "\\/",
        "\\b",
        "\\f",
        "\\u00e9",
        "\\ud83d\\ude00",
        "\\ud800",
        "\\u12",
        "\\x",
        "\\\u{1}",
        "\u{1}",
        "\u{1f}",
        "\"",
        "é",
        "n",
        "t",
    ];
    // Mostly good pieces, so that many strings end at their closing quote.
    let piece = prop_oneof![
        12 => 0..14usize,
        1 => 0..PIECES.len(),
    ];
    vec(piece, 0..200).prop_map(|picks| picks.iter().flat_map(|&n| PIECES[n].bytes()).collect())
}

/// A body that starts as an object with the chat fields, so most soups reach the walk.
fn chat_soup() -> impl Strategy<Value = Vec<u8>> {
    (token_soup(), any::<bool>()).prop_map(|(soup, with_messages)| {
        let head: &[u8] = if with_messages {
            br#"{"model":"m","messages":["#
        } else {
            br#"{"model":"m","messages":[],"x":"#
        };
        [head, &soup].concat()
    })
}

/// A string with the characters serde_json escapes and those it does not.
fn text() -> impl Strategy<Value = String> {
    "[a-z \"\\\\/\u{0}-\u{1f}\u{7f}éü漢😀\u{2028}]{0,16}"
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec(("[a-z_]{0,8}", inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A chat body: the fields inspection reads (each present or not, valid or not) among
/// others, serialized compactly or pretty.
fn chat_body() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![3 => "[a-z0-9.-]{1,12}".prop_map(Value::String), 1 => value()],
        prop_oneof![3 => vec(value(), 0..4).prop_map(Value::Array), 1 => value()],
        proptest::option::of(prop_oneof![
            Just(Value::Bool(true)),
            Just(Value::Bool(false)),
            Just(Value::Null),
            value()
        ]),
        proptest::option::of(value()),
        any::<bool>(),
        vec(("[a-z_]{1,8}", value()), 0..4),
        any::<bool>(),
    )
        .prop_map(
            |(model, messages, stream, options, usage, others, pretty)| {
                let mut body = Map::new();
                for (key, v) in others {
                    body.insert(key, v);
                }
                body.insert("messages".into(), messages);
                body.insert("model".into(), model);
                if let Some(stream) = stream {
                    body.insert("stream".into(), stream);
                }
                if let Some(mut options) = options {
                    if usage && let Value::Object(o) = &mut options {
                        o.insert("include_usage".into(), Value::Bool(true));
                    }
                    body.insert("stream_options".into(), options);
                }
                let body = Value::Object(body);
                if pretty {
                    serde_json::to_vec_pretty(&body).unwrap()
                } else {
                    serde_json::to_vec(&body).unwrap()
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize),
    Replace(usize),
    Cut,
}

fn edits() -> impl Strategy<Value = Vec<(f64, Edit, usize)>> {
    vec(
        (
            0.0..1.0,
            prop_oneof![
                (1..4usize).prop_map(Edit::Delete),
                (0..TOKENS.len()).prop_map(Edit::Insert),
                (0..TOKENS.len()).prop_map(Edit::Replace),
                Just(Edit::Cut),
            ],
            0..256usize,
        ),
        0..4,
    )
}

fn mutate(mut body: Vec<u8>, edits: &[(f64, Edit, usize)]) -> Vec<u8> {
    for (at, edit, byte) in edits {
        let at = ((body.len() as f64) * at) as usize;
        match edit {
            Edit::Delete(n) => {
                body.drain(at..(at + n).min(body.len()));
            }
            Edit::Insert(t) => {
                body.splice(at..at, TOKENS[*t].bytes());
            }
            Edit::Replace(t) if at < body.len() => {
                body.splice(at..at + 1, TOKENS[*t].bytes());
            }
            Edit::Replace(_) => body.push(*byte as u8),
            Edit::Cut => body.truncate(at),
        }
    }
    body
}

/// `x` (or `messages`, or `stream_options`) nested `depth` levels, objects and arrays mixed.
fn nested(depth: usize, kinds: u128, member: &str) -> Vec<u8> {
    let (mut open, mut close) = (String::new(), String::new());
    for level in 0..depth {
        if kinds & (1 << (level % 128)) != 0 {
            open.push_str(r#"{"k":"#);
            close.insert(0, '}');
        } else {
            open.push('[');
            close.insert(0, ']');
        }
    }
    let value = format!("{open}1{close}");
    match member {
        "messages" => format!(r#"{{"model":"m","messages":[{value}]}}"#),
        "stream_options" => {
            format!(r#"{{"model":"m","messages":[],"stream_options":{value}}}"#)
        }
        _ => format!(r#"{{"model":"m","messages":[],"{member}":{value}}}"#),
    }
    .into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn arbitrary_bytes(body in vec(any::<u8>(), 0..256)) {
        assert_same(&body)?;
        assert_same(&[b"{".as_slice(), &body].concat())?;
    }

    #[test]
    fn token_sequences(soup in token_soup(), chat in chat_soup()) {
        assert_same(&soup)?;
        assert_same(&chat)?;
    }

    #[test]
    fn long_strings_with_escapes(
        inside in escape_heavy(),
        offset in 0usize..64,
        role in 0..3,
    ) {
        // Shifted by `offset` so that escapes fall on every place of a block; as a raw
        // value (inspected member), a decoded value (other member) and a key.
        let pad = "p".repeat(offset);
        let inside = String::from_utf8_lossy(&inside);
        let body = match role {
            0 => format!(r#"{{"{pad}":0,"model":"m","messages":[{{"content":"{inside}"}}]}}"#),
            1 => format!(r#"{{"{pad}":0,"model":"m","messages":[],"x":"{inside}"}}"#),
            _ => format!(r#"{{"{pad}":0,"model":"m","messages":[],"{inside}":1}}"#),
        };
        assert_same(body.as_bytes())?;
    }

    #[test]
    fn valid_chat_bodies(body in chat_body()) {
        assert_same(&body)?;
    }

    #[test]
    fn mutated_chat_bodies(body in chat_body(), edits in edits()) {
        assert_same(&mutate(body, &edits))?;
    }

    #[test]
    fn nesting_around_the_limit(
        depth in 120usize..136,
        kinds in any::<u128>(),
        member in prop_oneof![Just("x"), Just("messages"), Just("stream_options")],
        edits in edits(),
    ) {
        let body = nested(depth, kinds, member);
        assert_same(&body)?;
        assert_same(&mutate(body, &edits))?;
    }
}

/// The differential tests are not vacuous: the bodies they generate are accepted often,
/// rejected often, and rejected for many different reasons.
#[test]
fn generated_bodies_reach_acceptance_and_many_kinds_of_error() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeSet;

    let mut runner = TestRunner::deterministic();
    let (mut accepted, mut rejected) = (0, 0);
    let mut kinds = BTreeSet::new();
    let bodies = (chat_body(), edits(), chat_soup());
    for _ in 0..2000 {
        let (body, edits, soup) = bodies.new_tree(&mut runner).unwrap().current();
        for body in [body.clone(), mutate(body, &edits), soup] {
            match ChatRequest::parse(&body) {
                Ok(_) => accepted += 1,
                Err(e) => {
                    rejected += 1;
                    kinds.insert(e.message.split(" at line").next().unwrap().to_owned());
                }
            }
        }
    }
    assert!(
        accepted > 1000 && rejected > 1000,
        "{accepted} / {rejected}"
    );
    assert!(kinds.len() >= 15, "{kinds:#?}");
    assert!(ChatRequest::parse(&nested(126, 0, "x")).is_ok());
    let too_deep = ChatRequest::parse(&nested(127, 0, "x")).unwrap_err();
    assert!(too_deep.message.contains("recursion limit exceeded"));
    assert!(ChatRequest::parse(&nested(127, u128::MAX, "messages")).is_ok());
}
