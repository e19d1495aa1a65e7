//! The `gwgen` command line: exit codes, output formats, `routes`, `explain`.

use crate::support::{gwgen, repo};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn exit_codes() {
    let r = repo();
    assert_eq!(
        gwgen(&["check", "specs/orders.yaml"], &r).status.code(),
        Some(0)
    );
    assert_eq!(
        gwgen(&["check", "specs/petstore.yaml"], &r).status.code(),
        Some(0),
        "warnings alone pass"
    );
    assert_eq!(
        gwgen(&["check", "--deny-warnings", "specs/petstore.yaml"], &r)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        gwgen(
            &["check", "tests/fixtures/check/gw0301-route-conflict.yaml"],
            &r
        )
        .status
        .code(),
        Some(1)
    );
    let missing = gwgen(&["check", "no/such/spec.yaml"], &r);
    assert_eq!(
        missing.status.code(),
        Some(2),
        "an unreadable file is exit 2"
    );
    assert!(stdout(&missing).contains("GW0001"));
    assert_eq!(
        gwgen(&["check"], &r).status.code(),
        Some(2),
        "no spec is a usage error"
    );
    assert_eq!(
        gwgen(&["check", "--format", "xml", "specs/orders.yaml"], &r)
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn every_problem_of_several_specs_in_one_run() {
    let out = gwgen(
        &[
            "check",
            "--format",
            "json",
            "tests/fixtures/check/gw0503-unsatisfiable.yaml",
            "tests/fixtures/check/gw0504-invalid-type.yaml",
        ],
        &repo(),
    );
    let diags: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(diags.iter().filter(|d| d["code"] == "GW0503").count(), 4);
    assert_eq!(diags.iter().filter(|d| d["code"] == "GW0504").count(), 2);
}

#[test]
fn json_format() {
    let out = gwgen(
        &[
            "check",
            "--format",
            "json",
            "tests/fixtures/check/gw0401-xgateway-unknown-key.yaml",
        ],
        &repo(),
    );
    let diags: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    let d = diags
        .iter()
        .find(|d| {
            d["message"]
                .as_str()
                .unwrap_or_default()
                .contains("throtle")
        })
        .expect("the typo is reported");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["code"], "GW0401");
    assert_eq!(
        d["file"],
        "tests/fixtures/check/gw0401-xgateway-unknown-key.yaml"
    );
    assert_eq!(d["line"], 5);
    assert_eq!(d["column"], 3);
    assert_eq!(d["pointer"], "/x-gateway/throtle");
    assert_eq!(d["hint"], "did you mean `throttle`?");
}

#[test]
fn sarif_format() {
    let out = gwgen(
        &[
            "check",
            "--format",
            "sarif",
            "tests/fixtures/check/gw0301-route-conflict.yaml",
        ],
        &repo(),
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sarif is json");
    assert_eq!(doc["version"], "2.1.0");
    let run = &doc["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "gwgen");
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), gwgen::diag::CATALOGUE.len());
    let result = &run["results"][0];
    assert_eq!(result["ruleId"], "GW0301");
    assert_eq!(result["level"], "error");
    let idx = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
    assert_eq!(rules[idx]["id"], "GW0301");
    let region = &result["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["startLine"], 11, "the second operation");
    assert_eq!(region["startColumn"], 5);
}

#[test]
fn github_format() {
    let out = gwgen(
        &[
            "check",
            "--format",
            "github",
            "tests/fixtures/check/gw0406-unknown-url-placeholder.yaml",
        ],
        &repo(),
    );
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with("::error "))
        .expect("an error line");
    assert!(
        line.starts_with(
            "::error file=tests/fixtures/check/gw0406-unknown-url-placeholder.yaml,line=10,col=41,"
        ),
        "{line}"
    );
    assert!(line.contains(",title=GW0406::"), "{line}");
    // Workflow-command escaping: no raw newline inside one message.
    assert!(!line.contains('\r'));
}

#[test]
fn human_format_has_snippet_and_caret() {
    let out = gwgen(
        &[
            "check",
            "tests/fixtures/check/gw0401-xgateway-unknown-key.yaml",
        ],
        &repo(),
    );
    let text = stdout(&out);
    assert!(
        text.contains("error[GW0401]: `throtle` is not an `x-gateway` key on the root"),
        "{text}"
    );
    assert!(
        text.contains("  --> tests/fixtures/check/gw0401-xgateway-unknown-key.yaml:5:3"),
        "{text}"
    );
    assert!(
        text.contains(" 5 |   throtle: { rate: 5 }\n   |   ^"),
        "{text}"
    );
    assert!(text.contains("= help: did you mean `throttle`?"), "{text}");
}

#[test]
fn routes_table() {
    let out = gwgen(&["routes", "specs/orders.yaml"], &repo());
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let header = text.lines().next().expect("header");
    for col in [
        "METHOD",
        "PATH",
        "OPERATION",
        "INTEGRATION",
        "AUTH",
        "THROTTLE",
        "CACHE",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = text
        .lines()
        .find(|l| l.contains("getOrder"))
        .expect("getOrder row");
    assert!(row.starts_with("GET"));
    assert!(row.contains("/orders/{orderId}"));
    assert!(row.contains("http ${stageVariables.orders}/v2/orders/{orderId}"));
    assert!(row.contains("cognito[orders:read]"));
    assert!(row.contains("50/s burst 100"));
    assert!(row.contains("60s"));
    let health = text
        .lines()
        .find(|l| l.contains("health"))
        .expect("health row");
    assert!(health.contains("mock"));
}

#[test]
fn explain() {
    let out = gwgen(&["explain", "gw0301"], &repo());
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("GW0301 (error): conflicting routes"));
    assert_eq!(
        gwgen(&["explain", "GW9999"], &repo()).status.code(),
        Some(2)
    );
}

#[test]
fn completions_register_with_the_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = gwgen(&["completions", shell], &repo());
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = stdout(&out);
        for sub in ["check", "generate", "build", "routes", "explain"] {
            assert!(script.contains(sub), "{shell} completion lacks `{sub}`");
        }
    }
    // bash itself loads the script and registers a completion for `gwgen`.
    let script = stdout(&gwgen(&["completions", "bash"], &repo()));
    let dir = repo().join("target").join("e2e-completions");
    std::fs::create_dir_all(&dir).expect("folder");
    let file = dir.join("gwgen.bash");
    std::fs::write(&file, script).expect("script");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && complete -p gwgen", file.display()))
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("gwgen"));
    assert_eq!(
        gwgen(&["completions", "tcsh"], &repo()).status.code(),
        Some(2)
    );
}
