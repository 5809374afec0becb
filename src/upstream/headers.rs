//! Which headers cross the proxy, in each direction.
//!
//! Client credentials never go upstream (keyrelay's own key replaces them), hop-by-hop
//! headers stay on their own connection (RFC 9110 §7.6.1), and compression is not negotiated
//! upstream, so streamed bodies stay readable to keyrelay.

use http::header::{self, HeaderMap, HeaderName};

/// Headers that describe one connection, not the message.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Header names listed in `Connection:` are hop-by-hop too.
fn listed_in_connection(headers: &HeaderMap, name: &HeaderName) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case(name.as_str()))
}

/// Client request headers that must not reach the upstream.
fn is_withheld_from_upstream(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        // The client's credentials, in every form SDKs send them.
        "authorization" | "x-api-key" | "api-key" | "x-goog-api-key" | "cookie"
        // Organisation headers belong to the client's account, not to the pool's keys.
        | "openai-organization" | "openai-project"
        // Set by the upstream client for the new connection and body.
        | "host" | "content-length" | "expect" | "accept-encoding"
        // Not the upstream's concern: which proxy the client came through.
        | "forwarded" | "x-forwarded-for" | "x-forwarded-host" | "x-forwarded-proto" | "x-real-ip"
    )
}

/// Copies the client's headers that may go upstream into `out`.
pub fn copy_request_headers(client: &HeaderMap, out: &mut HeaderMap) {
    // Most requests have no `Connection` header to list names in: then none is looked up.
    let has_connection = client.contains_key(header::CONNECTION);
    for (name, value) in client {
        let stays = is_hop_by_hop(name)
            || is_withheld_from_upstream(name)
            || (has_connection && listed_in_connection(client, name));
        if !stays {
            out.append(name, value.clone());
        }
    }
}

/// Strips the upstream response headers that must not reach the client, in place.
pub fn strip_response_headers(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderName> = headers
            .keys()
            .filter(|n| listed_in_connection(headers, n))
            .cloned()
            .collect();
        for name in listed {
            headers.remove(&name);
        }
    }
    // A look at each name, and a removal (a hash and a probe) only for those present: an
    // upstream answer carries one or two of the ten, so removing all ten by name cost more
    // than the rest of the header rules together.
    while let Some(name) = headers
        .keys()
        .find(|n| is_stripped_from_response(n))
        .cloned()
    {
        headers.remove(name);
    }
}

/// Upstream response headers that never reach the client.
fn is_stripped_from_response(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "transfer-encoding" | "te" | "trailer" | "upgrade"
            | "proxy-authenticate" | "keep-alive"
            // Provider cookies (load-balancer affinity) are meant for the proxy's
            // connection, not to be shared with every client.
            | "set-cookie"
            // The listener sets its own.
            | "date" | "server"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn request_filter_drops_credentials_and_hop_by_hop() {
        let mut client = HeaderMap::new();
        for (n, v) in [
            ("authorization", "Bearer client-token"),
            ("x-api-key", "client-token"),
            ("connection", "keep-alive, x-custom-hop"),
            ("x-custom-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("host", "proxy.local"),
            ("accept-encoding", "gzip"),
            ("user-agent", "OpenAI/Python 1.0"),
            ("x-stainless-lang", "python"),
            ("content-type", "application/json"),
        ] {
            client.append(n, HeaderValue::from_static(v));
        }
        let mut out = HeaderMap::new();
        copy_request_headers(&client, &mut out);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["user-agent", "x-stainless-lang", "content-type"]);
    }

    #[test]
    fn response_filter_keeps_rate_limit_headers() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("content-type", "text/event-stream"),
            ("x-ratelimit-remaining-requests", "99"),
            ("retry-after", "3"),
            ("transfer-encoding", "chunked"),
            ("connection", "close"),
            ("set-cookie", "__cf_bm=x"),
            ("date", "Thu, 03 Dec 2026 21:12:21 GMT"),
            ("x-request-id", "req_1"),
            ("server", "cloudflare"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("upgrade", "h2c"),
            ("proxy-authenticate", "Basic"),
            ("set-cookie", "_cfuvid=y"),
        ] {
            h.append(n, HeaderValue::from_static(v));
        }
        strip_response_headers(&mut h);
        let names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "x-ratelimit-remaining-requests",
                "retry-after",
                "x-request-id"
            ]
        );
    }
}
