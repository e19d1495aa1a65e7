//! Authentication end to end: tokens made with PyJWT (a real JOSE library, from PyPI, installed
//! into `target/py-venv` on first use), a JWKS endpoint that counts its fetches, API keys made by
//! the gateway's own `keys add`, and an upstream that counts what reaches it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::gateway::{build, Running};
use crate::net::{get, send, Upstream};
use crate::support::repo;

/// A Python with PyJWT and cryptography: `GWGEN_PYTHON`, else a venv under `target/`.
pub(crate) fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("GWGEN_PYTHON") {
            return PathBuf::from(p);
        }
        let venv = repo().join("target").join("py-venv");
        let py = venv.join("bin").join("python");
        let ready = Command::new(&py)
            .args([
                "-c",
                "import jwt, cryptography, awslambdaric, botocore, grpc, h2, websockets",
            ])
            .status()
            .is_ok_and(|s| s.success());
        if !ready {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .is_ok_and(|s| s.success())
                && Command::new(venv.join("bin").join("pip"))
                    .args([
                        "install",
                        "-q",
                        "pyjwt==2.15.1",
                        "cryptography==50.0.2",
                        "awslambdaric==4.2.2",
                        "botocore==1.44.8",
                        "grpcio==1.85.1",
                        "h2==4.4.1",
                        "websockets==17.4",
                    ])
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(
                ok,
                "cannot install PyJWT, awslambdaric, botocore, grpcio, h2 and websockets into {}",
                venv.display()
            );
        }
        py
    })
    .clone()
}

pub(crate) struct Material {
    pub(crate) tokens: HashMap<String, String>,
    pub(crate) jwks: String,
    pub(crate) hs_secret: String,
}

pub(crate) fn material(dir: &Path) -> Material {
    let status = Command::new(python())
        .arg(repo().join("tests/tools/make_tokens.py"))
        .arg(dir)
        .status()
        .expect("python runs");
    assert!(status.success(), "make_tokens.py failed");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("token material");
    Material {
        tokens: serde_json::from_str(&read("tokens.json")).expect("tokens.json"),
        jwks: read("jwks.json"),
        hs_secret: read("hs_secret.txt"),
    }
}

/// A JWKS endpoint: serves one document, counts fetches, and can be switched off (503).
pub(crate) struct Jwks {
    pub(crate) port: u16,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

impl Jwks {
    pub(crate) fn start(doc: String) -> Jwks {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let fetches = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let (f, d) = (fetches.clone(), down.clone());
        let doc = Arc::new(doc);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (f, d, doc) = (f.clone(), d.clone(), doc.clone());
                // One thread a connection: each verifier keeps its own connection open.
                std::thread::spawn(move || serve_jwks(conn, port, &f, &d, &doc));
            }
        });
        Jwks {
            port,
            fetches,
            down,
        }
    }
}

fn serve_jwks(
    conn: std::net::TcpStream,
    port: u16,
    fetches: &AtomicUsize,
    down: &AtomicBool,
    doc: &str,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut w) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        // Skip the headers.
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
        }
        fetches.fetch_add(1, Ordering::SeqCst);
        // OpenID Connect discovery names the JWKS.
        let discovery = format!(
            "{{\"issuer\":\"https://issuer.test\",\"jwks_uri\":\"http://127.0.0.1:{port}/jwks.json\"}}"
        );
        let doc = if line.contains("openid-configuration") {
            discovery.as_str()
        } else {
            doc
        };
        let resp = if down.load(Ordering::SeqCst) {
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n".to_string()
        } else {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{doc}",
                doc.len()
            )
        };
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// A custom authorizer: decides by the identity (`allow-…`, `policy-…`, `deny`, `crash`), counts
/// its calls, and keeps the last event.
pub(crate) struct Authz {
    pub(crate) port: u16,
    calls: Arc<AtomicUsize>,
    last: Arc<std::sync::Mutex<serde_json::Value>>,
}

impl Authz {
    pub(crate) fn start() -> Authz {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let calls = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(std::sync::Mutex::new(serde_json::Value::Null));
        let (c, l) = (calls.clone(), last.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (c, l) = (c.clone(), l.clone());
                std::thread::spawn(move || serve_authz(conn, &c, &l));
            }
        });
        Authz { port, calls, last }
    }
}

