//! Property tests that fuzz the loader and the checker: arbitrary bytes, random documents built
//! from OpenAPI's vocabulary, and random edits of a real spec. None may panic, and every
//! diagnostic must carry a code and a place inside the file. `PROPTEST_CASES` raises the count
//! for a longer run (the committed default keeps CI fast).

use proptest::prelude::*;

fn check_is_sound(name: &str, text: String) {
    let lines = gwgen::load::node::source_lines(&text).count().max(1) as u32 + 1;
    let checked = gwgen::check_text(name, text);
    for d in &checked.diagnostics {
        assert!(d.code.as_str().starts_with("GW"));
        assert!(d.pos.line <= lines, "{d:?} points past the end");
    }
}

const KEYS: &[&str] = &[
    "openapi",
    "info",
    "title",
    "version",
    "paths",
    "/a",
    "/a/{id}",
    "/{x}/{x}",
    "get",
    "post",
    "parameters",
    "name",
    "in",
    "required",
    "schema",
    "type",
    "properties",
    "items",
    "allOf",
    "anyOf",
    "$ref",
    "pattern",
    "enum",
    "components",
    "schemas",
    "A",
    "B",
    "x-gateway",
    "defaults",
    "integration",
    "url",
    "throttle",
    "rate",
    "stages",
    "variables",
    "security",
    "securitySchemes",
    "responses",
    "200",
    "content",
    "application/json",
    "requestBody",
    "operationId",
    "minimum",
    "maximum",
];

const STRINGS: &[&str] = &[
    "3.1.0",
    "3.0.3",
    "path",
    "query",
    "string",
    "object",
    "integer",
    "#/components/schemas/A",
    "#/components/schemas/B",
    "#/components/parameters/P",
    "other.yaml",
    "^(?!x)",
    "[z-a]",
    "\\d+",
    "${stageVariables.x}",
    "${env.Y}",
    "http://127.0.0.1:1/{id}",
    "mock",
    "http",
    "",
    "\"*/",
    "日本",
];

fn value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        (-5i64..5).prop_map(|n| serde_json::json!(n)),
        prop::sample::select(STRINGS).prop_map(|s| serde_json::json!(s)),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn document() -> impl Strategy<Value = serde_json::Value> {
    (prop::sample::select(&["3.0.3", "3.1.0"][..]), value(), value(), value()).prop_map(|(v, paths, comps, xg)| {
        serde_json::json!({ "openapi": v, "info": { "title": "t", "version": "1" }, "paths": paths, "components": comps, "x-gateway": xg })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(text in ".{0,400}") {
        check_is_sound("fuzz.yaml", text.clone());
        check_is_sound("fuzz.json", text);
    }

    #[test]
    fn random_documents(doc in document()) {
        check_is_sound("doc.json", serde_json::to_string_pretty(&doc).unwrap_or_default());
        // JSON is YAML: the YAML loader must agree that it loads.
        let as_yaml = gwgen::check_text("doc.yaml", serde_json::to_string(&doc).unwrap_or_default());
        prop_assert!(!as_yaml.diagnostics.iter().any(|d| d.code.as_str() == "GW0002"), "{:?}", as_yaml.diagnostics);
    }

    #[test]
    fn edited_real_spec(edits in prop::collection::vec((0usize..4000, prop::sample::select(&["", "{", "}", "[", ":", "\n", "  ", "- ", "&a ", "*a", "<<: ", "'", "\"", "#", "$ref: x\n", "\u{0}"][..])), 1..8)) {
        let mut text = include_str!("../../specs/orders.yaml").to_string();
        for (at, insert) in edits {
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) { at -= 1; }
            text.insert_str(at, insert);
        }
        check_is_sound("orders.yaml", text);
    }
}
