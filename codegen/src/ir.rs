//! The intermediate representation: what the gateway is, as plain data, built before any code
//! is emitted. Every item keeps the spec's wire names beside the Rust names made for it, and a
//! [`Location`] to report against.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::load::node::Pos;
use crate::xgw::{OperationSettings, RootSettings, SchemeSettings, StageSettings};
use crate::Version;

/// Where an IR item came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// File as shown in diagnostics.
    pub file: PathBuf,
    /// JSON pointer in that file.
    pub pointer: String,
    /// Position.
    pub pos: Pos,
}

/// The whole gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The spec's OpenAPI version.
    pub version: Version,
    /// `info.title`.
    pub title: String,
    /// `info.version`.
    pub api_version: String,
    /// Stages, in declaration order; one implicit `default` stage when none is declared.
    pub stages: Vec<Stage>,
    /// Every operation.
    pub routes: Vec<Route>,
    /// Security schemes by name.
    pub security_schemes: BTreeMap<String, SecurityScheme>,
    /// Root-only settings (`stages`, `usage_plans`, `state`, …).
    pub root: RootSettings,
    /// Root-level operation settings merged with `defaults`.
    pub defaults: OperationSettings,
    /// Compiled request and response validation.
    pub validation: crate::validation::Validation,
}

/// A deployment stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Its name.
    pub name: String,
    /// Its settings.
    pub settings: StageSettings,
}

/// The HTTP method of an operation (the keys of an OpenAPI path item).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `get`.
    Get,
    /// `put`.
    Put,
    /// `post`.
    Post,
    /// `delete`.
    Delete,
    /// `options`.
    Options,
    /// `head`.
    Head,
    /// `patch`.
    Patch,
    /// `trace`.
    Trace,
}

