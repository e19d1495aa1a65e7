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
/// The verdict of the `openapiv3` model on a document: `Err((serde path, message))`.
pub(crate) type ModelVerdict = Result<(), (String, String)>;

/// Runs the `openapiv3` model on a JSON file as soon as it is read, beside the loader, when the
/// file says `"openapi": "3.0…"`; `None` when that does not apply (the check then runs later
/// on the loaded tree). Reading the text on its own lets it overlap with parsing.
pub(crate) fn early_model_check(
    path: &std::path::Path,
) -> Option<std::thread::JoinHandle<ModelVerdict>> {
    if !path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        return None;
    }
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let text =
                std::fs::read_to_string(&path).map_err(|e| (String::new(), e.to_string()))?;
            // Only 3.0 documents: look at the `openapi` member without parsing everything.
            let is_30 = text
                .find("\"openapi\"")
                .and_then(|i| text[i + 9..].trim_start().strip_prefix(':'))
                .map(|rest| rest.trim_start().starts_with("\"3.0"))
                .unwrap_or(false);
            if !is_30 {
                return Ok(());
            }
            model_verdict_of_text(&text)
        })
        .ok()
}

fn model_verdict_of_text(text: &str) -> ModelVerdict {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, openapiv3::OpenAPI>(&mut de)
        .map(|_| ())
        .map_err(|e| (e.path().to_string(), e.inner().to_string()))
}

/// Runs every check; returns the lowered gateway when lowering was possible. `early` is the
/// `openapiv3` verdict already under way for the root file, if any.
pub(crate) fn check(
    src: &Sources,
    diags: &mut Diagnostics,
    early: Option<std::thread::JoinHandle<ModelVerdict>>,
) -> Option<Gateway> {
    let version = detect_version(src, diags)?;
    // The `openapiv3` model check runs beside the rest: started early on the file's text, or
    // now on the loaded tree.
    let (gw, verdict) = std::thread::scope(|scope| {
        let late = (version == Version::V30 && early.is_none()).then(|| {
            std::thread::Builder::new()
                .stack_size(64 << 20)
                .spawn_scoped(scope, || model_verdict(src))
        });
        // Lowering and compiling the validators run beside the structural walk; their
        // diagnostics join the others afterwards.
        let lowered = std::thread::Builder::new()
            .name("gwgen-lower".into())
            .stack_size(256 << 20)
            .spawn_scoped(scope, || {
                let mut lower_diags = Diagnostics::default();
                let gw = crate::lower::lower(src, version, &mut lower_diags);
                let mut validation_diags = Diagnostics::default();
                let validation = if lower_diags.has_errors() {
                    None
                } else {
                    Some(crate::validation::compile(src, &gw, &mut validation_diags, false).0)
                };
                (gw, lower_diags, validation, validation_diags)
            });
        let mut walker = structure::Walker::new(src, version, diags);
        walker.walk_root();
        let (mut gw, validation, validation_diags) = match lowered.map(|h| h.join()) {
            Ok(Ok((gw, lower_diags, validation, validation_diags))) => {
                for d in lower_diags.into_sorted() {
                    diags.push(d);
                }
                (gw, validation, validation_diags)
            }
            // No thread, or a panic in it: lower here, without validation.
            Ok(Err(p)) => std::panic::resume_unwind(p),
            Err(_) => (
                crate::lower::lower(src, version, diags),
                None,
                Diagnostics::default(),
            ),
        };
        let root = src.root();
        let file = src.files[0].path.clone();
        routes::check_routes(&gw, root, diags, &file);
        gateway::check_gateway(&gw, root, &file, diags);
        // Validation is compiled only from a sound spec: on a broken one the checks above
        // already say what is wrong.
        if let (false, Some(v)) = (diags.has_errors(), validation) {
            gw.validation = v;
            for d in validation_diags.into_sorted() {
                diags.push(d);
            }
        }
        let verdict = match (early, late) {
            (Some(handle), _) if version == Version::V30 => handle.join().unwrap_or(Ok(())),
            (_, Some(Ok(handle))) => handle.join().unwrap_or(Ok(())),
            (_, Some(Err(_))) => model_verdict(src),
            _ => Ok(()),
        };
        (gw, verdict)
    });
    // Only worth saying when the document is otherwise sound: on a broken document the
    // structural diagnostics already say more precisely what is wrong.
    if let Err((path, msg)) = verdict {
        if !diags.has_errors() && !path.is_empty() {
            report_model_verdict(src, diags, &path, &msg);
        }
    }
    Some(gw)
}

fn model_verdict(src: &Sources) -> ModelVerdict {
    let file = &src.files[0];
    if file.path.extension().is_some_and(|e| e == "json") && !file.rewritten {
        model_verdict_of_text(&file.text)
    } else {
        serde_path_to_error::deserialize::<_, openapiv3::OpenAPI>(file.root.to_json())
            .map(|_| ())
            .map_err(|e| (e.path().to_string(), e.inner().to_string()))
    }
}

/// OpenAPI 3.0 documents must also deserialise with the `openapiv3` crate, the reference model
/// of 3.0 in Rust; where they do not, the path of the failure locates the problem.
fn report_model_verdict(src: &Sources, diags: &mut Diagnostics, path: &str, msg: &str) {
    let file = &src.files[0];
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
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    diags.report(
        Code::NotOas30,
        &file.path,
        node.pos,
        &ptr,
        format!("the `openapiv3` model rejects `{path}`: {msg}"),
        None,
    );
}
