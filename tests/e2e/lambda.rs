//! Lambda end to end (`tests/fixtures/gateway/lambda.yaml`): functions in
//! `tests/fixtures/lambda/functions.py` run unchanged under AWS's Python runtime interface client
//! (`awslambdaric`, from PyPI) behind the gateway's own Lambda Runtime API, in payload formats 1.0
//! and 2.0. Events carry what API Gateway's do; answers, binary bodies and cookies come back as
//! API Gateway gives them; a function that throws, hangs or exits ends as on AWS and its
//! process is replaced.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;

use crate::gateway::{build, Running};
use crate::net::{get, send, Reply};

/// The gateway of `lambda.yaml` with its functions ready.
pub(crate) struct Lambda {
    pub(crate) gw: Running,
    pub(crate) key: String,
    _dir: PathBuf,
}

pub(crate) fn start(extra_env: &[(&str, String)]) -> Lambda {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = crate::support::scratch(&format!("lambda-{n}"));
    let python = crate::auth::python();
    let bin = build("tests/fixtures/gateway/lambda.yaml");
    let keys = dir.join("keys.txt");
    let key = crate::auth::add_key(&bin, "pro", &keys);
    let functions = crate::support::repo().join("tests/fixtures/lambda");
    let mut env = vec![
        ("PYTHON", python.display().to_string()),
        ("FUNCTIONS_DIR", functions.display().to_string()),
        ("API_KEYS_FILE", keys.display().to_string()),
        // Never visible to a function: the gateway's own secrets.
        ("AWS_SECRET_ACCESS_KEY", "gateway-secret".to_string()),
        ("FAKE_LAMBDA_PORT", "9".to_string()),
        ("RUST_FUNCTION", "/nonexistent/rust-function".to_string()),
    ];
    env.extend(extra_env.iter().cloned());
    let gw = Running::start(&bin, &[], &env);
    Lambda { gw, key, _dir: dir }
}

fn post(port: u16, path: &str, content_type: &str, body: &[u8], extra: &str) -> Reply {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: api.gw.test\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    send(port, &raw)
}

