//! keyrelay's own pool of upstream connections: kept alive and reused, not reused once the
//! upstream has closed them, and never shared by two requests at once.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ANSWER: &str = r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;

/// How the bare upstream treats a connection after its first answer.
#[derive(Clone, Copy, PartialEq)]
enum After {
    KeepAlive,
    /// Close it 20 ms later, without a header saying so (an upstream's idle timeout).
    Close,
    /// Read the next request, then close without answering (an idle timeout that fired as
    /// the request arrived).
    DropNext,
}

/// A bare HTTP/1.1 upstream that answers requests with `ANSWER` and counts the connections
/// it accepts.
async fn upstream(after: After) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, after));
        }
    });
    (url, accepted)
}

async fn serve(mut stream: TcpStream, after: After) {
    let mut buf = Vec::new();
    for served in 0.. {
        // Read one request: the head, then `content-length` bytes of body.
        let (head_end, length) = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                break (end + 4, length);
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        while buf.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..head_end + length);
        if served > 0 && after == After::DropNext {
            return;
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{ANSWER}",
            ANSWER.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
        if after == After::Close {
            tokio::time::sleep(Duration::from_millis(20)).await;
            return;
        }
    }
}

fn key(url: &str) -> serde_json::Value {
    json!([{"api_key": "k1", "model": "m", "provider": "openai", "base_url": url}])
}

#[tokio::test]
async fn sequential_requests_share_one_kept_alive_connection() {
    let (url, accepted) = upstream(After::KeepAlive).await;
    let proxy = Proxy::start(&key(&url), &[]).await;
    for _ in 0..20 {
        let resp = proxy.chat(&chat_body("m", "hi")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), ANSWER);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_not_reused() {
    let (url, accepted) = upstream(After::Close).await;
    let proxy = Proxy::start(&key(&url), &[]).await;
    for _ in 0..5 {
        let resp = proxy.chat(&chat_body("m", "hi")).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
        // The upstream closes the idle connection before the next request checks the pool.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn concurrent_requests_each_get_their_own_connection() {
    let (url, accepted) = upstream(After::KeepAlive).await;
    let proxy = Proxy::start(&key(&url), &[]).await;
    let proxy = Arc::new(proxy);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let proxy = proxy.clone();
        tasks.push(tokio::spawn(async move {
            let mut bodies = Vec::new();
            for _ in 0..10 {
                let resp = proxy.chat(&chat_body("m", "hi")).await;
                assert_eq!(resp.status(), 200);
                bodies.push(resp.text().await.unwrap());
            }
            bodies
        }));
    }
    for task in tasks {
        for body in task.await.unwrap() {
            assert_eq!(body, ANSWER);
        }
    }
    // Never more connections than requests in flight, and they were reused.
    let n = accepted.load(Ordering::SeqCst);
    assert!(
        (1..=8).contains(&n),
        "{n} connections for 8 concurrent clients"
    );
}

#[tokio::test]
async fn a_request_that_crosses_the_upstreams_close_goes_again_on_a_new_connection() {
    let (url, accepted) = upstream(After::DropNext).await;
    let proxy = Proxy::start(&key(&url), &[]).await;
    for _ in 0..5 {
        let resp = proxy.chat(&chat_body("m", "hi")).await;
        assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    }
    // The first connection, then one more for every request its predecessor dropped.
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}
