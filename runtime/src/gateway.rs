//! The gateway as built for one stage: its routes, the generated route tree, and what the
//! request path consults (limits, authentication, throttles, cache, the upstream client).
//!
//! This module holds state only. A request's way through it is [`crate::pipeline`]; the
//! listeners are [`crate::server`] and [`crate::admin`]; the binary's `main` is
//! [`crate::binary`].

use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::integration::Integration;
use crate::observe::Metrics;
use crate::problem::Problem;
use crate::router::{Lookup, Params};
use crate::stage::{Stage, StartError};

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
    /// Its own `limits` (set on the operation or its path item), in place of the gateway's.
    pub limits: Option<Limits>,
    /// Its `transform`.
    pub transform: Option<&'static crate::transform::TransformDef>,
    /// Its `compression`.
    pub compression: Option<&'static crate::compress::CompressionDef>,
    /// What a request body gets when the operation declares no `requestBody` (`None`: it
    /// declares one).
    pub undeclared_body: Option<UndeclaredBody>,
}

/// What a request body sent to an operation without `requestBody` gets
/// (`limits.undeclared_body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndeclaredBody {
    /// 400: no upstream can read it as a second request.
    Reject,
    /// Removed before the upstream: it gets no body.
    Drop,
}

impl RouteDef {
    /// The largest request body this route takes.
    pub(crate) fn body_limit(&self, gw: &Gateway) -> u64 {
        self.limits.map_or(gw.limits.body, |l| l.body)
    }

    /// The largest request head this route takes (never above the gateway's, which is checked
    /// before routing).
    pub(crate) fn header_limit(&self, gw: &Gateway) -> u64 {
        self.limits
            .map_or(gw.limits.headers, |l| l.headers.min(gw.limits.headers))
    }

    /// Whether a request to this route goes straight to its integration: no authentication,
    /// throttling or cache, no body to read and hold, no answer to check. What such a route
    /// checks (parameters, an opaque body's media type) is in the request's head, and is
    /// checked in place, with nothing awaited. Decided once per route: see
    /// [`Gateway::is_direct`].
    fn is_direct(&self, gw: &Gateway, index: usize) -> bool {
        let cached = cfg!(feature = "cache") && self.cache.is_some();
        self.security.is_empty()
            && !cached
            && !gw.throttle.as_ref().is_some_and(|t| t.applies(index, None))
            && self
                .validation
                .is_none_or(|v| !v.reads_body() && self.response_check(gw).is_none())
    }

    /// How answers are checked against the spec, when they are: `validate.responses` on (the
    /// operation's, else the stage's) and schemas to check them with.
    pub(crate) fn response_check(
        &self,
        gw: &Gateway,
    ) -> Option<(
        crate::stage::ResponseMode,
        &'static crate::validate::input::RouteValidation,
    )> {
        let v = self.validation.filter(|v| !v.responses.is_empty())?;
        let mode = v.response_mode.or(gw.response_mode)?;
        (mode != crate::stage::ResponseMode::Off).then_some((mode, v))
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

/// Limits on client connections (`x-gateway.limits` at the root or in `defaults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request head, and to start the next one on an idle
    /// keep-alive connection, in milliseconds; then the connection is closed.
    pub head_timeout_ms: u64,
    /// On SIGTERM, how long requests in flight may take, in milliseconds; then the connections
    /// left are closed and the gateway exits 0.
    pub drain_timeout_ms: u64,
    /// Open client connections at most; past it, new ones are answered 503 and closed.
    pub max_connections: u64,
    /// Open connections at most from one client address; past it, 429 and closed.
    pub max_per_client: Option<u64>,
    /// How long a client may send nothing of a request body the gateway is reading, in
    /// milliseconds; then 408 and the connection is closed.
    pub body_timeout_ms: u64,
    /// How long a client may take nothing of an answer the gateway is sending, in
    /// milliseconds; then the connection is closed (and the upstream's with it).
    pub send_timeout_ms: u64,
    /// Bytes of request bodies held for validation at once, across all requests; past it,
    /// 503.
    pub validation_memory: u64,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            head_timeout_ms: 30_000,
            drain_timeout_ms: 30_000,
            max_connections: 10_000,
            max_per_client: None,
            body_timeout_ms: 60_000,
            send_timeout_ms: 60_000,
            validation_memory: 256 << 20,
        }
    }
}