impl Method {
    /// Every method, in the order OpenAPI lists a path item's operations.
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Put,
        Method::Post,
        Method::Delete,
        Method::Options,
        Method::Head,
        Method::Patch,
        Method::Trace,
    ];

    /// The method as a path item's key (`get`).
    pub fn key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Put => "put",
            Method::Post => "post",
            Method::Delete => "delete",
            Method::Options => "options",
            Method::Head => "head",
            Method::Patch => "patch",
            Method::Trace => "trace",
        }
    }

    /// The method on the wire (`GET`).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Head => "HEAD",
            Method::Patch => "PATCH",
            Method::Trace => "TRACE",
        }
    }

    /// Whether requests of this method change data (RFC 9110 §9.2.1: not safe).
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            Method::Post | Method::Put | Method::Patch | Method::Delete
        )
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a security scheme (`type` in `components.securitySchemes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemeType {
    /// `apiKey`.
    ApiKey,
    /// `http` (`scheme` says which).
    Http,
    /// `oauth2`.
    OAuth2,
    /// `openIdConnect`.
    OpenIdConnect,
    /// `mutualTLS` (OpenAPI 3.1).
    MutualTls,
}

impl SchemeType {
    /// Reads the `type` value of a scheme.
    pub fn parse(s: &str) -> Option<SchemeType> {
        Some(match s {
            "apiKey" => SchemeType::ApiKey,
            "http" => SchemeType::Http,
            "oauth2" => SchemeType::OAuth2,
            "openIdConnect" => SchemeType::OpenIdConnect,
            "mutualTLS" => SchemeType::MutualTls,
            _ => return None,
        })
    }
}

/// Where an `apiKey` scheme's key is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyIn {
    /// A header (the default).
    Header,
    /// A query parameter.
    Query,
    /// A cookie.
    Cookie,
}

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Matches itself.
    Literal(String),
    /// A whole-segment parameter `{name}`.
    Param(String),
    /// Literal text mixed with parameters, such as `{name}.{ext}` or `v{major}`.
    Mixed(Vec<Segment>),
    /// A greedy parameter `{name+}` (API Gateway's proxy resources): the whole last segment of
    /// its template, matching one or more segments.
    Greedy(String),
}

/// One operation: method and path, what it takes, how it is served.
#[derive(Debug, Clone)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path template as written.
    pub path: String,
    /// The template, split.
    pub segments: Vec<Segment>,
    /// `operationId`, if any.
    pub operation_id: Option<String>,
    /// The Rust name of the handler (unique, snake case).
    pub rust_name: String,
    /// Parameters (path-item ones merged in; undeclared template parameters added).
    pub params: Vec<Param>,
    /// The request body.
    pub request_body: Option<RequestBody>,
    /// Responses by status key.
    pub responses: Vec<Response>,
    /// Security alternatives (OR); each requirement's schemes must all pass (AND). Empty: public.
    pub security: Vec<SecurityRequirement>,
    /// Whether `security` was set on the operation itself (an explicit `[]` opts out).
    pub security_explicit: bool,
    /// `x-gateway`, merged root → defaults → path item → operation.
    pub settings: OperationSettings,
    /// Whether the integration comes from the root (`defaults`), whose URL gets the request
    /// path appended, rather than from the path item or operation.
    pub integration_inherited: bool,
    /// The WebSocket API this `GET` is the handshake of (`websocket` on its path item).
    pub websocket: Option<WebSocketApi>,
    /// The operation object.
    pub location: Location,
}

/// A WebSocket API: its settings, its routes' message schemas, where it is written.
#[derive(Debug, Clone)]
pub struct WebSocketApi {
    /// `websocket` as written.
    pub settings: crate::xgw::WebSocket,
    /// Each route's `schema`, in the order of `settings.routes`.
    pub schemas: Vec<Option<SchemaRef>>,
    /// The `websocket` block.
    pub location: Location,
}

/// Where a parameter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ParamIn {
    /// Path.
    Path,
    /// Query string.
    Query,
    /// Header.
    Header,
    /// Cookie.
    Cookie,
}

/// A parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// The wire name.
    pub name: String,
    /// The Rust name (unique within the route).
    pub rust_name: String,
    /// Where it is read from.
    pub location: ParamIn,
    /// Whether it must be present.
    pub required: bool,
    /// Serialisation style (defaulted per location).
    pub style: String,
    /// Whether arrays/objects explode.
    pub explode: bool,
    /// `allowEmptyValue`.
    pub allow_empty: bool,
    /// Its schema; `None` means a plain string.
    pub schema: Option<SchemaRef>,
    /// False for template parameters that no `parameters` entry declares.
    pub declared: bool,
    /// Where it was declared (the template for undeclared ones).
    pub location_in_spec: Location,
}

/// A schema, by place: the validator generator compiles it from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRef {
    /// Index of the file in the loaded sources.
    pub file: usize,
    /// JSON pointer to the schema (references already followed).
    pub pointer: String,
    /// The dialect: 3.0's schema object or 3.1's JSON Schema 2020-12.
    pub dialect: Version,
}

/// A request body.
#[derive(Debug, Clone)]
pub struct RequestBody {
    /// Whether it is required.
    pub required: bool,
    /// Accepted media types.
    pub content: Vec<MediaType>,
}

/// One media type of a body.
#[derive(Debug, Clone)]
pub struct MediaType {
    /// `application/json`, …
    pub media_type: String,
    /// Its schema.
    pub schema: Option<SchemaRef>,
    /// `example`, if given.
    pub example: Option<serde_json::Value>,
    /// `examples` by name (values only).
    pub examples: BTreeMap<String, serde_json::Value>,
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// `200`, `4XX`, `default`.
    pub status: String,
    /// Its description.
    pub description: String,
    /// Its media types.
    pub content: Vec<MediaType>,
}

/// One security requirement: all of these schemes (with scopes) must pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityRequirement {
    /// Scheme name → required scopes.
    pub schemes: Vec<(String, Vec<String>)>,
}

/// A security scheme.
#[derive(Debug, Clone)]
pub struct SecurityScheme {
    /// Its name in `components.securitySchemes`.
    pub name: String,
    /// Its type; `None` for a type OpenAPI does not define (reported by the checks).
    pub kind: Option<SchemeType>,
    /// For `apiKey`: where the key is sent.
    pub key_in: KeyIn,
    /// For `apiKey`: the header, query or cookie name.
    pub key_name: Option<String>,
    /// For `http`: `bearer`, `basic`, …
    pub scheme: Option<String>,
    /// For `openIdConnect`: the discovery URL.
    pub openid_connect_url: Option<String>,
    /// `x-gateway` settings.
    pub settings: SchemeSettings,
    /// Where it is declared.
    pub location: Location,
}
