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
//! | `response.header.NAME` | the answer's header (response transforms) |

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
    /// `response.header.NAME` (lowercase): the answer's header, copies joined with `, `
    /// (response transforms only).
    ResponseHeader(String),
    /// `NAME` or `NAME./json/pointer` inside `{% for NAME in … %}` of a text template: the
    /// element of the loop at this depth (0: the outermost).
    Item(usize, String),
    /// `loop.index`, `loop.index0`, `loop.first`, `loop.last`: where the innermost loop is.
    Loop(usize, LoopField),
}

/// What `loop.…` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoopField {
    /// `loop.index`: 1 for the first element.
    Index,
    /// `loop.index0`: 0 for the first element.
    Index0,
    /// `loop.first`: `true` on the first element.
    First,
    /// `loop.last`: `true` on the last element.
    Last,
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
    "response.header.NAME",
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
        parts.push(expression(text, open + 2, close, &[])?);
        rest = close + 2;
    }
    if rest < text.len() {
        parts.push(Part::Lit(text[rest..].to_string()));
    }
    Ok(parts)
}

/// The `}}` that closes an expression starting at `from`, skipping quoted arguments.
fn find_close(text: &str, from: usize) -> Option<usize> {
    find_close_of(text, from, b'}')
}

/// The `X}` (`}}` or `%}`) that closes what starts at `from`, skipping quoted strings.
fn find_close_of(text: &str, from: usize, first: u8) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = from;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match (quote, b[i]) {
            (Some(_), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (None, c @ (b'"' | b'\'')) => quote = Some(c),
            (None, c) if c == first && b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn expression(
    text: &str,
    start: usize,
    end: usize,
    locals: &[String],
) -> Result<Part, TemplateError> {
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
    let source = scoped_source(&text[name_start..i], locals).map_err(|mut e| {
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
        "response" if matches!(rest.split('.').next(), Some("header" | "headers")) => {
            let name = rest.split_once('.').map_or("", |(_, n)| n);
            Ok(Source::ResponseHeader(
                named("response.header", name)?.to_ascii_lowercase(),
            ))
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

/// The source `name` reads where the loop variables `locals` are bound (outermost first).
fn scoped_source(name: &str, locals: &[String]) -> Result<Source, TemplateError> {
    let (head, rest) = name.split_once('.').unwrap_or((name, ""));
    if head == "loop" {
        let Some(depth) = locals.len().checked_sub(1) else {
            return error(0, "`loop` is read inside `{% for %}` only");
        };
        let field = match rest {
            "index" => LoopField::Index,
            "index0" => LoopField::Index0,
            "first" => LoopField::First,
            "last" => LoopField::Last,
            _ => {
                return error(
                    0,
                    format!("`loop.{rest}` is not known (known: loop.index, loop.index0, loop.first, loop.last)"),
                )
            }
        };
        return Ok(Source::Loop(depth, field));
    }
    if let Some(depth) = locals.iter().rposition(|l| l == head) {
        if !(rest.is_empty() || rest.starts_with('/') && is_pointer(rest)) {
            return error(
                0,
                format!("`{name}`: after `{head}.` comes a JSON pointer (`{head}./id`)"),
            );
        }
        return Ok(Source::Item(depth, rest.to_string()));
    }
    source(name)
}

/// A text body template (`body.text`), parsed: JSON text with `{{ expressions }}`, and blocks
/// `{% if COND %}…{% elif COND %}…{% else %}…{% end %}` and `{% for NAME in EXPR %}…{% end %}`.
///
/// Each value is escaped for where it lands in the JSON text, which the literal text around it
/// shows: inside a string, its text is escaped as string content (a missing value is empty);
/// elsewhere it is the value as JSON (a missing value is `null`). So no value can end a string
/// or add a member. Every branch of a block must end where it began (inside a string or not),
/// so where each value lands is known before any request comes.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Text as written.
    Lit(String),
    /// A value through its filters; `true`: it lands inside a JSON string.
    Value(Source, Vec<Filter>, bool),
    /// The first branch whose condition holds, else the last list.
    If(Vec<(Cond, Vec<Node>)>, Vec<Node>),
    /// The body once for each element of an array (or each member value of an object).
    For(Source, Vec<Node>),
}

/// A condition of `{% if %}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// The operand is present and not `false` or `null`.
    Is(Operand),
    /// `not`.
    Not(Box<Cond>),
    /// `and`.
    All(Vec<Cond>),
    /// `or`.
    Any(Vec<Cond>),
    /// `==` (`true`) or `!=` (`false`): the operands' text compared (a missing value is
    /// equal to `null` and to `""`).
    Eq(Operand, Operand, bool),
}

/// A side of a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A value.
    Value(Source),
    /// A quoted string or a number, as text.
    Text(String),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// Where the text written so far ends in the JSON: outside a string, inside one, or right
/// after a `\` inside one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    Out,
    In,
    Escape,
}

impl Lex {
    fn after(mut self, text: &str) -> Lex {
        for c in text.chars() {
            self = match (self, c) {
                (Lex::Out, '"') => Lex::In,
                (Lex::Out, _) => Lex::Out,
                (Lex::In, '"') => Lex::Out,
                (Lex::In, '\\') => Lex::Escape,
                (Lex::In | Lex::Escape, _) => Lex::In,
            };
        }
        self
    }
}

/// Parses a text body template.
pub fn text_template(text: &str) -> Result<Vec<Node>, TemplateError> {
    let mut p = TextParser {
        text,
        at: 0,
        locals: Vec::new(),
        lex: Lex::Out,
    };
    let (nodes, end) = p.block()?;
    match end {
        None => Ok(nodes),
        Some((offset, tag)) => error(offset, format!("`{{% {tag} %}}` closes no block")),
    }
}

/// Where a block ended: the tag's offset and its words (`else`, `elif COND`, `end`).
type BlockEnd = (usize, String);

struct TextParser<'t> {
    text: &'t str,
    at: usize,
    locals: Vec<String>,
    lex: Lex,
}

impl TextParser<'_> {
    /// Nodes up to the end of the text, or to a tag that ends the block (`elif`, `else`,
    /// `end`): returned with its offset, the tag's words.
    fn block(&mut self) -> Result<(Vec<Node>, Option<BlockEnd>), TemplateError> {
        let text = self.text;
        let mut nodes = Vec::new();
        loop {
            let next = [text[self.at..].find("{{"), text[self.at..].find("{%")]
                .into_iter()
                .flatten()
                .min()
                .map(|o| self.at + o);
            let Some(open) = next else {
                self.lit(&mut nodes, text.len());
                return Ok((nodes, None));
            };
            self.lit(&mut nodes, open);
            if text[open..].starts_with("{{") {
                let Some(close) = find_close(text, open + 2) else {
                    return error(open, "`{{` is not closed by `}}`");
                };
                let Part::Value(source, filters) = expression(text, open + 2, close, &self.locals)?
                else {
                    return error(open, "the expression names no value");
                };
                match self.lex {
                    Lex::Escape => {
                        return error(
                            open,
                            "a value right after `\\` in a JSON string would be read as an escape",
                        )
                    }
                    lex => nodes.push(Node::Value(source, filters, lex == Lex::In)),
                }
                self.at = close + 2;
                continue;
            }
            let Some(close) = find_close_of(text, open + 2, b'%') else {
                return error(open, "`{%` is not closed by `%}`");
            };
            let inner = text[open + 2..close].trim();
            let inner_at =
                open + 2 + (text[open + 2..close].len() - text[open + 2..close].trim_start().len());
            self.at = close + 2;
            let (word, rest) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
            let rest_at = inner_at
                + word.len()
                + (rest.len() - rest.trim_start().len()).min(rest.len())
                + usize::from(!rest.is_empty());
            let rest = rest.trim();
            match word {
                "if" => nodes.push(self.if_block(open, rest, rest_at)?),
                "for" => nodes.push(self.for_block(open, rest, rest_at)?),
                "elif" | "else" | "end" => return Ok((nodes, Some((open, inner.to_string())))),
                _ => {
                    return error(
                        open,
                        format!("unknown block `{{% {word} %}}` (known: if, elif, else, end, for)"),
                    )
                }
            }
        }
    }

    fn lit(&mut self, nodes: &mut Vec<Node>, to: usize) {
        if to > self.at {
            let l = &self.text[self.at..to];
            self.lex = self.lex.after(l);
            nodes.push(Node::Lit(l.to_string()));
        }
        self.at = to;
    }

    fn if_block(&mut self, open: usize, cond: &str, cond_at: usize) -> Result<Node, TemplateError> {
        let start = self.lex;
        let mut branches = Vec::new();
        let mut cond = self.cond(cond, cond_at)?;
        let mut end_lex: Option<Lex> = None;
        let mut same = |lex: Lex, at: usize| -> Result<(), TemplateError> {
            match end_lex {
                Some(e) if e != lex => error(at, "the branches of this `{% if %}` end in different places of the JSON text (one inside a string, one outside)"),
                _ => {
                    end_lex = Some(lex);
                    Ok(())
                }
            }
        };
        loop {
            self.lex = start;
            let (nodes, end) = self.block()?;
            let Some((at, tag)) = end else {
                return error(open, "this `{% if %}` is not closed by `{% end %}`");
            };
            same(self.lex, open)?;
            branches.push((cond, nodes));
            let (word, rest) = tag.split_once(char::is_whitespace).unwrap_or((&tag, ""));
            match word {
                "elif" => cond = self.cond(rest.trim(), at + 2)?,
                "else" if rest.trim().is_empty() => {
                    self.lex = start;
                    let (otherwise, end) = self.block()?;
                    same(self.lex, open)?;
                    match end {
                        Some((_, t)) if t == "end" => return Ok(Node::If(branches, otherwise)),
                        Some((at, t)) => {
                            return error(
                                at,
                                format!(
                                    "`{{% {t} %}}` after `{{% else %}}`: expected `{{% end %}}`"
                                ),
                            )
                        }
                        None => return error(open, "this `{% if %}` is not closed by `{% end %}`"),
                    }
                }
                "end" if rest.trim().is_empty() => {
                    // No `else`: the text goes on as it was before the block.
                    same(start, open)?;
                    return Ok(Node::If(branches, Vec::new()));
                }
                _ => return error(at, format!("`{{% {tag} %}}` is not understood")),
            }
        }
    }

    fn for_block(
        &mut self,
        open: usize,
        head: &str,
        head_at: usize,
    ) -> Result<Node, TemplateError> {
        let mut words = head.split_whitespace();
        let (Some(name), Some("in"), Some(list), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return error(head_at, "expected `{% for NAME in VALUE %}`");
        };
        let reserved = ["loop", "request", "response", "context", "stageVariables"];
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            || name.as_bytes()[0].is_ascii_digit()
            || reserved.contains(&name)
        {
            return error(head_at, format!("`{name}` cannot name a loop's element (a name of letters, digits and `_`, not one of {})", reserved.join(", ")));
        }
        let list_at = head_at + head.find(list).unwrap_or(0);
        let source = scoped_source(list, &self.locals).map_err(|mut e| {
            e.offset = list_at;
            e
        })?;
        let start = self.lex;
        self.locals.push(name.to_string());
        let (body, end) = self.block()?;
        self.locals.pop();
        match end {
            Some((_, t)) if t == "end" => {}
            Some((at, t)) => {
                return error(
                    at,
                    format!("`{{% {t} %}}` inside `{{% for %}}`: expected `{{% end %}}`"),
                )
            }
            None => return error(open, "this `{% for %}` is not closed by `{% end %}`"),
        }
        if self.lex != start {
            return error(open, "the body of this `{% for %}` does not end where it began in the JSON text (it opens or closes a string)");
        }
        Ok(Node::For(source, body))
    }

    /// A condition, `text` starting at offset `at` of the template.
    fn cond(&self, text: &str, at: usize) -> Result<Cond, TemplateError> {
        let tokens = cond_tokens(text, at)?;
        let mut i = 0;
        let c = self.or(&tokens, &mut i, at)?;
        match tokens.get(i) {
            None => Ok(c),
            Some((o, _)) => error(*o, "expected `and`, `or` or the end of the condition"),
        }
    }

    fn or(&self, t: &[(usize, Tok)], i: &mut usize, at: usize) -> Result<Cond, TemplateError> {
        let mut all = vec![self.and(t, i, at)?];
        while matches!(t.get(*i), Some((_, Tok::Word(w))) if w == "or") {
            *i += 1;
            all.push(self.and(t, i, at)?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Cond::Any(all)
        })
    }

    fn and(&self, t: &[(usize, Tok)], i: &mut usize, at: usize) -> Result<Cond, TemplateError> {
        let mut all = vec![self.unary(t, i, at)?];
        while matches!(t.get(*i), Some((_, Tok::Word(w))) if w == "and") {
            *i += 1;
            all.push(self.unary(t, i, at)?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Cond::All(all)
        })
    }

    fn unary(&self, t: &[(usize, Tok)], i: &mut usize, at: usize) -> Result<Cond, TemplateError> {
        match t.get(*i) {
            Some((_, Tok::Word(w))) if w == "not" => {
                *i += 1;
                Ok(Cond::Not(Box::new(self.unary(t, i, at)?)))
            }
            Some((o, Tok::Open)) => {
                *i += 1;
                let c = self.or(t, i, at)?;
                match t.get(*i) {
                    Some((_, Tok::Close)) => {
                        *i += 1;
                        Ok(c)
                    }
                    _ => error(*o, "this `(` is not closed"),
                }
            }
            _ => {
                let left = self.operand(t, i, at)?;
                match t.get(*i) {
                    Some((_, Tok::Eq(equal))) => {
                        let equal = *equal;
                        *i += 1;
                        let right = self.operand(t, i, at)?;
                        Ok(Cond::Eq(left, right, equal))
                    }
                    _ => Ok(Cond::Is(left)),
                }
            }
        }
    }

    fn operand(
        &self,
        t: &[(usize, Tok)],
        i: &mut usize,
        at: usize,
    ) -> Result<Operand, TemplateError> {
        let Some((o, tok)) = t.get(*i) else {
            return error(at, "the condition ends where a value was expected");
        };
        *i += 1;
        match tok {
            Tok::Str(s) => Ok(Operand::Text(s.clone())),
            Tok::Word(w) => match w.as_str() {
                "true" => Ok(Operand::Bool(true)),
                "false" => Ok(Operand::Bool(false)),
                "null" => Ok(Operand::Null),
                "and" | "or" | "not" => error(*o, format!("`{w}` where a value was expected")),
                _ if w.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                    if w.parse::<f64>().is_ok_and(f64::is_finite) {
                        Ok(Operand::Text(w.clone()))
                    } else {
                        error(*o, format!("`{w}` is not a number"))
                    }
                }
                _ => scoped_source(w, &self.locals)
                    .map(Operand::Value)
                    .map_err(|mut e| {
                        e.offset = *o;
                        e
                    }),
            },
            _ => error(*o, "expected a value"),
        }
    }
}