/// The name of a `Host` value: lower case, without the port or a trailing dot (an IPv6 literal
/// keeps its brackets).
pub(crate) fn host_name(host: &str) -> String {
    let name = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => &host[..i],
        _ => host,
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a host name (lower case) is `pattern`'s: the same, or for `*.parent`, one label
/// more than `parent`.
pub(crate) fn host_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(parent) => name
            .strip_suffix(parent)
            .and_then(|label| label.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        None => pattern == name,
    }
}

/// Where requests enter the API: the hosts it is served at, the base path each takes off, and
/// the stage prefix.
#[derive(Debug, Default)]
pub(crate) struct Entry {
    /// Host names (lower case; `*.` for one label more) and their base paths' segments.
    domains: Vec<(String, Vec<&'static str>)>,
    /// A host not in `domains` is refused.
    reject_unknown: bool,
    /// `stage_prefix`: the stage whose name leads every path.
    stage: Option<String>,
}

impl Entry {
    /// How many leading segments of `segs` (the normalised `path`) a request to `host` drops
    /// before routing, or why it is refused.
    pub(crate) fn strip(
        &self,
        host: Option<&str>,
        path: &str,
        segs: &[&str],
    ) -> Result<usize, Problem> {
        let mut skip = 0;
        if !self.domains.is_empty() {
            let host = host.map(host_name);
            let mut known = false;
            let mut mapped = None;
            if let Some(name) = &host {
                for (pattern, base) in &self.domains {
                    if host_matches(pattern, name) {
                        known = true;
                        if segs.len() >= base.len() && segs[..base.len()] == base[..] {
                            mapped = Some(base.len());
                            break;
                        }
                    }
                }
            }
            match (known, mapped) {
                (_, Some(n)) => skip = n,
                (true, None) => return Err(Problem::not_found(path)),
                (false, None) if self.reject_unknown => {
                    return Err(Problem::new(
                        http::StatusCode::MISDIRECTED_REQUEST,
                        "Misdirected Request",
                        "this API is not served at this host",
                    ));
                }
                (false, None) => {}
            }
        }
        if let Some(stage) = &self.stage {
            if segs.get(skip) != Some(&stage.as_str()) {
                return Err(Problem::not_found(path));
            }
            skip += 1;
        }
        Ok(skip)
    }
}

/// A gateway ready to serve: the generated routes and tree, for one stage.
pub struct Gateway {
    pub(crate) stage: Arc<str>,
    /// The stage's variables, resolved (for transform templates).
    pub(crate) stage_variables: std::collections::BTreeMap<String, String>,
    pub(crate) routes: Vec<RouteDef>,
    pub(crate) route: RouteFn,
    pub(crate) limits: Limits,
    pub(crate) connections: ConnectionLimits,
    pub(crate) auth: Option<crate::auth::Auth>,
    pub(crate) response_mode: Option<crate::stage::ResponseMode>,
    pub(crate) responses: &'static [crate::problem::CustomResponse],
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) ready: Arc<AtomicBool>,
    pub(crate) throttle: Option<Arc<crate::throttle::Throttler>>,
    pub(crate) trusted: Vec<crate::throttle::Cidr>,
    /// What is left of `limits.validation_memory` for request bodies held for validation.
    pub(crate) validating: crate::percore::Budget,
    /// `escaped_slashes: keep`: `%2F` and `%5C` stay inside a segment instead of a 400.
    pub(crate) keep_escaped_slashes: bool,
    /// `domains`, `unknown_hosts` and `stage_prefix`: which hosts and path prefixes reach the API.
    pub(crate) entry: Option<Box<Entry>>,
    /// The headers API keys come in: at most one of each per request.
    pub(crate) key_headers: Vec<http::HeaderName>,
    #[cfg(feature = "cache")]
    pub(crate) cache: Option<crate::cache::ResponseCache>,
    pub(crate) stage_throttle: Option<crate::throttle::Rate>,
    #[cfg(feature = "proxy")]
    pub(crate) client: crate::proxy::Client,
    /// `http2: true`: the listener speaks HTTP/2 as well (h2c, prior knowledge; with TLS, by
    /// ALPN).
    #[cfg(feature = "http2")]
    pub(crate) http2: bool,
    /// `tls`: the listener's TLS.
    #[cfg(feature = "https")]
    pub(crate) tls: Option<Arc<crate::https::Listener>>,
    /// `tls.hsts`: `Strict-Transport-Security` for every answer.
    pub(crate) hsts: Option<http::HeaderValue>,
    /// The open WebSocket connections.
    #[cfg(feature = "websocket")]
    pub(crate) sockets: Arc<crate::websocket::Registry>,
    /// `admin.token`: what the `@connections` management API asks for.
    #[cfg(feature = "websocket")]
    pub(crate) admin_token: Option<Arc<str>>,
    /// Which routes go straight to their integration ([`RouteDef::is_direct`]), decided at the
    /// first request, when the gateway is built whole.
    direct: std::sync::OnceLock<Box<[bool]>>,
    /// Tells the HTTP/1.1 server's connections that the gateway stops.
    pub(crate) stopping: crate::h1::Stopping,
}

