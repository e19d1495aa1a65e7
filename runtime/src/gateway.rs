//! The gateway: the request pipeline around the generated route tree, the servers, and the
//! binary's `main`.
//!
//! Per request: request id → header limit → path normalisation → route lookup (404, 405 with
//! `Allow`, automatic OPTIONS, CORS preflights) → authentication → throttles and quotas (usage
//! plan, route, stage) → body limit → validation → response cache → integration → response with
//! `x-request-id`, whose body writes the access log line and the metrics when it ends.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::Response;
use http::{header, HeaderValue, Method, StatusCode};

use crate::config::{Command, Config};
use crate::integration::Integration;
use crate::observe::{request_id, AccessRecord, LoggedBody, Metrics};
use crate::problem::Problem;
use crate::router::{Lookup, Params};
use crate::stage::{Stage, StartError};

/// Header names made once, not parsed per request.
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The generated route decision tree: method, normalised segments, captured parameters.
pub type RouteFn = for<'a> fn(&str, &[&'a str], &mut Params<'a>) -> Lookup;

/// One route.
#[derive(Debug, Clone)]
pub struct RouteDef {
    /// `GET /orders/{orderId}`.
    pub key: &'static str,
    /// `/orders/{orderId}`.
    pub template: &'static str,
    /// The path parameters' names, in template order.
    pub params: &'static [&'static str],
    /// The operation's effective `security`: alternatives (OR) of requirements (AND). Empty:
    /// no security. A requirement with no schemes lets anyone in.
    pub security: &'static [crate::auth::Requirement],
    /// The operation's `plans`: only API keys of these usage plans may call (empty: any).
    pub plans: &'static [&'static str],
    /// How it is served.
    pub integration: Integration,
    /// What is validated, compiled from the spec's schemas.
    pub validation: Option<&'static crate::validate::input::RouteValidation>,
    /// Its CORS settings.
    pub cors: Option<&'static crate::cors::CorsDef>,
    /// Its own bucket (`throttle` on the operation, its path or `defaults`).
    pub throttle: Option<crate::throttle::Rate>,
    /// Its response cache.
    pub cache: Option<&'static crate::cache::CacheDef>,
}

impl RouteDef {
    /// Whether a request to this route goes straight to its integration: no authentication,
    /// throttling, validation or cache.
    fn is_plain(&self, gw: &Gateway, index: usize) -> bool {
        let cached = cfg!(feature = "cache") && self.cache.is_some();
        self.security.is_empty()
            && self.validation.is_none_or(|v| v.checks_nothing())
            && !cached
            && !gw.throttle.as_ref().is_some_and(|t| t.applies(index, None))
    }
}

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub body: u64,
    /// Largest total of request header names and values, in bytes.
    pub headers: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body: 10 << 20,
            headers: 64 << 10,
        }
    }
}

/// A gateway ready to serve: the generated routes and tree, for one stage.
pub struct Gateway {
    stage: Arc<str>,
    routes: Vec<RouteDef>,
    route: RouteFn,
    limits: Limits,
    auth: Option<crate::auth::Auth>,
    response_mode: Option<crate::stage::ResponseMode>,
    responses: &'static [crate::problem::CustomResponse],
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    throttle: Option<crate::throttle::Throttler>,
    trusted: Vec<crate::throttle::Cidr>,
    #[cfg(feature = "cache")]
    cache: Option<crate::cache::ResponseCache>,
    stage_throttle: Option<crate::throttle::Rate>,
    #[cfg(feature = "proxy")]
    client: crate::gateway::proxy::Client,
}

impl Gateway {
    /// Builds a gateway.
    pub fn new(stage: &Stage, routes: Vec<RouteDef>, route: RouteFn, limits: Limits) -> Self {
        Gateway {
            stage: Arc::from(stage.name.as_str()),
            routes,
            route,
            limits,
            auth: None,
            response_mode: stage.validate_responses,
            responses: &[],
            metrics: Arc::new(Metrics::default()),
            ready: Arc::new(AtomicBool::new(false)),
            throttle: None,
            trusted: Vec::new(),
            #[cfg(feature = "cache")]
            cache: None,
            stage_throttle: stage.throttle,
            #[cfg(feature = "proxy")]
            client: proxy::client(),
        }
    }

