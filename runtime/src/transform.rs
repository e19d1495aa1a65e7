//! `transform`: what the upstream gets (headers, query, path, the caller's identity) and what
//! the client gets back (status, headers), from templates parsed when the gateway was generated.
//!
//! A template is data here ([`Part`]s): literal text and values read from the request, the
//! caller's verified identity and the stage. Each value is made safe for where it goes: a header
//! value loses control characters (it never gains CR or LF), a query value and a path segment
//! are percent-encoded, so a value can never end its field, add a parameter or leave its segment.

use std::borrow::Cow;
use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::auth::Identity;
use crate::router::PathParams;

/// A route's transform.
#[derive(Debug)]
pub struct TransformDef {
    /// Header edits on the upstream request.
    pub request_headers: Edits,
    /// Query edits on the upstream request.
    pub query: Edits,
    /// The upstream request's path, in place of the integration URL's.
    pub path: Option<Template>,
    /// Whether the verified identity goes to the upstream as `X-Gateway-*` headers.
    pub identity: bool,
    /// Header edits on the answer.
    pub response_headers: Edits,
    /// Status mapping: (status, or class when the flag is set) → status.
    pub status: &'static [(u16, bool, u16)],
    /// The request body mapping.
    pub request_body: Option<BodyMap>,
    /// The answer's body mapping.
    pub response_body: Option<BodyMap>,
    /// Whether a template reads `request.body`: the body is then read and parsed first.
    pub reads_request_body: bool,
    /// Whether a response template reads request headers: they are then kept while the
    /// integration runs.
    pub response_reads_headers: bool,
    /// Whether a response template reads the answer's headers (`response.header.NAME`).
    pub reads_answer_headers: bool,
    /// Edits of answers by upstream status, instead of `status`, `response_headers` and
    /// `response_body`.
    pub cases: &'static [StatusCase],
}

/// `by_status`: what answers of one upstream status (or class) get.
#[derive(Debug)]
pub struct StatusCase {
    /// The status, or its class (`4` with `class`).
    pub from: u16,
    /// Whether `from` is a class.
    pub class: bool,
    /// The status the client gets (`None`: the upstream's).
    pub to: Option<u16>,
    /// Header edits.
    pub headers: Edits,
    /// The body mapping.
    pub body: Option<BodyMap>,
}

/// A body mapping.
#[derive(Debug)]
pub enum BodyMap {
    /// A new body.
    Template(JsonTemplate),
    /// A new body as JSON text, from a text template (with blocks).
    Text(&'static [Node]),
    /// Edits of the JSON body: pointers set, then pointers removed.
    Edits {
        /// Pointer → value.
        set: &'static [(&'static str, JsonTemplate)],
        /// Pointers removed.
        remove: &'static [&'static str],
    },
}

impl BodyMap {
    /// Whether it reads the answer's body (`response.body…`); edits always do.
    fn reads_answer(&self) -> bool {
        fn source(s: &Source) -> bool {
            matches!(s, Source::ResponseBody(_))
        }
        fn parts(p: &[Part]) -> bool {
            p.iter()
                .any(|p| matches!(p, Part::Value(s, _) if source(s)))
        }
        fn json(t: &JsonTemplate) -> bool {
            match t {
                JsonTemplate::Text(p) => parts(p),
                JsonTemplate::Value(s, _) => source(s),
                JsonTemplate::Array(items) => items.iter().any(json),
                JsonTemplate::Object(members) => members.iter().any(|(_, m)| json(m)),
                _ => false,
            }
        }
        fn operand(o: &Operand) -> bool {
            matches!(o, Operand::Value(s) if source(s))
        }
        fn cond(c: &Cond) -> bool {
            match c {
                Cond::Is(o) => operand(o),
                Cond::Not(c) => cond(c),
                Cond::All(cs) | Cond::Any(cs) => cs.iter().any(cond),
                Cond::Eq(a, b, _) => operand(a) || operand(b),
            }
        }
        fn nodes(n: &[Node]) -> bool {
            n.iter().any(|n| match n {
                Node::Lit(_) => false,
                Node::Value(s, _, _) => source(s),
                Node::If(branches, otherwise) => {
                    branches.iter().any(|(c, n)| cond(c) || nodes(n)) || nodes(otherwise)
                }
                Node::For(s, body) => source(s) || nodes(body),
            })
        }
        match self {
            BodyMap::Template(t) => json(t),
            BodyMap::Text(n) => nodes(n),
            BodyMap::Edits { .. } => true,
        }
    }
}

/// A JSON value as a template.
#[derive(Debug)]
pub enum JsonTemplate {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// An integer above `i64::MAX`.
    Uint(u64),
    /// A number with a fraction or exponent.
    Float(f64),
    /// A string from a template.
    Text(Template),
    /// One value, inserted as the JSON it is.
    Value(Source, &'static [Filter]),
    /// An array.
    Array(&'static [JsonTemplate]),
    /// An object.
    Object(&'static [(&'static str, JsonTemplate)]),
}

impl TransformDef {
    /// Whether it changes answers.
    pub(crate) fn edits_response(&self) -> bool {
        !self.status.is_empty()
            || !self.response_headers.is_empty()
            || self.response_body.is_some()
            || !self.cases.is_empty()
    }

    /// Whether some answer's body is mapped.
    pub(crate) fn maps_response_body(&self) -> bool {
        self.response_body.is_some() || self.cases.iter().any(|c| c.body.is_some())
    }

    /// What an answer of upstream status `status` gets: its new status, header edits and body
    /// mapping (a `by_status` case's, an exact status first, then its class's; else the
    /// transform's own).
    fn for_status(&self, status: u16) -> (Option<StatusCode>, &Edits, Option<&BodyMap>) {
        let case = (self.cases.iter())
            .find(|c| !c.class && c.from == status)
            .or_else(|| {
                self.cases
                    .iter()
                    .find(|c| c.class && c.from == status / 100)
            });
        match case {
            Some(c) => (
                c.to.and_then(|s| StatusCode::from_u16(s).ok()),
                &c.headers,
                c.body.as_ref(),
            ),
            None => (
                mapped_status(self.status, status),
                &self.response_headers,
                self.response_body.as_ref(),
            ),
        }
    }

