//! The API listener: one task a connection, served by the gateway's own HTTP/1.1 server
//! ([`crate::h1`]) in clear text, or by hyper's servers for TLS, HTTP/2 and connections that may
//! upgrade to WebSockets; graceful shutdown on SIGTERM or Ctrl-C, SIGHUP to re-read the API key
//! file.
//!
//! It owns accepting and stopping; what happens to a request is [`crate::pipeline`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::StatusCode;

use crate::config::Config;
use crate::gateway::{ConnectionLimits, Gateway};
use crate::observe::{GatewayRef, LoggedBody};
use crate::pipeline::handle_request;
use crate::problem::Problem;

impl Gateway {
    /// The API router (serve it with `into_make_service_with_connect_info::<SocketAddr>()`).
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .fallback(handle)
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                    "the gateway failed",
                )
                .into_response("-")
            }))
            .with_state(self.clone())
    }

    /// Serves until SIGTERM or Ctrl-C, then drains in-flight requests and returns.
    pub async fn serve(self, config: &Config) -> std::io::Result<()> {
        let gw = Arc::new(self);
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let admission = Admission::new(gw.connections);
        let control = Control::start(
            &gw,
            config,
            listener.local_addr()?,
            &admission,
            stop_tx,
            stop_rx,
        )
        .await?;
        accept(gw, listener, admission, control.stop.clone()).await;
        control.finish().await;
        Ok(())
    }

    /// Serves as [`Gateway::serve`] does, on `threads` threads that each run a single-threaded
    /// runtime and accept on a listener of their own, all bound to one address with
    /// `SO_REUSEPORT` so that the kernel spreads new connections over them (nginx's model: a
    /// connection, and everything its requests do, stays on one core). The admin listener and
    /// the signals are served on the calling thread.
    #[cfg(unix)]
    pub(crate) fn serve_per_core(self, config: &Config, threads: usize) -> std::io::Result<()> {
        let gw = Arc::new(self);
        let sockets = bind_reuseport(config.listen, threads.max(1))?;
        #[cfg(feature = "proxy")]
        gw.client.keep_connections_per_thread();
        let local = sockets[0].local_addr()?;
        let control_runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        control_runtime.block_on(async move {
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let admission = Admission::new(gw.connections);
            let (listening_tx, listening_rx) = std::sync::mpsc::channel();
            let mut workers = Vec::with_capacity(sockets.len());
            for (n, socket) in sockets.into_iter().enumerate() {
                let (gw, admission, stop) = (gw.clone(), admission.clone(), stop_rx.clone());
                let listening = listening_tx.clone();
                let worker = std::thread::Builder::new()
                    .name(format!("gwgen-worker-{n}"))
                    .stack_size(crate::binary::WORKER_STACK)
                    .spawn(move || -> std::io::Result<()> {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .inspect_err(|e| {
                                let _ = listening.send(Err(e.kind()));
                            })?;
                        runtime.block_on(async move {
                            let listener = socket.listen(1024);
                            let _ =
                                listening.send(listener.as_ref().map(|_| ()).map_err(|e| e.kind()));
                            drop(listening);
                            let listener = listener?;
                            accept(gw, listener, admission, stop).await;
                            Ok(())
                        })
                    })?;
                workers.push(worker);
            }
            drop(listening_tx);
            let threads = workers.len();
            let join = move || {
                // Every worker is waited for (each drains), then the first failure is told.
                let ended: Vec<std::io::Result<()>> = workers
                    .into_iter()
                    .map(|w| {
                        w.join().unwrap_or_else(|_| {
                            Err(std::io::Error::other("a worker thread failed"))
                        })
                    })
                    .collect();
                ended.into_iter().collect::<std::io::Result<()>>()
            };
            // Every worker listens, or none serves: ready only once they all do.
            let listening = tokio::task::spawn_blocking(move || {
                listening_rx
                    .iter()
                    .take(threads)
                    .find(Result::is_err)
                    .unwrap_or(Ok(()))
            })
            .await
            .map_err(std::io::Error::other)?;
            if let Err(kind) = listening {
                let _ = stop_tx.send(true);
                let _ = tokio::task::spawn_blocking(join).await;
                return Err(std::io::Error::new(kind, "a worker could not listen"));
            }
            let control = Control::start(&gw, config, local, &admission, stop_tx, stop_rx).await?;
            // The workers run until the stop signal and their drain; the admin listener goes on
            // answering (`/readyz` says 503) meanwhile.
            let ended = tokio::task::spawn_blocking(join)
                .await
                .map_err(std::io::Error::other)?;
            control.finish().await;
            ended
        })
    }
}

