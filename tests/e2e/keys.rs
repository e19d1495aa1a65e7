//! Every key the `x-gateway` schema accepts does what its documentation says, or `gwgen check`
//! refuses it.
//!
//! The test walks `codegen/schema/x-gateway.schema.json` and collects every property of every
//! definition. Each must have at least one row below, and each row proves one of two things:
//!
//! - **Honoured**: the spec with the key checks clean, and changing the key's value (or removing
//!   it) changes the generated gateway. A key that changes nothing would be silently ignored.
//!
//! A key of a capability not built yet would be refused by `gwgen check` with GW0409 ("setting
//! not built yet") at its place; in this version there is none.

use std::collections::BTreeSet;

use serde_json::{json, Value};

/// Where a sample `x-gateway` block is put in the base spec.
#[derive(Clone, Copy)]
enum At {
    Root,
    PathItem,
    Operation,
    /// The bearer scheme.
    Scheme,
    /// The API-key scheme.
    KeyScheme,
}

impl At {
    /// The JSON pointer of the block in the spec.
    fn pointer(self) -> &'static str {
        match self {
            At::Root => "/x-gateway",
            At::PathItem => "/paths/~1items~1{id}/x-gateway",
            At::Operation => "/paths/~1items~1{id}/get/x-gateway",
            At::Scheme => "/components/securitySchemes/bearer/x-gateway",
            At::KeyScheme => "/components/securitySchemes/key/x-gateway",
        }
    }
}

enum Expect {
    /// Replacing the value at this pointer (inside the first block) with this value, or
    /// removing it (`None`), changes the generated crate.
    Honoured(&'static str, Option<Value>),
}

struct Row {
    /// `definition.property` in the schema.
    key: &'static str,
    /// The blocks to put in the base spec; the first holds the key.
    blocks: Vec<(At, Value)>,
    expect: Expect,
}

fn honoured(
    key: &'static str,
    blocks: Vec<(At, Value)>,
    ptr: &'static str,
    alt: Option<Value>,
) -> Row {
    Row {
        key,
        blocks,
        expect: Expect::Honoured(ptr, alt),
    }
}

/// A small spec with a parameterised path, a JSON body and a bearer scheme the GET requires.
fn base() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Keys", "version": "1" },
        "paths": {
            "/items/{id}": {
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "get": {
                    "security": [{ "bearer": [] }, { "key": [] }, {}],
                    "responses": { "200": { "description": "ok", "content": { "application/json": {
                        "schema": { "type": "object" },
                        "examples": { "a": { "value": { "n": 1 } }, "b": { "value": { "n": 2 } } }
                    } } } }
                },
                "post": {
                    "security": [],
                    "requestBody": { "content": { "application/json": { "schema": { "type": "object" } } } },
                    "responses": { "200": { "description": "ok" } }
                }
            }
        },
        "components": { "securitySchemes": {
            "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            "key": { "type": "apiKey", "in": "header", "name": "x-api-key" }
        } }
    })
}

