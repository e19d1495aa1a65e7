//! Authentication and authorization from the spec's `security`: OpenAPI's semantics (the
//! alternatives of a `security` list are OR, the schemes inside one requirement are AND,
//! `security: []` opts out), API keys from a hashed key file, JWT bearer tokens, and custom
//! authorizers over HTTP.
//!
//! A scheme the gateway cannot verify fails closed: a requirement that needs it never passes.

#[cfg(feature = "authorizer")]
pub mod authorizer;
#[cfg(feature = "jwt")]
pub mod jwt;
pub mod keys;

use std::sync::Arc;

use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::problem::Problem;
use crate::stage::{Stage, StartError};

/// Where API keys are kept (`x-gateway.api_keys.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// A key file (`file:PATH`; the path may interpolate), re-read on SIGHUP.
    File(&'static str),
    /// Redis, at `x-gateway.state.url`.
    Redis,
}

/// Where an API key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyIn {
    /// A header.
    Header,
    /// A query parameter.
    Query,
    /// A cookie.
    Cookie,
}

/// JWT settings of a scheme, as the spec gives them (interpolated at start).
#[derive(Debug, Clone, Copy)]
pub struct JwtDef {
    /// Expected `iss`.
    pub issuer: Option<&'static str>,
    /// Accepted `aud` values (any one).
    pub audience: &'static [&'static str],
    /// Where the JWKS is.
    pub jwks_uri: Option<&'static str>,
    /// OpenID Connect discovery URL (for `openIdConnect` schemes without `jwks_uri`).
    pub discovery: Option<&'static str>,
    /// Inline JWKS (JSON text).
    pub keys: Option<&'static str>,
    /// HMAC secret (for `HS*`).
    pub secret: Option<&'static str>,
    /// Accepted algorithms: only these, whatever a token says.
    pub algorithms: &'static [&'static str],
    /// Clock leeway in seconds.
    pub leeway: u64,
    /// How often a fetched JWKS is fetched again, in milliseconds (default 10 minutes).
    pub jwks_refresh_ms: u64,
    /// The usage plan its callers belong to (one caller per `sub`), for throttles and quotas.
    pub plan: Option<&'static str>,
    /// Where the token is read instead of `Authorization: Bearer` (`query.NAME`,
    /// `header.NAME`, `cookie.NAME`): browsers' WebSocket clients cannot set headers.
    pub token_source: Option<&'static str>,
}

/// An authorizer's settings, as the spec gives them.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizerDef {
    /// Where to POST the event (interpolated at start).
    pub url: &'static str,
    /// Identity sources: `header.NAME`, `query.NAME`, `cookie.NAME`.
    pub identity: &'static [&'static str],
    /// How long a result is cached, in seconds (0: not cached).
    pub ttl: u64,
    /// How long to wait for an answer, in milliseconds.
    pub timeout: u64,
    /// Calls per second on behalf of one client address (twice that in a burst); past it,
    /// 429 without a call. 0: unlimited.
    pub calls_per_client: f64,
    /// The usage plan its callers belong to (one caller per `principalId`, or per value of
    /// `caller`), for throttles and quotas.
    pub plan: Option<&'static str>,
    /// The member of the answer's `context` that names the caller for `plan` (`None`: the
    /// `principalId`).
    pub caller: Option<&'static str>,
    /// `type: lambda`: the function to invoke instead of POSTing to `url`.
    pub lambda: Option<&'static crate::lambda::LambdaDef>,
    /// For a Lambda authorizer of payload 1.0: the TOKEN event (else REQUEST).
    pub token_event: bool,
}

/// A security scheme.
#[derive(Debug, Clone, Copy)]
pub enum SchemeDef {
    /// An API key.
    ApiKey {
        /// Where it is sent.
        location: KeyIn,
        /// The header, query parameter or cookie name.
        name: &'static str,
        /// Usage plans whose keys this scheme accepts (empty: any).
        plans: &'static [&'static str],
    },
    /// A JWT bearer token (`http` bearer, `oauth2`, `openIdConnect`).
    Jwt(JwtDef),
    /// A custom authorizer over HTTP.
    Authorizer(AuthorizerDef),
    /// `mutualTLS`: a client certificate verified against `tls.client_ca` during the handshake.
    MutualTls,
    /// A scheme this gateway cannot verify (`gwgen check` said so): never passes.
    Unverifiable,
}

