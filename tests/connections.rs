//! How the listener takes a plain connection: the protocol is read from its first bytes
//! (HTTP/2 with prior knowledge, HTTP/1, or, when they cannot tell, hyper-util's sniffing),
//! and a connection that sends nothing is closed after the header-read timeout.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn proxy(mock: &MockUpstream) -> Proxy {
    Proxy::start(
        &json!([openai_key(mock, "m", "k1")]),
        &["--header-read-timeout", "0.3"],
    )
    .await
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let mock = recording_mock().await;
    let proxy = proxy(&mock).await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(proxy.url("/v1/chat/completions"))
        .json(&chat_body("m", "over h2c"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "You said: over h2c");
}

/// A head whose first byte arrives alone (`P`, which could start `POST` or HTTP/2's `PRI`)
/// is still served: the first bytes could not tell, so hyper-util reads the version.
#[tokio::test]
async fn a_head_cut_after_its_first_byte_is_served() {
    let mock = recording_mock().await;
    let proxy = proxy(&mock).await;
    let body = chat_body("m", "slowly").to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut conn = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    conn.set_nodelay(true).unwrap();
    conn.write_all(&head.as_bytes()[..1]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.write_all(&head.as_bytes()[1..]).await.unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.contains("You said: slowly"), "{answer}");
}

#[tokio::test]
async fn a_connection_that_never_speaks_is_closed_after_the_header_read_timeout() {
    let mock = recording_mock().await;
    let proxy = proxy(&mock).await;
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0))), "closed without a word: {read:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
}
