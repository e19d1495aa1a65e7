//! The response cache (`x-gateway.cache`): GET and HEAD answers with a 2xx status, kept for `ttl`.
//!
//! - The key is the route, the method, every path value of the normalised path, every query
//!   parameter the operation declares (in a canonical order), the query parameters it does not
//!   declare (sorted; or, with `undeclared_query: strip`, they are removed before the upstream
//!   instead), the listed `key` parts (`path.x`, `query.x`, `header.x`, `claims.x`,
//!   `context.x`) and, on a route that requires authentication, the caller's identity (with the
//!   alternative of `security` that let them in), unless `shared: true`. `Host` is never part of
//!   it.
//! - Never stored: 206 answers and any with `Content-Range`, answers with `Set-Cookie`,
//!   `Cache-Control: no-store` or `private`, `Vary: *`, and bodies over 1 MiB. `Vary` is
//!   honoured: an entry answers only requests whose varying headers equal those of the request
//!   that filled it.
//! - Bypassed: requests with `Range`; and, unless the route says `shared: true`, requests that
//!   carry `Authorization` or `Cookie` when the key does not name the caller (no identity, and
//!   no `header.authorization` / `header.cookie` part): the upstream may answer per caller.
//! - `Cache-Control: max-age=0` (or `no-cache`) refreshes the entry only when the caller's plan
//!   or one of its token's scopes is listed in `invalidate`; from anyone else it is ignored.
//! - Concurrent misses of one key make one upstream call; the others wait for it and are then
//!   answered from the cache (or call the upstream themselves when the answer was not
//!   cacheable).
//! - In memory, the cache is bounded in bytes (`state.cache_size`, default 64 MiB, least
//!   recently and least frequently used out first) and, per route, by `max_entries`. With
//!   `state.backend: redis`, entries live in Redis with their TTL, shared by every instance.
// Generated code names `CacheDef` and `KeyPart` on every route; the rest serves the `cache`
// feature only.
#![cfg_attr(not(feature = "cache"), allow(dead_code))]

#[cfg(feature = "cache")]
mod store;
#[cfg(feature = "cache")]
pub use store::*;

use http::{header, HeaderMap};

use crate::auth::Identity;

/// Largest body kept, as with AWS API Gateway.
pub const MAX_ENTRY: usize = 1 << 20;