    /// Puts the spec's `gateway_responses` in place of the gateway's own error answers.
    pub fn with_responses(mut self, responses: &'static [crate::problem::CustomResponse]) -> Self {
        self.responses = responses;
        self
    }

    /// Adds throttles, quotas, the response cache and the trusted proxies of `def`, with state
    /// in memory or in Redis as `def.state` says (connected on first use).
    pub fn with_traffic(
        mut self,
        def: &'static crate::throttle::TrafficDef,
        stage: &Stage,
    ) -> Result<Self, StartError> {
        self.trusted = crate::throttle::parse_trusted(def.trusted_proxies)?;
        let shared = crate::state::Shared::new(&def.state, stage, self.metrics.clone())?;
        let throttled = self.stage_throttle.is_some()
            || self.routes.iter().any(|r| r.throttle.is_some())
            || def
                .plans
                .iter()
                .any(|p| p.throttle.is_some() || p.quota.is_some());
        if throttled {
            self.throttle = Some(crate::throttle::Throttler::new(
                def.plans,
                self.routes.iter().map(|r| (r.key, r.throttle)).collect(),
                self.stage_throttle,
                shared.clone(),
                self.metrics.clone(),
            ));
        }
        #[cfg(feature = "cache")]
        if self.routes.iter().any(|r| r.cache.is_some()) {
            self.cache = Some(crate::cache::ResponseCache::new(
                def.state.cache_size,
                self.routes.len(),
                shared,
                self.metrics.clone(),
            ));
        }
        #[cfg(not(feature = "cache"))]
        let _ = shared;
        Ok(self)
    }

    /// The client's address: the TCP peer, or what trusted proxies say it is.
    fn client_address(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        crate::throttle::client_address(peer, headers, &self.trusted)
    }

    /// Adds authentication (see [`crate::auth`]); without it, routes that require security
    /// answer 401.
    pub fn with_auth(mut self, auth: crate::auth::Auth) -> Self {
        self.auth = Some(auth);
        self
    }

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

