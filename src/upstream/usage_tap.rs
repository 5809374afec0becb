//! Reads token usage out of a same-format response as it passes, without changing a byte
//! and without holding the stream back: SSE events are parsed alongside the forwarding,
//! and a plain JSON body is kept (bounded) until it ends.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use serde::Deserialize;
use serde_json::Value;

use super::gathered::Gathered;
use crate::error::ErrorFormat;
use crate::json_member::{self, Member};
use crate::translate::SseEvent;
use crate::translate::sse::SseParser;
use crate::usage::{OpenAiUsage, TokenUsage, UsageCell};

/// JSON bodies larger than this are passed on without being read for usage.
const MAX_JSON_BODY: usize = 8 * 1024 * 1024;

enum Reader {
    Sse {
        parser: SseParser,
        events: Vec<SseEvent>,
    },
    /// A JSON body: usually one frame, kept as it came; copied only if a second one follows.
    Json(Gathered),
    Off,
}

/// The counts of an OpenAI stream's usage chunk: `"choices": []` and a `usage` object.
fn usage_chunk(data: &[u8]) -> Option<TokenUsage> {
    let [Member::At(choices), Member::At(usage)] =
        json_member::find_each(data, ["choices", "usage"])
    else {
        return None;
    };
    let no_choices = data[choices..]
        .strip_prefix(b"[")
        .map(<[u8]>::trim_ascii_start);
    if !no_choices.is_some_and(|rest| rest.starts_with(b"]")) {
        return None;
    }
    OpenAiUsage::read(&data[usage..])
}

/// The one member of a JSON answer the tap reads; the rest is scanned, not built.
#[derive(serde::Deserialize)]
struct UsageOnly<T> {
    usage: Option<T>,
}

pub struct UsageTap<B> {
    inner: B,
    api: ErrorFormat,
    reader: Reader,
    /// Anthropic streams report usage in pieces (input counts at the start, running output
    /// totals later); the latest value of each field is kept here.
    anthropic: serde_json::Map<String, Value>,
    usage: Arc<UsageCell>,
}

impl<B> UsageTap<B> {
    /// `api` says whose usage shape to expect; `is_stream` whether the body is SSE.
    pub fn new(inner: B, api: ErrorFormat, is_stream: bool, usage: Arc<UsageCell>) -> Self {
        let reader = if is_stream {
            Reader::Sse {
                parser: SseParser::new(),
                events: Vec::new(),
            }
        } else {
            Reader::Json(Gathered::default())
        };
        UsageTap {
            inner,
            api,
            reader,
            anthropic: serde_json::Map::new(),
            usage,
        }
    }

    fn observe(&mut self, data: &Bytes) {
        match &mut self.reader {
            Reader::Sse { parser, events } => {
                if parser.push(data, events).is_err() {
                    self.reader = Reader::Off;
                    return;
                }
                for event in events.drain(..) {
                    let Some(usage) = event_usage(self.api, &event) else {
                        continue;
                    };
                    let counts = match self.api {
                        ErrorFormat::OpenAi => TokenUsage::from_openai(&usage),
                        ErrorFormat::Anthropic => {
                            let fields = usage.as_object().into_iter().flatten();
                            for (k, v) in fields.filter(|(_, v)| !v.is_null()) {
                                self.anthropic.insert(k.clone(), v.clone());
                            }
                            TokenUsage::from_anthropic(&Value::Object(self.anthropic.clone()))
                        }
                    };
                    if let Some(counts) = counts {
                        self.usage.set(counts);
                    }
                }
            }
            Reader::Json(buf) if buf.len() + data.len() <= MAX_JSON_BODY => buf.push(data.clone()),
            Reader::Json(_) => self.reader = Reader::Off,
            Reader::Off => {}
        }
    }

    fn finish(&mut self) {
        if let Reader::Json(buf) = &self.reader
            && let Some(usage) = json_usage(self.api, buf.as_slice())
        {
            self.usage.set(usage);
        }
        self.reader = Reader::Off;
    }
}

/// The usage of a whole JSON answer: the member found by a scan and read on its own, or
/// the answer read whole when the scan is unsure.
fn json_usage(api: ErrorFormat, body: &[u8]) -> Option<TokenUsage> {
    match json_member::find(body, "usage") {
        Member::At(at) => match api {
            ErrorFormat::OpenAi => OpenAiUsage::read(&body[at..]),
            ErrorFormat::Anthropic => {
                let mut usage = serde_json::Deserializer::from_slice(&body[at..]);
                TokenUsage::from_anthropic(&Value::deserialize(&mut usage).ok()?)
            }
        },
        Member::Absent => None,
        Member::Unsure => whole_json_usage(api, body),
    }
}

