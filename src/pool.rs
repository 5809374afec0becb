//! The key pool: every configured key, grouped by the model name clients use, with a
//! lock-free round-robin cursor per model that skips keys cooling down or disabled.
//!
//! Built once at startup and shared read-only; the mutations on the hot path are one atomic
//! `fetch_add` per pick and the atomic health updates after each attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderName, HeaderValue, header};

use crate::config::KeySpec;
use crate::health::{Clock, HealthPolicy, KeyHealth, KeyState, Outcome, Transition};
use crate::hosts::{Host, HostTransition, origin_label};
use crate::metrics::{KeyLabels, KeySeries, intern};
use crate::provider::{Family, Provider};
use crate::secret::Secret;

/// One upstream key with everything needed to use it, prepared once.
#[derive(Debug)]
pub struct Key {
    pub label: String,
    pub provider: Provider,
    pub upstream_model: String,
    /// True when the body's `model` must be rewritten before it goes upstream.
    pub rewrites_model: bool,
    /// Where this key's requests go (`{base_url}/chat/completions` for the OpenAI family),
    /// prepared once.
    pub endpoint: http::Uri,
    /// The provider's base URL, without a trailing slash.
    pub base_url: String,
    /// The auth header this provider expects (`authorization: Bearer <key>` or
    /// `x-api-key: <key>`), built once and marked sensitive so `Debug` hides it; `None` for
    /// keyless local servers.
    pub auth: Option<(HeaderName, HeaderValue)>,
    pub secret: Secret,
    /// The upstream host this key's requests go to (`None` for in-process `mock` keys).
    pub host: Option<Arc<Host>>,
    pub max_tokens: Option<u64>,
    pub model: String,
    pub health: KeyHealth,
    /// This key's label and model as metric label values.
    pub metric: KeyLabels,
    /// This key's series handles, kept once recorded.
    pub series: KeySeries,
}

/// What an attempt changed: the key's state, or its host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub key: Option<Transition>,
    pub host: Option<HostTransition>,
}

/// The result of asking a model's pool for a key.
#[derive(Debug)]
pub enum Pick<'a> {
    Key(&'a Arc<Key>),
    /// Every key not yet tried is cooling down; the soonest is back in `retry_in`.
    AllCooling {
        retry_in: Duration,
    },
    /// The keys not yet tried are on hosts whose breaker is open (some may be cooling too);
    /// the soonest is back in `retry_in`.
    HostsDown {
        retry_in: Duration,
    },
    /// Every key of the model is disabled.
    AllDisabled,
    /// Every usable key has been tried by this request already.
    Exhausted,
}

/// What one request has tried: keys (by their index in the model's pool), and hosts it
/// could not connect to, once per failure.
#[derive(Debug, Default)]
pub struct Tried {
    keys: Vec<usize>,
    unreachable: Vec<usize>,
}

impl Tried {
    pub fn with_capacity(attempts: usize) -> Tried {
        Tried {
            keys: Vec::with_capacity(attempts),
            unreachable: Vec::new(),
        }
    }

    pub fn key(&mut self, index: usize) {
        self.keys.push(index);
    }

    pub fn unreachable(&mut self, host: &Host) {
        self.unreachable.push(host.index);
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> usize {
        self.keys.len()
    }

    fn failures_on(&self, host: &Host) -> usize {
        self.unreachable
            .iter()
            .filter(|&&i| i == host.index)
            .count()
    }
}

#[derive(Debug)]
pub struct ModelPool {
    /// The model's configured name, as a metric label.
    pub name: &'static str,
    keys: Box<[Arc<Key>]>,
    cursor: AtomicUsize,
}

impl ModelPool {
    /// The next available key in strict rotation, skipping keys this request has tried,
    /// keys cooling down or disabled, and keys whose host's breaker is open. A host this
    /// request could not connect to comes last: a key on another host first, then one more
    /// try on the same host, never a third. With k healthy keys, n sequential picks hand out
    /// each key exactly n/k times; concurrent picks each get a distinct cursor value, so the
    /// counts stay balanced under load too.
    pub fn pick(&self, now_ms: u64, tried: &Tried) -> Pick<'_> {
        let k = self.keys.len();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        let mut same_host_again = None;
        for i in 0..k {
            let index = (start + i) % k;
            let key = &self.keys[index];
            if tried.keys.contains(&index) || !key.health.is_available(now_ms) {
                continue;
            }
            match key.host.as_ref().map_or(0, |h| tried.failures_on(h)) {
                0 if key.host.as_ref().is_none_or(|h| h.admit(now_ms)) => return Pick::Key(key),
                1 if same_host_again.is_none()
                    && key.host.as_ref().is_none_or(|h| h.available(now_ms)) =>
                {
                    same_host_again = Some(key);
                }
                _ => {}
            }
        }
        if let Some(key) = same_host_again
            && key.host.as_ref().is_none_or(|h| h.admit(now_ms))
        {
            return Pick::Key(key);
        }
        self.unavailable(now_ms, tried)
    }

