//! Per-key health: rate-limit cooldowns, disabled keys, the circuit breaker for failing
//! upstreams, and the counters `/admin/keys` shows.
//!
//! Every field is an atomic, so the request path reads a key's state without a lock; the
//! writes after an attempt are a handful of atomic stores. Time is milliseconds on tokio's
//! clock since the pool was built (`Clock`), so tests can pause and advance it.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use http::HeaderMap;

use crate::hosts::HostPolicy;

/// Milliseconds since the pool was created, on tokio's clock; never 0, so 0 can mean "never".
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: tokio::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            base: tokio::time::Instant::now(),
        }
    }
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }
}

/// How keys react to failures. Defaults match the documented behaviour.
#[derive(Debug, Clone)]
pub struct HealthPolicy {
    /// First cooldown after a 429 without any retry hint; doubles on consecutive 429s.
    pub default_cooldown: Duration,
    /// No cooldown is longer than this, whatever the upstream asks for.
    pub max_cooldown: Duration,
    /// Consecutive 5xx/timeouts before the breaker cools the key down.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// 401/403 on every key of a provider within this window means an account- or IP-level
    /// problem: the keys cool down instead of being disabled.
    pub account_window: Duration,
    /// The breaker of each upstream host (connection failures).
    pub hosts: HostPolicy,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            default_cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(300),
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(10),
            account_window: Duration::from_secs(10),
            hosts: HostPolicy::default(),
        }
    }
}

/// What one attempt on one key came to, as far as the key is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// 429 or 529, with the upstream's hint of when to come back, if any.
    RateLimited {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// 401 or 403: the key itself is refused.
    AuthRejected {
        status: u16,
    },
    /// 408, 500, 502, 503, 504 and other 5xx: the upstream is failing.
    ServerError {
        status: u16,
    },
    /// No response head within the first-byte timeout.
    Timeout,
    /// No connection could be made (refused, DNS, TLS, connect timeout): the host's
    /// failure, counted by its breaker, not the key's.
    Unreachable {
        timed_out: bool,
    },
    /// Connected, but the connection broke before the response head: like a 5xx.
    ConnectionLost,
    /// A 4xx that is the client's own mistake; says nothing about the key.
    ClientError {
        status: u16,
    },
}

impl Outcome {
    /// Classifies an upstream response status (and its retry headers).
    pub fn from_response(status: u16, headers: &HeaderMap) -> Outcome {
        match status {
            200..=399 => Outcome::Success,
            429 | 529 => Outcome::RateLimited {
                status,
                retry_after: retry_hint(headers),
            },
            401 | 403 => Outcome::AuthRejected { status },
            408 | 500..=599 => Outcome::ServerError { status },
            _ => Outcome::ClientError { status },
        }
    }

    /// Whether another key may succeed where this one failed.
    pub fn is_retryable(self) -> bool {
        !matches!(self, Outcome::Success | Outcome::ClientError { .. })
    }

    /// A short, bounded label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::RateLimited { status: 529, .. } => "overloaded",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::AuthRejected { .. } => "auth_rejected",
            Outcome::ServerError { .. } => "server_error",
            Outcome::Timeout => "timeout",
            Outcome::Unreachable { timed_out: false } => "connect_error",
            Outcome::Unreachable { timed_out: true } => "connect_timeout",
            Outcome::ConnectionLost => "connection_lost",
            Outcome::ClientError { .. } => "client_error",
        }
    }
}

/// A key's state as shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Healthy,
    Cooling { until_ms: u64 },
    Disabled { status: u16 },
}

/// What changed in a key's state after an attempt, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    CoolingDown(Duration),
    Disabled { status: u16 },
}

#[derive(Debug, Default)]
pub struct KeyHealth {
    cooling_until_ms: AtomicU64,
    /// The status that disabled the key, 0 while enabled.
    disabled_status: AtomicU16,
    disabled_at_ms: AtomicU64,
    consecutive_failures: AtomicU32,
    consecutive_rate_limits: AtomicU32,
    /// When the key last answered 401/403/429, for the account-level check.
    last_refusal_ms: AtomicU64,
    disable_logged: AtomicBool,
    pub attempts: AtomicU64,
    pub successes: AtomicU64,
    pub errors: AtomicU64,
    pub cooldowns: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub completion_tokens: AtomicU64,
}

