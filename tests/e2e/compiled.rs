//! Schemas compiled through gwgen's validator generator into one crate, built and run.
//!
//! The JSON-Schema-Test-Suite and the differential tests both come here: they hand over
//! documents, entry points and instances; this module generates one crate (each schema group with
//! its own function prefix), builds it in the shared target folder, feeds it the instances and
//! reads back one verdict per instance.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use gwgen::validator::{registry, CompileError, Compiler, Dialect, Direction, Features, Options};
use serde_json::Value;

use crate::support::repo;

/// One schema to compile, with the instances to check against it.
pub struct Group {
    /// The entry URI (`base#fragment`).
    pub entry: String,
    /// Its dialect.
    pub dialect: Dialect,
    /// Whether formats assert.
    pub formats: bool,
    /// Instances, as JSON text.
    pub instances: Vec<String>,
}

/// The outcome of one group.
pub enum Outcome {
    /// It compiled; one verdict per instance.
    Verdicts(Vec<bool>),
    /// The generator refused it.
    Refused(Vec<CompileError>),
}

/// How many instances the checks that only accept did accept.
#[derive(Debug, Clone, Copy)]
pub struct Accepted {
    /// By a streaming check.
    pub streamed: usize,
    /// By a parameter value's quick check (instances that are strings, numbers, booleans or
    /// null).
    pub quick: usize,
}

