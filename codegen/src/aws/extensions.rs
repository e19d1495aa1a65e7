//! `x-amazon-apigateway-*` lowered into `x-gateway` settings, in place on the loaded tree.
//!
//! Each extension is removed as it is read, and what it means is written as `x-gateway` keys
//! whose nodes carry the extension's position. Where a spec also sets the same `x-gateway` key
//! itself, its own setting wins and a warning says so (GW0602). What cannot be carried over
//! exactly is an error at the extension (GW0601).

use std::collections::BTreeMap;
use std::path::Path;

use super::tree::{array, boolean, int, member, object, remove, scalar_text, set, string};
use super::vtl::{self, Compiled, Places};
use super::PREFIX;
use crate::diag::{Code, Diagnostics};
use crate::load::node::{Entry, Node, Pos, Value};

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

/// `x-gateway` keys made from an extension, by name.
type Edits = Vec<(&'static str, Node)>;

struct Lowering<'a> {
    file: &'a Path,
    diags: &'a mut Diagnostics,
    /// `x-amazon-apigateway-request-validators`: name → (body, parameters).
    validators: BTreeMap<String, (bool, bool)>,
    /// The API's default validator.
    default_validator: Option<(String, Pos)>,
    /// HTTP APIs' reusable integrations (`components.x-amazon-apigateway-integrations`).
    integrations: Option<Node>,
    /// The spec's own `x-gateway.defaults.cache`: the stage cache AWS does not export.
    stage_cache: Option<Node>,
}

/// Lowers every API Gateway extension of `root`.
pub(super) fn lower(root: &mut Node, file: &Path, diags: &mut Diagnostics) {
    let mut l = Lowering {
        file,
        diags,
        validators: BTreeMap::new(),
        default_validator: None,
        integrations: None,
        stage_cache: root.pointer(["x-gateway", "defaults", "cache"]).cloned(),
    };
    if let Some(components) = member_if(root, "components") {
        l.integrations = remove(components, "x-amazon-apigateway-integrations").map(|e| e.value);
    }
    let root_settings = l.root(root);
    declare_api_key(root);
    if let Some(schemes) =
        member_if(root, "components").and_then(|c| member_if(c, "securitySchemes"))
    {
        if let Value::Object(entries) = &mut schemes.value {
            for e in entries.iter_mut() {
                l.security_scheme(&e.key, &mut e.value);
            }
        }
    }
    if let Some(paths) = member_if(root, "paths") {
        if let Value::Object(entries) = &mut paths.value {
            for e in entries.iter_mut() {
                l.path_item(&e.key, &mut e.value);
            }
        }
    }
    l.merge(root, root_settings);
    l.leftovers(root);
}

fn member_if<'a>(node: &'a mut Node, key: &str) -> Option<&'a mut Node> {
    match &mut node.value {
        Value::Object(entries) => entries
            .iter_mut()
            .find(|e| e.key == key)
            .map(|e| &mut e.value),
        _ => None,
    }
}

/// A duration in whole seconds or milliseconds as the gateway writes it.
fn millis(pos: Pos, ms: u64) -> Node {
    if ms % 1000 == 0 {
        string(pos, format!("{}s", ms / 1000))
    } else {
        string(pos, format!("{ms}ms"))
    }
}

/// The function of a Lambda invocation URI
/// (`arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/FUNCTION/invocations`).
fn lambda_function(uri: &str) -> Option<&str> {
    let (_, rest) = uri.split_once(":lambda:path/")?;
    let rest = rest.split_once("/functions/")?.1;
    let function = rest.strip_suffix("/invocations")?;
    (!function.is_empty()).then_some(function)
}

/// A `'literal'` of a parameter mapping, unquoted.
fn literal(value: &str) -> Option<&str> {
    value.strip_prefix('\'')?.strip_suffix('\'')
}

