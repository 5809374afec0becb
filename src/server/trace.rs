//! The one log line per request: endpoint, model, every attempt with its key label and
//! outcome, status and duration. A request dropped before it was answered (the client went
//! away) is logged and counted as cancelled.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::auth::Caller;
use crate::upstream::failover::AttemptRecord;
use crate::upstream::stream_guard::StreamStats;

pub struct RequestTrace {
    endpoint: &'static str,
    /// The client token's name, `-` when tokens are off.
    pub caller: String,
    pub model: Option<String>,
    pub attempts: Vec<AttemptRecord>,
    started: Instant,
    stats: Arc<StreamStats>,
    answered: bool,
}

impl RequestTrace {
    pub fn new(endpoint: &'static str, stats: &Arc<StreamStats>) -> Self {
        RequestTrace {
            endpoint,
            caller: "-".to_owned(),
            model: None,
            attempts: Vec::new(),
            started: Instant::now(),
            stats: stats.clone(),
            answered: false,
        }
    }

    /// The caller the API guard established, now named in this request's log line.
    pub fn identify(&mut self, extensions: &http::Extensions) -> Caller {
        let caller = extensions.get::<Caller>().cloned().unwrap_or_default();
        caller.name().clone_into(&mut self.caller);
        caller
    }

    fn attempts_text(&self) -> String {
        let parts: Vec<String> = self.attempts.iter().map(ToString::to_string).collect();
        parts.join(",")
    }

    /// Logs the request's line once its response head is ready.
    pub fn answered(&mut self, status: u16) {
        self.answered = true;
        tracing::info!(
            endpoint = self.endpoint,
            caller = %self.caller,
            model = self.model.as_deref().unwrap_or("-"),
            attempts = %self.attempts_text(),
            status,
            ms = self.started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
}

impl Drop for RequestTrace {
    fn drop(&mut self) {
        if !self.answered {
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                endpoint = self.endpoint,
                caller = %self.caller,
                model = self.model.as_deref().unwrap_or("-"),
                attempts = %self.attempts_text(),
                ms = self.started.elapsed().as_secs_f64() * 1000.0,
                "request cancelled by the client before the response"
            );
        }
    }
}
