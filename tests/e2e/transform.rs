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
    assert_eq!(
        header(&echo, "x-scopes").as_deref(),
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
    // The authorizer's context keys a shared cache: the same user hits, another misses.
    for (who, cache) in [
        ("allow-u1", "Miss"),
        ("allow-u1", "Hit"),
        ("allow-u2", "Miss"),
    ] {
        let r = get(
            gw.port,
            "/authz-cached",
            &format!("Authorization: {who}\r\n"),
        );
        assert_eq!((r.status, r.header("x-cache")), (200, Some(cache)), "{who}");
    }
    // The authorizer's context names the plan's callers (`caller: context.user`): each its own
    // bucket (the plan's burst is 2).
    for (who, status) in [
        ("allow-t1", 200),
        ("allow-t1", 200),
        ("allow-t1", 429),
        ("allow-t2", 200),
    ] {
        let r = get(
            gw.port,
            "/authz-tenant",
            &format!("Authorization: {who}\r\n"),
        );
        assert_eq!(r.status, status, "{who}");
    }

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
    // A mock's status and headers from the request.
    for (query, status, asked) in [
        ("?code=404", 404, "404"),
        ("?code=abc", 200, "abc"),
        ("?code=99", 200, "99"),
        ("", 200, "none"),
    ] {
        let r = get(gw.port, &format!("/mock-status{query}"), "");
        assert_eq!(r.status, status, "{query}");
        assert_eq!(r.header("x-asked"), Some(asked), "{query}");
        assert_eq!(r.json()["mocked"], true);
    }
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

/// Runs curl (loopback only, bounded by `--max-time`): (status, headers, body).
fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = std::env::temp_dir();
    let head = dir.join(format!(
        "gwgen-curl-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "60", "-D"])
        .arg(&head)
        .args(args)
        .output()
        .expect("curl runs");
    let headers = std::fs::read_to_string(&head).unwrap_or_default();
    let _ = std::fs::remove_file(&head);
    let status = headers
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, headers.to_ascii_lowercase(), out.stdout)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Bytes made by Python's zlib: `kind` is `gzip` or `deflate` (zlib), of `n` times the bytes
/// the Python expression `chunk` makes.
fn compressed(kind: &str, chunk: &str, n: usize, file: &std::path::Path) {
    let wbits = if kind == "gzip" { 31 } else { 15 };
    let script = format!(
        "import zlib,sys\nc=zlib.compressobj(9, zlib.DEFLATED, {wbits})\nf=open(sys.argv[1],'wb')\nb={chunk}\nfor _ in range({n}): f.write(c.compress(b))\nf.write(c.flush())\n"
    );
    let ok = std::process::Command::new("python3")
        .args(["-c", &script])
        .arg(file)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "python3 makes the compressed body");
}

#[test]
fn answers_are_compressed_and_compressed_bodies_inflated_within_a_cap() {
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/auth.yaml");
    let dir = std::env::temp_dir().join(format!("gwgen-compress-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    let keys = dir.join("keys.txt");
    std::fs::write(&keys, "").expect("keys");
    let gw = Running::start(
        &bin,
        &[],
        &[
            ("UPSTREAM_PORT", upstream.port.to_string()),
            ("JWKS_PORT", "9".to_string()),
            ("API_KEYS_FILE", keys.display().to_string()),
            ("HS_SECRET", "s".repeat(32)),
            ("AUTHZ_PORT", "9".to_string()),
            ("JWKS_TLS_PORT", "9".to_string()),
        ],
    );
    let url = |path: &str| format!("http://127.0.0.1:{}{path}", gw.port);

    // Each coding, decoded by curl; the answer is what the upstream sent.
    for coding in ["gzip", "br", "zstd"] {
        let accept = format!("Accept-Encoding: {coding}");
        let (status, head, body) = curl(&["--compressed", "-H", &accept, &url("/compressed")]);
        assert_eq!(status, 200, "{coding}: {head}");
        assert!(
            head.contains(&format!("content-encoding: {coding}\r\n")),
            "{coding}: {head}"
        );
        assert!(head.contains("vary: accept-encoding"), "{head}");
        assert!(
            !head.contains("content-length"),
            "the length of the coded body is not known: {head}"
        );
        let echo: serde_json::Value = serde_json::from_slice(&body).expect("decoded JSON");
        assert_eq!(echo["target"], "/compressed");
        assert_eq!(
            echo["headers"]["accept-encoding"],
            serde_json::Value::Null,
            "the upstream answers plain"
        );
    }
    // The client's preference, then ours (br first).
    let (_, head, _) = curl(&[
        "--compressed",
        "-H",
        "Accept-Encoding: gzip;q=0.5, zstd",
        &url("/compressed"),
    ]);
    assert!(head.contains("content-encoding: zstd"), "{head}");
    let (_, head, _) = curl(&[
        "--compressed",
        "-H",
        "Accept-Encoding: *",
        &url("/compressed"),
    ]);
    assert!(head.contains("content-encoding: br"), "{head}");
    // None accepted, or too small: as it came.
    let (status, head, body) = curl(&["-H", "Accept-Encoding: identity", &url("/compressed")]);
    assert_eq!(status, 200);
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    let (_, head, _) = curl(&[
        "--compressed",
        "-H",
        "Accept-Encoding: gzip",
        &url("/compressed-small"),
    ]);
    assert!(!head.contains("content-encoding"), "{head}");

    // Request bodies: gzip and deflate inflated, then validated; the upstream gets them plain.
    for kind in ["gzip", "deflate"] {
        let file = dir.join(format!("body.{kind}"));
        compressed(kind, "b'{\"a\": 1}'", 1, &file);
        let coding = format!("Content-Encoding: {kind}");
        let data = format!("@{}", file.display());
        let (status, head, body) = curl(&[
            "-H",
            "Content-Type: application/json",
            "-H",
            &coding,
            "--data-binary",
            &data,
            &url("/inflate"),
        ]);
        assert_eq!(
            status,
            200,
            "{kind}: {head} {}",
            String::from_utf8_lossy(&body)
        );
        let echo: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(echo["body"], "{\"a\": 1}");
        assert_eq!(echo["headers"]["content-encoding"], serde_json::Value::Null);
    }
    // Inflated, the body is validated: a schema violation is still a 400.
    let file = dir.join("bad.gzip");
    compressed("gzip", "b'{\"a\": \"x\"}'", 1, &file);
    let data = format!("@{}", file.display());
    let (status, _, _) = curl(&[
        "-H",
        "Content-Type: application/json",
        "-H",
        "Content-Encoding: gzip",
        "--data-binary",
        &data,
        &url("/inflate"),
    ]);
    assert_eq!(status, 400);
    // A coding the operation does not take: 415, naming those it does.
    let (status, head, _) = curl(&[
        "-H",
        "Content-Type: application/json",
        "-H",
        "Content-Encoding: br",
        "--data-binary",
        "xx",
        &url("/inflate"),
    ]);
    assert_eq!(status, 415);
    assert!(head.contains("accept-encoding: gzip, deflate"), "{head}");
    // Two codings, one over the other: 415, whichever they are.
    let file = dir.join("body.gzip");
    let data = format!("@{}", file.display());
    for codings in [vec!["gzip, gzip"], vec!["gzip", "gzip"]] {
        let mut args = vec!["-H", "Content-Type: application/json"];
        let lines: Vec<String> = codings
            .iter()
            .map(|c| format!("Content-Encoding: {c}"))
            .collect();
        for l in &lines {
            args.extend(["-H", l.as_str()]);
        }
        args.extend(["--data-binary", &data]);
        let target = url("/inflate");
        args.push(&target);
        let (status, _, _) = curl(&args);
        assert_eq!(status, 415, "{codings:?}");
    }
    // Not gzip at all: 400.
    let (status, _, _) = curl(&[
        "-H",
        "Content-Type: application/json",
        "-H",
        "Content-Encoding: gzip",
        "--data-binary",
        "not gzip",
        &url("/inflate"),
    ]);
    assert_eq!(status, 400);
    // A bomb: about 1 MiB that inflates to 1 GiB. Refused at the 1 MiB cap, validated route or
    // proxied, and nothing of it reaches the upstream.
    let bomb = dir.join("bomb.gz");
    compressed("gzip", "bytes(1 << 20)", 1024, &bomb);
    let size = std::fs::metadata(&bomb).map(|m| m.len()).unwrap_or(0);
    assert!(size < 2 << 20, "the bomb is small: {size}");
    let data = format!("@{}", bomb.display());
    let before = upstream.hits.load(std::sync::atomic::Ordering::SeqCst);
    for path in ["/inflate", "/inflate-proxy"] {
        let started = std::time::Instant::now();
        let (status, _, body) = curl(&[
            "-H",
            "Content-Type: application/json",
            "-H",
            "Content-Encoding: gzip",
            "--data-binary",
            &data,
            &url(path),
        ]);
        assert_eq!(status, 413, "{path}: {}", String::from_utf8_lossy(&body));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{path}"
        );
    }
    // The proxied one may have sent the upstream its head before the cap was reached, never
    // a whole body: the upstream answers nothing that reached the client.
    assert!(upstream.hits.load(std::sync::atomic::Ordering::SeqCst) <= before + 1);
    drop(gw);
}
