//! `transform`: request and response edits, and the templates they are written in.
//!
//! A template is literal text with `{{ name | filter | filter("argument") }}` expressions. It is
//! parsed here, when the gateway is generated; the generated crate holds the parsed parts as
//! data, so no template text is read at run time, and a template error is a `gwgen check`
//! diagnostic at its place in the spec.
//!
//! Names (AWS's `$context`, `$stageVariables` and HTTP API `$request` spellings are aliases):
//!
//! | name | value |
//! |---|---|
//! | `request.path.NAME` | the path parameter, decoded |
//! | `request.query.NAME` | the query parameter, decoded (the last, if sent more than once) |
//! | `request.header.NAME` | the request header (copies joined with `, `) |
//! | `context.requestId`, `context.stage`, `context.httpMethod`, `context.resourcePath`, `context.path` | the request's |
//! | `context.identity.sourceIp`, `context.identity.apiKeyId`, `context.identity.usagePlan` | the caller's |
//! | `context.authorizer.claims.NAME`, `context.authorizer.scopes`, `context.authorizer.principalId` | the verified JWT's |
//! | `context.authorizer.context.NAME` (also `context.authorizer.NAME`) | a custom authorizer's `context` |
//! | `stageVariables.NAME` | the stage's variable |
//! | `request.body`, `request.body./json/pointer` | the request's JSON body, or a value in it |
//! | `response.body`, `response.body./json/pointer` | the answer's JSON body (response body mappings) |

use std::collections::BTreeMap;

use serde::Deserialize;

/// Where a template's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Source {
    /// `request.path.NAME`.
    Path(String),
    /// `request.query.NAME`.
    Query(String),
    /// `request.header.NAME` (lowercase).
    Header(String),
    /// `context.requestId`.
    RequestId,
    /// `context.stage`.
    Stage,
    /// `context.httpMethod`.
    HttpMethod,
    /// `context.resourcePath`: the route's path template.
    ResourcePath,
    /// `context.path`: the request's path.
    RequestPath,
    /// `context.identity.sourceIp`.
    SourceIp,
    /// `context.identity.apiKeyId`: the API key's name (never the key).
    ApiKeyId,
    /// `context.identity.usagePlan`.
    UsagePlan,
    /// `context.authorizer.claims.NAME`.
    Claim(String),
    /// `context.authorizer.scopes`: the token's scopes, space-separated.
    Scopes,
    /// `context.authorizer.principalId`: a custom authorizer's, else the token's `sub`.
    PrincipalId,
    /// `context.authorizer.context.NAME`.
    AuthorizerContext(String),
    /// `context.identity.clientCert.FIELD` (or `context.authentication.clientCert.FIELD`): a
    /// field of the verified client certificate.
    ClientCert(String),
    /// `stageVariables.NAME`.
    StageVariable(String),
    /// `request.body` (`""`) or `request.body./json/pointer`: the request's JSON body.
    RequestBody(String),
    /// `response.body` or `response.body./json/pointer`: the answer's JSON body (response body
    /// mappings only).
    ResponseBody(String),
}

/// What a value goes through, in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Filter {
    /// `default("x")`: `x` when the value is missing or empty.
    Default(String),
    /// `json`: the value as JSON text (a string gains quotes and escapes).
    Json,
    /// `base64`: standard Base64 of the value's text, padded.
    Base64,
    /// `url-encode` (or `urlencode`): every byte but unreserved characters percent-encoded.
    UrlEncode,
    /// `lower`.
    Lower,
    /// `upper`.
    Upper,
    /// `text`: the value as text, a missing one empty (as a Velocity reference inside a JSON
    /// string renders), so a string that is one expression stays a string.
    Text,
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Part {
    /// Text as written.
    Lit(String),
    /// A value, through its filters.
    Value(Source, Vec<Filter>),
}

/// Why a template is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset in the template text.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

fn error<T>(offset: usize, message: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError {
        offset,
        message: message.into(),
    })
}

/// What `context.identity.clientCert.` (and a cache key's `client_cert.`) is followed by.
pub const CLIENT_CERT_FIELDS: &[&str] = &[
    "clientCertPem",
    "subjectDN",
    "issuerDN",
    "serialNumber",
    "validity.notBefore",
    "validity.notAfter",
    "subjectAlternativeNames",
    "fingerprint",
];

