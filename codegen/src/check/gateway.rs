//! Checks of the `x-gateway` extension and of what the gateway must enforce: blocks against the
//! shipped JSON Schema, interpolations, security requirements, usage plans, integration URLs,
//! and the warnings for the pitfalls users meet with AWS API Gateway.

use std::collections::BTreeSet;
use std::path::Path;

use crate::diag::{did_you_mean, Code, Diagnostics};
use crate::ir::{Gateway, Location, SchemeType};
use crate::load::node::{push_segment, split_pointer, Node, Value};
use crate::lower::template_params;
use crate::xgw::{interpolations, IntegrationKind, KeySource, Level, StateBackend};

/// Every check that needs the whole lowered gateway.
pub(crate) fn check_gateway(gw: &Gateway, root: &Node, root_file: &Path, diags: &mut Diagnostics) {
    check_unbuilt(root, root_file, diags);
    check_integration_settings(root, root_file, diags);
    check_listener(root, root_file, diags);
    check_client_certs(gw, root, root_file, diags);
    check_interpolations(gw, root, root_file, diags);
    check_security(gw, root, root_file, diags);
    check_plans(gw, root, root_file, diags);
    check_urls(gw, root, diags);
    check_cache_keys(gw, root, diags);
    check_transforms(gw, root, root_file, diags);
    check_status_from(gw, root, diags);
    check_pitfalls(gw, root, root_file, diags);
    check_websockets(gw, root, root_file, diags);
}

/// WebSocket APIs: a route selection the gateway can read, routes it can reach, settings that
/// apply to their routes, and no handshake setting that would be ignored.
fn check_websockets(gw: &Gateway, root: &Node, file: &Path, diags: &mut Diagnostics) {
    let any = gw.routes.iter().any(|r| r.websocket.is_some());
    if let (false, Some(token)) = (
        any,
        root.get("x-gateway")
            .and_then(|x| x.get("admin"))
            .and_then(|a| a.entry("token")),
    ) {
        diags.report(
            Code::InapplicableSetting,
            file,
            token.key_pos,
            "/x-gateway/admin/token",
            "`admin.token` protects the `@connections` management API of WebSocket APIs, and this spec has none; here it would be ignored".to_string(),
            Some("remove `admin.token`, or add a `websocket` API".into()),
        );
    }
    for r in gw.routes.iter().filter(|r| r.websocket.is_some()) {
        let Some(ws) = &r.websocket else { continue };
        let at = |suffix: &str| {
            let mut p = ws.location.pointer.clone();
            let mut node = root.pointer(split_pointer(&p));
            let mut pos = node.map_or(ws.location.pos, |n| n.pos);
            for s in suffix.split('/').filter(|s| !s.is_empty()) {
                push_segment(&mut p, s);
                let entry = node.and_then(|n| n.entry(s));
                pos = entry.map_or(pos, |e| e.key_pos);
                node = entry.map(|e| &e.value);
            }
            (p, pos)
        };
        let mut report = |code: Code, suffix: &str, msg: String, hint: &str| {
            let (p, pos) = at(suffix);
            diags.report(code, file, pos, &p, msg, Some(hint.to_string()));
        };
        let s = &ws.settings;
        if s.selection().is_none() {
            report(
                Code::XGatewayInvalid,
                "route_selection",
                format!(
                    "`{}` is not a route selection the gateway reads",
                    s.route_selection.as_deref().unwrap_or_default()
                ),
                "write `$request.body.NAME` (a member of the JSON message; `.` between nested names)",
            );
        } else if s.route_selection.is_none() {
            if let Some(key) = s.routes.keys().find(|k| !k.starts_with('$')) {
                report(
                    Code::XGatewayInvalid,
                    &format!("routes/{key}"),
                    format!("the route `{key}` is never selected: there is no `route_selection`"),
                    "add `route_selection: \"$request.body.action\"`, or name the route `$default`",
                );
            }
        }
        for (key, route) in &s.routes {
            let lifecycle = key == "$connect" || key == "$disconnect";
            if lifecycle && route.respond {
                report(
                    Code::InapplicableSetting,
                    &format!("routes/{key}/respond"),
                    format!("`{key}` carries no message, so there is no answer to send back"),
                    "remove `respond`",
                );
            }
            for k in ["schema", "throttle"] {
                let set = if k == "schema" {
                    route.schema.is_some()
                } else {
                    route.throttle.is_some()
                };
                if lifecycle && set {
                    report(
                        Code::InapplicableSetting,
                        &format!("routes/{key}/{k}"),
                        format!("`{key}` carries no message: `{k}` applies to message routes"),
                        "set it on the handshake (`get`) operation's `x-gateway`, or remove it",
                    );
                }
            }
            let i = &route.integration;
            if i.kind == crate::xgw::IntegrationKind::Http && i.url.is_none() {
                report(
                    Code::XGatewayInvalid,
                    &format!("routes/{key}/integration"),
                    format!("the `http` integration of route `{key}` has no `url`"),
                    "add `url: http://…`",
                );
            }
        }
        // What the handshake would ignore: it has no integration, cache, transform or
        // compression of its own.
        let item_ptr = {
            let mut p = String::from("/paths");
            push_segment(&mut p, &r.path);
            p
        };
        for holder in [item_ptr.clone(), format!("{item_ptr}/get")] {
            let Some(block) = root
                .pointer(split_pointer(&holder))
                .and_then(|n| n.get("x-gateway"))
            else {
                continue;
            };
            for key in ["integration", "cache", "transform", "compression"] {
                if let Some(e) = block.entry(key) {
                    diags.report(
                        Code::InapplicableSetting,
                        file,
                        e.key_pos,
                        &format!("{holder}/x-gateway/{key}"),
                        format!("{} {} is the handshake of a WebSocket API: `{key}` does not apply to it; here it would be ignored", r.method, r.path),
                        Some("set integrations on the `websocket` routes (`$connect` decides the handshake)".into()),
                    );
                }
            }
        }
    }
}

