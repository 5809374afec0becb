//! Process lifecycle through the real binary: graceful shutdown on SIGTERM, and the connect
//! timeout against an upstream that never accepts.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use serde_json::json;

/// Starts the keyrelay binary and returns it with the address from its banner.
fn spawn_keyrelay(keys: &serde_json::Value, args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyrelay"))
        .env("LLM_KEYS", keys.to_string())
        .env_remove("LLM_KEYS_FILE")
        .args(["--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split("listening on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    (child, url)
}

/// SIGTERM, then the time until keyrelay exited with status 0.
fn stop(child: &mut Child) -> Duration {
    let started = Instant::now();
    sigterm(child);
    let status = wait_for_exit(child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    started.elapsed()
}

fn wait_for_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "keyrelay did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn sigterm_lets_an_open_stream_finish_then_exits_zero() {
    let mock = MockUpstream::start(MockOptions {
        chunk_delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .unwrap();
    let (mut child, url) = spawn_keyrelay(&json!([openai_key(&mock, "m", "k1")]), &[]);

    let mut body = chat_body("m", "one two three four five six");
    body["stream"] = json!(true);
    let resp = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut text = String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap();

    sigterm(&child);
    while let Some(chunk) = stream.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    assert!(text.contains(r#""content":"six""#), "{text}");
    assert!(
        text.ends_with("data: [DONE]\n\n"),
        "the stream completed: {text}"
    );

    let status = wait_for_exit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    // And it no longer accepts connections.
    assert!(client().get(format!("{url}/health")).send().await.is_err());
}

#[tokio::test]
async fn shutdown_timeout_bounds_the_wait_for_open_streams() {
    let mock = MockUpstream::start(MockOptions {
        chunk_delay: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .unwrap();
    let (mut child, url) = spawn_keyrelay(
        &json!([openai_key(&mock, "m", "k1")]),
        &["--shutdown-timeout", "0.5"],
    );
    let mut body = chat_body("m", &"word ".repeat(100)); // 20 s of stream
    body["stream"] = json!(true);
    let resp = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    stream.next().await.unwrap().unwrap();
    let took = stop(&mut child);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn an_upstream_that_never_accepts_hits_the_connect_timeout() {
    // A listener with a zero backlog whose queue is already full: the kernel drops further
    // SYNs, so a connect neither succeeds nor fails until the client gives up.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let _fillers: Vec<_> = (0..4)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .collect();

    let keys = json!([{"api_key": "k", "model": "m", "provider": "openai", "base_url": format!("http://{addr}/v1")}]);
    let proxy = Proxy::start(&keys, &["--connect-timeout", "0.3"]).await;
    let started = Instant::now();
    let err = expect_error(proxy.chat(&chat_body("m", "hi")).await, 504).await;
    assert_eq!(err["error"]["code"], "upstream_connect_timeout", "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A connection that has not said anything yet does not hold up the exit: it is not a
/// request in flight.
#[tokio::test]
async fn sigterm_does_not_wait_for_a_connection_that_never_spoke() {
    let mock = MockUpstream::start(MockOptions::default()).await.unwrap();
    let (mut child, url) = spawn_keyrelay(&json!([openai_key(&mock, "m", "k1")]), &[]);
    let addr = url.trim_start_matches("http://");
    let _silent = std::net::TcpStream::connect(addr).unwrap();
    // Accepted and waiting for its first bytes.
    std::thread::sleep(Duration::from_millis(100));
    let took = stop(&mut child);
    assert!(took < Duration::from_secs(3), "{took:?}");
}
