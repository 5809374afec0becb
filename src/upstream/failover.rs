//! The attempt loop: pick the model's next healthy key, send, classify the outcome, update
//! the key's health, and move on to the next key while the failure is one another key may
//! not have, until the attempt budget is spent.
//!
//! Nothing here runs after response headers reach the client: the loop ends with the
//! response head, so a retry can never duplicate bytes the client has already seen.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::connections::UpstreamBody;

use super::client::{UpstreamClient, UpstreamRequest};
use crate::config::FailoverOptions;
use crate::error::{ApiError, truncate_for_message};
use crate::exhaustion::Exhaustion;
use crate::health::{Outcome, Transition};
use crate::hosts::HostTransition;
use crate::metrics::{Metrics, ModelLabels, UpstreamLabels};
use crate::pool::{Key, KeyPool, ModelPool, Pick, Recorded, Tried};
use crate::provider::Family;
use crate::request_id;
use crate::server::trace::RequestTrace;

/// One attempt, for the request's log line.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub key: &'static str,
    pub outcome: &'static str,
    pub status: Option<u16>,
    /// From sending the request to the upstream's response head (or failure).
    pub elapsed: Duration,
}

/// Counts an attempt the client abandoned (the request future was dropped mid-attempt).
struct AttemptGuard<'a> {
    metrics: &'a Metrics,
    key: &'a Key,
    done: bool,
}

impl Drop for AttemptGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.metrics
                .attempt(&self.key.metric, &self.key.series, "client_cancelled");
        }
    }
}

impl std::fmt::Display for AttemptRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{}:{}:{s}", self.key, self.outcome),
            None => write!(f, "{}:{}", self.key, self.outcome),
        }
    }
}

/// Where the request ended up.
#[expect(
    clippy::large_enum_variant,
    reason = "made once per request and matched at once; boxing would only add an allocation"
)]
pub enum Served<'p> {
    /// An upstream answered: a success, a client error, or the last retryable failure, to
    /// be passed on (translated if the formats differ).
    Upstream(&'p Arc<Key>, http::Response<UpstreamBody>),
    /// A `mock` key: answered in-process by the caller.
    InProcess(&'p Arc<Key>),
}

pub struct Failover<'a> {
    pub client: &'a UpstreamClient,
    pub keys: &'a KeyPool,
    pub opts: &'a FailoverOptions,
    pub metrics: &'a Metrics,
    pub exhaustion: &'a Exhaustion,
}

