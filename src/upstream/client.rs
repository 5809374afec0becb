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
    /// `key` is the key's label, for error messages.
    pub async fn send(
        &self,
        req: UpstreamRequest,
        key: &str,
    ) -> Result<http::Response<UpstreamBody>, ApiError> {
        let exchange = async {
            let lease = self.pool.checkout(req.uri()).await?;
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
        match tokio::time::timeout(self.first_byte_timeout, exchange).await {
            Err(_) => Err(ApiError::UpstreamTimeout {
                key: key.to_owned(),
                kind: TimeoutKind::FirstByte,
                seconds: self.first_byte_timeout.as_secs_f64(),
            }),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(ConnectError::Timeout)) => Err(ApiError::UpstreamTimeout {
                key: key.to_owned(),
                kind: TimeoutKind::Connect,
                seconds: self.connect_timeout.as_secs_f64(),
            }),
            Ok(Err(e)) if is_timeout(&e) => Err(ApiError::UpstreamTimeout {
                key: key.to_owned(),
                kind: TimeoutKind::Connect,
                seconds: self.connect_timeout.as_secs_f64(),
            }),
            Ok(Err(e)) => Err(ApiError::UpstreamUnreachable {
                key: key.to_owned(),
                detail: error_chain(&e),
            }),
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
