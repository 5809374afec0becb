//! A response body that translates an upstream SSE stream as it arrives: each upstream
//! chunk is parsed, translated and handed to the client before the next one is read, so
//! translation never buffers the stream.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use std::sync::Arc;

use crate::translate::sse::SseParser;
use crate::translate::{SseEvent, StreamTranslator};
use crate::usage::{TokenUsage, UsageCell};

/// Room reserved beyond an upstream frame's length for its translation.
const FRAME_SLACK: usize = 512;

pub struct TranslatedBody<B, T> {
    upstream: B,
    usage: Arc<UsageCell>,
    parser: SseParser,
    translator: T,
    events: Vec<SseEvent>,
    /// Every outgoing frame is split off this one buffer, whose space comes back once the
    /// server has written the frame: one allocation per stream instead of a growing buffer
    /// per frame.
    out: BytesMut,
    done: bool,
}

impl<B, T> TranslatedBody<B, T> {
    /// `usage` receives the stream's token counts when it ends, however it ends.
    pub fn new(upstream: B, translator: T, usage: Arc<UsageCell>) -> Self {
        TranslatedBody {
            upstream,
            usage,
            parser: SseParser::new(),
            translator,
            events: Vec::new(),
            out: BytesMut::new(),
            done: false,
        }
    }
}

impl<B, T> Body for TranslatedBody<B, T>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
    T: StreamTranslator + Unpin,
{
    type Data = Bytes;
    // Failures become in-band error events in the client's format, never a body error:
    // the client must learn why its stream ended.
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let out = &mut this.out;
            match ready!(Pin::new(&mut this.upstream).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers carry nothing for the client
                    };
                    // A translated event is about as long as the original; room for a few
                    // more bytes each saves growing the buffer event by event.
                    out.reserve(data.len() + FRAME_SLACK);
                    if let Err(e) = this.parser.push(&data, &mut this.events) {
                        this.translator.on_error(&e.to_string(), out);
                        this.done = true;
                    }
                    for event in this.events.drain(..) {
                        this.translator.on_event(&event, out);
                    }
                }
                Some(Err(e)) => {
                    this.translator
                        .on_error(&format!("upstream stream failed: {e}"), out);
                    this.done = true;
                }
                None => {
                    this.parser.finish(&mut this.events);
                    for event in this.events.drain(..) {
                        this.translator.on_event(&event, out);
                    }
                    this.translator.on_end(out);
                    this.done = true;
                }
            }
            if this.done
                && let Some(usage) = this
                    .translator
                    .usage()
                    .as_ref()
                    .and_then(TokenUsage::from_openai)
            {
                this.usage.set(usage);
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out.split().freeze()))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