impl KeyHealth {
    pub fn is_available(&self, now_ms: u64) -> bool {
        self.disabled_status.load(Relaxed) == 0 && self.cooling_until_ms.load(Relaxed) <= now_ms
    }

    pub fn state(&self, now_ms: u64) -> KeyState {
        let status = self.disabled_status.load(Relaxed);
        let until = self.cooling_until_ms.load(Relaxed);
        if status != 0 {
            KeyState::Disabled { status }
        } else if until > now_ms {
            KeyState::Cooling { until_ms: until }
        } else {
            KeyState::Healthy
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Relaxed)
    }

    /// Refused (401/403/429) within `window` of `now_ms`, or disabled/cooling right now.
    pub fn recently_refused(&self, now_ms: u64, window: Duration) -> bool {
        let last = self.last_refusal_ms.load(Relaxed);
        let recent = last != 0 && now_ms.saturating_sub(last) <= duration_ms(window);
        recent || !matches!(self.state(now_ms), KeyState::Healthy)
    }

    /// Updates the key after an attempt. `account_level` tells a 401/403 that every key of
    /// the provider is being refused, so this one must cool down rather than be disabled.
    pub fn record(
        &self,
        outcome: Outcome,
        now_ms: u64,
        policy: &HealthPolicy,
        account_level: bool,
    ) -> Option<Transition> {
        self.attempts.fetch_add(1, Relaxed);
        match outcome {
            Outcome::Success => {
                self.successes.fetch_add(1, Relaxed);
                self.consecutive_failures.store(0, Relaxed);
                self.consecutive_rate_limits.store(0, Relaxed);
                None
            }
            // The client's mistake, or the host's: neither a success nor the key's failure.
            Outcome::ClientError { .. } | Outcome::Unreachable { .. } => None,
            Outcome::RateLimited { retry_after, .. } => {
                self.errors.fetch_add(1, Relaxed);
                self.last_refusal_ms.store(now_ms, Relaxed);
                let n = self.consecutive_rate_limits.fetch_add(1, Relaxed) + 1;
                let backoff = policy.default_cooldown.saturating_mul(1 << (n - 1).min(16));
                Some(self.cool_down(retry_after.unwrap_or(backoff), now_ms, policy))
            }
            Outcome::AuthRejected { status } => {
                self.errors.fetch_add(1, Relaxed);
                self.last_refusal_ms.store(now_ms, Relaxed);
                if account_level {
                    let n = self.consecutive_rate_limits.fetch_add(1, Relaxed) + 1;
                    let backoff = policy.default_cooldown.saturating_mul(1 << (n - 1).min(16));
                    return Some(self.cool_down(backoff, now_ms, policy));
                }
                self.disabled_at_ms.store(now_ms, Relaxed);
                self.disabled_status.store(status, Relaxed);
                // Logged once per disabling, not on every request that finds it disabled.
                (!self.disable_logged.swap(true, Relaxed))
                    .then_some(Transition::Disabled { status })
            }
            Outcome::ServerError { .. } | Outcome::Timeout | Outcome::ConnectionLost => {
                self.errors.fetch_add(1, Relaxed);
                let n = self.consecutive_failures.fetch_add(1, Relaxed) + 1;
                if n >= policy.breaker_threshold {
                    self.consecutive_failures.store(0, Relaxed);
                    Some(self.cool_down(policy.breaker_cooldown, now_ms, policy))
                } else {
                    None
                }
            }
        }
    }

    fn cool_down(&self, wanted: Duration, now_ms: u64, policy: &HealthPolicy) -> Transition {
        let d = wanted.min(policy.max_cooldown);
        self.cooling_until_ms
            .fetch_max(now_ms + duration_ms(d), Relaxed);
        self.cooldowns.fetch_add(1, Relaxed);
        Transition::CoolingDown(d)
    }

    /// A key disabled moments ago by what turned out to be an account-level refusal goes
    /// back to cooling instead.
    pub fn undisable_if_recent(&self, now_ms: u64, window: Duration, policy: &HealthPolicy) {
        let at = self.disabled_at_ms.load(Relaxed);
        if self.disabled_status.load(Relaxed) != 0
            && now_ms.saturating_sub(at) <= duration_ms(window)
        {
            self.disabled_status.store(0, Relaxed);
            self.disable_logged.store(false, Relaxed);
            self.cool_down(policy.default_cooldown, now_ms, policy);
        }
    }

