//! The HTTP front: routes, shared state, and the handlers (one module per endpoint).

mod admin;
mod body;
mod chat;
pub mod dispatch;
mod guard;
pub mod listener;
mod messages;
mod metrics_endpoint;
mod models;
mod routes;
mod status;
mod tls;
pub mod trace;

use std::sync::Arc;

use axum::extract::Request;
use tokio::net::TcpListener;

use crate::auth::ClientAuth;
use crate::config::{Config, FailoverOptions};
use crate::error::ErrorFormat;
use crate::exhaustion::Exhaustion;
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
    /// What this host ran out of, counted and logged (shared with the accept loop).
    pub exhaustion: Arc<Exhaustion>,
    /// The `/v1/models` answer, rendered once.
    models_body: bytes::Bytes,
}

impl AppState {
    pub fn new(config: &Config) -> anyhow::Result<AppState> {
        let keys = KeyPool::new(config.keys.clone(), config.health.clone());
        let models_body = models::render(&keys);
        let metrics = Metrics::default();
        Ok(AppState {
            exhaustion: Arc::new(Exhaustion::new(&metrics)),
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
            metrics,
            metrics_token: config.metrics_token.clone(),
            in_flight: guard::InFlight::new(config.concurrency.limit),
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
            exhaustion: &self.exhaustion,
        }
    }
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
        exhaustion: Some(state.exhaustion.clone()),
    };
    listener::serve(listener, dispatch::Dispatch::new(state), opts, shutdown).await;
    Ok(())
}

/// Anthropic clients live under `/v1/messages`; everything else speaks OpenAI.
pub(crate) fn error_format(req: &Request) -> ErrorFormat {
    if req.uri().path().starts_with("/v1/messages") {
        ErrorFormat::Anthropic
    } else {
        ErrorFormat::OpenAi
    }
}
