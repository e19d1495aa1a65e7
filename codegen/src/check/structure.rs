//! The shape of an OpenAPI 3.0/3.1 document: which fields each object has, their types and the
//! rules between them, as static tables walked once over the document.
//!
//! The walk also follows every Reference Object and schema `$ref` (reporting unresolved ones and
//! alias cycles) and hands each Schema Object to [`super::schema`]. It does not look at
//! `x-gateway` (see [`super::gateway`]) nor at routes (see [`super::routes`]).

use std::collections::HashSet;

use crate::diag::{did_you_mean, Code, Diagnostics};
use crate::load::node::{push_segment, Node, Value};
use crate::load::{FileId, RefError, Sources};
use crate::Version;

/// What a value must be.
#[derive(Clone, Copy)]
pub(crate) enum Ty {
    Any,
    Str,
    Bool,
    StrArr,
    OneOf(&'static [&'static str]),
    Obj(&'static Shape),
    RefOr(&'static Shape),
    MapOf(&'static Ty),
    ArrOf(&'static Ty),
    Schema,
    Paths,
    Responses,
    Callback,
}

/// Which versions know a field.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Since {
    V30,
    V31,
}

pub(crate) struct Field {
    name: &'static str,
    ty: Ty,
    since: Since,
}

pub(crate) struct Shape {
    name: &'static str,
    fields: &'static [Field],
    required: &'static [&'static str],
}

const fn f(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        since: Since::V30,
    }
}
const fn f31(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        since: Since::V31,
    }
}

/// Schema keywords that Swagger 2.0 put directly in parameters and headers.
const SWAGGER2_FIELDS: &[&str] = crate::aws::swagger::SCHEMA_FIELDS;

const OPERATION_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

