//! Lowering: the loaded document into the [`crate::ir::Gateway`].
//!
//! Lowering follows references, merges path-item and operation data and `x-gateway` settings,
//! and reports what only becomes visible while doing so (parameters against templates, invalid
//! `x-gateway` blocks). It assumes the structure walk already reported malformed objects, so it
//! skips what it cannot read rather than reporting it twice.

use std::collections::{BTreeMap, HashSet};

use serde::de::DeserializeOwned;

use crate::diag::{Code, Diagnostics};
use crate::ir::*;
use crate::load::node::{push_segment, Node, Pos};
use crate::load::{FileId, Sources};
use crate::naming::Scope;
use crate::xgw::{validate_block, Level, OperationSettings, RootSettings, SchemeSettings};
use crate::Version;

struct Lowerer<'a> {
    src: &'a Sources,
    version: Version,
    diags: &'a mut Diagnostics,
}

/// Lowers the root document. Diagnostics found on the way go to `diags`.
pub(crate) fn lower(src: &Sources, version: Version, diags: &mut Diagnostics) -> Gateway {
    Lowerer {
        src,
        version,
        diags,
    }
    .gateway()
}

/// A Lambda function that `x-gateway.functions` runs on this machine: its local settings fill
/// in those the integration or authorizer leaves out. A function is named as the map's key, or
/// by an ARN or partial ARN whose function name is the key.
fn run_locally(
    functions: &BTreeMap<String, crate::xgw::LambdaFunction>,
    f: &mut crate::xgw::LambdaFunction,
) {
    let Some(name) = f.function.as_deref() else {
        return;
    };
    if f.command.is_some() {
        return;
    }
    // `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`, `ACCOUNT:function:NAME`.
    let short = name
        .split_once("function:")
        .map(|(_, rest)| rest.split(':').next().unwrap_or(rest))
        .unwrap_or(name);
    let Some((key, local)) = functions
        .get_key_value(name)
        .or_else(|| functions.get_key_value(short))
    else {
        return;
    };
    f.function = Some(key.clone());
    f.command = local.command.clone();
    f.handler = f.handler.take().or_else(|| local.handler.clone());
    f.workdir = f.workdir.take().or_else(|| local.workdir.clone());
    f.concurrency = f.concurrency.or(local.concurrency);
    f.memory_mb = f.memory_mb.or(local.memory_mb);
    f.region = f.region.take().or_else(|| local.region.clone());
    for (k, v) in &local.env {
        f.env.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

fn ptr_join(base: &str, seg: &str) -> String {
    let mut p = base.to_string();
    push_segment(&mut p, seg);
    p
}

impl Lowerer<'_> {
    fn location(&self, file: FileId, pointer: &str, pos: Pos) -> Location {
        Location {
            file: self.src.file(file).path.clone(),
            pointer: pointer.to_string(),
            pos,
        }
    }

    fn report(&mut self, code: Code, loc: &Location, msg: impl Into<String>, hint: Option<String>) {
        self.diags
            .report(code, &loc.file, loc.pos, &loc.pointer, msg, hint);
    }

    /// Validates and deserialises an `x-gateway` block, if the holder has one.
    fn settings<T: DeserializeOwned + Default>(
        &mut self,
        holder: &Node,
        file: FileId,
        ptr: &str,
        level: Level,
    ) -> T {
        let Some(block) = holder.get("x-gateway") else {
            return T::default();
        };
        let ptr = ptr_join(ptr, "x-gateway");
        let path = self.src.file(file).path.clone();
        // An invalid block was reported; what of it still reads is used, so that one mistake
        // does not cascade into warnings about settings that are in fact there.
        let (json, valid) = validate_block(block, level, &path, &ptr, self.diags);
        match serde_path_to_error::deserialize::<_, T>(&json) {
            Ok(v) => v,
            Err(_) if !valid => T::default(),
            Err(e) => {
                let inner = e.path().to_string();
                let loc = self.location(file, &ptr, block.pos);
                self.report(
                    Code::XGatewayInvalid,
                    &loc,
                    format!("invalid `x-gateway` value at `{inner}`: {}", e.inner()),
                    None,
                );
                T::default()
            }
        }
    }

    fn gateway(&mut self) -> Gateway {
        let src = self.src;
        let root = src.root();
        let info = root.get("info");
        let text = |n: Option<&Node>, k: &str| {
            n.and_then(|n| n.get(k))
                .and_then(Node::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let root_settings: RootSettings = self.settings(root, FileId(0), "", Level::Root);
        let root_ops: OperationSettings = self.settings(root, FileId(0), "", Level::Root);
        let defaults = root_ops.merged_with(&root_settings.defaults);
        let mut stages: Vec<Stage> = root_settings
            .stages
            .iter()
            .map(|(name, settings)| Stage {
                name: name.clone(),
                settings: settings.clone(),
            })
            .collect();
        // Keep declaration order, which the binary uses to pick its default stage.
        if let Some(decl) = root.get("x-gateway").and_then(|x| x.get("stages")) {
            let order: Vec<&str> = decl.entries().iter().map(|e| e.key.as_str()).collect();
            stages.sort_by_key(|s| order.iter().position(|o| *o == s.name));
        }
        if stages.is_empty() {
            stages.push(Stage {
                name: "default".into(),
                settings: Default::default(),
            });
        }
        let security_schemes = self.security_schemes();
        let root_security = root.get("security").map(security);
        let mut routes = Vec::new();
        let mut names = Scope::default();
        if let Some(paths) = root.get("paths") {
            for e in paths.entries() {
                if e.key.starts_with("x-") || !e.key.starts_with('/') {
                    continue;
                }
                let ptr = ptr_join("/paths", &e.key);
                let Ok(item) = src.deref(FileId(0), &e.value) else {
                    continue;
                };
                let (file, item_node) = (item.file, item.node);
                let item_ptr = item.pointer.clone().unwrap_or_else(|| ptr.clone());
                let path_settings: OperationSettings =
                    self.settings(item_node, file, &item_ptr, Level::PathItem);
                let path_params = self.params(
                    item_node.get("parameters"),
                    file,
                    &ptr_join(&item_ptr, "parameters"),
                );
                let template_loc = self.location(FileId(0), &ptr, e.key_pos);
                let segments = parse_template(&e.key).unwrap_or_default();
                let websocket = self.websocket(item_node, file, &item_ptr);
                let mut handshake = false;
                for method in crate::check::structure::operation_methods() {
                    let Some(op_entry) = item_node.entry(method) else {
                        continue;
                    };
                    let op = &op_entry.value;
                    if !op.is_object() {
                        continue;
                    }
                    let op_ptr = ptr_join(&item_ptr, method);
                    let loc = self.location(file, &op_ptr, op_entry.key_pos);
                    let op_settings: OperationSettings =
                        self.settings(op, file, &op_ptr, Level::Operation);
                    let op_params =
                        self.params(op.get("parameters"), file, &ptr_join(&op_ptr, "parameters"));
                    let params = self.merge_params(
                        &e.key,
                        &segments,
                        path_params.clone(),
                        op_params,
                        &template_loc,
                    );
                    let operation_id = op
                        .get("operationId")
                        .and_then(Node::as_str)
                        .map(str::to_string);
                    let rust_name = names.name(
                        operation_id
                            .as_deref()
                            .unwrap_or(&format!("{method}{}", e.key)),
                    );
                    let (security_list, explicit) = match op.get("security") {
                        Some(s) => (security(s), true),
                        None => (root_security.clone().unwrap_or_default(), false),
                    };
                    let websocket = match (*method, &websocket) {
                        ("get", Some(ws)) => {
                            handshake = true;
                            Some(ws.clone())
                        }
                        _ => None,
                    };
                    routes.push(Route {
                        websocket,
                        method: upper(method),
                        path: e.key.clone(),
                        segments: segments.clone(),
                        operation_id,
                        rust_name,
                        params,
                        request_body: self.request_body(
                            op.get("requestBody"),
                            file,
                            &ptr_join(&op_ptr, "requestBody"),
                        ),
                        responses: self.responses(
                            op.get("responses"),
                            file,
                            &ptr_join(&op_ptr, "responses"),
                        ),
                        security: security_list,
                        security_explicit: explicit,
                        integration_inherited: op_settings.integration.is_none()
                            && path_settings.integration.is_none(),
                        settings: defaults
                            .merged_with(&path_settings)
                            .merged_with(&op_settings),
                        location: loc,
                    });
                }
                // A WebSocket API without a `get` operation: its handshake is a `GET` with the
                // path item's parameters and the root's security.
                if let (Some(ws), false) = (websocket, handshake) {
                    let params = self.merge_params(
                        &e.key,
                        &segments,
                        path_params,
                        Vec::new(),
                        &template_loc,
                    );
                    routes.push(Route {
                        method: Method::Get,
                        path: e.key.clone(),
                        segments: segments.clone(),
                        operation_id: None,
                        rust_name: names.name(&format!("websocket{}", e.key)),
                        params,
                        request_body: None,
                        responses: Vec::new(),
                        security: root_security.clone().unwrap_or_default(),
                        security_explicit: false,
                        integration_inherited: false,
                        settings: defaults.merged_with(&path_settings),
                        location: ws.location.clone(),
                        websocket: Some(ws),
                    });
                }
            }
        }
        let mut security_schemes = security_schemes;
        if !root_settings.functions.is_empty() {
            let functions = &root_settings.functions;
            for r in &mut routes {
                if let Some(i) = r.settings.integration.as_mut() {
                    run_locally(functions, &mut i.lambda);
                }
                if let Some(ws) = r.websocket.as_mut() {
                    for route in ws.settings.routes.values_mut() {
                        run_locally(functions, &mut route.integration.lambda);
                    }
                }
            }
            for s in security_schemes.values_mut() {
                if let Some(a) = s.settings.authorizer.as_mut() {
                    run_locally(functions, &mut a.lambda);
                }
            }
        }
        Gateway {
            version: self.version,
            title: text(info, "title"),
            api_version: text(info, "version"),
            stages,
            routes,
            security_schemes,
            root: root_settings,
            defaults,
            validation: Default::default(),
        }
    }

    /// The path item's WebSocket API, if it has one. Its block was validated with the path
    /// item's settings; an invalid one is left out.
    fn websocket(&self, item: &Node, file: FileId, item_ptr: &str) -> Option<WebSocketApi> {
        let block = item.get("x-gateway")?;
        let node = block.get("websocket")?;
        let settings: crate::xgw::WebSocket = serde_json::from_value(node.to_json()).ok()?;
        let ptr = ptr_join(&ptr_join(item_ptr, "x-gateway"), "websocket");
        let schemas = settings
            .routes
            .keys()
            .map(|key| {
                let route = node.get("routes")?.get(key)?;
                let at = ptr_join(&ptr_join(&ptr_join(&ptr, "routes"), key), "schema");
                self.schema_ref(route.get("schema"), file, &at)
            })
            .collect();
        Some(WebSocketApi {
            settings,
            schemas,
            location: self.location(file, &ptr, node.pos),
        })
    }

    fn security_schemes(&mut self) -> BTreeMap<String, SecurityScheme> {
        let src = self.src;
        let mut out = BTreeMap::new();
        let Some(schemes) = src
            .root()
            .get("components")
            .and_then(|c| c.get("securitySchemes"))
        else {
            return out;
        };
        for e in schemes.entries() {
            let Ok(t) = src.deref(FileId(0), &e.value) else {
                continue;
            };
            let ptr = ptr_join("/components/securitySchemes", &e.key);
            let s = |k: &str| t.node.get(k).and_then(Node::as_str).map(str::to_string);
            let settings: SchemeSettings =
                self.settings(t.node, t.file, &ptr, Level::SecurityScheme);
            out.insert(
                e.key.clone(),
                SecurityScheme {
                    name: e.key.clone(),
                    kind: s("type").as_deref().and_then(SchemeType::parse),
                    key_in: match s("in").as_deref() {
                        Some("query") => KeyIn::Query,
                        Some("cookie") => KeyIn::Cookie,
                        _ => KeyIn::Header,
                    },
                    key_name: s("name"),
                    scheme: s("scheme").map(|x| x.to_ascii_lowercase()),
                    openid_connect_url: s("openIdConnectUrl"),
                    settings,
                    location: self.location(FileId(0), &ptr, e.key_pos),
                },
            );
        }
        out
    }

    fn schema_ref(&self, node: Option<&Node>, file: FileId, ptr: &str) -> Option<SchemaRef> {
        let node = node?;
        // Follow bare references so the validator starts at the definition.
        let (file, pointer) = match node.get("$ref").and_then(Node::as_str) {
            Some(_) if node.entries().len() == 1 || self.version == Version::V30 => {
                match self.src.deref(file, node) {
                    Ok(t) => (t.file, t.pointer.unwrap_or_else(|| ptr.to_string())),
                    Err(_) => return None,
                }
            }
            _ => (file, ptr.to_string()),
        };
        Some(SchemaRef {
            file: file.0,
            pointer,
            dialect: self.version,
        })
    }

    fn params(&mut self, list: Option<&Node>, file: FileId, ptr: &str) -> Vec<(Param, Pos)> {
        let mut out = Vec::new();
        let Some(list) = list else { return out };
        for (i, p) in list.items().iter().enumerate() {
            let Ok(t) = self.src.deref(file, p) else {
                continue;
            };
            let n = t.node;
            let (Some(name), Some(location)) = (
                n.get("name").and_then(Node::as_str),
                n.get("in").and_then(Node::as_str),
            ) else {
                continue;
            };
            let location = match location {
                "path" => ParamIn::Path,
                "query" => ParamIn::Query,
                "header" => ParamIn::Header,
                "cookie" => ParamIn::Cookie,
                _ => continue,
            };
            let p_ptr = ptr_join(ptr, &i.to_string());
            let t_ptr = t.pointer.clone().unwrap_or_else(|| p_ptr.clone());
            let style = n
                .get("style")
                .and_then(Node::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    match location {
                        ParamIn::Path | ParamIn::Header => "simple",
                        ParamIn::Query | ParamIn::Cookie => "form",
                    }
                    .to_string()
                });
            let explode = n
                .get("explode")
                .and_then(Node::as_bool)
                .unwrap_or(style == "form");
            // A parameter with `content` instead of `schema` carries its value serialised in
            // that media type; a JSON one is read as JSON.
            let style = match (n.get("schema"), n.get("content")) {
                (None, Some(content)) => match content.entries().first() {
                    Some(e) => {
                        let m = e.key.to_ascii_lowercase();
                        if m.starts_with("application/json") || m.contains("+json") {
                            "json".to_string()
                        } else {
                            style
                        }
                    }
                    None => style,
                },
                _ => style,
            };
            let schema = n
                .get("schema")
                .and_then(|s| self.schema_ref(Some(s), t.file, &ptr_join(&t_ptr, "schema")))
                .or_else(|| {
                    let content = n.get("content")?;
                    let first = content.entries().first()?;
                    let base = ptr_join(&ptr_join(&t_ptr, "content"), &first.key);
                    self.schema_ref(
                        first.value.get("schema"),
                        t.file,
                        &ptr_join(&base, "schema"),
                    )
                });
            out.push((
                Param {
                    name: name.to_string(),
                    rust_name: String::new(),
                    location,
                    required: location == ParamIn::Path
                        || n.get("required").and_then(Node::as_bool).unwrap_or(false),
                    style,
                    explode,
                    allow_empty: n
                        .get("allowEmptyValue")
                        .and_then(Node::as_bool)
                        .unwrap_or(false),
                    schema,
                    declared: true,
                    location_in_spec: self.location(file, &p_ptr, p.pos),
                },
                p.pos,
            ));
        }
        out
    }

    /// Operation parameters override path-item ones with the same name and location; template
    /// parameters are checked against the declared path parameters.
    fn merge_params(
        &mut self,
        template: &str,
        segments: &[Segment],
        path_level: Vec<(Param, Pos)>,
        op_level: Vec<(Param, Pos)>,
        template_loc: &Location,
    ) -> Vec<Param> {
        let mut out: Vec<Param> = Vec::new();
        for list in [path_level, op_level] {
            let mut seen = HashSet::new();
            for (p, _) in list {
                if !seen.insert((p.name.clone(), p.location)) {
                    let loc = p.location_in_spec.clone();
                    self.report(
                        Code::DuplicateParam,
                        &loc,
                        format!(
                            "parameter `{}` in {:?} is declared twice",
                            p.name, p.location
                        ),
                        None,
                    );
                    continue;
                }
                out.retain(|q| !(q.name == p.name && q.location == p.location));
                out.push(p);
            }
        }
        let in_template = template_params(segments);
        for p in out.iter().filter(|p| p.location == ParamIn::Path) {
            if !in_template.contains(&p.name.as_str()) {
                let loc = p.location_in_spec.clone();
                self.report(
                    Code::PathParamNotInTemplate,
                    &loc,
                    format!(
                        "path parameter `{}` does not appear in `{template}`",
                        p.name
                    ),
                    crate::diag::did_you_mean(&p.name, in_template.iter().copied()),
                );
            }
        }
        for name in &in_template {
            if !out
                .iter()
                .any(|p| p.location == ParamIn::Path && p.name == *name)
            {
                self.report(
                    Code::PathParamUndeclared,
                    template_loc,
                    format!("`{{{name}}}` in `{template}` is not declared as a path parameter; it is treated as a required string"),
                    None,
                );
                out.push(Param {
                    name: name.to_string(),
                    rust_name: String::new(),
                    location: ParamIn::Path,
                    required: true,
                    style: "simple".into(),
                    explode: false,
                    allow_empty: false,
                    schema: None,
                    declared: false,
                    location_in_spec: template_loc.clone(),
                });
            }
        }
        let mut scope = Scope::default();
        for p in &mut out {
            p.rust_name = scope.name(&p.name);
        }
        out
    }

    fn media_types(&self, content: Option<&Node>, file: FileId, base: &str) -> Vec<MediaType> {
        let Some(content) = content else {
            return Vec::new();
        };
        content
            .entries()
            .iter()
            .map(|e| {
                let mt_ptr = ptr_join(base, &e.key);
                let examples = e
                    .value
                    .get("examples")
                    .map(|ex| {
                        ex.entries()
                            .iter()
                            .filter_map(|x| {
                                let t = self.src.deref(file, &x.value).ok()?;
                                Some((x.key.clone(), t.node.get("value")?.to_json()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                MediaType {
                    media_type: e.key.clone(),
                    schema: self.schema_ref(
                        e.value.get("schema"),
                        file,
                        &ptr_join(&mt_ptr, "schema"),
                    ),
                    example: e.value.get("example").map(Node::to_json),
                    examples,
                }
            })
            .collect()
    }

    fn request_body(&self, node: Option<&Node>, file: FileId, ptr: &str) -> Option<RequestBody> {
        let t = self.src.deref(file, node?).ok()?;
        let base = ptr_join(&t.pointer.unwrap_or_else(|| ptr.to_string()), "content");
        Some(RequestBody {
            required: t
                .node
                .get("required")
                .and_then(Node::as_bool)
                .unwrap_or(false),
            content: self.media_types(t.node.get("content"), t.file, &base),
        })
    }

    fn responses(&self, node: Option<&Node>, file: FileId, ptr: &str) -> Vec<Response> {
        let Some(node) = node else { return Vec::new() };
        node.entries()
            .iter()
            .filter(|e| !e.key.starts_with("x-"))
            .filter_map(|e| {
                let t = self.src.deref(file, &e.value).ok()?;
                let base = ptr_join(
                    &t.pointer.unwrap_or_else(|| ptr_join(ptr, &e.key)),
                    "content",
                );
                Some(Response {
                    status: e.key.clone(),
                    description: t
                        .node
                        .get("description")
                        .and_then(Node::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    content: self.media_types(t.node.get("content"), t.file, &base),
                })
            })
            .collect()
    }
}

fn upper(method: &str) -> Method {
    Method::ALL
        .into_iter()
        .find(|m| m.key() == method)
        .unwrap_or(Method::Trace)
}

fn security(list: &Node) -> Vec<SecurityRequirement> {
    list.items()
        .iter()
        .map(|req| SecurityRequirement {
            schemes: req
                .entries()
                .iter()
                .map(|e| {
                    (
                        e.key.clone(),
                        e.value
                            .items()
                            .iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect(),
                    )
                })
                .collect(),
        })
        .collect()
}

/// Splits a path template into segments; `Err` says what is wrong with it.
pub fn parse_template(path: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("a path must start with `/`".into());
    };
    let mut names = HashSet::new();
    let mut segments = Vec::new();
    let pieces: Vec<&str> = rest.split('/').collect();
    for (index, raw) in pieces.iter().copied().enumerate() {
        let mut parts = Vec::new();
        let mut chars = raw.char_indices().peekable();
        let mut literal = String::new();
        while let Some((_, c)) = chars.next() {
            match c {
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        if c == '{' || c == '/' {
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!("unbalanced `{{` in segment `{raw}`"));
                    }
                    if name.is_empty() {
                        return Err("empty parameter name `{}`".into());
                    }
                    if !names.insert(name.clone()) {
                        return Err(format!("parameter `{{{name}}}` appears twice"));
                    }
                    if !literal.is_empty() {
                        parts.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    if matches!(parts.last(), Some(Segment::Param(_))) {
                        return Err(format!(
                            "two parameters with nothing between them in `{raw}`"
                        ));
                    }
                    if let Some(greedy) = name.strip_suffix('+') {
                        let whole = raw.len() == name.len() + 2;
                        let last = index + 1 == pieces.len();
                        if !whole || !last || greedy.is_empty() {
                            return Err(format!(
                                "a greedy parameter `{{{name}}}` must be the whole last segment"
                            ));
                        }
                        names.remove(&name);
                        if !names.insert(greedy.to_string()) {
                            return Err(format!("parameter `{{{greedy}}}` appears twice"));
                        }
                        parts.push(Segment::Greedy(greedy.to_string()));
                        continue;
                    }
                    parts.push(Segment::Param(name));
                }
                '}' => return Err(format!("unbalanced `}}` in segment `{raw}`")),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Segment::Literal(literal));
        }
        segments.push(match parts.len() {
            0 => Segment::Literal(String::new()),
            1 => parts.pop().unwrap_or(Segment::Literal(String::new())),
            _ => Segment::Mixed(parts),
        });
    }
    Ok(segments)
}

/// The parameter names of a template, in order.
pub fn template_params(segments: &[Segment]) -> Vec<&str> {
    let mut out = Vec::new();
    for s in segments {
        match s {
            Segment::Param(n) | Segment::Greedy(n) => out.push(n.as_str()),
            Segment::Mixed(parts) => out.extend(template_params(parts)),
            Segment::Literal(_) => {}
        }
    }
    out
}

/// The template with parameter names erased (`/a/{}/b`), to compare routes.
pub fn template_shape(segments: &[Segment]) -> String {
    fn shape(s: &Segment, out: &mut String) {
        match s {
            Segment::Literal(l) => out.push_str(l),
            Segment::Param(_) => out.push_str("{}"),
            Segment::Greedy(_) => out.push_str("{+}"),
            Segment::Mixed(parts) => parts.iter().for_each(|p| shape(p, out)),
        }
    }
    let mut out = String::new();
    for s in segments {
        out.push('/');
        shape(s, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let s = parse_template("/a/{id}/f/{name}.{ext}").unwrap();
        assert_eq!(template_params(&s), vec!["id", "name", "ext"]);
        assert_eq!(template_shape(&s), "/a/{}/f/{}.{}");
        assert!(parse_template("/a/{id").is_err());
        assert!(parse_template("/a/{id}/{id}").is_err());
        assert!(parse_template("/a/}").is_err());
        assert!(parse_template("/a/{}").is_err());
    }
}
