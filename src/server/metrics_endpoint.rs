//! `GET /metrics`: the Prometheus text exposition. Gauges that mirror live state (key
//! states, requests in flight, open streams) are refreshed at scrape time, so the request
//! path never touches them.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};

use super::AppState;
use crate::auth::bearer_matches;
use crate::health::KeyState;
use crate::metrics::{KeyStateLabels, UpstreamStateLabels};

pub async fn render(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.metrics_token
        && !bearer_matches(&headers, expected)
    {
        return (
            StatusCode::UNAUTHORIZED,
            "a valid metrics bearer token is required\n",
        )
            .into_response();
    }
    let metrics = &state.metrics;
    let now = state.keys.now_ms();
    for key in state.keys.all_keys() {
        let current = match key.health.state(now) {
            KeyState::Healthy => "healthy",
            KeyState::Cooling { .. } => "cooling",
            KeyState::Disabled { .. } => "disabled",
        };
        for s in ["healthy", "cooling", "disabled"] {
            let labels = KeyStateLabels {
                key: key.metric.key,
                model: key.metric.model,
                state: s,
            };
            metrics
                .key_state
                .get_or_create(&labels)
                .set(i64::from(s == current));
        }
    }
    for host in state.keys.hosts() {
        let current = host.state(now).label();
        for s in ["up", "open", "half_open"] {
            let labels = UpstreamStateLabels {
                upstream: host.label,
                state: s,
            };
            metrics
                .upstream_state
                .get_or_create(&labels)
                .set(i64::from(s == current));
        }
    }
    metrics
        .in_flight
        .set(i64::try_from(state.in_flight.current()).unwrap_or(i64::MAX));
    let open = state.body_ctx.stats.open.load(Relaxed);
    metrics
        .open_streams
        .set(i64::try_from(open).unwrap_or(i64::MAX));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}
