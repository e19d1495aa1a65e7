//! The route phase: the header limit, path normalisation, CORS preflights, and the generated
//! route tree's verdict (the route, or 404, 405 with `Allow`, or an automatic `OPTIONS`).

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use http::{header, HeaderValue, Method, StatusCode};

use crate::gateway::Gateway;
use crate::observe::AccessRecord;
use crate::path::Segments;
use crate::problem::Problem;
use crate::router::{Lookup, Params};

/// What routing found.
pub(super) enum Found {
    /// The index of the matched route.
    Route(usize),
    /// An answer given here: a CORS preflight or an automatic `OPTIONS`.
    Answered(Response),
}

/// Refuses a request whose header names and values add up to more than the limit (431), and
/// one whose meaning depends on which copy of a field a reader takes (400): HTTP/1.1 without
/// `Host` or with several (RFC 9112 §3.2), several `Authorization`, `Content-Type` or API-key
/// fields. One pass over the fields does both; the head's size is returned for the route's own
/// limit.
pub(super) fn check_headers(gw: &Gateway, req: &Request) -> Result<u64, Problem> {
    let (mut bytes, mut host, mut authorization, mut content_type) = (0u64, 0u8, 0u8, 0u8);
    let mut keys = 0u8;
    for (k, v) in req.headers() {
        bytes += (k.as_str().len() + v.len()) as u64;
        if k == header::HOST {
            host = host.saturating_add(1);
        } else if k == header::AUTHORIZATION {
            authorization = authorization.saturating_add(1);
        } else if k == header::CONTENT_TYPE {
            content_type = content_type.saturating_add(1);
        } else if !gw.key_headers.is_empty() && gw.key_headers.contains(k) {
            keys = keys.saturating_add(1);
        }
    }
    if bytes > gw.limits.headers {
        return Err(Problem::headers_too_large(gw.limits.headers));
    }
    if host > 1 || (host == 0 && req.version() == http::Version::HTTP_11) {
        return Err(Problem::bad_request(
            "an HTTP/1.1 request carries exactly one Host field",
        ));
    }
    if authorization > 1 || content_type > 1 {
        return Err(Problem::bad_request(
            "a request carries at most one Authorization and one Content-Type field",
        ));
    }
    if keys > 1 {
        // Several schemes may name different headers: count per name only when it matters.
        for name in &gw.key_headers {
            if req.headers().get_all(name).iter().nth(1).is_some() {
                return Err(Problem::bad_request("the API key is sent more than once"));
            }
        }
    }
    Ok(bytes)
}

/// A client certificate verified by one domain's client CA (chosen by SNI) serves only requests
/// for hosts of the same trust: otherwise a client could present a certificate one domain
/// trusts to another domain that trusts other CAs, on one connection (421, so that the client
/// opens a connection for that host, RFC 9110 §15.5.20).
#[cfg(feature = "mtls")]
pub(super) fn same_trust(
    tls: &crate::https::Listener,
    cert: &crate::client_cert::ClientCert,
    req: &Request,
) -> Result<(), Problem> {
    if !tls.has_domain_trusts() {
        return Ok(());
    }
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if tls.trust_of(host) == cert.trust {
        return Ok(());
    }
    Err(Problem::new(
        http::StatusCode::MISDIRECTED_REQUEST,
        "Misdirected Request",
        "this connection's client certificate was verified for another host",
    ))
}

/// A request that names its host in its target (HTTP/2's `:authority`, or an HTTP/1.1
/// absolute-form target, `GET http://host/path`) as well as in `Host`, where every phase and the
/// upstream read it: a `Host` naming another host is refused, so that no reader can take the
/// other one (RFC 9113 §8.3.1, RFC 9112 §3.2.2); one that is missing is made from the target.
pub(super) fn authority_as_host(req: &mut Request) -> Result<(), Problem> {
    let Some(authority) = req.uri().authority().map(|a| a.as_str().to_owned()) else {
        return Ok(());
    };
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) if host.as_bytes().eq_ignore_ascii_case(authority.as_bytes()) => {}
        // Several copies: `check_headers` refuses them.
        (Some(_), Some(_)) => {}
        (Some(_), None) => {
            return Err(Problem::bad_request(
                "`Host` and the request target name different hosts",
            ))
        }
        (None, _) => {
            if let Ok(v) = HeaderValue::from_str(&authority) {
                req.headers_mut().insert(header::HOST, v);
            }
        }
    }
    Ok(())
}

/// The normalised segments of `raw`. Most paths need no decoding: their segments are borrowed
/// from `raw`; the others are decoded into `decoded` and borrowed from there.
pub(super) fn segments<'a>(
    gw: &Gateway,
    raw: &'a str,
    decoded: &'a mut Vec<Cow<'a, str>>,
) -> Result<Segments<'a>, Problem> {
    if let Some(segs) = crate::path::plain_segments(raw) {
        return Ok(segs);
    }
    *decoded = crate::path::normalize(raw, gw.keep_escaped_slashes)
        .map_err(|e| Problem::bad_request(e.message()))?;
    Ok(decoded.iter().map(|s| s.as_ref()).collect())
}

/// Looks the request up in the route tree. A CORS preflight is answered here, before
/// authentication, from the CORS settings of the route the browser asks about.
pub(super) fn find<'a>(
    gw: &Gateway,
    req: &Request,
    segs: &[&'a str],
    params: &mut Params<'a>,
    record: &mut AccessRecord,
) -> Result<Found, Problem> {
    if req.method() == Method::OPTIONS && req.headers().contains_key(header::ORIGIN) {
        if let Some(method) = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
        {
            let mut probe = Params::default();
            if let Lookup::Found(i) = (gw.route)(method, segs, &mut probe) {
                if let Some(cors) = gw.routes[i].cors {
                    let (status, headers) = cors.preflight(req.headers());
                    record.route_key = gw.routes[i].key;
                    record.route = gw.routes[i].template;
                    let mut r = Response::new(Body::empty());
                    *r.status_mut() = status;
                    *r.headers_mut() = headers;
                    return Ok(Found::Answered(r));
                }
            }
        }
    }
    match (gw.route)(req.method().as_str(), segs, params) {
        Lookup::Found(i) => Ok(Found::Route(i)),
        Lookup::MethodNotAllowed(allow) if req.method() == Method::OPTIONS => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NO_CONTENT;
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            Ok(Found::Answered(r))
        }
        Lookup::MethodNotAllowed(allow) => Err(Problem::method_not_allowed(req.method(), allow)),
        Lookup::NotFound => Err(Problem::not_found(req.uri().path())),
    }
}