/// `threads` sockets bound to `addr` with `SO_REUSEPORT`, not listening yet (each worker makes
/// its own a listener on its own runtime). Port 0 binds the first to a free port, the others to
/// the same one.
#[cfg(unix)]
fn bind_reuseport(addr: SocketAddr, threads: usize) -> std::io::Result<Vec<tokio::net::TcpSocket>> {
    let socket = |at: SocketAddr| match at {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    };
    if addr.port() != 0 {
        // `SO_REUSEPORT` would let these sockets share the port with another process of the
        // same user that holds it the same way (a second gateway started by mistake): the
        // kernel would split the connections between them. A plain bind first fails with
        // "address in use" whenever anyone holds the port.
        let probe = socket(addr)?;
        probe.set_reuseaddr(true)?;
        probe.bind(addr)?;
    }
    let mut sockets = Vec::with_capacity(threads);
    let mut at = addr;
    for _ in 0..threads {
        let socket = socket(at)?;
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(at)?;
        at = socket.local_addr()?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// What one gateway process serves besides its API listeners: the admin listener, SIGHUP, and
/// the stop signal that every accept loop watches.
struct Control {
    stop: tokio::sync::watch::Receiver<bool>,
    admin: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    redirect: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Control {
    /// Starts the admin listener and the signal handlers, and marks the gateway ready.
    async fn start(
        gw: &Arc<Gateway>,
        config: &Config,
        listen: SocketAddr,
        admission: &Admission,
        stop_tx: tokio::sync::watch::Sender<bool>,
        stop_rx: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<Control> {
        let admin = match config.admin_listen {
            Some(addr) => Some(crate::admin::spawn(gw, addr, stop_rx.clone()).await?),
            None => None,
        };
        let redirect = match config.redirect_listen {
            Some(addr) => Some(
                redirect_to_https(gw, addr, listen.port(), admission.clone(), stop_rx.clone())
                    .await?,
            ),
            None => None,
        };
        tracing::info!(
            listen = %listen,
            admin = %config
                .admin_listen
                .map(|a| a.to_string())
                .unwrap_or_else(|| "off".into()),
            stage = %gw.stage,
            "listening"
        );
        #[cfg(feature = "websocket")]
        gw.sockets.start();
        gw.ready.store(true, Ordering::Relaxed);
        let ready = gw.ready.clone();
        #[cfg(feature = "https")]
        if let Some(tls) = &gw.tls {
            tls.watch();
        }
        #[cfg(unix)]
        {
            let keys = gw.auth.as_ref().map(|a| a.keys().clone());
            #[cfg(feature = "https")]
            let tls = gw.tls.clone();
            #[cfg(not(feature = "https"))]
            let tls: Option<()> = None;
            // SIGHUP re-reads the API key file and the TLS certificates; a broken file keeps
            // what is loaded.
            let hup = (keys.is_some() || tls.is_some())
                .then(|| {
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
                })
                .flatten();
            if let Some(mut hup) = hup {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        if let Some(keys) = &keys {
                            match keys.reload() {
                                Ok(n) => tracing::info!(keys = n, "API keys reloaded"),
                                Err(e) => tracing::warn!(
                                    error = %e,
                                    "API keys not reloaded; the loaded keys stay"
                                ),
                            }
                        }
                        #[cfg(feature = "https")]
                        if let Some(tls) = &tls {
                            tls.reloaded("SIGHUP");
                        }
                    }
                });
            }
        }
        tokio::spawn(async move {
            shutdown_signal().await;
            ready.store(false, Ordering::Relaxed);
            tracing::info!("draining");
            let _ = stop_tx.send(true);
        });
        Ok(Control {
            stop: stop_rx,
            admin,
            redirect,
        })
    }

    /// After the accept loops have drained: stops the admin listener and flushes the logs.
    async fn finish(self) {
        for task in [self.admin, self.redirect].into_iter().flatten() {
            let _ = task.await;
        }
        crate::observe::flush_access_log();
        crate::trace::flush(std::time::Duration::from_secs(2));
        tracing::info!("stopped");
    }
}

/// Accepts connections on `listener` and serves them until `stop` turns true, then drains the
/// requests in flight (up to `limits.drain_timeout`).
async fn accept(
    gw: Arc<Gateway>,
    listener: tokio::net::TcpListener,
    admission: Admission,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    // No router or extractor layers between a connection and [`handle_request`], and Nagle off
    // so answers leave at once.
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // hyper's head timeout needs a timer, or it is silently off: a client that sends half a
    // head (or nothing, on an idle keep-alive connection) would hold its socket forever.
    let head_timeout = Duration::from_millis(gw.connections.head_timeout_ms);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(head_timeout);
    let upgrades = gw.has_websockets();
    // Connections that hyper's graceful watcher does not take (the gateway's own HTTP/1.1
    // server's, and those that may upgrade): counted here.
    let unwatched = Arc::new(());
    #[cfg(any(feature = "http2", feature = "https"))]
    let builders = std::sync::Arc::new(Builders {
        stop: stop.clone(),
        unwatched: unwatched.clone(),
        http1: http.clone(),
        #[cfg(feature = "http2")]
        http2: http2_builder(&gw),
    });
    let stopped = stop.clone();
    let stopped = async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Some((stream, peer, ticket)) = admission.admitted(accepted).await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let send_timeout = Duration::from_millis(gw.connections.send_timeout_ms);
                let body_timeout = Duration::from_millis(gw.connections.body_timeout_ms);
                #[cfg(feature = "https")]
                if let Some(tls) = &gw.tls {
                    // TLS first (within the head timeout), then the protocol ALPN chose.
                    let tls = tls.clone();
                    let on = Connection { gw: gw.clone(), peer, head_timeout, body_timeout, send_timeout, builders: builders.clone() };
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let accepted = tokio::time::timeout(head_timeout, tls.accept(stream)).await;
                        if let Ok(Ok((stream, trust))) = accepted {
                            let (_, session) = stream.get_ref();
                            let h2 = session.alpn_protocol() == Some(b"h2");
                            // The handshake verified any certificate the client presented.
                            #[cfg(feature = "mtls")]
                            let cert = session
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|c| Arc::new(crate::client_cert::ClientCert::read(c, trust)));
                            #[cfg(not(feature = "mtls"))]
                            let cert = { let _ = trust; None };
                            on.serve(stream, h2, cert, watcher, Admitted { _ticket: Arc::new(ticket) }).await;
                        }
                    });
                    continue;
                }
                #[cfg(feature = "http2")]
                if gw.http2 {
                    // HTTP/1.1 or HTTP/2 with prior knowledge, told apart by the first bytes
                    // (looked at, not taken): HTTP/1.1 connections are then served exactly as
                    // without `http2`.
                    let on = Connection { gw: gw.clone(), peer, head_timeout, body_timeout, send_timeout, builders: builders.clone() };
                    let watcher = graceful.watcher();
                    let open = unwatched.clone();
                    tokio::spawn(async move {
                        match sniff(&stream, head_timeout).await {
                            Some(false) if !upgrades => {
                                let limits = crate::h1::Timeouts { head: head_timeout, body: body_timeout, send: send_timeout };
                                crate::h1::serve(on.gw, stream, peer, limits).await;
                                drop(open);
                                drop(ticket);
                            }
                            Some(h2) => on.serve(stream, h2, None, watcher, Admitted { _ticket: Arc::new(ticket) }).await,
                            None => {}
                        }
                    });
                    continue;
                }
                if !upgrades {
                    // The gateway's own HTTP/1.1 server (`crate::h1`), for connections that
                    // cannot upgrade.
                    let (gw, open) = (gw.clone(), unwatched.clone());
                    let limits = crate::h1::Timeouts {
                        head: head_timeout,
                        body: body_timeout,
                        send: send_timeout,
                    };
                    tokio::spawn(async move {
                        crate::h1::serve(gw, stream, peer, limits).await;
                        drop(open);
                        drop(ticket);
                    });
                    continue;
                }
                // A WebSocket keeps the connection's place after its upgrade.
                let stream = crate::progress::SendWatch::new(stream, send_timeout);
                let admitted = Admitted { _ticket: Arc::new(ticket) };
                let gw = gw.clone();
                let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let mut req = watched(req, body_timeout);
                    req.extensions_mut().insert(admitted.clone());
                    guarded_owned(gw.clone(), peer, req)
                });
                let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                let (stop, open) = (stop.clone(), unwatched.clone());
                tokio::spawn(async move {
                    until_stopped(conn.with_upgrades(), |c| c.graceful_shutdown(), stop).await;
                    drop(open);
                });
            }
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    // The HTTP/1.1 server's idle connections close now, busy ones after their answer.
    gw.stopping.stop();
    let deadline = Duration::from_millis(gw.connections.drain_timeout_ms);
    let requests = async {
        graceful.shutdown().await;
        while Arc::strong_count(&unwatched) > 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // WebSockets are closed with 1001 (their `$disconnect` routes told) while requests drain,
    // both within the one deadline.
    #[cfg(feature = "websocket")]
    let drained = async {
        tokio::join!(gw.sockets.close_all(deadline), requests);
    };
    #[cfg(not(feature = "websocket"))]
    let drained = requests;
    if tokio::time::timeout(deadline, drained).await.is_err() {
        tracing::warn!(
            drain_timeout_ms = gw.connections.drain_timeout_ms,
            "requests still in flight at the drain deadline; their connections are closed"
        );
    }
}