/// One requirement: all of these (scheme index, scopes) must pass.
pub type Requirement = &'static [(usize, &'static [&'static str])];

/// The spec's security, as generated code describes it.
#[derive(Debug, Clone, Copy)]
pub struct SecurityDef {
    /// Scheme names, by index.
    pub names: &'static [&'static str],
    /// Schemes, by index.
    pub schemes: &'static [SchemeDef],
    /// Schemes whose verified credential the upstream does not get (`forward_credentials:
    /// false`, and API keys in the query by default).
    pub hidden: &'static [usize],
    /// `x-gateway.api_keys.source`, if set.
    pub api_keys: Option<KeySource>,
    /// `x-gateway.state.url`, for `redis` key sources.
    pub redis: Option<&'static str>,
    /// `x-gateway.state.prefix` (default `gwgen:`).
    pub prefix: &'static str,
}

/// Who is calling, once verified.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The API key's usage plan and name, when a key was used.
    pub key: Option<(String, String)>,
    /// The verified JWT claims, when a token was used.
    pub claims: Option<Arc<serde_json::Value>>,
    /// A custom authorizer's `context` (and `principalId`), when one allowed the call.
    pub authorizer: Option<(serde_json::Value, Option<String>)>,
    /// The usage plan and caller that throttles and quotas count against: the API key's, or
    /// a verified identity's when its scheme names a plan.
    pub plan: Option<(String, String)>,
    /// Which alternative of the route's `security` let the caller in.
    pub matched: Option<usize>,
    /// The SHA-256 fingerprint of the client certificate a `mutualTLS` scheme accepted.
    pub client_cert: Option<String>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// 401: missing or invalid credentials; the `WWW-Authenticate` challenge.
    Unauthenticated(&'static str, String),
    /// 403: valid credentials, not allowed here.
    Forbidden(String),
    /// 503: a custom authorizer could not decide.
    Unavailable(String),
    /// 429: too many authorizer calls for one client.
    Throttled(String),
}

impl Denial {
    /// The problem answer.
    pub fn problem(&self) -> Problem {
        match self {
            Denial::Unauthenticated(challenge, detail) => {
                let mut p = Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", detail.clone());
                // The AWS gateway-response type, for `gateway_responses`.
                let lower = detail.to_ascii_lowercase();
                if detail == "the API key is not valid" {
                    p = p.kind("INVALID_API_KEY");
                } else if lower.contains("expired") {
                    p = p.kind("EXPIRED_TOKEN");
                } else if lower.contains("signature") {
                    p = p.kind("INVALID_SIGNATURE");
                } else if lower.contains("is required") {
                    p = p.kind("MISSING_AUTHENTICATION_TOKEN");
                }
                if let Ok(v) = HeaderValue::from_str(challenge) {
                    p.headers.push((header::WWW_AUTHENTICATE, v));
                }
                p
            }
            Denial::Forbidden(detail) => {
                Problem::new(StatusCode::FORBIDDEN, "Forbidden", detail.clone())
            }
            Denial::Unavailable(detail) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                detail.clone(),
            ),
            Denial::Throttled(detail) => {
                let mut p = Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too Many Requests",
                    detail.clone(),
                );
                p.headers
                    .push((header::RETRY_AFTER, HeaderValue::from_static("1")));
                p
            }
        }
    }
}

/// The parts of a request credentials come from (and a custom authorizer's event is built
/// from).
#[derive(Debug)]
pub struct Credentials<'r> {
    /// Headers.
    pub headers: &'r HeaderMap,
    /// The raw query string.
    pub query: Option<&'r str>,
    /// The method.
    pub method: &'r str,
    /// The normalised path's segments, as the router matched them.
    pub segs: &'r [&'r str],
    /// `GET /orders/{orderId}`.
    pub route_key: &'static str,
    /// The stage's name.
    pub stage: &'r str,
    /// The caller's address.
    pub source_ip: std::net::IpAddr,
    /// The request id.
    pub request_id: &'r str,
    /// The route's template (`/orders/{orderId}`).
    pub resource: &'static str,
    /// The path parameters.
    pub params: crate::router::PathParams<'r>,
    /// The stage's variables.
    pub stage_variables: &'r std::collections::BTreeMap<String, String>,
    /// The client certificate the TLS handshake verified against `tls.client_ca`.
    pub client_cert: Option<&'r crate::client_cert::ClientCert>,
}