    pub fn add_tokens(&self, prompt: u64, completion: u64) {
        self.prompt_tokens.fetch_add(prompt, Relaxed);
        self.completion_tokens.fetch_add(completion, Relaxed);
    }

    /// Back to healthy, as an operator asked.
    pub fn reset(&self) {
        self.cooling_until_ms.store(0, Relaxed);
        self.disabled_status.store(0, Relaxed);
        self.disable_logged.store(false, Relaxed);
        self.consecutive_failures.store(0, Relaxed);
        self.consecutive_rate_limits.store(0, Relaxed);
        self.last_refusal_ms.store(0, Relaxed);
    }
}

/// A duration as the milliseconds of `Clock`; half of `u64::MAX` at most, so that adding
/// it to a time cannot overflow.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 2)
}

/// When the upstream says to come back: `retry-after-ms`, `retry-after` (seconds or an HTTP
/// date), then the providers' reset headers for an exhausted limit (OpenAI's
/// `x-ratelimit-reset-*` durations such as `6m0s`, Anthropic's `anthropic-ratelimit-*-reset`
/// timestamps).
pub fn retry_hint(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    if let Some(v) = text("retry-after") {
        if let Ok(secs) = v.parse::<f64>()
            && secs.is_finite()
            && secs >= 0.0
        {
            return Some(Duration::from_secs_f64(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(
                at.duration_since(std::time::SystemTime::now())
                    .unwrap_or_default(),
            );
        }
    }
    // Reset headers describe every limit; only an exhausted one says when to come back.
    let exhausted = |remaining: &str, reset: &str| -> Option<Duration> {
        if text(remaining)? != "0" {
            return None;
        }
        let reset = text(reset)?;
        go_duration(reset).or_else(|| {
            let at = humantime::parse_rfc3339_weak(reset).ok()?;
            Some(
                at.duration_since(std::time::SystemTime::now())
                    .unwrap_or_default(),
            )
        })
    };
    [
        (
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ),
        ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
        (
            "anthropic-ratelimit-requests-remaining",
            "anthropic-ratelimit-requests-reset",
        ),
        (
            "anthropic-ratelimit-tokens-remaining",
            "anthropic-ratelimit-tokens-reset",
        ),
        (
            "anthropic-ratelimit-input-tokens-remaining",
            "anthropic-ratelimit-input-tokens-reset",
        ),
        (
            "anthropic-ratelimit-output-tokens-remaining",
            "anthropic-ratelimit-output-tokens-reset",
        ),
    ]
    .iter()
    .filter_map(|(r, s)| exhausted(r, s))
    .max()
}

/// Go-style durations as OpenAI sends them: `12ms`, `1s`, `6m0s`, `2m59.56s`, `1h2m`.
fn go_duration(s: &str) -> Option<Duration> {
    let mut total = 0.0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(*n, HeaderValue::from_str(v).expect("valid"));
        }
        h
    }

    #[test]
    fn retry_hints_in_precedence_order() {
        let secs = |h: &HeaderMap| retry_hint(h).map(|d| d.as_secs_f64());
        assert_eq!(secs(&headers(&[("retry-after", "7")])), Some(7.0));
        assert_eq!(
            secs(&headers(&[("retry-after-ms", "250"), ("retry-after", "7")])),
            Some(0.25)
        );
        let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let d = secs(&headers(&[("retry-after", &date)])).expect("date parsed");
        assert!((28.0..=30.0).contains(&d), "{d}");
        assert_eq!(
            secs(&headers(&[
                ("x-ratelimit-remaining-requests", "0"),
                ("x-ratelimit-reset-requests", "6m0s"),
                ("x-ratelimit-remaining-tokens", "10"),
                ("x-ratelimit-reset-tokens", "1s")
            ])),
            Some(360.0)
        );
        assert_eq!(
            secs(&headers(&[
                ("x-ratelimit-remaining-requests", "5"),
                ("x-ratelimit-reset-requests", "6m0s")
            ])),
            None
        );
        assert_eq!(secs(&headers(&[])), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(
            go_duration("2m59.56s").map(|d| d.as_millis()),
            Some(179_560)
        );
        assert_eq!(go_duration("1h2m"), Some(Duration::from_secs(3720)));
        assert_eq!(go_duration("soon"), None);
        assert_eq!(go_duration(""), None);
    }

    #[test]
    fn rate_limits_cool_down_doubling_and_capped() {
        let policy = HealthPolicy {
            max_cooldown: Duration::from_secs(12),
            ..Default::default()
        };
        let h = KeyHealth::default();
        let limited = Outcome::RateLimited {
            status: 429,
            retry_after: None,
        };
        assert_eq!(
            h.record(limited, 1000, &policy, false),
            Some(Transition::CoolingDown(Duration::from_secs(5)))
        );
        assert!(!h.is_available(5999));
        assert!(h.is_available(6000), "comes back by itself");
        assert_eq!(
            h.record(limited, 7000, &policy, false),
            Some(Transition::CoolingDown(Duration::from_secs(10)))
        );
        assert_eq!(
            h.record(limited, 20_000, &policy, false),
            Some(Transition::CoolingDown(Duration::from_secs(12)))
        );
        let asked = Outcome::RateLimited {
            status: 429,
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(
            h.record(asked, 40_000, &policy, false),
            Some(Transition::CoolingDown(Duration::from_secs(12)))
        );
        h.record(Outcome::Success, 60_000, &policy, false);
        assert_eq!(
            h.record(limited, 60_000, &policy, false),
            Some(Transition::CoolingDown(Duration::from_secs(5))),
            "success resets the doubling"
        );
    }

    #[test]
    fn breaker_counts_consecutive_failures_only() {
        let policy = HealthPolicy::default();
        let h = KeyHealth::default();
        let fail = Outcome::ServerError { status: 503 };
        assert_eq!(h.record(fail, 1, &policy, false), None);
        assert_eq!(h.record(fail, 2, &policy, false), None);
        h.record(Outcome::Success, 3, &policy, false);
        assert_eq!(h.record(fail, 4, &policy, false), None);
        assert_eq!(h.record(Outcome::Timeout, 5, &policy, false), None);
        assert_eq!(
            h.record(Outcome::ConnectionLost, 6, &policy, false),
            Some(Transition::CoolingDown(Duration::from_secs(10)))
        );
        assert!(!h.is_available(7));
        assert!(h.is_available(10_006));
        // A client error neither trips nor resets anything.
        assert_eq!(
            h.record(Outcome::ClientError { status: 400 }, 20_000, &policy, false),
            None
        );
        assert_eq!(h.consecutive_failures(), 0);
        // Nor does a host that cannot be reached.
        for _ in 0..5 {
            let unreachable = Outcome::Unreachable { timed_out: false };
            assert_eq!(h.record(unreachable, 30_000, &policy, false), None);
        }
        assert_eq!(h.consecutive_failures(), 0);
        assert_eq!(h.state(30_000), KeyState::Healthy);
        assert_eq!(
            h.errors.load(Relaxed),
            5,
            "only the key's own failures count"
        );
    }

    #[test]
    fn auth_rejection_disables_once_unless_account_level() {
        let policy = HealthPolicy::default();
        let h = KeyHealth::default();
        let rejected = Outcome::AuthRejected { status: 401 };
        assert_eq!(
            h.record(rejected, 1, &policy, false),
            Some(Transition::Disabled { status: 401 })
        );
        assert_eq!(h.record(rejected, 2, &policy, false), None, "logged once");
        assert_eq!(h.state(1_000_000), KeyState::Disabled { status: 401 });
        h.undisable_if_recent(5000, policy.account_window, &policy);
        assert!(matches!(h.state(5000), KeyState::Cooling { .. }));
        let other = KeyHealth::default();
        assert!(matches!(
            other.record(rejected, 1, &policy, true),
            Some(Transition::CoolingDown(_))
        ));
        h.reset();
        assert_eq!(h.state(5000), KeyState::Healthy);
    }

    #[test]
    fn classification() {
        let none = HeaderMap::new();
        assert_eq!(Outcome::from_response(200, &none), Outcome::Success);
        assert!(Outcome::from_response(529, &none).is_retryable());
        assert!(Outcome::from_response(408, &none).is_retryable());
        assert!(Outcome::from_response(403, &none).is_retryable());
        for status in [400, 404, 413, 422] {
            assert!(
                !Outcome::from_response(status, &none).is_retryable(),
                "{status}"
            );
        }
    }
}
