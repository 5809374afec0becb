//! A few thousand concurrent requests over a pool mixing good keys with keys that always
//! answer 429, 500 or 401: every request ends with a definite answer, upstream calls stay
//! within the attempt budget, and keyrelay's own counts match what the upstream saw.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_pool_under_concurrent_load() {
    const REQUESTS: usize = 3000;
    let mock = MockUpstream::start(MockOptions::default()).await.unwrap();
    let names = [
        "good-1",
        "bad-status-429",
        "good-2",
        "bad-status-500",
        "good-3",
        "bad-status-401",
    ];
    let keys = Value::Array(names.iter().map(|k| openai_key(&mock, "m", k)).collect());
    let proxy = Proxy::start(&keys, &["--max-attempts", "3"]).await;
    let http = client();

    let results = futures_util::stream::iter(0..REQUESTS)
        .map(|i| {
            let http = http.clone();
            let url = proxy.url("/v1/chat/completions");
            async move {
                let resp = http
                    .post(url)
                    .json(&chat_body("m", &format!("request {i}")))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                (status, resp.json::<Value>().await.unwrap())
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<(u16, Value)>>();
    let results = tokio::time::timeout(Duration::from_secs(120), results)
        .await
        .expect("no request hangs");

    assert_eq!(results.len(), REQUESTS, "no request is lost");
    let mut succeeded = 0u64;
    for (status, body) in &results {
        if *status == 200 {
            succeeded += 1;
            assert!(
                body["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .starts_with("You said: request ")
            );
        } else {
            // A definite error: an envelope that says what happened.
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{status}: {body}"
            );
        }
    }
    // Failing keys leave rotation after their first failures, so almost everything succeeds.
    assert!(
        succeeded as usize >= REQUESTS - 20,
        "only {succeeded} of {REQUESTS} succeeded"
    );

    let hits = mock.hits();
    let upstream_calls: u64 = hits.values().sum();
    assert!(upstream_calls >= REQUESTS as u64);
    assert!(
        upstream_calls <= 3 * REQUESTS as u64,
        "attempt budget exceeded: {upstream_calls}"
    );

    let admin = admin_keys(&proxy).await;
    let mut admin_attempts = 0u64;
    let mut admin_successes = 0u64;
    for key in admin["keys"].as_array().unwrap() {
        let label = key["label"].as_str().unwrap();
        let attempts = key["attempts"].as_u64().unwrap();
        assert_eq!(
            hits.get(label).copied().unwrap_or(0),
            attempts,
            "{label}: {key}"
        );
        admin_attempts += attempts;
        admin_successes += key["successes"].as_u64().unwrap();
    }
    assert_eq!(admin_attempts, upstream_calls);
    assert_eq!(admin_successes, succeeded);
    let state = |label: &str| {
        admin["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["label"] == label)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state("bad-status-401"), json!("disabled"));
    assert_eq!(state("bad-status-429"), json!("cooling"));
    assert_eq!(state("good-1"), json!("healthy"));
}
