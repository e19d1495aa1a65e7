//! JWT bearer tokens: signatures checked against the scheme's keys (inline JWKS, an HMAC secret,
//! or a JWKS fetched from `jwks_uri` or OpenID Connect discovery), with the algorithms the spec
//! lists and no other, whatever a token's header says. `exp` is required; `nbf`, `iss` and `aud`
//! are checked, with `leeway`.
//!
//! Key endpoints are fetched over `http://` or `https://` (rustls, the system's roots or
//! `SSL_CERT_FILE`). A fetched JWKS is cached and fetched again on a schedule (`jwks_refresh`,
//! default 10 minutes), so a key removed at the issuer stops verifying within that time; a
//! token whose `kid` the cache lacks triggers a refresh too. Fetches happen at most once per
//! 30 seconds (or per `jwks_refresh`, if shorter) whatever the traffic; when the endpoint is
//! down the cached keys keep serving. A JWKS named by OpenID Connect discovery must be
//! `https://` (or `http://` when the discovery URL itself is).

use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::JwtDef;
use crate::percore::{Padded, SLOTS};
use crate::stage::{Stage, StartError};

/// The shortest time between two fetches of a JWKS.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

type Client =
    hyper_util::client::legacy::Client<crate::tls::Connector, http_body_util::Empty<bytes::Bytes>>;

/// One scheme's verifier.
pub struct Verifier {
    name: String,
    algorithms: Vec<Algorithm>,
    issuer: Option<String>,
    audience: Vec<String>,
    leeway: u64,
    secret: Option<DecodingKey>,
    inline: Option<JwkSet>,
    remote: Option<Remote>,
    /// Tokens whose signature was checked in the last [`VERIFIED_TTL`] (or `jwks_refresh`, if
    /// shorter), by their text (as Envoy's `jwt_cache`): a token seen again skips the signature
    /// check, not the clock checks. Cleared when a refresh changes the keys. One part for each
    /// thread slot ([`crate::percore::slot`]), each on a cache line of its own: a thread looks
    /// only in its own, so cores serving the same token never take the same lock (each verifies
    /// it once).
    verified: [Padded<std::sync::Mutex<Verified>>; SLOTS],
    /// How long a remembered token is trusted, in milliseconds.
    verified_ttl_ms: u64,
}

/// Verified tokens, keyed by the whole token, hashed by its end.
type Verified = std::collections::HashMap<Box<[u8]>, Remembered, TokenHash>;

/// A verified token's claims, with the times checked again each time it is seen.
#[derive(Debug, Clone)]
struct Remembered {
    claims: Arc<serde_json::Value>,
    /// When its signature was checked, on [`crate::deadline::coarse_ms`]'s clock.
    at: u64,
    /// Its `exp` claim.
    exp: f64,
    /// Its `nbf` claim, if it has one.
    nbf: Option<f64>,
}

impl Remembered {
    /// What is remembered of a token with these claims: nothing unless its `exp` (and an
    /// `nbf`) is a number, as a remembered token's times are checked again each time.
    fn of(claims: &Arc<serde_json::Value>, at: u64) -> Option<Remembered> {
        let nbf = match claims.get("nbf") {
            Some(nbf) => Some(nbf.as_f64()?),
            None => None,
        };
        Some(Remembered {
            claims: claims.clone(),
            at,
            exp: claims.get("exp")?.as_f64()?,
            nbf,
        })
    }
}

/// Bytes of a token's end that its hash reads.
const HASHED_END: usize = 32;

/// Hashes a token by its last [`HASHED_END`] bytes and its length, with a fast randomly seeded
/// hash. A token ends with its signature, so its end tells tokens apart as well as the whole
/// would, at a tenth of the cost for a 700-byte JWT. Only verified tokens are stored, so no
/// caller can fill the map with tokens that share an end; equal ends only make a lookup compare
/// more tokens whole.
#[derive(Debug, Clone, Default)]
struct TokenHash(foldhash::fast::RandomState);

impl std::hash::BuildHasher for TokenHash {
    type Hasher = EndHasher;
    fn build_hasher(&self) -> EndHasher {
        EndHasher(self.0.build_hasher())
    }
}

