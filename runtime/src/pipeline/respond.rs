//! The respond phase: what every answer of a route gets on its way out, whether it came from
//! the integration or is a refusal: the throttle's `RateLimit-*` headers and the route's CORS
//! headers. (`x-request-id` and `gateway_responses` are applied by [`super::log`], for answers
//! that never reached a route too.)

use axum::extract::Request;
use axum::response::Response;
use http::{header, HeaderValue};

use super::Exchange;
use crate::gateway::RouteDef;
use crate::problem::Problem;
use crate::throttle::Allowance;

/// The request's `Origin`, kept for the CORS headers of the answer (only on CORS routes).
pub(super) fn origin(route: &RouteDef, req: &Request) -> Option<HeaderValue> {
    route
        .cors
        .and_then(|_| req.headers().get(header::ORIGIN).cloned())
}

/// Puts the allowance's `RateLimit-*` headers on a successful answer.
pub(super) fn with_allowance(
    allowance: Option<Allowance>,
    result: Result<Response, Problem>,
) -> Result<Response, Problem> {
    match (allowance, result) {
        (Some(a), Ok(mut resp)) => {
            a.write(resp.headers_mut());
            Ok(resp)
        }
        (_, result) => result,
    }
}

/// Every answer of a CORS route carries its headers, errors included, so a browser script can
/// read why it was refused.
pub(super) fn cors(
    x: &Exchange<'_, '_>,
    origin: Option<&HeaderValue>,
    result: Result<Response, Problem>,
) -> Result<Response, Problem> {
    match x.route.cors {
        Some(cors) => {
            let mut resp = result.unwrap_or_else(|p| p.into_custom_response(x.id, x.gw.responses));
            cors.decorate(resp.headers_mut(), origin);
            Ok(resp)
        }
        None => result,
    }
}