    /// The admin router: `/metrics`, `/healthz`, `/readyz`.
    pub fn admin_router(self: &Arc<Self>) -> axum::Router {
        let gw = self.clone();
        let ready = self.ready.clone();
        axum::Router::new()
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

    /// Serves until SIGTERM or Ctrl-C, then drains in-flight requests and returns.
    pub async fn serve(self, config: &Config) -> std::io::Result<()> {
        let gw = Arc::new(self);
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let admin = match config.admin_listen {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr).await?;
                let mut rx = stop_rx.clone();
                let app = gw.admin_router();
                Some(tokio::spawn(async move {
                    axum::serve(l, app)
                        .with_graceful_shutdown(async move {
                            let _ = rx.wait_for(|s| *s).await;
                        })
                        .await
                }))
            }
            None => None,
        };
        eprintln!(
            "{{\"message\":\"listening\",\"listen\":\"{}\",\"admin\":\"{}\",\"stage\":\"{}\"}}",
            listener.local_addr()?,
            config
                .admin_listen
                .map(|a| a.to_string())
                .unwrap_or_else(|| "off".into()),
            gw.stage
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
                            Ok(n) => eprintln!(
                                "{}",
                                serde_json::json!({"message": "API keys reloaded", "keys": n})
                            ),
                            Err(e) => eprintln!(
                                "{}",
                                serde_json::json!({"message": "API keys not reloaded; the loaded keys stay", "error": e})
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
            eprintln!("{{\"message\":\"draining\"}}");
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
                            eprintln!("{}", serde_json::json!({"message": "accept failed", "error": e.to_string()}));
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
        eprintln!("{{\"message\":\"stopped\"}}");
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

/// One request, from its arrival to its answer.
async fn handle_request(gw: Arc<Gateway>, peer: SocketAddr, req: Request) -> Response<LoggedBody> {
    let start = Instant::now();
    gw.metrics.start();
    let mut req = req;
    // The id travels upstream in the request's own header: made once, reused as is.
    let id_value = request_id(req.headers());
    let keep = req.headers().get(X_REQUEST_ID) == Some(&id_value)
        && req.headers().get_all(X_REQUEST_ID).iter().nth(1).is_none();
    if !keep {
        req.headers_mut().insert(X_REQUEST_ID, id_value.clone());
    }
    let client = gw.client_address(peer.ip(), req.headers());
    let mut record = AccessRecord {
        request_id: id_value.clone(),
        ip: client,
        method: req.method().clone(),
        route_key: "-",
        route: "-",
        uri: req.uri().clone(),
        protocol: match req.version() {
            http::Version::HTTP_10 => "HTTP/1.0",
            http::Version::HTTP_2 => "HTTP/2.0",
            _ => "HTTP/1.1",
        },
        stage: gw.stage.clone(),
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
        start,
        integration_latency: None,
        status: 0,
    };
    // `request_id` admits printable ASCII only, so the id is always text.
    let id = id_value.to_str().unwrap_or("-");
    let mut resp = match dispatch(&gw, req, peer, client, id, &mut record).await {
        Ok(r) => r,
        Err(p) => p.into_custom_response(id, gw.responses),
    };
    resp.headers_mut().insert(X_REQUEST_ID, id_value.clone());
    record.status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, LoggedBody::new(body, record, gw.metrics.clone()))
}

async fn dispatch(
    gw: &Gateway,
    req: Request,
    peer: SocketAddr,
    client: IpAddr,
    id: &str,
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
    let header_bytes: u64 = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().len() + v.len()) as u64)
        .sum();
    if header_bytes > gw.limits.headers {
        return Err(Problem::headers_too_large(gw.limits.headers));
    }
    // The request is moved into the integration later, so the path is copied out of it. Most
    // paths need no decoding: their segments are then borrowed from that copy.
    let raw_path = req.uri().path().to_owned();
    let decoded;
    let segs: crate::path::Segments<'_> = match crate::path::plain_segments(&raw_path) {
        Some(segs) => segs,
        None => {
            decoded =
                crate::path::normalize(&raw_path).map_err(|e| Problem::bad_request(e.message()))?;
            decoded.iter().map(|s| s.as_ref()).collect()
        }
    };
    let mut params = Params::default();
    // A CORS preflight is answered here, before authentication, from the CORS settings of the
    // route the browser asks about.
    if req.method() == Method::OPTIONS && req.headers().contains_key(header::ORIGIN) {
        if let Some(method) = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
        {
            let mut probe = Params::default();
            if let Lookup::Found(i) = (gw.route)(method, &segs, &mut probe) {
                if let Some(cors) = gw.routes[i].cors {
                    let (status, headers) = cors.preflight(req.headers());
                    record.route_key = gw.routes[i].key;
                    record.route = gw.routes[i].template;
                    let mut r = Response::new(Body::empty());
                    *r.status_mut() = status;
                    *r.headers_mut() = headers;
                    return Ok(r);
                }
            }
        }
    }
    let index = match (gw.route)(req.method().as_str(), &segs, &mut params) {
        Lookup::Found(i) => i,
        Lookup::MethodNotAllowed(allow) if req.method() == Method::OPTIONS => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            return Ok(r);
        }
        Lookup::MethodNotAllowed(allow) => {
            return Err(Problem::method_not_allowed(req.method(), allow))
        }
        Lookup::NotFound => return Err(Problem::not_found(req.uri().path())),
    };
    let route = &gw.routes[index];
    record.route_key = route.key;
    record.route = route.template;
    let origin = route
        .cors
        .and_then(|_| req.headers().get(header::ORIGIN).cloned());
    let at = Hop {
        gw,
        route,
        index,
        peer,
        client,
        id,
    };
    // A route with nothing to check before its integration skips the pipeline's stages (and
    // their futures): only the size limit applies.
    let result = if route.is_plain(gw, index) {
        match check_length(gw, &req) {
            Ok(()) => serve_integration(gw, route, req, peer, id, &params, &segs, record).await,
            Err(p) => Err(p),
        }
    } else {
        Box::pin(serve_route(&at, req, &params, &segs, record)).await
    };
    match route.cors {
        // Every answer of a CORS route carries its headers, errors included, so a browser
        // script can read why it was refused.
        Some(cors) => {
            let mut resp = result.unwrap_or_else(|p| p.into_custom_response(id, gw.responses));
            cors.decorate(resp.headers_mut(), origin.as_ref());
            Ok(resp)
        }
        None => result,
    }
}