/// A token of a condition.
#[derive(Debug)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    /// `==` (`true`) or `!=`.
    Eq(bool),
}

fn cond_tokens(text: &str, at: usize) -> Result<Vec<(usize, Tok)>, TemplateError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            _ if c.is_ascii_whitespace() => i += 1,
            b'(' | b')' => {
                out.push((at + i, if c == b'(' { Tok::Open } else { Tok::Close }));
                i += 1;
            }
            b'=' | b'!' if b.get(i + 1) == Some(&b'=') => {
                out.push((at + i, Tok::Eq(c == b'=')));
                i += 2;
            }
            b'"' | b'\'' => {
                let (value, after) = string_literal(text, i, text.len()).map_err(|mut e| {
                    e.offset += at;
                    e
                })?;
                out.push((at + i, Tok::Str(value)));
                i = after;
            }
            _ => {
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && !b"()=!\"'".contains(&b[i]) {
                    i += 1;
                }
                if i == start {
                    return error(
                        at + i,
                        format!(
                            "`{}` is not understood here",
                            text[i..].chars().next().unwrap_or(' ')
                        ),
                    );
                }
                out.push((at + start, Tok::Word(text[start..i].to_string())));
            }
        }
    }
    Ok(out)
}

impl Node {
    /// The same nodes with every value written as text, wherever it lands.
    pub fn as_text(nodes: Vec<Node>) -> Vec<Node> {
        nodes
            .into_iter()
            .map(|n| match n {
                Node::Value(s, f, _) => Node::Value(s, f, true),
                Node::If(branches, otherwise) => Node::If(
                    branches
                        .into_iter()
                        .map(|(c, n)| (c, Node::as_text(n)))
                        .collect(),
                    Node::as_text(otherwise),
                ),
                Node::For(s, body) => Node::For(s, Node::as_text(body)),
                lit => lit,
            })
            .collect()
    }

