//! The attempt loop: pick the model's next healthy key, send, classify the outcome, update
//! the key's health, and move on to the next key while the failure is one another key may
//! not have, until the attempt budget is spent.
//!
//! Nothing here runs after response headers reach the client: the loop ends with the
//! response head, so a retry can never duplicate bytes the client has already seen.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;

use super::client::{UpstreamClient, UpstreamRequest};
use crate::config::FailoverOptions;
use crate::error::{ApiError, truncate_for_message};
use crate::health::Outcome;
use crate::pool::{Key, KeyPool, ModelPool, Pick};
use crate::provider::Family;

/// One attempt, for the request's log line.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub key: String,
    pub outcome: &'static str,
    pub status: Option<u16>,
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
pub enum Served<'p> {
    /// An upstream answered: a success, a client error, or the last retryable failure, to
    /// be passed on (translated if the formats differ).
    Upstream(&'p Arc<Key>, http::Response<Incoming>),
    /// A `mock` key: answered in-process by the caller.
    InProcess(&'p Arc<Key>),
}

pub struct Failover<'a> {
    pub client: &'a UpstreamClient,
    pub keys: &'a KeyPool,
    pub opts: &'a FailoverOptions,
}

impl Failover<'_> {
    /// Serves one request from `pool`. `build` makes the upstream request for a key (it may
    /// differ per key: model rewrite, translation). Every attempt is appended to `log`.
    pub async fn serve<'p>(
        &self,
        model: &str,
        pool: &'p ModelPool,
        mut build: impl FnMut(&Key) -> Result<UpstreamRequest, ApiError>,
        log: &mut Vec<AttemptRecord>,
    ) -> Result<Served<'p>, ApiError> {
        let budget = (self.opts.max_attempts as usize).min(pool.keys().len());
        let mut tried: Vec<usize> = Vec::with_capacity(budget);
        let wait_until = tokio::time::Instant::now() + self.opts.wait_for_key;
        let mut last: Option<Result<Served<'p>, ApiError>> = None;
        loop {
            let key = match pool.pick(self.keys.now_ms(), &tried) {
                Pick::Key(key) => key,
                Pick::AllCooling { retry_in } if last.is_none() => {
                    if tokio::time::Instant::now() + retry_in <= wait_until {
                        tokio::time::sleep(retry_in + Duration::from_millis(1)).await;
                        continue;
                    }
                    return Err(ApiError::AllKeysCooling {
                        model: truncate_for_message(model),
                        retry_after_secs: retry_in.as_secs_f64().ceil().max(1.0) as u64,
                    });
                }
                Pick::AllDisabled if last.is_none() => {
                    return Err(ApiError::AllKeysDisabled {
                        model: truncate_for_message(model),
                    });
                }
                // Out of usable keys after at least one failed attempt: the client gets
                // that failure as the upstream gave it.
                Pick::AllCooling { .. } | Pick::AllDisabled | Pick::Exhausted => {
                    return last.unwrap_or(Err(ApiError::AllKeysDisabled {
                        model: truncate_for_message(model),
                    }));
                }
            };
            if key.provider.family() == Family::Mock {
                return Ok(Served::InProcess(key));
            }
            tried.push(pool.index_of(key));
            let result = self.client.send(build(key)?, &key.label).await;
            let (outcome, status) = match &result {
                Ok(resp) => (
                    Outcome::from_response(resp.status().as_u16(), resp.headers()),
                    Some(resp.status().as_u16()),
                ),
                Err(ApiError::UpstreamTimeout { .. }) => (Outcome::Timeout, None),
                Err(_) => (Outcome::ConnectFailed, None),
            };
            self.keys.record(key, outcome);
            log.push(AttemptRecord {
                key: key.label.clone(),
                outcome: outcome.label(),
                status,
            });
            let result = result.map(|resp| Served::Upstream(key, resp));
            if !outcome.is_retryable() || tried.len() >= budget {
                return result;
            }
            // Dropping an unread failure body closes that connection; failures are rare
            // enough that keeping it for reuse is not worth reading the body.
            last = Some(result);
        }
    }
}