/// See [`TokenHash`].
struct EndHasher(foldhash::fast::FoldHasher<'static>);

impl std::hash::Hasher for EndHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_END)..]);
        self.0.write_usize(bytes.len());
    }

    fn write_u8(&mut self, i: u8) {
        self.0.write_u8(i);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// How long a verified token is remembered. A key removed from the JWKS stops accepting its
/// tokens at most this long after.
const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// Most tokens remembered by one thread slot; its part is cleared when it is full.
const VERIFIED_MAX: usize = 1024;

struct Remote {
    /// `jwks_uri`, or the discovery URL that names it.
    jwks_uri: RwLock<Option<String>>,
    discovery: Option<String>,
    cache: RwLock<Option<JwkSet>>,
    /// When the cached set was fetched ([`crate::deadline::coarse_ms`]; 0: never).
    fetched_ms: std::sync::atomic::AtomicU64,
    /// `jwks_refresh`, in milliseconds.
    refresh_ms: u64,
    /// The shortest time between two fetches.
    gap: Duration,
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    client: Client,
}

impl Remote {
    /// Whether the cached set is older than `jwks_refresh`.
    fn stale(&self) -> bool {
        let at = self.fetched_ms.load(std::sync::atomic::Ordering::Relaxed);
        at != 0 && crate::deadline::coarse_ms().saturating_sub(at) >= self.refresh_ms
    }

    /// The cached key for a token, if the cache has one.
    fn cached(&self, kid: Option<&str>, alg: Algorithm) -> Option<Result<DecodingKey, String>> {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|set| find(set, kid, alg))
    }
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("scheme", &self.name)
            .finish()
    }
}

fn http_only(url: &str, what: &str) -> Result<(), StartError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(StartError::Invalid(format!(
            "{what} `{url}` is not an http:// or https:// URL"
        )))
    }
}