    /// Every value the nodes read (loops' lists and conditions' values included).
    pub fn sources(nodes: &[Node], out: &mut Vec<Source>) {
        fn cond(c: &Cond, out: &mut Vec<Source>) {
            let mut operand = |o: &Operand| {
                if let Operand::Value(s) = o {
                    out.push(s.clone());
                }
            };
            match c {
                Cond::Is(o) => operand(o),
                Cond::Eq(a, b, _) => {
                    operand(a);
                    operand(b);
                }
                Cond::Not(c) => cond(c, out),
                Cond::All(cs) | Cond::Any(cs) => cs.iter().for_each(|c| cond(c, out)),
            }
        }
        for n in nodes {
            match n {
                Node::Lit(_) => {}
                Node::Value(s, _, _) => out.push(s.clone()),
                Node::If(branches, otherwise) => {
                    for (c, nodes) in branches {
                        cond(c, out);
                        Node::sources(nodes, out);
                    }
                    Node::sources(otherwise, out);
                }
                Node::For(s, body) => {
                    out.push(s.clone());
                    Node::sources(body, out);
                }
            }
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
    /// The new body as JSON text from a text template, with `{% if %}` and `{% for %}` blocks.
    pub text: Option<String>,
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
    /// Upstream status or class → the edits of such answers, instead of the ones above.
    #[serde(default)]
    pub by_status: BTreeMap<String, StatusCase>,
}

/// `transform.response.by_status.STATUS`: what an answer of that status gets instead of the
/// response transform's own `status`, `headers` and `body`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusCase {
    /// The status the client gets (`None`: the upstream's).
    pub status: Option<u16>,
    /// Header edits.
    #[serde(default)]
    pub headers: Edits,
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
            parse("{{ response.header.X-Total }}").unwrap(),
            vec![Part::Value(
                Source::ResponseHeader("x-total".into()),
                vec![]
            )]
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
    fn text_templates_place_values_and_nest_blocks() {
        let nodes = text_template(
            r#"{"a": [{% for x in response.body./Items %}{"id": "{{ x./id/S }}", "n": {{ loop.index }}}{% if not loop.last %},{% end %}{% end %}]{% if request.query.v == "1" or request.query.w %}, "v": {{ request.query.v }}{% elif context.stage != 'prod' %}, "s": "{{ context.stage }}"{% else %}{% end %}}"#,
        )
        .unwrap();
        let Node::For(list, body) = &nodes[1] else {
            panic!("{nodes:?}")
        };
        assert_eq!(*list, Source::ResponseBody("/Items".into()));
        assert_eq!(
            body[1],
            Node::Value(Source::Item(0, "/id/S".into()), vec![], true)
        );
        assert_eq!(
            body[3],
            Node::Value(Source::Loop(0, LoopField::Index), vec![], false)
        );
        assert_eq!(
            body[5],
            Node::If(
                vec![(
                    Cond::Not(Box::new(Cond::Is(Operand::Value(Source::Loop(
                        0,
                        LoopField::Last
                    ))))),
                    vec![Node::Lit(",".into())]
                )],
                vec![]
            )
        );
        let Node::If(branches, otherwise) = &nodes[3] else {
            panic!("{nodes:?}")
        };
        assert_eq!(
            branches[0].0,
            Cond::Any(vec![
                Cond::Eq(
                    Operand::Value(Source::Query("v".into())),
                    Operand::Text("1".into()),
                    true
                ),
                Cond::Is(Operand::Value(Source::Query("w".into()))),
            ])
        );
        assert_eq!(
            branches[0].1[1],
            Node::Value(Source::Query("v".into()), vec![], false)
        );
        assert_eq!(branches[1].1[1], Node::Value(Source::Stage, vec![], true));
        assert!(otherwise.is_empty());
        // Nested loops read the element of each.
        let nodes =
            text_template("{% for a in request.body %}{% for b in a./xs %}{{ a./k }}{{ b }}{{ loop.index0 }}{% end %}{% end %}")
                .unwrap();
        let Node::For(_, outer) = &nodes[0] else {
            panic!()
        };
        let Node::For(list, inner) = &outer[0] else {
            panic!()
        };
        assert_eq!(*list, Source::Item(0, "/xs".into()));
        assert_eq!(
            inner[0],
            Node::Value(Source::Item(0, "/k".into()), vec![], false)
        );
        assert_eq!(
            inner[1],
            Node::Value(Source::Item(1, String::new()), vec![], false)
        );
        assert_eq!(
            inner[2],
            Node::Value(Source::Loop(1, LoopField::Index0), vec![], false)
        );
    }

    #[test]
    fn text_templates_refuse_blocks_that_would_move_a_value_out_of_its_string() {
        for (text, offset, needle) in [
            (
                r#"{"a": "{% if request.query.x %}"{% end %}"}"#,
                7,
                "different places",
            ),
            (
                r#"{"a": {% if request.query.x %}"{% else %}1{% end %}}"#,
                6,
                "different places",
            ),
            (
                r#"[{% for x in request.body %}"{% end %}]"#,
                1,
                "does not end where it began",
            ),
            (r#"{"a": "\{{ request.query.x }}"}"#, 8, "escape"),
            ("{% if request.query.x %}", 0, "not closed"),
            (
                "{% for x in request.body %}{% else %}{% end %}",
                27,
                "inside `{% for %}`",
            ),
            ("{% end %}", 0, "closes no block"),
            ("{% while x %}", 0, "unknown block"),
            ("{{ loop.index }}", 3, "inside `{% for %}` only"),
            (
                "{% for request in request.body %}{% end %}",
                7,
                "cannot name",
            ),
            (
                "{% for x of request.body %}{% end %}",
                7,
                "expected `{% for NAME in VALUE %}`",
            ),
            (
                "{% if request.query.x == %}{% end %}",
                6,
                "where a value was expected",
            ),
            ("{% if (request.query.x %}{% end %}", 6, "not closed"),
            (
                "{% if request.query.x request.query.y %}{% end %}",
                22,
                "expected `and`",
            ),
            ("{% if request.nope %}{% end %}", 6, "unknown name"),
            (
                "{% for x in request.body %}{{ x.id }}{% end %}",
                30,
                "JSON pointer",
            ),
            ("{% if request.query.x %", 0, "not closed by `%}`"),
        ] {
            let e = text_template(text).expect_err(text);
            assert!(e.message.contains(needle), "{text}: {e:?}");
            assert_eq!(e.offset, offset, "{text}: {e:?}");
        }
        // Blocks inside a string that end inside it are fine, as are values in either place.
        assert!(text_template(r#"{"a": "x{% if request.query.x %}-{{ request.query.x }}{% end %}", "b": {{ request.query.y }}}"#).is_ok());
        assert!(text_template(r#"{"a": "\\{{ request.query.x }}"}"#).is_ok());
    }

    #[test]
    fn text_templates_never_panic_on_cut_or_mangled_text() {
        let whole = r#"{"é": [{% for x in response.body./a %}{"v": "{{ x./b | default('}}') }}", "n": {{ loop.index0 }}}{% if not (loop.last or x./c == 'é"') and x != null %},{% elif x == -1.5 %}{% else %}{% end %}{% end %}], "\\": "\{{ request.query.q }}"}"#;
        let cuts: Vec<usize> = (0..=whole.len())
            .filter(|i| whole.is_char_boundary(*i))
            .collect();
        for &i in &cuts {
            let _ = text_template(&whole[..i]);
            let _ = text_template(&whole[i..]);
            let mut mangled = whole.to_string();
            mangled.insert_str(i, "%}{%{{");
            let _ = text_template(&mangled);
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
