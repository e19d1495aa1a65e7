//! The API listener: hyper's HTTP/1.1 server straight on the socket, one task a connection,
//! graceful shutdown on SIGTERM or Ctrl-C, SIGHUP to re-read the API key file.
//!
//! It owns accepting and stopping; what happens to a request is [`crate::pipeline`].

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::StatusCode;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::observe::LoggedBody;
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
        let admin = match config.admin_listen {
            Some(addr) => Some(crate::admin::spawn(&gw, addr, stop_rx.clone()).await?),
            None => None,
        };
        tracing::info!(
            listen = %listener.local_addr()?,
            admin = %config
                .admin_listen
                .map(|a| a.to_string())
                .unwrap_or_else(|| "off".into()),
            stage = %gw.stage,
            "listening"
        );
        gw.ready.store(true, Ordering::Relaxed);
        let ready = gw.ready.clone();
        #[cfg(unix)]
        if let Some(keys) = gw.auth.as_ref().map(|a| a.keys().clone()) {
            // SIGHUP re-reads the API key file; a broken file keeps the keys already loaded.
            if let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        match keys.reload() {
                            Ok(n) => tracing::info!(keys = n, "API keys reloaded"),
                            Err(e) => tracing::warn!(
                                error = %e,
                                "API keys not reloaded; the loaded keys stay"
                            ),
                        }
                    }
                });
            }
        }
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            ready.store(false, Ordering::Relaxed);
            tracing::info!("draining");
            let _ = stop_tx.send(true);
        });
        // hyper's HTTP/1 server straight on the listener: no router or extractor layers between a
        // connection and [`handle_request`], and Nagle off so answers leave at once.
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let stopped = rx.wait_for(|s| *s);
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: wait, then go on accepting.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let gw = gw.clone();
                    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        guarded(gw.clone(), peer, req.map(Body::new))
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                _ = &mut stopped => break,
            }
        }
        drop(listener);
        graceful.shutdown().await;
        if let Some(a) = admin {
            let _ = a.await;
        }
        crate::observe::flush_access_log();
        crate::trace::flush(std::time::Duration::from_secs(2));
        tracing::info!("stopped");
        Ok(())
    }
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
    handle_request(gw, peer, req).await.map(Body::new)
}

/// [`handle_request`] with a panic turned into a 500 rather than a dropped connection.
///
/// Made of combinators rather than an `async` block: each `async` level that awaits another
/// future holds a copy of it, and this future is moved once per request.
fn guarded(
    gw: Arc<Gateway>,
    peer: SocketAddr,
    req: Request,
) -> impl std::future::Future<Output = Result<Response<LoggedBody>, std::convert::Infallible>> {
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
