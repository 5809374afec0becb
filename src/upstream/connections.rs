//! keyrelay's own keep-alive pool of upstream HTTP/1.1 connections, each one driven by the
//! task of the request that uses it.
//!
//! hyper-util's pooled client runs every connection in a task of its own: a request crosses
//! to that task and back for its head, and the response body crosses one frame at a time.
//! Measured (BENCHMARKS.md, "the fix that remains"), those hand-offs held an 8-chunk stream
//! to 0.55× nginx's throughput in a minimal proxy, against 1.03× when the request's own task
//! polls the connection. So here a connection is checked out of the pool, polled while the
//! request waits for its head and then inside the response body's `poll_frame`, and checked
//! back in when the body ends. A body dropped early drops (closes) its connection.
//!
//! Upstreams are spoken to in HTTP/1.1 only (ALPN offers only `http/1.1`): every provider
//! accepts it, and one connection per request in flight is what a key-rotating proxy uses
//! anyway.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::exhaustion::Resource;

/// A byte stream to an upstream: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

type Conn = Connection<TokioIo<Box<dyn Io>>, Full<Bytes>>;

/// One open connection: the handle to send on and the connection state to poll.
struct Open {
    tx: SendRequest<Full<Bytes>>,
    conn: Conn,
}

struct Idle {
    open: Box<Open>,
    since: Instant,
}

/// Where to connect: scheme and authority of a request's URI.
#[derive(Clone)]
struct Origin {
    tls: bool,
    authority: Authority,
}

// By the authority's text as written. `Authority`'s own `Hash` ignores case, one byte at a
// time through SipHash: a thousand instructions per lookup, two lookups per request. Keys'
// URLs come from the configuration, so one host is always spelt the same way.
impl std::hash::Hash for Origin {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.tls.hash(state);
        self.authority.as_str().hash(state);
    }
}

impl PartialEq for Origin {
    fn eq(&self, other: &Origin) -> bool {
        self.tls == other.tls && self.authority.as_str() == other.authority.as_str()
    }
}

impl Eq for Origin {}

pub struct Pool {
    idle: Mutex<HashMap<Origin, Vec<Idle>>>,
    tls: TlsConnector,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// At most this many idle connections are kept per upstream.
    max_idle: usize,
}

/// Why a connection could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect timed out")]
    Timeout,
    /// Resolving the name, opening the socket or connecting it.
    #[error("{0}")]
    Connect(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("invalid upstream URL: {0}")]
    Uri(&'static str),
    /// The exchange on an open connection.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("the upstream closed the connection before answering")]
    Closed,
}

impl ConnectError {
    /// What this host ran out of, when that is why it failed.
    pub fn exhausted(&self) -> Option<Resource> {
        match self {
            ConnectError::Connect(e) | ConnectError::Tls(e) => Resource::of(e),
            ConnectError::Http(e) => Resource::in_chain(e),
            ConnectError::Timeout | ConnectError::Uri(_) | ConnectError::Closed => None,
        }
    }

    /// No connection was made: the host's failure, not the exchange's.
    pub fn before_connected(&self) -> bool {
        matches!(
            self,
            ConnectError::Timeout
                | ConnectError::Connect(_)
                | ConnectError::Tls(_)
                | ConnectError::Uri(_)
        )
    }

    /// The connection ended before any of the answer arrived: what an upstream closing an
    /// idle keep-alive connection looks like when the request crossed its close.
    pub fn closed_before_answer(&self) -> bool {
        match self {
            ConnectError::Closed => true,
            ConnectError::Http(e) => e.is_incomplete_message() || e.is_canceled() || e.is_closed(),
            _ => false,
        }
    }
}

/// Why an upstream body stopped early.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

