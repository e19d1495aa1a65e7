//! The docs that are generated from code stay in step with it.

use crate::support::repo;

#[test]
fn diagnostics_catalogue_is_documented() {
    let path = repo().join("docs/diagnostics.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let expected = gwgen::render::catalogue_markdown();
    assert!(on_disk == expected, "docs/diagnostics.md is stale: run `cargo run -p gwgen -- explain --all > docs/diagnostics.md`");
}

#[test]
fn readme_shows_the_test_command_ci_runs() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).expect(".ci/run");
    assert!(readme.contains("cargo test --workspace"));
    assert!(ci.contains("cargo test --workspace"));
}

#[test]
fn every_example_spec_checks_clean() {
    let mut specs: Vec<String> = std::fs::read_dir(repo().join("specs"))
        .expect("specs/")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .map(|n| format!("specs/{n}"))
        .collect();
    specs.push("specs/split/api.yaml".into());
    assert!(specs.len() > 10, "{specs:?}");
    for spec in &specs {
        let checked = gwgen::check_file(repo().join(spec));
        assert!(
            !checked.has_errors(),
            "{spec}: {:?}",
            crate::support::errors(&checked)
        );
    }
    let orders = gwgen::check_file(repo().join("specs/orders.yaml"));
    assert!(
        orders.diagnostics.is_empty(),
        "orders.yaml is the clean showcase: {:?}",
        orders.diagnostics
    );
}

#[test]
fn split_spec_reads_every_file_and_merge_keys() {
    let checked = gwgen::check_file(repo().join("specs/split/api.yaml"));
    assert_eq!(
        checked.sources.files.len(),
        3,
        "api.yaml, common.yaml and user.yaml"
    );
    let gw = checked.gateway.expect("lowered");
    let route = &gw.routes[0];
    let t = route.settings.throttle.as_ref().expect("throttle");
    assert_eq!(
        (t.rate, t.burst),
        (20.0, Some(10)),
        "the merge key brings rate, the override burst"
    );
    let schema = route.responses[0].content[0]
        .schema
        .as_ref()
        .expect("schema");
    assert_eq!(schema.pointer, "", "the schema is the whole of user.yaml");
    assert!(checked.sources.files[schema.file]
        .path
        .ends_with("user.yaml"));
}

#[test]
fn the_extension_schema_works_as_an_editor_schema_for_whole_specs() {
    // yaml-language-server validates the whole file against the schema (see docs/x-gateway.md).
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("codegen/schema/x-gateway.schema.json"))
            .expect("schema"),
    )
    .expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let orders = gwgen::check_file(repo().join("specs/orders.yaml"));
    let doc = orders.sources.root().to_json();
    assert!(
        validator.is_valid(&doc),
        "{:?}",
        validator
            .iter_errors(&doc)
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
    );
    let mut broken = doc.clone();
    broken["paths"]["/orders/{orderId}"]["get"]["x-gateway"]["throtle"] =
        serde_json::json!({ "rate": 1 });
    assert!(
        !validator.is_valid(&broken),
        "a typo inside an operation's x-gateway is caught"
    );
    let mut broken = doc;
    broken["components"]["securitySchemes"]["cognito"]["x-gateway"]["algorithms"] =
        serde_json::json!(["none"]);
    assert!(
        !validator.is_valid(&broken),
        "a bad algorithm on a security scheme is caught"
    );
}
