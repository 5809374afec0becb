//! Test harness: keyrelay in-process on an ephemeral port, in front of mock upstreams.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::net::SocketAddr;

use clap::Parser;
use keyrelay::cli::Cli;
use keyrelay::config::{Config, KeySource};
use keyrelay::secret::Secret;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use keyrelay::mock::upstream::{Behavior, MockOptions, MockUpstream};

/// The admin token every test proxy is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct Proxy {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Proxy {
    /// Starts keyrelay with `keys` as `LLM_KEYS` and extra command-line options.
    pub async fn start(keys: &Value, args: &[&str]) -> Proxy {
        Self::start_with(keys, args, KeySource::default()).await
    }

    /// Like `start`, with more secrets (client tokens) from `extra`.
    pub async fn start_with(keys: &Value, args: &[&str], extra: KeySource) -> Proxy {
        let mut argv = vec!["keyrelay", "--port", "0"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).unwrap();
        let source = KeySource {
            inline: Some(Secret::new(keys.to_string())),
            file: None,
            admin_token: Some(Secret::new(ADMIN_TOKEN)),
            ..extra
        };
        let config = Config::load(&cli, source).unwrap();
        let listener = TcpListener::bind(config.listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            keyrelay::server::run(&config, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Proxy {
            addr,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        client()
            .post(self.url("/v1/chat/completions"))
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// `GET url` with the admin token, as JSON (`/admin/keys`).
pub async fn admin_get(url: &str) -> Value {
    client()
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET url` as text (`/metrics`).
pub async fn get_text(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub async fn admin_keys(proxy: &Proxy) -> Value {
    admin_get(&proxy.url("/admin/keys")).await
}

pub async fn metrics(proxy: &Proxy) -> String {
    get_text(&proxy.url("/metrics")).await
}

/// The value of the sample line that starts with `series` (name and labels, exactly).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l[series.len()..].trim().parse().ok())
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// An `LLM_KEYS` entry for an OpenAI key served by `mock`.
pub fn openai_key(mock: &MockUpstream, model: &str, key: &str) -> Value {
    json!({"api_key": key, "model": model, "provider": "openai", "base_url": mock.base_url(), "name": key})
}

/// An `LLM_KEYS` entry for an Anthropic key served by `mock` (base URL is the host root).
pub fn anthropic_key(mock: &MockUpstream, model: &str, key: &str) -> Value {
    let base = mock.base_url();
    let root = base.trim_end_matches("/v1");
    json!({"api_key": key, "model": model, "provider": "anthropic", "base_url": root, "name": key})
}

/// Posts a native Anthropic Messages request.
pub async fn post_messages(proxy: &Proxy, body: &Value) -> reqwest::Response {
    client()
        .post(proxy.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

pub fn chat_body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

pub async fn recording_mock() -> MockUpstream {
    MockUpstream::start(MockOptions {
        record: true,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Asserts Anthropic's error envelope (`{"type": "error", "error": {"type", "message"}}`)
/// with `status`, and returns it.
pub async fn expect_anthropic_error(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert!(body["error"]["type"].as_str().is_some(), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    body
}

/// Sends SIGTERM to a keyrelay started as a process.
pub fn sigterm(child: &std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

/// Asserts an OpenAI error envelope with all four keys and returns it.
pub async fn expect_error(resp: reqwest::Response, status: u16) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    let err = &body["error"];
    for field in ["message", "type", "param", "code"] {
        assert!(err.get(field).is_some(), "missing {field} in {body}");
    }
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    body
}