    /// Whether the request body is read (and parsed) before the integration: a template reads
    /// it, or the request body mapping edits it.
    pub(crate) fn reads_request_body(&self) -> bool {
        self.reads_request_body || matches!(self.request_body, Some(BodyMap::Edits { .. }))
    }
}

/// The request's JSON body, parsed for a transform (`None`: the request had no body).
#[derive(Debug, Clone)]
pub(crate) struct RequestJson(pub(crate) Option<std::sync::Arc<serde_json::Value>>);

/// `set` (every copy replaced), `add` (appended), `remove`, applied remove → set → add. Header
/// names are lowercase field names (`gwgen check` made sure).
#[derive(Debug)]
pub struct Edits {
    /// Replaced.
    pub set: &'static [(&'static str, Template)],
    /// Appended.
    pub add: &'static [(&'static str, Template)],
    /// Removed.
    pub remove: &'static [&'static str],
}

/// A header name from a transform.
fn name(n: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(n.as_bytes()).ok()
}

impl Edits {
    fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A template: its parts in order.
pub type Template = &'static [Part];

/// A piece of a template.
#[derive(Debug)]
pub enum Part {
    /// Text as written in the spec.
    Lit(&'static str),
    /// A value, through filters in order.
    Value(Source, &'static [Filter]),
}

/// Where a value comes from (see `gwgen`'s `transform` module for the names).
#[derive(Debug)]
pub enum Source {
    /// A path parameter, decoded.
    Path(&'static str),
    /// A query parameter, decoded; the last when sent more than once.
    Query(&'static str),
    /// A request header (lowercase name); copies joined with `, `.
    Header(&'static str),
    /// The request id.
    RequestId,
    /// The stage's name.
    Stage,
    /// The request method.
    HttpMethod,
    /// The route's path template.
    ResourcePath,
    /// The request's path as sent.
    RequestPath,
    /// The client's address.
    SourceIp,
    /// The API key's name.
    ApiKeyId,
    /// The usage plan the caller counts against.
    UsagePlan,
    /// A claim of the verified JWT.
    Claim(&'static str),
    /// The token's scopes, space-separated.
    Scopes,
    /// A custom authorizer's `principalId`, else the token's `sub`.
    PrincipalId,
    /// A field of the verified client certificate (`subjectDN`, `fingerprint`, …).
    ClientCert(&'static str),
    /// A member of a custom authorizer's `context`.
    AuthorizerContext(&'static str),
    /// A stage variable.
    StageVariable(&'static str),
    /// The request's JSON body at a pointer (`""`: all of it).
    RequestBody(&'static str),
    /// The answer's JSON body at a pointer (response body mappings).
    ResponseBody(&'static str),
    /// The answer's header (lowercase name), copies joined with `, ` (response transforms).
    ResponseHeader(&'static str),
    /// The element of the text template's loop at this depth (0: the outermost), at a pointer.
    Item(usize, &'static str),
    /// Where the text template's loop at this depth is.
    Loop(usize, LoopField),
}

/// What `loop.…` reads.
#[derive(Debug, Clone, Copy)]
pub enum LoopField {
    /// 1 for the first element.
    Index,
    /// 0 for the first element.
    Index0,
    /// `true` on the first element.
    First,
    /// `true` on the last element.
    Last,
}

/// A piece of a text template (see `gwgen`'s `transform::Node`).
#[derive(Debug)]
pub enum Node {
    /// Text as written.
    Lit(&'static str),
    /// A value through its filters; `true`: it lands inside a JSON string (its text, escaped),
    /// else it is written as JSON.
    Value(Source, &'static [Filter], bool),
    /// The first branch whose condition holds, else the last.
    If(&'static [(Cond, &'static [Node])], &'static [Node]),
    /// The body once per element of an array (or member value of an object).
    For(Source, &'static [Node]),
}

/// A condition.
#[derive(Debug)]
pub enum Cond {
    /// Present, and not `false` or `null`.
    Is(Operand),
    /// Negation.
    Not(&'static Cond),
    /// Every one holds.
    All(&'static [Cond]),
    /// One holds.
    Any(&'static [Cond]),
    /// The operands' text is equal (`true`) or not (`false`).
    Eq(Operand, Operand, bool),
}

/// A side of a condition.
#[derive(Debug)]
pub enum Operand {
    /// A value.
    Value(Source),
    /// Text (a string or a number as written).
    Text(&'static str),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// One loop of a text template being rendered: its element, and where it is.
struct Frame<'a> {
    item: &'a serde_json::Value,
    /// 0 for the first element.
    index: usize,
    /// How many elements there are.
    len: usize,
}

/// A filter.
#[derive(Debug)]
pub enum Filter {
    /// The argument when the value is missing or empty.
    Default(&'static str),
    /// JSON text.
    Json,
    /// Standard Base64, padded.
    Base64,
    /// Every byte but `A-Z a-z 0-9 - . _ ~` percent-encoded.
    UrlEncode,
    /// Lowercase.
    Lower,
    /// Uppercase.
    Upper,
    /// The value as text; a missing value is empty.
    Text,
}

/// What templates read: the request as the client sent it, and who is calling.
pub(crate) struct Vars<'a> {
    pub(crate) method: &'a Method,
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) params: PathParams<'a>,
    pub(crate) identity: Option<&'a Identity>,
    pub(crate) cert: Option<&'a crate::client_cert::ClientCert>,
    pub(crate) id: &'a str,
    pub(crate) client: IpAddr,
    pub(crate) template: &'static str,
    pub(crate) gw: &'a crate::gateway::Gateway,
    /// The request's JSON body, when a template reads it.
    pub(crate) body: Option<&'a serde_json::Value>,
    /// The answer's JSON body, in a response body mapping.
    pub(crate) answer: Option<&'a serde_json::Value>,
    /// The answer's headers, in a response transform that reads them.
    pub(crate) answer_headers: Option<&'a HeaderMap>,
}

/// A value before it is written somewhere.
enum Val<'a> {
    Missing,
    Text(Cow<'a, str>),
    Json(&'a serde_json::Value),
    /// A loop's position.
    Number(usize),
}

impl<'a> Val<'a> {
    fn from_json(v: Option<&'a serde_json::Value>) -> Val<'a> {
        match v {
            None | Some(serde_json::Value::Null) => Val::Missing,
            Some(serde_json::Value::String(s)) => Val::Text(Cow::Borrowed(s)),
            Some(v) => Val::Json(v),
        }
    }

    fn text(self) -> Cow<'a, str> {
        match self {
            Val::Missing => Cow::Borrowed(""),
            Val::Text(t) => t,
            Val::Json(v) => Cow::Owned(v.to_string()),
            Val::Number(n) => Cow::Owned(n.to_string()),
        }
    }
}

impl<'a> Vars<'a> {
    /// What templates read of the request (`method`, `uri`, `headers`, the caller) and of the
    /// exchange; no body yet (see [`Vars::with_bodies`]).
    pub(crate) fn new(
        x: &crate::pipeline::Exchange<'a, '_>,
        method: &'a Method,
        uri: &'a http::Uri,
        headers: &'a HeaderMap,
        identity: Option<&'a Identity>,
    ) -> Vars<'a> {
        Vars {
            method,
            path: uri.path(),
            query: uri.query(),
            headers,
            params: x.params.named(x.route.params),
            identity,
            cert: x.cert,
            id: x.id,
            client: x.client,
            template: x.route.template,
            gw: x.gw,
            body: None,
            answer: None,
            answer_headers: None,
        }
    }

    /// The same, reading the answer's headers too.
    pub(crate) fn with_answer_headers(self, answer_headers: Option<&'a HeaderMap>) -> Vars<'a> {
        Vars {
            answer_headers,
            ..self
        }
    }

    /// The same, reading the request's and the answer's JSON bodies too.
    pub(crate) fn with_bodies(
        self,
        body: Option<&'a serde_json::Value>,
        answer: Option<&'a serde_json::Value>,
    ) -> Vars<'a> {
        Vars {
            body,
            answer,
            ..self
        }
    }
}

/// Every copy of header `name` in `headers`, joined with `, `.
fn joined<'h>(headers: &'h HeaderMap, name: &str) -> Val<'h> {
    let mut copies = headers.get_all(name).iter();
    match copies.next() {
        None => Val::Missing,
        Some(first) => {
            let mut out = String::from_utf8_lossy(first.as_bytes()).into_owned();
            for more in copies {
                out.push_str(", ");
                out.push_str(&String::from_utf8_lossy(more.as_bytes()));
            }
            Val::Text(Cow::Owned(out))
        }
    }
}

static TRUE: serde_json::Value = serde_json::Value::Bool(true);
static FALSE: serde_json::Value = serde_json::Value::Bool(false);

impl Vars<'_> {
    fn read(&self, source: &Source) -> Val<'_> {
        self.read_in(source, &[])
    }

    /// A value, where the text template's loops `frames` are (outermost first).
    fn read_in<'f>(&'f self, source: &Source, frames: &[Frame<'f>]) -> Val<'f> {
        let claims = || self.identity.and_then(|i| i.claims.as_deref());
        let text =
            |s: Option<&str>| s.map_or(Val::Missing, |s| Val::Text(Cow::Owned(s.to_string())));
        match source {
            Source::Path(name) => self
                .params
                .get(name)
                .map_or(Val::Missing, |v| Val::Text(Cow::Borrowed(v))),
            Source::Query(name) => self.query.map_or(Val::Missing, |q| {
                crate::validate::input::parse_pairs(q)
                    .into_iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map_or(Val::Missing, |(_, v)| Val::Text(Cow::Owned(v.into_owned())))
            }),
            Source::Header(name) => joined(self.headers, name),
            Source::ResponseHeader(name) => self
                .answer_headers
                .map_or(Val::Missing, |h| joined(h, name)),
            Source::RequestId => Val::Text(Cow::Borrowed(self.id)),
            Source::Stage => Val::Text(Cow::Borrowed(&*self.gw.stage)),
            Source::HttpMethod => Val::Text(Cow::Borrowed(self.method.as_str())),
            Source::ResourcePath => Val::Text(Cow::Borrowed(self.template)),
            Source::RequestPath => Val::Text(Cow::Borrowed(self.path)),
            Source::SourceIp => Val::Text(Cow::Owned(self.client.to_string())),
            Source::ClientCert(name) => self
                .cert
                .and_then(|c| c.field(name))
                .map_or(Val::Missing, Val::Text),
            Source::ApiKeyId => text(
                self.identity
                    .and_then(|i| i.key.as_ref())
                    .map(|(_, name)| name.as_str()),
            ),
            Source::UsagePlan => text(
                self.identity
                    .and_then(|i| i.plan.as_ref())
                    .map(|(plan, _)| plan.as_str()),
            ),
            Source::Claim(name) => Val::from_json(claims().and_then(|c| c.get(*name))),
            Source::Scopes => scopes(claims()).map_or(Val::Missing, |s| Val::Text(Cow::Owned(s))),
            Source::PrincipalId => {
                match self
                    .identity
                    .and_then(|i| i.authorizer.as_ref())
                    .and_then(|(_, p)| p.as_deref())
                {
                    Some(p) => Val::Text(Cow::Borrowed(p)),
                    None => Val::from_json(claims().and_then(|c| c.get("sub"))),
                }
            }
            Source::AuthorizerContext(name) => Val::from_json(
                self.identity
                    .and_then(|i| i.authorizer.as_ref())
                    .and_then(|(context, _)| context.get(*name)),
            ),
            Source::StageVariable(name) => {
                text(self.gw.stage_variables.get(*name).map(String::as_str))
            }
            Source::RequestBody(pointer) => {
                Val::from_json(self.body.and_then(|b| b.pointer(pointer)))
            }
            Source::ResponseBody(pointer) => {
                Val::from_json(self.answer.and_then(|b| b.pointer(pointer)))
            }
            Source::Item(depth, pointer) => {
                Val::from_json(frames.get(*depth).and_then(|f| f.item.pointer(pointer)))
            }
            Source::Loop(depth, field) => frames.get(*depth).map_or(Val::Missing, |f| {
                let flag = |b: bool| Val::Json(if b { &TRUE } else { &FALSE });
                match field {
                    LoopField::Index => Val::Number(f.index + 1),
                    LoopField::Index0 => Val::Number(f.index),
                    LoopField::First => flag(f.index == 0),
                    LoopField::Last => flag(f.index + 1 == f.len),
                }
            }),
        }
    }

    /// A text template's nodes, written to `out`; `false` when a loop has more than
    /// [`LOOP_MAX`] elements or the render more than `budget` iterations left (nothing more is
    /// written then).
    fn text_nodes<'f>(
        &'f self,
        nodes: &[Node],
        frames: &mut Vec<Frame<'f>>,
        out: &mut String,
        budget: &mut usize,
    ) -> bool {
        for node in nodes {
            match node {
                Node::Lit(l) => out.push_str(l),
                Node::Value(source, filters, in_string) => {
                    let mut v = self.read_in(source, frames);
                    for f in *filters {
                        v = apply(f, v);
                    }
                    if *in_string {
                        json_string_content(&v.text(), out);
                    } else {
                        match v {
                            Val::Missing => out.push_str("null"),
                            Val::Text(t) => {
                                out.push('"');
                                json_string_content(&t, out);
                                out.push('"');
                            }
                            Val::Json(j) => out.push_str(&j.to_string()),
                            Val::Number(n) => out.push_str(&n.to_string()),
                        }
                    }
                }
                Node::If(branches, otherwise) => {
                    let chosen = branches
                        .iter()
                        .find(|(c, _)| self.holds(c, frames))
                        .map_or(*otherwise, |(_, nodes)| *nodes);
                    if !self.text_nodes(chosen, frames, out, budget) {
                        return false;
                    }
                }
                Node::For(source, body) => {
                    let items: Vec<&'f serde_json::Value> = match self.read_in(source, frames) {
                        Val::Json(serde_json::Value::Array(items)) => items.iter().collect(),
                        Val::Json(serde_json::Value::Object(members)) => members.values().collect(),
                        _ => Vec::new(),
                    };
                    let n = items.len();
                    if n > LOOP_MAX || n > *budget {
                        return false;
                    }
                    *budget -= n;
                    for (i, item) in items.into_iter().enumerate() {
                        frames.push(Frame {
                            item,
                            index: i,
                            len: n,
                        });
                        let written = self.text_nodes(body, frames, out, budget);
                        frames.pop();
                        if !written {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    /// Whether a condition holds.
    fn holds(&self, c: &Cond, frames: &[Frame<'_>]) -> bool {
        match c {
            Cond::Is(o) => match self.operand(o, frames) {
                Val::Missing => false,
                Val::Json(serde_json::Value::Bool(b)) => *b,
                _ => true,
            },
            Cond::Not(c) => !self.holds(c, frames),
            Cond::All(cs) => cs.iter().all(|c| self.holds(c, frames)),
            Cond::Any(cs) => cs.iter().any(|c| self.holds(c, frames)),
            Cond::Eq(a, b, equal) => {
                let (a, b) = (self.operand(a, frames), self.operand(b, frames));
                let same = match (&a, &b) {
                    (Val::Missing, Val::Missing) => true,
                    _ => a.text() == b.text(),
                };
                same == *equal
            }
        }
    }

    fn operand<'f>(&'f self, o: &Operand, frames: &[Frame<'f>]) -> Val<'f> {
        match o {
            Operand::Value(s) => self.read_in(s, frames),
            Operand::Text(t) => Val::Text(Cow::Borrowed(t)),
            Operand::Bool(b) => Val::Json(if *b { &TRUE } else { &FALSE }),
            Operand::Null => Val::Missing,
        }
    }

    /// The template's text with each value passed to `escape` on its way in; `None` when every
    /// value in it is missing and nothing else was written (the edit is then skipped).
    fn render(&self, template: Template, escape: impl Fn(&str, &mut String)) -> Option<String> {
        let mut out = String::new();
        let mut wrote = false;
        for part in template {
            match part {
                Part::Lit(l) => {
                    out.push_str(l);
                    wrote |= !l.is_empty();
                }
                Part::Value(source, filters) => {
                    let mut v = self.read(source);
                    for f in *filters {
                        v = apply(f, v);
                    }
                    if !matches!(v, Val::Missing) {
                        let t = v.text();
                        wrote |= !t.is_empty();
                        escape(&t, &mut out);
                    }
                }
            }
        }
        wrote.then_some(out)
    }
}

impl Vars<'_> {
    /// A JSON template's value.
    fn json(&self, t: &JsonTemplate) -> serde_json::Value {
        use serde_json::Value as V;
        match t {
            JsonTemplate::Null => V::Null,
            JsonTemplate::Bool(b) => V::Bool(*b),
            JsonTemplate::Int(n) => V::from(*n),
            JsonTemplate::Uint(n) => V::from(*n),
            JsonTemplate::Float(f) => V::from(*f),
            JsonTemplate::Text(parts) => V::String(
                self.render(parts, |v, out| out.push_str(v))
                    .unwrap_or_default(),
            ),
            JsonTemplate::Value(source, filters) => {
                let mut v = self.read(source);
                for f in *filters {
                    v = apply(f, v);
                }
                match v {
                    Val::Missing => V::Null,
                    Val::Text(t) => V::String(t.into_owned()),
                    Val::Json(j) => j.clone(),
                    Val::Number(n) => V::from(n),
                }
            }
            JsonTemplate::Array(items) => V::Array(items.iter().map(|i| self.json(i)).collect()),
            JsonTemplate::Object(members) => V::Object(
                members
                    .iter()
                    .map(|(k, m)| ((*k).to_string(), self.json(m)))
                    .collect(),
            ),
        }
    }

    /// What `map` does, its values read now (from the body as it came): the edit is applied
    /// after, to the body itself, with nothing copied.
    pub(crate) fn body_edit(&self, map: &BodyMap) -> BodyEdit {
        match map {
            BodyMap::Template(t) => BodyEdit::Replace(self.json(t)),
            BodyMap::Text(nodes) => {
                let mut out = String::new();
                if self.text_nodes(nodes, &mut Vec::new(), &mut out, &mut { RENDER_MAX }) {
                    BodyEdit::Text(out)
                } else {
                    BodyEdit::TooMany
                }
            }
            BodyMap::Edits { set, remove } => BodyEdit::Edit {
                set: set.iter().map(|(p, t)| (*p, self.json(t))).collect(),
                remove,
            },
        }
    }
}

/// A body mapping with its values rendered.
pub(crate) enum BodyEdit {
    /// The new body.
    Replace(serde_json::Value),
    /// The new body's text, rendered by a text template.
    Text(String),
    /// A text template whose loops would run past their limits: no body.
    TooMany,
    /// Pointers set, then pointers removed.
    Edit {
        set: Vec<(&'static str, serde_json::Value)>,
        remove: &'static [&'static str],
    },
}

impl BodyEdit {
    /// The new body's bytes; `None` when the edit needs a JSON body and there is none.
    pub(crate) fn apply(self, body: Option<std::sync::Arc<serde_json::Value>>) -> Option<Vec<u8>> {
        let doc = match self {
            BodyEdit::Replace(v) => v,
            BodyEdit::Text(t) => return Some(t.into_bytes()),
            BodyEdit::TooMany => return None,
            BodyEdit::Edit { set, remove } => {
                // The gateway's only copy, normally: taken, not cloned.
                let mut doc =
                    std::sync::Arc::try_unwrap(body?).unwrap_or_else(|shared| (*shared).clone());
                for (pointer, value) in set {
                    set_pointer(&mut doc, pointer, value);
                }
                for pointer in remove {
                    remove_pointer(&mut doc, pointer);
                }
                doc
            }
        };
        serde_json::to_vec(&doc).ok()
    }
}

/// The elements a text template's loop goes through at most, as API Gateway's `#foreach`
/// (beyond, the mapping fails: a request is 400, an answer 502).
pub(crate) const LOOP_MAX: usize = 1_000;

/// The loop iterations one rendering of a text template makes at most, all loops together: a
/// template with nested loops cannot be made to spin by a body of many elements.
const RENDER_MAX: usize = 100_000;

/// `text` escaped as the content of a JSON string (no quotes around it).
fn json_string_content(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
}

/// The tokens of a JSON pointer, unescaped.
fn tokens(pointer: &str) -> impl Iterator<Item = String> + '_ {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
}

/// Sets the value at `pointer`, making the objects on the way; `-` appends to an array, an
/// index past the end is skipped. `""` replaces the document.
fn set_pointer(doc: &mut serde_json::Value, pointer: &str, value: serde_json::Value) {
    use serde_json::Value as V;
    let list: Vec<String> = tokens(pointer).collect();
    let Some((last, path)) = list.split_last() else {
        *doc = value;
        return;
    };
    let mut at = doc;
    for token in path {
        at = match at {
            V::Object(m) => m
                .entry(token.clone())
                .or_insert_with(|| V::Object(Default::default())),
            V::Array(items) => match token.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(item) => item,
                None => return,
            },
            _ => return,
        };
        if at.is_null() {
            *at = V::Object(Default::default());
        }
    }
    match at {
        V::Object(m) => {
            m.insert(last.clone(), value);
        }
        V::Array(items) if last == "-" => items.push(value),
        V::Array(items) => {
            if let Some(item) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                *item = value;
            }
        }
        _ => {}
    }
}

/// Removes the value at `pointer`, if there is one.
fn remove_pointer(doc: &mut serde_json::Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match doc.pointer_mut(parent) {
        Some(serde_json::Value::Object(m)) => {
            m.remove(&last);
        }
        Some(serde_json::Value::Array(items)) => {
            if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < items.len()) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

fn apply<'a>(f: &Filter, v: Val<'a>) -> Val<'a> {
    match f {
        Filter::Default(d) => match &v {
            Val::Missing => Val::Text(Cow::Borrowed(d)),
            Val::Text(t) if t.is_empty() => Val::Text(Cow::Borrowed(d)),
            _ => v,
        },
        Filter::Text => Val::Text(v.text()),
        Filter::Json => Val::Text(Cow::Owned(match v {
            Val::Missing => "null".to_string(),
            Val::Text(t) => serde_json::Value::String(t.into_owned()).to_string(),
            Val::Json(j) => j.to_string(),
            Val::Number(n) => n.to_string(),
        })),
        Filter::Base64 | Filter::UrlEncode | Filter::Lower | Filter::Upper => {
            if matches!(v, Val::Missing) {
                return v;
            }
            let t = v.text();
            Val::Text(Cow::Owned(match f {
                Filter::Base64 => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.encode(t.as_bytes())
                }
                Filter::UrlEncode => {
                    percent_encoding::utf8_percent_encode(&t, UNRESERVED_ONLY).to_string()
                }
                Filter::Lower => t.to_lowercase(),
                _ => t.to_uppercase(),
            }))
        }
    }
}

/// Everything but RFC 3986's unreserved characters is encoded.
const UNRESERVED_ONLY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The token's scopes: `scope` (space-separated) or `scp` (a list or a string).
fn scopes(claims: Option<&serde_json::Value>) -> Option<String> {
    let claims = claims?;
    match claims.get("scope").or_else(|| claims.get("scp"))? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(list) => Some(
            list.iter()
                .filter_map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

/// A value as a header value: control characters (CR and LF among them) dropped, tabs and
/// spaces kept inside.
fn header_text(value: &str, out: &mut String) {
    let plain = value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\t');
    if plain {
        out.push_str(value);
    } else {
        out.extend(value.chars().filter(|c| !c.is_control() || *c == '\t'));
    }
}

fn header_value(text: String) -> Option<HeaderValue> {
    HeaderValue::from_bytes(text.trim_matches([' ', '\t']).as_bytes()).ok()
}

/// The prefix of the headers the gateway gives upstreams about the caller. A client's own copies
/// are always removed, whatever the route says, so an upstream can trust them.
pub(crate) const IDENTITY_PREFIX: &str = "x-gateway-";

/// What a request transform does to the upstream request, decided before the request is
/// changed (templates read the request as the client sent it).
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
pub(crate) struct RequestEdits {
    headers: HeaderEdits,
    /// The new query string (`None`: unchanged).
    pub(crate) query: Option<Option<String>>,
    /// The new path (`None`: the integration's).
    pub(crate) path: Option<String>,
    /// The body mapping, rendered (`None`: the body is unchanged).
    pub(crate) body: Option<BodyEdit>,
}

/// Renders a request transform.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
pub(crate) fn request_edits(t: &TransformDef, vars: &Vars<'_>) -> RequestEdits {
    let mut headers = HeaderEdits::render(&t.request_headers, vars);
    if t.identity {
        identity_headers(vars.identity, &mut headers.set, &mut headers.add);
    }
    let query = (!t.query.is_empty()).then(|| edit_query(&t.query, vars));
    let path = t.path.map(|tpl| {
        vars.render(tpl, |v, out| crate::path::encode_value(out, v))
            .unwrap_or_default()
    });
    let body = t.request_body.as_ref().map(|map| vars.body_edit(map));
    RequestEdits {
        headers,
        query,
        path,
        body,
    }
}

/// The route's request transform rendered against the request as the client sent it (before the
/// integration changes anything), and the JSON body it read, taken out of the request: a body
/// mapping then edits the gateway's only copy.
#[cfg_attr(not(any(feature = "proxy", feature = "lambda")), allow(dead_code))]
pub(crate) fn render_request(
    x: &crate::pipeline::Exchange<'_, '_>,
    parts: &mut http::request::Parts,
) -> (
    Option<RequestEdits>,
    Option<std::sync::Arc<serde_json::Value>>,
) {
    let json = parts.extensions.remove::<RequestJson>().and_then(|j| j.0);
    let edits = x.route.transform.map(|t| {
        let identity = parts.extensions.get::<Identity>();
        let vars = Vars::new(x, &parts.method, &parts.uri, &parts.headers, identity)
            .with_bodies(json.as_deref(), None);
        request_edits(t, &vars)
    });
    (edits, json)
}

impl RequestEdits {
    /// Applies the header edits: remove, then set, then add.
    #[cfg_attr(not(any(feature = "proxy", feature = "lambda")), allow(dead_code))]
    pub(crate) fn apply_headers(self, headers: &mut HeaderMap) {
        self.headers.apply(headers);
    }

    /// The body mapping applied to `json`, the request's body: the new body, whose
    /// `Content-Type` is then JSON (`None`: the body is unchanged); 400 when the request has no
    /// JSON body to map.
    #[cfg_attr(not(any(feature = "proxy", feature = "lambda")), allow(dead_code))]
    pub(crate) fn mapped_body(
        &mut self,
        json: Option<std::sync::Arc<serde_json::Value>>,
        headers: &mut HeaderMap,
    ) -> Result<Option<Vec<u8>>, crate::problem::Problem> {
        if matches!(self.body, Some(BodyEdit::TooMany)) {
            return Err(crate::problem::Problem::bad_request(
                "the request body has more elements than this operation's mapping template goes through (1000 a loop)",
            ));
        }
        match self.body.take().map(|edit| edit.apply(json)) {
            Some(Some(mapped)) => {
                headers.remove(http::header::CONTENT_ENCODING);
                headers.insert(
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Ok(Some(mapped))
            }
            Some(None) => Err(crate::problem::Problem::bad_request(
                "this operation's transform edits a JSON request body, and the request has none",
            )),
            None => Ok(None),
        }
    }
}

/// Header edits with their values rendered: removed, set (`None`: the template gave nothing, so
/// only the old copies go), added.
pub(crate) struct HeaderEdits {
    remove: &'static [&'static str],
    set: Vec<(HeaderName, Option<HeaderValue>)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderEdits {
    /// Renders `edits`' templates with `vars`, each value made a safe header value.
    fn render(edits: &Edits, vars: &Vars<'_>) -> HeaderEdits {
        let value = |tpl: Template| vars.render(tpl, header_text).and_then(header_value);
        HeaderEdits {
            remove: edits.remove,
            set: (edits.set.iter())
                .filter_map(|(n, tpl)| Some((name(n)?, value(tpl))))
                .collect(),
            add: (edits.add.iter())
                .filter_map(|(n, tpl)| Some((name(n)?, value(tpl)?)))
                .collect(),
        }
    }

    /// Applies them: remove, then set, then add.
    fn apply(self, headers: &mut HeaderMap) {
        for n in self.remove {
            headers.remove(*n);
        }
        for (n, v) in self.set {
            // `insert` replaces every copy the request had.
            match v {
                Some(v) => {
                    headers.insert(n, v);
                }
                None => {
                    headers.remove(n);
                }
            }
        }
        for (n, v) in self.add {
            headers.append(n, v);
        }
    }
}

/// The identity headers (`identity: true`): who the caller is, as verified.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
fn identity_headers(
    identity: Option<&Identity>,
    set: &mut Vec<(HeaderName, Option<HeaderValue>)>,
    add: &mut Vec<(HeaderName, HeaderValue)>,
) {
    let Some(id) = identity else {
        return;
    };
    let mut put = |name: &'static str, value: Option<String>| {
        let value = value.map(|v| {
            let mut clean = String::new();
            header_text(&v, &mut clean);
            clean
        });
        if let Some(v) = value.and_then(header_value) {
            set.push((HeaderName::from_static(name), Some(v)));
        }
    };
    let claims = id.claims.as_deref();
    let claim = |k: &str| {
        claims
            .and_then(|c| c.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let principal = id
        .authorizer
        .as_ref()
        .and_then(|(_, p)| p.clone())
        .or_else(|| claim("sub"));
    put("x-gateway-sub", principal);
    put("x-gateway-issuer", claim("iss"));
    put("x-gateway-scopes", scopes(claims));
    put(
        "x-gateway-api-key",
        id.key.as_ref().map(|(_, name)| name.clone()),
    );
    put(
        "x-gateway-plan",
        id.plan.as_ref().map(|(plan, _)| plan.clone()),
    );
    if let Some(c) = claims {
        use base64::Engine;
        put(
            "x-gateway-claims",
            Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string())),
        );
    }
    if let Some(serde_json::Value::Object(context)) = id.authorizer.as_ref().map(|(c, _)| c) {
        for (key, value) in context {
            let name: String = key
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            let Ok(name) =
                HeaderName::from_bytes(format!("{IDENTITY_PREFIX}context-{name}").as_bytes())
            else {
                continue;
            };
            let text = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let mut clean = String::new();
            header_text(&text, &mut clean);
            if let Some(v) = header_value(clean) {
                add.push((name, v));
            }
        }
    }
}

/// The query string after `edits`: pairs named in `remove` or `set` dropped (as sent, by
/// decoded name), the rest kept as the client wrote them, then `set` and `add` pairs appended,
/// percent-encoded. `None`: no query.
#[cfg_attr(not(feature = "proxy"), allow(dead_code))]
fn edit_query(edits: &Edits, vars: &Vars<'_>) -> Option<String> {
    let mut out = String::new();
    let dropped =
        |name: &str| edits.remove.contains(&name) || edits.set.iter().any(|(n, _)| *n == name);
    for raw in vars
        .query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let name = raw.split_once('=').map_or(raw, |(k, _)| k);
        let decoded = crate::validate::input::parse_pairs(name);
        let decoded = decoded
            .first()
            .map_or(Cow::Borrowed(""), |(k, _)| k.clone());
        if dropped(&decoded) {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(raw);
    }
    for (name, tpl) in edits.set.iter().chain(edits.add) {
        let Some(value) = vars.render(tpl, |v, out| {
            out.extend(percent_encoding::utf8_percent_encode(v, UNRESERVED_ONLY))
        }) else {
            continue;
        };
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(percent_encoding::utf8_percent_encode(name, UNRESERVED_ONLY));
        out.push('=');
        out.push_str(&value);
    }
    (!out.is_empty()).then_some(out)
}

/// What a response transform reads of the request, kept while the integration runs.
pub(crate) struct RequestCopy {
    method: Method,
    uri: http::Uri,
    headers: HeaderMap,
    identity: Option<Identity>,
    body: Option<std::sync::Arc<serde_json::Value>>,
}

impl RequestCopy {
    /// A copy of what `t`'s response edits may read, when it has any.
    pub(crate) fn of<B>(t: &TransformDef, req: &http::Request<B>) -> Option<RequestCopy> {
        let templated = |e: &Edits| !e.set.is_empty() || !e.add.is_empty();
        let templates = templated(&t.response_headers)
            || t.maps_response_body()
            || t.cases.iter().any(|c| templated(&c.headers));
        templates.then(|| RequestCopy {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: if t.response_reads_headers {
                req.headers().clone()
            } else {
                HeaderMap::new()
            },
            identity: req.extensions().get::<Identity>().cloned(),
            body: req
                .extensions()
                .get::<RequestJson>()
                .and_then(|j| j.0.clone()),
        })
    }
}

/// The status an answer of `status` gets: an exact mapping first, then its class's.
fn mapped_status(map: &[(u16, bool, u16)], status: u16) -> Option<StatusCode> {
    let exact = map.iter().find(|(s, class, _)| !class && *s == status);
    let class = || {
        map.iter()
            .find(|(s, class, _)| *class && *s == status / 100)
    };
    exact
        .or_else(class)
        .and_then(|(_, _, to)| StatusCode::from_u16(*to).ok())
}

/// A mock's `status_from`: the status the template renders for this request, if it renders one
/// from 100 to 599, bare or as the `statusCode` of a JSON object (as an API Gateway mock's
/// request template does: `{"statusCode": 404}`).
pub(crate) fn status_from<B>(
    template: &[Node],
    x: &crate::pipeline::Exchange<'_, '_>,
    req: &http::Request<B>,
) -> Option<u16> {
    let identity = req.extensions().get::<Identity>();
    let vars = Vars::new(x, req.method(), req.uri(), req.headers(), identity);
    let mut text = String::new();
    if !vars.text_nodes(template, &mut Vec::new(), &mut text, &mut { RENDER_MAX }) {
        return None;
    }
    let text = text.trim();
    let status = match text.parse::<u16>() {
        Ok(s) => s,
        Err(_) => match serde_json::from_str::<serde_json::Value>(text)
            .ok()?
            .get("statusCode")?
        {
            serde_json::Value::Number(n) => u16::try_from(n.as_u64()?).ok()?,
            serde_json::Value::String(s) => s.trim().parse().ok()?,
            _ => return None,
        },
    };
    (100..=599).contains(&status).then_some(status)
}

/// The largest answer a response body mapping reads; a larger one is 502.
const MAX_MAPPED: usize = 16 << 20;

/// Applies a response transform: the status mapping, then remove → set → add on the headers,
/// then the body mapping (which reads the answer whole; an answer that is not JSON passes
/// unchanged).
pub(crate) async fn apply_response(
    t: &TransformDef,
    copy: Option<&RequestCopy>,
    x: &crate::pipeline::Exchange<'_, '_>,
    mut resp: http::Response<axum::body::Body>,
) -> Result<http::Response<axum::body::Body>, crate::problem::Problem> {
    let (to, header_edits, body_map) = t.for_status(resp.status().as_u16());
    if let Some(to) = to {
        *resp.status_mut() = to;
    }
    // Without a copy of the request there is no template to render (see `RequestCopy::of`):
    // only removals.
    let Some(copy) = copy else {
        for n in header_edits.remove {
            resp.headers_mut().remove(*n);
        }
        return Ok(resp);
    };
    let answer = match body_map {
        Some(_) => {
            let (parts, body) = resp.into_parts();
            let limited = http_body_util::Limited::new(body, MAX_MAPPED);
            let bytes = match http_body_util::BodyExt::collect(limited).await {
                Ok(c) => c.to_bytes(),
                Err(_) => return Err(crate::problem::Problem::bad_gateway()),
            };
            let json = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
            resp = http::Response::from_parts(parts, axum::body::Body::from(bytes));
            json.map(std::sync::Arc::new)
        }
        None => None,
    };
    let vars = Vars::new(
        x,
        &copy.method,
        &copy.uri,
        &copy.headers,
        copy.identity.as_ref(),
    )
    .with_bodies(copy.body.as_deref(), answer.as_deref());
    // A template that reads the answer's headers reads them as the upstream sent them.
    let answer_headers = t.reads_answer_headers.then(|| resp.headers().clone());
    let vars = vars.with_answer_headers(answer_headers.as_ref());
    HeaderEdits::render(header_edits, &vars).apply(resp.headers_mut());
    // An answer that is not JSON passes unchanged, unless the mapping makes a new body without
    // reading the answer's (a fixed error body for a status).
    let edit = match (body_map, &answer) {
        (Some(map), Some(_)) => Some(vars.body_edit(map)),
        (Some(map), None) if !map.reads_answer() => Some(vars.body_edit(map)),
        _ => None,
    };
    if matches!(edit, Some(BodyEdit::TooMany)) {
        return Err(crate::problem::Problem::bad_gateway());
    }
    if let Some(edit) = edit {
        if let Some(bytes) = edit.apply(answer) {
            let headers = resp.headers_mut();
            // The body changed: its length is the new one, and validators of the old one go.
            headers.remove(http::header::CONTENT_LENGTH);
            headers.remove(http::header::ETAG);
            headers.remove(http::header::CONTENT_ENCODING);
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            *resp.body_mut() = axum::body::Body::from(bytes);
        }
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_bodies_do_not_read_the_answer() {
        static FIXED: BodyMap = BodyMap::Template(JsonTemplate::Object(&[(
            "id",
            JsonTemplate::Value(Source::Path("id"), &[]),
        )]));
        static READS: BodyMap = BodyMap::Text(&[Node::If(
            &[(
                Cond::Is(Operand::Value(Source::ResponseBody("/ok"))),
                &[Node::Lit("1")],
            )],
            &[],
        )]);
        static LOOPS: BodyMap =
            BodyMap::Text(&[Node::For(Source::ResponseBody("/items"), &[Node::Lit("x")])]);
        static EDITS: BodyMap = BodyMap::Edits {
            set: &[],
            remove: &["/a"],
        };
        assert!(!FIXED.reads_answer());
        assert!(READS.reads_answer());
        assert!(LOOPS.reads_answer());
        assert!(EDITS.reads_answer());
    }

    #[test]
    fn header_values_never_gain_a_line_break() {
        let mut out = String::new();
        header_text("a\r\nX-Evil: 1\0\tb", &mut out);
        assert_eq!(out, "aX-Evil: 1\tb");
        assert!(header_value(out).is_some());
        let mut out = String::new();
        header_text("café\u{85}\u{7f}!", &mut out);
        assert_eq!(out, "café!");
        let mut out = String::new();
        header_text("plain value", &mut out);
        assert_eq!(out, "plain value");
    }

    #[test]
    fn filters() {
        let t = |f: Filter, v: &str| {
            apply(&f, Val::Text(Cow::Owned(v.into())))
                .text()
                .into_owned()
        };
        assert_eq!(t(Filter::Json, "a\"b"), "\"a\\\"b\"");
        assert_eq!(t(Filter::Base64, "ab?"), "YWI/");
        assert_eq!(t(Filter::UrlEncode, "a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(t(Filter::Lower, "ÀB"), "àb");
        assert_eq!(t(Filter::Upper, "ab"), "AB");
        assert_eq!(t(Filter::Default("x"), ""), "x");
        assert_eq!(t(Filter::Default("x"), "y"), "y");
        assert_eq!(apply(&Filter::Default("x"), Val::Missing).text(), "x");
        assert_eq!(apply(&Filter::Json, Val::Missing).text(), "null");
        assert!(matches!(apply(&Filter::Text, Val::Missing), Val::Text(t) if t.is_empty()));
        let n = serde_json::json!(7);
        assert!(matches!(apply(&Filter::Text, Val::Json(&n)), Val::Text(t) if t == "7"));
        assert!(matches!(apply(&Filter::Upper, Val::Missing), Val::Missing));
        let list = serde_json::json!(["a", 1]);
        assert_eq!(apply(&Filter::Json, Val::Json(&list)).text(), "[\"a\",1]");
        assert_eq!(Val::Json(&list).text(), "[\"a\",1]");
    }

    #[test]
    fn pointers_set_and_remove() {
        let mut doc = serde_json::json!({"a": {"b~c/d": 1}, "l": [1, 2, 3]});
        set_pointer(&mut doc, "/x/y", serde_json::json!(true));
        set_pointer(&mut doc, "/l/-", serde_json::json!(4));
        set_pointer(&mut doc, "/l/0", serde_json::json!(0));
        set_pointer(&mut doc, "/l/9", serde_json::json!(9));
        remove_pointer(&mut doc, "/a/b~0c~1d");
        remove_pointer(&mut doc, "/l/1");
        remove_pointer(&mut doc, "/nothing/here");
        assert_eq!(
            doc,
            serde_json::json!({"a": {}, "l": [0, 3, 4], "x": {"y": true}})
        );
        set_pointer(&mut doc, "", serde_json::json!([]));
        assert_eq!(doc, serde_json::json!([]));
    }

    #[test]
    fn an_exact_status_wins_over_its_class() {
        let map = [(5, true, 502), (503, false, 429), (404, false, 200)];
        let to = |s| mapped_status(&map, s).map(|s| s.as_u16());
        assert_eq!(to(503), Some(429));
        assert_eq!(to(500), Some(502));
        assert_eq!(to(404), Some(200));
        assert_eq!(to(200), None);
        assert_eq!(to(401), None);
    }

    #[test]
    fn scopes_from_either_claim() {
        assert_eq!(
            scopes(Some(&serde_json::json!({"scope": "a b"}))),
            Some("a b".into())
        );
        assert_eq!(
            scopes(Some(&serde_json::json!({"scp": ["a", "b"]}))),
            Some("a b".into())
        );
        assert_eq!(scopes(Some(&serde_json::json!({}))), None);
    }
}
