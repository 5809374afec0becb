//! The HTTP front: routes, shared state, and the handlers (one module per endpoint).

mod admin;
mod body;
mod chat;
mod guard;
pub mod listener;
mod messages;
mod metrics_endpoint;
mod models;
mod status;
mod tls;
pub mod trace;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::auth::ClientAuth;
use crate::config::{Config, FailoverOptions};
use crate::error::{ApiError, ErrorFormat, truncate_for_message};
use crate::metrics::Metrics;
use crate::pool::KeyPool;
use crate::secret::Secret;
use crate::upstream::failover::Failover;
use crate::upstream::{BodyContext, UpstreamClient};

/// Everything a request needs, built once at startup and shared; key health is atomics.
pub struct AppState {
    pub keys: KeyPool,
    pub client: UpstreamClient,
    pub failover: FailoverOptions,
    pub body_ctx: BodyContext,
    pub max_body_bytes: usize,
    pub admin_token: Option<Secret>,
    pub auth: ClientAuth,
    pub metrics: Metrics,
    pub metrics_token: Option<Secret>,
    pub in_flight: guard::InFlight,
    /// The `/v1/models` answer, rendered once.
    models_body: bytes::Bytes,
}

impl AppState {
    pub fn new(config: &Config) -> anyhow::Result<AppState> {
        let keys = KeyPool::new(config.keys.clone(), config.health.clone());
        let models_body = models::render(&keys);
        Ok(AppState {
            client: UpstreamClient::new(&config.upstream)?,
            keys,
            failover: config.failover.clone(),
            body_ctx: BodyContext {
                idle_timeout: config.failover.idle_timeout,
                stats: Arc::default(),
            },
            max_body_bytes: config.max_body_bytes,
            admin_token: config.admin_token.clone(),
            auth: ClientAuth::new(config.client_tokens.clone()),
            metrics: Metrics::default(),
            metrics_token: config.metrics_token.clone(),
            in_flight: guard::InFlight::new(config.max_concurrency),
            models_body,
        })
    }
}

impl AppState {
    pub fn failover(&self) -> Failover<'_> {
        Failover {
            client: &self.client,
            keys: &self.keys,
            opts: &self.failover,
            metrics: &self.metrics,
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    // The API endpoints sit behind the client-token and concurrency guard; /health and
    // /admin (which has its own token) do not.
    let api = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/chat/completions", post(chat::chat_completions))
        .route("/v1/messages", post(messages::messages))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/v1/models", get(models::list))
        .route("/models", get(models::list))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::api_guard,
        ));
    Router::new()
        .merge(api)
        .route("/health", get(health))
        .route("/admin/keys", get(admin::keys))
        .route("/admin/keys/{label}/reset", post(admin::reset))
        .route("/metrics", get(metrics_endpoint::render))
        .route("/status", get(status::page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(crate::request_id::middleware))
        .with_state(state)
}

/// Runs the proxy on `listener` until `shutdown` completes.
pub async fn run(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let state = Arc::new(AppState::new(config)?);
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls::acceptor(cert, key)?),
        None => None,
    };
    let opts = listener::ListenOptions {
        tls,
        header_read_timeout: config.header_read_timeout,
        grace: config.shutdown_timeout,
    };
    listener::serve(listener, router(state), opts, shutdown).await;
    Ok(())
}

async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn not_found(req: Request) -> Response {
    let err = ApiError::NotFound {
        path: truncate_for_message(req.uri().path()),
    };
    err.into_response_for(error_format(&req))
}

async fn method_not_allowed(req: Request) -> Response {
    let err = ApiError::MethodNotAllowed {
        method: truncate_for_message(req.method().as_str()),
    };
    err.into_response_for(error_format(&req))
}

/// Anthropic clients live under `/v1/messages`; everything else speaks OpenAI.
pub(crate) fn error_format(req: &Request) -> ErrorFormat {
    if req.uri().path().starts_with("/v1/messages") {
        ErrorFormat::Anthropic
    } else {
        ErrorFormat::OpenAi
    }
}