impl Gateway {
    /// Builds a gateway.
    pub fn new(stage: &Stage, routes: Vec<RouteDef>, route: RouteFn, limits: Limits) -> Self {
        let metrics = Arc::new(Metrics::default());
        #[cfg(feature = "websocket")]
        let sockets = {
            let apis: Vec<_> = routes
                .iter()
                .filter_map(|r| match &r.integration {
                    Integration::WebSocket(api) => Some(api.clone()),
                    _ => None,
                })
                .collect();
            for api in &apis {
                api.attach(&metrics);
            }
            Arc::new(crate::websocket::Registry::new(apis))
        };
        Gateway {
            stage: Arc::from(stage.name.as_str()),
            stage_variables: stage.variables().clone(),
            routes,
            route,
            limits,
            connections: ConnectionLimits::default(),
            auth: None,
            response_mode: stage.validate_responses,
            responses: &[],
            metrics,
            ready: Arc::new(AtomicBool::new(false)),
            throttle: None,
            trusted: Vec::new(),
            validating: crate::percore::Budget::new(ConnectionLimits::default().validation_memory),
            keep_escaped_slashes: false,
            entry: None,
            key_headers: Vec::new(),
            #[cfg(feature = "cache")]
            cache: None,
            stage_throttle: stage.throttle,
            #[cfg(feature = "proxy")]
            client: crate::proxy::client(),
            #[cfg(feature = "http2")]
            http2: false,
            #[cfg(feature = "https")]
            tls: None,
            hsts: None,
            #[cfg(feature = "websocket")]
            sockets,
            #[cfg(feature = "websocket")]
            admin_token: None,
            direct: std::sync::OnceLock::new(),
            stopping: crate::h1::Stopping::default(),
        }
    }

