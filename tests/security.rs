//! Who may call, bad input, overload and listener TLS.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use keyrelay::config::KeySource;
use keyrelay::secret::Secret;
use serde_json::{Value, json};
use tokio::sync::Notify;

const TEAM_A: &str = "team-a-client-token";
const TEAM_B: &str = "team-b-client-token";

fn tokens_file(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("tokens.json");
    let tokens = json!([{"token": TEAM_A, "name": "team-a"},
                        {"token": TEAM_B, "name": "team-b", "models": ["m"]}]);
    std::fs::write(&path, tokens.to_string()).unwrap();
    path
}

async fn guarded_proxy(mock: &MockUpstream) -> (Proxy, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let source = KeySource {
        tokens_file: Some(tokens_file(&dir)),
        ..Default::default()
    };
    let keys = json!([
        openai_key(mock, "m", "k1"),
        anthropic_key(mock, "claude", "a1")
    ]);
    (Proxy::start_with(&keys, &[], source).await, dir)
}

fn messages_body(model: &str) -> Value {
    json!({"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn missing_or_wrong_tokens_get_401_in_the_endpoints_format() {
    let mock = recording_mock().await;
    let (proxy, _dir) = guarded_proxy(&mock).await;
    let http = client();

    let none = http
        .post(proxy.url("/v1/chat/completions"))
        .json(&chat_body("m", "hi"))
        .send()
        .await
        .unwrap();
    let err = expect_error(none, 401).await;
    assert_eq!(err["error"]["code"], "invalid_api_key");
    let wrong = http
        .post(proxy.url("/v1/chat/completions"))
        .bearer_auth("not-a-token")
        .json(&chat_body("m", "hi"))
        .send()
        .await
        .unwrap();
    expect_error(wrong, 401).await;

    // E.60: an Anthropic client without x-api-key gets Anthropic's authentication_error.
    let resp = http
        .post(proxy.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body("claude"))
        .send()
        .await
        .unwrap();
    let body = expect_anthropic_error(resp, 401).await;
    assert_eq!(body["error"]["type"], "authentication_error");

    let models = http.get(proxy.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status(), 401);
    assert_eq!(
        http.get(proxy.url("/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "/health stays open"
    );
    assert!(
        mock.hits().is_empty(),
        "no upstream call without a valid token"
    );
}

#[tokio::test]
async fn valid_tokens_in_either_header_are_accepted_and_model_lists_hold() {
    let mock = recording_mock().await;
    let (proxy, _dir) = guarded_proxy(&mock).await;
    let http = client();

    let bearer = http
        .post(proxy.url("/v1/chat/completions"))
        .bearer_auth(TEAM_A)
        .json(&chat_body("m", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let x_api_key = http
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", TEAM_A)
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body("claude"))
        .send()
        .await
        .unwrap();
    assert_eq!(x_api_key.status(), 200);
    // The client's token is never what reaches the upstream.
    for req in mock.requests() {
        let sent: Vec<&str> = req
            .headers
            .values()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert!(sent.iter().all(|v| !v.contains(TEAM_A)), "{sent:?}");
    }

    // team-b may use only "m".
    let allowed = http
        .post(proxy.url("/v1/chat/completions"))
        .bearer_auth(TEAM_B)
        .json(&chat_body("m", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let hits_before = mock.hits().values().sum::<u64>();
    let denied = http
        .post(proxy.url("/v1/chat/completions"))
        .bearer_auth(TEAM_B)
        .json(&chat_body("claude", "hi"))
        .send()
        .await
        .unwrap();
    let err = expect_error(denied, 403).await;
    assert_eq!(err["error"]["code"], "model_not_allowed");
    assert!(err["error"]["message"].as_str().unwrap().contains("team-b"));
    let denied = http
        .post(proxy.url("/v1/messages"))
        .header("x-api-key", TEAM_B)
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body("claude"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    assert_eq!(
        denied.json::<Value>().await.unwrap()["error"]["type"],
        "permission_error"
    );
    assert_eq!(mock.hits().values().sum::<u64>(), hits_before);
}

#[test]
fn listening_beyond_loopback_needs_tokens_or_an_explicit_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyrelay"))
        .args(["--demo", "--host", "0.0.0.0", "--port", "0"])
        .env_remove("KEYRELAY_TOKENS")
        .env_remove("KEYRELAY_TOKENS_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0 without client tokens"),
        "{stderr}"
    );
    assert!(
        stderr.contains("KEYRELAY_TOKENS") && stderr.contains("--allow-unauthenticated"),
        "{stderr}"
    );

    use clap::Parser;
    let allowed = keyrelay::cli::Cli::try_parse_from([
        "keyrelay",
        "--demo",
        "--host",
        "0.0.0.0",
        "--allow-unauthenticated",
    ])
    .unwrap();
    assert!(keyrelay::config::Config::load(&allowed, KeySource::default()).is_ok());
    let with_tokens =
        keyrelay::cli::Cli::try_parse_from(["keyrelay", "--demo", "--host", "0.0.0.0"]).unwrap();
    let source = KeySource {
        tokens: Some(Secret::new(TEAM_A)),
        ..Default::default()
    };
    assert!(keyrelay::config::Config::load(&with_tokens, source).is_ok());
}

#[tokio::test]
async fn an_upstream_error_that_echoes_the_key_is_redacted() {
    let mock = recording_mock().await;
    let key = "sk-proj-ECHOED-KEY-0123456789";
    let echo = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {key}.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
    );
    mock.script(
        key,
        [Behavior::Respond {
            status: 401,
            headers: vec![],
            body: echo.clone().into(),
        }],
    );
    let anthropic_echo = format!(
        r#"{{"type":"error","error":{{"type":"authentication_error","message":"invalid x-api-key {key}"}}}}"#
    );
    mock.script(
        key,
        [Behavior::Respond {
            status: 401,
            headers: vec![],
            body: anthropic_echo.into(),
        }],
    );
    let keys = json!([{"api_key": key, "model": "m", "provider": "openai", "base_url": mock.base_url()},
                      {"api_key": key, "model": "c", "provider": "anthropic", "base_url": mock.base_url().trim_end_matches("/v1"), "name": "anthropic-key"}]);
    let proxy = Proxy::start(&keys, &[]).await;
    let text = proxy
        .chat(&chat_body("m", "hi"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains(key), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    let text = proxy
        .chat(&chat_body("c", "hi"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains(key) && text.contains("[redacted]"), "{text}");
}

#[tokio::test]
async fn too_deep_or_malformed_bodies_are_400_without_an_attempt() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "m", "k1")]), &[]).await;
    let deep = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"hi"}}],"metadata":{}{}}}"#,
        "[".repeat(1000),
        "]".repeat(1000)
    );
    for body in [
        deep.as_str(),
        "\u{feff}{}",
        "{\"model\":\"m\",\"messages\":[]} trailing",
    ] {
        let resp = client()
            .post(proxy.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        expect_error(resp, 400).await;
    }
    assert!(mock.hits().is_empty());
}