impl Pool {
    pub fn new(
        mut tls: rustls::ClientConfig,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Pool {
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Pool {
            idle: Mutex::default(),
            tls: TlsConnector::from(Arc::new(tls)),
            connect_timeout,
            idle_timeout,
            max_idle: 256,
        }
    }

    fn origin(uri: &http::Uri) -> Result<Origin, ConnectError> {
        let tls = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return Err(ConnectError::Uri("scheme must be http or https")),
        };
        let mut authority = uri
            .authority()
            .cloned()
            .ok_or(ConnectError::Uri("no host"))?;
        // User info in a base URL is not a credential keyrelay sends: it must not reach the
        // `Host` header or a log line.
        if let Some((_, host)) = authority.as_str().rsplit_once('@') {
            authority = host
                .parse()
                .map_err(|_| ConnectError::Uri("invalid host"))?;
        }
        Ok(Origin { tls, authority })
    }

    /// An idle connection to `uri`'s origin that still looks open, or a new one.
    pub async fn checkout(self: &Arc<Self>, uri: &http::Uri) -> Result<Lease, ConnectError> {
        let origin = Pool::origin(uri)?;
        while let Some(mut idle) = self.pop_idle(&origin) {
            if idle.since.elapsed() >= self.idle_timeout || !still_open(&mut idle.open).await {
                continue;
            }
            let mut lease = self.lease(origin, idle.open);
            lease.reused = true;
            return Ok(lease);
        }
        let open = self.connect(&origin).await?;
        Ok(self.lease(origin, open))
    }

    /// A new connection, never an idle one: to retry on after a reused one failed.
    pub async fn fresh(self: &Arc<Self>, uri: &http::Uri) -> Result<Lease, ConnectError> {
        let origin = Pool::origin(uri)?;
        let open = self.connect(&origin).await?;
        Ok(self.lease(origin, open))
    }

    fn lease(self: &Arc<Self>, origin: Origin, open: Box<Open>) -> Lease {
        Lease {
            open,
            pool: self.clone(),
            origin,
            reused: false,
        }
    }

    fn pop_idle(&self, origin: &Origin) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.get_mut(origin)?.pop()
    }

    fn checkin(&self, origin: Origin, open: Box<Open>) {
        if !open.tx.is_ready() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(origin).or_default();
        if list.len() < self.max_idle {
            list.push(Idle {
                open,
                since: Instant::now(),
            });
        }
    }

    /// Closes every idle connection: when descriptors run out, those kept for other hosts
    /// are better spent on the requests waiting now (one to this request's host would have
    /// been reused instead of connecting).
    pub fn shed_idle(&self) -> usize {
        let drained = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        drained.into_values().map(|list| list.len()).sum()
    }

    /// A new connection, boxed once: hyper's connection state is large, and it moves from
    /// the pool to a request's body and back.
    async fn connect(&self, origin: &Origin) -> Result<Box<Open>, ConnectError> {
        let host = origin.authority.host();
        let port = origin
            .authority
            .port_u16()
            .unwrap_or(if origin.tls { 443 } else { 80 });
        // `[::1]` in a URL is `::1` to the resolver.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let connected = async {
            let tcp = connect_any(bare, port).await?;
            tcp.set_nodelay(true)?;
            // A stream can be quiet for minutes (a slow model): keep NATs and load balancers
            // from forgetting the connection, and notice a peer that vanished.
            let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
            socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive)?;
            let io: Box<dyn Io> = if origin.tls {
                let name = ServerName::try_from(bare.to_owned())
                    .map_err(|_| ConnectError::Uri("invalid host name"))?;
                let tls = self
                    .tls
                    .connect(name, tcp)
                    .await
                    .map_err(ConnectError::Tls)?;
                Box::new(tls)
            } else {
                Box::new(tcp)
            };
            let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
            Ok::<_, ConnectError>(Box::new(Open { tx, conn }))
        };
        let result = match tokio::time::timeout(self.connect_timeout, connected).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout),
        };
        match &result {
            Ok(_) => tracing::trace!(upstream = %origin.authority, tls = origin.tls, "connected"),
            Err(e) => tracing::trace!(upstream = %origin.authority, error = %e, "connect failed"),
        }
        result
    }
}

/// A TCP connection to the first of `host`'s addresses that takes one. When none does, the
/// error is an upstream's (refused, unreachable) if any address gave one: a name with an
/// IPv6 address on a host without IPv6 fails that address with `EADDRNOTAVAIL`, which alone
/// would read as this host running out of local ports.
async fn connect_any(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let mut local: Option<std::io::Error> = None;
    let mut upstream: Option<std::io::Error> = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) if Resource::of(&e).is_some() => local = Some(e),
            Err(e) => upstream = Some(e),
        }
    }
    Err(upstream.or(local).unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address")
    }))
}

