//! Diagnostics: every problem gwgen finds, with a stable code, a place and a hint.
//!
//! The generator collects all diagnostics of a run and fails once; it never prints. Front ends
//! render them (see [`crate::render`]). The catalogue of codes below is the single source of
//! truth for `docs/diagnostics.md`, which a test keeps in step with it.

use std::path::PathBuf;

use crate::load::node::Pos;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The gateway would be built anyway; something deserves a look.
    Warning,
    /// The gateway would be wrong or could not be built.
    Error,
}

impl Severity {
    /// `error` or `warning`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One entry of the catalogue of diagnostic codes.
#[derive(Debug, Clone, Copy)]
pub struct CodeInfo {
    /// The stable code, `GW` and four digits.
    pub code: &'static str,
    /// The severity it is always reported with.
    pub severity: Severity,
    /// A short title.
    pub title: &'static str,
    /// What it means and what to do.
    pub help: &'static str,
}

macro_rules! catalogue {
    ($( $name:ident = $code:literal, $sev:ident, $title:literal, $help:literal; )*) => {
        /// The stable diagnostic codes.
        #[allow(missing_docs)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $( $name, )* }

        /// Every code with its severity, title and help, in catalogue order.
        pub const CATALOGUE: &[CodeInfo] = &[
            $( CodeInfo { code: $code, severity: Severity::$sev, title: $title, help: $help }, )*
        ];

        impl Code {
            /// The catalogue entry of this code.
            pub fn info(self) -> &'static CodeInfo {
                match self { $( Code::$name => &CodeInfo { code: $code, severity: Severity::$sev, title: $title, help: $help }, )* }
            }
        }
    };
}

