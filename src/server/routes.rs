//! The route table: a request's method and path to the endpoint that serves it.
//!
//! Written out by hand rather than built with axum's `Router`: there are ten fixed paths and
//! one with a label in it, and the router's layers (a boxed, cloned service and a boxed
//! future per layer, per request) were a seventh of keyrelay's own instructions per proxied
//! request. What the router did beyond matching is kept: `HEAD` is served wherever `GET`
//! is, a path with no endpoint is 404, and a known path with the wrong method is 405 with
//! an `Allow` header.

use http::Method;

use crate::error::ErrorFormat;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Behind the gate (client token, in-flight limit).
    Api(ApiRoute),
    Health,
    AdminKeys,
    /// `POST /admin/keys/{label}/reset`, with the label percent-decoded.
    AdminReset(String),
    Metrics,
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiRoute {
    ChatCompletions,
    Messages,
    CountTokens,
    Models,
}

impl ApiRoute {
    /// The envelope its errors, the gate's refusals included, come in.
    pub fn error_format(self) -> ErrorFormat {
        match self {
            ApiRoute::ChatCompletions | ApiRoute::Models => ErrorFormat::OpenAi,
            ApiRoute::Messages | ApiRoute::CountTokens => ErrorFormat::Anthropic,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Routing {
    Found(Route),
    NotFound,
    /// The path is known; `allow` lists the methods it takes.
    MethodNotAllowed {
        allow: &'static str,
    },
}

const GET: &str = "GET,HEAD";
const POST: &str = "POST";

pub fn route(method: &Method, path: &str) -> Routing {
    let (route, allow) = match path {
        "/v1/chat/completions" | "/chat/completions" => {
            (Route::Api(ApiRoute::ChatCompletions), POST)
        }
        "/v1/messages" => (Route::Api(ApiRoute::Messages), POST),
        "/v1/messages/count_tokens" => (Route::Api(ApiRoute::CountTokens), POST),
        "/v1/models" | "/models" => (Route::Api(ApiRoute::Models), GET),
        "/health" => (Route::Health, GET),
        "/admin/keys" => (Route::AdminKeys, GET),
        "/metrics" => (Route::Metrics, GET),
        "/status" => (Route::Status, GET),
        other => match reset_label(other) {
            Some(label) => (Route::AdminReset(label), POST),
            None => return Routing::NotFound,
        },
    };
    let allowed = match allow {
        GET => *method == Method::GET || *method == Method::HEAD,
        _ => *method == Method::POST,
    };
    if allowed {
        Routing::Found(route)
    } else {
        Routing::MethodNotAllowed { allow }
    }
}

/// The label of `/admin/keys/{label}/reset`: one non-empty path segment, percent-decoded
/// (labels may hold characters such as `…` that travel encoded).
fn reset_label(path: &str) -> Option<String> {
    let segment = path.strip_prefix("/admin/keys/")?.strip_suffix("/reset")?;
    if segment.is_empty() || segment.contains('/') {
        return None;
    }
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|label| label.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_and_method() {
        let found = |m: Method, p: &str| route(&m, p);
        assert_eq!(
            found(Method::POST, "/v1/chat/completions"),
            Routing::Found(Route::Api(ApiRoute::ChatCompletions))
        );
        assert_eq!(
            found(Method::POST, "/chat/completions"),
            Routing::Found(Route::Api(ApiRoute::ChatCompletions))
        );
        assert_eq!(
            found(Method::POST, "/v1/messages"),
            Routing::Found(Route::Api(ApiRoute::Messages))
        );
        assert_eq!(
            found(Method::POST, "/v1/messages/count_tokens"),
            Routing::Found(Route::Api(ApiRoute::CountTokens))
        );
        for path in ["/v1/models", "/models"] {
            assert_eq!(
                found(Method::GET, path),
                Routing::Found(Route::Api(ApiRoute::Models))
            );
            assert_eq!(
                found(Method::HEAD, path),
                Routing::Found(Route::Api(ApiRoute::Models))
            );
        }
        assert_eq!(found(Method::GET, "/health"), Routing::Found(Route::Health));
        assert_eq!(
            found(Method::GET, "/admin/keys"),
            Routing::Found(Route::AdminKeys)
        );
        assert_eq!(
            found(Method::GET, "/metrics"),
            Routing::Found(Route::Metrics)
        );
        assert_eq!(found(Method::GET, "/status"), Routing::Found(Route::Status));
    }

    #[test]
    fn wrong_methods_name_the_right_ones() {
        assert_eq!(
            route(&Method::GET, "/v1/chat/completions"),
            Routing::MethodNotAllowed { allow: "POST" }
        );
        assert_eq!(
            route(&Method::POST, "/health"),
            Routing::MethodNotAllowed { allow: "GET,HEAD" }
        );
        assert_eq!(
            route(&Method::GET, "/admin/keys/k1/reset"),
            Routing::MethodNotAllowed { allow: "POST" }
        );
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/",
            "/v1/chat/completions/",
            "/v1/chat",
            "/admin/keys/",
            "/admin/keys//reset",
            "/admin/keys/a/b/reset",
            "/admin/keys/%FF/reset",
            "/V1/models",
        ] {
            assert_eq!(route(&Method::POST, path), Routing::NotFound, "{path}");
        }
    }

    #[test]
    fn reset_labels_are_decoded() {
        assert_eq!(
            route(&Method::POST, "/admin/keys/openai%E2%80%A6Y_1/reset"),
            Routing::Found(Route::AdminReset("openai…Y_1".into()))
        );
        assert_eq!(
            route(&Method::POST, "/admin/keys/k%201/reset"),
            Routing::Found(Route::AdminReset("k 1".into()))
        );
    }
}