/// Where an authorizer's identity source or a JWT's `token_source` (`header.X`, `query.X`,
/// `cookie.X`) is read.
#[cfg_attr(
    not(any(feature = "proxy", feature = "authorizer", feature = "jwt")),
    allow(dead_code)
)]
fn identity_place(src: &'static str) -> Option<(KeyIn, &'static str)> {
    match src.split_once('.')? {
        ("header", n) => Some((KeyIn::Header, n)),
        ("query", n) => Some((KeyIn::Query, n)),
        ("cookie", n) => Some((KeyIn::Cookie, n)),
        _ => None,
    }
}

impl Credentials<'_> {
    /// The value sent in a header, query parameter or cookie of this name.
    fn read(&self, place: KeyIn, name: &str) -> Option<String> {
        match place {
            KeyIn::Header => self.header(name).map(str::to_string),
            KeyIn::Query => self.query(name),
            KeyIn::Cookie => self.cookie(name),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn query(&self, name: &str) -> Option<String> {
        self.query?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_encoding::percent_decode_str(k).decode_utf8_lossy();
            (k == name).then(|| {
                percent_encoding::percent_decode_str(&v.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            })
        })
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    }

    /// The bearer token of `Authorization`, if any.
    #[cfg_attr(not(feature = "jwt"), allow(dead_code))]
    fn bearer(&self) -> Option<&[u8]> {
        let v = self.headers.get(http::header::AUTHORIZATION)?.as_bytes();
        // The token's bytes: a remembered token is found by them, and only one to be verified
        // is read as text (a JWT is long). One with bytes other than visible ASCII is no JWT
        // and fails verification like any other bad token.
        let (scheme, token) = v.split_at(v.iter().position(|&b| b == b' ')?);
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return None;
        }
        let token = token.trim_ascii();
        (!token.is_empty()).then_some(token)
    }
}

/// Verifies requests for one gateway.
pub struct Auth {
    def: SecurityDef,
    keys: Arc<keys::KeyStore>,
    #[cfg(feature = "redis")]
    redis_keys: Option<keys::redis_store::RedisKeys>,
    #[cfg(feature = "jwt")]
    jwt: Vec<Option<jwt::Verifier>>,
    #[cfg(feature = "authorizer")]
    authorizers: Vec<Option<authorizer::Authorizer>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("schemes", &self.def.names)
            .finish()
    }
}

