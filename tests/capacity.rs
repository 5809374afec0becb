//! The binary under a low open-file limit (set by `prlimit` before exec): the limit is raised
//! to the hard one and shown in the banner with the in-flight limit derived from it, and
//! running out of descriptors is answered with 503 `proxy_overloaded`, never blamed on a key.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// keyrelay started by `prlimit --nofile=SOFT:HARD`, with its banner and address.
struct Limited {
    child: Child,
    url: String,
    banner: String,
}

impl Limited {
    fn start(soft: u64, hard: u64, keys: &Value, args: &[&str]) -> Limited {
        let mut child = Command::new("prlimit")
            .arg(format!("--nofile={soft}:{hard}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_keyrelay"))
            .args(["--port", "0"])
            .args(args)
            .env("LLM_KEYS", keys.to_string())
            .env_remove("LLM_KEYS_FILE")
            .env("KEYRELAY_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "keyrelay=warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("prlimit (util-linux) runs keyrelay");
        let mut banner = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        // Up to the first model line: the header, the limits and any warning.
        while !banner.contains("  model ") {
            assert!(out.read_line(&mut banner).unwrap() > 0, "banner: {banner}");
        }
        let url = banner
            .lines()
            .next()
            .and_then(|l| l.split("listening on ").nth(1))
            .unwrap()
            .trim()
            .to_owned();
        Limited { child, url, banner }
    }

    async fn admin(&self, path: &str) -> Value {
        admin_get(&format!("{}{path}", self.url)).await
    }

    async fn metrics(&self) -> String {
        get_text(&format!("{}/metrics", self.url)).await
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn demo_keys() -> Value {
    json!([{"api_key": "x", "model": "m", "provider": "mock"}])
}

#[test]
fn raises_the_soft_limit_and_derives_max_concurrency_in_the_banner() {
    let raised = Limited::start(256, 512, &demo_keys(), &[]);
    assert!(
        raised
            .banner
            .contains("open files: 512 (raised from 256 to the hard limit)"),
        "{}",
        raised.banner
    );
    // (512 - 64 reserved) / 2 descriptors per stream.
    assert!(
        raised.banner.contains("max concurrency: 224 (derived"),
        "{}",
        raised.banner
    );

    let at_hard = Limited::start(256, 256, &demo_keys(), &[]);
    assert!(at_hard.banner.contains("open files: 256 (the hard limit)"));
    assert!(at_hard.banner.contains("max concurrency: 96 (derived"));
    assert!(!at_hard.banner.contains("warning"));

    let too_many = Limited::start(256, 256, &demo_keys(), &["--max-concurrency", "1000"]);
    assert!(
        too_many
            .banner
            .contains("max concurrency: 1000 (--max-concurrency)"),
        "{}",
        too_many.banner
    );
    assert!(
        too_many
            .banner
            .contains("warning: --max-concurrency 1000 is more than the open-file limit of 256"),
        "{}",
        too_many.banner
    );
}

/// `n` streaming requests at once, each on its own connection; their statuses, and the
/// error bodies and `retry-after` of those refused.
async fn concurrent_streams(url: &str, n: usize) -> Vec<(u16, Option<String>, Value)> {
    let requests = (0..n).map(|_| async move {
        // One connection per request, closed after it: like n separate clients.
        let client = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let mut body = chat_body("m", "one two three four five six seven eight");
        body["stream"] = json!(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let resp = loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "keyrelay never answered"
            );
            match client
                .post(format!("{url}/v1/chat/completions"))
                .json(&body)
                .send()
                .await
            {
                Ok(resp) => break resp,
                // Refused or reset while keyrelay had no descriptor to accept with: a
                // client retries; what matters here is what keyrelay answers.
                Err(e) if e.is_connect() || e.is_request() => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e}"),
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        if status == 200 {
            let mut stream = resp.bytes_stream();
            let mut text = Vec::new();
            while let Some(chunk) = stream.next().await {
                text.extend_from_slice(&chunk.unwrap());
            }
            let text = String::from_utf8(text).unwrap();
            assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
            (status, retry_after, Value::Null)
        } else {
            (status, retry_after, resp.json().await.unwrap())
        }
    });
    futures_util::future::join_all(requests).await
}

async fn assert_no_key_or_host_blamed(proxy: &Limited) {
    let admin = proxy.admin("/admin/keys").await;
    for key in admin["keys"].as_array().unwrap() {
        assert_eq!(key["state"], "healthy", "{admin}");
        assert_eq!(key["consecutive_failures"], 0, "{admin}");
        assert_eq!(key["errors"], 0, "{admin}");
        assert_eq!(key["cooldowns"], 0, "{admin}");
    }
    for host in admin["upstreams"].as_array().unwrap() {
        assert_eq!(host["state"], "up", "{admin}");
        assert_eq!(host["connect_failures"], 0, "{admin}");
    }
}

async fn all_succeed_at_once(url: &str) {
    for (status, _, body) in concurrent_streams(url, 8).await {
        assert_eq!(status, 200, "{body}");
    }
}

fn two_key_pool(mock: &MockUpstream) -> Value {
    json!([openai_key(mock, "m", "k1"), openai_key(mock, "m", "k2")])
}

async fn slow_mock() -> MockUpstream {
    MockUpstream::start(MockOptions {
        chunk_delay: Duration::from_millis(60),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// More in flight than the descriptors carry (the gate set too high on purpose): the
/// upstream connect fails with EMFILE, and that is keyrelay's 503, not a key's failure.
#[tokio::test]
async fn running_out_of_descriptors_is_a_503_and_never_a_key_failure() {
    let mock = slow_mock().await;
    let proxy = Limited::start(
        128,
        128,
        &two_key_pool(&mock),
        &["--max-concurrency", "1000"],
    );
    let results = concurrent_streams(&proxy.url, 150).await;
    let mut ok = 0;
    let mut overloaded = 0;
    for (status, retry_after, body) in &results {
        match status {
            200 => ok += 1,
            503 => {
                assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
                let code = body["error"]["code"].as_str().unwrap();
                assert_eq!(code, "proxy_overloaded", "{body}");
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("open files"),
                    "{body}"
                );
                overloaded += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    eprintln!("{ok} served, {overloaded} refused");
    assert!(
        ok > 0 && overloaded > 0,
        "{ok} served, {overloaded} refused"
    );
    let metrics = proxy.metrics().await;
    let series = r#"keyrelay_local_exhaustion_total{resource="open_files"}"#;
    let counted = sample(&metrics, series).unwrap();
    assert!(
        counted >= overloaded as f64,
        "{counted}: {overloaded} refused"
    );
    assert!(
        !metrics.contains(r#"outcome="connect_error""#),
        "no attempt counted as the upstream's failure:\n{metrics}"
    );
    assert_no_key_or_host_blamed(&proxy).await;
    all_succeed_at_once(&proxy.url).await;
    assert_no_key_or_host_blamed(&proxy).await;
}

/// With the in-flight limit derived from the descriptors, the gate refuses what does not
/// fit before a connect can fail.
#[tokio::test]
async fn the_derived_limit_refuses_what_the_descriptors_cannot_carry() {
    let mock = slow_mock().await;
    let proxy = Limited::start(160, 160, &two_key_pool(&mock), &[]);
    assert!(proxy.banner.contains("max concurrency: 48 (derived"));
    let results = concurrent_streams(&proxy.url, 100).await;
    let refused: Vec<&Value> = results
        .iter()
        .filter(|(status, ..)| *status != 200)
        .map(|(status, retry_after, body)| {
            assert_eq!(*status, 503, "{body}");
            assert!(retry_after.is_some(), "{body}");
            body
        })
        .collect();
    assert!(!refused.is_empty() && refused.len() < 100);
    for body in refused {
        let code = body["error"]["code"].as_str().unwrap();
        assert!(code == "overloaded" || code == "proxy_overloaded", "{body}");
    }
    assert_no_key_or_host_blamed(&proxy).await;
    all_succeed_at_once(&proxy.url).await;
}

/// A burst of connects larger than the standard library's backlog of 128 is queued whole
/// while nothing accepts: each can be accepted at once, none waits a second or more for the
/// kernel to retry its handshake.
#[tokio::test]
async fn the_listener_queues_a_burst_of_connects() {
    // The kernel caps every backlog at net.core.somaxconn (4,096 since Linux 5.4, 128
    // before): below 600 there is nothing this test can tell apart.
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if somaxconn < 600 {
        eprintln!("skipped: net.core.somaxconn is {somaxconn}, below the burst of 600");
        return;
    }
    let listener =
        keyrelay::server::listener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let addr = listener.local_addr().unwrap();
    let connects = (0..600).map(|_| tokio::net::TcpStream::connect(addr));
    let clients = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::future::join_all(connects),
    )
    .await
    .expect("every connect completes");
    assert!(clients.iter().all(Result::is_ok));
    let mut accepted = 0;
    let quickly = tokio::time::sleep(Duration::from_millis(500));
    tokio::pin!(quickly);
    while accepted < 600 {
        tokio::select! {
            conn = listener.accept() => {
                conn.unwrap();
                accepted += 1;
            }
            () = &mut quickly => break,
        }
    }
    assert_eq!(accepted, 600, "connections queued for accept");
}