/// Every `x-gateway` block of the root file (root, path items, operations, security schemes),
/// with its JSON pointer. The checks below look only inside these.
fn blocks(root: &Node) -> Vec<(&Node, String)> {
    let mut out = Vec::new();
    fn push<'a>(out: &mut Vec<(&'a Node, String)>, holder: &'a Node, base: &str) {
        if let Some(b) = holder.get("x-gateway") {
            let mut p = base.to_string();
            push_segment(&mut p, "x-gateway");
            out.push((b, p));
        }
    }
    push(&mut out, root, "");
    if let Some(paths) = root.get("paths") {
        for e in paths.entries() {
            let mut p = "/paths".to_string();
            push_segment(&mut p, &e.key);
            push(&mut out, &e.value, &p);
            for m in crate::check::structure::operation_methods() {
                if let Some(op) = e.value.get(m) {
                    let mut mp = p.clone();
                    push_segment(&mut mp, m);
                    push(&mut out, op, &mp);
                }
            }
        }
    }
    if let Some(schemes) = root
        .get("components")
        .and_then(|c| c.get("securitySchemes"))
    {
        for e in schemes.entries() {
            let mut p = "/components/securitySchemes".to_string();
            push_segment(&mut p, &e.key);
            push(&mut out, &e.value, &p);
        }
    }
    out
}

/// Calls `visit(node, pointer)` for every value inside the `x-gateway` blocks of the root file.
fn visit_blocks<'a>(
    root: &'a Node,
    mut visit: impl FnMut(&'a Node, &str, Option<&'a crate::load::node::Entry>),
) {
    for (block, ptr) in blocks(root) {
        let mut stack: Vec<(&Node, String, Option<&crate::load::node::Entry>)> =
            vec![(block, ptr, None)];
        while let Some((node, ptr, entry)) = stack.pop() {
            visit(node, &ptr, entry);
            match &node.value {
                Value::Object(entries) => {
                    for e in entries.iter().rev() {
                        let mut p = ptr.clone();
                        push_segment(&mut p, &e.key);
                        stack.push((&e.value, p, Some(e)));
                    }
                }
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate().rev() {
                        let mut p = ptr.clone();
                        crate::load::node::push_index(&mut p, i);
                        stack.push((item, p, None));
                    }
                }
                _ => {}
            }
        }
    }
}

/// What a key of an `x-gateway` block would ask for that this gateway does not do yet: its
/// capability, and what to write instead. `level` is where the block stands; `rel` the key's
/// path inside the block (the root's `defaults/` already removed).
///
/// Every key the extension's schema accepts is either honoured by the lowering or named here;
/// `tests/e2e/keys.rs` walks the schema to prove it.
fn unbuilt(level: Level, rel: &[&str]) -> Option<(&'static str, &'static str)> {
    // Every key of this version's schema is built; a capability added to the schema before it
    // is built gets its arm here, e.g. `(Level::PathItem, ["websocket"]) => Some((…))`.
    let _ = (level, rel);
    None
}

/// Refuses, at their place, the keys of capabilities that are not built yet (GW0409): a key the
/// gateway accepts always does what the documentation says.
fn check_unbuilt(root: &Node, file: &Path, diags: &mut Diagnostics) {
    for (block, ptr) in blocks(root) {
        let level = if ptr == "/x-gateway" {
            Level::Root
        } else if ptr.starts_with("/components/") {
            Level::SecurityScheme
        } else if split_pointer(&ptr).len() == 3 {
            Level::PathItem
        } else {
            Level::Operation
        };
        let mut stack: Vec<(&Node, Vec<String>, Option<crate::load::node::Pos>)> =
            vec![(block, Vec::new(), None)];
        while let Some((node, rel, key_pos)) = stack.pop() {
            let path: Vec<&str> = rel.iter().map(String::as_str).collect();
            let inner = match (level, path.split_first()) {
                (Level::Root, Some((&"defaults", rest))) => rest,
                _ => &path[..],
            };
            if !inner.is_empty() {
                let refusal = match (level, inner) {
                    (
                        Level::PathItem | Level::Operation,
                        ["limits", key @ ("head_timeout" | "drain_timeout" | "max_connections"
                        | "max_connections_per_client" | "body_timeout" | "send_timeout"
                        | "validation_memory")],
                    ) => Some((
                        Code::XGatewayInvalid,
                        format!("`limits.{key}` governs connections, which exist before any route is known"),
                        "set it at the root or in `defaults`",
                    )),
                    _ => unbuilt(level, inner).map(|(what, instead)| {
                        (
                            Code::UnavailableIntegration,
                            format!(
                                "`{}`: {what} is not built into this gateway yet",
                                inner.join(".")
                            ),
                            instead,
                        )
                    }),
                };
                if let Some((code, message, instead)) = refusal {
                    let mut p = ptr.clone();
                    for s in &rel {
                        push_segment(&mut p, s);
                    }
                    let pos = key_pos.unwrap_or(node.pos);
                    diags.report(code, file, pos, &p, message, Some(instead.into()));
                    continue;
                }
            }
            match &node.value {
                Value::Object(entries) => {
                    for e in entries.iter().rev() {
                        let mut r = rel.clone();
                        r.push(e.key.clone());
                        stack.push((&e.value, r, Some(e.key_pos)));
                    }
                }
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate().rev() {
                        let mut r = rel.clone();
                        r.push(i.to_string());
                        stack.push((item, r, Some(item.pos)));
                    }
                }
                _ => {}
            }
        }
    }
}

/// The keys an integration or authorizer of each type reads. A key of another type would be
/// silently ignored, so it is refused (GW0413) where it stands.
fn applies(kind: &str, local: bool, key: &str) -> Result<(), &'static str> {
    const LOCAL: &[&str] = &["env", "handler", "workdir", "concurrency", "memory_mb"];
    const LAMBDA: &[&str] = &[
        "function",
        "payload_format",
        "endpoint",
        "region",
        "command",
    ];
    match (kind, key) {
        (
            "http",
            "url" | "targets" | "retries" | "health_check" | "balance" | "max_requests" | "tls"
            | "protocol",
        )
        | ("mock", "status" | "status_from" | "body" | "content_type" | "example") => Ok(()),
        ("lambda", k) if LAMBDA.contains(&k) => Ok(()),
        ("lambda", k) if LOCAL.contains(&k) => {
            if local {
                Ok(())
            } else {
                Err("applies to functions run locally (`command`) only")
            }
        }
        (
            _,
            "url" | "targets" | "retries" | "health_check" | "balance" | "max_requests" | "tls"
            | "protocol",
        ) => Err("applies to `type: http` only"),
        (_, "status" | "status_from" | "body" | "content_type" | "example") => {
            Err("applies to `type: mock` only")
        }
        (_, k) if LAMBDA.contains(&k) || LOCAL.contains(&k) => {
            Err("applies to `type: lambda` only")
        }
        _ => Ok(()),
    }
}