/// The servers of a listener that takes TLS or HTTP/2.
#[cfg(any(feature = "http2", feature = "https"))]
struct Builders {
    /// The stop signal, for connections that may upgrade.
    stop: tokio::sync::watch::Receiver<bool>,
    /// Held by each connection hyper's graceful watcher does not take, while it is served.
    unwatched: Arc<()>,
    http1: hyper::server::conn::http1::Builder,
    #[cfg(feature = "http2")]
    http2: hyper::server::conn::http2::Builder<hyper_util::rt::TokioExecutor>,
}

/// One connection of a listener that takes TLS or HTTP/2, once TLS (if any) is done and its
/// protocol known.
#[cfg(any(feature = "http2", feature = "https"))]
struct Connection {
    gw: Arc<Gateway>,
    peer: SocketAddr,
    head_timeout: Duration,
    body_timeout: Duration,
    send_timeout: Duration,
    builders: std::sync::Arc<Builders>,
}

#[cfg(any(feature = "http2", feature = "https"))]
impl Connection {
    /// Serves the connection over HTTP/2 (`h2`) or HTTP/1.1; `cert` is the client certificate
    /// the handshake verified, which every request carries.
    async fn serve<S>(
        self,
        stream: S,
        h2: bool,
        cert: Option<Arc<crate::client_cert::ClientCert>>,
        watcher: hyper_util::server::graceful::Watcher,
        admitted: Admitted,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            gw,
            peer,
            head_timeout,
            body_timeout,
            send_timeout,
            builders,
        } = self;
        let upgrades = gw.has_websockets();
        let service =
            hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let mut req = watched(req, body_timeout);
                if let Some(cert) = &cert {
                    req.extensions_mut().insert(cert.clone());
                }
                if upgrades {
                    req.extensions_mut().insert(admitted.clone());
                }
                guarded_owned(gw.clone(), peer, req)
            });
        let stream = crate::progress::SendWatch::new(stream, send_timeout);
        #[cfg(feature = "http2")]
        if h2 {
            // hyper's HTTP/2 server has no idle timer: the connection is closed when the client
            // sends nothing for the head timeout with no request in flight.
            let streams = crate::progress::Streams::default();
            let stream = stream.idle_after(head_timeout, streams.clone());
            let service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    use futures_util::FutureExt;
                    let open = streams.open();
                    // Boxed as a trait object: the compiler cannot otherwise prove the
                    // connection's task `Send` across the answer's lifetime parameter.
                    let answer: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
                        Box::pin(
                            hyper::service::Service::call(&service, req)
                                .map(move |answer| held(answer, open)),
                        );
                    answer
                });
            let conn = builders
                .http2
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = watcher.watch(conn).await;
            return;
        }
        let _ = (h2, head_timeout);
        let conn = builders
            .http1
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        if upgrades {
            let open = builders.unwatched.clone();
            until_stopped(
                conn.with_upgrades(),
                |c| c.graceful_shutdown(),
                builders.stop.clone(),
            )
            .await;
            drop((open, watcher));
            return;
        }
        let _ = watcher.watch(conn).await;
    }
}