/// Every name a template may use (with `NAME` for the variable part), for messages.
pub const NAMES: &[&str] = &[
    "request.path.NAME",
    "request.query.NAME",
    "request.header.NAME",
    "context.requestId",
    "context.stage",
    "context.httpMethod",
    "context.resourcePath",
    "context.path",
    "context.identity.sourceIp",
    "context.identity.apiKeyId",
    "context.identity.usagePlan",
    "context.authorizer.claims.NAME",
    "context.authorizer.scopes",
    "context.authorizer.principalId",
    "context.authorizer.context.NAME",
    "context.identity.clientCert.FIELD",
    "stageVariables.NAME",
    "request.body",
    "request.body./json/pointer",
    "response.body",
    "response.body./json/pointer",
];

/// Parses a template.
pub fn parse(text: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = 0;
    while let Some(open) = text[rest..].find("{{").map(|o| rest + o) {
        if open > rest {
            parts.push(Part::Lit(text[rest..open].to_string()));
        }
        let Some(close) = find_close(text, open + 2) else {
            return error(open, "`{{` is not closed by `}}`");
        };
        parts.push(expression(text, open + 2, close)?);
        rest = close + 2;
    }
    if rest < text.len() {
        parts.push(Part::Lit(text[rest..].to_string()));
    }
    Ok(parts)
}

/// The `}}` that closes an expression starting at `from`, skipping quoted arguments.
fn find_close(text: &str, from: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = from;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match (quote, b[i]) {
            (Some(_), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (None, c @ (b'"' | b'\'')) => quote = Some(c),
            (None, b'}') if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn expression(text: &str, start: usize, end: usize) -> Result<Part, TemplateError> {
    let b = text.as_bytes();
    let mut i = start;
    let skip_ws = |i: &mut usize| {
        while *i < end && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    skip_ws(&mut i);
    let name_start = i;
    while i < end && !b[i].is_ascii_whitespace() && b[i] != b'|' {
        i += 1;
    }
    if i == name_start {
        return error(start, "the expression names no value");
    }
    let source = source(&text[name_start..i]).map_err(|mut e| {
        e.offset = name_start;
        e
    })?;
    let mut filters = Vec::new();
    loop {
        skip_ws(&mut i);
        if i >= end {
            break;
        }
        if b[i] != b'|' {
            return error(i, "expected `|` and a filter, or `}}`");
        }
        i += 1;
        skip_ws(&mut i);
        let filter_start = i;
        while i < end && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b'_') {
            i += 1;
        }
        let name = &text[filter_start..i];
        skip_ws(&mut i);
        let argument = if i < end && b[i] == b'(' {
            i += 1;
            skip_ws(&mut i);
            let (value, after) = string_literal(text, i, end)?;
            i = after;
            skip_ws(&mut i);
            if i >= end || b[i] != b')' {
                return error(i, "expected `)` after the filter's argument");
            }
            i += 1;
            Some(value)
        } else {
            None
        };
        filters.push(match (name, argument) {
            ("default", Some(v)) => Filter::Default(v),
            ("default", None) => return error(filter_start, "`default` takes a value: `default(\"x\")`"),
            ("json", None) => Filter::Json,
            ("base64", None) => Filter::Base64,
            ("url-encode" | "urlencode", None) => Filter::UrlEncode,
            ("lower", None) => Filter::Lower,
            ("upper", None) => Filter::Upper,
            ("text", None) => Filter::Text,
            ("json" | "base64" | "url-encode" | "urlencode" | "lower" | "upper" | "text", Some(_)) => {
                return error(filter_start, format!("the filter `{name}` takes no argument"))
            }
            ("", _) => return error(filter_start, "expected a filter name after `|`"),
            _ => {
                return error(
                    filter_start,
                    format!("unknown filter `{name}` (known: default, json, base64, url-encode, lower, upper, text)"),
                )
            }
        });
    }
    Ok(Part::Value(source, filters))
}

/// A quoted string (`"…"` or `'…'`, `\` escaping the next character) at `i`: its value and
/// the offset after it.
fn string_literal(text: &str, i: usize, end: usize) -> Result<(String, usize), TemplateError> {
    let b = text.as_bytes();
    let Some(&quote @ (b'"' | b'\'')) = b.get(i).filter(|_| i < end) else {
        return error(i, "expected a quoted string");
    };
    let mut value = String::new();
    let mut chars = text[i + 1..end].char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, c)) => value.push(c),
                None => break,
            },
            c if c as u32 == u32::from(quote) => return Ok((value, i + 1 + at + 1)),
            c => value.push(c),
        }
    }
    error(i, "the quoted string is not closed")
}

