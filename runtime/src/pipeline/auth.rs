//! The auth phase: the route's `security` (OpenAPI's OR of ANDs) verified by [`crate::auth`].
//! A verified caller's identity goes into the request's extensions, where the throttle, the
//! cache and the integration read it.

use axum::extract::Request;

use super::Exchange;
use crate::problem::Problem;

/// Verifies the caller of a route that requires security: 401 or 403, or the identity stored.
pub(super) async fn authenticate(x: &Exchange<'_, '_>, req: &mut Request) -> Result<(), Problem> {
    let (gw, route) = (x.gw, x.route);
    if route.security.is_empty() {
        return Ok(());
    }
    let creds = crate::auth::Credentials {
        headers: req.headers(),
        query: req.uri().query(),
        method: req.method().as_str(),
        segs: x.segs,
        route_key: route.key,
        stage: &gw.stage,
        source_ip: x.client,
        request_id: x.id,
        resource: route.template,
        params: x.params.named(route.params),
        stage_variables: &gw.stage_variables,
        client_cert: x.cert,
    };
    let verdict = match &gw.auth {
        Some(auth) => auth.authorize(route.security, route.plans, &creds).await,
        None => Err(crate::auth::Denial::Unauthenticated(
            "Bearer",
            "this operation requires authentication".into(),
        )),
    };
    match verdict {
        Ok(identity) => {
            req.extensions_mut().insert(identity);
            Ok(())
        }
        Err(denial) => Err(denial.problem()),
    }
}