/// The HTTP/2 server of a listener with `http2: true`, with the limits a public server needs
/// (RFC 9113; hyper's defaults where they are already these): 128 concurrent streams a
/// connection (nginx's default), a header list no larger than the gateway's header limit, at
/// most 20 streams reset by the client before the gateway accepted them and 1,024 reset for its
/// errors (the rapid-reset defences, CVE-2023-44487), and a ping after the head timeout and 5 s
/// of silence that must be answered within 20 s (later than the idle watch closes a connection
/// with nothing in flight, so that a client's answers to pings never keep an idle connection
/// open).
#[cfg(feature = "http2")]
fn http2_builder(
    gw: &Gateway,
) -> hyper::server::conn::http2::Builder<hyper_util::rt::TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
    b.timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(128)
        // Flow control as Envoy advises for an edge proxy: a client may send 64 KiB of one
        // stream's body, and 1 MiB over all its streams, before the gateway has taken them; the
        // gateway holds at most 64 KiB of an answer the client does not read, per stream.
        .initial_stream_window_size(64 << 10)
        .initial_connection_window_size(1 << 20)
        .max_send_buf_size(64 << 10)
        .max_header_list_size(u32::try_from(gw.limits.headers).unwrap_or(u32::MAX))
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024)
        .keep_alive_interval(
            Duration::from_millis(gw.connections.head_timeout_ms) + Duration::from_secs(5),
        )
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Whether a new connection opens with the HTTP/2 preface (RFC 9113 §3.4), from its first bytes
/// left in the socket for the server that takes it; `None` when the client closes, or sends no
/// decisive byte within `limit`. An HTTP/1.1 request differs from the preface at its first
/// bytes, so HTTP/1.1 clients are told at once.
#[cfg(feature = "http2")]
async fn sniff(stream: &tokio::net::TcpStream, limit: Duration) -> Option<bool> {
    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 24];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        if buf[..n] != PREFACE[..n] {
            return Some(false);
        }
        if n == PREFACE.len() {
            return Some(true);
        }
        // A part of the preface: the rest is on its way (peeking again at once would only see
        // the same bytes).
        if tokio::time::Instant::now() + Duration::from_millis(5) >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Serves plain HTTP on `addr` with a permanent redirect (308, which keeps the method and body)