impl Auth {
    /// Prepares verification for `stage`: interpolates settings and loads the key file. A key
    /// file that cannot be read, or settings that name a missing variable, stop the start.
    pub fn new(def: SecurityDef, stage: &Stage) -> Result<Auth, StartError> {
        let uses_keys = def
            .schemes
            .iter()
            .any(|s| matches!(s, SchemeDef::ApiKey { .. }));
        #[cfg(feature = "redis")]
        let mut redis_keys = None;
        let keys = match (def.api_keys, uses_keys) {
            (Some(KeySource::Redis), true) => {
                #[cfg(feature = "redis")]
                {
                    let url = def.redis.ok_or_else(|| {
                        StartError::Invalid("API keys in Redis need `x-gateway.state.url`".into())
                    })?;
                    let url = stage.interpolate(url, "`x-gateway.state.url`")?;
                    redis_keys = Some(
                        keys::redis_store::RedisKeys::new(&url, def.prefix)
                            .map_err(StartError::Invalid)?,
                    );
                    keys::KeyStore::empty()
                }
                #[cfg(not(feature = "redis"))]
                {
                    return Err(StartError::Invalid(
                        "this gateway was built without the Redis key store".into(),
                    ));
                }
            }
            (Some(KeySource::File(path)), true) => {
                let path = stage.interpolate(path, "`x-gateway.api_keys.source`")?;
                keys::KeyStore::from_file(path.into()).map_err(StartError::Invalid)?
            }
            _ => keys::KeyStore::empty(),
        };
        #[cfg(feature = "jwt")]
        let jwt = def
            .schemes
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                SchemeDef::Jwt(j) => jwt::Verifier::new(j, stage, def.names[i]).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        #[cfg(feature = "authorizer")]
        let authorizers = def
            .schemes
            .iter()
            .enumerate()
            .map(|(i, s)| match s {
                SchemeDef::Authorizer(a) => {
                    authorizer::Authorizer::new(a, stage, def.names[i]).map(Some)
                }
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Auth {
            def,
            keys: Arc::new(keys),
            #[cfg(feature = "redis")]
            redis_keys,
            #[cfg(feature = "jwt")]
            jwt,
            #[cfg(feature = "authorizer")]
            authorizers,
        })
    }

    /// A presented key's record, from the file or from Redis (which failing is 503: the key
    /// cannot be checked, so the request is not let through).
    async fn lookup_key(&self, presented: &str) -> Result<Option<keys::KeyEntry>, Denial> {
        #[cfg(feature = "redis")]
        if let Some(r) = &self.redis_keys {
            return r.lookup(presented).await.map_err(|e| {
                tracing::error!(error = %e, "the Redis key store failed");
                Denial::Unavailable("the API key store is not available".into())
            });
        }
        Ok(self.keys.lookup(presented))
    }

    /// The header names API keys are sent in (lower case): a request may carry each at most
    /// once, and `Connection` cannot strip them.
    pub(crate) fn key_headers(&self) -> Vec<http::HeaderName> {
        self.def
            .schemes
            .iter()
            .filter_map(|s| match s {
                SchemeDef::ApiKey {
                    location: KeyIn::Header,
                    name,
                    ..
                } => http::HeaderName::from_bytes(name.as_bytes()).ok(),
                _ => None,
            })
            .collect()
    }

    /// The key store (reloaded on SIGHUP by the server).
    pub fn keys(&self) -> &Arc<keys::KeyStore> {
        &self.keys
    }

    /// Checks a request against a route's `security` and `plans`. An empty list means no
    /// security; an empty requirement lets anyone in, and is tried last, so a caller who
    /// presents valid credentials on a route with optional security is identified.
    pub async fn authorize(
        &self,
        security: &'static [Requirement],
        plans: &'static [&'static str],
        creds: &Credentials<'_>,
    ) -> Result<Identity, Denial> {
        if security.is_empty() {
            return Ok(Identity::default());
        }
        let mut worst: Option<Denial> = None;
        let named = security.iter().enumerate().filter(|(_, r)| !r.is_empty());
        let open = security.iter().enumerate().filter(|(_, r)| r.is_empty());
        for (i, requirement) in named.chain(open) {
            match self.requirement(requirement, plans, creds).await {
                Ok(mut id) => {
                    id.matched = Some(i);
                    return Ok(id);
                }
                Err(d) => {
                    // A refusal of valid credentials (403) says more than an undecided one (503),
                    // which says more than a missing one (401).
                    let rank = |d: &Denial| match d {
                        Denial::Unauthenticated(..) => 0,
                        Denial::Unavailable(_) => 1,
                        Denial::Throttled(_) => 2,
                        Denial::Forbidden(_) => 3,
                    };
                    let replace = worst.as_ref().is_none_or(|w| rank(&d) > rank(w));
                    if replace {
                        worst = Some(d);
                    }
                }
            }
        }
        Err(worst.unwrap_or_else(|| {
            Denial::Unauthenticated("Bearer", "authentication is required".into())
        }))
    }

