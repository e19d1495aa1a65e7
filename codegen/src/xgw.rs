//! The `x-gateway` extension: its JSON Schema (shipped in `schema/`) and the typed settings
//! that a validated block deserialises into.
//!
//! Validation is the JSON Schema's job, so the schema is the one definition of what is allowed
//! (editors use the same file). The structs below only give the validated data a Rust shape.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer};

use crate::diag::{did_you_mean, Code, Diagnostics};
use crate::load::node::{push_segment, split_pointer, Node};

/// The JSON Schema of the extension, as shipped in `codegen/schema/x-gateway.schema.json`.
pub const SCHEMA: &str = include_str!("../schema/x-gateway.schema.json");

/// Where an `x-gateway` block stands, which decides what it may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// The document root.
    Root,
    /// A path item.
    PathItem,
    /// An operation.
    Operation,
    /// A security scheme.
    SecurityScheme,
}

impl Level {
    fn def(self) -> &'static str {
        match self {
            Level::Root => "root",
            Level::PathItem => "pathItem",
            Level::Operation => "operation",
            Level::SecurityScheme => "securityScheme",
        }
    }
}

/// The compiled validator for a level.
pub(crate) fn validator(level: Level) -> &'static jsonschema::Validator {
    static VALIDATORS: OnceLock<[jsonschema::Validator; 4]> = OnceLock::new();
    let all = VALIDATORS.get_or_init(|| {
        let build = |l: Level| {
            let mut schema: serde_json::Value =
                serde_json::from_str(SCHEMA).expect("the shipped schema is JSON");
            if let Some(obj) = schema.as_object_mut() {
                obj.retain(|k, _| k == "$schema" || k == "$id" || k == "$defs");
                obj.insert("$ref".into(), format!("#/$defs/{}", l.def()).into());
            }
            jsonschema::options()
                .should_validate_formats(false)
                .build(&schema)
                .expect("the shipped schema compiles")
        };
        [
            build(Level::Root),
            build(Level::PathItem),
            build(Level::Operation),
            build(Level::SecurityScheme),
        ]
    });
    &all[match level {
        Level::Root => 0,
        Level::PathItem => 1,
        Level::Operation => 2,
        Level::SecurityScheme => 3,
    }]
}

/// Validates one `x-gateway` block; returns its JSON and whether it was valid.
pub(crate) fn validate_block(
    block: &Node,
    level: Level,
    file: &Path,
    ptr: &str,
    diags: &mut Diagnostics,
) -> (serde_json::Value, bool) {
    let json = block.to_json();
    let mut ok = true;
    for err in validator(level).iter_errors(&json) {
        ok = false;
        let inst = err.instance_path().to_string();
        let segs = split_pointer(&inst);
        let at = block.pointer(&segs).unwrap_or(block);
        let mut at_ptr = ptr.to_string();
        at_ptr.push_str(&inst);
        use jsonschema::error::ValidationErrorKind as K;
        match err.kind() {
            K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
                for key in unexpected {
                    let pos = at.entry(key).map(|e| e.key_pos).unwrap_or(at.pos);
                    let mut kp = at_ptr.clone();
                    push_segment(&mut kp, key);
                    let hint = did_you_mean(key, known_keys().iter().map(String::as_str));
                    let level_name = match level {
                        Level::Root => "the root",
                        Level::PathItem => "a path item",
                        Level::Operation => "an operation",
                        Level::SecurityScheme => "a security scheme",
                    };
                    let msg = if inst.is_empty() {
                        format!("`{key}` is not an `x-gateway` key on {level_name}")
                    } else {
                        format!(
                            "`{key}` is not allowed in `x-gateway` at `{}`",
                            inst.trim_start_matches('/')
                        )
                    };
                    diags.report(Code::XGatewayUnknownKey, file, pos, &kp, msg, hint);
                }
            }
            kind => {
                let what = if inst.is_empty() {
                    "x-gateway".to_string()
                } else {
                    inst.trim_start_matches('/').to_string()
                };
                let msg = match kind {
                    K::Type { .. } => format!(
                        "expected {}, found {}",
                        err.to_string()
                            .rsplit("is not of type ")
                            .next()
                            .unwrap_or("another type")
                            .replace('"', ""),
                        at.kind()
                    ),
                    K::AnyOf { .. } | K::OneOfNotValid { .. } => {
                        format!("{} is not an accepted form here", compact(err.instance()))
                    }
                    _ => {
                        let full = err.to_string();
                        let inst_text = err.instance().to_string();
                        match full.strip_prefix(&inst_text) {
                            Some(rest) => format!("{}{rest}", compact(err.instance())),
                            None => short(&full),
                        }
                    }
                };
                let hint = schema_hint(
                    &err.absolute_keyword_location()
                        .map(|u| u.to_string())
                        .unwrap_or_else(|| err.schema_path().to_string()),
                );
                diags.report(
                    Code::XGatewayInvalid,
                    file,
                    at.pos,
                    &at_ptr,
                    format!("`{what}`: {msg}"),
                    hint,
                );
            }
        }
    }
    (json, ok)
}