pub(crate) static ROOT: Shape = Shape {
    name: "OpenAPI Object",
    fields: &[
        f("openapi", Ty::Str),
        f("info", Ty::Obj(&INFO)),
        f31("jsonSchemaDialect", Ty::Str),
        f("servers", Ty::ArrOf(&Ty::Obj(&SERVER))),
        f("paths", Ty::Paths),
        f31("webhooks", Ty::MapOf(&Ty::RefOr(&PATH_ITEM))),
        f("components", Ty::Obj(&COMPONENTS)),
        f("security", Ty::ArrOf(&Ty::MapOf(&Ty::StrArr))),
        f("tags", Ty::ArrOf(&Ty::Obj(&TAG))),
        f("externalDocs", Ty::Obj(&EXTERNAL_DOCS)),
    ],
    required: &["openapi", "info"],
};
static INFO: Shape = Shape {
    name: "Info Object",
    fields: &[
        f("title", Ty::Str),
        f31("summary", Ty::Str),
        f("description", Ty::Str),
        f("termsOfService", Ty::Str),
        f("contact", Ty::Obj(&CONTACT)),
        f("license", Ty::Obj(&LICENSE)),
        f("version", Ty::Str),
    ],
    required: &["title", "version"],
};
static CONTACT: Shape = Shape {
    name: "Contact Object",
    fields: &[f("name", Ty::Str), f("url", Ty::Str), f("email", Ty::Str)],
    required: &[],
};
static LICENSE: Shape = Shape {
    name: "License Object",
    fields: &[
        f("name", Ty::Str),
        f31("identifier", Ty::Str),
        f("url", Ty::Str),
    ],
    required: &["name"],
};
static SERVER: Shape = Shape {
    name: "Server Object",
    fields: &[
        f("url", Ty::Str),
        f("description", Ty::Str),
        f("variables", Ty::MapOf(&Ty::Obj(&SERVER_VARIABLE))),
    ],
    required: &["url"],
};
static SERVER_VARIABLE: Shape = Shape {
    name: "Server Variable Object",
    fields: &[
        f("enum", Ty::StrArr),
        f("default", Ty::Str),
        f("description", Ty::Str),
    ],
    required: &["default"],
};
static COMPONENTS: Shape = Shape {
    name: "Components Object",
    fields: &[
        f("schemas", Ty::MapOf(&Ty::Schema)),
        f("responses", Ty::MapOf(&Ty::RefOr(&RESPONSE))),
        f("parameters", Ty::MapOf(&Ty::RefOr(&PARAMETER))),
        f("examples", Ty::MapOf(&Ty::RefOr(&EXAMPLE))),
        f("requestBodies", Ty::MapOf(&Ty::RefOr(&REQUEST_BODY))),
        f("headers", Ty::MapOf(&Ty::RefOr(&HEADER))),
        f("securitySchemes", Ty::MapOf(&Ty::RefOr(&SECURITY_SCHEME))),
        f("links", Ty::MapOf(&Ty::RefOr(&LINK))),
        f("callbacks", Ty::MapOf(&Ty::RefOr(&CALLBACK_SHAPE))),
        f31("pathItems", Ty::MapOf(&Ty::RefOr(&PATH_ITEM))),
    ],
    required: &[],
};
pub(crate) static PATH_ITEM: Shape = Shape {
    name: "Path Item Object",
    fields: &[
        f("$ref", Ty::Str),
        f("summary", Ty::Str),
        f("description", Ty::Str),
        f("get", Ty::Obj(&OPERATION)),
        f("put", Ty::Obj(&OPERATION)),
        f("post", Ty::Obj(&OPERATION)),
        f("delete", Ty::Obj(&OPERATION)),
        f("options", Ty::Obj(&OPERATION)),
        f("head", Ty::Obj(&OPERATION)),
        f("patch", Ty::Obj(&OPERATION)),
        f("trace", Ty::Obj(&OPERATION)),
        f("servers", Ty::ArrOf(&Ty::Obj(&SERVER))),
        f("parameters", Ty::ArrOf(&Ty::RefOr(&PARAMETER))),
    ],
    required: &[],
};
static OPERATION: Shape = Shape {
    name: "Operation Object",
    fields: &[
        f("tags", Ty::StrArr),
        f("summary", Ty::Str),
        f("description", Ty::Str),
        f("externalDocs", Ty::Obj(&EXTERNAL_DOCS)),
        f("operationId", Ty::Str),
        f("parameters", Ty::ArrOf(&Ty::RefOr(&PARAMETER))),
        f("requestBody", Ty::RefOr(&REQUEST_BODY)),
        f("responses", Ty::Responses),
        f("callbacks", Ty::MapOf(&Ty::RefOr(&CALLBACK_SHAPE))),
        f("deprecated", Ty::Bool),
        f("security", Ty::ArrOf(&Ty::MapOf(&Ty::StrArr))),
        f("servers", Ty::ArrOf(&Ty::Obj(&SERVER))),
    ],
    required: &[],
};
/// Stands for a Callback Object in tables; walked by `Ty::Callback`.
static CALLBACK_SHAPE: Shape = Shape {
    name: "Callback Object",
    fields: &[],
    required: &[],
};
static EXTERNAL_DOCS: Shape = Shape {
    name: "External Documentation Object",
    fields: &[f("description", Ty::Str), f("url", Ty::Str)],
    required: &["url"],
};
static PARAMETER: Shape = Shape {
    name: "Parameter Object",
    fields: &[
        f("name", Ty::Str),
        f("in", Ty::OneOf(&["query", "header", "path", "cookie"])),
        f("description", Ty::Str),
        f("required", Ty::Bool),
        f("deprecated", Ty::Bool),
        f("allowEmptyValue", Ty::Bool),
        f(
            "style",
            Ty::OneOf(&[
                "matrix",
                "label",
                "form",
                "simple",
                "spaceDelimited",
                "pipeDelimited",
                "deepObject",
            ]),
        ),
        f("explode", Ty::Bool),
        f("allowReserved", Ty::Bool),
        f("schema", Ty::Schema),
        f("example", Ty::Any),
        f("examples", Ty::MapOf(&Ty::RefOr(&EXAMPLE))),
        f("content", Ty::MapOf(&Ty::Obj(&MEDIA_TYPE))),
    ],
    required: &["name", "in"],
};
static HEADER: Shape = Shape {
    name: "Header Object",
    fields: &[
        f("description", Ty::Str),
        f("required", Ty::Bool),
        f("deprecated", Ty::Bool),
        f("allowEmptyValue", Ty::Bool),
        f("style", Ty::OneOf(&["simple"])),
        f("explode", Ty::Bool),
        f("schema", Ty::Schema),
        f("example", Ty::Any),
        f("examples", Ty::MapOf(&Ty::RefOr(&EXAMPLE))),
        f("content", Ty::MapOf(&Ty::Obj(&MEDIA_TYPE))),
    ],
    required: &[],
};
static REQUEST_BODY: Shape = Shape {
    name: "Request Body Object",
    fields: &[
        f("description", Ty::Str),
        f("content", Ty::MapOf(&Ty::Obj(&MEDIA_TYPE))),
        f("required", Ty::Bool),
    ],
    required: &["content"],
};
static MEDIA_TYPE: Shape = Shape {
    name: "Media Type Object",
    fields: &[
        f("schema", Ty::Schema),
        f("example", Ty::Any),
        f("examples", Ty::MapOf(&Ty::RefOr(&EXAMPLE))),
        f("encoding", Ty::MapOf(&Ty::Obj(&ENCODING))),
    ],
    required: &[],
};
static ENCODING: Shape = Shape {
    name: "Encoding Object",
    fields: &[
        f("contentType", Ty::Str),
        f("headers", Ty::MapOf(&Ty::RefOr(&HEADER))),
        f(
            "style",
            Ty::OneOf(&["form", "spaceDelimited", "pipeDelimited", "deepObject"]),
        ),
        f("explode", Ty::Bool),
        f("allowReserved", Ty::Bool),
    ],
    required: &[],
};
static RESPONSE: Shape = Shape {
    name: "Response Object",
    fields: &[
        f("description", Ty::Str),
        f("headers", Ty::MapOf(&Ty::RefOr(&HEADER))),
        f("content", Ty::MapOf(&Ty::Obj(&MEDIA_TYPE))),
        f("links", Ty::MapOf(&Ty::RefOr(&LINK))),
    ],
    required: &["description"],
};
static EXAMPLE: Shape = Shape {
    name: "Example Object",
    fields: &[
        f("summary", Ty::Str),
        f("description", Ty::Str),
        f("value", Ty::Any),
        f("externalValue", Ty::Str),
    ],
    required: &[],
};
static LINK: Shape = Shape {
    name: "Link Object",
    fields: &[
        f("operationRef", Ty::Str),
        f("operationId", Ty::Str),
        f("parameters", Ty::MapOf(&Ty::Any)),
        f("requestBody", Ty::Any),
        f("description", Ty::Str),
        f("server", Ty::Obj(&SERVER)),
    ],
    required: &[],
};
static TAG: Shape = Shape {
    name: "Tag Object",
    fields: &[
        f("name", Ty::Str),
        f("description", Ty::Str),
        f("externalDocs", Ty::Obj(&EXTERNAL_DOCS)),
    ],
    required: &["name"],
};
static SECURITY_SCHEME: Shape = Shape {
    name: "Security Scheme Object",
    fields: &[
        f(
            "type",
            Ty::OneOf(&["apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"]),
        ),
        f("description", Ty::Str),
        f("name", Ty::Str),
        f("in", Ty::OneOf(&["query", "header", "cookie"])),
        f("scheme", Ty::Str),
        f("bearerFormat", Ty::Str),
        f("flows", Ty::Obj(&OAUTH_FLOWS)),
        f("openIdConnectUrl", Ty::Str),
    ],
    required: &["type"],
};
static OAUTH_FLOWS: Shape = Shape {
    name: "OAuth Flows Object",
    fields: &[
        f("implicit", Ty::Obj(&OAUTH_FLOW)),
        f("password", Ty::Obj(&OAUTH_FLOW)),
        f("clientCredentials", Ty::Obj(&OAUTH_FLOW)),
        f("authorizationCode", Ty::Obj(&OAUTH_FLOW)),
    ],
    required: &[],
};
static OAUTH_FLOW: Shape = Shape {
    name: "OAuth Flow Object",
    fields: &[
        f("authorizationUrl", Ty::Str),
        f("tokenUrl", Ty::Str),
        f("refreshUrl", Ty::Str),
        f("scopes", Ty::MapOf(&Ty::Str)),
    ],
    required: &["scopes"],
};