    async fn requirement(
        &self,
        requirement: Requirement,
        plans: &'static [&'static str],
        creds: &Credentials<'_>,
    ) -> Result<Identity, Denial> {
        let mut id = Identity::default();
        for &(index, scopes) in requirement {
            // Scopes are checked against JWT claims; other schemes carry none.
            #[cfg(not(feature = "jwt"))]
            let _ = scopes;
            let name = self.def.names.get(index).copied().unwrap_or("?");
            match self.def.schemes.get(index) {
                Some(SchemeDef::ApiKey {
                    location,
                    name: key_name,
                    plans: scheme_plans,
                }) => {
                    let presented = creds.read(*location, key_name);
                    let challenge = "ApiKey";
                    let Some(presented) = presented.filter(|k| !k.is_empty()) else {
                        return Err(Denial::Unauthenticated(
                            challenge,
                            format!("an API key is required (`{name}`)"),
                        ));
                    };
                    let Some(entry) = self.lookup_key(&presented).await? else {
                        return Err(Denial::Unauthenticated(
                            challenge,
                            "the API key is not valid".into(),
                        ));
                    };
                    let allowed =
                        |list: &[&str]| list.is_empty() || list.contains(&entry.plan.as_str());
                    if !allowed(scheme_plans) || !allowed(plans) {
                        return Err(Denial::Forbidden(format!(
                            "the API key's usage plan `{}` may not call this operation",
                            entry.plan
                        )));
                    }
                    id.key = Some((entry.plan.clone(), entry.name.clone()));
                    id.plan = Some((entry.plan.clone(), entry.name.clone()));
                }
                #[cfg(feature = "jwt")]
                Some(SchemeDef::Jwt(def)) => {
                    let verifier = self.jwt.get(index).and_then(Option::as_ref);
                    let Some(verifier) = verifier else {
                        return Err(Denial::Unauthenticated(
                            "Bearer",
                            "authentication is not available".into(),
                        ));
                    };
                    // Borrowed from the request where it can be: a JWT is long.
                    let token: Option<std::borrow::Cow<'_, [u8]>> =
                        match def.token_source.and_then(identity_place) {
                            // A header may hold the bare token (as API Gateway's Cognito
                            // authorizers read it) or `Bearer TOKEN`.
                            Some((KeyIn::Header, name)) => creds.header(name).map(|v| {
                                match v.get(..7) {
                                    Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim(),
                                    _ => v.trim(),
                                }
                                .as_bytes()
                                .into()
                            }),
                            Some((place, name)) => creds
                                .read(place, name)
                                .map(|t| std::borrow::Cow::Owned(t.into_bytes())),
                            None => creds.bearer().map(std::borrow::Cow::Borrowed),
                        };
                    let Some(token) = token.filter(|t| !t.is_empty()) else {
                        return Err(Denial::Unauthenticated(
                            "Bearer",
                            format!("a bearer token is required (`{name}`)"),
                        ));
                    };
                    let claims = verifier.verify(&token).await.map_err(|why| {
                        Denial::Unauthenticated(
                            "Bearer error=\"invalid_token\"",
                            format!("the bearer token is not valid: {why}"),
                        )
                    })?;
                    if let Some(missing) = missing_scope(&claims, scopes) {
                        return Err(Denial::Forbidden(format!(
                            "the token lacks the scope `{missing}`"
                        )));
                    }
                    if let (Some(plan), None) = (def.plan, &id.plan) {
                        let who = match (claims.get("iss"), claims.get("sub")) {
                            (Some(iss), Some(sub)) => format!("{iss}|{sub}"),
                            (None, Some(sub)) => sub.to_string(),
                            _ => "-".to_string(),
                        };
                        id.plan = Some((plan.to_string(), who));
                    }
                    id.claims = Some(claims);
                }
                #[cfg(feature = "authorizer")]
                Some(SchemeDef::Authorizer(def)) => {
                    let Some(a) = self.authorizers.get(index).and_then(Option::as_ref) else {
                        return Err(Denial::Unavailable(
                            "the authorizer is not available".into(),
                        ));
                    };
                    let verdict = a.authorize(creds).await?;
                    if !verdict.allowed {
                        return Err(Denial::Forbidden(
                            "the authorizer denied the request".into(),
                        ));
                    }
                    let who = match def.caller {
                        Some(member) => match verdict.context.get(member) {
                            Some(serde_json::Value::String(s)) => Some(s.clone()),
                            Some(v) if !v.is_null() => Some(v.to_string()),
                            _ => None,
                        },
                        None => verdict.principal.clone(),
                    };
                    if let (Some(plan), Some(who), None) = (def.plan, who, &id.plan) {
                        id.plan = Some((plan.to_string(), who));
                    }
                    id.authorizer = Some((verdict.context, verdict.principal));
                }
                Some(SchemeDef::MutualTls) => match creds.client_cert {
                    Some(cert) => id.client_cert = Some(cert.fingerprint.clone()),
                    None => {
                        return Err(Denial::Unauthenticated(
                            "ClientCertificate",
                            format!("a client certificate is required (`{name}`)"),
                        ))
                    }
                },
                _ => {
                    return Err(Denial::Unauthenticated(
                        "Bearer",
                        format!("the security scheme `{name}` cannot be verified by this gateway"),
                    ))
                }
            }
        }
        Ok(id)
    }
}

