//! Generates route trees from GitHub's REST description (the whole of it, and its first 100
//! and 400 paths) with `gwgen::Builder`, plus the matching route lists for matchit.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = std::env::var_os("GWGEN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus"));
    let spec_path = corpus.join("specs/large/github/api.github.com.json");
    println!("cargo:rerun-if-changed={}", spec_path.display());
    println!("cargo:rerun-if-env-changed=GWGEN_CORPUS");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(&spec_path)?)?;
    let paths = spec["paths"].as_object().ok_or("no paths")?;
    let mut index = String::new();
    for n in [100usize, 400, paths.len()] {
        // A smaller spec: the first n paths, operations without examples (the bench routes only).
        let mut sub = serde_json::json!({
            "openapi": "3.1.0",
            "info": { "title": "routes", "version": "1" },
            "x-gateway": { "defaults": { "integration": { "type": "mock" }, "throttle": { "rate": 1 } } },
            "paths": {}
        });
        let mut templates = Vec::new();
        for (path, item) in paths.iter().take(n) {
            let mut ops = serde_json::Map::new();
            for (method, _) in item.as_object().into_iter().flatten().filter(|(m, _)| ["get", "put", "post", "delete", "patch"].contains(&m.as_str())) {
                ops.insert(method.clone(), serde_json::json!({ "security": [], "responses": { "200": { "description": "ok" } } }));
            }
            sub["paths"][path] = serde_json::Value::Object(ops);
            templates.push(path.clone());
        }
        let file = out.join(format!("github-{n}.json"));
        std::fs::write(&file, serde_json::to_vec(&sub)?)?;
        gwgen::Builder::new(&file).file_name(format!("routes_{n}.rs")).generate()?;
        std::fs::write(out.join(format!("templates_{n}.rs")), format!("&{templates:?}"))?;
        index.push_str(&format!("pub mod routes_{n} {{ include!(concat!(env!(\"OUT_DIR\"), \"/routes_{n}.rs\")); }}\npub const TEMPLATES_{n}: &[&str] = include!(concat!(env!(\"OUT_DIR\"), \"/templates_{n}.rs\"));\n"));
    }
    let all = paths.len();
    index.push_str(&format!("pub use routes_{all} as routes_all;\npub const TEMPLATES_ALL: &[&str] = TEMPLATES_{all};\n"));
    std::fs::write(out.join("index.rs"), index)?;
    Ok(())
}
