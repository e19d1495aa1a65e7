//! Swagger 2.0 documents converted to OpenAPI 3.0 on load, as API Gateway's console exports REST
//! APIs by default. Every new node keeps the position of the text it came from; what has no
//! exact 3.0 form is refused where it stands (GW0004), never guessed.

use std::path::Path;

use super::tree::{array, object, string};
use crate::diag::{Code, Diagnostics};
use crate::load::node::{Entry, Node, Pos, Value};

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

/// Keywords a Swagger 2.0 parameter, header or `items` holds that are schema keywords in 3.0
/// (with `collectionFormat`, which becomes `style` and `explode`). The checker warns about them
/// in a 3.0 document (GW0108).
pub(crate) const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "items",
    "collectionFormat",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
];

struct Converter<'a> {
    file: &'a Path,
    root: &'a Node,
    diags: &'a mut Diagnostics,
    consumes: Vec<String>,
    produces: Vec<String>,
}

/// Whether `root` is a Swagger 2.0 document.
pub(crate) fn is_swagger2(root: &Node) -> bool {
    root.get("swagger")
        .and_then(super::tree::scalar_text)
        .is_some_and(|v| v == "2.0")
}

/// The OpenAPI 3.0.3 form of the Swagger 2.0 document `root`.
pub(crate) fn convert(root: &Node, file: &Path, diags: &mut Diagnostics) -> Node {
    let mut c = Converter {
        file,
        root,
        diags,
        consumes: media_list(root.get("consumes")),
        produces: media_list(root.get("produces")),
    };
    let mut out: Vec<Entry> = Vec::new();
    let mut push = |key: &str, key_pos: Pos, value: Node| {
        out.push(Entry {
            key: key.to_string(),
            key_pos,
            value,
        })
    };
    let swagger = root.entry("swagger").expect("checked by is_swagger2");
    push(
        "openapi",
        swagger.key_pos,
        string(swagger.value.pos, "3.0.3"),
    );
    let mut components: Vec<(&str, Node)> = Vec::new();
    for e in root.entries() {
        match e.key.as_str() {
            "swagger" | "consumes" | "produces" | "schemes" | "basePath" => {}
            "host" => {
                let scheme = root
                    .get("schemes")
                    .and_then(|s| s.items().first())
                    .and_then(Node::as_str)
                    .unwrap_or("https");
                let base = root.get("basePath").and_then(Node::as_str).unwrap_or("");
                let host = e.value.as_str().unwrap_or("");
                let server = object(
                    e.value.pos,
                    vec![(
                        "url",
                        string(e.value.pos, format!("{scheme}://{host}{base}")),
                    )],
                );
                push("servers", e.key_pos, array(e.value.pos, vec![server]));
            }
            "paths" => {
                let paths = c.paths(&e.value);
                push("paths", e.key_pos, paths);
            }
            "definitions" => components.push(("schemas", rewrite_refs(&e.value))),
            "parameters" => {
                let mut params = Vec::new();
                for p in e.value.entries() {
                    // Body and form parameters have no 3.0 component form; operations that use
                    // them get them inline (see `operation`).
                    if !matches!(
                        p.value.get("in").and_then(Node::as_str),
                        Some("body" | "formData")
                    ) {
                        params.push(Entry {
                            key: p.key.clone(),
                            key_pos: p.key_pos,
                            value: c.parameter(&p.value),
                        });
                    }
                }
                components.push(("parameters", Node::new(Value::Object(params), e.value.pos)));
            }
            "responses" => {
                let produces = c.produces.clone();
                components.push(("responses", c.responses(&e.value, &produces)));
            }
            "securityDefinitions" => {
                let schemes = e
                    .value
                    .entries()
                    .iter()
                    .map(|s| Entry {
                        key: s.key.clone(),
                        key_pos: s.key_pos,
                        value: c.security_scheme(&s.value),
                    })
                    .collect();
                components.push((
                    "securitySchemes",
                    Node::new(Value::Object(schemes), e.value.pos),
                ));
            }
            _ => push(&e.key, e.key_pos, rewrite_refs(&e.value)),
        }
    }
    if root.get("host").is_none() {
        if let Some(base) = root.entry("basePath") {
            let server = object(base.value.pos, vec![("url", base.value.clone())]);
            out.push(Entry {
                key: "servers".into(),
                key_pos: base.key_pos,
                value: array(base.value.pos, vec![server]),
            });
        }
    }
    if !components.is_empty() {
        let pos = components[0].1.pos;
        out.push(Entry {
            key: "components".into(),
            key_pos: pos,
            value: object(pos, components),
        });
    }
    Node::new(Value::Object(out), root.pos)
}