    /// Why no key can be picked: when the soonest one is back, and whether keys or hosts
    /// are what is waited for.
    fn unavailable(&self, now_ms: u64, tried: &Tried) -> Pick<'_> {
        let mut soonest: Option<(u64, bool)> = None;
        for (index, key) in self.keys.iter().enumerate() {
            if tried.keys.contains(&index) {
                continue;
            }
            let cooling = match key.health.state(now_ms) {
                KeyState::Disabled { .. } => continue,
                KeyState::Cooling { until_ms } => Some(until_ms),
                KeyState::Healthy => None,
            };
            let host = key.host.as_ref().and_then(|h| h.blocked_until(now_ms));
            let back = match (cooling, host) {
                (Some(c), Some(h)) if h > c => (h, true),
                (Some(c), _) => (c, false),
                (None, Some(h)) => (h, true),
                // Usable, but this request already gave its host two tries.
                (None, None) => continue,
            };
            if soonest.is_none_or(|(t, _)| back.0 < t) {
                soonest = Some(back);
            }
        }
        let retry_in = |until: u64| Duration::from_millis(until.saturating_sub(now_ms));
        match soonest {
            Some((until, false)) => Pick::AllCooling {
                retry_in: retry_in(until),
            },
            Some((until, true)) => Pick::HostsDown {
                retry_in: retry_in(until),
            },
            None if tried.keys.is_empty() => Pick::AllDisabled,
            None => Pick::Exhausted,
        }
    }

    /// The index of `key` in this pool, for a request's `Tried`.
    pub fn index_of(&self, key: &Key) -> usize {
        self.keys
            .iter()
            .position(|k| std::ptr::eq(k.as_ref(), key))
            .unwrap_or(usize::MAX)
    }

    pub fn keys(&self) -> &[Arc<Key>] {
        &self.keys
    }
}

#[derive(Debug)]
pub struct KeyPool {
    models: HashMap<String, ModelPool>,
    /// Every key, in configuration order, for the account-level check and `/admin/keys`.
    all: Vec<Arc<Key>>,
    /// Every upstream host, in order of first use; a key's `host.index` is its place here.
    hosts: Vec<Arc<Host>>,
    pub clock: Clock,
    pub policy: HealthPolicy,
    /// Model names in first-configured order, for `/v1/models` and the banner.
    order: Vec<String>,
}

impl KeyPool {
    pub fn new(specs: Vec<KeySpec>, policy: HealthPolicy) -> KeyPool {
        let mut grouped: HashMap<String, Vec<Arc<Key>>> = HashMap::new();
        let mut order = Vec::new();
        let mut all = Vec::new();
        let mut hosts: Vec<Arc<Host>> = Vec::new();
        for spec in specs {
            if !grouped.contains_key(&spec.model) {
                order.push(spec.model.clone());
            }
            let mut key = Key::from_spec(&spec);
            key.host = origin_label(&key.endpoint).map(|label| {
                match hosts.iter().find(|h| h.label == label) {
                    Some(host) => host.clone(),
                    None => {
                        let host = Arc::new(Host::new(intern(&label), hosts.len(), &policy.hosts));
                        hosts.push(host.clone());
                        host
                    }
                }
            });
            let key = Arc::new(key);
            all.push(key.clone());
            grouped.entry(spec.model).or_default().push(key);
        }
        let models = grouped
            .into_iter()
            .map(|(model, keys)| {
                let pool = ModelPool {
                    name: intern(&model),
                    keys: keys.into_boxed_slice(),
                    cursor: AtomicUsize::new(0),
                };
                (model, pool)
            })
            .collect();
        KeyPool {
            models,
            all,
            hosts,
            clock: Clock::default(),
            policy,
            order,
        }
    }

    pub fn all_keys(&self) -> &[Arc<Key>] {
        &self.all
    }

