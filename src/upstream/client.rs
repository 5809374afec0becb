//! The one shared HTTP client for every upstream: pooled keep-alive connections, HTTPS with
//! rustls (Mozilla roots plus any extra roots the operator trusts), HTTP/1.1 and HTTP/2.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::connections::{ConnectError, Pool, UpstreamBody};
use crate::config::UpstreamOptions;
use crate::error::{ApiError, TimeoutKind};
use crate::exhaustion::Resource;
use crate::health::Outcome;

pub type UpstreamRequest = http::Request<Full<Bytes>>;

/// How long an unused keep-alive connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Clone)]
pub struct UpstreamClient {
    pool: Arc<Pool>,
    connect_timeout: Duration,
    first_byte_timeout: Duration,
}

impl UpstreamClient {
    pub fn new(opts: &UpstreamOptions) -> anyhow::Result<UpstreamClient> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &opts.extra_roots {
            let mut added = 0;
            for cert in CertificateDer::pem_file_iter(path)? {
                roots.add(cert?)?;
                added += 1;
            }
            anyhow::ensure!(added > 0, "{}: no PEM certificates found", path.display());
        }
        let tls = rustls::ClientConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(UpstreamClient {
            pool: Arc::new(Pool::new(tls, opts.connect_timeout, IDLE_TIMEOUT)),
            connect_timeout: opts.connect_timeout,
            first_byte_timeout: opts.first_byte_timeout,
        })
    }

    /// Sends a request and waits for the response head, within the first-byte timeout.
    /// `connected` runs once a connection to the upstream is open (new or pooled): what a
    /// host's breaker needs to know, well before a slow answer's head.
    pub async fn send(
        &self,
        req: UpstreamRequest,
        connected: impl FnOnce(),
    ) -> Result<http::Response<UpstreamBody>, SendError> {
        let exchange = async {
            let lease = self.pool.checkout(req.uri()).await?;
            connected();
            if !lease.reused() {
                return lease.send(req).await;
            }
            // An idle connection the upstream closes just as the request crosses: the
            // upstream never saw the request, so it goes once more on a new connection.
            let again = duplicate(&req);
            match lease.send(req).await {
                Err(e) if e.closed_before_answer() => {
                    tracing::debug!(error = %e, "pooled connection closed; retrying on a new one");
                    self.pool.fresh(again.uri()).await?.send(again).await
                }
                other => other,
            }
        };
        let error = match tokio::time::timeout(self.first_byte_timeout, exchange).await {
            Ok(Ok(resp)) => return Ok(resp),
            Err(_) => return Err(SendError::FirstByteTimeout),
            Ok(Err(e)) => e,
        };
        if let Some(resource) = error.exhausted() {
            // Out of descriptors, idle connections to other hosts are better closed. Not for
            // ports: a closed connection keeps its port in TIME_WAIT for a minute.
            if resource == Resource::OpenFiles {
                let shed = self.pool.shed_idle();
                tracing::debug!(shed, "idle upstream connections closed to free descriptors");
            }
            return Err(SendError::Exhausted(resource));
        }
        let detail = error_chain(&error);
        Err(if error.before_connected() {
            let timed_out = matches!(error, ConnectError::Timeout) || is_timeout(&error);
            SendError::Unreachable { detail, timed_out }
        } else {
            SendError::Lost { detail }
        })
    }

    /// The client's error for a failed send with `key` (its label).
    pub fn api_error(&self, error: SendError, key: &str) -> ApiError {
        let timeout = |kind, limit: Duration| ApiError::UpstreamTimeout {
            key: key.to_owned(),
            kind,
            seconds: limit.as_secs_f64(),
        };
        match error {
            SendError::Exhausted(resource) => ApiError::ProxyOverloaded { resource },
            SendError::FirstByteTimeout => timeout(TimeoutKind::FirstByte, self.first_byte_timeout),
            SendError::Unreachable {
                timed_out: true, ..
            } => timeout(TimeoutKind::Connect, self.connect_timeout),
            SendError::Unreachable { detail, .. } | SendError::Lost { detail } => {
                ApiError::UpstreamUnreachable {
                    key: key.to_owned(),
                    detail,
                }
            }
        }
    }
}

/// Why a request got no response head, by whose fault.
#[derive(Debug)]
pub enum SendError {
    /// This host ran out of something: neither the key nor the upstream is to blame.
    Exhausted(Resource),
    /// No connection could be made (refused, DNS, TLS, connect timeout): the host's failure.
    Unreachable { detail: String, timed_out: bool },
    /// Connected, but the connection broke before the response head: like a 5xx.
    Lost { detail: String },
    /// No response head within the first-byte timeout.
    FirstByteTimeout,
}

impl SendError {
    /// What the attempt says about the key and its host, or what this host ran out of
    /// (which says nothing about either).
    pub fn blame(&self) -> Result<Outcome, Resource> {
        match self {
            SendError::Exhausted(resource) => Err(*resource),
            SendError::Unreachable { timed_out, .. } => Ok(Outcome::Unreachable {
                timed_out: *timed_out,
            }),
            SendError::Lost { .. } => Ok(Outcome::ConnectionLost),
            SendError::FirstByteTimeout => Ok(Outcome::Timeout),
        }
    }
}

/// The same request again (its body is shared, not copied).
fn duplicate(req: &UpstreamRequest) -> UpstreamRequest {
    let mut copy = http::Request::new(req.body().clone());
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    copy
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The error and its causes on one line: hyper's top-level message alone ("client error
/// (Connect)") does not say what went wrong.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}
