//! The admin listener: `/metrics` (Prometheus), `/healthz` (the process is up) and `/readyz`
//! (it takes requests; 503 while starting and draining), and for WebSocket APIs the
//! `@connections` management API. Off unless `--admin-listen` is given.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{header, StatusCode};

use crate::gateway::Gateway;

impl Gateway {
    /// The admin router: `/metrics`, `/healthz`, `/readyz`.
    pub fn admin_router(self: &Arc<Self>) -> axum::Router {
        let gw = self.clone();
        let ready = self.ready.clone();
        let router = axum::Router::new();
        #[cfg(feature = "websocket")]
        let router = match self.websocket_message_limit() {
            Some(limit) => crate::websocket::registry::routes(
                router,
                self.sockets.clone(),
                self.admin_token.clone(),
                limit,
            ),
            None => router,
        };
        router
            .route(
                "/metrics",
                axum::routing::get(move || async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        gw.metrics.render(),
                    )
                }),
            )
            .route(
                "/healthz",
                axum::routing::get(|| async {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        "{\"status\":\"ok\"}",
                    )
                }),
            )
            .route(
                "/readyz",
                axum::routing::get(move || async move {
                    if ready.load(Ordering::Relaxed) {
                        (
                            StatusCode::OK,
                            [(header::CONTENT_TYPE, "application/json")],
                            "{\"status\":\"ready\"}",
                        )
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [(header::CONTENT_TYPE, "application/json")],
                            "{\"status\":\"not ready\"}",
                        )
                    }
                }),
            )
    }
}

/// Binds `addr` and serves the admin router until `stop` turns true.
pub(crate) async fn spawn(
    gw: &Arc<Gateway>,
    addr: SocketAddr,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = gw.admin_router();
    Ok(tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    }))
}