/// A value shown in a message: short values whole, long ones cut.
fn compact(v: &serde_json::Value) -> String {
    short(&v.to_string())
}

/// What the schema says of the failing definition, as a hint (durations, sizes).
fn schema_hint(schema_path: &str) -> Option<String> {
    if schema_path.contains("duration") {
        Some("durations are written `250ms`, `3s`, `5m`, `1h`, or a whole number of seconds".into())
    } else if schema_path.contains("size") {
        Some("sizes are written `512`, `64KiB`, `10MiB`, `1GB`".into())
    } else {
        None
    }
}

fn short(msg: &str) -> String {
    let m: String = msg.chars().take(300).collect();
    if m.len() < msg.len() {
        format!("{m}…")
    } else {
        m
    }
}

/// Every property name the schema defines, for "did you mean" hints.
pub(crate) fn known_keys() -> &'static Vec<String> {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap_or_default();
        let mut keys = Vec::new();
        let mut stack = vec![&schema];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::Object(props)) = m.get("properties") {
                        keys.extend(props.keys().cloned());
                    }
                    stack.extend(m.values());
                }
                serde_json::Value::Array(a) => stack.extend(a.iter()),
                _ => {}
            }
        }
        keys.sort();
        keys.dedup();
        keys
    })
}

/// A duration in milliseconds (`250ms`, `3s`, `5m`, `1h`, or whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(pub u64);

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        parse_duration(&v)
            .map(Millis)
            .ok_or_else(|| serde::de::Error::custom("invalid duration"))
    }
}

fn parse_duration(v: &serde_json::Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return n.checked_mul(1000);
    }
    let s = v.as_str()?;
    let (num, mult) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000)
    } else {
        return None;
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// A size in bytes (`10MiB`, `64KiB`, `1000`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let parsed = v.as_u64().or_else(|| {
            let s = v.as_str()?;
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let n: u64 = s[..split].parse().ok()?;
            let mult = match &s[split..] {
                "" | "B" => 1,
                "KiB" => 1 << 10,
                "MiB" => 1 << 20,
                "GiB" => 1 << 30,
                "kB" | "KB" => 1000,
                "MB" => 1_000_000,
                "GB" => 1_000_000_000,
                _ => return None,
            };
            n.checked_mul(mult)
        });
        parsed
            .map(Bytes)
            .ok_or_else(|| serde::de::Error::custom("invalid size"))
    }
}

/// A token bucket.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Throttle {
    /// Tokens per second.
    pub rate: f64,
    /// Bucket size; defaults to `rate` rounded up.
    pub burst: Option<u64>,
    /// One bucket for the route (the default) or one per client address.
    #[serde(default)]
    pub per: ThrottlePer,
}

/// Whose requests share a route or stage bucket (`throttle.per`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThrottlePer {
    /// One bucket for every caller.
    #[default]
    Route,
    /// One bucket per client address.
    Ip,
    /// One bucket per verified client certificate.
    #[serde(rename = "client_cert")]
    ClientCert,
}