    pub fn hosts(&self) -> &[Arc<Host>] {
        &self.hosts
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A connection to `key`'s host is open: whatever the answer, the host is reachable.
    pub fn host_reached(&self, key: &Key) {
        if let Some(host) = &key.host
            && host.record_success() == Some(HostTransition::Closed)
        {
            tracing::info!(upstream = host.label, "upstream reachable again");
        }
    }

    /// Updates `key`, or its host, after an attempt; logs any change of state and returns it.
    /// A connection failure is the host's: the key's state is left alone. (A connection that
    /// opened has already told the host, through `host_reached`.)
    pub fn record(&self, key: &Key, outcome: Outcome) -> Recorded {
        let now = self.now_ms();
        if let (Some(host), Outcome::Unreachable { .. }) = (&key.host, outcome) {
            key.health.record(outcome, now, &self.policy, false);
            let transition = host.record_failure(now, &self.policy.hosts);
            if let Some(HostTransition::Opened(d)) = transition {
                tracing::warn!(
                    upstream = host.label,
                    open_s = d.as_secs_f64(),
                    failures = host.consecutive_failures(),
                    "upstream unreachable: its keys are skipped, then it is probed again"
                );
            }
            return Recorded {
                key: None,
                host: transition,
            };
        }
        Recorded {
            key: self.record_key(key, outcome, now),
            host: None,
        }
    }

    fn record_key(&self, key: &Key, outcome: Outcome, now: u64) -> Option<Transition> {
        let account_level = matches!(outcome, Outcome::AuthRejected { .. })
            && self.provider_refusing_everywhere(key, now);
        if account_level {
            // Keys disabled moments ago by the same account-wide refusal come back as
            // cooling: an account or IP block must not empty the pool for good.
            for other in self.same_provider(key) {
                other
                    .health
                    .undisable_if_recent(now, self.policy.account_window, &self.policy);
            }
        }
        let transition = key.health.record(outcome, now, &self.policy, account_level);
        match transition {
            Some(Transition::Disabled { status }) => tracing::warn!(
                key = %key.label, model = %key.model, status,
                "key disabled: the upstream refused it; it stays out of rotation until reset"
            ),
            Some(Transition::CoolingDown(d)) => tracing::info!(
                key = %key.label, model = %key.model, outcome = outcome.label(),
                cooldown_s = d.as_secs_f64(), account_level, "key cooling down"
            ),
            None => {}
        }
        transition
    }

    fn same_provider<'a>(&'a self, key: &'a Key) -> impl Iterator<Item = &'a Arc<Key>> {
        self.all
            .iter()
            .filter(move |k| k.provider == key.provider && k.base_url == key.base_url)
    }

    /// Whether every other key of this provider (same base URL) was refused recently. A
    /// provider with a single key gives no such evidence: its refusal disables the key.
    fn provider_refusing_everywhere(&self, key: &Key, now: u64) -> bool {
        let mut others = self
            .same_provider(key)
            .filter(|k| !std::ptr::eq(k.as_ref(), key))
            .peekable();
        others.peek().is_some()
            && others.all(|k| k.health.recently_refused(now, self.policy.account_window))
    }

    pub fn model(&self, name: &str) -> Option<&ModelPool> {
        self.models.get(name)
    }

    /// Models in configuration order with their pools.
    pub fn models(&self) -> impl Iterator<Item = (&str, &ModelPool)> {
        self.order
            .iter()
            .filter_map(|m| self.models.get(m).map(|p| (m.as_str(), p)))
    }
}

impl Key {
    fn from_spec(spec: &KeySpec) -> Key {
        let key = spec.api_key.expose();
        let auth = match spec.provider.family() {
            _ if key.is_empty() => None,
            Family::Anthropic => Some((HeaderName::from_static("x-api-key"), key.to_owned())),
            Family::OpenAi | Family::Mock => Some((header::AUTHORIZATION, format!("Bearer {key}"))),
        }
        .and_then(|(name, value)| {
            let mut value = HeaderValue::try_from(value).ok()?;
            value.set_sensitive(true);
            Some((name, value))
        });
        Key {
            label: spec.label.clone(),
            provider: spec.provider,
            rewrites_model: spec.upstream_model != spec.model,
            upstream_model: spec.upstream_model.clone(),
            endpoint: endpoint(spec),
            base_url: spec.base_url.clone(),
            auth,
            secret: spec.api_key.clone(),
            host: None,
            max_tokens: spec.max_tokens,
            model: spec.model.clone(),
            health: KeyHealth::default(),
            metric: KeyLabels {
                key: intern(&spec.label),
                model: intern(&spec.model),
            },
            series: KeySeries::default(),
        }
    }
}

fn endpoint(spec: &KeySpec) -> http::Uri {
    // Config validation has already checked that base_url is an absolute http(s) URL.
    match spec.provider.family() {
        Family::OpenAi => format!("{}/chat/completions", spec.base_url)
            .parse()
            .unwrap_or_default(),
        Family::Anthropic => format!("{}/v1/messages", spec.base_url)
            .parse()
            .unwrap_or_default(),
        Family::Mock => http::Uri::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_keys;

    fn pool() -> KeyPool {
        let specs = parse_keys(
            r#"[{"api_key": "sk-secret-a1", "model": "a", "provider": "openai", "name": "a1"},
                {"api_key": "sk-secret-b1", "model": "b", "provider": "openai", "name": "b1"},
                {"api_key": "sk-secret-a2", "model": "a", "provider": "openai", "name": "a2"},
                {"api_key": "sk-secret-a3", "model": "a", "provider": "groq", "name": "a3"},
                {"api_key": "sk-secret-b2", "model": "b", "provider": "openai", "name": "b2"}]"#,
            "LLM_KEYS",
        )
        .expect("valid");
        KeyPool::new(specs, HealthPolicy::default())
    }

    #[test]
    fn rotation_is_exact_and_per_model() {
        let pool = pool();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for i in 0..30 {
            let model = if i % 3 == 0 { "b" } else { "a" };
            let Pick::Key(key) = pool
                .model(model)
                .expect("configured")
                .pick(1, &Tried::default())
            else {
                panic!("all keys healthy")
            };
            *counts.entry(key.label.clone()).or_default() += 1;
        }
        // 20 requests over a's 3 keys is not divisible; 10 for b over 2 keys is.
        assert_eq!(counts["b1"], 5);
        assert_eq!(counts["b2"], 5);
        let a: Vec<usize> = ["a1", "a2", "a3"].iter().map(|l| counts[*l]).collect();
        assert_eq!(a.iter().sum::<usize>(), 20);
        assert!(a.iter().all(|&c| c == 6 || c == 7), "{a:?}");
    }

    fn two_hosts() -> KeyPool {
        let specs = parse_keys(
            r#"[{"api_key": "k", "model": "m", "provider": "openai", "name": "a1", "base_url": "http://a:1/v1"},
                {"api_key": "k", "model": "m", "provider": "openai", "name": "a2", "base_url": "http://a:1/v1"},
                {"api_key": "k", "model": "m", "provider": "openai", "name": "a3", "base_url": "http://a:1/v1"},
                {"api_key": "k", "model": "m", "provider": "groq", "name": "b1", "base_url": "http://b:2/v1"}]"#,
            "LLM_KEYS",
        )
        .expect("valid");
        KeyPool::new(specs, HealthPolicy::default())
    }

