//! Request (and optional response) validation for a gateway: every route's parameters, body and
//! responses compiled by [`crate::validator`] from the spec's own schemas.
//!
//! This runs as part of checking, so `gwgen check` reports a schema the generator cannot honour
//! (an unresolvable `$dynamicRef`, a reference that loops without moving) at its line and column.
//! The result is plain data (the functions as token text, the rest as structs) that the emitter
//! turns into statics.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::diag::{Code, Diagnostics};
use crate::ir::{Gateway, ParamIn, SchemaRef};
use crate::load::node::split_pointer;
use crate::load::Sources;
use crate::validator::{self, Compiler, Dialect, Direction, Features, Options};
use crate::xgw::{ResponseValidation, Validate};
use crate::Version;

/// What a string value becomes before validation (see the runtime's `Shape`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// One value; the mask says which JSON types it may convert to.
    Scalar(u8),
    /// An array of values.
    Array(u8),
    /// An object: declared properties, then the types of others.
    Object(Vec<(String, Shape)>, u8),
}

/// One parameter's check.
#[derive(Debug, Clone)]
pub struct ParamCheck {
    /// Wire name.
    pub name: String,
    /// Where.
    pub location: ParamIn,
    /// Style.
    pub style: String,
    /// Explode.
    pub explode: bool,
    /// Required.
    pub required: bool,
    /// `allowEmptyValue`.
    pub allow_empty: bool,
    /// Shape.
    pub shape: Shape,
    /// Schema function, by name.
    pub schema: Option<String>,
    /// Position among the template's parameters (path parameters).
    pub index: usize,
    /// The schema's quick check of a single value, by name, when it has one.
    pub quick: Option<String>,
}

/// One accepted request media type.
#[derive(Debug, Clone)]
pub struct MediaCheck {
    /// The media range.
    pub range: String,
    /// `Json`, `Form`, `Multipart` or `Opaque`.
    pub kind: &'static str,
    /// Field shapes, for forms.
    pub shape: Shape,
    /// Schema function, by name.
    pub schema: Option<String>,
    /// Streaming check, by name (JSON bodies whose schema has one).
    pub stream: Option<String>,
}

/// A route's body check.
#[derive(Debug, Clone)]
pub struct BodyCheck {
    /// `required`.
    pub required: bool,
    /// Accepted media types.
    pub media: Vec<MediaCheck>,
}

/// A response's schemas (JSON media types only).
#[derive(Debug, Clone)]
pub struct ResponseCheck {
    /// `200`, `2XX` or `default`.
    pub status: String,
    /// Media range and schema function.
    pub media: Vec<(String, String)>,
}

/// A route's checks.
#[derive(Debug, Clone, Default)]
pub struct RouteCheck {
    /// Parameters.
    pub params: Vec<ParamCheck>,
    /// Body.
    pub body: Option<BodyCheck>,
    /// Responses, compiled when response validation may be on.
    pub responses: Vec<ResponseCheck>,
    /// Response validation, when the operation sets it.
    pub response_mode: Option<ResponseValidation>,
}

/// Validation for a whole gateway.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// Per route (same order as the gateway's routes); `None` when `validate.requests` is off
    /// and no response is checked.
    pub routes: Vec<Option<RouteCheck>>,
    /// Whether patterns are used (the runtime's `patterns` feature).
    pub patterns: bool,
    /// The message schemas of WebSocket routes: by gateway route index, the schema function of
    /// each of its API's routes (in `routes` order).
    pub messages: BTreeMap<usize, Vec<Option<String>>>,
}

fn media_kind(range: &str) -> &'static str {
    let r = range.to_ascii_lowercase();
    let essence = r.split(';').next().unwrap_or("").trim().to_string();
    if essence == "application/json" || essence.ends_with("+json") {
        "Json"
    } else if essence == "application/x-www-form-urlencoded" {
        "Form"
    } else if essence == "multipart/form-data" {
        "Multipart"
    } else {
        "Opaque"
    }
}

