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
use crate::health::{Clock, HealthPolicy, KeyHealth, Outcome, Transition};
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
    pub max_tokens: Option<u64>,
    pub model: String,
    pub health: KeyHealth,
    /// This key's label and model as metric label values.
    pub metric: KeyLabels,
    /// This key's series handles, kept once recorded.
    pub series: KeySeries,
}

/// The result of asking a model's pool for a key.
#[derive(Debug)]
pub enum Pick<'a> {
    Key(&'a Arc<Key>),
    /// Every key not yet tried is cooling down; the soonest is back in `retry_in`.
    AllCooling {
        retry_in: Duration,
    },
    /// Every key of the model is disabled.
    AllDisabled,
    /// Every usable key has been tried by this request already.
    Exhausted,
}

#[derive(Debug)]
pub struct ModelPool {
    /// The model's configured name, as a metric label.
    pub name: &'static str,
    keys: Box<[Arc<Key>]>,
    cursor: AtomicUsize,
}

impl ModelPool {
    /// The next available key in strict rotation, skipping keys in `tried` (this request's
    /// earlier attempts) and keys cooling down or disabled. With k healthy keys, n sequential
    /// picks hand out each key exactly n/k times; concurrent picks each get a distinct
    /// cursor value, so the counts stay balanced under load too.
    pub fn pick(&self, now_ms: u64, tried: &[usize]) -> Pick<'_> {
        let k = self.keys.len();
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        for i in 0..k {
            let index = (start + i) % k;
            if !tried.contains(&index) && self.keys[index].health.is_available(now_ms) {
                return Pick::Key(&self.keys[index]);
            }
        }
        let untried = || (0..k).filter(|i| !tried.contains(i)).map(|i| &self.keys[i]);
        let soonest = untried()
            .filter_map(|key| match key.health.state(now_ms) {
                crate::health::KeyState::Cooling { until_ms } => Some(until_ms),
                _ => None,
            })
            .min();
        match soonest {
            Some(until) => Pick::AllCooling {
                retry_in: Duration::from_millis(until.saturating_sub(now_ms)),
            },
            None if tried.is_empty() => Pick::AllDisabled,
            None => Pick::Exhausted,
        }
    }

    /// The index of `key` in this pool, for `pick`'s `tried` list.
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
        for spec in specs {
            if !grouped.contains_key(&spec.model) {
                order.push(spec.model.clone());
            }
            let key = Arc::new(Key::from_spec(&spec));
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
            clock: Clock::default(),
            policy,
            order,
        }
    }

    pub fn all_keys(&self) -> &[Arc<Key>] {
        &self.all
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Updates `key` after an attempt, logs any change of state and returns it.
    pub fn record(&self, key: &Key, outcome: Outcome) -> Option<Transition> {
        let now = self.now_ms();
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
            let Pick::Key(key) = pool.model(model).expect("configured").pick(1, &[]) else {
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