/// Settings of the listener that need another to mean anything: revocation lists without a CA
/// to check client certificates against, `unknown_hosts` without `domains`.
fn check_listener(root: &Node, file: &Path, diags: &mut Diagnostics) {
    let Some(x) = root.get("x-gateway") else {
        return;
    };
    let tls = x.get("tls");
    let rules = [
        (
            Some(x),
            "unknown_hosts",
            "domains",
            "/x-gateway/unknown_hosts",
            "`unknown_hosts` says what hosts not in `domains` get, and there are no `domains`",
            "list the API's host names in `domains`, or remove `unknown_hosts`",
        ),
        (
            tls,
            "client_crl",
            "client_ca",
            "/x-gateway/tls/client_crl",
            "`client_crl` revokes client certificates, which are only asked for with `client_ca`",
            "add `client_ca`, or remove `client_crl`",
        ),
    ];
    for (block, key, needs, ptr, message, help) in rules {
        let Some(block) = block else { continue };
        if let (Some(node), None) = (block.get(key), block.get(needs)) {
            diags.report(
                Code::XGatewayInvalid,
                file,
                node.pos,
                ptr,
                message.to_string(),
                Some(help.into()),
            );
        }
    }
}

/// Whether client certificates are asked for: `tls` with a `client_ca`, at the listener or on a
/// domain.
fn asks_client_certs(gw: &Gateway) -> bool {
    gw.root.tls.as_ref().is_some_and(|t| t.client_ca.is_some())
        || (gw.root.tls.is_some() && gw.root.domains.iter().any(|d| d.client_ca.is_some()))
}

/// Domains' client CAs, and what reads a client certificate where none is asked for (GW0402):
/// such a setting would never see one.
fn check_client_certs(gw: &Gateway, root: &Node, file: &Path, diags: &mut Diagnostics) {
    let Some(x) = root.get("x-gateway") else {
        return;
    };
    let mut report = |node: &Node, ptr: &str, message: String, help: &str| {
        diags.report(
            Code::XGatewayInvalid,
            file,
            node.pos,
            ptr,
            message,
            Some(help.into()),
        )
    };
    let mut cas: Vec<(String, Option<&str>)> = Vec::new();
    for (i, d) in x
        .get("domains")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let ca = d.get("client_ca");
        if let Some(node) = ca.filter(|_| x.get("tls").is_none()) {
            report(
                node,
                &format!("/x-gateway/domains/{i}/client_ca"),
                "a domain's `client_ca` verifies client certificates in the TLS handshake, and there is no `tls`".into(),
                "add `tls` with the domain's certificate, or remove `client_ca`",
            );
        }
        if let (Some(node), None) = (d.get("client_crl"), ca) {
            report(
                node,
                &format!("/x-gateway/domains/{i}/client_crl"),
                "`client_crl` revokes client certificates, which this domain only asks for with `client_ca`".into(),
                "add `client_ca` to the domain, or remove `client_crl`",
            );
        }
        let name = d
            .get("name")
            .and_then(|n| n.as_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let this = ca.and_then(|c| c.as_str());
        match cas.iter().find(|(n, _)| *n == name) {
            Some((_, other)) if *other != this => report(
                ca.unwrap_or(d),
                &format!("/x-gateway/domains/{i}"),
                format!("domain `{name}` is listed again with another `client_ca`: the TLS handshake, which picks it, comes before any base path is known"),
                "give every entry of the same name the same `client_ca`",
            ),
            Some(_) => {}
            None => cas.push((name, this)),
        }
    }
    if asks_client_certs(gw) {
        return;
    }
    let help = "add `client_ca` to `x-gateway.tls` (or to a domain)";
    visit_blocks(root, |node, ptr, _| {
        let Value::String(text) = &node.value else {
            return;
        };
        let what = if ptr.ends_with("/throttle/per") && text == "client_cert" {
            "`per: client_cert`"
        } else if ptr.contains("/cache/key/") && text.starts_with("client_cert.") {
            "this cache key part"
        } else if ptr.contains("/authorizer/identity/")
            && text.starts_with("context.identity.clientCert.")
        {
            "this identity source"
        } else if text.contains("context.identity.clientCert.")
            || text.contains("context.authentication.clientCert.")
        {
            "this template"
        } else {
            return;
        };
        report(
            node,
            ptr,
            format!(
                "{what} reads the client certificate, which is only asked for with a `client_ca`"
            ),
            help,
        );
    });
}

