//! Pooled keep-alive HTTP/1.1 connections to upstreams, `http://` or `https://` (rustls).
//!
//! A connection goes back to the pool when the answer's body has been read to its end, so a
//! request never waits behind another's body; a connection the upstream closed is noticed when
//! it is taken and dropped. A request that could not be written on a pooled connection (the
//! upstream closed it while idle) is sent again on a new one. Idle connections live 60 s, at most
//! 256 per upstream.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, HeaderValue, Request, Response, Uri};
use hyper::client::conn::http1::SendRequest;

use crate::tls::Connector;

const IDLE_FOR: Duration = Duration::from_secs(60);
const IDLE_MAX: usize = 256;

type Key = (Scheme, Authority);

struct Idle {
    sender: SendRequest<Body>,
    /// When it went idle, on [`crate::deadline::coarse_ms`]'s clock.
    since: u64,
}

/// The pool.
pub struct Pool {
    connector: Connector,
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").finish()
    }
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum Error {
    /// The URL is not absolute `http(s)://`.
    Url,
    /// Connecting failed.
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// The exchange failed.
    Http(hyper::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Url => f.write_str("the upstream URL is not absolute"),
            Error::Connect(e) => write!(f, "connect: {e}"),
            Error::Http(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Http(e) => Some(e),
            Error::Connect(e) => Some(&**e),
            Error::Url => None,
        }
    }
}

impl Pool {
    /// A pool that connects with `connector`.
    pub fn new(connector: Connector) -> Arc<Pool> {
        Arc::new(Pool {
            connector,
            idle: Mutex::new(HashMap::new()),
        })
    }

    fn take(&self, key: &Key) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        let now = crate::deadline::coarse_ms();
        while let Some(i) = list.pop() {
            let fresh = now.saturating_sub(i.since) < IDLE_FOR.as_millis() as u64;
            if fresh && !i.sender.is_closed() && i.sender.is_ready() {
                return Some(i.sender);
            }
        }
        None
    }

    fn put(&self, key: Key, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() < IDLE_MAX {
            list.push(Idle {
                sender,
                since: crate::deadline::coarse_ms(),
            });
        }
    }

    async fn connect(&self, uri: &Uri) -> Result<SendRequest<Body>, Error> {
        use tower_service::Service;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(Error::Connect)?;
        let io = connector.call(uri.clone()).await.map_err(Error::Connect)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(Error::Http)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends `req` (with an absolute URI) and returns the answer, whose body gives the
    /// connection back to the pool when it ends.
    pub async fn request(
        self: &Arc<Self>,
        mut req: Request<Body>,
    ) -> Result<Response<Body>, Error> {
        let uri = req.uri().clone();
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(Error::Url);
        };
        // The request line carries the origin form; the authority goes in `Host`.
        *req.uri_mut() = Uri::from(
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
            req.headers_mut().insert(header::HOST, host);
        }
        let key = (scheme, authority);
        let mut req = req;
        let mut fresh = false;
        loop {
            let mut sender = match self.take(&key) {
                Some(s) => s,
                None => {
                    fresh = true;
                    self.connect(&uri).await?
                }
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let body = Pooled {
                        inner: body,
                        back: Some((self.clone(), key, sender)),
                    };
                    return Ok(Response::from_parts(parts, Body::new(body)));
                }
                Err(mut e) => match e.take_message() {
                    // Not written: the pooled connection was closed under us. Once more, on a
                    // new connection.
                    Some(again) if !fresh => req = again,
                    _ => return Err(Error::Http(e.into_error())),
                },
            }
        }
    }
}

/// An answer's body that gives its connection back when it has been read to its end.
struct Pooled {
    inner: hyper::body::Incoming,
    back: Option<(Arc<Pool>, Key, SendRequest<Body>)>,
}

impl Pooled {
    fn release(&mut self) {
        if let Some((pool, key, sender)) = self.back.take() {
            pool.put(key, sender);
        }
    }
}

impl http_body::Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ if self.inner.is_end_stream() => self.release(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // Dropped after its end (or empty): the connection is clean. Dropped midway: it is not,
        // and goes away with its sender.
        if http_body::Body::is_end_stream(&self.inner) {
            self.release();
        }
    }
}
