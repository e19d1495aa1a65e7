//! API Gateway exports, run as they are: every export of `tests/corpus/aws` is either served
//! (HTTP proxies, mocks, Lambda proxies and authorizers in local mode, CORS, gateway responses,
//! a greedy `{proxy+}` path) or refused with located errors; Cognito tokens signed with a JOSE
//! library are accepted; request validators check what they say; `gwgen import-aws` writes a
//! spec that builds the same gateway.

use std::path::{Path, PathBuf};

use crate::gateway::{build, Running};
use crate::net::{get, send, Reply, Upstream};
use crate::support::{corpus, gwgen, repo};

/// Where derived specs are written: a fixed place, so the build cache knows them again.
fn derived(name: &str, text: &str) -> String {
    let dir = repo().join("target").join("e2e-aws");
    std::fs::create_dir_all(&dir).expect("target/e2e-aws");
    let path = dir.join(name);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
        std::fs::write(&path, text).expect("derived spec");
    }
    path.display().to_string()
}

fn export(name: &str) -> PathBuf {
    corpus().join("aws").join(name)
}

fn body(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

fn codes_and_places(spec: &Path) -> (Vec<String>, bool) {
    let checked = gwgen::check_file(spec);
    let errors: Vec<&gwgen::Diagnostic> = checked
        .diagnostics
        .iter()
        .filter(|d| d.severity == gwgen::Severity::Error)
        .collect();
    let located = errors.iter().all(|d| d.pos.line >= 1 && d.pos.col >= 1);
    let mut codes: Vec<String> = errors.iter().map(|d| d.code.as_str().to_string()).collect();
    codes.sort();
    codes.dedup();
    (codes, located)
}

#[test]
fn every_corpus_export_is_served_or_refused_with_located_errors() {
    // What each export holds decides: AWS service integrations (Kinesis, DynamoDB), non-proxy
    // Lambda integrations, response templates chosen by content type, placeholders left by
    // Terraform and accounts written as `account-id` are refused; the rest is served.
    let expected: &[(&str, &[&str])] = &[
        ("awsdocs__binary-image-lambda.oas30.json", &["GW0601"]),
        ("awsdocs__http-api-petstore-cors.oas30.json", &[]),
        ("awsdocs__kinesis-proxy-export.oas30.json", &["GW0601"]),
        (
            "awsdocs__request-validation-petstore.swagger20.json",
            &["GW0601"],
        ),
        (
            "localstack__openapi.spec.global-auth.oas30.json",
            &["GW0601"],
        ),
        ("localstack__openapi.spec.oas30.json", &["GW0402"]),
        ("localstack__openapi.spec.pulumi.swagger20.json", &[]),
        (
            "serverless-patterns__cache-invalidation.oas30.yaml",
            &["GW0601"],
        ),
        (
            "serverless-patterns__reminders-api.gateway-responses.oas30.yaml",
            &["GW0601"],
        ),
    ];
    let mut seen = 0;
    for entry in std::fs::read_dir(corpus().join("aws")).expect("corpus/aws") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if name.starts_with("LICENSE") {
            continue;
        }
        let want = expected
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} has no expectation here"))
            .1;
        let (codes, located) = codes_and_places(&path);
        assert_eq!(codes, want, "{name}");
        assert!(located, "{name}: every error has a line and column");
        seen += 1;
    }
    assert_eq!(seen, expected.len());
    // The refusals say what to do instead.
    let checked = gwgen::check_file(export("awsdocs__kinesis-proxy-export.oas30.json"));
    let d = checked
        .diagnostics
        .iter()
        .find(|d| d.code == gwgen::Code::AwsUnsupported)
        .expect("a refusal");
    assert!(d.message.contains("kinesis"), "{}", d.message);
    assert!(d.hint.as_deref().unwrap_or("").contains("Lambda"));
    let checked = gwgen::check_file(export("serverless-patterns__cache-invalidation.oas30.yaml"));
    assert!(
        checked
            .diagnostics
            .iter()
            .any(|d| d.message.contains("dynamodb")),
        "the service is named even inside Fn::Sub"
    );
}

