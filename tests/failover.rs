//! Key health and failover, fault by fault, against the mock upstream with per-key scripts.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

fn fail(status: u16, headers: &[(&str, &str)]) -> Behavior {
    Behavior::Fail {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).into(), (*v).into()))
            .collect(),
    }
}

fn keys(mock: &MockUpstream, model: &str, names: &[&str]) -> Value {
    Value::Array(names.iter().map(|k| openai_key(mock, model, k)).collect())
}

fn key_state<'a>(admin: &'a Value, label: &str) -> &'a Value {
    admin["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == label)
        .unwrap()
}

async fn ok(proxy: &Proxy, model: &str) {
    let resp = proxy.chat(&chat_body(model, "hi")).await;
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
}

#[tokio::test]
async fn rate_limited_key_is_skipped_until_its_cooldown_passes() {
    let mock = recording_mock().await;
    mock.script("k1", [fail(429, &[("retry-after-ms", "400")])]);
    let proxy = Proxy::start(&keys(&mock, "m", &["k1", "k2"]), &[]).await;

    ok(&proxy, "m").await; // k1: 429, retried on k2
    assert_eq!(mock.hits(), [("k1".into(), 1), ("k2".into(), 1)].into());
    let admin = admin_keys(&proxy).await;
    assert_eq!(key_state(&admin, "k1")["state"], "cooling");
    for _ in 0..3 {
        ok(&proxy, "m").await;
    }
    assert_eq!(mock.hits()["k1"], 1, "a cooling key is not tried");
    assert_eq!(mock.hits()["k2"], 4);

    tokio::time::sleep(Duration::from_millis(450)).await;
    ok(&proxy, "m").await;
    ok(&proxy, "m").await;
    assert_eq!(mock.hits()["k1"], 2, "the key came back by itself");
    assert_eq!(
        key_state(&admin_keys(&proxy).await, "k1")["state"],
        "healthy"
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let mock = recording_mock().await;
    for status in [400, 404, 413, 422] {
        mock.script("k1", [fail(status, &[])]);
    }
    let proxy = Proxy::start(&keys(&mock, "m", &["k1", "k2"]), &[]).await;
    for status in [400, 404, 413, 422] {
        // Rotation alternates, so address k1 each time by sending two requests.
        let first = proxy.chat(&chat_body("m", "hi")).await;
        assert_eq!(first.status().as_u16(), status);
        ok(&proxy, "m").await;
    }
    assert_eq!(mock.hits()["k1"], 4, "each failure went back at once");
    assert_eq!(mock.hits()["k2"], 4, "k2 served only its own turns");
    let admin = admin_keys(&proxy).await;
    assert_eq!(key_state(&admin, "k1")["state"], "healthy");
}

#[tokio::test]
async fn retryable_statuses_move_to_the_next_key() {
    for status in [408, 429, 500, 502, 503, 504, 529, 401, 403] {
        let mock = recording_mock().await;
        mock.script("k1", [fail(status, &[])]);
        let proxy = Proxy::start(&keys(&mock, "m", &["k1", "k2"]), &[]).await;
        ok(&proxy, "m").await;
        assert_eq!(
            mock.hits(),
            [("k1".into(), 1), ("k2".into(), 1)].into(),
            "status {status}"
        );
    }
}

#[tokio::test]
async fn rejected_key_is_disabled_and_stays_out() {
    let mock = recording_mock().await;
    mock.script("k1", [fail(401, &[])]);
    let proxy = Proxy::start(&keys(&mock, "m", &["k1", "k2", "k3"]), &[]).await;
    for _ in 0..7 {
        ok(&proxy, "m").await;
    }
    assert_eq!(mock.hits()["k1"], 1);
    let admin = admin_keys(&proxy).await;
    let k1 = key_state(&admin, "k1");
    assert_eq!(k1["state"], "disabled");
    assert!(k1["disabled_reason"].as_str().unwrap().contains("401"));

    // An operator reset brings it back.
    let reset = client()
        .post(proxy.url("/admin/keys/k1/reset"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    for _ in 0..3 {
        ok(&proxy, "m").await;
    }
    assert_eq!(mock.hits()["k1"], 2);
}

#[tokio::test]
async fn every_key_refused_is_an_account_problem_not_a_reason_to_disable_all() {
    let mock = recording_mock().await;
    for k in ["k1", "k2"] {
        mock.script(k, [fail(401, &[])]);
    }
    let proxy = Proxy::start(&keys(&mock, "m", &["k1", "k2"]), &[]).await;
    let resp = proxy.chat(&chat_body("m", "hi")).await;
    assert_eq!(resp.status(), 401, "the last refusal reaches the client");
    let admin = admin_keys(&proxy).await;
    for k in ["k1", "k2"] {
        assert_eq!(key_state(&admin, k)["state"], "cooling", "{k}: {admin}");
    }
    // Cooling, not disabled: the model answers 429 with a retry-after, not 503.
    let resp = proxy.chat(&chat_body("m", "hi")).await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn breaker_opens_after_three_consecutive_failures_only() {
    let mock = recording_mock().await;
    let proxy = Proxy::start(&keys(&mock, "m", &["k1"]), &["--breaker-cooldown", "0.4"]).await;

    // Two failures, a success, two failures: never three in a row.
    mock.script(
        "k1",
        [
            fail(500, &[]),
            fail(503, &[]),
            Behavior::DelayHeaders(Duration::ZERO),
            fail(502, &[]),
            fail(500, &[]),
        ],
    );
    for expected in [500, 503, 200, 502, 500] {
        assert_eq!(
            proxy.chat(&chat_body("m", "hi")).await.status().as_u16(),
            expected
        );
    }
    assert_eq!(
        key_state(&admin_keys(&proxy).await, "k1")["state"],
        "healthy"
    );

    // The third in a row trips the breaker.
    mock.script("k1", [fail(504, &[])]);
    assert_eq!(proxy.chat(&chat_body("m", "hi")).await.status(), 504);
    assert_eq!(
        key_state(&admin_keys(&proxy).await, "k1")["state"],
        "cooling"
    );
    let blocked = proxy.chat(&chat_body("m", "hi")).await;
    assert_eq!(blocked.status(), 429);
    assert_eq!(mock.hits()["k1"], 6, "a cooling key is not called");

    tokio::time::sleep(Duration::from_millis(450)).await;
    ok(&proxy, "m").await;
}

#[tokio::test]
async fn huge_retry_after_is_capped() {
    let mock = recording_mock().await;
    mock.script("k1", [fail(429, &[("retry-after", "86400")])]);
    let proxy = Proxy::start(&keys(&mock, "m", &["k1"]), &["--max-cooldown", "0.4"]).await;
    assert_eq!(proxy.chat(&chat_body("m", "hi")).await.status(), 429);
    let cooling = key_state(&admin_keys(&proxy).await, "k1").clone();
    assert!(
        cooling["cooldown_remaining_s"].as_f64().unwrap() <= 0.4,
        "{cooling}"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    ok(&proxy, "m").await;
}

#[tokio::test]
async fn all_keys_cooling_answers_429_with_the_soonest_retry_after() {
    let mock = recording_mock().await;
    mock.script("k1", [fail(429, &[("retry-after", "30")])]);
    mock.script("k2", [fail(429, &[("retry-after", "3")])]);
    let keys = json!([openai_key(&mock, "m", "k1"), openai_key(&mock, "m", "k2")]);
    let proxy = Proxy::start(&keys, &[]).await;
    assert_eq!(proxy.chat(&chat_body("m", "hi")).await.status(), 429);

    let resp = proxy.chat(&chat_body("m", "hi")).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let body = expect_error(resp, 429).await;
    assert_eq!(body["error"]["code"], "all_keys_cooling_down");

    // The same in Anthropic's envelope on /v1/messages.
    let resp = post_messages(
        &proxy,
        &json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert!(resp.headers().contains_key("retry-after"));
    let body = expect_anthropic_error(resp, 429).await;
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(
        mock.hits().values().sum::<u64>(),
        2,
        "no upstream call while all keys cool"
    );
}

#[tokio::test]
async fn a_request_can_wait_for_a_cooling_key() {
    let mock = recording_mock().await;
    mock.script("k1", [fail(429, &[("retry-after-ms", "300")])]);
    let proxy = Proxy::start(&keys(&mock, "m", &["k1"]), &["--wait-for-key", "5"]).await;
    assert_eq!(proxy.chat(&chat_body("m", "hi")).await.status(), 429);
    let started = Instant::now();
    ok(&proxy, "m").await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "it waited for the key"
    );
    assert_eq!(mock.hits()["k1"], 2);
}

#[tokio::test]
async fn all_keys_disabled_answers_503_saying_so() {
    let mock = recording_mock().await;
    mock.script("k1", [fail(403, &[])]);
    mock.script("k2", [fail(401, &[])]);
    // A healthy key of the same provider (another model) shows the refusals are about these
    // two keys, not the account.
    let keys = json!([
        openai_key(&mock, "m", "k1"),
        openai_key(&mock, "m", "k2"),
        openai_key(&mock, "n", "k3")
    ]);
    let proxy = Proxy::start(&keys, &[]).await;
    assert_eq!(proxy.chat(&chat_body("m", "hi")).await.status(), 401);
    let resp = proxy.chat(&chat_body("m", "hi")).await;
    let body = expect_error(resp, 503).await;
    assert_eq!(body["error"]["code"], "all_keys_disabled");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );
    assert_eq!(mock.hits().values().sum::<u64>(), 2);
}

#[tokio::test]
async fn attempts_never_exceed_the_budget() {
    let mock = recording_mock().await;
    let names = ["k1", "k2", "k3", "k4", "k5"];
    for k in names {
        mock.script(k, [fail(503, &[])]);
    }
    let proxy = Proxy::start(&keys(&mock, "m", &names), &["--max-attempts", "3"]).await;
    let resp = proxy.chat(&chat_body("m", "hi")).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(mock.hits().values().sum::<u64>(), 3);
}

#[tokio::test]
async fn slow_first_byte_is_retried_on_the_next_key() {
    let mock = recording_mock().await;
    mock.script("k1", [Behavior::DelayHeaders(Duration::from_secs(5))]);
    let proxy = Proxy::start(
        &keys(&mock, "m", &["k1", "k2"]),
        &["--first-byte-timeout", "0.3"],
    )
    .await;
    let started = Instant::now();
    ok(&proxy, "m").await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(mock.hits(), [("k1".into(), 1), ("k2".into(), 1)].into());
}

#[tokio::test]
async fn stalled_stream_ends_with_an_in_band_idle_timeout() {
    let mock = recording_mock().await;
    let gate = Arc::new(Notify::new()); // never opened
    mock.script("k1", [Behavior::HoldAfterFirstChunk(gate)]);
    let proxy = Proxy::start(&keys(&mock, "m", &["k1"]), &["--idle-timeout", "0.3"]).await;
    let mut body = chat_body("m", "one two");
    body["stream"] = json!(true);
    let resp = proxy.chat(&body).await;
    assert_eq!(resp.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(5), resp.text())
        .await
        .unwrap()
        .unwrap();
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert!(frames[0].contains(r#""role":"assistant""#));
    let last: Value =
        serde_json::from_str(frames.last().unwrap().trim_start_matches("data: ")).unwrap();
    assert_eq!(last["error"]["code"], "upstream_idle_timeout", "{text}");
    assert!(
        !text.contains("[DONE]"),
        "a broken stream never looks finished"
    );
}

#[tokio::test]
async fn dropped_stream_ends_with_an_in_band_error_in_the_endpoints_format() {
    let mock = recording_mock().await;
    let openai_frames = vec![bytes::Bytes::from_static(
        b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n",
    )];
    mock.script(
        "k1",
        [Behavior::Stream {
            frames: openai_frames,
            truncate: true,
        }],
    );
    let anthropic = recording_mock().await;
    let anthropic_frames = vec![bytes::Bytes::from_static(
        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
    )];
    anthropic.script(
        "a1",
        [Behavior::Stream {
            frames: anthropic_frames,
            truncate: true,
        }],
    );
    let keys = json!([
        openai_key(&mock, "m", "k1"),
        anthropic_key(&anthropic, "c", "a1")
    ]);
    let proxy = Proxy::start(&keys, &[]).await;

    let mut body = chat_body("m", "hi");
    body["stream"] = json!(true);
    let text = proxy.chat(&body).await.text().await.unwrap();
    assert!(text.contains("\"Hi\""), "{text}");
    assert!(
        text.contains(r#""code":"upstream_stream_failed""#),
        "{text}"
    );

    let text = post_messages(
        &proxy,
        &json!({"model": "c", "max_tokens": 5, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(text.starts_with("event: message_start"), "{text}");
    assert!(text.contains("event: error\ndata: {"), "{text}");
    assert!(!text.contains("message_stop"));
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_cancels_the_upstream() {
    let mock = MockUpstream::start(MockOptions {
        chunk_delay: Duration::from_millis(50),
        ..Default::default()
    })
    .await
    .unwrap();
    let proxy = Proxy::start(&keys(&mock, "m", &["k1"]), &[]).await;
    let mut body = chat_body("m", &"word ".repeat(200));
    body["stream"] = json!(true);
    let resp = proxy.chat(&body).await;
    let mut stream = resp.bytes_stream();
    stream.next().await.unwrap().unwrap();
    assert_eq!(mock.open_bodies(), 1);
    drop(stream);

    // The upstream body is dropped as soon as keyrelay notices; 200 words at 50 ms would
    // otherwise keep it open for 10 s.
    let deadline = Instant::now() + Duration::from_secs(3);
    while mock.open_bodies() > 0 {
        assert!(Instant::now() < deadline, "upstream stream still open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let admin = admin_keys(&proxy).await;
    assert_eq!(admin["requests_cancelled"], 1, "{admin}");
    assert_eq!(admin["open_streams"], 0);
}

#[tokio::test]
async fn admin_needs_its_token_and_never_shows_a_key() {
    let mock = recording_mock().await;
    let keys = json!([{"api_key": "sk-very-secret-admin-test", "model": "m", "provider": "openai", "base_url": mock.base_url()}]);
    let proxy = Proxy::start(&keys, &[]).await;
    let anonymous = client().get(proxy.url("/admin/keys")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = client()
        .get(proxy.url("/admin/keys"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let text = client()
        .get(proxy.url("/admin/keys"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("openai…est"), "{text}");
    assert!(!text.contains("sk-very-secret"), "{text}");
}

#[tokio::test]
async fn a_client_that_leaves_before_the_response_is_counted_and_the_attempt_dropped() {
    let mock = recording_mock().await;
    mock.script("k1", [Behavior::DelayHeaders(Duration::from_secs(5))]);
    let proxy = Proxy::start(&keys(&mock, "m", &["k1"]), &[]).await;
    let body = chat_body("m", "hi");
    let request = proxy.chat(&body);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), request)
            .await
            .is_err()
    );

    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let admin = admin_keys(&proxy).await;
        if admin["requests_cancelled"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cancellation not noticed: {admin}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