/// The calendar period a quota counts over (`quota.period`, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    /// A UTC day.
    Day,
    /// An ISO week, Monday to Sunday.
    Week,
    /// A calendar month.
    Month,
}

impl Throttle {
    /// The bucket size: `burst`, else `rate` rounded up; at least 1.
    pub fn burst_or_default(&self) -> u64 {
        self.burst
            .unwrap_or_else(|| self.rate.ceil().min(u32::MAX as f64) as u64)
            .clamp(1, u64::from(u32::MAX))
    }
}

/// A quota per API key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Quota {
    /// Requests per period.
    pub limit: u64,
    /// The period it counts over.
    pub period: QuotaPeriod,
}

/// One upstream of a load-balanced HTTP integration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Target {
    /// Base URL (interpolated).
    pub url: String,
    /// Relative weight.
    pub weight: Option<u32>,
}

/// HTTPS settings of an integration (`tls`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UpstreamTls {
    /// CA certificates to trust (PEM file).
    pub ca: Option<String>,
    /// Client certificate chain (PEM file).
    pub cert: Option<String>,
    /// Its key (PEM file).
    pub key: Option<String>,
}

/// The HTTP version an `http` integration speaks to its upstreams (`protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 (the default).
    Http1,
    /// HTTP/2: h2 by ALPN over TLS, h2c with prior knowledge over TCP.
    Http2,
}

/// Active health checks of an integration's targets (`health_check`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HealthCheck {
    /// The path to `GET`.
    pub path: String,
    /// Between rounds.
    pub interval: Option<Millis>,
    /// For one check.
    pub timeout: Option<Millis>,
    /// Failures in a row that take a target out.
    pub unhealthy_after: Option<u32>,
    /// Passes in a row that bring it back.
    pub healthy_after: Option<u32>,
}

/// The kind of an integration (`integration.type`). Adding one makes the compiler list every
/// place that must handle it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IntegrationKind {
    /// Proxy to an HTTP upstream.
    Http,
    /// Answer from the spec.
    Mock,
    /// AWS Lambda (refused by `gwgen check` until built).
    Lambda,
}

impl IntegrationKind {
    /// The name written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationKind::Http => "http",
            IntegrationKind::Mock => "mock",
            IntegrationKind::Lambda => "lambda",
        }
    }
}

/// How an operation is served.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Integration {
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: IntegrationKind,
    /// Upstream URL for `http` (interpolated; `{param}` placeholders).
    pub url: Option<String>,
    /// Several upstreams for `http`.
    pub targets: Option<Vec<Target>>,
    /// Upstream timeout.
    pub timeout: Option<Millis>,
    /// Retries of idempotent requests on another target.
    pub retries: Option<u32>,
    /// How a target is chosen.
    pub balance: Option<String>,
    /// Most requests in flight per target.
    pub max_requests: Option<u32>,
    /// Active health checks.
    pub health_check: Option<HealthCheck>,
    /// HTTPS to the upstreams: CA, client certificate and key (PEM file paths).
    pub tls: Option<UpstreamTls>,
    /// The HTTP version spoken to the upstreams.
    pub protocol: Option<Protocol>,
    /// Mock status.
    pub status: Option<u16>,
    /// Mock status from the request: a template (see [`crate::transform`]).
    pub status_from: Option<String>,
    /// Mock body.
    pub body: Option<serde_json::Value>,
    /// Mock content type.
    pub content_type: Option<String>,
    /// Mock: the name of the response's `examples` entry to answer with.
    pub example: Option<String>,
    /// For `lambda`: the function.
    #[serde(flatten)]
    pub lambda: LambdaFunction,
}

/// A Lambda function: on AWS (`function`, `region`, `endpoint`) or run locally (`command` and
/// the keys after it). Shared by `lambda` integrations and Lambda authorizers.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct LambdaFunction {
    /// Function name or ARN.
    pub function: Option<String>,
    /// Payload format (`1.0`, `2.0`).
    pub payload_format: Option<String>,
    /// Endpoint override.
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Local mode: the program and its arguments.
    pub command: Option<Vec<String>>,
    /// Local mode: environment of the processes.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Local mode: `_HANDLER`.
    pub handler: Option<String>,
    /// Local mode: working directory.
    pub workdir: Option<String>,
    /// Local mode: most processes.
    pub concurrency: Option<u32>,
    /// Local mode: memory limit.
    pub memory_mb: Option<u32>,
}

