//! The official JSON-Schema-Test-Suite, compiled through gwgen's validator generator.
//!
//! Required: every draft 2020-12 test (the OpenAPI 3.1 dialect) and the draft 4 tests of the
//! keywords OpenAPI 3.0 keeps (compiled in the 3.0 dialect) pass, except those listed in
//! `tests/suite-skip.txt` with a reason; a listed test that passes fails the run too, so the list
//! stays true. Optional tests (formats asserted, bignum, ECMA-262 regexes, …) are reported.

use std::collections::BTreeMap;
use std::path::Path;

use gwgen::validator::Dialect;
use serde_json::Value;

use crate::compiled::{run, Accepted, Group, Outcome};
use crate::support::{corpus, repo};

/// The draft 4 files whose keywords OpenAPI 3.0's Schema Object keeps.
const DRAFT4_KEPT: &[&str] = &[
    "additionalProperties.json",
    "allOf.json",
    "anyOf.json",
    "default.json",
    "enum.json",
    "items.json",
    "maxItems.json",
    "maxLength.json",
    "maxProperties.json",
    "maximum.json",
    "minItems.json",
    "minLength.json",
    "minProperties.json",
    "minimum.json",
    "multipleOf.json",
    "not.json",
    "oneOf.json",
    "pattern.json",
    "properties.json",
    "ref.json",
    "required.json",
    "type.json",
    "uniqueItems.json",
];

struct Case {
    suite: String,
    file: String,
    group: String,
    test: String,
    valid: bool,
    required: bool,
}

fn remotes() -> Vec<(String, Value)> {
    let root = corpus().join("json-schema-test-suite").join("remotes");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read remotes").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json") {
                let rel = p
                    .strip_prefix(&root)
                    .expect("prefix")
                    .to_string_lossy()
                    .replace('\\', "/");
                let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).expect("read"))
                    .expect("json");
                out.push((format!("http://localhost:1234/{rel}"), v));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("read suite dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    v.sort();
    v
}

#[test]
fn json_schema_test_suite() {
    let tests = corpus().join("json-schema-test-suite").join("tests");
    let mut docs = remotes();
    let mut groups = Vec::new();
    let mut cases: Vec<Vec<Case>> = Vec::new();
    let mut add = |suite: &str, path: &Path, dialect: Dialect, formats: bool, required: bool| {
        let text = std::fs::read_to_string(path).expect("read test file");
        let list: Vec<Value> = serde_json::from_str(&text).expect("test file is JSON");
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        for (g, group) in list.iter().enumerate() {
            let uri = format!("http://gwgen.test/{suite}/{file}/{g}.json");
            docs.push((uri.clone(), group["schema"].clone()));
            let mut instances = Vec::new();
            let mut these = Vec::new();
            for t in group["tests"].as_array().into_iter().flatten() {
                instances.push(t["data"].to_string());
                these.push(Case {
                    suite: suite.to_string(),
                    file: file.clone(),
                    group: group["description"].as_str().unwrap_or("").to_string(),
                    test: t["description"].as_str().unwrap_or("").to_string(),
                    valid: t["valid"].as_bool().unwrap_or(false),
                    required,
                });
            }
            groups.push(Group {
                entry: format!("{uri}#"),
                dialect,
                formats,
                instances,
            });
            cases.push(these);
        }
    };
    let d2020 = tests.join("draft2020-12");
    for p in files(&d2020) {
        add("draft2020-12", &p, Dialect::Draft2020, false, true);
    }
    for p in files(&d2020.join("optional")) {
        add(
            "draft2020-12/optional",
            &p,
            Dialect::Draft2020,
            false,
            false,
        );
    }
    for p in files(&d2020.join("optional").join("format")) {
        add(
            "draft2020-12/optional/format",
            &p,
            Dialect::Draft2020,
            true,
            false,
        );
    }
    let d4 = tests.join("draft4");
    for name in DRAFT4_KEPT {
        add("draft4", &d4.join(name), Dialect::Oas30, false, true);
    }
    for p in files(&d4.join("optional")) {
        add("draft4/optional", &p, Dialect::Oas30, false, false);
    }
    for p in files(&d4.join("optional").join("format")) {
        add("draft4/optional/format", &p, Dialect::Oas30, true, false);
    }

    let skip_text = std::fs::read_to_string(repo().join("tests").join("suite-skip.txt"))
        .expect("tests/suite-skip.txt");
    let skips: Vec<(String, String, String)> = skip_text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let parts: Vec<&str> = l.split(" | ").collect();
            assert!(
                parts.len() == 4,
                "a skip line is `file | group | test | reason`: {l}"
            );
            (
                parts[0].to_string(),
                parts[1].to_string(),
                parts[2].to_string(),
            )
        })
        .collect();
    let skipped = |c: &Case| {
        skips.iter().any(|(f, g, t)| {
            *f == format!("{}/{}", c.suite, c.file) && *g == c.group && (t == "*" || *t == c.test)
        })
    };

    let (outcomes, accepted) = run("json_schema_suite", &docs, &groups);
    // Every instance of a schema with a streaming check goes through it as well, and every
    // single value through a parameter's quick check where the schema has one.
    let Accepted { streamed, quick } = accepted;
    println!("instances accepted by streaming checks: {streamed}, by quick checks: {quick}");
    assert!(
        streamed > 100,
        "only {streamed} instances were accepted by streaming checks"
    );
    assert!(
        quick > 100,
        "only {quick} instances were accepted by quick checks"
    );
    let mut table: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut stale = Vec::new();
    for (outcome, these) in outcomes.iter().zip(&cases) {
        for (k, c) in these.iter().enumerate() {
            let (passed, detail) = match outcome {
                Outcome::Verdicts(v) => (v[k] == c.valid, format!("expected valid={}", c.valid)),
                Outcome::Refused(e) => (
                    false,
                    format!(
                        "refused: {}",
                        e.iter()
                            .map(|e| e.message.clone())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                ),
            };
            let row = table.entry(c.suite.clone()).or_default();
            let skip = skipped(c);
            if skip {
                row.2 += 1;
            } else if passed {
                row.0 += 1;
            } else {
                row.1 += 1;
            }
            if c.required && !skip && !passed {
                failures.push(format!(
                    "{}/{} | {} | {} ({detail})",
                    c.suite, c.file, c.group, c.test
                ));
            }
            if c.required && skip && passed {
                stale.push(format!("{}/{} | {} | {}", c.suite, c.file, c.group, c.test));
            }
        }
    }
    println!(
        "{:<32} {:>7} {:>7} {:>8}",
        "suite", "passed", "failed", "skipped"
    );
    for (suite, (p, f, s)) in &table {
        println!("{suite:<32} {p:>7} {f:>7} {s:>8}");
    }
    assert!(
        failures.is_empty(),
        "{} required tests fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        stale.is_empty(),
        "these skipped tests pass now; remove them from tests/suite-skip.txt:\n{}",
        stale.join("\n")
    );
}
