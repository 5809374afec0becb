//! The accept loop: HTTP/1.1 and HTTP/2 (optionally over TLS) on one listener, each
//! connection served by the protocol its first bytes (or TLS's ALPN) announce, with a
//! header-read timeout that also bounds a new connection's silence, and a graceful stop that
//! lets open requests finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::response::Response;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::exhaustion::{Exhaustion, Resource};

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections the kernel holds for `accept` (capped by `net.core.somaxconn`, 4,096 on
/// current Linux). The standard library's and tokio's `bind` ask for 128: a burst of more
/// connects than that overflows the queue, and each client turned away waits a second or
/// more for its SYN to be sent again. nginx asks for 511, Go for `somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with a backlog fit for bursts of clients.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

pub struct ListenOptions {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// How long a client may take to send a request's headers; hyper also applies it to a
    /// keep-alive connection waiting for its next request, so idle clients are dropped too.
    pub header_read_timeout: Duration,
    /// How long open connections get to finish after `shutdown`.
    pub grace: Duration,
    /// Where running out of descriptors while accepting is counted and logged.
    pub exhaustion: Option<Arc<Exhaustion>>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            tls: None,
            header_read_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(30),
            exhaustion: None,
        }
    }
}

/// What a connection speaks: HTTP/1, HTTP/2 with prior knowledge, or not known yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
    Unknown,
}

/// The protocol a connection's first bytes announce: HTTP/2's preface starts with `PRI`,
/// which no HTTP/1 method does. One or two bytes alone (`P`, `PR`) cannot tell.
fn protocol_of(first: &[u8]) -> Protocol {
    match first {
        [b'P', b'R', b'I', ..] => Protocol::Http2,
        [b'P'] | [b'P', b'R'] => Protocol::Unknown,
        _ => Protocol::Http1,
    }
}

/// Waits for a plain connection's first bytes and reads them without consuming them;
/// `None` when it closes first.
async fn sniff(stream: &TcpStream) -> Option<Protocol> {
    let mut first = [0u8; 3];
    match stream.peek(&mut first).await {
        Ok(n) if n > 0 => Some(protocol_of(&first[..n])),
        _ => None,
    }
}

/// A connection served by the protocol it speaks.
///
/// hyper-util's `auto` builder tells HTTP/1 from HTTP/2 by reading the first 24 bytes and
/// handing them back to hyper on their own; hyper's next read then reserves its 8 KiB
/// buffer on top of them, so every HTTP/1 connection kept a 16 KiB read buffer for its life
/// (RSS per open stream 34.2 → 30.0 KiB without it, scripts/experiments/stream-memory).
/// Peeking at the first bytes (or reading TLS's ALPN) and serving with a one-protocol
/// builder avoids that; `sniffing` is left for the rare connection that does not say.
struct Builders {
    http1: auto::Builder<TokioExecutor>,
    http2: auto::Builder<TokioExecutor>,
    sniffing: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(header_read_timeout: Duration) -> Builders {
        let mut sniffing = auto::Builder::new(TokioExecutor::new());
        sniffing
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout);
        Builders {
            http1: sniffing.clone().http1_only(),
            http2: sniffing.clone().http2_only(),
            sniffing,
        }
    }

    fn get(&self, protocol: Protocol) -> &auto::Builder<TokioExecutor> {
        match protocol {
            Protocol::Http1 => &self.http1,
            Protocol::Http2 => &self.http2,
            Protocol::Unknown => &self.sniffing,
        }
    }
}

/// Serves `app` until `shutdown` completes, then waits up to `grace` for open connections.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    opts: ListenOptions,
    shutdown: impl Future<Output = ()>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let ListenOptions {
        tls,
        header_read_timeout,
        grace,
        exhaustion,
    } = opts;
    let graceful = GracefulShutdown::new();
    let builders = Arc::new(Builders::new(header_read_timeout));
    // Connections still being sniffed are not yet watched by `graceful`: they leave when this
    // says keyrelay is stopping.
    let (stopping, stop) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Usually EMFILE: the connection waits in the backlog until a descriptor
                    // is free; back off instead of spinning on the error.
                    match (Resource::of(&e), &exhaustion) {
                        (Some(resource), Some(ex)) => ex.note(resource, "accepting a connection"),
                        _ => tracing::warn!(error = %e, "accept failed"),
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app.clone();
        let builders = builders.clone();
        let watcher = graceful.watcher();
        let mut stop = stop.clone();
        // One task per transport, so that a plain connection's task, which lives as long as
        // the connection, is not sized for a TLS stream.
        match &tls {
            None => {
                tokio::spawn(async move {
                    let first = tokio::time::timeout(header_read_timeout, sniff(&stream));
                    let protocol = tokio::select! {
                        first = first => match first {
                            Ok(Some(protocol)) => protocol,
                            // Closed, or silent past the header-read timeout.
                            _ => return,
                        },
                        _ = stop.changed() => return,
                    };
                    let builder = builders.get(protocol);
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(stream)) => stream,
                            _ => return,
                        },
                        _ = stop.changed() => return,
                    };
                    let protocol = match stream.get_ref().1.alpn_protocol() {
                        Some(b"h2") => Protocol::Http2,
                        Some(b"http/1.1") => Protocol::Http1,
                        _ => Protocol::Unknown,
                    };
                    let builder = builders.get(protocol);
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    drop(stopping);
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_tell_http2_prior_knowledge_from_http1() {
        assert_eq!(protocol_of(b"PRI"), Protocol::Http2);
        for method in [&b"POS"[..], b"PUT", b"PAT", b"GET", b"OPT", b"\x16\x03\x01"] {
            assert_eq!(protocol_of(method), Protocol::Http1, "{method:?}");
        }
        assert_eq!(protocol_of(b"P"), Protocol::Unknown);
        assert_eq!(protocol_of(b"PR"), Protocol::Unknown);
        assert_eq!(protocol_of(b"G"), Protocol::Http1);
        assert_eq!(protocol_of(b"PO"), Protocol::Http1);
    }
}