fn whole_json_usage(api: ErrorFormat, body: &[u8]) -> Option<TokenUsage> {
    match api {
        ErrorFormat::OpenAi => {
            let answer: UsageOnly<OpenAiUsage> = serde_json::from_slice(body).ok()?;
            answer.usage.map(|u| u.0)
        }
        ErrorFormat::Anthropic => {
            let answer: UsageOnly<Value> = serde_json::from_slice(body).ok()?;
            TokenUsage::from_anthropic(&answer.usage?)
        }
    }
}

/// The usage object an SSE event carries, parsing only events that can carry one.
fn event_usage(api: ErrorFormat, event: &SseEvent) -> Option<Value> {
    match api {
        // OpenAI: every chunk has `"usage": null` under include_usage; only the last has counts.
        ErrorFormat::OpenAi => {
            if !event.data.contains("\"usage\"") || event.data.contains("\"usage\":null") {
                return None;
            }
            let mut chunk: Value = serde_json::from_str(&event.data).ok()?;
            Some(chunk.get_mut("usage")?.take())
        }
        // Anthropic: message_start carries input counts, message_delta the running totals.
        ErrorFormat::Anthropic => {
            let kind = event.event.as_deref()?;
            if kind != "message_start" && kind != "message_delta" {
                return None;
            }
            let mut payload: Value = serde_json::from_str(&event.data).ok()?;
            let usage = match payload.get("usage") {
                Some(_) => payload.get_mut("usage")?,
                None => payload.pointer_mut("/message/usage")?,
            };
            Some(usage.take())
        }
    }
}

impl<B> Body for UsageTap<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    this.observe(data);
                }
                if this.inner.is_end_stream() {
                    this.finish();
                }
            }
            None => this.finish(),
            Some(Err(_)) => this.reader = Reader::Off,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// For an OpenAI stream whose client did not ask for usage but keyrelay did (to account
/// for tokens): records the usage chunk's counts, then drops that chunk and the
/// `"usage": null` members the upstream adds to every chunk, so the client sees the stream
/// it asked for. Frames are re-emitted as `data: …` events; nothing else changes. (It reads
/// the usage itself, so the stream is parsed once, not also by a `UsageTap`.)
pub struct UsageStrip<B> {
    inner: B,
    parser: SseParser,
    events: Vec<SseEvent>,
    usage: Arc<UsageCell>,
    /// One buffer for every outgoing frame: each is split off it, and once the server has
    /// written and dropped a frame, its space is taken back instead of allocated anew.
    out: BytesMut,
}

impl<B> UsageStrip<B> {
    pub fn new(inner: B, usage: Arc<UsageCell>) -> Self {
        UsageStrip {
            inner,
            parser: SseParser::new(),
            events: Vec::new(),
            usage,
            out: BytesMut::new(),
        }
    }
}

/// Appends the event as the client should see it to `out`; the usage-only chunk is
/// dropped, and its counts returned.
fn strip_usage_into(data: &[u8], out: &mut BytesMut) -> Option<TokenUsage> {
    let mut emit = |data: &[u8], tail: &[u8]| {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(data);
        out.extend_from_slice(tail);
        out.extend_from_slice(b"\n\n");
    };
    // The common case first: a content chunk whose last member is `"usage":null`.
    if let Some(stripped) = data.strip_suffix(b",\"usage\":null}") {
        emit(stripped, b"}");
        return None;
    }
    if memchr::memmem::find(data, b"\"usage\"").is_none() {
        emit(data, b"");
        return None;
    }
    // The usage chunk (`"choices": []` and the counts) is read without building the rest.
    if let Some(usage) = usage_chunk(data) {
        return Some(usage);
    }
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(mut chunk)) => {
            let is_usage_chunk = chunk
                .get("choices")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
                && chunk.get("usage").is_some_and(|u| !u.is_null());
            if is_usage_chunk {
                return chunk.get("usage").and_then(TokenUsage::from_openai);
            }
            chunk.remove("usage");
            emit(Value::Object(chunk).to_string().as_bytes(), b"");
            None
        }
        _ => {
            emit(data, b"");
            None
        }
    }
}

