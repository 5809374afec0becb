//! The whole fault matrix with logging at trace level: good keys, refused keys, rate limits,
//! failing upstreams, bad input, upstream errors that echo the key, streams, translation.
//! No upstream key and no client token may appear in anything keyrelay printed or answered.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

const GOOD: &str = "sk-good-key-LEAKCHECK-000000000001";
const REFUSED: &str = "sk-refused-key-LEAKCHECK-0000000002";
const LIMITED: &str = "sk-limited-key-LEAKCHECK-0000000003";
const FAILING: &str = "sk-failing-key-LEAKCHECK-0000000004";
const ECHOED: &str = "sk-echoed-key-LEAKCHECK-00000000005";
const ANTHROPIC: &str = "sk-ant-key-LEAKCHECK-000000000006";
const CLIENT: &str = "client-token-LEAKCHECK-7";
const ADMIN: &str = "admin-token-LEAKCHECK-8";
const SECRETS: [&str; 8] = [
    GOOD, REFUSED, LIMITED, FAILING, ECHOED, ANTHROPIC, CLIENT, ADMIN,
];

#[tokio::test]
async fn no_secret_appears_in_logs_or_responses_at_trace_level() {
    let mock = recording_mock().await;
    mock.script(
        REFUSED,
        [Behavior::Fail {
            status: 401,
            headers: vec![],
        }],
    );
    mock.script(
        LIMITED,
        [Behavior::Fail {
            status: 429,
            headers: vec![("retry-after".into(), "1".into())],
        }],
    );
    mock.script(
        FAILING,
        (0..5).map(|_| Behavior::Fail {
            status: 500,
            headers: vec![],
        }),
    );
    let echo = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {ECHOED}","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
    );
    mock.script(
        ECHOED,
        [Behavior::Respond {
            status: 401,
            headers: vec![],
            body: echo.into(),
        }],
    );
    let root = mock.base_url().trim_end_matches("/v1").to_owned();
    let keys = json!([
        {"api_key": GOOD, "model": "m", "provider": "openai", "base_url": mock.base_url()},
        {"api_key": REFUSED, "model": "m", "provider": "openai", "base_url": mock.base_url()},
        {"api_key": LIMITED, "model": "m", "provider": "openai", "base_url": mock.base_url()},
        {"api_key": FAILING, "model": "f", "provider": "openai", "base_url": mock.base_url()},
        {"api_key": ECHOED, "model": "e", "provider": "openai", "base_url": mock.base_url()},
        {"api_key": ANTHROPIC, "model": "c", "provider": "anthropic", "base_url": root},
        {"api_key": "sk-unreachable-LEAKCHECK-9", "model": "u", "provider": "openai", "base_url": "http://127.0.0.1:9/v1"},
    ]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyrelay"))
        .env("LLM_KEYS", keys.to_string())
        .env("KEYRELAY_TOKENS", CLIENT)
        .env("KEYRELAY_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "trace")
        .env_remove("LLM_KEYS_FILE")
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    stdout.read_line(&mut banner).unwrap();
    let url = banner
        .split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let stderr = child.stderr.take().unwrap();
    let log_reader = std::thread::spawn(move || {
        let mut logs = String::new();
        BufReader::new(stderr).read_to_string(&mut logs).unwrap();
        logs
    });

    let http = client();
    let mut answers = String::new();
    let chat = |model: &str, stream: bool, token: &str| {
        let mut body = chat_body(model, "hello");
        body["stream"] = json!(stream);
        http.post(format!("{url}/v1/chat/completions"))
            .bearer_auth(token)
            .json(&body)
    };
    let requests = vec![
        chat("m", false, CLIENT), chat("m", false, CLIENT), chat("m", true, CLIENT), chat("m", false, CLIENT),
        chat("f", false, CLIENT), chat("f", true, CLIENT), chat("e", false, CLIENT), chat("c", false, CLIENT),
        chat("c", true, CLIENT), chat("u", false, CLIENT), chat("unknown", false, CLIENT),
        chat("m", false, "wrong-token"), chat("m", false, &CLIENT[..10]),
        http.post(format!("{url}/v1/chat/completions")).bearer_auth(CLIENT).body("{not json"),
        http.post(format!("{url}/v1/messages")).header("x-api-key", CLIENT).header("anthropic-version", "2023-06-01")
            .json(&json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})),
        http.post(format!("{url}/v1/messages")).header("x-api-key", CLIENT)
            .json(&json!({"model": "m", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]})),
        http.get(format!("{url}/admin/keys")).bearer_auth(ADMIN),
        http.get(format!("{url}/admin/keys")).bearer_auth(CLIENT),
        http.get(format!("{url}/v1/models")).bearer_auth(CLIENT),
    ];
    for request in requests {
        let resp = request.send().await.unwrap();
        answers.push_str(&format!("{:?}\n", resp.headers()));
        answers.push_str(&resp.text().await.unwrap());
        answers.push('\n');
    }

    sigterm(&child);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    let logs = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || log_reader.join().unwrap()),
    )
    .await
    .unwrap()
    .unwrap();
    let mut banner_rest = String::new();
    stdout.read_to_string(&mut banner_rest).unwrap();

    // The test must have exercised what it claims to: trace logging on, every path taken.
    assert!(logs.contains("TRACE"), "trace logging was not on");
    for expected in [
        "auth_rejected",
        "rate_limited",
        "server_error",
        "connect_error",
        "key disabled",
    ] {
        assert!(
            logs.contains(expected),
            "the matrix never produced {expected:?}"
        );
    }
    assert!(
        answers.contains("[redacted]"),
        "the echoing upstream was exercised"
    );
    for secret in SECRETS {
        for (what, text) in [
            ("logs", &logs),
            ("responses", &answers),
            ("stdout", &(banner.clone() + &banner_rest)),
        ] {
            assert!(!text.contains(secret), "{secret} leaked into {what}");
        }
    }
}