/// Response caching.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Cache {
    /// Time to live.
    pub ttl: Millis,
    /// Key parts (`path.x`, `query.y`, `header.z`, `claims.sub`).
    #[serde(default)]
    pub key: Vec<String>,
    /// Share entries across callers on authenticated routes.
    #[serde(default)]
    pub shared: bool,
    /// Scopes or plans allowed to refresh entries.
    #[serde(default)]
    pub invalidate: Vec<String>,
    /// Most entries the route keeps in memory.
    pub max_entries: Option<u64>,
    /// What query parameters the operation does not declare get.
    #[serde(default)]
    pub undeclared_query: UndeclaredQuery,
}

/// `cache.undeclared_query`: what query parameters the operation does not declare get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UndeclaredQuery {
    /// Part of the key.
    #[default]
    Key,
    /// Removed before the upstream.
    Strip,
}

/// CORS policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Cors {
    /// Exact origins, or `*`.
    pub allow_origins: Vec<String>,
    /// Allowed methods (default: the path's).
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// Allowed request headers.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Exposed response headers.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// Whether credentials are allowed.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Preflight cache time.
    pub max_age: Option<Millis>,
}

/// `compression`: answers compressed as clients accept, compressed request bodies inflated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Compression {
    /// Answers.
    pub responses: Option<ResponseCompression>,
    /// Request bodies.
    pub requests: Option<RequestDecompression>,
}

/// `compression.responses`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ResponseCompression {
    /// Codings, in the gateway's order of preference.
    #[serde(default = "default_encodings")]
    pub encodings: Vec<Encoding>,
    /// Smaller answers (by `Content-Length`) stay as they are.
    pub min_size: Option<Bytes>,
    /// Media ranges compressed.
    #[serde(default = "default_compressed_types")]
    pub types: Vec<String>,
}

/// `compression.requests`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestDecompression {
    /// Codings accepted.
    #[serde(default = "default_encodings")]
    pub encodings: Vec<Encoding>,
    /// The most a body may inflate to (default: the operation's `limits.body`).
    pub max_size: Option<Bytes>,
}

/// A content coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `br`.
    Br,
    /// `zstd`.
    Zstd,
    /// `gzip`.
    Gzip,
    /// `deflate`.
    Deflate,
}

fn default_encodings() -> Vec<Encoding> {
    vec![Encoding::Br, Encoding::Zstd, Encoding::Gzip]
}

fn default_compressed_types() -> Vec<String> {
    [
        "application/json",
        "application/problem+json",
        "application/xml",
        "application/javascript",
        "image/svg+xml",
        "text/*",
    ]
    .map(String::from)
    .to_vec()
}

/// Request limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Limits {
    /// Body size.
    pub body: Option<Bytes>,
    /// Header size.
    pub headers: Option<Bytes>,
    /// JSON nesting.
    pub json_depth: Option<u32>,
    /// How long a request head, or the next one on an idle connection, may take (gateway-wide).
    pub head_timeout: Option<Millis>,
    /// Open client connections at most (gateway-wide).
    pub max_connections: Option<u64>,
    /// How long SIGTERM waits for requests in flight (gateway-wide).
    pub drain_timeout: Option<Millis>,
    /// Open connections at most from one client address (gateway-wide).
    pub max_connections_per_client: Option<u64>,
    /// Bytes of request bodies held for validation at once (gateway-wide).
    pub validation_memory: Option<Bytes>,
    /// Values a JSON body may hold.
    pub json_values: Option<u32>,
    /// How long a client may send nothing of a request body (gateway-wide).
    pub body_timeout: Option<Millis>,
    /// How long a client may take nothing of an answer (gateway-wide).
    pub send_timeout: Option<Millis>,
    /// What a body sent to an operation without `requestBody` gets.
    pub undeclared_body: Option<UndeclaredBody>,
}