/// of every request to the same host and target over HTTPS, on `https_port` (left out when it is
/// 443), as nginx's `return 308 https://$host$request_uri`. For gateways whose listener takes
/// TLS only. Its connections count against the gateway's connection limits, answer one request
/// each, and have the API listener's head timeout.
async fn redirect_to_https(
    gw: &Arc<Gateway>,
    addr: SocketAddr,
    https_port: u16,
    admission: Admission,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    #[cfg(feature = "https")]
    let tls = gw.tls.is_some();
    #[cfg(not(feature = "https"))]
    let tls = false;
    if !tls {
        return Err(std::io::Error::other(
            "--redirect-listen redirects to HTTPS: the spec's `x-gateway` has no `tls`",
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_millis(gw.connections.head_timeout_ms))
        .keep_alive(false);
    Ok(tokio::spawn(async move {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let stopped = async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        };
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Some((stream, _, ticket)) = admission.admitted(accepted).await else {
                        continue;
                    };
                    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        std::future::ready(Ok::<_, std::convert::Infallible>(redirect(&req, https_port)))
                    });
                    let conn = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
                    tokio::spawn(async move {
                        let _ = conn.await;
                        drop(ticket);
                    });
                }
                _ = &mut stopped => break,
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
        Ok(())
    }))
}