impl Lowering<'_> {
    fn refuse(&mut self, pos: Pos, msg: impl Into<String>, hint: impl Into<String>) {
        self.diags.report(
            Code::AwsUnsupported,
            self.file,
            pos,
            "",
            msg,
            Some(hint.into()),
        );
    }

    /// A string value, or a refusal saying what it is instead (CloudFormation's `Fn::Sub`,
    /// `Fn::GetAtt`, … are left by SAM and CDK templates).
    fn text(&mut self, node: &Node, what: &str) -> Option<String> {
        if let Some(s) = scalar_text(node) {
            return Some(s);
        }
        let intrinsic = node
            .entries()
            .first()
            .map(|e| e.key.clone())
            .filter(|k| k.starts_with("Fn::") || k == "Ref");
        match intrinsic {
            Some(f) => self.refuse(
                node.pos,
                format!("{what} is the CloudFormation expression `{f}`, not a value"),
                "export the deployed API (`aws apigateway get-export` or the console) so that every value is resolved, or write the value",
            ),
            None => self.refuse(node.pos, format!("{what} must be a string"), "write a string"),
        }
        None
    }

    /// Root-level extensions; returns the `x-gateway` keys they make.
    fn root(&mut self, root: &mut Node) -> Vec<(String, Node)> {
        let mut out: Vec<(String, Node)> = Vec::new();
        let keys: Vec<String> = root
            .entries()
            .iter()
            .filter(|e| e.key.starts_with(PREFIX))
            .map(|e| e.key.clone())
            .collect();
        for key in keys {
            let Some(e) = remove(root, &key) else {
                continue;
            };
            let v = &e.value;
            match &key[PREFIX.len()..] {
                "binary-media-types" => out.push(("binary_media_types".into(), v.clone())),
                "cors" => {
                    if let Some(cors) = self.cors(v) {
                        out.push(("cors".into(), cors));
                    }
                }
                "gateway-responses" => {
                    let mut responses = Vec::new();
                    for r in v.entries() {
                        if let Some(resp) = self.gateway_response(&r.key, &r.value) {
                            responses.push(Entry {
                                key: r.key.clone(),
                                key_pos: r.key_pos,
                                value: resp,
                            });
                        }
                    }
                    out.push(("gateway_responses".into(), Node::new(Value::Object(responses), v.pos)));
                }
                "api-key-source" => {
                    if v.as_str() != Some("HEADER") {
                        self.refuse(
                            v.pos,
                            "API keys supplied by a Lambda authorizer (`AUTHORIZER`) are not carried over",
                            "have clients send the key in `x-api-key` (`HEADER`); the gateway checks it against its keys file or Redis",
                        );
                    }
                }
                "request-validators" => {
                    for val in v.entries() {
                        let flag = |k: &str| val.value.get(k).and_then(Node::as_bool).unwrap_or(false);
                        self.validators.insert(
                            val.key.clone(),
                            (flag("validateRequestBody"), flag("validateRequestParameters")),
                        );
                    }
                }
                "request-validator" => {
                    if let Some(name) = v.as_str() {
                        self.default_validator = Some((name.to_string(), v.pos));
                    }
                }
                "minimum-compression-size" => {
                    if let Some(n) = v.as_f64() {
                        out.push((
                            "compression".into(),
                            object(v.pos, vec![("responses", object(v.pos, vec![("min_size", int(v.pos, n as u64))]))]),
                        ));
                    }
                }
                // Where AWS serves the API, its documentation parts, tags and export format:
                // nothing for a self-hosted gateway to do.
                "endpoint-configuration" | "documentation" | "importexport-version" | "tag-value"
                | "disable-execute-api-endpoint" => {}
                "policy" => self.refuse(
                    e.key_pos,
                    "resource policies are not carried over",
                    "restrict callers with `security` (API keys, JWTs, an authorizer) or at the network in front of the gateway",
                ),
                other => self.refuse(
                    e.key_pos,
                    format!("`{PREFIX}{other}` is not carried over here"),
                    "see docs/migrate-from-aws.md for what each extension becomes",
                ),
            }
        }
        let requests = match self.default_validator.clone() {
            Some((name, pos)) => self.validation(&name, pos),
            None => boolean(root.pos, false),
        };
        out.push((
            "validate".into(),
            object(requests.pos, vec![("requests", requests)]),
        ));
        out
    }

    /// `validate.requests` for the validator `name`.
    fn validation(&mut self, name: &str, pos: Pos) -> Node {
        match self.validators.get(name) {
            Some((true, true)) => boolean(pos, true),
            Some((true, false)) => string(pos, "body"),
            Some((false, true)) => string(pos, "parameters"),
            Some((false, false)) => boolean(pos, false),
            None => {
                self.refuse(
                    pos,
                    format!("no request validator is named `{name}`"),
                    "name one of `x-amazon-apigateway-request-validators`",
                );
                boolean(pos, false)
            }
        }
    }

    fn cors(&mut self, v: &Node) -> Option<Node> {
        let mut cors = Vec::new();
        for e in v.entries() {
            let key = match e.key.as_str() {
                "allowOrigins" => "allow_origins",
                "allowMethods" => "allow_methods",
                "allowHeaders" => "allow_headers",
                "exposeHeaders" => "expose_headers",
                "allowCredentials" => "allow_credentials",
                "maxAge" => {
                    let secs = e.value.as_f64().unwrap_or(0.0).max(0.0) as u64;
                    cors.push(("max_age", string(e.value.pos, format!("{secs}s"))));
                    continue;
                }
                other => {
                    self.refuse(e.key_pos, format!("unknown CORS setting `{other}`"), "API Gateway's are allowOrigins, allowMethods, allowHeaders, exposeHeaders, allowCredentials and maxAge");
                    continue;
                }
            };
            cors.push((key, e.value.clone()));
        }
        Some(object(v.pos, cors))
    }

    fn gateway_response(&mut self, kind: &str, v: &Node) -> Option<Node> {
        let mut out = Vec::new();
        if let Some(s) = v.get("statusCode") {
            match scalar_text(s).and_then(|t| t.parse::<u64>().ok()) {
                Some(n) => out.push(("status", int(s.pos, n))),
                None => self.refuse(
                    s.pos,
                    "`statusCode` must be a status",
                    "write a number from 100 to 599",
                ),
            }
        }
        if let Some(params) = v.get("responseParameters") {
            let headers = self.static_headers(params, "gatewayresponse.header.", false);
            out.push(("headers", Node::new(Value::Object(headers), params.pos)));
        }
        if let Some(templates) = v.get("responseTemplates") {
            if let Some(t) = templates
                .get("application/json")
                .or_else(|| templates.entries().first().map(|e| &e.value))
            {
                let text = t.as_str().unwrap_or("");
                // `$context.error.messageString` is the message quoted; the others are text.
                let body_text =
                    text.replace("$context.error.messageString", "\"$context.error.message\"");
                match serde_json::from_str::<serde_json::Value>(&body_text) {
                    Ok(body) => out.push(("body", json_node(&body, t.pos))),
                    Err(_) if text.trim().is_empty() => {}
                    Err(_) => self.refuse(
                        t.pos,
                        format!("the `{kind}` template is not JSON"),
                        "gateway responses answer JSON: write the body as a JSON document whose strings may hold `$context.error.message`, `$context.error.responseType`, `$context.error.validationErrorString` and `$context.requestId`",
                    ),
                }
            }
        }
        Some(object(v.pos, out))
    }

    fn security_scheme(&mut self, name: &str, scheme: &mut Node) {
        let authtype = remove(scheme, "x-amazon-apigateway-authtype");
        let Some(authorizer) = remove(scheme, "x-amazon-apigateway-authorizer") else {
            if let Some(t) = &authtype {
                if t.value
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case("awsSigv4"))
                {
                    self.refuse(t.value.pos, format!("`{name}` is IAM authorization (SigV4)"), "use API keys, JWTs or a Lambda authorizer; IAM credentials cannot be verified outside AWS");
                }
            }
            return;
        };
        let a = &authorizer.value;
        let kind = a
            .get("type")
            .and_then(Node::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let pos = a.pos;
        let mut settings: Vec<(&str, Node)> = Vec::new();
        match kind.as_str() {
            "cognito_user_pools" => {
                let arns = a
                    .get("providerARNs")
                    .map(|n| n.items().to_vec())
                    .unwrap_or_default();
                let [arn] = arns.as_slice() else {
                    self.refuse(
                        pos,
                        "a Cognito authorizer here takes exactly one user pool",
                        "list one ARN in `providerARNs`",
                    );
                    return;
                };
                let Some(text) = self.text(arn, "the user pool ARN") else {
                    return;
                };
                // arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL
                let parts: Vec<&str> = text.split(':').collect();
                let pool = parts.get(5).and_then(|p| p.strip_prefix("userpool/"));
                let (Some(region), Some(pool)) = (parts.get(3).filter(|r| !r.is_empty()), pool)
                else {
                    self.refuse(
                        arn.pos,
                        format!("`{text}` is not a user pool ARN"),
                        "write arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL_ID",
                    );
                    return;
                };
                let issuer = format!("https://cognito-idp.{region}.amazonaws.com/{pool}");
                settings.push((
                    "jwks_uri",
                    string(arn.pos, format!("{issuer}/.well-known/jwks.json")),
                ));
                settings.push(("issuer", string(arn.pos, issuer)));
                settings.push(("algorithms", array(pos, vec![string(pos, "RS256")])));
                let header = self
                    .identity_header(a, scheme)
                    .unwrap_or_else(|| "Authorization".into());
                settings.push(("token_source", string(pos, format!("header.{header}"))));
                bearer(scheme, pos);
            }
            "jwt" => {
                let Some(cfg) = a.get("jwtConfiguration") else {
                    self.refuse(
                        pos,
                        "a JWT authorizer needs `jwtConfiguration`",
                        "give its issuer and audience",
                    );
                    return;
                };
                if let Some(iss) = cfg.get("issuer") {
                    let Some(issuer) = self.text(iss, "the issuer") else {
                        return;
                    };
                    settings.push(("issuer", string(iss.pos, issuer.trim_end_matches('/'))));
                    settings.push((
                        "jwks_uri",
                        string(
                            iss.pos,
                            format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')),
                        ),
                    ));
                }
                if let Some(aud) = cfg.get("audience") {
                    settings.push(("audience", aud.clone()));
                }
                settings.push(("algorithms", array(pos, vec![string(pos, "RS256")])));
                if let Some(source) = a.get("identitySource") {
                    match source.as_str().map(|s| self.identity(s)) {
                        // A header may hold the token bare or after `Bearer`, as API
                        // Gateway reads it.
                        Some(Ok(ids)) if ids.len() == 1 => {
                            settings.push(("token_source", string(source.pos, ids[0].clone())));
                        }
                        Some(Err(why)) => self.refuse(
                            source.pos,
                            why,
                            "use `$request.header.NAME` or `$request.querystring.NAME`",
                        ),
                        _ => self.refuse(
                            source.pos,
                            "a JWT authorizer reads one identity source",
                            "name one header or query parameter",
                        ),
                    }
                }
                bearer(scheme, pos);
            }
            "token" | "request" => {
                let Some((mut az, format)) = self.lambda_keys(
                    a,
                    "authorizerUri",
                    "authorizerPayloadFormatVersion",
                    "a Lambda authorizer",
                ) else {
                    return;
                };
                if format == "1.0" {
                    az.push(("event", string(pos, kind.clone())));
                }
                let identity = if kind == "token" {
                    self.identity_header(a, scheme)
                        .map(|h| vec![format!("header.{h}")])
                } else {
                    match a.get("identitySource") {
                        Some(s) if s.as_str().is_some_and(|t| !t.trim().is_empty()) => {
                            match self.identity(s.as_str().unwrap_or("")) {
                                Ok(ids) => Some(ids),
                                Err(why) => {
                                    self.refuse(
                                        s.pos,
                                        why,
                                        "identity sources here are headers and query parameters",
                                    );
                                    return;
                                }
                            }
                        }
                        _ => Some(Vec::new()),
                    }
                };
                if let Some(ids) = identity {
                    az.push((
                        "identity",
                        array(pos, ids.into_iter().map(|i| string(pos, i)).collect()),
                    ));
                }
                let ttl = a
                    .get("authorizerResultTtlInSeconds")
                    .and_then(Node::as_f64)
                    .unwrap_or(300.0);
                az.push(("ttl", string(pos, format!("{}s", ttl.max(0.0) as u64))));
                if let Some(expr) = a.get("identityValidationExpression") {
                    self.refuse(
                        expr.pos,
                        "`identityValidationExpression` is not carried over",
                        "check the token's shape in the authorizer function",
                    );
                }
                settings.push(("authorizer", object(pos, az)));
                // The authorizer decides; the scheme's own `in`/`name` only name the token.
                if scheme.get("type").and_then(Node::as_str) != Some("apiKey") {
                    self.refuse(
                        pos,
                        "a Lambda authorizer stands on an `apiKey` scheme",
                        "write `type: apiKey` with the header it reads",
                    );
                }
            }
            other => {
                self.refuse(
                    pos,
                    format!("authorizer type `{other}` is not carried over"),
                    "API Gateway's are token, request, cognito_user_pools and jwt",
                );
                return;
            }
        }
        let derived = object(pos, settings);
        merge_into(self, scheme, derived, authorizer.key_pos);
    }

    /// The Lambda function of an invocation URI (`holder[uri_key]`) as the `type`, `function`
    /// and `payload_format` keys of a `lambda` integration or authorizer, with the payload
    /// format: `holder[format_key]`, else 1.0 (REST APIs').
    fn lambda_keys(
        &mut self,
        holder: &Node,
        uri_key: &str,
        format_key: &str,
        what: &str,
    ) -> Option<(Edits, &'static str)> {
        let Some(uri) = holder.get(uri_key) else {
            self.refuse(
                holder.pos,
                format!("{what} needs `{uri_key}`"),
                "give the function's invocation URI",
            );
            return None;
        };
        let text = self.text(uri, &format!("`{uri_key}`"))?;
        let Some(function) = lambda_function(&text) else {
            self.refuse(
                uri.pos,
                format!("`{text}` is not a Lambda invocation URI"),
                "write arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/FUNCTION_ARN/invocations (a template placeholder must be filled before import)",
            );
            return None;
        };
        let format = holder
            .get(format_key)
            .and_then(scalar_text)
            .map(|v| if v.starts_with('2') { "2.0" } else { "1.0" })
            .unwrap_or("1.0");
        let keys = vec![
            ("type", string(holder.pos, "lambda")),
            ("function", string(uri.pos, function)),
            ("payload_format", string(holder.pos, format)),
        ];
        Some((keys, format))
    }

    /// The header a TOKEN or Cognito authorizer reads: its identity source, else the scheme's.
    fn identity_header(&mut self, a: &Node, scheme: &Node) -> Option<String> {
        let source = a
            .get("identitySource")
            .and_then(Node::as_str)
            .unwrap_or("")
            .trim();
        if let Some(h) = source.strip_prefix("method.request.header.") {
            return Some(h.to_string());
        }
        if !source.is_empty() {
            let pos = a.get("identitySource").map_or(a.pos, |s| s.pos);
            self.refuse(
                pos,
                format!("`{source}` is not a header"),
                "a token authorizer reads `method.request.header.NAME`",
            );
            return None;
        }
        scheme
            .get("name")
            .and_then(Node::as_str)
            .map(str::to_string)
    }

    /// Identity sources (`method.request.header.X, method.request.querystring.Y`,
    /// `$request.header.X`) as the gateway writes them.
    fn identity(&self, sources: &str) -> Result<Vec<String>, String> {
        sources
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                for (prefix, to) in [
                    ("method.request.header.", "header."),
                    ("method.request.querystring.", "query."),
                    ("$request.header.", "header."),
                    ("$request.querystring.", "query."),
                ] {
                    if let Some(name) = s.strip_prefix(prefix) {
                        return Ok(format!("{to}{name}"));
                    }
                }
                Err(format!("the identity source `{s}` is not carried over"))
            })
            .collect()
    }

    fn path_item(&mut self, path: &str, item: &mut Node) {
        if let Some(any) = remove(item, "x-amazon-apigateway-any-method") {
            for m in METHODS {
                if item.get(m).is_none() {
                    let mut op = any.value.clone();
                    if let Some(id) = op
                        .get("operationId")
                        .and_then(Node::as_str)
                        .map(str::to_string)
                    {
                        let pos = op.get("operationId").map_or(op.pos, |n| n.pos);
                        set(&mut op, "operationId", string(pos, format!("{id}-{m}")));
                    }
                    set(item, m, op);
                }
            }
        }
        let shared: Vec<Node> = item
            .get("parameters")
            .map(|p| p.items().to_vec())
            .unwrap_or_default();
        if let Value::Object(entries) = &mut item.value {
            for e in entries.iter_mut() {
                if METHODS.contains(&e.key.as_str()) {
                    let method = e.key.to_ascii_uppercase();
                    self.operation(path, &method, &shared, &mut e.value);
                }
            }
        }
    }

    fn places(path: &str, shared: &[Node], op: &Node) -> Places {
        let mut places = Places::default();
        for seg in path.split('/') {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                places.path.push(name.trim_end_matches('+').to_string());
            }
        }
        let own = op
            .get("parameters")
            .map(|p| p.items().to_vec())
            .unwrap_or_default();
        for p in own.iter().chain(shared) {
            let name = p
                .get("name")
                .and_then(Node::as_str)
                .unwrap_or("")
                .to_string();
            match p.get("in").and_then(Node::as_str) {
                Some("query") => places.query.push(name),
                Some("header") => places.header.push(name),
                _ => {}
            }
        }
        places
    }

    fn operation(&mut self, path: &str, method: &str, shared: &[Node], op: &mut Node) {
        let mut settings: Vec<(String, Node)> = Vec::new();
        let places = Self::places(path, shared, op);
        if let Some(auth) = remove(op, "x-amazon-apigateway-auth") {
            let kind = auth.value.get("type").and_then(Node::as_str).unwrap_or("");
            if !kind.eq_ignore_ascii_case("none") {
                self.refuse(auth.value.pos, format!("`{kind}` authorization is not carried over"), "use API keys, JWTs or a Lambda authorizer; IAM credentials cannot be verified outside AWS");
            }
        }
        // Request validation: API Gateway validates only where a validator says so (the API's
        // default validator is written at the root).
        if let Some(e) = remove(op, "x-amazon-apigateway-request-validator") {
            if let Some(name) = e.value.as_str() {
                let requests = self.validation(name, e.value.pos);
                settings.push((
                    "validate".into(),
                    object(e.value.pos, vec![("requests", requests)]),
                ));
            }
        }
        if let Some(e) = remove(op, "x-amazon-apigateway-integration") {
            let mut node = e.value;
            if let Some(r) = node.get("$ref").and_then(Node::as_str).map(str::to_string) {
                let name = r.strip_prefix("#/components/x-amazon-apigateway-integrations/");
                match name.and_then(|n| self.integrations.as_ref()?.get(n)) {
                    Some(target) => node = target.clone(),
                    None => {
                        self.refuse(
                            node.pos,
                            format!("`{r}` names no integration"),
                            "point at an entry of `components.x-amazon-apigateway-integrations`",
                        );
                        return;
                    }
                }
            }
            self.integration(&node, method, &places, &mut settings);
        }
        for key in op
            .entries()
            .iter()
            .filter(|e| e.key.starts_with(PREFIX))
            .map(|e| (e.key.clone(), e.key_pos))
            .collect::<Vec<_>>()
        {
            remove(op, &key.0);
            self.refuse(
                key.1,
                format!("`{}` is not carried over here", key.0),
                "see docs/migrate-from-aws.md for what each extension becomes",
            );
        }
        self.merge(op, settings);
    }

    fn integration(
        &mut self,
        node: &Node,
        method: &str,
        places: &Places,
        settings: &mut Vec<(String, Node)>,
    ) {
        let pos = node.pos;
        let kind = node
            .get("type")
            .and_then(Node::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        if let Some(c) = node.get("connectionType") {
            if c.as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("VPC_LINK"))
            {
                self.refuse(
                    c.pos,
                    "VPC links are not carried over",
                    "point `uri` at an address the gateway reaches directly",
                );
                return;
            }
        }
        if let Some(c) = node.get("contentHandling") {
            if kind != "aws_proxy" && kind != "aws" {
                self.refuse(
                    c.pos,
                    "`contentHandling` (converting bodies between text and binary) is not carried over",
                    "send the body as the upstream takes it; binary media types reach Lambda functions base64-encoded",
                );
            }
        }
        let mut transform_request: Vec<(&str, Node)> = Vec::new();
        let mut transform_response: Vec<(&str, Node)> = Vec::new();
        let integration = match kind.as_str() {
            "http" | "http_proxy" => {
                let Some(uri_node) = node.get("uri") else {
                    self.refuse(
                        pos,
                        "an HTTP integration needs `uri`",
                        "give the upstream URL",
                    );
                    return;
                };
                let Some(uri) = self.text(uri_node, "`uri`") else {
                    return;
                };
                if let Some(m) = node.get("httpMethod").and_then(Node::as_str) {
                    if !m.eq_ignore_ascii_case("ANY") && !m.eq_ignore_ascii_case(method) {
                        self.refuse(
                            node.get("httpMethod").map_or(pos, |n| n.pos),
                            format!("the upstream is called with {m} for a {method} operation"),
                            "the gateway calls the upstream with the client's method: declare the operation with the upstream's method",
                        );
                    }
                }
                let mut url = uri.clone();
                let (req, path_map) = self.request_parameters(node, places);
                transform_request.extend(req);
                for (to, from) in path_map {
                    url = url.replace(&format!("{{{to}}}"), &format!("{{{from}}}"));
                }
                let mut i: Vec<(&str, Node)> = vec![
                    ("type", string(pos, "http")),
                    ("url", string(uri_node.pos, url)),
                ];
                if let Some(t) = node.get("timeoutInMillis").and_then(Node::as_f64) {
                    i.push(("timeout", millis(pos, t.max(1.0) as u64)));
                }
                if let Some(tls) = node.get("tlsConfig") {
                    if tls.get("insecureSkipVerification").and_then(Node::as_bool) == Some(true) {
                        self.refuse(tls.pos, "`insecureSkipVerification` is not carried over", "give the upstream a certificate the gateway trusts (`integration.tls.ca`)");
                    }
                }
                if kind == "http" {
                    if let Some(t) = node
                        .get("requestTemplates")
                        .filter(|t| !t.entries().is_empty())
                    {
                        match self.one_template(t, places, Some("request.body"), "request") {
                            Some(Compiled::Json(body)) => transform_request.push((
                                "body",
                                object(t.pos, vec![("template", json_node(&body, t.pos))]),
                            )),
                            Some(Compiled::Template(text)) => transform_request
                                .push(("body", object(t.pos, vec![("text", string(t.pos, text))]))),
                            Some(Compiled::Text(text)) if text.is_empty() => {}
                            Some(Compiled::Text(text)) if json_keyed(t) => transform_request
                                .push(("body", object(t.pos, vec![("text", string(t.pos, text))]))),
                            Some(Compiled::Text(_)) => self.refuse(
                                t.pos,
                                "a request template for a media type other than JSON is not carried over",
                                "send the body through unchanged, or map it as JSON",
                            ),
                            None => {}
                        }
                    }
                    self.http_responses(
                        node,
                        places,
                        Some("response.body"),
                        &mut transform_response,
                    );
                }
                object(pos, i)
            }
            "mock" => 'mock: {
                let status = match node.get("requestTemplates") {
                    Some(t) => self.mock_status(t, places),
                    None => Some(MockStatus::Fixed("200".to_string())),
                };
                let status = match status {
                    None => return,
                    Some(MockStatus::Fixed(s)) => s,
                    Some(MockStatus::From(template, at)) => {
                        // The status comes from the request: every integration response is
                        // a case of it, and a status none takes is API Gateway's 500.
                        self.http_responses(node, places, None, &mut transform_response);
                        break 'mock object(
                            pos,
                            vec![
                                ("type", string(pos, "mock")),
                                ("status", int(pos, 200)),
                                ("status_from", string(at, template)),
                                ("body", string(pos, "")),
                            ],
                        );
                    }
                };
                let responses = node.get("responses");
                let chosen = responses.and_then(|r| {
                    r.entries()
                        .iter()
                        .filter(|e| e.key != "default")
                        .find(|e| selection_matches(&e.key, &status))
                        .or_else(|| r.entry("default"))
                });
                let mut i: Vec<(&str, Node)> = vec![("type", string(pos, "mock"))];
                match chosen {
                    Some(resp) => {
                        let code = resp
                            .value
                            .get("statusCode")
                            .and_then(scalar_text)
                            .and_then(|s| s.parse::<u64>().ok())
                            .unwrap_or(200);
                        i.push(("status", int(resp.value.pos, code)));
                        let headers = self.response_headers(&resp.value, false);
                        if !headers.is_empty() {
                            let set = Node::new(Value::Object(headers), resp.value.pos);
                            transform_response
                                .push(("headers", object(resp.value.pos, vec![("set", set)])));
                        }
                        match resp.value.get("responseTemplates") {
                            Some(t) if !t.entries().is_empty() => {
                                let media = t.entries()[0].key.clone();
                                match self.one_template(t, places, None, "response") {
                                    Some(Compiled::Json(body)) if has_expressions(&body) => {
                                        i.push(("body", object(t.pos, vec![])));
                                        transform_response.push((
                                            "body",
                                            object(
                                                t.pos,
                                                vec![("template", json_node(&body, t.pos))],
                                            ),
                                        ));
                                    }
                                    Some(Compiled::Json(body)) => {
                                        i.push(("body", json_node(&body, t.pos)))
                                    }
                                    Some(Compiled::Template(text)) => {
                                        i.push(("body", object(t.pos, vec![])));
                                        transform_response.push((
                                            "body",
                                            object(t.pos, vec![("text", string(t.pos, text))]),
                                        ));
                                    }
                                    Some(Compiled::Text(text)) => {
                                        i.push(("body", string(t.pos, text)));
                                        i.push((
                                            "content_type",
                                            string(
                                                t.pos,
                                                if media.contains("json") {
                                                    "text/plain".to_string()
                                                } else {
                                                    media
                                                },
                                            ),
                                        ));
                                    }
                                    None => return,
                                }
                            }
                            _ => i.push(("body", string(pos, ""))),
                        }
                    }
                    None => {
                        // No integration response: API Gateway answers 500.
                        i.push(("status", int(pos, 500)));
                        i.push((
                            "body",
                            object(pos, vec![("message", string(pos, "Internal server error"))]),
                        ));
                    }
                }
                object(pos, i)
            }
            "aws_proxy" => {
                let Some((mut i, _)) = self.lambda_keys(
                    node,
                    "uri",
                    "payloadFormatVersion",
                    "a Lambda proxy integration",
                ) else {
                    return;
                };
                if let Some(t) = node.get("timeoutInMillis").and_then(Node::as_f64) {
                    i.push(("timeout", millis(pos, t.max(1.0) as u64)));
                }
                object(pos, i)
            }
            "aws" => {
                // The URI as written, or inside CloudFormation's `Fn::Sub`.
                let uri = node
                    .get("uri")
                    .and_then(|u| scalar_text(u).or_else(|| u.get("Fn::Sub").and_then(scalar_text)))
                    .unwrap_or_default();
                if lambda_function(&uri).is_some() {
                    self.refuse(
                        pos,
                        "a non-proxy Lambda integration (`type: aws` with mapping templates) is not carried over",
                        "switch the method to a Lambda proxy integration (`aws_proxy`, payload 1.0) and build the answer in the function",
                    );
                } else {
                    // arn:aws:apigateway:REGION:SERVICE:action/… (or :path/…); the region may
                    // be CloudFormation's `${AWS::Region}`.
                    let service = [":action/", ":path/"]
                        .iter()
                        .find_map(|m| uri.split_once(m))
                        .and_then(|(head, _)| head.rsplit(':').next())
                        .filter(|s| !s.is_empty())
                        .unwrap_or("an AWS service");
                    self.refuse(
                        pos,
                        format!("an AWS service integration ({service}) is not carried over"),
                        "the gateway does not call AWS services itself: put a Lambda function (`aws_proxy`) or an HTTP service in front of it",
                    );
                }
                return;
            }
            other => {
                self.refuse(
                    pos,
                    format!("integration type `{other}` is not carried over"),
                    "API Gateway's types are http, http_proxy, mock, aws_proxy and aws",
                );
                return;
            }
        };
        settings.push(("integration".into(), integration));
        if let Some(cache) = self.cache(node) {
            settings.push(("cache".into(), cache));
        }
        let mut transform = Vec::new();
        if !transform_request.is_empty() {
            transform.push(("request", object(pos, transform_request)));
        }
        if !transform_response.is_empty() {
            transform.push(("response", object(pos, transform_response)));
        }
        if !transform.is_empty() {
            settings.push(("transform".into(), object(pos, transform)));
        }
    }

    /// `cacheKeyParameters` as the operation's cache key, on the stage cache the spec sets in
    /// `x-gateway.defaults.cache` (AWS keeps the cache's size and TTL in the stage, outside the
    /// export); without one, caching is off and the parameters say nothing.
    fn cache(&mut self, node: &Node) -> Option<Node> {
        let params = node.get("cacheKeyParameters")?;
        let mut cache = self.stage_cache.clone()?;
        let mut key = Vec::new();
        for p in params.items() {
            let text = p.as_str().unwrap_or("");
            let part = [
                ("method.request.path.", "path."),
                ("method.request.querystring.", "query."),
                ("method.request.header.", "header."),
            ]
            .iter()
            .find_map(|(from, to)| text.strip_prefix(from).map(|n| format!("{to}{n}")));
            match part {
                Some(part) => key.push(string(p.pos, part)),
                None => self.refuse(
                    p.pos,
                    format!("the cache key parameter `{text}` is not carried over"),
                    "key the cache on `method.request.path|querystring|header.NAME`",
                ),
            }
        }
        if key.is_empty() {
            return None;
        }
        set(&mut cache, "key", array(params.pos, key));
        Some(cache)
    }

    /// The one template of a `requestTemplates`/`responseTemplates` map, compiled. Several
    /// templates (chosen by content type at AWS) are refused unless they are the same.
    /// `body` is what the template's `$input` body references read (see [`Places::body`]).
    fn one_template(
        &mut self,
        templates: &Node,
        places: &Places,
        body: Option<&'static str>,
        what: &str,
    ) -> Option<Compiled> {
        let places = &Places {
            body,
            ..places.clone()
        };
        let entries = templates.entries();
        let first = &entries[0];
        if entries.iter().any(|e| e.value != first.value) {
            self.refuse(
                templates.pos,
                format!("{what} templates chosen by content type are not carried over"),
                "keep one template (`application/json`)",
            );
            return None;
        }
        let text = first.value.as_str().unwrap_or("");
        match vtl::compile(text, places) {
            Ok(c) => Some(c),
            Err((line, why)) => {
                // The template's own line is in the message: a quoted scalar's `\n` escapes
                // do not move the source line.
                self.refuse(
                    first.value.pos,
                    format!("{why} (line {line} of the {what} template)"),
                    "move the logic into the backend, or write the mapping with `x-gateway.transform` (docs/transforms.md)",
                );
                None
            }
        }
    }

    /// The status a mock's request template selects (`{"statusCode": 200}`).
    fn mock_status(&mut self, templates: &Node, places: &Places) -> Option<MockStatus> {
        let first = templates
            .get("application/json")
            .or_else(|| templates.entries().first().map(|e| &e.value))?;
        let text = first.as_str().unwrap_or("");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            return Some(MockStatus::Fixed(match v.get("statusCode") {
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => "200".into(),
            }));
        }
        // Velocity that chooses the status from the request (`#if`, references): the
        // template, run for each request, gives it. It reads the request's head only.
        let head = Places {
            body: None,
            ..places.clone()
        };
        match vtl::compile(text, &head) {
            Ok(Compiled::Template(t)) => Some(MockStatus::From(t, first.pos)),
            Ok(Compiled::Json(v)) => Some(MockStatus::From(
                serde_json::to_string(&v).unwrap_or_default(),
                first.pos,
            )),
            Ok(Compiled::Text(_)) => {
                self.refuse(
                    first.pos,
                    "a mock's request template must give `{\"statusCode\": …}`",
                    "write `{\"statusCode\": 200}`, or use `x-gateway.integration.status_from` (docs/transforms.md#mocks)",
                );
                None
            }
            Err((line, why)) => {
                self.refuse(
                    first.pos,
                    format!("{why} (line {line} of the mock's request template)"),
                    "write `{\"statusCode\": 200}`, or use `x-gateway.integration.status_from` (docs/transforms.md#mocks)",
                );
                None
            }
        }
    }

    /// The `method.response.header.X` values of an integration response (`upstream`: one that
    /// has an upstream answer to read headers from).
    fn response_headers(&mut self, resp: &Node, upstream: bool) -> Vec<Entry> {
        match resp.get("responseParameters") {
            Some(params) => self.static_headers(params, "method.response.header.", upstream),
            None => Vec::new(),
        }
    }

    /// The headers of `params`, whose keys are `prefix` and a name and whose values are
    /// `'literal'`s. A value that passes the upstream's own header of that name through
    /// (`integration.response.header.NAME`) is left out, since the gateway passes it anyway;
    /// with `upstream`, another of the upstream's headers becomes a template reading it
    /// (`{{ response.header.NAME }}`). Any other value is refused.
    fn static_headers(&mut self, params: &Node, prefix: &str, upstream: bool) -> Vec<Entry> {
        let mut headers = Vec::new();
        for p in params.entries() {
            let Some(name) = p.key.strip_prefix(prefix) else {
                self.refuse(
                    p.key_pos,
                    format!("`{}` is not a response header", p.key),
                    format!("write `{prefix}NAME`"),
                );
                continue;
            };
            let value = p.value.as_str().unwrap_or("");
            match literal(value) {
                Some(text) => headers.push(Entry {
                    key: name.to_string(),
                    key_pos: p.key_pos,
                    value: string(p.value.pos, text),
                }),
                None if kind_is_passthrough(name, value) => {}
                None if upstream
                    && value
                        .strip_prefix("integration.response.header.")
                        .is_some_and(|h| !h.is_empty() && crate::transform::is_header_name(h)) =>
                {
                    let from = &value["integration.response.header.".len()..];
                    headers.push(Entry {
                        key: name.to_string(),
                        key_pos: p.key_pos,
                        value: string(p.value.pos, format!("{{{{ response.header.{from} }}}}")),
                    });
                }
                None => self.refuse(
                    p.value.pos,
                    format!("the header value `{value}` is not a static value"),
                    "write a static value in single quotes, or map headers with `x-gateway.transform.response.headers`",
                ),
            }
        }
        headers
    }

    /// A non-proxy HTTP integration's responses: status mapping and static headers. Templates
    /// that rewrite the upstream's body are refused.
    fn http_responses(
        &mut self,
        node: &Node,
        places: &Places,
        answer: Option<&'static str>,
        out: &mut Vec<(&str, Node)>,
    ) {
        let Some(responses) = node.get("responses") else {
            return;
        };
        // A mock whose status comes from the request: a status no response takes is API
        // Gateway's 500 (the others are each a case).
        let mock = answer.is_none();
        let mut status = Vec::new();
        let mut classes_taken: Vec<String> = Vec::new();
        let mut each: Vec<IntegrationResponse> = Vec::new();
        for e in responses.entries() {
            let code = e
                .value
                .get("statusCode")
                .and_then(scalar_text)
                .and_then(|s| s.parse::<u64>().ok());
            let Some(code) = code else {
                self.refuse(
                    e.value.pos,
                    "an integration response needs a `statusCode`",
                    "write the status the client gets",
                );
                continue;
            };
            let key = if e.key == "default" {
                None
            } else {
                match selection_class(&e.key) {
                    Some(class) => {
                        classes_taken.push(class.clone());
                        status.push(Entry {
                            key: class.clone(),
                            key_pos: e.key_pos,
                            value: int(e.value.pos, code),
                        });
                        Some(class)
                    }
                    None => {
                        self.refuse(
                            e.key_pos,
                            format!("the selection pattern `{}` is not carried over", e.key),
                            "use a status (`404`), a class (`4\\d{2}`) or `default`",
                        );
                        continue;
                    }
                }
            };
            let headers = self.response_headers(&e.value, true);
            let template = e
                .value
                .get("responseTemplates")
                .filter(|t| !t.entries().is_empty())
                .filter(|t| !t.entries().iter().all(|x| x.value.as_str() == Some("")))
                .cloned();
            each.push(IntegrationResponse {
                key,
                pos: e.value.pos,
                code,
                headers,
                template,
            });
        }
        let template_text = |t: &Option<Node>| {
            t.as_ref().map(|t| {
                t.entries()
                    .iter()
                    .map(|x| x.value.to_json())
                    .collect::<Vec<_>>()
            })
        };
        let has_default = each.iter().any(|e| e.key.is_none());
        let alike = (has_default || !mock)
            && each.windows(2).all(|w| {
                header_text(&w[0].headers) == header_text(&w[1].headers)
                    && template_text(&w[0].template) == template_text(&w[1].template)
            });
        // The responses' own edits: shared ones apply to every answer; otherwise each
        // selection pattern's response is a `by_status` case, and `default`'s are the
        // transform's own.
        let shared = if alike {
            each.first()
        } else {
            each.iter().find(|e| e.key.is_none())
        };
        if let Some(IntegrationResponse {
            pos,
            headers,
            template,
            ..
        }) = shared
        {
            if let Some(t) = template {
                if let Some(body) = self.response_body(t, places, answer) {
                    out.push(("body", body));
                }
            }
            if !headers.is_empty() {
                let set = Node::new(Value::Object(headers.clone()), *pos);
                out.push(("headers", object(*pos, vec![("set", set)])));
            }
        }
        if !alike {
            let mut cases = Vec::new();
            for IntegrationResponse {
                key,
                pos,
                code,
                headers,
                template,
            } in &each
            {
                let Some(key) = key else { continue };
                let mut case = vec![("status", int(*pos, *code))];
                if !headers.is_empty() {
                    let set = Node::new(Value::Object(headers.clone()), *pos);
                    case.push(("headers", object(*pos, vec![("set", set)])));
                }
                if let Some(t) = template {
                    if let Some(body) = self.response_body(t, places, answer) {
                        case.push(("body", body));
                    }
                }
                cases.push(Entry {
                    key: key.clone(),
                    key_pos: *pos,
                    value: object(*pos, case),
                });
            }
            if !cases.is_empty() {
                out.push(("by_status", Node::new(Value::Object(cases), responses.pos)));
            }
        }
        if let Some(d) = responses.get("default") {
            if let Some(code) = d
                .get("statusCode")
                .and_then(scalar_text)
                .and_then(|s| s.parse::<u64>().ok())
            {
                // An exact status taken leaves the rest of its class to `default`: an exact
                // status wins over its class.
                for class in ["1XX", "2XX", "3XX", "4XX", "5XX"] {
                    if !classes_taken.iter().any(|c| c == class) {
                        status.push(Entry {
                            key: class.to_string(),
                            key_pos: d.pos,
                            value: int(d.pos, code),
                        });
                    }
                }
            }
        } else if mock {
            for class in ["1XX", "2XX", "3XX", "4XX", "5XX"] {
                if !classes_taken.iter().any(|c| c == class) {
                    status.push(Entry {
                        key: class.to_string(),
                        key_pos: responses.pos,
                        value: int(responses.pos, 500),
                    });
                }
            }
            let message = object(
                responses.pos,
                vec![("message", string(responses.pos, "Internal server error"))],
            );
            out.push(("body", object(responses.pos, vec![("template", message)])));
        }
        if !status.is_empty() {
            out.push(("status", Node::new(Value::Object(status), responses.pos)));
        }
    }

    /// A non-proxy HTTP integration response's template as a body mapping over the upstream's
    /// answer.
    fn response_body(
        &mut self,
        t: &Node,
        places: &Places,
        answer: Option<&'static str>,
    ) -> Option<Node> {
        match self.one_template(t, places, answer, "response") {
            Some(Compiled::Json(body)) => {
                Some(object(t.pos, vec![("template", json_node(&body, t.pos))]))
            }
            Some(Compiled::Template(text)) => {
                Some(object(t.pos, vec![("text", string(t.pos, text))]))
            }
            // Fixed text under a JSON media type: the body, sent as `application/json` as API
            // Gateway sends it.
            Some(Compiled::Text(text)) if json_keyed(t) => {
                Some(object(t.pos, vec![("text", string(t.pos, text))]))
            }
            Some(Compiled::Text(_)) => {
                self.refuse(
                    t.pos,
                    "a response template for a media type other than JSON is not carried over",
                    "return the answer from the upstream, or map JSON answers with `x-gateway.transform.response.body`",
                );
                None
            }
            None => None,
        }
    }

    /// `requestParameters` as request transforms, and the URI's path variables renamed to the
    /// operation's (`integration.request.path.id: method.request.path.petId`).
    fn request_parameters(
        &mut self,
        node: &Node,
        places: &Places,
    ) -> (Edits, Vec<(String, String)>) {
        let mut headers = Vec::new();
        let mut query = Vec::new();
        let mut header_removes = Vec::new();
        let mut query_removes = Vec::new();
        let mut path_map = Vec::new();
        let mut path_rewrite = None;
        let Some(params) = node.get("requestParameters") else {
            return (Vec::new(), path_map);
        };
        for p in params.entries() {
            let source = p.value.as_str().unwrap_or("");
            // HTTP APIs: `overwrite:header.X`, `append:querystring.X`, `remove:header.X`,
            // `overwrite:path`.
            if let Some((op, target)) = p.key.split_once(':') {
                let value = match self.source_template(source, places) {
                    Ok(v) => v,
                    Err(why) => {
                        if op != "remove" {
                            self.refuse(p.value.pos, why, "map from `$request.header.X`, `$request.querystring.X`, `$request.path.X`, `$context.X`, `$stageVariables.X` or text");
                            continue;
                        }
                        String::new()
                    }
                };
                let (place, name) = target.split_once('.').unwrap_or((target, ""));
                match (op, place) {
                    ("overwrite" | "append", "header") => {
                        headers.push((op == "append", name.to_string(), string(p.value.pos, value)))
                    }
                    ("overwrite" | "append", "querystring") => {
                        query.push((op == "append", name.to_string(), string(p.value.pos, value)))
                    }
                    ("remove", "header") => header_removes.push(string(p.key_pos, name)),
                    ("remove", "querystring") => query_removes.push(string(p.key_pos, name)),
                    ("overwrite", "path") if name.is_empty() => {
                        path_rewrite = Some(string(p.value.pos, value))
                    }
                    _ => self.refuse(
                        p.key_pos,
                        format!("the mapping `{}` is not carried over", p.key),
                        "map headers, query parameters or the path",
                    ),
                }
                continue;
            }
            // REST APIs: `integration.request.header.X: method.request.header.Y`.
            let Some(target) = p.key.strip_prefix("integration.request.") else {
                self.refuse(
                    p.key_pos,
                    format!("`{}` is not an integration request parameter", p.key),
                    "write `integration.request.header|querystring|path.NAME`",
                );
                continue;
            };
            let (place, name) = target.split_once('.').unwrap_or((target, ""));
            if place == "path" {
                match source.strip_prefix("method.request.path.") {
                    Some(from) => path_map.push((name.to_string(), from.to_string())),
                    None => self.refuse(
                        p.value.pos,
                        format!("the path variable `{name}` is filled from `{source}`"),
                        "fill path variables from the operation's own path parameters",
                    ),
                }
                continue;
            }
            let value = match self.source_template(source, places) {
                Ok(v) => v,
                Err(why) => {
                    self.refuse(p.value.pos, why, "map from `method.request.header|querystring|path.NAME`, `context.X`, `stageVariables.X` or a 'literal'");
                    continue;
                }
            };
            match place {
                "header" => headers.push((false, name.to_string(), string(p.value.pos, value))),
                "querystring" => query.push((false, name.to_string(), string(p.value.pos, value))),
                _ => self.refuse(
                    p.key_pos,
                    format!("`{}` is not carried over", p.key),
                    "map headers, query parameters or path variables",
                ),
            }
        }
        let mut out: Vec<(&'static str, Node)> = Vec::new();
        let pos = params.pos;
        for (key, list, removes) in [
            ("headers", headers, header_removes),
            ("query", query, query_removes),
        ] {
            let mut edits = Vec::new();
            let sets: Vec<Entry> = list
                .iter()
                .filter(|(a, _, _)| !a)
                .map(|(_, n, v)| Entry {
                    key: n.clone(),
                    key_pos: v.pos,
                    value: v.clone(),
                })
                .collect();
            let adds: Vec<Entry> = list
                .iter()
                .filter(|(a, _, _)| *a)
                .map(|(_, n, v)| Entry {
                    key: n.clone(),
                    key_pos: v.pos,
                    value: v.clone(),
                })
                .collect();
            if !sets.is_empty() {
                edits.push(("set", Node::new(Value::Object(sets), pos)));
            }
            if !adds.is_empty() {
                edits.push(("add", Node::new(Value::Object(adds), pos)));
            }
            if !removes.is_empty() {
                edits.push(("remove", array(pos, removes)));
            }
            if !edits.is_empty() {
                out.push((key, object(pos, edits)));
            }
        }
        if let Some(p) = path_rewrite {
            out.push(("path", p));
        }
        (out, path_map)
    }

    /// A mapping's source as a gateway template.
    fn source_template(&self, source: &str, places: &Places) -> Result<String, String> {
        if let Some(text) = literal(source) {
            if text.contains("{{") {
                return Err(format!("`{source}` holds `{{{{`"));
            }
            return Ok(text.to_string());
        }
        let (place, name) = if let Some(n) = source.strip_prefix("method.request.header.") {
            ("request.header", n)
        } else if let Some(n) = source.strip_prefix("method.request.querystring.") {
            ("request.query", n)
        } else if let Some(n) = source.strip_prefix("method.request.path.") {
            ("request.path", n)
        } else if let Some(n) = source.strip_prefix("$request.header.") {
            ("request.header", n)
        } else if let Some(n) = source.strip_prefix("$request.querystring.") {
            ("request.query", n)
        } else if let Some(n) = source.strip_prefix("$request.path.") {
            ("request.path", n)
        } else if source.starts_with("context.")
            || source.starts_with("$context.")
            || source.starts_with("stageVariables.")
            || source.starts_with("$stageVariables.")
        {
            let reference = format!("${}", source.trim_start_matches('$'));
            // A header or query value is text already: the `text` filter a JSON string gets
            // is left off.
            return match vtl::compile(&format!("\"{reference}\""), places) {
                Ok(Compiled::Json(serde_json::Value::String(s))) => {
                    Ok(s.replace(" | text }}", " }}"))
                }
                _ => Err(format!("`{source}` is not carried over")),
            };
        } else if !source.contains('$')
            && !source.starts_with("method.")
            && !source.starts_with("integration.")
        {
            // HTTP APIs write static values without quotes.
            return Ok(source.to_string());
        } else {
            return Err(format!("`{source}` is not carried over"));
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(format!("`{source}` does not name a parameter"));
        }
        Ok(format!("{{{{ {place}.{name} }}}}"))
    }

    /// Writes `derived` (AWS-made `x-gateway` keys) into `holder`'s `x-gateway`; keys the
    /// holder sets itself win, with a warning.
    fn merge(&mut self, holder: &mut Node, derived: Vec<(String, Node)>) {
        if derived.is_empty() {
            return;
        }
        let pos = derived[0].1.pos;
        let node = Node::new(
            Value::Object(
                derived
                    .into_iter()
                    .map(|(k, v)| Entry {
                        key: k,
                        key_pos: v.pos,
                        value: v,
                    })
                    .collect(),
            ),
            pos,
        );
        merge_into(self, holder, node, pos);
    }

    /// Any API Gateway extension still in the tree stands where none is read.
    fn leftovers(&mut self, root: &mut Node) {
        let mut found = Vec::new();
        let mut stack = vec![&*root];
        while let Some(n) = stack.pop() {
            match &n.value {
                Value::Object(entries) => {
                    for e in entries {
                        if e.key.starts_with(PREFIX) {
                            found.push((e.key.clone(), e.key_pos));
                        }
                    }
                    stack.extend(entries.iter().map(|e| &e.value));
                }
                Value::Array(items) => stack.extend(items.iter()),
                _ => {}
            }
        }
        for (key, pos) in found {
            self.refuse(
                pos,
                format!("`{key}` is not read where it stands"),
                "see docs/migrate-from-aws.md for where each extension goes",
            );
        }
    }
}