    fn label(pick: Pick<'_>) -> String {
        match pick {
            Pick::Key(key) => key.label.clone(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn keys_share_a_host_per_origin() {
        let pool = two_hosts();
        let labels: Vec<&str> = pool.hosts().iter().map(|h| h.label).collect();
        assert_eq!(labels, ["http://a:1", "http://b:2"]);
        let keys = pool.model("m").expect("configured").keys();
        assert!(Arc::ptr_eq(
            keys[0].host.as_ref().expect("host"),
            keys[2].host.as_ref().expect("host")
        ));
    }

    #[test]
    fn after_a_refused_connection_another_host_comes_first_then_one_more_try() {
        let pool = two_hosts();
        let model = pool.model("m").expect("configured");
        let keys = model.keys();
        let host_a = keys[0].host.clone().expect("host");
        let mut tried = Tried::default();
        assert_eq!(label(model.pick(1, &tried)), "a1");
        tried.key(0);
        tried.unreachable(&host_a);
        // Rotation would give a2; the key on the other host goes first.
        assert_eq!(label(model.pick(1, &tried)), "b1");
        tried.key(3);
        // b1 failed too (another way): one more try on host a is allowed...
        assert_eq!(label(model.pick(1, &tried)), "a3");
        tried.key(2);
        tried.unreachable(&host_a);
        // ...but not a third.
        assert_eq!(label(model.pick(1, &tried)), "Exhausted");
    }

    #[test]
    fn an_open_host_is_skipped_and_reported_when_nothing_else_is_left() {
        let pool = two_hosts();
        let model = pool.model("m").expect("configured");
        let host_a = model.keys()[0].host.clone().expect("host");
        for _ in 0..3 {
            pool.record(&model.keys()[0], Outcome::Unreachable { timed_out: false });
        }
        let now = pool.now_ms();
        for _ in 0..5 {
            assert_eq!(label(model.pick(now, &Tried::default())), "b1");
        }
        let mut tried = Tried::default();
        tried.key(3);
        let Pick::HostsDown { retry_in } = model.pick(now, &tried) else {
            panic!("host a is open")
        };
        assert!(retry_in <= Duration::from_secs(1));
        // Its keys were not touched.
        for key in model.keys() {
            assert_eq!(key.health.state(now), KeyState::Healthy);
            assert_eq!(key.health.consecutive_failures(), 0);
        }
        assert_eq!(
            host_a
                .connect_failures
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
    }

    #[test]
    fn order_follows_configuration_and_debug_hides_keys() {
        let pool = pool();
        let names: Vec<&str> = pool.models().map(|(m, _)| m).collect();
        assert_eq!(names, ["a", "b"]);
        let dump = format!("{pool:?}");
        assert!(dump.contains("label: \"a1\""), "{dump}");
        assert!(!dump.contains("sk-secret"), "{dump}");
    }
}