fn rows() -> Vec<Row> {
    use At::*;
    // A function run locally, named by its ARN from a `lambda` integration.
    let functions = json!({
        "functions": { "f": {
            "command": ["python3", "-m", "awslambdaric", "h.main"], "handler": "h.main",
            "env": { "A": "1" }, "workdir": "/tmp", "concurrency": 2, "memory_mb": 256,
            "region": "eu-west-1"
        } },
        "defaults": { "integration": {
            "type": "lambda", "function": "arn:aws:lambda:eu-west-1:123456789012:function:f"
        } }
    });
    let http = json!({ "type": "http", "url": "http://127.0.0.1:9/x" });
    let plans = json!({ "usage_plans": { "p": { "throttle": { "rate": 1 } } }, "api_keys": { "source": "file:keys.txt" } });
    let jwt = json!({ "secret": "${env.S}", "issuer": "https://i.example", "audience": ["a"],
                      "algorithms": ["HS256"], "leeway": "5s", "plan": "p" });
    let authz = json!({ "authorizer": { "type": "http", "url": "http://127.0.0.1:9/a",
                        "identity": ["header.authorization"], "ttl": "60s", "timeout": "2s" } });
    let cors = json!({ "cors": { "allow_origins": ["https://a.example"], "allow_methods": ["GET"],
                       "allow_headers": ["x-a"], "expose_headers": ["x-b"], "allow_credentials": true, "max_age": "60s" } });
    let cache = json!({ "cache": { "ttl": "60s", "key": ["query.a"], "shared": true, "invalidate": ["p"], "max_entries": 10 } });
    let state = json!({ "state": { "backend": "redis", "url": "redis://127.0.0.1:6379", "prefix": "x:",
                        "on_state_error": "deny", "timeout": "1s", "cache_size": "1MiB" },
                        "defaults": { "throttle": { "rate": 1 } } });
    let stage = json!({ "stages": { "dev": { "description": "d", "variables": { "v": "1" },
                        "throttle": { "rate": 2 }, "validate": { "responses": "enforce" } } } });
    let responses = json!({ "gateway_responses": { "THROTTLED": { "status": 503, "body": { "m": "x" }, "headers": { "x-a": "1" } } } });
    let mock = json!({ "integration": { "type": "mock", "status": 200, "body": { "a": 1 }, "content_type": "application/json" } });
    let lambda = json!({ "integration": { "type": "lambda", "function": "f", "payload_format": "2.0",
                         "endpoint": "http://127.0.0.1:9", "region": "eu-west-1" } });
    let local_lambda = json!({ "integration": { "type": "lambda", "command": ["./f"], "env": { "A": "1" },
                               "handler": "app.handle", "workdir": "fn", "concurrency": 2, "memory_mb": 128 } });
    let domains = json!({ "domains": [{ "name": "api.example.com", "base_path": "/v1" }, { "name": "*.example.org" }],
                          "unknown_hosts": "serve" });
    let domain_ca = json!({ "domains": [{ "name": "api.example.com", "client_ca": "api-clients.pem",
                                          "client_crl": "api-revoked.pem" }],
                            "tls": { "certificates": [{ "cert": "api.pem", "key": "api.key" }] } });
    let ocsp = json!({ "tls": { "certificates": [{ "cert": "api.pem", "key": "api.key", "ocsp": "api.ocsp" }] } });
    let listener_tls = json!({ "tls": { "certificates": [{ "cert": "api.pem", "key": "api.key" }],
                               "client_ca": "clients.pem", "client_crl": "revoked.pem", "min_version": "1.3",
                               "hsts": { "max_age": "8760h", "include_subdomains": true, "preload": true } } });
    let tls = json!({ "integration": { "type": "http", "url": "https://127.0.0.1:9",
                      "tls": { "ca": "ca.pem", "cert": "client.pem", "key": "client.key" } } });
    let health = json!({ "integration": { "type": "http",
                         "targets": [{ "url": "http://127.0.0.1:9" }, { "url": "http://127.0.0.1:8" }],
                         "retries": 2, "balance": "least_request", "max_requests": 10,
                         "health_check": { "path": "/h", "interval": "5s", "timeout": "2s",
                                           "unhealthy_after": 3, "healthy_after": 2 } } });
    let transform = json!({ "transform": {
        "request": { "headers": { "set": { "a": "{{ context.authorizer.claims.sub }}" }, "add": { "b": "2" }, "remove": ["c"] },
                     "query": { "set": { "q": "1" } }, "path": "/v2/{{ request.path.id }}", "identity": true },
        "response": { "headers": { "remove": ["server"] }, "status": { "404": 200 } } } });
    let compression = json!({ "compression": {
        "responses": { "encodings": ["gzip", "br"], "min_size": "1KiB", "types": ["application/json"] },
        "requests": { "encodings": ["gzip"], "max_size": "2MiB" } } });
    let by_status = json!({ "transform": { "response": { "by_status": { "404": {
        "status": 200,
        "headers": { "set": { "x-found": "no" } },
        "body": { "template": { "found": false } }
    } } } } });
    let body_map = json!({ "transform": {
        "request": { "body": { "template": { "a": "{{ request.path.id }}" } } },
        "response": { "body": { "set": { "/a": "{{ response.body./a }}" }, "remove": ["/b"] } } } });
    let websocket = json!({ "websocket": {
        "route_selection": "$request.body.action",
        "routes": {
            "$default": { "integration": { "type": "mock", "body": "hi" }, "respond": true },
            "send": { "integration": { "type": "http", "url": "http://127.0.0.1:9/send" },
                      "schema": { "type": "object", "required": ["text"] },
                      "throttle": { "rate": 5, "burst": 10 } } },
        "limits": { "message": "64KiB", "frame": "16KiB", "idle_timeout": "5m",
                    "max_duration": "1h", "per_client": 5 },
        "message_throttle": { "rate": 2 } } });
    let throttle = json!({ "throttle": { "rate": 5, "burst": 7, "per": "ip" } });
    let quota = json!({ "usage_plans": { "p": { "description": "d", "throttle": { "rate": 1 }, "quota": { "limit": 10, "period": "day" } } },
                        "api_keys": { "source": "file:keys.txt" } });
    let limits = json!({ "limits": { "body": "1KiB", "headers": "8KiB", "json_depth": 10 } });
    let one_target =
        json!({ "integration": { "type": "http", "targets": [{ "url": "http://127.0.0.1:9" }] } });
    let weighted = json!({ "integration": { "type": "http", "targets": [{ "url": "http://127.0.0.1:9", "weight": 2 }, { "url": "http://127.0.0.1:8" }] } });
    let two_targets = json!({ "integration": { "type": "http", "targets": [{ "url": "http://127.0.0.1:9" }, { "url": "http://127.0.0.1:8" }] } });
    let scheme_plans = json!({ "plans": ["p"] });
    vec![
        // Throttles, quotas, usage plans.
        honoured(
            "throttle.rate",
            vec![(Operation, throttle.clone())],
            "/throttle/rate",
            Some(json!(6)),
        ),
        honoured(
            "throttle.burst",
            vec![(Operation, throttle.clone())],
            "/throttle/burst",
            Some(json!(8)),
        ),
        honoured(
            "throttle.per",
            vec![(Operation, throttle.clone())],
            "/throttle/per",
            Some(json!("route")),
        ),
        honoured(
            "quota.limit",
            vec![(Root, quota.clone())],
            "/usage_plans/p/quota/limit",
            Some(json!(11)),
        ),
        honoured(
            "quota.period",
            vec![(Root, quota.clone())],
            "/usage_plans/p/quota/period",
            Some(json!("week")),
        ),
        honoured(
            "usagePlan.description",
            vec![(Root, quota.clone())],
            "/usage_plans/p/description",
            Some(json!("e")),
        ),
        honoured(
            "usagePlan.throttle",
            vec![(Root, quota.clone())],
            "/usage_plans/p/throttle",
            None,
        ),
        honoured(
            "usagePlan.quota",
            vec![(Root, quota.clone())],
            "/usage_plans/p/quota",
            None,
        ),
        // Integrations.
        // The type decides which other keys apply (GW0413), so the whole integration changes.
        honoured(
            "integration.type",
            vec![(Operation, json!({ "integration": http }))],
            "/integration",
            Some(json!({ "type": "mock" })),
        ),
        honoured(
            "integration.url",
            vec![(Operation, json!({ "integration": http }))],
            "/integration/url",
            Some(json!("http://127.0.0.1:8/y")),
        ),
        honoured(
            "integration.targets",
            vec![(Operation, one_target.clone())],
            "/integration/targets",
            Some(json!([{ "url": "http://127.0.0.1:8" }])),
        ),
        honoured(
            "target.url",
            vec![(Operation, one_target.clone())],
            "/integration/targets/0/url",
            Some(json!("http://127.0.0.1:8")),
        ),
        honoured(
            "integration.targets",
            vec![(Operation, two_targets)],
            "/integration/targets/1/url",
            Some(json!("http://127.0.0.1:7")),
        ),
        honoured(
            "target.weight",
            vec![(Operation, weighted)],
            "/integration/targets/0/weight",
            Some(json!(5)),
        ),
        honoured(
            "integration.timeout",
            vec![(
                Operation,
                json!({ "integration": { "type": "http", "url": "http://127.0.0.1:9", "timeout": "3s" } }),
            )],
            "/integration/timeout",
            Some(json!("4s")),
        ),
        honoured(
            "integration.retries",
            vec![(Operation, health.clone())],
            "/integration/retries",
            Some(json!(0)),
        ),
        honoured(
            "integration.tls",
            vec![(Operation, tls.clone())],
            "/integration/tls",
            None,
        ),
        honoured(
            "integration.tls.ca",
            vec![(Operation, tls.clone())],
            "/integration/tls/ca",
            Some(json!("other-ca.pem")),
        ),
        honoured(
            "integration.tls.cert",
            vec![(Operation, tls.clone())],
            "/integration/tls/cert",
            Some(json!("other.pem")),
        ),
        honoured(
            "integration.tls.key",
            vec![(Operation, tls.clone())],
            "/integration/tls/key",
            Some(json!("other.key")),
        ),
        honoured(
            "integration.protocol",
            vec![(
                Operation,
                json!({ "integration": { "type": "http", "url": "http://127.0.0.1:9", "protocol": "http2" } }),
            )],
            "/integration/protocol",
            Some(json!("http1")),
        ),
        honoured(
            "integration.balance",
            vec![(Operation, health.clone())],
            "/integration/balance",
            Some(json!("round_robin")),
        ),
        honoured(
            "integration.max_requests",
            vec![(Operation, health.clone())],
            "/integration/max_requests",
            Some(json!(11)),
        ),
        honoured(
            "integration.health_check",
            vec![(Operation, health.clone())],
            "/integration/health_check",
            None,
        ),
        honoured(
            "integration.health_check.path",
            vec![(Operation, health.clone())],
            "/integration/health_check/path",
            Some(json!("/other")),
        ),
        honoured(
            "integration.health_check.interval",
            vec![(Operation, health.clone())],
            "/integration/health_check/interval",
            Some(json!("6s")),
        ),
        honoured(
            "integration.health_check.timeout",
            vec![(Operation, health.clone())],
            "/integration/health_check/timeout",
            Some(json!("3s")),
        ),
        honoured(
            "integration.health_check.unhealthy_after",
            vec![(Operation, health.clone())],
            "/integration/health_check/unhealthy_after",
            Some(json!(4)),
        ),
        honoured(
            "integration.health_check.healthy_after",
            vec![(Operation, health.clone())],
            "/integration/health_check/healthy_after",
            Some(json!(5)),
        ),
        honoured(
            "integration.status",
            vec![(Operation, mock.clone())],
            "/integration/status",
            Some(json!(201)),
        ),
        honoured(
            "integration.status_from",
            vec![(
                Operation,
                json!({ "integration": { "type": "mock", "status_from": "{{ request.query.code }}" } }),
            )],
            "/integration/status_from",
            Some(json!("{{ request.header.x-code }}")),
        ),
        honoured(
            "integration.body",
            vec![(Operation, mock.clone())],
            "/integration/body",
            Some(json!({ "a": 2 })),
        ),
        honoured(
            "integration.content_type",
            vec![(Operation, mock.clone())],
            "/integration/content_type",
            Some(json!("application/vnd.a+json")),
        ),
        honoured(
            "integration.example",
            vec![(
                Operation,
                json!({ "integration": { "type": "mock", "example": "a" } }),
            )],
            "/integration/example",
            Some(json!("b")),
        ),
        honoured(
            "integration.function",
            vec![(Operation, lambda.clone())],
            "/integration/function",
            Some(json!("g")),
        ),
        honoured(
            "integration.payload_format",
            vec![(Operation, lambda.clone())],
            "/integration/payload_format",
            Some(json!("1.0")),
        ),
        honoured(
            "integration.endpoint",
            vec![(Operation, lambda.clone())],
            "/integration/endpoint",
            Some(json!("http://127.0.0.1:8")),
        ),
        honoured(
            "integration.region",
            vec![(Operation, lambda.clone())],
            "/integration/region",
            Some(json!("us-east-2")),
        ),
        honoured(
            "integration.command",
            vec![(Operation, local_lambda.clone())],
            "/integration/command",
            Some(json!(["./g"])),
        ),
        honoured(
            "integration.env",
            vec![(Operation, local_lambda.clone())],
            "/integration/env",
            Some(json!({ "A": "2" })),
        ),
        honoured(
            "integration.handler",
            vec![(Operation, local_lambda.clone())],
            "/integration/handler",
            Some(json!("app.other")),
        ),
        honoured(
            "integration.workdir",
            vec![(Operation, local_lambda.clone())],
            "/integration/workdir",
            Some(json!("other")),
        ),
        honoured(
            "integration.concurrency",
            vec![(Operation, local_lambda.clone())],
            "/integration/concurrency",
            Some(json!(3)),
        ),
        honoured(
            "integration.memory_mb",
            vec![(Operation, local_lambda.clone())],
            "/integration/memory_mb",
            Some(json!(256)),
        ),
        honoured(
            "root.binary_media_types",
            vec![(
                Root,
                json!({ "binary_media_types": ["image/*"], "defaults": local_lambda.clone() }),
            )],
            "/binary_media_types",
            Some(json!(["*/*"])),
        ),
        // The response cache.
        honoured(
            "cache.ttl",
            vec![(Operation, cache.clone()), (Root, plans.clone())],
            "/cache/ttl",
            Some(json!("61s")),
        ),
        honoured(
            "cache.key",
            vec![(Operation, cache.clone()), (Root, plans.clone())],
            "/cache/key",
            Some(json!(["query.b"])),
        ),
        honoured(
            "cache.shared",
            vec![(Operation, cache.clone()), (Root, plans.clone())],
            "/cache/shared",
            Some(json!(false)),
        ),
        honoured(
            "cache.invalidate",
            vec![(Operation, cache.clone()), (Root, plans.clone())],
            "/cache/invalidate",
            None,
        ),
        honoured(
            "cache.max_entries",
            vec![(Operation, cache.clone()), (Root, plans.clone())],
            "/cache/max_entries",
            Some(json!(11)),
        ),
        honoured(
            "cache.undeclared_query",
            vec![
                (
                    Operation,
                    json!({ "cache": { "ttl": "60s", "undeclared_query": "strip" } }),
                ),
                (Root, plans.clone()),
            ],
            "/cache/undeclared_query",
            Some(json!("key")),
        ),
        // CORS.
        honoured(
            "cors.allow_origins",
            vec![(Operation, cors.clone())],
            "/cors/allow_origins",
            Some(json!(["https://b.example"])),
        ),
        honoured(
            "cors.allow_methods",
            vec![(Operation, cors.clone())],
            "/cors/allow_methods",
            None,
        ),
        honoured(
            "cors.allow_headers",
            vec![(Operation, cors.clone())],
            "/cors/allow_headers",
            None,
        ),
        honoured(
            "cors.expose_headers",
            vec![(Operation, cors.clone())],
            "/cors/expose_headers",
            None,
        ),
        honoured(
            "cors.allow_credentials",
            vec![(Operation, cors.clone())],
            "/cors/allow_credentials",
            None,
        ),
        honoured(
            "cors.max_age",
            vec![(Operation, cors.clone())],
            "/cors/max_age",
            None,
        ),
        // Transforms: built, but for body mappings.
        honoured(
            "operationSettings.transform",
            vec![(Operation, transform.clone())],
            "/transform",
            None,
        ),
        honoured(
            "transform.request",
            vec![(PathItem, transform.clone())],
            "/transform/request",
            None,
        ),
        honoured(
            "transform.response",
            vec![(Root, transform.clone())],
            "/transform/response",
            None,
        ),
        honoured(
            "transform.request.headers",
            vec![(Operation, transform.clone())],
            "/transform/request/headers",
            None,
        ),
        honoured(
            "transform.request.query",
            vec![(Operation, transform.clone())],
            "/transform/request/query",
            None,
        ),
        honoured(
            "transform.request.path",
            vec![(Operation, transform.clone())],
            "/transform/request/path",
            Some(json!("/v3/{{ request.path.id }}")),
        ),
        honoured(
            "transform.request.identity",
            vec![(Operation, transform.clone())],
            "/transform/request/identity",
            Some(json!(false)),
        ),
        honoured(
            "operationSettings.compression",
            vec![(Operation, compression.clone())],
            "/compression",
            None,
        ),
        honoured(
            "compression.responses",
            vec![(Operation, compression.clone())],
            "/compression/responses",
            None,
        ),
        honoured(
            "compression.responses.encodings",
            vec![(Operation, compression.clone())],
            "/compression/responses/encodings",
            Some(json!(["zstd"])),
        ),
        honoured(
            "compression.responses.min_size",
            vec![(Operation, compression.clone())],
            "/compression/responses/min_size",
            Some(json!("2KiB")),
        ),
        honoured(
            "compression.responses.types",
            vec![(Operation, compression.clone())],
            "/compression/responses/types",
            Some(json!(["text/*"])),
        ),
        honoured(
            "compression.requests",
            vec![(Operation, compression.clone())],
            "/compression/requests",
            None,
        ),
        honoured(
            "compression.requests.encodings",
            vec![(Operation, compression.clone())],
            "/compression/requests/encodings",
            Some(json!(["deflate"])),
        ),
        honoured(
            "compression.requests.max_size",
            vec![(Operation, compression)],
            "/compression/requests/max_size",
            None,
        ),
        honoured(
            "transform.request.body",
            vec![(Operation, body_map.clone())],
            "/transform/request/body",
            None,
        ),
        honoured(
            "bodyMapping.template",
            vec![(Operation, body_map.clone())],
            "/transform/request/body/template",
            Some(json!({ "b": 2 })),
        ),
        honoured(
            "bodyMapping.text",
            vec![(
                Operation,
                json!({ "transform": { "response": { "body": {
                    "text": "[{% for x in response.body./items %}\"{{ x }}\"{% if not loop.last %},{% end %}{% end %}]"
                } } } }),
            )],
            "/transform/response/body/text",
            Some(json!("[]")),
        ),
        honoured(
            "transform.response.by_status",
            vec![(Operation, by_status.clone())],
            "/transform/response/by_status",
            None,
        ),
        honoured(
            "transform.response.by_status.status",
            vec![(Operation, by_status.clone())],
            "/transform/response/by_status/404/status",
            Some(json!(410)),
        ),
        honoured(
            "transform.response.by_status.headers",
            vec![(Operation, by_status.clone())],
            "/transform/response/by_status/404/headers",
            None,
        ),
        honoured(
            "transform.response.by_status.body",
            vec![(Operation, by_status)],
            "/transform/response/by_status/404/body",
            None,
        ),
        honoured(
            "bodyMapping.set",
            vec![(Operation, body_map.clone())],
            "/transform/response/body/set",
            Some(json!({ "/b": 2 })),
        ),
        honoured(
            "bodyMapping.remove",
            vec![(Operation, body_map.clone())],
            "/transform/response/body/remove",
            None,
        ),
        honoured(
            "transform.response.headers",
            vec![(Operation, transform.clone())],
            "/transform/response/headers",
            None,
        ),
        honoured(
            "transform.response.status",
            vec![(Operation, transform.clone())],
            "/transform/response/status",
            Some(json!({ "5XX": 503 })),
        ),
        honoured(
            "transform.response.body",
            vec![(Operation, body_map)],
            "/transform/response/body",
            None,
        ),
        honoured(
            "headerEdits.set",
            vec![(Operation, transform.clone())],
            "/transform/request/headers/set",
            None,
        ),
        honoured(
            "headerEdits.add",
            vec![(Operation, transform.clone())],
            "/transform/request/headers/add",
            None,
        ),
        honoured(
            "headerEdits.remove",
            vec![(Operation, transform)],
            "/transform/request/headers/remove",
            None,
        ),
        honoured(
            "pathItem.websocket",
            vec![(PathItem, websocket.clone())],
            "/websocket",
            None,
        ),
        honoured(
            "pathItem.websocket.route_selection",
            vec![(PathItem, websocket.clone())],
            "/websocket/route_selection",
            Some(json!("$request.body.type")),
        ),
        honoured(
            "pathItem.websocket.routes",
            vec![(PathItem, websocket.clone())],
            "/websocket/routes/send",
            None,
        ),
        honoured(
            "pathItem.websocket.routes.integration",
            vec![(PathItem, websocket.clone())],
            "/websocket/routes/send/integration/url",
            Some(json!("http://127.0.0.1:8/other")),
        ),
        honoured(
            "pathItem.websocket.routes.respond",
            vec![(PathItem, websocket.clone())],
            "/websocket/routes/$default/respond",
            None,
        ),
        honoured(
            "pathItem.websocket.routes.schema",
            vec![(PathItem, websocket.clone())],
            "/websocket/routes/send/schema",
            None,
        ),
        honoured(
            "pathItem.websocket.routes.throttle",
            vec![(PathItem, websocket.clone())],
            "/websocket/routes/send/throttle/rate",
            Some(json!(7)),
        ),
        honoured(
            "pathItem.websocket.limits",
            vec![(PathItem, websocket.clone())],
            "/websocket/limits",
            None,
        ),
        honoured(
            "pathItem.websocket.limits.message",
            vec![(PathItem, websocket.clone())],
            "/websocket/limits/message",
            Some(json!("1KiB")),
        ),
        honoured(
            "pathItem.websocket.limits.frame",
            vec![(PathItem, websocket.clone())],
            "/websocket/limits/frame",
            Some(json!("1KiB")),
        ),
        honoured(
            "pathItem.websocket.limits.idle_timeout",
            vec![(PathItem, websocket.clone())],
            "/websocket/limits/idle_timeout",
            Some(json!("1m")),
        ),
        honoured(
            "pathItem.websocket.limits.max_duration",
            vec![(PathItem, websocket.clone())],
            "/websocket/limits/max_duration",
            Some(json!("2m")),
        ),
        honoured(
            "pathItem.websocket.limits.per_client",
            vec![(PathItem, websocket.clone())],
            "/websocket/limits/per_client",
            None,
        ),
        honoured(
            "pathItem.websocket.message_throttle",
            vec![(PathItem, websocket.clone())],
            "/websocket/message_throttle",
            None,
        ),
        honoured(
            "root.admin",
            vec![
                (Root, json!({ "admin": { "token": "t" } })),
                (PathItem, websocket.clone()),
            ],
            "/admin",
            None,
        ),
        honoured(
            "root.admin.token",
            vec![
                (Root, json!({ "admin": { "token": "t" } })),
                (PathItem, websocket),
            ],
            "/admin/token",
            Some(json!("u")),
        ),
        // Limits.
        honoured(
            "limits.body",
            vec![(Root, limits.clone())],
            "/limits/body",
            Some(json!("2KiB")),
        ),
        honoured(
            "limits.headers",
            vec![(Root, json!({ "defaults": limits.clone() }))],
            "/defaults/limits/headers",
            Some(json!("9KiB")),
        ),
        honoured(
            "limits.body_timeout",
            vec![(
                Root,
                json!({ "defaults": { "limits": { "body_timeout": "5s" } } }),
            )],
            "/defaults/limits/body_timeout",
            Some(json!("6s")),
        ),
        honoured(
            "limits.send_timeout",
            vec![(
                Root,
                json!({ "defaults": { "limits": { "send_timeout": "5s" } } }),
            )],
            "/defaults/limits/send_timeout",
            Some(json!("6s")),
        ),
        honoured(
            "limits.head_timeout",
            vec![(
                Root,
                json!({ "defaults": { "limits": { "head_timeout": "5s" } } }),
            )],
            "/defaults/limits/head_timeout",
            Some(json!("6s")),
        ),
        honoured(
            "limits.max_connections",
            vec![(Root, json!({ "limits": { "max_connections": 100 } }))],
            "/limits/max_connections",
            Some(json!(101)),
        ),
        honoured(
            "limits.drain_timeout",
            vec![(Root, json!({ "limits": { "drain_timeout": "5s" } }))],
            "/limits/drain_timeout",
            Some(json!("6s")),
        ),
        honoured(
            "limits.max_connections_per_client",
            vec![(
                Root,
                json!({ "limits": { "max_connections_per_client": 10 } }),
            )],
            "/limits/max_connections_per_client",
            Some(json!(11)),
        ),
        honoured(
            "limits.json_depth",
            vec![(Operation, json!({ "limits": { "json_depth": 10 } }))],
            "/limits/json_depth",
            Some(json!(11)),
        ),
        honoured(
            "limits.json_values",
            vec![(Operation, json!({ "limits": { "json_values": 10 } }))],
            "/limits/json_values",
            Some(json!(11)),
        ),
        honoured(
            "limits.validation_memory",
            vec![(
                Root,
                json!({ "defaults": { "limits": { "validation_memory": "1MiB" } } }),
            )],
            "/defaults/limits/validation_memory",
            Some(json!("2MiB")),
        ),
        honoured(
            "limits.undeclared_body",
            vec![(
                Operation,
                json!({ "limits": { "undeclared_body": "drop" } }),
            )],
            "/limits/undeclared_body",
            Some(json!("reject")),
        ),
        honoured(
            "limits.body",
            vec![(Operation, json!({ "limits": { "body": "1KiB" } }))],
            "/limits/body",
            Some(json!("2KiB")),
        ),
        honoured(
            "limits.headers",
            vec![(PathItem, json!({ "limits": { "headers": "1KiB" } }))],
            "/limits/headers",
            Some(json!("2KiB")),
        ),
        // Operation settings as wholes.
        honoured(
            "operationSettings.integration",
            vec![(Operation, mock.clone())],
            "/integration",
            None,
        ),
        honoured(
            "operationSettings.throttle",
            vec![(PathItem, throttle.clone())],
            "/throttle",
            None,
        ),
        honoured(
            "operationSettings.cache",
            vec![(Operation, json!({ "cache": { "ttl": "60s" } }))],
            "/cache",
            None,
        ),
        honoured(
            "operationSettings.timeout",
            vec![(Operation, json!({ "integration": http, "timeout": "3s" }))],
            "/timeout",
            None,
        ),
        honoured(
            "operationSettings.cors",
            vec![(Root, cors.clone())],
            "/cors",
            None,
        ),
        honoured(
            "operationSettings.limits",
            vec![(Root, json!({ "defaults": limits }))],
            "/defaults/limits",
            None,
        ),
        honoured(
            "operationSettings.plans",
            vec![(Operation, scheme_plans.clone()), (Root, plans.clone())],
            "/plans",
            None,
        ),
        honoured(
            "operationSettings.validate",
            vec![(Operation, json!({ "validate": { "requests": false } }))],
            "/validate",
            None,
        ),
        honoured(
            "operationSettings.validate.requests",
            vec![(PathItem, json!({ "validate": { "requests": false } }))],
            "/validate/requests",
            Some(json!(true)),
        ),
        honoured(
            "root.functions",
            vec![(Root, functions.clone())],
            "/functions",
            None,
        ),
        honoured(
            "localFunction.command",
            vec![(Root, functions.clone())],
            "/functions/f/command",
            Some(json!(["python3", "other.py"])),
        ),
        honoured(
            "localFunction.env",
            vec![(Root, functions.clone())],
            "/functions/f/env",
            None,
        ),
        honoured(
            "localFunction.handler",
            vec![(Root, functions.clone())],
            "/functions/f/handler",
            Some(json!("h.other")),
        ),
        honoured(
            "localFunction.workdir",
            vec![(Root, functions.clone())],
            "/functions/f/workdir",
            Some(json!("/srv")),
        ),
        honoured(
            "localFunction.concurrency",
            vec![(Root, functions.clone())],
            "/functions/f/concurrency",
            Some(json!(3)),
        ),
        honoured(
            "localFunction.memory_mb",
            vec![(Root, functions.clone())],
            "/functions/f/memory_mb",
            Some(json!(512)),
        ),
        honoured(
            "localFunction.region",
            vec![(Root, functions)],
            "/functions/f/region",
            Some(json!("us-east-1")),
        ),
        honoured(
            "operationSettings.validate.responses",
            vec![(Operation, json!({ "validate": { "responses": "enforce" } }))],
            "/validate/responses",
            Some(json!("log")),
        ),
        // Stages.
        honoured("root.stages", vec![(Root, stage.clone())], "/stages", None),
        honoured(
            "stage.description",
            vec![(Root, stage.clone())],
            "/stages/dev/description",
            Some(json!("e")),
        ),
        honoured(
            "stage.variables",
            vec![(Root, stage.clone())],
            "/stages/dev/variables",
            None,
        ),
        honoured(
            "stage.throttle",
            vec![(Root, stage.clone())],
            "/stages/dev/throttle",
            None,
        ),
        honoured(
            "stage.validate",
            vec![(Root, stage.clone())],
            "/stages/dev/validate",
            None,
        ),
        honoured(
            "stage.validate.responses",
            vec![(Root, stage)],
            "/stages/dev/validate/responses",
            Some(json!("log")),
        ),
        // Root settings.
        honoured(
            "root.defaults",
            vec![(Root, json!({ "defaults": { "throttle": { "rate": 3 } } }))],
            "/defaults",
            None,
        ),
        honoured(
            "root.usage_plans",
            vec![(Root, plans.clone()), (Scheme, jwt.clone())],
            "/usage_plans/p/throttle/rate",
            Some(json!(2)),
        ),
        honoured(
            "root.api_keys",
            vec![(Root, plans.clone()), (KeyScheme, scheme_plans.clone())],
            "/api_keys/source",
            Some(json!("file:other.txt")),
        ),
        honoured(
            "root.api_keys.source",
            vec![
                (Root, plans.clone()),
                (KeyScheme, scheme_plans.clone()),
                (
                    Root,
                    json!({ "state": { "backend": "redis", "url": "redis://127.0.0.1:6379" } }),
                ),
            ],
            "/api_keys/source",
            Some(json!("redis")),
        ),
        honoured("root.state", vec![(Root, state.clone())], "/state", None),
        honoured(
            "root.state.backend",
            vec![(Root, state.clone())],
            "/state/backend",
            Some(json!("memory")),
        ),
        honoured(
            "root.state.url",
            vec![(Root, state.clone())],
            "/state/url",
            Some(json!("redis://127.0.0.1:6380")),
        ),
        honoured(
            "root.state.prefix",
            vec![(Root, state.clone())],
            "/state/prefix",
            Some(json!("y:")),
        ),
        honoured(
            "root.state.on_state_error",
            vec![(Root, state.clone())],
            "/state/on_state_error",
            Some(json!("local")),
        ),
        honoured(
            "root.state.timeout",
            vec![(Root, state.clone())],
            "/state/timeout",
            Some(json!("2s")),
        ),
        honoured(
            "root.state.cache_size",
            vec![(Root, state)],
            "/state/cache_size",
            Some(json!("2MiB")),
        ),
        honoured(
            "root.gateway_responses",
            vec![(Root, responses.clone())],
            "/gateway_responses",
            None,
        ),
        honoured(
            "gatewayResponse.status",
            vec![(Root, responses.clone())],
            "/gateway_responses/THROTTLED/status",
            Some(json!(429)),
        ),
        honoured(
            "gatewayResponse.body",
            vec![(Root, responses.clone())],
            "/gateway_responses/THROTTLED/body",
            None,
        ),
        honoured(
            "gatewayResponse.headers",
            vec![(Root, responses)],
            "/gateway_responses/THROTTLED/headers",
            None,
        ),
        honoured(
            "root.trusted_proxies",
            vec![(
                Root,
                json!({ "trusted_proxies": ["10.0.0.0/8"], "defaults": { "throttle": { "rate": 1, "per": "ip" } } }),
            )],
            "/trusted_proxies",
            None,
        ),
        honoured(
            "root.escaped_slashes",
            vec![(Root, json!({ "escaped_slashes": "keep" }))],
            "/escaped_slashes",
            None,
        ),
        honoured("root.tls", vec![(Root, listener_tls.clone())], "/tls", None),
        honoured(
            "root.tls.certificates",
            vec![(Root, listener_tls.clone())],
            "/tls/certificates",
            Some(json!([{ "cert": "other.pem", "key": "other.key" }])),
        ),
        honoured(
            "root.tls.certificates.cert",
            vec![(Root, listener_tls.clone())],
            "/tls/certificates/0/cert",
            Some(json!("other.pem")),
        ),
        honoured(
            "root.tls.certificates.key",
            vec![(Root, listener_tls.clone())],
            "/tls/certificates/0/key",
            Some(json!("other.key")),
        ),
        honoured(
            "root.tls.client_ca",
            vec![(Root, listener_tls.clone())],
            "/tls/client_ca",
            Some(json!("other-clients.pem")),
        ),
        honoured(
            "root.tls.client_crl",
            vec![(Root, listener_tls.clone())],
            "/tls/client_crl",
            None,
        ),
        honoured(
            "root.tls.hsts",
            vec![(Root, listener_tls.clone())],
            "/tls/hsts",
            None,
        ),
        honoured(
            "root.tls.hsts.max_age",
            vec![(Root, listener_tls.clone())],
            "/tls/hsts/max_age",
            Some(json!("1h")),
        ),
        honoured(
            "root.tls.hsts.include_subdomains",
            vec![(Root, listener_tls.clone())],
            "/tls/hsts/include_subdomains",
            Some(json!(false)),
        ),
        honoured(
            "root.tls.hsts.preload",
            vec![(Root, listener_tls.clone())],
            "/tls/hsts/preload",
            Some(json!(false)),
        ),
        honoured(
            "root.tls.min_version",
            vec![(Root, listener_tls.clone())],
            "/tls/min_version",
            Some(json!("1.2")),
        ),
        honoured(
            "root.domains",
            vec![(Root, domains.clone())],
            "/domains",
            Some(json!([{ "name": "api.example.com" }])),
        ),
        honoured(
            "root.domains.name",
            vec![(Root, domains.clone())],
            "/domains/0/name",
            Some(json!("other.example.com")),
        ),
        honoured(
            "root.domains.base_path",
            vec![(Root, domains.clone())],
            "/domains/0/base_path",
            Some(json!("/v2")),
        ),
        honoured(
            "root.domains.client_ca",
            vec![(Root, domain_ca.clone())],
            "/domains/0/client_ca",
            Some(json!("other-clients.pem")),
        ),
        honoured(
            "root.domains.client_crl",
            vec![(Root, domain_ca.clone())],
            "/domains/0/client_crl",
            None,
        ),
        honoured(
            "root.tls.certificates.ocsp",
            vec![(Root, ocsp.clone())],
            "/tls/certificates/0/ocsp",
            None,
        ),
        honoured(
            "root.unknown_hosts",
            vec![(Root, domains.clone())],
            "/unknown_hosts",
            None,
        ),
        honoured(
            "root.stage_prefix",
            vec![(Root, json!({ "stage_prefix": true }))],
            "/stage_prefix",
            None,
        ),
        honoured(
            "root.http2",
            vec![(Root, json!({ "http2": true }))],
            "/http2",
            Some(json!(false)),
        ),
        // Security schemes.
        honoured(
            "securityScheme.issuer",
            vec![(Scheme, jwt.clone()), (Root, plans.clone())],
            "/issuer",
            Some(json!("https://j.example")),
        ),
        honoured(
            "securityScheme.audience",
            vec![(Scheme, jwt.clone()), (Root, plans.clone())],
            "/audience",
            Some(json!("b")),
        ),
        honoured(
            "securityScheme.secret",
            vec![(Scheme, jwt.clone()), (Root, plans.clone())],
            "/secret",
            Some(json!("${env.T}")),
        ),
        honoured(
            "securityScheme.algorithms",
            vec![(Scheme, jwt.clone()), (Root, plans.clone())],
            "/algorithms",
            Some(json!(["HS384"])),
        ),
        honoured(
            "securityScheme.leeway",
            vec![(Scheme, jwt.clone()), (Root, plans.clone())],
            "/leeway",
            Some(json!("6s")),
        ),
        honoured(
            "securityScheme.jwks_refresh",
            vec![(
                Scheme,
                json!({ "jwks_uri": "http://127.0.0.1:9/jwks", "jwks_refresh": "60s" }),
            )],
            "/jwks_refresh",
            Some(json!("61s")),
        ),
        honoured(
            "securityScheme.plan",
            vec![(Scheme, jwt.clone()), (Root, plans.clone())],
            "/plan",
            None,
        ),
        honoured(
            "securityScheme.jwks_uri",
            vec![(Scheme, json!({ "jwks_uri": "http://127.0.0.1:9/jwks" }))],
            "/jwks_uri",
            Some(json!("http://127.0.0.1:8/jwks")),
        ),
        honoured(
            "securityScheme.keys",
            vec![(
                Scheme,
                json!({ "keys": [{ "kty": "oct", "k": "c2VjcmV0", "alg": "HS256" }] }),
            )],
            "/keys",
            Some(json!([{ "kty": "oct", "k": "b3RoZXI", "alg": "HS256" }])),
        ),
        honoured(
            "securityScheme.plans",
            vec![(KeyScheme, scheme_plans), (Root, plans.clone())],
            "/plans",
            None,
        ),
        honoured(
            "securityScheme.authorizer",
            vec![(Scheme, authz.clone())],
            "/authorizer",
            None,
        ),
        honoured(
            "securityScheme.authorizer.type",
            vec![(Scheme, authz.clone())],
            "/authorizer/url",
            Some(json!("http://127.0.0.1:8/a")),
        ),
        honoured(
            "securityScheme.authorizer.url",
            vec![(Scheme, authz.clone())],
            "/authorizer/url",
            Some(json!("http://127.0.0.1:8/a")),
        ),
        honoured(
            "securityScheme.authorizer.identity",
            vec![(Scheme, authz.clone())],
            "/authorizer/identity",
            Some(json!(["header.x-token"])),
        ),
        honoured(
            "securityScheme.authorizer.calls_per_client",
            vec![(
                Scheme,
                json!({ "authorizer": { "type": "http", "url": "http://127.0.0.1:9/a", "calls_per_client": 5 } }),
            )],
            "/authorizer/calls_per_client",
            Some(json!(6)),
        ),
        honoured(
            "securityScheme.authorizer.caller",
            vec![
                (
                    Scheme,
                    json!({ "plan": "p", "authorizer": { "type": "http", "url": "http://127.0.0.1:9/a", "caller": "context.tenant" } }),
                ),
                (Root, plans.clone()),
            ],
            "/authorizer/caller",
            Some(json!("context.org")),
        ),
        honoured(
            "securityScheme.token_source",
            vec![(
                Scheme,
                json!({ "secret": "s", "token_source": "query.token" }),
            )],
            "/token_source",
            Some(json!("cookie.token")),
        ),
        honoured(
            "securityScheme.forward_credentials",
            vec![(KeyScheme, json!({ "forward_credentials": false }))],
            "/forward_credentials",
            None,
        ),
        honoured(
            "securityScheme.authorizer.ttl",
            vec![(Scheme, authz.clone())],
            "/authorizer/ttl",
            Some(json!("61s")),
        ),
        honoured(
            "securityScheme.authorizer.timeout",
            vec![(Scheme, authz)],
            "/authorizer/timeout",
            Some(json!("3s")),
        ),
        honoured(
            "securityScheme.authorizer.function",
            vec![(
                Scheme,
                json!({ "authorizer": { "type": "lambda", "function": "f", "payload_format": "1.0", "event": "token", "region": "eu-west-1", "endpoint": "http://127.0.0.1:9" } }),
            )],
            "/authorizer/function",
            Some(json!("g")),
        ),
        honoured(
            "securityScheme.authorizer.payload_format",
            vec![(
                Scheme,
                json!({ "authorizer": { "type": "lambda", "function": "f", "payload_format": "1.0" } }),
            )],
            "/authorizer/payload_format",
            Some(json!("2.0")),
        ),
        honoured(
            "securityScheme.authorizer.event",
            vec![(
                Scheme,
                json!({ "authorizer": { "type": "lambda", "function": "f", "payload_format": "1.0", "event": "token", "region": "eu-west-1", "endpoint": "http://127.0.0.1:9" } }),
            )],
            "/authorizer/event",
            Some(json!("request")),
        ),
        honoured(
            "securityScheme.authorizer.region",
            vec![(
                Scheme,
                json!({ "authorizer": { "type": "lambda", "function": "f", "payload_format": "1.0", "event": "token", "region": "eu-west-1", "endpoint": "http://127.0.0.1:9" } }),
            )],
            "/authorizer/region",
            Some(json!("us-east-2")),
        ),
        honoured(
            "securityScheme.authorizer.endpoint",
            vec![(
                Scheme,
                json!({ "authorizer": { "type": "lambda", "function": "f", "payload_format": "1.0", "event": "token", "region": "eu-west-1", "endpoint": "http://127.0.0.1:9" } }),
            )],
            "/authorizer/endpoint",
            Some(json!("http://127.0.0.1:8")),
        ),
        honoured(
            "securityScheme.authorizer.command",
            vec![(
                Scheme,
                json!({ "authorizer": { "type": "lambda", "command": ["./a"], "env": { "A": "1" }, "handler": "a.h", "workdir": "fn", "concurrency": 2, "memory_mb": 128 } }),
            )],
            "/authorizer/command",
            Some(json!(["./b"])),
        ),
        honoured(
            "securityScheme.authorizer.env",
            vec![(
                Scheme,
                json!({ "authorizer": { "type": "lambda", "command": ["./a"], "env": { "A": "1" }, "handler": "a.h", "workdir": "fn", "concurrency": 2, "memory_mb": 128 } }),
            )],
            "/authorizer/env",
            Some(json!({ "A": "2" })),
        ),
        honoured(
            "securityScheme.authorizer.handler",
            vec![(
                Scheme,
                json!({ "authorizer": { "type": "lambda", "command": ["./a"], "env": { "A": "1" }, "handler": "a.h", "workdir": "fn", "concurrency": 2, "memory_mb": 128 } }),
            )],
            "/authorizer/handler",
            Some(json!("a.other")),
        ),
        honoured(
            "securityScheme.authorizer.workdir",
            vec![(
                Scheme,
                json!({ "authorizer": { "type": "lambda", "command": ["./a"], "env": { "A": "1" }, "handler": "a.h", "workdir": "fn", "concurrency": 2, "memory_mb": 128 } }),
            )],
            "/authorizer/workdir",
            Some(json!("other")),
        ),
        honoured(
            "securityScheme.authorizer.concurrency",
            vec![(
                Scheme,
                json!({ "authorizer": { "type": "lambda", "command": ["./a"], "env": { "A": "1" }, "handler": "a.h", "workdir": "fn", "concurrency": 2, "memory_mb": 128 } }),
            )],
            "/authorizer/concurrency",
            Some(json!(3)),
        ),
        honoured(
            "securityScheme.authorizer.memory_mb",
            vec![(
                Scheme,
                json!({ "authorizer": { "type": "lambda", "command": ["./a"], "env": { "A": "1" }, "handler": "a.h", "workdir": "fn", "concurrency": 2, "memory_mb": 128 } }),
            )],
            "/authorizer/memory_mb",
            Some(json!(256)),
        ),
    ]
}

