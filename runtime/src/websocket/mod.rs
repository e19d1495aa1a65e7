//! WebSocket APIs (`x-gateway.websocket` on a path item; feature `websocket`), as API
//! Gateway's: the gateway holds the client's socket and the backend never does.
//!
//! - The handshake is the path item's `GET`: it goes through the route, auth and throttle
//!   phases like any request (API keys, JWT, authorizers, usage plans, parameters), then the
//!   `$connect` route's integration decides (a non-2xx answer refuses the connection with its
//!   status). Then `101 Switching Protocols`, and [`connection`] serves the socket.
//! - Each message picks a route by `route_selection` (`$request.body.action`: a member of the
//!   JSON message), else `$default`; it is validated against the route's `schema`, throttled,
//!   and given to the route's integration as AWS's WebSocket event. With `respond: true`, the
//!   integration's answer is sent back to the client.
//! - The `@connections` management API ([`registry`]) reaches a client from the backend: on the
//!   admin listener, `POST` sends, `GET` describes, `DELETE` disconnects.
//! - `$disconnect` gets the close code and reason when the client, the gateway (idle, too long,
//!   too big, a management `DELETE`, shutdown) or the network ends the connection.

#[cfg(feature = "redis")]
pub(crate) mod cluster;
pub(crate) mod connection;
pub(crate) mod event;
pub(crate) mod registry;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};

use crate::pipeline::Exchange;
use crate::problem::Problem;
use crate::stage::{Stage, StartError};

pub use registry::Registry;

/// A WebSocket API, as generated from the spec.
#[derive(Debug)]
pub struct WebSocketDef {
    /// `route_selection` as the JSON pointer tokens of `$request.body.…`; empty: every message
    /// goes to `$default`.
    pub selection: &'static [&'static str],
    /// The routes, `$connect`, `$disconnect` and `$default` among them when the spec has them.
    pub routes: &'static [WsRouteDef],
    /// Its limits.
    pub limits: WsLimits,
    /// `message_throttle`: a bucket of messages per connection.
    pub per_connection: Option<crate::throttle::Rate>,
}

/// One route of a WebSocket API.
#[derive(Debug)]
pub struct WsRouteDef {
    /// `$connect`, `$disconnect`, `$default` or the value `route_selection` selects it by.
    pub key: &'static str,
    /// How its messages are served.
    pub target: WsTargetDef,
    /// `respond: true`: the integration's answer is sent back to the client.
    pub respond: bool,
    /// `schema`: what its messages must be.
    pub schema: Option<crate::validate::input::SchemaFn>,
    /// `throttle`: a bucket of its messages, for all connections (or per client address).
    pub throttle: Option<crate::throttle::Rate>,
}

/// A route's integration.
#[derive(Debug)]
pub enum WsTargetDef {
    /// `mock`: answers with `body` (with `respond: true`).
    Mock {
        /// The answer.
        body: &'static str,
    },
    /// `http`: the event is `POST`ed to `url`; the answer's body is the reply.
    Http {
        /// The URL (interpolated at start).
        url: &'static str,
        /// The answer's deadline.
        timeout_ms: u64,
    },
    /// `lambda`: the function is invoked with the event; its `body` is the reply.
    Lambda {
        /// The function.
        def: crate::lambda::LambdaDef,
        /// The invocation's deadline.
        timeout_ms: u64,
    },
}

/// A WebSocket API's limits (`websocket.limits`), AWS's by default.
#[derive(Debug, Clone, Copy)]
pub struct WsLimits {
    /// The largest message, in bytes (128 KiB); a larger one closes the connection with 1009.
    pub message: usize,
    /// The largest frame, in bytes (32 KiB); a larger one closes the connection with 1009.
    pub frame: usize,
    /// How long a connection may send nothing before it is closed (10 minutes), in ms.
    pub idle_ms: u64,
    /// How long a connection may last (2 hours), in ms.
    pub max_ms: u64,
    /// Open connections at most from one client address (`None`: no limit).
    pub per_client: Option<u32>,
}

