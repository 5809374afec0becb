//! Prometheus metrics: the registry and every series keyrelay exports, rendered by the
//! `prometheus-client` crate.
//!
//! Label values come only from configuration (key labels, model names, token names) or
//! fixed sets (endpoint, outcome, status class), interned once at startup; a request for an
//! unknown model is counted under `model="-"` and never creates a series.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

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
pub struct ResourceLabels {
    pub resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub upstream: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamStateLabels {
    pub upstream: &'static str,
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

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub key: &'static str,
    pub model: &'static str,
    pub caller: &'static str,
    pub kind: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// Each endpoint's histograms, memoized (`Memo`).
    endpoints: Memo<&'static str, EndpointSeries>,
    pub requests: Family<RequestLabels, Counter>,
    pub attempts: Family<AttemptLabels, Counter>,
    pub retries: Family<ModelLabels, Counter>,
    pub cooldowns: Family<KeyLabels, Counter>,
    pub key_state: Family<KeyStateLabels, Gauge>,
    pub upstream_state: Family<UpstreamStateLabels, Gauge>,
    pub upstream_connect_failures: Family<UpstreamLabels, Counter>,
    pub upstream_breaker_opens: Family<UpstreamLabels, Counter>,
    pub exhaustion: Family<ResourceLabels, Counter>,
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
        let upstream_state = Family::default();
        let upstream_connect_failures = Family::default();
        let upstream_breaker_opens = Family::default();
        let exhaustion = Family::default();
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
            "upstream_state",
            "1 for each upstream host's breaker state (up, open, half_open)",
            upstream_state.clone(),
        );
        registry.register(
            "upstream_connect_failures",
            "Connections to an upstream host that could not be made (refused, DNS, TLS, timeout)",
            upstream_connect_failures.clone(),
        );
        registry.register(
            "upstream_breaker_opens",
            "Times an upstream host's breaker opened",
            upstream_breaker_opens.clone(),
        );
        registry.register(
            "local_exhaustion",
            "Requests refused, and connections not accepted (one count per 50 ms retry of the accept loop), because this host ran out of a resource (open files, memory, socket buffers, local ports)",
            exhaustion.clone(),
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
            endpoints: Memo::default(),
            requests,
            attempts,
            retries,
            cooldowns,
            key_state,
            upstream_state,
            upstream_connect_failures,
            upstream_breaker_opens,
            exhaustion,
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
    /// Runs `record` with `endpoint`'s histograms.
    pub fn endpoint<R>(
        &self,
        endpoint: &'static str,
        record: impl FnOnce(&EndpointSeries) -> R,
    ) -> R {
        let labels = EndpointLabels { endpoint };
        self.endpoints.with(
            endpoint,
            || EndpointSeries {
                duration: self.duration.get_or_create(&labels).clone(),
                ttfb: self.ttfb.get_or_create(&labels).clone(),
                overhead: self.overhead.get_or_create(&labels).clone(),
            },
            record,
        )
    }

    /// Counts an attempt by `key` that ended in `outcome`.
    pub fn attempt(&self, key: &KeyLabels, series: &KeySeries, outcome: &'static str) {
        let labels = || AttemptLabels {
            key: key.key,
            model: key.model,
            outcome,
        };
        series.attempts.with(
            outcome,
            || self.attempts.get_or_create(&labels()).clone(),
            Counter::inc,
        );
    }

    /// Counts a request whose answer came from `key` (`served`) or from keyrelay itself.
    pub fn request(&self, labels: RequestLabels, served: Option<&KeySeries>) {
        let series = || self.requests.get_or_create(&labels).clone();
        match served {
            Some(s) => s.requests.with(
                (labels.model, labels.endpoint, labels.status_class),
                series,
                Counter::inc,
            ),
            None => self.requests.get_or_create(&labels).inc(),
        };
    }

    /// Adds the prompt, completion and cached tokens of a request answered by `served`.
    pub fn tokens(&self, labels: TokenLabels, served: Option<&KeySeries>, counts: [u64; 3]) {
        let make = || {
            TOKEN_KINDS.map(|kind| {
                let labels = TokenLabels { kind, ..labels };
                self.tokens.get_or_create(&labels).clone()
            })
        };
        let add = |counters: &[Counter; 3]| {
            for (counter, n) in counters.iter().zip(counts) {
                counter.inc_by(n);
            }
        };
        match served {
            Some(s) => s.tokens.with((labels.model, labels.caller), make, add),
            None => add(&make()),
        }
    }

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

/// The `kind` label of the token counters, in the order `Metrics::tokens` takes counts.
pub const TOKEN_KINDS: [&str; 3] = ["prompt", "completion", "cached"];

/// One endpoint's latency histograms.
pub struct EndpointSeries {
    pub duration: Histogram,
    pub ttfb: Histogram,
    pub overhead: Histogram,
}

/// One key's series, memoized as they are first recorded.
#[derive(Default)]
pub struct KeySeries {
    /// By outcome.
    attempts: Memo<&'static str, Counter>,
    /// By (model, endpoint, status class) of the requests this key answered.
    requests: Memo<(&'static str, &'static str, &'static str), Counter>,
    /// By (model, caller): prompt, completion and cached tokens.
    tokens: Memo<(&'static str, &'static str), [Counter; 3]>,
}

impl std::fmt::Debug for KeySeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeySeries")
    }
}

/// Series handles kept beside the labels they belong to, found by a scan of a few slots.
///
/// A family lookup takes the family's lock and hashes the whole label set (about 600
/// instructions; a request records eight series). A handle shares its series, so once
/// memoized, recording is an atomic add. Slots fill once and are never replaced; when all
/// are taken (more label sets than `SLOTS`), `make` is asked every time, which is the family
/// lookup it saves in the common case.
pub struct Memo<K, V, const SLOTS: usize = 8> {
    slots: [OnceLock<(K, V)>; SLOTS],
}

impl<K, V, const SLOTS: usize> Default for Memo<K, V, SLOTS> {
    fn default() -> Self {
        Memo {
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl<K: PartialEq + Copy, V, const SLOTS: usize> Memo<K, V, SLOTS> {
    /// Runs `f` with the value kept for `key`, made by `make` the first time.
    pub fn with<R>(&self, key: K, make: impl Fn() -> V, f: impl FnOnce(&V) -> R) -> R {
        for slot in &self.slots {
            // Another thread may fill this slot first, with another key: then look on.
            let (k, v) = slot.get_or_init(|| (key, make()));
            if *k == key {
                return f(v);
            }
        }
        f(&make())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn memo_makes_each_value_once_and_finds_it_by_key() {
        let memo: Memo<&str, String, 4> = Memo::default();
        let made = Cell::new(0);
        let get = |k: &'static str| {
            memo.with(
                k,
                || {
                    made.set(made.get() + 1);
                    k.to_uppercase()
                },
                String::clone,
            )
        };
        assert_eq!(get("a"), "A");
        assert_eq!(get("b"), "B");
        assert_eq!(get("a"), "A");
        assert_eq!(get("b"), "B");
        assert_eq!(made.get(), 2);
    }

    #[test]
    fn memo_past_its_slots_makes_the_value_every_time() {
        let memo: Memo<u32, u32, 2> = Memo::default();
        let made = Cell::new(0);
        let get = |k| {
            memo.with(
                k,
                || {
                    made.set(made.get() + 1);
                    k * 10
                },
                |v| *v,
            )
        };
        assert_eq!(
            [get(1), get(2), get(3), get(3), get(1)],
            [10, 20, 30, 30, 10]
        );
        assert_eq!(made.get(), 4, "1 and 2 kept, 3 made twice");
    }

    /// Threads racing for the same slots with different keys: each gets its own key's value,
    /// and a kept value is made once (a thread that loses a slot looks on, it does not
    /// overwrite).
    #[test]
    fn memo_shared_by_threads_gives_each_key_its_value() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let memo: Memo<u32, u32, 4> = Memo::default();
        let made: [AtomicUsize; 8] = Default::default();
        std::thread::scope(|scope| {
            for t in 0..8u32 {
                let (memo, made) = (&memo, &made);
                scope.spawn(move || {
                    for i in 0..200u32 {
                        let k = (t + i) % 8;
                        let make = || {
                            made[k as usize].fetch_add(1, Ordering::Relaxed);
                            k * 10
                        };
                        assert_eq!(memo.with(k, make, |v| *v), k * 10);
                    }
                });
            }
        });
        let kept: Vec<u32> = memo
            .slots
            .iter()
            .filter_map(|s| s.get())
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(kept.len(), 4, "every slot filled");
        for k in kept {
            assert_eq!(
                made[k as usize].load(Ordering::Relaxed),
                1,
                "{k} kept, made once"
            );
        }
    }

    #[test]
    fn memoized_handles_count_in_the_families_series() {
        let metrics = Metrics::default();
        let key = KeyLabels {
            key: "k1",
            model: "m",
        };
        let series = KeySeries::default();
        // More outcomes than slots: the last ones go through the family each time.
        let outcomes = [
            "ok",
            "rate_limited",
            "server_error",
            "timeout",
            "a",
            "b",
            "c",
            "d",
            "e",
        ];
        for _ in 0..3 {
            for outcome in outcomes {
                metrics.attempt(&key, &series, outcome);
            }
        }
        let tokens = TokenLabels {
            key: "k1",
            model: "m",
            caller: "-",
            kind: "",
        };
        metrics.tokens(tokens, Some(&series), [5, 7, 1]);
        metrics.tokens(tokens, Some(&series), [1, 1, 1]);
        metrics.tokens(TokenLabels { key: "-", ..tokens }, None, [2, 0, 0]);
        let request = |status_class| RequestLabels {
            model: "m",
            provider: "openai",
            endpoint: "chat",
            status_class,
        };
        for served in [Some(&series), Some(&series), None] {
            metrics.request(request("2xx"), served);
        }
        metrics.request(request("4xx"), Some(&series));
        for seconds in [0.5, 2.0] {
            metrics.endpoint("chat", |s| s.duration.observe(seconds));
        }
        metrics.endpoint("models", |s| s.ttfb.observe(1.0));
        let text = metrics.render();
        for line in [
            r#"keyrelay_requests_total{model="m",provider="openai",endpoint="chat",status_class="2xx"} 3"#,
            r#"keyrelay_requests_total{model="m",provider="openai",endpoint="chat",status_class="4xx"} 1"#,
            r#"keyrelay_request_duration_seconds_sum{endpoint="chat"} 2.5"#,
            r#"keyrelay_request_duration_seconds_count{endpoint="chat"} 2"#,
            r#"keyrelay_time_to_first_byte_seconds_count{endpoint="models"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        for outcome in outcomes {
            let line = format!(
                r#"keyrelay_upstream_attempts_total{{key="k1",model="m",outcome="{outcome}"}} 3"#
            );
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        for (kind, n) in [("prompt", 6), ("completion", 8), ("cached", 2)] {
            let line = format!(
                r#"keyrelay_tokens_total{{key="k1",model="m",caller="-",kind="{kind}"}} {n}"#
            );
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        assert!(
            text.contains(r#"keyrelay_tokens_total{key="-",model="m",caller="-",kind="prompt"} 2"#)
        );
    }
}