fn media_list(node: Option<&Node>) -> Vec<String> {
    node.map(|n| {
        n.items()
            .iter()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect()
    })
    .unwrap_or_default()
}

/// A copy of `node` with Swagger 2.0 references and schema spellings in their 3.0 form.
fn rewrite_refs(node: &Node) -> Node {
    let mut out = node.clone();
    let mut stack = vec![&mut out];
    while let Some(n) = stack.pop() {
        match &mut n.value {
            Value::Object(entries) => {
                for e in entries.iter_mut() {
                    if e.key == "$ref" {
                        if let Value::String(s) = &mut e.value.value {
                            *s = ref_30(s);
                        }
                    } else if e.key == "x-nullable" {
                        e.key = "nullable".into();
                    } else if e.key == "type" && e.value.as_str() == Some("file") {
                        e.value.value = Value::String("string".into());
                    } else if e.key == "discriminator" {
                        if let Some(name) = e.value.as_str().map(str::to_string) {
                            e.value = object(
                                e.value.pos,
                                vec![("propertyName", string(e.value.pos, name))],
                            );
                        }
                    }
                }
                stack.extend(entries.iter_mut().map(|e| &mut e.value));
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    out
}

fn ref_30(reference: &str) -> String {
    for (from, to) in [
        ("#/definitions/", "#/components/schemas/"),
        ("#/parameters/", "#/components/parameters/"),
        ("#/responses/", "#/components/responses/"),
    ] {
        if let Some(rest) = reference.strip_prefix(from) {
            return format!("{to}{rest}");
        }
        if let Some((file, frag)) = reference.split_once('#') {
            if let Some(rest) = format!("#{frag}").strip_prefix(from) {
                return format!("{file}{to}{rest}");
            }
        }
    }
    reference.to_string()
}

impl Converter<'_> {
    fn refuse(&mut self, pos: Pos, msg: impl Into<String>) {
        self.diags.report(
            Code::Swagger2,
            self.file,
            pos,
            "",
            msg,
            Some("convert the document with swagger2openapi and check the result, or write this part in OpenAPI 3.0".into()),
        );
    }

    fn paths(&mut self, paths: &Node) -> Node {
        let mut out = Vec::new();
        for p in paths.entries() {
            let mut item = Vec::new();
            let shared: Vec<Node> = p
                .value
                .get("parameters")
                .map(|n| n.items().to_vec())
                .unwrap_or_default();
            for e in p.value.entries() {
                let value = if METHODS.contains(&e.key.as_str()) {
                    self.operation(&e.value, &shared)
                } else if e.key == "parameters" {
                    let mut kept = Vec::new();
                    for n in &shared {
                        if !self.is_body_or_form(n) {
                            kept.push(self.parameter(n));
                        }
                    }
                    if kept.is_empty() {
                        continue;
                    }
                    array(e.value.pos, kept)
                } else {
                    rewrite_refs(&e.value)
                };
                item.push(Entry {
                    key: e.key.clone(),
                    key_pos: e.key_pos,
                    value,
                });
            }
            out.push(Entry {
                key: p.key.clone(),
                key_pos: p.key_pos,
                value: Node::new(Value::Object(item), p.value.pos),
            });
        }
        Node::new(Value::Object(out), paths.pos)
    }

    /// A parameter, following a `#/parameters/` reference.
    fn resolved(&self, param: &Node) -> Node {
        match param.get("$ref").and_then(Node::as_str) {
            Some(r) if r.starts_with("#/parameters/") => {
                let name = &r["#/parameters/".len()..];
                let name = name.replace("~1", "/").replace("~0", "~");
                self.root
                    .get("parameters")
                    .and_then(|ps| ps.get(&name))
                    .cloned()
                    .unwrap_or_else(|| param.clone())
            }
            _ => param.clone(),
        }
    }

    fn is_body_or_form(&self, param: &Node) -> bool {
        let p = self.resolved(param);
        matches!(
            p.get("in").and_then(Node::as_str),
            Some("body" | "formData")
        )
    }

    fn operation(&mut self, op: &Node, shared: &[Node]) -> Node {
        let consumes = op
            .get("consumes")
            .map(|n| media_list(Some(n)))
            .unwrap_or_else(|| self.consumes.clone());
        let produces = op
            .get("produces")
            .map(|n| media_list(Some(n)))
            .unwrap_or_else(|| self.produces.clone());
        // The operation's parameters override the path item's of the same name and place.
        let own: Vec<Node> = op
            .get("parameters")
            .map(|n| n.items().to_vec())
            .unwrap_or_default();
        let mut all: Vec<Node> = own.iter().map(|p| self.resolved(p)).collect();
        for s in shared {
            let s = self.resolved(s);
            let same = |p: &Node| p.get("name") == s.get("name") && p.get("in") == s.get("in");
            if !all.iter().any(same)
                && matches!(
                    s.get("in").and_then(Node::as_str),
                    Some("body" | "formData")
                )
            {
                all.push(s);
            }
        }
        let mut out = Vec::new();
        let mut params = Vec::new();
        let mut body: Option<Node> = None;
        let mut form: Vec<(Entry, bool)> = Vec::new();
        let mut form_pos = op.pos;
        for (i, p) in all.iter().enumerate() {
            match p.get("in").and_then(Node::as_str) {
                Some("body") => {
                    if body.is_some() {
                        self.refuse(
                            p.pos,
                            "a second `in: body` parameter (Swagger 2.0 allows one)",
                        );
                        continue;
                    }
                    let schema = p
                        .get("schema")
                        .map(rewrite_refs)
                        .unwrap_or_else(|| object(p.pos, vec![]));
                    let types = if consumes.is_empty() {
                        vec!["application/json".to_string()]
                    } else {
                        consumes.clone()
                    };
                    let content = types
                        .iter()
                        .map(|t| Entry {
                            key: t.clone(),
                            key_pos: p.pos,
                            value: object(p.pos, vec![("schema", schema.clone())]),
                        })
                        .collect();
                    let mut rb = vec![("content", Node::new(Value::Object(content), p.pos))];
                    if let Some(d) = p.get("description") {
                        rb.push(("description", d.clone()));
                    }
                    if let Some(r) = p.get("required") {
                        rb.push(("required", r.clone()));
                    }
                    body = Some(object(p.pos, rb));
                }
                Some("formData") => {
                    form_pos = p.pos;
                    let name = p
                        .get("name")
                        .and_then(Node::as_str)
                        .unwrap_or("")
                        .to_string();
                    let schema = self.schema_of(p);
                    let required = p.get("required").and_then(Node::as_bool).unwrap_or(false);
                    form.push((
                        Entry {
                            key: name,
                            key_pos: p.pos,
                            value: schema,
                        },
                        required,
                    ));
                }
                _ => {
                    // Own parameters, then the path item's ones are kept on the path item.
                    if i < own.len() {
                        params.push(self.parameter(p));
                    }
                }
            }
        }
        if !form.is_empty() {
            if body.is_some() {
                self.refuse(form_pos, "`in: formData` beside `in: body`");
            }
            let multipart = consumes.iter().any(|t| t == "multipart/form-data")
                || form
                    .iter()
                    .any(|(e, _)| e.value.get("format").and_then(Node::as_str) == Some("binary"));
            let ty = if multipart {
                "multipart/form-data"
            } else {
                "application/x-www-form-urlencoded"
            };
            let required: Vec<Node> = form
                .iter()
                .filter(|(_, r)| *r)
                .map(|(e, _)| string(e.key_pos, e.key.clone()))
                .collect();
            let mut schema = vec![
                ("type", string(form_pos, "object")),
                (
                    "properties",
                    Node::new(
                        Value::Object(form.into_iter().map(|(e, _)| e).collect()),
                        form_pos,
                    ),
                ),
            ];
            if !required.is_empty() {
                schema.push(("required", array(form_pos, required)));
            }
            let media = object(form_pos, vec![("schema", object(form_pos, schema))]);
            body = Some(object(
                form_pos,
                vec![("content", object(form_pos, vec![(ty, media)]))],
            ));
        }
        for e in op.entries() {
            let value = match e.key.as_str() {
                "consumes" | "produces" | "schemes" => continue,
                "parameters" => {
                    if params.is_empty() {
                        continue;
                    }
                    array(e.value.pos, std::mem::take(&mut params))
                }
                "responses" => self.responses(&e.value, &produces),
                _ => rewrite_refs(&e.value),
            };
            out.push(Entry {
                key: e.key.clone(),
                key_pos: e.key_pos,
                value,
            });
            if e.key == "parameters" {
                if let Some(b) = body.take() {
                    out.push(Entry {
                        key: "requestBody".into(),
                        key_pos: b.pos,
                        value: b,
                    });
                }
            }
        }
        if let Some(b) = body {
            out.push(Entry {
                key: "requestBody".into(),
                key_pos: b.pos,
                value: b,
            });
        }
        Node::new(Value::Object(out), op.pos)
    }

    /// The 3.0 schema of a Swagger 2.0 non-body parameter, header or `items`.
    fn schema_of(&mut self, p: &Node) -> Node {
        let mut schema = Vec::new();
        for e in p.entries() {
            if !SCHEMA_FIELDS.contains(&e.key.as_str()) || e.key == "collectionFormat" {
                continue;
            }
            let value = match e.key.as_str() {
                "items" => self.schema_of(&e.value),
                "type" if e.value.as_str() == Some("file") => {
                    schema.push(Entry {
                        key: "format".into(),
                        key_pos: e.key_pos,
                        value: string(e.value.pos, "binary"),
                    });
                    string(e.value.pos, "string")
                }
                _ => e.value.clone(),
            };
            schema.push(Entry {
                key: e.key.clone(),
                key_pos: e.key_pos,
                value,
            });
        }
        Node::new(Value::Object(schema), p.pos)
    }

    fn parameter(&mut self, p: &Node) -> Node {
        if let Some(r) = p.get("$ref") {
            return object(
                p.pos,
                vec![("$ref", string(r.pos, ref_30(r.as_str().unwrap_or(""))))],
            );
        }
        let mut out = Vec::new();
        for e in p.entries() {
            if SCHEMA_FIELDS.contains(&e.key.as_str()) {
                continue;
            }
            out.push(Entry {
                key: e.key.clone(),
                key_pos: e.key_pos,
                value: e.value.clone(),
            });
        }
        if let Some(cf) = p.entry("collectionFormat") {
            let place = p.get("in").and_then(Node::as_str).unwrap_or("");
            let style = match (cf.value.as_str().unwrap_or(""), place) {
                ("csv", "query") => Some(("form", false)),
                ("csv", _) => Some(("simple", false)),
                ("multi", "query") => Some(("form", true)),
                ("ssv", "query") => Some(("spaceDelimited", false)),
                ("pipes", "query") => Some(("pipeDelimited", false)),
                _ => None,
            };
            match style {
                Some((style, explode)) => {
                    out.push(Entry {
                        key: "style".into(),
                        key_pos: cf.key_pos,
                        value: string(cf.value.pos, style),
                    });
                    out.push(Entry {
                        key: "explode".into(),
                        key_pos: cf.key_pos,
                        value: super::tree::boolean(cf.value.pos, explode),
                    });
                }
                None => self.refuse(
                    cf.value.pos,
                    format!(
                        "`collectionFormat: {}` in the {place} has no OpenAPI 3.0 equivalent",
                        cf.value.as_str().unwrap_or("?")
                    ),
                ),
            }
        }
        // API Gateway's exports leave `type` out of parameters it only requires; such a
        // parameter is a string.
        let schema = if p.get("type").is_some() {
            self.schema_of(p)
        } else {
            object(p.pos, vec![("type", string(p.pos, "string"))])
        };
        if p.get("schema").is_none() && p.get("content").is_none() {
            out.push(Entry {
                key: "schema".into(),
                key_pos: p.pos,
                value: schema,
            });
        }
        Node::new(Value::Object(out), p.pos)
    }

    /// A map of responses (an operation's, or `#/responses`).
    fn responses(&mut self, map: &Node, produces: &[String]) -> Node {
        let responses = map
            .entries()
            .iter()
            .map(|r| Entry {
                key: r.key.clone(),
                key_pos: r.key_pos,
                value: self.response(&r.value, produces),
            })
            .collect();
        Node::new(Value::Object(responses), map.pos)
    }

    fn response(&mut self, r: &Node, produces: &[String]) -> Node {
        if let Some(reference) = r.get("$ref") {
            return object(
                r.pos,
                vec![(
                    "$ref",
                    string(reference.pos, ref_30(reference.as_str().unwrap_or(""))),
                )],
            );
        }
        let mut out = Vec::new();
        for e in r.entries() {
            match e.key.as_str() {
                "schema" | "examples" => {}
                "headers" => {
                    let headers = e
                        .value
                        .entries()
                        .iter()
                        .map(|h| {
                            let mut header = Vec::new();
                            if let Some(d) = h.value.get("description") {
                                header.push(("description", d.clone()));
                            }
                            header.push(("schema", self.schema_of(&h.value)));
                            Entry {
                                key: h.key.clone(),
                                key_pos: h.key_pos,
                                value: object(h.value.pos, header),
                            }
                        })
                        .collect();
                    out.push(Entry {
                        key: e.key.clone(),
                        key_pos: e.key_pos,
                        value: Node::new(Value::Object(headers), e.value.pos),
                    });
                }
                _ => out.push(Entry {
                    key: e.key.clone(),
                    key_pos: e.key_pos,
                    value: rewrite_refs(&e.value),
                }),
            }
        }
        // API Gateway's exports leave out the description Swagger 2.0 requires.
        if r.get("description").is_none() {
            out.insert(
                0,
                Entry {
                    key: "description".into(),
                    key_pos: r.pos,
                    value: string(r.pos, ""),
                },
            );
        }
        if let Some(schema) = r.entry("schema") {
            let types: Vec<String> = if produces.is_empty() {
                vec!["application/json".into()]
            } else {
                produces.to_vec()
            };
            let content = types
                .iter()
                .map(|t| {
                    let mut media = vec![("schema", rewrite_refs(&schema.value))];
                    if let Some(ex) = r.get("examples").and_then(|x| x.get(t)) {
                        media.push(("example", ex.clone()));
                    }
                    Entry {
                        key: t.clone(),
                        key_pos: schema.key_pos,
                        value: object(schema.value.pos, media),
                    }
                })
                .collect();
            out.push(Entry {
                key: "content".into(),
                key_pos: schema.key_pos,
                value: Node::new(Value::Object(content), schema.value.pos),
            });
        }
        Node::new(Value::Object(out), r.pos)
    }

    fn security_scheme(&mut self, s: &Node) -> Node {
        let kind = s.get("type").and_then(Node::as_str).unwrap_or("");
        let mut out: Vec<Entry> = Vec::new();
        let keep = |out: &mut Vec<Entry>, e: &Entry| {
            out.push(Entry {
                key: e.key.clone(),
                key_pos: e.key_pos,
                value: e.value.clone(),
            })
        };
        match kind {
            "basic" => {
                for e in s.entries() {
                    if e.key == "type" {
                        out.push(Entry {
                            key: "type".into(),
                            key_pos: e.key_pos,
                            value: string(e.value.pos, "http"),
                        });
                        out.push(Entry {
                            key: "scheme".into(),
                            key_pos: e.key_pos,
                            value: string(e.value.pos, "basic"),
                        });
                    } else {
                        keep(&mut out, e);
                    }
                }
            }
            "oauth2" => {
                let flow = s.get("flow").and_then(Node::as_str).unwrap_or("");
                let name = match flow {
                    "implicit" => "implicit",
                    "password" => "password",
                    "application" => "clientCredentials",
                    "accessCode" => "authorizationCode",
                    _ => {
                        self.refuse(
                            s.get("flow").map_or(s.pos, |f| f.pos),
                            format!("unknown OAuth 2 flow `{flow}`"),
                        );
                        "implicit"
                    }
                };
                let mut flow_obj = Vec::new();
                for key in ["authorizationUrl", "tokenUrl", "scopes"] {
                    if let Some(v) = s.get(key) {
                        flow_obj.push((key, v.clone()));
                    }
                }
                if flow_obj.iter().all(|(k, _)| *k != "scopes") {
                    flow_obj.push(("scopes", object(s.pos, vec![])));
                }
                for e in s.entries() {
                    match e.key.as_str() {
                        "flow" | "authorizationUrl" | "tokenUrl" | "scopes" => {}
                        _ => keep(&mut out, e),
                    }
                }
                out.push(Entry {
                    key: "flows".into(),
                    key_pos: s.pos,
                    value: object(s.pos, vec![(name, object(s.pos, flow_obj))]),
                });
            }
            _ => {
                for e in s.entries() {
                    keep(&mut out, e);
                }
            }
        }
        Node::new(Value::Object(out), s.pos)
    }
}