/// Merges the mapping `derived` into `holder.x-gateway`, the holder's own keys winning.
fn merge_into(l: &mut Lowering<'_>, holder: &mut Node, derived: Node, pos: Pos) {
    let Some(xg) = member(holder, "x-gateway", pos) else {
        return;
    };
    let Value::Object(own) = &mut xg.value else {
        return;
    };
    let Value::Object(new) = derived.value else {
        return;
    };
    for e in new {
        match own.iter().find(|o| o.key == e.key) {
            Some(o) => l.diags.report(
                Code::AwsOverridden,
                l.file,
                o.key_pos,
                "",
                format!(
                    "`x-gateway.{}` is used instead of what the API Gateway extension says",
                    e.key
                ),
                Some(format!(
                    "the extension at line {} is ignored for `{}`",
                    e.key_pos.line, e.key
                )),
            ),
            None => own.push(e),
        }
    }
}

/// API Gateway's API key requirement is the security scheme `api_key` (header `x-api-key`),
/// which its exports use without always declaring it.
fn declare_api_key(root: &mut Node) {
    let mut used = None;
    let mut stack = vec![&*root];
    while let Some(n) = stack.pop() {
        if let Some(sec) = n.get("security") {
            for req in sec.items() {
                if let Some(e) = req.entry("api_key") {
                    used = Some(e.key_pos);
                }
            }
        }
        if let Some(paths) = n.get("paths") {
            for item in paths.entries() {
                stack.extend(item.value.entries().iter().map(|e| &e.value));
            }
        }
    }
    let Some(pos) = used else { return };
    let declared = root
        .pointer(["components", "securitySchemes", "api_key"])
        .is_some();
    if declared {
        return;
    }
    let Some(components) = member(root, "components", pos) else {
        return;
    };
    let Some(schemes) = member(components, "securitySchemes", pos) else {
        return;
    };
    set(
        schemes,
        "api_key",
        object(
            pos,
            vec![
                ("type", string(pos, "apiKey")),
                ("name", string(pos, "x-api-key")),
                ("in", string(pos, "header")),
            ],
        ),
    );
}

