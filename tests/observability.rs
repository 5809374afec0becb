//! Metrics, request ids and the per-request log line.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

#[tokio::test]
async fn counters_match_the_traffic_exactly() {
    let mock = recording_mock().await;
    mock.script(
        "k1",
        [Behavior::Fail {
            status: 429,
            headers: vec![],
        }],
    );
    mock.script("t1", [Behavior::DelayHeaders(Duration::from_secs(5))]);
    mock.script(
        "a1",
        [Behavior::Fail {
            status: 401,
            headers: vec![],
        }],
    );
    mock.script("c1", [Behavior::DelayHeaders(Duration::from_secs(5))]);
    let gate = Arc::new(Notify::new());
    mock.script("s1", [Behavior::HoldAfterFirstChunk(gate)]);
    let keys = json!([
        openai_key(&mock, "m", "k1"),
        openai_key(&mock, "m", "k2"),
        openai_key(&mock, "t", "t1"),
        openai_key(&mock, "a", "a1"),
        openai_key(&mock, "c", "c1"),
        openai_key(&mock, "s", "s1")
    ]);
    let proxy = Proxy::start(&keys, &["--first-byte-timeout", "0.3"]).await;

    assert_eq!(proxy.chat(&chat_body("m", "hi")).await.status(), 200); // k1 429, then k2
    assert_eq!(proxy.chat(&chat_body("m", "hi")).await.status(), 200); // k1 cooling: k2
    assert_eq!(proxy.chat(&chat_body("t", "hi")).await.status(), 504);
    assert_eq!(proxy.chat(&chat_body("a", "hi")).await.status(), 401);
    assert_eq!(proxy.chat(&chat_body("nope", "hi")).await.status(), 404);
    // A client that gives up before the response head.
    let body = chat_body("c", "hi");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), proxy.chat(&body))
            .await
            .is_err()
    );
    // A client that leaves mid-stream.
    let mut body = chat_body("s", "one two");
    body["stream"] = json!(true);
    let mut stream = proxy.chat(&body).await.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let text = metrics(&proxy).await;
    let expect = [
        (
            r#"keyrelay_upstream_attempts_total{key="k1",model="m",outcome="rate_limited"}"#,
            1.0,
        ),
        (
            r#"keyrelay_upstream_attempts_total{key="k2",model="m",outcome="success"}"#,
            2.0,
        ),
        (
            r#"keyrelay_upstream_attempts_total{key="t1",model="t",outcome="timeout"}"#,
            1.0,
        ),
        (
            r#"keyrelay_upstream_attempts_total{key="a1",model="a",outcome="auth_rejected"}"#,
            1.0,
        ),
        (
            r#"keyrelay_upstream_attempts_total{key="c1",model="c",outcome="client_cancelled"}"#,
            1.0,
        ),
        (
            r#"keyrelay_upstream_attempts_total{key="s1",model="s",outcome="success"}"#,
            1.0,
        ),
        (r#"keyrelay_retries_total{model="m"}"#, 1.0),
        (r#"keyrelay_key_cooldowns_total{key="k1",model="m"}"#, 1.0),
        (
            r#"keyrelay_key_state{key="k1",model="m",state="cooling"}"#,
            1.0,
        ),
        (
            r#"keyrelay_key_state{key="k2",model="m",state="healthy"}"#,
            1.0,
        ),
        (
            r#"keyrelay_key_state{key="a1",model="a",state="disabled"}"#,
            1.0,
        ),
        (
            r#"keyrelay_key_state{key="a1",model="a",state="healthy"}"#,
            0.0,
        ),
        (
            r#"keyrelay_requests_total{model="m",provider="openai",endpoint="chat_completions",status_class="2xx"}"#,
            2.0,
        ),
        (
            r#"keyrelay_requests_total{model="t",provider="openai",endpoint="chat_completions",status_class="5xx"}"#,
            1.0,
        ),
        (
            r#"keyrelay_requests_total{model="a",provider="openai",endpoint="chat_completions",status_class="4xx"}"#,
            1.0,
        ),
        (
            r#"keyrelay_requests_total{model="-",provider="-",endpoint="chat_completions",status_class="4xx"}"#,
            1.0,
        ),
        // "hi": 1 word + 3 per message = 4 prompt tokens; "You said: hi" = 3 completion tokens.
        (
            r#"keyrelay_tokens_total{key="k2",model="m",caller="-",kind="prompt"}"#,
            8.0,
        ),
        (
            r#"keyrelay_tokens_total{key="k2",model="m",caller="-",kind="completion"}"#,
            6.0,
        ),
        (
            r#"keyrelay_tokens_total{key="k2",model="m",caller="-",kind="cached"}"#,
            0.0,
        ),
        ("keyrelay_open_streams", 0.0),
        ("keyrelay_in_flight_requests", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
    }
    assert!(
        !text.contains("nope"),
        "an unknown model must not create a series"
    );
    for histogram in [
        "request_duration_seconds",
        "time_to_first_byte_seconds",
        "overhead_seconds",
    ] {
        let count = sample(
            &text,
            &format!(r#"keyrelay_{histogram}_count{{endpoint="chat_completions"}}"#),
        )
        .unwrap();
        assert!(count >= 5.0, "{histogram}: {count}");
    }
}

#[tokio::test]
async fn tokens_are_counted_from_translated_and_passthrough_streams() {
    let mock = recording_mock().await;
    let keys = json!([
        openai_key(&mock, "m", "k1"),
        anthropic_key(&mock, "c", "a1")
    ]);
    let proxy = Proxy::start(&keys, &[]).await;
    for model in ["m", "c"] {
        let mut body = chat_body(model, "three little words");
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
        let text = proxy.chat(&body).await.text().await.unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"));
    }
    // Native Anthropic stream, passed through.
    let text = post_messages(
        &proxy,
        &json!({"model": "c", "max_tokens": 50, "stream": true,
        "messages": [{"role": "user", "content": "two words"}]}),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(text.contains("message_stop"));

    let text = metrics(&proxy).await;
    // OpenAI mock: 3 words + 3 = 6 prompt; "You said: three little words" = 5 completion.
    assert_eq!(
        sample(
            &text,
            r#"keyrelay_tokens_total{key="k1",model="m",caller="-",kind="prompt"}"#
        ),
        Some(6.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"keyrelay_tokens_total{key="k1",model="m",caller="-",kind="completion"}"#
        ),
        Some(5.0)
    );
    // Anthropic mock, translated (3 + 3 = 6, 5) plus native (2 + 3 = 5, 4).
    assert_eq!(
        sample(
            &text,
            r#"keyrelay_tokens_total{key="a1",model="c",caller="-",kind="prompt"}"#
        ),
        Some(11.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"keyrelay_tokens_total{key="a1",model="c",caller="-",kind="completion"}"#
        ),
        Some(9.0)
    );
}

#[tokio::test]
async fn metrics_token_protects_the_endpoint() {
    let mock = recording_mock().await;
    let source = keyrelay::config::KeySource {
        metrics_token: Some(keyrelay::secret::Secret::new("metrics-secret-1")),
        ..Default::default()
    };
    let proxy = Proxy::start_with(&json!([openai_key(&mock, "m", "k1")]), &[], source).await;
    assert_eq!(
        client()
            .get(proxy.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let ok = client()
        .get(proxy.url("/metrics"))
        .bearer_auth("metrics-secret-1")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("keyrelay_requests"));
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_travel_everywhere() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "m", "k1")]), &[]).await;
    let resp = client()
        .post(proxy.url("/v1/chat/completions"))
        .header("x-request-id", "client-id-42")
        .json(&chat_body("m", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "client-id-42");
    assert_eq!(mock.requests()[0].headers["x-request-id"], "client-id-42");

    let resp = client()
        .post(proxy.url("/v1/chat/completions"))
        .header("x-request-id", "bad id\twith tab")
        .json(&chat_body("m", "hi"))
        .send()
        .await
        .unwrap();
    let made = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(made.starts_with("kr-"), "{made}");
    assert_eq!(mock.requests()[1].headers["x-request-id"], made.as_str());
    // Errors keyrelay answers itself carry one too.
    let resp = client().get(proxy.url("/nowhere")).send().await.unwrap();
    assert!(resp.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn the_json_request_line_has_every_field() {
    let mock = recording_mock().await;
    let keys = json!([openai_key(&mock, "m", "k1")]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyrelay"))
        .env("LLM_KEYS", keys.to_string())
        .env("KEYRELAY_TOKENS", "json-log-token-1")
        .env("RUST_LOG", "keyrelay=info")
        .env_remove("LLM_KEYS_FILE")
        .args(["--port", "0", "--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let url = banner
        .split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let resp = client()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth("json-log-token-1")
        .header("x-request-id", "log-test-1")
        .json(&chat_body("m", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    sigterm(&child);
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    child.wait().unwrap();

    let line: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "request")
        .unwrap_or_else(|| panic!("no JSON request line in:\n{logs}"));
    assert_eq!(line["request_id"], "log-test-1");
    assert_eq!(line["caller"], "token-1");
    assert_eq!(line["endpoint"], "chat_completions");
    assert_eq!(line["model"], "m");
    assert_eq!(line["key"], "k1");
    assert_eq!(line["attempts"], "k1:success:200");
    assert_eq!(line["status"], 200);
    assert_eq!(line["prompt_tokens"], 4);
    assert_eq!(line["completion_tokens"], 3);
    assert!(line["duration_ms"].as_f64().unwrap() >= line["ttfb_ms"].as_f64().unwrap());
    assert_eq!(line["level"], "INFO");

    // Startup logs the configuration summary: models, key counts, labels; never a key.
    let summary: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "model configured")
        .unwrap_or_else(|| panic!("no configuration summary in:\n{logs}"));
    assert_eq!(
        (
            summary["model"].as_str(),
            summary["keys"].as_u64(),
            summary["labels"].as_str()
        ),
        (Some("m"), Some(1), Some("k1"))
    );
    assert!(!logs.contains("json-log-token-1"));
}

#[tokio::test]
async fn usage_is_requested_for_accounting_but_the_client_sees_only_what_it_asked_for() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&json!([openai_key(&mock, "m", "k1")]), &[]).await;
    let mut body = chat_body("m", "count me please");
    body["stream"] = json!(true);
    let text = proxy.chat(&body).await.text().await.unwrap();

    let sent: Value = serde_json::from_slice(&mock.requests()[0].body).unwrap();
    assert_eq!(
        sent["stream_options"]["include_usage"], true,
        "keyrelay asked upstream for usage"
    );
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert_eq!(frames.last(), Some(&"data: [DONE]"));
    for frame in &frames[..frames.len() - 1] {
        let chunk: Value = serde_json::from_str(frame.trim_start_matches("data: ")).unwrap();
        assert!(
            chunk.get("usage").is_none(),
            "no usage field the client did not ask for: {frame}"
        );
        assert!(
            !chunk["choices"].as_array().unwrap().is_empty(),
            "no usage-only chunk: {frame}"
        );
    }
    let content: String = frames[..frames.len() - 1]
        .iter()
        .filter_map(|f| serde_json::from_str::<Value>(f.trim_start_matches("data: ")).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(content, "You said: count me please");

    let text = metrics(&proxy).await;
    assert_eq!(
        sample(
            &text,
            r#"keyrelay_tokens_total{key="k1",model="m",caller="-",kind="completion"}"#
        ),
        Some(5.0),
        "{text}"
    );
}