/// A WebSocket API ready to serve, for one stage.
pub struct Api {
    def: &'static WebSocketDef,
    /// The path it is served at (`/chat`).
    pub(crate) path: &'static str,
    targets: Vec<Target>,
    /// The routes' message buckets (by route index).
    throttle: std::sync::OnceLock<crate::throttle::Throttler>,
    /// The gateway's throttler, for the usage plans of callers of one.
    plans: std::sync::OnceLock<Arc<crate::throttle::Throttler>>,
    pub(crate) stage: Arc<str>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("path", &self.path).finish()
    }
}

type HttpClient =
    hyper_util::client::legacy::Client<crate::tls::Connector, http_body_util::Full<Bytes>>;

/// A route's integration, ready.
enum Target {
    Mock(Bytes),
    Http(Box<HttpTarget>),
    #[cfg(feature = "lambda")]
    Lambda {
        function: Arc<crate::lambda::Function>,
        timeout: Duration,
    },
}

/// An `http` route's upstream.
struct HttpTarget {
    url: http::Uri,
    client: HttpClient,
    timeout: Duration,
}

/// What an integration said.
pub(crate) struct Answer {
    /// Its status (a Lambda function's `statusCode`; 200 when it gives none).
    pub(crate) status: StatusCode,
    /// Headers it set (for `$connect`: `Sec-WebSocket-Protocol`).
    pub(crate) headers: http::HeaderMap,
    /// Its body.
    pub(crate) body: Bytes,
}

impl Api {
    /// Prepares the API at `path` for `stage`: URLs interpolated, functions found.
    pub fn new(
        stage: &Stage,
        def: &'static WebSocketDef,
        path: &'static str,
    ) -> Result<Api, StartError> {
        let mut targets = Vec::with_capacity(def.routes.len());
        for r in def.routes {
            let what = format!("the integration of WebSocket route `{}` of {path}", r.key);
            targets.push(match &r.target {
                WsTargetDef::Mock { body } => Target::Mock(Bytes::from_static(body.as_bytes())),
                WsTargetDef::Http { url, timeout_ms } => {
                    let url = stage.http_url(url, &what)?;
                    let client = hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build(crate::tls::connector());
                    Target::Http(Box::new(HttpTarget {
                        url,
                        client,
                        timeout: Duration::from_millis(*timeout_ms),
                    }))
                }
                #[cfg(feature = "lambda")]
                WsTargetDef::Lambda { def, timeout_ms } => Target::Lambda {
                    function: crate::lambda::function(def, stage, &what)?,
                    timeout: Duration::from_millis(*timeout_ms),
                },
                #[cfg(not(feature = "lambda"))]
                WsTargetDef::Lambda { .. } => {
                    return Err(StartError::Invalid(format!(
                        "{what} is a Lambda function, and this gateway was built without Lambda"
                    )))
                }
            });
        }
        Ok(Api {
            def,
            path,
            targets,
            throttle: std::sync::OnceLock::new(),
            plans: std::sync::OnceLock::new(),
            stage: Arc::from(stage.name.as_str()),
        })
    }

    /// Makes the routes' message buckets, counting refusals in the gateway's `metrics`. Usage
    /// plans are the gateway's throttler's ([`Api::share_plans`]).
    pub(crate) fn attach(&self, metrics: &Arc<crate::observe::Metrics>) {
        let def = self.def;
        if def.routes.iter().any(|r| r.throttle.is_some()) {
            let _ = self.throttle.set(crate::throttle::Throttler::new(
                &[],
                def.routes.iter().map(|r| (r.key, r.throttle)).collect(),
                None,
                None,
                metrics.clone(),
            ));
        }
    }

    /// Counts messages against the usage plans of the gateway's throttler: a caller's plan
    /// throttle and quota cover its handshakes, its messages and its HTTP requests together
    /// (and, with Redis, on every instance).
    pub(crate) fn share_plans(&self, throttler: Arc<crate::throttle::Throttler>) {
        let _ = self.plans.set(throttler);
    }

    /// Admits a message of `conn` to route `index`: the caller's usage plan (throttle and
    /// quota), then the route's bucket.
    pub(crate) async fn admit(
        &self,
        conn: &event::Connection,
        index: usize,
    ) -> Result<(), Problem> {
        let route = &self.def.routes[index];
        let caller = conn
            .identity
            .as_ref()
            .and_then(|i| i.plan.as_ref())
            .map(|(p, c)| (p.as_str(), c.as_str()));
        if let (Some(t), Some(caller)) = (self.plans.get(), caller) {
            Box::pin(t.admit_plan(route.key, caller)).await?;
        }
        if let Some(t) = self.throttle.get() {
            let client = crate::throttle::Client {
                ip: conn.source_ip,
                cert: None,
            };
            if t.applies(index, None) {
                Box::pin(t.admit(index, route.key, None, client)).await?;
            }
        }
        Ok(())
    }