/// Where a request is in the gateway: the route it matched and who sent it.
struct Hop<'a> {
    gw: &'a Gateway,
    route: &'a RouteDef,
    index: usize,
    peer: SocketAddr,
    client: IpAddr,
    id: &'a str,
}

async fn serve_route(
    at: &Hop<'_>,
    req: Request,
    params: &Params<'_>,
    segs: &[&str],
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
    let (gw, route, id) = (at.gw, at.route, at.id);
    let mut req = req;
    if !route.security.is_empty() {
        let creds = crate::auth::Credentials {
            headers: req.headers(),
            query: req.uri().query(),
            method: req.method().as_str(),
            path: req.uri().path(),
            route_key: route.key,
            stage: &gw.stage,
            source_ip: at.client,
            request_id: id,
        };
        let verdict = match &gw.auth {
            Some(auth) => Box::pin(auth.authorize(route.security, route.plans, &creds)).await,
            None => Err(crate::auth::Denial::Unauthenticated(
                "Bearer",
                "this operation requires authentication".into(),
            )),
        };
        match verdict {
            Ok(identity) => {
                req.extensions_mut().insert(identity);
            }
            Err(denial) => return Err(denial.problem()),
        }
    }
    let mut allowance = None;
    if let Some(t) = &gw.throttle {
        let identity = req.extensions().get::<crate::auth::Identity>();
        let caller = identity
            .and_then(|i| i.plan.as_ref())
            .map(|(p, c)| (p.as_str(), c.as_str()));
        if t.applies(at.index, caller) {
            allowance = Box::pin(t.admit(at.index, route.template, caller, at.client)).await?;
        }
    }
    let result = Box::pin(serve_admitted(at, req, params, segs, record)).await;
    match (allowance, result) {
        (Some(a), Ok(mut resp)) => {
            a.write(resp.headers_mut());
            Ok(resp)
        }
        (_, result) => result,
    }
}

/// A request that passed authentication and throttling: limits, validation, then the cache or
/// the integration.
async fn serve_admitted(
    at: &Hop<'_>,
    mut req: Request,
    params: &Params<'_>,
    segs: &[&str],
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
    let (gw, route) = (at.gw, at.route);
    check_length(gw, &req)?;
    if let Some(v) = route.validation {
        if let Err(r) = validate_request(gw, v, &mut req, params.values()).await {
            if r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::UNSUPPORTED_MEDIA_TYPE
            {
                gw.metrics.invalid_request(route.template);
            }
            return Err(r);
        }
    }
    #[cfg(feature = "cache")]
    if let (Some(def), Some(cache)) = (route.cache, &gw.cache) {
        if req.method() == Method::GET || req.method() == Method::HEAD {
            return Box::pin(serve_cached(at, def, cache, req, params, segs, record)).await;
        }
    }
    Box::pin(serve_upstream(at, req, params, segs, record)).await
}

/// Refuses a request whose declared `Content-Length` is over the body limit, before any of it
/// is read. (Bodies without a length are held to the limit as they stream.)
fn check_length(gw: &Gateway, req: &Request) -> Result<(), Problem> {
    match req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(len) if len > gw.limits.body => Err(Problem::too_large(gw.limits.body)),
        _ => Ok(()),
    }
}

/// The integration, then response validation when the spec asks for it.
async fn serve_upstream(
    at: &Hop<'_>,
    req: Request,
    params: &Params<'_>,
    segs: &[&str],
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
    let (gw, route, id) = (at.gw, at.route, at.id);
    let response_mode = route
        .validation
        .and_then(|v| v.response_mode)
        .or(gw.response_mode)
        .filter(|m| *m != crate::stage::ResponseMode::Off);
    let result = serve_integration(gw, route, req, at.peer, id, params, segs, record).await;
    match (response_mode, route.validation, result) {
        (Some(mode), Some(v), Ok(resp)) if !v.responses.is_empty() => {
            validate_response(gw, route, v, mode, id, resp).await
        }
        (_, _, result) => result,
    }
}

