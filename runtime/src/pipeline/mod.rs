//! One request's way through the gateway, as phases over one [`Exchange`], in the manner of
//! pingora's `ProxyHttp` phases. Each phase is a function in its own module:
//!
//! | order | phase | module | does |
//! |---:|---|---|---|
//! | 1 | arrive | [`log`] | request id, the access record, metrics start |
//! | 2 | route | [`route`] | header limit, path normalisation, CORS preflight, 404/405/OPTIONS, the route |
//! | 3 | auth | [`auth`] | the route's `security`: 401/403, or the caller's identity |
//! | 4 | throttle | [`throttle`] | usage-plan, route and stage buckets and quotas: 429, or an allowance |
//! | 5 | validate | [`validate`] | body limit, parameters and body against the spec: 400/413/415 |
//! | 6 | cache | [`cache`] | GET/HEAD answered from the response cache, or fetched once and stored |
//! | 7 | integration | [`integration`] | mock, or the upstream through [`crate::proxy`]; response validation |
//! | 8 | respond | [`respond`] | `RateLimit-*`, CORS headers, `gateway_responses`, `x-request-id` |
//! | 9 | log | [`log`] | the access-log line and metrics, written when the body ends |
//!
//! A route with no security, throttle or cache, no body to read and no answer to check goes
//! from the route phase straight to its integration, its parameters checked in place.
//!
//! The phases that every request of a route takes nest in one future, not boxed: a box is an
//! allocation, and a copy of the whole future into it, on every request, where awaiting a
//! future in place copies only the arguments it was made with. The functions that take the
//! request by value return an `async move` block rather than being `async fn`s, which would keep
//! the request (240 bytes) twice, copying it at the first poll. What is rare is boxed: a route's
//! transform, the cache, Lambda and WebSocket integrations, a JWT's signature check and key
//! fetch.

mod auth;
#[cfg(feature = "cache")]
mod cache;
mod integration;
mod log;
mod respond;
mod route;
mod throttle;
mod validate;

use std::net::{IpAddr, SocketAddr};

use axum::extract::Request;
use axum::response::Response;

use crate::gateway::{Gateway, RouteDef};
use crate::observe::AccessRecord;
use crate::problem::Problem;
use crate::router::Params;

pub(crate) use log::handle_request;

/// The most fields the pipeline adds to a request of its own: `x-request-id` and `traceparent`
/// ([`log`]), `host` ([`route`]), and `te`, `x-forwarded-for`, `x-forwarded-proto` and
/// `x-forwarded-host` ([`crate::proxy`]). A server that builds the request's field table gives
/// it this much room beyond the client's fields, so the table does not grow on the way. A
/// route's own header transforms may still add more.
pub(crate) const FIELDS_ADDED: usize = 7;

/// The most fields the pipeline adds to an upstream's answer of its own: `x-request-id` and
/// `strict-transport-security` ([`log`]), `ratelimit-limit`, `ratelimit-remaining` and
/// `ratelimit-reset` ([`crate::throttle`]), and `vary`, `access-control-allow-origin`,
/// `access-control-allow-credentials` and `access-control-expose-headers` ([`crate::cors`]).
/// The upstream client gives an answer's field table this much room beyond the upstream's
/// fields. A route's own header transforms may still add more.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
pub(crate) const ANSWER_FIELDS_ADDED: usize = 9;

/// One request in the gateway once its route is known: the context every phase reads.
/// The request itself travels beside it (phases take and hand it on), and so does the access
/// record, which phases fill in.
pub(crate) struct Exchange<'a, 'p> {
    /// The gateway.
    pub(crate) gw: &'a Gateway,
    /// The matched route.
    pub(crate) route: &'a RouteDef,
    /// Its index in the gateway's routes.
    pub(crate) index: usize,
    /// The TCP peer.
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub(crate) peer: SocketAddr,
    /// The client: the peer, or what trusted proxies say.
    pub(crate) client: IpAddr,
    /// The request id.
    pub(crate) id: &'a str,
    /// The path parameters the route tree captured.
    pub(crate) params: &'a Params<'p>,
    /// The normalised path segments.
    #[cfg_attr(not(feature = "proxy"), allow(dead_code))]
    pub(crate) segs: &'a [&'p str],
    /// The client certificate the TLS handshake verified.
    pub(crate) cert: Option<&'a crate::client_cert::ClientCert>,
}

impl Exchange<'_, '_> {
    /// Removes what an integration must not get from a request it is about to be given: the
    /// credentials of the route's schemes that did not let this caller in, and verified ones
    /// whose scheme hides them (see [`crate::auth::Auth::strip_credentials`]). Returns the
    /// query string to pass on.
    #[cfg_attr(not(any(feature = "proxy", feature = "lambda")), allow(dead_code))]
    pub(crate) fn strip_credentials<'q>(
        &self,
        extensions: &http::Extensions,
        headers: &mut http::HeaderMap,
        query: Option<&'q str>,
    ) -> Option<std::borrow::Cow<'q, str>> {
        match &self.gw.auth {
            Some(auth) if !self.route.security.is_empty() => {
                let matched = extensions
                    .get::<crate::auth::Identity>()
                    .and_then(|id| id.matched);
                auth.strip_credentials(self.route.security, matched, headers, query)
            }
            _ => query.map(std::borrow::Cow::Borrowed),
        }
    }

    /// Removes the headers of the client's connection (hop-by-hop ones, and those its
    /// `Connection` names, but for what the gateway checked or set) and the client's own account
    /// of forwarding and identity (`Forwarded`, `X-Gateway-*`, …; kept from trusted proxies).
    /// Returns whether the peer is a trusted proxy.
    #[cfg_attr(not(any(feature = "proxy", feature = "lambda")), allow(dead_code))]
    pub(crate) fn strip_connection_headers(&self, headers: &mut http::HeaderMap) -> bool {
        let gw = self.gw;
        let trusted = !gw.trusted.is_empty() && gw.trusts(self.peer.ip());
        let validated = |name: &http::HeaderName| {
            self.route.validation.is_some_and(|v| {
                v.params.iter().any(|p| {
                    p.location == crate::validate::input::In::Header
                        && name.as_str().eq_ignore_ascii_case(p.name)
                })
            })
        };
        crate::integration::strip_hop_by_hop_keeping(headers, |n| {
            crate::integration::PROTECTED.contains(&n.as_str())
                || gw.key_headers.contains(n)
                || validated(n)
        });
        crate::integration::strip_client_forwarding(headers, trusted);
        trusted
    }
}