/// `limits.undeclared_body`: what a body sent to an operation without `requestBody` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UndeclaredBody {
    /// 400.
    Reject,
    /// Removed: the upstream gets no body.
    Drop,
}

/// Settings that apply to operations: at the root, in `defaults`, on path items and operations.
/// The nearer level wins, key by key.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct OperationSettings {
    /// How the operation is served.
    pub integration: Option<Integration>,
    /// Route-level throttle.
    pub throttle: Option<Throttle>,
    /// Response cache.
    pub cache: Option<Cache>,
    /// Overall timeout.
    pub timeout: Option<Millis>,
    /// CORS.
    pub cors: Option<Cors>,
    /// Request and response transforms (typed in [`crate::transform`]).
    pub transform: Option<serde_json::Value>,
    /// Compressed answers and request bodies.
    pub compression: Option<Compression>,
    /// Request limits.
    pub limits: Option<Limits>,
    /// Only keys of these usage plans may call.
    pub plans: Option<Vec<String>>,
    /// Validation switches.
    pub validate: Option<Validate>,
}

/// Validation switches (`validate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Validate {
    /// Which parts of requests are validated (default: all).
    pub requests: Option<RequestValidation>,
    /// What to do with answers that break the spec (default: nothing).
    pub responses: Option<ResponseValidation>,
}

/// Request validation (`validate.requests`): `true`, `false`, `body` or `parameters`, as API
/// Gateway's request validators choose (`validateRequestBody`, `validateRequestParameters`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestValidation {
    /// Parameters and body.
    All,
    /// Nothing.
    Off,
    /// The body only.
    Body,
    /// The parameters only.
    Parameters,
}

impl RequestValidation {
    /// Whether parameters are checked.
    pub fn parameters(self) -> bool {
        matches!(self, RequestValidation::All | RequestValidation::Parameters)
    }

    /// Whether the body is checked.
    pub fn body(self) -> bool {
        matches!(self, RequestValidation::All | RequestValidation::Body)
    }
}

impl<'de> Deserialize<'de> for RequestValidation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(RequestValidation::All),
            Raw::Bool(false) => Ok(RequestValidation::Off),
            Raw::Text(t) if t == "body" => Ok(RequestValidation::Body),
            Raw::Text(t) if t == "parameters" => Ok(RequestValidation::Parameters),
            Raw::Text(t) => Err(serde::de::Error::custom(format!(
                "`{t}` is not one of true, false, body, parameters"
            ))),
        }
    }
}

/// Response validation (`validate.responses`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponseValidation {
    /// Not checked.
    Off,
    /// Checked; a mismatch is logged and the answer passes.
    Log,
    /// Checked; a mismatch is logged and replaced by a 502.
    Enforce,
}

impl ResponseValidation {
    /// The name written in specs.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseValidation::Off => "off",
            ResponseValidation::Log => "log",
            ResponseValidation::Enforce => "enforce",
        }
    }
}

impl OperationSettings {
    /// `self` overridden, key by key, by the keys `nearer` sets.
    pub fn merged_with(&self, nearer: &OperationSettings) -> OperationSettings {
        macro_rules! pick {
            ($($f:ident),*) => { OperationSettings { $( $f: nearer.$f.clone().or_else(|| self.$f.clone()), )* } };
        }
        pick!(
            integration,
            throttle,
            cache,
            timeout,
            cors,
            transform,
            compression,
            limits,
            plans,
            validate
        )
    }
}

/// A deployment stage.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct StageSettings {
    /// What it is for.
    pub description: Option<String>,
    /// Stage variables (values may use `${env.NAME}`).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Stage-wide throttle.
    pub throttle: Option<Throttle>,
    /// Validation switches (`responses` only).
    pub validate: Option<Validate>,
}

/// A usage plan.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct UsagePlan {
    /// What it is for.
    pub description: Option<String>,
    /// Per-key throttle.
    pub throttle: Option<Throttle>,
    /// Per-key quota.
    pub quota: Option<Quota>,
}