/// Whether an idle connection has not been closed by the upstream meanwhile: polled once,
/// a closed connection completes at once.
async fn still_open(open: &mut Open) -> bool {
    std::future::poll_fn(|cx| {
        Poll::Ready(match Pin::new(&mut open.conn).poll(cx) {
            Poll::Pending => !open.tx.is_closed(),
            Poll::Ready(_) => false,
        })
    })
    .await
}

/// A connection checked out for one request.
pub struct Lease {
    open: Box<Open>,
    pool: Arc<Pool>,
    origin: Origin,
    /// Taken from the pool: the upstream may close it just as the request goes out.
    reused: bool,
}

impl Lease {
    pub fn reused(&self) -> bool {
        self.reused
    }

    /// Sends `req` (absolute URI) and drives the connection until the response head.
    pub async fn send(
        mut self,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<http::Response<UpstreamBody>, ConnectError> {
        // HTTP/1.1 wants the origin form and a Host header.
        if !req.headers().contains_key(http::header::HOST)
            && let Ok(host) = http::HeaderValue::from_str(self.origin.authority.as_str())
        {
            req.headers_mut().insert(http::header::HOST, host);
        }
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        *req.uri_mut() = http::Uri::from(path);
        let open = &mut *self.open;
        let mut response = Box::pin(open.tx.send_request(req));
        let head = std::future::poll_fn(|cx| match Pin::new(&mut open.conn).poll(cx) {
            Poll::Pending => response.as_mut().poll(cx).map_err(ConnectError::from),
            // The connection is over: the request has its answer now or never will.
            Poll::Ready(ended) => match response.as_mut().poll(cx) {
                Poll::Ready(answer) => Poll::Ready(answer.map_err(ConnectError::from)),
                Poll::Pending => Poll::Ready(Err(ended
                    .err()
                    .map_or(ConnectError::Closed, ConnectError::from))),
            },
        })
        .await?;
        let (parts, incoming) = head.into_parts();
        let body = UpstreamBody {
            incoming,
            lease: Some(self),
        };
        Ok(http::Response::from_parts(parts, body))
    }
}

/// An upstream response body; polling it drives its connection, and its end returns the
/// connection to the pool.
pub struct UpstreamBody {
    incoming: Incoming,
    lease: Option<Lease>,
}

impl UpstreamBody {
    fn release(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.pool.checkin(lease.origin, lease.open);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        // Decodes what the socket has into the body's channel.
        let ended = match this.lease.as_mut() {
            Some(Lease { open, .. }) => Pin::new(&mut open.conn).poll(cx).is_ready(),
            None => false,
        };
        let frame = Pin::new(&mut this.incoming)
            .poll_frame(cx)
            .map_err(BodyError::from);
        if ended && frame.is_pending() {
            // hyper ends the body before its connection; should it ever not, the body must
            // not wait for a connection that is gone.
            this.lease = None;
            return Poll::Ready(Some(Err(ConnectError::Closed.into())));
        }
        match &frame {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.incoming.is_end_stream() => {
                // Let the connection finish the message so that it is ready for the next.
                if let Some(Lease { open, .. }) = this.lease.as_mut() {
                    let _ = Pin::new(&mut open.conn).poll(cx);
                }
                this.release();
            }
            Poll::Ready(Some(Err(_))) => this.lease = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_never_reaches_the_origin() {
        let uri: http::Uri = "https://user:secret@api.example.com:8443/v1/chat/completions"
            .parse()
            .expect("uri");
        let origin = Pool::origin(&uri).expect("origin");
        assert_eq!(origin.authority.as_str(), "api.example.com:8443");
        assert!(origin.tls);
        let plain: http::Uri = "http://127.0.0.1:9000/v1".parse().expect("uri");
        assert_eq!(
            Pool::origin(&plain).expect("origin").authority.as_str(),
            "127.0.0.1:9000"
        );
    }
}
