//! Request inputs as documents: parameters by OpenAPI style, form and multipart bodies, and the
//! per-route orchestration the gateway runs before an integration sees a request.

use std::borrow::Cow;

use http::HeaderMap;

use super::{Ctx, Doc, Eval, Violation};

/// Decoded name/value pairs of a query string or form body.
type Pairs<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// Named values gathered from a parameter or form: name, then every value given for it.
type Fields = Vec<(Cow<'static, str>, Vec<Cow<'static, str>>)>;
use crate::json::{push_json_string, Stream};

/// A compiled schema: validates node `i` of a document.
pub type SchemaFn = fn(&Doc<'_>, u32, &mut Ctx, Option<&mut Eval>) -> bool;

/// A schema's streaming check (a generated `…z…` function): it reads the value at the
/// stream's position and says whether it is valid; `false` also when it cannot tell, and the
/// body is then checked as a parsed document.
pub type StreamFn = fn(&mut crate::json::Stream<'_>, &mut Ctx) -> bool;

/// A parameter schema's quick check (a generated `…s…` function): whether a single value, read
/// as the schema reads it, is valid; `false` also when it cannot tell, and the value is then
/// checked by the schema's ordinary function, which words the error.
pub type ScalarFn = fn(Scalar<'_>) -> bool;

/// A parameter's single value as its schema reads it: a number, boolean or null where the
/// schema's types take the literal the text spells, else the text as a string.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    /// A string.
    Str(Cow<'a, str>),
    /// A number, and whether it is integral.
    Num((f64, bool)),
    /// `true` or `false`.
    Bool,
    /// `null`.
    Null,
}

impl<'a> Scalar<'a> {
    /// `s` read as a value of the types in `mask`, as a parameter's document reads it
    /// (`scalar_doc`).
    pub fn of(s: Cow<'a, str>, mask: u8) -> Scalar<'a> {
        if is_literal(&s, mask) {
            if let Some(number) = crate::json::number_of(&s) {
                return Scalar::Num(number);
            }
            match s.as_ref() {
                "true" | "false" => return Scalar::Bool,
                "null" => return Scalar::Null,
                // A number too large for an `f64`: the document would refuse it, and the
                // value is read as a string.
                _ => {}
            }
        }
        Scalar::Str(s)
    }
}

/// Where a parameter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    /// A path segment.
    Path,
    /// The query string.
    Query,
    /// A header.
    Header,
    /// The `Cookie` header.
    Cookie,
}

/// A serialisation style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `simple`.
    Simple,
    /// `label`.
    Label,
    /// `matrix`.
    Matrix,
    /// `form`.
    Form,
    /// `spaceDelimited`.
    SpaceDelimited,
    /// `pipeDelimited`.
    PipeDelimited,
    /// `deepObject`.
    DeepObject,
    /// Not a style: the parameter has `content: {application/json: …}`, so its value is JSON.
    Json,
}

/// What JSON a string value becomes: the generator reads it off the schema's `type`s.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// One value; the mask says which types a string may convert to.
    Scalar(u8),
    /// An array of values of these types.
    Array(u8),
    /// An object: the declared properties' types, and the types of any other property.
    Object(&'static [(&'static str, Shape)], u8),
}

impl Shape {
    fn scalar_mask(&self) -> u8 {
        match self {
            Shape::Scalar(m) | Shape::Array(m) => *m,
            Shape::Object(_, m) => *m,
        }
    }
}

/// One parameter as the generator describes it.
#[derive(Debug)]
pub struct ParamSpec {
    /// The wire name.
    pub name: &'static str,
    /// Where.
    pub location: In,
    /// `path/id`, `query/limit`, … (the pointer prefix of its violations).
    pub pointer: &'static str,
    /// Style.
    pub style: Style,
    /// `explode`.
    pub explode: bool,
    /// `required`.
    pub required: bool,
    /// `allowEmptyValue`.
    pub allow_empty: bool,
    /// The value's shape.
    pub shape: Shape,
    /// Its schema, if it has one.
    pub schema: Option<SchemaFn>,
    /// For path parameters: the position among the template's parameters.
    pub index: usize,
    /// The schema's quick check of a single value, when it has one.
    pub quick: Option<ScalarFn>,
}