/// Turns the scheme into an HTTP bearer scheme (a Cognito or JWT authorizer verifies JWTs).
fn bearer(scheme: &mut Node, pos: Pos) {
    for key in ["in", "name", "flows"] {
        remove(scheme, key);
    }
    set(scheme, "type", string(pos, "http"));
    set(scheme, "scheme", string(pos, "bearer"));
    set(scheme, "bearerFormat", string(pos, "JWT"));
}

/// Whether an integration response's selection pattern (a regular expression over the
/// status) matches `status`, for the patterns the import understands.
fn selection_matches(pattern: &str, status: &str) -> bool {
    match selection_class(pattern) {
        Some(c) if c.ends_with("XX") => status.starts_with(&c[..1]) && status.len() == 3,
        Some(c) => c == status,
        None => false,
    }
}

/// `2\d{2}` → `2XX`, `404` → `404`; others `None`.
/// The status a mock's request template selects.
enum MockStatus {
    /// Always this one (`{"statusCode": 200}`).
    Fixed(String),
    /// What this gateway template renders for each request, from where the template is.
    From(String, Pos),
}

/// An integration response of a non-proxy HTTP integration, as read.
struct IntegrationResponse {
    /// Its status key (`404`, `4XX`); `None` for `default`.
    key: Option<String>,
    pos: Pos,
    /// The status the client gets.
    code: u64,
    /// Its `method.response.header.X` values.
    headers: Vec<Entry>,
    /// Its `responseTemplates`, when it has some that are not empty.
    template: Option<Node>,
}

