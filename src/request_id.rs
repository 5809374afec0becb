//! `x-request-id`: taken from the client when it is short and made of safe characters,
//! generated otherwise; returned on every response, sent upstream and logged.

use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue};

pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("-")
    }
}

/// Unique per process (random prefix) and per request (counter); no syscall per request.
fn generate() -> HeaderValue {
    static PREFIX: LazyLock<u64> =
        LazyLock::new(|| RandomState::new().hash_one(std::process::id()));
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = format!("kr-{:012x}-{n:08x}", *PREFIX & 0xffff_ffff_ffff);
    HeaderValue::try_from(id).unwrap_or_else(|_| HeaderValue::from_static("kr-0"))
}

/// A client-supplied id is kept only if it cannot smuggle anything into logs or headers.
fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=128).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
}

pub async fn middleware(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&HEADER)
        .filter(|v| acceptable(v))
        .cloned()
        .unwrap_or_else(generate);
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(req).await;
    response.headers_mut().insert(HEADER.clone(), id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_acceptable() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(acceptable(&a), "{a:?}");
    }

    #[test]
    fn unsafe_client_ids_are_replaced() {
        assert!(acceptable(&HeaderValue::from_static("req_abc-123.4:5")));
        assert!(!acceptable(&HeaderValue::from_static("has space")));
        assert!(!acceptable(&HeaderValue::from_static("new\\line")));
        assert!(!acceptable(
            &HeaderValue::try_from("x".repeat(129)).expect("ascii")
        ));
    }
}