/// A cacheable request: answered from the cache, or fetched once (concurrent misses wait for
/// the one fetch) and stored when the answer may be cached. See [`crate::cache`].
#[cfg(feature = "cache")]
async fn serve_cached(
    at: &Hop<'_>,
    def: &crate::cache::CacheDef,
    cache: &crate::cache::ResponseCache,
    req: Request,
    params: &Params<'_>,
    segs: &[&str],
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
    use crate::cache::{Lookup, ResponseCache};
    let route = at.route;
    let head = req.method() == Method::HEAD;
    let authenticated = !route.security.is_empty();
    if !authenticated && !def.shared && req.headers().contains_key(header::AUTHORIZATION) {
        cache.count(route.template, "bypass");
        return serve_upstream(at, req, params, segs, record).await;
    }
    let identity = req.extensions().get::<crate::auth::Identity>();
    let who = (authenticated && !def.shared).then(|| crate::cache::identity_key(identity));
    let key = crate::cache::key(
        def,
        &crate::cache::KeySource {
            route: route.key,
            method: req.method().as_str(),
            path: params.values(),
            query: req.uri().query(),
            headers: req.headers(),
            caller: who.as_deref(),
            identity,
        },
    );
    let refresh =
        crate::cache::wants_refresh(req.headers()) && crate::cache::may_invalidate(def, identity);
    let request_headers = req.headers().clone();
    let hit = |cache: &ResponseCache, e: &crate::cache::Entry| {
        cache.count(route.template, "hit");
        e.response(true, head)
    };
    let flight = if refresh {
        cache.count(route.template, "refresh");
        None
    } else {
        match cache.lookup(at.index, &key, &request_headers, true).await? {
            Lookup::Hit(e) => return Ok(hit(cache, &e)),
            Lookup::Lead(f) => {
                cache.count(route.template, "miss");
                Some(f)
            }
            Lookup::Wait(mut rx) => {
                // The fetch in flight ends by dropping its sender; then look again once.
                let _ = rx.changed().await;
                match cache
                    .lookup(at.index, &key, &request_headers, false)
                    .await?
                {
                    Lookup::Hit(e) => return Ok(hit(cache, &e)),
                    Lookup::Lead(f) => {
                        cache.count(route.template, "miss");
                        Some(f)
                    }
                    Lookup::Wait(_) => None,
                }
            }
        }
    };
    let resp = serve_upstream(at, req, params, segs, record).await?;
    let stored = crate::cache::capture(at.index, def.ttl_ms, &request_headers, resp).await;
    let resp = match stored {
        Ok(entry) => {
            let resp = entry.response(false, head);
            cache.put(&key, entry, def.max_entries).await;
            resp
        }
        Err(resp) => resp,
    };
    drop(flight);
    Ok(resp)
}

/// Checks parameters and, when the operation takes one, the body (read whole, within the limit,
/// then handed on). Violations are a 400 listing every one; a media type the operation does not
/// accept is 415.
async fn validate_request(
    gw: &Gateway,
    v: &crate::validate::input::RouteValidation,
    req: &mut Request,
    path: &[&str],
) -> Result<(), Problem> {
    use crate::validate::input::{Rejection, RequestParts};
    let reject = |r: Rejection| match r {
        Rejection::Invalid(errors) => Problem::invalid(errors),
        Rejection::Unsupported(detail) => Problem::unsupported_media_type(detail),
    };
    v.check_params(&RequestParts {
        path,
        query: req.uri().query(),
        headers: req.headers(),
    })
    .map_err(reject)?;
    if !v.reads_body() {
        return Ok(());
    }
    let body = std::mem::take(req.body_mut());
    let limited = http_body_util::Limited::new(body, gw.limits.body as usize);
    let bytes = match http_body_util::BodyExt::collect(limited).await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return Err(if e.is::<http_body_util::LengthLimitError>() {
                Problem::too_large(gw.limits.body)
            } else {
                Problem::bad_request("the request body could not be read")
            })
        }
    };
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    v.check_body(content_type, &bytes).map_err(reject)?;
    *req.body_mut() = Body::from(bytes);
    Ok(())
}

