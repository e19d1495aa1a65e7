//! The throttle phase: the usage plan's bucket and quota (for a caller of a plan), the route's
//! and the stage's buckets, in AWS's order, through [`crate::throttle`]. A refusal is 429; an
//! admitted request carries the tightest level's allowance to the respond phase.

use super::Exchange;
use crate::problem::Problem;
use crate::throttle::Allowance;

/// Admits the request or refuses it with 429; `None` when no bucket applies to it. The caller
/// is read from the request's extensions (where the auth phase put the identity).
pub(super) async fn admit(
    x: &Exchange<'_, '_>,
    extensions: &http::Extensions,
) -> Result<Option<Allowance>, Problem> {
    let Some(t) = &x.gw.throttle else {
        return Ok(None);
    };
    let identity = extensions.get::<crate::auth::Identity>();
    let caller = identity
        .and_then(|i| i.plan.as_ref())
        .map(|(p, c)| (p.as_str(), c.as_str()));
    if !t.applies(x.index, caller) {
        return Ok(None);
    }
    let client = crate::throttle::Client {
        ip: x.client,
        cert: x.cert.map(|c| c.fingerprint.as_str()),
    };
    t.admit(x.index, x.route.template, caller, client).await
}