catalogue! {
    Io = "GW0001", Error, "file cannot be read",
        "The spec, or a file it references, could not be read. Check the path and permissions.";
    Syntax = "GW0002", Error, "YAML or JSON syntax error",
        "The file is not well-formed YAML or JSON. Nesting deeper than 1,000 levels and aliases that expand to more than two million nodes are refused here too.";
    YamlNotice = "GW0003", Warning, "questionable YAML",
        "Duplicate keys (the last wins) or several documents in one file (only the first is read).";
    Swagger2 = "GW0004", Error, "Swagger 2.0 construct without an OpenAPI 3.0 form",
        "gwgen converts Swagger 2.0 documents (API Gateway's default REST export) to OpenAPI 3.0 as it loads them. This construct has no exact 3.0 form (a second body parameter, `collectionFormat: tsv`, an unknown OAuth 2 flow): write that part in OpenAPI 3.0, or convert the document with swagger2openapi and check the result.";
    NotOpenApi = "GW0005", Error, "not an OpenAPI 3.0/3.1 document",
        "The root must be a mapping with `openapi: 3.0.x` or `openapi: 3.1.x`.";
    UnknownField = "GW0101", Error, "unknown field",
        "The OpenAPI object does not define this field. Extensions must start with `x-`.";
    MissingField = "GW0102", Error, "required field missing",
        "The OpenAPI specification requires this field.";
    WrongType = "GW0103", Error, "value has the wrong type",
        "The value's JSON type is not the one the OpenAPI specification allows here.";
    InvalidValue = "GW0104", Error, "value not allowed",
        "The value is of the right type but not one of those allowed here.";
    Exclusive = "GW0105", Error, "fields that exclude each other",
        "Two fields that the OpenAPI specification makes mutually exclusive are both present.";
    EmptySpec = "GW0106", Error, "nothing to serve",
        "OpenAPI 3.1 needs at least one of `paths`, `components` or `webhooks`; 3.0 needs `paths`.";
    NotOas30 = "GW0107", Warning, "rejected by the `openapiv3` model",
        "The document does not deserialise with the `openapiv3` crate, the reference model of OpenAPI 3.0 in Rust, so Rust tools built on it will reject it too. The gateway itself reads it as reported by the other checks.";
    Swagger2Leftover = "GW0108", Warning, "Swagger 2.0 field in a parameter or header",
        "Schema keywords such as `type` or `enum` stand directly in a Parameter or Header Object, as Swagger 2.0 wrote them. OpenAPI 3 ignores them there, and so does the gateway: move them under `schema`.";
    PathParamNotRequired = "GW0109", Warning, "path parameter without `required: true`",
        "OpenAPI requires `required: true` on path parameters. The gateway treats every path parameter as required anyway.";
    UnresolvedRef = "GW0201", Error, "unresolved `$ref`",
        "The reference points at nothing. Remote (http) references are not fetched: bundle them into a local file.";
    RefCycle = "GW0202", Error, "`$ref` alias cycle",
        "References that only point at each other never reach a definition. Recursive schemas are fine; a chain of bare `$ref`s that loops is not.";
    RemoteRef = "GW0203", Warning, "remote `$ref` not fetched",
        "gwgen never fetches over the network. What a remote reference points at is unknown to the gateway: a schema there accepts any value, a security scheme there refuses every request. Download the file and reference it by relative path.";
    RouteConflict = "GW0301", Error, "conflicting routes",
        "Two operations have the same method and the same path template once parameter names are ignored, so no request could tell them apart.";
    PathParamNotInTemplate = "GW0302", Error, "path parameter not in the template",
        "A parameter declared `in: path` does not appear in the path template, so it could never be filled.";
    PathParamUndeclared = "GW0303", Warning, "template parameter not declared",
        "The path template uses a parameter that no `parameters` entry declares; it is treated as a required string.";
    DuplicateOperationId = "GW0304", Error, "duplicate operationId",
        "operationIds name the generated handlers and must be unique across the spec.";
    BadPathTemplate = "GW0305", Error, "invalid path template",
        "Paths start with `/` and use balanced `{name}` placeholders, at most one per segment.";
    DuplicateParam = "GW0306", Error, "duplicate parameter",
        "An operation declares the same parameter (name and location) twice.";
    XGatewayUnknownKey = "GW0401", Error, "unknown `x-gateway` key",
        "The key is not part of the `x-gateway` extension at this level; see docs/x-gateway.md and the JSON Schema in schema/.";
    XGatewayInvalid = "GW0402", Error, "invalid `x-gateway` value",
        "The value does not match the `x-gateway` extension's schema.";
    UnknownStageVariable = "GW0403", Error, "unknown stage variable",
        "`${stageVariables.NAME}` names a variable that a stage does not declare; the gateway would refuse to start on that stage.";
    UnknownSecurityScheme = "GW0404", Error, "unknown security scheme",
        "A `security` requirement names a scheme that `components.securitySchemes` does not declare.";
    UnknownUsagePlan = "GW0405", Error, "unknown usage plan",
        "The name is not declared under `x-gateway.usage_plans`.";
    UnknownUrlPlaceholder = "GW0406", Error, "integration URL placeholder names no path parameter",
        "`{name}` in an integration URL is filled from the operation's path parameters; this one has none of that name.";
    BadInterpolation = "GW0407", Error, "invalid interpolation",
        "Interpolations are `${stageVariables.NAME}` or `${env.NAME}`.";
    IncompleteScheme = "GW0408", Warning, "security scheme cannot be enforced",
        "The gateway needs more settings to enforce this scheme, for example `jwks_uri` or `keys` for a JWT bearer scheme. Until it can, operations that require it are refused with 401: the gateway fails closed.";
    UnavailableIntegration = "GW0409", Error, "setting not built yet",
        "The extension's schema accepts this key because the capability is planned, but this version of the gateway does not do it yet. Rather than ignore it, `gwgen check` refuses it; the hint says what to write instead. Every key of this version's schema is built, so this version reports it for none: the code is kept for keys to come.";
    UnknownCacheKey = "GW0410", Error, "cache key part names nothing",
        "A `cache.key` part `path.NAME` must name a path parameter of the operation's template; otherwise every request would share one entry.";
    TemplateError = "GW0411", Error, "invalid transform template",
        "A `transform` template is literal text with `{{ name | filter }}` expressions. The name must be one the gateway knows (`request.path.NAME`, `request.query.NAME`, `request.header.NAME`, `request.body./pointer`, `response.body./pointer` in response body mappings, `context.*`, `stageVariables.NAME`; see docs/transforms.md), a path parameter of every operation the transform applies to, or a stage variable every stage declares; the filters are `default(\"x\")`, `json`, `base64`, `url-encode`, `lower` and `upper`.";
    TransformEdit = "GW0412", Error, "transform edit not allowed",
        "A transform may not touch the headers that frame a message or belong to one connection (`Content-Length`, `Transfer-Encoding`, `Connection`, `Host` and the other hop-by-hop fields): the gateway writes those itself. Header names must be HTTP field names, a path must start with `/` and be written with URL path characters, and a body mapping is a `template` or `set`/`remove` edits by JSON pointer, not both.";
    InapplicableSetting = "GW0413", Error, "setting does not apply to this type",
        "Each integration type reads its own keys: `http` reads `url`, `targets`, `retries` and `health_check`; `mock` reads `status`, `status_from`, `body`, `content_type` and `example`; `lambda` reads `function`, `payload_format`, `region` and `endpoint`, and, for a function run locally (`command`), `env`, `handler`, `workdir`, `concurrency` and `memory_mb`. An authorizer's `url` is for `type: http`, its function keys for `type: lambda`, and `event` for payload format 1.0. A key the type does not read would be silently ignored, so it is refused where it stands.";
    InvalidPattern = "GW0501", Error, "pattern is not ECMA-262",
        "JSON Schema patterns are ECMA-262 regular expressions; this one does not parse as one.";
    UnsupportedPattern = "GW0502", Error, "pattern cannot be honoured",
        "The gateway matches patterns in linear time, without backtracking. Lookaround and backreferences cannot be matched that way; rewrite the pattern without them.";
    Unsatisfiable = "GW0503", Error, "schema no value can satisfy",
        "The schema's constraints contradict each other, so every request would be refused.";
    InvalidSchemaType = "GW0504", Error, "invalid `type`",
        "`type` is one of null, boolean, object, array, number, string, integer (3.0: not null), or in 3.1 an array of them.";
    SchemaNotCompiled = "GW0505", Error, "schema cannot be compiled",
        "The gateway validates with code generated from the schema, so every reference must be resolved when the gateway is built. A `$dynamicRef` whose target depends on run-time scope in a way the generator cannot fix, a reference to a document that is not part of the spec, or a schema that refers to itself without moving to a property or item cannot be compiled.";
    AwsUnsupported = "GW0601", Error, "API Gateway feature not carried over",
        "An `x-amazon-apigateway-*` extension (or a part of one) has no faithful equivalent in the gateway: AWS service integrations, IAM authorization, VPC links, resource policies, Velocity directives in mapping templates, CloudFormation expressions left in an export. The message says which and the hint what to do instead; docs/migrate-from-aws.md lists every extension.";
    AwsOverridden = "GW0602", Warning, "x-gateway overrides an API Gateway extension",
        "The spec sets this `x-gateway` key itself and an `x-amazon-apigateway-*` extension says something for the same key. The `x-gateway` setting is used; remove one of the two to silence this.";
    NoThrottle = "GW0901", Warning, "no throttling anywhere",
        "Without a `throttle` at any level, nothing protects the backends from bursts. Add `x-gateway.defaults.throttle`.";
    UnprotectedMutation = "GW0902", Warning, "mutating operation without security",
        "A POST, PUT, PATCH or DELETE operation has no `security` requirement, so anyone may call it. Add one; an explicit `security: []` on the operation states that it is public on purpose and silences this warning.";
    UnsafeCors = "GW0903", Warning, "unsafe CORS",
        "A wildcard origin with credentials lets any site act as the user. List the exact origins.";
    MockOperations = "GW0904", Warning, "operations served as mocks",
        "Some operations have no integration (none on them, their path, or `x-gateway.defaults`), so they are answered from the spec's examples.";
    RetriesNeverApply = "GW0905", Warning, "retries never apply to this operation",
        "The gateway tries a request again on another target only when running it twice does no harm: an idempotent method (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) with no body. A POST or PATCH is never sent twice, so its `retries` do nothing.";
}