/// Response validation (`validate.responses`): the answer is read whole and checked against the
/// spec's schema for its status and media type. `log` logs and counts a violation and passes the
/// answer on; `enforce` replaces it with 502.
async fn validate_response(
    gw: &Gateway,
    route: &RouteDef,
    v: &crate::validate::input::RouteValidation,
    mode: crate::stage::ResponseMode,
    id: &str,
    resp: Response,
) -> Result<Response, Problem> {
    const MAX_CHECKED: usize = 16 << 20;
    let (parts, body) = resp.into_parts();
    let limited = http_body_util::Limited::new(body, MAX_CHECKED);
    let bytes = match http_body_util::BodyExt::collect(limited).await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Err(Problem::bad_gateway()),
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if let Err(errors) = v.check_response(parts.status.as_u16(), content_type, &bytes) {
        gw.metrics.invalid_response(route.template);
        let list: Vec<serde_json::Value> = errors
            .iter()
            .map(|e| serde_json::json!({"pointer": e.pointer, "keyword": e.keyword, "message": e.message}))
            .collect();
        eprintln!(
            "{}",
            serde_json::json!({
                "message": "the upstream answer does not conform to the spec",
                "requestId": id,
                "route": route.key,
                "status": parts.status.as_u16(),
                "errors": list,
            })
        );
        if mode == crate::stage::ResponseMode::Enforce {
            let mut p = Problem::new(
                StatusCode::BAD_GATEWAY,
                "Bad Gateway",
                "the upstream answer does not conform to the API's schema",
            );
            p.errors = errors;
            return Err(p);
        }
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

#[allow(clippy::too_many_arguments)]
async fn serve_integration(
    gw: &Gateway,
    route: &RouteDef,
    req: Request,
    peer: SocketAddr,
    id: &str,
    params: &Params<'_>,
    segs: &[&str],
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
    match &route.integration {
        Integration::Mock(m) => {
            let body = if req.method() == Method::HEAD {
                Body::empty()
            } else {
                Body::from(m.body.clone())
            };
            let mut r = Response::new(body);
            *r.status_mut() = StatusCode::from_u16(m.status).unwrap_or(StatusCode::OK);
            if let Some(ct) = m.content_type {
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            }
            if req.method() == Method::HEAD {
                r.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(m.body.len()));
            }
            Ok(r)
        }
        #[cfg(feature = "proxy")]
        Integration::Http(h) => {
            let params = params.named(route.params);
            Box::pin(proxy::forward(gw, h, req, peer, id, &params, segs, record)).await
        }
        #[cfg(not(feature = "proxy"))]
        Integration::Http(_) => {
            let _ = (gw, peer, id, params, segs, record);
            Err(Problem::new(
                StatusCode::NOT_IMPLEMENTED,
                "Not Implemented",
                "this gateway was built without the http integration",
            ))
        }
    }
}

#[cfg(feature = "proxy")]
pub(crate) mod proxy {
    //! The `http` integration's client side.

    use std::net::SocketAddr;
    use std::time::Instant;

    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    use http::{header, HeaderValue, Uri};

    use super::Gateway;
    use crate::integration::{strip_hop_by_hop, HttpIntegration};

    const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
    const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
    const X_FORWARDED_HOST: http::HeaderName = http::HeaderName::from_static("x-forwarded-host");
    use crate::observe::AccessRecord;
    use crate::problem::Problem;
    use crate::router::PathParams;

    pub(crate) type Client = std::sync::Arc<crate::pool::Pool>;

    /// Pooled keep-alive connections to upstreams, `http://` or `https://` (rustls; the system's
    /// roots or `SSL_CERT_FILE`).
    pub(crate) fn client() -> Client {
        crate::pool::Pool::new(crate::tls::connector())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn forward(
        gw: &Gateway,
        h: &HttpIntegration,
        req: Request,
        peer: SocketAddr,
        id: &str,
        params: &PathParams<'_>,
        segments: &[&str],
        record: &mut AccessRecord,
    ) -> Result<Response, Problem> {
        let url = h.url.expand(params, segments, req.uri().query());
        let uri =
            Uri::from_maybe_shared(bytes::Bytes::from(url)).map_err(|_| Problem::bad_gateway())?;
        let (mut parts, body) = req.into_parts();
        let host = parts.headers.remove(header::HOST);
        strip_hop_by_hop(&mut parts.headers);
        let mut xff = Vec::with_capacity(64);
        if let Some(prev) = parts.headers.get(X_FORWARDED_FOR) {
            xff.extend_from_slice(prev.as_bytes());
            xff.extend_from_slice(b", ");
        }
        crate::observe::push_ip(&mut xff, peer.ip());
        if let Ok(v) = HeaderValue::from_maybe_shared(bytes::Bytes::from(xff)) {
            parts.headers.insert(X_FORWARDED_FOR, v);
        }
        parts
            .headers
            .insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        if let Some(host) = host {
            parts.headers.insert(X_FORWARDED_HOST, host);
        }
        // `x-request-id` is already the request's id (set by `handle_request`).
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        let limited = http_body_util::Limited::new(body, gw.limits.body as usize);
        let upstream_req = http::Request::from_parts(parts, limited);
        let started = Instant::now();
        let result = crate::deadline::timeout(h.timeout, gw.client.request(upstream_req)).await;
        record.integration_latency = Some(started.elapsed());
        let resp = match result {
            Err(_) => return Err(Problem::gateway_timeout()),
            Ok(Err(e)) => {
                if is_length_limit(&e) {
                    return Err(Problem::too_large(gw.limits.body));
                }
                eprintln!(
                    "{{\"message\":\"upstream error\",\"requestId\":\"{id}\",\"error\":{}}}",
                    serde_json::Value::String(format!("{e:?}"))
                );
                return Err(Problem::bad_gateway());
            }
            Ok(Ok(r)) => r,
        };
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        // The client's connection has its own version; the upstream's is not the client's business.
        parts.version = http::Version::HTTP_11;
        Ok(Response::from_parts(parts, Body::new(body)))
    }

    fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return true;
            }
            source = s.source();
        }
        false
    }
}