/// Every `definition.property` (nested inline objects as `definition.property.property`) of the
/// shipped schema's `$defs`.
fn schema_keys() -> BTreeSet<String> {
    fn walk(node: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        let Some(obj) = node.as_object() else { return };
        if let Some(Value::Object(props)) = obj.get("properties") {
            for (k, v) in props {
                let key = format!("{prefix}.{k}");
                out.insert(key.clone());
                walk(v, &key, out);
            }
        }
        // Inline objects under arrays and maps (`routes.$default.integration`) belong to the
        // property that holds them; conditionals (`if`) restate properties already listed.
        for k in ["items", "additionalProperties"] {
            if let Some(v) = obj.get(k) {
                walk(v, prefix, out);
            }
        }
    }
    let text = std::fs::read_to_string(
        crate::support::repo().join("codegen/schema/x-gateway.schema.json"),
    )
    .expect("schema");
    let schema: Value = serde_json::from_str(&text).expect("schema JSON");
    let mut out = BTreeSet::new();
    for (name, def) in schema["$defs"].as_object().expect("$defs") {
        walk(def, name, &mut out);
    }
    out
}

fn spec_with(blocks: &[(At, Value)]) -> Value {
    let mut spec = base();
    for (at, block) in blocks {
        let (parent, _) = at.pointer().rsplit_once('/').expect("pointer");
        let holder = spec
            .pointer_mut(parent)
            .expect("holder")
            .as_object_mut()
            .expect("object");
        match holder.get_mut("x-gateway") {
            Some(Value::Object(existing)) => {
                for (k, v) in block.as_object().expect("block") {
                    existing.insert(k.clone(), v.clone());
                }
            }
            _ => {
                holder.insert("x-gateway".into(), block.clone());
            }
        }
    }
    spec
}

