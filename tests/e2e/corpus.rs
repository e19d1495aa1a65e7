//! Every valid spec of the shared corpus checks with exit 0; every OpenAPI 3.1 `fail` fixture
//! fails with a located error; Swagger 2.0 exports are refused with one clear diagnostic.

use std::path::{Path, PathBuf};

use crate::support::{corpus, errors, gwgen};

fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| exts.contains(&e))
        })
        .collect();
    out.sort();
    out
}

/// 3.1 `pass` fixtures that break a rule the OpenAPI specification states in prose, which its
/// JSON Schema cannot express. gwgen reports them as errors on purpose.
const PASS_FIXTURE_EXCEPTIONS: &[(&str, &str)] = &[(
    "operation-object-example.yaml",
    "declares path parameter `petId` on `/pets/{id}` (the spec: the name MUST correspond to a template expression) \
     and requires the undeclared scheme `petstore_auth` (the spec: each name MUST correspond to a declared scheme)",
)];

fn assert_clean(spec: &Path) {
    let checked = gwgen::check_file(spec);
    assert!(
        !checked.has_errors(),
        "{} should check clean, found:\n{}",
        spec.display(),
        errors(&checked).join("\n")
    );
    assert!(checked.gateway.is_some(), "{} should lower", spec.display());
}

#[test]
fn openapi_examples_check_clean() {
    let dir = corpus().join("specs/oai/examples");
    let mut n = 0;
    for v in ["v3.0", "v3.1"] {
        for spec in files(&dir.join(v), &["yaml", "json"]) {
            assert_clean(&spec);
            n += 1;
        }
    }
    assert!(n >= 16, "expected the OpenAPI examples, found {n}");
}

#[test]
fn oas31_pass_fixtures_check_clean() {
    let dir = corpus().join("specs/oai/oas-3.1-schema-tests/pass");
    let all = files(&dir, &["yaml", "json"]);
    assert!(all.len() > 30);
    for spec in all {
        let name = spec
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some((_, why)) = PASS_FIXTURE_EXCEPTIONS.iter().find(|(n, _)| *n == name) {
            let checked = gwgen::check_file(&spec);
            assert!(checked.has_errors(), "{name} is listed as an exception ({why}) but checks clean: remove it from the list");
            continue;
        }
        assert_clean(&spec);
    }
}

#[test]
fn oas31_fail_fixtures_fail_with_located_errors() {
    let dir = corpus().join("specs/oai/oas-3.1-schema-tests/fail");
    let all = files(&dir, &["yaml", "json"]);
    assert!(all.len() >= 10);
    for spec in all {
        let out = gwgen(
            &[
                "check",
                "--format",
                "json",
                spec.to_str().unwrap_or_default(),
            ],
            &dir,
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{} should exit 1",
            spec.display()
        );
        let diags: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("JSON output");
        let located = diags.iter().any(|d| {
            d["severity"] == "error"
                && d["line"].as_u64().unwrap_or(0) > 0
                && d["column"].as_u64().unwrap_or(0) > 0
        });
        assert!(located, "{}: no located error in {diags:?}", spec.display());
    }
}

#[test]
fn real_world_specs_check_clean() {
    let c = corpus();
    let mut specs = files(&c.join("specs/apis-guru"), &["json", "yaml"]);
    specs.push(c.join("specs/large/github/api.github.com.json"));
    specs.push(c.join("specs/large/stripe/spec3.2022-04-12.json"));
    assert!(specs.len() >= 6);
    for spec in specs {
        assert_clean(&spec);
    }
}

#[test]
fn github_spec_lowers_every_operation() {
    let checked = gwgen::check_file(corpus().join("specs/large/github/api.github.com.json"));
    let gw = checked.gateway.expect("lowered");
    assert_eq!(
        gw.routes.len(),
        1223,
        "GitHub's description has 1,223 operations"
    );
    let mut names: Vec<&str> = gw.routes.iter().map(|r| r.rust_name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 1223, "Rust names are unique");
}