/// How a body of one media type is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// JSON (`application/json`, `*+json`).
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data`.
    Multipart,
    /// Anything else: accepted as bytes, not validated.
    Opaque,
}

/// One accepted media type.
#[derive(Debug)]
pub struct MediaSpec {
    /// The media range as the spec writes it (`application/json`, `image/*`, `*/*`).
    pub range: &'static str,
    /// How it is read.
    pub kind: BodyKind,
    /// The fields' shapes, for forms.
    pub shape: Shape,
    /// Its schema.
    pub schema: Option<SchemaFn>,
    /// Its schema checked as the body is read, for JSON bodies whose schema allows it: a valid
    /// body is accepted without being parsed into a document.
    pub stream: Option<StreamFn>,
}

/// The request body an operation takes.
#[derive(Debug)]
pub struct BodySpec {
    /// `required`.
    pub required: bool,
    /// Accepted media types.
    pub media: &'static [MediaSpec],
}

/// The schemas of one response (JSON media types).
#[derive(Debug)]
pub struct ResponseSpec {
    /// `200`, `2XX` or `DEFAULT`.
    pub status: &'static str,
    /// Media type and schema.
    pub media: &'static [(&'static str, SchemaFn)],
}

/// What a route validates.
#[derive(Debug)]
pub struct RouteValidation {
    /// Whether requests are validated (`validate.requests`, on unless turned off).
    pub requests: bool,
    /// Its parameters.
    pub params: &'static [ParamSpec],
    /// Its body, when the operation declares one.
    pub body: Option<BodySpec>,
    /// Its responses, when response validation may be on.
    pub responses: &'static [ResponseSpec],
    /// The operation's `validate.responses`, when it sets one (else the stage's applies).
    pub response_mode: Option<crate::stage::ResponseMode>,
    /// `limits.json_depth`: JSON bodies nested deeper are refused.
    pub json_depth: u32,
    /// `limits.json_values`: JSON bodies holding more values are refused with 413.
    pub json_values: u32,
}

/// Why a request was refused.
#[derive(Debug)]
pub enum Rejection {
    /// 400 with the violations.
    Invalid(Vec<Violation>),
    /// 415: the body's media type is not one the operation accepts.
    Unsupported(String),
    /// 413: the body holds more than the gateway validates.
    TooLarge(String),
}

/// The parts of a request parameters come from.
#[derive(Debug)]
pub struct RequestParts<'r> {
    /// Path parameter values (decoded), in template order.
    pub path: &'r [std::borrow::Cow<'r, str>],
    /// The raw query string.
    pub query: Option<&'r str>,
    /// Headers.
    pub headers: &'r HeaderMap,
}

impl RouteValidation {
    /// Whether the body must be read (and held) to validate it: a media type the operation
    /// accepts is parsed (JSON, forms, multipart). Bodies of opaque media types only stream.
    pub fn reads_body(&self) -> bool {
        self.requests
            && self
                .body
                .as_ref()
                .is_some_and(|b| b.media.iter().any(|m| m.kind != BodyKind::Opaque))
    }

    /// Checks the body of an operation whose media types are all opaque from the request's
    /// head alone: its media type, and that a required body is there. Nothing is read.
    pub fn check_opaque_body(
        &self,
        content_type: Option<&str>,
        present: bool,
    ) -> Result<(), Rejection> {
        // An opaque body is never parsed: whether there is one is all `check_body` reads.
        let stand_in: &[u8] = if present { b" " } else { b"" };
        self.check_body(content_type, stand_in)
    }

    /// Checks an answer's body (when its status and media type have a schema). `Ok(true)` means
    /// checked and conforming, `Ok(false)` nothing to check.
    pub fn check_response(
        &self,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<bool, Vec<Violation>> {
        let code = status.to_string();
        let class = format!("{}XX", status / 100);
        let spec = self
            .responses
            .iter()
            .find(|r| r.status == code)
            .or_else(|| self.responses.iter().find(|r| r.status == class))
            .or_else(|| self.responses.iter().find(|r| r.status == "DEFAULT"));
        let Some(spec) = spec else {
            return Ok(false);
        };
        let essence = content_type
            .map(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let Some((_, check)) = spec.media.iter().find(|(m, _)| *m == essence) else {
            return Ok(false);
        };
        let doc = Doc::parse(body).map_err(|e| {
            vec![Violation {
                pointer: String::new(),
                keyword: "json",
                message: format!("the response is not valid JSON: {e}"),
            }]
        })?;
        let mut ctx = Ctx::new();
        check(&doc, 0, &mut ctx, None);
        if ctx.is_ok() {
            Ok(true)
        } else {
            Err(ctx.errors)
        }
    }

    /// Checks the parameters.
    pub fn check_params(&self, req: &RequestParts<'_>) -> Result<(), Rejection> {
        if !self.requests || self.params.is_empty() {
            return Ok(());
        }
        let mut ctx = Ctx::new();
        let query = req.query.map(parse_pairs).unwrap_or_default();
        for p in self.params {
            check_param(p, req, &query, &mut ctx);
        }
        if ctx.is_ok() {
            Ok(())
        } else {
            Err(Rejection::Invalid(ctx.errors))
        }
    }

    /// Checks a buffered body against its declared media type.
    pub fn check_body(&self, content_type: Option<&str>, body: &[u8]) -> Result<(), Rejection> {
        let Some(spec) = &self.body else {
            return Ok(());
        };
        let invalid = |pointer: &str, keyword: &'static str, message: String| {
            Err(Rejection::Invalid(vec![Violation {
                pointer: pointer.to_string(),
                keyword,
                message,
            }]))
        };
        if body.is_empty() && content_type.is_none() {
            if spec.required {
                return invalid("", "required", "a request body is required".into());
            }
            return Ok(());
        }
        // Compared without regard to case (RFC 9110 §8.3.1), so not lowered into a copy.
        let essence = content_type
            .map(|ct| ct.split(';').next().unwrap_or("").trim())
            .unwrap_or_default();
        let Some(media) = select_media(spec.media, essence) else {
            return Err(Rejection::Unsupported(if essence.is_empty() {
                "the request has a body but no Content-Type".into()
            } else {
                format!(
                    "`{}` is not a media type this operation accepts",
                    essence.to_ascii_lowercase()
                )
            }));
        };
        if body.is_empty() {
            if spec.required {
                return invalid("", "required", "a request body is required".into());
            }
            return Ok(());
        }
        // JSON is UTF-8 (RFC 8259 §8.1): a body declared in another charset would be read one
        // way here and another way upstream.
        if media.kind == BodyKind::Json {
            if let Some(charset) = content_type.and_then(charset_of) {
                if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("utf8") {
                    return Err(Rejection::Unsupported(format!(
                        "JSON bodies are UTF-8; `charset={charset}` is not accepted"
                    )));
                }
            }
        }
        let mut ctx = Ctx::new();
        if let (BodyKind::Json, Some(stream)) = (media.kind, media.stream) {
            // The one pass that accepts a valid body; any doubt, and the document is parsed
            // below to find and word what is wrong.
            if let Ok(text) = std::str::from_utf8(body) {
                let mut r = Stream::new(text, self.json_depth as usize, self.json_values as usize);
                if ctx.quietly(|c| stream(&mut r, c)) && r.finish() {
                    return Ok(());
                }
            }
        }
        let doc = match media.kind {
            BodyKind::Opaque => return Ok(()),
            BodyKind::Json => match Doc::parse_with_limits(
                body,
                self.json_depth as usize,
                self.json_values as usize,
            ) {
                Ok(d) => d,
                Err(e) if e.message == crate::json::TOO_MANY_VALUES => {
                    return Err(Rejection::TooLarge(format!(
                        "the JSON body holds more than {} values",
                        self.json_values
                    )))
                }
                Err(e) => return invalid("", "json", format!("the body is not valid JSON: {e}")),
            },
            BodyKind::Form => {
                let Ok(text) = std::str::from_utf8(body) else {
                    return invalid("", "form", "the form body is not UTF-8".into());
                };
                let pairs = parse_pairs(text);
                match form_doc(&pairs, media.shape) {
                    Ok(d) => d,
                    Err(m) => return invalid("", "form", m),
                }
            }
            BodyKind::Multipart => {
                let boundary = content_type.and_then(boundary_of);
                let Some(boundary) = boundary else {
                    return invalid("", "multipart", "the multipart body has no boundary".into());
                };
                match multipart_fields(body, &boundary) {
                    Ok(pairs) => match form_doc(&pairs, media.shape) {
                        Ok(d) => d,
                        Err(m) => return invalid("", "multipart", m),
                    },
                    Err(m) => return invalid("", "multipart", m),
                }
            }
        };
        if let Some(check) = media.schema {
            check(&doc, 0, &mut ctx, None);
        }
        if ctx.is_ok() {
            Ok(())
        } else {
            Err(Rejection::Invalid(ctx.errors))
        }
    }
}

fn select_media<'m>(media: &'m [MediaSpec], essence: &str) -> Option<&'m MediaSpec> {
    media
        .iter()
        .find(|m| m.range.eq_ignore_ascii_case(essence))
        .or_else(|| {
            let top = essence.split('/').next().unwrap_or("");
            media.iter().find(|m| {
                m.range
                    .strip_suffix("/*")
                    .is_some_and(|t| t.eq_ignore_ascii_case(top) && !essence.is_empty())
            })
        })
        .or_else(|| media.iter().find(|m| m.range == "*/*"))
}

fn boundary_of(ct: &str) -> Option<String> {
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn check_param<'r>(
    p: &ParamSpec,
    req: &RequestParts<'r>,
    query: &'r [(Cow<'r, str>, Cow<'r, str>)],
    ctx: &mut Ctx,
) {
    // A single value the schema's quick check accepts needs no document: most requests. (A
    // value sent twice is refused whatever it is, by the document's check.)
    if let (Some(quick), Shape::Scalar(mask)) = (p.quick, p.shape) {
        let once = !sent_twice(p, req, query);
        if let Some(value) = single_value(p, req, query).filter(|_| once) {
            if quick(Scalar::of(value, mask)) {
                return;
            }
        }
    }
    check_param_doc(p, req, query, ctx);
}

/// A parameter checked as a document, with every violation worded.
#[inline(never)]
fn check_param_doc<'r>(
    p: &ParamSpec,
    req: &RequestParts<'r>,
    query: &'r [(Cow<'r, str>, Cow<'r, str>)],
    ctx: &mut Ctx,
) {
    let violation = |ctx: &mut Ctx, keyword: &'static str, message: String| {
        if ctx.errors.len() < super::MAX_VIOLATIONS {
            ctx.errors.push(Violation {
                pointer: p.pointer.to_string(),
                keyword,
                message,
            });
        }
    };
    if sent_twice(p, req, query) && matches!(p.shape, Shape::Scalar(_)) {
        violation(
            ctx,
            "style",
            format!(
                "the parameter `{}` is sent more than once, but it takes one value",
                p.name
            ),
        );
        return;
    }
    let doc = match param_doc(p, req, query) {
        Ok(Some(d)) => d,
        Ok(None) => {
            if p.required {
                violation(
                    ctx,
                    "required",
                    format!("the parameter `{}` is required", p.name),
                );
            }
            return;
        }
        Err(ParamError::Empty) => {
            // `allowEmptyValue: true` lets an empty value through whatever the schema says;
            // otherwise the empty string is the value, and the schema decides.
            if p.allow_empty {
                return;
            }
            match Doc::parse_owned("\"\"".to_string()) {
                Ok(d) => d,
                Err(_) => return,
            }
        }
        Err(ParamError::Malformed(m)) => {
            violation(ctx, "style", m);
            return;
        }
    };
    if let Some(check) = p.schema {
        ctx.at(p.pointer);
        check(&doc, 0, ctx, None);
        ctx.at("");
    }
}

/// Whether the query or the headers carry parameter `p` more than once. A single value sent
/// twice means what a reader wants it to: the gateway would check one copy and the upstream
/// might read the other.
fn sent_twice(
    p: &ParamSpec,
    req: &RequestParts<'_>,
    query: &[(Cow<'_, str>, Cow<'_, str>)],
) -> bool {
    match p.location {
        In::Query => query.iter().filter(|(k, _)| k == p.name).nth(1).is_some(),
        In::Header => req.headers.get_all(p.name).iter().nth(1).is_some(),
        _ => false,
    }
}

/// The value of a single-valued parameter of the default style (`simple` in the path, `form`
/// in the query), decoded as [`param_doc`] decodes it; `None` for other styles and places, and
/// for a value that is missing or empty (which [`param_doc`] judges).
fn single_value<'r>(
    p: &ParamSpec,
    req: &RequestParts<'r>,
    query: &'r [(Cow<'r, str>, Cow<'r, str>)],
) -> Option<Cow<'r, str>> {
    let value = match (p.location, p.style) {
        (In::Path, Style::Simple) => pct_decode(req.path.get(p.index)?),
        (In::Query, Style::Form) => {
            let v = query.iter().rev().find(|(k, _)| k == p.name)?;
            Cow::Borrowed(v.1.as_ref())
        }
        _ => return None,
    };
    (!value.is_empty()).then_some(value)
}

enum ParamError {
    Empty,
    Malformed(String),
}

/// A form body as the gateway reads one, for the fuzz target.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_form(text: &str) {
    const SHAPE: Shape = Shape::Object(
        &[
            ("a", Shape::Array(super::ty::STRING)),
            ("b", Shape::Scalar(super::ty::STRING)),
        ],
        super::ty::STRING,
    );
    let pairs = parse_pairs(text);
    if let Ok(doc) = form_doc(&pairs, SHAPE) {
        assert!(!doc.is_empty());
    }
}

/// Splits a query string or form body into decoded pairs (`+` is a space). One pass over the
/// bytes: a pair without `%` or `+` is borrowed as it is.
pub fn parse_pairs(q: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let bytes = q.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut eq, mut coded) = (0, None, false);
    for i in 0..=bytes.len() {
        match bytes.get(i) {
            None | Some(b'&') => {
                if i > start {
                    // `&` and `=` are ASCII, so every cut is on a character boundary.
                    let (k, v) = match eq {
                        Some(e) => (&q[start..e], &q[e + 1..i]),
                        None => (&q[start..i], ""),
                    };
                    out.push(if coded {
                        (form_decode(k), form_decode(v))
                    } else {
                        (Cow::Borrowed(k), Cow::Borrowed(v))
                    });
                }
                (start, eq, coded) = (i + 1, None, false);
            }
            Some(b'=') if eq.is_none() => eq = Some(i),
            Some(b'%' | b'+') => coded = true,
            Some(_) => {}
        }
    }
    out
}

fn form_decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let spaced = s.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

fn pct_decode(s: &str) -> Cow<'_, str> {
    if !s.as_bytes().contains(&b'%') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Appends a scalar string as the JSON value the mask allows: a number, a boolean, `null`, or
/// else a string (which the schema's `type` then refuses if it must).
fn push_scalar(out: &mut String, s: &str, mask: u8) {
    if is_literal(s, mask) {
        out.push_str(s);
    } else {
        push_json_string(out, s);
    }
}

/// Whether a scalar value is read as the JSON literal it spells (a number, `true`, `false` or
/// `null`, where the schema's types take one) rather than as a string.
fn is_literal(s: &str, mask: u8) -> bool {
    use super::ty;
    (mask & (ty::INTEGER | ty::NUMBER) != 0 && is_json_number(s))
        || (mask & ty::BOOLEAN != 0 && (s == "true" || s == "false"))
        || (mask & ty::NULL != 0 && s == "null")
}

fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == int_start || (b[int_start] == b'0' && i - int_start > 1) {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let s = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == s {
            return false;
        }
    }
    i == b.len()
}

fn array_json(values: &[Cow<'_, str>], mask: u8) -> String {
    let mut out = String::from("[");
    for (n, v) in values.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        push_scalar(&mut out, v, mask);
    }
    out.push(']');
    out
}

fn object_json<'a>(
    pairs: impl IntoIterator<Item = (Cow<'a, str>, Vec<Cow<'a, str>>)>,
    shape: Shape,
) -> String {
    let Shape::Object(props, other) = shape else {
        return "{}".into();
    };
    let mut out = String::from("{");
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (k, values) in pairs {
        if seen.contains(k.as_ref()) {
            continue;
        }
        if !seen.is_empty() {
            out.push(',');
        }
        seen.insert(k.to_string());
        push_json_string(&mut out, &k);
        out.push(':');
        // A field the schema does not name takes what its values are: one, or an array of all.
        let prop = props.iter().find(|(n, _)| *n == k).map(|(_, s)| *s);
        let undeclared = if values.len() > 1 {
            Shape::Array(other)
        } else {
            Shape::Scalar(other)
        };
        match prop.unwrap_or(undeclared) {
            Shape::Array(m) => out.push_str(&array_json(&values, m)),
            s => push_scalar(
                &mut out,
                values.last().map(|v| v.as_ref()).unwrap_or(""),
                s.scalar_mask(),
            ),
        }
    }
    out.push('}');
    out
}

fn pairs_of_list(list: &[Cow<'_, str>]) -> Result<Fields, ParamError> {
    if list.len() % 2 != 0 {
        return Err(ParamError::Malformed(
            "an object value needs name,value pairs".into(),
        ));
    }
    Ok(list
        .chunks(2)
        .map(|c| {
            (
                Cow::Owned(c[0].to_string()),
                vec![Cow::Owned(c[1].to_string())],
            )
        })
        .collect())
}

fn pairs_of_kv<'a>(items: impl Iterator<Item = &'a str>) -> Result<Fields, ParamError> {
    items
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| ParamError::Malformed(format!("`{kv}` is not a name=value pair")))?;
            Ok((
                Cow::Owned(pct_decode(k).into_owned()),
                vec![Cow::Owned(pct_decode(v).into_owned())],
            ))
        })
        .collect()
}

/// Builds the document of one value serialised in `style` (the prefix of `label`/`matrix`
/// already removed) that is not `form`-exploded across the query.
fn delimited_doc<'v>(
    raw: &'v str,
    p: &ParamSpec,
    sep: char,
    kv_sep: Option<char>,
) -> Result<Converted<'v>, ParamError> {
    match p.shape {
        Shape::Scalar(m) => Ok(Converted::Doc(scalar_doc(pct_decode(raw), m))),
        Shape::Array(m) => {
            let values: Vec<Cow<'_, str>> = if raw.is_empty() {
                Vec::new()
            } else {
                raw.split(sep).map(pct_decode).collect()
            };
            Ok(array_json(&values, m).into())
        }
        Shape::Object(..) => {
            let pairs = if raw.is_empty() {
                Vec::new()
            } else if let Some(kv) = kv_sep {
                let _ = kv;
                pairs_of_kv(raw.split(sep))?
            } else {
                let list: Vec<Cow<'_, str>> = raw.split(sep).map(pct_decode).collect();
                pairs_of_list(&list)?
            };
            Ok(object_json(pairs, p.shape).into())
        }
    }
}

/// A parameter's value made ready for its schema: JSON text to parse, or, for a scalar, the
/// document itself, borrowing the value (no text made and read again).
enum Converted<'r> {
    Text(String),
    Doc(Doc<'r>),
}

impl Converted<'_> {
    fn into_owned(self) -> Converted<'static> {
        match self {
            Converted::Text(t) => Converted::Text(t),
            Converted::Doc(d) => Converted::Doc(d.into_owned()),
        }
    }
}

impl From<String> for Converted<'_> {
    fn from(text: String) -> Self {
        Converted::Text(text)
    }
}

/// The document of one scalar value: a number, boolean or null where the schema's types take
/// one and the text is one, else a string.
fn scalar_doc(s: Cow<'_, str>, mask: u8) -> Doc<'_> {
    if is_literal(&s, mask) {
        let literal = match Doc::number(&s) {
            Some(doc) => Ok(doc),
            None => Doc::parse_owned(s.to_string()),
        };
        if let Ok(doc) = literal {
            return doc;
        }
    }
    Doc::string(s)
}

fn param_doc<'r>(
    p: &ParamSpec,
    req: &RequestParts<'r>,
    query: &'r [(Cow<'r, str>, Cow<'r, str>)],
) -> Result<Option<Doc<'r>>, ParamError> {
    if p.style == Style::Json {
        let raw: Option<String> = match p.location {
            In::Path => req.path.get(p.index).map(|s| s.to_string()),
            In::Query => query
                .iter()
                .rev()
                .find(|(k, _)| k == p.name)
                .map(|(_, v)| v.to_string()),
            In::Header => req
                .headers
                .get(p.name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            In::Cookie => req
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|c| c.trim().split_once('='))
                .filter(|(k, _)| *k == p.name)
                .map(|(_, v)| pct_decode(v).into_owned())
                .next_back(),
        };
        let Some(raw) = raw else {
            return Ok(None);
        };
        return Doc::parse_owned(raw)
            .map(Some)
            .map_err(|e| ParamError::Malformed(format!("the value is not JSON: {e}")));
    }
    let text = match p.location {
        In::Path => {
            let Some(raw) = req.path.get(p.index) else {
                return Ok(None);
            };
            // Path values arrive decoded; a label or matrix prefix is part of the value.
            match p.style {
                Style::Label => {
                    let Some(rest) = raw.strip_prefix('.') else {
                        return Err(ParamError::Malformed(format!(
                            "a `label` value starts with `.`, not `{raw}`"
                        )));
                    };
                    let sep = if p.explode { '.' } else { ',' };
                    let kv = (p.explode && matches!(p.shape, Shape::Object(..))).then_some('=');
                    delimited_doc(rest, p, sep, kv)?
                }
                Style::Matrix => {
                    let prefix = format!(";{}", p.name);
                    match p.shape {
                        Shape::Object(..) if p.explode => {
                            let rest = raw.strip_prefix(';').ok_or_else(|| {
                                ParamError::Malformed(format!(
                                    "a `matrix` value starts with `;`, not `{raw}`"
                                ))
                            })?;
                            delimited_doc(rest, p, ';', Some('='))?
                        }
                        Shape::Array(m) if p.explode => {
                            let values: Vec<Cow<'_, str>> = raw
                                .split(';')
                                .filter(|s| !s.is_empty())
                                .map(|s| {
                                    s.strip_prefix(&format!("{}=", p.name))
                                        .map(pct_decode)
                                        .ok_or_else(|| {
                                            ParamError::Malformed(format!(
                                                "a `matrix` value names `{}`, not `{s}`",
                                                p.name
                                            ))
                                        })
                                })
                                .collect::<Result<_, _>>()?;
                            array_json(&values, m).into()
                        }
                        _ => {
                            let rest = raw.strip_prefix(&prefix).ok_or_else(|| {
                                ParamError::Malformed(format!(
                                    "a `matrix` value starts with `{prefix}`, not `{raw}`"
                                ))
                            })?;
                            let rest = rest.strip_prefix('=').unwrap_or(rest);
                            delimited_doc(rest, p, ',', None)?
                        }
                    }
                }
                _ => {
                    if raw.is_empty() {
                        return Err(ParamError::Empty);
                    }
                    let kv = (p.explode && matches!(p.shape, Shape::Object(..))).then_some('=');
                    delimited_doc(raw, p, ',', kv)?
                }
            }
        }
        In::Header => {
            let values: Vec<&str> = req
                .headers
                .get_all(p.name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if values.is_empty() {
                return Ok(None);
            }
            let joined = values.join(",");
            let raw = joined.trim();
            if raw.is_empty() {
                return Err(ParamError::Empty);
            }
            let kv = (p.explode && matches!(p.shape, Shape::Object(..))).then_some('=');
            // Header values are not percent-encoded; decode nothing.
            let escaped = raw.replace('%', "%25");
            delimited_doc(&escaped, p, ',', kv)?.into_owned()
        }
        In::Cookie => {
            let mut found = None;
            for v in req.headers.get_all(http::header::COOKIE).iter() {
                let Ok(v) = v.to_str() else { continue };
                for c in v.split(';') {
                    if let Some((k, val)) = c.trim().split_once('=') {
                        if k == p.name {
                            found = Some(val.to_string());
                        }
                    }
                }
            }
            let Some(raw) = found else {
                return Ok(None);
            };
            if raw.is_empty() {
                return Err(ParamError::Empty);
            }
            delimited_doc(&raw, p, ',', None)?.into_owned()
        }
        In::Query => match query_doc(p, query)? {
            Some(c) => c,
            None => return Ok(None),
        },
    };
    let text = match text {
        Converted::Doc(doc) => return Ok(Some(doc)),
        Converted::Text(text) => text,
    };
    if text.is_empty() {
        return Ok(None);
    }
    Doc::parse_owned(text)
        .map(Some)
        .map_err(|e| ParamError::Malformed(format!("the value cannot be read: {e}")))
}

fn query_doc<'r>(
    p: &ParamSpec,
    query: &'r [(Cow<'r, str>, Cow<'r, str>)],
) -> Result<Option<Converted<'r>>, ParamError> {
    let named = || query.iter().filter(|(k, _)| k == p.name).map(|(_, v)| v);
    match (p.style, p.shape) {
        (Style::DeepObject, shape) => {
            let prefix = format!("{}[", p.name);
            let mut pairs: Vec<(Cow<'static, str>, Vec<Cow<'static, str>>)> = Vec::new();
            for (k, v) in query {
                if let Some(inner) = k.strip_prefix(&prefix).and_then(|r| r.strip_suffix(']')) {
                    match pairs.iter_mut().find(|(n, _)| n == inner) {
                        Some((_, vs)) => vs.push(Cow::Owned(v.to_string())),
                        None => pairs.push((
                            Cow::Owned(inner.to_string()),
                            vec![Cow::Owned(v.to_string())],
                        )),
                    }
                }
            }
            if pairs.is_empty() {
                return Ok(None);
            }
            Ok(Some(object_json(pairs, shape).into()))
        }
        (Style::Form, Shape::Object(props, _)) if p.explode => {
            // Each property is its own query parameter.
            let mut pairs: Vec<(Cow<'static, str>, Vec<Cow<'static, str>>)> = Vec::new();
            for (k, v) in query {
                let declared = props.iter().any(|(n, _)| *n == k.as_ref());
                if declared || props.is_empty() {
                    match pairs.iter_mut().find(|(n, _)| n == k) {
                        Some((_, vs)) => vs.push(Cow::Owned(v.to_string())),
                        None => {
                            pairs.push((Cow::Owned(k.to_string()), vec![Cow::Owned(v.to_string())]))
                        }
                    }
                }
            }
            if pairs.is_empty() {
                return Ok(None);
            }
            Ok(Some(object_json(pairs, p.shape).into()))
        }
        (_, Shape::Array(m)) => {
            let values: Vec<&Cow<'_, str>> = named().collect();
            if values.is_empty() {
                return Ok(None);
            }
            let sep = match p.style {
                Style::SpaceDelimited => Some(' '),
                Style::PipeDelimited => Some('|'),
                _ if !p.explode => Some(','),
                _ => None,
            };
            let items: Vec<Cow<'_, str>> = match sep {
                Some(sep) if !p.explode || p.style != Style::Form => values
                    .iter()
                    .flat_map(|v| v.split(sep).map(Cow::Borrowed))
                    .collect(),
                _ => values.iter().map(|v| Cow::Borrowed(v.as_ref())).collect(),
            };
            // A delimited value that is empty is the empty array; an exploded `name=` is one
            // empty item.
            let delimited = sep.is_some() && (!p.explode || p.style != Style::Form);
            if delimited && items.len() == 1 && items[0].is_empty() {
                return Ok(Some(Converted::Text("[]".into())));
            }
            Ok(Some(array_json(&items, m).into()))
        }
        (_, shape) => {
            let Some(v) = named().next_back() else {
                return Ok(None);
            };
            if v.is_empty() {
                return Err(ParamError::Empty);
            }
            match shape {
                Shape::Object(..) => {
                    let list: Vec<Cow<'_, str>> = v.split(',').map(Cow::Borrowed).collect();
                    Ok(Some(object_json(pairs_of_list(&list)?, shape).into()))
                }
                _ => Ok(Some(Converted::Doc(scalar_doc(
                    Cow::Borrowed(v.as_ref()),
                    shape.scalar_mask(),
                )))),
            }
        }
    }
}

/// A form or multipart body as an object document.
fn form_doc(pairs: &[(Cow<'_, str>, Cow<'_, str>)], shape: Shape) -> Result<Doc<'static>, String> {
    let shape = match shape {
        Shape::Object(..) => shape,
        _ => Shape::Object(&[], super::ty::STRING),
    };
    let Shape::Object(props, _) = shape else {
        return Err("the form body cannot be read".into());
    };
    // Fields grouped by name, in first-seen order; an index keeps this linear in the fields.
    let mut grouped: Vec<(Cow<'static, str>, Vec<Cow<'static, str>>)> = Vec::new();
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (k, v) in pairs {
        match index.get(k.as_ref()) {
            Some(&i) => grouped[i].1.push(Cow::Owned(v.to_string())),
            None => {
                index.insert(k.as_ref(), grouped.len());
                grouped.push((Cow::Owned(k.to_string()), vec![Cow::Owned(v.to_string())]));
            }
        }
    }
    // A declared field that is not an array, sent several times, has no one meaning: which copy
    // would the upstream read? (A field the schema does not name becomes an array of its
    // values, which the schema then judges.)
    for (k, values) in &grouped {
        let Some(shape) = props
            .iter()
            .find(|(n, _)| *n == k.as_ref())
            .map(|(_, s)| *s)
        else {
            continue;
        };
        if values.len() > 1 && !matches!(shape, Shape::Array(_)) {
            return Err(format!(
                "the form field `{k}` takes one value but was sent {} times",
                values.len()
            ));
        }
    }
    Doc::parse_owned(object_json(grouped, shape)).map_err(|e| e.to_string())
}

/// The fields of a `multipart/form-data` body: name and text (files as their text, lossily).
fn multipart_fields<'b>(body: &'b [u8], boundary: &str) -> Result<Pairs<'b>, String> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let find = |hay: &[u8], from: usize, needle: &[u8]| -> Option<usize> {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let Some(mut at) = find(body, 0, d) else {
        return Err("the multipart body has no boundary line".into());
    };
    let mut fields = Vec::new();
    loop {
        at += d.len();
        if body.get(at..at + 2) == Some(b"--") {
            break;
        }
        if body.get(at..at + 2) != Some(b"\r\n") {
            return Err("a multipart boundary line is malformed".into());
        }
        at += 2;
        let Some(head_end) = find(body, at, b"\r\n\r\n") else {
            return Err("a multipart part has no header end".into());
        };
        let head = String::from_utf8_lossy(&body[at..head_end]);
        let name = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))
            .and_then(|l| {
                l.split(';').find_map(|p| {
                    let (k, v) = p.trim().split_once('=')?;
                    (k.trim() == "name").then(|| v.trim().trim_matches('"').to_string())
                })
            })
            .ok_or("a multipart part has no Content-Disposition name")?;
        let start = head_end + 4;
        let mut end_delim = b"\r\n".to_vec();
        end_delim.extend_from_slice(d);
        let Some(end) = find(body, start, &end_delim) else {
            return Err("a multipart part is not terminated".into());
        };
        fields.push((Cow::Owned(name), String::from_utf8_lossy(&body[start..end])));
        at = end + 2;
        if fields.len() > 1000 {
            return Err("the multipart body has too many parts".into());
        }
    }
    Ok(fields)
}

/// The `charset` parameter of a media type, unquoted.
fn charset_of(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::super::ty;
    use super::*;

    #[test]
    fn query_pairs_split_and_decode_as_forms_do() {
        let reference = |q: &str| -> Vec<(String, String)> {
            q.split('&')
                .filter(|s| !s.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (form_decode(k).into_owned(), form_decode(v).into_owned())
                })
                .collect()
        };
        for q in [
            "",
            "a=1",
            "a=1&b=2",
            "&&a=1&&",
            "a",
            "a=",
            "=x",
            "a=b=c",
            "a+b=c+d",
            "caf%C3%A9=%E2%9C%93&x=%zz",
            "k=v%26w&l=%3D",
            "é=ü&+=+",
        ] {
            let got: Vec<(String, String)> = parse_pairs(q)
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(got, reference(q), "{q}");
        }
    }

    fn spec(location: In, style: Style, explode: bool, shape: Shape) -> ParamSpec {
        ParamSpec {
            name: "id",
            location,
            pointer: "x/id",
            style,
            explode,
            required: true,
            allow_empty: false,
            shape,
            schema: None,
            index: 0,
            quick: None,
        }
    }

    #[test]
    fn a_single_value_reads_as_its_document_does() {
        use super::super::ty;
        use crate::json::Kind;
        let texts = [
            "",
            "0",
            "-0",
            "1",
            "01",
            "1.5",
            "-2.50",
            "1e3",
            "1E-2",
            "1e999",
            "-1e999",
            "1.",
            ".5",
            "+1",
            " 1",
            "1 ",
            "0x10",
            "true",
            "false",
            "null",
            "True",
            "nul",
            "abc",
            "12abc",
            "9007199254740993",
            "123456789012345678901234567890",
            "\"q\"",
            "é",
        ];
        let masks = [
            0,
            ty::STRING,
            ty::INTEGER,
            ty::NUMBER,
            ty::BOOLEAN,
            ty::NULL,
            ty::INTEGER | ty::STRING,
            ty::NUMBER | ty::BOOLEAN | ty::NULL,
            ty::STRING | ty::NUMBER | ty::INTEGER | ty::BOOLEAN | ty::NULL,
        ];
        for text in texts {
            for mask in masks {
                let doc = scalar_doc(Cow::Borrowed(text), mask);
                let scalar = Scalar::of(Cow::Borrowed(text), mask);
                let expected = match doc.kind(0) {
                    Kind::Str => Scalar::Str(doc.as_str(0).unwrap()),
                    Kind::Int | Kind::Float => {
                        Scalar::Num((doc.as_f64(0).unwrap(), doc.is_integer(0)))
                    }
                    Kind::Bool => Scalar::Bool,
                    Kind::Null => Scalar::Null,
                    other => panic!("{text:?} read as {other:?}"),
                };
                assert_eq!(scalar, expected, "{text:?} with types {mask:#b}");
            }
        }
    }

    fn doc_text(p: &ParamSpec, path: &[&str], query: &str) -> String {
        let headers = HeaderMap::new();
        let path: Vec<std::borrow::Cow<'_, str>> = path.iter().map(|s| (*s).into()).collect();
        let req = RequestParts {
            path: &path,
            query: Some(query),
            headers: &headers,
        };
        let pairs = parse_pairs(query);
        match param_doc(p, &req, &pairs) {
            Ok(Some(d)) => {
                let mut s = String::new();
                fn show(d: &Doc<'_>, i: u32, s: &mut String) {
                    match d.kind(i) {
                        crate::json::Kind::Array => {
                            s.push('[');
                            for (n, x) in d.items(i).enumerate() {
                                if n > 0 {
                                    s.push(',');
                                }
                                show(d, x, s);
                            }
                            s.push(']');
                        }
                        crate::json::Kind::Object => {
                            s.push('{');
                            for (n, (k, v)) in d.members(i).enumerate() {
                                if n > 0 {
                                    s.push(',');
                                }
                                s.push_str(&d.text(k));
                                s.push(':');
                                show(d, v, s);
                            }
                            s.push('}');
                        }
                        _ => s.push_str(&d.text(i)),
                    }
                }
                show(&d, 0, &mut s);
                s
            }
            Ok(None) => "none".into(),
            Err(ParamError::Empty) => "empty".into(),
            Err(ParamError::Malformed(m)) => format!("error: {m}"),
        }
    }

    static PROPS: &[(&str, Shape)] = &[
        ("R", Shape::Scalar(ty::INTEGER)),
        ("G", Shape::Scalar(ty::INTEGER)),
    ];

    #[test]
    fn styles() {
        let arr = Shape::Array(ty::INTEGER);
        let obj = Shape::Object(PROPS, ty::STRING);
        let s = |l, st, ex, sh| spec(l, st, ex, sh);
        assert_eq!(
            doc_text(
                &s(In::Path, Style::Simple, false, Shape::Scalar(ty::INTEGER)),
                &["5"],
                ""
            ),
            "5"
        );
        assert_eq!(
            doc_text(
                &s(In::Path, Style::Simple, false, Shape::Scalar(ty::INTEGER)),
                &["x"],
                ""
            ),
            "\"x\""
        );
        assert_eq!(
            doc_text(&s(In::Path, Style::Simple, false, arr), &["3,4,5"], ""),
            "[3,4,5]"
        );
        assert_eq!(
            doc_text(&s(In::Path, Style::Simple, true, obj), &["R=100,G=200"], ""),
            "{\"R\":100,\"G\":200}"
        );
        assert_eq!(
            doc_text(
                &s(In::Path, Style::Simple, false, obj),
                &["R,100,G,200"],
                ""
            ),
            "{\"R\":100,\"G\":200}"
        );
        assert_eq!(
            doc_text(&s(In::Path, Style::Label, false, arr), &[".3,4"], ""),
            "[3,4]"
        );
        assert_eq!(
            doc_text(&s(In::Path, Style::Label, true, arr), &[".3.4"], ""),
            "[3,4]"
        );
        assert_eq!(
            doc_text(
                &s(In::Path, Style::Matrix, false, Shape::Scalar(ty::INTEGER)),
                &[";id=5"],
                ""
            ),
            "5"
        );
        assert_eq!(
            doc_text(&s(In::Path, Style::Matrix, true, arr), &[";id=3;id=4"], ""),
            "[3,4]"
        );
        assert_eq!(
            doc_text(&s(In::Path, Style::Matrix, false, arr), &[";id=3,4"], ""),
            "[3,4]"
        );
        assert_eq!(
            doc_text(&s(In::Path, Style::Matrix, true, obj), &[";R=1;G=2"], ""),
            "{\"R\":1,\"G\":2}"
        );
        assert_eq!(
            doc_text(&s(In::Query, Style::Form, true, arr), &[], "id=3&id=4"),
            "[3,4]"
        );
        assert_eq!(
            doc_text(&s(In::Query, Style::Form, false, arr), &[], "id=3,4"),
            "[3,4]"
        );
        assert_eq!(
            doc_text(
                &s(In::Query, Style::SpaceDelimited, false, arr),
                &[],
                "id=3%204"
            ),
            "[3,4]"
        );
        assert_eq!(
            doc_text(
                &s(In::Query, Style::PipeDelimited, false, arr),
                &[],
                "id=3|4"
            ),
            "[3,4]"
        );
        assert_eq!(
            doc_text(&s(In::Query, Style::Form, true, obj), &[], "R=1&G=2&x=9"),
            "{\"R\":1,\"G\":2}"
        );
        assert_eq!(
            doc_text(&s(In::Query, Style::Form, false, obj), &[], "id=R,1,G,2"),
            "{\"R\":1,\"G\":2}"
        );
        assert_eq!(
            doc_text(
                &s(In::Query, Style::DeepObject, true, obj),
                &[],
                "id%5BR%5D=1&id[G]=2"
            ),
            "{\"R\":1,\"G\":2}"
        );
        assert_eq!(
            doc_text(
                &s(In::Query, Style::Form, true, Shape::Scalar(ty::INTEGER)),
                &[],
                "id="
            ),
            "empty"
        );
        assert_eq!(
            doc_text(&s(In::Query, Style::Form, true, arr), &[], "id="),
            "[\"\"]"
        );
        assert_eq!(
            doc_text(&s(In::Query, Style::PipeDelimited, false, arr), &[], "id="),
            "[]"
        );
        assert_eq!(
            doc_text(
                &s(In::Query, Style::Form, true, Shape::Scalar(ty::INTEGER)),
                &[],
                "x=1"
            ),
            "none"
        );
        assert_eq!(
            doc_text(
                &s(In::Query, Style::Form, true, Shape::Scalar(ty::STRING)),
                &[],
                "id=a+b%21"
            ),
            "\"a b!\""
        );
    }

    #[test]
    fn multipart() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n12\r\n--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--XX--\r\n";
        let fields = multipart_fields(body, "XX").unwrap();
        assert_eq!(fields.len(), 2);
        assert_eq!(fields[0].0, "a");
        assert_eq!(fields[0].1, "12");
        assert_eq!(fields[1].1, "hello");
        assert!(multipart_fields(b"--XX\r\nbroken", "XX").is_err());
    }
}