/// The redirect to HTTPS of a request that came in plain HTTP.
fn redirect<B>(req: &http::Request<B>, https_port: u16) -> Response {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.parse::<http::uri::Authority>().ok());
    let Some(host) = host else {
        return Problem::bad_request("a request to be redirected names its host in `Host`")
            .into_response("-");
    };
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = match https_port {
        443 => format!("https://{}{target}", host.host()),
        port => format!("https://{}:{port}{target}", host.host()),
    };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = http::HeaderValue::from_str(&location) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn handle(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    handle_request(GatewayRef::Owned(gw), peer, req)
        .await
        .map(Body::new)
}

/// The request as the pipeline takes it: a body is watched for progress (`body_timeout`); a
/// request without one costs nothing.
fn watched(req: http::Request<hyper::body::Incoming>, body_timeout: Duration) -> Request {
    if http_body::Body::is_end_stream(req.body()) {
        req.map(Body::new)
    } else {
        req.map(|b| Body::new(crate::progress::BodyWatch::new(Body::new(b), body_timeout)))
    }
}

/// [`handle_request`] with a panic turned into a 500 rather than a dropped connection.
///
/// Made of combinators rather than an `async` block: each `async` level that awaits another
/// future holds a copy of it, and this future is moved once per request.
pub(crate) fn guarded(
    gw: GatewayRef<'_>,
    peer: SocketAddr,
    req: Request,
) -> impl std::future::Future<Output = Result<Response<LoggedBody<'_>>, std::convert::Infallible>> {
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(handle_request(gw, peer, req))
        .catch_unwind()
        .map(|r| {
            Ok(r.unwrap_or_else(|_| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal Server Error",
                    "the gateway failed",
                )
                .into_response("-")
                .map(LoggedBody::plain)
            }))
        })
}

/// An HTTP/2 stream's answer, holding the stream's place until its body is sent.
#[cfg(feature = "http2")]
fn held(
    answer: Result<Response<LoggedBody<'static>>, std::convert::Infallible>,
    open: crate::progress::Open,
) -> Result<
    Response<crate::progress::Holding<LoggedBody<'static>, crate::progress::Open>>,
    std::convert::Infallible,
> {
    answer.map(|resp| resp.map(|b| crate::progress::Holding::new(b, open)))
}

/// [`guarded`] for hyper's servers, whose answers outlive the call: the request holds a
/// reference to the gateway of its own.
fn guarded_owned(
    gw: Arc<Gateway>,
    peer: SocketAddr,
    req: Request,
) -> impl std::future::Future<Output = Result<Response<LoggedBody<'static>>, std::convert::Infallible>>
{
    guarded(GatewayRef::Owned(gw), peer, req)
}