impl Failover<'_> {
    /// Serves one request from `pool`. `build` makes the upstream request for a key (it may
    /// differ per key: model rewrite, translation). Every attempt goes into `trace`.
    pub async fn serve<'p>(
        &self,
        model: &str,
        pool: &'p ModelPool,
        mut build: impl FnMut(&Key) -> Result<UpstreamRequest, ApiError>,
        trace: &mut RequestTrace,
    ) -> Result<Served<'p>, ApiError> {
        let budget = (self.opts.max_attempts as usize).min(pool.keys().len());
        let mut tried = Tried::with_capacity(budget);
        let wait_until = tokio::time::Instant::now() + self.opts.wait_for_key;
        let mut last: Option<Result<Served<'p>, ApiError>> = None;
        loop {
            let key = match pool.pick(self.keys.now_ms(), &tried) {
                Pick::Key(key) => key,
                Pick::AllCooling { retry_in } | Pick::HostsDown { retry_in }
                    if last.is_none() && tokio::time::Instant::now() + retry_in <= wait_until =>
                {
                    tokio::time::sleep(retry_in + Duration::from_millis(1)).await;
                    continue;
                }
                Pick::AllCooling { retry_in } if last.is_none() => {
                    return Err(ApiError::AllKeysCooling {
                        model: truncate_for_message(model),
                        retry_after_secs: seconds(retry_in),
                    });
                }
                Pick::HostsDown { retry_in } if last.is_none() => {
                    return Err(ApiError::UpstreamsDown {
                        model: truncate_for_message(model),
                        retry_after_secs: seconds(retry_in),
                    });
                }
                Pick::AllDisabled if last.is_none() => {
                    return Err(ApiError::AllKeysDisabled {
                        model: truncate_for_message(model),
                    });
                }
                // Out of usable keys after at least one failed attempt: the client gets
                // that failure as the upstream gave it.
                Pick::AllCooling { .. }
                | Pick::HostsDown { .. }
                | Pick::AllDisabled
                | Pick::Exhausted => {
                    return last.unwrap_or(Err(ApiError::AllKeysDisabled {
                        model: truncate_for_message(model),
                    }));
                }
            };
            if key.provider.family() == Family::Mock {
                return Ok(Served::InProcess(key));
            }
            tried.key(pool.index_of(key));
            if tried.attempts() > 1 {
                let labels = ModelLabels {
                    model: key.metric.model,
                };
                self.metrics.retries.get_or_create(&labels).inc();
            }
            let mut request = build(key)?;
            request
                .headers_mut()
                .insert(request_id::HEADER.clone(), trace.request_id.clone());
            let mut guard = AttemptGuard {
                metrics: self.metrics,
                key,
                done: false,
            };
            let started = Instant::now();
            let result = self
                .client
                .send(request, || self.keys.host_reached(key))
                .await;
            guard.done = true;
            let (outcome, status) = match &result {
                Ok(resp) => (
                    Outcome::from_response(resp.status().as_u16(), resp.headers()),
                    Some(resp.status().as_u16()),
                ),
                Err(e) => match e.blame() {
                    Ok(outcome) => (outcome, None),
                    // This host ran out of something: nobody upstream is to blame, and
                    // another key would fail the same way.
                    Err(resource) => {
                        self.exhaustion.note(resource, "connecting to an upstream");
                        trace.attempt_unanswered(AttemptRecord {
                            key: key.metric.key,
                            outcome: "local_exhaustion",
                            status: None,
                            elapsed: started.elapsed(),
                        });
                        return Err(ApiError::ProxyOverloaded { resource });
                    }
                },
            };
            let recorded = self.keys.record(key, outcome);
            self.record_metrics(key, outcome, recorded);
            trace.attempt(
                key,
                AttemptRecord {
                    key: key.metric.key,
                    outcome: outcome.label(),
                    status,
                    elapsed: started.elapsed(),
                },
            );
            if let (Outcome::Unreachable { .. }, Some(host)) = (outcome, &key.host) {
                tried.unreachable(host);
            }
            let result = result
                .map(|resp| Served::Upstream(key, resp))
                .map_err(|e| self.client.api_error(e, &key.label));
            if !outcome.is_retryable() || tried.attempts() >= budget {
                return result;
            }
            tracing::warn!(
                request_id = %trace.request_id_str(),
                key = key.metric.key,
                outcome = outcome.label(),
                status,
                "attempt failed; trying the next key"
            );
            // Dropping an unread failure body closes that connection; failures are rare
            // enough that keeping it for reuse is not worth reading the body.
            last = Some(result);
        }
    }

    fn record_metrics(&self, key: &Key, outcome: Outcome, recorded: Recorded) {
        if let Some(Transition::CoolingDown(_)) = recorded.key {
            self.metrics.cooldowns.get_or_create(&key.metric).inc();
        }
        if let Some(host) = &key.host {
            let labels = UpstreamLabels {
                upstream: host.label,
            };
            if let Outcome::Unreachable { .. } = outcome {
                self.metrics
                    .upstream_connect_failures
                    .get_or_create(&labels)
                    .inc();
            }
            if let Some(HostTransition::Opened(_)) = recorded.host {
                self.metrics
                    .upstream_breaker_opens
                    .get_or_create(&labels)
                    .inc();
            }
        }
        self.metrics
            .attempt(&key.metric, &key.series, outcome.label());
    }
}

/// Whole seconds for `retry-after`, at least 1.
fn seconds(d: Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}
