//! gwgen: compiles OpenAPI 3.0/3.1 specs with `x-gateway` extensions into API gateways.
//!
//! This crate is the generator as a pure library: it reads files and returns data and
//! diagnostics; it never prints or exits. The pipeline:
//!
//! ```text
//! spec files ──load──▶ Sources ──lower──▶ ir::Gateway ──check──▶ Diagnostics ──emit──▶ GeneratedCrate
//! ```
//!
//! - [`load`] reads YAML and JSON into positioned trees and resolves references.
//! - `lower` (crate-private) turns them into the [`ir`]: plain data, with `x-gateway` blocks
//!   validated against their schema ([`xgw`]) and deserialised into typed settings.
//! - `check` (crate-private) runs every rule over the trees and the IR and collects all
//!   diagnostics ([`diag`]); [`check_file`] and [`check_text`] drive load, lower and check.
//! - [`emit`] turns a checked spec into the files of a crate; the validators' code goes from
//!   [`validator`] straight into emission, never through the IR.
//!
//! Each module imports only earlier phases and the data modules ([`ir`], [`xgw`], [`diag`]).
//! The front ends are thin: the `gwgen` binary, [`Builder`] for build scripts, and the tests.
//!
//! ```no_run
//! let checked = gwgen::check_file("specs/petstore.yaml");
//! for d in &checked.diagnostics {
//!     eprintln!("{}:{}: {}[{}]: {}", d.file.display(), d.pos, d.severity.as_str(), d.code.as_str(), d.message);
//! }
//! ```
#![deny(missing_docs)]

pub(crate) mod aws;
pub mod builder;
pub(crate) mod check;
pub mod diag;
pub mod emit;
pub mod ir;
pub mod load;
pub(crate) mod lower;
pub(crate) mod naming;
pub(crate) mod pattern;
pub mod render;
pub mod transform;
pub mod validation;
pub mod validator;
pub mod xgw;

use std::path::Path;

pub use builder::{BuildError, Builder};
pub use diag::{Code, Diagnostic, Severity};
pub use lower::{parse_template, template_params, template_shape};

/// The OpenAPI version of a spec, which is also the schema dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// OpenAPI 3.0.x: Schema Objects are the 3.0 subset/superset of JSON Schema draft 4/5.
    V30,
    /// OpenAPI 3.1.x: Schema Objects are JSON Schema 2020-12.
    V31,
}

/// The outcome of checking one spec.
#[derive(Debug)]
pub struct Checked {
    /// Every file read.
    pub sources: load::Sources,
    /// All diagnostics, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// The lowered gateway, when the document was an OpenAPI 3.x document at all.
    pub gateway: Option<ir::Gateway>,
}

impl Checked {
    /// Whether any error was found.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// Whether any warning was found.
    pub fn has_warnings(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Warning)
    }

    /// Whether a file could not be read at all.
    pub fn has_io_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.code == Code::Io)
    }
}

impl Checked {
    /// Records that generation failed (generated code that does not parse: a gwgen bug), as an
    /// error against the spec's root, so no caller can write or build broken code.
    pub fn push_emit_error(&mut self, e: &emit::EmitError) {
        let file = self
            .sources
            .files
            .first()
            .map(|f| f.path.clone())
            .unwrap_or_default();
        self.diagnostics.push(Diagnostic {
            code: Code::SchemaNotCompiled,
            severity: Severity::Error,
            message: e.to_string(),
            file,
            pos: load::node::Pos { line: 1, col: 1 },
            pointer: String::new(),
            hint: None,
        });
    }
}

/// Loads and checks the spec at `path` (and every file it references).
pub fn check_file(path: impl AsRef<Path>) -> Checked {
    let path = path.as_ref();
    on_big_stack(|| {
        let early = check::early_model_check(path);
        let mut diags = diag::Diagnostics::default();
        let sources = load::Sources::load(path, &mut diags);
        finish(sources, diags, early)
    })
}

/// Checks a spec held in memory; `path` names it in diagnostics and anchors relative `$ref`s.
pub fn check_text(path: impl AsRef<Path>, text: String) -> Checked {
    let path = path.as_ref();
    on_big_stack(|| {
        let mut diags = diag::Diagnostics::default();
        let sources = load::Sources::from_text(path, text, &mut diags);
        finish(sources, diags, None)
    })
}

/// Checks an API Gateway export (OpenAPI 3 or Swagger 2.0 with `x-amazon-apigateway-*`
/// extensions) and, when nothing in it was refused, returns the spec that says the same with
/// `x-gateway` and no AWS extension, as YAML.
pub fn import_aws(path: impl AsRef<Path>) -> (Checked, Option<String>) {
    let path = path.as_ref();
    let checked = check_file(path);
    let spec = (!checked.has_errors() && checked.gateway.is_some()).then(|| {
        format!(
            "# Imported from {} by `gwgen import-aws`: what its API Gateway\n# extensions said is written as x-gateway. See docs/migrate-from-aws.md.\n{}",
            path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            aws::tree::to_yaml(checked.sources.root())
        )
    });
    (checked, spec)
}

/// Loading and checking recurse as deep as the document nests (bounded by [`load::MAX_DEPTH`]);
/// they run on a thread with a stack sized for that bound, whatever thread the caller is on.
const CHECK_STACK: usize = 256 << 20;

pub(crate) fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("gwgen-check".into())
            .stack_size(CHECK_STACK)
            .spawn_scoped(scope, f)
            .map(|h| h.join())
    })
    .unwrap_or_else(|e| panic!("cannot start the checker thread: {e}"))
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Checks the spec at `path` and, when it has no errors, generates the gateway crate. On errors,
/// the [`Checked`] result says why.
pub fn generate_file(
    path: impl AsRef<Path>,
    options: &emit::GenerateOptions,
) -> Result<(emit::GeneratedCrate, Checked), Box<Checked>> {
    let mut checked = check_file(path);
    if checked.has_errors() {
        return Err(Box::new(checked));
    }
    if checked.gateway.is_none() {
        return Err(Box::new(checked));
    }
    let generated = emit::generate(&checked, options);
    match generated {
        Ok(krate) => Ok((krate, checked)),
        Err(e) => {
            checked.push_emit_error(&e);
            Err(Box::new(checked))
        }
    }
}

fn finish(
    mut sources: load::Sources,
    mut diags: diag::Diagnostics,
    early: Option<std::thread::JoinHandle<check::ModelVerdict>>,
) -> Checked {
    let gateway = if sources.files.is_empty()
        || diags
            .iter()
            .any(|d| d.code == Code::Syntax && d.file == sources.files[0].path)
    {
        None
    } else {
        // An API Gateway export becomes a plain spec first; the early model check read the
        // text as written, which no longer applies then.
        let early = if aws::import(&mut sources, &mut diags) {
            None
        } else {
            early
        };
        check::check(&sources, &mut diags, early)
    };
    Checked {
        sources,
        diagnostics: diags.into_sorted(),
        gateway,
    }
}