fn generated(spec: &Value, what: &str) -> Result<String, String> {
    let checked = gwgen::check_text("keys.json", spec.to_string());
    let errors = crate::support::errors(&checked);
    if !errors.is_empty() {
        return Err(format!("{what}: the spec should check clean: {errors:#?}"));
    }
    Ok(gwgen::emit::module(&checked).expect("generated code parses"))
}

#[test]
fn every_schema_key_is_honoured_or_refused() {
    let rows = rows();
    let covered: BTreeSet<&str> = rows.iter().map(|r| r.key).collect();
    let missing: Vec<String> = schema_keys()
        .into_iter()
        .filter(|k| {
            // The document-level wrappers only say where the blocks stand.
            !k.starts_with("operationHolder.") && !covered.contains(k.as_str())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "schema keys with no row here: {missing:#?}"
    );
    let known = schema_keys();
    let mut failures = Vec::new();
    for row in &rows {
        assert!(
            known.contains(row.key),
            "row `{}` names no schema key",
            row.key
        );
        if let Err(e) = prove(row) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn prove(row: &Row) -> Result<(), String> {
    {
        let spec = spec_with(&row.blocks);
        let block = row.blocks[0].0.pointer();
        match &row.expect {
            Expect::Honoured(ptr, alt) => {
                let with = generated(&spec, row.key)?;
                let mut changed = spec.clone();
                let full = format!("{block}{ptr}");
                match alt {
                    Some(v) => {
                        *changed
                            .pointer_mut(&full)
                            .ok_or_else(|| format!("{}: no {full}", row.key))? = v.clone()
                    }
                    None => {
                        let (parent, last) = full.rsplit_once('/').expect("pointer");
                        let removed = changed
                            .pointer_mut(parent)
                            .and_then(Value::as_object_mut)
                            .and_then(|o| o.remove(&last.replace("~1", "/").replace("~0", "~")));
                        if removed.is_none() {
                            return Err(format!("{}: nothing at {full}", row.key));
                        }
                    }
                }
                let without = generated(&changed, row.key)?;
                if with == without {
                    return Err(format!("{}: changing {full} does not change the generated gateway, so the key would be ignored", row.key));
                }
            }
        }
    }
    Ok(())
}