/// Whether the templates of `t` are keyed by a JSON media type (`application/json`, `…+json`).
fn json_keyed(t: &Node) -> bool {
    t.entries().iter().all(|e| {
        let media = e
            .key
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        media == "application/json" || media.ends_with("+json")
    })
}

fn selection_class(pattern: &str) -> Option<String> {
    let p = pattern.trim_start_matches('^').trim_end_matches('$');
    if p.len() == 3 && p.bytes().all(|b| b.is_ascii_digit()) {
        return Some(p.to_string());
    }
    for tail in ["\\d{2}", "\\d\\d", "[0-9]{2}", "[0-9][0-9]", ".."] {
        if let Some(first) = p.strip_suffix(tail) {
            if first.len() == 1 && first.bytes().all(|b| (b'1'..=b'5').contains(&b)) {
                return Some(format!("{first}XX"));
            }
        }
    }
    None
}

/// `method.response.header.X: integration.response.header.X`: the upstream's header passes
/// through as it is, which is what the gateway does anyway.
fn kind_is_passthrough(name: &str, value: &str) -> bool {
    value
        .strip_prefix("integration.response.header.")
        .is_some_and(|h| h.eq_ignore_ascii_case(name))
}

/// Headers as (lower-case name, value), to compare them wherever they were written.
fn header_text(headers: &[Entry]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            let value = h.value.as_str().unwrap_or_default().to_string();
            (h.key.to_ascii_lowercase(), value)
        })
        .collect()
}