/// One part of a cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPart {
    /// A path parameter, by its index in the route's parameters.
    Path(usize),
    /// A query parameter (every occurrence, in order).
    Query(&'static str),
    /// A request header (lower case).
    Header(&'static str),
    /// A verified JWT claim.
    Claim(&'static str),
    /// A value of the authorizer's context.
    Context(&'static str),
    /// A field of the verified client certificate (`fingerprint`, `subjectDN`, …).
    ClientCert(&'static str),
}

/// What query parameters the operation does not declare get (`cache.undeclared_query`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UndeclaredQuery {
    /// They are part of the key (sorted).
    Key,
    /// They are removed before the upstream, so they cannot change the answer.
    Strip,
}

/// A route's cache settings.
#[derive(Debug, Clone, Copy)]
pub struct CacheDef {
    /// How long an entry lives, in milliseconds.
    pub ttl_ms: u64,
    /// What the key is made of, besides the route, the method, the path values and the query.
    pub key: &'static [KeyPart],
    /// The query parameters the operation declares, sorted.
    pub query: &'static [&'static str],
    /// What undeclared query parameters get.
    pub undeclared_query: UndeclaredQuery,
    /// Share entries between callers of an authenticated route.
    pub shared: bool,
    /// Plans and scopes whose callers may refresh an entry with `Cache-Control: max-age=0`.
    pub invalidate: &'static [&'static str],
    /// Most entries this route keeps in memory.
    pub max_entries: Option<u64>,
}

/// The identity part of a key: who the caller is, as the security that let them in says, and
/// which alternative of the route's `security` that was (an anonymous caller of a route with
/// optional security never shares entries with an identified one).
pub fn identity_key(id: Option<&Identity>) -> String {
    let Some(id) = id else {
        return "-".into();
    };
    let mut out = String::new();
    if let Some(alt) = id.matched {
        out.push_str(&format!("alt:{alt};"));
    }
    if let Some((plan, name)) = &id.key {
        out.push_str(&format!("k:{plan}:{name};"));
    }
    if let Some(claims) = &id.claims {
        let s = |k: &str| claims.get(k).map(|v| v.to_string()).unwrap_or_default();
        out.push_str(&format!("j:{}|{};", s("iss"), s("sub")));
    }
    if let Some(fingerprint) = &id.client_cert {
        out.push_str(&format!("c:{fingerprint};"));
    }
    if let Some((context, principal)) = &id.authorizer {
        match principal {
            Some(p) => out.push_str(&format!("a:{p};")),
            None => out.push_str(&format!("a:{context};")),
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// Whether the caller may refresh entries (`invalidate` lists its plan or one of its scopes).
pub fn may_invalidate(def: &CacheDef, id: Option<&Identity>) -> bool {
    let Some(id) = id else {
        return false;
    };
    if def.invalidate.is_empty() {
        return false;
    }
    if let Some((plan, _)) = id.key.as_ref().or(id.plan.as_ref()) {
        if def.invalidate.contains(&plan.as_str()) {
            return true;
        }
    }
    if let Some(claims) = &id.claims {
        return def
            .invalidate
            .iter()
            .any(|s| crate::auth::missing_scope(claims, &[s]).is_none());
    }
    false
}

/// Whether the request asks for a fresh answer (`Cache-Control: max-age=0` or `no-cache`).
pub fn wants_refresh(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .any(|d| d == "no-cache" || d == "max-age=0")
}

/// Whether the query pair `pair` is a parameter the operation declares (`name`, or
/// `name[…]` for `deepObject`).
fn declared(def: &CacheDef, pair: &str) -> bool {
    let k = pair.split_once('=').map_or(pair, |(k, _)| k);
    let k = percent_encoding::percent_decode_str(k).decode_utf8_lossy();
    def.query.iter().any(|d| {
        k == *d || (k.len() > d.len() && k.starts_with(d) && k.as_bytes()[d.len()] == b'[')
    })
}

/// The query to forward when undeclared parameters are stripped (`None`: nothing left).
pub fn strip_undeclared(def: &CacheDef, query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && declared(def, p))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// Whether a request must bypass the cache: it asks for a range, or it carries credentials
/// (`Authorization`, `Cookie`) that the key does not tell apart.
pub fn bypass(def: &CacheDef, headers: &HeaderMap, per_caller: bool) -> bool {
    if headers.contains_key(header::RANGE) {
        return true;
    }
    if def.shared || per_caller {
        return false;
    }
    let keyed = |name: &str| {
        def.key
            .iter()
            .any(|p| matches!(p, KeyPart::Header(h) if *h == name))
    };
    (headers.contains_key(header::AUTHORIZATION) && !keyed("authorization"))
        || (headers.contains_key(header::COOKIE) && !keyed("cookie"))
}

/// What a request's cache key is made from.
#[derive(Debug, Clone, Copy)]
pub struct KeySource<'a> {
    /// The route's key (`GET /orders/{id}`).
    pub route: &'a str,
    /// The request's method.
    pub method: &'a str,
    /// The path parameters' values, in template order.
    pub path: &'a [std::borrow::Cow<'a, str>],
    /// The raw query.
    pub query: Option<&'a str>,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The caller's identity key ([`identity_key`]) when entries are per caller.
    pub caller: Option<&'a str>,
    /// The verified identity, for `claims.*` and `context.*` parts.
    pub identity: Option<&'a Identity>,
    /// The verified client certificate, for `client_cert.*` parts.
    pub cert: Option<&'a crate::client_cert::ClientCert>,
}

/// The key's bytes: the route, the method, each part (absent and empty differ), and the
/// caller.
pub fn key(def: &CacheDef, src: &KeySource<'_>) -> Vec<u8> {
    let KeySource {
        route,
        method,
        path,
        query,
        headers,
        caller: identity,
        identity: id,
        cert,
    } = *src;
    let mut k = Vec::with_capacity(128);
    k.extend_from_slice(route.as_bytes());
    k.push(0);
    k.extend_from_slice(method.as_bytes());
    let query_values = |name: &str| -> Option<String> {
        let values: Vec<&str> = query
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (percent_encoding::percent_decode_str(k).decode_utf8_lossy() == name).then_some(v)
            })
            .collect();
        (!values.is_empty()).then(|| values.join("&"))
    };
    let mut part = |v: Option<&[u8]>| {
        k.push(0);
        match v {
            Some(v) => {
                k.push(1);
                k.extend_from_slice(&(v.len() as u32).to_be_bytes());
                k.extend_from_slice(v);
            }
            None => k.push(2),
        }
    };
    // Every path value: one id's answer is never another's.
    for v in path {
        part(Some(v.as_bytes()));
    }
    // Every declared query parameter, in the declared names' sorted order.
    for name in def.query {
        part(query_values(name).as_deref().map(str::as_bytes));
    }
    // Undeclared ones, sorted, unless they are stripped before the upstream.
    if def.undeclared_query == UndeclaredQuery::Key {
        let mut rest: Vec<&str> = query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && !declared(def, p))
            .collect();
        rest.sort_unstable();
        part(Some(rest.join("&").as_bytes()));
    }
    for p in def.key {
        match p {
            KeyPart::Path(i) => part(path.get(*i).map(|s| s.as_bytes())),
            KeyPart::Query(name) => part(query_values(name).as_deref().map(str::as_bytes)),
            KeyPart::Header(name) => {
                let values: Vec<&[u8]> = headers
                    .get_all(*name)
                    .iter()
                    .map(|v| v.as_bytes())
                    .collect();
                let joined = values.join(&b"\n"[..]);
                part((!values.is_empty()).then_some(&joined[..]));
            }
            KeyPart::Claim(name) => {
                let v = id
                    .and_then(|i| i.claims.as_ref())
                    .and_then(|c| c.get(*name))
                    .map(|v| v.to_string());
                part(v.as_deref().map(str::as_bytes));
            }
            KeyPart::ClientCert(name) => {
                let v = cert.and_then(|c| c.field(name));
                part(v.as_deref().map(str::as_bytes));
            }
            KeyPart::Context(name) => {
                let v = id
                    .and_then(|i| i.authorizer.as_ref())
                    .and_then(|(c, _)| c.get(*name))
                    .map(|v| v.to_string());
                part(v.as_deref().map(str::as_bytes));
            }
        }
    }
    if let Some(who) = identity {
        k.push(0);
        k.push(3);
        k.extend_from_slice(who.as_bytes());
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn refresh_directives() {
        let mut h = HeaderMap::new();
        assert!(!wants_refresh(&h));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, Max-Age=0"),
        );
        assert!(wants_refresh(&h));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=10"),
        );
        assert!(!wants_refresh(&h));
    }

    #[test]
    fn absent_and_empty_key_parts_differ() {
        const DEF: CacheDef = CacheDef {
            ttl_ms: 1,
            key: &[KeyPart::Query("lang")],
            query: &["lang"],
            undeclared_query: UndeclaredQuery::Key,
            shared: false,
            invalidate: &[],
            max_entries: None,
        };
        let h = HeaderMap::new();
        let k = |q| {
            key(
                &DEF,
                &KeySource {
                    route: "GET /x",
                    method: "GET",
                    path: &[],
                    query: q,
                    headers: &h,
                    caller: None,
                    identity: None,
                    cert: None,
                },
            )
        };
        assert_ne!(k(None), k(Some("lang=")));
        assert_ne!(k(Some("lang=fr")), k(Some("lang=en")));
        assert_ne!(k(Some("lang=fr&x=1")), k(Some("x=2&lang=fr")));
        assert_eq!(k(Some("lang=fr&x=1&y=2")), k(Some("y=2&x=1&lang=fr")));
    }
}