/// Compiles every group against the documents in `docs` (URI → document), builds the crate
/// `name`, runs every instance, and returns one outcome per group, with the number of instances
/// a streaming check and a quick check accepted. Each instance a schema's streaming check or
/// quick check accepts must be one the schema's function accepts; the run fails otherwise.
pub fn run(name: &str, docs: &[(String, Value)], groups: &[Group]) -> (Vec<Outcome>, Accepted) {
    let reg_2020 = registry(docs, Dialect::Draft2020).expect("the registry builds");
    let reg_4 = registry(docs, Dialect::Draft4).expect("the registry builds");
    let features = Features::scan(docs.iter().map(|(_, v)| v));
    let mut code = String::new();
    let mut entries = Vec::new();
    let mut outcomes: Vec<Option<Vec<CompileError>>> = Vec::new();
    for (n, g) in groups.iter().enumerate() {
        let reg = if g.dialect == Dialect::Draft2020 {
            &reg_2020
        } else {
            &reg_4
        };
        let opts = Options {
            dialect: g.dialect,
            formats: g.formats,
            direction: Direction::Neutral,
            prefix: format!("g{n}_s"),
            emit: true,
        };
        let mut compiler = Compiler::new(reg, features, opts);
        let entry = compiler.entry(&g.entry);
        let ident = entry.as_ref().ok().map(|id| compiler.fn_ident(*id));
        let stream = entry
            .as_ref()
            .ok()
            .and_then(|id| compiler.stream_entry(*id));
        let quick = entry
            .as_ref()
            .ok()
            .and_then(|id| compiler.scalar_entry(*id));
        let (tokens, errors, _) = compiler.finish();
        match (entry, ident) {
            (Ok(_), Some(ident)) if errors.is_empty() => {
                let (stream_use, stream_entry) = match stream {
                    Some(z) => (
                        format!("pub(crate) use self::{z} as stream;"),
                        format!("Some(g{n}::stream as rt::v::StreamFn)"),
                    ),
                    None => (String::new(), "None".into()),
                };
                let (quick_use, quick_entry) = match quick {
                    Some(q) => (
                        format!("pub(crate) use self::{q} as quick;"),
                        format!("Some(g{n}::quick as rt::v::ScalarFn)"),
                    ),
                    None => (String::new(), "None".into()),
                };
                code.push_str(&format!("mod g{n} {{ use super::rt; {tokens} pub(crate) use self::{ident} as entry; {stream_use} {quick_use} }}\n"));
                entries.push(format!(
                    "(g{n}::entry as rt::v::SchemaFn, {stream_entry}, {quick_entry})"
                ));
                outcomes.push(None);
            }
            (Err(e), _) => {
                entries.push("refused".into());
                outcomes.push(Some(vec![e]));
            }
            _ => {
                entries.push("refused".into());
                outcomes.push(Some(errors));
            }
        }
    }
    let dir = repo().join("target").join("e2e-compiled").join(name);
    std::fs::create_dir_all(dir.join("src")).expect("mkdir");
    let runtime = repo().join("runtime");
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n\n[dependencies]\ngwgen-runtime = {{ path = {:?}, features = [\"patterns\"] }}\n",
        runtime.display().to_string()
    );
    write_if_changed(&dir.join("Cargo.toml"), &manifest);
    let table = entries
        .iter()
        .map(|e| {
            if e == "refused" {
                "None".to_string()
            } else {
                format!("Some({e})")
            }
        })
        .collect::<Vec<_>>()
        .join(",\n");
    let main = format!(
        "#![allow(clippy::all, unused)]\nuse gwgen_runtime::__private_0_1 as rt;\n{code}\nstatic ENTRIES: &[Option<(rt::v::SchemaFn, Option<rt::v::StreamFn>, Option<rt::v::ScalarFn>)>] = &[{table}];\n\
         fn main() {{\n    use std::io::{{BufRead, Write}};\n    let stdin = std::io::stdin();\n    let mut out = std::io::stdout().lock();\n\
             for line in stdin.lock().lines() {{\n        let line = line.unwrap();\n        let (n, json) = line.split_once('\\t').unwrap();\n\
                 let (f, z, q) = ENTRIES[n.parse::<usize>().unwrap()].unwrap();\n        let d = match rt::v::Doc::parse(json.as_bytes()) {{\n\
                     Ok(d) => d,\n\
                     Err(e) => panic!(\"instance {{json}} does not parse: {{e}}\"),\n        }};\n\
                 let verdict = {{ let mut c = rt::v::Ctx::new(); let ok = f(&d, 0, &mut c, None); assert_eq!(ok, c.is_ok(), \"verdict and violations disagree on {{json}}\"); ok }};\n\
                 // The quick check of a single value, where there is one, may only accept what the schema accepts.\n\
                 let scalar = match d.kind(0) {{ rt::v::Kind::Str => Some(rt::v::Scalar::Str(d.as_str(0).unwrap())), rt::v::Kind::Int | rt::v::Kind::Float => Some(rt::v::Scalar::Num((d.as_f64(0).unwrap(), d.is_integer(0)))), rt::v::Kind::Bool => Some(rt::v::Scalar::Bool), rt::v::Kind::Null => Some(rt::v::Scalar::Null), _ => None }};\n\
                 let quick = match (q, scalar) {{ (Some(q), Some(s)) => q(s), _ => false }};\n\
                 assert!(!quick || verdict, \"the quick check accepts {{json}}, which the schema refuses\");\n\
                 // The streaming check, where there is one, may only accept what the schema accepts.\n\
                 let streamed = z.is_some_and(|z| {{ let mut r = rt::v::Stream::new(json, 128, usize::MAX); let mut c = rt::v::Ctx::new(); c.quietly(|c| z(&mut r, c)) && r.finish() }});\n\
                 assert!(!streamed || verdict, \"the streaming check accepts {{json}}, which the schema refuses\");\n\
                 writeln!(out, \"{{}}{{}}{{}}\", if verdict {{ 1 }} else {{ 0 }}, if quick {{ \"q\" }} else {{ \"\" }}, if streamed {{ \"s\" }} else {{ \"\" }}).unwrap();\n    }}\n}}\n"
    );
    write_if_changed(&dir.join("src").join("main.rs"), &main);
    let target = repo().join("target").join("e2e-gwgen-cache").join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .stderr(Stdio::inherit())
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "the compiled-schema crate {name} does not build"
    );
    let bin: PathBuf = target.join("debug").join(name);
    let mut input = String::new();
    for (n, g) in groups.iter().enumerate() {
        if outcomes[n].is_some() {
            continue;
        }
        for inst in &g.instances {
            let one_line: Value = serde_json::from_str(inst).expect("instance is JSON");
            input.push_str(&format!(
                "{n}\t{}\n",
                serde_json::to_string(&one_line).expect("json")
            ));
        }
    }
    let input_path = dir.join("instances.txt");
    std::fs::write(&input_path, input).expect("write instances");
    let out = Command::new(&bin)
        .stdin(std::fs::File::open(&input_path).expect("open"))
        .stderr(Stdio::inherit())
        .output()
        .expect("the compiled crate runs");
    assert!(
        out.status.success(),
        "the compiled-schema crate {name} failed"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let accepted = Accepted {
        streamed: text.lines().filter(|l| l.ends_with('s')).count(),
        quick: text.lines().filter(|l| l.contains('q')).count(),
    };
    let mut verdicts = text
        .lines()
        .map(|l| l.starts_with('1'))
        .collect::<Vec<_>>()
        .into_iter();
    let outcomes = groups
        .iter()
        .zip(outcomes)
        .map(|(g, o)| match o {
            Some(errors) => Outcome::Refused(errors),
            None => Outcome::Verdicts(
                g.instances
                    .iter()
                    .map(|_| verdicts.next().unwrap_or(false))
                    .collect(),
            ),
        })
        .collect();
    (outcomes, accepted)
}

fn write_if_changed(path: &std::path::Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).expect("write");
    }
}
