//! `/admin/keys`: every key's state and counters, and a reset. Off unless
//! `KEYRELAY_ADMIN_TOKEN` is set; then that token is required as a bearer token (compared in
//! constant time). Keys appear by label only.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::AppState;
use crate::auth::bearer_matches;
use crate::error::{ApiError, truncate_for_message};
use crate::health::KeyState;
use crate::hosts::{Host, HostState};
use crate::pool::Key;

pub async fn keys(State(state): State<Arc<AppState>>, req: Request) -> Response {
    if let Some(refused) = refusal(&state, req.headers()) {
        return refused;
    }
    let now = state.keys.now_ms();
    let keys: Vec<Value> = state
        .keys
        .all_keys()
        .iter()
        .map(|k| key_json(k, now))
        .collect();
    let upstreams: Vec<Value> = state
        .keys
        .hosts()
        .iter()
        .map(|h| host_json(h, now))
        .collect();
    let exhausted: serde_json::Map<String, Value> = state
        .exhaustion
        .counts()
        .map(|(resource, n)| (resource.label().to_owned(), json!(n)))
        .collect();
    let stats = &state.body_ctx.stats;
    axum::Json(json!({
        "keys": keys,
        "upstreams": upstreams,
        "local_exhaustion": exhausted,
        "requests_cancelled": stats.cancelled.load(Relaxed),
        "open_streams": stats.open.load(Relaxed),
        "in_flight": state.in_flight.current(),
        "max_concurrency": state.in_flight.limit(),
    }))
    .into_response()
}

pub async fn reset(
    State(state): State<Arc<AppState>>,
    Path(label): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    match state.keys.all_keys().iter().find(|k| k.label == label) {
        Some(key) => {
            key.health.reset();
            // An operator vouching for the key vouches for the host it goes to.
            if let Some(host) = &key.host {
                host.reset();
            }
            tracing::info!(key = %key.label, "key (and its upstream host) reset to healthy by an operator");
            axum::Json(key_json(key, state.keys.now_ms())).into_response()
        }
        None => admin_error(
            StatusCode::NOT_FOUND,
            &format!("No key is labelled {:?}.", truncate_for_message(&label)),
        ),
    }
}

/// An upstream host's breaker: up, open until T, or half-open (being probed).
fn host_json(host: &Host, now_ms: u64) -> Value {
    let state = host.state(now_ms);
    let mut v = json!({
        "upstream": host.label,
        "state": state.label(),
        "consecutive_failures": host.consecutive_failures(),
        "connect_failures": host.connect_failures.load(Relaxed),
        "breaker_opens": host.opened.load(Relaxed),
    });
    if let HostState::Open { until_ms } = state {
        let remaining = Duration::from_millis(until_ms.saturating_sub(now_ms));
        v["open_remaining_s"] = json!(remaining.as_secs_f64());
    }
    v
}

fn key_json(key: &Key, now_ms: u64) -> Value {
    let h = &key.health;
    let mut v = json!({
        "label": key.label,
        "model": key.model,
        "provider": key.provider.name(),
        "upstream": key.host.as_ref().map(|h| h.label),
        "consecutive_failures": h.consecutive_failures(),
        "attempts": h.attempts.load(Relaxed),
        "successes": h.successes.load(Relaxed),
        "errors": h.errors.load(Relaxed),
        "cooldowns": h.cooldowns.load(Relaxed),
        "prompt_tokens": h.prompt_tokens.load(Relaxed),
        "completion_tokens": h.completion_tokens.load(Relaxed),
    });
    match h.state(now_ms) {
        KeyState::Healthy => v["state"] = json!("healthy"),
        KeyState::Cooling { until_ms } => {
            let remaining = Duration::from_millis(until_ms - now_ms);
            v["state"] = json!("cooling");
            v["cooldown_remaining_s"] = json!(remaining.as_secs_f64());
            v["cooling_until"] =
                json!(humantime::format_rfc3339_seconds(SystemTime::now() + remaining).to_string());
        }
        KeyState::Disabled { status } => {
            v["state"] = json!("disabled");
            v["disabled_reason"] = json!(format!("upstream answered {status}"));
        }
    }
    v
}

/// The response refusing this request, or `None` when it carries the admin token.
fn refusal(state: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = &state.admin_token else {
        // Off: indistinguishable from a path that does not exist.
        let off = ApiError::NotFound {
            path: "/admin".into(),
        };
        return Some(off.into_response());
    };
    if bearer_matches(headers, expected) {
        None
    } else {
        let message = "A valid admin bearer token is required.";
        Some(admin_error(StatusCode::UNAUTHORIZED, message))
    }
}

fn admin_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})))
        .into_response()
}