/// Where a credential travels: a header, query parameter or cookie, by name.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
type Place = (KeyIn, &'static str);

#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
impl Auth {
    /// The places the credential of scheme `index` is read from.
    fn places(&self, index: usize, out: &mut smallvec::SmallVec<[Place; 8]>) {
        match self.def.schemes.get(index) {
            Some(SchemeDef::ApiKey { location, name, .. }) => out.push((*location, name)),
            Some(SchemeDef::Jwt(def)) => out.push(
                def.token_source
                    .and_then(identity_place)
                    .unwrap_or((KeyIn::Header, "authorization")),
            ),
            Some(SchemeDef::Authorizer(a)) => {
                out.extend(a.identity.iter().copied().filter_map(identity_place))
            }
            _ => {}
        }
    }

    /// Removes what the upstream must not get from a request about to be forwarded: the
    /// credentials of the route's schemes that did not let this caller in (the upstream could
    /// take them for verified ones), and verified ones whose scheme hides them (API keys in the
    /// query, by default). Returns the query string to forward.
    pub(crate) fn strip_credentials<'q>(
        &self,
        security: &[Requirement],
        matched: Option<usize>,
        headers: &mut HeaderMap,
        query: Option<&'q str>,
    ) -> Option<std::borrow::Cow<'q, str>> {
        let mut kept = smallvec::SmallVec::<[Place; 8]>::new();
        let mut gone = smallvec::SmallVec::<[Place; 8]>::new();
        let passed = matched
            .and_then(|m| security.get(m))
            .copied()
            .unwrap_or(&[]);
        for requirement in security {
            for &(index, _) in *requirement {
                let verified = passed.iter().any(|(i, _)| *i == index);
                if verified && !self.def.hidden.contains(&index) {
                    self.places(index, &mut kept);
                } else {
                    self.places(index, &mut gone);
                }
            }
        }
        let same = |a: &Place, b: &Place| {
            a.0 == b.0
                && match a.0 {
                    KeyIn::Header => a.1.eq_ignore_ascii_case(b.1),
                    KeyIn::Query | KeyIn::Cookie => a.1 == b.1,
                }
        };
        gone.retain(|g| !kept.iter().any(|k| same(g, k)));
        let mut cookies = smallvec::SmallVec::<[&str; 4]>::new();
        let mut params = smallvec::SmallVec::<[&str; 4]>::new();
        for &(place, name) in &gone {
            match place {
                KeyIn::Header => {
                    if let Ok(h) = http::HeaderName::from_bytes(name.as_bytes()) {
                        headers.remove(h);
                    }
                }
                KeyIn::Cookie => cookies.push(name),
                KeyIn::Query => params.push(name),
            }
        }
        if !cookies.is_empty() {
            strip_cookies(headers, &cookies);
        }
        match query {
            Some(q) if !params.is_empty() => {
                let kept: Vec<&str> = q
                    .split('&')
                    .filter(|pair| {
                        let k = pair.split_once('=').map_or(*pair, |(k, _)| k);
                        let k = percent_encoding::percent_decode_str(k).decode_utf8_lossy();
                        !params.iter().any(|p| *p == k)
                    })
                    .collect();
                (!kept.is_empty()).then(|| std::borrow::Cow::Owned(kept.join("&")))
            }
            q => q.map(std::borrow::Cow::Borrowed),
        }
    }
}

/// Removes the named cookies from every `Cookie` field, dropping fields left empty.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
fn strip_cookies(headers: &mut HeaderMap, names: &[&str]) {
    let fields: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .map(str::trim)
                .filter(|c| {
                    let name = c.split_once('=').map_or(*c, |(k, _)| k);
                    !c.is_empty() && !names.contains(&name)
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|v| !v.is_empty())
        .collect();
    headers.remove(header::COOKIE);
    for f in fields {
        if let Ok(v) = HeaderValue::from_str(&f) {
            headers.append(header::COOKIE, v);
        }
    }
}

/// The first of `scopes` the claims do not grant (`scope` as a space-separated string, or `scp`
/// as a list or string).
#[cfg_attr(not(feature = "jwt"), allow(dead_code))]
pub fn missing_scope<'s>(claims: &serde_json::Value, scopes: &[&'s str]) -> Option<&'s str> {
    // A handful of required scopes, looked up in the token's list as it stands: nothing is
    // collected per request.
    let granted = |want: &str| {
        ["scope", "scp"].iter().any(|key| match claims.get(key) {
            // Space-delimited (RFC 6749 §3.3); tabs and line breaks are taken as spaces too.
            Some(serde_json::Value::String(s)) => s.split_ascii_whitespace().any(|x| x == want),
            Some(serde_json::Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(want)),
            _ => false,
        })
    };
    scopes.iter().copied().find(|s| !granted(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_from_scope_or_scp() {
        let c = serde_json::json!({ "scope": "orders:read orders:write\tx y\u{a0}z" });
        assert_eq!(missing_scope(&c, &["orders:read"]), None);
        assert_eq!(missing_scope(&c, &["orders:write", "x"]), None);
        assert_eq!(missing_scope(&c, &["y"]), Some("y"));
        assert_eq!(missing_scope(&c, &["admin"]), Some("admin"));
        let c = serde_json::json!({ "scp": ["a", "b"] });
        assert_eq!(missing_scope(&c, &["a", "b"]), None);
        assert_eq!(missing_scope(&c, &["c"]), Some("c"));
        assert_eq!(missing_scope(&serde_json::json!({}), &["a"]), Some("a"));
    }
}
