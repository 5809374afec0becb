//! keyrelay in front of the mock OpenAI upstream: rotation, passthrough, errors, streaming.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

#[tokio::test]
async fn round_robin_is_exact_per_model_for_two_models_at_once() {
    let mock = recording_mock().await;
    let keys = json!([
        openai_key(&mock, "alpha", "a1"),
        openai_key(&mock, "beta", "b1"),
        openai_key(&mock, "alpha", "a2"),
        openai_key(&mock, "alpha", "a3"),
        openai_key(&mock, "beta", "b2"),
    ]);
    let proxy = Proxy::start(&keys, &[]).await;
    for i in 0..30 {
        let model = if i % 5 < 3 { "alpha" } else { "beta" };
        let resp = proxy.chat(&chat_body(model, "hi")).await;
        assert_eq!(resp.status(), 200);
    }
    let hits = mock.hits();
    for key in ["a1", "a2", "a3", "b1", "b2"] {
        assert_eq!(hits.get(key), Some(&6), "{hits:?}");
    }
}

#[tokio::test]
async fn concurrent_requests_stay_balanced() {
    let mock = MockUpstream::start(MockOptions::default()).await.unwrap();
    let keys = json!([
        openai_key(&mock, "m", "k1"),
        openai_key(&mock, "m", "k2"),
        openai_key(&mock, "m", "k3"),
        openai_key(&mock, "m", "k4"),
    ]);
    let proxy = Arc::new(Proxy::start(&keys, &[]).await);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let proxy = proxy.clone();
            tokio::spawn(async move { proxy.chat(&chat_body("m", "x")).await.status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let hits = mock.hits();
    for key in ["k1", "k2", "k3", "k4"] {
        assert_eq!(hits.get(key), Some(&50), "{hits:?}");
    }
}

#[tokio::test]
async fn body_goes_upstream_byte_for_byte_with_keyrelays_own_key() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "gpt-4o", "sk-upstream-1")]), &[]).await;
    // Odd spacing, key order, unicode and unknown fields must all survive untouched.
    let body = "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"h\\u00e9llo ✓\"} ],\n  \"temperature\": 0.50,\"model\":\"gpt-4o\", \"x_vendor\": {\"a\": [1,2.0e3]} }";
    let resp = client()
        .post(proxy.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer client-token")
        .header("x-api-key", "client-token")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .header("user-agent", "test-agent/1.0")
        .header("openai-beta", "assistants=v2")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let seen = &reqs[0];
    assert_eq!(seen.body, body.as_bytes());
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.headers["authorization"], "Bearer sk-upstream-1");
    assert!(seen.headers.get("x-api-key").is_none());
    assert!(seen.headers.get("x-hop").is_none());
    assert_eq!(seen.headers["user-agent"], "test-agent/1.0");
    assert_eq!(seen.headers["openai-beta"], "assistants=v2");
}

#[tokio::test]
async fn upstream_model_rewrites_only_the_model() {
    let mock = recording_mock().await;
    let mut key = openai_key(&mock, "fast", "k");
    key["upstream_model"] = json!("llama-3.1-8b-instant");
    let proxy = Proxy::start(&json!([key]), &[]).await;
    let body = r#"{"model": "fast", "messages": [{"role": "user", "content": "model fast"}]}"#;
    let resp = client()
        .post(proxy.url("/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["model"], "llama-3.1-8b-instant");
    assert_eq!(
        mock.requests()[0].body,
        body.replace("\"fast\"", "\"llama-3.1-8b-instant\"")
            .as_bytes()
    );
}

#[tokio::test]
async fn upstream_errors_pass_through_unchanged() {
    let mock = recording_mock().await;
    mock.script(
        "k",
        [Behavior::Fail {
            status: 429,
            headers: vec![("retry-after".into(), "7".into())],
        }],
    );
    let keys = json!([
        openai_key(&mock, "m", "k"),
        openai_key(&mock, "other", "k2")
    ]);
    let proxy = Proxy::start(&keys, &[]).await;
    let resp = proxy.chat(&chat_body("m", "hi")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(resp.headers()["x-ratelimit-remaining-requests"], "4999");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");

    // The mock's own validation error (an empty messages array) reaches the client as sent.
    let resp = proxy.chat(&json!({"model": "other", "messages": []})).await;
    let body = expect_error(resp, 400).await;
    assert_eq!(body["error"]["code"], "empty_array");
    assert_eq!(body["error"]["param"], "messages");
}

#[tokio::test]
async fn bad_requests_get_400_and_never_reach_upstream() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "m", "k")]), &[]).await;
    let cases: [(&str, Option<&str>, &str); 6] = [
        ("{not json", None, "could not parse"),
        (r#"{"messages": []}"#, Some("model"), "'model'"),
        (r#"{"model": 42, "messages": []}"#, Some("model"), "'model'"),
        (r#"{"model": "m"}"#, Some("messages"), "'messages'"),
        (
            r#"{"model": "m", "messages": [], "stream": "yes"}"#,
            Some("stream"),
            "'stream'",
        ),
        (r#"["model", "m"]"#, None, "JSON object"),
    ];
    for (body, param, says) in cases {
        let resp = client()
            .post(proxy.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let err = expect_error(resp, 400).await;
        assert_eq!(err["error"]["type"], "invalid_request_error");
        assert_eq!(err["error"]["param"].as_str(), param, "{body}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(says),
            "{err}"
        );
    }
    let resp = client()
        .post(proxy.url("/v1/chat/completions"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(r#"{"model":"m","messages":[]}"#)
        .send()
        .await
        .unwrap();
    let err = expect_error(resp, 400).await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Content-Type")
    );
    assert!(mock.hits().is_empty(), "{:?}", mock.hits());
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "m", "k")]), &[]).await;
    let err = expect_error(proxy.chat(&chat_body("gpt-unknown", "hi")).await, 404).await;
    assert_eq!(err["error"]["code"], "model_not_found");
    assert_eq!(err["error"]["param"], "model");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-unknown")
    );
    assert!(mock.hits().is_empty());
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let keys = json!([{"api_key": "sk-unreachable-key", "model": "m", "provider": "openai",
                       "base_url": format!("http://127.0.0.1:{port}/v1")}]);
    let proxy = Proxy::start(&keys, &[]).await;
    let err = expect_error(proxy.chat(&chat_body("m", "hi")).await, 502).await;
    assert_eq!(err["error"]["code"], "upstream_unreachable");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("openai…key"),
        "names the key label: {message}"
    );
    assert!(!message.contains("sk-unreachable-key"), "{message}");
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let mock = recording_mock().await;
    mock.script("k", [Behavior::DelayHeaders(Duration::from_secs(3))]);
    let proxy = Proxy::start(
        &json!([openai_key(&mock, "m", "k")]),
        &["--first-byte-timeout", "0.3"],
    )
    .await;
    let err = expect_error(proxy.chat(&chat_body("m", "hi")).await, 504).await;
    assert_eq!(err["error"]["code"], "upstream_first_byte_timeout");
}