/// Where shared state lives (`state.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// In the gateway's memory: one instance.
    Memory,
    /// In Redis, shared by every instance.
    Redis,
}

/// What to do when Redis fails (`state.on_state_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStateError {
    /// Go on under per-instance limits.
    #[default]
    Local,
    /// Answer 503.
    Deny,
}

/// Shared state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct State {
    /// Where it lives.
    pub backend: StateBackend,
    /// Redis URL.
    pub url: Option<String>,
    /// Key prefix.
    pub prefix: Option<String>,
    /// What to do when Redis fails.
    #[serde(default)]
    pub on_state_error: OnStateError,
    /// Deadline of one Redis call.
    pub timeout: Option<Millis>,
    /// Bytes the in-memory response cache may hold.
    pub cache_size: Option<Bytes>,
}

/// Root-only settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct RootSettings {
    /// Stages by name.
    #[serde(default)]
    pub stages: BTreeMap<String, StageSettings>,
    /// Defaults for every operation.
    #[serde(default)]
    pub defaults: OperationSettings,
    /// Media types sent to Lambda functions base64-encoded (payload 1.0).
    #[serde(default)]
    pub binary_media_types: Vec<String>,
    /// Lambda functions run on this machine, by name: `lambda` integrations and authorizers
    /// that name one (or its ARN) run it in local mode with these settings.
    #[serde(default)]
    pub functions: BTreeMap<String, LambdaFunction>,
    /// Usage plans by name.
    #[serde(default)]
    pub usage_plans: BTreeMap<String, UsagePlan>,
    /// Where API keys come from.
    pub api_keys: Option<ApiKeys>,
    /// Shared state backend.
    pub state: Option<State>,
    /// Custom error responses, by AWS gateway-response type.
    #[serde(default)]
    pub gateway_responses: BTreeMap<String, GatewayResponse>,
    /// Proxies whose `X-Forwarded-For` is trusted.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// What a path segment holding `%2F` or `%5C` gets.
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
    /// The listener speaks HTTP/2 as well (h2c beside HTTP/1.1; with `tls`, by ALPN). Unset:
    /// on with `tls`, off without.
    pub http2: Option<bool>,
    /// TLS on the listener.
    pub tls: Option<ListenerTls>,
    /// Host names and base paths the API is served at.
    #[serde(default)]
    pub domains: Vec<Domain>,
    /// What a host not in `domains` gets.
    pub unknown_hosts: Option<UnknownHosts>,
    /// Paths start with `/{stage}`.
    #[serde(default)]
    pub stage_prefix: bool,
    /// The admin listener's settings.
    pub admin: Option<Admin>,
}

/// The admin listener (`admin`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Admin {
    /// What the `@connections` management API asks for (`Authorization: Bearer TOKEN`).
    pub token: Option<String>,
}

/// Settings only a path item has.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct PathItemSettings {
    /// A WebSocket API at this path.
    pub websocket: Option<WebSocket>,
}

/// A WebSocket API (`websocket` on a path item).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WebSocket {
    /// `$request.body.NAME`: where a message's route key is.
    pub route_selection: Option<String>,
    /// Routes by key (`$connect`, `$disconnect`, `$default`, named ones).
    pub routes: BTreeMap<String, WsRoute>,
    /// Its limits.
    #[serde(default)]
    pub limits: WsLimits,
    /// A bucket of messages per connection.
    pub message_throttle: Option<Throttle>,
}

impl WebSocket {
    /// `route_selection` as the member names it goes through (`$request.body.a.b` → `a`,
    /// `b`; `${request.body.a}` as well); `None` when it is not of that form.
    pub fn selection(&self) -> Option<Vec<&str>> {
        let Some(expr) = self.route_selection.as_deref() else {
            return Some(Vec::new());
        };
        let inner = expr
            .strip_prefix("${")
            .and_then(|e| e.strip_suffix('}'))
            .or_else(|| expr.strip_prefix('$'))?;
        let names: Vec<&str> = inner.strip_prefix("request.body.")?.split('.').collect();
        names
            .iter()
            .all(|n| !n.is_empty() && !n.contains(['$', '{', '}']))
            .then_some(names)
    }
}

