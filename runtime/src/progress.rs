//! Progress timeouts for slow peers, as nginx's `client_body_timeout` and `send_timeout`: not a
//! limit on how long a body or an answer may take, but on how long the other side may make no
//! progress at all.
//!
//! - [`BodyWatch`] wraps a request body: once the gateway asks for more of it, the client has
//!   `limits.body_timeout` to send the next bytes, or the body ends with [`Stalled`] (408).
//! - [`SendWatch`] wraps a client connection: once a write cannot proceed (the client stopped
//!   reading and the socket's buffers are full), the client has `limits.send_timeout` to take
//!   more, or the connection fails and is closed. The answer being sent is dropped with it, and
//!   so is the upstream connection it came from, which is therefore never pinned by a client
//!   that stopped reading.
//!
//! Neither costs anything while the peer keeps up: a timer is armed only when the peer is
//! waited for, and disarmed by the next progress.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The error a request body ends with when the client sends nothing for `body_timeout`.
#[derive(Debug)]
pub struct Stalled;

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client sent no part of the request body in time")
    }
}

impl std::error::Error for Stalled {}

/// Whether `e` (or an error it wraps) is a [`Stalled`] body.
pub fn is_stalled(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<Stalled>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Whether `e` (or an error it wraps) is a body over its length limit.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
pub fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Polls `timer` (armed on first use); `Ready` once `limit` has passed since it was armed.
fn expired(timer: &mut Option<Pin<Box<Sleep>>>, limit: Duration, cx: &mut Context<'_>) -> bool {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    sleep.as_mut().poll(cx).is_ready()
}

/// A request body that fails with [`Stalled`] when the client makes no progress for `limit`.
pub struct BodyWatch {
    inner: axum::body::Body,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl BodyWatch {
    /// Watches `inner`.
    pub fn new(inner: axum::body::Body, limit: Duration) -> Self {
        BodyWatch {
            inner,
            limit,
            timer: None,
        }
    }
}

impl http_body::Body for BodyWatch {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                Poll::Ready(frame)
            }
            Poll::Pending if expired(&mut this.timer, this.limit, cx) => {
                Poll::Ready(Some(Err(axum::Error::new(Stalled))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A client connection whose writes fail when the client takes nothing for `limit`.
pub struct SendWatch<S> {
    inner: S,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    #[cfg(feature = "http2")]
    idle: Option<Box<Idle>>,
}

/// How long a connection may be idle: the client sends nothing while it has no request in
/// flight.
#[cfg(feature = "http2")]
struct Idle {
    limit: Duration,
    streams: Streams,
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether `timer` runs for the present idle spell.
    armed: bool,
}

/// The requests in flight on one connection, from the moment the gateway takes one until its
/// answer's body has been sent or dropped.
#[cfg(feature = "http2")]
#[derive(Clone, Default)]
pub(crate) struct Streams(std::sync::Arc<std::sync::atomic::AtomicUsize>);

#[cfg(feature = "http2")]
impl Streams {
    /// Counts one more request until the returned guard is dropped.
    pub(crate) fn open(&self) -> Open {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Open(self.0.clone())
    }

    fn any(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed) > 0
    }
}

/// One request counted in [`Streams`].
#[cfg(feature = "http2")]
pub(crate) struct Open(std::sync::Arc<std::sync::atomic::AtomicUsize>);

#[cfg(feature = "http2")]
impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// An answer's body that holds `G` (a count of requests in flight, say) until it is dropped.
#[cfg_attr(not(any(feature = "proxy", feature = "http2")), allow(dead_code))]
pub(crate) struct Holding<B, G> {
    inner: B,
    _held: G,
}

#[cfg_attr(not(any(feature = "proxy", feature = "http2")), allow(dead_code))]
impl<B, G> Holding<B, G> {
    pub(crate) fn new(inner: B, held: G) -> Self {
        Holding { inner, _held: held }
    }
}

impl<B: http_body::Body + Unpin, G: Unpin> http_body::Body for Holding<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<S> SendWatch<S> {
    /// Watches `inner`.
    pub fn new(inner: S, limit: Duration) -> Self {
        SendWatch {
            inner,
            limit,
            timer: None,
            #[cfg(feature = "http2")]
            idle: None,
        }
    }

    /// Also fails reads once the client has sent nothing for `limit` while `streams` counts
    /// no request in flight (an idle connection, or one that never sends its first request).
    #[cfg(feature = "http2")]
    pub(crate) fn idle_after(mut self, limit: Duration, streams: Streams) -> Self {
        self.idle = Some(Box::new(Idle {
            limit,
            streams,
            timer: None,
            armed: false,
        }));
        self
    }

    /// `poll` made on the connection's write side, with the timer armed while it waits.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        match poll(Pin::new(&mut self.inner), cx) {
            Poll::Ready(r) => {
                self.timer = None;
                Poll::Ready(r)
            }
            Poll::Pending if expired(&mut self.timer, self.limit, cx) => {
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took no part of the answer in time",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendWatch<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        #[cfg(feature = "http2")]
        if let Some(idle) = &mut this.idle {
            match polled {
                Poll::Pending if !idle.streams.any() => {
                    let limit = idle.limit;
                    let timer = idle
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                    if !idle.armed {
                        // The timer is made once and moved on each time the connection goes idle.
                        timer.as_mut().reset(tokio::time::Instant::now() + limit);
                        idle.armed = true;
                    }
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the connection was idle for the head timeout",
                        )));
                    }
                }
                _ => idle.armed = false,
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendWatch<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.watch(cx, |s, cx| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.watch(cx, |s, cx| s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.watch(cx, |s, cx| s.poll_flush(cx))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.watch(cx, |s, cx| s.poll_shutdown(cx))
    }
}