#[tokio::test]
async fn stream_chunks_are_forwarded_before_the_upstream_finishes() {
    let mock = recording_mock().await;
    let gate = Arc::new(Notify::new());
    mock.script("k", [Behavior::HoldAfterFirstChunk(gate.clone())]);
    let proxy = Proxy::start(&json!([openai_key(&mock, "m", "k")]), &[]).await;
    let mut body = chat_body("m", "one two three");
    body["stream"] = json!(true);
    let resp = tokio::time::timeout(Duration::from_secs(5), proxy.chat(&body))
        .await
        .expect("response head must arrive while the upstream still holds the stream");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream();

    // The upstream is holding everything after its first frame until the gate opens, so
    // receiving that frame proves keyrelay did not wait for the rest.
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("first chunk must arrive while the upstream still holds the second")
        .unwrap()
        .unwrap();
    let first = String::from_utf8(first.to_vec()).unwrap();
    assert!(first.starts_with("data: "), "{first}");
    assert!(first.contains(r#""role":"assistant""#), "{first}");
    assert!(
        !first.contains("one"),
        "only the first frame may have arrived: {first}"
    );

    gate.notify_one();
    let mut rest = String::new();
    while let Some(chunk) = stream.next().await {
        rest.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(rest.contains(r#""content":"one ""#), "{rest}");
    assert!(rest.ends_with("data: [DONE]\n\n"), "{rest}");
}

#[tokio::test]
async fn usage_chunk_and_done_pass_through() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "m", "k")]), &[]).await;
    let mut body = chat_body("m", "count these words");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = proxy.chat(&body).await.text().await.unwrap();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.last(), Some(&"data: [DONE]"));
    let usage: Value =
        serde_json::from_str(frames[frames.len() - 2].trim_start_matches("data: ")).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
}

#[tokio::test]
async fn models_health_and_routing_errors() {
    let mock = recording_mock().await;
    let keys = json!([
        openai_key(&mock, "zeta", "k1"),
        openai_key(&mock, "alpha", "k2"),
        openai_key(&mock, "zeta", "k3")
    ]);
    let proxy = Proxy::start(&keys, &[]).await;
    for path in ["/v1/models", "/models"] {
        let v: Value = client()
            .get(proxy.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["object"], "list");
        let ids: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["zeta", "alpha"]);
        assert_eq!(v["data"][0]["object"], "model");
    }
    let health = client().get(proxy.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let err = expect_error(
        client().get(proxy.url("/v1/nope")).send().await.unwrap(),
        404,
    )
    .await;
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/nope")
    );
    let resp = client()
        .get(proxy.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "POST");
    assert!(resp.headers().contains_key("x-request-id"));
    expect_error(resp, 405).await;
    // HEAD is served wherever GET is, without a body.
    let resp = client().head(proxy.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 0);
    let resp = client().post(proxy.url("/health")).send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "GET,HEAD");
    expect_error(resp, 405).await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(
        &json!([openai_key(&mock, "m", "k")]),
        &["--max-body", "1000"],
    )
    .await;
    let err = expect_error(proxy.chat(&chat_body("m", &"x".repeat(2000))).await, 413).await;
    assert_eq!(err["error"]["code"], "request_too_large");
    // Without a Content-Length (chunked upload), the limit still holds.
    let chunks = futures_util::stream::iter(
        (0..20).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 100]))),
    );
    let resp = client()
        .post(proxy.url("/v1/chat/completions"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    expect_error(resp, 413).await;
    assert!(mock.hits().is_empty());
}

#[tokio::test]
async fn mock_provider_answers_in_process() {
    let keys = json!([{"api_key": "local", "model": "m", "provider": "mock"}]);
    let proxy = Proxy::start(&keys, &[]).await;
    let v: Value = proxy
        .chat(&chat_body("m", "ping pong"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "You said: ping pong");
    let mut body = chat_body("m", "ping pong");
    body["stream"] = json!(true);
    let text = proxy.chat(&body).await.text().await.unwrap();
    assert!(text.contains(r#""content":"pong""#), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}