    /// The largest message its clients may send, and the management API may post.
    pub(crate) fn message_limit(&self) -> usize {
        self.def.limits.message
    }

    /// The index of the route with this key.
    fn route(&self, key: &str) -> Option<usize> {
        self.def.routes.iter().position(|r| r.key == key)
    }

    /// Gives `event` to route `index`'s integration.
    pub(crate) async fn invoke(
        &self,
        index: usize,
        event: &serde_json::Value,
    ) -> Result<Answer, String> {
        let payload = Bytes::from(event.to_string());
        match &self.targets[index] {
            Target::Mock(body) => Ok(Answer {
                status: StatusCode::OK,
                headers: http::HeaderMap::new(),
                body: body.clone(),
            }),
            Target::Http(http) => {
                let HttpTarget {
                    url,
                    client,
                    timeout,
                } = &**http;
                let mut req = http::Request::post(url.clone())
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(http_body_util::Full::new(payload))
                    .map_err(|e| e.to_string())?;
                let context = &event["requestContext"];
                for (name, key) in [
                    ("x-gateway-connection-id", "connectionId"),
                    ("x-gateway-route-key", "routeKey"),
                    ("x-gateway-event-type", "eventType"),
                    ("x-request-id", "requestId"),
                ] {
                    if let Some(v) = context[key]
                        .as_str()
                        .and_then(|v| HeaderValue::from_str(v).ok())
                    {
                        req.headers_mut().insert(name, v);
                    }
                }
                let resp = tokio::time::timeout(*timeout, client.request(req))
                    .await
                    .map_err(|_| "timed out".to_string())?
                    .map_err(|e| e.to_string())?;
                let (parts, body) = resp.into_parts();
                let body = http_body_util::Limited::new(body, self.def.limits.message.max(1 << 20));
                let body = tokio::time::timeout(*timeout, http_body_util::BodyExt::collect(body))
                    .await
                    .map_err(|_| "timed out".to_string())?
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                Ok(Answer {
                    status: parts.status,
                    headers: parts.headers,
                    body,
                })
            }
            #[cfg(feature = "lambda")]
            Target::Lambda { function, timeout } => {
                use crate::lambda::Failure;
                let answer = match function.invoke(payload, *timeout).await {
                    Ok(a) => a,
                    Err(Failure::Function(e)) => {
                        return Err(String::from_utf8_lossy(&e).into_owned())
                    }
                    Err(Failure::Unavailable(e)) => return Err(e),
                    Err(Failure::Timeout) => return Err("timed out".into()),
                };
                event::lambda_answer(&answer)
            }
        }
    }
}

/// Whether a request asks for a WebSocket (RFC 6455 §4.2.1): `Upgrade: websocket` and
/// `Connection: upgrade`. The version and key are checked by [`accept`].
fn asks_upgrade(req: &Request) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(header::UPGRADE, "websocket") && has_token(header::CONNECTION, "upgrade")
}

/// Whether the client offered subprotocol `p` (`Sec-WebSocket-Protocol`).
fn offered(req: &Request, p: &HeaderValue) -> bool {
    let Ok(p) = p.to_str() else {
        return false;
    };
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == p)
}

/// 426 with what a WebSocket handshake needs (RFC 6455 §4.4).
fn upgrade_required(detail: &str) -> Problem {
    let mut p = Problem::new(StatusCode::UPGRADE_REQUIRED, "Upgrade Required", detail);
    p.headers
        .push((header::UPGRADE, HeaderValue::from_static("websocket")));
    p.headers.push((
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    ));
    p
}