/// The generated binary's `main`: parses the command line, builds the gateway for the stage, and
/// serves until SIGTERM. Exit status: 0 after a clean stop, 1 when the gateway cannot start, 2
/// for unusable arguments.
pub fn main_with(
    title: &str,
    stages: &[&str],
    build: fn(&Config) -> Result<Gateway, StartError>,
) -> ExitCode {
    let command = crate::config::parse(
        std::env::args().skip(1),
        |k| std::env::var(k).ok(),
        title,
        stages,
    );
    let config = match command {
        Ok(Command::Serve(c)) => c,
        Ok(Command::Help(h)) => {
            print!("{h}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Healthcheck(admin)) => {
            return match crate::config::healthcheck(admin) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Command::AddKey {
            plan,
            file,
            redis,
            prefix,
            name,
        }) => {
            let added = match (&file, &redis) {
                (Some(file), _) => crate::auth::keys::add(&plan, file, name.as_deref()).map(|k| {
                    (
                        k,
                        format!(
                            "to {} (send SIGHUP to a running gateway to load it)",
                            file.display()
                        ),
                    )
                }),
                #[cfg(feature = "redis")]
                (None, Some(url)) => {
                    crate::auth::keys::redis_store::add(&plan, url, &prefix, name.as_deref())
                        .map(|k| (k, "to Redis (every instance sees it at once)".to_string()))
                }
                _ => {
                    let _ = (&redis, &prefix);
                    Err("this gateway was built without the Redis key store".to_string())
                }
            };
            return match added {
                Ok((key, place)) => {
                    println!("{key}");
                    eprintln!("added a key of plan `{plan}` {place}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Ok(Command::Version) => {
            println!("{title} (gwgen-runtime {})", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let gateway = match build(&config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    // One core (a container limit, or `taskset`): a single-threaded runtime, with none of the
    // work-stealing scheduler's cross-thread bookkeeping. More: the multi-threaded one, a worker a
    // core. Validators recurse as deep as a body nests (up to `limits.json_depth`), so every
    // thread that runs requests gets 16 MiB of stack (reserved, not committed).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let single = std::env::var("GWGEN_RUNTIME")
        .map(|v| v == "current_thread")
        .unwrap_or(cores == 1);
    let mut builder = if single {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().thread_stack_size(16 << 20).build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if single {
        // `block_on` runs on the calling thread: make it one with the same stack.
        let served = std::thread::Builder::new()
            .name("gwgen-worker".into())
            .stack_size(16 << 20)
            .spawn(move || runtime.block_on(gateway.serve(&config)));
        return match served.map(|h| h.join()) {
            Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
            Ok(Ok(Err(e))) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
            _ => {
                eprintln!("error: the gateway's thread failed");
                ExitCode::from(1)
            }
        };
    }
    match runtime.block_on(gateway.serve(&config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