fn has_expressions(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains("{{"),
        serde_json::Value::Array(items) => items.iter().any(has_expressions),
        serde_json::Value::Object(map) => map.values().any(has_expressions),
        _ => false,
    }
}

/// A JSON value as a tree whose nodes all stand at `pos`.
fn json_node(v: &serde_json::Value, pos: Pos) -> Node {
    use serde_json::Value as J;
    let value = match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => Value::Number(n.clone()),
        J::String(s) => Value::String(s.clone()),
        J::Array(items) => Value::Array(items.iter().map(|i| json_node(i, pos)).collect()),
        J::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Entry {
                    key: k.clone(),
                    key_pos: pos,
                    value: json_node(v, pos),
                })
                .collect(),
        ),
    };
    Node::new(value, pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_patterns() {
        assert_eq!(selection_class("2\\d{2}").as_deref(), Some("2XX"));
        assert_eq!(selection_class("404").as_deref(), Some("404"));
        assert_eq!(selection_class("4.*"), None);
        assert!(selection_matches("2\\d{2}", "200"));
        assert!(!selection_matches("2\\d{2}", "500"));
    }

    #[test]
    fn lambda_uris() {
        assert_eq!(
            lambda_function("arn:aws:apigateway:us-west-2:lambda:path/2015-03-31/functions/arn:aws:lambda:us-west-2:0:function:f/invocations"),
            Some("arn:aws:lambda:us-west-2:0:function:f")
        );
        assert_eq!(lambda_function("${authorizer_lambda_invocation_arn}"), None);
        assert_eq!(
            lambda_function("arn:aws:apigateway:us-east-1:kinesis:action/GetRecords"),
            None
        );
    }
}