    /// The scheme clients reach the gateway with: `https` when the listener takes TLS.
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub(crate) fn scheme(&self) -> &'static str {
        #[cfg(feature = "https")]
        if self.tls.is_some() {
            return "https";
        }
        "http"
    }

    /// Whether a request to route `index` goes straight to its integration.
    pub(crate) fn is_direct(&self, index: usize) -> bool {
        let direct = self.direct.get_or_init(|| {
            (self.routes.iter().enumerate())
                .map(|(i, route)| route.is_direct(self, i))
                .collect()
        });
        direct.get(index).copied().unwrap_or(false)
    }

    /// Sets the limits on client connections (the defaults: 30 s heads, 10,000 connections).
    pub fn with_connections(mut self, connections: ConnectionLimits) -> Self {
        self.connections = connections;
        self.validating = crate::percore::Budget::new(connections.validation_memory);
        self
    }

    /// `admin.token`: the `@connections` management API asks for `Authorization: Bearer TOKEN`
    /// (interpolated now; an empty token is a start-up error).
    #[cfg(feature = "websocket")]
    pub fn with_admin_token(mut self, stage: &Stage, token: &str) -> Result<Self, StartError> {
        let token = stage.interpolate(token, "`admin.token`")?;
        if token.is_empty() {
            return Err(StartError::Invalid("`admin.token` is empty".into()));
        }
        self.admin_token = Some(Arc::from(token));
        Ok(self)
    }

    /// The largest message of the gateway's WebSocket APIs; `None` without one.
    #[cfg(feature = "websocket")]
    pub(crate) fn websocket_message_limit(&self) -> Option<usize> {
        self.routes
            .iter()
            .filter_map(|r| match &r.integration {
                Integration::WebSocket(api) => Some(api.message_limit()),
                _ => None,
            })
            .max()
    }

    /// Whether any route is a WebSocket API (its connections are served with upgrades).
    pub(crate) fn has_websockets(&self) -> bool {
        #[cfg(feature = "websocket")]
        return self
            .routes
            .iter()
            .any(|r| matches!(r.integration, Integration::WebSocket(_)));
        #[cfg(not(feature = "websocket"))]
        false
    }

    /// `http2: true`: the listener takes HTTP/2 with prior knowledge (h2c, RFC 9113 §3.3) beside
    /// HTTP/1.1 on the same port, told apart by the connection preface.
    #[cfg(feature = "http2")]
    pub fn with_http2(mut self) -> Self {
        self.http2 = true;
        self
    }

    /// `tls`: the listener takes TLS, with the certificates and settings of `def` (read now: a
    /// missing or broken file is a start-up error that names it). Call it after
    /// [`Gateway::with_http2`]: ALPN offers `h2` when the gateway speaks HTTP/2.
    #[cfg(feature = "https")]
    pub fn with_tls_listener(
        mut self,
        stage: &Stage,
        def: &crate::https::TlsListenerDef,
    ) -> Result<Self, crate::stage::StartError> {
        #[cfg(feature = "http2")]
        let http2 = self.http2;
        #[cfg(not(feature = "http2"))]
        let http2 = false;
        self.tls = Some(Arc::new(crate::https::Listener::new(stage, def, http2)?));
        if !def.hsts.is_empty() {
            // Over the spec's static text, checked as `from_str` checks it: each answer takes a
            // copy, and a copy of a shared value counts a reference on one cache line that
            // every core writes.
            self.hsts = http::HeaderValue::from_maybe_shared(bytes::Bytes::from_static(
                def.hsts.as_bytes(),
            ))
            .ok();
        }
        Ok(self)
    }

    /// `domains`: the host names (`api.example.com`, or `*.example.com` for one label more) the
    /// API is served at, each with the base path its requests start with (`/` for none), which
    /// is taken off before routing, as API Gateway's base-path mappings do. With
    /// `reject_unknown`, a request for another host is 421.
    pub fn with_domains(
        mut self,
        domains: &'static [(&'static str, &'static str)],
        reject_unknown: bool,
    ) -> Self {
        let entry = self.entry.get_or_insert_with(Default::default);
        entry.domains = domains
            .iter()
            .map(|(name, base)| {
                let base = base.split('/').filter(|s| !s.is_empty()).collect();
                (name.to_ascii_lowercase(), base)
            })
            .collect();
        entry.reject_unknown = reject_unknown;
        self
    }

    /// `stage_prefix: true`: paths start with `/{stage}` (the stage this gateway runs), as on
    /// API Gateway's default endpoint; it is taken off before routing, and other paths are 404.
    pub fn with_stage_prefix(mut self) -> Self {
        let stage = self.stage.to_string();
        self.entry.get_or_insert_with(Default::default).stage = Some(stage);
        self
    }

    /// `escaped_slashes: keep`: a path segment may hold an encoded `/` or `\\` (`%2F`, `%5C`),
    /// which stays inside it and is re-encoded when forwarded. Without it such paths are 400.
    pub fn keep_escaped_slashes(mut self) -> Self {
        self.keep_escaped_slashes = true;
        self
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
        #[cfg(all(feature = "websocket", feature = "redis"))]
        if let Some(shared) = &shared {
            self.sockets.share(shared.clone());
        }
        let throttled = self.stage_throttle.is_some()
            || self.routes.iter().any(|r| r.throttle.is_some())
            || def
                .plans
                .iter()
                .any(|p| p.throttle.is_some() || p.quota.is_some());
        if throttled {
            self.throttle = Some(Arc::new(crate::throttle::Throttler::new(
                def.plans,
                self.routes.iter().map(|r| (r.key, r.throttle)).collect(),
                self.stage_throttle,
                shared.clone(),
                self.metrics.clone(),
            )));
        }
        // WebSocket messages count against the same usage plans.
        #[cfg(feature = "websocket")]
        if let Some(t) = &self.throttle {
            for r in &self.routes {
                if let Integration::WebSocket(api) = &r.integration {
                    api.share_plans(t.clone());
                }
            }
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

    /// Whether `peer` is one of `trusted_proxies`, whose forwarding headers are believed.
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub(crate) fn trusts(&self, peer: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(peer))
    }

    /// The client's address: the TCP peer, or what trusted proxies say it is.
    pub(crate) fn client_address(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        crate::throttle::client_address(peer, headers, &self.trusted)
    }

    /// Adds authentication (see `crate::auth`); without it, routes that require security
    /// answer 401.
    pub fn with_auth(mut self, auth: crate::auth::Auth) -> Self {
        self.key_headers = auth.key_headers();
        self.auth = Some(auth);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::Entry;

    fn entry(domains: &[(&str, &[&'static str])], reject: bool, stage: Option<&str>) -> Entry {
        Entry {
            domains: domains
                .iter()
                .map(|(n, b)| (n.to_string(), b.to_vec()))
                .collect(),
            reject_unknown: reject,
            stage: stage.map(str::to_string),
        }
    }

    #[test]
    fn hosts_match_without_port_case_or_trailing_dot() {
        let e = entry(
            &[("api.example.com", &["v1"]), ("*.t.example", &[])],
            true,
            None,
        );
        let ok = |host: &str, segs: &[&str]| e.strip(Some(host), "/", segs).ok();
        assert_eq!(ok("api.example.com", &["v1", "a"]), Some(1));
        assert_eq!(ok("API.example.COM:8443", &["v1"]), Some(1));
        assert_eq!(ok("api.example.com.", &["v1", "a"]), Some(1));
        assert_eq!(ok("x.t.example", &["a"]), Some(0));
        // Known host, outside its base path: 404; unknown hosts: 421.
        let status = |host: Option<&str>, segs: &[&str]| {
            e.strip(host, "/", segs).err().map(|p| p.status.as_u16())
        };
        assert_eq!(status(Some("api.example.com"), &["v2"]), Some(404));
        assert_eq!(status(Some("api.example.com"), &[]), Some(404));
        assert_eq!(status(Some("t.example"), &["a"]), Some(421));
        assert_eq!(status(Some("a.b.t.example"), &["a"]), Some(421));
        assert_eq!(status(Some("[::1]:8080"), &["a"]), Some(421));
        assert_eq!(status(None, &["a"]), Some(421));
        let serve = entry(&[("api.example.com", &[])], false, None);
        assert_eq!(serve.strip(Some("other"), "/", &["a"]).ok(), Some(0));
    }

    #[test]
    fn the_stage_prefix_follows_the_base_path() {
        let e = entry(&[("api.example.com", &["v1"])], true, Some("prod"));
        assert_eq!(
            e.strip(Some("api.example.com"), "/", &["v1", "prod", "a"])
                .ok(),
            Some(2)
        );
        assert!(e
            .strip(Some("api.example.com"), "/", &["v1", "dev", "a"])
            .is_err());
        let only = entry(&[], true, Some("prod"));
        assert_eq!(only.strip(None, "/", &["prod"]).ok(), Some(1));
        assert!(only.strip(None, "/", &["a"]).is_err());
    }
}