/// The source a name reads.
fn source(name: &str) -> Result<Source, TemplateError> {
    // AWS spellings: `$context.…`, `$stageVariables.…`, and HTTP API mappings' `$request.…`.
    let name = name.strip_prefix('$').unwrap_or(name);
    let (head, rest) = name.split_once('.').unwrap_or((name, ""));
    let named = |what: &str, value: &str| -> Result<String, TemplateError> {
        if value.is_empty() {
            error(0, format!("`{what}` needs a name after it: `{what}.NAME`"))
        } else {
            Ok(value.to_string())
        }
    };
    let unknown = || {
        // Each known name, its `NAME` filled from what was written, is a candidate.
        let segments: Vec<&str> = name.split('.').collect();
        let candidates: Vec<String> = NAMES
            .iter()
            .map(|n| match n.strip_suffix("NAME") {
                Some(prefix) => {
                    let fixed = prefix.matches('.').count();
                    format!(
                        "{prefix}{}",
                        segments
                            .get(fixed..)
                            .map(|s| s.join("."))
                            .unwrap_or_default()
                    )
                }
                None => n.to_string(),
            })
            .collect();
        match crate::diag::did_you_mean(name, candidates.iter().map(String::as_str)) {
            Some(hint) => error(0, format!("unknown name `{name}`: {hint}")),
            None => error(
                0,
                format!("unknown name `{name}` (known: {})", NAMES.join(", ")),
            ),
        }
    };
    match head {
        "request" => {
            let (kind, value) = rest.split_once('.').unwrap_or((rest, ""));
            match kind {
                "path" => Ok(Source::Path(named("request.path", value)?)),
                "query" | "querystring" => Ok(Source::Query(named("request.query", value)?)),
                "header" | "headers" => Ok(Source::Header(
                    named("request.header", value)?.to_ascii_lowercase(),
                )),
                _ if kind == "body" => Ok(Source::RequestBody(body_pointer("request", rest)?)),
                _ => unknown(),
            }
        }
        "response" if rest.split('.').next() == Some("body") => {
            Ok(Source::ResponseBody(body_pointer("response", rest)?))
        }
        "context" => match rest {
            "requestId" => Ok(Source::RequestId),
            "stage" => Ok(Source::Stage),
            "httpMethod" => Ok(Source::HttpMethod),
            "resourcePath" => Ok(Source::ResourcePath),
            "path" => Ok(Source::RequestPath),
            "identity.sourceIp" => Ok(Source::SourceIp),
            "identity.apiKeyId" => Ok(Source::ApiKeyId),
            "identity.usagePlan" => Ok(Source::UsagePlan),
            "authorizer.scopes" => Ok(Source::Scopes),
            "authorizer.principalId" => Ok(Source::PrincipalId),
            _ if rest.starts_with("identity.clientCert")
                || rest.starts_with("authentication.clientCert") =>
            {
                let field = rest.split_once("clientCert.").map_or("", |(_, f)| f);
                if CLIENT_CERT_FIELDS.contains(&field) {
                    Ok(Source::ClientCert(field.to_string()))
                } else {
                    error(
                        0,
                        format!(
                            "`context.{rest}` is not a field of the client certificate (known: {})",
                            CLIENT_CERT_FIELDS.join(", ")
                        ),
                    )
                }
            }
            _ => {
                if let Some(claim) = rest.strip_prefix("authorizer.claims.") {
                    Ok(Source::Claim(named("context.authorizer.claims", claim)?))
                } else if let Some(key) = rest.strip_prefix("authorizer.context.") {
                    Ok(Source::AuthorizerContext(named(
                        "context.authorizer.context",
                        key,
                    )?))
                } else if let Some(key) = rest.strip_prefix("authorizer.").filter(|k| {
                    !k.is_empty() && !k.contains('.') && *k != "claims" && *k != "context"
                }) {
                    // AWS puts a Lambda authorizer's context straight under `$context.authorizer`.
                    Ok(Source::AuthorizerContext(key.to_string()))
                } else {
                    unknown()
                }
            }
        },
        "stageVariables" => Ok(Source::StageVariable(named("stageVariables", rest)?)),
        _ => unknown(),
    }
}

/// The JSON pointer of `body` or `body./a/b` (after `request.` or `response.`): `""` for the
/// whole body.
fn body_pointer(side: &str, rest: &str) -> Result<String, TemplateError> {
    let pointer = rest.strip_prefix("body").unwrap_or(rest);
    let pointer = pointer.strip_prefix('.').unwrap_or(pointer);
    if !is_pointer(pointer) {
        return error(
            0,
            format!("`{side}.{rest}`: after `{side}.body.` comes a JSON pointer (`/items/0/sku`)"),
        );
    }
    Ok(pointer.to_string())
}