fn encode_fragment(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for b in pointer.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn mode_of(v: Option<&Validate>) -> Option<ResponseValidation> {
    v?.responses
}

/// Compiles every route's validation. Problems go to `diags` (at most one per schema location).
/// Without `emit`, the schemas are only analysed (what `gwgen check` needs): the result has the
/// routes' checks but no code.
pub fn compile(
    sources: &Sources,
    gw: &Gateway,
    diags: &mut Diagnostics,
    emit: bool,
) -> (Validation, proc_macro2::TokenStream) {
    let uris: Vec<String> = sources
        .files
        .iter()
        .map(|f| validator::file_uri(&f.real_path))
        .collect();
    let mut docs: Vec<(String, Value)> = sources
        .files
        .iter()
        .zip(&uris)
        .map(|(f, u)| (u.clone(), f.root.to_json()))
        .collect();
    // Schema resources embedded in a document (an absolute `$id` below `paths` or `components`)
    // are registered under their own URI: the registry walks schema keywords only, and an
    // OpenAPI document is not a schema.
    for (uri, (file, ptr)) in sources.embedded_ids() {
        if let Some(node) = sources
            .file(file)
            .root
            .pointer(crate::load::node::split_pointer(ptr))
        {
            docs.push((uri.to_string(), node.to_json()));
        }
    }
    let dialect = match gw.version {
        Version::V30 => Dialect::Oas30,
        Version::V31 => Dialect::Draft2020,
    };
    let registry = match validator::registry(&docs, dialect) {
        Ok(r) => r,
        Err(e) => {
            diags.report(
                Code::SchemaNotCompiled,
                &sources.files[0].path,
                Default::default(),
                "",
                format!("the spec's schemas cannot be indexed: {e}"),
                None,
            );
            return (Validation::default(), proc_macro2::TokenStream::new());
        }
    };
    let features = Features::scan(docs.iter().map(|(_, v)| v));
    let mut requests = Compiler::new(
        &registry,
        features,
        Options {
            dialect,
            formats: true,
            direction: Direction::Request,
            prefix: "q".into(),
            emit,
        },
    );
    let mut responses = Compiler::new(
        &registry,
        features,
        Options {
            dialect,
            formats: true,
            direction: Direction::Response,
            prefix: "r".into(),
            emit,
        },
    );
    let stage_modes: Vec<ResponseValidation> = gw
        .stages
        .iter()
        .filter_map(|s| mode_of(s.settings.validate.as_ref()))
        .collect();
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    let entry_id = |c: &mut Compiler<'_>,
                    r: &SchemaRef,
                    failed: &mut BTreeMap<String, String>|
     -> Option<usize> {
        let uri = format!("{}#{}", uris.get(r.file)?, encode_fragment(&r.pointer));
        match c.entry(&uri) {
            Ok(id) => Some(id),
            Err(e) => {
                failed.entry(e.location).or_insert(e.message);
                None
            }
        }
    };
    let entry =
        |c: &mut Compiler<'_>,
         r: &SchemaRef,
         failed: &mut BTreeMap<String, String>|
         -> Option<String> { entry_id(c, r, failed).map(|id| c.fn_ident(id).to_string()) };
    let mut routes = Vec::new();
    let mut messages = BTreeMap::new();
    for (index, route) in gw.routes.iter().enumerate() {
        if let Some(ws) = &route.websocket {
            let fns = ws
                .schemas
                .iter()
                .map(|s| {
                    s.as_ref()
                        .and_then(|s| entry(&mut requests, s, &mut failed))
                })
                .collect();
            messages.insert(index, fns);
        }
        let v = route.settings.validate.as_ref();
        let parts = v
            .and_then(|v| v.requests)
            .unwrap_or(crate::xgw::RequestValidation::All);
        let check_requests = parts != crate::xgw::RequestValidation::Off;
        let response_mode = mode_of(v);
        let check_responses = match response_mode {
            Some(m) => m != ResponseValidation::Off,
            None => stage_modes.iter().any(|m| *m != ResponseValidation::Off),
        };
        if !check_requests && !check_responses {
            routes.push(None);
            continue;
        }
        let mut rc = RouteCheck {
            response_mode,
            ..RouteCheck::default()
        };
        if check_requests {
            let template = crate::lower::template_params(&route.segments);
            for p in route.params.iter().filter(|_| parts.parameters()) {
                let id = p
                    .schema
                    .as_ref()
                    .and_then(|s| entry_id(&mut requests, s, &mut failed));
                let schema = id.map(|id| requests.fn_ident(id).to_string());
                let shape = p
                    .schema
                    .as_ref()
                    .map(|s| shape_of(&registry, &uris, s))
                    .unwrap_or(Shape::Scalar(0));
                // Single values of the default styles are checked without a document first.
                let single = matches!(shape, Shape::Scalar(_))
                    && matches!(
                        (p.location, p.style.as_str()),
                        (ParamIn::Path, "simple") | (ParamIn::Query, "form")
                    );
                let quick = id
                    .filter(|_| single)
                    .and_then(|id| requests.scalar_entry(id))
                    .map(|f| f.to_string());
                rc.params.push(ParamCheck {
                    name: p.name.clone(),
                    location: p.location,
                    style: p.style.clone(),
                    explode: p.explode,
                    required: p.required,
                    allow_empty: p.allow_empty,
                    shape,
                    schema,
                    index: template.iter().position(|t| *t == p.name).unwrap_or(0),
                    quick,
                });
            }
            if let Some(body) = route.request_body.as_ref().filter(|_| parts.body()) {
                let media = body
                    .content
                    .iter()
                    .map(|m| {
                        let kind = media_kind(&m.media_type);
                        let (schema, stream) = match (kind, &m.schema) {
                            ("Opaque", _) | (_, None) => (None, None),
                            ("Json", Some(s)) => match entry_id(&mut requests, s, &mut failed) {
                                Some(id) => (
                                    Some(requests.fn_ident(id).to_string()),
                                    requests.stream_entry(id).map(|z| z.to_string()),
                                ),
                                None => (None, None),
                            },
                            (_, Some(s)) => (entry(&mut requests, s, &mut failed), None),
                        };
                        let shape = match (kind, &m.schema) {
                            ("Form" | "Multipart", Some(s)) => shape_of(&registry, &uris, s),
                            _ => Shape::Scalar(0),
                        };
                        MediaCheck {
                            range: m
                                .media_type
                                .split(';')
                                .next()
                                .unwrap_or("")
                                .trim()
                                .to_ascii_lowercase(),
                            kind,
                            shape,
                            schema,
                            stream,
                        }
                    })
                    .collect();
                rc.body = Some(BodyCheck {
                    required: body.required,
                    media,
                });
            }
        }
        if check_responses {
            for resp in &route.responses {
                let media: Vec<(String, String)> = resp
                    .content
                    .iter()
                    .filter(|m| media_kind(&m.media_type) == "Json")
                    .filter_map(|m| {
                        let f = entry(&mut responses, m.schema.as_ref()?, &mut failed)?;
                        Some((m.media_type.to_ascii_lowercase(), f))
                    })
                    .collect();
                rc.responses.push(ResponseCheck {
                    status: resp.status.to_ascii_uppercase(),
                    media,
                });
            }
        }
        routes.push(Some(rc));
    }
    let (q_code, q_errors, q_needs) = requests.finish();
    let (r_code, r_errors, r_needs) = responses.finish();
    for e in q_errors.into_iter().chain(r_errors) {
        failed.entry(e.location).or_insert(e.message);
    }
    for (location, message) in failed {
        // Pattern problems are already reported by the schema checks, with their own codes.
        if message.starts_with("the pattern `") {
            continue;
        }
        let (file, pos, pointer) = locate(sources, &uris, &location);
        diags.report(Code::SchemaNotCompiled, &file, pos, &pointer, message, None);
    }
    let validation = Validation {
        routes,
        patterns: q_needs.patterns || r_needs.patterns,
        messages,
    };
    (validation, quote::quote! { #q_code #r_code })
}

/// The file, position and pointer of `uri#pointer`, as far as the pointer reaches.
fn locate(
    sources: &Sources,
    uris: &[String],
    location: &str,
) -> (std::path::PathBuf, crate::load::node::Pos, String) {
    let (base, fragment) = location.split_once('#').unwrap_or((location, ""));
    let idx = uris.iter().position(|u| u == base).unwrap_or(0);
    let file = &sources.files[idx];
    let pointer = crate::load::percent_decode(fragment);
    let mut segs = split_pointer(&pointer);
    loop {
        if let Some(n) = file.root.pointer(segs.iter()) {
            return (file.path.clone(), n.pos, pointer);
        }
        if segs.pop().is_none() {
            return (file.path.clone(), Default::default(), pointer);
        }
    }
}

/// Reads a schema's types to decide what a parameter's or form field's strings become.
fn shape_of(registry: &referencing::Registry<'_>, uris: &[String], r: &SchemaRef) -> Shape {
    let Some(base) = uris.get(r.file) else {
        return Shape::Scalar(0);
    };
    let Ok(base_uri) = referencing::uri::from_str(base) else {
        return Shape::Scalar(0);
    };
    let resolver = registry.resolver(base_uri);
    let Ok(resolved) = resolver.lookup(&format!("#{}", encode_fragment(&r.pointer))) else {
        return Shape::Scalar(0);
    };
    let (value, resolver, _) = resolved.into_inner();
    shape_value(value, &resolver, 0)
}

fn deref<'r>(
    value: &'r Value,
    resolver: &referencing::Resolver<'r>,
) -> (&'r Value, referencing::Resolver<'r>) {
    let mut v = value;
    let mut r = resolver.clone();
    for _ in 0..16 {
        let Some(reference) = v.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Ok(next) = r.lookup(reference) else { break };
        let (nv, nr, _) = next.into_inner();
        v = nv;
        r = nr;
    }
    (v, r)
}

fn type_mask(value: &Value, resolver: &referencing::Resolver<'_>, depth: usize) -> u8 {
    let (v, r) = deref(value, resolver);
    let mut mask = match v.get("type") {
        Some(Value::String(s)) => validator::type_bit(s),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(validator::type_bit)
            .fold(0, |a, b| a | b),
        _ => 0,
    };
    if mask == 0 && depth < 4 {
        for kw in ["oneOf", "anyOf", "allOf"] {
            for s in v.get(kw).and_then(Value::as_array).into_iter().flatten() {
                mask |= type_mask(s, &r, depth + 1);
            }
        }
    }
    if mask == 0 {
        if v.get("properties").is_some() || v.get("additionalProperties").is_some() {
            mask = 64;
        } else if v.get("items").is_some() {
            mask = 32;
        }
    }
    if v.get("nullable") == Some(&Value::Bool(true)) {
        mask |= 1;
    }
    mask
}

fn shape_value(value: &Value, resolver: &referencing::Resolver<'_>, depth: usize) -> Shape {
    let (v, r) = deref(value, resolver);
    let mask = type_mask(v, &r, 0);
    let scalar = mask & !(32 | 64);
    if mask & 64 != 0 && depth == 0 {
        let props = v
            .get("properties")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, s)| (k.clone(), shape_value(s, &r, depth + 1)))
                    .collect()
            })
            .unwrap_or_default();
        let other = match v.get("additionalProperties") {
            Some(s @ Value::Object(_)) => type_mask(s, &r, 0) & !(32 | 64),
            _ => 0,
        };
        return Shape::Object(props, other);
    }
    if mask & 32 != 0 {
        let items = v
            .get("items")
            .map(|s| type_mask(s, &r, 0) & !(32 | 64))
            .unwrap_or(0);
        return Shape::Array(items);
    }
    Shape::Scalar(scalar)
}
