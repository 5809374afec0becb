//! The accept loop: HTTP/1.1 and HTTP/2 (optionally over TLS) on one listener, with a
//! header-read timeout, and a graceful stop that lets open requests finish.

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
use tokio::net::{TcpListener, TcpSocket};

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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
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
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
}