/// Keys of an integration or authorizer that its type does not read (GW0413), and Lambda
/// function names AWS would refuse (GW0402).
fn check_integration_settings(root: &Node, file: &Path, diags: &mut Diagnostics) {
    for (block, ptr) in blocks(root) {
        // Each place: what it is, its path in the block (segments), the node.
        let mut places = vec![
            ("integration", vec!["integration"], block.get("integration")),
            ("authorizer", vec!["authorizer"], block.get("authorizer")),
            (
                "integration",
                vec!["defaults", "integration"],
                block.get("defaults").and_then(|d| d.get("integration")),
            ),
        ];
        if let Some(routes) = block.get("websocket").and_then(|w| w.get("routes")) {
            for e in routes.entries() {
                places.push((
                    "websocket",
                    vec!["websocket", "routes", e.key.as_str(), "integration"],
                    e.value.get("integration"),
                ));
            }
        }
        for (rel, segments, node) in places {
            let Some(node) = node else { continue };
            let kind = node.get("type").and_then(|t| t.as_str()).unwrap_or("");
            let local = node.get("command").is_some();
            let mut at = ptr.clone();
            for s in segments {
                push_segment(&mut at, s);
            }
            for e in node.entries() {
                let mut p = at.clone();
                push_segment(&mut p, &e.key);
                let refusal = match (rel, e.key.as_str()) {
                    ("authorizer", "url") if kind == "lambda" => Some("applies to `type: http` only"),
                    ("authorizer", "event")
                        if node.get("payload_format").and_then(|f| f.as_str()) != Some("1.0") =>
                    {
                        Some("applies to payload format 1.0 only (REST APIs' TOKEN and REQUEST authorizers)")
                    }
                    ("authorizer", k) if kind == "http" && applies("lambda", true, k).is_ok() && applies("http", false, k).is_err() => {
                        Some("applies to `type: lambda` only")
                    }
                    ("authorizer", _) => None,
                    (
                        "websocket",
                        "targets" | "retries" | "health_check" | "balance" | "max_requests"
                        | "tls" | "protocol" | "status" | "status_from" | "content_type"
                        | "example" | "payload_format",
                    ) => Some("does not apply to WebSocket routes (their integrations take `url`, `timeout`, a mock's `body`, or a function)"),
                    (_, "endpoint") if local => Some("names where AWS's Lambda service is: a function run locally (`command`) has none"),
                    (_, k) => applies(kind, local, k).err(),
                };
                if let Some(why) = refusal {
                    diags.report(
                        Code::InapplicableSetting,
                        file,
                        e.key_pos,
                        &p,
                        format!("`{}` {why}; here it would be ignored", e.key),
                        Some(format!("remove `{}`, or change `type`", e.key)),
                    );
                }
            }
            if let Some(tls) = node.get("tls") {
                if tls.get("cert").is_some() != tls.get("key").is_some() {
                    let mut p = at.clone();
                    push_segment(&mut p, "tls");
                    diags.report(
                        Code::XGatewayInvalid,
                        file,
                        tls.pos,
                        &p,
                        "a client certificate needs both `cert` and `key`".to_string(),
                        Some("name both PEM files, or neither".into()),
                    );
                }
            }
            if node.get("url").is_some() && node.get("targets").is_some() {
                diags.report(
                    Code::XGatewayInvalid,
                    file,
                    node.pos,
                    &at,
                    "an `http` integration sends to `url` or to `targets`, not both".to_string(),
                    Some("list `url` as one of `targets`".into()),
                );
            }
            if kind == "lambda" && !local && node.get("function").is_none() {
                diags.report(
                    Code::XGatewayInvalid,
                    file,
                    node.pos,
                    &at,
                    "a `lambda` function is named by `function` (on AWS) or run by `command` (on this machine); this one has neither".to_string(),
                    Some("add `function: NAME` or `command: [PROGRAM, ARG, …]`".into()),
                );
            }
            if kind == "lambda" && !local {
                if let Some(f) = node.get("function").and_then(|f| f.as_str()) {
                    if !f.contains("${") && !is_lambda_function_name(f) {
                        let mut p = at.clone();
                        push_segment(&mut p, "function");
                        let pos = node.get("function").map_or(node.pos, |n| n.pos);
                        diags.report(
                            Code::XGatewayInvalid,
                            file,
                            pos,
                            &p,
                            format!("`{f}` is not a Lambda function name, partial ARN or ARN"),
                            Some("write `NAME`, `ACCOUNT:function:NAME` or `arn:aws:lambda:REGION:ACCOUNT:function:NAME`, with an optional `:ALIAS` or `:VERSION`".into()),
                        );
                    }
                }
            }
        }
    }
}

/// A function name, partial ARN or ARN as Lambda's `Invoke` accepts it: letters, digits, `-`
/// and `_` (64 at most), an optional `:VERSION` or `:ALIAS`.
fn is_lambda_function_name(f: &str) -> bool {
    let word = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let qualifier = |s: &str| s == "$LATEST" || word(s, 128);
    let parts: Vec<&str> = f.split(':').collect();
    match parts.as_slice() {
        [name] => word(name, 64),
        [name, q] => word(name, 64) && qualifier(q),
        [account, "function", name] => {
            account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && word(name, 64)
        }
        [account, "function", name, q] => {
            account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && word(name, 64)
                && qualifier(q)
        }
        ["arn", partition, "lambda", region, account, "function", name, rest @ ..] => {
            partition.starts_with("aws")
                && word(region, 32)
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && word(name, 64)
                && match rest {
                    [] => true,
                    [q] => qualifier(q),
                    _ => false,
                }
        }
        _ => false,
    }
}

