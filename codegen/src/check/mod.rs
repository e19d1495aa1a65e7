//! Checking: every rule gwgen enforces on a spec, run in one pass that collects all problems.
//!
//! `structure` checks the OpenAPI objects and references, `schema` the Schema Objects' keywords,
//! `routes` the path templates and operations, `gateway` the `x-gateway` extension and what the
//! gateway must enforce. Each reports into one [`Diagnostics`]; none stops at the first problem.

pub(crate) mod gateway;
pub(crate) mod routes;
pub(crate) mod schema;
pub(crate) mod structure;

use crate::diag::{Code, Diagnostics};
use crate::ir::Gateway;
use crate::load::node::{Node, Value};
use crate::load::Sources;
use crate::Version;

/// Detects the OpenAPI version, or reports why the document is not one gwgen reads.
pub(crate) fn detect_version(src: &Sources, diags: &mut Diagnostics) -> Option<Version> {
    let file = &src.files[0];
    let root = &file.root;
    if let Some(e) = root.entry("swagger") {
        diags.report(
            Code::Swagger2,
            &file.path,
            e.key_pos,
            "/swagger",
            "this is a Swagger 2.0 document; gwgen reads OpenAPI 3.0 and 3.1",
            Some("convert it first, e.g. `npx swagger2openapi spec.json -o spec.yaml`".into()),
        );
        return None;
    }
    if !root.is_object() {
        if !matches!(root.value, Value::Null) || file.text.trim().is_empty() {
            diags.report(
                Code::NotOpenApi,
                &file.path,
                root.pos,
                "",
                format!(
                    "the document is {} {}, not an OpenAPI object",
                    if root.kind() == "array" { "an" } else { "a" },
                    root.kind()
                ),
                None,
            );
        }
        return None;
    }
    let Some(entry) = root.entry("openapi") else {
        diags.report(
            Code::NotOpenApi,
            &file.path,
            root.pos,
            "",
            "the document has no `openapi` field",
            Some("add `openapi: 3.1.0` at the top".into()),
        );
        return None;
    };
    let v = match &entry.value.value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    let version = if v.starts_with("3.0.") || v == "3.0" {
        Version::V30
    } else if v.starts_with("3.1.") || v == "3.1" {
        Version::V31
    } else {
        diags.report(
            Code::NotOpenApi,
            &file.path,
            entry.value.pos,
            "/openapi",
            format!("OpenAPI version `{v}` is not supported; gwgen reads 3.0.x and 3.1.x"),
            None,
        );
        return None;
    };
    if !matches!(entry.value.value, Value::String(_)) {
        diags.report(
            Code::WrongType,
            &file.path,
            entry.value.pos,
            "/openapi",
            "`openapi` must be a string",
            Some(format!("write `openapi: \"{v}\"`")),
        );
    }
    Some(version)
}

/// Runs every check; returns the lowered gateway when lowering was possible.
pub(crate) fn check(src: &Sources, diags: &mut Diagnostics) -> Option<Gateway> {
    let version = detect_version(src, diags)?;
    // The `openapiv3` model check reads the text on its own, so it runs beside the rest.
    let (gw, v3) = std::thread::scope(|scope| {
        let v3 = (version == Version::V30).then(|| {
            std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn_scoped(scope, || check_openapiv3(src))
        });
        let mut walker = structure::Walker::new(src, version, diags);
        walker.walk_root();
        let gw = crate::lower::lower(src, version, diags);
        let root = src.root();
        let file = src.files[0].path.clone();
        routes::check_routes(&gw, root, diags, &file);
        gateway::check_gateway(&gw, root, &file, diags);
        let v3 = match v3 {
            Some(Ok(handle)) => handle.join().ok().flatten(),
            Some(Err(_)) => check_openapiv3(src),
            None => None,
        };
        (gw, v3)
    });
    // Only worth saying when the document is otherwise sound: on a broken document the
    // structural diagnostics already say more precisely what is wrong.
    if let Some(d) = v3 {
        if !diags.has_errors() {
            diags.push(d);
        }
    }
    Some(gw)
}

/// OpenAPI 3.0 documents must also deserialise with the `openapiv3` crate, the reference model
/// of 3.0 in Rust; where they do not, the path of the failure locates the problem.
fn check_openapiv3(src: &Sources) -> Option<crate::diag::Diagnostic> {
    let file = &src.files[0];
    let result: Result<openapiv3::OpenAPI, _> =
        if file.path.extension().is_some_and(|e| e == "json") {
            let mut de = serde_json::Deserializer::from_str(&file.text);
            serde_path_to_error::deserialize(&mut de)
                .map_err(|e| (e.path().to_string(), e.inner().to_string()))
        } else {
            let json = file.root.to_json();
            serde_path_to_error::deserialize(json)
                .map_err(|e| (e.path().to_string(), e.inner().to_string()))
        };
    if let Err((path, msg)) = result {
        let segs: Vec<String> = if path == "." {
            Vec::new()
        } else {
            path.split('.')
                .map(|s| s.trim_start_matches('[').trim_end_matches(']').to_string())
                .collect()
        };
        let mut node: &Node = &file.root;
        let mut ptr = String::new();
        for s in &segs {
            match node.pointer([s]) {
                Some(n) => {
                    node = n;
                    crate::load::node::push_segment(&mut ptr, s);
                }
                None => break,
            }
        }
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        let mut d = Diagnostics::default();
        d.report(
            Code::NotOas30,
            &file.path,
            node.pos,
            &ptr,
            format!("the `openapiv3` model rejects `{path}`: {msg}"),
            None,
        );
        return d.into_sorted().pop();
    }
    None
}
