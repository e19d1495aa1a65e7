//! Request and response validation in a running gateway: built from `specs/validation.yaml`
//! (mocks) and the proxy fixture (a real upstream that counts what reaches it), driven by a raw
//! client and by curl.

use std::process::Command;
use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::gateway::{build, Running};
use crate::net::{get, send, Upstream};

fn request(
    port: u16,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> crate::net::Reply {
    let ct = content_type
        .map(|c| format!("Content-Type: {c}\r\n"))
        .unwrap_or_default();
    send(
        port,
        format!(
            "{method} {path} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// `(pointer, keyword)` of every violation in a 400 answer.
fn violations(r: &crate::net::Reply) -> Vec<(String, String)> {
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let json = r.json();
    json["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors list: {json}"))
        .iter()
        .map(|e| {
            assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{e}");
            (
                e["pointer"].as_str().unwrap_or("?").to_string(),
                e["keyword"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn parameters_are_checked_in_every_location_and_style() {
    let bin = build("specs/validation.yaml");
    let gw = Running::start(&bin, &[], &[]);
    let r = get(
        gw.port,
        "/items?limit=500&tag=a&tag=&sort=bogus",
        "X-Tenant: nope\r\n",
    );
    assert_eq!(
        violations(&r),
        pairs(&[
            ("query/limit", "maximum"),
            ("query/tag/1", "minLength"),
            ("query/sort", "enum"),
            ("header/X-Tenant", "format"),
        ])
    );
    let r = get(gw.port, "/items?limit=abc", "");
    assert_eq!(violations(&r), pairs(&[("query/limit", "type")]));
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .contains("expected integer"));
    assert_eq!(
        get(
            gw.port,
            "/items?limit=5&tag=a&tag=b&sort=-price",
            "X-Tenant: 7f1c8c52-4b0d-4f7e-9d51-1c4f0b8d2a10\r\n"
        )
        .status,
        200
    );
    // Numbers in parameters are JSON numbers: 1.0 is an integer, 1e1 is 10.
    assert_eq!(get(gw.port, "/items?limit=1.0", "").status, 200);
    assert_eq!(
        violations(&get(gw.port, "/items?limit=1e3", "")),
        pairs(&[("query/limit", "maximum")])
    );
    // Single values are first checked without a document; what that check does not accept
    // gets the document's answer. At the bounds, and what is not a JSON number:
    for (query, status) in [
        ("limit=1&sort=name", 200),
        ("limit=100&sort=-price", 200),
        ("limit=1e1", 200),
        ("limit=%31%30", 200),
        ("limit=1e999", 400),
        ("limit=01", 400),
        ("limit=-0", 400),
        ("limit=0.5", 400),
        ("limit=true", 400),
        ("sort=Name", 400),
        ("sort=name%20", 400),
    ] {
        let r = get(gw.port, &format!("/items?{query}"), "");
        assert_eq!(
            r.status,
            status,
            "{query}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert_eq!(
        violations(&get(gw.port, "/items?limit=01", "")),
        pairs(&[("query/limit", "type")])
    );
    assert_eq!(
        violations(&get(gw.port, "/items?limit=0", "")),
        pairs(&[("query/limit", "minimum")])
    );
    // deepObject and pipeDelimited.
    let r = get(gw.port, "/search?price[min]=-1&price[foo]=2&ids=1|x", "");
    assert_eq!(
        violations(&r),
        pairs(&[
            ("query/price/min", "minimum"),
            ("query/price/foo", "additionalProperties"),
            ("query/ids/1", "type"),
        ])
    );
    assert_eq!(
        get(
            gw.port,
            "/search?price%5Bmin%5D=1&price%5Bmax%5D=2.5&ids=1|2",
            ""
        )
        .status,
        200
    );
    // Path parameters, after percent-decoding.
    assert_eq!(
        violations(&get(gw.port, "/items/not-a-uuid", "")),
        pairs(&[("path/itemId", "format")])
    );
    assert_eq!(
        get(gw.port, "/items/7f1c8c52-4b0d-4f7e-9d51-1c4f0b8d2a10", "").status,
        200
    );
    assert_eq!(
        get(gw.port, "/items/7f1c8c52-4b0d-4f7e-9d51-1c4f0b8d2a1%30", "").status,
        200
    );
    assert_eq!(
        violations(&get(
            gw.port,
            "/items/7f1c8c52-4b0d-4f7e-9d51-1c4f0b8d2a1",
            ""
        )),
        pairs(&[("path/itemId", "format")])
    );
}

#[test]
fn json_bodies_list_every_violation_with_its_pointer() {
    let bin = build("specs/validation.yaml");
    let gw = Running::start(&bin, &[], &[]);
    let ct = Some("application/json");
    let r = request(
        gw.port,
        "POST",
        "/items",
        ct,
        r#"{"id":"x","sku":"abc","name":"","price":0,"tags":["a","a"],"extra":1}"#,
    );
    assert_eq!(
        violations(&r),
        pairs(&[
            ("/id", "readOnly"),
            ("/id", "format"),
            ("/sku", "pattern"),
            ("/name", "minLength"),
            ("/price", "exclusiveMinimum"),
            ("/tags", "uniqueItems"),
            ("/extra", "additionalProperties"),
        ])
    );
    assert_eq!(r.json()["title"], "Bad Request");
    let r = request(
        gw.port,
        "POST",
        "/items",
        ct,
        r#"{"sku":"ABC-1234","name":"Teapot","price":24.5}"#,
    );
    assert_eq!(r.status, 201);
    // String lengths count code points, not bytes: five characters, fifteen bytes.
    let r = request(
        gw.port,
        "POST",
        "/items",
        ct,
        r#"{"sku":"ABC-1234","name":"日本語です","price":1}"#,
    );
    assert_eq!(r.status, 201);
    // A `+json` media type is JSON only when the operation declares it: here it is not.
    let r = request(
        gw.port,
        "POST",
        "/items",
        Some("application/merge-patch+json"),
        "{}",
    );
    assert_eq!(r.status, 415);
    let r = request(gw.port, "POST", "/items", Some("text/plain"), "x");
    assert_eq!(r.status, 415);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    // Not JSON, duplicate names, nesting bombs: 400, never 500.
    for bad in [
        "{\"a\":1,\"a\":2}".to_string(),
        "{\"sku\": ".to_string(),
        "[".repeat(10_000),
        "\u{0}".to_string(),
    ] {
        let r = request(gw.port, "POST", "/items", ct, &bad);
        assert_eq!(violations(&r)[0].1, "json", "{bad:.40}");
    }
    // A required body that is missing.
    let r = request(gw.port, "POST", "/items", None, "");
    assert_eq!(violations(&r), pairs(&[("", "required")]));
    // oneOf with a discriminator, unevaluatedProperties.
    let r = request(
        gw.port,
        "POST",
        "/orders",
        ct,
        r#"{"items":[{"sku":"ABC-1234","qty":0}],"payment":{"method":"card","token":"x"},"zzz":1}"#,
    );
    assert_eq!(
        violations(&r),
        pairs(&[
            ("/items/0/qty", "minimum"),
            ("/payment/token", "minLength"),
            ("/zzz", "unevaluatedProperties"),
        ])
    );
    let r = request(
        gw.port,
        "POST",
        "/orders",
        ct,
        r#"{"items":[{"sku":"ABC-1234","qty":1}],"payment":{"method":"cash"}}"#,
    );
    assert_eq!(violations(&r), pairs(&[("/payment", "discriminator")]));
    let r = request(
        gw.port,
        "POST",
        "/orders",
        ct,
        r#"{"items":[{"sku":"ABC-1234","qty":1}],"payment":[null]}"#,
    );
    assert_eq!(violations(&r), pairs(&[("/payment", "oneOf")]));
    let r = request(
        gw.port,
        "POST",
        "/orders",
        ct,
        r#"{"items":[{"sku":"ABC-1234","qty":2}],"payment":{"method":"transfer","iban":"DE89370400440532013000"},"note":"ring twice"}"#,
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn form_and_multipart_bodies_are_validated() {
    let bin = build("specs/validation.yaml");
    let gw = Running::start(&bin, &[], &[]);
    let form = Some("application/x-www-form-urlencoded");
    let r = request(
        gw.port,
        "POST",
        "/session",
        form,
        "username=Bob&password=short&remember=maybe",
    );
    assert_eq!(
        violations(&r),
        pairs(&[
            ("/username", "pattern"),
            ("/password", "minLength"),
            ("/remember", "type")
        ])
    );
    let r = request(
        gw.port,
        "POST",
        "/session",
        form,
        "username=bob_1&password=correct+horse&remember=true",
    );
    assert_eq!(r.status, 204);
    // Multipart with curl, as a user would send it.
    let url = format!(
        "http://127.0.0.1:{}/items/7f1c8c52-4b0d-4f7e-9d51-1c4f0b8d2a10/photos",
        gw.port
    );
    let curl = |args: &[&str]| -> (u16, Value) {
        let out = Command::new("curl")
            .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10"])
            .args(args)
            .arg(&url)
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (
            code.parse().unwrap_or(0),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    };
    let (status, body) = curl(&["-F", "position=-1", "-F", "file=@Cargo.toml"]);
    assert_eq!(status, 400, "{body}");
    let keywords: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["keyword"].as_str())
        .collect();
    assert_eq!(keywords, ["minimum", "required"]);
    let (status, _) = curl(&[
        "-F",
        "caption=A teapot",
        "-F",
        "position=2",
        "-F",
        "file=@Cargo.toml",
    ]);
    assert_eq!(status, 204);
}

#[test]
fn invalid_requests_never_reach_the_upstream() {
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/proxy.yaml");
    let gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", upstream.port.to_string())]);
    let ct = Some("application/json");
    let before = upstream.hits.load(Ordering::SeqCst);
    for (path, body) in [
        ("/validated/0?mode=fast", r#"{"name":"a"}"#),
        ("/validated/1", r#"{"name":"a"}"#),
        ("/validated/1?mode=slow", r#"{"name":"a"}"#),
        (
            "/validated/1?mode=fast",
            r#"{"name":"far too long a name"}"#,
        ),
        ("/validated/1?mode=fast", r#"{"tags":[1]}"#),
        ("/validated/x?mode=fast", r#"{"name":"a"}"#),
    ] {
        let r = request(gw.port, "POST", path, ct, body);
        assert_eq!(
            r.status,
            400,
            "{path} {body}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    assert_eq!(
        request(
            gw.port,
            "POST",
            "/validated/1?mode=fast",
            Some("text/csv"),
            "a,b"
        )
        .status,
        415
    );
    // Over the 1 MiB limit, while validating: 413, and nothing forwarded.
    let big = format!("{{\"name\":\"{}\"}}", "x".repeat(1 << 20));
    assert_eq!(
        request(gw.port, "POST", "/validated/1?mode=fast", ct, &big).status,
        413
    );
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        before,
        "a refused request reached the upstream"
    );
    // A valid one is forwarded with its body intact.
    let body = r#"{"name":"ok","tags":["a","b"]}"#;
    let r = request(gw.port, "POST", "/validated/7?mode=safe", ct, body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["body_len"], body.len());
    assert_eq!(r.json()["target"], "/validated/7?mode=safe");
    assert_eq!(upstream.hits.load(Ordering::SeqCst), before + 1);
    let metrics = String::from_utf8_lossy(&get(gw.admin, "/metrics", "").body).into_owned();
    assert!(
        metrics.contains("gwgen_requests_invalid_total{http_route=\"/validated/{n}\"} 7"),
        "{metrics}"
    );
}

#[test]
fn deep_bodies_are_validated_within_the_depth_limit() {
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/proxy.yaml");
    let gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", upstream.port.to_string())]);
    let tree = |depth: usize, leaf: &str| {
        // `depth` levels of objects and arrays: {"children":[{"children":[ … ]}]}
        let levels = depth / 2;
        format!(
            "{}{leaf}{}",
            "{\"children\":[".repeat(levels),
            "]}".repeat(levels)
        )
    };
    let ct = Some("application/json");
    // 998 levels, recursive schema: validated all the way down, no stack overflow.
    let r = request(
        gw.port,
        "POST",
        "/tree",
        ct,
        &tree(998, "{\"label\":\"ok\"}"),
    );
    assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
    let r = request(
        gw.port,
        "POST",
        "/tree",
        ct,
        &tree(998, "{\"label\":\"far too long\"}"),
    );
    let v = violations(&r);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].1, "maxLength");
    assert!(v[0].0.ends_with("/children/0/label"), "{}", v[0].0);
    // Past the limit: refused before validation.
    let r = request(gw.port, "POST", "/tree", ct, &tree(1002, "{}"));
    assert_eq!(violations(&r), pairs(&[("", "json")]));
    assert!(gw.log_text().lines().all(|l| !l.contains("panicked")));
}

#[test]
fn response_validation_logs_or_enforces() {
    let upstream = Upstream::start();
    let bin = build("tests/fixtures/gateway/proxy.yaml");
    let gw = Running::start(&bin, &[], &[("UPSTREAM_PORT", upstream.port.to_string())]);
    // `log`: the answer passes, the violation is logged and counted.
    let r = get(gw.port, "/shape/log", "X-Request-Id: shape-log\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["method"], "GET");
    // `enforce`: a non-conforming answer becomes 502, listing why.
    let r = get(gw.port, "/shape/enforce", "");
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["errors"][0]["keyword"], "required");
    // A conforming answer passes untouched.
    let r = get(gw.port, "/shape/ok", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["target"], "/shape/ok");
    let metrics = String::from_utf8_lossy(&get(gw.admin, "/metrics", "").body).into_owned();
    assert!(
        metrics.contains("gwgen_responses_invalid_total{http_route=\"/shape/log\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("gwgen_responses_invalid_total{http_route=\"/shape/enforce\"} 1"),
        "{metrics}"
    );
    let log = gw.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("does not conform") && l.contains("shape-log")),
        "{log}"
    );
}

/// A schema resource embedded in a 3.1 spec: its `$ref`s resolve against its own `$id`, and the
/// recursive schema is enforced at every depth.
#[test]
fn refs_resolve_against_the_enclosing_id() {
    let bin = build("specs/validation.yaml");
    let gw = Running::start(&bin, &[], &[]);
    let ct = Some("application/json");
    let ok = r#"{"value":1,"children":[{"value":2},{"value":3,"children":[{"value":4}]}]}"#;
    let r = request(gw.port, "POST", "/trees", ct, ok);
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let deep_bad = r#"{"value":1,"children":[{"value":3,"children":[{"value":"four"}]}]}"#;
    assert_eq!(
        violations(&request(gw.port, "POST", "/trees", ct, deep_bad)),
        pairs(&[("/children/0/children/0/value", "type")])
    );
    let extra = r#"{"value":1,"children":[{"value":2,"leaf":true}]}"#;
    assert_eq!(
        violations(&request(gw.port, "POST", "/trees", ct, extra)),
        pairs(&[("/children/0/leaf", "additionalProperties")])
    );
}