impl<B> Body for UsageStrip<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        loop {
            let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                other => return Poll::Ready(other),
            };
            let Some(data) = frame.data_ref() else {
                continue;
            };
            let out = &mut this.out;
            out.reserve(data.len());
            let usage = &this.usage;
            let mut strip = |payload: &[u8]| {
                if let Some(counts) = strip_usage_into(payload, out) {
                    usage.set(counts);
                }
            };
            // Frames of whole events are read in place; anything else goes through the
            // parser, and past its event size limit the stream is passed on as it is.
            if let Some(payloads) = this.parser.whole_data_events(data) {
                payloads.for_each(&mut strip);
            } else if this.parser.push(data, &mut this.events).is_ok() {
                this.events
                    .drain(..)
                    .for_each(|event| strip(event.data.as_bytes()));
            } else {
                return Poll::Ready(Some(Ok(frame)));
            }
            if !this.out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(this.out.split().freeze()))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    async fn tap(api: ErrorFormat, is_stream: bool, chunks: &[&'static str]) -> Option<TokenUsage> {
        let frames = chunks.iter().map(|c| {
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(c.as_bytes())))
        });
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let cell = Arc::new(UsageCell::default());
        let collected = UsageTap::new(body, api, is_stream, cell.clone())
            .collect()
            .await;
        assert_eq!(
            collected.map(|c| c.to_bytes().len()).unwrap_or(0),
            chunks.concat().len(),
            "passes every byte"
        );
        cell.get()
    }

    #[tokio::test]
    async fn openai_stream_usage_chunk() {
        let got = tap(
            ErrorFormat::OpenAi,
            true,
            &[
                "data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\n\n",
                "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"comp",
                "letion_tokens\":12,\"total_tokens\":21}}\n\ndata: [DONE]\n\n",
            ],
        )
        .await;
        assert_eq!(
            got,
            Some(TokenUsage {
                prompt: 9,
                completion: 12,
                cached: 0
            })
        );
    }

    #[tokio::test]
    async fn anthropic_stream_merges_start_and_delta() {
        let got = tap(ErrorFormat::Anthropic, true, &[
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":7,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":30}}\n\n",
        ]).await;
        assert_eq!(
            got,
            Some(TokenUsage {
                prompt: 10,
                completion: 30,
                cached: 3
            })
        );
    }

    /// The event as the client sees it (`None` when dropped), and the usage read from it.
    fn strip(data: &str) -> (Option<String>, Option<TokenUsage>) {
        let mut out = BytesMut::new();
        let usage = strip_usage_into(data.as_bytes(), &mut out);
        let text = String::from_utf8(out.to_vec()).expect("utf-8");
        let event = (!text.is_empty()).then(|| {
            text.strip_prefix("data: ")
                .and_then(|t| t.strip_suffix("\n\n"))
                .expect("one data event")
                .to_owned()
        });
        (event, usage)
    }

    #[test]
    fn strip_removes_what_the_client_did_not_ask_for() {
        assert_eq!(
            strip(r#"{"id":"c","choices":[{"delta":{"content":"a"}}],"usage":null}"#),
            (
                Some(r#"{"id":"c","choices":[{"delta":{"content":"a"}}]}"#.into()),
                None
            )
        );
        assert_eq!(
            strip(r#"{"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#),
            (
                None,
                Some(TokenUsage {
                    prompt: 1,
                    completion: 2,
                    cached: 0
                })
            )
        );
        assert_eq!(strip("[DONE]"), (Some("[DONE]".into()), None));
        assert_eq!(
            strip(r#"{"usage": null, "choices": [{"index": 0}]}"#),
            (Some(r#"{"choices":[{"index":0}]}"#.into()), None)
        );
    }

    #[tokio::test]
    async fn json_body_usage() {
        let got = tap(
            ErrorFormat::OpenAi,
            false,
            &[
                "{\"choices\":[],\"usage\":{\"prompt_tok",
                "ens\":4,\"completion_tokens\":2}}",
            ],
        )
        .await;
        assert_eq!(got.map(|u| (u.prompt, u.completion)), Some((4, 2)));
    }

    #[test]
    fn json_usage_by_scan_and_by_whole_body_agree() {
        let openai = br#"{"id": "c", "usage": {"prompt_tokens": 9, "completion_tokens": 8, "prompt_tokens_details": {"cached_tokens": 3}}}"#;
        let anthropic = br#"{"content": [{"type": "text", "text": "}"}], "usage": {"input_tokens": 5, "cache_read_input_tokens": 2, "output_tokens": 7}}"#;
        for (api, body, expected) in [
            (ErrorFormat::OpenAi, &openai[..], (9, 8, 3)),
            (ErrorFormat::Anthropic, &anthropic[..], (7, 7, 2)),
        ] {
            let counts = |u: TokenUsage| (u.prompt, u.completion, u.cached);
            assert_eq!(json_usage(api, body).map(counts), Some(expected));
            assert_eq!(whole_json_usage(api, body).map(counts), Some(expected));
        }
        // An escaped key leaves the scan unsure; the whole-body read still finds the usage.
        let escaped = br#"{"us\u0061ge": {"prompt_tokens": 1, "completion_tokens": 1}}"#;
        assert_eq!(
            json_usage(ErrorFormat::OpenAi, escaped).map(|u| u.prompt),
            Some(1)
        );
        assert_eq!(json_usage(ErrorFormat::OpenAi, br#"{"usage": null}"#), None);
        assert_eq!(json_usage(ErrorFormat::OpenAi, br#"{"usage": [1]}"#), None);
    }
}
