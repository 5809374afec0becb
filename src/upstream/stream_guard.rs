//! What stands between an upstream response body and the client once headers are sent: an
//! idle timeout between chunks, an in-band error event when a passthrough stream breaks
//! (nothing may be retried after the first byte, so the client must at least learn why its
//! stream ended), and a count of streams the client abandoned.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use serde_json::json;
use tokio::time::{Instant, Sleep};

use super::coalesce::Coalesce;
use crate::error::{ErrorFormat, TimeoutKind};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an upstream body stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the upstream sent nothing for {0:?}")]
    Idle(Duration),
    #[error("the upstream stream failed: {0}")]
    Upstream(BoxError),
}

/// An upstream body that fails with `StreamError::Idle` when no frame arrives in time.
pub struct IdleTimeout<B> {
    inner: B,
    idle: Duration,
    /// When the last frame arrived. The timer is not re-armed per frame (that costs a timer
    /// wheel update on every chunk); when it fires early, it is moved to `last + idle`.
    last: Instant,
    deadline: Pin<Box<Sleep>>,
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            last: Instant::now(),
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.last = Instant::now();
                Poll::Ready(frame.map(|f| f.map_err(|e| StreamError::Upstream(e.into()))))
            }
            Poll::Pending => loop {
                ready!(this.deadline.as_mut().poll(cx));
                let due = this.last + this.idle;
                if Instant::now() >= due {
                    return Poll::Ready(Some(Err(StreamError::Idle(this.idle))));
                }
                // Frames arrived since the timer was set: wait out the rest from the last one.
                this.deadline.as_mut().reset(due);
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The error event a client of `format` understands, for a stream that broke after its
/// first byte.
pub fn in_band_error(format: ErrorFormat, error: &StreamError) -> Bytes {
    let (code, message) = match error {
        StreamError::Idle(_) => (TimeoutKind::Idle.code(), error.to_string()),
        StreamError::Upstream(_) => ("upstream_stream_failed", error.to_string()),
    };
    let frame = match format {
        ErrorFormat::OpenAi => {
            let body = json!({"error": {"message": message, "type": "server_error", "param": null, "code": code}});
            format!("data: {body}\n\n")
        }
        ErrorFormat::Anthropic => {
            let kind = if matches!(error, StreamError::Idle(_)) {
                "timeout_error"
            } else {
                "api_error"
            };
            let body = json!({"type": "error", "error": {"type": kind, "message": message}});
            format!("event: error\ndata: {body}\n\n")
        }
    };
    Bytes::from(frame)
}

/// Counters shared by every response body.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Responses whose client went away before the body was complete.
    pub cancelled: AtomicU64,
    /// Bodies currently being sent.
    pub open: AtomicU64,
}

/// The body sent to the client: upstream failures become an in-band error event when the
/// response is a stream (`in_band` set) and end the body otherwise; a client that leaves
/// early is counted, and dropping this body drops the upstream connection with it. Frames
/// that arrive together leave together (see `Coalesce`).
pub struct ClientBody<B: Body> {
    inner: Coalesce<B>,
    in_band: Option<ErrorFormat>,
    stats: Arc<StreamStats>,
    finished: bool,
}

impl<B: Body> ClientBody<B> {
    pub fn new(inner: B, in_band: Option<ErrorFormat>, stats: Arc<StreamStats>) -> Self {
        stats.open.fetch_add(1, Ordering::Relaxed);
        ClientBody {
            inner: Coalesce::new(inner),
            in_band,
            stats,
            finished: false,
        }
    }
}

impl<B> Body for ClientBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<StreamError> + Unpin,
{
    type Data = Bytes;
    type Error = StreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamError>>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            None => {
                this.finished = true;
                Poll::Ready(None)
            }
            Some(Ok(frame)) => {
                if this.inner.is_end_stream() {
                    this.finished = true;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                let e: StreamError = e.into();
                this.finished = true;
                tracing::warn!(error = %e, "upstream stream ended early");
                match this.in_band {
                    Some(format) => Poll::Ready(Some(Ok(Frame::data(in_band_error(format, &e))))),
                    None => Poll::Ready(Some(Err(e))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for ClientBody<B> {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        // Dropped before its end: the client went away. (A body the server stopped polling
        // because it knew the length was complete reports `is_end_stream`.)
        if !self.finished {
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl From<std::convert::Infallible> for StreamError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}
