//! The one shared HTTP client for every upstream: pooled keep-alive connections, HTTPS with
//! rustls (Mozilla roots plus any extra roots the operator trusts), HTTP/1.1 and HTTP/2.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::config::UpstreamOptions;
use crate::error::{ApiError, TimeoutKind};

pub type UpstreamRequest = http::Request<Full<Bytes>>;

#[derive(Clone)]
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
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

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(opts.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(UpstreamClient {
            client,
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
    ) -> Result<http::Response<Incoming>, ApiError> {
        match tokio::time::timeout(self.first_byte_timeout, self.client.request(req)).await {
            Err(_) => Err(ApiError::UpstreamTimeout {
                key: key.to_owned(),
                kind: TimeoutKind::FirstByte,
                seconds: self.first_byte_timeout.as_secs_f64(),
            }),
            Ok(Ok(resp)) => Ok(resp),
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
