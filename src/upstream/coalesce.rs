//! Gathers the frames of an upstream body that are already on their way into one write.
//!
//! hyper's pooled client hands a response body from the connection task to the request's
//! task one frame at a time, through a one-slot channel. The server, finding no next frame
//! ready, flushes after every frame: an 11-event stream that left the upstream in one
//! packet went to the client in 11 `writev`s (nginx: 3), and those syscalls were most of a
//! stream's CPU. So after a frame this body yields to the scheduler, letting the connection
//! task decode what it has already read, and returns everything that arrived meanwhile as
//! one frame. It never waits on a clock: once a few scheduler passes bring nothing new the
//! batch goes out, so a quiet upstream costs those passes (microseconds), and frames still
//! reach the client as they are produced.
//!
//! Since then upstream connections are polled by the request's own task
//! (`upstream::connections`), so frames already read arrive without a yield; the passes
//! still gather a burst that reaches the socket in more than one piece, and translated
//! bodies (one output frame per upstream frame) are joined the same way. Measured with the
//! own connections, 0 and 4 passes are within noise of each other (±5 %).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::gathered::Gathered;

/// No batch grows past this; a fast large body is passed on in pieces of about this size.
const MAX_BATCH: usize = 64 * 1024;

/// Scheduler passes without a new frame before the batch goes out. One is not enough: the
/// connection task is often not run before this one is polled again. Measured on the
/// benchmark's 16-connection stream (11 events from the mock): 1 pass left 13 `writev`s per
/// stream, 4 passes 2, and 8 passes no fewer; streams per second rose 2.6× (see
/// BENCHMARKS.md).
const QUIET_PASSES: u8 = 4;

pub struct Coalesce<B: Body> {
    inner: B,
    /// Data received and not yet returned.
    batch: Gathered,
    /// The inner body ended (or failed) while a batch was held: returned after the batch.
    after: Option<Option<Result<Frame<Bytes>, B::Error>>>,
    /// Scheduler passes left before a held batch goes out; reset by every new frame.
    passes: u8,
}

impl<B: Body> Coalesce<B> {
    pub fn new(inner: B) -> Self {
        Coalesce {
            inner,
            batch: Gathered::default(),
            after: None,
            passes: 0,
        }
    }
}

impl<B> Body for Coalesce<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if let Some(end) = this.after.take() {
            return Poll::Ready(end);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let frame = match frame.into_data() {
                        Ok(data) => data,
                        // Trailers: whatever is held goes first.
                        Err(frame) => return this.flush_then(Some(Ok(frame))),
                    };
                    this.batch.push(frame);
                    if this.inner.is_end_stream() || this.batch.len() >= MAX_BATCH {
                        return this.flush();
                    }
                    this.passes = QUIET_PASSES;
                }
                Poll::Ready(end) => return this.flush_then(end),
                Poll::Pending if this.passes > 0 => {
                    // Give the connection task its turn; the inner body has registered this
                    // task's waker too, so whichever comes first wakes it.
                    this.passes -= 1;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Pending => return this.flush(),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.batch.is_empty() && self.after.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let held = self.batch.len() as u64;
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

impl<B> Coalesce<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Unpin,
{
    /// The held batch, or `Pending` when nothing is held.
    fn flush(&mut self) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.passes = 0;
        match self.batch.take() {
            Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
            None => Poll::Pending,
        }
    }

    /// The held batch, then `end`; `end` at once when nothing is held.
    fn flush_then(
        &mut self,
        end: Option<Result<Frame<Bytes>, B::Error>>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.passes = 0;
        match self.batch.take() {
            Some(data) => {
                self.after = Some(end);
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            None => Poll::Ready(end),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::collections::VecDeque;

    /// Like hyper's client body: one frame per poll and `Pending` in between, waking itself
    /// as the connection task does when it hands over the next frame.
    struct Trickle {
        frames: VecDeque<&'static str>,
        between: bool,
    }

    impl Body for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.between = !self.between;
            if !self.between {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let next = self.frames.pop_front();
            Poll::Ready(next.map(|f| Ok(Frame::data(Bytes::from_static(f.as_bytes())))))
        }
    }

    async fn next_data<B>(body: &mut Coalesce<B>) -> Option<Bytes>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Unpin + std::fmt::Debug,
    {
        let frame = body.frame().await?.expect("no error");
        Some(frame.into_data().expect("a data frame"))
    }

    #[tokio::test]
    async fn frames_that_arrive_together_leave_together() {
        let inner = Trickle {
            frames: ["data: 1\n\n", "data: 2\n\n", "data: 3\n\n"].into(),
            between: false,
        };
        let mut body = Coalesce::new(inner);
        let batch = next_data(&mut body).await;
        assert_eq!(
            batch.as_deref(),
            Some(&b"data: 1\n\ndata: 2\n\ndata: 3\n\n"[..])
        );
        assert_eq!(next_data(&mut body).await, None);
    }

    #[tokio::test]
    async fn a_frame_does_not_wait_for_the_next_one() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
        let frames = futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx).map(|f| {
                f.map(|f| {
                    Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(f.as_bytes())))
                })
            })
        });
        let mut body = Coalesce::new(StreamBody::new(frames));
        tx.send("data: 1\n\n").expect("open");
        // The upstream is quiet now: the first event must come out on its own.
        assert_eq!(
            next_data(&mut body).await.as_deref(),
            Some(&b"data: 1\n\n"[..])
        );
        tx.send("data: 2\n\n").expect("open");
        tx.send("data: 3\n\n").expect("open");
        drop(tx);
        assert_eq!(
            next_data(&mut body).await.as_deref(),
            Some(&b"data: 2\n\ndata: 3\n\n"[..])
        );
        assert_eq!(next_data(&mut body).await, None);
    }

    #[tokio::test]
    async fn large_bodies_go_out_in_bounded_pieces() {
        static BIG: [u8; 40 * 1024] = [b'x'; 40 * 1024];
        let big = std::str::from_utf8(&BIG).expect("ascii");
        let inner = Trickle {
            frames: [big, big, big].into(),
            between: false,
        };
        let mut body = Coalesce::new(inner);
        let mut sizes = Vec::new();
        while let Some(data) = next_data(&mut body).await {
            sizes.push(data.len());
        }
        assert_eq!(sizes, [80 * 1024, 40 * 1024]);
    }
}
