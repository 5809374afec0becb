//! A mock upstream server speaking the OpenAI wire format over HTTP (or HTTPS), with
//! behaviour chosen per key, for the integration tests, the SDK tests and the benchmarks.
//!
//! Behaviour comes from a per-key script set by tests (`script`), or, for use from the
//! command line, from the key itself: a key containing `status-429` answers 429, one
//! containing `delay-250` waits 250 ms before answering.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::anthropic;
use super::openai::{self, MockBody, MockResponse};
use crate::server::listener;

/// What the mock does for one request made with a given key.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// Answer with this status, an OpenAI error envelope and these extra headers.
    Fail {
        status: u16,
        headers: Vec<(String, String)>,
    },
    /// Answer with exactly this status, these headers and this JSON body.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// Answer 200 with exactly these SSE frames; with `truncate`, the connection then breaks
    /// instead of ending cleanly.
    Stream { frames: Vec<Bytes>, truncate: bool },
    /// Wait this long before sending the response head.
    DelayHeaders(Duration),
    /// Stream: send the first frame, then wait for the gate before sending the rest.
    HoldAfterFirstChunk(Arc<Notify>),
}

#[derive(Clone, Debug, Default)]
pub struct MockOptions {
    /// Pause between stream frames.
    pub chunk_delay: Duration,
    /// Keep every request (headers and body) for inspection by tests.
    pub record: bool,
    /// When set, any other key is answered with OpenAI's 401 `invalid_api_key`.
    pub valid_keys: Option<Vec<String>>,
}

/// A request as the mock received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub key: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
struct Shared {
    opts: MockOptions,
    /// Response bodies being sent right now; a body the client abandoned is dropped, and
    /// with it this count, as soon as the server notices.
    open_bodies: Arc<AtomicU64>,
    hits: Mutex<HashMap<String, u64>>,
    scripts: Mutex<HashMap<String, VecDeque<Behavior>>>,
    requests: Mutex<Vec<Recorded>>,
}

/// A running mock upstream; it stops when dropped.
pub struct MockUpstream {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl MockUpstream {
    /// Starts on an ephemeral loopback port.
    pub async fn start(opts: MockOptions) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Ok(Self::serve(listener, opts, None))
    }