/// Walks a document against the tables.
pub(crate) struct Walker<'a> {
    pub src: &'a Sources,
    pub version: Version,
    pub diags: &'a mut Diagnostics,
    file: FileId,
    ptr: String,
    walked: HashSet<(FileId, *const Node)>,
    pub(crate) schemas: super::schema::SchemaChecker,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(src: &'a Sources, version: Version, diags: &'a mut Diagnostics) -> Self {
        Walker {
            src,
            version,
            diags,
            file: FileId(0),
            ptr: String::new(),
            walked: HashSet::new(),
            schemas: super::schema::SchemaChecker::default(),
        }
    }

    /// Walks the root document.
    pub(crate) fn walk_root(&mut self) {
        let src = self.src;
        let root = src.root();
        self.walk(root, Ty::Obj(&ROOT));
        if root.is_object() {
            let has = |k: &str| root.get(k).is_some();
            let ok = match self.version {
                Version::V30 => has("paths"),
                Version::V31 => has("paths") || has("components") || has("webhooks"),
            };
            if !ok {
                let msg = match self.version {
                    Version::V30 => "an OpenAPI 3.0 document needs `paths`",
                    Version::V31 => "the document has none of `paths`, `components` or `webhooks`",
                };
                self.report(Code::EmptySpec, root, msg, None);
            }
        }
    }

    pub(crate) fn report(
        &mut self,
        code: Code,
        node: &Node,
        msg: impl Into<String>,
        hint: Option<String>,
    ) {
        let path = self.src.file(self.file).path.clone();
        self.diags
            .report(code, &path, node.pos, &self.ptr, msg, hint);
    }

    fn report_key(
        &mut self,
        code: Code,
        pos: crate::load::node::Pos,
        key: &str,
        msg: String,
        hint: Option<String>,
    ) {
        let path = self.src.file(self.file).path.clone();
        let mut ptr = self.ptr.clone();
        push_segment(&mut ptr, key);
        self.diags.report(code, &path, pos, &ptr, msg, hint);
    }

    fn enter_index<R>(&mut self, i: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.ptr.len();
        crate::load::node::push_index(&mut self.ptr, i);
        let r = f(self);
        self.ptr.truncate(len);
        r
    }

    fn enter<R>(&mut self, seg: &str, f: impl FnOnce(&mut Self) -> R) -> R {
        let len = self.ptr.len();
        push_segment(&mut self.ptr, seg);
        let r = f(self);
        self.ptr.truncate(len);
        r
    }

    pub(crate) fn walk(&mut self, node: &Node, ty: Ty) {
        match ty {
            Ty::Any => {}
            Ty::Str => {
                self.expect(node, "string", matches!(node.value, Value::String(_)));
            }
            Ty::Bool => {
                self.expect(node, "boolean", matches!(node.value, Value::Bool(_)));
            }
            Ty::StrArr => {
                if self.expect(
                    node,
                    "array of strings",
                    matches!(node.value, Value::Array(_)),
                ) {
                    for (i, item) in node.items().iter().enumerate() {
                        self.enter_index(i, |w| w.walk(item, Ty::Str));
                    }
                }
            }
            Ty::OneOf(allowed) => {
                if self.expect(node, "string", matches!(node.value, Value::String(_))) {
                    let s = node.as_str().unwrap_or_default();
                    if !allowed.contains(&s) {
                        let hint = did_you_mean(s, allowed.iter().copied());
                        self.report(
                            Code::InvalidValue,
                            node,
                            format!("`{s}` is not one of {}", list(allowed)),
                            hint,
                        );
                    }
                }
            }
            Ty::Obj(shape) => self.walk_object(node, shape),
            Ty::RefOr(shape) => self.walk_ref_or(node, Ty::Obj(shape)),
            Ty::MapOf(inner) => {
                if self.expect(node, "object", node.is_object()) {
                    for e in node.entries() {
                        if e.key.starts_with("x-") && !matches!(inner, Ty::Schema) {
                            continue;
                        }
                        self.enter(&e.key, |w| w.walk(&e.value, *inner));
                    }
                }
            }
            Ty::ArrOf(inner) => {
                if self.expect(node, "array", matches!(node.value, Value::Array(_))) {
                    for (i, item) in node.items().iter().enumerate() {
                        self.enter_index(i, |w| w.walk(item, *inner));
                    }
                }
            }
            Ty::Schema => self.walk_schema(node),
            Ty::Paths => {
                if self.expect(node, "object", node.is_object()) {
                    for e in node.entries() {
                        if e.key.starts_with("x-") {
                            continue;
                        }
                        if !e.key.starts_with('/') {
                            self.report_key(
                                Code::BadPathTemplate,
                                e.key_pos,
                                &e.key,
                                format!("path `{}` does not start with `/`", e.key),
                                None,
                            );
                        }
                        self.enter(&e.key, |w| w.walk_ref_or(&e.value, Ty::Obj(&PATH_ITEM)));
                    }
                }
            }
            Ty::Responses => {
                if self.expect(node, "object", node.is_object()) {
                    for e in node.entries() {
                        if e.key.starts_with("x-") {
                            continue;
                        }
                        if !is_status_key(&e.key) {
                            self.report_key(
                                Code::InvalidValue,
                                e.key_pos,
                                &e.key,
                                format!(
                                    "`{}` is not a response status (`default`, `200`, `4XX`, …)",
                                    e.key
                                ),
                                None,
                            );
                        }
                        self.enter(&e.key, |w| w.walk_ref_or(&e.value, Ty::Obj(&RESPONSE)));
                    }
                }
            }
            Ty::Callback => {
                if self.expect(node, "object", node.is_object()) {
                    for e in node.entries() {
                        if e.key.starts_with("x-") {
                            continue;
                        }
                        self.enter(&e.key, |w| w.walk_ref_or(&e.value, Ty::Obj(&PATH_ITEM)));
                    }
                }
            }
        }
    }

    fn expect(&mut self, node: &Node, what: &str, ok: bool) -> bool {
        if !ok {
            let hint = (what == "string"
                && matches!(node.value, Value::Number(_) | Value::Bool(_)))
            .then(|| "quote the value to make it a string".to_string());
            self.report(
                Code::WrongType,
                node,
                format!("expected {what}, found {}", node.kind()),
                hint,
            );
        }
        ok
    }

    /// A Reference Object or the object itself. References are checked, and targets in other
    /// files are walked once (targets in the root file are walked where they stand).
    fn walk_ref_or(&mut self, node: &Node, ty: Ty) {
        if let Some(reference) = node.get("$ref") {
            let is_path_item = matches!(ty, Ty::Obj(s) if std::ptr::eq(s, &PATH_ITEM));
            self.follow(node, reference, ty);
            if !is_path_item {
                return;
            }
        }
        if matches!(ty, Ty::Obj(s) if std::ptr::eq(s, &CALLBACK_SHAPE)) {
            self.walk(node, Ty::Callback);
        } else {
            self.walk(node, ty);
        }
    }

    /// Checks one `$ref` and walks its target when it lives in another file.
    fn follow(&mut self, holder: &Node, reference: &Node, ty: Ty) {
        let Some(r) = reference.as_str() else {
            self.enter("$ref", |w| w.expect(reference, "string", false));
            return;
        };
        let src = self.src;
        match src.deref(self.file, holder) {
            Ok(target) => {
                // Targets in the root file are walked where they stand; others once, here.
                let elsewhere = target.file != self.file || target.file != FileId(0);
                if elsewhere
                    && self
                        .walked
                        .insert((target.file, target.node as *const Node))
                {
                    {
                        let (old_file, old_ptr) = (self.file, std::mem::take(&mut self.ptr));
                        self.file = target.file;
                        self.ptr = target.pointer.clone().unwrap_or_else(|| {
                            r.split_once('#')
                                .map(|x| x.1.to_string())
                                .unwrap_or_default()
                        });
                        match ty {
                            Ty::Obj(s) if std::ptr::eq(s, &CALLBACK_SHAPE) => {
                                self.walk(target.node, Ty::Callback)
                            }
                            Ty::Schema => self.walk_schema_body(target.node),
                            _ => self.walk(target.node, ty),
                        }
                        self.file = old_file;
                        self.ptr = old_ptr;
                    }
                }
            }
            Err(e) => self.enter("$ref", |w| w.report_ref_error(reference, e)),
        }
    }

    fn report_ref_error(&mut self, at: &Node, e: RefError) {
        match e {
            RefError::Unresolved(msg) => self.report(Code::UnresolvedRef, at, msg, None),
            RefError::Remote(msg) => self.report(
                Code::RemoteRef,
                at,
                msg,
                Some("download it and reference it by relative path".into()),
            ),
            RefError::Cycle(chain) => self.report(
                Code::RefCycle,
                at,
                format!(
                    "references loop without reaching a definition: {}",
                    chain.join(" → ")
                ),
                None,
            ),
        }
    }

    fn walk_object(&mut self, node: &Node, shape: &'static Shape) {
        if !self.expect(node, "object", node.is_object()) {
            return;
        }
        for e in node.entries() {
            if e.key.starts_with("x-") {
                continue;
            }
            if (std::ptr::eq(shape, &PARAMETER) || std::ptr::eq(shape, &HEADER))
                && SWAGGER2_FIELDS.contains(&e.key.as_str())
            {
                self.report_key(
                    Code::Swagger2Leftover,
                    e.key_pos,
                    &e.key,
                    format!(
                        "`{}` in a {} is Swagger 2.0 syntax and is ignored",
                        e.key, shape.name
                    ),
                    Some("move it under `schema`".into()),
                );
                continue;
            }
            let field = shape.fields.iter().find(|f| {
                f.name == e.key && (f.since == Since::V30 || self.version == Version::V31)
            });
            match field {
                Some(field) => self.enter(&e.key, |w| w.walk(&e.value, field.ty)),
                None => {
                    let known = shape
                        .fields
                        .iter()
                        .filter(|f| f.since == Since::V30 || self.version == Version::V31)
                        .map(|f| f.name);
                    let hint = did_you_mean(&e.key, known)
                        .or_else(|| Some("extensions must start with `x-`".to_string()));
                    self.report_key(
                        Code::UnknownField,
                        e.key_pos,
                        &e.key,
                        format!("unknown field `{}` in {}", e.key, shape.name),
                        hint,
                    );
                }
            }
        }
        for req in shape.required {
            if node.get(req).is_none() {
                self.report(
                    Code::MissingField,
                    node,
                    format!("{} is missing the required field `{req}`", shape.name),
                    None,
                );
            }
        }
        self.object_rules(node, shape);
        if std::ptr::eq(shape, &PATH_ITEM) {
            self.walk_message_schemas(node);
        }
    }

    /// The message schemas of a path item's WebSocket routes (`x-gateway.websocket.routes.*
    /// .schema`): Schema Objects like any other.
    fn walk_message_schemas(&mut self, item: &Node) {
        let Some(routes) = item
            .get("x-gateway")
            .and_then(|x| x.get("websocket"))
            .and_then(|w| w.get("routes"))
        else {
            return;
        };
        for e in routes.entries() {
            if let Some(schema) = e.value.get("schema") {
                self.enter("x-gateway", |w| {
                    w.enter("websocket", |w| {
                        w.enter("routes", |w| {
                            w.enter(&e.key, |w| w.enter("schema", |w| w.walk_schema(schema)))
                        })
                    })
                });
            }
        }
    }

    /// Rules between fields that the tables cannot say.
    fn object_rules(&mut self, node: &Node, shape: &'static Shape) {
        let has = |k: &str| node.get(k).is_some();
        if (std::ptr::eq(shape, &PARAMETER)
            || std::ptr::eq(shape, &HEADER)
            || std::ptr::eq(shape, &MEDIA_TYPE))
            && has("example")
            && has("examples")
        {
            self.report(
                Code::Exclusive,
                node,
                format!("{} has both `example` and `examples`", shape.name),
                Some("keep one of them".into()),
            );
        }
        if (std::ptr::eq(shape, &PARAMETER) || std::ptr::eq(shape, &HEADER))
            && has("schema")
            && has("content")
        {
            self.report(
                Code::Exclusive,
                node,
                format!("{} has both `schema` and `content`", shape.name),
                Some("keep one of them".into()),
            );
        }
        if std::ptr::eq(shape, &EXAMPLE) && has("value") && has("externalValue") {
            self.report(
                Code::Exclusive,
                node,
                "Example Object has both `value` and `externalValue`",
                None,
            );
        }
        if std::ptr::eq(shape, &LINK) && has("operationRef") && has("operationId") {
            self.report(
                Code::Exclusive,
                node,
                "Link Object has both `operationRef` and `operationId`",
                None,
            );
        }
        if std::ptr::eq(shape, &LICENSE) && has("identifier") && has("url") {
            self.report(
                Code::Exclusive,
                node,
                "License Object has both `identifier` and `url`",
                None,
            );
        }
        if std::ptr::eq(shape, &SERVER_VARIABLE) {
            if let Some(e) = node.get("enum") {
                if e.items().is_empty() && matches!(e.value, Value::Array(_)) {
                    self.enter("enum", |w| {
                        w.report(
                            Code::InvalidValue,
                            e,
                            "a server variable's `enum` must not be empty",
                            None,
                        )
                    });
                }
            }
        }
        if std::ptr::eq(shape, &PARAMETER) {
            self.parameter_rules(node);
        }
        if std::ptr::eq(shape, &SECURITY_SCHEME) {
            let needed: &[&str] = match node.get("type").and_then(Node::as_str) {
                Some("apiKey") => &["name", "in"],
                Some("http") => &["scheme"],
                Some("oauth2") => &["flows"],
                Some("openIdConnect") => &["openIdConnectUrl"],
                _ => &[],
            };
            for k in needed {
                if !has(k) {
                    let t = node.get("type").and_then(Node::as_str).unwrap_or_default();
                    self.report(
                        Code::MissingField,
                        node,
                        format!("a security scheme of type `{t}` needs `{k}`"),
                        None,
                    );
                }
            }
        }
    }

    fn parameter_rules(&mut self, node: &Node) {
        let location = node.get("in").and_then(Node::as_str).unwrap_or("");
        if location == "path" && node.get("required").and_then(Node::as_bool) != Some(true) {
            self.report(
                Code::PathParamNotRequired,
                node,
                "a path parameter must have `required: true`",
                Some("path parameters are always required; add `required: true`".into()),
            );
        }
        if let Some(ar) = node.entry("allowReserved") {
            if location != "query" {
                self.report_key(
                    Code::UnknownField,
                    ar.key_pos,
                    "allowReserved",
                    format!(
                        "`allowReserved` applies only to query parameters, not `in: {location}`"
                    ),
                    None,
                );
            }
        }
        if let Some(style) = node.get("style").and_then(Node::as_str) {
            let allowed: &[&str] = match location {
                "path" => &["matrix", "label", "simple"],
                "query" => &["form", "spaceDelimited", "pipeDelimited", "deepObject"],
                "header" => &["simple"],
                "cookie" => &["form"],
                _ => &[],
            };
            let known = matches!(
                style,
                "matrix"
                    | "label"
                    | "form"
                    | "simple"
                    | "spaceDelimited"
                    | "pipeDelimited"
                    | "deepObject"
            );
            if known && !allowed.is_empty() && !allowed.contains(&style) {
                let s = node.get("style").cloned().unwrap_or_else(|| node.clone());
                self.enter("style", |w| {
                    w.report(
                        Code::InvalidValue,
                        &s,
                        format!(
                            "style `{style}` is not allowed for `in: {location}` (allowed: {})",
                            list(allowed)
                        ),
                        None,
                    )
                });
            }
        }
        if node.get("schema").is_none() && node.get("content").is_none() {
            self.report(
                Code::MissingField,
                node,
                "a parameter needs `schema` or `content`",
                None,
            );
        }
        if let Some(content) = node.get("content") {
            if content.entries().len() > 1 {
                self.enter("content", |w| {
                    w.report(
                        Code::InvalidValue,
                        content,
                        "a parameter's `content` must have exactly one media type",
                        None,
                    )
                });
            }
        }
    }

    /// A Schema Object: its `$ref`, then its keywords and subschemas.
    pub(crate) fn walk_schema(&mut self, node: &Node) {
        match &node.value {
            Value::Bool(_) if self.version == Version::V31 => return,
            Value::Object(_) => {}
            _ => {
                let what = if self.version == Version::V31 {
                    "schema (object or boolean)"
                } else {
                    "schema object"
                };
                self.expect(node, what, false);
                return;
            }
        }
        if let Some(r) = node.get("$ref") {
            self.follow(node, r, Ty::Schema);
        }
        if node.get("$dynamicRef").is_some() || node.get("$recursiveRef").is_some() {
            // Resolved by the validator generator; nothing to follow here.
        }
        self.walk_schema_body(node);
    }

    fn walk_schema_body(&mut self, node: &Node) {
        if !node.is_object() {
            if !matches!(node.value, Value::Bool(_)) {
                self.expect(node, "schema object", false);
            }
            return;
        }
        let Walker {
            src,
            version,
            diags,
            file,
            ptr,
            schemas,
            ..
        } = self;
        schemas.check_keywords(node, *version, &src.file(*file).path, ptr, diags);
        for e in node.entries() {
            match e.key.as_str() {
                "properties" | "patternProperties" | "$defs" | "definitions"
                | "dependentSchemas" => {
                    if e.key == "dependentSchemas" && self.version == Version::V30 {
                        continue;
                    }
                    if self.enter(&e.key, |w| {
                        w.expect(&e.value, "object", e.value.is_object())
                    }) {
                        for p in e.value.entries() {
                            self.enter(&e.key, |w| w.enter(&p.key, |w| w.walk_schema(&p.value)));
                        }
                    }
                }
                "additionalProperties"
                | "items"
                | "not"
                | "contains"
                | "propertyNames"
                | "if"
                | "then"
                | "else"
                | "unevaluatedProperties"
                | "unevaluatedItems"
                | "additionalItems" => {
                    if matches!(e.value.value, Value::Bool(_))
                        && matches!(
                            e.key.as_str(),
                            "additionalProperties"
                                | "unevaluatedProperties"
                                | "unevaluatedItems"
                                | "additionalItems"
                        )
                    {
                        continue;
                    }
                    if e.key == "items" && matches!(e.value.value, Value::Array(_)) {
                        for (i, item) in e.value.items().iter().enumerate() {
                            self.enter("items", |w| w.enter_index(i, |w| w.walk_schema(item)));
                        }
                        continue;
                    }
                    self.enter(&e.key, |w| w.walk_schema(&e.value));
                }
                "allOf" | "anyOf" | "oneOf" | "prefixItems"
                    if self.enter(&e.key, |w| {
                        w.expect(&e.value, "array", matches!(e.value.value, Value::Array(_)))
                    }) =>
                {
                    for (i, item) in e.value.items().iter().enumerate() {
                        self.enter(&e.key, |w| w.enter_index(i, |w| w.walk_schema(item)));
                    }
                }
                _ => {}
            }
        }
    }
}

fn is_status_key(k: &str) -> bool {
    k == "default"
        || (k.len() == 3
            && matches!(k.as_bytes()[0], b'1'..=b'5')
            && (k[1..].bytes().all(|b| b.is_ascii_digit()) || &k[1..] == "XX" || &k[1..] == "xx"))
}

fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The HTTP methods an OpenAPI path item may hold.
pub(crate) fn operation_methods() -> &'static [&'static str] {
    OPERATION_METHODS
}