/// Serves `conn` until it ends; once `stop` turns true, shuts it down gracefully (requests in
/// flight finish, idle keep-alive ends) and waits for it. For HTTP/1 connections that may
/// upgrade, which hyper's graceful watcher does not take.
async fn until_stopped<F: std::future::Future>(
    conn: F,
    shutdown: impl FnOnce(std::pin::Pin<&mut F>),
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = stop.wait_for(|s| *s) => {}
    }
    shutdown(conn.as_mut());
    let _ = conn.await;
}

/// A connection's admission, shared by its requests: an upgraded connection (a WebSocket)
/// holds it for as long as it lasts.
#[derive(Clone)]
pub(crate) struct Admitted {
    _ticket: Arc<Ticket>,
}

/// Open connections per client address.
type ClientCounts = Arc<Mutex<HashMap<IpAddr, u64>>>;

/// Counts open client connections, in total and per client address, against the limits. It is
/// touched once when a connection opens and once when it closes, never per request; the accept
/// loops of a gateway share one.
#[derive(Clone)]
struct Admission {
    limits: ConnectionLimits,
    open: Arc<AtomicU64>,
    per_client: Option<ClientCounts>,
}

/// Why a connection is refused.
enum Refusal {
    /// The gateway holds `max_connections` already.
    Full,
    /// This client holds `max_connections_per_client` already.
    Client,
}

/// An admitted connection; dropping it when the connection ends gives its places back.
struct Ticket {
    open: Arc<AtomicU64>,
    client: Option<(IpAddr, ClientCounts)>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let Some((ip, map)) = &self.client {
            let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(ip);
                }
            }
        }
    }
}

impl Admission {
    fn new(limits: ConnectionLimits) -> Self {
        Admission {
            limits,
            open: Arc::new(AtomicU64::new(0)),
            per_client: limits.max_per_client.map(|_| Arc::default()),
        }
    }

    /// A connection `accept` gave, with its ticket; `None` when accepting failed (after a pause:
    /// out of file descriptors and the like) or the connection is refused (answered and closed
    /// in a task of its own).
    async fn admitted(
        &self,
        accepted: std::io::Result<(tokio::net::TcpStream, SocketAddr)>,
    ) -> Option<(tokio::net::TcpStream, SocketAddr, Ticket)> {
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                return None;
            }
        };
        match self.admit(peer.ip()) {
            Ok(ticket) => Some((stream, peer, ticket)),
            Err(refusal) => {
                tokio::spawn(refuse(stream, refusal));
                None
            }
        }
    }

    fn admit(&self, ip: IpAddr) -> Result<Ticket, Refusal> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.limits.max_connections {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::Full);
        }
        let client = match (&self.per_client, self.limits.max_per_client) {
            (Some(map), Some(max)) => {
                let mut held = map.lock().unwrap_or_else(|e| e.into_inner());
                let n = held.entry(ip).or_insert(0);
                if *n >= max {
                    drop(held);
                    self.open.fetch_sub(1, Ordering::Relaxed);
                    return Err(Refusal::Client);
                }
                *n += 1;
                Some((ip, map.clone()))
            }
            _ => None,
        };
        Ok(Ticket {
            open: self.open.clone(),
            client,
        })
    }
}

/// Answers a refused connection with a short problem document, then closes it, without reading
/// what the client sends (at most one second spent on it).
async fn refuse(stream: tokio::net::TcpStream, refusal: Refusal) {
    use tokio::io::AsyncWriteExt;
    let (status, detail) = match refusal {
        Refusal::Full => (
            "503 Service Unavailable",
            "the gateway holds as many connections as it takes; try again",
        ),
        Refusal::Client => (
            "429 Too Many Requests",
            "this address holds as many connections as the gateway allows one client",
        ),
    };
    let body = format!(
        "{{\"type\":\"about:blank\",\"title\":\"{}\",\"status\":{},\"detail\":\"{detail}\"}}",
        &status[4..],
        &status[..3]
    );
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/problem+json\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = stream;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        use tokio::io::AsyncReadExt;
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sent, so closing does not reset the connection before it has
        // read the answer.
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}
