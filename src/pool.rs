//! The key pool: every configured key, grouped by the model name clients use, with a
//! lock-free round-robin cursor per model.
//!
//! Built once at startup and shared read-only; the only mutation on the hot path is one
//! atomic `fetch_add` per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderName, HeaderValue, header};

use crate::config::KeySpec;
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
}

#[derive(Debug)]
pub struct ModelPool {
    keys: Box<[Key]>,
    cursor: AtomicUsize,
}

impl ModelPool {
    /// The next key in strict rotation. With k keys, n sequential calls hand out each key
    /// exactly n/k times; concurrent calls each get a distinct cursor value, so the counts
    /// stay balanced under load too.
    pub fn next_key(&self) -> &Key {
        let n = self.cursor.fetch_add(1, Ordering::Relaxed);
        &self.keys[n % self.keys.len()]
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }
}

#[derive(Debug)]
pub struct KeyPool {
    models: HashMap<String, ModelPool>,
    /// Model names in first-configured order, for `/v1/models` and the banner.
    order: Vec<String>,
}

impl KeyPool {
    pub fn new(specs: Vec<KeySpec>) -> KeyPool {
        let mut grouped: HashMap<String, Vec<Key>> = HashMap::new();
        let mut order = Vec::new();
        for spec in specs {
            if !grouped.contains_key(&spec.model) {
                order.push(spec.model.clone());
            }
            let key = Key::from_spec(&spec);
            grouped.entry(spec.model).or_default().push(key);
        }
        let models = grouped
            .into_iter()
            .map(|(model, keys)| {
                let pool = ModelPool {
                    keys: keys.into_boxed_slice(),
                    cursor: AtomicUsize::new(0),
                };
                (model, pool)
            })
            .collect();
        KeyPool { models, order }
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
        KeyPool::new(specs)
    }

    #[test]
    fn rotation_is_exact_and_per_model() {
        let pool = pool();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for i in 0..30 {
            let model = if i % 3 == 0 { "b" } else { "a" };
            let key = pool.model(model).expect("configured").next_key();
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