fn serve_authz(
    conn: std::net::TcpStream,
    calls: &AtomicUsize,
    last: &std::sync::Mutex<serde_json::Value>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut w) = conn.try_clone() else {
        return;
    };
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        if std::io::Read::read_exact(&mut r, &mut body).is_err() {
            return;
        }
        calls.fetch_add(1, Ordering::SeqCst);
        let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let identity = event["identitySource"][0]
            .as_str()
            .unwrap_or("")
            .to_string();
        *last.lock().unwrap_or_else(|e| e.into_inner()) = event;
        let (status, answer) = if identity.starts_with("allow") {
            (
                200,
                serde_json::json!({"isAuthorized": true, "context": {"user": identity}}),
            )
        } else if identity.starts_with("only-authz") {
            (
                200,
                serde_json::json!({"principalId": "p2", "policyDocument": {"Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:*:*:*/dev/GET/authz"}]}}),
            )
        } else if identity.starts_with("policy") {
            (
                200,
                serde_json::json!({"principalId": "p1", "policyDocument": {"Version": "2012-10-17",
                "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:*:*:*/dev/GET/*"}]}}),
            )
        } else if identity == "crash" {
            (500, serde_json::json!({"error": "boom"}))
        } else {
            (200, serde_json::json!({"isAuthorized": false}))
        };
        let text = answer.to_string();
        let resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

pub(crate) fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

pub(crate) fn add_key(bin: &Path, plan: &str, file: &Path) -> String {
    let out = Command::new(bin)
        .args(["keys", "add", "--plan", plan, "--file"])
        .arg(file)
        .output()
        .expect("keys add runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(key.starts_with("gw_") && key.len() > 40, "{key}");
    key
}

/// A private CA and a certificate for 127.0.0.1 it signed (for servers and clients), made with
/// the openssl CLI:
/// `(ca.pem, 127.0.0.1.pem, 127.0.0.1.key)`.
pub(crate) fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = crate::tls::ca(dir, "ca");
    let (leaf, key) = crate::tls::leaf(
        dir,
        "ca",
        "127.0.0.1",
        "IP:127.0.0.1",
        "serverAuth,clientAuth",
    );
    (ca, leaf, key)
}

/// The JWKS over HTTPS (Python's `ssl`), stopped by PID when dropped.
struct HttpsJwks {
    _child: crate::support::Killed,
    port: u16,
}

impl HttpsJwks {
    fn start(dir: &Path, cert: &Path, key: &Path, jwks: &str) -> HttpsJwks {
        let file = dir.join("tls-jwks.json");
        std::fs::write(&file, jwks).expect("jwks");
        let port = crate::net::free_port();
        let child = Command::new("python3")
            .arg(repo().join("tests/tools/https_file_server.py"))
            .arg(port.to_string())
            .arg(cert)
            .arg(key)
            .arg(&file)
            .spawn()
            .expect("python3 runs");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the HTTPS JWKS server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        HttpsJwks {
            _child: crate::support::Killed(child),
            port,
        }
    }
}