/// Whether `p` is a JSON pointer (RFC 6901): empty, or `/`-separated tokens whose `~` escapes
/// are `~0` or `~1`.
pub fn is_pointer(p: &str) -> bool {
    (p.is_empty() || p.starts_with('/'))
        && p.split('~')
            .skip(1)
            .all(|after| after.starts_with('0') || after.starts_with('1'))
}

/// A JSON body as a template: strings are templates; a string that is one expression and
/// nothing else inserts its value as JSON (a number stays a number, an object an object).
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(serde_json::Number),
    /// A string: the template's text.
    Text(Vec<Part>),
    /// `"{{ expr }}"`: the value itself.
    Value(Source, Vec<Filter>),
    /// An array.
    Array(Vec<JsonTemplate>),
    /// An object, members in order.
    Object(Vec<(String, JsonTemplate)>),
}

/// Compiles a JSON template; an error carries the JSON pointer of the string that has it.
pub fn json_template(value: &serde_json::Value) -> Result<JsonTemplate, (String, TemplateError)> {
    fn walk(
        v: &serde_json::Value,
        at: &mut String,
    ) -> Result<JsonTemplate, (String, TemplateError)> {
        use serde_json::Value as V;
        Ok(match v {
            V::Null => JsonTemplate::Null,
            V::Bool(b) => JsonTemplate::Bool(*b),
            V::Number(n) => JsonTemplate::Number(n.clone()),
            V::String(text) => {
                let parts = parse(text).map_err(|e| (at.clone(), e))?;
                match <[Part; 1]>::try_from(parts) {
                    Ok([Part::Value(source, filters)]) => JsonTemplate::Value(source, filters),
                    Ok([lit]) => JsonTemplate::Text(vec![lit]),
                    Err(parts) => JsonTemplate::Text(parts),
                }
            }
            V::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = at.len();
                    at.push_str(&format!("/{i}"));
                    out.push(walk(item, at)?);
                    at.truncate(len);
                }
                JsonTemplate::Array(out)
            }
            V::Object(members) => {
                let mut out = Vec::with_capacity(members.len());
                for (k, item) in members {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    out.push((k.clone(), walk(item, at)?));
                    at.truncate(len);
                }
                JsonTemplate::Object(out)
            }
        })
    }
    walk(value, &mut String::new())
}

impl JsonTemplate {
    /// Every value the template reads.
    pub fn sources(&self, out: &mut Vec<Source>) {
        match self {
            JsonTemplate::Text(parts) => out.extend(parts.iter().filter_map(|p| match p {
                Part::Value(s, _) => Some(s.clone()),
                Part::Lit(_) => None,
            })),
            JsonTemplate::Value(s, _) => out.push(s.clone()),
            JsonTemplate::Array(items) => items.iter().for_each(|i| i.sources(out)),
            JsonTemplate::Object(members) => members.iter().for_each(|(_, m)| m.sources(out)),
            _ => {}
        }
    }
}

/// `transform.request.body` or `transform.response.body`: a new body from a template, or edits
/// of the JSON body by pointer.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyMapping {
    /// The new body (a JSON template).
    pub template: Option<serde_json::Value>,
    /// Pointer → JSON template: set (members and array elements are created or replaced; `-`
    /// appends to an array).
    #[serde(default)]
    pub set: BTreeMap<String, serde_json::Value>,
    /// Pointers removed.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `transform`, as written.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Transform {
    /// What the upstream gets.
    #[serde(default)]
    pub request: RequestTransform,
    /// What the client gets.
    #[serde(default)]
    pub response: ResponseTransform,
}

/// `transform.request`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct RequestTransform {
    /// Header edits.
    #[serde(default)]
    pub headers: Edits,
    /// Query parameter edits.
    #[serde(default)]
    pub query: Edits,
    /// The upstream request's path, in place of the integration URL's path.
    pub path: Option<String>,
    /// Forward the verified identity as `X-Gateway-*` headers.
    #[serde(default)]
    pub identity: bool,
    /// The body mapping.
    pub body: Option<BodyMapping>,
}

/// `transform.response`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct ResponseTransform {
    /// Header edits.
    #[serde(default)]
    pub headers: Edits,
    /// Upstream status (`404`, or a class `4XX`) → the status the client gets.
    #[serde(default)]
    pub status: BTreeMap<String, u16>,
    /// The body mapping.
    pub body: Option<BodyMapping>,
}

/// `set` (replace), `add` (append), `remove`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Edits {
    /// Name → template: every copy the request had is replaced by this one.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Name → template: appended to what is there.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Names removed.
    #[serde(default)]
    pub remove: Vec<String>,
}

