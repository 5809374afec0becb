//! `GET /status`: a small self-contained HTML page (no external assets) showing each model
//! and key: state, cooldown remaining, attempts, errors, tokens. It reloads itself every few
//! seconds. Same token as `/admin`, also accepted as a Basic-auth password so a browser can
//! open and refresh it.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};

use super::AppState;
use crate::auth::bearer_matches;
use crate::error::ApiError;
use crate::health::KeyState;
use crate::hosts::HostState;

const REFRESH_SECONDS: u32 = 3;

pub async fn page(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(expected) = &state.admin_token else {
        return ApiError::NotFound {
            path: "/status".into(),
        }
        .into_response();
    };
    if !bearer_matches(&headers, expected) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"keyrelay status\"")],
            "the admin token is required (as a bearer token, or as the Basic-auth password)\n",
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        render(&state),
    )
        .into_response()
}

fn render(state: &AppState) -> String {
    let now = state.keys.now_ms();
    let stats = &state.body_ctx.stats;
    let mut html = String::with_capacity(8 * 1024);
    let _ = write!(
        html,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_SECONDS}"><title>keyrelay status</title>
<style>
body{{font:14px system-ui,sans-serif;margin:2em;color:#222}} h1{{font-size:20px}}
table{{border-collapse:collapse;margin:0 0 2em;min-width:60em}} th,td{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}}
th{{background:#f4f4f4}} td.n{{text-align:right;font-variant-numeric:tabular-nums}}
.healthy{{color:#17803d}} .cooling{{color:#b26b00;font-weight:600}} .disabled{{color:#b3261e;font-weight:600}}
.summary span{{margin-right:2em}}
</style></head><body><h1>keyrelay {version}</h1>
<p class="summary"><span>requests in flight: <b id="in-flight">{in_flight}</b></span><span>open streams: <b>{open}</b></span><span>cancelled by clients: <b>{cancelled}</b></span><span>refreshes every {REFRESH_SECONDS} s</span></p>
"#,
        version = env!("CARGO_PKG_VERSION"),
        in_flight = state.in_flight.current(),
        open = stats.open.load(Relaxed),
        cancelled = stats.cancelled.load(Relaxed),
    );
    for (model, pool) in state.keys.models() {
        let _ = writeln!(
            html,
            "<h2>{}</h2><table><tr><th>key</th><th>provider</th><th>state</th><th>failures in a row</th>\
             <th>attempts</th><th>successes</th><th>errors</th><th>cooldowns</th><th>prompt tokens</th>\
             <th>completion tokens</th></tr>",
            escape(model)
        );
        for key in pool.keys() {
            let h = &key.health;
            let (class, state_text) = match h.state(now) {
                KeyState::Healthy => ("healthy", "healthy".to_owned()),
                KeyState::Cooling { until_ms } => (
                    "cooling",
                    format!("cooling, {:.1} s left", (until_ms - now) as f64 / 1000.0),
                ),
                KeyState::Disabled { status } => ("disabled", format!("disabled ({status})")),
            };
            let _ = writeln!(
                html,
                "<tr data-key=\"{label}\"><td>{label}</td><td>{provider}</td><td class=\"{class}\">{state_text}</td>\
                 <td class=n>{fails}</td><td class=n>{attempts}</td><td class=n>{ok}</td><td class=n>{errors}</td>\
                 <td class=n>{cooldowns}</td><td class=n>{prompt}</td><td class=n>{completion}</td></tr>",
                label = escape(&key.label),
                provider = key.provider.name(),
                fails = h.consecutive_failures(),
                attempts = h.attempts.load(Relaxed),
                ok = h.successes.load(Relaxed),
                errors = h.errors.load(Relaxed),
                cooldowns = h.cooldowns.load(Relaxed),
                prompt = h.prompt_tokens.load(Relaxed),
                completion = h.completion_tokens.load(Relaxed),
            );
        }
        html.push_str("</table>\n");
    }
    let hosts = state.keys.hosts();
    if !hosts.is_empty() {
        html.push_str(
            "<h2>upstream hosts</h2><table><tr><th>host</th><th>state</th><th>failures in a row</th>\
             <th>connection failures</th><th>breaker openings</th></tr>\n",
        );
        for host in hosts {
            let (class, state_text) = match host.state(now) {
                HostState::Up => ("healthy", "up".to_owned()),
                HostState::Open { until_ms } => (
                    "disabled",
                    format!("open, {:.1} s left", (until_ms - now) as f64 / 1000.0),
                ),
                HostState::HalfOpen => ("cooling", "half-open (probing)".to_owned()),
            };
            let _ = writeln!(
                html,
                "<tr data-upstream=\"{label}\"><td>{label}</td><td class=\"{class}\">{state_text}</td>\
                 <td class=n>{fails}</td><td class=n>{failures}</td><td class=n>{opens}</td></tr>",
                label = escape(host.label),
                fails = host.consecutive_failures(),
                failures = host.connect_failures.load(Relaxed),
                opens = host.opened.load(Relaxed),
            );
        }
        html.push_str("</table>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// Labels and model names come from configuration, but are still escaped: the page must
/// render whatever an operator named a key.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