/// The handshake of a WebSocket route, once the request passed authentication, throttling and
/// validation: checked, `$connect` asked, answered `101`, and the socket served from then on.
pub(crate) async fn accept(
    x: &Exchange<'_, '_>,
    api: &Arc<Api>,
    mut req: Request,
) -> Result<Response, Problem> {
    if req.method() != http::Method::GET
        || req.version() != http::Version::HTTP_11
        || !asks_upgrade(&req)
    {
        return Err(upgrade_required(
            "this is a WebSocket endpoint: connect with an HTTP/1.1 WebSocket handshake",
        ));
    }
    if req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(upgrade_required("only WebSocket version 13 is spoken"));
    }
    let key = match req
        .headers()
        .get_all(header::SEC_WEBSOCKET_KEY)
        .iter()
        .collect::<Vec<_>>()[..]
    {
        [key] if valid_key(key.as_bytes()) => key.clone(),
        _ => {
            return Err(Problem::bad_request(
                "`Sec-WebSocket-Key` must be one base64 value of 16 bytes",
            ))
        }
    };
    // With `cors`, a page of another site cannot open a socket with its visitor's cookies
    // (cross-site WebSocket hijacking): browsers send `Origin`, and it must be allowed.
    if let (Some(cors), Some(origin)) = (x.route.cors, req.headers().get(header::ORIGIN)) {
        if cors.allow(origin).is_none() {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "this origin may not open a WebSocket here (`cors.allow_origins`)",
            ));
        }
    }
    if req
        .extensions()
        .get::<hyper::upgrade::OnUpgrade>()
        .is_none()
    {
        return Err(upgrade_required("this connection cannot be upgraded"));
    }
    let registry = &x.gw.sockets;
    let Some(place) = registry.admit(x.client, api.def.limits.per_client) else {
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "this client holds as many WebSocket connections as it may",
        ));
    };
    let id = registry::new_id();
    let connected = std::time::SystemTime::now();
    let identity = req.extensions().get::<crate::auth::Identity>().cloned();
    let (headers, query) = event::forwarded(x, &req);
    let context = Arc::new(event::Connection {
        id: id.clone(),
        api: api.clone(),
        stage: api.stage.clone(),
        domain: req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost")
            .to_string(),
        source_ip: x.client,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string),
        connected_at: connected,
        identity,
        headers,
        query,
        stage_variables: x.gw.stage_variables.clone(),
    });
    let mut protocol = None;
    if let Some(index) = api.route("$connect") {
        let e = context.event(event::Kind::Connect, x.id, None);
        match api.invoke(index, &e).await {
            Ok(answer) if answer.status.is_success() => {
                // A subprotocol the client offered (RFC 6455 §4.2.2): any other would make
                // the client fail the connection.
                protocol = answer
                    .headers
                    .get(header::SEC_WEBSOCKET_PROTOCOL)
                    .filter(|p| offered(&req, p))
                    .cloned();
            }
            Ok(answer) => {
                let status = if answer.status.is_client_error() || answer.status.is_server_error() {
                    answer.status
                } else {
                    StatusCode::FORBIDDEN
                };
                return Err(Problem::new(
                    status,
                    status.canonical_reason().unwrap_or("Refused"),
                    "the $connect route refused the connection",
                ));
            }
            Err(why) => {
                tracing::warn!(route = "$connect", api = api.path, error = %why, "the WebSocket integration failed");
                return Err(Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "Bad Gateway",
                    "the $connect route's integration failed",
                ));
            }
        }
    }
    let upgrade = hyper::upgrade::on(&mut req);
    let admitted = req.extensions_mut().remove::<crate::server::Admitted>();
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let gw_metrics = x.gw.metrics.clone();
    let handle = registry.insert(&context);
    registry.joined(&context).await;
    let stop = registry.stopping();
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                connection::serve(upgraded, context, handle, gw_metrics, stop).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "the WebSocket upgrade failed");
                handle.forget().await;
            }
        }
        drop((place, admitted));
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = protocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    Ok(resp)
}

/// A `Sec-WebSocket-Key`: base64 of 16 bytes (RFC 6455 §4.2.1).
fn valid_key(key: &[u8]) -> bool {
    use base64::Engine;
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|k| k.len() == 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(valid_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZQ"));
        assert!(!valid_key(b"dGhlIHNhbXBsZSBub25jZXg="));
        assert!(!valid_key(b"not base64 at all!!!!!!="));
        // RFC 6455 §1.3's example.
        assert_eq!(
            tungstenite::handshake::derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
