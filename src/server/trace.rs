//! One request's account: who called, which keys were tried with what outcome, when the
//! response head left and when the body ended, and the tokens used. It becomes the
//! request's log line and its metrics when the response body is finished (or abandoned),
//! so streamed requests are logged with their real duration and token counts.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderValue;
use http_body::{Frame, SizeHint};

use super::AppState;
use super::guard::{Admitted, Slot};
use crate::auth::Caller;
use crate::metrics::{RequestLabels, TokenLabels, status_class};
use crate::pool::Key;
use crate::upstream::failover::AttemptRecord;
use crate::usage::UsageCell;

pub struct RequestTrace {
    state: Arc<AppState>,
    endpoint: &'static str,
    pub request_id: HeaderValue,
    caller: &'static str,
    /// The model as the client named it (truncated), for the log.
    model: Option<String>,
    /// The configured model, for metric labels; `-` until one is found.
    model_label: &'static str,
    /// The key whose answer the client gets.
    served_by: Option<Arc<Key>>,
    attempts: Vec<AttemptRecord>,
    started: Instant,
    head: Option<(u16, Duration)>,
    pub usage: Arc<UsageCell>,
    finished: bool,
    /// The request's place among those in flight, given back when the trace ends with the
    /// response body.
    _slot: Slot,
}

impl RequestTrace {
    /// Starts the account of a request the gate admitted; returns its caller.
    pub fn begin(
        endpoint: &'static str,
        state: &Arc<AppState>,
        admitted: Admitted,
        request_id: HeaderValue,
    ) -> (RequestTrace, Caller) {
        let Admitted { caller, slot } = admitted;
        let trace = RequestTrace {
            state: state.clone(),
            endpoint,
            request_id,
            caller: caller.name(),
            model: None,
            model_label: "-",
            served_by: None,
            attempts: Vec::new(),
            started: Instant::now(),
            head: None,
            usage: Arc::default(),
            finished: false,
            _slot: slot,
        };
        (trace, caller)
    }

    pub fn request_id_str(&self) -> &str {
        self.request_id.to_str().unwrap_or("-")
    }

    /// The model the client asked for, and its configured name once it is known to exist.
    pub fn model(&mut self, requested: String, configured: Option<&'static str>) {
        self.model = Some(requested);
        if let Some(name) = configured {
            self.model_label = name;
        }
    }

    pub fn attempt(&mut self, key: &Arc<Key>, record: AttemptRecord) {
        self.served_by = Some(key.clone());
        self.attempts.push(record);
    }

    /// An attempt that ended before any upstream could answer, for the log line only.
    pub fn attempt_unanswered(&mut self, record: AttemptRecord) {
        self.attempts.push(record);
    }

    /// The key that answers (also for in-process `mock` keys, which make no attempt).
    pub fn served_by(&mut self, key: &Arc<Key>) {
        self.served_by = Some(key.clone());
    }

    /// The response head is ready: records time to first byte and keyrelay's own share of
    /// it, then hands the account to the body, which finishes it when the body ends.
    pub fn respond(mut self, response: Response) -> Response {
        let ttfb = self.started.elapsed();
        let upstream: Duration = self.attempts.iter().map(|a| a.elapsed).sum();
        self.state.metrics.endpoint(self.endpoint, |series| {
            series.ttfb.observe(ttfb.as_secs_f64());
            series
                .overhead
                .observe(ttfb.saturating_sub(upstream).as_secs_f64());
        });
        self.head = Some((response.status().as_u16(), ttfb));
        let (parts, body) = response.into_parts();
        Response::from_parts(parts, Body::new(TracedBody { body, trace: self }))
    }

    /// The attempts as the log shows them (`key:outcome:status,…`), formatted in place.
    fn attempts_text(&self) -> Attempts<'_> {
        Attempts(&self.attempts)
    }

    /// Logs the request's line and records its metrics, once.
    fn finish(&mut self, body_complete: bool) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let duration = self.started.elapsed();
        let model = self.model.as_deref().unwrap_or("-");
        let (key, provider) = self
            .served_by
            .as_ref()
            .map_or(("-", "-"), |k| (k.metric.key, k.provider.name()));
        let usage = self.usage.get();
        let Some((status, ttfb)) = self.head else {
            self.state
                .body_ctx
                .stats
                .cancelled
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                request_id = %self.request_id_str(), caller = self.caller, endpoint = self.endpoint,
                model, key, attempts = %self.attempts_text(), duration_ms = ms(duration),
                "request cancelled by the client before the response"
            );
            return;
        };
        let metrics = &self.state.metrics;
        let labels = RequestLabels {
            model: self.model_label,
            provider,
            endpoint: self.endpoint,
            status_class: status_class(status),
        };
        metrics.request(labels, self.served_by.as_deref().map(|k| &k.series));
        metrics.endpoint(self.endpoint, |series| {
            series.duration.observe(duration.as_secs_f64());
        });
        if let Some(u) = usage {
            if let Some(served_by) = &self.served_by {
                served_by.health.add_tokens(u.prompt, u.completion);
            }
            let labels = TokenLabels {
                key,
                model: self.model_label,
                caller: self.caller,
                kind: "",
            };
            let served = self.served_by.as_deref().map(|k| &k.series);
            metrics.tokens(labels, served, [u.prompt, u.completion, u.cached]);
        }
        tracing::info!(
            request_id = %self.request_id_str(),
            caller = self.caller,
            endpoint = self.endpoint,
            model,
            key,
            attempts = %self.attempts_text(),
            status,
            duration_ms = ms(duration),
            ttfb_ms = ms(ttfb),
            prompt_tokens = usage.map(|u| u.prompt),
            completion_tokens = usage.map(|u| u.completion),
            cached_tokens = usage.map(|u| u.cached),
            complete = body_complete,
            "request"
        );
    }
}

pub(crate) struct Attempts<'a>(&'a [AttemptRecord]);

impl std::fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, attempt) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            attempt.fmt(f)?;
        }
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

impl Drop for RequestTrace {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// The response body, carrying the request's account until it ends.
struct TracedBody {
    body: Body,
    trace: RequestTrace,
}

impl http_body::Body for TracedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.trace.finish(true);
        } else if let Poll::Ready(Some(Ok(_))) = frame
            && this.body.is_end_stream()
        {
            this.trace.finish(true);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_listed_in_order_with_commas() {
        let record = |key, outcome, status| AttemptRecord {
            key,
            outcome,
            status,
            elapsed: Duration::ZERO,
        };
        let attempts = [
            record("k1", "rate_limited", Some(429)),
            record("k2", "timeout", None),
            record("k3", "success", Some(200)),
        ];
        assert_eq!(
            Attempts(&attempts).to_string(),
            "k1:rate_limited:429,k2:timeout,k3:success:200"
        );
        assert_eq!(Attempts(&[]).to_string(), "");
    }
}