    /// Serves on `listener`, over TLS when `tls` is given.
    pub fn serve(
        listener: TcpListener,
        opts: MockOptions,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> MockUpstream {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        let shared = Arc::new(Shared {
            opts,
            ..Default::default()
        });
        let is_tls = tls.is_some();
        let app = router(shared.clone());
        let opts = listener::ListenOptions {
            tls,
            ..Default::default()
        };
        let app = hyper_util::service::TowerToHyperService::new(app);
        let task = tokio::spawn(listener::serve(listener, app, opts, std::future::pending()));
        MockUpstream {
            addr,
            tls: is_tls,
            shared,
            task,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL an OpenAI SDK (or an `LLM_KEYS` entry) would use: `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/v1", self.addr)
    }

    /// Queues behaviours for the next requests made with `key`, one per request.
    pub fn script(&self, key: &str, behaviors: impl IntoIterator<Item = Behavior>) {
        lock(&self.shared.scripts)
            .entry(key.to_owned())
            .or_default()
            .extend(behaviors);
    }

    /// Requests received per key (an empty string for requests without one).
    pub fn hits(&self) -> HashMap<String, u64> {
        lock(&self.shared.hits).clone()
    }

    /// Response bodies still being sent.
    pub fn open_bodies(&self) -> u64 {
        self.shared.open_bodies.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/models", get(models))
        // For tests in other languages, which cannot call `MockUpstream::hits`.
        .route("/_mock/hits", get(hits))
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

async fn hits(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(lock(&shared.hits).clone()).into_response()
}

async fn models() -> Response {
    axum::Json(json!({"object": "list", "data": [
        {"id": "mock-model", "object": "model", "created": 0, "owned_by": "keyrelay-mock"}
    ]}))
    .into_response()
}

/// Which provider's API a route imitates: where the key is read from, and the error shape.
#[derive(Clone, Copy, PartialEq)]
enum Api {
    OpenAi,
    Anthropic,
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&shared, Api::OpenAi, &uri, &headers, body, |_, b| {
        openai::chat_completions(b)
    })
    .await
}

async fn messages(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        &shared,
        Api::Anthropic,
        &uri,
        &headers,
        body,
        anthropic::messages,
    )
    .await
}

async fn count_tokens(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(
        &shared,
        Api::Anthropic,
        &uri,
        &headers,
        body,
        anthropic::count_tokens,
    )
    .await
}

/// Counts and records the request, checks the key, applies the key's behaviour, and
/// otherwise answers with `answer(has_anthropic_version, body)`.
async fn serve(
    shared: &Shared,
    api: Api,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    answer: fn(bool, &[u8]) -> MockResponse,
) -> Response {
    let key = match api {
        Api::OpenAi => headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ")),
        Api::Anthropic => headers.get("x-api-key").and_then(|v| v.to_str().ok()),
    }
    .map(str::to_owned);
    *lock(&shared.hits)
        .entry(key.clone().unwrap_or_default())
        .or_default() += 1;
    if shared.opts.record {
        lock(&shared.requests).push(Recorded {
            path: uri.path().to_owned(),
            key: key.clone(),
            headers: headers.clone(),
            body: body.clone(),
        });
    }

    let Some(key) = key else {
        return to_response(missing_key(api), None, Duration::ZERO);
    };
    if let Some(valid) = &shared.opts.valid_keys
        && !valid.contains(&key)
    {
        return to_response(wrong_key(api, &key), None, Duration::ZERO);
    }

    let scripted = lock(&shared.scripts)
        .get_mut(&key)
        .and_then(VecDeque::pop_front);
    let mut gate = None;
    match scripted.or_else(|| behavior_from_key(&key)) {
        Some(Behavior::Fail { status, headers }) => return fail(api, status, &headers),
        Some(Behavior::Respond {
            status,
            headers,
            body,
        }) => return respond(status, &headers, body),
        Some(Behavior::Stream { frames, truncate }) => return raw_stream(frames, truncate),
        Some(Behavior::DelayHeaders(d)) => tokio::time::sleep(d).await,
        Some(Behavior::HoldAfterFirstChunk(g)) => gate = Some(g),
        None => {}
    }
    let resp = answer(headers.contains_key("anthropic-version"), &body);
    let mut out = to_response(resp, gate, shared.opts.chunk_delay);
    provider_headers(api, &mut out);
    counted(out, &shared.open_bodies)
}

/// Wraps a response body so `open_bodies` tracks it until it is dropped.
fn counted(resp: Response, open: &Arc<AtomicU64>) -> Response {
    struct Counted {
        inner: Body,
        open: Arc<AtomicU64>,
    }
    impl http_body::Body for Counted {
        type Data = Bytes;
        type Error = axum::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
            std::pin::Pin::new(&mut self.inner).poll_frame(cx)
        }
        fn is_end_stream(&self) -> bool {
            self.inner.is_end_stream()
        }
        fn size_hint(&self) -> http_body::SizeHint {
            self.inner.size_hint()
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            self.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
    open.fetch_add(1, Ordering::SeqCst);
    let (parts, inner) = resp.into_parts();
    Response::from_parts(
        parts,
        Body::new(Counted {
            inner,
            open: open.clone(),
        }),
    )
}

fn missing_key(api: Api) -> MockResponse {
    match api {
        Api::OpenAi => MockResponse::error(
            StatusCode::UNAUTHORIZED,
            "You didn't provide an API key. You need to provide your API key in an Authorization header \
             using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            "invalid_request_error",
            None,
            None,
        ),
        Api::Anthropic => MockResponse::anthropic_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "x-api-key header is required",
        ),
    }
}

fn wrong_key(api: Api, key: &str) -> MockResponse {
    match api {
        // OpenAI echoes a masked form of the rejected key; so does the mock.
        Api::OpenAi => {
            let shown: String = key.chars().take(3).chain("****".chars()).collect();
            MockResponse::error(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys."
                ),
                "invalid_request_error",
                None,
                Some("invalid_api_key"),
            )
        }
        Api::Anthropic => MockResponse::anthropic_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        ),
    }
}

/// `…status-429…` and `…delay-250…` in a key choose a behaviour without any scripting.
fn behavior_from_key(key: &str) -> Option<Behavior> {
    let number_after = |tag: &str| {
        let rest = &key[key.find(tag)? + tag.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u64>().ok()
    };
    if let Some(status) = number_after("status-").and_then(|s| u16::try_from(s).ok()) {
        return Some(Behavior::Fail {
            status,
            headers: Vec::new(),
        });
    }
    number_after("delay-").map(|ms| Behavior::DelayHeaders(Duration::from_millis(ms)))
}

fn fail(api: Api, status: u16, headers: &[(String, String)]) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = format!("Mock upstream failure with status {}.", status.as_u16());
    let resp = match api {
        Api::OpenAi => {
            let (kind, code) = match status.as_u16() {
                429 => ("requests", Some("rate_limit_exceeded")),
                401 => ("invalid_request_error", Some("invalid_api_key")),
                400..=499 => ("invalid_request_error", None),
                _ => ("server_error", None),
            };
            MockResponse::error(status, &message, kind, None, code)
        }
        Api::Anthropic => {
            let kind = match status.as_u16() {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                400..=499 => "invalid_request_error",
                _ => "api_error",
            };
            MockResponse::anthropic_error(status, kind, &message)
        }
    };
    let mut out = to_response(resp, None, Duration::ZERO);
    provider_headers(api, &mut out);
    with_headers(out, headers)
}

fn respond(status: u16, headers: &[(String, String)], body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    with_headers(resp, headers)
}

fn raw_stream(frames: Vec<Bytes>, truncate: bool) -> Response {
    use futures_util::StreamExt;
    let frames = futures_util::stream::iter(frames.into_iter().map(Ok));
    // The break comes after one scheduler turn, so the server has flushed the head and the
    // frames: the client sees a stream that started and then broke, not a failed response.
    let broken = futures_util::stream::once(async move {
        tokio::task::yield_now().await;
        Err(std::io::Error::other(
            "mock upstream dropped the connection",
        ))
    })
    .filter(move |_| std::future::ready(truncate));
    let mut resp = Response::new(Body::from_stream(frames.chain(broken)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp
}

fn with_headers(mut resp: Response, headers: &[(String, String)]) -> Response {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
    resp
}

fn to_response(resp: MockResponse, gate: Option<Arc<Notify>>, delay: Duration) -> Response {
    match resp.body {
        MockBody::Sse(frames) if gate.is_some() || !delay.is_zero() => {
            let stream = futures_util::stream::unfold(
                (frames.into_iter(), 0usize),
                move |(mut frames, sent)| {
                    let gate = gate.clone();
                    async move {
                        let frame = frames.next()?;
                        if sent == 1
                            && let Some(g) = gate
                        {
                            g.notified().await;
                        }
                        if sent > 0 && !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        Some((Ok::<Bytes, Infallible>(frame), (frames, sent + 1)))
                    }
                },
            );
            let mut r = Response::new(Body::from_stream(stream));
            *r.status_mut() = resp.status;
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            r
        }
        _ => super::into_response(resp),
    }
}

/// The headers each real API sends on every response.
fn provider_headers(api: Api, resp: &mut Response) {
    let pairs: &[(&str, &str)] = match api {
        Api::OpenAi => &[
            ("x-request-id", "req_mock"),
            ("openai-processing-ms", "1"),
            ("x-ratelimit-limit-requests", "5000"),
            ("x-ratelimit-remaining-requests", "4999"),
            ("x-ratelimit-reset-requests", "12ms"),
        ],
        Api::Anthropic => &[
            ("request-id", "req_mock"),
            ("anthropic-ratelimit-requests-limit", "1000"),
            ("anthropic-ratelimit-requests-remaining", "999"),
            ("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:00Z"),
        ],
    };
    for (name, value) in pairs {
        resp.headers_mut()
            .insert(*name, HeaderValue::from_static(value));
    }
}