#[test]
fn an_http_api_export_proxies_with_its_cors_settings() {
    let up = Upstream::start();
    // The export's upstream host, pointed at a loopback port through an environment variable.
    let text = std::fs::read_to_string(export("awsdocs__http-api-petstore-cors.oas30.json"))
        .expect("export")
        .replace(
            "http://petstore.execute-api.us-west-1.amazonaws.com",
            "http://127.0.0.1:${env.PETSTORE_PORT}",
        );
    let bin = build(&derived("http-api-petstore-cors.json", &text));
    let gw = Running::start(&bin, &[], &[("PETSTORE_PORT", up.port.to_string())]);

    let r = get(gw.port, "/pets?type=dog&page=2", "");
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(r.json()["target"], "/petstore/pets?type=dog&page=2");
    let r = get(gw.port, "/pets/42", "");
    assert_eq!(
        r.json()["target"],
        "/petstore/pets/42",
        "{{petId}} is filled"
    );
    // HTTP APIs validate nothing: a body the schema refuses passes, as on AWS.
    let raw = b"POST /pets HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"type\":\"ox\"}";
    let r = send(gw.port, raw);
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(r.json()["method"], "POST");
    // x-amazon-apigateway-cors: the preflight is answered by the gateway.
    let r = send(
        gw.port,
        b"OPTIONS /pets HTTP/1.1\r\nHost: x\r\nConnection: close\r\nOrigin: https://app.test\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n",
    );
    assert!(r.status == 200 || r.status == 204, "{}", r.status);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let methods = r.header("access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let r = get(gw.port, "/pets", "Origin: https://app.test\r\n");
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
}

/// The pulumi export (Swagger 2.0) with a root `x-gateway` saying what AWS's account held: where
/// its two Lambda functions run, and the API keys.
fn pulumi(dir: &Path) -> (Running, String) {
    let text = std::fs::read_to_string(export("localstack__openapi.spec.pulumi.swagger20.json"))
        .expect("export");
    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let function = |handler: &str| {
        serde_json::json!({
            "command": ["${env.PYTHON}", "-m", "awslambdaric", handler],
            "handler": handler,
            "workdir": "${env.FUNCTIONS_DIR}",
            "concurrency": 1
        })
    };
    doc["x-gateway"] = serde_json::json!({
        "functions": {
            "s3OnObjectCreatedLambda-60c92b6": function("functions.handle"),
            "apiGwAuthorizerLambda-2152989": function("functions.authorize")
        },
        "api_keys": { "source": "file:${env.API_KEYS_FILE}" },
        "usage_plans": { "pro": { "throttle": { "rate": 100, "burst": 100 } } }
    });
    let spec = derived(
        "pulumi.json",
        &serde_json::to_string_pretty(&doc).expect("JSON"),
    );
    let bin = build(&spec);
    let keys = dir.join("keys.txt");
    let key = crate::auth::add_key(&bin, "pro", &keys);
    let env = [
        ("PYTHON", crate::auth::python().display().to_string()),
        (
            "FUNCTIONS_DIR",
            repo().join("tests/fixtures/lambda").display().to_string(),
        ),
        ("API_KEYS_FILE", keys.display().to_string()),
    ];
    (Running::start(&bin, &[], &env), key)
}

#[test]
fn a_swagger_2_rest_export_serves_mocks_greedy_paths_lambdas_and_gateway_responses() {
    let dir = crate::support::scratch("aws-pulumi");
    let (gw, key) = pulumi(&dir);
    let with_key = format!("x-api-key: {key}\r\n");

    // OPTIONS on the greedy `/{proxy+}`: a mock whose integration response sets CORS headers,
    // at any depth; the method asks for an API key.
    for path in ["/a", "/a/b/c", "/files/x%20y/z.txt"] {
        let r = send(
            gw.port,
            format!("OPTIONS {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{with_key}\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 200, "{path}: {} {}", body(&r), gw.log_text());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        assert_eq!(
            r.header("access-control-allow-methods"),
            Some("DELETE,GET,HEAD,OPTIONS,PATCH,POST,PUT")
        );
        assert!(
            r.body.is_empty(),
            "{path}: an empty template is an empty body"
        );
    }
    // `/{proxy+}` needs one segment at least, as on AWS.
    let r = send(
        gw.port,
        format!("OPTIONS / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{with_key}\r\n").as_bytes(),
    );
    assert_ne!(r.status, 200);
    // No key: the export's gateway response for it answers, from its JSON template, with its
    // headers.
    let r = send(
        gw.port,
        b"OPTIONS /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 401, "{}", body(&r));
    assert!(
        r.json()["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        body(&r)
    );
    assert_eq!(
        r.header("method.response.header.access-control-allow-origin"),
        Some("*"),
        "the export's header names are kept as written"
    );

    // GET /just_do_it: a TOKEN Lambda authorizer (or the API key), then a Lambda proxy in
    // payload 1.0, both run locally by AWS's runtime client.
    let r = get(gw.port, "/just_do_it?x=1", "Authorization: allow-ann\r\n");
    assert_eq!(r.status, 200, "{} {}", body(&r), gw.log_text());
    let event = &r.json()["event"];
    assert_eq!(event["resource"], "/just_do_it");
    assert_eq!(event["httpMethod"], "GET");
    assert_eq!(event["queryStringParameters"]["x"], "1");
    assert_eq!(event["requestContext"]["authorizer"]["principalId"], "ann");
    assert_eq!(r.json()["function"], "s3OnObjectCreatedLambda-60c92b6");
    // A denial: ACCESS_DENIED, which this export answers with 401.
    let r = get(gw.port, "/just_do_it", "Authorization: deny-bob\r\n");
    assert_eq!(r.status, 401, "{}", body(&r));
    assert!(r.json()["message"]
        .as_str()
        .is_some_and(|m| m.contains("denied")));
    let r = get(gw.port, "/just_do_it", &with_key);
    assert_eq!(r.status, 200, "the API key alone is the other requirement");
    let r = get(gw.port, "/just_do_it", "");
    assert_eq!(r.status, 401);
}

/// `tests/fixtures/aws/export.yaml` running, its JWKS and upstream at these ports (9 where a
/// test reaches neither), its functions from `tests/fixtures/lambda`.
fn export_gateway(jwks: u16, upstream: u16) -> Running {
    let bin = build("tests/fixtures/aws/export.yaml");
    Running::start(
        &bin,
        &[],
        &[
            ("JWKS_PORT", jwks.to_string()),
            ("UPSTREAM_PORT", upstream.to_string()),
            ("PYTHON", crate::auth::python().display().to_string()),
            (
                "FUNCTIONS_DIR",
                repo().join("tests/fixtures/lambda").display().to_string(),
            ),
        ],
    )
}

#[test]
fn cognito_tokens_are_accepted_by_pool_and_jwt_authorizers() {
    let dir = crate::support::scratch("aws-cognito");
    let m = crate::auth::material(&dir);
    let jwks = crate::auth::Jwks::start(m.jwks.clone());
    let gw = export_gateway(jwks.port, 9);
    let t = |name: &str| m.tokens[name].clone();
    let call = |path: &str, auth: String| get(gw.port, path, &format!("Authorization: {auth}\r\n"));

    // REST: the pool's tokens, access or ID, bare in the header as API Gateway reads them, or
    // after `Bearer`.
    for (auth, client) in [
        (t("cognito_access"), "app-client-1"),
        (format!("Bearer {}", t("cognito_access")), "app-client-1"),
        (t("cognito_id"), ""),
        (t("cognito_other_client"), "app-client-2"),
    ] {
        let r = call("/rest", auth);
        assert_eq!(r.status, 200, "{} {}", body(&r), gw.log_text());
        assert_eq!(r.json()["sub"], "user-7");
        assert_eq!(r.json()["client"], client);
    }
    let r = call("/rest", t("cognito_other_pool"));
    assert_eq!(r.status, 401, "another pool's token");
    assert_eq!(r.json()["type"], "UNAUTHORIZED", "{}", body(&r));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(call("/rest", t("rs256")).status, 401, "another issuer");

    // HTTP API JWT authorizer with the app client as audience: an access token names it in
    // `client_id` (no `aud`), an ID token in `aud`.
    assert_eq!(call("/http", t("cognito_access")).status, 200);
    assert_eq!(
        call("/http", format!("Bearer {}", t("cognito_id"))).status,
        200
    );
    assert_eq!(call("/http", t("cognito_other_client")).status, 401);
    assert_eq!(call("/http", t("cognito_other_pool")).status, 401);
}

#[test]
fn request_validators_check_what_they_say() {
    // No token is verified here: the JWKS is never fetched.
    let gw = export_gateway(9, 9);
    let post = |path: &str, body: &str| {
        send(
            gw.port,
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let good = r#"{"name": "rex"}"#;
    let bad = r#"{"nom": "rex"}"#;
    for path in ["/default", "/all", "/body", "/none"] {
        assert_eq!(post(&format!("{path}?q1=a"), good).status, 200, "{path}");
    }
    // Parameters: the API's default validator (parameters only) and `all` check them.
    assert_eq!(post("/default", good).status, 400);
    assert_eq!(post("/all", good).status, 400);
    assert_eq!(post("/body", good).status, 200);
    assert_eq!(post("/none", good).status, 200);
    // Bodies: `all` and `body-only`; BAD_REQUEST_BODY's template lists the errors.
    assert_eq!(post("/default?q1=a", bad).status, 200);
    assert_eq!(post("/none?q1=a", bad).status, 200);
    for path in ["/all?q1=a", "/body?q1=a"] {
        let r = post(path, bad);
        assert_eq!(r.status, 422, "{path}: {}", body(&r));
        let errors = r.json()["Invalid Request Body"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            errors.starts_with('[') && errors.contains("name"),
            "{errors}"
        );
    }
}

#[test]
fn mapping_templates_with_loops_and_conditions_map_requests_and_answers() {
    use serde_json::{json, Value};
    let upstream = Upstream::start();
    let gw = export_gateway(9, upstream.port);
    // What the upstream received for an order (it echoes the body as text).
    let sent = |target: &str, order: &Value| -> Value {
        let text = order.to_string();
        let r = send(
            gw.port,
            format!(
                "POST {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", body(&r));
        let echo = r.json();
        assert_eq!(echo["headers"]["content-type"], "application/json");
        let got = echo["body"].as_str().expect("the body as text");
        serde_json::from_str(got).unwrap_or_else(|e| panic!("{e}: {got}"))
    };
    // `#foreach` with `$foreach.count` and `$foreach.hasNext`, `#if` on an element's member and
    // on a parameter (with `||`). Values from the request stay inside their strings, whatever
    // quotes and line breaks they hold; a string where the template puts a number stays a
    // string, so it cannot add elements.
    let hostile = "ann\", \"admin\": true, \"x\": \"";
    let order = json!({
        "customer": hostile,
        "items": [
            { "sku": "A-1", "qty": 2 },
            { "sku": "B\"2", "qty": "1}, {\"sku\": \"evil\"", "note": "line\nbreak \"quoted\" \\" },
        ],
    });
    assert_eq!(
        sent("/orders?rush=yes", &order),
        json!({
            "customer": hostile,
            "lines": [
                { "sku": "A-1", "qty": 2, "n": 1 },
                { "sku": "B\"2", "qty": "1}, {\"sku\": \"evil\"", "n": 2, "note": "line\nbreak \"quoted\" \\" },
            ],
            "rush": true,
        })
    );
    assert_eq!(
        sent(
            "/orders?rush=YES",
            &json!({ "customer": "bo", "items": [] })
        ),
        json!({ "customer": "bo", "lines": [], "rush": true })
    );
    // No `rush` (or another value), no items member at all: the loop writes nothing.
    assert_eq!(
        sent("/orders?rush=no", &json!({ "customer": "cy" })),
        json!({ "customer": "cy", "lines": [] })
    );
    // A loop goes through 1,000 elements at most, as `#foreach` on API Gateway: a body with
    // more is refused, and nothing reaches the upstream.
    let many: Vec<serde_json::Value> = (0..1001).map(|i| json!({ "sku": i, "qty": 1 })).collect();
    let text = json!({ "customer": "dee", "items": many }).to_string();
    let hits = upstream.hits.load(std::sync::atomic::Ordering::SeqCst);
    let r = send(
        gw.port,
        format!(
            "POST /orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", body(&r));
    assert!(body(&r).contains("1000 a loop"), "{}", body(&r));
    assert_eq!(
        upstream.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits
    );

    // A response template over a DynamoDB answer: nested loops, and `#if` on a header
    // parameter and on a member that is missing.
    let pets = |extra: &str| {
        let r = get(gw.port, "/pets", extra);
        assert_eq!(r.status, 200, "{}", body(&r));
        assert_eq!(r.header("content-type"), Some("application/json"));
        // `responseParameters`: a header from the upstream's answer, and a static one.
        assert_eq!(
            r.header("x-upstream-type"),
            Some("application/x-amz-json-1.0")
        );
        assert_eq!(r.header("x-source"), Some("dynamo"));
        r.json()
    };
    assert_eq!(
        pets(""),
        json!({
            "pets": [{ "id": "1", "name": "rex \"the\" dog" }, { "id": "2", "name": "tom" }],
            "count": 2,
            "complete": true,
        })
    );
    assert_eq!(
        pets("Verbose: true\r\n"),
        json!({
            "pets": [
                { "id": "1", "name": "rex \"the\" dog", "tags": ["a", "b"] },
                { "id": "2", "name": "tom", "tags": [] },
            ],
            "count": 2,
            "complete": true,
        })
    );
}

#[test]
fn integration_responses_that_differ_by_status_each_apply_to_their_own() {
    let upstream = Upstream::start();
    let gw = export_gateway(9, upstream.port);
    // `default`: the upstream's 200, its own header and template.
    let r = get(gw.port, "/lookup/7", "");
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(r.header("x-kind"), Some("found"));
    assert_eq!(
        r.json(),
        serde_json::json!({ "found": true, "asked": "/lookup/7" })
    );
    // An answer that is not JSON passes unchanged under a template that reads it.
    let r = get(gw.port, "/lookup/chunked", "");
    assert_eq!(r.status, 200);
    assert_eq!(body(&r), "hello world");
    assert_eq!(r.header("x-kind"), Some("found"));
    // `4\d{2}`: the upstream's 404, with that response's status, header and template.
    let r = get(gw.port, "/lookup/missing", "");
    assert_eq!(r.status, 404, "{}", body(&r));
    assert_eq!(r.header("x-kind"), Some("missing"));
    assert_eq!(
        r.json(),
        serde_json::json!({ "found": false, "message": "no pet missing" })
    );

    // A mock whose request template chooses the status with `#if`: each integration response
    // for its own status, and API Gateway's 500 for a status none takes.
    let r = get(gw.port, "/scope?scope=internal", "");
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(r.json()["message"], "Go ahead without me");
    assert_eq!(r.header("x-refused"), None);
    let r = get(gw.port, "/scope", "");
    assert_eq!(r.status, 500, "{}", body(&r));
    assert_eq!(
        r.json()["message"],
        "The invoked method is not supported on the API resource."
    );
    assert_eq!(r.header("x-refused"), Some("yes"));
    let r = get(gw.port, "/scope?scope=gone", "");
    assert_eq!(r.status, 500, "{}", body(&r));
    assert_eq!(
        r.json(),
        serde_json::json!({ "message": "Internal server error" })
    );
}

#[test]
fn any_method_request_authorizers_http_api_mappings_binary_types_and_compression() {
    use base64::Engine;
    let upstream = Upstream::start();
    let gw = export_gateway(9, upstream.port);
    let call = |method: &str, path: &str, extra: &str| {
        send(
            gw.port,
            format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n").as_bytes(),
        )
    };
    // `x-amazon-apigateway-any-method`: every method reaches the upstream as the client sent
    // it, `{id}` renamed into the URI's `{item}`, behind a REQUEST Lambda authorizer that reads
    // the `Authorization` header.
    for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
        let r = call(method, "/any/a%20b", "Authorization: allow-ann\r\n");
        assert_eq!(r.status, 200, "{method}: {} {}", body(&r), gw.log_text());
        assert_eq!(r.json()["method"], method);
        assert_eq!(r.json()["target"], "/items/a%20b");
    }
    let hits = upstream.hits.load(std::sync::atomic::Ordering::SeqCst);
    for auth in ["Authorization: deny-bob\r\n", ""] {
        let r = call("DELETE", "/any/1", auth);
        assert!(matches!(r.status, 401 | 403), "{auth:?}: {}", r.status);
    }
    assert_eq!(
        upstream.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits,
        "a refused caller reaches nothing"
    );
    let log = gw.log_text();
    assert!(
        log.contains("\"type\": \"REQUEST\""),
        "the authorizer was given a REQUEST event: {log}"
    );

    // HTTP API parameter mappings: `overwrite:header`, `append:querystring` from a header,
    // `remove:header`, `overwrite:path`; the upstream's address from a stage variable.
    let r = get(
        gw.port,
        "/mapped?from=client",
        "X-From: header\r\nX-Secret: s3cret\r\nX-Env: prod\r\n",
    );
    assert_eq!(r.status, 200, "{}", body(&r));
    let echo = r.json();
    assert_eq!(echo["target"], "/v2/mapped?from=client&from=header");
    assert_eq!(echo["headers"]["x-env"], "staging");
    assert!(echo["headers"].get("x-secret").is_none(), "{echo}");

    // A binary media type: the Lambda proxy event carries the image base64-encoded.
    let png = [0x89u8, b'P', b'N', b'G', 0, 0xff, 0x10];
    let mut req = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        png.len()
    )
    .into_bytes();
    req.extend_from_slice(&png);
    let r = send(gw.port, &req);
    assert_eq!(r.status, 200, "{} {}", body(&r), gw.log_text());
    let event = &r.json()["event"];
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(
        event["body"],
        base64::engine::general_purpose::STANDARD.encode(png)
    );

    // The minimum compression size: a JSON answer of 100 bytes or more is compressed for a
    // client that asks, a smaller one is not.
    let r = get(gw.port, "/pets", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = call("POST", "/none", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.status, 200, "{}", body(&r));
    assert_eq!(r.header("content-encoding"), None, "{}", body(&r));
}

#[test]
fn import_aws_writes_a_spec_that_builds_the_same_gateway() {
    let dir = crate::support::scratch("aws-import");
    for name in [
        "awsdocs__http-api-petstore-cors.oas30.json",
        "localstack__openapi.spec.pulumi.swagger20.json",
    ] {
        let out = dir.join(format!("{name}.yaml"));
        let run = gwgen(
            &[
                "import-aws",
                &export(name).display().to_string(),
                "-o",
                &out.display().to_string(),
            ],
            &repo(),
        );
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(&out).expect("written");
        assert!(!text.contains("x-amazon-apigateway"), "{text}");
        assert!(!text.contains("swagger:"), "{text}");
        let imported = gwgen::check_file(&out);
        assert!(!imported.has_errors(), "{:?}", imported.diagnostics);
        // The same routes, served the same way.
        let original = gwgen::check_file(export(name));
        let routes = |c: &gwgen::Checked| {
            let gw = c.gateway.as_ref().expect("lowered");
            let mut v: Vec<String> = gw
                .routes
                .iter()
                .map(|r| format!("{} {} {:?}", r.method, r.path, r.settings))
                .collect();
            v.sort();
            v
        };
        assert_eq!(routes(&imported), routes(&original), "{name}");
    }
    // An export with refused features is not written: its errors are printed, exit 1.
    let out = dir.join("kinesis.yaml");
    let run = gwgen(
        &[
            "import-aws",
            &export("awsdocs__kinesis-proxy-export.oas30.json")
                .display()
                .to_string(),
            "-o",
            &out.display().to_string(),
        ],
        &repo(),
    );
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("GW0601"));
    assert!(!out.exists());
}

#[test]
fn check_locates_what_cannot_be_carried_over() {
    let spec = |op: &str, extra: &str| {
        format!(
            "openapi: 3.0.1\ninfo: {{ title: t, version: '1' }}\n{extra}paths:\n  /a:\n    get:\n      responses: {{ '200': {{ description: ok }} }}\n{op}"
        )
    };
    let check = |text: String| gwgen::check_text("aws.yaml", text);
    let first_error = |c: &gwgen::Checked| {
        c.diagnostics
            .iter()
            .find(|d| d.severity == gwgen::Severity::Error)
            .cloned()
            .unwrap_or_else(|| panic!("an error: {:?}", c.diagnostics))
    };
    // A Velocity directive that is not carried over, at its line inside the template.
    let c = check(spec(
        "      x-amazon-apigateway-integration:\n        type: mock\n        requestTemplates: { application/json: '{\"statusCode\": 200}' }\n        responses:\n          default:\n            statusCode: '200'\n            responseTemplates:\n              application/json: \"{\\n  \\\"a\\\": 1\\n}\\n#macro(x)#end\"\n",
        "",
    ));
    let d = first_error(&c);
    assert_eq!(d.code, gwgen::Code::AwsUnsupported);
    assert!(
        d.message.contains("#macro") && d.message.contains("line 4"),
        "{}",
        d.message
    );
    assert_eq!(d.pos.line, 14, "{d:?}");
    // IAM authorization.
    let c = check(spec(
        "      security: [{ sigv4: [] }]\n",
        "components:\n  securitySchemes:\n    sigv4: { type: apiKey, name: Authorization, in: header, x-amazon-apigateway-authtype: awsSigv4 }\n",
    ));
    let d = first_error(&c);
    assert!(d.message.contains("IAM"), "{}", d.message);
    assert_eq!(d.pos.line, 5);
    // A CloudFormation expression left in an export.
    let c = check(spec(
        "      x-amazon-apigateway-integration:\n        type: http_proxy\n        httpMethod: GET\n        uri: { 'Fn::Sub': 'https://${Host}/a' }\n",
        "",
    ));
    let d = first_error(&c);
    assert!(d.message.contains("Fn::Sub"), "{}", d.message);
    assert_eq!(d.pos.line, 10);
    // Another method upstream than the operation's.
    let c = check(spec(
        "      x-amazon-apigateway-integration: { type: http_proxy, httpMethod: POST, uri: 'http://127.0.0.1:9/a' }\n",
        "",
    ));
    assert!(first_error(&c).message.contains("POST for a GET"));
    // An unknown extension is refused, not ignored.
    let c = check(spec("", "x-amazon-apigateway-something-new: true\n"));
    assert!(first_error(&c).message.contains("something-new"));
    // Where both say something, x-gateway wins with a warning.
    let c = check(spec(
        "      x-amazon-apigateway-integration: { type: http_proxy, httpMethod: GET, uri: 'http://127.0.0.1:9/a' }\n      x-gateway: { integration: { type: mock } }\n",
        "",
    ));
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    assert!(c
        .diagnostics
        .iter()
        .any(|d| d.code == gwgen::Code::AwsOverridden));
    // A gateway response header that is not a header.
    let c = check(spec(
        "",
        "x-amazon-apigateway-gateway-responses:\n  DEFAULT_4XX:\n    responseParameters:\n      'gatewayresponse.header.Bad Name': \"'x'\"\n",
    ));
    let d = first_error(&c);
    assert_eq!(
        (d.code, d.pos.line),
        (gwgen::Code::XGatewayInvalid, 6),
        "{d:?}"
    );
    // A non-proxy HTTP integration: statuses map by class; a header only some statuses get is
    // set on those alone (`by_status`), and `default`'s on the others.
    let responses = |default: &str| {
        format!("      x-amazon-apigateway-integration:\n        type: http\n        httpMethod: GET\n        uri: 'http://127.0.0.1:9/a'\n        responses:\n          '2\\d{{2}}': {{ statusCode: '200' }}\n          default: {{ statusCode: '400'{default} }}\n")
    };
    let c = check(spec(&responses(""), ""));
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let c = check(spec(
        &responses(", responseParameters: { method.response.header.x-why: \"'bad'\" }"),
        "",
    ));
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let transform = (c.gateway.as_ref().expect("lowered").routes[0].settings)
        .transform
        .clone()
        .expect("a transform");
    assert_eq!(
        transform["response"]["headers"]["set"]["x-why"], "bad",
        "{transform}"
    );
    assert_eq!(
        transform["response"]["by_status"]["2XX"],
        serde_json::json!({ "status": 200 }),
        "{transform}"
    );
    // A response template every status shares maps the upstream's JSON answer; `#set` names a
    // place in it.
    let c = check(spec(
        "      x-amazon-apigateway-integration:\n        type: http\n        httpMethod: GET\n        uri: 'http://127.0.0.1:9/a'\n        responses:\n          default:\n            statusCode: '200'\n            responseTemplates:\n              application/json: \"#set($root = $input.path('$'))\\n{\\\"id\\\": \\\"$root.Item.id.S\\\"}\"\n",
        "",
    ));
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let route = &c.gateway.as_ref().expect("lowered").routes[0];
    let transform = route.settings.transform.as_ref().expect("a transform");
    assert_eq!(
        transform["response"]["body"]["template"]["id"],
        "{{ response.body./Item/id/S | text }}"
    );
    // Stage variables in a URI need a value in every stage.
    let proxy = "      x-amazon-apigateway-integration: { type: http_proxy, httpMethod: GET, uri: '${stageVariables.backend}/a' }\n";
    let c = check(spec(proxy, ""));
    assert!(
        first_error(&c).message.contains("backend"),
        "{:?}",
        c.diagnostics
    );
    let c = check(spec(
        proxy,
        "x-gateway: { stages: { prod: { variables: { backend: 'http://127.0.0.1:9' } } } }\n",
    ));
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    // Cache key parameters key the stage cache the spec turns on.
    let cached = "      parameters: [{ name: q, in: query, schema: { type: string } }]\n      x-amazon-apigateway-integration: { type: http_proxy, httpMethod: GET, uri: 'http://127.0.0.1:9/a', cacheKeyParameters: [method.request.querystring.q] }\n";
    let c = check(spec(
        cached,
        "x-gateway: { defaults: { cache: { ttl: 30s } } }\n",
    ));
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    let route = &c.gateway.as_ref().expect("lowered").routes[0];
    let cache = route.settings.cache.as_ref().expect("a cache");
    assert_eq!(cache.key, ["query.q"]);
    assert_eq!(cache.ttl.0, 30_000);
    let c = check(spec(cached, ""));
    let route = &c.gateway.as_ref().expect("lowered").routes[0];
    assert!(route.settings.cache.is_none(), "no stage cache, no cache");
    // A greedy variable that is not a whole last segment.
    let c = check(
        "openapi: 3.0.1\ninfo: { title: t, version: '1' }\npaths:\n  /a/{p+}/b:\n    get: { responses: { '200': { description: ok } } }\n".into(),
    );
    assert!(first_error(&c).message.contains("whole last segment"));
}
