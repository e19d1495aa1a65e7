//! The build-script front end: generate a gateway module into `OUT_DIR` and `include!` it.
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     gwgen::Builder::new("api.yaml").generate()?;
//!     Ok(())
//! }
//! // src/lib.rs: include!(concat!(env!("OUT_DIR"), "/gateway.rs"));
//! ```
//!
//! The crate that includes the module depends on `gwgen-runtime`. Following build-script
//! etiquette, the builder tells cargo to re-run when any file the spec reads changes (external
//! `$ref`s too), writes only when the output changed, and prints nothing else.

use std::fmt;
use std::path::PathBuf;

use crate::render::{render, Format};
use crate::Diagnostic;

/// Generates a gateway module from a spec, for build scripts.
#[derive(Debug, Clone)]
pub struct Builder {
    spec: PathBuf,
    out_dir: Option<PathBuf>,
    file_name: String,
}

/// Why a build script could not generate: the spec's errors, rendered as `gwgen check` would.
#[derive(Debug)]
pub struct BuildError {
    /// The diagnostics (errors and warnings).
    pub diagnostics: Vec<Diagnostic>,
    rendered: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rendered)
    }
}

impl std::error::Error for BuildError {}

impl Builder {
    /// A builder for the spec at `spec` (relative to the crate being built).
    pub fn new(spec: impl Into<PathBuf>) -> Self {
        Builder {
            spec: spec.into(),
            out_dir: None,
            file_name: "gateway.rs".into(),
        }
    }

    /// Where to write (default: `OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// The file name to write (default `gateway.rs`).
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = name.into();
        self
    }

    /// Checks the spec and writes the module; returns its path.
    pub fn generate(self) -> Result<PathBuf, BuildError> {
        let checked = crate::check_file(&self.spec);
        if std::env::var_os("OUT_DIR").is_some() {
            for f in &checked.sources.files {
                println!("cargo:rerun-if-changed={}", f.path.display());
            }
        }
        let fail = |checked: &crate::Checked, extra: Option<String>| {
            let mut rendered = render(&checked.diagnostics, &[&checked.sources], Format::Human);
            if let Some(e) = extra {
                rendered.push_str(&e);
            }
            BuildError {
                diagnostics: checked.diagnostics.clone(),
                rendered,
            }
        };
        if checked.gateway.is_none() || checked.has_errors() {
            return Err(fail(&checked, None));
        }
        let out_dir = match self
            .out_dir
            .or_else(|| std::env::var_os("OUT_DIR").map(PathBuf::from))
        {
            Some(d) => d,
            None => {
                return Err(fail(
                    &checked,
                    Some("OUT_DIR is not set: call out_dir() outside a build script\n".into()),
                ))
            }
        };
        let path = out_dir.join(&self.file_name);
        let text = match crate::emit::module(&checked) {
            Ok(text) => text,
            Err(e) => return Err(fail(&checked, Some(format!("{e}\n")))),
        };
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            if let Err(e) =
                std::fs::create_dir_all(&out_dir).and_then(|_| std::fs::write(&path, &text))
            {
                return Err(fail(
                    &checked,
                    Some(format!("cannot write {}: {e}\n", path.display())),
                ));
            }
        }
        Ok(path)
    }
}