/// One route of a WebSocket API.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WsRoute {
    /// How its messages are served.
    pub integration: Integration,
    /// The integration's answer goes back to the client.
    #[serde(default)]
    pub respond: bool,
    /// What its messages must be.
    pub schema: Option<serde_json::Value>,
    /// A bucket of its messages.
    pub throttle: Option<Throttle>,
}

/// A WebSocket API's limits (`websocket.limits`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
pub struct WsLimits {
    /// The largest message (128 KiB).
    pub message: Option<Bytes>,
    /// The largest frame (32 KiB).
    pub frame: Option<Bytes>,
    /// Closed after this long without a frame from the client (10 minutes).
    pub idle_timeout: Option<Millis>,
    /// Closed after this long in all (2 hours).
    pub max_duration: Option<Millis>,
    /// Open connections at most per client address.
    pub per_client: Option<u32>,
}

/// A host name the API is served at, and its base path (`domains`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Domain {
    /// `api.example.com` or `*.example.com`.
    pub name: String,
    /// The path prefix taken off before routing (`/` for none).
    pub base_path: Option<String>,
    /// The CA client certificates of connections naming this host are verified against.
    pub client_ca: Option<String>,
    /// Revocation lists for `client_ca`.
    pub client_crl: Option<String>,
}

/// `unknown_hosts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownHosts {
    /// 421.
    Reject,
    /// Served as if no domains were listed.
    Serve,
}

impl RootSettings {
    /// Whether the listener speaks HTTP/2.
    pub fn speaks_http2(&self) -> bool {
        self.http2.unwrap_or(self.tls.is_some())
    }
}

/// TLS on the listener (`tls` at the root).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ListenerTls {
    /// Certificate chains and keys (PEM files); SNI picks among them, the first by default.
    pub certificates: Vec<CertificateFiles>,
    /// The CA client certificates are verified against (PEM file).
    pub client_ca: Option<String>,
    /// Revoked client certificates (PEM CRL file).
    pub client_crl: Option<String>,
    /// `"1.2"` or `"1.3"`.
    pub min_version: Option<String>,
    /// `Strict-Transport-Security` on every answer.
    pub hsts: Option<Hsts>,
}

/// `tls.hsts`: the `Strict-Transport-Security` header (RFC 6797).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Hsts {
    /// `max-age`.
    pub max_age: Millis,
    /// `includeSubDomains`.
    #[serde(default)]
    pub include_subdomains: bool,
    /// `preload`.
    #[serde(default)]
    pub preload: bool,
}

impl Hsts {
    /// The header's value.
    pub fn value(&self) -> String {
        let mut v = format!("max-age={}", self.max_age.0 / 1000);
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }
}

/// One certificate chain and its key (PEM files).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CertificateFiles {
    /// The chain, leaf first.
    pub cert: String,
    /// Its private key.
    pub key: String,
    /// An OCSP response to staple (DER).
    pub ocsp: Option<String>,
}

/// `escaped_slashes`: what a path segment holding an encoded `/` or `\\` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EscapedSlashes {
    /// 400 (Envoy's `REJECT_REQUEST`).
    #[default]
    Reject,
    /// Kept inside the segment, re-encoded when forwarded.
    Keep,
}

/// Where API keys come from (`api_keys`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiKeys {
    /// The key store.
    pub source: KeySource,
}

/// An API key store: `file:PATH` or `redis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A key file (the path may interpolate).
    File(String),
    /// Redis, at `state.url`.
    Redis,
}

impl<'de> Deserialize<'de> for KeySource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.strip_prefix("file:") {
            Some(path) => Ok(KeySource::File(path.to_string())),
            None if s == "redis" => Ok(KeySource::Redis),
            None => Err(serde::de::Error::custom("expected `file:PATH` or `redis`")),
        }
    }
}