impl Code {
    /// The code's text, `GW` and four digits.
    pub fn as_str(self) -> &'static str {
        self.info().code
    }
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The stable code.
    pub code: Code,
    /// Error or warning (fixed per code).
    pub severity: Severity,
    /// What is wrong, in a sentence.
    pub message: String,
    /// The file, as it was named (the root spec as given; referenced files relative to it).
    pub file: PathBuf,
    /// Line and column (1-based). `0:0` when no position is known.
    pub pos: Pos,
    /// The JSON pointer of the offending value within `file`.
    pub pointer: String,
    /// A suggestion, where there is one.
    pub hint: Option<String>,
}

/// The diagnostics of one run, in the order found.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Adds a diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Adds a diagnostic from parts.
    // A diagnostic's own fields, each required: a struct literal at every call site would say
    // the same at more length.
    #[allow(clippy::too_many_arguments)]
    pub fn report(
        &mut self,
        code: Code,
        file: &std::path::Path,
        pos: Pos,
        pointer: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.items.push(Diagnostic {
            code,
            severity: code.info().severity,
            message: message.into(),
            file: file.to_path_buf(),
            pos,
            pointer: pointer.to_string(),
            hint,
        });
    }

    /// Whether any error was found.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Whether any file could not be read.
    pub fn has_io_errors(&self) -> bool {
        self.items.iter().any(|d| d.code == Code::Io)
    }

    /// All diagnostics, sorted by file, position and code, duplicates removed.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| {
            (&a.file, a.pos, a.code, &a.message).cmp(&(&b.file, b.pos, b.code, &b.message))
        });
        self.items.dedup();
        self.items
    }

    /// The diagnostics as found.
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase());
        if score > 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}