impl Transform {
    /// The typed form of a `transform` value; `None` when it does not have the documented shape
    /// (the extension's schema check reports that).
    pub fn from_value(value: &serde_json::Value) -> Option<Transform> {
        serde_json::from_value(value.clone()).ok()
    }
}

/// A status-mapping key: `404` or a class such as `5XX`. `None` when it is neither.
pub fn status_key(key: &str) -> Option<(u16, bool)> {
    let b = key.as_bytes();
    if b.len() != 3 || !(b'1'..=b'5').contains(&b[0]) {
        return None;
    }
    if b[1..].eq_ignore_ascii_case(b"XX") {
        return Some((u16::from(b[0] - b'0'), true));
    }
    key.parse::<u16>()
        .ok()
        .filter(|s| (100..=599).contains(s))
        .map(|s| (s, false))
}

/// Header names the gateway writes itself (framing, the connection, the upstream's host) or
/// that only the client's connection carries: a transform may not set, add or remove them.
pub const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "host",
];

/// Whether `name` is an HTTP field name (RFC 9110 §5.1: a token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_names_and_filters() {
        let parts =
            parse("Bearer {{ context.authorizer.claims.sub | default(\"anon\") | upper }}!")
                .unwrap();
        assert_eq!(
            parts,
            vec![
                Part::Lit("Bearer ".into()),
                Part::Value(
                    Source::Claim("sub".into()),
                    vec![Filter::Default("anon".into()), Filter::Upper]
                ),
                Part::Lit("!".into()),
            ]
        );
        // The certificate's fields, in REST's and HTTP API's spellings.
        for text in [
            "{{ context.identity.clientCert.validity.notAfter }}",
            "{{ $context.authentication.clientCert.validity.notAfter }}",
        ] {
            assert_eq!(
                parse(text).unwrap(),
                vec![Part::Value(
                    Source::ClientCert("validity.notAfter".into()),
                    vec![]
                )],
                "{text}"
            );
        }
        assert_eq!(
            parse("{{$context.requestId}}{{ $request.querystring.q|url-encode }}").unwrap(),
            vec![
                Part::Value(Source::RequestId, vec![]),
                Part::Value(Source::Query("q".into()), vec![Filter::UrlEncode]),
            ]
        );
        assert_eq!(
            parse("{{ context.authorizer.tenant }}").unwrap(),
            vec![Part::Value(
                Source::AuthorizerContext("tenant".into()),
                vec![]
            )]
        );
        assert_eq!(
            parse("{{ request.body./items/0 }}{{ response.body }}").unwrap(),
            vec![
                Part::Value(Source::RequestBody("/items/0".into()), vec![]),
                Part::Value(Source::ResponseBody(String::new()), vec![]),
            ]
        );
        assert_eq!(
            parse("no template } here }}").unwrap(),
            vec![Part::Lit("no template } here }}".into())]
        );
        // A quoted `}}` stays inside the argument.
        assert_eq!(
            parse("{{ request.header.X-A | default('}}') }}").unwrap(),
            vec![Part::Value(
                Source::Header("x-a".into()),
                vec![Filter::Default("}}".into())]
            )]
        );
    }

    #[test]
    fn refuses_with_the_offset_of_the_mistake() {
        for (text, offset, needle) in [
            ("a {{ request.path.id", 2, "not closed"),
            ("{{ }}", 2, "names no value"),
            ("xx{{ context.nope }}", 5, "unknown name"),
            ("{{ request.path.id | shout }}", 21, "unknown filter"),
            ("{{ request.path.id | default }}", 21, "takes a value"),
            (
                "{{ request.path.id | upper(\"x\") }}",
                21,
                "takes no argument",
            ),
            ("{{ request.path.id upper }}", 19, "expected `|`"),
            ("{{ request.path. }}", 3, "needs a name"),
            ("{{ request.body.a }}", 3, "JSON pointer"),
            ("{{ request.body./a~2 }}", 3, "JSON pointer"),
            (
                "{{ context.identity.clientCert.subject }}",
                3,
                "not a field of the client certificate",
            ),
            ("{{ request.path.id | default(\"x }}", 0, "not closed"),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!(e.offset, offset, "{text}: {e:?}");
            assert!(e.message.contains(needle), "{text}: {e:?}");
        }
    }

    #[test]
    fn status_keys() {
        assert_eq!(status_key("404"), Some((404, false)));
        assert_eq!(status_key("5XX"), Some((5, true)));
        assert_eq!(status_key("5xx"), Some((5, true)));
        assert_eq!(status_key("600"), None);
        assert_eq!(status_key("4X0"), None);
        assert_eq!(status_key("099"), None);
    }
}