/// Routes the request, then runs the route's phases. Errors are problems; [`log`] turns them
/// into answers.
///
/// `uri` is the request's target, kept apart from it (the request is moved into the
/// integration while its path's segments are still read); the client's address is the
/// record's.
///
/// A plain function returning an `async move` block, as `handle_request` is: the request is
/// kept once in its future, not twice.
#[allow(clippy::manual_async_fn)]
fn dispatch<'a>(
    gw: &'a Gateway,
    mut req: Request,
    uri: &'a http::Uri,
    peer: SocketAddr,
    id: &'a str,
    record: &'a mut AccessRecord,
) -> impl std::future::Future<Output = Result<Response, Problem>> + 'a {
    async move {
        let client = record.ip;
        route::authority_as_host(&mut req)?;
        let header_bytes = route::check_headers(gw, &req)?;
        let raw_path = uri.path();
        let mut decoded = Vec::new();
        let mut segs = route::segments(gw, raw_path, &mut decoded)?;
        if let Some(entry) = &gw.entry {
            // The host's base path and the stage prefix are taken off the normalised path, so no
            // spelling of the path can slip past them.
            let host = req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok());
            let skip = entry.strip(host, raw_path, &segs)?;
            segs.drain(..skip);
        }
        // Only a gateway with client CAs reads certificates: others skip the lookup.
        #[cfg(feature = "mtls")]
        let cert = req
            .extensions()
            .get::<std::sync::Arc<crate::client_cert::ClientCert>>()
            .cloned();
        #[cfg(not(feature = "mtls"))]
        let cert: Option<std::sync::Arc<crate::client_cert::ClientCert>> = None;
        #[cfg(feature = "mtls")]
        if let (Some(cert), Some(tls)) = (&cert, &gw.tls) {
            route::same_trust(tls, cert, &req)?;
        }
        let mut params = Params::default();
        let index = match route::find(gw, &req, &segs, &mut params, record)? {
            route::Found::Route(index) => index,
            route::Found::Answered(resp) => return Ok(resp),
        };
        let route = &gw.routes[index];
        record.route_key = route.key;
        record.route = route.template;
        if header_bytes > route.header_limit(gw) {
            return Err(Problem::headers_too_large(route.header_limit(gw)));
        }
        let origin = respond::origin(route, &req);
        #[cfg(feature = "compression")]
        let compressing = route
            .compression
            .and_then(|c| c.responses.as_ref())
            .map(|def| {
                (
                    def,
                    req.method().clone(),
                    req.headers().get(http::header::ACCEPT_ENCODING).cloned(),
                )
            });
        let x = Exchange {
            gw,
            route,
            index,
            peer,
            client,
            id,
            params: &params,
            segs: &segs,
            cert: cert.as_deref(),
        };
        let result = if gw.is_direct(index) {
            match validate::check_body(&x, &mut req).and_then(|()| validate::head(&x, &req)) {
                Ok(()) => integration::serve(&x, req, record).await,
                Err(p) => Err(p),
            }
        } else {
            serve_route(&x, req, record).await
        };
        #[cfg(feature = "compression")]
        let result = match compressing {
            Some((def, method, accept)) => {
                result.map(|resp| crate::compress::compress(def, &method, accept.as_ref(), resp))
            }
            None => result,
        };
        respond::cors(&x, origin.as_ref(), result)
    }
}

/// Authentication and throttling, then the rest; the allowance's headers go on the answer.
///
/// A plain function returning an `async move` block, as `handle_request` is: the request is
/// kept once in its future, not twice.
#[allow(clippy::manual_async_fn)]
fn serve_route<'x, 'a, 'p>(
    x: &'x Exchange<'a, 'p>,
    mut req: Request,
    record: &'x mut AccessRecord,
) -> impl std::future::Future<Output = Result<Response, Problem>> + use<'x, 'a, 'p> {
    async move {
        auth::authenticate(x, &mut req).await?;
        let allowance = throttle::admit(x, req.extensions()).await?;
        let result = serve_admitted(x, req, record).await;
        respond::with_allowance(allowance, result)
    }
}

/// A request that passed authentication and throttling: limits, validation, then the cache or
/// the integration.
///
/// A plain function returning an `async move` block, as `handle_request` is: the request is
/// kept once in its future, not twice.
#[allow(clippy::manual_async_fn)]
fn serve_admitted<'x, 'a, 'p>(
    x: &'x Exchange<'a, 'p>,
    mut req: Request,
    record: &'x mut AccessRecord,
) -> impl std::future::Future<Output = Result<Response, Problem>> + use<'x, 'a, 'p> {
    async move {
        validate::check_body(x, &mut req)?;
        validate::request(x, &mut req).await?;
        #[cfg(feature = "cache")]
        if let Some((def, cache)) = cache::applies(x, &req) {
            return Box::pin(cache::serve(x, def, cache, req, record)).await;
        }
        integration::serve_checked(x, req, record).await
    }
}