fn text(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn local_functions_get_api_gateway_events_and_answer_as_on_aws() {
    let l = start(&[]);
    let port = l.gw.port;

    // Payload 2.0: the event as an HTTP API builds it.
    let r = get(
        port,
        "/echo/one/t%C3%A9?x=1&x=2&y=%20z",
        "User-Agent: curl/8\r\nCookie: a=1; b=2\r\nX-Multi: p\r\nX-Multi: q\r\n",
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let echo = r.json();
    let e = &echo["event"];
    assert_eq!(e["version"], "2.0");
    assert_eq!(e["routeKey"], "GET /echo/{a}/{b}");
    assert_eq!(e["rawPath"], "/echo/one/t%C3%A9");
    assert_eq!(e["rawQueryString"], "x=1&x=2&y=%20z");
    assert_eq!(e["cookies"], serde_json::json!(["a=1", "b=2"]));
    assert!(e["headers"].get("cookie").is_none(), "{e}");
    assert_eq!(e["headers"]["x-multi"], "p,q");
    assert_eq!(e["headers"]["user-agent"], "curl/8");
    assert_eq!(
        e["queryStringParameters"],
        serde_json::json!({"x": "1,2", "y": " z"})
    );
    assert_eq!(
        e["pathParameters"],
        serde_json::json!({"a": "one", "b": "té"})
    );
    assert_eq!(
        e["stageVariables"],
        serde_json::json!({"flavour": "vanilla", "colour": "blue"})
    );
    assert_eq!(e["requestContext"]["http"]["method"], "GET");
    assert_eq!(e["requestContext"]["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(e["requestContext"]["stage"], "dev");
    assert_eq!(e["requestContext"]["domainName"], "gw.test");
    assert_eq!(
        e["requestContext"]["requestId"].as_str(),
        r.header("x-request-id")
    );
    assert_eq!(e["isBase64Encoded"], false);
    assert!(e.get("body").is_none(), "no body, no `body`: {e}");
    // The process sees what a runtime client needs and the spec's `env`, and none of the
    // gateway's own environment.
    assert_eq!(echo["env"]["AWS_LAMBDA_FUNCTION_NAME"], "tests-v2");
    assert_eq!(echo["env"]["_HANDLER"], "functions.handle");
    assert_eq!(echo["env"]["GREETING"], "hello from vanilla");
    assert!(echo["env"]["AWS_SECRET_ACCESS_KEY"].is_null(), "{echo}");
    // The Runtime API is on loopback, where any local process could reach it: only the
    // function's own process is served, so no other can take its invocations.
    let api = echo["env"]["AWS_LAMBDA_RUNTIME_API"]
        .as_str()
        .expect("the API's address")
        .to_string();
    let api_port: u16 = api
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", api_port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = std::io::Write::write_all(
        &mut s,
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut got);
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert!(l.gw.log_text().contains("refused a Runtime API connection"));
    let remaining = echo["remaining_ms"].as_u64().expect("remaining time");
    assert!(
        remaining > 1000 && remaining <= 3000,
        "the deadline is the integration's timeout: {remaining}"
    );

    // Payload 1.0: the event as a REST API builds it; a text body stays text.
    let r = post(
        port,
        "/v1/echo/abc?q=1&q=2",
        "application/json",
        br#"{"a": 1}"#,
        "X-Multi: p\r\nX-Multi: q\r\n",
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    let e = r.json()["event"].clone();
    assert_eq!(e["resource"], "/v1/echo/{a}");
    assert_eq!(e["path"], "/v1/echo/abc");
    assert_eq!(e["httpMethod"], "POST");
    assert_eq!(
        e["headers"]["x-multi"], "q",
        "the last value, as API Gateway"
    );
    assert_eq!(
        e["multiValueHeaders"]["x-multi"],
        serde_json::json!(["p", "q"])
    );
    assert_eq!(e["queryStringParameters"], serde_json::json!({"q": "2"}));
    assert_eq!(
        e["multiValueQueryStringParameters"],
        serde_json::json!({"q": ["1", "2"]})
    );
    assert_eq!(e["pathParameters"], serde_json::json!({"a": "abc"}));
    assert_eq!(e["body"], r#"{"a": 1}"#);
    assert_eq!(e["isBase64Encoded"], false);
    assert_eq!(e["requestContext"]["resourcePath"], "/v1/echo/{a}");
    assert_eq!(e["requestContext"]["identity"]["sourceIp"], "127.0.0.1");
    assert!(e["requestContext"]["requestTime"]
        .as_str()
        .is_some_and(|t| t.ends_with(" +0000")));

    // A route behind an API key: no key, no invocation.
    let r = get(port, "/echo-key", &format!("X-Api-Key: {}\r\n", l.key));
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(get(port, "/echo-key", "").status, 401);
    // A client's forged `X-Gateway-*` identity never reaches a function.
    let r = get(port, "/echo/a/b", "X-Gateway-Sub: admin\r\n");
    assert!(r.json()["event"]["headers"].get("x-gateway-sub").is_none());

    // A transform edits the event as it would an upstream request, and the answer after.
    let r = post(
        port,
        "/transformed/7?q=1",
        "application/json",
        br#"{"keep": true, "drop": 1}"#,
        "X-Secret: s\r\n",
    );
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.header("x-transformed"), Some("yes"));
    let e = r.json()["event"].clone();
    assert_eq!(e["rawPath"], "/echo/rewritten/7");
    assert_eq!(e["rawQueryString"], "q=1&lang=en");
    assert_eq!(e["headers"]["x-route"], "/transformed/{id}");
    assert!(e["headers"].get("x-secret").is_none());
    let body: serde_json::Value =
        serde_json::from_str(e["body"].as_str().expect("a body")).expect("JSON");
    assert_eq!(body, serde_json::json!({"keep": true, "id": "7"}));

    // Binary bodies: base64 both ways, by media type in 1.0 and by not being text in 2.0.
    let bytes: Vec<u8> = (0u8..=255).collect();
    for path in ["/v1/binary", "/binary"] {
        let r = post(port, path, "application/octet-stream", &bytes, "");
        assert_eq!(r.status, 200, "{path}: {}", text(&r));
        let mut reversed = bytes.clone();
        reversed.reverse();
        assert_eq!(r.body, reversed, "{path}");
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    }

    // Cookies (2.0) become Set-Cookie headers; multi-value headers (1.0) win over single ones.
    let r = get(port, "/cookies", "");
    assert_eq!(r.header("set-cookie"), Some("a=1; Path=/, b=2; HttpOnly"));
    assert_eq!(r.header("x-one"), Some("1"));
    let r = get(port, "/v1/multi", "");
    assert_eq!(r.header("x-multi"), Some("a, b"));
    assert_eq!(r.header("x-both"), Some("m1, m2"));
    assert_eq!(r.header("x-single"), Some("s"));

    // Bare JSON (2.0) is a 200 with the JSON; the function's own status passes through.
    let r = get(port, "/bare", "");
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/json"))
    );
    assert_eq!(r.json(), serde_json::json!({"hello": "world", "n": 1}));
    let r = get(port, "/teapot", "");
    assert_eq!((r.status, text(&r).as_str()), (418, "short and stout"));

    // What API Gateway cannot read, and a function that throws, are 502.
    for path in ["/v1/malformed", "/throw"] {
        let r = get(port, path, "");
        assert_eq!(r.status, 502, "{path}: {}", text(&r));
        assert!(text(&r).contains("Internal server error"), "{}", text(&r));
    }
    // A body that is not UTF-8 goes base64 even where its media type says text.
    let bad = [b'{', 0xff, 0xfe, b'}'];
    for path in ["/echo/a/b", "/v1/echo/x"] {
        let r = post(port, path, "text/plain", &bad, "");
        assert_eq!(r.status, 200, "{}", text(&r));
        let e = r.json()["event"].clone();
        assert_eq!(e["isBase64Encoded"], true, "{path}");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(e["body"].as_str().expect("body"))
            .expect("base64");
        assert_eq!(decoded, bad, "{path}");
    }

    let pid = |r: &Reply| text(r).parse::<u32>().expect("a pid");
    let starts = |gw: &Running| gw.log_text().matches("started a function process").count();
    let started = starts(&l.gw);

    // A function that hangs: 504 at the integration's timeout, its process replaced.
    let t = Instant::now();
    let r = get(port, "/hang", "");
    assert_eq!(r.status, 504, "{}", text(&r));
    assert!(text(&r).contains("Endpoint request timed out"));
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    // A process that exits: 502; the next invocation gets a new process.
    let r = get(port, "/exit", "");
    assert_eq!(r.status, 502, "{}", text(&r));
    for _ in 0..3 {
        let r = get(port, "/pid", "");
        assert_eq!(r.status, 200, "{}", text(&r));
    }
    assert!(
        starts(&l.gw) >= started + 2,
        "the hung and the exited process were both replaced"
    );
    let log = l.gw.log_text();
    assert!(log.contains("Runtime.ExitError"), "{log}");
    assert!(log.contains("Task timed out"), "{log}");

    // A function that cannot load: its init error is 502, again at the next call, never a hang.
    for _ in 0..2 {
        let t = Instant::now();
        let r = get(port, "/init-fails", "");
        assert_eq!(r.status, 502, "{}", text(&r));
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }
    assert!(l
        .gw
        .log_text()
        .contains("a dependency of this function is missing"));

    // A process past `memory_mb` is killed, as Lambda kills it: 502, long before its timeout.
    let t = Instant::now();
    let r = get(port, "/oom", "");
    assert_eq!(r.status, 502, "{}", text(&r));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(l.gw.log_text().contains("Runtime.OutOfMemory"));

    // `concurrency: 2`: two slow invocations at once take one second, not two.
    let t = Instant::now();
    let pids: Vec<u32> = std::thread::scope(|s| {
        let a = s.spawn(|| pid(&get(port, "/slow", "")));
        let b = s.spawn(|| pid(&get(port, "/slow", "")));
        vec![a.join().expect("a"), b.join().expect("b")]
    });
    assert!(
        t.elapsed() < Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );
    assert_ne!(pids[0], pids[1], "two processes");
    // A third at once waits for one of them: at most two processes.
    let pids: Vec<u32> = std::thread::scope(|s| {
        let all: Vec<_> = (0..3)
            .map(|_| s.spawn(|| pid(&get(port, "/slow", ""))))
            .collect();
        all.into_iter().map(|h| h.join().expect("slow")).collect()
    });
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() <= 2, "{pids:?}");
}

/// The stand-in Lambda service (`tests/tools/fake_lambda.py`), which checks SigV4 signatures with
/// botocore; stopped by PID when dropped.
struct FakeLambda {
    _child: crate::support::Killed,
    port: u16,
}

impl FakeLambda {
    fn start(keys: (&str, &str, Option<&str>), container_token: &str) -> FakeLambda {
        let file = std::env::temp_dir().join(format!(
            "gwgen-fake-lambda-{}-{}",
            std::process::id(),
            crate::net::free_port()
        ));
        let mut cmd = std::process::Command::new(crate::auth::python());
        cmd.arg(crate::support::repo().join("tests/tools/fake_lambda.py"))
            .arg(&file)
            .env("ACCESS_KEY", keys.0)
            .env("SECRET_KEY", keys.1)
            .env("CONTAINER_TOKEN", container_token);
        if let Some(t) = keys.2 {
            cmd.env("SESSION_TOKEN", t);
        }
        let child = cmd.spawn().expect("start fake_lambda.py");
        let port = crate::support::port_from_file(&file, "fake_lambda.py");
        let _ = std::fs::remove_file(&file);
        FakeLambda {
            _child: crate::support::Killed(child),
            port,
        }
    }

    fn state(&self) -> serde_json::Value {
        get(self.port, "/state", "").json()
    }
}

#[test]
fn functions_on_aws_are_invoked_with_sigv4_that_botocore_accepts() {
    let dir = crate::support::scratch("sigv4");
    let nowhere = dir.join("none").display().to_string();

    // 1. Keys from the environment, with a session token.
    let fake = FakeLambda::start(("AKIDENV", "env-secret", Some("env-token")), "t");
    let l = start(&[
        ("FAKE_LAMBDA_PORT", fake.port.to_string()),
        ("AWS_ACCESS_KEY_ID", "AKIDENV".into()),
        ("AWS_SECRET_ACCESS_KEY", "env-secret".into()),
        ("AWS_SESSION_TOKEN", "env-token".into()),
    ]);
    let r = get(l.gw.port, "/aws/echo?q=1", "");
    assert_eq!(r.status, 200, "{} {}", text(&r), l.gw.log_text());
    let echo = r.json();
    // The ARN's region signs the call; the function is named by its whole ARN.
    assert_eq!(echo["region"], "eu-west-1");
    assert_eq!(
        echo["function"],
        "arn:aws:lambda:eu-west-1:123456789012:function:echo"
    );
    assert_eq!(echo["event"]["version"], "2.0");
    assert_eq!(echo["event"]["rawQueryString"], "q=1");
    let r = post(l.gw.port, "/aws/v1", "application/json", br#"{"x":1}"#, "");
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(r.json()["region"], "us-east-2");
    assert_eq!(r.json()["event"]["body"], r#"{"x":1}"#);
    // A function error is 502, as API Gateway answers it.
    let r = get(l.gw.port, "/aws/fails", "");
    assert_eq!(r.status, 502, "{}", text(&r));
    assert_eq!(fake.state()["rejected"], 0);
    assert_eq!(fake.state()["invocations"], 3);
    drop(l);

    // Wrong keys: the service refuses the signature; the client gets 502, never the function.
    let l = start(&[
        ("FAKE_LAMBDA_PORT", fake.port.to_string()),
        ("AWS_ACCESS_KEY_ID", "AKIDENV".into()),
        ("AWS_SECRET_ACCESS_KEY", "wrong-secret".into()),
        ("AWS_SESSION_TOKEN", "env-token".into()),
    ]);
    assert_eq!(get(l.gw.port, "/aws/echo", "").status, 502);
    assert_eq!(fake.state()["rejected"], 1);
    drop(l);
    drop(fake);

    // 2. Keys from a profile of the shared credentials file.
    let fake = FakeLambda::start(("AKIDPROFILE", "profile-secret", None), "t");
    let creds = dir.join("credentials");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other\n\n[gw]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n",
    )
    .expect("credentials file");
    let l = start(&[
        ("FAKE_LAMBDA_PORT", fake.port.to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", creds.display().to_string()),
        ("AWS_CONFIG_FILE", nowhere.clone()),
        ("AWS_PROFILE", "gw".into()),
    ]);
    let r = get(l.gw.port, "/aws/echo", "");
    assert_eq!(r.status, 200, "{} {}", text(&r), l.gw.log_text());
    drop(l);
    drop(fake);

    // 3. Container credentials, which expire: fetched again before they do.
    let fake = FakeLambda::start(("AKIDNONE", "none", None), "container-token");
    let l = start(&[
        ("FAKE_LAMBDA_PORT", fake.port.to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", nowhere.clone()),
        ("AWS_CONFIG_FILE", nowhere.clone()),
        (
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://127.0.0.1:{}/creds", fake.port),
        ),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN",
            "container-token".into(),
        ),
    ]);
    for _ in 0..2 {
        let r = get(l.gw.port, "/aws/echo", "");
        assert_eq!(r.status, 200, "{} {}", text(&r), l.gw.log_text());
    }
    assert_eq!(fake.state()["fetches"], 1, "kept while fresh");
    // They expire in 305 s, written in whole seconds (so 304 to 305 s from the fetch):
    // refreshed 300 s early, so after 5 s they are fetched again. (Expiring in 301 s left as
    // little as no time between the two requests above on a loaded machine.)
    std::thread::sleep(Duration::from_millis(5200));
    let r = get(l.gw.port, "/aws/echo", "");
    assert_eq!(r.status, 200, "{}", text(&r));
    assert_eq!(fake.state()["fetches"], 2);
    assert_eq!(fake.state()["rejected"], 0);
    drop(l);

    // 4. The instance's role, through IMDSv2 (a session token, then the role's credentials).
    let l = start(&[
        ("FAKE_LAMBDA_PORT", fake.port.to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", nowhere.clone()),
        ("AWS_CONFIG_FILE", nowhere.clone()),
        (
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://127.0.0.1:{}", fake.port),
        ),
    ]);
    let r = get(l.gw.port, "/aws/echo", "");
    assert_eq!(r.status, 200, "{} {}", text(&r), l.gw.log_text());
    assert_eq!(fake.state()["fetches"], 3);
    drop(l);

    // No credentials anywhere: 502 and a log line that says so, never an unsigned call.
    let l = start(&[
        ("FAKE_LAMBDA_PORT", fake.port.to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", nowhere.clone()),
        ("AWS_CONFIG_FILE", nowhere),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]);
    let before = fake.state()["invocations"].clone();
    assert_eq!(get(l.gw.port, "/aws/echo", "").status, 502);
    assert_eq!(fake.state()["invocations"], before);
    assert!(
        l.gw.log_text().contains("no AWS credentials"),
        "{}",
        l.gw.log_text()
    );
}

/// The events the authorizer function logged, in order.
fn authorizer_events(gw: &Running) -> Vec<serde_json::Value> {
    gw.log_text()
        .lines()
        .filter_map(|l| l.strip_prefix("authorizer called: "))
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect()
}

#[test]
fn lambda_authorizers_decide_in_both_payload_formats_and_are_cached() {
    let l = start(&[]);
    let port = l.gw.port;
    let auth = |v: &str| format!("Authorization: {v}\r\n");

    // Payload 2.0, a simple answer: its context reaches the integration; cached for `ttl`.
    let r = get(port, "/authz/v2", &auth("allow-ann"));
    assert_eq!(r.status, 200, "{} {}", text(&r), l.gw.log_text());
    assert_eq!(
        r.json()["event"]["requestContext"]["authorizer"]["lambda"],
        serde_json::json!({"user": "ann", "kind": "simple"})
    );
    assert_eq!(get(port, "/authz/v2", &auth("allow-ann")).status, 200);
    let events = authorizer_events(&l.gw);
    assert_eq!(events.len(), 1, "the second answer came from the cache");
    assert_eq!(events[0]["version"], "2.0");
    assert_eq!(
        events[0]["identitySource"],
        serde_json::json!(["allow-ann"])
    );
    assert_eq!(events[0]["routeKey"], "GET /authz/v2");
    assert_eq!(get(port, "/authz/v2", &auth("deny-bob")).status, 403);
    assert_eq!(
        get(port, "/authz/v2", "").status,
        401,
        "no identity, no call"
    );
    // A failing authorizer is 503, never a pass.
    assert_eq!(get(port, "/authz/v2", &auth("throw")).status, 503);
    assert_eq!(authorizer_events(&l.gw).len(), 3);

    // Payload 1.0, TOKEN: the token and the method ARN; a policy that allows this route.
    let r = get(port, "/authz/token", &auth("Bearer allow-bob"));
    assert_eq!(r.status, 200, "{}", text(&r));
    let ctx = &r.json()["event"]["requestContext"]["authorizer"]["lambda"];
    assert_eq!(ctx["principalId"], "bob");
    assert_eq!(ctx["kind"], "TOKEN");
    let event = authorizer_events(&l.gw).pop().expect("a TOKEN event");
    assert_eq!(event["type"], "TOKEN");
    assert_eq!(event["authorizationToken"], "Bearer allow-bob");
    assert!(
        event["methodArn"].as_str().is_some_and(
            |a| a.starts_with("arn:aws:execute-api:") && a.ends_with("/dev/GET/authz/token")
        ),
        "{event}"
    );
    assert_eq!(get(port, "/authz/token", &auth("deny-bob")).status, 403);

    // Payload 1.0, REQUEST: the request's headers, query and path parameters; every identity
    // source is needed.
    let r = get(port, "/authz/request/42?tenant=t1", &auth("allow-cy"));
    assert_eq!(r.status, 200, "{}", text(&r));
    let event = authorizer_events(&l.gw).pop().expect("a REQUEST event");
    assert_eq!(event["type"], "REQUEST");
    assert_eq!(event["resource"], "/authz/request/{id}");
    assert_eq!(event["pathParameters"], serde_json::json!({"id": "42"}));
    assert_eq!(
        event["queryStringParameters"],
        serde_json::json!({"tenant": "t1"})
    );
    assert_eq!(event["headers"]["authorization"], "allow-cy");
    assert!(event.get("body").is_none());
    let calls = authorizer_events(&l.gw).len();
    assert_eq!(
        get(port, "/authz/request/42", &auth("allow-cy")).status,
        401
    );
    assert_eq!(
        authorizer_events(&l.gw).len(),
        calls,
        "a missing source is 401 without a call"
    );
}

#[test]
fn check_locates_lambda_mistakes() {
    let spec = |integration: &str| {
        format!(
            "openapi: 3.1.0\ninfo: {{ title: T, version: \"1\" }}\nx-gateway: {{ defaults: {{ throttle: {{ rate: 1 }} }} }}\npaths:\n  /a:\n    get:\n      x-gateway: {{ integration: {integration} }}\n      responses: {{ \"200\": {{ description: ok }} }}\n"
        )
    };
    let errors = |integration: &str| {
        let checked = gwgen::check_text("spec.yaml", spec(integration));
        crate::support::errors(&checked)
    };
    let cases = [
        (
            r#"{ type: lambda, function: f, payload_format: "3.0" }"#,
            "spec.yaml:7:",
            "GW0402",
            "not one of \"1.0\" or \"2.0\"",
        ),
        (
            r#"{ type: lambda, payload_format: "2.0" }"#,
            "spec.yaml:7:",
            "GW0402",
            "has neither",
        ),
        (
            r#"{ type: lambda, command: "python3 -m awslambdaric app.handler" }"#,
            "spec.yaml:7:",
            "GW0402",
            "expected array",
        ),
        (
            r#"{ type: lambda, function: "my function" }"#,
            "spec.yaml:7:",
            "GW0402",
            "not a Lambda function name",
        ),
        (
            r#"{ type: lambda, function: f, memory_mb: 256 }"#,
            "spec.yaml:7:",
            "GW0413",
            "`memory_mb` applies to functions run locally",
        ),
    ];
    for (integration, at, code, says) in cases {
        let found = errors(integration);
        assert!(
            found
                .iter()
                .any(|e| e.starts_with(at) && e.contains(code) && e.contains(says)),
            "{integration}: {found:#?}"
        );
    }
    // Every form PRODUCT.md shows checks clean.
    for ok in [
        r#"{ type: lambda, function: "arn:aws:lambda:eu-west-1:123456789012:function:orders:live" }"#,
        r#"{ type: lambda, function: "123456789012:function:orders", payload_format: "1.0" }"#,
        r#"{ type: lambda, function: "${stageVariables.fn}" }"#,
        r#"{ type: lambda, command: [./bootstrap], concurrency: 2, memory_mb: 256 }"#,
    ] {
        let found: Vec<String> = errors(ok)
            .into_iter()
            .filter(|e| !e.contains("GW0403"))
            .collect();
        assert!(found.is_empty(), "{ok}: {found:#?}");
    }
}

/// The Rust function of `tests/lambda-rust`, built as its user would build it.
fn rust_function() -> PathBuf {
    let repo = crate::support::repo();
    let out = std::process::Command::new(env!("CARGO"))
        .args(["build", "--locked", "-q", "--manifest-path"])
        .arg(repo.join("tests/lambda-rust/Cargo.toml"))
        .env("CARGO_TARGET_DIR", repo.join("target"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    repo.join("target/debug/gwgen-test-rust-function")
}

#[test]
fn a_rust_lambda_runtime_function_runs_unchanged() {
    let bin = rust_function();
    let l = start(&[("RUST_FUNCTION", bin.display().to_string())]);
    let r = get(l.gw.port, "/rust/ferris", "");
    assert_eq!(r.status, 200, "{} {}", text(&r), l.gw.log_text());
    let body = r.json();
    assert_eq!(body["runtime"], "rust");
    assert_eq!(body["name"], "ferris");
    assert!(
        body["requestId"].as_str().is_some_and(|id| id.len() == 36),
        "{body}"
    );
    // Its deadline is the integration's: 5 s from now.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    let deadline = body["deadline"].as_u64().expect("deadline");
    assert!(
        deadline > now_ms && deadline <= now_ms + 5_000,
        "{deadline} vs {now_ms}"
    );
    // Its error is 502; the process lives on and serves the next one.
    let r = get(l.gw.port, "/rust-fail", "");
    assert_eq!(r.status, 502, "{}", text(&r));
    assert_eq!(get(l.gw.port, "/rust/again", "").status, 200);
    assert_eq!(
        l.gw.log_text()
            .matches("started a function process")
            .count(),
        1,
        "one warm process served all three"
    );
}
