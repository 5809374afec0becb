//! Request inspection: find `model` and `stream` in a Chat Completions body without building
//! a JSON tree, and rewrite `model` in place when the upstream knows the model by another name.
//!
//! Every other field is walked without being kept, so malformed JSON, invalid UTF-8,
//! duplicate keys and nesting deeper than serde_json's limit of 128 levels are all rejected
//! here, before any key is touched. The walk is hand-written (`json`): one pass over the
//! bytes after a SIMD UTF-8 check, accepting and wording errors exactly as the serde_json
//! walk it replaced (`reference`), which the differential tests hold it to.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

mod json;
mod reference;

/// What the proxy needs to know about a chat request.
#[derive(Debug, PartialEq, Eq)]
pub struct ChatRequest {
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage` is `true`.
    pub include_usage: bool,
    /// Byte range of the `model` value (quotes included) in the body.
    model_span: Range<usize>,
    /// Byte range of the `stream_options` value, when present.
    stream_options_span: Option<Range<usize>>,
    /// Byte offset just after the body's opening `{`.
    object_start: usize,
}

/// Why a body is not a usable chat request; the message names the problem for the client.
#[derive(Debug, PartialEq, Eq)]
pub struct InvalidRequest {
    pub message: String,
    pub param: Option<&'static str>,
}

impl ChatRequest {
    pub fn parse(body: &[u8]) -> Result<ChatRequest, InvalidRequest> {
        let invalid = |message: String, param| Err(InvalidRequest { message, param });
        let Ok(text) = simdutf8::basic::from_utf8(body) else {
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
        let members = match json::members(body) {
            Ok(m) => m,
            Err(e) => {
                return invalid(
                    format!(
                        "We could not parse the JSON body of your request: {}",
                        e.message(body)
                    ),
                    None,
                );
            }
        };
        let Some(model_span) = members.model else {
            return invalid("Missing required parameter: 'model'.".into(), Some("model"));
        };
        let Ok(model) = serde_json::from_str::<String>(&text[model_span.clone()]) else {
            return invalid(
                "Invalid type for 'model': expected a string.".into(),
                Some("model"),
            );
        };
        if model.is_empty() {
            return invalid("Invalid 'model': empty string.".into(), Some("model"));
        }
        match members.messages.map(|m| body[m.start]) {
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
        let stream = match members.stream.map(|s| &text[s]) {
            None | Some("null") | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return invalid(
                    "Invalid type for 'stream': expected a boolean.".into(),
                    Some("stream"),
                );
            }
        };
        // serde_json on this one value, as before: its depth and number rules decide.
        let include_usage = members
            .stream_options
            .as_ref()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&text[s.clone()]).ok())
            .is_some_and(|o| o.get("include_usage") == Some(&serde_json::Value::Bool(true)));
        Ok(ChatRequest {
            model,
            stream,
            include_usage,
            model_span,
            stream_options_span: members.stream_options,
            object_start: text.len() - text.trim_start().len() + 1,
        })
    }

    /// The serde_json-based `parse` this one replaced, for the differential tests only.
    #[doc(hidden)]
    pub fn parse_reference(body: &[u8]) -> Result<ChatRequest, InvalidRequest> {
        reference::parse(body)
    }

    /// The body with `model` replaced by `new_model`, everything else byte-for-byte.
    pub fn with_model(&self, body: &Bytes, new_model: &str) -> Bytes {
        self.rewrite(body, Some(new_model), false)
    }

    /// The body as it goes upstream: `model` replaced when `new_model` is given, and
    /// `stream_options.include_usage` set to true when `request_usage` (keyrelay asks for
    /// usage it must account for even when the client did not); every other byte as sent.
    pub fn rewrite(&self, body: &Bytes, new_model: Option<&str>, request_usage: bool) -> Bytes {
        let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::with_capacity(2);
        if let Some(model) = new_model {
            edits.push((
                self.model_span.clone(),
                serde_json::to_vec(model).unwrap_or_default(),
            ));
        }
        if request_usage && !self.include_usage {
            match &self.stream_options_span {
                Some(span) => {
                    let mut options =
                        serde_json::from_slice::<serde_json::Value>(&body[span.clone()])
                            .ok()
                            .filter(serde_json::Value::is_object)
                            .unwrap_or_else(|| serde_json::json!({}));
                    options["include_usage"] = serde_json::Value::Bool(true);
                    edits.push((span.clone(), options.to_string().into_bytes()));
                }
                // The body has `model` and `messages`, so a member follows the insertion.
                None => edits.push((
                    self.object_start..self.object_start,
                    br#""stream_options":{"include_usage":true},"#.to_vec(),
                )),
            }
        }
        if edits.is_empty() {
            return body.clone();
        }
        edits.sort_by_key(|(range, _)| range.start);
        let extra: usize = edits.iter().map(|(_, b)| b.len()).sum();
        let mut out = BytesMut::with_capacity(body.len() + extra);
        let mut at = 0;
        for (range, bytes) in edits {
            out.extend_from_slice(&body[at..range.start]);
            out.extend_from_slice(&bytes);
            at = range.end;
        }
        out.extend_from_slice(&body[at..]);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> InvalidRequest {
        ChatRequest::parse(body.as_bytes()).expect_err("should be rejected")
    }

    #[test]
    fn finds_model_and_stream_anywhere() {
        let body = r#"{"messages":[{"role":"user","content":"{\"model\":\"x\"}"}],"stream":true,"model":"gpt-4o"}"#;
        let req = ChatRequest::parse(body.as_bytes()).expect("valid");
        assert_eq!(req.model, "gpt-4o");
        assert!(req.stream);
        let req =
            ChatRequest::parse(br#"{"model":"m","messages":[],"stream":null}"#).expect("valid");
        assert!(!req.stream);
    }

    #[test]
    fn rewrites_only_the_model_value() {
        let body = Bytes::from_static(
            br#"{ "model" :  "alias" , "messages":[{"content":"model alias"}]}"#,
        );
        let req = ChatRequest::parse(&body).expect("valid");
        let out = req.with_model(&body, "real\"id");
        assert_eq!(
            &out[..],
            br#"{ "model" :  "real\"id" , "messages":[{"content":"model alias"}]}"#
        );
    }

    #[test]
    fn usage_is_requested_without_touching_anything_else() {
        let body = Bytes::from_static(br#" { "model": "m", "stream": true, "messages": [] }"#);
        let req = ChatRequest::parse(&body).expect("valid");
        assert!(!req.include_usage);
        let out = req.rewrite(&body, Some("real"), true);
        assert_eq!(&out[..], br#" {"stream_options":{"include_usage":true}, "model": "real", "stream": true, "messages": [] }"#);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("still JSON");
        assert_eq!(v["stream_options"]["include_usage"], true);

        let body = Bytes::from_static(br#"{"model":"m","stream":true,"stream_options":{"include_obfuscation":false},"messages":[]}"#);
        let req = ChatRequest::parse(&body).expect("valid");
        let out = req.rewrite(&body, None, true);
        assert_eq!(&out[..], br#"{"model":"m","stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true},"messages":[]}"#);

        let body = Bytes::from_static(
            br#"{"model":"m","stream_options":{"include_usage":true},"messages":[]}"#,
        );
        let req = ChatRequest::parse(&body).expect("valid");
        assert!(req.include_usage);
        assert_eq!(
            req.rewrite(&body, None, true),
            body,
            "already asked: unchanged"
        );
    }

    #[test]
    fn escaped_model_names_are_decoded() {
        let req = ChatRequest::parse(br#"{"model":"gpt\u002d4o","messages":[]}"#).expect("valid");
        assert_eq!(req.model, "gpt-4o");
    }

    /// A body whose object holds `x` nested `depth - 1` levels deep (alternating arrays and
    /// objects), so the whole body is `depth` levels deep counting its own object.
    fn nested_body(depth: usize) -> String {
        let inner = depth - 1;
        let (mut open, mut close) = (String::new(), String::new());
        for level in 0..inner {
            if level % 2 == 0 {
                open.push('[');
                close.insert(0, ']');
            } else {
                open.push_str(r#"{"k":"#);
                close.insert(0, '}');
            }
        }
        format!(r#"{{"model":"m","messages":[],"x":{open}1{close}}}"#)
    }

    #[test]
    fn depth_limit_is_serde_jsons_128() {
        // serde_json's recursion limit counts the body's own object: 127 levels in all pass,
        // 128 do not. The message names the limit and where it was hit.
        assert!(ChatRequest::parse(nested_body(127).as_bytes()).is_ok());
        for depth in [128, 129] {
            let e = err(&nested_body(depth));
            assert!(
                e.message
                    .contains("recursion limit exceeded at line 1 column"),
                "{depth}: {e:?}"
            );
        }
        let arrays = |n: usize| {
            format!(
                r#"{{"model":"m","messages":[],"x":{}{}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        assert!(ChatRequest::parse(arrays(126).as_bytes()).is_ok());
        assert_eq!(
            err(&arrays(127)).message,
            "We could not parse the JSON body of your request: recursion limit exceeded at line 1 column 158"
        );
        // The values keyrelay keeps as raw text (`messages`, `stream_options`...) are walked
        // without a depth count, as serde_json walks a `RawValue`.
        let deep_messages = format!(
            r#"{{"model":"m","messages":{}{}}}"#,
            "[".repeat(1000),
            "]".repeat(1000)
        );
        assert!(ChatRequest::parse(deep_messages.as_bytes()).is_ok());
        let deep_options = format!(
            r#"{{"model":"m","messages":[],"stream_options":{}{{"include_usage":true}}{}}}"#,
            "[".repeat(300),
            "]".repeat(300)
        );
        let req = ChatRequest::parse(deep_options.as_bytes()).expect("valid");
        assert!(!req.include_usage);
    }

    /// Exact messages for the ways a body can be malformed; each names the problem and its
    /// place as serde_json words it.
    #[test]
    fn syntax_errors_are_worded_as_serde_json_words_them() {
        let prefix = "We could not parse the JSON body of your request: ";
        let cases: &[(&str, &str)] = &[
            (
                r#"{"model": "m", "messages": [}"#,
                "expected value at line 1 column 29",
            ),
            (
                r#"{"model":"m","messages":[],"x":"\udc00"}"#,
                "lone leading surrogate in hex escape at line 1 column 38",
            ),
            (
                r#"{"model":"m","messages":[],"x":1e400}"#,
                "number out of range at line 1 column 36",
            ),
            (
                "\u{a0}{\"model\":\"m\",\"messages\":[]}",
                "expected value at line 1 column 1",
            ),
            (
                "{\"model\":\"m\",\"messages\":[],\"x\":\"a\u{1}\"}",
                "control character (\\u0000-\\u001F) found while parsing a string at line 1 column 34",
            ),
            (
                "{\"model\":\"m\",\"messages\":[\"a\u{1}\"]}",
                "control character (\\u0000-\\u001F) found while parsing a string at line 1 column 27",
            ),
            (
                r#"{"model":"a","model":"b","messages":[]}"#,
                "duplicate field `model` at line 1 column 20",
            ),
            (
                r#"{"model":"a","messages":[],"model"}"#,
                "duplicate field `model` at line 1 column 35",
            ),
            (
                r#"{"model":"a","messages":[],"x":[1,]}"#,
                "trailing comma at line 1 column 35",
            ),
            (
                r#"{"model":"a","messages":[1,]}"#,
                "expected value at line 1 column 28",
            ),
            (
                "{\"model\":\"m\",\n\"messages\":[]} x",
                "trailing characters at line 2 column 16",
            ),
            (
                r#"{"model":"m","messages":[],"x":{"a":1,}}"#,
                "trailing comma at line 1 column 39",
            ),
            (
                r#"{"model":"m","messages":[{"a":1,}]}"#,
                "key must be a string at line 1 column 33",
            ),
            (
                r#"{"model":"m","messages":[],"x":tru}"#,
                "expected ident at line 1 column 35",
            ),
            (
                r#"{"model":"m","messages":[],"x":01}"#,
                "invalid number at line 1 column 33",
            ),
            (
                r#"{"model":"m","messages":[],"x":"\x"}"#,
                "invalid escape at line 1 column 34",
            ),
            (
                r#"{"model":"m","messages":[],"x":"\ud800"}"#,
                "unexpected end of hex escape at line 1 column 39",
            ),
            (
                r#"{"model":"m","messages":[],"x":[1 2]}"#,
                "expected `,` or `]` at line 1 column 35",
            ),
            (
                r#"{"model":"m","messages":[],"x" 1}"#,
                "expected `:` at line 1 column 32",
            ),
            (
                r#"{"model":"m","messages":["#,
                "EOF while parsing a list at line 1 column 25",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(body, expected)| err(body).message != format!("{prefix}{expected}"))
            .map(|(body, _)| format!("{body}: {}", err(body).message))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn values_kept_raw_are_checked_as_serde_json_checks_a_raw_value() {
        // `messages` is only walked: lone surrogates and huge numbers pass there, while a
        // field keyrelay does not read is decoded value by value and rejects both.
        for body in [
            r#"{"model":"m","messages":["\udc00"]}"#,
            r#"{"model":"m","messages":[1e400]}"#,
            r#"{"model":"m","messages":[],"stream_options":{"x":"\ud800"}}"#,
        ] {
            assert!(ChatRequest::parse(body.as_bytes()).is_ok(), "{body}");
        }
        // Keys are decoded: an escaped `model` is `model`.
        let req = ChatRequest::parse(br#"{"mod\u0065l":"a","messages":[]}"#).expect("valid");
        assert_eq!(req.model, "a");
        assert!(
            err(r#"{"model":"a","mod\u0065l":"b","messages":[]}"#)
                .message
                .contains("duplicate field `model`")
        );
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        assert!(err("").message.contains("empty"));
        assert!(err("[1]").message.contains("JSON object"));
        assert!(
            err(r#"{"model": "m", "messages": [}"#)
                .message
                .contains("could not parse")
        );
        assert_eq!(err(r#"{"messages": []}"#).param, Some("model"));
        assert_eq!(err(r#"{"model": 4, "messages": []}"#).param, Some("model"));
        assert_eq!(err(r#"{"model": "m"}"#).param, Some("messages"));
        assert_eq!(
            err(r#"{"model": "m", "messages": {}}"#).param,
            Some("messages")
        );
        assert_eq!(
            err(r#"{"model": "m", "messages": [], "stream": "yes"}"#).param,
            Some("stream")
        );
        assert!(
            err(r#"{"model": "a", "model": "b", "messages": []}"#)
                .message
                .contains("duplicate")
        );
        let deep = format!(
            r#"{{"model":"m","messages":[],"x":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(
            err(&deep).message.contains("recursion limit"),
            "{:?}",
            err(&deep)
        );
        let fine = format!(
            r#"{{"model":"m","messages":[],"x":{}{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(ChatRequest::parse(fine.as_bytes()).is_ok());
        let invalid_utf8 =
            ChatRequest::parse(b"{\"model\":\"\xff\",\"messages\":[]}").expect_err("bad");
        assert!(invalid_utf8.message.contains("UTF-8"));
    }
}