#[test]
fn security_is_enforced_and_nothing_refused_reaches_the_upstream() {
    let dir = std::env::temp_dir().join(format!("gwgen-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let m = material(&dir);
    let jwks = Jwks::start(m.jwks.clone());
    let authz = Authz::start();
    let (ca, leaf, leaf_key) = certificates(&dir);
    let tls_jwks = HttpsJwks::start(&dir, &leaf, &leaf_key, &m.jwks);
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/auth.yaml");
    let keys = dir.join("keys.txt");
    let free = add_key(&bin, "free", &keys);
    let pro = add_key(&bin, "pro", &keys);
    assert!(
        !std::fs::read_to_string(&keys)
            .unwrap_or_default()
            .contains(&free),
        "keys are stored hashed"
    );
    let gw = Running::start(
        &bin,
        &[],
        &[
            ("UPSTREAM_PORT", upstream.port.to_string()),
            ("JWKS_PORT", jwks.port.to_string()),
            ("API_KEYS_FILE", keys.display().to_string()),
            ("HS_SECRET", m.hs_secret.clone()),
            ("AUTHZ_PORT", authz.port.to_string()),
            ("JWKS_TLS_PORT", tls_jwks.port.to_string()),
            // The private CA the HTTPS JWKS's certificate comes from.
            ("SSL_CERT_FILE", ca.display().to_string()),
        ],
    );
    let t = |name: &str| {
        m.tokens
            .get(name)
            .unwrap_or_else(|| panic!("no token {name}"))
            .clone()
    };
    let passed = std::cell::Cell::new(0usize);
    let expect = |path: &str, extra: &str, status: u16| {
        let r = get(gw.port, path, extra);
        assert_eq!(
            r.status,
            status,
            "{path} with {extra:?}: {}",
            String::from_utf8_lossy(&r.body)
        );
        if status == 200 {
            passed.set(passed.get() + 1);
        } else {
            assert_eq!(r.header("content-type"), Some("application/problem+json"));
        }
        r
    };

    expect("/public", "", 200);
    let r = expect("/jwt", "", 401);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|v| v.starts_with("Bearer")));
    for ok in ["rs256", "ps256", "es256", "eddsa"] {
        expect("/jwt", &bearer(&t(ok)), 200);
    }
    for forged in [
        "alg_none",
        "hs256_with_rsa_public_key",
        "other_key_same_kid",
        "expired",
        "not_yet_valid",
        "wrong_issuer",
        "wrong_audience",
        "no_exp",
        "exp_as_string",
        "garbage",
        "es256_key_as_rs256",
        "tampered",
    ] {
        let r = expect("/jwt", &bearer(&t(forged)), 401);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.contains("invalid_token")),
            "{forged}"
        );
    }
    expect("/jwt", "Authorization: Basic dXNlcjpwYXNz\r\n", 401);
    // Scopes: valid token without the scope is 403.
    expect("/scoped", &bearer(&t("scoped")), 200);
    expect("/scoped", &bearer(&t("scp_list")), 200);
    expect("/scoped", &bearer(&t("unscoped")), 403);
    expect("/scoped", "", 401);
    // The JWKS over HTTPS, its certificate checked against the CA.
    expect("/jwt-tls", &bearer(&t("rs256")), 200);
    expect("/jwt-tls", &bearer(&t("other_key_same_kid")), 401);
    // An HTTPS upstream, its certificate checked against the same CA.
    let r = get(gw.port, "/tls-upstream", "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["keys"].is_array());
    // A gateway that does not trust that CA refuses the same token: the JWKS cannot be fetched.
    {
        let untrusting = Running::start(
            &bin,
            &[],
            &[
                ("UPSTREAM_PORT", upstream.port.to_string()),
                ("JWKS_PORT", jwks.port.to_string()),
                ("API_KEYS_FILE", keys.display().to_string()),
                ("HS_SECRET", m.hs_secret.clone()),
                ("AUTHZ_PORT", authz.port.to_string()),
                ("JWKS_TLS_PORT", tls_jwks.port.to_string()),
            ],
        );
        let r = get(untrusting.port, "/jwt-tls", &bearer(&t("rs256")));
        assert_eq!(r.status, 401, "{}", String::from_utf8_lossy(&r.body));
        // … and cannot reach the HTTPS upstream: 502, never the upstream's answer.
        assert_eq!(get(untrusting.port, "/tls-upstream", "").status, 502);
    }
    // OpenID Connect: the JWKS found through discovery.
    expect("/oidc", &bearer(&t("rs256")), 200);
    expect("/oidc", &bearer(&t("other_key_same_kid")), 401);
    // HMAC scheme: only HS256 with its secret; an RSA token is refused there.
    expect("/hs", &bearer(&t("hs_valid")), 200);
    expect("/hs", &bearer(&t("rs256")), 401);
    expect("/jwt", &bearer(&t("hs_valid")), 401);
    // A verified token is remembered, but not past its `exp`: minted now to expire in 2 s, it
    // passes twice (the second time from memory), then is refused once `exp` has passed.
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 2;
    let minted = Command::new(python())
        .args([
            "-c",
            "import jwt, sys; print(jwt.encode({'iss': 'https://issuer.test', 'aud': 'orders', 'sub': 'brief', 'exp': int(sys.argv[2])}, sys.argv[1], algorithm='HS256'))",
            &m.hs_secret,
            &exp.to_string(),
        ])
        .output()
        .expect("python runs");
    let brief = String::from_utf8(minted.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    expect("/hs", &bearer(&brief), 200);
    expect("/hs", &bearer(&brief), 200);
    while std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        <= exp
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    expect("/hs", &bearer(&brief), 401);
    // A scheme that names a usage plan: each verified `sub` has its own bucket of the plan.
    expect("/hs-plan", &bearer(&t("hs_alice")), 200);
    expect("/hs-plan", &bearer(&t("hs_alice")), 200);
    let throttled = get(gw.port, "/hs-plan", &bearer(&t("hs_alice")));
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.header("ratelimit-limit"), Some("2"));
    expect("/hs-plan", &bearer(&t("hs_bob")), 200);
    // API keys, usage plans.
    expect("/key", "", 401);
    expect("/key", "X-Api-Key: gw_not_a_key\r\n", 401);
    expect("/key", &format!("X-Api-Key: {free}\r\n"), 200);
    expect("/pro", &format!("X-Api-Key: {free}\r\n"), 403);
    expect("/pro", &format!("X-Api-Key: {pro}\r\n"), 200);
    // OR and AND.
    expect("/either", &format!("X-Api-Key: {free}\r\n"), 200);
    expect("/either", &bearer(&t("rs256")), 200);
    expect("/either", "", 401);
    expect("/both", &format!("X-Api-Key: {free}\r\n"), 401);
    expect("/both", &bearer(&t("rs256")), 401);
    expect(
        "/both",
        &format!("X-Api-Key: {free}\r\n{}", bearer(&t("rs256"))),
        200,
    );
    expect("/anonymous-or-key", "", 200);
    // Only the credential that was verified reaches the upstream: the others of the route's
    // schemes are removed, so the upstream cannot take them for verified ones.
    let seen = |r: crate::net::Reply| r.json()["headers"].clone();
    let h = seen(expect(
        "/either",
        &format!("X-Api-Key: {free}\r\nAuthorization: Bearer not-checked\r\n"),
        200,
    ));
    assert!(h.get("authorization").is_none(), "{h}");
    assert_eq!(h["x-api-key"], free.as_str());
    let h = seen(expect(
        "/either",
        &format!("X-Api-Key: gw_bogus\r\n{}", bearer(&t("rs256"))),
        200,
    ));
    assert!(h.get("x-api-key").is_none(), "{h}");
    assert!(h.get("authorization").is_some(), "{h}");
    let h = seen(expect("/anonymous-or-key", "X-Api-Key: gw_bogus\r\n", 200));
    assert!(h.get("x-api-key").is_none(), "{h}");
    // An API key in the query is checked, then removed from the upstream URL.
    expect("/query-key?api_key=gw_bogus", "", 401);
    let r = expect(&format!("/query-key?x=1&api_key={free}&y=2"), "", 200);
    assert_eq!(r.json()["target"], "/query-key?x=1&y=2");
    let r = expect(&format!("/query-key?api_key={free}"), "", 200);
    assert_eq!(r.json()["target"], "/query-key");
    // Nothing refused reached the upstream.
    assert_eq!(upstream.hits.load(Ordering::SeqCst), passed.get());

    // CORS: the preflight is answered before authentication, for the exact origin only.
    let hits = upstream.hits.load(Ordering::SeqCst);
    let preflight = |origin: &str, method: &str, headers: &str| {
        send(
            gw.port,
            format!("OPTIONS /key HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: {method}\r\nAccess-Control-Request-Headers: {headers}\r\n\r\n").as_bytes(),
        )
    };
    let r = preflight("https://app.example.com", "GET", "x-api-key");
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    let r = preflight("https://evil.example.com", "GET", "x-api-key");
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "never a reflected origin"
    );
    assert_eq!(
        preflight("https://app.example.com", "GET", "x-other").status,
        403
    );
    // A refused cross-origin request carries the CORS headers, so the page can read why.
    let r = get(gw.port, "/key", "Origin: https://app.example.com\r\n");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = get(
        gw.port,
        "/key",
        &format!("Origin: https://evil.example.com\r\nX-Api-Key: {free}\r\n"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    passed.set(passed.get() + 1);
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        hits + 1,
        "preflights never reach the upstream"
    );

    // Custom authorizer: no identity is 401 without a call; results are cached per identity;
    // a denial is 403; a failing authorizer is 503, never a pass.
    expect("/authz", "", 401);
    assert_eq!(authz.calls.load(Ordering::SeqCst), 0);
    expect("/authz", "Authorization: allow-alice\r\n", 200);
    let event = authz.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["type"], "REQUEST");
    assert_eq!(event["routeKey"], "GET /authz");
    assert_eq!(event["requestContext"]["http"]["method"], "GET");
    assert_eq!(event["headers"]["authorization"], "allow-alice");
    for _ in 0..5 {
        expect("/authz", "Authorization: allow-alice\r\n", 200);
    }
    assert_eq!(authz.calls.load(Ordering::SeqCst), 1, "cached per identity");
    expect("/authz", "Authorization: allow-bob\r\n", 200);
    expect("/authz", "Authorization: policy-carol\r\n", 200);
    expect("/authz", "Authorization: deny\r\n", 403);
    expect("/authz", "Authorization: deny\r\n", 403);
    expect("/authz", "Authorization: crash\r\n", 503);
    assert_eq!(authz.calls.load(Ordering::SeqCst), 5);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), passed.get());
    // A cached policy is evaluated against each request's own route: an Allow for `GET /authz`
    // never opens `GET /authz-admin`, cached or not.
    expect("/authz", "Authorization: only-authz-1\r\n", 200);
    expect("/authz-admin", "Authorization: only-authz-1\r\n", 403);
    assert_eq!(
        authz.calls.load(Ordering::SeqCst),
        6,
        "the policy is cached"
    );
    expect("/authz-admin", "Authorization: only-authz-2\r\n", 403);
    expect("/authz", "Authorization: only-authz-2\r\n", 200);
    // A simple answer is cached per route: it says nothing of the others.
    expect("/authz-admin", "Authorization: allow-alice\r\n", 200);
    assert_eq!(authz.calls.load(Ordering::SeqCst), 8);
    // The authorizer and its policies see the normalised path the router matched.
    for (spelled, admin) in [
        ("//authz/", "//authz-admin/"),
        ("/./authz", "/./authz-admin"),
        ("/x/../authz", "/authz/../authz-admin"),
        ("/%61uthz", "/%61uthz-admin"),
        ("/authz/.", "/authz-admin/."),
    ] {
        expect(spelled, "Authorization: only-authz-3\r\n", 200);
        expect(admin, "Authorization: only-authz-3\r\n", 403);
    }
    expect("/%61uthz", "Authorization: only-authz-4\r\n", 200);
    let event = authz.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(event["rawPath"], "/authz");
    assert_eq!(event["requestContext"]["http"]["path"], "/authz");
    assert!(event["routeArn"]
        .as_str()
        .is_some_and(|a| a.ends_with("/dev/GET/authz")));
    // Calls for one client are limited before the authorizer: a flood of new identities gets
    // 429 and the authorizer is called for the burst only (twice `calls_per_client`).
    let before = authz.calls.load(Ordering::SeqCst);
    let mut throttled = 0;
    for i in 0..6 {
        let r = get(
            gw.port,
            "/authz-tight",
            &format!("Authorization: allow-flood-{i}\r\n"),
        );
        match r.status {
            200 => passed.set(passed.get() + 1),
            429 => throttled += 1,
            other => panic!("{other}"),
        }
    }
    assert!(throttled >= 3, "{throttled} of 6 throttled");
    assert!(authz.calls.load(Ordering::SeqCst) - before <= 3);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), passed.get());

    // A storm of unknown `kid`s fetches the JWKS at most once per 30 s.
    let before = jwks.fetches.load(Ordering::SeqCst);
    for i in 0..50 {
        expect("/jwt", &bearer(&t(&format!("unknown_kid_{i}"))), 401);
    }
    let storm = jwks.fetches.load(Ordering::SeqCst) - before;
    assert!(storm <= 1, "{storm} JWKS fetches during the storm");
    // The JWKS endpoint goes down: cached keys keep serving.
    jwks.down.store(true, Ordering::SeqCst);
    expect("/jwt", &bearer(&t("rs256")), 200);
    expect("/jwt", &bearer(&t("es256")), 200);
    assert_eq!(upstream.hits.load(Ordering::SeqCst), passed.get());

    // OpenID Connect discovery over HTTPS, naming an https:// JWKS.
    expect("/oidc-tls", &bearer(&t("rs256")), 200);
    expect("/oidc-tls", &bearer(&t("other_key_same_kid")), 401);
    // The JWKS is fetched again every `jwks_refresh` (1 s here): a key removed at the issuer
    // stops verifying within that time, remembered tokens included.
    expect("/rotating", &bearer(&t("rs256")), 200);
    expect("/rotating", &bearer(&t("rs256")), 200);
    std::fs::write(dir.join("tls-jwks.json"), r#"{"keys":[]}"#).expect("rotate");
    let removed = std::time::Instant::now();
    loop {
        let r = get(gw.port, "/rotating", &bearer(&t("rs256")));
        if r.status == 401 {
            break;
        }
        assert_eq!(r.status, 200);
        passed.set(passed.get() + 1);
        assert!(
            removed.elapsed() < Duration::from_secs(4),
            "a removed key still verifies after {:?}",
            removed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(upstream.hits.load(Ordering::SeqCst), passed.get());

    // SIGHUP loads a key added while running.
    let late = add_key(&bin, "free", &keys);
    expect("/key", &format!("X-Api-Key: {late}\r\n"), 401);
    let status = Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(gw.port, "/key", &format!("X-Api-Key: {late}\r\n"));
        if r.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload the keys: {}",
            gw.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn api_keys_in_redis_are_shared_by_instances_and_fail_closed() {
    let redis = crate::net::Redis::start(crate::net::free_port());
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/auth-redis.yaml");
    let out = Command::new(&bin)
        .args([
            "keys",
            "add",
            "--plan",
            "free",
            "--redis",
            &redis.url(),
            "--prefix",
            "gwtest:",
            "--name",
            "ci",
        ])
        .output()
        .expect("keys add runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stored = redis.cli(&["--scan", "--pattern", "gwtest:apikey:*"]);
    assert_eq!(stored.lines().count(), 1, "{stored}");
    assert!(!stored.contains(&key), "keys are stored hashed");
    let env = |r: &crate::net::Redis| {
        vec![
            ("UPSTREAM_PORT", upstream.port.to_string()),
            ("REDIS_URL", r.url()),
        ]
    };
    let a = Running::start(&bin, &[], &env(&redis));
    let b = Running::start(&bin, &[], &env(&redis));
    for gw in [&a, &b] {
        assert_eq!(
            get(gw.port, "/orders", &format!("X-Api-Key: {key}\r\n")).status,
            200
        );
        assert_eq!(
            get(gw.port, &format!("/by-query?api_key={key}"), "").status,
            200
        );
        assert_eq!(
            get(
                gw.port,
                "/by-cookie",
                &format!("Cookie: a=1; session_key={key}\r\n")
            )
            .status,
            200
        );
        assert_eq!(
            get(gw.port, "/orders", "X-Api-Key: gw_nope\r\n").status,
            401
        );
        assert_eq!(get(gw.port, "/orders", "").status, 401);
    }
    let hits = upstream.hits.load(Ordering::SeqCst);
    assert_eq!(hits, 6);
    // Revoked in Redis: refused by every instance at once.
    let record = redis.cli(&["--scan", "--pattern", "gwtest:apikey:*"]);
    redis.cli(&["DEL", record.trim()]);
    for gw in [&a, &b] {
        assert_eq!(
            get(gw.port, "/orders", &format!("X-Api-Key: {key}\r\n")).status,
            401
        );
    }
    // Redis down: the key cannot be checked, so nothing passes: 503, never 500 or 200.
    let port = redis.port;
    drop(redis);
    let r = get(a.port, "/orders", &format!("X-Api-Key: {key}\r\n"));
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(upstream.hits.load(Ordering::SeqCst), hits);
    // Redis back: the same instances serve again, without a restart.
    let redis = crate::net::Redis::start(port);
    let out = Command::new(&bin)
        .args([
            "keys",
            "add",
            "--plan",
            "free",
            "--redis",
            &redis.url(),
            "--prefix",
            "gwtest:",
        ])
        .output()
        .expect("keys add runs");
    let again = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(a.port, "/orders", &format!("X-Api-Key: {again}\r\n"));
        if r.status == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no recovery: {} {}",
            r.status,
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        get(b.port, "/orders", &format!("X-Api-Key: {again}\r\n")).status,
        200
    );
}
