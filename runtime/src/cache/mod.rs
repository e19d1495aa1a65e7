//! The response cache (`x-gateway.cache`): GET and HEAD answers with a 2xx status, kept for `ttl`.
//!
//! - The key is the route, the method, the listed `key` parts (`path.x`, `query.x`, `header.x`,
//!   `claims.x`, `context.x`) and, on a route that requires authentication, the caller's
//!   identity, unless `shared: true`.
//! - Never stored: answers with `Set-Cookie`, `Cache-Control: no-store` or `private`, `Vary: *`,
//!   and bodies over 1 MiB. `Vary` is honoured: an entry answers only requests whose varying
//!   headers equal those of the request that filled it.
//! - On a route without gateway authentication, a request that carries `Authorization` bypasses
//!   the cache (the upstream may answer per caller), unless the route says `shared: true`.
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
}

/// A route's cache settings.
#[derive(Debug, Clone, Copy)]
pub struct CacheDef {
    /// How long an entry lives, in milliseconds.
    pub ttl_ms: u64,
    /// What the key is made of, besides the route and the method.
    pub key: &'static [KeyPart],
    /// Share entries between callers of an authenticated route.
    pub shared: bool,
    /// Plans and scopes whose callers may refresh an entry with `Cache-Control: max-age=0`.
    pub invalidate: &'static [&'static str],
    /// Most entries this route keeps in memory.
    pub max_entries: Option<u64>,
}

/// The identity part of a key: who the caller is, as the security that let them in says.
pub fn identity_key(id: Option<&Identity>) -> String {
    let Some(id) = id else {
        return "-".into();
    };
    let mut out = String::new();
    if let Some((plan, name)) = &id.key {
        out.push_str(&format!("k:{plan}:{name};"));
    }
    if let Some(claims) = &id.claims {
        let s = |k: &str| claims.get(k).map(|v| v.to_string()).unwrap_or_default();
        out.push_str(&format!("j:{}|{};", s("iss"), s("sub")));
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

/// What a request's cache key is made from.
#[derive(Debug, Clone, Copy)]
pub struct KeySource<'a> {
    /// The route's key (`GET /orders/{id}`).
    pub route: &'a str,
    /// The request's method.
    pub method: &'a str,
    /// The path parameters' values, in template order.
    pub path: &'a [&'a str],
    /// The raw query.
    pub query: Option<&'a str>,
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The caller's identity key ([`identity_key`]) when entries are per caller.
    pub caller: Option<&'a str>,
    /// The verified identity, for `claims.*` and `context.*` parts.
    pub identity: Option<&'a Identity>,
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
    } = *src;
    let mut k = Vec::with_capacity(128);
    k.extend_from_slice(route.as_bytes());
    k.push(0);
    k.extend_from_slice(method.as_bytes());
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
    for p in def.key {
        match p {
            KeyPart::Path(i) => part(path.get(*i).map(|s| s.as_bytes())),
            KeyPart::Query(name) => {
                let values: Vec<&str> = query
                    .unwrap_or("")
                    .split('&')
                    .filter_map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        (percent_encoding::percent_decode_str(k).decode_utf8_lossy() == *name)
                            .then_some(v)
                    })
                    .collect();
                let joined = values.join("&");
                part((!values.is_empty()).then_some(joined.as_bytes()));
            }
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
                },
            )
        };
        assert_ne!(k(None), k(Some("lang=")));
        assert_ne!(k(Some("lang=fr")), k(Some("lang=en")));
        assert_eq!(k(Some("lang=fr&x=1")), k(Some("x=2&lang=fr")));
    }
}
