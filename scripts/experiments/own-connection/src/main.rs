//! Experiment: a minimal passthrough proxy, with either hyper-util's pooled client (the
//! connection in its own task) or a connection polled inside the request's own task.
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

type Conn = Connection<TokioIo<TcpStream>, Full<Bytes>>;
struct Pooled { tx: SendRequest<Full<Bytes>>, conn: Conn }

#[derive(Clone)]
struct Own { pool: Arc<Mutex<Vec<Pooled>>>, upstream: String }

impl Own {
    async fn get(&self) -> Pooled {
        if let Some(p) = self.pool.lock().unwrap().pop() { return p; }
        let s = TcpStream::connect(&self.upstream).await.unwrap();
        s.set_nodelay(true).unwrap();
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await.unwrap();
        Pooled { tx, conn }
    }
}

struct Driven { inner: Incoming, p: Option<Pooled>, pool: Arc<Mutex<Vec<Pooled>>> }
impl Body for Driven {
    type Data = Bytes; type Error = hyper::Error;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(p) = &mut this.p { let _ = Pin::new(&mut p.conn).poll(cx); }
            let f = Pin::new(&mut this.inner).poll_frame(cx);
            match &f {
                Poll::Ready(None) => { if let Some(p) = this.p.take() { this.pool.lock().unwrap().push(p); } }
                Poll::Ready(Some(_)) if this.inner.is_end_stream() => {
                    if let Some(mut p) = this.p.take() { let _ = Pin::new(&mut p.conn).poll(cx); this.pool.lock().unwrap().push(p); }
                }
                _ => {}
            }
            return f;
        }
    }
    fn is_end_stream(&self) -> bool { self.inner.is_end_stream() }
    fn size_hint(&self) -> http_body::SizeHint { self.inner.size_hint() }
}

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1).unwrap();
    let port: u16 = std::env::args().nth(2).unwrap().parse().unwrap();
    let upstream = std::env::args().nth(3).unwrap();
    let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let legacy = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let own = Own { pool: Arc::default(), upstream: upstream.clone() };
    loop {
        let (s, _) = l.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let (mode, legacy, own, upstream) = (mode.clone(), legacy.clone(), own.clone(), upstream.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: hyper::Request<Incoming>| {
                let (mode, legacy, own, upstream) = (mode.clone(), legacy.clone(), own.clone(), upstream.clone());
                async move {
                    let (parts, body) = req.into_parts();
                    let bytes = body.collect().await.unwrap().to_bytes();
                    let mut up = hyper::Request::new(Full::new(bytes));
                    *up.method_mut() = parts.method;
                    *up.uri_mut() = format!("http://{upstream}{}", parts.uri.path()).parse().unwrap();
                    up.headers_mut().insert("content-type", "application/json".parse().unwrap());
                    up.headers_mut().insert("authorization", "Bearer k1".parse().unwrap());
                    if mode == "legacy" {
                        let resp = legacy.request(up).await.unwrap();
                        let (p, b) = resp.into_parts();
                        Ok::<_, Infallible>(hyper::Response::from_parts(p, b.boxed()))
                    } else {
                        *up.uri_mut() = parts.uri.path().parse().unwrap();
                        up.headers_mut().insert("host", upstream.parse().unwrap());
                        let mut p = own.get().await;
                        let mut fut = Box::pin(p.tx.send_request(up));
                        let resp = std::future::poll_fn(|cx| {
                            let _ = Pin::new(&mut p.conn).poll(cx);
                            fut.as_mut().poll(cx)
                        }).await.unwrap();
                        let (parts, inner) = resp.into_parts();
                        let body = Driven { inner, p: Some(p), pool: own.pool.clone() };
                        Ok(hyper::Response::from_parts(parts, body.boxed()))
                    }
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc).await;
        });
    }
}
