//! Prometheus metrics: the registry and every series keyrelay exports, rendered by the
//! `prometheus-client` crate.
//!
//! Label values come only from configuration (key labels, model names, token names) or
//! fixed sets (endpoint, outcome, status class), interned once at startup; a request for an
//! unknown model is counted under `model="-"` and never creates a series.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub model: &'static str,
    pub provider: &'static str,
    pub endpoint: &'static str,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub key: &'static str,
    pub model: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabels {
    pub key: &'static str,
    pub model: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyStateLabels {
    pub key: &'static str,
    pub model: &'static str,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub key: &'static str,
    pub model: &'static str,
    pub caller: &'static str,
    pub kind: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub attempts: Family<AttemptLabels, Counter>,
    pub retries: Family<ModelLabels, Counter>,
    pub cooldowns: Family<KeyLabels, Counter>,
    pub key_state: Family<KeyStateLabels, Gauge>,
    pub in_flight: Gauge,
    pub open_streams: Gauge,
    pub duration: Family<EndpointLabels, Histogram>,
    pub ttfb: Family<EndpointLabels, Histogram>,
    pub overhead: Family<EndpointLabels, Histogram>,
    pub tokens: Family<TokenLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~5 min: a proxy's own overhead sits at the bottom, LLM answers at the top.
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyrelay");
        let requests = Family::default();
        let attempts = Family::default();
        let retries = Family::default();
        let cooldowns = Family::default();
        let key_state = Family::default();
        let in_flight = Gauge::default();
        let open_streams = Gauge::default();
        let duration = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let ttfb = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let overhead = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let tokens = Family::default();
        registry.register(
            "requests",
            "Client requests by model, provider, endpoint and status class",
            requests.clone(),
        );
        registry.register(
            "upstream_attempts",
            "Upstream attempts by key label and outcome",
            attempts.clone(),
        );
        registry.register(
            "retries",
            "Attempts after the first, by model",
            retries.clone(),
        );
        registry.register(
            "key_cooldowns",
            "Cooldowns started, by key label",
            cooldowns.clone(),
        );
        registry.register(
            "key_state",
            "1 for each key's current state (healthy, cooling, disabled)",
            key_state.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests in flight, open streams included",
            in_flight.clone(),
        );
        registry.register(
            "open_streams",
            "Response bodies being streamed",
            open_streams.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Request duration until the body is complete",
            duration.clone(),
        );
        registry.register(
            "time_to_first_byte_seconds",
            "Time until the response head",
            ttfb.clone(),
        );
        registry.register(
            "overhead_seconds",
            "Time in keyrelay outside upstream attempts, until the response head",
            overhead.clone(),
        );
        registry.register(
            "tokens",
            "Tokens by key label, model, client token name and kind",
            tokens.clone(),
        );
        Metrics {
            registry,
            requests,
            attempts,
            retries,
            cooldowns,
            key_state,
            in_flight,
            open_streams,
            duration,
            ttfb,
            overhead,
            tokens,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Label values that live as long as the process: each distinct configured string is
/// leaked once, so label sets are `&'static str` and recording allocates nothing.
pub fn intern(s: &str) -> &'static str {
    static SEEN: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut seen = SEEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let set = seen.get_or_insert_with(HashSet::new);
    if let Some(existing) = set.get(s) {
        return existing;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// `2xx`, `4xx`, … for the requests counter.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