/// Interpolations in every string of every `x-gateway` block of the root file.
fn check_interpolations(gw: &Gateway, root: &Node, file: &Path, diags: &mut Diagnostics) {
    let declared: Vec<(&str, BTreeSet<&str>)> = gw
        .stages
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.settings.variables.keys().map(String::as_str).collect(),
            )
        })
        .collect();
    visit_blocks(root, |node, ptr, _| {
        let Value::String(s) = &node.value else {
            return;
        };
        let in_stage_vars = ptr.starts_with("/x-gateway/stages/");
        for found in interpolations(s) {
            match found {
                Ok(("stageVariables", name)) => {
                    if in_stage_vars {
                        diags.report(Code::BadInterpolation, file, node.pos, ptr, format!("stage variables cannot refer to stage variables (`${{stageVariables.{name}}}`)"), Some("use `${env.NAME}` here".into()));
                        continue;
                    }
                    let missing: Vec<&str> = declared
                        .iter()
                        .filter(|(_, vars)| !vars.contains(name))
                        .map(|(s, _)| *s)
                        .collect();
                    if !missing.is_empty() {
                        let all: BTreeSet<&str> = declared
                            .iter()
                            .flat_map(|(_, v)| v.iter().copied())
                            .collect();
                        diags.report(
                            Code::UnknownStageVariable,
                            file,
                            node.pos,
                            ptr,
                            format!(
                                "stage variable `{name}` is not declared by stage{} {}",
                                if missing.len() > 1 { "s" } else { "" },
                                missing
                                    .iter()
                                    .map(|s| format!("`{s}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            did_you_mean(name, all.iter().copied()),
                        );
                    }
                }
                Ok(_) => {}
                Err(text) => diags.report(
                    Code::BadInterpolation,
                    file,
                    node.pos,
                    ptr,
                    format!("`{text}` is not an interpolation gwgen understands"),
                    Some("write `${stageVariables.NAME}` or `${env.NAME}`".into()),
                ),
            }
        }
    });
}

fn check_security(gw: &Gateway, root: &Node, file: &Path, diags: &mut Diagnostics) {
    let known: Vec<&str> = gw.security_schemes.keys().map(String::as_str).collect();
    let check_list = |list: &Node, ptr: &str, file: &Path, diags: &mut Diagnostics| {
        for (i, req) in list.items().iter().enumerate() {
            for e in req.entries() {
                if !gw.security_schemes.contains_key(&e.key) {
                    let mut p = ptr.to_string();
                    push_segment(&mut p, &i.to_string());
                    push_segment(&mut p, &e.key);
                    diags.report(
                        Code::UnknownSecurityScheme,
                        file,
                        e.key_pos,
                        &p,
                        format!(
                            "security scheme `{}` is not declared in `components.securitySchemes`",
                            e.key
                        ),
                        did_you_mean(&e.key, known.iter().copied()),
                    );
                }
            }
        }
    };
    if let Some(list) = root.get("security") {
        check_list(list, "/security", file, diags);
    }
    for r in &gw.routes {
        let segs = split_pointer(&r.location.pointer);
        if let Some(op) = root.pointer(&segs).filter(|_| r.location.file == file) {
            if let Some(list) = op.get("security") {
                let mut p = r.location.pointer.clone();
                push_segment(&mut p, "security");
                check_list(list, &p, file, diags);
            }
        }
    }
    // Schemes the gateway cannot enforce as configured fail closed; say so once per scheme used.
    let used: BTreeSet<&str> = gw
        .routes
        .iter()
        .flat_map(|r| {
            r.security
                .iter()
                .flat_map(|req| req.schemes.iter().map(|(n, _)| n.as_str()))
        })
        .collect();
    for name in used {
        let Some(s) = gw.security_schemes.get(name) else {
            continue;
        };
        let x = &s.settings;
        let has_jwt_keys = x.jwks_uri.is_some() || x.keys.is_some() || x.secret.is_some();
        let problem = match (s.kind, s.scheme.as_deref()) {
            (_, _) if x.authorizer.is_some() => None,
            (Some(SchemeType::ApiKey), _) if gw.root.api_keys.is_none() => {
                Some("API keys need `x-gateway.api_keys.source` at the root".to_string())
            }
            (Some(SchemeType::ApiKey), _)
                if gw
                    .root
                    .api_keys
                    .as_ref()
                    .is_some_and(|k| k.source == KeySource::Redis)
                    && !gw
                        .root
                        .state
                        .as_ref()
                        .is_some_and(|s| s.backend == StateBackend::Redis && s.url.is_some()) =>
            {
                Some(
                    "API keys in Redis need `x-gateway.state: { backend: redis, url: … }`"
                        .to_string(),
                )
            }
            (Some(SchemeType::OpenIdConnect), _) if s.openid_connect_url.is_some() => None,
            (Some(SchemeType::Http), Some("bearer")) | (Some(SchemeType::OAuth2), _)
                if !has_jwt_keys =>
            {
                Some(
                "JWT verification needs `jwks_uri`, `keys` or `secret` in the scheme's `x-gateway`"
                    .to_string(),
            )
            }
            (Some(SchemeType::Http), Some(other)) if other != "bearer" => Some(format!(
                "HTTP `{other}` authentication is not enforced by the gateway; use an `authorizer`"
            )),
            (Some(SchemeType::MutualTls), _) if asks_client_certs(gw) => None,
            (Some(SchemeType::MutualTls), _) => Some(
                "mutual TLS needs `x-gateway.tls` with a `client_ca` to verify client certificates against"
                    .to_string(),
            ),
            _ => None,
        };
        if let Some(problem) = problem {
            let l = &s.location;
            diags.report(
                Code::IncompleteScheme,
                &l.file,
                l.pos,
                &l.pointer,
                format!("security scheme `{name}` cannot be verified: {problem}; requests that rely on it alone are refused with 401"),
                None,
            );
        }
    }
    // `token_source` is where a JWT is read: another kind of scheme would ignore it.
    for s in gw.security_schemes.values() {
        let jwt = s.settings.authorizer.is_none()
            && matches!(
                (s.kind, s.scheme.as_deref()),
                (Some(SchemeType::Http), Some("bearer"))
                    | (Some(SchemeType::OAuth2), _)
                    | (Some(SchemeType::OpenIdConnect), _)
            );
        if jwt || s.settings.token_source.is_none() {
            continue;
        }
        let at = format!("{}/x-gateway/token_source", s.location.pointer);
        let pos = root
            .pointer(split_pointer(&s.location.pointer))
            .and_then(|n| n.get("x-gateway"))
            .and_then(|x| x.entry("token_source"))
            .map_or(s.location.pos, |e| e.key_pos);
        diags.report(
            Code::InapplicableSetting,
            &s.location.file,
            pos,
            &at,
            format!("`token_source` applies to JWT schemes (bearer, OAuth 2, OpenID Connect); scheme `{}` would ignore it", s.name),
            Some("remove `token_source`; API keys name their place with `in` and `name`".into()),
        );
    }
}

fn check_plans(gw: &Gateway, root: &Node, file: &Path, diags: &mut Diagnostics) {
    let known: Vec<&str> = gw.root.usage_plans.keys().map(String::as_str).collect();
    visit_blocks(root, |node, ptr, entry| {
        // A JWT or authorizer scheme's `plan`.
        if entry.is_some_and(|e| e.key == "plan") && ptr.starts_with("/components/") {
            if let Some(name) = node.as_str().filter(|n| !known.contains(n)) {
                diags.report(
                    Code::UnknownUsagePlan,
                    file,
                    node.pos,
                    ptr,
                    format!("usage plan `{name}` is not declared in `x-gateway.usage_plans`"),
                    did_you_mean(name, known.iter().copied()),
                );
            }
        }
        if entry.is_some_and(|e| e.key == "plans") {
            for (i, item) in node.items().iter().enumerate() {
                if let Some(name) = item.as_str().filter(|n| !known.contains(n)) {
                    let mut ip = ptr.to_string();
                    crate::load::node::push_index(&mut ip, i);
                    diags.report(
                        Code::UnknownUsagePlan,
                        file,
                        item.pos,
                        &ip,
                        format!("usage plan `{name}` is not declared in `x-gateway.usage_plans`"),
                        did_you_mean(name, known.iter().copied()),
                    );
                }
            }
        }
    });
}

/// Where the setting at `suffix` (`integration/url`, `cache/key/0`) that `route` uses is written:
/// on the operation, its path item, the root's `defaults`, or the root.
fn setting_location(route: &crate::ir::Route, root: &Node, suffix: &str) -> Location {
    let op = &route.location.pointer;
    let path_item = op.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    let candidates = [
        format!("{op}/x-gateway/{suffix}"),
        format!("{path_item}/x-gateway/{suffix}"),
        format!("/x-gateway/defaults/{suffix}"),
        format!("/x-gateway/{suffix}"),
    ];
    for c in candidates {
        if let Some(node) = root.pointer(split_pointer(&c)) {
            return Location {
                file: route.location.file.clone(),
                pointer: c,
                pos: node.pos,
            };
        }
    }
    route.location.clone()
}

fn check_urls(gw: &Gateway, root: &Node, diags: &mut Diagnostics) {
    for r in &gw.routes {
        let Some(integration) = &r.settings.integration else {
            continue;
        };
        if integration.kind != IntegrationKind::Http {
            continue;
        }
        let params = template_params(&r.segments);
        let urls = integration
            .url
            .iter()
            .chain(integration.targets.iter().flatten().map(|t| &t.url));
        for url in urls {
            for name in url_placeholders(url) {
                if !params.contains(&name) {
                    report_at(
                        diags,
                        Code::UnknownUrlPlaceholder,
                        &setting_location(r, root, "integration/url"),
                        format!("`{{{name}}}` in integration URL `{url}` names no path parameter of {} {}", r.method, r.path),
                        did_you_mean(name, params.iter().copied()),
                    );
                }
            }
        }
    }
}

/// `cache.key` parts `path.NAME` must name a path parameter of each operation that caches.
fn check_cache_keys(gw: &Gateway, root: &Node, diags: &mut Diagnostics) {
    let mut seen = std::collections::BTreeSet::new();
    for r in &gw.routes {
        let Some(cache) = &r.settings.cache else {
            continue;
        };
        let params = template_params(&r.segments);
        for (i, part) in cache.key.iter().enumerate() {
            let Some(name) = part.strip_prefix("path.") else {
                continue;
            };
            if params.contains(&name) {
                continue;
            }
            let loc = setting_location(r, root, &format!("cache/key/{i}"));
            if !seen.insert((loc.pointer.clone(), r.path.clone())) {
                continue;
            }
            report_at(
                diags,
                Code::UnknownCacheKey,
                &loc,
                format!(
                    "cache key part `{part}` names no path parameter of {} {}",
                    r.method, r.path
                ),
                did_you_mean(name, params.iter().copied()),
            );
        }
    }
}

/// `{name}` placeholders of a URL template (not `${…}` interpolations).
pub(crate) fn url_placeholders(url: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = url.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'{' && (i == 0 || bytes[i - 1] != b'$') {
            if let Some(end) = url[i + 1..].find('}') {
                out.push(&url[i + 1..i + 1 + end]);
                i += end + 2;
                continue;
            }
        }
        i += 1;
    }
    out
}

fn report_at(
    diags: &mut Diagnostics,
    code: Code,
    loc: &Location,
    msg: String,
    hint: Option<String>,
) {
    diags.report(code, &loc.file, loc.pos, &loc.pointer, msg, hint);
}

fn check_pitfalls(gw: &Gateway, root: &Node, file: &Path, diags: &mut Diagnostics) {
    let root_pos = root
        .entry("x-gateway")
        .map(|e| e.key_pos)
        .or_else(|| root.entry("openapi").map(|e| e.key_pos))
        .unwrap_or(root.pos);
    let throttled = gw.defaults.throttle.is_some()
        || gw.stages.iter().any(|s| s.settings.throttle.is_some())
        || gw.root.usage_plans.values().any(|p| p.throttle.is_some())
        || gw.routes.iter().any(|r| r.settings.throttle.is_some());
    if !throttled && !gw.routes.is_empty() {
        diags.report(
            Code::NoThrottle,
            file,
            root_pos,
            "",
            "no `throttle` is set at any level, so nothing limits request rates",
            Some("add `x-gateway: { defaults: { throttle: { rate: 100, burst: 200 } } }`".into()),
        );
    }
    for r in &gw.routes {
        let retries = r
            .settings
            .integration
            .as_ref()
            .and_then(|i| i.retries)
            .unwrap_or(0);
        if retries > 0
            && !r.integration_inherited
            && matches!(r.method, crate::ir::Method::Post | crate::ir::Method::Patch)
        {
            report_at(
                diags,
                Code::RetriesNeverApply,
                &setting_location(r, root, "integration/retries"),
                format!(
                    "{} {}: a {} is never sent twice, so `retries` does nothing here",
                    r.method, r.path, r.method
                ),
                Some(
                    "set `retries: 0` on this operation, or leave it for its idempotent siblings"
                        .into(),
                ),
            );
        }
        let mutating = r.method.is_mutating();
        if mutating && r.security.is_empty() && !r.security_explicit {
            report_at(diags, Code::UnprotectedMutation, &r.location, format!("{} {} changes data but requires no authentication", r.method, r.path), Some("add a `security` requirement, or `security: []` on the operation if it is public on purpose".into()));
        }
    }
    // CORS with credentials and a wildcard origin, wherever it is declared.
    visit_blocks(root, |node, ptr, entry| {
        let Some(e) = entry.filter(|e| e.key == "cors") else {
            return;
        };
        let wildcard = node
            .get("allow_origins")
            .is_some_and(|o| o.items().iter().any(|x| x.as_str() == Some("*")));
        let creds = node.get("allow_credentials").and_then(Node::as_bool) == Some(true);
        if wildcard && creds {
            diags.report(
                Code::UnsafeCors,
                file,
                e.key_pos,
                ptr,
                "CORS allows credentials from any origin (`*`)",
                Some("list the exact origins in `allow_origins`".into()),
            );
        }
    });
    let mocks: Vec<String> = gw
        .routes
        .iter()
        .filter(|r| r.settings.integration.is_none() && r.websocket.is_none())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    if !mocks.is_empty() {
        let shown: Vec<&str> = mocks.iter().take(3).map(String::as_str).collect();
        let more = if mocks.len() > 3 {
            format!(" and {} more", mocks.len() - 3)
        } else {
            String::new()
        };
        diags.report(
            Code::MockOperations,
            file,
            root_pos,
            "",
            format!(
                "{} operation{} ha{} no integration and {} served as mock{}: {}{more}",
                mocks.len(),
                if mocks.len() == 1 { "" } else { "s" },
                if mocks.len() == 1 { "s" } else { "ve" },
                if mocks.len() == 1 { "is" } else { "are" },
                if mocks.len() == 1 { "" } else { "s" },
                shown.join(", ")
            ),
            Some("set `x-gateway.defaults.integration` to proxy them".into()),
        );
    }
}

/// Every template of every route's `transform` (GW0411), and its edits (GW0412): names the gateway
/// knows, path parameters the route has, stage variables every stage declares, header names it
/// may write, a path it can send (the extension's schema checks status mappings). A transform
/// set at the root or on a path item is checked against every operation it applies to.
fn check_transforms(gw: &Gateway, root: &Node, file: &Path, diags: &mut Diagnostics) {
    use crate::transform::{Part, Transform, RESERVED_HEADERS};
    let mut reported: BTreeSet<(String, String)> = BTreeSet::new();
    for r in &gw.routes {
        let Some(value) = &r.settings.transform else {
            continue;
        };
        let Some(t) = Transform::from_value(value) else {
            continue; // the extension's schema check says what is wrong
        };
        // Where the route's transform is written: the nearest level that sets one.
        let at = setting_location(r, root, "transform");
        let block = root
            .pointer(split_pointer(&at.pointer))
            .filter(|_| at.pointer.ends_with("/transform"));
        let block_ptr = at.pointer;
        let mut report = |code: Code, rel: &[String], message: String, hint: Option<String>| {
            let node = block.and_then(|b| b.pointer(rel));
            let mut ptr = block_ptr.clone();
            if node.is_some() {
                for s in rel {
                    push_segment(&mut ptr, s);
                }
            }
            if reported.insert((ptr.clone(), message.clone())) {
                let pos = node.or(block).map_or(at.pos, |n| n.pos);
                diags.report(code, file, pos, &ptr, message, hint);
            }
        };
        // Templates: (where, text, whether it is the upstream path, whether it may read the
        // answer's body).
        let rel = |segs: &[&str]| -> Vec<String> { segs.iter().map(|s| s.to_string()).collect() };
        let mut templates: Vec<(Vec<String>, &str, bool, Reads)> = Vec::new();
        let mut names: Vec<(Vec<String>, &str, bool)> = Vec::new();
        // Every set of edits and every body mapping, with where it is: the transform's own,
        // and each `by_status` case's.
        let at = |prefix: &[String], more: &[&str]| -> Vec<String> {
            prefix
                .iter()
                .cloned()
                .chain(more.iter().map(|s| s.to_string()))
                .collect()
        };
        let mut edit_sets: Vec<(Vec<String>, &crate::transform::Edits, bool, Reads)> = vec![
            (
                rel(&["request", "headers"]),
                &t.request.headers,
                true,
                Reads::Request,
            ),
            (
                rel(&["request", "query"]),
                &t.request.query,
                false,
                Reads::Request,
            ),
            (
                rel(&["response", "headers"]),
                &t.response.headers,
                true,
                Reads::AnswerHead,
            ),
        ];
        let mut bodies: Vec<(Vec<String>, &crate::transform::BodyMapping, Reads)> = Vec::new();
        if let Some(b) = &t.request.body {
            bodies.push((rel(&["request", "body"]), b, Reads::Request));
        }
        if let Some(b) = &t.response.body {
            bodies.push((rel(&["response", "body"]), b, Reads::Answer));
        }
        for (key, case) in &t.response.by_status {
            let prefix = rel(&["response", "by_status", key]);
            edit_sets.push((
                at(&prefix, &["headers"]),
                &case.headers,
                true,
                Reads::AnswerHead,
            ));
            if let Some(b) = &case.body {
                bodies.push((at(&prefix, &["body"]), b, Reads::Answer));
            }
        }
        for (prefix, edits, headers, reads) in edit_sets {
            for (op_name, map) in [("set", &edits.set), ("add", &edits.add)] {
                for (name, text) in map {
                    templates.push((at(&prefix, &[op_name, name]), text, false, reads));
                    names.push((at(&prefix, &[op_name, name]), name, headers));
                }
            }
            for (i, name) in edits.remove.iter().enumerate() {
                names.push((at(&prefix, &["remove", &i.to_string()]), name, headers));
            }
        }
        if let Some(path) = &t.request.path {
            templates.push((rel(&["request", "path"]), path, true, Reads::Request));
        }
        for (prefix, body, body_reads) in bodies {
            let forms = usize::from(body.template.is_some())
                + usize::from(body.text.is_some())
                + usize::from(!body.set.is_empty() || !body.remove.is_empty());
            if forms > 1 {
                report(
                    Code::TransformEdit,
                    &prefix,
                    "a body mapping is a `template`, a `text`, or `set`/`remove` edits: one of them".into(),
                    None,
                );
            }
            if let Some(text) = &body.text {
                if let Err(problems) = text_template_problems(gw, r, text, body_reads) {
                    for (code, message, hint) in problems {
                        report(code, &at(&prefix, &["text"]), message, hint);
                    }
                }
            }
            if let Some(t) = &body.template {
                json_strings(t, at(&prefix, &["template"]), &mut |at, text| {
                    templates.push((at, text, false, body_reads));
                });
            }
            for (pointer, value) in &body.set {
                if !crate::transform::is_pointer(pointer) {
                    report(
                        Code::TransformEdit,
                        &at(&prefix, &["set", pointer]),
                        format!("`{pointer}` is not a JSON pointer (`/items/0/sku`)"),
                        None,
                    );
                }
                json_strings(value, at(&prefix, &["set", pointer]), &mut |at, text| {
                    templates.push((at, text, false, body_reads));
                });
            }
            for (i, pointer) in body.remove.iter().enumerate() {
                if pointer.is_empty() || !crate::transform::is_pointer(pointer) {
                    report(
                        Code::TransformEdit,
                        &at(&prefix, &["remove", &i.to_string()]),
                        format!("`{pointer}` is not a JSON pointer to a member (`/items/0/sku`)"),
                        None,
                    );
                }
            }
        }
        for (rel, name, header) in names {
            if header && !crate::transform::is_header_name(name) {
                report(
                    Code::TransformEdit,
                    &rel,
                    format!("`{name}` is not an HTTP field name"),
                    None,
                );
            } else if header && RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                report(
                    Code::TransformEdit,
                    &rel,
                    format!("`{name}` frames the message or belongs to one connection; the gateway writes it itself"),
                    Some("remove this edit".into()),
                );
            } else if !header && name.is_empty() {
                report(
                    Code::TransformEdit,
                    &rel,
                    "a query parameter needs a name".into(),
                    None,
                );
            }
        }
        for (rel, text, is_path, reads) in templates {
            let parts = match template_problems(gw, r, text, reads) {
                Ok(parts) => parts,
                Err(problems) => {
                    for (code, message, hint) in problems {
                        report(code, &rel, message, hint);
                    }
                    continue;
                }
            };
            if is_path {
                let first_lit = matches!(parts.first(), Some(Part::Lit(l)) if l.starts_with('/'));
                if !first_lit {
                    report(
                        Code::TransformEdit,
                        &rel,
                        "the upstream path must start with `/`".into(),
                        None,
                    );
                }
                for p in &parts {
                    if let Part::Lit(l) = p {
                        if let Some(bad) = l.chars().find(|c| {
                            c.is_control()
                                || c.is_whitespace()
                                || matches!(
                                    c,
                                    '?' | '#'
                                        | '"'
                                        | '<'
                                        | '>'
                                        | '\\'
                                        | '^'
                                        | '`'
                                        | '{'
                                        | '|'
                                        | '}'
                                )
                        }) {
                            report(
                                Code::TransformEdit,
                                &rel,
                                format!("the upstream path holds `{}`, which a URL path cannot", bad.escape_default()),
                                Some("percent-encode it, or move the query into `transform.request.query`".into()),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// What a template may read besides the request's head and the caller.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// The request's JSON body too.
    Request,
    /// The request's body and the answer's headers (`transform.response.headers`).
    AnswerHead,
    /// The request's and the answer's JSON bodies and the answer's headers
    /// (`transform.response.body`).
    Answer,
    /// Nothing more (a mock's `status_from`).
    Head,
}

type Problem = (Code, String, Option<String>);

/// A template of route `r`, parsed; or what is wrong with it: a parse error, or names the route
/// cannot give (a path parameter it lacks, a stage variable a stage lacks, a body it cannot read).
fn template_problems(
    gw: &Gateway,
    r: &crate::ir::Route,
    text: &str,
    reads: Reads,
) -> Result<Vec<crate::transform::Part>, Vec<Problem>> {
    use crate::transform::{parse, Part};
    let parts = parse(text).map_err(|e| {
        let at = text[..e.offset.min(text.len())].chars().count() + 1;
        vec![(
            Code::TemplateError,
            format!("{} (at character {at} of the template)", e.message),
            None,
        )]
    })?;
    let sources: Vec<_> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Value(s, _) => Some(s.clone()),
            Part::Lit(_) => None,
        })
        .collect();
    source_problems(gw, r, &sources, reads).map(|()| parts)
}

/// A text body template (`body.text`) of route `r`, or what is wrong with it.
fn text_template_problems(
    gw: &Gateway,
    r: &crate::ir::Route,
    text: &str,
    reads: Reads,
) -> Result<(), Vec<Problem>> {
    use crate::transform::{text_template, Node};
    let nodes = text_template(text).map_err(|e| {
        let before = &text[..e.offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
        vec![(
            Code::TemplateError,
            format!(
                "{} (at line {line}, column {column} of the template)",
                e.message
            ),
            None,
        )]
    })?;
    let mut sources = Vec::new();
    Node::sources(&nodes, &mut sources);
    source_problems(gw, r, &sources, reads)
}

/// What is wrong with the values a template of route `r` reads: a path parameter it lacks, a
/// stage variable a stage lacks, a body it cannot read.
fn source_problems(
    gw: &Gateway,
    r: &crate::ir::Route,
    sources: &[crate::transform::Source],
    reads: Reads,
) -> Result<(), Vec<Problem>> {
    use crate::transform::Source;
    let params = template_params(&r.segments);
    let mut problems = Vec::new();
    for s in sources {
        match s {
            Source::ResponseHeader(_) if !matches!(reads, Reads::Answer | Reads::AnswerHead) => {
                problems.push((
                    Code::TemplateError,
                    "`response.header` is read only in `transform.response`".into(),
                    None,
                ))
            }
            Source::ResponseBody(_) if reads != Reads::Answer => problems.push((
                Code::TemplateError,
                "`response.body` is read only in `transform.response.body`".into(),
                None,
            )),
            Source::RequestBody(_) if reads == Reads::Head => problems.push((
                Code::TemplateError,
                "`request.body` cannot be read here: only a transform reads the request body"
                    .into(),
                None,
            )),
            Source::Path(name) if !params.contains(&name.as_str()) => problems.push((
                Code::TemplateError,
                format!(
                    "`request.path.{name}` names no path parameter of `{} {}`",
                    r.method, r.path
                ),
                did_you_mean(name, params.iter().copied()),
            )),
            Source::StageVariable(name) => {
                let missing: Vec<&str> = gw
                    .stages
                    .iter()
                    .filter(|s| !s.settings.variables.contains_key(name))
                    .map(|s| s.name.as_str())
                    .collect();
                if !missing.is_empty() {
                    problems.push((
                        Code::TemplateError,
                        format!(
                            "`stageVariables.{name}` is not declared by the stage(s) {}",
                            missing.join(", ")
                        ),
                        None,
                    ));
                }
            }
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.dedup();
        Err(problems)
    }
}

/// A mock's `status_from` (GW0411 where it does not compile; GW0402 on another integration).
fn check_status_from(gw: &Gateway, root: &Node, diags: &mut Diagnostics) {
    let mut reported = BTreeSet::new();
    for r in &gw.routes {
        let Some(i) = &r.settings.integration else {
            continue;
        };
        let Some(text) = &i.status_from else {
            continue;
        };
        let at = setting_location(r, root, "integration/status_from");
        let problems = if i.kind != IntegrationKind::Mock {
            vec![(
                Code::XGatewayInvalid,
                "`status_from` chooses a mock's status; this integration is not a mock".to_string(),
                None,
            )]
        } else {
            text_template_problems(gw, r, text, Reads::Head)
                .err()
                .unwrap_or_default()
        };
        for (code, message, hint) in problems {
            if reported.insert((at.pointer.clone(), message.clone())) {
                report_at(diags, code, &at, message, hint);
            }
        }
    }
}

/// Calls `visit(pointer segments, text)` for every string in a JSON value (a body template).
fn json_strings<'v>(
    value: &'v serde_json::Value,
    at: Vec<String>,
    visit: &mut impl FnMut(Vec<String>, &'v str),
) {
    match value {
        serde_json::Value::String(s) => visit(at, s),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let mut next = at.clone();
                next.push(i.to_string());
                json_strings(item, next, visit);
            }
        }
        serde_json::Value::Object(members) => {
            for (k, item) in members {
                let mut next = at.clone();
                next.push(k.clone());
                json_strings(item, next, visit);
            }
        }
        _ => {}
    }
}
