//! The gate in front of the API endpoints: the client token (401), then a bound on requests
//! in flight (503 with `retry-after` at once, so a flood is refused rather than queued). The
//! in-flight slot is held until the response body, stream included, is done.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::HeaderMap;

use super::AppState;
use crate::auth::Caller;
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

    pub fn limit(&self) -> usize {
        self.limit
    }

    fn try_acquire(&self) -> Option<Slot> {
        let previous = self.count.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.count.clone());
        // Over the limit: dropping the slot gives the count back.
        (previous < self.limit).then_some(slot)
    }
}

/// One request's place among those in flight, released on drop.
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the gate lets through with a request: who called, and its place among those in
/// flight, held by the request's trace until the response body is done.
pub struct Admitted {
    pub caller: Caller,
    pub slot: Slot,
}

/// The gate itself: the client token (401), then a free slot (503).
pub fn admit(state: &AppState, headers: &HeaderMap) -> Result<Admitted, ApiError> {
    let caller = state.auth.authenticate(headers)?;
    let slot = state.in_flight.try_acquire().ok_or(ApiError::Overloaded {
        limit: state.in_flight.limit,
    })?;
    Ok(Admitted { caller, slot })
}
