//! `x-request-id`: taken from the client when it is short and made of safe characters,
//! generated otherwise; returned on every response, sent upstream and logged.

use std::hash::{BuildHasher, RandomState};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue};

pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of a request with these headers: the client's when acceptable, a new one
/// otherwise.
pub fn of(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&HEADER)
        .filter(|v| acceptable(v))
        // Copied, not shared: the client's value is a slice of the connection's read buffer,
        // and the id lives as long as the response (trace, log line), so sharing it would
        // pin that buffer for the whole stream and make hyper allocate another one.
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        .unwrap_or_else(generate)
}

/// Unique per process (random prefix) and per request (counter); no syscall per request.
/// `kr-` and 12 hex digits of the prefix, a dash, and the counter in at least 8 hex digits.
fn generate() -> HeaderValue {
    static PREFIX: LazyLock<String> = LazyLock::new(|| {
        let random = RandomState::new().hash_one(std::process::id());
        format!("kr-{:012x}-", random & 0xffff_ffff_ffff)
    });
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 64];
    id[..PREFIX.len()].copy_from_slice(PREFIX.as_bytes());
    let digits = (16 - n.leading_zeros() as usize / 4).max(8);
    let end = PREFIX.len() + digits;
    for (i, byte) in id[PREFIX.len()..end].iter_mut().rev().enumerate() {
        *byte = b"0123456789abcdef"[(n >> (4 * i) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id[..end]).unwrap_or_else(|_| HeaderValue::from_static("kr-0"))
}

/// A client-supplied id is kept only if it cannot smuggle anything into logs or headers.
fn acceptable(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    (1..=128).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_acceptable() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(acceptable(&a), "{a:?}");
        let text = a.to_str().unwrap();
        let counter = text.rsplit('-').next().unwrap();
        assert_eq!((text.len(), counter.len()), (3 + 12 + 1 + 8, 8), "{text}");
        assert!(u64::from_str_radix(counter, 16).is_ok(), "{text}");
    }

    #[test]
    fn acceptable_client_ids_are_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(&HEADER, HeaderValue::from_static("client-7"));
        assert_eq!(of(&headers), "client-7");
        headers.insert(&HEADER, HeaderValue::from_static("no spaces please"));
        assert!(of(&headers).to_str().unwrap().starts_with("kr-"));
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