impl Verifier {
    /// Prepares a scheme's verifier; settings are interpolated for `stage`.
    pub fn new(def: &JwtDef, stage: &Stage, name: &str) -> Result<Verifier, StartError> {
        let context = |k: &str| format!("`{k}` of security scheme `{name}`");
        let algorithms = def
            .algorithms
            .iter()
            .map(|a| {
                Algorithm::from_str(a).map_err(|_| {
                    StartError::Invalid(format!(
                        "security scheme `{name}`: unknown algorithm `{a}`"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let secret = match def.secret {
            Some(s) => Some(DecodingKey::from_secret(
                stage.interpolate(s, &context("secret"))?.as_bytes(),
            )),
            None => None,
        };
        let inline = match def.keys {
            Some(text) => Some(serde_json::from_str::<JwkSet>(text).map_err(|e| {
                StartError::Invalid(format!(
                    "security scheme `{name}`: `keys` is not a JWKS: {e}"
                ))
            })?),
            None => None,
        };
        let jwks_uri = match def.jwks_uri {
            Some(u) => {
                let u = stage.interpolate(u, &context("jwks_uri"))?;
                http_only(&u, "jwks_uri")?;
                Some(u)
            }
            None => None,
        };
        let discovery = match def.discovery {
            Some(u) if jwks_uri.is_none() => {
                let u = stage.interpolate(u, &context("openIdConnectUrl"))?;
                http_only(&u, "openIdConnectUrl")?;
                Some(u)
            }
            _ => None,
        };
        let refresh = Duration::from_millis(def.jwks_refresh_ms.max(1));
        let remote = if jwks_uri.is_some() || discovery.is_some() {
            let connector = crate::tls::connector();
            Some(Remote {
                jwks_uri: RwLock::new(jwks_uri),
                discovery,
                cache: RwLock::new(None),
                fetched_ms: std::sync::atomic::AtomicU64::new(0),
                refresh_ms: refresh.as_millis() as u64,
                gap: REFRESH_INTERVAL.min(refresh),
                last_attempt: tokio::sync::Mutex::new(None),
                client: hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build(connector),
            })
        } else {
            None
        };
        Ok(Verifier {
            name: name.to_string(),
            algorithms,
            issuer: def.issuer.map(str::to_string),
            audience: def.audience.iter().map(|s| s.to_string()).collect(),
            leeway: def.leeway,
            secret,
            inline,
            remote,
            verified: std::array::from_fn(|_| Padded(std::sync::Mutex::new(Verified::default()))),
            verified_ttl_ms: VERIFIED_TTL.min(refresh).as_millis() as u64,
        })
    }

    fn validation(&self) -> Validation {
        let mut v = Validation::new(self.algorithms.first().copied().unwrap_or(Algorithm::RS256));
        v.algorithms = self.algorithms.clone();
        v.leeway = self.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        match &self.issuer {
            Some(iss) => v.set_issuer(&[iss]),
            None => v.iss = None,
        }
        // The audience is checked after decoding (`audience_holds`), since a token without
        // `aud` may name its client in `client_id` instead.
        v.validate_aud = false;
        v
    }

    /// Whether the claims name an accepted audience: `aud` (a string or a list), or, in a
    /// token without `aud`, `client_id`, as API Gateway's JWT and Cognito authorizers accept
    /// (Cognito's access tokens carry `client_id` and no `aud`).
    fn audience_holds(&self, claims: &serde_json::Value) -> bool {
        if self.audience.is_empty() {
            return true;
        }
        let accepted = |v: &serde_json::Value| {
            v.as_str()
                .is_some_and(|s| self.audience.iter().any(|a| a == s))
        };
        match claims.get("aud") {
            Some(serde_json::Value::Array(list)) => list.iter().any(accepted),
            Some(aud) => accepted(aud),
            None => claims.get("client_id").is_some_and(accepted),
        }
    }

    /// Verifies a token; the claims, or why not. A remembered token is found by its bytes; only
    /// one to be verified is read as text (a JWT is long).
    pub async fn verify(&self, token: &[u8]) -> Result<Arc<serde_json::Value>, String> {
        // The fetch and the signature check are boxed: they are rare, and their futures would
        // otherwise make every request's future (which holds this one) larger.
        if let Some(remote) = self.remote.as_ref().filter(|r| r.stale()) {
            // One request fetches the keys again; the others go on with the cached keys rather
            // than wait for it (the endpoint may be slow or down).
            if let Ok(last) = remote.last_attempt.try_lock() {
                Box::pin(self.refresh_with(remote, last)).await;
            }
        }
        if let Some(claims) = self.recall(token) {
            return Ok(claims);
        }
        let text = std::str::from_utf8(token).map_err(|_| "the token is not text".to_string())?;
        let claims = Arc::new(Box::pin(self.check_signature(text)).await?);
        let mut verified = self.own().lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        if let Some(r) = Remembered::of(&claims, crate::deadline::coarse_ms()) {
            verified.insert(token.into(), r);
        }
        Ok(claims)
    }

    /// The calling thread's part of the remembered tokens.
    fn own(&self) -> &std::sync::Mutex<Verified> {
        &self.verified[crate::percore::slot()]
    }

    /// A token verified in the last [`VERIFIED_TTL`] whose `exp` and `nbf` still hold now.
    fn recall(&self, token: &[u8]) -> Option<Arc<serde_json::Value>> {
        let claims = {
            let verified = self.own().lock().unwrap_or_else(|e| e.into_inner());
            let r = verified.get(token)?;
            let age = crate::deadline::coarse_ms().saturating_sub(r.at);
            if age >= self.verified_ttl_ms {
                return None;
            }
            // The coarse clocks (10 ms) are exact enough for a 60 s memory and whole-second
            // claims.
            let now = crate::deadline::coarse_unix_secs();
            if r.exp + self.leeway as f64 <= now as f64 {
                return None;
            }
            if r.nbf.is_some_and(|nbf| nbf > (now + self.leeway) as f64) {
                return None;
            }
            r.claims.clone()
        };
        Some(claims)
    }

    async fn check_signature(&self, token: &str) -> Result<serde_json::Value, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        if !self.algorithms.contains(&header.alg) {
            return Err(format!(
                "the algorithm {:?} is not accepted here",
                header.alg
            ));
        }
        // The header's algorithm is one the spec allows; the key must be of its family.
        let mut validation = self.validation();
        validation.algorithms = vec![header.alg];
        let is_hmac = matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        );
        let key = if is_hmac {
            self.secret
                .clone()
                .ok_or_else(|| "no secret is configured for HMAC tokens".to_string())?
        } else {
            self.public_key(header.kid.as_deref(), header.alg).await?
        };
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())?;
        if !self.audience_holds(&claims) {
            return Err("InvalidAudience".into());
        }
        Ok(claims)
    }

    async fn public_key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, String> {
        if let Some(set) = &self.inline {
            if let Some(k) = find(set, kid, alg) {
                return k;
            }
        }
        let Some(remote) = &self.remote else {
            return Err("no key matches the token".into());
        };
        if let Some(k) = remote.cached(kid, alg) {
            return k;
        }
        // Unknown `kid` (or nothing cached yet): refresh, at most once per interval.
        self.refresh(remote).await;
        remote
            .cached(kid, alg)
            .unwrap_or_else(|| Err("no key matches the token's `kid`".into()))
    }

    async fn refresh(&self, remote: &Remote) {
        let last = remote.last_attempt.lock().await;
        self.refresh_with(remote, last).await;
    }

    /// Fetches the keys again unless the last attempt (`last`, held) was too recent.
    async fn refresh_with(
        &self,
        remote: &Remote,
        mut last: tokio::sync::MutexGuard<'_, Option<Instant>>,
    ) {
        if last.is_some_and(|t| t.elapsed() < remote.gap) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch(remote).await {
            Ok(set) => {
                let mut cache = remote.cache.write().unwrap_or_else(|e| e.into_inner());
                let changed = cache.as_ref() != Some(&set);
                *cache = Some(set);
                drop(cache);
                remote.fetched_ms.store(
                    crate::deadline::coarse_ms().max(1),
                    std::sync::atomic::Ordering::Relaxed,
                );
                if changed {
                    // Tokens remembered as verified may have been signed by a removed key.
                    for shard in &self.verified {
                        shard.lock().unwrap_or_else(|e| e.into_inner()).clear();
                    }
                }
            }
            Err(e) => tracing::warn!(
                scheme = %self.name,
                error = %e,
                "cannot fetch the JWKS; the cached keys stay in use"
            ),
        }
    }

    async fn fetch(&self, remote: &Remote) -> Result<JwkSet, String> {
        let known = remote
            .jwks_uri
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let uri = match known {
            Some(u) => u,
            None => {
                let discovery = remote.discovery.clone().unwrap_or_default();
                let doc: serde_json::Value = get_json(&remote.client, &discovery).await?;
                let u = doc
                    .get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .ok_or("the discovery document has no `jwks_uri`")?
                    .to_string();
                // Keys are never fetched with less protection than the discovery document.
                let plain_ok = discovery.starts_with("http://");
                if !(u.starts_with("https://") || (plain_ok && u.starts_with("http://"))) {
                    return Err(format!(
                        "the discovered jwks_uri `{u}` is not an https:// URL"
                    ));
                }
                *remote.jwks_uri.write().unwrap_or_else(|e| e.into_inner()) = Some(u.clone());
                u
            }
        };
        let value = get_json(&remote.client, &uri).await?;
        serde_json::from_value::<JwkSet>(value).map_err(|e| format!("not a JWKS: {e}"))
    }
}

/// The key of `set` for a token: by `kid`, else the only key usable with `alg`.
fn find(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<Result<DecodingKey, String>> {
    let jwk = match kid {
        Some(kid) => set.find(kid)?,
        None => {
            let mut usable = set
                .keys
                .iter()
                .filter(|k| DecodingKey::from_jwk(k).is_ok_and(|_| key_fits(k, alg)));
            let first = usable.next()?;
            if usable.next().is_some() {
                return Some(Err(
                    "the token has no `kid` and several keys could verify it".into(),
                ));
            }
            first
        }
    };
    if !key_fits(jwk, alg) {
        return Some(Err(
            "the key named by `kid` is not for this algorithm".into()
        ));
    }
    Some(DecodingKey::from_jwk(jwk).map_err(|e| e.to_string()))
}

/// A JWK that names an algorithm is only used for that algorithm.
fn key_fits(jwk: &jsonwebtoken::jwk::Jwk, alg: Algorithm) -> bool {
    match jwk.common.key_algorithm {
        Some(ka) => format!("{ka:?}") == format!("{alg:?}"),
        None => true,
    }
}

async fn get_json(client: &Client, url: &str) -> Result<serde_json::Value, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}`: {e}"))?;
    let req = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(http_body_util::Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .map_err(|_| format!("`{url}` did not answer in 5 s"))?
        .map_err(|e| format!("`{url}`: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("`{url}` answered {}", resp.status()));
    }
    let body = http_body_util::Limited::new(resp.into_body(), 1 << 20);
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .map_err(|e| format!("`{url}`: {e}"))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| format!("`{url}` is not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    #[test]
    fn remembered_tokens_that_share_an_end_stay_apart() {
        let end = "x".repeat(HASHED_END);
        let mut verified = Verified::default();
        let tokens: Vec<String> = (0..50).map(|n| format!("head{n}.{end}")).collect();
        for (n, t) in tokens.iter().enumerate() {
            let claims = Arc::new(serde_json::json!({ "n": n, "exp": 1 }));
            let r = Remembered::of(&claims, 0).expect("has exp");
            verified.insert(t.as_bytes().into(), r);
        }
        for (n, t) in tokens.iter().enumerate() {
            let r = verified.get(t.as_bytes()).expect("remembered");
            assert_eq!(r.claims["n"], n, "{t}");
        }
        assert!(!verified.contains_key(format!("other.{end}").as_bytes()));
        assert!(!verified.contains_key(end.as_bytes()));
        // Short tokens are hashed whole.
        let r = Remembered::of(&Arc::new(serde_json::json!({ "exp": 1 })), 0).expect("has exp");
        verified.insert(b"a"[..].into(), r);
        assert!(verified.contains_key(&b"a"[..]) && !verified.contains_key(&b"b"[..]));
    }

    #[test]
    fn a_token_that_is_not_text_is_refused_and_not_remembered() {
        let def = JwtDef {
            issuer: None,
            audience: &[],
            jwks_uri: None,
            discovery: None,
            keys: None,
            secret: Some("a test secret of thirty-two bytes!"),
            algorithms: &["HS256"],
            leeway: 0,
            jwks_refresh_ms: 600_000,
            plan: None,
            token_source: None,
        };
        let verifier = Verifier::new(&def, &Stage::new("test", &[]), "jwt").expect("verifier");
        let token = b"eyJhbGciOiJIUzI1NiJ9.\xff\xfe.sig";
        assert_eq!(
            block_on(verifier.verify(token)).expect_err("refused"),
            "the token is not text"
        );
        assert!(verifier.recall(token).is_none());
    }

    #[test]
    fn only_tokens_whose_times_are_numbers_are_remembered() {
        let of = |v: serde_json::Value| Remembered::of(&Arc::new(v), 7);
        assert!(of(serde_json::json!({ "sub": "ada" })).is_none());
        assert!(of(serde_json::json!({ "exp": "soon" })).is_none());
        assert!(of(serde_json::json!({ "exp": 10, "nbf": "now" })).is_none());
        let r = of(serde_json::json!({ "exp": 10, "nbf": 5.5 })).expect("remembered");
        assert_eq!((r.at, r.exp, r.nbf), (7, 10.0, Some(5.5)));
        let r = of(serde_json::json!({ "exp": 10 })).expect("remembered");
        assert_eq!(r.nbf, None);
    }

    #[test]
    fn each_thread_remembers_the_tokens_it_verified() {
        let def = JwtDef {
            issuer: None,
            audience: &[],
            jwks_uri: None,
            discovery: None,
            keys: None,
            secret: Some("a test secret of thirty-two bytes!"),
            algorithms: &["HS256"],
            leeway: 0,
            jwks_refresh_ms: 600_000,
            plan: None,
            token_source: None,
        };
        let verifier = Verifier::new(&def, &Stage::new("test", &[]), "jwt").expect("verifier");
        let exp = crate::deadline::coarse_unix_secs() + 3600;
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({ "sub": "ada", "exp": exp }),
            &jsonwebtoken::EncodingKey::from_secret(b"a test secret of thirty-two bytes!"),
        )
        .expect("token");
        assert!(verifier.recall(token.as_bytes()).is_none());
        block_on(verifier.verify(token.as_bytes())).expect("verifies");
        assert!(
            verifier.recall(token.as_bytes()).is_some(),
            "the verifying thread remembers it"
        );
        // Another thread, on another slot, has its own memory: it never takes this one's lock.
        let own = crate::percore::slot();
        std::thread::scope(|s| loop {
            let (slot, remembered) = s
                .spawn(|| {
                    (
                        crate::percore::slot(),
                        verifier.recall(token.as_bytes()).is_some(),
                    )
                })
                .join()
                .expect("thread");
            if slot != own {
                assert!(!remembered, "slot {slot} saw slot {own}'s memory");
                break;
            }
        });
    }
}
