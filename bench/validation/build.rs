//! Compiles the request body schema of GitHub's `POST /repos/{owner}/{repo}/check-runs` with
//! gwgen's schema compiler (the same code `gwgen generate` runs), and writes the schema itself for
//! the jsonschema side of the benchmark.

use std::path::PathBuf;

use gwgen::validator::{registry, Compiler, Dialect, Direction, Features, Options};

const URI: &str = "http://bench.gwgen.test/github.json";
pub const POINTER: &str =
    "/paths/~1repos~1{owner}~1{repo}~1check-runs/post/requestBody/content/application~1json/schema";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = std::env::var_os("GWGEN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus"));
    let spec_path = corpus.join("specs/large/github/api.github.com.json");
    println!("cargo:rerun-if-changed={}", spec_path.display());
    println!("cargo:rerun-if-env-changed=GWGEN_CORPUS");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&spec_path)?)?;
    let schema = spec
        .pointer(POINTER)
        .ok_or("the check-runs schema moved")?
        .clone();
    let docs = vec![(URI.to_string(), spec)];
    let reg = registry(&docs, Dialect::Oas30)?;
    let mut compiler = Compiler::new(
        &reg,
        Features::scan(docs.iter().map(|(_, d)| d)),
        Options {
            dialect: Dialect::Oas30,
            formats: true,
            direction: Direction::Neutral,
            prefix: "s".into(),
            emit: true,
        },
    );
    let pointer = POINTER.replace('{', "%7B").replace('}', "%7D");
    let id = compiler
        .entry(&format!("{URI}#{pointer}"))
        .map_err(|e| e.message)?;
    let entry = compiler.fn_ident(id);
    let stream = compiler
        .stream_entry(id)
        .ok_or("the check-runs schema has no streaming check")?;
    let (tokens, errors, _) = compiler.finish();
    if let Some(e) = errors.first() {
        return Err(e.message.clone().into());
    }
    std::fs::write(
        out.join("check_runs.rs"),
        format!("{tokens}\npub(crate) use self::{entry} as check_run;\npub(crate) use self::{stream} as check_run_stream;\n"),
    )?;
    std::fs::write(
        out.join("check_runs.schema.json"),
        serde_json::to_vec(&schema)?,
    )?;
    Ok(())
}