/// One entry of `gateway_responses`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct GatewayResponse {
    /// The status to answer with (default: the gateway's own).
    pub status: Option<u16>,
    /// The JSON body (default: the problem document).
    pub body: Option<serde_json::Value>,
    /// Headers to add.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The kind of a custom authorizer (`authorizer.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizerKind {
    /// POST the event to a URL.
    Http,
    /// Invoke a Lambda function (refused by `gwgen check` until built).
    Lambda,
}

/// A custom authorizer (`authorizer`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Authorizer {
    /// Its kind.
    #[serde(rename = "type")]
    pub kind: AuthorizerKind,
    /// For `http`: where to POST.
    pub url: Option<String>,
    /// For `lambda`: the function.
    #[serde(flatten)]
    pub lambda: LambdaFunction,
    /// For `lambda` with payload format 1.0: `token` (TOKEN authorizers) or `request`.
    pub event: Option<String>,
    /// Where the caller's identity is read (`header.X`, `query.X`, `cookie.X`, `context.X`).
    #[serde(default)]
    pub identity: Vec<String>,
    /// How long a verdict is remembered per identity.
    pub ttl: Option<Millis>,
    /// Deadline of one call.
    pub timeout: Option<Millis>,
    /// Calls per second on behalf of one client address (burst: twice that).
    pub calls_per_client: Option<f64>,
    /// What names the caller for the scheme's `plan`: `principalId` (the default) or
    /// `context.NAME`, a member of the authorizer's `context`.
    pub caller: Option<String>,
}

/// Settings of a security scheme.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct SchemeSettings {
    /// Expected `iss`.
    pub issuer: Option<String>,
    /// Accepted `aud` values.
    pub audience: Option<serde_json::Value>,
    /// JWKS URL.
    pub jwks_uri: Option<String>,
    /// Inline JWKs.
    pub keys: Option<Vec<serde_json::Value>>,
    /// HMAC secret.
    pub secret: Option<String>,
    /// Allowed algorithms.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Clock leeway.
    pub leeway: Option<Millis>,
    /// How often a fetched JWKS is fetched again.
    pub jwks_refresh: Option<Millis>,
    /// Usage plans whose keys this scheme accepts.
    pub plans: Option<Vec<String>>,
    /// A custom authorizer.
    pub authorizer: Option<Authorizer>,
    /// The usage plan that verified callers of a JWT or authorizer scheme belong to.
    pub plan: Option<String>,
    /// Where a JWT scheme reads its token (`query.NAME`, …) instead of `Authorization`.
    pub token_source: Option<String>,
    /// Whether the upstream gets the credential this scheme verified (default: yes, but for
    /// API keys sent in the query, which are removed from the upstream URL).
    pub forward_credentials: Option<bool>,
}

/// Finds `${…}` interpolations in a string: `Ok((namespace, name))` or `Err(text)` for malformed ones.
pub fn interpolations(s: &str) -> Vec<Result<(&str, &str), &str>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push(Err(&rest[start..]));
            break;
        };
        let inner = &after[..end];
        match inner.split_once('.') {
            Some((ns @ ("stageVariables" | "env"), name))
                if !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                out.push(Ok((ns, name)))
            }
            _ => out.push(Err(&rest[start..start + 3 + end])),
        }
        rest = &after[end + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_compiles_for_every_level() {
        for l in [
            Level::Root,
            Level::PathItem,
            Level::Operation,
            Level::SecurityScheme,
        ] {
            let _ = validator(l);
        }
        assert!(known_keys().iter().any(|k| k == "throttle"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration(&"29s".into()), Some(29_000));
        assert_eq!(parse_duration(&"250ms".into()), Some(250));
        assert_eq!(parse_duration(&serde_json::json!(2)), Some(2000));
        assert_eq!(parse_duration(&"2d".into()), None);
    }

    #[test]
    fn finds_interpolations() {
        let found = interpolations("${stageVariables.orders}/x/${env.A_B}/${oops}");
        assert_eq!(
            found,
            vec![
                Ok(("stageVariables", "orders")),
                Ok(("env", "A_B")),
                Err("${oops}")
            ]
        );
    }
}