#[tokio::test]
async fn past_the_concurrency_bound_requests_get_503_at_once() {
    let mock = recording_mock().await;
    let gates: Vec<Arc<Notify>> = (0..2).map(|_| Arc::new(Notify::new())).collect();
    mock.script(
        "k1",
        gates
            .iter()
            .map(|g| Behavior::HoldAfterFirstChunk(g.clone())),
    );
    let proxy = Proxy::start(
        &json!([openai_key(&mock, "m", "k1")]),
        &["--max-concurrency", "2"],
    )
    .await;
    let mut body = chat_body("m", "a b");
    body["stream"] = json!(true);
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = proxy.chat(&body).await.bytes_stream();
        stream.next().await.unwrap().unwrap();
        open.push(stream);
    }
    let started = Instant::now();
    let refused = proxy.chat(&chat_body("m", "hi")).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refused at once, not queued"
    );
    assert_eq!(refused.headers()["retry-after"], "1");
    let err = expect_error(refused, 503).await;
    assert_eq!(err["error"]["code"], "overloaded");

    for gate in &gates {
        gate.notify_one();
    }
    for mut stream in open {
        while let Some(chunk) = stream.next().await {
            chunk.unwrap();
        }
    }
    let resp = proxy.chat(&chat_body("m", "hi")).await;
    assert_eq!(resp.status(), 200, "slots come back when streams end");
}

#[tokio::test]
async fn slow_and_idle_clients_are_disconnected() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(
        &json!([openai_key(&mock, "m", "k1")]),
        &["--header-read-timeout", "0.5"],
    )
    .await;
    let addr = proxy.addr;
    tokio::task::spawn_blocking(move || {
        // Headers that never finish.
        let mut slow = std::net::TcpStream::connect(addr).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        let _ = slow.read_to_end(&mut buf);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "slow client held on for {:?}",
            started.elapsed()
        );

        // A keep-alive connection left idle after a request.
        let mut idle = std::net::TcpStream::connect(addr).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut first = [0u8; 512];
        let n = idle.read(&mut first).unwrap();
        assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
        let started = Instant::now();
        let mut rest = Vec::new();
        let _ = idle.read_to_end(&mut rest);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "idle client held on for {:?}",
            started.elapsed()
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn https_listener_with_a_generated_certificate() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();

    let mock = recording_mock().await;
    let proxy = Proxy::start(
        &json!([openai_key(&mock, "m", "k1")]),
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    )
    .await;
    let https = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!(
        "https://localhost:{}/v1/chat/completions",
        proxy.addr.port()
    );
    let resp = https
        .post(&url)
        .json(&chat_body("m", "secure"))
        .send()
        .await
        .unwrap();
    // ALPN chose HTTP/2; a client that offers only HTTP/1.1 gets that.
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "You said: secure");
    let http1 = reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let resp = http1
        .post(&url)
        .json(&chat_body("m", "secure"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
    // Plain HTTP to the TLS port gets nothing useful.
    assert!(
        client()
            .post(proxy.url("/v1/chat/completions"))
            .json(&chat_body("m", "x"))
            .send()
            .await
            .is_err()
    );
}
