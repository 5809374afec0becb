//! The gate in front of the API endpoints: the client token (401), then a bound on requests
//! in flight (503 with `retry-after` at once, so a flood is refused rather than queued). The
//! in-flight slot is held until the response body, stream included, is done.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::{AppState, error_format};
use crate::error::ApiError;

/// Counts requests in flight against a limit.
#[derive(Debug)]
pub struct InFlight {
    count: Arc<AtomicUsize>,
    limit: usize,
}

impl InFlight {
    pub fn new(limit: usize) -> Self {
        InFlight {
            count: Arc::default(),
            limit,
        }
    }

    pub fn current(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    fn try_acquire(&self) -> Option<Slot> {
        let previous = self.count.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.count.clone());
        // Over the limit: dropping the slot gives the count back.
        (previous < self.limit).then_some(slot)
    }
}

/// One request's place among those in flight, released on drop.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub async fn api_guard(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let format = error_format(&req);
    let caller = match state.auth.authenticate(req.headers()) {
        Ok(caller) => caller,
        Err(e) => return e.into_response_for(format),
    };
    let Some(slot) = state.in_flight.try_acquire() else {
        let limit = state.in_flight.limit;
        return ApiError::Overloaded { limit }.into_response_for(format);
    };
    req.extensions_mut().insert(caller);
    let response = next.run(req).await;
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::new(HoldSlot { body, _slot: slot }))
}

/// A response body that keeps its request's slot until it is finished or dropped.
struct HoldSlot {
    body: Body,
    _slot: Slot,
}

impl http_body::Body for HoldSlot {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
