//! The cache phase: GET and HEAD of a route with `cache` are answered from the response cache,
//! or fetched once (concurrent misses wait for the one fetch) and stored when the answer may be
//! cached. Keys and storage are [`crate::cache`]'s.

use axum::extract::Request;
use axum::response::Response;
use http::Method;

use super::integration::serve_checked;
use super::Exchange;
use crate::observe::AccessRecord;
use crate::problem::Problem;

/// The route's cache settings and the gateway's cache, when this request may use them.
pub(super) fn applies<'a>(
    x: &Exchange<'a, '_>,
    req: &Request,
) -> Option<(
    &'static crate::cache::CacheDef,
    &'a crate::cache::ResponseCache,
)> {
    let (def, cache) = (x.route.cache?, x.gw.cache.as_ref()?);
    (req.method() == Method::GET || req.method() == Method::HEAD).then_some((def, cache))
}

/// Removes the query parameters the operation does not declare, so they can change neither the
/// key nor the answer.
fn strip_undeclared(def: &crate::cache::CacheDef, req: &mut Request) {
    let Some(q) = req.uri().query() else {
        return;
    };
    let kept = crate::cache::strip_undeclared(def, q);
    if kept.as_deref() == Some(q) {
        return;
    }
    let path = req.uri().path();
    let pq = match kept {
        Some(k) => format!("{path}?{k}"),
        None => path.to_string(),
    };
    if let Ok(pq) = http::uri::PathAndQuery::try_from(pq) {
        let mut parts = req.uri().clone().into_parts();
        parts.path_and_query = Some(pq);
        if let Ok(uri) = http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

/// A cacheable request: answered from the cache, or fetched once (concurrent misses wait for
/// the one fetch) and stored when the answer may be cached. See [`crate::cache`].
pub(super) async fn serve(
    at: &Exchange<'_, '_>,
    def: &crate::cache::CacheDef,
    cache: &crate::cache::ResponseCache,
    mut req: Request,
    record: &mut AccessRecord,
) -> Result<Response, Problem> {
    use crate::cache::{Lookup, ResponseCache, UndeclaredQuery};
    let route = at.route;
    let head = req.method() == Method::HEAD;
    let authenticated = !route.security.is_empty();
    if def.undeclared_query == UndeclaredQuery::Strip {
        strip_undeclared(def, &mut req);
    }
    let identity = req.extensions().get::<crate::auth::Identity>();
    let who = (authenticated && !def.shared).then(|| crate::cache::identity_key(identity));
    if crate::cache::bypass(def, req.headers(), who.is_some()) {
        cache.count(route.template, "bypass");
        return serve_checked(at, req, record).await;
    }
    let key = crate::cache::key(
        def,
        &crate::cache::KeySource {
            route: route.key,
            method: req.method().as_str(),
            path: at.params.values(),
            query: req.uri().query(),
            headers: req.headers(),
            caller: who.as_deref(),
            identity,
            cert: at.cert,
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
    let resp = serve_checked(at, req, record).await?;
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
