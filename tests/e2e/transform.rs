//! Transforms end to end (`tests/fixtures/gateway/auth.yaml`, the `/id…` and `/rewrite/{id}`
//! routes): the caller's verified identity reaches the upstream and a client's forged copy never
//! does, templates fill headers, query and path with every name and filter, hostile values stay
//! inside their field, and answers are edited. Tokens are made with PyJWT; the upstream echoes
//! what it received.

use base64::Engine;

use crate::auth::{bearer, material, Authz, Jwks};
use crate::gateway::{build, Running};
use crate::net::{get, Upstream};

#[test]
fn transforms_forward_identity_edit_requests_and_answers() {
    let dir = std::env::temp_dir().join(format!("gwgen-transform-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let m = material(&dir);
    let jwks = Jwks::start(m.jwks.clone());
    let authz = Authz::start();
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/auth.yaml");
    let keys = dir.join("keys.txt");
    let key = crate::auth::add_key(&bin, "pro", &keys);
    let gw = Running::start(
        &bin,
        &[],
        &[
            ("UPSTREAM_PORT", upstream.port.to_string()),
            ("JWKS_PORT", jwks.port.to_string()),
            ("API_KEYS_FILE", keys.display().to_string()),
            ("HS_SECRET", m.hs_secret.clone()),
            ("AUTHZ_PORT", authz.port.to_string()),
            ("JWKS_TLS_PORT", "9".to_string()),
        ],
    );
    let token = |name: &str| m.tokens.get(name).expect("token").clone();
    // What the upstream received, as it echoes it.
    let seen = |path: &str, extra: &str| {
        let r = get(gw.port, path, extra);
        assert!(
            r.status < 300,
            "{path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        let echo = r.json();
        (r, echo)
    };
    let header =
        |echo: &serde_json::Value, name: &str| echo["headers"][name].as_str().map(str::to_string);
    let forged = "X-Gateway-Sub: admin\r\nX-Gateway-Context-Role: root\r\nX-Gateway-Scopes: admin\r\nX-User: forged\r\nX-Remove-Me: 1\r\n";

    // A JWT: its `sub`, issuer and claims reach the upstream; the client's copies do not.
    let (_, echo) = seen("/id", &format!("{}{forged}", bearer(&token("rs256"))));
    assert_eq!(header(&echo, "x-gateway-sub").as_deref(), Some("user-42"));
    assert_eq!(header(&echo, "x-user").as_deref(), Some("user-42"));
    assert_eq!(
        header(&echo, "x-gateway-issuer").as_deref(),
        Some("https://issuer.test")
    );
    assert_eq!(header(&echo, "x-gateway-context-role"), None);
    assert_eq!(
        header(&echo, "x-gateway-scopes"),
        None,
        "the token has no scopes"
    );
    assert_eq!(header(&echo, "x-scopes").as_deref(), Some("none"));
    assert_eq!(header(&echo, "x-remove-me"), None);
    assert_eq!(header(&echo, "x-route").as_deref(), Some("GET /id dev"));
    let claims = header(&echo, "x-gateway-claims").expect("claims");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .expect("base64url"),
    )
    .expect("JSON claims");
    assert_eq!(claims["sub"], "user-42");
    assert_eq!(claims["iss"], "https://issuer.test");
    // No token: 401, and nothing reaches the upstream.
    let before = upstream.hits.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get(gw.port, "/id", forged).status, 401);
    assert_eq!(
        upstream.hits.load(std::sync::atomic::Ordering::SeqCst),
        before
    );

    // Scopes, from `scope` or `scp`.
    let (_, echo) = seen(
        "/id-scoped",
        &format!("{}{forged}", bearer(&token("scoped"))),
    );
    assert_eq!(
        header(&echo, "x-gateway-scopes").as_deref(),
        Some("orders:read profile")
    );
    let (_, echo) = seen("/id-scoped", &bearer(&token("scp_list")));
    assert_eq!(
        header(&echo, "x-gateway-scopes").as_deref(),
        Some("orders:read")
    );

    // A custom authorizer's context and principal.
    let (_, echo) = seen(
        "/id-authz",
        &format!("Authorization: allow-alice\r\n{forged}"),
    );
    assert_eq!(header(&echo, "x-user").as_deref(), Some("allow-alice"));
    assert_eq!(header(&echo, "x-aws-user").as_deref(), Some("allow-alice"));
    assert_eq!(
        header(&echo, "x-gateway-context-user").as_deref(),
        Some("allow-alice")
    );
    assert_eq!(header(&echo, "x-gateway-context-role"), None);
    assert_eq!(header(&echo, "x-principal").as_deref(), Some("-"));
    assert_eq!(
        header(&echo, "x-gateway-sub"),
        None,
        "a simple answer names no principal"
    );
    let (_, echo) = seen("/id-authz", "Authorization: policy-7\r\n");
    assert_eq!(header(&echo, "x-principal").as_deref(), Some("p1"));
    assert_eq!(header(&echo, "x-gateway-sub").as_deref(), Some("p1"));

    // An API key: its plan and name, not the key.
    let (_, echo) = seen("/id-key", &format!("X-Api-Key: {key}\r\n{forged}"));
    assert_eq!(header(&echo, "x-plan").as_deref(), Some("pro"));
    assert_eq!(header(&echo, "x-gateway-plan").as_deref(), Some("pro"));
    let name = header(&echo, "x-key-name").expect("the key's name");
    assert!(!name.is_empty() && !key.contains(&name) && !name.contains(&key));
    assert_eq!(header(&echo, "x-gateway-api-key"), Some(name));

    // Nobody verified: no identity, and the forged one is gone all the same, with or without a
    // transform on the route.
    for path in ["/id-public", "/public"] {
        let (_, echo) = seen(path, forged);
        let names: Vec<&String> = echo["headers"]
            .as_object()
            .expect("headers")
            .keys()
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with("x-gateway-")),
            "{path}: {names:?}"
        );
        assert_eq!(
            header(&echo, "x-user").as_deref(),
            Some("forged"),
            "other headers pass"
        );
    }

    // Path, query and headers from templates, with hostile values.
    let (r, echo) = seen(
        "/rewrite/a%3Fb%23c?q=a%0D%0AX-Evil:%201&secret=s&keep=1",
        "X-Name: MiXeD\r\n",
    );
    assert_eq!(
        echo["target"],
        "/v2/items/a%3Fb%23c?q=a%0D%0AX-Evil:%201&keep=1&lang=en&again=a%0D%0AX-Evil%3A%201&tier=gold"
    );
    let id = r.header("x-request-id").expect("request id").to_string();
    let expected = [
        ("x-q", "aX-Evil: 1"),
        ("x-json", "\"a\\r\\nX-Evil: 1\""),
        ("x-url", "a%0D%0AX-Evil%3A%201"),
        ("x-lower", "mixed"),
        ("x-upper", "MIXED"),
        ("x-defaulted", "fallback"),
        ("x-ip", "127.0.0.1"),
        ("x-id", &id),
        ("x-path", "/rewrite/a%3Fb%23c"),
        ("x-id-param", "\"a?b#c\""),
        ("x-tier", "GOLD"),
        ("x-name", "MiXeD, added"),
    ];
    for (name, value) in expected {
        assert_eq!(header(&echo, name).as_deref(), Some(value), "{name}");
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode("a\r\nX-Evil: 1");
    assert_eq!(header(&echo, "x-b64"), Some(b64));
    assert_eq!(
        header(&echo, "x-missing"),
        None,
        "a missing value sets nothing"
    );
    assert_eq!(
        header(&echo, "x-evil"),
        None,
        "no value made a header of its own"
    );
    // The answer: status mapped, the upstream's header removed, ours set and added.
    assert_eq!(r.status, 203);
    assert_eq!(r.header("x-upstream"), None);
    assert_eq!(r.header("x-tier"), Some("gold"));
    assert_eq!(r.header("x-asked"), Some("aX-Evil: 1"));
    assert_eq!(r.header("x-request"), Some(id.as_str()));

    // A value never leaves its path segment; a language header fills the query.
    let (r, echo) = seen("/rewrite/%C3%A9t%C3%A9%20%25", "Accept-Language: de\r\n");
    assert_eq!(
        echo["target"],
        "/v2/items/%C3%A9t%C3%A9%20%25?lang=de&tier=gold"
    );
    assert_eq!(r.header("x-asked"), Some("-"));
    // Large values pass through whole.
    let big = "v".repeat(6000);
    let (_, echo) = seen(&format!("/rewrite/big?q={big}"), "");
    assert_eq!(header(&echo, "x-q").as_deref(), Some(big.as_str()));

    // JSON bodies: edited by pointer on the way up, made from a template on the way down.
    let post = |path: &str, extra: &str, body: &str| {
        crate::net::send(
            gw.port,
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let sent = r#"{"items":[{"sku":"ABC-1","qty":3,"note":"n"}],"secret":"s","keep":true}"#;
    let r = post("/mapped/42?extra=ZZZ-9999", "X-User: a\"}\r\n", sent);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let answer = r.json();
    let upstream_got: serde_json::Value =
        serde_json::from_str(answer["sent"].as_str().expect("the upstream's body")).expect("JSON");
    assert_eq!(
        upstream_got,
        serde_json::json!({
            "items": [{ "sku": "ABC-1", "qty": 3 }, { "sku": "ZZZ-9999", "qty": 1 }],
            "keep": true,
            "meta": { "id": "42", "user": "a\"}" },
            "count": 3,
            "quoted": "say \"a\"}\""
        })
    );
    assert_eq!(answer["ok"], true);
    assert_eq!(
        answer["size"],
        upstream_got.to_string().len(),
        "a number stays a number"
    );
    assert_eq!(answer["method"], "post");
    assert_eq!(
        answer["first"],
        serde_json::json!({ "sku": "ABC-1", "qty": 3, "note": "n" })
    );
    assert_eq!(answer["text"], "id 42 went to /mapped/42?extra=ZZZ-9999");
    // A body the mapping cannot read is the client's mistake: 400, and nothing goes up.
    let before = upstream.hits.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(post("/mapped/1", "", "{not json").status, 400);
    assert_eq!(post("/mapped/1", "", "").status, 400);
    assert_eq!(
        upstream.hits.load(std::sync::atomic::Ordering::SeqCst),
        before
    );
    // A new body from a template.
    let r = post("/mapped-template?t=x%22y", "", r#"{"sku":"abc","other":1}"#);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let upstream_got: serde_json::Value =
        serde_json::from_str(r.json()["body"].as_str().expect("body")).expect("JSON");
    assert_eq!(
        upstream_got,
        serde_json::json!({ "order": { "sku": "ABC", "n": 2, "tags": ["a", "x\"y"] }, "stage": "dev" })
    );
    drop(gw);
}
